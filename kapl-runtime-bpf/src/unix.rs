//! Pathname UNIX sockets (stage: runtime, kernel enforcement).
//!
//! Input: the plan's path DFA (as [`UnixTables`]) and the maps the main BPF
//! object shares (`cg_step`, `events`, `lost`). Output: the
//! `bpf/unix.bpf.c` program loaded twice — as `cgroup/connect_unix` and
//! `cgroup/sendmsg_unix` (Linux 6.7+) — and attached with bpf links to
//! each step cgroup; its decisions come back through the shared ring
//! buffer as [`UnixEvent`]s.
//!
//! Landlock ABI 7 does not mediate connecting to a pathname UNIX socket.
//! The rule is DAC's: connecting or sending to a socket file needs write
//! on it, so the step must grant `fs write` on the path. The kernel program
//! walks the plan's DFA over the path as written and refuses paths that
//! are relative, not normal, or pass through a name some step may create
//! (a planted symbolic link), see the C source.
//!
//! aya 0.14 has no attach type for these hooks, so the object is parsed
//! and relocated with aya-obj here and loaded with raw `bpf(2)` calls.

use crate::bpf::{EventHead, cstr_at, rd_u32};
use crate::sys;
use aya::maps::{Array, Map, MapData};
use aya_obj::Object;
use kapl_image::{FsRight, NO_GRANT, Plan};
use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/unix.bpf.o"));

const PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
/// `BPF_CGROUP_UNIX_CONNECT`.
const ATTACH_UNIX_CONNECT: u32 = 49;
/// `BPF_CGROUP_UNIX_SENDMSG`.
const ATTACH_UNIX_SENDMSG: u32 = 50;
/// The entry points and the attach type each is loaded for.
const PROGS: [(&str, u32); 2] = [
    ("kapl_unix_connect", ATTACH_UNIX_CONNECT),
    ("kapl_unix_sendmsg", ATTACH_UNIX_SENDMSG),
];
/// Maps the main object owns; the others are created here.
const SHARED: [&str; 3] = ["cg_step", "events", "lost"];

/// The plan's fs DFA as the kernel program reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnixTables {
    /// Start state.
    pub start: u32,
    /// Byte → class.
    pub classes: Vec<u8>,
    /// Number of classes.
    pub class_count: u32,
    /// Number of steps.
    pub steps: u32,
    /// `states × class_count` next states.
    pub next: Vec<u32>,
    /// `states × steps`: the grant of `fs write` at a state, or NO_GRANT.
    pub write: Vec<u32>,
    /// Per state: 1 if some step of the plan may create that name.
    pub create: Vec<u32>,
    /// Refuse every abstract address: the session runs below Landlock ABI
    /// 6, whose scope would otherwise confine abstract sockets.
    pub refuse_abstract: bool,
}

impl UnixTables {
    /// The plan's fs DFA as the pathname UNIX socket program reads it: per
    /// state and step the grant of `fs write`, per state whether any step may
    /// create that name (src/unix.rs).
    pub fn of(plan: &Plan) -> UnixTables {
        let d = &plan.fs;
        let n = d.states();
        let steps = d.steps;
        let mut write = Vec::with_capacity(n * steps as usize);
        let mut create = Vec::with_capacity(n);
        for s in 0..n as u32 {
            for st in 0..steps {
                write.push(d.cell(s, st, FsRight::Write.column()).grant);
            }
            let any =
                (0..steps).any(|st| d.cell(s, st, FsRight::Create.column()).grant != NO_GRANT);
            create.push(u32::from(any));
        }
        UnixTables {
            start: d.start,
            classes: d.classes.clone(),
            class_count: u32::from(d.class_count),
            steps,
            next: d.transitions.clone(),
            write,
            create,
            refuse_abstract: false,
        }
    }

    /// The same tables for a session whose Landlock domains are built at
    /// `abi`: below 6 (no abstract-socket scope) the program refuses every
    /// abstract connect and send itself.
    pub fn at_abi(mut self, abi: u8) -> UnixTables {
        self.refuse_abstract = abi < 6;
        self
    }

    /// Tables that grant no socket path (one state, nothing creatable).
    pub fn none() -> UnixTables {
        UnixTables {
            start: 0,
            classes: vec![0; 256],
            class_count: 1,
            steps: 0,
            next: vec![0],
            write: Vec::new(),
            create: vec![0],
            refuse_abstract: false,
        }
    }

    fn states(&self) -> usize {
        self.create.len()
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Meta {
    start: u32,
    classes: u32,
    steps: u32,
    states: u32,
    refuse_abstract: u32,
}
// SAFETY: plain-old-data, five u32 (matches `struct unix_meta`).
unsafe impl aya::Pod for Meta {}

/// Why the kernel program refused a path (0: it allowed it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Allowed.
    Granted,
    /// No `fs write` grant of the step covers the path.
    NoGrant,
    /// Not an absolute path (it would be resolved from the cwd).
    Relative,
    /// An empty, `.` or `..` segment.
    NotNormal,
    /// The path or a directory on it is a name some step may create.
    Creatable,
    /// The tables were unreadable (fails closed).
    Tables,
    /// Under /proc or /dev/fd: magic links that resolve to any descriptor.
    MagicLink,
    /// An abstract address, refused because Landlock (below ABI 6) cannot
    /// scope abstract sockets to the session.
    Abstract,
}

/// A UNIX connect or send the program decided (a pathname, or an abstract
/// address refused below Landlock ABI 6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixEvent {
    /// The acting task.
    pub head: EventHead,
    /// The `fs write` grant that allowed it, or NO_GRANT.
    pub grant: u32,
    /// true: sendmsg; false: connect.
    pub send: bool,
    /// Allowed.
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
    /// Task command name.
    pub comm: String,
    /// The socket path as given; an abstract address as `@` and its name
    /// (every byte of it, NULs included, as `ss` shows them).
    pub path: Vec<u8>,
}

/// Decodes a `struct unix_event` (kind 3): kind 0, pid 4, tgid 8, step
/// 12, ts 16, cgroup 24, grant 32, op 36, verdict 37, reason 38, len 40,
/// comm 44..60, path 60..168.
pub fn decode(b: &[u8]) -> Option<UnixEvent> {
    if rd_u32(b, 0) != 3 || b.len() < 168 {
        return None;
    }
    let len = (rd_u32(b, 40) as usize).min(108);
    let path = if b[60] == 0 && b[38] == 7 {
        let mut p = vec![b'@'];
        p.extend_from_slice(&b[61..60 + len.max(1)]);
        p
    } else {
        cstr_at(b, 60, len)
    };
    Some(UnixEvent {
        head: EventHead::decode(b),
        grant: rd_u32(b, 32),
        send: b[36] == 3,
        allowed: b[37] == 1,
        reason: match b[38] {
            0 => Reason::Granted,
            1 => Reason::NoGrant,
            2 => Reason::Relative,
            3 => Reason::NotNormal,
            4 => Reason::Creatable,
            6 => Reason::MagicLink,
            7 => Reason::Abstract,
            _ => Reason::Tables,
        },
        comm: String::from_utf8_lossy(&cstr_at(b, 44, 16)).into_owned(),
        path,
    })
}

/// The loaded programs (one per hook) and the maps they own.
pub struct UnixHooks {
    progs: Vec<(u32, OwnedFd)>,
    _maps: Vec<Map>,
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("unix socket hooks: {what}: {e}")
}

/// The fd of a map the main object created.
fn map_fd(m: &Map) -> Option<RawFd> {
    let d = match m {
        Map::HashMap(d) | Map::RingBuf(d) | Map::PerCpuArray(d) | Map::Array(d) => d,
        _ => return None,
    };
    Some(d.fd().as_fd().as_raw_fd())
}

impl UnixHooks {
    /// Loads both programs against the main object's shared maps (taken
    /// from `main`, which must still own `events`) and fresh maps filled
    /// from `t`.
    pub fn load(main: &aya::Ebpf, btf: &aya::Btf, t: &UnixTables) -> Result<UnixHooks, String> {
        let mut obj = Object::parse(OBJECT).map_err(|e| err("parse", e))?;
        obj.relocate_btf(btf)
            .map_err(|e| err("BTF relocation", e))?;
        let states = u32::try_from(t.states()).map_err(|e| err("states", e))?;
        if t.classes.len() != 256
            || t.next.len() != t.states() * t.class_count as usize
            || t.write.len() != t.states() * t.steps as usize
        {
            return Err(err("tables", "inconsistent sizes"));
        }
        let mut owned: Vec<(String, MapData)> = Vec::new();
        let mut fds: Vec<(String, RawFd)> = Vec::new();
        for (name, def) in &obj.maps {
            if SHARED.contains(&name.as_str()) {
                let fd = main
                    .map(name)
                    .and_then(map_fd)
                    .ok_or_else(|| err("shared map missing", name))?;
                fds.push((name.clone(), fd));
                continue;
            }
            let entries = match name.as_str() {
                "unix_next" => t.next.len(),
                "unix_write" => t.write.len(),
                "unix_create" => t.create.len(),
                _ => def.max_entries() as usize,
            };
            // Created without BTF (a BTF-defined map needs the object's
            // BTF loaded): the same type and sizes, as a plain definition.
            let plain = aya_obj::Map::new_from_params(
                def.map_type(),
                def.key_size(),
                def.value_size(),
                u32::try_from(entries.max(1)).map_err(|e| err(name, e))?,
                def.map_flags(),
            );
            let data =
                MapData::create(plain, name, None).map_err(|e| err(name, format!("{e:?}")))?;
            fds.push((name.clone(), data.fd().as_fd().as_raw_fd()));
            owned.push((name.clone(), data));
        }
        let maps = fill_maps(owned, t, states)?;
        let text: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
        let defs: Vec<(String, RawFd, aya_obj::Map)> = fds
            .iter()
            .filter_map(|(n, fd)| obj.maps.get(n).map(|m| (n.clone(), *fd, m.clone())))
            .collect();
        obj.relocate_maps(defs.iter().map(|(n, fd, m)| (n.as_str(), *fd, m)), &text)
            .map_err(|e| err("map relocation", e))?;
        obj.relocate_calls(&text)
            .map_err(|e| err("call relocation", e))?;
        let mut progs = Vec::new();
        for (name, attach) in PROGS {
            let p = obj
                .programs
                .get(name)
                .ok_or_else(|| err("program missing", name))?;
            let f = obj
                .functions
                .get(&p.function_key())
                .ok_or_else(|| err("function missing", name))?;
            progs.push((attach, load_prog(name, &f.instructions, attach)?));
        }
        Ok(UnixHooks { progs, _maps: maps })
    }

    /// Attaches both programs to a step cgroup; dropping the links
    /// detaches them.
    pub fn attach(&self, cgroup: impl AsFd) -> Result<Vec<OwnedFd>, String> {
        let mut links = Vec::new();
        for (attach, prog) in &self.progs {
            let link =
                sys::bpf_link_create(prog.as_fd(), cgroup.as_fd(), *attach).map_err(|e| {
                    err(
                        "BPF_LINK_CREATE (cgroup/connect_unix, sendmsg_unix: Linux 6.7+)",
                        e,
                    )
                })?;
            links.push(link);
        }
        Ok(links)
    }
}

/// Fills the maps created for the hooks (`unix_meta`, `unix_classes`,
/// `unix_next`, `unix_write`, `unix_create`) from `t`; the others are left
/// as created.
fn fill_maps(
    owned: Vec<(String, MapData)>,
    t: &UnixTables,
    states: u32,
) -> Result<Vec<Map>, String> {
    let mut maps = Vec::new();
    for (name, data) in owned {
        let mut map = Map::Array(data);
        match name.as_str() {
            "unix_meta" => {
                let mut a: Array<&mut MapData, Meta> =
                    Array::try_from(&mut map).map_err(|e| err(&name, e))?;
                let m = Meta {
                    start: t.start,
                    classes: t.class_count,
                    steps: t.steps,
                    states,
                    refuse_abstract: u32::from(t.refuse_abstract),
                };
                a.set(0, m, 0).map_err(|e| err(&name, e))?;
            }
            "unix_classes" => {
                let mut a: Array<&mut MapData, [u8; 256]> =
                    Array::try_from(&mut map).map_err(|e| err(&name, e))?;
                let mut c = [0u8; 256];
                c.copy_from_slice(&t.classes);
                a.set(0, c, 0).map_err(|e| err(&name, e))?;
            }
            "unix_next" | "unix_write" | "unix_create" => {
                let v = match name.as_str() {
                    "unix_next" => &t.next,
                    "unix_write" => &t.write,
                    _ => &t.create,
                };
                let mut a: Array<&mut MapData, u32> =
                    Array::try_from(&mut map).map_err(|e| err(&name, e))?;
                for (i, x) in v.iter().enumerate() {
                    a.set(i as u32, *x, 0).map_err(|e| err(&name, e))?;
                }
            }
            _ => {}
        }
        maps.push(map);
    }
    Ok(maps)
}

fn load_prog(
    name: &str,
    insns: &[aya_obj::generated::bpf_insn],
    attach: u32,
) -> Result<OwnedFd, String> {
    sys::bpf_prog_load_explained(PROG_TYPE_CGROUP_SOCK_ADDR, attach, 0, insns, name, None)
        .map_err(|e| err(&format!("BPF_PROG_LOAD {name}"), e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, reason = "test assertions")]
    use super::*;

    #[test]
    fn decodes_the_event_layout() {
        let mut b = vec![0u8; 168];
        b[0..4].copy_from_slice(&3u32.to_ne_bytes());
        b[4..8].copy_from_slice(&11u32.to_ne_bytes());
        b[8..12].copy_from_slice(&10u32.to_ne_bytes());
        b[12..16].copy_from_slice(&2u32.to_ne_bytes());
        b[24..32].copy_from_slice(&77u64.to_ne_bytes());
        b[32..36].copy_from_slice(&5u32.to_ne_bytes());
        b[36] = 3;
        b[37] = 0;
        b[38] = 4;
        b[40..44].copy_from_slice(&20u32.to_ne_bytes());
        b[44..48].copy_from_slice(b"prob");
        // The path ends at the first NUL even when more bytes were given.
        b[60..69].copy_from_slice(b"/run/x.s\0");
        b[69] = b'z';
        let Some(e) = decode(&b) else {
            panic!("a well-formed record decodes");
        };
        assert_eq!(e.head.tgid, 10);
        assert_eq!(e.head.step, 2);
        assert_eq!(e.head.cgroup, 77);
        assert!(e.send && !e.allowed);
        assert_eq!(e.reason, Reason::Creatable);
        assert_eq!(e.comm, "prob");
        assert_eq!(e.path, b"/run/x.s");
        assert_eq!(decode(&b[..100]), None, "short records are dropped");
        b[0] = 1;
        assert_eq!(decode(&b), None, "another kind");
    }

    #[test]
    fn decodes_an_abstract_refusal_with_every_byte_of_its_name() {
        let mut b = vec![0u8; 168];
        b[0..4].copy_from_slice(&3u32.to_ne_bytes());
        b[36] = 1;
        b[38] = 7;
        b[40..44].copy_from_slice(&6u32.to_ne_bytes());
        b[61..66].copy_from_slice(b"a\0bc\0");
        let e = decode(&b).unwrap_or_else(|| panic!("decodes"));
        assert_eq!(e.reason, Reason::Abstract);
        assert!(!e.send);
        assert_eq!(e.path, b"@a\0bc\0");
    }

    #[test]
    fn abstract_addresses_are_refused_below_abi_6_only() {
        assert!(UnixTables::none().at_abi(4).refuse_abstract);
        assert!(UnixTables::none().at_abi(5).refuse_abstract);
        assert!(!UnixTables::none().at_abi(6).refuse_abstract);
        assert!(!UnixTables::none().at_abi(7).refuse_abstract);
    }

    #[test]
    fn empty_tables_are_consistent() {
        let t = UnixTables::none();
        assert_eq!(t.classes.len(), 256);
        assert_eq!(t.next.len(), t.states() * t.class_count as usize);
        assert_eq!(t.write.len(), t.states() * t.steps as usize);
    }
}
