//! `kaplc check` end to end: exit codes, JSON shape, colour switches and
//! hostile inputs. Runs the real binary from the repository root.
#![allow(clippy::panic, reason = "tests fail by panicking")]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn kaplc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kaplc"))
        .args(args)
        .current_dir(root())
        .env_remove("NO_COLOR")
        .output()
        .unwrap_or_else(|e| panic!("cannot run kaplc: {e}"))
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
    assert_eq!(obj, Some(vec!["diagnostics".to_string(), "ok".to_string()]));
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
