//! The audit record: one JSON line per kernel decision in the `--audit`
//! file, typed and versioned.
//!
//! Schema: `schemas/audit-record.schema.json` (generated from these types;
//! `cargo test -p kapl-runtime --test schemas` fails when it is stale).
//! A line is a [`DecisionRecord`] (`verdict` `allow` or `deny`) or, at the
//! end of a session that lost events, a [`LostRecord`] (`verdict` `lost`),
//! or, first in a session that runs below Landlock ABI 7 (`--min-abi`), a
//! [`LevelRecord`] (`verdict` `degraded`) naming what that level loses,
//! or a command's start ([`CommandStartRecord`], `verdict`
//! `command_started`, written when the supervisor starts it) or end
//! ([`CommandEndRecord`], `verdict` `command_ended`, written when it reaps
//! it, or when the session ends with it still running). A command the
//! kernel refused to execute still has both, the end saying `refused`
//! (exit status 126) with the denial record between them. The `time` of
//! every record is the runtime's wall clock when it wrote the record, so a
//! command's decisions fall between its start and its end as the runtime
//! saw them (an event the kernel queued just before the end may be
//! reported just after it).
//! `object` is the readable form of `target`, as the deny lines show it.

use crate::losses::Losses;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The version of the audit record's shape. It changes only when a field
/// changes meaning or goes away (adding a field keeps it).
pub const SCHEMA_VERSION: u32 = 1;

/// One line of an audit file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(title = "kapl-run audit record (one line of an --audit file)")]
pub enum AuditRecord {
    /// A decision.
    Decision(Box<DecisionRecord>),
    /// The session lost decision events.
    Lost(LostRecord),
    /// The session runs below Landlock ABI 7: what it loses.
    Level(LevelRecord),
    /// A command started.
    CommandStarted(Box<CommandStartRecord>),
    /// A command ended.
    CommandEnded(Box<CommandEndRecord>),
}

/// Allowed or denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The kernel allowed it.
    Allow,
    /// The kernel refused it.
    Deny,
}

/// Which kernel mechanism decided (or observed) it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// The step's Landlock domain (reported through audit).
    Landlock,
    /// The session's cgroup BPF programs.
    Bpf,
    /// The exec tracepoint (an observation: Landlock decided).
    Tracepoint,
    /// The commands' seccomp filter.
    Seccomp,
    /// The supervisor, deciding a call the seccomp filter sent it (user
    /// notification): mode, owner, times, extended attributes, inotify
    /// watches, `listen`.
    Supervisor,
    /// The session's resolver: a DNS query for a name, or an address an
    /// answer gave for it (see `learned` on the connect records).
    Resolver,
}

/// A transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// Anything else.
    Other,
}

impl Protocol {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Other => "other",
        }
    }
}

/// What a decision was about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// A file-system object.
    Path {
        /// The path as the kernel logged it (non-UTF-8 bytes as `\xNN`;
        /// `<too_long>` when the kernel's buffer could not hold it).
        path: Option<String>,
        /// The device, as logged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dev: Option<String>,
        /// The inode.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ino: Option<u64>,
    },
    /// A program executed.
    Program {
        /// Its path.
        path: String,
        /// The kernel's copy of the path was cut short (and `/proc` could
        /// not give the whole one).
        truncated: bool,
    },
    /// A network endpoint.
    Endpoint {
        /// The address (IPv4-mapped IPv6 shown as IPv4); `None` when the
        /// kernel did not say.
        address: Option<std::net::IpAddr>,
        /// The port.
        port: u16,
        /// The protocol.
        protocol: Protocol,
    },
    /// A host name asked of the session's resolver, or (with `address`) an
    /// address an answer gave for it.
    Host {
        /// The name (lower case, no trailing dot).
        name: String,
        /// The address the answer gave.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<std::net::IpAddr>,
    },
    /// A pathname UNIX socket.
    UnixSocket {
        /// Its path, as the program wrote it.
        path: String,
    },
    /// A socket being created.
    Socket {
        /// Address family.
        family: u32,
        /// Socket type.
        #[serde(rename = "type")]
        sotype: u32,
        /// Protocol number.
        protocol: u32,
    },
    /// A socket option that changes where a packet goes or the address it
    /// carries (refused by the setsockopt hook), or such a header found in
    /// an outgoing packet (dropped by the egress hook).
    SocketOption {
        /// The option's level (`IPPROTO_IPV6`, `IPPROTO_IP`, `SOL_SOCKET`,
        /// `IPPROTO_TCP`, or the number).
        level: String,
        /// The option (`IPV6_RTHDR`, `IP_OPTIONS`, ..., or the number).
        option: String,
        /// For a dropped packet: the destination in its header (the first
        /// hop of a routing header).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        destination: Option<std::net::IpAddr>,
    },
    /// Another process (Landlock's scopes).
    Process {
        /// Its pid.
        pid: i64,
        /// Its comm.
        comm: String,
    },
    /// A system call.
    Syscall {
        /// Its name (or `syscall N`).
        name: String,
    },
    /// Something the kernel named in a way not listed above.
    Other {
        /// As logged.
        text: String,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dev_ino = |f: &mut fmt::Formatter<'_>, dev: &Option<String>, ino: &Option<u64>| {
            let ino = ino.map(|i| i.to_string()).unwrap_or_default();
            write!(f, "dev={} ino={ino}", dev.as_deref().unwrap_or_default())
        };
        match self {
            // The kernel logs `<too_long>` for a path longer than its
            // buffer: the object is then named by device and inode too.
            Target::Path {
                path: Some(p),
                dev,
                ino,
            } => {
                if p == "<too_long>" {
                    write!(f, "{p} ")?;
                    dev_ino(f, dev, ino)
                } else {
                    f.write_str(p)
                }
            }
            Target::Path {
                path: None,
                dev,
                ino,
            } => dev_ino(f, dev, ino),
            Target::Program { path, truncated } => {
                f.write_str(path)?;
                if *truncated {
                    f.write_str("... (truncated)")?;
                }
                Ok(())
            }
            Target::Endpoint {
                address,
                port,
                protocol,
            } => match address {
                Some(a @ std::net::IpAddr::V4(_)) => {
                    write!(f, "{a}:{port} ({})", protocol.as_str())
                }
                Some(a @ std::net::IpAddr::V6(_)) => {
                    write!(f, "[{a}]:{port} ({})", protocol.as_str())
                }
                None => write!(f, "port {port} ({})", protocol.as_str()),
            },
            Target::Host {
                name,
                address: None,
            } => f.write_str(name),
            Target::Host {
                name,
                address: Some(a),
            } => write!(f, "{name} → {a}"),
            Target::UnixSocket { path } => write!(f, "{path} (unix)"),
            Target::Socket {
                family,
                sotype,
                protocol,
            } => write!(f, "family={family} type={sotype} protocol={protocol}"),
            Target::SocketOption {
                level,
                option,
                destination,
            } => {
                write!(f, "{level} {option}")?;
                match destination {
                    Some(a) => write!(f, " (in a packet to {a})"),
                    None => Ok(()),
                }
            }
            Target::Process { pid, comm } => write!(f, "pid {pid} ({comm})"),
            Target::Syscall { name } => f.write_str(name),
            Target::Other { text } => f.write_str(text),
        }
    }
}

/// A grant, as a record names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GrantRef {
    /// The grant's id in the image.
    pub id: u32,
    /// Where it is written: `FILE:LINE:COLUMN`.
    pub source: String,
    /// Where it is used, when that differs (a `use` of a library grant):
    /// `FILE:LINE`.
    pub site: String,
    /// Its source text.
    pub text: String,
    /// Its step (`None`: plan-wide).
    pub step: Option<String>,
}

/// The grant nearest to a denied request, and why it does not cover it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NearestRef {
    /// The grant.
    #[serde(flatten)]
    pub grant: GrantRef,
    /// Why it does not cover the request.
    pub why: String,
}

/// One kernel decision with the authority chain behind it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DecisionRecord {
    /// [`SCHEMA_VERSION`].
    #[schemars(extend("const" = 1))]
    pub schema_version: u32,
    /// When the runtime reported it (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// The session id.
    pub session: String,
    /// The host's name.
    pub host: String,
    /// The user the session runs as.
    pub uid: u32,
    /// The process (thread-group id), when known.
    pub pid: Option<i32>,
    /// Its comm.
    pub comm: String,
    /// Its program, when known.
    pub exe: Option<String>,
    /// The command whose process it was (the supervisor's command id, as
    /// in `command_started` and `command_ended` records), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<u64>,
    /// What it tried (`read (read_file)`, `connect`, `exec`, ...).
    pub operation: String,
    /// What it tried it on, readable (see `target`).
    pub object: String,
    /// What it tried it on, typed.
    pub target: Target,
    /// Allowed or denied.
    pub verdict: Verdict,
    /// The grant that allowed it (`None` for a denial, or an exec no grant
    /// names).
    pub grant: Option<GrantRef>,
    /// For a denial of what a grant of the step covers (enforcement is
    /// narrower than the grant there, see `reason`): that grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covering: Option<GrantRef>,
    /// The step whose authority the process held.
    pub step: String,
    /// The plan.
    pub plan: String,
    /// In a session pinned to an objective (`session start OBJ.kapi
    /// --objective NAME`), the plan's revision: 1 for the first plan
    /// loaded, one more for each accepted load after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_revision: Option<u32>,
    /// The intent, if the plan is under one.
    pub intent: Option<String>,
    /// The objective.
    pub objective: String,
    /// Why it was denied (or, for an exec no grant names, why it was
    /// allowed anyway).
    pub reason: Option<String>,
    /// For a denial: the nearest grant and why it does not cover.
    pub nearest: Option<NearestRef>,
    /// Which mechanism decided.
    pub mechanism: Mechanism,
    /// The kernel audit serial of the record it came from (Landlock and
    /// seccomp), to join with `ausearch -a SERIAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_serial: Option<u64>,
    /// For a connect to an address the session's resolver learned: the
    /// name it was learned for, and when the name was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<LearnedFrom>,
}

/// Where a learned address came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LearnedFrom {
    /// The host name asked.
    pub name: String,
    /// When it was asked (RFC 3339, UTC, milliseconds).
    pub queried_at: String,
}

/// Always `lost`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LostVerdict {
    /// Events were lost.
    Lost,
}

/// The session lost decision events: the audit file says itself that it
/// is incomplete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LostRecord {
    /// [`SCHEMA_VERSION`].
    #[schemars(extend("const" = 1))]
    pub schema_version: u32,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// The session id.
    pub session: String,
    /// The host's name.
    pub host: String,
    /// The user the session runs as.
    pub uid: u32,
    /// `lost`.
    pub verdict: LostVerdict,
    /// Counts by channel.
    pub lost: Losses,
    /// What the counts mean.
    pub reason: String,
}

/// Always `degraded`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LevelVerdict {
    /// Enforcement runs with less than Landlock ABI 7.
    Degraded,
}

/// The session runs at a Landlock ABI below 7 (accepted with `kapl-run
/// --min-abi`): the audit file says itself what is not enforced or not
/// reported. Written once, when the session starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LevelRecord {
    /// [`SCHEMA_VERSION`].
    #[schemars(extend("const" = 1))]
    pub schema_version: u32,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// The session id.
    pub session: String,
    /// The host's name.
    pub host: String,
    /// The user the session runs as.
    pub uid: u32,
    /// `degraded`.
    pub verdict: LevelVerdict,
    /// The Landlock ABI the rulesets are built at.
    pub landlock_abi: u8,
    /// The kernel's Landlock ABI.
    pub kernel_abi: u8,
    /// The floor accepted (`--min-abi`).
    pub min_abi: u8,
    /// What is lost at `landlock_abi`, and what replaces it.
    pub losses: Vec<crate::kernel_level::LevelLoss>,
}

/// Always `command_started`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartVerdict {
    /// A command started.
    CommandStarted,
}

/// Always `command_ended`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndVerdict {
    /// A command ended.
    CommandEnded,
}

/// Arguments a start record keeps: the first [`ARGV_MAX_ARGS`], and no
/// more than [`ARGV_MAX_BYTES`] bytes of them in all.
pub const ARGV_MAX_ARGS: usize = 16;
/// See [`ARGV_MAX_ARGS`].
pub const ARGV_MAX_BYTES: usize = 4096;

/// The supervisor started a command (`kapl-run exec`, or the one command
/// of `kapl-run run`) under the current step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommandStartRecord {
    /// [`SCHEMA_VERSION`].
    #[schemars(extend("const" = 1))]
    pub schema_version: u32,
    /// When the supervisor started it (RFC 3339, UTC, milliseconds; the
    /// clock of the decision records).
    pub time: String,
    /// The session id.
    pub session: String,
    /// The host's name.
    pub host: String,
    /// The user the session runs as.
    pub uid: u32,
    /// `command_started`.
    pub verdict: StartVerdict,
    /// The command's id in the session (its cgroup is `cmd-ID`; decision
    /// records of its processes carry it as `command`).
    pub command: u64,
    /// Its process; `None` when the kernel refused to execute the program
    /// (the end record says `refused`).
    pub pid: Option<i32>,
    /// Its arguments as given (non-UTF-8 bytes replaced), the first
    /// [`ARGV_MAX_ARGS`] and at most [`ARGV_MAX_BYTES`] bytes of them.
    pub argv: Vec<String>,
    /// `argv` was cut (more arguments, or longer ones, than it keeps).
    pub argv_truncated: bool,
    /// The program run (the first argument found as `execvp` finds it).
    pub program: String,
    /// The working directory it was started in, when the client gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The step it runs under.
    pub step: String,
    /// The plan.
    pub plan: String,
    /// The plan's revision, in a session pinned to an objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_revision: Option<u32>,
    /// The intent, if the plan is under one.
    pub intent: Option<String>,
    /// The objective.
    pub objective: String,
}

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CommandExit {
    /// It exited with a status.
    Exited {
        /// The status.
        code: i32,
    },
    /// A signal ended it (its client sees 128 + the signal).
    Killed {
        /// The signal's number.
        signal: i32,
        /// Its name (`SIGKILL`), when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// The kernel refused to execute its program: it never ran (its
    /// client sees 126; the denial record before this one says why).
    Refused,
    /// It could not be started for another reason (its client got an
    /// error).
    NotStarted {
        /// The error.
        error: String,
    },
    /// The supervisor could not learn how it ended.
    Unknown,
}

/// A command ended: reaped by the supervisor, refused before it ran, or
/// still running when the session ended (then `ended_with_step`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommandEndRecord {
    /// [`SCHEMA_VERSION`].
    #[schemars(extend("const" = 1))]
    pub schema_version: u32,
    /// When the supervisor reaped it (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// The session id.
    pub session: String,
    /// The host's name.
    pub host: String,
    /// The user the session runs as.
    pub uid: u32,
    /// `command_ended`.
    pub verdict: EndVerdict,
    /// The command's id (as in its `command_started` record).
    pub command: u64,
    /// Its process.
    pub pid: Option<i32>,
    /// How it ended.
    pub exit: CommandExit,
    /// From its start record to this one, in milliseconds (the monotonic
    /// clock).
    pub duration_ms: u64,
    /// The step's end or the session's end killed it (with what was left
    /// of the step's processes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ended_with_step: bool,
    /// The step it ran under.
    pub step: String,
    /// The plan.
    pub plan: String,
    /// The plan's revision, in a session pinned to an objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_revision: Option<u32>,
}

/// `argv` as a start record keeps it: each argument as text, the first
/// [`ARGV_MAX_ARGS`] and at most [`ARGV_MAX_BYTES`] bytes in all (an
/// argument that does not fit is cut at a character boundary); and
/// whether anything was cut.
pub fn bounded_argv(argv: &[Vec<u8>]) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut left = ARGV_MAX_BYTES;
    let mut cut = argv.len() > ARGV_MAX_ARGS;
    for a in argv.iter().take(ARGV_MAX_ARGS) {
        let s = String::from_utf8_lossy(a);
        if s.len() <= left {
            left -= s.len();
            out.push(s.into_owned());
            continue;
        }
        let mut end = left;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        out.push(s[..end].to_string());
        cut = true;
        break;
    }
    (out, cut)
}

/// The name of signal `n` on Linux (x86-64), for the common ones.
pub fn signal_name(n: i32) -> Option<&'static str> {
    Some(match n {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => return None,
    })
}

/// RFC 3339 in UTC with milliseconds (`2026-12-06T04:05:06.789Z`).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_read_as_the_deny_lines_show_them() {
        let ep = |a: &str, port, protocol| Target::Endpoint {
            address: a.parse().ok(),
            port,
            protocol,
        };
        assert_eq!(
            ep("127.0.0.1", 80, Protocol::Tcp).to_string(),
            "127.0.0.1:80 (tcp)"
        );
        assert_eq!(ep("::1", 53, Protocol::Udp).to_string(), "[::1]:53 (udp)");
        assert_eq!(ep("", 9, Protocol::Tcp).to_string(), "port 9 (tcp)");
        let p = |path: Option<&str>| Target::Path {
            path: path.map(str::to_string),
            dev: Some("vda".into()),
            ino: Some(12),
        };
        assert_eq!(p(Some("/srv/a")).to_string(), "/srv/a");
        assert_eq!(
            p(Some("<too_long>")).to_string(),
            "<too_long> dev=vda ino=12"
        );
        assert_eq!(p(None).to_string(), "dev=vda ino=12");
        let prog = Target::Program {
            path: "/usr/bin/x".into(),
            truncated: true,
        };
        assert_eq!(prog.to_string(), "/usr/bin/x... (truncated)");
        assert_eq!(
            Target::UnixSocket {
                path: "/run/s".into()
            }
            .to_string(),
            "/run/s (unix)"
        );
    }

    #[test]
    fn argv_is_kept_to_sixteen_arguments_and_four_kilobytes() {
        let a = |n: usize, len: usize| vec![vec![b'a'; len]; n];
        assert_eq!(bounded_argv(&a(3, 2)), (vec!["aa".to_string(); 3], false));
        let (v, cut) = bounded_argv(&a(20, 1));
        assert_eq!((v.len(), cut), (16, true));
        let (v, cut) = bounded_argv(&a(16, 1000));
        assert_eq!(v.len(), 5);
        assert_eq!(v.iter().map(String::len).sum::<usize>(), ARGV_MAX_BYTES);
        assert!(cut);
        // A cut never splits a character; non-UTF-8 bytes are replaced.
        let (v, cut) = bounded_argv(&[vec![b'x'; 4095], "é".as_bytes().to_vec()]);
        assert_eq!((v[1].as_str(), cut), ("", true));
        let (v, _) = bounded_argv(&[vec![0xff, b'a']]);
        assert_eq!(v[0], "\u{fffd}a");
        assert_eq!(
            bounded_argv(&a(16, 256)),
            (vec!["a".repeat(256); 16], false)
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc_milliseconds() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_796_529_906_789);
        assert_eq!(rfc3339(t), "2026-12-06T04:05:06.789Z");
    }
}
