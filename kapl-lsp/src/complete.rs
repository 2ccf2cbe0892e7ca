//! Completion: what may be typed at the cursor.
//!
//! Input: the text before the cursor (the file may be half typed and not
//! parse). Output: a [`Context`] saying which kind of word fits there; the
//! server turns it into keywords, names from the [`crate::index::NameIndex`]
//! and stdlib authorities. A small scanner of its own (strings, comments,
//! braces, words) keeps this independent of whether the parser recovers.

/// What fits at the cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Context {
    /// Start of a top-level item.
    TopLevel,
    /// After a top-level `use`: a stdlib module (`std.NAME`).
    Module,
    /// Inside an objective or an intent, outside its blocks.
    BoundedBody,
    /// Inside a plan, outside its steps.
    PlanBody,
    /// Inside a step.
    StepBody,
    /// Where a rule starts: in `bound`, `never`, `authority`, or after
    /// `grant`. `after_fs` is true when the previous rule was an `fs` rule
    /// (so `except` may continue it).
    Rule {
        /// The previous rule may take `except`.
        after_fs: bool,
    },
    /// After `fs` (or a right and a comma): a right.
    Right,
    /// After `net`: `connect` or `bind`.
    NetOp,
    /// After `connect`/`bind` (or an address and a comma): an address.
    Addr,
    /// After addresses: `port`.
    PortKeyword,
    /// After `port`: a port.
    Port,
    /// After a rule's `use`: an authority.
    Authority,
    /// After `under`: an objective (for an intent) or an intent or objective
    /// (for a plan).
    Under {
        /// The item being written is a plan.
        plan: bool,
    },
    /// After `after`: a step of the enclosing plan.
    Step {
        /// The plan being written, if its name is known.
        plan: Option<String>,
    },
    /// Inside a pattern, after `${`: a declared parameter.
    Param,
    /// Inside a string, a comment, or after something that takes no name.
    Nothing,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Str,
    Comma,
    Open,
    Close,
    Other,
}

/// Scans `before` (the text up to the cursor) into tokens; `None` when the
/// cursor is inside a string or a comment.
fn scan(before: &str) -> Option<Vec<Tok>> {
    let b = before.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'/' && b.get(i + 1) == Some(&b'/') {
            match before[i..].find('\n') {
                Some(n) => i += n + 1,
                None => return None,
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            match before[i + 2..].find("*/") {
                Some(n) => i += n + 4,
                None => return None,
            }
        } else if c == b'"' {
            let mut j = i + 1;
            loop {
                match b.get(j) {
                    None => return None,
                    Some(b'\\') => j += 2,
                    Some(b'"') => break,
                    Some(b'\n') => break,
                    Some(_) => j += 1,
                }
            }
            toks.push(Tok::Str);
            i = j + 1;
        } else if c == b',' {
            toks.push(Tok::Comma);
            i += 1;
        } else if c == b'{' {
            toks.push(Tok::Open);
            i += 1;
        } else if c == b'}' {
            toks.push(Tok::Close);
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b':' || c == b'/' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b"_.:/-".contains(&b[i])) {
                i += 1;
            }
            toks.push(Tok::Word(before[start..i].to_string()));
        } else {
            toks.push(Tok::Other);
            i += 1;
        }
    }
    Some(toks)
}

/// Whether the cursor is inside a string, right after `${` and perhaps
/// the start of a name.
fn in_param_reference(before: &str) -> bool {
    let name_start = before
        .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_')
        .len();
    let Some(head) = before[..name_start].strip_suffix("${") else {
        return false;
    };
    // Inside a string: an odd number of unescaped quotes on this line.
    let line = head.rsplit('\n').next().unwrap_or(head);
    let (mut quotes, mut escaped) = (0, false);
    for c in line.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quotes += 1,
            _ => {}
        }
    }
    quotes % 2 == 1 && !head.ends_with('\\')
}

const HEADERS: [&str; 7] = [
    "authority",
    "objective",
    "intent",
    "plan",
    "step",
    "bound",
    "never",
];

const RIGHTS: [&str; 4] = ["read", "write", "create", "delete"];

/// The completion context for the text before the cursor. A word being
/// typed right at the cursor is not part of the context.
pub fn context(before: &str) -> Context {
    if in_param_reference(before) {
        return Context::Param;
    }
    // Drop the word under the cursor.
    let cut = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .last()
        .map_or(before.len(), |(i, _)| i);
    let Some(toks) = scan(&before[..cut]) else {
        return Context::Nothing;
    };
    // The open braces with the header keyword and name of each.
    let mut stack: Vec<(String, Option<String>)> = Vec::new();
    // Tokens of the current statement (since the last brace).
    let mut stmt_start = 0;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Open => {
                let header = toks[stmt_start..i]
                    .iter()
                    .rev()
                    .filter_map(|t| match t {
                        Tok::Word(w) => Some(w.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>();
                // The header keyword is the last header word that is
                // followed by the item's name (or is a block keyword).
                let mut found = (String::from("?"), None);
                let words: Vec<&str> = header.into_iter().rev().collect();
                for (k, w) in words.iter().enumerate() {
                    if HEADERS.contains(w) {
                        found = (w.to_string(), words.get(k + 1).map(|s| s.to_string()));
                    }
                }
                stack.push(found);
                stmt_start = i + 1;
            }
            Tok::Close => {
                stack.pop();
                stmt_start = i + 1;
            }
            _ => {}
        }
    }
    let stmt = &toks[stmt_start..];
    let container = stack.last().map(|(k, _)| k.as_str());
    let plan_name = stack
        .iter()
        .rev()
        .find(|(k, _)| k == "plan")
        .and_then(|(_, n)| n.clone());
    let in_rules = matches!(container, Some("bound" | "never" | "authority"));

    // Find the start of the current rule or clause: the last statement
    // keyword in `stmt`.
    let starts = [
        "use",
        "grant",
        "about",
        "step",
        "fs",
        "exec",
        "net",
        "objective",
        "intent",
        "plan",
        "authority",
        "bound",
        "never",
    ];
    let last_kw = stmt.iter().rposition(|t| match t {
        Tok::Word(w) => starts.contains(&w.as_str()),
        _ => false,
    });
    let word = |t: Option<&Tok>| match t {
        Some(Tok::Word(w)) => Some(w.clone()),
        _ => None,
    };
    let last = stmt.last();
    let last_word = word(last);

    // Header positions: `intent X under |`, `plan X under |`, `step X after a, |`.
    if let Some(pos) = stmt.iter().rposition(|t| *t == Tok::Word("under".into()))
        && pos + 1 == stmt.len()
    {
        let plan = stmt.iter().any(|t| *t == Tok::Word("plan".into()));
        return Context::Under { plan };
    }
    if let Some(pos) = stmt.iter().rposition(|t| *t == Tok::Word("after".into())) {
        let rest = &stmt[pos + 1..];
        let expecting = rest.is_empty() || rest.last() == Some(&Tok::Comma);
        if expecting && rest.iter().all(|t| matches!(t, Tok::Word(_) | Tok::Comma)) {
            return Context::Step { plan: plan_name };
        }
    }

    let Some(kw_pos) = last_kw else {
        // At the start of a statement.
        return match container {
            None => Context::TopLevel,
            Some("objective" | "intent") => Context::BoundedBody,
            Some("plan") => Context::PlanBody,
            Some("step") => Context::StepBody,
            Some(_) if in_rules => Context::Rule { after_fs: false },
            Some(_) => Context::Nothing,
        };
    };
    let kw = word(stmt.get(kw_pos)).unwrap_or_default();
    let rest = &stmt[kw_pos + 1..];
    match kw.as_str() {
        "use" if container.is_none() => {
            if rest.is_empty() {
                Context::Module
            } else {
                Context::TopLevel
            }
        }
        "use" => {
            if rest.is_empty() {
                Context::Authority
            } else {
                after_rule(container)
            }
        }
        "grant" if rest.is_empty() => Context::Rule { after_fs: false },
        "fs" => {
            if rest.is_empty() || last == Some(&Tok::Comma) && !rest.contains(&Tok::Str) {
                Context::Right
            } else if last_word.as_deref().is_some_and(|w| RIGHTS.contains(&w)) {
                Context::Nothing
            } else if matches!(last, Some(Tok::Str)) {
                match after_rule(container) {
                    Context::Rule { .. } => Context::Rule { after_fs: true },
                    other => other,
                }
            } else {
                Context::Nothing
            }
        }
        "exec" => {
            if matches!(last, Some(Tok::Str)) {
                after_rule(container)
            } else {
                Context::Nothing
            }
        }
        "net" => {
            let has_port = rest.contains(&Tok::Word("port".into()));
            if rest.is_empty() {
                Context::NetOp
            } else if has_port {
                if last_word.as_deref() == Some("port") || last == Some(&Tok::Comma) {
                    Context::Port
                } else {
                    after_rule(container)
                }
            } else if rest.len() == 1 || last == Some(&Tok::Comma) {
                Context::Addr
            } else {
                Context::PortKeyword
            }
        }
        "about" => {
            if matches!(last, Some(Tok::Str)) {
                match container {
                    Some("objective" | "intent") => Context::BoundedBody,
                    Some("plan") => Context::PlanBody,
                    Some("step") => Context::StepBody,
                    _ => Context::Nothing,
                }
            } else {
                Context::Nothing
            }
        }
        _ => Context::Nothing,
    }
}

/// What may follow a complete rule in the given container.
fn after_rule(container: Option<&str>) -> Context {
    match container {
        Some("bound" | "never" | "authority") => Context::Rule { after_fs: false },
        Some("plan") => Context::PlanBody,
        Some("step") => Context::StepBody,
        _ => Context::Nothing,
    }
}

/// The keywords that fit a context.
pub fn keywords(ctx: &Context) -> &'static [&'static str] {
    match ctx {
        Context::TopLevel => &["use", "param", "authority", "objective", "intent", "plan"],
        Context::BoundedBody => &["about", "bound", "never"],
        Context::PlanBody => &["about", "grant", "step"],
        Context::StepBody => &["about", "grant"],
        Context::Rule { after_fs: true } => &["fs", "exec", "net", "use", "except"],
        Context::Rule { after_fs: false } => &["fs", "exec", "net", "use"],
        Context::Right => &["read", "write", "create", "delete"],
        Context::NetOp => &["connect", "bind"],
        Context::Addr => &["any", "localhost"],
        Context::PortKeyword => &["port"],
        Context::Port => &["any"],
        Context::Module
        | Context::Authority
        | Context::Under { .. }
        | Context::Step { .. }
        | Context::Param
        | Context::Nothing => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_after_dollar_brace() {
        assert_eq!(ctx("objective o { bound { fs read \"${"), Context::Param);
        assert_eq!(ctx("objective o { bound { fs read \"${pr"), Context::Param);
        assert_eq!(
            ctx("objective o { bound { fs read \"/a/\\${"),
            Context::Nothing
        );
        assert_eq!(
            ctx("objective o { bound { fs read \"${p}/x\" ${"),
            Context::Nothing
        );
    }

    fn ctx(s: &str) -> Context {
        context(s)
    }

    #[test]
    fn contexts() {
        assert_eq!(ctx(""), Context::TopLevel);
        assert_eq!(ctx("obj"), Context::TopLevel);
        assert_eq!(ctx("use "), Context::Module);
        assert_eq!(ctx("use std.ru"), Context::Module);
        assert_eq!(ctx("use std.runtime\n"), Context::TopLevel);
        assert_eq!(ctx("objective o {\n  "), Context::BoundedBody);
        assert_eq!(
            ctx("objective o {\n  bound {\n    "),
            Context::Rule { after_fs: false }
        );
        assert_eq!(ctx("objective o {\n  bound {\n    fs "), Context::Right);
        assert_eq!(
            ctx("objective o {\n  bound {\n    fs read, wr"),
            Context::Right
        );
        assert_eq!(
            ctx("objective o { bound { fs read \"/a\" "),
            Context::Rule { after_fs: true }
        );
        assert_eq!(
            ctx("objective o { bound { exec \"/a\" "),
            Context::Rule { after_fs: false }
        );
        assert_eq!(ctx("objective o { bound { net "), Context::NetOp);
        assert_eq!(ctx("objective o { bound { net connect "), Context::Addr);
        assert_eq!(
            ctx("objective o { bound { net connect 10.0.0.0/8 "),
            Context::PortKeyword
        );
        assert_eq!(
            ctx("objective o { bound { net connect 10.0.0.0/8, "),
            Context::Addr
        );
        assert_eq!(
            ctx("objective o { bound { net bind any port "),
            Context::Port
        );
        assert_eq!(
            ctx("objective o { bound { net bind any port 22 "),
            Context::Rule { after_fs: false }
        );
        assert_eq!(ctx("objective o { bound { use "), Context::Authority);
        assert_eq!(ctx("objective o { bound { fs read \"/a"), Context::Nothing);
        assert_eq!(ctx("objective o { // bound { "), Context::Nothing);
        assert_eq!(ctx("objective o { bound { } } "), Context::TopLevel);
        assert_eq!(ctx("intent i under "), Context::Under { plan: false });
        assert_eq!(ctx("plan p under "), Context::Under { plan: true });
        assert_eq!(ctx("plan p under o {\n "), Context::PlanBody);
        assert_eq!(
            ctx("plan p under o { grant "),
            Context::Rule { after_fs: false }
        );
        assert_eq!(ctx("plan p under o { grant use "), Context::Authority);
        assert_eq!(ctx("plan p under o { grant use a "), Context::PlanBody);
        assert_eq!(ctx("plan p under o { step s { "), Context::StepBody);
        assert_eq!(
            ctx("plan p under o { step s { about \"x\" "),
            Context::StepBody
        );
        assert_eq!(
            ctx("plan p under o { step s { grant fs read \"/x\" "),
            Context::StepBody
        );
        assert_eq!(
            ctx("plan p under o { step s {} step t after "),
            Context::Step {
                plan: Some("p".into())
            }
        );
        assert_eq!(
            ctx("plan p under o { step s {} step t after s, "),
            Context::Step {
                plan: Some("p".into())
            }
        );
        assert_eq!(
            ctx("plan p under o { step s {} step t after s "),
            Context::Nothing
        );
    }
}
