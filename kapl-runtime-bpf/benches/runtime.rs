//! The runtime benchmark (issue 5, item 10): ratios measured in one run.
//!
//! `cargo bench -p kapl-runtime-bpf --bench runtime` as root. Prints a
//! Markdown table. Every confined loop runs in a forked child that enters
//! the domain first; the unconfined twin runs the same loop the same way.
//! Configurations take turns within each round; each keeps its best round.
//! Set KAPL_BENCH_QUICK=1 for fewer iterations.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "runtime/connect.rs"]
mod connect;
#[path = "runtime/propose.rs"]
mod propose;
#[path = "runtime/resolver.rs"]
mod resolver;
#[path = "runtime/supervised.rs"]
mod supervised;

use common::*;
use kapl_image::bpf::NetMaps;
use kapl_image::{Family, NetEntry, PortGrant, Proto};
use kapl_runtime_bpf::bpf::{Event, NetEnforcer};
use kapl_runtime_bpf::cgroup::{self, Cgroup};
use kapl_runtime_bpf::domain::access;
use kapl_runtime_bpf::session::step_domain;
use kapl_syntax::ast::{NetOp, Right};
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

fn quick() -> bool {
    std::env::var_os("KAPL_BENCH_QUICK").is_some()
}

/// KAPL_BENCH_ONLY=open,stat,exec,net,connect,startup,build,supervised,git,propose,resolver
/// runs only those rows (`net` includes `connect`, the TCP connect row
/// under a `kapl-run` session).
fn want(section: &str) -> bool {
    match std::env::var("KAPL_BENCH_ONLY") {
        Ok(v) => v.split(',').any(|x| x.trim() == section),
        Err(_) => true,
    }
}

/// Runs `work` in a forked child after `ruleset` (if any) is applied and
/// after joining `cgroup` (if any); returns the child's measured time.
/// How a benchmark child is confined.
#[derive(Clone, Copy)]
enum Confine {
    None,
    /// A Landlock ruleset alone.
    Plain(RawFd),
    /// A step's ruleset and the two seccomp filters, as kapl-run's
    /// commands run.
    Kapl(RawFd),
}

/// Installs kapl-run's three seccomp filters (the supervised layer's, the
/// side doors', the logged one, as in `spawn`).
fn install_seccomp() -> bool {
    [
        // The supervised layer's filter first, as `spawn` installs it (its
        // listener is kept and never answered: the loops measured here make
        // no supervised call; the filter's cost on every open is measured).
        (kapl_runtime_bpf::seccomp::notify_filter(false), 8u64), // SECCOMP_FILTER_FLAG_NEW_LISTENER
        (kapl_runtime_bpf::seccomp::filter(), 0u64),
        (kapl_runtime_bpf::seccomp::logged_filter(), 2), // SECCOMP_FILTER_FLAG_LOG
    ]
    .iter()
    .all(|(f, flags)| {
        let prog = libc::sock_fprog {
            len: f.len() as u16,
            filter: f.as_ptr().cast_mut().cast(),
        };
        // SAFETY: `prog` points at a live filter of the length given.
        // (With NEW_LISTENER it returns the listener's descriptor.)
        unsafe { libc::syscall(libc::SYS_seccomp, 1, *flags, &prog as *const _) >= 0 }
    })
}

fn in_child(confine: Confine, cgroup: Option<&Path>, work: &dyn Fn()) -> Duration {
    let (ruleset, seccomp) = match confine {
        Confine::None => (None, false),
        Confine::Plain(fd) => (Some(fd), false),
        Confine::Kapl(fd) => (Some(fd), true),
    };
    let mut p = [0; 2];
    // SAFETY: pipe into our array.
    unsafe { libc::pipe(p.as_mut_ptr()) };
    // SAFETY: fork from the single-threaded bench.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        if let Some(cg) = cgroup {
            std::fs::write(cg.join("cgroup.procs"), b"0").unwrap();
        }
        if let Some(fd) = ruleset {
            // SAFETY: no_new_privs then landlock_restrict_self in the child.
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if libc::syscall(libc::SYS_landlock_restrict_self, fd, 0) != 0 {
                    libc::_exit(3);
                }
            }
        }
        if seccomp && !install_seccomp() {
            // SAFETY: leave the child.
            unsafe { libc::_exit(4) };
        }
        let t = Instant::now();
        work();
        let ns = t.elapsed().as_nanos() as u64;
        // SAFETY: write the result and leave.
        unsafe {
            libc::write(p[1], ns.to_ne_bytes().as_ptr().cast(), 8);
            libc::_exit(0);
        }
    }
    // SAFETY: close our write end.
    unsafe { libc::close(p[1]) };
    // SAFETY: the read end is ours.
    let mut f = unsafe { std::fs::File::from_raw_fd(p[0]) };
    let mut b = [0u8; 8];
    let ok = f.read_exact(&mut b).is_ok();
    let mut st = 0;
    // SAFETY: reap the child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    assert!(ok, "benchmark child failed (status {st})");
    Duration::from_nanos(u64::from_ne_bytes(b))
}

/// Best of `reps` rounds for each configuration, the configurations taking
/// turns within each round so that load changes hit them all alike.
fn interleaved(reps: usize, fs: &[&dyn Fn() -> Duration]) -> Vec<Duration> {
    let mut out = vec![Duration::MAX; fs.len()];
    for _ in 0..reps {
        for (i, f) in fs.iter().enumerate() {
            out[i] = out[i].min(f());
        }
    }
    out
}

fn open_close(path: &CString, n: usize) {
    for _ in 0..n {
        // SAFETY: open/close a path we own.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            assert!(fd >= 0, "open failed");
            libc::close(fd);
        }
    }
}

fn stat_loop(path: &CString, n: usize) {
    for _ in 0..n {
        // SAFETY: stat into a zeroed buffer.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::stat(path.as_ptr(), &mut st);
        }
    }
}

fn exec_loop(n: usize) {
    let prog = CString::new("/usr/bin/true").unwrap();
    let argv = [prog.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    for _ in 0..n {
        // SAFETY: vfork-free fork + execve of /usr/bin/true, then reap.
        unsafe {
            let pid = libc::fork();
            if pid == 0 {
                libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
            assert!(
                libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
                "exec failed"
            );
        }
    }
}

fn plain_landlock(root: &Path, exec: bool) -> OwnedFd {
    // What a hand-written sandbox needs to run /usr/bin/true, beside its
    // rule at the grant root.
    let usr = access::READ_FILE | access::READ_DIR | if exec { access::EXECUTE } else { 0 };
    ruleset(&[
        (root.to_path_buf(), access::READ_FILE | access::READ_DIR),
        ("/usr".into(), usr),
        ("/etc/ld.so.cache".into(), access::READ_FILE),
    ])
}

/// A Landlock ruleset handling every file-system right (ABI 7) with
/// exactly `rules` (path opened O_PATH, rights), made with the landlock
/// crate alone: what a hand-written sandbox does.
fn ruleset(rules: &[(std::path::PathBuf, u64)]) -> OwnedFd {
    use landlock::{
        ABI, Access, AccessFs, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr,
        RulesetCreatedAttr,
    };
    let mut rs = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI::V7))
        .unwrap()
        .create()
        .unwrap();
    for (path, acc) in rules {
        let fd = PathFd::new(path).unwrap();
        let acc = BitFlags::<AccessFs>::from_bits_truncate(*acc);
        rs = rs.add_rule(PathBeneath::new(fd, acc)).unwrap();
    }
    Option::<OwnedFd>::from(rs).unwrap()
}

/// A ruleset with one read-file rule on each of `dir/f{i}.txt`, `i <
/// files`, each opened O_PATH by its whole path: the raw cost of the rules
/// kapl-run adds for such a step.
fn raw_rules(dir: &Path, files: usize) -> OwnedFd {
    let rules: Vec<(std::path::PathBuf, u64)> = (0..files)
        .map(|i| (dir.join(format!("f{i}.txt")), access::READ_FILE))
        .collect();
    ruleset(&rules)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-12)
}

/// `d` over `n` operations, per operation.
fn per(d: Duration, n: usize) -> String {
    format!("{:.0} ns", d.as_nanos() as f64 / n as f64)
}

/// Runs `work` unconfined, under the plain Landlock ruleset `plain` and
/// under kapl's step ruleset `kapl` (with its seccomp filters), each in a
/// fresh child: the best of `reps` interleaved rounds of each.
fn three_ways(reps: usize, plain: RawFd, kapl: RawFd, work: &dyn Fn()) -> [Duration; 3] {
    let un = || in_child(Confine::None, None, work);
    let pl = || in_child(Confine::Plain(plain), None, work);
    let k = || in_child(Confine::Kapl(kapl), None, work);
    let r = interleaved(reps, &[&un, &pl, &k]);
    [r[0], r[1], r[2]]
}

/// A table row: per-operation times over `n` operations unconfined, plain
/// and kapl, and kapl's ratios to the first two.
fn row(label: &str, n: usize, un: Duration, pl: Duration, k: Duration) {
    println!(
        "| {label} | {} | {} | {} | {:.2}× | {:.2}× |",
        per(un, n),
        per(pl, n),
        per(k, n),
        ratio(k, un),
        ratio(k, pl)
    );
}

struct World {
    t: Tmp,
}

impl World {
    fn new() -> World {
        let t = Tmp::new("bench");
        t.write("root/a/f", "x");
        t.write("root/a/b/c/d/e/g/h/i/j/f", "x");
        World { t }
    }
    fn root(&self) -> String {
        self.t.path("root")
    }
    /// A policy with `n` grants: the root subtree, exec of /usr/bin/true,
    /// and n-2 read grants on other existing directories.
    fn image(&self, n: usize) -> kapl_image::Image {
        let others = n.saturating_sub(4);
        for i in 0..others {
            let _ = std::fs::create_dir_all(self.t.0.join(format!("other/g{i}")));
        }
        let mut grants = vec![
            G::Fs(&[Right::Read], vec![format!("{}/**", self.root())], vec![]),
            G::Exec(vec!["/usr/bin/true".into()]),
        ];
        for i in 0..others {
            grants.push(G::Fs(
                &[Right::Read],
                vec![self.t.path(&format!("other/g{i}/**"))],
                vec![],
            ));
        }
        let bytes = image(one_step(vec![], "s", grants));
        kapl_image::read(&bytes).unwrap()
    }
}

fn main() {
    // SAFETY: geteuid never fails.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench: run as root (cgroup BPF, kapl-run sessions)");
        std::process::exit(1);
    }
    // The nanosecond loops run in many short rounds: the best round is the
    // one no other process on the 2 cores preempted.
    let (n_ops, reps_ops) = if quick() { (10_000, 4) } else { (40_000, 25) };
    let n_exec = if quick() { 100 } else { 500 };
    let reps = if quick() { 2 } else { 5 };
    let w = World::new();
    let f1 = CString::new(format!("{}/a/f", w.root())).unwrap();
    let f9 = CString::new(format!("{}/a/b/c/d/e/g/h/i/j/f", w.root())).unwrap();
    println!(
        "| measurement | unconfined | plain Landlock (rule at grant root) | kapl-run | kapl / unconfined | kapl / plain |"
    );
    println!("|---|---|---|---|---|---|");
    let plain = plain_landlock(Path::new(&w.root()), true);
    let mut domains = Vec::new();
    let sizes: &[usize] = if want("open") || want("stat") || want("exec") {
        &[10, 1000, 10_000]
    } else {
        &[10]
    };
    for &n in sizes {
        let img = w.image(n);
        let t = Instant::now();
        let d = step_domain::build(&img.plans[0], 0).unwrap();
        let build = t.elapsed();
        eprintln!(
            "bench: {n} grants: {} rules, ruleset built in {:.1} ms",
            d.rules.len(),
            build.as_secs_f64() * 1e3
        );
        domains.push((n, d, img));
    }
    for (label, path) in [
        ("open+close, 1 level below", &f1),
        ("open+close, 9 levels below", &f9),
    ] {
        if !want("open") {
            break;
        }
        let un = || in_child(Confine::None, None, &|| open_close(path, n_ops));
        let pl = || {
            in_child(Confine::Plain(plain.as_raw_fd()), None, &|| {
                open_close(path, n_ops)
            })
        };
        let k0 = || {
            in_child(Confine::Kapl(domains[0].1.fd.as_raw_fd()), None, &|| {
                open_close(path, n_ops)
            })
        };
        let k1 = || {
            in_child(Confine::Kapl(domains[1].1.fd.as_raw_fd()), None, &|| {
                open_close(path, n_ops)
            })
        };
        let k2 = || {
            in_child(Confine::Kapl(domains[2].1.fd.as_raw_fd()), None, &|| {
                open_close(path, n_ops)
            })
        };
        // Where the walk stops: plain Landlock with its rule on the file's
        // own directory, granting read, and read plus truncate (what only a
        // write grant may). Every open asks for truncate as an optional
        // right, so the walk goes on to the root unless a rule on the way
        // grants truncate too.
        let dir = Path::new(std::str::from_utf8(path.as_bytes()).unwrap())
            .parent()
            .unwrap()
            .to_path_buf();
        let here =
            |extra: u64| ruleset(&[(dir.clone(), access::READ_FILE | access::READ_DIR | extra)]);
        let (dir_r, dir_rt) = (here(0), here(access::TRUNCATE));
        let pd = || {
            in_child(Confine::Plain(dir_r.as_raw_fd()), None, &|| {
                open_close(path, n_ops)
            })
        };
        let pdt = || {
            in_child(Confine::Plain(dir_rt.as_raw_fd()), None, &|| {
                open_close(path, n_ops)
            })
        };
        let r = interleaved(reps_ops, &[&un, &pl, &k0, &k1, &k2, &pd, &pdt]);
        for (i, what) in [(5, "read"), (6, "read + truncate")] {
            println!(
                "| {label}: plain Landlock with its rule on the file's directory ({what}) | {} | {} | | {:.2}× (plain / unconfined) | |",
                per(r[0], n_ops),
                per(r[i], n_ops),
                ratio(r[i], r[0]),
            );
        }
        for (i, (n, _, _)) in domains.iter().enumerate() {
            let k = r[2 + i];
            row(&format!("{label}, {n} grants"), n_ops, r[0], r[1], k);
        }
        if std::ptr::eq(path, &f9) {
            println!(
                "| open+close 9 deep: 10000 vs 10 grants | | | {} vs {} | {:.2}× | |",
                per(r[4], n_ops),
                per(r[2], n_ops),
                ratio(r[4], r[2])
            );
        }
    }
    if want("stat") {
        let [un, pl, k] = three_ways(
            reps_ops,
            plain.as_raw_fd(),
            domains[2].1.fd.as_raw_fd(),
            &|| stat_loop(&f9, n_ops),
        );
        row("stat, 9 levels below, 10000 grants", n_ops, un, pl, k);
    }
    if want("exec") {
        let [un, pl, k] = three_ways(
            reps,
            plain.as_raw_fd(),
            domains[1].1.fd.as_raw_fd(),
            &|| exec_loop(n_exec),
        );
        row("exec /usr/bin/true, 1000 grants", n_exec, un, pl, k);
    }
    // Network: connect through the cgroup hooks.
    let port = connect::listener();
    let n_conn = if quick() { 2_000 } else { 10_000 };
    if want("net") {
        // 1,000 blocks 10.i.0.0/24 port 443 (TCP and UDP) and 127.0.0.1 on
        // the listener's port (TCP): 2,001 entries of the image's layout.
        let entry = |addr: std::net::Ipv4Addr, prefix, proto, lo, hi, grant| NetEntry {
            step: 0,
            op: kapl_image::NetOp::Connect,
            proto,
            family: Family::V4,
            addr: std::net::IpAddr::V4(addr),
            prefix,
            ports: vec![PortGrant { lo, hi, grant }],
        };
        let mut plan = domains[0].2.plans[0].clone();
        plan.net = (0..1000u32)
            .flat_map(|i| {
                let a = std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8));
                [
                    entry(a, 24, Proto::Tcp, 443, 443, i),
                    entry(a, 24, Proto::Udp, 443, 443, i),
                ]
            })
            .chain(std::iter::once(entry(
                std::net::Ipv4Addr::LOCALHOST,
                32,
                Proto::Tcp,
                port,
                port,
                5000,
            )))
            .collect();
        let maps = NetMaps::of(&plan);
        let mut bpf = NetEnforcer::load(&maps).unwrap();
        let root = cgroup::cgroup2_root().unwrap();
        let sess = Cgroup::create(&root, &format!("kapl-bench-{}", std::process::id())).unwrap();
        let step = Cgroup::create(sess.path(), "step").unwrap();
        let cmd = Cgroup::create(step.path(), "cmd").unwrap();
        let links = bpf.attach(step.fd()).unwrap();
        bpf.set_cgroup_step(cmd.id(), 0).unwrap();
        let plain_cg = Cgroup::create(sess.path(), "plain").unwrap();
        connect::programs_row(plain_cg.path(), cmd.path(), port, n_conn);
        let mut evs = Vec::new();
        bpf.drain(&mut evs);
        // Decision throughput: denied connects (fast EPERM), events drained
        // concurrently by this process. Once as fast as one core makes
        // them (a flood: the consumer here decodes ~1 M/s, so a faster
        // producer overruns the 16 MB ring buffer and the loss is counted),
        // once offered at a steady 250,000/s (the target: >= 200,000/s,
        // none lost).
        let n_deny: u64 = if quick() { 200_000 } else { 1_000_000 };
        let mut run_gen = |rate: Option<u64>| {
            let lost0 = bpf.lost().unwrap();
            let t0 = Instant::now();
            // SAFETY: fork a generator in the session cgroup.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                std::fs::write(cmd.path().join("cgroup.procs"), b"0").unwrap();
                let start = Instant::now();
                // SAFETY: raw socket + connect loop; each attempt is refused by the hook.
                unsafe {
                    let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
                    let mut sa: libc::sockaddr_in = std::mem::zeroed();
                    sa.sin_family = libc::AF_INET as u16;
                    sa.sin_port = 9u16.to_be();
                    sa.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::new(192, 0, 2, 1)).to_be();
                    for i in 0..n_deny {
                        if let Some(r) = rate
                            && i % 500 == 0
                        {
                            let due = Duration::from_nanos(i * 1_000_000_000 / r);
                            while start.elapsed() < due {
                                std::hint::spin_loop();
                            }
                        }
                        libc::connect(
                            s,
                            std::ptr::addr_of!(sa).cast(),
                            size_of::<libc::sockaddr_in>() as u32,
                        );
                    }
                    libc::_exit(0);
                }
            }
            let mut got = 0usize;
            let mut st = 0;
            loop {
                // SAFETY: non-blocking reap check.
                let exited = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) } == pid;
                // Once the child is reaped, this drain takes its last events.
                let mut v = Vec::new();
                bpf.drain(&mut v);
                got += v
                    .iter()
                    .filter(|e| matches!(e, Event::Net(n) if !n.allowed))
                    .count();
                if exited {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            let el = t0.elapsed();
            let lost = bpf.lost().unwrap() - lost0;
            (got, lost, got as f64 / el.as_secs_f64())
        };
        let (got, lost, rate) = run_gen(None);
        println!(
            "| network decisions reported, flood of {n_deny} denied connects | | | {rate:.0} events/s | {got} events, {lost} lost | |"
        );
        let (got, lost, rate) = run_gen(Some(250_000));
        println!(
            "| network decisions reported, {n_deny} denied connects offered at 250,000/s | | | {rate:.0} events/s | {got} events, {lost} lost | |"
        );
        drop(links);
        drop(bpf);
        for c in [cmd, plain_cg, step, sess] {
            c.remove().unwrap();
        }
    }
    if want("net") || want("connect") {
        connect::session_row(port, n_conn);
    }
    // kapl-run exec start-up vs a plain exec.
    if want("startup") {
        let img_path = w.t.path("startup.kapi");
        std::fs::write(&img_path, kapl_image::write(&domains[0].2).unwrap()).unwrap();
        let bin = env!("CARGO_BIN_EXE_kapl-run");
        let o = std::process::Command::new(bin)
            .args(["session", "start", &img_path, "--plan", "p"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
        // Rounds of n commands each, the two configurations taking turns;
        // best round of each, like the other rows.
        let (n, rounds) = if quick() { (10, 4) } else { (25, 10) };
        let plain_round = || {
            let t = Instant::now();
            for _ in 0..n {
                assert!(
                    std::process::Command::new("/usr/bin/true")
                        .status()
                        .unwrap()
                        .success()
                );
            }
            t.elapsed()
        };
        let kapl_round = || {
            let t = Instant::now();
            for _ in 0..n {
                assert!(
                    std::process::Command::new(bin)
                        .args(["exec", "--session", &id, "--", "/usr/bin/true"])
                        .status()
                        .unwrap()
                        .success()
                );
            }
            t.elapsed()
        };
        let r = interleaved(rounds, &[&plain_round, &kapl_round]);
        let (plain_t, kapl_t) = (r[0], r[1]);
        let _ = std::process::Command::new(bin)
            .args(["session", "stop", "--session", &id])
            .output();
        let (a, b) = (
            plain_t.as_secs_f64() * 1e3 / n as f64,
            kapl_t.as_secs_f64() * 1e3 / n as f64,
        );
        println!(
            "| `kapl-run exec` start-up (10 grants) | {a:.2} ms | | {b:.2} ms | +{:.2} ms | |",
            b - a
        );
    }
    // Ruleset build for per-entry rules vs the raw cost of those rules.
    for files in [10_000usize, if quick() { 20_000 } else { 100_000 }] {
        if !want("build") {
            break;
        }
        let dir = w.t.0.join(format!("files{files}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..files {
            let p = dir.join(format!("f{i}.txt"));
            if !p.exists() {
                std::fs::write(&p, b"").unwrap();
            }
        }
        let bytes = image(one_step(
            vec![],
            "s",
            vec![G::Fs(
                &[Right::Read],
                vec![format!("{}/*.txt", dir.display())],
                vec![],
            )],
        ));
        let img = kapl_image::read(&bytes).unwrap();
        // Side by side, best of `reps` each: the walk and build kapl-run
        // does, and the raw rules alone.
        let (mut kapl, mut raw, mut nrules) = (Duration::MAX, Duration::MAX, 0);
        for _ in 0..reps {
            let t = Instant::now();
            let d = step_domain::build(&img.plans[0], 0).unwrap();
            kapl = kapl.min(t.elapsed());
            nrules = d.rules.len();
            drop(d);
            let t = Instant::now();
            let r = raw_rules(&dir, files);
            raw = raw.min(t.elapsed());
            drop(r);
        }
        println!(
            "| ruleset build, {files} existing files ({nrules} rules) | | raw {:.0} ms | {:.0} ms | {:.2}× raw | |",
            raw.as_secs_f64() * 1e3,
            kapl.as_secs_f64() * 1e3,
            ratio(kapl, raw)
        );
    }
    // The supervised layer under a real session: name-making calls, git.
    if want("supervised") || want("git") {
        let sw = supervised::World::new();
        if want("supervised") {
            supervised::files(&sw);
        }
        if want("git") {
            supervised::git(&sw);
        }
    }
    // A plan proposed into a session pinned to an objective.
    if want("propose") {
        propose::row();
    }
    // DNS through the session's resolver.
    if want("resolver") {
        resolver::row();
    }
    let _ = NetOp::Connect;
}
