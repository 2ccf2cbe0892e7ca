//! The malformed-policy corpus: every `tests/malformed/*.kapl` is one
//! generated test (see `build.rs`). Each file's first line says what to
//! expect (`// expect: ok` or `// expect: KAPL0301 KAPL0304`); the test checks
//! the codes `kaplc check` reports, the exit code that follows from their
//! severities, and snapshots the rendered diagnostics (colour off).
#![allow(clippy::panic, reason = "tests fail by panicking")]

mod common;

use common::{NoColor, kaplc_in_root, root};
use serde_json::Value;

fn run_malformed(name: &str) {
    let rel = format!("tests/malformed/{name}");
    let bytes = std::fs::read(root().join(&rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let text = String::from_utf8_lossy(&bytes);
    let header = text
        .trim_start_matches('\u{feff}')
        .lines()
        .next()
        .and_then(|l| l.trim().strip_prefix("// expect:"))
        .unwrap_or_else(|| panic!("{rel}: first line must be `// expect: ...`"))
        .trim()
        .to_string();
    let mut want: Vec<String> = if header == "ok" {
        Vec::new()
    } else {
        header.split_whitespace().map(str::to_string).collect()
    };
    want.sort();
    want.dedup();

    let kaplc = |args: &[&str]| kaplc_in_root(args, NoColor::Unset);
    let json = kaplc(&["check", "--format", "json", &rel]);
    let doc: Value =
        serde_json::from_slice(&json.stdout).unwrap_or_else(|e| panic!("{rel}: bad JSON: {e}"));
    let diags = doc["diagnostics"].as_array().cloned().unwrap_or_default();
    let mut got: Vec<String> = diags
        .iter()
        .filter_map(|d| d["code"].as_str().map(str::to_string))
        .collect();
    got.sort();
    got.dedup();
    assert_eq!(got, want, "{rel}: codes reported vs. the header");
    let has_error = diags.iter().any(|d| d["severity"] == "error");
    assert_eq!(
        json.status.code(),
        Some(i32::from(has_error)),
        "{rel}: exit code"
    );
    assert_eq!(doc["ok"], Value::Bool(!has_error), "{rel}: ok");

    let human = kaplc(&["check", "--color", "never", &rel]);
    assert_eq!(
        human.status.code(),
        json.status.code(),
        "{rel}: same exit code for both formats"
    );
    let shown = format!(
        "exit: {}\n{}",
        human.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&human.stderr)
    );
    let root_text = regex_escape(&root().to_string_lossy());
    insta::with_settings!({
        snapshot_path => "snapshots/malformed",
        prepend_module_to_snapshot => false,
        filters => vec![(root_text.as_str(), "[ROOT]")],
    }, {
        insta::assert_snapshot!(name.trim_end_matches(".kapl"), shown);
    });
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

include!(concat!(env!("OUT_DIR"), "/malformed_tests.rs"));
