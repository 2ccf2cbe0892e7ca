//! Loading the BPF programs (stage: runtime, network enforcement).
//!
//! Input: the session's network rules (per step: connect/bind, address
//! block, port range, protocols, grant id). Output: the programs of
//! `bpf/kapl.bpf.c` loaded with aya, their LPM trie filled, the exec tracer
//! attached, and the cgroup hooks attached with bpf links to the session's
//! step cgroups on request; decision events read from the ring buffer.
//!
//! Longest-prefix match finds one entry per address, so each entry's value
//! carries the port ranges of every rule of its step whose block contains
//! it (computed here), and a lookup decides exactly as the union of rules.

use aya::maps::lpm_trie::Key;
use aya::maps::{HashMap as BpfHashMap, LpmTrie, MapData, PerCpuArray, RingBuf};
use aya::programs::cgroup_sock::CgroupSockLink;
use aya::programs::cgroup_sock_addr::CgroupSockAddrLink;
use aya::programs::{BtfTracePoint, CgroupAttachMode, CgroupSock, CgroupSockAddr};
use aya::{Btf, Ebpf, EbpfLoader, Pod};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// The compiled object (built by build.rs).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/kapl.bpf.o"));

/// Port ranges one LPM entry can hold (`MAX_RANGES` in the C source).
pub const MAX_RANGES: usize = 32;
/// Grant id meaning "no grant".
pub const NO_GRANT: u32 = u32::MAX;
/// Step id meaning "not a session cgroup".
pub const NO_STEP: u32 = u32::MAX;
/// Protocol bit: TCP.
pub const PROTO_TCP: u32 = 1;
/// Protocol bit: UDP.
pub const PROTO_UDP: u32 = 2;

/// The programs attached per step cgroup.
const SOCK_ADDR_PROGS: [&str; 6] = [
    "kapl_connect4",
    "kapl_connect6",
    "kapl_sendmsg4",
    "kapl_sendmsg6",
    "kapl_bind4",
    "kapl_bind6",
];

/// Errors loading or driving the programs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BpfError {
    /// The object could not be loaded (verifier, permissions...).
    #[error(
        "cannot load the BPF programs: {0} (kapl-run needs root with CAP_BPF/CAP_SYS_ADMIN and a kernel with cgroup BPF, BTF and ring buffers; or run with --unprivileged for Landlock alone)"
    )]
    Load(String),
    /// A program is missing from the object.
    #[error("BPF object lacks program or map `{0}`")]
    Missing(&'static str),
    /// Attaching failed.
    #[error("cannot attach {prog} to the session cgroup: {msg}")]
    Attach {
        /// The program.
        prog: &'static str,
        /// The error.
        msg: String,
    },
    /// A map update failed.
    #[error("BPF map {map}: {msg}")]
    Map {
        /// The map.
        map: &'static str,
        /// The error.
        msg: String,
    },
    /// An address block has more port ranges than one entry holds.
    #[error(
        "step {step}: an address block needs {n} port ranges, more than the {MAX_RANGES} one BPF map entry holds"
    )]
    TooManyRanges {
        /// The step.
        step: u32,
        /// How many.
        n: usize,
    },
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> BpfError {
    move |e| BpfError::Map {
        map,
        msg: e.to_string(),
    }
}

/// Network operations as the rules name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleOp {
    /// connect, and sends to an address (UDP sendto).
    Connect = 1,
    /// bind.
    Bind = 2,
}

/// Operations as events report them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventOp {
    /// connect(2).
    Connect,
    /// bind(2).
    Bind,
    /// sendto/sendmsg with an address.
    Send,
    /// socket(2) refused by family/type.
    Socket,
}

impl EventOp {
    /// The word used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            EventOp::Connect => "connect",
            EventOp::Bind => "bind",
            EventOp::Send => "send",
            EventOp::Socket => "socket",
        }
    }
}

/// One network rule: for `step`, `op` to addresses in `addr/prefix` (IPv6
/// space; IPv4 as `::ffff:a.b.c.d` with prefix 96 + n) on ports `lo..=hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetRule {
    /// Step index.
    pub step: u32,
    /// Connect or bind.
    pub op: RuleOp,
    /// Address (IPv4 mapped).
    pub addr: Ipv6Addr,
    /// Prefix length in the IPv6 space.
    pub prefix: u8,
    /// Lowest port.
    pub lo: u16,
    /// Highest port.
    pub hi: u16,
    /// PROTO_* bits.
    pub protos: u32,
    /// The grant.
    pub grant: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct NetKeyData {
    step: u32,
    op: u32,
    addr: [u8; 16],
}
// SAFETY: plain-old-data, no padding (4 + 4 + 16 bytes).
unsafe impl Pod for NetKeyData {}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct PortRangeRaw {
    lo: u16,
    hi: u16,
    grant: u32,
    protos: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct NetVal {
    n: u32,
    r: [PortRangeRaw; MAX_RANGES],
}
// SAFETY: plain-old-data; the layout matches `struct net_val` (4 + 32×12).
unsafe impl Pod for NetVal {}

fn mask(addr: [u8; 16], prefix: u8) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut bits = u32::from(prefix.min(128));
    for (i, b) in addr.iter().enumerate() {
        if bits >= 8 {
            out[i] = *b;
            bits -= 8;
        } else {
            if bits > 0 {
                out[i] = *b & (0xffu8 << (8 - bits));
            }
            break;
        }
    }
    out
}

/// The LPM entries for `rules`: one per distinct (step, op, block), each
/// carrying the ranges of every rule whose block contains it.
fn lpm_entries(rules: &[NetRule]) -> Result<Vec<(Key<NetKeyData>, NetVal)>, BpfError> {
    // (step, op, prefix, masked addr) -> ranges
    let mut blocks: BTreeMap<(u32, u32, u8, [u8; 16]), Vec<PortRangeRaw>> = BTreeMap::new();
    for r in rules {
        let a = mask(r.addr.octets(), r.prefix);
        blocks
            .entry((r.step, r.op as u32, r.prefix.min(128), a))
            .or_default()
            .push(PortRangeRaw {
                lo: r.lo,
                hi: r.hi,
                grant: r.grant,
                protos: r.protos,
            });
    }
    let index: HashMap<(u32, u32, u8, [u8; 16]), &Vec<PortRangeRaw>> =
        blocks.iter().map(|(k, v)| (*k, v)).collect();
    let mut out = Vec::with_capacity(blocks.len());
    for &(step, op, prefix, addr) in blocks.keys() {
        let mut ranges: Vec<PortRangeRaw> = Vec::new();
        // Most specific first, so the grant reported is the closest rule.
        for len in (0..=prefix).rev() {
            if let Some(v) = index.get(&(step, op, len, mask(addr, len))) {
                for r in v.iter() {
                    if !ranges.contains(r) {
                        ranges.push(*r);
                    }
                }
            }
        }
        if ranges.len() > MAX_RANGES {
            return Err(BpfError::TooManyRanges {
                step,
                n: ranges.len(),
            });
        }
        let mut val = NetVal {
            n: ranges.len() as u32,
            r: [PortRangeRaw::default(); MAX_RANGES],
        };
        val.r[..ranges.len()].copy_from_slice(&ranges);
        out.push((
            Key::new(64 + u32::from(prefix), NetKeyData { step, op, addr }),
            val,
        ));
    }
    Ok(out)
}

/// A decision the programs reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A network decision.
    Net(NetEvent),
    /// A program was executed by a session process.
    Exec(ExecEvent),
    /// A pathname UNIX connect or send (src/unix.rs).
    Unix(crate::unix::UnixEvent),
}

/// A network decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetEvent {
    /// Thread id.
    pub pid: u32,
    /// Process id.
    pub tgid: u32,
    /// Step index (NO_STEP if the cgroup was unknown).
    pub step: u32,
    /// CLOCK_BOOTTIME ns.
    pub ts: u64,
    /// The acting process's cgroup id.
    pub cgroup: u64,
    /// The grant that allowed it, or NO_GRANT.
    pub grant: u32,
    /// Destination/bind port.
    pub port: u16,
    /// What was attempted.
    pub op: EventOp,
    /// Whether it was allowed.
    pub allowed: bool,
    /// The address (IPv4 mapped into IPv6).
    pub addr: Ipv6Addr,
    /// Socket family as seen.
    pub family: u32,
    /// Socket type.
    pub sotype: u32,
    /// Protocol.
    pub proto: u32,
    /// Task command name.
    pub comm: String,
}

/// An exec by a session process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecEvent {
    /// Thread id.
    pub pid: u32,
    /// Process id.
    pub tgid: u32,
    /// Step index.
    pub step: u32,
    /// CLOCK_BOOTTIME ns.
    pub ts: u64,
    /// cgroup id.
    pub cgroup: u64,
    /// Command name after exec.
    pub comm: String,
    /// The path passed to execve (bprm->filename).
    pub path: Vec<u8>,
}

fn rd_u32(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}
fn rd_u64(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}
fn cstr_at(b: &[u8], o: usize, n: usize) -> Vec<u8> {
    let s = b.get(o..(o + n).min(b.len())).unwrap_or(&[]);
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    s[..end].to_vec()
}

/// Decodes one ring buffer record (layouts of `struct net_event`: kind 0,
/// pid 4, tgid 8, step 12, ts 16, cgroup 24, grant 32, port 36, op 38,
/// verdict 39, addr 40..56, family 56, type 60, protocol 64, comm 68..84;
/// and `struct exec_event`: ..., cgroup 24, comm 32..48, path 48..304).
pub fn decode(b: &[u8]) -> Option<Event> {
    match rd_u32(b, 0) {
        1 if b.len() >= 88 => {
            let mut addr = [0u8; 16];
            addr.copy_from_slice(&b[40..56]);
            Some(Event::Net(NetEvent {
                pid: rd_u32(b, 4),
                tgid: rd_u32(b, 8),
                step: rd_u32(b, 12),
                ts: rd_u64(b, 16),
                cgroup: rd_u64(b, 24),
                grant: rd_u32(b, 32),
                port: u16::from_ne_bytes([b[36], b[37]]),
                op: match b[38] {
                    1 => EventOp::Connect,
                    2 => EventOp::Bind,
                    3 => EventOp::Send,
                    _ => EventOp::Socket,
                },
                allowed: b[39] == 1,
                addr: Ipv6Addr::from(addr),
                family: rd_u32(b, 56),
                sotype: rd_u32(b, 60),
                proto: rd_u32(b, 64),
                comm: String::from_utf8_lossy(&cstr_at(b, 68, 16)).into_owned(),
            }))
        }
        3 => crate::unix::decode(b).map(Event::Unix),
        2 if b.len() >= 48 => Some(Event::Exec(ExecEvent {
            pid: rd_u32(b, 4),
            tgid: rd_u32(b, 8),
            step: rd_u32(b, 12),
            ts: rd_u64(b, 16),
            cgroup: rd_u64(b, 24),
            comm: String::from_utf8_lossy(&cstr_at(b, 32, 16)).into_owned(),
            path: cstr_at(b, 48, 256),
        })),
        _ => None,
    }
}

/// The links of one step cgroup; dropping them detaches the programs.
pub struct StepLinks {
    _addr: Vec<CgroupSockAddrLink>,
    _sock: Vec<CgroupSockLink>,
    _unix: Vec<OwnedFd>,
}

/// The loaded programs and maps of one session.
pub struct NetEnforcer {
    ebpf: Ebpf,
    events: RingBuf<MapData>,
    _exec_link: aya::programs::tp_btf::BtfTracePointLink,
    unix: crate::unix::UnixHooks,
}

impl NetEnforcer {
    /// Loads the programs, fills the LPM trie from `rules` and attaches the
    /// exec tracer. Nothing is attached to any cgroup yet.
    /// No pathname UNIX socket is granted.
    pub fn load(rules: &[NetRule]) -> Result<NetEnforcer, BpfError> {
        NetEnforcer::load_with_unix(rules, &crate::unix::UnixTables::none())
    }

    /// Like [`NetEnforcer::load`], with the plan's tables for the pathname
    /// UNIX socket hooks (src/unix.rs).
    pub fn load_with_unix(
        rules: &[NetRule],
        unix: &crate::unix::UnixTables,
    ) -> Result<NetEnforcer, BpfError> {
        let entries = lpm_entries(rules)?;
        let max = u32::try_from(entries.len().max(1)).unwrap_or(u32::MAX);
        let btf = Btf::from_sys_fs().map_err(|e| BpfError::Load(format!("kernel BTF: {e}")))?;
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .map_max_entries("net_rules", max)
            .load(OBJECT)
            .map_err(|e| BpfError::Load(e.to_string()))?;
        {
            let map = ebpf
                .map_mut("net_rules")
                .ok_or(BpfError::Missing("net_rules"))?;
            let mut trie: LpmTrie<&mut MapData, NetKeyData, NetVal> =
                LpmTrie::try_from(map).map_err(map_err("net_rules"))?;
            for (k, v) in &entries {
                trie.insert(k, v, 0).map_err(map_err("net_rules"))?;
            }
        }
        for name in SOCK_ADDR_PROGS {
            let p: &mut CgroupSockAddr = ebpf
                .program_mut(name)
                .ok_or(BpfError::Missing(name))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| BpfError::Load(format!("{name}: {e}")))?;
            p.load()
                .map_err(|e| BpfError::Load(format!("{name}: {e}")))?;
        }
        {
            let p: &mut CgroupSock = ebpf
                .program_mut("kapl_sock_create")
                .ok_or(BpfError::Missing("kapl_sock_create"))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| {
                    BpfError::Load(format!("kapl_sock_create: {e}"))
                })?;
            p.load()
                .map_err(|e| BpfError::Load(format!("kapl_sock_create: {e}")))?;
        }
        let exec_link = {
            let p: &mut BtfTracePoint = ebpf
                .program_mut("kapl_exec")
                .ok_or(BpfError::Missing("kapl_exec"))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| {
                    BpfError::Load(format!("kapl_exec: {e}"))
                })?;
            p.load("sched_process_exec", &btf)
                .map_err(|e| BpfError::Load(format!("kapl_exec: {e}")))?;
            let id = p.attach().map_err(|e| BpfError::Attach {
                prog: "kapl_exec",
                msg: e.to_string(),
            })?;
            p.take_link(id).map_err(|e| BpfError::Attach {
                prog: "kapl_exec",
                msg: e.to_string(),
            })?
        };
        let unix = crate::unix::UnixHooks::load(&ebpf, &btf, unix).map_err(BpfError::Load)?;
        let events = ebpf.take_map("events").ok_or(BpfError::Missing("events"))?;
        let events = RingBuf::try_from(events).map_err(map_err("events"))?;
        Ok(NetEnforcer {
            ebpf,
            events,
            _exec_link: exec_link,
            unix,
        })
    }

    /// Attaches the cgroup programs to a step cgroup (bpf links; no
    /// override: commands cannot attach programs of their own below).
    pub fn attach(&mut self, cgroup: impl AsFd + Copy) -> Result<StepLinks, BpfError> {
        let mut addr = Vec::new();
        for name in SOCK_ADDR_PROGS {
            let p: &mut CgroupSockAddr = self
                .ebpf
                .program_mut(name)
                .ok_or(BpfError::Missing(name))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| BpfError::Attach {
                    prog: name,
                    msg: e.to_string(),
                })?;
            let id = p
                .attach(cgroup, CgroupAttachMode::Single)
                .map_err(|e| BpfError::Attach {
                    prog: name,
                    msg: e.to_string(),
                })?;
            addr.push(p.take_link(id).map_err(|e| BpfError::Attach {
                prog: name,
                msg: e.to_string(),
            })?);
        }
        let p: &mut CgroupSock = self
            .ebpf
            .program_mut("kapl_sock_create")
            .ok_or(BpfError::Missing("kapl_sock_create"))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| BpfError::Attach {
                prog: "kapl_sock_create",
                msg: e.to_string(),
            })?;
        let id = p
            .attach(cgroup, CgroupAttachMode::Single)
            .map_err(|e| BpfError::Attach {
                prog: "kapl_sock_create",
                msg: e.to_string(),
            })?;
        let sock = vec![p.take_link(id).map_err(|e| BpfError::Attach {
            prog: "kapl_sock_create",
            msg: e.to_string(),
        })?];
        let unix = self.unix.attach(cgroup).map_err(|msg| BpfError::Attach {
            prog: "kapl_unix_connect/sendmsg",
            msg,
        })?;
        Ok(StepLinks {
            _addr: addr,
            _sock: sock,
            _unix: unix,
        })
    }

    /// Records that processes in cgroup `id` act for `step`.
    pub fn set_cgroup_step(&mut self, id: u64, step: u32) -> Result<(), BpfError> {
        let map = self
            .ebpf
            .map_mut("cg_step")
            .ok_or(BpfError::Missing("cg_step"))?;
        let mut m: BpfHashMap<&mut MapData, u64, u32> =
            BpfHashMap::try_from(map).map_err(map_err("cg_step"))?;
        m.insert(id, step, 0).map_err(map_err("cg_step"))
    }

    /// Forgets cgroup `id`.
    pub fn clear_cgroup(&mut self, id: u64) -> Result<(), BpfError> {
        let map = self
            .ebpf
            .map_mut("cg_step")
            .ok_or(BpfError::Missing("cg_step"))?;
        let mut m: BpfHashMap<&mut MapData, u64, u32> =
            BpfHashMap::try_from(map).map_err(map_err("cg_step"))?;
        match m.remove(&id) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err("cg_step")(e)),
        }
    }

    /// The ring buffer's fd (poll it for readability).
    pub fn events_fd(&self) -> RawFd {
        self.events.as_raw_fd()
    }

    /// Drains every pending event.
    pub fn drain(&mut self, out: &mut Vec<Event>) {
        while let Some(item) = self.events.next() {
            if let Some(e) = decode(&item) {
                out.push(e);
            }
        }
    }

    /// Events the programs could not report (ring buffer full).
    pub fn lost(&self) -> Result<u64, BpfError> {
        let map = self.ebpf.map("lost").ok_or(BpfError::Missing("lost"))?;
        let a: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map).map_err(map_err("lost"))?;
        let v = a.get(&0, 0).map_err(map_err("lost"))?;
        Ok(v.iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(size_of::<NetKeyData>(), 24);
        assert_eq!(size_of::<NetVal>(), 4 + 12 * MAX_RANGES);
    }

    #[test]
    fn masking() {
        let a = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1).octets();
        assert_eq!(
            mask(a, 32),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0).octets()
        );
        assert_eq!(
            mask(a, 36),
            Ipv6Addr::new(0x2001, 0xdb8, 0xf000, 0, 0, 0, 0, 0).octets()
        );
        assert_eq!(mask(a, 0), [0; 16]);
        assert_eq!(mask(a, 128), a);
    }

    #[test]
    fn merged_entries_carry_enclosing_ranges() {
        let v4 = |a: [u8; 4]| std::net::Ipv4Addr::from(a).to_ipv6_mapped();
        let rules = [
            NetRule {
                step: 0,
                op: RuleOp::Connect,
                addr: v4([10, 20, 0, 0]),
                prefix: 96 + 16,
                lo: 443,
                hi: 443,
                protos: PROTO_TCP | PROTO_UDP,
                grant: 1,
            },
            NetRule {
                step: 0,
                op: RuleOp::Connect,
                addr: v4([10, 20, 5, 7]),
                prefix: 128,
                lo: 5432,
                hi: 5432,
                protos: PROTO_TCP | PROTO_UDP,
                grant: 2,
            },
            NetRule {
                step: 1,
                op: RuleOp::Connect,
                addr: v4([10, 0, 0, 0]),
                prefix: 96 + 8,
                lo: 1,
                hi: 2,
                protos: PROTO_TCP,
                grant: 3,
            },
        ];
        let e = lpm_entries(&rules).unwrap_or_default();
        assert_eq!(e.len(), 3);
        let host = e
            .iter()
            .find(|(k, _)| k.prefix_len() == 64 + 128)
            .map(|(_, v)| *v);
        let host = host.map(|v| {
            v.r[..v.n as usize]
                .iter()
                .map(|r| r.grant)
                .collect::<Vec<_>>()
        });
        assert_eq!(
            host,
            Some(vec![2, 1]),
            "the /32 also carries the /16's range"
        );
        let other = e.iter().find(|(k, _)| k.data().step == 1).map(|(_, v)| v.n);
        assert_eq!(other, Some(1), "steps never mix");
    }
}
