//! `kapl-run plan propose`: a plan proposed during a session, built
//! against the session's objective image and loaded (stage: runtime,
//! plan revisions).
//!
//! A proposal is hostile input from inside the session. kapl-run has no
//! compiler, so the build is `kaplc build PLAN --against OBJ.kapi`, run as
//! a child of this client (never of the supervisor) with:
//!
//! - a Landlock domain that lets it read what the session's current step
//!   may read and nothing else: the step's read rules (from the
//!   supervisor), the proposal file itself (named by the caller), kaplc's
//!   own program and the libraries the dynamic loader maps for it, and a
//!   private directory holding the objective image (a copy of the
//!   supervisor's, received as a sealed memfd) and the image it writes. So
//!   a `use "/etc/shadow"` in a proposal fails to read, and no diagnostic
//!   can quote a file the session's commands could not read;
//! - no capabilities, `no_new_privs`, no TCP, and the Landlock scopes
//!   (no abstract UNIX sockets, no signals out);
//! - limits: CPU seconds, address space, file size, and a wall-clock
//!   timeout after which it is killed.
//!
//! The image it writes goes to the supervisor with `load`, which checks it
//! with its own checker: whatever this build does, nothing outside the
//! objective can be loaded.

use crate::cli::{ProposeArgs, ProposeFormat};
use crate::client;
use crate::control::{Reply, Request};
use crate::error::{RunError, SessionError};
use crate::sys;
use kapl_runtime::protocol::{ProposalContext, ReadRule};
use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, Scope,
};
use serde_json::json;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a proposal failed before or during its build.
fn io_err(what: &'static str) -> impl FnOnce(std::io::Error) -> RunError {
    move |source| SessionError::Io { what, source }.into()
}

/// The kaplc to build with: `KAPL_KAPLC`, else the one beside kapl-run,
/// else `kaplc` on PATH.
fn kaplc() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KAPL_KAPLC") {
        return Some(PathBuf::from(p));
    }
    let beside = std::env::current_exe().ok()?.with_file_name("kaplc");
    if beside.is_file() {
        return Some(beside);
    }
    std::env::var_os("PATH")?
        .as_bytes()
        .split(|b| *b == b':')
        .map(|d| Path::new(std::ffi::OsStr::from_bytes(d)).join("kaplc"))
        .find(|p| p.is_file())
}

/// The files the dynamic loader maps to run `program`: its interpreter and
/// every library `ld.so --list` resolves (kaplc's own, not the proposal's:
/// these are read with the caller's authority, before any sandbox).
fn loaded_files(program: &Path) -> Vec<PathBuf> {
    let head = std::fs::File::open(program)
        .and_then(|f| {
            let mut h = Vec::new();
            f.take(kapl_runtime::elf::HEAD_MAX as u64)
                .read_to_end(&mut h)
                .map(|_| h)
        })
        .unwrap_or_default();
    let Ok(kapl_runtime::elf::Starter::Elf(Some(interp))) = kapl_runtime::elf::starter(&head)
    else {
        return Vec::new();
    };
    let interp = PathBuf::from(std::ffi::OsStr::from_bytes(&interp));
    let mut out = vec![interp.clone()];
    let listed = std::process::Command::new(&interp)
        .arg("--list")
        .arg(program)
        .env_clear()
        .output();
    if let Ok(o) = listed {
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            // `libz3.so.5 => /path/libz3.so.5 (0x...)` or `/lib64/ld-... (0x...)`.
            let path = match line.split_once("=>") {
                Some((_, rhs)) => rhs.trim(),
                None => line.trim(),
            };
            let path = path.split(" (").next().unwrap_or("").trim();
            if path.starts_with('/') {
                out.push(PathBuf::from(path));
            }
        }
    }
    out
}

/// Read access to files and, where `list`, directories.
fn read_access(list: bool) -> BitFlags<AccessFs> {
    if list {
        AccessFs::ReadFile | AccessFs::ReadDir
    } else {
        AccessFs::ReadFile.into()
    }
}

/// The build's Landlock ruleset (see the module's documentation). Rules on
/// paths that do not exist are skipped: they grant nothing.
fn sandbox(
    rules: &[ReadRule],
    proposal: Option<&Path>,
    work: &Path,
    program: &Path,
) -> Result<OwnedFd, RunError> {
    let ll = |e: landlock::RulesetError| {
        RunError::from(crate::domain::DomainError::Ruleset(e.to_string()))
    };
    // The session's level (ABI 7 unless `--min-abi` accepted less).
    let abi = crate::domain::abi_in_use();
    let mut base = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))
        .map_err(ll)?
        .handle_access(AccessNet::from_all(abi))
        .map_err(ll)?;
    if crate::domain::level() >= 6 {
        base = base.scope(Scope::from_all(abi)).map_err(ll)?;
    }
    let mut rs = base.create().map_err(ll)?;
    let mut wanted: Vec<(PathBuf, BitFlags<AccessFs>)> = rules
        .iter()
        .map(|r| {
            (
                PathBuf::from(std::ffi::OsStr::from_bytes(&r.path)),
                read_access(r.list),
            )
        })
        .collect();
    if let Some(p) = proposal {
        wanted.push((p.to_path_buf(), AccessFs::ReadFile.into()));
    }
    wanted.push((
        work.to_path_buf(),
        AccessFs::ReadFile
            | AccessFs::ReadDir
            | AccessFs::WriteFile
            | AccessFs::Truncate
            | AccessFs::MakeReg
            | AccessFs::RemoveFile,
    ));
    wanted.push((
        program.to_path_buf(),
        AccessFs::ReadFile | AccessFs::Execute,
    ));
    for f in loaded_files(program) {
        wanted.push((f, AccessFs::ReadFile | AccessFs::Execute));
    }
    wanted.push(("/etc/ld.so.cache".into(), AccessFs::ReadFile.into()));
    for (path, access) in wanted {
        // A directory keeps every right; a file only those that apply. A
        // path that does not exist grants nothing.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let access = if meta.is_dir() {
            access
        } else {
            access & AccessFs::from_file(abi)
        };
        let Ok(fd) = PathFd::new(&path) else {
            continue;
        };
        rs = rs.add_rule(PathBeneath::new(fd, access)).map_err(ll)?;
    }
    let fd: Option<OwnedFd> = rs.into();
    fd.ok_or_else(|| {
        RunError::from(crate::domain::DomainError::Unsupported(
            "ruleset not created".into(),
        ))
    })
}

/// A private directory (mode 0700) for one build, removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> Result<WorkDir, RunError> {
        let base = std::env::temp_dir();
        for i in 0..100u32 {
            let mut b = [0u8; 8];
            if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
                let _ = f.read_exact(&mut b);
            }
            let name: String = b.iter().map(|x| format!("{x:02x}")).collect();
            let p = base.join(format!("kapl-propose-{name}-{i}"));
            use std::os::unix::fs::DirBuilderExt;
            match std::fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => return Ok(WorkDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("proposal directory")(e)),
            }
        }
        Err(io_err("proposal directory")(std::io::Error::from(
            std::io::ErrorKind::AlreadyExists,
        )))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the build ended with.
struct Built {
    status: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    timed_out: bool,
}

/// Runs kaplc confined (see the module's documentation).
fn build(
    program: &Path,
    args: &[std::ffi::OsString],
    cwd: &Path,
    ruleset: &OwnedFd,
    a: &ProposeArgs,
) -> Result<Built, RunError> {
    let rfd = ruleset.as_raw_fd();
    let cpu = a.cpu_seconds;
    let mem = a.memory_mib.saturating_mul(1 << 20);
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: the closure runs between fork and exec in a single-threaded
    // child; it only makes system calls (no allocation, no locks).
    unsafe {
        cmd.pre_exec(move || {
            sys::confine_build(rfd, cpu, mem)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(io_err("kaplc"))?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    // Both pipes are drained by two threads so neither can fill and stall
    // the build; the wall clock is watched here.
    let t_out = so.take().map(|mut s| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = (&mut s).take(16 << 20).read_to_end(&mut v);
            v
        })
    });
    let t_err = se.take().map(|mut s| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = (&mut s).take(16 << 20).read_to_end(&mut v);
            v
        })
    });
    let mut timed_out = false;
    let status = loop {
        match child.try_wait().map_err(io_err("wait"))? {
            Some(s) => break s,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                timed_out = true;
                break child.wait().map_err(io_err("wait"))?;
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    if let Some(t) = t_out {
        out = t.join().unwrap_or_default();
    }
    if let Some(t) = t_err {
        err = t.join().unwrap_or_default();
    }
    Ok(Built {
        status: status.code(),
        stdout: out,
        stderr: err,
        timed_out,
    })
}

/// The refusal printed for `--format json` (one object) or as text.
fn refuse(fmt: ProposeFormat, stage: &str, message: &str, diagnostics: serde_json::Value) -> i32 {
    match fmt {
        ProposeFormat::Json => println!(
            "{}",
            json!({"accepted": false, "stage": stage, "message": message, "diagnostics": diagnostics})
        ),
        ProposeFormat::Text => eprintln!("kapl-run: proposal refused ({stage}): {message}"),
    }
    1
}

/// `kapl-run plan propose`.
pub fn propose(a: &ProposeArgs, efmt: crate::cli::ErrorFormat) -> Result<i32, RunError> {
    let program = kaplc().ok_or_else(|| {
        RunError::Usage(
            "kaplc was not found (beside kapl-run, on PATH, or in KAPL_KAPLC): a proposal is built with it".into(),
        )
    })?;
    // The proposal's own text: the caller names it (or gives it on stdin),
    // so it is read with the caller's authority; what it `use`s is read
    // inside the sandbox.
    let work = WorkDir::new()?;
    let (proposal, shown) = if a.file.as_os_str() == "-" {
        let mut text = Vec::new();
        std::io::stdin()
            .take(crate::session::revision::MAX_PLAN_IMAGE)
            .read_to_end(&mut text)
            .map_err(io_err("stdin"))?;
        std::fs::write(work.0.join("proposal.kapl"), text).map_err(io_err("proposal"))?;
        // Named relative to the private directory (the build's working
        // directory): its records and diagnostics say `proposal.kapl`.
        (PathBuf::from("proposal.kapl"), "<stdin>".to_string())
    } else {
        let p = std::path::absolute(&a.file).map_err(io_err("proposal"))?;
        if !p.is_file() {
            return Err(RunError::Usage(format!(
                "{}: not a readable file",
                a.file.display()
            )));
        }
        (p, a.file.display().to_string())
    };
    // The objective image and the step's read rules, from the supervisor.
    let (reply, fds) = client::request_with_fds(a.session.session.as_deref(), &Request::Proposal)?;
    let message = match client::ok_message(reply, efmt)? {
        Ok(m) => m,
        Err(exit) => return Ok(exit),
    };
    let ctx: ProposalContext = serde_json::from_str(&message)
        .map_err(|e| SessionError::Protocol(format!("bad proposal context: {e}")))?;
    let Some(objective_fd) = fds.into_iter().next() else {
        return Err(SessionError::Protocol("the objective image did not come".into()).into());
    };
    let mut obj = Vec::new();
    let mut f = std::fs::File::from(objective_fd);
    std::io::Seek::rewind(&mut f).map_err(io_err("objective image"))?;
    f.read_to_end(&mut obj).map_err(io_err("objective image"))?;
    let obj_name = Path::new(&ctx.objective_file)
        .file_name()
        .map_or_else(|| "objective.kapi".into(), |n| n.to_os_string());
    let obj_path = work.0.join(&obj_name);
    std::fs::write(&obj_path, &obj).map_err(io_err("objective image"))?;
    let out_path = work.0.join("proposal.kapi");
    let ruleset = sandbox(
        &ctx.read_rules,
        (a.file.as_os_str() != "-").then_some(proposal.as_path()),
        &work.0,
        &program,
    )?;
    let json_out = a.format == ProposeFormat::Json;
    let args: Vec<std::ffi::OsString> = vec![
        "build".into(),
        proposal.clone().into(),
        "--against".into(),
        obj_path.into(),
        "-o".into(),
        out_path.clone().into(),
        "--format".into(),
        if json_out { "json" } else { "human" }.into(),
        "--color".into(),
        "never".into(),
    ];
    let cwd = if proposal.is_absolute() {
        proposal.parent().unwrap_or(&work.0).to_path_buf()
    } else {
        work.0.clone()
    };
    let started = Instant::now();
    let built = build(&program, &args, &cwd, &ruleset, a)?;
    let build_ms = started.elapsed().as_secs_f64() * 1e3;
    // Paths inside the private directory are shown without it.
    let tidy = |b: &[u8]| String::from_utf8_lossy(b).replace(&format!("{}/", work.0.display()), "");
    let stderr = tidy(&built.stderr);
    if built.timed_out || built.status != Some(0) {
        let why = if built.timed_out {
            format!("the build ran out of its {} s", a.timeout)
        } else if built.status.is_none() {
            "the build was killed (its CPU or memory limit)".to_string()
        } else {
            format!("{shown} does not build against {}", ctx.objective_file)
        };
        if !json_out {
            let _ = std::io::stderr().write_all(stderr.as_bytes());
        }
        let diags = serde_json::from_str::<serde_json::Value>(&tidy(&built.stdout))
            .unwrap_or(serde_json::Value::Null);
        // The session's history says it was refused (best effort: the
        // refusal stands whether or not the note arrives).
        let text = std::fs::read(if proposal.is_absolute() {
            proposal.clone()
        } else {
            work.0.join(&proposal)
        })
        .unwrap_or_default();
        let first = first_error(&diags)
            .or_else(|| {
                stderr
                    .lines()
                    .find(|l| l.starts_with("error["))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| why.clone());
        let _ = client::request_with_fds(
            a.session.session.as_deref(),
            &Request::Refused {
                file: shown.clone(),
                sha256: kapl_image::hex(&kapl_image::sha256(&text)),
                why: first,
            },
        );
        return Ok(refuse(a.format, "build", &why, diags));
    }
    // The image goes to the supervisor, which checks it itself.
    let image = std::fs::File::open(&out_path).map_err(io_err("built image"))?;
    let req = Request::Load {
        file: shown.clone(),
        plan: a.plan.clone(),
        step: a.step.clone(),
    };
    let started = Instant::now();
    let (reply, _) =
        client::request_with_fds_sending(a.session.session.as_deref(), &req, &[&image])?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    match reply {
        Reply::Ok { message } => {
            match a.format {
                ProposeFormat::Json => {
                    let (revision, plan, step) = parse_loaded(&message);
                    let mut timing = serde_json::Map::new();
                    timing.insert("build_ms".into(), json!(build_ms));
                    timing.insert("load_ms".into(), json!(load_ms));
                    timing.extend(parse_timing(&message));
                    println!(
                        "{}",
                        json!({"accepted": true, "revision": revision, "plan": plan, "step": step,
                               "message": message, "timing": timing})
                    );
                }
                ProposeFormat::Text => {
                    let _ = std::io::stderr().write_all(stderr.as_bytes());
                    println!("{message}");
                }
            }
            Ok(0)
        }
        Reply::Error {
            code,
            message,
            help,
            ..
        } => {
            let text = format!("error[{code}]: {message}");
            if a.format == ProposeFormat::Text {
                if let Some(h) = &help {
                    eprintln!("{text}\n  = help: {h}");
                } else {
                    eprintln!("{text}");
                }
            }
            Ok(refuse(
                a.format,
                "load",
                &message,
                json!([{"code": code, "message": message, "help": help}]),
            ))
        }
        _ => Err(SessionError::Protocol("unexpected reply".into()).into()),
    }
}

/// The supervisor's phases from the load message's `timing:` line
/// (`verify 0.4 ms, check 1.2 ms, …`), as `PHASE_ms` numbers.
fn parse_timing(m: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    let Some(line) = m.lines().find_map(|l| l.strip_prefix("timing: ")) else {
        return out;
    };
    for part in line.split(", ") {
        let mut w = part.split(' ');
        if let (Some(name), Some(ms)) = (w.next(), w.next().and_then(|x| x.parse::<f64>().ok())) {
            out.insert(format!("{name}_ms"), json!(ms));
        }
    }
    out
}

/// The first error of kaplc's JSON diagnostics, as `CODE: message`.
fn first_error(diags: &serde_json::Value) -> Option<String> {
    let d = diags["diagnostics"]
        .as_array()?
        .iter()
        .find(|d| d["severity"] == "error")?;
    Some(format!(
        "{}: {}",
        d["code"].as_str().unwrap_or("?"),
        d["message"].as_str().unwrap_or("")
    ))
}

/// (revision, plan, step) from the load message `plan P is revision N,
/// step S: …`.
fn parse_loaded(m: &str) -> (Option<u32>, String, String) {
    let first = m.lines().next().unwrap_or("");
    let plan = first
        .strip_prefix("plan ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or("")
        .to_string();
    let revision = first
        .split("revision ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.trim().parse().ok());
    let step = first
        .split(", step ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .unwrap_or("")
        .to_string();
    (revision, plan, step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_message_is_read_back() {
        let (r, p, s) = parse_loaded(
            "plan fix is revision 2, step read: 0 processes of the previous plan ended\nprecision: x",
        );
        assert_eq!((r, p.as_str(), s.as_str()), (Some(2), "fix", "read"));
        let t = parse_timing(
            "plan x is revision 1, step s: 0 ended\ntiming: verify 0.5 ms, check 2.0 ms",
        );
        assert_eq!(t.get("check_ms"), Some(&json!(2.0)));
        assert_eq!(t.get("verify_ms"), Some(&json!(0.5)));
    }
}
