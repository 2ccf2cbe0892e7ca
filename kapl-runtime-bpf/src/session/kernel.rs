//! The session's kernel objects: the BPF programs, the audit reader, the
//! session's cgroup and its watchdog, and each step's cgroup with the
//! programs attached (stage: runtime, step set-up and teardown).
//!
//! `KAPL_SIMULATE_MISSING=landlock,cgroup,bpf,audit` makes a check fail as
//! if the kernel lacked the piece (tests of the fail-closed paths; it can
//! only refuse, never weaken).

use super::Session;
use crate::audit::{self, AuditError, AuditHold, AuditReader};
use crate::bpf::{BpfError, NetEnforcer, StepLinks};
use crate::cgroup::{self, Cgroup, CgroupError};
use crate::domain::DomainError;
use crate::error::RunError;
use crate::sys;
use crate::unix::UnixTables;
use kapl_image::Plan;
use kapl_runtime::losses::Losses;

/// Whether `KAPL_SIMULATE_MISSING` names `what`.
fn simulated(what: &str) -> bool {
    std::env::var("KAPL_SIMULATE_MISSING")
        .unwrap_or_default()
        .split(',')
        .any(|m| m.trim() == what)
}

/// Fails as a kernel without Landlock would, when simulated.
pub fn simulated_landlock() -> Result<(), RunError> {
    if simulated("landlock") {
        return Err(
            DomainError::Unsupported("simulated: landlock_create_ruleset: ENOSYS".into()).into(),
        );
    }
    Ok(())
}

/// What a full-mode session holds in the kernel.
pub struct Kernel {
    pub(super) bpf: NetEnforcer,
    pub(super) session_cg: Cgroup,
    pub(super) step_cg: Option<(Cgroup, StepLinks)>,
    pub(super) audit: AuditReader,
    _hold: AuditHold,
    pub(super) watchdog: Option<cgroup::Watchdog>,
    /// How many times a killed watchdog was replaced.
    pub(super) watchdog_restarts: u64,
}

impl Kernel {
    /// Checks cgroup v2, loads and fills the BPF programs, switches audit
    /// on and joins its log, and creates the session's cgroup with its
    /// watchdog. Each failure names the missing piece; what was set up
    /// before it is dropped again.
    /// `abi` is the Landlock level of the session's domains (below 6 the
    /// UNIX socket hooks refuse abstract addresses themselves).
    pub fn set_up(plan: &Plan, id: &str, abi: u8) -> Result<Kernel, RunError> {
        if simulated("cgroup") {
            return Err(CgroupError::NotMounted.into());
        }
        let root = cgroup::preflight()?;
        let maps = kapl_image::bpf::NetMaps::of(plan);
        if simulated("bpf") {
            return Err(BpfError::Load("simulated: BPF_PROG_LOAD: EPERM".into()).into());
        }
        let bpf = NetEnforcer::load_with_unix(&maps, &UnixTables::of(plan).at_abi(abi))?;
        if simulated("audit") {
            return Err(AuditError::Protocol("simulated: NETLINK_AUDIT unavailable".into()).into());
        }
        let hold = AuditHold::acquire()?;
        let audit = AuditReader::open()?;
        let session_cg = Cgroup::create(&root, &kapl_runtime::proc_cgroup::session_dir(id))?;
        let watchdog = cgroup::Watchdog::start(session_cg.path(), audit::release_hold)?;
        Ok(Kernel {
            bpf,
            session_cg,
            step_cg: None,
            audit,
            _hold: hold,
            watchdog: Some(watchdog),
            watchdog_restarts: 0,
        })
    }

    /// Losses of the kernel channels (the audit file's are the sink's).
    pub fn losses(&self) -> Losses {
        Losses {
            ring_buffer: self.bpf.lost().unwrap_or(u64::MAX),
            audit_socket: self.audit.dropped().unwrap_or(u64::MAX),
            audit_kernel: self.audit.kernel_lost().unwrap_or(u64::MAX),
            audit_file: 0,
            otlp: 0,
        }
    }

    /// Stops the watchdog, frees the programs, removes the session's
    /// cgroups; audit goes back as found when the hold drops.
    pub fn tear_down(mut self) {
        drop(self.watchdog.take());
        let path = self.session_cg.path().to_path_buf();
        drop(self.bpf);
        let _ = self.session_cg.remove();
        let _ = cgroup::remove_tree(&path);
    }
}

/// A cgroup directory name made of the step's name.
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

impl Session {
    /// Creates the current step's cgroup and attaches the programs to it.
    pub(super) fn attach_step(&mut self) -> Result<(), RunError> {
        let name = format!("step-{}-{}", self.step, sanitize(self.step_name()));
        self.dns_arm()?;
        if let Some(k) = self.kern.as_mut() {
            let cg = Cgroup::create(k.session_cg.path(), &name)?;
            let links = k.bpf.attach(cg.fd())?;
            k.step_cg = Some((cg, links));
        }
        Ok(())
    }

    /// Ends every process of the current step (its cgroup's `cgroup.kill`,
    /// or each command's pidfd without cgroups) and detaches its programs.
    pub(super) fn end_step_processes(&mut self) -> Result<usize, RunError> {
        self.cmds.end_with_step();
        let Some(k) = self.kern.as_mut() else {
            return Ok(self
                .cmds
                .pidfds()
                .filter(|fd| sys::pidfd_send_signal(fd, libc::SIGKILL).is_ok())
                .count());
        };
        let Some((cg, links)) = k.step_cg.take() else {
            return Ok(0);
        };
        let ended = cg.count_procs_recursive().unwrap_or(0);
        cg.kill_all()?;
        drop(links);
        for id in self.cmds.release_cgroups() {
            let _ = k.bpf.clear_cgroup(id);
        }
        cg.remove()?;
        Ok(ended)
    }

    /// A session outlives its watchdog only while the supervisor lives: a
    /// killed watchdog is replaced at once. If no new one can be started,
    /// the session's processes are ended (fail closed: no command runs
    /// without the guarantee that it dies with the supervisor), and the
    /// next pump tries again.
    pub(super) fn rearm_watchdog(&mut self) {
        let Some(k) = self.kern.as_mut() else {
            return;
        };
        if !k.watchdog.as_ref().is_none_or(cgroup::Watchdog::exited) {
            return;
        }
        k.watchdog = None;
        match cgroup::Watchdog::start(k.session_cg.path(), audit::release_hold) {
            Ok(w) => {
                k.watchdog = Some(w);
                k.watchdog_restarts += 1;
            }
            Err(_) => {
                let _ = k.session_cg.kill_all();
            }
        }
    }
}
