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
//! domain record names the child's pid), and installed the seccomp filter.
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
//! the child runs in the parent's memory.

use crate::seccomp::SockFilter;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `landlock_restrict_self` flag: log denials after the command's `execve`.
const LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON: u32 = 1 << 1;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;
/// The child's own stack while it shares the supervisor's memory.
const CHILD_STACK: usize = 256 * 1024;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// Highest capability number this kernel may know; dropping unknown ones
/// fails with EINVAL, which is ignored.
const CAP_LAST_PROBE: u32 = 63;
/// SECBIT_NOROOT | _LOCKED, NO_SETUID_FIXUP | _LOCKED, KEEP_CAPS_LOCKED,
/// NO_CAP_AMBIENT_RAISE | _LOCKED.
const SECUREBITS_LOCKED_DOWN: libc::c_ulong = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80;

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

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
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
    /// The seccomp filter program.
    pub seccomp: &'a [SockFilter],
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
}

fn cstr(b: &[u8]) -> Result<CString, SpawnError> {
    CString::new(b).map_err(|_| SpawnError::Nul)
}

fn last_err(call: &'static str) -> SpawnError {
    SpawnError::Syscall {
        call,
        source: io::Error::last_os_error(),
    }
}

/// Starts `cmd` confined. Returns once the child has executed the program
/// (or reports why it could not).
pub fn spawn(cmd: &Command<'_>) -> Result<Child, SpawnError> {
    let program = cstr(cmd.program)?;
    let argv: Vec<CString> = cmd.argv.iter().map(|a| cstr(a)).collect::<Result<_, _>>()?;
    let envp: Vec<CString> = cmd.envp.iter().map(|a| cstr(a)).collect::<Result<_, _>>()?;
    let cwd = cmd.cwd.map(cstr).transpose()?;
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let prog = libc::sock_fprog {
        len: u16::try_from(cmd.seccomp.len()).map_err(|_| SpawnError::Syscall {
            call: "seccomp",
            source: io::Error::from_raw_os_error(libc::E2BIG),
        })?,
        filter: cmd.seccomp.as_ptr().cast_mut().cast(),
    };
    // The second, logged filter (refusals reported through audit).
    let logged = crate::seccomp::logged_filter();
    let logged_prog = libc::sock_fprog {
        len: u16::try_from(logged.len()).map_err(|_| SpawnError::Syscall {
            call: "seccomp",
            source: io::Error::from_raw_os_error(libc::E2BIG),
        })?,
        filter: logged.as_ptr().cast_mut().cast(),
    };
    let cap_header = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let cap_data = [CapData::default(); 2];

    // The error pipe: CLOEXEC, so a successful execve closes it and the
    // parent reads EOF.
    let mut pipe_fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two fds into the array we own.
    if unsafe { libc::pipe2(pipe_fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(last_err("pipe2"));
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    let (rd, wr) = unsafe {
        (
            OwnedFd::from_raw_fd(pipe_fds[0]),
            OwnedFd::from_raw_fd(pipe_fds[1]),
        )
    };

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
        program: program.as_ptr(),
        argv: argv_p.as_ptr(),
        envp: envp_p.as_ptr(),
        stdio: cmd.stdio,
        cwd: cwd.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
        ruleset: cmd.landlock_ruleset,
        errfd: wr.as_raw_fd(),
        prog: &prog,
        logged_prog: &logged_prog,
        cap_header: &cap_header,
        cap_data: &cap_data,
        privileged: cmd.privileged,
    };
    let ret = clone_child(&mut args, &child_ctx)?;
    let pid = ret as i32;
    drop(wr);
    // SAFETY: the kernel stored a new pidfd for the child in `pidfd`.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let mut buf = [0u8; 5];
    let mut got = 0;
    loop {
        // SAFETY: reading into our own buffer from the pipe we own.
        let n = unsafe {
            libc::read(
                rd.as_raw_fd(),
                buf[got..].as_mut_ptr().cast(),
                buf.len() - got,
            )
        };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(last_err("read"));
        }
        if n == 0 {
            break;
        }
        got += n as usize;
        if got == buf.len() {
            break;
        }
    }
    if got == 0 {
        return Ok(Child { pid, pidfd });
    }
    // The child failed before exec: reap it and report.
    reap(&pidfd);
    let stage = ChildStage::from_code(buf[0]).unwrap_or(ChildStage::Exec);
    let errno = i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]]);
    Err(SpawnError::Child {
        stage,
        source: io::Error::from_raw_os_error(errno),
    })
}

/// Waits for the process behind `pidfd` and returns its wait status
/// converted to a shell-style exit code (128 + signal when killed).
pub fn wait_exit(pidfd: &OwnedFd) -> io::Result<i32> {
    loop {
        // SAFETY: siginfo_t is plain data; waitid fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pidfd and out-pointer.
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: waitid filled a SIGCHLD siginfo.
        let status = unsafe { info.si_status() };
        return Ok(match info.si_code {
            libc::CLD_EXITED => status,
            _ => 128 + status,
        });
    }
}

/// Starts the child running `child_main(ctx)`; returns its pid.
#[cfg(target_arch = "x86_64")]
fn clone_child(args: &mut CloneArgs, ctx: &ChildCtx) -> Result<i64, SpawnError> {
    let stack = ChildStack::new()?;
    args.flags |= CLONE_VM | CLONE_VFORK;
    args.stack = stack.base as u64;
    args.stack_size = CHILD_STACK as u64;
    // No signal handler of the supervisor may run in the child (it would
    // run in the supervisor's memory): block every signal until the child
    // has reset the dispositions (child_main) and we are back.
    // SAFETY: sigset_t is plain data; sigfillset/pthread_sigmask fill it.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid sigset pointers.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    let ret: i64;
    // SAFETY: clone3 with a valid, fully initialised clone_args of the size
    // we pass. The child starts on `stack` (the kernel sets its stack
    // pointer to the top) and immediately calls `child_entry(ctx)`, which
    // never returns; it shares our memory (CLONE_VM) while we sleep
    // (CLONE_VFORK) until it has called execve or exited, so `ctx`, the
    // stack and everything they point to outlive its use. The parent's
    // registers other than rax, rcx and r11 are preserved by `syscall`.
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
    // SAFETY: restoring the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    drop(stack);
    if ret < 0 {
        return Err(SpawnError::Syscall {
            call: "clone3",
            source: io::Error::from_raw_os_error(i32::try_from(-ret).unwrap_or(libc::EINVAL)),
        });
    }
    Ok(ret)
}

/// Starts the child running `child_main(ctx)` in a copy of our memory;
/// returns its pid.
#[cfg(not(target_arch = "x86_64"))]
fn clone_child(args: &mut CloneArgs, ctx: &ChildCtx) -> Result<i64, SpawnError> {
    // SAFETY: clone3 with a valid, fully initialised clone_args of the size
    // we pass; no CLONE_VM, so the child gets a copy of our memory and runs
    // `child_main`, which only makes raw syscalls and never returns.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::from_mut(args),
            size_of::<CloneArgs>(),
        )
    };
    if ret < 0 {
        return Err(last_err("clone3"));
    }
    if ret == 0 {
        // SAFETY: we are the child; see INVARIANT.
        unsafe { child_main(ctx) }
    }
    Ok(ret)
}

/// The first function of a child that shares our memory.
///
/// # Safety
/// Only entered from `clone_child`'s child branch, with `ctx` pointing to
/// the `ChildCtx` of the sleeping parent.
#[cfg(target_arch = "x86_64")]
unsafe extern "C" fn child_entry(ctx: *const ChildCtx) -> ! {
    // SAFETY: see above; `ctx` is valid while the parent sleeps.
    unsafe { child_main(&*ctx) }
}

/// An anonymous mapping used as the child's stack, with a guard page below.
#[cfg(target_arch = "x86_64")]
struct ChildStack {
    base: *mut libc::c_void,
}

#[cfg(target_arch = "x86_64")]
impl ChildStack {
    fn new() -> Result<ChildStack, SpawnError> {
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CHILD_STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(last_err("mmap"));
        }
        let s = ChildStack { base: p };
        // SAFETY: the lowest page of our own mapping becomes a guard page.
        if unsafe { libc::mprotect(p, 4096, libc::PROT_NONE) } != 0 {
            return Err(last_err("mprotect"));
        }
        Ok(s)
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping we made; the child no longer uses it
        // (it has executed a program or exited before clone3 returned).
        unsafe { libc::munmap(self.base, CHILD_STACK) };
    }
}

fn reap(pidfd: &OwnedFd) {
    let _ = wait_exit(pidfd);
}

/// The kernel's `struct sigaction` for `rt_sigaction` (all zero: SIG_DFL,
/// no flags, empty mask).
#[repr(C)]
#[derive(Default)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

struct ChildCtx {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    stdio: [RawFd; 3],
    cwd: *const libc::c_char,
    ruleset: RawFd,
    errfd: RawFd,
    prog: *const libc::sock_fprog,
    logged_prog: *const libc::sock_fprog,
    cap_header: *const CapHeader,
    cap_data: *const [CapData; 2],
    privileged: bool,
}

/// Reports `stage` and errno on the error pipe and exits.
///
/// # Safety
/// Only called in the child after clone3.
unsafe fn child_fail(errfd: RawFd, stage: ChildStage) -> ! {
    // SAFETY: errno location is thread-local and valid.
    let errno = unsafe { *libc::__errno_location() };
    let e = errno.to_ne_bytes();
    let buf = [stage.code(), e[0], e[1], e[2], e[3]];
    // SAFETY: writing our stack buffer to the pipe, then exiting without
    // running any destructor or atexit handler.
    unsafe {
        libc::write(errfd, buf.as_ptr().cast(), buf.len());
        libc::_exit(127)
    }
}

/// The child between clone3 and execve.
///
/// # Safety
/// Only called in the freshly cloned child; every pointer in `c` points
/// into the parent's memory, which the child shares (x86_64) or has a copy
/// of.
unsafe fn child_main(c: &ChildCtx) -> ! {
    // SAFETY: raw syscalls on prepared memory only (see INVARIANT).
    unsafe {
        // Reset the signal dispositions inherited from the supervisor (with
        // every signal blocked), then the mask.
        // Real-time signals included (raw rt_sigaction: glibc refuses its
        // own reserved ones), so no handler of the supervisor can run here.
        let dfl = KernelSigaction::default();
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    std::ptr::from_ref(&dfl),
                    std::ptr::null_mut::<KernelSigaction>(),
                    8usize,
                );
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for (target, &src) in c.stdio.iter().enumerate() {
            let target = target as RawFd;
            if src != target && libc::dup2(src, target) < 0 {
                child_fail(c.errfd, ChildStage::Stdio);
            }
            // Clear CLOEXEC (dup2 onto itself keeps flags).
            let fl = libc::fcntl(target, libc::F_GETFD);
            if fl >= 0 {
                libc::fcntl(target, libc::F_SETFD, fl & !libc::FD_CLOEXEC);
            }
        }
        if !c.cwd.is_null() && libc::chdir(c.cwd) != 0 {
            child_fail(c.errfd, ChildStage::Chdir);
        }
        if c.privileged {
            // A cgroup namespace rooted at the command's own cgroup: even
            // with write access to cgroup.procs files (a policy may grant
            // the cgroup file system), the kernel refuses to move it, or
            // anything it starts, to a cgroup outside that root (ENOENT),
            // so it can never leave its step's hooks or its step's kill.
            if libc::unshare(libc::CLONE_NEWCGROUP) != 0 {
                child_fail(c.errfd, ChildStage::CgroupNamespace);
            }
            if libc::prctl(libc::PR_SET_SECUREBITS, SECUREBITS_LOCKED_DOWN, 0, 0, 0) != 0 {
                child_fail(c.errfd, ChildStage::Capabilities);
            }
            for cap in 0..=CAP_LAST_PROBE {
                if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0
                    && *libc::__errno_location() != libc::EINVAL
                {
                    child_fail(c.errfd, ChildStage::Capabilities);
                }
            }
        }
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            child_fail(c.errfd, ChildStage::Capabilities);
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            child_fail(c.errfd, ChildStage::NoNewPrivs);
        }
        if libc::syscall(
            libc::SYS_landlock_restrict_self,
            c.ruleset,
            LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON,
        ) != 0
        {
            child_fail(c.errfd, ChildStage::Landlock);
        }
        // Drop the rest: effective, permitted, inheritable.
        if libc::syscall(libc::SYS_capset, c.cap_header, c.cap_data) != 0 {
            child_fail(c.errfd, ChildStage::Capabilities);
        }
        // Close everything but stdio and the error pipe (CLOEXEC).
        if c.errfd > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, (c.errfd - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (c.errfd + 1) as u32, u32::MAX, 0u32);
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            c.prog as libc::c_ulong,
            0,
            0,
        ) != 0
        {
            child_fail(c.errfd, ChildStage::Seccomp);
        }
        // The logged filter: its refusals become AUDIT_SECCOMP records.
        if libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_LOG,
            c.logged_prog,
        ) != 0
        {
            child_fail(c.errfd, ChildStage::Seccomp);
        }
        libc::execve(c.program, c.argv, c.envp);
        child_fail(c.errfd, ChildStage::Exec)
    }
}
