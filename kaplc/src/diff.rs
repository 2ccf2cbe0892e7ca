//! `kaplc diff OLD.kapl NEW.kapl`: the authority NEW adds and removes, per
//! plan and step, each with a witness request.
//!
//! Input: two policy files. Output: the changes (human text on stdout, or
//! one JSON document) and the exit code: 0 when NEW widens no plan, 1 when
//! it widens one (or when a solver query gave up: fail closed), 2 when a
//! file cannot be read or does not check (its diagnostics go to stderr).
//!
//! JSON: a [`DiffReport`] (`report.rs`; schema `schemas/diff.schema.json`):
//! `{"schema_version": 1, "changes": [{"change": "added"|"removed",
//! "grant": {"column", "file", "line"}|null, "plan": "p", "step": "s"|null,
//! "witness": {...}}], "unknown": ["..."], "widens": bool}`.

use crate::fs_loader::FsLoader;
use crate::output::ColorChoice;
use crate::render;
use crate::report::{
    self, ChangeKind, ChangeReport, DiffReport, PositionReport, Version, WitnessReport,
};
use kapl_check::FrontEnd;
use kapl_prove::diff::{Change, Direction, diff};
use kapl_syntax::SourceMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Output formats of `kaplc diff`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    /// One line per change on stdout.
    #[default]
    Human,
    /// One JSON document on stdout.
    Json,
}

/// Arguments of `kaplc diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy before the change.
    #[arg(value_name = "OLD")]
    pub old: PathBuf,
    /// The policy after the change.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Human)]
    pub format: DiffFormat,
    /// When to colour diagnostics of a policy that does not check.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

fn load(path: &Path) -> FrontEnd {
    let mut loader = FsLoader;
    kapl_check::check_front(&mut loader, &path.to_string_lossy())
}

fn grant_position(fe: &FrontEnd, c: &Change) -> Option<(String, u32, u32)> {
    let policy = fe.policy.as_ref()?;
    let g = policy.grants.get(c.grant?.0 as usize)?;
    let span = if g.rule.via.is_empty() {
        g.rule.span
    } else {
        g.site
    };
    position(&fe.sources, span)
}

fn position(sources: &SourceMap, span: kapl_syntax::Span) -> Option<(String, u32, u32)> {
    let f = sources.get(span.file)?;
    let (line, col) = f.line_col(span.start);
    Some((f.display_name(), line, col))
}

/// One change as JSON; its grant is placed in NEW when added, OLD when
/// removed.
fn change_report(c: &Change, old: &FrontEnd, new: &FrontEnd) -> ChangeReport {
    let (change, side) = match c.direction {
        Direction::Added => (ChangeKind::Added, new),
        Direction::Removed => (ChangeKind::Removed, old),
    };
    ChangeReport {
        change,
        grant: grant_position(side, c).map(|(file, line, column)| PositionReport {
            column,
            file,
            line,
        }),
        plan: c.plan.clone(),
        step: c.step.clone(),
        witness: WitnessReport::from(&c.witness.to_witness()),
    }
}

/// Runs `kaplc diff`.
pub fn run(args: &Args) -> ExitCode {
    let old = load(&args.old);
    let new = load(&args.new);
    let (Some(old_policy), Some(new_policy)) = (&old.policy, &new.policy) else {
        let color = args.color.for_stderr();
        let mut err = std::io::stderr().lock();
        for (path, fe) in [(&args.old, &old), (&args.new, &new)] {
            if fe.policy.is_none() {
                let _ = write!(
                    err,
                    "{}",
                    render::human(&fe.diagnostics, &fe.sources, color)
                );
                let _ = writeln!(err, "{}: does not check; cannot compare", path.display());
            }
        }
        return ExitCode::from(2);
    };
    let d = diff(old_policy, new_policy);
    let widens = d.widens();
    let mut out = std::io::stdout().lock();
    match args.format {
        DiffFormat::Json => {
            let changes = d
                .changes
                .iter()
                .map(|c| change_report(c, &old, &new))
                .collect();
            let doc = DiffReport {
                schema_version: Version,
                changes,
                unknown: d.unknown.clone(),
                widens,
            };
            let _ = writeln!(out, "{}", report::to_text(&doc));
        }
        DiffFormat::Human => {
            for c in &d.changes {
                let place = match &c.step {
                    Some(s) => format!("plan `{}`, step `{s}`", c.plan),
                    None => format!("plan `{}`", c.plan),
                };
                let (verb, side) = match c.direction {
                    Direction::Added => ("adds", &new),
                    Direction::Removed => ("removes", &old),
                };
                let at = grant_position(side, c)
                    .map(|(f, l, col)| format!(" (grant at {f}:{l}:{col})"))
                    .unwrap_or_default();
                let _ = writeln!(out, "{place}: {verb} {}{at}", c.witness);
            }
            for u in &d.unknown {
                let _ = writeln!(out, "not decided: {u}");
            }
            let added = d
                .changes
                .iter()
                .filter(|c| c.direction == Direction::Added)
                .count();
            let removed = d.changes.len() - added;
            let verdict = if widens {
                "NEW widens authority"
            } else {
                "NEW does not widen authority"
            };
            let _ = writeln!(out, "{verdict} ({added} added, {removed} removed)");
        }
    }
    if widens {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
