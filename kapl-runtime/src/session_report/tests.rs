#![allow(clippy::unwrap_used, clippy::panic, reason = "test assertions")]

use super::synthetic::{ended, record, started, synthetic};
use super::*;
use serde_json::json;

const POLICY: &str = r#"
objective o {
  about "Tidy <the> \"logs\" & more"
  bound { fs read "/srv/**" exec "/usr/bin/*" }
  never { fs read "/srv/**/.env" }
}
plan p under o {
  step a {
    grant fs read "/srv/logs/**"
    grant fs read "/srv/never/**"
    grant exec "/usr/bin/tail"
  }
}
"#;

fn lines(v: &[serde_json::Value]) -> String {
    v.iter().map(|r| format!("{r}\n")).collect()
}

fn data_of(html: &str) -> serde_json::Value {
    let start = html.find("id=\"kapl-data\">").unwrap() + "id=\"kapl-data\">".len();
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

#[test]
fn decisions_are_grouped_by_step_process_and_directory() {
    let img = crate::tests_support::image(POLICY);
    let mut allow = record(0, 10, "allow", "read (read_file)", "/srv/logs/a.log");
    allow["grant"] = json!({"id": 0, "source": "/t.kapl:8:11", "site": "/t.kapl:8",
        "text": "fs read \"/srv/logs/**\"", "step": "a"});
    let recs = [
        allow.clone(),
        record(5, 10, "deny", "read (read_file)", "/srv/.env"),
        record(9, 10, "deny", "read (read_file)", "/srv/.env"),
        {
            let mut r = record(20, 11, "deny", "exec", "/usr/bin/cat");
            r["target"] = json!({"kind": "program", "path": "/usr/bin/cat", "truncated": false});
            r
        },
        json!({"schema_version": 1, "time": "2026-12-06T04:05:07Z", "session": "s1", "host": "h",
            "uid": 0, "verdict": "lost", "lost": {"ring_buffer_events": 3, "audit_file_records": 0},
            "reason": "counts"}),
    ];
    let mut text = lines(&recs);
    text.push_str("{\"verdict\": \"sideways\"}\nnot json\n\n");
    let imgs = [NamedImage {
        file: "t.kapi",
        image: &img,
    }];
    let b = build(&text, &imgs, "audit.jsonl", Limits::default());
    assert_eq!(
        (b.stats.decisions, b.stats.allows, b.stats.denials),
        (4, 1, 3)
    );
    assert_eq!((b.stats.lost, b.stats.not_understood), (3, 2));
    assert!(b.html.contains("2 records not understood"));
    assert!(b.html.contains("Losses: 3 events"));
    let d = data_of(&b.html);
    let seg = &d["sessions"][0]["segments"][0];
    assert_eq!(seg["step"], "a");
    // No command records (an older runtime's file): a row per process.
    assert_eq!(seg["cmds"].as_array().unwrap().len(), 0);
    assert_eq!(seg["procs"].as_array().unwrap().len(), 2);
    let dirs: Vec<&str> = seg["dirs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["dir"].as_str().unwrap())
        .collect();
    assert_eq!(dirs, ["/srv", "/srv/logs"]);
    // The two .env denials share one detail that counts both.
    let denials = d["denials"].as_array().unwrap();
    assert_eq!(denials.len(), 2);
    assert_eq!(denials[0]["n"], 2);
    let x = denials[0]["x"].as_u64().unwrap() as usize;
    assert_eq!(d["details"][x]["n"], 2);
    // Used: the logs grant; never used: the other two written in the plan.
    let unused: Vec<&str> = seg["unused"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["library"] == false)
        .map(|u| u["grant"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        unused,
        ["fs read \"/srv/never/**\"", "exec \"/usr/bin/tail\""]
    );
    // A file grant with no record is not said to be never used: Landlock
    // allows file access without a record.
    let unrecorded: Vec<bool> = seg["unused"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["library"] == false)
        .map(|u| u["unrecorded"].as_bool().unwrap())
        .collect();
    assert_eq!(unrecorded, [true, false]);
    // The objective's about, escaped in the header.
    assert!(
        b.html
            .contains("Tidy &lt;the&gt; &quot;logs&quot; &amp; more")
    );
    // A plan image carries its objective's bound and `never` as written.
    for want in [
        "<b>bound</b><div class=\"rule\"><code>fs read &quot;/srv/**&quot;</code>",
        "<code>exec &quot;/usr/bin/*&quot;</code>",
        "<b>never</b><div class=\"rule\"><code>fs read &quot;/srv/**/.env&quot;</code>",
    ] {
        assert!(b.html.contains(want), "{want}");
    }
}

#[test]
fn an_image_of_another_plan_gives_no_unused_grants() {
    let img = crate::tests_support::image(POLICY);
    let mut r = record(0, 1, "allow", "read (read_file)", "/srv/logs/a");
    r["grant"] =
        json!({"id": 0, "source": "x:1:1", "site": "x:1", "text": "grant other", "step": "a"});
    let imgs = [NamedImage {
        file: "t.kapi",
        image: &img,
    }];
    let b = build(&lines(&[r]), &imgs, "a", Limits::default());
    let d = data_of(&b.html);
    let seg = &d["sessions"][0]["segments"][0];
    assert!(seg["unused"].is_null());
    assert!(
        seg["unused_note"]
            .as_str()
            .unwrap()
            .contains("no image given holds plan `p`")
    );
}

#[test]
fn hostile_strings_stay_text() {
    let evil = "/srv/<script>document.title='pwned'</script>\"'&/x";
    let mut r = record(0, 1, "deny", "read (read_file)", evil);
    r["comm"] = json!("<img src=x onerror=alert(1)>");
    let b = build(
        &lines(&[r]),
        &[],
        "</title><script>alert(2)</script>",
        Limits::default(),
    );
    // Outside the one inline script, no `<script` but the data element's.
    assert_eq!(b.html.matches("<script").count(), 2);
    assert!(!b.html.contains("<img"));
    assert!(!b.html.contains("</title><script>"));
    let d = data_of(&b.html);
    assert_eq!(d["details"][0]["object"], evil);
}

#[test]
fn a_hundred_thousand_records_make_a_page_of_a_few_megabytes() {
    let text = synthetic(100_000);
    let b = build(&text, &[], "big", Limits::default());
    assert_eq!(b.stats.decisions, 100_000);
    assert_eq!((b.stats.commands, b.stats.commands_open), (240, 1));
    let d = data_of(&b.html);
    let seg = &d["sessions"][0]["segments"][0];
    assert_eq!(seg["cmds"].as_array().unwrap().len(), 60);
    assert_eq!(seg["procs"].as_array().unwrap().len(), 0);
    assert!(b.html.len() < 3 << 20, "{} bytes", b.html.len());
}

#[test]
fn commands_are_bars_with_their_decisions_as_marks() {
    let with_cmd = |mut r: serde_json::Value, cmd: u64| {
        r["command"] = json!(cmd);
        r
    };
    let evil = "/srv/<script>alert(1)</script>";
    let mut refused = record(310, 0, "deny", "exec (execute)", "/usr/bin/rm");
    refused["pid"] = json!(null);
    refused["target"] = json!({"kind": "program", "path": "/usr/bin/rm", "truncated": false});
    let recs = [
        started(0, 1, Some(10), &["cat", "/srv/logs/a.log"], "a"),
        with_cmd(
            record(5, 10, "allow", "read (read_file)", "/srv/logs/a.log"),
            1,
        ),
        // A child of command 1 (another pid): its record names the command.
        with_cmd(record(8, 12, "deny", "read (read_file)", "/srv/.env"), 1),
        ended(
            20,
            1,
            Some(10),
            json!({"kind": "exited", "code": 1}),
            20,
            "a",
        ),
        // A file of before decision records named their command: by pid.
        started(100, 2, Some(20), &["grep", "-r", "x y", evil], "a"),
        record(150, 20, "deny", "read (read_file)", evil),
        ended(
            200,
            2,
            Some(20),
            json!({"kind": "killed", "signal": 9, "name": "SIGKILL"}),
            100,
            "a",
        ),
        // Refused before it ran: a start, its denial, an end.
        started(300, 3, None, &["rm", "-rf", "/"], "a"),
        with_cmd(refused, 3),
        ended(310, 3, None, json!({"kind": "refused"}), 10, "a"),
        // Still running: no end record.
        started(400, 4, Some(40), &["sleep", "60"], "a"),
        // A process no command record names.
        record(500, 99, "allow", "read (read_file)", "/srv/logs/b.log"),
    ];
    let b = build(&lines(&recs), &[], "cmds", Limits::default());
    assert_eq!((b.stats.commands, b.stats.commands_open), (4, 1));
    assert_eq!((b.stats.decisions, b.stats.not_understood), (5, 0));
    // Nothing of the argv reaches the page as markup.
    assert!(!b.html.contains("<script>alert"));
    let d = data_of(&b.html);
    let seg = &d["sessions"][0]["segments"][0];
    let cmds = seg["cmds"].as_array().unwrap();
    let brief: Vec<(u64, &str, Option<&str>, u64, u64)> = cmds
        .iter()
        .map(|c| {
            (
                c["id"].as_u64().unwrap(),
                c["argv"].as_str().unwrap(),
                c["status"].as_str(),
                c["allows"].as_u64().unwrap(),
                c["denials"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        brief,
        [
            (1, "cat /srv/logs/a.log", Some("exit 1"), 1, 1),
            (
                2,
                "grep -r 'x y' '/srv/<script>alert(1)</script>'",
                Some("killed by SIGKILL"),
                0,
                1
            ),
            (
                3,
                "rm -rf /",
                Some("refused: not executed (exit 126)"),
                0,
                1
            ),
            (4, "sleep 60", None, 0, 0),
        ]
    );
    // Bars span start to end, the open one to the last record; the marks
    // sit on their command's bar.
    let span = |c: &serde_json::Value| (c["t0"].as_i64().unwrap(), c["t1"].as_i64().unwrap());
    assert_eq!(span(&cmds[0]), (0, 20));
    assert_eq!(span(&cmds[1]), (100, 200));
    assert_eq!(span(&cmds[3]), (400, 500));
    assert_eq!(cmds[1]["ms"], 100);
    let m = &cmds[0]["marks"].as_array().unwrap();
    assert_eq!(
        m.iter().map(|m| m["d"].as_u64().unwrap()).sum::<u64>(),
        1,
        "{m:?}"
    );
    assert!(cmds[1]["marks"][0]["t"].as_i64().unwrap() == 150);
    // The process of no command keeps its own row.
    let procs = seg["procs"].as_array().unwrap();
    assert_eq!(procs.len(), 1);
    assert_eq!(procs[0]["pid"], 99);
}

#[test]
fn command_records_alone_make_a_session_and_order_does_not_matter() {
    // The end before the start (a file put together by hand), and a
    // decision before its command's start line: still one bar with it.
    let mut d = record(5, 10, "deny", "read (read_file)", "/srv/x");
    d["command"] = json!(7);
    let recs = [
        ended(
            50,
            7,
            Some(10),
            json!({"kind": "exited", "code": 0}),
            50,
            "b",
        ),
        d,
        started(0, 7, Some(10), &["true"], "b"),
    ];
    let b = build(&lines(&recs), &[], "x", Limits::default());
    let data = data_of(&b.html);
    let segs = data["sessions"][0]["segments"].as_array().unwrap();
    let cmds: Vec<&serde_json::Value> = segs
        .iter()
        .flat_map(|g| g["cmds"].as_array().unwrap())
        .collect();
    assert_eq!(cmds.len(), 1);
    assert_eq!(cmds[0]["status"], "exit 0");
    assert_eq!(cmds[0]["denials"], 1);
}
