//! Socket options that change where a packet goes: `rthdr-connect
//! [ADDR]:PORT HOP` and `rthdr-sendto [ADDR]:PORT HOP` (an IPv6 segment
//! routing header through `setsockopt(IPV6_RTHDR)` on a TCP or UDP socket,
//! whose first segment `HOP` is where the packets go, then a connect or a
//! datagram to the address the hooks decide on), `rthdr-cmsg [ADDR]:PORT
//! HOP` (the same header as ancillary data on one `sendmsg`),
//! `ip-options ADDR:PORT` (`setsockopt(IP_OPTIONS)` with a record-route
//! option, which needs no capability, then a datagram) and `sockopt-benign
//! ADDR:PORT` (options that do not reroute — `SO_REUSEADDR`, `TCP_NODELAY`,
//! `IP_TOS`/`IPV6_TCLASS` — then a connect: the twin that must keep
//! working).

use crate::net::inet_socket;
use crate::report::outcome;
use crate::sys::cvt;
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, OwnedFd};

pub fn run(cmd: &str, args: &[String]) -> Option<()> {
    let first = args.first().map(String::as_str).unwrap_or("");
    let hop = args.get(1).map(String::as_str).unwrap_or("");
    match cmd {
        "rthdr-connect" => outcome(cmd, rthdr(first, hop, libc::SOCK_STREAM)),
        "rthdr-sendto" => outcome(cmd, rthdr(first, hop, libc::SOCK_DGRAM)),
        "rthdr-cmsg" => outcome(cmd, rthdr_cmsg(first, hop)),
        "ip-options" => outcome(cmd, ip_options(first)),
        "sockopt-benign" => outcome(cmd, benign(first)),
        _ => return None,
    }
    Some(())
}

/// A type 4 (segment routing) header with two segments: `last` (the
/// destination the connect or send names) and `hop` (the first, where the
/// packet goes). 40 bytes: 8 of header, 16 per segment.
fn srh(last: Ipv6Addr, hop: Ipv6Addr) -> [u8; 40] {
    let mut h = [0u8; 40];
    h[1] = 4; // length in 8-byte units after the first 8
    h[2] = 4; // type: segment routing
    h[3] = 1; // segments left
    h[4] = 1; // last entry
    h[8..24].copy_from_slice(&last.octets());
    h[24..40].copy_from_slice(&hop.octets());
    h
}

fn parse(addr: &str, hop: &str) -> io::Result<(std::net::SocketAddrV6, Ipv6Addr)> {
    let inval = || io::Error::from_raw_os_error(libc::EINVAL);
    let a: std::net::SocketAddrV6 = addr.parse().map_err(|_| inval())?;
    let h: Ipv6Addr = hop.parse().map_err(|_| inval())?;
    Ok((a, h))
}

fn setopt(s: &OwnedFd, level: i32, name: i32, val: &[u8]) -> io::Result<()> {
    // SAFETY: `val` is readable for its length.
    cvt(unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            val.as_ptr().cast(),
            val.len() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// Sets the routing header, then connects (without waiting for the
/// handshake: the first hop may not answer) or sends one datagram.
fn rthdr(addr: &str, hop: &str, ty: i32) -> io::Result<()> {
    let (a, h) = parse(addr, hop)?;
    let (s, ss, len) = inet_socket(addr, ty | libc::SOCK_NONBLOCK)?;
    setopt(&s, libc::IPPROTO_IPV6, libc::IPV6_RTHDR, &srh(*a.ip(), h))?;
    let fd = s.as_raw_fd();
    if ty == libc::SOCK_STREAM {
        // SAFETY: a valid address of `len` bytes.
        let r = unsafe { libc::connect(fd, std::ptr::addr_of!(ss).cast(), len) };
        if r < 0 && crate::sys::errno() != libc::EINPROGRESS {
            return Err(io::Error::last_os_error());
        }
    } else {
        // SAFETY: a valid buffer and address of `len` bytes.
        let n = unsafe {
            libc::sendto(
                fd,
                b"probe".as_ptr().cast(),
                5,
                0,
                std::ptr::addr_of!(ss).cast(),
                len,
            )
        };
        cvt(n as i64)?;
    }
    Ok(())
}

/// One `sendmsg` whose ancillary data carries the routing header.
fn rthdr_cmsg(addr: &str, hop: &str) -> io::Result<i64> {
    let (a, h) = parse(addr, hop)?;
    let (s, mut ss, len) = inet_socket(addr, libc::SOCK_DGRAM)?;
    let hdr = srh(*a.ip(), h);
    // SAFETY: CMSG_SPACE/CMSG_LEN are arithmetic on a length.
    let (space, clen) = unsafe {
        (
            libc::CMSG_SPACE(hdr.len() as u32) as usize,
            libc::CMSG_LEN(hdr.len() as u32) as usize,
        )
    };
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    let mut payload = *b"probe";
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: msghdr is plain data.
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_name = std::ptr::addr_of_mut!(ss).cast();
    m.msg_namelen = len;
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    m.msg_control = cbuf.as_mut_ptr().cast();
    m.msg_controllen = space;
    // SAFETY: the control buffer holds one header of `clen` bytes, aligned
    // (u64 storage); CMSG_FIRSTHDR/CMSG_DATA point into it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&m);
        (*c).cmsg_level = libc::IPPROTO_IPV6;
        (*c).cmsg_type = libc::IPV6_RTHDR;
        (*c).cmsg_len = clen;
        std::ptr::copy_nonoverlapping(hdr.as_ptr(), libc::CMSG_DATA(c), hdr.len());
    }
    // SAFETY: every pointer in `m` is valid for the call.
    cvt(unsafe { libc::sendmsg(s.as_raw_fd(), &m, 0) } as i64)
}

/// A record-route option (no capability needed), then one datagram.
fn ip_options(addr: &str) -> io::Result<i64> {
    let (s, ss, len) = inet_socket(addr, libc::SOCK_DGRAM)?;
    // Record route: type 7, length 7, pointer 4, one empty slot; then EOL.
    setopt(
        &s,
        libc::IPPROTO_IP,
        libc::IP_OPTIONS,
        &[7, 7, 4, 0, 0, 0, 0, 0],
    )?;
    // SAFETY: a valid buffer and address of `len` bytes.
    cvt(unsafe {
        libc::sendto(
            s.as_raw_fd(),
            b"probe".as_ptr().cast(),
            5,
            0,
            std::ptr::addr_of!(ss).cast(),
            len,
        )
    } as i64)
}

/// Options that do not reroute, then a plain connect.
fn benign(addr: &str) -> io::Result<()> {
    let (s, ss, len) = inet_socket(addr, libc::SOCK_STREAM)?;
    let one = 1i32.to_ne_bytes();
    setopt(&s, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one)?;
    setopt(&s, libc::IPPROTO_TCP, libc::TCP_NODELAY, &one)?;
    if addr.starts_with('[') {
        setopt(
            &s,
            libc::IPPROTO_IPV6,
            libc::IPV6_TCLASS,
            &8i32.to_ne_bytes(),
        )?;
    } else {
        setopt(&s, libc::IPPROTO_IP, libc::IP_TOS, &8i32.to_ne_bytes())?;
    }
    // SAFETY: a valid address of `len` bytes.
    cvt(unsafe { libc::connect(s.as_raw_fd(), std::ptr::addr_of!(ss).cast(), len) })?;
    Ok(())
}
