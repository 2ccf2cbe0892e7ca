//! `kaplc diff OLD NEW` end to end: widening exits 1 with witnesses,
//! narrowing exits 0 and lists what was removed, identical policies show no
//! change, and a policy that does not check exits 2.
#![allow(clippy::panic, reason = "tests fail by panicking")]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn example(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/examples")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    p
}

fn kaplc(args: &[&Path], json: bool) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kaplc"));
    c.arg("diff");
    if json {
        c.args(["--format", "json"]);
    }
    c.args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run kaplc: {e}"))
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

#[test]
fn identical_policies_have_no_changes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let old = write(dir.path(), "old.kapl", &example("deploy.kapl"));
    let new = write(dir.path(), "new.kapl", &example("deploy.kapl"));
    let o = kaplc(&[&old, &new], true);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_of(&o);
    assert_eq!(v["widens"], false);
    assert_eq!(v["changes"].as_array().map(Vec::len), Some(0));
}

#[test]
fn widening_a_grant_exits_1_with_a_witness() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = example("deploy.kapl");
    let widened = text.replace(
        r#"grant fs read "/var/log/web/deploy-*.log""#,
        r#"grant fs read "/var/log/web/*.log""#,
    );
    assert_ne!(text, widened);
    let old = write(dir.path(), "old.kapl", &text);
    let new = write(dir.path(), "new.kapl", &widened);
    let o = kaplc(&[&old, &new], true);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_of(&o);
    assert_eq!(v["widens"], true);
    let changes = v["changes"].as_array().cloned().unwrap_or_default();
    assert_eq!(changes.len(), 1, "{changes:#?}");
    let c = &changes[0];
    assert_eq!(c["plan"], "investigate");
    assert_eq!(c["step"], "read_logs");
    assert_eq!(c["change"], "added");
    assert_eq!(c["witness"]["kind"], "fs");
    assert_eq!(c["witness"]["right"], "read");
    let path = c["witness"]["path"].as_str().unwrap_or("");
    assert!(
        path.starts_with("/var/log/web/")
            && path.ends_with(".log")
            && !path.starts_with("/var/log/web/deploy-"),
        "{path}"
    );
    assert!(c["grant"]["line"].as_u64().is_some());

    // The same, in words.
    let o = kaplc(&[&old, &new], false);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("plan `investigate`, step `read_logs`: adds read `/var/log/web/"),
        "{text}"
    );
    assert!(text.contains("NEW widens authority"), "{text}");
}

#[test]
fn narrowing_exits_0_and_lists_removals() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = example("deploy.kapl");
    let narrowed = text
        .replace("grant net connect 10.20.5.7 port 5432\n", "")
        .replace(
            r#"grant exec "/usr/bin/{grep,tail}""#,
            r#"grant exec "/usr/bin/grep""#,
        );
    let old = write(dir.path(), "old.kapl", &text);
    let new = write(dir.path(), "new.kapl", &narrowed);
    let o = kaplc(&[&old, &new], true);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let v = json_of(&o);
    assert_eq!(v["widens"], false);
    let changes = v["changes"].as_array().cloned().unwrap_or_default();
    assert_eq!(changes.len(), 2, "{changes:#?}");
    assert!(changes.iter().all(|c| c["change"] == "removed"));
    let net = changes
        .iter()
        .find(|c| c["witness"]["kind"] == "net")
        .cloned()
        .unwrap_or_default();
    assert_eq!(net["step"], "restart");
    assert_eq!(net["witness"]["addr"], "10.20.5.7");
    assert_eq!(net["witness"]["port"], 5432);
    let exec = changes
        .iter()
        .find(|c| c["witness"]["kind"] == "exec")
        .cloned()
        .unwrap_or_default();
    assert_eq!(exec["witness"]["path"], "/usr/bin/tail");
}

#[test]
fn new_steps_and_plans_count_as_added() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = example("deploy.kapl");
    let more = text.replace(
        "  step restart after patch_config {",
        "  step inspect after patch_config {\n    grant fs read \"/srv/web/config/*.yaml\"\n  }\n  step restart after patch_config {",
    );
    let old = write(dir.path(), "old.kapl", &text);
    let new = write(dir.path(), "new.kapl", &more);
    let o = kaplc(&[&old, &new], true);
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    let steps: Vec<&str> = v["changes"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["step"].as_str()).collect())
        .unwrap_or_default();
    assert!(steps.contains(&"inspect"), "{v:#}");
    // Reversed: the step's authority is removed; nothing widens.
    let o = kaplc(&[&new, &old], true);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn a_policy_that_does_not_check_exits_2() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let old = write(dir.path(), "old.kapl", &example("deploy.kapl"));
    let new = write(dir.path(), "new.kapl", &example("bad-syntax.kapl"));
    let o = kaplc(&[&old, &new], false);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not check"));
    let missing = dir.path().join("missing.kapl");
    assert_eq!(kaplc(&[&old, &missing], false).status.code(), Some(2));
}
