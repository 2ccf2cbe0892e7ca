//! `--param`: values for `check`, `build`, `diff` and `graph`, end to end
//! (unknown flags, missing and invalid values, two checkouts, literal glob
//! characters in a built image, `--against`).
#![allow(clippy::panic, clippy::unwrap_used, reason = "tests fail by panicking")]

mod common;

use kapl_image::FsRight;
use kapl_image::eval::{Evaluator, Request};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const POLICY: &str = r#"param proj
param home = "/home/dev"

objective work {
  bound {
    fs read, write "${proj}/**", "${home}/.cache/**"
  }
  never {
    fs read "${proj}/**/.env"
  }
}

plan edit under work {
  step s {
    grant fs read "${proj}/**" except "${proj}/**/.env"
  }
}
"#;

fn kaplc(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kaplc"))
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .output()
        .unwrap_or_else(|e| panic!("cannot run kaplc: {e}"))
}

fn setup() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("p.kapl"), POLICY).unwrap();
    d
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn unknown_param_is_exit_2_with_a_suggestion() {
    let d = setup();
    let o = kaplc(d.path(), &["check", "p.kapl", "--param", "prj=/x"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("error[KAPL0011]"), "{}", err(&o));
    assert!(err(&o).contains("did you mean `proj`?"), "{}", err(&o));
    let o = kaplc(d.path(), &["check", "p.kapl", "--param", "noequals"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
}

#[test]
fn missing_value_names_the_flag() {
    let d = setup();
    let o = kaplc(d.path(), &["check", "--color", "never", "p.kapl"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("error[KAPL0316]"), "{}", err(&o));
    assert!(err(&o).contains("--param proj=/path"), "{}", err(&o));
}

#[test]
fn invalid_values_each_have_their_code() {
    let d = setup();
    for (v, code) in [
        ("rel/x", "KAPL0214"),
        ("/a/../b", "KAPL0215"),
        ("/a/./b", "KAPL0215"),
        ("/a//b", "KAPL0216"),
        ("/a/", "KAPL0217"),
        ("", "KAPL0218"),
    ] {
        let flag = format!("proj={v}");
        let o = kaplc(d.path(), &["check", "p.kapl", "--param", &flag]);
        assert_eq!(o.status.code(), Some(2), "{v}: {}", err(&o));
        assert!(
            err(&o).contains(&format!("error[{code}]")),
            "{v}: {}",
            err(&o)
        );
    }
    // A default is checked where it is written.
    std::fs::write(
        d.path().join("bad.kapl"),
        "param p = \"x/y\"\nobjective o { bound { fs read \"${p}/**\" } }\n",
    )
    .unwrap();
    let o = kaplc(d.path(), &["check", "--format", "json", "bad.kapl"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["diagnostics"][0]["code"], "KAPL0214");
}

#[test]
fn outputs_say_which_values() {
    let d = setup();
    let o = kaplc(d.path(), &["check", "p.kapl", "--param", "proj=/srv/a"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        err(&o).contains("p.kapl: ok, for home=/home/dev (default), proj=/srv/a"),
        "{}",
        err(&o)
    );
    let o = kaplc(
        d.path(),
        &[
            "check",
            "--format",
            "json",
            "p.kapl",
            "--param",
            "proj=/srv/a",
        ],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["params"][1]["name"], "proj");
    assert_eq!(v["params"][1]["value"], "/srv/a");
    assert_eq!(v["params"][1]["source"], "given");
    assert_eq!(v["params"][0]["source"], "default");
    let o = kaplc(
        d.path(),
        &[
            "check",
            "--format",
            "sarif",
            "p.kapl",
            "--param",
            "proj=/srv/a",
        ],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["runs"][0]["properties"]["params"][1]["value"], "/srv/a");
    let o = kaplc(d.path(), &["graph", "p.kapl", "--param", "proj=/srv/a"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .starts_with("// parameters: home=/home/dev (default), proj=/srv/a\n")
    );
    let o = kaplc(
        d.path(),
        &[
            "diff",
            "--format",
            "json",
            "p.kapl",
            "p.kapl",
            "--param",
            "proj=/srv/a",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["params"][1]["value"], "/srv/a");
}

fn image(dir: &Path, name: &str, value: &str) -> kapl_image::Image {
    let flag = format!("proj={value}");
    let o = kaplc(dir, &["build", "p.kapl", "-o", name, "--param", &flag]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    kapl_image::read(&std::fs::read(dir.join(name)).unwrap()).unwrap()
}

fn reads(im: &kapl_image::Image, path: &str) -> bool {
    let ev = Evaluator::new(&im.plans[0]);
    ev.decide(
        0,
        &Request::Fs {
            right: FsRight::Read,
            path: path.as_bytes().to_vec(),
        },
    )
    .grant()
    .is_some()
}

#[test]
fn one_policy_two_checkouts_two_images() {
    let d = setup();
    let a = image(d.path(), "a.kapi", "/home/alice/proj");
    let b = image(d.path(), "b.kapi", "/srv/ci/checkout");
    assert_eq!(
        a.meta.params,
        [
            ("home".to_string(), "/home/dev".to_string()),
            ("proj".to_string(), "/home/alice/proj".to_string())
        ]
    );
    assert_eq!(b.meta.params[1].1, "/srv/ci/checkout");
    assert!(reads(&a, "/home/alice/proj/src/main.rs"));
    assert!(!reads(&a, "/srv/ci/checkout/src/main.rs"));
    assert!(!reads(&a, "/home/alice/proj/.env"));
    assert!(reads(&b, "/srv/ci/checkout/src/main.rs"));
    assert!(!reads(&b, "/home/alice/proj/src/main.rs"));
    let o = kaplc(d.path(), &["inspect", "a.kapi"]);
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("parameters: home=/home/dev, proj=/home/alice/proj"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = kaplc(d.path(), &["inspect", "--format", "json", "a.kapi"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["params"][1]["value"], "/home/alice/proj");
}

#[test]
fn glob_characters_in_a_value_are_literal() {
    let d = setup();
    let im = image(d.path(), "g.kapi", "/x/a*b");
    assert!(reads(&im, "/x/a*b/f"));
    assert!(!reads(&im, "/x/aXb/f"));
    let im = image(d.path(), "h.kapi", "/x/{a,b}[c]?");
    assert!(reads(&im, "/x/{a,b}[c]?/f"));
    assert!(!reads(&im, "/x/a/f"));
    assert!(!reads(&im, "/x/{a,b}c!/f"));
}

#[test]
fn plans_against_an_objective_take_its_values() {
    let d = setup();
    std::fs::write(
        d.path().join("obj.kapl"),
        "param proj\nobjective work { bound { fs read \"${proj}/**\" } }\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("plan.kapl"),
        "plan p under work { step s { grant fs read \"${proj}/src/**\" } }\n",
    )
    .unwrap();
    let o = kaplc(
        d.path(),
        &["build", "obj.kapl", "-o", "obj.kapi", "--param", "proj=/w"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    // No `--param`: the objective's value.
    let o = kaplc(
        d.path(),
        &[
            "build",
            "plan.kapl",
            "--against",
            "obj.kapi",
            "-o",
            "plan.kapi",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let im = kapl_image::read(&std::fs::read(d.path().join("plan.kapi")).unwrap()).unwrap();
    assert_eq!(im.meta.params, [("proj".to_string(), "/w".to_string())]);
    assert!(reads(&im, "/w/src/x"));
    // The same value is fine, another is refused.
    let o = kaplc(
        d.path(),
        &[
            "check",
            "plan.kapl",
            "--against",
            "obj.kapi",
            "--param",
            "proj=/w",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let o = kaplc(
        d.path(),
        &[
            "check",
            "plan.kapl",
            "--against",
            "obj.kapi",
            "--param",
            "proj=/elsewhere",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("error[KAPL0610]"), "{}", err(&o));
}
