//! `kapl-run hook claude-code` fed recorded PreToolUse events
//! (`tests/fixtures/claude-code/*.json`): a Bash call is rewritten to run
//! in a real session (root, real kernel: the rewritten command is run and
//! its denial seen) or denied without one; other tools get no decision;
//! malformed input is denied. Only the first test needs the kernel.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
use common::*;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/claude-code")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs the hook with `input` on stdin; `session` as `--session`, and
/// `env` set.
fn hook(input: &[u8], session: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(kapl_run());
    c.args(["hook", "claude-code"]);
    if let Some(s) = session {
        c.args(["--session", s]);
    }
    c.env_remove("KAPL_SESSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("spawn kapl-run hook");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// The hook's decision (asserted: exit 0, one JSON object on stdout).
fn decision(o: &Output) -> Value {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(0), "stderr: {err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(
        v["hookSpecificOutput"]["hookEventName"], "PreToolUse",
        "{v}"
    );
    v["hookSpecificOutput"].clone()
}

#[test]
fn a_bash_call_is_rewritten_to_run_in_the_session() {
    let t = Tmp::new("hook");
    let s = Session::of_spec(
        &t,
        one_step(
            vec![],
            "work",
            vec![G::Exec(vec!["/usr/bin/bash".into(), "/usr/bin/cat".into()])],
        ),
    );
    let event = fixture("bash.json");
    let original: Value = serde_json::from_slice(&event).unwrap();
    // Named with --session, and found through KAPL_SESSION: the same.
    let d = decision(&hook(&event, Some(&s.id), &[]));
    assert_eq!(d, decision(&hook(&event, None, &[("KAPL_SESSION", &s.id)])));
    assert_eq!(d["permissionDecision"], "allow", "{d}");
    assert!(
        d["permissionDecisionReason"]
            .as_str()
            .unwrap()
            .contains(&s.id)
    );
    let input = &d["updatedInput"];
    // The other fields are kept as they were.
    for k in ["description", "timeout"] {
        assert_eq!(input[k], original["tool_input"][k], "{k}");
    }
    let command = input["command"].as_str().unwrap();
    let prefix = format!("'{}' exec --session '{}' -- bash -c '", kapl_run(), s.id);
    assert!(command.starts_with(&prefix), "{command}");

    // Run it as Claude Code's Bash tool would: the original command's
    // words come through intact, and it runs confined (its read of
    // /etc/hostname, which the step does not grant, is denied).
    let o = Command::new("bash")
        .args(["-c", command])
        .current_dir(&t.0)
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .env_remove("KAPL_SESSION")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(out, "it's|$HOME|a\\\\b|42|done\n", "stderr: {err}");
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains("denied: cat read (read_file) /etc/hostname — no grant of step work"),
        "{err}"
    );
    // Outside the session the same command reads it.
    let o = Command::new("bash")
        .args(["-c", original["tool_input"]["command"].as_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    s.stop();
}

#[test]
fn a_bash_call_without_a_session_is_denied_and_not_run() {
    // A session id nobody serves (not the only running one: other tests
    // may have sessions).
    let o = hook(&fixture("bash.json"), Some("0badc0de"), &[]);
    let d = decision(&o);
    assert_eq!(d["permissionDecision"], "deny", "{d}");
    assert!(d.get("updatedInput").is_none());
    let reason = d["permissionDecisionReason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "no KAPL session is running: ask the user to start one with `kapl-run session start"
        ),
        "{reason}"
    );
    assert!(reason.contains("the command was not run"), "{reason}");
    assert!(reason.contains("0badc0de"), "{reason}");
}

#[test]
fn other_tools_get_no_decision() {
    let o = hook(&fixture("read.json"), Some("0badc0de"), &[]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o), (String::new(), String::new()));
}

#[test]
fn malformed_input_is_denied_never_allowed() {
    for input in [
        fixture("malformed.json"),
        fixture("bash-no-command.json"),
        Vec::new(),
        b"\xff\xfe".to_vec(),
    ] {
        let d = decision(&hook(&input, Some("0badc0de"), &[]));
        assert_eq!(d["permissionDecision"], "deny", "{d}");
        assert!(
            d["permissionDecisionReason"]
                .as_str()
                .unwrap()
                .starts_with("KAPL hook: "),
            "{d}"
        );
    }
}

/// The book's JSON snippets (settings, `.mcp.json`, examples) are JSON,
/// and the settings install this hook and this server.
#[test]
fn the_books_settings_snippets_install_the_hook_and_the_server() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../book/src/agents.md");
    let page = std::fs::read_to_string(&p).unwrap();
    // Fenced ```json blocks, indented ones (in a list) included.
    let mut docs: Vec<Value> = Vec::new();
    let mut block: Option<String> = None;
    for line in page.lines().map(str::trim) {
        match (&mut block, line) {
            (None, "```json") => block = Some(String::new()),
            (Some(b), "```") => {
                docs.push(serde_json::from_str(b).unwrap_or_else(|e| panic!("{e}:\n{b}")));
                block = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(docs.len() >= 4, "{}", docs.len());
    let hook = docs
        .iter()
        .find(|d| d.get("hooks").is_some())
        .expect("the settings snippet");
    let entry = &hook["hooks"]["PreToolUse"][0];
    assert_eq!(entry["matcher"], "Bash");
    assert_eq!(entry["hooks"][0]["type"], "command");
    assert_eq!(entry["hooks"][0]["command"], "kapl-run hook claude-code");
    let mcp = docs
        .iter()
        .find(|d| d.get("mcpServers").is_some())
        .expect("the .mcp.json snippet");
    assert_eq!(mcp["mcpServers"]["kapl"]["command"], "kapl-run");
    assert_eq!(
        mcp["mcpServers"]["kapl"]["args"],
        serde_json::json!(["mcp"])
    );
}
