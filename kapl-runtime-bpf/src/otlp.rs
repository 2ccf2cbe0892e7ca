//! Shipping decision records to an OpenTelemetry collector (`--otlp URL`;
//! stage: runtime, decision reporting).
//!
//! A collector that is down or slow must never block or kill a command:
//! the supervisor hands each record (encoded by `kapl_runtime::otlp`) to a
//! forked exporter process over a non-blocking `SOCK_SEQPACKET` pair and
//! never waits on it. A record the pair cannot take (its queue is full) is
//! counted, not queued without bound. The exporter batches records (up to
//! [`BATCH`] or [`LINGER`]), posts each batch to `URL/v1/logs` with
//! retries, and sends back the running count of records it could not
//! deliver; both counts are the session's `otlp` losses. The exporter is
//! forked while the supervisor is single-threaded and only uses the pair
//! and its own TCP connections; it ends when the pair closes.

use crate::error::SessionError;
use crate::sys;
use kapl_runtime::otlp::{self, Endpoint};
use kapl_runtime::record::DecisionRecord;
use kapl_runtime::report::Origin;
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Most records in one request.
pub const BATCH: usize = 256;
/// Longest a record waits for its batch to fill.
pub const LINGER: Duration = Duration::from_millis(500);
/// Attempts per batch (a refused connection, a timeout, a 429 or 5xx).
const ATTEMPTS: u32 = 3;
/// Connect, write and read timeout of one attempt.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Longest `finish` waits for the exporter's last batch.
const FINISH: Duration = Duration::from_secs(10);

/// The supervisor's end of the exporter.
pub struct Exporter {
    sock: OwnedFd,
    pidfd: OwnedFd,
    /// Records the pair could not take.
    dropped: u64,
    /// The exporter's last count of records it could not deliver.
    failed: Cell<u64>,
}

impl Exporter {
    /// Starts the exporter for `url`. Call it while the process has one
    /// thread (the runtime never starts one).
    pub fn start(url: &str, origin: &Origin) -> Result<Exporter, SessionError> {
        let endpoint = Endpoint::parse(url).map_err(SessionError::Otlp)?;
        let io = |what| move |source| SessionError::Io { what, source };
        let (mine, theirs) = sys::seqpacket_pair().map_err(io("socketpair"))?;
        // SAFETY: the runtime is single-threaded (no thread is ever
        // started), so the child may allocate; it only runs `export`, which
        // exits.
        let forked = unsafe { sys::fork() }.map_err(io("fork"))?;
        let pid = match forked {
            sys::Forked::Child => {
                drop(mine);
                export(theirs, &endpoint, origin)
            }
            sys::Forked::Parent(pid) => pid,
        };
        drop(theirs);
        let pidfd = sys::pidfd_open(pid).map_err(io("pidfd_open"))?;
        Ok(Exporter {
            sock: mine,
            pidfd,
            dropped: 0,
            failed: Cell::new(0),
        })
    }

    /// Hands one record over, never waiting.
    pub fn send(&mut self, rec: &DecisionRecord) {
        let line = serde_json::to_vec(&otlp::log_record(rec)).unwrap_or_default();
        if sys::send_nonblocking(&self.sock, &line).is_err() {
            self.dropped += 1;
        }
    }

    /// Records not delivered so far (not taken, or given up on).
    pub fn undelivered(&self) -> u64 {
        let mut buf = [0u8; 8];
        while let Ok(8) = sys::recv(&self.sock, &mut buf, true) {
            self.failed.set(u64::from_le_bytes(buf));
        }
        self.dropped.saturating_add(self.failed.get())
    }

    /// Closes the pair and waits (bounded) for the exporter's last batch;
    /// returns the records not delivered. An exporter still busy after
    /// the wait is ended, and what it held is counted as not delivered
    /// only as far as it reported.
    pub fn finish(self) -> u64 {
        let _ = sys::shutdown_write(&self.sock);
        let deadline = Instant::now() + FINISH;
        while Instant::now() < deadline {
            if sys::poll(&[self.pidfd.as_fd()], 50).is_ok_and(|r| r.iter().any(|x| *x)) {
                break;
            }
        }
        let _ = sys::pidfd_send_signal(&self.pidfd, libc::SIGKILL);
        let _ = sys::wait_pidfd(&self.pidfd);
        self.undelivered()
    }
}

/// The exporter process: batches what arrives on `sock` and posts it.
fn export(sock: OwnedFd, to: &Endpoint, origin: &Origin) -> ! {
    let _ = sys::setsid();
    // SAFETY: in the forked exporter, which never returns (it exits below)
    // and so never uses or drops what it inherited, only `sock`.
    unsafe { sys::close_from_except(0, sock.as_raw_fd()) };
    let mut failed = 0u64;
    let mut batch: Vec<serde_json::Value> = Vec::new();
    let mut first: Option<Instant> = None;
    let mut buf = vec![0u8; 1 << 20];
    let mut open = true;
    while open || !batch.is_empty() {
        let wait = first.map_or(1000, |t| {
            i32::try_from(LINGER.saturating_sub(t.elapsed()).as_millis()).unwrap_or(0)
        });
        if open && sys::poll(&[sock.as_fd()], wait).is_ok_and(|r| r.iter().any(|x| *x)) {
            loop {
                match sys::recv(&sock, &mut buf, true) {
                    Ok(0) => {
                        open = false;
                        break;
                    }
                    Ok(n) => {
                        if let Ok(v) = serde_json::from_slice(&buf[..n]) {
                            batch.push(v);
                            first.get_or_insert_with(Instant::now);
                        }
                        if batch.len() >= BATCH {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        let due = !open || batch.len() >= BATCH || first.is_some_and(|t| t.elapsed() >= LINGER);
        if due && !batch.is_empty() {
            let n = batch.len() as u64;
            let body = otlp::export_request(origin, std::mem::take(&mut batch));
            if !post_with_retries(to, &body) {
                failed += n;
            }
            first = None;
            let _ = sys::send_nonblocking(&sock, &failed.to_le_bytes());
        }
    }
    sys::exit_now(0)
}

/// Posts `body`, retrying a failed attempt with a growing pause.
fn post_with_retries(to: &Endpoint, body: &[u8]) -> bool {
    for attempt in 0..ATTEMPTS {
        match post(to, body) {
            Ok(status) if (200..300).contains(&status) => return true,
            // Refused for good (malformed, unauthorized): no retry helps.
            Ok(status) if (400..500).contains(&status) && status != 429 => return false,
            _ => std::thread::sleep(Duration::from_millis(200 << attempt)),
        }
    }
    false
}

/// One `POST` over a fresh connection; the response's status code.
fn post(to: &Endpoint, body: &[u8]) -> std::io::Result<u16> {
    let addr = (to.host.as_str(), to.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("the collector's name has no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    s.set_write_timeout(Some(TIMEOUT))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    let host = if to.host.contains(':') {
        format!("[{}]:{}", to.host, to.port)
    } else {
        format!("{}:{}", to.host, to.port)
    };
    write!(
        s,
        "POST {} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        to.path,
        body.len()
    )?;
    s.write_all(body)?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))
}
