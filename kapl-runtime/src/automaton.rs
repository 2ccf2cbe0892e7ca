//! A step's view of the image's path automata, and its Landlock TCP wall.
//!
//! Input: a [`kapl_image::Plan`] and a step index. Output: the
//! [`PathAutomaton`] the Landlock rule builder walks over the live file
//! system (which rights a path gets, which grants give them), the literal
//! prefixes the walks start from, and the step's TCP port lists.

use crate::access;
use kapl_image::{BENEATH_ALL, BENEATH_SELF, Dfa, DfaKind, FsRight, NO_GRANT, Plan};

/// A path automaton as the walk reads it (one step's view). States are
/// dense indices; transitions run over whole absolute paths.
pub trait PathAutomaton {
    /// The start state (before the leading `/`).
    fn start(&self) -> u32;
    /// The state after `byte`.
    fn next(&self, state: u32, byte: u8) -> u32;
    /// Landlock rights granted to the path that ends in `state`.
    fn accept(&self, state: u32) -> u64;
    /// Rights granted to *every* path strictly beneath the path that ends in
    /// `state` (`P/x`, `P/x/y`, ...).
    fn beneath_all(&self, state: u32) -> u64;
    /// Whether some accepting state is reachable from `state` (itself
    /// included): rights that the path or some continuation of it gets.
    fn live(&self, state: u32) -> u64;
    /// The grants behind `rights` at `state` (for the precision report).
    fn grants(&self, state: u32, rights: u64) -> Vec<u32>;
    /// Whether some step of the plan may create a file named `path` (make
    /// it, move or link a file there), so a hard link found there may have
    /// been planted by the plan's own commands. Default: yes.
    fn creatable(&self, _path: &[u8]) -> bool {
        true
    }
    /// Whether some step of the plan may create, write or delete at `path`
    /// (so a symbolic link there, or a directory on its way, may have been
    /// planted or redirected by the plan's own commands). Default: yes.
    fn changeable(&self, _path: &[u8]) -> bool {
        true
    }
    /// Whether a symbolic link this automaton grants file rights to gets a
    /// rule on the file it resolves to (when nothing the plan may change is
    /// on the way: [`Self::changeable`]). Default: no.
    fn follows_links(&self) -> bool {
        false
    }
    /// Whether the step may make a directory it may not list at some path
    /// reached from `state` (itself included): a directory made there
    /// would be listable under a listing rule above it. Default: yes.
    fn unlistable_dir_below(&self, _state: u32) -> bool {
        true
    }
}

/// An automaton whose rights exclude `mask`: the step's Landlock view when
/// the supervised layer decides making, removing and moving names
/// ([`access::PARENT`]), so the rule builder neither grants those rights
/// nor narrows grants for them.
pub struct Without<'a> {
    /// The automaton.
    pub inner: &'a dyn PathAutomaton,
    /// The rights left out.
    pub mask: u64,
}

impl PathAutomaton for Without<'_> {
    fn start(&self) -> u32 {
        self.inner.start()
    }
    fn next(&self, state: u32, byte: u8) -> u32 {
        self.inner.next(state, byte)
    }
    fn accept(&self, state: u32) -> u64 {
        self.inner.accept(state) & !self.mask
    }
    fn beneath_all(&self, state: u32) -> u64 {
        self.inner.beneath_all(state) & !self.mask
    }
    fn live(&self, state: u32) -> u64 {
        self.inner.live(state) & !self.mask
    }
    fn grants(&self, state: u32, rights: u64) -> Vec<u32> {
        self.inner.grants(state, rights & !self.mask)
    }
    fn creatable(&self, path: &[u8]) -> bool {
        self.inner.creatable(path)
    }
    fn unlistable_dir_below(&self, state: u32) -> bool {
        self.inner.unlistable_dir_below(state)
    }
    fn changeable(&self, path: &[u8]) -> bool {
        self.inner.changeable(path)
    }
    fn follows_links(&self) -> bool {
        self.inner.follows_links()
    }
}

/// Runs the automaton over `path` from its start.
pub fn run(a: &dyn PathAutomaton, path: &[u8]) -> u32 {
    path.iter().fold(a.start(), |s, b| a.next(s, *b))
}

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
    /// Per state: a path reached from it may be made a directory the step
    /// may not list (see [`PathAutomaton::unlistable_dir_below`]).
    unlistable: Vec<bool>,
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
            unlistable: vec![false; n],
            plan_fs: None,
        };
        // Bit 63 (no Landlock right uses it) marks "makes a directory it
        // may not list"; it propagates backwards like the rights.
        const UNLISTABLE: u64 = 1 << 63;
        let mut live: Vec<u64> = (0..n as u32)
            .map(|s| {
                let acc = a.accept(s);
                let bad = acc & access::MAKE_DIR != 0 && acc & access::READ_DIR == 0;
                acc | if bad { UNLISTABLE } else { 0 }
            })
            .collect();
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
        a.unlistable = live.iter().map(|l| l & UNLISTABLE != 0).collect();
        a.live = live.into_iter().map(|l| l & !UNLISTABLE).collect();
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
    fn unlistable_dir_below(&self, state: u32) -> bool {
        // The exec automaton lists nothing and makes nothing.
        self.dfa.kind == DfaKind::Fs && self.unlistable.get(state as usize).copied().unwrap_or(true)
    }
    fn creatable(&self, path: &[u8]) -> bool {
        let Some(fs) = self.plan_fs else {
            return true;
        };
        let s = fs.walk(path);
        (0..fs.steps).any(|st| fs.cell(s, st, FsRight::Create as usize).grant != NO_GRANT)
    }
    fn changeable(&self, path: &[u8]) -> bool {
        let Some(fs) = self.plan_fs else {
            return true;
        };
        let s = fs.walk(path);
        (0..fs.steps).any(|st| {
            [FsRight::Create, FsRight::Write, FsRight::Delete]
                .iter()
                .any(|r| fs.cell(s, st, r.column()).grant != NO_GRANT)
        })
    }
    /// Only the exec automaton follows links. An exec grant names a
    /// program, and distributions name programs through links (`sh` →
    /// `dash`, `python3` → `python3.11`, alternatives): the kernel runs
    /// the file the link resolves to, so granting the link alone grants
    /// nothing. One regular file is granted per link, with the rights the
    /// grant gives (execute and the read exec needs). A read or write
    /// grant is a pattern over a tree: following its links would widen it
    /// to whatever the links in that tree point at, anywhere, data the
    /// policy's author never named and the prover never saw; a command
    /// that needs the target can be granted it by name.
    fn follows_links(&self) -> bool {
        self.dfa.kind == DfaKind::Exec
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

/// TCP ports for the Landlock network wall. `None` for an access means
/// "too many ports to list": that access is left to the BPF programs.
#[derive(Clone, Debug, Default)]
pub struct TcpPorts {
    /// Ports that may be bound (None: not handled by Landlock).
    pub bind: Option<Vec<u16>>,
    /// Ports that may be connected to.
    pub connect: Option<Vec<u16>>,
}

/// Lists ports of inclusive ranges, or `None` when more than `limit`.
pub fn port_list(ranges: &[(u16, u16)], limit: usize) -> Option<Vec<u16>> {
    let mut out: Vec<u16> = Vec::new();
    for &(lo, hi) in ranges {
        if usize::from(hi.saturating_sub(lo)) + out.len() >= limit {
            return None;
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
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
        port_list(&ranges, kapl_image::limits::MAX_LANDLOCK_PORTS)
    };
    TcpPorts {
        bind: if ll.handled_net & kapl_image::access::NET_BIND_TCP != 0 {
            list(&ll.tcp_bind)
        } else {
            None
        },
        connect: if ll.handled_net & kapl_image::access::NET_CONNECT_TCP != 0 {
            // With host-name rules, DNS over TCP is steered to the session's
            // resolver by the cgroup programs, which run after Landlock has
            // seen port 53.
            list(&ll.tcp_connect).map(|mut v| {
                if plan.names.iter().any(|n| n.step == step) && !v.contains(&53) {
                    v.push(53);
                    v.sort_unstable();
                }
                v
            })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lists_merge_and_give_up_past_the_limit() {
        assert_eq!(port_list(&[(80, 80), (79, 81)], 10), Some(vec![79, 80, 81]));
        assert_eq!(port_list(&[(1, 100)], 10), None);
        assert_eq!(port_list(&[], 10), Some(vec![]));
    }

    #[test]
    fn every_landlock_right_has_a_column() {
        for i in 0..16 {
            assert!(right_of_access(1 << i).is_some(), "bit {i}");
        }
        assert_eq!(right_of_access(1 << 20), None);
    }
}
