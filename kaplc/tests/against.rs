//! Objective images and `--against`: an objective-only policy builds an
//! objective image; plans are checked and built against it, with the
//! objective taken from the image, never from the file beside the plan.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail by panicking"
)]

use std::path::Path;
use std::process::{Command, Output};

const OBJ: &str = r#"use std.runtime

objective fix {
  bound {
    fs read "/srv/**"
    exec "/usr/bin/git"
    net connect 10.0.0.0/8 port 443
    use runtime.loader
  }
  never { fs read "/srv/secrets/**" }
}

intent look under fix {
  bound { fs read "/srv/web/**" }
}
"#;

const PLAN: &str = r#"plan p under look {
  step s { grant fs read "/srv/web/logs/*" }
}
"#;

fn kaplc(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kaplc"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run kaplc: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("obj.kapl"), OBJ).unwrap();
    std::fs::write(dir.path().join("plan.kapl"), PLAN).unwrap();
    let o = kaplc(dir.path(), &["build", "obj.kapl"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    dir
}

#[test]
fn objective_image_carries_tables_sources_and_identity() {
    let dir = setup();
    let bytes = std::fs::read(dir.path().join("obj.kapi")).unwrap();
    let image = kapl_image::read(&bytes).unwrap();
    let t = image.objective.as_ref().expect("objective tables");
    assert_eq!(t.levels.len(), 2);
    let names: Vec<&str> = t.sources.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["obj.kapl", "<stdlib/runtime.kapl>"]);
    assert_eq!(t.sources[0].text, OBJ);
    let o = kaplc(dir.path(), &["inspect", "obj.kapi"]);
    let out = text(&o);
    assert!(
        out.contains(&format!(
            "objective image: identity {}",
            kapl_image::hex(&t.identity)
        )),
        "{out}"
    );
    assert!(out.contains("intent look under fix"), "{out}");
    // Building again gives the same identity.
    let o = kaplc(dir.path(), &["build", "obj.kapl", "-o", "again.kapi"]);
    assert_eq!(o.status.code(), Some(0));
    let again = kapl_image::read(&std::fs::read(dir.path().join("again.kapi")).unwrap()).unwrap();
    assert_eq!(again.identity_hex(), image.identity_hex());
}

#[test]
fn plans_build_against_the_image_and_record_its_identity() {
    let dir = setup();
    let o = kaplc(
        dir.path(),
        &[
            "build",
            "plan.kapl",
            "--against",
            "obj.kapi",
            "-o",
            "plan.kapi",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let obj = kapl_image::read(&std::fs::read(dir.path().join("obj.kapi")).unwrap()).unwrap();
    let plan = kapl_image::read(&std::fs::read(dir.path().join("plan.kapi")).unwrap()).unwrap();
    let against = plan.against.as_ref().expect("against");
    assert_eq!(against.file, "obj.kapi");
    assert_eq!(
        Some(against.identity),
        obj.objective.as_ref().map(|t| t.identity)
    );
    let o = kaplc(dir.path(), &["inspect", "plan.kapi"]);
    assert!(
        text(&o).contains("built against obj.kapi (objective identity"),
        "{}",
        text(&o)
    );
    let o = kaplc(dir.path(), &["inspect", "plan.kapi", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["against"]["file"], "obj.kapi");
    assert_eq!(
        doc["against"]["identity"].as_str(),
        obj.identity_hex().as_deref()
    );
    let o = kaplc(dir.path(), &["inspect", "obj.kapi", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["identity"].as_str(), obj.identity_hex().as_deref());
    let o = kaplc(dir.path(), &["check", "plan.kapl", "--against", "obj.kapi"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn the_objective_comes_from_the_image_not_the_file() {
    let dir = setup();
    // Widening obj.kapl after the build changes nothing for --against.
    std::fs::write(
        dir.path().join("obj.kapl"),
        OBJ.replace("never { fs read \"/srv/secrets/**\" }", ""),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.kapl"),
        "plan b under fix {\n  step s { grant fs read \"/srv/secrets/key\" }\n}\n",
    )
    .unwrap();
    let o = kaplc(dir.path(), &["check", "bad.kapl", "--against", "obj.kapi"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("error[KAPL0403]"), "{out}");
    assert!(
        out.contains("obj.kapi/obj.kapl"),
        "the never is shown from the image: {out}"
    );
    let o = kaplc(dir.path(), &["build", "bad.kapl", "--against", "obj.kapi"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!dir.path().join("bad.kapi").exists());
}

#[test]
fn redefining_the_objective_or_using_a_plan_image_is_refused() {
    let dir = setup();
    std::fs::write(
        dir.path().join("redef.kapl"),
        "objective fix { bound { fs read \"/**\" } }\nplan p under fix { step s { grant fs read \"/etc/shadow\" } }\n",
    )
    .unwrap();
    let o = kaplc(
        dir.path(),
        &["check", "redef.kapl", "--against", "obj.kapi"],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("error[KAPL0609]: objective `fix` is defined by the objective image"),
        "{out}"
    );
    assert!(!out.contains("KAPL0302"), "{out}");
    let o = kaplc(
        dir.path(),
        &[
            "build",
            "plan.kapl",
            "--against",
            "obj.kapi",
            "-o",
            "plan.kapi",
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    let o = kaplc(
        dir.path(),
        &["check", "plan.kapl", "--against", "plan.kapi"],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("error[KAPL0608]"), "{out}");
    // A tampered objective image is refused with its image code.
    let mut bytes = std::fs::read(dir.path().join("obj.kapi")).unwrap();
    let n = bytes.len();
    bytes[n - 9] ^= 1;
    std::fs::write(dir.path().join("t.kapi"), &bytes).unwrap();
    let o = kaplc(dir.path(), &["check", "plan.kapl", "--against", "t.kapi"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains("KAPL0608") && out.contains("KAPL0704"),
        "{out}"
    );
}

#[test]
fn the_stdlib_comes_from_the_image_too() {
    let dir = setup();
    // An image whose embedded runtime module has an authority kaplc's own
    // stdlib lacks (identity recomputed, so it reads back).
    let mut image = kapl_image::read(&std::fs::read(dir.path().join("obj.kapi")).unwrap()).unwrap();
    let t = image.objective.as_mut().unwrap();
    let runtime = t
        .sources
        .iter_mut()
        .find(|f| f.name == "<stdlib/runtime.kapl>")
        .unwrap();
    runtime
        .text
        .push_str("\nauthority embedded_only {\n  fs read \"/srv/web/embedded\"\n}\n");
    let id = kapl_image::format::objective_identity(&image).unwrap();
    image.objective.as_mut().unwrap().identity = id;
    std::fs::write(
        dir.path().join("custom.kapi"),
        kapl_image::write(&image).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("uses.kapl"),
        "use std.runtime\n\nplan u under look {\n  step s { grant use runtime.embedded_only }\n}\n",
    )
    .unwrap();
    let o = kaplc(
        dir.path(),
        &["check", "uses.kapl", "--against", "custom.kapi"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Against the image kaplc built, the authority does not exist.
    let o = kaplc(dir.path(), &["check", "uses.kapl", "--against", "obj.kapi"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}
