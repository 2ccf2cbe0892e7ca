//! Small graph helpers shared by the loader (import cycles), the resolver
//! (step and authority cycles) and lowering (expansion order).
//!
//! Input: a graph as adjacency lists over `0..n`. Output: cycles (strongly
//! connected components with more than one node, or with a self-loop) and a
//! dependency order. Iterative, so deep chains from hostile input cannot
//! overflow the stack.

/// Strongly connected components that contain a cycle, each sorted, in order
/// of their smallest node.
pub fn cycles(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = sccs(adj)
        .into_iter()
        .filter(|c| c.len() > 1 || c.first().is_some_and(|&v| adj[v].contains(&v)))
        .map(|mut c| {
            c.sort_unstable();
            c
        })
        .collect();
    out.sort();
    out
}

/// Every strongly connected component (Tarjan, iterative). Components come
/// out in reverse topological order: a component is emitted after every
/// component it reaches.
pub fn sccs(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let n = adj.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut next = 0usize;
    let mut out = Vec::new();
    // Call frames: (node, position in its adjacency list).
    let mut frames: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        frames.push((root, 0));
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut pos)) = frames.last_mut() {
            if let Some(&w) = adj[v].get(*pos) {
                *pos += 1;
                if w >= n {
                    continue;
                }
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    frames.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            frames.pop();
            if let Some(&(parent, _)) = frames.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                out.push(comp);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_two_cycle_and_self_loop() {
        // 0 -> 1 -> 0, 2 -> 2, 3 -> 0
        let adj = vec![vec![1], vec![0], vec![2], vec![0]];
        assert_eq!(cycles(&adj), vec![vec![0, 1], vec![2]]);
    }

    #[test]
    fn dag_has_no_cycles_and_reverse_topological_order() {
        let adj = vec![vec![1, 2], vec![2], vec![]];
        assert!(cycles(&adj).is_empty());
        let order: Vec<usize> = sccs(&adj).into_iter().flatten().collect();
        assert_eq!(order, vec![2, 1, 0]);
    }

    #[test]
    fn deep_chain_does_not_overflow() {
        let n = 200_000;
        let adj: Vec<Vec<usize>> = (0..n)
            .map(|i| if i + 1 < n { vec![i + 1] } else { vec![0] })
            .collect();
        let c = cycles(&adj);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].len(), n);
    }
}
