//! Kernel tests of `kapl-run` on the real kernel (root): each grant kind
//! allowed and denied with the audit record checked, step order, refused
//! steps, processes outside the session unaffected, fail-closed paths.
//! A missing kernel feature makes these FAIL, never skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
use common::*;
use kapl_syntax::ast::{NetOp, Right};
use serde_json::json;

fn s(o: &std::process::Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn fs_read_allowed_and_denied_with_audit_record() {
    let t = Tmp::new("fs");
    t.write("granted/a.txt", "hello\n");
    t.write("denied/b.txt", "secret\n");
    let img = t.path("p.kapi");
    std::fs::write(
        &img,
        image(PolicySpec {
            plan: "p",
            plan_grants: vec![],
            steps: vec![StepSpec {
                name: "look",
                after: vec![],
                grants: vec![
                    G::Fs(&[Right::Read], vec![format!("{}/granted/**", t.0.display())], vec![]),
                    G::Exec(vec!["/usr/bin/cat".into()]),
                ],
            }],
        }),
    )
    .unwrap();
    let audit = t.0.join("audit.jsonl");
    let ok = one_shot(img.as_ref(), "p", None, &audit, &["cat", &t.path("granted/a.txt")]);
    let (out, err) = s(&ok);
    assert_eq!(ok.status.code(), Some(0), "stderr: {err}");
    assert_eq!(out, "hello\n");
    let denied = one_shot(img.as_ref(), "p", None, &audit, &["cat", &t.path("denied/b.txt")]);
    let (out, err) = s(&denied);
    assert_eq!(denied.status.code(), Some(1), "stderr: {err}");
    assert_eq!(out, "");
    let b = t.path("denied/b.txt");
    assert!(
        err.contains(&format!("denied: cat read (read_file) {b} — no grant of step look (plan p, objective o) covers it")),
        "stderr: {err}"
    );
    let recs = records(&audit);
    let exec_allow = recs.iter().find(|r| r["operation"] == "exec" && r["verdict"] == "allow").expect("exec allow record");
    assert_eq!(exec_allow["object"], "/usr/bin/cat");
    assert_eq!(exec_allow["grant"]["text"], "exec \"/usr/bin/cat\"");
    assert_eq!(exec_allow["grant"]["source"], "test.kapl:10:11");
    assert_eq!(exec_allow["mechanism"], "tracepoint");
    let d = recs.iter().find(|r| r["verdict"] == "deny").expect("deny record");
    let mut d = d.clone();
    let pid = d["pid"].as_i64().expect("pid");
    assert!(pid > 0);
    for k in ["time", "pid", "session"] {
        d.as_object_mut().unwrap().remove(k);
    }
    assert_eq!(
        d,
        json!({
            "comm": "cat",
            "exe": "/usr/bin/cat",
            "operation": "read (read_file)",
            "object": b,
            "verdict": "deny",
            "grant": null,
            "step": "look",
            "plan": "p",
            "intent": null,
            "objective": "o",
            "reason": "no grant of step look (plan p, objective o) covers it",
            "nearest": {
                "id": 5,
                "source": "test.kapl:9:11",
                "site": "test.kapl:9",
                "text": format!("fs read \"{}/granted/**\"", t.0.display()),
                "step": "look",
                "why": format!("it covers other paths under {}", t.0.display()),
            },
            "mechanism": "landlock",
        })
    );
    assert_no_leftover_cgroups();
}
