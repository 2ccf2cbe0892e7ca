//! Kernel tests of `kapl-run` on the real kernel (root): each grant kind
//! allowed and denied with the audit record checked, step order, refused
//! steps, processes outside the session unaffected, fail-closed paths.
//! A missing kernel feature makes these FAIL, never skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
use common::*;
use kapl_syntax::ast::{NetOp, Right};
use serde_json::json;

#[test]
fn fs_read_allowed_and_denied_with_audit_record() {
    let t = Tmp::new("fs");
    t.write("granted/a.txt", "hello\n");
    t.write("denied/b.txt", "secret\n");
    let img = write_image(
        &t,
        "p.kapi",
        read_step(format!("{}/granted/**", t.0.display()), &["/usr/bin/cat"]),
    );
    let audit = t.0.join("audit.jsonl");
    let ok = one_shot(
        img.as_ref(),
        "p",
        None,
        &audit,
        &["cat", &t.path("granted/a.txt")],
    );
    let (out, err) = text(&ok);
    assert_eq!(ok.status.code(), Some(0), "stderr: {err}");
    assert_eq!(out, "hello\n");
    let denied = one_shot(
        img.as_ref(),
        "p",
        None,
        &audit,
        &["cat", &t.path("denied/b.txt")],
    );
    let (out, err) = text(&denied);
    assert_eq!(denied.status.code(), Some(1), "stderr: {err}");
    assert_eq!(out, "");
    let b = t.path("denied/b.txt");
    assert!(
        err.contains(&format!("denied: cat read (read_file) {b} — no grant of step look (plan p, objective o) covers it")),
        "stderr: {err}"
    );
    let recs = records(&audit);
    let exec_allow = recs
        .iter()
        .find(|r| r["operation"] == "exec" && r["verdict"] == "allow")
        .expect("exec allow record");
    assert_eq!(exec_allow["object"], "/usr/bin/cat");
    assert_eq!(exec_allow["grant"]["text"], "exec \"/usr/bin/cat\"");
    assert_eq!(exec_allow["grant"]["source"], "test.kapl:10:11");
    assert_eq!(exec_allow["mechanism"], "tracepoint");
    let d = recs
        .iter()
        .find(|r| r["verdict"] == "deny" && r["object"] == b.as_str())
        .expect("deny record");
    let mut d = d.clone();
    let pid = d["pid"].as_i64().expect("pid");
    assert!(pid > 0);
    // The kernel's audit serial (to join with `ausearch -a`), the host, and
    // the file's device and inode come with the record.
    assert!(d["audit_serial"].as_u64().is_some_and(|s| s > 0), "{d:#}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(d["host"], host.trim());
    assert!(d["target"]["ino"].as_u64().is_some_and(|i| i > 0), "{d:#}");
    assert!(d["target"]["dev"].is_string(), "{d:#}");
    for k in ["time", "pid", "session", "audit_serial", "host"] {
        d.as_object_mut().unwrap().remove(k);
    }
    for k in ["ino", "dev"] {
        d["target"].as_object_mut().unwrap().remove(k);
    }
    assert_eq!(
        d,
        json!({
            "schema_version": 1,
            "command": 1,
            "uid": 0,
            "target": {"kind": "path", "path": b},
            "comm": "cat",
            "exe": "/usr/bin/cat",
            "operation": "read (read_file)",
            "object": b,
            "verdict": "deny",
            "grant": null,
            "step": "look",
            "plan": "p",
            "intent": null,
            "objective": "o",
            "reason": "no grant of step look (plan p, objective o) covers it",
            "nearest": {
                "id": 3,
                "source": "test.kapl:9:11",
                "site": "test.kapl:9",
                "text": format!("fs read \"{}/granted/**\"", t.0.display()),
                "step": "look",
                "why": format!("it covers other paths under {}", t.0.display()),
            },
            "mechanism": "landlock",
        })
    );
    assert_no_leftover_cgroups();
}

fn bash_policy(t: &Tmp, net: Vec<G>) -> String {
    let mut grants = vec![G::Exec(vec![
        "/usr/bin/bash".into(),
        "/usr/bin/true".into(),
    ])];
    grants.extend(net);
    write_image(t, "p.kapi", one_step(vec![], "net", grants))
}

#[test]
fn tcp_connect_allowed_and_denied_and_outside_unaffected() {
    let t = Tmp::new("tcp");
    let (_l1, p1) = listener();
    let (_l2, p2) = listener();
    let img = bash_policy(&t, vec![loopback(NetOp::Connect, p1)]);
    let audit = t.0.join("audit.jsonl");
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{p1} && echo ok-{p1}; exec 4<>/dev/tcp/127.0.0.1/{p2} && echo ok-{p2}; exec 5<>/dev/tcp/::ffff:127.0.0.1/{p2} && echo mapped-ok; true"
    );
    let o = one_shot(img.as_ref(), "p", None, &audit, &["bash", "-c", &script]);
    let (out, err) = text(&o);
    assert_eq!(out, format!("ok-{p1}\n"), "stderr: {err}");
    // The process running the test is outside the session: unaffected.
    assert!(std::net::TcpStream::connect(("127.0.0.1", p2)).is_ok());
    let recs = records(&audit);
    let allow = recs
        .iter()
        .find(|r| r["operation"] == "connect" && r["verdict"] == "allow")
        .expect("allow");
    assert_eq!(allow["object"], format!("127.0.0.1:{p1} (tcp)"));
    assert_eq!(
        allow["grant"]["text"],
        format!("net connect 127.0.0.1/32 port {p1}")
    );
    assert_eq!(allow["mechanism"], "bpf");
    assert_eq!(allow["comm"], "bash");
    let denies: Vec<_> = recs
        .iter()
        .filter(|r| {
            r["operation"] == "connect"
                && r["verdict"] == "deny"
                // Only the TCP connects this test makes: bash's address
                // lookup may also probe nscd's UNIX socket, which is
                // refused and recorded too where the host has nscd set up.
                && r["object"].as_str().is_some_and(|o| o.ends_with("(tcp)"))
        })
        .collect();
    assert_eq!(denies.len(), 2, "{denies:?}");
    for d in &denies {
        assert_eq!(
            d["object"],
            format!("127.0.0.1:{p2} (tcp)"),
            "IPv4-mapped IPv6 is reported and decided as IPv4"
        );
        assert_eq!(
            d["nearest"]["why"],
            format!("it allows 127.0.0.1 on port {p1}")
        );
        assert_eq!(
            d["reason"],
            "no grant of step net (plan p, objective o) covers it"
        );
    }
    assert!(
        err.contains(&format!("denied: bash connect 127.0.0.1:{p2} (tcp)")),
        "{err}"
    );
    assert_no_leftover_cgroups();
}

#[test]
fn udp_and_bind_and_raw_families() {
    let t = Tmp::new("udp");
    let ((u1, p1), (_u2, p2)) = (udp_socket(), udp_socket());
    let free = free_port();
    let img = bash_policy(
        &t,
        vec![loopback(NetOp::Connect, p1), loopback(NetOp::Bind, free)],
    );
    let audit = t.0.join("audit.jsonl");
    // bash's /dev/udp connects a UDP socket: the connect4 hook decides.
    let script = format!(
        "echo a > /dev/udp/127.0.0.1/{p1} && echo sent1; echo b > /dev/udp/127.0.0.1/{p2} && echo sent2; true"
    );
    let o = one_shot(img.as_ref(), "p", None, &audit, &["bash", "-c", &script]);
    let (out, err) = text(&o);
    assert_eq!(out, "sent1\n", "stderr: {err}");
    let mut buf = [0u8; 8];
    u1.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    assert_eq!(u1.recv(&mut buf).unwrap(), 2);
    let recs = records(&audit);
    assert!(
        recs.iter()
            .any(|r| r["verdict"] == "allow" && r["object"] == format!("127.0.0.1:{p1} (udp)")),
        "{recs:?}"
    );
    assert!(
        recs.iter()
            .any(|r| r["verdict"] == "deny" && r["object"] == format!("127.0.0.1:{p2} (udp)")),
        "{recs:?}"
    );
    assert_no_leftover_cgroups();
}

fn python_policy(t: &Tmp, net: Vec<G>) -> String {
    let mut grants = vec![
        G::Exec(vec!["/usr/bin/python3.11".into()]),
        G::Fs(
            &[Right::Read],
            vec![
                "/usr/lib/python3.11/**".into(),
                "/usr/lib/python3/**".into(),
                "/usr/local/lib/python3.11/**".into(),
            ],
            vec![],
        ),
    ];
    grants.extend(net);
    write_image(t, "py.kapi", one_step(vec![], "py", grants))
}

#[test]
fn udp_sendto_bind_and_refused_socket_kinds() {
    let t = Tmp::new("py");
    let ((_u1, p1), (_u2, p2)) = (udp_socket(), udp_socket());
    let (bind_ok, bind_no) = (free_port(), free_port());
    let img = python_policy(
        &t,
        vec![loopback(NetOp::Connect, p1), loopback(NetOp::Bind, bind_ok)],
    );
    let audit = t.0.join("audit.jsonl");
    let code = format!(
        r#"
import socket
def tryit(name, f):
    try:
        f(); print(name, "ok")
    except OSError as e:
        print(name, "refused", e.errno)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
tryit("sendto-granted", lambda: u.sendto(b"x", ("127.0.0.1", {p1})))
tryit("sendto-denied", lambda: u.sendto(b"x", ("127.0.0.1", {p2})))
v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
tryit("sendto-mapped-denied", lambda: v6.sendto(b"x", ("::ffff:127.0.0.1", {p2})))
tryit("bind-granted", lambda: socket.socket().bind(("127.0.0.1", {bind_ok})))
tryit("bind-denied", lambda: socket.socket().bind(("127.0.0.1", {bind_no})))
tryit("mptcp", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262))
tryit("raw", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 1))
tryit("packet", lambda: socket.socket(17, socket.SOCK_RAW, 0))
tryit("vsock", lambda: socket.socket(40, socket.SOCK_STREAM, 0))
"#
    );
    let o = one_shot(
        img.as_ref(),
        "p",
        None,
        &audit,
        &["/usr/bin/python3.11", "-I", "-c", &code],
    );
    let (out, err) = text(&o);
    // A denied TCP bind is refused by Landlock's bind wall (EACCES) or the
    // cgroup bind hook (EPERM), whichever the kernel asks first: the
    // refusal and its record are the point, not the layer.
    let out = out.replace("bind-denied refused 13\n", "bind-denied refused 1\n");
    assert_eq!(
        out,
        "sendto-granted ok\nsendto-denied refused 1\nsendto-mapped-denied refused 1\nbind-granted ok\nbind-denied refused 1\nmptcp refused 1\nraw refused 1\npacket refused 97\nvsock refused 97\n",
        "stderr: {err} (bind-denied may be refused 1 or 13)"
    );
    let recs = records(&audit);
    let find = |verdict: &str, op: &str, obj: &str| {
        recs.iter()
            .any(|r| r["verdict"] == verdict && r["operation"] == op && r["object"] == obj)
    };
    assert!(
        find("allow", "send", &format!("127.0.0.1:{p1} (udp)")),
        "{recs:#?}"
    );
    assert!(
        find("deny", "send", &format!("127.0.0.1:{p2} (udp)")),
        "{recs:#?}"
    );
    assert!(
        find("allow", "bind", &format!("127.0.0.1:{bind_ok} (tcp)")),
        "{recs:#?}"
    );
    assert!(
        find("deny", "bind", &format!("127.0.0.1:{bind_no} (tcp)")),
        "{recs:#?}"
    );
    assert!(
        find("deny", "socket", "family=2 type=1 protocol=262"),
        "{recs:#?}"
    );
    assert_no_leftover_cgroups();
}

#[test]
fn exec_allowed_and_denied() {
    let t = Tmp::new("exec");
    let img = write_image(
        &t,
        "p.kapi",
        one_step(
            vec![],
            "run",
            vec![G::Exec(vec![
                "/usr/bin/bash".into(),
                "/usr/bin/true".into(),
            ])],
        ),
    );
    let audit = t.0.join("audit.jsonl");
    let o = one_shot(
        img.as_ref(),
        "p",
        None,
        &audit,
        &[
            "bash",
            "-c",
            "/usr/bin/true && echo true-ran; /usr/bin/head -n1 /dev/null || echo head-refused",
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(out, "true-ran\nhead-refused\n", "stderr: {err}");
    let recs = records(&audit);
    assert!(
        recs.iter().any(|r| r["verdict"] == "allow"
            && r["operation"] == "exec"
            && r["object"] == "/usr/bin/true"
            && r["grant"]["text"] == "exec \"/usr/bin/bash\", \"/usr/bin/true\""),
        "{recs:#?}"
    );
    let d = recs
        .iter()
        .find(|r| r["verdict"] == "deny" && r["object"] == "/usr/bin/head")
        .expect("exec deny");
    assert_eq!(d["operation"], "exec (execute)");
    assert_eq!(d["mechanism"], "landlock");
    assert!(err.contains("denied: bash exec (execute) /usr/bin/head — no grant of step run (plan p, objective o) covers it"), "{err}");
    assert_no_leftover_cgroups();
}

#[test]
fn fail_closed_paths() {
    let t = Tmp::new("fail");
    let img = t.path("p.kapi");
    let bytes = image(one_step(
        vec![],
        "a",
        vec![G::Exec(vec!["/usr/bin/true".into()])],
    ));
    std::fs::write(&img, &bytes).unwrap();
    let run = |sim: &str, image: &str| {
        std::process::Command::new(kapl_run())
            .args([image, "--plan", "p", "--", "/usr/bin/true"])
            .env("KAPL_SIMULATE_MISSING", sim)
            .output()
            .unwrap()
    };
    for (sim, code, needle) in [
        ("landlock", "KAPL0801", "Landlock ABI 7 is required"),
        ("cgroup", "KAPL0802", "cgroup v2 is not mounted"),
        ("bpf", "KAPL0803", "cannot load the BPF programs"),
        ("audit", "KAPL0804", "NETLINK_AUDIT unavailable"),
    ] {
        let o = run(sim, &img);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(125), "{sim}: {err}");
        assert_eq!(out, "", "{sim}: nothing ran");
        assert!(
            err.contains(&format!("error[{code}]: ")) && err.contains(needle),
            "{sim}: {err}"
        );
    }
    // A tampered image is refused before anything runs.
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 3] ^= 0x40;
    let badp = t.path("bad.kapi");
    std::fs::write(&badp, &bad).unwrap();
    let o = run("", &badp);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        err.contains("error[KAPL0805]: ") && err.contains("KAPL0704"),
        "{err}"
    );
    // Unknown plan and a start in a step that has `after`.
    let o = std::process::Command::new(kapl_run())
        .args([img.as_str(), "--plan", "nope", "--", "/usr/bin/true"])
        .output()
        .unwrap();
    assert!(
        text(&o).1.contains("error[KAPL0806]: no plan `nope`"),
        "{}",
        text(&o).1
    );
    assert_no_leftover_cgroups();
}

#[test]
fn session_steps_order_refusal_and_kill() {
    let t = Tmp::new("sess");
    let img = t.path("p.kapi");
    t.write("a/x", "in a\n");
    t.write("b/y", "in b\n");
    std::fs::write(
        &img,
        image(plan_p(
            vec![G::Exec(vec![
                "/usr/bin/cat".into(),
                "/usr/bin/sleep".into(),
            ])],
            vec![
                step(
                    "first",
                    &[],
                    vec![G::Fs(&[Right::Read], vec![t.path("a/**")], vec![])],
                ),
                step(
                    "second",
                    &[0],
                    vec![G::Fs(&[Right::Read], vec![t.path("b/**")], vec![])],
                ),
                step("third", &[1], vec![]),
            ],
        )),
    )
    .unwrap();
    let audit = t.path("audit.jsonl");
    // A start step that has `after` is refused.
    let o = kapl(&["session", "start", &img, "--plan", "p", "--step", "second"]);
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("cannot start in step `second`: it comes after first"),
        "{err}"
    );
    let s = Session::start(&img, Some(&audit));
    let id = s.id.clone();
    let cat = |rel: &str| s.exec(&["cat", &t.path(rel)]);
    let o = cat("a/x");
    assert_eq!(text(&o).0, "in a\n", "{}", text(&o).1);
    let o = cat("b/y");
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o).1;
    assert!(
        err.contains(&format!("denied: cat read (read_file) {}", t.path("b/y"))),
        "{err}"
    );
    // A background process of step `first`.
    let mut bg = s.spawn(&["sleep", "60"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    // `third` is refused and changes nothing.
    let o = s.step("third");
    assert_eq!(o.status.code(), Some(125), "a refused step is a refusal");
    assert!(text(&o).1.contains("step `third` is refused: it comes after second which has not been active; the session stays in step `first`"), "{}", text(&o).1);
    assert_eq!(text(&cat("a/x")).0, "in a\n");
    // `second` ends the sleeper.
    let o = s.step("second");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        out.contains("step second: 1 processes of the previous step ended"),
        "{out}"
    );
    assert_eq!(
        bg.wait().unwrap().code(),
        Some(137),
        "the sleeper was killed"
    );
    let o = cat("b/y");
    assert_eq!(text(&o).0, "in b\n", "{}", text(&o).1);
    assert_eq!(
        cat("a/x").status.code(),
        Some(1),
        "step first's grant is gone"
    );
    let cg = s.cgroup();
    let summary = s.stop();
    assert!(
        summary.contains(&format!("session {id} ended: plan p, last step second")),
        "{summary}"
    );
    assert!(summary.contains(", 0 events lost"), "{summary}");
    assert!(!cg.exists(), "session cgroup removed");
}

#[test]
fn supervisor_death_ends_the_session() {
    let t = Tmp::new("death");
    let img = write_image(
        &t,
        "p.kapi",
        one_step(vec![], "a", vec![G::Exec(vec!["/usr/bin/sleep".into()])]),
    );
    let s = Session::start(&img, None);
    let bg = s.spawn(&["sleep", "60"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let cg = s.cgroup();
    assert!(cg.exists());
    // SAFETY: killing the supervisor we started.
    unsafe { libc::kill(s.pid, libc::SIGKILL) };
    let out = bg.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while cg.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!cg.exists(), "the watchdog removed the session's cgroups");
    let _ = std::fs::remove_file(kapl_runtime_bpf::control::registry_dir().join(&s.id));
}
#[test]
fn unprivileged_mode_is_landlock_only_and_says_so() {
    let t = Tmp::new("unpriv");
    t.write("ok/a", "fine\n");
    t.write("no/b", "secret\n");
    let img = write_image(
        &t,
        "p.kapi",
        one_step(
            vec![],
            "s",
            vec![
                G::Fs(&[Right::Read], vec![t.path("ok/**")], vec![]),
                G::Exec(vec!["/usr/bin/cat".into()]),
            ],
        ),
    );
    // World-readable so that an unprivileged user can use them.
    for p in [t.0.clone(), t.0.join("ok"), t.0.join("no")] {
        let _ = std::process::Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&p)
            .status();
    }
    let run = |as_nobody: bool, file: &str| {
        let mut c = if as_nobody {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(kapl_run());
            c
        } else {
            std::process::Command::new(kapl_run())
        };
        c.args([
            img.as_str(),
            "--plan",
            "p",
            "--unprivileged",
            "--",
            "/usr/bin/cat",
            file,
        ])
        .output()
        .unwrap()
    };
    for nobody in [false, true] {
        let o = run(nobody, &t.path("ok/a"));
        let (out, err) = text(&o);
        assert_eq!(
            (o.status.code(), out.as_str()),
            (Some(0), "fine\n"),
            "nobody={nobody}: {err}"
        );
        assert!(
            err.contains(
                "--unprivileged: Landlock alone. Lost: UDP and per-address network precision"
            ),
            "{err}"
        );
        let o = run(nobody, &t.path("no/b"));
        assert_eq!(
            o.status.code(),
            Some(1),
            "nobody={nobody}: denied by Landlock"
        );
        assert_eq!(text(&o).0, "");
    }
    // Without --unprivileged a non-root user is refused, with the reason.
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(kapl_run())
        .args([
            img.as_str(),
            "--plan",
            "p",
            "--",
            "/usr/bin/cat",
            &t.path("ok/a"),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(
        text(&o).1.contains("error[KAPL0803]: kapl-run needs root"),
        "{}",
        text(&o).1
    );
}

#[test]
fn many_commands_leak_nothing() {
    let t = Tmp::new("many");
    let img = write_image(
        &t,
        "p.kapi",
        one_step(vec![], "a", vec![G::Exec(vec!["/usr/bin/true".into()])]),
    );
    let s = Session::start(&img, None);
    let pid = s.pid;
    let fds = || {
        // The supervisor may still be closing the last client: settle.
        std::thread::sleep(std::time::Duration::from_millis(200));
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let cg = s.cgroup();
    let cgs = || tree_cgroups(&cg);
    let o = s.exec(&["/usr/bin/true"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let (fd0, cg0) = (fds(), cgs());
    for _ in 0..200 {
        let o = s.exec(&["/usr/bin/true"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    }
    assert_eq!(fds(), fd0, "supervisor fds stable");
    assert_eq!(cgs(), cg0, "no cgroup per finished command left behind");
    let summary = s.stop();
    assert!(summary.contains(", 0 events lost"), "{summary}");
}

#[test]
fn a_killed_client_takes_its_command_along() {
    let t = Tmp::new("client");
    let img = write_image(
        &t,
        "p.kapi",
        one_step(vec![], "a", vec![G::Exec(vec!["/usr/bin/sleep".into()])]),
    );
    let s = Session::start(&img, None);
    let mut client = s.spawn(&["/usr/bin/sleep", "60"]);
    let step_cg = s.cgroup().join("step-0-a");
    let procs = || tree_pids(&step_cg).len();
    let five = std::time::Duration::from_secs(5);
    wait_until("sleep runs in the step", five, || procs() > 0);
    assert_eq!(procs(), 1, "sleep runs in the step");
    client.kill().unwrap();
    let _ = client.wait();
    wait_until("the command died with its client", five, || procs() == 0);
    s.stop();
}

/// An audit file that cannot be written (here `/dev/full`: every write
/// fails with ENOSPC) loses no decision silently: the command runs, the
/// first failure is said on its stderr, and the records not written are
/// counted in the loss line and the session summary.
#[test]
fn audit_file_write_failures_are_counted_and_said() {
    let t = Tmp::new("auditfull");
    t.write("denied/b.txt", "secret\n");
    let img = write_image(
        &t,
        "p.kapi",
        one_step(vec![], "look", vec![G::Exec(vec!["/usr/bin/cat".into()])]),
    );
    let o = std::process::Command::new(kapl_run())
        .arg(&img)
        .args(["--plan", "p", "--audit", "/dev/full", "--"])
        .args(["cat", &t.path("denied/b.txt")])
        .env("PATH", "/usr/bin:/bin")
        .env("KAPL_VERBOSE", "1")
        .env_remove("KAPL_SESSION")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "cat's own status: {err}");
    assert_eq!(out, "");
    assert!(
        err.contains("kapl-run: the audit file cannot be written (No space left on device"),
        "{err}"
    );
    assert!(err.contains("denied: cat read (read_file)"), "{err}");
    assert!(
        err.contains("decision events were lost while this command ran"),
        "{err}"
    );
    let summary = err
        .lines()
        .find(|l| l.contains(" ended: plan p"))
        .unwrap_or_else(|| panic!("no summary: {err}"));
    assert!(
        summary.contains("records not written to the audit file"),
        "{summary}"
    );
}

/// Denials tell the truth (issue 13, item 5): a path a grant of the step
/// covers, refused because enforcement is narrower there, names that
/// grant and why. An exec grant that names a symbolic link the plan
/// cannot change runs the file it resolves to (item 4).
#[test]
fn denials_of_covered_paths_name_the_grant_and_why() {
    let t = Tmp::new("truth");
    t.write("d/a.txt", "a\n");
    std::fs::create_dir_all(t.path("bin")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/true", t.path("bin/tool")).unwrap();
    let s = Session::of_spec(
        &t,
        read_step(
            format!("{}/d/*.txt", t.0.display()),
            &["/usr/bin/cat", &t.path("bin/tool")],
        ),
    );
    // Created after the step started: the glob covers it, no rule does.
    t.write("d/b.txt", "b\n");
    let o = s.exec(&["cat", &t.path("d/a.txt")]);
    assert_eq!(text(&o).0, "a\n", "{}", text(&o).1);
    let o = s.exec(&["cat", &t.path("d/b.txt")]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let b = t.path("d/b.txt");
    assert!(
        err.contains(&format!("denied: cat read (read_file) {b} — grant ")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "covers it; narrowed when step look started: only the entries of {} that existed then",
            t.path("d")
        )),
        "{err}"
    );
    // Each notice of the runtime (the command's own message may be cut by
    // one: they share stderr).
    assert!(
        err.split("denied: ")
            .skip(1)
            .map(|n| n.lines().next().unwrap_or(""))
            .filter(|l| l.contains(b.as_str()))
            .all(|l| !l.contains("no grant of step")),
        "{err}"
    );
    // The symlinked program, which no step may change: followed.
    let o = s.exec(&[&t.path("bin/tool")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let recs = s.records();
    let r = recs
        .iter()
        .find(|r| r["verdict"] == "deny" && r["object"] == b.as_str())
        .unwrap_or_else(|| panic!("{recs:#?}"));
    assert_eq!(
        r["covering"]["text"],
        format!("fs read \"{}/d/*.txt\"", t.0.display())
    );
    assert!(r["nearest"].is_null(), "{r:#}");
    drop(s);
    assert_no_leftover_cgroups();
}

/// Exec that explains itself (issue 13, item 4): `exec "/usr/bin/sh"` (a
/// link to dash) runs; the link is said in the precision report.
#[test]
fn an_exec_grant_naming_a_symlink_runs_the_file_it_resolves_to() {
    let t = Tmp::new("execlink");
    let sh = std::fs::canonicalize("/usr/bin/sh").unwrap();
    assert_ne!(sh, std::path::Path::new("/usr/bin/sh"), "sh is a link here");
    let (s, report) = Session::of_spec_with_report(
        &t,
        one_step(vec![], "run", vec![G::Exec(vec!["/usr/bin/sh".into()])]),
    );
    let o = s.exec(&["/usr/bin/sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o).1);
    assert!(
        report.contains(&format!(
            "followed symbolic links (granted the file each resolved to when the step started): /usr/bin/sh → {}",
            sh.display()
        )),
        "{report}"
    );
    drop(s);
    assert_no_leftover_cgroups();
}

/// A link in a directory a step may create in could have been planted by
/// the session: it is not followed, and the refused exec (exit 126, with
/// an audit record) says why.
#[test]
fn a_planted_exec_link_is_not_followed_and_the_denial_says_why() {
    let t = Tmp::new("planted");
    std::fs::create_dir_all(t.path("drop")).unwrap();
    let tool = t.path("drop/tool");
    std::os::unix::fs::symlink("/usr/bin/true", &tool).unwrap();
    let s = Session::of_spec(
        &t,
        plan_p(
            vec![],
            vec![
                step(
                    "make",
                    &[],
                    vec![G::Fs(
                        &[Right::Create],
                        vec![format!("{}/drop/**", t.0.display())],
                        vec![],
                    )],
                ),
                step("run", &[0], vec![G::Exec(vec![tool.clone()])]),
            ],
        ),
    );
    // `drop/**` covers `drop` itself: the first path on the way.
    let why = format!(
        "a step of the plan may create, write or delete {}, so the session could plant or redirect it",
        t.path("drop")
    );
    let o = s.step("run");
    let (out, err) = text(&o);
    let report = format!("{out}{err}");
    assert!(o.status.success(), "{report}");
    let o = s.exec(&[&tool]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(126), "{err}");
    assert!(
        err.contains(&format!(
            "denied: tool exec (execute) {tool} — grant "
        )) && err.contains(&format!(
            "{tool} is a symbolic link the rule builder did not follow: {why} (it resolves to /usr/bin/true)"
        )),
        "{err}"
    );
    let recs = s.records();
    let r = recs
        .iter()
        .find(|r| r["verdict"] == "deny" && r["operation"] == "exec (execute)")
        .unwrap_or_else(|| panic!("{recs:#?}"));
    assert_eq!(r["object"], tool.as_str(), "{r:#}");
    assert!(r["covering"]["id"].is_u64(), "{r:#}");
    assert!(
        r["reason"].as_str().is_some_and(|x| x.contains(&why)),
        "{r:#}"
    );
    assert!(
        report.contains(&format!("symbolic links are not followed: {tool} ({why})")),
        "{report}"
    );
    drop(s);
    assert_no_leftover_cgroups();
}

/// A program whose loader the step may not execute: the denial names the
/// loader and how to grant it, exit 126, in session and one-shot mode,
/// with an audit record.
#[test]
fn an_exec_refused_for_its_loader_says_so_in_every_mode() {
    let t = Tmp::new("noloader");
    let text_ = "objective o { bound { exec \"/**\" } }\nplan p under o {\n  step run {\n    grant exec \"/usr/bin/true\"\n  }\n}\n";
    let img = t.0.join("p.kapi");
    std::fs::write(&img, image_from_text("p", text_)).unwrap();
    let want = "the kernel executes its loader /lib64/ld-linux-x86-64.so.2 too, which no exec grant of step run names; `use runtime.loader` grants it";
    // One-shot.
    let audit = t.0.join("one.jsonl");
    let o = one_shot(&img, "p", None, &audit, &["true"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(126), "{err}");
    assert!(
        err.contains("denied: true exec (execute) /usr/bin/true — grant "),
        "{err}"
    );
    assert!(err.contains(want), "{err}");
    let recs = records(&audit);
    assert!(
        recs.iter().any(|r| r["verdict"] == "deny"
            && r["object"] == "/usr/bin/true"
            && r["reason"].as_str().is_some_and(|x| x.contains(want))),
        "{recs:#?}"
    );
    // `kapl-run run` spelled out.
    let o = std::process::Command::new(kapl_run())
        .arg("run")
        .arg(&img)
        .args(["--plan", "p", "--audit", "/dev/null", "--", "/usr/bin/true"])
        .env_remove("KAPL_SESSION")
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(126), "{err}");
    assert!(err.contains(want), "{err}");
    // Session.
    let s = Session::start(img.to_str().unwrap(), Some(&t.path("audit.jsonl")));
    let o = s.exec(&["true"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(126), "{err}");
    assert!(err.contains(want), "{err}");
    assert!(
        s.records()
            .iter()
            .any(|r| r["verdict"] == "deny"
                && r["reason"].as_str().is_some_and(|x| x.contains(want))),
        "records"
    );
    drop(s);
    assert_no_leftover_cgroups();
}

/// A script whose `#!` interpreter the step may not execute: the denial
/// names the interpreter and how to grant it (exit 126); granted, it runs.
#[test]
fn an_exec_refused_for_its_interpreter_names_it() {
    let t = Tmp::new("nointerp");
    let script = t.path("run.sh");
    std::fs::write(&script, "#!/usr/bin/dash\nexit 5\n").unwrap();
    let mut perm = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&script, perm).unwrap();
    let spec = |programs: Vec<String>| one_step(vec![], "run", vec![G::Exec(programs)]);
    let s = Session::of_spec(&t, spec(vec![script.clone()]));
    let o = s.exec(&[&script]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(126), "{err}");
    assert!(
        err.contains("the kernel executes its interpreter /usr/bin/dash too, which no exec grant of step run names; grant it: `exec \"/usr/bin/dash\"`"),
        "{err}"
    );
    drop(s);
    let s = Session::of_spec(&t, spec(vec![script.clone(), "/usr/bin/dash".into()]));
    let o = s.exec(&[&script]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o).1);
    drop(s);
    assert_no_leftover_cgroups();
}
