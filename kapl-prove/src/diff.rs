//! Authority diff between two versions of a policy.
//!
//! Input: the OLD and NEW [`Policy`]. Output: per plan and step, the
//! authority NEW adds and the authority it removes, each with a concrete
//! witness request (replayed through [`kapl_check::semantics`]), and whether NEW
//! widens any plan.
//!
//! A step's authority is what a session may do while the step is current:
//! the plan-wide grants plus the step's own (a plan without steps: its
//! plan-wide grants). Plans and steps are matched by name; a plan or step
//! that exists on one side only is compared with nothing. A plan is widened
//! when any of its steps may do something it could not do before, even if
//! another step could: authority moving between steps is a change in what
//! may happen when.
//!
//! Paths are compared on automata (per right, and for `exec`); addresses
//! and ports with the same Z3 queries the prover uses.

use crate::Limits;
use crate::solver;
use kapl_automata::Dfa;
use kapl_check::compiled::{self, CRule, NetRule};
use kapl_check::ir::{GrantId, Plan, Policy, Rule};
use kapl_check::semantics::{self, Request};
use kapl_syntax::ast::{NetOp, Right};

/// Added or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// NEW allows it, OLD did not.
    Added,
    /// OLD allowed it, NEW does not.
    Removed,
}

/// One difference in authority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The plan, by name.
    pub plan: String,
    /// The step, by name (`None`: a plan without steps).
    pub step: Option<String>,
    /// Added or removed.
    pub direction: Direction,
    /// A request allowed on one side only.
    pub witness: Request,
    /// The grant that allows it (in NEW for added, in OLD for removed).
    pub grant: Option<GrantId>,
}

/// The whole comparison.
#[derive(Clone, Debug, Default)]
pub struct Diff {
    /// Every change, in plan and step order (NEW's order, then plans and
    /// steps only OLD has).
    pub changes: Vec<Change>,
    /// Whether a solver query gave up (the diff is then incomplete and must
    /// not be read as "no widening").
    pub unknown: Vec<String>,
}

impl Diff {
    /// Whether NEW widens any plan's authority (or the answer is unknown,
    /// which is treated as widening: fail closed).
    pub fn widens(&self) -> bool {
        !self.unknown.is_empty() || self.changes.iter().any(|c| c.direction == Direction::Added)
    }
}

/// The rules in force in one step of one plan, with their grant ids.
fn step_rules<'a>(policy: &'a Policy, plan: &Plan, step: Option<&str>) -> Vec<(GrantId, &'a Rule)> {
    let step_grants = match step {
        None => &[][..],
        Some(name) => match plan.steps.iter().find(|s| s.name == name) {
            Some(s) => s.grants.as_slice(),
            // The step does not exist on this side: no authority at all.
            None => return Vec::new(),
        },
    };
    plan.grants
        .iter()
        .chain(step_grants)
        .filter_map(|g| policy.grants.get(g.0 as usize).map(|gr| (*g, &gr.rule)))
        .collect()
}

fn covering(rules: &[(GrantId, &Rule)], req: &Request) -> Option<GrantId> {
    rules
        .iter()
        .find(|(_, r)| semantics::rule_covers(&r.kind, req))
        .map(|(g, _)| *g)
}

/// Requests in `a` but not in `b`: one witness per right (`fs`), one for
/// `exec`, and one per network operation.
fn outside(
    a: &[(GrantId, &Rule)],
    b: &[(GrantId, &Rule)],
    limits: &Limits,
    unknown: &mut Vec<String>,
) -> Vec<Request> {
    let ca: Vec<CRule> = a
        .iter()
        .map(|(_, r)| compiled::compile(&r.kind, None))
        .collect();
    let cb: Vec<CRule> = b
        .iter()
        .map(|(_, r)| compiled::compile(&r.kind, None))
        .collect();
    let mut out = Vec::new();
    for (i, right) in Right::ALL.iter().enumerate() {
        let bit = 1u8 << i;
        let union = |rules: &[CRule]| {
            Dfa::union_all(
                rules
                    .iter()
                    .filter_map(CRule::fs)
                    .filter(|p| p.rights & bit != 0)
                    .map(|p| &p.dfa),
            )
        };
        if let Some(path) = union(&ca).witness_outside(&union(&cb)) {
            out.push(Request::Fs {
                right: *right,
                path,
            });
        }
    }
    let exec =
        |rules: &[CRule]| Dfa::union_all(rules.iter().filter_map(CRule::exec).map(|p| &p.dfa));
    if let Some(path) = exec(&ca).witness_outside(&exec(&cb)) {
        out.push(Request::Exec { path });
    }
    for op in [NetOp::Connect, NetOp::Bind] {
        let old: Vec<&NetRule> = cb
            .iter()
            .filter_map(CRule::net)
            .filter(|n| n.op == op)
            .collect();
        for n in ca.iter().filter_map(CRule::net).filter(|n| n.op == op) {
            match solver::net_obligation(limits, n, &old, &[], None).outside {
                solver::Answer::Proved => {}
                solver::Answer::Found(req) => {
                    out.push(req);
                    break;
                }
                solver::Answer::Unknown(why) => unknown.push(why),
            }
        }
    }
    out
}

fn compare(
    old: &Policy,
    new: &Policy,
    plan: &str,
    step: Option<&str>,
    limits: &Limits,
    diff: &mut Diff,
) {
    let old_rules = old
        .plans
        .iter()
        .find(|p| p.name == plan)
        .map(|p| step_rules(old, p, step))
        .unwrap_or_default();
    let new_rules = new
        .plans
        .iter()
        .find(|p| p.name == plan)
        .map(|p| step_rules(new, p, step))
        .unwrap_or_default();
    for (direction, from, to) in [
        (Direction::Added, &new_rules, &old_rules),
        (Direction::Removed, &old_rules, &new_rules),
    ] {
        for witness in outside(from, to, limits, &mut diff.unknown) {
            // Replay: the witness is allowed on one side and not the other.
            let grant = covering(from, &witness);
            if grant.is_none() || covering(to, &witness).is_some() {
                diff.unknown
                    .push(format!("the witness `{witness}` does not replay"));
                continue;
            }
            diff.changes.push(Change {
                plan: plan.to_string(),
                step: step.map(str::to_string),
                direction,
                witness,
                grant,
            });
        }
    }
}

/// Compares the authority of every plan and step of OLD and NEW.
pub fn diff(old: &Policy, new: &Policy) -> Diff {
    let limits = Limits::default();
    let mut d = Diff::default();
    let mut plans: Vec<&str> = new.plans.iter().map(|p| p.name.as_str()).collect();
    for p in &old.plans {
        if !plans.contains(&p.name.as_str()) {
            plans.push(&p.name);
        }
    }
    for plan in plans {
        let mut steps: Vec<&str> = Vec::new();
        for p in new
            .plans
            .iter()
            .chain(&old.plans)
            .filter(|p| p.name == plan)
        {
            for s in &p.steps {
                if !steps.contains(&s.name.as_str()) {
                    steps.push(&s.name);
                }
            }
        }
        if steps.is_empty() {
            compare(old, new, plan, None, &limits, &mut d);
        }
        for step in steps {
            compare(old, new, plan, Some(step), &limits, &mut d);
        }
    }
    d
}
