//! Translation validation: the emitted tables mean what the prover proved.
//!
//! Input: the checked `ir::Policy` and the bytes `kaplc build` is about to
//! write. Output: nothing, or `KAPL0601` errors with a concrete request on
//! which the image and the policy disagree.
//!
//! The bytes are decoded again with the verifying reader; then for every
//! plan, step and right the decoded path/exec DFA is compared, by a product
//! walk, with the prover's own automaton (`kapl-automata`) for the union
//! of that step's grants (plan-wide included, `except` removed): the
//! accepting states must coincide, and "everything beneath is granted"
//! must agree with the prover's `full_beneath`. Network tables are decoded
//! into the byte-level LPM maps and compared with the grants on every
//! boundary address and port (the decision is constant between
//! boundaries), the allowing grant included.

use crate::codes;
use kapl_automata::Dfa as PDfa;
use kapl_check::ir::{self, Policy, RuleKind};
use kapl_image::bpf::{NetMaps, normalize};
use kapl_image::{BENEATH_ALL, BENEATH_SELF, Dfa, DfaKind, NO_GRANT, NetOp, Proto};
use kapl_syntax::{Diagnostic, Witness};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Decodes `bytes` and checks them against `policy`. Returns every
/// disagreement found (at most one per plan, step and right).
pub fn validate(policy: &Policy, bytes: &[u8]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let fallback = policy
        .plans
        .first()
        .map_or(kapl_syntax::Span::new(kapl_syntax::FileId(0), 0, 0), |p| {
            p.name_span
        });
    let image = match kapl_image::read(bytes) {
        Ok(i) => i,
        Err(e) => {
            out.push(Diagnostic::error(
                codes::TRANSLATION_MISMATCH,
                format!("translation validation: the emitted image does not read back: {e}"),
                fallback,
                "while building this policy",
            ));
            return out;
        }
    };
    if image.plans.len() != policy.plans.len() {
        out.push(Diagnostic::error(
            codes::TRANSLATION_MISMATCH,
            "translation validation: the image's plan count differs from the policy's",
            fallback,
            "while building this policy",
        ));
        return out;
    }
    // Per grant: the prover's automaton of what it covers.
    let mut cache: HashMap<u32, PDfa> = HashMap::new();
    for (plan, ip) in policy.plans.iter().zip(&image.plans) {
        if ip.name != plan.name || ip.steps.len() != plan.steps.len() {
            out.push(Diagnostic::error(
                codes::TRANSLATION_MISMATCH,
                format!(
                    "translation validation: plan `{}` does not read back",
                    plan.name
                ),
                plan.name_span,
                "this plan",
            ));
            continue;
        }
        for (si, step) in plan.steps.iter().enumerate() {
            let holds: Vec<&ir::Grant> = plan
                .grants
                .iter()
                .chain(&step.grants)
                .filter_map(|g| policy.grants.get(g.0 as usize))
                .collect();
            for (kind, cols) in [(DfaKind::Fs, 4usize), (DfaKind::Exec, 1)] {
                for col in 0..cols {
                    let mut parts = Vec::new();
                    for g in &holds {
                        let covers = match (&g.rule.kind, kind) {
                            (RuleKind::Fs { rights, .. }, DfaKind::Fs) => {
                                rights.has(kapl_syntax::ast::Right::ALL[col])
                            }
                            (RuleKind::Exec { .. }, DfaKind::Exec) => true,
                            _ => false,
                        };
                        if covers {
                            let d = cache.entry(g.id.0).or_insert_with(|| grant_dfa(g));
                            parts.push(d.clone());
                        }
                    }
                    let expected = PDfa::union_all(parts.iter());
                    let table = match kind {
                        DfaKind::Fs => &ip.fs,
                        DfaKind::Exec => &ip.exec,
                    };
                    if let Some((path, why)) = compare(table, si as u32, col, &expected) {
                        let what = match kind {
                            DfaKind::Fs => kapl_syntax::ast::Right::ALL[col].as_str(),
                            DfaKind::Exec => "exec",
                        };
                        let text = String::from_utf8_lossy(&path).into_owned();
                        let witness = match kind {
                            DfaKind::Fs => Witness::Fs {
                                right: what.into(),
                                path: text.clone(),
                            },
                            DfaKind::Exec => Witness::Exec { path: text.clone() },
                        };
                        out.push(
                            Diagnostic::error(
                                codes::TRANSLATION_MISMATCH,
                                format!(
                                    "translation validation failed: step `{}` of plan `{}`, {what} `{text}`: {why}",
                                    step.name, plan.name
                                ),
                                step.name_span,
                                "the emitted tables disagree with the proved policy here",
                            )
                            .with_note("this is a compiler bug; no image was written")
                            .with_witness(witness),
                        );
                    }
                }
            }
        }
        if let Some(d) = check_net(policy, plan, ip) {
            out.push(d);
        }
    }
    out
}

fn grant_dfa(g: &ir::Grant) -> PDfa {
    match &g.rule.kind {
        RuleKind::Fs {
            patterns, except, ..
        } => {
            let p = PDfa::from_globs(patterns.iter().map(|p| &p.glob));
            if except.is_empty() {
                p
            } else {
                p.difference(&PDfa::from_globs(except.iter().map(|p| &p.glob)))
            }
        }
        RuleKind::Exec { patterns } => PDfa::from_globs(patterns.iter().map(|p| &p.glob)),
        RuleKind::Net { .. } => PDfa::nothing(),
    }
}

/// A product state: (image state, prover state).
type Pair = (u32, u32);

/// Product walk of one column of an image DFA with the prover's DFA.
fn compare(table: &Dfa, step: u32, col: usize, expected: &PDfa) -> Option<(Vec<u8>, &'static str)> {
    let mut reps: Vec<u8> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for b in 0..=255u8 {
        let ic = table.classes.get(b as usize).copied().unwrap_or(0);
        if seen.insert((ic, expected.class_of(b))) {
            reps.push(b);
        }
    }
    let mut prev: HashMap<Pair, Option<(Pair, u8)>> = HashMap::new();
    let mut q = VecDeque::new();
    let s0 = (table.start, expected.start());
    prev.insert(s0, None);
    q.push_back(s0);
    while let Some((a, b)) = q.pop_front() {
        let cell = table.cell(a, step, col);
        let why = if (cell.grant != NO_GRANT) != expected.is_accepting(b) {
            Some(if cell.grant != NO_GRANT {
                "the image allows it, the policy does not"
            } else {
                "the policy allows it, the image does not"
            })
        } else if (cell.beneath & (BENEATH_SELF | BENEATH_ALL) == BENEATH_SELF | BENEATH_ALL)
            != expected.full_beneath(b)
        {
            Some("the image and the policy disagree on whether everything beneath it is granted")
        } else {
            None
        };
        if let Some(why) = why {
            let mut path = Vec::new();
            let mut cur = (a, b);
            while let Some(Some((p, byte))) = prev.get(&cur) {
                path.push(*byte);
                cur = *p;
            }
            path.reverse();
            return Some((path, why));
        }
        for &byte in &reps {
            let n = (table.next(a, byte), expected.next(b, byte));
            if let std::collections::hash_map::Entry::Vacant(e) = prev.entry(n) {
                e.insert(Some(((a, b), byte)));
                q.push_back(n);
            }
        }
    }
    None
}

fn v4_mapped(a: IpAddr) -> IpAddr {
    normalize(a)
}

fn cidr_contains(c: &ir::Cidr, a: IpAddr) -> bool {
    match (normalize(c.addr), v4_mapped(a)) {
        (IpAddr::V4(n), IpAddr::V4(x)) => {
            let p = if matches!(c.addr, IpAddr::V6(_)) {
                c.prefix.saturating_sub(96)
            } else {
                c.prefix
            };
            let m = u32::MAX.checked_shl(32 - u32::from(p.min(32))).unwrap_or(0);
            u32::from(n) & m == u32::from(x) & m
        }
        (IpAddr::V6(n), IpAddr::V6(x)) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(c.prefix.min(128)))
                .unwrap_or(0);
            u128::from(n) & m == u128::from(x) & m
        }
        _ => false,
    }
}

/// The reference decision for a network request in one step.
pub fn net_reference(
    policy: &Policy,
    plan: &ir::Plan,
    step: usize,
    op: NetOp,
    addr: IpAddr,
    port: u16,
) -> Option<u32> {
    let s = plan.steps.get(step)?;
    plan.grants
        .iter()
        .chain(&s.grants)
        .filter_map(|g| policy.grants.get(g.0 as usize))
        .filter(|g| match &g.rule.kind {
            RuleKind::Net {
                op: gop,
                addrs,
                ports,
            } => {
                let gop = match gop {
                    kapl_syntax::ast::NetOp::Connect => NetOp::Connect,
                    kapl_syntax::ast::NetOp::Bind => NetOp::Bind,
                };
                gop == op
                    && addrs.iter().any(|c| cidr_contains(c, addr))
                    && ports.iter().any(|r| r.lo <= port && port <= r.hi)
            }
            _ => false,
        })
        .map(|g| g.id.0)
        .min()
}

fn check_net(policy: &Policy, plan: &ir::Plan, ip: &kapl_image::Plan) -> Option<Diagnostic> {
    let maps = NetMaps::of(ip);
    // Boundary addresses and ports of every grant of the plan.
    let mut addrs: BTreeSet<IpAddr> = BTreeSet::new();
    let mut ports: BTreeSet<u16> = [0u16, 65535].into_iter().collect();
    addrs.insert(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    addrs.insert(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    let ids = plan
        .grants
        .iter()
        .chain(plan.steps.iter().flat_map(|s| &s.grants));
    for g in ids.filter_map(|g| policy.grants.get(g.0 as usize)) {
        if let RuleKind::Net {
            addrs: a, ports: p, ..
        } = &g.rule.kind
        {
            for c in a {
                match normalize(c.addr) {
                    IpAddr::V4(n) => {
                        let pre = if matches!(c.addr, IpAddr::V6(_)) {
                            c.prefix.saturating_sub(96)
                        } else {
                            c.prefix
                        };
                        let lo = u32::from(n)
                            & u32::MAX
                                .checked_shl(32 - u32::from(pre.min(32)))
                                .unwrap_or(0);
                        let hi = lo | u32::MAX.checked_shr(u32::from(pre.min(32))).unwrap_or(0);
                        for x in [Some(lo), hi.checked_add(1), lo.checked_sub(1), Some(hi)]
                            .into_iter()
                            .flatten()
                        {
                            addrs.insert(IpAddr::V4(Ipv4Addr::from(x)));
                        }
                    }
                    IpAddr::V6(n) => {
                        let pre = u32::from(c.prefix.min(128));
                        let lo = u128::from(n) & u128::MAX.checked_shl(128 - pre).unwrap_or(0);
                        let hi = lo | u128::MAX.checked_shr(pre).unwrap_or(0);
                        for x in [Some(lo), hi.checked_add(1), lo.checked_sub(1), Some(hi)]
                            .into_iter()
                            .flatten()
                        {
                            addrs.insert(IpAddr::V6(Ipv6Addr::from(x)));
                        }
                    }
                }
            }
            for r in p {
                for x in [
                    Some(r.lo),
                    Some(r.hi),
                    r.lo.checked_sub(1),
                    r.hi.checked_add(1),
                ]
                .into_iter()
                .flatten()
                {
                    ports.insert(x);
                }
            }
        }
    }
    for (si, step) in plan.steps.iter().enumerate() {
        for op in [NetOp::Connect, NetOp::Bind] {
            for proto in Proto::ALL {
                for &a in &addrs {
                    for &port in &ports {
                        let want = net_reference(policy, plan, si, op, a, port);
                        let got = maps.lookup(si as u32, op, proto, a, port);
                        if want != got {
                            return Some(
                                Diagnostic::error(
                                    codes::TRANSLATION_MISMATCH,
                                    format!(
                                        "translation validation failed: step `{}` of plan `{}`, {} {} {a} port {port}: the policy gives {:?}, the image {:?}",
                                        step.name,
                                        plan.name,
                                        proto.as_str(),
                                        op.as_str(),
                                        want,
                                        got
                                    ),
                                    step.name_span,
                                    "the emitted network tables disagree with the proved policy here",
                                )
                                .with_note("this is a compiler bug; no image was written")
                                .with_witness(Witness::Net {
                                    op: op.as_str().into(),
                                    addr: a.to_string(),
                                    port,
                                }),
                            );
                        }
                    }
                }
            }
        }
    }
    None
}
