//! The clone child's steps (stage: runtime, confinement): `chdir`, a
//! cgroup namespace, securebits, capabilities, no_new_privs,
//! `landlock_restrict_self`, seccomp filters, `execve` ([`ExecArgs`]),
//! signal dispositions and mask, and the child's stack ([`ChildStack`]).
//!
//! Input: arguments prepared by the parent before the clone. Output: the
//! kernel's answer (`io::Result`). The functions marked "no allocation"
//! run in the clone child (see [`crate::spawn`]'s INVARIANT): they make
//! raw system calls on the memory they are given and nothing else.

use super::last_error;
use crate::seccomp::SockFilter;
use std::ffi::{CStr, CString, NulError};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

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

/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`:
/// the kernel's Landlock ABI version (ENOSYS or EOPNOTSUPP without
/// Landlock).
pub fn landlock_abi_version() -> io::Result<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: with a null attribute pointer and size 0 the kernel reads no
    // memory; the version flag only returns a number.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        return Err(last_error());
    }
    u32::try_from(r).map_err(|_| io::Error::from_raw_os_error(libc::ERANGE))
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

/// Confines a compiler run for a proposal, between fork and exec: limits
/// (CPU seconds, address space and file size in bytes, no core dumps),
/// `no_new_privs`, no capabilities, then the Landlock domain `ruleset`.
/// No allocation.
pub fn confine_build(ruleset: RawFd, cpu_seconds: u64, memory: u64) -> io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let lim = |n: u64| Rlimit {
        current: Some(n),
        maximum: Some(n),
    };
    setrlimit(Resource::Cpu, lim(cpu_seconds))?;
    setrlimit(Resource::As, lim(memory))?;
    setrlimit(Resource::Fsize, lim(256 << 20))?;
    setrlimit(Resource::Core, lim(0))?;
    set_no_new_privs()?;
    clear_capabilities()?;
    landlock_restrict_self(ruleset, 0)
}

#[cfg(test)]
mod tests {
    //! The clone child's steps that need no kernel.
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test assertions")]
    use super::*;

    #[test]
    fn exec_args_refuse_nul_bytes() {
        assert!(ExecArgs::new(b"/bin/true", &[b"true".to_vec()], &[]).is_ok());
        assert!(ExecArgs::new(b"/bin/t\0rue", &[], &[]).is_err());
        assert!(ExecArgs::new(b"/bin/true", &[b"a\0".to_vec()], &[]).is_err());
    }
}
