//! Differential test: the prover against exhaustive enumeration through the
//! reference semantics, on random small policies over a tiny universe.
//!
//! Universe: normalized paths of depth ≤ 3 whose segments are 1–2 bytes
//! over `{a, b, .}` (1,111 paths), the addresses of 10.0.0.0/28 and
//! 2001:db8::/124, ports {22, 80, 443, 8080}, every right, both operations.
//! The prover runs restricted to the same universe, so its verdict must be
//! exactly the enumeration's, and every witness must be in the enumerated
//! violation set. Any disagreement fails with the seed and the policy.

use kapl_automata::Dfa;
use kapl_check::ir::*;
use kapl_check::semantics::{Proto, Request, rule_covers};
use kapl_prove::{Breach, Options, Subject, Universe, Verdict, prove_with};
use kapl_syntax::ast::{NetOp, Right};
use kapl_syntax::glob::{Atom, Branch, Glob, Segment};
use kapl_syntax::{FileId, SourceMap, Span};
use kapl_testkit::{Rng, paths_below_root, segments};
use std::net::IpAddr;

const ALPHA: &[u8] = b"ab.";

fn universe_paths() -> Vec<Vec<u8>> {
    let mut segs = segments(ALPHA);
    segs.retain(|s| s != b"." && s != b"..");
    let mut all = vec![b"/".to_vec()];
    all.extend(paths_below_root(&segs, 3));
    all
}

fn cidr(addr: &str, prefix: u8) -> Cidr {
    Cidr {
        addr: addr.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
        prefix,
    }
}

const PORTS: [u16; 4] = [22, 80, 443, 8080];

fn universe_addrs() -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = (0..16u8).map(|i| IpAddr::from([10, 0, 0, i])).collect();
    v.extend((0..16u16).map(|i| IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, i])));
    v
}

fn all_requests() -> Vec<Request> {
    let mut out = Vec::new();
    for p in universe_paths() {
        for r in Right::ALL {
            out.push(Request::Fs {
                right: r,
                path: p.clone(),
            });
        }
        out.push(Request::Exec { path: p });
    }
    for a in universe_addrs() {
        for port in PORTS {
            for op in [NetOp::Connect, NetOp::Bind] {
                out.push(Request::Net {
                    op,
                    addr: a,
                    port,
                    proto: Proto::Tcp,
                });
            }
        }
    }
    out
}

fn sp(n: &mut usize) -> Span {
    *n += 1;
    Span::new(FileId(0), *n, *n + 1)
}

fn gen_glob(rng: &mut Rng, broad: bool) -> Glob {
    let mut branches = Vec::new();
    for _ in 0..1 + rng.below(2) {
        if rng.chance(3) {
            branches.push(Branch {
                segments: Vec::new(),
            });
            continue;
        }
        let mut segments = Vec::new();
        for _ in 0..1 + rng.below(3) {
            if rng.chance(if broad { 45 } else { 20 }) {
                segments.push(Segment::AnyDepth);
                continue;
            }
            let mut atoms = Vec::new();
            for _ in 0..1 + rng.below(2) {
                atoms.push(match rng.below(6) {
                    0 | 1 => {
                        Atom::Literal((0..1 + rng.below(2)).map(|_| ALPHA[rng.below(3)]).collect())
                    }
                    2 => Atom::Star,
                    3 => Atom::AnyByte,
                    4 => Atom::Class {
                        negated: rng.chance(40),
                        ranges: vec![[(b'a', b'a'), (b'a', b'b'), (b'.', b'.')][rng.below(3)]],
                    },
                    _ => Atom::Literal(vec![ALPHA[rng.below(3)]]),
                });
            }
            segments.push(Segment::Atoms(atoms));
        }
        branches.push(Branch { segments });
    }
    Glob { branches }
}

fn pats(rng: &mut Rng, n: &mut usize, count: usize, broad: bool) -> Vec<PatternRef> {
    (0..count)
        .map(|_| PatternRef {
            source: "generated".into(),
            glob: gen_glob(rng, broad).into(),
            span: sp(n),
        })
        .collect()
}

fn gen_rule(rng: &mut Rng, n: &mut usize, broad: bool) -> Rule {
    let kind = match rng.below(5) {
        0 | 1 => {
            let mut rights = Rights(0);
            while rights.0 == 0 {
                rights = Rights((rng.next_u64() % 16) as u8);
            }
            let c = 1 + rng.below(2);
            let e = if rng.chance(35) { 1 } else { 0 };
            RuleKind::Fs {
                rights,
                patterns: pats(rng, n, c, broad),
                except: pats(rng, n, e, false),
            }
        }
        2 => {
            let c = 1 + rng.below(2);
            RuleKind::Exec {
                patterns: pats(rng, n, c, broad),
            }
        }
        _ => {
            let mut addrs = Vec::new();
            for _ in 0..1 + rng.below(2) {
                addrs.push(match rng.below(6) {
                    0 => cidr("0.0.0.0", 0),
                    1 => cidr("::", 0),
                    2 => cidr(
                        &format!("10.0.0.{}", rng.below(16)),
                        28 + rng.below(5) as u8,
                    ),
                    3 => cidr(
                        &format!("2001:db8::{:x}", rng.below(16)),
                        124 + rng.below(5) as u8,
                    ),
                    4 => cidr("10.0.0.0", 8),
                    _ => cidr("::ffff:0:0", 96),
                });
            }
            // Mask host bits as the IR promises.
            for a in &mut addrs {
                let (lo, _) = kapl_check::semantics::cidr_range(a);
                let canon = kapl_check::semantics::addr_of_canonical(lo);
                if let (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) =
                    (a.addr, canon)
                {
                    a.addr = canon;
                }
            }
            let mut ports = Vec::new();
            for _ in 0..1 + rng.below(2) {
                ports.push(match rng.below(6) {
                    0 => PortRange { lo: 0, hi: 65535 },
                    1 => PortRange { lo: 80, hi: 8080 },
                    2 => PortRange { lo: 0, hi: 100 },
                    _ => {
                        let p = PORTS[rng.below(4)];
                        PortRange { lo: p, hi: p }
                    }
                });
            }
            RuleKind::Net {
                names: Vec::new(),
                op: if rng.chance(70) {
                    NetOp::Connect
                } else {
                    NetOp::Bind
                },
                addrs,
                ports,
            }
        }
    };
    Rule {
        kind,
        span: sp(n),
        via: Vec::new(),
    }
}

fn gen_rules(rng: &mut Rng, n: &mut usize, lo: usize, hi: usize, broad: bool) -> Vec<Rule> {
    (0..lo + rng.below(hi - lo + 1))
        .map(|_| gen_rule(rng, n, broad))
        .collect()
}

fn gen_policy(rng: &mut Rng) -> Policy {
    let mut n = 0;
    let mut p = Policy::default();
    p.objectives.push(Objective {
        name: "o".into(),
        name_span: sp(&mut n),
        span: sp(&mut n),
        about: None,
        bound: gen_rules(rng, &mut n, 2, 5, true),
        never: gen_rules(rng, &mut n, 0, 2, false),
    });
    let parent = if rng.chance(60) {
        p.intents.push(Intent {
            name: "i".into(),
            name_span: sp(&mut n),
            span: sp(&mut n),
            objective: ObjectiveId(0),
            about: None,
            bound: gen_rules(rng, &mut n, 1, 4, true),
            never: gen_rules(rng, &mut n, 0, 1, false),
        });
        Parent::Intent(IntentId(0))
    } else {
        Parent::Objective(ObjectiveId(0))
    };
    let mut plan = Plan {
        name: "p".into(),
        name_span: sp(&mut n),
        span: sp(&mut n),
        parent,
        about: None,
        grants: Vec::new(),
        steps: vec![Step {
            name: "s".into(),
            name_span: sp(&mut n),
            span: sp(&mut n),
            after: Vec::new(),
            about: None,
            grants: Vec::new(),
        }],
    };
    for i in 0..1 + rng.below(4) {
        let id = GrantId(i as u32);
        let step = if rng.chance(70) {
            Some(StepId(0))
        } else {
            None
        };
        match step {
            Some(_) => plan.steps[0].grants.push(id),
            None => plan.grants.push(id),
        }
        // Some grants copy a rule of the bound they live in (narrowed by an
        // `except` at times), so proved obligations are common too.
        let parent_bound = match parent {
            Parent::Intent(_) => &p.intents[0].bound,
            Parent::Objective(_) => &p.objectives[0].bound,
        };
        let rule = if rng.chance(40) {
            let mut r = parent_bound[rng.below(parent_bound.len())].clone();
            if let RuleKind::Fs { except, .. } = &mut r.kind
                && rng.chance(50)
            {
                except.extend(pats(rng, &mut n, 1, false));
            }
            r
        } else {
            gen_rule(rng, &mut n, false)
        };
        p.grants.push(Grant {
            id,
            plan: PlanId(0),
            step,
            site: rule.span,
            rule,
        });
    }
    p.plans.push(plan);
    p
}

/// Which requests each rule covers, computed once per policy.
struct Cover<'a> {
    reqs: &'a [Request],
    memo: std::collections::HashMap<*const RuleKind, Vec<bool>>,
}

impl Cover<'_> {
    fn of(&mut self, k: &RuleKind) -> &Vec<bool> {
        let reqs = self.reqs;
        self.memo
            .entry(k as *const RuleKind)
            .or_insert_with(|| reqs.iter().map(|r| rule_covers(k, r)).collect())
    }
}

/// Exhaustive answer for one obligation: (outside-bound set, never set).
fn brute(p: &Policy, s: Subject, cover: &mut Cover<'_>) -> (Vec<usize>, Vec<usize>) {
    let (kind, bound, nevers): (&RuleKind, &[Rule], Vec<&Rule>) = match s {
        Subject::IntentBound { intent, rule } => {
            let i = &p.intents[intent.0 as usize];
            (
                &i.bound[rule].kind,
                &p.objectives[i.objective.0 as usize].bound,
                Vec::new(),
            )
        }
        Subject::Grant(g) => {
            let g = &p.grants[g.0 as usize];
            match p.plans[0].parent {
                Parent::Objective(o) => (
                    &g.rule.kind,
                    &p.objectives[o.0 as usize].bound,
                    p.objectives[0].never.iter().collect(),
                ),
                Parent::Intent(i) => {
                    let intent = &p.intents[i.0 as usize];
                    (
                        &g.rule.kind,
                        &intent.bound,
                        p.objectives[0].never.iter().chain(&intent.never).collect(),
                    )
                }
            }
        }
    };
    let n = cover.reqs.len();
    let subject = cover.of(kind).clone();
    let mut in_bound = vec![false; n];
    for b in bound {
        for (acc, c) in in_bound.iter_mut().zip(cover.of(&b.kind)) {
            *acc |= *c;
        }
    }
    let mut in_never = vec![false; n];
    for nv in &nevers {
        for (acc, c) in in_never.iter_mut().zip(cover.of(&nv.kind)) {
            *acc |= *c;
        }
    }
    let outside = (0..n).filter(|&k| subject[k] && !in_bound[k]).collect();
    let never = (0..n).filter(|&k| subject[k] && in_never[k]).collect();
    (outside, never)
}

/// Runs the comparison for some seeds: (obligations, violated, prover time).
fn run_seeds(
    seeds: impl Iterator<Item = u64>,
    reqs: &[Request],
    opts: &Options,
) -> (usize, usize, std::time::Duration) {
    let sources = SourceMap::new();
    let mut prover_time = std::time::Duration::ZERO;
    let mut obligations = 0usize;
    let mut violated = 0usize;
    for seed in seeds {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let policy = gen_policy(&mut rng);
        let t = std::time::Instant::now();
        let report = prove_with(&policy, &sources, opts);
        prover_time += t.elapsed();
        let mut cover = Cover {
            reqs,
            memo: std::collections::HashMap::new(),
        };
        for o in &report.outcomes {
            obligations += 1;
            let (outside, never) = brute(&policy, o.subject, &mut cover);
            let find = |w: &Request| reqs.iter().position(|r| r == w);
            let ok = match &o.verdict {
                Verdict::Proved => outside.is_empty() && never.is_empty(),
                Verdict::Violated { first, also } => {
                    violated += 1;
                    let in_set =
                        |set: &[usize], w: &Request| find(w).is_some_and(|k| set.contains(&k));
                    match first.breach {
                        Breach::OutsideBound => {
                            in_set(&outside, &first.witness)
                                && match also {
                                    Some(a) => {
                                        matches!(a.breach, Breach::Never { .. })
                                            && in_set(&never, &a.witness)
                                    }
                                    None => never.is_empty(),
                                }
                        }
                        Breach::Never { .. } => {
                            outside.is_empty() && in_set(&never, &first.witness) && also.is_none()
                        }
                    }
                }
                Verdict::Unknown(_) | Verdict::Internal(_) => false,
            };
            assert!(
                ok,
                "seed {seed}: {:?}: prover said {:?}; brute force: {} outside, {} in never\npolicy: {policy:#?}",
                o.subject,
                o.verdict,
                outside.len(),
                never.len()
            );
        }
        // KAPL0501 exactly for grants that cover nothing in the universe.
        let empty_grants = policy
            .grants
            .iter()
            .filter(|g| {
                !matches!(g.rule.kind, RuleKind::Net { .. })
                    && !cover.of(&g.rule.kind).iter().any(|c| *c)
            })
            .count();
        let warned = report
            .diagnostics
            .iter()
            .filter(|d| d.code == "KAPL0501")
            .count();
        assert_eq!(
            empty_grants, warned,
            "seed {seed}: KAPL0501 count\npolicy: {policy:#?}"
        );
    }
    (obligations, violated, prover_time)
}

#[test]
fn prover_agrees_with_brute_force() {
    let reqs = all_requests();
    let opts = Options {
        threads: 1,
        universe: Universe {
            paths: Some(Dfa::from_paths(universe_paths())),
            addrs: Some(vec![cidr("10.0.0.0", 28), cidr("2001:db8::", 124)]),
            ports: Some(PORTS.iter().map(|&p| PortRange { lo: p, hi: p }).collect()),
        },
        ..Options::default()
    };
    let cases: u64 = std::env::var("KAPL_BRUTE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let started = std::time::Instant::now();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4) as u64;
    let results: Vec<(usize, usize, std::time::Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (reqs, opts) = (&reqs, &opts);
                scope.spawn(move || run_seeds((1..=cases).filter(|s| s % threads == t), reqs, opts))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let obligations: usize = results.iter().map(|r| r.0).sum();
    let violated: usize = results.iter().map(|r| r.1).sum();
    let prover_time: std::time::Duration = results.iter().map(|r| r.2).sum();
    eprintln!(
        "{cases} policies, {obligations} obligations ({violated} violated), 0 disagreements; prover {:.2?}, total {:.2?}",
        prover_time,
        started.elapsed()
    );
    assert!(
        obligations > cases as usize,
        "too few obligations: {obligations}"
    );
    assert!(
        violated > obligations / 10,
        "too few violations to be meaningful: {violated}/{obligations}"
    );
}
