//! Landlock plans: per step, what the runtime walks and with which rights,
//! and where the result is narrower than the grant.
//!
//! Input: the grants that hold in a step (IR) and the plan's DFAs.
//! Output: a [`Landlock`] (walks with literal prefixes and access bits, the
//! TCP network wall, the precision report).

use crate::net::{self, NetGrant};
use kapl_check::ir::{Grant, PatternRef, RuleKind};
use kapl_image::{DfaKind, Landlock, NetOp, Precision, RightSet, Walk, access, limits};
use kapl_syntax::glob::{Atom, Branch, Segment};

/// The literal directory or file a branch starts with (its leading segments
/// made only of literal bytes), `/` when the first segment has a wildcard.
pub(crate) fn literal_prefix(b: &Branch) -> Vec<u8> {
    let mut out = Vec::new();
    for s in &b.segments {
        let Segment::Atoms(atoms) = s else { break };
        if !atoms.iter().all(|a| matches!(a, Atom::Literal(_))) {
            break;
        }
        out.push(b'/');
        for a in atoms {
            if let Atom::Literal(l) = a {
                out.extend_from_slice(l);
            }
        }
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

fn beneath(p: &[u8], of: &[u8]) -> bool {
    of == b"/" || p == of || (p.starts_with(of) && p.get(of.len()) == Some(&b'/'))
}

/// Prefixes of a set of patterns: deduplicated, none beneath another.
pub(crate) fn prefixes(patterns: &[PatternRef]) -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = patterns
        .iter()
        .flat_map(|p| p.glob.branches.iter().map(literal_prefix))
        .collect();
    all.sort();
    all.dedup();
    let mut out: Vec<Vec<u8>> = Vec::new();
    // Sorted order puts a prefix before everything beneath it (`/a` < `/a/b`),
    // except for siblings like `/a-b` between `/a` and `/a/b`; check all.
    for p in &all {
        if !all.iter().any(|o| o != p && beneath(p, o)) {
            out.push(p.clone());
        }
    }
    out
}

/// Whether a branch names one path (no wildcard anywhere).
fn literal(b: &Branch) -> bool {
    b.segments
        .iter()
        .all(|s| matches!(s, Segment::Atoms(a) if a.iter().all(|x| matches!(x, Atom::Literal(_)))))
}

fn ends_any_depth(b: &Branch) -> bool {
    matches!(b.segments.last(), Some(Segment::AnyDepth))
}

/// The precision notes of one grant.
fn notes(g: &Grant) -> Vec<String> {
    let mut out = Vec::new();
    match &g.rule.kind {
        RuleKind::Fs {
            rights,
            patterns,
            except,
        } => {
            // Fully literal branches name one path: exact when it exists at
            // step start. Wildcard branches not ending in `**` are granted
            // per existing entry.
            let partial: Vec<&str> = patterns
                .iter()
                .filter(|p| p.glob.branches.iter().any(|b| !ends_any_depth(b) && !literal(b)))
                .map(|p| &*p.source)
                .collect();
            let fixed: Vec<&str> = patterns
                .iter()
                .filter(|p| p.glob.branches.iter().any(literal))
                .map(|p| &*p.source)
                .collect();
            if !fixed.is_empty()
                && (rights.has(kapl_syntax::ast::Right::Read) || rights.has(kapl_syntax::ast::Right::Write))
            {
                let pats = fixed.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ");
                out.push(format!("{pats}: granted only where the path exists when the step starts (a directory named so is listable only if every directory beneath it may be listed)"));
            }
            if !partial.is_empty() {
                let pats = partial.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ");
                // Creating and deleting are decided per name by the
                // runtime's supervised layer: exact, nothing to note.
                if rights.has(kapl_syntax::ast::Right::Read) || rights.has(kapl_syntax::ast::Right::Write) {
                    out.push(format!(
                        "{pats}: granted per existing entry when the step starts; entries created later are not covered for reading or writing until the next step starts"
                    ));
                }
            }
            if !except.is_empty()
                && (rights.has(kapl_syntax::ast::Right::Read) || rights.has(kapl_syntax::ast::Right::Write))
            {
                let pats = except.iter().map(|p| format!("`{}`", p.source)).collect::<Vec<_>>().join(", ");
                out.push(format!(
                    "directories containing paths excepted by {pats} are granted per existing entry for reading and writing; entries created there later are not covered for that until the next step starts"
                ));
            }
        }
        RuleKind::Exec { patterns } => {
            let partial: Vec<String> = patterns
                .iter()
                .filter(|p| p.glob.branches.iter().any(|b| !ends_any_depth(b) && !literal(b)))
                .map(|p| format!("`{}`", p.source))
                .collect();
            if !partial.is_empty() {
                out.push(format!(
                    "{}: programs are allowed per existing file when the step starts; files created later cannot be run",
                    partial.join(", ")
                ));
            }
        }
        RuleKind::Net { .. } => out.push(
            "Landlock's network wall limits TCP ports only; addresses and UDP are enforced by the cgroup BPF programs".into(),
        ),
    }
    out
}

/// The Landlock plan of one step; `holds` are the grants that hold there.
pub(crate) fn plan(holds: &[&Grant], net_grants: &[&NetGrant<'_>]) -> Landlock {
    let mut walks = Vec::new();
    let mut precision = Vec::new();
    for g in holds {
        let id = g.id.0;
        match &g.rule.kind {
            RuleKind::Fs {
                rights, patterns, ..
            } => {
                let rs = RightSet(rights.0);
                walks.push(Walk {
                    grant: id,
                    dfa: DfaKind::Fs,
                    rights: rs,
                    access: rs.iter().map(access::of_right).fold(0, |a, b| a | b),
                    prefixes: prefixes(patterns),
                });
            }
            RuleKind::Exec { patterns } => walks.push(Walk {
                grant: id,
                dfa: DfaKind::Exec,
                rights: RightSet(0),
                access: access::EXECUTE,
                prefixes: prefixes(patterns),
            }),
            RuleKind::Net { .. } => {}
        }
        for note in notes(g) {
            precision.push(Precision { grant: id, note });
        }
    }
    let mut handled_net = 0;
    let mut tcp = [Vec::new(), Vec::new()];
    for (i, (op, bit)) in [
        (NetOp::Bind, access::NET_BIND_TCP),
        (NetOp::Connect, access::NET_CONNECT_TCP),
    ]
    .into_iter()
    .enumerate()
    {
        let ports = net::tcp_ports(net_grants, op);
        let count: usize = ports.iter().map(|p| usize::from(p.hi - p.lo) + 1).sum();
        if count <= limits::MAX_LANDLOCK_PORTS {
            handled_net |= bit;
            tcp[i] = ports;
        } else if let Some(first) = ports.first() {
            precision.push(Precision {
                grant: first.grant,
                note: format!(
                    "{count} TCP ports may be {}: too many for Landlock port rules, so only the cgroup BPF programs enforce TCP {}",
                    if op == NetOp::Bind { "bound" } else { "connected to" },
                    op.as_str()
                ),
            });
        }
    }
    let [tcp_bind, tcp_connect] = tcp;
    Landlock {
        abi: 7,
        handled_fs: access::ALL_ABI7,
        handled_net,
        walks,
        tcp_bind,
        tcp_connect,
        precision,
    }
}
