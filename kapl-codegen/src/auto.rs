//! Tagged path automata for code generation.
//!
//! Input: terms, each a set of globs minus a set of `except` globs.
//! Output: one complete byte-class DFA over normalized absolute paths whose
//! states carry the set of terms that accept there; then minimization by an
//! arbitrary per-state label, and the beneath analysis Landlock needs.
//!
//! This construction is codegen's own (independent of `kapl-automata`), so
//! that translation validation compares two independent constructions.

use kapl_syntax::glob::{Atom, Branch, Glob, Segment};
use std::collections::HashMap as StdMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A small, fast, non-cryptographic hasher for the compiler's internal
/// tables (keys are state sets and rows built by the compiler itself).
#[derive(Default, Clone, Copy)]
pub(crate) struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }
    fn write_u8(&mut self, x: u8) {
        self.write_u64(u64::from(x));
    }
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
}

/// A hash map with [`Fx`].
pub(crate) type HashMap<K, V> = StdMap<K, V, BuildHasherDefault<Fx>>;

/// A set of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub(crate) struct Bytes([u64; 4]);

impl Bytes {
    fn single(b: u8) -> Bytes {
        let mut s = Bytes::default();
        s.insert(b);
        s
    }
    fn insert(&mut self, b: u8) {
        self.0[(b >> 6) as usize] |= 1 << (b & 63);
    }
    fn contains(self, b: u8) -> bool {
        self.0[(b >> 6) as usize] & (1 << (b & 63)) != 0
    }
    /// Every byte but `/`.
    fn segment() -> Bytes {
        let mut s = Bytes([u64::MAX; 4]);
        s.0[(b'/' >> 6) as usize] &= !(1 << (b'/' & 63));
        s
    }
}

/// The normalized-path automaton (see `kapl_automata::is_normalized`):
/// `/` alone or `/SEG` repeated, segments non-empty, not `.`/`..`, no NUL.
pub(crate) mod norm {
    pub const START: u8 = 0;
    pub const ROOT: u8 = 1;
    pub const SLASH: u8 = 2;
    pub const DOT1: u8 = 3;
    pub const DOT2: u8 = 4;
    pub const SEG: u8 = 5;
    pub const DEAD: u8 = 6;

    pub fn step(s: u8, b: u8) -> u8 {
        match s {
            START => {
                if b == b'/' {
                    ROOT
                } else {
                    DEAD
                }
            }
            ROOT | SLASH | DOT1 | DOT2 => match b {
                b'/' | 0 => DEAD,
                b'.' if s == ROOT || s == SLASH => DOT1,
                b'.' if s == DOT1 => DOT2,
                _ => SEG,
            },
            SEG => match b {
                b'/' => SLASH,
                0 => DEAD,
                _ => SEG,
            },
            _ => DEAD,
        }
    }

    pub fn accepting(s: u8) -> bool {
        s == ROOT || s == SEG
    }
}

#[derive(Default)]
struct Nfa {
    edges: Vec<Vec<(Bytes, u32)>>,
    eps: Vec<Vec<u32>>,
    /// The tag (glob index) a state accepts for.
    tag: Vec<Option<u32>>,
}

impl Nfa {
    fn state(&mut self) -> u32 {
        self.edges.push(Vec::new());
        self.eps.push(Vec::new());
        self.tag.push(None);
        (self.tag.len() - 1) as u32
    }
    fn edge(&mut self, from: u32, set: Bytes, to: u32) {
        self.edges[from as usize].push((set, to));
    }
    fn step(&mut self, from: u32, set: Bytes) -> u32 {
        let n = self.state();
        self.edge(from, set, n);
        n
    }
    fn eps(&mut self, from: u32, to: u32) {
        self.eps[from as usize].push(to);
    }

    /// Adds a branch from `start` accepting with `tag`.
    fn branch(&mut self, start: u32, b: &Branch, tag: u32) {
        let slash = Bytes::single(b'/');
        let seg = Bytes::segment();
        if b.segments.iter().all(|s| matches!(s, Segment::AnyDepth)) {
            let root = self.step(start, slash);
            self.tag[root as usize] = Some(tag);
        }
        if b.segments.is_empty() {
            return;
        }
        let mut cur = self.state();
        self.eps(start, cur);
        for s in &b.segments {
            match s {
                Segment::AnyDepth => {
                    // ("/" seg+)*
                    let l = self.state();
                    self.eps(cur, l);
                    let a = self.step(l, slash);
                    let c = self.step(a, seg);
                    self.edge(c, seg, c);
                    self.eps(c, l);
                    cur = l;
                }
                Segment::Atoms(atoms) => {
                    cur = self.step(cur, slash);
                    let only_stars = atoms.iter().all(|a| match a {
                        Atom::Star => true,
                        Atom::Literal(l) => l.is_empty(),
                        _ => false,
                    });
                    if only_stars {
                        cur = self.step(cur, seg);
                        self.edge(cur, seg, cur);
                        continue;
                    }
                    for a in atoms {
                        match a {
                            Atom::Literal(bytes) => {
                                for &x in bytes {
                                    cur = self.step(cur, Bytes::single(x));
                                }
                            }
                            Atom::Star => {
                                let n = self.state();
                                self.eps(cur, n);
                                self.edge(n, seg, n);
                                cur = n;
                            }
                            Atom::AnyByte => cur = self.step(cur, seg),
                            Atom::Class { negated, ranges } => {
                                let mut set = Bytes::default();
                                for x in 0..=255u8 {
                                    let inr = ranges.iter().any(|&(lo, hi)| lo <= x && x <= hi);
                                    if inr != *negated && x != b'/' {
                                        set.insert(x);
                                    }
                                }
                                cur = self.step(cur, set);
                            }
                        }
                    }
                }
            }
        }
        let end = self.state();
        self.eps(cur, end);
        self.tag[end as usize] = Some(tag);
    }
}

/// A term: paths matching some `patterns` and no `except`.
pub(crate) struct Term<'a> {
    pub patterns: Vec<&'a Glob>,
    pub except: Vec<&'a Glob>,
}

/// A complete DFA whose states carry the terms accepted there.
#[derive(Clone, Debug)]
pub(crate) struct Tagged {
    pub classes: [u8; 256],
    pub class_count: usize,
    pub start: u32,
    pub trans: Vec<u32>,
    /// Per state: sorted indices of the terms accepting there.
    pub accepted: Vec<Vec<u32>>,
}

type Key = (Vec<u32>, u8);

struct Subsets {
    index: HashMap<Key, u32>,
    todo: Vec<(Key, u32)>,
    trans: Vec<u32>,
    accepted: Vec<Vec<u32>>,
    cc: usize,
}

impl Subsets {
    fn intern(&mut self, key: Key, nfa: &Nfa, tags: &[(u32, bool)]) -> u32 {
        if key.0.is_empty() || key.1 == norm::DEAD {
            return 0;
        }
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let id = self.accepted.len() as u32;
        // Terms accepted: some pattern tag and no except tag.
        let mut pat: Vec<u32> = Vec::new();
        let mut ex: Vec<u32> = Vec::new();
        if norm::accepting(key.1) {
            for &s in &key.0 {
                if let Some(tag) = nfa.tag[s as usize] {
                    let (t, is_ex) = tags[tag as usize];
                    if is_ex { ex.push(t) } else { pat.push(t) }
                }
            }
        }
        pat.sort_unstable();
        pat.dedup();
        pat.retain(|t| !ex.contains(t));
        self.accepted.push(pat);
        self.trans.extend(std::iter::repeat_n(0, self.cc));
        self.index.insert(key.clone(), id);
        self.todo.push((key, id));
        id
    }
}

/// Builds the tagged DFA of `terms` (not minimized; state 0 is the dead
/// state).
pub(crate) fn build(terms: &[Term<'_>]) -> Tagged {
    let mut nfa = Nfa::default();
    let start = nfa.state();
    // tag -> (term, is_except)
    let mut tags: Vec<(u32, bool)> = Vec::new();
    for (ti, t) in terms.iter().enumerate() {
        for (globs, ex) in [(&t.patterns, false), (&t.except, true)] {
            for g in globs.iter() {
                let tag = tags.len() as u32;
                tags.push((ti as u32, ex));
                for b in &g.branches {
                    nfa.branch(start, b, tag);
                }
            }
        }
    }
    // Byte classes: refine by every edge set and by the normalized-path
    // automaton's bytes.
    let mut sig: Vec<Vec<u32>> = vec![Vec::new(); 256];
    let mut distinct: HashMap<Bytes, u32> = HashMap::default();
    for set in nfa.edges.iter().flatten().map(|(s, _)| *s).chain([
        Bytes::single(b'/'),
        Bytes::single(b'.'),
        Bytes::single(0),
    ]) {
        let n = distinct.len() as u32;
        distinct.entry(set).or_insert(n);
    }
    let mut sets: Vec<(Bytes, u32)> = distinct.into_iter().collect();
    sets.sort_by_key(|(_, i)| *i);
    for (set, i) in &sets {
        for b in 0..=255u8 {
            if set.contains(b) {
                sig[b as usize].push(*i);
            }
        }
    }
    let mut class_of_sig: HashMap<&Vec<u32>, u8> = HashMap::default();
    let mut classes = [0u8; 256];
    let mut reps: Vec<u8> = Vec::new();
    for b in 0..=255u8 {
        let n = class_of_sig.len();
        let c = *class_of_sig.entry(&sig[b as usize]).or_insert_with(|| {
            reps.push(b);
            n as u8
        });
        classes[b as usize] = c;
    }
    let cc = reps.len();
    // Per edge: the classes it covers.
    let edge_classes: Vec<Vec<(Vec<u8>, u32)>> = nfa
        .edges
        .iter()
        .map(|es| {
            es.iter()
                .map(|(set, to)| {
                    let cs: Vec<u8> = reps
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| set.contains(**b))
                        .map(|(c, _)| c as u8)
                        .collect();
                    (cs, *to)
                })
                .collect()
        })
        .collect();

    // ε-closure; `set` may hold duplicates on entry (they are dropped with
    // the generation marks, so one sort at the end suffices).
    let closure = |set: &mut Vec<u32>, mark: &mut Vec<u32>, gen_: u32| {
        let mut out: Vec<u32> = Vec::with_capacity(set.len());
        for &s in set.iter() {
            if mark[s as usize] != gen_ {
                mark[s as usize] = gen_;
                out.push(s);
            }
        }
        let mut i = 0;
        while i < out.len() {
            let s = out[i] as usize;
            for &t in &nfa.eps[s] {
                if mark[t as usize] != gen_ {
                    mark[t as usize] = gen_;
                    out.push(t);
                }
            }
            i += 1;
        }
        out.sort_unstable();
        *set = out;
    };
    let mut mark = vec![0u32; nfa.tag.len()];
    let mut generation = 0u32;

    let mut st = Subsets {
        index: HashMap::default(),
        todo: Vec::new(),
        trans: vec![0; cc], // dead state 0 loops
        accepted: vec![Vec::new()],
        cc,
    };
    generation += 1;
    let mut s0 = vec![start];
    closure(&mut s0, &mut mark, generation);
    let start_id = st.intern((s0, norm::START), &nfa, &tags);
    let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); cc];
    while let Some((key, from)) = st.todo.pop() {
        for b in buckets.iter_mut() {
            b.clear();
        }
        for &s in &key.0 {
            for (cs, to) in &edge_classes[s as usize] {
                for &c in cs {
                    buckets[c as usize].push(*to);
                }
            }
        }
        for c in 0..cc {
            let n = norm::step(key.1, reps[c]);
            if buckets[c].is_empty() {
                continue; // the dead state 0, already in the table
            }
            let mut set = std::mem::take(&mut buckets[c]);
            generation += 1;
            closure(&mut set, &mut mark, generation);
            let to = st.intern((set, n), &nfa, &tags);
            st.trans[from as usize * cc + c] = to;
        }
    }
    let Subsets {
        trans, accepted, ..
    } = st;
    Tagged {
        classes,
        class_count: cc,
        start: start_id,
        trans,
        accepted,
    }
}

/// A minimized DFA with one label per state.
#[derive(Clone, Debug)]
pub(crate) struct Min {
    pub classes: [u8; 256],
    pub class_count: usize,
    pub start: u32,
    pub trans: Vec<u32>,
    pub label: Vec<u32>,
}

impl Min {
    pub fn states(&self) -> usize {
        self.label.len()
    }
    pub fn next(&self, s: u32, b: u8) -> u32 {
        self.trans[s as usize * self.class_count + self.classes[b as usize] as usize]
    }
}

/// Moore minimization by `label`, then class merging and breadth-first
/// renumbering from the start state.
pub(crate) fn minimize(
    classes: [u8; 256],
    cc: usize,
    start: u32,
    trans: &[u32],
    label: &[u32],
) -> Min {
    let n = label.len();
    // Initial blocks by label.
    let mut block: Vec<u32> = {
        let mut ids: HashMap<u32, u32> = HashMap::default();
        label
            .iter()
            .map(|l| {
                let k = ids.len() as u32;
                *ids.entry(*l).or_insert(k)
            })
            .collect()
    };
    let mut count = block.iter().copied().max().map_or(0, |m| m + 1);
    loop {
        let mut ids: HashMap<Vec<u32>, u32> =
            HashMap::with_capacity_and_hasher(n, Default::default());
        let mut next = Vec::with_capacity(n);
        let mut sig = Vec::with_capacity(cc + 1);
        for s in 0..n {
            sig.clear();
            sig.push(block[s]);
            for c in 0..cc {
                sig.push(block[trans[s * cc + c] as usize]);
            }
            let k = ids.len() as u32;
            let id = match ids.get(&sig) {
                Some(&i) => i,
                None => {
                    ids.insert(sig.clone(), k);
                    k
                }
            };
            next.push(id);
        }
        let new_count = ids.len() as u32;
        block = next;
        if new_count == count {
            break;
        }
        count = new_count;
    }
    // Quotient, renumbered breadth-first from the start.
    let mut order: Vec<u32> = vec![u32::MAX; count as usize];
    let mut rep: Vec<usize> = Vec::new();
    let mut queue = std::collections::VecDeque::new();
    let sb = block[start as usize];
    order[sb as usize] = 0;
    rep.push(start as usize);
    queue.push_back(start as usize);
    // Representative state of each block.
    let mut block_rep = vec![usize::MAX; count as usize];
    for s in 0..n {
        if block_rep[block[s] as usize] == usize::MAX {
            block_rep[block[s] as usize] = s;
        }
    }
    while let Some(s) = queue.pop_front() {
        for c in 0..cc {
            let t = block[trans[s * cc + c] as usize] as usize;
            if order[t] == u32::MAX {
                order[t] = rep.len() as u32;
                rep.push(block_rep[t]);
                queue.push_back(block_rep[t]);
            }
        }
    }
    let m = rep.len();
    let mut qtrans = vec![0u32; m * cc];
    let mut qlabel = vec![0u32; m];
    for (i, &s) in rep.iter().enumerate() {
        qlabel[i] = label[s];
        for c in 0..cc {
            qtrans[i * cc + c] = order[block[trans[s * cc + c] as usize] as usize];
        }
    }
    // Merge classes whose columns are identical.
    let mut col_id: HashMap<Vec<u32>, u8> = HashMap::default();
    let mut remap = vec![0u8; cc];
    let mut keep: Vec<usize> = Vec::new();
    for (c, r) in remap.iter_mut().enumerate() {
        let col: Vec<u32> = (0..m).map(|s| qtrans[s * cc + c]).collect();
        let k = col_id.len() as u8;
        *r = *col_id.entry(col).or_insert_with(|| {
            keep.push(c);
            k
        });
    }
    let ncc = keep.len();
    let mut ftrans = vec![0u32; m * ncc];
    for s in 0..m {
        for (nc, &c) in keep.iter().enumerate() {
            ftrans[s * ncc + nc] = qtrans[s * cc + c];
        }
    }
    let mut fclasses = [0u8; 256];
    for b in 0..256 {
        fclasses[b] = remap[classes[b] as usize];
    }
    Min {
        classes: fclasses,
        class_count: ncc,
        start: 0,
        trans: ftrans,
        label: qlabel,
    }
}

/// The graph behind the beneath analysis: nodes are (state, mode) with mode
/// 0 = just read '/', 1 = '.', 2 = '..', 3 = inside a proper segment (an
/// end node); edges reversed. Built once per DFA, shared by every column.
pub(crate) struct BeneathGraph {
    n: usize,
    rev: Vec<Vec<u32>>,
    fwd: Vec<Vec<u32>>,
    /// State-level reverse transitions (for the per-column live sets).
    srev: Vec<Vec<u32>>,
    /// Per state `q`: the node reached from `q` by `/`.
    start: Vec<usize>,
}

impl BeneathGraph {
    pub fn new(m: &Min) -> BeneathGraph {
        let n = m.states();
        let step = |mode: usize, b: u8| -> Option<usize> {
            match (mode, b) {
                (_, 0) => None,
                (3, b'/') => Some(0),
                (_, b'/') => None,
                (0, b'.') => Some(1),
                (1, b'.') => Some(2),
                _ => Some(3),
            }
        };
        // Representative bytes per (class, norm kind).
        let mut reps: Vec<u8> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            let k = match b {
                b'/' => 0,
                b'.' => 1,
                0 => 2,
                _ => 3,
            };
            if seen.insert((m.classes[b as usize], k)) {
                reps.push(b);
            }
        }
        let mut rev: Vec<Vec<u32>> = vec![Vec::new(); n * 4];
        let mut fwd: Vec<Vec<u32>> = vec![Vec::new(); n * 4];
        for s in 0..n {
            for mode in 0..4 {
                for &b in &reps {
                    if let Some(nm) = step(mode, b) {
                        let t = m.next(s as u32, b) as usize;
                        rev[t * 4 + nm].push((s * 4 + mode) as u32);
                        fwd[s * 4 + mode].push((t * 4 + nm) as u32);
                    }
                }
            }
        }
        for r in rev.iter_mut().chain(fwd.iter_mut()) {
            r.sort_unstable();
            r.dedup();
        }
        let mut srev: Vec<Vec<u32>> = vec![Vec::new(); n];
        for s in 0..n {
            for c in 0..m.class_count {
                let t = m.trans[s * m.class_count + c] as usize;
                srev[t].push(s as u32);
            }
        }
        for r in srev.iter_mut() {
            r.sort_unstable();
            r.dedup();
        }
        let start = (0..n)
            .map(|q| m.next(q as u32, b'/') as usize * 4)
            .collect();
        BeneathGraph {
            n,
            rev,
            fwd,
            srev,
            start,
        }
    }

    /// Backward closure from `seeds`, visiting only nodes of live states.
    fn propagate(&self, seeds: Vec<usize>, live: &[bool]) -> Vec<bool> {
        let mut hit = vec![false; self.n * 4];
        let mut stack = seeds;
        for &x in &stack {
            hit[x] = true;
        }
        while let Some(x) = stack.pop() {
            for &p in &self.rev[x] {
                let p = p as usize;
                if !hit[p] && live[p / 4] {
                    hit[p] = true;
                    stack.push(p);
                }
            }
        }
        hit
    }

    /// Beneath analysis for one column: for each state `q` reached by a
    /// directory path `P` (or the start state, standing for the root `/`),
    /// whether every / some normalized path `P/SEG(/SEG)*` is accepted.
    /// `accept[s]` says whether state `s` accepts for the column.
    ///
    /// Only states from which an accepting state is reachable (live) can
    /// have either flag, so the work stays within the column's live part:
    /// a live node is "bad" when it is a non-accepting end node or has an
    /// edge out of the live part (from there a non-accepting end is
    /// reachable), and badness flows backwards.
    pub fn beneath(&self, accept: &[bool]) -> (Vec<bool>, Vec<bool>) {
        let n = self.n;
        let mut live = vec![false; n];
        let mut stack: Vec<usize> = (0..n).filter(|&s| accept[s]).collect();
        for &s in &stack {
            live[s] = true;
        }
        while let Some(s) = stack.pop() {
            for &p in &self.srev[s] {
                if !live[p as usize] {
                    live[p as usize] = true;
                    stack.push(p as usize);
                }
            }
        }
        let live_nodes = || {
            (0..n)
                .filter(|&s| live[s])
                .flat_map(|s| (0..4).map(move |m| s * 4 + m))
        };
        let good_seeds: Vec<usize> = (0..n).filter(|&s| accept[s]).map(|s| s * 4 + 3).collect();
        let bad_seeds: Vec<usize> = live_nodes()
            .filter(|&x| {
                (x % 4 == 3 && !accept[x / 4]) || self.fwd[x].iter().any(|&t| !live[t as usize / 4])
            })
            .collect();
        let good = self.propagate(good_seeds, &live);
        let bad = self.propagate(bad_seeds, &live);
        let all = self.start.iter().map(|&x| live[x / 4] && !bad[x]).collect();
        let some = self.start.iter().map(|&x| good[x]).collect();
        (all, some)
    }
}

/// The shortest path (fewest bytes, then smallest bytes) from the start
/// state to a state satisfying `goal`.
pub(crate) fn shortest(
    classes: &[u8; 256],
    cc: usize,
    start: u32,
    trans: &[u32],
    goal: &dyn Fn(usize) -> bool,
) -> Option<Vec<u8>> {
    let n = trans.len() / cc.max(1);
    let mut prev: Vec<Option<(u32, u8)>> = vec![None; n];
    let mut seen = vec![false; n];
    let mut q = std::collections::VecDeque::new();
    seen[start as usize] = true;
    q.push_back(start as usize);
    // Prefer readable bytes for witnesses.
    let mut order: Vec<u8> = (0..=255u8).collect();
    order.sort_by_key(|&b| match b {
        b'a'..=b'z' => 0,
        b'0'..=b'9' | b'-' | b'_' | b'/' => 1,
        b'A'..=b'Z' | b'.' => 2,
        0x21..=0x7e => 3,
        _ => 4,
    });
    let mut reps: Vec<u8> = Vec::new();
    let mut seenc = vec![false; cc];
    for b in order {
        if !seenc[classes[b as usize] as usize] {
            seenc[classes[b as usize] as usize] = true;
            reps.push(b);
        }
    }
    while let Some(s) = q.pop_front() {
        if goal(s) {
            let mut path = Vec::new();
            let mut cur = s;
            while let Some((p, b)) = prev[cur] {
                path.push(b);
                cur = p as usize;
            }
            path.reverse();
            return Some(path);
        }
        for &b in &reps {
            let t = trans[s * cc + classes[b as usize] as usize] as usize;
            if !seen[t] {
                seen[t] = true;
                prev[t] = Some((s as u32, b));
                q.push_back(t);
            }
        }
    }
    None
}
