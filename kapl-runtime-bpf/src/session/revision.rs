//! Sessions pinned to an objective, and the plans loaded into them during
//! the session (stage: runtime, plan revisions).
//!
//! A session started on an objective image (`session start OBJ.kapi
//! --objective NAME [--intent NAME]`) pins that objective and holds no
//! plan: its commands are refused until a plan is loaded. `plan load`
//! brings a plan image built against the same objective image; the
//! runtime's own checker ([`kapl_runtime::containment`], no Z3, no
//! compiler) proves from the image tables alone that every step lies
//! inside the pinned objective (and intent) and outside every `never`,
//! before anything changes. An accepted plan becomes the next revision:
//! the previous plan's processes end as at a step switch, its supervised
//! listeners are closed (a call waiting on one fails, never decided under
//! the new plan), and every later record carries the revision. A refused
//! load changes nothing and is kept in the history with its reason.
//!
//! Denials are explained in terms of the pinned objective
//! ([`kapl_runtime::explain`]): the smallest grant that would allow each,
//! and whether a revision could add it.

use super::{Session, step_domain};
use crate::error::RunError;
use kapl_codes as codes;
use kapl_image::{Dfa, DfaKind, Image, Plan, Step};
use kapl_runtime::containment::{self, Breach, Finding};
use kapl_runtime::explain::{self, Explanation, level_name};
use kapl_runtime::record::DecisionRecord;
use kapl_runtime::step;
use serde::Serialize;
use std::collections::VecDeque;

/// Largest plan image `plan load` reads.
pub const MAX_PLAN_IMAGE: u64 = 64 << 20;

/// Denials kept for `explain`.
const KEPT_DENIALS: usize = 256;

/// Plan history entries kept (the oldest go first).
const KEPT_HISTORY: usize = 1000;

/// The objective a session is pinned to.
pub struct Pinned {
    /// The objective image.
    pub image: Image,
    /// Its bytes, as read at the session's start (handed to proposals).
    pub bytes: Vec<u8>,
    /// Its file name.
    pub file: String,
    /// The objective (index in [`Pinned::image`]).
    pub objective: u32,
    /// The intent, if the session is pinned to one.
    pub intent: Option<u32>,
}

impl Pinned {
    /// Pins objective `objective` (the image's only one when `None`) and
    /// intent `intent` of `image`.
    pub fn new(
        image: Image,
        bytes: Vec<u8>,
        file: String,
        objective: Option<&str>,
        intent: Option<&str>,
    ) -> Result<Pinned, PlanLoadError> {
        let names = |it: &mut dyn Iterator<Item = String>| it.collect::<Vec<_>>().join(", ");
        let known = names(&mut image.objectives.iter().map(|o| o.name.clone()));
        let oi = match objective {
            Some(n) => image.objectives.iter().position(|o| o.name == n),
            None if image.objectives.len() == 1 => Some(0),
            None => None,
        }
        .ok_or_else(|| PlanLoadError::NoObjective {
            asked: objective.unwrap_or("").to_string(),
            known: known.clone(),
        })? as u32;
        let ii = match intent {
            None => None,
            Some(n) => Some(
                image
                    .intents
                    .iter()
                    .position(|i| i.name == n && i.objective == oi)
                    .ok_or_else(|| PlanLoadError::NoIntent {
                        asked: n.to_string(),
                        objective: image.objectives[oi as usize].name.clone(),
                        known: names(
                            &mut image
                                .intents
                                .iter()
                                .filter(|i| i.objective == oi)
                                .map(|i| i.name.clone()),
                        ),
                    })? as u32,
            ),
        };
        Ok(Pinned {
            image,
            bytes,
            file,
            objective: oi,
            intent: ii,
        })
    }

    /// The objective's name.
    pub fn objective_name(&self) -> &str {
        self.image
            .objectives
            .get(self.objective as usize)
            .map_or("?", |o| o.name.as_str())
    }

    /// The intent's name, if any.
    pub fn intent_name(&self) -> Option<&str> {
        self.intent
            .and_then(|i| self.image.intents.get(i as usize))
            .map(|i| i.name.as_str())
    }

    /// The image of a session that holds no plan yet: the objective image
    /// with one plan of one step that grants nothing (its commands are
    /// refused before they start; the empty tables are what the kernel
    /// objects are built from meanwhile).
    pub fn no_plan_image(&self) -> Image {
        let mut img = self.image.clone();
        img.objective = None;
        img.grants.clear();
        img.plans = vec![Plan {
            name: "(none)".into(),
            about: None,
            objective: self.objective,
            intent: self.intent,
            grants: Vec::new(),
            steps: vec![Step {
                name: "(none)".into(),
                about: None,
                after: Vec::new(),
                grants: Vec::new(),
                landlock: kapl_image::Landlock::default(),
            }],
            fs: Dfa::empty(DfaKind::Fs, 1),
            exec: Dfa::empty(DfaKind::Exec, 1),
            net: Vec::new(),
            names: Vec::new(),
            name_excluded: Vec::new(),
            never_names: Vec::new(),
        }];
        img
    }
}

/// One entry of a session's plan history.
#[derive(Clone, Debug, Serialize)]
pub struct Revision {
    /// The revision it became (`None`: refused).
    pub revision: Option<u32>,
    /// When it was loaded or refused (RFC 3339, UTC).
    pub time: String,
    /// The image file as the client named it.
    pub file: String,
    /// SHA-256 of the image's bytes, hex.
    pub sha256: String,
    /// The plan's name (empty if the image could not be read).
    pub plan: String,
    /// Accepted or refused.
    pub accepted: bool,
    /// Why it was refused, or what the acceptance did.
    pub why: String,
}

/// What a session pinned to an objective keeps besides its plan.
#[derive(Default)]
pub struct Revisions {
    /// The pinned objective (`None`: a session started on a plan).
    pub pinned: Option<Pinned>,
    /// Whether a plan is loaded (always, in a session started on a plan).
    pub loaded: bool,
    /// The current revision (0 before the first load).
    pub current: u32,
    /// Every load, accepted or refused, oldest first.
    pub history: Vec<Revision>,
    /// The latest denials with their explanations.
    pub denials: VecDeque<Explained>,
}

/// A denial and its explanation (`None` when no grant could name it).
#[derive(Clone, Debug, Serialize)]
pub struct Explained {
    /// The decision's record.
    pub record: DecisionRecord,
    /// The explanation.
    pub explanation: Option<Explanation>,
}

/// Why a plan cannot be loaded (each with its code).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanLoadError {
    /// The session was started on a plan, not pinned to an objective.
    #[error(
        "session was started on a plan image, not pinned to an objective: it cannot load plans"
    )]
    NotPinned,
    /// No plan has been loaded yet.
    #[error("no plan is loaded: the session holds objective `{0}` only")]
    NoPlanLoaded(String),
    /// The objective asked for is not in the image.
    #[error("no objective `{asked}` in the objective image (objectives: {known})")]
    NoObjective {
        /// The name asked for (empty: none given, several there).
        asked: String,
        /// Those there are.
        known: String,
    },
    /// The intent asked for is not under the objective.
    #[error("no intent `{asked}` under objective `{objective}` (intents: {known})")]
    NoIntent {
        /// The name asked for.
        asked: String,
        /// The objective.
        objective: String,
        /// Those there are.
        known: String,
    },
    /// The image file is not a regular file or is too large.
    #[error("{0}")]
    Unreadable(String),
    /// The bytes are not a valid image.
    #[error("{file}: {} {source}", source.code())]
    Verify {
        /// The file.
        file: String,
        /// Why.
        source: kapl_image::ImageError,
    },
    /// The image was not built against the pinned objective image.
    #[error("{0}")]
    OtherObjective(String),
    /// The checker could not compare the images.
    #[error(transparent)]
    Check(#[from] containment::CheckError),
    /// Steps leave the objective: one line per finding.
    #[error("plan `{plan}` leaves the pinned objective:\n{}", findings.join("\n"))]
    NotContained {
        /// The plan.
        plan: String,
        /// One line per finding, with its witness.
        findings: Vec<String>,
    },
}

impl PlanLoadError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            PlanLoadError::NotPinned | PlanLoadError::NoPlanLoaded(_) => codes::RUN_STEP,
            PlanLoadError::NoObjective { .. } | PlanLoadError::NoIntent { .. } => codes::RUN_USAGE,
            PlanLoadError::Unreadable(_) | PlanLoadError::Verify { .. } => codes::RUN_IMAGE,
            PlanLoadError::OtherObjective(_) => codes::RUN_OTHER_OBJECTIVE,
            PlanLoadError::Check(e) => e.code(),
            PlanLoadError::NotContained { .. } => codes::RUN_NOT_CONTAINED,
        }
    }

    /// How to fix it.
    pub fn help(&self) -> Option<String> {
        Some(match self {
            PlanLoadError::NotPinned => "start the session on an objective image: `kapl-run session start OBJ.kapi --objective NAME`".into(),
            PlanLoadError::NoPlanLoaded(_) => "load a plan first: `kapl-run plan propose PLAN.kapl` (or `plan load PLAN.kapi`)".into(),
            PlanLoadError::OtherObjective(_) => "build the plan with `kaplc build PLAN.kapl --against` the session's objective image".into(),
            PlanLoadError::NotContained { .. } => "narrow the grants named above, or ask the person who set the objective to widen it; `kaplc check PLAN.kapl --against OBJ.kapi` shows the same with source snippets".into(),
            _ => return None,
        })
    }
}

/// One finding as a line: the step, the grant and its source, the witness,
/// and what it breaks.
fn finding_line(obj: &Image, plan_image: &Image, plan: &Plan, f: &Finding) -> String {
    let step = plan
        .steps
        .get(f.step as usize)
        .map_or("?", |s| s.name.as_str());
    let grant = kapl_runtime::report::grant_brief(plan_image, f.grant);
    let breach = match f.breach {
        Breach::OutsideBound(l) => format!("outside the bound of {}", level_name(obj, l)),
        Breach::Never { level, rule } => {
            let r = obj
                .objective
                .as_ref()
                .and_then(|t| t.rules.get(rule as usize));
            format!(
                "forbidden by `never` of {}{}",
                level_name(obj, level),
                r.map_or(String::new(), |r| format!(" (`{}`)", r.text))
            )
        }
    };
    format!("  step {step}: {grant} allows {} — {breach}", f.witness)
}

impl Session {
    /// Whether commands may run: a plan is loaded.
    pub(super) fn plan_loaded(&self) -> Result<(), RunError> {
        match &self.revisions.pinned {
            Some(p) if !self.revisions.loaded => {
                Err(PlanLoadError::NoPlanLoaded(p.objective_name().to_string()).into())
            }
            _ => Ok(()),
        }
    }

    /// Loads plan image `bytes` (file `file`; plan `plan`, else its only
    /// one; start step `step`) as the next revision. Nothing changes unless
    /// every check passes; a refusal is kept in the history.
    pub fn load_plan(
        &mut self,
        bytes: &[u8],
        file: &str,
        plan: Option<&str>,
        start: Option<&str>,
    ) -> Result<String, RunError> {
        let sha = kapl_image::hex(&kapl_image::sha256(bytes));
        let mut name = String::new();
        let r = self.try_load(bytes, file, plan, start, &mut name);
        let now = kapl_runtime::record::rfc3339(std::time::SystemTime::now());
        let (accepted, why) = match &r {
            Ok(m) => (true, m.clone()),
            Err(e) => (false, e.to_string()),
        };
        if self.revisions.pinned.is_some() {
            self.keep(Revision {
                revision: accepted.then_some(self.revisions.current),
                time: now,
                file: file.to_string(),
                sha256: sha,
                plan: name,
                accepted,
                why,
            });
        }
        r
    }

    /// Adds an entry to the plan history.
    fn keep(&mut self, r: Revision) {
        let h = &mut self.revisions.history;
        if h.len() == KEPT_HISTORY {
            h.remove(0);
        }
        h.push(r);
    }

    /// Keeps a proposal refused at its build in the history.
    pub fn refused_proposal(
        &mut self,
        file: &str,
        sha256: &str,
        why: &str,
    ) -> Result<(), RunError> {
        if self.revisions.pinned.is_none() {
            return Err(PlanLoadError::NotPinned.into());
        }
        self.keep(Revision {
            revision: None,
            time: kapl_runtime::record::rfc3339(std::time::SystemTime::now()),
            file: file.to_string(),
            sha256: sha256.to_string(),
            plan: String::new(),
            accepted: false,
            why: format!("build: {why}"),
        });
        Ok(())
    }

    fn try_load(
        &mut self,
        bytes: &[u8],
        file: &str,
        plan: Option<&str>,
        start: Option<&str>,
        name: &mut String,
    ) -> Result<String, RunError> {
        let pinned = self
            .revisions
            .pinned
            .as_ref()
            .ok_or(PlanLoadError::NotPinned)?;
        let clock = std::time::Instant::now();
        let mut lap = {
            let mut last = clock;
            move || {
                let now = std::time::Instant::now();
                let ms = now.duration_since(last).as_secs_f64() * 1e3;
                last = now;
                ms
            }
        };
        let img = kapl_image::read(bytes).map_err(|source| PlanLoadError::Verify {
            file: file.to_string(),
            source,
        })?;
        let Some(against) = &img.against else {
            return Err(PlanLoadError::OtherObjective(format!(
                "{file} was not built against an objective image (kaplc build without --against); the session is pinned to {} ({})",
                pinned.file,
                pinned.image.identity_hex().unwrap_or_default()
            ))
            .into());
        };
        let identity = pinned.image.identity_hex().unwrap_or_default();
        if kapl_image::hex(&against.identity) != identity {
            return Err(PlanLoadError::OtherObjective(format!(
                "{file} was built against objective image {} (identity {}), not the session's {} (identity {identity})",
                against.file,
                kapl_image::hex(&against.identity),
                pinned.file
            ))
            .into());
        }
        let (pi, p) = match plan {
            Some(n) => step::plan(&img, n)?,
            None => match img.plans.as_slice() {
                [only] => (0, only),
                _ => {
                    return Err(RunError::Usage(format!(
                        "{file} holds {} plans ({}); name one with --plan",
                        img.plans.len(),
                        img.plans
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            },
        };
        name.clone_from(&p.name);
        // The plan must be under the pinned objective (and intent).
        let under_o = img
            .objectives
            .get(p.objective as usize)
            .map(|o| o.name.as_str());
        let under_i = p
            .intent
            .and_then(|i| img.intents.get(i as usize))
            .map(|i| i.name.as_str());
        if under_o != Some(pinned.objective_name())
            || (pinned.intent.is_some() && under_i != pinned.intent_name())
        {
            let want = match pinned.intent_name() {
                Some(i) => format!("intent {i} of objective {}", pinned.objective_name()),
                None => format!("objective {}", pinned.objective_name()),
            };
            return Err(PlanLoadError::OtherObjective(format!(
                "plan `{}` is under {}, but the session is pinned to {want}",
                p.name,
                under_i.or(under_o).unwrap_or("?")
            ))
            .into());
        }
        let verify_ms = lap();
        let findings =
            containment::check_plan(&pinned.image, &img, pi).map_err(PlanLoadError::Check)?;
        let check_ms = lap();
        if !findings.is_empty() {
            return Err(PlanLoadError::NotContained {
                plan: p.name.clone(),
                findings: findings
                    .iter()
                    .map(|f| finding_line(&pinned.image, &img, p, f))
                    .collect(),
            }
            .into());
        }
        let first = step::start(p, start)?;
        // Everything the new plan needs is built before anything ends.
        let domain = step_domain::build(p, first)?;
        let rules_ms = lap();
        let enforcer = match self.kern.as_ref() {
            Some(_) => Some(crate::bpf::NetEnforcer::load_with_unix(
                &kapl_image::bpf::NetMaps::of(p),
                &crate::unix::UnixTables::of(p).at_abi(self.level.abi),
            )?),
            None => None,
        };
        let steps = p.steps.len();
        let plan_name = p.name.clone();
        let step_name = p
            .steps
            .get(first as usize)
            .map_or("?", |s| s.name.as_str())
            .to_string();
        // The old plan's decisions are read (and reported under it) first.
        let mut late = self.sync();
        let ended = self.end_step_processes()?;
        late.extend(self.sync());
        self.late_notices.extend(late);
        // Listeners of the old plan's commands close: a call still waiting
        // on one fails; nothing is decided under the new plan for them.
        self.supervised.listeners.clear();
        if let (Some(k), Some(e)) = (self.kern.as_mut(), enforcer) {
            k.bpf = e;
        }
        self.image = img;
        self.plan = pi;
        self.step = first;
        self.visited = vec![false; steps];
        self.visited[first as usize] = true;
        self.domain = domain;
        self.nearest = super::events::NearestCache::default();
        self.revisions.current += 1;
        self.revisions.loaded = true;
        self.reporter.set_plan(pi, Some(self.revisions.current));
        self.attach_step()?;
        let kernel_ms = lap();
        Ok(format!(
            "plan {plan_name} is revision {}, step {step_name}: {ended} processes of the previous plan ended\ntiming: verify {verify_ms:.1} ms, check {check_ms:.1} ms, rules {rules_ms:.1} ms, kernel {kernel_ms:.1} ms",
            self.revisions.current
        ))
    }

    /// Keeps a denial and explains it against the pinned objective; the
    /// verdict line for its notice, when there is one.
    pub(super) fn explain_denial(&mut self, rec: &DecisionRecord) -> Option<String> {
        let pinned = self.revisions.pinned.as_ref()?;
        let tables = pinned.image.objective.as_ref()?;
        let levels = containment::pinned_levels(tables, pinned.objective, pinned.intent)?;
        let e = explain::explain(&pinned.image, &levels, rec);
        let line = e.as_ref().map(explain::notice_suffix);
        if self.revisions.denials.len() == KEPT_DENIALS {
            self.revisions.denials.pop_front();
        }
        self.revisions.denials.push_back(Explained {
            record: rec.clone(),
            explanation: e,
        });
        line
    }

    /// The last `n` denials with their explanations, oldest first.
    pub fn explained(&self, n: usize) -> Vec<Explained> {
        let d = &self.revisions.denials;
        d.iter().skip(d.len().saturating_sub(n)).cloned().collect()
    }

    /// The pinned objective, if any.
    pub fn pinned(&self) -> Option<&Pinned> {
        self.revisions.pinned.as_ref()
    }

    /// The plan history.
    pub fn history(&self) -> &[Revision] {
        &self.revisions.history
    }

    /// The current revision (0: none loaded, or a session on a plan).
    pub fn revision(&self) -> u32 {
        self.revisions.current
    }
}

impl From<PlanLoadError> for RunError {
    fn from(e: PlanLoadError) -> RunError {
        RunError::Plan(e)
    }
}

/// Reads a plan image from a descriptor a client sent: a regular file (or
/// memfd) of at most [`MAX_PLAN_IMAGE`] bytes, read from its start (never
/// a pipe or socket, which could keep the supervisor waiting).
pub fn read_image_fd(fd: &std::os::fd::OwnedFd, file: &str) -> Result<Vec<u8>, RunError> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::from(
        fd.try_clone()
            .map_err(|e| PlanLoadError::Unreadable(format!("{file}: {e}")))?,
    );
    let m = f
        .metadata()
        .map_err(|e| PlanLoadError::Unreadable(format!("{file}: {e}")))?;
    if !m.is_file() {
        return Err(PlanLoadError::Unreadable(format!("{file} is not a regular file")).into());
    }
    if m.len() > MAX_PLAN_IMAGE {
        return Err(PlanLoadError::Unreadable(format!(
            "{file} is {} bytes; plan images may be at most {MAX_PLAN_IMAGE}",
            m.len()
        ))
        .into());
    }
    let mut buf = vec![0u8; m.len() as usize];
    f.read_exact_at(&mut buf, 0)
        .map_err(|e| PlanLoadError::Unreadable(format!("{file}: {e}")))?;
    Ok(buf)
}

impl Session {
    /// The current step's rules that let files be read or directories
    /// listed: what a proposal's build may read.
    pub fn read_rules(&self) -> Vec<kapl_runtime::protocol::ReadRule> {
        use crate::domain::access;
        use std::os::unix::ffi::OsStrExt;
        self.domain
            .rules
            .iter()
            .filter(|r| r.access & (access::READ_FILE | access::READ_DIR) != 0)
            .map(|r| kapl_runtime::protocol::ReadRule {
                path: r.path.as_os_str().as_bytes().to_vec(),
                subtree: r.subtree,
                list: r.access & access::READ_DIR != 0,
            })
            .collect()
    }
}
