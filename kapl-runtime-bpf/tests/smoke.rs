//! Kernel smoke test of the plumbing: BPF load/attach, cgroup, Landlock,
//! spawn. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use kapl_image::bpf::{NET_VALUE_LEN, NetMaps, PORT_VALUE_LEN, net4_key};
use kapl_image::{NetOp, Proto};
use kapl_runtime_bpf::bpf::{Event, NetEnforcer};
use kapl_runtime_bpf::cgroup::{self, Cgroup};
use kapl_runtime_bpf::domain::{self, PathAutomaton, TcpPorts, WalkLimits, access};
use kapl_runtime_bpf::{seccomp, spawn};
use std::net::TcpListener;
use std::os::fd::AsRawFd;

struct AllowAll(u64);
impl PathAutomaton for AllowAll {
    fn start(&self) -> u32 {
        0
    }
    fn next(&self, _: u32, _: u8) -> u32 {
        0
    }
    fn accept(&self, _: u32) -> u64 {
        self.0
    }
    fn beneath_all(&self, _: u32) -> u64 {
        self.0
    }
    fn live(&self, _: u32) -> u64 {
        self.0
    }
    fn grants(&self, _: u32, _: u64) -> Vec<u32> {
        vec![0]
    }
}

#[test]
fn connect_allowed_and_denied() {
    let l1 = TcpListener::bind("127.0.0.1:0").unwrap();
    let l2 = TcpListener::bind("127.0.0.1:0").unwrap();
    let p1 = l1.local_addr().unwrap().port();
    let p2 = l2.local_addr().unwrap().port();
    // The image's layout, written by hand: step 7 may connect to
    // 127.0.0.1 on p1 (TCP and UDP), by grant 42.
    let mut maps = NetMaps::default();
    let mut range = [0u8; PORT_VALUE_LEN];
    range[..2].copy_from_slice(&p1.to_ne_bytes());
    range[2..4].copy_from_slice(&p1.to_ne_bytes());
    range[4..].copy_from_slice(&42u32.to_ne_bytes());
    maps.ports.push(range);
    let mut slice = [0u8; NET_VALUE_LEN];
    slice[..4].copy_from_slice(&0u32.to_ne_bytes());
    slice[4..].copy_from_slice(&1u32.to_ne_bytes());
    for proto in [Proto::Tcp, Proto::Udp] {
        let key = net4_key(7, NetOp::Connect, proto, [127, 0, 0, 1], 32);
        maps.v4.push((key, slice));
    }
    let mut bpf = NetEnforcer::load(&maps).unwrap();
    let root = cgroup::cgroup2_root().unwrap();
    let sess = Cgroup::create(&root, &format!("kapl-smoke-{}", std::process::id())).unwrap();
    let step = Cgroup::create(sess.path(), "step").unwrap();
    let cmd = Cgroup::create(step.path(), "cmd-1").unwrap();
    let links = bpf.attach(step.fd()).unwrap();
    bpf.set_cgroup_step(cmd.id(), 7).unwrap();
    let a = AllowAll(access::READ_FILE | access::READ_DIR | access::EXECUTE | access::WRITE_FILE);
    // One rule on `/` (no rules on the directories beneath: this test
    // counts rules).
    let one = WalkLimits {
        deep_rules: 0,
        ..WalkLimits::default()
    };
    let w = domain::walk(&a, one).unwrap();
    assert_eq!(w.rules.len(), 1);
    let dom = domain::build(
        w.rules,
        &TcpPorts {
            bind: Some(vec![]),
            connect: Some(vec![p1, p2]),
        },
    )
    .unwrap();
    let filter = seccomp::filter();
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{p1} && echo ok1; exec 4<>/dev/tcp/127.0.0.1/{p2} && echo ok2; cat /proc/self/status | grep -E '^Cap(Eff|Bnd)'; exit 3"
    );
    let argv = vec![b"bash".to_vec(), b"-c".to_vec(), script.into_bytes()];
    let child = spawn::spawn(&spawn::Command {
        program: b"/bin/bash",
        argv: &argv,
        envp: &[b"PATH=/usr/bin:/bin".to_vec()],
        stdio: [0, 1, 2],
        cwd: Some(b"/"),
        cgroup: Some(cmd.raw_fd()),
        landlock_ruleset: dom.fd.as_raw_fd(),
        landlock_log: true,
        seccomp: &filter,
        supervise_signals: false,
        privileged: true,
    })
    .unwrap();
    let code = spawn::wait_exit(&child.pidfd).unwrap();
    assert_eq!(code, 3);
    let mut ev = Vec::new();
    bpf.drain(&mut ev);
    eprintln!("{ev:#?}");
    let nets: Vec<_> = ev
        .iter()
        .filter_map(|e| {
            if let Event::Net(n) = e {
                Some((n.port, n.allowed, n.grant))
            } else {
                None
            }
        })
        .collect();
    assert!(nets.contains(&(p1, true, 42)));
    assert!(nets.contains(&(p2, false, u32::MAX)));
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Exec(x) if x.path == b"/bin/bash"))
    );
    assert_eq!(bpf.lost().unwrap(), 0);
    drop(links);
    cmd.remove().unwrap();
    step.remove().unwrap();
    sess.remove().unwrap();
}

#[test]
fn landlock_denial_arrives_over_audit() {
    use kapl_runtime_bpf::audit::{AuditHold, AuditReader, Record};
    let before = kapl_runtime_bpf::audit::audit_enabled().unwrap();
    let hold = AuditHold::acquire().unwrap();
    let mut reader = AuditReader::open().unwrap();
    // Grant read+exec on /usr and /lib* only: /etc/hostname is denied.
    struct Usr;
    impl PathAutomaton for Usr {
        fn start(&self) -> u32 {
            0
        }
        fn next(&self, _: u32, _: u8) -> u32 {
            0
        }
        fn accept(&self, _: u32) -> u64 {
            0
        }
        fn beneath_all(&self, _: u32) -> u64 {
            access::READ_FILE | access::READ_DIR | access::EXECUTE
        }
        fn live(&self, _: u32) -> u64 {
            access::READ_FILE | access::READ_DIR | access::EXECUTE
        }
        fn grants(&self, _: u32, _: u64) -> Vec<u32> {
            vec![0]
        }
    }
    let mut w = domain::Walk::default();
    let one = WalkLimits {
        deep_rules: 0,
        ..WalkLimits::default()
    };
    domain::walk_into(&Usr, &mut w, &[b"/usr".to_vec()], one).unwrap();
    assert_eq!(w.rules.len(), 1);
    let dom = domain::build(w.rules, &TcpPorts::default()).unwrap();
    let filter = seccomp::filter();
    let argv = vec![b"cat".to_vec(), b"/etc/hostname".to_vec()];
    let child = spawn::spawn(&spawn::Command {
        program: b"/usr/bin/cat",
        argv: &argv,
        envp: &[],
        stdio: [0, 1, 2],
        cwd: Some(b"/"),
        cgroup: None,
        landlock_ruleset: dom.fd.as_raw_fd(),
        landlock_log: true,
        seccomp: &filter,
        supervise_signals: false,
        privileged: true,
    })
    .unwrap();
    let code = spawn::wait_exit(&child.pidfd).unwrap();
    assert_eq!(code, 1);
    let mut recs = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        recs.extend(reader.poll(false).unwrap());
        if recs.iter().any(|r| matches!(r, Record::Denial(d) if d.fields.iter().any(|(_, v)| v == "/etc/hostname"))) && recs.iter().any(|r| matches!(r, Record::Domain(_))) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    recs.extend(reader.poll(true).unwrap());
    eprintln!("{recs:#?}");
    let dom_rec = recs
        .iter()
        .find_map(|r| {
            if let Record::Domain(d) = r {
                (d.pid == Some(child.pid)).then_some(d.clone())
            } else {
                None
            }
        })
        .expect("domain record with the child's pid");
    let den = recs
        .iter()
        .find_map(|r| {
            if let Record::Denial(d) = r {
                (d.domain == dom_rec.domain
                    && d.fields
                        .iter()
                        .any(|(k, v)| k == "path" && v == "/etc/hostname"))
                .then_some(d.clone())
            } else {
                None
            }
        })
        .expect("denial of /etc/hostname in that domain");
    assert_eq!(den.blockers, vec!["fs.read_file".to_string()]);
    assert_eq!(den.pid, Some(child.pid));
    assert_eq!(den.comm.as_deref(), Some("cat"));
    drop(reader);
    drop(hold);
    assert_eq!(
        kapl_runtime_bpf::audit::audit_enabled().unwrap(),
        before,
        "audit put back as found"
    );
}
