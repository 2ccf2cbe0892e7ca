//! The supervised layer's decisions: the calls Landlock cannot decide
//! exactly, which the commands' seccomp filter sends to the supervisor
//! instead (stage: runtime, supervised calls).
//!
//! Landlock decides opening, reading, writing and executing existing
//! files. It has no right for changing a file's mode, owner, times or
//! extended attributes, for watching a directory (inotify), or for
//! `listen` on a socket that was never bound (the kernel then picks a
//! port, which no `net bind` grant named); and it grants making and
//! removing names per directory, for every name at once. The seccomp
//! filter returns `SECCOMP_RET_USER_NOTIF` for those calls (and for the
//! truncations that do not go through a descriptor open for writing); the
//! supervisor resolves the object in the command's context, decides here,
//! exactly against the step's path automata (no per-entry narrowing), and
//! performs the call on the command's behalf on the object it resolved, so
//! no thread of the command can change the path between the decision and
//! the use.
//!
//! Input: which call (by name: the kernel crate maps the architecture's
//! syscall numbers), its raw arguments, and the object the supervisor
//! resolved. Output: what to resolve ([`Object`], [`Name`]), the rights
//! the call needs ([`Family::right`], [`open_rights`],
//! [`existing_open_rights`]), and the verdict ([`decide`], [`decide_all`],
//! and for moves and links [`authority_change`]).
//!
//! Semantics (the language reference says the same): changing a path's
//! mode, owner, times or extended attributes needs `write` on it, and so
//! does truncating it; watching a directory needs `read` on the directory
//! (it reports the names created there, which is listing it), watching a
//! file `read` on the file; making a name needs `create` at it, removing
//! one `delete`; a move needs `delete` at the old name and `create` at the
//! new one, and a move or a link must leave the object's authority the same
//! in every step of the plan.

use crate::access;
use crate::attribution::{self, Nearest};
use kapl_image::Plan;

/// `AT_FDCWD`.
pub const AT_FDCWD: i32 = -100;
/// `AT_SYMLINK_NOFOLLOW`.
pub const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
/// `AT_EMPTY_PATH`.
pub const AT_EMPTY_PATH: u64 = 0x1000;
/// `IN_DONT_FOLLOW`.
pub const IN_DONT_FOLLOW: u64 = 0x0200_0000;

/// A supervised system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// `chmod(path, mode)`.
    Chmod,
    /// `fchmod(fd, mode)`.
    Fchmod,
    /// `fchmodat(dirfd, path, mode)`.
    Fchmodat,
    /// `fchmodat2(dirfd, path, mode, flags)`.
    Fchmodat2,
    /// `chown(path, uid, gid)`.
    Chown,
    /// `fchown(fd, uid, gid)`.
    Fchown,
    /// `lchown(path, uid, gid)`.
    Lchown,
    /// `fchownat(dirfd, path, uid, gid, flags)`.
    Fchownat,
    /// `utime(path, struct utimbuf *)`.
    Utime,
    /// `utimes(path, struct timeval[2])`.
    Utimes,
    /// `futimesat(dirfd, path, struct timeval[2])`.
    Futimesat,
    /// `utimensat(dirfd, path, struct timespec[2], flags)`.
    Utimensat,
    /// `setxattr(path, name, value, size, flags)`.
    Setxattr,
    /// `lsetxattr(path, name, value, size, flags)`.
    Lsetxattr,
    /// `fsetxattr(fd, name, value, size, flags)`.
    Fsetxattr,
    /// `removexattr(path, name)`.
    Removexattr,
    /// `lremovexattr(path, name)`.
    Lremovexattr,
    /// `fremovexattr(fd, name)`.
    Fremovexattr,
    /// `inotify_add_watch(fd, path, mask)`.
    InotifyAddWatch,
    /// `listen(fd, backlog)`.
    Listen,
    /// `open(path, flags, mode)` with `O_CREAT`.
    Open,
    /// `openat(dirfd, path, flags, mode)` with `O_CREAT`.
    Openat,
    /// `creat(path, mode)`.
    Creat,
    /// `openat2(dirfd, path, how, size)` (its flags are in memory).
    Openat2,
    /// `mknod(path, mode, dev)`.
    Mknod,
    /// `mknodat(dirfd, path, mode, dev)`.
    Mknodat,
    /// `mkdir(path, mode)`.
    Mkdir,
    /// `mkdirat(dirfd, path, mode)`.
    Mkdirat,
    /// `symlink(target, path)`.
    Symlink,
    /// `symlinkat(target, dirfd, path)`.
    Symlinkat,
    /// `link(old, new)`.
    Link,
    /// `linkat(olddirfd, old, newdirfd, new, flags)`.
    Linkat,
    /// `unlink(path)`.
    Unlink,
    /// `unlinkat(dirfd, path, flags)`.
    Unlinkat,
    /// `rmdir(path)`.
    Rmdir,
    /// `rename(old, new)`.
    Rename,
    /// `renameat(olddirfd, old, newdirfd, new)`.
    Renameat,
    /// `renameat2(olddirfd, old, newdirfd, new, flags)`.
    Renameat2,
    /// `bind(fd, addr, len)` (a pathname UNIX socket makes a file).
    Bind,
    /// `truncate(path, length)`.
    Truncate,
}

/// What a call changes or observes: the right it needs and its name in
/// reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// A mode change.
    Mode,
    /// An owner change.
    Owner,
    /// A change of access or modification time.
    Times,
    /// Setting an extended attribute.
    SetXattr,
    /// Removing an extended attribute.
    RemoveXattr,
    /// An inotify watch.
    Watch,
    /// Listening on a socket.
    Listen,
    /// Making a new name (file, directory, node, symbolic link, socket
    /// file); an open with `O_CREAT` of an existing name is the kernel's.
    Create,
    /// Removing a name.
    Delete,
    /// Moving a name (and what is below it).
    Move,
    /// A new name for an existing file.
    HardLink,
    /// Binding a socket (a pathname UNIX socket makes a file).
    Bind,
    /// Truncating a file by its path.
    Truncate,
}

/// Where a call's object comes from, read from its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    /// An open descriptor of the command.
    Fd(i32),
    /// A path (a pointer into the command's memory), relative to `dirfd`
    /// ([`AT_FDCWD`]: the working directory); `empty_ok` when an empty
    /// path names `dirfd` itself (`AT_EMPTY_PATH`), or a null pointer does
    /// (`utimensat`).
    At {
        /// The directory descriptor.
        dirfd: i32,
        /// The path's address.
        path: u64,
        /// Follow a symbolic link at the end.
        follow: bool,
        /// An empty (or null) path names `dirfd` itself.
        empty_ok: bool,
    },
}

/// A name: a path in the command's memory, relative to `dirfd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Name {
    /// The directory descriptor ([`AT_FDCWD`]: the working directory).
    pub dirfd: i32,
    /// The path's address.
    pub path: u64,
}

/// `O_WRONLY`, `O_RDWR`, `O_CREAT`, `O_EXCL`, `O_TRUNC`, `O_PATH`,
/// `O_CLOEXEC`, `O_ACCMODE` (x86_64 and the generic ABI).
pub const O_WRONLY: u64 = 0o1;
/// See [`O_WRONLY`].
pub const O_RDWR: u64 = 0o2;
/// See [`O_WRONLY`].
pub const O_ACCMODE: u64 = 0o3;
/// See [`O_WRONLY`].
pub const O_CREAT: u64 = 0o100;
/// See [`O_WRONLY`].
pub const O_EXCL: u64 = 0o200;
/// See [`O_WRONLY`].
pub const O_TRUNC: u64 = 0o1000;
/// See [`O_WRONLY`].
pub const O_CLOEXEC: u64 = 0o2_000_000;
/// See [`O_WRONLY`].
pub const O_PATH: u64 = 0o10_000_000;
/// See [`O_WRONLY`].
pub const O_NOFOLLOW: u64 = 0o400_000;
/// `AT_REMOVEDIR`.
pub const AT_REMOVEDIR: u64 = 0x200;
/// `AT_SYMLINK_FOLLOW`.
pub const AT_SYMLINK_FOLLOW: u64 = 0x400;

/// Low 32 bits of an argument as the `int` the kernel sees.
fn int(a: u64) -> i32 {
    a as u32 as i32
}

impl Call {
    /// Every supervised call.
    pub const ALL: [Call; 40] = [
        Call::Chmod,
        Call::Fchmod,
        Call::Fchmodat,
        Call::Fchmodat2,
        Call::Chown,
        Call::Fchown,
        Call::Lchown,
        Call::Fchownat,
        Call::Utime,
        Call::Utimes,
        Call::Futimesat,
        Call::Utimensat,
        Call::Setxattr,
        Call::Lsetxattr,
        Call::Fsetxattr,
        Call::Removexattr,
        Call::Lremovexattr,
        Call::Fremovexattr,
        Call::InotifyAddWatch,
        Call::Listen,
        Call::Open,
        Call::Openat,
        Call::Creat,
        Call::Openat2,
        Call::Mknod,
        Call::Mknodat,
        Call::Mkdir,
        Call::Mkdirat,
        Call::Symlink,
        Call::Symlinkat,
        Call::Link,
        Call::Linkat,
        Call::Unlink,
        Call::Unlinkat,
        Call::Rmdir,
        Call::Rename,
        Call::Renameat,
        Call::Renameat2,
        Call::Bind,
        Call::Truncate,
    ];

    /// Its name, as in `syscalls(2)`.
    pub fn name(self) -> &'static str {
        match self {
            Call::Chmod => "chmod",
            Call::Fchmod => "fchmod",
            Call::Fchmodat => "fchmodat",
            Call::Fchmodat2 => "fchmodat2",
            Call::Chown => "chown",
            Call::Fchown => "fchown",
            Call::Lchown => "lchown",
            Call::Fchownat => "fchownat",
            Call::Utime => "utime",
            Call::Utimes => "utimes",
            Call::Futimesat => "futimesat",
            Call::Utimensat => "utimensat",
            Call::Setxattr => "setxattr",
            Call::Lsetxattr => "lsetxattr",
            Call::Fsetxattr => "fsetxattr",
            Call::Removexattr => "removexattr",
            Call::Lremovexattr => "lremovexattr",
            Call::Fremovexattr => "fremovexattr",
            Call::InotifyAddWatch => "inotify_add_watch",
            Call::Listen => "listen",
            Call::Open => "open",
            Call::Openat => "openat",
            Call::Creat => "creat",
            Call::Openat2 => "openat2",
            Call::Mknod => "mknod",
            Call::Mknodat => "mknodat",
            Call::Mkdir => "mkdir",
            Call::Mkdirat => "mkdirat",
            Call::Symlink => "symlink",
            Call::Symlinkat => "symlinkat",
            Call::Link => "link",
            Call::Linkat => "linkat",
            Call::Unlink => "unlink",
            Call::Unlinkat => "unlinkat",
            Call::Rmdir => "rmdir",
            Call::Rename => "rename",
            Call::Renameat => "renameat",
            Call::Renameat2 => "renameat2",
            Call::Bind => "bind",
            Call::Truncate => "truncate",
        }
    }

    /// What it does.
    pub fn family(self) -> Family {
        match self {
            Call::Chmod | Call::Fchmod | Call::Fchmodat | Call::Fchmodat2 => Family::Mode,
            Call::Chown | Call::Fchown | Call::Lchown | Call::Fchownat => Family::Owner,
            Call::Utime | Call::Utimes | Call::Futimesat | Call::Utimensat => Family::Times,
            Call::Setxattr | Call::Lsetxattr | Call::Fsetxattr => Family::SetXattr,
            Call::Removexattr | Call::Lremovexattr | Call::Fremovexattr => Family::RemoveXattr,
            Call::InotifyAddWatch => Family::Watch,
            Call::Listen => Family::Listen,
            Call::Open
            | Call::Openat
            | Call::Creat
            | Call::Openat2
            | Call::Mknod
            | Call::Mknodat
            | Call::Mkdir
            | Call::Mkdirat
            | Call::Symlink
            | Call::Symlinkat => Family::Create,
            Call::Unlink | Call::Unlinkat | Call::Rmdir => Family::Delete,
            Call::Rename | Call::Renameat | Call::Renameat2 => Family::Move,
            Call::Link | Call::Linkat => Family::HardLink,
            Call::Bind => Family::Bind,
            Call::Truncate => Family::Truncate,
        }
    }

    /// The object the call acts on, from its raw arguments; `None` for
    /// `listen` (its object is a socket, see [`Call::socket_fd`]).
    pub fn object(self, args: &[u64; 6]) -> Option<Object> {
        let at =
            |dirfd: u64, path: u64, flags: u64, follow_default: bool, empty: bool| Object::At {
                dirfd: int(dirfd),
                path,
                follow: follow_default && flags & AT_SYMLINK_NOFOLLOW == 0,
                empty_ok: empty,
            };
        let cwd = AT_FDCWD as u32 as u64;
        Some(match self {
            Call::Chmod | Call::Chown | Call::Utime | Call::Utimes | Call::Truncate => {
                at(cwd, args[0], 0, true, false)
            }
            Call::Setxattr | Call::Removexattr => at(cwd, args[0], 0, true, false),
            Call::Lchown | Call::Lsetxattr | Call::Lremovexattr => {
                at(cwd, args[0], 0, false, false)
            }
            Call::Fchmod | Call::Fchown | Call::Fsetxattr | Call::Fremovexattr => {
                Object::Fd(int(args[0]))
            }
            Call::Fchmodat => at(args[0], args[1], 0, true, false),
            Call::Futimesat => at(args[0], args[1], 0, true, false),
            Call::Fchmodat2 => at(
                args[0],
                args[1],
                args[3],
                true,
                args[3] & AT_EMPTY_PATH != 0,
            ),
            Call::Fchownat => at(
                args[0],
                args[1],
                args[4],
                true,
                args[4] & AT_EMPTY_PATH != 0,
            ),
            // utimensat(fd, NULL, …) is futimens(fd).
            Call::Utimensat => at(args[0], args[1], args[3], true, true),
            Call::InotifyAddWatch => Object::At {
                dirfd: AT_FDCWD,
                path: args[1],
                follow: args[2] & IN_DONT_FOLLOW == 0,
                empty_ok: false,
            },
            _ => return None,
        })
    }

    /// The name a creating, removing or moving call makes or removes
    /// (for a move or link: the new name), and for a move or link the
    /// old one; a symbolic link at the end of either is not followed.
    pub fn names(self, args: &[u64; 6]) -> Option<(Name, Option<Name>)> {
        let cwd = |path| Name {
            dirfd: AT_FDCWD,
            path,
        };
        let at = |dirfd, path| Name {
            dirfd: int(dirfd),
            path,
        };
        Some(match self {
            Call::Open | Call::Creat | Call::Mknod | Call::Mkdir | Call::Unlink | Call::Rmdir => {
                (cwd(args[0]), None)
            }
            Call::Openat | Call::Openat2 | Call::Mknodat | Call::Mkdirat | Call::Unlinkat => {
                (at(args[0], args[1]), None)
            }
            Call::Symlink => (cwd(args[1]), None),
            Call::Symlinkat => (at(args[1], args[2]), None),
            Call::Link | Call::Rename => (cwd(args[1]), Some(cwd(args[0]))),
            Call::Linkat | Call::Renameat | Call::Renameat2 => {
                (at(args[2], args[3]), Some(at(args[0], args[1])))
            }
            _ => return None,
        })
    }

    /// The open flags of `open`, `openat` and `creat` (`openat2`'s are in
    /// memory).
    pub fn open_flags(self, args: &[u64; 6]) -> Option<u64> {
        match self {
            Call::Open => Some(args[1]),
            Call::Openat => Some(args[2]),
            Call::Creat => Some(O_CREAT | O_WRONLY | O_TRUNC),
            _ => None,
        }
    }

    /// The mode argument of a creating call.
    pub fn mode(self, args: &[u64; 6]) -> u32 {
        (match self {
            Call::Creat | Call::Mknod | Call::Mkdir => args[1],
            Call::Open | Call::Mknodat | Call::Mkdirat => args[2],
            Call::Openat => args[3],
            _ => 0,
        } & 0o177_777) as u32
    }

    /// The socket `listen` acts on.
    pub fn socket_fd(self, args: &[u64; 6]) -> Option<i32> {
        (self == Call::Listen).then(|| int(args[0]))
    }
}

impl Family {
    /// The Landlock-style right (the image's column) the call needs on an
    /// object that is a directory (`dir`) or not.
    pub fn right(self, dir: bool) -> u64 {
        match self {
            Family::Watch if dir => access::READ_DIR,
            Family::Watch => access::READ_FILE,
            _ => access::WRITE_FILE,
        }
    }

    /// The operation as reports name it.
    pub fn operation(self) -> &'static str {
        match self {
            Family::Mode => "chmod (write)",
            Family::Owner => "chown (write)",
            Family::Times => "set times (write)",
            Family::SetXattr => "setxattr (write)",
            Family::RemoveXattr => "removexattr (write)",
            Family::Watch => "inotify watch (read)",
            Family::Listen => "listen on an unbound socket (implicit bind)",
            Family::Create => "create",
            Family::Delete => "delete",
            Family::Move => "rename",
            Family::HardLink => "link",
            Family::Bind => "bind (create)",
            Family::Truncate => "write (truncate)",
        }
    }
}

/// The rights (Landlock-style bits, one per image column) an open needs
/// on the file it creates, besides creating it: read and write by its
/// access mode.
pub fn open_rights(flags: u64) -> u64 {
    match flags & O_ACCMODE {
        0 => access::READ_FILE,
        O_WRONLY => access::WRITE_FILE,
        _ => access::READ_FILE | access::WRITE_FILE,
    }
}

/// The rights an open of an existing object needs, by its flags: read
/// and write by the access mode (mode 3 asks for both), write too when it
/// truncates; reading a directory is listing it.
pub fn existing_open_rights(flags: u64, dir: bool) -> Vec<u64> {
    let read = if dir {
        access::READ_DIR
    } else {
        access::READ_FILE
    };
    let mut bits = match flags & O_ACCMODE {
        0 => vec![read],
        O_WRONLY => vec![access::WRITE_FILE],
        _ => vec![read, access::WRITE_FILE],
    };
    if flags & O_TRUNC != 0 && !bits.contains(&access::WRITE_FILE) {
        bits.push(access::WRITE_FILE);
    }
    bits
}

/// Whether an open with these flags truncates without asking for write
/// access (`O_RDONLY | O_TRUNC`, or access mode 3): the kernel truncates
/// then if the file's mode allows writing, and Landlock's rules (which
/// give `truncate` with `read`, so its walk stops early) would let it.
pub fn truncates_without_write(flags: u64) -> bool {
    flags & O_TRUNC != 0 && !matches!(flags & O_ACCMODE, O_WRONLY | O_RDWR)
}

/// Decides a call that needs every right of `bits` on `path` (each bit
/// one column of the image: read, write, create, delete): allowed with the
/// grant of the first, or refused with the nearest grant of the first
/// right no grant gives.
pub fn decide_all(plan: &Plan, step: u32, path: &[u8], bits: &[u64]) -> Verdict {
    let mut first = None;
    for &bit in bits {
        match attribution::fs_grant(plan, step, path, bit) {
            Some(g) => {
                first.get_or_insert(g);
            }
            None => {
                return Verdict::Deny {
                    nearest: attribution::nearest_fs(plan, step, path, bit),
                };
            }
        }
    }
    match first {
        Some(grant) => Verdict::Allow { grant },
        None => Verdict::Deny { nearest: None },
    }
}

/// Why moving (or linking) `from` to `to` would change what the plan may
/// do with the object — in every step (the new name outlives this one),
/// the rights at its new name (and, for a directory, at every path below
/// it) must be exactly those at its old name: more would hand a step an
/// object its grants keep from it at the old name (a secret moved or
/// linked into a directory some step may read), less would leave the
/// kernel's rules on the object (they follow the inode) wider than the
/// grants at its new name. `None`: the same everywhere.
pub fn authority_change(plan: &Plan, from: &[u8], to: &[u8], dir: bool) -> Option<String> {
    use kapl_image::{FsRight, NO_GRANT};
    let d = &plan.fs;
    let steps = d.steps;
    let rights = |s: u32| -> Vec<bool> {
        (0..steps)
            .flat_map(|st| (0..FsRight::ALL.len()).map(move |c| (st, c)))
            .map(|(st, c)| d.cell(s, st, c).grant != NO_GRANT)
            .collect()
    };
    let columns = FsRight::ALL.len();
    let step_name = |i: usize| {
        plan.steps
            .get(i / columns)
            .map_or_else(|| "?".to_string(), |s| s.name.clone())
    };
    let differ = |a: u32, b: u32| -> Option<String> {
        let (ra, rb) = (rights(a), rights(b));
        // The first step where they differ, and how.
        let i = (0..ra.len()).find(|i| ra[*i] != rb[*i])?;
        let first = (i / columns) * columns;
        let names = |f: &dyn Fn(usize) -> bool| -> Vec<&'static str> {
            FsRight::ALL
                .iter()
                .enumerate()
                .filter(|(c, _)| f(first + *c))
                .map(|(_, r)| r.as_str())
                .collect()
        };
        let gained = names(&|c| rb[c] && !ra[c]);
        let lost = names(&|c| ra[c] && !rb[c]);
        let step = step_name(i);
        Some(if gained.is_empty() {
            format!("loses {} in step {step}", lost.join(", "))
        } else {
            format!("gains {} in step {step}", gained.join(", "))
        })
    };
    let (a, b) = (d.walk(from), d.walk(to));
    let shown = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
    if let Some(w) = differ(a, b) {
        return Some(format!(
            "{} would change what the plan may do with it: at {} it {w}; the plan's grants must give the same rights at both names in every step",
            shown(from),
            shown(to)
        ));
    }
    if !dir {
        return None;
    }
    // Every path below: the pairs of states the same suffix reaches, one
    // representative byte per class of the DFA's alphabet (never NUL).
    let mut reps: Vec<u8> = Vec::new();
    let mut classes_seen = std::collections::HashSet::new();
    for byte in 1..=255u8 {
        if classes_seen.insert(d.classes.get(byte as usize).copied()) {
            reps.push(byte);
        }
    }
    let start = (d.next(a, b'/'), d.next(b, b'/'));
    let mut seen = std::collections::HashSet::from([start]);
    let mut work = vec![(start, Vec::new())];
    while let Some(((sa, sb), suffix)) = work.pop() {
        if let Some(w) = differ(sa, sb) {
            let sfx = if suffix.is_empty() {
                "…".to_string()
            } else {
                format!("{}…", shown(&suffix))
            };
            return Some(format!(
                "moving the directory {} would change what the plan may do below it: at {}/{sfx} it {w}; the plan's grants must give the same rights below both names in every step",
                shown(from),
                shown(to)
            ));
        }
        for &byte in &reps {
            let next = (d.next(sa, byte), d.next(sb, byte));
            if seen.insert(next) {
                let mut s = suffix.clone();
                if s.len() < 64 {
                    s.push(byte);
                }
                work.push((next, s));
            }
        }
    }
    None
}

/// The supervisor's verdict on one supervised call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A grant of the step covers the object: perform the call.
    Allow {
        /// The grant.
        grant: u32,
    },
    /// Refused: no grant covers it.
    Deny {
        /// The nearest grant and why it does not cover.
        nearest: Nearest,
    },
}

/// Decides a call of `family` on the object at `path` (the path the
/// supervisor resolved, absolute) for `step`, exactly: the grant whose
/// pattern (minus its `except`s and the objective's `never`) covers `path`
/// for the right the call needs.
pub fn decide(plan: &Plan, step: u32, family: Family, path: &[u8], dir: bool) -> Verdict {
    let bit = family.right(dir);
    match attribution::fs_grant(plan, step, path, bit) {
        Some(grant) => Verdict::Allow { grant },
        None => Verdict::Deny {
            nearest: attribution::nearest_fs(plan, step, path, bit),
        },
    }
}

/// The object's path from `readlink("/proc/self/fd/N")` of the descriptor
/// the supervisor resolved: `None` for what is not a file-system path
/// (`socket:[…]`, `pipe:[…]`, `anon_inode:…`); an unlinked file's
/// ` (deleted)` suffix is removed when `unlinked` says the inode has no
/// name left (so a file literally named `x (deleted)` keeps its name).
pub fn object_path(link: &[u8], unlinked: bool) -> Option<&[u8]> {
    if link.first() != Some(&b'/') {
        return None;
    }
    const DELETED: &[u8] = b" (deleted)";
    Some(match link.strip_suffix(DELETED) {
        Some(p) if unlinked => p,
        _ => link,
    })
}

/// Why `listen` on a socket is refused: it is an IPv4 or IPv6 stream
/// socket bound to no port, so the kernel would pick one that no `net
/// bind` grant named and accept connections on it. `None`: allowed (a
/// bound socket's port was decided by the bind hook when it was bound and
/// cannot change; other families are not the network's).
pub fn listen_refusal(family: i32, port: Option<u16>) -> Option<String> {
    const AF_INET: i32 = 2;
    const AF_INET6: i32 = 10;
    if (family == AF_INET || family == AF_INET6) && port == Some(0) {
        Some(
            "listen on a socket bound to no port: the kernel would choose one, which no `net bind` grant names; bind it to a granted port first".to_string(),
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[u64]) -> [u64; 6] {
        let mut x = [0; 6];
        x[..a.len()].copy_from_slice(a);
        x
    }

    #[test]
    fn objects_follow_the_calls_argument_layouts() {
        let cwd = AT_FDCWD as u32 as u64;
        assert_eq!(
            Call::Chmod.object(&args(&[0x1000, 0o777])),
            Some(Object::At {
                dirfd: AT_FDCWD,
                path: 0x1000,
                follow: true,
                empty_ok: false
            })
        );
        assert_eq!(
            Call::Lchown.object(&args(&[0x1000])),
            Some(Object::At {
                dirfd: AT_FDCWD,
                path: 0x1000,
                follow: false,
                empty_ok: false
            })
        );
        assert_eq!(Call::Fchmod.object(&args(&[7, 0o777])), Some(Object::Fd(7)));
        assert_eq!(
            Call::Fchownat.object(&args(&[
                5,
                0x2000,
                0,
                0,
                AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH
            ])),
            Some(Object::At {
                dirfd: 5,
                path: 0x2000,
                follow: false,
                empty_ok: true
            })
        );
        assert_eq!(
            Call::Utimensat.object(&args(&[cwd, 0x3000, 0, 0])),
            Some(Object::At {
                dirfd: AT_FDCWD,
                path: 0x3000,
                follow: true,
                empty_ok: true
            })
        );
        assert_eq!(
            Call::InotifyAddWatch.object(&args(&[3, 0x4000, IN_DONT_FOLLOW | 0x100])),
            Some(Object::At {
                dirfd: AT_FDCWD,
                path: 0x4000,
                follow: false,
                empty_ok: false
            })
        );
        assert_eq!(Call::Listen.object(&args(&[3, 5])), None);
        assert_eq!(Call::Listen.socket_fd(&args(&[3, 5])), Some(3));
        // A negative dirfd passed as a 64-bit register keeps its value.
        assert_eq!(
            Call::Fchmodat.object(&args(&[u64::MAX - 99, 0x10, 0o7])),
            Some(Object::At {
                dirfd: AT_FDCWD,
                path: 0x10,
                follow: true,
                empty_ok: false
            })
        );
    }

    #[test]
    fn every_call_has_a_distinct_name_and_a_family() {
        let mut names: Vec<&str> = Call::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Call::ALL.len());
        for c in Call::ALL {
            assert!(!c.family().operation().is_empty());
        }
    }

    #[test]
    fn rights_are_write_except_for_watches() {
        assert_eq!(Family::Mode.right(false), access::WRITE_FILE);
        assert_eq!(Family::Times.right(true), access::WRITE_FILE);
        assert_eq!(Family::Watch.right(true), access::READ_DIR);
        assert_eq!(Family::Watch.right(false), access::READ_FILE);
    }

    #[test]
    fn object_paths_of_links() {
        assert_eq!(object_path(b"/p/a", false), Some(&b"/p/a"[..]));
        assert_eq!(object_path(b"/p/a (deleted)", true), Some(&b"/p/a"[..]));
        assert_eq!(
            object_path(b"/p/a (deleted)", false),
            Some(&b"/p/a (deleted)"[..])
        );
        assert_eq!(object_path(b"socket:[123]", false), None);
        assert_eq!(object_path(b"anon_inode:[eventfd]", false), None);
        assert_eq!(object_path(b"", false), None);
    }

    #[test]
    fn listen_is_refused_only_on_unbound_inet_sockets() {
        assert!(listen_refusal(2, Some(0)).is_some());
        assert!(listen_refusal(10, Some(0)).is_some());
        assert!(listen_refusal(2, Some(8080)).is_none());
        assert!(listen_refusal(1, None).is_none());
    }

    #[test]
    fn moves_keep_the_authority_of_the_object_and_what_is_below_it() {
        let src = r#"
objective o {
  bound { fs read, write, create, delete "/p/**" }
}
plan p under o {
  step s {
    grant fs read, write, create, delete "/p/**" except "/p/secret/**", "/p/b/keep/**"
    grant fs read "/p/secret/**", "/p/b/keep/**"
  }
}
"#;
        let img = crate::tests_support::image(src);
        let plan = &img.plans[0];
        // Within the uniformly granted tree: the same everywhere.
        assert_eq!(authority_change(plan, b"/p/a", b"/p/c", true), None);
        assert_eq!(
            authority_change(plan, b"/p/x/a.txt", b"/p/y.txt", false),
            None
        );
        // A file moved into the read-only directory loses rights.
        let w = authority_change(plan, b"/p/a.txt", b"/p/secret/a.txt", false);
        assert!(
            w.as_deref().is_some_and(|w| w.contains("loses write")),
            "{w:?}"
        );
        // Out of it, it gains them.
        let w = authority_change(plan, b"/p/secret/k", b"/p/k", false);
        assert!(
            w.as_deref().is_some_and(|w| w.contains("gains write")),
            "{w:?}"
        );
        // A directory moved over the read-only one: what is below changes.
        assert_eq!(authority_change(plan, b"/p/a", b"/p/b", false), None);
        let w = authority_change(plan, b"/p/a", b"/p/b", true);
        assert!(
            w.as_deref().is_some_and(|w| w.contains("below it")),
            "{w:?}"
        );
        // Rights by access mode.
        assert_eq!(open_rights(0), access::READ_FILE);
        assert_eq!(open_rights(O_WRONLY | O_CREAT), access::WRITE_FILE);
        assert_eq!(open_rights(O_RDWR), access::READ_FILE | access::WRITE_FILE);
        assert!(matches!(
            decide_all(plan, 0, b"/p/new", &[access::MAKE_REG, access::WRITE_FILE]),
            Verdict::Allow { .. }
        ));
        assert!(matches!(
            decide_all(plan, 0, b"/p/secret/new", &[access::MAKE_REG]),
            Verdict::Deny { nearest: Some(_) }
        ));
    }

    #[test]
    fn opens_of_existing_objects_need_what_their_flags_ask() {
        assert_eq!(existing_open_rights(0, false), [access::READ_FILE]);
        assert_eq!(existing_open_rights(0, true), [access::READ_DIR]);
        assert_eq!(existing_open_rights(O_WRONLY, false), [access::WRITE_FILE]);
        assert_eq!(
            existing_open_rights(O_TRUNC, false),
            [access::READ_FILE, access::WRITE_FILE]
        );
        assert_eq!(
            existing_open_rights(3, false),
            [access::READ_FILE, access::WRITE_FILE]
        );
        assert!(truncates_without_write(O_TRUNC));
        assert!(truncates_without_write(O_TRUNC | 3));
        assert!(!truncates_without_write(O_TRUNC | O_WRONLY));
        assert!(!truncates_without_write(O_TRUNC | O_RDWR));
        assert!(!truncates_without_write(O_CREAT));
    }

    #[test]
    fn names_follow_the_calls_argument_layouts() {
        let n = |dirfd, path| Name { dirfd, path };
        assert_eq!(
            Call::Mkdir.names(&args(&[0x10, 0o755])),
            Some((n(AT_FDCWD, 0x10), None))
        );
        assert_eq!(Call::Mkdir.mode(&args(&[0x10, 0o755])), 0o755);
        assert_eq!(
            Call::Openat.names(&args(&[3, 0x20, 0o101, 0o644])),
            Some((n(3, 0x20), None))
        );
        assert_eq!(
            Call::Openat.open_flags(&args(&[3, 0x20, 0o101, 0o644])),
            Some(0o101)
        );
        assert_eq!(Call::Openat.mode(&args(&[3, 0x20, 0o101, 0o644])), 0o644);
        assert_eq!(
            Call::Symlinkat.names(&args(&[0x1, 4, 0x30])),
            Some((n(4, 0x30), None))
        );
        assert_eq!(
            Call::Renameat2.names(&args(&[3, 0x40, 5, 0x50, 1])),
            Some((n(5, 0x50), Some(n(3, 0x40))))
        );
        assert_eq!(
            Call::Link.names(&args(&[0x60, 0x70])),
            Some((n(AT_FDCWD, 0x70), Some(n(AT_FDCWD, 0x60))))
        );
        assert_eq!(Call::Bind.names(&args(&[3, 0x80, 20])), None);
        assert_eq!(
            Call::Creat.open_flags(&args(&[0x10, 0o600])),
            Some(O_CREAT | O_WRONLY | O_TRUNC)
        );
    }

    #[test]
    fn decisions_are_exact_against_the_step() {
        let src = r#"
objective o {
  bound { fs read, write "/p/**" }
}
plan p under o {
  step s {
    grant fs write "/p/**" except "/p/keep/**"
    grant fs read "/p/**"
  }
}
"#;
        let img = crate::tests_support::image(src);
        let plan = &img.plans[0];
        assert!(matches!(
            decide(plan, 0, Family::Mode, b"/p/a.txt", false),
            Verdict::Allow { .. }
        ));
        assert!(matches!(
            decide(plan, 0, Family::Mode, b"/p/keep/x", false),
            Verdict::Deny { .. }
        ));
        assert!(matches!(
            decide(plan, 0, Family::Owner, b"/q/x", false),
            Verdict::Deny { .. }
        ));
        assert!(matches!(
            decide(plan, 0, Family::Watch, b"/p/keep", true),
            Verdict::Allow { .. }
        ));
    }
}
