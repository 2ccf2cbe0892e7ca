//! The authority chain as a graph: objective → intent → plan → steps →
//! grants, with the order of steps.
//!
//! Input: a checked [`Policy`] and its sources. Output: Graphviz DOT or
//! Mermaid text. Pure. Each grant node is one `grant` statement as written
//! (a `grant use AUTHORITY` is one node, however many rules it expands to);
//! an edge from a plan to a step marks a step that may start the plan, an
//! edge between steps reads "may follow" (`after`), and steps carry their
//! position in a valid order (1, 2, ...).

use crate::fs_loader::FsLoader;
use crate::output::ColorChoice;
use crate::render;
use kapl_check::ir::{GrantId, Parent, Plan, Policy};
use kapl_syntax::{SourceMap, Span};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kaplc graph`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Draw only this plan and the chain above it.
    #[arg(long, value_name = "NAME")]
    pub plan: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Dot)]
    pub format: Format,
    /// When to colour diagnostics (`NO_COLOR` is honoured by `auto`).
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Parameter values (the graph's patterns show them substituted).
    #[command(flatten)]
    pub params: crate::params::ParamArgs,
}

/// Runs `kaplc graph`: the front end (no proofs: the graph shows the chain
/// as written), then the graph on stdout. Exit 1 when the policy has
/// errors, 2 when the file cannot be read or no plan has the given name.
pub fn run(args: &Args) -> ExitCode {
    let path = args.file.to_string_lossy().into_owned();
    let values = match args.params.values() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let fe = kapl_check::check_front_params(&mut FsLoader, &path, &values);
    if let Some(e) = args.params.unknown([fe.params.as_slice()]) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let errors = fe.diagnostics.iter().any(kapl_syntax::Diagnostic::is_error);
    if errors || fe.root_unreadable {
        eprint!(
            "{}",
            render::human(&fe.diagnostics, &fe.sources, args.color.for_stderr())
        );
    }
    if fe.root_unreadable {
        return ExitCode::from(2);
    }
    let Some(policy) = fe.policy.as_ref().filter(|_| !errors) else {
        eprintln!("{path}: no graph (the policy has errors)");
        return ExitCode::from(1);
    };
    match render(policy, &fe.sources, args.plan.as_deref(), args.format) {
        Ok(mut text) => {
            // The values the chain is drawn for, as a comment line.
            let with = crate::params::describe(&fe.params);
            if !with.is_empty() {
                let mark = match args.format {
                    Format::Dot => "//",
                    Format::Mermaid => "%%",
                };
                text = format!("{mark} parameters: {with}\n{text}");
            }
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(2),
            }
        }
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Graphviz DOT (`dot -Tsvg`).
    Dot,
    /// Mermaid flowchart (renders on GitHub and in many docs tools).
    Mermaid,
}

/// A node of the chain.
#[derive(Clone, Debug)]
struct Node {
    id: String,
    kind: &'static str,
    label: String,
}

/// The chain to draw, independent of the output format.
#[derive(Debug, Default)]
struct Chain {
    nodes: Vec<Node>,
    /// (from, to, edge label)
    edges: Vec<(String, String, &'static str)>,
    /// Plan clusters: (plan node id, member node ids).
    clusters: Vec<(String, String, Vec<String>)>,
}

/// Width at which labels wrap (nothing is ever cut: a reviewer must see
/// every pattern and every `except`).
const WRAP: usize = 48;

/// Draws the chain of every plan, or of the plan named `plan`. Fails with
/// a message when no plan has that name.
pub fn render(
    policy: &Policy,
    sources: &SourceMap,
    plan: Option<&str>,
    format: Format,
) -> Result<String, String> {
    let chain = build(policy, sources, plan)?;
    Ok(match format {
        Format::Dot => dot(&chain),
        Format::Mermaid => mermaid(&chain),
    })
}

fn build(policy: &Policy, sources: &SourceMap, only: Option<&str>) -> Result<Chain, String> {
    let plans: Vec<(usize, &Plan)> = policy
        .plans
        .iter()
        .enumerate()
        .filter(|(_, p)| only.is_none_or(|n| p.name == n))
        .collect();
    if let Some(name) = only
        && plans.is_empty()
    {
        let names: Vec<&str> = policy.plans.iter().map(|p| p.name.as_str()).collect();
        let mut msg = format!("no plan named `{name}`");
        if let Some(s) = kapl_syntax::diag::suggest(name, names.iter().copied()) {
            let _ = write!(msg, "; did you mean `{s}`?");
        } else if names.is_empty() {
            msg.push_str(" (the policy has no plans)");
        } else {
            let _ = write!(msg, " (plans: {})", names.join(", "));
        }
        return Err(msg);
    }
    let mut c = Chain::default();
    // Objectives and intents: all of them for the whole policy, only the
    // chain above the plan otherwise.
    let mut want_obj = vec![only.is_none(); policy.objectives.len()];
    let mut want_int = vec![only.is_none(); policy.intents.len()];
    for (_, p) in &plans {
        match p.parent {
            Parent::Objective(o) => set(&mut want_obj, o.0 as usize),
            Parent::Intent(i) => {
                set(&mut want_int, i.0 as usize);
                if let Some(int) = policy.intents.get(i.0 as usize) {
                    set(&mut want_obj, int.objective.0 as usize);
                }
            }
        }
    }
    for (i, o) in policy.objectives.iter().enumerate() {
        if want_obj.get(i).copied().unwrap_or(false) {
            c.nodes.push(Node {
                id: format!("o{i}"),
                kind: "objective",
                label: with_about(&format!("objective {}", o.name), o.about.as_deref()),
            });
        }
    }
    for (i, int) in policy.intents.iter().enumerate() {
        if want_int.get(i).copied().unwrap_or(false) {
            c.nodes.push(Node {
                id: format!("i{i}"),
                kind: "intent",
                label: with_about(&format!("intent {}", int.name), int.about.as_deref()),
            });
            c.edges
                .push((format!("o{}", int.objective.0), format!("i{i}"), "bounds"));
        }
    }
    for (pi, p) in plans {
        let pid = format!("p{pi}");
        c.nodes.push(Node {
            id: pid.clone(),
            kind: "plan",
            label: with_about(&format!("plan {}", p.name), p.about.as_deref()),
        });
        let parent = match p.parent {
            Parent::Objective(o) => format!("o{}", o.0),
            Parent::Intent(i) => format!("i{}", i.0),
        };
        c.edges.push((parent, pid.clone(), "bounds"));
        let mut members = Vec::new();
        for (gi, (_, text)) in sites(policy, sources, &p.grants).into_iter().enumerate() {
            let gid = format!("{pid}g{gi}");
            c.nodes.push(Node {
                id: gid.clone(),
                kind: "grant",
                label: format!("{text}\n(every step)"),
            });
            members.push(gid.clone());
            c.edges.push((pid.clone(), gid, "grants"));
        }
        let order = step_order(p);
        for (si, s) in p.steps.iter().enumerate() {
            let sid = format!("{pid}s{si}");
            let pos = order.iter().position(|&x| x == si).map_or(0, |x| x + 1);
            c.nodes.push(Node {
                id: sid.clone(),
                kind: "step",
                label: with_about(&format!("{pos}. step {}", s.name), s.about.as_deref()),
            });
            members.push(sid.clone());
            if s.after.is_empty() {
                c.edges.push((pid.clone(), sid.clone(), "starts"));
            }
            for a in &s.after {
                c.edges
                    .push((format!("{pid}s{}", a.0), sid.clone(), "then"));
            }
            for (gi, (_, text)) in sites(policy, sources, &s.grants).into_iter().enumerate() {
                let gid = format!("{sid}g{gi}");
                c.nodes.push(Node {
                    id: gid.clone(),
                    kind: "grant",
                    label: text,
                });
                members.push(gid.clone());
                c.edges.push((sid.clone(), gid, "grants"));
            }
        }
        c.clusters.push((pid, format!("plan {}", p.name), members));
    }
    Ok(c)
}

fn set(v: &mut [bool], i: usize) {
    if let Some(x) = v.get_mut(i) {
        *x = true;
    }
}

fn with_about(title: &str, about: Option<&str>) -> String {
    match about {
        Some(a) if !a.is_empty() => format!("{title}\n{}", wrap(a)),
        _ => title.to_string(),
    }
}

/// Joins the text's words into lines of about [`WRAP`] characters; an
/// `except` always starts a line.
fn wrap(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let width = line.chars().count() + 1 + word.chars().count();
        if !line.is_empty() && (width > WRAP || word == "except") {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines.join("\n")
}

/// The distinct `grant` statements behind a list of grants, in source
/// order, with their text on one line.
fn sites(policy: &Policy, sources: &SourceMap, grants: &[GrantId]) -> Vec<(Span, String)> {
    let mut by_site: BTreeMap<(u32, u32), (Span, String)> = BTreeMap::new();
    for g in grants {
        if let Some(grant) = policy.grants.get(g.0 as usize) {
            let s = grant.site;
            by_site
                .entry((s.file.0, s.start))
                .or_insert_with(|| (s, wrap(sources.snippet(s))));
        }
    }
    by_site.into_values().collect()
}

/// A valid order of the plan's steps: each after the steps it names, ties
/// in source order.
fn step_order(p: &Plan) -> Vec<usize> {
    let n = p.steps.len();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let next = (0..n).find(|&i| {
            !done[i]
                && p.steps[i]
                    .after
                    .iter()
                    .all(|a| done.get(a.0 as usize).copied().unwrap_or(true))
        });
        // INVARIANT: the checker rejects `after` cycles; stop if one slips in.
        let Some(i) = next else { break };
        done[i] = true;
        order.push(i);
    }
    order
}

fn dot_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn dot(c: &Chain) -> String {
    let mut s = String::from(
        "digraph kapl {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n  edge [fontname=\"monospace\", fontsize=9];\n",
    );
    let style = |kind: &str| match kind {
        "objective" => "style=\"filled,bold\", fillcolor=\"#f4d03f\"",
        "intent" => "style=filled, fillcolor=\"#f9e79f\"",
        "plan" => "style=filled, fillcolor=\"#aed6f1\"",
        "step" => "style=\"filled,rounded\", fillcolor=\"#d6eaf8\"",
        _ => "shape=note, style=filled, fillcolor=\"#eafaf1\"",
    };
    let in_cluster: Vec<&String> = c.clusters.iter().flat_map(|(_, _, m)| m).collect();
    for n in c.nodes.iter().filter(|n| !in_cluster.contains(&&n.id)) {
        let _ = writeln!(
            s,
            "  {} [label=\"{}\", {}];",
            n.id,
            dot_escape(&n.label),
            style(n.kind)
        );
    }
    for (pid, title, members) in &c.clusters {
        let _ = writeln!(
            s,
            "  subgraph cluster_{pid} {{\n    label=\"{}\";\n    style=dashed;",
            dot_escape(title)
        );
        for n in c.nodes.iter().filter(|n| members.contains(&n.id)) {
            let _ = writeln!(
                s,
                "    {} [label=\"{}\", {}];",
                n.id,
                dot_escape(&n.label),
                style(n.kind)
            );
        }
        s.push_str("  }\n");
    }
    for (a, b, label) in &c.edges {
        let attrs = match *label {
            "then" => "label=\"then\", style=bold",
            "starts" => "label=\"starts\"",
            "grants" => "arrowhead=none, color=\"#7f8c8d\"",
            _ => "label=\"bounds\"",
        };
        let _ = writeln!(s, "  {a} -> {b} [{attrs}];");
    }
    s.push_str("}\n");
    s
}

fn mermaid_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            '\n' => out.push_str("<br/>"),
            c => out.push(c),
        }
    }
    out
}

fn mermaid(c: &Chain) -> String {
    let mut s = String::from("flowchart TB\n");
    let shape = |kind: &str, label: &str| match kind {
        "step" => format!("(\"{label}\")"),
        "grant" => format!("[/\"{label}\"/]"),
        _ => format!("[\"{label}\"]"),
    };
    let in_cluster: Vec<&String> = c.clusters.iter().flat_map(|(_, _, m)| m).collect();
    for n in c.nodes.iter().filter(|n| !in_cluster.contains(&&n.id)) {
        let _ = writeln!(s, "  {}{}", n.id, shape(n.kind, &mermaid_escape(&n.label)));
    }
    for (pid, title, members) in &c.clusters {
        let _ = writeln!(s, "  subgraph {pid}_steps[\"{}\"]", mermaid_escape(title));
        for n in c.nodes.iter().filter(|n| members.contains(&n.id)) {
            let _ = writeln!(
                s,
                "    {}{}",
                n.id,
                shape(n.kind, &mermaid_escape(&n.label))
            );
        }
        s.push_str("  end\n");
    }
    for (a, b, label) in &c.edges {
        let arrow = match *label {
            "grants" => "---".to_string(),
            "then" => "==>|then|".to_string(),
            l => format!("-->|{l}|"),
        };
        let _ = writeln!(s, "  {a} {arrow} {b}");
    }
    for n in &c.nodes {
        let _ = writeln!(s, "  class {} {};", n.id, n.kind);
    }
    s.push_str(
        "  classDef objective fill:#f4d03f,stroke:#7d6608;\n  classDef intent fill:#f9e79f,stroke:#7d6608;\n  classDef plan fill:#aed6f1,stroke:#1b4f72;\n  classDef step fill:#d6eaf8,stroke:#1b4f72;\n  classDef grant fill:#eafaf1,stroke:#1e8449;\n",
    );
    s
}
