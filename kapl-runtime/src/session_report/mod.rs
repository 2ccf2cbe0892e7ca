//! Session reports (stage: runtime, after the fact): an audit file's lines
//! and, optionally, the images its sessions ran, as one self-contained
//! HTML page (`kapl-run report`).
//!
//! Input: the audit file's text and zero or more [`NamedImage`]s. Output:
//! [`Built`], the page and its counts. Pure: the kernel crate reads and
//! writes the files.
//!
//! Large sessions stay small and fast: the records are aggregated here
//! (by session, plan revision and step; by process; by object, paths
//! grouped by directory) and only the aggregate goes into the page, as
//! one JSON blob that a small script renders on demand (see [`html`]).
//! Every list has a cap ([`Limits`]); what a cap cuts off is counted and
//! the page says so.
//!
//! The timeline draws a bar per command, from its `command_started` record
//! to its `command_ended` record (to the session's last record when there
//! is no end: still running, or the supervisor died), with the decisions of
//! its processes as marks: those whose record names the command
//! (`command`), else those of its pid (files written before decision
//! records named their command). Decisions of no command, and every
//! decision of a file without command records (an older runtime's), draw
//! one row per process, from its first record to its last.

mod html;
mod parse;
pub mod synthetic;

pub use parse::{Decision, Ended, Grant, Line, Lost, Started, line, millis};

use kapl_image::Image;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// An image given with `--image`, by its file name.
#[derive(Clone, Copy, Debug)]
pub struct NamedImage<'a> {
    /// As shown.
    pub file: &'a str,
    /// The image.
    pub image: &'a Image,
}

/// How much detail the page keeps.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Distinct denials (by step, operation and object) kept in full.
    pub denial_details: usize,
    /// Distinct allows kept in full.
    pub allow_details: usize,
    /// Objects listed per directory (the rest counted).
    pub entries_per_dir: usize,
    /// Directories, programs, destinations and other objects listed per
    /// step (the rest counted).
    pub objects_per_step: usize,
    /// Objects listed per step, all kinds together (the rest counted).
    pub entries_per_step: usize,
    /// Processes drawn per step (the rest merged into one row).
    pub procs_per_step: usize,
    /// Marks per timeline row (decisions close in time share one).
    pub marks_per_row: usize,
    /// Detail references per mark.
    pub details_per_mark: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            denial_details: 1000,
            allow_details: 500,
            entries_per_dir: 200,
            objects_per_step: 500,
            entries_per_step: 3000,
            procs_per_step: 200,
            marks_per_row: 80,
            details_per_mark: 8,
        }
    }
}

/// What building a report found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Lines read (not empty).
    pub lines: u64,
    /// Decision records.
    pub decisions: u64,
    /// Allowed.
    pub allows: u64,
    /// Denied.
    pub denials: u64,
    /// `lost` records.
    pub lost_records: u64,
    /// Events and records they count as lost.
    pub lost: u64,
    /// Lines not understood.
    pub not_understood: u64,
    /// Sessions.
    pub sessions: u64,
    /// Decisions kept in full.
    pub details: u64,
    /// Commands (`command_started` records).
    pub commands: u64,
    /// Commands with no `command_ended` record.
    pub commands_open: u64,
}

/// A built report.
#[derive(Clone, Debug)]
pub struct Built {
    /// The page.
    pub html: String,
    /// Its counts.
    pub stats: Stats,
}

/// Builds the report of `audit` (the file's text), titled `title`.
pub fn build(audit: &str, images: &[NamedImage<'_>], title: &str, limits: Limits) -> Built {
    let mut a = Aggregate::new(limits);
    // The commands first (a cheap test finds their lines), so a decision
    // finds its command wherever the lines are.
    let mut ends = Vec::new();
    for l in audit.lines().filter(|l| l.contains("\"command_")) {
        match line(l) {
            Ok(Line::Started(st)) => a.started(*st),
            Ok(Line::Ended(e)) => ends.push(e),
            _ => {}
        }
    }
    ends.into_iter().for_each(|e| a.ended(e));
    for (n, l) in audit.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        a.stats.lines += 1;
        match line(l) {
            Ok(Line::Decision(d)) => a.decision(*d),
            Ok(Line::Started(_) | Line::Ended(_) | Line::Other) => {}
            Ok(Line::Lost(lost)) => {
                a.stats.lost_records += 1;
                a.stats.lost = lost
                    .counts
                    .iter()
                    .fold(a.stats.lost, |s, (_, n)| s.saturating_add(*n));
                a.losses.push(lost);
            }
            Err(why) => {
                a.stats.not_understood += 1;
                if a.not_understood.len() < 5 {
                    a.not_understood.push(NotUnderstood {
                        line: n as u64 + 1,
                        why,
                        text: l.chars().take(300).collect(),
                    });
                }
            }
        }
    }
    let data = a.finish(images);
    let stats = data.stats.clone();
    Built {
        html: html::page(title, &data, images),
        stats,
    }
}

/// A line the report could not read.
#[derive(Clone, Debug, Serialize)]
pub struct NotUnderstood {
    line: u64,
    why: String,
    text: String,
}

/// A decision kept in full.
#[derive(Clone, Debug, Serialize)]
struct Detail {
    time: String,
    deny: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<i64>,
    comm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe: Option<String>,
    operation: String,
    object: String,
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    learned: Option<String>,
    mechanism: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    grant: Option<Grant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    covering: Option<Grant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nearest: Option<Grant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<String>,
    session: String,
    plan: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
    step: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    intent: Option<String>,
    objective: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    audit_serial: Option<u64>,
    /// Records alike (same step, verdict, operation and object).
    n: u64,
}

/// One object of a step's table.
#[derive(Clone, Debug, Default, Serialize)]
struct Entry {
    name: String,
    ops: BTreeSet<String>,
    allows: u64,
    denials: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    learned: Option<String>,
    /// A detail: the first denial's, else the first allow's.
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<u32>,
}

impl Entry {
    fn add(&mut self, d: &Decision, x: Option<u32>) {
        if self.ops.len() < 8 {
            self.ops.insert(d.operation.clone());
        }
        if d.deny {
            self.denials += 1;
            if self.denials == 1 && x.is_some() {
                self.x = x;
            }
        } else {
            self.allows += 1;
            if self.x.is_none() {
                self.x = x;
            }
        }
        if self.learned.is_none() {
            self.learned.clone_from(&d.learned);
        }
    }
}

/// Objects of one kind (programs, destinations, other).
#[derive(Clone, Debug, Default, Serialize)]
struct Objects {
    list: BTreeMap<String, Entry>,
    /// Records about objects past the cap.
    more: u64,
}

impl Objects {
    fn add(&mut self, key: &str, d: &Decision, x: Option<u32>, cap: usize, budget: &mut usize) {
        let full = self.list.len() >= cap || *budget == 0;
        match self.list.get_mut(key) {
            Some(e) => e.add(d, x),
            None if !full => {
                let mut e = Entry {
                    name: key.to_string(),
                    ..Entry::default()
                };
                e.add(d, x);
                self.list.insert(key.to_string(), e);
                *budget -= 1;
            }
            None => self.more += 1,
        }
    }
}

/// A directory of a step's table.
#[derive(Clone, Debug, Default, Serialize)]
struct Dir {
    allows: u64,
    denials: u64,
    entries: Objects,
}

/// A decision as a timeline event.
#[derive(Clone, Copy, Debug)]
struct Event {
    ms: i64,
    deny: bool,
    x: Option<u32>,
}

/// One process of a step.
#[derive(Clone, Debug)]
struct Proc {
    pid: Option<i64>,
    comm: String,
    exe: Option<String>,
    allows: u64,
    denials: u64,
    events: Vec<Event>,
}

/// A grant used in a step.
#[derive(Clone, Debug, Serialize)]
struct Used {
    grant: Grant,
    n: u64,
}

/// One step of one plan revision of a session.
#[derive(Clone, Debug)]
struct Segment {
    plan: String,
    revision: Option<u64>,
    step: String,
    first_time: String,
    first: i64,
    last: i64,
    allows: u64,
    denials: u64,
    procs: Vec<Proc>,
    by_pid: HashMap<Option<i64>, usize>,
    /// Its commands (indices into the aggregate's).
    cmds: Vec<usize>,
    dirs: BTreeMap<String, Dir>,
    dirs_more: u64,
    programs: Objects,
    destinations: Objects,
    other: Objects,
    /// Objects that may still be listed.
    budget: usize,
    used: BTreeMap<(Option<u64>, String), Used>,
    /// Grant refs seen (id → text), to check an image holds this plan.
    refs: BTreeMap<u64, String>,
}

impl Segment {
    /// A decision of no command: on its process's row.
    fn process_event(&mut self, d: &Decision, ev: Event) {
        let pi = match self.by_pid.get(&d.pid) {
            Some(&i) => i,
            None => {
                self.procs.push(Proc {
                    pid: d.pid,
                    comm: d.comm.clone(),
                    exe: d.exe.clone(),
                    allows: 0,
                    denials: 0,
                    events: Vec::new(),
                });
                self.by_pid.insert(d.pid, self.procs.len() - 1);
                self.procs.len() - 1
            }
        };
        let p = &mut self.procs[pi];
        if d.deny {
            p.denials += 1;
        } else {
            p.allows += 1;
        }
        // A process that executes a program takes its name.
        if d.operation == "exec" && !d.deny {
            p.comm.clone_from(&d.comm);
            if d.kind == "program" {
                p.exe = d.path.clone().or_else(|| Some(d.object.clone()));
            }
        } else if p.exe.is_none() {
            p.exe.clone_from(&d.exe);
        }
        p.events.push(ev);
    }
}

/// One session.
#[derive(Clone, Debug)]
struct Session {
    id: String,
    host: String,
    uid: Option<u64>,
    objectives: BTreeSet<String>,
    intents: BTreeSet<String>,
    first_time: String,
    last_time: String,
    first: i64,
    last: i64,
    allows: u64,
    denials: u64,
    segments: Vec<Segment>,
    seg_index: HashMap<(String, Option<u64>, String), usize>,
}

struct Aggregate {
    limits: Limits,
    stats: Stats,
    sessions: Vec<Session>,
    index: HashMap<String, usize>,
    details: Vec<Detail>,
    detail_index: HashMap<(usize, usize, bool, String, String), u32>,
    kept_denials: usize,
    kept_allows: usize,
    /// Distinct denials: (session, segment, detail or none, operation,
    /// object, count).
    denial_groups: Vec<DenialGroup>,
    denial_index: HashMap<(usize, usize, String, String), usize>,
    losses: Vec<Lost>,
    not_understood: Vec<NotUnderstood>,
    cmds: Vec<Cmd>,
    /// (session, command id) → index in `cmds`.
    cmd_index: HashMap<(String, u64), usize>,
    /// (session, pid) → commands with that pid, in start order.
    cmd_by_pid: HashMap<(String, i64), Vec<usize>>,
}

/// Where a record goes: session, plan revision and step.
struct At<'a> {
    session: &'a str,
    host: &'a str,
    uid: Option<u64>,
    plan: &'a str,
    revision: Option<u64>,
    step: &'a str,
}

/// One command, from its start and end records, with its decisions.
#[derive(Clone, Debug)]
struct Cmd {
    start: Started,
    end: Option<Ended>,
    allows: u64,
    denials: u64,
    events: Vec<Event>,
}

/// A command's arguments as one line, shell-quoted where needed, cut to
/// 300 characters.
fn argv_line(argv: &[String], truncated: bool) -> String {
    let mut o = String::new();
    for a in argv {
        if !o.is_empty() {
            o.push(' ');
        }
        let plain = !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c));
        if plain {
            o.push_str(a);
        } else {
            o.push('\'');
            o.push_str(&a.replace('\'', "'\\''"));
            o.push('\'');
        }
    }
    if o.chars().count() > 300 {
        o = o.chars().take(300).collect();
        o.push('…');
    } else if truncated {
        o.push_str(" …");
    }
    o
}

/// Distinct denials, for the page's list of refusals.
#[derive(Clone, Debug, Serialize)]
struct DenialGroup {
    s: usize,
    g: usize,
    time: String,
    operation: String,
    object: String,
    n: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<u32>,
}

fn detail_of(d: &Decision) -> Detail {
    Detail {
        time: d.time.clone(),
        deny: d.deny,
        pid: d.pid,
        comm: d.comm.clone(),
        exe: d.exe.clone(),
        operation: d.operation.clone(),
        object: d.object.clone(),
        kind: d.kind.clone(),
        learned: d.learned.clone(),
        mechanism: d.mechanism.clone(),
        grant: d.grant.clone(),
        covering: d.covering.clone(),
        reason: d.reason.clone(),
        nearest: d.nearest.as_ref().map(|n| n.0.clone()),
        why: d.nearest.as_ref().map(|n| n.1.clone()),
        session: d.session.clone(),
        plan: d.plan.clone(),
        revision: d.revision,
        step: d.step.clone(),
        intent: d.intent.clone(),
        objective: d.objective.clone(),
        audit_serial: d.audit_serial,
        n: 1,
    }
}

/// Where an object goes in a step's table: a directory and a name for
/// paths, else a kind's list.
enum Place {
    Path(String, String),
    Program,
    Destination,
    Other,
}

fn place(d: &Decision) -> Place {
    match d.kind.as_str() {
        "path" | "unix_socket" => {
            let p = d.path.as_deref().unwrap_or(&d.object);
            match p.rfind('/') {
                Some(i) if p.starts_with('/') => {
                    let dir = if i == 0 { "/" } else { &p[..i] };
                    Place::Path(dir.to_string(), p[i + 1..].to_string())
                }
                _ => Place::Path(String::new(), d.object.clone()),
            }
        }
        "program" => Place::Program,
        "endpoint" | "host" | "socket_option" => Place::Destination,
        _ => Place::Other,
    }
}

impl Aggregate {
    fn new(limits: Limits) -> Aggregate {
        Aggregate {
            limits,
            stats: Stats::default(),
            sessions: Vec::new(),
            index: HashMap::new(),
            details: Vec::new(),
            detail_index: HashMap::new(),
            kept_denials: 0,
            kept_allows: 0,
            denial_groups: Vec::new(),
            denial_index: HashMap::new(),
            losses: Vec::new(),
            not_understood: Vec::new(),
            cmds: Vec::new(),
            cmd_index: HashMap::new(),
            cmd_by_pid: HashMap::new(),
        }
    }

    fn started(&mut self, st: Started) {
        let key = (st.session.clone(), st.command);
        if self.cmd_index.contains_key(&key) {
            return;
        }
        self.stats.commands += 1;
        let i = self.cmds.len();
        if let Some(pid) = st.pid {
            self.cmd_by_pid
                .entry((st.session.clone(), pid))
                .or_default()
                .push(i);
        }
        self.cmd_index.insert(key, i);
        self.cmds.push(Cmd {
            start: st,
            end: None,
            allows: 0,
            denials: 0,
            events: Vec::new(),
        });
    }

    fn ended(&mut self, e: Ended) {
        if let Some(&i) = self.cmd_index.get(&(e.session.clone(), e.command)) {
            self.cmds[i].end.get_or_insert(e);
        }
    }

    /// The command a decision belongs to: the one its record names, else
    /// the last one started with its pid before it.
    fn cmd_of(&self, d: &Decision) -> Option<usize> {
        if let Some(c) = d.command {
            return self.cmd_index.get(&(d.session.clone(), c)).copied();
        }
        let pid = d.pid?;
        self.cmd_by_pid
            .get(&(d.session.clone(), pid))?
            .iter()
            .rev()
            .find(|&&i| self.cmds[i].start.ms <= d.ms)
            .copied()
    }

    /// The session and segment of a record `at`, made if new, their times
    /// stretched to `ms` (written `time`).
    fn slot(&mut self, at: &At<'_>, ms: i64, time: &str) -> (usize, usize) {
        let si = match self.index.get(at.session) {
            Some(&i) => i,
            None => {
                self.sessions.push(Session {
                    id: at.session.to_string(),
                    host: at.host.to_string(),
                    uid: at.uid,
                    objectives: BTreeSet::new(),
                    intents: BTreeSet::new(),
                    first_time: time.to_string(),
                    last_time: time.to_string(),
                    first: ms,
                    last: ms,
                    allows: 0,
                    denials: 0,
                    segments: Vec::new(),
                    seg_index: HashMap::new(),
                });
                self.index
                    .insert(at.session.to_string(), self.sessions.len() - 1);
                self.sessions.len() - 1
            }
        };
        let s = &mut self.sessions[si];
        if ms < s.first {
            s.first = ms;
            s.first_time = time.to_string();
        }
        if ms > s.last {
            s.last = ms;
            s.last_time = time.to_string();
        }
        let key = (at.plan.to_string(), at.revision, at.step.to_string());
        let gi = match s.seg_index.get(&key) {
            Some(&i) => i,
            None => {
                s.segments.push(Segment {
                    plan: at.plan.to_string(),
                    revision: at.revision,
                    step: at.step.to_string(),
                    first_time: time.to_string(),
                    first: ms,
                    last: ms,
                    allows: 0,
                    denials: 0,
                    procs: Vec::new(),
                    by_pid: HashMap::new(),
                    cmds: Vec::new(),
                    dirs: BTreeMap::new(),
                    dirs_more: 0,
                    programs: Objects::default(),
                    destinations: Objects::default(),
                    other: Objects::default(),
                    budget: self.limits.entries_per_step,
                    used: BTreeMap::new(),
                    refs: BTreeMap::new(),
                });
                s.seg_index.insert(key, s.segments.len() - 1);
                s.segments.len() - 1
            }
        };
        let g = &mut s.segments[gi];
        if ms < g.first {
            g.first = ms;
            g.first_time = time.to_string();
        }
        g.last = g.last.max(ms);
        (si, gi)
    }

    fn decision(&mut self, d: Decision) {
        let ci = self.cmd_of(&d);
        self.stats.decisions += 1;
        if d.deny {
            self.stats.denials += 1;
        } else {
            self.stats.allows += 1;
        }
        let at = At {
            session: &d.session,
            host: &d.host,
            uid: d.uid,
            plan: &d.plan,
            revision: d.revision,
            step: &d.step,
        };
        let (si, gi) = self.slot(&at, d.ms, &d.time);
        let s = &mut self.sessions[si];
        if !d.objective.is_empty() && s.objectives.len() < 20 {
            s.objectives.insert(d.objective.clone());
        }
        if let Some(i) = &d.intent
            && s.intents.len() < 20
        {
            s.intents.insert(i.clone());
        }
        if d.deny {
            s.denials += 1;
        } else {
            s.allows += 1;
        }
        // The detail: one per distinct (step, verdict, operation, object).
        let dkey = (si, gi, d.deny, d.operation.clone(), d.object.clone());
        let x = match self.detail_index.get(&dkey) {
            Some(&x) => {
                if let Some(det) = self.details.get_mut(x as usize) {
                    det.n += 1;
                }
                Some(x)
            }
            None => {
                let kept = if d.deny {
                    &mut self.kept_denials
                } else {
                    &mut self.kept_allows
                };
                let cap = if d.deny {
                    self.limits.denial_details
                } else {
                    self.limits.allow_details
                };
                if *kept < cap {
                    *kept += 1;
                    let x = u32::try_from(self.details.len()).unwrap_or(u32::MAX);
                    self.details.push(detail_of(&d));
                    self.detail_index.insert(dkey, x);
                    Some(x)
                } else {
                    None
                }
            }
        };
        if d.deny {
            let k = (si, gi, d.operation.clone(), d.object.clone());
            match self.denial_index.get(&k) {
                Some(&i) => self.denial_groups[i].n += 1,
                None if self.denial_groups.len() < self.limits.denial_details => {
                    self.denial_index.insert(k, self.denial_groups.len());
                    self.denial_groups.push(DenialGroup {
                        s: si,
                        g: gi,
                        time: d.time.clone(),
                        operation: d.operation.clone(),
                        object: d.object.clone(),
                        n: 1,
                        x,
                    });
                }
                None => {}
            }
        }
        let lim = self.limits;
        let seg = &mut s.segments[gi];
        if d.deny {
            seg.denials += 1;
        } else {
            seg.allows += 1;
        }
        for g in [&d.grant, &d.covering].into_iter().flatten() {
            if let Some(id) = g.id {
                seg.refs.entry(id).or_insert_with(|| g.text.clone());
            }
        }
        if let Some(g) = &d.grant {
            seg.used
                .entry((g.id, g.source.clone()))
                .or_insert_with(|| Used {
                    grant: g.clone(),
                    n: 0,
                })
                .n += 1;
        }
        let ev = Event {
            ms: d.ms,
            deny: d.deny,
            x,
        };
        if let Some(ci) = ci {
            let c = &mut self.cmds[ci];
            if d.deny {
                c.denials += 1;
            } else {
                c.allows += 1;
            }
            c.events.push(ev);
        } else {
            seg.process_event(&d, ev);
        }
        let cap = lim.objects_per_step;
        match place(&d) {
            Place::Path(dir, name) => {
                if !seg.dirs.contains_key(&dir) && seg.dirs.len() >= cap {
                    seg.dirs_more += 1;
                } else {
                    let e = seg.dirs.entry(dir).or_default();
                    if d.deny {
                        e.denials += 1;
                    } else {
                        e.allows += 1;
                    }
                    e.entries
                        .add(&name, &d, x, lim.entries_per_dir, &mut seg.budget);
                }
            }
            Place::Program => seg.programs.add(&d.object, &d, x, cap, &mut seg.budget),
            Place::Destination => {
                seg.destinations.add(&d.object, &d, x, cap, &mut seg.budget);
            }
            Place::Other => seg.other.add(&d.object, &d, x, cap, &mut seg.budget),
        }
    }

    /// Puts each command in its step's segment, stretched to hold its bar
    /// and marks.
    fn place_commands(&mut self) {
        for ci in 0..self.cmds.len() {
            let st = self.cmds[ci].start.clone();
            let at = At {
                session: &st.session,
                host: &st.host,
                uid: st.uid,
                plan: &st.plan,
                revision: st.revision,
                step: &st.step,
            };
            let (si, gi) = self.slot(&at, st.ms, &st.time);
            let end = self.cmds[ci].end.as_ref().map(|e| (e.ms, e.time.clone()));
            if let Some((ms, time)) = end {
                self.slot(&at, ms, &time);
            } else {
                self.stats.commands_open += 1;
            }
            let evs = &self.cmds[ci].events;
            let lo = evs.iter().map(|e| e.ms).min();
            let hi = evs.iter().map(|e| e.ms).max();
            let g = &mut self.sessions[si].segments[gi];
            if let (Some(lo), Some(hi)) = (lo, hi) {
                g.first = g.first.min(lo);
                g.last = g.last.max(hi);
            }
            g.cmds.push(ci);
        }
    }

    fn finish(mut self, images: &[NamedImage<'_>]) -> Data {
        self.place_commands();
        let cmds = std::mem::take(&mut self.cmds);
        let lim = self.limits;
        let mut stats = self.stats;
        stats.sessions = self.sessions.len() as u64;
        stats.details = self.details.len() as u64;
        let mut sessions: Vec<SessionOut> = self
            .sessions
            .into_iter()
            .map(|s| SessionOut {
                id: s.id,
                host: s.host,
                uid: s.uid,
                objectives: s.objectives.into_iter().collect(),
                intents: s.intents.into_iter().collect(),
                first: s.first_time,
                last: s.last_time,
                ms: s.last.saturating_sub(s.first),
                allows: s.allows,
                denials: s.denials,
                segments: s
                    .segments
                    .into_iter()
                    .map(|g| segment_out(g, &cmds, s.last, images, lim))
                    .collect(),
            })
            .collect();
        sessions.sort_by(|a, b| a.first.cmp(&b.first));
        Data {
            stats,
            sessions,
            details: self.details,
            denials: self.denial_groups,
            losses: self.losses,
            not_understood: self.not_understood,
            limits: LimitsOut {
                denial_details: lim.denial_details,
                allow_details: lim.allow_details,
                entries_per_dir: lim.entries_per_dir,
                objects_per_step: lim.objects_per_step,
                procs_per_step: lim.procs_per_step,
            },
        }
    }
}

/// The page's data (the JSON blob).
#[derive(Clone, Debug, Serialize)]
struct Data {
    stats: Stats,
    sessions: Vec<SessionOut>,
    details: Vec<Detail>,
    denials: Vec<DenialGroup>,
    losses: Vec<Lost>,
    not_understood: Vec<NotUnderstood>,
    limits: LimitsOut,
}

#[derive(Clone, Debug, Serialize)]
struct LimitsOut {
    denial_details: usize,
    allow_details: usize,
    entries_per_dir: usize,
    objects_per_step: usize,
    procs_per_step: usize,
}

#[derive(Clone, Debug, Serialize)]
struct SessionOut {
    id: String,
    host: String,
    uid: Option<u64>,
    objectives: Vec<String>,
    intents: Vec<String>,
    first: String,
    last: String,
    /// Duration, ms.
    ms: i64,
    allows: u64,
    denials: u64,
    segments: Vec<SegmentOut>,
}

#[derive(Clone, Debug, Serialize)]
struct SegmentOut {
    plan: String,
    revision: Option<u64>,
    step: String,
    first: String,
    /// Duration, ms.
    ms: i64,
    allows: u64,
    denials: u64,
    /// Its commands, in start order (the first `procs_per_step`).
    cmds: Vec<CmdOut>,
    /// Commands past the cap, not drawn.
    cmds_more: usize,
    procs: Vec<ProcOut>,
    /// Processes merged into the last row (past the cap).
    procs_merged: usize,
    dirs: Vec<DirOut>,
    dirs_more: u64,
    programs: Vec<Entry>,
    programs_more: u64,
    destinations: Vec<Entry>,
    destinations_more: u64,
    other: Vec<Entry>,
    other_more: u64,
    used: Vec<Used>,
    /// Grants of the step no record names (`None`: no image holds this
    /// plan revision).
    unused: Option<Vec<UnusedGrant>>,
    unused_note: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
struct DirOut {
    dir: String,
    allows: u64,
    denials: u64,
    entries: Vec<Entry>,
    more: u64,
}

#[derive(Clone, Debug, Serialize)]
struct UnusedGrant {
    grant: Grant,
    /// Plan-wide (else the step's own).
    plan_wide: bool,
    /// From a library (`use`), not written in the plan's own file.
    library: bool,
    /// A file-system grant: Landlock allows reads and writes without a
    /// record (only creating, removing and metadata changes, decided by
    /// the supervisor, are recorded when allowed), so no record does not
    /// mean it was never used.
    unrecorded: bool,
}

/// A timeline row: `t0`/`t1` and marks' `t` are ms after the step's
/// first record.
#[derive(Clone, Debug, Serialize)]
struct ProcOut {
    pid: Option<i64>,
    comm: String,
    exe: Option<String>,
    t0: i64,
    t1: i64,
    allows: u64,
    denials: u64,
    marks: Vec<Mark>,
}

/// A command's bar: `t0`/`t1` and marks' `t` are ms after the step's
/// first record; `status` is `None` without an end record (the bar then
/// ends at the session's last record).
#[derive(Clone, Debug, Serialize)]
struct CmdOut {
    id: u64,
    pid: Option<i64>,
    argv: String,
    program: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cwd: Option<String>,
    t0: i64,
    t1: i64,
    status: Option<String>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ms: Option<u64>,
    with_step: bool,
    allows: u64,
    denials: u64,
    marks: Vec<Mark>,
}

#[derive(Clone, Debug, Serialize)]
struct Mark {
    t: i64,
    a: u32,
    d: u32,
    x: Vec<u32>,
}

fn marks(events: &[Event], t0: i64, span: i64, lim: Limits) -> Vec<Mark> {
    let buckets = lim.marks_per_row.max(1) as i64;
    let mut out: BTreeMap<i64, Mark> = BTreeMap::new();
    for e in events {
        let b = ((e.ms - t0).max(0) * buckets / span.max(1)).min(buckets - 1);
        let m = out.entry(b).or_insert(Mark {
            t: e.ms - t0,
            a: 0,
            d: 0,
            x: Vec::new(),
        });
        m.t = m.t.min(e.ms - t0);
        add_event(m, e, lim);
    }
    out.into_values().collect()
}

fn add_event(m: &mut Mark, e: &Event, lim: Limits) {
    if e.deny {
        m.d += 1;
    } else {
        m.a += 1;
    }
    if let Some(x) = e.x
        && !m.x.contains(&x)
        && m.x.len() < lim.details_per_mark
    {
        m.x.push(x);
    }
}

fn cmd_out(c: &Cmd, first: i64, span: i64, session_last: i64, lim: Limits) -> CmdOut {
    let t1 = c.end.as_ref().map_or(session_last, |e| e.ms);
    CmdOut {
        id: c.start.command,
        pid: c.start.pid,
        argv: argv_line(&c.start.argv, c.start.argv_truncated),
        program: c.start.program.clone(),
        cwd: c.start.cwd.clone(),
        t0: c.start.ms - first,
        t1: t1.max(c.start.ms) - first,
        status: c.end.as_ref().map(|e| e.status.clone()),
        ok: c.end.as_ref().is_some_and(|e| e.ok),
        ms: c.end.as_ref().and_then(|e| e.duration_ms),
        with_step: c.end.as_ref().is_some_and(|e| e.with_step),
        allows: c.allows,
        denials: c.denials,
        marks: marks(&c.events, first, span, lim),
    }
}

fn segment_out(
    g: Segment,
    cmds: &[Cmd],
    session_last: i64,
    images: &[NamedImage<'_>],
    lim: Limits,
) -> SegmentOut {
    // A command without an end draws to the session's last record.
    let last = g
        .cmds
        .iter()
        .filter(|&&ci| cmds[ci].end.is_none())
        .fold(g.last, |l, _| l.max(session_last));
    let span = last - g.first;
    let mut mine: Vec<&Cmd> = g.cmds.iter().map(|&ci| &cmds[ci]).collect();
    mine.sort_by_key(|c| (c.start.ms, c.start.command));
    let cmds_more = mine.len().saturating_sub(lim.procs_per_step);
    let cmds_out: Vec<CmdOut> = mine
        .iter()
        .take(lim.procs_per_step)
        .map(|c| cmd_out(c, g.first, span, session_last, lim))
        .collect();
    let (unused, unused_note) = unused_grants(&g, images);
    let mut procs = g.procs;
    // The busiest processes keep their own rows.
    procs.sort_by_key(|p| p.events.first().map_or(0, |e| e.ms));
    let merged = procs.len().saturating_sub(lim.procs_per_step);
    if merged > 0 {
        let mut keep: Vec<Proc> = Vec::new();
        let mut rest = Proc {
            pid: None,
            comm: format!("{} more processes", merged + 1),
            exe: None,
            allows: 0,
            denials: 0,
            events: Vec::new(),
        };
        let mut order: Vec<usize> = (0..procs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(procs[i].events.len()));
        let kept: BTreeSet<usize> = order
            .into_iter()
            .take(lim.procs_per_step.saturating_sub(1))
            .collect();
        for (i, p) in procs.into_iter().enumerate() {
            if kept.contains(&i) {
                keep.push(p);
            } else {
                rest.allows += p.allows;
                rest.denials += p.denials;
                rest.events.extend(p.events);
            }
        }
        rest.events.sort_by_key(|e| e.ms);
        keep.push(rest);
        procs = keep;
    }
    let procs = procs
        .into_iter()
        .map(|p| {
            let t0 = p.events.iter().map(|e| e.ms).min().unwrap_or(g.first) - g.first;
            let t1 = p.events.iter().map(|e| e.ms).max().unwrap_or(g.first) - g.first;
            ProcOut {
                marks: marks(&p.events, g.first, span, lim),
                pid: p.pid,
                comm: p.comm,
                exe: p.exe,
                t0,
                t1,
                allows: p.allows,
                denials: p.denials,
            }
        })
        .collect();
    SegmentOut {
        plan: g.plan,
        revision: g.revision,
        step: g.step,
        first: g.first_time,
        ms: span,
        allows: g.allows,
        denials: g.denials,
        cmds: cmds_out,
        cmds_more,
        procs,
        procs_merged: merged,
        dirs: g
            .dirs
            .into_iter()
            .map(|(dir, d)| DirOut {
                dir,
                allows: d.allows,
                denials: d.denials,
                entries: d.entries.list.into_values().collect(),
                more: d.entries.more,
            })
            .collect(),
        dirs_more: g.dirs_more,
        programs: g.programs.list.into_values().collect(),
        programs_more: g.programs.more,
        destinations: g.destinations.list.into_values().collect(),
        destinations_more: g.destinations.more,
        other: g.other.list.into_values().collect(),
        other_more: g.other.more,
        used: g.used.into_values().collect(),
        unused,
        unused_note,
    }
}

/// The step's grants no record names, from the first image that holds the
/// plan and step and agrees with the records' grant texts.
fn unused_grants(
    g: &Segment,
    images: &[NamedImage<'_>],
) -> (Option<Vec<UnusedGrant>>, Option<String>) {
    if images.is_empty() {
        return (
            None,
            Some("give the image with --image to list the grants never used".into()),
        );
    }
    for ni in images {
        let img = ni.image;
        let Some(plan) = img.plans.iter().find(|p| p.name == g.plan) else {
            continue;
        };
        let Some(step) = plan.steps.iter().find(|s| s.name == g.step) else {
            continue;
        };
        let agrees = g.refs.iter().all(|(id, text)| {
            img.grants
                .get(*id as usize)
                .is_some_and(|gr| gr.text == *text)
        });
        if !agrees {
            continue;
        }
        let used: BTreeSet<u64> = g.used.keys().filter_map(|(id, _)| *id).collect();
        let main_file = img.meta.sources.first().cloned().unwrap_or_default();
        let mut out = Vec::new();
        for (&gid, plan_wide) in step
            .grants
            .iter()
            .map(|g| (g, false))
            .chain(plan.grants.iter().map(|g| (g, true)))
        {
            if used.contains(&u64::from(gid)) {
                continue;
            }
            let Some(r) = crate::report::grant_ref(img, gid) else {
                continue;
            };
            let library = !r.source.starts_with(&format!("{main_file}:"));
            let unrecorded = img
                .grants
                .get(gid as usize)
                .is_some_and(|gr| matches!(gr.kind, kapl_image::GrantKind::Fs(_)));
            out.push(UnusedGrant {
                grant: Grant {
                    id: Some(u64::from(r.id)),
                    source: r.source,
                    site: r.site,
                    text: r.text,
                    step: r.step,
                },
                plan_wide,
                library,
                unrecorded,
            });
        }
        return (Some(out), Some(format!("from {}", ni.file)));
    }
    (
        None,
        Some(format!(
            "no image given holds plan `{}`{} with step `{}` as the records name its grants",
            g.plan,
            g.revision
                .map_or_else(String::new, |r| format!(" revision {r}")),
            g.step
        )),
    )
}

#[cfg(test)]
mod tests;
