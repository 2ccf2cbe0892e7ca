//! Front-end benchmark: `cargo bench -p kaplc --bench frontend`.
//!
//! Prints parse+resolve(+lower) throughput on generated policies of about
//! 1k, 10k and 100k lines (target: at least 10 MB/s), and the wall time of
//! `kaplc check` on each example in a release build (target: under 50 ms),
//! each with its ratio to the target, all measured in this one run.
#![allow(clippy::panic, reason = "a benchmark fails by panicking")]

use kapl_check::{MemoryLoader, check_front};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A policy of about `lines` lines that uses every construct: authorities
/// (some using others), objectives with bounds and nevers, intents, plans
/// with ordered steps and grants of every rule kind.
fn generate(lines: usize) -> String {
    let mut s = String::from("use std.runtime\n\n");
    let mut i = 0;
    while s.len() < lines * 21 {
        let _ = write!(
            s,
            "authority tools{i} {{\n  fs read \"/srv/app{i}/**\", \"/etc/app{i}/*.conf\"\n  exec \"/usr/bin/{{git,grep,cat}}\"\n  use runtime.loader\n}}\n\n\
             objective obj{i} {{\n  about \"objective number {i}\"\n  bound {{\n    use tools{i}\n    fs read, write, create \"/srv/app{i}/data/**\"\n    net connect 10.{a}.0.0/16 port 443, 8000-8099\n    net connect 2001:db8::{i:x} port 443\n  }}\n  never {{\n    fs read \"/srv/app{i}/**/.env\"\n    net connect any port 22\n  }}\n}}\n\n\
             intent int{i} under obj{i} {{\n  about \"narrower\"\n  bound {{\n    use tools{i}\n    fs read \"/srv/app{i}/data/**\"\n  }}\n}}\n\n\
             plan plan{i} under int{i} {{\n  grant use runtime.loader\n  step fetch {{\n    grant fs read \"/srv/app{i}/data/in/*\"\n    grant exec \"/usr/bin/git\"\n  }}\n  step build after fetch {{\n    grant fs read \"/srv/app{i}/data/**\" except \"/srv/app{i}/data/secret/**\"\n  }}\n  step ship after fetch, build {{\n    grant net connect 10.{a}.1.2 port 443\n  }}\n}}\n\n",
            a = i % 256
        );
        i += 1;
    }
    s
}

fn time<T>(mut f: impl FnMut() -> T) -> (Duration, T) {
    // Best of several runs: the machine is shared.
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..5 {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed());
        last = Some(v);
    }
    match last {
        Some(v) => (best, v),
        None => panic!("no run"),
    }
}

fn main() {
    println!("front end on generated policies, release build, best of 5 runs each:");
    println!("  (parse+resolve = load, parse and resolve names: the 10 MB/s target;");
    println!("   lower = expanding every `use` into the flat IR; total = check_front)");
    for lines in [1_000, 10_000, 100_000] {
        let text = generate(lines);
        let parse = |f: kapl_syntax::FileId, t: &str| {
            let p = kapl_syntax::parse(f, t);
            (p.file, p.diagnostics)
        };
        let (dp, (loaded, resolved)) = time(|| {
            let mut l = MemoryLoader::new().with("bench.kapl", text.as_bytes());
            let (_, loaded, _) = kapl_check::load::load(&mut l, "bench.kapl", &parse);
            let (resolved, _) = kapl_check::resolve::resolve(&loaded);
            (loaded, resolved)
        });
        let (dw, _) = time(|| kapl_check::lower::lower(&loaded, &resolved, &[]));
        let (dt, fe) = time(|| {
            let mut l = MemoryLoader::new().with("bench.kapl", text.as_bytes());
            check_front(&mut l, "bench.kapl")
        });
        assert!(
            fe.diagnostics.is_empty() && fe.policy.is_some(),
            "generated policy does not check: {:?}",
            fe.diagnostics.first()
        );
        let mb = text.len() as f64 / 1e6;
        let rate = mb / dp.as_secs_f64();
        println!(
            "  {:>7} lines {:>5.2} MB: parse+resolve {:>8.2} ms = {:>6.1} MB/s ({:.2}x target); lower {:>8.2} ms; total {:>8.2} ms = {:>5.1} MB/s",
            text.lines().count(),
            mb,
            dp.as_secs_f64() * 1e3,
            rate,
            rate / 10.0,
            dw.as_secs_f64() * 1e3,
            dt.as_secs_f64() * 1e3,
            mb / dt.as_secs_f64(),
        );
    }

    println!("kaplc check on each example (process wall time, best of 5):");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut examples: Vec<_> = std::fs::read_dir(root.join("tests/examples"))
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    examples.sort();
    for ex in examples
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "kapl"))
    {
        let (d, out) = time(|| {
            Command::new(env!("CARGO_BIN_EXE_kaplc"))
                .args(["check", "--color", "never"])
                .arg(ex)
                .output()
        });
        let exit = out.map(|o| o.status.code().unwrap_or(-1)).unwrap_or(-1);
        let ms = d.as_secs_f64() * 1e3;
        println!(
            "  {:<20} {:>6.2} ms  exit {}  ({:.1}x under the 50 ms target)",
            ex.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            ms,
            exit,
            50.0 / ms
        );
    }
}
