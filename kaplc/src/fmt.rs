//! `kaplc fmt [--check] FILE...`: rewrite policies in the canonical layout.
//!
//! Input: paths (`-` reads stdin and writes the result to stdout). Output:
//! the files rewritten in place (atomically, only when they change), or
//! with `--check` a line per file that is not formatted. A file with
//! syntax errors is never rewritten: its diagnostics are printed. Exit 0
//! when everything is (now) formatted, 1 when a file has syntax errors or
//! `--check` found one to reformat, 2 when a file cannot be read or written.

use crate::output::ColorChoice;
use crate::render;
use kapl_check::load::MAX_FILE_BYTES;
use kapl_syntax::{Origin, SourceMap, codes};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `kaplc fmt`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy files to format (`-` for stdin to stdout).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Change nothing; exit 1 if a file is not formatted.
    #[arg(long)]
    pub check: bool,
    /// When to colour diagnostics (`NO_COLOR` is honoured by `auto`).
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// What happened to one file.
enum Outcome {
    /// Already formatted, or rewritten.
    Ok,
    /// Syntax errors, or `--check` found a difference.
    Failed,
    /// Could not be read or written.
    Io,
}

/// Runs `kaplc fmt`.
pub fn run(args: &Args) -> ExitCode {
    let mut worst = 0u8;
    for path in &args.files {
        let code = match one(path, args) {
            Outcome::Ok => 0,
            Outcome::Failed => 1,
            Outcome::Io => 2,
        };
        worst = worst.max(code);
    }
    ExitCode::from(worst)
}

fn one(path: &Path, args: &Args) -> Outcome {
    let stdin = path.as_os_str() == "-";
    let name = if stdin {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    };
    let bytes = match read(path, stdin) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "error[{}]: cannot read `{name}`: {e}",
                codes::FILE_UNREADABLE
            );
            return Outcome::Io;
        }
    };
    if bytes.len() > MAX_FILE_BYTES {
        eprintln!(
            "error[{}]: `{name}` is too large ({} bytes; the limit is {MAX_FILE_BYTES})",
            codes::FILE_TOO_LARGE,
            bytes.len()
        );
        return Outcome::Failed;
    }
    let Ok(text) = String::from_utf8(bytes) else {
        eprintln!(
            "error[{}]: `{name}` is not valid UTF-8; not formatted",
            codes::NOT_UTF8
        );
        return Outcome::Failed;
    };
    let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut sources = SourceMap::new();
    let id = sources.add(Origin::File(name.clone()), body.to_string());
    let formatted = match kapl_fmt::format_source(id, body) {
        Ok(f) => f,
        Err(diags) => {
            eprint!(
                "{}",
                render::human(&diags, &sources, args.color.for_stderr())
            );
            eprintln!("{name}: not formatted (it has syntax errors)");
            return Outcome::Failed;
        }
    };
    if stdin {
        if args.check {
            return check_result(&name, &text, &formatted);
        }
        let mut out = std::io::stdout().lock();
        return match out
            .write_all(formatted.as_bytes())
            .and_then(|()| out.flush())
        {
            Ok(()) => Outcome::Ok,
            Err(e) => {
                eprintln!(
                    "error[{}]: cannot write to stdout: {e}",
                    codes::FILE_UNREADABLE
                );
                Outcome::Io
            }
        };
    }
    if args.check {
        return check_result(&name, &text, &formatted);
    }
    if formatted == text {
        return Outcome::Ok;
    }
    match write_atomically(path, &formatted) {
        Ok(()) => {
            eprintln!("{name}: formatted");
            Outcome::Ok
        }
        Err(e) => {
            eprintln!(
                "error[{}]: cannot write `{name}`: {e}",
                codes::FILE_UNREADABLE
            );
            Outcome::Io
        }
    }
}

fn read(path: &Path, stdin: bool) -> std::io::Result<Vec<u8>> {
    let limit = u64::try_from(MAX_FILE_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut bytes = Vec::new();
    if stdin {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut bytes)?;
    } else {
        if std::fs::metadata(path)?.is_dir() {
            return Err(std::io::Error::other("it is a directory"));
        }
        std::fs::File::open(path)?
            .take(limit)
            .read_to_end(&mut bytes)?;
    }
    Ok(bytes)
}

/// `--check`: says where the first difference is.
fn check_result(name: &str, text: &str, formatted: &str) -> Outcome {
    if text == formatted {
        return Outcome::Ok;
    }
    let line = text
        .lines()
        .zip(formatted.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| text.lines().count().min(formatted.lines().count()))
        + 1;
    eprintln!("{name}:{line}: not formatted (run `kaplc fmt {name}`)");
    Outcome::Failed
}

/// Writes through a temporary file in the same directory and a rename, so
/// the file is never seen half written; keeps the file's permissions, and
/// writes through a symbolic link to the file it names.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let real = std::fs::canonicalize(path)?;
    let path = real.as_path();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map_or_else(|| "policy".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{file_name}.kaplc-fmt.{}", std::process::id()));
    // `create_new`: never follow or reuse something already there (and so
    // never remove a file this run did not create).
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    let result = (|| {
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
