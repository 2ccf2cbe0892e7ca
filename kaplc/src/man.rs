//! `kaplc man [--out DIR]`: manual pages for kaplc and each subcommand.
//!
//! Input: kaplc's own command definition (the same help text `--help`
//! prints). Output: roff pages made by clap_mangen, `kaplc.1` and one
//! `kaplc-COMMAND.1` per subcommand; `kaplc.1` on stdout without `--out`.
//! Exit 0, or 2 when a page cannot be written.

use clap::CommandFactory;
use kapl_syntax::codes;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kaplc man`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write every page (`kaplc.1`, `kaplc-check.1`, ...) into DIR
    /// (created if missing) instead of printing `kaplc.1` on stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Every page as (file name, roff text): `kaplc.1` first, then one per
/// subcommand in the order `kaplc --help` lists them.
pub fn pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    // No `help` subcommand page: `kaplc help` only repeats `--help`.
    let mut cmd = crate::Cli::command().disable_help_subcommand(true);
    // Building names the subcommands `kaplc-check` etc. for their pages.
    cmd.build();
    let source = format!("kaplc {}", env!("CARGO_PKG_VERSION"));
    let mut out = Vec::new();
    let mut todo = vec![cmd];
    while let Some(cmd) = todo.pop() {
        let subs: Vec<clap::Command> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .cloned()
            .collect();
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

/// Runs `kaplc man`.
pub fn run(args: &Args) -> ExitCode {
    let pages = match pages() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kaplc man: cannot render the pages: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(dir) = &args.out else {
        let main = pages.first().map_or(&[][..], |(_, text)| text.as_slice());
        let mut out = std::io::stdout().lock();
        return match out.write_all(main).and_then(|()| out.flush()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!(
                    "error[{}]: cannot write to stdout: {e}",
                    codes::FILE_UNREADABLE
                );
                ExitCode::from(2)
            }
        };
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!(
            "error[{}]: cannot create `{}`: {e}",
            codes::FILE_UNREADABLE,
            dir.display()
        );
        return ExitCode::from(2);
    }
    for (name, text) in &pages {
        let path = dir.join(name);
        if let Err(e) = crate::build::write_atomic(&path, text) {
            eprintln!(
                "error[{}]: cannot write `{}`: {e}",
                codes::FILE_UNREADABLE,
                path.display()
            );
            return ExitCode::from(2);
        }
        eprintln!("{}: written", path.display());
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pages, the completions and `--help` are made from this text:
    /// every subcommand and every argument must have some.
    #[test]
    fn every_command_and_argument_has_help() {
        let mut cmd = crate::Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        let mut todo = vec![cmd];
        while let Some(cmd) = todo.pop() {
            let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
            if cmd
                .get_about()
                .is_none_or(|a| a.to_string().trim().is_empty())
            {
                missing.push(name.clone());
            }
            for a in cmd.get_arguments() {
                if a.get_help().is_none_or(|h| h.to_string().trim().is_empty()) {
                    missing.push(format!("{name} {}", a.get_id()));
                }
            }
            todo.extend(cmd.get_subcommands().cloned());
        }
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }

    #[test]
    fn one_page_per_subcommand_main_first() {
        let pages = pages().unwrap_or_default();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.first(), Some(&"kaplc.1"));
        for sub in crate::Cli::command().get_subcommands() {
            let want = format!("kaplc-{}.1", sub.get_name());
            assert!(names.contains(&want.as_str()), "{want} in {names:?}");
        }
    }
}
