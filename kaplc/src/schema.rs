//! `kaplc schema NAME|--all [--out DIR]`: the JSON Schemas of kaplc's JSON
//! documents (`check`, `diff`, `inspect`).
//!
//! Input: which document. Output: its schema (draft 2020-12), generated
//! from the types in `report.rs`: on stdout, or as `DIR/NAME.schema.json`
//! with `--out` (`--all` writes every one; it needs `--out`). The
//! repository keeps them in `schemas/`. Exit 0, or 2 when a file cannot be
//! written.

use crate::report::Document;
use kapl_syntax::codes;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kaplc schema`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The document whose schema to print.
    #[arg(value_enum, value_name = "NAME", required_unless_present = "all")]
    pub name: Option<Document>,
    /// Every schema (`check`, `diff`, `inspect`); needs `--out`.
    #[arg(long, conflicts_with = "name", requires = "out")]
    pub all: bool,
    /// Write `NAME.schema.json` into DIR (created if missing) instead of
    /// printing on stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs `kaplc schema`.
pub fn run(args: &Args) -> ExitCode {
    let docs: Vec<Document> = match args.name {
        Some(d) => vec![d],
        None => Document::ALL.to_vec(),
    };
    let Some(dir) = &args.out else {
        let text: String = docs.iter().map(|d| d.schema_text()).collect();
        let mut out = std::io::stdout().lock();
        return match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
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
    for d in docs {
        let path = dir.join(format!("{}.schema.json", d.name()));
        let text = d.schema_text();
        // Unchanged files are left alone (their times too).
        if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
            continue;
        }
        if let Err(e) = crate::build::write_atomic(&path, text.as_bytes()) {
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
