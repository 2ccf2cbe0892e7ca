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
use kapl_check::semantics as sem;
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
    // Per set of grants: the union (columns often share their grant set).
    let mut unions: HashMap<Vec<u32>, PDfa> = HashMap::new();
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
        let rev_fs = reverse(&ip.fs);
        let rev_exec = reverse(&ip.exec);
        for (si, step) in plan.steps.iter().enumerate() {
            let holds: Vec<&ir::Grant> = plan
                .grants
                .iter()
                .chain(&step.grants)
                .filter_map(|g| policy.grants.get(g.0 as usize))
                .collect();
            for (kind, cols) in [(DfaKind::Fs, 4usize), (DfaKind::Exec, 1)] {
                for col in 0..cols {
                    let mut ids: Vec<u32> = Vec::new();
                    for g in &holds {
                        let covers = match (&g.rule.kind, kind) {
                            (RuleKind::Fs { rights, .. }, DfaKind::Fs) => {
                                rights.has(kapl_syntax::ast::Right::ALL[col])
                            }
                            (RuleKind::Exec { .. }, DfaKind::Exec) => true,
                            _ => false,
                        };
                        if covers {
                            ids.push(g.id.0);
                            cache.entry(g.id.0).or_insert_with(|| grant_dfa(g));
                        }
                    }
                    ids.sort_unstable();
                    let expected = unions.entry(ids.clone()).or_insert_with(|| {
                        PDfa::union_all(ids.iter().filter_map(|i| cache.get(i)))
                    });
                    let (table, rev) = match kind {
                        DfaKind::Fs => (&ip.fs, &rev_fs),
                        DfaKind::Exec => (&ip.exec, &rev_exec),
                    };
                    if let Some((path, why)) = compare(table, rev, si as u32, col, expected) {
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

/// Per image state: whether some state accepting in (step, col) is
/// reachable (the column's live states).
fn live_states(table: &Dfa, step: u32, col: usize, rev: &[Vec<u32>]) -> Vec<bool> {
    let n = table.states();
    let mut live = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    for (q, l) in live.iter_mut().enumerate() {
        if table.cell(q as u32, step, col).grant != NO_GRANT {
            *l = true;
            stack.push(q);
        }
    }
    while let Some(q) = stack.pop() {
        for &p in rev.get(q).map_or(&[][..], Vec::as_slice) {
            if let Some(l) = live.get_mut(p as usize)
                && !*l
            {
                *l = true;
                stack.push(p as usize);
            }
        }
    }
    live
}

/// Reverse transition lists of an image DFA.
fn reverse(table: &Dfa) -> Vec<Vec<u32>> {
    let n = table.states();
    let cc = table.class_count as usize;
    let mut rev = vec![Vec::new(); n];
    for q in 0..n {
        for c in 0..cc {
            if let Some(&t) = table.transitions.get(q * cc + c)
                && let Some(r) = rev.get_mut(t as usize)
            {
                r.push(q as u32);
            }
        }
    }
    rev
}

/// Product walk of one column of an image DFA with the prover's DFA:
/// acceptance must coincide on every reachable pair, and so must "the
/// path and everything beneath it are granted". Pairs where both sides
/// are dead are not explored further (nothing beneath can differ).
fn compare(
    table: &Dfa,
    rev: &[Vec<u32>],
    step: u32,
    col: usize,
    expected: &PDfa,
) -> Option<(Vec<u8>, &'static str)> {
    let live = live_states(table, step, col, rev);
    let mut reps: Vec<u8> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for b in 0..=255u8 {
        let ic = table.classes.get(b as usize).copied().unwrap_or(0);
        if seen.insert((ic, expected.class_of(b))) {
            reps.push(b);
        }
    }
    let mut full_memo: HashMap<u32, bool> = HashMap::new();
    let mut prev: HashMap<Pair, Option<(Pair, u8)>> = HashMap::new();
    let mut q = VecDeque::new();
    let s0 = (table.start, expected.start());
    prev.insert(s0, None);
    q.push_back(s0);
    while let Some((a, b)) = q.pop_front() {
        let cell = table.cell(a, step, col);
        let accepts = expected.is_accepting(b);
        let why = if (cell.grant != NO_GRANT) != accepts {
            Some(if cell.grant != NO_GRANT {
                "the image allows it, the policy does not"
            } else {
                "the policy allows it, the image does not"
            })
        } else {
            let image_full =
                cell.beneath & (BENEATH_SELF | BENEATH_ALL) == BENEATH_SELF | BENEATH_ALL;
            let prover_full = accepts
                && *full_memo
                    .entry(b)
                    .or_insert_with(|| expected.full_beneath(b));
            (image_full != prover_full).then_some(
                "the image and the policy disagree on whether everything beneath it is granted",
            )
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
        if !live.get(a as usize).copied().unwrap_or(false) && expected.is_dead(b) {
            continue;
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

/// The reference decision for a network request in one step: the lowest-id
/// grant of the step (plan-wide included) whose rule covers it under the
/// prover's reference semantics (`kapl_check::semantics`), both protocols
/// alike.
pub fn net_reference(
    policy: &Policy,
    plan: &ir::Plan,
    step: usize,
    op: NetOp,
    addr: IpAddr,
    port: u16,
) -> Option<u32> {
    let s = plan.steps.get(step)?;
    let req = sem::Request::Net {
        op: match op {
            NetOp::Connect => kapl_syntax::ast::NetOp::Connect,
            NetOp::Bind => kapl_syntax::ast::NetOp::Bind,
        },
        addr,
        port,
        proto: sem::Proto::Tcp,
    };
    plan.grants
        .iter()
        .chain(&s.grants)
        .filter_map(|g| policy.grants.get(g.0 as usize))
        .filter(|g| sem::rule_covers(&g.rule.kind, &req))
        .map(|g| g.id.0)
        .min()
}

fn boundaries_v4(lo: u32, hi: u32, addrs: &mut BTreeSet<IpAddr>) {
    for x in [Some(lo), hi.checked_add(1), lo.checked_sub(1), Some(hi)]
        .into_iter()
        .flatten()
    {
        addrs.insert(IpAddr::V4(Ipv4Addr::from(x)));
    }
}

fn boundaries_v6(lo: u128, hi: u128, addrs: &mut BTreeSet<IpAddr>) {
    for x in [Some(lo), hi.checked_add(1), lo.checked_sub(1), Some(hi)]
        .into_iter()
        .flatten()
    {
        addrs.insert(IpAddr::V6(Ipv6Addr::from(x)));
    }
}

fn block_boundaries(addr: IpAddr, prefix: u8, addrs: &mut BTreeSet<IpAddr>) {
    let pre4 = |p: u8| u32::from(p.min(32));
    match (normalize(addr), addr) {
        (IpAddr::V4(n), orig) => {
            let pre = if matches!(orig, IpAddr::V6(_)) {
                prefix.saturating_sub(96)
            } else {
                prefix
            };
            let lo = u32::from(n) & u32::MAX.checked_shl(32 - pre4(pre)).unwrap_or(0);
            let hi = lo | u32::MAX.checked_shr(pre4(pre)).unwrap_or(0);
            boundaries_v4(lo, hi, addrs);
        }
        (IpAddr::V6(n), _) => {
            let pre = u32::from(prefix.min(128));
            let lo = u128::from(n) & u128::MAX.checked_shl(128 - pre).unwrap_or(0);
            let hi = lo | u128::MAX.checked_shr(pre).unwrap_or(0);
            boundaries_v6(lo, hi, addrs);
        }
    }
}

fn check_net(policy: &Policy, plan: &ir::Plan, ip: &kapl_image::Plan) -> Option<Diagnostic> {
    let maps = NetMaps::of(ip);
    for (si, step) in plan.steps.iter().enumerate() {
        // The decision of both the grants and the image is constant between
        // the boundaries of their address blocks and port ranges, so
        // probing every boundary of this step (grants' and entries') is an
        // exhaustive comparison.
        let mut addrs: BTreeSet<IpAddr> = BTreeSet::new();
        let mut ports: BTreeSet<u16> = [0u16, 65535].into_iter().collect();
        addrs.insert(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        addrs.insert(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        addrs.insert(IpAddr::V4(Ipv4Addr::BROADCAST));
        addrs.insert(IpAddr::V6(Ipv6Addr::from(u128::MAX)));
        let ids = plan.grants.iter().chain(&step.grants);
        for g in ids.filter_map(|g| policy.grants.get(g.0 as usize)) {
            if let RuleKind::Net {
                addrs: a, ports: p, ..
            } = &g.rule.kind
            {
                for c in a {
                    block_boundaries(c.addr, c.prefix, &mut addrs);
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
        for e in ip.net.iter().filter(|e| e.step == si as u32) {
            block_boundaries(e.addr, e.prefix, &mut addrs);
            for r in &e.ports {
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
        // Entries naming steps that do not exist are refused by the reader.
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
                                        "translation validation failed: step `{}` of plan `{}`, {} {} {a} port {port}: the policy gives {}, the image {}",
                                        step.name,
                                        plan.name,
                                        proto.as_str(),
                                        op.as_str(),
                                        want.map_or("deny".into(), |g| format!("grant {g}")),
                                        got.map_or("deny".into(), |g| format!("grant {g}")),
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
