//! The supervised layer's decisions: the calls Landlock has no right for,
//! which the commands' seccomp filter sends to the supervisor instead
//! (stage: runtime, supervised calls).
//!
//! Landlock decides opening, reading, writing and executing. It has no
//! right for changing a file's mode, owner, times or extended attributes,
//! for watching a directory (inotify), or for `listen` on a socket that was
//! never bound (the kernel then picks a port, which no `net bind` grant
//! named). The seccomp filter returns `SECCOMP_RET_USER_NOTIF` for those
//! calls; the supervisor resolves the object in the command's context,
//! decides here, exactly against the step's path automata (no per-entry
//! narrowing), and performs the call on the command's behalf on the object
//! it resolved, so no thread of the command can change the path between
//! the decision and the use.
//!
//! Input: which call (by name: the kernel crate maps the architecture's
//! syscall numbers), its raw arguments, and the object the supervisor
//! resolved. Output: what to resolve ([`Object`]), the right the call needs
//! ([`Family::right`]), and the verdict ([`decide`]).
//!
//! Semantics (the language reference says the same): changing a path's
//! mode, owner, times or extended attributes needs `write` on it; watching
//! a directory needs `read` on the directory (it reports the names created
//! there, which is listing it), watching a file `read` on the file.

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

/// Low 32 bits of an argument as the `int` the kernel sees.
fn int(a: u64) -> i32 {
    a as u32 as i32
}

impl Call {
    /// Every supervised call.
    pub const ALL: [Call; 20] = [
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
            Call::Chmod | Call::Chown | Call::Utime | Call::Utimes => {
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
            Call::Listen => return None,
        })
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
        }
    }
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
