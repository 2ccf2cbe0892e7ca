//! Differential test: the runtime's own containment checker (image tables
//! only) against the prover (Z3 and the compiler's automata), on random
//! objective/plan pairs.
//!
//! Each case is a small random policy (an objective, often an intent, a
//! plan of 1–3 steps with plan-wide and step grants over paths in
//! `{a, b, .}`, programs, and addresses and ports around 10.0.0.0/8 and
//! 2001:db8::/32). It is compiled twice, its objectives alone (the
//! objective image) and whole (the plan image); the prover decides every
//! grant, so a step is inside when every grant that holds in it proves.
//! The checker must agree on every step, and every witness it gives must
//! replay through the reference semantics (`rule_covers`): allowed by a
//! grant of the step, and outside the bound or inside a `never` it names.
//! Cases whose intent bound is not inside the objective's are skipped (no
//! objective image is built for them).
//!
//! Then the checker is broken on purpose (`Fault`) and the same cases must
//! show disagreements: the test would catch such a bug.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use kapl_check::ir::*;
use kapl_check::semantics::{Proto as SProto, Request, rule_covers};
use kapl_image::{Image, Level};
use kapl_prove::{Options, Subject, Verdict, prove_with};
use kapl_runtime::containment::{Breach, Fault, Finding, Witness, check_image_with};
use kapl_syntax::ast::{NetOp, Right};
use kapl_syntax::glob::{Atom, Branch, Glob, Segment};
use kapl_syntax::span::Origin;
use kapl_syntax::{FileId, SourceMap, Span};
use kapl_testkit::Rng;
use std::net::IpAddr;

const ALPHA: &[u8] = b"ab.";
const PORTS: [u16; 4] = [22, 80, 443, 8080];

fn sp(n: &mut usize) -> Span {
    *n += 1;
    Span::new(FileId(0), *n, *n + 1)
}

fn cidr(addr: &str, prefix: u8) -> Cidr {
    let mut c = Cidr {
        addr: addr.parse().unwrap(),
        prefix,
    };
    let (lo, _) = kapl_check::semantics::cidr_range(&c);
    let canon = kapl_check::semantics::addr_of_canonical(lo);
    if let (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) = (c.addr, canon) {
        c.addr = canon;
    }
    c
}

fn gen_glob(rng: &mut Rng, broad: bool) -> Glob {
    let mut branches = Vec::new();
    for _ in 0..1 + rng.below(2) {
        let mut segments = Vec::new();
        for _ in 0..1 + rng.below(3) {
            if rng.chance(if broad { 40 } else { 20 }) {
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
            let e = usize::from(rng.chance(35));
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
                addrs.push(match rng.below(7) {
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
                    5 => cidr("2001:db8::", 32),
                    _ => cidr("::ffff:0:0", 96),
                });
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

/// A copy of one of `from`, sometimes narrowed by an `except`.
fn narrowed(rng: &mut Rng, n: &mut usize, from: &[Rule]) -> Rule {
    let mut r = from[rng.below(from.len())].clone();
    if let RuleKind::Fs { except, .. } = &mut r.kind
        && rng.chance(50)
    {
        except.extend(pats(rng, n, 1, false));
    }
    r
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
    let parent = if rng.chance(50) {
        let obound = p.objectives[0].bound.clone();
        let bound = (0..1 + rng.below(3))
            .map(|_| narrowed(rng, &mut n, &obound))
            .collect();
        p.intents.push(Intent {
            name: "i".into(),
            name_span: sp(&mut n),
            span: sp(&mut n),
            objective: ObjectiveId(0),
            about: None,
            bound,
            never: gen_rules(rng, &mut n, 0, 1, false),
        });
        Parent::Intent(IntentId(0))
    } else {
        Parent::Objective(ObjectiveId(0))
    };
    let steps = 1 + rng.below(3);
    let mut plan = Plan {
        name: "p".into(),
        name_span: sp(&mut n),
        span: sp(&mut n),
        parent,
        about: None,
        grants: Vec::new(),
        steps: (0..steps)
            .map(|i| Step {
                name: format!("s{i}"),
                name_span: sp(&mut n),
                span: sp(&mut n),
                after: Vec::new(),
                about: None,
                grants: Vec::new(),
            })
            .collect(),
    };
    let parent_bound = match parent {
        Parent::Intent(_) => p.intents[0].bound.clone(),
        Parent::Objective(_) => p.objectives[0].bound.clone(),
    };
    for i in 0..1 + rng.below(5) {
        let id = GrantId(i as u32);
        let step = (!rng.chance(20)).then(|| StepId(rng.below(steps) as u32));
        match step {
            Some(s) => plan.steps[s.0 as usize].grants.push(id),
            None => plan.grants.push(id),
        }
        let rule = if rng.chance(50) {
            narrowed(rng, &mut n, &parent_bound)
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

fn compile(policy: &Policy, sources: &SourceMap) -> Image {
    let opts = kapl_codegen::Options {
        policy: "gen".into(),
        compiler: "test".into(),
    };
    kapl_codegen::compile(policy, sources, &opts)
        .unwrap_or_else(|d| panic!("{d:?}"))
        .image
}

fn request(w: &Witness) -> Request {
    match w {
        Witness::Fs { right, path } => Request::Fs {
            right: Right::ALL[right.column()],
            path: path.clone(),
        },
        Witness::Exec { path } => Request::Exec { path: path.clone() },
        Witness::Net {
            op,
            proto,
            addr,
            port,
        } => Request::Net {
            op: match op {
                kapl_image::NetOp::Connect => NetOp::Connect,
                kapl_image::NetOp::Bind => NetOp::Bind,
            },
            addr: *addr,
            port: *port,
            proto: match proto {
                kapl_image::Proto::Tcp => SProto::Tcp,
                kapl_image::Proto::Udp => SProto::Udp,
            },
        },
        Witness::Name { .. } => panic!("the generated policies name no hosts"),
    }
}

fn level_rules(p: &Policy, level: Level) -> (&[Rule], &[Rule]) {
    match level {
        Level::Objective(i) => {
            let o = &p.objectives[i as usize];
            (&o.bound, &o.never)
        }
        Level::Intent(i) => {
            let x = &p.intents[i as usize];
            (&x.bound, &x.never)
        }
    }
}

/// Replays a finding through the reference semantics.
fn replays(p: &Policy, f: &Finding) -> bool {
    let req = request(&f.witness);
    let plan = &p.plans[0];
    let holds = plan
        .grants
        .iter()
        .chain(&plan.steps[f.step as usize].grants)
        .any(|g| rule_covers(&p.grants[g.0 as usize].rule.kind, &req));
    let breach = match f.breach {
        Breach::OutsideBound(l) => !level_rules(p, l)
            .0
            .iter()
            .any(|r| rule_covers(&r.kind, &req)),
        Breach::Never { level, .. } => level_rules(p, level)
            .1
            .iter()
            .any(|r| rule_covers(&r.kind, &req)),
    };
    holds && breach
}

struct Case {
    policy: Policy,
    objective: Image,
    plan: Image,
    /// Per step: inside according to the prover.
    prover: Vec<bool>,
}

fn case(seed: u64, sources: &SourceMap) -> Option<Case> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let policy = gen_policy(&mut rng);
    let report = prove_with(
        &policy,
        sources,
        &Options {
            threads: 1,
            ..Options::default()
        },
    );
    let mut failed = std::collections::HashSet::new();
    for o in &report.outcomes {
        match (&o.subject, &o.verdict) {
            (Subject::IntentBound { .. }, Verdict::Proved) => {}
            (Subject::IntentBound { .. }, _) => return None,
            (Subject::Grant(_), Verdict::Proved) => {}
            (Subject::Grant(g), Verdict::Violated { .. }) => {
                failed.insert(*g);
            }
            (s, v) => panic!("seed {seed}: {s:?}: the prover did not decide: {v:?}"),
        }
    }
    let plan = &policy.plans[0];
    let prover = plan
        .steps
        .iter()
        .map(|s| {
            !plan
                .grants
                .iter()
                .chain(&s.grants)
                .any(|g| failed.contains(g))
        })
        .collect();
    let mut objectives = policy.clone();
    objectives.plans.clear();
    objectives.grants.clear();
    Some(Case {
        objective: compile(&objectives, sources),
        plan: compile(&policy, sources),
        policy,
        prover,
    })
}

/// Disagreements of the checker (with `fault`) with the prover on `c`.
fn disagreements(c: &Case, fault: Fault, seed: u64) -> usize {
    let findings = check_image_with(&c.objective, &c.plan, fault).unwrap();
    if fault == Fault::None {
        for f in &findings {
            assert!(
                replays(&c.policy, f),
                "seed {seed}: the witness {} ({:?}) does not replay\npolicy: {:#?}",
                f.witness,
                f.breach,
                c.policy
            );
        }
    }
    c.prover
        .iter()
        .enumerate()
        .filter(|&(s, &inside)| inside == findings.iter().any(|f| f.step as usize == s))
        .count()
}

#[test]
fn runtime_checker_agrees_with_the_prover() {
    let mut sources = SourceMap::new();
    sources.add(Origin::Virtual("gen.kapl".into()), String::new());
    let want: usize = std::env::var("KAPL_AGREEMENT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let faults = [
        Fault::SkipNever,
        Fault::StepClassesOnly,
        Fault::FirstPortOnly,
    ];
    let mut caught = [0usize; 3];
    let (mut cases, mut steps, mut outside, mut skipped) = (0usize, 0usize, 0usize, 0usize);
    let started = std::time::Instant::now();
    let mut seed = 0u64;
    while cases < want {
        seed += 1;
        let Some(c) = case(seed, &sources) else {
            skipped += 1;
            continue;
        };
        cases += 1;
        steps += c.prover.len();
        outside += c.prover.iter().filter(|i| !**i).count();
        let d = disagreements(&c, Fault::None, seed);
        assert_eq!(
            d,
            0,
            "seed {seed}: the checker and the prover disagree\nprover (inside per step): {:?}\nchecker: {:#?}\npolicy: {:#?}",
            c.prover,
            check_image_with(&c.objective, &c.plan, Fault::None),
            c.policy
        );
        for (k, f) in faults.iter().enumerate() {
            caught[k] += disagreements(&c, *f, seed);
        }
    }
    eprintln!(
        "{cases} objective/plan pairs ({skipped} skipped), {steps} steps ({outside} outside), 0 disagreements; broken checkers disagree on {caught:?} steps ({:?}), {:.2?}",
        faults,
        started.elapsed()
    );
    assert!(
        outside > steps / 5,
        "too few steps outside: {outside}/{steps}"
    );
    assert!(
        outside < steps * 4 / 5,
        "too few steps inside: {outside}/{steps}"
    );
    for (k, f) in faults.iter().enumerate() {
        assert!(caught[k] > 0, "the agreement test does not catch {f:?}");
    }
}
