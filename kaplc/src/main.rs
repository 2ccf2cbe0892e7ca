//! `kaplc`: check, build and inspect KAPL policies.
//!
//! Each subcommand lives in its own module with an `Args` struct (clap) and
//! a `run(args) -> ExitCode`; adding one is a variant in [`Command`] and an
//! arm in `main`. Exit codes: 0 success, 1 the policy has errors, 2 usage
//! or I/O problems.

mod against;
mod build;
mod check;
mod completions;
mod diff;
mod exec_host;
mod fmt;
mod fs_loader;
mod graph;
mod inspect;
mod lsp;
mod man;
mod output;
mod params;
mod render;
mod report;
mod sarif;
mod schema;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The KAPL compiler: checks policies, proves their grants stay in bounds.
#[derive(Debug, Parser)]
#[command(name = "kaplc", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check policies: syntax, names, structure and proofs.
    Check(check::Args),
    /// Show the authority NEW adds and removes per plan and step (exit 1
    /// when NEW widens any plan).
    Diff(diff::Args),
    /// Build an image (`.kapi`) from a policy that checks.
    Build(build::Args),
    /// Show an image's plans, steps, grants and tables.
    Inspect(inspect::Args),
    /// Rewrite policies in the canonical layout (comments kept).
    Fmt(fmt::Args),
    /// Draw the authority chain (objective → intent → plan → steps → grants).
    Graph(graph::Args),
    /// Run the language server (LSP 3.17) on stdin/stdout, for editors.
    Lsp(lsp::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell).
    Completions(completions::Args),
    /// Write the manual pages (`kaplc.1`, `kaplc-check.1`, ...).
    Man(man::Args),
    /// Print the JSON Schema of a JSON output (`check`, `diff`, `inspect`).
    Schema(schema::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with exit 0; usage errors exit 2.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Build(args) => build::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Fmt(args) => fmt::run(&args),
        Command::Graph(args) => graph::run(&args),
        Command::Lsp(args) => lsp::run(&args),
        Command::Completions(args) => completions::run(&args),
        Command::Man(args) => man::run(&args),
        Command::Schema(args) => schema::run(&args),
    }
}
