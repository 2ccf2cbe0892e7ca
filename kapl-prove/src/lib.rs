//! The prover: every grant stays inside its bounds, or a concrete witness.
//!
//! ```text
//! ir::Policy ─► compiled rules (automata) ─► obligations ─► Z3 ─► replay ─► Diagnostic
//!                         └─► GrantAutomata (reused by codegen)
//! ```
//!
//! Input: a resolved [`Policy`] (and its [`SourceMap`], for help texts).
//! Output: one verdict per obligation and the diagnostics for them.
//!
//! This crate is the only one that links Z3: kapl-check keeps the pure
//! front end and the automata, kapl-codegen reads those, and only the
//! binaries that prove (kaplc, kapl-lsp) depend on this crate.
//!
//! Obligations:
//! - every rule of an intent's bound lies inside its objective's bound;
//! - every grant (plan-wide and per step) lies inside its plan parent's
//!   bound and outside every `never` rule above it (the objective's, and
//!   the intent's when the parent is an intent), after its own `except`.
//!
//! Path questions are decided on automata (`kapl-automata`, compiled by
//! [`kapl_check::compiled`]); Z3 decides the combination of rights, path
//! classes, addresses and ports as small quantifier-free queries with a
//! timeout and a resource limit (see `solver`). Every violation yields a
//! concrete request that is replayed through [`kapl_check::semantics`]; a
//! witness that does not replay is an internal error (`KAPL0405`), never a
//! pass, and an `unknown` from Z3 is an error (`KAPL0404`), never a proof.
//! Obligations run in parallel, one thread per core, each thread with its
//! own Z3 context.
//!
//! [`diff`] compares the authority of two versions of a policy at every
//! level, as sets: the same path automata, and exact interval differences
//! for addresses and ports.

pub mod diff;
mod lint;
mod names;
mod report;
mod solver;

use kapl_automata::Dfa;
use kapl_check::compiled::{self, CRule, Level as CLevel, NetRule, PathRule, par_map};
use kapl_check::ir::{Cidr, GrantId, IntentId, ObjectiveId, Parent, Policy, PortRange, Rule};
use kapl_check::semantics::{self, Request};
use kapl_check::{FrontEnd, GrantAutomata};
use kapl_syntax::ast::Right;
use kapl_syntax::{Diagnostic, SourceMap};
use solver::Answer;

pub use lint::lint;

/// Solver limits for one query.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Wall-clock limit per query, in milliseconds.
    pub timeout_ms: u32,
    /// Z3 resource limit per query (deterministic work units).
    pub rlimit: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            timeout_ms: 10_000,
            rlimit: 50_000_000,
        }
    }
}

/// A restriction of the request universe (used by tests that compare the
/// prover with exhaustive enumeration; `None` fields mean "everything").
#[derive(Clone, Debug, Default)]
pub struct Universe {
    /// Only these paths exist.
    pub paths: Option<Dfa>,
    /// Only addresses in these blocks exist.
    pub addrs: Option<Vec<Cidr>>,
    /// Only these ports exist.
    pub ports: Option<Vec<PortRange>>,
}

/// How to run the prover.
#[derive(Clone, Debug)]
pub struct Options {
    /// Per-query solver limits.
    pub limits: Limits,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// The request universe (everything by default).
    pub universe: Universe,
    /// A monotonic clock in nanoseconds, to time each obligation (the
    /// prover itself reads no clock).
    pub clock: Option<fn() -> u64>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            limits: Limits::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            universe: Universe::default(),
            clock: None,
        }
    }
}

/// What an obligation is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// Rule `rule` of intent `intent`'s bound must lie in its objective's.
    IntentBound {
        /// The intent.
        intent: IntentId,
        /// Index into the intent's `bound`.
        rule: usize,
    },
    /// A grant must lie in its plan parent's bound, outside the `never`s.
    Grant(GrantId),
}

/// A level that holds `never` rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// An objective.
    Objective(ObjectiveId),
    /// An intent.
    Intent(IntentId),
}

/// How a witness breaks the obligation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Breach {
    /// No rule of the containing bound covers it.
    OutsideBound,
    /// A `never` rule covers it.
    Never {
        /// Whose `never` list.
        level: Level,
        /// Index into that list.
        rule: usize,
    },
}

/// A violation with its witness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What is broken.
    pub breach: Breach,
    /// A request the subject allows that shows it (replayed).
    pub witness: Request,
}

/// The result of one obligation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Holds for every request.
    Proved,
    /// Broken; `first` is what is reported (a bound breach when there is
    /// one), `also` a second breach of the other sort, if any.
    Violated {
        /// The main breach.
        first: Finding,
        /// A `never` reached as well (only with an `OutsideBound` first).
        also: Option<Finding>,
    },
    /// Z3 gave up; the obligation is not proved.
    Unknown(String),
    /// The prover contradicted the reference semantics (a bug).
    Internal(String),
}

/// One obligation's verdict.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// What was checked.
    pub subject: Subject,
    /// The verdict.
    pub verdict: Verdict,
    /// Time spent, when a clock was given.
    pub nanos: Option<u64>,
}

/// Everything the prover found.
#[derive(Clone, Debug)]
pub struct Report {
    /// One outcome per obligation, in subject order.
    pub outcomes: Vec<Outcome>,
    /// Errors and warnings, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
    /// The per-grant path automata the obligations were decided on, for
    /// code generation (`None` when the path universe was restricted: those
    /// automata are not the grants' languages).
    pub automata: Option<GrantAutomata>,
}

/// Proves every obligation of `policy` with default options.
pub fn prove(policy: &Policy, sources: &SourceMap) -> Vec<Diagnostic> {
    prove_with(policy, sources, &Options::default()).diagnostics
}

/// Runs the prover on a front end's policy (when the front end produced
/// one, i.e. found no errors) and adds its findings to the diagnostics.
pub fn prove_front_end(fe: &mut FrontEnd) {
    prove_front_end_with(fe, &Options::default());
}

/// [`prove_front_end`] with options.
pub fn prove_front_end_with(fe: &mut FrontEnd, opts: &Options) {
    if let Some(policy) = &fe.policy {
        let report = prove_with(policy, &fe.sources, opts);
        fe.diagnostics.extend(report.diagnostics);
        kapl_syntax::diag::sort(&mut fe.diagnostics);
        fe.automata = report.automata;
    }
}

/// The compiled policy shared by all workers.
pub(crate) struct Compiled {
    pub objective_bound: Vec<CLevel>,
    pub objective_never: Vec<CLevel>,
    pub intent_bound: Vec<CLevel>,
    pub intent_never: Vec<CLevel>,
    pub grants: Vec<CRule>,
}

impl Compiled {
    pub fn new(policy: &Policy, universe: Option<&Dfa>, threads: usize) -> Compiled {
        let obj: Vec<(CLevel, CLevel)> = par_map(&policy.objectives, threads, |o| {
            (
                CLevel::new(&o.bound, universe),
                CLevel::new(&o.never, universe),
            )
        });
        let int: Vec<(CLevel, CLevel)> = par_map(&policy.intents, threads, |i| {
            (
                CLevel::new(&i.bound, universe),
                CLevel::new(&i.never, universe),
            )
        });
        let grants = par_map(&policy.grants, threads, |g| {
            compiled::compile(&g.rule.kind, universe)
        });
        let (objective_bound, objective_never) = obj.into_iter().unzip();
        let (intent_bound, intent_never) = int.into_iter().unzip();
        Compiled {
            objective_bound,
            objective_never,
            intent_bound,
            intent_never,
            grants,
        }
    }
}

/// The right with index `i` in `Right::ALL`.
pub(crate) fn right_of_index(i: u8) -> Right {
    Right::ALL
        .get(usize::from(i))
        .copied()
        .unwrap_or(Right::Read)
}

/// Proves every obligation of `policy`.
pub fn prove_with(policy: &Policy, sources: &SourceMap, opts: &Options) -> Report {
    let compiled = Compiled::new(policy, opts.universe.paths.as_ref(), opts.threads);
    let mut subjects: Vec<Subject> = Vec::new();
    for (i, intent) in policy.intents.iter().enumerate() {
        for rule in 0..intent.bound.len() {
            subjects.push(Subject::IntentBound {
                intent: IntentId(u32::try_from(i).unwrap_or(u32::MAX)),
                rule,
            });
        }
    }
    subjects.extend(policy.grants.iter().map(|g| Subject::Grant(g.id)));
    let universe_net = universe_net(&opts.universe);
    let outcomes = par_map(&subjects, opts.threads, |&subject| {
        let start = opts.clock.map(|c| c());
        let run = || prove_one(policy, &compiled, subject, opts, universe_net.as_ref());
        let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
            .unwrap_or_else(|_| Verdict::Internal("the solver failed unexpectedly".to_string()));
        let nanos = opts.clock.zip(start).map(|(c, s)| c().saturating_sub(s));
        Outcome {
            subject,
            verdict,
            nanos,
        }
    });
    let mut diagnostics: Vec<Diagnostic> = outcomes
        .iter()
        .filter_map(|o| report::diagnostic(policy, sources, &compiled, o))
        .collect();
    let failed: std::collections::HashSet<GrantId> = outcomes
        .iter()
        .filter(|o| o.verdict != Verdict::Proved)
        .filter_map(|o| match o.subject {
            Subject::Grant(g) => Some(g),
            Subject::IntentBound { .. } => None,
        })
        .collect();
    diagnostics.extend(lint::lint_compiled(policy, &compiled, &failed));
    diagnostics.extend(names::check(policy, sources));
    kapl_syntax::diag::sort(&mut diagnostics);
    let automata = opts
        .universe
        .paths
        .is_none()
        .then(|| GrantAutomata::from_compiled(compiled.grants));
    Report {
        outcomes,
        diagnostics,
        automata,
    }
}

fn universe_net(u: &Universe) -> Option<NetRule> {
    if u.addrs.is_none() && u.ports.is_none() {
        return None;
    }
    Some(NetRule {
        op: kapl_syntax::ast::NetOp::Connect,
        addrs: match &u.addrs {
            Some(a) => a.iter().map(semantics::cidr_range).collect(),
            None => vec![(0, u128::MAX)],
        },
        ports: match &u.ports {
            Some(p) => p.iter().map(|r| (r.lo, r.hi)).collect(),
            None => vec![(0, u16::MAX)],
        },
    })
}

/// The containing bound and the `never` levels above a subject.
struct Container<'a> {
    bound: &'a CLevel,
    bound_rules: &'a [Rule],
    nevers: Vec<(Level, &'a CLevel)>,
}

fn container<'a>(
    policy: &'a Policy,
    c: &'a Compiled,
    subject: Subject,
) -> Option<(&'a CRule, &'a kapl_check::ir::RuleKind, Container<'a>)> {
    match subject {
        Subject::IntentBound { intent, rule } => {
            let i = policy.intents.get(intent.0 as usize)?;
            let o = policy.objectives.get(i.objective.0 as usize)?;
            let crule = c.intent_bound.get(intent.0 as usize)?.rules.get(rule)?;
            let kind = &i.bound.get(rule)?.kind;
            Some((
                crule,
                kind,
                Container {
                    bound: c.objective_bound.get(i.objective.0 as usize)?,
                    bound_rules: &o.bound,
                    nevers: Vec::new(),
                },
            ))
        }
        Subject::Grant(g) => {
            let grant = policy.grants.get(g.0 as usize)?;
            let crule = c.grants.get(g.0 as usize)?;
            let plan = policy.plans.get(grant.plan.0 as usize)?;
            let cont = match plan.parent {
                Parent::Objective(o) => Container {
                    bound: c.objective_bound.get(o.0 as usize)?,
                    bound_rules: &policy.objectives.get(o.0 as usize)?.bound,
                    nevers: vec![(Level::Objective(o), c.objective_never.get(o.0 as usize)?)],
                },
                Parent::Intent(i) => {
                    let intent = policy.intents.get(i.0 as usize)?;
                    Container {
                        bound: c.intent_bound.get(i.0 as usize)?,
                        bound_rules: &intent.bound,
                        nevers: vec![
                            (
                                Level::Objective(intent.objective),
                                c.objective_never.get(intent.objective.0 as usize)?,
                            ),
                            (Level::Intent(i), c.intent_never.get(i.0 as usize)?),
                        ],
                    }
                }
            };
            Some((crule, &grant.rule.kind, cont))
        }
    }
}

/// Collects the path rules of the kind of `exec` from a level, with their
/// indices, keeping those whose rights overlap `rights`.
fn path_rules(level: &CLevel, exec: bool, rights: u8) -> Vec<(usize, &PathRule)> {
    level
        .rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| if exec { r.exec() } else { r.fs() }.map(|p| (i, p)))
        .filter(|(_, p)| p.rights & rights != 0)
        .collect()
}

fn prove_one(
    policy: &Policy,
    c: &Compiled,
    subject: Subject,
    opts: &Options,
    universe_net: Option<&NetRule>,
) -> Verdict {
    let Some((crule, kind, cont)) = container(policy, c, subject) else {
        return Verdict::Internal("the obligation refers to a missing item".to_string());
    };
    let limits = &opts.limits;
    let (first, never) = match crule {
        CRule::Fs(p) | CRule::Exec(p) => {
            let exec = matches!(crule, CRule::Exec(_));
            if p.dfa.is_empty() {
                return Verdict::Proved;
            }
            let make = |ri: u8, path: Vec<u8>| {
                if exec {
                    Request::Exec { path }
                } else {
                    Request::Fs {
                        right: right_of_index(ri),
                        path,
                    }
                }
            };
            let bound: Vec<&PathRule> = path_rules(cont.bound, exec, p.rights)
                .into_iter()
                .map(|(_, r)| r)
                .collect();
            let mut refs: Vec<(Level, usize)> = Vec::new();
            let mut nevers: Vec<&PathRule> = Vec::new();
            for (level, lv) in &cont.nevers {
                for (j, r) in path_rules(lv, exec, p.rights) {
                    refs.push((*level, j));
                    nevers.push(r);
                }
            }
            let answers = solver::path_obligation(
                limits,
                p.rights,
                &p.dfa,
                &bound,
                &|m| cont.bound.union_for(exec, m),
                &nevers,
            );
            let first = match answers.outside {
                Answer::Proved => None,
                Answer::Found((ri, path)) => Some(Finding {
                    breach: Breach::OutsideBound,
                    witness: make(ri, path),
                }),
                Answer::Unknown(why) => return Verdict::Unknown(why),
            };
            let never = match answers.never {
                Answer::Proved => None,
                Answer::Found((j, ri, path)) => refs.get(j).map(|&(level, rule)| Finding {
                    breach: Breach::Never { level, rule },
                    witness: make(ri, path),
                }),
                Answer::Unknown(why) if first.is_none() => return Verdict::Unknown(why),
                Answer::Unknown(_) => None,
            };
            (first, never)
        }
        CRule::Net(n) => {
            let bound: Vec<&NetRule> = cont.bound.rules.iter().filter_map(CRule::net).collect();
            let nevers: Vec<&NetRule> = cont
                .nevers
                .iter()
                .flat_map(|(_, lv)| lv.rules.iter().filter_map(CRule::net))
                .collect();
            let answers = solver::net_obligation(limits, n, &bound, &nevers, universe_net);
            let first = match answers.outside {
                Answer::Proved => None,
                Answer::Found(req) => Some(Finding {
                    breach: Breach::OutsideBound,
                    witness: req,
                }),
                Answer::Unknown(why) => return Verdict::Unknown(why),
            };
            let never = match answers.never {
                Answer::Proved => None,
                Answer::Found(req) => {
                    // Name the first never rule (objective's first) that the
                    // witness reaches.
                    let hit = cont.nevers.iter().find_map(|(level, _)| {
                        never_rules_of(policy, *level)
                            .iter()
                            .position(|r| semantics::rule_covers(&r.kind, &req))
                            .map(|rule| Breach::Never {
                                level: *level,
                                rule,
                            })
                    });
                    Some(Finding {
                        breach: hit.unwrap_or(Breach::Never {
                            level: cont
                                .nevers
                                .first()
                                .map_or(Level::Objective(ObjectiveId(0)), |(l, _)| *l),
                            rule: usize::MAX,
                        }),
                        witness: req,
                    })
                }
                Answer::Unknown(why) if first.is_none() => return Verdict::Unknown(why),
                Answer::Unknown(_) => None,
            };
            (first, never)
        }
    };
    let verdict = match (first, never) {
        (None, None) => Verdict::Proved,
        (Some(f), also) => Verdict::Violated { first: f, also },
        (None, Some(n)) => Verdict::Violated {
            first: n,
            also: None,
        },
    };
    replay(policy, subject, kind, cont.bound_rules, opts, verdict)
}

fn never_rules_of(policy: &Policy, level: Level) -> &[Rule] {
    match level {
        Level::Objective(o) => policy
            .objectives
            .get(o.0 as usize)
            .map_or(&[], |o| o.never.as_slice()),
        Level::Intent(i) => policy
            .intents
            .get(i.0 as usize)
            .map_or(&[], |i| i.never.as_slice()),
    }
}

/// Checks every witness against the reference semantics.
fn replay(
    policy: &Policy,
    subject: Subject,
    kind: &kapl_check::ir::RuleKind,
    bound: &[Rule],
    opts: &Options,
    verdict: Verdict,
) -> Verdict {
    let Verdict::Violated { first, also } = &verdict else {
        return verdict;
    };
    for f in std::iter::once(first).chain(also.iter()) {
        let in_universe = match &f.witness {
            Request::Fs { path, .. } | Request::Exec { path } => {
                opts.universe.paths.as_ref().is_none_or(|u| u.accepts(path))
            }
            Request::Net { addr, port, .. } => {
                opts.universe
                    .addrs
                    .as_ref()
                    .is_none_or(|a| a.iter().any(|c| semantics::cidr_contains(c, *addr)))
                    && opts
                        .universe
                        .ports
                        .as_ref()
                        .is_none_or(|p| p.iter().any(|r| semantics::port_in(r, *port)))
            }
        };
        let broken = match f.breach {
            Breach::OutsideBound => !semantics::rules_cover(bound, &f.witness),
            Breach::Never { level, rule } => never_rules_of(policy, level)
                .get(rule)
                .is_some_and(|r| semantics::rule_covers(&r.kind, &f.witness)),
        };
        if !(in_universe && semantics::rule_covers(kind, &f.witness) && broken) {
            return Verdict::Internal(format!(
                "the witness `{}` for {subject:?} does not replay through the reference semantics",
                f.witness
            ));
        }
    }
    verdict
}
