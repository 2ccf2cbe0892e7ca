//! `kapl-run`: enforce a plan's steps on the real kernel.
//!
//! Parses the command line ([`kapl_runtime_bpf::cli`]) and hands each
//! subcommand to the library: sessions ([`kapl_runtime_bpf::client`],
//! [`kapl_runtime_bpf::supervisor`]), one-shot runs
//! ([`kapl_runtime_bpf::oneshot`]), reports ([`kapl_runtime_bpf::report`])
//! and agents ([`kapl_runtime_bpf::mcp`],
//! [`kapl_runtime_bpf::hook`]). Links kapl-image and the runtime
//! crates only: never Z3 or the compiler.

use clap::Parser;
use kapl_runtime_bpf::cli::{Cli, Command, ErrorFormat, HookCommand, PlanCommand, SessionCommand};
use kapl_runtime_bpf::control::Request;
use kapl_runtime_bpf::error::{EXIT_REFUSED, RunError};
use kapl_runtime_bpf::{cli, client, hook, mcp, oneshot, propose, report};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::normalize(std::env::args_os().collect());
    let json = args.iter().any(|a| a == "--error-format=json")
        || args
            .windows(2)
            .any(|w| w[0] == "--error-format" && w[1] == "json");
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        // Help and version go to stdout with exit 0.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // Usage errors are refusals before any command ran (KAPL0809).
        Err(e) => {
            let text = e.render().to_string();
            if json {
                let message = text.lines().next().unwrap_or_default();
                let message = message.strip_prefix("error: ").unwrap_or(message);
                RunError::Usage(message.to_string())
                    .to_json()
                    .print(ErrorFormat::Json);
            } else {
                let code = kapl_codes::RUN_USAGE;
                match text.strip_prefix("error:") {
                    Some(rest) => eprint!("error[{code}]:{rest}"),
                    None => eprint!("{text}"),
                }
            }
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    let fmt = cli.error_format;
    match run(cli.command, fmt) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            e.to_json().print(fmt);
            ExitCode::from(e.exit_status())
        }
    }
}

fn run(command: Command, fmt: ErrorFormat) -> Result<i32, RunError> {
    match command {
        Command::Session(SessionCommand::Start(a)) => client::start(&a, fmt),
        Command::Session(SessionCommand::Stop(s)) => {
            client::request(s.session.as_deref(), &Request::Stop, &[], fmt)
        }
        Command::Exec(a) => {
            client::exec(a.session.session.as_deref(), &a.command, a.show_allows, fmt)
        }
        Command::Step(a) => client::request(
            a.session.session.as_deref(),
            &Request::Step { name: a.name },
            &[],
            fmt,
        ),
        Command::Status(s) => client::request(s.session.as_deref(), &Request::Status, &[], fmt),
        Command::Plan(PlanCommand::Load(a)) => {
            client::plan_load(a.session.session.as_deref(), &a.image, a.plan, a.step, fmt)
        }
        Command::Plan(PlanCommand::Propose(a)) => propose::propose(&a, fmt),
        Command::Explain(a) => client::explain(
            a.session.session.as_deref(),
            a.last,
            a.format == cli::ProposeFormat::Json,
            fmt,
        ),
        Command::Report(a) => report::run(&a),
        Command::Run(a) => oneshot::run(&a),
        Command::Mcp(s) => mcp::serve(s.session.as_deref()),
        Command::Hook(HookCommand::ClaudeCode(s)) => Ok(hook::claude_code(s.session.as_deref())),
        Command::Completions(a) => {
            cli::completions(a.shell, &mut std::io::stdout());
            Ok(0)
        }
        Command::Man(a) => man(a.out.as_deref()),
        Command::Schema(a) => schema(&a),
    }
}

/// `kapl-run schema`: one schema to stdout (or DIR), or `--all` into DIR.
fn schema(a: &cli::SchemaArgs) -> Result<i32, RunError> {
    use kapl_runtime::schemas::Document;
    let io = |source| kapl_runtime_bpf::error::SessionError::Io {
        what: "schema",
        source,
    };
    let docs: Vec<Document> = match &a.name {
        Some(n) => vec![Document::by_name(n).ok_or_else(|| {
            RunError::Usage(format!(
                "no schema `{n}` (schemas: audit-record, control-request, control-reply)"
            ))
        })?],
        None => Document::ALL.to_vec(),
    };
    match &a.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(io)?;
            for d in docs {
                std::fs::write(
                    dir.join(format!("{}.schema.json", d.name())),
                    d.schema_text(),
                )
                .map_err(io)?;
            }
        }
        None => docs.iter().for_each(|d| print!("{}", d.schema_text())),
    }
    Ok(0)
}

/// `kapl-run man`: the pages into DIR, or kapl-run.1 to stdout.
fn man(out: Option<&std::path::Path>) -> Result<i32, RunError> {
    let io = |source| kapl_runtime_bpf::error::SessionError::Io {
        what: "man",
        source,
    };
    let pages = cli::man_pages().map_err(io)?;
    match out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(io)?;
            for (name, roff) in &pages {
                std::fs::write(dir.join(name), roff).map_err(io)?;
            }
        }
        None => {
            use std::io::Write;
            if let Some((_, roff)) = pages.first() {
                std::io::stdout().write_all(roff).map_err(io)?;
            }
        }
    }
    Ok(0)
}
