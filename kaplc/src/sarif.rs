//! `--format sarif`: diagnostics as one SARIF 2.1.0 log, for code-scanning
//! upload in pre-merge CI.
//!
//! Input: the diagnostics and source maps of each checked file. Output: a
//! JSON document with one run of the `kaplc` tool: one result per
//! diagnostic (rule id = the stable code, level, message with the help
//! appended, the primary location, secondary labels as related locations,
//! and the witness request in the result's property bag). Columns count
//! Unicode code points (`columnKind`), as the other outputs do.

use crate::render::Batch;
use kapl_syntax::{Diagnostic, Origin, Severity, SourceMap, Span, codes};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The SARIF artifact location of a file: its path as given, or a stdlib
/// module relative to the `KAPL_STDLIB` base.
fn artifact(sources: &SourceMap, span: Span) -> Value {
    match sources.get(span.file).map(|f| &f.origin) {
        Some(Origin::Stdlib(m)) => json!({"uri": format!("{m}.kapl"), "uriBaseId": "KAPL_STDLIB"}),
        Some(Origin::File(p) | Origin::Virtual(p)) => json!({"uri": uri_of(p)}),
        None => json!({"uri": "unknown"}),
    }
}

/// A relative or absolute path as a URI reference (spaces and other
/// characters outside the URI grammar are percent-encoded).
fn uri_of(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if path.starts_with('/') {
        format!("file://{out}")
    } else {
        out
    }
}

fn region(sources: &SourceMap, span: Span) -> Value {
    let Some(f) = sources.get(span.file) else {
        return json!({"startLine": 1});
    };
    let (sl, sc) = f.line_col(span.start);
    let (el, ec) = f.line_col(span.end.max(span.start));
    json!({"startLine": sl, "startColumn": sc, "endLine": el, "endColumn": ec.max(if el == sl { sc } else { 1 })})
}

fn location(sources: &SourceMap, span: Span) -> Value {
    json!({"physicalLocation": {"artifactLocation": artifact(sources, span), "region": region(sources, span)}})
}

fn result(d: &Diagnostic, sources: &SourceMap) -> Value {
    let level = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    };
    let mut text = d.message.clone();
    if let Some(h) = &d.help {
        text.push_str("\nhelp: ");
        text.push_str(h);
    }
    for n in &d.notes {
        text.push_str("\nnote: ");
        text.push_str(n);
    }
    let mut r = json!({
        "ruleId": d.code,
        "level": level,
        "message": {"text": text},
    });
    if let Some(span) = d.primary_span() {
        r["locations"] = json!([location(sources, span)]);
    }
    let related: Vec<Value> = d
        .labels
        .iter()
        .filter(|l| !l.primary)
        .enumerate()
        .map(|(i, l)| {
            let mut loc = location(sources, l.span);
            loc["id"] = json!(i);
            if !l.message.is_empty() {
                loc["message"] = json!({"text": l.message});
            }
            loc
        })
        .collect();
    if !related.is_empty() {
        r["relatedLocations"] = Value::Array(related);
    }
    if let Some(w) = &d.witness {
        r["properties"] = json!({"witness": w});
    }
    r
}

/// The reporting descriptor of a code: its descriptions are the code's doc
/// comment in the registry (`kapl_codes::DOCS`, built from the source), its
/// `helpUri` the code's anchor on the book's codes page.
fn rule(code: &str) -> Value {
    let Some(d) = codes::doc(code) else {
        // INVARIANT: every code a diagnostic carries is a registry constant;
        // a stray one still gets a rule that names it.
        return json!({"id": code, "name": code, "shortDescription": {"text": code}});
    };
    let uri = d.help_uri();
    json!({
        "id": d.code,
        "name": pascal_case(d.name),
        "shortDescription": {"text": plain(d.summary()), "markdown": d.summary()},
        "fullDescription": {"text": plain(d.doc), "markdown": d.doc},
        "help": {
            "text": format!("{} ({}; see {uri})", plain(d.doc), d.code),
            "markdown": format!("{}\n\nSee [{}]({uri}) in the KAPL book.", d.doc, d.code),
        },
        "helpUri": uri,
    })
}

/// `UNEXPECTED_TOKEN` as `UnexpectedToken` (SARIF rule names are
/// identifiers meant for people).
fn pascal_case(name: &str) -> String {
    name.split('_')
        .map(|w| {
            let mut cs = w.chars();
            cs.next().map_or_else(String::new, |f| {
                f.to_string() + &cs.as_str().to_ascii_lowercase()
            })
        })
        .collect()
}

/// Markdown without its code-span backticks, for the `text` forms.
fn plain(md: &str) -> String {
    md.replace('`', "")
}

/// The SARIF log for every batch.
pub fn sarif(batches: &[Batch<'_>], failed: bool) -> String {
    let mut results = Vec::new();
    let mut codes: BTreeSet<&'static str> = BTreeSet::new();
    for b in batches {
        for d in b.diagnostics {
            codes.insert(d.code);
            results.push(result(d, b.sources));
        }
    }
    let ok = !failed
        && !batches
            .iter()
            .any(|b| b.diagnostics.iter().any(Diagnostic::is_error));
    let params = serde_json::to_value(crate::render::param_reports(batches)).unwrap_or_default();
    let mut doc = log(results, &codes, ok, !failed);
    // The values the proofs were made for, as a run property.
    if let Ok(mut v) = serde_json::from_str::<Value>(&doc)
        && let Some(props) = v.pointer_mut("/runs/0/properties")
    {
        props["params"] = params;
        doc = serde_json::to_string_pretty(&v).unwrap_or(doc);
    }
    doc
}

/// One SARIF log of kaplc's run: `results`, a rule for each code in
/// `codes`, whether the input was fine (`ok`) and whether kaplc could do
/// its work (`successful`).
pub fn log(
    results: Vec<Value>,
    codes: &BTreeSet<&'static str>,
    ok: bool,
    successful: bool,
) -> String {
    let rules: Vec<Value> = codes.iter().map(|c| rule(c)).collect();
    let doc = json!({
        "$schema": "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "kaplc",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": codes::BOOK_URL,
                "rules": rules,
            }},
            "originalUriBaseIds": {"KAPL_STDLIB": {"description": {"text": "kaplc's embedded standard library"}}},
            "columnKind": "unicodeCodePoints",
            "invocations": [{"executionSuccessful": successful}],
            "properties": {"ok": ok},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".to_string())
}

/// A location in a file by its display name, line and column (1-based).
pub fn point(file: &str, line: u32, column: u32) -> Value {
    json!({"physicalLocation": {
        "artifactLocation": {"uri": uri_of(file)},
        "region": {"startLine": line.max(1), "startColumn": column.max(1)},
    }})
}

#[cfg(test)]
mod tests {
    use super::{pascal_case, rule, uri_of};

    #[test]
    fn uris_are_escaped() {
        assert_eq!(uri_of("tests/a b.kapl"), "tests/a%20b.kapl");
        assert_eq!(uri_of("/srv/x.kapl"), "file:///srv/x.kapl");
    }

    #[test]
    fn rules_carry_the_registry_descriptions() {
        assert_eq!(pascal_case("GRANT_REACHES_NEVER"), "GrantReachesNever");
        let r = rule("KAPL0403");
        assert_eq!(r["name"], "GrantReachesNever");
        assert_eq!(
            r["shortDescription"]["text"],
            "A grant reaches a never rule above it (fix: except on the grant)."
        );
        assert!(
            r["helpUri"]
                .as_str()
                .is_some_and(|u| u.ends_with("/codes.html#kapl0403")),
            "{r}"
        );
    }
}
