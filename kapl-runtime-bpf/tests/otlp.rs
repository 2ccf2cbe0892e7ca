//! Decision records shipped to an OpenTelemetry collector (`--otlp`), on
//! the real kernel (root): a receiver started by the test gets OTLP/HTTP
//! JSON log records that carry the authority chain; a collector that is
//! down never blocks or fails the command, and what it missed is counted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// Requests a receiver got: (path, JSON body).
type Got = Arc<Mutex<Vec<(String, Value)>>>;

/// A minimal OTLP/HTTP receiver: every request's (path, JSON body),
/// answered 200.
fn receiver() -> (u16, Got) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut len = 0;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            g.lock()
                .unwrap()
                .push((path, serde_json::from_slice(&body).unwrap()));
            let mut s = s;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
        }
    });
    (port, got)
}

fn policy(t: &Tmp) -> String {
    t.write("granted/a.txt", "hello\n");
    t.write("denied/b.txt", "secret\n");
    write_image(
        t,
        "p.kapi",
        read_step(format!("{}/granted/**", t.0.display()), &["/usr/bin/cat"]),
    )
}

fn run(img: &str, otlp: &str, file: &str) -> std::process::Output {
    Command::new(kapl_run())
        .args([
            img,
            "--plan",
            "p",
            "--otlp",
            otlp,
            "--",
            "/usr/bin/cat",
            file,
        ])
        .env("PATH", "/usr/bin:/bin")
        .env("KAPL_VERBOSE", "1")
        .output()
        .unwrap()
}

/// `key`'s string (or int) value among OTLP attributes.
fn attr<'a>(rec: &'a Value, key: &str) -> Option<&'a str> {
    rec["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .and_then(|a| {
            a["value"]["stringValue"]
                .as_str()
                .or(a["value"]["intValue"].as_str())
        })
}

#[test]
fn decision_records_reach_the_collector_with_their_authority_chain() {
    let t = Tmp::new("otlp");
    let img = policy(&t);
    let (port, got) = receiver();
    let url = format!("http://127.0.0.1:{port}/base");
    let b = t.path("denied/b.txt");
    let o = run(&img, &url, &b);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "cat's own status: {err}");
    assert!(
        err.contains(&format!("denied: cat read (read_file) {b}")),
        "{err}"
    );
    assert!(!err.contains("not delivered"), "{err}");
    let reqs = got.lock().unwrap().clone();
    assert!(!reqs.is_empty(), "no request reached the receiver: {err}");
    let mut records = Vec::new();
    for (path, body) in &reqs {
        assert_eq!(path, "/base/v1/logs");
        let rl = &body["resourceLogs"][0];
        let res = &rl["resource"];
        assert_eq!(attr(res, "service.name"), Some("kapl-run"));
        records.extend(
            rl["scopeLogs"][0]["logRecords"]
                .as_array()
                .unwrap()
                .iter()
                .cloned(),
        );
    }
    let deny = records
        .iter()
        .find(|r| {
            attr(r, "kapl.verdict") == Some("deny") && attr(r, "kapl.object") == Some(b.as_str())
        })
        .unwrap_or_else(|| panic!("no deny record of {b}: {records:#?}"));
    assert_eq!(attr(deny, "kapl.objective"), Some("o"));
    assert_eq!(attr(deny, "kapl.plan"), Some("p"));
    assert_eq!(attr(deny, "kapl.step"), Some("look"));
    assert_eq!(attr(deny, "kapl.operation"), Some("read (read_file)"));
    assert!(attr(deny, "kapl.nearest.site").is_some(), "{deny:#}");
    assert_eq!(deny["severityText"], "WARN");
    let allow = records
        .iter()
        .find(|r| attr(r, "kapl.verdict") == Some("allow"))
        .unwrap_or_else(|| panic!("no allow record: {records:#?}"));
    assert_eq!(attr(allow, "kapl.operation"), Some("exec"));
    assert!(attr(allow, "kapl.grant.id").is_some(), "{allow:#}");
    assert_eq!(attr(allow, "kapl.grant.site"), Some("test.kapl:10"));
    // The body is the audit record itself.
    let body: Value = serde_json::from_str(deny["body"]["stringValue"].as_str().unwrap()).unwrap();
    assert_eq!(body["schema_version"], 1);
    assert_eq!(body["verdict"], "deny");
}

#[test]
fn a_collector_that_is_down_never_fails_the_command_and_what_it_missed_is_counted() {
    let t = Tmp::new("otlp-down");
    let img = policy(&t);
    // A port nothing listens on.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let o = run(
        &img,
        &format!("http://127.0.0.1:{port}"),
        &t.path("granted/a.txt"),
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(out, "hello\n");
    assert!(
        err.contains("records not delivered to the OTLP collector"),
        "the summary counts what the collector missed: {err}"
    );
    // A malformed address is refused before anything runs.
    let o = run(&img, "https://127.0.0.1:1", &t.path("granted/a.txt"));
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(text(&o).0, "");
    assert!(
        text(&o).1.contains("error[KAPL0808]: --otlp:"),
        "{}",
        text(&o).1
    );
}
