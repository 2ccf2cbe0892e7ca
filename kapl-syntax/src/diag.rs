//! The one diagnostic type every stage returns.
//!
//! Input: spans and texts from the stage that found the problem.
//! Output: plain data; rendering happens at the edge (ariadne in the CLI,
//! LSP diagnostics in the language server, JSON and SARIF for CI).

use crate::span::Span;
use serde::Serialize;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The policy is rejected.
    Error,
    /// Accepted, but a reviewer should look.
    Warning,
    /// Extra information.
    Note,
}

/// One labelled place in the source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What this place has to do with the problem (may be empty).
    pub message: String,
    /// The primary label says *what*; secondary labels say *why*.
    pub primary: bool,
}

/// A concrete request that shows a proof failure (filled by the prover).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Witness {
    /// A file-system request.
    Fs {
        /// `read`, `write`, `create` or `delete`.
        right: String,
        /// The path (lossy UTF-8 for display).
        path: String,
    },
    /// A program execution.
    Exec {
        /// The executed file's path.
        path: String,
    },
    /// A network request.
    Net {
        /// `connect` or `bind`.
        op: String,
        /// The address, IPv4 dotted or IPv6 text.
        addr: String,
        /// The port.
        port: u16,
    },
    /// A connect to a host name (to an address it resolved to).
    Name {
        /// The host name.
        name: String,
        /// The port.
        port: u16,
    },
}

/// A finding, with a stable code such as `KAPL0101`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error, warning or note.
    pub severity: Severity,
    /// Stable code, `KAPL` and four digits; documented in the book.
    pub code: &'static str,
    /// Short lowercase title; user text in backticks.
    pub message: String,
    /// Primary label first, then secondary labels.
    pub labels: Vec<Label>,
    /// Extra lines of explanation.
    pub notes: Vec<String>,
    /// How to fix it.
    pub help: Option<String>,
    /// A concrete request that breaks a bound (prover findings only).
    pub witness: Option<Witness>,
}

impl Diagnostic {
    /// A new error with its primary label.
    pub fn error(
        code: &'static str,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::new(Severity::Error, code, message, span, label)
    }

    /// A new warning with its primary label.
    pub fn warning(
        code: &'static str,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::new(Severity::Warning, code, message, span, label)
    }

    fn new(
        severity: Severity,
        code: &'static str,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity,
            code,
            message: message.into(),
            labels: vec![Label {
                span,
                message: label.into(),
                primary: true,
            }],
            notes: Vec::new(),
            help: None,
            witness: None,
        }
    }

    /// Adds a secondary label.
    #[must_use]
    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
            primary: false,
        });
        self
    }

    /// Sets the `help:` line.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Adds a note.
    #[must_use]
    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// Attaches a witness.
    #[must_use]
    pub fn with_witness(mut self, witness: Witness) -> Diagnostic {
        self.witness = Some(witness);
        self
    }

    /// The primary span (the first label's).
    pub fn primary_span(&self) -> Option<Span> {
        self.labels.iter().find(|l| l.primary).map(|l| l.span)
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sorts diagnostics by primary position, errors before warnings at a tie.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by_key(|d| {
        (
            d.primary_span().map(|s| (s.file, s.start, s.end)),
            d.severity,
        )
    });
}

/// The "did you mean" helper every stage shares: the closest candidate by
/// edit distance, if it is close enough to be a plausible typo.
pub fn suggest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(wanted, c);
        let limit = (wanted.chars().count().max(c.chars().count()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance over the first 256 characters of each name (a
/// bound on the quadratic work an absurdly long name can cause).
fn edit_distance(a: &str, b: &str) -> usize {
    strsim::levenshtein(first_chars(a, 256), first_chars(b, 256))
}

/// The prefix of `s` holding its first `n` characters.
fn first_chars(s: &str, n: usize) -> &str {
    s.char_indices()
        .nth(n)
        .and_then(|(i, _)| s.get(..i))
        .unwrap_or(s)
}
