//! A session: one plan's steps enforced on the real kernel (stage:
//! runtime). Where to look:
//!
//! - how a step starts: [`Session::start`] and [`Session::switch`] here,
//!   its Landlock ruleset in [`step_domain`], its cgroup and BPF links in
//!   [`kernel`];
//! - commands: [`commands`] (started under the current step, reaped,
//!   ended with their step);
//! - where a decision is made: in the kernel (Landlock, the cgroup BPF
//!   programs, seccomp); [`events`] reads what the kernel reports and
//!   attributes each decision to the step and grant behind it;
//! - where it is reported: [`sink`] (the audit file and the lines for the
//!   commands' stderr), with the record built by `kapl_runtime::report`.
//!
//! Single-threaded: the caller polls [`Session::event_fds`] and calls
//! [`Session::pump`]; no locks, no shared state.

pub mod commands;
pub mod dns;
pub mod events;
pub mod kernel;
pub mod revision;
pub mod sink;
pub mod step_domain;
pub mod supervised;
pub mod tmp;

use crate::domain::{self, StepDomain};
use crate::error::{RunError, SessionError};
use crate::seccomp::{self, SockFilter};
use crate::sys;
use commands::Commands;
use kapl_image::{Image, Plan};
use kapl_runtime::auditlog::Record;
use kapl_runtime::losses::Losses;
use kapl_runtime::precision;
pub use kapl_runtime::report::Notice;
use kapl_runtime::report::{Origin, Reporter};
use kapl_runtime::step;
use kernel::Kernel;
use sink::Sink;
use std::path::Path;
use std::time::Instant;

/// How the session enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Landlock + cgroup BPF + audit (root).
    Full,
    /// Landlock alone.
    Unprivileged,
}

/// What a session starts with.
#[derive(Clone, Copy, Debug)]
pub struct StartOptions<'a> {
    /// The plan's name.
    pub plan: &'a str,
    /// The start step (else the plan's only start step).
    pub step: Option<&'a str>,
    /// Where to append decision records.
    pub audit: Option<&'a Path>,
    /// How to enforce.
    pub mode: Mode,
    /// The session id.
    pub id: &'a str,
    /// An OpenTelemetry collector to send decision records to.
    pub otlp: Option<&'a str>,
    /// The DNS server the resolver forwards to (else resolv.conf's).
    pub resolver: Option<std::net::SocketAddr>,
    /// The oldest Landlock ABI accepted (`--min-abi`, 4 to 7).
    pub min_abi: u8,
}

/// A running session.
pub struct Session {
    image: Image,
    plan: u32,
    step: u32,
    visited: Vec<bool>,
    kern: Option<Kernel>,
    domain: StepDomain,
    filter: Vec<SockFilter>,
    cmds: Commands,
    reporter: Reporter,
    sink: Sink,
    started: Instant,
    id: String,
    pending_records: Vec<Record>,
    nearest: events::NearestCache,
    supervised: supervised::Supervised,
    revisions: revision::Revisions,
    /// Notices produced outside a pump (a plan load reads the old plan's
    /// last decisions), delivered by the next one.
    late_notices: Vec<Notice>,
    /// The session's private temporary directory (full mode).
    tmp: Option<tmp::SessionTmp>,
    /// The session's resolver (full mode).
    dns: Option<dns::Resolver>,
    /// The Landlock level the session runs at.
    level: domain::Level,
    /// Whether the kernel loads BPF LSM programs (probed at start).
    lsm: kapl_runtime::lsm_layer::LsmProbe,
}

/// The host's name, for records (empty if the kernel does not say).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl Session {
    /// Checks the kernel, loads the programs and enters the start step.
    /// A refusal leaves nothing behind: the step is checked and its ruleset
    /// built before any kernel object exists. With `pin`, the session is
    /// pinned to that objective and holds no plan (`image` is not used):
    /// commands are refused until [`Session::load_plan`].
    pub fn start(
        image: Image,
        o: StartOptions<'_>,
        pin: Option<revision::Pinned>,
    ) -> Result<Session, RunError> {
        let (image, plan_name) = match &pin {
            Some(p) => (p.no_plan_image(), "(none)"),
            None => (image, o.plan),
        };
        let (plan_idx, plan) = step::plan(&image, plan_name)?;
        let start = step::start(plan, o.step)?;
        kernel::simulated_landlock()?;
        let level = domain::preflight(o.min_abi)?;
        // The private temporary directory first: before any thread starts
        // (a new mount namespace), and before the walk (its rules name it).
        let tmp = match o.mode {
            Mode::Full => Some(tmp::SessionTmp::create(o.id)?),
            Mode::Unprivileged => None,
        };
        let domain = step_domain::build(plan, start)?;
        let mut sink = match o.audit {
            Some(p) => Sink::open(p).map_err(|source| SessionError::AuditFile {
                path: p.to_path_buf(),
                source,
            })?,
            None => Sink::none(),
        };
        let origin = Origin {
            session: o.id.to_string(),
            host: host_name(),
            uid: sys::getuid(),
        };
        if let Some(url) = o.otlp {
            sink.otlp = Some(crate::otlp::Exporter::start(url, &origin)?);
        }
        let reporter = Reporter::new(origin, plan_idx);
        if level.abi < kapl_runtime::kernel_level::FULL {
            // The audit file says itself, first, what it cannot contain.
            sink.write(&reporter.level(
                level.abi,
                level.kernel,
                level.min,
                matches!(o.mode, Mode::Full),
                std::time::SystemTime::now(),
            ));
        }
        // The kernel objects last: a refusal above leaves none behind.
        let kern = match o.mode {
            Mode::Unprivileged => None,
            Mode::Full => Some(Kernel::set_up(plan, o.id, level.abi)?),
        };
        // Loaded once and dropped: nothing of it stays behind.
        let lsm = match o.mode {
            Mode::Full => crate::lsm_probe::probe(),
            Mode::Unprivileged => kapl_runtime::lsm_layer::LsmProbe::NotTried(
                "--unprivileged: loading BPF needs root".into(),
            ),
        };
        let dns = match o.mode {
            Mode::Unprivileged => None,
            Mode::Full => {
                let upstream = o.resolver.unwrap_or_else(|| {
                    std::fs::read_to_string("/etc/resolv.conf")
                        .ok()
                        .and_then(|t| dns::upstream_of(&t))
                        // glibc's default without a nameserver line.
                        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 53)))
                });
                Some(dns::Resolver::open(upstream).map_err(SessionError::Resolver)?)
            }
        };
        let mut visited = vec![false; plan.steps.len()];
        visited[start as usize] = true;
        let mut s = Session {
            image,
            plan: plan_idx,
            step: start,
            visited,
            kern,
            domain,
            filter: seccomp::filter(),
            cmds: Commands::default(),
            reporter,
            sink,
            started: Instant::now(),
            id: o.id.to_string(),
            pending_records: Vec::new(),
            nearest: events::NearestCache::default(),
            supervised: supervised::Supervised::default(),
            revisions: revision::Revisions {
                loaded: pin.is_none(),
                pinned: pin,
                ..revision::Revisions::default()
            },
            late_notices: Vec::new(),
            tmp,
            dns,
            level,
            lsm,
        };
        s.attach_step()?;
        Ok(s)
    }

    /// What the session's Landlock level loses, for the start report and
    /// `status` (empty at ABI 7).
    pub fn level_report(&self) -> Vec<String> {
        kapl_runtime::kernel_level::report(
            self.level.abi,
            self.level.kernel,
            self.level.min,
            self.kern.is_some(),
        )
    }

    /// Whether the BPF LSM precision layer could run, for the start report
    /// and `status` (its programs are never attached yet).
    pub fn lsm_report(&self) -> String {
        kapl_runtime::lsm_layer::line(&self.lsm)
    }

    fn plan(&self) -> &Plan {
        &self.image.plans[self.plan as usize]
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The current step's name.
    pub fn step_name(&self) -> &str {
        self.plan()
            .steps
            .get(self.step as usize)
            .map_or("?", |s| s.name.as_str())
    }

    /// The plan's name.
    pub fn plan_name(&self) -> &str {
        &self.plan().name
    }

    /// The enforcement mode.
    pub fn mode(&self) -> Mode {
        if self.kern.is_some() {
            Mode::Full
        } else {
            Mode::Unprivileged
        }
    }

    /// Denials reported so far.
    pub fn denies(&self) -> u64 {
        self.reporter.denies
    }

    /// The precision report of the current step: where enforcement is
    /// narrower than the grants as written (`KAPL_VERBOSE` lists the
    /// standard library's narrowings one by one).
    pub fn precision(&self) -> Vec<String> {
        let verbose = std::env::var_os("KAPL_VERBOSE").is_some();
        precision::lines(
            &self.image,
            self.plan,
            self.step,
            &self.domain.findings,
            verbose,
        )
    }

    /// The current step's Landlock rules, readable.
    pub fn rule_list(&self) -> Vec<String> {
        self.domain
            .rules
            .iter()
            .map(|r| {
                format!(
                    "{} {} [{}]",
                    if r.subtree { "beneath" } else { "file" },
                    r.path.display(),
                    domain::access::names(r.access).join(",")
                )
            })
            .collect()
    }

    /// Moves to step `name`, ending the previous step's commands. Returns
    /// how many processes were ended. A refused move changes nothing: the
    /// move is checked and the new ruleset built first.
    pub fn switch(&mut self, name: &str) -> Result<usize, RunError> {
        self.plan_loaded()?;
        let i = step::check_move(self.plan(), self.step, &self.visited, name)?;
        let dom = step_domain::build(self.plan(), i)?;
        let ended = self.end_step_processes()?;
        self.step = i;
        self.visited[i as usize] = true;
        self.domain = dom;
        self.attach_step()?;
        Ok(ended)
    }

    /// Decision events lost so far, in total.
    pub fn lost(&self) -> u64 {
        self.losses().total()
    }

    /// Losses by channel. A counter that cannot be read counts as
    /// `u64::MAX`: never a silent 0.
    pub fn losses(&self) -> Losses {
        let mut l = self
            .kern
            .as_ref()
            .map_or_else(Losses::default, Kernel::losses);
        l.audit_file = self.sink.unwritten();
        l.otlp = self.sink.undelivered();
        l
    }

    /// How many times a killed watchdog was replaced.
    pub fn watchdog_restarts(&self) -> u64 {
        self.kern.as_ref().map_or(0, |k| k.watchdog_restarts)
    }

    /// The denial count as the summaries say it: below Landlock ABI 7 it
    /// counts only the refusals that were reported.
    fn denials(&self) -> String {
        let n = self.reporter.denies;
        if self.level.abi < kapl_runtime::kernel_level::FULL {
            format!(
                "{n} denials reported (Landlock refuses without reporting at ABI {})",
                self.level.abi
            )
        } else {
            format!("{n} denials")
        }
    }

    /// The session described (`kapl-run status`): one line, then for a
    /// session pinned to an objective one line per plan load.
    pub fn status(&self) -> String {
        let mut s = match self.pinned() {
            None => format!(
                "session {}: plan {}, step {}, {}, {}, watchdog restarted {} times",
                self.id,
                self.plan_name(),
                self.step_name(),
                self.denials(),
                self.losses(),
                self.watchdog_restarts()
            ),
            Some(p) => {
                let under = match p.intent_name() {
                    Some(i) => format!("objective {} intent {i}", p.objective_name()),
                    None => format!("objective {}", p.objective_name()),
                };
                let plan = if self.revisions.loaded {
                    format!(
                        "plan {} revision {}, step {}",
                        self.plan_name(),
                        self.revisions.current,
                        self.step_name()
                    )
                } else {
                    "no plan loaded".to_string()
                };
                format!(
                    "session {}: {under} ({} {}), {plan}, {}, {}, watchdog restarted {} times",
                    self.id,
                    p.file,
                    p.image.identity_hex().unwrap_or_default(),
                    self.denials(),
                    self.losses(),
                    self.watchdog_restarts()
                )
            }
        };
        for l in self.level_report() {
            s.push_str(&format!("\n  kernel: {l}"));
        }
        s.push_str(&format!("\n  precision layer: {}", self.lsm_report()));
        let params = &self.pinned().map_or(&self.image, |p| &p.image).meta.params;
        if !params.is_empty() {
            let shown: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("\n  parameters: {}", shown.join(", ")));
        }
        if let Some(t) = &self.tmp {
            s.push_str(&format!(
                "\n  temporary directory: {} (really {})",
                tmp::MOUNT,
                t.real().display()
            ));
        }
        if let Some(r) = &self.dns
            && !self.plan().names.is_empty()
        {
            let [refused, answered, failed] = r.counts;
            s.push_str(&format!(
                "\n  resolver: forwards to {} ({} addresses learned now; {answered} queries answered, {refused} refused, {failed} failed)",
                r.upstream(),
                r.learned.len(),
            ));
        }
        for r in self.history() {
            let rev = r
                .revision
                .map_or_else(|| "refused".to_string(), |n| format!("revision {n}"));
            let why = r.why.lines().next().unwrap_or("");
            s.push_str(&format!(
                "\n  {} {rev}: {} (plan {}, sha256 {}): {why}",
                r.time,
                r.file,
                if r.plan.is_empty() { "?" } else { &r.plan },
                r.sha256.get(..16).unwrap_or(&r.sha256),
            ));
        }
        s
    }

    /// Ends everything: kills the session's processes, detaches the
    /// programs, removes the cgroups, restores audit. Returns a summary.
    pub fn stop(mut self) -> String {
        // Every record queued so far is read (and written) before the end.
        let _ = self.sync();
        let ended = self.end_step_processes().unwrap_or(0);
        // The commands still running end with the session: their end
        // records close the file's story.
        self.reap_all();
        // The exporter's last batch goes out (bounded wait) before the
        // counts are taken.
        let undelivered = self.sink.otlp.take().map(crate::otlp::Exporter::finish);
        let mut losses = self.losses();
        losses.otlp = undelivered.unwrap_or(0);
        if losses.total() > 0 {
            // The audit file says itself that it is incomplete (written if
            // it can be; the summary below carries the counts).
            let rec = self.reporter.lost(losses, std::time::SystemTime::now());
            let _ = self.sink.write(&rec);
        }
        if let Some(k) = self.kern.take() {
            k.tear_down();
        }
        format!(
            "session {} ended: plan {}, last step {}, {} processes ended, {}, {} first allows reported, {}, {:.1}s",
            self.id,
            self.plan_name(),
            self.step_name(),
            ended,
            self.denials(),
            self.reporter.allows,
            losses,
            self.started.elapsed().as_secs_f64()
        )
    }
}
