//! The runtime's one sys layer (stage: runtime, every system call).
//!
//! Input: descriptors, paths, buffers and prepared arguments from the rest
//! of the crate. Output: the kernel's answer, as `io::Result` for a single
//! call (the function is named after the call) or [`SyscallError`] (the
//! call named, as aya does) where one function makes several.
//!
//! Every system call of the runtime goes through this module. Most go
//! through `rustix` (safe wrappers, raw system calls on Linux, no `errno`;
//! features `event`, `fs`, `net`, `pipe`, `process`, `stdio`, `thread`);
//! what rustix lacks, or gets wrong for us (`SO_PEERCRED`'s pid may be 0),
//! is called here through `libc`, each `unsafe` block in one small
//! function that says why it is sound: `bpf(2)`, `landlock_restrict_self`,
//! seccomp, `SO_MEMINFO`, `SO_PEERCRED`, `close_range`, `fork`, `execve`,
//! `_exit`, `poll` over raw descriptor numbers, the clone child's stack,
//! signal dispositions and signal mask. The one
//! exception is the `clone3` call itself and the child it starts, in
//! [`crate::spawn`] (see its INVARIANT); the functions that child uses are
//! marked "no allocation" here: they make raw system calls on the memory
//! they are given and nothing else.

use crate::seccomp::SockFilter;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use std::ffi::{CStr, CString, NulError, OsStr};
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A system call that failed, and which one.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {source}")]
pub struct SyscallError {
    /// The call (`"socket"`, `"bind"`, ...).
    pub call: &'static str,
    /// What the kernel answered.
    #[source]
    pub source: io::Error,
}

impl From<SyscallError> for io::Error {
    fn from(e: SyscallError) -> io::Error {
        io::Error::new(e.source.kind(), e)
    }
}

/// Names the call of a result.
trait Named<T> {
    fn named(self, call: &'static str) -> Result<T, SyscallError>;
}

impl<T, E: Into<io::Error>> Named<T> for Result<T, E> {
    fn named(self, call: &'static str) -> Result<T, SyscallError> {
        self.map_err(|e| SyscallError {
            call,
            source: e.into(),
        })
    }
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

// ---------------------------------------------------------------------
// Processes.
// ---------------------------------------------------------------------

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

// ---------------------------------------------------------------------
// Descriptors.
// ---------------------------------------------------------------------

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
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

// ---------------------------------------------------------------------
// UNIX sockets (the session control channel).
// ---------------------------------------------------------------------

/// `socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)`.
pub fn unix_stream_socket() -> io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// `bind` to an abstract UNIX name (`name` without the leading NUL).
pub fn bind_abstract(sock: impl AsFd, name: &[u8]) -> io::Result<()> {
    Ok(rustix::net::bind(
        sock,
        &SocketAddrUnix::new_abstract_name(name)?,
    )?)
}

/// `connect` to an abstract UNIX name (`name` without the leading NUL).
pub fn connect_abstract(sock: impl AsFd, name: &[u8]) -> io::Result<()> {
    Ok(rustix::net::connect(
        sock,
        &SocketAddrUnix::new_abstract_name(name)?,
    )?)
}

/// `listen(sock, backlog)`.
pub fn listen(sock: impl AsFd, backlog: i32) -> io::Result<()> {
    Ok(rustix::net::listen(sock, backlog)?)
}

/// `accept4(sock, NULL, NULL, SOCK_CLOEXEC)`.
pub fn accept(sock: impl AsFd) -> io::Result<OwnedFd> {
    Ok(rustix::net::accept_with(sock, SocketFlags::CLOEXEC)?)
}

/// The peer's (pid, uid) (`SO_PEERCRED`: as they were at `connect` or
/// `listen`). The pid is 0 when the peer's process is not visible in our
/// pid namespace.
pub fn peer_credentials(sock: impl AsFd) -> io::Result<(i32, u32)> {
    // Not rustix's `socket_peercred`: its `UCred` holds the pid as a
    // non-zero `Pid`, and the kernel answers 0 for a peer outside our pid
    // namespace.
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into our ucred of that
    // size.
    let r = unsafe {
        libc::getsockopt(
            sock.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::addr_of_mut!(cred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(last_error());
    }
    Ok((cred.pid, cred.uid))
}

/// The most descriptors one message carries.
pub const MAX_PASSED_FDS: usize = 12;

/// `sendmsg(sock, data, SCM_RIGHTS fds, MSG_NOSIGNAL)`: returns how many
/// bytes were sent (the fds go with the first byte). At most
/// [`MAX_PASSED_FDS`] descriptors.
pub fn send_with_fds(sock: impl AsFd, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_PASSED_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::from_raw_os_error(libc::E2BIG));
    }
    Ok(rustix::net::sendmsg(
        sock,
        &[IoSlice::new(data)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?)
}

/// `recvmsg(sock, buf, MSG_CMSG_CLOEXEC)`: the bytes received (0: the peer
/// closed); descriptors passed with them (`SCM_RIGHTS`, at most
/// [`MAX_PASSED_FDS`]) are appended to `fds`.
pub fn recv_with_fds(sock: impl AsFd, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_PASSED_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        sock,
        &mut [IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(passed) = m {
            fds.extend(passed);
        }
    }
    Ok(msg.bytes)
}

/// The address family of a socket (`SO_DOMAIN`), e.g. `libc::AF_UNIX`.
pub fn socket_domain(sock: impl AsFd) -> io::Result<i32> {
    Ok(i32::from(
        rustix::net::sockopt::socket_domain(sock)?.as_raw(),
    ))
}

// ---------------------------------------------------------------------
// Netlink (audit).
// ---------------------------------------------------------------------

/// A `NETLINK_AUDIT` socket bound to the multicast `groups`.
pub fn audit_netlink_socket(groups: u32) -> Result<OwnedFd, SyscallError> {
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        Some(rustix::net::netlink::AUDIT),
    )
    .named("socket")?;
    rustix::net::bind(
        &fd,
        &rustix::net::netlink::SocketAddrNetlink::new(0, groups),
    )
    .named("bind")?;
    Ok(fd)
}

/// `setsockopt(SO_RCVBUFFORCE, bytes)` (needs CAP_NET_ADMIN).
pub fn set_recv_buffer_force(sock: impl AsFd, bytes: usize) -> io::Result<()> {
    Ok(rustix::net::sockopt::set_socket_recv_buffer_size_force(
        sock, bytes,
    )?)
}

/// `sendto(sock, buf, 0, {AF_NETLINK, pid 0})`: a message to the kernel.
pub fn send_to_kernel(sock: impl AsFd, buf: &[u8]) -> io::Result<usize> {
    Ok(rustix::net::sendto(
        sock,
        buf,
        SendFlags::empty(),
        &rustix::net::netlink::SocketAddrNetlink::new(0, 0),
    )?)
}

/// `recv(sock, buf)`, `MSG_DONTWAIT` when `nonblocking`; retried on EINTR.
pub fn recv(sock: impl AsFd, buf: &mut [u8], nonblocking: bool) -> io::Result<usize> {
    let flags = if nonblocking {
        RecvFlags::DONTWAIT
    } else {
        RecvFlags::empty()
    };
    loop {
        match rustix::net::recv(&sock, &mut *buf, flags) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok((n, _)) => return Ok(n),
        }
    }
}

/// The socket's drop counter (`SO_MEMINFO`, `SK_MEMINFO_DROPS`): what the
/// kernel discarded because the receive buffer was full. `None` when the
/// kernel's answer has no such counter.
pub fn socket_drops(sock: impl AsFd) -> io::Result<Option<u32>> {
    // SK_MEMINFO_DROPS is the ninth counter.
    let mut info = [0u32; 9];
    let mut len = size_of_val(&info) as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into our array of that
    // size and stores the length it wrote in `len`.
    let r = unsafe {
        libc::getsockopt(
            sock.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(last_error());
    }
    Ok(((len as usize) >= size_of_val(&info)).then_some(info[8]))
}

// ---------------------------------------------------------------------
// bpf(2) (programs aya cannot load: cgroup/connect_unix, sendmsg_unix).
// ---------------------------------------------------------------------

const BPF_PROG_LOAD: u32 = 5;
const BPF_LINK_CREATE: u32 = 28;

/// `bpf(cmd, attr, 128)` for a command that returns a new descriptor.
///
/// # Safety
/// Every pointer in `attr` must be valid for what `cmd` makes the kernel
/// read or write.
unsafe fn bpf_fd(cmd: u32, attr: &mut [u64; 16]) -> io::Result<OwnedFd> {
    // SAFETY: the attribute buffer is ours and 128 bytes long (zero
    // padded); the pointers in it are the caller's contract. On success
    // the kernel returns a new descriptor that nobody else owns.
    unsafe {
        let r = libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), 128u32);
        if r < 0 {
            return Err(last_error());
        }
        Ok(OwnedFd::from_raw_fd(r as RawFd))
    }
}

/// `BPF_PROG_LOAD` of `insns` as a program of `prog_type` for
/// `expected_attach_type`, named `name` (at most 15 bytes kept); with
/// `log`, the verifier writes its log there at `log_level`.
pub fn bpf_prog_load(
    prog_type: u32,
    expected_attach_type: u32,
    insns: &[aya_obj::generated::bpf_insn],
    license: &CStr,
    name: &str,
    log: Option<(&mut [u8], u32)>,
) -> io::Result<OwnedFd> {
    let mut pname = [0u8; 16];
    for (d, s) in pname.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    let mut attr = [0u64; 16];
    attr[0] = u64::from(prog_type) | ((insns.len() as u64) << 32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    if let Some((buf, level)) = log {
        let size = u32::try_from(buf.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        // log_level | log_size << 32; log_buf.
        attr[3] = u64::from(level) | (u64::from(size) << 32);
        attr[4] = buf.as_mut_ptr() as u64;
    }
    let (lo, hi) = pname.split_at(8);
    attr[6] = u64::from_ne_bytes(lo.try_into().unwrap_or([0; 8]));
    attr[7] = u64::from_ne_bytes(hi.try_into().unwrap_or([0; 8]));
    // prog_ifindex (0) | expected_attach_type << 32.
    attr[8] = u64::from(expected_attach_type) << 32;
    // SAFETY: the pointers in `attr` are `insns` (read, `insns.len()`
    // instructions), `license` (a C string) and the log buffer (written,
    // at most its length): all borrowed for this call.
    unsafe { bpf_fd(BPF_PROG_LOAD, &mut attr) }
}

/// `BPF_LINK_CREATE`: attaches `prog` to `target` (a cgroup) as
/// `attach_type`; dropping the link detaches it.
pub fn bpf_link_create(
    prog: BorrowedFd<'_>,
    target: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<OwnedFd> {
    let mut attr = [0u64; 16];
    // prog_fd | target_fd << 32; attach_type | flags << 32.
    attr[0] = prog.as_raw_fd() as u32 as u64 | ((target.as_raw_fd() as u32 as u64) << 32);
    attr[1] = u64::from(attach_type);
    // SAFETY: a link_create attribute holds no pointer.
    unsafe { bpf_fd(BPF_LINK_CREATE, &mut attr) }
}

// ---------------------------------------------------------------------
// Confinement (the clone child's steps: no allocation in any of these).
// ---------------------------------------------------------------------

/// `chdir(dir)`. No allocation.
pub fn chdir(dir: &CStr) -> io::Result<()> {
    Ok(rustix::process::chdir(dir)?)
}

/// `unshare(CLONE_NEWCGROUP)`: a cgroup namespace rooted at the current
/// cgroup. No allocation.
pub fn unshare_cgroup_namespace() -> io::Result<()> {
    // SAFETY: rustix marks unshare unsafe for CLONE_FILES (descriptors
    // other threads see would differ); a cgroup namespace changes no
    // memory or descriptor.
    Ok(unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWCGROUP) }?)
}

/// `prctl(PR_SET_SECUREBITS, bits)`. No allocation.
pub fn set_securebits(bits: u32) -> io::Result<()> {
    Ok(rustix::thread::set_capabilities_secure_bits(
        rustix::thread::CapabilitiesSecureBits::from_bits_retain(bits),
    )?)
}

/// `prctl(PR_CAPBSET_DROP, cap)` (EINVAL: this kernel has no such
/// capability). No allocation.
pub fn drop_bounding_capability(cap: u32) -> io::Result<()> {
    let set = 1u64
        .checked_shl(cap)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::thread::remove_capability_from_bounding_set(
        rustix::thread::CapabilitySet::from_bits_retain(set),
    )?)
}

/// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)`. No allocation.
pub fn clear_ambient_capabilities() -> io::Result<()> {
    Ok(rustix::thread::clear_ambient_capability_set()?)
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`. No allocation.
pub fn set_no_new_privs() -> io::Result<()> {
    Ok(rustix::thread::set_no_new_privs(true)?)
}

/// `capset`: empties the effective, permitted and inheritable sets. No
/// allocation.
pub fn clear_capabilities() -> io::Result<()> {
    use rustix::thread::{CapabilitySet, CapabilitySets};
    Ok(rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: CapabilitySet::empty(),
            inheritable: CapabilitySet::empty(),
        },
    )?)
}

/// `landlock_restrict_self(ruleset, flags)`: the calling thread enters the
/// ruleset's domain. No allocation.
pub fn landlock_restrict_self(ruleset: RawFd, flags: u32) -> io::Result<()> {
    // SAFETY: landlock_restrict_self takes no pointer; the kernel checks
    // that `ruleset` is a Landlock ruleset descriptor.
    let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, flags) };
    if r != 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, filter)`: installs a classic
/// BPF filter (`log`: with `SECCOMP_FILTER_FLAG_LOG`, refusals are
/// audited). Needs no_new_privs or CAP_SYS_ADMIN. No allocation.
pub fn install_seccomp_filter(filter: &[SockFilter], log: bool) -> io::Result<()> {
    let len = u16::try_from(filter.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let prog = libc::sock_fprog {
        len,
        filter: filter.as_ptr().cast_mut().cast(),
    };
    let flags = if log {
        libc::SECCOMP_FILTER_FLAG_LOG
    } else {
        0
    };
    // SAFETY: `prog` points to `len` instructions of `filter` (SockFilter
    // is `struct sock_filter`, repr(C)); the kernel copies them and
    // writes nothing.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            std::ptr::from_ref(&prog),
        )
    };
    if r != 0 {
        return Err(last_error());
    }
    Ok(())
}

/// A program, argv and envp ready for `execve`: C strings and
/// NULL-terminated pointer arrays built beforehand, so that executing
/// allocates nothing.
pub struct ExecArgs {
    program: CString,
    // INVARIANT: `argv_p` and `envp_p` point into `argv` and `envp` (the
    // CStrings' heap buffers, which do not move) and end with NULL.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_p: Vec<*const libc::c_char>,
    envp_p: Vec<*const libc::c_char>,
}

impl ExecArgs {
    /// Builds the arguments; fails if any contains a NUL byte.
    pub fn new(program: &[u8], argv: &[Vec<u8>], envp: &[Vec<u8>]) -> Result<ExecArgs, NulError> {
        let program = CString::new(program)?;
        let argv: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_slice()))
            .collect::<Result<_, _>>()?;
        let envp: Vec<CString> = envp
            .iter()
            .map(|a| CString::new(a.as_slice()))
            .collect::<Result<_, _>>()?;
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|a| a.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        Ok(ExecArgs {
            argv_p: ptrs(&argv),
            envp_p: ptrs(&envp),
            program,
            _argv: argv,
            _envp: envp,
        })
    }

    /// `execve(program, argv, envp)`: returns only if it failed, with the
    /// error. No allocation.
    pub fn exec(&self) -> io::Error {
        // SAFETY: every pointer is a C string owned by `self` or NULL at the
        // end of its array (INVARIANT above); execve only reads them.
        unsafe {
            libc::execve(
                self.program.as_ptr(),
                self.argv_p.as_ptr(),
                self.envp_p.as_ptr(),
            )
        };
        last_error()
    }
}

/// Resets every signal's disposition to `SIG_DFL` (real-time signals
/// included: raw `rt_sigaction`, as glibc refuses its own reserved ones)
/// and empties the signal mask, so no handler of the process can run.
/// No allocation.
pub fn reset_signals() {
    /// The kernel's `struct sigaction` (all zero: SIG_DFL, no flags, empty
    /// mask).
    #[repr(C)]
    #[derive(Default)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let dfl = KernelSigaction::default();
    let empty: u64 = 0;
    // SAFETY: rt_sigaction reads one kernel sigaction of ours (8-byte
    // mask) and, with a NULL old action, writes nothing; rt_sigprocmask
    // reads our 8-byte empty mask and, with a NULL old mask, writes
    // nothing.
    unsafe {
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
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            std::ptr::from_ref(&empty),
            std::ptr::null_mut::<u64>(),
            8usize,
        );
    }
}

/// Every signal blocked in the calling thread until this is dropped
/// (which restores the mask it found).
pub struct SignalsBlocked {
    old: libc::sigset_t,
}

/// Blocks every signal in the calling thread (`pthread_sigmask`; glibc
/// keeps its own internal ones).
pub fn block_all_signals() -> io::Result<SignalsBlocked> {
    let mut all = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises `all`; pthread_sigmask reads `all`
    // and, on success, initialises `old`, which is read only then.
    unsafe {
        libc::sigfillset(all.as_mut_ptr());
        let r = libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr());
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(SignalsBlocked {
            old: old.assume_init(),
        })
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restoring the mask pthread_sigmask gave us.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// A private anonymous mapping to run a clone child on, its lowest page a
/// guard page; unmapped when dropped.
pub struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

impl ChildStack {
    /// Maps `len` bytes (a multiple of the page size).
    pub fn new(len: usize) -> io::Result<ChildStack> {
        // SAFETY: a fresh private anonymous mapping that nothing else refers
        // to; its lowest page becomes the guard page. If mprotect fails the
        // mapping is unmapped by the ChildStack's drop.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                return Err(last_error());
            }
            let s = ChildStack { base: p, len };
            if libc::mprotect(p, 4096, libc::PROT_NONE) != 0 {
                return Err(last_error());
            }
            Ok(s)
        }
    }

    /// The lowest address (clone3's `stack`).
    pub fn base(&self) -> *mut libc::c_void {
        self.base
    }

    /// Its size (clone3's `stack_size`).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never: a mapping has at least its guard page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping we made; whoever ran on it (a clone
        // child that has executed a program or exited) no longer does.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

#[cfg(test)]
mod tests {
    //! The sys layer on this machine's kernel, as any user (no root).
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test assertions")]
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

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

    #[test]
    fn descriptors_pass_with_the_first_byte() {
        let (a, b) = UnixStream::pair().unwrap();
        let (rd, wr) = pipe_cloexec().unwrap();
        assert_eq!(send_with_fds(&a, b"hi", &[wr.as_fd()]).unwrap(), 2);
        drop(wr);
        let mut buf = [0u8; 8];
        let mut fds = Vec::new();
        assert_eq!(recv_with_fds(&b, &mut buf, &mut fds).unwrap(), 2);
        assert_eq!(&buf[..2], b"hi");
        assert_eq!(fds.len(), 1);
        // The received descriptor is the pipe's write end.
        std::fs::File::from(fds.pop().unwrap())
            .write_all(b"y")
            .unwrap();
        let mut got = [0u8; 1];
        std::fs::File::from(rd).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"y");
        assert_eq!(socket_domain(&a).unwrap(), libc::AF_UNIX);
        assert!(fstat(&a).unwrap().is_socket());
        assert_eq!(
            peer_credentials(&a).unwrap(),
            (std::process::id() as i32, getuid())
        );
    }

    #[test]
    fn abstract_sockets_listen_connect_accept() {
        let name = format!("kapl-sys-test/{}", std::process::id()).into_bytes();
        let l = unix_stream_socket().unwrap();
        bind_abstract(&l, &name).unwrap();
        listen(&l, 4).unwrap();
        let c = unix_stream_socket().unwrap();
        connect_abstract(&c, &name).unwrap();
        let s = accept(&l).unwrap();
        assert_eq!(send_with_fds(&c, b"z", &[]).unwrap(), 1);
        let mut buf = [0u8; 4];
        assert_eq!(recv_with_fds(&s, &mut buf, &mut Vec::new()).unwrap(), 1);
        let long = vec![b'x'; 200];
        assert_eq!(
            bind_abstract(unix_stream_socket().unwrap(), &long)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ENAMETOOLONG)
        );
    }

    #[test]
    fn exec_args_refuse_nul_bytes() {
        assert!(ExecArgs::new(b"/bin/true", &[b"true".to_vec()], &[]).is_ok());
        assert!(ExecArgs::new(b"/bin/t\0rue", &[], &[]).is_err());
        assert!(ExecArgs::new(b"/bin/true", &[b"a\0".to_vec()], &[]).is_err());
    }
}
