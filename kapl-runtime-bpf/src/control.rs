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
//! are JSON lines; `exec` passes the client's stdin/stdout/stderr with
//! SCM_RIGHTS (never an inet socket: those would carry another cgroup).

use crate::sys;
use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// A request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Run a command under the current step.
    Exec {
        /// argv.
        argv: Vec<Vec<u8>>,
        /// Environment.
        env: Vec<Vec<u8>>,
        /// Working directory.
        cwd: Vec<u8>,
        /// Print allow lines too.
        show_allows: bool,
    },
    /// Move to a step.
    Step {
        /// Its name.
        name: String,
    },
    /// Stop the session.
    Stop,
    /// Describe the session.
    Status,
}

impl Request {
    /// Parses one request line: the supervisor's only parser of bytes a
    /// client sends (fuzzed by `fuzz/fuzz_targets/control.rs`).
    pub fn parse(line: &[u8]) -> Result<Request, serde_json::Error> {
        serde_json::from_slice(line)
    }
}

/// A reply line.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    /// A line for stderr.
    Notice {
        /// The text.
        line: String,
    },
    /// The command exited.
    Exit {
        /// Exit status.
        code: i32,
    },
    /// Success, with a message for stdout.
    Ok {
        /// The message.
        message: String,
    },
    /// Failure.
    Error {
        /// The message.
        message: String,
    },
}

/// The abstract socket name of a session.
pub fn socket_name(uid: u32, id: &str) -> Vec<u8> {
    format!("kapl-run/{uid}/{id}").into_bytes()
}

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

/// Sends one JSON line with optional fds.
pub fn send(fd: RawFd, msg: &impl Serialize, fds: &[RawFd]) -> io::Result<()> {
    let mut data = serde_json::to_vec(msg).map_err(io::Error::other)?;
    data.push(b'\n');
    // SAFETY: the caller passes open descriptors (this function's contract,
    // as for any RawFd argument) that stay open while it runs.
    let (sock, passed) = unsafe {
        (
            BorrowedFd::borrow_raw(fd),
            fds.iter()
                .map(|f| BorrowedFd::borrow_raw(*f))
                .collect::<Vec<_>>(),
        )
    };
    let mut sent = 0;
    while sent < data.len() {
        // The fds go with the first byte.
        let fds: &[BorrowedFd<'_>] = if sent == 0 { &passed } else { &[] };
        match sys::send_with_fds(sock, &data[sent..], fds) {
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
    buf: Vec<u8>,
    /// Fds received so far.
    pub fds: Vec<OwnedFd>,
    /// The peer closed.
    pub eof: bool,
}

impl LineReader {
    /// Reads once (blocking unless the fd is non-blocking).
    pub fn fill(&mut self, fd: RawFd) -> io::Result<()> {
        let mut data = [0u8; 8192];
        // SAFETY: the caller passes an open descriptor (this function's
        // contract) that stays open while it runs.
        let sock = unsafe { BorrowedFd::borrow_raw(fd) };
        let n = sys::recv_with_fds(sock, &mut data, &mut self.fds)?;
        if n == 0 {
            self.eof = true;
        }
        self.buf.extend_from_slice(&data[..n]);
        Ok(())
    }

    /// Appends bytes as if they had been read from the socket (for tests
    /// and fuzzing; `fill` is the socket path).
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete line, if any.
    pub fn line(&mut self) -> Option<Vec<u8>> {
        let pos = self.buf.iter().position(|b| *b == b'\n')?;
        let rest = self.buf.split_off(pos + 1);
        let mut line = std::mem::replace(&mut self.buf, rest);
        line.pop();
        Some(line)
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
pub fn is_inet_socket(fd: RawFd) -> bool {
    // SAFETY: the caller passes an open descriptor (this function's
    // contract) that stays open while it runs.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    if !sys::fstat(fd).is_ok_and(|st| st.is_socket()) {
        return false;
    }
    sys::socket_domain(fd).map_or(true, |dom| dom != libc::AF_UNIX)
}
