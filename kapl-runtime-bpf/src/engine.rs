//! The session engine (stage: runtime, enforcement and reporting).
//!
//! Input: a verified image, a plan, a start step. Output: commands started
//! under the current step (cgroup + BPF + Landlock + capabilities +
//! seccomp), step switches that end the previous step's commands, and a
//! stream of decisions with their authority chain (JSON Lines to the audit
//! file, readable deny lines for the command's stderr).
//!
//! Single-threaded: the caller polls [`Engine::event_fds`] and calls
//! [`Engine::pump`]; no locks, no shared state.

use crate::audit::{AuditHold, AuditReader, Record};
use crate::bpf::{Event, EventOp, NO_GRANT, NetEnforcer, StepLinks};
use crate::cgroup::{self, Cgroup};
use crate::domain::{self, StepDomain, WalkLimits, access};
use crate::plan::{self, StepAutomaton};
use crate::seccomp::{self, SockFilter};
use crate::spawn;
use kapl_image::{DfaKind, Image, NetOp, Plan};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Runtime errors, each with a stable code (KAPL08xx).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// KAPL0801: Landlock missing or too old.
    #[error("KAPL0801: {0}")]
    Landlock(String),
    /// KAPL0802: cgroup v2 unusable.
    #[error("KAPL0802: {0}")]
    Cgroup(String),
    /// KAPL0803: BPF programs cannot be loaded or attached.
    #[error("KAPL0803: {0}")]
    Bpf(String),
    /// KAPL0804: audit netlink unavailable.
    #[error("KAPL0804: {0}")]
    Audit(String),
    /// KAPL0805: the image is unreadable or fails verification.
    #[error("KAPL0805: {0}")]
    Image(String),
    /// KAPL0806: no such plan or step, or a refused step change.
    #[error("KAPL0806: {0}")]
    Step(String),
    /// KAPL0807: the command could not be started.
    #[error("KAPL0807: {0}")]
    Spawn(String),
    /// KAPL0808: session control failed.
    #[error("KAPL0808: {0}")]
    Session(String),
    /// The command's program may not be executed in this step (reported
    /// like any other denial; exit status 126).
    #[error("{0}")]
    Denied(String),
}

/// Decision events that could not be reported, by where they were lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Losses {
    /// Network and exec events: ring-buffer reservations that failed
    /// (exact, this session's programs only).
    pub ring_buffer: u64,
    /// Audit records dropped at the session's audit socket (receive buffer
    /// full; exact).
    pub audit_socket: u64,
    /// Audit records the kernel dropped host-wide while the session ran
    /// (backlog full; exact for the host, an upper bound for the session).
    pub audit_kernel: u64,
    /// Decision records the runtime could not write to the `--audit` file
    /// (exact; e.g. the disk is full).
    pub audit_file: u64,
}

impl std::fmt::Display for Losses {
    /// `N events lost, M audit records lost (S at the audit socket, K in
    /// the kernel's backlog; host-wide)`: events are this session's ring
    /// buffer; the audit channels carry every audit record of the host, so
    /// another session's storm can show here (an upper bound, never less).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events lost, {} audit records lost ({} at the audit socket, {} in the kernel's backlog; host-wide)",
            self.ring_buffer,
            self.audit_socket.saturating_add(self.audit_kernel),
            self.audit_socket,
            self.audit_kernel
        )?;
        if self.audit_file > 0 {
            write!(
                f,
                ", {} records not written to the audit file",
                self.audit_file
            )?;
        }
        Ok(())
    }
}

/// The `--audit` file: one JSON record per line. A record that cannot be
/// written (disk full, I/O error) is counted (reported with the session's
/// losses) and any part of it written is cut off again, so the file stays
/// whole lines.
struct AuditFile {
    file: File,
    /// Length after the last whole record.
    len: u64,
    /// Records not written.
    unwritten: u64,
}

impl AuditFile {
    fn open(p: &Path) -> std::io::Result<AuditFile> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)?;
        let len = file.metadata()?.len();
        Ok(AuditFile {
            file,
            len,
            unwritten: 0,
        })
    }

    /// Appends `rec` as one line; on the first failure, the reason (for a
    /// notice).
    fn write(&mut self, rec: &Value) -> Option<String> {
        let line = format!("{rec}\n");
        match self.file.write_all(line.as_bytes()) {
            Ok(()) => {
                self.len += line.len() as u64;
                None
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                self.unwritten += 1;
                (self.unwritten == 1).then(|| {
                    format!("kapl-run: the audit file cannot be written ({e}): decision records are being lost; the session summary counts them")
                })
            }
        }
    }
}

/// How the engine enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Landlock + cgroup BPF + audit (root).
    Full,
    /// Landlock alone.
    Unprivileged,
}

struct Kernel {
    bpf: NetEnforcer,
    session_cg: Cgroup,
    step_cg: Option<(Cgroup, StepLinks)>,
    audit: AuditReader,
    _hold: AuditHold,
    watchdog: Option<cgroup::Watchdog>,
}

struct Cmd {
    pid: i32,
    pidfd: OwnedFd,
    step: u32,
    cgroup: Option<Cgroup>,
    domain: Option<String>,
}

/// One line for a command's stderr.
#[derive(Clone, Debug)]
pub struct Notice {
    /// The command it concerns (None: the session).
    pub cmd: Option<u64>,
    /// The text.
    pub line: String,
    /// A denial (else an allow).
    pub deny: bool,
}

/// The engine.
pub struct Engine {
    image: Image,
    plan: u32,
    step: u32,
    visited: Vec<bool>,
    kern: Option<Kernel>,
    domain: StepDomain,
    filter: Vec<SockFilter>,
    cmds: HashMap<u64, Cmd>,
    next_cmd: u64,
    cg_cmd: HashMap<u64, u64>,
    domain_cmd: HashMap<String, u64>,
    audit_out: Option<AuditFile>,
    seen: HashSet<(u32, String)>,
    /// Counters: denies, allows reported.
    pub denies: u64,
    /// Allows reported.
    pub allows: u64,
    started: Instant,
    id: String,
    pending_records: Vec<Record>,
    lingering: Vec<Cgroup>,
    /// Programs session processes executed (tgid → command, path), so a
    /// network decision still names the program after the process exited.
    exe_seen: HashMap<u32, (Option<u64>, String)>,
    watchdog_restarts: u64,
    /// (step, right bit, path) -> nearest grant, for denial storms: the
    /// search walks the automaton and dominated a storm's cost.
    nearest_cache: HashMap<(u32, u64, Vec<u8>), Nearest>,
}

/// A nearest grant and why it is the nearest.
type Nearest = Option<(u32, String)>;

/// Entries of [`Engine`]'s nearest-grant cache before it is emptied.
const NEAREST_CACHE: usize = 4096;

fn ll(e: domain::DomainError) -> RunError {
    RunError::Landlock(e.to_string())
}

impl Engine {
    /// Checks the kernel, loads the programs and enters the start step.
    pub fn start(
        image: Image,
        plan_name: &str,
        step: Option<&str>,
        audit: Option<&Path>,
        mode: Mode,
        id: &str,
    ) -> Result<Engine, RunError> {
        let (plan_idx, plan) = image.plan(plan_name).ok_or_else(|| {
            let names: Vec<&str> = image.plans.iter().map(|p| p.name.as_str()).collect();
            RunError::Step(format!(
                "no plan `{plan_name}` in the image (plans: {})",
                names.join(", ")
            ))
        })?;
        let start = match step {
            Some(s) => {
                let i = plan.step_index(s).ok_or_else(|| {
                    RunError::Step(format!("plan `{plan_name}` has no step `{s}`"))
                })?;
                let st = &plan.steps[i as usize];
                if !st.after.is_empty() {
                    let after: Vec<&str> = st
                        .after
                        .iter()
                        .filter_map(|a| plan.steps.get(*a as usize).map(|x| x.name.as_str()))
                        .collect();
                    return Err(RunError::Step(format!(
                        "a session cannot start in step `{s}`: it comes after {}",
                        after.join(", ")
                    )));
                }
                i
            }
            None => {
                let starts: Vec<(u32, &kapl_image::Step)> = plan.start_steps().collect();
                match starts.as_slice() {
                    [(i, _)] => *i,
                    [] => {
                        return Err(RunError::Step(format!(
                            "plan `{plan_name}` has no start step"
                        )));
                    }
                    many => {
                        let names: Vec<&str> = many.iter().map(|(_, s)| s.name.as_str()).collect();
                        return Err(RunError::Step(format!(
                            "plan `{plan_name}` has several start steps; pick one with --step ({})",
                            names.join(", ")
                        )));
                    }
                }
            }
        };
        // KAPL_SIMULATE_MISSING=landlock,cgroup,bpf,audit makes a check fail
        // as if the kernel lacked the piece (tests of the fail-closed paths;
        // it can only refuse, never weaken).
        let missing = std::env::var("KAPL_SIMULATE_MISSING").unwrap_or_default();
        let sim = |what: &str| missing.split(',').any(|m| m.trim() == what);
        if sim("landlock") {
            return Err(ll(domain::DomainError::Unsupported(
                "simulated: landlock_create_ruleset: ENOSYS".into(),
            )));
        }
        domain::preflight().map_err(ll)?;
        // Before any kernel object exists: a refused step leaves nothing.
        let domain = build_domain(plan, start)?;
        let kern = match mode {
            Mode::Unprivileged => None,
            Mode::Full => {
                if sim("cgroup") {
                    return Err(RunError::Cgroup(
                        cgroup::CgroupError::NotMounted.to_string(),
                    ));
                }
                let root = cgroup::preflight().map_err(|e| RunError::Cgroup(e.to_string()))?;
                let maps = kapl_image::bpf::NetMaps::of(plan);
                if sim("bpf") {
                    return Err(RunError::Bpf(
                        crate::bpf::BpfError::Load("simulated: BPF_PROG_LOAD: EPERM".into())
                            .to_string(),
                    ));
                }
                let bpf = NetEnforcer::load_with_unix(&maps, &plan::unix_tables(plan))
                    .map_err(|e| RunError::Bpf(e.to_string()))?;
                if sim("audit") {
                    return Err(RunError::Audit(
                        crate::audit::AuditError::Protocol(
                            "simulated: NETLINK_AUDIT unavailable".into(),
                        )
                        .to_string(),
                    ));
                }
                let hold = AuditHold::acquire().map_err(|e| RunError::Audit(e.to_string()))?;
                let audit = AuditReader::open().map_err(|e| RunError::Audit(e.to_string()))?;
                let session_cg = Cgroup::create(&root, &format!("kapl-{id}"))
                    .map_err(|e| RunError::Cgroup(e.to_string()))?;
                let watchdog =
                    cgroup::Watchdog::start(session_cg.path(), crate::audit::release_hold)
                        .map_err(|e| RunError::Cgroup(e.to_string()))?;
                Some(Kernel {
                    bpf,
                    session_cg,
                    step_cg: None,
                    audit,
                    _hold: hold,
                    watchdog: Some(watchdog),
                })
            }
        };
        let audit_out = match audit {
            Some(p) => Some(AuditFile::open(p).map_err(|e| {
                RunError::Session(format!("cannot open audit file {}: {e}", p.display()))
            })?),
            None => None,
        };
        let nsteps = plan.steps.len();
        let mut e = Engine {
            image,
            plan: plan_idx,
            step: start,
            visited: vec![false; nsteps],
            kern,
            domain,
            filter: seccomp::filter(),
            cmds: HashMap::new(),
            next_cmd: 1,
            cg_cmd: HashMap::new(),
            domain_cmd: HashMap::new(),
            audit_out,
            seen: HashSet::new(),
            denies: 0,
            allows: 0,
            started: Instant::now(),
            id: id.to_string(),
            pending_records: Vec::new(),
            lingering: Vec::new(),
            exe_seen: HashMap::new(),
            watchdog_restarts: 0,
            nearest_cache: HashMap::new(),
        };
        e.visited[start as usize] = true;
        e.attach_step()?;
        Ok(e)
    }

    fn plan(&self) -> &Plan {
        &self.image.plans[self.plan as usize]
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

    fn attach_step(&mut self) -> Result<(), RunError> {
        let name = format!("step-{}-{}", self.step, sanitize(self.step_name()));
        if let Some(k) = self.kern.as_mut() {
            let cg = Cgroup::create(k.session_cg.path(), &name)
                .map_err(|e| RunError::Cgroup(e.to_string()))?;
            let links = k
                .bpf
                .attach(cg.fd())
                .map_err(|e| RunError::Bpf(e.to_string()))?;
            k.step_cg = Some((cg, links));
        }
        Ok(())
    }

    /// The precision report of the current step: where enforcement is
    /// narrower than the grants as written, one line per grant and reason.
    pub fn precision(&self) -> Vec<String> {
        let all = self.precision_all();
        if std::env::var_os("KAPL_VERBOSE").is_some() {
            return all.into_iter().map(|(_, l)| l).collect();
        }
        let lib = all.iter().filter(|(l, _)| *l).count();
        let mut out: Vec<String> = all
            .into_iter()
            .filter(|(l, _)| !l)
            .map(|(_, l)| l)
            .collect();
        if lib > 0 {
            out.push(format!("{lib} narrowings of standard-library grants (symbolic links, files that must exist); KAPL_VERBOSE=1 lists them"));
        }
        out
    }

    /// Every precision line, flagged when it concerns a standard-library
    /// grant.
    fn precision_all(&self) -> Vec<(bool, String)> {
        let plan = self.plan();
        let mut out = Vec::new();
        if let Some(st) = plan.steps.get(self.step as usize) {
            for p in &st.landlock.precision {
                out.push((
                    self.is_lib(p.grant),
                    format!("{}: {}", self.grant_ref(p.grant), flat(&p.note)),
                ));
            }
        }
        for ((g, kind), n) in &self.domain.counts {
            let examples: Vec<String> = self
                .domain
                .notes
                .iter()
                .filter(|(x, _)| x == g)
                .flat_map(|(_, ns)| ns.iter())
                .filter(|nn| narrowing_kind(nn) == *kind)
                .map(narrowing_path)
                .collect();
            let more = if *n > examples.len() {
                format!(" and {} more", n - examples.len())
            } else {
                String::new()
            };
            let what = match kind {
                0 => "only entries that exist now are granted in",
                1 => "symbolic links are not followed:",
                2 => "creation/removal cannot be granted for only some names in",
                3 => "hard-linked files get no rule (a rule would grant their other names too):",
                4 => "deeper than the rule builder's walk bound, nothing is granted below",
                5 => "the step reached the rule builder's limit of rules; no rule for",
                _ => {
                    "files cannot be moved or linked between directories where the step may delete but not read:"
                }
            };
            out.push((
                self.is_lib(*g),
                format!(
                    "{}: {what} {}{more}",
                    self.grant_ref(*g),
                    examples.join(", ")
                ),
            ));
        }
        out
    }

    fn is_lib(&self, g: u32) -> bool {
        self.image
            .provenance(g)
            .is_some_and(|p| p.file.starts_with("<stdlib"))
    }

    fn grant_ref(&self, g: u32) -> String {
        match self.image.provenance(g) {
            Some(p) => format!("grant {g} ({}:{})", p.file, p.grant.source.line),
            None => format!("grant {g}"),
        }
    }

    /// Moves to step `name`, ending the previous step's commands. Returns
    /// how many processes were ended.
    pub fn switch(&mut self, name: &str) -> Result<usize, RunError> {
        let plan = self.plan();
        let i = plan.step_index(name).ok_or_else(|| {
            let names: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
            RunError::Step(format!(
                "plan `{}` has no step `{name}` (steps: {})",
                plan.name,
                names.join(", ")
            ))
        })?;
        let st = &plan.steps[i as usize];
        let missing: Vec<&str> = st
            .after
            .iter()
            .filter(|a| !self.visited.get(**a as usize).copied().unwrap_or(false))
            .filter_map(|a| plan.steps.get(*a as usize).map(|s| s.name.as_str()))
            .collect();
        if !missing.is_empty() {
            return Err(RunError::Step(format!(
                "step `{name}` is refused: it comes after {} which has not been active; the session stays in step `{}`",
                missing.join(", "),
                self.step_name()
            )));
        }
        if i == self.step {
            return Err(RunError::Step(format!(
                "step `{name}` is already the current step"
            )));
        }
        // Build the new domain first: a failure changes nothing.
        let dom = build_domain(self.plan(), i)?;
        let ended = self.end_step_processes()?;
        self.step = i;
        self.visited[i as usize] = true;
        self.domain = dom;
        self.attach_step()?;
        Ok(ended)
    }

    fn end_step_processes(&mut self) -> Result<usize, RunError> {
        let mut ended = 0;
        if let Some(k) = self.kern.as_mut() {
            if let Some((cg, links)) = k.step_cg.take() {
                ended = cg.count_procs_recursive().unwrap_or(0);
                cg.kill_all().map_err(|e| RunError::Cgroup(e.to_string()))?;
                drop(links);
                for c in self.cmds.values_mut() {
                    if let Some(ccg) = c.cgroup.take() {
                        let _ = k.bpf.clear_cgroup(ccg.id());
                    }
                }
                for ccg in self.lingering.drain(..) {
                    let _ = k.bpf.clear_cgroup(ccg.id());
                }
                cg.remove().map_err(|e| RunError::Cgroup(e.to_string()))?;
            }
        } else {
            for c in self.cmds.values() {
                // SAFETY: pidfd_send_signal on a pidfd we own.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        c.pidfd.as_raw_fd(),
                        libc::SIGKILL,
                        0,
                        0,
                    )
                };
                if r == 0 {
                    ended += 1;
                }
            }
        }
        Ok(ended)
    }

    /// Starts a command under the current step.
    pub fn spawn(
        &mut self,
        argv: &[Vec<u8>],
        env: &[Vec<u8>],
        cwd: Option<&[u8]>,
        stdio: [RawFd; 3],
    ) -> Result<u64, RunError> {
        let Some(arg0) = argv.first() else {
            return Err(RunError::Spawn("no command given".into()));
        };
        let program = resolve(arg0, env, cwd).ok_or_else(|| {
            RunError::Spawn(format!(
                "{}: command not found",
                String::from_utf8_lossy(arg0)
            ))
        })?;
        let id = self.next_cmd;
        self.next_cmd += 1;
        let step = self.step;
        let mut cg = None;
        if let Some(k) = self.kern.as_mut() {
            let Some((scg, _)) = k.step_cg.as_ref() else {
                return Err(RunError::Cgroup("no step cgroup".into()));
            };
            let c = Cgroup::create(scg.path(), &format!("cmd-{id}"))
                .map_err(|e| RunError::Cgroup(e.to_string()))?;
            k.bpf
                .set_cgroup_step(c.id(), step)
                .map_err(|e| RunError::Bpf(e.to_string()))?;
            self.cg_cmd.insert(c.id(), id);
            cg = Some(c);
        }
        let child = spawn::spawn(&spawn::Command {
            program: &program,
            argv,
            envp: env,
            stdio,
            cwd,
            cgroup: cg.as_ref().map(Cgroup::raw_fd),
            landlock_ruleset: self.domain.fd.as_raw_fd(),
            seccomp: &self.filter,
            privileged: self.kern.is_some(),
        })
        .map_err(|e| {
            if let spawn::SpawnError::Child {
                stage: spawn::ChildStage::Exec,
                source,
            } = &e
                && matches!(
                    source.raw_os_error(),
                    Some(libc::EACCES) | Some(libc::EPERM)
                )
                && plan::fs_grant(self.plan(), step, &program, access::EXECUTE).is_none()
            {
                let object = String::from_utf8_lossy(&program).into_owned();
                let comm = object.rsplit('/').next().unwrap_or("").to_string();
                let nearest = plan::nearest_fs(self.plan(), step, &program, access::EXECUTE);
                let mut notes = Vec::new();
                self.record(
                    &mut notes,
                    None,
                    step,
                    None,
                    &comm,
                    None,
                    "exec (execute)",
                    &object,
                    None,
                    nearest,
                    "landlock",
                );
                return RunError::Denied(notes.pop().map(|n| n.line).unwrap_or_default());
            }
            RunError::Spawn(format!("{}: {e}", String::from_utf8_lossy(arg0)))
        })?;
        self.cmds.insert(
            id,
            Cmd {
                pid: child.pid,
                pidfd: child.pidfd,
                step,
                cgroup: cg,
                domain: None,
            },
        );
        Ok(id)
    }

    /// The pidfd of a running command.
    pub fn pidfd(&self, cmd: u64) -> Option<RawFd> {
        self.cmds.get(&cmd).map(|c| c.pidfd.as_raw_fd())
    }

    /// Reaps a command whose pidfd became readable; returns its exit code.
    pub fn reap(&mut self, cmd: u64) -> Option<i32> {
        let c = self.cmds.get(&cmd)?;
        spawn::wait_exit(&c.pidfd).ok()
    }

    /// Forgets a finished command.
    /// Ends a command and everything it started (its cgroup), e.g. when
    /// its client disconnected.
    pub fn kill_cmd(&mut self, cmd: u64) {
        let Some(c) = self.cmds.get(&cmd) else {
            return;
        };
        match &c.cgroup {
            Some(cg) => {
                let _ = cg.kill_all();
            }
            None => {
                // SAFETY: pidfd_send_signal on a pidfd we own.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        c.pidfd.as_raw_fd(),
                        libc::SIGKILL,
                        0,
                        0,
                    );
                }
            }
        }
    }

    /// Commands that leave processes behind keep their cgroup (and their
    /// step's authority) until the step ends; an empty one is removed now,
    /// so a long session leaks no cgroups or map entries.
    pub fn forget(&mut self, cmd: u64) {
        let Some(mut c) = self.cmds.remove(&cmd) else {
            return;
        };
        // Entries of finished commands, and of processes no command
        // claimed, go: the map stays as small as the running commands.
        let cmds = &self.cmds;
        self.exe_seen
            .retain(|_, (k, _)| k.is_some_and(|k| cmds.contains_key(&k)));
        let Some(cg) = c.cgroup.take() else {
            return;
        };
        if cg.populated().unwrap_or(true) {
            self.lingering.push(cg);
            return;
        }
        if let Some(k) = self.kern.as_mut() {
            let _ = k.bpf.clear_cgroup(cg.id());
        }
        self.cg_cmd.remove(&cg.id());
        if let Some(d) = c.domain.take() {
            self.domain_cmd.remove(&d);
        }
        let _ = cg.remove();
    }

    /// Fds to poll for decisions (and the watchdog's pidfd: see
    /// [`Engine::pump`]).
    pub fn event_fds(&self) -> Vec<RawFd> {
        match &self.kern {
            Some(k) => {
                let mut v = vec![k.bpf.events_fd(), k.audit.fd()];
                v.extend(k.watchdog.as_ref().map(cgroup::Watchdog::fd));
                v
            }
            None => Vec::new(),
        }
    }

    /// A session outlives its watchdog only while the supervisor lives: a
    /// killed watchdog is replaced at once. If no new one can be started,
    /// the session's processes are ended (fail closed: no command runs
    /// without the guarantee that it dies with the supervisor), and the
    /// next pump tries again.
    fn rearm_watchdog(&mut self) {
        let Some(k) = self.kern.as_mut() else {
            return;
        };
        if !k.watchdog.as_ref().is_none_or(cgroup::Watchdog::exited) {
            return;
        }
        k.watchdog = None;
        match cgroup::Watchdog::start(k.session_cg.path(), crate::audit::release_hold) {
            Ok(w) => {
                k.watchdog = Some(w);
                self.watchdog_restarts += 1;
            }
            Err(_) => {
                let _ = k.session_cg.kill_all();
            }
        }
    }

    /// [`plan::nearest_fs`], remembered (bounded): a storm of one denial
    /// searches once.
    fn nearest_fs_cached(&mut self, step: u32, path: &[u8], bit: u64) -> Nearest {
        let key = (step, bit, path.to_vec());
        if let Some(n) = self.nearest_cache.get(&key) {
            return n.clone();
        }
        let n = plan::nearest_fs(self.plan(), step, path, bit);
        if self.nearest_cache.len() >= NEAREST_CACHE {
            self.nearest_cache.clear();
        }
        self.nearest_cache.insert(key, n.clone());
        n
    }

    /// How many times a killed watchdog was replaced.
    pub fn watchdog_restarts(&self) -> u64 {
        self.watchdog_restarts
    }

    /// Reads pending decisions, writes them to the audit file, and returns
    /// the lines to show.
    pub fn pump(&mut self, flush: bool) -> Vec<Notice> {
        self.rearm_watchdog();
        let mut out = Vec::new();
        let Some(k) = self.kern.as_mut() else {
            return out;
        };
        let mut evs = Vec::new();
        k.bpf.drain(&mut evs);
        let mut recs = std::mem::take(&mut self.pending_records);
        recs.extend(k.audit.poll(flush).unwrap_or_default());
        for e in evs {
            match e {
                Event::Net(n) => self.on_net(&n, &mut out),
                Event::Exec(x) => self.on_exec(&x, &mut out),
                Event::Unix(u) => self.on_unix(&u, &mut out),
            }
        }
        for r in recs {
            match r {
                Record::Domain(d) => {
                    if let Some(pid) = d.pid
                        && let Some((id, _)) = self.cmds.iter().find(|(_, c)| c.pid == pid)
                    {
                        let id = *id;
                        self.domain_cmd.insert(d.domain.clone(), id);
                        if let Some(c) = self.cmds.get_mut(&id) {
                            c.domain = Some(d.domain.clone());
                        }
                    }
                }
                Record::Denial(d) => self.on_denial(&d, &mut out),
                Record::Seccomp(r) => self.on_seccomp(&r, &mut out),
            }
        }
        out
    }

    /// Like [`Engine::pump`] with flush, after making sure every audit
    /// record the kernel queued so far has arrived (a barrier, not a sleep).
    pub fn sync(&mut self) -> Vec<Notice> {
        let Some(k) = self.kern.as_mut() else {
            return Vec::new();
        };
        let recs = k
            .audit
            .barrier(Duration::from_millis(500))
            .unwrap_or_default();
        self.pending_records.extend(recs);
        self.pump(true)
    }

    /// Decision events lost so far (see [`Engine::losses`]), in total.
    pub fn lost(&self) -> u64 {
        let l = self.losses();
        l.ring_buffer
            .saturating_add(l.audit_socket)
            .saturating_add(l.audit_kernel)
            .saturating_add(l.audit_file)
    }

    /// Losses by channel. A counter that cannot be read counts as
    /// `u64::MAX`: never a silent 0.
    pub fn losses(&self) -> Losses {
        let audit_file = self.audit_out.as_ref().map_or(0, |a| a.unwritten);
        match &self.kern {
            Some(k) => Losses {
                ring_buffer: k.bpf.lost().unwrap_or(u64::MAX),
                audit_socket: k.audit.dropped().unwrap_or(u64::MAX),
                audit_kernel: k.audit.kernel_lost().unwrap_or(u64::MAX),
                audit_file,
            },
            None => Losses {
                audit_file,
                ..Losses::default()
            },
        }
    }

    fn chain(&self, step: u32) -> (String, String, Option<String>, String) {
        let plan = self.plan();
        let step_name = plan
            .steps
            .get(step as usize)
            .map_or("?", |s| s.name.as_str())
            .to_string();
        let intent = plan
            .intent
            .and_then(|i| self.image.intents.get(i as usize))
            .map(|i| i.name.clone());
        let obj = self
            .image
            .objectives
            .get(plan.objective as usize)
            .map_or_else(String::new, |o| o.name.clone());
        (step_name, plan.name.clone(), intent, obj)
    }

    fn grant_json(&self, g: u32) -> Value {
        match self.image.provenance(g) {
            Some(p) => json!({
                "id": g,
                "source": format!("{}:{}:{}", p.file, p.grant.source.line, p.grant.source.column),
                "site": format!("{}:{}", self.image.meta.sources.get(p.grant.site.file as usize).map_or("?", String::as_str), p.grant.site.line),
                "text": p.grant.text,
                "step": p.step.map(|s| s.name.clone()),
            }),
            None => Value::Null,
        }
    }

    fn grant_brief(&self, g: u32) -> String {
        match self.image.provenance(g) {
            Some(p) => format!(
                "grant {g} `{}` ({}:{})",
                flat(&p.grant.text),
                p.file,
                p.grant.source.line
            ),
            None => format!("grant {g}"),
        }
    }

    #[expect(clippy::too_many_arguments, reason = "one record's fields")]
    fn record(
        &mut self,
        out: &mut Vec<Notice>,
        cmd: Option<u64>,
        step: u32,
        pid: Option<i32>,
        comm: &str,
        exe: Option<String>,
        operation: &str,
        object: &str,
        grant: Option<u32>,
        nearest: Option<(u32, String)>,
        mechanism: &str,
    ) {
        let (step_name, plan, intent, objective) = self.chain(step);
        let deny = grant.is_none();
        if !deny {
            let key = (grant.unwrap_or(NO_GRANT), format!("{operation} {object}"));
            if !self.seen.insert(key) {
                return;
            }
            self.allows += 1;
        } else {
            self.denies += 1;
        }
        let why = if deny {
            Some(format!(
                "no grant of step {step_name} (plan {plan}{}, objective {objective}) covers it",
                intent
                    .as_ref()
                    .map_or(String::new(), |i| format!(", intent {i}"))
            ))
        } else {
            None
        };
        let rec = json!({
            "time": now_rfc3339(),
            "session": self.id,
            "pid": pid,
            "comm": comm,
            "exe": exe,
            "operation": operation,
            "object": object,
            "verdict": if deny { "deny" } else { "allow" },
            "grant": grant.map(|g| self.grant_json(g)),
            "step": step_name,
            "plan": plan,
            "intent": intent,
            "objective": objective,
            "reason": why,
            "nearest": nearest.as_ref().map(|(g, w)| { let mut v = self.grant_json(*g); if let Value::Object(m) = &mut v { m.insert("why".into(), json!(w)); } v }),
            "mechanism": mechanism,
        });
        if let Some(line) = self.audit_out.as_mut().and_then(|f| f.write(&rec)) {
            out.push(Notice {
                cmd: None,
                line,
                deny: true,
            });
        }
        let line = if deny {
            let mut l = format!(
                "denied: {comm} {operation} {object} — {}",
                why.unwrap_or_default()
            );
            if let Some((g, w)) = &nearest {
                l.push_str(&format!("; nearest: {} — {w}", self.grant_brief(*g)));
            }
            l
        } else {
            let g = grant.unwrap_or(NO_GRANT);
            format!(
                "allowed: {comm} {operation} {object} — {}, step {step_name}, plan {plan}{}, objective {objective}",
                self.grant_brief(g),
                intent
                    .as_ref()
                    .map_or(String::new(), |i| format!(", intent {i}"))
            )
        };
        out.push(Notice { cmd, line, deny });
    }

    /// The command (by its cgroup) and the step a BPF event comes from;
    /// the current step when the program did not know the cgroup.
    fn origin(&self, h: &crate::bpf::EventHead) -> (Option<u64>, u32) {
        let cmd = self.cg_cmd.get(&h.cgroup).copied();
        let step = if h.step == crate::bpf::NO_STEP {
            self.step
        } else {
            h.step
        };
        (cmd, step)
    }

    /// The program `tgid` runs: from `/proc`, else (the process is gone)
    /// the last exec seen for it.
    fn exe_of(&self, tgid: u32) -> Option<String> {
        std::fs::read_link(format!("/proc/{tgid}/exe"))
            .ok()
            .map(|p| p.display().to_string())
            .or_else(|| self.exe_seen.get(&tgid).map(|(_, e)| e.clone()))
    }

    fn on_net(&mut self, n: &crate::bpf::NetEvent, out: &mut Vec<Notice>) {
        let (cmd, step) = self.origin(&n.head);
        let addr: IpAddr = match n.addr.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(n.addr),
        };
        let proto = match (n.sotype, n.proto) {
            (_, 6) | (1, 0) => "tcp",
            (_, 17) | (2, 0) => "udp",
            _ => "other",
        };
        let (object, nearest) = if n.op == EventOp::Socket {
            (
                format!("family={} type={} protocol={}", n.family, n.sotype, n.proto),
                None,
            )
        } else {
            let obj = match addr {
                IpAddr::V4(_) => format!("{addr}:{} ({proto})", n.port),
                IpAddr::V6(_) => format!("[{addr}]:{} ({proto})", n.port),
            };
            let op = if n.op == EventOp::Bind {
                NetOp::Bind
            } else {
                NetOp::Connect
            };
            let near = if n.allowed {
                None
            } else {
                plan::nearest_net(self.plan(), step, op, addr, n.port)
            };
            (obj, near)
        };
        let grant = (n.allowed && n.grant != NO_GRANT).then_some(n.grant);
        let exe = self.exe_of(n.head.tgid);
        self.record(
            out,
            cmd,
            step,
            Some(n.head.tgid as i32),
            &n.comm.clone(),
            exe,
            n.op.as_str(),
            &object,
            grant,
            nearest,
            "bpf",
        );
    }

    /// A pathname UNIX connect/send: allowed by the step's `fs write` grant
    /// on the socket path, or refused (see src/unix.rs for why a granted
    /// path can still be refused).
    fn on_unix(&mut self, u: &crate::unix::UnixEvent, out: &mut Vec<Notice>) {
        use crate::unix::Reason;
        let (cmd, step) = self.origin(&u.head);
        let path = String::from_utf8_lossy(&u.path).into_owned();
        let object = format!("{path} (unix)");
        let grant = (u.allowed && u.grant != NO_GRANT).then_some(u.grant);
        let written = plan::fs_grant(self.plan(), step, &u.path, access::WRITE_FILE);
        let nearest = match u.reason {
            Reason::Granted => None,
            Reason::NoGrant => plan::nearest_fs(self.plan(), step, &u.path, access::WRITE_FILE),
            Reason::Creatable => written.map(|g| (g, "it grants write on this path, but the path or a directory on it is a name a step may create (a symbolic link planted there would redirect the connection); UNIX socket paths are decided as written".to_string())),
            Reason::Relative => written.map(|g| (g, "the path is relative: socket paths must be absolute".to_string())),
            Reason::NotNormal => written.map(|g| (g, "the path has an empty, `.` or `..` segment".to_string())),
            Reason::MagicLink => written.map(|g| (g, "the path is under /proc or /dev/fd, whose magic links resolve to any open descriptor".to_string())),
            Reason::Tables => None,
        };
        let exe = self.exe_of(u.head.tgid);
        // Programs probe for optional services that are not there (glibc
        // tries nscd's socket on every user lookup): such a refusal is
        // recorded in the audit file but not shown on the command's
        // stderr; the connect would have failed anyway.
        let absent = !u.allowed
            && u.path.first() == Some(&b'/')
            && std::fs::symlink_metadata(std::ffi::OsStr::from_bytes(&u.path))
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
        let mut hidden = Vec::new();
        self.record(
            if absent { &mut hidden } else { out },
            cmd,
            step,
            Some(u.head.tgid as i32),
            &u.comm.clone(),
            exe,
            if u.send { "send" } else { "connect" },
            &object,
            grant,
            nearest,
            "bpf",
        );
    }

    fn on_exec(&mut self, x: &crate::bpf::ExecEvent, out: &mut Vec<Notice>) {
        let cmd = self.cg_cmd.get(&x.head.cgroup).copied();
        let mut path = x.path.clone();
        // The tracepoint copies at most EXEC_PATH - 1 bytes of the path: a
        // path that fills them may be cut short, and a prefix must never be
        // attributed to a grant.
        let truncated = path.len() >= crate::bpf::EXEC_PATH_MAX - 1;
        let mut resolved = !truncated;
        if (path.first() != Some(&b'/') || truncated)
            && let Ok(p) = std::fs::read_link(format!("/proc/{}/exe", x.head.tgid))
        {
            path = p.as_os_str().as_bytes().to_vec();
            resolved = true;
        }
        let grant = if resolved {
            plan::fs_grant(self.plan(), x.head.step, &path, access::EXECUTE)
        } else {
            None
        };
        let mut object = crate::audit::escape_bytes(&path);
        if !resolved {
            object.push_str("... (truncated)");
        }
        self.exe_seen.insert(x.head.tgid, (cmd, object.clone()));
        let step = x.head.step;
        let nearest = if grant.is_none() {
            Some((u32::MAX, "the kernel allowed it (e.g. as an interpreter or through a link) but no exec grant names this path".into()))
        } else {
            None
        };
        let nearest = nearest.filter(|(g, _)| *g != u32::MAX);
        if grant.is_none() {
            // Not attributable: report as allowed-by-kernel, unattributed.
            let (step_name, plan, intent, objective) = self.chain(step);
            let rec = json!({
                "time": now_rfc3339(), "session": self.id, "pid": x.head.tgid, "comm": x.comm,
                "exe": object, "operation": "exec", "object": object, "verdict": "allow",
                "grant": Value::Null, "step": step_name, "plan": plan, "intent": intent,
                "objective": objective, "reason": "executed; no exec grant names this path (reached through a link or as an interpreter)",
                "nearest": Value::Null, "mechanism": "tracepoint",
            });
            if let Some(line) = self.audit_out.as_mut().and_then(|f| f.write(&rec)) {
                out.push(Notice {
                    cmd: None,
                    line,
                    deny: true,
                });
            }
            return;
        }
        self.record(
            out,
            cmd,
            step,
            Some(x.head.tgid as i32),
            &x.comm.clone(),
            Some(object.clone()),
            "exec",
            &object,
            grant,
            nearest,
            "tracepoint",
        );
    }

    /// The command a process of this session belongs to: a command's own
    /// pid, a pid seen executing in the session, else the `cmd-K` cgroup
    /// the process is in (read while it still exists).
    fn cmd_of_pid(&self, pid: i32) -> Option<u64> {
        if let Some((id, _)) = self.cmds.iter().find(|(_, c)| c.pid == pid) {
            return Some(*id);
        }
        // A process seen executing in the session (exec tracepoint).
        if let Ok(tgid) = u32::try_from(pid)
            && let Some((Some(id), _)) = self.exe_seen.get(&tgid)
        {
            return Some(*id);
        }
        let k = self.kern.as_ref()?;
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let rel = cg.lines().find_map(|l| l.strip_prefix("0::"))?;
        let root = k.session_cg.path().parent()?;
        let path = root.join(rel.trim_start_matches('/'));
        if !path.starts_with(k.session_cg.path()) {
            return None;
        }
        let ino = std::fs::metadata(&path).ok()?.ino();
        self.cg_cmd.get(&ino).copied()
    }

    fn on_seccomp(&mut self, r: &crate::audit::SeccompRecord, out: &mut Vec<Notice>) {
        let Some(cmd) = self.cmd_of_pid(r.pid) else {
            return; // another program's seccomp log
        };
        let step = self.cmds.get(&cmd).map_or(self.step, |c| c.step);
        let name = seccomp::call_name(r.syscall)
            .map_or_else(|| format!("syscall {}", r.syscall), str::to_string);
        self.record(
            out,
            Some(cmd),
            step,
            Some(r.pid),
            &r.comm,
            r.exe.clone(),
            "syscall (seccomp)",
            &name,
            None,
            None,
            "seccomp",
        );
    }

    fn on_denial(&mut self, d: &crate::audit::Denial, out: &mut Vec<Notice>) {
        let Some(&cmd) = self.domain_cmd.get(&d.domain) else {
            return; // another program's Landlock domain
        };
        let step = self.cmds.get(&cmd).map_or(self.step, |c| c.step);
        let get = |k: &str| {
            d.fields
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.clone())
        };
        let comm = d.comm.clone().unwrap_or_else(|| "?".into());
        for b in &d.blockers {
            let (operation, object, nearest) = if let Some(r) = b.strip_prefix("fs.") {
                let dev_ino = || {
                    format!(
                        "dev={} ino={}",
                        get("dev").unwrap_or_default(),
                        get("ino").unwrap_or_default()
                    )
                };
                // The kernel logs `<too_long>` for a path longer than its
                // buffer: name the object by device and inode instead.
                let path = match get("path") {
                    Some(p) if p != "<too_long>" => p,
                    Some(p) => format!("{p} {}", dev_ino()),
                    None => dev_ino(),
                };
                let bit = access::from_name(r).unwrap_or(0);
                let op = match plan::right_of_access(bit) {
                    Some((DfaKind::Exec, _)) => "exec".to_string(),
                    Some((DfaKind::Fs, c)) => kapl_image::FsRight::ALL
                        .get(c)
                        .map_or("fs", |r| r.as_str())
                        .to_string(),
                    None => r.to_string(),
                };
                let op = format!("{op} ({r})");
                let near = self.nearest_fs_cached(step, &crate::audit::unescape_bytes(&path), bit);
                (op, path, near)
            } else if let Some(r) = b.strip_prefix("net.") {
                let bind = r.starts_with("bind");
                let (a, p) = if bind {
                    ("saddr", "src")
                } else {
                    ("daddr", "dest")
                };
                let port: u16 = get(p).and_then(|v| v.parse().ok()).unwrap_or(0);
                let addr: Option<IpAddr> = get(a)
                    .and_then(|v| v.parse().ok())
                    .map(kapl_image::bpf::normalize);
                let op = if bind { NetOp::Bind } else { NetOp::Connect };
                match addr {
                    Some(addr) => {
                        let obj = match addr {
                            IpAddr::V4(_) => format!("{addr}:{port} (tcp)"),
                            IpAddr::V6(_) => format!("[{addr}]:{port} (tcp)"),
                        };
                        let near = plan::nearest_net(self.plan(), step, op, addr, port);
                        (op.as_str().to_string(), obj, near)
                    }
                    None => (op.as_str().to_string(), format!("port {port} (tcp)"), None),
                }
            } else if b == "ptrace" {
                // Landlock refuses ptrace access (and /proc/PID/... of a
                // process outside the domain) and names the target.
                let obj = get("opid")
                    .map(|p| format!("pid {p} ({})", get("ocomm").unwrap_or_default()))
                    .unwrap_or_default();
                ("ptrace (scope)".to_string(), obj, None)
            } else if let Some(r) = b.strip_prefix("scope.") {
                let obj = get("opid")
                    .map(|p| format!("pid {p} ({})", get("ocomm").unwrap_or_default()))
                    .or_else(|| get("path"))
                    .unwrap_or_default();
                (format!("{r} (scope)"), obj, None)
            } else {
                (b.clone(), String::new(), None)
            };
            self.record(
                out,
                Some(cmd),
                step,
                d.pid,
                &comm,
                d.exe.clone(),
                &operation,
                &object,
                None,
                nearest,
                "landlock",
            );
        }
    }

    /// Ends everything: kills the session's processes, detaches the
    /// programs, removes the cgroups, restores audit. Returns a summary.
    pub fn stop(mut self) -> String {
        // Every record queued so far is read (and written) before the end.
        let _ = self.sync();
        let ended = self.end_step_processes().unwrap_or(0);
        let losses = self.losses();
        let lost = self.lost();
        if lost > 0
            && let Some(f) = self.audit_out.as_mut()
        {
            // The audit file says itself that it is incomplete.
            let rec = json!({
                "time": now_rfc3339(), "session": self.id, "verdict": "lost",
                "lost": {"ring_buffer_events": losses.ring_buffer, "audit_socket_records": losses.audit_socket, "audit_kernel_records": losses.audit_kernel, "audit_file_records": losses.audit_file},
                "reason": "decision events the kernel could not deliver (ring buffer, audit socket or audit backlog full; the kernel's count is host-wide); each lost audit record may be a denial",
            });
            // Written if it can be; the summary below carries the counts.
            let _ = f.write(&rec);
        }
        if let Some(mut k) = self.kern.take() {
            drop(k.watchdog.take());
            let path = k.session_cg.path().to_path_buf();
            drop(k.bpf);
            let _ = k.session_cg.remove();
            let _ = cgroup::remove_tree(&path);
        }
        format!(
            "session {} ended: plan {}, last step {}, {} processes ended, {} denials, {} first allows reported, {}, {:.1}s",
            self.id,
            self.plan_name(),
            self.step_name(),
            ended,
            self.denies,
            self.allows,
            losses,
            self.started.elapsed().as_secs_f64()
        )
    }
}

impl Engine {
    /// The current step's Landlock rules, readable.
    pub fn rule_list(&self) -> Vec<String> {
        self.domain
            .rules
            .iter()
            .map(|r| {
                let names: Vec<&str> = (0..16)
                    .map(|i| 1u64 << i)
                    .filter(|b| r.access & b != 0)
                    .map(access::name)
                    .collect();
                format!(
                    "{} {} [{}]",
                    if r.subtree { "beneath" } else { "file" },
                    r.path.display(),
                    names.join(",")
                )
            })
            .collect()
    }
}

/// Builds the Landlock ruleset of `step` (walk + rules + TCP wall).
pub fn build_domain(plan: &Plan, step: u32) -> Result<StepDomain, RunError> {
    let fs_a = StepAutomaton::new(&plan.fs, step).with_plan_fs(&plan.fs);
    let ex_a = StepAutomaton::new(&plan.exec, step).with_plan_fs(&plan.fs);
    let mut w = domain::Walk::default();
    domain::walk_into(
        &fs_a,
        &mut w,
        &plan::prefixes(plan, step, DfaKind::Fs),
        WalkLimits::default(),
    )
    .map_err(ll)?;
    domain::walk_into(
        &ex_a,
        &mut w,
        &plan::prefixes(plan, step, DfaKind::Exec),
        WalkLimits::default(),
    )
    .map_err(ll)?;
    runtime_state_guard(plan, step, &w.rules)?;
    let mut d = domain::build_walked(
        std::mem::take(&mut w.rules),
        &plan::tcp_ports(plan, step),
        &|p| domain::PathAutomaton::creatable(&fs_a, p),
    )
    .map_err(ll)?;
    for p in &d.refused_links {
        w.refused_link(&fs_a, p);
        w.refused_link(&ex_a, p);
    }
    d.notes = w.narrowed.into_iter().collect();
    d.counts = w.counts;
    Ok(d)
}

/// Refuses a step whose Landlock rules would let its commands change what
/// the runtime stands on, which Landlock cannot except from a rule above
/// it: write access to a cgroup file system (writing a pid to a
/// `cgroup.procs` outside the session moves a command out of its cgroup,
/// its network hooks and its step's end), and write, create or delete
/// access to kapl-run's state directory (the session registry and the
/// audit state shared by sessions).
fn runtime_state_guard(
    plan: &Plan,
    step: u32,
    rules: &[domain::AddedRule],
) -> Result<(), RunError> {
    const WRITE: u64 = access::WRITE_FILE | access::TRUNCATE;
    let changes = WRITE
        | access::MAKE_REG
        | access::MAKE_DIR
        | access::MAKE_SYM
        | access::REMOVE_FILE
        | access::REMOVE_DIR
        | access::REFER;
    let mut guarded: Vec<(PathBuf, u64, &str)> = cgroup::cgroup_mounts()
        .into_iter()
        .map(|m| {
            (
                m,
                WRITE,
                "the cgroup file system mounted at {}, where a command could move itself out of its cgroup (and so out of its network hooks and its step's end)",
            )
        })
        .collect();
    guarded.push((
        crate::control::state_dir(),
        changes,
        "kapl-run's state directory {} (the session registry and the audit state every session shares)",
    ));
    for r in rules {
        let hit = guarded.iter().find(|(m, rights, _)| {
            r.access & rights != 0
                && (r.path.starts_with(m) || (r.subtree && m.starts_with(&r.path)))
        });
        if let Some((m, rights, what)) = hit {
            let path = r.path.as_os_str().as_bytes();
            let bit = 1u64 << (r.access & rights).trailing_zeros();
            let grant = plan::fs_grant(plan, step, path, bit)
                .map_or_else(String::new, |g| format!(" (grant {g})"));
            let name = plan
                .steps
                .get(step as usize)
                .map_or("?", |s| s.name.as_str());
            return Err(RunError::Step(format!(
                "step `{name}` is refused: its write access to {}{grant} reaches {}; narrow the grant, e.g. `except \"{}/**\"`",
                r.path.display(),
                what.replace("{}", &m.display().to_string()),
                m.display()
            )));
        }
    }
    Ok(())
}

/// Source text on one line (grants spanning lines are shown joined).
fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn narrowing_kind(n: &domain::Narrowing) -> u8 {
    match n {
        domain::Narrowing::PerEntry(_) => 0,
        domain::Narrowing::Symlink(_) => 1,
        domain::Narrowing::ParentRight(..) => 2,
        domain::Narrowing::HardLink(_) => 3,
        domain::Narrowing::TooDeep(_) => 4,
        domain::Narrowing::TooMany(_) => 5,
        domain::Narrowing::NoRefer(_) => 6,
    }
}

fn narrowing_path(n: &domain::Narrowing) -> String {
    match n {
        domain::Narrowing::PerEntry(p)
        | domain::Narrowing::Symlink(p)
        | domain::Narrowing::ParentRight(p, _)
        | domain::Narrowing::HardLink(p)
        | domain::Narrowing::TooDeep(p)
        | domain::Narrowing::TooMany(p)
        | domain::Narrowing::NoRefer(p) => p.display().to_string(),
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Finds the program like execvp: a name with a slash is taken as is
/// (relative to `cwd`), else searched in the command's PATH.
pub fn resolve(arg0: &[u8], env: &[Vec<u8>], cwd: Option<&[u8]>) -> Option<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if arg0.contains(&b'/') {
        if arg0.first() == Some(&b'/') {
            return Some(arg0.to_vec());
        }
        let base = cwd
            .map(|c| PathBuf::from(std::ffi::OsStr::from_bytes(c)))
            .or_else(|| std::env::current_dir().ok())?;
        return Some(
            base.join(std::ffi::OsStr::from_bytes(arg0))
                .as_os_str()
                .as_bytes()
                .to_vec(),
        );
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix(b"PATH="))
        .map(<[u8]>::to_vec)
        .unwrap_or_else(|| b"/usr/local/bin:/usr/bin:/bin".to_vec());
    for dir in path.split(|b| *b == b':') {
        if dir.is_empty() {
            continue;
        }
        let p = Path::new(std::ffi::OsStr::from_bytes(dir)).join(std::ffi::OsStr::from_bytes(arg0));
        if is_exec(&p) {
            return Some(p.as_os_str().as_bytes().to_vec());
        }
    }
    None
}

fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let ms = d.subsec_millis();
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let dd = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}
