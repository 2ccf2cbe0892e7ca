//! Attribution: which grant of a step covers a request the kernel decided,
//! and for a denial, the nearest grant and why it does not cover.
//!
//! Input: a [`kapl_image::Plan`], a step, and a request as the kernel
//! reported it (a path and a Landlock right, or an address and port).
//! Output: grant ids (into the image's provenance table) and reasons.
//! The covering grant comes from the same table lookup the image's
//! evaluator makes ([`kapl_image::path_grant`]).

use crate::automaton::right_of_access;
use kapl_image::{Dfa, DfaKind, FsRight, NO_GRANT, NetOp, Plan};
use std::net::{IpAddr, Ipv6Addr};

/// A grant near a denied request, and why it does not cover it.
pub type Nearest = Option<(u32, String)>;

/// The grant of `step` covering `path` for the Landlock right `bit`.
pub fn fs_grant(plan: &Plan, step: u32, path: &[u8], bit: u64) -> Option<u32> {
    let (kind, col) = right_of_access(bit)?;
    kapl_image::path_grant(plan, kind, col, step, path)
}

/// For a denial: the nearest grant, and why it does not cover.
pub fn nearest_fs(plan: &Plan, step: u32, path: &[u8], bit: u64) -> Nearest {
    let (kind, col) = right_of_access(bit)?;
    let dfa = match kind {
        DfaKind::Fs => &plan.fs,
        DfaKind::Exec => &plan.exec,
    };
    let s = dfa.walk(path);
    // 1. Another right of this step covers the path.
    for c in 0..kind.rights() {
        let g = dfa.cell(s, step, c).grant;
        if c != col && g != NO_GRANT {
            let r = FsRight::ALL.get(c).map_or("exec", |r| r.as_str());
            return Some((g, format!("it grants {r} here, not this right")));
        }
    }
    if kind == DfaKind::Exec
        && let Some(g) =
            kapl_image::path_grant(plan, DfaKind::Fs, FsRight::Read.column(), step, path)
    {
        return Some((g, "it grants read here, not exec".into()));
    }
    // 2. Another step of the plan covers it.
    for (i, st) in plan.steps.iter().enumerate() {
        let g = dfa.cell(s, i as u32, col).grant;
        if i as u32 != step && g != NO_GRANT {
            return Some((
                g,
                format!("it belongs to step {}, not the current one", st.name),
            ));
        }
    }
    // 3. The deepest ancestor directory under which this step grants
    //    something of this right.
    let mut cut = path.len();
    while let Some(pos) = path[..cut].iter().rposition(|b| *b == b'/') {
        cut = pos;
        let anc = if pos == 0 { &b"/"[..] } else { &path[..pos] };
        if let Some(g) = some_below(dfa, step, col, dfa.walk(anc)) {
            let shown = String::from_utf8_lossy(anc);
            return Some((g, format!("it covers other paths under {shown}")));
        }
        if pos == 0 {
            break;
        }
    }
    None
}

/// A grant of `step` in column `col` reachable from `state` (a bounded
/// breadth-first search).
fn some_below(dfa: &Dfa, step: u32, col: usize, state: u32) -> Option<u32> {
    let cc = usize::from(dfa.class_count);
    let mut seen = std::collections::HashSet::new();
    let mut q = std::collections::VecDeque::from([state]);
    while let Some(s) = q.pop_front() {
        if !seen.insert(s) || seen.len() > 20_000 {
            continue;
        }
        let g = dfa.cell(s, step, col).grant;
        if g != NO_GRANT {
            return Some(g);
        }
        for c in 0..cc {
            if let Some(&t) = dfa.transitions.get(s as usize * cc + c) {
                q.push_back(t);
            }
        }
    }
    None
}

/// For a network denial: the nearest grant of the step (same address other
/// port, or same port other address), and why.
pub fn nearest_net(plan: &Plan, step: u32, op: NetOp, addr: IpAddr, port: u16) -> Nearest {
    let addr = kapl_image::bpf::normalize(addr);
    let mut port_match = None;
    for e in plan.net.iter().filter(|e| e.step == step && e.op == op) {
        let contains = contains(e.addr, e.prefix, addr);
        for p in &e.ports {
            if contains {
                return Some((
                    p.grant,
                    format!(
                        "it allows {} on port {}",
                        block(e.addr, e.prefix),
                        ports(p.lo, p.hi)
                    ),
                ));
            }
            if port >= p.lo && port <= p.hi && port_match.is_none() {
                port_match = Some((
                    p.grant,
                    format!("it allows port {port} only on {}", block(e.addr, e.prefix)),
                ));
            }
        }
    }
    port_match
}

fn ports(lo: u16, hi: u16) -> String {
    if lo == hi {
        lo.to_string()
    } else if lo == 0 && hi == 65535 {
        "any".into()
    } else {
        format!("{lo}-{hi}")
    }
}

fn block(a: IpAddr, p: u8) -> String {
    match a {
        IpAddr::V4(_) if p == 32 => a.to_string(),
        IpAddr::V6(_) if p == 128 => a.to_string(),
        _ => format!("{a}/{p}"),
    }
}

/// Whether `addr` lies in `net/prefix` (an IPv4 network holds only IPv4
/// addresses, an IPv6 one only IPv6).
pub fn contains(net: IpAddr, prefix: u8, addr: IpAddr) -> bool {
    let to6 = |a: IpAddr| -> (Ipv6Addr, u8) {
        match a {
            IpAddr::V4(v) => (v.to_ipv6_mapped(), 96),
            IpAddr::V6(v) => (v, 0),
        }
    };
    let (n, off) = to6(net);
    let (a, aoff) = to6(addr);
    if off != aoff {
        return false;
    }
    let bits = u32::from(prefix) + u32::from(off);
    let (n, a) = (u128::from(n), u128::from(a));
    if bits == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - bits.min(128));
    n & mask == a & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_hold_their_own_family_only() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::V4([0; 4].into()));
        assert!(contains(a("10.0.0.0"), 8, a("10.1.2.3")));
        assert!(!contains(a("10.0.0.0"), 8, a("11.0.0.1")));
        assert!(contains(a("0.0.0.0"), 0, a("192.0.2.1")));
        assert!(!contains(a("0.0.0.0"), 0, a("::1")));
        assert!(contains(a("::"), 0, a("::1")));
        assert!(!contains(a("::"), 0, a("127.0.0.1")));
        assert!(contains(a("fd00::"), 8, a("fd12::1")));
        assert_eq!(block(a("10.0.0.1"), 32), "10.0.0.1");
        assert_eq!(block(a("10.0.0.0"), 8), "10.0.0.0/8");
        assert_eq!(ports(0, 65535), "any");
        assert_eq!(ports(80, 90), "80-90");
    }
}
