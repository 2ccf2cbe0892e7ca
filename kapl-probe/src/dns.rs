//! DNS from inside a session, and a DNS server for the tests to stand up:
//!
//! - `resolve NAME` — glibc's getaddrinfo (what programs use): prints
//!   `resolve NAME ok ADDR,ADDR...` or `resolve NAME refused -1` (no
//!   address: the resolver refused the name, or it does not exist);
//! - `udp-connect ADDR:PORT` — a UDP connect (no packet is sent), printed
//!   as `udp-connect ADDR:PORT ok`;
//! - `dns-udp NAME SERVER:PORT` / `dns-tcp NAME SERVER:PORT` — one A query
//!   sent to SERVER (any address; the session steers port 53), printed as
//!   `dns-udp NAME ok RCODE ADDR,... from FROM` (FROM: where the answer
//!   said it came from);
//! - `dns-flood N SERVER:PORT` — N queries for random names as fast as a
//!   socket sends them, answers not awaited; prints `dns-flood ok N`;
//! - `dns-loop N NAME SERVER:PORT` — N queries for NAME one after the
//!   other, each from a fresh socket (as resolvers send them); prints
//!   `dns-loop ok P50_US P99_US` (the benchmark's resolver row);
//! - `dns-serve ADDR:PORT [--listen ADDR:PORT]... ZONE...` — an
//!   authoritative server on UDP and TCP for the test's zone, until killed:
//!   each ZONE is `NAME=ADDR[/TTL]` (A or AAAA) or `NAME=@TARGET` (CNAME);
//!   other names are NXDOMAIN. Each `--listen` is a TCP port that accepts
//!   connections and closes them.

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

pub fn run(cmd: &str, args: &[String]) -> Option<()> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match cmd {
        "resolve" => resolve(arg(0)),
        "udp-connect" => {
            crate::report::outcome(&format!("udp-connect {}", arg(0)), udp_connect(arg(0)));
        }
        "dns-udp" => print_query("dns-udp", arg(0), query_udp(arg(0), arg(1))),
        "dns-tcp" => print_query("dns-tcp", arg(0), query_tcp(arg(0), arg(1))),
        "dns-flood" => flood(arg(0), arg(1)),
        "dns-loop" => dns_loop(arg(0), arg(1), arg(2)),
        "dns-serve" => serve(args),
        _ => return None,
    }
    Some(())
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

fn resolve(name: &str) {
    match (name, 0).to_socket_addrs() {
        Ok(a) => {
            let mut ips: Vec<String> = a.map(|s| s.ip().to_string()).collect();
            ips.sort();
            ips.dedup();
            println!("resolve {name} ok {}", ips.join(","));
        }
        Err(_) => println!("resolve {name} refused -1"),
    }
}

/// A UDP connect from an unbound socket (no bind(2) a hook could refuse
/// first): no packet is sent.
fn udp_connect(to: &str) -> io::Result<()> {
    let (s, ss, len) = crate::net::inet_socket(to, libc::SOCK_DGRAM)?;
    // SAFETY: a valid address of `len` bytes.
    crate::sys::cvt(unsafe { libc::connect(s.as_raw_fd(), std::ptr::addr_of!(ss).cast(), len) })
        .map(drop)
}

/// Sends `msg` to `to` from a fresh unbound UDP socket (the kernel binds
/// it implicitly, as resolvers' sockets are).
fn udp_send(to: &str, msg: &[u8]) -> io::Result<OwnedFd> {
    let (s, ss, len) = crate::net::inet_socket(to, libc::SOCK_DGRAM)?;
    // SAFETY: a valid buffer, and an address of `len` bytes.
    let n = unsafe {
        libc::sendto(
            s.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            std::ptr::addr_of!(ss).cast(),
            len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(s)
}

/// One datagram and where it says it came from (3 s at most).
fn udp_recv(s: &OwnedFd) -> io::Result<(Vec<u8>, String)> {
    let tv = libc::timeval {
        tv_sec: 3,
        tv_usec: 0,
    };
    // SAFETY: a valid option value of its size.
    crate::sys::cvt(unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::addr_of!(tv).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    })?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: sockaddr_storage is plain data.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: a valid buffer, and an address buffer of `len` bytes.
    let n = unsafe {
        libc::recvfrom(
            s.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            std::ptr::addr_of_mut!(ss).cast(),
            &mut len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(usize::try_from(n).unwrap_or(0));
    let from = match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in.
            let sin: libc::sockaddr_in = unsafe { std::ptr::read(std::ptr::addr_of!(ss).cast()) };
            SocketAddr::from((
                std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            ))
        }
        _ => {
            // SAFETY: the kernel wrote a sockaddr_in6.
            let sin6: libc::sockaddr_in6 = unsafe { std::ptr::read(std::ptr::addr_of!(ss).cast()) };
            SocketAddr::from((
                std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
            ))
        }
    };
    Ok((buf, from.to_string()))
}

fn query_bytes(name: &str, id: u16) -> io::Result<Vec<u8>> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    let n = Name::from_ascii(name).map_err(|_| bad("name"))?;
    m.add_query(Query::query(n, RecordType::A));
    m.to_vec().map_err(|e| bad(&e.to_string()))
}

struct Got {
    rcode: ResponseCode,
    addrs: Vec<IpAddr>,
    from: String,
}

fn got(bytes: &[u8], from: String) -> io::Result<Got> {
    let m = Message::from_vec(bytes).map_err(|e| bad(&e.to_string()))?;
    let addrs = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    Ok(Got {
        rcode: m.metadata.response_code,
        addrs,
        from,
    })
}

fn query_udp(name: &str, server: &str) -> io::Result<Got> {
    let s = udp_send(server, &query_bytes(name, 0x4b41)?)?;
    let (b, from) = udp_recv(&s)?;
    got(&b, from)
}

fn query_tcp(name: &str, server: &str) -> io::Result<Got> {
    let to: SocketAddr = server.parse().map_err(|_| bad("SERVER:PORT"))?;
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let q = query_bytes(name, 0x4b42)?;
    let len = u16::try_from(q.len()).map_err(|_| bad("long"))?;
    s.write_all(&len.to_be_bytes())?;
    s.write_all(&q)?;
    let mut l = [0u8; 2];
    s.read_exact(&mut l)?;
    let mut b = vec![0u8; usize::from(u16::from_be_bytes(l))];
    s.read_exact(&mut b)?;
    got(&b, to.to_string())
}

fn print_query(what: &str, name: &str, r: io::Result<Got>) {
    match r {
        Ok(g) => {
            let a: Vec<String> = g.addrs.iter().map(IpAddr::to_string).collect();
            println!(
                "{what} {name} ok {} {} from {}",
                g.rcode,
                a.join(","),
                g.from
            );
        }
        Err(e) => println!("{what} {name} refused {}", e.raw_os_error().unwrap_or(-1)),
    }
}

fn flood(n: &str, server: &str) {
    let run = || -> io::Result<usize> {
        let n: usize = n.parse().map_err(|_| bad("N"))?;
        for i in 0..n {
            let q = query_bytes(&format!("n{i}.flood.test"), i as u16)?;
            // A full socket buffer drops datagrams: that is the storm.
            let _ = udp_send(server, &q);
        }
        Ok(n)
    };
    match run() {
        Ok(n) => println!("dns-flood ok {n}"),
        Err(e) => println!("dns-flood refused {}", e.raw_os_error().unwrap_or(-1)),
    }
}

fn dns_loop(n: &str, name: &str, server: &str) {
    let run = || -> io::Result<(u128, u128)> {
        let n: usize = n.parse().map_err(|_| bad("N"))?;
        let mut took = Vec::with_capacity(n);
        for i in 0..n {
            let q = query_bytes(name, i as u16)?;
            let t = std::time::Instant::now();
            let s = udp_send(server, &q)?;
            let (b, _) = udp_recv(&s)?;
            took.push(t.elapsed().as_micros());
            got(&b, String::new())?;
        }
        took.sort_unstable();
        let at = |q: usize| {
            took.get((took.len() * q / 100).min(took.len().saturating_sub(1)))
                .copied()
        };
        Ok((at(50).unwrap_or(0), at(99).unwrap_or(0)))
    };
    match run() {
        Ok((p50, p99)) => println!("dns-loop ok {p50} {p99}"),
        Err(e) => println!("dns-loop refused {}", e.raw_os_error().unwrap_or(-1)),
    }
}

enum Entry {
    Addr(IpAddr, u32),
    Alias(String),
}

fn zone(args: &[String]) -> Vec<(String, Entry)> {
    args.iter()
        .filter_map(|a| {
            let (name, v) = a.split_once('=')?;
            let e = match v.strip_prefix('@') {
                Some(t) => Entry::Alias(t.to_ascii_lowercase()),
                None => {
                    let (ip, ttl) = v.split_once('/').unwrap_or((v, "30"));
                    Entry::Addr(ip.parse().ok()?, ttl.parse().ok()?)
                }
            };
            Some((name.to_ascii_lowercase(), e))
        })
        .collect()
}

fn answer(zone: &[(String, Entry)], q: &[u8]) -> Option<Vec<u8>> {
    let m = Message::from_vec(q).ok()?;
    let query = m.queries.first()?.clone();
    let mut r = Message::response(m.metadata.id, OpCode::Query);
    r.metadata.message_type = MessageType::Response;
    r.metadata.recursion_desired = m.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.add_query(query.clone());
    let mut name = query
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let mut found = false;
    for _ in 0..8 {
        let mut next = None;
        for (n, e) in zone.iter().filter(|(n, _)| *n == name) {
            found = true;
            let owner = Name::from_ascii(format!("{n}.")).ok()?;
            match e {
                Entry::Alias(t) => {
                    let target = Name::from_ascii(format!("{t}.")).ok()?;
                    r.add_answer(Record::from_rdata(owner, 30, RData::CNAME(CNAME(target))));
                    next = Some(t.clone());
                }
                Entry::Addr(IpAddr::V4(a), ttl) if query.query_type() == RecordType::A => {
                    r.add_answer(Record::from_rdata(owner, *ttl, RData::A(A(*a))));
                }
                Entry::Addr(IpAddr::V6(a), ttl) if query.query_type() == RecordType::AAAA => {
                    r.add_answer(Record::from_rdata(owner, *ttl, RData::AAAA(AAAA(*a))));
                }
                Entry::Addr(..) => {}
            }
        }
        match next {
            Some(n) => name = n,
            None => break,
        }
    }
    if !found {
        r.metadata.response_code = ResponseCode::NXDomain;
    }
    r.to_vec().ok()
}

fn serve(args: &[String]) {
    let Some(addr) = args.first().and_then(|a| a.parse::<SocketAddr>().ok()) else {
        eprintln!("dns-serve ADDR:PORT [--listen ADDR:PORT]... ZONE...");
        return;
    };
    let mut rest = &args[1..];
    let mut listens = Vec::new();
    while let [flag, a, tail @ ..] = rest
        && flag == "--listen"
    {
        listens.extend(a.parse::<SocketAddr>().ok());
        rest = tail;
    }
    let zone = std::sync::Arc::new(zone(rest));
    for l in listens {
        match TcpListener::bind(l) {
            Ok(t) => {
                std::thread::spawn(move || {
                    for c in t.incoming() {
                        drop(c);
                    }
                });
            }
            Err(e) => eprintln!("dns-serve: --listen {l}: {e}"),
        }
    }
    let (udp, tcp) = match (UdpSocket::bind(addr), TcpListener::bind(addr)) {
        (Ok(u), Ok(t)) => (u, t),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("dns-serve: {addr}: {e}");
            return;
        }
    };
    let z = zone.clone();
    std::thread::spawn(move || {
        for c in tcp.incoming() {
            let Ok(mut c) = c else { continue };
            let mut l = [0u8; 2];
            if c.read_exact(&mut l).is_err() {
                continue;
            }
            let mut q = vec![0u8; usize::from(u16::from_be_bytes(l))];
            if c.read_exact(&mut q).is_err() {
                continue;
            }
            if let Some(a) = answer(&z, &q) {
                let len = u16::try_from(a.len()).unwrap_or(0).to_be_bytes();
                let _ = c.write_all(&len).and_then(|()| c.write_all(&a));
            }
        }
    });
    println!("dns-serve ok {addr}");
    let _ = io::stdout().flush();
    let mut buf = [0u8; 4096];
    while let Ok((n, from)) = udp.recv_from(&mut buf) {
        if let Some(a) = answer(&zone, buf.get(..n).unwrap_or(&[])) {
            let _ = udp.send_to(&a, from);
        }
    }
}
