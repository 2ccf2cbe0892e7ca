//! Automata benchmark: glob compile time and inclusion-check time for
//! realistic patterns (prints a table; run with
//! `cargo bench -p kapl-automata --bench automata`).

use kapl_automata::Dfa;
use kapl_syntax::glob::{Glob, parse_glob};
use kapl_syntax::{FileId, Span};
use std::time::Instant;

fn glob(text: &str) -> Option<Glob> {
    parse_glob(text, Span::new(FileId(0), 0, 0)).ok()
}

fn time<T>(n: u32, mut f: impl FnMut() -> T) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(f());
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

fn main() {
    let cases = [
        ("/srv/web/**", "/srv/**"),
        ("/srv/web/config/*.yaml", "/srv/web/**"),
        ("/srv/web/src/**/*.rs", "/srv/web/**/.env"),
        ("/home/dev/.cargo/{bin,registry,git}/**", "/home/dev/**"),
        (
            "/proc/self/{maps,exe,status,stat,statm,cmdline,environ,auxv,limits,mountinfo,cgroup}",
            "/proc/self/*",
        ),
        ("/usr/{lib,lib64,share}/**/*.{so,so.*,conf}", "/usr/lib/**"),
        ("/var/log/svc1/deploy-[0-9][0-9]-*.log", "/var/log/**"),
    ];
    println!(
        "{:<64} | {:>11} | {:>7} | {:>13}",
        "glob (against)", "compile µs", "states", "inclusion µs"
    );
    for (a, b) in cases {
        let (Some(ga), Some(gb)) = (glob(a), glob(b)) else {
            println!("{a}: does not parse");
            continue;
        };
        let compile = time(200, || Dfa::from_glob(&ga));
        let (da, db) = (Dfa::from_glob(&ga), Dfa::from_glob(&gb));
        let incl = time(2000, || da.is_subset_of(&db));
        let label = format!("{a} ({b})");
        let label: String = label.chars().take(64).collect();
        println!(
            "{label:<64} | {compile:>11.1} | {:>7} | {incl:>13.2}",
            da.state_count()
        );
    }
}
