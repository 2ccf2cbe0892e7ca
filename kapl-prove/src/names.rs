//! Host-name containment: the part of a `net connect` rule that names
//! hosts, proved in plain code (the solver sees addresses only).
//!
//! Input: the IR policy. Output: a diagnostic for every grant (or intent
//! bound rule) whose host-name patterns reach outside its bound or into a
//! `never` name rule above it, with a concrete witness name.
//!
//! The request model: a connect by name is (name, address, port), the
//! address one the name was resolved to. A name rule covers it when the
//! name matches a pattern, the port is listed, and the address is public
//! (`names::is_public`) and in no address range of a `never net connect`
//! rule above the rule for that port (the runtime refuses such addresses).
//! So a name subject on a port is inside its bound when its patterns lie
//! inside the union of the bound's name patterns for that port
//! (`names::uncovered`, exact), or when the bound's address blocks for
//! that port cover every admitted address (then any name is fine). A
//! `never` name rule is reached when a pattern overlaps it
//! (`names::overlap`) on a common port.

use crate::report::{level_name, who};
use crate::{Level, Subject};
use kapl_check::ir::{Parent, Policy, PortRange, Rule, RuleKind};
use kapl_check::semantics::{addr_of_canonical, canonical_addr, cidr_range, display_addr};
use kapl_syntax::ast::NetOp;
use kapl_syntax::{Diagnostic, SourceMap, Witness, codes, names};

/// Every finding about host names, at most one per subject.
pub(crate) fn check(policy: &Policy, sources: &SourceMap) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (i, intent) in policy.intents.iter().enumerate() {
        let Some(o) = policy.objectives.get(intent.objective.0 as usize) else {
            continue;
        };
        for (r, rule) in intent.bound.iter().enumerate() {
            let subject = Subject::IntentBound {
                intent: kapl_check::ir::IntentId(i as u32),
                rule: r,
            };
            let nevers = [(Level::Objective(intent.objective), o.never.as_slice())];
            out.extend(one(
                policy,
                sources,
                subject,
                rule,
                (Level::Objective(intent.objective), &o.bound),
                &nevers,
                false,
            ));
        }
    }
    for g in &policy.grants {
        let Some(plan) = policy.plans.get(g.plan.0 as usize) else {
            continue;
        };
        let found = match plan.parent {
            Parent::Objective(o) => policy.objectives.get(o.0 as usize).map(|x| {
                one(
                    policy,
                    sources,
                    Subject::Grant(g.id),
                    &g.rule,
                    (Level::Objective(o), &x.bound),
                    &[(Level::Objective(o), x.never.as_slice())],
                    true,
                )
            }),
            Parent::Intent(i) => policy.intents.get(i.0 as usize).and_then(|x| {
                let o = policy.objectives.get(x.objective.0 as usize)?;
                Some(one(
                    policy,
                    sources,
                    Subject::Grant(g.id),
                    &g.rule,
                    (Level::Intent(i), &x.bound),
                    &[
                        (Level::Objective(x.objective), o.never.as_slice()),
                        (Level::Intent(i), x.never.as_slice()),
                    ],
                    true,
                ))
            }),
        };
        out.extend(found.flatten());
    }
    out
}

/// A `net connect` rule's parts, if it is one.
fn connect(rule: &Rule) -> Option<(&[kapl_check::ir::Cidr], &[String], &[PortRange])> {
    match &rule.kind {
        RuleKind::Net {
            op: NetOp::Connect,
            addrs,
            names,
            ports,
        } => Some((addrs, names, ports)),
        _ => None,
    }
}

fn covers(ports: &[PortRange], lo: u16, hi: u16) -> bool {
    ports.iter().any(|p| p.lo <= lo && hi <= p.hi)
}

/// The first subject finding, as a diagnostic.
#[allow(clippy::too_many_arguments)]
fn one(
    policy: &Policy,
    sources: &SourceMap,
    subject: Subject,
    rule: &Rule,
    bound: (Level, &[Rule]),
    nevers: &[(Level, &[Rule])],
    is_grant: bool,
) -> Option<Diagnostic> {
    let (_, pats, ports) = connect(rule)?;
    if pats.is_empty() {
        return None;
    }
    let site = rule.via.first().copied().unwrap_or(rule.span);
    let what = if is_grant {
        "this grant"
    } else {
        "this bound rule"
    };
    let who = who(policy, subject);
    // Port segments on which every rule involved is all-or-nothing.
    let mut cuts: Vec<u32> = bound
        .1
        .iter()
        .chain(nevers.iter().flat_map(|(_, r)| r.iter()))
        .filter_map(connect)
        .flat_map(|(_, _, p)| p)
        .chain(ports)
        .flat_map(|p| [u32::from(p.lo), u32::from(p.hi) + 1])
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    for w in cuts.windows(2) {
        let (lo, hi) = (w[0] as u16, (w[1] - 1) as u16);
        if !covers(ports, lo, hi) {
            continue;
        }
        // `never` name rules first: a name that no bound could excuse.
        for (level, rules) in nevers {
            for n in rules.iter() {
                let Some((_, npats, nports)) = connect(n) else {
                    continue;
                };
                if !covers(nports, lo, hi) {
                    continue;
                }
                for p in pats {
                    if let Some(w) = npats.iter().find_map(|q| names::overlap(p, q)) {
                        let lname = level_name(policy, *level);
                        let req = format!("connect to `{w}` port {lo}");
                        return Some(
                            Diagnostic::error(
                                codes::GRANT_REACHES_NEVER,
                                format!("{who} may {req}, which {lname} forbids"),
                                site,
                                format!("{what} allows {req}"),
                            )
                            .with_label(
                                n.span,
                                format!("forbidden by this `never` rule of {lname}"),
                            )
                            .with_help(format!(
                                "narrow the host names or ports so they avoid `{}`",
                                sources.snippet(n.span)
                            ))
                            .with_witness(Witness::Name { name: w, port: lo }),
                        );
                    }
                }
            }
        }
        // Addresses a name admits here that the bound's blocks miss.
        let mut held: Vec<(u128, u128)> = reserved();
        let mut bound_names: Vec<&str> = Vec::new();
        for r in bound.1.iter().filter_map(connect) {
            if covers(r.2, lo, hi) {
                held.extend(r.0.iter().map(cidr_range));
                bound_names.extend(r.1.iter().map(String::as_str));
            }
        }
        for (_, rules) in nevers.iter().take(if is_grant { usize::MAX } else { 1 }) {
            for r in rules.iter().filter_map(connect) {
                if covers(r.2, lo, hi) {
                    held.extend(r.0.iter().map(cidr_range));
                }
            }
        }
        // An IPv4 witness address when one is left, else any.
        let v4 = canonical_addr(std::net::Ipv4Addr::UNSPECIFIED.into());
        let v4_end = v4 | u128::from(u32::MAX);
        let mut v4_only = held.clone();
        v4_only.extend([(0, v4 - 1), (v4_end + 1, u128::MAX)]);
        let Some(addr) = first_outside(v4_only).or_else(|| first_outside(held)) else {
            continue; // the bound's addresses cover every admitted address
        };
        for p in pats {
            if let Some(w) = names::uncovered(p, &bound_names) {
                let container = level_name(policy, bound.0);
                let req = format!("connect to `{w}` port {lo}");
                let addr = display_addr(addr_of_canonical(addr));
                let code = if is_grant {
                    codes::GRANT_EXCEEDS_BOUND
                } else {
                    codes::INTENT_EXCEEDS_OBJECTIVE
                };
                return Some(
                    Diagnostic::error(
                        code,
                        format!("{who} may {req}, which {container} does not bound"),
                        site,
                        format!("{what} allows {req}"),
                    )
                    .with_note(format!(
                        "`{w}` matches `{p}` and may resolve to `{addr}`, which no address rule of {container}'s bound covers for port {lo}"
                    ))
                    .with_help(format!(
                        "narrow the host names to those {container}'s bound names for port {lo}, or widen that bound"
                    ))
                    .with_witness(Witness::Name { name: w, port: lo }),
                );
            }
        }
    }
    None
}

/// The reserved ranges in the one 128-bit space (IPv4 as mapped IPv6).
fn reserved() -> Vec<(u128, u128)> {
    names::RESERVED
        .iter()
        .map(|&(net, prefix)| {
            let (net, prefix) = match net {
                std::net::IpAddr::V4(_) => (canonical_addr(net), u32::from(prefix) + 96),
                std::net::IpAddr::V6(_) => (canonical_addr(net), u32::from(prefix)),
            };
            let host = u128::MAX.checked_shr(prefix).unwrap_or(0);
            (net & !host, net | host)
        })
        .collect()
}

/// The lowest address in no range of `held`, if any.
fn first_outside(mut held: Vec<(u128, u128)>) -> Option<u128> {
    held.sort_unstable();
    let mut next: u128 = 0;
    for (a, b) in held {
        if a > next {
            return Some(next);
        }
        if b >= next {
            if b == u128::MAX {
                return None;
            }
            next = b + 1;
        }
    }
    Some(next)
}
