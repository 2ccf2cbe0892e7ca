//! The Z3 half of the prover: small quantifier-free queries over rights,
//! path classes (as Boolean atoms refined lazily by the automata), addresses
//! (128-bit bitvectors, IPv4 as IPv4-mapped IPv6) and ports (16-bit).
//!
//! Input: compiled rules (see `compiled`). Output: `Found` requests or
//! `Proved`, or `Unknown` when Z3 gives up within its limits.
//!
//! Each thread uses the `z3` crate's thread-local context, so parallel
//! obligations never share solver state.

use super::compiled::{NetRule, PathRule};
use super::Limits;
use crate::semantics::{Proto, Request, addr_of_canonical};
use kapl_automata::Dfa;
use z3::ast::{BV, Bool};
use z3::{Params, SatResult, Solver};

/// How one query ended.
pub(crate) enum Answer<T> {
    /// Nothing violates the obligation.
    Proved,
    /// A violating request and the index of the rule list entry involved.
    Found(T),
    /// Z3 gave up (resource limit, timeout, or an unsupported answer).
    Unknown(String),
}

fn solver(limits: &Limits) -> Solver {
    let s = Solver::new();
    let mut p = Params::new();
    p.set_u32("timeout", limits.timeout_ms);
    p.set_u32("rlimit", limits.rlimit);
    s.set_params(&p);
    s
}

fn unknown(s: &Solver) -> String {
    s.get_reason_unknown().unwrap_or_else(|| "unknown".to_string())
}

/// The 2-bit right variable constrained to `mask` (bit i = `Right::ALL[i]`).
fn right_in(r: &BV, mask: u8) -> Bool {
    let options: Vec<Bool> = (0..4u64).filter(|i| mask & (1 << i) != 0).map(|i| r.eq(BV::from_u64(i, 2))).collect();
    Bool::or(&options)
}

/// Paths that break a bound: is there a right `r` in `subject_rights` and a
/// path of `subject` that no bound rule with right `r` holds?
///
/// Z3 chooses the right and the truth of the path-class atoms `x_i` ("the
/// path is in bound rule i"); the automata decide whether the chosen class
/// combination holds a real path, and when it does not, the combination is
/// blocked with a lemma and Z3 chooses again (a lazy, DPLL(T)-style loop
/// with the automata as the theory of paths).
pub(crate) fn path_outside(
    limits: &Limits,
    subject_rights: u8,
    subject: &Dfa,
    bound: &[&PathRule],
    union_for: &dyn Fn(u8) -> Dfa,
) -> Answer<(u8, Vec<u8>)> {
    let s = solver(limits);
    let r = BV::new_const("right", 2);
    s.assert(right_in(&r, subject_rights));
    let x: Vec<Bool> = (0..bound.len()).map(|i| Bool::new_const(format!("in_bound_{i}"))).collect();
    // The violation: no bound rule that has the right holds the path.
    for (rule, xi) in bound.iter().zip(&x) {
        s.assert(Bool::and(&[xi.clone(), right_in(&r, rule.rights)]).not());
    }
    // INVARIANT: each round blocks one right signature or ends, so the loop
    // runs at most once per right plus one.
    for _ in 0..6 {
        match s.check() {
            SatResult::Unsat => return Answer::Proved,
            SatResult::Unknown => return Answer::Unknown(unknown(&s)),
            SatResult::Sat => {}
        }
        let Some(model) = s.get_model() else {
            return Answer::Unknown("no model".to_string());
        };
        let Some(ri) = model.eval(&r, true).and_then(|v| v.as_u64()) else {
            return Answer::Unknown("no value for the right".to_string());
        };
        let ri = u8::try_from(ri).unwrap_or(0);
        let mask = 1u8 << ri;
        // Path class: in the subject, in none of the bound rules with `r`.
        let union = union_for(mask);
        match subject.witness_outside(&union) {
            Some(path) => return Answer::Found((ri, path)),
            None => {
                // Lemma: every subject path lies in some bound rule with r.
                let holders: Vec<Bool> = bound
                    .iter()
                    .zip(&x)
                    .filter(|(rule, _)| rule.rights & mask != 0)
                    .map(|(_, xi)| xi.clone())
                    .collect();
                let lemma = Bool::or(&holders);
                s.assert(right_in(&r, mask).implies(&lemma));
            }
        }
    }
    Answer::Unknown("path refinement did not converge".to_string())
}

/// Paths that reach a `never` rule: a right in both and a path in both.
/// Same lazy loop as [`path_outside`], with atoms `y_j` ("the path is in
/// never rule j").
pub(crate) fn path_into_never(limits: &Limits, subject_rights: u8, subject: &Dfa, nevers: &[&PathRule]) -> Answer<(usize, u8, Vec<u8>)> {
    if nevers.is_empty() {
        return Answer::Proved;
    }
    let s = solver(limits);
    let r = BV::new_const("right", 2);
    s.assert(right_in(&r, subject_rights));
    let y: Vec<Bool> = (0..nevers.len()).map(|j| Bool::new_const(format!("in_never_{j}"))).collect();
    let hits: Vec<Bool> = nevers
        .iter()
        .zip(&y)
        .map(|(rule, yj)| Bool::and(&[yj.clone(), right_in(&r, rule.rights)]))
        .collect();
    s.assert(Bool::or(&hits));
    for _ in 0..=nevers.len() {
        match s.check() {
            SatResult::Unsat => return Answer::Proved,
            SatResult::Unknown => return Answer::Unknown(unknown(&s)),
            SatResult::Sat => {}
        }
        let Some(model) = s.get_model() else {
            return Answer::Unknown("no model".to_string());
        };
        let Some(ri) = model.eval(&r, true).and_then(|v| v.as_u64()) else {
            return Answer::Unknown("no value for the right".to_string());
        };
        let ri = u8::try_from(ri).unwrap_or(0);
        let chosen = nevers
            .iter()
            .zip(&y)
            .position(|(rule, yj)| rule.rights & (1 << ri) != 0 && model.eval(yj, true).and_then(|v| v.as_bool()) == Some(true));
        let Some(j) = chosen else {
            return Answer::Unknown("model names no never rule".to_string());
        };
        match subject.witness_common(&nevers[j].dfa) {
            Some(path) => return Answer::Found((j, ri, path)),
            // Lemma: no subject path is in never rule j.
            None => s.assert(y[j].not()),
        }
    }
    Answer::Unknown("path refinement did not converge".to_string())
}

fn u128_const(v: u128) -> BV {
    BV::from_str(128, &v.to_string()).unwrap_or_else(|| BV::from_u64(0, 128))
}

fn in_net(a: &BV, p: &BV, rule: &NetRule) -> Bool {
    let addrs: Vec<Bool> = rule
        .addrs
        .iter()
        .map(|&(lo, hi)| Bool::and(&[u128_const(lo).bvule(a), a.bvule(u128_const(hi))]))
        .collect();
    let ports: Vec<Bool> = rule
        .ports
        .iter()
        .map(|&(lo, hi)| {
            Bool::and(&[
                BV::from_u64(u64::from(lo), 16).bvule(p),
                p.bvule(BV::from_u64(u64::from(hi), 16)),
            ])
        })
        .collect();
    Bool::and(&[Bool::or(&addrs), Bool::or(&ports)])
}

/// Which network question to ask.
pub(crate) enum NetQuestion<'a> {
    /// In the subject and in none of these bound rules.
    Outside(&'a [&'a NetRule]),
    /// In the subject and in one of these never rules.
    Into(&'a [&'a NetRule]),
}

/// A network request in `subject` that breaks the question, preferring a
/// non-zero port and a non-zero last address byte so witnesses look real.
pub(crate) fn net_query(limits: &Limits, subject: &NetRule, question: NetQuestion<'_>, universe: Option<&NetRule>) -> Answer<Request> {
    let s = solver(limits);
    let a = BV::new_const("addr", 128);
    let p = BV::new_const("port", 16);
    s.assert(in_net(&a, &p, subject));
    if let Some(u) = universe {
        s.assert(in_net(&a, &p, u));
    }
    match question {
        NetQuestion::Outside(bound) => {
            for rule in bound.iter().filter(|r| r.op == subject.op) {
                s.assert(in_net(&a, &p, rule).not());
            }
        }
        NetQuestion::Into(nevers) => {
            let hits: Vec<Bool> = nevers.iter().filter(|r| r.op == subject.op).map(|r| in_net(&a, &p, r)).collect();
            s.assert(Bool::or(&hits));
        }
    }
    let nice = [
        p.eq(BV::from_u64(0, 16)).not(),
        a.extract(7, 0).eq(BV::from_u64(0, 8)).not(),
    ];
    let mut answer = s.check_assumptions(&nice);
    if answer != SatResult::Sat {
        answer = s.check();
    }
    match answer {
        SatResult::Unsat => Answer::Proved,
        SatResult::Unknown => Answer::Unknown(unknown(&s)),
        SatResult::Sat => {
            let Some(model) = s.get_model() else {
                return Answer::Unknown("no model".to_string());
            };
            let hi = model.eval(&a.extract(127, 64), true).and_then(|v| v.as_u64());
            let lo = model.eval(&a.extract(63, 0), true).and_then(|v| v.as_u64());
            let port = model.eval(&p, true).and_then(|v| v.as_u64());
            match (hi, lo, port) {
                (Some(hi), Some(lo), Some(port)) => Answer::Found(Request::Net {
                    op: subject.op,
                    addr: addr_of_canonical((u128::from(hi) << 64) | u128::from(lo)),
                    port: u16::try_from(port).unwrap_or(0),
                    proto: Proto::Tcp,
                }),
                _ => Answer::Unknown("no value for the address or port".to_string()),
            }
        }
    }
}
