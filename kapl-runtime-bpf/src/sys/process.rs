//! Processes (stage: runtime, every system call): who we are, sessions,
//! pidfds and the processes behind them, `fork` and `_exit`.
//!
//! Input: pids, pidfds and signal numbers. Output: the kernel's answer
//! (`io::Result`), how a process ended ([`Exit`]) and which side of a
//! [`fork`] we are on ([`Forked`]).

use super::last_error;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// `getuid()`.
pub fn getuid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// `geteuid()`.
pub fn geteuid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// `setsid()`: a session (and process group) of its own, no controlling
/// terminal.
pub fn setsid() -> io::Result<()> {
    rustix::process::setsid()?;
    Ok(())
}

/// Whether process `pid` exists and we may signal it (`kill(pid, 0)`).
/// Only positive pids are asked about (0 and negative numbers name
/// process groups).
pub fn process_exists(pid: i32) -> bool {
    pid > 0
        && rustix::process::Pid::from_raw(pid)
            .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

/// `pidfd_open(pid, 0)`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or(io::ErrorKind::InvalidInput)?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// `pidfd_send_signal(pidfd, signal, NULL, 0)`; `signal` is a signal
/// number (`libc::SIGKILL`).
pub fn pidfd_send_signal(pidfd: &impl AsFd, signal: i32) -> io::Result<()> {
    let sig = rustix::process::Signal::from_named_raw(signal)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::process::pidfd_send_signal(pidfd, sig)?)
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

impl Exit {
    /// The shell's number for it: the status, or 128 + the signal.
    pub fn shell_code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

fn waitid_pidfd(pidfd: BorrowedFd<'_>, nohang: bool) -> io::Result<Option<Exit>> {
    use rustix::process::{WaitId, WaitIdOptions, waitid};
    let mut opts = WaitIdOptions::EXITED;
    if nohang {
        opts |= WaitIdOptions::NOHANG;
    }
    loop {
        match waitid(WaitId::PidFd(pidfd), opts) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(None) => return Ok(None),
            Ok(Some(st)) => {
                return if let Some(c) = st.exit_status() {
                    Ok(Some(Exit::Code(c)))
                } else if let Some(s) = st.terminating_signal() {
                    Ok(Some(Exit::Signal(s)))
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("waitid: neither exited nor killed: {st:?}"),
                    ))
                };
            }
        }
    }
}

/// Waits until the process behind `pidfd` (our child) has ended and
/// reaps it (`waitid(P_PIDFD, WEXITED)`, retried on EINTR).
pub fn wait_pidfd(pidfd: &impl AsFd) -> io::Result<Exit> {
    waitid_pidfd(pidfd.as_fd(), false)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "waitid: no status"))
}

/// Reaps the process behind `pidfd` if it has ended, without waiting
/// (`WNOHANG`): `None` while it runs. ECHILD: reaped already.
pub fn try_wait_pidfd(pidfd: &impl AsFd) -> io::Result<Option<Exit>> {
    waitid_pidfd(pidfd.as_fd(), true)
}

/// Which side of a [`fork`] we are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forked {
    /// The new process.
    Child,
    /// The parent, with the child's pid.
    Parent(i32),
}

/// `fork()`.
///
/// # Safety
/// In the child only the forking thread exists: locks other threads held
/// stay locked forever. Call it while the process has one thread, or let
/// the child make only async-signal-safe calls until it execs or exits.
pub unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller keeps fork's contract (above); fork itself takes
    // no pointer.
    let pid = unsafe { libc::fork() };
    match pid {
        p if p < 0 => Err(last_error()),
        0 => Ok(Forked::Child),
        p => Ok(Forked::Parent(p)),
    }
}

/// `_exit(code)`: ends the process at once, without destructors, atexit
/// handlers or stdio flushing (a forked child's way out). No allocation.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes no pointer and never returns; nothing of this
    // process runs after it.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    //! Processes on this machine's kernel, as any user (no root).
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test assertions")]
    use super::*;

    #[test]
    fn identity_and_process_existence() {
        let me = std::process::id() as i32;
        assert!(process_exists(me));
        assert!(!process_exists(0), "0 names a process group");
        assert!(!process_exists(-1), "negative pids name process groups");
        let uid = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next()?.parse::<u32>().ok())
            .unwrap();
        assert_eq!(getuid(), uid);
    }

    #[test]
    #[expect(
        clippy::zombie_processes,
        reason = "the children are reaped through their pidfds"
    )]
    fn pidfds_wait_and_signal() {
        let child = std::process::Command::new("true").spawn().unwrap();
        let fd = pidfd_open(child.id() as i32).unwrap();
        assert_eq!(wait_pidfd(&fd).unwrap(), Exit::Code(0));

        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let fd = pidfd_open(child.id() as i32).unwrap();
        assert_eq!(try_wait_pidfd(&fd).unwrap(), None);
        pidfd_send_signal(&fd, libc::SIGKILL).unwrap();
        let exit = wait_pidfd(&fd).unwrap();
        assert_eq!(exit, Exit::Signal(libc::SIGKILL));
        assert_eq!(exit.shell_code(), 137);
    }
}
