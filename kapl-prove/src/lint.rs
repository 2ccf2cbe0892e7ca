//! Reviewer warnings found with the prover's automata:
//! a grant that can never match anything (`KAPL0501`), a grant wholly
//! covered by another grant of the same step (`KAPL0502`), and a `never`
//! rule that no bound reaches (`KAPL0503`).
//!
//! Input: a policy (compiled once, as the prover does). Output: warnings.
//!
//! A `never` rule is reached when some bound rule at its level or below
//! (for an objective: its bound and its intents' bounds) allows the same
//! kind of access: an `fs` rule with a common right, an `exec` rule, a `net`
//! rule with the same operation. Paths, addresses and ports are not
//! compared: a `never` on `/home/dev/.ssh/**` or on port 22 beside a bound
//! that does not reach them today is a standing defence against a later,
//! wider bound, not a mistake. What is flagged is a `never` for a kind of
//! access that no bound grants at all (e.g. `never { net bind any port any }`
//! where nothing may bind), which usually means a wrong right or operation.
//!
//! Redundancy is judged only against grants whose own obligation holds: a
//! grant inside an erroneous one is not reported until that one is fixed.

use crate::report::{level_name, who};
use crate::{Compiled, Level, Subject};
use kapl_check::compiled::{CRule, NetRule, par_map};
use kapl_check::ir::{GrantId, IntentId, ObjectiveId, Policy, Rule};
use kapl_syntax::{Diagnostic, Span, codes};
use std::collections::HashSet;

/// The reviewer warnings for `policy`.
pub fn lint(policy: &Policy) -> Vec<Diagnostic> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let compiled = Compiled::new(policy, None, threads);
    let mut d = lint_compiled(policy, &compiled, &HashSet::new());
    kapl_syntax::diag::sort(&mut d);
    d
}

fn ranges_within<T: Ord + Copy>(
    inner: &[(T, T)],
    outer: &[(T, T)],
    succ: impl Fn(T) -> Option<T>,
) -> bool {
    // Each inner range must be covered by the union of the outer ranges.
    inner.iter().all(|&(lo, hi)| {
        let mut sorted: Vec<(T, T)> = outer.to_vec();
        sorted.sort();
        let mut cur = lo;
        for (olo, ohi) in sorted {
            if olo <= cur && cur <= ohi {
                if ohi >= hi {
                    return true;
                }
                match succ(ohi) {
                    Some(n) => cur = n,
                    None => return true,
                }
            }
        }
        false
    })
}

fn net_within(a: &NetRule, b: &NetRule) -> bool {
    a.op == b.op
        && ranges_within(&a.addrs, &b.addrs, |x: u128| x.checked_add(1))
        && ranges_within(&a.ports, &b.ports, |x: u16| x.checked_add(1))
}

/// Whether rule `a` allows nothing that rule `b` does not.
pub(crate) fn covered_by(a: &CRule, b: &CRule) -> bool {
    match (a, b) {
        (CRule::Fs(a), CRule::Fs(b)) => a.rights & !b.rights == 0 && a.dfa.is_subset_of(&b.dfa),
        (CRule::Exec(a), CRule::Exec(b)) => a.dfa.is_subset_of(&b.dfa),
        (CRule::Net(a), CRule::Net(b)) => net_within(a, b),
        _ => false,
    }
}

/// Whether a rule names hosts (which its compiled form leaves out).
fn has_names(kind: &kapl_check::ir::RuleKind) -> bool {
    matches!(kind, kapl_check::ir::RuleKind::Net { names, .. } if !names.is_empty())
}

fn is_empty(r: &CRule) -> bool {
    match r {
        CRule::Fs(p) | CRule::Exec(p) => p.dfa.is_empty(),
        CRule::Net(n) => n.addrs.is_empty() || n.ports.is_empty(),
    }
}

fn reaches(never: &CRule, bound: &CRule) -> bool {
    match (never, bound) {
        (CRule::Fs(a), CRule::Fs(b)) => a.rights & b.rights != 0,
        (CRule::Exec(_), CRule::Exec(_)) => true,
        (CRule::Net(a), CRule::Net(b)) => a.op == b.op,
        _ => false,
    }
}

fn grant_site(policy: &Policy, g: GrantId) -> Option<Span> {
    let grant = policy.grants.get(g.0 as usize)?;
    Some(if grant.rule.via.is_empty() {
        grant.rule.span
    } else {
        grant.site
    })
}

/// The warnings, given the compiled policy and the grants whose own
/// obligation failed (never used as the covering grant of a redundancy).
pub(crate) fn lint_compiled(
    policy: &Policy,
    c: &Compiled,
    failed: &HashSet<GrantId>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    // KAPL0501: grants that match nothing.
    for (i, grant) in policy.grants.iter().enumerate() {
        let Some(cr) = c.grants.get(i) else { continue };
        if !is_empty(cr) || has_names(&grant.rule.kind) {
            continue;
        }
        let Some(site) = grant_site(policy, grant.id) else {
            continue;
        };
        let has_except = matches!(&grant.rule.kind, kapl_check::ir::RuleKind::Fs { except, .. } if !except.is_empty());
        let help = if has_except {
            "its `except` removes every path it names: fix the patterns or remove the grant"
        } else {
            "no normalized absolute path matches these patterns: fix them or remove the grant"
        };
        out.push(
            Diagnostic::warning(
                codes::GRANT_MATCHES_NOTHING,
                format!(
                    "a grant of {} can never match anything",
                    who(policy, Subject::Grant(grant.id))
                ),
                site,
                "this grant allows nothing",
            )
            .with_help(help),
        );
    }
    // KAPL0502: grants covered by another grant of the same group.
    let mut groups: Vec<&[GrantId]> = Vec::new();
    for plan in &policy.plans {
        groups.push(&plan.grants);
        for step in &plan.steps {
            groups.push(&step.grants);
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // One path of each path grant: a grant can only cover another if it
    // holds that path, which rules out most pairs without a product.
    let samples: Vec<Option<Vec<u8>>> = par_map(&c.grants, threads, |r| match r {
        CRule::Fs(p) | CRule::Exec(p) => p.dfa.shortest_member(),
        CRule::Net(_) => None,
    });
    let found: Vec<Vec<Diagnostic>> = par_map(&groups, threads, |group| {
        redundant_in_group(policy, c, &samples, group, failed)
    });
    out.extend(found.into_iter().flatten());
    // KAPL0503: never rules no bound reaches.
    for (oi, o) in policy.objectives.iter().enumerate() {
        let oid = ObjectiveId(u32::try_from(oi).unwrap_or(u32::MAX));
        let mut bounds: Vec<&CRule> = c
            .objective_bound
            .get(oi)
            .map(|l| l.rules.iter().collect())
            .unwrap_or_default();
        for (ii, intent) in policy.intents.iter().enumerate() {
            if intent.objective == oid {
                bounds.extend(
                    c.intent_bound
                        .get(ii)
                        .map(|l| l.rules.iter())
                        .into_iter()
                        .flatten(),
                );
            }
        }
        let nevers = c
            .objective_never
            .get(oi)
            .map(|l| l.rules.as_slice())
            .unwrap_or(&[]);
        unreached(
            policy,
            Level::Objective(oid),
            &o.never,
            nevers,
            &bounds,
            &mut out,
        );
    }
    for (ii, intent) in policy.intents.iter().enumerate() {
        let iid = IntentId(u32::try_from(ii).unwrap_or(u32::MAX));
        let bounds: Vec<&CRule> = c
            .intent_bound
            .get(ii)
            .map(|l| l.rules.iter().collect())
            .unwrap_or_default();
        let nevers = c
            .intent_never
            .get(ii)
            .map(|l| l.rules.as_slice())
            .unwrap_or(&[]);
        unreached(
            policy,
            Level::Intent(iid),
            &intent.never,
            nevers,
            &bounds,
            &mut out,
        );
    }
    out
}

fn redundant_in_group(
    policy: &Policy,
    c: &Compiled,
    samples: &[Option<Vec<u8>>],
    group: &[GrantId],
    failed: &HashSet<GrantId>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    // False only when `b` cannot cover grant `a` (it misses `a`'s sample).
    let may_cover = |a: GrantId, b: &CRule| match (samples.get(a.0 as usize), b) {
        (Some(Some(path)), CRule::Fs(p) | CRule::Exec(p)) => p.dfa.accepts(path),
        _ => true,
    };
    for &g in group {
        let (Some(grant), Some(cg)) = (policy.grants.get(g.0 as usize), c.grants.get(g.0 as usize))
        else {
            continue;
        };
        // A grant with host names allows more than its addresses say (the
        // names are proved apart, in `names`): never call it redundant.
        if is_empty(cg) || has_names(&grant.rule.kind) {
            continue;
        }
        let cover = group.iter().copied().find(|&h| {
            let (Some(other), Some(ch)) =
                (policy.grants.get(h.0 as usize), c.grants.get(h.0 as usize))
            else {
                return false;
            };
            // Rules from one `grant` statement are one decision; compare
            // only different statements. Of two equal grants, the later one
            // is reported.
            h != g
                && !failed.contains(&h)
                && other.site != grant.site
                && may_cover(g, ch)
                && covered_by(cg, ch)
                && (h < g || !may_cover(h, cg) || !covered_by(ch, cg))
        });
        let (Some(h), Some(site)) = (cover, grant_site(policy, g)) else {
            continue;
        };
        let Some(other_site) = grant_site(policy, h) else {
            continue;
        };
        let whose = match grant.step {
            Some(_) => who(policy, Subject::Grant(g)),
            None => format!("{} (plan-wide)", who(policy, Subject::Grant(g))),
        };
        out.push(
            Diagnostic::warning(
                codes::GRANT_REDUNDANT,
                format!("a grant of {whose} is wholly covered by another grant"),
                site,
                "everything this grant allows",
            )
            .with_label(other_site, "is already allowed by this grant")
            .with_help("remove the redundant grant"),
        );
    }
    out
}

fn unreached(
    policy: &Policy,
    level: Level,
    rules: &[Rule],
    nevers: &[CRule],
    bounds: &[&CRule],
    out: &mut Vec<Diagnostic>,
) {
    for (rule, never) in rules.iter().zip(nevers) {
        if is_empty(never) || bounds.iter().any(|b| reaches(never, b)) {
            continue;
        }
        let name = level_name(policy, level);
        let site = rule.via.first().copied().unwrap_or(rule.span);
        out.push(
            Diagnostic::warning(
                codes::NEVER_UNREACHED,
                format!("a `never` rule of {name} is reached by no bound"),
                site,
                "no bound at or below this level grants this kind of access",
            )
            .with_help("check the rule's rights or operation, or remove it"),
        );
    }
}
