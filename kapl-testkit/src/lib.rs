//! Test support shared by the differential tests of several crates (a
//! dev-dependency only; nothing here is linked into a tool).
//!
//! Input: a seed, or an alphabet and a depth. Output: a deterministic
//! pseudo-random stream ([`Rng`]) and exhaustive small path universes
//! ([`segments`], [`paths_below_root`]) that tests enumerate to compare an
//! implementation against a reference. Pure: no I/O.

/// A xorshift64 generator (shifts 13, 7, 17): small, fast, and the same
/// stream for the same seed on every machine, so a failing seed replays.
///
/// The state is used as given: a zero seed yields zeros forever, so
/// callers derive a nonzero seed (for instance `seed | 1`).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 bits of the stream.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`0` when `n` is 0), by reduction modulo `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with the given chance in percent (one draw modulo 100).
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// Every segment of one or two bytes over `alpha`, in order: each byte
/// `x` followed by the two-byte segments starting with `x`.
pub fn segments(alpha: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for &x in alpha {
        out.push(vec![x]);
        for &y in alpha {
            out.push(vec![x, y]);
        }
    }
    out
}

/// Every absolute path of 1 to `depth` segments drawn from `segs`
/// (`/s1`, `/s1/s2`, ...), shallower layers first, each layer in the order
/// of `segs`. The root `/` itself is not included.
pub fn paths_below_root(segs: &[Vec<u8>], depth: usize) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    let mut layer: Vec<Vec<u8>> = vec![Vec::new()];
    for _ in 0..depth {
        let mut next = Vec::new();
        for p in &layer {
            for s in segs {
                let mut q = p.clone();
                q.push(b'/');
                q.extend_from_slice(s);
                next.push(q);
            }
        }
        all.extend(next.iter().cloned());
        layer = next;
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn universe_sizes() {
        let segs = segments(b"ab.");
        assert_eq!(segs.len(), 12);
        // 12 + 144 + 1728 paths of depth 1, 2 and 3.
        let paths = paths_below_root(&segs, 3);
        assert_eq!(paths.len(), 12 + 144 + 1728);
        assert_eq!(paths[0], b"/a");
        assert_eq!(paths[12], b"/a/a");
        assert!(paths_below_root(&segs, 0).is_empty());
    }

    #[test]
    fn rng_is_the_xorshift64_stream() {
        let mut r = Rng(1);
        // First outputs of xorshift64 (13, 7, 17) from state 1.
        assert_eq!(r.next_u64(), 1_082_269_761);
        assert_eq!(r.below(0), 0);
        let mut z = Rng(0);
        assert_eq!(z.next_u64(), 0);
    }
}
