//! The escape suite per kernel level (issue 18): a representative set of
//! escape scenarios run by `kapl-probe` under `kapl-run --min-abi N` with
//! Landlock capped at ABI N (`KAPL_LANDLOCK_ABI=N`: the runtime asks
//! Landlock for no more than a kernel of that level has), for N = 4, 5, 6
//! and 7 on this ABI-7 kernel. What each attempt must come to at each
//! level is written down in [`EXPECTED`]: blocked and reported by the
//! layer that decides it, blocked but not reported (Landlock's audit needs
//! ABI 7), or allowed (an accepted loss of that level). The book's table
//! (`book/src/generated/kernel-levels.md`, included by the runtime and
//! threat-model chapters) is rendered from the observed results; the test
//! fails when the committed table differs (`KAPL_WRITE_LEVELS=1` rewrites
//! it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
use common::*;
use kapl_syntax::ast::{NetOp, Right};
use std::collections::BTreeSet;
use std::process::{Command, Stdio};

/// What an attempt came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cell {
    /// Refused, with a deny record of this mechanism.
    Reported(&'static str),
    /// Refused (by Landlock), no deny record: audit needs ABI 7.
    Unreported,
    /// It worked: an accepted loss at this level.
    Allowed,
}

impl Cell {
    fn text(self) -> String {
        match self {
            Reported(m) => format!("blocked, reported ({m})"),
            Unreported => "blocked (landlock), **not reported**".into(),
            Allowed => "**allowed: accepted loss**".into(),
        }
    }
}

use Cell::{Allowed, Reported, Unreported};

/// One scenario: its name in the table, the probe's arguments (with
/// `{T}` the test directory, `{PORT}` an ungranted TCP port, `{UDP}` a UDP
/// port, `{ABS}` an abstract socket bound outside the session, `{PID}` a
/// process outside the session), and what it comes to at ABI 4, 5, 6, 7.
struct Scenario {
    what: &'static str,
    probe: &'static [&'static str],
    at: [Cell; 4],
}

const LL: Cell = Reported("landlock");

/// The expected outcome of every scenario at every level.
const EXPECTED: &[Scenario] = &[
    Scenario {
        what: "read a file no grant covers",
        probe: &["read", "{T}/denied/secret.txt"],
        at: [Unreported, Unreported, Unreported, LL],
    },
    Scenario {
        what: "run a program no grant covers",
        probe: &["exec", "{T}/denied/prog"],
        at: [Unreported, Unreported, Unreported, LL],
    },
    Scenario {
        what: "TCP connect to a port no grant covers",
        probe: &["connect", "127.0.0.1:{PORT}"],
        at: [Unreported, Unreported, Unreported, LL],
    },
    Scenario {
        what: "UDP send to an address no grant covers",
        probe: &["udp-sendto", "127.0.0.1:{UDP}"],
        at: [
            Reported("bpf"),
            Reported("bpf"),
            Reported("bpf"),
            Reported("bpf"),
        ],
    },
    Scenario {
        what: "connect to an abstract UNIX socket outside the session",
        probe: &["abstract-connect", "{ABS}"],
        at: [Reported("bpf"), Reported("bpf"), Unreported, LL],
    },
    Scenario {
        what: "signal a process outside the session",
        probe: &["signal", "{PID}"],
        at: [
            Reported("supervisor"),
            Reported("supervisor"),
            Unreported,
            LL,
        ],
    },
    Scenario {
        what: "ioctl on a device file granted for reading",
        probe: &["dev-ioctl", "/dev/null"],
        at: [Allowed, Unreported, Unreported, LL],
    },
    Scenario {
        what: "terminal injection (TIOCSTI)",
        probe: &["tiocsti", "/dev/null"],
        at: [
            Reported("seccomp"),
            Reported("seccomp"),
            Reported("seccomp"),
            Reported("seccomp"),
        ],
    },
    Scenario {
        what: "a new user namespace",
        probe: &["unshare-user"],
        at: [
            Reported("seccomp"),
            Reported("seccomp"),
            Reported("seccomp"),
            Reported("seccomp"),
        ],
    },
];

const LEVELS: [u8; 4] = [4, 5, 6, 7];

/// Kills and reaps a helper process when dropped.
struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs one attempt under a one-shot `kapl-run` at `abi`: the probe's
/// line and the mechanisms of the deny records it left (the one-shot form
/// waits for every audit record before it ends).
fn attempt(
    t: &Tmp,
    img: &str,
    abi: u8,
    args: &[String],
) -> (String, BTreeSet<String>, Vec<String>) {
    let audit = t.path(&format!("audit-{abi}.jsonl"));
    let _ = std::fs::remove_file(&audit);
    let out = Command::new(kapl_run())
        .arg(img)
        .args(["--plan", "p", "--audit", &audit])
        .args(["--min-abi", &abi.to_string()])
        .env("KAPL_LANDLOCK_ABI", abi.to_string())
        .env("PATH", "/usr/bin:/bin")
        .env_remove("KAPL_SESSION")
        .arg("--")
        .arg(probe_bin())
        .args(args)
        .output()
        .expect("run kapl-run");
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?} at ABI {abi}: {stderr}"
    );
    let recs = records(audit.as_ref());
    // The audit file opens with what the level loses, below 7 only.
    let level: Vec<_> = recs.iter().filter(|r| r["verdict"] == "degraded").collect();
    if abi < 7 {
        assert_eq!(level.len(), 1, "{recs:#?}");
        assert_eq!(level[0]["landlock_abi"], abi);
        assert!(
            stderr.contains(&format!(
                "kapl-run: kernel: Landlock ABI {abi} (kernel has 7"
            )),
            "{stderr}"
        );
    } else {
        assert!(level.is_empty(), "{recs:#?}");
        assert!(!stderr.contains("kapl-run: kernel:"), "{stderr}");
    }
    // Not the attempt: glibc's pthread_getattr_np reads /proc/self/maps
    // when Rust's start-up asks for the main thread's stack, which the
    // test's plan does not grant (denied at every level, reported at 7).
    let noise = |r: &&serde_json::Value| {
        let o = r["object"].as_str().unwrap_or("");
        o.starts_with("/proc/") && o.ends_with("/maps")
    };
    let recs: Vec<serde_json::Value> = recs.iter().filter(|r| !noise(r)).cloned().collect();
    let mechs = recs
        .iter()
        .filter(|r| r["verdict"] == "deny")
        .map(|r| r["mechanism"].as_str().unwrap_or("?").to_string())
        .collect();
    let all = recs
        .iter()
        .filter(|r| r["verdict"] == "deny")
        .map(|r| format!("{} {} {}", r["mechanism"], r["operation"], r["object"]))
        .collect();
    (stdout.trim().to_string(), mechs, all)
}

fn classify(line: &str, mechs: &BTreeSet<String>) -> Option<Cell> {
    if line.ends_with(" ok") {
        return mechs.is_empty().then_some(Allowed);
    }
    if !line.contains(" refused ") {
        return None;
    }
    match mechs.len() {
        0 => Some(Unreported),
        1 => {
            let m = mechs.iter().next()?;
            ["landlock", "bpf", "seccomp", "supervisor"]
                .into_iter()
                .find(|k| *k == m)
                .map(Reported)
        }
        _ => None,
    }
}

/// The book's table, from the observed cells.
fn table(rows: &[(&str, Vec<Cell>)]) -> String {
    let mut s = String::from(
        "<!-- generated by kapl-runtime-bpf/tests/levels.rs from its results on the real kernel; do not edit -->\n\n| attempt | ABI 4 | ABI 5 | ABI 6 | ABI 7 |\n|---|---|---|---|---|\n",
    );
    for (what, cells) in rows {
        s.push_str(&format!("| {what} |"));
        for c in cells {
            s.push_str(&format!(" {} |", c.text()));
        }
        s.push('\n');
    }
    s
}

#[test]
fn escape_scenarios_per_landlock_level_match_the_table_and_the_book() {
    let t = Tmp::new("levels");
    t.write("ok.txt", "ok\n");
    t.write("denied/secret.txt", "secret\n");
    std::fs::copy("/usr/bin/true", t.path("denied/prog")).unwrap();
    let (_granted, granted_port) = listener();
    let (_other, other_port) = listener();
    let (_udp, udp_port) = udp_socket();
    let spec = one_step(
        vec![],
        "work",
        vec![
            probe_exec(),
            G::Fs(
                &[Right::Read],
                vec![t.path("ok.txt"), "/dev/null".into()],
                vec![],
            ),
            loopback(NetOp::Connect, granted_port),
        ],
    );
    let img = write_image(&t, "p.kapi", spec);
    // Outside the session: an abstract socket and a process.
    let abs = format!("kapl-levels-{}", std::process::id());
    let abs_listener = std::os::unix::net::UnixListener::bind_addr(
        &<std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            abs.as_bytes(),
        )
        .unwrap(),
    )
    .unwrap();
    abs_listener.set_nonblocking(true).unwrap();
    let outside = KillOnDrop(
        Command::new("/usr/bin/sleep")
            .arg("300")
            .stdout(Stdio::null())
            .spawn()
            .expect("sleep"),
    );
    let pid = outside.0.id().to_string();
    let fill = |a: &str| {
        a.replace("{T}", &t.path(""))
            .replace("//", "/")
            .replace("{PORT}", &other_port.to_string())
            .replace("{UDP}", &udp_port.to_string())
            .replace("{ABS}", &abs)
            .replace("{PID}", &pid)
    };
    let mut wrong = Vec::new();
    let mut rows = Vec::new();
    for sc in EXPECTED {
        let args: Vec<String> = sc.probe.iter().map(|a| fill(a)).collect();
        let mut cells = Vec::new();
        for (i, abi) in LEVELS.into_iter().enumerate() {
            // Audit records can be dropped under host load (the runtime
            // then reports the loss): a reported outcome missing its
            // record is tried again, up to three times.
            let mut got = None;
            let mut seen = String::new();
            for _ in 0..3 {
                let (line, mechs, all) = attempt(&t, &img, abi, &args);
                got = classify(&line, &mechs);
                seen = format!("{line:?} records {mechs:?} {all:?}");
                if got == Some(sc.at[i]) || !matches!(sc.at[i], Reported(_)) {
                    break;
                }
            }
            while abs_listener.accept().is_ok() {}
            if got != Some(sc.at[i]) {
                wrong.push(format!(
                    "{} at ABI {abi}: expected {:?}, got {seen}",
                    sc.what, sc.at[i]
                ));
            }
            cells.push(got.unwrap_or(Allowed));
        }
        rows.push((sc.what, cells));
    }
    assert!(
        wrong.is_empty(),
        "outcomes differ from EXPECTED:\n{}",
        wrong.join("\n")
    );
    // The signal probe sent SIGCONT: the process outside is still there.
    let generated = table(&rows);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../book/src/generated/kernel-levels.md");
    if std::env::var_os("KAPL_WRITE_LEVELS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale; regenerate it with\n  KAPL_WRITE_LEVELS=1 cargo test -p kapl-runtime-bpf --test levels\ngenerated:\n{generated}",
        path.display()
    );
    drop(outside);
    assert_no_leftover_cgroups();
}

#[test]
fn min_abi_fails_closed_above_the_level_and_refuses_nonsense() {
    let t = Tmp::new("levels-refuse");
    t.write("ok.txt", "ok\n");
    let img = write_image(&t, "p.kapi", read_step(t.path("ok.txt"), &["/usr/bin/cat"]));
    let run = |min: &str, cap: &str| {
        Command::new(kapl_run())
            .arg(&img)
            .args(["--plan", "p", "--min-abi", min])
            .env("KAPL_LANDLOCK_ABI", cap)
            .env("PATH", "/usr/bin:/bin")
            .args(["--", "/usr/bin/cat", &t.path("ok.txt")])
            .output()
            .unwrap()
    };
    // The default floor is 7: a level-6 kernel is refused (KAPL0801).
    let o = Command::new(kapl_run())
        .arg(&img)
        .args(["--plan", "p"])
        .env("KAPL_LANDLOCK_ABI", "6")
        .args(["--", "/usr/bin/cat", &t.path("ok.txt")])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(out.is_empty());
    assert!(err.contains("KAPL0801"), "{err}");
    assert!(
        err.contains("Landlock ABI 7 is required (--min-abi 7) and 6 is available (capped by KAPL_LANDLOCK_ABI)"),
        "{err}"
    );
    let o = run("5", "4");
    assert_eq!(o.status.code(), Some(125));
    assert!(text(&o).1.contains("--min-abi 5) and 4 is available"));
    // Accepted: the command runs, and the start report says the level.
    let o = run("6", "6");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(out, "ok\n");
    assert!(
        err.contains("kapl-run: kernel: Landlock ABI 6 (kernel has 7, --min-abi 6)"),
        "{err}"
    );
    assert!(
        err.contains("kapl-run: kernel: lost: file-system and exec denials"),
        "{err}"
    );
    assert!(
        !err.contains("abstract UNIX sockets are not scoped"),
        "ABI 6 keeps the scopes: {err}"
    );
    // Outside 4..=7: a usage error.
    let o = run("3", "7");
    assert_eq!(o.status.code(), Some(125), "{}", text(&o).1);
    let o = run("4", "9");
    assert_eq!(o.status.code(), Some(125));
    assert!(text(&o).1.contains("KAPL_LANDLOCK_ABI=9"), "{}", text(&o).1);
    assert_no_leftover_cgroups();
}

#[test]
fn a_session_below_abi_7_says_what_it_lost_in_status() {
    let t = Tmp::new("levels-status");
    t.write("ok.txt", "ok\n");
    let img = write_image(&t, "p.kapi", read_step(t.path("ok.txt"), &["/usr/bin/cat"]));
    let o = Command::new(kapl_run())
        .args(["session", "start", &img, "--plan", "p", "--min-abi", "4"])
        .args(["--audit", &t.path("audit.jsonl")])
        .env("KAPL_LANDLOCK_ABI", "4")
        .env("PATH", "/usr/bin:/bin")
        .env_remove("KAPL_SESSION")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let id = out.trim().to_string();
    let _guard = SessionGuard(id.clone());
    assert!(
        err.contains("kapl-run: kernel: Landlock ABI 4 (kernel has 7, --min-abi 4)"),
        "{err}"
    );
    for lost in [
        "abstract UNIX sockets are not scoped",
        "signals are not scoped",
        "device ioctls are not restricted",
    ] {
        assert!(err.contains(lost), "{lost}: {err}");
    }
    let o = kapl(&["status", "--session", &id]);
    let status = text(&o).0;
    assert!(status.contains("\n  kernel: Landlock ABI 4"), "{status}");
    assert!(
        status.contains("\n  kernel: lost: signals are not scoped"),
        "{status}"
    );
    let o = kapl(&[
        "exec",
        "--session",
        &id,
        "--",
        "/usr/bin/cat",
        &t.path("ok.txt"),
    ]);
    assert_eq!(text(&o).0, "ok\n", "{}", text(&o).1);
    let recs = records(t.path("audit.jsonl").as_ref());
    assert_eq!(recs[0]["verdict"], "degraded", "{recs:#?}");
    assert_eq!(recs[0]["losses"].as_array().map(Vec::len), Some(4));
    drop(_guard);
    assert_no_leftover_cgroups();
}

/// Below ABI 6 the supervisor decides signals (Landlock has no signal
/// scope there): a command may still signal its own processes, and every
/// way of reaching a process outside the session (by pid, by process
/// group, all at once, through a pidfd) is refused and reported.
#[test]
fn below_abi_6_the_supervisor_keeps_signals_inside_the_session() {
    use std::os::unix::process::CommandExt;
    let t = Tmp::new("levels-signals");
    let img = write_image(&t, "p.kapi", one_step(vec![], "work", vec![probe_exec()]));
    let outside = KillOnDrop(
        Command::new("/usr/bin/sleep")
            .arg("300")
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("sleep"),
    );
    let pid = outside.0.id().to_string();
    for abi in [4, 7] {
        let (line, mechs, all) = attempt(&t, &img, abi, &["signal-own".into()]);
        assert_eq!(line, "signal-own ok", "ABI {abi}: {all:?}");
        assert!(mechs.is_empty(), "ABI {abi}: {all:?}");
    }
    for args in [
        vec!["signal".to_string(), pid.clone()],
        vec!["signal-group".to_string(), pid.clone()],
        vec!["pidfd-signal".to_string(), pid.clone()],
        vec!["pidfd-signal".to_string(), pid.clone(), "group".to_string()],
        vec!["signal-all".to_string()],
    ] {
        let mut tried = String::new();
        let mut ok = false;
        // A record can be lost under host load: up to three tries.
        for _ in 0..3 {
            let (line, mechs, all) = attempt(&t, &img, 4, &args);
            tried = format!("{line:?} {all:?}");
            let object = if args[0] == "signal-all" {
                "pid -1 (every process of the user)".to_string()
            } else {
                format!("pid {pid} (sleep)")
            };
            ok = line == format!("{} refused {}", args[0], libc::EPERM)
                && mechs.iter().eq(["supervisor"].iter())
                && all.iter().any(|a| a.contains(&object));
            if ok {
                break;
            }
        }
        assert!(ok, "{args:?} at ABI 4: {tried}");
    }
    // The process outside is untouched (signal 0 and SIGCONT only, and
    // all refused).
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_no_leftover_cgroups();
}

/// The BPF LSM precision layer's start-report line (book/src/bpf-lsm.md):
/// this kernel refuses every program that needs a BPF trampoline
/// (MACHINE.md), so the one-shot form, `session start` and `status` all
/// say the layer is not available, naming the call and the errno.
#[test]
fn the_precision_layer_line_says_bpf_lsm_is_not_available_here() {
    const LINE: &str = "precision layer: BPF LSM not available on this kernel (lsm/file_open: BPF_PROG_LOAD: EPERM)";
    let t = Tmp::new("levels-lsm");
    t.write("ok.txt", "ok\n");
    let img = write_image(&t, "p.kapi", read_step(t.path("ok.txt"), &["/usr/bin/cat"]));
    let o = one_shot(
        img.as_ref(),
        "p",
        None,
        t.path("one.jsonl").as_ref(),
        &["/usr/bin/cat", &t.path("ok.txt")],
    );
    let (out, err) = text(&o);
    assert_eq!((o.status.code(), out.as_str()), (Some(0), "ok\n"), "{err}");
    // One such line among the runtime's other notices.
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("precision layer:"))
            .count(),
        1,
        "{err}"
    );
    assert!(
        err.lines().any(|l| l == format!("kapl-run: {LINE}")),
        "{err}"
    );
    let o = Command::new(kapl_run())
        .args(["session", "start", &img, "--plan", "p"])
        .args(["--audit", &t.path("audit.jsonl")])
        .env("PATH", "/usr/bin:/bin")
        .env_remove("KAPL_SESSION")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let id = out.trim().to_string();
    let _guard = SessionGuard(id.clone());
    assert!(
        err.lines().any(|l| l == format!("kapl-run: {LINE}")),
        "{err}"
    );
    let status = text(&kapl(&["status", "--session", &id])).0;
    assert!(status.contains(&format!("\n  {LINE}")), "{status}");
}

/// `--unprivileged` has no session cgroups: nothing tells the session's
/// processes from others, so below ABI 6 neither scope is replaced, and
/// the start report says so; a command still signals its own processes.
#[test]
fn unprivileged_below_abi_6_says_the_scopes_are_not_replaced() {
    let t = Tmp::new("levels-unpriv");
    let img = write_image(&t, "p.kapi", one_step(vec![], "work", vec![probe_exec()]));
    let o = Command::new(kapl_run())
        .args([
            img.as_str(),
            "--plan",
            "p",
            "--unprivileged",
            "--min-abi",
            "4",
        ])
        .env("KAPL_LANDLOCK_ABI", "4")
        .env("PATH", "/usr/bin:/bin")
        .env_remove("KAPL_SESSION")
        .arg("--")
        .arg(probe_bin())
        .arg("signal-own")
        .output()
        .expect("run kapl-run");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(out.trim(), "signal-own ok", "{err}");
    for lost in [
        "abstract UNIX sockets are not scoped",
        "signals are not scoped",
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(lost))
            .unwrap_or_else(|| panic!("no line for {lost}: {err}"));
        assert!(line.ends_with("not replaced"), "{line}");
    }
}
