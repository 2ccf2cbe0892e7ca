//! Benchmark: how long after a change the editor sees diagnostics, on a
//! generated 1,000-line policy (target: ≤ 150 ms).
//!
//! Runs the real server loop on an in-memory connection with the default
//! timing (debounce and proof grace), types single-character edits, and
//! measures from sending `didChange` to receiving `publishDiagnostics` for
//! that version; then, separately, how long the front end and the proofs
//! take on the same text. Prints a table; `cargo bench -p kapl-lsp`.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    reason = "a benchmark fails loudly"
)]

use kapl_lsp::Config;
use lsp_server::{Connection, Message, Notification, Request};
use serde_json::json;
use std::time::{Duration, Instant};

/// A valid, provable policy of about `lines` lines: plans of steps of file,
/// program and network grants inside one intent's bound.
fn policy(lines: usize) -> String {
    let mut s = String::from(
        "// generated for the language-server benchmark\n\nobjective serve {\n  about \"Run the fleet\"\n  bound {\n    fs read, write, create \"/srv/**\"\n    exec \"/usr/bin/*\"\n    net connect 10.0.0.0/8 port any\n  }\n  never {\n    fs read, write \"/srv/**/.env\"\n  }\n}\n\nintent operate under serve {\n  bound {\n    fs read, write \"/srv/**\"\n    exec \"/usr/bin/*\"\n    net connect 10.0.0.0/8 port 443, 8000-8999\n  }\n}\n",
    );
    let mut plan = 0;
    while s.lines().count() + 60 < lines {
        s.push_str(&format!(
            "\nplan p{plan} under operate {{\n  about \"plan {plan}\"\n"
        ));
        for step in 0..9 {
            if step == 0 {
                s.push_str(&format!("  step s{step} {{\n"));
            } else {
                s.push_str(&format!("  step s{step} after s{} {{\n", step - 1));
            }
            s.push_str(&format!(
                "    grant fs read \"/srv/app{plan}/logs/step{step}-*.log\"\n    grant fs write \"/srv/app{plan}/data/{step}/*.json\"\n    grant exec \"/usr/bin/{{grep,cat,tail}}\"\n    grant net connect 10.{plan}.{step}.0/24 port 443\n"
            ));
            s.push_str("  }\n");
        }
        s.push_str("}\n");
        plan += 1;
    }
    s
}

fn main() {
    let text = policy(1000);
    let n_lines = text.lines().count();
    let dir = std::env::temp_dir().join(format!("kapl-lsp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fleet.kapl");
    std::fs::write(&path, &text).unwrap();
    let uri = format!("file://{}", path.display());

    // In-process timing of the two phases on the same text.
    let job = kapl_lsp::analysis::Job {
        key: uri.clone(),
        version: 1,
        path: path.display().to_string(),
        text: text.clone(),
        overlay: Vec::new(),
        latest: std::sync::Arc::new(std::sync::atomic::AtomicI32::new(1)),
    };
    let mut front_ms = Vec::new();
    let mut prove_ms = Vec::new();
    let mut errors = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let front = kapl_lsp::analysis::front(&job).unwrap();
        front_ms.push(ms(t.elapsed()));
        errors = front.diagnostics.iter().filter(|d| d.is_error()).count();
        let t = Instant::now();
        let full = kapl_lsp::analysis::prove(&front);
        prove_ms.push(ms(t.elapsed()));
        errors += full.diagnostics.iter().filter(|d| d.is_error()).count();
    }
    assert_eq!(errors, 0, "the generated policy must check clean");

    // The server, as an editor sees it.
    let config = Config::default();
    let (server_side, client) = Connection::memory();
    let server = std::thread::spawn(move || kapl_lsp::run(&server_side, config));
    let init = Request::new(
        1.into(),
        "initialize".into(),
        json!({"processId": null, "rootUri": null, "capabilities": {}}),
    );
    client.sender.send(init.into()).unwrap();
    wait(&client, |m| matches!(m, Message::Response(_)));
    notify(&client, "initialized", json!({}));
    notify(
        &client,
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "kapl", "version": 1, "text": text}}),
    );
    wait_publish(&client, 1);

    // Edits: change one character of a pattern on a line in the middle,
    // alternating between two spellings.
    let (line, col) = text
        .lines()
        .enumerate()
        .skip(n_lines / 2)
        .find_map(|(i, l)| l.find("/logs/").map(|c| (i, c + 1)))
        .unwrap();
    let mut first = Vec::new();
    let mut full = Vec::new();
    let rounds = 30;
    for v in 0..rounds {
        let version = 2 + v;
        let ch = if v % 2 == 0 { "L" } else { "l" };
        let t = Instant::now();
        notify(
            &client,
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{
                "range": {"start": {"line": line, "character": col}, "end": {"line": line, "character": col + 1}},
                "text": ch
            }]}),
        );
        wait_publish(&client, version);
        first.push(ms(t.elapsed()));
        // When the first publication held the front end's findings alone,
        // the full set (proofs included) follows for the same version.
        let patience = Duration::from_millis((median(&prove_ms) * 3.0) as u64 + 200);
        if wait_publish_within(&client, version, patience) {
            full.push(ms(t.elapsed()));
        } else {
            full.push(*first.last().unwrap_or(&f64::NAN));
        }
        drain(&client);
    }
    let req = Request::new(2.into(), "shutdown".into(), json!(null));
    client.sender.send(req.into()).unwrap();
    wait(&client, |m| matches!(m, Message::Response(_)));
    notify(&client, "exit", json!(null));
    let _ = server.join();
    let _ = std::fs::remove_dir_all(&dir);

    println!("language server: diagnostics after a change ({n_lines}-line policy)");
    println!(
        "{:<46} {:>9} {:>9} {:>9}",
        "measure", "median", "p95", "max"
    );
    row("didChange → first publishDiagnostics (ms)", &first);
    row("didChange → with proof results (ms)", &full);
    row("  front end: parse+load+resolve+lower (ms)", &front_ms);
    row("  proofs (ms)", &prove_ms);
    println!(
        "settings: debounce {} ms, proof grace {} ms; target ≤ 150 ms: {}",
        config.debounce.as_millis(),
        config.proof_grace.as_millis(),
        if percentile(&first, 0.95) <= 150.0 {
            "met (p95)"
        } else {
            "NOT met (p95)"
        }
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((s.len() as f64 - 1.0) * p).round() as usize;
    s.get(i).copied().unwrap_or(f64::NAN)
}

fn median(v: &[f64]) -> f64 {
    percentile(v, 0.5)
}

fn row(name: &str, v: &[f64]) {
    let max = v.iter().copied().fold(f64::NAN, f64::max);
    println!(
        "{name:<46} {:>9.1} {:>9.1} {:>9.1}",
        median(v),
        percentile(v, 0.95),
        max
    );
}

fn notify(c: &Connection, method: &str, params: serde_json::Value) {
    let n = Notification::new(method.to_string(), params);
    c.sender.send(n.into()).unwrap();
}

fn wait(c: &Connection, pred: impl Fn(&Message) -> bool) {
    loop {
        let m = c.receiver.recv_timeout(Duration::from_secs(120)).unwrap();
        if pred(&m) {
            return;
        }
    }
}

fn wait_publish(c: &Connection, version: i64) {
    wait(c, |m| {
        matches!(m, Message::Notification(n)
            if n.method == "textDocument/publishDiagnostics" && n.params["version"] == version)
    });
}

/// Waits up to `patience` for a publication of `version`.
fn wait_publish_within(c: &Connection, version: i64, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.receiver.recv_timeout(left) {
            Ok(Message::Notification(n))
                if n.method == "textDocument/publishDiagnostics"
                    && n.params["version"] == version =>
            {
                return true;
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

fn drain(c: &Connection) {
    while c.receiver.try_recv().is_ok() {}
}
