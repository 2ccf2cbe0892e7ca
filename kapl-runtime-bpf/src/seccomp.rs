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

/// Calls refused with EPERM outright (x86_64 numbers).
const DENY_EPERM: &[(u32, &str)] = &[
    (321, "bpf"),
    (101, "ptrace"),
    (310, "process_vm_readv"),
    (311, "process_vm_writev"),
    (298, "perf_event_open"),
    (272, "unshare"),
    (308, "setns"),
    (165, "mount"),
    (166, "umount2"),
    (155, "pivot_root"),
    (161, "chroot"),
    (428, "open_tree"),
    (429, "move_mount"),
    (430, "fsopen"),
    (431, "fsconfig"),
    (432, "fsmount"),
    (433, "fspick"),
    (442, "mount_setattr"),
    (246, "kexec_load"),
    (320, "kexec_file_load"),
    (175, "init_module"),
    (313, "finit_module"),
    (176, "delete_module"),
    (250, "keyctl"),
    (248, "add_key"),
    (249, "request_key"),
    (323, "userfaultfd"),
    (425, "io_uring_setup"),
    (426, "io_uring_enter"),
    (427, "io_uring_register"),
    (304, "open_by_handle_at"),
    (312, "kcmp"),
    (169, "reboot"),
    (167, "swapon"),
    (168, "swapoff"),
    (163, "acct"),
    (173, "ioperm"),
    (172, "iopl"),
    (440, "process_madvise"),
    (448, "process_mrelease"),
];
const NR_CLONE: u32 = 56;
const NR_CLONE3: u32 = 435;
const NR_SOCKET: u32 = 41;
const NR_SOCKETPAIR: u32 = 53;
const NR_IOCTL: u32 = 16;
const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541c;

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
pub fn filter() -> Vec<SockFilter> {
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
    // clone3: ENOSYS (libc falls back to clone).
    p.push(jump(BPF_JEQ_K, NR_CLONE3, 0, 1));
    p.push(stmt(BPF_RET_K, RET_ERRNO | libc::ENOSYS as u32));
    // clone with namespace flags.
    p.push(jump(BPF_JEQ_K, NR_CLONE, 0, 4));
    p.push(stmt(BPF_LD_W_ABS, off_arg_lo(0)));
    p.push(jump(BPF_JSET_K, NS_FLAGS, 0, 1));
    p.push(stmt(BPF_RET_K, eperm));
    p.push(stmt(BPF_RET_K, RET_ALLOW));
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
    p.push(stmt(BPF_RET_K, RET_ALLOW));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
