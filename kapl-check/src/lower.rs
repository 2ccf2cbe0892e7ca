//! Lowering: from resolved syntax trees to the flat IR.
//!
//! Input: the loaded units and the [`Resolved`] name table of a policy with
//! no front-end errors. Output: an [`ir::Policy`] where every `use` is
//! expanded into plain rules (each keeping its own span and the chain of
//! `use` sites that brought it), `any` and `localhost` are expanded into
//! address blocks, IPv4-mapped IPv6 blocks are IPv4 blocks and host bits are
//! masked, and parameters' values are substituted into patterns (escaped:
//! literal; spans stay on the source text). [`net_warnings`] reports the address normalizations as warnings
//! (once per written address, whether or not lowering happens).

use crate::graph;
use crate::ir::{self, Cidr, GrantId, IntentId, ObjectiveId, PlanId, PortRange, Rights, StepId};
use crate::load::{Loaded, Scope};
use crate::params::{self, Param};
use crate::resolve::{DefId, Kind, Resolved};
use kapl_syntax::ast::{self, AddrKind, AddrSpec, Item, RuleKind};
use kapl_syntax::{Diagnostic, Span, codes};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The most plain rules one authority may expand to (guards against
/// exponential `use` diamonds).
pub const MAX_EXPANDED_RULES: usize = 100_000;

/// The most work lowering may do, in rules plus `via` entries produced for
/// the whole policy (every authority's expansion counted): guards against
/// long `use` chains whose expansions are each small but together quadratic.
pub const MAX_TOTAL_RULES: usize = 4_000_000;

fn mask_v4(a: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let bits = u32::from(a);
    let m = u32::MAX
        .checked_shl(32u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0);
    Ipv4Addr::from(bits & m)
}

fn mask_v6(a: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let bits = u128::from(a);
    let m = u128::MAX
        .checked_shl(128u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0);
    Ipv6Addr::from(bits & m)
}

/// The IPv4-mapped range `::ffff:0:0/96`.
const MAPPED: Ipv6Addr = Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0);

/// Expands one written address into normalized blocks; pushes warnings for
/// host bits and for IPv6 blocks that also cover IPv4 (when `warn` is given).
pub fn lower_addr(a: &AddrSpec, mut warn: Option<&mut Vec<Diagnostic>>) -> Vec<Cidr> {
    let v4 = |addr: Ipv4Addr, prefix: u8| Cidr {
        addr: IpAddr::V4(addr),
        prefix,
    };
    let v6 = |addr: Ipv6Addr, prefix: u8| Cidr {
        addr: IpAddr::V6(addr),
        prefix,
    };
    match a.kind {
        AddrKind::Any => vec![v4(Ipv4Addr::UNSPECIFIED, 0), v6(Ipv6Addr::UNSPECIFIED, 0)],
        AddrKind::Localhost => vec![
            v4(Ipv4Addr::new(127, 0, 0, 0), 8),
            v6(Ipv6Addr::LOCALHOST, 128),
        ],
        AddrKind::Cidr { addr, prefix } => {
            let (masked, prefix) = match addr {
                IpAddr::V4(x) => {
                    let p = prefix.min(32);
                    (IpAddr::V4(mask_v4(x, p)), p)
                }
                IpAddr::V6(x) => {
                    let p = prefix.min(128);
                    (IpAddr::V6(mask_v6(x, p)), p)
                }
            };
            if masked != addr
                && let Some(w) = warn.as_deref_mut()
            {
                w.push(
                    Diagnostic::warning(
                        codes::HOST_BITS_SET,
                        format!("`{addr}/{prefix}` has bits set after the prefix"),
                        a.span,
                        format!("this means `{masked}/{prefix}`"),
                    )
                    .with_help(format!("write `{masked}/{prefix}`")),
                );
            }
            match masked {
                IpAddr::V4(x) => vec![v4(x, prefix)],
                IpAddr::V6(x) => {
                    if prefix >= 96
                        && let Some(m) = x.to_ipv4_mapped()
                    {
                        return vec![v4(m, prefix - 96)];
                    }
                    if mask_v6(MAPPED, prefix) == x {
                        if let Some(w) = warn {
                            w.push(
                                Diagnostic::warning(
                                    codes::V6_BLOCK_COVERS_V4,
                                    format!("`{x}/{prefix}` also covers every IPv4 address"),
                                    a.span,
                                    "contains the IPv4-mapped range `::ffff:0:0/96`",
                                )
                                .with_note(
                                    "an IPv4-mapped IPv6 address is the IPv4 address it maps",
                                )
                                .with_help("write `any` if every address is meant"),
                            );
                        }
                        return vec![v6(x, prefix), v4(Ipv4Addr::UNSPECIFIED, 0)];
                    }
                    vec![v6(x, prefix)]
                }
            }
        }
    }
}

/// Calls `f` on every rule written in `file` (not through `use`).
pub(crate) fn for_each_rule<'a>(file: &'a ast::File, f: &mut impl FnMut(&'a ast::Rule)) {
    for item in &file.items {
        match item {
            Item::Use(_) | Item::Param(_) => {}
            Item::Authority(a) => a.rules.iter().for_each(&mut *f),
            Item::Objective(b) | Item::Intent(b) => b
                .bound
                .iter()
                .chain(&b.never)
                .flat_map(|x| &x.rules)
                .for_each(&mut *f),
            Item::Plan(p) => p
                .grants
                .iter()
                .chain(p.steps.iter().flat_map(|s| &s.grants))
                .for_each(|g| f(&g.rule)),
        }
    }
}

/// Warnings about address normalization, once per written address.
pub fn net_warnings(loaded: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for u in &loaded.units {
        for_each_rule(&u.ast, &mut |r| {
            if let RuleKind::Net { addrs, .. } = &r.kind {
                for a in addrs {
                    lower_addr(a, Some(&mut out));
                }
            }
        });
    }
    out
}

/// Lowers one pattern, its parameters' values substituted.
fn pattern(
    p: &ast::Pattern,
    values: &HashMap<String, String>,
    diags: &mut Vec<Diagnostic>,
) -> ir::PatternRef {
    let (source, glob) = match params::substitute(p, values) {
        Ok(x) => x,
        Err(d) => {
            diags.push(*d);
            (p.source.clone(), p.glob.clone())
        }
    };
    ir::PatternRef {
        source,
        glob,
        span: p.span,
    }
}

/// Lowers one rule that is not a `use`.
fn plain_rule(
    r: &ast::Rule,
    values: &HashMap<String, String>,
    diags: &mut Vec<Diagnostic>,
) -> Option<ir::Rule> {
    let mut pattern = |p: &ast::Pattern| pattern(p, values, diags);
    let kind = match &r.kind {
        RuleKind::Use { .. } => return None,
        RuleKind::Fs {
            rights,
            patterns,
            except,
        } => ir::RuleKind::Fs {
            rights: rights
                .iter()
                .fold(Rights::default(), |acc, x| acc.with(x.right)),
            patterns: patterns.iter().map(&mut pattern).collect(),
            except: except.iter().map(&mut pattern).collect(),
        },
        RuleKind::Exec { patterns } => ir::RuleKind::Exec {
            patterns: patterns.iter().map(&mut pattern).collect(),
        },
        RuleKind::Net {
            op,
            addrs,
            names,
            ports,
            ..
        } => ir::RuleKind::Net {
            op: *op,
            addrs: addrs.iter().flat_map(|a| lower_addr(a, None)).collect(),
            names: {
                let mut v: Vec<String> = names.iter().map(|n| n.pattern.clone()).collect();
                v.sort();
                v.dedup();
                v
            },
            ports: ports
                .iter()
                .map(|p| PortRange { lo: p.lo, hi: p.hi })
                .collect(),
        },
    };
    Some(ir::Rule {
        kind,
        span: r.span,
        via: Vec::new(),
    })
}

fn internal(span: Span, what: &str) -> Diagnostic {
    Diagnostic::error(
        codes::INTERNAL,
        format!("internal checker error: {what}"),
        span,
        "while lowering this",
    )
    .with_note("this is a bug in kaplc; please report it with the policy")
}

struct Lowerer<'a> {
    loaded: &'a Loaded,
    resolved: &'a Resolved,
    /// Fully expanded rules of each authority.
    memo: HashMap<DefId, Vec<ir::Rule>>,
    diags: Vec<Diagnostic>,
    /// Rules produced so far, against [`MAX_TOTAL_RULES`].
    produced: usize,
    /// The total budget ran out (reported once).
    over_budget: bool,
    /// Each parameter's value.
    values: HashMap<String, String>,
}

impl<'a> Lowerer<'a> {
    fn expand(&mut self, rules: &[ast::Rule]) -> Vec<ir::Rule> {
        let mut out = Vec::new();
        for r in rules {
            match &r.kind {
                RuleKind::Use { name } => {
                    let Some(inner) = self
                        .resolved
                        .refs
                        .get(&name.span)
                        .and_then(|d| self.memo.get(d))
                    else {
                        self.diags.push(internal(r.span, "unresolved `use`"));
                        continue;
                    };
                    if self.over_budget {
                        continue;
                    }
                    // Cost: each rule and each step of its `via` chain (long
                    // chains make both grow).
                    let cost = inner.iter().map(|x| x.via.len() + 2).sum::<usize>();
                    if self.produced.saturating_add(cost) > MAX_TOTAL_RULES {
                        if !self.over_budget {
                            self.over_budget = true;
                            self.diags.push(
                                Diagnostic::error(
                                    codes::EXPANSION_TOO_LARGE,
                                    "the policy expands to too many rules",
                                    r.span,
                                    "expanding this `use` makes the policy too large to lower",
                                )
                                .with_help("shorten chains of authorities that `use` each other"),
                            );
                        }
                        continue;
                    }
                    self.produced += cost;
                    out.extend(inner.iter().map(|x| {
                        let mut via = Vec::with_capacity(x.via.len() + 1);
                        via.push(r.span);
                        via.extend_from_slice(&x.via);
                        ir::Rule {
                            kind: x.kind.clone(),
                            span: x.span,
                            via,
                        }
                    }));
                }
                _ => {
                    self.produced += 1;
                    out.extend(plain_rule(r, &self.values, &mut self.diags));
                }
            }
        }
        out
    }

    /// Expands every authority, dependencies first.
    fn expand_authorities(&mut self) {
        let defs = &self.resolved.defs;
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); defs.len()];
        for (id, d) in defs.iter().enumerate() {
            if let Some(Item::Authority(a)) = self.authority_item(d.unit, d.item, d.kind) {
                for r in &a.rules {
                    if let RuleKind::Use { name } = &r.kind
                        && let Some(&to) = self.resolved.refs.get(&name.span)
                    {
                        adj[id].push(to);
                    }
                }
            }
        }
        for comp in graph::sccs(&adj) {
            let [id] = comp.as_slice() else { continue };
            let Some(d) = defs.get(*id) else { continue };
            let Some(Item::Authority(a)) = self.authority_item(d.unit, d.item, d.kind) else {
                continue;
            };
            let rules = self.expand(&a.rules);
            if rules.len() > MAX_EXPANDED_RULES {
                self.diags.push(
                    Diagnostic::error(
                        codes::EXPANSION_TOO_LARGE,
                        format!("authority `{}` expands to {} rules", d.name, rules.len()),
                        d.name_span,
                        format!("more than {MAX_EXPANDED_RULES} rules after expanding `use`"),
                    )
                    .with_help("use each authority once instead of through many paths"),
                );
                self.memo.insert(*id, Vec::new());
            } else {
                self.memo.insert(*id, rules);
            }
        }
    }

    fn authority_item(&self, unit: usize, item: usize, kind: Kind) -> Option<&'a Item> {
        if kind != Kind::Authority {
            return None;
        }
        self.loaded
            .units
            .get(unit)
            .and_then(|u| u.ast.items.get(item))
    }
}

fn first_about(about: &[ast::StrLit]) -> Option<String> {
    about.first().map(|s| s.value.clone())
}

/// Lowers a policy with no front-end errors. Returns the IR, or the
/// (internal or size) errors that prevented it.
pub fn lower(
    loaded: &Loaded,
    resolved: &Resolved,
    params: &[Param],
) -> Result<ir::Policy, Vec<Diagnostic>> {
    let values: HashMap<String, String> = params
        .iter()
        .filter_map(|p| p.value.clone().map(|v| (p.name.clone(), v)))
        .collect();
    let mut lw = Lowerer {
        loaded,
        resolved,
        memo: HashMap::new(),
        diags: Vec::new(),
        produced: 0,
        over_budget: false,
        values,
    };
    lw.expand_authorities();
    let mut bindings: Vec<(String, String)> = params
        .iter()
        .filter_map(|p| p.value.clone().map(|v| (p.name.clone(), v)))
        .collect();
    bindings.sort();
    let mut policy = ir::Policy {
        params: bindings,
        ..ir::Policy::default()
    };
    let mut objective_of: HashMap<DefId, ObjectiveId> = HashMap::new();
    let mut intent_of: HashMap<DefId, IntentId> = HashMap::new();
    let def_at: HashMap<(usize, usize), DefId> = resolved
        .defs
        .iter()
        .enumerate()
        .map(|(id, d)| ((d.unit, d.item), id))
        .collect();
    // Objectives first, then intents, then plans: each may name one defined
    // later in the source.
    let policy_items: Vec<(DefId, &Item)> = loaded
        .units
        .iter()
        .enumerate()
        .filter(|(_, u)| u.scope == Scope::Policy)
        .flat_map(|(ui, u)| {
            u.ast
                .items
                .iter()
                .enumerate()
                .map(move |(ii, item)| (ui, ii, item))
        })
        .filter_map(|(ui, ii, item)| def_at.get(&(ui, ii)).map(|&d| (d, item)))
        .collect();
    for &(def, item) in &policy_items {
        let Item::Objective(b) = item else { continue };
        let id = ObjectiveId(policy.objectives.len() as u32);
        objective_of.insert(def, id);
        let bound = b.bound.iter().flat_map(|x| lw.expand(&x.rules)).collect();
        let never = b.never.iter().flat_map(|x| lw.expand(&x.rules)).collect();
        policy.objectives.push(ir::Objective {
            name: b.name.name.clone(),
            name_span: b.name.span,
            span: b.span,
            about: first_about(&b.about),
            bound,
            never,
        });
    }
    for &(def, item) in &policy_items {
        let Item::Intent(b) = item else { continue };
        let parent = b
            .under
            .as_ref()
            .and_then(|u| resolved.refs.get(&u.span))
            .and_then(|d| objective_of.get(d).copied());
        let Some(objective) = parent else {
            lw.diags
                .push(internal(b.name.span, "intent without objective"));
            continue;
        };
        let id = IntentId(policy.intents.len() as u32);
        intent_of.insert(def, id);
        let bound = b.bound.iter().flat_map(|x| lw.expand(&x.rules)).collect();
        let never = b.never.iter().flat_map(|x| lw.expand(&x.rules)).collect();
        policy.intents.push(ir::Intent {
            name: b.name.name.clone(),
            name_span: b.name.span,
            span: b.span,
            objective,
            about: first_about(&b.about),
            bound,
            never,
        });
    }
    for &(_, item) in &policy_items {
        {
            let Item::Plan(p) = item else { continue };
            let target = resolved.refs.get(&p.under.span).copied();
            let parent = match target {
                Some(d) if objective_of.contains_key(&d) => {
                    objective_of.get(&d).map(|o| ir::Parent::Objective(*o))
                }
                Some(d) => intent_of.get(&d).map(|i| ir::Parent::Intent(*i)),
                None => None,
            };
            let Some(parent) = parent else {
                lw.diags.push(internal(p.name.span, "plan without parent"));
                continue;
            };
            let plan_id = PlanId(policy.plans.len() as u32);
            let mut grants_of =
                |grants: &[ast::Grant], step: Option<StepId>, policy: &mut ir::Policy| {
                    let mut ids = Vec::new();
                    for g in grants {
                        for rule in lw.expand(std::slice::from_ref(&g.rule)) {
                            let id = GrantId(policy.grants.len() as u32);
                            policy.grants.push(ir::Grant {
                                id,
                                plan: plan_id,
                                step,
                                rule,
                                site: g.span,
                            });
                            ids.push(id);
                        }
                    }
                    ids
                };
            let plan_grants = grants_of(&p.grants, None, &mut policy);
            let mut steps = Vec::new();
            for (si, s) in p.steps.iter().enumerate() {
                let grants = grants_of(&s.grants, Some(StepId(si as u32)), &mut policy);
                let after = s
                    .after
                    .iter()
                    .filter_map(|a| resolved.after.get(&a.span).map(|&i| StepId(i as u32)))
                    .collect();
                steps.push(ir::Step {
                    name: s.name.name.clone(),
                    name_span: s.name.span,
                    span: s.span,
                    after,
                    about: first_about(&s.about),
                    grants,
                });
            }
            policy.plans.push(ir::Plan {
                name: p.name.name.clone(),
                name_span: p.name.span,
                span: p.span,
                parent,
                about: first_about(&p.about),
                grants: plan_grants,
                steps,
            });
        }
    }
    if lw.diags.is_empty() {
        Ok(policy)
    } else {
        Err(lw.diags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kapl_syntax::FileId;

    fn spec(kind: AddrKind) -> AddrSpec {
        AddrSpec {
            kind,
            span: Span::new(FileId(0), 0, 1),
        }
    }

    fn cidr(s: &str, prefix: u8) -> AddrKind {
        AddrKind::Cidr {
            addr: s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::BROADCAST)),
            prefix,
        }
    }

    fn show(v: &[Cidr]) -> Vec<String> {
        v.iter()
            .map(|c| format!("{}/{}", c.addr, c.prefix))
            .collect()
    }

    #[test]
    fn any_and_localhost_expand() {
        assert_eq!(
            show(&lower_addr(&spec(AddrKind::Any), None)),
            ["0.0.0.0/0", "::/0"]
        );
        assert_eq!(
            show(&lower_addr(&spec(AddrKind::Localhost), None)),
            ["127.0.0.0/8", "::1/128"]
        );
    }

    #[test]
    fn host_bits_are_masked_with_a_warning() {
        let mut w = Vec::new();
        assert_eq!(
            show(&lower_addr(&spec(cidr("10.1.2.3", 16)), Some(&mut w))),
            ["10.1.0.0/16"]
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].code, codes::HOST_BITS_SET);
        let mut w = Vec::new();
        assert_eq!(
            show(&lower_addr(&spec(cidr("2001:db8::1", 32)), Some(&mut w))),
            ["2001:db8::/32"]
        );
        assert_eq!(w.len(), 1);
        let mut w = Vec::new();
        assert_eq!(
            show(&lower_addr(&spec(cidr("10.0.0.0", 8)), Some(&mut w))),
            ["10.0.0.0/8"]
        );
        assert!(w.is_empty());
        assert_eq!(
            show(&lower_addr(&spec(cidr("1.2.3.4", 0)), None)),
            ["0.0.0.0/0"]
        );
    }

    #[test]
    fn mapped_v6_is_v4() {
        assert_eq!(
            show(&lower_addr(&spec(cidr("::ffff:10.1.2.3", 128)), None)),
            ["10.1.2.3/32"]
        );
        assert_eq!(
            show(&lower_addr(&spec(cidr("::ffff:10.0.0.0", 104)), None)),
            ["10.0.0.0/8"]
        );
        assert_eq!(
            show(&lower_addr(&spec(cidr("::ffff:0.0.0.0", 96)), None)),
            ["0.0.0.0/0"]
        );
        let mut w = Vec::new();
        assert_eq!(
            show(&lower_addr(&spec(cidr("::", 0)), Some(&mut w))),
            ["::/0", "0.0.0.0/0"]
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].code, codes::V6_BLOCK_COVERS_V4);
        let mut w = Vec::new();
        assert_eq!(
            show(&lower_addr(&spec(cidr("2001:db8::", 32)), Some(&mut w))),
            ["2001:db8::/32"]
        );
        assert!(w.is_empty());
    }
}
