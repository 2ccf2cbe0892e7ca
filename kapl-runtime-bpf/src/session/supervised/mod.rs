//! The supervised layer: calls Landlock has no right for, sent here by the
//! commands' seccomp filter (user notification), decided exactly against
//! the step's automata and performed on the command's behalf (stage:
//! runtime, supervised calls).
//!
//! Input: each command's listener (handed over at spawn; its children
//! share it). For one notification: the call and its arguments. Output:
//! the answer to the kernel (the call's result, an errno, or "run it" for
//! `listen` on a bound socket and, below Landlock ABI 6, for a signal that
//! reaches only processes of the session) and a [`Decision`] (every
//! denial; the first allow per grant and object).
//!
//! How an object is resolved, so that the decision is about the object
//! acted on: the command's working directory and descriptors are opened
//! through `/proc/TID/{cwd,fd/N}` (`O_PATH`); a path is copied out of its
//! memory once (a thread rewriting it afterwards changes nothing) and
//! resolved from there by `openat2` without magic links (they would name
//! the supervisor's objects); the decision is made on the path of the
//! object that resolution reached (`/proc/self/fd/M`), and the call is
//! performed on that same descriptor (`AT_EMPTY_PATH`, or its magic link).
//! A rename or a symbolic link swapped in after resolution cannot redirect
//! it. The path walk and the call run with the supervisor's effective
//! capabilities dropped: commands have none, and their uid and groups are
//! the supervisor's (no_new_privs, no capability to change them). Only
//! reaching into the command (`/proc/TID`, its memory, `pidfd_getfd`)
//! keeps them, as a debugger would.

mod creator;
mod names;
mod signals;

use super::Session;
use crate::seccomp;
use crate::sys::{self, Answer, Notif};
use kapl_image::NetOp;
use kapl_runtime::attribution;
use kapl_runtime::auditlog::escape_bytes;
use kapl_runtime::record::{Mechanism, Protocol, Target};
use kapl_runtime::report::{Decision, Notice};
use kapl_runtime::supervised::{self, AT_FDCWD, Call, Family, IN_DONT_FOLLOW, Object, Verdict};
use std::ffi::CString;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// `PATH_MAX`: the longest path a call may pass.
const PATH_MAX: usize = 4096;
/// `XATTR_NAME_MAX` and `XATTR_SIZE_MAX`.
const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: u64 = 65536;
/// Notifications served per listener per pump (the rest wait for the
/// next round, so one busy command cannot starve the others).
const BATCH: usize = 64;

/// One command's listener.
pub struct Listener {
    /// The command.
    pub cmd: u64,
    /// The step it runs in.
    pub step: u32,
    fd: OwnedFd,
}

impl Listener {
    /// The listener of command `cmd`, started in `step`.
    pub fn new(cmd: u64, step: u32, fd: OwnedFd) -> Listener {
        Listener { cmd, step, fd }
    }

    /// Its descriptor, to poll.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The listeners, and the thread that makes names on the commands'
/// behalf.
#[derive(Default)]
pub struct Supervised {
    /// Listeners of commands whose processes may still call.
    pub listeners: Vec<Listener>,
    /// Started with the first creating call; an error after it failed to
    /// start (every creating call is then refused).
    creator: Option<Result<creator::Creator, ()>>,
}

/// What serving one notification produced.
struct Served {
    answer: Answer,
    decision: Option<Decision>,
}

impl Served {
    fn answer(answer: Answer) -> Served {
        Served {
            answer,
            decision: None,
        }
    }
    fn errno(e: i32) -> Served {
        Served {
            answer: Answer::Errno(e),
            decision: None,
        }
    }
    fn from_io(e: &io::Error) -> Served {
        Served::errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// The object resolved: its descriptor and what the decision needs.
struct Resolved {
    fd: OwnedFd,
    dir: bool,
    regular: bool,
    symlink: bool,
    ino: u64,
    path: Option<Vec<u8>>,
}

impl Session {
    /// Serves every pending supervised call; forgets listeners no process
    /// uses any more.
    pub(super) fn serve_supervised(&mut self, out: &mut Vec<Notice>) {
        let ready = {
            let fds: Vec<_> = self
                .supervised
                .listeners
                .iter()
                .map(|l| l.fd.as_fd())
                .collect();
            if fds.is_empty() {
                return;
            }
            sys::ready_now(&fds).unwrap_or_default()
        };
        let mut gone = Vec::new();
        for (i, (readable, hup)) in ready.into_iter().enumerate() {
            if readable {
                // The poll above says the first one is pending; the rest
                // are looked for before each receive (it blocks).
                for k in 0..BATCH {
                    if !self.serve_one(i, k > 0, out) {
                        break;
                    }
                }
            } else if hup {
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            self.supervised.listeners.swap_remove(i);
        }
    }

    /// Receives and answers one notification of listener `i` (`look`:
    /// first make sure one is pending); false when none was.
    fn serve_one(&mut self, i: usize, look: bool, out: &mut Vec<Notice>) -> bool {
        let l = &self.supervised.listeners[i];
        if look {
            match sys::ready_now(&[l.fd.as_fd()]) {
                Ok(r) if r.first().is_some_and(|(rd, _)| *rd) => {}
                _ => return false,
            }
        }
        let n = match sys::notif_recv(&l.fd) {
            Ok(n) => n,
            // Its caller went away (killed) between poll and receive.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return true,
            Err(_) => return false,
        };
        let (cmd, step) = (l.cmd, l.step);
        let served = match seccomp::supervised_call(n.nr) {
            Some(call) => self.decide_and_perform(i, &n, call, cmd, step),
            None => match seccomp::signal_call(n.nr) {
                Some(call) => self.serve_signal(i, &n, call, cmd, step),
                // The filter sends nothing else; answer like an unknown
                // call.
                None => Served::errno(libc::ENOSYS),
            },
        };
        let mut decision = served.decision;
        // Allowed by the grants, refused by the kernel for want of a
        // capability (the command has none, so only the owner may change
        // a file's mode, owner or times): a refusal too, and said so.
        if matches!(served.answer, Answer::Errno(libc::EPERM))
            && let Some(d) = decision.as_mut()
            && let Some(g) = d.grant.take()
        {
            d.why = Some(format!(
                "grant {g} allows it, but the kernel refused the call (EPERM): commands hold no capability, so only a file's owner may change its mode, owner or times, and a node or an owner change that needs a capability (CAP_CHOWN, CAP_MKNOD, …) is refused"
            ));
        }
        let l = &self.supervised.listeners[i];
        let answered = sys::notif_send(&l.fd, n.id, served.answer).is_ok();
        if let Some(d) = decision {
            // A refusal is reported even when its caller is gone; an allow
            // only when the call completed.
            if d.grant.is_none() || answered {
                self.emit(out, d);
            }
        }
        true
    }

    fn decide_and_perform(
        &mut self,
        i: usize,
        n: &Notif,
        call: Call,
        cmd: u64,
        step: u32,
    ) -> Served {
        let family = call.family();
        if let Some(sock) = call.socket_fd(&n.args) {
            return self.listen(i, n, sock, cmd, step);
        }
        if matches!(
            family,
            Family::Create | Family::Delete | Family::Move | Family::HardLink | Family::Bind
        ) {
            return self.serve_name(i, n, call, cmd, step);
        }
        let Some(obj) = call.object(&n.args) else {
            return Served::errno(libc::ENOSYS);
        };
        let r = match resolve(n.pid, obj) {
            Ok(r) => r,
            Err(e) => return Served::from_io(&e),
        };
        // The pid still names the caller (not a recycled one): the
        // descriptors and memory read were its own.
        if !sys::notif_id_valid(&self.supervised.listeners[i].fd, n.id) {
            return Served::errno(libc::ENOENT);
        }
        let verdict = match &r.path {
            Some(p) => supervised::decide(self.plan(), step, family, p, r.dir),
            // Not a file-system object (a pipe, a socket): nothing a
            // grant names.
            None => {
                return Served {
                    answer: perform_as_command(n, call, &r),
                    decision: None,
                };
            }
        };
        let path = r.path.clone().unwrap_or_default();
        let target = Target::Path {
            path: Some(escape_bytes(&path)),
            dev: None,
            ino: Some(r.ino),
        };
        let decision = |grant, nearest| {
            decision(
                n,
                cmd,
                step,
                family.operation().to_string(),
                target,
                grant,
                nearest,
                None,
            )
        };
        match verdict {
            Verdict::Deny { nearest } => Served {
                answer: Answer::Errno(libc::EACCES),
                decision: Some(decision(None, nearest)),
            },
            // The reporter keeps the first allow per grant and object.
            Verdict::Allow { grant } => Served {
                answer: perform_as_command(n, call, &r),
                decision: Some(decision(Some(grant), None)),
            },
        }
    }

    /// `listen`: refused on an IPv4 or IPv6 socket bound to no port (the
    /// kernel would pick one no `net bind` grant named); otherwise the
    /// kernel runs it (a bound socket's port was decided by the bind hook
    /// and cannot change, so nothing can differ between this check and
    /// the call).
    fn listen(&mut self, i: usize, n: &Notif, sock: i32, cmd: u64, step: u32) -> Served {
        let fd = match pidfd_of(n.pid).and_then(|p| sys::pidfd_getfd(&p, sock)) {
            Ok(fd) => fd,
            Err(e) => return Served::from_io(&e),
        };
        if !sys::notif_id_valid(&self.supervised.listeners[i].fd, n.id) {
            return Served::errno(libc::ENOENT);
        }
        let (family, port) = match sys::socket_port(&fd) {
            Ok(x) => x,
            // Not a socket: the kernel says so itself.
            Err(_) => {
                return Served {
                    answer: Answer::Continue,
                    decision: None,
                };
            }
        };
        let Some(why) = supervised::listen_refusal(family, port) else {
            return Served {
                answer: Answer::Continue,
                decision: None,
            };
        };
        let any = if family == libc::AF_INET6 {
            IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::from(Ipv4Addr::UNSPECIFIED)
        };
        let nearest = attribution::nearest_net(self.plan(), step, NetOp::Bind, any, 0)
            .map(|(g, r)| (g, format!("{why}; {r}")));
        Served {
            answer: Answer::Errno(libc::EPERM),
            decision: Some(decision(
                n,
                cmd,
                step,
                Family::Listen.operation().to_string(),
                Target::Endpoint {
                    address: Some(any),
                    port: 0,
                    protocol: Protocol::Tcp,
                },
                None,
                nearest,
                None,
            )),
        }
    }
}

/// A decision of the supervised layer about thread `n.pid`'s call.
#[allow(clippy::too_many_arguments)]
fn decision(
    n: &Notif,
    cmd: u64,
    step: u32,
    operation: String,
    target: Target,
    grant: Option<u32>,
    nearest: attribution::Nearest,
    why: Option<String>,
) -> Decision {
    Decision {
        cmd: Some(cmd),
        step,
        pid: i32::try_from(n.pid).ok(),
        comm: comm_of(n.pid),
        exe: std::fs::read_link(format!("/proc/{}/exe", n.pid))
            .ok()
            .map(|p| p.display().to_string()),
        operation,
        target,
        grant,
        nearest,
        narrowed: None,
        why,
        mechanism: Mechanism::Supervisor,
        audit_serial: None,
    }
}

/// The thread's command name.
fn comm_of(tid: u32) -> String {
    read_proc(&format!("/proc/{tid}/comm"), 64)
        .map(|s| String::from_utf8_lossy(&s).trim_end().to_string())
        .unwrap_or_default()
}

/// The first `cap` bytes of a `/proc` file, in one `read`: a seq file
/// makes its whole text on the first read, so `cap` bytes hold all of a
/// file known to be shorter (open, read, close: `read_to_string` adds a
/// `statx` and reads again until end of file).
fn read_proc(path: &str, cap: usize) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![0u8; cap];
    let n = std::fs::File::open(path)?.read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// A pidfd for the process thread `tid` belongs to.
fn pidfd_of(tid: u32) -> io::Result<OwnedFd> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
    let tgid = status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    sys::pidfd_open(tgid)
}

/// Copies a NUL-terminated string (at most `max` bytes before the NUL)
/// out of thread `tid`'s memory, page by page (a string may end just
/// before unmapped memory).
fn read_string(tid: u32, addr: u64, max: usize, too_long: i32) -> io::Result<Vec<u8>> {
    const PAGE: u64 = 4096;
    let mut out = Vec::new();
    let mut a = addr;
    while out.len() <= max {
        let chunk = (PAGE - a % PAGE).min((max + 1 - out.len()) as u64) as usize;
        let mut buf = vec![0u8; chunk];
        let got = sys::read_memory(tid, a, &mut buf)?;
        if got == 0 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        if let Some(end) = buf[..got].iter().position(|b| *b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Ok(out);
        }
        out.extend_from_slice(&buf[..got]);
        a += got as u64;
    }
    Err(io::Error::from_raw_os_error(too_long))
}

/// Copies exactly `len` bytes out of thread `tid`'s memory.
fn read_exact(tid: u32, addr: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    if len > 0 && sys::read_memory(tid, addr, &mut buf)? != len {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(buf)
}

/// A descriptor or the working directory of thread `tid`, as the kernel
/// would start resolving from it.
fn proc_object(tid: u32, dirfd: i32) -> io::Result<OwnedFd> {
    let p = if dirfd == AT_FDCWD {
        format!("/proc/{tid}/cwd")
    } else if dirfd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    } else {
        format!("/proc/{tid}/fd/{dirfd}")
    };
    let c = CString::new(p).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    sys::open_proc_object(&c).map_err(|e| match e.raw_os_error() {
        // A descriptor the command does not have.
        Some(libc::ENOENT) if dirfd != AT_FDCWD => io::Error::from_raw_os_error(libc::EBADF),
        _ => e,
    })
}

/// Resolves a call's object in thread `tid`'s context.
fn resolve(tid: u32, obj: Object) -> io::Result<Resolved> {
    resolve_with(tid, obj, 0)
}

/// [`resolve`] with `openat2` resolve flags of the command's own
/// (`openat2`'s `RESOLVE_BENEATH` and the rest).
fn resolve_with(tid: u32, obj: Object, resolve_flags: u64) -> io::Result<Resolved> {
    let fd = match obj {
        Object::Fd(fd) => proc_object(tid, fd)?,
        Object::At {
            dirfd,
            path,
            follow,
            empty_ok,
        } => {
            let p = if path == 0 {
                if !empty_ok || dirfd == AT_FDCWD {
                    return Err(io::Error::from_raw_os_error(libc::EFAULT));
                }
                Vec::new()
            } else {
                read_string(tid, path, PATH_MAX - 1, libc::ENAMETOOLONG)?
            };
            if p.is_empty() {
                if !empty_ok {
                    return Err(io::Error::from_raw_os_error(libc::ENOENT));
                }
                proc_object(tid, dirfd)?
            } else {
                let c = CString::new(p).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
                // The walk is the command's: with its (empty) capabilities,
                // so directories it may not search stop it here too.
                let base = if c.as_bytes().first() == Some(&b'/') {
                    None
                } else {
                    Some(proc_object(tid, dirfd)?)
                };
                let _caps = sys::drop_effective_caps()
                    .map_err(|_| io::Error::from_raw_os_error(libc::EACCES))?;
                match &base {
                    Some(b) => sys::open_object_at(b, &c, follow, resolve_flags)?,
                    None => sys::open_object_at(rustix::fs::CWD, &c, follow, resolve_flags)?,
                }
            }
        }
    };
    let st = sys::fstat(&fd)?;
    let link = sys::fd_path(&fd)?;
    let path = supervised::object_path(&link, st.nlink == 0).map(<[u8]>::to_vec);
    Ok(Resolved {
        dir: st.is_dir(),
        regular: st.mode & 0o170_000 == 0o100_000,
        symlink: st.is_symlink(),
        ino: st.ino,
        fd,
        path,
    })
}

/// Converts two `struct timeval`s (or a `struct utimbuf`) at `addr` in
/// thread `tid` to timespecs.
fn read_times(tid: u32, call: Call, addr: u64) -> io::Result<Option<[libc::timespec; 2]>> {
    if addr == 0 {
        return Ok(None);
    }
    let b = read_exact(tid, addr, 32)?;
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i * 8..i * 8 + 8]);
        i64::from_ne_bytes(w)
    };
    let ts = |sec: i64, nsec: i64| libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    Ok(Some(match call {
        // struct timespec[2]: sec, nsec, sec, nsec.
        Call::Utimensat => [ts(word(0), word(1)), ts(word(2), word(3))],
        // struct timeval[2]: sec, usec, sec, usec.
        Call::Utimes | Call::Futimesat => {
            let ns = |us: i64| {
                if (0..1_000_000).contains(&us) {
                    Ok(us * 1000)
                } else {
                    Err(io::Error::from_raw_os_error(libc::EINVAL))
                }
            };
            [ts(word(0), ns(word(1))?), ts(word(2), ns(word(3))?)]
        }
        // struct utimbuf: actime, modtime.
        _ => [ts(word(0), 0), ts(word(1), 0)],
    }))
}

/// [`perform`] with the supervisor's effective capabilities dropped (the
/// command has none); the inotify instance is taken from the command
/// first (that needs the supervisor's right to inspect it).
fn perform_as_command(n: &Notif, call: Call, r: &Resolved) -> Answer {
    let inotify = match call.family() {
        Family::Watch => {
            match pidfd_of(n.pid).and_then(|p| sys::pidfd_getfd(&p, n.args[0] as u32 as i32)) {
                Ok(fd) => Some(fd),
                Err(e) => return Answer::Errno(e.raw_os_error().unwrap_or(libc::EBADF)),
            }
        }
        _ => None,
    };
    match sys::drop_effective_caps() {
        Ok(_caps) => perform(n, call, r, inotify.as_ref()),
        // Cannot act with the command's authority: refuse.
        Err(_) => Answer::Errno(libc::EACCES),
    }
}

/// Performs an allowed call on the resolved object; the kernel's answer
/// becomes the command's.
fn perform(n: &Notif, call: Call, r: &Resolved, inotify: Option<&OwnedFd>) -> Answer {
    let a = &n.args;
    let res: io::Result<i64> = match call.family() {
        Family::Mode => {
            let mode = match call {
                Call::Chmod | Call::Fchmod => a[1],
                _ => a[2],
            } as u32
                & 0o7777;
            if r.symlink {
                Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
            } else {
                sys::chmod_fd(&r.fd, mode).map(|()| 0)
            }
        }
        Family::Owner => {
            let (u, g) = match call {
                Call::Fchownat => (a[2], a[3]),
                _ => (a[1], a[2]),
            };
            sys::chown_fd(&r.fd, u as u32, g as u32).map(|()| 0)
        }
        Family::Times => {
            let addr = match call {
                Call::Utime | Call::Utimes => a[1],
                _ => a[2],
            };
            read_times(n.pid, call, addr)
                .and_then(|t| sys::utimens_fd(&r.fd, t))
                .map(|()| 0)
        }
        Family::SetXattr | Family::RemoveXattr if r.symlink => {
            // Only the user namespace is open to a process without
            // capabilities, and the kernel allows it on no symbolic link.
            Err(io::Error::from_raw_os_error(libc::EPERM))
        }
        Family::SetXattr => xattr_name(n.pid, a[1]).and_then(|name| {
            if a[3] > XATTR_SIZE_MAX {
                return Err(io::Error::from_raw_os_error(libc::E2BIG));
            }
            let value = read_exact(n.pid, a[2], a[3] as usize)?;
            sys::setxattr_fd(&r.fd, &name, &value, a[4] as i32).map(|()| 0)
        }),
        Family::RemoveXattr => {
            xattr_name(n.pid, a[1]).and_then(|name| sys::removexattr_fd(&r.fd, &name).map(|()| 0))
        }
        Family::Watch => {
            let mask = (a[2] & !IN_DONT_FOLLOW) as u32;
            match inotify {
                Some(ino) => sys::inotify_watch_fd(ino, &r.fd, mask).map(i64::from),
                None => Err(io::Error::from_raw_os_error(libc::EBADF)),
            }
        }
        Family::Truncate if r.dir => Err(io::Error::from_raw_os_error(libc::EISDIR)),
        Family::Truncate if !r.regular => Err(io::Error::from_raw_os_error(libc::EINVAL)),
        Family::Truncate => i64::try_from(a[1])
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
            .and_then(|len| {
                let len =
                    u64::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
                let f = sys::reopen(&r.fd, (libc::O_WRONLY | libc::O_NONBLOCK) as u32)?;
                sys::ftruncate(&f, len)
            })
            .map(|()| 0),
        // Served by `names` and `listen`, never here.
        Family::Listen
        | Family::Create
        | Family::Delete
        | Family::Move
        | Family::HardLink
        | Family::Bind => Err(io::Error::from_raw_os_error(libc::ENOSYS)),
    };
    match res {
        Ok(v) => Answer::Value(v),
        Err(e) => Answer::Errno(e.raw_os_error().unwrap_or(libc::EIO)),
    }
}

/// An extended attribute's name from the command's memory.
fn xattr_name(tid: u32, addr: u64) -> io::Result<CString> {
    let name = read_string(tid, addr, XATTR_NAME_MAX, libc::ERANGE)?;
    if name.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ERANGE));
    }
    CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}
