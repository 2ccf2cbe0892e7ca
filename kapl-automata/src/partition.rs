//! DFA state minimization by Hopcroft's partition refinement.
//!
//! Input: a complete transition table over classes and one label per state.
//! Output: the coarsest partition of the states that respects the labels
//! and the transitions (two states share a block exactly when no string
//! leads them to differently labelled states). `O(c · n log n)` for `n`
//! states and `c` classes, where Moore's round-by-round refinement costs a
//! full pass per distinguishing length (long literal paths make that
//! quadratic).

use crate::bytes::HashMap;

/// A refinable partition of `0..n` (elements of a block are contiguous in
/// `elems`; marked elements are moved to the front of their block).
struct Partition {
    elems: Vec<u32>,
    loc: Vec<u32>,
    block: Vec<u32>,
    first: Vec<u32>,
    end: Vec<u32>,
    /// End of the marked prefix of each block.
    mid: Vec<u32>,
}

impl Partition {
    fn size(&self, b: usize) -> u32 {
        self.end[b] - self.first[b]
    }

    /// Marks `s`; returns its block when this is the block's first mark.
    fn mark(&mut self, s: u32) -> Option<u32> {
        let b = self.block[s as usize] as usize;
        let i = self.loc[s as usize];
        let m = self.mid[b];
        if i < m {
            return None; // already marked
        }
        let other = self.elems[m as usize];
        self.elems.swap(i as usize, m as usize);
        self.loc[other as usize] = i;
        self.loc[s as usize] = m;
        self.mid[b] = m + 1;
        (m == self.first[b]).then_some(b as u32)
    }

    /// Splits block `b` into its marked and unmarked parts; returns the new
    /// block (the marked part) if both parts are non-empty.
    fn split(&mut self, b: usize) -> Option<usize> {
        let (f, m, e) = (self.first[b], self.mid[b], self.end[b]);
        self.mid[b] = f;
        if m == e {
            return None; // everything marked: nothing splits
        }
        let nb = self.first.len();
        self.first.push(f);
        self.end.push(m);
        self.mid.push(f);
        self.first[b] = m;
        self.mid[b] = m;
        for i in f..m {
            self.block[self.elems[i as usize] as usize] = nb as u32;
        }
        Some(nb)
    }
}

/// The coarsest partition of states `0..label.len()` of the complete table
/// `trans` (`trans[state * cc + class]`) in which states of one block have
/// equal labels and, for every class, successors in one block. Returns
/// each state's block and the number of blocks.
pub fn coarsest_partition(cc: usize, trans: &[u32], label: &[u32]) -> (Vec<u32>, usize) {
    let n = label.len();
    if n == 0 {
        return (Vec::new(), 0);
    }
    // Initial blocks: one per label, states in ascending order.
    let mut ids: HashMap<u32, u32> = HashMap::default();
    let mut block = vec![0u32; n];
    for (s, l) in label.iter().enumerate() {
        let fresh = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        block[s] = *ids.entry(*l).or_insert(fresh);
    }
    let count = ids.len();
    let mut sizes = vec![0u32; count];
    for &b in &block {
        sizes[b as usize] += 1;
    }
    let mut first = vec![0u32; count];
    let mut acc = 0u32;
    for (f, &sz) in first.iter_mut().zip(&sizes) {
        *f = acc;
        acc += sz;
    }
    let mut fill = first.clone();
    let mut elems = vec![0u32; n];
    let mut loc = vec![0u32; n];
    for s in 0..n {
        let b = block[s] as usize;
        elems[fill[b] as usize] = s as u32;
        loc[s] = fill[b];
        fill[b] += 1;
    }
    let end: Vec<u32> = first.iter().zip(&sizes).map(|(f, s)| f + s).collect();
    let mut p = Partition {
        elems,
        loc,
        block,
        mid: first.clone(),
        first,
        end,
    };
    // Inverse transitions, grouped by target and, within a target, sorted
    // by class: (class, source) pairs.
    let mut inv_start = vec![0u32; n + 1];
    for &t in trans.iter().take(n * cc) {
        if let Some(x) = inv_start.get_mut(t as usize + 1) {
            *x += 1;
        }
    }
    for i in 0..n {
        inv_start[i + 1] += inv_start[i];
    }
    let mut inv: Vec<(u32, u32)> = vec![(0, 0); inv_start[n] as usize];
    let mut pos = inv_start.clone();
    for c in 0..cc {
        for s in 0..n {
            if let Some(&t) = trans.get(s * cc + c)
                && let Some(slot) = pos.get_mut(t as usize)
            {
                inv[*slot as usize] = (c as u32, s as u32);
                *slot += 1;
            }
        }
    }
    // Worklist: every initial block.
    let mut in_work = vec![true; count];
    let mut work: Vec<usize> = (0..count).collect();
    let mut splitter: Vec<u32> = Vec::new();
    // Per splitter element: how far its inverse list has been read.
    let mut cursor: Vec<u32> = Vec::new();
    let mut touched: Vec<u32> = Vec::new();
    while let Some(a) = work.pop() {
        in_work[a] = false;
        // The splitter's elements as they are now (the block may split
        // while it is being used).
        splitter.clear();
        splitter.extend_from_slice(&p.elems[p.first[a] as usize..p.end[a] as usize]);
        cursor.clear();
        cursor.extend(splitter.iter().map(|&t| inv_start[t as usize]));
        for c in 0..cc as u32 {
            // Mark the predecessors on class `c`.
            for (&t, cur) in splitter.iter().zip(cursor.iter_mut()) {
                let stop = inv_start[t as usize + 1];
                while *cur < stop && inv[*cur as usize].0 == c {
                    if let Some(b) = p.mark(inv[*cur as usize].1) {
                        touched.push(b);
                    }
                    *cur += 1;
                }
            }
            for b in touched.drain(..) {
                let b = b as usize;
                if let Some(nb) = p.split(b) {
                    in_work.push(false);
                    if in_work[b] {
                        in_work[nb] = true;
                        work.push(nb);
                    } else {
                        let small = if p.size(nb) <= p.size(b) { nb } else { b };
                        in_work[small] = true;
                        work.push(small);
                    }
                }
            }
        }
    }
    let blocks = p.first.len();
    (p.block, blocks)
}

#[cfg(test)]
mod tests {
    use super::coarsest_partition;

    /// Moore's refinement, the reference.
    fn moore(cc: usize, trans: &[u32], label: &[u32]) -> Vec<u32> {
        let n = label.len();
        let mut block: Vec<u32> = label.to_vec();
        loop {
            let mut ids = std::collections::HashMap::new();
            let next: Vec<u32> = (0..n)
                .map(|s| {
                    let mut sig = vec![block[s]];
                    sig.extend((0..cc).map(|c| block[trans[s * cc + c] as usize]));
                    let fresh = ids.len() as u32;
                    *ids.entry(sig).or_insert(fresh)
                })
                .collect();
            let same =
                (0..n).all(|a| (0..n).all(|b| (next[a] == next[b]) == (block[a] == block[b])));
            block = next;
            if same {
                return block;
            }
        }
    }

    #[test]
    fn agrees_with_moore_on_random_tables() {
        let mut x: u64 = 0x5eed_1234_abcd_0001;
        let mut rnd = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for _ in 0..300 {
            let n = 1 + rnd(40) as usize;
            let cc = 1 + rnd(4) as usize;
            let labels = 1 + rnd(3);
            let trans: Vec<u32> = (0..n * cc).map(|_| rnd(n as u64) as u32).collect();
            let label: Vec<u32> = (0..n).map(|_| rnd(labels) as u32).collect();
            let (got, count) = coarsest_partition(cc, &trans, &label);
            let want = moore(cc, &trans, &label);
            for a in 0..n {
                for b in 0..n {
                    assert_eq!(got[a] == got[b], want[a] == want[b], "{trans:?} {label:?}");
                }
            }
            let distinct: std::collections::HashSet<u32> = got.iter().copied().collect();
            assert_eq!(distinct.len(), count);
        }
    }
}
