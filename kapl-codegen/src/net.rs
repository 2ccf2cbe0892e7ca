//! Network tables: grants' address blocks and port ranges to LPM entries.
//!
//! Input: the network grants that hold in each step. Output: sorted
//! [`NetEntry`]s in which every entry's port list already includes the
//! ports of every less specific block covering it (so one longest-prefix
//! lookup decides), and the per-step TCP port unions for Landlock.

use kapl_check::ir::{Cidr, PortRange};
use kapl_image::{Family, NameEntry, NameExclusion, NetEntry, NetOp, NeverName, PortGrant, Proto};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address block: (network address bits, prefix length).
type Block = (u128, u8);

/// One network grant, simplified.
pub(crate) struct NetGrant<'a> {
    pub grant: u32,
    pub op: NetOp,
    pub addrs: &'a [Cidr],
    pub names: &'a [String],
    pub ports: &'a [PortRange],
}

/// A port range `(lo, hi)` and the grant it comes from.
type PortOf = (u16, u16, u32);
/// (protocol, family, network address, prefix): sorts as the image wants.
type ExclusionKey = (Proto, u8, IpAddr, u8);

/// Host-name entries of every step: per (step, protocol, pattern), the
/// ports of every `connect` grant holding in the step that writes the
/// pattern, each port credited to the lowest such grant.
pub(crate) fn name_entries(holds: &[Vec<&NetGrant<'_>>]) -> Vec<NameEntry> {
    let mut by: BTreeMap<(u32, Proto, &str), Vec<PortOf>> = BTreeMap::new();
    for (step, grants) in holds.iter().enumerate() {
        for g in grants.iter().filter(|g| g.op == NetOp::Connect) {
            for n in g.names {
                for proto in Proto::ALL {
                    by.entry((step as u32, proto, n.as_str()))
                        .or_default()
                        .extend(g.ports.iter().map(|p| (p.lo, p.hi, g.grant)));
                }
            }
        }
    }
    by.into_iter()
        .map(|((step, proto, pattern), ranges)| NameEntry {
            step,
            proto,
            pattern: pattern.to_string(),
            ports: sweep(&ranges),
        })
        .collect()
}

/// What a plan's names may never reach, from the `never` rules above it
/// (objective and intent): the address ranges of `never net connect` rules
/// (which no learned address may enter) and their host-name patterns, per
/// protocol, with their ports merged.
pub(crate) fn name_limits(never: &[&kapl_check::ir::Rule]) -> (Vec<NameExclusion>, Vec<NeverName>) {
    use kapl_check::ir::RuleKind;
    let mut ex: BTreeMap<ExclusionKey, Vec<(u16, u16)>> = BTreeMap::new();
    let mut nn: BTreeMap<(Proto, &str), Vec<(u16, u16)>> = BTreeMap::new();
    for r in never {
        let RuleKind::Net {
            op: kapl_syntax::ast::NetOp::Connect,
            addrs,
            names,
            ports,
        } = &r.kind
        else {
            continue;
        };
        let pr: Vec<(u16, u16)> = ports.iter().map(|p| (p.lo, p.hi)).collect();
        for proto in Proto::ALL {
            for c in addrs {
                let fam = if c.addr.is_ipv4() { 4 } else { 6 };
                ex.entry((proto, fam, c.addr, c.prefix))
                    .or_default()
                    .extend(&pr);
            }
            for n in names {
                nn.entry((proto, n.as_str())).or_default().extend(&pr);
            }
        }
    }
    let merge = |mut v: Vec<(u16, u16)>| {
        v.sort_unstable();
        let mut out: Vec<(u16, u16)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            match out.last_mut() {
                Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        out
    };
    (
        ex.into_iter()
            .map(|((proto, _, addr, prefix), p)| NameExclusion {
                proto,
                addr,
                prefix,
                ports: merge(p),
            })
            .collect(),
        nn.into_iter()
            .map(|((proto, pattern), p)| NeverName {
                proto,
                pattern: pattern.to_string(),
                ports: merge(p),
            })
            .collect(),
    )
}

/// Disjoint, sorted port ranges with the lowest grant covering each port.
pub(crate) fn sweep(ranges: &[(u16, u16, u32)]) -> Vec<PortGrant> {
    // Events: at `lo` a grant starts, after `hi` it ends.
    let mut events: Vec<(u32, bool, u32)> = Vec::with_capacity(ranges.len() * 2);
    for &(lo, hi, g) in ranges {
        events.push((u32::from(lo), true, g));
        events.push((u32::from(hi) + 1, false, g));
    }
    events.sort_unstable();
    let mut active: BTreeMap<u32, u32> = BTreeMap::new();
    let mut out: Vec<PortGrant> = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let at = events[i].0;
        while i < events.len() && events[i].0 == at {
            let (_, start, g) = events[i];
            if start {
                *active.entry(g).or_insert(0) += 1;
            } else if let Some(c) = active.get_mut(&g) {
                *c -= 1;
                if *c == 0 {
                    active.remove(&g);
                }
            }
            i += 1;
        }
        let end = events.get(i).map_or(65536, |e| e.0);
        if let Some((&g, _)) = active.iter().next()
            && at < end
            && at <= 65535
        {
            let lo = at as u16;
            let hi = (end - 1).min(65535) as u16;
            match out.last_mut() {
                Some(last) if last.grant == g && u32::from(last.hi) + 1 == at => last.hi = hi,
                _ => out.push(PortGrant { lo, hi, grant: g }),
            }
        }
    }
    out
}

/// The LPM blocks of an IR block: (family, address bits, prefix). An IPv6
/// block that contains the IPv4-mapped range `::ffff:0:0/96` covers every
/// IPv4 address too (IPv4 lives inside IPv6 as mapped addresses), so it
/// also yields `0.0.0.0/0`.
fn blocks_of(c: &Cidr) -> Vec<(Family, u128, u8)> {
    match c.addr {
        IpAddr::V4(a) => vec![(Family::V4, u128::from(u32::from(a)), c.prefix.min(32))],
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) if c.prefix >= 96 => {
                vec![(Family::V4, u128::from(u32::from(v4)), c.prefix - 96)]
            }
            _ => {
                let p = c.prefix.min(128);
                let mapped: u128 = 0xffff_0000_0000;
                let mut v = vec![(Family::V6, u128::from(a), p)];
                if masked(Family::V6, mapped, p) == masked(Family::V6, u128::from(a), p) {
                    v.push((Family::V4, 0, 0));
                }
                v
            }
        },
    }
}

fn masked(family: Family, addr: u128, prefix: u8) -> u128 {
    let width = if family == Family::V4 { 32 } else { 128 };
    if prefix == 0 {
        return 0;
    }
    let host = (width - u32::from(prefix)).min(127);
    if u32::from(prefix) >= width {
        addr
    } else {
        addr >> host << host
    }
}

fn covers(outer: (u128, u8), inner: (u128, u8), family: Family) -> bool {
    outer.1 <= inner.1 && masked(family, inner.0, outer.1) == outer.0
}

/// LPM entries for every step of a plan. `holds[s]` lists the net grants
/// that hold in step `s`.
pub(crate) fn entries(steps: usize, holds: &[Vec<&NetGrant<'_>>]) -> Vec<NetEntry> {
    let mut out = Vec::new();
    for (step, grants) in holds.iter().enumerate().take(steps) {
        for op in [NetOp::Connect, NetOp::Bind] {
            for family in [Family::V4, Family::V6] {
                // (addr, prefix) -> ranges
                let mut blocks: BTreeMap<Block, Vec<(u16, u16, u32)>> = BTreeMap::new();
                for g in grants.iter().filter(|g| g.op == op) {
                    for c in g.addrs {
                        for (f, a, p) in blocks_of(c) {
                            if f != family {
                                continue;
                            }
                            let key = (masked(f, a, p), p);
                            let v = blocks.entry(key).or_default();
                            for r in g.ports {
                                v.push((r.lo, r.hi, g.grant));
                            }
                        }
                    }
                }
                let keys: Vec<(u128, u8)> = blocks.keys().copied().collect();
                for &k in &keys {
                    let mut all: Vec<(u16, u16, u32)> = Vec::new();
                    for &o in &keys {
                        if covers(o, k, family) {
                            all.extend_from_slice(&blocks[&o]);
                        }
                    }
                    let ports = sweep(&all);
                    if ports.is_empty() {
                        continue;
                    }
                    let addr = match family {
                        Family::V4 => IpAddr::V4(Ipv4Addr::from(k.0 as u32)),
                        Family::V6 => IpAddr::V6(Ipv6Addr::from(k.0)),
                    };
                    for proto in Proto::ALL {
                        out.push(NetEntry {
                            step: step as u32,
                            op,
                            proto,
                            family,
                            addr,
                            prefix: k.1,
                            ports: ports.clone(),
                        });
                    }
                }
            }
        }
    }
    out.sort();
    out
}

/// The union of TCP ports of one op in one step, lowest grant per port.
pub(crate) fn tcp_ports(grants: &[&NetGrant<'_>], op: NetOp) -> Vec<PortGrant> {
    let mut all = Vec::new();
    for g in grants
        .iter()
        .filter(|g| g.op == op && !(g.addrs.is_empty() && g.names.is_empty()))
    {
        for r in g.ports {
            all.push((r.lo, r.hi, g.grant));
        }
    }
    sweep(&all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_takes_lowest_grant() {
        let s = sweep(&[(0, 65535, 5), (443, 443, 2), (440, 450, 7)]);
        assert_eq!(
            s,
            vec![
                PortGrant {
                    lo: 0,
                    hi: 442,
                    grant: 5
                },
                PortGrant {
                    lo: 443,
                    hi: 443,
                    grant: 2
                },
                PortGrant {
                    lo: 444,
                    hi: 65535,
                    grant: 5
                },
            ]
        );
        assert!(sweep(&[]).is_empty());
    }
}
