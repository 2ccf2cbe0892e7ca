//! Parse throughput on generated policies (lex + parse + literal checks).
//! Run with `cargo bench -p kapl-syntax --bench parse`; prints MB/s and the
//! ratio to the 10 MB/s target, measured in this run.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark driver")]

use kapl_syntax::{FileId, parse};
use std::hint::black_box;
use std::time::Instant;

/// A policy of about `lines` lines in the style of the shared examples.
fn policy(lines: usize) -> String {
    let mut s = String::from("use std.runtime\n\n");
    let mut i = 0;
    while s.lines().count() < lines {
        s.push_str(&format!(
            "// block {i}\nauthority tree{i} {{\n  fs read \"/home/dev/app{i}/**\", \"/srv/web{i}/{{a,b,c}}/*.log\"\n  fs read, write, create, delete \"/home/dev/app{i}/target/**\" except \"/home/dev/app{i}/target/.env\"\n  exec \"/usr/bin/{{cc,ld,ar,git}}\"\n}}\n\
             objective o{i} {{\n  about \"objective number {i}\"\n  bound {{\n    use tree{i}\n    net connect 10.{}.0.0/16, 2001:db8::{i:x} port 443, 8000-8099\n  }}\n  never {{ net connect any port 22 }}\n}}\n\
             plan p{i} under o{i} {{\n  grant use runtime.loader\n  step one {{ grant fs read \"/home/dev/app{i}/src/**\" }}\n  step two after one {{ grant exec \"/usr/bin/git\" }}\n}}\n",
            i % 256
        ));
        i += 1;
    }
    s
}

fn main() {
    const TARGET_MB_S: f64 = 10.0;
    for lines in [1_000, 10_000, 100_000] {
        let text = policy(lines);
        let p = parse(FileId(0), &text);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics.first());
        // Repeat small inputs so each measurement covers at least ~20 MB.
        let reps = (20_000_000 / text.len()).max(1);
        let start = Instant::now();
        for _ in 0..reps {
            black_box(parse(FileId(0), black_box(&text)));
        }
        let secs = start.elapsed().as_secs_f64();
        let mb_s = (text.len() * reps) as f64 / secs / 1e6;
        println!(
            "parse {lines:>7} lines ({:>6} KB): {mb_s:>7.1} MB/s, {:.1}x the {TARGET_MB_S} MB/s target",
            text.len() / 1000,
            mb_s / TARGET_MB_S
        );
    }
}
