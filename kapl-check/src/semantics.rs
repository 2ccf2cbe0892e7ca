//! Reference semantics: what a rule, a bound and a plan allow, in plain Rust.
//!
//! Input: IR rules and one concrete [`Request`]. Output: yes or no. This is
//! the single definition of meaning that the prover, the code generator and
//! the runtime are tested against; it is deliberately simple (no automata,
//! no solver) so that it can be read and trusted.
//!
//! - Paths: an `fs` or `exec` rule covers a path when the path is a
//!   normalized absolute path (see [`kapl_automata::is_normalized`]) that
//!   matches one of the rule's patterns (`Glob::matches`, the reference glob
//!   matcher) and none of its `except` patterns.
//! - Addresses: every address lives in one 128-bit space in which an IPv4
//!   address `a.b.c.d` *is* the IPv4-mapped IPv6 address `::ffff:a.b.c.d`
//!   ([`canonical_addr`]). An IPv4 block `a.b.c.d/N` is the mapped block
//!   `::ffff:a.b.c.d/(96+N)`; an IPv6 block denotes every address whose
//!   canonical form it contains (so `::/0` holds every IPv4 address too).
//! - Ports: inclusive ranges. `net` rules cover TCP and UDP alike.
//! - Host names: a [`Request`] carries no name, so a rule's host-name
//!   patterns cover none of these requests; connects by name are decided by
//!   `kapl_names` matching (the prover's `names` module, the image's
//!   `Plan::name_ports`).

use crate::ir::{
    Cidr, GrantId, Intent, Objective, Parent, PatternRef, Plan, Policy, PortRange, Rule, RuleKind,
    StepId,
};
use kapl_syntax::Witness;
use kapl_syntax::ast::{NetOp, Right};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A transport protocol (rules cover both alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// One concrete thing a process may ask the kernel for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Request {
    /// A file-system access.
    Fs {
        /// The right exercised.
        right: Right,
        /// The path (bytes).
        path: Vec<u8>,
    },
    /// A program execution.
    Exec {
        /// The executed file's path.
        path: Vec<u8>,
    },
    /// A network access.
    Net {
        /// Connect (or send) versus bind.
        op: NetOp,
        /// The remote (connect) or local (bind) address.
        addr: IpAddr,
        /// The port.
        port: u16,
        /// The protocol.
        proto: Proto,
    },
}

impl Request {
    /// The JSON/diagnostic form of this request.
    pub fn to_witness(&self) -> Witness {
        match self {
            Request::Fs { right, path } => Witness::Fs {
                right: right.as_str().to_string(),
                path: String::from_utf8_lossy(path).into_owned(),
            },
            Request::Exec { path } => Witness::Exec {
                path: String::from_utf8_lossy(path).into_owned(),
            },
            Request::Net { op, addr, port, .. } => Witness::Net {
                op: op.as_str().to_string(),
                addr: display_addr(*addr).to_string(),
                port: *port,
            },
        }
    }
}

impl fmt::Display for Request {
    /// The request in words: "read `/srv/a`", "run `/usr/bin/x`",
    /// "connect to `10.20.0.1` port 22", "bind `::1` port 80".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Fs { right, path } => write!(
                f,
                "{} `{}`",
                right.as_str(),
                String::from_utf8_lossy(path).escape_debug()
            ),
            Request::Exec { path } => {
                write!(f, "run `{}`", String::from_utf8_lossy(path).escape_debug())
            }
            Request::Net {
                op: NetOp::Connect,
                addr,
                port,
                ..
            } => {
                write!(f, "connect to `{}` port {port}", display_addr(*addr))
            }
            Request::Net {
                op: NetOp::Bind,
                addr,
                port,
                ..
            } => write!(f, "bind `{}` port {port}", display_addr(*addr)),
        }
    }
}

/// An address in the one 128-bit space (IPv4 as IPv4-mapped IPv6).
pub fn canonical_addr(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address for a canonical value (IPv4-mapped values become IPv4).
pub fn addr_of_canonical(value: u128) -> IpAddr {
    let v6 = Ipv6Addr::from(value);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// The same address with an IPv4-mapped IPv6 address shown as IPv4.
pub fn display_addr(addr: IpAddr) -> IpAddr {
    addr_of_canonical(canonical_addr(addr))
}

/// The inclusive canonical range a block covers.
pub fn cidr_range(c: &Cidr) -> (u128, u128) {
    let (base, prefix) = match c.addr {
        IpAddr::V4(v4) => (
            u128::from(v4.to_ipv6_mapped()),
            96 + u32::from(c.prefix.min(32)),
        ),
        IpAddr::V6(v6) => (u128::from(v6), u32::from(c.prefix.min(128))),
    };
    let host_bits = 128 - prefix;
    let host_mask = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    (base & !host_mask, base | host_mask)
}

/// Whether a block holds an address.
pub fn cidr_contains(c: &Cidr, addr: IpAddr) -> bool {
    let a = canonical_addr(addr);
    let (lo, hi) = cidr_range(c);
    lo <= a && a <= hi
}

/// Whether a port range holds a port.
pub fn port_in(r: &PortRange, port: u16) -> bool {
    r.lo <= port && port <= r.hi
}

/// Whether `path` matches one of `patterns` (normalized paths only).
pub fn patterns_match(patterns: &[PatternRef], path: &[u8]) -> bool {
    kapl_automata::is_normalized(path) && patterns.iter().any(|p| p.glob.matches(path))
}

/// Whether the paths of an `fs`/`exec` rule hold `path`: a pattern matches
/// and no `except` pattern does.
pub fn paths_cover(patterns: &[PatternRef], except: &[PatternRef], path: &[u8]) -> bool {
    patterns_match(patterns, path) && !patterns_match(except, path)
}

/// Whether one rule covers one request.
pub fn rule_covers(rule: &RuleKind, req: &Request) -> bool {
    match (rule, req) {
        (
            RuleKind::Fs {
                rights,
                patterns,
                except,
            },
            Request::Fs { right, path },
        ) => rights.has(*right) && paths_cover(patterns, except, path),
        (RuleKind::Exec { patterns }, Request::Exec { path }) => paths_cover(patterns, &[], path),
        (
            RuleKind::Net {
                op, addrs, ports, ..
            },
            Request::Net {
                op: rop,
                addr,
                port,
                ..
            },
        ) => {
            op == rop
                && addrs.iter().any(|c| cidr_contains(c, *addr))
                && ports.iter().any(|r| port_in(r, *port))
        }
        _ => false,
    }
}

/// The first of `rules` that covers `req`, by index.
pub fn first_covering(rules: &[Rule], req: &Request) -> Option<usize> {
    rules.iter().position(|r| rule_covers(&r.kind, req))
}

/// Whether some rule of the list covers `req` (a bound, or a `never` list).
pub fn rules_cover(rules: &[Rule], req: &Request) -> bool {
    first_covering(rules, req).is_some()
}

/// What an objective allows: its bound minus its `never` rules.
pub fn objective_allows(o: &Objective, req: &Request) -> bool {
    rules_cover(&o.bound, req) && !rules_cover(&o.never, req)
}

/// What an intent allows: inside its own bound and its objective's bound,
/// outside both `never` lists.
pub fn intent_allows(policy: &Policy, i: &Intent, req: &Request) -> bool {
    let Some(o) = policy.objectives.get(i.objective.0 as usize) else {
        return false;
    };
    rules_cover(&i.bound, req) && !rules_cover(&i.never, req) && objective_allows(o, req)
}

/// Bound containment as the obligations state it: `req` is inside the
/// plan parent's bound and outside every `never` above the plan (the
/// objective's, and the intent's when the parent is an intent).
pub fn parent_allows(policy: &Policy, parent: Parent, req: &Request) -> bool {
    match parent {
        Parent::Objective(o) => policy
            .objectives
            .get(o.0 as usize)
            .is_some_and(|o| objective_allows(o, req)),
        Parent::Intent(i) => policy.intents.get(i.0 as usize).is_some_and(|i| {
            rules_cover(&i.bound, req)
                && !rules_cover(&i.never, req)
                && policy
                    .objectives
                    .get(i.objective.0 as usize)
                    .is_some_and(|o| !rules_cover(&o.never, req))
        }),
    }
}

/// The grant of `plan` that covers `req` while `step` is current (plan-wide
/// grants first, then the step's), or `None`: the request is denied.
pub fn plan_grant_covering(
    policy: &Policy,
    plan: &Plan,
    step: Option<StepId>,
    req: &Request,
) -> Option<GrantId> {
    let step_grants = step
        .and_then(|s| plan.steps.get(s.0 as usize))
        .map(|s| s.grants.as_slice())
        .unwrap_or(&[]);
    plan.grants.iter().chain(step_grants).copied().find(|g| {
        policy
            .grants
            .get(g.0 as usize)
            .is_some_and(|g| rule_covers(&g.rule.kind, req))
    })
}

/// Whether the plan's grants cover `req` while `step` is current.
pub fn plan_grants_cover(
    policy: &Policy,
    plan: &Plan,
    step: Option<StepId>,
    req: &Request,
) -> bool {
    plan_grant_covering(policy, plan, step, req).is_some()
}

/// An IPv4 address from octets (a small helper for tests and witnesses).
pub fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str, prefix: u8) -> Cidr {
        Cidr {
            addr: s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            prefix,
        }
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let mapped: IpAddr = "::ffff:10.20.0.1".parse().unwrap_or(v4(0, 0, 0, 0));
        assert_eq!(canonical_addr(mapped), canonical_addr(v4(10, 20, 0, 1)));
        assert_eq!(display_addr(mapped), v4(10, 20, 0, 1));
        assert!(cidr_contains(&cidr("10.20.0.0", 16), mapped));
        assert!(cidr_contains(&cidr("::", 0), v4(1, 2, 3, 4)));
        assert!(!cidr_contains(&cidr("::", 96), v4(1, 2, 3, 4)));
        assert!(cidr_contains(&cidr("0.0.0.0", 0), mapped));
        assert!(!cidr_contains(
            &cidr("0.0.0.0", 0),
            "::1".parse().unwrap_or(v4(0, 0, 0, 0))
        ));
        assert_eq!(
            cidr_range(&cidr("10.20.0.0", 16)).1,
            canonical_addr(v4(10, 20, 255, 255))
        );
    }

    #[test]
    fn requests_in_words() {
        let r = Request::Net {
            op: NetOp::Connect,
            addr: v4(10, 20, 0, 1),
            port: 22,
            proto: Proto::Tcp,
        };
        assert_eq!(r.to_string(), "connect to `10.20.0.1` port 22");
        let r = Request::Fs {
            right: Right::Read,
            path: b"/srv/a".to_vec(),
        };
        assert_eq!(r.to_string(), "read `/srv/a`");
    }
}
