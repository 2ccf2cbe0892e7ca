//! Byte sets and byte equivalence classes.
//!
//! Input: the byte sets labelling automaton edges. Output: a partition of
//! the 256 byte values into classes such that every set is a union of
//! classes, so automata can step over classes instead of bytes.

/// A set of byte values (a 256-bit bitmap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ByteSet([u64; 4]);

impl ByteSet {
    /// No bytes.
    pub const EMPTY: ByteSet = ByteSet([0; 4]);
    /// All 256 bytes.
    pub const ALL: ByteSet = ByteSet([u64::MAX; 4]);

    /// The set holding exactly `b`.
    pub fn single(b: u8) -> ByteSet {
        let mut s = ByteSet::EMPTY;
        s.insert(b);
        s
    }

    /// The bytes `lo..=hi` (empty when `lo > hi`).
    pub fn range(lo: u8, hi: u8) -> ByteSet {
        let mut s = ByteSet::EMPTY;
        for b in lo..=hi {
            s.insert(b);
        }
        s
    }

    /// Every byte except `/` (what one path-segment byte may be).
    pub fn segment_byte() -> ByteSet {
        ByteSet::ALL.minus(ByteSet::single(b'/'))
    }

    /// Adds `b`.
    pub fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1u64 << (b & 63);
    }

    /// Whether `b` is in the set.
    pub fn contains(self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1u64 << (b & 63)) != 0
    }

    /// Union.
    #[must_use]
    pub fn union(self, o: ByteSet) -> ByteSet {
        ByteSet([
            self.0[0] | o.0[0],
            self.0[1] | o.0[1],
            self.0[2] | o.0[2],
            self.0[3] | o.0[3],
        ])
    }

    /// Difference.
    #[must_use]
    pub fn minus(self, o: ByteSet) -> ByteSet {
        ByteSet([
            self.0[0] & !o.0[0],
            self.0[1] & !o.0[1],
            self.0[2] & !o.0[2],
            self.0[3] & !o.0[3],
        ])
    }

    /// Complement.
    #[must_use]
    pub fn complement(self) -> ByteSet {
        ByteSet::ALL.minus(self)
    }

    /// Whether no byte is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == [0; 4]
    }

    /// The bytes in the set, ascending.
    pub fn iter(self) -> impl Iterator<Item = u8> {
        (0..=255u8).filter(move |b| self.contains(*b))
    }
}

/// How readable a byte is in a witness path: lower is better. Letters come
/// first so that witnesses read like `/srv/a`, then digits, then the rest of
/// printable ASCII; control and non-ASCII bytes come last.
pub fn readability_rank(b: u8) -> u16 {
    match b {
        b'a'..=b'z' => u16::from(b - b'a'),
        b'0'..=b'9' => 26 + u16::from(b - b'0'),
        b'A'..=b'Z' => 36 + u16::from(b - b'A'),
        b'-' => 62,
        b'_' => 63,
        b'.' => 64,
        0x21..=0x7e => 65 + u16::from(b),
        b' ' => 200,
        _ => 300 + u16::from(b),
    }
}

/// A hash map with rustc's fast, non-cryptographic hasher, for the
/// automata's internal tables (keys are state sets and signatures built by
/// this crate; nothing iterates over them, so the order never shows).
pub(crate) type HashMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// A partition of the byte values into numbered classes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Classes {
    /// Byte to class.
    pub map: [u8; 256],
    /// Number of classes (1..=256).
    pub count: usize,
}

impl Classes {
    /// The coarsest partition into intervals such that every given set is a
    /// union of classes (class boundaries wherever some set's membership
    /// changes).
    pub fn from_sets<'a>(sets: impl IntoIterator<Item = &'a ByteSet>) -> Classes {
        let mut boundary = [false; 256];
        for s in sets {
            for b in 1..=255u8 {
                if s.contains(b) != s.contains(b - 1) {
                    boundary[usize::from(b)] = true;
                }
            }
        }
        let mut map = [0u8; 256];
        let mut class = 0u8;
        for b in 1..256usize {
            if boundary[b] {
                class += 1;
            }
            map[b] = class;
        }
        Classes {
            map,
            count: usize::from(class) + 1,
        }
    }

    /// One member of each class (the smallest).
    pub fn representatives(&self) -> Vec<u8> {
        let mut reps = vec![None; self.count];
        for b in 0..=255u8 {
            let c = usize::from(self.map[usize::from(b)]);
            if reps[c].is_none() {
                reps[c] = Some(b);
            }
        }
        reps.into_iter().map(|r| r.unwrap_or(0)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_split_at_set_edges() {
        let sets = [ByteSet::single(b'/'), ByteSet::range(b'a', b'c')];
        let c = Classes::from_sets(sets.iter());
        assert_eq!(c.count, 5);
        assert_ne!(c.map[usize::from(b'/')], c.map[usize::from(b'.')]);
        assert_eq!(c.map[usize::from(b'a')], c.map[usize::from(b'c')]);
        assert_ne!(c.map[usize::from(b'c')], c.map[usize::from(b'd')]);
        assert_eq!(c.representatives().len(), 5);
    }

    #[test]
    fn set_ops() {
        let s = ByteSet::segment_byte();
        assert!(!s.contains(b'/'));
        assert!(s.contains(0) && s.contains(255));
        assert_eq!(s.complement(), ByteSet::single(b'/'));
        assert_eq!(ByteSet::range(3, 2), ByteSet::EMPTY);
        assert_eq!(
            ByteSet::range(b'a', b'b').iter().collect::<Vec<_>>(),
            b"ab".to_vec()
        );
    }
}
