//! The plan-revision row (issue 14, item 12): `kapl-run plan propose` of
//! a 100-grant, 5-step plan into a real session pinned to an objective,
//! from the command to the plan enforced, with the split per phase (the
//! confined `kaplc build`, the supervisor's verify, check, rules and
//! kernel phases), beside the same `kaplc build` unconfined, the two taking
//! turns within each round; each keeps its best round.
//!
//! Two plans of the same shape (different names and grants) alternate, so
//! every proposal replaces a loaded plan as an agent's revision does.

use super::{quick, ratio};
use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The objective: reading anything under `root`, running anything in
/// /usr/bin, connecting to 10/8.
fn objective(root: &str) -> String {
    format!(
        r#"use std.runtime
objective o {{
  bound {{
    fs read "{root}/**"
    exec "/usr/bin/**"
    net connect 10.0.0.0/8 port any
    use runtime.loader
  }}
}}
"#
    )
}

/// A plan of 5 steps × 20 grants (`tag` makes two plans differ).
fn plan(root: &str, tag: &str) -> String {
    let mut s = format!("use std.runtime\nplan p_{tag} under o {{\n  grant use runtime.loader\n");
    for st in 0..5 {
        let after = if st == 0 {
            String::new()
        } else {
            format!(" after s{}", st - 1)
        };
        s.push_str(&format!("  step s{st}{after} {{\n"));
        for g in 0..20 {
            let i = st * 20 + g;
            match g % 3 {
                0 => s.push_str(&format!("    grant fs read \"{root}/d{i}/**\"\n")),
                1 => s.push_str(&format!("    grant exec \"/usr/bin/{tag}{i}\"\n")),
                _ => s.push_str(&format!(
                    "    grant net connect 10.{st}.{g}.0/24 port {}\n",
                    400 + i
                )),
            }
        }
        s.push_str("  }\n");
    }
    s.push_str("}\n");
    s
}

fn kaplc() -> PathBuf {
    let p = Path::new(kapl_run()).with_file_name("kaplc");
    assert!(
        p.is_file(),
        "bench: kaplc is missing beside kapl-run: `cargo build --release -p kaplc` first"
    );
    p
}

/// One timed proposal: wall time and the JSON it printed.
fn propose(id: &str, file: &str) -> (Duration, serde_json::Value) {
    let t = Instant::now();
    let o = Command::new(kapl_run())
        .args(["plan", "propose", "--session", id, "--format", "json", file])
        .env_remove("KAPL_SESSION")
        .output()
        .unwrap();
    let took = t.elapsed();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert_eq!(v["accepted"], true, "bench proposal refused: {v}");
    (took, v)
}

/// The row.
pub fn row() {
    let t = Tmp::new("bench-propose");
    let root = t.path("proj");
    for i in 0..100 {
        t.write(&format!("proj/d{i}/f"), "x");
    }
    t.write("obj.kapl", &objective(&root));
    t.write("a.kapl", &plan(&root, "a"));
    t.write("b.kapl", &plan(&root, "b"));
    let obj = t.path("obj.kapi");
    let o = Command::new(kaplc())
        .args(["build", &t.path("obj.kapl"), "-o", &obj])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let s = kapl(&["session", "start", &obj, "--objective", "o"]);
    assert!(s.status.success(), "{}", text(&s).1);
    let guard = SessionGuard(text(&s).0.trim().to_string());
    let rounds = if quick() { 3 } else { 10 };
    let mut best: Option<(Duration, serde_json::Value)> = None;
    let mut best_plain = Duration::MAX;
    for r in 0..rounds {
        let file = t.path(if r % 2 == 0 { "a.kapl" } else { "b.kapl" });
        let p0 = Instant::now();
        let o = Command::new(kaplc())
            .args([
                "build",
                &file,
                "--against",
                &obj,
                "-o",
                &t.path("plain.kapi"),
            ])
            .args(["--format", "json"])
            .output()
            .unwrap();
        let plain = p0.elapsed();
        assert!(o.status.success(), "{}", text(&o).0);
        best_plain = best_plain.min(plain);
        let (took, v) = propose(&guard.0, &file);
        if best.as_ref().is_none_or(|(b, _)| took < *b) {
            best = Some((took, v));
        }
    }
    let Some((took, v)) = best else {
        return;
    };
    let tm = &v["timing"];
    let ms = |k: &str| tm[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "| plan propose → enforced, 100 grants in 5 steps (best of {rounds}): build {:.0} ms (kaplc confined), load {:.0} ms (verify {:.1}, check {:.1}, rules {:.1}, kernel {:.1}) | kaplc build unconfined {:.0} ms | | {:.0} ms | {:.2}× the 300 ms target | {:.2}× (confined build / unconfined) |",
        ms("build_ms"),
        ms("load_ms"),
        ms("verify_ms"),
        ms("check_ms"),
        ms("rules_ms"),
        ms("kernel_ms"),
        best_plain.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3 / 300.0,
        ratio(Duration::from_secs_f64(ms("build_ms") / 1e3), best_plain),
    );
    drop(guard);
}
