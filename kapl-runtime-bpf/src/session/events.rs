//! The event pump: what the kernel reports about its decisions, attributed
//! to the command, step and grant behind each (stage: runtime, decision
//! reporting).
//!
//! Input: the BPF programs' ring buffer (network, exec and pathname UNIX
//! socket events, each carrying the step and, when allowed, the grant the
//! program matched) and the audit log (Landlock denials, seccomp refusals,
//! Landlock domain records that name the pid that created each domain),
//! and the supervised layer's calls ([`super::supervised`]).
//! Output: [`Decision`]s, reported through [`super::sink`].

use super::Session;
use crate::bpf::{Event, EventHead, EventOp, ExecEvent, NO_GRANT, NO_STEP, NetEvent, OptEvent};
use crate::domain::access;
use crate::unix::{Reason, UnixEvent};
use kapl_image::{DfaKind, FsRight, NetOp};
use kapl_runtime::attribution::{self, Nearest};
use kapl_runtime::auditlog::{Denial, Record, SeccompRecord, escape_bytes, unescape_bytes};
use kapl_runtime::automaton::right_of_access;
use kapl_runtime::narrowing::explain;
use kapl_runtime::precision;
use kapl_runtime::record::{AuditRecord, Mechanism, Protocol, Target};
use kapl_runtime::report::{Decision, Notice};
use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// A covering grant and why enforcement is narrower than it.
type Narrowed = Option<(u32, String)>;

/// Entries of the nearest-grant cache before it is emptied.
const NEAREST_CACHE: usize = 4096;

/// (step, right bit, path) → nearest grant, for denial storms: the search
/// walks the automaton and dominated a storm's cost.
#[derive(Default)]
pub struct NearestCache(HashMap<(u32, u64, Vec<u8>), Nearest>);

impl Session {
    /// Fds to poll for decisions (and the watchdog's pidfd: see
    /// [`Session::pump`]).
    pub fn event_fds(&self) -> Vec<RawFd> {
        let mut v = match &self.kern {
            Some(k) => {
                let mut v = vec![k.bpf.events_fd(), k.audit.fd()];
                v.extend(k.watchdog.as_ref().map(crate::cgroup::Watchdog::fd));
                v
            }
            None => Vec::new(),
        };
        v.extend(self.dns_fds());
        // The supervised layer's listeners (see [`super::supervised`]).
        v.extend(
            self.supervised
                .listeners
                .iter()
                .map(super::supervised::Listener::raw_fd),
        );
        v
    }

    /// Reads pending decisions, writes them to the audit file, and returns
    /// the lines to show.
    pub fn pump(&mut self, flush: bool) -> Vec<Notice> {
        self.rearm_watchdog();
        let mut out = std::mem::take(&mut self.late_notices);
        // First: commands wait on these.
        self.serve_supervised(&mut out);
        let Some(k) = self.kern.as_mut() else {
            return out;
        };
        let mut recs = std::mem::take(&mut self.pending_records);
        recs.extend(k.audit.poll(flush).unwrap_or_default());
        self.drain_events(&mut out);
        for r in recs {
            match r {
                Record::Domain(d) => {
                    if let Some(pid) = d.pid {
                        self.cmds.claim_domain(pid, &d.domain);
                    }
                }
                Record::Denial(d) => self.on_denial(&d, &mut out),
                Record::Seccomp(r) => self.on_seccomp(&r, &mut out),
            }
        }
        // After the DNS events: they say who sent the queries.
        self.serve_dns(&mut out);
        out
    }

    /// Reads and reports what the BPF programs queued.
    pub(super) fn drain_events(&mut self, out: &mut Vec<Notice>) {
        let Some(k) = self.kern.as_mut() else {
            return;
        };
        let mut evs = Vec::new();
        k.bpf.drain(&mut evs);
        for e in evs {
            match e {
                Event::Net(n) => self.on_net(&n, out),
                Event::Exec(x) => self.on_exec(&x, out),
                Event::Unix(u) => self.on_unix(&u, out),
                Event::Option(o) => self.on_option(&o, out),
                Event::Dns(d) => {
                    if let Some(r) = self.dns.as_mut() {
                        r.sender(d.head.tgid, d.comm);
                    }
                }
            }
        }
    }

    /// Like [`Session::pump`] with flush, after making sure every audit
    /// record the kernel queued so far has arrived (a barrier, not a sleep).
    pub fn sync(&mut self) -> Vec<Notice> {
        let Some(k) = self.kern.as_mut() else {
            return Vec::new();
        };
        let recs = k
            .audit
            .barrier(Duration::from_millis(500))
            .unwrap_or_default();
        self.pending_records.extend(recs);
        self.pump(true)
    }

    /// The command (by its cgroup) and the step a BPF event comes from;
    /// the current step when the program did not know the cgroup.
    fn origin(&self, h: &EventHead) -> (Option<u64>, u32) {
        let cmd = self.cmds.by_cgroup.get(&h.cgroup).copied();
        let step = if h.step == NO_STEP { self.step } else { h.step };
        (cmd, step)
    }

    /// The program `tgid` runs: from `/proc`, else (the process is gone)
    /// the last exec seen for it.
    fn exe_of(&self, tgid: u32) -> Option<String> {
        std::fs::read_link(format!("/proc/{tgid}/exe"))
            .ok()
            .map(|p| p.display().to_string())
            .or_else(|| self.cmds.exe_seen.get(&tgid).map(|(_, e)| e.clone()))
    }

    /// The command a process of this session belongs to: a command's own
    /// pid, a pid seen executing in the session, else the `cmd-K` cgroup
    /// the process is in (read while it still exists).
    pub(super) fn cmd_of_pid(&self, pid: i32) -> Option<u64> {
        if let Some(id) = self.cmds.by_pid(pid) {
            return Some(id);
        }
        let k = self.kern.as_ref()?;
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let rel = kapl_runtime::proc_cgroup::unified_path(&text)?;
        let root = k.session_cg.path().parent()?;
        let path = root.join(rel.trim_start_matches('/'));
        if !path.starts_with(k.session_cg.path()) {
            return None;
        }
        let ino = std::fs::metadata(&path).ok()?.ino();
        self.cmds.by_cgroup.get(&ino).copied()
    }

    /// [`attribution::nearest_fs`], remembered (bounded): a storm of one
    /// denial searches once.
    fn nearest_fs_cached(&mut self, step: u32, path: &[u8], bit: u64) -> Nearest {
        let key = (step, bit, path.to_vec());
        if let Some(n) = self.nearest.0.get(&key) {
            return n.clone();
        }
        let n = attribution::nearest_fs(self.plan(), step, path, bit);
        if self.nearest.0.len() >= NEAREST_CACHE {
            self.nearest.0.clear();
        }
        self.nearest.0.insert(key, n.clone());
        n
    }

    /// A grant of `step` that covers `path` for `bit` although the kernel
    /// refused it, and why (the rule builder's narrowings of that grant,
    /// when the denial is in the current step).
    fn narrowed(&self, step: u32, path: &[u8], bit: u64) -> Narrowed {
        let g = attribution::fs_grant(self.plan(), step, path, bit)?;
        // The findings are the current step's (one entry per grant).
        let found = (step == self.step)
            .then(|| self.domain.findings.notes.iter().find(|(x, _)| *x == g))
            .flatten()
            .map_or(&[][..], |(_, ns)| ns.as_slice());
        let p = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
        let why = explain(found, p).unwrap_or_else(|| {
            if bit == access::READ_DIR {
                // Landlock grants listing per subtree: a rule that lets
                // this directory be listed lets every directory below it
                // be listed too, and the grant does not cover all of them.
                format!(
                    "Landlock can only let {} be listed together with every directory below it, and the grant does not cover everything below it (an `except`, or a pattern that names only some entries), so it got rules per entry instead",
                    p.display()
                )
            } else {
                "the rule builder narrowed it (the precision report at the step's start says where)"
                    .to_string()
            }
        });
        Some((g, why))
    }

    fn on_seccomp(&mut self, r: &SeccompRecord, out: &mut Vec<Notice>) {
        let Some(cmd) = self.cmd_of_pid(r.pid) else {
            return; // another program's seccomp log
        };
        let step = self.cmds.step_of(cmd).unwrap_or(self.step);
        let name = crate::seccomp::call_name(r.syscall)
            .map_or_else(|| format!("syscall {}", r.syscall), str::to_string);
        self.emit(
            out,
            Decision {
                cmd: Some(cmd),
                step,
                pid: Some(r.pid),
                comm: r.comm.clone(),
                exe: r.exe.clone(),
                operation: "syscall (seccomp)".into(),
                target: Target::Syscall { name },
                grant: None,
                nearest: None,
                mechanism: Mechanism::Seccomp,
                audit_serial: Some(r.serial),
                narrowed: None,
                why: None,
            },
        );
    }

    fn on_denial(&mut self, d: &Denial, out: &mut Vec<Notice>) {
        let Some(&cmd) = self.cmds.by_domain.get(&d.domain) else {
            return; // another program's Landlock domain
        };
        let step = self.cmds.step_of(cmd).unwrap_or(self.step);
        for b in &d.blockers {
            let (operation, target, nearest, mut narrowed) = self.denied(d, b, step);
            // A process's own /proc entries: granted as /proc/self/..., which
            // Landlock cannot express (see `own_proc_entry`).
            // A device ioctl on a file a grant lets the command write (isatty
            // on /dev/null): KAPL never grants device ioctls, and programs
            // take the refusal as "not a terminal".
            // A standard-library grant that Landlock had to narrow (pip
            // lists /etc, which Landlock can only allow with every
            // directory beneath it): the step's precision report counted
            // the narrowing, and the program carries on without it.
            let mut quiet = narrowed
                .as_ref()
                .is_some_and(|(g, _)| b == "fs.ioctl_dev" || precision::is_lib(&self.image, *g));
            if narrowed.is_none()
                && let Some(alias) = own_proc_entry(&target, d.pid)
                && let Some(bit) = b.strip_prefix("fs.").and_then(access::from_name)
                && let Some(g) = attribution::fs_grant(self.plan(), step, &alias, bit)
            {
                narrowed = Some((
                    g,
                    format!(
                        "Landlock cannot give a process its own /proc entries: the rule for {} is made when the step starts, and names the supervisor's; the process is denied this read (programs carry on without it), and it is recorded but not printed",
                        String::from_utf8_lossy(&alias)
                    ),
                ));
                quiet = true;
            }
            self.emit_as(
                out,
                Decision {
                    cmd: Some(cmd),
                    step,
                    pid: d.pid,
                    comm: d.comm.clone().unwrap_or_else(|| "?".into()),
                    exe: d.exe.clone(),
                    operation,
                    target,
                    grant: None,
                    nearest,
                    mechanism: Mechanism::Landlock,
                    audit_serial: Some(d.serial),
                    narrowed,
                    why: scope_why(b),
                },
                quiet,
            );
        }
    }

    /// What one blocker of a Landlock denial refused, the nearest grant,
    /// and, when a grant of the step covers it, that grant and why
    /// enforcement is narrower there.
    fn denied(
        &mut self,
        d: &Denial,
        blocker: &str,
        step: u32,
    ) -> (String, Target, Nearest, Narrowed) {
        let get = |k: &str| d.get(k).map(str::to_string);
        if let Some(r) = blocker.strip_prefix("fs.") {
            let target = Target::Path {
                path: get("path"),
                dev: get("dev"),
                ino: get("ino").and_then(|i| i.parse().ok()),
            };
            let bit = access::from_name(r).unwrap_or(0);
            let op = match right_of_access(bit) {
                Some((DfaKind::Exec, _)) => "exec",
                Some((DfaKind::Fs, c)) => FsRight::ALL.get(c).map_or("fs", |r| r.as_str()),
                None => r,
            };
            let shown = target.to_string();
            let bytes = unescape_bytes(&shown);
            let narrowed = self.narrowed(step, &bytes, bit);
            let near = self.nearest_fs_cached(step, &bytes, bit);
            return (format!("{op} ({r})"), target, near, narrowed);
        }
        if let Some(r) = blocker.strip_prefix("net.") {
            let bind = r.starts_with("bind");
            let (a, p) = if bind {
                ("saddr", "src")
            } else {
                ("daddr", "dest")
            };
            let port: u16 = get(p).and_then(|v| v.parse().ok()).unwrap_or(0);
            let address: Option<IpAddr> = get(a)
                .and_then(|v| v.parse().ok())
                .map(kapl_image::bpf::normalize);
            let op = if bind { NetOp::Bind } else { NetOp::Connect };
            let near =
                address.and_then(|a| attribution::nearest_net(self.plan(), step, op, a, port));
            let target = Target::Endpoint {
                address,
                port,
                protocol: Protocol::Tcp,
            };
            return (op.as_str().to_string(), target, near, None);
        }
        // Landlock's scopes (ptrace, signals, abstract sockets) name the
        // other process, or the socket's path.
        let process = || {
            let pid = get("opid")?.parse().ok()?;
            Some(Target::Process {
                pid,
                comm: get("ocomm").unwrap_or_default(),
            })
        };
        let other = || Target::Other {
            text: String::new(),
        };
        if blocker == "ptrace" {
            return (
                "ptrace (scope)".into(),
                process().unwrap_or_else(other),
                None,
                None,
            );
        }
        if let Some(r) = blocker.strip_prefix("scope.") {
            // An abstract socket's name starts with a NUL: shown as `@`,
            // as `ss` does, with any other NUL written `\x00`.
            let target = process()
                .or_else(|| {
                    get("path").map(|p| match p.strip_prefix('\0') {
                        Some(name) => Target::UnixSocket {
                            path: format!("@{}", name.replace('\0', "\\x00")),
                        },
                        None => Target::Path {
                            path: Some(p),
                            dev: None,
                            ino: None,
                        },
                    })
                })
                .unwrap_or_else(other);
            return (format!("{r} (scope)"), target, None, None);
        }
        (blocker.to_string(), other(), None, None)
    }

    fn on_net(&mut self, n: &NetEvent, out: &mut Vec<Notice>) {
        let (cmd, step) = self.origin(&n.head);
        let addr: IpAddr = match n.addr.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(n.addr),
        };
        let protocol = match (n.sotype, n.proto) {
            (_, 6) | (1, 0) => Protocol::Tcp,
            (_, 17) | (2, 0) => Protocol::Udp,
            _ => Protocol::Other,
        };
        let (target, nearest) = if n.op == EventOp::Socket {
            let t = Target::Socket {
                family: n.family,
                sotype: n.sotype,
                protocol: n.proto,
            };
            (t, None)
        } else {
            let op = if n.op == EventOp::Bind {
                NetOp::Bind
            } else {
                NetOp::Connect
            };
            let near = if n.allowed {
                None
            } else {
                attribution::nearest_net(self.plan(), step, op, addr, n.port)
            };
            let t = Target::Endpoint {
                address: Some(addr),
                port: n.port,
                protocol,
            };
            (t, near)
        };
        let d = Decision {
            cmd,
            step,
            pid: i32::try_from(n.head.tgid).ok(),
            comm: n.comm.clone(),
            exe: self.exe_of(n.head.tgid),
            operation: n.op.as_str().to_string(),
            target,
            grant: (n.allowed && n.grant != NO_GRANT).then_some(n.grant),
            nearest,
            mechanism: Mechanism::Bpf,
            audit_serial: None,
            narrowed: None,
            why: None,
        };
        // An address the resolver admitted for a name: the record says
        // which name, and when it was asked.
        let proto_num = match protocol {
            Protocol::Tcp => 6,
            _ => 17,
        };
        let learned = (n.allowed && n.op != EventOp::Bind)
            .then(|| self.learned_name(proto_num, n.addr))
            .flatten()
            .filter(|_| !self.plan_grants_address(step, addr, n.port, n.grant));
        match learned {
            Some((name, at)) => self.emit_learned(out, d, name, at),
            None => self.emit(out, d),
        }
    }

    /// Whether the plan's own address tables (not a learned name) give
    /// `grant` for `addr` and `port` in `step`.
    fn plan_grants_address(&self, step: u32, addr: IpAddr, port: u16, grant: u32) -> bool {
        self.plan().net.iter().any(|e| {
            e.step == step
                && e.op == NetOp::Connect
                && kapl_image::names::within(addr, e.addr, e.prefix)
                && e.ports
                    .iter()
                    .any(|p| p.grant == grant && p.lo <= port && port <= p.hi)
        })
    }

    /// A socket option that reroutes, refused (`setsockopt`), or a packet
    /// dropped for carrying one (`send`). No grant kind names an option:
    /// never allowed, so no nearest grant.
    fn on_option(&mut self, o: &OptEvent, out: &mut Vec<Notice>) {
        let (cmd, step) = self.origin(&o.head);
        let (level, option) = option_name(o.level, o.optname);
        let destination = o.packet.then(|| match o.addr.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(o.addr),
        });
        let d = Decision {
            cmd,
            step,
            pid: i32::try_from(o.head.tgid).ok(),
            comm: o.comm.clone(),
            exe: self.exe_of(o.head.tgid),
            operation: if o.packet { "send" } else { "setsockopt" }.into(),
            target: Target::SocketOption {
                level,
                option,
                destination,
            },
            grant: None,
            nearest: None,
            mechanism: Mechanism::Bpf,
            audit_serial: None,
            narrowed: None,
            why: None,
        };
        self.emit(out, d);
    }

    /// A pathname UNIX connect/send: allowed by the step's `fs write` grant
    /// on the socket path, or refused (see src/unix.rs for why a granted
    /// path can still be refused).
    fn on_unix(&mut self, u: &UnixEvent, out: &mut Vec<Notice>) {
        let (cmd, step) = self.origin(&u.head);
        let written = attribution::fs_grant(self.plan(), step, &u.path, access::WRITE_FILE);
        let why = |w: &str| written.map(|g| (g, w.to_string()));
        let nearest = match u.reason {
            Reason::Granted | Reason::Tables => None,
            Reason::NoGrant => {
                attribution::nearest_fs(self.plan(), step, &u.path, access::WRITE_FILE)
            }
            Reason::Creatable => why(
                "it grants write on this path, but the path or a directory on it is a name a step may create (a symbolic link planted there would redirect the connection); UNIX socket paths are decided as written",
            ),
            Reason::Relative => why("the path is relative: socket paths must be absolute"),
            Reason::NotNormal => why("the path has an empty, `.` or `..` segment"),
            Reason::MagicLink => why(
                "the path is under /proc or /dev/fd, whose magic links resolve to any open descriptor",
            ),
            Reason::Abstract => None,
        };
        let abstract_why = (u.reason == Reason::Abstract).then(|| {
            format!(
                "abstract UNIX sockets are refused: the session runs at Landlock ABI {}, which cannot confine them to the session (that scope needs ABI 6), so the cgroup hook refuses every abstract connect and send instead",
                self.level.abi
            )
        });
        // Programs probe for optional services that are not there (glibc
        // tries nscd's socket on every user lookup): such a refusal is
        // recorded in the audit file but not shown on the command's
        // stderr; the connect would have failed anyway.
        let absent = !u.allowed
            && u.path.first() == Some(&b'/')
            && std::fs::symlink_metadata(std::ffi::OsStr::from_bytes(&u.path))
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
        let d = Decision {
            cmd,
            step,
            pid: i32::try_from(u.head.tgid).ok(),
            comm: u.comm.clone(),
            exe: self.exe_of(u.head.tgid),
            operation: if u.send { "send" } else { "connect" }.into(),
            target: Target::UnixSocket {
                // An abstract name may hold NULs: written as `\x00`.
                path: if u.reason == Reason::Abstract {
                    escape_bytes(&u.path).replace('\0', "\\x00")
                } else {
                    String::from_utf8_lossy(&u.path).into_owned()
                },
            },
            grant: (u.allowed && u.grant != NO_GRANT).then_some(u.grant),
            nearest,
            mechanism: Mechanism::Bpf,
            audit_serial: None,
            narrowed: None,
            why: abstract_why,
        };
        let mut hidden = Vec::new();
        self.emit(if absent { &mut hidden } else { out }, d);
    }

    fn on_exec(&mut self, x: &ExecEvent, out: &mut Vec<Notice>) {
        let cmd = self.cmds.by_cgroup.get(&x.head.cgroup).copied();
        let mut path = x.path.clone();
        // The tracepoint copies at most EXEC_PATH - 1 bytes of the path: a
        // path that fills them may be cut short, and a prefix must never be
        // attributed to a grant.
        let truncated = path.len() >= crate::bpf::EXEC_PATH_MAX - 1;
        let mut resolved = !truncated;
        if (path.first() != Some(&b'/') || truncated)
            && let Ok(p) = std::fs::read_link(format!("/proc/{}/exe", x.head.tgid))
        {
            path = p.as_os_str().as_bytes().to_vec();
            resolved = true;
        }
        let step = x.head.step;
        let grant = if resolved {
            attribution::fs_grant(self.plan(), step, &path, access::EXECUTE)
        } else {
            None
        };
        let target = Target::Program {
            path: escape_bytes(&path),
            truncated: !resolved,
        };
        let object = target.to_string();
        self.cmds
            .exe_seen
            .insert(x.head.tgid, (cmd, object.clone()));
        let pid = i32::try_from(x.head.tgid).unwrap_or(i32::MAX);
        let Some(grant) = grant else {
            // Not attributable: recorded as allowed by the kernel, without
            // a grant (reached through a link, or as an interpreter).
            let now = std::time::SystemTime::now();
            let rec =
                self.reporter
                    .unattributed_exec(&self.image, cmd, step, pid, &x.comm, target, now);
            self.write_record(out, &AuditRecord::Decision(Box::new(rec)));
            return;
        };
        let d = Decision {
            cmd,
            step,
            pid: Some(pid),
            comm: x.comm.clone(),
            exe: Some(object),
            operation: "exec".into(),
            target,
            grant: Some(grant),
            nearest: None,
            mechanism: Mechanism::Tracepoint,
            audit_serial: None,
            narrowed: None,
            why: None,
        };
        self.emit(out, d);
    }
}

/// The names of socket option `optname` at `level`, for the options the
/// setsockopt hook refuses (`rerouting` in bpf/kapl.bpf.c); numbers for
/// any other.
/// Why a refusal by one of Landlock's scopes is not a missing grant: no
/// grant kind names another process or an abstract socket.
fn scope_why(blocker: &str) -> Option<String> {
    (blocker == "ptrace" || blocker.starts_with("scope.")).then(|| {
        "Landlock's scopes keep a command from reaching processes and abstract UNIX sockets outside its own domain (the session's commands and their children); no grant can allow it".to_string()
    })
}

fn option_name(level: i32, optname: i32) -> (String, String) {
    let lvl = match level {
        libc::SOL_IP => "IPPROTO_IP",
        libc::SOL_SOCKET => "SOL_SOCKET",
        libc::SOL_TCP => "IPPROTO_TCP",
        libc::SOL_IPV6 => "IPPROTO_IPV6",
        _ => return (level.to_string(), optname.to_string()),
    };
    let name = match (level, optname) {
        (libc::SOL_IP, libc::IP_OPTIONS) => "IP_OPTIONS",
        (libc::SOL_IP, libc::IP_TRANSPARENT) => "IP_TRANSPARENT",
        (libc::SOL_SOCKET, libc::SO_MARK) => "SO_MARK",
        (libc::SOL_TCP, libc::TCP_REPAIR) => "TCP_REPAIR",
        (libc::SOL_IPV6, libc::IPV6_2292PKTOPTIONS) => "IPV6_2292PKTOPTIONS",
        (libc::SOL_IPV6, libc::IPV6_HOPOPTS) => "IPV6_HOPOPTS",
        (libc::SOL_IPV6, libc::IPV6_RTHDRDSTOPTS) => "IPV6_RTHDRDSTOPTS",
        (libc::SOL_IPV6, libc::IPV6_RTHDR) => "IPV6_RTHDR",
        (libc::SOL_IPV6, libc::IPV6_DSTOPTS) => "IPV6_DSTOPTS",
        (libc::SOL_IPV6, libc::IPV6_TRANSPARENT) => "IPV6_TRANSPARENT",
        _ => return (lvl.to_string(), optname.to_string()),
    };
    (lvl.to_string(), name.to_string())
}

#[cfg(test)]
mod tests {
    use super::option_name;

    /// The names match the numbers bpf/kapl.bpf.c refuses.
    #[test]
    fn option_names_match_the_hook() {
        let n = |l, o| {
            let (a, b) = option_name(l, o);
            format!("{a} {b}")
        };
        assert_eq!(n(41, 57), "IPPROTO_IPV6 IPV6_RTHDR");
        assert_eq!(n(41, 6), "IPPROTO_IPV6 IPV6_2292PKTOPTIONS");
        assert_eq!(n(41, 54), "IPPROTO_IPV6 IPV6_HOPOPTS");
        assert_eq!(n(41, 55), "IPPROTO_IPV6 IPV6_RTHDRDSTOPTS");
        assert_eq!(n(41, 59), "IPPROTO_IPV6 IPV6_DSTOPTS");
        assert_eq!(n(41, 75), "IPPROTO_IPV6 IPV6_TRANSPARENT");
        assert_eq!(n(0, 4), "IPPROTO_IP IP_OPTIONS");
        assert_eq!(n(0, 19), "IPPROTO_IP IP_TRANSPARENT");
        assert_eq!(n(1, 36), "SOL_SOCKET SO_MARK");
        assert_eq!(n(6, 19), "IPPROTO_TCP TCP_REPAIR");
        assert_eq!(n(99, 1), "99 1");
    }
}

/// `/proc/self/REST` for a denial of `/proc/PID/REST` (or
/// `/proc/PID/task/TID/REST`, as `/proc/thread-self/REST`) by process `PID`
/// itself: what the standard library grants as the process's own entries.
fn own_proc_entry(target: &Target, pid: Option<i32>) -> Option<Vec<u8>> {
    let Target::Path { path: Some(p), .. } = target else {
        return None;
    };
    let pid = pid?.to_string();
    let rest = p.strip_prefix("/proc/")?.strip_prefix(pid.as_str())?;
    let rest = rest.strip_prefix('/')?;
    if let Some(task) = rest.strip_prefix("task/") {
        let (_, r) = task.split_once('/')?;
        return Some(format!("/proc/thread-self/{r}").into_bytes());
    }
    Some(format!("/proc/self/{rest}").into_bytes())
}

#[cfg(test)]
mod own_proc_tests {
    use super::*;

    fn path(p: &str) -> Target {
        Target::Path {
            path: Some(p.into()),
            dev: None,
            ino: None,
        }
    }

    #[test]
    fn only_the_processs_own_entries_are_aliased() {
        assert_eq!(
            own_proc_entry(&path("/proc/42/maps"), Some(42)).as_deref(),
            Some(&b"/proc/self/maps"[..])
        );
        assert_eq!(
            own_proc_entry(&path("/proc/42/task/43/stat"), Some(42)).as_deref(),
            Some(&b"/proc/thread-self/stat"[..])
        );
        assert_eq!(own_proc_entry(&path("/proc/42/maps"), Some(41)), None);
        assert_eq!(own_proc_entry(&path("/proc/421/maps"), Some(42)), None);
        assert_eq!(own_proc_entry(&path("/proc/42"), Some(42)), None);
        assert_eq!(own_proc_entry(&path("/srv/42/maps"), Some(42)), None);
    }
}
