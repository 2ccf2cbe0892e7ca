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
//!
//! By area:
//!
//! - `process`: uid, sessions, pidfds, waiting, `fork`, `_exit`;
//! - `fd`: pipes, memfds, `dup2`, `poll`, `close_range`, `fstat`, `openat2` and
//!   `O_NOFOLLOW` opens, `flock`;
//! - `socket`: the UNIX control socket, `SCM_RIGHTS`, peer credentials;
//! - `netlink`: the audit netlink socket;
//! - `notify`: the supervised layer (seccomp user notifications, a
//!   command's memory and descriptors, the calls made on its behalf);
//! - `bpf`: raw `bpf(2)`;
//! - `child`: the clone child's steps (capabilities, securebits,
//!   no_new_privs, Landlock, seccomp, `execve`, signals, its stack).
//!
//! Everything is re-exported here: callers write `sys::NAME`.

mod bpf;
mod child;
mod fd;
mod mount;
mod netlink;
mod notify;
mod process;
mod socket;

pub use bpf::{
    BPF_F_SLEEPABLE, ProgBtf, bpf_btf_load, bpf_link_create, bpf_prog_load,
    bpf_prog_load_explained, bpf_prog_test_run, bpf_prog_test_run_ctx,
};
pub use child::{
    ChildStack, ExecArgs, SignalsBlocked, block_all_signals, chdir, clear_ambient_capabilities,
    clear_capabilities, confine_build, drop_bounding_capability, install_seccomp_filter,
    landlock_abi_version, landlock_restrict_self, reset_signals, set_no_new_privs, set_securebits,
    unshare_cgroup_namespace,
};
pub use fd::{
    FileInfo, close_from_except, dup2_inheritable, dup2_onto_stdio, fstat, lock_exclusive,
    open_path_nofollow_at, openat2_cwd, pipe_cloexec, poll, poll_raw, ready_now, sealed_memfd,
};
pub use mount::private_bind_mount;
pub use netlink::{
    audit_netlink_socket, recv, send_to_kernel, set_recv_buffer_force, socket_drops,
};
pub use notify::{
    Answer, CapsDropped, Notif, become_creator_thread, bind_unix, chmod_fd, chown_fd,
    create_file_at, drop_effective_caps, fd_path, ftruncate, inotify_watch_fd,
    install_notify_filter, link_at, lookup_at, mkdir_at, mknod_at, notif_addfd_send,
    notif_id_valid, notif_recv, notif_send, open_dir_at, open_object_at, open_proc_object,
    pidfd_getfd, read_memory, removexattr_fd, rename_at, reopen, send_fd_raw, set_umask,
    setxattr_fd, socket_port, symlink_at, unlink_at, utimens_fd,
};
pub use process::{
    Exit, Forked, exit_now, fork, geteuid, getuid, pidfd_open, pidfd_send_signal, process_exists,
    setsid, try_wait_pidfd, wait_pidfd,
};
pub use socket::{
    MAX_PASSED_FDS, accept, bind_abstract, connect_abstract, listen, peer_credentials,
    recv_with_fds, send_nonblocking, send_with_fds, seqpacket_pair, shutdown_write, socket_domain,
    unix_stream_socket,
};

use std::io;

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
