//! Rules compiled for the prover: path sets as automata, address blocks as
//! canonical 128-bit ranges, port sets as ranges.
//!
//! Input: IR rules. Output: [`CRule`]s, and per bound level the unions of
//! its path rules per right (shared by every obligation under it).

use crate::ir::{Rights, Rule, RuleKind};
use crate::semantics::cidr_range;
use kapl_automata::Dfa;
use kapl_syntax::ast::NetOp;

/// The rights mask used for `exec` rules (one pseudo-right).
pub(crate) const EXEC_RIGHTS: u8 = 1;

/// A path rule: rights mask (bit i = `Right::ALL[i]`) and its paths
/// (patterns minus `except`).
#[derive(Clone, Debug)]
pub(crate) struct PathRule {
    pub rights: u8,
    pub dfa: Dfa,
}

/// A network rule.
#[derive(Clone, Debug)]
pub(crate) struct NetRule {
    pub op: NetOp,
    /// Canonical inclusive address ranges.
    pub addrs: Vec<(u128, u128)>,
    /// Inclusive port ranges.
    pub ports: Vec<(u16, u16)>,
}

/// One compiled rule.
#[derive(Clone, Debug)]
pub(crate) enum CRule {
    Fs(PathRule),
    Exec(PathRule),
    Net(NetRule),
}

impl CRule {
    /// The path part of an `fs` rule.
    pub fn fs(&self) -> Option<&PathRule> {
        match self {
            CRule::Fs(p) => Some(p),
            _ => None,
        }
    }
    /// The path part of an `exec` rule.
    pub fn exec(&self) -> Option<&PathRule> {
        match self {
            CRule::Exec(p) => Some(p),
            _ => None,
        }
    }
    /// The network part.
    pub fn net(&self) -> Option<&NetRule> {
        match self {
            CRule::Net(n) => Some(n),
            _ => None,
        }
    }
}

fn rights_mask(r: Rights) -> u8 {
    r.0 & 0x0f
}

/// Compiles one rule; paths are intersected with `universe` when given.
pub(crate) fn compile(kind: &RuleKind, universe: Option<&Dfa>) -> CRule {
    let paths = |patterns: &[crate::ir::PatternRef], except: &[crate::ir::PatternRef]| {
        let mut d = Dfa::from_globs(patterns.iter().map(|p| &*p.glob));
        if !except.is_empty() {
            d = d.difference(&Dfa::from_globs(except.iter().map(|p| &*p.glob)));
        }
        if let Some(u) = universe {
            d = d.intersection(u);
        }
        d
    };
    match kind {
        RuleKind::Fs {
            rights,
            patterns,
            except,
        } => CRule::Fs(PathRule {
            rights: rights_mask(*rights),
            dfa: paths(patterns, except),
        }),
        RuleKind::Exec { patterns } => CRule::Exec(PathRule {
            rights: EXEC_RIGHTS,
            dfa: paths(patterns, &[]),
        }),
        RuleKind::Net { op, addrs, ports } => CRule::Net(NetRule {
            op: *op,
            addrs: addrs.iter().map(cidr_range).collect(),
            ports: ports.iter().map(|p| (p.lo, p.hi)).collect(),
        }),
    }
}

/// A list of rules (a bound or a `never` list), compiled, with the union of
/// its path rules per right and for `exec`.
#[derive(Clone, Debug)]
pub(crate) struct Level {
    pub rules: Vec<CRule>,
    /// Union of the `fs` rules holding right i, for i in 0..4.
    pub fs_union: [Dfa; 4],
    /// Union of the `exec` rules.
    pub exec_union: Dfa,
}

impl Level {
    pub fn new(rules: &[Rule], universe: Option<&Dfa>) -> Level {
        let rules: Vec<CRule> = rules.iter().map(|r| compile(&r.kind, universe)).collect();
        let fs_union = [0u8, 1, 2, 3].map(|i| {
            Dfa::union_all(
                rules
                    .iter()
                    .filter_map(CRule::fs)
                    .filter(|p| p.rights & (1 << i) != 0)
                    .map(|p| &p.dfa),
            )
        });
        let exec_union = Dfa::union_all(rules.iter().filter_map(CRule::exec).map(|p| &p.dfa));
        Level {
            rules,
            fs_union,
            exec_union,
        }
    }

    /// The union of this level's path rules for a one-right mask (`fs`), or
    /// of its `exec` rules.
    pub fn union_for(&self, exec: bool, mask: u8) -> Dfa {
        if exec {
            return self.exec_union.clone();
        }
        let i = (0..4).find(|i| mask & (1 << i) != 0).unwrap_or(0);
        self.fs_union[i].clone()
    }
}
