//! `kaplc check FILE...`: run the checker on each file and print findings.
//!
//! Input: paths on the command line. Output: diagnostics (human on stderr,
//! or one JSON document on stdout) and the exit code: 0 when no file has
//! errors (warnings allowed), 1 when a policy has errors, 2 when a file
//! could not be read.

use crate::fs_loader::FsLoader;
use crate::output::{ColorChoice, Format, plural};
use crate::render;
use kapl_check::{FrontEnd, ParamValues};
use kapl_syntax::Severity;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kaplc check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy files to check (each is checked as its own policy).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Check plans against this objective image (their objectives and
    /// intents come from the image).
    #[arg(long, value_name = "OBJ.kapi")]
    pub against: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// When to colour human output (`NO_COLOR` is honoured by `auto`).
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Parameter values.
    #[command(flatten)]
    pub params: crate::params::ParamArgs,
}

/// Checks one policy file for the parameter values given: the front end,
/// then (when it is clean) the later stages.
pub fn check_file(path: &str, values: &ParamValues) -> FrontEnd {
    let mut loader = FsLoader;
    let mut fe = kapl_check::check_front_params(&mut loader, path, values);
    kapl_prove::prove_front_end(&mut fe);
    fe
}

fn count(fe: &FrontEnd, sev: Severity) -> usize {
    fe.diagnostics.iter().filter(|d| d.severity == sev).count()
}

/// Runs `kaplc check`.
pub fn run(args: &Args) -> ExitCode {
    let objective = match args.against.as_deref().map(crate::against::read) {
        None => None,
        Some(Ok(o)) => Some(o),
        Some(Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let values = match crate::against::values_for(objective.as_ref(), args.params.values()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let results: Vec<(String, FrontEnd)> = args
        .files
        .iter()
        .map(|p| {
            let path = p.to_string_lossy().into_owned();
            let fe = match &objective {
                Some(o) => crate::against::check_file(&path, o, &values),
                None => check_file(&path, &values),
            };
            (path, fe)
        })
        .collect();
    if let Some(e) = args
        .params
        .unknown(results.iter().map(|(_, fe)| fe.params.as_slice()))
    {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let unreadable = results.iter().any(|(_, fe)| fe.root_unreadable);
    let errors = results.iter().any(|(_, fe)| count(fe, Severity::Error) > 0);
    let batches: Vec<render::Batch<'_>> = results
        .iter()
        .map(|(path, fe)| render::Batch {
            file: path,
            diagnostics: &fe.diagnostics,
            sources: &fe.sources,
            params: &fe.params,
        })
        .collect();
    match render::machine(args.format, &batches, unreadable) {
        Some(doc) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{doc}");
        }
        None => {
            let color = args.color.for_stderr();
            let mut err = std::io::stderr().lock();
            for (path, fe) in &results {
                let _ = write!(
                    err,
                    "{}",
                    render::human(&fe.diagnostics, &fe.sources, color)
                );
                let (e, w) = (count(fe, Severity::Error), count(fe, Severity::Warning));
                let with = crate::params::for_suffix(&fe.params);
                let summary = if fe.root_unreadable {
                    format!("{path}: not checked (cannot read it)")
                } else if e > 0 {
                    format!(
                        "{path}: {}, {}{with}",
                        plural(e, "error"),
                        plural(w, "warning")
                    )
                } else if w > 0 {
                    format!("{path}: ok, {}{with}", plural(w, "warning"))
                } else {
                    format!("{path}: ok{with}")
                };
                let _ = writeln!(err, "{summary}");
            }
        }
    }
    if unreadable {
        ExitCode::from(2)
    } else if errors {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
