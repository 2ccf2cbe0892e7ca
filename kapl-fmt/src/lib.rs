//! KAPL formatter: one canonical layout for `.kapl` source.
//!
//! ```text
//! source ─► kapl_syntax::parse ─► ast::File + comments ─► printer ─► source
//! ```
//!
//! Input: a policy's text. Output: the same policy in the canonical layout
//! with every comment kept, or the parser's diagnostics when the text has
//! errors (a file that does not parse is never rewritten). Pure: no I/O.
//!
//! The layout:
//! - two spaces per level; one item, member or rule per line; blocks always
//!   open with `{` at the end of their header line and close with `}` on a
//!   line of their own (an empty block is `{}`);
//! - one blank line between top-level items (consecutive `use` items may
//!   stay together); elsewhere a blank line survives where the source had
//!   one or more, and nowhere else;
//! - a rule longer than [`MAX_WIDTH`] columns is wrapped: first its
//!   `except`/`port` part moves to a continuation line, then every pattern
//!   or address gets a line of its own;
//! - literals are printed as written (patterns, strings), addresses and
//!   ports in their shortest form (`10.0.0.1` for `10.0.0.1/32`, `any` for
//!   `0-65535`), which parses to the same tree;
//! - comments stay in source order: a comment on the same line after a
//!   member stays there; any other comment goes on its own line before the
//!   member it precedes. A comment written inside a rule or a header moves
//!   to its own line just before it.
//!
//! Formatting is idempotent: `format(format(x)) == format(x)`, and the
//! result parses to the same tree as the input (spans aside).

use kapl_syntax::ast::{
    AddrKind, AddrSpec, Authority, Block, Bounded, Comment, File, Grant, Item, Plan, PortSpec,
    QualName, Rule, RuleKind, Step, StrLit, UseTarget,
};
use kapl_syntax::{Diagnostic, FileId};
use std::net::IpAddr;

/// Columns a line may take before a rule is wrapped.
pub const MAX_WIDTH: usize = 100;

/// One level of indentation.
const INDENT: usize = 2;

/// Extra indentation of a rule's continuation lines.
const CONTINUATION: usize = 4;

/// Formats a policy text: parses it (as file `file`, for the diagnostics'
/// spans) and prints it in the canonical layout. Fails with every parse
/// diagnostic when the text has errors; warnings alone do not stop it.
pub fn format_source(file: FileId, text: &str) -> Result<String, Vec<Diagnostic>> {
    let parsed = kapl_syntax::parse(file, text);
    if parsed.diagnostics.iter().any(Diagnostic::is_error) {
        return Err(parsed.diagnostics);
    }
    Ok(format_file(&parsed.file, text))
}

/// Prints a parsed file in the canonical layout. `text` is the source the
/// tree was parsed from (string literals and comments are copied from it).
pub fn format_file(file: &File, text: &str) -> String {
    let mut p = Printer {
        src: text,
        comments: &file.comments,
        next: 0,
        lines: Vec::new(),
        last_end: 0,
    };
    p.top_level(&file.items);
    let mut out = p.lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// What was emitted last in a container (for blank-line decisions).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prev {
    /// Nothing yet: no blank line before the first element.
    Start,
    /// A comment on its own line.
    Comment,
    /// A member; at the top level, whether it was a `use` item.
    Member { is_use: bool },
}

/// One member of a container, in source order.
enum Member<'a> {
    Item(&'a Item),
    About(&'a StrLit),
    Block(&'static str, &'a Block),
    Grant(&'a Grant),
    Step(&'a Step),
    Rule(&'a Rule),
}

impl Member<'_> {
    fn start(&self) -> usize {
        self.span().range().start
    }

    fn end(&self) -> usize {
        self.span().range().end
    }

    fn span(&self) -> kapl_syntax::Span {
        match self {
            Member::Item(i) => item_span(i),
            Member::About(s) => s.span,
            Member::Block(_, b) => b.span,
            Member::Grant(g) => g.span,
            Member::Step(s) => s.span,
            Member::Rule(r) => r.span,
        }
    }

    /// Leaves take the comments written inside them as leading comments;
    /// containers print the comments inside them among their children.
    fn is_leaf(&self) -> bool {
        matches!(
            self,
            Member::Item(Item::Use(_) | Item::Param(_))
                | Member::About(_)
                | Member::Grant(_)
                | Member::Rule(_)
        )
    }

    /// One-line top-level items (`use`, `param`): consecutive ones stay
    /// together, without blank lines between them.
    fn is_use_item(&self) -> bool {
        matches!(self, Member::Item(Item::Use(_) | Item::Param(_)))
    }
}

fn item_span(item: &Item) -> kapl_syntax::Span {
    match item {
        Item::Use(u) => u.span,
        Item::Param(p) => p.span,
        Item::Authority(a) => a.span,
        Item::Objective(b) | Item::Intent(b) => b.span,
        Item::Plan(p) => p.span,
    }
}

struct Printer<'a> {
    src: &'a str,
    comments: &'a [Comment],
    /// Index of the first comment not yet printed.
    next: usize,
    lines: Vec<String>,
    /// Source offset just after the last element printed.
    last_end: usize,
}

impl Printer<'_> {
    fn top_level(&mut self, items: &[Item]) {
        let members: Vec<Member<'_>> = items.iter().map(Member::Item).collect();
        self.members(0, members, self.src.len(), true);
    }

    /// Prints a container's members (sorted by position) with the comments
    /// among them, then the comments before `end` (the closing brace).
    fn members(&mut self, depth: usize, mut members: Vec<Member<'_>>, end: usize, top: bool) {
        members.sort_by_key(Member::start);
        let mut prev = Prev::Start;
        for m in &members {
            let lead = self.lead_start(m);
            let limit = if m.is_leaf() { m.end() } else { m.start() };
            let (p, hoisted) =
                self.comments_before(depth, limit, Some((lead, m.is_use_item())), prev, top);
            prev = p;
            // After comments moved out of the member, the member follows them
            // directly: the blank line before it (if any) went before them.
            let blank = !hoisted && self.want_blank(prev, lead, top, m.is_use_item());
            if blank {
                self.lines.push(String::new());
            }
            self.member(depth, m);
            self.last_end = self.last_end.max(m.end());
            self.trailing_comments(m.end());
            prev = Prev::Member {
                is_use: m.is_use_item(),
            };
        }
        self.comments_before(depth, end, None, prev, top);
    }

    /// Whether a blank line goes before an element that starts at `start`:
    /// never first in a container; where the source has one just before it;
    /// and at the top level after every item but a `use` followed by a
    /// `use`.
    fn want_blank(&self, prev: Prev, start: usize, top: bool, is_use: bool) -> bool {
        match prev {
            Prev::Start => false,
            _ if self.blank_before(start) => true,
            Prev::Comment => false,
            Prev::Member { is_use: prev_use } => top && !(prev_use && is_use),
        }
    }

    /// Prints, each on its own line, the comments that start before `limit`.
    /// Comments at or after `member` (the start of the member they precede,
    /// and whether it is a `use` item) are inside it and move before it. Returns what was printed last and
    /// whether any comment moved.
    fn comments_before(
        &mut self,
        depth: usize,
        limit: usize,
        member: Option<(usize, bool)>,
        mut prev: Prev,
        top: bool,
    ) -> (Prev, bool) {
        let mut hoisted = false;
        while let Some(c) = self.comments.get(self.next) {
            let start = c.span.range().start;
            if start >= limit {
                break;
            }
            let blank = match member {
                Some((m, is_use)) if start >= m => {
                    let first = !hoisted;
                    hoisted = true;
                    first && self.want_blank(prev, m, top, is_use)
                }
                // A comment after a `use` item may stay with it.
                _ => self.want_blank(prev, start, top, true),
            };
            if blank {
                self.lines.push(String::new());
            }
            self.lines
                .push(format!("{}{}", pad(depth), comment_text(c)));
            self.last_end = self.last_end.max(c.span.range().end);
            self.next += 1;
            prev = Prev::Comment;
        }
        (prev, hoisted)
    }

    /// Appends to the last line the comments that follow `end` on the same
    /// source line.
    fn trailing_comments(&mut self, end: usize) {
        while let Some(c) = self.comments.get(self.next) {
            let start = c.span.range().start;
            let Some(gap) = self.src.get(end.min(start)..start) else {
                break;
            };
            if start < end || gap.contains('\n') || !gap.trim().is_empty() {
                break;
            }
            if let Some(last) = self.lines.last_mut() {
                last.push(' ');
                last.push_str(&comment_text(c));
            }
            self.last_end = self.last_end.max(c.span.range().end);
            self.next += 1;
            // Only block comments can be followed by more on the same line.
            if !c.text.starts_with("/*") {
                break;
            }
        }
    }

    /// Whether the whitespace just before `pos` holds a blank line.
    fn blank_before(&self, pos: usize) -> bool {
        let Some(before) = self.src.get(..pos) else {
            return false;
        };
        let ws = before.len() - before.trim_end().len();
        before[before.len() - ws..]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            >= 2
    }

    /// Where a member really starts: an `about` clause at its keyword
    /// (its span covers only the string).
    fn lead_start(&self, m: &Member<'_>) -> usize {
        let start = m.start();
        if let Member::About(_) = m
            && let Some(before) = self.src.get(..start)
            && let Some(kw) = before.trim_end().strip_suffix("about")
        {
            return kw.len();
        }
        start
    }

    fn member(&mut self, depth: usize, m: &Member<'_>) {
        match m {
            Member::Item(item) => self.item(depth, item),
            Member::About(s) => {
                let text = format!("about {}", self.string(s));
                self.lines.push(format!("{}{text}", pad(depth)));
            }
            Member::Block(kw, b) => self.block(depth, kw, b),
            Member::Grant(g) => {
                let lines = rule_lines(depth, "grant ", &g.rule);
                self.lines.extend(lines);
            }
            Member::Step(s) => self.step(depth, s),
            Member::Rule(r) => {
                let lines = rule_lines(depth, "", r);
                self.lines.extend(lines);
            }
        }
    }

    fn item(&mut self, depth: usize, item: &Item) {
        match item {
            Item::Use(u) => {
                let target = match &u.target {
                    UseTarget::Module(q) => q.dotted(),
                    UseTarget::File(s) => self.string(s),
                };
                self.lines.push(format!("{}use {target}", pad(depth)));
            }
            Item::Param(p) => {
                let default = p
                    .default
                    .as_ref()
                    .map(|d| format!(" = {}", self.string(d)))
                    .unwrap_or_default();
                self.lines
                    .push(format!("{}param {}{default}", pad(depth), p.name.name));
            }
            Item::Authority(a) => self.authority(depth, a),
            Item::Objective(b) => self.bounded(depth, "objective", b),
            Item::Intent(b) => self.bounded(depth, "intent", b),
            Item::Plan(p) => self.plan(depth, p),
        }
    }

    fn authority(&mut self, depth: usize, a: &Authority) {
        let header = format!("authority {}", a.name.name);
        let members = a.rules.iter().map(Member::Rule).collect();
        self.container(depth, header, members, a.span.range().end);
    }

    fn bounded(&mut self, depth: usize, kw: &str, b: &Bounded) {
        let header = match &b.under {
            Some(u) => format!("{kw} {} under {}", b.name.name, u.dotted()),
            None => format!("{kw} {}", b.name.name),
        };
        let mut members: Vec<Member<'_>> = b.about.iter().map(Member::About).collect();
        members.extend(b.bound.iter().map(|x| Member::Block("bound", x)));
        members.extend(b.never.iter().map(|x| Member::Block("never", x)));
        self.container(depth, header, members, b.span.range().end);
    }

    fn plan(&mut self, depth: usize, p: &Plan) {
        let header = format!("plan {} under {}", p.name.name, p.under.dotted());
        let mut members: Vec<Member<'_>> = p.about.iter().map(Member::About).collect();
        members.extend(p.grants.iter().map(Member::Grant));
        members.extend(p.steps.iter().map(Member::Step));
        self.container(depth, header, members, p.span.range().end);
    }

    fn step(&mut self, depth: usize, s: &Step) {
        let mut header = format!("step {}", s.name.name);
        if !s.after.is_empty() {
            let after: Vec<&str> = s.after.iter().map(|i| i.name.as_str()).collect();
            header.push_str(" after ");
            header.push_str(&after.join(", "));
        }
        let mut members: Vec<Member<'_>> = s.about.iter().map(Member::About).collect();
        members.extend(s.grants.iter().map(Member::Grant));
        self.container(depth, header, members, s.span.range().end);
    }

    fn block(&mut self, depth: usize, kw: &str, b: &Block) {
        let members = b.rules.iter().map(Member::Rule).collect();
        self.container(depth, kw.to_string(), members, b.span.range().end);
    }

    /// `HEADER {`, the members one level deeper, `}`; `HEADER {}` when
    /// there is nothing inside.
    fn container(&mut self, depth: usize, header: String, members: Vec<Member<'_>>, end: usize) {
        let has_comment_inside = self
            .comments
            .get(self.next)
            .is_some_and(|c| c.span.range().start < end);
        if members.is_empty() && !has_comment_inside {
            self.lines.push(format!("{}{header} {{}}", pad(depth)));
            return;
        }
        self.lines.push(format!("{}{header} {{", pad(depth)));
        self.members(depth + 1, members, end, false);
        self.lines.push(format!("{}}}", pad(depth)));
    }

    /// A string literal exactly as written (quotes and escapes included).
    fn string(&self, s: &StrLit) -> String {
        match self.src.get(s.span.range()) {
            Some(t) if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') => t.to_string(),
            _ => quote(&s.value),
        }
    }
}

fn pad(depth: usize) -> String {
    " ".repeat(depth * INDENT)
}

/// A comment's text, without trailing blanks (and without a `\r` left by a
/// CRLF line end).
fn comment_text(c: &Comment) -> String {
    if c.text.starts_with("//") {
        c.text.trim_end().to_string()
    } else {
        c.text.clone()
    }
}

fn quote(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    for ch in value.chars() {
        match ch {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// A rule split into the parts the wrapping works on: `head list1`, then
/// optionally `keyword list2`.
struct RuleParts {
    head: String,
    list1: Vec<String>,
    tail: Option<(&'static str, Vec<String>)>,
}

fn rule_parts(rule: &Rule) -> RuleParts {
    match &rule.kind {
        RuleKind::Fs {
            rights,
            patterns,
            except,
        } => {
            let rights: Vec<&str> = rights.iter().map(|r| r.right.as_str()).collect();
            RuleParts {
                head: format!("fs {}", rights.join(", ")),
                list1: patterns
                    .iter()
                    .map(|p| format!("\"{}\"", p.source))
                    .collect(),
                tail: (!except.is_empty()).then(|| {
                    let l = except.iter().map(|p| format!("\"{}\"", p.source)).collect();
                    ("except", l)
                }),
            }
        }
        RuleKind::Exec { patterns } => RuleParts {
            head: "exec".to_string(),
            list1: patterns
                .iter()
                .map(|p| format!("\"{}\"", p.source))
                .collect(),
            tail: None,
        },
        RuleKind::Net {
            op,
            addrs,
            names,
            ports,
            ..
        } => RuleParts {
            head: format!("net {}", op.as_str()),
            // Addresses first, then host names in their normal form.
            list1: addrs
                .iter()
                .map(addr_text)
                .chain(names.iter().map(|n| format!("\"{}\"", n.pattern)))
                .collect(),
            tail: Some(("port", ports.iter().map(port_text).collect())),
        },
        RuleKind::Use { name } => RuleParts {
            head: format!("use {}", qual(name)),
            list1: Vec::new(),
            tail: None,
        },
    }
}

fn qual(q: &QualName) -> String {
    q.dotted()
}

/// The lines of one rule at `depth`, prefixed by `prefix` (`grant ` or
/// nothing), wrapped to [`MAX_WIDTH`].
fn rule_lines(depth: usize, prefix: &str, rule: &Rule) -> Vec<String> {
    let parts = rule_parts(rule);
    let indent = pad(depth);
    let cont = " ".repeat(depth * INDENT + CONTINUATION);
    let join = |head: &str, list: &[String]| -> String {
        if list.is_empty() {
            head.to_string()
        } else {
            format!("{head} {}", list.join(", "))
        }
    };
    let fits = |line: &str| line.chars().count() <= MAX_WIDTH;

    let first = format!("{indent}{prefix}{}", join(&parts.head, &parts.list1));
    let tail = parts.tail.as_ref().map(|(kw, l)| join(kw, l));

    // One line.
    let one = match &tail {
        Some(t) => format!("{first} {t}"),
        None => first.clone(),
    };
    if fits(&one) || (parts.list1.len() <= 1 && tail.is_none()) {
        return vec![one];
    }
    // The tail on a continuation line.
    if let Some(t) = &tail {
        let second = format!("{cont}{t}");
        if fits(&first) && fits(&second) {
            return vec![first, second];
        }
    }
    // Every list element on its own line.
    let mut lines = Vec::new();
    if parts.list1.len() <= 1 {
        lines.push(first);
    } else {
        lines.push(format!("{indent}{prefix}{}", parts.head));
        let n = parts.list1.len();
        for (i, x) in parts.list1.iter().enumerate() {
            let comma = if i + 1 < n { "," } else { "" };
            lines.push(format!("{cont}{x}{comma}"));
        }
    }
    if let Some((kw, l)) = &parts.tail {
        let line = format!("{cont}{}", join(kw, l));
        if fits(&line) || l.len() <= 1 {
            lines.push(line);
        } else {
            lines.push(format!("{cont}{kw}"));
            let deeper = " ".repeat(depth * INDENT + 2 * CONTINUATION);
            let n = l.len();
            for (i, x) in l.iter().enumerate() {
                let comma = if i + 1 < n { "," } else { "" };
                lines.push(format!("{deeper}{x}{comma}"));
            }
        }
    }
    lines
}

fn addr_text(a: &AddrSpec) -> String {
    match a.kind {
        AddrKind::Any => "any".to_string(),
        AddrKind::Localhost => "localhost".to_string(),
        AddrKind::Cidr { addr, prefix } => {
            let full = match addr {
                IpAddr::V4(_) => 32,
                IpAddr::V6(_) => 128,
            };
            if prefix == full {
                addr.to_string()
            } else {
                format!("{addr}/{prefix}")
            }
        }
    }
}

fn port_text(p: &PortSpec) -> String {
    if p.lo == 0 && p.hi == u16::MAX {
        "any".to_string()
    } else if p.lo == p.hi {
        p.lo.to_string()
    } else {
        format!("{}-{}", p.lo, p.hi)
    }
}
