//! Translation validation: the emitted tables mean what the prover proved.
//!
//! Input: the checked `ir::Policy`, the prover's per-grant automata and the
//! bytes `kaplc build` is about to write. Output: nothing, or `KAPL0601`
//! errors with a concrete request on which the image and the policy
//! disagree.
//!
//! The bytes are decoded again with the verifying reader. Then, per plan,
//! each decoded path/exec DFA is walked in product with the prover's
//! automata of the plan's grants (one walk per DFA, all steps and rights
//! at once; a product state is the image state and the states of the grant
//! automata still alive, so the walk is linear in the product's size).
//! On every reachable pair and for every step and right, the image must
//! credit exactly the grant the reference semantics credits (the lowest
//! id among the step's grants, plan-wide included, whose language holds
//! the path, `except` removed), or nothing when none does; and its
//! "this path is granted" flag must agree. Then "everything strictly
//! beneath is granted" (what Landlock's beneath rules rely on) is
//! recomputed on the decoded DFA, whose acceptance now matches the
//! policy's, and must equal the image's flag on every reachable state.
//! Network tables are decoded into the byte-level LPM maps and compared
//! with the grants on every boundary address and port (the decision is
//! constant between boundaries), the credited grant included.

use crate::codes;
use kapl_automata::Dfa as PDfa;
use kapl_check::GrantAutomata;
use kapl_check::ir::{self, Policy, RuleKind};
use kapl_check::semantics as sem;
use kapl_image::bpf::{NetMaps, normalize};
use kapl_image::{BENEATH_ALL, BENEATH_SELF, Dfa, DfaKind, NO_GRANT, NetOp, Proto};
use kapl_syntax::{Diagnostic, Witness};
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Decodes `bytes` and checks them against `policy`, building the grants'
/// automata first (use [`validate_with`] to reuse the prover's).
pub fn validate(policy: &Policy, bytes: &[u8]) -> Vec<Diagnostic> {
    validate_with(policy, &GrantAutomata::new(policy), bytes)
}

/// Decodes `bytes` and checks them against `policy` and the prover's
/// per-grant automata. Returns every disagreement found (at most one per
/// plan and table). Automata not built for this policy are rebuilt.
pub fn validate_with(policy: &Policy, automata: &GrantAutomata, bytes: &[u8]) -> Vec<Diagnostic> {
    if !automata.fits(policy) {
        return validate(policy, bytes);
    }
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
        for (kind, table) in [(DfaKind::Fs, &ip.fs), (DfaKind::Exec, &ip.exec)] {
            if let Some(m) = check_paths(policy, automata, plan, table, kind) {
                out.push(mismatch(plan, kind, m));
            }
        }
        if let Some(d) = check_net(policy, plan, ip) {
            out.push(d);
        }
        if let Some(d) = check_names(policy, plan, ip) {
            out.push(d);
        }
    }
    if let Some(t) = &image.objective {
        out.extend(check_objective(policy, t, fallback));
    }
    out
}

/// An objective image's tables against the bounds and `never` rules they
/// were compiled from: each level is the synthetic two-step plan codegen
/// laid out (`objective::synthetic`), checked like a plan.
fn check_objective(
    policy: &Policy,
    t: &kapl_image::ObjectiveTables,
    fallback: kapl_syntax::Span,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let (syn, levels) = crate::objective::synthetic(policy);
    let automata = GrantAutomata::new(&syn);
    if t.levels.len() != levels.len() || t.rules.len() != syn.grants.len() {
        out.push(Diagnostic::error(
            codes::TRANSLATION_MISMATCH,
            "translation validation: the objective tables do not read back",
            fallback,
            "while building this policy",
        ));
        return out;
    }
    for ((plan, level), l) in syn.plans.iter().zip(levels).zip(&t.levels) {
        if l.level != level {
            out.push(Diagnostic::error(
                codes::TRANSLATION_MISMATCH,
                "translation validation: the objective tables are out of order",
                plan.name_span,
                "this objective or intent",
            ));
            continue;
        }
        for (kind, table) in [(DfaKind::Fs, &l.fs), (DfaKind::Exec, &l.exec)] {
            if let Some(m) = check_paths(&syn, &automata, plan, table, kind) {
                out.push(mismatch(plan, kind, m));
            }
        }
        let as_plan = kapl_image::Plan {
            name: plan.name.clone(),
            about: None,
            objective: 0,
            intent: None,
            grants: Vec::new(),
            steps: Vec::new(),
            fs: l.fs.clone(),
            exec: l.exec.clone(),
            net: l.net.clone(),
            names: l.names.clone(),
            name_excluded: Vec::new(),
            never_names: Vec::new(),
        };
        if let Some(d) = check_net(&syn, plan, &as_plan) {
            out.push(d);
        }
    }
    out
}

/// A disagreement found in a path table.
struct Mismatch {
    step: usize,
    col: usize,
    path: Vec<u8>,
    why: String,
}

fn mismatch(plan: &ir::Plan, kind: DfaKind, m: Mismatch) -> Diagnostic {
    let what = match kind {
        DfaKind::Fs => kapl_syntax::ast::Right::ALL
            .get(m.col)
            .map_or("fs", |r| r.as_str()),
        DfaKind::Exec => "exec",
    };
    // The start state stands for the root directory in beneath flags.
    let text = if m.path.is_empty() {
        "/".to_string()
    } else {
        String::from_utf8_lossy(&m.path).into_owned()
    };
    let witness = match kind {
        DfaKind::Fs => Witness::Fs {
            right: what.into(),
            path: text.clone(),
        },
        DfaKind::Exec => Witness::Exec { path: text.clone() },
    };
    let step = plan.steps.get(m.step);
    Diagnostic::error(
        codes::TRANSLATION_MISMATCH,
        format!(
            "translation validation failed: step `{}` of plan `{}`, {what} `{text}`: {}",
            step.map_or("?", |s| s.name.as_str()),
            plan.name,
            m.why
        ),
        step.map_or(plan.name_span, |s| s.name_span),
        "the emitted tables disagree with the proved policy here",
    )
    .with_note("this is a compiler bug; no image was written")
    .with_witness(witness)
}

/// The reference side of one table: the distinct grant languages of the
/// plan, each with the cells (step × right) it credits and the lowest
/// grant id per cell, straight from the IR.
struct Reference<'a> {
    dfas: Vec<&'a PDfa>,
    credit: Vec<Vec<(usize, u32)>>,
}

fn reference<'a>(
    policy: &Policy,
    automata: &'a GrantAutomata,
    plan: &ir::Plan,
    kind: DfaKind,
) -> Reference<'a> {
    let r = kind.rights();
    let mut index: HashMap<&PDfa, usize> = HashMap::new();
    let mut out = Reference {
        dfas: Vec::new(),
        credit: Vec::new(),
    };
    for (si, step) in plan.steps.iter().enumerate() {
        for g in plan
            .grants
            .iter()
            .chain(&step.grants)
            .filter_map(|g| policy.grants.get(g.0 as usize))
        {
            let cols: Vec<usize> = match (&g.rule.kind, kind) {
                (RuleKind::Fs { rights, .. }, DfaKind::Fs) => (0..4)
                    .filter(|&c| rights.has(kapl_syntax::ast::Right::ALL[c]))
                    .collect(),
                (RuleKind::Exec { .. }, DfaKind::Exec) => vec![0],
                _ => continue,
            };
            let Some(d) = automata.get(g.id) else {
                continue;
            };
            let k = *index.entry(d).or_insert_with(|| {
                out.dfas.push(d);
                out.credit.push(Vec::new());
                out.dfas.len() - 1
            });
            for c in cols {
                let cell = si * r + c;
                let cr = &mut out.credit[k];
                match cr.iter_mut().find(|(x, _)| *x == cell) {
                    Some((_, id)) => *id = (*id).min(g.id.0),
                    None => cr.push((cell, g.id.0)),
                }
            }
        }
    }
    out
}

/// One representative byte per class of the partition refining the image
/// DFA's classes, every reference automaton's classes and `extra`.
fn representatives(table: &Dfa, dfas: &[&PDfa], extra: impl Fn(u8) -> u8) -> Vec<u8> {
    let mut sig: Vec<u32> = (0..=255u8)
        .map(|b| {
            u32::from(table.classes.get(usize::from(b)).copied().unwrap_or(0)) * 4
                + u32::from(extra(b))
        })
        .collect();
    let mut ids: HashMap<(u32, u8), u32> = HashMap::new();
    for d in dfas {
        ids.clear();
        for (b, s) in sig.iter_mut().enumerate() {
            let key = (*s, d.class_of(b as u8));
            let fresh = ids.len() as u32;
            *s = *ids.entry(key).or_insert(fresh);
        }
    }
    let mut seen: HashMap<u32, ()> = HashMap::new();
    (0..=255u8)
        .filter(|&b| seen.insert(sig[usize::from(b)], ()).is_none())
        .collect()
}

/// The kind of a byte for the normalized-path automaton.
fn norm_kind(b: u8) -> u8 {
    match b {
        b'/' => 0,
        b'.' => 1,
        0 => 2,
        _ => 3,
    }
}

/// Checks one path table (fs or exec) of a plan against the reference.
fn check_paths(
    policy: &Policy,
    automata: &GrantAutomata,
    plan: &ir::Plan,
    table: &Dfa,
    kind: DfaKind,
) -> Option<Mismatch> {
    let r = kind.rights();
    let width = plan.steps.len() * r;
    let refs = reference(policy, automata, plan, kind);
    let n = table.states();
    let cell_of = |q: u32, cell: usize| table.cell(q, (cell / r) as u32, cell % r);
    // Image states from which some granted cell is reachable.
    let rev = reverse(table);
    let mut live = vec![false; n];
    let mut stack: Vec<usize> = (0..n)
        .filter(|&q| (0..width).any(|c| cell_of(q as u32, c).grant != NO_GRANT))
        .collect();
    for &q in &stack {
        live[q] = true;
    }
    while let Some(q) = stack.pop() {
        for &p in &rev[q] {
            if !live[p as usize] {
                live[p as usize] = true;
                stack.push(p as usize);
            }
        }
    }
    // Product walk, breadth first. Key: image state, then the (automaton,
    // state) pairs of the reference automata still alive.
    let reps = representatives(table, &refs.dfas, |_| 0);
    let mut seen: HashMap<Vec<u32>, u32> = HashMap::new();
    // Per node: the key, its parent node and the byte that led to it.
    let mut nodes: Vec<(Vec<u32>, u32, u8)> = Vec::new();
    let start: Vec<u32> = std::iter::once(table.start)
        .chain(
            refs.dfas
                .iter()
                .enumerate()
                .filter(|(_, d)| !d.is_dead(d.start()))
                .flat_map(|(k, d)| [k as u32, d.start()]),
        )
        .collect();
    seen.insert(start.clone(), 0);
    nodes.push((start, u32::MAX, 0));
    let path_to = |nodes: &[(Vec<u32>, u32, u8)], mut i: u32| {
        let mut path = Vec::new();
        while let Some((_, parent, byte)) = nodes.get(i as usize) {
            if *parent == u32::MAX {
                break;
            }
            path.push(*byte);
            i = *parent;
        }
        path.reverse();
        path
    };
    let mut want = vec![NO_GRANT; width];
    let mut next: Vec<u32> = Vec::new();
    let mut i = 0usize;
    while i < nodes.len() {
        let key = std::mem::take(&mut nodes[i].0);
        let a = key[0];
        want.fill(NO_GRANT);
        for p in key[1..].chunks_exact(2) {
            let k = p[0] as usize;
            if refs.dfas[k].is_accepting(p[1]) {
                for &(cell, g) in &refs.credit[k] {
                    want[cell] = want[cell].min(g);
                }
            }
        }
        for (cell, &w) in want.iter().enumerate() {
            let got = cell_of(a, cell);
            let why = if got.grant != w {
                Some(match (w, got.grant) {
                    (NO_GRANT, g) => {
                        format!("the image allows it (grant {g}), the policy does not")
                    }
                    (w, NO_GRANT) => {
                        format!("the policy allows it (grant {w}), the image does not")
                    }
                    (w, g) => format!("the image credits grant {g}, the policy grant {w}"),
                })
            } else if (got.beneath & BENEATH_SELF != 0) != (w != NO_GRANT) {
                Some("the image's granted flag disagrees with its grant".to_string())
            } else {
                None
            };
            if let Some(why) = why {
                return Some(Mismatch {
                    step: cell / r,
                    col: cell % r,
                    path: path_to(&nodes, i as u32),
                    why,
                });
            }
        }
        if key.len() == 1 && !live.get(a as usize).copied().unwrap_or(false) {
            i += 1;
            continue; // both sides dead: nothing beneath can differ
        }
        for &b in &reps {
            next.clear();
            next.push(table.next(a, b));
            for p in key[1..].chunks_exact(2) {
                let d = refs.dfas[p[0] as usize];
                let t = d.next(p[1], b);
                if !d.is_dead(t) {
                    next.extend([p[0], t]);
                }
            }
            if !seen.contains_key(&next) {
                seen.insert(next.clone(), nodes.len() as u32);
                nodes.push((next.clone(), i as u32, b));
            }
        }
        i += 1;
    }
    // Acceptance agrees on every state the walk reached, and states it did
    // not reach (beyond pairs where both sides are dead) grant nothing, so
    // "everything beneath" can be decided on the decoded DFA itself, for
    // every state reachable in it: the runtime may walk to any of them.
    let mut parent: Vec<(u32, u8)> = vec![(u32::MAX, 0); n];
    let mut reached = vec![false; n];
    let image_reps = representatives(table, &[], |_| 0);
    let mut queue = std::collections::VecDeque::new();
    if let Some(x) = reached.get_mut(table.start as usize) {
        *x = true;
        queue.push_back(table.start);
    }
    while let Some(q) = queue.pop_front() {
        for &b in &image_reps {
            let t = table.next(q, b);
            if let Some(x) = reached.get_mut(t as usize)
                && !*x
            {
                *x = true;
                parent[t as usize] = (q, b);
                queue.push_back(t);
            }
        }
    }
    let image_path = |mut q: u32| {
        let mut path = Vec::new();
        while let Some(&(p, b)) = parent.get(q as usize) {
            if p == u32::MAX {
                break;
            }
            path.push(b);
            q = p;
        }
        path.reverse();
        path
    };
    let beneath = Beneath::new(table);
    let mut memo: HashMap<Vec<u32>, Vec<bool>> = HashMap::new();
    for cell in 0..width {
        let accepting: Vec<u32> = (0..n as u32)
            .filter(|&q| cell_of(q, cell).grant != NO_GRANT)
            .collect();
        let full = memo
            .entry(accepting)
            .or_insert_with_key(|acc| beneath.full(acc, &rev, &reached));
        for q in (0..n).filter(|&q| reached[q]) {
            let claims = cell_of(q as u32, cell).beneath & BENEATH_ALL != 0;
            if claims != full[q] {
                return Some(Mismatch {
                    step: cell / r,
                    col: cell % r,
                    path: image_path(q as u32),
                    why: if claims {
                        "the image says everything beneath it is granted, the policy does not"
                            .to_string()
                    } else {
                        "the policy grants everything beneath it, the image does not say so"
                            .to_string()
                    },
                });
            }
        }
    }
    None
}

/// "Everything strictly beneath is granted" on a decoded DFA. Nodes are
/// (state, mode): mode 0 just after a `/`, 1 after `/.`, 2 after `/..`,
/// 3 inside a proper segment (a path end). A node is bad when a path end
/// that is not accepted is reachable from it; a state `q` has everything
/// beneath granted when the node (`q` then `/`, mode 0) is not bad.
struct Beneath<'a> {
    table: &'a Dfa,
    /// One byte per (class, byte kind).
    reps: Vec<u8>,
}

impl<'a> Beneath<'a> {
    fn new(table: &'a Dfa) -> Beneath<'a> {
        Beneath {
            table,
            reps: representatives(table, &[], norm_kind),
        }
    }

    fn step(mode: u8, b: u8) -> Option<u8> {
        match (mode, norm_kind(b)) {
            (_, 2) => None,
            (3, 0) => Some(0),
            (_, 0) => None,
            (0, 1) => Some(1),
            (1, 1) => Some(2),
            _ => Some(3),
        }
    }

    /// Per state: whether everything strictly beneath is granted, given
    /// the accepting states (ascending). Only `reached` states are asked
    /// about.
    fn full(&self, accepting: &[u32], rev: &[Vec<u32>], reached: &[bool]) -> Vec<bool> {
        let n = self.table.states();
        let mut out = vec![false; n];
        if accepting.is_empty() {
            return out;
        }
        let mut acc = vec![false; n];
        for &q in accepting {
            acc[q as usize] = true;
        }
        // States from which an accepting state is reachable: elsewhere every
        // node is bad (a path end is always reachable and never accepted).
        let mut live = acc.clone();
        let mut stack: Vec<u32> = accepting.to_vec();
        while let Some(q) = stack.pop() {
            for &p in &rev[q as usize] {
                if !live[p as usize] {
                    live[p as usize] = true;
                    stack.push(p);
                }
            }
        }
        // Explore from the candidates' `/` nodes through live states.
        let mut id: HashMap<(u32, u8), u32> = HashMap::new();
        let mut bad: Vec<bool> = Vec::new();
        let mut at: Vec<(u32, u8)> = Vec::new();
        let mut edges: Vec<(u32, u32)> = Vec::new();
        let node = |s: u32,
                    m: u8,
                    id: &mut HashMap<(u32, u8), u32>,
                    bad: &mut Vec<bool>,
                    at: &mut Vec<(u32, u8)>| {
            if let Some(&i) = id.get(&(s, m)) {
                return i;
            }
            let i = at.len() as u32;
            id.insert((s, m), i);
            at.push((s, m));
            let l = live.get(s as usize).copied().unwrap_or(false);
            bad.push(!l || (m == 3 && !acc.get(s as usize).copied().unwrap_or(false)));
            i
        };
        let mut seeds: Vec<(usize, u32)> = Vec::new();
        for (q, _) in reached.iter().enumerate().filter(|(_, r)| **r) {
            let s = self.table.next(q as u32, b'/');
            if live.get(s as usize).copied().unwrap_or(false) {
                seeds.push((q, node(s, 0, &mut id, &mut bad, &mut at)));
            }
        }
        let mut i = 0;
        while i < at.len() {
            let (s, m) = at[i];
            if !bad[i] {
                for &b in &self.reps {
                    if let Some(m2) = Self::step(m, b) {
                        let t = node(self.table.next(s, b), m2, &mut id, &mut bad, &mut at);
                        edges.push((t, i as u32));
                    }
                }
            }
            i += 1;
        }
        // Badness flows backwards along the explored edges.
        let mut back: Vec<Vec<u32>> = vec![Vec::new(); at.len()];
        for &(t, f) in &edges {
            back[t as usize].push(f);
        }
        let mut stack: Vec<u32> = (0..at.len() as u32).filter(|&x| bad[x as usize]).collect();
        while let Some(x) = stack.pop() {
            for &p in &back[x as usize] {
                if !bad[p as usize] {
                    bad[p as usize] = true;
                    stack.push(p);
                }
            }
        }
        for (q, seed) in seeds {
            out[q] = !bad[seed as usize];
        }
        out
    }
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
    for r in &mut rev {
        r.sort_unstable();
        r.dedup();
    }
    rev
}

/// The inclusive canonical range (IPv4 as IPv4-mapped IPv6, as in
/// `kapl_check::semantics`) of an address block, IPv4-mapped IPv6 blocks
/// normalized to IPv4 as the image does.
fn block_range(addr: IpAddr, prefix: u8) -> (u128, u128) {
    let (base, bits) = match (normalize(addr), addr) {
        (IpAddr::V4(n), IpAddr::V6(_)) => (
            sem::canonical_addr(IpAddr::V4(n)),
            96 + u32::from(prefix.saturating_sub(96).min(32)),
        ),
        (IpAddr::V4(n), IpAddr::V4(_)) => (
            sem::canonical_addr(IpAddr::V4(n)),
            96 + u32::from(prefix.min(32)),
        ),
        (IpAddr::V6(n), _) => (u128::from(n), u32::from(prefix.min(128))),
    };
    let host = u128::MAX.checked_shr(bits).unwrap_or(0);
    (base & !host, base | host)
}

/// The addresses where a decision may change because of a block: its
/// first and last address and their outside neighbours.
fn block_boundaries(addr: IpAddr, prefix: u8, addrs: &mut BTreeSet<u128>) {
    let (lo, hi) = block_range(addr, prefix);
    for x in [Some(lo), Some(hi), lo.checked_sub(1), hi.checked_add(1)]
        .into_iter()
        .flatten()
    {
        addrs.insert(x);
    }
}

/// The ports where a decision may change because of a port range.
fn port_boundaries(lo: u16, hi: u16, ports: &mut BTreeSet<u16>) {
    for x in [Some(lo), Some(hi), lo.checked_sub(1), hi.checked_add(1)]
        .into_iter()
        .flatten()
    {
        ports.insert(x);
    }
}

fn check_net(policy: &Policy, plan: &ir::Plan, ip: &kapl_image::Plan) -> Option<Diagnostic> {
    let maps = NetMaps::of(ip);
    for (si, step) in plan.steps.iter().enumerate() {
        // The decisions of both the grants and the image are constant
        // between the boundaries of their address blocks and, at one
        // address, between the boundaries of the port ranges of the grants
        // and entries whose blocks hold it; probing every such boundary is
        // an exhaustive comparison.
        let grants: Vec<&ir::Grant> = plan
            .grants
            .iter()
            .chain(&step.grants)
            .filter_map(|g| policy.grants.get(g.0 as usize))
            .filter(|g| matches!(g.rule.kind, RuleKind::Net { .. }))
            .collect();
        let entries: Vec<&kapl_image::NetEntry> =
            ip.net.iter().filter(|e| e.step == si as u32).collect();
        let mut addrs: BTreeSet<u128> = BTreeSet::new();
        // The whole IPv4 and IPv6 spaces' ends.
        block_boundaries(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, &mut addrs);
        block_boundaries(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0, &mut addrs);
        for g in &grants {
            if let RuleKind::Net { addrs: a, .. } = &g.rule.kind {
                for c in a {
                    block_boundaries(c.addr, c.prefix, &mut addrs);
                }
            }
        }
        for e in &entries {
            block_boundaries(e.addr, e.prefix, &mut addrs);
        }
        // Entries naming steps that do not exist are refused by the reader.
        for &value in &addrs {
            let a = sem::addr_of_canonical(value);
            let here: Vec<&ir::Grant> = grants
                .iter()
                .copied()
                .filter(|g| match &g.rule.kind {
                    RuleKind::Net { addrs: a2, .. } => a2.iter().any(|c| sem::cidr_contains(c, a)),
                    _ => false,
                })
                .collect();
            let mut ports: BTreeSet<u16> = [0u16, 65535].into_iter().collect();
            for g in &here {
                if let RuleKind::Net { ports: p, .. } = &g.rule.kind {
                    for r in p {
                        port_boundaries(r.lo, r.hi, &mut ports);
                    }
                }
            }
            for e in &entries {
                let (lo, hi) = block_range(e.addr, e.prefix);
                if lo <= value && value <= hi {
                    for r in &e.ports {
                        port_boundaries(r.lo, r.hi, &mut ports);
                    }
                }
            }
            for op in [NetOp::Connect, NetOp::Bind] {
                let aop = match op {
                    NetOp::Connect => kapl_syntax::ast::NetOp::Connect,
                    NetOp::Bind => kapl_syntax::ast::NetOp::Bind,
                };
                for &port in &ports {
                    // The reference decision: the lowest-id grant covering
                    // the request (both protocols alike).
                    let req = sem::Request::Net {
                        op: aop,
                        addr: a,
                        port,
                        proto: sem::Proto::Tcp,
                    };
                    let want = here
                        .iter()
                        .filter(|g| sem::rule_covers(&g.rule.kind, &req))
                        .map(|g| g.id.0)
                        .min();
                    for proto in Proto::ALL {
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

/// A name a pattern matches: each `*` and a leading `**` made `fill`.
fn instance(pattern: &str, fill: &str) -> String {
    pattern
        .split('.')
        .map(|l| if l == "*" || l == "**" { fill } else { l })
        .collect::<Vec<_>>()
        .join(".")
}

/// The image's host-name tables against the grants' name rules: for every
/// step, protocol, port boundary and probe name (each pattern's own
/// instances, with a label no pattern mentions and with a label some
/// pattern does, and a name no pattern matches), the image must credit the
/// lowest-id grant whose name rule matches the name and port, or none.
fn check_names(policy: &Policy, plan: &ir::Plan, ip: &kapl_image::Plan) -> Option<Diagnostic> {
    for (si, step) in plan.steps.iter().enumerate() {
        let rules: Vec<(u32, &[String], &[ir::PortRange])> = plan
            .grants
            .iter()
            .chain(&step.grants)
            .filter_map(|g| policy.grants.get(g.0 as usize))
            .filter_map(|g| match &g.rule.kind {
                RuleKind::Net {
                    op: kapl_syntax::ast::NetOp::Connect,
                    names,
                    ports,
                    ..
                } if !names.is_empty() => Some((g.id.0, names.as_slice(), ports.as_slice())),
                _ => None,
            })
            .collect();
        let patterns: Vec<&str> = rules
            .iter()
            .flat_map(|(_, n, _)| n.iter().map(String::as_str))
            .chain(ip.names.iter().map(|e| e.pattern.as_str()))
            .collect();
        let fresh = kapl_image::names::fresh(&patterns);
        let mut probes: BTreeSet<String> = BTreeSet::new();
        probes.insert(format!("{fresh}.{fresh}"));
        for p in &patterns {
            probes.insert(instance(p, &fresh));
            // `**` also stands for more than one label.
            probes.insert(instance(p, &format!("{fresh}.{fresh}")));
            for q in &patterns {
                for l in q.split('.').filter(|l| !l.contains('*')) {
                    probes.insert(instance(p, l));
                }
            }
        }
        let mut ports: BTreeSet<u16> = [0u16, 65535].into_iter().collect();
        for (_, _, rs) in &rules {
            for r in *rs {
                port_boundaries(r.lo, r.hi, &mut ports);
            }
        }
        for e in ip.names.iter().filter(|e| e.step == si as u32) {
            for r in &e.ports {
                port_boundaries(r.lo, r.hi, &mut ports);
            }
        }
        for name in &probes {
            for proto in Proto::ALL {
                let got_ranges = ip.name_ports(si as u32, proto, name);
                for &port in &ports {
                    let want = rules
                        .iter()
                        .filter(|(_, ns, rs)| {
                            ns.iter().any(|p| kapl_image::names::matches(p, name))
                                && rs.iter().any(|r| r.lo <= port && port <= r.hi)
                        })
                        .map(|(g, _, _)| *g)
                        .min();
                    let got = got_ranges
                        .iter()
                        .find(|r| r.lo <= port && port <= r.hi)
                        .map(|r| r.grant);
                    if want != got {
                        return Some(
                            Diagnostic::error(
                                codes::TRANSLATION_MISMATCH,
                                format!(
                                    "translation validation failed: step `{}` of plan `{}`, {} connect to {name} port {port}: the policy gives {}, the image {}",
                                    step.name,
                                    plan.name,
                                    proto.as_str(),
                                    want.map_or("deny".into(), |g| format!("grant {g}")),
                                    got.map_or("deny".into(), |g| format!("grant {g}")),
                                ),
                                step.name_span,
                                "the emitted host-name tables disagree with the proved policy here",
                            )
                            .with_note("this is a compiler bug; no image was written")
                            .with_witness(Witness::Name {
                                name: name.clone(),
                                port,
                            }),
                        );
                    }
                }
            }
        }
    }
    None
}
