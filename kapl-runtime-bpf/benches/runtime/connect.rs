//! The TCP connect rows (issue 16, item 5): allowed connects to a
//! loopback listener, with 2,001 entries in the image's network maps.
//!
//! A connect's cost here is about 10–20 µs, so one SYN the listener drops
//! (its accept queue full while the accept thread waits for a core) adds
//! the kernel's 1 s SYN retransmission timeout: 100 µs to every connect
//! of a 10,000-connect round. That, not the programs, is what a round
//! with a drop measures. So the listener gets the host's largest accept
//! queue, and a round during which this network namespace counted a
//! listen overflow or a SYN retransmission is run again (up to
//! [`RETRIES`] times; the rounds kept with one anyway are counted on
//! stderr).
//!
//! - programs alone: the loop runs in a forked child in a cgroup with the
//!   programs attached, beside the same loop in a cgroup without;
//! - a `kapl-run` session: `kapl-probe connect-loop` (it times itself,
//!   so neither `kapl-run exec` nor process start-up is counted) under a
//!   real session (its Landlock TCP wall, seccomp filters, programs, and
//!   the supervisor reading the decisions), beside the probe run directly.

use super::{interleaved, per, quick, ratio};
use crate::common::*;
use kapl_syntax::ast::NetOp;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How many times a round hit by a dropped SYN is run again.
const RETRIES: usize = 5;

/// Rounds kept although a SYN was dropped during them.
static POLLUTED: AtomicU64 = AtomicU64::new(0);

/// A TCP listener on 127.0.0.1 with the largest accept queue the host
/// allows (`net.core.somaxconn`), and its port; a thread accepts and
/// drops every connection.
pub fn listener() -> u16 {
    // SAFETY: plain socket calls on a descriptor we own; the address is a
    // live sockaddr_in of the length given.
    let fd = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = size_of::<libc::sockaddr_in>() as u32;
        assert_eq!(
            libc::bind(fd, std::ptr::addr_of!(sa).cast(), len),
            0,
            "bind"
        );
        assert_eq!(libc::listen(fd, libc::SOMAXCONN), 0, "listen");
        OwnedFd::from_raw_fd(fd)
    };
    let l = std::net::TcpListener::from(fd);
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            drop(s)
        }
    });
    port
}

/// This network namespace's count of listen overflows and SYN
/// retransmissions (`/proc/net/netstat`, `TcpExt`).
fn drops() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .filter(|(n, _)| matches!(*n, "ListenOverflows" | "TCPSynRetrans"))
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum()
}

/// `round`, run again while a SYN was dropped during it (at most
/// [`RETRIES`] times).
pub fn clean(round: &dyn Fn() -> Duration) -> Duration {
    for _ in 0..RETRIES {
        let before = drops();
        let d = round();
        if drops() == before {
            return d;
        }
    }
    POLLUTED.fetch_add(1, Ordering::Relaxed);
    round()
}

/// Says on stderr how many rounds kept a dropped SYN (0: none).
pub fn say_polluted(row: &str) {
    let n = POLLUTED.swap(0, Ordering::Relaxed);
    eprintln!("bench: {row}: {n} rounds kept although a SYN was dropped during them");
}

/// 1,000 grants `net connect 10.i.0.0/24 port 443` (a TCP and a UDP
/// entry each) and the listener's port on 127.0.0.1: 2,001 entries.
fn grants(port: u16) -> Vec<G> {
    let mut g: Vec<G> = (0..1000u32)
        .map(|i| {
            let a = std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8));
            G::Net(NetOp::Connect, vec![(a.to_string(), 24)], vec![(443, 443)])
        })
        .collect();
    g.push(loopback(NetOp::Connect, port));
    g.push(probe_exec());
    g
}

/// One run of `kapl-probe connect-loop`, directly or in session `id`.
fn probe_loop(id: Option<&str>, port: u16, n: usize) -> Duration {
    let to = format!("127.0.0.1:{port}");
    let ns = n.to_string();
    let args = [probe_bin(), "connect-loop", &to, &ns];
    let mut c = match id {
        Some(id) => {
            let mut c = Command::new(kapl_run());
            c.args(["exec", "--session", id, "--"]).args(args);
            c
        }
        None => {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        }
    };
    let o = c
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let f: Vec<&str> = out.split_whitespace().collect();
    assert!(
        o.status.success() && f.len() == 3 && f[1] == "ok",
        "connect-loop (session {id:?}): {out}"
    );
    Duration::from_nanos(f[2].parse().unwrap())
}

/// The session row: allowed connects under a real `kapl-run` session.
pub fn session_row(port: u16, n: usize) {
    let t = Tmp::new("bench-connect");
    let img = write_image(&t, "p.kapi", one_step(vec![], "s", grants(port)));
    let audit = t.path("audit.jsonl");
    let s = Session::start(&img, Some(&audit));
    let reps = if quick() { 2 } else { 5 };
    let un = || clean(&|| probe_loop(None, port, n));
    let k = || clean(&|| probe_loop(Some(&s.id), port, n));
    let r = interleaved(reps, &[&un, &k]);
    let (un, k) = (r[0], r[1]);
    let summary = s.stop();
    println!(
        "| TCP connect in a `kapl-run` session, 2001 LPM entries (Landlock, seccomp, programs, supervisor) | {} | | {} | {:.2}× | |",
        per(un, n),
        per(k, n),
        ratio(k, un)
    );
    eprintln!("bench: connect session: {}", summary.trim());
    say_polluted("connect in a session");
}
