//! Rendering diagnostics at the edge: ariadne for people, JSON for tools.
//!
//! Input: [`Diagnostic`]s and the [`SourceMap`] their spans point into.
//! Output: text. Human output shows each finding as `error[KAPL0301]: ...`
//! with the source lines, the primary label (what), secondary labels (why),
//! notes and `help:`. JSON output is a [`CheckReport`] (its shape and schema
//! are in `report.rs`), with 1-based lines and columns and exclusive ends.

use crate::output::Format;
use crate::report::{
    CheckReport, DiagnosticReport, LabelReport, SeverityReport, Version, WitnessReport,
};
use ariadne::{Color, Config, IndexType, Label, Report, ReportKind, Source};
use kapl_syntax::{Diagnostic, FileId, Severity, SourceMap, Span};
use std::collections::HashMap;
use std::fmt;

/// ariadne's view of our source map, built lazily per file.
struct Cache<'a> {
    sources: &'a SourceMap,
    built: HashMap<FileId, Source<String>>,
}

/// Text as shown: every byte offset kept, but characters that ariadne
/// would treat as line breaks (or that would garble a terminal) replaced by
/// spaces of the same byte length, so line numbers match [`SourceMap`]'s.
fn displayable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\t' => out.push(c),
            '\r' if chars.peek() == Some(&'\n') => out.push(c),
            '\u{85}' | '\u{2028}' | '\u{2029}' => {
                out.extend(std::iter::repeat_n(' ', c.len_utf8()))
            }
            c if c.is_control() => out.extend(std::iter::repeat_n(' ', c.len_utf8())),
            c => out.push(c),
        }
    }
    out
}

impl ariadne::Cache<FileId> for Cache<'_> {
    type Storage = String;

    fn fetch(&mut self, id: &FileId) -> Result<&Source<String>, impl fmt::Debug> {
        let sources = self.sources;
        let src = self.built.entry(*id).or_insert_with(|| {
            let text = sources
                .get(*id)
                .map(|f| displayable(&f.text))
                .unwrap_or_default();
            Source::from(text)
        });
        Ok::<_, String>(src)
    }

    fn display<'b>(&self, id: &'b FileId) -> Option<impl fmt::Display + 'b> {
        Some(
            self.sources
                .get(*id)
                .map_or_else(|| "<unknown>".to_string(), |f| f.display_name()),
        )
    }
}

/// A span made safe for ariadne: inside the text, on character boundaries,
/// and at least one character wide when the text allows. `None` when there
/// is nothing to point at (an empty or missing file).
fn clamp(sources: &SourceMap, span: Span) -> Option<std::ops::Range<usize>> {
    let text = &sources.get(span.file)?.text;
    if text.is_empty() {
        return None;
    }
    let len = text.len();
    let floor = |mut i: usize| {
        i = i.min(len);
        while i > 0 && !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let mut start = floor(span.start as usize);
    let mut end = floor((span.end as usize).max(span.start as usize));
    if end < span.end as usize && end < len {
        // Round a cut end up to the next boundary.
        end += text[end..].chars().next().map_or(0, char::len_utf8);
    }
    if start == end {
        if start == len {
            // At the end of the file: point at its last visible character.
            let trimmed = text.trim_end();
            if let Some(c) = trimmed.chars().next_back() {
                end = trimmed.len();
                start = end - c.len_utf8();
            }
        } else if let Some(c) = text[start..]
            .chars()
            .next()
            .filter(|c| *c != '\n' && *c != '\r')
        {
            end = start + c.len_utf8();
        } else if let Some(c) = text[..start].chars().next_back().filter(|c| *c != '\n') {
            start -= c.len_utf8();
        }
    }
    Some(start..end.max(start))
}

fn severity_word(s: Severity) -> (&'static str, Color) {
    match s {
        Severity::Error => ("error", Color::Red),
        Severity::Warning => ("warning", Color::Yellow),
        Severity::Note => ("note", Color::Cyan),
    }
}

/// Renders one diagnostic without source snippets (nothing to point at).
fn plain(d: &Diagnostic, sources: &SourceMap) -> String {
    let (word, _) = severity_word(d.severity);
    let mut out = format!("{word}[{}]: {}\n", d.code, d.message);
    if let Some(f) = d.primary_span().and_then(|s| sources.get(s.file)) {
        out.push_str(&format!("  --> {}\n", f.display_name()));
    }
    for n in &d.notes {
        out.push_str(&format!("  = note: {n}\n"));
    }
    if let Some(h) = &d.help {
        out.push_str(&format!("  = help: {h}\n"));
    }
    out
}

fn ariadne_report(d: &Diagnostic, sources: &SourceMap, color: bool) -> Option<String> {
    let primary = d.primary_span()?;
    let primary_range = clamp(sources, primary)?;
    let (word, col) = severity_word(d.severity);
    let head = format!("{word}[{}]", d.code);
    let config = Config::default()
        .with_color(color)
        .with_index_type(IndexType::Byte)
        .with_compact(false);
    let mut b = Report::build(
        ReportKind::Custom(&head, col),
        (primary.file, primary_range),
    )
    .with_config(config)
    .with_message(&d.message);
    for (i, l) in d.labels.iter().enumerate() {
        let Some(range) = clamp(sources, l.span) else {
            continue;
        };
        let mut label =
            Label::new((l.span.file, range)).with_order(i32::try_from(i).unwrap_or(i32::MAX));
        if !l.message.is_empty() {
            label = label.with_message(&l.message);
        }
        if color {
            label = label.with_color(if l.primary { col } else { Color::Blue });
        }
        b = b.with_label(label);
    }
    for n in &d.notes {
        b = b.with_note(n);
    }
    if let Some(h) = &d.help {
        b = b.with_help(h);
    }
    let report = b.finish();
    let mut buf = Vec::new();
    let cache = Cache {
        sources,
        built: HashMap::new(),
    };
    report.write(cache, &mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    // ariadne colours custom report kinds even with colour off; drop escape
    // sequences then, and trailing blanks always (stable snapshots).
    let text = if color {
        text.into_owned()
    } else {
        strip_ansi(&text)
    };
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Some(out)
}

/// Removes `ESC [ ... letter` sequences.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Renders every diagnostic for people.
pub fn human(diags: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    let mut out = String::new();
    // ariadne admits to bugs; a rendering failure must not lose the finding,
    // so a panic inside it falls back to the plain form (silently: the
    // finding itself is still printed).
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for d in diags {
        let rendered = std::panic::catch_unwind(|| ariadne_report(d, sources, color))
            .ok()
            .flatten();
        out.push_str(&rendered.unwrap_or_else(|| plain(d, sources)));
    }
    std::panic::set_hook(hook);
    out
}

fn position(sources: &SourceMap, span: Span) -> (String, u32, u32, u32, u32) {
    match sources.get(span.file) {
        Some(f) => {
            let (line, column) = f.line_col(span.start);
            let (end_line, end_column) = f.line_col(span.end.max(span.start));
            (f.display_name(), line, column, end_line, end_column)
        }
        None => ("<unknown>".to_string(), 1, 1, 1, 1),
    }
}

/// One diagnostic set for one source map, for [`json`].
pub struct Batch<'a> {
    /// The policy file as given.
    pub file: &'a str,
    /// The findings.
    pub diagnostics: &'a [Diagnostic],
    /// Where their spans point.
    pub sources: &'a SourceMap,
    /// The policy's parameters and the values the check was made for.
    pub params: &'a [kapl_check::Param],
}

/// Every batch's parameters with their values, for JSON and SARIF.
pub fn param_reports(batches: &[Batch<'_>]) -> Vec<crate::report::ParamReport> {
    let mut out = Vec::new();
    for b in batches {
        let mut ps: Vec<&kapl_check::Param> = b.params.iter().collect();
        ps.sort_by(|a, c| a.name.cmp(&c.name));
        for p in ps {
            out.push(crate::report::ParamReport {
                file: b.file.to_string(),
                name: p.name.clone(),
                value: p.value.clone(),
                source: p.source.into(),
            });
        }
    }
    out
}

/// The document `format` prints on stdout for these batches: JSON or SARIF
/// (`failed` as for [`json`]); `None` for [`Format::Human`], which each
/// subcommand writes to stderr with its own summary lines.
pub fn machine(format: Format, batches: &[Batch<'_>], failed: bool) -> Option<String> {
    match format {
        Format::Json => Some(json(batches, failed)),
        Format::Sarif => Some(crate::sarif::sarif(batches, failed)),
        Format::Human => None,
    }
}

/// Renders every batch as one JSON document, a [`CheckReport`] (`ok` is
/// false when any diagnostic is an error, or when `failed` says an input
/// could not be read).
pub fn json(batches: &[Batch<'_>], failed: bool) -> String {
    let mut all = Vec::new();
    for b in batches {
        for d in b.diagnostics {
            let (file, line, column, end_line, end_column) = d
                .primary_span()
                .map_or(("<unknown>".to_string(), 1, 1, 1, 1), |s| {
                    position(b.sources, s)
                });
            let labels = d
                .labels
                .iter()
                .map(|l| {
                    let (file, line, column, end_line, end_column) = position(b.sources, l.span);
                    LabelReport {
                        file,
                        line,
                        column,
                        end_line,
                        end_column,
                        message: l.message.clone(),
                    }
                })
                .collect();
            all.push(DiagnosticReport {
                severity: d.severity.into(),
                code: d.code,
                message: &d.message,
                file,
                line,
                column,
                end_line,
                end_column,
                labels,
                help: d.help.as_deref(),
                witness: d.witness.as_ref().map(WitnessReport::from),
            });
        }
    }
    let ok = !failed && !all.iter().any(|d| d.severity == SeverityReport::Error);
    let doc = CheckReport {
        schema_version: Version,
        ok,
        diagnostics: all,
        params: param_reports(batches),
    };
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| {
        format!(
            "{{\"schema_version\": 1, \"ok\": false, \"diagnostics\": [], \"internal_error\": {:?}}}",
            e.to_string()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kapl_syntax::Origin;

    #[test]
    fn clamp_keeps_spans_inside_and_visible() {
        let mut sm = SourceMap::new();
        let f = sm.add(Origin::Virtual("t".into()), "ab\né\n".to_string());
        assert_eq!(clamp(&sm, Span::new(f, 0, 2)), Some(0..2));
        // Zero width at a line end: pointed back at the last character.
        assert_eq!(clamp(&sm, Span::new(f, 2, 2)), Some(1..2));
        // Inside a multi-byte character: widened to the whole character.
        assert_eq!(clamp(&sm, Span::new(f, 4, 4)), Some(3..5));
        // Past the end.
        assert_eq!(clamp(&sm, Span::new(f, 90, 99)), Some(3..5));
        let e = sm.add(Origin::Virtual("e".into()), String::new());
        assert_eq!(clamp(&sm, Span::new(e, 0, 0)), None);
    }

    #[test]
    fn displayable_keeps_offsets() {
        let s = "a\u{0}b\rc\r\nd\u{2028}e\u{b}";
        let d = displayable(s);
        assert_eq!(d.len(), s.len());
        assert_eq!(d.lines().count(), 2);
    }
}
