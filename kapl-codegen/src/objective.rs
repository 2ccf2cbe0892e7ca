//! Objective tables: every objective's and intent's bound and `never`
//! compiled to the same tables as a plan's steps.
//!
//! Input: a checked policy and its source map.
//! Output: [`ObjectiveTables`] (identity left zero: it hashes the finished
//! image's `chain` section too, see [`kapl_image::format::objective_identity`]).
//!
//! Each level becomes a synthetic plan with two steps, [`BOUND`] and
//! [`NEVER`], whose grants are the level's rules; the plan machinery
//! ([`crate::build_dfa`], [`crate::net::entries`]) then lays out the tables,
//! and a cell's grant id is the rule's id in [`ObjectiveTables::rules`].

use crate::{build_dfa, loc, net};
use kapl_check::GrantAutomata;
use kapl_check::ir::{self, GrantId, PlanId, Policy, RuleKind, StepId};
use kapl_image::{
    BOUND, BoundRule, DfaKind, EmbeddedSource, GrantKind, Level, LevelTables, NEVER, NetOp,
    ObjectiveTables, RightSet,
};
use kapl_syntax::SourceMap;

fn step(name: &str, span: kapl_syntax::Span) -> ir::Step {
    ir::Step {
        name: name.into(),
        name_span: span,
        span,
        after: Vec::new(),
        about: None,
        grants: Vec::new(),
    }
}

fn kind_of(k: &RuleKind) -> GrantKind {
    match k {
        RuleKind::Fs { rights, .. } => GrantKind::Fs(RightSet(rights.0)),
        RuleKind::Exec { .. } => GrantKind::Exec,
        RuleKind::Net { op, .. } => GrantKind::Net(net_op(*op)),
    }
}

fn net_op(op: kapl_syntax::ast::NetOp) -> NetOp {
    match op {
        kapl_syntax::ast::NetOp::Connect => NetOp::Connect,
        kapl_syntax::ast::NetOp::Bind => NetOp::Bind,
    }
}

/// The policy whose plans are the levels (objectives, then intents) and
/// whose grants are their rules, in level order, bound before `never`.
pub(crate) fn synthetic(policy: &Policy) -> (Policy, Vec<Level>) {
    let mut out = Policy::default();
    let mut levels = Vec::new();
    let all = policy
        .objectives
        .iter()
        .enumerate()
        .map(|(i, o)| (Level::Objective(i as u32), o.name_span, &o.bound, &o.never))
        .chain(
            policy
                .intents
                .iter()
                .enumerate()
                .map(|(i, x)| (Level::Intent(i as u32), x.name_span, &x.bound, &x.never)),
        );
    for (li, (level, span, bound, never)) in all.enumerate() {
        let mut plan = ir::Plan {
            name: format!("level{li}"),
            name_span: span,
            span,
            parent: ir::Parent::Objective(ir::ObjectiveId(0)),
            about: None,
            grants: Vec::new(),
            steps: vec![step("bound", span), step("never", span)],
        };
        for (column, rules) in [(BOUND, bound), (NEVER, never)] {
            for rule in rules {
                let id = GrantId(out.grants.len() as u32);
                plan.steps[column as usize].grants.push(id);
                out.grants.push(ir::Grant {
                    id,
                    plan: PlanId(li as u32),
                    step: Some(StepId(column)),
                    rule: rule.clone(),
                    site: rule.span,
                });
            }
        }
        out.plans.push(plan);
        levels.push(level);
    }
    (out, levels)
}

/// Compiles every objective's and intent's bound and `never` into tables,
/// and embeds every source file of `sources` (the root file and each module
/// it uses, stdlib included). The identity is left zero.
pub fn objective_tables(policy: &Policy, sources: &SourceMap) -> ObjectiveTables {
    let (syn, levels) = synthetic(policy);
    let automata = GrantAutomata::new(&syn);
    let rules = syn
        .grants
        .iter()
        .map(|g| BoundRule {
            level: g.plan.0,
            never: g.step == Some(StepId(NEVER)),
            kind: kind_of(&g.rule.kind),
            source: loc(sources, g.rule.span),
            text: sources.snippet(g.rule.span).to_string(),
        })
        .collect();
    let levels = syn
        .plans
        .iter()
        .zip(levels)
        .map(|(plan, level)| {
            let fs = build_dfa(&syn, &automata, plan, DfaKind::Fs);
            let exec = build_dfa(&syn, &automata, plan, DfaKind::Exec);
            let grants: Vec<net::NetGrant<'_>> = plan
                .steps
                .iter()
                .flat_map(|s| &s.grants)
                .filter_map(|g| syn.grants.get(g.0 as usize))
                .filter_map(|g| match &g.rule.kind {
                    RuleKind::Net {
                        op,
                        addrs,
                        names,
                        ports,
                    } => Some(net::NetGrant {
                        grant: g.id.0,
                        op: net_op(*op),
                        addrs,
                        names,
                        ports,
                    }),
                    _ => None,
                })
                .collect();
            let holds: Vec<Vec<&net::NetGrant<'_>>> = [BOUND, NEVER]
                .iter()
                .map(|&column| {
                    grants
                        .iter()
                        .filter(|n| {
                            syn.grants
                                .get(n.grant as usize)
                                .is_some_and(|g| g.step == Some(StepId(column)))
                        })
                        .collect()
                })
                .collect();
            LevelTables {
                level,
                fs,
                exec,
                net: net::entries(2, &holds),
                names: net::name_entries(&holds),
            }
        })
        .collect();
    ObjectiveTables {
        identity: [0; 32],
        sources: sources
            .iter()
            .map(|(_, f)| EmbeddedSource {
                name: f.display_name(),
                text: f.text.clone(),
            })
            .collect(),
        rules,
        levels,
    }
}
