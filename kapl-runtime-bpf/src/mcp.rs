//! `kapl-run mcp`: a Model Context Protocol server on stdio (stage:
//! runtime, agents).
//!
//! Input: JSON-RPC lines on stdin from an agent host. Output: one
//! response line per request on stdout (nothing else is ever written
//! there). The protocol, the tools' schemas and argument checks are
//! `kapl_runtime::mcp`'s; this module carries the tools out against a
//! session:
//!
//! - `run`: a `Request::Exec` over the control socket, exactly as
//!   `kapl-run exec` sends it (with allows), the command's stdin a memfd
//!   holding the given text and its stdout and stderr pipes this server
//!   drains while it waits (so the command never blocks on a full pipe);
//!   on timeout the connection is closed and the supervisor kills the
//!   command;
//! - `status`, `step`: the requests of the same names;
//! - `propose_plan`, `explain_denials`: `kapl-run plan propose` and
//!   `kapl-run explain` as subprocesses (`KAPL_RUN_SELF` names the
//!   program, else this executable), their JSON relayed.
//!
//! Requests are served one at a time, in order.

use crate::client;
use crate::control::{self, LineReader, Reply, Request};
use crate::error::{RunError, SessionError};
use crate::sys;
use kapl_runtime::mcp::{
    Capture, Decisions, EXIT_TIMED_OUT, MessageOutput, OUTPUT_LIMIT, RunInput, RunOutput, Server,
    ToolCall, ToolResult, Tools,
};
use kapl_runtime::protocol::MAX_LINE;
use std::io::{BufRead, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the server tells its client about itself.
const INSTRUCTIONS: &str = "Commands run with the `run` tool execute inside a KAPL session, confined to the current step of its plan: only what the step's grants name may be read, written, executed or connected to. A denial is reported in the result's `decisions` with the object, the operation and the grant chain behind it (nearest grant, step, plan, objective); it is not a tool error. To get more authority, move to a later step with `step`, or propose a plan with `propose_plan`; `explain_denials` explains recent denials.";

/// How long the pipes are drained after the command's exit (a process it
/// left in the background may hold them).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

/// How long the pipes are drained after a timeout closed the connection
/// (the supervisor kills the command's cgroup).
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(2);

/// `kapl-run mcp`: serves stdin until it ends.
pub fn serve(session: Option<&str>) -> Result<i32, RunError> {
    let io = |what| move |source| SessionError::Io { what, source };
    let mut server = Server::new("kapl-run", env!("CARGO_PKG_VERSION"), INSTRUCTIONS);
    let mut tools = SessionTools {
        session: session.map(str::to_string),
    };
    let mut input = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(io("stdin"))?;
        if n == 0 {
            return Ok(0);
        }
        let reply = if line.len() > MAX_LINE && !line.ends_with(b"\n") {
            skip_line(&mut input).map_err(io("stdin"))?;
            Some(serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {
                "code": kapl_runtime::mcp::PARSE_ERROR,
                "message": format!("a message longer than {MAX_LINE} bytes"),
            }}))
        } else {
            server.handle_line(&line, &mut tools)
        };
        if let Some(r) = reply {
            let mut bytes = serde_json::to_vec(&r).unwrap_or_default();
            bytes.push(b'\n');
            out.write_all(&bytes).map_err(io("stdout"))?;
            out.flush().map_err(io("stdout"))?;
        }
    }
}

/// Reads past the rest of a line.
fn skip_line(input: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(p) => {
                input.consume(p + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                input.consume(n);
            }
        }
    }
}

/// The tools, carried out against a session (the one named, else
/// `KAPL_SESSION`, else the only one running: looked up at each call).
struct SessionTools {
    session: Option<String>,
}

/// A kapl-run error as a tool failure.
fn failure(e: &RunError) -> ToolResult {
    ToolResult::error(e.code(), &e.to_string(), e.help().as_deref())
}

/// A session's final reply as a tool result.
fn message_result(r: Reply) -> ToolResult {
    match r {
        Reply::Ok { message } => ToolResult::ok(
            &MessageOutput {
                message: message.clone(),
            },
            message,
        ),
        Reply::Error {
            code,
            message,
            help,
            ..
        } => ToolResult::error(Some(&code), &message, help.as_deref()),
        other => ToolResult::error(None, &format!("unexpected reply {other:?}"), None),
    }
}

impl Tools for SessionTools {
    fn call(&mut self, call: ToolCall) -> ToolResult {
        let session = self.session.as_deref();
        match call {
            ToolCall::Run(r) => match run(session, &r) {
                Ok(o) => {
                    let text = o.text();
                    ToolResult::ok(&o, text)
                }
                Err(e) => failure(&e),
            },
            ToolCall::Status => {
                client::ask(session, &Request::Status).map_or_else(|e| failure(&e), message_result)
            }
            ToolCall::Step(s) => client::ask(session, &Request::Step { name: s.name })
                .map_or_else(|e| failure(&e), message_result),
            ToolCall::ProposePlan(p) => subprocess(
                session,
                &["plan", "propose"],
                &["--format", "json", "-"],
                p.text.as_bytes(),
                true,
            ),
            ToolCall::ExplainDenials(e) => subprocess(
                session,
                &["explain"],
                &["--format", "json", "--last", &e.last.to_string()],
                b"",
                false,
            ),
        }
    }
}

/// Runs `kapl-run SUB --session ID ARGS` (the program: `KAPL_RUN_SELF`,
/// else this executable) with `stdin`, and relays the JSON object it
/// prints. Exit 0 is a result; so is exit 1 when `refusal_is_result`
/// (a plan refused with diagnostics); anything else is a failure.
fn subprocess(
    session: Option<&str>,
    sub: &[&str],
    args: &[&str],
    stdin: &[u8],
    refusal_is_result: bool,
) -> ToolResult {
    let id = match client::find_session(session) {
        Ok(id) => id,
        Err(e) => return failure(&e.into()),
    };
    let program = match std::env::var_os("KAPL_RUN_SELF") {
        Some(p) => p.into(),
        None => match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => return ToolResult::error(None, &format!("this executable: {e}"), None),
        },
    };
    let what = format!("kapl-run {}", sub.join(" "));
    let child = Command::new(&program)
        .args(sub)
        .args(["--session", &id])
        .args(args)
        .env_remove("KAPL_SESSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return ToolResult::error(
                None,
                &format!("cannot run {what} ({}): {e}", program.display()),
                None,
            );
        }
    };
    // Written from a thread: a child that prints before it has read all
    // of its stdin must not deadlock against this one.
    let writer = child.stdin.take().map(|mut w| {
        let data = stdin.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        })
    });
    let output = child.wait_with_output();
    if let Some(w) = writer {
        let _ = w.join();
    }
    let output = match output {
        Ok(o) => o,
        Err(e) => return ToolResult::error(None, &format!("{what}: {e}"), None),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output.status.code();
    let json: Option<serde_json::Value> = serde_json::from_slice(&output.stdout)
        .ok()
        .filter(serde_json::Value::is_object);
    match (code, json) {
        (Some(0), Some(v)) => relay(v),
        (Some(1), Some(v)) if refusal_is_result => relay(v),
        (code, _) => {
            let status = code.map_or_else(|| "a signal".to_string(), |c| format!("status {c}"));
            ToolResult::error(
                None,
                &format!("{what} ended with {status}: {}", stderr.trim()),
                None,
            )
        }
    }
}

/// A subprocess's JSON object as the result, and as its text.
fn relay(v: serde_json::Value) -> ToolResult {
    let text = serde_json::to_string_pretty(&v).unwrap_or_default();
    ToolResult::ok(&v, text)
}

/// The `run` tool: the command in the session, its output captured.
fn run(session: Option<&str>, r: &RunInput) -> Result<RunOutput, RunError> {
    let io = |what| move |source| SessionError::Io { what, source };
    let cwd = match &r.cwd {
        Some(c) => c.clone().into_bytes(),
        None => std::env::current_dir()
            .map_err(io("cwd"))?
            .into_os_string()
            .into_vec(),
    };
    let stdin = sys::sealed_memfd(
        "kapl-run-stdin",
        r.stdin.as_deref().unwrap_or("").as_bytes(),
    )
    .map_err(io("memfd"))?;
    let (out_r, out_w) = sys::pipe_cloexec().map_err(io("pipe"))?;
    let (err_r, err_w) = sys::pipe_cloexec().map_err(io("pipe"))?;
    let sock = client::connect(session)?;
    let req = Request::Exec {
        argv: r.argv.iter().map(|a| a.clone().into_bytes()).collect(),
        env: client::env_bytes(),
        cwd,
        show_allows: true,
    };
    control::send(&sock, &req, &[stdin.as_fd(), out_w.as_fd(), err_w.as_fd()])
        .map_err(io("send"))?;
    // Only the command holds the write ends now: its exit is their EOF.
    drop((stdin, out_w, err_w));

    let mut sock = Some(sock);
    let mut pipes = [
        Some(std::fs::File::from(out_r)),
        Some(std::fs::File::from(err_r)),
    ];
    let mut captures = [Capture::new(OUTPUT_LIMIT), Capture::new(OUTPUT_LIMIT)];
    let mut reader = LineReader::default();
    let mut decisions = Decisions::default();
    let mut exit: Option<i32> = None;
    let mut refused: Option<String> = None;
    let mut cut_off = false;
    let mut timed_out = false;
    let deadline = Instant::now() + Duration::from_millis(r.timeout_ms);
    let mut drain_until: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    while sock.is_some() || pipes.iter().any(Option::is_some) {
        let now = Instant::now();
        let until = drain_until.unwrap_or(deadline);
        if now >= until {
            if drain_until.is_some() {
                break;
            }
            // Out of time: the supervisor kills a command whose client
            // goes away.
            timed_out = true;
            sock = None;
            drain_until = Some(now + DRAIN_AFTER_KILL);
            continue;
        }
        let wait = i32::try_from((until - now).as_millis())
            .unwrap_or(i32::MAX)
            .max(1);
        let ready = {
            let mut fds: Vec<BorrowedFd<'_>> = Vec::with_capacity(3);
            fds.extend(sock.as_ref().map(AsFd::as_fd));
            fds.extend(pipes.iter().flatten().map(AsFd::as_fd));
            sys::poll(&fds, wait).map_err(io("poll"))?
        };
        let mut ready = ready.into_iter();
        if sock.is_some() && ready.next() == Some(true) {
            let closed = match sock.as_ref().map(|s| reader.fill(s)) {
                Some(Ok(())) => reader.eof,
                _ => true,
            };
            while let Some(line) = reader.line() {
                match serde_json::from_slice::<Reply>(&line) {
                    Ok(Reply::Notice { line, record }) => decisions.push(line, record.map(|r| *r)),
                    Ok(Reply::Exit { code }) => exit = Some(code),
                    Ok(Reply::Error {
                        code,
                        message,
                        help,
                        exit: status,
                    }) => {
                        let e = crate::error::ErrorJson {
                            code: Some(code),
                            message,
                            help,
                            exit: status,
                        };
                        refused = Some(e.human());
                        exit = Some(status);
                    }
                    Ok(Reply::Ok { message }) => {
                        decisions.push(message, None);
                        exit = Some(0);
                    }
                    Err(e) => {
                        decisions.push(format!("kapl-run: bad reply from the session: {e}"), None)
                    }
                }
            }
            if exit.is_some() || closed {
                cut_off = exit.is_none();
                sock = None;
                drain_until = Some(Instant::now() + DRAIN_AFTER_EXIT);
            }
        }
        for (i, pipe) in pipes.iter_mut().enumerate() {
            if pipe.is_none() || ready.next() != Some(true) {
                continue;
            }
            match pipe.as_ref().map(|mut f| f.read(&mut buf)) {
                Some(Ok(0)) | Some(Err(_)) | None => *pipe = None,
                Some(Ok(n)) => captures[i].push(&buf[..n]),
            }
        }
    }
    if cut_off && !timed_out {
        return Err(SessionError::Protocol(
            "the session closed the connection before the command's exit status (was it stopped?)"
                .into(),
        )
        .into());
    }
    let [out, err] = captures;
    let (stdout, stdout_truncated) = out.finish();
    let (mut stderr, stderr_truncated) = err.finish();
    if let Some(r) = refused {
        if !stderr.is_empty() && !stderr.ends_with('\n') {
            stderr.push('\n');
        }
        stderr.push_str(&r);
        stderr.push('\n');
    }
    Ok(RunOutput {
        exit: if timed_out {
            EXIT_TIMED_OUT
        } else {
            exit.unwrap_or(EXIT_TIMED_OUT)
        },
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
        timed_out,
        decisions: decisions.records,
        decisions_omitted: decisions.omitted,
        notices: decisions.notices,
    })
}
