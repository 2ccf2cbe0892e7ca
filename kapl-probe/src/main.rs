//! `kapl-probe`: the escape suite's attacker (test support, not installed
//! by the README). Each subcommand attempts one side door of path-based or
//! cgroup confinement from inside a `kapl-run` session and prints exactly one
//! line per attempt on stdout:
//!
//! ```text
//! NAME ok            the attempt succeeded
//! NAME refused ERRNO the kernel (or the runtime's filters) refused it
//! ```
//!
//! so the kernel tests can assert the whole outcome of a scenario in one
//! comparison. The exit status is 0 when every attempt ran (whatever its
//! outcome), 2 on a usage error. Subcommands live in one module per family
//! of escapes; `main` only dispatches.

use std::process::ExitCode;

mod basic;
mod dns;
mod exec;
mod fs;
mod load;
mod meta;
mod net;
mod ns;
mod report;
mod route;
mod sys;
mod tamper;
mod timed;
mod uring;
mod watch;

/// A family of probes: `run` returns `None` when it does not know `cmd`.
type Family = fn(cmd: &str, args: &[String]) -> Option<()>;

const FAMILIES: &[Family] = &[
    basic::run,
    fs::run,
    exec::run,
    ns::run,
    net::run,
    route::run,
    uring::run,
    tamper::run,
    load::run,
    meta::run,
    watch::run,
    timed::run,
    dns::run,
];

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: kapl-probe SUBCOMMAND [ARGS...]");
        return ExitCode::from(2);
    }
    let cmd = args.remove(0);
    for family in FAMILIES {
        if family(&cmd, &args).is_some() {
            return ExitCode::SUCCESS;
        }
    }
    eprintln!("kapl-probe: unknown subcommand {cmd:?}");
    ExitCode::from(2)
}
