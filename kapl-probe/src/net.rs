//! Network side doors: `udp-sendto ADDR:PORT` (an unconnected UDP socket of
//! the address's family), `tfo ADDR:PORT` (TCP Fast Open: `sendto` with
//! `MSG_FASTOPEN`, no `connect`), `raw4`, `raw6`, `packet`, `netlink PROTO`
//! (socket creation only), `unix-connect PATH`, `unix-sendto PATH`
//! (pathname UNIX sockets, stream and datagram) and `abstract-connect NAME`,
//! `abstract-sendto NAME` (the abstract namespace), `abstract-self NAME`
//! (listen on an abstract name and connect to it from the same process: a
//! service inside the session's own domain), `unix-connect-via-fd PATH`
//! (an `O_PATH` descriptor of the socket file, which needs no Landlock
//! right, then connect to `/proc/self/fd/N`).

use crate::report::outcome;
use crate::sys::cvt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd};

pub fn run(cmd: &str, args: &[String]) -> Option<()> {
    let first = args.first().map(String::as_str).unwrap_or("");
    match cmd {
        "udp-sendto" => outcome(cmd, send_to(first, libc::SOCK_DGRAM, 0)),
        "tfo" => outcome(cmd, send_to(first, libc::SOCK_STREAM, libc::MSG_FASTOPEN)),
        "raw4" => outcome(
            cmd,
            socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
        ),
        "raw6" => outcome(
            cmd,
            socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6),
        ),
        "packet" => outcome(
            cmd,
            socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                i32::from(0x0003u16.to_be()),
            ),
        ),
        "netlink" => outcome(
            &format!("netlink-{first}"),
            first
                .parse::<i32>()
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
                .and_then(|p| socket(libc::AF_NETLINK, libc::SOCK_RAW, p)),
        ),
        "unix-connect" => outcome(cmd, unix(first.as_bytes(), libc::SOCK_STREAM)),
        "unix-sendto" => outcome(cmd, unix(first.as_bytes(), libc::SOCK_DGRAM)),
        "abstract-connect" => outcome(cmd, unix(&abstract_name(first), libc::SOCK_STREAM)),
        "abstract-sendto" => outcome(cmd, unix(&abstract_name(first), libc::SOCK_DGRAM)),
        "abstract-self" => outcome(cmd, abstract_self(first)),
        "unix-connect-via-fd" => outcome(cmd, via_fd(first)),
        _ => return None,
    }
    Some(())
}

pub fn socket(family: i32, ty: i32, proto: i32) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with plain integer arguments.
    let fd = cvt(unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A fresh socket of type `ty` in the family of `addr` (`IP:PORT`), with
/// `addr` as a raw sockaddr (storage, length) for the call that uses it.
pub fn inet_socket(
    addr: &str,
    ty: i32,
) -> io::Result<(OwnedFd, libc::sockaddr_storage, libc::socklen_t)> {
    let a: SocketAddr = addr
        .parse()
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fam = if a.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let s = socket(fam, ty, 0)?;
    let (ss, len) = sockaddr(&a);
    Ok((s, ss, len))
}

/// One `sendto(2)` of a few bytes from a fresh socket of type `ty` with
/// `flags`: a UDP datagram from an unbound, unconnected socket (the kernel
/// binds it implicitly; no bind(2) a hook could refuse first), or a TCP
/// Fast Open connect (`MSG_FASTOPEN`, no connect(2)).
fn send_to(addr: &str, ty: i32, flags: i32) -> io::Result<isize> {
    let (s, ss, len) = inet_socket(addr, ty)?;
    let msg = b"probe";
    // SAFETY: a valid buffer and address of `len` bytes.
    let n = unsafe {
        libc::sendto(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            msg.as_ptr().cast(),
            msg.len(),
            flags,
            std::ptr::addr_of!(ss).cast(),
            len,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n)
    }
}

/// A sockaddr for `a` (storage, length).
fn sockaddr(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write(std::ptr::addr_of_mut!(ss).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write(std::ptr::addr_of_mut!(ss).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn abstract_name(name: &str) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(name.as_bytes());
    v
}

/// Connects (stream) or sends one datagram to the UNIX address `path`
/// (a leading NUL byte: abstract).
pub fn unix(path: &[u8], ty: i32) -> io::Result<OwnedFd> {
    let s = socket(libc::AF_UNIX, ty, 0)?;
    // SAFETY: sockaddr_un is plain data.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.len() >= sa.sun_path.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in sa.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    let len = (size_of::<libc::sa_family_t>() + path.len() + usize::from(path.first() != Some(&0)))
        as libc::socklen_t;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
    if ty == libc::SOCK_STREAM {
        // SAFETY: a valid address of `len` bytes.
        cvt(unsafe { libc::connect(fd, std::ptr::addr_of!(sa).cast(), len) })?;
    } else {
        let msg = b"probe";
        // SAFETY: a valid buffer and address.
        let n = unsafe {
            libc::sendto(
                fd,
                msg.as_ptr().cast(),
                msg.len(),
                0,
                std::ptr::addr_of!(sa).cast(),
                len,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(s)
}

/// Listens on the abstract name and connects to it (same Landlock domain).
fn abstract_self(name: &str) -> io::Result<OwnedFd> {
    let l = std::os::unix::net::UnixListener::bind_addr(
        &<std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            name.as_bytes(),
        )?,
    )?;
    let c = unix(&abstract_name(name), libc::SOCK_STREAM)?;
    drop(l);
    Ok(c)
}

fn via_fd(path: &str) -> io::Result<OwnedFd> {
    let c = std::ffi::CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: open(2) with a NUL-terminated path.
    let fd = cvt(unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) })?;
    // SAFETY: a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    unix(link.as_bytes(), libc::SOCK_STREAM)
}
