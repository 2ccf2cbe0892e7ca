//! Product path automata for code generation.
//!
//! Input: the prover's automata (`kapl_automata::Dfa`, one per distinct
//! grant language). Output: one complete byte-class DFA whose states are
//! tuples of the components' states, each labelled by what accepts there;
//! then minimization by that label, and the beneath analysis Landlock
//! needs. Translation validation (`crate::translate`) checks the emitted
//! tables against the same prover automata with its own product walk.

use kapl_automata::Dfa;

/// A hash map with rustc's fast, non-cryptographic hasher, for the
/// compiler's internal tables (keys are state sets and rows built by the
/// compiler itself; nothing iterates over them, so the order never shows).
pub(crate) type HashMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// A DFA whose states are tuples of component states, with one label per
/// state (not minimized; state 0 is the dead state).
#[derive(Clone, Debug)]
pub(crate) struct Tagged {
    pub classes: [u8; 256],
    pub class_count: usize,
    pub start: u32,
    pub trans: Vec<u32>,
    /// Per state: the label the caller gave its accepting components.
    pub label: Vec<u32>,
}

/// The coarsest byte classes refining every component's classes: a byte
/// map and one representative byte per class.
fn joint_classes(dfas: &[&Dfa]) -> ([u8; 256], Vec<u8>) {
    let mut class = [0u16; 256];
    let mut count = 1usize;
    // (current class, component class) -> new class; reset after each
    // component through `touched`.
    let mut table = vec![u16::MAX; 256 * 256];
    let mut touched: Vec<usize> = Vec::with_capacity(256);
    for d in dfas {
        if count == 256 {
            break; // already one class per byte
        }
        let mut next = 0u16;
        for (b, cl) in class.iter_mut().enumerate() {
            let key = usize::from(*cl) * 256 + usize::from(d.class_of(b as u8));
            if table[key] == u16::MAX {
                table[key] = next;
                next += 1;
                touched.push(key);
            }
            *cl = table[key];
        }
        count = usize::from(next);
        for k in touched.drain(..) {
            table[k] = u16::MAX;
        }
    }
    // Renumber by smallest byte.
    let mut map = [0u8; 256];
    let mut ids = vec![u16::MAX; 256];
    let mut reps: Vec<u8> = Vec::new();
    for b in 0..256usize {
        let c = usize::from(class[b]);
        if ids[c] == u16::MAX {
            ids[c] = reps.len() as u16;
            reps.push(b as u8);
        }
        map[b] = ids[c] as u8;
    }
    (map, reps)
}

/// The product of `dfas` (complete, minimized automata over normalized
/// paths, e.g. the prover's per-grant automata): a state is the sorted
/// list of `(component, state)` of the components still alive, so work
/// stays proportional to the components that can still accept. Each
/// state's label is `label(accepting components, ascending)`; the dead
/// state (no component alive) gets `label(&[])`.
///
/// Successor tuples come out sorted (components are stepped in order), so
/// nothing is sorted; tuples are interned by value.
pub(crate) fn product(dfas: &[&Dfa], label: &mut dyn FnMut(&[u32]) -> u32) -> Tagged {
    let (classes, reps) = joint_classes(dfas);
    let cc = reps.len();
    // Component class of each joint class.
    let comp_class: Vec<u8> = dfas
        .iter()
        .flat_map(|d| reps.iter().map(|&b| d.class_of(b)))
        .collect();
    let mut index: HashMap<Vec<u32>, u32> = HashMap::default();
    let mut tuples: Vec<Vec<u32>> = Vec::new();
    let mut trans: Vec<u32> = Vec::new();
    let mut labels: Vec<u32> = Vec::new();
    let mut accepting: Vec<u32> = Vec::new();
    // Flattened tuple: component, state, component, state, ...
    let mut intern = |t: &[u32],
                      index: &mut HashMap<Vec<u32>, u32>,
                      tuples: &mut Vec<Vec<u32>>,
                      labels: &mut Vec<u32>,
                      trans: &mut Vec<u32>|
     -> u32 {
        if let Some(&i) = index.get(t) {
            return i;
        }
        let id = tuples.len() as u32;
        accepting.clear();
        for p in t.chunks_exact(2) {
            if dfas[p[0] as usize].is_accepting(p[1]) {
                accepting.push(p[0]);
            }
        }
        labels.push(label(&accepting));
        trans.extend(std::iter::repeat_n(0, cc));
        index.insert(t.to_vec(), id);
        tuples.push(t.to_vec());
        id
    };
    intern(&[], &mut index, &mut tuples, &mut labels, &mut trans);
    let start_tuple: Vec<u32> = dfas
        .iter()
        .enumerate()
        .filter(|(_, d)| !d.is_dead(d.start()))
        .flat_map(|(k, d)| [k as u32, d.start()])
        .collect();
    let start = intern(
        &start_tuple,
        &mut index,
        &mut tuples,
        &mut labels,
        &mut trans,
    );
    let mut next: Vec<u32> = Vec::new();
    let mut i = 1;
    while i < tuples.len() {
        let cur = std::mem::take(&mut tuples[i]);
        for c in 0..cc {
            next.clear();
            for p in cur.chunks_exact(2) {
                let k = p[0] as usize;
                let d = dfas[k];
                let t = d.next_class(p[1], comp_class[k * cc + c]);
                if !d.is_dead(t) {
                    next.extend([p[0], t]);
                }
            }
            let to = intern(&next, &mut index, &mut tuples, &mut labels, &mut trans);
            trans[i * cc + c] = to;
        }
        i += 1;
    }
    Tagged {
        classes,
        class_count: cc,
        start,
        trans,
        label: labels,
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

/// Minimization by `label` (Hopcroft), then class merging and breadth-first
/// renumbering from the start state.
pub(crate) fn minimize(
    classes: [u8; 256],
    cc: usize,
    start: u32,
    trans: &[u32],
    label: &[u32],
) -> Min {
    let n = label.len();
    let (block, count) = kapl_automata::coarsest_partition(cc, trans, label);
    let count = count as u32;
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

/// Adjacency lists in one array (compressed sparse rows).
struct Csr {
    start: Vec<u32>,
    items: Vec<u32>,
}

impl Csr {
    /// From (from, to) pairs over `n` nodes, deduplicated per node.
    fn new(n: usize, mut pairs: Vec<(u32, u32)>) -> Csr {
        pairs.sort_unstable();
        pairs.dedup();
        let mut start = vec![0u32; n + 1];
        for &(f, _) in &pairs {
            start[f as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        Csr {
            start,
            items: pairs.into_iter().map(|(_, t)| t).collect(),
        }
    }

    fn of(&self, x: usize) -> &[u32] {
        &self.items[self.start[x] as usize..self.start[x + 1] as usize]
    }
}

/// The graph behind the beneath analysis. Its nodes are (state, mode) with
/// mode 0 = just read '/', 1 = '/.', 2 = '/..', 3 = inside a proper segment
/// (an end node); how a mode moves depends only on whether the byte is
/// `/`, `.`, NUL or anything else, so the graph is kept as per-state
/// successors by byte kind (and their reverses) and node edges are derived
/// on the fly. Built once per DFA, shared by every column.
pub(crate) struct BeneathGraph {
    n: usize,
    slash: Vec<u32>,
    dot: Vec<u32>,
    /// Successors on bytes other than `/`, `.` and NUL, deduplicated.
    other: Csr,
    rev_slash: Csr,
    rev_dot: Csr,
    rev_other: Csr,
    /// State-level reverse transitions over every byte.
    srev: Csr,
}

impl BeneathGraph {
    pub fn new(m: &Min) -> BeneathGraph {
        let n = m.states();
        // Classes holding some byte other than `/`, `.` and NUL.
        let mut other_classes: Vec<u8> = Vec::new();
        for b in 0..=255u8 {
            if b != b'/' && b != b'.' && b != 0 {
                let c = m.classes[b as usize];
                if !other_classes.contains(&c) {
                    other_classes.push(c);
                }
            }
        }
        let slash: Vec<u32> = (0..n).map(|s| m.next(s as u32, b'/')).collect();
        let dot: Vec<u32> = (0..n).map(|s| m.next(s as u32, b'.')).collect();
        let cc = m.class_count;
        let mut other = Vec::new();
        for s in 0..n {
            for &c in &other_classes {
                other.push((s as u32, m.trans[s * cc + c as usize]));
            }
        }
        let mut all: Vec<(u32, u32)> = (0..n)
            .flat_map(|s| (0..cc).map(move |c| (s, c)))
            .map(|(s, c)| (m.trans[s * cc + c], s as u32))
            .collect();
        all.sort_unstable();
        all.dedup();
        let rev = |pairs: &[(u32, u32)]| Csr::new(n, pairs.iter().map(|&(f, t)| (t, f)).collect());
        let slash_pairs: Vec<(u32, u32)> = slash
            .iter()
            .enumerate()
            .map(|(s, &t)| (s as u32, t))
            .collect();
        let dot_pairs: Vec<(u32, u32)> = dot
            .iter()
            .enumerate()
            .map(|(s, &t)| (s as u32, t))
            .collect();
        let rev_other = rev(&other);
        BeneathGraph {
            n,
            rev_slash: rev(&slash_pairs),
            rev_dot: rev(&dot_pairs),
            rev_other,
            other: Csr::new(n, other),
            srev: Csr::new(n, all),
            slash,
            dot,
        }
    }

    /// Node successors of (s, mode), as (state, mode).
    fn succ(&self, s: usize, mode: usize, out: &mut Vec<(u32, usize)>) {
        out.clear();
        match mode {
            0 => out.push((self.dot[s], 1)),
            1 => out.push((self.dot[s], 2)),
            _ => out.push((self.dot[s], 3)),
        }
        if mode == 3 {
            out.push((self.slash[s], 0));
        }
        out.extend(self.other.of(s).iter().map(|&t| (t, 3)));
    }

    /// Node predecessors of (t, mode), as node indices `state * 4 + mode`.
    fn pred(&self, t: usize, mode: usize, out: &mut Vec<usize>) {
        out.clear();
        let st = |s: u32, m: usize| s as usize * 4 + m;
        match mode {
            0 => out.extend(self.rev_slash.of(t).iter().map(|&s| st(s, 3))),
            1 => out.extend(self.rev_dot.of(t).iter().map(|&s| st(s, 0))),
            2 => out.extend(self.rev_dot.of(t).iter().map(|&s| st(s, 1))),
            _ => {
                for &s in self.rev_dot.of(t) {
                    out.extend([st(s, 2), st(s, 3)]);
                }
                for &s in self.rev_other.of(t) {
                    out.extend((0..4).map(|m| st(s, m)));
                }
            }
        }
    }

    /// Backward closure from `seeds`, visiting only nodes of live states.
    fn propagate(&self, seeds: Vec<usize>, live: &[bool]) -> Vec<bool> {
        let mut hit = vec![false; self.n * 4];
        let mut stack = seeds;
        for &x in &stack {
            hit[x] = true;
        }
        let mut preds = Vec::new();
        while let Some(x) = stack.pop() {
            self.pred(x / 4, x % 4, &mut preds);
            for &p in &preds {
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
            for &p in self.srev.of(s) {
                if !live[p as usize] {
                    live[p as usize] = true;
                    stack.push(p as usize);
                }
            }
        }
        let good_seeds: Vec<usize> = (0..n).filter(|&s| accept[s]).map(|s| s * 4 + 3).collect();
        let mut bad_seeds: Vec<usize> = Vec::new();
        let mut succ = Vec::new();
        for s in (0..n).filter(|&s| live[s]) {
            for mode in 0..4 {
                self.succ(s, mode, &mut succ);
                if (mode == 3 && !accept[s]) || succ.iter().any(|&(t, _)| !live[t as usize]) {
                    bad_seeds.push(s * 4 + mode);
                }
            }
        }
        let good = self.propagate(good_seeds, &live);
        let bad = self.propagate(bad_seeds, &live);
        let start = |q: usize| self.slash[q] as usize * 4;
        let all = (0..n)
            .map(|q| live[start(q) / 4] && !bad[start(q)])
            .collect();
        let some = (0..n).map(|q| good[start(q)]).collect();
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
