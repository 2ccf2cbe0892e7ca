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
//! stderr). Every round starts once the listener has accepted every
//! connection made before it, so no round pays for another's.
//!
//! Each row is printed twice: the wall-clock time of the loop, and the
//! CPU time spent on it (`CLOCK_PROCESS_CPUTIME_ID` of the process making
//! the connects, which on this kernel, without IRQ time accounting, also
//! carries the loopback softirq work done on its behalf; in a session,
//! plus the supervisor's CPU time over the command). The wall-clock time
//! includes waiting for a core, which on a shared 2-core machine moves
//! more between rounds than the cost measured; the CPU time does not.
//!
//! - programs alone: the loop runs in a forked child in a cgroup with the
//!   programs attached, beside the same loop in a cgroup without;
//! - a `kapl-run` session: `kapl-probe connect-loop` (it times itself,
//!   so neither `kapl-run exec` nor process start-up is counted) under a
//!   real session (its Landlock TCP wall, seccomp filters, programs, and
//!   the supervisor reading the decisions), beside the probe run directly.

use super::{per, quick, ratio};
use crate::common::*;
use kapl_syntax::ast::NetOp;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Rounds of each configuration (each keeps its best): more than the
/// other rows', as a connect's cost moves most with the load on the
/// cores.
const ROUNDS: usize = 10;

/// How many times a round hit by a dropped SYN is run again.
const RETRIES: usize = 5;

/// Rounds kept although a SYN was dropped during them.
static POLLUTED: AtomicU64 = AtomicU64::new(0);

/// Connections the listener's thread has accepted, and those the rounds
/// have made.
static ACCEPTED: AtomicU64 = AtomicU64::new(0);
static MADE: AtomicU64 = AtomicU64::new(0);

/// One round: (wall-clock time, CPU time).
type Round = (Duration, Duration);

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
            drop(s);
            ACCEPTED.fetch_add(1, Ordering::Relaxed);
        }
    });
    port
}

/// Waits (at most 10 s) until the listener's thread has accepted every
/// connection the rounds made: otherwise the thread accepts one round's
/// connections while the next round runs, and only the configuration
/// measured second in each round pays for it.
fn caught_up() {
    let t = Instant::now();
    while ACCEPTED.load(Ordering::Relaxed) < MADE.load(Ordering::Relaxed) {
        if t.elapsed() > Duration::from_secs(10) {
            eprintln!("bench: the listener did not accept every connection within 10 s");
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
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
fn clean(round: &dyn Fn() -> Round) -> Round {
    for _ in 0..RETRIES {
        caught_up();
        let before = drops();
        let r = round();
        if drops() == before {
            return r;
        }
    }
    POLLUTED.fetch_add(1, Ordering::Relaxed);
    caught_up();
    round()
}

/// The best wall-clock and the best CPU time of each configuration over
/// `reps` rounds, the configurations taking turns within each round.
fn best(reps: usize, configs: &[&dyn Fn() -> Round]) -> Vec<Round> {
    let mut out = vec![(Duration::MAX, Duration::MAX); configs.len()];
    for _ in 0..reps {
        for (i, f) in configs.iter().enumerate() {
            let (w, c) = clean(*f);
            out[i] = (out[i].0.min(w), out[i].1.min(c));
        }
    }
    out
}

/// Prints a row's wall-clock and CPU-time lines.
fn rows(label: &str, cpu: &str, n: usize, un: Round, k: Round) {
    println!(
        "| {label} | {} | | {} | {:.2}× | |",
        per(un.0, n),
        per(k.0, n),
        ratio(k.0, un.0)
    );
    println!(
        "| {label}, CPU time{cpu} | {} | | {} | {:.2}× | |",
        per(un.1, n),
        per(k.1, n),
        ratio(k.1, un.1)
    );
    let kept = POLLUTED.swap(0, Ordering::Relaxed);
    eprintln!("bench: {label}: {kept} rounds kept although a SYN was dropped during them");
}

/// CPU time this process has used.
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime into our timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `n` TCP connects to 127.0.0.1:`port`, each closed with a reset
/// (`SO_LINGER` 0: no `TIME_WAIT` pile-up skewing later iterations).
fn connect_loop(port: u16, n: usize) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    for _ in 0..n {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        // SAFETY: setsockopt on the stream's own fd.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                std::ptr::addr_of!(linger).cast(),
                size_of::<libc::linger>() as u32,
            );
        }
    }
}

/// [`connect_loop`] in a forked child that joins cgroup `cg` first: its
/// wall-clock and CPU time.
fn in_cgroup(cg: &Path, port: u16, n: usize) -> Round {
    let mut p = [0; 2];
    // SAFETY: pipe into our array.
    unsafe { libc::pipe(p.as_mut_ptr()) };
    // SAFETY: fork from the bench's main thread; the child joins the
    // cgroup, runs the loop and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        std::fs::write(cg.join("cgroup.procs"), b"0").unwrap();
        let (t, c) = (Instant::now(), process_cpu());
        connect_loop(port, n);
        let times = [
            t.elapsed().as_nanos() as u64,
            (process_cpu() - c).as_nanos() as u64,
        ];
        // SAFETY: write the result and leave.
        unsafe {
            libc::write(p[1], times.as_ptr().cast(), 16);
            libc::_exit(0);
        }
    }
    // SAFETY: close our write end.
    unsafe { libc::close(p[1]) };
    // SAFETY: the read end is ours.
    let mut f = unsafe { std::fs::File::from_raw_fd(p[0]) };
    let mut b = [0u8; 16];
    let ok = f.read_exact(&mut b).is_ok();
    let mut st = 0;
    // SAFETY: reap the child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    assert!(ok, "connect child failed (status {st})");
    MADE.fetch_add(n as u64, Ordering::Relaxed);
    let ns = |i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().unwrap());
    (Duration::from_nanos(ns(0)), Duration::from_nanos(ns(8)))
}

/// The programs-alone rows: the loop in `cmd` (a step cgroup with the
/// programs, 2,001 entries) beside the loop in `plain` (none).
pub fn programs_row(plain: &Path, cmd: &Path, port: u16, n: usize) {
    let un = || in_cgroup(plain, port, n);
    let k = || in_cgroup(cmd, port, n);
    let r = best(ROUNDS, &[&un, &k]);
    rows(
        "TCP connect, 2001 LPM entries (image layout)",
        "",
        n,
        r[0],
        r[1],
    );
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

/// The CPU time process `pid` has used, all its threads.
fn cpu_of(pid: i32) -> Duration {
    let ns: u64 = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

/// One run of `kapl-probe connect-loop`, directly or in session `s`; in a
/// session the CPU time includes the supervisor's over the command.
fn probe_loop(s: Option<&Session>, port: u16, n: usize) -> Round {
    let to = format!("127.0.0.1:{port}");
    let ns = n.to_string();
    let args = [probe_bin(), "connect-loop", &to, &ns];
    let mut c = match s {
        Some(s) => {
            let mut c = Command::new(kapl_run());
            c.args(["exec", "--session", &s.id, "--"]).args(args);
            c
        }
        None => {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        }
    };
    let sup = s.map(|s| cpu_of(s.pid));
    let o = c
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let sup = s
        .zip(sup)
        .map_or(Duration::ZERO, |(s, c)| cpu_of(s.pid) - c);
    let out = String::from_utf8_lossy(&o.stdout);
    let f: Vec<&str> = out.split_whitespace().collect();
    assert!(
        o.status.success() && f.len() == 4 && f[1] == "ok",
        "connect-loop (in a session: {}): {out}",
        s.is_some()
    );
    MADE.fetch_add(n as u64, Ordering::Relaxed);
    let d = |s: &str| Duration::from_nanos(s.parse().unwrap());
    (d(f[2]), d(f[3]) + sup)
}

/// The session rows: allowed connects under a real `kapl-run` session.
pub fn session_row(port: u16, n: usize) {
    let t = Tmp::new("bench-connect");
    let img = write_image(&t, "p.kapi", one_step(vec![], "s", grants(port)));
    let audit = t.path("audit.jsonl");
    let s = Session::start(&img, Some(&audit));
    // What the supervisor spends on a command that makes no connect (its
    // start and end): counted in the CPU time of every round below.
    let idle = (0..3).map(|_| probe_loop(Some(&s), port, 0).1).min();
    let reps = if quick() { 2 } else { ROUNDS };
    let un = || probe_loop(None, port, n);
    let k = || probe_loop(Some(&s), port, n);
    let r = best(reps, &[&un, &k]);
    let summary = s.stop();
    rows(
        "TCP connect in a `kapl-run` session, 2001 LPM entries (Landlock, seccomp, programs, supervisor)",
        " (command + supervisor)",
        n,
        r[0],
        r[1],
    );
    eprintln!(
        "bench: connect session: supervisor + command CPU for a command making no connect: {:.2} ms; {}",
        idle.unwrap_or_default().as_secs_f64() * 1e3,
        summary.trim()
    );
}
