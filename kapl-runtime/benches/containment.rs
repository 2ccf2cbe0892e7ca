//! Containment-check benchmark (issue 14, item 12): the runtime's own
//! checker on a 1,000-grant, 5-step plan against an objective with an
//! intent; the target is at most 50 ms. Prints the table sizes and the
//! median of 11 runs; run with
//! `cargo bench -p kapl-runtime --bench containment`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark fails loudly"
)]

use kapl_runtime::containment::check_image;
use std::fmt::Write;
use std::time::Instant;

const OBJECTIVE: &str = r#"
objective o {
  bound {
    fs read "/srv/**", "/usr/share/**"
    fs write, create "/srv/out/**"
    exec "/usr/bin/*", "/usr/local/bin/*"
    net connect 10.0.0.0/8 port 1-60000
    net connect 2001:db8::/32 port 443
  }
  never {
    fs read, write "/srv/**/.env", "/srv/secrets/**"
    net connect 10.9.0.0/16 port any
  }
}
intent i under o {
  bound {
    fs read "/srv/**"
    fs write, create "/srv/out/**"
    exec "/usr/bin/*"
    net connect 10.0.0.0/9 port 443, 8000-9000
  }
  never { fs read "/srv/**/id_*" }
}
"#;

/// A plan under `i` with `n` grants over 5 steps (a tenth plan-wide).
fn plan(n: usize) -> String {
    let mut s = String::from("plan p under i {\n");
    let grant = |k: usize| match k % 7 {
        0..=2 => format!(
            "grant fs read \"/srv/d{k}/**/*.txt\" except \"/srv/**/.env\", \"/srv/**/id_*\"\n"
        ),
        3 => format!("grant fs write, create \"/srv/out/f{k}\"\n"),
        4 => format!("grant exec \"/usr/bin/tool{k}\"\n"),
        5 => format!("grant net connect 10.{}.{}.0/24 port 443\n", k % 8, k % 200),
        _ => format!(
            "grant net connect 10.{}.{}.{} port 8080\n",
            k % 8,
            k % 250,
            k % 199
        ),
    };
    for k in 0..n / 10 {
        s.push_str(&grant(k));
    }
    for step in 0..5 {
        let _ = writeln!(s, "step s{step} {{");
        for k in (n / 10..n).filter(|k| k % 5 == step) {
            s.push_str(&grant(k));
        }
        s.push_str("}\n");
    }
    s.push_str("}\n");
    s
}

fn build(text: &str) -> kapl_image::Image {
    let mut loader = kapl_check::MemoryLoader::new().with("/b.kapl", text);
    let fe = kapl_check::check_front(&mut loader, "/b.kapl");
    let Some(policy) = fe.policy else {
        panic!("{:?}", fe.diagnostics);
    };
    let opts = kapl_codegen::Options {
        policy: "b".into(),
        compiler: "bench".into(),
    };
    kapl_codegen::compile(&policy, &fe.sources, &opts)
        .unwrap_or_else(|d| panic!("{d:?}"))
        .image
}

fn main() {
    let objective = build(OBJECTIVE);
    for n in [100, 1000] {
        let image = build(&format!("{OBJECTIVE}\n{}", plan(n)));
        let p = &image.plans[0];
        let mut times: Vec<f64> = (0..11)
            .map(|_| {
                let t = Instant::now();
                let f = std::hint::black_box(check_image(&objective, &image)).unwrap();
                assert!(f.is_empty(), "{:?}", f.first());
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "{n:>5} grants, 5 steps: plan fs DFA {} states, exec DFA {} states, {} LPM entries; check {:.2} ms (median of 11; target ≤ 50 ms)",
            p.fs.states(),
            p.exec.states(),
            p.net.len(),
            times[5]
        );
    }
}
