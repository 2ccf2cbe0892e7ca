//! kapl-run's errors: one enum per operation family, each with its stable
//! code from the one registry (`kapl_codes`), rendered at the edge exactly
//! as kaplc renders its diagnostics (`error[KAPL0806]: message`, then
//! `help: ...`), or as JSON for machine callers.
//!
//! Exit statuses (the book's exit-code table): 125 when kapl-run refused
//! or failed before the command ran, 126 when the command may not run in
//! this step, 127 when its program was not found.

use crate::audit::AuditError;
use crate::bpf::BpfError;
use crate::cgroup::CgroupError;
use crate::cli::ErrorFormat;
use crate::domain::DomainError;
use crate::spawn::SpawnError;
use kapl_codes as codes;
use kapl_runtime::step::StepError;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::PathBuf;

/// kapl-run failed or refused before the command ran.
pub const EXIT_REFUSED: u8 = 125;
/// The command may not run in this step.
pub const EXIT_DENIED: u8 = 126;
/// The command's program was not found.
pub const EXIT_NOT_FOUND: u8 = 127;

/// The image could not be loaded (KAPL0805).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageLoadError {
    /// The file could not be read.
    #[error("cannot read image {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The bytes fail verification.
    #[error("image {path} fails verification: {} {source}", source.code())]
    Verify {
        /// The file.
        path: PathBuf,
        /// Why (its own KAPL07xx code).
        source: kapl_image::ImageError,
    },
}

/// A command could not be started (KAPL0807, or KAPL0810 not found).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// Nothing to run.
    #[error("no command given")]
    Empty,
    /// The program is not in PATH (or does not exist).
    #[error("{0}: command not found")]
    NotFound(String),
    /// Starting it under the step's confinement failed.
    #[error("{program}: {source}")]
    Spawn {
        /// The program as given.
        program: String,
        /// Why.
        source: SpawnError,
    },
}

/// Session control failed (KAPL0808).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// No session is running.
    #[error("no running session")]
    NoSession,
    /// More than one, and none was named.
    #[error("several sessions are running ({})", .0.join(", "))]
    Several(Vec<String>),
    /// Nobody answers on the session's control socket.
    #[error("session {id} is not running (no supervisor answers on its control socket: {source})")]
    NotRunning {
        /// The session.
        id: String,
        /// Why.
        source: io::Error,
    },
    /// The control socket could not be reached.
    #[error("cannot reach session {id}: {source}")]
    Unreachable {
        /// The session.
        id: String,
        /// Why.
        source: io::Error,
    },
    /// Someone else holds the session's socket name.
    #[error(
        "the control socket of session {id} is held by process {pid}, which is not a kapl-run supervisor (another user's, or inside a session); nothing was sent to it"
    )]
    Impostor {
        /// The session.
        id: String,
        /// The holder.
        pid: i32,
    },
    /// The peer could not be checked.
    #[error("cannot check who holds the control socket of session {id}: {source}")]
    PeerCheck {
        /// The session.
        id: String,
        /// Why.
        source: io::Error,
    },
    /// The supervisor could not listen on its control socket.
    #[error("control socket: {0}")]
    Listen(io::Error),
    /// A control-channel operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was done.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// A malformed message.
    #[error("{0}")]
    Protocol(String),
    /// The audit file could not be opened.
    #[error("cannot open audit file {path}: {source}")]
    AuditFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The session's resolver could not open its sockets.
    #[error("cannot start the session's resolver on loopback: {0}")]
    Resolver(io::Error),
    /// The `--otlp` address is not one kapl-run can post to.
    #[error("--otlp: {0}")]
    Otlp(String),
    /// `exec` passed the wrong descriptors.
    #[error("exec needs exactly stdin, stdout and stderr, none of them an inet socket")]
    BadStdio,
}

/// `kapl-run report` cannot make its page (KAPL0813).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The audit file cannot be read.
    #[error("cannot read audit file {path}: {source}")]
    ReadAudit {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The page cannot be written.
    #[error("cannot write the report {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The session left no record of its audit file.
    #[error("no record of session {id}'s audit file ({why})")]
    UnknownSession {
        /// The session.
        id: String,
        /// Why.
        why: String,
    },
    /// The session ran without `--audit`.
    #[error("session {id} was started without --audit: it has no audit file to report")]
    NoAudit {
        /// The session.
        id: String,
    },
}

/// Everything kapl-run can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// KAPL0801: Landlock missing or too old, or a ruleset failed.
    #[error(transparent)]
    Landlock(#[from] DomainError),
    /// KAPL0802: cgroup v2 unusable.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// KAPL0803: BPF programs cannot be loaded or attached.
    #[error(transparent)]
    Bpf(#[from] BpfError),
    /// KAPL0804: audit netlink unavailable.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// KAPL0805: the image is unreadable or fails verification.
    #[error(transparent)]
    Image(#[from] ImageLoadError),
    /// KAPL0806: no such plan or step, or a refused step.
    #[error(transparent)]
    Step(#[from] StepError),
    /// KAPL0807 / KAPL0810: the command could not be started.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// KAPL0808: session control failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// KAPL0809: bad arguments.
    #[error("{0}")]
    Usage(String),
    /// KAPL0805/0806/0811/0812: a plan cannot be loaded, or none is.
    #[error(transparent)]
    Plan(crate::session::revision::PlanLoadError),
    /// KAPL0813: `kapl-run report` cannot make its page.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The command's program may not be executed in this step: reported
    /// like any other denial (the line), exit status 126.
    #[error("{}", .0.line)]
    Denied(Box<kapl_runtime::report::Notice>),
}

impl RunError {
    /// The stable code (`None` for a denial, which is reported as one).
    pub fn code(&self) -> Option<&'static str> {
        Some(match self {
            RunError::Landlock(_) => codes::RUN_LANDLOCK,
            RunError::Cgroup(_) => codes::RUN_CGROUP,
            RunError::Bpf(_) => codes::RUN_BPF,
            RunError::Audit(_) => codes::RUN_AUDIT,
            RunError::Image(_) => codes::RUN_IMAGE,
            RunError::Step(_) => codes::RUN_STEP,
            RunError::Command(CommandError::NotFound(_)) => codes::RUN_NOT_FOUND,
            RunError::Command(_) => codes::RUN_SPAWN,
            RunError::Session(_) => codes::RUN_SESSION,
            RunError::Usage(_) => codes::RUN_USAGE,
            RunError::Plan(e) => e.code(),
            RunError::Report(_) => codes::RUN_REPORT,
            RunError::Denied(_) => return None,
        })
    }

    /// The exit status kapl-run ends with.
    pub fn exit_status(&self) -> u8 {
        match self {
            RunError::Denied(_) => EXIT_DENIED,
            // A refused plan: the session goes on as it was.
            RunError::Plan(
                crate::session::revision::PlanLoadError::NotContained { .. }
                | crate::session::revision::PlanLoadError::OtherObjective(_)
                | crate::session::revision::PlanLoadError::Check(_)
                | crate::session::revision::PlanLoadError::Verify { .. },
            ) => 1,
            RunError::Command(CommandError::NotFound(_)) => EXIT_NOT_FOUND,
            _ => EXIT_REFUSED,
        }
    }

    /// How to fix it, when there is something to say.
    pub fn help(&self) -> Option<String> {
        let s = |t: &str| Some(t.to_string());
        match self {
            RunError::Step(e) => e.help(),
            RunError::Plan(e) => e.help(),
            RunError::Image(_) => s("rebuild the image with `kaplc build`"),
            RunError::Session(SessionError::NoSession | SessionError::NotRunning { .. }) => {
                s("start one with `kapl-run session start IMAGE --plan NAME`")
            }
            RunError::Session(SessionError::Several(_)) => {
                s("pick one with --session ID or KAPL_SESSION")
            }
            RunError::Bpf(BpfError::NotRoot) => s(
                "run it as root, or pass --unprivileged for Landlock alone (TCP ports only, no reports)",
            ),
            RunError::Command(CommandError::NotFound(_)) => {
                s("give the program's path, or check the PATH the command runs with")
            }
            RunError::Usage(_) => s("`kapl-run --help` lists the forms"),
            RunError::Report(ReportError::UnknownSession { .. }) => s(
                "a session is remembered on the machine and by the user that started it, until the machine restarts; give its audit file instead (`kapl-run report AUDIT.jsonl`)",
            ),
            RunError::Report(ReportError::NoAudit { .. }) => {
                s("start sessions with --audit FILE to report them")
            }
            RunError::Bpf(_) | RunError::Audit(_) | RunError::Cgroup(_) => s(
                "run kapl-run as root on a kernel with cgroup v2, BPF and audit, or pass --unprivileged for Landlock alone",
            ),
            _ => None,
        }
    }

    /// As kaplc renders a diagnostic: `error[CODE]: message`, then
    /// `  = help: ...` (a denial is its own line).
    pub fn render(&self) -> String {
        self.to_json().human()
    }

    /// The machine form.
    pub fn to_json(&self) -> ErrorJson {
        ErrorJson {
            code: self.code().map(str::to_string),
            message: self.to_string(),
            help: self.help(),
            exit: i32::from(self.exit_status()),
        }
    }
}

/// An error as data: printed as kaplc prints a diagnostic, or as JSON
/// (`kapl-run --error-format json`); what a supervisor sends its client.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorJson {
    /// The stable code (absent for a denial).
    pub code: Option<String>,
    /// The message.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// The exit status.
    pub exit: i32,
}

impl ErrorJson {
    /// `error[CODE]: message` and its help line, as kaplc prints them (a
    /// denial, which has no code, is its own line).
    pub fn human(&self) -> String {
        let Some(code) = &self.code else {
            return self.message.clone();
        };
        let mut out = format!("error[{code}]: {}", self.message);
        if let Some(h) = &self.help {
            out.push_str(&format!("\n  = help: {h}"));
        }
        out
    }

    /// Prints it on stderr in `fmt`.
    pub fn print(&self, fmt: ErrorFormat) {
        match fmt {
            ErrorFormat::Human => eprintln!("{}", self.human()),
            ErrorFormat::Json => eprintln!("{}", serde_json::to_string(self).unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_registry_codes_and_exit_statuses() {
        let e = RunError::from(StepError::NoStart { plan: "p".into() });
        assert_eq!(e.code(), Some("KAPL0806"));
        assert_eq!(e.exit_status(), 125);
        assert_eq!(e.render(), "error[KAPL0806]: plan `p` has no start step");
        let e = RunError::from(CommandError::NotFound("nosuch".into()));
        assert_eq!((e.code(), e.exit_status()), (Some("KAPL0810"), 127));
        assert!(
            e.render()
                .starts_with("error[KAPL0810]: nosuch: command not found\n  = help: ")
        );
        let e = RunError::Denied(Box::new(kapl_runtime::report::Notice {
            cmd: None,
            line: "denied: x exec /bin/x — no grant".into(),
            deny: true,
            record: None,
        }));
        assert_eq!((e.code(), e.exit_status()), (None, 126));
        assert_eq!(e.render(), "denied: x exec /bin/x — no grant");
        let j = RunError::from(SessionError::NoSession).to_json();
        assert_eq!(j.code.as_deref(), Some("KAPL0808"));
        assert_eq!(j.exit, 125);
        assert!(j.help.is_some());
    }
}
