//! Making, removing and moving names on the commands' behalf: `open` with
//! `O_CREAT` of a new name, `mknod`, `mkdir`, `symlink`, `link`,
//! `unlink`, `rmdir`, `rename` and `bind` of a pathname UNIX socket
//! (stage: runtime, supervised calls).
//!
//! The step's Landlock domain grants none of the rights these need
//! (make, remove, refer), so every one of them comes here: the name's
//! directory is resolved in the command's context and the decision is
//! made on the directory's real path and the name, exactly against the
//! step's grants — no per-entry narrowing, so a name that did not exist
//! when the step started is decided like any other. The creator thread
//! then acts on that directory descriptor (a rename of a directory on the
//! way cannot redirect it), with the command's umask and no capability; a
//! new file's descriptor is installed in the command (`ADDFD`).

use super::{PATH_MAX, Served, creator::Creator, proc_object, read_exact, read_string};
use crate::session::Session;
use crate::sys::{self, Answer, FileInfo, Notif};
use kapl_runtime::access;
use kapl_runtime::auditlog::escape_bytes;
use kapl_runtime::record::Target;
use kapl_runtime::supervised::{
    self, AT_EMPTY_PATH, AT_REMOVEDIR, AT_SYMLINK_FOLLOW, Call, Family, Name, O_CLOEXEC, O_CREAT,
    O_EXCL, O_NOFOLLOW, O_PATH, Verdict,
};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// `__O_TMPFILE`: an unnamed file (refused: it makes no name to decide).
const O_TMPFILE_BIT: u64 = 0o20_000_000;
/// `RENAME_EXCHANGE`.
const RENAME_EXCHANGE: u64 = 2;
/// `AF_UNIX`.
const AF_UNIX: u16 = 1;
/// `S_IFMT` and `S_IFDIR`.
const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;

/// A name resolved in a command's context.
struct Named {
    /// Its directory (`O_PATH`).
    dir: OwnedFd,
    /// The last component.
    name: CString,
    /// The directory's real path and the name: what is decided.
    path: Vec<u8>,
    /// What the name is now (`None`: nothing).
    now: Option<FileInfo>,
    /// The path ended in `/`.
    slash: bool,
}

fn err(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

/// Resolves `n` in thread `tid`'s context: its directory with `openat2`
/// (`resolve` flags plus no magic links) with no capability, and what the
/// last component is. `dot` is the errno for a last component `.` or
/// `..` (the kernel's answer differs by call).
fn resolve_name(tid: u32, n: Name, resolve: u64, dot: i32) -> io::Result<Named> {
    let raw = read_string(tid, n.path, PATH_MAX - 1, libc::ENAMETOOLONG)?;
    named_at(tid, n.dirfd, &raw, resolve, dot)
}

fn named_at(tid: u32, dirfd: i32, raw: &[u8], resolve: u64, dot: i32) -> io::Result<Named> {
    if raw.is_empty() {
        return Err(err(libc::ENOENT));
    }
    let trimmed_len = raw.len() - raw.iter().rev().take_while(|b| **b == b'/').count();
    let slash = trimmed_len < raw.len();
    let p = &raw[..trimmed_len];
    if p.is_empty() {
        // "/" itself.
        return Err(err(libc::EBUSY));
    }
    let (parent, name) = match p.iter().rposition(|b| *b == b'/') {
        Some(0) => (Some(&b"/"[..]), &p[1..]),
        Some(i) => (Some(&p[..i]), &p[i + 1..]),
        None => (None, p),
    };
    if name == b"." || name == b".." {
        return Err(err(dot));
    }
    let name = CString::new(name).map_err(|_| err(libc::EINVAL))?;
    let base = match parent {
        Some(pp) if pp.first() == Some(&b'/') => None,
        _ => Some(proc_object(tid, dirfd)?),
    };
    // One span without capabilities for the walk, the directory's path
    // (its own descriptor's link: no capability needed) and the lookup of
    // the name: each capability change costs two system calls.
    let caps = sys::drop_effective_caps().map_err(|_| err(libc::EACCES))?;
    let rel = CString::new(parent.unwrap_or(b".")).map_err(|_| err(libc::EINVAL))?;
    let dir = match &base {
        Some(b) => sys::open_dir_at(b, &rel, resolve)?,
        None => sys::open_dir_at(rustix::fs::CWD, &rel, resolve)?,
    };
    let mut path = sys::fd_path(&dir)?;
    if path.first() != Some(&b'/') {
        return Err(err(libc::ENOENT));
    }
    if path != b"/" {
        path.push(b'/');
    }
    path.extend_from_slice(name.as_bytes());
    let now = sys::lookup_at(&dir, &name)?;
    drop(caps);
    Ok(Named {
        dir,
        name,
        path,
        now,
        slash,
    })
}

/// The command's umask, from `/proc/TID/status` (its second line).
fn umask_of(tid: u32) -> io::Result<u32> {
    let status = super::read_proc(&format!("/proc/{tid}/status"), 4096)?;
    status
        .split(|b| *b == b'\n')
        .find_map(|l| l.strip_prefix(b"Umask:"))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .ok_or_else(|| err(libc::ESRCH))
}

fn is_dir(i: &FileInfo) -> bool {
    i.mode & S_IFMT == S_IFDIR
}

/// A decided plan on the name `t`.
fn decided(
    t: Named,
    op: &str,
    verdict: Verdict,
    why: Option<String>,
    act: Box<dyn FnOnce() -> io::Result<Answer> + Send>,
) -> Plan {
    Plan::Decided {
        path: t.path,
        operation: op.to_string(),
        verdict,
        why,
        act,
    }
}

/// What one name operation was decided to be.
enum Plan {
    /// The kernel runs the call (it makes no new name: Landlock decides).
    Kernel,
    /// Refused before any decision (the kernel's own answer).
    Errno(i32),
    /// Answered without a decision (nothing any right covers).
    Done(Answer),
    /// Decided on `path`: perform it (with `grant`), or refuse it.
    Decided {
        path: Vec<u8>,
        operation: String,
        verdict: Verdict,
        why: Option<String>,
        act: Box<dyn FnOnce() -> io::Result<Answer> + Send>,
    },
}

impl Session {
    /// Serves one name-making, name-removing or name-moving call.
    pub(super) fn serve_name(
        &mut self,
        i: usize,
        n: &Notif,
        call: Call,
        cmd: u64,
        step: u32,
    ) -> Served {
        let plan = match self.decide_name(n, call, step) {
            Ok(p) => p,
            Err(e) => return Served::from_io(&e),
        };
        // The pid still names the caller: what was read was its own.
        if !sys::notif_id_valid(&self.supervised.listeners[i].fd, n.id) {
            return Served::errno(libc::ENOENT);
        }
        let (path, operation, verdict, why, act) = match plan {
            Plan::Kernel => return Served::answer(Answer::Continue),
            Plan::Errno(e) => return Served::errno(e),
            Plan::Done(a) => return Served::answer(a),
            Plan::Decided {
                path,
                operation,
                verdict,
                why,
                act,
            } => (path, operation, verdict, why, act),
        };
        let (answer, grant, nearest) = match verdict {
            Verdict::Allow { grant } if why.is_none() => {
                // Only a call that makes a new inode is shaped by the
                // command's umask (`/proc/TID/status`, the costliest read
                // here): not unlink, rmdir, rename or link.
                let umask = if matches!(call.family(), Family::Create | Family::Bind) {
                    umask_of(n.pid).map(Some)
                } else {
                    Ok(None)
                };
                let answer = match umask {
                    // A new inode: on the creator thread, with the
                    // command's umask.
                    Ok(Some(m)) => match self.creator() {
                        Some(c) => c.run(Some(m), act),
                        None => Err(err(libc::EACCES)),
                    },
                    // Removing, moving or linking a name: here, with no
                    // effective capability (the command's authority; a
                    // round trip to the creator thread saved).
                    Ok(None) => sys::drop_effective_caps()
                        .map_err(|_| err(libc::EACCES))
                        .and_then(|_caps| act()),
                    // Cannot act with the command's authority: refuse.
                    Err(_) => Err(err(libc::EACCES)),
                }
                .unwrap_or_else(|e| Answer::Errno(e.raw_os_error().unwrap_or(libc::EACCES)));
                (answer, Some(grant), None)
            }
            // Each part granted, the whole not: EXDEV, as Landlock answers
            // a move it refuses (`mv` then copies, which is decided anew).
            Verdict::Allow { .. } => (Answer::Errno(libc::EXDEV), None, None),
            Verdict::Deny { nearest } => (Answer::Errno(libc::EACCES), None, nearest),
        };
        let target = Target::Path {
            path: Some(escape_bytes(&path)),
            dev: None,
            ino: None,
        };
        let decision = super::decision(n, cmd, step, operation, target, grant, nearest, why);
        Served {
            answer,
            decision: Some(decision),
        }
    }

    /// The creator thread, started on first use.
    fn creator(&mut self) -> Option<&Creator> {
        let c = self
            .supervised
            .creator
            .get_or_insert_with(|| Creator::start().map_err(drop));
        c.as_ref().ok()
    }

    /// Resolves and decides one call; the action to take if allowed.
    fn decide_name(&self, n: &Notif, call: Call, step: u32) -> io::Result<Plan> {
        match (call.family(), call) {
            (Family::Bind, _) => self.plan_bind(n, step),
            (Family::Create, Call::Open | Call::Openat | Call::Creat | Call::Openat2) => {
                let Some((name, _)) = call.names(&n.args) else {
                    return Ok(Plan::Errno(libc::ENOSYS));
                };
                self.plan_open(n, call, name, step)
            }
            (Family::Create, _) => self.plan_make(n, call, step),
            (Family::Delete, _) => self.plan_delete(n, call, step),
            (Family::Move, _) => self.plan_move(n, call, step),
            (Family::HardLink, _) => self.plan_link(n, call, step),
            _ => Ok(Plan::Errno(libc::ENOSYS)),
        }
    }

    /// `mkdir`, `mknod`, `symlink`: a new name, `create` at it.
    fn plan_make(&self, n: &Notif, call: Call, step: u32) -> io::Result<Plan> {
        let (a, tid, plan) = (n.args, n.pid, self.plan());
        let Some((name, _)) = call.names(&a) else {
            return Ok(Plan::Errno(libc::ENOSYS));
        };
        Ok(match call {
            Call::Mkdir | Call::Mkdirat => {
                let t = resolve_name(tid, name, 0, libc::EEXIST)?;
                if t.now.is_some() {
                    return Ok(Plan::Errno(libc::EEXIST));
                }
                let verdict = supervised::decide_all(plan, step, &t.path, &[access::MAKE_DIR]);
                let (dir, nm, mode) = (t.dir.try_clone()?, t.name.clone(), call.mode(&a));
                decided(
                    t,
                    "create (mkdir)",
                    verdict,
                    None,
                    Box::new(move || sys::mkdir_at(&dir, &nm, mode).map(|()| Answer::Value(0))),
                )
            }
            Call::Mknod | Call::Mknodat => {
                let t = resolve_name(tid, name, 0, libc::EEXIST)?;
                if t.now.is_some() {
                    return Ok(Plan::Errno(libc::EEXIST));
                }
                if t.slash {
                    return Ok(Plan::Errno(libc::ENOENT));
                }
                let mode = call.mode(&a);
                let dev = if call == Call::Mknod { a[2] } else { a[3] };
                let verdict = supervised::decide_all(plan, step, &t.path, &[access::MAKE_REG]);
                let (dir, nm) = (t.dir.try_clone()?, t.name.clone());
                decided(
                    t,
                    "create (mknod)",
                    verdict,
                    None,
                    Box::new(move || {
                        sys::mknod_at(&dir, &nm, mode, dev).map(|()| Answer::Value(0))
                    }),
                )
            }
            _ => {
                // symlink, symlinkat: the target is only text.
                let target = read_string(tid, a[0], PATH_MAX - 1, libc::ENAMETOOLONG)?;
                if target.is_empty() {
                    return Ok(Plan::Errno(libc::ENOENT));
                }
                let target = CString::new(target).map_err(|_| err(libc::EINVAL))?;
                let t = resolve_name(tid, name, 0, libc::EEXIST)?;
                if t.now.is_some() {
                    return Ok(Plan::Errno(libc::EEXIST));
                }
                if t.slash {
                    return Ok(Plan::Errno(libc::ENOENT));
                }
                let verdict = supervised::decide_all(plan, step, &t.path, &[access::MAKE_SYM]);
                let (dir, nm) = (t.dir.try_clone()?, t.name.clone());
                decided(
                    t,
                    "create (symlink)",
                    verdict,
                    None,
                    Box::new(move || {
                        sys::symlink_at(&target, &dir, &nm).map(|()| Answer::Value(0))
                    }),
                )
            }
        })
    }

    /// `unlink`, `rmdir`: `delete` at the name.
    fn plan_delete(&self, n: &Notif, call: Call, step: u32) -> io::Result<Plan> {
        let (a, tid, plan) = (n.args, n.pid, self.plan());
        Ok({
            let Some((name, _)) = call.names(&a) else {
                return Ok(Plan::Errno(libc::ENOSYS));
            };
            let rmdir = call == Call::Rmdir || (call == Call::Unlinkat && a[2] & AT_REMOVEDIR != 0);
            let t = resolve_name(
                tid,
                name,
                0,
                if rmdir { libc::EINVAL } else { libc::EISDIR },
            )?;
            let Some(now) = t.now else {
                return Ok(Plan::Errno(libc::ENOENT));
            };
            let bit = if is_dir(&now) {
                access::REMOVE_DIR
            } else {
                access::REMOVE_FILE
            };
            let verdict = supervised::decide_all(plan, step, &t.path, &[bit]);
            let (dir, nm) = (t.dir.try_clone()?, t.name.clone());
            decided(
                t,
                if rmdir {
                    "delete (rmdir)"
                } else {
                    "delete (unlink)"
                },
                verdict,
                None,
                Box::new(move || sys::unlink_at(&dir, &nm, rmdir).map(|()| Answer::Value(0))),
            )
        })
    }

    /// `rename`, `renameat(2)`: `delete` at the old name, `create` (and
    /// `delete` when it replaces) at the new, the same authority at both.
    fn plan_move(&self, n: &Notif, call: Call, step: u32) -> io::Result<Plan> {
        let (a, tid, plan) = (n.args, n.pid, self.plan());
        Ok({
            let Some((new, Some(old))) = call.names(&a) else {
                return Ok(Plan::Errno(libc::ENOSYS));
            };
            let flags = if call == Call::Renameat2 { a[4] } else { 0 };
            let from = resolve_name(tid, old, 0, libc::EBUSY)?;
            let to = resolve_name(tid, new, 0, libc::EBUSY)?;
            let Some(obj) = from.now else {
                return Ok(Plan::Errno(libc::ENOENT));
            };
            let exchange = flags & RENAME_EXCHANGE != 0;
            if exchange && to.now.is_none() {
                return Ok(Plan::Errno(libc::ENOENT));
            }
            let dir = is_dir(&obj);
            let mk = if dir {
                access::MAKE_DIR
            } else {
                access::MAKE_REG
            };
            let rm = |i: &FileInfo| {
                if is_dir(i) {
                    access::REMOVE_DIR
                } else {
                    access::REMOVE_FILE
                }
            };
            let mut verdict = supervised::decide_all(plan, step, &from.path, &[rm(&obj)]);
            let mut why = None;
            if let Verdict::Allow { .. } = verdict {
                let mut bits = vec![mk];
                if let Some(i) = &to.now {
                    bits.push(rm(i));
                }
                verdict = supervised::decide_all(plan, step, &to.path, &bits);
            }
            if let (Verdict::Allow { .. }, true) = (&verdict, exchange)
                && let Some(i) = &to.now
            {
                let back = if is_dir(i) {
                    access::MAKE_DIR
                } else {
                    access::MAKE_REG
                };
                verdict = supervised::decide_all(plan, step, &from.path, &[back]);
                why = supervised::authority_change(plan, &to.path, &from.path, is_dir(i));
            }
            if matches!(verdict, Verdict::Allow { .. }) && why.is_none() {
                why = supervised::authority_change(plan, &from.path, &to.path, dir);
            }
            let op = format!("rename (to {})", escape_bytes(&to.path));
            let (od, on) = (from.dir.try_clone()?, from.name.clone());
            let (nd, nn) = (to.dir, to.name);
            let f = flags as u32;
            Plan::Decided {
                path: from.path,
                operation: op,
                verdict,
                why,
                act: Box::new(move || {
                    sys::rename_at(&od, &on, &nd, &nn, f).map(|()| Answer::Value(0))
                }),
            }
        })
    }

    /// `link`, `linkat`: `create` at the new name, the same authority at
    /// both names.
    fn plan_link(&self, n: &Notif, call: Call, step: u32) -> io::Result<Plan> {
        let (a, tid, plan) = (n.args, n.pid, self.plan());
        Ok({
            let Some((new, Some(old))) = call.names(&a) else {
                return Ok(Plan::Errno(libc::ENOSYS));
            };
            let flags = if call == Call::Linkat { a[4] } else { 0 };
            if flags & AT_EMPTY_PATH != 0 {
                // Needs CAP_DAC_READ_SEARCH, which no command has.
                return Ok(Plan::Errno(libc::ENOENT));
            }
            // The object: resolved whole (following a last symbolic
            // link only with AT_SYMLINK_FOLLOW), by the supervisor.
            let obj = super::resolve(
                tid,
                supervised::Object::At {
                    dirfd: old.dirfd,
                    path: old.path,
                    follow: flags & AT_SYMLINK_FOLLOW != 0,
                    empty_ok: false,
                },
            )?;
            if obj.dir {
                return Ok(Plan::Errno(libc::EPERM));
            }
            let Some(old_path) = obj.path.clone() else {
                return Ok(Plan::Errno(libc::EXDEV));
            };
            let to = resolve_name(tid, new, 0, libc::EEXIST)?;
            if to.now.is_some() {
                return Ok(Plan::Errno(libc::EEXIST));
            }
            let verdict = supervised::decide_all(plan, step, &to.path, &[access::MAKE_REG]);
            let why = match verdict {
                Verdict::Allow { .. } => {
                    supervised::authority_change(plan, &old_path, &to.path, false)
                }
                Verdict::Deny { .. } => None,
            };
            let op = format!("link (to {})", escape_bytes(&old_path));
            let src = CString::new(format!("/proc/self/fd/{}", obj.fd.as_raw_fd()))
                .map_err(|_| err(libc::EINVAL))?;
            let keep = obj.fd;
            let (nd, nn) = (to.dir.try_clone()?, to.name.clone());
            decided(
                to,
                &op,
                verdict,
                why,
                Box::new(move || {
                    let r = rustix::fs::linkat(
                        rustix::fs::CWD,
                        src.as_c_str(),
                        &nd,
                        nn.as_c_str(),
                        rustix::fs::AtFlags::SYMLINK_FOLLOW,
                    );
                    drop(keep);
                    r.map(|()| Answer::Value(0)).map_err(io::Error::from)
                }),
            )
        })
    }

    /// An open the filter sent here: one with `O_CREAT`, one that
    /// truncates without asking for write access, or any `openat2` (its
    /// flags are in the command's memory, which could change after they
    /// were read: it is never handed back to the kernel).
    fn plan_open(&self, n: &Notif, call: Call, name: Name, step: u32) -> io::Result<Plan> {
        let (a, tid, plan) = (n.args, n.pid, self.plan());
        let (flags, mode, resolve) = match call.open_flags(&a) {
            Some(f) => (f, call.mode(&a), 0),
            None => {
                // openat2: struct open_how {flags, mode, resolve}.
                if a[3] < 24 {
                    return Ok(Plan::Errno(libc::EINVAL));
                }
                let how = read_exact(tid, a[2], 24)?;
                let w = |i: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&how[i * 8..i * 8 + 8]);
                    u64::from_ne_bytes(b)
                };
                (w(0), (w(1) & 0o7777) as u32, w(2))
            }
        };
        let in_memory = call == Call::Openat2;
        let truncating = supervised::truncates_without_write(flags);
        let cloexec = flags & O_CLOEXEC != 0;
        // Handing the call back to the kernel (Landlock decides an open of
        // an existing object) is safe only when the flags it will use are
        // those read here and ask for no truncation Landlock would allow.
        let kernel_may = !in_memory && !truncating;
        if flags & O_CREAT != 0 && flags & (O_PATH | O_TMPFILE_BIT) == 0 {
            let t = resolve_name(tid, name, resolve, libc::EISDIR)?;
            match (&t.now, flags & O_EXCL != 0) {
                (Some(_), true) => return Ok(Plan::Errno(libc::EEXIST)),
                // An existing name: an open of it (below).
                (Some(_), false) => {}
                (None, _) if t.slash => return Ok(Plan::Errno(libc::EISDIR)),
                (None, _) => {
                    let mut bits = vec![access::MAKE_REG];
                    bits.extend(
                        (0..16)
                            .map(|b| 1u64 << b)
                            .filter(|b| supervised::open_rights(flags) & b != 0),
                    );
                    let verdict = supervised::decide_all(plan, step, &t.path, &bits);
                    let (dir, nm) = (t.dir.try_clone()?, t.name.clone());
                    let keep =
                        (flags as u32) & !((O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW) as u32);
                    return Ok(Plan::Decided {
                        path: t.path,
                        operation: "create (open)".into(),
                        verdict,
                        why: None,
                        act: Box::new(move || match sys::create_file_at(&dir, &nm, keep, mode) {
                            Ok(fd) => Ok(Answer::Fd { fd, cloexec }),
                            // Made by someone else meanwhile: an open of an
                            // existing name, the kernel's where it may be.
                            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                                if kernel_may {
                                    Ok(Answer::Continue)
                                } else {
                                    Err(err(libc::EAGAIN))
                                }
                            }
                            Err(e) => Err(e),
                        }),
                    });
                }
            }
        }
        if kernel_may {
            return Ok(Plan::Kernel);
        }
        // Performed here: the object resolved (its last symbolic link
        // followed unless O_NOFOLLOW), decided exactly, opened anew.
        let r = super::resolve_with(
            tid,
            supervised::Object::At {
                dirfd: name.dirfd,
                path: name.path,
                follow: flags & O_NOFOLLOW == 0,
                empty_ok: false,
            },
            resolve,
        )?;
        if flags & O_PATH != 0 {
            // No access to decide (Landlock checks none for O_PATH).
            return Ok(Plan::Done(Answer::Fd { fd: r.fd, cloexec }));
        }
        let Some(path) = r.path.clone() else {
            return Ok(Plan::Errno(libc::ENXIO));
        };
        let bits = supervised::existing_open_rights(flags, r.dir);
        let verdict = supervised::decide_all(plan, step, &path, &bits);
        let keep = (flags as u32) & !((O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW) as u32);
        let fd = r.fd;
        Ok(Plan::Decided {
            path,
            operation: if truncating {
                "write (truncate)".into()
            } else {
                "open (openat2)".into()
            },
            verdict,
            why: None,
            act: Box::new(move || sys::reopen(&fd, keep).map(|fd| Answer::Fd { fd, cloexec })),
        })
    }

    /// `bind`: a pathname UNIX socket makes a file (decided and bound
    /// here); any other address is the kernel's (the cgroup hooks and
    /// Landlock decide it).
    fn plan_bind(&self, n: &Notif, step: u32) -> io::Result<Plan> {
        let (tid, a) = (n.pid, n.args);
        let len = usize::try_from(a[2]).unwrap_or(0).min(110);
        if len <= 2 {
            return Ok(Plan::Kernel);
        }
        let addr = read_exact(tid, a[1], len)?;
        if u16::from_ne_bytes([addr[0], addr[1]]) != AF_UNIX || addr[2] == 0 {
            return Ok(Plan::Kernel);
        }
        let raw: Vec<u8> = addr[2..].iter().copied().take_while(|b| *b != 0).collect();
        let t = named_at(tid, libc::AT_FDCWD, &raw, 0, libc::EINVAL)?;
        if t.now.is_some() {
            return Ok(Plan::Errno(libc::EADDRINUSE));
        }
        let verdict = supervised::decide_all(self.plan(), step, &t.path, &[access::MAKE_SOCK]);
        let sock = super::pidfd_of(tid).and_then(|p| sys::pidfd_getfd(&p, a[0] as u32 as i32))?;
        let dir = t.dir;
        // The directory by its descriptor (kept open by the action), so
        // the bind happens where the decision was made.
        let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        path.extend_from_slice(t.name.as_bytes());
        Ok(Plan::Decided {
            path: t.path,
            operation: "create (bind)".into(),
            verdict,
            why: None,
            act: Box::new(move || {
                let r = sys::bind_unix(&sock, &path);
                drop(dir);
                r.map(|()| Answer::Value(0))
            }),
        })
    }
}
