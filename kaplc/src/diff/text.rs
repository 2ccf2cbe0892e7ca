//! `kaplc diff` in words: the human lines and the Markdown comment.
//!
//! Input: the [`DiffReport`] (the JSON document is the single source, so
//! the three formats cannot disagree). Output: text.
//!
//! Human: one line per change, widenings first, each
//! `PLACE: VERB SET (at FILE:LINE:COL, ...)`, then `note:` and
//! `not decided:` lines and a verdict line. Markdown: a heading with the
//! verdict, then per effect (widenings first) one table per level.

use crate::report::{
    AuthorityReport, ChangeReport, DiffReport, EffectKind, LevelKind, NetRangeReport, PartKind,
    PathSetReport, SideKind,
};
use std::fmt::Write;

/// Where a change is: its level, then its part, e.g. "objective `o`
/// bound", "plan `p`, step `s` (new)".
fn place(c: &ChangeReport) -> String {
    let mut s = level(c);
    match c.part {
        PartKind::Bound => s.push_str(" bound"),
        PartKind::Never => s.push_str(" never"),
        PartKind::Grants => {}
    }
    s
}

/// What the change does: "adds", "removes", "no longer forbids", "now
/// forbids".
fn verb(c: &ChangeReport) -> &'static str {
    match (c.part, c.effect) {
        (PartKind::Never, EffectKind::Widening) => "no longer forbids",
        (PartKind::Never, EffectKind::Narrowing) => "now forbids",
        (_, EffectKind::Widening) => "adds",
        (_, EffectKind::Narrowing) => "removes",
    }
}

fn quoted<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    items
        .into_iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A path set: every member, globs (with `except`), or the globs it lies
/// partly inside; and the examples where they add something.
fn paths(p: &PathSetReport) -> (String, String) {
    if p.listed {
        let all: Vec<&String> = p.globs.iter().map(|g| &g.glob).collect();
        return (quoted(all), String::new());
    }
    let globs: Vec<String> = p
        .globs
        .iter()
        .map(|g| {
            let mut s = format!("`{}`", g.glob);
            if !g.matching.is_empty() {
                let _ = write!(s, " matching {}", quoted(&g.matching));
            }
            if !g.except.is_empty() {
                let _ = write!(s, " except {}", quoted(&g.except));
            }
            s
        })
        .collect();
    let globs = if p.exact {
        globs.join(", ")
    } else {
        format!("paths inside {}", globs.join(", "))
    };
    (globs, quoted(&p.examples))
}

fn ports(lo: u16, hi: u16) -> String {
    match (lo, hi) {
        (0, u16::MAX) => "any port".to_string(),
        (lo, hi) if lo == hi => lo.to_string(),
        (lo, hi) => format!("{lo}-{hi}"),
    }
}

/// Network ranges: one group per address range with its ports (the boxes
/// come sorted by address, then port), the protocols once at the end.
fn ranges(rs: &[NetRangeReport]) -> String {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in rs {
        let addrs = if r.cidrs.len() <= 4 {
            quoted(&r.cidrs)
        } else {
            format!("`{}` to `{}`", r.first, r.last)
        };
        let p = ports(r.port_lo, r.port_hi);
        match groups.last_mut() {
            Some((a, ps)) if *a == addrs => ps.push(p),
            _ => groups.push((addrs, vec![p])),
        }
    }
    let text: Vec<String> = groups
        .into_iter()
        .map(|(addrs, ps)| {
            let word = match ps.as_slice() {
                [one] if one == "any port" => return format!("{addrs} any port"),
                [one] if !one.contains('-') => "port",
                _ => "ports",
            };
            format!("{addrs} {word} {}", ps.join(", "))
        })
        .collect();
    let protocols = rs
        .first()
        .map(|r| r.protocols.join(", "))
        .unwrap_or_default();
    format!("{} ({protocols})", text.join("; "))
}

/// The kind ("read", "run", "connect") and the set, and its examples.
fn set(a: &AuthorityReport) -> (String, String, String) {
    match a {
        AuthorityReport::Fs { paths: p, right } => {
            let (s, e) = paths(p);
            (right.clone(), s, e)
        }
        AuthorityReport::Exec { programs } => {
            let (s, e) = paths(programs);
            ("run".into(), s, e)
        }
        AuthorityReport::Net { op, ranges: rs } => (op.clone(), ranges(rs), String::new()),
        AuthorityReport::Names { names } => {
            let set: Vec<String> = names
                .iter()
                .map(|n| {
                    let ports = if n.port_lo == n.port_hi {
                        format!("port {}", n.port_lo)
                    } else {
                        format!("ports {}-{}", n.port_lo, n.port_hi)
                    };
                    format!("\"{}\" {ports}", n.pattern)
                })
                .collect();
            let examples: Vec<String> = names.iter().map(|n| n.example.clone()).collect();
            (
                "connect to".into(),
                format!("{} (tcp, udp)", set.join("; ")),
                examples.join(", "),
            )
        }
    }
}

fn sites(c: &ChangeReport) -> String {
    c.sites
        .iter()
        .map(|p| format!("{}:{}:{}", p.file, p.line, p.column))
        .collect::<Vec<_>>()
        .join(", ")
}

fn counted(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn verdict(d: &DiffReport) -> String {
    let w = d
        .changes
        .iter()
        .filter(|c| c.effect == EffectKind::Widening)
        .count();
    let n = d.changes.len() - w;
    let head = if d.widens {
        "NEW widens authority"
    } else {
        "NEW does not widen authority"
    };
    format!(
        "{head} ({}, {})",
        counted(w, "widening"),
        counted(n, "narrowing")
    )
}

/// One change as the human text says it (without a newline).
pub fn line(c: &ChangeReport) -> String {
    let (kind, s, e) = set(&c.authority);
    let mut out = format!("{}: {} {kind} {s}", place(c), verb(c));
    if !e.is_empty() {
        let _ = write!(out, " (e.g. {e})");
    }
    let at = sites(c);
    if !at.is_empty() {
        let _ = write!(out, " (at {at})");
    }
    out
}

/// The human text: one line per change, notes, undecided examples, the
/// verdict.
pub fn human(d: &DiffReport) -> String {
    let mut out = String::new();
    for c in &d.changes {
        out.push_str(&line(c));
        out.push('\n');
    }
    for n in &d.notes {
        let _ = writeln!(out, "note: {n}");
    }
    for u in &d.unknown {
        let _ = writeln!(out, "not decided: {u}");
    }
    let _ = writeln!(out, "{}", verdict(d));
    out
}

/// A Markdown table cell: pipes escaped, newlines flattened.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The level a table is about, e.g. "plan `p`, step `s`".
fn level(c: &ChangeReport) -> String {
    let mut s = match (c.level, &c.plan) {
        (LevelKind::Objective, _) => format!("objective `{}`", c.name),
        (LevelKind::Intent, _) => format!("intent `{}`", c.name),
        (LevelKind::Plan, _) | (LevelKind::Step, None) => format!("plan `{}`", c.name),
        (LevelKind::Step, Some(p)) => format!("plan `{p}`, step `{}`", c.name),
    };
    match c.presence {
        SideKind::New => s.push_str(" (new)"),
        SideKind::Old => s.push_str(" (removed)"),
        SideKind::Both => {}
    }
    s
}

/// The pull-request comment: verdict, then widenings and narrowings, each
/// with one table per level.
pub fn markdown(d: &DiffReport) -> String {
    let mut out = String::new();
    let icon = if d.widens { "⚠️" } else { "✅" };
    let _ = writeln!(out, "### {icon} kaplc diff: {}\n", verdict(d));
    for (effect, title) in [
        (EffectKind::Widening, "Widenings"),
        (EffectKind::Narrowing, "Narrowings"),
    ] {
        let of: Vec<&ChangeReport> = d.changes.iter().filter(|c| c.effect == effect).collect();
        if of.is_empty() {
            continue;
        }
        let _ = writeln!(out, "#### {title}\n");
        let mut current = String::new();
        for c in of {
            let here = level(c);
            if here != current {
                if !current.is_empty() {
                    out.push('\n');
                }
                let _ = writeln!(out, "**{here}**\n");
                out.push_str("| part | change | kind | set | examples | where |\n");
                out.push_str("|---|---|---|---|---|---|\n");
                current = here;
            }
            let part = match c.part {
                PartKind::Bound => "bound",
                PartKind::Never => "never",
                PartKind::Grants => "grants",
            };
            let (kind, s, e) = set(&c.authority);
            let _ = writeln!(
                out,
                "| {part} | {} | {} | {} | {} | {} |",
                verb(c),
                cell(&kind),
                cell(&s),
                cell(&e),
                cell(&sites(c))
            );
        }
        out.push('\n');
    }
    if !d.notes.is_empty() {
        out.push_str("#### Notes\n\n");
        for n in &d.notes {
            let _ = writeln!(out, "- {n}");
        }
        out.push('\n');
    }
    if !d.unknown.is_empty() {
        out.push_str("#### Not decided (counted as widening)\n\n");
        for u in &d.unknown {
            let _ = writeln!(out, "- {u}");
        }
        out.push('\n');
    }
    if d.changes.is_empty() {
        out.push_str("No change in authority.\n");
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}
