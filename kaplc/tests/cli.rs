//! `kaplc check` end to end: exit codes, JSON shape, colour switches and
//! hostile inputs. Runs the real binary from the repository root.
#![allow(clippy::panic, reason = "tests fail by panicking")]

mod common;

use common::{NoColor, kaplc_in_root, root};
use serde_json::Value;
use std::process::{Command, Output};

fn kaplc(args: &[&str]) -> Output {
    kaplc_in_root(args, NoColor::Unset)
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn json(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["check", "--format", "json"];
    all.extend_from_slice(args);
    let o = kaplc(&all);
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)));
    (code(&o), v)
}

fn codes(v: &Value) -> Vec<String> {
    v["diagnostics"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| d["code"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn examples_exit_codes() {
    for (f, want) in [
        ("tests/examples/deploy.kapl", 0),
        ("tests/examples/upgrade-deps.kapl", 0),
        ("tests/examples/python-repo.kapl", 0),
        ("tests/examples/rust-crate.kapl", 0),
        ("tests/examples/release.kapl", 0),
        ("tests/examples/names.kapl", 1),
        ("tests/examples/bad-syntax.kapl", 1),
    ] {
        let o = kaplc(&["check", "--color", "never", f]);
        assert_eq!(
            code(&o),
            want,
            "{f}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn overreach_has_no_front_end_errors() {
    let (_, v) = json(&["tests/examples/overreach.kapl"]);
    for c in codes(&v) {
        assert!(
            c.as_str() >= "KAPL0400",
            "front-end finding {c} in overreach.kapl"
        );
    }
}

#[test]
fn json_shape_is_exact() {
    let (c, v) = json(&["tests/examples/names.kapl"]);
    assert_eq!(c, 1);
    assert_eq!(v["ok"], Value::Bool(false));
    let obj = v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
    assert_eq!(
        obj,
        Some(vec![
            "diagnostics".to_string(),
            "ok".to_string(),
            "params".to_string(),
            "schema_version".to_string()
        ])
    );
    assert_eq!(v["schema_version"], 1);
    let diags = v["diagnostics"].as_array().cloned().unwrap_or_default();
    assert_eq!(diags.len(), 8);
    let mut keys: Vec<String> = diags[0]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    assert_eq!(
        keys,
        [
            "code",
            "column",
            "end_column",
            "end_line",
            "file",
            "help",
            "labels",
            "line",
            "message",
            "severity",
            "witness"
        ]
    );
    // The duplicate `dup`: line 10, column 11..14, with both labels.
    let d = &diags[0];
    assert_eq!(d["code"], "KAPL0302");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["file"], "tests/examples/names.kapl");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(10), Some(11))
    );
    assert_eq!(
        (d["end_line"].as_u64(), d["end_column"].as_u64()),
        (Some(10), Some(14))
    );
    assert_eq!(d["witness"], Value::Null);
    let labels = d["labels"].as_array().cloned().unwrap_or_default();
    assert_eq!(labels.len(), 2);
    assert_eq!(labels[1]["line"].as_u64(), Some(9));
    let mut lkeys: Vec<String> = labels[0]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    lkeys.sort();
    assert_eq!(
        lkeys,
        [
            "column",
            "end_column",
            "end_line",
            "file",
            "line",
            "message"
        ]
    );
    // help is a string or null.
    assert!(
        diags
            .iter()
            .all(|d| d["help"].is_string() || d["help"].is_null())
    );
    let (c, v) = json(&["tests/examples/deploy.kapl"]);
    assert_eq!(c, 0);
    assert_eq!(v["ok"], Value::Bool(true));
}

#[test]
fn usage_and_io_problems_exit_2() {
    assert_eq!(code(&kaplc(&["check"])), 2);
    assert_eq!(code(&kaplc(&["check", "--frobnicate", "x"])), 2);
    assert_eq!(code(&kaplc(&["check", "--color", "sometimes", "x"])), 2);
    assert_eq!(code(&kaplc(&["frobnicate"])), 2);
    assert_eq!(code(&kaplc(&[])), 2);
    assert_eq!(code(&kaplc(&["--help"])), 0);
    assert_eq!(code(&kaplc(&["check", "--help"])), 0);
    let o = kaplc(&["check", "no/such/file.kapl"]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("KAPL0001"));
    assert_eq!(code(&kaplc(&["check", "tests"])), 2);
    // An unreadable file wins over a policy error in another file.
    assert_eq!(
        code(&kaplc(&["check", "tests/examples/names.kapl", "nope.kapl"])),
        2
    );
    let (c, v) = json(&["nope.kapl", "tests/examples/deploy.kapl"]);
    assert_eq!((c, v["ok"].clone()), (2, Value::Bool(false)));
    assert_eq!(codes(&v), ["KAPL0001"]);
}

#[test]
fn colour_switches() {
    let esc = |o: &Output| o.stderr.contains(&0x1b);
    let f = "tests/examples/names.kapl";
    assert!(esc(&kaplc(&["check", "--color", "always", f])));
    assert!(!esc(&kaplc(&["check", "--color", "never", f])));
    // Not a terminal: auto means no colour.
    assert!(!esc(&kaplc(&["check", f])));
    let o = Command::new(env!("CARGO_BIN_EXE_kaplc"))
        .args(["check", "--color", "auto", f])
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!esc(&o));
}

#[test]
fn several_files_are_checked_independently() {
    let o = kaplc(&[
        "check",
        "--color",
        "never",
        "tests/examples/deploy.kapl",
        "tests/examples/names.kapl",
    ]);
    assert_eq!(code(&o), 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("tests/examples/deploy.kapl: ok"), "{err}");
    assert!(
        err.contains("tests/examples/names.kapl: 8 errors, 0 warnings"),
        "{err}"
    );
}

/// Writes `bytes` to a fresh file and checks it; returns (exit, stderr, JSON codes).
fn check_bytes(bytes: &[u8]) -> (i32, String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("input.kapl");
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
    let p = path.to_string_lossy().into_owned();
    let human = kaplc(&["check", "--color", "never", &p]);
    let (c, v) = json(&[&p]);
    assert_eq!(code(&human), c, "both formats agree on the exit code");
    let err = String::from_utf8_lossy(&human.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (c, err, codes(&v))
}

const CLEAN: &str = "objective o {\n  bound { fs read \"/srv/**\" }\n}\n";

#[test]
fn bad_input_empty_bom_crlf() {
    let (c, _, k) = check_bytes(b"");
    assert_eq!((c, k), (0, vec!["KAPL0010".to_string()]));
    let (c, _, k) = check_bytes(format!("\u{feff}{CLEAN}").as_bytes());
    assert_eq!((c, k), (0, Vec::<String>::new()));
    let (c, _, k) = check_bytes(CLEAN.replace('\n', "\r\n").as_bytes());
    assert_eq!((c, k), (0, Vec::<String>::new()));
    // A CRLF file's errors are on the right line.
    let (c, err, _) = check_bytes(b"objective o {\r\n  bound { fs read \"rel\" }\r\n}\r\n");
    assert_eq!(c, 1);
    assert!(err.contains("input.kapl:2:"), "{err}");
}

#[test]
fn bad_input_bytes() {
    let (c, _, k) = check_bytes(b"objective o { bound { fs read \"/\xc3\x28\" } }");
    assert_eq!((c, k), (1, vec!["KAPL0002".to_string()]));
    let (c, _, k) = check_bytes(b"\0\0\0\0");
    assert_eq!(c, 1);
    assert!(k.iter().all(|k| k == "KAPL0106"), "{k:?}");
    let (c, _, k) = check_bytes(&[0xff; 4096]);
    assert_eq!((c, k), (1, vec!["KAPL0002".to_string()]));
    let (c, _, k) = check_bytes(b"objective o { bound { fs read \"/srv/**\" } } /* open");
    assert_eq!((c, k), (1, vec!["KAPL0105".to_string()]));
    let (c, _, k) = check_bytes(b"objective o { about \"open");
    assert_eq!(c, 1);
    assert!(k.contains(&"KAPL0104".to_string()), "{k:?}");
}

#[test]
fn bad_input_huge_and_deep() {
    // 50,000 nested braces: a diagnostic, no stack overflow.
    let deep = format!("objective o {}{}", "{".repeat(50_000), "}".repeat(50_000));
    let (c, _, k) = check_bytes(deep.as_bytes());
    assert_eq!(c, 1);
    assert!(!k.is_empty());
    // A 200,000-character identifier is just a long name.
    let long = "x".repeat(200_000);
    let (c, _, k) =
        check_bytes(format!("objective {long} {{ bound {{ fs read \"/a\" }} }}\n").as_bytes());
    assert_eq!((c, k), (0, Vec::<String>::new()));
    let (c, err, k) = check_bytes(format!("plan p under {long} {{ }}\n").as_bytes());
    assert_eq!((c, k), (1, vec!["KAPL0301".to_string()]));
    assert!(err.len() < 2_000_000);
    // 10 MB of policy: checked, not refused.
    let mut big = String::with_capacity(10 << 20);
    let mut i = 0;
    while big.len() < 10 << 20 {
        big.push_str(&format!("authority a{i} {{ fs read \"/srv/{i}/**\" }}\n"));
        i += 1;
    }
    big.push_str("objective o {\n  bound {\n");
    for j in 0..i {
        big.push_str(&format!("    use a{j}\n"));
    }
    // One mistake at the very end: found after reading all 10 MB, and the
    // proofs (whose cost is measured by the prover's bench) do not run.
    big.push_str("  }\n}\nplan p under nowhere { }\n");
    let (c, _, k) = check_bytes(big.as_bytes());
    assert_eq!((c, k), (1, vec!["KAPL0301".to_string()]));
    // Past the size limit: refused with its own code.
    let over = vec![b' '; kapl_check_limit() + 1];
    let (c, _, k) = check_bytes(&over);
    assert_eq!((c, k), (1, vec!["KAPL0003".to_string()]));
}

fn kapl_check_limit() -> usize {
    64 << 20
}

#[test]
fn odd_paths_exit_2() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("f.kapl");
    std::fs::write(&file, CLEAN).unwrap_or_else(|e| panic!("{e}"));
    // A path through a regular file: not a directory.
    let through = file.join("x.kapl");
    assert_eq!(code(&kaplc(&["check", &through.to_string_lossy()])), 2);
    // A dangling symlink.
    let link = dir.path().join("dangling.kapl");
    let _ = std::os::unix::fs::symlink(dir.path().join("gone"), &link);
    assert_eq!(code(&kaplc(&["check", &link.to_string_lossy()])), 2);
    // The directory itself.
    assert_eq!(code(&kaplc(&["check", &dir.path().to_string_lossy()])), 2);
    // Works from any directory: stdlib is embedded, paths are the user's.
    let o = Command::new(env!("CARGO_BIN_EXE_kaplc"))
        .args(["check", "f.kapl"])
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code(&o), 0);
    std::fs::write(
        dir.path().join("g.kapl"),
        "use std.runtime\nobjective o { bound { use runtime.loader } }\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let o = Command::new(env!("CARGO_BIN_EXE_kaplc"))
        .args(["check", "g.kapl"])
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
}
