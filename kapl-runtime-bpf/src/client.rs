//! The client side of a session: `session start` (fork the supervisor and
//! wait until it serves), `exec`, `step`, `status`, `session stop`
//! (stage: runtime, sessions).

use crate::cli::{ErrorFormat, StartArgs};
use crate::control::{self, LineReader, Reply, Request};
use crate::error::{ErrorJson, RunError, SessionError};
use crate::session::revision::Pinned;
use crate::session::{Mode, Session, StartOptions};
use crate::{supervisor, sys};
use kapl_runtime::proc_cgroup;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

/// Loads and verifies an image file.
pub fn load_image(path: &Path) -> Result<kapl_image::Image, RunError> {
    use crate::error::ImageLoadError;
    let bytes = std::fs::read(path).map_err(|source| ImageLoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(
        kapl_image::read(&bytes).map_err(|source| ImageLoadError::Verify {
            path: path.to_path_buf(),
            source,
        })?,
    )
}

/// The enforcement mode asked for (full needs root).
pub fn mode(unprivileged: bool) -> Result<Mode, RunError> {
    if unprivileged {
        eprintln!(
            "kapl-run: --unprivileged: Landlock alone. Lost: UDP and per-address network precision (only TCP ports are enforced), network provenance and exec/denial reports, cgroup kill at step switch (process-group kill instead)."
        );
        return Ok(Mode::Unprivileged);
    }
    if sys::geteuid() != 0 {
        return Err(crate::bpf::BpfError::NotRoot.into());
    }
    Ok(Mode::Full)
}

/// The environment a command gets (the caller's, without `KAPL_SESSION`).
pub fn env_bytes() -> Vec<Vec<u8>> {
    std::env::vars_os()
        .filter(|(k, _)| k != "KAPL_SESSION")
        .map(|(k, v)| {
            let mut e = k.into_vec();
            e.push(b'=');
            e.extend_from_slice(&v.into_vec());
            e
        })
        .collect()
}

fn new_id() -> String {
    let mut b = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `kapl-run session start`: forks the supervisor, waits until it serves
/// (or says why it cannot), prints the session id.
pub fn start(o: &StartArgs, fmt: ErrorFormat) -> Result<i32, RunError> {
    let m = mode(o.enforce.unprivileged)?;
    let bytes = std::fs::read(&o.image).map_err(|source| crate::error::ImageLoadError::Read {
        path: o.image.clone(),
        source,
    })?;
    let img = kapl_image::read(&bytes).map_err(|source| crate::error::ImageLoadError::Verify {
        path: o.image.clone(),
        source,
    })?;
    let pin = pin(o, &img, bytes)?;
    let id = new_id();
    let (rd, wr) = sys::pipe_cloexec().map_err(|source| SessionError::Io {
        what: "pipe",
        source,
    })?;
    // SAFETY: kapl-run has started no thread (clap, the image reader and
    // the checks above run on the main thread only).
    let forked = unsafe { sys::fork() }.map_err(|source| SessionError::Io {
        what: "fork",
        source,
    })?;
    if forked == sys::Forked::Child {
        drop(rd);
        supervise(img, pin, o, m, &id, wr);
        sys::exit_now(0);
    }
    drop(wr);
    let mut msg = Vec::new();
    let _ = std::fs::File::from(rd).read_to_end(&mut msg);
    let text = String::from_utf8_lossy(&msg);
    if let Some(rest) = text.strip_prefix("ok\n") {
        eprint!("{rest}");
        println!("{id}");
        return Ok(0);
    }
    // The supervisor could not start: its error, as JSON.
    let e = serde_json::from_str::<ErrorJson>(text.trim()).unwrap_or_else(|_| {
        RunError::from(SessionError::Protocol(
            "the supervisor ended before it could serve".into(),
        ))
        .to_json()
    });
    e.print(fmt);
    Ok(e.exit)
}

/// What `session start` pins: nothing for a plan image (`--plan`), the
/// objective (and intent) for an objective image.
fn pin(o: &StartArgs, img: &kapl_image::Image, bytes: Vec<u8>) -> Result<Option<Pinned>, RunError> {
    let objective_image = img.objective.is_some() && img.plans.is_empty();
    if !objective_image {
        if o.objective.is_some() || o.intent.is_some() {
            return Err(RunError::Usage(format!(
                "{} is a plan image: --objective and --intent pin a session to an objective image (build one with `kaplc build` of the objectives alone)",
                o.image.display()
            )));
        }
        if o.plan.is_none() {
            return Err(RunError::Usage(format!(
                "{} is a plan image: name the plan to enforce with --plan NAME",
                o.image.display()
            )));
        }
        return Ok(None);
    }
    if o.plan.is_some() || o.enforce.step.is_some() {
        return Err(RunError::Usage(format!(
            "{} is an objective image: it holds no plans; start with --objective NAME, then load plans with `kapl-run plan propose` or `plan load`",
            o.image.display()
        )));
    }
    let file = o.image.file_name().map_or_else(
        || o.image.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(Some(Pinned::new(
        img.clone(),
        bytes,
        file,
        o.objective.as_deref(),
        o.intent.as_deref(),
    )?))
}

/// The forked supervisor: starts the session, says `ok` (or the error as
/// JSON) on `ready`, detaches, serves.
fn supervise(
    img: kapl_image::Image,
    pin: Option<Pinned>,
    o: &StartArgs,
    mode: Mode,
    id: &str,
    ready: OwnedFd,
) {
    let mut ready = std::fs::File::from(ready);
    let _ = sys::setsid();
    let fail = |ready: &mut std::fs::File, e: RunError| {
        let _ = writeln!(
            ready,
            "{}",
            serde_json::to_string(&e.to_json()).unwrap_or_default()
        );
    };
    let opts = StartOptions {
        plan: o.plan.as_deref().unwrap_or(""),
        step: o.enforce.step.as_deref(),
        audit: o.enforce.audit.as_deref(),
        mode,
        id,
        otlp: o.enforce.otlp.as_deref(),
        resolver: o.enforce.resolver,
        min_abi: o.enforce.min_abi,
    };
    let session = match Session::start(img, opts, pin) {
        Ok(s) => s,
        Err(e) => return fail(&mut ready, e),
    };
    let listener = match control::listen(&control::socket_name(sys::getuid(), id)) {
        Ok(l) => l,
        Err(err) => {
            fail(&mut ready, SessionError::Listen(err).into());
            let _ = session.stop();
            return;
        }
    };
    let reg = control::registry_dir();
    let _ = std::fs::create_dir_all(&reg);
    let _ = std::fs::write(reg.join(id), format!("{}\n", std::process::id()));
    crate::report::remember(id, o.enforce.audit.as_deref(), &o.image);
    let mut msg = match session.pinned() {
        Some(p) => format!(
            "ok\nkapl-run: session {id}: objective {}{} ({}), no plan loaded: load one with `kapl-run plan propose PLAN.kapl`\n",
            p.objective_name(),
            p.intent_name()
                .map_or_else(String::new, |i| format!(", intent {i}")),
            p.file
        ),
        None => format!(
            "ok\nkapl-run: session {id}: plan {}, step {}\n",
            session.plan_name(),
            session.step_name()
        ),
    };
    for l in session.level_report() {
        msg.push_str(&format!("kapl-run: kernel: {l}\n"));
    }
    msg.push_str(&format!(
        "kapl-run: precision layer: {}\n",
        session.lsm_report()
    ));
    for l in session.precision() {
        msg.push_str(&format!("kapl-run: precision: {l}\n"));
    }
    let _ = ready.write_all(msg.as_bytes());
    drop(ready);
    supervisor::detach_stdio();
    supervisor::serve(session, listener, reg);
}

/// The session to talk to: named, else `KAPL_SESSION`, else the only one
/// running (registry entries of dead supervisors are removed).
pub fn find_session(explicit: Option<&str>) -> Result<String, SessionError> {
    if let Some(s) = explicit {
        return Ok(s.to_string());
    }
    if let Some(s) = std::env::var_os("KAPL_SESSION") {
        return Ok(s.to_string_lossy().into_owned());
    }
    let reg = control::registry_dir();
    let mut live = Vec::new();
    for e in std::fs::read_dir(&reg).into_iter().flatten().flatten() {
        let pid: i32 = std::fs::read_to_string(e.path())
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if pid > 0 && sys::process_exists(pid) {
            live.push(e.file_name().to_string_lossy().into_owned());
        } else {
            let _ = std::fs::remove_file(e.path());
        }
    }
    match live.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(SessionError::NoSession),
        many => Err(SessionError::Several(many.to_vec())),
    }
}

/// Connects to a session's supervisor, after checking who answers:
/// abstract socket names are anyone's to take, so nothing (not the
/// request, not this client's stdio) is sent to a peer of another user or
/// inside any session.
pub fn connect(explicit: Option<&str>) -> Result<OwnedFd, SessionError> {
    let id = find_session(explicit)?;
    let uid = sys::getuid();
    let fd = control::connect(&control::socket_name(uid, &id)).map_err(|source| {
        // Nobody listens: the supervisor ended or was killed (its watchdog
        // then ended the session's commands). Forget its registry entry.
        if matches!(
            source.raw_os_error(),
            Some(libc::ECONNREFUSED | libc::ENOENT)
        ) {
            let _ = std::fs::remove_file(control::registry_dir().join(&id));
            SessionError::NotRunning {
                id: id.clone(),
                source,
            }
        } else {
            SessionError::Unreachable {
                id: id.clone(),
                source,
            }
        }
    })?;
    match control::peer(&fd) {
        Ok((pid, puid)) if puid == uid && !in_any_session(pid) => Ok(fd),
        Ok((pid, _)) => Err(SessionError::Impostor { id, pid }),
        Err(source) => Err(SessionError::PeerCheck { id, source }),
    }
}

/// Whether `pid` runs inside any kapl-run session; unreadable counts as
/// inside.
fn in_any_session(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_or(true, |t| proc_cgroup::in_any_session(&t))
}

/// Reads replies until the last one; returns the exit status.
fn read_replies(fd: &OwnedFd, fmt: ErrorFormat) -> Result<i32, RunError> {
    let mut r = LineReader::default();
    loop {
        while let Some(line) = r.line() {
            let reply: Reply = serde_json::from_slice(&line)
                .map_err(|e| SessionError::Protocol(format!("bad reply: {e}")))?;
            match reply {
                Reply::Notice { line, .. } => eprintln!("{line}"),
                Reply::Exit { code } => return Ok(code),
                last => {
                    return Ok(match ok_message(last, fmt)? {
                        Ok(message) => {
                            println!("{message}");
                            0
                        }
                        Err(exit) => exit,
                    });
                }
            }
        }
        if r.eof {
            return Err(SessionError::Protocol("the session closed the connection".into()).into());
        }
        r.fill(fd).map_err(|source| SessionError::Io {
            what: "read",
            source,
        })?;
    }
}

/// Sends `req` (no descriptors) to a session and returns its last reply
/// (`Ok` or `Error`), notices skipped: `status` and `step` for callers
/// that are not a terminal (the MCP server, the hook).
pub fn ask(session: Option<&str>, req: &Request) -> Result<Reply, RunError> {
    request_with_fds_sending(session, req, &[]).map(|(reply, _)| reply)
}

/// Sends `req` (with `fds`) to a session and relays its replies.
pub fn request(
    session: Option<&str>,
    req: &Request,
    fds: &[std::os::fd::BorrowedFd<'_>],
    fmt: ErrorFormat,
) -> Result<i32, RunError> {
    let fd = connect(session)?;
    control::send(&fd, req, fds).map_err(|source| SessionError::Io {
        what: "send",
        source,
    })?;
    read_replies(&fd, fmt)
}

/// `kapl-run exec`: the command runs in the session with this client's
/// stdin, stdout and stderr.
pub fn exec(
    session: Option<&str>,
    command: &[OsString],
    show_allows: bool,
    fmt: ErrorFormat,
) -> Result<i32, RunError> {
    let cwd = std::env::current_dir().map_err(|source| SessionError::Io {
        what: "cwd",
        source,
    })?;
    let req = Request::Exec {
        argv: command.iter().map(|a| a.clone().into_vec()).collect(),
        env: env_bytes(),
        cwd: cwd.into_os_string().into_vec(),
        show_allows,
    };
    let (i, o, e) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    request(session, &req, &[i.as_fd(), o.as_fd(), e.as_fd()], fmt)
}

/// Sends `req` with the descriptors of `files` and returns the reply that
/// ends the exchange (notices skipped) with the descriptors that came with
/// it.
pub fn request_with_fds_sending(
    session: Option<&str>,
    req: &Request,
    files: &[&std::fs::File],
) -> Result<(Reply, Vec<OwnedFd>), RunError> {
    let fd = connect(session)?;
    let fds: Vec<std::os::fd::BorrowedFd<'_>> = files.iter().map(|f| f.as_fd()).collect();
    control::send(&fd, req, &fds).map_err(|source| SessionError::Io {
        what: "send",
        source,
    })?;
    let mut r = LineReader::default();
    loop {
        while let Some(line) = r.line() {
            let reply: Reply = serde_json::from_slice(&line)
                .map_err(|e| SessionError::Protocol(format!("bad reply: {e}")))?;
            if !matches!(reply, Reply::Notice { .. }) {
                return Ok((reply, std::mem::take(&mut r.fds)));
            }
        }
        if r.eof {
            return Err(SessionError::Protocol("the session closed the connection".into()).into());
        }
        r.fill(&fd).map_err(|source| SessionError::Io {
            what: "read",
            source,
        })?;
    }
}

/// The message of an `ok` reply, or the exit status after printing an
/// error reply (as kapl-run prints its own errors).
pub fn ok_message(reply: Reply, fmt: ErrorFormat) -> Result<Result<String, i32>, RunError> {
    match reply {
        Reply::Ok { message } => Ok(Ok(message)),
        Reply::Error {
            code,
            message,
            help,
            exit,
        } => {
            ErrorJson {
                code: Some(code),
                message,
                help,
                exit,
            }
            .print(fmt);
            Ok(Err(exit))
        }
        _ => Err(SessionError::Protocol("unexpected reply".into()).into()),
    }
}

/// Sends `req` and returns the one reply with its descriptors.
pub fn request_with_fds(
    session: Option<&str>,
    req: &Request,
) -> Result<(Reply, Vec<OwnedFd>), RunError> {
    request_with_fds_sending(session, req, &[])
}

/// `kapl-run plan load`: the image file, opened here (with the caller's
/// authority), goes to the supervisor as a descriptor.
pub fn plan_load(
    session: Option<&str>,
    image: &Path,
    plan: Option<String>,
    step: Option<String>,
    fmt: ErrorFormat,
) -> Result<i32, RunError> {
    let f = std::fs::File::open(image).map_err(|source| crate::error::ImageLoadError::Read {
        path: image.to_path_buf(),
        source,
    })?;
    let req = Request::Load {
        file: image.file_name().map_or_else(
            || image.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        plan,
        step,
    };
    let fd = connect(session)?;
    control::send(&fd, &req, &[f.as_fd()]).map_err(|source| SessionError::Io {
        what: "send",
        source,
    })?;
    read_replies(&fd, fmt)
}

/// `kapl-run explain`: the latest denials, each with the smallest grant
/// that would allow it and the pinned objective's verdict on that grant.
pub fn explain(
    session: Option<&str>,
    last: u32,
    json: bool,
    fmt: ErrorFormat,
) -> Result<i32, RunError> {
    let (reply, _) = request_with_fds(session, &Request::Explain { last })?;
    let message = match ok_message(reply, fmt)? {
        Ok(m) => m,
        Err(exit) => return Ok(exit),
    };
    let items: Vec<serde_json::Value> = serde_json::from_str(&message)
        .map_err(|e| SessionError::Protocol(format!("bad explain reply: {e}")))?;
    if json {
        println!("{}", serde_json::json!({ "denials": items }));
        return Ok(0);
    }
    if items.is_empty() {
        println!("no denials so far");
    }
    for it in &items {
        let rec = &it["record"];
        let denied = format!(
            "{} {} {}",
            rec["comm"].as_str().unwrap_or("?"),
            rec["operation"].as_str().unwrap_or("?"),
            rec["object"].as_str().unwrap_or("?")
        );
        println!(
            "{} step {}: denied {denied}",
            rec["time"].as_str().unwrap_or(""),
            rec["step"].as_str().unwrap_or("?")
        );
        match it.get("explanation").filter(|e| !e.is_null()) {
            Some(e) => {
                println!("  smallest grant: {}", e["grant"].as_str().unwrap_or("?"));
                println!(
                    "  objective: {} — {}",
                    e["verdict"].as_str().unwrap_or("?"),
                    e["why"].as_str().unwrap_or("")
                );
            }
            None => println!("  no grant can name this request (a refused socket or system call)"),
        }
    }
    Ok(0)
}
