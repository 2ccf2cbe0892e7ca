//! Which network decisions the programs report, on the real kernel
//! (root): every denial; an allow the first time per step, grant and
//! destination only (the `reported` map in bpf/kapl.bpf.c), so that a
//! command repeating an allowed connect does not wake the supervisor each
//! time for a record it would drop. A missing kernel feature makes these
//! fail, never skip.
//!
//! - the programs alone: the events in the ring buffer, counted;
//! - a `kapl-run` session: the records in its audit file, across a step
//!   switch.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use kapl_runtime_bpf::bpf::{Event, EventOp, NetEnforcer, REPORTED_ALLOWS};
use kapl_runtime_bpf::cgroup::{self, Cgroup};
use kapl_syntax::ast::NetOp;
use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::Path;
use std::process::Command;

/// Repetitions of each request.
const N: usize = 100;

/// A loopback TCP listener whose connections are accepted (and dropped)
/// by a thread, so its accept queue never fills; its port.
fn accepting() -> u16 {
    let (l, port) = listener();
    std::thread::spawn(move || {
        for s in l.incoming() {
            drop(s)
        }
    });
    port
}

/// Removes a cgroup tree even when an assertion fails.
struct TreeGuard(std::path::PathBuf);
impl Drop for TreeGuard {
    fn drop(&mut self) {
        let _ = cgroup::remove_tree(&self.0);
    }
}

/// `kapl-probe ARGS` run in cgroup `cg` (a shell joins it, then execs
/// the probe): its stdout.
#[track_caller]
fn probe_in(cg: &Path, args: &[&str]) -> String {
    let o = Command::new("/bin/sh")
        .arg("-c")
        .arg("echo $$ > \"$0/cgroup.procs\" && exec \"$@\"")
        .arg(cg)
        .arg(probe_bin())
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "probe {args:?}: {}", text(&o).1);
    text(&o).0
}

/// The network events of `evs` as (step, op, address, port, allowed,
/// grant), counted.
fn net_counts(evs: &[Event]) -> BTreeMap<(u32, &'static str, Ipv6Addr, u16, bool, u32), usize> {
    let mut m = BTreeMap::new();
    for e in evs {
        if let Event::Net(n) = e {
            let key = (
                n.head.step,
                n.op.as_str(),
                n.addr,
                n.port,
                n.allowed,
                n.grant,
            );
            *m.entry(key).or_default() += 1;
        }
    }
    m
}

fn v4(a: [u8; 4]) -> Ipv6Addr {
    std::net::Ipv4Addr::from(a).to_ipv6_mapped()
}

#[test]
fn the_programs_report_an_allow_once_per_step_grant_and_destination_and_every_denial() {
    // SAFETY: geteuid never fails.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root: it loads cgroup BPF programs"
    );
    let (p1, p2, p3, p4) = (accepting(), accepting(), accepting(), accepting());
    // Step s0: grant A (two destinations), grant B; step s1: grant C, to
    // A's first destination; plan-wide grant P in both; plan-wide grant U
    // for the sweep below.
    let spec = plan_p(
        vec![
            loopback(NetOp::Connect, p4),
            G::Net(
                NetOp::Connect,
                vec![("127.0.0.3".into(), 32)],
                vec![(20_000, 60_000)],
            ),
        ],
        vec![
            step(
                "s0",
                &[],
                vec![
                    G::Net(
                        NetOp::Connect,
                        vec![("127.0.0.1".into(), 32)],
                        vec![(p1, p1), (p2, p2)],
                    ),
                    loopback(NetOp::Connect, p3),
                ],
            ),
            step("s1", &[0], vec![loopback(NetOp::Connect, p1)]),
        ],
    );
    let img = kapl_image::read(&image(spec)).unwrap();
    let plan = &img.plans[0];
    // The loopback grant of `step` (None: plan-wide) naming `port`.
    let grant_of = |step: Option<u32>, port: u16| -> u32 {
        let port = port.to_string();
        let found = img.grants.iter().position(|g| {
            g.step == step
                && g.text.starts_with("net connect 127.0.0.1/32 ")
                && g.text
                    .split(|c: char| !c.is_ascii_digit())
                    .any(|w| w == port)
        });
        found.unwrap_or_else(|| panic!("no grant for port {port} in step {step:?}")) as u32
    };
    let (ga, gb, gc, gp) = (
        grant_of(Some(0), p1),
        grant_of(Some(0), p3),
        grant_of(Some(1), p1),
        grant_of(None, p4),
    );
    assert_eq!(ga, grant_of(Some(0), p2), "one grant A for p1 and p2");

    let root = cgroup::cgroup2_root().expect("cgroup v2");
    let sess = Cgroup::create(&root, &format!("kapl-test-reports-{}", std::process::id())).unwrap();
    let _cleanup = TreeGuard(sess.path().to_path_buf());
    let mut bpf = NetEnforcer::load(&kapl_image::bpf::NetMaps::of(plan))
        .expect("load the BPF programs (root, cgroup BPF, LRU hash maps)");
    let links = bpf.attach(sess.fd()).unwrap();
    let (cg0, cg1) = (
        Cgroup::create(sess.path(), "s0").unwrap(),
        Cgroup::create(sess.path(), "s1").unwrap(),
    );
    bpf.set_cgroup_step(cg0.id(), 0).unwrap();
    bpf.set_cgroup_step(cg1.id(), 1).unwrap();
    let n = N.to_string();
    let to = |a: &str, p: u16| format!("{a}:{p}");

    // Step s0: each request N times.
    for (what, target, want) in [
        ("storm-connect", to("127.0.0.1", p1), "ok"),
        ("storm-connect", to("127.0.0.1", p2), "ok"),
        ("storm-connect", to("127.0.0.1", p3), "ok"),
        ("storm-connect", to("127.0.0.1", p4), "ok"),
        ("storm-send", to("127.0.0.1", p1), "ok"),
        // No grant for 127.0.0.2: refused (EPERM) by the programs.
        ("storm-connect", to("127.0.0.2", p1), "refused 1"),
    ] {
        assert_eq!(
            probe_in(cg0.path(), &[what, &target, &n]),
            format!("{what} {want} {N}\n"),
            "{what} {target}"
        );
    }
    let mut evs = Vec::new();
    bpf.drain(&mut evs);
    let got = net_counts(&evs);
    let lo = v4([127, 0, 0, 1]);
    let want = BTreeMap::from([
        ((0, "connect", lo, p1, true, ga), 1),
        ((0, "connect", lo, p2, true, ga), 1),
        ((0, "connect", lo, p3, true, gb), 1),
        ((0, "connect", lo, p4, true, gp), 1),
        ((0, "send", lo, p1, true, ga), 1),
        ((0, "connect", v4([127, 0, 0, 2]), p1, false, u32::MAX), N),
    ]);
    assert_eq!(got, want, "step s0's network events");

    // Step s1: A's destination again, under grant C; the plan-wide grant
    // again in the new step.
    for p in [p1, p4] {
        assert_eq!(
            probe_in(cg1.path(), &["storm-connect", &to("127.0.0.1", p), &n]),
            format!("storm-connect ok {N}\n")
        );
    }
    let mut evs = Vec::new();
    bpf.drain(&mut evs);
    let want = BTreeMap::from([
        ((1, "connect", lo, p1, true, gc), 1),
        ((1, "connect", lo, p4, true, gp), 1),
    ]);
    assert_eq!(net_counts(&evs), want, "step s1's network events");

    // More distinct allows than the map holds: each is reported (none
    // held back for lack of room); swept again, every one the map no
    // longer holds (at least the overflow) is reported again.
    let sweep = REPORTED_ALLOWS as usize * 5 / 4;
    let first = 20_000u16;
    let count = sweep.to_string();
    let sweep_out = format!("sweep-udp ok {sweep}\n");
    let swept = |evs: &[Event]| -> BTreeMap<u16, usize> {
        let mut m = BTreeMap::new();
        for e in evs {
            if let Event::Net(x) = e
                && x.op == EventOp::Connect
                && x.allowed
                && x.addr == v4([127, 0, 0, 3])
            {
                *m.entry(x.port).or_default() += 1;
            }
        }
        m
    };
    assert_eq!(
        probe_in(cg0.path(), &["sweep-udp", &to("127.0.0.3", first), &count]),
        sweep_out
    );
    let mut evs = Vec::new();
    bpf.drain(&mut evs);
    let once = swept(&evs);
    assert_eq!(once.len(), sweep, "every distinct allow reported");
    assert!(once.values().all(|&c| c == 1), "each once");
    assert_eq!(
        probe_in(cg0.path(), &["sweep-udp", &to("127.0.0.3", first), &count]),
        sweep_out
    );
    let mut evs = Vec::new();
    bpf.drain(&mut evs);
    let again = swept(&evs);
    assert!(
        again.len() >= sweep - REPORTED_ALLOWS as usize && again.values().all(|&c| c == 1),
        "{} of {sweep} reported again (the map holds {REPORTED_ALLOWS})",
        again.len()
    );
    assert_eq!(bpf.lost().unwrap(), 0, "no event lost");
    drop(links);
    drop(bpf);
    for cg in [cg0, cg1, sess] {
        cg.remove().unwrap();
    }
}

#[test]
fn a_session_records_first_allows_per_step_and_every_denial() {
    let t = Tmp::new("net-reports");
    let p1 = accepting();
    let img = write_image(
        &t,
        "p.kapi",
        plan_p(
            vec![probe_exec()],
            vec![
                step("a", &[], vec![loopback(NetOp::Connect, p1)]),
                step("b", &[0], vec![loopback(NetOp::Connect, p1)]),
            ],
        ),
    );
    let audit = t.path("audit.jsonl");
    let s = Session::start(&img, Some(&audit));
    let n = N.to_string();
    let ok = format!("127.0.0.1:{p1}");
    // Landlock's TCP wall lets port p1 through; the programs refuse the
    // address. UDP is the programs' alone.
    let other = format!("127.0.0.2:{p1}");
    for (what, target, want) in [
        ("storm-connect", ok.as_str(), "ok"),
        ("storm-connect", other.as_str(), "refused 1"),
        ("storm-send", "127.0.0.1:9", "refused 1"),
    ] {
        let o = s.probe(&[what, target, &n]);
        assert_eq!(
            text(&o).0,
            format!("{what} {want} {N}\n"),
            "{what} {target}: {}",
            text(&o).1
        );
    }
    let o = s.step("b");
    assert_eq!(o.status.code(), Some(0), "step b: {}", text(&o).1);
    let o = s.probe(&["storm-connect", &ok, &n]);
    assert_eq!(text(&o).0, format!("storm-connect ok {N}\n"));
    let summary = s.stop();
    assert!(summary.contains(" 0 events lost"), "{summary}");
    let recs = records(Path::new(&audit));
    assert!(
        recs.iter().all(|r| r["verdict"] != "lost"),
        "a lost record: {summary}"
    );
    let allows: Vec<(&str, &str)> = recs
        .iter()
        .filter(|r| r["verdict"] == "allow" && r["operation"] == "connect")
        .map(|r| {
            assert_eq!(r["object"], format!("{ok} (tcp)"), "{r}");
            assert_eq!(r["mechanism"], "bpf", "{r}");
            (
                r["step"].as_str().unwrap(),
                r["grant"]["step"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(allows, [("a", "a"), ("b", "b")], "one first allow per step");
    let denied = |object: String| {
        recs.iter()
            .filter(|r| r["verdict"] == "deny" && r["object"] == object && r["mechanism"] == "bpf")
            .count()
    };
    assert_eq!(denied(format!("{other} (tcp)")), N, "every TCP denial");
    assert_eq!(denied("127.0.0.1:9 (udp)".into()), N, "every UDP denial");
    assert_no_leftover_cgroups();
}
