//! What the building machine says about exec grants (stage: build, after
//! codegen; warnings only, the image does not depend on them).
//!
//! Input: the checked policy and a [`Host`] (the building machine's file
//! system: where a path resolves to, a file's first bytes). Output:
//! warnings with spans:
//!
//! - `KAPL0606`: an exec grant's literal path is a symbolic link here (the
//!   runtime grants the file it resolves to only if the session cannot
//!   change the link);
//! - `KAPL0607`: a program an exec grant names cannot start in its step,
//!   because its ELF loader (`PT_INTERP`) or `#!` interpreter, or theirs,
//!   is executable in no exec grant of the step.
//!
//! The decisions are pure over the [`Host`] trait (tests give a temporary
//! directory or bytes); [`LiveHost`] is the edge that reads files. The
//! ELF reader is the runtime's ([`kapl_runtime::elf`]), so the compiler and
//! the runtime name the same loader.

use kapl_check::ir::{Policy, RuleKind};
use kapl_runtime::elf::{self, Files};
use kapl_syntax::Diagnostic;
use kapl_syntax::codes::{EXEC_GRANT_SYMLINK, EXEC_STARTER_NOT_GRANTED};
use kapl_syntax::glob::{Atom, Branch, Segment};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The building machine's file system, as the warnings read it.
pub trait Host: Files {
    /// The path `path` resolves to (every link followed), if it exists.
    fn canonical(&self, path: &[u8]) -> Option<Vec<u8>>;
}

/// The live file system.
pub struct LiveHost;

impl Files for LiveHost {
    fn head(&self, path: &[u8]) -> Option<Vec<u8>> {
        use std::io::Read;
        let p = Path::new(OsStr::from_bytes(path));
        // Regular files only: never open a FIFO or a device.
        if !std::fs::metadata(p).ok()?.is_file() {
            return None;
        }
        let f = std::fs::File::open(p).ok()?;
        let mut head = Vec::new();
        f.take(elf::HEAD_MAX as u64).read_to_end(&mut head).ok()?;
        Some(head)
    }
}

impl Host for LiveHost {
    fn canonical(&self, path: &[u8]) -> Option<Vec<u8>> {
        std::fs::canonicalize(Path::new(OsStr::from_bytes(path)))
            .ok()
            .map(|p| p.as_os_str().as_bytes().to_vec())
    }
}

/// The path a brace-free glob branch names when it has no wildcard.
fn literal(b: &Branch) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for seg in &b.segments {
        let Segment::Atoms(atoms) = seg else {
            return None;
        };
        out.push(b'/');
        for a in atoms {
            let Atom::Literal(bytes) = a else {
                return None;
            };
            out.extend_from_slice(bytes);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The warnings of `policy` on `host`, in source order.
pub fn warnings(policy: &Policy, host: &dyn Host) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for plan in &policy.plans {
        for (si, step) in plan.steps.iter().enumerate() {
            let grants: Vec<&kapl_check::ir::Grant> = step
                .grants
                .iter()
                .chain(&plan.grants)
                .filter_map(|g| policy.grants.get(g.0 as usize))
                .collect();
            let exec_globs: Vec<_> = grants
                .iter()
                .filter_map(|g| match &g.rule.kind {
                    RuleKind::Exec { patterns } => Some(patterns),
                    _ => None,
                })
                .flatten()
                .collect();
            // The kernel checks the file a name resolves to; the runtime
            // grants a followed link's file, so either name will do here.
            let mut may_execute = |p: &[u8]| {
                let real = host.canonical(p);
                exec_globs.iter().any(|pat| {
                    pat.glob.matches(p) || real.as_deref().is_some_and(|r| pat.glob.matches(r))
                })
            };
            for g in &grants {
                let RuleKind::Exec { patterns } = &g.rule.kind else {
                    continue;
                };
                // A plan-wide grant is reported once, in its first step.
                let first_step = g.step.is_some() || si == 0;
                for pat in patterns {
                    for path in pat.glob.branches.iter().filter_map(literal) {
                        let shown = String::from_utf8_lossy(&path).into_owned();
                        let real = host.canonical(&path);
                        if first_step && let Some(r) = real.as_ref().filter(|r| **r != path) {
                            let to = String::from_utf8_lossy(r);
                            out.push(
                                Diagnostic::warning(
                                    EXEC_GRANT_SYMLINK,
                                    format!("exec grant names a symbolic link: `{shown}` resolves to `{to}` here"),
                                    pat.span,
                                    format!("`{shown}` is a symbolic link on this machine"),
                                )
                                .with_note(format!(
                                    "the runtime grants `{to}`, the file it resolves to when the step starts, only if no step of the plan may create, write or delete the link or a directory on the way; otherwise the session could redirect it, and the exec is refused"
                                ))
                                .with_help(format!("name the file itself: `exec \"{to}\"`")),
                            );
                        }
                        let program = real.unwrap_or_else(|| path.clone());
                        if let Some(r) = elf::refused_starter(&program, host, &mut may_execute) {
                            let named = String::from_utf8_lossy(&r.path);
                            let what = if r.of == program {
                                format!("its {} `{named}`", r.role)
                            } else {
                                format!(
                                    "the {} `{named}` of its interpreter `{}`",
                                    r.role,
                                    String::from_utf8_lossy(&r.of)
                                )
                            };
                            out.push(
                                Diagnostic::warning(
                                    EXEC_STARTER_NOT_GRANTED,
                                    format!(
                                        "`{shown}` cannot start in step `{}`: {what} is not executable there",
                                        step.name
                                    ),
                                    pat.span,
                                    format!("the kernel executes {what} to run this program"),
                                )
                                .with_label(step.name_span, "no exec grant of this step covers it")
                                .with_note("Landlock checks the execute right on the loader and on a script's interpreter too; the runtime refuses the exec (exit 126)")
                                .with_help(r.help()),
                            );
                        }
                    }
                }
            }
        }
    }
    kapl_syntax::diag::sort(&mut out);
    out
}
