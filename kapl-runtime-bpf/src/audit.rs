//! Landlock denial records from the kernel's audit netlink socket (stage:
//! runtime, decision reporting).
//!
//! Input: `NETLINK_AUDIT` multicast group `AUDIT_NLGRP_READLOG` (root, no
//! audit daemon needed) once audit is enabled. Output: parsed Landlock
//! access records (`AUDIT_LANDLOCK_ACCESS`, 1423) joined with their
//! `SYSCALL` record (same serial: pid, comm, exe) and the domain records
//! (`AUDIT_LANDLOCK_DOMAIN`, 1424: which pid created the domain, so the
//! supervisor maps domain ids to the rulesets it built).
//!
//! Audit is switched on with `AUDIT_SET enabled=1`, its backlog limit
//! raised to at least [`SESSION_BACKLOG_LIMIT`], and both are put back as
//! they were found when the last session using it ends (a reference count under
//! `/run/kapl/audit`, held with flock, shared by concurrent sessions).

use crate::sys::{self, SyscallError};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

pub use kapl_runtime::auditlog::{
    AUDIT_LANDLOCK_ACCESS, AUDIT_LANDLOCK_DOMAIN, AUDIT_SECCOMP, Denial, DomainRecord, Fields,
    Record, SeccompRecord, escape_bytes, parse_record, unescape_bytes,
};
use kapl_runtime::auditlog::{AUDIT_USER, Assembler, BARRIER_TAG};

const AUDIT_GET: u16 = 1000;
const AUDIT_SET: u16 = 1001;
const AUDIT_NLGRP_READLOG: u32 = 1;
const AUDIT_STATUS_ENABLED: u32 = 1;
const AUDIT_STATUS_BACKLOG_LIMIT: u32 = 0x10;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;

/// Errors of the audit channel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A socket call failed.
    #[error(
        "audit netlink {call}: {source} (Landlock denial reports need CONFIG_AUDIT, root with CAP_AUDIT_READ and CAP_AUDIT_CONTROL)"
    )]
    Syscall {
        /// The call.
        call: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The kernel answered something unexpected.
    #[error("audit netlink: unexpected answer: {0}")]
    Protocol(String),
}

impl From<SyscallError> for AuditError {
    fn from(e: SyscallError) -> AuditError {
        AuditError::Syscall {
            call: e.call,
            source: e.source,
        }
    }
}

/// Names the call of a failed `io::Result`.
fn named(call: &'static str) -> impl FnOnce(io::Error) -> AuditError {
    move |source| AuditError::Syscall { call, source }
}

fn nl_socket(groups: u32) -> Result<OwnedFd, AuditError> {
    let fd = sys::audit_netlink_socket(groups)?;
    // A large receive buffer: denials can come in bursts. The multicast
    // cannot wait for us; what does not fit is dropped and counted (see
    // `AuditReader::dropped`).
    let _ = sys::set_recv_buffer_force(&fd, 32 << 20);
    Ok(fd)
}

fn send_msg(fd: &OwnedFd, ty: u16, flags: u16, payload: &[u8]) -> Result<(), AuditError> {
    let len = 16 + payload.len();
    let mut buf = Vec::with_capacity(len);
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    buf.extend_from_slice(&1u32.to_ne_bytes()); // seq
    buf.extend_from_slice(&0u32.to_ne_bytes()); // pid
    buf.extend_from_slice(payload);
    sys::send_to_kernel(fd, &buf).map_err(named("sendto"))?;
    Ok(())
}

fn recv_raw(fd: &OwnedFd, buf: &mut [u8], nonblocking: bool) -> Result<usize, AuditError> {
    sys::recv(fd, buf, nonblocking).map_err(named("recv"))
}

/// Netlink messages in a datagram: (type, payload).
fn messages(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if len < 16 || off + len > buf.len() {
            // The audit multicast sets nlmsg_len to the payload length in
            // some kernels: take the rest of the datagram.
            out.push((ty, &buf[off + 16..]));
            break;
        }
        out.push((ty, &buf[off + 16..off + len]));
        off += (len + 3) & !3;
    }
    out
}

/// Reads the kernel's `audit_status` (AUDIT_GET): mask, enabled, failure,
/// pid, rate_limit, backlog_limit, lost, backlog.
fn audit_status() -> Result<[u32; 8], AuditError> {
    let fd = nl_socket(0)?;
    send_msg(&fd, AUDIT_GET, 0, &[])?;
    let mut buf = vec![0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let n = recv_raw(&fd, &mut buf, false)?;
        for (ty, p) in messages(&buf[..n]) {
            if ty == AUDIT_GET && p.len() >= 32 {
                let mut w = [0u32; 8];
                for (i, x) in w.iter_mut().enumerate() {
                    *x = u32::from_ne_bytes([p[4 * i], p[4 * i + 1], p[4 * i + 2], p[4 * i + 3]]);
                }
                return Ok(w);
            }
            if ty == NLMSG_ERROR && p.len() >= 4 {
                let err = i32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
                if err != 0 {
                    return Err(AuditError::Syscall {
                        call: "AUDIT_GET",
                        source: io::Error::from_raw_os_error(-err),
                    });
                }
            }
        }
    }
    Err(AuditError::Protocol("no answer to AUDIT_GET".into()))
}

/// Reads the audit `enabled` flag.
pub fn audit_enabled() -> Result<u32, AuditError> {
    Ok(audit_status()?[1])
}

/// The kernel's count of audit records it dropped host-wide (backlog
/// full, rate limit, no memory): Landlock logs denials without waiting, so
/// a storm that outruns `kauditd` loses records here.
pub fn audit_lost() -> Result<u32, AuditError> {
    Ok(audit_status()?[6])
}

/// Sets the audit `enabled` flag.
pub fn set_audit_enabled(v: u32) -> Result<(), AuditError> {
    set_status(AUDIT_STATUS_ENABLED, 1, v)
}

/// The kernel's audit backlog limit (records queued for `kauditd` before
/// new ones are dropped or their writers wait).
pub fn audit_backlog_limit() -> Result<u32, AuditError> {
    Ok(audit_status()?[5])
}

/// Sets the audit backlog limit.
pub fn set_audit_backlog_limit(v: u32) -> Result<(), AuditError> {
    set_status(AUDIT_STATUS_BACKLOG_LIMIT, 5, v)
}

/// AUDIT_SET of one `audit_status` field (`mask` selects it, `word` is its
/// index).
fn set_status(mask: u32, word: usize, v: u32) -> Result<(), AuditError> {
    let fd = nl_socket(0)?;
    let mut status = [0u8; 40];
    status[0..4].copy_from_slice(&mask.to_ne_bytes());
    status[4 * word..4 * word + 4].copy_from_slice(&v.to_ne_bytes());
    send_msg(&fd, AUDIT_SET, NLM_F_ACK, &status)?;
    let mut buf = vec![0u8; 8192];
    let n = recv_raw(&fd, &mut buf, false)?;
    for (ty, p) in messages(&buf[..n]) {
        if ty == NLMSG_ERROR && p.len() >= 4 {
            let err = i32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
            if err != 0 {
                return Err(AuditError::Syscall {
                    call: "AUDIT_SET",
                    source: io::Error::from_raw_os_error(-err),
                });
            }
        }
    }
    Ok(())
}

/// The backlog limit sessions raise the kernel's to while they hold audit:
/// Landlock logs without waiting, so a burst of denials longer than the
/// backlog (64 at boot) while `kauditd` waits for a CPU is lost.
pub const SESSION_BACKLOG_LIMIT: u32 = 8192;
/// In the state file: the backlog limit was not changed.
const UNCHANGED: u32 = u32::MAX;

const STATE_DIR: &str = "/run/kapl";
const STATE_FILE: &str = "/run/kapl/audit";
const BACKLOG_FILE: &str = "/run/kapl/audit-backlog";

fn with_state<T>(
    f: impl FnOnce(&mut (u32, u32, u32)) -> Result<T, AuditError>,
) -> Result<T, AuditError> {
    use std::io::{Read, Seek, Write};
    let _ = std::fs::create_dir_all(STATE_DIR);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(STATE_FILE)
        .map_err(|e| AuditError::Syscall {
            call: "open /run/kapl/audit",
            source: e,
        })?;
    sys::lock_exclusive(&file).map_err(named("flock"))?;
    let mut s = String::new();
    let _ = file.read_to_string(&mut s);
    let mut it = s.split_whitespace().filter_map(|x| x.parse::<u32>().ok());
    // (enabled as found, holds, backlog limit as found or UNCHANGED); the
    // backlog limit has a file of its own (under the same lock), which
    // runtimes that only know the first two numbers leave alone.
    let backlog = std::fs::read_to_string(BACKLOG_FILE)
        .ok()
        .and_then(|b| b.trim().parse().ok())
        .unwrap_or(UNCHANGED);
    let mut st = (it.next().unwrap_or(0), it.next().unwrap_or(0), backlog);
    let r = f(&mut st)?;
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{} {}", st.0, st.1);
    if st.2 == UNCHANGED {
        let _ = std::fs::remove_file(BACKLOG_FILE);
    } else {
        let _ = std::fs::write(BACKLOG_FILE, format!("{}\n", st.2));
    }
    Ok(r)
}

/// A hold on "audit enabled" (and a backlog limit of at least
/// [`SESSION_BACKLOG_LIMIT`]); dropping it puts both back as found when no
/// other session holds them.
#[derive(Debug)]
pub struct AuditHold(());

impl AuditHold {
    /// Enables audit (first holder records the original values).
    pub fn acquire() -> Result<AuditHold, AuditError> {
        with_state(|st| {
            if st.1 == 0 {
                st.0 = audit_enabled()?;
            }
            if st.2 == UNCHANGED {
                let b = audit_backlog_limit()?;
                // 0 is unlimited: nothing to raise.
                if b != 0 && b < SESSION_BACKLOG_LIMIT {
                    set_audit_backlog_limit(SESSION_BACKLOG_LIMIT)?;
                    st.2 = b;
                }
            }
            if audit_enabled()? == 0 {
                set_audit_enabled(1)?;
            }
            st.1 += 1;
            Ok(AuditHold(()))
        })
    }
}

impl Drop for AuditHold {
    fn drop(&mut self) {
        release_hold();
    }
}

/// Releases one hold (also called by a session's watchdog when its
/// supervisor died holding one).
pub fn release_hold() {
    let _ = with_state(|st| {
        st.1 = st.1.saturating_sub(1);
        if st.1 == 0 && st.2 != UNCHANGED {
            set_audit_backlog_limit(st.2)?;
            st.2 = UNCHANGED;
        }
        if st.1 == 0 && st.0 == 0 {
            set_audit_enabled(0)?;
        }
        Ok(())
    });
}

/// Datagrams one [`AuditReader::poll`] reads at most. The multicast carries
/// every audit record of the host (other sessions' denial storms too): a
/// full 32 MiB receive buffer read in one go held tens of thousands of
/// records at once and left the supervisor's heap 100 MB larger.
pub const MAX_DATAGRAMS_PER_POLL: usize = 2048;

/// A subscriber to the audit log multicast group.
#[derive(Debug)]
pub struct AuditReader {
    fd: OwnedFd,
    buf: Vec<u8>,
    joined: Assembler,
    barrier_n: u64,
    kernel_lost_base: u32,
    datagrams: u64,
}

/// The longest [`AuditReader::barrier`] waits while records keep arriving.
pub const BARRIER_CAP: Duration = Duration::from_secs(30);

impl AuditReader {
    /// Joins the multicast group (needs CAP_AUDIT_READ).
    pub fn open() -> Result<AuditReader, AuditError> {
        Ok(AuditReader {
            fd: nl_socket(1 << (AUDIT_NLGRP_READLOG - 1))?,
            buf: vec![0u8; 64 * 1024],
            joined: Assembler::default(),
            barrier_n: 0,
            kernel_lost_base: audit_lost()?,
            datagrams: 0,
        })
    }

    /// Waits until every record the kernel queued before this call has
    /// been received: sends an `AUDIT_USER` marker (which kauditd queues
    /// behind them) and reads until it comes back, or until nothing arrived
    /// for `timeout` (at most [`BARRIER_CAP`] in all). Returns every record
    /// read, pending ones included.
    pub fn barrier(&mut self, timeout: Duration) -> Result<Vec<Record>, AuditError> {
        self.barrier_n += 1;
        let token = format!("{BARRIER_TAG}{} {}", std::process::id(), self.barrier_n);
        let fd = nl_socket(0)?;
        let mut payload = token.clone().into_bytes();
        payload.push(0);
        send_msg(&fd, AUDIT_USER, NLM_F_ACK, &payload)?;
        let start = Instant::now();
        let mut deadline = start + timeout;
        let mut out = Vec::new();
        loop {
            let before = self.datagrams;
            out.extend(self.poll(false)?);
            let now = Instant::now();
            if self.joined.barrier_seen.as_deref() == Some(token.as_str()) || now > deadline {
                break;
            }
            // Records still arriving (a storm queued ahead of the marker, or
            // the marker itself dropped by a full buffer): wait while they
            // come, up to BARRIER_CAP. Giving up early let the command's
            // last denials arrive after it was forgotten, unattributed.
            if self.datagrams != before {
                deadline = (now + timeout).min(start + BARRIER_CAP);
            }
            let _ = sys::poll(&[self.fd.as_fd()], 5);
        }
        out.extend(self.poll(true)?);
        Ok(out)
    }

    /// Audit records the kernel dropped for this reader because its receive
    /// buffer was full (the socket's drop counter, `SO_MEMINFO`): exact, in
    /// records, so an upper bound on the denials lost (a denial is an access
    /// record plus its `SYSCALL`, `PROCTITLE` and `EOE` records).
    pub fn dropped(&self) -> Result<u64, AuditError> {
        let drops = sys::socket_drops(&self.fd).map_err(named("getsockopt SO_MEMINFO"))?;
        let drops =
            drops.ok_or_else(|| AuditError::Protocol("SO_MEMINFO has no drop counter".into()))?;
        Ok(u64::from(drops))
    }

    /// Audit records the kernel dropped host-wide since this reader was
    /// opened ([`audit_lost`]): exact for the host, so an upper bound for
    /// this session when other audit sources are busy at the same time.
    pub fn kernel_lost(&self) -> Result<u64, AuditError> {
        Ok(u64::from(audit_lost()?.wrapping_sub(self.kernel_lost_base)))
    }

    /// The socket fd (poll it for readability).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads what is available without blocking (at most
    /// [`MAX_DATAGRAMS_PER_POLL`]: the socket stays readable for the next
    /// call) and returns the records that are complete (their SYSCALL
    /// record seen, or older than 200 ms). `flush_all` returns every
    /// pending record (at shutdown).
    pub fn poll(&mut self, flush_all: bool) -> Result<Vec<Record>, AuditError> {
        for _ in 0..MAX_DATAGRAMS_PER_POLL {
            let n = match recv_raw(&self.fd, &mut self.buf, true) {
                Ok(n) => {
                    self.datagrams += 1;
                    n
                }
                Err(AuditError::Syscall { source, .. })
                    if source.kind() == io::ErrorKind::WouldBlock =>
                {
                    break;
                }
                // The receive buffer overflowed: the kernel dropped records
                // (counted by `dropped`); what it queued is still readable.
                Err(AuditError::Syscall { source, .. })
                    if source.raw_os_error() == Some(libc::ENOBUFS) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            let msgs: Vec<(u16, String)> = messages(&self.buf[..n])
                .into_iter()
                .map(|(t, p)| {
                    (
                        t,
                        String::from_utf8_lossy(p)
                            .trim_end_matches('\0')
                            .to_string(),
                    )
                })
                .collect();
            let now = Instant::now();
            for (ty, text) in msgs {
                self.joined.take(ty, &text, now);
            }
        }
        Ok(self.joined.ready(flush_all, Instant::now()))
    }
}
