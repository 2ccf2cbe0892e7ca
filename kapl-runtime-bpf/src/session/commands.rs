//! Commands: started under the current step, reaped, and ended with their
//! step or their client (stage: runtime, process lifecycle).
//!
//! Each command gets its own cgroup below the step's (`cmd-K`), so every
//! decision the BPF programs report names its command, and its own entry
//! in the programs' cgroup → step map.
//!
//! The audit file gets a `command_started` record when a command starts and
//! a `command_ended` record when it is reaped (or when the session ends with
//! it still running). A command the kernel refuses to execute gets both,
//! with its denial between them and the end saying `refused`; so does one
//! that fails to start after it got its id (`not_started`).

use super::Session;
use crate::cgroup::Cgroup;
use crate::domain::access;
use crate::error::{CommandError, RunError};
use crate::spawn::{self, ChildStage, SpawnError};
use crate::sys;
use kapl_runtime::record::{AuditRecord, CommandExit, Mechanism, Target};
use kapl_runtime::report::{CommandStart, Decision, Notice};
use kapl_runtime::{attribution, elf, narrowing};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One running command.
struct Cmd {
    pid: i32,
    pidfd: OwnedFd,
    step: u32,
    cgroup: Option<Cgroup>,
    domain: Option<String>,
    /// When it started (for its end record's duration).
    started: Instant,
    /// Its end record is written.
    ended: bool,
    /// Its step (or the session) ended while it ran: its processes were
    /// killed with the step's.
    killed_with_step: bool,
}

/// The session's commands, and what maps kernel reports to them.
#[derive(Default)]
pub struct Commands {
    cmds: HashMap<u64, Cmd>,
    next: u64,
    /// Command cgroup id → command.
    pub(super) by_cgroup: HashMap<u64, u64>,
    /// Landlock domain id → command.
    pub(super) by_domain: HashMap<String, u64>,
    /// Cgroups of finished commands that left processes behind: they keep
    /// their step's authority until the step ends.
    lingering: Vec<Cgroup>,
    /// Programs session processes executed (tgid → command, path), so a
    /// network decision still names the program after the process exited.
    pub(super) exe_seen: HashMap<u32, (Option<u64>, String)>,
}

impl Commands {
    /// The pidfds of the running commands.
    pub fn pidfds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.cmds.values().map(|c| c.pidfd.as_fd())
    }

    /// Marks every running command as ended with its step (their
    /// processes are being killed with the step's).
    pub fn end_with_step(&mut self) {
        for c in self.cmds.values_mut() {
            c.killed_with_step = true;
        }
    }

    /// Lets go of every command cgroup (the step's end removes them):
    /// their ids, to clear from the programs' map.
    pub fn release_cgroups(&mut self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .cmds
            .values_mut()
            .filter_map(|c| c.cgroup.take())
            .map(|cg| cg.id())
            .collect();
        ids.extend(self.lingering.drain(..).map(|cg| cg.id()));
        ids
    }

    /// The command whose process created Landlock domain `domain`.
    pub fn claim_domain(&mut self, pid: i32, domain: &str) {
        if let Some((id, c)) = self.cmds.iter_mut().find(|(_, c)| c.pid == pid) {
            c.domain = Some(domain.to_string());
            self.by_domain.insert(domain.to_string(), *id);
        }
    }

    /// The step command `cmd` runs in.
    pub fn step_of(&self, cmd: u64) -> Option<u32> {
        self.cmds.get(&cmd).map(|c| c.step)
    }

    /// The command a process is: a command's own pid, or a pid seen
    /// executing in the session.
    pub fn by_pid(&self, pid: i32) -> Option<u64> {
        if let Some((id, _)) = self.cmds.iter().find(|(_, c)| c.pid == pid) {
            return Some(*id);
        }
        let tgid = u32::try_from(pid).ok()?;
        self.exe_seen.get(&tgid).and_then(|(id, _)| *id)
    }
}

/// The live file system for [`elf::refused_starter`]: the first bytes of
/// the regular file a path resolves to (never a FIFO or device, which
/// could block or have side effects).
struct LiveFiles;

impl elf::Files for LiveFiles {
    fn head(&self, path: &[u8]) -> Option<Vec<u8>> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let p = Path::new(OsStr::from_bytes(path));
        if !std::fs::metadata(p).ok()?.is_file() {
            return None;
        }
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(p)
            .ok()?;
        if !f.metadata().ok()?.is_file() {
            return None;
        }
        let mut head = Vec::new();
        f.take(elf::HEAD_MAX as u64).read_to_end(&mut head).ok()?;
        Some(head)
    }
}

/// Finds the program like execvp: a name with a slash is taken as is
/// (relative to `cwd`), else searched in the command's PATH.
pub fn resolve(arg0: &[u8], env: &[Vec<u8>], cwd: Option<&[u8]>) -> Option<Vec<u8>> {
    let is_exec = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if arg0.contains(&b'/') {
        if arg0.first() == Some(&b'/') {
            return Some(arg0.to_vec());
        }
        let base = cwd
            .map(|c| PathBuf::from(OsStr::from_bytes(c)))
            .or_else(|| std::env::current_dir().ok())?;
        return Some(
            base.join(OsStr::from_bytes(arg0))
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
    path.split(|b| *b == b':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(OsStr::from_bytes(dir)).join(OsStr::from_bytes(arg0)))
        .find(|p| is_exec(p))
        .map(|p| p.as_os_str().as_bytes().to_vec())
}

/// How a reaped process ended, as its end record says.
fn exit_of(e: sys::Exit) -> CommandExit {
    match e {
        sys::Exit::Code(code) => CommandExit::Exited { code },
        sys::Exit::Signal(signal) => CommandExit::Killed {
            signal,
            name: kapl_runtime::record::signal_name(signal).map(str::to_string),
        },
    }
}

impl Session {
    /// Starts a command under the current step. A program the step may not
    /// execute is reported as a denial ([`RunError::Denied`], exit 126).
    pub fn spawn(
        &mut self,
        argv: &[Vec<u8>],
        env: &[Vec<u8>],
        cwd: Option<&[u8]>,
        stdio: [RawFd; 3],
    ) -> Result<u64, RunError> {
        self.plan_loaded()?;
        let arg0 = argv.first().ok_or(CommandError::Empty)?;
        let shown = String::from_utf8_lossy(arg0).into_owned();
        let program =
            resolve(arg0, env, cwd).ok_or_else(|| CommandError::NotFound(shown.clone()))?;
        self.cmds.next += 1;
        let id = self.cmds.next;
        let started = Instant::now();
        let start = CommandStart {
            cmd: id,
            pid: None,
            step: self.step,
            argv,
            program: &program,
            cwd,
        };
        match self.start_cmd(&start, env, stdio, shown) {
            Ok(pid) => {
                let mut notes = Vec::new();
                self.write_start(
                    &mut notes,
                    &CommandStart {
                        pid: Some(pid),
                        ..start
                    },
                );
                self.late_notices.extend(notes);
                Ok(id)
            }
            Err(e) => {
                let mut notes = Vec::new();
                let exit = match &e {
                    // The start record and the denial are written.
                    RunError::Denied(_) => CommandExit::Refused,
                    other => {
                        self.write_start(&mut notes, &start);
                        CommandExit::NotStarted {
                            error: other.to_string(),
                        }
                    }
                };
                self.write_end(&mut notes, id, None, start.step, exit, started, false);
                self.late_notices.extend(notes);
                Err(e)
            }
        }
    }

    /// Writes a command's start record.
    fn write_start(&mut self, out: &mut Vec<Notice>, c: &CommandStart<'_>) {
        let rec = self
            .reporter
            .command_started(&self.image, c, std::time::SystemTime::now());
        self.write_record(out, &AuditRecord::CommandStarted(Box::new(rec)));
    }

    /// Writes a command's end record.
    #[expect(clippy::too_many_arguments, reason = "the fields of one record")]
    fn write_end(
        &mut self,
        out: &mut Vec<Notice>,
        cmd: u64,
        pid: Option<i32>,
        step: u32,
        exit: CommandExit,
        started: Instant,
        with_step: bool,
    ) {
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let rec = self.reporter.command_ended(
            &self.image,
            cmd,
            pid,
            step,
            exit,
            ms,
            with_step,
            std::time::SystemTime::now(),
        );
        self.write_record(out, &AuditRecord::CommandEnded(Box::new(rec)));
    }

    /// Writes the end record of command `cmd` (once), ended `exit`.
    fn end_cmd(&mut self, cmd: u64, exit: CommandExit) {
        let Some(c) = self.cmds.cmds.get_mut(&cmd) else {
            return;
        };
        if std::mem::replace(&mut c.ended, true) {
            return;
        }
        let (pid, step, started, with_step) = (c.pid, c.step, c.started, c.killed_with_step);
        let mut notes = Vec::new();
        self.write_end(&mut notes, cmd, Some(pid), step, exit, started, with_step);
        self.late_notices.extend(notes);
    }

    /// Reaps every command not reaped yet (the session is ending and has
    /// killed them: each gets up to 200 ms to go) and writes their end
    /// records.
    pub(super) fn reap_all(&mut self) {
        let ids: Vec<u64> = self
            .cmds
            .cmds
            .iter()
            .filter(|(_, c)| !c.ended)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let exit = self.cmds.cmds.get(&id).and_then(|c| {
                let _ = sys::poll_raw(&[c.pidfd.as_raw_fd()], 200);
                sys::try_wait_pidfd(&c.pidfd).ok().flatten()
            });
            self.end_cmd(id, exit.map_or(CommandExit::Unknown, exit_of));
        }
    }

    /// Starts command `c` (its cgroup, then the process): its pid.
    fn start_cmd(
        &mut self,
        c: &CommandStart<'_>,
        env: &[Vec<u8>],
        stdio: [RawFd; 3],
        shown: String,
    ) -> Result<i32, RunError> {
        let (id, step, program, argv, cwd) = (c.cmd, c.step, c.program, c.argv, c.cwd);
        let mut cg = None;
        if let Some(k) = self.kern.as_mut() {
            let Some((scg, _)) = k.step_cg.as_ref() else {
                return Err(crate::cgroup::CgroupError::NoStep.into());
            };
            let c = Cgroup::create(scg.path(), &format!("cmd-{id}"))?;
            k.bpf.set_cgroup_step(c.id(), step)?;
            self.cmds.by_cgroup.insert(c.id(), id);
            cg = Some(c);
        }
        let with_tmp;
        let env = if self.tmp.is_some() {
            with_tmp = super::tmp::with_tmp_vars(env);
            &with_tmp[..]
        } else {
            env
        };
        let child = spawn::spawn(&spawn::Command {
            program,
            argv,
            envp: env,
            stdio,
            cwd,
            cgroup: cg.as_ref().map(Cgroup::raw_fd),
            landlock_ruleset: self.domain.fd.as_raw_fd(),
            landlock_log: self.domain.abi >= 7,
            seccomp: &self.filter,
            // Without session cgroups (--unprivileged) nothing tells the
            // session's processes from others: not replaced (said at start).
            supervise_signals: self.domain.abi < 6 && self.kern.is_some(),
            privileged: self.kern.is_some(),
        })
        .map_err(|source| self.spawn_failed(c, shown, source))?;
        self.supervised
            .listeners
            .push(super::supervised::Listener::new(id, step, child.supervised));
        self.cmds.cmds.insert(
            id,
            Cmd {
                pid: child.pid,
                pidfd: child.pidfd,
                step,
                cgroup: cg,
                domain: None,
                started: Instant::now(),
                ended: false,
                killed_with_step: false,
            },
        );
        Ok(child.pid)
    }

    /// A refused `execve` is a denial like any other, exit status 126:
    /// reported with its nearest grant when no exec grant of the step names
    /// the program, and with the grant that does and why the kernel still
    /// refused when one does (a symbolic link the rule builder does not
    /// follow, or a loader or interpreter the step may not execute). Any
    /// other failure is an error.
    fn spawn_failed(&mut self, c: &CommandStart<'_>, shown: String, e: SpawnError) -> RunError {
        let (step, program) = (c.step, c.program);
        let refused = matches!(
            &e,
            SpawnError::Child { stage: ChildStage::Exec, source }
                if matches!(source.raw_os_error(), Some(libc::EACCES | libc::EPERM))
        );
        if !refused {
            return CommandError::Spawn {
                program: shown,
                source: e,
            }
            .into();
        }
        let narrowed = attribution::fs_grant(self.plan(), step, program, access::EXECUTE)
            .map(|g| (g, self.exec_refused_why(step, g, program)));
        let path = String::from_utf8_lossy(program).into_owned();
        let comm = path.rsplit('/').next().unwrap_or("").to_string();
        let d = Decision {
            cmd: Some(c.cmd),
            step,
            pid: None,
            comm,
            exe: None,
            operation: "exec (execute)".into(),
            target: Target::Program {
                path,
                truncated: false,
            },
            grant: None,
            nearest: attribution::nearest_fs(self.plan(), step, program, access::EXECUTE),
            mechanism: Mechanism::Landlock,
            audit_serial: None,
            narrowed,
            why: None,
        };
        // The command's start record, then its denial (its end follows).
        let mut notes = Vec::new();
        self.write_start(&mut notes, c);
        self.late_notices.append(&mut notes);
        self.emit(&mut notes, d);
        RunError::Denied(Box::new(notes.pop().unwrap_or(Notice {
            cmd: None,
            line: String::new(),
            deny: true,
            record: None,
        })))
    }

    /// Why the kernel refused to execute `program` although grant `g` of
    /// `step` names it: the program got no rule (a symbolic link not
    /// followed, and why), it is not executable at all, or the kernel also
    /// executes its ELF loader or `#!` interpreter (and theirs), and the
    /// step may not execute that one.
    fn exec_refused_why(&self, step: u32, g: u32, program: &[u8]) -> String {
        let p = Path::new(OsStr::from_bytes(program));
        let found = |g: u32| {
            self.domain
                .findings
                .notes
                .iter()
                .find(|(x, _)| *x == g)
                .map_or(&[][..], |(_, ns)| ns.as_slice())
        };
        let step_name = self
            .plan()
            .steps
            .get(step as usize)
            .map_or("?", |s| s.name.as_str());
        let real = std::fs::canonicalize(p);
        if !self.domain.may_execute(p) {
            let to = match &real {
                Ok(t) if t != p => format!(" (it resolves to {})", t.display()),
                Ok(_) => String::new(),
                Err(_) => " (it resolves to nothing)".into(),
            };
            return match narrowing::explain(found(g), p) {
                Some(why) => format!("{why}{to}"),
                None => format!(
                    "{} got no rule{to} (the precision report at the step's start says why)",
                    p.display()
                ),
            };
        }
        let mode = std::fs::metadata(p).map_or(0, |m| m.permissions().mode());
        if mode & 0o111 == 0 {
            return format!(
                "{} is not executable (mode {:o}); the kernel refuses it whatever the grants",
                p.display(),
                mode & 0o7777
            );
        }
        let refused = elf::refused_starter(program, &LiveFiles, &mut |x| {
            self.domain.may_execute(Path::new(OsStr::from_bytes(x)))
        });
        let Some(r) = refused else {
            return "the kernel refused it although the grant names it and its loader or interpreter may be executed".into();
        };
        let what = r.describe(program);
        let named = Path::new(OsStr::from_bytes(&r.path));
        match attribution::fs_grant(self.plan(), step, &r.path, access::EXECUTE) {
            Some(g2) => {
                let why = narrowing::explain(found(g2), named)
                    .unwrap_or_else(|| "the rule builder gave it no rule".into());
                format!("the kernel executes {what} too, and grant {g2} names it but {why}")
            }
            None => format!(
                "the kernel executes {what} too, which no exec grant of step {step_name} names; {}",
                r.help()
            ),
        }
    }

    /// The pidfd of a running command.
    pub fn pidfd(&self, cmd: u64) -> Option<BorrowedFd<'_>> {
        self.cmds.cmds.get(&cmd).map(|c| c.pidfd.as_fd())
    }

    /// Reaps a command whose pidfd became readable and writes its end
    /// record; returns its exit code (128 + the signal for a signal).
    pub fn reap(&mut self, cmd: u64) -> Option<i32> {
        let c = self.cmds.cmds.get(&cmd)?;
        let exit = sys::wait_pidfd(&c.pidfd).ok();
        self.end_cmd(cmd, exit.map_or(CommandExit::Unknown, exit_of));
        exit.map(sys::Exit::shell_code)
    }

    /// Ends a command and everything it started (its cgroup), e.g. when
    /// its client disconnected.
    pub fn kill_cmd(&mut self, cmd: u64) {
        let Some(c) = self.cmds.cmds.get(&cmd) else {
            return;
        };
        match &c.cgroup {
            Some(cg) => {
                let _ = cg.kill_all();
            }
            None => {
                let _ = sys::pidfd_send_signal(&c.pidfd, libc::SIGKILL);
            }
        }
    }

    /// Forgets a finished command. Commands that leave processes behind
    /// keep their cgroup (and their step's authority) until the step ends;
    /// an empty one is removed now, so a long session leaks no cgroups or
    /// map entries.
    pub fn forget(&mut self, cmd: u64) {
        let Some(mut c) = self.cmds.cmds.remove(&cmd) else {
            return;
        };
        // Entries of finished commands, and of processes no command
        // claimed, go: the map stays as small as the running commands.
        let cmds = &self.cmds.cmds;
        self.cmds
            .exe_seen
            .retain(|_, (k, _)| k.is_some_and(|k| cmds.contains_key(&k)));
        let Some(cg) = c.cgroup.take() else {
            return;
        };
        if cg.populated().unwrap_or(true) {
            self.cmds.lingering.push(cg);
            return;
        }
        if let Some(k) = self.kern.as_mut() {
            let _ = k.bpf.clear_cgroup(cg.id());
        }
        self.cmds.by_cgroup.remove(&cg.id());
        if let Some(d) = c.domain.take() {
            self.cmds.by_domain.remove(&d);
        }
        let _ = cg.remove();
    }
}
