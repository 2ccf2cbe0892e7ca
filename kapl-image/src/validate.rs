//! Structural validation of a decoded (or about to be written) image, and
//! the documented size limits.
//!
//! Input: an [`Image`]. Output: `Ok(())` or the first inconsistency found as
//! [`ImageError::Invalid`] / [`ImageError::TooLarge`]. After this passes,
//! every index in the image is in range, so the runtime may index freely.

use crate::error::ImageError;
use crate::model::*;
use crate::objective::*;
use std::collections::HashSet;
use std::net::IpAddr;

/// Limits every image respects (checked by the writer, the reader and
/// `kapl-codegen`). They size the BPF maps the runtime creates.
pub mod limits {
    /// Plans per image.
    pub const MAX_PLANS: usize = 4096;
    /// Steps per plan (step ids are 16-bit in LPM keys).
    pub const MAX_STEPS: usize = 1024;
    /// Grants per image (the provenance table).
    pub const MAX_GRANTS: usize = 1 << 20;
    /// States per DFA (entries of a transition array map).
    pub const MAX_DFA_STATES: usize = 1 << 20;
    /// Accept rows per DFA (entries of an accept array map).
    pub const MAX_ACCEPT_ROWS: usize = 1 << 20;
    /// Bytes of one accept row (steps × rights × 4): the value size of the
    /// accept array map. 1024 steps × 4 rights × 4 bytes.
    pub const MAX_ACCEPT_ROW_BYTES: usize = 16 * 1024;
    /// LPM entries per plan and family (`max_entries` of each LPM trie map).
    pub const MAX_LPM_ENTRIES: usize = 1 << 18;
    /// Port ranges per plan (entries of the port-range array map).
    pub const MAX_PORT_RANGES: usize = 1 << 20;
    /// Ports a Landlock network wall may list per step and operation before
    /// the runtime should leave that access to the BPF programs.
    pub const MAX_LANDLOCK_PORTS: usize = 4096;
}

fn invalid(msg: impl Into<String>) -> ImageError {
    ImageError::Invalid(msg.into())
}

fn limit(what: impl Into<String>, n: usize, max: usize) -> Result<(), ImageError> {
    if n > max {
        return Err(ImageError::TooLarge {
            what: format!("{} ({n})", what.into()),
            limit: max as u64,
        });
    }
    Ok(())
}

fn check_ports(ports: &[PortGrant], what: &str) -> Result<(), ImageError> {
    let mut prev: Option<u16> = None;
    for p in ports {
        if p.lo > p.hi {
            return Err(invalid(format!(
                "{what}: port range {}-{} is reversed",
                p.lo, p.hi
            )));
        }
        if prev.is_some_and(|h| p.lo <= h) {
            return Err(invalid(format!(
                "{what}: port ranges overlap or are unsorted"
            )));
        }
        prev = Some(p.hi);
    }
    Ok(())
}

impl Image {
    /// Checks every index, table shape and limit. The reader calls this
    /// before returning an image; the writer before encoding one.
    pub fn validate(&self) -> Result<(), ImageError> {
        use limits::*;
        limit("plans", self.plans.len(), MAX_PLANS)?;
        limit("grants", self.grants.len(), MAX_GRANTS)?;
        for (i, (name, value)) in self.meta.params.iter().enumerate() {
            if !valid_param_name(name) {
                return Err(invalid(format!("parameter {i} has an invalid name")));
            }
            if !valid_param_value(value) {
                return Err(invalid(format!(
                    "parameter `{name}` has an invalid value (not an absolute, normalized path)"
                )));
            }
            if i > 0 && self.meta.params.get(i - 1).is_some_and(|(p, _)| p >= name) {
                return Err(invalid("parameters are not sorted by name, or repeat one"));
            }
        }
        let rules = self
            .objectives
            .iter()
            .map(|x| (&x.name, &x.rules))
            .chain(self.intents.iter().map(|x| (&x.name, &x.rules)));
        for (name, rules) in rules {
            if let Some(r) = rules
                .iter()
                .find(|r| r.source.file as usize >= self.meta.sources.len())
            {
                return Err(invalid(format!(
                    "a rule of `{name}` names source file {}",
                    r.source.file
                )));
            }
        }
        for (i, x) in self.intents.iter().enumerate() {
            if x.objective as usize >= self.objectives.len() {
                return Err(invalid(format!(
                    "intent {i} names objective {}",
                    x.objective
                )));
            }
        }
        for (i, g) in self.grants.iter().enumerate() {
            if g.id as usize != i {
                return Err(invalid(format!("grant at {i} has id {}", g.id)));
            }
            let Some(plan) = self.plans.get(g.plan as usize) else {
                return Err(invalid(format!("grant {i} names plan {}", g.plan)));
            };
            if let Some(s) = g.step
                && s as usize >= plan.steps.len()
            {
                return Err(invalid(format!("grant {i} names step {s}")));
            }
            for loc in [g.source, g.site] {
                if loc.file as usize >= self.meta.sources.len() {
                    return Err(invalid(format!("grant {i} names source file {}", loc.file)));
                }
            }
            if let GrantKind::Fs(r) = g.kind
                && (r.0 == 0 || r.0 > 15)
            {
                return Err(invalid(format!("grant {i} has rights bits {}", r.0)));
            }
        }
        let mut plan_names = HashSet::new();
        for (pi, p) in self.plans.iter().enumerate() {
            self.validate_plan(pi as u32, p)?;
            if !plan_names.insert(p.name.as_str()) {
                return Err(invalid(format!("plan `{}` appears twice", p.name)));
            }
        }
        if let Some(t) = &self.objective {
            self.validate_objective(t)?;
        }
        Ok(())
    }

    /// Objective tables: one level per objective then per intent, in order;
    /// every cell and port range credits a rule of its own level and column.
    fn validate_objective(&self, t: &ObjectiveTables) -> Result<(), ImageError> {
        use limits::*;
        limit("objective rules", t.rules.len(), MAX_GRANTS)?;
        let expected = self.objectives.len() + self.intents.len();
        if t.levels.len() != expected {
            return Err(invalid(format!(
                "{} objective tables for {expected} objectives and intents",
                t.levels.len()
            )));
        }
        for (i, r) in t.rules.iter().enumerate() {
            if r.level as usize >= t.levels.len() || r.source.file as usize >= t.sources.len() {
                return Err(invalid(format!("objective rule {i} is out of range")));
            }
            if let GrantKind::Fs(x) = r.kind
                && (x.0 == 0 || x.0 > 15)
            {
                return Err(invalid(format!(
                    "objective rule {i} has rights bits {}",
                    x.0
                )));
            }
        }
        for (li, l) in t.levels.iter().enumerate() {
            let want = if li < self.objectives.len() {
                Level::Objective(li as u32)
            } else {
                Level::Intent((li - self.objectives.len()) as u32)
            };
            if l.level != want {
                return Err(invalid(format!("objective table {li} is out of order")));
            }
            let owner = match l.level {
                Level::Objective(i) => format!("objective {i}"),
                Level::Intent(i) => format!("intent {i}"),
            };
            let rule_ok = |step: usize, g: u32| {
                t.rules.get(g as usize).is_some_and(|r| {
                    r.level as usize == li && u32::from(r.never) == step as u32 && step < 2
                })
            };
            let kind_of = |g: u32| t.rules.get(g as usize).map(|r| r.kind);
            let cols = LEVEL_COLUMNS as usize;
            check_dfa(&owner, &l.fs, DfaKind::Fs, cols, &|s, c, g| {
                rule_ok(s, g) && kind_fits(DfaKind::Fs, c, kind_of(g))
            })?;
            check_dfa(&owner, &l.exec, DfaKind::Exec, cols, &|s, c, g| {
                rule_ok(s, g) && kind_fits(DfaKind::Exec, c, kind_of(g))
            })?;
            check_net(&owner, &l.net, &|s, op, g| {
                rule_ok(s as usize, g) && kind_of(g) == Some(GrantKind::Net(op))
            })?;
            check_names(&owner, &l.names, &|s, g| {
                rule_ok(s as usize, g) && kind_of(g) == Some(GrantKind::Net(NetOp::Connect))
            })?;
        }
        Ok(())
    }

    fn validate_plan(&self, pi: u32, p: &Plan) -> Result<(), ImageError> {
        use limits::*;
        let name = &p.name;
        limit(format!("steps of plan `{name}`"), p.steps.len(), MAX_STEPS)?;
        if p.objective as usize >= self.objectives.len() {
            return Err(invalid(format!(
                "plan `{name}` names objective {}",
                p.objective
            )));
        }
        if let Some(i) = p.intent {
            match self.intents.get(i as usize) {
                Some(x) if x.objective == p.objective => {}
                _ => {
                    return Err(invalid(format!(
                        "plan `{name}` names intent {i} inconsistently"
                    )));
                }
            }
        }
        for &g in &p.grants {
            match self.grants.get(g as usize) {
                Some(x) if x.plan == pi && x.step.is_none() => {}
                _ => {
                    return Err(invalid(format!(
                        "plan `{name}` lists grant {g} that is not one of its plan-wide grants"
                    )));
                }
            }
        }
        let mut step_names = HashSet::new();
        // Grants that hold in each step (plan-wide included).
        let mut holds: Vec<HashSet<u32>> = Vec::with_capacity(p.steps.len());
        for (si, s) in p.steps.iter().enumerate() {
            if !step_names.insert(s.name.as_str()) {
                return Err(invalid(format!(
                    "plan `{name}` has two steps named `{}`",
                    s.name
                )));
            }
            for &a in &s.after {
                if a as usize >= p.steps.len() || a as usize == si {
                    return Err(invalid(format!("step `{}` is after step {a}", s.name)));
                }
            }
            for &g in &s.grants {
                match self.grants.get(g as usize) {
                    Some(x) if x.plan == pi && x.step == Some(si as u32) => {}
                    _ => {
                        return Err(invalid(format!(
                            "step `{}` lists grant {g} that is not its own",
                            s.name
                        )));
                    }
                }
            }
            holds.push(p.grants.iter().chain(&s.grants).copied().collect());
        }
        // `after` must be acyclic: repeatedly remove steps whose `after` are done.
        let mut done = vec![false; p.steps.len()];
        let mut left = p.steps.len();
        loop {
            let mut progressed = false;
            for (si, s) in p.steps.iter().enumerate() {
                if !done[si]
                    && s.after
                        .iter()
                        .all(|&a| done.get(a as usize).copied().unwrap_or(false))
                {
                    done[si] = true;
                    left -= 1;
                    progressed = true;
                }
            }
            if left == 0 {
                break;
            }
            if !progressed {
                return Err(invalid(format!(
                    "plan `{name}`: the steps' `after` edges form a cycle"
                )));
            }
        }
        let owner = format!("plan `{name}`");
        let grant_ok = |kind: DfaKind, step: usize, col: usize, grant: u32| {
            holds.get(step).is_some_and(|h| h.contains(&grant))
                && kind_fits(kind, col, self.grants.get(grant as usize).map(|g| g.kind))
        };
        check_dfa(&owner, &p.fs, DfaKind::Fs, p.steps.len(), &|s, c, g| {
            grant_ok(DfaKind::Fs, s, c, g)
        })?;
        check_dfa(&owner, &p.exec, DfaKind::Exec, p.steps.len(), &|s, c, g| {
            grant_ok(DfaKind::Exec, s, c, g)
        })?;
        check_net(&owner, &p.net, &|step, op, g| {
            holds.get(step as usize).is_some_and(|h| h.contains(&g))
                && self.grants.get(g as usize).map(|x| x.kind) == Some(GrantKind::Net(op))
        })?;
        check_names(&owner, &p.names, &|step, g| {
            holds.get(step as usize).is_some_and(|h| h.contains(&g))
                && self.grants.get(g as usize).map(|x| x.kind)
                    == Some(GrantKind::Net(NetOp::Connect))
        })?;
        check_name_exclusions(&owner, &p.name_excluded)?;
        check_never_names(&owner, &p.never_names)?;

        for (si, s) in p.steps.iter().enumerate() {
            let l = &s.landlock;
            let h = &holds[si];
            const NEVER: u64 = access::MAKE_CHAR
                | access::MAKE_BLOCK
                | access::MAKE_FIFO
                | access::MAKE_SOCK
                | access::IOCTL_DEV;
            if l.handled_fs & !access::ALL_ABI7 != 0
                || l.handled_net & !(access::NET_BIND_TCP | access::NET_CONNECT_TCP) != 0
            {
                return Err(invalid(format!(
                    "step `{}`: unknown Landlock access bits",
                    s.name
                )));
            }
            for w in &l.walks {
                if !h.contains(&w.grant) {
                    return Err(invalid(format!(
                        "step `{}`: a Landlock walk names grant {} that does not hold there",
                        s.name, w.grant
                    )));
                }
                if w.access & NEVER != 0 || w.access & !l.handled_fs != 0 {
                    return Err(invalid(format!(
                        "step `{}`: a Landlock walk carries forbidden access bits",
                        s.name
                    )));
                }
                for pre in &w.prefixes {
                    if pre.first() != Some(&b'/') {
                        return Err(invalid(format!(
                            "step `{}`: a Landlock prefix is not absolute",
                            s.name
                        )));
                    }
                }
            }
            check_ports(&l.tcp_bind, "Landlock bind ports")?;
            check_ports(&l.tcp_connect, "Landlock connect ports")?;
            for pg in l.tcp_bind.iter().chain(&l.tcp_connect) {
                if !h.contains(&pg.grant) {
                    return Err(invalid(format!(
                        "step `{}`: a Landlock port names grant {} that does not hold there",
                        s.name, pg.grant
                    )));
                }
            }
            for x in &l.precision {
                if x.grant as usize >= self.grants.len() {
                    return Err(invalid(format!(
                        "step `{}`: a precision note names grant {}",
                        s.name, x.grant
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Checks one DFA's shape, limits and cells; `grant_ok(step, column,
/// grant)` says whether a cell may credit that grant.
pub(crate) fn check_dfa(
    name: &str,
    d: &Dfa,
    kind: DfaKind,
    steps: usize,
    grant_ok: &dyn Fn(usize, usize, u32) -> bool,
) -> Result<(), ImageError> {
    use limits::*;
    let what = match kind {
        DfaKind::Fs => "path",
        DfaKind::Exec => "exec",
    };
    if d.kind != kind {
        return Err(invalid(format!(
            "{name}: the {what} DFA has the wrong kind"
        )));
    }
    if d.steps as usize != steps {
        return Err(invalid(format!(
            "{name}: the {what} DFA has {} step columns for {} steps",
            d.steps, steps
        )));
    }
    let states = d.states();
    limit(
        format!("states of {name}'s {what} DFA"),
        states,
        MAX_DFA_STATES,
    )?;
    if states == 0 || d.start as usize >= states {
        return Err(invalid(format!(
            "{name}: the {what} DFA's start state is out of range"
        )));
    }
    let cc = d.class_count as usize;
    if cc == 0 || cc > 256 || d.classes.len() != 256 || d.classes.iter().any(|&c| c as usize >= cc)
    {
        return Err(invalid(format!(
            "{name}: the {what} DFA's byte classes are inconsistent"
        )));
    }
    if d.transitions.len() != states * cc || d.transitions.iter().any(|&t| t as usize >= states) {
        return Err(invalid(format!(
            "{name}: the {what} DFA's transitions are out of range"
        )));
    }
    let width = d.row_width();
    limit(
        format!("accept row bytes of {name}'s {what} DFA"),
        width * 4,
        MAX_ACCEPT_ROW_BYTES,
    )?;
    let rows = d.row_count();
    limit(
        format!("accept rows of {name}'s {what} DFA"),
        rows,
        MAX_ACCEPT_ROWS,
    )?;
    if rows * width != d.rows.len()
        || (width > 0 && d.state_row.iter().any(|&r| r as usize >= rows))
    {
        return Err(invalid(format!(
            "{name}: the {what} DFA's accept rows are out of range"
        )));
    }
    for (i, c) in d.rows.iter().enumerate() {
        let step = (i % width.max(1)) / kind.rights();
        let col = i % kind.rights();
        if c.beneath & !(BENEATH_SELF | BENEATH_ALL | BENEATH_SOME) != 0
            || (c.beneath & BENEATH_SELF != 0) != (c.grant != NO_GRANT)
        {
            return Err(invalid(format!(
                "{name}: the {what} DFA has inconsistent beneath flags"
            )));
        }
        if c.grant == NO_GRANT {
            continue;
        }
        if !grant_ok(step, col, c.grant) {
            return Err(invalid(format!(
                "{name}: the {what} DFA names grant {} where it does not hold",
                c.grant
            )));
        }
    }
    Ok(())
}

/// Whether a grant of kind `g` may be credited in `column` of a `kind` DFA.
pub(crate) fn kind_fits(kind: DfaKind, column: usize, g: Option<GrantKind>) -> bool {
    match (kind, g) {
        (DfaKind::Fs, Some(GrantKind::Fs(r))) => {
            FsRight::ALL.get(column).is_some_and(|x| r.has(*x))
        }
        (DfaKind::Exec, Some(GrantKind::Exec)) => true,
        _ => false,
    }
}

/// Checks network entries: family, prefix, host bits, order, ports and
/// limits; `grant_ok(step, op, grant)` says whether a port range may credit
/// that grant.
pub(crate) fn check_net(
    name: &str,
    entries: &[NetEntry],
    grant_ok: &dyn Fn(u32, NetOp, u32) -> bool,
) -> Result<(), ImageError> {
    use limits::*;
    let mut v4 = 0usize;
    let mut v6 = 0usize;
    let mut ranges = 0usize;
    let mut prev: Option<&NetEntry> = None;
    for e in entries {
        let (max, host_bits) = match (e.family, e.addr) {
            (Family::V4, IpAddr::V4(a)) => {
                v4 += 1;
                let mask = u32::MAX.checked_shr(u32::from(e.prefix)).unwrap_or(0);
                (32, u32::from(a) & mask != 0)
            }
            (Family::V6, IpAddr::V6(a)) => {
                v6 += 1;
                let mask = u128::MAX.checked_shr(u32::from(e.prefix)).unwrap_or(0);
                (128, u128::from(a) & mask != 0)
            }
            _ => {
                return Err(invalid(format!(
                    "{name}: a network entry's family and address disagree"
                )));
            }
        };
        if e.prefix > max {
            return Err(invalid(format!("{name}: prefix /{} too long", e.prefix)));
        }
        if host_bits {
            return Err(invalid(format!(
                "{name}: a network entry has host bits set"
            )));
        }
        if let Some(pr) = prev
            && (pr.step, pr.op, pr.proto, pr.family, pr.addr, pr.prefix)
                >= (e.step, e.op, e.proto, e.family, e.addr, e.prefix)
        {
            return Err(invalid(format!(
                "{name}: network entries unsorted or duplicated"
            )));
        }
        prev = Some(e);
        if e.ports.is_empty() {
            return Err(invalid(format!("{name}: a network entry has no ports")));
        }
        check_ports(&e.ports, &format!("{name} network entry"))?;
        for pg in &e.ports {
            if !grant_ok(e.step, e.op, pg.grant) {
                return Err(invalid(format!(
                    "{name}: a network entry names grant {} that does not hold there",
                    pg.grant
                )));
            }
        }
        ranges += e.ports.len();
    }
    limit(format!("IPv4 LPM entries of {name}"), v4, MAX_LPM_ENTRIES)?;
    limit(format!("IPv6 LPM entries of {name}"), v6, MAX_LPM_ENTRIES)?;
    limit(format!("port ranges of {name}"), ranges, MAX_PORT_RANGES)?;

    Ok(())
}

/// Whether `p` is a host-name pattern in normal form.
fn normal_pattern(p: &str) -> bool {
    crate::names::pattern(p).is_ok_and(|n| n == p)
}

/// Checks bare port ranges: non-empty, each `lo ≤ hi`, sorted, disjoint.
fn check_ranges(ranges: &[(u16, u16)], what: &str) -> Result<(), ImageError> {
    if ranges.is_empty() {
        return Err(invalid(format!("{what} has no ports")));
    }
    let mut prev: Option<u16> = None;
    for &(lo, hi) in ranges {
        if lo > hi || prev.is_some_and(|h| lo <= h) {
            return Err(invalid(format!(
                "{what}: port ranges reversed, overlapping or unsorted"
            )));
        }
        prev = Some(hi);
    }
    Ok(())
}

/// Checks host-name entries: normal-form patterns, order (by step,
/// protocol, pattern; no repeats), ports and limits; `grant_ok(step,
/// grant)` says whether a port range may credit that grant.
pub(crate) fn check_names(
    name: &str,
    entries: &[NameEntry],
    grant_ok: &dyn Fn(u32, u32) -> bool,
) -> Result<(), ImageError> {
    limit(
        format!("name entries of {name}"),
        entries.len(),
        limits::MAX_LPM_ENTRIES,
    )?;
    let mut prev: Option<&NameEntry> = None;
    for e in entries {
        if !normal_pattern(&e.pattern) {
            return Err(invalid(format!(
                "{name}: a name entry's pattern is not a host-name pattern in normal form"
            )));
        }
        if let Some(pr) = prev
            && (pr.step, pr.proto, &pr.pattern) >= (e.step, e.proto, &e.pattern)
        {
            return Err(invalid(format!(
                "{name}: name entries unsorted or duplicated"
            )));
        }
        prev = Some(e);
        if e.ports.is_empty() {
            return Err(invalid(format!("{name}: a name entry has no ports")));
        }
        check_ports(&e.ports, &format!("{name} name entry"))?;
        for pg in &e.ports {
            if !grant_ok(e.step, pg.grant) {
                return Err(invalid(format!(
                    "{name}: a name entry names grant {} that does not hold there",
                    pg.grant
                )));
            }
        }
    }
    Ok(())
}

/// Checks a plan's name exclusions: address ranges without host bits,
/// sorted by (protocol, family, address, prefix) without repeats, ports.
fn check_name_exclusions(name: &str, v: &[NameExclusion]) -> Result<(), ImageError> {
    limit(
        format!("name exclusions of {name}"),
        v.len(),
        limits::MAX_LPM_ENTRIES,
    )?;
    let key = |x: &NameExclusion| {
        let fam = match x.addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        };
        (x.proto, fam, x.addr, x.prefix)
    };
    let mut prev: Option<&NameExclusion> = None;
    for x in v {
        let ok = match x.addr {
            IpAddr::V4(a) => {
                x.prefix <= 32
                    && u32::from(a) & u32::MAX.checked_shr(u32::from(x.prefix)).unwrap_or(0) == 0
            }
            IpAddr::V6(a) => {
                x.prefix <= 128
                    && u128::from(a) & u128::MAX.checked_shr(u32::from(x.prefix)).unwrap_or(0) == 0
            }
        };
        if !ok {
            return Err(invalid(format!(
                "{name}: a name exclusion has a bad prefix or host bits set"
            )));
        }
        if prev.is_some_and(|p| key(p) >= key(x)) {
            return Err(invalid(format!(
                "{name}: name exclusions unsorted or duplicated"
            )));
        }
        prev = Some(x);
        check_ranges(&x.ports, &format!("{name}: a name exclusion"))?;
    }
    Ok(())
}

/// Checks a plan's `never` names: normal-form patterns, sorted by
/// (protocol, pattern) without repeats, ports.
fn check_never_names(name: &str, v: &[NeverName]) -> Result<(), ImageError> {
    limit(
        format!("never names of {name}"),
        v.len(),
        limits::MAX_LPM_ENTRIES,
    )?;
    let mut prev: Option<&NeverName> = None;
    for n in v {
        if !normal_pattern(&n.pattern) {
            return Err(invalid(format!(
                "{name}: a never name's pattern is not a host-name pattern in normal form"
            )));
        }
        if prev.is_some_and(|p| (p.proto, &p.pattern) >= (n.proto, &n.pattern)) {
            return Err(invalid(format!(
                "{name}: never names unsorted or duplicated"
            )));
        }
        prev = Some(n);
        check_ranges(&n.ports, &format!("{name}: a never name"))?;
    }
    Ok(())
}

/// A parameter's name: `[A-Za-z_][A-Za-z0-9_]*`.
fn valid_param_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A parameter's value: an absolute, normalized path without NUL.
fn valid_param_value(v: &str) -> bool {
    if v == "/" {
        return true;
    }
    v.starts_with('/')
        && !v.contains('\0')
        && v[1..].split('/').all(|c| !matches!(c, "" | "." | ".."))
}
