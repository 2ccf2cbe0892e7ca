//! `kaplc graph`: the authority chain of the shared examples, in DOT and
//! Mermaid; step order; errors and exit codes.

#![allow(clippy::panic, reason = "tests fail loudly")]

mod common;

use common::{NoColor, kaplc_in_root};
use std::process::Output;

fn kaplc(args: &[&str]) -> Output {
    kaplc_in_root(args, NoColor::Set)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `kaplc ARGS`, which must exit 0 (else fails with its stderr);
/// returns its stdout.
fn kaplc_ok(args: &[&str]) -> String {
    let out = kaplc(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

/// Writes `text` to `name` in a fresh temporary directory; returns the
/// directory (the file lives as long as it does) and the file's path.
fn policy_file(name: &str, text: &str) -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let f = tmp.path().join(name);
    std::fs::write(&f, text).unwrap_or_else(|e| panic!("{e}"));
    let path = f.display().to_string();
    (tmp, path)
}

#[test]
fn deploy_dot() {
    let dot = kaplc_ok(&["graph", "tests/examples/deploy.kapl"]);
    insta::assert_snapshot!(dot);
}

#[test]
fn one_plan_in_mermaid() {
    let mermaid = kaplc_ok(&[
        "graph",
        "tests/examples/upgrade-deps.kapl",
        "--plan",
        "bump",
        "--format",
        "mermaid",
    ]);
    insta::assert_snapshot!(mermaid);
}

#[test]
fn the_chain_is_complete_and_ordered() {
    // Every step and every grant statement of the plan appears, steps are
    // numbered in a valid order, and `after` edges read "then".
    let text = "objective o {\n  bound { fs read \"/a/**\" }\n}\nintent i under o {\n  bound { fs read \"/a/**\" }\n}\nplan p under i {\n  grant fs read \"/a/common\"\n  step last after mid, first { grant fs read \"/a/3\" }\n  step first { grant fs read \"/a/1\" }\n  step mid after first { grant fs read \"/a/2\" }\n}\nplan other under o {\n  step x { grant fs read \"/a/x\" }\n}\n";
    let (_tmp, fs) = policy_file("p.kapl", text);
    let dot = kaplc_ok(&["graph", &fs, "--plan", "p"]);
    assert!(dot.contains("label=\"1. step first\""), "{dot}");
    assert!(dot.contains("label=\"2. step mid\""), "{dot}");
    assert!(dot.contains("label=\"3. step last\""), "{dot}");
    for g in ["/a/common", "/a/1", "/a/2", "/a/3"] {
        assert!(dot.contains(&format!("\\\"{g}\\\"")), "{g} missing: {dot}");
    }
    assert!(!dot.contains("/a/x"), "another plan leaked in: {dot}");
    assert!(dot.contains("o0 -> i0 [label=\"bounds\"]"), "{dot}");
    assert!(dot.contains("i0 -> p0 [label=\"bounds\"]"), "{dot}");
    assert!(dot.contains("p0 -> p0s1 [label=\"starts\"]"), "{dot}");
    // `last` (s0) comes after `mid` (s2) and `first` (s1).
    assert!(dot.contains("p0s2 -> p0s0 [label=\"then\""), "{dot}");
    assert!(dot.contains("p0s1 -> p0s0 [label=\"then\""), "{dot}");
    assert!(dot.contains("p0s1 -> p0s2 [label=\"then\""), "{dot}");
    assert_eq!(dot.matches("label=\"then\"").count(), 3, "{dot}");
}

#[test]
fn errors_and_exit_codes() {
    let out = kaplc(&[
        "graph",
        "tests/examples/deploy.kapl",
        "--plan",
        "investgate",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean `investigate`?"), "{err}");

    let out = kaplc(&["graph", "tests/examples/names.kapl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("KAPL0301"));
    assert!(stdout(&out).is_empty());

    let out = kaplc(&["graph", "tests/examples/nope.kapl"]);
    assert_eq!(out.status.code(), Some(2));

    let out = kaplc(&["graph", "tests/examples/deploy.kapl", "--format", "svg"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn labels_are_escaped() {
    let text = "objective o {\n  about \"say \\\"hi\\\" <b> #1 \\\\ end\"\n  bound { fs read \"/a/**\" }\n}\nplan p under o {\n  step s { grant fs read \"/a/\\\"q\\\"\" }\n}\n";
    let (_tmp, fs) = policy_file("q.kapl", text);
    let dot = kaplc_ok(&["graph", &fs]);
    assert!(dot.contains(r#"say \"hi\" <b> #1 \\ end"#), "{dot}");
    assert!(dot.contains(r#"grant fs read \"/a/\\\"q\\\"\""#), "{dot}");
    let mm = kaplc_ok(&["graph", &fs, "--format", "mermaid"]);
    assert!(
        mm.contains("say #quot;hi#quot; #lt;b#gt; #35;1 \\ end"),
        "{mm}"
    );
    assert!(!mm.contains("\"hi\""), "{mm}");
}
