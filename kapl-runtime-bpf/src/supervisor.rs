//! A session's supervisor: the process that holds the session and serves
//! `kapl-run exec`, `step`, `status` and `session stop` over the session's
//! control socket (stage: runtime, sessions).
//!
//! [`Supervisor::handle`] decides what a request does and what the client
//! is told; it asks the session through the [`Control`] trait, so it is
//! unit-tested without a kernel. [`serve`] is the poll loop around it:
//! accepting clients (only the invoking user's, never a process inside any
//! session), routing each decision's line to its command's client, and
//! reaping commands.

use crate::control::{self, LineReader, Reply, Request};
use crate::error::{RunError, SessionError};
use crate::session::revision::PlanLoadError;
use crate::session::{Notice, Session};
use crate::sys;
use kapl_runtime::losses::loss_notice;
use kapl_runtime::proc_cgroup;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// What the supervisor asks of a session.
pub trait Control {
    /// Starts a command under the current step.
    fn spawn(
        &mut self,
        argv: &[Vec<u8>],
        env: &[Vec<u8>],
        cwd: &[u8],
        stdio: [RawFd; 3],
    ) -> Result<u64, RunError>;
    /// Moves to a step; the message for the client.
    fn switch(&mut self, name: &str) -> Result<String, RunError>;
    /// The session described in one line.
    fn status(&self) -> String;
    /// Decision events lost so far.
    fn lost(&self) -> u64;
    /// Loads a plan image (the bytes a client sent); the message for it.
    fn load(
        &mut self,
        _bytes: &[u8],
        _file: &str,
        _plan: Option<&str>,
        _step: Option<&str>,
    ) -> Result<String, RunError> {
        Err(PlanLoadError::NotPinned.into())
    }
    /// The latest `n` denials explained, as a JSON array.
    fn explain(&self, _n: usize) -> Result<String, RunError> {
        Err(PlanLoadError::NotPinned.into())
    }
    /// What a proposal is built with (JSON) and the objective image's
    /// bytes.
    fn proposal(&self) -> Result<(String, Vec<u8>), RunError> {
        Err(PlanLoadError::NotPinned.into())
    }
    /// Keeps a proposal refused at its build in the history.
    fn refused(&mut self, _file: &str, _sha256: &str, _why: &str) -> Result<(), RunError> {
        Err(PlanLoadError::NotPinned.into())
    }
}

impl Control for Session {
    fn spawn(
        &mut self,
        argv: &[Vec<u8>],
        env: &[Vec<u8>],
        cwd: &[u8],
        stdio: [RawFd; 3],
    ) -> Result<u64, RunError> {
        Session::spawn(self, argv, env, Some(cwd), stdio)
    }

    fn switch(&mut self, name: &str) -> Result<String, RunError> {
        let n = Session::switch(self, name)?;
        let mut m = format!("step {name}: {n} processes of the previous step ended");
        for l in self.precision() {
            m.push_str(&format!("\nprecision: {l}"));
        }
        Ok(m)
    }

    fn status(&self) -> String {
        Session::status(self)
    }

    fn lost(&self) -> u64 {
        Session::lost(self)
    }

    fn load(
        &mut self,
        bytes: &[u8],
        file: &str,
        plan: Option<&str>,
        step: Option<&str>,
    ) -> Result<String, RunError> {
        let mut m = Session::load_plan(self, bytes, file, plan, step)?;
        for l in self.precision() {
            m.push_str(&format!("\nprecision: {l}"));
        }
        Ok(m)
    }

    fn explain(&self, n: usize) -> Result<String, RunError> {
        if self.pinned().is_none() {
            return Err(PlanLoadError::NotPinned.into());
        }
        serde_json::to_string(&self.explained(n))
            .map_err(|e| SessionError::Protocol(e.to_string()).into())
    }

    fn refused(&mut self, file: &str, sha256: &str, why: &str) -> Result<(), RunError> {
        self.refused_proposal(file, sha256, why)
    }

    fn proposal(&self) -> Result<(String, Vec<u8>), RunError> {
        let p = self.pinned().ok_or(PlanLoadError::NotPinned)?;
        let ctx = kapl_runtime::protocol::ProposalContext {
            objective_file: p.file.clone(),
            read_rules: self.read_rules(),
        };
        let json = serde_json::to_string(&ctx)
            .map_err(|e| RunError::from(SessionError::Protocol(e.to_string())))?;
        Ok((json, p.bytes.clone()))
    }
}

/// What handling one request leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send these replies and close the client.
    Reply(Vec<Reply>),
    /// A command started: the client stays until it exits.
    Started {
        /// The command.
        cmd: u64,
        /// Show it allow lines too.
        show_allows: bool,
        /// Events lost before it started.
        lost_before: u64,
    },
    /// Stop the session.
    Stop,
    /// Send this reply with this descriptor, and close the client.
    ReplyWithFd(Reply, SentFd),
}

/// A descriptor to send with a reply (equal to another when it is the same
/// descriptor number).
#[derive(Debug)]
pub struct SentFd(pub OwnedFd);

impl PartialEq for SentFd {
    fn eq(&self, other: &SentFd) -> bool {
        self.0.as_raw_fd() == other.0.as_raw_fd()
    }
}

impl Eq for SentFd {}

/// The error reply for `e`.
pub fn error_reply(e: &RunError) -> Reply {
    let j = e.to_json();
    Reply::Error {
        code: j.code.unwrap_or_default(),
        message: j.message,
        help: j.help,
        exit: j.exit,
    }
}

/// Decides requests for one session.
#[derive(Debug, Default)]
pub struct Supervisor;

impl Supervisor {
    /// Handles `req`; `fds` are the descriptors that came with it (an
    /// `exec` brings the client's stdin, stdout and stderr, never an inet
    /// socket: those would carry another cgroup).
    pub fn handle(&mut self, s: &mut impl Control, req: Request, fds: &[OwnedFd]) -> Outcome {
        match req {
            Request::Exec {
                argv,
                env,
                cwd,
                show_allows,
            } => {
                if fds.len() != 3 || fds.iter().any(control::is_inet_socket) {
                    let e = RunError::from(SessionError::BadStdio);
                    return Outcome::Reply(vec![error_reply(&e)]);
                }
                let stdio = [fds[0].as_raw_fd(), fds[1].as_raw_fd(), fds[2].as_raw_fd()];
                match s.spawn(&argv, &env, &cwd, stdio) {
                    Ok(cmd) => Outcome::Started {
                        cmd,
                        show_allows,
                        lost_before: s.lost(),
                    },
                    Err(RunError::Denied(n)) => Outcome::Reply(vec![
                        Reply::Notice {
                            line: n.line,
                            record: n.record,
                        },
                        Reply::Exit {
                            code: i32::from(crate::error::EXIT_DENIED),
                        },
                    ]),
                    Err(e) => Outcome::Reply(vec![error_reply(&e)]),
                }
            }
            Request::Step { name } => Outcome::Reply(vec![match s.switch(&name) {
                Ok(message) => Reply::Ok { message },
                Err(e) => error_reply(&e),
            }]),
            Request::Status => Outcome::Reply(vec![Reply::Ok {
                message: s.status(),
            }]),
            Request::Stop => Outcome::Stop,
            Request::Load { file, plan, step } => {
                let [fd] = fds else {
                    return Outcome::Reply(vec![error_reply(&RunError::from(
                        SessionError::Protocol(
                            "load needs exactly one descriptor: the image".into(),
                        ),
                    ))]);
                };
                let r = crate::session::revision::read_image_fd(fd, &file)
                    .and_then(|bytes| s.load(&bytes, &file, plan.as_deref(), step.as_deref()));
                Outcome::Reply(vec![match r {
                    Ok(message) => Reply::Ok { message },
                    Err(e) => error_reply(&e),
                }])
            }
            Request::Refused { file, sha256, why } => {
                Outcome::Reply(vec![match s.refused(&file, &sha256, &why) {
                    Ok(()) => Reply::Ok {
                        message: String::new(),
                    },
                    Err(e) => error_reply(&e),
                }])
            }
            Request::Explain { last } => Outcome::Reply(vec![match s.explain(last as usize) {
                Ok(message) => Reply::Ok { message },
                Err(e) => error_reply(&e),
            }]),
            Request::Proposal => {
                let r = s.proposal().and_then(|(message, bytes)| {
                    let fd = sys::sealed_memfd("kapl-objective", &bytes).map_err(|source| {
                        RunError::from(SessionError::Io {
                            what: "memfd",
                            source,
                        })
                    })?;
                    Ok((message, fd))
                });
                match r {
                    Ok((message, fd)) => Outcome::ReplyWithFd(Reply::Ok { message }, SentFd(fd)),
                    Err(e) => Outcome::Reply(vec![error_reply(&e)]),
                }
            }
        }
    }
}

/// One connected client.
struct Client {
    fd: OwnedFd,
    reader: LineReader,
    cmd: Option<u64>,
    show_allows: bool,
    /// Events lost when its command started.
    lost_before: u64,
}

impl Client {
    fn send(&self, r: &Reply) {
        let _ = control::send(&self.fd, r, &[]);
    }
}

/// The supervisor's state while it serves.
struct Served {
    session: Session,
    clients: HashMap<u64, Client>,
    next: u64,
    id: String,
    uid: u32,
}

/// Whether `pid` is a client the supervisor of session `id` may serve:
/// the same user, and not inside the session (unreadable: refused).
fn may_serve(fd: &OwnedFd, id: &str, uid: u32) -> bool {
    match control::peer(fd) {
        Ok((pid, puid)) => {
            puid == uid
                && std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                    .is_ok_and(|t| !proc_cgroup::in_session(&t, id))
        }
        Err(_) => false,
    }
}

/// Sends each notice to its command's client (a notice of no command, the
/// session's, to every running command's client).
fn deliver(notes: Vec<Notice>, clients: &HashMap<u64, Client>) {
    for n in notes {
        for c in clients.values() {
            if c.cmd.is_some() && (n.cmd.is_none() || c.cmd == n.cmd) && (n.deny || c.show_allows) {
                c.send(&Reply::Notice {
                    line: n.line.clone(),
                    record: n.record.clone(),
                });
            }
        }
    }
}

impl Served {
    /// Accepts one waiting client.
    fn accept(&mut self, listener: &OwnedFd) {
        let Ok(fd) = control::accept(listener) else {
            return;
        };
        if may_serve(&fd, &self.id, self.uid) {
            self.next += 1;
            self.clients.insert(
                self.next,
                Client {
                    fd,
                    reader: LineReader::default(),
                    cmd: None,
                    show_allows: false,
                    lost_before: 0,
                },
            );
        }
    }

    /// A client's command exited: its last lines, a loss notice, the exit.
    fn command_exited(&mut self, k: u64) {
        let code = self
            .clients
            .get(&k)
            .and_then(|c| c.cmd)
            .and_then(|cmd| self.session.reap(cmd))
            .unwrap_or(1);
        deliver(self.session.sync(), &self.clients);
        if let Some(c) = self.clients.remove(&k) {
            if let Some(cmd) = c.cmd {
                self.session.forget(cmd);
            }
            if let Some(line) = loss_notice(c.lost_before, self.session.lost()) {
                c.send(&Reply::Notice { line, record: None });
            }
            c.send(&Reply::Exit { code });
        }
    }

    /// Reads from client `k`; returns true when the session is to stop.
    fn client_readable(&mut self, k: u64, sup: &mut Supervisor) -> bool {
        let Some(c) = self.clients.get_mut(&k) else {
            return false;
        };
        if c.reader.fill(&c.fd).is_err() || c.reader.eof {
            // The client went away (killed, timed out): its command goes
            // with it.
            if let Some(cmd) = c.cmd {
                self.session.kill_cmd(cmd);
                let _ = self.session.reap(cmd);
                deliver(self.session.sync(), &self.clients);
                self.session.forget(cmd);
            }
            self.clients.remove(&k);
            return false;
        }
        let Some(line) = c.reader.line() else {
            return false;
        };
        let fds = std::mem::take(&mut c.reader.fds);
        let outcome = match Request::parse(&line) {
            Ok(req) => sup.handle(&mut self.session, req, &fds),
            Err(e) => Outcome::Reply(vec![error_reply(&RunError::from(SessionError::Protocol(
                format!("bad request: {e}"),
            )))]),
        };
        match outcome {
            Outcome::Stop => return true,
            Outcome::Started {
                cmd,
                show_allows,
                lost_before,
            } => {
                if let Some(c) = self.clients.get_mut(&k) {
                    c.cmd = Some(cmd);
                    c.show_allows = show_allows;
                    c.lost_before = lost_before;
                }
            }
            Outcome::Reply(replies) => {
                // A plan load may have produced notices for running commands.
                deliver(self.session.pump(false), &self.clients);
                if let Some(c) = self.clients.remove(&k) {
                    replies.iter().for_each(|r| c.send(r));
                }
            }
            Outcome::ReplyWithFd(reply, fd) => {
                if let Some(c) = self.clients.remove(&k) {
                    let _ = control::send(&c.fd, &reply, &[fd.0.as_fd()]);
                }
            }
        }
        false
    }

    /// Ends the session: the stopping client gets the summary, every other
    /// running command's client exit status 137.
    fn stop(mut self, stopping: u64, registry: &std::path::Path) {
        deliver(self.session.pump(true), &self.clients);
        let summary = self.session.stop();
        let _ = std::fs::remove_file(registry.join(&self.id));
        if let Some(c) = self.clients.remove(&stopping) {
            c.send(&Reply::Ok { message: summary });
        }
        for (_, c) in self.clients.drain() {
            c.send(&Reply::Exit { code: 137 });
        }
    }
}

/// Serves session `session` on `listener` until a client stops it.
pub fn serve(session: Session, listener: OwnedFd, registry: PathBuf) {
    let mut st = Served {
        id: session.id().to_string(),
        session,
        clients: HashMap::new(),
        next: 0,
        uid: sys::getuid(),
    };
    let mut sup = Supervisor;
    loop {
        // What to poll: the listener, the session's event fds, then per
        // client its socket and its command's pidfd.
        let ev = st.session.event_fds();
        let mut fds: Vec<RawFd> = vec![listener.as_raw_fd()];
        fds.extend(&ev);
        let mut keys = Vec::new();
        for (k, c) in &st.clients {
            fds.push(c.fd.as_raw_fd());
            keys.push((*k, false));
            if let Some(p) = c.cmd.and_then(|cmd| st.session.pidfd(cmd)) {
                fds.push(p.as_raw_fd());
                keys.push((*k, true));
            }
        }
        let ready = sys::poll_raw(&fds, 100).unwrap_or_else(|_| vec![false; fds.len()]);
        // Decisions first, routed to their command's client.
        deliver(st.session.pump(false), &st.clients);
        if ready.first().copied().unwrap_or(false) {
            st.accept(&listener);
        }
        let base = 1 + ev.len();
        for (i, (k, is_pid)) in keys.into_iter().enumerate() {
            if !ready.get(base + i).copied().unwrap_or(false) {
                continue;
            }
            if is_pid {
                st.command_exited(k);
            } else if st.client_readable(k, &mut sup) {
                st.stop(k, &registry);
                return;
            }
        }
    }
}

/// The stdio a supervisor keeps: /dev/null on 0, 1 and 2.
pub fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = sys::dup2_onto_stdio(&null);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, reason = "test assertions")]
    use super::*;
    use crate::error::CommandError;
    use kapl_runtime::step::StepError;

    /// A session that only records what it was asked.
    #[derive(Default)]
    struct Fake {
        spawned: Vec<Vec<Vec<u8>>>,
        step: String,
        deny_exec: bool,
    }

    impl Control for Fake {
        fn spawn(
            &mut self,
            argv: &[Vec<u8>],
            _: &[Vec<u8>],
            _: &[u8],
            _: [RawFd; 3],
        ) -> Result<u64, RunError> {
            if argv.first().is_some_and(|a| a == b"nosuch") {
                return Err(CommandError::NotFound("nosuch".into()).into());
            }
            if self.deny_exec {
                return Err(RunError::Denied(Box::new(Notice {
                    cmd: None,
                    line: "denied: x exec /x — no grant".into(),
                    deny: true,
                    record: None,
                })));
            }
            self.spawned.push(argv.to_vec());
            Ok(self.spawned.len() as u64)
        }
        fn switch(&mut self, name: &str) -> Result<String, RunError> {
            if name == "later" {
                return Err(StepError::AlreadyCurrent { step: name.into() }.into());
            }
            self.step = name.to_string();
            Ok(format!(
                "step {name}: 0 processes of the previous step ended"
            ))
        }
        fn status(&self) -> String {
            format!("step {}", self.step)
        }
        fn lost(&self) -> u64 {
            7
        }
    }

    fn stdio() -> Vec<OwnedFd> {
        (0..3)
            .filter_map(|_| sys::pipe_cloexec().ok().map(|(r, _)| r))
            .collect()
    }

    fn exec(argv: &str) -> Request {
        Request::Exec {
            argv: vec![argv.as_bytes().to_vec()],
            env: vec![],
            cwd: b"/".to_vec(),
            show_allows: true,
        }
    }

    #[test]
    fn exec_starts_a_command_and_keeps_its_client() {
        let (mut sup, mut s) = (Supervisor, Fake::default());
        let out = sup.handle(&mut s, exec("/bin/true"), &stdio());
        assert_eq!(
            out,
            Outcome::Started {
                cmd: 1,
                show_allows: true,
                lost_before: 7
            }
        );
        assert_eq!(s.spawned, vec![vec![b"/bin/true".to_vec()]]);
    }

    #[test]
    fn exec_without_exactly_three_stdio_fds_is_refused_before_anything_runs() {
        let (mut sup, mut s) = (Supervisor, Fake::default());
        let mut fds = stdio();
        fds.pop();
        let out = sup.handle(&mut s, exec("/bin/true"), &fds);
        let Outcome::Reply(r) = out else {
            panic!("{out:?}")
        };
        assert!(
            matches!(&r[..], [Reply::Error { code, exit: 125, .. }] if code == "KAPL0808"),
            "{r:?}"
        );
        assert!(s.spawned.is_empty());
    }

    #[test]
    fn refused_programs_are_denials_and_missing_ones_exit_127() {
        let mut sup = Supervisor;
        let mut s = Fake {
            deny_exec: true,
            ..Fake::default()
        };
        let out = sup.handle(&mut s, exec("/x"), &stdio());
        assert_eq!(
            out,
            Outcome::Reply(vec![
                Reply::Notice {
                    line: "denied: x exec /x — no grant".into(),
                    record: None,
                },
                Reply::Exit { code: 126 }
            ])
        );
        let out = sup.handle(&mut s, exec("nosuch"), &stdio());
        let Outcome::Reply(r) = out else {
            panic!("{out:?}")
        };
        assert!(
            matches!(&r[..], [Reply::Error { code, exit: 127, .. }] if code == "KAPL0810"),
            "{r:?}"
        );
    }

    #[test]
    fn step_status_and_stop() {
        let (mut sup, mut s) = (Supervisor, Fake::default());
        let out = sup.handle(&mut s, Request::Step { name: "b".into() }, &[]);
        assert!(matches!(&out, Outcome::Reply(r) if matches!(&r[..], [Reply::Ok { .. }])));
        let out = sup.handle(
            &mut s,
            Request::Step {
                name: "later".into(),
            },
            &[],
        );
        assert!(
            matches!(&out, Outcome::Reply(r) if matches!(&r[..], [Reply::Error { code, .. }] if code == "KAPL0806")),
            "{out:?}"
        );
        let out = sup.handle(&mut s, Request::Status, &[]);
        assert_eq!(
            out,
            Outcome::Reply(vec![Reply::Ok {
                message: "step b".into()
            }])
        );
        assert_eq!(sup.handle(&mut s, Request::Stop, &[]), Outcome::Stop);
    }

    #[test]
    fn plan_requests_need_a_pinned_session_and_their_descriptor() {
        let (mut sup, mut s) = (Supervisor, Fake::default());
        let load = || Request::Load {
            file: "p.kapi".into(),
            plan: None,
            step: None,
        };
        // No descriptor, or three: a protocol error.
        for fds in [Vec::new(), stdio()] {
            let out = sup.handle(&mut s, load(), &fds);
            assert!(
                matches!(&out, Outcome::Reply(r) if matches!(&r[..], [Reply::Error { code, .. }] if code == "KAPL0808")),
                "{out:?}"
            );
        }
        // A pipe is not read (it could keep the supervisor waiting).
        let (r, _w) = sys::pipe_cloexec().unwrap_or_else(|e| panic!("{e}"));
        let out = sup.handle(&mut s, load(), &[r]);
        assert!(
            matches!(&out, Outcome::Reply(r) if matches!(&r[..], [Reply::Error { message, .. }] if message.contains("not a regular file"))),
            "{out:?}"
        );
        // A session on a plan refuses what needs an objective.
        for req in [Request::Explain { last: 3 }, Request::Proposal] {
            let out = sup.handle(&mut s, req, &[]);
            assert!(
                matches!(&out, Outcome::Reply(r) if matches!(&r[..], [Reply::Error { code, message, .. }] if code == "KAPL0806" && message.contains("not pinned"))),
                "{out:?}"
            );
        }
    }
}
