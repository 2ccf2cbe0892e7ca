//! Path sets for the authority diff: a difference automaton described as
//! globs where the policy's own globs describe it exactly, with examples.
//!
//! Input: the difference DFA (what one side allows and the other does not,
//! for one right or for `exec`), the patterns of the rules that allow it
//! and the patterns that were subtracted. Output: a [`PathSet`].
//!
//! - A small finite set (at most [`LISTED`] paths) is listed in full, in
//!   byte order.
//! - Otherwise each allowing pattern that meets the set gives one piece,
//!   the first of these that is exactly the part of the set inside it: the
//!   pattern itself; the pattern `except` the subtracted patterns that
//!   meet it; the pattern's paths `matching` the `except` patterns of the
//!   subtracted rules (what an `except` kept out and no longer does, or
//!   now does); those paths `except` the subtracted patterns. The pieces' union is the set when every piece is exact
//!   (`exact`); else a piece names the glob the paths lie inside.
//! - Every set comes with up to [`EXAMPLES`] shortest members.

use kapl_automata::Dfa;
use kapl_check::ir::PatternRef;
use std::cell::OnceCell;

/// Sets of at most this many paths are listed path by path.
pub const LISTED: usize = 8;
/// Examples per set.
pub const EXAMPLES: usize = 3;

/// A glob, possibly with exceptions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// The glob (or a literal path).
    pub glob: String,
    /// Globs carved out of it.
    pub except: Vec<String>,
    /// When not empty: only its paths that match one of these.
    pub matching: Vec<String>,
}

/// A set of paths, described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathSet {
    /// Pieces whose union is the set when `exact`; otherwise the globs the
    /// set lies inside.
    pub pieces: Vec<Piece>,
    /// Whether the pieces describe the set exactly.
    pub exact: bool,
    /// Whether the pieces are every member, listed.
    pub listed: bool,
    /// Up to [`EXAMPLES`] shortest members.
    pub examples: Vec<Vec<u8>>,
}

fn text(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

/// Distinct patterns by text, each with its automaton.
fn automata<'a>(patterns: impl IntoIterator<Item = &'a PatternRef>) -> Vec<(&'a str, Dfa)> {
    let mut out: Vec<(&str, Dfa)> = Vec::new();
    for p in patterns {
        if !out.iter().any(|(t, _)| *t == &*p.source) {
            out.push((&p.source, Dfa::from_glob(&p.glob)));
        }
    }
    out
}

/// Describes the non-empty set `set`, which lies inside the union of
/// `allowing`; `subtracted` are the patterns taken away from it and
/// `kept_out` the `except` patterns of the rules it was subtracted with.
pub fn describe<'a>(
    set: &Dfa,
    allowing: impl IntoIterator<Item = &'a PatternRef>,
    subtracted: impl IntoIterator<Item = &'a PatternRef>,
    kept_out: impl IntoIterator<Item = &'a PatternRef>,
) -> PathSet {
    let mut members = Vec::new();
    let mut rest = set.clone();
    while members.len() < LISTED {
        let Some(m) = rest.shortest_member() else {
            break;
        };
        rest = rest.difference(&Dfa::from_paths([&m]));
        members.push(m);
    }
    let examples: Vec<Vec<u8>> = members.iter().take(EXAMPLES).cloned().collect();
    if rest.is_empty() {
        members.sort();
        return PathSet {
            pieces: members
                .iter()
                .map(|m| Piece {
                    glob: text(m),
                    except: Vec::new(),
                    matching: Vec::new(),
                })
                .collect(),
            exact: true,
            listed: true,
            examples,
        };
    }
    // Their automata are built only when a piece needs them (most pieces
    // are whole globs).
    let subtracted: Vec<&PatternRef> = subtracted.into_iter().collect();
    let kept_out: Vec<&PatternRef> = kept_out.into_iter().collect();
    let (subtracted_dfas, kept_out_dfas) = (OnceCell::new(), OnceCell::new());
    // The texts and union of the patterns of `list` that pass `keep`.
    let pick = |list: &[(&'a str, Dfa)], keep: &dyn Fn(&Dfa) -> bool| -> (Vec<String>, Dfa) {
        let hit: Vec<&(&str, Dfa)> = list.iter().filter(|(_, d)| keep(d)).collect();
        (
            hit.iter().map(|(t, _)| t.to_string()).collect(),
            Dfa::union_all(hit.iter().map(|(_, d)| d)),
        )
    };
    let mut pieces = Vec::new();
    let mut exact = true;
    for (glob, dfa) in automata(allowing) {
        let inside = dfa.intersection(set);
        if inside.is_empty() {
            continue;
        }
        let mut piece = Piece {
            glob: glob.to_string(),
            except: Vec::new(),
            matching: Vec::new(),
        };
        if !inside.equivalent(&dfa) {
            // Only a hole that takes nothing of the set can be carved out;
            // only a pattern that adds nothing outside it can select.
            let subtracted = subtracted_dfas.get_or_init(|| automata(subtracted.iter().copied()));
            let kept_out = kept_out_dfas.get_or_init(|| automata(kept_out.iter().copied()));
            let (holes, h) = pick(subtracted, &|d| {
                d.intersects(&dfa) && !d.intersects(&inside)
            });
            let (only, o) = pick(kept_out, &|d| {
                d.intersects(&inside) && d.intersection(&dfa).is_subset_of(&inside)
            });
            let (some, k) = pick(kept_out, &|d| d.intersects(&inside));
            if dfa.difference(&h).equivalent(&inside) {
                piece.except = holes;
            } else if !only.is_empty() && dfa.intersection(&o).equivalent(&inside) {
                piece.matching = only;
            } else if !some.is_empty() && dfa.intersection(&k).difference(&h).equivalent(&inside) {
                piece.matching = some;
                piece.except = holes;
            } else {
                exact = false;
            }
        }
        pieces.push(piece);
    }
    PathSet {
        pieces,
        exact,
        listed: false,
        examples,
    }
}
