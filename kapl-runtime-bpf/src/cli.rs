//! The `kapl-run` command line (clap), its exit-code table, shell
//! completions and man pages.
//!
//! Every form that worked before clap keeps working, the one-shot
//! shorthand `kapl-run IMAGE --plan P -- CMD` included: it is the `run`
//! subcommand without its name ([`normalize`] puts the name back).

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

/// How errors are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ErrorFormat {
    /// `error[KAPL0806]: message` and `= help: ...` on stderr.
    #[default]
    Human,
    /// One JSON object on stderr: `{"code", "message", "help", "exit"}`.
    Json,
}

/// Enforce a KAPL plan's steps on the real kernel.
///
/// Exit status: the command's own, or 125 when kapl-run refused or failed
/// before the command ran, 126 when the command may not run in this step,
/// 127 when its program was not found.
#[derive(Debug, Parser)]
#[command(
    name = "kapl-run",
    version,
    propagate_version = true,
    override_usage = "kapl-run [OPTIONS] <COMMAND>\n       kapl-run IMAGE --plan NAME [--step S] [--audit FILE] [--unprivileged] [--show-allows] -- CMD [ARGS...]"
)]
pub struct Cli {
    /// How errors are printed.
    #[arg(long, value_enum, global = true, default_value_t = ErrorFormat::Human)]
    pub error_format: ErrorFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start or stop a session (a supervisor that holds a plan's steps).
    #[command(subcommand)]
    Session(SessionCommand),
    /// Run a command in a session, under its current step.
    Exec(ExecArgs),
    /// Move a session to another step of its plan (ends the current step's
    /// commands).
    Step(StepArgs),
    /// Describe a session: plan, step, denials, losses, plan revisions.
    Status(SessionRef),
    /// Load or propose a plan in a session pinned to an objective.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Explain the session's latest denials: the smallest grant that would
    /// allow each, and whether the pinned objective lets a plan revision
    /// add it (inside), not (outside its bound), or never (a `never` rule).
    Explain(ExplainArgs),
    /// Write a session's story as one self-contained HTML page: a timeline
    /// per step, what each process touched, what was refused and why, and
    /// the grants never used.
    Report(ReportArgs),
    /// Run one command under a plan's step, without a session (also
    /// `kapl-run IMAGE --plan P -- CMD`).
    Run(RunArgs),
    /// Serve a session to an agent as a Model Context Protocol server on
    /// stdio (tools: run, status, step, propose_plan, explain_denials).
    Mcp(SessionRef),
    /// Hooks for agent hosts (Claude Code).
    #[command(subcommand)]
    Hook(HookCommand),
    /// Print a shell completion script to stdout.
    Completions(CompletionsArgs),
    /// Write man pages (kapl-run.1 and one per subcommand).
    Man(ManArgs),
    /// Print the JSON Schema of an audit record or a control message.
    Schema(SchemaArgs),
}

/// `session start` / `session stop`.
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Start a session; prints its id on stdout.
    Start(StartArgs),
    /// Stop a session: ends its commands and prints its summary.
    Stop(SessionRef),
}

/// `plan load` / `plan propose`.
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Load a plan image built with `kaplc build PLAN.kapl --against
    /// OBJ.kapi`: checked by the runtime against the session's objective,
    /// it becomes the next revision (the previous plan's processes end).
    Load(LoadArgs),
    /// Build a plan against the session's objective and load it: `kaplc`
    /// runs with no more authority to read than the current step, without
    /// capabilities, and with time and memory limits. A refusal exits 1
    /// and leaves the session as it was.
    Propose(ProposeArgs),
}

/// `plan load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub session: SessionRef,
    /// The plan image.
    #[arg(value_name = "PLAN.kapi")]
    pub image: PathBuf,
    /// The plan (else the image's only one).
    #[arg(long, value_name = "NAME")]
    pub plan: Option<String>,
    /// The step to start in (else the plan's only start step).
    #[arg(long, value_name = "S")]
    pub step: Option<String>,
}

/// How `plan propose` reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ProposeFormat {
    /// The compiler's diagnostics on stderr, the outcome on stdout.
    #[default]
    Text,
    /// One JSON object on stdout: `{"accepted": true, "revision", "plan",
    /// "step", …}` or `{"accepted": false, "stage", "message",
    /// "diagnostics"}`.
    Json,
}

/// `plan propose`.
#[derive(Debug, Args)]
pub struct ProposeArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub session: SessionRef,
    /// The plan's KAPL source (`-`: stdin).
    #[arg(value_name = "PLAN.kapl")]
    pub file: PathBuf,
    /// The plan (else the file's only one).
    #[arg(long, value_name = "NAME")]
    pub plan: Option<String>,
    /// The step to start in (else the plan's only start step).
    #[arg(long, value_name = "S")]
    pub step: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ProposeFormat::Text)]
    pub format: ProposeFormat,
    /// Wall-clock limit of the build, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
    /// CPU limit of the build, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub cpu_seconds: u64,
    /// Address-space limit of the build, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 4096)]
    pub memory_mib: u64,
}

/// `explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub session: SessionRef,
    /// How many of the latest denials.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub last: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ProposeFormat::Text)]
    pub format: ProposeFormat,
}

/// `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The audit file (a session's `--audit FILE`).
    #[arg(value_name = "AUDIT.jsonl", required_unless_present = "session")]
    pub audit: Option<PathBuf>,
    /// A running or stopped session: its audit file, and (without
    /// `--image`) the image it started with.
    #[arg(long, value_name = "ID", conflicts_with = "audit")]
    pub session: Option<String>,
    /// An image the sessions ran (repeatable): the objective's `about`,
    /// bound and `never`, the parameters, the plans, and the grants never
    /// used.
    #[arg(long, value_name = "IMAGE")]
    pub image: Vec<PathBuf>,
    /// Where to write the page.
    #[arg(short, long, value_name = "FILE", default_value = "report.html")]
    pub out: PathBuf,
}

/// `hook`.
#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Claude Code's PreToolUse hook: reads the event on stdin and makes
    /// every Bash command run in the session (`kapl-run exec`), or denies
    /// it when no session is running.
    ClaudeCode(SessionRef),
}

/// Which session (else `KAPL_SESSION`, else the only running one).
#[derive(Debug, Args)]
pub struct SessionRef {
    /// The session's id.
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
}

/// How a session or one-shot run enforces and reports.
#[derive(Debug, Args)]
pub struct EnforceArgs {
    /// The step to start in (else the plan's only start step).
    #[arg(long, value_name = "S")]
    pub step: Option<String>,
    /// Append every decision as a JSON line to FILE.
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// Landlock alone, without root: TCP ports only, no decision reports.
    #[arg(long)]
    pub unprivileged: bool,
    /// Also send every decision record to an OpenTelemetry collector
    /// (OTLP/HTTP, JSON) at URL (`http://HOST[:PORT][/BASE]`; records go
    /// to URL/v1/logs).
    #[arg(long, value_name = "URL")]
    pub otlp: Option<String>,
    /// The DNS server the session's resolver forwards allowed queries to
    /// (default: the first `nameserver` of /etc/resolv.conf). Used when a
    /// plan has host-name rules: the session's DNS queries go to the
    /// resolver, which answers only names a grant of the step allows.
    #[arg(long, value_name = "ADDR:PORT")]
    pub resolver: Option<std::net::SocketAddr>,
    /// The oldest Landlock ABI to run with (4 to 7). Without it, kapl-run
    /// refuses a kernel below ABI 7 (Linux 6.15). With N below 7 it runs at
    /// the best ABI the kernel has, at least N, and says at start (and in
    /// `status` and the audit file) what that level does not enforce or
    /// report.
    #[arg(long, value_name = "N", default_value_t = 7, value_parser = clap::value_parser!(u8).range(4..=7))]
    pub min_abi: u8,
}

/// What a one-shot run enforces.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The plan to enforce.
    #[arg(long, value_name = "NAME")]
    pub plan: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub enforce: EnforceArgs,
}

/// `session start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The image (`kaplc build`): a plan image with `--plan`, or an
    /// objective image (objectives alone) to pin the session to.
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// The plan to enforce (a plan image).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["objective", "intent"])]
    pub plan: Option<String>,
    /// Pin the session to this objective of an objective image and hold
    /// no plan: plans come later with `plan propose` or `plan load`
    /// (default: the image's only objective).
    #[arg(long, value_name = "NAME")]
    pub objective: Option<String>,
    /// Pin the session to this intent of the objective as well.
    #[arg(long, value_name = "NAME")]
    pub intent: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub enforce: EnforceArgs,
}

/// `exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub session: SessionRef,
    /// Print allowed decisions too (the first of each grant and object).
    #[arg(long)]
    pub show_allows: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `step`.
#[derive(Debug, Args)]
pub struct StepArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub session: SessionRef,
    /// The step to move to.
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// `run` (one shot).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The image (`kaplc build`).
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub plan: PlanArgs,
    /// Print allowed decisions too.
    #[arg(long)]
    pub show_allows: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write the pages into DIR (else print kapl-run.1 to stdout).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// `audit-record`, `control-request` or `control-reply`.
    #[arg(
        value_name = "NAME",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub name: Option<String>,
    /// Every schema, as `NAME.schema.json` files in `--out DIR`.
    #[arg(long, requires = "out")]
    pub all: bool,
    /// Write into DIR instead of printing.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// The subcommand names and top-level options: any other first argument
/// starts the one-shot shorthand.
fn is_known(first: &OsString) -> bool {
    let Some(f) = first.to_str() else {
        return false;
    };
    let cmd = Cli::command();
    if let Some(long) = f.strip_prefix("--") {
        // An option of `run` starts the shorthand; any other is kapl-run's.
        let long = long.split('=').next().unwrap_or(long);
        return !cmd
            .find_subcommand("run")
            .is_some_and(|r| r.get_arguments().any(|a| a.get_long() == Some(long)));
    }
    f.starts_with('-')
        || f == "help"
        || cmd
            .get_subcommands()
            .any(|s| s.get_name() == f || s.get_all_aliases().any(|a| a == f))
}

/// The arguments with `run` put back in front of the one-shot shorthand
/// (`kapl-run IMAGE --plan P -- CMD`, options in any order).
pub fn normalize(mut args: Vec<OsString>) -> Vec<OsString> {
    // Skip a leading `--error-format X` to find the first real argument.
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if a == "--error-format" {
            i += 2;
        } else if a.starts_with("--error-format=") {
            i += 1;
        } else {
            break;
        }
    }
    if let Some(first) = args.get(i)
        && !is_known(first)
    {
        args.insert(i, OsString::from("run"));
    }
    args
}

/// Writes kapl-run's completion script for `shell` to `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "kapl-run", out);
}

/// Renders the man pages: `(file name, roff)` for kapl-run and each
/// subcommand (nested ones as `kapl-run-session-start.1`).
pub fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Building names the subcommands `kapl-run-exec` etc. for their pages.
    cmd.build();
    let source = format!("kapl-run {}", env!("CARGO_PKG_VERSION"));
    let mut out = Vec::new();
    let mut todo = vec![cmd];
    while let Some(cmd) = todo.pop() {
        let subs: Vec<clap::Command> = cmd.get_subcommands().cloned().collect();
        let man = clap_mangen::Man::new(cmd)
            .source(source.clone())
            .manual("KAPL");
        let mut page = Vec::new();
        man.render(&mut page)?;
        out.push((man.get_filename(), page));
        todo.extend(subs.into_iter().rev());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, reason = "test assertions")]
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_one_shot_shorthand_is_the_run_subcommand() {
        let n = normalize(args(&["kapl-run", "p.kapi", "--plan", "p", "--", "true"]));
        assert_eq!(
            n,
            args(&["kapl-run", "run", "p.kapi", "--plan", "p", "--", "true"])
        );
        let n = normalize(args(&["kapl-run", "--plan", "p", "p.kapi", "--", "true"]));
        assert_eq!(n[1], "run");
        let n = normalize(args(&[
            "kapl-run",
            "--otlp=http://c",
            "p.kapi",
            "--plan",
            "p",
            "--",
            "true",
        ]));
        assert_eq!(n[1], "run", "every option of `run` starts the shorthand");
        let n = normalize(args(&[
            "kapl-run",
            "--error-format",
            "json",
            "x.kapi",
            "--plan",
            "p",
            "--",
            "true",
        ]));
        assert_eq!(n[3], "run");
        for kept in [
            &["kapl-run", "exec", "--", "true"][..],
            &["kapl-run", "--version"],
            &["kapl-run", "session", "stop"],
            &["kapl-run", "help"],
        ] {
            assert_eq!(normalize(args(kept)), args(kept));
        }
        let cli = Cli::try_parse_from(normalize(args(&[
            "kapl-run",
            "p.kapi",
            "--plan",
            "p",
            "--show-allows",
            "--",
            "ls",
            "-l",
        ])));
        let Ok(Cli {
            command: Command::Run(r),
            ..
        }) = cli
        else {
            panic!("{cli:?}")
        };
        assert_eq!((r.plan.plan.as_str(), r.show_allows), ("p", true));
        assert_eq!(r.command, args(&["ls", "-l"]));
    }

    #[test]
    fn every_subcommand_has_help_and_a_man_page() {
        Cli::command().debug_assert();
        let pages = man_pages().unwrap_or_default();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "kapl-run.1",
            "kapl-run-exec.1",
            "kapl-run-session-start.1",
            "kapl-run-run.1",
            "kapl-run-status.1",
            "kapl-run-mcp.1",
            "kapl-run-hook-claude-code.1",
        ] {
            assert!(names.contains(&want), "{names:?}");
        }
        let mut bash = Vec::new();
        completions(clap_complete::Shell::Bash, &mut bash);
        let bash = String::from_utf8_lossy(&bash);
        for sub in [
            "session",
            "exec",
            "step",
            "status",
            "run",
            "completions",
            "man",
            "mcp",
            "hook",
            "claude-code",
        ] {
            assert!(bash.contains(sub), "{sub}");
        }
    }
}
