//! Sessions pinned to an objective, on the real kernel (root): plans
//! proposed and loaded during the session, each checked by the runtime's
//! own checker before it takes effect; forged and foreign plan images
//! refused; denials explained against the objective.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The compiler beside kapl-run (`cargo build -p kaplc`; `scripts/test`
/// builds it): `plan propose` runs it.
fn kaplc() -> PathBuf {
    let p = Path::new(kapl_run()).with_file_name("kaplc");
    assert!(
        p.is_file(),
        "kaplc is missing beside kapl-run ({}): build it with `cargo build -p kaplc` (scripts/test does)",
        p.display()
    );
    p
}

#[track_caller]
fn kaplc_build(args: &[&str]) {
    let o = Command::new(kaplc())
        .arg("build")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "kaplc build {args:?}: {}",
        text(&o).1
    );
}

/// The project the tests work on, and its objective image.
struct Project {
    t: Tmp,
    obj: String,
}

fn project(tag: &str) -> Project {
    let t = Tmp::new(tag);
    t.write("proj/src/a.txt", "alpha\n");
    t.write("proj/notes.txt", "notes\n");
    t.write("proj/.env", "SECRET=hunter2\n");
    let root = t.path("proj");
    t.write(
        "obj.kapl",
        &format!(
            r#"use std.runtime
objective tidy {{
  about "Tidy the project"
  bound {{
    fs read "{root}/**"
    fs write, create "{root}/src/**"
    exec "/usr/bin/{{cat,sleep}}"
    net connect 127.0.0.1 port 8000
    use runtime.loader
  }}
  never {{ fs read "{root}/**/.env" }}
}}
"#
        ),
    );
    let obj = t.path("obj.kapi");
    kaplc_build(&[&t.path("obj.kapl"), "-o", &obj]);
    Project { t, obj }
}

/// A pinned session: its id (stopped when the guard drops).
fn start_pinned(obj: &str, audit: &str) -> SessionGuard {
    let o = kapl(&[
        "session",
        "start",
        obj,
        "--objective",
        "tidy",
        "--audit",
        audit,
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "session start: {err}");
    assert!(err.contains("no plan loaded"), "{err}");
    SessionGuard(out.trim().to_string())
}

fn exec(id: &str, cmd: &[&str]) -> Output {
    let mut a = vec!["exec", "--session", id, "--"];
    a.extend(cmd);
    kapl(&a)
}

/// `plan propose --format json` of `text` on stdin: (exit, JSON).
fn propose(id: &str, text: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut c = Command::new(kapl_run());
    c.args(["plan", "propose", "--session", id, "--format", "json"])
        .args(extra)
        .arg("-")
        .env("PATH", "/usr/bin:/bin")
        .env_remove("KAPL_SESSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut ch = c.spawn().unwrap();
    ch.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = ch.wait_with_output().unwrap();
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("propose printed no JSON ({e}): {:?}", text_of(&o)));
    (o.status.code(), v)
}

fn text_of(o: &Output) -> (String, String) {
    text(o)
}

fn status(id: &str) -> String {
    let o = kapl(&["status", "--session", id]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    text(&o).0
}

fn explain(id: &str, last: &str) -> Vec<serde_json::Value> {
    let o = kapl(&[
        "explain",
        "--session",
        id,
        "--format",
        "json",
        "--last",
        last,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["denials"].as_array().cloned().unwrap_or_default()
}

fn plan_v1(root: &str) -> String {
    format!(
        r#"use std.runtime
plan look under tidy {{
  grant use runtime.loader
  step inspect {{
    grant fs read "{root}/src/**" except "{root}/**/.env"
    grant exec "/usr/bin/{{cat,sleep}}"
  }}
}}
"#
    )
}

#[test]
fn plans_are_proposed_checked_and_enforced_revision_by_revision() {
    let p = project("rev");
    let root = p.t.path("proj");
    let audit = p.t.path("audit.jsonl");
    let s = start_pinned(&p.obj, &audit);
    let id = s.0.as_str();

    // No plan: nothing runs.
    let o = exec(id, &["cat", &format!("{root}/src/a.txt")]);
    assert_eq!(o.status.code(), Some(125));
    assert!(text(&o).1.contains("no plan is loaded"), "{}", text(&o).1);
    assert!(status(id).contains("no plan loaded"));

    // v1: the agent's first plan.
    let (code, v) = propose(id, &plan_v1(&root), &[]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["accepted"], true);
    assert_eq!(v["revision"], 1);
    assert_eq!(v["plan"], "look");
    assert_eq!(v["step"], "inspect");
    let o = exec(id, &["cat", &format!("{root}/src/a.txt")]);
    assert_eq!(text(&o), ("alpha\n".into(), String::new()));

    // Denials say what the objective thinks of the grant they need.
    let o = exec(id, &["cat", &format!("{root}/notes.txt")]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o).1;
    assert!(
        err.contains(&format!(
            "objective: inside — a plan revision may add `grant fs read \"{root}/notes.txt\"`"
        )),
        "{err}"
    );
    let o = exec(id, &["cat", &format!("{root}/.env")]);
    assert!(text(&o).1.contains("objective: never"), "{}", text(&o).1);
    let o = exec(id, &["cat", "/etc/hostname"]);
    assert!(text(&o).1.contains("objective: outside"), "{}", text(&o).1);
    let d = explain(id, "3");
    let verdicts: Vec<&str> = d
        .iter()
        .map(|x| x["explanation"]["verdict"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(verdicts, ["inside", "never", "outside"], "{d:?}");
    assert_eq!(
        d[0]["explanation"]["grant"],
        format!("grant fs read \"{root}/notes.txt\"")
    );
    assert!(
        d[1]["explanation"]["rule_site"]
            .as_str()
            .unwrap_or("")
            .ends_with("obj.kapl:11"),
        "{d:?}"
    );

    // A plan loaded while a command runs: the old revision's processes end.
    let mut sleeper = Command::new(kapl_run())
        .args(["exec", "--session", id, "--", "sleep", "30"])
        .env_remove("KAPL_SESSION")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cg = kapl_runtime_bpf::cgroup::cgroup2_root()
        .unwrap()
        .join(format!("kapl-{id}"));
    wait_until("the sleeper runs", Duration::from_secs(10), || {
        !tree_pids(&cg).is_empty()
    });
    let v2 = format!(
        r#"use std.runtime
plan look2 under tidy {{
  grant use runtime.loader
  step inspect {{
    grant fs read "{root}/src/**", "{root}/notes.txt" except "{root}/**/.env"
    grant exec "/usr/bin/cat"
  }}
}}
"#
    );
    let (code, v) = propose(id, &v2, &[]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["revision"], 2);
    let ended = sleeper.wait().unwrap();
    assert!(!ended.success(), "the previous revision's sleep was ended");
    let o = exec(id, &["cat", &format!("{root}/notes.txt")]);
    assert_eq!(text(&o).0, "notes\n");
    // v2 grants no sleep: v1's authority is gone.
    assert_eq!(exec(id, &["sleep", "0"]).status.code(), Some(126));

    // v3 reaches a `never`: refused with a witness; the session stays.
    let v3 = format!(
        r#"use std.runtime
plan peek under tidy {{
  grant use runtime.loader
  step s {{ grant fs read "{root}/*" grant exec "/usr/bin/cat" }}
}}
"#
    );
    let (code, v) = propose(id, &v3, &[]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["accepted"], false);
    assert_eq!(v["stage"], "build");
    let diags = v["diagnostics"].to_string();
    assert!(
        diags.contains("KAPL0403") && diags.contains(&format!("{root}/.env")),
        "{diags}"
    );
    // Malformed, over the time limit, and reading what the step may not:
    // each refused, none changes the session.
    let (code, v) = propose(id, "plan broken under tidy { step", &[]);
    assert_eq!((code, v["stage"].as_str()), (Some(1), Some("build")), "{v}");
    let (code, v) = propose(id, &plan_v1(&root), &["--timeout", "0"]);
    assert_eq!(code, Some(1), "{v}");
    assert!(
        v["message"].as_str().unwrap_or("").contains("ran out"),
        "{v}"
    );
    let (code, v) = propose(id, &format!("use \"{root}/.env\"\n{}", plan_v1(&root)), &[]);
    assert_eq!(code, Some(1), "{v}");
    let diags = v["diagnostics"].to_string();
    assert!(diags.contains("cannot read"), "{diags}");
    assert!(
        !diags.contains("hunter2"),
        "a file the step may not read is quoted: {diags}"
    );
    let st = status(id);
    assert!(st.contains("plan look2 revision 2, step inspect"), "{st}");
    assert!(
        st.contains("revision 1:") && st.contains("revision 2:"),
        "{st}"
    );

    // Every record carries its revision, and no revision-1 decision comes
    // after the first revision-2 one.
    drop(s);
    let recs = records(Path::new(&audit));
    let revs: Vec<u64> = recs
        .iter()
        .filter(|r| r["verdict"] != "lost")
        .map(|r| r["plan_revision"].as_u64().expect("plan_revision"))
        .collect();
    assert!(revs.contains(&1) && revs.contains(&2), "{revs:?}");
    let first2 = revs.iter().position(|r| *r == 2).unwrap();
    assert!(revs[first2..].iter().all(|r| *r == 2), "{revs:?}");
    assert_no_leftover_cgroups();
}

#[test]
fn forged_and_foreign_plan_images_are_refused_with_their_reason() {
    let p = project("forge");
    let root = p.t.path("proj");
    p.t.write("v1.kapl", &plan_v1(&root));
    let good = p.t.path("v1.kapi");
    kaplc_build(&[&p.t.path("v1.kapl"), "--against", &p.obj, "-o", &good]);
    p.t.write(
        "net.kapl",
        "plan talk under tidy { step s { grant net connect 127.0.0.1 port 8000 } }\n",
    );
    let net = p.t.path("net.kapi");
    kaplc_build(&[&p.t.path("net.kapl"), "--against", &p.obj, "-o", &net]);
    let s = start_pinned(&p.obj, &p.t.path("audit.jsonl"));
    let id = s.0.as_str();

    // A step widened in the tables, with a valid checksum: its one
    // network entry made to cover every address and port.
    let mut img = kapl_image::read(&std::fs::read(&net).unwrap()).unwrap();
    let e = &mut img.plans[0].net[0];
    e.addr = "0.0.0.0".parse().unwrap();
    e.prefix = 0;
    e.ports[0].lo = 1;
    e.ports[0].hi = 65535;
    let forged = p.t.path("forged.kapi");
    std::fs::write(&forged, kapl_image::write(&img).unwrap()).unwrap();
    let o = kapl(&["plan", "load", "--session", id, &forged]);
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("KAPL0812") && err.contains("net connect 0.0.0.0 port 1"),
        "{err}"
    );

    // Built against another objective image (same objective name).
    p.t.write(
        "other.kapl",
        &std::fs::read_to_string(p.t.path("obj.kapl"))
            .unwrap()
            .replace("Tidy the project", "Another objective"),
    );
    let other = p.t.path("other.kapi");
    kaplc_build(&[&p.t.path("other.kapl"), "-o", &other]);
    let foreign = p.t.path("foreign.kapi");
    kaplc_build(&[&p.t.path("v1.kapl"), "--against", &other, "-o", &foreign]);
    let o = kapl(&["plan", "load", "--session", id, &foreign]);
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("KAPL0811") && err.contains("other.kapi"),
        "{err}"
    );

    // Not an image at all, and not a regular file.
    p.t.write("junk.kapi", "junk");
    let o = kapl(&["plan", "load", "--session", id, &p.t.path("junk.kapi")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o).1);
    assert!(text(&o).1.contains("KAPL0805"), "{}", text(&o).1);
    let o = kapl(&["plan", "load", "--session", id, "/dev/null"]);
    assert!(text(&o).1.contains("not a regular file"), "{}", text(&o).1);

    // Nothing was loaded; the good one is.
    assert_eq!(
        exec(id, &["cat", &format!("{root}/src/a.txt")])
            .status
            .code(),
        Some(125)
    );
    let st = status(id);
    assert!(st.contains("no plan loaded"), "{st}");
    assert_eq!(st.matches(" refused:").count(), 3, "{st}");
    let o = kapl(&["plan", "load", "--session", id, &good]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert_eq!(
        text(&exec(id, &["cat", &format!("{root}/src/a.txt")])).0,
        "alpha\n"
    );
    drop(s);
    assert_no_leftover_cgroups();
}

/// One MCP `tools/call` result's structured content, from the server's
/// replies (by request id).
fn mcp_result(replies: &[serde_json::Value], id: u64) -> serde_json::Value {
    replies
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no reply {id}: {replies:?}"))["result"]["structuredContent"]
        .clone()
}

#[test]
fn an_mcp_client_proposes_plans_and_reads_explanations() {
    let p = project("rev-mcp");
    let root = p.t.path("proj");
    let s = start_pinned(&p.obj, &p.t.path("audit.jsonl"));
    let call = |id: u64, name: &str, args: serde_json::Value| {
        serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                           "params": {"name": name, "arguments": args}})
        .to_string()
    };
    let v3 = format!(
        "use std.runtime\nplan peek under tidy {{ grant use runtime.loader step s {{ grant fs read \"{root}/*\" }} }}\n"
    );
    let lines = [
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "test", "version": "0"}}})
        .to_string(),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_string(),
        call(
            2,
            "propose_plan",
            serde_json::json!({"text": plan_v1(&root)}),
        ),
        call(
            3,
            "run",
            serde_json::json!({"argv": ["cat", format!("{root}/notes.txt")]}),
        ),
        call(4, "explain_denials", serde_json::json!({"last": 1})),
        call(5, "propose_plan", serde_json::json!({"text": v3})),
    ];
    let mut ch = Command::new(kapl_run())
        .args(["mcp", "--session", &s.0])
        .env_remove("KAPL_SESSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = ch.stdin.take().unwrap();
    for l in &lines {
        writeln!(stdin, "{l}").unwrap();
    }
    drop(stdin);
    let o = ch.wait_with_output().unwrap();
    let replies: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let accepted = mcp_result(&replies, 2);
    assert_eq!(
        (accepted["accepted"].clone(), accepted["revision"].clone()),
        (true.into(), 1.into()),
        "{accepted}"
    );
    let run = mcp_result(&replies, 3);
    assert_eq!(run["exit"], 1, "{run}");
    let explained = mcp_result(&replies, 4);
    let e = &explained["denials"][0]["explanation"];
    assert_eq!(e["verdict"], "inside", "{explained}");
    assert_eq!(e["grant"], format!("grant fs read \"{root}/notes.txt\""));
    let refused = mcp_result(&replies, 5);
    assert_eq!(refused["accepted"], false, "{refused}");
    assert!(
        refused["diagnostics"].to_string().contains("KAPL0403"),
        "{refused}"
    );
    drop(s);
    assert_no_leftover_cgroups();
}

/// One objective file serves two checkouts: built with `--param` for each,
/// and a proposed plan written with `${proj}` takes the pinned objective's
/// value; `status` names it.
#[test]
fn a_parameterised_objective_gives_its_values_to_proposed_plans() {
    let t = Tmp::new("rev-param");
    for c in ["one", "two"] {
        t.write(&format!("{c}/src/a.txt"), &format!("{c}\n"));
    }
    t.write(
        "obj.kapl",
        "use std.runtime\nparam proj\nobjective tidy {\n  bound { fs read \"${proj}/**\" exec \"/usr/bin/cat\" use runtime.loader }\n}\n",
    );
    let plan = "use std.runtime\nplan look under tidy {\n  grant use runtime.loader\n  step s { grant fs read \"${proj}/src/**\" grant exec \"/usr/bin/cat\" }\n}\n";
    for c in ["one", "two"] {
        let obj = t.path(&format!("{c}.kapi"));
        kaplc_build(&[
            &t.path("obj.kapl"),
            "--param",
            &format!("proj={}", t.path(c)),
            "-o",
            &obj,
        ]);
        let o = kapl(&["session", "start", &obj]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
        let s = SessionGuard(text(&o).0.trim().to_string());
        let (code, v) = propose(&s.0, plan, &[]);
        assert_eq!(code, Some(0), "{v}");
        for other in ["one", "two"] {
            let o = exec(&s.0, &["cat", &t.path(&format!("{other}/src/a.txt"))]);
            assert_eq!(
                o.status.success(),
                other == c,
                "{c} reading {other}: {}",
                text(&o).1
            );
        }
        assert!(status(&s.0).contains(&format!("parameters: proj={}", t.path(c))));
    }
    assert_no_leftover_cgroups();
}

/// A plan load starts the dedup of allows anew, in the kernel as in the
/// supervisor: the programs report an allow once per step, grant and
/// destination from a map loaded with the plan, so the same grant of the
/// next revision (the same grant id, step and destination) is reported
/// again, under its revision.
#[test]
fn a_plan_load_reports_the_first_allow_of_each_destination_anew() {
    let t = Tmp::new("rev-net");
    let (l, port) = listener();
    std::thread::spawn(move || {
        for s in l.incoming() {
            drop(s)
        }
    });
    let probe = probe_bin();
    t.write(
        "obj.kapl",
        &format!(
            r#"use std.runtime
objective tidy {{
  bound {{
    exec "{probe}"
    net connect 127.0.0.1 port {port}
    use runtime.loader
  }}
}}
"#
        ),
    );
    let obj = t.path("obj.kapi");
    kaplc_build(&[&t.path("obj.kapl"), "-o", &obj]);
    let audit = t.path("audit.jsonl");
    let s = start_pinned(&obj, &audit);
    let id = s.0.as_str();
    let plan = |name: &str| {
        format!(
            r#"use std.runtime
plan {name} under tidy {{
  grant use runtime.loader
  step s {{
    grant exec "{probe}"
    grant net connect 127.0.0.1 port {port}
  }}
}}
"#
        )
    };
    let to = format!("127.0.0.1:{port}");
    for (rev, name) in [(1, "v1"), (2, "v2")] {
        let (code, v) = propose(id, &plan(name), &[]);
        assert_eq!(code, Some(0), "{v}");
        assert_eq!(v["revision"], rev, "{v}");
        let o = exec(id, &[probe, "storm-connect", &to, "50"]);
        assert_eq!(text(&o).0, "storm-connect ok 50\n", "{}", text(&o).1);
    }
    drop(s);
    let object = format!("{to} (tcp)");
    let revs: Vec<(u64, u64)> = records(Path::new(&audit))
        .iter()
        .filter(|r| r["verdict"] == "allow" && r["object"] == object.as_str())
        .map(|r| {
            (
                r["plan_revision"].as_u64().expect("plan_revision"),
                r["grant"]["id"].as_u64().expect("grant id"),
            )
        })
        .collect();
    assert_eq!(revs.len(), 2, "one first allow per revision: {revs:?}");
    assert_eq!((revs[0].0, revs[1].0), (1, 2), "{revs:?}");
    assert_eq!(revs[0].1, revs[1].1, "the same grant id in both revisions");
    assert_no_leftover_cgroups();
}
