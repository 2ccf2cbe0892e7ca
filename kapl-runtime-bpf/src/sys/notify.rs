//! The supervised layer's calls (stage: runtime, supervised calls): the
//! seccomp user-notification listener (receive, answer, is the caller
//! still there), reading a command's memory, taking its descriptors, and
//! the calls the supervisor performs on a command's behalf on an object it
//! resolved (an `O_PATH` descriptor), with its effective capabilities
//! dropped to the command's (none).
//!
//! Input: the listener, pids, addresses, descriptors. Output: the kernel's
//! answer (`io::Result`).

use super::last_error;
use crate::seccomp::SockFilter;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// One notification: which task made which call with which arguments.
#[derive(Clone, Copy, Debug)]
pub struct Notif {
    /// The notification's cookie (answer with it).
    pub id: u64,
    /// The calling thread's id (in the supervisor's pid namespace).
    pub pid: u32,
    /// The system call number.
    pub nr: i32,
    /// Its raw arguments.
    pub args: [u64; 6],
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER)`:
/// installs `filter` and returns the listener for its `USER_NOTIF`
/// returns (close-on-exec). No allocation.
pub fn install_notify_filter(filter: &[SockFilter]) -> io::Result<RawFd> {
    let len = u16::try_from(filter.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let prog = libc::sock_fprog {
        len,
        filter: filter.as_ptr().cast_mut().cast(),
    };
    // SAFETY: `prog` points to `len` instructions of `filter` (SockFilter
    // is `struct sock_filter`, repr(C)); the kernel copies them and
    // writes nothing; it returns a new descriptor or -1.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            std::ptr::from_ref(&prog),
        )
    };
    if r < 0 {
        return Err(last_error());
    }
    RawFd::try_from(r).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))
}

/// Sends `fd` over the UNIX socket `sock` (`SCM_RIGHTS`, one byte of
/// data). No allocation (the control buffer is on the stack).
pub fn send_fd_raw(sock: RawFd, fd: RawFd) -> io::Result<()> {
    // SAFETY: the caller's descriptors stay open for the duration of the
    // call (it owns both until it executes or exits).
    let (s, f) = unsafe { (BorrowedFd::borrow_raw(sock), BorrowedFd::borrow_raw(fd)) };
    super::send_with_fds(s, b"L", &[f]).map(drop)
}

/// `SECCOMP_IOCTL_NOTIF_RECV`: the next notification (blocks until one
/// is pending; ENOENT when its caller went away meanwhile).
pub fn notif_recv(listener: impl AsFd) -> io::Result<Notif> {
    // SAFETY: all-zero is a valid `seccomp_notif` (plain integers), and
    // the kernel requires it zeroed.
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes one `seccomp_notif` into `n`, which lives
    // for the call.
    let r = unsafe {
        libc::ioctl(
            listener.as_fd().as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            std::ptr::from_mut(&mut n),
        )
    };
    if r != 0 {
        return Err(last_error());
    }
    Ok(Notif {
        id: n.id,
        pid: n.pid,
        nr: n.data.nr,
        args: n.data.args,
    })
}

/// How to answer a notification.
#[derive(Debug)]
pub enum Answer {
    /// The call returns `val` (the supervisor performed it).
    Value(i64),
    /// The call fails with this errno.
    Errno(i32),
    /// The kernel runs the call itself (only where its arguments cannot
    /// change the outcome after the decision).
    Continue,
    /// The call returns a new descriptor: a copy of this one, installed
    /// in the caller (close-on-exec when `cloexec`).
    Fd {
        /// The supervisor's descriptor.
        fd: OwnedFd,
        /// `O_CLOEXEC` on the caller's copy.
        cloexec: bool,
    },
}

/// `SECCOMP_IOCTL_NOTIF_SEND`: answers notification `id` (ENOENT: its
/// caller went away).
pub fn notif_send(listener: impl AsFd, id: u64, a: Answer) -> io::Result<()> {
    let (val, error, flags) = match a {
        Answer::Value(v) => (v, 0, 0),
        Answer::Errno(e) => (0, -e, 0),
        Answer::Continue => (0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
        Answer::Fd { fd, cloexec } => {
            return notif_addfd_send(listener, id, &fd, cloexec).map(drop);
        }
    };
    let mut resp = libc::seccomp_notif_resp {
        id,
        val,
        error,
        flags,
    };
    // SAFETY: the ioctl reads one `seccomp_notif_resp` from `resp`.
    let r = unsafe {
        libc::ioctl(
            listener.as_fd().as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            std::ptr::from_mut(&mut resp),
        )
    };
    if r != 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: whether notification `id`'s caller
/// still waits (so a pid read before this still names it).
pub fn notif_id_valid(listener: impl AsFd, id: u64) -> bool {
    let mut id = id;
    // SAFETY: the ioctl reads one u64 from `id`.
    let r = unsafe {
        libc::ioctl(
            listener.as_fd().as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            std::ptr::from_mut(&mut id),
        )
    };
    r == 0
}

/// `process_vm_readv`: reads `buf.len()` bytes at `addr` in process
/// `pid`; returns how many it could (a short read stops at unmapped
/// memory).
pub fn read_memory(pid: u32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as usize as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: `local` describes `buf`, writable for its length; `remote`
    // is only read by the kernel in the other process (checked there).
    let r = unsafe { libc::process_vm_readv(pid, &raw const local, 1, &raw const remote, 1, 0) };
    if r < 0 {
        return Err(last_error());
    }
    Ok(r as usize)
}

/// `pidfd_getfd(pidfd, fd)`: a copy of descriptor `fd` of the process
/// (close-on-exec).
pub fn pidfd_getfd(pidfd: impl AsFd, fd: RawFd) -> io::Result<OwnedFd> {
    Ok(rustix::process::pidfd_getfd(
        pidfd,
        fd,
        rustix::process::PidfdGetfdFlags::empty(),
    )?)
}

/// The effective capabilities of the calling thread emptied until the
/// guard is dropped (the permitted set stays, so they come back): the
/// supervisor resolves and acts on a command's behalf with the command's
/// authority, and commands run with no capability.
pub struct CapsDropped {
    saved: Option<rustix::thread::CapabilitySets>,
}

/// Empties the calling thread's effective capabilities (a no-op when it
/// has none).
pub fn drop_effective_caps() -> io::Result<CapsDropped> {
    use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
    let cur = capabilities(None)?;
    if cur.effective.is_empty() {
        return Ok(CapsDropped { saved: None });
    }
    let mut lowered = cur;
    lowered.effective = CapabilitySet::empty();
    set_capabilities(None, lowered)?;
    Ok(CapsDropped { saved: Some(cur) })
}

impl Drop for CapsDropped {
    fn drop(&mut self) {
        if let Some(s) = self.saved.take() {
            // Raising back within the permitted set cannot fail; if it
            // did, the supervisor would only lose authority (fail closed).
            let _ = rustix::thread::set_capabilities(None, s);
        }
    }
}

/// `open(path, O_PATH | O_CLOEXEC)`, following magic links: the object a
/// command's `/proc/TID/cwd` or `/proc/TID/fd/N` names.
pub fn open_proc_object(path: &CStr) -> io::Result<OwnedFd> {
    use rustix::fs::{CWD, Mode, OFlags};
    Ok(rustix::fs::openat(
        CWD,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `openat2(dir, path, O_PATH | O_CLOEXEC [| O_NOFOLLOW], resolve |
/// RESOLVE_NO_MAGICLINKS)`: the object a command's path names, resolved
/// by the supervisor (a magic link on the way would name the
/// supervisor's own objects, so none is followed).
pub fn open_object_at(
    dir: impl AsFd,
    path: &CStr,
    follow: bool,
    resolve: u64,
) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let mut flags = OFlags::PATH | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    Ok(rustix::fs::openat2(
        dir,
        path,
        flags,
        Mode::empty(),
        ResolveFlags::from_bits_retain(resolve) | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// `readlink("/proc/self/fd/N")`: the path of an open object.
pub fn fd_path(fd: impl AsFd) -> io::Result<Vec<u8>> {
    let p = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    Ok(rustix::fs::readlink(p.as_str(), Vec::new())?.into_bytes())
}

/// `fchmodat2(fd, "", mode, AT_EMPTY_PATH)`.
pub fn chmod_fd(fd: impl AsFd, mode: u32) -> io::Result<()> {
    // SAFETY: an empty C string literal and plain integers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            fd.as_fd().as_raw_fd(),
            c"".as_ptr(),
            mode,
            libc::AT_EMPTY_PATH,
        )
    };
    if r != 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH)` (-1: unchanged).
pub fn chown_fd(fd: impl AsFd, uid: u32, gid: u32) -> io::Result<()> {
    use rustix::fs::{AtFlags, Gid, Uid};
    let uid = (uid != u32::MAX).then(|| Uid::from_raw(uid));
    let gid = (gid != u32::MAX).then(|| Gid::from_raw(gid));
    Ok(rustix::fs::chownat(fd, c"", uid, gid, AtFlags::EMPTY_PATH)?)
}

/// `utimensat(fd, "", times, AT_EMPTY_PATH)`; `None`: both now.
pub fn utimens_fd(fd: impl AsFd, times: Option<[libc::timespec; 2]>) -> io::Result<()> {
    let ptr = times.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
    // SAFETY: `ptr` is null or points to two timespecs that live for the
    // call; the path is an empty C string literal.
    let r = unsafe {
        libc::utimensat(
            fd.as_fd().as_raw_fd(),
            c"".as_ptr(),
            ptr,
            libc::AT_EMPTY_PATH,
        )
    };
    if r != 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `setxattr("/proc/self/fd/N", name, value, flags)`: on the object `fd`
/// names (through its magic link, so on that object whatever its path).
pub fn setxattr_fd(fd: impl AsFd, name: &CStr, value: &[u8], flags: i32) -> io::Result<()> {
    let p = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    Ok(rustix::fs::setxattr(
        p.as_str(),
        name,
        value,
        rustix::fs::XattrFlags::from_bits_retain(flags as u32),
    )?)
}

/// `removexattr("/proc/self/fd/N", name)`.
pub fn removexattr_fd(fd: impl AsFd, name: &CStr) -> io::Result<()> {
    let p = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    Ok(rustix::fs::removexattr(p.as_str(), name)?)
}

/// `inotify_add_watch(inotify, "/proc/self/fd/N", mask)`: a watch on the
/// object `fd` names; returns the watch descriptor.
pub fn inotify_watch_fd(inotify: impl AsFd, fd: impl AsFd, mask: u32) -> io::Result<i32> {
    let p = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    Ok(rustix::fs::inotify::add_watch(
        inotify,
        p.as_str(),
        rustix::fs::inotify::WatchFlags::from_bits_retain(mask),
    )?)
}

/// The family and port a socket is bound to (`getsockname`); the port is
/// `None` for families without one.
pub fn socket_port(sock: impl AsFd) -> io::Result<(i32, Option<u16>)> {
    let a = rustix::net::getsockname(sock)?;
    let family = i32::from(a.address_family().as_raw());
    let port = match std::net::SocketAddr::try_from(a) {
        Ok(s) => Some(s.port()),
        Err(_) => None,
    };
    Ok((family, port))
}

/// `SECCOMP_IOCTL_NOTIF_ADDFD` with `SECCOMP_ADDFD_FLAG_SEND`: installs a
/// copy of `fd` in the caller of notification `id` (close-on-exec when
/// `cloexec`) and answers the call with its number, atomically.
pub fn notif_addfd_send(
    listener: impl AsFd,
    id: u64,
    fd: impl AsFd,
    cloexec: bool,
) -> io::Result<i32> {
    let mut a = libc::seccomp_notif_addfd {
        id,
        flags: libc::SECCOMP_ADDFD_FLAG_SEND as u32,
        srcfd: u32::try_from(fd.as_fd().as_raw_fd())
            .map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?,
        newfd: 0,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: the ioctl reads one `seccomp_notif_addfd` from `a`.
    let r = unsafe {
        libc::ioctl(
            listener.as_fd().as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ADDFD,
            std::ptr::from_mut(&mut a),
        )
    };
    if r < 0 {
        return Err(last_error());
    }
    Ok(r)
}

/// Gives the calling thread its own working directory, root and umask
/// (`unshare(CLONE_FS)`), and drops every capability it has for good:
/// the supervised layer's creating thread, which sets each command's
/// umask before it creates on its behalf.
pub fn become_creator_thread() -> io::Result<()> {
    // SAFETY: CLONE_FS only separates this thread's cwd, root and umask;
    // no other thread relies on sharing them with it, and it never
    // changes its cwd or root.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }?;
    super::clear_capabilities()
}

/// `umask(mask)` of the calling thread's file-system context.
pub fn set_umask(mask: u32) {
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(mask & 0o777));
}

/// `openat2(dir, path, O_PATH | O_DIRECTORY | O_CLOEXEC, resolve |
/// RESOLVE_NO_MAGICLINKS)`: the directory a name is made or removed in.
pub fn open_dir_at(dir: impl AsFd, path: &CStr, resolve: u64) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    Ok(rustix::fs::openat2(
        dir,
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::from_bits_retain(resolve) | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// What `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)` says: `None` when there
/// is no such name.
pub fn lookup_at(dir: impl AsFd, name: &CStr) -> io::Result<Option<super::FileInfo>> {
    match rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(super::FileInfo {
            mode: st.st_mode,
            nlink: st.st_nlink,
            ino: st.st_ino,
            dev: st.st_dev,
        })),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `openat(dir, name, flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
/// mode)`: a new file, never an existing name.
pub fn create_file_at(dir: impl AsFd, name: &CStr, flags: u32, mode: u32) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let f = OFlags::from_bits_retain(flags)
        | OFlags::CREATE
        | OFlags::EXCL
        | OFlags::NOFOLLOW
        | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(
        dir,
        name,
        f,
        Mode::from_bits_truncate(mode),
    )?)
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdir_at(dir: impl AsFd, name: &CStr, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::mkdirat(
        dir,
        name,
        rustix::fs::Mode::from_bits_truncate(mode),
    )?)
}

/// `mknodat(dir, name, mode, dev)` (`mode` carries the file type).
pub fn mknod_at(dir: impl AsFd, name: &CStr, mode: u32, dev: u64) -> io::Result<()> {
    use rustix::fs::{FileType, Mode};
    let kind = if mode & 0o170_000 == 0 {
        FileType::RegularFile
    } else {
        FileType::from_raw_mode(mode)
    };
    Ok(rustix::fs::mknodat(
        dir,
        name,
        kind,
        Mode::from_bits_truncate(mode),
        dev,
    )?)
}

/// `symlinkat(target, dir, name)`.
pub fn symlink_at(target: &CStr, dir: impl AsFd, name: &CStr) -> io::Result<()> {
    Ok(rustix::fs::symlinkat(target, dir, name)?)
}

/// `linkat(old_dir, old, new_dir, new, 0)`: a new name for the file
/// `old` names (a symbolic link itself, not followed).
pub fn link_at(old_dir: impl AsFd, old: &CStr, new_dir: impl AsFd, new: &CStr) -> io::Result<()> {
    Ok(rustix::fs::linkat(
        old_dir,
        old,
        new_dir,
        new,
        rustix::fs::AtFlags::empty(),
    )?)
}

/// `unlinkat(dir, name, flags)` (`AT_REMOVEDIR` for a directory).
pub fn unlink_at(dir: impl AsFd, name: &CStr, remove_dir: bool) -> io::Result<()> {
    let f = if remove_dir {
        rustix::fs::AtFlags::REMOVEDIR
    } else {
        rustix::fs::AtFlags::empty()
    };
    Ok(rustix::fs::unlinkat(dir, name, f)?)
}

/// `renameat2(old_dir, old, new_dir, new, flags)`.
pub fn rename_at(
    old_dir: impl AsFd,
    old: &CStr,
    new_dir: impl AsFd,
    new: &CStr,
    flags: u32,
) -> io::Result<()> {
    Ok(rustix::fs::renameat_with(
        old_dir,
        old,
        new_dir,
        new,
        rustix::fs::RenameFlags::from_bits_retain(flags),
    )?)
}

/// `bind(sock, path)` for a pathname UNIX socket.
pub fn bind_unix(sock: impl AsFd, path: &[u8]) -> io::Result<()> {
    let a = rustix::net::SocketAddrUnix::new(path)?;
    Ok(rustix::net::bind(sock, &a)?)
}

/// `open("/proc/self/fd/N", flags | O_CLOEXEC)`: the object `fd` (an
/// `O_PATH` descriptor) opened anew, with the access the flags ask for.
pub fn reopen(fd: impl AsFd, flags: u32) -> io::Result<OwnedFd> {
    use rustix::fs::{CWD, Mode, OFlags};
    let p = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    Ok(rustix::fs::openat(
        CWD,
        p.as_str(),
        OFlags::from_bits_retain(flags) | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `ftruncate(fd, length)`.
pub fn ftruncate(fd: impl AsFd, length: u64) -> io::Result<()> {
    Ok(rustix::fs::ftruncate(fd, length)?)
}
