//! The runtime's own containment checker (stage: runtime; pure, no Z3, no
//! compiler).
//!
//! Input: an objective image (its [`ObjectiveTables`]) and a plan image.
//! Output: per step of a plan, every way its authority (plan-wide grants
//! plus the step's, i.e. the step's columns of the plan's DFAs and network
//! tables) leaves the bound of its intent or objective, or reaches one of
//! their `never` rules, each with a concrete [`Witness`] and the plan grant
//! that allows it; or a [`CheckError`] when the images do not belong
//! together.
//!
//! Paths: a breadth-first search over pairs of states of the step's DFA and
//! the level's DFA, one representative byte per class of the joint
//! refinement of the two byte-class maps, finds a shortest path accepted by
//! the step's column and not by the bound's (or by a `never`'s). Network:
//! the address space of each (operation, protocol, family) is cut at every
//! entry's first and one-past-last address, so the longest-prefix answer
//! of both tables is constant on each piece; one lookup per piece compares
//! the port sets.
//!
//! Obligations are those of the book's containment rules: under an intent
//! `I` of objective `O`, a step must lie inside `B(I)` and `B(O)` and
//! outside `N(I) ∪ N(O)`; directly under `O`, inside `B(O)` and outside
//! `N(O)`. (`B(I) ⊆ B(O)` is proved when the objective image is built;
//! checking both here costs little and does not trust it.)

use kapl_codes as codes;
use kapl_image::{
    BOUND, Dfa, DfaKind, Family, FsRight, Image, Level, LevelTables, NEVER, NO_GRANT, NetEntry,
    NetOp, ObjectiveTables, Plan, PortGrant, Proto,
};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a plan image cannot be checked against an objective image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The first image holds no objective tables.
    #[error("`{0}` is not an objective image (it holds no objective tables)")]
    NotAnObjectiveImage(String),
    /// The plan image was built against another objective image.
    #[error(
        "the plan image was built against objective identity {found}, not {expected} (`{file}`)"
    )]
    OtherObjective {
        /// The objective image's identity (hex).
        expected: String,
        /// The identity the plan image records (hex).
        found: String,
        /// The objective image file the plan image names.
        file: String,
    },
    /// The plan is under an objective or intent the objective image lacks.
    #[error("plan `{plan}` is under `{name}`, which the objective image does not define")]
    UnknownLevel {
        /// The plan.
        plan: String,
        /// The objective or intent it names.
        name: String,
    },
    /// No such plan in the plan image.
    #[error("no plan {0} in the plan image")]
    NoPlan(u32),
}

impl CheckError {
    /// The stable diagnostic code.
    pub fn code(&self) -> &'static str {
        match self {
            CheckError::OtherObjective { .. } => codes::RUN_OTHER_OBJECTIVE,
            _ => codes::RUN_IMAGE,
        }
    }
}

/// A concrete request a step allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Witness {
    /// A file-system request.
    Fs {
        /// The right.
        right: FsRight,
        /// The path.
        path: Vec<u8>,
    },
    /// Running a program.
    Exec {
        /// The program's path.
        path: Vec<u8>,
    },
    /// A network request.
    Net {
        /// Connect or bind.
        op: NetOp,
        /// TCP or UDP.
        proto: Proto,
        /// The address.
        addr: IpAddr,
        /// The port.
        port: u16,
    },
    /// A connect to a host name (to a public address it resolves to).
    Name {
        /// TCP or UDP.
        proto: Proto,
        /// The host name.
        name: String,
        /// The port.
        port: u16,
    },
}

impl std::fmt::Display for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Witness::Fs { right, path } => write!(
                f,
                "fs {} \"{}\"",
                right.as_str(),
                String::from_utf8_lossy(path)
            ),
            Witness::Exec { path } => write!(f, "exec \"{}\"", String::from_utf8_lossy(path)),
            Witness::Net {
                op,
                proto,
                addr,
                port,
            } => write!(
                f,
                "net {} {addr} port {port} ({})",
                op.as_str(),
                proto.as_str()
            ),
            Witness::Name { proto, name, port } => {
                write!(f, "net connect {name} port {port} ({})", proto.as_str())
            }
        }
    }
}

/// What a witness breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breach {
    /// It is outside this level's bound.
    OutsideBound(Level),
    /// It is inside this `never` rule of this level (`rule` indexes
    /// [`ObjectiveTables::rules`]).
    Never {
        /// The level.
        level: Level,
        /// The rule.
        rule: u32,
    },
}

/// One way a step leaves its objective.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The step (index in the plan).
    pub step: u32,
    /// The plan grant (id in the plan image) that allows the witness.
    pub grant: u32,
    /// The request.
    pub witness: Witness,
    /// What it breaks.
    pub breach: Breach,
}

/// The levels a plan is bound by: bounds it must stay inside, and the
/// levels whose `never` rules it must stay out of (the same levels).
fn levels_of<'o>(
    objective: &'o Image,
    tables: &'o ObjectiveTables,
    plan_image: &Image,
    plan: &Plan,
) -> Result<Vec<&'o LevelTables>, CheckError> {
    let unknown = |name: &str| CheckError::UnknownLevel {
        plan: plan.name.clone(),
        name: name.to_string(),
    };
    let oname = plan_image
        .objectives
        .get(plan.objective as usize)
        .map_or("", |o| o.name.as_str());
    let oi = objective
        .objectives
        .iter()
        .position(|o| o.name == oname)
        .ok_or_else(|| unknown(oname))?;
    let mut out = Vec::new();
    if let Some(i) = plan.intent {
        let iname = plan_image
            .intents
            .get(i as usize)
            .map_or("", |x| x.name.as_str());
        let ii = objective
            .intents
            .iter()
            .position(|x| x.name == iname && x.objective as usize == oi)
            .ok_or_else(|| unknown(iname))?;
        out.push(
            tables
                .level(Level::Intent(ii as u32))
                .ok_or_else(|| unknown(iname))?,
        );
    }
    out.push(
        tables
            .level(Level::Objective(oi as u32))
            .ok_or_else(|| unknown(oname))?,
    );
    Ok(out)
}

/// A deliberate defect, for tests that show the differential test against
/// the prover catches a broken checker. Never used outside tests.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The checker as it should be.
    None,
    /// `never` rules are not checked.
    SkipNever,
    /// Path search uses the step DFA's byte classes only, not the joint
    /// refinement with the level's.
    StepClassesOnly,
    /// Only the first port of each granted range is compared.
    FirstPortOnly,
}

/// Checks every step of plan `plan` of `plan_image` against the objective
/// image `objective`. An empty result means every step is inside.
pub fn check_plan(
    objective: &Image,
    plan_image: &Image,
    plan: u32,
) -> Result<Vec<Finding>, CheckError> {
    check_plan_with(objective, plan_image, plan, Fault::None)
}

/// [`check_plan`] with a deliberate defect (tests only).
#[doc(hidden)]
pub fn check_plan_with(
    objective: &Image,
    plan_image: &Image,
    plan: u32,
    fault: Fault,
) -> Result<Vec<Finding>, CheckError> {
    let tables = objective
        .objective
        .as_ref()
        .ok_or_else(|| CheckError::NotAnObjectiveImage(objective.meta.policy.clone()))?;
    if let Some(a) = &plan_image.against
        && a.identity != tables.identity
    {
        return Err(CheckError::OtherObjective {
            expected: kapl_image::hex(&tables.identity),
            found: kapl_image::hex(&a.identity),
            file: a.file.clone(),
        });
    }
    let p = plan_image
        .plans
        .get(plan as usize)
        .ok_or(CheckError::NoPlan(plan))?;
    let levels = levels_of(objective, tables, plan_image, p)?;
    let mut out = Vec::new();
    for l in &levels {
        out.extend(check_level(p, l, fault));
    }
    out.sort_by_key(|f| f.step);
    Ok(out)
}

/// Checks every plan of `plan_image`.
pub fn check_image(objective: &Image, plan_image: &Image) -> Result<Vec<Finding>, CheckError> {
    check_image_with(objective, plan_image, Fault::None)
}

/// [`check_image`] with a deliberate defect (tests only).
#[doc(hidden)]
pub fn check_image_with(
    objective: &Image,
    plan_image: &Image,
    fault: Fault,
) -> Result<Vec<Finding>, CheckError> {
    let mut out = Vec::new();
    for i in 0..plan_image.plans.len() as u32 {
        out.extend(check_plan_with(objective, plan_image, i, fault)?);
    }
    Ok(out)
}

/// Every step against one level: at most one finding per step and right
/// (and exec, and network operation) for the bound, and one for the
/// `never` rules.
fn check_level(p: &Plan, level: &LevelTables, fault: Fault) -> Vec<Finding> {
    let mut out = Vec::new();
    for (kind, a, b) in [
        (DfaKind::Fs, &p.fs, &level.fs),
        (DfaKind::Exec, &p.exec, &level.exec),
    ] {
        for hit in search(a, b, kind, p.steps.len(), fault) {
            let witness = match kind {
                DfaKind::Fs => Witness::Fs {
                    right: FsRight::ALL
                        .get(hit.column)
                        .copied()
                        .unwrap_or(FsRight::Read),
                    path: hit.path,
                },
                DfaKind::Exec => Witness::Exec { path: hit.path },
            };
            out.push(Finding {
                step: hit.step,
                grant: hit.grant,
                witness,
                breach: match hit.never {
                    Some(rule) => Breach::Never {
                        level: level.level,
                        rule,
                    },
                    None => Breach::OutsideBound(level.level),
                },
            });
        }
    }
    for step in 0..p.steps.len() as u32 {
        out.extend(net(p, step, level, fault));
        out.extend(names(p, step, level, fault));
    }
    out
}

/// Host-name rules of one step against a level, as the prover decides
/// them (kapl-prove's `names`): on every port, a step's pattern must lie
/// inside the level's bound name patterns for that port (exact pattern
/// containment), unless the bound's `connect` address entries for that
/// port cover every address a name may be admitted to (public, outside
/// the plan's own `name_excluded` ranges, which the resolver enforces);
/// and it must share no name with a `never` name pattern on that port.
fn names(p: &Plan, step: u32, level: &LevelTables, fault: Fault) -> Vec<Finding> {
    let mut outside: Option<Finding> = None;
    let mut never: Option<Finding> = None;
    for e in p.names.iter().filter(|e| e.step == step) {
        let proto = e.proto;
        let lvl: Vec<&kapl_image::NameEntry> =
            level.names.iter().filter(|n| n.proto == proto).collect();
        for r in &e.ports {
            let hi = if fault == Fault::FirstPortOnly {
                r.lo
            } else {
                r.hi
            };
            // Cut the range where any table involved changes.
            let mut cuts: Vec<u32> = vec![u32::from(r.lo), u32::from(hi) + 1];
            let edges = lvl
                .iter()
                .flat_map(|n| n.ports.iter().map(|g| (g.lo, g.hi)))
                .chain(
                    level
                        .net
                        .iter()
                        .filter(|n| n.op == NetOp::Connect && n.proto == proto)
                        .flat_map(|n| n.ports.iter().map(|g| (g.lo, g.hi))),
                )
                .chain(
                    p.name_excluded
                        .iter()
                        .filter(|x| x.proto == proto)
                        .flat_map(|x| x.ports.iter().copied()),
                );
            for (a, b) in edges {
                cuts.extend([u32::from(a), u32::from(b) + 1]);
            }
            cuts.retain(|c| (u32::from(r.lo)..=u32::from(hi) + 1).contains(c));
            cuts.sort_unstable();
            cuts.dedup();
            for w in cuts.windows(2) {
                let port = w[0] as u16;
                let at = |n: &&&kapl_image::NameEntry, col: u32| {
                    n.step == col && n.ports.iter().any(|g| g.lo <= port && port <= g.hi)
                };
                if fault != Fault::SkipNever && never.is_none() {
                    for n in lvl.iter().filter(|n| at(n, NEVER)) {
                        if let Some(name) = kapl_image::names::overlap(&e.pattern, &n.pattern) {
                            let rule = n
                                .ports
                                .iter()
                                .find(|g| g.lo <= port && port <= g.hi)
                                .map_or(NO_GRANT, |g| g.grant);
                            never = Some(Finding {
                                step,
                                grant: r.grant,
                                witness: Witness::Name { proto, name, port },
                                breach: Breach::Never {
                                    level: level.level,
                                    rule,
                                },
                            });
                            break;
                        }
                    }
                }
                if outside.is_none() && !admitted_covered(p, level, proto, port) {
                    let bound: Vec<&str> = lvl
                        .iter()
                        .filter(|n| at(n, BOUND))
                        .map(|n| n.pattern.as_str())
                        .collect();
                    if let Some(name) = kapl_image::names::uncovered(&e.pattern, &bound) {
                        outside = Some(Finding {
                            step,
                            grant: r.grant,
                            witness: Witness::Name { proto, name, port },
                            breach: Breach::OutsideBound(level.level),
                        });
                    }
                }
            }
        }
    }
    outside.into_iter().chain(never).collect()
}

/// Whether the level's bound `connect` entries for `port` cover every
/// address a name may be admitted to for it: every public address outside
/// the plan's `name_excluded` ranges, of both families (IPv4-mapped IPv6
/// is judged as IPv4, so that range needs no IPv6 entry).
fn admitted_covered(p: &Plan, level: &LevelTables, proto: Proto, port: u16) -> bool {
    [Family::V4, Family::V6].into_iter().all(|family| {
        let within = |a: IpAddr| {
            matches!(
                (family, a),
                (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_))
            )
        };
        let span = |addr: IpAddr, prefix: u8| {
            let bits: u32 = if family == Family::V4 { 32 } else { 128 };
            let host = bits.saturating_sub(u32::from(prefix));
            let lo = to_u128(addr);
            let size = if host >= 128 {
                u128::MAX
            } else {
                (1u128 << host) - 1
            };
            (lo, lo.saturating_add(size))
        };
        let mut held: Vec<(u128, u128)> = kapl_image::names::RESERVED
            .iter()
            .filter(|(a, _)| within(*a))
            .map(|&(a, pfx)| span(a, pfx))
            .collect();
        if family == Family::V6 {
            held.push(span(
                IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0)),
                96,
            ));
        }
        held.extend(
            p.name_excluded
                .iter()
                .filter(|x| x.proto == proto && within(x.addr))
                .filter(|x| x.ports.iter().any(|&(lo, hi)| lo <= port && port <= hi))
                .map(|x| span(x.addr, x.prefix)),
        );
        held.extend(
            pick(&level.net, BOUND, NetOp::Connect, proto, family)
                .into_iter()
                .filter(|e| e.ports.iter().any(|g| g.lo <= port && port <= g.hi))
                .map(range),
        );
        held.sort_unstable();
        let end = if family == Family::V4 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        let mut next: u128 = 0;
        for (a, b) in held {
            if a > next {
                return false;
            }
            if b >= next {
                if b >= end {
                    return true;
                }
                next = b + 1;
            }
        }
        false
    })
}

/// The accept row of `state` (empty when the DFA has no columns).
fn row(d: &Dfa, state: u32) -> &[kapl_image::Cell] {
    let width = d.row_width();
    d.state_row
        .get(state as usize)
        .and_then(|&r| d.rows.get(r as usize * width..(r as usize + 1) * width))
        .unwrap_or(&[])
}

/// States of `d` from which some word reaches a state that accepts in
/// some column.
fn live(d: &Dfa) -> Vec<bool> {
    let n = d.states();
    let cc = usize::from(d.class_count);
    let mut rev: Vec<Vec<u32>> = vec![Vec::new(); n];
    for q in 0..n {
        for c in 0..cc {
            if let Some(&t) = d.transitions.get(q * cc + c)
                && let Some(r) = rev.get_mut(t as usize)
            {
                r.push(q as u32);
            }
        }
    }
    let mut live = vec![false; n];
    let mut queue: VecDeque<u32> = (0..n as u32)
        .filter(|&q| row(d, q).iter().any(|c| c.grant != NO_GRANT))
        .collect();
    for &q in &queue {
        live[q as usize] = true;
    }
    while let Some(q) = queue.pop_front() {
        for &p in rev.get(q as usize).map_or(&[][..], Vec::as_slice) {
            if !live[p as usize] {
                live[p as usize] = true;
                queue.push_back(p);
            }
        }
    }
    live
}

/// Bytes in the order a witness prefers them (readable first).
fn preference() -> impl Iterator<Item = u8> {
    (b'a'..=b'z')
        .chain(b'0'..=b'9')
        .chain(b'A'..=b'Z')
        .chain([b'/', b'.', b'-', b'_'])
        .chain(0..=255u8)
}

/// A path a step's column accepts and the level does not (or, with
/// `never`, accepts in its `never` column).
struct Hit {
    step: u32,
    column: usize,
    path: Vec<u8>,
    /// The plan grant at the path's end.
    grant: u32,
    /// The `never` rule, for a `never` hit.
    never: Option<u32>,
}

/// One breadth-first search over pairs (state of the plan's DFA `a`,
/// state of the level's DFA `b`), stepping by one representative byte per
/// class of the joint refinement of the two class maps. At each pair, for
/// every step and right: if `a` accepts and `b`'s bound column does not,
/// or `b`'s `never` column does, the path to the pair is a witness; the
/// first found per (step, right, bound or never) is a shortest one.
fn search(a: &Dfa, b: &Dfa, kind: DfaKind, steps: usize, fault: Fault) -> Vec<Hit> {
    let r = kind.rights();
    let mut out: Vec<Hit> = Vec::new();
    // done[(step * r + col) * 2 + (0 bound, 1 never)]
    let mut done = vec![false; steps * r * 2];
    if fault == Fault::SkipNever {
        for i in (1..done.len()).step_by(2) {
            done[i] = true;
        }
    }
    let live_a = live(a);
    if !live_a.get(a.start as usize).copied().unwrap_or(false) {
        return out;
    }
    let mut reps: Vec<(u8, u8, u8)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for byte in preference() {
        let ca = a.classes.get(usize::from(byte)).copied().unwrap_or(0);
        let cb = b.classes.get(usize::from(byte)).copied().unwrap_or(0);
        let joint = if fault == Fault::StepClassesOnly {
            (ca, 0)
        } else {
            (ca, cb)
        };
        if seen.insert(joint) {
            reps.push((byte, ca, cb));
        }
    }
    let (acc, bcc) = (usize::from(a.class_count), usize::from(b.class_count));
    let nb = b.states() as u64;
    // Visited pairs: key → index in `nodes` (pair, parent index, byte).
    let mut index: std::collections::HashMap<u64, u32> = std::collections::HashMap::new();
    let mut nodes: Vec<(u32, u32, u32, u8)> = vec![(a.start, b.start, u32::MAX, 0)];
    index.insert(u64::from(a.start) * nb + u64::from(b.start), 0);
    let path_to = |nodes: &[(u32, u32, u32, u8)], mut i: u32| {
        let mut path = Vec::new();
        while let Some(&(_, _, parent, byte)) = nodes.get(i as usize) {
            if parent == u32::MAX {
                break;
            }
            path.push(byte);
            i = parent;
        }
        path.reverse();
        path
    };
    let mut next = 0usize;
    while let Some(&(qa, qb, _, _)) = nodes.get(next) {
        let here = next as u32;
        next += 1;
        let (ra, rb) = (row(a, qa), row(b, qb));
        for (i, cell) in ra.iter().enumerate() {
            if cell.grant == NO_GRANT {
                continue;
            }
            let col = i % r;
            let bound = rb
                .get(BOUND as usize * r + col)
                .map_or(NO_GRANT, |c| c.grant);
            let never = rb
                .get(NEVER as usize * r + col)
                .map_or(NO_GRANT, |c| c.grant);
            for (slot, hit) in [(0, bound == NO_GRANT), (1, never != NO_GRANT)] {
                let d = i * 2 + slot;
                if hit && !done.get(d).copied().unwrap_or(true) {
                    done[d] = true;
                    out.push(Hit {
                        step: (i / r) as u32,
                        column: col,
                        path: path_to(&nodes, here),
                        grant: cell.grant,
                        never: (slot == 1).then_some(never),
                    });
                }
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        for &(byte, ca, cb) in &reps {
            let Some(&na) = a.transitions.get(qa as usize * acc + usize::from(ca)) else {
                continue;
            };
            if !live_a.get(na as usize).copied().unwrap_or(false) {
                continue;
            }
            let Some(&nbq) = b.transitions.get(qb as usize * bcc + usize::from(cb)) else {
                continue;
            };
            let k = u64::from(na) * nb + u64::from(nbq);
            if let std::collections::hash_map::Entry::Vacant(e) = index.entry(k) {
                e.insert(nodes.len() as u32);
                nodes.push((na, nbq, here, byte));
            }
        }
    }
    out
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(family: Family, x: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(x as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(x)),
    }
}

/// The first and last address an entry covers.
fn range(e: &NetEntry) -> (u128, u128) {
    let bits = match e.family {
        Family::V4 => 32u32,
        Family::V6 => 128,
    };
    let host = bits.saturating_sub(u32::from(e.prefix));
    let lo = to_u128(e.addr);
    let span = if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    };
    (lo, lo.saturating_add(span))
}

/// The ports the longest matching entry of `entries` grants at `addr`.
fn lpm<'e>(entries: &[&'e NetEntry], addr: u128) -> &'e [PortGrant] {
    entries
        .iter()
        .filter(|e| {
            let (lo, hi) = range(e);
            lo <= addr && addr <= hi
        })
        .max_by_key(|e| e.prefix)
        .map_or(&[], |e| e.ports.as_slice())
}

/// The first port of `lo..=hi` that `ports` covers (`want`) or does not.
fn first_port(ports: &[PortGrant], lo: u16, hi: u16, want: bool) -> Option<(u16, u32)> {
    let mut p = u32::from(lo);
    while p <= u32::from(hi) {
        let port = p as u16;
        match ports.iter().find(|r| r.lo <= port && port <= r.hi) {
            Some(r) if want => return Some((port, r.grant)),
            Some(r) => p = u32::from(r.hi) + 1,
            None if want => {
                // Jump to the next range that starts after `port`.
                match ports.iter().filter(|r| r.lo > port).map(|r| r.lo).min() {
                    Some(next) => p = u32::from(next),
                    None => return None,
                }
            }
            None => return Some((port, NO_GRANT)),
        }
    }
    None
}

/// The entries of one step, operation, protocol and family.
fn pick(
    entries: &[NetEntry],
    step: u32,
    op: NetOp,
    proto: Proto,
    family: Family,
) -> Vec<&NetEntry> {
    entries
        .iter()
        .filter(|e| e.step == step && e.op == op && e.proto == proto && e.family == family)
        .collect()
}

fn net(p: &Plan, step: u32, level: &LevelTables, fault: Fault) -> Vec<Finding> {
    let mut out = Vec::new();
    for op in [NetOp::Connect, NetOp::Bind] {
        let mut outside: Option<Finding> = None;
        let mut never: Option<Finding> = None;
        for proto in Proto::ALL {
            for family in [Family::V4, Family::V6] {
                let a = pick(&p.net, step, op, proto, family);
                if a.is_empty() {
                    continue;
                }
                let b = pick(&level.net, BOUND, op, proto, family);
                let n = pick(&level.net, NEVER, op, proto, family);
                // Cut points: every entry's first and one-past-last address.
                let mut cuts: Vec<u128> = a
                    .iter()
                    .chain(&b)
                    .chain(&n)
                    .flat_map(|e| {
                        let (lo, hi) = range(e);
                        [Some(lo), hi.checked_add(1)]
                    })
                    .flatten()
                    .collect();
                cuts.sort_unstable();
                cuts.dedup();
                for &addr in &cuts {
                    let granted = lpm(&a, addr);
                    for r in granted {
                        let hi = if fault == Fault::FirstPortOnly {
                            r.lo
                        } else {
                            r.hi
                        };
                        if outside.is_none()
                            && let Some((port, _)) = first_port(lpm(&b, addr), r.lo, hi, false)
                        {
                            outside = Some(Finding {
                                step,
                                grant: r.grant,
                                witness: Witness::Net {
                                    op,
                                    proto,
                                    addr: from_u128(family, addr),
                                    port,
                                },
                                breach: Breach::OutsideBound(level.level),
                            });
                        }
                        if fault != Fault::SkipNever
                            && never.is_none()
                            && let Some((port, rule)) = first_port(lpm(&n, addr), r.lo, hi, true)
                        {
                            never = Some(Finding {
                                step,
                                grant: r.grant,
                                witness: Witness::Net {
                                    op,
                                    proto,
                                    addr: from_u128(family, addr),
                                    port,
                                },
                                breach: Breach::Never {
                                    level: level.level,
                                    rule,
                                },
                            });
                        }
                    }
                }
            }
        }
        out.extend(outside);
        out.extend(never);
    }
    out
}

/// The tables a session pinned to objective `objective` (and intent
/// `intent`, if any) judges by, intent first: bounds to stay inside and
/// `never` rules to stay out of. `None` when the image lacks one of them.
pub fn pinned_levels(
    tables: &ObjectiveTables,
    objective: u32,
    intent: Option<u32>,
) -> Option<Vec<&LevelTables>> {
    let mut out = Vec::new();
    if let Some(i) = intent {
        out.push(tables.level(Level::Intent(i))?);
    }
    out.push(tables.level(Level::Objective(objective))?);
    Some(out)
}

/// The cell of `d` for `path` in step column `col` and right `right`.
fn cell_at(d: &Dfa, path: &[u8], col: u32, right: usize) -> u32 {
    let cc = usize::from(d.class_count);
    let mut q = d.start as usize;
    for &b in path {
        let c = usize::from(d.classes.get(usize::from(b)).copied().unwrap_or(0));
        q = d.transitions.get(q * cc + c).copied().unwrap_or(0) as usize;
    }
    row(d, q as u32)
        .get(col as usize * d.kind.rights() + right)
        .map_or(NO_GRANT, |c| c.grant)
}

/// Whether the request `w` lies inside every level's bound and outside
/// every `never` rule: `None` when it does, else the first breach (a
/// `never` before a bound: it says that no revision can allow it). A
/// network request is judged for TCP and UDP alike, as a `net` rule grants
/// both.
pub fn judge(levels: &[&LevelTables], w: &Witness) -> Option<Breach> {
    let mut outside = None;
    for l in levels {
        let (never, bound) = match w {
            Witness::Fs { right, path } => {
                let r = FsRight::ALL.iter().position(|x| x == right).unwrap_or(0);
                (
                    cell_at(&l.fs, path, NEVER, r),
                    cell_at(&l.fs, path, BOUND, r) != NO_GRANT,
                )
            }
            Witness::Exec { path } => (
                cell_at(&l.exec, path, NEVER, 0),
                cell_at(&l.exec, path, BOUND, 0) != NO_GRANT,
            ),
            Witness::Net { op, addr, port, .. } => {
                let family = match addr {
                    IpAddr::V4(_) => Family::V4,
                    IpAddr::V6(_) => Family::V6,
                };
                let a = to_u128(*addr);
                let mut never = NO_GRANT;
                let mut bound = true;
                for proto in Proto::ALL {
                    let hit = |col| {
                        lpm(&pick(&l.net, col, *op, proto, family), a)
                            .iter()
                            .find(|r| r.lo <= *port && *port <= r.hi)
                            .map(|r| r.grant)
                    };
                    if let Some(rule) = hit(NEVER) {
                        never = rule;
                    }
                    bound &= hit(BOUND).is_some();
                }
                (never, bound)
            }
            // A name is judged by the level's name patterns alone (a bound
            // that admits it by addresses only reads as outside here).
            Witness::Name { proto, name, port } => {
                let hit = |col| {
                    l.names
                        .iter()
                        .filter(|n| n.step == col && n.proto == *proto)
                        .filter(|n| kapl_image::names::matches(&n.pattern, name))
                        .find_map(|n| n.ports.iter().find(|g| g.lo <= *port && *port <= g.hi))
                        .map(|g| g.grant)
                };
                (hit(NEVER).unwrap_or(NO_GRANT), hit(BOUND).is_some())
            }
        };
        if never != NO_GRANT {
            return Some(Breach::Never {
                level: l.level,
                rule: never,
            });
        }
        if !bound && outside.is_none() {
            outside = Some(Breach::OutsideBound(l.level));
        }
    }
    outside
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]
mod tests {
    use super::*;
    use crate::tests_support::images;

    const OBJ: &str = r#"
objective o {
  bound {
    fs read "/srv/**"
    fs write "/srv/out/*"
    exec "/usr/bin/{git,ls}"
    net connect 10.0.0.0/8 port 443
    net connect 10.1.0.0/16 port 80-90
  }
  never {
    fs read "/srv/**/.env"
    net connect 10.9.0.0/16 port any
  }
}
intent i under o {
  bound {
    fs read "/srv/a/**"
    exec "/usr/bin/git"
    net connect 10.1.0.0/16 port 80
  }
  never { fs read "/srv/a/secret" }
}
"#;

    fn check(plans: &str) -> Vec<Finding> {
        let (obj, plan) = images(&format!("{OBJ}\n{plans}"));
        assert!(obj.objective.is_some());
        check_image(&obj, &plan).unwrap()
    }

    fn witnesses(f: &[Finding]) -> Vec<String> {
        f.iter().map(|f| f.witness.to_string()).collect()
    }

    const NAMES: &str = r#"
objective w {
  bound {
    net connect "files.pythonhosted.org", "**.org" port 443
    net connect 0.0.0.0/0, ::/0 port 80
  }
  never {
    net connect "*.evil.org" port 443
    net connect 169.254.0.0/16 port any
  }
}
"#;

    fn check_names(plans: &str) -> Vec<String> {
        let (obj, plan) = images(&format!("{NAMES}\n{plans}"));
        witnesses(&check_image(&obj, &plan).unwrap())
    }

    #[test]
    fn host_names_inside_pass_and_outside_or_never_have_witnesses() {
        let inside = check_names(
            "plan p under w { step s {\n grant net connect \"pypi.org\", \"*.pythonhosted.org\" port 443\n grant net connect \"anything.example\" port 80\n } }",
        );
        assert_eq!(inside, Vec::<String>::new());
        // Forge a wider name into a plan the compiler checked, as a
        // proposed plan image could: the runtime refuses it on its own.
        let (obj, mut plan) = images(&format!(
            "{NAMES}\nplan p under w {{ step s {{ grant net connect \"files.pythonhosted.org\" port 443 }} }}"
        ));
        for e in &mut plan.plans[0].names {
            e.pattern = "*.pythonhosted.com".into();
        }
        let found = check_image(&obj, &plan).unwrap();
        assert_eq!(
            witnesses(&found),
            ["net connect x.pythonhosted.com port 443 (tcp)"]
        );
        assert_eq!(found[0].breach, Breach::OutsideBound(Level::Objective(0)));
        for e in &mut plan.plans[0].names {
            e.pattern = "**.org".into();
        }
        let found = check_image(&obj, &plan).unwrap();
        assert_eq!(witnesses(&found), ["net connect x.evil.org port 443 (tcp)"]);
        assert!(matches!(found[0].breach, Breach::Never { .. }));
    }

    #[test]
    fn a_plan_inside_passes() {
        let f = check(
            r#"plan p under o {
  grant fs read "/srv/x/**" except "/srv/**/.env"
  step s { grant fs write "/srv/out/a" grant net connect 10.2.0.0/16 port 443 }
  step t { grant exec "/usr/bin/ls" grant net connect 10.1.2.3 port 85 }
}
plan q under i {
  step s { grant fs read "/srv/a/b/*" except "/srv/**/.env" grant exec "/usr/bin/git" }
}"#,
        );
        assert_eq!(f, Vec::new());
    }

    #[test]
    fn paths_outside_the_bound_and_in_a_never_have_shortest_witnesses() {
        let f = check(
            r#"plan p under o {
  step s { grant fs read "/srv/x/*" }
  step t { grant fs read, write "/srv/**" except "/srv/**/.env" }
  step u { grant exec "/usr/bin/*" }
}"#,
        );
        let w = witnesses(&f);
        // Step s reaches /srv/x/.env: the objective's never.
        assert!(w.contains(&"fs read \"/srv/x/.env\"".to_string()), "{w:?}");
        // Step t writes outside /srv/out/*: the shortest such path.
        assert!(w.contains(&"fs write \"/srv\"".to_string()), "{w:?}");
        // Step u runs a program outside the bound.
        assert!(w.iter().any(|x| x.starts_with("exec \"/usr/bin/")), "{w:?}");
        assert!(f.iter().any(|x| x.step == 0
            && matches!(
                x.breach,
                Breach::Never {
                    level: Level::Objective(0),
                    ..
                }
            )));
        assert!(
            f.iter()
                .all(|x| x.step != 1 || matches!(x.breach, Breach::OutsideBound(_)))
        );
    }

    #[test]
    fn intents_bind_with_their_objective() {
        let f = check(
            r#"plan q under i {
  step s { grant fs read "/srv/a/*" except "/srv/**/.env" }
  step t { grant fs read "/srv/b" }
}"#,
        );
        let w = witnesses(&f);
        assert!(
            f.iter().any(|x| x.step == 0
                && x.witness.to_string() == "fs read \"/srv/a/secret\""
                && matches!(
                    x.breach,
                    Breach::Never {
                        level: Level::Intent(0),
                        ..
                    }
                )),
            "{w:?}"
        );
        assert!(
            f.iter().any(|x| x.step == 1
                && x.witness.to_string() == "fs read \"/srv/b\""
                && x.breach == Breach::OutsideBound(Level::Intent(0))),
            "{w:?}"
        );
    }

    #[test]
    fn network_outside_and_never() {
        let f = check(
            r#"plan p under o {
  step s { grant net connect 10.1.0.0/16 port 80-100 }
  step t { grant net connect 10.9.1.1 port 443 }
  step u { grant net bind 127.0.0.1 port 8080 }
}"#,
        );
        let w = witnesses(&f);
        assert!(
            w.contains(&"net connect 10.1.0.0 port 91 (tcp)".to_string()),
            "{w:?}"
        );
        assert!(
            w.contains(&"net connect 10.9.1.1 port 443 (tcp)".to_string()),
            "{w:?}"
        );
        assert!(
            w.contains(&"net bind 127.0.0.1 port 8080 (tcp)".to_string()),
            "{w:?}"
        );
        let never = f
            .iter()
            .find(|x| x.step == 1 && matches!(x.breach, Breach::Never { .. }))
            .unwrap();
        let (obj, _) = images(OBJ);
        let Breach::Never { rule, .. } = never.breach else {
            unreachable!()
        };
        let rule = &obj.objective.as_ref().unwrap().rules[rule as usize];
        assert!(rule.never && rule.text.contains("10.9.0.0/16"), "{rule:?}");
    }

    #[test]
    fn a_forged_step_that_widens_is_caught_and_another_objective_refused() {
        let (obj, mut plan) = images(&format!(
            "{OBJ}\nplan p under o {{ step s {{ grant fs read \"/srv/out/a\" }} }}"
        ));
        assert_eq!(check_image(&obj, &plan).unwrap(), Vec::new());
        // Widen: every state of the fs DFA accepts read for step s.
        let width = plan.plans[0].fs.row_width();
        for r in 0..plan.plans[0].fs.row_count() {
            plan.plans[0].fs.rows[r * width].grant = 0;
        }
        let f = check_image(&obj, &plan).unwrap();
        assert!(
            f.iter()
                .any(|x| x.breach == Breach::OutsideBound(Level::Objective(0))),
            "{:?}",
            witnesses(&f)
        );
        // Built against another objective image: refused with its code.
        plan.against = Some(kapl_image::Against {
            file: "other.kapi".into(),
            identity: [7; 32],
        });
        let e = check_image(&obj, &plan).unwrap_err();
        assert_eq!(e.code(), "KAPL0811");
    }

    #[test]
    fn single_requests_are_judged_inside_outside_or_never() {
        let (obj, _) = images(&format!(
            "{OBJ}\nplan p under o {{ step s {{ grant exec \"/usr/bin/ls\" }} }}"
        ));
        let t = obj.objective.as_ref().unwrap();
        let o = pinned_levels(t, 0, None).unwrap();
        let i = pinned_levels(t, 0, Some(0)).unwrap();
        let fs = |right, p: &str| Witness::Fs {
            right,
            path: p.as_bytes().to_vec(),
        };
        let net = |a: &str, port| Witness::Net {
            op: NetOp::Connect,
            proto: Proto::Tcp,
            addr: a.parse().unwrap(),
            port,
        };
        let is_never = |b: Option<Breach>| matches!(b, Some(Breach::Never { .. }));
        let is_outside = |b: Option<Breach>| matches!(b, Some(Breach::OutsideBound(_)));
        assert_eq!(judge(&o, &fs(FsRight::Read, "/srv/x/y")), None);
        assert!(is_outside(judge(&o, &fs(FsRight::Write, "/srv/x/y"))));
        assert_eq!(judge(&o, &fs(FsRight::Write, "/srv/out/a")), None);
        assert!(is_never(judge(&o, &fs(FsRight::Read, "/srv/x/.env"))));
        assert!(is_outside(judge(&o, &fs(FsRight::Read, "/etc/passwd"))));
        assert_eq!(
            judge(
                &o,
                &Witness::Exec {
                    path: b"/usr/bin/ls".to_vec()
                }
            ),
            None
        );
        assert!(is_outside(judge(
            &o,
            &Witness::Exec {
                path: b"/usr/bin/sh".to_vec()
            }
        )));
        assert_eq!(judge(&o, &net("10.2.3.4", 443)), None);
        assert!(is_outside(judge(&o, &net("10.2.3.4", 80))));
        assert_eq!(judge(&o, &net("10.1.3.4", 85)), None);
        assert!(is_never(judge(&o, &net("10.9.0.1", 443))));
        // Under the intent: its own bound and `never` as well.
        assert!(is_outside(judge(&i, &fs(FsRight::Read, "/srv/b/x"))));
        assert_eq!(judge(&i, &fs(FsRight::Read, "/srv/a/x")), None);
        assert!(is_never(judge(&i, &fs(FsRight::Read, "/srv/a/secret"))));
        assert!(is_outside(judge(
            &i,
            &Witness::Exec {
                path: b"/usr/bin/ls".to_vec()
            }
        )));
        assert!(is_outside(judge(&i, &net("10.1.3.4", 85))));
        assert_eq!(judge(&i, &net("10.1.3.4", 80)), None);
    }
}
