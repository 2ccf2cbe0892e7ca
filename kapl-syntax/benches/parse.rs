//! Parse throughput on generated policies (lex + parse + literal checks).
//! Run with `cargo bench -p kapl-syntax --bench parse`; prints MB/s and the
//! ratio to the 10 MB/s target, measured in this run: by wall clock and by
//! this thread's CPU time (from `/proc/thread-self/stat`), which stays
//! meaningful on a machine shared with other work.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark driver")]

use kapl_syntax::{FileId, parse};
use std::hint::black_box;
use std::time::Instant;

/// A policy of about `lines` lines in the style of the shared examples.
fn policy(lines: usize) -> String {
    let mut s = String::from("use std.runtime\n\n");
    let mut i = 0;
    let mut count = 2;
    while count < lines {
        let block = format!(
            "// block {i}\nauthority tree{i} {{\n  fs read \"/home/dev/app{i}/**\", \"/srv/web{i}/{{a,b,c}}/*.log\"\n  fs read, write, create, delete \"/home/dev/app{i}/target/**\" except \"/home/dev/app{i}/target/.env\"\n  exec \"/usr/bin/{{cc,ld,ar,git}}\"\n}}\n\
             objective o{i} {{\n  about \"objective number {i}\"\n  bound {{\n    use tree{i}\n    net connect 10.{}.0.0/16, 2001:db8::{i:x} port 443, 8000-8099\n  }}\n  never {{ net connect any port 22 }}\n}}\n\
             plan p{i} under o{i} {{\n  grant use runtime.loader\n  step one {{ grant fs read \"/home/dev/app{i}/src/**\" }}\n  step two after one {{ grant exec \"/usr/bin/git\" }}\n}}\n",
            i % 256
        );
        count += block.lines().count();
        s.push_str(&block);
        i += 1;
    }
    s
}

/// This thread's user + system CPU time in seconds, if `/proc` tells.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesized command name; utime and stime are the
    // 14th and 15th fields of the whole line, in clock ticks (100 Hz here).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn main() {
    const TARGET_MB_S: f64 = 10.0;
    for lines in [1_000, 10_000, 100_000] {
        let text = policy(lines);
        let p = parse(FileId(0), &text);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics.first());
        // Repeat small inputs so each measurement covers at least ~20 MB.
        let reps = (20_000_000 / text.len()).max(1);
        let cpu0 = cpu_seconds();
        let start = Instant::now();
        for _ in 0..reps {
            black_box(parse(FileId(0), black_box(&text)));
        }
        let secs = start.elapsed().as_secs_f64();
        let bytes = (text.len() * reps) as f64;
        let mb_s = bytes / secs / 1e6;
        let cpu = match (cpu0, cpu_seconds()) {
            (Some(a), Some(b)) if b > a => {
                let c = bytes / (b - a) / 1e6;
                format!("; CPU time {c:>6.1} MB/s, {:.1}x", c / TARGET_MB_S)
            }
            _ => String::new(),
        };
        println!(
            "parse {lines:>7} lines ({:>6} KB): wall {mb_s:>6.1} MB/s, {:.1}x the {TARGET_MB_S} MB/s target{cpu}",
            text.len() / 1000,
            mb_s / TARGET_MB_S
        );
    }
}
