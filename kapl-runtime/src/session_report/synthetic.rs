//! Synthetic audit files, for the report's benchmark and tests: records
//! shaped as the runtime writes them.

use serde_json::json;

/// A decision record as the runtime writes it.
pub fn record(ms: u64, pid: i64, verdict: &str, op: &str, object: &str) -> serde_json::Value {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_796_529_906_000 + ms);
    json!({
        "schema_version": 1, "time": crate::record::rfc3339(t), "session": "s1", "host": "h",
        "uid": 0, "pid": pid, "comm": "tail", "exe": "/usr/bin/tail", "operation": op,
        "object": object, "target": {"kind": "path", "path": object}, "verdict": verdict,
        "grant": null, "step": "a", "plan": "p", "intent": null, "objective": "o",
        "reason": if verdict == "deny" { json!("no grant of step a covers it") } else { json!(null) },
        "nearest": null, "mechanism": "landlock"
    })
}

fn at(ms: u64) -> String {
    crate::record::rfc3339(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_796_529_906_000 + ms),
    )
}

/// A `command_started` record as the runtime writes it (session `s1`,
/// plan `p`).
pub fn started(
    ms: u64,
    cmd: u64,
    pid: Option<i64>,
    argv: &[&str],
    step: &str,
) -> serde_json::Value {
    json!({
        "schema_version": 1, "time": at(ms), "session": "s1", "host": "h", "uid": 0,
        "verdict": "command_started", "command": cmd, "pid": pid, "argv": argv,
        "argv_truncated": false, "program": format!("/usr/bin/{}", argv.first().unwrap_or(&"")),
        "cwd": "/work", "step": step, "plan": "p", "intent": null, "objective": "o"
    })
}

/// A `command_ended` record as the runtime writes it; `exit` is its
/// `exit` object (`{"kind": "exited", "code": 0}`).
pub fn ended(
    ms: u64,
    cmd: u64,
    pid: Option<i64>,
    exit: serde_json::Value,
    duration_ms: u64,
    step: &str,
) -> serde_json::Value {
    json!({
        "schema_version": 1, "time": at(ms), "session": "s1", "host": "h", "uid": 0,
        "verdict": "command_ended", "command": cmd, "pid": pid, "exit": exit,
        "duration_ms": duration_ms, "step": step, "plan": "p"
    })
}

/// `n` decisions of a busy session: 4 steps, 60 commands each (one
/// process each; one in 7 exits 1, the last one has no end record), reads
/// across 2,000 directories, one in 10 denied.
pub fn synthetic(n: usize) -> String {
    let mut s = String::with_capacity(n * 620);
    let mut line = |r: serde_json::Value| {
        s.push_str(&r.to_string());
        s.push('\n');
    };
    for i in 0..n {
        let step = i * 4 / n;
        let pid = 1000 + (step * 60 + i % 60) as i64;
        let cmd = (step * 60 + i % 60 + 1) as u64;
        let step_name = format!("step{step}");
        let first_of_step = i == 0 || (i - 1) * 4 / n != step;
        if first_of_step {
            for j in 0..60u64 {
                let c = step as u64 * 60 + j + 1;
                let argv = ["tail", "-n", "20", &format!("/work/src/m{j}/f.rs")].map(String::from);
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                line(started(
                    (i as u64) * 3,
                    c,
                    Some(1000 + c as i64 - 1),
                    &argv,
                    &step_name,
                ));
            }
        }
        let deny = i % 10 == 0;
        let object = format!("/work/src/m{}/f{}.rs", i % 2000, i % 37);
        let mut r = record(
            (i as u64) * 3,
            pid,
            if deny { "deny" } else { "allow" },
            "read (read_file)",
            &object,
        );
        r["step"] = json!(step_name);
        r["command"] = json!(cmd);
        if deny {
            r["nearest"] = json!({"id": 4, "source": "big.kapl:9:5", "site": "big.kapl:9",
                "text": "grant fs read \"/work/doc/**\"", "step": format!("step{step}"),
                "why": "the path is outside `/work/doc/**`"});
        } else {
            r["grant"] = json!({"id": step, "source": "big.kapl:3:5", "site": "big.kapl:3",
                "text": "grant fs read \"/work/src/**\"", "step": format!("step{step}")});
        }
        line(r);
        let last_of_step = i + 1 == n || (i + 1) * 4 / n != step;
        if last_of_step {
            let first = (step * n).div_ceil(4) as u64 * 3;
            for j in 0..60u64 {
                let c = step as u64 * 60 + j + 1;
                if i + 1 == n && j == 59 {
                    continue; // still running
                }
                let code = i64::from(c.is_multiple_of(7));
                let end = (i as u64) * 3 + 1;
                line(ended(
                    end,
                    c,
                    Some(1000 + c as i64 - 1),
                    json!({"kind": "exited", "code": code}),
                    end - first,
                    &step_name,
                ));
            }
        }
    }
    s
}
