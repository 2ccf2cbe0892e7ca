//! Supervisor faults, load and races (issue 6 parts 2 and 3), on the real
//! kernel as root: the supervisor or its watchdog killed, a process tree
//! escaping with double fork + `setsid` across a step switch, storms of
//! denied opens and sends, a step switch raced against busy commands, and a
//! thousand commands in a row. A missing kernel feature makes these FAIL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
use common::*;
use kapl_syntax::ast::{NetOp, Right};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime into our timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Samples the latency of a trivial operation outside the session (stat
/// of `/` and a 1 ms sleep) until `stop` is set; returns the overshoot of
/// each sample over 1 ms.
fn sampler(
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let t = Instant::now();
            let _ = std::fs::metadata("/");
            std::thread::sleep(Duration::from_millis(1));
            v.push(t.elapsed().saturating_sub(Duration::from_millis(1)));
        }
        v
    })
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v.get(((v.len() as f64 - 1.0) * p) as usize)
        .copied()
        .unwrap_or_default()
}

/// Every loss a status or summary line reports: `N events lost` (ring
/// buffer) plus `M audit records lost`.
fn lost_of(line: &str) -> u64 {
    let num = |what: &str| -> u64 {
        let i = line
            .find(what)
            .unwrap_or_else(|| panic!("{what} in {line}"));
        line[..i]
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a number before {what}: {line}"))
    };
    num(" events lost") + num(" audit records lost")
}

/// The tests of this file run one at a time: they measure timing and
/// count processes, programs and descriptors.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn pidfd(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open on a pid; the fd is fresh and ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a fresh fd.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether the process behind `fd` has exited, waiting up to `timeout`.
fn exited(fd: &std::os::fd::OwnedFd, timeout: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on our pidfd.
    unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) == 1 }
}

fn children(pid: i32) -> Vec<i32> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            v.extend(
                std::fs::read_to_string(t.path().join("children"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|x| x.parse::<i32>().ok()),
            );
        }
    }
    v
}

/// The session's watchdog: the supervisor's one child outside the
/// session's cgroups.
fn watchdog_of(sup: i32) -> i32 {
    let w: Vec<i32> = children(sup)
        .into_iter()
        .filter(|c| {
            !std::fs::read_to_string(format!("/proc/{c}/cgroup"))
                .unwrap_or_default()
                .contains("/kapl-")
        })
        .collect();
    assert_eq!(
        w.len(),
        1,
        "one watchdog among the children of {sup}: {w:?}"
    );
    w[0]
}

/// BPF objects a process holds, by kind, from its fds' fdinfo: (kind,
/// id) with kind `prog`, `map` or `link`.
fn bpf_objects(pid: i32) -> Vec<(&'static str, u32)> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return v;
    };
    for e in rd.flatten() {
        let target = std::fs::read_link(e.path()).unwrap_or_default();
        let (kind, key) = match target.to_string_lossy().as_ref() {
            "anon_inode:bpf-prog" => ("prog", "prog_id:"),
            "anon_inode:bpf-map" => ("map", "map_id:"),
            "anon_inode:bpf_link" => ("link", "link_id:"),
            _ => continue,
        };
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            e.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        if let Some(id) = info
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|x| x.trim().parse().ok())
        {
            v.push((kind, id));
        }
    }
    v.sort();
    v.dedup();
    v
}

/// Whether the kernel still has BPF object `id` of `kind` (bpf(2)
/// `*_GET_FD_BY_ID`; the fd is closed at once).
fn bpf_exists(kind: &str, id: u32) -> bool {
    let cmd = match kind {
        "prog" => 13,
        "map" => 14,
        _ => 30,
    };
    let mut attr = [0u64; 16];
    attr[0] = u64::from(id);
    // SAFETY: bpf(2) with a zeroed attr of 128 bytes whose first word is
    // the id.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), size_of_val(&attr)) };
    if fd >= 0 {
        // SAFETY: closing the fd we were given.
        unsafe { libc::close(fd as i32) };
        return true;
    }
    let e = std::io::Error::last_os_error();
    assert_eq!(
        e.raw_os_error(),
        Some(libc::ENOENT),
        "bpf GET_FD_BY_ID {kind} {id}: {e}"
    );
    false
}

/// (audit `enabled`, the original value and hold count in /run/kapl/audit).
fn audit_state() -> (u32, u32, u32) {
    let en = kapl_runtime_bpf::audit::audit_enabled().expect("AUDIT_GET");
    let st = std::fs::read_to_string("/run/kapl/audit").unwrap_or_default();
    let mut it = st.split_whitespace().filter_map(|x| x.parse().ok());
    (en, it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// What a process that died with its session must have left: nothing.
/// `pids` are the session's processes (pidfds taken before the kill),
/// `objs` the supervisor's BPF objects, `watchdog` its watchdog.
fn assert_all_gone(
    tag: &str,
    cg: &Path,
    pids: &[(i32, std::os::fd::OwnedFd)],
    objs: &[(&'static str, u32)],
    watchdog: &std::os::fd::OwnedFd,
    audit_before: (u32, u32, u32),
) {
    let t = Instant::now();
    for (pid, fd) in pids {
        assert!(
            exited(fd, Duration::from_secs(10)),
            "{tag}: session process {pid} still runs 10 s after the supervisor died"
        );
    }
    let procs = t.elapsed();
    let cgs = wait_until(
        &format!("{tag}: session cgroup removed"),
        Duration::from_secs(10),
        || !cg.exists(),
    );
    assert!(
        exited(watchdog, Duration::from_secs(10)),
        "{tag}: the watchdog did not finish"
    );
    let progs = wait_until(
        &format!("{tag}: the session's BPF programs, maps and links freed"),
        Duration::from_secs(10),
        || objs.iter().all(|(k, id)| !bpf_exists(k, *id)),
    );
    eprintln!(
        "{tag}: {} processes gone after {procs:?}, cgroups after {cgs:?}, {} BPF objects after {progs:?}",
        pids.len(),
        objs.len()
    );
    // The dead session's audit hold is released: every hold left belongs
    // to a live session (each has a `kapl-*` cgroup while it holds one;
    // other engineers' sessions may run meanwhile).
    let root = kapl_runtime_bpf::cgroup::cgroup2_root().unwrap();
    let live = || {
        std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("kapl-"))
            .count() as u32
    };
    wait_until(
        &format!("{tag}: the dead session's audit hold released"),
        Duration::from_secs(10),
        || audit_state().2 <= live(),
    );
    let (en, orig, refs) = audit_state();
    if refs == 0 {
        assert_eq!(
            en, orig,
            "{tag}: no session holds audit: `enabled` as found"
        );
        if audit_before.2 == 0 {
            assert_eq!(en, audit_before.0, "{tag}: audit `enabled` as before");
        }
    }
}

/// A session (or one-shot) whose supervisor is killed: a policy with a
/// readable file, a writable output directory and one TCP port.
fn fault_policy(t: &Tmp, port: u16) -> String {
    t.write("a/x", "in a\n");
    std::fs::create_dir_all(t.0.join("out")).unwrap();
    write_image(
        t,
        "p.kapi",
        one_step(
            vec![probe_exec()],
            "a",
            vec![
                G::Fs(&[Right::Read], vec![t.path("a/**")], vec![]),
                G::Fs(
                    &[Right::Read, Right::Write, Right::Create],
                    vec![t.path("out/**")],
                    vec![],
                ),
                loopback(NetOp::Connect, port),
            ],
        ),
    )
}

/// Runs the `escape` probe in `s`: a grandchild (double fork + `setsid`)
/// that goes on reading a/x and connecting to `port`, logging to
/// out/escape. Returns that file and the grandchild's pid.
fn escape(s: &Session, t: &Tmp, port: u16) -> (String, i32) {
    let out = t.path("out/escape");
    let o = s.exec(&[
        probe_bin(),
        "escape",
        &out,
        &t.path("a/x"),
        &format!("127.0.0.1:{port}"),
    ]);
    assert_eq!(text(&o).0, "escape ok\n", "{}", text(&o).1);
    let esc = escapee(&out);
    (out, esc)
}

/// The pid an `escape` probe's grandchild wrote first in `out`.
fn escapee(out: &str) -> i32 {
    let mut pid = 0;
    wait_until("the escapee wrote its pid", Duration::from_secs(10), || {
        pid = std::fs::read_to_string(out)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("pid "))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        pid > 0
    });
    pid
}

/// pidfds of `pids` (those still running).
fn pidfds(pids: &[i32]) -> Vec<(i32, std::os::fd::OwnedFd)> {
    pids.iter()
        .filter_map(|p| pidfd(*p).map(|f| (*p, f)))
        .collect()
}

/// The scene of a supervisor fault, the tests of this file serialized:
/// `fault_policy` over a listener's port, and audit's state before.
struct Fault {
    t: Tmp,
    port: u16,
    img: String,
    audit_before: (u32, u32, u32),
    _listener: std::net::TcpListener,
    _serial: std::sync::MutexGuard<'static, ()>,
}

fn fault(tag: &str) -> Fault {
    let _serial = serial();
    let t = Tmp::new(tag);
    let (_listener, port) = listener();
    let img = fault_policy(&t, port);
    Fault {
        audit_before: audit_state(),
        t,
        port,
        img,
        _listener,
        _serial,
    }
}

impl Fault {
    /// A session of the policy, its cgroup, and a long-lived command in it.
    fn busy_session(&self) -> (Session, PathBuf, std::process::Child) {
        let s = Session::start(&self.img, None);
        let cg = s.cgroup();
        let a = format!("read:{}", self.t.path("a/x"));
        let busy = s.spawn(&[probe_bin(), "busy", "0", &a]);
        (s, cg, busy)
    }
}

// ---- supervisor faults ----

#[test]
fn sigkill_of_the_session_supervisor_ends_every_session_process() {
    let f = fault("fault-sup");
    let Fault { t, port, .. } = &f;
    // A long-lived command, and a double-forked, setsid, re-parented one.
    let (s, cg, mut busy) = f.busy_session();
    let (_, esc) = escape(&s, t, *port);
    assert!(
        !children(s.pid).contains(&esc),
        "the escapee left the supervisor's children"
    );
    wait_until("both commands run", Duration::from_secs(10), || {
        tree_pids(&cg).len() >= 2
    });
    let pids: Vec<i32> = tree_pids(&cg);
    assert!(
        pids.contains(&esc),
        "the escapee is still in the session's cgroups"
    );
    let fds = pidfds(&pids);
    let objs = bpf_objects(s.pid);
    assert!(
        objs.iter().filter(|(k, _)| *k == "link").count() >= 8,
        "the supervisor holds the 7 cgroup links and the exec tracer's: {objs:?}"
    );
    let wd = pidfd(watchdog_of(s.pid)).unwrap();
    // SAFETY: killing the supervisor this test started.
    assert_eq!(unsafe { libc::kill(s.pid, libc::SIGKILL) }, 0);
    assert_all_gone("session", &cg, &fds, &objs, &wd, f.audit_before);
    // The client of the killed command learns it, and so does a later one.
    let st = busy.wait().unwrap();
    assert!(!st.success(), "the busy command's client: {st}");
    let o = s.exec(&["/usr/bin/true"]);
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains(&format!("error[KAPL0808]: session {} is not running", s.id)),
        "{err}"
    );
    assert!(
        !kapl_runtime_bpf::control::registry_dir()
            .join(&s.id)
            .exists(),
        "the dead session's registry entry is gone"
    );
    assert_no_leftover_cgroups();
}

#[test]
fn sigkill_of_a_one_shot_ends_its_command_tree() {
    let f = fault("fault-one");
    let Fault { t, port, img, .. } = &f;
    let out = t.path("out/escape");
    let mut one = Command::new(kapl_run())
        .args([
            img.as_str(),
            "--plan",
            "p",
            "--",
            probe_bin(),
            "escape",
            &out,
        ])
        .arg(t.path("a/x"))
        .arg(format!("127.0.0.1:{port}"))
        .arg("stay")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sup = one.id() as i32;
    let cg = kapl_runtime_bpf::cgroup::cgroup2_root()
        .unwrap()
        .join(format!("kapl-oneshot-{sup}"));
    let esc = escapee(&out);
    wait_until(
        "the probe and its escapee run",
        Duration::from_secs(10),
        || tree_pids(&cg).len() >= 2,
    );
    let pids = tree_pids(&cg);
    assert!(pids.contains(&esc));
    let fds = pidfds(&pids);
    let objs = bpf_objects(sup);
    assert!(objs.iter().any(|(k, _)| *k == "link"), "{objs:?}");
    let wd = pidfd(watchdog_of(sup)).unwrap();
    one.kill().unwrap();
    let _ = one.wait();
    assert_all_gone("one-shot", &cg, &fds, &objs, &wd, f.audit_before);
    assert_no_leftover_cgroups();
}

#[test]
fn a_killed_watchdog_is_replaced_and_the_replacement_still_guards() {
    let f = fault("fault-wd");
    let t = &f.t;
    let (s, cg, mut busy) = f.busy_session();
    wait_until("the command runs", Duration::from_secs(10), || {
        !tree_pids(&cg).is_empty()
    });
    let first = watchdog_of(s.pid);
    let first_fd = pidfd(first).unwrap();
    // SAFETY: killing the watchdog of the session this test started.
    assert_eq!(unsafe { libc::kill(first, libc::SIGKILL) }, 0);
    assert!(exited(&first_fd, Duration::from_secs(5)));
    let mut second = 0;
    let took = wait_until("a new watchdog", Duration::from_secs(5), || {
        second = children(s.pid)
            .into_iter()
            .find(|c| {
                *c != first
                    && !std::fs::read_to_string(format!("/proc/{c}/cgroup"))
                        .unwrap_or_default()
                        .contains("/kapl-")
            })
            .unwrap_or(0);
        second > 0
    });
    eprintln!("watchdog {first} killed, {second} replaced it after {took:?}");
    // The session carried on: its command still runs, and it says so.
    let pids = tree_pids(&cg);
    assert_eq!(pids.len(), 1, "the command kept running: {pids:?}");
    let st = s.status();
    assert!(st.contains("watchdog restarted 1 times"), "{st}");
    let o = s.exec(&[probe_bin(), "read", &t.path("a/x")]);
    assert_eq!(text(&o).0, "read ok\n", "{}", text(&o).1);
    // The replacement does the first one's job.
    let fds = pidfds(&pids);
    let objs = bpf_objects(s.pid);
    let wd = pidfd(second).unwrap();
    // SAFETY: killing the supervisor this test started.
    assert_eq!(unsafe { libc::kill(s.pid, libc::SIGKILL) }, 0);
    assert_all_gone("watchdog replaced", &cg, &fds, &objs, &wd, f.audit_before);
    assert!(!busy.wait().unwrap().success());
    assert_no_leftover_cgroups();
}

/// Two steps: `a` reads a/**, writes out/**, connects to port `pa`;
/// `b` (after a) reads b/** and connects to port `pb`.
fn two_step_policy(t: &Tmp, pa: u16, pb: u16) -> String {
    t.write("a/x", "in a\n");
    t.write("b/y", "in b\n");
    std::fs::create_dir_all(t.0.join("out")).unwrap();
    let net = |p: u16| loopback(NetOp::Connect, p);
    write_image(
        t,
        "p.kapi",
        plan_p(
            vec![probe_exec()],
            vec![
                step(
                    "a",
                    &[],
                    vec![
                        G::Fs(&[Right::Read], vec![t.path("a/**")], vec![]),
                        G::Fs(
                            &[Right::Read, Right::Write, Right::Create],
                            vec![t.path("out/**")],
                            vec![],
                        ),
                        net(pa),
                    ],
                ),
                step(
                    "b",
                    &[0],
                    vec![G::Fs(&[Right::Read], vec![t.path("b/**")], vec![]), net(pb)],
                ),
            ],
        ),
    )
}

/// The tests of this file serialized, and a session of `two_step_policy`
/// over two accepting listeners' ports (its audit file in `t`):
/// (serial guard, t, (pa, pb), session).
fn two_steps(tag: &str) -> (std::sync::MutexGuard<'static, ()>, Tmp, (u16, u16), Session) {
    let serial = serial();
    let t = Tmp::new(tag);
    let (pa, pb) = (accepting(), accepting());
    let img = two_step_policy(&t, pa, pb);
    let s = Session::start(&img, Some(&t.path("audit.jsonl")));
    (serial, t, (pa, pb), s)
}

/// A listener that accepts (and drops) connections until the test ends.
fn accepting() -> u16 {
    let (l, port) = listener();
    std::thread::spawn(move || for _ in l.incoming() {});
    port
}

/// One attempt of `busy`: (attempt, CLOCK_MONOTONIC ns, ok).
type Attempt = (String, u64, bool);

/// `KIND:TARGET@T outcome` lines of `busy`.
fn busy_lines(out: &str) -> Vec<Attempt> {
    out.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(' ')?;
            let (what, t) = name.rsplit_once('@')?;
            Some((what.to_string(), t.parse().ok()?, rest == "ok"))
        })
        .collect()
}

#[test]
fn a_double_forked_setsid_process_dies_at_the_step_switch() {
    let (_serial, t, (pa, pb), s) = two_steps("fault-tree");
    let audit = t.path("audit.jsonl");
    let (out, esc) = escape(&s, &t, pa);
    let esc_fd = pidfd(esc).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{esc}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let (ppid, sid): (i32, i32) = (fields[1].parse().unwrap(), fields[3].parse().unwrap());
    assert_ne!(ppid, s.pid, "re-parented away from the supervisor");
    assert_ne!(sid, s.pid, "in a session of its own");
    eprintln!("escapee {esc}: parent {ppid}, session {sid}");
    // It acts with step a's authority while a is current.
    wait_until(
        "the escapee acted in step a",
        Duration::from_secs(10),
        || {
            let l = busy_lines(&std::fs::read_to_string(&out).unwrap_or_default());
            l.iter().filter(|(_, _, ok)| *ok).count() >= 4
        },
    );
    let before = mono_ns();
    let o = kapl(&["step", "--session", &s.id, "b"]);
    let after = mono_ns();
    let (reply, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(
        reply.lines().next(),
        Some("step b: 1 processes of the previous step ended"),
        "{reply}"
    );
    // Dead by the time the reply arrived, not some time later.
    assert!(
        exited(&esc_fd, Duration::ZERO),
        "the escapee outlived the step switch"
    );
    std::thread::sleep(Duration::from_millis(300));
    let lines = busy_lines(&std::fs::read_to_string(&out).unwrap());
    let last = lines.iter().map(|(_, t, _)| *t).max().unwrap();
    assert!(
        last < after,
        "the escapee acted after the switch reply ({last} >= {after})"
    );
    for (what, _, ok) in &lines {
        assert!(*ok, "step a's grants cover what it did: {what}");
    }
    eprintln!(
        "{} attempts by the escapee, the last {} µs before the switch reply ({} µs for the switch)",
        lines.len(),
        (after - last) / 1000,
        (after - before) / 1000
    );
    // Step b now: a's file and port are refused, b's are allowed.
    let o = s.exec(&[
        probe_bin(),
        "busy",
        "1",
        &format!("read:{}", t.path("a/x")),
        &format!("read:{}", t.path("b/y")),
        &format!("connect:127.0.0.1:{pa}"),
        &format!("connect:127.0.0.1:{pb}"),
    ]);
    let now: Vec<(String, bool)> = busy_lines(&text(&o).0)
        .into_iter()
        .map(|(w, _, ok)| (w, ok))
        .take(4)
        .collect();
    assert_eq!(
        now,
        vec![
            (format!("read:{}", t.path("a/x")), false),
            (format!("read:{}", t.path("b/y")), true),
            (format!("connect:127.0.0.1:{pa}"), false),
            (format!("connect:127.0.0.1:{pb}"), true),
        ]
    );
    drop(s);
    for r in records(Path::new(&audit)) {
        if r["pid"].as_i64() == Some(i64::from(esc))
            && !r["verdict"]
                .as_str()
                .is_some_and(|v| v.starts_with("command_"))
        {
            assert_eq!(
                (r["verdict"].as_str(), r["step"].as_str()),
                (Some("allow"), Some("a")),
                "the escapee only ever acted within step a: {r}"
            );
        }
    }
}

// ---- races: a step switch against a busy session ----

/// What each step lets `busy` do: (attempt, allowed).
fn verdicts(t: &Tmp, pa: u16, pb: u16, step_a: bool) -> Vec<(String, bool)> {
    vec![
        (format!("read:{}", t.path("a/x")), step_a),
        (format!("read:{}", t.path("b/y")), !step_a),
        (format!("connect:127.0.0.1:{pa}"), step_a),
        (format!("connect:127.0.0.1:{pb}"), !step_a),
    ]
}

#[test]
fn a_step_switch_raced_against_busy_commands_mixes_no_authority() {
    let (_serial, t, (pa, pb), s) = two_steps("race");
    let audit = t.path("audit.jsonl");
    let attempts: Vec<String> = verdicts(&t, pa, pb, true)
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    // Long-running busy commands in step a.
    let mut long = Vec::new();
    for _ in 0..3 {
        let c = Command::new(kapl_run())
            .args(["exec", "--session", &s.id, "--", probe_bin(), "busy", "0"])
            .args(&attempts)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        long.push(c);
    }
    // Short commands started back to back while the switch happens.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let racer = {
        let (stop, finished) = (stop.clone(), finished.clone());
        let (id, attempts) = (s.id.clone(), attempts.clone());
        std::thread::spawn(move || {
            let mut done = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let o = Command::new(kapl_run())
                    .args(["exec", "--session", &id, "--", probe_bin(), "busy", "1"])
                    .args(&attempts)
                    .stderr(Stdio::null())
                    .output()
                    .unwrap();
                done.push((
                    o.status.code(),
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                ));
                finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            done
        })
    };
    let cg = s.cgroup();
    wait_until("the long commands run", Duration::from_secs(10), || {
        tree_pids(&cg.join("step-0-a")).len() >= 3
    });
    std::thread::sleep(Duration::from_millis(500));
    let old_pids = pidfds(&tree_pids(&cg.join("step-0-a")));
    let before = mono_ns();
    let o = kapl(&["step", "--session", &s.id, "b"]);
    let after = mono_ns();
    let reply = text(&o).0;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    for (p, fd) in &old_pids {
        assert!(
            exited(fd, Duration::ZERO),
            "process {p} of step a survived into step b"
        );
    }
    assert!(
        !cg.join("step-0-a").exists(),
        "step a's cgroup is gone at the reply"
    );
    let ended: usize = reply
        .strip_prefix("step b: ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("switch reply: {reply}"));
    // A few more short commands, whatever the machine's load.
    let at_switch = finished.load(std::sync::atomic::Ordering::Relaxed);
    wait_until(
        "short commands after the switch",
        Duration::from_secs(60),
        || finished.load(std::sync::atomic::Ordering::Relaxed) >= at_switch + 4,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let short = racer.join().unwrap();
    // Every command's attempts are explained by one step's rules, in time
    // order: step a's before the reply, step b's after the request.
    let (va, vb) = (verdicts(&t, pa, pb, true), verdicts(&t, pa, pb, false));
    let classify = |out: &str| -> Option<(bool, Vec<Attempt>)> {
        let lines = busy_lines(out);
        let fits = |v: &[(String, bool)]| {
            lines
                .iter()
                .all(|(w, _, ok)| v.iter().any(|(a, allowed)| a == w && allowed == ok))
        };
        match (fits(&va), fits(&vb)) {
            (true, false) => Some((true, lines)),
            (false, true) => Some((false, lines)),
            _ if lines.is_empty() => None,
            _ => panic!("a command's attempts fit neither step alone: {out}"),
        }
    };
    let (mut in_a, mut in_b, mut killed) = (0, 0, 0);
    for (code, out) in long
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            (
                o.status.code(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
            )
        })
        .chain(short)
    {
        let Some((step_a, lines)) = classify(&out) else {
            continue;
        };
        if step_a {
            in_a += 1;
            let last = lines.iter().map(|(_, t, _)| *t).max().unwrap_or(0);
            assert!(
                last < after,
                "a step-a attempt after the switch reply: {out}"
            );
            if code == Some(137) {
                killed += 1;
            }
        } else {
            in_b += 1;
            let first = lines.iter().map(|(_, t, _)| *t).min().unwrap_or(u64::MAX);
            assert!(first > before, "a step-b attempt before the switch: {out}");
        }
    }
    eprintln!(
        "{in_a} commands in step a ({killed} killed at the switch), {in_b} in step b; reply: {}",
        reply.lines().next().unwrap_or("")
    );
    assert!(killed >= 3, "the three long commands were killed");
    assert!(
        (3..=killed + 1).contains(&ended),
        "the reply counts the ended processes: {ended}, {killed} killed"
    );
    assert!(in_b > 0, "commands ran in step b");
    eprintln!("status: {}", s.status().trim());
    drop(s);
    // Every recorded decision is one of its step's rules: a deny of
    // nothing the step grants, an allow of what it grants (denials of
    // what neither step grants, e.g. the probe's own /proc/PID/maps, fit).
    let (a_grants, b_grants) = (
        [t.path("a/x"), format!("127.0.0.1:{pa} (tcp)")],
        [t.path("b/y"), format!("127.0.0.1:{pb} (tcp)")],
    );
    let mut n = 0;
    for r in records(Path::new(&audit)) {
        let obj = r["object"].as_str().unwrap_or("").to_string();
        // Not decisions: a command's start and end records.
        if r["operation"] == "exec"
            || r["verdict"] == "lost"
            || r["verdict"]
                .as_str()
                .is_some_and(|v| v.starts_with("command_"))
        {
            continue;
        }
        n += 1;
        let ok = match (r["step"].as_str(), r["verdict"].as_str()) {
            (Some("a"), Some("deny")) => !a_grants.contains(&obj),
            (Some("b"), Some("deny")) => !b_grants.contains(&obj),
            (Some("a"), Some("allow")) => obj == a_grants[1],
            (Some("b"), Some("allow")) => obj == b_grants[1],
            _ => false,
        };
        assert!(ok, "a decision outside its step's rules: {r}");
    }
    assert!(n > 0, "decisions were recorded");
    for (step, obj) in [("a", &b_grants[0]), ("b", &a_grants[0])] {
        assert!(
            records(Path::new(&audit)).iter().any(|r| r["step"] == step
                && r["verdict"] == "deny"
                && r["object"] == obj.as_str()),
            "step {step}'s denial of {obj} was recorded"
        );
    }
}

// ---- leaks: a thousand commands in a row ----

/// Kinds of the fds a process holds, counted.
fn fd_kinds(pid: i32) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let t = std::fs::read_link(e.path())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kind = match t.split_once(':') {
            Some((k, _)) if !t.starts_with('/') => k.to_string(),
            _ if t.starts_with("/sys/fs/cgroup") => "cgroup".to_string(),
            _ => t,
        };
        *m.entry(kind).or_default() += 1;
    }
    m
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Entries of BPF map `id` (bpf(2) MAP_GET_FD_BY_ID + MAP_GET_NEXT_KEY,
/// 8-byte keys).
fn map_entries(id: u32) -> usize {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(id);
    // SAFETY: bpf(2) BPF_MAP_GET_FD_BY_ID with a zeroed 128-byte attr.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 14, attr.as_mut_ptr(), size_of_val(&attr)) };
    assert!(fd >= 0, "map {id}: {}", std::io::Error::last_os_error());
    let (mut key, mut next) = (0u64, 0u64);
    let mut n = 0;
    let mut first = true;
    loop {
        let mut a = [0u64; 16];
        a[0] = fd as u64;
        a[1] = if first { 0 } else { &raw mut key as u64 };
        a[2] = &raw mut next as u64;
        // SAFETY: BPF_MAP_GET_NEXT_KEY with pointers to our 8-byte keys.
        let r = unsafe { libc::syscall(libc::SYS_bpf, 4, a.as_mut_ptr(), size_of_val(&a)) };
        if r != 0 {
            break;
        }
        n += 1;
        key = next;
        first = false;
    }
    // SAFETY: closing our fd.
    unsafe { libc::close(fd as i32) };
    n
}

/// Programs attached directly to a cgroup, over the attach types the
/// runtime uses (bpf(2) BPF_PROG_QUERY).
fn attached(cg: &Path) -> u32 {
    use std::os::fd::AsRawFd;
    let dir = std::fs::File::open(cg).unwrap();
    let mut total = 0;
    // inet egress, sock_create, bind4/6, connect4/6, sendmsg4/6,
    // setsockopt and, where the runtime attaches them, connect_unix and
    // sendmsg_unix.
    for ty in [1u32, 2, 8, 9, 10, 11, 14, 15, 22, 49, 50] {
        let mut a = [0u32; 32];
        a[0] = dir.as_raw_fd() as u32;
        a[1] = ty;
        // SAFETY: BPF_PROG_QUERY without an id buffer: only the count.
        let r = unsafe { libc::syscall(libc::SYS_bpf, 16, a.as_mut_ptr(), size_of_val(&a)) };
        assert_eq!(
            r,
            0,
            "BPF_PROG_QUERY {ty}: {}",
            std::io::Error::last_os_error()
        );
        total += a[6];
    }
    total
}

/// The `cg_step` map of a supervisor (hash, 8-byte keys, 4-byte values).
fn cg_step_map(pid: i32) -> u32 {
    for e in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .flatten()
    {
        let info = std::fs::read_to_string(e.path()).unwrap_or_default();
        let get = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        if get("map_type:").as_deref() == Some("1")
            && get("key_size:").as_deref() == Some("8")
            && get("value_size:").as_deref() == Some("4")
        {
            return get("map_id:").unwrap().parse().unwrap();
        }
    }
    panic!("no cg_step map among the fds of {pid}");
}

const COMMANDS: usize = 1000;

#[test]
fn a_thousand_commands_leak_no_fd_cgroup_bpf_object_or_memory() {
    let _serial = serial();
    let t = Tmp::new("leak");
    t.write("secret", "no\n");
    let img = write_image(
        &t,
        "p.kapi",
        one_step(
            vec![G::Exec(vec!["/usr/bin/true".into(), probe_bin().into()])],
            "a",
            vec![],
        ),
    );
    let s = Session::start(&img, None);
    let cg = s.cgroup();
    let step = cg.join("step-0-a");
    let secret = t.path("secret");
    // Every tenth command is refused a read (a Landlock domain, audit
    // records, a deny line): the paths a leak would hide in.
    let deny_lines = std::cell::Cell::new(0u64);
    let one = |i: usize| {
        let o = if i % 10 == 9 {
            s.exec(&[probe_bin(), "read", &secret])
        } else {
            s.exec(&["true"])
        };
        assert_eq!(o.status.code(), Some(0), "command {i}: {}", text(&o).1);
        if i % 10 == 9 {
            assert_eq!(text(&o).0, "read refused 13\n");
            // The denial is on stderr, or its loss is (the kernel's audit
            // backlog is shared with every other audit source of the host).
            let err = text(&o).1;
            deny_lines.set(
                deny_lines.get() + err.lines().filter(|l| l.starts_with("denied: ")).count() as u64,
            );
            assert!(
                err.contains("denied: kapl-probe read")
                    || err.contains("decision events were lost"),
                "{err}"
            );
        }
    };
    for i in 0..20 {
        one(i);
    }
    let census = || {
        // The supervisor may still be closing the last client: settle.
        std::thread::sleep(Duration::from_millis(300));
        (
            fd_kinds(s.pid),
            tree_cgroups(&cg),
            bpf_objects(s.pid),
            map_entries(cg_step_map(s.pid)),
            attached(&step),
        )
    };
    let before = census();
    let rss0 = rss_kib(s.pid);
    let t0 = Instant::now();
    let mut rss_mid = 0;
    for i in 0..COMMANDS {
        one(i);
        if i == COMMANDS / 10 {
            rss_mid = rss_kib(s.pid);
        }
    }
    let took = t0.elapsed();
    let after = census();
    let rss1 = rss_kib(s.pid);
    eprintln!(
        "{COMMANDS} commands in {:.1}s ({:.1} ms each); supervisor RSS {rss0} KiB after 20, {rss_mid} KiB after {}, {rss1} KiB after {COMMANDS}; fds {:?}; {} cgroups; {} BPF objects; cg_step entries {}; {} programs attached",
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / COMMANDS as f64,
        20 + COMMANDS / 10,
        after.0,
        after.1,
        after.2.len(),
        after.3,
        after.4
    );
    assert_eq!(after.0, before.0, "supervisor fds by kind");
    assert_eq!(after.1, before.1, "cgroups of the session");
    assert_eq!(after.2, before.2, "BPF programs, maps and links held");
    assert_eq!(after.3, before.3, "cg_step map entries");
    assert_eq!(after.4, before.4, "programs attached to the step cgroup");
    assert!(
        after.4 >= 7,
        "the step's programs stay attached: {}",
        after.4
    );
    assert_eq!(after.1, 2, "the session and step cgroups only");
    assert!(
        rss1 <= rss_mid + 1024,
        "supervisor memory grows with commands: {rss_mid} KiB after {}, {rss1} KiB after {}",
        20 + COMMANDS / 10,
        20 + COMMANDS
    );
    let st = s.status();
    eprintln!("status: {}", st.trim());
    let denials: u64 = st
        .split(", ")
        .find_map(|p| p.strip_suffix(" denials"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{st}"));
    assert_eq!(
        denials,
        deny_lines.get(),
        "every recorded denial reached its command's stderr"
    );
    assert!(denials > (COMMANDS / 10) as u64 || lost_of(&st) > 0, "{st}");
    // The census sees a running command (its cg_step entry, its cgroup).
    let mut busy = s.spawn(&[probe_bin(), "busy", "0", "read:/"]);
    wait_until("the busy command runs", Duration::from_secs(10), || {
        !tree_pids(&step).is_empty()
    });
    assert_eq!(map_entries(cg_step_map(s.pid)), after.3 + 1);
    assert_eq!(tree_cgroups(&cg), after.1 + 1);
    busy.kill().unwrap();
    let _ = busy.wait();
}

// ---- load: storms of denied opens and sends ----

const STORM_OPENS: u64 = 1_000_000;
const STORM_SENDS: u64 = 1_000_000;

#[test]
fn storms_of_denials_lose_nothing_unreported_and_do_not_stall_the_host() {
    let _serial = serial();
    let t = Tmp::new("storm");
    t.write("secret", "no\n");
    let img = write_image(&t, "p.kapi", one_step(vec![probe_exec()], "s", vec![]));
    let audit = t.path("audit.jsonl");
    let s = Session::start(&img, Some(&audit));
    let secret = t.path("secret");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampling = sampler(stop.clone());
    let mut outs = Vec::new();
    for (what, target, n) in [
        ("storm-open", secret.as_str(), STORM_OPENS),
        ("storm-send", "127.0.0.1:9", STORM_SENDS),
    ] {
        let t0 = Instant::now();
        let mut child = Command::new(kapl_run())
            .args(["exec", "--session", &s.id, "--", probe_bin(), what, target])
            .arg(n.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Count the deny lines on the command's stderr without keeping them.
        let err = child.stderr.take().unwrap();
        let object = if what == "storm-open" {
            format!(" {target} — ")
        } else {
            format!(" {target} (udp) — ")
        };
        let counter = std::thread::spawn(move || {
            let (mut denied, mut notices) = (0u64, Vec::new());
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if l.starts_with("denied: ") && l.contains(&object) {
                    denied += 1;
                } else if l.starts_with("kapl-run: ") {
                    notices.push(l);
                }
            }
            (denied, notices)
        });
        let o = child.wait_with_output().unwrap();
        let (lines, notices) = counter.join().unwrap();
        eprintln!("{what}: notices {notices:?}");
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        eprintln!(
            "{what}: {n} attempts in {:.1}s, {lines} deny lines: {}",
            t0.elapsed().as_secs_f64(),
            out.trim()
        );
        assert_eq!(o.status.code(), Some(0), "{out}");
        // A command whose denials were lost says how many on its stderr.
        let told: u64 = notices
            .iter()
            .filter_map(|l| l.strip_prefix("kapl-run: "))
            .filter_map(|l| l.split_once(" decision events were lost"))
            .filter_map(|(n, _)| n.parse::<u64>().ok())
            .sum();
        outs.push((what, out, lines, told));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut lat = sampling.join().unwrap();
    let (p50, p99, max) = (
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99),
        percentile(&mut lat, 1.0),
    );
    eprintln!(
        "latency outside the session over 1 ms sleep + stat (n={}): p50 {p50:?}, p99 {p99:?}, max {max:?}",
        lat.len()
    );
    let st = s.status();
    eprintln!("status: {}", st.trim());
    let lost = lost_of(&st);
    let o = kapl(&["session", "stop", "--session", &s.id]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let summary = text(&o).0;
    eprintln!("summary: {}", summary.trim());
    // Count the audit records without holding them all.
    let f = std::fs::File::open(&audit).unwrap();
    let (mut open_denies, mut send_denies) = (0u64, 0u64);
    let mut lost_record = None;
    for l in BufReader::new(f).lines() {
        let r: serde_json::Value = serde_json::from_str(&l.unwrap()).unwrap();
        if r["verdict"] == "lost" {
            lost_record = Some(r);
            continue;
        }
        if r["verdict"] != "deny" {
            continue;
        }
        if r["object"] == secret.as_str() && r["mechanism"] == "landlock" {
            open_denies += 1;
        } else if r["object"] == "127.0.0.1:9 (udp)" && r["mechanism"] == "bpf" {
            send_denies += 1;
        }
    }
    eprintln!("audit file: {open_denies} open denials, {send_denies} send denials, {lost} lost");
    assert_eq!(outs[0].1, format!("storm-open refused 13 {STORM_OPENS}\n"));
    assert_eq!(outs[1].1, format!("storm-send refused 1 {STORM_SENDS}\n"));
    // The audit file ends with the loss the session summary reports.
    let total = lost_of(&summary);
    match &lost_record {
        Some(r) => {
            let l = &r["lost"];
            let sum: u64 = [
                "ring_buffer_events",
                "audit_socket_records",
                "audit_kernel_records",
            ]
            .iter()
            .map(|k| l[k].as_u64().unwrap())
            .sum();
            assert_eq!(sum, total, "{r}");
        }
        None => assert_eq!(total, 0, "a loss without a `lost` record: {summary}"),
    }
    for (got, want, lines, told) in [
        (open_denies, STORM_OPENS, outs[0].2, outs[0].3),
        (send_denies, STORM_SENDS, outs[1].2, outs[1].3),
    ] {
        assert!(
            want - got.min(want) <= told,
            "{} denials missing, the command was told of {told} lost events",
            want - got.min(want)
        );
        assert!(
            got <= want,
            "more denials recorded than made: {got} > {want}"
        );
        assert!(
            want - got <= lost,
            "{} denials neither recorded nor counted as lost ({got} recorded of {want}, {lost} lost)",
            want - got - lost
        );
        assert_eq!(
            lines, got,
            "each recorded denial is on the command's stderr"
        );
    }
    assert!(
        max < Duration::from_secs(1),
        "the host stalled: a 1 ms sleep outside the session overshot by {max:?}"
    );
    assert_no_leftover_cgroups();
}
