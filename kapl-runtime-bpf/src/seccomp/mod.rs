//! The seccomp filter (stage: runtime, second line of defence).
//!
//! Input: nothing (fixed policy). Output: a classic-BPF program installed in
//! every confined command after its Landlock domain. Capabilities are the
//! first line (the tree has none); this filter refuses the calls a process
//! without capabilities could still use to undo or side-step enforcement:
//! `bpf`, `ptrace`, `process_vm_*`, `perf_event_open`, namespace changes
//! (`unshare`, `setns`, `clone` with namespace flags), `clone3` (ENOSYS, so
//! libc falls back to `clone`, whose flags a filter can read: clone3 could
//! carry CLONE_INTO_CGROUP), io_uring (its operations are not visible to
//! this filter), mounts, module and kexec calls, keyrings, `userfaultfd`,
//! terminal injection (`TIOCSTI`), and every socket family but UNIX, inet
//! and netlink-route. Foreign-architecture calls kill the process.
//!
//! A third filter ([`notify_filter`]) sends the calls Landlock has no
//! right for (mode, owner, times, extended attributes, inotify watches,
//! `listen`) to the supervisor, which decides and performs them
//! (`crate::session::supervised`).

use kapl_runtime::signals::SignalCall;
use kapl_runtime::supervised::Call;

/// One classic BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const BPF_JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const BPF_RET_K: u16 = 0x06;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// seccomp_data offsets.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}

const NS_FLAGS: u32 = 0x0002_0000 // CLONE_NEWNS
    | 0x0200_0000 // CLONE_NEWCGROUP
    | 0x0400_0000 // CLONE_NEWUTS
    | 0x0800_0000 // CLONE_NEWIPC
    | 0x1000_0000 // CLONE_NEWUSER
    | 0x2000_0000 // CLONE_NEWPID
    | 0x4000_0000 // CLONE_NEWNET
    | 0x0000_0080; // CLONE_NEWTIME

/// A system call number of the build target (libc's `SYS_*`) as the
/// filter compares it. The filter admits only x86_64 calls
/// (`AUDIT_ARCH_X86_64`), whose numbers these are on that target; the
/// unit test `syscall_numbers_are_x86_64s` pins them.
const fn nr(n: libc::c_long) -> u32 {
    n as u32
}

/// Calls refused with EPERM outright.
const DENY_EPERM: &[(u32, &str)] = &[
    (nr(libc::SYS_bpf), "bpf"),
    (nr(libc::SYS_ptrace), "ptrace"),
    (nr(libc::SYS_process_vm_readv), "process_vm_readv"),
    (nr(libc::SYS_process_vm_writev), "process_vm_writev"),
    (nr(libc::SYS_perf_event_open), "perf_event_open"),
    (nr(libc::SYS_unshare), "unshare"),
    (nr(libc::SYS_setns), "setns"),
    (nr(libc::SYS_mount), "mount"),
    (nr(libc::SYS_umount2), "umount2"),
    (nr(libc::SYS_pivot_root), "pivot_root"),
    (nr(libc::SYS_chroot), "chroot"),
    (nr(libc::SYS_open_tree), "open_tree"),
    (nr(libc::SYS_move_mount), "move_mount"),
    (nr(libc::SYS_fsopen), "fsopen"),
    (nr(libc::SYS_fsconfig), "fsconfig"),
    (nr(libc::SYS_fsmount), "fsmount"),
    (nr(libc::SYS_fspick), "fspick"),
    (nr(libc::SYS_mount_setattr), "mount_setattr"),
    (nr(libc::SYS_kexec_load), "kexec_load"),
    (nr(libc::SYS_kexec_file_load), "kexec_file_load"),
    (nr(libc::SYS_init_module), "init_module"),
    (nr(libc::SYS_finit_module), "finit_module"),
    (nr(libc::SYS_delete_module), "delete_module"),
    (nr(libc::SYS_keyctl), "keyctl"),
    (nr(libc::SYS_add_key), "add_key"),
    (nr(libc::SYS_request_key), "request_key"),
    (nr(libc::SYS_userfaultfd), "userfaultfd"),
    (nr(libc::SYS_io_uring_setup), "io_uring_setup"),
    (nr(libc::SYS_io_uring_enter), "io_uring_enter"),
    (nr(libc::SYS_io_uring_register), "io_uring_register"),
    (nr(libc::SYS_open_by_handle_at), "open_by_handle_at"),
    (nr(libc::SYS_kcmp), "kcmp"),
    (nr(libc::SYS_reboot), "reboot"),
    (nr(libc::SYS_swapon), "swapon"),
    (nr(libc::SYS_swapoff), "swapoff"),
    (nr(libc::SYS_acct), "acct"),
    (nr(libc::SYS_ioperm), "ioperm"),
    (nr(libc::SYS_iopl), "iopl"),
    (nr(libc::SYS_process_madvise), "process_madvise"),
    (nr(libc::SYS_process_mrelease), "process_mrelease"),
    // An unprivileged fanotify group reporting names (FAN_REPORT_DFID_NAME)
    // watches a directory the step may not read: Landlock does not check
    // marks.
    (nr(libc::SYS_fanotify_init), "fanotify_init"),
    (nr(libc::SYS_fanotify_mark), "fanotify_mark"),
];
const NR_CLONE: u32 = nr(libc::SYS_clone);
const NR_CLONE3: u32 = nr(libc::SYS_clone3);
const NR_SOCKET: u32 = nr(libc::SYS_socket);
const NR_SOCKETPAIR: u32 = nr(libc::SYS_socketpair);
const NR_IOCTL: u32 = nr(libc::SYS_ioctl);
const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541c;

/// `memfd_create` (its flags are checked by [`logged_filter`]).
const NR_MEMFD_CREATE: u32 = nr(libc::SYS_memfd_create);
/// `MFD_NOEXEC_SEAL`: the memfd can never be made executable.
const MFD_NOEXEC_SEAL: u32 = 0x0008;

/// The second filter, installed after [`filter`] with
/// `SECCOMP_FILTER_FLAG_LOG`, so that the kernel writes an `AUDIT_SECCOMP`
/// record for each call it refuses and the supervisor reports it with its
/// authority chain. It refuses (EPERM) the same side-door calls as
/// [`filter`] (`DENY_EPERM` and `clone` with namespace flags; when two
/// filters refuse alike, the kernel credits, and so logs, the one
/// installed last) and, on its own, `memfd_create` without
/// `MFD_NOEXEC_SEAL`: an executable memfd runs any bytes the command can
/// read as a program (`fexecve`) and Landlock does not check execution of
/// memfds. The compatibility refusals of [`filter`] (`clone3` ENOSYS,
/// socket families, x32) stay unlogged. Laid out as a binary search like
/// [`filter`], so installing it adds little to a command's start-up.
pub fn logged_filter() -> Vec<SockFilter> {
    layout(&logged_cases())
}

/// The side-door calls both filters refuse: [`DENY_EPERM`], `clone` with
/// namespace flags, terminal injection (`TIOCSTI`, `TIOCLINUX`) and socket
/// families other than UNIX, inet and netlink-route (unsorted).
fn side_door_cases() -> Vec<(u32, Vec<SockFilter>)> {
    let eperm = RET_ERRNO | libc::EPERM as u32;
    let mut c: Vec<(u32, Vec<SockFilter>)> = DENY_EPERM
        .iter()
        .map(|(nr, _)| (*nr, vec![stmt(BPF_RET_K, eperm)]))
        .collect();
    c.push((
        NR_CLONE,
        vec![
            stmt(BPF_LD_W_ABS, off_arg_lo(0)),
            jump(BPF_JSET_K, NS_FLAGS, 0, 1),
            stmt(BPF_RET_K, eperm),
            stmt(BPF_RET_K, RET_ALLOW),
        ],
    ));
    let eafnosupport = RET_ERRNO | libc::EAFNOSUPPORT as u32;
    c.push((
        NR_IOCTL,
        vec![
            stmt(BPF_LD_W_ABS, off_arg_lo(1)),
            jump(BPF_JEQ_K, TIOCSTI, 2, 0),
            jump(BPF_JEQ_K, TIOCLINUX, 1, 0),
            stmt(BPF_RET_K, RET_ALLOW),
            stmt(BPF_RET_K, eperm),
        ],
    ));
    c.push((
        NR_SOCKETPAIR,
        vec![
            stmt(BPF_LD_W_ABS, off_arg_lo(0)),
            jump(BPF_JEQ_K, libc::AF_UNIX as u32, 0, 1),
            stmt(BPF_RET_K, RET_ALLOW),
            stmt(BPF_RET_K, eafnosupport),
        ],
    ));
    c.push((
        NR_SOCKET,
        vec![
            stmt(BPF_LD_W_ABS, off_arg_lo(0)),
            jump(BPF_JEQ_K, libc::AF_UNIX as u32, 5, 0),
            jump(BPF_JEQ_K, libc::AF_INET as u32, 4, 0),
            jump(BPF_JEQ_K, libc::AF_INET6 as u32, 3, 0),
            jump(BPF_JEQ_K, libc::AF_NETLINK as u32, 0, 3),
            stmt(BPF_LD_W_ABS, off_arg_lo(2)),
            jump(BPF_JEQ_K, libc::NETLINK_ROUTE as u32, 0, 1),
            stmt(BPF_RET_K, RET_ALLOW),
            stmt(BPF_RET_K, eafnosupport),
            stmt(BPF_RET_K, RET_ALLOW),
        ],
    ));
    c
}

/// The cases of [`logged_filter`], sorted.
fn logged_cases() -> Vec<(u32, Vec<SockFilter>)> {
    let eperm = RET_ERRNO | libc::EPERM as u32;
    let mut c = side_door_cases();
    c.push((
        NR_MEMFD_CREATE,
        vec![
            stmt(BPF_LD_W_ABS, off_arg_lo(1)),
            jump(BPF_JSET_K, MFD_NOEXEC_SEAL, 0, 1),
            stmt(BPF_RET_K, RET_ALLOW),
            stmt(BPF_RET_K, eperm),
        ],
    ));
    c.sort_by_key(|(nr, _)| *nr);
    c
}

/// The calls the supervisor decides (seccomp user notification), by this
/// architecture's numbers: those Landlock has no right for (see
/// `kapl_runtime::supervised`).
const SUPERVISED: &[(libc::c_long, Call)] = &[
    (libc::SYS_chmod, Call::Chmod),
    (libc::SYS_fchmod, Call::Fchmod),
    (libc::SYS_fchmodat, Call::Fchmodat),
    (libc::SYS_fchmodat2, Call::Fchmodat2),
    (libc::SYS_chown, Call::Chown),
    (libc::SYS_fchown, Call::Fchown),
    (libc::SYS_lchown, Call::Lchown),
    (libc::SYS_fchownat, Call::Fchownat),
    (libc::SYS_utime, Call::Utime),
    (libc::SYS_utimes, Call::Utimes),
    (libc::SYS_futimesat, Call::Futimesat),
    (libc::SYS_utimensat, Call::Utimensat),
    (libc::SYS_setxattr, Call::Setxattr),
    (libc::SYS_lsetxattr, Call::Lsetxattr),
    (libc::SYS_fsetxattr, Call::Fsetxattr),
    (libc::SYS_removexattr, Call::Removexattr),
    (libc::SYS_lremovexattr, Call::Lremovexattr),
    (libc::SYS_fremovexattr, Call::Fremovexattr),
    (libc::SYS_inotify_add_watch, Call::InotifyAddWatch),
    (libc::SYS_listen, Call::Listen),
    (libc::SYS_open, Call::Open),
    (libc::SYS_openat, Call::Openat),
    (libc::SYS_creat, Call::Creat),
    (libc::SYS_openat2, Call::Openat2),
    (libc::SYS_mknod, Call::Mknod),
    (libc::SYS_mknodat, Call::Mknodat),
    (libc::SYS_mkdir, Call::Mkdir),
    (libc::SYS_mkdirat, Call::Mkdirat),
    (libc::SYS_symlink, Call::Symlink),
    (libc::SYS_symlinkat, Call::Symlinkat),
    (libc::SYS_link, Call::Link),
    (libc::SYS_linkat, Call::Linkat),
    (libc::SYS_unlink, Call::Unlink),
    (libc::SYS_unlinkat, Call::Unlinkat),
    (libc::SYS_rmdir, Call::Rmdir),
    (libc::SYS_rename, Call::Rename),
    (libc::SYS_renameat, Call::Renameat),
    (libc::SYS_renameat2, Call::Renameat2),
    (libc::SYS_bind, Call::Bind),
    (libc::SYS_truncate, Call::Truncate),
];

/// The signalling calls, sent to the supervisor only below Landlock ABI 6
/// (from 6 on, Landlock's signal scope decides them): see
/// `kapl_runtime::signals`.
const SIGNALLING: &[(libc::c_long, SignalCall)] = &[
    (libc::SYS_kill, SignalCall::Kill),
    (libc::SYS_tkill, SignalCall::Tkill),
    (libc::SYS_tgkill, SignalCall::Tgkill),
    (libc::SYS_rt_sigqueueinfo, SignalCall::RtSigqueueinfo),
    (libc::SYS_rt_tgsigqueueinfo, SignalCall::RtTgsigqueueinfo),
    (libc::SYS_pidfd_send_signal, SignalCall::PidfdSendSignal),
];

/// The signalling call a notification's number names.
pub fn signal_call(nr: i32) -> Option<SignalCall> {
    SIGNALLING
        .iter()
        .find(|(n, _)| i64::from(nr) == *n)
        .map(|(_, c)| *c)
}

/// `O_CREAT` and `O_TRUNC`: `open` and `openat` go to the supervisor
/// only when they may make a name, or truncate without asking for write
/// access (a plain open is Landlock's, the hot path).
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
/// `O_ACCMODE`, `O_WRONLY`, `O_RDWR`.
const O_ACCMODE: u32 = 0o3;
const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
/// `BPF_ALU | BPF_AND | BPF_K`.
const BPF_AND_K: u16 = 0x54;

/// `setxattrat` and `removexattrat` (Linux 6.13): refused with ENOSYS by
/// [`filter`], so programs use the calls the supervisor decides.
const NR_SETXATTRAT: u32 = 463;
const NR_REMOVEXATTRAT: u32 = 466;

/// The supervised call a notification's number names.
pub fn supervised_call(nr: i32) -> Option<Call> {
    SUPERVISED
        .iter()
        .find(|(n, _)| i64::from(nr) == *n)
        .map(|(_, c)| *c)
}

/// The third filter, installed with `SECCOMP_FILTER_FLAG_NEW_LISTENER`:
/// every supervised call goes to the supervisor, which decides it and
/// performs it on the command's behalf. A refusal of [`filter`] or
/// [`logged_filter`] takes precedence over the notification (the kernel
/// keeps the most restrictive answer of all filters). With `signals` (a
/// session below Landlock ABI 6, which has no signal scope), the
/// signalling calls go to the supervisor too.
pub fn notify_filter(signals: bool) -> Vec<SockFilter> {
    // Flags in `arg`: O_CREAT, or O_TRUNC with an access mode other than
    // write-only or read-write, go to the supervisor.
    let when_creating = |arg: u32| {
        vec![
            stmt(BPF_LD_W_ABS, off_arg_lo(arg)),
            jump(BPF_JSET_K, O_CREAT, 5, 0),
            jump(BPF_JSET_K, O_TRUNC, 0, 3),
            stmt(BPF_AND_K, O_ACCMODE),
            jump(BPF_JEQ_K, O_WRONLY, 1, 0),
            jump(BPF_JEQ_K, O_RDWR, 0, 1),
            stmt(BPF_RET_K, RET_ALLOW),
            stmt(BPF_RET_K, RET_USER_NOTIF),
        ]
    };
    let mut c: Vec<(u32, Vec<SockFilter>)> = SUPERVISED
        .iter()
        .map(|(n, call)| {
            let body = match call {
                Call::Open => when_creating(1),
                Call::Openat => when_creating(2),
                _ => vec![stmt(BPF_RET_K, RET_USER_NOTIF)],
            };
            (nr(*n), body)
        })
        .collect();
    if signals {
        c.extend(
            SIGNALLING
                .iter()
                .map(|(n, _)| (nr(*n), vec![stmt(BPF_RET_K, RET_USER_NOTIF)])),
        );
    }
    c.sort_by_key(|(nr, _)| *nr);
    layout(&c)
}

/// The name of a call [`logged_filter`] refuses, for reports.
pub fn call_name(nr: u32) -> Option<&'static str> {
    match nr {
        NR_CLONE => Some("clone (new namespaces)"),
        NR_MEMFD_CREATE => Some("memfd_create (executable)"),
        NR_IOCTL => Some("ioctl (terminal injection)"),
        NR_SOCKET => Some("socket (address family)"),
        NR_SOCKETPAIR => Some("socketpair (address family)"),
        _ => DENY_EPERM.iter().find(|(n, _)| *n == nr).map(|(_, s)| *s),
    }
}

/// Names of the calls the filter refuses (for documentation and tests).
pub fn denied_calls() -> impl Iterator<Item = &'static str> {
    DENY_EPERM.iter().map(|(_, n)| *n)
}

fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}
fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// Builds the filter.
///
/// Layout: after the architecture check, a balanced binary search over the
/// syscall numbers that are not simply allowed, each leaf holding its own
/// decision. When a filter is installed the kernel precomputes which calls
/// it always allows by running it once per syscall number with interrupts
/// off; over a linear chain of ~50 comparisons that took ~0.2 ms of every
/// command's start-up, over the tree each run is about 12 instructions.
pub fn filter() -> Vec<SockFilter> {
    layout(&cases())
}

/// The prologue, then `cases` as a binary search, or as one linear chain
/// of comparisons if the tree would need a jump longer than classic BPF
/// allows. Both are derived from the same cases; should neither fit, the
/// filter refuses every call (fail closed: the command cannot run).
fn layout(cases: &[(u32, Vec<SockFilter>)]) -> Vec<SockFilter> {
    let mut p = prologue();
    match tree(cases).or_else(|| linear(cases)) {
        Some(t) => p.extend(t),
        None => p.push(stmt(BPF_RET_K, RET_KILL_PROCESS)),
    }
    p
}

/// `cases` as one linear chain: each number compared in turn, its body
/// (which ends in a return) entered on a match.
fn linear(cases: &[(u32, Vec<SockFilter>)]) -> Option<Vec<SockFilter>> {
    let mut p = Vec::new();
    for (nr, body) in cases {
        p.push(jump(BPF_JEQ_K, *nr, 0, u8::try_from(body.len()).ok()?));
        p.extend_from_slice(body);
    }
    p.push(stmt(BPF_RET_K, RET_ALLOW));
    Some(p)
}

fn prologue() -> Vec<SockFilter> {
    vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, OFF_NR),
        jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, RET_ERRNO | libc::ENOSYS as u32),
    ]
}

/// Every syscall number that is not simply allowed, sorted, with the code
/// that decides it (entered with the number in the accumulator; it always
/// ends in a return).
fn cases() -> Vec<(u32, Vec<SockFilter>)> {
    let mut c = side_door_cases();
    for n in [NR_CLONE3, NR_SETXATTRAT, NR_REMOVEXATTRAT] {
        c.push((n, vec![stmt(BPF_RET_K, RET_ERRNO | libc::ENOSYS as u32)]));
    }
    c.sort_by_key(|(nr, _)| *nr);
    c
}

/// A binary search over sorted `cases`; numbers not among them are
/// allowed. None when a jump would not fit classic BPF's 8-bit offsets.
fn tree(cases: &[(u32, Vec<SockFilter>)]) -> Option<Vec<SockFilter>> {
    match cases {
        [] => Some(vec![stmt(BPF_RET_K, RET_ALLOW)]),
        [(nr, body)] => {
            let mut out = vec![jump(BPF_JEQ_K, *nr, 0, u8::try_from(body.len()).ok()?)];
            out.extend_from_slice(body);
            out.push(stmt(BPF_RET_K, RET_ALLOW));
            Some(out)
        }
        _ => {
            let mid = cases.len() / 2;
            let left = tree(&cases[..mid])?;
            let right = tree(&cases[mid..])?;
            let mut out = vec![jump(
                BPF_JGE_K,
                cases[mid].0,
                u8::try_from(left.len()).ok()?,
                0,
            )];
            out.extend(left);
            out.extend(right);
            Some(out)
        }
    }
}

#[cfg(test)]
mod tests;
