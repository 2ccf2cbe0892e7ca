//! Descriptors and files (stage: runtime, every system call): pipes,
//! memfds,
//! `dup2`, `poll`, closing what a child must not inherit, `fstat`, the
//! `openat2`/`O_NOFOLLOW` opens the Landlock build uses, and `flock`.
//!
//! Input: descriptors and paths. Output: new descriptors, readiness, what
//! `fstat` says ([`FileInfo`]), or the kernel's error (`io::Result`).

use super::last_error;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// A sealed memfd holding `bytes`, its offset back at the start
/// (`memfd_create` with sealing, the bytes written, then sealed against any
/// change): a read-only copy to hand to another process (an objective
/// image, a command's stdin).
pub fn sealed_memfd(name: &str, bytes: &[u8]) -> io::Result<OwnedFd> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    let mut off = 0;
    while off < bytes.len() {
        off += rustix::io::write(&fd, &bytes[off..])?;
    }
    rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(0))?;
    rustix::fs::fcntl_add_seals(
        &fd,
        SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
    )?;
    Ok(fd)
}

/// Makes descriptors 0, 1 and 2 copies of `fd` (`dup2` three times).
pub fn dup2_onto_stdio(fd: &impl AsFd) -> io::Result<()> {
    rustix::stdio::dup2_stdin(fd)?;
    rustix::stdio::dup2_stdout(fd)?;
    rustix::stdio::dup2_stderr(fd)?;
    Ok(())
}

/// Waits up to `timeout_ms` (negative: forever) until one of `fds` is
/// readable or hung up (`poll(POLLIN)`); per fd, whether it is (any
/// `revents`: readable, hung up, error or not open). EINTR counts as a
/// timeout: nothing ready.
pub fn poll(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<Vec<bool>> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut p: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::from_borrowed_fd(*fd, PollFlags::IN))
        .collect();
    let timeout = (timeout_ms >= 0).then(|| Timespec {
        tv_sec: i64::from(timeout_ms / 1000),
        tv_nsec: i64::from(timeout_ms % 1000) * 1_000_000,
    });
    match rustix::event::poll(&mut p, timeout.as_ref()) {
        Ok(_) => Ok(p.iter().map(|x| !x.revents().is_empty()).collect()),
        Err(rustix::io::Errno::INTR) => Ok(vec![false; fds.len()]),
        Err(e) => Err(e.into()),
    }
}

/// [`poll`] over raw descriptor numbers (an fd that is not open reports
/// ready, with POLLNVAL).
pub fn poll_raw(fds: &[RawFd], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: *fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: poll reads and writes `p.len()` pollfd entries of our own
    // vector; it only inspects the descriptors, whatever they are.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = last_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    Ok(p.iter().map(|x| x.revents != 0).collect())
}

/// Which of `fds` are readable and which hung up, without waiting
/// (`poll(POLLIN)`, timeout 0).
pub fn ready_now(fds: &[BorrowedFd<'_>]) -> io::Result<Vec<(bool, bool)>> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut p: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::from_borrowed_fd(*fd, PollFlags::IN))
        .collect();
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match rustix::event::poll(&mut p, Some(&zero)) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return Ok(vec![(false, false); fds.len()]),
        Err(e) => return Err(e.into()),
    }
    Ok(p.iter()
        .map(|x| {
            let r = x.revents();
            (
                r.contains(PollFlags::IN),
                r.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL),
            )
        })
        .collect())
}

/// Closes every descriptor numbered `first` or above except `keep`
/// (`close_range`, errors ignored). No allocation.
///
/// # Safety
/// Descriptors owned elsewhere in the process (`OwnedFd`, `File`, aya's
/// maps) are closed under their owners: call it only in a child that
/// then execs or exits without using or dropping them.
pub unsafe fn close_from_except(first: u32, keep: RawFd) {
    let close_range = |lo: u32, hi: u32| {
        // SAFETY: close_range takes no pointer; closing under the owners
        // is the caller's contract (above).
        unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0u32) };
    };
    match u32::try_from(keep) {
        Ok(k) if k >= first => {
            if k > first {
                close_range(first, k - 1);
            }
            if k < u32::MAX {
                close_range(k + 1, u32::MAX);
            }
        }
        _ => close_range(first, u32::MAX),
    }
}

/// Makes `target` a copy of `src` that survives `execve`: `dup2`, or, when
/// they are the same, clearing its `FD_CLOEXEC`. No allocation.
///
/// # Safety
/// Whatever `target` was is closed under its owner: only in a child about
/// to exec.
pub unsafe fn dup2_inheritable(src: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 and fcntl take no pointer; replacing `target` is the
    // caller's contract (above).
    unsafe {
        if src != target && libc::dup2(src, target) < 0 {
            return Err(last_error());
        }
        // dup2 onto itself keeps the flags.
        let fl = libc::fcntl(target, libc::F_GETFD);
        if fl >= 0 {
            libc::fcntl(target, libc::F_SETFD, fl & !libc::FD_CLOEXEC);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------
// Files.
// ---------------------------------------------------------------------

/// What `fstat` says about a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    /// Number of hard links.
    pub nlink: u64,
    /// Inode number.
    pub ino: u64,
    /// Device.
    pub dev: u64,
}

impl FileInfo {
    fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }
    /// A symbolic link (opened with `O_PATH | O_NOFOLLOW`).
    pub fn is_symlink(&self) -> bool {
        self.kind() == libc::S_IFLNK
    }
    /// A socket.
    pub fn is_socket(&self) -> bool {
        self.kind() == libc::S_IFSOCK
    }
}

/// `fstat(fd)`.
pub fn fstat(fd: impl AsFd) -> io::Result<FileInfo> {
    let st = rustix::fs::fstat(fd)?;
    Ok(FileInfo {
        mode: st.st_mode,
        nlink: st.st_nlink,
        ino: st.st_ino,
        dev: st.st_dev,
    })
}

/// `openat2(AT_FDCWD, path, {flags, mode 0, resolve})`.
pub fn openat2_cwd(path: &Path, flags: u64, resolve: u64) -> io::Result<OwnedFd> {
    use rustix::fs::{CWD, Mode, OFlags, ResolveFlags};
    let flags = u32::try_from(flags).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::fs::openat2(
        CWD,
        path,
        OFlags::from_bits_retain(flags),
        Mode::empty(),
        ResolveFlags::from_bits_retain(resolve),
    )?)
}

/// `openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)`: the object
/// itself, a symbolic link not followed.
pub fn open_path_nofollow_at(dir: impl AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    Ok(rustix::fs::openat(
        dir,
        name.as_bytes(),
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `flock(fd, LOCK_EX)`: waits for the exclusive lock (released when the
/// file is closed).
pub fn lock_exclusive(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::fs::flock(
        fd,
        rustix::fs::FlockOperation::LockExclusive,
    )?)
}

#[cfg(test)]
mod tests {
    //! Descriptors on this machine's kernel, as any user (no root).
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test assertions")]
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn poll_sees_a_readable_pipe() {
        let (rd, wr) = pipe_cloexec().unwrap();
        assert_eq!(poll(&[rd.as_fd()], 0).unwrap(), [false]);
        assert_eq!(poll_raw(&[rd.as_raw_fd()], 0).unwrap(), [false]);
        std::fs::File::from(wr).write_all(b"x").unwrap();
        assert_eq!(poll(&[rd.as_fd()], 1000).unwrap(), [true]);
        assert_eq!(poll_raw(&[rd.as_raw_fd()], 1000).unwrap(), [true]);
        let st = fstat(&rd).unwrap();
        assert!(!st.is_socket() && !st.is_dir());
    }
}
