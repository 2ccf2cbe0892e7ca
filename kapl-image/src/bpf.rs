//! BPF map layouts: the exact key and value bytes the runtime loads into its
//! maps for one plan, and the lookups the BPF programs perform on them.
//!
//! Input: a validated [`Plan`]. Output: byte arrays for the LPM-trie maps,
//! the port-range array map, and the DFA array maps; plus [`NetMaps::lookup`],
//! the Rust twin of the BPF programs' lookup (used by the evaluator).
//!
//! Layouts (all multi-byte integers in *host* order unless marked BE):
//!
//! | map | type | key | value |
//! |---|---|---|---|
//! | `net4` | `BPF_MAP_TYPE_LPM_TRIE` | `u32 prefixlen; u8 data[8]` = step (u16 BE), op (u8: 0 connect, 1 bind), proto (u8: 6 tcp, 17 udp), IPv4 address (4 bytes BE); `prefixlen = 32 + prefix` | `u32 first; u32 count` (slice of `ports`) |
//! | `net6` | `BPF_MAP_TYPE_LPM_TRIE` | `u32 prefixlen; u8 data[20]` = step, op, proto as above, IPv6 address (16 bytes BE); `prefixlen = 32 + prefix` | as `net4` |
//! | `ports` | `BPF_MAP_TYPE_ARRAY` | `u32` index | `u16 lo; u16 hi; u32 grant` (sorted, disjoint within one slice) |
//! | `dfa_trans` | `BPF_MAP_TYPE_ARRAY` | `u32` state | `u32 next[class_count]` |
//! | `dfa_class` | `BPF_MAP_TYPE_ARRAY` | `u32` 0 | `u8 class[256]` |
//! | `dfa_row` | `BPF_MAP_TYPE_ARRAY` | `u32` state | `u32 row` |
//! | `dfa_accept` | `BPF_MAP_TYPE_ARRAY` | `u32` row | `u32 grant[steps × R]` |
//!
//! The LPM maps need `BPF_F_NO_PREALLOC`. A lookup builds the key with
//! `prefixlen = 32 + 32` (IPv4) or `32 + 128` (IPv6) and the request's step,
//! op, proto and address; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
//! as `connect6`/`sendmsg6`/`bind6` see it) is looked up in `net4` as
//! `a.b.c.d`. A hit gives a slice of `ports`; the port is allowed when a
//! range in it contains the port (binary search, ≤ 17 steps), and that
//! range's grant is the allowing grant. A miss, or no range, is a deny.
//! Entry and value limits are in [`crate::limits`].

use crate::model::*;
use std::collections::HashMap;
use std::net::IpAddr;

/// Bytes of an IPv4 LPM key (prefixlen + data).
pub const NET4_KEY_LEN: usize = 12;
/// Bytes of an IPv6 LPM key.
pub const NET6_KEY_LEN: usize = 24;
/// Bytes of an LPM value.
pub const NET_VALUE_LEN: usize = 8;
/// Bytes of a port-range value.
pub const PORT_VALUE_LEN: usize = 8;

/// One plan's network maps, as bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetMaps {
    index4: LpmIndex,
    index6: LpmIndex,
    /// `net4` entries: (key, value).
    pub v4: Vec<([u8; NET4_KEY_LEN], [u8; NET_VALUE_LEN])>,
    /// `net6` entries: (key, value).
    pub v6: Vec<([u8; NET6_KEY_LEN], [u8; NET_VALUE_LEN])>,
    /// `ports` array values, by index.
    pub ports: Vec<[u8; PORT_VALUE_LEN]>,
}

fn key_head(step: u32, op: NetOp, proto: Proto) -> [u8; 4] {
    let s = (step as u16).to_be_bytes();
    [s[0], s[1], op as u8, proto as u8]
}

/// The IPv4 key for an entry or request.
pub fn net4_key(
    step: u32,
    op: NetOp,
    proto: Proto,
    addr: [u8; 4],
    prefix: u8,
) -> [u8; NET4_KEY_LEN] {
    let mut k = [0u8; NET4_KEY_LEN];
    k[..4].copy_from_slice(&(32 + u32::from(prefix)).to_ne_bytes());
    k[4..8].copy_from_slice(&key_head(step, op, proto));
    k[8..].copy_from_slice(&addr);
    k
}

/// The IPv6 key for an entry or request.
pub fn net6_key(
    step: u32,
    op: NetOp,
    proto: Proto,
    addr: [u8; 16],
    prefix: u8,
) -> [u8; NET6_KEY_LEN] {
    let mut k = [0u8; NET6_KEY_LEN];
    k[..4].copy_from_slice(&(32 + u32::from(prefix)).to_ne_bytes());
    k[4..8].copy_from_slice(&key_head(step, op, proto));
    k[8..].copy_from_slice(&addr);
    k
}

/// Normalizes an IPv4-mapped IPv6 address to IPv4.
pub fn normalize(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// A longest-prefix-match index over encoded keys: for each prefix length
/// present, the key data truncated to that many bits. Same semantics as the
/// kernel's LPM trie: the longest matching prefix wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct LpmIndex {
    /// Prefix lengths present, longest first.
    lengths: Vec<u32>,
    /// (prefix bits, key data masked to those bits) -> value.
    map: HashMap<(u32, Vec<u8>), [u8; NET_VALUE_LEN]>,
}

fn mask_bits(data: &[u8], bits: u32) -> Vec<u8> {
    let mut v: Vec<u8> = data.to_vec();
    for (i, b) in v.iter_mut().enumerate() {
        let lo = i as u32 * 8;
        if lo >= bits {
            *b = 0;
        } else if bits - lo < 8 {
            *b &= 0xffu8 << (8 - (bits - lo));
        }
    }
    v
}

impl LpmIndex {
    fn insert(&mut self, key: &[u8], value: [u8; NET_VALUE_LEN]) {
        let mut pl = [0u8; 4];
        pl.copy_from_slice(key.get(..4).unwrap_or(&[0; 4]));
        let bits = u32::from_ne_bytes(pl);
        let data = key.get(4..).unwrap_or(&[]);
        if !self.lengths.contains(&bits) {
            self.lengths.push(bits);
            self.lengths.sort_unstable_by(|a, b| b.cmp(a));
        }
        self.map.insert((bits, mask_bits(data, bits)), value);
    }

    fn lookup(&self, key: &[u8]) -> Option<[u8; NET_VALUE_LEN]> {
        let data = key.get(4..).unwrap_or(&[]);
        self.lengths
            .iter()
            .find_map(|&bits| self.map.get(&(bits, mask_bits(data, bits))).copied())
    }
}

impl NetMaps {
    /// Lays out one plan's LPM entries.
    pub fn of(plan: &Plan) -> NetMaps {
        let mut m = NetMaps::default();
        for e in &plan.net {
            let first = m.ports.len() as u32;
            for p in &e.ports {
                let mut v = [0u8; PORT_VALUE_LEN];
                v[..2].copy_from_slice(&p.lo.to_ne_bytes());
                v[2..4].copy_from_slice(&p.hi.to_ne_bytes());
                v[4..].copy_from_slice(&p.grant.to_ne_bytes());
                m.ports.push(v);
            }
            let mut val = [0u8; NET_VALUE_LEN];
            val[..4].copy_from_slice(&first.to_ne_bytes());
            val[4..].copy_from_slice(&(e.ports.len() as u32).to_ne_bytes());
            match e.addr {
                IpAddr::V4(a) => {
                    m.v4.push((net4_key(e.step, e.op, e.proto, a.octets(), e.prefix), val))
                }
                IpAddr::V6(a) => {
                    m.v6.push((net6_key(e.step, e.op, e.proto, a.octets(), e.prefix), val))
                }
            }
        }
        for (k, v) in &m.v4 {
            m.index4.insert(k, *v);
        }
        for (k, v) in &m.v6 {
            m.index6.insert(k, *v);
        }
        m
    }

    /// What the BPF programs decide: the allowing grant, or `None`.
    pub fn lookup(
        &self,
        step: u32,
        op: NetOp,
        proto: Proto,
        addr: IpAddr,
        port: u16,
    ) -> Option<u32> {
        let val = match normalize(addr) {
            IpAddr::V4(a) => self
                .index4
                .lookup(&net4_key(step, op, proto, a.octets(), 32))?,
            IpAddr::V6(a) => self
                .index6
                .lookup(&net6_key(step, op, proto, a.octets(), 128))?,
        };
        let mut f = [0u8; 4];
        f.copy_from_slice(&val[..4]);
        let first = u32::from_ne_bytes(f) as usize;
        f.copy_from_slice(&val[4..]);
        let count = u32::from_ne_bytes(f) as usize;
        let slice = self.ports.get(first..first.checked_add(count)?)?;
        // Binary search as the BPF program does (bounded: ≤ 17 rounds).
        let (mut lo, mut hi) = (0usize, slice.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let v = slice.get(mid)?;
            let r_lo = u16::from_ne_bytes([v[0], v[1]]);
            let r_hi = u16::from_ne_bytes([v[2], v[3]]);
            if port < r_lo {
                hi = mid;
            } else if port > r_hi {
                lo = mid + 1;
            } else {
                return Some(u32::from_ne_bytes([v[4], v[5], v[6], v[7]]));
            }
        }
        None
    }
}
