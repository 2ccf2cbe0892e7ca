//! `kapl-run IMAGE --plan P -- CMD`: one command under a plan's step,
//! without a session (stage: runtime).

use crate::cli::RunArgs;
use crate::client;
use crate::error::RunError;
use crate::session::{Session, StartOptions};
use crate::sys;
use kapl_runtime::losses::loss_notice;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;

fn show(notes: Vec<crate::session::Notice>, allows: bool) {
    for n in notes {
        if n.deny || allows {
            eprintln!("{}", n.line);
        }
    }
}

/// Runs the command; returns its exit status.
pub fn run(a: &RunArgs) -> Result<i32, RunError> {
    let mode = client::mode(a.plan.enforce.unprivileged)?;
    let img = client::load_image(&a.image)?;
    let id = format!("oneshot-{}", std::process::id());
    let opts = StartOptions {
        plan: &a.plan.plan,
        step: a.plan.enforce.step.as_deref(),
        audit: a.plan.enforce.audit.as_deref(),
        mode,
        id: &id,
        otlp: a.plan.enforce.otlp.as_deref(),
        resolver: a.plan.enforce.resolver,
        min_abi: a.plan.enforce.min_abi,
    };
    let mut s = Session::start(img, opts, None)?;
    eprintln!("kapl-run: plan {}, step {}", s.plan_name(), s.step_name());
    if std::env::var_os("KAPL_VERBOSE").is_some() {
        for r in s.rule_list() {
            eprintln!("kapl-run: rule: {r}");
        }
    }
    for l in s.level_report() {
        eprintln!("kapl-run: kernel: {l}");
    }
    eprintln!("kapl-run: precision layer: {}", s.lsm_report());
    for l in s.precision() {
        eprintln!("kapl-run: precision: {l}");
    }
    let cwd = std::env::current_dir()
        .ok()
        .map(|p| p.into_os_string().into_vec());
    let argv: Vec<Vec<u8>> = a.command.iter().map(|c| c.clone().into_vec()).collect();
    let cmd = match s.spawn(&argv, &client::env_bytes(), cwd.as_deref(), [0, 1, 2]) {
        Ok(c) => c,
        Err(err) => {
            let _ = s.stop();
            return Err(err);
        }
    };
    let lost_before = s.lost();
    let code = loop {
        let mut fds = vec![s.pidfd(cmd).map_or(-1, |p| p.as_raw_fd())];
        fds.extend(s.event_fds());
        let ready = sys::poll_raw(&fds, 100).unwrap_or_default();
        show(s.pump(false), a.show_allows);
        if ready.first().copied().unwrap_or(false) {
            break s.reap(cmd).unwrap_or(1);
        }
    };
    // Audit records arrive asynchronously: wait for all of them (barrier).
    show(s.sync(), a.show_allows);
    if let Some(line) = loss_notice(lost_before, s.lost()) {
        eprintln!("{line}");
    }
    let summary = s.stop();
    if std::env::var_os("KAPL_VERBOSE").is_some() {
        eprintln!("kapl-run: {summary}");
    }
    Ok(code)
}
