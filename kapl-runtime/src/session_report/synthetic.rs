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

/// `n` decisions of a busy session: 4 steps, 60 processes each, reads
/// across 2,000 directories, one in 10 denied.
pub fn synthetic(n: usize) -> String {
    let mut s = String::with_capacity(n * 600);
    for i in 0..n {
        let step = i * 4 / n;
        let pid = 1000 + (step * 60 + i % 60) as i64;
        let deny = i % 10 == 0;
        let object = format!("/work/src/m{}/f{}.rs", i % 2000, i % 37);
        let mut r = record(
            (i as u64) * 3,
            pid,
            if deny { "deny" } else { "allow" },
            "read (read_file)",
            &object,
        );
        r["step"] = json!(format!("step{step}"));
        if deny {
            r["nearest"] = json!({"id": 4, "source": "big.kapl:9:5", "site": "big.kapl:9",
                "text": "grant fs read \"/work/doc/**\"", "step": format!("step{step}"),
                "why": "the path is outside `/work/doc/**`"});
        } else {
            r["grant"] = json!({"id": step, "source": "big.kapl:3:5", "site": "big.kapl:3",
                "text": "grant fs read \"/work/src/**\"", "step": format!("step{step}")});
        }
        s.push_str(&r.to_string());
        s.push('\n');
    }
    s
}
