//! Build benchmark: policies of 10, 100, 1,000 and 10,000 grants through the
//! whole `kaplc build` pipeline (parse, check, prove, compile, encode,
//! translation validation), with DFA states, transition-table bytes and
//! image size, and whether the image fits the documented map limits.
//!
//! Run: `cargo bench -p kaplc --bench build`. Targets: 1,000 grants
//! build (proofs included) in ≤ 1 s; 10,000 grants fit the limits.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmark binary"
)]

use kapl_check::MemoryLoader;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// A policy with `n` grants spread over plans of `per_plan` grants
/// (10 steps each).
fn policy_text(n: usize, per_plan: usize) -> String {
    let mut t = String::new();
    t.push_str(
        "objective bench {\n  about \"benchmark\"\n  bound {\n    fs read, write, create, delete \"/srv/**\"\n    exec \"/opt/**\", \"/usr/bin/*\"\n    net connect 10.0.0.0/8 port any\n    net bind 127.0.0.1 port any\n  }\n  never {\n    fs read, write \"/srv/**/secrets/**\"\n  }\n}\n",
    );
    let plans = n.div_ceil(per_plan);
    let mut g = 0;
    for p in 0..plans {
        let _ = writeln!(t, "plan p{p} under bench {{");
        let in_plan = per_plan.min(n - g);
        let steps = 10.min(in_plan.max(1));
        for s in 0..steps {
            if s == 0 {
                let _ = writeln!(t, "  step s{s} {{");
            } else {
                let _ = writeln!(t, "  step s{s} after s{} {{", s - 1);
            }
            let here = in_plan / steps + usize::from(s < in_plan % steps);
            for _ in 0..here {
                let i = g;
                g += 1;
                match i % 10 {
                    0..=3 => {
                        let _ = writeln!(
                            t,
                            "    grant fs read \"/srv/app{i}/data/**\" except \"/srv/app{i}/data/**/secrets/**\""
                        );
                    }
                    4 | 5 => {
                        let _ = writeln!(
                            t,
                            "    grant fs read, write \"/srv/app{i}/conf/*.{{yaml,toml}}\""
                        );
                    }
                    6 => {
                        let _ = writeln!(t, "    grant fs create, delete \"/srv/app{i}/tmp/**\"");
                    }
                    7 => {
                        let _ = writeln!(t, "    grant exec \"/opt/tool{i}/bin/*\"");
                    }
                    8 => {
                        let _ = writeln!(
                            t,
                            "    grant net connect 10.{}.{}.0/24 port {}",
                            (i / 256) % 256,
                            i % 256,
                            1000 + i % 60000
                        );
                    }
                    _ => {
                        let _ = writeln!(
                            t,
                            "    grant fs read \"/srv/shared/lib{}/**\", \"/srv/shared/doc/*.md\" except \"/srv/**/secrets/**\"",
                            i % 50
                        );
                    }
                }
            }
            let _ = writeln!(t, "  }}");
        }
        let _ = writeln!(t, "}}");
    }
    t
}

struct Row {
    grants: usize,
    per_plan: usize,
    check: Duration,
    codegen: Duration,
    encode_tv: Duration,
    total: Duration,
    states: usize,
    tbytes: usize,
    size: usize,
    fits: String,
}

fn run(n: usize, per_plan: usize) -> Row {
    let text = policy_text(n, per_plan);
    let t0 = Instant::now();
    let mut loader = MemoryLoader::new().with("bench.kapl", text.into_bytes());
    let mut fe = kapl_check::check_front(&mut loader, "bench.kapl");
    kapl_prove::prove_front_end(&mut fe);
    let errors: Vec<_> = fe.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(
        errors.is_empty(),
        "bench policy has errors: {:#?}",
        errors.first()
    );
    let policy = fe.policy.as_ref().expect("policy");
    let t1 = Instant::now();
    let automata = fe.automata.as_ref().expect("the prover's automata");
    let out = kapl_codegen::compile_with(
        policy,
        automata,
        &fe.sources,
        &kapl_codegen::Options {
            policy: "bench".into(),
            compiler: "bench".into(),
        },
    );
    let t2 = Instant::now();
    let (states, tbytes, size, fits, t3) = match out {
        Ok(out) => {
            let bytes = kapl_image::write(&out.image).expect("encodes");
            let tv = kapl_codegen::translate::validate_with(policy, automata, &bytes);
            assert!(
                tv.is_empty(),
                "translation validation failed: {:#?}",
                tv.first()
            );
            let t3 = Instant::now();
            (
                out.stats.dfa_states,
                out.stats.transition_bytes,
                bytes.len(),
                "yes".to_string(),
                t3,
            )
        }
        Err(e) => (
            0,
            0,
            0,
            format!(
                "no: {}",
                e.first().map_or(String::new(), |d| d.message.clone())
            ),
            Instant::now(),
        ),
    };
    Row {
        grants: policy.grants.len(),
        per_plan,
        check: t1 - t0,
        codegen: t2 - t1,
        encode_tv: t3 - t2,
        total: t3 - t0,
        states,
        tbytes,
        size,
        fits,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() {
    println!(
        "kaplc build pipeline benchmark (this machine; best of 3 runs up to 1,000 grants, one run above)"
    );
    println!(
        "| grants | grants/plan | check+prove ms | codegen ms | encode+TV ms | total ms | DFA states | transition bytes | image bytes | fits limits |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut thousand = None;
    // `cargo bench -p kaplc --bench build -- 1000` runs one size.
    let only: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes: Vec<(usize, usize)> = [
        (10, 100),
        (100, 100),
        (1000, 100),
        (10_000, 100),
        (1000, 1000),
        (10_000, 10_000),
    ]
    .into_iter()
    .filter(|(n, _)| only.is_empty() || only.contains(n))
    .collect();
    for (n, per) in sizes {
        // Best of 3 for the small sizes (this machine is shared and noisy;
        // the minimum is the least disturbed run), one run above.
        let runs = if n <= 1000 { 3 } else { 1 };
        let r = (0..runs)
            .map(|_| run(n, per))
            .min_by_key(|r| r.total)
            .expect("at least one run");
        if n == 1000 && per == 100 {
            thousand = Some(r.total);
        }
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.grants,
            r.per_plan,
            ms(r.check),
            ms(r.codegen),
            ms(r.encode_tv),
            ms(r.total),
            r.states,
            r.tbytes,
            r.size,
            r.fits
        );
    }
    if let Some(t) = thousand {
        println!(
            "1,000 grants: {} ms total = {:.2}x the 1 s target",
            ms(t),
            t.as_secs_f64() / 1.0
        );
    }
}
