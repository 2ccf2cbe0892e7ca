//! From a verified image to kernel objects (stage: runtime, step set-up).
//!
//! Input: a [`kapl_image::Plan`] and a step index. Output: the step's
//! automata as the Landlock walk reads them, its TCP ports for the Landlock network wall, and attribution
//! helpers (which grant covers a path, the nearest grant for a denial).

use crate::domain::{self, PathAutomaton, TcpPorts, access};
use kapl_image::{BENEATH_ALL, BENEATH_SELF, Dfa, DfaKind, FsRight, NO_GRANT, NetOp, Plan};
use std::net::{IpAddr, Ipv6Addr};

/// The Landlock rights of one image column.
///
/// An exec grant carries READ_FILE with EXECUTE: the kernel opens a program
/// (and its ELF interpreter) for reading to execute it, and Landlock checks
/// both rights on that open. So a program that may be run may also be read;
/// nothing else is widened.
fn column_access(kind: DfaKind, column: usize) -> u64 {
    match kind {
        DfaKind::Exec => access::EXECUTE | access::READ_FILE,
        DfaKind::Fs => FsRight::ALL
            .get(column)
            .map_or(0, |r| kapl_image::access::of_right(*r)),
    }
}

/// The image column a Landlock right belongs to.
pub fn right_of_access(bit: u64) -> Option<(DfaKind, usize)> {
    Some(match bit {
        access::EXECUTE => (DfaKind::Exec, 0),
        access::READ_FILE | access::READ_DIR => (DfaKind::Fs, FsRight::Read.column()),
        access::WRITE_FILE | access::TRUNCATE | access::IOCTL_DEV => {
            (DfaKind::Fs, FsRight::Write.column())
        }
        access::MAKE_REG
        | access::MAKE_DIR
        | access::MAKE_SYM
        | access::MAKE_CHAR
        | access::MAKE_BLOCK
        | access::MAKE_FIFO
        | access::MAKE_SOCK => (DfaKind::Fs, FsRight::Create.column()),
        access::REMOVE_FILE | access::REMOVE_DIR | access::REFER => {
            (DfaKind::Fs, FsRight::Delete.column())
        }
        _ => return None,
    })
}

/// One step's view of one of the plan's DFAs.
pub struct StepAutomaton<'a> {
    dfa: &'a Dfa,
    step: u32,
    live: Vec<u64>,
    plan_fs: Option<&'a Dfa>,
}

impl<'a> StepAutomaton<'a> {
    /// Prepares `dfa` for `step` (computes which states can still accept).
    pub fn new(dfa: &'a Dfa, step: u32) -> StepAutomaton<'a> {
        let n = dfa.states();
        let cc = usize::from(dfa.class_count);
        let mut a = StepAutomaton {
            dfa,
            step,
            live: vec![0; n],
            plan_fs: None,
        };
        let mut live: Vec<u64> = (0..n as u32).map(|s| a.accept(s)).collect();
        // Reverse edges, then propagate accept bits backwards.
        let mut rev: Vec<Vec<u32>> = vec![Vec::new(); n];
        for s in 0..n {
            for c in 0..cc {
                if let Some(&t) = dfa.transitions.get(s * cc + c)
                    && let Some(r) = rev.get_mut(t as usize)
                    && r.last() != Some(&(s as u32))
                {
                    r.push(s as u32);
                }
            }
        }
        let mut work: Vec<u32> = (0..n as u32).filter(|s| live[*s as usize] != 0).collect();
        while let Some(t) = work.pop() {
            let bits = live[t as usize];
            for &s in rev.get(t as usize).map_or(&[][..], |v| v.as_slice()) {
                let old = live[s as usize];
                if old | bits != old {
                    live[s as usize] = old | bits;
                    work.push(s);
                }
            }
        }
        a.live = live;
        a
    }

    fn columns(&self) -> usize {
        self.dfa.kind.rights()
    }

    /// Answers [`PathAutomaton::creatable`] from the plan's file-system
    /// DFA (every step), instead of the conservative default.
    pub fn with_plan_fs(mut self, fs: &'a Dfa) -> StepAutomaton<'a> {
        self.plan_fs = Some(fs);
        self
    }
}

impl PathAutomaton for StepAutomaton<'_> {
    fn start(&self) -> u32 {
        self.dfa.start
    }
    fn next(&self, state: u32, byte: u8) -> u32 {
        self.dfa.next(state, byte)
    }
    fn accept(&self, state: u32) -> u64 {
        (0..self.columns())
            .filter(|c| self.dfa.cell(state, self.step, *c).beneath & BENEATH_SELF != 0)
            .map(|c| column_access(self.dfa.kind, c))
            .fold(0, |a, b| a | b)
    }
    fn beneath_all(&self, state: u32) -> u64 {
        (0..self.columns())
            .filter(|c| self.dfa.cell(state, self.step, *c).beneath & BENEATH_ALL != 0)
            .map(|c| column_access(self.dfa.kind, c))
            .fold(0, |a, b| a | b)
    }
    fn live(&self, state: u32) -> u64 {
        self.live.get(state as usize).copied().unwrap_or(0)
    }
    fn creatable(&self, path: &[u8]) -> bool {
        let Some(fs) = self.plan_fs else {
            return true;
        };
        let s = fs.walk(path);
        (0..fs.steps).any(|st| fs.cell(s, st, FsRight::Create as usize).grant != NO_GRANT)
    }
    fn grants(&self, state: u32, rights: u64) -> Vec<u32> {
        let mut out = Vec::new();
        for c in 0..self.columns() {
            if column_access(self.dfa.kind, c) & rights != 0 {
                let g = self.dfa.cell(state, self.step, c).grant;
                if g != NO_GRANT && !out.contains(&g) {
                    out.push(g);
                }
            }
        }
        out
    }
}

/// The Landlock TCP port wall of a step.
pub fn tcp_ports(plan: &Plan, step: u32) -> TcpPorts {
    let Some(s) = plan.steps.get(step as usize) else {
        return TcpPorts {
            bind: Some(Vec::new()),
            connect: Some(Vec::new()),
        };
    };
    let ll = &s.landlock;
    let list = |v: &[kapl_image::PortGrant]| {
        let ranges: Vec<(u16, u16)> = v.iter().map(|p| (p.lo, p.hi)).collect();
        domain::port_list(&ranges, kapl_image::limits::MAX_LANDLOCK_PORTS)
    };
    TcpPorts {
        bind: if ll.handled_net & kapl_image::access::NET_BIND_TCP != 0 {
            list(&ll.tcp_bind)
        } else {
            None
        },
        connect: if ll.handled_net & kapl_image::access::NET_CONNECT_TCP != 0 {
            list(&ll.tcp_connect)
        } else {
            None
        },
    }
}

/// The literal prefixes the step's walks start from, per DFA.
pub fn prefixes(plan: &Plan, step: u32, kind: DfaKind) -> Vec<Vec<u8>> {
    plan.steps
        .get(step as usize)
        .map(|s| {
            s.landlock
                .walks
                .iter()
                .filter(|w| w.dfa == kind)
                .flat_map(|w| w.prefixes.iter().cloned())
                .collect()
        })
        .unwrap_or_default()
}

/// The grant of `step` covering `path` for the Landlock right `bit`.
pub fn fs_grant(plan: &Plan, step: u32, path: &[u8], bit: u64) -> Option<u32> {
    let (kind, col) = right_of_access(bit)?;
    let dfa = match kind {
        DfaKind::Fs => &plan.fs,
        DfaKind::Exec => &plan.exec,
    };
    let g = dfa.cell(dfa.walk(path), step, col).grant;
    (g != NO_GRANT).then_some(g)
}

/// For a denial: the nearest grant, and why it does not cover.
pub fn nearest_fs(plan: &Plan, step: u32, path: &[u8], bit: u64) -> Option<(u32, String)> {
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
    if kind == DfaKind::Exec {
        let g = plan
            .fs
            .cell(plan.fs.walk(path), step, FsRight::Read.column())
            .grant;
        if g != NO_GRANT {
            return Some((g, "it grants read here, not exec".into()));
        }
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
        let a = StepAutomatonLite { dfa, step, col };
        if let Some(g) = a.some_below(dfa.walk(anc)) {
            let shown = String::from_utf8_lossy(anc);
            return Some((g, format!("it covers other paths under {shown}")));
        }
        if pos == 0 {
            break;
        }
    }
    None
}

struct StepAutomatonLite<'a> {
    dfa: &'a Dfa,
    step: u32,
    col: usize,
}

impl StepAutomatonLite<'_> {
    /// A grant reachable from `state` (bounded search).
    fn some_below(&self, state: u32) -> Option<u32> {
        let cc = usize::from(self.dfa.class_count);
        let mut seen = std::collections::HashSet::new();
        let mut q = std::collections::VecDeque::from([state]);
        while let Some(s) = q.pop_front() {
            if !seen.insert(s) || seen.len() > 20_000 {
                continue;
            }
            let g = self.dfa.cell(s, self.step, self.col).grant;
            if g != NO_GRANT {
                return Some(g);
            }
            for c in 0..cc {
                if let Some(&t) = self.dfa.transitions.get(s as usize * cc + c) {
                    q.push_back(t);
                }
            }
        }
        None
    }
}

/// For a network denial: the nearest grant of the step (same address other
/// port, or same port other address), and why.
pub fn nearest_net(
    plan: &Plan,
    step: u32,
    op: NetOp,
    addr: IpAddr,
    port: u16,
) -> Option<(u32, String)> {
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

fn contains(net: IpAddr, prefix: u8, addr: IpAddr) -> bool {
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

/// The plan's fs DFA as the pathname UNIX socket program reads it: per
/// state and step the grant of `fs write`, per state whether any step may
/// create that name (src/unix.rs).
pub fn unix_tables(plan: &Plan) -> crate::unix::UnixTables {
    let d = &plan.fs;
    let n = d.states();
    let steps = d.steps;
    let mut write = Vec::with_capacity(n * steps as usize);
    let mut create = Vec::with_capacity(n);
    for s in 0..n as u32 {
        for st in 0..steps {
            write.push(d.cell(s, st, FsRight::Write.column()).grant);
        }
        let any = (0..steps).any(|st| d.cell(s, st, FsRight::Create.column()).grant != NO_GRANT);
        create.push(u32::from(any));
    }
    crate::unix::UnixTables {
        start: d.start,
        classes: d.classes.clone(),
        class_count: u32::from(d.class_count),
        steps,
        next: d.transitions.clone(),
        write,
        create,
    }
}
