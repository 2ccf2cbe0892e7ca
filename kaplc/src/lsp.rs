//! `kaplc lsp`: the language server, for editors.
//!
//! Input: LSP 3.17 messages on stdin. Output: answers and diagnostics on
//! stdout (logs, if any, on stderr). Runs until the editor sends `exit`;
//! exit 0 then, 1 when the connection breaks or the protocol is violated.

use std::process::ExitCode;

/// Arguments of `kaplc lsp`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Accepted for editors that pass it; the server always uses stdio.
    #[arg(long)]
    pub stdio: bool,
}

/// Runs `kaplc lsp`.
pub fn run(_args: &Args) -> ExitCode {
    match kapl_lsp::run_stdio() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kaplc lsp: {e}");
            ExitCode::from(1)
        }
    }
}
