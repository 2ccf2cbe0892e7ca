//! Session-report benchmark (issue 17, item 2): `kapl-run report`'s page
//! for 100,000 synthetic records (4 steps, 240 processes, 2,000
//! directories, one decision in 10 denied). Prints the audit and page sizes
//! and the median build time of 5 runs; the browser's time to render the
//! page is printed by `cargo test -p kapl-runtime-bpf --test report
//! a_hundred_thousand -- --nocapture`. Run with
//! `cargo bench -p kapl-runtime --bench session_report`.

#![allow(clippy::expect_used, reason = "a benchmark fails loudly")]

use kapl_runtime::session_report::{Limits, build, synthetic::synthetic};
use std::time::Instant;

fn main() {
    let audit = synthetic(100_000);
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let b = build(&audit, &[], "bench", Limits::default());
        times.push(t.elapsed());
        size = b.html.len();
    }
    times.sort();
    println!(
        "100,000 records: audit {:.1} MB, page {:.2} MB, built in {:.0?} (median of 5)",
        audit.len() as f64 / 1e6,
        size as f64 / 1e6,
        times[times.len() / 2]
    );
}
