//! The BPF programs decide network requests exactly as the image's evaluator.
//!
//! The runtime loads the image's own map bytes (`kapl_image::bpf::NetMaps`)
//! into `net4`/`net6`/`ports`; the evaluator answers from the same bytes
//! with the Rust twin of the programs' lookup. This test compiles a random
//! policy (three steps of random connect/bind grants over small address
//! and port universes, so that requests hit, miss and straddle prefixes),
//! loads the programs, and makes real requests from processes in each
//! step's cgroup: UDP connect (v4, v6, IPv4-mapped), TCP connect, UDP
//! sendto and UDP bind. A request is denied by the programs exactly when
//! the call fails with EPERM (no Landlock domain here, so nothing else
//! returns it). Every outcome must equal the evaluator's decision.
//!
//! Needs root (cgroup BPF). KAPL_TEST_SEED=N replays a run. Requests stay
//! on this host: TCP and sendto go to loopback only; v6 documentation
//! addresses are only connected with UDP (which sends nothing) or bound.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use kapl_image::{Decision, Evaluator, Proto, Request};
use kapl_runtime_bpf::bpf::NetEnforcer;
use kapl_runtime_bpf::cgroup::{self, Cgroup};
use kapl_syntax::ast::NetOp;
use kapl_testkit::Rng;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::FromRawFd;

struct TreeGuard(std::path::PathBuf);
impl Drop for TreeGuard {
    fn drop(&mut self) {
        let _ = cgroup::remove_tree(&self.0);
    }
}

/// How a request is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    UdpConnect,
    TcpConnect,
    UdpSendto,
    UdpBind,
}

#[derive(Clone, Copy, Debug)]
struct Req {
    how: How,
    addr: IpAddr,
    /// Use an AF_INET6 socket with the IPv4-mapped form of a v4 address.
    mapped: bool,
    port: u16,
}

const PORT_LO: u16 = 20_000;
const PORT_SPAN: u16 = 24;

fn v4_universe(r: &mut Rng) -> Ipv4Addr {
    Ipv4Addr::new(
        127,
        r.below(2) as u8,
        r.below(4) as u8,
        1 + r.below(8) as u8,
    )
}

fn v6_universe(r: &mut Rng) -> Ipv6Addr {
    Ipv6Addr::new(
        0x2001,
        0xdb8,
        r.below(2) as u16,
        0,
        0,
        0,
        r.below(4) as u16,
        1 + r.below(8) as u16,
    )
}

fn random_grant(r: &mut Rng) -> G {
    let op = if r.below(3) == 0 {
        NetOp::Bind
    } else {
        NetOp::Connect
    };
    let mut addrs = Vec::new();
    for _ in 0..1 + r.below(2) {
        if r.below(3) == 0 {
            let prefix = [32u8, 64, 112, 126, 128][r.below(5)];
            let a = v6_universe(r).to_bits() & (u128::MAX << (128 - u32::from(prefix)));
            addrs.push((Ipv6Addr::from_bits(a).to_string(), prefix));
        } else {
            let prefix = [8u8, 16, 24, 30, 32][r.below(5)];
            let a = v4_universe(r).to_bits() & (u32::MAX << (32 - u32::from(prefix)));
            addrs.push((Ipv4Addr::from_bits(a).to_string(), prefix));
        }
    }
    let mut ports = Vec::new();
    for _ in 0..1 + r.below(3) {
        let lo = PORT_LO + r.below(usize::from(PORT_SPAN)) as u16;
        let hi = (lo + r.below(10) as u16).min(PORT_LO + PORT_SPAN - 1);
        ports.push((lo, hi));
    }
    G::Net(op, addrs, ports)
}

fn random_request(r: &mut Rng) -> Req {
    let how = [
        How::UdpConnect,
        How::TcpConnect,
        How::UdpSendto,
        How::UdpBind,
    ][r.below(4)];
    let port = PORT_LO + r.below(usize::from(PORT_SPAN)) as u16;
    // Leaving the host is never needed: TCP and sendto stay on loopback.
    let v6_ok = matches!(how, How::UdpConnect | How::UdpBind);
    let (addr, mapped) = match r.below(4) {
        0 if v6_ok => (IpAddr::V6(v6_universe(r)), false),
        1 => (IpAddr::V4(v4_universe(r)), true),
        _ => (IpAddr::V4(v4_universe(r)), false),
    };
    Req {
        how,
        addr,
        mapped,
        port,
    }
}

/// Makes the request; 1 if it got past the hooks, 0 if refused (EPERM).
///
/// # Safety
/// Raw socket calls on stack memory only (runs in a forked child).
unsafe fn attempt(q: &Req) -> u8 {
    // SAFETY: sockaddr structs are plain data filled below.
    let mut s4: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut s6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let v6 = q.mapped || matches!(q.addr, IpAddr::V6(_));
    match q.addr {
        IpAddr::V4(a) if !q.mapped => {
            s4.sin_family = libc::AF_INET as u16;
            s4.sin_port = q.port.to_be();
            s4.sin_addr.s_addr = u32::from(a).to_be();
        }
        IpAddr::V4(a) => {
            s6.sin6_family = libc::AF_INET6 as u16;
            s6.sin6_port = q.port.to_be();
            s6.sin6_addr.s6_addr = a.to_ipv6_mapped().octets();
        }
        IpAddr::V6(a) => {
            s6.sin6_family = libc::AF_INET6 as u16;
            s6.sin6_port = q.port.to_be();
            s6.sin6_addr.s6_addr = a.octets();
        }
    }
    let (sa, len): (*const libc::sockaddr, u32) = if v6 {
        (
            std::ptr::addr_of!(s6).cast(),
            size_of::<libc::sockaddr_in6>() as u32,
        )
    } else {
        (
            std::ptr::addr_of!(s4).cast(),
            size_of::<libc::sockaddr_in>() as u32,
        )
    };
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    let ty = match q.how {
        How::TcpConnect => libc::SOCK_STREAM | libc::SOCK_NONBLOCK,
        _ => libc::SOCK_DGRAM,
    };
    // SAFETY: plain socket calls on our own descriptors and stack memory.
    unsafe {
        let fd = libc::socket(family, ty | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return 2;
        }
        let r = match q.how {
            How::UdpConnect | How::TcpConnect => libc::connect(fd, sa, len),
            How::UdpSendto => libc::sendto(fd, b"x".as_ptr().cast(), 1, 0, sa, len) as i32,
            How::UdpBind => libc::bind(fd, sa, len),
        };
        let e = *libc::__errno_location();
        libc::close(fd);
        u8::from(!(r < 0 && e == libc::EPERM))
    }
}

/// Runs `reqs` in a child inside `cg`; one byte per request.
fn run_in(cg: &Cgroup, reqs: &[Req]) -> Vec<u8> {
    let mut out = vec![0u8; reqs.len()];
    let procs = std::ffi::CString::new(
        cg.path()
            .join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    let mut p = [0; 2];
    // SAFETY: pipe into our array.
    assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the child only makes raw calls on memory prepared above.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: join the cgroup, make the requests, report, leave.
        unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(3);
            }
            libc::close(fd);
            for (i, q) in reqs.iter().enumerate() {
                out[i] = attempt(q);
            }
            libc::write(p[1], out.as_ptr().cast(), out.len());
            libc::_exit(0);
        }
    }
    // SAFETY: close our copy of the write end.
    unsafe { libc::close(p[1]) };
    // SAFETY: the read end is ours.
    let mut f = unsafe { std::fs::File::from_raw_fd(p[0]) };
    let mut got = Vec::new();
    f.read_to_end(&mut got).unwrap();
    let mut st = 0;
    // SAFETY: reap our child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    assert!(
        libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
        "request child failed (status {st})"
    );
    assert_eq!(got.len(), reqs.len(), "every request answered");
    got
}

#[test]
fn bpf_programs_decide_as_the_image_evaluator() {
    // SAFETY: geteuid never fails.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root: it loads cgroup BPF programs"
    );
    let seed: u64 = std::env::var("KAPL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    let mut r = Rng(seed);
    let names = ["s0", "s1", "s2"];
    let steps: Vec<StepSpec> = names
        .iter()
        .map(|n| StepSpec {
            name: n,
            after: vec![],
            grants: (0..6 + r.below(6)).map(|_| random_grant(&mut r)).collect(),
        })
        .collect();
    let bytes = image(PolicySpec {
        plan: "p",
        plan_grants: vec![random_grant(&mut r)],
        steps,
    });
    let img = kapl_image::read(&bytes).unwrap();
    let plan = &img.plans[0];
    let maps = kapl_image::bpf::NetMaps::of(plan);
    assert!(
        !maps.v4.is_empty() && !maps.ports.is_empty(),
        "seed {seed}: the policy has network entries"
    );
    let eval = Evaluator::new(plan);

    let root = cgroup::cgroup2_root().unwrap();
    let sess = Cgroup::create(&root, &format!("kapl-test-layout-{}", std::process::id())).unwrap();
    // Removes the test's cgroups even when an assertion fails (dropped
    // after the programs and links below).
    let _cleanup = TreeGuard(sess.path().to_path_buf());
    let mut bpf = NetEnforcer::load(&maps).expect("load the BPF programs (root, cgroup BPF)");
    let links = bpf.attach(sess.fd()).unwrap();
    let mut cgs = Vec::new();
    let mut mismatches = Vec::new();
    let (mut allowed, mut denied) = (0usize, 0usize);
    for (step, name) in names.iter().enumerate() {
        let step = step as u32;
        let cg = Cgroup::create(sess.path(), name).unwrap();
        bpf.set_cgroup_step(cg.id(), step).unwrap();
        let reqs: Vec<Req> = (0..400).map(|_| random_request(&mut r)).collect();
        let got = run_in(&cg, &reqs);
        let mut evs = Vec::new();
        bpf.drain(&mut evs);
        for (q, g) in reqs.iter().zip(&got) {
            let (op, proto) = match q.how {
                How::UdpConnect | How::UdpSendto => (kapl_image::NetOp::Connect, Proto::Udp),
                How::TcpConnect => (kapl_image::NetOp::Connect, Proto::Tcp),
                How::UdpBind => (kapl_image::NetOp::Bind, Proto::Udp),
            };
            let addr = match q.addr {
                IpAddr::V4(a) if q.mapped => IpAddr::V6(a.to_ipv6_mapped()),
                a => a,
            };
            let want = eval.decide(
                step,
                &Request::Net {
                    op,
                    addr,
                    port: q.port,
                    proto,
                },
            );
            let want = u8::from(matches!(want, Decision::Allow { .. }));
            if *g == 1 {
                allowed += 1;
            } else {
                denied += 1;
            }
            if *g != want {
                mismatches.push(format!(
                    "step {name}: {q:?}: kernel {}, evaluator {}",
                    if *g == 1 { "allow" } else { "deny" },
                    if want == 1 { "allow" } else { "deny" }
                ));
            }
        }
        cgs.push(cg);
    }
    drop(links);
    let lost = bpf.lost().unwrap_or(u64::MAX);
    drop(bpf);
    for cg in cgs {
        cg.remove().unwrap();
    }
    sess.remove().unwrap();
    assert!(
        mismatches.is_empty(),
        "seed {seed}: {} of 1200 requests decided differently:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(
        allowed >= 60 && denied >= 60,
        "seed {seed}: the requests exercise both verdicts ({allowed} allowed, {denied} denied)"
    );
    assert_eq!(lost, 0, "seed {seed}: no decision event lost");
}
