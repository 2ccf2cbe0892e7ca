//! Authority diff between two versions of a policy, at every level.
//!
//! Input: the OLD and NEW [`Policy`]. Output: a [`Diff`]: for every
//! objective and intent (bound and `never`), every plan (plan-wide grants)
//! and every step, the authority NEW adds and the authority it takes away,
//! as sets — per right for paths, for `exec`, per network operation — each
//! described by globs or a full listing with example members
//! ([`paths`]), or by address range × port range boxes ([`net`]).
//!
//! - Levels are matched by name; one on one side only is compared with
//!   nothing ([`Presence`]). Rules brought in by `use` are expanded where
//!   they are used (the IR holds them expanded).
//! - A bound or grant list that covers more is a **widening**, one that
//!   covers less a **narrowing**. A `never` list is the other way round:
//!   what it no longer forbids widens, what it newly forbids narrows. The
//!   `never` lists of an objective or intent that exists on one side only
//!   are not compared (nothing lies under it on the other side).
//! - An objective, intent, plan or step that appears brings its whole
//!   bound or grants as a widening; one that disappears takes them away as
//!   a narrowing (its plans and steps disappear too, or are compared on
//!   their own by name if they stay under another parent).
//! - A step's authority is the plan-wide grants plus its own. A plan's line
//!   reports the change of its plan-wide grants; a step's line reports the
//!   rest of the change of its authority: added = NEW step grants minus
//!   everything the step held before and minus NEW plan-wide grants
//!   (already reported on the plan's line); removed likewise. So every
//!   widening of any step is reported exactly once, at the plan or at the
//!   step.
//! - Each example path and the first corner of each network box is replayed
//!   through [`kapl_check::semantics`]: allowed by the allowing rules and
//!   by none of the subtracted ones; one that does not replay is recorded
//!   in [`Diff::unknown`], which counts as widening (fail closed).

pub mod net;
pub mod paths;

use kapl_automata::Dfa;
use kapl_check::compiled::{self, CRule};
use kapl_check::ir::{GrantId, Intent, Parent, PatternRef, Plan, Policy, Rule, RuleKind};
use kapl_check::semantics::{self, Proto, Request, addr_of_canonical, cidr_range};
use kapl_syntax::Span;
use kapl_syntax::ast::{NetOp, Right};
use net::NetBox;
use paths::PathSet;
use std::cell::OnceCell;

/// What kind of level a change is at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// An objective.
    Objective,
    /// An intent.
    Intent,
    /// A plan (its plan-wide grants).
    Plan,
    /// A step of a plan.
    Step,
}

/// Which list of rules of the level changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// An objective's or intent's bound.
    Bound,
    /// An objective's or intent's `never` rules.
    Never,
    /// A plan's plan-wide grants, or a step's own.
    Grants,
}

/// Whether the level exists on both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Presence {
    /// In OLD and NEW.
    Both,
    /// Only NEW has it (it appears).
    New,
    /// Only OLD has it (it disappears).
    Old,
}

/// Whether a change allows more or less.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// More is allowed (a wider bound or grant, a smaller `never`).
    Widening,
    /// Less is allowed.
    Narrowing,
}

/// One of the two policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The policy before the change.
    Old,
    /// The policy after the change.
    New,
}

/// Where a change is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The kind of level.
    pub level: Level,
    /// Its name.
    pub name: String,
    /// For a step: its plan.
    pub plan: Option<String>,
    /// Which list of rules.
    pub part: Part,
    /// Whether the level exists on both sides.
    pub presence: Presence,
}

/// A set of authority of one kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authority {
    /// Paths, for one right.
    Fs {
        /// The right.
        right: Right,
        /// The paths.
        paths: PathSet,
    },
    /// Programs.
    Exec {
        /// The programs' paths.
        programs: PathSet,
    },
    /// Network access, for one operation, TCP and UDP alike.
    Net {
        /// Connect or bind.
        op: NetOp,
        /// Disjoint address range × port range boxes.
        boxes: Vec<NetBox>,
    },
    /// Connects by host name (TCP and UDP alike).
    Names {
        /// Each pattern of the side's rules that reaches names the other
        /// side does not, with the ports and a name it newly reaches.
        names: Vec<NameChange>,
    },
}

/// Part of a host-name pattern's authority that changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameChange {
    /// The pattern, as normalized.
    pub pattern: String,
    /// Low port.
    pub lo: u16,
    /// High port.
    pub hi: u16,
    /// A name the pattern reaches there and the other side does not.
    pub example: String,
}

/// One change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Where.
    pub place: Place,
    /// Widening or narrowing.
    pub effect: Effect,
    /// The set of authority that changed.
    pub authority: Authority,
    /// The policy whose rules hold the set (NEW for what a bound or grant
    /// adds and for what a `never` newly forbids, OLD otherwise).
    pub side: Side,
    /// The rules on `side` that hold part of the set: the `use` site for a
    /// rule brought in by `use`, the rule itself otherwise.
    pub sites: Vec<Span>,
}

/// The whole comparison.
#[derive(Clone, Debug, Default)]
pub struct Diff {
    /// Every change: widenings first, then narrowings; within each,
    /// objectives, intents, then plans and their steps, in NEW's order
    /// followed by names only OLD has.
    pub changes: Vec<Change>,
    /// Changes that neither widen nor narrow (a plan or intent moved under
    /// another parent).
    pub notes: Vec<String>,
    /// Examples that did not replay (the diff is then not trusted and counts
    /// as widening).
    pub unknown: Vec<String>,
}

impl Diff {
    /// Whether NEW allows more anywhere (or an example did not replay:
    /// fail closed).
    pub fn widens(&self) -> bool {
        !self.unknown.is_empty() || self.changes.iter().any(|c| c.effect == Effect::Widening)
    }
}

/// A rule with where a change it holds is reported, compiled when first
/// needed (most rules of an unchanged level never are).
struct Sited<'a> {
    rule: &'a Rule,
    site: Span,
    compiled: OnceCell<CRule>,
}

impl Sited<'_> {
    fn compiled(&self) -> &CRule {
        self.compiled
            .get_or_init(|| compiled::compile(&self.rule.kind, None))
    }
}

fn sited_rules(rules: &[Rule]) -> Vec<Sited<'_>> {
    rules
        .iter()
        .map(|r| Sited {
            rule: r,
            site: r.via.first().copied().unwrap_or(r.span),
            compiled: OnceCell::new(),
        })
        .collect()
}

fn sited_grants<'a>(policy: &'a Policy, ids: &[GrantId]) -> Vec<Sited<'a>> {
    ids.iter()
        .filter_map(|g| policy.grants.get(g.0 as usize))
        .map(|g| Sited {
            rule: &g.rule,
            site: if g.rule.via.is_empty() {
                g.rule.span
            } else {
                g.site
            },
            compiled: OnceCell::new(),
        })
        .collect()
}

fn covers(rules: &[&Sited], req: &Request) -> bool {
    rules
        .iter()
        .any(|s| semantics::rule_covers(&s.rule.kind, req))
}

/// Replays one example: allowed by `plus`, by none of `minus`.
fn replay(plus: &[&Sited], minus: &[&Sited], req: &Request, unknown: &mut Vec<String>) {
    if !covers(plus, req) || covers(minus, req) {
        unknown.push(format!("the example `{req}` does not replay"));
    }
}

/// The path rules (`fs` holding right bit `bit`, or `exec` when `bit` is
/// `None`) of a list.
fn path_rules<'s, 'a>(rules: &'s [&'s Sited<'a>], bit: Option<u8>) -> Vec<&'s Sited<'a>> {
    rules
        .iter()
        .copied()
        .filter(|s| match (bit, s.compiled()) {
            (Some(b), CRule::Fs(p)) => p.rights & b != 0,
            (None, CRule::Exec(_)) => true,
            _ => false,
        })
        .collect()
}

fn dfa_of<'s>(s: &'s Sited<'_>) -> Option<&'s Dfa> {
    match s.compiled() {
        CRule::Fs(p) | CRule::Exec(p) => Some(&p.dfa),
        CRule::Net(_) => None,
    }
}

fn patterns<'a>(s: &Sited<'a>) -> &'a [PatternRef] {
    match &s.rule.kind {
        RuleKind::Fs { patterns, .. } | RuleKind::Exec { patterns } => patterns,
        RuleKind::Net { .. } => &[],
    }
}

fn excepts<'a>(s: &Sited<'a>) -> &'a [PatternRef] {
    match &s.rule.kind {
        RuleKind::Fs { except, .. } => except,
        _ => &[],
    }
}

fn boxes(rules: &[&Sited], op: NetOp) -> Vec<NetBox> {
    let mut out = Vec::new();
    for s in rules {
        if let RuleKind::Net {
            op: o,
            addrs,
            ports,
            ..
        } = &s.rule.kind
            && *o == op
        {
            for a in addrs {
                let (first, last) = cidr_range(a);
                for p in ports {
                    out.push(NetBox {
                        first,
                        last,
                        lo: p.lo,
                        hi: p.hi,
                    });
                }
            }
        }
    }
    out
}

/// What `plus` allows and `minus` does not, per kind, with the sites of
/// `plus` that hold it.
fn sets(
    plus: &[&Sited],
    minus: &[&Sited],
    unknown: &mut Vec<String>,
) -> Vec<(Authority, Vec<Span>)> {
    let mut out = Vec::new();
    // A rule said the same way on the other side adds nothing: skip it
    // (an unchanged level costs no automaton at all).
    let plus: Vec<&Sited> = plus
        .iter()
        .copied()
        .filter(|p| !minus.iter().any(|m| m.rule.kind == p.rule.kind))
        .collect();
    if plus.is_empty() {
        return out;
    }
    let plus = plus.as_slice();
    let kinds = Right::ALL
        .iter()
        .enumerate()
        .map(|(i, r)| (Some(*r), Some(1u8 << i)))
        .chain([(None, None)]);
    for (right, bit) in kinds {
        let p = path_rules(plus, bit);
        if p.is_empty() {
            continue;
        }
        let m = path_rules(minus, bit);
        let set = Dfa::union_all(p.iter().filter_map(|s| dfa_of(s)))
            .difference(&Dfa::union_all(m.iter().filter_map(|s| dfa_of(s))));
        if set.is_empty() {
            continue;
        }
        let described = paths::describe(
            &set,
            p.iter().flat_map(|s| patterns(s)),
            m.iter()
                .flat_map(|s| patterns(s))
                .chain(p.iter().flat_map(|s| excepts(s))),
            m.iter().flat_map(|s| excepts(s)),
        );
        for path in &described.examples {
            let req = match right {
                Some(right) => Request::Fs {
                    right,
                    path: path.clone(),
                },
                None => Request::Exec { path: path.clone() },
            };
            replay(&p, &m, &req, unknown);
        }
        let sites = p
            .iter()
            .filter(|s| dfa_of(s).is_some_and(|d| d.intersects(&set)))
            .map(|s| s.site)
            .collect();
        let authority = match right {
            Some(right) => Authority::Fs {
                right,
                paths: described,
            },
            None => Authority::Exec {
                programs: described,
            },
        };
        out.push((authority, sites));
    }
    for op in [NetOp::Connect, NetOp::Bind] {
        let added = net::minus(&boxes(plus, op), &boxes(minus, op));
        if added.is_empty() {
            continue;
        }
        for b in &added {
            let req = Request::Net {
                op,
                addr: addr_of_canonical(b.first),
                port: b.lo,
                proto: Proto::Tcp,
            };
            replay(plus, minus, &req, unknown);
        }
        let sites = plus
            .iter()
            .filter(|s| {
                let mine = boxes(&[*s], op);
                mine.iter().any(|m| added.iter().any(|a| a.meets(m)))
            })
            .map(|s| s.site)
            .collect();
        out.push((Authority::Net { op, boxes: added }, sites));
    }
    let named = name_changes(plus, minus);
    if !named.is_empty() {
        let sites = plus
            .iter()
            .filter(|s| {
                name_rules(&[*s])
                    .iter()
                    .any(|(p, _)| named.iter().any(|c| &c.pattern == p))
            })
            .map(|s| s.site)
            .collect();
        out.push((Authority::Names { names: named }, sites));
    }
    out
}

/// The `net connect` name patterns of `rules`, with their port ranges.
fn name_rules(rules: &[&Sited]) -> Vec<(String, Vec<(u16, u16)>)> {
    rules
        .iter()
        .filter_map(|s| match &s.rule.kind {
            RuleKind::Net {
                op: NetOp::Connect,
                names,
                ports,
                ..
            } if !names.is_empty() => Some(
                names
                    .iter()
                    .map(|n| (n.clone(), ports.iter().map(|p| (p.lo, p.hi)).collect()))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

/// What `plus`'s name patterns reach that `minus`'s do not: per pattern
/// and elementary port range, a witness name (exact: `names::uncovered`).
/// Address rules of `minus` are not taken to cover names (a name counted
/// as new where an address rule already reached every address is
/// reported: a diff may say too much, never too little).
fn name_changes(plus: &[&Sited], minus: &[&Sited]) -> Vec<NameChange> {
    let p = name_rules(plus);
    let m = name_rules(minus);
    let mut cuts: Vec<u32> = p
        .iter()
        .chain(&m)
        .flat_map(|(_, rs)| {
            rs.iter()
                .flat_map(|(lo, hi)| [u32::from(*lo), u32::from(*hi) + 1])
        })
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out: Vec<NameChange> = Vec::new();
    for (pattern, ranges) in &p {
        for w in cuts.windows(2) {
            let (lo, hi) = (w[0], w[1] - 1);
            if !ranges
                .iter()
                .any(|(a, b)| u32::from(*a) <= lo && hi <= u32::from(*b))
            {
                continue;
            }
            let others: Vec<&str> = m
                .iter()
                .filter(|(_, rs)| {
                    rs.iter()
                        .any(|(a, b)| u32::from(*a) <= lo && hi <= u32::from(*b))
                })
                .map(|(n, _)| n.as_str())
                .collect();
            let Some(example) = kapl_syntax::names::uncovered(pattern, &others) else {
                continue;
            };
            match out.last_mut() {
                Some(c) if c.pattern == *pattern && u32::from(c.hi) + 1 == lo => c.hi = hi as u16,
                _ => out.push(NameChange {
                    pattern: pattern.clone(),
                    lo: lo as u16,
                    hi: hi as u16,
                    example,
                }),
            }
        }
    }
    out
}

/// Records what `plus` allows beyond `minus` as changes of `effect`.
fn emit(
    d: &mut Diff,
    place: &Place,
    effect: Effect,
    side: Side,
    plus: &[&Sited],
    minus: &[&Sited],
) {
    for (authority, mut sites) in sets(plus, minus, &mut d.unknown) {
        // Rules expanded from one `use` share its site.
        let mut seen = Vec::new();
        sites.retain(|s| {
            let new = !seen.contains(s);
            seen.push(*s);
            new
        });
        d.changes.push(Change {
            place: place.clone(),
            effect,
            authority,
            side,
            sites,
        });
    }
}

fn refs<'s, 'a>(v: &'s [Sited<'a>]) -> Vec<&'s Sited<'a>> {
    v.iter().collect()
}

/// Compares one list of rules present in OLD (`old`) and NEW (`new`):
/// allowing for a bound or grants, forbidding for a `never` list.
fn compare(d: &mut Diff, place: &Place, old: &[Sited], new: &[Sited], forbids: bool) {
    let (old, new) = (refs(old), refs(new));
    if forbids {
        emit(d, place, Effect::Widening, Side::Old, &old, &new);
        emit(d, place, Effect::Narrowing, Side::New, &new, &old);
    } else {
        emit(d, place, Effect::Widening, Side::New, &new, &old);
        emit(d, place, Effect::Narrowing, Side::Old, &old, &new);
    }
}

/// Names in NEW's order, then names only OLD has.
fn names<'a>(
    new: impl Iterator<Item = &'a str>,
    old: impl Iterator<Item = &'a str>,
) -> Vec<&'a str> {
    let mut v: Vec<&str> = new.collect();
    for n in old {
        if !v.contains(&n) {
            v.push(n);
        }
    }
    v
}

fn presence<T>(old: Option<T>, new: Option<T>) -> Presence {
    match (old.is_some(), new.is_some()) {
        (true, false) => Presence::Old,
        (false, true) => Presence::New,
        _ => Presence::Both,
    }
}

/// The bound and `never` lists of an objective or intent, by name.
type Guard<'a> = (&'a [Rule], &'a [Rule]);

fn compare_guards(d: &mut Diff, level: Level, name: &str, old: Option<Guard>, new: Option<Guard>) {
    let presence = presence(old, new);
    let place = |part| Place {
        level,
        name: name.to_string(),
        plan: None,
        part,
        presence,
    };
    compare(
        d,
        &place(Part::Bound),
        &sited_rules(old.map_or(&[], |g| g.0)),
        &sited_rules(new.map_or(&[], |g| g.0)),
        false,
    );
    if let (Some(o), Some(n)) = (old, new) {
        compare(
            d,
            &place(Part::Never),
            &sited_rules(o.1),
            &sited_rules(n.1),
            true,
        );
    }
}

fn parent_name(policy: &Policy, parent: Parent) -> String {
    match parent {
        Parent::Objective(o) => policy
            .objectives
            .get(o.0 as usize)
            .map(|o| format!("objective `{}`", o.name)),
        Parent::Intent(i) => policy
            .intents
            .get(i.0 as usize)
            .map(|i| format!("intent `{}`", i.name)),
    }
    .unwrap_or_default()
}

/// A plan as found in one policy.
type PlanIn<'a> = Option<(&'a Policy, &'a Plan)>;

fn plan_wide(p: PlanIn<'_>) -> Vec<Sited<'_>> {
    p.map(|(pol, plan)| sited_grants(pol, &plan.grants))
        .unwrap_or_default()
}

fn step_names(p: PlanIn<'_>) -> Vec<&str> {
    p.map(|(_, plan)| plan.steps.iter().map(|s| s.name.as_str()).collect())
        .unwrap_or_default()
}

fn step_own<'a>(p: PlanIn<'a>, step: &str) -> Option<Vec<Sited<'a>>> {
    let (pol, plan) = p?;
    let s = plan.steps.iter().find(|s| s.name == step)?;
    Some(sited_grants(pol, &s.grants))
}

fn compare_plan(d: &mut Diff, name: &str, old: PlanIn<'_>, new: PlanIn<'_>) {
    let (old_wide, new_wide) = (plan_wide(old), plan_wide(new));
    let place = Place {
        level: Level::Plan,
        name: name.to_string(),
        plan: None,
        part: Part::Grants,
        presence: presence(old, new),
    };
    compare(d, &place, &old_wide, &new_wide, false);
    for step in names(step_names(new).into_iter(), step_names(old).into_iter()) {
        let (o, n) = (step_own(old, step), step_own(new, step));
        let place = Place {
            level: Level::Step,
            name: step.to_string(),
            plan: Some(name.to_string()),
            part: Part::Grants,
            presence: presence(o.as_ref(), n.as_ref()),
        };
        let (o, n) = (o.unwrap_or_default(), n.unwrap_or_default());
        let held_before: Vec<&Sited> = o.iter().chain(&old_wide).chain(&new_wide).collect();
        emit(
            d,
            &place,
            Effect::Widening,
            Side::New,
            &refs(&n),
            &held_before,
        );
        let held_after: Vec<&Sited> = n.iter().chain(&new_wide).chain(&old_wide).collect();
        emit(
            d,
            &place,
            Effect::Narrowing,
            Side::Old,
            &refs(&o),
            &held_after,
        );
    }
    if let (Some((op, o)), Some((np, n))) = (old, new) {
        let (from, to) = (parent_name(op, o.parent), parent_name(np, n.parent));
        if from != to {
            d.notes.push(format!(
                "plan `{name}` moves from under {from} to under {to}"
            ));
        }
    }
}

fn objective<'a>(p: &'a Policy, name: &str) -> Option<Guard<'a>> {
    let o = p.objectives.iter().find(|o| o.name == name)?;
    Some((&o.bound, &o.never))
}

fn guard(i: &Intent) -> Guard<'_> {
    (&i.bound, &i.never)
}

fn intent<'a>(p: &'a Policy, name: &str) -> Option<&'a Intent> {
    p.intents.iter().find(|i| i.name == name)
}

fn plan<'a>(p: &'a Policy, name: &str) -> Option<&'a Plan> {
    p.plans.iter().find(|x| x.name == name)
}

/// Compares every objective, intent, plan and step of OLD and NEW.
pub fn diff(old: &Policy, new: &Policy) -> Diff {
    let mut d = Diff::default();
    let objectives = names(
        new.objectives.iter().map(|o| o.name.as_str()),
        old.objectives.iter().map(|o| o.name.as_str()),
    );
    for name in objectives {
        let (o, n) = (objective(old, name), objective(new, name));
        compare_guards(&mut d, Level::Objective, name, o, n);
    }
    let intents = names(
        new.intents.iter().map(|i| i.name.as_str()),
        old.intents.iter().map(|i| i.name.as_str()),
    );
    for name in intents {
        let (o, n) = (intent(old, name), intent(new, name));
        compare_guards(&mut d, Level::Intent, name, o.map(guard), n.map(guard));
        if let (Some(o), Some(n)) = (o, n) {
            let (from, to) = (
                parent_name(old, Parent::Objective(o.objective)),
                parent_name(new, Parent::Objective(n.objective)),
            );
            if from != to {
                d.notes.push(format!(
                    "intent `{name}` moves from under {from} to under {to}"
                ));
            }
        }
    }
    let plans = names(
        new.plans.iter().map(|p| p.name.as_str()),
        old.plans.iter().map(|p| p.name.as_str()),
    );
    for name in plans {
        let find = |pol| plan(pol, name).map(|x| (pol, x));
        compare_plan(&mut d, name, find(old), find(new));
    }
    // Widenings first; the sort is stable, so level order stays.
    d.changes.sort_by_key(|c| c.effect != Effect::Widening);
    d
}

#[cfg(test)]
mod tests;
