//! Loading the BPF programs (stage: runtime, network enforcement).
//!
//! Input: one plan's network maps exactly as the image lays them out
//! ([`kapl_image::bpf::NetMaps`]: `net4`/`net6` LPM keys and values and the
//! `ports` ranges, as bytes). Output: the programs of `bpf/kapl.bpf.c`
//! loaded with aya, those maps filled byte for byte, the exec tracer
//! attached, and the cgroup hooks (address decisions, socket creation,
//! rerouting socket options, egress packets carrying a routing header)
//! attached with bpf links to the session's
//! step cgroups on request; decision events read from the ring buffer
//! (every denial, and the first allow per step, grant and destination:
//! [`REPORTED_ALLOWS`]).
//!
//! The image's evaluator ([`kapl_image::Evaluator`]) reads the same bytes
//! with the Rust twin of the programs' lookup, so what is tested against
//! the evaluator is what the kernel decides with.

use aya::maps::lpm_trie::Key;
use aya::maps::{Array, HashMap as BpfHashMap, LpmTrie, MapData, PerCpuArray, RingBuf};
use aya::programs::cgroup_skb::CgroupSkbLink;
use aya::programs::cgroup_sock::CgroupSockLink;
use aya::programs::cgroup_sock_addr::CgroupSockAddrLink;
use aya::programs::cgroup_sockopt::CgroupSockoptLink;
use aya::programs::{
    BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock, CgroupSockAddr,
    CgroupSockopt, Program, ProgramError,
};
use aya::{Btf, Ebpf, EbpfLoader, Pod};
use kapl_image::bpf::{NET_VALUE_LEN, NET4_KEY_LEN, NET6_KEY_LEN, NetMaps, PORT_VALUE_LEN};
use std::net::Ipv6Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// The compiled object (built by build.rs).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/kapl.bpf.o"));

/// Grant id meaning "no grant".
pub const NO_GRANT: u32 = u32::MAX;
/// Step id meaning "not a session cgroup".
pub const NO_STEP: u32 = u32::MAX;

/// Entries of the `reported` map: the allowed network requests already
/// reported, by step, grant and destination (see `report_net` in
/// bpf/kapl.bpf.c). An allow found there is not reported again; past this
/// many the least recently used entry is evicted, and an evicted allow is
/// reported again when it recurs (a repeat the supervisor drops, never a
/// loss).
pub const REPORTED_ALLOWS: u32 = 16_384;

/// The `cgroup/sock_create` program, attached per step cgroup.
const SOCK_CREATE_PROG: &str = "kapl_sock_create";
/// The exec tracer.
const EXEC_PROG: &str = "kapl_exec";
/// The `cgroup/setsockopt` program (options that reroute), per step cgroup.
const SOCKOPT_PROG: &str = "kapl_setsockopt";
/// The `cgroup_skb/egress` program (packets carrying a routing header or
/// IP options), per step cgroup.
const EGRESS_PROG: &str = "kapl_egress";

/// The `cgroup/sock_addr` programs attached per step cgroup.
const SOCK_ADDR_PROGS: [&str; 8] = [
    "kapl_connect4",
    "kapl_connect6",
    "kapl_sendmsg4",
    "kapl_sendmsg6",
    "kapl_bind4",
    "kapl_bind6",
    "kapl_recvmsg4",
    "kapl_recvmsg6",
];

/// Ranges a learned address holds (`LEARNED_RANGES` in kapl.bpf.c).
pub const LEARNED_RANGES: usize = 8;
/// Addresses the `learned` map holds at most (its max_entries).
pub const LEARNED_MAX: usize = 4096;

/// Errors loading or driving the programs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BpfError {
    /// The object could not be loaded (verifier, permissions...).
    #[error(
        "cannot load the BPF programs: {0} (kapl-run needs root with CAP_BPF/CAP_SYS_ADMIN and a kernel with cgroup BPF, BTF and ring buffers; or run with --unprivileged for Landlock alone)"
    )]
    Load(String),
    /// Loading BPF programs needs root.
    #[error("kapl-run needs root for cgroup BPF network enforcement and audit")]
    NotRoot,
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
    /// The BPF LSM decision core (`src/lsm_core.rs`) could not be loaded
    /// or run.
    #[error("BPF LSM decision core: {0}")]
    LsmCore(String),
    /// A DFA does not fit the decision core's maps.
    #[error(
        "the BPF LSM decision core cannot hold the {kind} DFA: `{map}` needs {needed} entries and holds {max}"
    )]
    LsmTooLarge {
        /// `fs` or `exec`.
        kind: &'static str,
        /// The map.
        map: &'static str,
        /// Entries the DFA needs.
        needed: usize,
        /// Entries the map holds.
        max: u32,
    },
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> BpfError {
    move |e| BpfError::Map {
        map,
        msg: e.to_string(),
    }
}

/// A program error while loading: [`BpfError::Load`] naming the program.
fn load_err(prog: &'static str) -> impl Fn(ProgramError) -> BpfError {
    move |e| BpfError::Load(format!("{prog}: {e}"))
}

/// A program error while attaching: [`BpfError::Attach`].
fn attach_err(prog: &'static str) -> impl Fn(ProgramError) -> BpfError {
    move |e| BpfError::Attach {
        prog,
        msg: e.to_string(),
    }
}

/// Program `name` of `ebpf` as its kind `T`; a program of another kind is
/// reported through `wrong_kind` (a load or an attach error).
fn program<'a, T>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
    wrong_kind: impl Fn(ProgramError) -> BpfError,
) -> Result<&'a mut T, BpfError>
where
    &'a mut T: TryFrom<&'a mut Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(BpfError::Missing(name))?
        .try_into()
        .map_err(wrong_kind)
}

/// The cgroup program kinds attached to each step cgroup.
trait CgroupHook {
    /// The link that keeps the program attached.
    type Link;
    /// Attaches (no override) and takes the link.
    fn link(&mut self, cgroup: impl AsFd) -> Result<Self::Link, ProgramError>;
}

impl CgroupHook for CgroupSockAddr {
    type Link = CgroupSockAddrLink;
    fn link(&mut self, cgroup: impl AsFd) -> Result<Self::Link, ProgramError> {
        let id = self.attach(cgroup, CgroupAttachMode::Single)?;
        self.take_link(id)
    }
}

impl CgroupHook for CgroupSock {
    type Link = CgroupSockLink;
    fn link(&mut self, cgroup: impl AsFd) -> Result<Self::Link, ProgramError> {
        let id = self.attach(cgroup, CgroupAttachMode::Single)?;
        self.take_link(id)
    }
}

impl CgroupHook for CgroupSockopt {
    type Link = CgroupSockoptLink;
    fn link(&mut self, cgroup: impl AsFd) -> Result<Self::Link, ProgramError> {
        let id = self.attach(cgroup, CgroupAttachMode::Single)?;
        self.take_link(id)
    }
}

impl CgroupHook for CgroupSkb {
    type Link = CgroupSkbLink;
    fn link(&mut self, cgroup: impl AsFd) -> Result<Self::Link, ProgramError> {
        let id = self.attach(
            cgroup,
            CgroupSkbAttachType::Egress,
            CgroupAttachMode::Single,
        )?;
        self.take_link(id)
    }
}

/// Attaches program `name` (of kind `T`) of `ebpf` to `cgroup`.
fn attach_hook<'a, T>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
    cgroup: impl AsFd,
) -> Result<T::Link, BpfError>
where
    T: CgroupHook + 'a,
    &'a mut T: TryFrom<&'a mut Program, Error = ProgramError>,
{
    program::<T>(ebpf, name, attach_err(name))?
        .link(cgroup)
        .map_err(attach_err(name))
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

/// The data part of an LPM key (after the prefix length), `D` bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct KeyData<const D: usize>([u8; D]);
// SAFETY: plain bytes, no padding.
unsafe impl<const D: usize> Pod for KeyData<D> {}

/// A `net4`/`net6` value (`u32 first; u32 count`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct SliceBytes([u8; NET_VALUE_LEN]);
// SAFETY: plain bytes, no padding.
unsafe impl Pod for SliceBytes {}

/// A `ports` value (`u16 lo; u16 hi; u32 grant`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct PortBytes([u8; PORT_VALUE_LEN]);
// SAFETY: plain bytes, no padding.
unsafe impl Pod for PortBytes {}

/// Splits an image LPM key into its prefix length and data, unchanged.
fn split_key<const N: usize, const D: usize>(k: &[u8; N]) -> (u32, [u8; D]) {
    let mut pl = [0u8; 4];
    pl.copy_from_slice(&k[..4]);
    let mut d = [0u8; D];
    d.copy_from_slice(&k[4..4 + D]);
    (u32::from_ne_bytes(pl), d)
}

fn entries(n: usize) -> u32 {
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

/// Inserts the image's `(key, value)` entries, unchanged, into LPM trie
/// `name` (`net4` with N = NET4_KEY_LEN, `net6` with N = NET6_KEY_LEN;
/// D = N - 4).
fn fill_trie<const N: usize, const D: usize>(
    ebpf: &mut Ebpf,
    name: &'static str,
    entries: &[([u8; N], [u8; NET_VALUE_LEN])],
) -> Result<(), BpfError> {
    let map = ebpf.map_mut(name).ok_or(BpfError::Missing(name))?;
    let mut trie: LpmTrie<&mut MapData, KeyData<D>, SliceBytes> =
        LpmTrie::try_from(map).map_err(map_err(name))?;
    for (k, v) in entries {
        let (len, data) = split_key::<N, D>(k);
        trie.insert(&Key::new(len, KeyData(data)), SliceBytes(*v), 0)
            .map_err(map_err(name))?;
    }
    Ok(())
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
    /// A socket option refused, or a packet dropped for carrying one.
    Option(OptEvent),
    /// A DNS query steered to the session's resolver.
    Dns(DnsEvent),
}

/// A DNS query steered to the session's resolver (`struct dns_event`): who
/// sent it, and where it meant to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsEvent {
    /// The acting task.
    pub head: EventHead,
    /// The destination the program meant (IPv4 mapped into IPv6).
    pub addr: Ipv6Addr,
    /// 6 (TCP) or 17 (UDP).
    pub proto: u8,
    /// Task command name.
    pub comm: String,
}

/// UDP sockets of the resolver per family (`DNS_SOCKETS` in kapl.bpf.c):
/// a query goes to the one its sender's cgroup picks.
pub const DNS_SOCKETS: usize = 8;

/// Where the session's resolver listens (`struct dns_conf`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsConf {
    /// Whether port 53 is steered.
    pub on: bool,
    /// Its IPv4 address.
    pub ip4: std::net::Ipv4Addr,
    /// Its IPv4 TCP port.
    pub port4: u16,
    /// Its IPv6 address.
    pub ip6: Ipv6Addr,
    /// Its IPv6 TCP port.
    pub port6: u16,
    /// Its IPv4 UDP ports.
    pub udp4: [u16; DNS_SOCKETS],
    /// Its IPv6 UDP ports (0: none).
    pub udp6: [u16; DNS_SOCKETS],
}

impl DnsConf {
    /// `struct dns_conf`'s bytes.
    fn bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..4].copy_from_slice(&u32::from(self.on).to_ne_bytes());
        b[4..8].copy_from_slice(&self.ip4.octets());
        b[8..24].copy_from_slice(&self.ip6.octets());
        b[24..26].copy_from_slice(&self.port4.to_be_bytes());
        b[26..28].copy_from_slice(&self.port6.to_be_bytes());
        for (i, (p4, p6)) in self.udp4.iter().zip(&self.udp6).enumerate() {
            b[32 + 2 * i..34 + 2 * i].copy_from_slice(&p4.to_be_bytes());
            b[48 + 2 * i..50 + 2 * i].copy_from_slice(&p6.to_be_bytes());
        }
        b
    }
}

/// A `dns` value.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct DnsConfBytes([u8; 64]);
// SAFETY: plain bytes, no padding.
unsafe impl Pod for DnsConfBytes {}

/// A `learned` key (`u16 step; u8 proto; u8 pad; u8 addr[16]`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct LearnedKey([u8; 20]);
// SAFETY: plain bytes, no padding.
unsafe impl Pod for LearnedKey {}

/// A `learned` value (`u32 count; struct port_range ranges[8]`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct LearnedVal([u8; 4 + 8 * LEARNED_RANGES]);
// SAFETY: plain bytes, no padding.
unsafe impl Pod for LearnedVal {}

fn learned_key(step: u32, proto: u8, addr: Ipv6Addr) -> Result<LearnedKey, BpfError> {
    let step = u16::try_from(step).map_err(|_| BpfError::Map {
        map: "learned",
        msg: format!("step {step} beyond the maps' 16 bits"),
    })?;
    let mut k = [0u8; 20];
    k[0..2].copy_from_slice(&step.to_ne_bytes());
    k[2] = proto;
    k[4..20].copy_from_slice(&addr.octets());
    Ok(LearnedKey(k))
}

/// A socket option that reroutes: refused by `kapl_setsockopt`, or found
/// in a packet `kapl_egress` dropped (`struct opt_event`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptEvent {
    /// The acting task (for a packet: the task running when it left,
    /// the sender for a datagram); its cgroup is the socket's.
    pub head: EventHead,
    /// The option's level (`SOL_IP`, `SOL_IPV6`, ...).
    pub level: i32,
    /// The option.
    pub optname: i32,
    /// Socket family (for a packet: of its IP header).
    pub family: u32,
    /// Socket type (0 for a packet).
    pub sotype: u32,
    /// Protocol (for a packet: the IP header's next header).
    pub proto: u32,
    /// Whether a packet was dropped (not a setsockopt refused).
    pub packet: bool,
    /// A dropped packet's destination (IPv4 mapped into IPv6).
    pub addr: Ipv6Addr,
    /// Task command name.
    pub comm: String,
}

/// What every event reports of the acting task (`struct event_head` in
/// bpf/session.h: the first 32 bytes of every record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHead {
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
}

impl EventHead {
    /// Decodes the header (kind 0, pid 4, tgid 8, step 12, ts 16, cgroup
    /// 24) of a record whose kind and length the caller checked.
    pub(crate) fn decode(b: &[u8]) -> EventHead {
        EventHead {
            pid: rd_u32(b, 4),
            tgid: rd_u32(b, 8),
            step: rd_u32(b, 12),
            ts: rd_u64(b, 16),
            cgroup: rd_u64(b, 24),
        }
    }
}

/// A network decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetEvent {
    /// The acting task.
    pub head: EventHead,
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
    /// The acting task (its step is never NO_STEP: the tracer reports
    /// only the session's processes).
    pub head: EventHead,
    /// Command name after exec.
    pub comm: String,
    /// The path passed to execve (bprm->filename).
    pub path: Vec<u8>,
}

/// The native-endian u32 at `o` of an event record (0 past its end).
pub(crate) fn rd_u32(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}
/// The native-endian u64 at `o` of an event record (0 past its end).
pub(crate) fn rd_u64(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}
/// Bytes of the exec event's path buffer (`EXEC_PATH` in kapl.bpf.c): the
/// program copies at most one less, so a path of that length may be cut.
pub const EXEC_PATH_MAX: usize = 256;

/// The bytes of the `n`-byte field at `o` up to its first NUL (what the
/// record holds of it).
pub(crate) fn cstr_at(b: &[u8], o: usize, n: usize) -> Vec<u8> {
    let s = b.get(o..(o + n).min(b.len())).unwrap_or(&[]);
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    s[..end].to_vec()
}

/// Decodes one ring buffer record (layouts of `struct net_event`: kind 0,
/// pid 4, tgid 8, step 12, ts 16, cgroup 24, grant 32, port 36, op 38,
/// verdict 39, addr 40..56, family 56, type 60, protocol 64, comm 68..84;
/// `struct exec_event`: ..., cgroup 24, comm 32..48, path 48..304; and
/// `struct opt_event`: ..., level 32, optname 36, family 40, type 44,
/// protocol 48, source 52, addr 56..72, comm 72..88).
pub fn decode(b: &[u8]) -> Option<Event> {
    match rd_u32(b, 0) {
        1 if b.len() >= 88 => {
            let mut addr = [0u8; 16];
            addr.copy_from_slice(&b[40..56]);
            Some(Event::Net(NetEvent {
                head: EventHead::decode(b),
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
        4 if b.len() >= 88 => {
            let mut addr = [0u8; 16];
            addr.copy_from_slice(&b[56..72]);
            Some(Event::Option(OptEvent {
                head: EventHead::decode(b),
                level: rd_u32(b, 32).cast_signed(),
                optname: rd_u32(b, 36).cast_signed(),
                family: rd_u32(b, 40),
                sotype: rd_u32(b, 44),
                proto: rd_u32(b, 48),
                packet: b[52] == 2,
                addr: Ipv6Addr::from(addr),
                comm: String::from_utf8_lossy(&cstr_at(b, 72, 16)).into_owned(),
            }))
        }
        5 if b.len() >= 68 => {
            let mut addr = [0u8; 16];
            addr.copy_from_slice(&b[32..48]);
            Some(Event::Dns(DnsEvent {
                head: EventHead::decode(b),
                addr: Ipv6Addr::from(addr),
                proto: b[50],
                comm: String::from_utf8_lossy(&cstr_at(b, 52, 16)).into_owned(),
            }))
        }
        2 if b.len() >= 48 => Some(Event::Exec(ExecEvent {
            head: EventHead::decode(b),
            comm: String::from_utf8_lossy(&cstr_at(b, 32, 16)).into_owned(),
            path: cstr_at(b, 48, EXEC_PATH_MAX),
        })),
        _ => None,
    }
}

/// The links of one step cgroup; dropping them detaches the programs.
pub struct StepLinks {
    _addr: Vec<CgroupSockAddrLink>,
    _sock: Vec<CgroupSockLink>,
    _sockopt: CgroupSockoptLink,
    _egress: CgroupSkbLink,
    _unix: Vec<OwnedFd>,
}

/// The loaded programs and maps of one session.
pub struct NetEnforcer {
    ebpf: Ebpf,
    /// The last resolver socket given to a command cgroup.
    next_slot: u32,
    events: RingBuf<MapData>,
    _exec_link: aya::programs::tp_btf::BtfTracePointLink,
    unix: crate::unix::UnixHooks,
}

impl NetEnforcer {
    /// Loads the programs, fills `net4`, `net6` and `ports` with the
    /// image's bytes for one plan and attaches the exec tracer. Nothing is
    /// attached to any cgroup yet. No pathname UNIX socket is granted.
    pub fn load(maps: &NetMaps) -> Result<NetEnforcer, BpfError> {
        NetEnforcer::load_with_unix(maps, &crate::unix::UnixTables::none())
    }

    /// Like [`NetEnforcer::load`], with the plan's tables for the pathname
    /// UNIX socket hooks (src/unix.rs).
    pub fn load_with_unix(
        maps: &NetMaps,
        unix: &crate::unix::UnixTables,
    ) -> Result<NetEnforcer, BpfError> {
        let btf = Btf::from_sys_fs().map_err(|e| BpfError::Load(format!("kernel BTF: {e}")))?;
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .map_max_entries("net4", entries(maps.v4.len()))
            .map_max_entries("net6", entries(maps.v6.len()))
            .map_max_entries("ports", entries(maps.ports.len()))
            .map_max_entries("reported", REPORTED_ALLOWS)
            .load(OBJECT)
            .map_err(|e| BpfError::Load(e.to_string()))?;
        fill_trie::<NET4_KEY_LEN, { NET4_KEY_LEN - 4 }>(&mut ebpf, "net4", &maps.v4)?;
        fill_trie::<NET6_KEY_LEN, { NET6_KEY_LEN - 4 }>(&mut ebpf, "net6", &maps.v6)?;
        {
            let map = ebpf.map_mut("ports").ok_or(BpfError::Missing("ports"))?;
            let mut arr: Array<&mut MapData, PortBytes> =
                Array::try_from(map).map_err(map_err("ports"))?;
            for (i, v) in maps.ports.iter().enumerate() {
                let i = u32::try_from(i).map_err(|_| BpfError::Map {
                    map: "ports",
                    msg: "more than 2^32 port ranges".into(),
                })?;
                arr.set(i, PortBytes(*v), 0).map_err(map_err("ports"))?;
            }
        }
        for name in SOCK_ADDR_PROGS {
            program::<CgroupSockAddr>(&mut ebpf, name, load_err(name))?
                .load()
                .map_err(load_err(name))?;
        }
        program::<CgroupSock>(&mut ebpf, SOCK_CREATE_PROG, load_err(SOCK_CREATE_PROG))?
            .load()
            .map_err(load_err(SOCK_CREATE_PROG))?;
        program::<CgroupSockopt>(&mut ebpf, SOCKOPT_PROG, load_err(SOCKOPT_PROG))?
            .load()
            .map_err(load_err(SOCKOPT_PROG))?;
        program::<CgroupSkb>(&mut ebpf, EGRESS_PROG, load_err(EGRESS_PROG))?
            .load()
            .map_err(load_err(EGRESS_PROG))?;
        let exec_link = {
            let p = program::<BtfTracePoint>(&mut ebpf, EXEC_PROG, load_err(EXEC_PROG))?;
            p.load("sched_process_exec", &btf)
                .map_err(load_err(EXEC_PROG))?;
            let id = p.attach().map_err(attach_err(EXEC_PROG))?;
            p.take_link(id).map_err(attach_err(EXEC_PROG))?
        };
        let unix = crate::unix::UnixHooks::load(&ebpf, &btf, unix).map_err(BpfError::Load)?;
        let events = ebpf.take_map("events").ok_or(BpfError::Missing("events"))?;
        let events = RingBuf::try_from(events).map_err(map_err("events"))?;
        Ok(NetEnforcer {
            ebpf,
            next_slot: 0,
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
            addr.push(attach_hook::<CgroupSockAddr>(&mut self.ebpf, name, cgroup)?);
        }
        let sock = vec![attach_hook::<CgroupSock>(
            &mut self.ebpf,
            SOCK_CREATE_PROG,
            cgroup,
        )?];
        let sockopt = attach_hook::<CgroupSockopt>(&mut self.ebpf, SOCKOPT_PROG, cgroup)?;
        let egress = attach_hook::<CgroupSkb>(&mut self.ebpf, EGRESS_PROG, cgroup)?;
        let unix = self.unix.attach(cgroup).map_err(|msg| BpfError::Attach {
            prog: "kapl_unix_connect/sendmsg",
            msg,
        })?;
        Ok(StepLinks {
            _addr: addr,
            _sock: sock,
            _sockopt: sockopt,
            _egress: egress,
            _unix: unix,
        })
    }

    /// Runs the egress program once on `packet` (an Ethernet header, then
    /// the IP packet) through `BPF_PROG_TEST_RUN`, on the real kernel and
    /// verifier: whether it would pass a session socket's packet. Its
    /// report of a dropped packet goes to the ring buffer like any other.
    /// (No session socket can make a packet with a routing header on a
    /// kernel that refuses them as ancillary data; this is how the drop is
    /// tested there.)
    pub fn egress_passes(&self, packet: &[u8]) -> Result<bool, BpfError> {
        let p = self
            .ebpf
            .program(EGRESS_PROG)
            .ok_or(BpfError::Missing(EGRESS_PROG))?;
        let fd = p.fd().map_err(load_err(EGRESS_PROG))?;
        let r = crate::sys::bpf_prog_test_run(fd.as_fd(), packet)
            .map_err(|e| BpfError::Load(format!("{EGRESS_PROG}: BPF_PROG_TEST_RUN: {e}")))?;
        Ok(r == 1)
    }

    /// The `cg_step` map (cgroup id -> step).
    fn cg_step(&mut self) -> Result<BpfHashMap<&mut MapData, u64, u32>, BpfError> {
        let map = self
            .ebpf
            .map_mut("cg_step")
            .ok_or(BpfError::Missing("cg_step"))?;
        BpfHashMap::try_from(map).map_err(map_err("cg_step"))
    }

    /// Records that processes in cgroup `id` act for `step`, and gives the
    /// cgroup the next of the resolver's UDP sockets in turn.
    pub fn set_cgroup_step(&mut self, id: u64, step: u32) -> Result<(), BpfError> {
        self.cg_step()?
            .insert(id, step, 0)
            .map_err(map_err("cg_step"))?;
        self.next_slot = self.next_slot.wrapping_add(1);
        let slot = self.next_slot % DNS_SOCKETS as u32;
        let map = self
            .ebpf
            .map_mut("dns_slot")
            .ok_or(BpfError::Missing("dns_slot"))?;
        BpfHashMap::<_, u64, u32>::try_from(map)
            .map_err(map_err("dns_slot"))?
            .insert(id, slot, 0)
            .map_err(map_err("dns_slot"))
    }

    /// Forgets cgroup `id`.
    pub fn clear_cgroup(&mut self, id: u64) -> Result<(), BpfError> {
        if let Some(map) = self.ebpf.map_mut("dns_slot")
            && let Ok(mut m) = BpfHashMap::<_, u64, u32>::try_from(map)
        {
            let _ = m.remove(&id);
        }
        match self.cg_step()?.remove(&id) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err("cg_step")(e)),
        }
    }

    /// Says where the session's resolver listens, and whether port 53 is
    /// steered to it.
    pub fn set_dns(&mut self, conf: &DnsConf) -> Result<(), BpfError> {
        let map = self.ebpf.map_mut("dns").ok_or(BpfError::Missing("dns"))?;
        let mut arr: Array<&mut MapData, DnsConfBytes> =
            Array::try_from(map).map_err(map_err("dns"))?;
        arr.set(0, DnsConfBytes(conf.bytes()), 0)
            .map_err(map_err("dns"))
    }

    fn learned(&mut self) -> Result<BpfHashMap<&mut MapData, LearnedKey, LearnedVal>, BpfError> {
        let map = self
            .ebpf
            .map_mut("learned")
            .ok_or(BpfError::Missing("learned"))?;
        BpfHashMap::try_from(map).map_err(map_err("learned"))
    }

    /// Admits `addr` in `step` over `proto` (6 or 17) for `ranges` (at
    /// most [`LEARNED_RANGES`], sorted and disjoint; more is an error).
    pub fn learn(
        &mut self,
        step: u32,
        proto: u8,
        addr: Ipv6Addr,
        ranges: &[kapl_image::PortGrant],
    ) -> Result<(), BpfError> {
        if ranges.len() > LEARNED_RANGES {
            return Err(BpfError::Map {
                map: "learned",
                msg: format!(
                    "{} port ranges for one address (at most {LEARNED_RANGES})",
                    ranges.len()
                ),
            });
        }
        let key = learned_key(step, proto, addr)?;
        let mut v = [0u8; 4 + 8 * LEARNED_RANGES];
        v[0..4].copy_from_slice(&(ranges.len() as u32).to_ne_bytes());
        for (i, r) in ranges.iter().enumerate() {
            let o = 4 + 8 * i;
            v[o..o + 2].copy_from_slice(&r.lo.to_ne_bytes());
            v[o + 2..o + 4].copy_from_slice(&r.hi.to_ne_bytes());
            v[o + 4..o + 8].copy_from_slice(&r.grant.to_ne_bytes());
        }
        self.learned()?
            .insert(key, LearnedVal(v), 0)
            .map_err(map_err("learned"))
    }

    /// Withdraws a learned address.
    pub fn forget(&mut self, step: u32, proto: u8, addr: Ipv6Addr) -> Result<(), BpfError> {
        let key = learned_key(step, proto, addr)?;
        match self.learned()?.remove(&key) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err("learned")(e)),
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
    fn key_bytes_are_kept() {
        let mut k = [0u8; NET4_KEY_LEN];
        k[..4].copy_from_slice(&(32u32 + 24).to_ne_bytes());
        k[4..].copy_from_slice(&[0, 3, 1, 17, 10, 20, 30, 0]);
        let (len, data) = split_key::<NET4_KEY_LEN, { NET4_KEY_LEN - 4 }>(&k);
        assert_eq!(len, 56);
        assert_eq!(data, [0, 3, 1, 17, 10, 20, 30, 0]);
        // aya's key is the prefix length followed by the data, as the
        // kernel's `struct bpf_lpm_trie_key` and the image's bytes.
        assert_eq!(
            size_of::<Key<KeyData<{ NET4_KEY_LEN - 4 }>>>(),
            NET4_KEY_LEN
        );
        assert_eq!(
            size_of::<Key<KeyData<{ NET6_KEY_LEN - 4 }>>>(),
            NET6_KEY_LEN
        );
    }
}
