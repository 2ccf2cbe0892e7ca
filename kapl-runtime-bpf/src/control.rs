//! The session supervisor's control channel (stage: runtime, sessions).
//!
//! Input: requests from `kapl-run exec/step/session stop` clients. Output:
//! replies, and for `exec` the command's deny lines and exit status.
//!
//! The socket is an abstract UNIX socket `kapl-run/<uid>/<id>`: confined
//! commands can never reach it (their Landlock domain has the
//! abstract-socket scope, which refuses connections to sockets created
//! outside the domain), and the supervisor accepts only peers with the
//! invoking user's uid that are not inside the session's cgroups. Messages
//! are JSON lines (the types are `kapl_runtime::protocol`'s); `exec` passes the client's stdin/stdout/stderr with
//! SCM_RIGHTS (never an inet socket: those would carry another cgroup).

use crate::sys;
use kapl_runtime::protocol::{self, LineBuffer};
pub use kapl_runtime::protocol::{MAX_LINE, Reply, Request, socket_name};
use serde::Serialize;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

/// Creates the listening socket.
pub fn listen(name: &[u8]) -> io::Result<OwnedFd> {
    let fd = sys::unix_stream_socket()?;
    sys::bind_abstract(&fd, name)?;
    sys::listen(&fd, 64)?;
    Ok(fd)
}

/// Connects to a session.
pub fn connect(name: &[u8]) -> io::Result<OwnedFd> {
    let fd = sys::unix_stream_socket()?;
    sys::connect_abstract(&fd, name)?;
    Ok(fd)
}

/// Accepts a connection.
pub fn accept(l: &OwnedFd) -> io::Result<OwnedFd> {
    sys::accept(l)
}

/// The peer's (pid, uid).
pub fn peer(fd: &OwnedFd) -> io::Result<(i32, u32)> {
    sys::peer_credentials(fd)
}

/// Sends one JSON line, with `fds` passed alongside its first byte.
pub fn send(sock: impl AsFd, msg: &impl Serialize, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let data = protocol::line(msg).map_err(io::Error::other)?;
    let mut sent = 0;
    while sent < data.len() {
        // The fds go with the first byte.
        let fds: &[BorrowedFd<'_>] = if sent == 0 { fds } else { &[] };
        match sys::send_with_fds(&sock, &data[sent..], fds) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A line reader that also collects passed fds.
#[derive(Debug, Default)]
pub struct LineReader {
    buf: LineBuffer,
    /// Fds received so far.
    pub fds: Vec<OwnedFd>,
    /// The peer closed.
    pub eof: bool,
}

impl LineReader {
    /// Reads once (blocking unless the socket is non-blocking). A peer that
    /// sends more than [`MAX_LINE`] bytes without a newline is an error.
    pub fn fill(&mut self, sock: impl AsFd) -> io::Result<()> {
        let mut data = [0u8; 8192];
        let n = sys::recv_with_fds(sock, &mut data, &mut self.fds)?;
        if n == 0 {
            self.eof = true;
        }
        self.buf.push(&data[..n]);
        if self.buf.pending() > MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "control message longer than the limit",
            ));
        }
        Ok(())
    }

    /// Appends bytes as if they had been read from the socket (for tests
    /// and fuzzing; `fill` is the socket path).
    pub fn push(&mut self, data: &[u8]) {
        self.buf.push(data);
    }

    /// The next complete line, if any.
    pub fn line(&mut self) -> Option<Vec<u8>> {
        self.buf.line()
    }
}

/// kapl-run's state directory: for root `/run/kapl` (the session registry
/// and the audit state), for other users their session registry.
pub fn state_dir() -> PathBuf {
    if sys::getuid() == 0 {
        PathBuf::from("/run/kapl")
    } else {
        registry_dir()
    }
}

/// Where each session leaves what `kapl-run report --session` needs (its
/// audit file and image), kept after it stops: in root's state directory
/// (which no step may change), else beside the user's registry.
pub fn session_info_dir() -> PathBuf {
    if sys::getuid() == 0 {
        state_dir().join("session-info")
    } else {
        registry_dir().with_extension("info")
    }
}

/// Where session ids are registered for this user.
pub fn registry_dir() -> PathBuf {
    let uid = sys::getuid();
    if uid == 0 {
        PathBuf::from("/run/kapl/sessions")
    } else if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        PathBuf::from(x).join("kapl-sessions")
    } else {
        PathBuf::from(format!("/tmp/kapl-{uid}/sessions"))
    }
}

/// Whether `fd` is a socket of a family other than UNIX (refused as stdio).
pub fn is_inet_socket(fd: impl AsFd) -> bool {
    let fd = fd.as_fd();
    if !sys::fstat(fd).is_ok_and(|st| st.is_socket()) {
        return false;
    }
    sys::socket_domain(fd).map_or(true, |dom| dom != libc::AF_UNIX)
}
