//! Diagnostics for obligation outcomes: the witness in words, the primary
//! label on the grant (or intent bound rule), a secondary label on the
//! bound or `never` rule it breaks, and a `help:` with a fix.
//!
//! Input: an [`Outcome`] and the policy it is about. Output: at most one
//! [`Diagnostic`] per outcome.

use crate::{Breach, Compiled, Finding, Level, Outcome, Subject, Verdict};
use kapl_check::compiled::CRule;
use kapl_check::ir::{Parent, Policy, Rule, RuleKind};
use kapl_check::semantics::{Request, cidr_contains, paths_cover, patterns_match};
use kapl_syntax::{Diagnostic, SourceMap, Span, codes};

/// Who a subject is, in words: "step `s` of plan `p`", "plan `p`",
/// "intent `i`".
pub(crate) fn who(policy: &Policy, subject: Subject) -> String {
    match subject {
        Subject::IntentBound { intent, .. } => policy.intents.get(intent.0 as usize).map_or_else(
            || "an intent".to_string(),
            |i| format!("intent `{}`", i.name),
        ),
        Subject::Grant(g) => {
            let Some(grant) = policy.grants.get(g.0 as usize) else {
                return "a grant".to_string();
            };
            let Some(plan) = policy.plans.get(grant.plan.0 as usize) else {
                return "a plan".to_string();
            };
            match grant.step.and_then(|s| plan.steps.get(s.0 as usize)) {
                Some(step) => format!("step `{}` of plan `{}`", step.name, plan.name),
                None => format!("plan `{}`", plan.name),
            }
        }
    }
}

/// A level in words: "objective `o`", "intent `i`".
pub(crate) fn level_name(policy: &Policy, level: Level) -> String {
    match level {
        Level::Objective(o) => policy.objectives.get(o.0 as usize).map_or_else(
            || "an objective".to_string(),
            |o| format!("objective `{}`", o.name),
        ),
        Level::Intent(i) => policy.intents.get(i.0 as usize).map_or_else(
            || "an intent".to_string(),
            |i| format!("intent `{}`", i.name),
        ),
    }
}

/// The subject's rule, the span to put the primary label on, and the span
/// of the rule text when that is elsewhere (inside an authority).
fn subject_rule(policy: &Policy, subject: Subject) -> Option<(&Rule, Span, Option<Span>)> {
    let (rule, site) = match subject {
        Subject::IntentBound { intent, rule } => {
            let r = policy.intents.get(intent.0 as usize)?.bound.get(rule)?;
            (r, r.via.first().copied().unwrap_or(r.span))
        }
        Subject::Grant(g) => {
            let grant = policy.grants.get(g.0 as usize)?;
            let r = &grant.rule;
            (r, if r.via.is_empty() { r.span } else { grant.site })
        }
    };
    let elsewhere = (site != rule.span).then_some(rule.span);
    Some((rule, site, elsewhere))
}

/// The bound a subject must stay in: its level and rules.
fn bound_of(policy: &Policy, subject: Subject) -> Option<(Level, &[Rule])> {
    match subject {
        Subject::IntentBound { intent, .. } => {
            let o = policy.intents.get(intent.0 as usize)?.objective;
            Some((
                Level::Objective(o),
                &policy.objectives.get(o.0 as usize)?.bound,
            ))
        }
        Subject::Grant(g) => {
            let plan = policy
                .plans
                .get(policy.grants.get(g.0 as usize)?.plan.0 as usize)?;
            match plan.parent {
                Parent::Objective(o) => Some((
                    Level::Objective(o),
                    &policy.objectives.get(o.0 as usize)?.bound,
                )),
                Parent::Intent(i) => {
                    Some((Level::Intent(i), &policy.intents.get(i.0 as usize)?.bound))
                }
            }
        }
    }
}

fn level_rules(policy: &Policy, level: Level, never: bool) -> &[Rule] {
    match level {
        Level::Objective(o) => policy.objectives.get(o.0 as usize).map_or(&[], |o| {
            if never {
                o.never.as_slice()
            } else {
                o.bound.as_slice()
            }
        }),
        Level::Intent(i) => policy.intents.get(i.0 as usize).map_or(&[], |i| {
            if never {
                i.never.as_slice()
            } else {
                i.bound.as_slice()
            }
        }),
    }
}

fn compiled_bound(c: &Compiled, level: Level) -> Option<&kapl_check::compiled::Level> {
    match level {
        Level::Objective(o) => c.objective_bound.get(o.0 as usize),
        Level::Intent(i) => c.intent_bound.get(i.0 as usize),
    }
}

/// How the chosen bound rule relates to the witness.
enum Near {
    /// It holds the witness's path (or address) but not its right (or
    /// port): the rule asks for more than the bound gives there.
    Lacks(String),
    /// It is the closest rule of the same kind: the pattern must narrow.
    Narrow,
}

/// The bound rule closest to what the subject asked for: one that holds the
/// witness's path or address but lacks its right or port, else one of the
/// same kind and right that overlaps the subject, else any of the kind.
fn nearest_bound_rule(
    c: &Compiled,
    level: Level,
    rules: &[Rule],
    subject: &CRule,
    witness: &Request,
) -> Option<(usize, Near)> {
    let compiled = compiled_bound(c, level)?;
    for (i, r) in rules.iter().enumerate() {
        match (&r.kind, witness) {
            (
                RuleKind::Fs {
                    patterns, except, ..
                },
                Request::Fs { right, path },
            ) if paths_cover(patterns, except, path) => {
                return Some((i, Near::Lacks(format!("`{}`", right.as_str()))));
            }
            (
                RuleKind::Net { op, addrs, .. },
                Request::Net {
                    op: wop,
                    addr,
                    port,
                    ..
                },
            ) if op == wop && addrs.iter().any(|a| cidr_contains(a, *addr)) => {
                return Some((i, Near::Lacks(format!("port {port}"))));
            }
            _ => {}
        }
    }
    let same_kind = |i: usize, strict: bool| -> bool {
        match (rules.get(i).map(|r| &r.kind), witness) {
            (Some(RuleKind::Fs { rights, .. }), Request::Fs { right, .. }) => {
                !strict || rights.has(*right)
            }
            (Some(RuleKind::Exec { .. }), Request::Exec { .. }) => true,
            (Some(RuleKind::Net { op, .. }), Request::Net { op: wop, .. }) => op == wop,
            _ => false,
        }
    };
    let overlaps = |i: usize| -> bool {
        match (compiled.rules.get(i), subject) {
            (Some(CRule::Fs(a)), CRule::Fs(b)) | (Some(CRule::Exec(a)), CRule::Exec(b)) => {
                a.dfa.intersects(&b.dfa)
            }
            (Some(CRule::Net(a)), CRule::Net(b)) => a
                .addrs
                .iter()
                .any(|x| b.addrs.iter().any(|y| x.0 <= y.1 && y.0 <= x.1)),
            _ => false,
        }
    };
    let n = rules.len();
    (0..n)
        .find(|&i| same_kind(i, true) && overlaps(i))
        .or_else(|| (0..n).find(|&i| same_kind(i, false) && overlaps(i)))
        .or_else(|| (0..n).find(|&i| same_kind(i, true)))
        .or_else(|| (0..n).find(|&i| same_kind(i, false)))
        .map(|i| (i, Near::Narrow))
}

fn snippet(sources: &SourceMap, span: Span) -> String {
    let s = sources
        .snippet(span)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// The `never` rule's patterns that match the witness, as an `except`.
fn except_for(rule: &Rule, witness: &Request) -> Option<String> {
    let (RuleKind::Fs { patterns, .. } | RuleKind::Exec { patterns }) = &rule.kind else {
        return None;
    };
    let path = match witness {
        Request::Fs { path, .. } | Request::Exec { path } => path,
        Request::Net { .. } => return None,
    };
    let hits: Vec<String> = patterns
        .iter()
        .filter(|p| patterns_match(std::slice::from_ref(*p), path))
        .map(|p| format!("\"{}\"", p.source.trim_matches('"')))
        .collect();
    (!hits.is_empty()).then(|| hits.join(", "))
}

/// The diagnostic for one outcome (`None` when proved).
pub(crate) fn diagnostic(
    policy: &Policy,
    sources: &SourceMap,
    c: &Compiled,
    outcome: &Outcome,
) -> Option<Diagnostic> {
    let subject = outcome.subject;
    let (_, site, elsewhere) = subject_rule(policy, subject)?;
    let who = who(policy, subject);
    let (bound_level, bound_rules) = bound_of(policy, subject)?;
    let container = level_name(policy, bound_level);
    let is_grant = matches!(subject, Subject::Grant(_));
    let what = if is_grant {
        "this grant"
    } else {
        "this bound rule"
    };
    let with_origin = |d: Diagnostic| match elsewhere {
        Some(span) => d.with_label(span, "the rule comes from here"),
        None => d,
    };
    let subject_c = match subject {
        Subject::Grant(g) => c.grants.get(g.0 as usize),
        Subject::IntentBound { intent, rule } => c
            .intent_bound
            .get(intent.0 as usize)
            .and_then(|l| l.rules.get(rule)),
    };
    match &outcome.verdict {
        Verdict::Proved => None,
        Verdict::Unknown(why) => Some(with_origin(
            Diagnostic::error(
                codes::PROOF_UNKNOWN,
                format!("could not prove that {who} stays inside {container}: the solver gave up ({why})"),
                site,
                "not proved",
            )
            .with_help("split or simplify the rule; the policy is rejected until every obligation is proved"),
        )),
        Verdict::Internal(msg) => Some(with_origin(
            Diagnostic::error(codes::PROOF_INTERNAL, format!("internal prover error: {msg}"), site, "not proved")
                .with_help("this is a bug in kaplc; the policy is rejected to stay safe"),
        )),
        Verdict::Violated { first, also } => {
            let Finding { breach, witness } = first;
            let mut d = match breach {
                Breach::OutsideBound => {
                    let code = if is_grant { codes::GRANT_EXCEEDS_BOUND } else { codes::INTENT_EXCEEDS_OBJECTIVE };
                    let mut d = Diagnostic::error(
                        code,
                        format!("{who} may {witness}, which {container} does not bound"),
                        site,
                        format!("{what} allows {witness}"),
                    );
                    let nearest = subject_c.and_then(|s| nearest_bound_rule(c, bound_level, bound_rules, s, witness));
                    match nearest.and_then(|(i, near)| bound_rules.get(i).map(|b| (b, near))) {
                        Some((b, Near::Lacks(what))) => {
                            let fit = snippet(sources, b.span);
                            d = d.with_label(b.span, format!("{container}'s bound covers this, but not for {what}"));
                            d.with_help(match witness {
                                Request::Net { .. } => format!(
                                    "narrow the ports to those `{fit}` of {container}'s bound allows, or widen that bound"
                                ),
                                _ => format!(
                                    "drop {what} from this rule (`{fit}` is what {container} allows there), or widen that bound"
                                ),
                            })
                        }
                        Some((b, Near::Narrow)) => {
                            d = d.with_label(b.span, format!("{container}'s bound allows only this"));
                            let fit = snippet(sources, b.span);
                            let help = match witness {
                                Request::Net { .. } => format!(
                                    "narrow the addresses and ports to fit `{fit}` of {container}'s bound, or widen that bound"
                                ),
                                _ => format!("narrow the pattern to fit `{fit}` of {container}'s bound, or widen that bound"),
                            };
                            d.with_help(help)
                        }
                        None => {
                            let name_span = match bound_level {
                                Level::Objective(o) => policy.objectives.get(o.0 as usize).map(|o| o.name_span),
                                Level::Intent(i) => policy.intents.get(i.0 as usize).map(|i| i.name_span),
                            };
                            if let Some(span) = name_span {
                                d = d.with_label(span, format!("{container}'s bound has no rule for this"));
                            }
                            d.with_help(format!("remove this rule, or add what it needs to {container}'s bound"))
                        }
                    }
                }
                Breach::Never { level, rule: j } => never_diagnostic(policy, sources, &who, what, site, *level, *j, witness),
            };
            if let Some(Finding {
                breach: Breach::Never { level, rule: j },
                witness: w2,
            }) = also
            {
                let lname = level_name(policy, *level);
                if let Some(n) = level_rules(policy, *level, true).get(*j) {
                    d = d.with_label(n.span, format!("it also reaches this `never` rule of {lname}"));
                }
                d = d.with_note(format!("{who} also may {w2}, which {lname} forbids"));
            }
            Some(with_origin(d.with_witness(witness.to_witness())))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn never_diagnostic(
    policy: &Policy,
    sources: &SourceMap,
    who: &str,
    what: &str,
    site: Span,
    level: Level,
    j: usize,
    witness: &Request,
) -> Diagnostic {
    let lname = level_name(policy, level);
    let mut d = Diagnostic::error(
        codes::GRANT_REACHES_NEVER,
        format!("{who} may {witness}, which {lname} forbids"),
        site,
        format!("{what} allows {witness}"),
    );
    let Some(n) = level_rules(policy, level, true).get(j) else {
        return d.with_help(format!(
            "narrow the rule so it stays out of {lname}'s `never` rules"
        ));
    };
    d = d.with_label(n.span, format!("forbidden by this `never` rule of {lname}"));
    let help = match (witness, except_for(n, witness)) {
        (Request::Fs { .. }, Some(pats)) => format!("add `except {pats}` to the grant"),
        (Request::Exec { .. }, Some(pats)) => format!("narrow the pattern so it leaves out {pats}"),
        _ => format!(
            "narrow the addresses or ports so they avoid `{}`",
            snippet(sources, n.span)
        ),
    };
    d.with_help(help)
}
