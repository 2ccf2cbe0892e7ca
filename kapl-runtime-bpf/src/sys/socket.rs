//! UNIX sockets (stage: runtime, the session control channel): abstract
//! stream sockets, descriptors passed with `SCM_RIGHTS`, the peer's
//! credentials (`SO_PEERCRED`) and a socket's address family.
//!
//! Input: sockets, abstract names, bytes and descriptors to send. Output:
//! new sockets, bytes and descriptors received, the peer's (pid, uid), or
//! the kernel's error (`io::Result`).

use super::last_error;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// `socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)`.
pub fn unix_stream_socket() -> io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// `bind` to an abstract UNIX name (`name` without the leading NUL).
pub fn bind_abstract(sock: impl AsFd, name: &[u8]) -> io::Result<()> {
    Ok(rustix::net::bind(
        sock,
        &SocketAddrUnix::new_abstract_name(name)?,
    )?)
}

/// `connect` to an abstract UNIX name (`name` without the leading NUL).
pub fn connect_abstract(sock: impl AsFd, name: &[u8]) -> io::Result<()> {
    Ok(rustix::net::connect(
        sock,
        &SocketAddrUnix::new_abstract_name(name)?,
    )?)
}

/// `listen(sock, backlog)`.
pub fn listen(sock: impl AsFd, backlog: i32) -> io::Result<()> {
    Ok(rustix::net::listen(sock, backlog)?)
}

/// `accept4(sock, NULL, NULL, SOCK_CLOEXEC)`.
pub fn accept(sock: impl AsFd) -> io::Result<OwnedFd> {
    Ok(rustix::net::accept_with(sock, SocketFlags::CLOEXEC)?)
}

/// The peer's (pid, uid) (`SO_PEERCRED`: as they were at `connect` or
/// `listen`). The pid is 0 when the peer's process is not visible in our
/// pid namespace.
pub fn peer_credentials(sock: impl AsFd) -> io::Result<(i32, u32)> {
    // Not rustix's `socket_peercred`: its `UCred` holds the pid as a
    // non-zero `Pid`, and the kernel answers 0 for a peer outside our pid
    // namespace.
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into our ucred of that
    // size.
    let r = unsafe {
        libc::getsockopt(
            sock.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::addr_of_mut!(cred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(last_error());
    }
    Ok((cred.pid, cred.uid))
}

/// The most descriptors one message carries.
pub const MAX_PASSED_FDS: usize = 12;

/// `sendmsg(sock, data, SCM_RIGHTS fds, MSG_NOSIGNAL)`: returns how many
/// bytes were sent (the fds go with the first byte). At most
/// [`MAX_PASSED_FDS`] descriptors.
pub fn send_with_fds(sock: impl AsFd, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_PASSED_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::from_raw_os_error(libc::E2BIG));
    }
    Ok(rustix::net::sendmsg(
        sock,
        &[IoSlice::new(data)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?)
}

/// `recvmsg(sock, buf, MSG_CMSG_CLOEXEC)`: the bytes received (0: the peer
/// closed); descriptors passed with them (`SCM_RIGHTS`, at most
/// [`MAX_PASSED_FDS`]) are appended to `fds`.
pub fn recv_with_fds(sock: impl AsFd, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_PASSED_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        sock,
        &mut [IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(passed) = m {
            fds.extend(passed);
        }
    }
    Ok(msg.bytes)
}

/// The address family of a socket (`SO_DOMAIN`), e.g. `libc::AF_UNIX`.
pub fn socket_domain(sock: impl AsFd) -> io::Result<i32> {
    Ok(i32::from(
        rustix::net::sockopt::socket_domain(sock)?.as_raw(),
    ))
}

/// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)`: two connected
/// ends that keep message boundaries.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Sends one message without blocking (`MSG_DONTWAIT | MSG_NOSIGNAL`):
/// a full queue is `WouldBlock`, a closed peer `BrokenPipe`.
pub fn send_nonblocking(sock: impl AsFd, data: &[u8]) -> io::Result<usize> {
    loop {
        match rustix::net::send(&sock, data, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(n) => return Ok(n),
        }
    }
}

/// `shutdown(SHUT_WR)`: the peer reads end-of-file.
pub fn shutdown_write(sock: impl AsFd) -> io::Result<()> {
    Ok(rustix::net::shutdown(&sock, rustix::net::Shutdown::Write)?)
}

#[cfg(test)]
mod tests {
    //! UNIX sockets on this machine's kernel, as any user (no root).
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test assertions")]
    use super::*;
    use crate::sys::{fstat, getuid, pipe_cloexec};
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn descriptors_pass_with_the_first_byte() {
        let (a, b) = UnixStream::pair().unwrap();
        let (rd, wr) = pipe_cloexec().unwrap();
        assert_eq!(send_with_fds(&a, b"hi", &[wr.as_fd()]).unwrap(), 2);
        drop(wr);
        let mut buf = [0u8; 8];
        let mut fds = Vec::new();
        assert_eq!(recv_with_fds(&b, &mut buf, &mut fds).unwrap(), 2);
        assert_eq!(&buf[..2], b"hi");
        assert_eq!(fds.len(), 1);
        // The received descriptor is the pipe's write end.
        std::fs::File::from(fds.pop().unwrap())
            .write_all(b"y")
            .unwrap();
        let mut got = [0u8; 1];
        std::fs::File::from(rd).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"y");
        assert_eq!(socket_domain(&a).unwrap(), libc::AF_UNIX);
        assert!(fstat(&a).unwrap().is_socket());
        assert_eq!(
            peer_credentials(&a).unwrap(),
            (std::process::id() as i32, getuid())
        );
    }

    #[test]
    fn abstract_sockets_listen_connect_accept() {
        let name = format!("kapl-sys-test/{}", std::process::id()).into_bytes();
        let l = unix_stream_socket().unwrap();
        bind_abstract(&l, &name).unwrap();
        listen(&l, 4).unwrap();
        let c = unix_stream_socket().unwrap();
        connect_abstract(&c, &name).unwrap();
        let s = accept(&l).unwrap();
        assert_eq!(send_with_fds(&c, b"z", &[]).unwrap(), 1);
        let mut buf = [0u8; 4];
        assert_eq!(recv_with_fds(&s, &mut buf, &mut Vec::new()).unwrap(), 1);
        let long = vec![b'x'; 200];
        assert_eq!(
            bind_abstract(unix_stream_socket().unwrap(), &long)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ENAMETOOLONG)
        );
    }
}
