#![allow(clippy::unwrap_used, clippy::panic, reason = "test assertions")]

use super::synthetic::{record, synthetic};
use super::*;
use serde_json::json;

const POLICY: &str = r#"
objective o {
  about "Tidy <the> \"logs\" & more"
  bound { fs read "/srv/**" exec "/usr/bin/*" }
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
    // The objective's about, escaped in the header.
    assert!(
        b.html
            .contains("Tidy &lt;the&gt; &quot;logs&quot; &amp; more")
    );
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
    assert!(b.html.len() < 3 << 20, "{} bytes", b.html.len());
}
