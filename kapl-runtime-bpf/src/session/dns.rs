//! The session's resolver (stage: runtime, network by name). When the plan
//! has host-name rules, the cgroup programs steer every DNS query of the
//! session's commands (port 53, UDP and TCP, to any address) here:
//!
//! ```text
//! command ─► kapl_connect4/6, kapl_sendmsg4/6 (port 53: rewritten) ─► Resolver (127.0.0.1:P, [::1]:P6)
//!   name no grant allows ─► REFUSED, a denial record
//!   allowed ─► upstream (resolv.conf's first server, or --resolver) under our own id
//!            ◄─ answer ─► addresses admitted in `learned` (before release) ─► command
//! ```
//!
//! Single-threaded like the rest of the session: [`Session::pump`] calls
//! [`Session::serve_dns`], every socket is non-blocking. Memory is bounded:
//! [`MAX_PENDING`] queries in flight ([`MAX_PENDING_PER_CLIENT`] per
//! client address), [`MAX_TCP`] TCP clients with one message each,
//! [`crate::bpf::LEARNED_MAX`] learned addresses.

use super::Session;
use crate::bpf::{DNS_SOCKETS, DnsConf, LEARNED_MAX, LEARNED_RANGES};
use hickory_proto::op::ResponseCode;
use kapl_image::{PortGrant, Proto};
use kapl_runtime::dns::{self, Question};
use kapl_runtime::record::{Mechanism, Target};
use kapl_runtime::report::{Decision, Notice};
use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime};

/// Queries in flight to the upstream server at most.
pub const MAX_PENDING: usize = 256;
/// Queries in flight from one client address at most.
pub const MAX_PENDING_PER_CLIENT: usize = 32;
/// TCP clients at once at most.
pub const MAX_TCP: usize = 16;
/// How long the upstream server has to answer.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a TCP client may take to send its query.
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// Datagrams read per socket per pump at most (a flood cannot starve the
/// session's other work).
const BURST: usize = 256;
/// Lookups of a query's process per pump at most (each reads /proc): in a
/// storm the rest are attributed to the latest sender by name only.
const WHO_BUDGET: usize = 16;
/// Receive buffer of the resolver's UDP sockets: a storm from inside the
/// session queues here rather than being dropped before it is read.
const RCVBUF: usize = 8 << 20;

/// Who sent a query, as far as the session can tell.
#[derive(Clone, Debug, Default)]
struct Who {
    pid: Option<i32>,
    comm: String,
}

/// A DNS query the programs steered: who, from the BPF event.
#[derive(Clone, Debug)]
struct Sender {
    tgid: i32,
    comm: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    /// The client's address, and which of `Resolver::udp` it sent to (the
    /// answer must come from that socket).
    Udp(SocketAddr, usize),
    Tcp(u64),
}

struct Pending {
    client: Client,
    client_id: u16,
    q: Question,
    step: u32,
    who: Who,
    sent: Instant,
    queried_at: SystemTime,
}

struct TcpClient {
    token: u64,
    stream: TcpStream,
    buf: Vec<u8>,
    since: Instant,
    who: Who,
}

/// An address admitted for a name.
#[derive(Clone, Debug)]
pub struct Learned {
    /// The name asked (the grant allowed it).
    pub name: String,
    /// When it was asked.
    pub at: SystemTime,
    /// When the admission ends.
    pub until: Instant,
    /// The step it holds in.
    pub step: u32,
    /// Ports and grants.
    pub ranges: Vec<PortGrant>,
}

/// The resolver's sockets and state.
pub struct Resolver {
    /// UDP sockets, IPv4 then IPv6 ([`DNS_SOCKETS`] each, or none for
    /// IPv6): the programs pick one by the sender's cgroup.
    udp: Vec<(bool, UdpSocket)>,
    tcp4: TcpListener,
    tcp6: Option<TcpListener>,
    up: UdpSocket,
    upstream: SocketAddr,
    conf: DnsConf,
    next_id: u16,
    pending: HashMap<u16, Pending>,
    tcp: Vec<TcpClient>,
    next_token: u64,
    senders: VecDeque<Sender>,
    /// (TCP?, client port) → who, for a moment: a storm of queries from
    /// one socket reads /proc once.
    who_cache: HashMap<(bool, u16), (Who, Instant)>,
    /// Lookups left in this pump.
    who_budget: usize,
    /// (protocol number, address) → admission.
    pub learned: HashMap<(u8, Ipv6Addr), Learned>,
    /// Queries refused, answered, failed (status).
    pub counts: [u64; 3],
}

/// The first `nameserver` of resolv.conf text.
pub fn upstream_of(resolv_conf: &str) -> Option<SocketAddr> {
    resolv_conf.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver"))
            .then(|| w.next())
            .flatten()
            .and_then(|a| a.split('%').next()?.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// A UDP socket and a TCP listener on the same port of `ip`.
fn pair(ip: IpAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..32 {
        let u = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let port = u.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(ip, port)) {
            Ok(t) => {
                u.set_nonblocking(true)?;
                t.set_nonblocking(true)?;
                return Ok((u, t));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
}

impl Resolver {
    /// Opens the resolver's sockets on loopback and its upstream socket.
    pub fn open(upstream: SocketAddr) -> std::io::Result<Resolver> {
        let (udp4, tcp4) = pair(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        let mut udp = vec![(false, udp4)];
        let mut udp4_ports = [0u16; DNS_SOCKETS];
        // IPv6 loopback may be switched off: IPv6 queries then fail.
        let tcp6 = match pair(IpAddr::V6(Ipv6Addr::LOCALHOST)) {
            Ok((u, t)) => {
                udp.push((true, u));
                Some(t)
            }
            Err(_) => None,
        };
        let mut udp6_ports = [0u16; DNS_SOCKETS];
        for v6 in [false, true] {
            if v6 && tcp6.is_none() {
                continue;
            }
            let ip: IpAddr = if v6 {
                Ipv6Addr::LOCALHOST.into()
            } else {
                Ipv4Addr::LOCALHOST.into()
            };
            for _ in 1..DNS_SOCKETS {
                let u = UdpSocket::bind(SocketAddr::new(ip, 0))?;
                u.set_nonblocking(true)?;
                udp.push((v6, u));
            }
        }
        for v6 in [false, true] {
            let ports = if v6 { &mut udp6_ports } else { &mut udp4_ports };
            for (slot, (_, u)) in udp.iter().filter(|(f, _)| *f == v6).enumerate() {
                // Best effort: without CAP_NET_ADMIN the default buffer stays.
                let _ = crate::sys::set_recv_buffer_force(u, RCVBUF);
                if let Some(p) = ports.get_mut(slot) {
                    *p = u.local_addr()?.port();
                }
            }
        }
        let any: IpAddr = match upstream {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let up = UdpSocket::bind(SocketAddr::new(any, 0))?;
        up.connect(upstream)?;
        up.set_nonblocking(true)?;
        let conf = DnsConf {
            on: false,
            ip4: Ipv4Addr::LOCALHOST,
            port4: tcp4.local_addr()?.port(),
            ip6: Ipv6Addr::LOCALHOST,
            port6: tcp6
                .as_ref()
                .and_then(|t| t.local_addr().ok())
                .map_or(0, |a| a.port()),
            udp4: udp4_ports,
            udp6: udp6_ports,
        };
        Ok(Resolver {
            udp,
            tcp4,
            tcp6,
            up,
            upstream,
            conf,
            next_id: 1,
            pending: HashMap::new(),
            tcp: Vec::new(),
            next_token: 0,
            senders: VecDeque::new(),
            who_cache: HashMap::new(),
            who_budget: WHO_BUDGET,
            learned: HashMap::new(),
            counts: [0; 3],
        })
    }

    /// Where it listens, with `on`.
    pub fn conf(&self, on: bool) -> DnsConf {
        DnsConf { on, ..self.conf }
    }

    /// The upstream server.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Fds to poll.
    pub fn fds(&self) -> Vec<RawFd> {
        let mut v = vec![self.tcp4.as_raw_fd(), self.up.as_raw_fd()];
        v.extend(self.udp.iter().map(|(_, u)| u.as_raw_fd()));
        v.extend(self.tcp6.as_ref().map(AsRawFd::as_raw_fd));
        v.extend(self.tcp.iter().map(|c| c.stream.as_raw_fd()));
        v
    }

    /// Notes who a steered query came from (a DNS event).
    pub fn sender(&mut self, tgid: u32, comm: String) {
        let Ok(tgid) = i32::try_from(tgid) else {
            return;
        };
        self.senders.retain(|s| s.tgid != tgid);
        self.senders.push_back(Sender { tgid, comm });
        while self.senders.len() > 64 {
            self.senders.pop_front();
        }
    }

    /// The process that owns the socket with local `port` (a client of
    /// ours, over `tcp` or UDP), among those whose queries the programs
    /// steered lately: its socket's inode from /proc/net, then its fds.
    fn who(&mut self, port: u16, tcp: bool) -> Who {
        let now = Instant::now();
        if let Some((w, at)) = self.who_cache.get(&(tcp, port))
            && now.duration_since(*at) < Duration::from_secs(1)
        {
            return w.clone();
        }
        if self.who_cache.len() >= 256 {
            self.who_cache
                .retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(1));
        }
        if self.who_cache.len() >= 256 {
            self.who_cache.clear();
        }
        if self.who_budget == 0 {
            return Who {
                pid: None,
                comm: self
                    .senders
                    .back()
                    .map_or_else(|| "?".into(), |s| s.comm.clone()),
            };
        }
        self.who_budget -= 1;
        let w = self.find_who(port, tcp);
        // Not found is not kept: the next query may find it.
        if w.pid.is_some() {
            self.who_cache.insert((tcp, port), (w.clone(), now));
        }
        w
    }

    fn find_who(&self, port: u16, tcp: bool) -> Who {
        let tables: &[&str] = if tcp {
            &["/proc/net/tcp", "/proc/net/tcp6"]
        } else {
            &["/proc/net/udp", "/proc/net/udp6"]
        };
        let inode = tables.iter().find_map(|t| {
            let text = std::fs::read_to_string(t).ok()?;
            socket_inode(&text, port, tcp.then_some(self.conf.port4))
        });
        let link = inode.map(|i| format!("socket:[{i}]"));
        for s in self.senders.iter().rev() {
            let owns = link.as_ref().is_some_and(|l| {
                std::fs::read_dir(format!("/proc/{}/fd", s.tgid)).is_ok_and(|d| {
                    d.flatten().any(|e| {
                        std::fs::read_link(e.path())
                            .is_ok_and(|t| t.as_os_str().as_encoded_bytes() == l.as_bytes())
                    })
                })
            });
            if owns {
                return Who {
                    pid: Some(s.tgid),
                    comm: s.comm.clone(),
                };
            }
        }
        // Not found (the process ended, or many sent at once): the latest
        // sender's name, without a pid.
        Who {
            pid: None,
            comm: self
                .senders
                .back()
                .map_or_else(|| "?".into(), |s| s.comm.clone()),
        }
    }
}

/// The inode of the socket bound to local `port` (and, for TCP, connected
/// to `remote_port`) in a /proc/net/{udp,tcp}[6] table.
fn socket_inode(table: &str, port: u16, remote_port: Option<u16>) -> Option<u64> {
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let lport = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
        let rport = u16::from_str_radix(f.get(2)?.rsplit(':').next()?, 16).ok()?;
        (lport == port && remote_port.is_none_or(|r| r == rport))
            .then(|| f.get(9)?.parse().ok())
            .flatten()
    })
}

/// What serving one query decided.
enum Outcome {
    /// Send these bytes back now.
    Reply(Vec<u8>),
    /// Forwarded; the answer comes later.
    Forwarded,
    /// Nothing to send (not a message at all).
    Drop,
}

impl Session {
    /// The resolver's fds (empty without one).
    pub(super) fn dns_fds(&self) -> Vec<RawFd> {
        self.dns.as_ref().map(Resolver::fds).unwrap_or_default()
    }

    /// Arms the resolver for the current plan and step: port 53 is steered
    /// while the plan has host-name rules; addresses learned before are
    /// withdrawn (a step switch or a new plan starts with none).
    pub(super) fn dns_arm(&mut self) -> Result<(), crate::error::RunError> {
        let on = !self.image.plans[self.plan as usize].names.is_empty();
        let (Some(r), Some(k)) = (self.dns.as_mut(), self.kern.as_mut()) else {
            return Ok(());
        };
        for ((proto, addr), l) in r.learned.drain() {
            // The step's cgroup is gone or emptied: a failure to delete is
            // harmless, the key names a step no process acts for.
            let _ = k.bpf.forget(l.step, proto, addr);
        }
        r.pending.clear();
        k.bpf.set_dns(&r.conf(on))?;
        Ok(())
    }

    /// Serves what the resolver's sockets hold: queries from commands,
    /// answers from upstream, and withdraws expired addresses.
    pub(super) fn serve_dns(&mut self, out: &mut Vec<Notice>) {
        if self.dns.is_none() {
            return;
        }
        self.expire_learned();
        if let Some(r) = self.dns.as_mut() {
            r.who_budget = WHO_BUDGET;
        }
        // Queries over UDP (both families), read first: the programs
        // reported who sent them before they were sent, so the events
        // drained after this read name every sender.
        // Each socket in turn, a burst at most from each: a storm in one
        // command's socket leaves the others' queries their turn.
        let mut queries = Vec::new();
        let Some(r) = self.dns.as_ref() else { return };
        for (i, (_, sock)) in r.udp.iter().enumerate() {
            for _ in 0..BURST {
                let mut buf = [0u8; dns::MAX_UDP];
                let (n, from) = match sock.recv_from(&mut buf) {
                    Ok(x) => x,
                    Err(_) => break,
                };
                queries.push((buf.get(..n).unwrap_or(&[]).to_vec(), Client::Udp(from, i)));
            }
        }
        if !queries.is_empty() {
            self.drain_events(out);
        }
        for (bytes, client) in queries {
            let Some(r) = self.dns.as_mut() else { return };
            let Client::Udp(from, _) = client else {
                continue;
            };
            let who = r.who(from.port(), false);
            if let Outcome::Reply(reply) = self.on_query(&bytes, client, who, out) {
                self.send_to_client(client, &reply);
            }
        }
        self.serve_tcp(out);
        // Answers from upstream.
        for _ in 0..BURST {
            let mut buf = [0u8; 65535];
            let Some(r) = self.dns.as_ref() else { return };
            let n = match r.up.recv(&mut buf) {
                Ok(n) => n,
                Err(_) => break,
            };
            let bytes = buf.get(..n).unwrap_or(&[]).to_vec();
            self.on_answer(&bytes, out);
        }
        // Queries upstream did not answer in time.
        let now = Instant::now();
        let late: Vec<u16> = self.dns.as_ref().map_or_else(Vec::new, |r| {
            r.pending
                .iter()
                .filter(|(_, p)| now.duration_since(p.sent) > UPSTREAM_TIMEOUT)
                .map(|(id, _)| *id)
                .collect()
        });
        for id in late {
            let Some(p) = self.dns.as_mut().and_then(|r| r.pending.remove(&id)) else {
                continue;
            };
            if let Some(r) = self.dns.as_mut() {
                r.counts[2] += 1;
            }
            let q = plain_query(&p.q, p.client_id);
            if let Some(reply) = dns::reply(&q, ResponseCode::ServFail) {
                self.send_to_client(p.client, &reply);
            }
        }
    }

    /// Accepts TCP clients and serves their queries (one message each:
    /// the resolver answers and closes, which resolvers accept).
    fn serve_tcp(&mut self, out: &mut Vec<Notice>) {
        let Some(r) = self.dns.as_mut() else { return };
        let mut accepted = Vec::new();
        for l in [Some(&r.tcp4), r.tcp6.as_ref()].into_iter().flatten() {
            while let Ok(c) = l.accept() {
                accepted.push(c);
            }
        }
        if !accepted.is_empty() {
            // Who connected: the programs reported it before the connect.
            self.drain_events(out);
        }
        let Some(r) = self.dns.as_mut() else { return };
        for (s, from) in accepted {
            {
                if r.tcp.len() >= MAX_TCP || s.set_nonblocking(true).is_err() {
                    continue; // dropped: closed at once
                }
                let who = r.who(from.port(), true);
                r.next_token += 1;
                r.tcp.push(TcpClient {
                    token: r.next_token,
                    stream: s,
                    buf: Vec::new(),
                    since: Instant::now(),
                    who,
                });
            }
        }
        let mut ready = Vec::new();
        let now = Instant::now();
        r.tcp.retain_mut(|c| {
            let mut chunk = [0u8; 4096];
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => return false,
                    Ok(n) => {
                        c.buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                        if c.buf.len() > 2 + 65535 {
                            return false;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => return false,
                }
            }
            if let [a, b, rest @ ..] = c.buf.as_slice() {
                let len = usize::from(u16::from_be_bytes([*a, *b]));
                if rest.len() >= len {
                    ready.push((
                        c.token,
                        rest.get(..len).unwrap_or(&[]).to_vec(),
                        c.who.clone(),
                    ));
                    c.buf.clear();
                }
            }
            now.duration_since(c.since) < TCP_IDLE
        });
        for (token, bytes, who) in ready {
            match self.on_query(&bytes, Client::Tcp(token), who, out) {
                Outcome::Reply(reply) => self.send_to_client(Client::Tcp(token), &reply),
                Outcome::Drop => self.close_tcp(token),
                Outcome::Forwarded => {}
            }
        }
    }

    fn close_tcp(&mut self, token: u64) {
        if let Some(r) = self.dns.as_mut() {
            r.tcp.retain(|c| c.token != token);
        }
    }

    fn send_to_client(&mut self, client: Client, bytes: &[u8]) {
        let Some(r) = self.dns.as_mut() else { return };
        match client {
            Client::Udp(to, i) => {
                if let Some((_, s)) = r.udp.get(i) {
                    let _ = s.send_to(bytes, to);
                }
            }
            Client::Tcp(token) => {
                if let Some(c) = r.tcp.iter_mut().find(|c| c.token == token) {
                    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
                    let _ = c.stream.set_nonblocking(false);
                    let _ = c.stream.set_write_timeout(Some(Duration::from_millis(200)));
                    let _ = c.stream.write_all(&len.to_be_bytes());
                    let _ = c
                        .stream
                        .write_all(bytes.get(..usize::from(len)).unwrap_or(bytes));
                }
                self.close_tcp(token);
            }
        }
    }

    /// One query from a command.
    fn on_query(
        &mut self,
        bytes: &[u8],
        client: Client,
        who: Who,
        out: &mut Vec<Notice>,
    ) -> Outcome {
        let q = match dns::parse_query(bytes) {
            Ok(q) => q,
            Err(dns::DnsError::Malformed(_)) => {
                return dns::reply(bytes, ResponseCode::FormErr)
                    .map_or(Outcome::Drop, Outcome::Reply);
            }
            Err(_) => {
                return dns::reply(bytes, ResponseCode::Refused)
                    .map_or(Outcome::Drop, Outcome::Reply);
            }
        };
        let plan = &self.image.plans[self.plan as usize];
        let grant = dns::query_grant(plan, self.step, &q.name);
        let operation = format!("resolve {}", q.qtype_name());
        self.emit_dns(out, &who, operation.clone(), &q.name, None, grant, None);
        let Some(_) = grant else {
            if let Some(r) = self.dns.as_mut() {
                r.counts[0] += 1;
            }
            return dns::reply(bytes, ResponseCode::Refused).map_or(Outcome::Drop, Outcome::Reply);
        };
        let Some(r) = self.dns.as_mut() else {
            return Outcome::Drop;
        };
        let from_client = r.pending.values().filter(|p| p.client == client).count();
        if r.pending.len() >= MAX_PENDING || from_client >= MAX_PENDING_PER_CLIENT {
            r.counts[2] += 1;
            return dns::reply(bytes, ResponseCode::ServFail).map_or(Outcome::Drop, Outcome::Reply);
        }
        // Our own id, unused among those in flight.
        let mut id = r.next_id;
        while r.pending.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        r.next_id = id.wrapping_add(1);
        let client_id = q.id;
        let mut fwd_q = q.clone();
        fwd_q.id = id;
        if r.up.send(&dns::with_id(bytes, id)).is_err() {
            r.counts[2] += 1;
            return dns::reply(bytes, ResponseCode::ServFail).map_or(Outcome::Drop, Outcome::Reply);
        }
        r.pending.insert(
            id,
            Pending {
                client,
                client_id,
                q: fwd_q,
                step: self.step,
                who,
                sent: Instant::now(),
                queried_at: SystemTime::now(),
            },
        );
        Outcome::Forwarded
    }

    /// One answer from upstream: admits its addresses, then releases it.
    fn on_answer(&mut self, bytes: &[u8], out: &mut Vec<Notice>) {
        let Some(id) = bytes.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            return;
        };
        let Some(r) = self.dns.as_mut() else { return };
        let Some(p) = r.pending.get(&id) else {
            return; // late, or not ours
        };
        let answer = match dns::parse_answer(bytes, &p.q) {
            Ok(a) => a,
            Err(_) => return, // a spoofed or broken answer: keep waiting
        };
        let Some(p) = r.pending.remove(&id) else {
            return;
        };
        r.counts[1] += 1;
        if p.step == self.step {
            self.admit_answer(&p, &answer, out);
        }
        self.send_to_client(p.client, &dns::with_id(bytes, p.client_id));
    }

    /// Puts the answer's admitted addresses in the kernel's `learned` map,
    /// and reports those refused.
    fn admit_answer(&mut self, p: &Pending, a: &dns::Answer, out: &mut Vec<Notice>) {
        let plan_idx = self.plan as usize;
        for (addr, ttl) in &a.addrs {
            let mapped = match addr {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => *v6,
            };
            let mut refused = None;
            for (proto, num) in [(Proto::Tcp, 6u8), (Proto::Udp, 17u8)] {
                let plan = &self.image.plans[plan_idx];
                let ranges = match dns::admit(plan, self.step, proto, &a.chain, *addr) {
                    Ok(r) => r,
                    Err(why) => {
                        refused = Some(why.to_string());
                        continue;
                    }
                };
                if ranges.is_empty() {
                    continue;
                }
                let Some(r) = self.dns.as_mut() else { return };
                let merged = match r.learned.get(&(num, mapped)) {
                    Some(l) if l.step == self.step => kapl_image::merge_ports(&l.ranges, &ranges),
                    _ => ranges,
                };
                let merged: Vec<PortGrant> = merged.into_iter().take(LEARNED_RANGES).collect();
                if !r.learned.contains_key(&(num, mapped)) && r.learned.len() >= LEARNED_MAX {
                    refused = Some(format!(
                        "the session's table of learned addresses is full ({LEARNED_MAX})"
                    ));
                    continue;
                }
                let Some(k) = self.kern.as_mut() else { return };
                if let Err(e) = k.bpf.learn(self.step, num, mapped, &merged) {
                    refused = Some(format!("cannot admit it in the kernel: {e}"));
                    continue;
                }
                let until = Instant::now() + dns::admitted_for(*ttl);
                // An address already admitted keeps the name it was first
                // learned for (a connect reported later is credited to the
                // name that admitted it first, whatever was asked since).
                let (name, at, until) = match r.learned.get(&(num, mapped)) {
                    Some(l) if l.step == self.step => (l.name.clone(), l.at, l.until.max(until)),
                    _ => (p.q.name.clone(), p.queried_at, until),
                };
                r.learned.insert(
                    (num, mapped),
                    Learned {
                        name,
                        at,
                        until,
                        step: self.step,
                        ranges: merged,
                    },
                );
            }
            if let Some(why) = refused {
                let operation = "admit (dns answer)".to_string();
                let name = p.q.name.clone();
                self.emit_dns(out, &p.who, operation, &name, Some(*addr), None, Some(why));
            }
        }
    }

    /// Withdraws addresses whose time is up.
    fn expire_learned(&mut self) {
        let now = Instant::now();
        let (Some(r), Some(k)) = (self.dns.as_mut(), self.kern.as_mut()) else {
            return;
        };
        r.learned.retain(|(proto, addr), l| {
            if l.until > now {
                return true;
            }
            let _ = k.bpf.forget(l.step, *proto, *addr);
            false
        });
    }

    /// The name an allowed connect's address was learned from, with the
    /// query's time.
    pub(super) fn learned_name(&self, proto: u8, addr: Ipv6Addr) -> Option<(String, SystemTime)> {
        let l = self.dns.as_ref()?.learned.get(&(proto, addr))?;
        (l.step == self.step).then(|| (l.name.clone(), l.at))
    }

    /// Reports a resolver decision.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call shape for queries and answers"
    )]
    fn emit_dns(
        &mut self,
        out: &mut Vec<Notice>,
        who: &Who,
        operation: String,
        name: &str,
        address: Option<IpAddr>,
        grant: Option<u32>,
        why: Option<String>,
    ) {
        let cmd = who.pid.and_then(|p| self.cmd_of_pid(p));
        self.emit(
            out,
            Decision {
                cmd,
                step: self.step,
                pid: who.pid,
                comm: who.comm.clone(),
                exe: None,
                operation,
                target: Target::Host {
                    name: name.to_string(),
                    address,
                },
                grant,
                nearest: kapl_runtime::attribution::Nearest::None,
                mechanism: Mechanism::Resolver,
                audit_serial: None,
                narrowed: None,
                why,
            },
        );
    }
}

/// A minimal query for `q` under `id` (to build a reply when the original
/// bytes are gone).
fn plain_query(q: &Question, id: u16) -> Vec<u8> {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::Name;
    let mut m = Message::query();
    m.metadata.id = id;
    if let Ok(n) = Name::from_ascii(&q.name) {
        m.add_query(Query::query(n, q.qtype));
    }
    m.to_vec().unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn upstream_is_the_first_nameserver() {
        let t = "# generated\nsearch example\nnameserver 10.0.0.2\nnameserver 8.8.8.8\n";
        assert_eq!(upstream_of(t), Some("10.0.0.2:53".parse().unwrap()));
        assert_eq!(
            upstream_of("nameserver fe80::1%eth0\n"),
            Some("[fe80::1]:53".parse().unwrap())
        );
        assert_eq!(upstream_of("options ndots:1\n"), None);
    }

    #[test]
    fn sockets_are_found_by_port() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                 12: 0100007F:D431 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 424242 2 0\n";
        assert_eq!(socket_inode(t, 0xd431, None), Some(424242));
        assert_eq!(socket_inode(t, 0xd431, Some(0x9c40)), Some(424242));
        assert_eq!(socket_inode(t, 0xd431, Some(53)), None);
        assert_eq!(socket_inode(t, 1, None), None);
    }
}
