//! Nondeterministic automata built from globs (an internal stage).
//!
//! Input: [`Glob`]s (brace-expanded branches of segments of atoms) or
//! finite sets of byte strings. Output: an NFA with ε-edges and byte-set
//! edges, which `dfa` determinizes together with the normalized-path
//! automaton.

use crate::bytes::ByteSet;
use kapl_syntax::glob::{Atom, Branch, Glob, Segment};

/// An NFA; state 0 is the start state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Nfa {
    /// Byte-set edges per state.
    pub edges: Vec<Vec<(ByteSet, u32)>>,
    /// ε-edges per state.
    pub eps: Vec<Vec<u32>>,
    /// Accepting flags.
    pub accept: Vec<bool>,
}

impl Nfa {
    /// An NFA with only its start state.
    pub fn new() -> Nfa {
        let mut n = Nfa::default();
        n.add_state();
        n
    }

    /// A fresh state.
    pub fn add_state(&mut self) -> u32 {
        self.edges.push(Vec::new());
        self.eps.push(Vec::new());
        self.accept.push(false);
        // INVARIANT: automata stay far below 2^32 states (globs are short).
        u32::try_from(self.accept.len() - 1).unwrap_or(u32::MAX)
    }

    fn edge(&mut self, from: u32, set: ByteSet, to: u32) {
        if let Some(e) = self.edges.get_mut(from as usize) {
            e.push((set, to));
        }
    }

    fn eps_edge(&mut self, from: u32, to: u32) {
        if let Some(e) = self.eps.get_mut(from as usize) {
            e.push(to);
        }
    }

    fn set_accept(&mut self, s: u32) {
        if let Some(a) = self.accept.get_mut(s as usize) {
            *a = true;
        }
    }

    /// A fresh state reached from `from` on `set`.
    fn step(&mut self, from: u32, set: ByteSet) -> u32 {
        let n = self.add_state();
        self.edge(from, set, n);
        n
    }

    /// Adds one glob's branches as alternatives from the start state.
    pub fn add_glob(&mut self, glob: &Glob) {
        for b in &glob.branches {
            self.add_branch(b);
        }
    }

    /// Adds one literal string as an alternative from the start state.
    pub fn add_string(&mut self, s: &[u8]) {
        let mut cur = 0;
        for &b in s {
            cur = self.step(cur, ByteSet::single(b));
        }
        self.set_accept(cur);
    }

    /// Adds one branch. The language built is `"/" seg` per atoms segment
    /// and `("/" seg)*` per `**`, where each segment is non-empty; a branch
    /// made only of `**` segments (or of none) also matches the root `/`.
    /// Empty, `.` and `..` segments are removed later by the product with
    /// the normalized-path automaton.
    fn add_branch(&mut self, branch: &Branch) {
        let slash = ByteSet::single(b'/');
        let seg = ByteSet::segment_byte();
        if branch
            .segments
            .iter()
            .all(|s| matches!(s, Segment::AnyDepth))
        {
            let root = self.step(0, slash);
            self.set_accept(root);
            if branch.segments.is_empty() {
                return;
            }
        }
        let mut cur = self.add_state();
        self.eps_edge(0, cur);
        for segment in &branch.segments {
            match segment {
                Segment::AnyDepth => {
                    let l = self.add_state();
                    self.eps_edge(cur, l);
                    let m = self.step(l, slash);
                    let m2 = self.step(m, seg);
                    self.edge(m2, seg, m2);
                    self.eps_edge(m2, l);
                    cur = l;
                }
                Segment::Atoms(atoms) => {
                    cur = self.step(cur, slash);
                    let nullable = atoms.iter().all(|a| match a {
                        Atom::Star => true,
                        Atom::Literal(l) => l.is_empty(),
                        Atom::AnyByte | Atom::Class { .. } => false,
                    });
                    if nullable {
                        // Only stars: one or more segment bytes (a path
                        // segment is never empty).
                        cur = self.step(cur, seg);
                        self.edge(cur, seg, cur);
                        continue;
                    }
                    for atom in atoms {
                        match atom {
                            Atom::Literal(bytes) => {
                                for &b in bytes {
                                    cur = self.step(cur, ByteSet::single(b));
                                }
                            }
                            Atom::Star => {
                                let n = self.add_state();
                                self.eps_edge(cur, n);
                                self.edge(n, seg, n);
                                cur = n;
                            }
                            Atom::AnyByte => cur = self.step(cur, seg),
                            Atom::Class { negated, ranges } => {
                                let mut set = ByteSet::EMPTY;
                                for &(lo, hi) in ranges {
                                    set = set.union(ByteSet::range(lo, hi));
                                }
                                if *negated {
                                    set = set.complement();
                                }
                                cur = self.step(cur, set.minus(slash));
                            }
                        }
                    }
                }
            }
        }
        self.set_accept(cur);
    }

    /// Every edge label (for computing byte classes).
    pub fn edge_sets(&self) -> impl Iterator<Item = &ByteSet> {
        self.edges.iter().flat_map(|e| e.iter().map(|(s, _)| s))
    }

    /// The ε-closure of `seeds` into `out` (sorted, deduplicated), with
    /// caller-owned scratch space (`stack`; `mark`: one flag per state, all false on entry and on
    /// exit).
    pub fn closure_into(
        &self,
        seeds: &[u32],
        out: &mut Vec<u32>,
        stack: &mut Vec<u32>,
        mark: &mut [bool],
    ) {
        out.clear();
        stack.clear();
        for &s in seeds {
            if let Some(m) = mark.get_mut(s as usize)
                && !*m
            {
                *m = true;
                stack.push(s);
            }
        }
        while let Some(s) = stack.pop() {
            out.push(s);
            for &t in self.eps.get(s as usize).map(Vec::as_slice).unwrap_or(&[]) {
                if let Some(m) = mark.get_mut(t as usize)
                    && !*m
                {
                    *m = true;
                    stack.push(t);
                }
            }
        }
        for &s in out.iter() {
            if let Some(m) = mark.get_mut(s as usize) {
                *m = false;
            }
        }
        out.sort_unstable();
    }
}
