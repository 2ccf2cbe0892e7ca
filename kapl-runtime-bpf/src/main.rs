//! `kapl-run`: enforce a plan's steps on the real kernel.
//!
//! ```text
//! kapl-run session start IMAGE --plan NAME [--step S] [--audit FILE] [--unprivileged]
//! kapl-run exec [--session ID] [--show-allows] -- CMD [ARGS...]
//! kapl-run step [--session ID] NAME
//! kapl-run session stop [--session ID]
//! kapl-run IMAGE --plan NAME [--step S] [--audit FILE] [--unprivileged] [--show-allows] -- CMD
//! ```
//!
//! Links kapl-image (pure) and the runtime library only: never Z3 or the
//! compiler.

use kapl_runtime_bpf::control::{self, LineReader, Reply, Request};
use kapl_runtime_bpf::engine::{Engine, Mode, RunError};
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage:
  kapl-run session start IMAGE --plan NAME [--step S] [--audit FILE] [--unprivileged]
  kapl-run exec [--session ID] [--show-allows] -- CMD [ARGS...]
  kapl-run step [--session ID] NAME
  kapl-run session stop [--session ID]
  kapl-run IMAGE --plan NAME [--step S] [--audit FILE] [--unprivileged] [--show-allows] -- CMD [ARGS...]";

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let args: Vec<Vec<u8>> = args.into_iter().map(OsStringExt::into_vec).collect();
    match run(&args) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(RunError::Denied(line)) => {
            eprintln!("{line}");
            ExitCode::from(126)
        }
        Err(e) => {
            eprintln!("kapl-run: error[{}]", e);
            ExitCode::from(125)
        }
    }
}

#[derive(Default)]
struct Opts {
    plan: Option<String>,
    step: Option<String>,
    audit: Option<PathBuf>,
    session: Option<String>,
    unprivileged: bool,
    show_allows: bool,
    positional: Vec<Vec<u8>>,
    command: Vec<Vec<u8>>,
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn parse(args: &[Vec<u8>]) -> Result<Opts, RunError> {
    let mut o = Opts::default();
    let mut i = 0;
    let need = |i: usize, name: &str| -> Result<String, RunError> {
        args.get(i + 1)
            .map(|v| s(v))
            .ok_or_else(|| RunError::Session(format!("KAPL0001 {name} needs a value\n{USAGE}")))
    };
    while i < args.len() {
        match args[i].as_slice() {
            b"--" => {
                o.command = args[i + 1..].to_vec();
                break;
            }
            b"--plan" => {
                o.plan = Some(need(i, "--plan")?);
                i += 1;
            }
            b"--step" => {
                o.step = Some(need(i, "--step")?);
                i += 1;
            }
            b"--audit" => {
                o.audit = Some(PathBuf::from(need(i, "--audit")?));
                i += 1;
            }
            b"--session" => {
                o.session = Some(need(i, "--session")?);
                i += 1;
            }
            b"--unprivileged" => o.unprivileged = true,
            b"--show-allows" => o.show_allows = true,
            b"-h" | b"--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            a if a.starts_with(b"--") => {
                return Err(RunError::Session(format!(
                    "unknown option `{}`\n{USAGE}",
                    s(a)
                )));
            }
            a => o.positional.push(a.to_vec()),
        }
        i += 1;
    }
    Ok(o)
}

fn run(args: &[Vec<u8>]) -> Result<i32, RunError> {
    let first = args.first().map(Vec::as_slice);
    match first {
        Some(b"session") => match args.get(1).map(Vec::as_slice) {
            Some(b"start") => session_start(parse(&args[2..])?),
            Some(b"stop") => {
                let o = parse(&args[2..])?;
                client_simple(o.session.as_deref(), &Request::Stop)
            }
            _ => Err(RunError::Session(format!(
                "expected `session start` or `session stop`\n{USAGE}"
            ))),
        },
        Some(b"exec") => client_exec(parse(&args[1..])?),
        Some(b"step") => {
            let o = parse(&args[1..])?;
            let [name] = o.positional.as_slice() else {
                return Err(RunError::Session(format!(
                    "`step` takes one step name\n{USAGE}"
                )));
            };
            client_simple(o.session.as_deref(), &Request::Step { name: s(name) })
        }
        Some(b"status") => {
            let o = parse(&args[1..])?;
            client_simple(o.session.as_deref(), &Request::Status)
        }
        Some(_) => one_shot(parse(args)?),
        None => Err(RunError::Session(USAGE.to_string())),
    }
}

fn load_image(path: &[u8]) -> Result<kapl_image::Image, RunError> {
    let p = Path::new(std::ffi::OsStr::from_bytes(path));
    let bytes = std::fs::read(p)
        .map_err(|e| RunError::Image(format!("cannot read image {}: {e}", p.display())))?;
    kapl_image::read(&bytes).map_err(|e| {
        RunError::Image(format!(
            "image {} fails verification: {} {e}; rebuild it with `kaplc build`",
            p.display(),
            e.code()
        ))
    })
}

fn mode(o: &Opts) -> Result<Mode, RunError> {
    if o.unprivileged {
        eprintln!(
            "kapl-run: --unprivileged: Landlock alone. Lost: UDP and per-address network precision (only TCP ports are enforced), network provenance and exec/denial reports, cgroup kill at step switch (process-group kill instead)."
        );
        return Ok(Mode::Unprivileged);
    }
    // SAFETY: geteuid never fails.
    if unsafe { libc::geteuid() } != 0 {
        return Err(RunError::Bpf(
            "kapl-run needs root for cgroup BPF network enforcement and audit; run it as root, or pass --unprivileged for Landlock alone".into(),
        ));
    }
    Ok(Mode::Full)
}

fn print_start(e: &Engine) {
    eprintln!("kapl-run: plan {}, step {}", e.plan_name(), e.step_name());
    if std::env::var_os("KAPL_VERBOSE").is_some() {
        for r in e.rule_list() {
            eprintln!("kapl-run: rule: {r}");
        }
    }
    for l in e.precision() {
        eprintln!("kapl-run: precision: {l}");
    }
}

fn new_id() -> String {
    let mut b = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn env_bytes() -> Vec<Vec<u8>> {
    std::env::vars_os()
        .filter(|(k, _)| k != "KAPL_SESSION")
        .map(|(k, v)| {
            let mut e = k.into_vec();
            e.push(b'=');
            e.extend_from_slice(v.as_bytes());
            e
        })
        .collect()
}

fn poll_fds(fds: &[RawFd], timeout_ms: i32) -> Vec<bool> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: *fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: poll over our array.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    if r <= 0 {
        return vec![false; fds.len()];
    }
    p.iter().map(|x| x.revents != 0).collect()
}

fn one_shot(o: Opts) -> Result<i32, RunError> {
    let [image] = o.positional.as_slice() else {
        return Err(RunError::Session(format!("expected one IMAGE\n{USAGE}")));
    };
    if o.command.is_empty() {
        return Err(RunError::Session(format!("no command after `--`\n{USAGE}")));
    }
    let plan = o
        .plan
        .clone()
        .ok_or_else(|| RunError::Session(format!("--plan is required\n{USAGE}")))?;
    let m = mode(&o)?;
    let img = load_image(image)?;
    let id = format!("oneshot-{}", std::process::id());
    let mut e = Engine::start(img, &plan, o.step.as_deref(), o.audit.as_deref(), m, &id)?;
    print_start(&e);
    let cwd = std::env::current_dir()
        .ok()
        .map(|p| p.into_os_string().into_vec());
    let cmd = match e.spawn(&o.command, &env_bytes(), cwd.as_deref(), [0, 1, 2]) {
        Ok(c) => c,
        Err(err) => {
            let _ = e.stop();
            return Err(err);
        }
    };
    let pidfd = e.pidfd(cmd).unwrap_or(-1);
    let lost_before = e.lost();
    let code;
    loop {
        let mut fds = vec![pidfd];
        fds.extend(e.event_fds());
        let ready = poll_fds(&fds, 100);
        show(&mut e, false, o.show_allows);
        if ready.first().copied().unwrap_or(false) {
            code = e.reap(cmd).unwrap_or(1);
            break;
        }
    }
    // Audit records arrive asynchronously: wait for all of them (barrier).
    for n in e.sync() {
        if n.deny || o.show_allows {
            eprintln!("{}", n.line);
        }
    }
    if let Some(line) = loss_notice(lost_before, e.lost()) {
        eprintln!("{line}");
    }
    let summary = e.stop();
    if std::env::var_os("KAPL_VERBOSE").is_some() {
        eprintln!("kapl-run: {summary}");
    }
    Ok(code)
}

/// The line a command's stderr gets when decision events were lost while
/// it ran: its report of denials is then incomplete, and says so.
fn loss_notice(before: u64, now: u64) -> Option<String> {
    (now > before).then(|| {
        format!(
            "kapl-run: {} decision events were lost while this command ran (kernel buffers full, or the audit file could not be written; a denial is up to 4 audit records); the denials above and in the audit file are incomplete",
            now - before
        )
    })
}

fn show(e: &mut Engine, flush: bool, allows: bool) {
    for n in e.pump(flush) {
        if n.deny || allows {
            eprintln!("{}", n.line);
        }
    }
}

// ---- sessions ----

fn session_start(o: Opts) -> Result<i32, RunError> {
    let [image] = o.positional.as_slice() else {
        return Err(RunError::Session(format!("expected one IMAGE\n{USAGE}")));
    };
    let plan = o
        .plan
        .clone()
        .ok_or_else(|| RunError::Session(format!("--plan is required\n{USAGE}")))?;
    let m = mode(&o)?;
    let img = load_image(image)?;
    let id = new_id();
    let mut pipe = [0 as RawFd; 2];
    // SAFETY: pipe2 into our array.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(RunError::Session(format!(
            "pipe: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: both fds are fresh and ours.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
    // SAFETY: fork while single-threaded (nothing has started a thread).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(RunError::Session(format!(
            "fork: {}",
            std::io::Error::last_os_error()
        )));
    }
    if pid == 0 {
        drop(rd);
        let code = supervisor(img, &plan, &o, m, &id, wr);
        std::process::exit(code);
    }
    drop(wr);
    let mut msg = Vec::new();
    let mut f = std::fs::File::from(rd);
    use std::io::Read;
    let _ = f.read_to_end(&mut msg);
    let text = s(&msg);
    if let Some(rest) = text.strip_prefix("ok\n") {
        eprint!("{rest}");
        println!("{id}");
        Ok(0)
    } else {
        eprint!("{text}");
        Ok(125)
    }
}

struct Client {
    fd: OwnedFd,
    reader: LineReader,
    cmd: Option<u64>,
    show_allows: bool,
    /// `Engine::lost` when its command started.
    lost_before: u64,
}

fn supervisor(
    img: kapl_image::Image,
    plan: &str,
    o: &Opts,
    m: Mode,
    id: &str,
    ready: OwnedFd,
) -> i32 {
    let mut ready = std::fs::File::from(ready);
    // SAFETY: setsid in the fresh child.
    unsafe { libc::setsid() };
    let mut e = match Engine::start(img, plan, o.step.as_deref(), o.audit.as_deref(), m, id) {
        Ok(e) => e,
        Err(err) => {
            let _ = writeln!(ready, "kapl-run: error[{err}]");
            return 1;
        }
    };
    // SAFETY: getuid never fails.
    let uid = unsafe { libc::getuid() };
    let listener = match control::listen(&control::socket_name(uid, id)) {
        Ok(l) => l,
        Err(err) => {
            let _ = writeln!(ready, "kapl-run: error[KAPL0808: control socket: {err}]");
            let _ = e.stop();
            return 1;
        }
    };
    let reg = control::registry_dir();
    let _ = std::fs::create_dir_all(&reg);
    let _ = std::fs::write(reg.join(id), format!("{}\n", std::process::id()));
    let mut msg = format!(
        "ok\nkapl-run: session {id}: plan {}, step {}\n",
        e.plan_name(),
        e.step_name()
    );
    for l in e.precision() {
        msg.push_str(&format!("kapl-run: precision: {l}\n"));
    }
    let _ = ready.write_all(msg.as_bytes());
    drop(ready);
    // Detach stdio.
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for t in 0..3 {
            // SAFETY: dup2 onto our stdio.
            unsafe { libc::dup2(null.as_raw_fd(), t) };
        }
    }
    let mut clients: HashMap<u64, Client> = HashMap::new();
    let mut next = 0u64;
    let mut stopping: Option<u64> = None;
    loop {
        let mut fds = vec![listener.as_raw_fd()];
        let ev = e.event_fds();
        fds.extend(&ev);
        let mut keys = Vec::new();
        for (k, c) in &clients {
            fds.push(c.fd.as_raw_fd());
            keys.push((*k, false));
            if let Some(cmd) = c.cmd
                && let Some(p) = e.pidfd(cmd)
            {
                fds.push(p);
                keys.push((*k, true));
            }
        }
        let ready = poll_fds(&fds, 100);
        // Decisions first, routed to their command's client.
        route(&mut e, &clients);
        if ready.first().copied().unwrap_or(false)
            && let Ok(fd) = control::accept(&listener)
        {
            let ok = match control::peer(&fd) {
                Ok((pid, puid)) => puid == uid && !in_session(pid, id),
                Err(_) => false,
            };
            if ok {
                next += 1;
                clients.insert(
                    next,
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
        let base = 1 + ev.len();
        for (i, (k, is_pid)) in keys.iter().enumerate() {
            if !ready.get(base + i).copied().unwrap_or(false) {
                continue;
            }
            if *is_pid {
                let code = clients
                    .get(k)
                    .and_then(|c| c.cmd)
                    .and_then(|cmd| e.reap(cmd))
                    .unwrap_or(1);
                deliver(e.sync(), &clients);
                if let Some(c) = clients.remove(k) {
                    if let Some(cmd) = c.cmd {
                        e.forget(cmd);
                    }
                    if let Some(line) = loss_notice(c.lost_before, e.lost()) {
                        let _ = control::send(c.fd.as_raw_fd(), &Reply::Notice { line }, &[]);
                    }
                    let _ = control::send(c.fd.as_raw_fd(), &Reply::Exit { code }, &[]);
                }
                continue;
            }
            let Some(c) = clients.get_mut(k) else {
                continue;
            };
            if c.reader.fill(c.fd.as_raw_fd()).is_err() || c.reader.eof {
                // The client went away (killed, timed out): its command
                // goes with it.
                if let Some(cmd) = c.cmd {
                    e.kill_cmd(cmd);
                    let _ = e.reap(cmd);
                    deliver(e.sync(), &clients);
                    e.forget(cmd);
                }
                clients.remove(k);
                continue;
            }
            let Some(line) = c.reader.line() else {
                continue;
            };
            let req = Request::parse(&line);
            match req {
                Ok(Request::Exec {
                    argv,
                    env,
                    cwd,
                    show_allows,
                }) => {
                    let fds: Vec<RawFd> = c.reader.fds.iter().map(AsRawFd::as_raw_fd).collect();
                    if fds.len() != 3 || fds.iter().any(|f| control::is_inet_socket(*f)) {
                        let _ = control::send(c.fd.as_raw_fd(), &Reply::Error { message: "KAPL0808: exec needs exactly stdin, stdout and stderr, none of them an inet socket".into() }, &[]);
                        clients.remove(k);
                        continue;
                    }
                    let stdio = [fds[0], fds[1], fds[2]];
                    match e.spawn(&argv, &env, Some(&cwd), stdio) {
                        Ok(cmd) => {
                            c.cmd = Some(cmd);
                            c.lost_before = e.lost();
                            c.show_allows = show_allows;
                            c.reader.fds.clear();
                        }
                        Err(RunError::Denied(line)) => {
                            let _ = control::send(c.fd.as_raw_fd(), &Reply::Notice { line }, &[]);
                            let _ =
                                control::send(c.fd.as_raw_fd(), &Reply::Exit { code: 126 }, &[]);
                            clients.remove(k);
                        }
                        Err(err) => {
                            let _ = control::send(
                                c.fd.as_raw_fd(),
                                &Reply::Error {
                                    message: err.to_string(),
                                },
                                &[],
                            );
                            clients.remove(k);
                        }
                    }
                }
                Ok(Request::Step { name }) => {
                    let r = match e.switch(&name) {
                        Ok(n) => {
                            let mut m =
                                format!("step {name}: {n} processes of the previous step ended");
                            for l in e.precision() {
                                m.push_str(&format!("\nprecision: {l}"));
                            }
                            Reply::Ok { message: m }
                        }
                        Err(err) => Reply::Error {
                            message: err.to_string(),
                        },
                    };
                    let _ = control::send(c.fd.as_raw_fd(), &r, &[]);
                    clients.remove(k);
                }
                Ok(Request::Status) => {
                    let m = format!(
                        "session {id}: plan {}, step {}, {} denials, {}, watchdog restarted {} times",
                        e.plan_name(),
                        e.step_name(),
                        e.denies,
                        e.losses(),
                        e.watchdog_restarts()
                    );
                    let _ = control::send(c.fd.as_raw_fd(), &Reply::Ok { message: m }, &[]);
                    clients.remove(k);
                }
                Ok(Request::Stop) => {
                    stopping = Some(*k);
                    break;
                }
                Err(err) => {
                    let _ = control::send(
                        c.fd.as_raw_fd(),
                        &Reply::Error {
                            message: format!("KAPL0808: bad request: {err}"),
                        },
                        &[],
                    );
                    clients.remove(k);
                }
            }
        }
        if let Some(k) = stopping {
            route_flush(&mut e, &clients);
            let summary = e.stop();
            let _ = std::fs::remove_file(reg.join(id));
            if let Some(c) = clients.remove(&k) {
                let _ = control::send(c.fd.as_raw_fd(), &Reply::Ok { message: summary }, &[]);
            }
            for (_, c) in clients.drain() {
                let _ = control::send(c.fd.as_raw_fd(), &Reply::Exit { code: 137 }, &[]);
            }
            return 0;
        }
    }
}

fn in_session(pid: i32, id: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
        Ok(s) => s.contains(&format!("/kapl-{id}/")),
        Err(_) => true,
    }
}

fn route(e: &mut Engine, clients: &HashMap<u64, Client>) {
    deliver(e.pump(false), clients);
}

fn route_flush(e: &mut Engine, clients: &HashMap<u64, Client>) {
    deliver(e.pump(true), clients);
}

fn deliver(notes: Vec<kapl_runtime_bpf::engine::Notice>, clients: &HashMap<u64, Client>) {
    for n in notes {
        for c in clients.values() {
            // A notice of no command (the session's) goes to every
            // running command's client.
            if c.cmd.is_some() && (n.cmd.is_none() || c.cmd == n.cmd) && (n.deny || c.show_allows) {
                let _ = control::send(
                    c.fd.as_raw_fd(),
                    &Reply::Notice {
                        line: n.line.clone(),
                    },
                    &[],
                );
            }
        }
    }
}

fn find_session(explicit: Option<&str>) -> Result<String, RunError> {
    if let Some(s) = explicit {
        return Ok(s.to_string());
    }
    if let Some(s) = std::env::var_os("KAPL_SESSION") {
        return Ok(s.to_string_lossy().into_owned());
    }
    let reg = control::registry_dir();
    let mut live = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&reg) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid: i32 = std::fs::read_to_string(e.path())
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            // SAFETY: kill with signal 0 only checks existence.
            if pid > 0 && unsafe { libc::kill(pid, 0) } == 0 {
                live.push(name);
            } else {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    match live.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(RunError::Session(
            "no running session: start one with `kapl-run session start IMAGE --plan NAME`".into(),
        )),
        many => Err(RunError::Session(format!(
            "several sessions are running ({}); pick one with --session ID or KAPL_SESSION",
            many.join(", ")
        ))),
    }
}

fn connect(explicit: Option<&str>) -> Result<OwnedFd, RunError> {
    let id = find_session(explicit)?;
    // SAFETY: getuid never fails.
    let uid = unsafe { libc::getuid() };
    let fd = control::connect(&control::socket_name(uid, &id)).map_err(|e| {
        // Nobody listens: the supervisor ended or was killed (its watchdog
        // then ended the session's commands). Forget its registry entry.
        if matches!(
            e.raw_os_error(),
            Some(libc::ECONNREFUSED) | Some(libc::ENOENT)
        ) {
            let _ = std::fs::remove_file(control::registry_dir().join(&id));
            RunError::Session(format!(
                "session {id} is not running (no supervisor answers on its control socket: {e}); start one with `kapl-run session start IMAGE --plan NAME`"
            ))
        } else {
            RunError::Session(format!("cannot reach session {id}: {e}"))
        }
    })?;
    // Abstract socket names are anyone's to take: a confined command may
    // listen on a session's name (one whose supervisor has not bound it,
    // or one planted in the registry). Nothing is sent (not the request,
    // not this client's stdio) to a peer of another user or inside a
    // session.
    match control::peer(&fd) {
        Ok((pid, puid)) if puid == uid && !in_any_session(pid) => Ok(fd),
        Ok((pid, _)) => Err(RunError::Session(format!(
            "the control socket of session {id} is held by process {pid}, which is not a kapl-run supervisor (another user's, or inside a session); nothing was sent to it"
        ))),
        Err(e) => Err(RunError::Session(format!(
            "cannot check who holds the control socket of session {id}: {e}"
        ))),
    }
}

/// Whether `pid` runs inside any kapl-run session (a session cgroup,
/// `kapl-ID`, on its path); unreadable counts as inside.
fn in_any_session(pid: i32) -> bool {
    let session_cgroup = |c: &str| {
        c.strip_prefix("kapl-").is_some_and(|id| {
            (id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()))
                || id
                    .strip_prefix("oneshot-")
                    .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    match std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
        Ok(s) => s
            .lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .any(|path| path.split('/').any(session_cgroup)),
        Err(_) => true,
    }
}

fn read_replies(fd: &OwnedFd) -> Result<i32, RunError> {
    let mut r = LineReader::default();
    loop {
        while let Some(line) = r.line() {
            match serde_json::from_slice::<Reply>(&line) {
                Ok(Reply::Notice { line }) => eprintln!("{line}"),
                Ok(Reply::Exit { code }) => return Ok(code),
                Ok(Reply::Ok { message }) => {
                    println!("{message}");
                    return Ok(0);
                }
                Ok(Reply::Error { message }) => {
                    eprintln!("kapl-run: error[{message}]");
                    return Ok(1);
                }
                Err(e) => return Err(RunError::Session(format!("bad reply: {e}"))),
            }
        }
        if r.eof {
            return Err(RunError::Session(
                "the session closed the connection".into(),
            ));
        }
        r.fill(fd.as_raw_fd())
            .map_err(|e| RunError::Session(format!("read: {e}")))?;
    }
}

fn client_simple(session: Option<&str>, req: &Request) -> Result<i32, RunError> {
    let fd = connect(session)?;
    control::send(fd.as_raw_fd(), req, &[]).map_err(|e| RunError::Session(format!("send: {e}")))?;
    read_replies(&fd)
}

fn client_exec(o: Opts) -> Result<i32, RunError> {
    if o.command.is_empty() {
        return Err(RunError::Session(format!("no command after `--`\n{USAGE}")));
    }
    let fd = connect(o.session.as_deref())?;
    let cwd = std::env::current_dir().map_err(|e| RunError::Session(format!("cwd: {e}")))?;
    let req = Request::Exec {
        argv: o.command.clone(),
        env: env_bytes(),
        cwd: cwd.into_os_string().into_vec(),
        show_allows: o.show_allows,
    };
    control::send(fd.as_raw_fd(), &req, &[0, 1, 2])
        .map_err(|e| RunError::Session(format!("send: {e}")))?;
    read_replies(&fd)
}
