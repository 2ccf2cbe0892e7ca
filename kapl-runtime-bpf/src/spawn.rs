//! Starting a confined command (stage: runtime, process creation).
//!
//! Input: a resolved program path, argv, envp, stdio descriptors, a working
//! directory, the step's Landlock ruleset fd, the command's cgroup fd and
//! the seccomp filter. Output: a running child (pid + pidfd) that was born
//! inside its cgroup (`clone3(CLONE_INTO_CGROUP)`, so it can create nothing
//! before it is there), then, before `execve`: entered a cgroup namespace
//! rooted at that cgroup (so it can never move out of it), lost every
//! capability from
//! every set (bounding, ambient, inheritable, permitted, effective, with the
//! securebits locked), set no_new_privs, entered the step's Landlock domain
//! (`landlock_restrict_self` called in the child itself so the kernel's
//! domain record names the child's pid), installed the seccomp filters,
//! and handed the supervised layer's listener to the supervisor.
//!
//! On x86_64 the child shares the supervisor's memory until `execve`
//! (`CLONE_VM | CLONE_VFORK` on a stack of its own, as `posix_spawn` does):
//! copying the supervisor's page tables and tearing the copy down again at
//! `execve` was most of a command's start-up cost. The supervisor's calling
//! thread sleeps until the child has executed the program or failed.
//!
//! INVARIANT: between `clone3` and `execve` the child only makes raw system
//! calls on memory prepared beforehand (no allocation, no locks, no writes
//! outside its own stack): the parent may be multithreaded, and on x86_64
//! the child runs in the parent's memory. The child's steps
//! (`child_main`) are each one call of the sys layer marked "no
//! allocation" there (rustix's raw system calls, or one `libc` call), on
//! the `ChildCtx` the parent built: C strings and pointer arrays
//! (`sys::ExecArgs`), the filters, the descriptors. A step that fails reports
//! its stage and errno on the error pipe and exits.

use crate::seccomp::SockFilter;
use crate::sys::{self, ExecArgs};
use std::ffi::{CStr, CString};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `landlock_restrict_self` flag: log denials after the command's `execve`.
const LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON: u32 = 1 << 1;
const CLONE_PIDFD: u64 = 0x1000;
#[cfg(target_arch = "x86_64")]
const CLONE_VM: u64 = 0x100;
#[cfg(target_arch = "x86_64")]
const CLONE_VFORK: u64 = 0x4000;
/// The child's own stack while it shares the supervisor's memory.
#[cfg(target_arch = "x86_64")]
const CHILD_STACK: usize = 256 * 1024;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// Highest capability number this kernel may know; dropping unknown ones
/// fails with EINVAL, which is ignored.
const CAP_LAST_PROBE: u32 = 63;
/// SECBIT_NOROOT | _LOCKED, NO_SETUID_FIXUP | _LOCKED, KEEP_CAPS_LOCKED,
/// NO_CAP_AMBIENT_RAISE | _LOCKED.
const SECUREBITS_LOCKED_DOWN: u32 = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// The stage at which a child failed before `execve`, reported through the
/// error pipe (stage byte + errno).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildStage {
    /// Setting up standard input/output/error.
    Stdio,
    /// Changing to the working directory.
    Chdir,
    /// Dropping capabilities or locking securebits.
    Capabilities,
    /// Setting no_new_privs.
    NoNewPrivs,
    /// Entering a cgroup namespace rooted at the command's cgroup.
    CgroupNamespace,
    /// Entering the Landlock domain.
    Landlock,
    /// Installing the seccomp filter.
    Seccomp,
    /// Installing the supervised layer's filter and handing its listener
    /// to the supervisor.
    Supervised,
    /// `execve` itself.
    Exec,
}

impl ChildStage {
    fn code(self) -> u8 {
        match self {
            ChildStage::Stdio => 1,
            ChildStage::Chdir => 2,
            ChildStage::Capabilities => 3,
            ChildStage::NoNewPrivs => 4,
            ChildStage::Landlock => 5,
            ChildStage::Seccomp => 6,
            ChildStage::Exec => 7,
            ChildStage::CgroupNamespace => 8,
            ChildStage::Supervised => 9,
        }
    }
    fn from_code(c: u8) -> Option<ChildStage> {
        Some(match c {
            1 => ChildStage::Stdio,
            2 => ChildStage::Chdir,
            3 => ChildStage::Capabilities,
            4 => ChildStage::NoNewPrivs,
            5 => ChildStage::Landlock,
            6 => ChildStage::Seccomp,
            7 => ChildStage::Exec,
            8 => ChildStage::CgroupNamespace,
            9 => ChildStage::Supervised,
            _ => return None,
        })
    }
    /// What the stage does, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            ChildStage::Stdio => "setting up stdio",
            ChildStage::Chdir => "changing directory",
            ChildStage::Capabilities => "dropping capabilities",
            ChildStage::NoNewPrivs => "setting no_new_privs",
            ChildStage::Landlock => "entering the Landlock domain",
            ChildStage::Seccomp => "installing the seccomp filter",
            ChildStage::Exec => "executing the program",
            ChildStage::CgroupNamespace => "entering a cgroup namespace",
            ChildStage::Supervised => {
                "installing the supervised layer's seccomp filter (user notification)"
            }
        }
    }
}

/// Errors starting a confined command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// A system call in the parent failed.
    #[error("{call} failed: {source}")]
    Syscall {
        /// The call.
        call: &'static str,
        /// The error.
        source: io::Error,
    },
    /// An argument contained a NUL byte.
    #[error("argument or environment entry contains a NUL byte")]
    Nul,
    /// The child failed before running the program.
    #[error("{}: {source}", stage.describe())]
    Child {
        /// Where it failed.
        stage: ChildStage,
        /// The errno it reported.
        source: io::Error,
    },
}

/// What to run and how to confine it.
pub struct Command<'a> {
    /// The program to execute (an absolute path).
    pub program: &'a [u8],
    /// argv (argv[0] included).
    pub argv: &'a [Vec<u8>],
    /// The environment, `KEY=VALUE` entries.
    pub envp: &'a [Vec<u8>],
    /// Descriptors that become 0, 1 and 2.
    pub stdio: [RawFd; 3],
    /// Working directory (absolute), or `None` to keep the parent's.
    pub cwd: Option<&'a [u8]>,
    /// The cgroup directory fd the child is born in (`None`: stay in the
    /// parent's cgroup, for `--unprivileged`).
    pub cgroup: Option<RawFd>,
    /// The step's Landlock ruleset fd.
    pub landlock_ruleset: RawFd,
    /// Ask Landlock to log the command's denials (ABI 7; below it the
    /// flag does not exist, and a session capped below 7 must not get
    /// reports a kernel of that level would not give).
    pub landlock_log: bool,
    /// The seccomp filter program.
    pub seccomp: &'a [SockFilter],
    /// Send signalling calls to the supervisor too (a session below
    /// Landlock ABI 6, which has no signal scope).
    pub supervise_signals: bool,
    /// Drop capabilities and lock securebits (the process has
    /// CAP_SETPCAP); otherwise only clear what an unprivileged process can.
    pub privileged: bool,
}

/// A started child.
#[derive(Debug)]
pub struct Child {
    /// Its pid.
    pub pid: i32,
    /// A pidfd for it (waitable, signalable without pid reuse races).
    pub pidfd: OwnedFd,
    /// The listener of its supervised calls (seccomp user notification),
    /// shared by everything it starts.
    pub supervised: OwnedFd,
}

fn cstr(b: &[u8]) -> Result<CString, SpawnError> {
    CString::new(b).map_err(|_| SpawnError::Nul)
}

/// Names the call of a failed `io::Result`.
fn syscall(call: &'static str) -> impl FnOnce(io::Error) -> SpawnError {
    move |source| SpawnError::Syscall { call, source }
}

/// A filter the kernel can take (at most 65535 instructions).
fn check_filter(f: &[SockFilter]) -> Result<(), SpawnError> {
    match u16::try_from(f.len()) {
        Ok(_) => Ok(()),
        Err(_) => Err(SpawnError::Syscall {
            call: "seccomp",
            source: io::Error::from_raw_os_error(libc::E2BIG),
        }),
    }
}

/// Starts `cmd` confined. Returns once the child has executed the program
/// (or reports why it could not).
pub fn spawn(cmd: &Command<'_>) -> Result<Child, SpawnError> {
    let exec = ExecArgs::new(cmd.program, cmd.argv, cmd.envp).map_err(|_| SpawnError::Nul)?;
    let cwd = cmd.cwd.map(cstr).transpose()?;
    // The second, logged filter (refusals reported through audit).
    let logged = crate::seccomp::logged_filter();
    let notify = crate::seccomp::notify_filter(cmd.supervise_signals);
    check_filter(cmd.seccomp)?;
    check_filter(&logged)?;
    check_filter(&notify)?;
    // The child hands the supervised layer's listener over this pair
    // (SCM_RIGHTS) before it executes the program.
    let (listener_rd, listener_wr) = sys::seqpacket_pair().map_err(syscall("socketpair"))?;

    // The error pipe: CLOEXEC, so a successful execve closes it and the
    // parent reads EOF.
    let (rd, wr) = sys::pipe_cloexec().map_err(syscall("pipe2"))?;

    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: CLONE_PIDFD,
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(cg) = cmd.cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cg as u64;
    }
    let child_ctx = ChildCtx {
        exec: &exec,
        stdio: cmd.stdio,
        cwd: cwd.as_deref(),
        ruleset: cmd.landlock_ruleset,
        landlock_flags: if cmd.landlock_log {
            LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON
        } else {
            0
        },
        errfd: wr.as_raw_fd(),
        seccomp: cmd.seccomp,
        logged: &logged,
        notify: &notify,
        listener_sock: listener_wr.as_raw_fd(),
        privileged: cmd.privileged,
    };
    let pid = clone_child(&mut args, &child_ctx)?;
    drop(wr);
    drop(listener_wr);
    // SAFETY: clone3 succeeded with CLONE_PIDFD, so the kernel stored a new
    // pidfd for the child in `pidfd`; nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let mut report = [0u8; 5];
    let got = read_report(rd, &mut report).map_err(syscall("read"))?;
    if got == 0 {
        // The child sent the listener before it executed the program; its
        // end is closed now, so an empty read means it never did: the
        // command must not run unsupervised (fail closed).
        let mut fds = Vec::new();
        let mut byte = [0u8; 1];
        let _ = sys::recv_with_fds(&listener_rd, &mut byte, &mut fds);
        return match fds.pop() {
            Some(supervised) => Ok(Child {
                pid,
                pidfd,
                supervised,
            }),
            None => {
                let _ = sys::pidfd_send_signal(&pidfd, libc::SIGKILL);
                reap(&pidfd);
                Err(SpawnError::Child {
                    stage: ChildStage::Supervised,
                    source: io::Error::from_raw_os_error(libc::EPROTO),
                })
            }
        };
    }
    // The child failed before exec: reap it and report.
    reap(&pidfd);
    let stage = ChildStage::from_code(report[0]).unwrap_or(ChildStage::Exec);
    let errno = i32::from_ne_bytes([report[1], report[2], report[3], report[4]]);
    Err(SpawnError::Child {
        stage,
        source: io::Error::from_raw_os_error(errno),
    })
}

/// Reads the error pipe until EOF (the child executed its program: 0
/// bytes) or a full report (stage byte + errno).
fn read_report(rd: OwnedFd, buf: &mut [u8; 5]) -> io::Result<usize> {
    let mut f = std::fs::File::from(rd);
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Waits for the process behind `pidfd` and returns its wait status
/// converted to a shell-style exit code (128 + signal when killed).
pub fn wait_exit(pidfd: &OwnedFd) -> io::Result<i32> {
    sys::wait_pidfd(pidfd).map(sys::Exit::shell_code)
}

/// Starts the child running `child_main(ctx)`; returns its pid.
#[cfg(target_arch = "x86_64")]
fn clone_child(args: &mut CloneArgs, ctx: &ChildCtx<'_>) -> Result<i32, SpawnError> {
    let stack = sys::ChildStack::new(CHILD_STACK).map_err(syscall("mmap"))?;
    args.flags |= CLONE_VM | CLONE_VFORK;
    args.stack = stack.base() as u64;
    args.stack_size = stack.len() as u64;
    // No signal handler of the supervisor may run in the child (it would
    // run in the supervisor's memory): block every signal until the child
    // has reset the dispositions (child_main) and we are back.
    let blocked = sys::block_all_signals().map_err(syscall("pthread_sigmask"))?;
    let ret: i64;
    // SAFETY: clone3 with a valid, fully initialised clone_args of the size
    // we pass. The child starts on `stack` (the kernel sets its stack
    // pointer to the top) and immediately calls `child_entry(ctx)`, which
    // never returns; it shares our memory (CLONE_VM) while we sleep
    // (CLONE_VFORK) until it has called execve or exited, so `ctx`, the
    // stack and everything they point to outlive its use, and it keeps the
    // INVARIANT (module doc). The parent's registers other than rax, rcx
    // and r11 are preserved by `syscall`.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r12",
            "and rsp, -16",
            "call {entry}",
            "ud2",
            "2:",
            entry = sym child_entry,
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") std::ptr::from_mut(args),
            in("rsi") size_of::<CloneArgs>(),
            in("r12") std::ptr::from_ref(ctx),
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    drop(blocked);
    drop(stack);
    if ret < 0 {
        return Err(SpawnError::Syscall {
            call: "clone3",
            source: io::Error::from_raw_os_error(i32::try_from(-ret).unwrap_or(libc::EINVAL)),
        });
    }
    i32::try_from(ret).map_err(|_| SpawnError::Syscall {
        call: "clone3",
        source: io::Error::from_raw_os_error(libc::ERANGE),
    })
}

/// Starts the child running `child_main(ctx)` in a copy of our memory;
/// returns its pid.
#[cfg(not(target_arch = "x86_64"))]
fn clone_child(args: &mut CloneArgs, ctx: &ChildCtx<'_>) -> Result<i32, SpawnError> {
    // SAFETY: clone3 with a valid, fully initialised clone_args of the size
    // we pass; no CLONE_VM, so the child gets a copy of our memory.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::from_mut(args),
            size_of::<CloneArgs>(),
        )
    };
    if ret < 0 {
        return Err(syscall("clone3")(io::Error::last_os_error()));
    }
    if ret == 0 {
        // SAFETY: we are the freshly cloned child (one thread); see
        // INVARIANT.
        unsafe { child_main(ctx) }
    }
    i32::try_from(ret).map_err(|_| SpawnError::Syscall {
        call: "clone3",
        source: io::Error::from_raw_os_error(libc::ERANGE),
    })
}

/// The first function of a child that shares our memory.
///
/// # Safety
/// Only entered from `clone_child`'s child branch, with `ctx` pointing to
/// the `ChildCtx` of the sleeping parent.
#[cfg(target_arch = "x86_64")]
unsafe extern "C" fn child_entry(ctx: *const ChildCtx<'_>) -> ! {
    // SAFETY: see above; `ctx` is valid while the parent sleeps, and we are
    // the freshly cloned child that child_main expects.
    unsafe { child_main(&*ctx) }
}

fn reap(pidfd: &OwnedFd) {
    let _ = wait_exit(pidfd);
}

/// What the child needs, prepared by the parent (see INVARIANT).
struct ChildCtx<'a> {
    exec: &'a ExecArgs,
    stdio: [RawFd; 3],
    cwd: Option<&'a CStr>,
    ruleset: RawFd,
    landlock_flags: u32,
    errfd: RawFd,
    seccomp: &'a [SockFilter],
    logged: &'a [SockFilter],
    notify: &'a [SockFilter],
    listener_sock: RawFd,
    privileged: bool,
}

/// Reports `stage` and the error's errno on the error pipe and exits.
fn child_fail(errfd: RawFd, stage: ChildStage, e: &io::Error) -> ! {
    let errno = e.raw_os_error().unwrap_or(libc::EINVAL);
    let e = errno.to_ne_bytes();
    let buf = [stage.code(), e[0], e[1], e[2], e[3]];
    // SAFETY: writing our stack buffer to the error pipe's write end
    // (open: CLOEXEC only closes it at execve).
    unsafe { libc::write(errfd, buf.as_ptr().cast(), buf.len()) };
    // Without running any destructor or atexit handler.
    sys::exit_now(127)
}

/// Runs one step of the child: on failure reports `stage` and exits.
fn step(errfd: RawFd, stage: ChildStage, r: io::Result<()>) {
    if let Err(e) = r {
        child_fail(errfd, stage, &e)
    }
}

/// Makes `stdio` descriptors 0, 1 and 2, inherited across `execve`.
///
/// # Safety
/// Only in the cloned child (it replaces descriptors 0 to 2).
unsafe fn install_stdio(stdio: [RawFd; 3]) -> io::Result<()> {
    for (target, &src) in stdio.iter().enumerate() {
        // SAFETY: replacing 0..2 in the child, which is about to exec.
        unsafe { sys::dup2_inheritable(src, target as RawFd) }?;
    }
    Ok(())
}

/// Drops every capability from the bounding set (those this kernel does
/// not know fail with EINVAL, ignored).
fn drop_bounding_set() -> io::Result<()> {
    for cap in 0..=CAP_LAST_PROBE {
        match sys::drop_bounding_capability(cap) {
            Err(e) if e.raw_os_error() != Some(libc::EINVAL) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// The child between clone3 and execve: each step is one call of the sys
/// layer (no allocation), in this order.
///
/// # Safety
/// Only called in the freshly cloned child (one thread); the references in
/// `c` point into the parent's memory, which the child shares (x86_64) or
/// has a copy of.
unsafe fn child_main(c: &ChildCtx<'_>) -> ! {
    let fail = c.errfd;
    // The signal dispositions inherited from the supervisor (with every
    // signal blocked) back to default, then the mask emptied: no handler
    // of the supervisor can run here.
    sys::reset_signals();
    // SAFETY: we are the cloned child (this function's contract).
    step(fail, ChildStage::Stdio, unsafe { install_stdio(c.stdio) });
    if let Some(dir) = c.cwd {
        step(fail, ChildStage::Chdir, sys::chdir(dir));
    }
    if c.privileged {
        // A cgroup namespace rooted at the command's own cgroup: even
        // with write access to cgroup.procs files (a policy may grant
        // the cgroup file system), the kernel refuses to move it, or
        // anything it starts, to a cgroup outside that root (ENOENT),
        // so it can never leave its step's hooks or its step's kill.
        step(
            fail,
            ChildStage::CgroupNamespace,
            sys::unshare_cgroup_namespace(),
        );
        step(
            fail,
            ChildStage::Capabilities,
            sys::set_securebits(SECUREBITS_LOCKED_DOWN),
        );
        step(fail, ChildStage::Capabilities, drop_bounding_set());
    }
    step(
        fail,
        ChildStage::Capabilities,
        sys::clear_ambient_capabilities(),
    );
    step(fail, ChildStage::NoNewPrivs, sys::set_no_new_privs());
    // Called here, in the child, so the kernel's domain record names the
    // command's pid.
    step(
        fail,
        ChildStage::Landlock,
        sys::landlock_restrict_self(c.ruleset, c.landlock_flags),
    );
    // Drop the rest: effective, permitted, inheritable.
    step(fail, ChildStage::Capabilities, sys::clear_capabilities());
    // The supervised layer: its listener goes to the supervisor, and is
    // closed here below (close-on-exec too): the program never holds it.
    step(
        fail,
        ChildStage::Supervised,
        sys::install_notify_filter(c.notify).and_then(|l| sys::send_fd_raw(c.listener_sock, l)),
    );
    // Close everything but stdio and the error pipe (CLOEXEC).
    // SAFETY: we are the cloned child, about to exec or exit (this
    // function's contract): nothing here uses a closed descriptor again.
    unsafe { sys::close_from_except(3, c.errfd) };
    step(
        fail,
        ChildStage::Seccomp,
        sys::install_seccomp_filter(c.seccomp, false),
    );
    // The logged filter: its refusals become AUDIT_SECCOMP records.
    step(
        fail,
        ChildStage::Seccomp,
        sys::install_seccomp_filter(c.logged, true),
    );
    let e = c.exec.exec();
    child_fail(fail, ChildStage::Exec, &e)
}
