//! The committed schemas in `schemas/` are the ones the types generate,
//! and real records and messages validate against them (and broken ones
//! do not: the check can fail).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use kapl_runtime::protocol::{Reply, Request};
use kapl_runtime::record::{AuditRecord, CommandExit, Mechanism, Target};
use kapl_runtime::report::{CommandStart, Decision, Origin, Reporter};
use kapl_runtime::schemas::Document;
use serde_json::Value;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn committed(d: Document) -> String {
    let p = root()
        .join("schemas")
        .join(format!("{}.schema.json", d.name()));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn validator(d: Document) -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&committed(d)).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", d.name()))
}

#[test]
fn committed_schemas_are_the_generated_ones() {
    for d in Document::ALL {
        assert!(
            committed(d) == d.schema_text(),
            "schemas/{}.schema.json is stale; regenerate the runtime's schemas with\n  cargo run -p kapl-runtime-bpf --bin kapl-run -- schema --all --out schemas",
            d.name()
        );
    }
}

/// A real image: a small policy compiled by the front end and codegen.
fn image() -> kapl_image::Image {
    let text = "objective o {\n  bound { fs read \"/srv/**\" net connect 10.0.0.0/8 port 80 }\n}\nintent i under o {\n  bound { fs read \"/srv/**\" net connect 10.0.0.0/8 port 80 }\n}\nplan p under i {\n  step a { grant fs read \"/srv/a/**\" }\n  step b after a { grant net connect 10.0.0.1 port 80 }\n}\n";
    let mut loader = kapl_check::MemoryLoader::new().with("/t.kapl", text);
    let fe = kapl_check::check_front(&mut loader, "/t.kapl");
    let policy = fe.policy.expect("the policy checks");
    let out = kapl_codegen::compile(
        &policy,
        &fe.sources,
        &kapl_codegen::Options {
            policy: "t".into(),
            compiler: "test".into(),
        },
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    out.image
}

fn decision(
    step: u32,
    target: Target,
    grant: Option<u32>,
    nearest: Option<(u32, String)>,
) -> Decision {
    Decision {
        cmd: Some(1),
        step,
        pid: Some(42),
        comm: "cat".into(),
        exe: Some("/usr/bin/cat".into()),
        operation: "read (read_file)".into(),
        target,
        grant,
        nearest,
        mechanism: Mechanism::Landlock,
        audit_serial: Some(7),
        narrowed: None,
        why: None,
    }
}

#[test]
fn records_of_a_real_image_validate_and_broken_ones_do_not() {
    let img = image();
    let origin = Origin {
        session: "0a1b2c3d".into(),
        host: "h".into(),
        uid: 1000,
    };
    let mut r = Reporter::new(origin, 0);
    let now = std::time::SystemTime::now();
    let path = |p: &str| Target::Path {
        path: Some(p.into()),
        dev: Some("vda".into()),
        ino: Some(3),
    };
    let mut recs: Vec<AuditRecord> = Vec::new();
    let deny = r
        .report(
            &img,
            decision(0, path("/srv/b/x"), None, Some((0, "near".into()))),
            now,
        )
        .expect("a denial is reported");
    assert!(deny.notice.deny);
    assert!(
        deny.notice.line.starts_with("denied: cat read (read_file) /srv/b/x — no grant of step a (plan p, intent i, objective o) covers it; nearest: grant 0"),
        "{}",
        deny.notice.line
    );
    recs.push(AuditRecord::Decision(Box::new(deny.record)));
    let allow = r
        .report(&img, decision(0, path("/srv/a/x"), Some(0), None), now)
        .expect("a first allow is reported");
    assert!(
        allow
            .notice
            .line
            .contains("allowed: cat read (read_file) /srv/a/x — grant 0"),
        "{}",
        allow.notice.line
    );
    recs.push(AuditRecord::Decision(Box::new(allow.record)));
    assert!(
        r.report(&img, decision(0, path("/srv/a/x"), Some(0), None), now)
            .is_none(),
        "the same allow is reported once"
    );
    let endpoint = Target::Endpoint {
        address: "10.0.0.2".parse().ok(),
        port: 80,
        protocol: kapl_runtime::record::Protocol::Tcp,
    };
    recs.push(AuditRecord::Decision(Box::new(
        r.report(&img, decision(1, endpoint, None, None), now)
            .unwrap()
            .record,
    )));
    recs.push(AuditRecord::Decision(Box::new(r.unattributed_exec(
        &img,
        Some(3),
        0,
        42,
        "sh",
        Target::Program {
            path: "/bin/sh".into(),
            truncated: false,
        },
        now,
    ))));
    recs.push(AuditRecord::Lost(
        r.lost(kapl_runtime::losses::Losses::default(), now),
    ));
    recs.push(AuditRecord::Level(r.level(4, 7, 4, true, now)));
    let argv = [b"cat".to_vec(), b"/srv/<a>".to_vec()];
    for (cmd, pid, exit) in [
        (3, Some(42), CommandExit::Exited { code: 1 }),
        (
            4,
            Some(43),
            CommandExit::Killed {
                signal: 9,
                name: Some("SIGKILL".into()),
            },
        ),
        (5, None, CommandExit::Refused),
        (
            6,
            None,
            CommandExit::NotStarted {
                error: "fork: out of memory".into(),
            },
        ),
        (7, Some(44), CommandExit::Unknown),
    ] {
        let start = CommandStart {
            cmd,
            pid,
            step: 0,
            argv: &argv,
            program: b"/usr/bin/cat",
            cwd: (cmd == 3).then_some(&b"/srv"[..]),
        };
        recs.push(AuditRecord::CommandStarted(Box::new(
            r.command_started(&img, &start, now),
        )));
        recs.push(AuditRecord::CommandEnded(Box::new(r.command_ended(
            &img,
            cmd,
            pid,
            0,
            exit,
            12,
            cmd == 4,
            now,
        ))));
    }
    assert_eq!((r.denies, r.allows), (2, 1));
    let v = validator(Document::AuditRecord);
    for rec in &recs {
        let j = serde_json::to_value(rec).unwrap();
        assert!(
            v.is_valid(&j),
            "{j:#}: {:?}",
            v.iter_errors(&j).map(|e| e.to_string()).collect::<Vec<_>>()
        );
        let back: AuditRecord = serde_json::from_value(j.clone()).unwrap();
        assert_eq!(&back, rec, "a record reads back as written");
        // Every field removed or given another type is refused.
        for key in j.as_object().unwrap().keys() {
            let mut broken = j.clone();
            // Another type: an array, or for an array field (the level
            // record's losses) a string.
            broken[key] = if j[key].is_array() {
                Value::String(String::new())
            } else {
                Value::Array(vec![])
            };
            assert!(
                !v.is_valid(&broken),
                "{key} as another type passed: {broken:#}"
            );
        }
    }
    let mut bad_version = serde_json::to_value(&recs[0]).unwrap();
    bad_version["schema_version"] = 2.into();
    assert!(!v.is_valid(&bad_version));
}

#[test]
fn control_messages_validate_and_unknown_ones_do_not() {
    let req = validator(Document::ControlRequest);
    for r in [
        Request::Exec {
            argv: vec![b"ls".to_vec()],
            env: vec![],
            cwd: b"/".to_vec(),
            show_allows: false,
        },
        Request::Step { name: "b".into() },
        Request::Stop,
        Request::Status,
    ] {
        assert!(req.is_valid(&serde_json::to_value(&r).unwrap()), "{r:?}");
    }
    assert!(!req.is_valid(&serde_json::json!({"op": "nosuch"})));
    assert!(!req.is_valid(&serde_json::json!({"op": "step"})));
    let rep = validator(Document::ControlReply);
    for r in [
        Reply::Notice {
            line: "x".into(),
            record: None,
        },
        Reply::Exit { code: 3 },
        Reply::Ok {
            message: "m".into(),
        },
        Reply::Error {
            code: "KAPL0806".into(),
            message: "m".into(),
            help: Some("h".into()),
            exit: 125,
        },
    ] {
        assert!(rep.is_valid(&serde_json::to_value(&r).unwrap()), "{r:?}");
    }
    assert!(!rep.is_valid(&serde_json::json!({"kind": "exit", "code": "x"})));
}
