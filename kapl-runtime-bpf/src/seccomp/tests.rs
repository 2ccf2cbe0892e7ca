//! The filter decided by a classic-BPF interpreter: the tree against the
//! linear reference chain, step counts, and the logged filter.

use super::*;

/// The numbers the filter compares are x86_64's (the numbers this
/// table held before it named libc's constants).
#[cfg(target_arch = "x86_64")]
#[test]
fn syscall_numbers_are_x86_64s() {
    let expected: &[(&str, u32)] = &[
        ("bpf", 321),
        ("ptrace", 101),
        ("process_vm_readv", 310),
        ("process_vm_writev", 311),
        ("perf_event_open", 298),
        ("unshare", 272),
        ("setns", 308),
        ("mount", 165),
        ("umount2", 166),
        ("pivot_root", 155),
        ("chroot", 161),
        ("open_tree", 428),
        ("move_mount", 429),
        ("fsopen", 430),
        ("fsconfig", 431),
        ("fsmount", 432),
        ("fspick", 433),
        ("mount_setattr", 442),
        ("kexec_load", 246),
        ("kexec_file_load", 320),
        ("init_module", 175),
        ("finit_module", 313),
        ("delete_module", 176),
        ("keyctl", 250),
        ("add_key", 248),
        ("request_key", 249),
        ("userfaultfd", 323),
        ("io_uring_setup", 425),
        ("io_uring_enter", 426),
        ("io_uring_register", 427),
        ("open_by_handle_at", 304),
        ("kcmp", 312),
        ("reboot", 169),
        ("swapon", 167),
        ("swapoff", 168),
        ("acct", 163),
        ("ioperm", 173),
        ("iopl", 172),
        ("process_madvise", 440),
        ("process_mrelease", 448),
        ("fanotify_init", 300),
        ("fanotify_mark", 301),
    ];
    let table: Vec<(&str, u32)> = DENY_EPERM.iter().map(|(n, name)| (*name, *n)).collect();
    assert_eq!(table, expected);
    assert_eq!(
        [
            NR_CLONE,
            NR_CLONE3,
            NR_SOCKET,
            NR_SOCKETPAIR,
            NR_IOCTL,
            NR_MEMFD_CREATE
        ],
        [56, 435, 41, 53, 16, 319]
    );
}

/// The terminal-injection ioctls and the socket families both filters
/// refuse, as hand-written chains.
fn policed_calls(p: &mut Vec<SockFilter>) {
    let eperm = RET_ERRNO | libc::EPERM as u32;
    // ioctl TIOCSTI / TIOCLINUX.
    p.push(jump(BPF_JEQ_K, NR_IOCTL, 0, 5));
    p.push(stmt(BPF_LD_W_ABS, off_arg_lo(1)));
    p.push(jump(BPF_JEQ_K, TIOCSTI, 2, 0));
    p.push(jump(BPF_JEQ_K, TIOCLINUX, 1, 0));
    p.push(stmt(BPF_RET_K, RET_ALLOW));
    p.push(stmt(BPF_RET_K, eperm));
    // socketpair: UNIX only.
    let eafnosupport = RET_ERRNO | libc::EAFNOSUPPORT as u32;
    p.push(jump(BPF_JEQ_K, NR_SOCKETPAIR, 0, 4));
    p.push(stmt(BPF_LD_W_ABS, off_arg_lo(0)));
    p.push(jump(BPF_JEQ_K, libc::AF_UNIX as u32, 0, 1));
    p.push(stmt(BPF_RET_K, RET_ALLOW));
    p.push(stmt(BPF_RET_K, eafnosupport));
    // socket: UNIX, INET, INET6, NETLINK with protocol NETLINK_ROUTE.
    p.push(jump(BPF_JEQ_K, NR_SOCKET, 0, 9));
    p.push(stmt(BPF_LD_W_ABS, off_arg_lo(0)));
    p.push(jump(BPF_JEQ_K, libc::AF_UNIX as u32, 5, 0));
    p.push(jump(BPF_JEQ_K, libc::AF_INET as u32, 4, 0));
    p.push(jump(BPF_JEQ_K, libc::AF_INET6 as u32, 3, 0));
    p.push(jump(BPF_JEQ_K, libc::AF_NETLINK as u32, 0, 3));
    p.push(stmt(BPF_LD_W_ABS, off_arg_lo(2)));
    p.push(jump(BPF_JEQ_K, libc::NETLINK_ROUTE as u32, 0, 1));
    p.push(stmt(BPF_RET_K, RET_ALLOW));
    p.push(stmt(BPF_RET_K, eafnosupport));
}

/// [`filter`]'s decisions written out by hand as one linear chain (the
/// layout the tree replaced): the independent reference the tree is
/// compared with.
fn linear_filter() -> Vec<SockFilter> {
    let eperm = RET_ERRNO | libc::EPERM as u32;
    let mut p = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, OFF_NR),
        // x32 ABI calls: refuse.
        jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, RET_ERRNO | libc::ENOSYS as u32),
    ];
    for (nr, _) in DENY_EPERM {
        p.push(jump(BPF_JEQ_K, *nr, 0, 1));
        p.push(stmt(BPF_RET_K, eperm));
    }
    // clone3: ENOSYS (libc falls back to clone); setxattrat and
    // removexattrat: ENOSYS (programs use the supervised calls).
    for n in [NR_CLONE3, NR_SETXATTRAT, NR_REMOVEXATTRAT] {
        p.push(jump(BPF_JEQ_K, n, 0, 1));
        p.push(stmt(BPF_RET_K, RET_ERRNO | libc::ENOSYS as u32));
    }
    // clone with namespace flags.
    p.push(jump(BPF_JEQ_K, NR_CLONE, 0, 4));
    p.push(stmt(BPF_LD_W_ABS, off_arg_lo(0)));
    p.push(jump(BPF_JSET_K, NS_FLAGS, 0, 1));
    p.push(stmt(BPF_RET_K, eperm));
    p.push(stmt(BPF_RET_K, RET_ALLOW));
    policed_calls(&mut p);
    p.push(stmt(BPF_RET_K, RET_ALLOW));
    p
}

/// [`logged_filter`]'s decisions written out by hand as one linear chain:
/// the independent reference the tree is compared with.
fn linear_logged_filter() -> Vec<SockFilter> {
    let eperm = RET_ERRNO | libc::EPERM as u32;
    let mut p = prologue();
    for (nr, _) in DENY_EPERM {
        p.push(jump(BPF_JEQ_K, *nr, 0, 1));
        p.push(stmt(BPF_RET_K, eperm));
    }
    p.push(jump(BPF_JEQ_K, NR_CLONE, 0, 4));
    p.push(stmt(BPF_LD_W_ABS, off_arg_lo(0)));
    p.push(jump(BPF_JSET_K, NS_FLAGS, 0, 1));
    p.push(stmt(BPF_RET_K, eperm));
    p.push(stmt(BPF_RET_K, RET_ALLOW));
    p.push(jump(BPF_JEQ_K, NR_MEMFD_CREATE, 0, 4));
    p.push(stmt(BPF_LD_W_ABS, off_arg_lo(1)));
    p.push(jump(BPF_JSET_K, MFD_NOEXEC_SEAL, 0, 1));
    p.push(stmt(BPF_RET_K, RET_ALLOW));
    p.push(stmt(BPF_RET_K, eperm));
    policed_calls(&mut p);
    p.push(stmt(BPF_RET_K, RET_ALLOW));
    p
}

/// A tiny classic-BPF interpreter for the subset the filter uses, so the
/// filter's decisions are tested without the kernel.
fn run(p: &[SockFilter], nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&AUDIT_ARCH_X86_64.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    let mut acc = 0u32;
    let mut pc = 0usize;
    loop {
        let ins = p[pc];
        match ins.code {
            BPF_LD_W_ABS => {
                let o = ins.k as usize;
                acc = u32::from_ne_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
            }
            BPF_RET_K => return ins.k,
            BPF_AND_K => acc &= ins.k,
            BPF_JEQ_K | BPF_JGE_K | BPF_JSET_K => {
                let t = match ins.code {
                    BPF_JEQ_K => acc == ins.k,
                    BPF_JGE_K => acc >= ins.k,
                    _ => acc & ins.k != 0,
                };
                pc += usize::from(if t { ins.jt } else { ins.jf });
            }
            other => unreachable!("opcode {other:#x}"),
        }
        pc += 1;
    }
}

/// Every jump lands inside the program, and every path ends in a
/// return.
fn well_formed(p: &[SockFilter]) {
    for (i, ins) in p.iter().enumerate() {
        if ins.code & 0x07 == 0x05 {
            let far = i + 1 + usize::from(ins.jt.max(ins.jf));
            assert!(far < p.len(), "jump at {i} leaves the program");
        }
    }
    assert_eq!(p.last().map(|i| i.code), Some(BPF_RET_K));
}

/// The fallback layout (derived from the same cases as the tree) decides
/// like the hand-written chains.
#[test]
fn linear_fallback_decides_like_the_references() {
    for (cases, reference) in [
        (cases(), linear_filter()),
        (logged_cases(), linear_logged_filter()),
    ] {
        let mut l = prologue();
        let chain = linear(&cases);
        assert!(chain.is_some(), "bodies fit 8-bit jumps");
        l.extend(chain.unwrap_or_default());
        well_formed(&l);
        for nr in (0..1100).chain([0x4000_0000, u32::MAX]) {
            for a in [
                [0u64; 6],
                [0x1000_0000, 0x9, 0, 0, 0, 0],
                [16, TIOCSTI as u64, 9, 0, 0, 0],
                [10, 2, 0, 0, 0, 0],
            ] {
                assert_eq!(run(&l, nr, a), run(&reference, nr, a), "nr {nr} {a:?}");
            }
        }
    }
}

#[test]
fn tree_decides_like_the_linear_chain() {
    let (t, l) = (filter(), linear_filter());
    assert!(t.len() > prologue().len(), "the tree layout is used");
    assert_ne!(t, l, "the tree layout is used, not the fallback");
    well_formed(&t);
    well_formed(&l);
    let arg_sets: [[u64; 6]; 8] = [
        [0; 6],
        [0x1200011, 0x5401, 0, 0, 0, 0],
        [0x1000_0000, TIOCSTI as u64, 0, 0, 0, 0],
        [1, TIOCLINUX as u64, 0, 0, 0, 0],
        [2, 1, 0, 0, 0, 0],
        [10, 2, 0, 0, 0, 0],
        [16, 3, 0, 0, 0, 0],
        [16, 3, 9, 0, 0, 0],
    ];
    for nr in (0..1100).chain([0x4000_0000, 0x4000_0001, u32::MAX]) {
        for a in arg_sets {
            assert_eq!(run(&t, nr, a), run(&l, nr, a), "syscall {nr} args {a:?}");
        }
    }
}

/// The path the kernel's precomputation walks for an allowed call is
/// short (it stops at the first return).
#[test]
fn allowed_calls_take_few_steps() {
    let p = filter();
    let steps = |nr: u32| {
        let mut pc = 0usize;
        let mut acc = 0u32;
        let mut n = 0;
        loop {
            n += 1;
            let ins = p[pc];
            match ins.code {
                BPF_LD_W_ABS if ins.k == OFF_ARCH => acc = AUDIT_ARCH_X86_64,
                BPF_LD_W_ABS => acc = nr,
                BPF_RET_K => return n,
                _ => {
                    let t = match ins.code {
                        BPF_JEQ_K => acc == ins.k,
                        BPF_JGE_K => acc >= ins.k,
                        _ => acc & ins.k != 0,
                    };
                    pc += usize::from(if t { ins.jt } else { ins.jf });
                }
            }
            pc += 1;
        }
    };
    let worst = (0..460).map(steps).max().unwrap_or(0);
    assert!(worst <= 20, "{worst} steps");
}

#[test]
fn logged_filter_refuses_side_doors_and_executable_memfds() {
    let p = logged_filter();
    well_formed(&p);
    let lin = linear_logged_filter();
    well_formed(&lin);
    for nr in 0..460u32 {
        for args in [
            [0u64; 6],
            [0x1000_0000, 0x9, 0, 0, 0, 0],
            [0x11, 0x1, 0, 0, 0, 0],
        ] {
            assert_eq!(run(&p, nr, args), run(&lin, nr, args), "nr {nr} {args:?}");
        }
    }
    let eperm = RET_ERRNO | libc::EPERM as u32;
    assert_eq!(run(&p, 272, [0; 6]), eperm, "unshare");
    assert_eq!(run(&p, 161, [0; 6]), eperm, "chroot");
    assert_eq!(run(&p, NR_CLONE, [0x1000_0000, 0, 0, 0, 0, 0]), eperm);
    assert_eq!(run(&p, NR_CLONE, [0x11, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(run(&p, NR_MEMFD_CREATE, [0, 1, 0, 0, 0, 0]), eperm);
    assert_eq!(run(&p, NR_MEMFD_CREATE, [0, 0x10, 0, 0, 0, 0]), eperm);
    assert_eq!(run(&p, NR_MEMFD_CREATE, [0, 0x9, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(
        run(&p, NR_CLONE3, [0; 6]),
        RET_ALLOW,
        "left to the first filter"
    );
    assert_eq!(run(&p, 0, [0; 6]), RET_ALLOW);
    assert_eq!(call_name(272), Some("unshare"));
    assert_eq!(run(&p, 300, [0; 6]), eperm, "fanotify_init");
    assert_eq!(run(&p, 301, [0; 6]), eperm, "fanotify_mark");
    assert_eq!(call_name(300), Some("fanotify_init"));
}

#[test]
fn decisions() {
    let p = filter();
    let eperm = RET_ERRNO | libc::EPERM as u32;
    let noaf = RET_ERRNO | libc::EAFNOSUPPORT as u32;
    assert_eq!(run(&p, 321, [0; 6]), eperm, "bpf");
    assert_eq!(run(&p, 101, [0; 6]), eperm, "ptrace");
    assert_eq!(run(&p, 0, [0; 6]), RET_ALLOW, "read");
    assert_eq!(run(&p, 59, [0; 6]), RET_ALLOW, "execve");
    assert_eq!(run(&p, NR_CLONE3, [0; 6]), RET_ERRNO | libc::ENOSYS as u32);
    assert_eq!(
        run(&p, NR_CLONE, [0x1200011, 0, 0, 0, 0, 0]),
        RET_ALLOW,
        "fork"
    );
    assert_eq!(
        run(&p, NR_CLONE, [0x1000_0000, 0, 0, 0, 0, 0]),
        eperm,
        "newuser"
    );
    assert_eq!(run(&p, NR_SOCKET, [2, 1, 0, 0, 0, 0]), RET_ALLOW, "inet");
    assert_eq!(run(&p, NR_SOCKET, [10, 2, 0, 0, 0, 0]), RET_ALLOW, "inet6");
    assert_eq!(run(&p, NR_SOCKET, [1, 1, 0, 0, 0, 0]), RET_ALLOW, "unix");
    assert_eq!(run(&p, NR_SOCKET, [17, 3, 0, 0, 0, 0]), noaf, "packet");
    assert_eq!(run(&p, NR_SOCKET, [40, 1, 0, 0, 0, 0]), noaf, "vsock");
    assert_eq!(
        run(&p, NR_SOCKET, [16, 3, 0, 0, 0, 0]),
        RET_ALLOW,
        "rtnetlink"
    );
    assert_eq!(
        run(&p, NR_SOCKET, [16, 3, 9, 0, 0, 0]),
        noaf,
        "audit netlink"
    );
    assert_eq!(run(&p, NR_SOCKETPAIR, [1, 1, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(run(&p, NR_SOCKETPAIR, [2, 1, 0, 0, 0, 0]), noaf);
    assert_eq!(
        run(&p, NR_IOCTL, [0, 0x5401, 0, 0, 0, 0]),
        RET_ALLOW,
        "TCGETS"
    );
    assert_eq!(run(&p, NR_IOCTL, [0, TIOCSTI as u64, 0, 0, 0, 0]), eperm);
    assert_eq!(
        run(&p, 0x4000_0000, [0; 6]),
        RET_ERRNO | libc::ENOSYS as u32
    );
}

/// The notify filter sends exactly the supervised calls to the
/// supervisor, and each maps back to its call.
#[test]
fn notify_filter_sends_exactly_the_supervised_calls() {
    let p = notify_filter(false);
    well_formed(&p);
    let mut sent = 0;
    for nr in 0..1100u32 {
        let r = run(&p, nr, [0; 6]);
        match supervised_call(nr as i32) {
            // A plain open is Landlock's; with O_CREAT, or O_TRUNC without
            // write access, it is sent.
            Some(c @ (Call::Open | Call::Openat)) => {
                assert_eq!(r, RET_ALLOW, "syscall {nr} without O_CREAT");
                let at = if c == Call::Open { 1 } else { 2 };
                for (flags, sent_here) in [
                    (O_CREAT | O_WRONLY, true),
                    (O_CREAT, true),
                    (O_TRUNC, true),
                    (O_TRUNC | 3, true),
                    (O_TRUNC | O_WRONLY, false),
                    (O_TRUNC | O_RDWR, false),
                    (O_RDWR, false),
                    (0o2_000_000 | O_WRONLY, false),
                ] {
                    let mut a = [0u64; 6];
                    a[at] = u64::from(flags);
                    let want = if sent_here { RET_USER_NOTIF } else { RET_ALLOW };
                    assert_eq!(run(&p, nr, a), want, "syscall {nr} flags {flags:#o}");
                }
                sent += 1;
            }
            Some(_) => {
                assert_eq!(r, RET_USER_NOTIF, "syscall {nr}");
                sent += 1;
            }
            None => assert_eq!(r, RET_ALLOW, "syscall {nr}"),
        }
    }
    assert_eq!(sent, Call::ALL.len());
    // Below Landlock ABI 6: the signalling calls too, and nothing else
    // changes.
    let q = notify_filter(true);
    well_formed(&q);
    let mut signalling = 0;
    for nr in 0..1100u32 {
        let a = [0u64, 0, 0o100, 0, 0, 0];
        if signal_call(nr as i32).is_some() {
            assert_eq!(run(&p, nr, a), RET_ALLOW, "syscall {nr} at ABI 6+");
            assert_eq!(run(&q, nr, a), RET_USER_NOTIF, "syscall {nr} below ABI 6");
            signalling += 1;
        } else {
            assert_eq!(run(&q, nr, a), run(&p, nr, a), "syscall {nr}");
        }
    }
    assert_eq!(signalling, 6);
    for c in Call::ALL {
        assert!(
            SUPERVISED.iter().any(|(_, x)| *x == c),
            "{} has a syscall number",
            c.name()
        );
    }
}
