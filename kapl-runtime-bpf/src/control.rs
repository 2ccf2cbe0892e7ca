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

use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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

fn sockaddr(name: &[u8]) -> Result<(libc::sockaddr_un, u32), io::Error> {
    // SAFETY: sockaddr_un is plain data.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as u16;
    if name.len() + 1 > sa.sun_path.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    // sun_path[0] = 0: abstract namespace.
    for (i, b) in name.iter().enumerate() {
        sa.sun_path[i + 1] = *b as libc::c_char;
    }
    let len = (size_of::<libc::sa_family_t>() + 1 + name.len()) as u32;
    Ok((sa, len))
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Creates the listening socket.
pub fn listen(name: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: socket(2).
    let fd =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let (sa, len) = sockaddr(name)?;
    // SAFETY: valid address of `len` bytes.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), std::ptr::addr_of!(sa).cast(), len) })?;
    // SAFETY: listen on our socket.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 64) })?;
    Ok(fd)
}

/// Connects to a session.
pub fn connect(name: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: socket(2).
    let fd =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let (sa, len) = sockaddr(name)?;
    // SAFETY: valid address.
    cvt(unsafe { libc::connect(fd.as_raw_fd(), std::ptr::addr_of!(sa).cast(), len) })?;
    Ok(fd)
}

/// Accepts a connection.
pub fn accept(l: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: accept4 without address.
    let fd = cvt(unsafe {
        libc::accept4(
            l.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    })?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The peer's (pid, uid).
pub fn peer(fd: &OwnedFd) -> io::Result<(i32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = size_of::<libc::ucred>() as u32;
    // SAFETY: getsockopt into a ucred of the given size.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::addr_of_mut!(cred).cast(),
            &mut len,
        )
    })?;
    Ok((cred.pid, cred.uid))
}

/// Sends one JSON line with optional fds.
pub fn send(fd: RawFd, msg: &impl Serialize, fds: &[RawFd]) -> io::Result<()> {
    let mut data = serde_json::to_vec(msg).map_err(io::Error::other)?;
    data.push(b'\n');
    let mut sent = 0;
    let mut first = true;
    while sent < data.len() {
        let mut iov = libc::iovec {
            iov_base: data[sent..].as_mut_ptr().cast(),
            iov_len: data.len() - sent,
        };
        let mut cbuf = [0u64; 8];
        // SAFETY: msghdr is plain data.
        let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        if first && !fds.is_empty() {
            let bytes = size_of_val(fds) as u32;
            // SAFETY: CMSG_SPACE is a pure computation.
            let space = unsafe { libc::CMSG_SPACE(bytes) } as usize;
            mh.msg_control = cbuf.as_mut_ptr().cast();
            mh.msg_controllen = space;
            // SAFETY: the control buffer is large enough (64 bytes for ≤ 3
            // fds) and we fill the first header.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&mh);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN(bytes) as usize;
                std::ptr::copy_nonoverlapping(
                    fds.as_ptr(),
                    libc::CMSG_DATA(c).cast::<RawFd>(),
                    fds.len(),
                );
            }
        }
        // SAFETY: a valid msghdr.
        let n = unsafe { libc::sendmsg(fd, &mh, libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        first = false;
        sent += n as usize;
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
        let mut cbuf = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // SAFETY: msghdr is plain data.
        let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf.as_mut_ptr().cast();
        mh.msg_controllen = size_of_val(&cbuf);
        // SAFETY: a valid msghdr with our buffers.
        let n = unsafe { libc::recvmsg(fd, &mut mh, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: walking the control messages the kernel wrote.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&mh);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let count = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / size_of::<RawFd>();
                    let p = libc::CMSG_DATA(c).cast::<RawFd>();
                    for i in 0..count {
                        self.fds
                            .push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(p.add(i))));
                    }
                }
                c = libc::CMSG_NXTHDR(&mh, c);
            }
        }
        if n == 0 {
            self.eof = true;
        }
        self.buf.extend_from_slice(&data[..n as usize]);
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
    // SAFETY: getuid never fails.
    if unsafe { libc::getuid() } == 0 {
        PathBuf::from("/run/kapl")
    } else {
        registry_dir()
    }
}

/// Where session ids are registered for this user.
pub fn registry_dir() -> PathBuf {
    // SAFETY: getuid never fails.
    let uid = unsafe { libc::getuid() };
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
    // SAFETY: fstat into a zeroed stat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return false;
    }
    let mut dom: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as u32;
    // SAFETY: getsockopt with an int.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            std::ptr::addr_of_mut!(dom).cast(),
            &mut len,
        )
    };
    r != 0 || dom != libc::AF_UNIX
}
