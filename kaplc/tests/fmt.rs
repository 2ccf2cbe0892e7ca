//! `kaplc fmt`: formats the shared examples into files that `--check`
//! accepts and that check exactly like the originals; refuses files with
//! syntax errors; exit codes.

#![allow(clippy::panic, reason = "tests fail loudly")]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn kaplc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kaplc"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("run kaplc: {e}"))
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "kapl"))
        .collect();
    v.sort();
    assert!(v.len() >= 5, "shared examples missing");
    v
}

/// What `kaplc check --format json` says, without positions: severity,
/// code, message, help, number of labels and witness of each finding, and
/// the exit code.
fn check_summary(path: &Path) -> (Option<i32>, Vec<String>) {
    let out = kaplc(&["check", "--format", "json", &path.display().to_string()]);
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check json of {}: {e}", path.display()));
    let mut items: Vec<String> = doc["diagnostics"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|d| {
            let mut line = format!(
                "{} {} {} | help: {} | labels: {} | witness: {}",
                d["severity"],
                d["code"],
                d["message"],
                d["help"],
                d["labels"].as_array().map_or(0, Vec::len),
                d["witness"]
            );
            // A network witness is one model of many: Z3 may pick another
            // address or port from run to run (it does under load), so only
            // its kind and operation are compared.
            let w = &d["witness"];
            if w["kind"] == "net" {
                let addr = w["addr"].as_str().unwrap_or("");
                let port = w["port"].to_string();
                line = line
                    .replace(addr, "<addr>")
                    .replace(&format!("port {port}"), "port <port>")
                    .replace(&format!("\"port\":{port}"), "\"port\":<port>");
            }
            line
        })
        .collect();
    items.sort();
    (out.status.code(), items)
}

#[test]
fn formatted_examples_pass_check_and_check_like_the_originals() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for src in examples() {
        let name = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("{e}"));
        let copy = tmp.path().join(&name);
        std::fs::write(&copy, &text).unwrap_or_else(|e| panic!("{e}"));
        let copy_s = copy.display().to_string();
        let out = kaplc(&["fmt", &copy_s]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let has_syntax_errors = kapl_syntax::parse(kapl_syntax::FileId(0), &text)
            .diagnostics
            .iter()
            .any(|d| d.is_error());
        if has_syntax_errors {
            assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
            assert!(
                stderr.contains("error["),
                "{name}: diagnostics expected: {stderr}"
            );
            assert!(
                stderr.contains("not formatted (it has syntax errors)"),
                "{stderr}"
            );
            let after = std::fs::read_to_string(&copy).unwrap_or_default();
            assert_eq!(after, text, "{name}: a file with errors was changed");
            continue;
        }
        assert_eq!(out.status.code(), Some(0), "{name}: {stderr}");
        let check = kaplc(&["fmt", "--check", &copy_s]);
        assert_eq!(
            check.status.code(),
            Some(0),
            "{name}: --check rejects the formatted file: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        assert_eq!(
            check_summary(&src),
            check_summary(&copy),
            "{name}: the formatted file checks differently"
        );
    }
}

#[test]
fn check_mode_reports_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let p = tmp.path().join("a.kapl");
    let messy = "objective o{bound{fs read \"/a/**\"}}\n";
    std::fs::write(&p, messy).unwrap_or_else(|e| panic!("{e}"));
    let ps = p.display().to_string();
    let out = kaplc(&["fmt", "--check", &ps]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a.kapl:1: not formatted"), "{err}");
    assert_eq!(std::fs::read_to_string(&p).unwrap_or_default(), messy);
    // Formatting fixes it, and a second run changes nothing.
    assert_eq!(kaplc(&["fmt", &ps]).status.code(), Some(0));
    let once = std::fs::read_to_string(&p).unwrap_or_default();
    assert_eq!(
        once,
        "objective o {\n  bound {\n    fs read \"/a/**\"\n  }\n}\n"
    );
    assert_eq!(kaplc(&["fmt", "--check", &ps]).status.code(), Some(0));
}

#[test]
fn stdin_to_stdout() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kaplc"))
        .args(["fmt", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(b"plan p under o { step s { grant exec \"/bin/x\" } } // done\n");
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "plan p under o {\n  step s {\n    grant exec \"/bin/x\"\n  }\n} // done\n"
    );
}

#[test]
fn unreadable_and_invalid_inputs() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let missing = tmp.path().join("missing.kapl").display().to_string();
    let out = kaplc(&["fmt", &missing]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("KAPL0001"));

    let dir = tmp.path().display().to_string();
    assert_eq!(kaplc(&["fmt", &dir]).status.code(), Some(2));

    let bin = tmp.path().join("bin.kapl");
    std::fs::write(&bin, [0xff, 0xfe, 0x00, 0x41]).unwrap_or_else(|e| panic!("{e}"));
    let out = kaplc(&["fmt", &bin.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("KAPL0002"));

    assert_eq!(
        kaplc(&["fmt"]).status.code(),
        Some(2),
        "no file is a usage error"
    );
}
