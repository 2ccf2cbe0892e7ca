//! The Z3 half of the prover: small quantifier-free queries over rights,
//! path classes, addresses (128-bit bitvectors, IPv4 as IPv4-mapped IPv6)
//! and ports (16-bit bitvectors).
//!
//! Input: compiled rules (see `compiled`). Output: for each obligation, an
//! answer to "is there a request outside the bound?" and "is there a request
//! inside a `never` rule?": `Proved`, `Found(witness)` or `Unknown`.
//!
//! Paths never reach Z3 as strings. A path question is split the DPLL(T)
//! way: Z3 sees one Boolean atom per rule ("the path is in rule i") and the
//! right as a 2-bit vector; the automata are the theory of paths. They
//! contribute the facts Z3 needs about which combinations of atoms some real
//! path has (e.g. "every path of the grant with right `read` is in some
//! bound rule with `read`"), and turn the combination Z3 picks back into a
//! concrete path. A combination the automata cannot realize is blocked with
//! a lemma and Z3 is asked again.
//!
//! Each worker thread keeps one solver in the `z3` crate's thread-local
//! context and scopes every obligation in `push`/`pop`, so parallel
//! obligations never share solver state and no query pays for solver set-up.

use crate::Limits;
use kapl_automata::Dfa;
use kapl_check::compiled::{NetRule, PathRule};
use kapl_check::semantics::{Proto, Request, addr_of_canonical};
use std::cell::RefCell;
use z3::ast::{BV, Bool};
use z3::{Params, SatResult, Solver};

/// How one question ended.
#[derive(Debug)]
pub(crate) enum Answer<T> {
    /// Nothing violates the obligation.
    Proved,
    /// A violating request.
    Found(T),
    /// Z3 gave up (resource limit, timeout, or an unusable model).
    Unknown(String),
}

thread_local! {
    static SOLVER: RefCell<Option<(Solver, u32, u32)>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's solver, inside a `push`/`pop` scope. The
/// solver is taken out of its slot while in use, so a panic drops it (and
/// any half-done scope) instead of leaving stale assertions behind.
fn with_solver<R>(limits: &Limits, f: impl FnOnce(&Solver) -> R) -> R {
    let cached = SOLVER.with(|cell| cell.borrow_mut().take());
    let s = match cached {
        Some((s, t, r)) if t == limits.timeout_ms && r == limits.rlimit => s,
        _ => new_solver(limits),
    };
    s.push();
    let r = f(&s);
    s.pop(1);
    SOLVER.with(|cell| *cell.borrow_mut() = Some((s, limits.timeout_ms, limits.rlimit)));
    r
}

fn new_solver(limits: &Limits) -> Solver {
    let s = Solver::new();
    let mut p = Params::new();
    p.set_u32("timeout", limits.timeout_ms);
    p.set_u32("rlimit", limits.rlimit);
    s.set_params(&p);
    s
}

/// Runs `f` on the thread's reused solver; when it finds a violation, runs
/// it again in a fresh Z3 context so the witness does not depend on what
/// this thread solved before (which varies with scheduling). Proofs keep
/// the fast path; only failures, which are rare, pay for a new context.
fn solve<R: Send + Sync>(
    limits: &Limits,
    found: impl Fn(&R) -> bool,
    f: impl Fn(&Solver) -> R + Send + Sync,
) -> R {
    let first = with_solver(limits, &f);
    if !found(&first) {
        return first;
    }
    z3::with_z3_config(&z3::Config::new(), || f(&new_solver(limits)))
}

fn unknown(s: &Solver) -> String {
    s.get_reason_unknown()
        .unwrap_or_else(|| "unknown".to_string())
}

/// `r` is one of the rights in `mask` (bit i = `Right::ALL[i]`).
fn right_in(r: &BV, mask: u8) -> Bool {
    let options: Vec<Bool> = (0..4u64)
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| r.eq(BV::from_u64(i, 2)))
        .collect();
    Bool::or(&options)
}

fn model_right(s: &Solver, r: &BV) -> Option<u8> {
    let model = s.get_model()?;
    model
        .eval(r, true)?
        .as_u64()
        .and_then(|v| u8::try_from(v).ok())
}

/// The two path questions of one obligation.
pub(crate) struct PathAnswers {
    /// A right and a path of the subject outside every bound rule.
    pub outside: Answer<(u8, Vec<u8>)>,
    /// A never rule (index), a right and a path of the subject inside it.
    pub never: Answer<(usize, u8, Vec<u8>)>,
}

/// Decides both path questions for a subject (`fs` rights mask, or the one
/// `exec` pseudo-right) against bound rules and never rules.
pub(crate) fn path_obligation(
    limits: &Limits,
    subject_rights: u8,
    subject: &Dfa,
    bound: &[&PathRule],
    union_for: &dyn Fn(u8) -> Dfa,
    nevers: &[&PathRule],
) -> PathAnswers {
    // Theory facts from the automata: per right of the subject, a path of
    // the subject that no bound rule with that right holds, if any; per
    // never rule, a path of the subject inside it, if any.
    let rights: Vec<u8> = (0..4u8)
        .filter(|i| subject_rights & (1 << i) != 0)
        .collect();
    let escapes: Vec<(u8, Option<Vec<u8>>)> = rights
        .iter()
        .map(|&ri| (ri, subject.witness_outside(&union_for(1 << ri))))
        .collect();
    let hits: Vec<Option<Vec<u8>>> = nevers
        .iter()
        .map(|n| {
            if n.rights & subject_rights != 0 {
                subject.witness_common(&n.dfa)
            } else {
                None
            }
        })
        .collect();
    let found = |a: &PathAnswers| {
        matches!(a.outside, Answer::Found(_)) || matches!(a.never, Answer::Found(_))
    };
    solve(limits, found, |s| {
        let r = BV::new_const("right", 2);
        s.assert(right_in(&r, subject_rights));
        let x: Vec<Bool> = (0..bound.len())
            .map(|i| Bool::new_const(format!("in_bound_{i}")))
            .collect();
        let y: Vec<Bool> = (0..nevers.len())
            .map(|j| Bool::new_const(format!("in_never_{j}")))
            .collect();
        for (ri, escape) in &escapes {
            if escape.is_none() {
                // Every subject path with this right is in a bound rule that
                // has the right.
                let holders: Vec<Bool> = bound
                    .iter()
                    .zip(&x)
                    .filter(|(rule, _)| rule.rights & (1 << ri) != 0)
                    .map(|(_, xi)| xi.clone())
                    .collect();
                s.assert(right_in(&r, 1 << ri).implies(Bool::or(&holders)));
            }
        }
        for (yj, hit) in y.iter().zip(&hits) {
            if hit.is_none() {
                // No subject path is in this never rule.
                s.assert(yj.not());
            }
        }
        let want_outside = Bool::new_const("q_outside");
        let want_never = Bool::new_const("q_never");
        let outside_goal: Vec<Bool> = bound
            .iter()
            .zip(&x)
            .map(|(rule, xi)| Bool::and(&[xi.clone(), right_in(&r, rule.rights)]).not())
            .collect();
        s.assert(want_outside.implies(Bool::and(&outside_goal)));
        let never_goal: Vec<Bool> = nevers
            .iter()
            .zip(&y)
            .map(|(rule, yj)| Bool::and(&[yj.clone(), right_in(&r, rule.rights)]))
            .collect();
        s.assert(want_never.implies(Bool::or(&never_goal)));

        let outside = match s.check_assumptions(std::slice::from_ref(&want_outside)) {
            SatResult::Unsat => Answer::Proved,
            SatResult::Unknown => Answer::Unknown(unknown(s)),
            SatResult::Sat => match model_right(s, &r) {
                None => Answer::Unknown("no value for the right".to_string()),
                Some(ri) => match escapes.iter().find(|(e, _)| *e == ri) {
                    Some((_, Some(path))) => Answer::Found((ri, path.clone())),
                    // Z3 chose a combination the automata refuted: that
                    // cannot happen with the facts above, so it is a bug.
                    _ => Answer::Unknown("the solver chose an unrealizable path class".to_string()),
                },
            },
        };
        let never = if nevers.is_empty() {
            Answer::Proved
        } else {
            match s.check_assumptions(std::slice::from_ref(&want_never)) {
                SatResult::Unsat => Answer::Proved,
                SatResult::Unknown => Answer::Unknown(unknown(s)),
                SatResult::Sat => {
                    let model = s.get_model();
                    let ri = model_right(s, &r);
                    let chosen = ri.and_then(|ri| {
                        nevers.iter().zip(&y).position(|(rule, yj)| {
                            rule.rights & (1 << ri) != 0
                                && model
                                    .as_ref()
                                    .and_then(|m| m.eval(yj, true))
                                    .and_then(|v| v.as_bool())
                                    == Some(true)
                        })
                    });
                    match (ri, chosen.and_then(|j| hits.get(j).map(|h| (j, h)))) {
                        (Some(ri), Some((j, Some(path)))) => Answer::Found((j, ri, path.clone())),
                        _ => Answer::Unknown(
                            "the solver chose an unrealizable path class".to_string(),
                        ),
                    }
                }
            }
        };
        PathAnswers { outside, never }
    })
}

fn const_bits(v: u128, bits: u32) -> BV {
    if bits <= 64 {
        BV::from_u64(u64::try_from(v).unwrap_or(u64::MAX), bits)
    } else {
        BV::from_str(bits, &v.to_string()).unwrap_or_else(|| BV::from_u64(0, bits))
    }
}

/// Membership of `a` in an aligned block `lo..=hi` as a prefix equality
/// (cheaper for Z3 than two 128-bit comparisons).
fn in_block(a: &BV, lo: u128, hi: u128) -> Bool {
    let size = hi.wrapping_sub(lo).wrapping_add(1);
    let host_bits = if size == 0 {
        128
    } else {
        size.trailing_zeros()
    };
    if host_bits >= 128 {
        return Bool::from_bool(true);
    }
    let prefix = 128 - host_bits;
    a.extract(127, host_bits)
        .eq(const_bits(lo >> host_bits, prefix))
}

fn in_net(a: &BV, p: &BV, rule: &NetRule) -> Bool {
    let addrs: Vec<Bool> = rule
        .addrs
        .iter()
        .map(|&(lo, hi)| in_block(a, lo, hi))
        .collect();
    let ports: Vec<Bool> = rule
        .ports
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                p.eq(BV::from_u64(u64::from(lo), 16))
            } else {
                Bool::and(&[
                    BV::from_u64(u64::from(lo), 16).bvule(p),
                    p.bvule(BV::from_u64(u64::from(hi), 16)),
                ])
            }
        })
        .collect();
    Bool::and(&[Bool::or(&addrs), Bool::or(&ports)])
}

/// The two network questions of one obligation.
pub(crate) struct NetAnswers {
    /// A request of the subject outside every bound rule of its operation.
    pub outside: Answer<Request>,
    /// A request of the subject inside some never rule.
    pub never: Answer<Request>,
}

fn net_model(s: &Solver, a: &BV, p: &BV, op: kapl_syntax::ast::NetOp) -> Answer<Request> {
    let Some(model) = s.get_model() else {
        return Answer::Unknown("no model".to_string());
    };
    let hi = model
        .eval(&a.extract(127, 64), true)
        .and_then(|v| v.as_u64());
    let lo = model.eval(&a.extract(63, 0), true).and_then(|v| v.as_u64());
    let port = model.eval(p, true).and_then(|v| v.as_u64());
    match (hi, lo, port) {
        (Some(hi), Some(lo), Some(port)) => Answer::Found(Request::Net {
            op,
            addr: addr_of_canonical((u128::from(hi) << 64) | u128::from(lo)),
            port: u16::try_from(port).unwrap_or(0),
            proto: Proto::Tcp,
        }),
        _ => Answer::Unknown("no value for the address or port".to_string()),
    }
}

/// Decides both network questions for a subject rule. Among violating
/// requests, one with a non-zero port and a non-zero last address byte is
/// preferred, so witnesses look like real traffic.
pub(crate) fn net_obligation(
    limits: &Limits,
    subject: &NetRule,
    bound: &[&NetRule],
    nevers: &[&NetRule],
    universe: Option<&NetRule>,
) -> NetAnswers {
    let found = |n: &NetAnswers| {
        matches!(n.outside, Answer::Found(_)) || matches!(n.never, Answer::Found(_))
    };
    solve(limits, found, |s| {
        let a = BV::new_const("addr", 128);
        let p = BV::new_const("port", 16);
        s.assert(in_net(&a, &p, subject));
        if let Some(u) = universe {
            s.assert(in_net(&a, &p, u));
        }
        let want_outside = Bool::new_const("q_outside");
        let want_never = Bool::new_const("q_never");
        let outside_goal: Vec<Bool> = bound
            .iter()
            .filter(|r| r.op == subject.op)
            .map(|r| in_net(&a, &p, r).not())
            .collect();
        s.assert(want_outside.implies(Bool::and(&outside_goal)));
        let never_goal: Vec<Bool> = nevers
            .iter()
            .filter(|r| r.op == subject.op)
            .map(|r| in_net(&a, &p, r))
            .collect();
        s.assert(want_never.implies(Bool::or(&never_goal)));
        let nice = Bool::and(&[
            p.eq(BV::from_u64(0, 16)).not(),
            a.extract(7, 0).eq(BV::from_u64(0, 8)).not(),
        ]);
        let ask = |goal: &Bool| match s.check_assumptions(std::slice::from_ref(goal)) {
            SatResult::Unsat => Answer::Proved,
            SatResult::Unknown => Answer::Unknown(unknown(s)),
            SatResult::Sat => {
                if s.check_assumptions(&[goal.clone(), nice.clone()]) != SatResult::Sat {
                    // Fall back to any model of the goal.
                    if s.check_assumptions(std::slice::from_ref(goal)) != SatResult::Sat {
                        return Answer::Unknown(unknown(s));
                    }
                }
                net_model(s, &a, &p, subject.op)
            }
        };
        let outside = ask(&want_outside);
        let never = if never_goal.is_empty() {
            Answer::Proved
        } else {
            ask(&want_never)
        };
        NetAnswers { outside, never }
    })
}
