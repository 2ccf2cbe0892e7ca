//! `kaplc diff OLD.kapl NEW.kapl`: the authority NEW adds and takes away at
//! every level (objectives, intents, plans, steps), as sets with examples.
//!
//! Input: two policy files. Output: the changes (human text, a JSON
//! [`DiffReport`], a Markdown pull-request comment, or SARIF on stdout) and the
//! exit code: 0 when NEW widens nothing, 1 when it widens something (or an
//! example did not replay: fail closed), 2 when a file cannot be read or
//! does not check (its diagnostics go to stderr).
//!
//! The comparison is `kapl_prove::diff`; this module places its sites in
//! the sources and builds the report ([`text`] renders it).

mod sarif;
mod text;

use crate::fs_loader::FsLoader;
use crate::output::ColorChoice;
use crate::render;
use crate::report::{
    self, AuthorityReport, ChangeReport, DiffReport, EffectKind, GlobReport, LevelKind,
    NetRangeReport, PartKind, PathSetReport, PositionReport, SideKind, Version,
};
use kapl_check::FrontEnd;
use kapl_prove::diff::paths::PathSet;
use kapl_prove::diff::{Authority, Change, Effect, Level, Part, Presence, Side, diff};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Output formats of `kaplc diff`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    /// One line per change on stdout, widenings first, then a verdict.
    #[default]
    Human,
    /// One JSON document on stdout.
    Json,
    /// A pull-request comment: a table per level, widenings first.
    Markdown,
    /// SARIF 2.1.0 for code scanning: one result per change, located in
    /// NEW.
    Sarif,
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
    /// Parameter values, the same for OLD and NEW.
    #[command(flatten)]
    pub params: crate::params::ParamArgs,
}

fn load(path: &Path, values: &kapl_check::ParamValues) -> FrontEnd {
    let mut loader = FsLoader;
    kapl_check::check_front_params(&mut loader, &path.to_string_lossy(), values)
}

fn position(fe: &FrontEnd, span: kapl_syntax::Span) -> Option<PositionReport> {
    let f = fe.sources.get(span.file)?;
    let (line, column) = f.line_col(span.start);
    Some(PositionReport {
        column,
        file: f.display_name(),
        line,
    })
}

fn side(s: Side) -> SideKind {
    match s {
        Side::Old => SideKind::Old,
        Side::New => SideKind::New,
    }
}

fn lossy(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

fn path_set(p: &PathSet) -> PathSetReport {
    PathSetReport {
        exact: p.exact,
        examples: p.examples.iter().map(|e| lossy(e)).collect(),
        globs: p
            .pieces
            .iter()
            .map(|g| GlobReport {
                except: g.except.clone(),
                glob: g.glob.clone(),
                matching: g.matching.clone(),
            })
            .collect(),
        listed: p.listed,
    }
}

fn authority(a: &Authority) -> AuthorityReport {
    match a {
        Authority::Fs { right, paths } => AuthorityReport::Fs {
            paths: path_set(paths),
            right: right.as_str().to_string(),
        },
        Authority::Exec { programs } => AuthorityReport::Exec {
            programs: path_set(programs),
        },
        Authority::Net { op, boxes } => AuthorityReport::Net {
            op: op.as_str().to_string(),
            ranges: boxes
                .iter()
                .map(|b| {
                    let (first, last) = b.ends();
                    NetRangeReport {
                        cidrs: b.cidrs(),
                        first: first.to_string(),
                        last: last.to_string(),
                        port_hi: b.hi,
                        port_lo: b.lo,
                        protocols: vec!["tcp".into(), "udp".into()],
                    }
                })
                .collect(),
        },
        Authority::Names { names } => AuthorityReport::Names {
            names: names
                .iter()
                .map(|n| report::NameChangeReport {
                    pattern: n.pattern.clone(),
                    port_lo: n.lo,
                    port_hi: n.hi,
                    example: n.example.clone(),
                })
                .collect(),
        },
    }
}

/// One change as JSON; its sites are placed in OLD or NEW as it says.
fn change_report(c: &Change, old: &FrontEnd, new: &FrontEnd) -> ChangeReport {
    let fe = match c.side {
        Side::Old => old,
        Side::New => new,
    };
    ChangeReport {
        authority: authority(&c.authority),
        effect: match c.effect {
            Effect::Widening => EffectKind::Widening,
            Effect::Narrowing => EffectKind::Narrowing,
        },
        level: match c.place.level {
            Level::Objective => LevelKind::Objective,
            Level::Intent => LevelKind::Intent,
            Level::Plan => LevelKind::Plan,
            Level::Step => LevelKind::Step,
        },
        name: c.place.name.clone(),
        part: match c.place.part {
            Part::Bound => PartKind::Bound,
            Part::Never => PartKind::Never,
            Part::Grants => PartKind::Grants,
        },
        plan: c.place.plan.clone(),
        presence: match c.place.presence {
            Presence::Both => SideKind::Both,
            Presence::Old => SideKind::Old,
            Presence::New => SideKind::New,
        },
        side: side(c.side),
        sites: c.sites.iter().filter_map(|s| position(fe, *s)).collect(),
    }
}

/// Runs `kaplc diff`.
pub fn run(args: &Args) -> ExitCode {
    let values = match args.params.values() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let old = load(&args.old, &values);
    let new = load(&args.new, &values);
    if let Some(e) = args
        .params
        .unknown([old.params.as_slice(), new.params.as_slice()])
    {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
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
    let doc = DiffReport {
        schema_version: Version,
        changes: d
            .changes
            .iter()
            .map(|c| change_report(c, &old, &new))
            .collect(),
        notes: d.notes.clone(),
        params: render::param_reports(&[
            render::Batch {
                file: &args.old.to_string_lossy(),
                diagnostics: &[],
                sources: &old.sources,
                params: &old.params,
            },
            render::Batch {
                file: &args.new.to_string_lossy(),
                diagnostics: &[],
                sources: &new.sources,
                params: &new.params,
            },
        ]),
        unknown: d.unknown.clone(),
        widens: d.widens(),
    };
    let with = crate::params::describe(&new.params);
    if !with.is_empty() && args.format == DiffFormat::Human {
        eprintln!("compared for {with}");
    }
    let out = match args.format {
        DiffFormat::Json => format!("{}\n", report::to_text(&doc)),
        DiffFormat::Human => text::human(&doc),
        DiffFormat::Markdown => text::markdown(&doc),
        DiffFormat::Sarif => format!(
            "{}\n",
            sarif::sarif(&doc, &new, &args.new.to_string_lossy())
        ),
    };
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    if doc.widens {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
