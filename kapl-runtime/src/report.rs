//! Decision reporting: a kernel decision attributed through grant → step →
//! plan → intent → objective, as an audit record and a line for the
//! command's stderr.
//!
//! Input: a [`Decision`] (what the kernel decided, for which process, in
//! which step, under which grant if allowed, and the nearest grant if
//! denied). Output: a [`Report`]: the [`DecisionRecord`] for the audit
//! file, and the [`Notice`] line (`denied: …` / `allowed: …`). Allows are
//! reported once per grant and object; denials every time.

use crate::attribution::Nearest;
use crate::record::{
    CommandEndRecord, CommandExit, CommandStartRecord, DecisionRecord, EndVerdict, GrantRef,
    LevelRecord, LevelVerdict, LostRecord, LostVerdict, Mechanism, NearestRef, SCHEMA_VERSION,
    StartVerdict, Target, Verdict, bounded_argv, rfc3339,
};
use kapl_image::Image;
use std::collections::HashSet;
use std::time::SystemTime;

/// Who reports: the session, and the host and user it runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The session id.
    pub session: String,
    /// The host's name.
    pub host: String,
    /// The user.
    pub uid: u32,
}

/// One kernel decision, attributed.
#[derive(Clone, Debug)]
pub struct Decision {
    /// The command it concerns (None: the session, or not known).
    pub cmd: Option<u64>,
    /// The step whose authority the process held.
    pub step: u32,
    /// The process.
    pub pid: Option<i32>,
    /// Its comm.
    pub comm: String,
    /// Its program.
    pub exe: Option<String>,
    /// What it tried.
    pub operation: String,
    /// On what.
    pub target: Target,
    /// The allowing grant (`None`: denied).
    pub grant: Option<u32>,
    /// For a denial, the nearest grant.
    pub nearest: Nearest,
    /// For a denial of what a grant of the step covers: that grant, and why
    /// enforcement is narrower than it there.
    pub narrowed: Option<(u32, String)>,
    /// For a denial the kernel's rights cannot express, decided by the
    /// supervisor although grants cover each part (a rename or link that
    /// would change what the step may do with the object): why.
    pub why: Option<String>,
    /// Which mechanism decided.
    pub mechanism: Mechanism,
    /// The kernel audit serial, where the decision came from audit.
    pub audit_serial: Option<u64>,
}

/// A command as its start record names it.
#[derive(Clone, Copy, Debug)]
pub struct CommandStart<'a> {
    /// The supervisor's command id.
    pub cmd: u64,
    /// Its process (`None`: refused before it ran).
    pub pid: Option<i32>,
    /// The step it runs under.
    pub step: u32,
    /// Its arguments as given.
    pub argv: &'a [Vec<u8>],
    /// The program found for `argv[0]`.
    pub program: &'a [u8],
    /// Its working directory, if given.
    pub cwd: Option<&'a [u8]>,
}

/// One line for a command's stderr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The command it concerns (None: the session: every running command).
    pub cmd: Option<u64>,
    /// The text.
    pub line: String,
    /// A denial (else an allow).
    pub deny: bool,
    /// The decision's audit record (absent for the session's own notices).
    pub record: Option<Box<DecisionRecord>>,
}

/// What reporting one decision produced.
#[derive(Clone, Debug)]
pub struct Report {
    /// The audit record.
    pub record: DecisionRecord,
    /// The stderr line.
    pub notice: Notice,
}

/// The authority chain of a step: (step, plan, intent, objective) names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// The step.
    pub step: String,
    /// The plan.
    pub plan: String,
    /// The intent, if any.
    pub intent: Option<String>,
    /// The objective.
    pub objective: String,
}

impl Chain {
    /// The chain of `step` of plan `plan` of `image`.
    pub fn of(image: &Image, plan: u32, step: u32) -> Chain {
        let p = image.plans.get(plan as usize);
        Chain {
            step: p
                .and_then(|p| p.steps.get(step as usize))
                .map_or_else(|| "?".to_string(), |s| s.name.clone()),
            plan: p.map_or_else(|| "?".to_string(), |p| p.name.clone()),
            intent: p
                .and_then(|p| p.intent)
                .and_then(|i| image.intents.get(i as usize))
                .map(|i| i.name.clone()),
            objective: p
                .and_then(|p| image.objectives.get(p.objective as usize))
                .map_or_else(String::new, |o| o.name.clone()),
        }
    }

    /// `, intent NAME` or nothing.
    fn intent_part(&self) -> String {
        self.intent
            .as_ref()
            .map_or_else(String::new, |i| format!(", intent {i}"))
    }

    /// Why a request no grant covers was denied.
    pub fn no_grant(&self) -> String {
        format!(
            "no grant of step {} (plan {}{}, objective {}) covers it",
            self.step,
            self.plan,
            self.intent_part(),
            self.objective
        )
    }
}

/// Source text on one line (grants spanning lines are shown joined).
pub fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A grant as records name it.
pub fn grant_ref(image: &Image, g: u32) -> Option<GrantRef> {
    let p = image.provenance(g)?;
    let site_file = image
        .meta
        .sources
        .get(p.grant.site.file as usize)
        .map_or("?", String::as_str);
    Some(GrantRef {
        id: g,
        source: format!(
            "{}:{}:{}",
            p.file, p.grant.source.line, p.grant.source.column
        ),
        site: format!("{site_file}:{}", p.grant.site.line),
        text: p.grant.text.clone(),
        step: p.step.map(|s| s.name.clone()),
    })
}

/// A grant in a line: ``grant 3 `fs read "/srv/**"` (deploy.kapl:12)``.
pub fn grant_brief(image: &Image, g: u32) -> String {
    match image.provenance(g) {
        Some(p) => format!(
            "grant {g} `{}` ({}:{})",
            flat(&p.grant.text),
            p.file,
            p.grant.source.line
        ),
        None => format!("grant {g}"),
    }
}

/// A nearest grant in a line: as [`grant_brief`], and the step it belongs
/// to when that is another step than `current` and `why` does not say so.
fn nearest_brief(image: &Image, g: u32, current: &str, why: &str) -> String {
    let brief = grant_brief(image, g);
    match image.provenance(g).and_then(|p| p.step) {
        Some(s) if s.name != current && !why.contains(&format!("step {}", s.name)) => {
            format!("{brief} of step {}", s.name)
        }
        _ => brief,
    }
}

/// Reports the decisions of one session's plan.
#[derive(Debug)]
pub struct Reporter {
    origin: Origin,
    plan: u32,
    revision: Option<u32>,
    seen: HashSet<(u32, String)>,
    /// Denials reported.
    pub denies: u64,
    /// Allows reported (first of each grant and object).
    pub allows: u64,
}

impl Reporter {
    /// A reporter for plan `plan`.
    pub fn new(origin: Origin, plan: u32) -> Reporter {
        Reporter {
            origin,
            plan,
            revision: None,
            seen: HashSet::new(),
            denies: 0,
            allows: 0,
        }
    }

    /// Reports for plan `plan` of a newly loaded image from now on,
    /// records carrying `revision`. The first allow of each grant and
    /// object is reported anew: grant ids are the new image's.
    pub fn set_plan(&mut self, plan: u32, revision: Option<u32>) {
        self.plan = plan;
        self.revision = revision;
        self.seen.clear();
    }

    /// Who reports.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Reports `d` decided at `now`; `None` for an allow already reported
    /// for the same grant and object.
    pub fn report(&mut self, image: &Image, d: Decision, now: SystemTime) -> Option<Report> {
        let chain = Chain::of(image, self.plan, d.step);
        let object = d.target.to_string();
        let deny = d.grant.is_none();
        if deny {
            self.denies += 1;
        } else {
            let key = (
                d.grant.unwrap_or(u32::MAX),
                format!("{} {object}", d.operation),
            );
            if !self.seen.insert(key) {
                return None;
            }
            self.allows += 1;
        }
        let reason = deny.then(|| match (&d.why, &d.narrowed) {
            (Some(why), _) => why.clone(),
            (None, Some((g, why))) => format!(
                "{} covers it; narrowed when step {} started: {why}",
                grant_brief(image, *g),
                chain.step
            ),
            (None, None) => chain.no_grant(),
        });
        // The covering grant says more than a nearest one.
        let nearest_of = if d.narrowed.is_some() {
            None
        } else {
            d.nearest.clone()
        };
        let line = match (deny, d.grant) {
            (false, Some(g)) => format!(
                "allowed: {} {} {object} — {}, step {}, plan {}{}, objective {}",
                d.comm,
                d.operation,
                grant_brief(image, g),
                chain.step,
                chain.plan,
                chain.intent_part(),
                chain.objective
            ),
            _ => {
                let mut l = format!(
                    "denied: {} {} {object} — {}",
                    d.comm,
                    d.operation,
                    reason.as_deref().unwrap_or_default()
                );
                if let Some((g, w)) = &nearest_of {
                    l.push_str(&format!(
                        "; nearest: {} — {w}",
                        nearest_brief(image, *g, &chain.step, w)
                    ));
                }
                l
            }
        };
        let nearest = nearest_of.as_ref().and_then(|(g, why)| {
            Some(NearestRef {
                grant: grant_ref(image, *g)?,
                why: why.clone(),
            })
        });
        let cmd = d.cmd;
        let mut record = self.base(image, chain, d, object, now);
        record.verdict = if deny { Verdict::Deny } else { Verdict::Allow };
        record.reason = reason;
        record.nearest = nearest;
        Some(Report {
            notice: Notice {
                cmd,
                line,
                deny,
                record: Some(Box::new(record.clone())),
            },
            record,
        })
    }

    /// The record of a program the kernel let a process execute that no
    /// exec grant names (reached through a link, or as an interpreter):
    /// recorded, neither counted nor shown.
    #[expect(clippy::too_many_arguments, reason = "the fields of one record")]
    pub fn unattributed_exec(
        &self,
        image: &Image,
        cmd: Option<u64>,
        step: u32,
        pid: i32,
        comm: &str,
        target: Target,
        now: SystemTime,
    ) -> DecisionRecord {
        let chain = Chain::of(image, self.plan, step);
        let object = target.to_string();
        let d = Decision {
            cmd,
            step,
            pid: Some(pid),
            comm: comm.to_string(),
            exe: Some(object.clone()),
            operation: "exec".into(),
            target,
            grant: None,
            nearest: None,
            narrowed: None,
            why: None,
            mechanism: Mechanism::Tracepoint,
            audit_serial: None,
        };
        let mut record = self.base(image, chain, d, object, now);
        record.reason = Some(
            "executed; no exec grant names this path (reached through a link or as an interpreter)"
                .into(),
        );
        record
    }

    /// The record of `d` in `chain`, as an allow without reason or nearest
    /// grant (the callers set those).
    fn base(
        &self,
        image: &Image,
        chain: Chain,
        d: Decision,
        object: String,
        now: SystemTime,
    ) -> DecisionRecord {
        DecisionRecord {
            schema_version: SCHEMA_VERSION,
            time: rfc3339(now),
            session: self.origin.session.clone(),
            host: self.origin.host.clone(),
            uid: self.origin.uid,
            pid: d.pid,
            comm: d.comm,
            exe: d.exe,
            command: d.cmd,
            operation: d.operation,
            object,
            target: d.target,
            verdict: Verdict::Allow,
            grant: d.grant.and_then(|g| grant_ref(image, g)),
            covering: d.narrowed.as_ref().and_then(|(g, _)| grant_ref(image, *g)),
            step: chain.step,
            plan: chain.plan,
            plan_revision: self.revision,
            intent: chain.intent,
            objective: chain.objective,
            reason: None,
            nearest: None,
            mechanism: d.mechanism,
            audit_serial: d.audit_serial,
            learned: None,
        }
    }

    /// The record of command `cmd` started (`pid`; `None`: refused before
    /// it ran) in step `step` at `now`.
    pub fn command_started(
        &self,
        image: &Image,
        c: &CommandStart<'_>,
        now: SystemTime,
    ) -> CommandStartRecord {
        let chain = Chain::of(image, self.plan, c.step);
        let (argv, argv_truncated) = bounded_argv(c.argv);
        CommandStartRecord {
            schema_version: SCHEMA_VERSION,
            time: rfc3339(now),
            session: self.origin.session.clone(),
            host: self.origin.host.clone(),
            uid: self.origin.uid,
            verdict: StartVerdict::CommandStarted,
            command: c.cmd,
            pid: c.pid,
            argv,
            argv_truncated,
            program: String::from_utf8_lossy(c.program).into_owned(),
            cwd: c.cwd.map(|d| String::from_utf8_lossy(d).into_owned()),
            step: chain.step,
            plan: chain.plan,
            plan_revision: self.revision,
            intent: chain.intent,
            objective: chain.objective,
        }
    }

    /// The record of command `cmd` (process `pid`) of step `step` ended
    /// `exit` at `now`, `duration_ms` after it started.
    #[expect(clippy::too_many_arguments, reason = "the fields of one record")]
    pub fn command_ended(
        &self,
        image: &Image,
        cmd: u64,
        pid: Option<i32>,
        step: u32,
        exit: CommandExit,
        duration_ms: u64,
        ended_with_step: bool,
        now: SystemTime,
    ) -> CommandEndRecord {
        let chain = Chain::of(image, self.plan, step);
        CommandEndRecord {
            schema_version: SCHEMA_VERSION,
            time: rfc3339(now),
            session: self.origin.session.clone(),
            host: self.origin.host.clone(),
            uid: self.origin.uid,
            verdict: EndVerdict::CommandEnded,
            command: cmd,
            pid,
            exit,
            duration_ms,
            ended_with_step,
            step: chain.step,
            plan: chain.plan,
            plan_revision: self.revision,
        }
    }

    /// The record that opens the audit file of a session below Landlock
    /// ABI 7 (`cgroups` as for `kernel_level::losses`).
    pub fn level(
        &self,
        abi: u8,
        kernel_abi: u8,
        min_abi: u8,
        cgroups: bool,
        now: SystemTime,
    ) -> LevelRecord {
        LevelRecord {
            schema_version: SCHEMA_VERSION,
            time: rfc3339(now),
            session: self.origin.session.clone(),
            host: self.origin.host.clone(),
            uid: self.origin.uid,
            verdict: LevelVerdict::Degraded,
            landlock_abi: abi,
            kernel_abi,
            min_abi,
            losses: crate::kernel_level::losses(abi, cgroups),
        }
    }

    /// The record that closes an audit file of a session that lost events.
    pub fn lost(&self, lost: crate::losses::Losses, now: SystemTime) -> LostRecord {
        LostRecord {
            schema_version: SCHEMA_VERSION,
            time: rfc3339(now),
            session: self.origin.session.clone(),
            host: self.origin.host.clone(),
            uid: self.origin.uid,
            verdict: LostVerdict::Lost,
            lost,
            reason: "decision events the kernel could not deliver (ring buffer, audit socket or audit backlog full; the kernel's count is host-wide); each lost audit record may be a denial".into(),
        }
    }
}
