//! The editor features, as plain functions of an [`Analysis`]: diagnostics
//! in LSP form, hover, go to definition, completion, document symbols.
//!
//! Input: an analysis and a byte offset in the document. Output: `lsp_types`
//! values ready to send. Rendering of [`kapl_syntax::Diagnostic`] into
//! `lsp_types::Diagnostic` happens here, at the edge (as the CLI renders
//! with ariadne).

use crate::analysis::Analysis;
use crate::complete::{self, Context};
use crate::index::{Def, DefKind, Hit, Target};
use crate::text::{Encoding, LineIndex, path_to_uri};
use kapl_check::ir;
use kapl_syntax::{Diagnostic, FileId, Origin, Severity, Span, Witness};
use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionResponse, DiagnosticRelatedInformation,
    DiagnosticSeverity, DocumentSymbol, GotoDefinitionResponse, Hover, HoverContents, Location,
    MarkupContent, MarkupKind, NumberOrString, Range, SymbolKind, Uri,
};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Line indexes of an analysis's files, built on demand.
struct Lines<'a> {
    a: &'a Analysis,
    enc: Encoding,
    cache: HashMap<FileId, LineIndex>,
}

impl<'a> Lines<'a> {
    fn new(a: &'a Analysis, enc: Encoding) -> Lines<'a> {
        Lines {
            a,
            enc,
            cache: HashMap::new(),
        }
    }

    fn range(&mut self, span: Span) -> Range {
        let Some(file) = self.a.sources.get(span.file) else {
            return Range::default();
        };
        let idx = self
            .cache
            .entry(span.file)
            .or_insert_with(|| LineIndex::new(&file.text));
        idx.range(&file.text, span.range(), self.enc)
    }
}

/// Where a span is, as `name:line:column` (1-based) for messages.
fn place(a: &Analysis, span: Span) -> String {
    match a.sources.get(span.file) {
        Some(f) => {
            let (l, c) = f.line_col(span.start);
            format!("{}:{l}:{c}", f.display_name())
        }
        None => "?".to_string(),
    }
}

/// A witness in words.
pub fn witness_text(w: &Witness) -> String {
    match w {
        Witness::Fs { right, path } => format!("{right} `{path}`"),
        Witness::Exec { path } => format!("exec `{path}`"),
        Witness::Net { op, addr, port } => format!("{op} {addr} port {port}"),
        Witness::Name { name, port } => format!("connect {name} port {port}"),
    }
}

/// The document's diagnostics in LSP form. Findings located in other files
/// (an imported file with an error) are shown at the top of the document,
/// naming the place.
pub fn lsp_diagnostics(a: &Analysis, _uri: &Uri, enc: Encoding) -> Vec<lsp_types::Diagnostic> {
    let mut lines = Lines::new(a, enc);
    let mut out = Vec::new();
    for d in &a.diagnostics {
        out.push(one_diagnostic(a, d, &mut lines));
    }
    out
}

fn one_diagnostic(a: &Analysis, d: &Diagnostic, lines: &mut Lines<'_>) -> lsp_types::Diagnostic {
    let mut message = d.message.clone();
    let primary = d.primary_span();
    let range = match primary {
        Some(s) if Some(s.file) == a.root => lines.range(s),
        Some(s) => {
            message = format!("in {}: {message}", place(a, s));
            Range::default()
        }
        None => Range::default(),
    };
    if let Some(w) = &d.witness {
        let _ = write!(message, "\nwitness: {}", witness_text(w));
    }
    let mut related = Vec::new();
    for l in d.labels.iter().filter(|l| !l.primary) {
        let file_path = match a.sources.get(l.span.file).map(|f| &f.origin) {
            Some(Origin::File(p)) => Some(p.clone()),
            _ => None,
        };
        match file_path.and_then(|p| path_to_uri(&p)) {
            Some(uri) => related.push(DiagnosticRelatedInformation {
                location: Location {
                    uri,
                    range: lines.range(l.span),
                },
                message: if l.message.is_empty() {
                    "related".to_string()
                } else {
                    l.message.clone()
                },
            }),
            None => {
                let _ = write!(message, "\nnote: {}: {}", place(a, l.span), l.message);
            }
        }
    }
    for n in &d.notes {
        let _ = write!(message, "\nnote: {n}");
    }
    if let Some(h) = &d.help {
        let _ = write!(message, "\nhelp: {h}");
    }
    lsp_types::Diagnostic {
        range,
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
            Severity::Note => DiagnosticSeverity::INFORMATION,
        }),
        code: Some(NumberOrString::String(d.code.to_string())),
        source: Some("kapl".to_string()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        data: d
            .witness
            .as_ref()
            .and_then(|w| serde_json::to_value(w).ok()),
        ..lsp_types::Diagnostic::default()
    }
}

/// Hover: what the name under the cursor is, where it is defined, and for
/// a step the authority it holds.
pub fn hover(a: &Analysis, _text: &str, offset: usize, enc: Encoding) -> Option<Hover> {
    let root = a.root?;
    let hit = a.index.at(root, offset)?;
    let (span, body) = match hit {
        Hit::Def(d) => (d.name_span, describe(a, d)),
        Hit::Ref(r, Some(d)) => (r.span, describe(a, d)),
        Hit::Ref(r, None) => match &r.target {
            Target::Module(m) => (r.span, describe_module(a, m)),
            Target::Item(n) => (r.span, format!("`{n}` is not defined")),
            Target::Step { plan, step } => {
                (r.span, format!("`{step}` is not a step of plan `{plan}`"))
            }
            Target::Param(n) => (
                r.span,
                format!("no parameter `{n}` is declared: add `param {n}`"),
            ),
        },
    };
    let mut lines = Lines::new(a, enc);
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: body,
        }),
        range: Some(lines.range(span)),
    })
}

fn describe_module(a: &Analysis, module: &str) -> String {
    let mut s = format!("```kapl\nuse std.{module}\n```\nstandard-library module");
    let defs: Vec<&Def> = a
        .index
        .defs
        .iter()
        .filter(|d| d.module.as_deref() == Some(module))
        .collect();
    if defs.is_empty() {
        s.push_str(" (not found)");
    } else {
        s.push_str(", defines:\n");
        for d in defs {
            let _ = writeln!(s, "- {} `{}`", d.kind.keyword(), d.qualified());
        }
    }
    s
}

/// The most rule lines a hover lists.
const HOVER_RULES: usize = 40;

fn describe(a: &Analysis, d: &Def) -> String {
    let mut s = String::from("```kapl\n");
    match (d.kind, &d.under, &d.plan) {
        (DefKind::Step, _, Some(plan)) => {
            let _ = write!(s, "step {} (plan {plan})", d.name);
        }
        (_, Some(u), _) => {
            let _ = write!(s, "{} {} under {u}", d.kind.keyword(), d.qualified());
        }
        _ => {
            let _ = write!(s, "{} {}", d.kind.keyword(), d.qualified());
        }
    }
    s.push_str("\n```\n");
    if let Some(about) = &d.about {
        let _ = writeln!(s, "{about}\n");
    }
    let _ = writeln!(s, "Defined at `{}`.", place(a, d.name_span));
    match d.kind {
        DefKind::Step => step_authority(a, d, &mut s),
        DefKind::Plan => plan_steps(a, d, &mut s),
        DefKind::Param => {}
        DefKind::Authority | DefKind::Objective | DefKind::Intent => {
            let text = a.sources.snippet(d.span);
            let shown: Vec<&str> = text.lines().take(HOVER_RULES).collect();
            let _ = write!(s, "\n```kapl\n{}\n", shown.join("\n"));
            if text.lines().count() > HOVER_RULES {
                s.push_str("…\n");
            }
            s.push_str("```\n");
        }
    }
    s
}

/// The names of the steps `step` comes after, as its `after` lists them.
fn after_names<'p>(plan: &'p ir::Plan, step: &ir::Step) -> Vec<&'p str> {
    step.after
        .iter()
        .filter_map(|i| plan.steps.get(i.0 as usize))
        .map(|x| x.name.as_str())
        .collect()
}

fn find_plan<'p>(policy: &'p ir::Policy, name: &str) -> Option<(ir::PlanId, &'p ir::Plan)> {
    policy
        .plans
        .iter()
        .enumerate()
        .find(|(_, p)| p.name == name)
        .map(|(i, p)| (ir::PlanId(i as u32), p))
}

fn plan_steps(a: &Analysis, d: &Def, s: &mut String) {
    let Some(policy) = &a.policy else {
        return;
    };
    let Some((_, plan)) = find_plan(policy, &d.name) else {
        return;
    };
    s.push_str("\nSteps:\n");
    for step in &plan.steps {
        let after = after_names(plan, step);
        if after.is_empty() {
            let _ = writeln!(s, "- `{}` (may start the plan)", step.name);
        } else {
            let _ = writeln!(s, "- `{}` after {}", step.name, after.join(", "));
        }
    }
}

/// Program paths of the dynamic loader on the systems KAPL targets.
const LOADERS: [&str; 4] = [
    "/lib64/ld-linux-x86-64.so.2",
    "/usr/lib64/ld-linux-x86-64.so.2",
    "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
];

fn step_authority(a: &Analysis, d: &Def, s: &mut String) {
    let (Some(policy), Some(plan_name)) = (&a.policy, &d.plan) else {
        s.push_str("\n(the effective authority shows once the policy has no errors)\n");
        return;
    };
    let Some((_, plan)) = find_plan(policy, plan_name) else {
        return;
    };
    let Some(step) = plan.steps.iter().find(|x| x.name == d.name) else {
        return;
    };
    let after = after_names(plan, step);
    if after.is_empty() {
        s.push_str("\nMay start the plan.\n");
    } else {
        let _ = writeln!(s, "\nMay start after: {}.", after.join(", "));
    }
    s.push_str("\n**Effective authority** (plan-wide grants and the step's own):\n\n```kapl\n");
    let mut shown = 0;
    let mut hidden = 0;
    let mut runs_loader = false;
    let groups = [("plan-wide", &plan.grants), ("this step", &step.grants)];
    for (title, ids) in groups {
        if ids.is_empty() {
            continue;
        }
        let _ = writeln!(s, "// {title}");
        let mut last_site = None;
        for gid in ids.iter() {
            let Some(g) = policy.grants.get(gid.0 as usize) else {
                continue;
            };
            if let ir::RuleKind::Exec { patterns } = &g.rule.kind {
                runs_loader |= patterns
                    .iter()
                    .any(|p| LOADERS.iter().any(|l| p.glob.matches(l.as_bytes())));
            }
            let expanded = !g.rule.via.is_empty();
            if last_site != Some(g.site) {
                last_site = Some(g.site);
                let head = one_line(a.sources.snippet(g.site));
                if expanded {
                    let _ = writeln!(s, "{head}    // expands to:");
                } else {
                    let _ = writeln!(s, "{head}");
                }
            }
            if expanded {
                if shown < HOVER_RULES {
                    shown += 1;
                    let _ = writeln!(s, "    {}", one_line(a.sources.snippet(g.rule.span)));
                } else {
                    hidden += 1;
                }
            }
        }
    }
    if hidden > 0 {
        let _ = writeln!(s, "    // … and {hidden} more");
    }
    s.push_str("```\n");
    if runs_loader {
        s.push_str(
            "\nThis step may run the dynamic loader, so it can also run any file it may \
             read as a program (`ld.so FILE`); Landlock cannot stop that.\n",
        );
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Go to definition: the definition of the name under the cursor.
pub fn definition(a: &Analysis, offset: usize, enc: Encoding) -> Option<GotoDefinitionResponse> {
    let root = a.root?;
    let def_span = match a.index.at(root, offset)? {
        Hit::Def(d) => d.name_span,
        Hit::Ref(_, Some(d)) => d.name_span,
        Hit::Ref(r, None) => match &r.target {
            Target::Module(m) => {
                let id = a
                    .sources
                    .iter()
                    .find(|(_, f)| matches!(&f.origin, Origin::Stdlib(n) if n == m))?
                    .0;
                Span::new(id, 0, 0)
            }
            _ => return None,
        },
    };
    let uri = file_uri(a, def_span.file)?;
    let mut lines = Lines::new(a, enc);
    Some(GotoDefinitionResponse::Scalar(Location {
        uri,
        range: lines.range(def_span),
    }))
}

/// The URI of a source: its path, or for a stdlib module a read-only copy
/// written to the user's cache directory (editors open files, and the
/// stdlib lives inside the binary).
fn file_uri(a: &Analysis, id: FileId) -> Option<Uri> {
    let f = a.sources.get(id)?;
    match &f.origin {
        Origin::File(p) => path_to_uri(p),
        Origin::Stdlib(m) => path_to_uri(&stdlib_copy(m, &f.text)?),
        Origin::Virtual(_) => None,
    }
}

fn stdlib_copy(module: &str, text: &str) -> Option<String> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache")))?;
    let dir = base
        .join("kapl")
        .join(format!("stdlib-{}", env!("CARGO_PKG_VERSION")));
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("{module}.kapl"));
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
        let tmp = dir.join(format!(".{module}.kapl.tmp{}", std::process::id()));
        std::fs::write(&tmp, text).ok()?;
        std::fs::rename(&tmp, &path).ok()?;
    }
    Some(path.display().to_string())
}

/// Completion: keywords that fit, and names of the right kind.
pub fn completion(a: &Analysis, before: &str) -> CompletionResponse {
    let ctx = complete::context(before);
    let mut items: Vec<CompletionItem> = complete::keywords(&ctx)
        .iter()
        .map(|k| CompletionItem {
            label: (*k).to_string(),
            kind: Some(CompletionItemKind::KEYWORD),
            ..CompletionItem::default()
        })
        .collect();
    let name_item = |d: &Def| CompletionItem {
        label: d.qualified(),
        kind: Some(item_kind(d.kind)),
        detail: Some(match &d.about {
            Some(about) => format!("{} — {about}", d.kind.keyword()),
            None => d.kind.keyword().to_string(),
        }),
        ..CompletionItem::default()
    };
    match &ctx {
        Context::Module => {
            for (name, _) in kapl_check::stdlib::MODULES {
                items.push(CompletionItem {
                    label: format!("std.{name}"),
                    kind: Some(CompletionItemKind::MODULE),
                    detail: Some("standard-library module".to_string()),
                    ..CompletionItem::default()
                });
            }
        }
        Context::Authority => {
            for d in a.index.defs.iter().filter(|d| d.kind == DefKind::Authority) {
                items.push(name_item(d));
            }
            // Stdlib authorities of modules the file does not use yet.
            for (name, text) in kapl_check::stdlib::MODULES {
                if a.index
                    .defs
                    .iter()
                    .any(|d| d.module.as_deref() == Some(name))
                {
                    continue;
                }
                let parsed = kapl_syntax::parse(FileId(u32::MAX), text);
                let mut idx = crate::index::NameIndex::default();
                idx.add_file(&parsed.file, Some(name));
                for d in idx.defs.iter().filter(|d| d.kind == DefKind::Authority) {
                    let mut item = name_item(d);
                    item.detail = Some(format!("authority — needs `use std.{name}`"));
                    items.push(item);
                }
            }
        }
        Context::Under { plan } => {
            for d in a.index.defs.iter().filter(|d| d.module.is_none()) {
                if d.kind == DefKind::Objective || (*plan && d.kind == DefKind::Intent) {
                    items.push(name_item(d));
                }
            }
        }
        Context::Param => {
            for d in a.index.defs.iter().filter(|d| d.kind == DefKind::Param) {
                let mut item = name_item(d);
                item.detail = d.about.clone().or(Some("parameter".to_string()));
                items.push(item);
            }
        }
        Context::Step { plan: Some(p) } => {
            for d in a.index.defs.iter() {
                if d.kind == DefKind::Step && d.plan.as_deref() == Some(p.as_str()) {
                    items.push(name_item(d));
                }
            }
        }
        _ => {}
    }
    CompletionResponse::Array(items)
}

fn item_kind(k: DefKind) -> CompletionItemKind {
    match k {
        DefKind::Authority => CompletionItemKind::CONSTANT,
        DefKind::Objective => CompletionItemKind::MODULE,
        DefKind::Intent => CompletionItemKind::INTERFACE,
        DefKind::Plan => CompletionItemKind::CLASS,
        DefKind::Step => CompletionItemKind::METHOD,
        DefKind::Param => CompletionItemKind::VARIABLE,
    }
}

fn symbol_kind(k: DefKind) -> SymbolKind {
    match k {
        DefKind::Authority => SymbolKind::CONSTANT,
        DefKind::Objective => SymbolKind::NAMESPACE,
        DefKind::Intent => SymbolKind::INTERFACE,
        DefKind::Plan => SymbolKind::CLASS,
        DefKind::Step => SymbolKind::METHOD,
        DefKind::Param => SymbolKind::VARIABLE,
    }
}

/// Document symbols: authorities, objectives, intents and plans, with each
/// plan's steps inside it.
pub fn symbols(a: &Analysis, enc: Encoding) -> Vec<DocumentSymbol> {
    let Some(root) = a.root else {
        return Vec::new();
    };
    let mut lines = Lines::new(a, enc);
    let mut out: Vec<DocumentSymbol> = Vec::new();
    let mut plans: HashMap<String, usize> = HashMap::new();
    for d in a.index.defs.iter().filter(|d| d.name_span.file == root) {
        #[expect(
            deprecated,
            reason = "the field is deprecated but required by the struct"
        )]
        let sym = DocumentSymbol {
            name: d.name.clone(),
            detail: d
                .about
                .clone()
                .or_else(|| d.under.as_ref().map(|u| format!("under {u}"))),
            kind: symbol_kind(d.kind),
            tags: None,
            deprecated: None,
            range: lines.range(d.span),
            selection_range: lines.range(d.name_span),
            children: None,
        };
        match (&d.kind, &d.plan) {
            (DefKind::Step, Some(p)) => {
                if let Some(parent) = plans.get(p).and_then(|&i| out.get_mut(i)) {
                    parent.children.get_or_insert_with(Vec::new).push(sym);
                    continue;
                }
                out.push(sym);
            }
            (DefKind::Plan, _) => {
                plans.insert(d.name.clone(), out.len());
                out.push(sym);
            }
            _ => out.push(sym),
        }
    }
    out
}
