//! The resolver row (issue 16, item 7): DNS queries answered through the
//! session's resolver against the same queries sent straight to the
//! server, on loopback. The server is `kapl-probe dns-serve` on
//! 127.0.0.1; the unconfined probe asks it directly, the probe in a
//! session asks 192.0.2.1:53, which the cgroup programs steer to the
//! session's resolver, which forwards to the server and admits the answer's
//! address in the kernel before releasing it. Each side sends 2,000
//! queries one after the other, each from a fresh socket; the two take
//! turns, 3 rounds, and each keeps its best round's p50 and p99.

use super::quick;
use crate::common::*;
use std::process::{Command, Stdio};

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// p50 and p99 in µs from `dns-loop`'s line.
fn parse(out: &str) -> Option<(u64, u64)> {
    let mut w = out.split_whitespace();
    (w.next()? == "dns-loop" && w.next()? == "ok").then_some(())?;
    Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
}

pub fn row() {
    let n = if quick() { "200" } else { "2000" };
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let server = format!("127.0.0.1:{port}");
    let _dns = Killed(
        Command::new(probe_bin())
            .args(["dns-serve", &server, "pypi.test=203.0.113.7"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start the DNS server"),
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    let t = Tmp::new("bench-resolver");
    let probe = probe_bin();
    let policy = format!(
        r#"use std.runtime
objective o {{ bound {{ net connect "*.test" port 443 use runtime.loader exec "{probe}" }} }}
plan p under o {{
  grant use runtime.loader
  grant exec "{probe}"
  step s {{ grant net connect "pypi.test" port 443 }}
}}
"#
    );
    let img = t.path("p.kapi");
    std::fs::write(&img, image_from_text("resolver", &policy)).expect("image");
    let o = kapl(&[
        "session",
        "start",
        &img,
        "--plan",
        "p",
        "--resolver",
        &server,
    ]);
    assert_eq!(o.status.code(), Some(0), "session start: {}", text(&o).1);
    let id = text(&o).0.trim().to_string();
    let _guard = SessionGuard(id.clone());
    let mut direct = (u64::MAX, u64::MAX);
    let mut steered = (u64::MAX, u64::MAX);
    let best = |a: (u64, u64), b: (u64, u64)| (a.0.min(b.0), a.1.min(b.1));
    for _ in 0..3 {
        let o = Command::new(probe)
            .args(["dns-loop", n, "pypi.test", &server])
            .output()
            .expect("probe");
        direct = best(direct, parse(&text(&o).0).expect("dns-loop direct"));
        let o = kapl(&[
            "exec",
            "--session",
            &id,
            "--",
            probe,
            "dns-loop",
            n,
            "pypi.test",
            "192.0.2.1:53",
        ]);
        steered = best(
            steered,
            parse(&text(&o).0).unwrap_or_else(|| panic!("dns-loop in the session: {}", text(&o).1)),
        );
    }
    println!(
        "| DNS query, direct vs through the session's resolver (µs, p50 / p99) | {} / {} | | {} / {} | p99 +{} µs | |",
        direct.0,
        direct.1,
        steered.0,
        steered.1,
        steered.1.saturating_sub(direct.1)
    );
}
