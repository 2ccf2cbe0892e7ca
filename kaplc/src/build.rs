//! `kaplc build POLICY [--against OBJ.kapi] [-o OUT]`: check, compile,
//! validate, write an image.
//!
//! Input: a policy file (and, with `--against`, the objective image its
//! plans go under: see `against.rs`). Output: one `.kapi` image holding all
//! its plans, or, for a policy without plans, an objective image
//! (default `NAME.kapi` in the current directory), written atomically (a
//! temporary file in the destination directory, synced, then renamed), and
//! the diagnostics. A policy that does not check, does not fit the limits or
//! fails translation validation writes nothing and exits 1; exit 2 when the
//! policy cannot be read or the image cannot be written.

use crate::output::{ColorChoice, Format, plural};
use crate::render;
use kapl_codegen::{Options, compile_with, translate};
use kapl_syntax::{Diagnostic, Severity, SourceMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `kaplc build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy to build.
    #[arg(value_name = "POLICY")]
    pub policy: PathBuf,
    /// Where to write the image (default: `NAME.kapi` in the current
    /// directory).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Build the plans against this objective image: their objectives and
    /// intents come from the image (its embedded sources), and the image
    /// built records the objective's identity.
    #[arg(long, value_name = "OBJ.kapi")]
    pub against: Option<PathBuf>,
    /// Output format for diagnostics.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// When to colour human output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Parameter values (recorded in the image).
    #[command(flatten)]
    pub params: crate::params::ParamArgs,
}

use kapl_codegen::codes::IMAGE_UNWRITABLE;

/// Writes `bytes` to `dest` atomically: a uniquely named temporary file in
/// the same directory, synced, then renamed over `dest`. On any failure the
/// temporary file is removed and `dest` is untouched.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dest
        .file_name()
        .map_or_else(|| "image".into(), |n| n.to_string_lossy().into_owned());
    let mut last = None;
    for attempt in 0..16u32 {
        let tmp = dir.join(format!(".{name}.{}.{attempt}.tmp", std::process::id()));
        let mut f = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let res = f
            .write_all(bytes)
            .and_then(|()| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, dest));
        drop(f);
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // Make the rename durable where the platform allows.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        return Ok(());
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temporary file name available")))
}

fn emit(args: &Args, diags: &[Diagnostic], fe: &kapl_check::FrontEnd, failed: bool, summary: &str) {
    let sources: &SourceMap = &fe.sources;
    let file = args.policy.to_string_lossy();
    let batch = [render::Batch {
        file: &file,
        diagnostics: diags,
        sources,
        params: &fe.params,
    }];
    match render::machine(args.format, &batch, failed) {
        Some(doc) => println!("{doc}"),
        None => eprint!("{}", render::human(diags, sources, args.color.for_stderr())),
    }
    eprintln!("{summary}");
}

/// The default output path for a policy path: `NAME.kapi` in the current
/// directory.
pub fn default_output(policy: &Path) -> PathBuf {
    let stem = policy
        .file_stem()
        .map_or_else(|| "policy".into(), |s| s.to_string_lossy().into_owned());
    PathBuf::from(format!("{stem}.kapi"))
}

/// Runs `kaplc build`.
pub fn run(args: &Args) -> ExitCode {
    let path = args.policy.to_string_lossy().into_owned();
    let objective = match args.against.as_deref().map(crate::against::read) {
        None => None,
        Some(Ok(o)) => Some(o),
        Some(Err(e)) => {
            eprintln!("{e}");
            eprintln!("{path}: nothing built");
            return ExitCode::from(2);
        }
    };
    let values = match crate::against::values_for(objective.as_ref(), args.params.values()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("{path}: nothing built");
            return ExitCode::from(2);
        }
    };
    let fe = match &objective {
        Some(o) => crate::against::check_file(&path, o, &values),
        None => crate::check::check_file(&path, &values),
    };
    if let Some(e) = args.params.unknown([fe.params.as_slice()]) {
        eprintln!("{e}");
        eprintln!("{path}: nothing built");
        return ExitCode::from(2);
    }
    let with = crate::params::for_suffix(&fe.params);
    let mut diags = fe.diagnostics.clone();
    let has_errors = diags.iter().any(|d| d.severity == Severity::Error);
    // Nothing is written: print the findings and why, exit with `code`.
    let refuse = |diags: &[Diagnostic], code: u8, summary: String| {
        emit(args, diags, &fe, true, &summary);
        ExitCode::from(code)
    };
    if fe.root_unreadable {
        return refuse(&diags, 2, format!("{path}: not built (cannot read it)"));
    }
    let policy = match (&fe.policy, has_errors) {
        (Some(p), false) => p,
        _ => {
            let n = diags
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            return refuse(
                &diags,
                1,
                format!("{path}: {}, nothing built{with}", plural(n, "error")),
            );
        }
    };
    let name = args
        .policy
        .file_stem()
        .map_or_else(|| "policy".into(), |s| s.to_string_lossy().into_owned());
    let opts = Options {
        policy: name,
        compiler: format!("kaplc {}", env!("CARGO_PKG_VERSION")),
    };
    // The prover's automata, reused by codegen and translation validation.
    let automata = match &fe.automata {
        Some(a) => std::borrow::Cow::Borrowed(a),
        None => std::borrow::Cow::Owned(kapl_check::GrantAutomata::new(policy)),
    };
    let out = match compile_with(policy, &automata, &fe.sources, &opts) {
        Ok(mut o) => {
            o.image.against = objective
                .as_ref()
                .map(crate::against::ObjectiveImage::against);
            o
        }
        Err(errs) => {
            diags.extend(errs);
            kapl_syntax::diag::sort(&mut diags);
            return refuse(&diags, 1, format!("{path}: nothing built"));
        }
    };
    diags.extend(out.warnings.iter().cloned());
    // What this machine's file system says about the exec grants; a
    // link the standard library names on purpose (it names the loader by
    // every path a system may use) is not the policy author's to fix.
    let in_stdlib = |d: &Diagnostic| {
        d.code == kapl_syntax::codes::EXEC_GRANT_SYMLINK
            && d.labels.iter().filter(|l| l.primary).all(|l| {
                fe.sources
                    .get(l.span.file)
                    .is_some_and(|f| matches!(f.origin, kapl_syntax::Origin::Stdlib(_)))
            })
    };
    diags.extend(
        crate::exec_host::warnings(policy, &crate::exec_host::LiveHost)
            .into_iter()
            .filter(|d| !in_stdlib(d)),
    );
    kapl_syntax::diag::sort(&mut diags);
    let bytes = match kapl_image::write(&out.image) {
        Ok(b) => b,
        Err(e) => {
            let span = policy
                .plans
                .first()
                .map_or(kapl_syntax::Span::new(kapl_syntax::FileId(0), 0, 0), |p| {
                    p.name_span
                });
            diags.push(Diagnostic::error(
                kapl_codegen::codes::IMAGE_ENCODING,
                format!("the image cannot be encoded: {e}"),
                span,
                "while building this policy",
            ));
            return refuse(&diags, 1, format!("{path}: nothing built"));
        }
    };
    // Translation validation: decode what is about to be written and check
    // it against the prover's automata and the grants.
    let tv = translate::validate_with(policy, &automata, &bytes);
    if !tv.is_empty() {
        diags.extend(tv);
        return refuse(
            &diags,
            1,
            format!("{path}: translation validation failed, nothing built"),
        );
    }
    let dest = args
        .output
        .clone()
        .unwrap_or_else(|| default_output(&args.policy));
    if let Err(e) = write_atomic(&dest, &bytes) {
        return refuse(
            &diags,
            2,
            format!(
                "error[{IMAGE_UNWRITABLE}]: cannot write `{}`: {e}; nothing built",
                dest.display()
            ),
        );
    }
    let s = &out.stats;
    let what = match out.image.identity_hex() {
        Some(id) => format!(
            "objective image, {}, {}, identity {}",
            plural(out.image.objectives.len(), "objective"),
            plural(out.image.intents.len(), "intent"),
            id.get(..16).unwrap_or(&id)
        ),
        None => format!(
            "{}, {} grants, {} DFA states, {} transition bytes, {} LPM entries",
            plural(out.image.plans.len(), "plan"),
            s.grants,
            s.dfa_states,
            s.transition_bytes,
            s.lpm_entries
        ),
    };
    let warnings = diags
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    emit(
        args,
        &diags,
        &fe,
        false,
        &format!(
            "{path}: built {} ({} bytes){with}: {what}; translation validated{}",
            dest.display(),
            bytes.len(),
            if warnings > 0 {
                format!("; {}", plural(warnings, "warning"))
            } else {
                String::new()
            }
        ),
    );
    ExitCode::SUCCESS
}
