//! Network sets for the authority diff: unions of boxes (address range ×
//! port range) and their exact differences.
//!
//! Input: the boxes of `net` rules of one operation (each rule covers every
//! pair of its address blocks and port ranges, TCP and UDP alike). Output:
//! the boxes of one union minus another, disjoint, with adjacent address
//! stripes of equal ports merged; and address ranges as CIDR blocks.
//!
//! The difference is computed on the grid that every box edge cuts: within
//! one cell membership in every box is constant, so one sample point per
//! cell decides it exactly (no solver, no sampling error).

use kapl_check::semantics::addr_of_canonical;
use std::net::IpAddr;

/// One box: an inclusive canonical address range and an inclusive port
/// range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetBox {
    /// First address (canonical, IPv4 as IPv4-mapped IPv6).
    pub first: u128,
    /// Last address.
    pub last: u128,
    /// Low port.
    pub lo: u16,
    /// High port.
    pub hi: u16,
}

impl NetBox {
    fn holds(&self, addr: u128, port: u32) -> bool {
        self.first <= addr
            && addr <= self.last
            && u32::from(self.lo) <= port
            && port <= u32::from(self.hi)
    }

    /// Whether the two boxes share an address and port.
    pub fn meets(&self, other: &NetBox) -> bool {
        self.first <= other.last
            && other.first <= self.last
            && self.lo <= other.hi
            && other.lo <= self.hi
    }

    /// The address range as CIDR blocks (the fewest that cover it exactly).
    pub fn cidrs(&self) -> Vec<String> {
        cidrs(self.first, self.last)
            .into_iter()
            .map(|(base, prefix)| show_block(base, prefix))
            .collect()
    }

    /// The first and last address, for display (IPv4-mapped as IPv4).
    pub fn ends(&self) -> (IpAddr, IpAddr) {
        (addr_of_canonical(self.first), addr_of_canonical(self.last))
    }
}

/// Sorted, deduplicated cut points: every `lo` and every `hi + 1` that fits.
fn cuts<T: Ord + Copy>(edges: impl Iterator<Item = (T, Option<T>)>) -> Vec<T> {
    let mut v: Vec<T> = edges
        .flat_map(|(lo, after)| std::iter::once(lo).chain(after))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// An address range and the port ranges it holds: `(first, last, ports)`.
type Stripe = (u128, u128, Vec<(u16, u16)>);

/// The boxes of `plus` minus the boxes of `minus`: disjoint boxes, sorted
/// by address then port.
pub fn minus(plus: &[NetBox], minus: &[NetBox]) -> Vec<NetBox> {
    let all = || plus.iter().chain(minus);
    let addr_cuts = cuts(all().map(|b| (b.first, b.last.checked_add(1))));
    let port_cuts = cuts(all().map(|b| (u32::from(b.lo), Some(u32::from(b.hi) + 1))));
    let mut stripes: Vec<Stripe> = Vec::new();
    for (i, &a) in addr_cuts.iter().enumerate() {
        let a_last = addr_cuts.get(i + 1).map_or(u128::MAX, |n| n - 1);
        let mut ports: Vec<(u16, u16)> = Vec::new();
        for (j, &p) in port_cuts.iter().enumerate() {
            let Ok(p_lo) = u16::try_from(p) else { break };
            let p_hi = port_cuts
                .get(j + 1)
                .and_then(|n| u16::try_from(n - 1).ok())
                .unwrap_or(u16::MAX);
            let inside = plus.iter().any(|b| b.holds(a, p)) && !minus.iter().any(|b| b.holds(a, p));
            if !inside {
                continue;
            }
            match ports.last_mut() {
                Some(last) if u32::from(last.1) + 1 == p => last.1 = p_hi,
                _ => ports.push((p_lo, p_hi)),
            }
        }
        if ports.is_empty() {
            continue;
        }
        match stripes.last_mut() {
            Some(s) if s.1.checked_add(1) == Some(a) && s.2 == ports => s.1 = a_last,
            _ => stripes.push((a, a_last, ports)),
        }
    }
    stripes
        .into_iter()
        .flat_map(|(first, last, ports)| {
            ports.into_iter().map(move |(lo, hi)| NetBox {
                first,
                last,
                lo,
                hi,
            })
        })
        .collect()
}

/// The fewest aligned blocks `(base, prefix)` that cover `first..=last`.
fn cidrs(first: u128, last: u128) -> Vec<(u128, u32)> {
    let mut out = Vec::new();
    let mut cur = first;
    loop {
        let mut bits = if cur == 0 { 128 } else { cur.trailing_zeros() };
        let end = |bits: u32| {
            if bits >= 128 {
                u128::MAX
            } else {
                cur | ((1u128 << bits) - 1)
            }
        };
        while end(bits) > last {
            bits -= 1;
        }
        out.push((cur, 128 - bits));
        let e = end(bits);
        if e >= last {
            return out;
        }
        cur = e + 1;
    }
}

/// A block as text: IPv4 inside the IPv4-mapped space, IPv6 otherwise.
fn show_block(base: u128, prefix: u32) -> String {
    match addr_of_canonical(base) {
        IpAddr::V4(v4) if prefix >= 96 => format!("{v4}/{}", prefix - 96),
        IpAddr::V4(v4) => format!("{}/{prefix}", v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => format!("{v6}/{prefix}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kapl_check::semantics::{canonical_addr, v4};

    fn b(first: IpAddr, last: IpAddr, lo: u16, hi: u16) -> NetBox {
        NetBox {
            first: canonical_addr(first),
            last: canonical_addr(last),
            lo,
            hi,
        }
    }

    #[test]
    fn a_hole_leaves_the_rest() {
        let all = b(v4(10, 0, 0, 0), v4(10, 255, 255, 255), 1, 1024);
        let hole = b(v4(10, 1, 0, 0), v4(10, 1, 255, 255), 22, 22);
        let d = minus(&[all], &[hole]);
        // Below the hole, the hole's stripe without port 22, above it.
        assert_eq!(d.len(), 4, "{d:?}");
        assert_eq!(d[0].cidrs(), vec!["10.0.0.0/16"]);
        assert_eq!((d[1].lo, d[1].hi, d[2].lo, d[2].hi), (1, 21, 23, 1024));
        assert_eq!(d[3].first, canonical_addr(v4(10, 2, 0, 0)));
        assert!(minus(&[hole], &[all]).is_empty());
    }

    #[test]
    fn whole_space_and_odd_ranges() {
        let any = NetBox {
            first: 0,
            last: u128::MAX,
            lo: 0,
            hi: u16::MAX,
        };
        assert_eq!(minus(&[any], &[]), vec![any]);
        assert_eq!(any.cidrs(), vec!["::/0"]);
        let odd = b(v4(10, 0, 0, 1), v4(10, 0, 0, 6), 80, 80);
        assert_eq!(
            odd.cidrs(),
            vec!["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
    }

    /// The difference against brute force on a small universe (addresses
    /// 0..24, ports 0..12): the same members, disjoint boxes.
    #[test]
    fn minus_agrees_with_brute_force() {
        let mut rng = kapl_testkit::Rng(0x5eed_d1ff);
        let random_box = |rng: &mut kapl_testkit::Rng| {
            let (a, b) = (rng.below(24) as u128, rng.below(24) as u128);
            let (p, q) = (rng.below(12) as u16, rng.below(12) as u16);
            NetBox {
                first: a.min(b),
                last: a.max(b),
                lo: p.min(q),
                hi: p.max(q),
            }
        };
        for _ in 0..300 {
            let plus: Vec<NetBox> = (0..1 + rng.below(3))
                .map(|_| random_box(&mut rng))
                .collect();
            let sub: Vec<NetBox> = (0..rng.below(4)).map(|_| random_box(&mut rng)).collect();
            let d = minus(&plus, &sub);
            for addr in 0..26u128 {
                for port in 0..14u32 {
                    let want = plus.iter().any(|b| b.holds(addr, port))
                        && !sub.iter().any(|b| b.holds(addr, port));
                    let n = d.iter().filter(|b| b.holds(addr, port)).count();
                    assert_eq!(
                        n,
                        usize::from(want),
                        "{plus:?} - {sub:?} = {d:?} at {addr} {port}"
                    );
                }
            }
        }
    }
}
