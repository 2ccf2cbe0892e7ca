//! Where decisions are reported: the `--audit` file (one JSON record per
//! line) and the lines for the commands' stderr (stage: runtime, decision
//! reporting). The record and the line are built by
//! `kapl_runtime::report`; this module writes them.

use super::Session;
use kapl_runtime::record::AuditRecord;
use kapl_runtime::report::{Decision, Notice};
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// The `--audit` file. A record that cannot be written (disk full, I/O
/// error) is counted (reported with the session's losses) and any part of
/// it written is cut off again, so the file stays whole lines.
pub struct Sink {
    file: Option<File>,
    /// The OTLP exporter (`--otlp`).
    pub(super) otlp: Option<crate::otlp::Exporter>,
    /// Length after the last whole record.
    len: u64,
    /// Records not written.
    unwritten: u64,
}

impl Sink {
    /// No audit file.
    pub fn none() -> Sink {
        Sink {
            file: None,
            otlp: None,
            len: 0,
            unwritten: 0,
        }
    }

    /// Appends to `p` (created if missing).
    pub fn open(p: &Path) -> std::io::Result<Sink> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)?;
        let len = file.metadata()?.len();
        Ok(Sink {
            file: Some(file),
            otlp: None,
            len,
            unwritten: 0,
        })
    }

    /// Records that could not be written.
    pub fn unwritten(&self) -> u64 {
        self.unwritten
    }

    /// Records not delivered to the OTLP collector.
    pub fn undelivered(&self) -> u64 {
        self.otlp
            .as_ref()
            .map_or(0, crate::otlp::Exporter::undelivered)
    }

    /// Appends `rec` as one line; on the first failure, the notice that
    /// says so.
    pub fn write(&mut self, rec: &impl Serialize) -> Option<String> {
        let file = self.file.as_mut()?;
        let mut line = serde_json::to_vec(rec).unwrap_or_default();
        line.push(b'\n');
        match file.write_all(&line) {
            Ok(()) => {
                self.len += line.len() as u64;
                None
            }
            Err(e) => {
                let _ = file.set_len(self.len);
                self.unwritten += 1;
                (self.unwritten == 1).then(|| {
                    format!("kapl-run: the audit file cannot be written ({e}): decision records are being lost; the session summary counts them")
                })
            }
        }
    }
}

impl Session {
    /// Reports one decision: its record to the audit file, its line to
    /// `out` (a first write failure adds a session-wide notice).
    pub(super) fn emit(&mut self, out: &mut Vec<Notice>, d: Decision) {
        self.emit_as(out, d, false);
    }

    /// [`Self::emit`]; a `quiet` denial is recorded and counted like any
    /// other, but its line is shown only with `--show-allows` (a denial
    /// every ordinary program meets and carries on from, which a grant
    /// covers but Landlock cannot express).
    pub(super) fn emit_as(&mut self, out: &mut Vec<Notice>, d: Decision, quiet: bool) {
        self.emit_full(out, d, quiet, None);
    }

    /// [`Self::emit`] for a connect to an address the session's resolver
    /// learned for `name`, asked at `at`.
    pub(super) fn emit_learned(
        &mut self,
        out: &mut Vec<Notice>,
        d: Decision,
        name: String,
        at: std::time::SystemTime,
    ) {
        let from = kapl_runtime::record::LearnedFrom {
            name,
            queried_at: kapl_runtime::record::rfc3339(at),
        };
        self.emit_full(out, d, false, Some(from));
    }

    fn emit_full(
        &mut self,
        out: &mut Vec<Notice>,
        d: Decision,
        quiet: bool,
        learned: Option<kapl_runtime::record::LearnedFrom>,
    ) {
        let now = std::time::SystemTime::now();
        let Some(mut r) = self.reporter.report(&self.image, d, now) else {
            return;
        };
        if let Some(l) = learned {
            r.notice.line.push_str(&format!(
                " (address learned for {} at {})",
                l.name, l.queried_at
            ));
            r.record.learned = Some(l);
        }
        if let Some(x) = self.sink.otlp.as_mut() {
            x.send(&r.record);
        }
        let mut notice = r.notice;
        if quiet {
            notice.deny = false;
        } else if notice.deny
            && let Some(verdict) = self.explain_denial(&r.record)
        {
            notice.line.push_str("\n  = ");
            notice.line.push_str(&verdict);
        }
        self.write_record(out, &AuditRecord::Decision(Box::new(r.record)));
        out.push(notice);
    }

    /// Writes a record; a first failure is said to every command.
    pub(super) fn write_record(&mut self, out: &mut Vec<Notice>, rec: &AuditRecord) {
        if let Some(line) = self.sink.write(rec) {
            out.push(Notice {
                cmd: None,
                line,
                deny: true,
                record: None,
            });
        }
    }
}
