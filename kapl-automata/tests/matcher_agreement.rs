//! Differential test: a glob's automaton accepts exactly the paths the
//! reference matcher `Glob::matches` accepts, on every path of a small
//! universe (depth ≤ 3, segments of 1–2 bytes over `a`, `b`, `.`, plus
//! non-normalized paths, which neither may accept), for thousands of random
//! globs; and products agree with the Boolean combination of the matcher.

use kapl_automata::Dfa;
use kapl_syntax::glob::{Atom, Branch, Glob, Segment};
use kapl_testkit::{Rng, paths_below_root, segments};

const ALPHA: &[u8] = b"ab.";

fn paths() -> Vec<Vec<u8>> {
    // Keep `.` and `..` segments too, and the odd paths below: those are
    // not normalized and must be rejected by both sides.
    let mut all = vec![
        b"/".to_vec(),
        Vec::new(),
        b"//".to_vec(),
        b"/a/".to_vec(),
        b"a".to_vec(),
    ];
    all.extend(paths_below_root(&segments(ALPHA), 3));
    all
}

fn glob(rng: &mut Rng) -> Glob {
    let mut branches = Vec::new();
    for _ in 0..1 + rng.below(2) {
        let mut segments = Vec::new();
        for _ in 0..rng.below(4) {
            if rng.below(4) == 0 {
                segments.push(Segment::AnyDepth);
                continue;
            }
            let atoms = (0..1 + rng.below(3))
                .map(|_| match rng.below(6) {
                    0 | 1 => {
                        Atom::Literal((0..1 + rng.below(2)).map(|_| ALPHA[rng.below(3)]).collect())
                    }
                    2 => Atom::Star,
                    3 => Atom::AnyByte,
                    4 => Atom::Class {
                        negated: rng.below(2) == 0,
                        ranges: vec![[(b'a', b'a'), (b'a', b'b'), (b'.', b'.')][rng.below(3)]],
                    },
                    _ => Atom::Literal(vec![b'.']),
                })
                .collect();
            segments.push(Segment::Atoms(atoms));
        }
        branches.push(Branch { segments });
    }
    Glob { branches }
}

#[test]
fn automata_agree_with_the_reference_matcher() {
    let universe = paths();
    let mut accepted = 0usize;
    for seed in 1..=3000u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
        let g = glob(&mut rng);
        let h = glob(&mut rng);
        let (dg, dh) = (Dfa::from_glob(&g), Dfa::from_glob(&h));
        let (union, inter, diff) = (dg.union(&dh), dg.intersection(&dh), dg.difference(&dh));
        for p in &universe {
            let (mg, mh) = (g.matches(p), h.matches(p));
            accepted += usize::from(mg);
            assert_eq!(
                dg.accepts(p),
                mg,
                "seed {seed}: {:?} on {:?}\n{g:?}",
                String::from_utf8_lossy(p),
                p
            );
            assert_eq!(union.accepts(p), mg || mh, "seed {seed}: union");
            assert_eq!(inter.accepts(p), mg && mh, "seed {seed}: intersection");
            assert_eq!(diff.accepts(p), mg && !mh, "seed {seed}: difference");
        }
        // Witnesses are members, and emptiness is exact on the universe.
        if let Some(w) = diff.shortest_member() {
            assert!(
                g.matches(&w) && !h.matches(&w),
                "seed {seed}: witness {:?}",
                String::from_utf8_lossy(&w)
            );
        }
        // One subset construction for a grant's language gives the same
        // canonical automaton as the difference of the two.
        assert_eq!(
            Dfa::from_globs_except([&g], [&h]),
            diff,
            "seed {seed}: from_globs_except"
        );
        assert_eq!(dg.is_subset_of(&dh), diff.is_empty(), "seed {seed}");
        assert_eq!(dg.equivalent(&dh), dg == dh, "seed {seed}: canonical form");
    }
    assert!(
        accepted > 10_000,
        "too few matches to be meaningful: {accepted}"
    );
}
