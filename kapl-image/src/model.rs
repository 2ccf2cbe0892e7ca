//! The image data model: what one `.kapi` file holds once decoded.
//!
//! Input: built by `kapl-codegen` (or decoded by [`crate::read`]).
//! Output: plain data read by `kapl-run`, `kaplc inspect` and the evaluator.
//!
//! INVARIANT (checked by [`Image::validate`], which the reader always runs):
//! every index is in range, every DFA is total over its classes, every
//! `after` list names earlier-validated steps of the same plan, and every
//! grant id named anywhere belongs to the plan that names it.

use std::net::IpAddr;

/// Marks "no grant" in accept cells and other grant slots.
pub const NO_GRANT: u32 = u32::MAX;

/// A file-system right, in the image's canonical column order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FsRight {
    /// Read file contents, list directories.
    Read = 0,
    /// Change or truncate an existing file.
    Write = 1,
    /// Make files, directories, links.
    Create = 2,
    /// Remove or rename away.
    Delete = 3,
}

impl FsRight {
    /// All rights, in column order.
    pub const ALL: [FsRight; 4] = [
        FsRight::Read,
        FsRight::Write,
        FsRight::Create,
        FsRight::Delete,
    ];

    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            FsRight::Read => "read",
            FsRight::Write => "write",
            FsRight::Create => "create",
            FsRight::Delete => "delete",
        }
    }

    /// The right's column index in an fs DFA's accept rows.
    pub fn column(self) -> usize {
        self as usize
    }

    /// The right's bit in a [`RightSet`].
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// Parses a keyword.
    pub fn parse(s: &str) -> Option<FsRight> {
        FsRight::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A set of [`FsRight`]s as bits (`1 << FsRight as u8`); the same bit values
/// as the IR's `Rights`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RightSet(pub u8);

impl RightSet {
    /// Whether `r` is in the set.
    pub fn has(self, r: FsRight) -> bool {
        self.0 & r.bit() != 0
    }
    /// The rights in column order.
    pub fn iter(self) -> impl Iterator<Item = FsRight> {
        FsRight::ALL.into_iter().filter(move |r| self.has(*r))
    }
    /// `read, write` style text.
    pub fn to_text(self) -> String {
        self.iter()
            .map(FsRight::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A network operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetOp {
    /// Outgoing connections and datagrams (connect, sendmsg).
    Connect = 0,
    /// Binding local addresses.
    Bind = 1,
}

impl NetOp {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            NetOp::Connect => "connect",
            NetOp::Bind => "bind",
        }
    }
}

/// A transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP (`IPPROTO_TCP` = 6).
    Tcp = 6,
    /// UDP (`IPPROTO_UDP` = 17).
    Udp = 17,
}

impl Proto {
    /// The name.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
    /// Both, in table order.
    pub const ALL: [Proto; 2] = [Proto::Tcp, Proto::Udp];
}

/// A whole compiled policy: every plan of one policy text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Where it came from.
    pub meta: Meta,
    /// Objectives, indexed by objective id.
    pub objectives: Vec<Objective>,
    /// Intents, indexed by intent id.
    pub intents: Vec<Intent>,
    /// Plans, indexed by plan id.
    pub plans: Vec<Plan>,
    /// The provenance table, indexed by grant id (`grants[i].id == i`).
    pub grants: Vec<Grant>,
    /// An objective image's tables (bounds and `never`s, embedded sources,
    /// identity); `None` in an image built without objective tables.
    pub objective: Option<crate::ObjectiveTables>,
    /// The objective image a plan image was built against, if any.
    pub against: Option<crate::Against>,
}

/// Image metadata.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Meta {
    /// The policy's name (its main file's stem, e.g. `deploy`).
    pub policy: String,
    /// The compiler that wrote it (e.g. `kaplc 0.1.0`).
    pub compiler: String,
    /// Source files by index, as shown to users (`deploy.kapl`,
    /// `<stdlib/runtime.kapl>`).
    pub sources: Vec<String>,
    /// The parameters' values the image was proved and built for, `(name,
    /// value)` sorted by name (empty when the policy has none).
    pub params: Vec<(String, String)>,
}

/// An objective.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Objective {
    /// Its name.
    pub name: String,
    /// Its `about` text.
    pub about: Option<String>,
    /// Its bound and `never` rules as written, in source order (what a
    /// person reviewing a session reads; the prover's tables are elsewhere).
    pub rules: Vec<RuleText>,
}

/// A bound or `never` rule of an objective or intent, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleText {
    /// A `never` rule (else a bound rule).
    pub never: bool,
    /// Where it is written (its file indexes [`Meta::sources`]).
    pub source: SourceLoc,
    /// Its source text.
    pub text: String,
}

/// An intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    /// Its name.
    pub name: String,
    /// Its `about` text.
    pub about: Option<String>,
    /// The objective it lies under (index into [`Image::objectives`]).
    pub objective: u32,
    /// Its bound and `never` rules as written, in source order.
    pub rules: Vec<RuleText>,
}

/// A plan and everything needed to enforce it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Its name.
    pub name: String,
    /// Its `about` text.
    pub about: Option<String>,
    /// The objective above it (directly or through its intent).
    pub objective: u32,
    /// The intent it is under, if any.
    pub intent: Option<u32>,
    /// Plan-wide grants (they hold in every step and are already folded into
    /// every step's tables).
    pub grants: Vec<u32>,
    /// Steps in source order; a step's index is its step id.
    pub steps: Vec<Step>,
    /// The path DFA: 4 columns per step (read, write, create, delete).
    pub fs: Dfa,
    /// The exec DFA: 1 column per step (exec).
    pub exec: Dfa,
    /// Network rules as LPM entries, every step's (plan-wide grants folded
    /// in), sorted by (step, op, proto, family, address, prefix).
    pub net: Vec<NetEntry>,
    /// Host-name rules of `net connect` grants, every step's (plan-wide grants
    /// folded in), sorted by (step, proto, pattern).
    pub names: Vec<NameEntry>,
    /// Address ranges a name never admits in this plan besides
    /// `names::RESERVED`: every `never net connect` address range above the
    /// plan (objective and intent), per protocol, with its ports.
    pub name_excluded: Vec<NameExclusion>,
    /// `never net connect` name patterns above the plan (a CNAME chain through
    /// a matching name is refused by the resolver), per protocol, with ports.
    pub never_names: Vec<NeverName>,
}

impl Plan {
    /// Steps that have no `after`: where a session may start.
    pub fn start_steps(&self) -> impl Iterator<Item = (u32, &Step)> {
        self.steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.after.is_empty())
            .map(|(i, s)| (i as u32, s))
    }

    /// A step's index by name.
    pub fn step_index(&self, name: &str) -> Option<u32> {
        self.steps
            .iter()
            .position(|s| s.name == name)
            .map(|i| i as u32)
    }

    /// Every grant that holds in `step`: plan-wide first, then the step's own.
    pub fn step_grants(&self, step: u32) -> impl Iterator<Item = u32> + '_ {
        let own = self
            .steps
            .get(step as usize)
            .map(|s| s.grants.as_slice())
            .unwrap_or(&[]);
        self.grants.iter().chain(own.iter()).copied()
    }

    /// The ports a connect to `name` (normalized) may use in `step` over
    /// `proto`, each with the lowest-id grant whose name rule allows it
    /// (merged over every matching entry; sorted, disjoint). Empty: no grant
    /// allows the name.
    pub fn name_ports(&self, step: u32, proto: Proto, name: &str) -> Vec<PortGrant> {
        let mut merged: Vec<PortGrant> = Vec::new();
        for e in &self.names {
            if e.step == step && e.proto == proto && crate::names::matches(&e.pattern, name) {
                merged = merge_ports(&merged, &e.ports);
            }
        }
        merged
    }

    /// Whether an address learned for a name may be admitted for `port`
    /// over `proto`: `names::is_public(addr)` and inside no
    /// [`Plan::name_excluded`] range covering that port (IPv4-mapped IPv6
    /// judged as IPv4).
    pub fn name_admits(&self, proto: Proto, addr: IpAddr, port: u16) -> bool {
        let addr = unmap(addr);
        crate::names::is_public(addr)
            && !self.name_excluded.iter().any(|x| {
                x.proto == proto
                    && crate::names::within(addr, x.addr, x.prefix)
                    && x.ports.iter().any(|&(lo, hi)| lo <= port && port <= hi)
            })
    }

    /// Whether `name` (normalized) matches a [`Plan::never_names`] pattern
    /// for `proto`, on any of its ports: the resolver cannot know the port
    /// a name will be used with, so it refuses the name outright.
    pub fn name_never(&self, proto: Proto, name: &str) -> bool {
        self.never_names
            .iter()
            .any(|n| n.proto == proto && crate::names::matches(&n.pattern, name))
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address; others unchanged.
pub fn unmap(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        a => a,
    }
}

/// The union of two sorted, disjoint port lists, each port credited to the
/// lower of the grants that cover it (sorted, disjoint, adjacent ranges of
/// one grant joined).
pub fn merge_ports(a: &[PortGrant], b: &[PortGrant]) -> Vec<PortGrant> {
    // Boundaries where the answer may change.
    let mut cuts: Vec<u32> = a
        .iter()
        .chain(b)
        .flat_map(|p| [u32::from(p.lo), u32::from(p.hi) + 1])
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let at = |l: &[PortGrant], port: u32| {
        l.iter()
            .find(|p| u32::from(p.lo) <= port && port <= u32::from(p.hi))
            .map(|p| p.grant)
    };
    let mut out: Vec<PortGrant> = Vec::new();
    for w in cuts.windows(2) {
        let (lo, hi) = (w[0], w[1] - 1);
        let g = match (at(a, lo), at(b, lo)) {
            (Some(x), Some(y)) => x.min(y),
            (Some(x), None) | (None, Some(x)) => x,
            (None, None) => continue,
        };
        // INVARIANT: cuts lie in 0..=65536, so `lo` and `hi` fit in u16.
        let (lo, hi) = (lo as u16, hi as u16);
        match out.last_mut() {
            Some(last) if last.grant == g && u32::from(last.hi) + 1 == u32::from(lo) => {
                last.hi = hi;
            }
            _ => out.push(PortGrant { lo, hi, grant: g }),
        }
    }
    out
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Its name.
    pub name: String,
    /// Its `about` text.
    pub about: Option<String>,
    /// Steps (indices in the same plan) that must have been current first.
    pub after: Vec<u32>,
    /// The step's own grants (plan-wide ones are in [`Plan::grants`]).
    pub grants: Vec<u32>,
    /// How to build this step's Landlock ruleset.
    pub landlock: Landlock,
}

/// Which kind of DFA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DfaKind {
    /// Paths × fs rights (4 columns per step).
    Fs = 0,
    /// Executed programs (1 column per step).
    Exec = 1,
}

impl DfaKind {
    /// Columns per step.
    pub fn rights(self) -> usize {
        match self {
            DfaKind::Fs => 4,
            DfaKind::Exec => 1,
        }
    }
}

/// Beneath flag: the path that leads to this state is itself accepted for
/// the column (same as the cell's grant being set).
pub const BENEATH_SELF: u8 = 1;
/// Beneath flag: every path strictly beneath (`P/x`, `P/x/y`, ...) is
/// accepted for the column.
pub const BENEATH_ALL: u8 = 2;
/// Beneath flag: some path strictly beneath is accepted for the column.
pub const BENEATH_SOME: u8 = 4;

/// One accept cell: for one (state, step, right), the lowest-id grant that
/// allows it ([`NO_GRANT`] if none) and the beneath flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cell {
    /// The allowing grant, or [`NO_GRANT`].
    pub grant: u32,
    /// [`BENEATH_SELF`] | [`BENEATH_ALL`] | [`BENEATH_SOME`].
    pub beneath: u8,
}

impl Cell {
    /// Nothing granted here or beneath.
    pub const EMPTY: Cell = Cell {
        grant: NO_GRANT,
        beneath: 0,
    };
}

/// A byte-class DFA over whole absolute paths, with per-state accept data.
///
/// Walk: `s = start; for b in path { s = transitions[s * class_count +
/// classes[b]] }`, then the answer for (step, right) is
/// `rows[state_row[s] * steps * R + step * R + right]` where `R` is
/// [`DfaKind::rights`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dfa {
    /// Fs or exec.
    pub kind: DfaKind,
    /// Number of steps (columns per right).
    pub steps: u32,
    /// Byte → equivalence class (256 entries).
    pub classes: Vec<u8>,
    /// Number of classes (1..=256).
    pub class_count: u16,
    /// The start state.
    pub start: u32,
    /// `states × class_count` next states, row-major.
    pub transitions: Vec<u32>,
    /// State → accept row index.
    pub state_row: Vec<u32>,
    /// Accept rows, each `steps × R` cells (step-major, then right).
    pub rows: Vec<Cell>,
}

impl Dfa {
    /// A DFA that accepts nothing (one state, one class).
    pub fn empty(kind: DfaKind, steps: u32) -> Dfa {
        Dfa {
            kind,
            steps,
            classes: vec![0; 256],
            class_count: 1,
            start: 0,
            transitions: vec![0],
            state_row: vec![0],
            rows: vec![Cell::EMPTY; steps as usize * kind.rights()],
        }
    }

    /// Number of states.
    pub fn states(&self) -> usize {
        self.state_row.len()
    }

    /// Number of accept rows.
    pub fn row_count(&self) -> usize {
        let w = self.row_width();
        self.rows.len().checked_div(w).unwrap_or(0)
    }

    /// Cells per accept row.
    pub fn row_width(&self) -> usize {
        self.steps as usize * self.kind.rights()
    }

    /// One transition (a dead-end state 0 answer for out-of-range input).
    pub fn next(&self, state: u32, byte: u8) -> u32 {
        let class = self.classes.get(byte as usize).copied().unwrap_or(0) as usize;
        self.transitions
            .get(state as usize * self.class_count as usize + class)
            .copied()
            .unwrap_or(state)
    }

    /// The state after `bytes` from `state`.
    pub fn walk_from(&self, mut state: u32, bytes: &[u8]) -> u32 {
        for &b in bytes {
            state = self.next(state, b);
        }
        state
    }

    /// The state after a whole path from the start state.
    pub fn walk(&self, path: &[u8]) -> u32 {
        self.walk_from(self.start, path)
    }

    /// The accept cell of (state, step, column); [`Cell::EMPTY`] when out of
    /// range.
    pub fn cell(&self, state: u32, step: u32, column: usize) -> Cell {
        let r = self.kind.rights();
        if step >= self.steps || column >= r {
            return Cell::EMPTY;
        }
        let Some(&row) = self.state_row.get(state as usize) else {
            return Cell::EMPTY;
        };
        let idx = row as usize * self.row_width() + step as usize * r + column;
        self.rows.get(idx).copied().unwrap_or(Cell::EMPTY)
    }

    /// Size of the transition table in bytes as stored (u32 per entry).
    pub fn transition_bytes(&self) -> usize {
        self.transitions.len() * 4
    }
}

/// Address family of an LPM entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4 (IPv4-mapped IPv6 included).
    V4 = 4,
    /// IPv6.
    V6 = 6,
}

/// A port range granted by one grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortGrant {
    /// Low end.
    pub lo: u16,
    /// High end (≥ `lo`).
    pub hi: u16,
    /// The lowest-id grant covering every port in `lo..=hi` for this entry.
    pub grant: u32,
}

/// One longest-prefix-match entry.
///
/// INVARIANT: `ports` are sorted, disjoint and already include the ports of
/// every less specific entry of the same (step, op, proto, family) that
/// covers this prefix, so a single LPM lookup answers the request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetEntry {
    /// The step (plan-wide grants are folded into every step).
    pub step: u32,
    /// Connect or bind.
    pub op: NetOp,
    /// TCP or UDP.
    pub proto: Proto,
    /// IPv4 or IPv6.
    pub family: Family,
    /// Network address (host bits zero); IPv4 entries use an `IpAddr::V4`.
    pub addr: IpAddr,
    /// Prefix length (≤ 32 for IPv4, ≤ 128 for IPv6).
    pub prefix: u8,
    /// Granted ports, sorted and disjoint.
    pub ports: Vec<PortGrant>,
}

/// One host-name rule of a step: the ports its pattern may connect to.
///
/// INVARIANT: `pattern` is in normal form (`names::pattern(p) == Ok(p)`);
/// `ports` are sorted, disjoint, each credited to the lowest-id grant of the
/// step whose rule writes this pattern for that port. A name's ports are
/// the union over every entry whose pattern it matches
/// ([`Plan::name_ports`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameEntry {
    /// The step (plan-wide grants are folded into every step).
    pub step: u32,
    /// TCP or UDP.
    pub proto: Proto,
    /// The host-name pattern, normalized.
    pub pattern: String,
    /// Granted ports, sorted and disjoint.
    pub ports: Vec<PortGrant>,
}

/// An address range no name admits for some ports: a `never net connect`
/// address rule above the plan.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameExclusion {
    /// TCP or UDP.
    pub proto: Proto,
    /// Network address (host bits zero).
    pub addr: IpAddr,
    /// Prefix length (≤ 32 for IPv4, ≤ 128 for IPv6).
    pub prefix: u8,
    /// Port ranges `(lo, hi)`, sorted and disjoint.
    pub ports: Vec<(u16, u16)>,
}

/// A `never net connect` name pattern above the plan.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NeverName {
    /// TCP or UDP.
    pub proto: Proto,
    /// The host-name pattern, normalized.
    pub pattern: String,
    /// Port ranges `(lo, hi)`, sorted and disjoint.
    pub ports: Vec<(u16, u16)>,
}

/// Where a grant is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SourceLoc {
    /// Index into [`Meta::sources`].
    pub file: u32,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// 1-based end line.
    pub end_line: u32,
    /// 1-based end column.
    pub end_column: u32,
}

/// What a grant grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantKind {
    /// File-system rights.
    Fs(RightSet),
    /// Program execution.
    Exec,
    /// Network.
    Net(NetOp),
}

/// One row of the provenance table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Its id (its index).
    pub id: u32,
    /// The plan.
    pub plan: u32,
    /// The step, or `None` for a plan-wide grant.
    pub step: Option<u32>,
    /// Fs, exec or net.
    pub kind: GrantKind,
    /// Where the rule is written.
    pub source: SourceLoc,
    /// The rule's source text.
    pub text: String,
    /// Where the `grant` statement is (differs from `source` when the rule
    /// comes through `use`).
    pub site: SourceLoc,
}

/// A grant's whole authority chain, borrowed from an image.
#[derive(Clone, Copy, Debug)]
pub struct Provenance<'a> {
    /// The grant.
    pub grant: &'a Grant,
    /// Its plan.
    pub plan: &'a Plan,
    /// Its step (`None` for plan-wide).
    pub step: Option<&'a Step>,
    /// The intent, if the plan is under one.
    pub intent: Option<&'a Intent>,
    /// The objective.
    pub objective: &'a Objective,
    /// The source file's display name.
    pub file: &'a str,
}

impl Image {
    /// A plan and its index by name.
    pub fn plan(&self, name: &str) -> Option<(u32, &Plan)> {
        self.plans
            .iter()
            .enumerate()
            .find(|(_, p)| p.name == name)
            .map(|(i, p)| (i as u32, p))
    }

    /// The authority chain of a grant.
    pub fn provenance(&self, grant: u32) -> Option<Provenance<'_>> {
        let g = self.grants.get(grant as usize)?;
        let plan = self.plans.get(g.plan as usize)?;
        let step = match g.step {
            Some(s) => Some(plan.steps.get(s as usize)?),
            None => None,
        };
        let intent = match plan.intent {
            Some(i) => Some(self.intents.get(i as usize)?),
            None => None,
        };
        Some(Provenance {
            grant: g,
            plan,
            step,
            intent,
            objective: self.objectives.get(plan.objective as usize)?,
            file: self
                .meta
                .sources
                .get(g.source.file as usize)
                .map_or("<unknown>", String::as_str),
        })
    }
}

/// Landlock filesystem access bits (`LANDLOCK_ACCESS_FS_*`, uapi values).
pub mod access {
    /// Execute a file.
    pub const EXECUTE: u64 = 1 << 0;
    /// Open a file with write access.
    pub const WRITE_FILE: u64 = 1 << 1;
    /// Open a file with read access.
    pub const READ_FILE: u64 = 1 << 2;
    /// Open a directory or list its content.
    pub const READ_DIR: u64 = 1 << 3;
    /// Remove an empty directory or rename one.
    pub const REMOVE_DIR: u64 = 1 << 4;
    /// Unlink or rename a file.
    pub const REMOVE_FILE: u64 = 1 << 5;
    /// Create a character device (never granted).
    pub const MAKE_CHAR: u64 = 1 << 6;
    /// Create a directory.
    pub const MAKE_DIR: u64 = 1 << 7;
    /// Create a regular file.
    pub const MAKE_REG: u64 = 1 << 8;
    /// Create a UNIX socket (never granted).
    pub const MAKE_SOCK: u64 = 1 << 9;
    /// Create a named pipe (never granted).
    pub const MAKE_FIFO: u64 = 1 << 10;
    /// Create a block device (never granted).
    pub const MAKE_BLOCK: u64 = 1 << 11;
    /// Create a symbolic link.
    pub const MAKE_SYM: u64 = 1 << 12;
    /// Link or rename a file from or to a different directory (ABI 2).
    pub const REFER: u64 = 1 << 13;
    /// Truncate a file (ABI 3).
    pub const TRUNCATE: u64 = 1 << 14;
    /// ioctl on a device file (ABI 5; never granted).
    pub const IOCTL_DEV: u64 = 1 << 15;
    /// Every filesystem right of ABI 7 (what a step's ruleset handles).
    pub const ALL_ABI7: u64 = (1 << 16) - 1;

    /// Bind a TCP socket to a port (`LANDLOCK_ACCESS_NET_BIND_TCP`).
    pub const NET_BIND_TCP: u64 = 1 << 0;
    /// Connect a TCP socket to a port (`LANDLOCK_ACCESS_NET_CONNECT_TCP`).
    pub const NET_CONNECT_TCP: u64 = 1 << 1;

    use crate::model::FsRight;

    /// The Landlock rights a KAPL right maps to.
    pub fn of_right(r: FsRight) -> u64 {
        match r {
            FsRight::Read => READ_FILE | READ_DIR,
            FsRight::Write => WRITE_FILE | TRUNCATE,
            FsRight::Create => MAKE_REG | MAKE_DIR | MAKE_SYM,
            FsRight::Delete => REMOVE_FILE | REMOVE_DIR | REFER,
        }
    }

    /// The subset of [`of_right`] that is exact on a single file (a rule on
    /// a file, not a directory).
    pub fn file_only(r: FsRight) -> u64 {
        match r {
            FsRight::Read => READ_FILE,
            FsRight::Write => WRITE_FILE | TRUNCATE,
            FsRight::Create | FsRight::Delete => 0,
        }
    }
}

/// Where one grant's Landlock rules start, and which rights they carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walk {
    /// The grant.
    pub grant: u32,
    /// Which DFA to walk (fs or exec).
    pub dfa: DfaKind,
    /// The KAPL rights (fs walks; empty for exec).
    pub rights: RightSet,
    /// The Landlock access bits these rights map to (`access::*`).
    pub access: u64,
    /// Literal path prefixes (no glob characters, normalized, absolute)
    /// where the walk starts; none is beneath another.
    pub prefixes: Vec<Vec<u8>>,
}

/// One place where the enforced rules are narrower than a grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Precision {
    /// The grant.
    pub grant: u32,
    /// What is narrower and why.
    pub note: String,
}

/// A step's Landlock plan (plan-wide grants included).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Landlock {
    /// The Landlock ABI the plan needs (7 here).
    pub abi: u8,
    /// Filesystem access bits the ruleset handles (denied unless a rule
    /// allows them).
    pub handled_fs: u64,
    /// Network access bits the ruleset handles.
    pub handled_net: u64,
    /// Where to walk and with what rights.
    pub walks: Vec<Walk>,
    /// TCP ports that may be bound (union over bind grants; the BPF maps
    /// narrow by address).
    pub tcp_bind: Vec<PortGrant>,
    /// TCP ports that may be connected to.
    pub tcp_connect: Vec<PortGrant>,
    /// Where enforcement is narrower than written.
    pub precision: Vec<Precision>,
}
