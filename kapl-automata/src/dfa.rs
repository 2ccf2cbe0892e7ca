//! Deterministic automata over byte classes: construction, minimization,
//! Boolean products, emptiness, shortest witnesses, equivalence.
//!
//! Input: globs (through the internal NFA) or finite path sets. Output:
//! complete, minimized DFAs whose language is a set of normalized absolute
//! paths (see [`crate::is_normalized`]).
//!
//! INVARIANT: every `Dfa` is complete (one transition per state and class),
//! has at least one state, and its classes are numbered by their smallest
//! byte. A DFA built by this crate's public constructors is minimal and
//! canonically numbered (states in breadth-first order from the start over
//! classes in ascending order; classes as coarse as the language allows), so
//! two such DFAs are equal (`==`) exactly when their languages are equal.

use crate::bytes::HashMap;
use crate::bytes::{ByteSet, Classes, readability_rank};
use crate::nfa::Nfa;
use crate::norm;
use kapl_syntax::glob::Glob;
use std::collections::VecDeque;

/// A complete DFA over byte equivalence classes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dfa {
    /// Byte to class.
    classes: [u8; 256],
    /// Number of classes.
    class_count: usize,
    /// Row-major transitions: `trans[state * class_count + class]`.
    trans: Vec<u32>,
    /// Accepting flags per state.
    accept: Vec<bool>,
    /// Whether an accepting state is reachable from each state.
    live: Vec<bool>,
    /// The start state.
    start: u32,
}

fn to_u32(n: usize) -> u32 {
    // INVARIANT: state counts stay far below 2^32 (each state is built from
    // glob text or from a product of such automata held in memory).
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Dfa {
    // ----- constructors -------------------------------------------------

    /// The paths a glob matches (normalized paths only).
    pub fn from_glob(glob: &Glob) -> Dfa {
        Dfa::from_globs([glob])
    }

    /// The paths any of the globs matches (the empty set for no globs).
    pub fn from_globs<'a>(globs: impl IntoIterator<Item = &'a Glob>) -> Dfa {
        let mut nfa = Nfa::new();
        for g in globs {
            nfa.add_glob(g);
        }
        determinize(&nfa).minimize()
    }

    /// Exactly the given paths, keeping only the normalized ones.
    pub fn from_paths<P: AsRef<[u8]>>(paths: impl IntoIterator<Item = P>) -> Dfa {
        let mut nfa = Nfa::new();
        for p in paths {
            nfa.add_string(p.as_ref());
        }
        determinize(&nfa).minimize()
    }

    /// Every normalized absolute path.
    pub fn universe() -> Dfa {
        let mut nfa = Nfa::new();
        nfa.add_glob(&Glob {
            branches: vec![kapl_syntax::glob::Branch {
                segments: vec![kapl_syntax::glob::Segment::AnyDepth],
            }],
        });
        determinize(&nfa).minimize()
    }

    /// No path at all.
    pub fn nothing() -> Dfa {
        Dfa::from_globs([])
    }

    // ----- Boolean operations ----------------------------------------------

    /// Paths in either.
    #[must_use]
    pub fn union(&self, other: &Dfa) -> Dfa {
        product(self, other, |a, b| a || b).minimize()
    }

    /// Paths in both.
    #[must_use]
    pub fn intersection(&self, other: &Dfa) -> Dfa {
        product(self, other, |a, b| a && b).minimize()
    }

    /// Paths in `self` but not in `other`.
    #[must_use]
    pub fn difference(&self, other: &Dfa) -> Dfa {
        product(self, other, |a, b| a && !b).minimize()
    }

    /// Normalized paths not in `self`.
    #[must_use]
    pub fn complement(&self) -> Dfa {
        Dfa::universe().difference(self)
    }

    /// The union of many automata (the empty set for none), built pairwise
    /// as a balanced tree so intermediate automata stay small.
    pub fn union_all<'a>(dfas: impl IntoIterator<Item = &'a Dfa>) -> Dfa {
        let mut layer: Vec<Dfa> = dfas.into_iter().cloned().collect();
        if layer.is_empty() {
            return Dfa::nothing();
        }
        while layer.len() > 1 {
            let mut next = Vec::with_capacity(layer.len().div_ceil(2));
            let mut it = layer.into_iter();
            while let Some(a) = it.next() {
                match it.next() {
                    Some(b) => next.push(a.union(&b)),
                    None => next.push(a),
                }
            }
            layer = next;
        }
        layer.pop().unwrap_or_else(Dfa::nothing)
    }

    // ----- questions ----------------------------------------------------------

    /// Whether the language is empty.
    pub fn is_empty(&self) -> bool {
        !self.live.get(self.start as usize).copied().unwrap_or(false)
    }

    /// Whether `path` is in the language.
    pub fn accepts(&self, path: &[u8]) -> bool {
        let s = path.iter().fold(self.start, |s, &b| self.next(s, b));
        self.is_accepting(s)
    }

    /// A shortest path in the language, preferring readable bytes (letters,
    /// then digits, then other printable ASCII), or `None` when empty.
    pub fn shortest_member(&self) -> Option<Vec<u8>> {
        self.witness_outside(&Dfa::nothing())
    }

    /// A shortest path in `self` but not in `other` (`None`: `self ⊆ other`).
    pub fn witness_outside(&self, other: &Dfa) -> Option<Vec<u8>> {
        product_witness(self, other, |a, b| a && !b, |al, _| al)
    }

    /// A shortest path in both (`None`: they are disjoint).
    pub fn witness_common(&self, other: &Dfa) -> Option<Vec<u8>> {
        product_witness(self, other, |a, b| a && b, |al, bl| al && bl)
    }

    /// A shortest path in exactly one of the two (`None`: equivalent).
    pub fn witness_different(&self, other: &Dfa) -> Option<Vec<u8>> {
        product_witness(self, other, |a, b| a != b, |al, bl| al || bl)
    }

    /// Whether every path of `self` is in `other`.
    pub fn is_subset_of(&self, other: &Dfa) -> bool {
        self.witness_outside(other).is_none()
    }

    /// Whether the two languages share a path.
    pub fn intersects(&self, other: &Dfa) -> bool {
        self.witness_common(other).is_some()
    }

    /// Whether the two languages are equal.
    pub fn equivalent(&self, other: &Dfa) -> bool {
        self.witness_different(other).is_none()
    }

    // ----- structure (for code generation) -----------------------------------

    /// Number of states (states are `0..state_count()`).
    pub fn state_count(&self) -> usize {
        self.accept.len()
    }

    /// Number of byte classes (classes are `0..class_count()`).
    pub fn class_count(&self) -> usize {
        self.class_count
    }

    /// The class of each byte value.
    pub fn byte_classes(&self) -> &[u8; 256] {
        &self.classes
    }

    /// The class of one byte.
    pub fn class_of(&self, b: u8) -> u8 {
        self.classes[usize::from(b)]
    }

    /// The bytes of one class as inclusive ranges, ascending.
    pub fn class_ranges(&self, class: u8) -> Vec<(u8, u8)> {
        let mut out: Vec<(u8, u8)> = Vec::new();
        for b in 0..=255u8 {
            if self.classes[usize::from(b)] == class {
                match out.last_mut() {
                    Some((_, hi)) if *hi == b.wrapping_sub(1) && b > 0 => *hi = b,
                    _ => out.push((b, b)),
                }
            }
        }
        out
    }

    /// The start state.
    pub fn start(&self) -> u32 {
        self.start
    }

    /// The state after `state` reads a byte of class `class`. Out-of-range
    /// arguments give the start state's answer for safety, never a panic.
    pub fn next_class(&self, state: u32, class: u8) -> u32 {
        self.trans
            .get(state as usize * self.class_count + usize::from(class))
            .copied()
            .unwrap_or(self.start)
    }

    /// The state after `state` reads byte `b`.
    pub fn next(&self, state: u32, b: u8) -> u32 {
        self.next_class(state, self.class_of(b))
    }

    /// The row-major transition table: `table[state * class_count() + class]`.
    pub fn transitions(&self) -> &[u32] {
        &self.trans
    }

    /// Whether `state` accepts.
    pub fn is_accepting(&self, state: u32) -> bool {
        self.accept.get(state as usize).copied().unwrap_or(false)
    }

    /// Whether no accepting state is reachable from `state` (it is a dead
    /// state: every continuation is rejected).
    pub fn is_dead(&self, state: u32) -> bool {
        !self.live.get(state as usize).copied().unwrap_or(false)
    }

    /// Whether, after reading a non-root directory path that led to `state`,
    /// that directory and every normalized path beneath it are accepted:
    /// the suffix `""` and every suffix `/SEG(/SEG)*` lead to acceptance.
    pub fn full_beneath(&self, state: u32) -> bool {
        self.full_from(state, norm::BENEATH)
    }

    /// Whether `dir` and every normalized path beneath it are accepted
    /// (for `/`: every normalized path). `false` for a non-normalized `dir`.
    pub fn full_beneath_path(&self, dir: &[u8]) -> bool {
        if !crate::is_normalized(dir) {
            return false;
        }
        let s = dir.iter().fold(self.start, |s, &b| self.next(s, b));
        if dir == b"/" {
            self.full_from(s, norm::ROOT)
        } else {
            self.full_from(s, norm::BENEATH)
        }
    }

    /// Product walk with the normalized-path automaton from `t0`: false
    /// when some suffix the normalized automaton accepts is rejected here.
    fn full_from(&self, state: u32, t0: u8) -> bool {
        // Combined classes of this DFA and the normalized automaton's bytes.
        let mut reps: Vec<u8> = Vec::new();
        let mut seen: HashMap<(u8, u8), ()> = HashMap::default();
        for b in 0..=255u8 {
            let nclass = match b {
                b'/' => 0,
                b'.' => 1,
                0 => 2,
                _ => 3,
            };
            if seen.insert((self.class_of(b), nclass), ()).is_none() {
                reps.push(b);
            }
        }
        let mut visited: HashMap<(u32, u8), ()> = HashMap::default();
        let mut queue = VecDeque::from([(state, t0)]);
        visited.insert((state, t0), ());
        while let Some((s, t)) = queue.pop_front() {
            if norm::accepting(t) && !self.is_accepting(s) {
                return false;
            }
            for &b in &reps {
                let t2 = norm::step(t, b);
                if t2 == norm::DEAD {
                    continue;
                }
                let s2 = self.next(s, b);
                if visited.insert((s2, t2), ()).is_none() {
                    queue.push_back((s2, t2));
                }
            }
        }
        true
    }

    // ----- internals ---------------------------------------------------------

    fn from_parts(
        classes: [u8; 256],
        class_count: usize,
        trans: Vec<u32>,
        accept: Vec<bool>,
        start: u32,
    ) -> Dfa {
        let live = compute_live(&trans, &accept, class_count);
        Dfa {
            classes,
            class_count,
            trans,
            accept,
            live,
            start,
        }
    }

    /// The minimal, canonically numbered DFA of the same language
    /// (Hopcroft's partition refinement on the reachable states, then breadth-first
    /// renumbering, then merging classes with identical columns).
    #[must_use]
    fn minimize(&self) -> Dfa {
        let nc = self.class_count;
        let n = self.state_count();
        // Reachable states.
        let mut reach = vec![false; n];
        let mut order = vec![self.start];
        if let Some(r) = reach.get_mut(self.start as usize) {
            *r = true;
        }
        let mut i = 0;
        while let Some(&s) = order.get(i) {
            i += 1;
            for c in 0..nc {
                let t = self.trans[s as usize * nc + c];
                if !reach[t as usize] {
                    reach[t as usize] = true;
                    order.push(t);
                }
            }
        }
        // Hopcroft refinement by acceptance over the reachable states
        // (renumbered in `order`; unreachable states keep block 0 and are
        // never used).
        let mut index = vec![0u32; n];
        for (i, &s) in order.iter().enumerate() {
            index[s as usize] = to_u32(i);
        }
        let sub: Vec<u32> = order
            .iter()
            .flat_map(|&s| (0..nc).map(move |c| (s as usize) * nc + c))
            .map(|k| index[self.trans[k] as usize])
            .collect();
        let label: Vec<u32> = order
            .iter()
            .map(|&s| u32::from(self.accept[s as usize]))
            .collect();
        let (sub_block, count) = crate::partition::coarsest_partition(nc, &sub, &label);
        let mut block = vec![0u32; n];
        for (&s, &b) in order.iter().zip(&sub_block) {
            block[s as usize] = b;
        }
        // One representative state per block.
        let mut rep = vec![u32::MAX; count];
        for &s in &order {
            let b = block[s as usize] as usize;
            if rep[b] == u32::MAX {
                rep[b] = s;
            }
        }
        // Merge classes whose columns agree on the quotient automaton.
        let mut col_ids: HashMap<Vec<u32>, u8> = HashMap::default();
        let mut class_map = [0u8; 256];
        let mut old_to_new = vec![u8::MAX; nc];
        let mut new_reps: Vec<usize> = Vec::new();
        for (slot, &old) in class_map.iter_mut().zip(self.classes.iter()) {
            let c = usize::from(old);
            if old_to_new[c] == u8::MAX {
                let col: Vec<u32> = rep
                    .iter()
                    .map(|&s| block[self.trans[s as usize * nc + c] as usize])
                    .collect();
                let fresh = u8::try_from(col_ids.len()).unwrap_or(u8::MAX);
                let id = *col_ids.entry(col).or_insert(fresh);
                if usize::from(id) == new_reps.len() {
                    new_reps.push(c);
                }
                old_to_new[c] = id;
            }
            *slot = old_to_new[c];
        }
        let new_nc = new_reps.len();
        // Breadth-first renumbering from the start block.
        let mut number = vec![u32::MAX; count];
        let start_block = block[self.start as usize] as usize;
        number[start_block] = 0;
        let mut bfs = vec![start_block];
        let mut j = 0;
        while let Some(&b) = bfs.get(j) {
            j += 1;
            for &c in &new_reps {
                let t = block[self.trans[rep[b] as usize * nc + c] as usize] as usize;
                if number[t] == u32::MAX {
                    number[t] = to_u32(bfs.len());
                    bfs.push(t);
                }
            }
        }
        let mut trans = Vec::with_capacity(bfs.len() * new_nc);
        let mut accept = Vec::with_capacity(bfs.len());
        for &b in &bfs {
            let s = rep[b] as usize;
            accept.push(self.accept[s]);
            for &c in &new_reps {
                trans.push(number[block[self.trans[s * nc + c] as usize] as usize]);
            }
        }
        Dfa::from_parts(class_map, new_nc, trans, accept, 0)
    }
}

/// Backward reachability from accepting states.
fn compute_live(trans: &[u32], accept: &[bool], nc: usize) -> Vec<bool> {
    let n = accept.len();
    let mut rev: Vec<Vec<u32>> = vec![Vec::new(); n];
    for s in 0..n {
        for c in 0..nc {
            if let Some(&t) = trans.get(s * nc + c)
                && let Some(r) = rev.get_mut(t as usize)
            {
                r.push(to_u32(s));
            }
        }
    }
    let mut live = accept.to_vec();
    let mut stack: Vec<u32> = (0..n).filter(|&s| accept[s]).map(to_u32).collect();
    while let Some(t) = stack.pop() {
        for &s in &rev[t as usize] {
            if !live[s as usize] {
                live[s as usize] = true;
                stack.push(s);
            }
        }
    }
    live
}

/// Subset construction of `nfa` in product with the normalized-path
/// automaton (so the result only accepts normalized paths).
fn determinize(nfa: &Nfa) -> Dfa {
    let mut sets: Vec<ByteSet> = nfa.edge_sets().copied().collect();
    sets.extend([
        ByteSet::single(0),
        ByteSet::single(b'.'),
        ByteSet::single(b'/'),
    ]);
    let classes = Classes::from_sets(sets.iter());
    let reps = classes.representatives();
    let nc = classes.count;
    let mut mark = vec![false; nfa.accept.len()];
    let mut stack: Vec<u32> = Vec::new();
    // A DFA state is keyed by its normalized-automaton state followed by
    // its sorted NFA state set, in one vector (looked up without copying).
    let mut index: HashMap<Vec<u32>, u32> = HashMap::default();
    let mut states: Vec<Vec<u32>> = Vec::new();
    let mut key: Vec<u32> = vec![u32::from(norm::START)];
    let mut next: Vec<u32> = Vec::new();
    nfa.closure_into(&[0], &mut next, &mut stack, &mut mark);
    key.extend_from_slice(&next);
    index.insert(key.clone(), 0);
    states.push(key.clone());
    let mut trans: Vec<u32> = Vec::new();
    let mut accept: Vec<bool> = Vec::new();
    let mut seeds: Vec<u32> = Vec::new();
    let mut i = 0;
    while i < states.len() {
        // The index keeps its own copy of the key.
        let cur = std::mem::take(&mut states[i]);
        i += 1;
        let ns = cur.first().map_or(norm::DEAD, |&x| x as u8);
        let set = cur.get(1..).unwrap_or(&[]);
        accept.push(
            norm::accepting(ns)
                && set
                    .iter()
                    .any(|&s| nfa.accept.get(s as usize).copied().unwrap_or(false)),
        );
        for &b in &reps {
            let ns2 = norm::step(ns, b);
            next.clear();
            if ns2 != norm::DEAD {
                seeds.clear();
                for &s in set {
                    for (bs, t) in nfa.edges.get(s as usize).map(Vec::as_slice).unwrap_or(&[]) {
                        if bs.contains(b) {
                            seeds.push(*t);
                        }
                    }
                }
                nfa.closure_into(&seeds, &mut next, &mut stack, &mut mark);
            }
            key.clear();
            key.push(u32::from(if next.is_empty() { norm::DEAD } else { ns2 }));
            key.extend_from_slice(&next);
            let id = match index.get(key.as_slice()) {
                Some(&id) => id,
                None => {
                    let id = to_u32(states.len());
                    index.insert(key.clone(), id);
                    states.push(key.clone());
                    id
                }
            };
            trans.push(id);
        }
    }
    Dfa::from_parts(classes.map, nc, trans, accept, 0)
}

/// The combined classes of two DFAs: a byte map and one representative per
/// combined class (the most readable byte of the class).
fn pair_classes(a: &Dfa, b: &Dfa) -> ([u8; 256], Vec<(u8, u8, u8)>) {
    // Dense (class of a, class of b) -> combined class table.
    let nb = b.class_count.max(1);
    let mut ids: Vec<u16> = vec![u16::MAX; a.class_count.max(1) * nb];
    let mut map = [0u8; 256];
    let mut reps: Vec<(u8, u8, u8)> = Vec::new();
    for byte in 0..=255u8 {
        let key = (a.class_of(byte), b.class_of(byte));
        let slot = usize::from(key.0) * nb + usize::from(key.1);
        let id = match ids.get(slot).copied() {
            Some(u16::MAX) | None => {
                let fresh = u8::try_from(reps.len()).unwrap_or(u8::MAX);
                if let Some(x) = ids.get_mut(slot) {
                    *x = u16::from(fresh);
                }
                reps.push((byte, key.0, key.1));
                fresh
            }
            Some(id) => {
                let id = u8::try_from(id).unwrap_or(u8::MAX);
                if let Some(r) = reps.get_mut(usize::from(id))
                    && readability_rank(byte) < readability_rank(r.0)
                {
                    r.0 = byte;
                }
                id
            }
        };
        map[usize::from(byte)] = id;
    }
    (map, reps)
}

/// The product automaton accepting where `op(a accepts, b accepts)`.
fn product(a: &Dfa, b: &Dfa, op: impl Fn(bool, bool) -> bool) -> Dfa {
    let (map, reps) = pair_classes(a, b);
    let nc = reps.len();
    let mut index: HashMap<(u32, u32), u32> = HashMap::default();
    let mut states: Vec<(u32, u32)> = vec![(a.start, b.start)];
    index.insert((a.start, b.start), 0);
    let mut trans: Vec<u32> = Vec::new();
    let mut accept: Vec<bool> = Vec::new();
    let mut i = 0;
    while let Some(&(sa, sb)) = states.get(i) {
        i += 1;
        accept.push(op(a.is_accepting(sa), b.is_accepting(sb)));
        for &(_, ca, cb) in &reps {
            let key = (a.next_class(sa, ca), b.next_class(sb, cb));
            let id = match index.get(&key) {
                Some(&id) => id,
                None => {
                    let id = to_u32(states.len());
                    index.insert(key, id);
                    states.push(key);
                    id
                }
            };
            trans.push(id);
        }
    }
    Dfa::from_parts(map, nc, trans, accept, 0)
}

/// The cost of a witness byte: every byte costs 2, a `.` that starts a
/// segment (a hidden file) 3 more, and a byte that is not printable ASCII 4
/// more. So witnesses are shortest among readable ones: `/var/log/a.log`
/// rather than `/var/log/.log`, unless only a hidden name will do.
fn byte_cost(b: u8, after_slash: bool) -> usize {
    let mut c = 2;
    if b == b'.' && after_slash {
        c += 3;
    }
    if readability_rank(b) >= 200 {
        c += 4;
    }
    c
}

/// Cheapest-first search (Dijkstra over small integer costs, with a bucket
/// queue) of the product for a string whose pair of states satisfies
/// `accept`; pairs failing `viable(a live, b live)` are not expanded.
/// Classes are tried in order of readability, so among witnesses of equal
/// cost the most readable one (letters first) is found.
fn product_witness(
    a: &Dfa,
    b: &Dfa,
    accept: impl Fn(bool, bool) -> bool,
    viable: impl Fn(bool, bool) -> bool,
) -> Option<Vec<u8>> {
    let (_, mut reps) = pair_classes(a, b);
    reps.sort_by_key(|r| readability_rank(r.0));
    if !viable(!a.is_dead(a.start), !b.is_dead(b.start)) {
        return None;
    }
    let nb = b.state_count();
    let key =
        |sa: u32, sb: u32, slash: bool| (sa as usize * nb + sb as usize) * 2 + usize::from(slash);
    let dense = a.state_count().saturating_mul(nb) <= 1 << 20;
    let mut done_dense: Vec<bool> = if dense {
        vec![false; a.state_count() * nb * 2]
    } else {
        Vec::new()
    };
    let mut done_sparse: HashMap<usize, ()> = HashMap::default();
    // (a state, b state, after slash, parent index, byte)
    let mut nodes: Vec<(u32, u32, bool, u32, u8)> = vec![(a.start, b.start, false, u32::MAX, 0)];
    let mut buckets: Vec<Vec<u32>> = vec![vec![0]];
    let mut cost = 0;
    while cost < buckets.len() {
        let Some(i) = buckets[cost].pop() else {
            cost += 1;
            continue;
        };
        let Some(&(sa, sb, slash, _, _)) = nodes.get(i as usize) else {
            continue;
        };
        let k = key(sa, sb, slash);
        let fresh = if dense {
            match done_dense.get_mut(k) {
                Some(v) if !*v => {
                    *v = true;
                    true
                }
                _ => false,
            }
        } else {
            done_sparse.insert(k, ()).is_none()
        };
        if !fresh {
            continue;
        }
        if accept(a.is_accepting(sa), b.is_accepting(sb)) {
            let mut out = Vec::new();
            let mut j = i as usize;
            while let Some(&(_, _, _, parent, byte)) = nodes.get(j) {
                if parent == u32::MAX {
                    break;
                }
                out.push(byte);
                j = parent as usize;
            }
            out.reverse();
            return Some(out);
        }
        // Push in reverse readability order: buckets pop from the back.
        for &(byte, ca, cb) in reps.iter().rev() {
            let ta = a.next_class(sa, ca);
            let tb = b.next_class(sb, cb);
            if !viable(!a.is_dead(ta), !b.is_dead(tb)) {
                continue;
            }
            let c = cost + byte_cost(byte, slash);
            if buckets.len() <= c {
                buckets.resize_with(c + 1, Vec::new);
            }
            buckets[c].push(to_u32(nodes.len()));
            nodes.push((ta, tb, byte == b'/', i, byte));
        }
    }
    None
}
