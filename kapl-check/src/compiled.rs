//! Rules compiled to automata: path sets as DFAs, address blocks as
//! canonical 128-bit ranges, port sets as ranges.
//!
//! Input: IR rules. Output: [`CRule`]s, per bound level the unions of its
//! path rules per right (shared by every proof obligation under it), and
//! [`GrantAutomata`], every grant's path automaton.
//!
//! This is the pure, automata side of the prover: `kapl-prove` decides its
//! obligations on these (with Z3 for the rest), and code generation and
//! translation validation consume [`GrantAutomata`] only, so what is proved
//! is what is loaded without the compiler linking the solver.

use crate::ir::{GrantId, Policy, Rights, Rule, RuleKind};
use crate::semantics::cidr_range;
use kapl_automata::Dfa;
use kapl_syntax::ast::NetOp;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The rights mask used for `exec` rules (one pseudo-right).
pub const EXEC_RIGHTS: u8 = 1;

/// A path rule: rights mask (bit i = `Right::ALL[i]`) and its paths
/// (patterns minus `except`).
#[derive(Clone, Debug)]
pub struct PathRule {
    /// Rights mask (bit i = `Right::ALL[i]`; [`EXEC_RIGHTS`] for `exec`).
    pub rights: u8,
    /// The paths.
    pub dfa: Dfa,
}

/// A network rule.
#[derive(Clone, Debug)]
pub struct NetRule {
    /// The operation.
    pub op: NetOp,
    /// Canonical inclusive address ranges.
    pub addrs: Vec<(u128, u128)>,
    /// Inclusive port ranges.
    pub ports: Vec<(u16, u16)>,
}

/// One compiled rule.
#[derive(Clone, Debug)]
pub enum CRule {
    /// An `fs` rule.
    Fs(PathRule),
    /// An `exec` rule.
    Exec(PathRule),
    /// A `net` rule.
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
pub fn compile(kind: &RuleKind, universe: Option<&Dfa>) -> CRule {
    let paths = |patterns: &[crate::ir::PatternRef], except: &[crate::ir::PatternRef]| {
        let mut d = Dfa::from_globs_except(
            patterns.iter().map(|p| &*p.glob),
            except.iter().map(|p| &*p.glob),
        );
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
        // Host names are proved apart (kapl-prove's `names`): a name rule
        // covers no request without a name, which is all the solver sees.
        RuleKind::Net {
            op, addrs, ports, ..
        } => CRule::Net(NetRule {
            op: *op,
            addrs: addrs.iter().map(cidr_range).collect(),
            ports: ports.iter().map(|p| (p.lo, p.hi)).collect(),
        }),
    }
}

/// A list of rules (a bound or a `never` list), compiled, with the union of
/// its path rules per right and for `exec`.
#[derive(Clone, Debug)]
pub struct Level {
    /// The rules, in order.
    pub rules: Vec<CRule>,
    /// Union of the `fs` rules holding right i, for i in 0..4.
    pub fs_union: [Dfa; 4],
    /// Union of the `exec` rules.
    pub exec_union: Dfa,
}

impl Level {
    /// Compiles a list of rules; paths are intersected with `universe` when
    /// given.
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

/// The prover's path automaton of every grant, indexed by grant id: for an
/// `fs` grant its patterns minus its `except`, for an `exec` grant its
/// patterns, `None` for a network grant. The prover builds them once;
/// code generation compiles them into the image and translation validation
/// checks the image against them, so what is proved is what is loaded.
#[derive(Clone, Debug, Default)]
pub struct GrantAutomata {
    paths: Vec<Option<Dfa>>,
}

impl GrantAutomata {
    /// Builds the automata of every grant of `policy` (in parallel).
    pub fn new(policy: &Policy) -> GrantAutomata {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let compiled = par_map(&policy.grants, threads, |g| compile(&g.rule.kind, None));
        GrantAutomata::from_compiled(compiled)
    }

    /// The automata of grants already compiled (one [`CRule`] per grant, in
    /// grant order, compiled without a universe).
    pub fn from_compiled(grants: Vec<CRule>) -> GrantAutomata {
        GrantAutomata {
            paths: grants
                .into_iter()
                .map(|c| match c {
                    CRule::Fs(p) | CRule::Exec(p) => Some(p.dfa),
                    CRule::Net(_) => None,
                })
                .collect(),
        }
    }

    /// The automaton of grant `g` (`None` for a network grant or an id
    /// out of range).
    pub fn get(&self, g: GrantId) -> Option<&Dfa> {
        self.paths.get(g.0 as usize).and_then(Option::as_ref)
    }

    /// Whether these automata were built for `policy` (one per grant).
    pub fn fits(&self, policy: &Policy) -> bool {
        self.paths.len() == policy.grants.len()
    }
}

/// Maps `f` over `items` on `threads` scoped threads, keeping order.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut local = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    local.push((i, f(item)));
                }
                if let Ok(mut r) = results.lock() {
                    r.extend(local);
                }
            });
        }
    });
    let mut all = results.into_inner().unwrap_or_else(|e| e.into_inner());
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}
