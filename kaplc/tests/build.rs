//! `kaplc build` and `kaplc inspect` end to end: images for the good
//! examples, nothing for the bad ones, atomic output, readable inspection,
//! refused corrupted images.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail by panicking"
)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/examples")
        .join(name)
}

fn kaplc_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kaplc"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run kaplc: {e}"))
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn builds_good_examples_and_inspects_them() {
    let dir = tempfile::tempdir().unwrap();
    for (name, plans, steps) in [
        (
            "deploy.kapl",
            vec!["investigate", "repair"],
            vec!["read_logs", "review_changes", "patch_config", "restart"],
        ),
        (
            "upgrade-deps.kapl",
            vec!["bump"],
            vec!["fetch", "test", "commit"],
        ),
    ] {
        let ex = example(name);
        let o = kaplc_in(dir.path(), &["build", ex.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{name}: {err}");
        assert!(err.contains("translation validated"), "{err}");
        let image = dir.path().join(name.replace(".kapl", ".kapi"));
        assert!(
            image.is_file(),
            "default output NAME.kapi in the current directory"
        );

        let o = kaplc_in(dir.path(), &["inspect", image.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0));
        let text = String::from_utf8_lossy(&o.stdout);
        for p in &plans {
            assert!(text.contains(&format!("plan {p} ")), "{text}");
        }
        for s in &steps {
            assert!(text.contains(&format!("step {s} ")), "{text}");
        }
        assert!(text.contains("start step"));

        let o = kaplc_in(
            dir.path(),
            &["inspect", "--format", "json", image.to_str().unwrap()],
        );
        assert_eq!(o.status.code(), Some(0));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let names: Vec<&str> = v["plans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, plans);
        let first = &v["plans"][0]["steps"][0];
        assert_eq!(first["start"], Value::Bool(true));
        assert!(
            v["grants"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["line"].as_u64().unwrap() > 0)
        );
    }
    // Deploy: the repair plan's restart step comes after patch_config.
    let o = kaplc_in(dir.path(), &["inspect", "--format", "json", "deploy.kapi"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let restart = &v["plans"][1]["steps"][1];
    assert_eq!(restart["name"], "restart");
    assert_eq!(restart["after"][0], "patch_config");
    assert!(
        restart["net"][0].as_str().unwrap().contains("10.20.5.7/32"),
        "{restart}"
    );
}

#[test]
fn bad_policies_build_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.kapi");
    std::fs::write(&out, b"previous image").unwrap();
    for name in ["overreach.kapl", "bad-syntax.kapl", "names.kapl"] {
        let ex = example(name);
        let o = kaplc_in(
            dir.path(),
            &["build", ex.to_str().unwrap(), "-o", out.to_str().unwrap()],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains("nothing built"), "{err}");
        let o = kaplc_in(dir.path(), &["build", ex.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1));
    }
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"previous image",
        "OUT untouched"
    );
    assert_eq!(
        listing(dir.path()),
        vec!["out.kapi"],
        "no image, no temporary file"
    );

    // JSON diagnostics for the refused build.
    let o = kaplc_in(
        dir.path(),
        &[
            "build",
            "--format",
            "json",
            example("overreach.kapl").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], Value::Bool(false));
    assert!(
        v["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["witness"].is_object())
    );
}

#[test]
fn io_failures_exit_2_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o = kaplc_in(dir.path(), &["build", "missing.kapl"]);
    assert_eq!(o.status.code(), Some(2));
    let bad_out = dir.path().join("no/such/dir/x.kapi");
    let o = kaplc_in(
        dir.path(),
        &[
            "build",
            example("deploy.kapl").to_str().unwrap(),
            "-o",
            bad_out.to_str().unwrap(),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("KAPL0605"));
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn inspect_refuses_corrupted_images() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("d.kapi");
    let o = kaplc_in(
        dir.path(),
        &[
            "build",
            example("deploy.kapl").to_str().unwrap(),
            "-o",
            img.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    let bytes = std::fs::read(&img).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("KAPL0701", bytes[..bytes.len() / 2].to_vec()),
        ("KAPL0704", {
            let mut b = bytes.clone();
            let i = b.len() - 100;
            b[i] ^= 0x10;
            b
        }),
        ("KAPL0703", {
            let mut b = bytes.clone();
            b[8] = 9;
            b
        }),
        ("KAPL0702", b"#!/bin/sh\necho not an image\n".to_vec()),
    ];
    for (code, b) in cases {
        let p = dir.path().join("bad.kapi");
        std::fs::write(&p, &b).unwrap();
        let o = kaplc_in(dir.path(), &["inspect", p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(code), "{code}: {err}");
        assert!(o.stdout.is_empty());
    }
}

/// `kaplc build` warns about exec grants the building machine shows to be
/// symbolic links (KAPL0606), and about programs whose ELF loader or `#!`
/// interpreter their step may not execute (KAPL0607); the image is still
/// built. Real links and real programs (`/usr/bin/true`, `/bin/sh`).
#[test]
fn exec_grants_are_checked_against_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().canonicalize().unwrap();
    std::os::unix::fs::symlink("/usr/bin/true", d.join("tool")).unwrap();
    std::fs::write(d.join("run.sh"), "#!/bin/sh\nexit 0\n").unwrap();
    let policy = |grants: &str| {
        format!(
            "objective o {{ bound {{ exec \"/**\" }} }}\nplan p under o {{\n  step s {{\n{grants}  }}\n}}\n"
        )
    };
    let tool = d.join("tool").display().to_string();
    let script = d.join("run.sh").display().to_string();
    let ld = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";
    let build = |name: &str, text: String, json: bool| {
        std::fs::write(d.join(name), text).unwrap();
        let mut args = vec!["build", name];
        if json {
            args.extend(["--format", "json"]);
        }
        let o = kaplc_in(&d, &args);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{out}{err}");
        format!("{out}{err}")
    };
    // A link, and a program whose loader is not granted.
    let s = build(
        "link.kapl",
        policy(&format!("    grant exec \"{tool}\"\n")),
        false,
    );
    assert!(
        s.contains(&format!(
            "warning[KAPL0606]: exec grant names a symbolic link: `{tool}` resolves to `/usr/bin/true` here"
        )),
        "{s}"
    );
    assert!(
        s.contains("only if no step of the plan may create, write or delete the link"),
        "{s}"
    );
    assert!(
        s.contains(&format!(
            "warning[KAPL0607]: `{tool}` cannot start in step `s`: its loader `/lib64/ld-linux-x86-64.so.2` is not executable there"
        )),
        "{s}"
    );
    assert!(s.contains("`use runtime.loader` grants it"), "{s}");
    assert!(s.contains("2 warnings"), "{s}");
    // A script whose interpreter is not granted, in JSON.
    let s = build(
        "script.kapl",
        policy(&format!("    grant exec \"{script}\", \"{ld}\"\n")),
        true,
    );
    assert!(s.contains("\"KAPL0607\""), "{s}");
    assert!(
        s.contains(&format!(
            "`{script}` cannot start in step `s`: its interpreter `/bin/sh` is not executable there"
        )),
        "{s}"
    );
    assert!(!s.contains("KAPL0606"), "{s}");
    // The interpreter by the name its link resolves to, and the loader:
    // nothing to say.
    let s = build(
        "ok.kapl",
        policy(&format!(
            "    grant exec \"{script}\", \"/usr/bin/dash\", \"{ld}\"\n"
        )),
        false,
    );
    assert!(!s.contains("KAPL060"), "{s}");
}

/// The standard library names the loader by every path a system may use,
/// some of them symbolic links: that is not the policy author's to fix, so
/// no KAPL0606 points into it (a link the policy names still warns).
#[test]
fn links_the_standard_library_names_do_not_warn() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().canonicalize().unwrap();
    std::os::unix::fs::symlink("/usr/bin/true", d.join("tool")).unwrap();
    let tool = d.join("tool").display().to_string();
    std::fs::write(
        d.join("p.kapl"),
        format!(
            "use std.runtime\nobjective o {{ bound {{ exec \"/**\" use runtime.loader }} }}\nplan p under o {{\n  grant use runtime.loader\n  step s {{ grant exec \"{tool}\" }}\n}}\n"
        ),
    )
    .unwrap();
    let o = kaplc_in(&d, &["build", "p.kapl"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("warning[KAPL0606]").count(), 1, "{err}");
    assert!(!err.contains("<stdlib/runtime.kapl>:2"), "{err}");
    assert!(err.contains(&tool), "{err}");
}
