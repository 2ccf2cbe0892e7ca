//! Audit netlink (stage: runtime, the audit reader): the `NETLINK_AUDIT`
//! socket, messages to the kernel, reads, and the socket's drop counter.
//!
//! Input: multicast groups, a socket and buffers. Output: the socket (or a
//! [`SyscallError`] naming the call that failed), bytes sent and received,
//! or the kernel's error (`io::Result`).

use super::{Named, SyscallError, last_error};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// A `NETLINK_AUDIT` socket bound to the multicast `groups`. The kernel
/// serves audit in the initial network namespace only: a supervisor
/// started in another one (a container, `ip netns exec`) would read
/// nothing and report no file denial. Its socket is then made by a thread
/// that joins the initial namespace for the call (root, as every full
/// session is); the socket stays there whatever thread uses it.
pub fn audit_netlink_socket(groups: u32) -> Result<OwnedFd, SyscallError> {
    let ino = |p: &str| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    match (ino("/proc/self/ns/net"), ino("/proc/1/ns/net")) {
        (Ok(me), Ok(init)) if me != init => std::thread::scope(|s| {
            s.spawn(|| {
                let ns = std::fs::File::open("/proc/1/ns/net").named("open /proc/1/ns/net")?;
                rustix::thread::move_into_link_name_space(
                    ns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .named("setns(initial network namespace)")?;
                audit_socket_here(groups)
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("thread")).named("setns"))
        }),
        _ => audit_socket_here(groups),
    }
}

fn audit_socket_here(groups: u32) -> Result<OwnedFd, SyscallError> {
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
