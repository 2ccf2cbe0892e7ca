//! Property tests: the parser never panics, every diagnostic points at real
//! text, and when a parse reports no error nothing was dropped (printing the
//! tree gives back exactly the input's tokens).
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::unwrap_used,
    reason = "tests fail by panicking"
)]

use kapl_syntax::ast::{AddrSpec, File, Item, PortSpec, Rule, RuleKind, StrLit, UseTarget};
use kapl_syntax::lexer::{Tok, lex};
use kapl_syntax::{FileId, parse};
use proptest::prelude::*;

const EXAMPLES: [&str; 5] = [
    include_str!("../../tests/examples/deploy.kapl"),
    include_str!("../../tests/examples/upgrade-deps.kapl"),
    include_str!("../../tests/examples/overreach.kapl"),
    include_str!("../../tests/examples/names.kapl"),
    include_str!("../../tests/examples/bad-syntax.kapl"),
];

/// The language's keywords (spelled out here, independently of the lexer).
const KEYWORDS: &[&str] = &[
    "use",
    "authority",
    "objective",
    "intent",
    "plan",
    "step",
    "under",
    "after",
    "about",
    "bound",
    "never",
    "grant",
    "fs",
    "exec",
    "net",
    "connect",
    "bind",
    "port",
    "any",
    "localhost",
    "except",
    "read",
    "write",
    "create",
    "delete",
];

/// Tokens and near-tokens the soup is made of, after the keywords.
const SOUP_EXTRA: &[&str] = &[
    "x",
    "runtime",
    "std",
    "loader",
    "a_1",
    "\"/a/**\"",
    "\"/srv/*.log\"",
    "\"rel\"",
    "\"/a/../b\"",
    "\"/{x,y}\"",
    "\"/[z-a]\"",
    "\"unterminated",
    "\"esc\\\"\"",
    "\"./f.kapl\"",
    "22",
    "70000",
    "8000",
    "-",
    "10.0.0.1",
    "10.0.0.0/8",
    "10.0.0.300/8",
    "10.20.5.",
    "1..2.3",
    "::1",
    "2001:db8::10",
    "fe80::1/129",
    ",",
    ".",
    "{",
    "}",
    "{",
    "}",
    "\n",
    "\r\n",
    "\"{/a,éb}\"",
    "\"/[é]\"",
    "\"é/x\"",
    "\"/a\\é\"",
    "// c\n",
    "/* c */",
    "/*",
    "#",
    "\0",
    "\u{feff}",
    "é",
    ";",
];

/// Keywords first, then the other tokens (the order proptest samples from).
fn soup_tokens() -> Vec<&'static str> {
    KEYWORDS.iter().chain(SOUP_EXTRA).copied().collect()
}

/// Prints the tree back as tokens, taking literal texts from their spans.
struct Printer<'a> {
    text: &'a str,
    out: Vec<(usize, String)>,
}

impl Printer<'_> {
    fn span(&self, s: kapl_syntax::Span) -> String {
        self.text[s.range()].to_string()
    }

    fn file(mut self, f: &File) -> String {
        let mut out = String::new();
        for item in &f.items {
            self.out.clear();
            self.item(item);
            self.out.sort_by_key(|(k, _)| *k);
            for (_, s) in &self.out {
                out.push_str(s);
                out.push('\n');
            }
        }
        out
    }

    fn about(&self, about: &[StrLit], out: &mut Vec<(usize, String)>) {
        for a in about {
            let esc = a.value.replace('\\', "\\\\").replace('"', "\\\"");
            out.push((a.span.start as usize, format!("about \"{esc}\"")));
        }
    }

    fn item(&mut self, item: &Item) {
        let mut parts = Vec::new();
        let (head, start, end) = match item {
            Item::Use(u) => {
                let t = match &u.target {
                    UseTarget::Module(q) => q.dotted().replace('.', " . "),
                    UseTarget::File(s) => self.span(s.span),
                };
                self.out.push((u.span.start as usize, format!("use {t}")));
                return;
            }
            Item::Param(p) => {
                let d = p
                    .default
                    .as_ref()
                    .map(|s| format!(" = {}", self.span(s.span)))
                    .unwrap_or_default();
                self.out
                    .push((p.span.start as usize, format!("param {}{d}", p.name.name)));
                return;
            }
            Item::Authority(a) => {
                for r in &a.rules {
                    parts.push((r.span.start as usize, self.rule(r)));
                }
                (
                    format!("authority {} {{", a.name.name),
                    a.span.start,
                    a.span.end,
                )
            }
            Item::Objective(b) | Item::Intent(b) => {
                self.about(&b.about, &mut parts);
                for (kw, blocks) in [("bound", &b.bound), ("never", &b.never)] {
                    for blk in blocks {
                        let rules: Vec<String> = blk.rules.iter().map(|r| self.rule(r)).collect();
                        parts.push((
                            blk.span.start as usize,
                            format!("{kw} {{ {} }}", rules.join(" ")),
                        ));
                    }
                }
                let head = match &b.under {
                    None => format!("objective {} {{", b.name.name),
                    Some(u) => format!(
                        "intent {} under {} {{",
                        b.name.name,
                        u.dotted().replace('.', " . ")
                    ),
                };
                (head, b.span.start, b.span.end)
            }
            Item::Plan(p) => {
                self.about(&p.about, &mut parts);
                for g in &p.grants {
                    parts.push((
                        g.span.start as usize,
                        format!("grant {}", self.rule(&g.rule)),
                    ));
                }
                for s in &p.steps {
                    let mut inner = Vec::new();
                    self.about(&s.about, &mut inner);
                    for g in &s.grants {
                        inner.push((
                            g.span.start as usize,
                            format!("grant {}", self.rule(&g.rule)),
                        ));
                    }
                    inner.sort_by_key(|(k, _)| *k);
                    let after: Vec<&str> = s.after.iter().map(|a| a.name.as_str()).collect();
                    let after = if after.is_empty() {
                        String::new()
                    } else {
                        format!("after {}", after.join(" , "))
                    };
                    let body: Vec<String> = inner.into_iter().map(|(_, s)| s).collect();
                    parts.push((
                        s.span.start as usize,
                        format!("step {} {after} {{ {} }}", s.name.name, body.join(" ")),
                    ));
                }
                (
                    format!(
                        "plan {} under {} {{",
                        p.name.name,
                        p.under.dotted().replace('.', " . ")
                    ),
                    p.span.start,
                    p.span.end,
                )
            }
        };
        self.out.push((start as usize, head));
        self.out.extend(parts);
        self.out.push((end as usize, "}".to_string()));
    }

    fn rule(&self, r: &Rule) -> String {
        match &r.kind {
            RuleKind::Fs {
                rights,
                patterns,
                except,
            } => {
                let rights: Vec<&str> = rights.iter().map(|r| r.right.as_str()).collect();
                let pats: Vec<String> = patterns.iter().map(|p| self.span(p.span)).collect();
                let mut s = format!("fs {} {}", rights.join(" , "), pats.join(" , "));
                if !except.is_empty() {
                    let ex: Vec<String> = except.iter().map(|p| self.span(p.span)).collect();
                    s.push_str(&format!(" except {}", ex.join(" , ")));
                }
                s
            }
            RuleKind::Exec { patterns } => {
                let pats: Vec<String> = patterns.iter().map(|p| self.span(p.span)).collect();
                format!("exec {}", pats.join(" , "))
            }
            RuleKind::Net {
                op, addrs, ports, ..
            } => {
                let a: Vec<String> = addrs.iter().map(|a: &AddrSpec| self.span(a.span)).collect();
                let p: Vec<String> = ports.iter().map(|p: &PortSpec| self.span(p.span)).collect();
                format!(
                    "net {} {} port {}",
                    op.as_str(),
                    a.join(" , "),
                    p.join(" , ")
                )
            }
            RuleKind::Use { name } => format!("use {}", name.dotted().replace('.', " . ")),
        }
    }
}

fn token_texts(text: &str) -> Vec<String> {
    lex(FileId(0), text)
        .tokens
        .iter()
        .map(|(s, t, e)| match t {
            Tok::Str(st) => format!("str:{}", st.raw),
            _ => text[*s..*e].to_string(),
        })
        .collect()
}

/// The property every parse must have.
fn check(text: &str) {
    let parsed = parse(FileId(0), text);
    for d in &parsed.diagnostics {
        assert!(!d.labels.is_empty(), "{d:?}");
        assert!(!d.message.is_empty());
        for l in &d.labels {
            let r = l.span.range();
            assert!(r.start <= r.end && r.end <= text.len(), "{d:?}");
            assert!(
                text.is_char_boundary(r.start) && text.is_char_boundary(r.end),
                "{d:?}"
            );
        }
    }
    if !parsed.has_errors() {
        let printed = Printer {
            text,
            out: Vec::new(),
        }
        .file(&parsed.file);
        assert_eq!(
            token_texts(&printed),
            token_texts(text),
            "no error was reported, but the tree lost tokens\ninput: {text:?}\nprinted: {printed:?}"
        );
        let again = parse(FileId(0), &printed);
        assert!(!again.has_errors(), "{printed:?}: {:?}", again.diagnostics);
    }
}

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::sample::select(soup_tokens()),
            prop::bool::weighted(0.8),
        ),
        0..60,
    )
    .prop_map(|v| {
        let mut s = String::new();
        for (t, space) in v {
            s.push_str(t);
            if space {
                s.push(' ');
            }
        }
        s
    })
}

#[derive(Clone, Debug)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, &'static str),
    Duplicate(usize, usize),
}

fn floor(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut s = text.to_string();
    for e in edits {
        match *e {
            Edit::Delete(at, len) => {
                let a = floor(&s, at % (s.len() + 1));
                let b = floor(&s, a + len % 40);
                s.replace_range(a..b, "");
            }
            Edit::Insert(at, t) => {
                let a = floor(&s, at % (s.len() + 1));
                s.insert_str(a, t);
            }
            Edit::Duplicate(at, len) => {
                let a = floor(&s, at % (s.len() + 1));
                let b = floor(&s, a + len % 80);
                let piece = s[a..b].to_string();
                s.insert_str(b, &piece);
            }
        }
    }
    s
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(a, l)| Edit::Delete(a, l)),
        (any::<usize>(), prop::sample::select(soup_tokens())).prop_map(|(a, t)| Edit::Insert(a, t)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, l)| Edit::Duplicate(a, l)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1500)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_ascii(s in "[ -~\n\t]{0,600}") {
        check(&s);
    }

    #[test]
    fn token_soup(s in soup()) {
        check(&s);
    }

    #[test]
    fn truncated_examples(which in 0..EXAMPLES.len(), cut in any::<usize>()) {
        let t = EXAMPLES[which];
        let at = floor(t, cut % (t.len() + 1));
        check(&t[..at]);
        check(&t[at..]);
    }

    #[test]
    fn mutated_examples(which in 0..EXAMPLES.len(), edits in prop::collection::vec(edit(), 1..6)) {
        check(&apply(EXAMPLES[which], &edits));
    }
}

#[test]
fn examples_round_trip() {
    for e in EXAMPLES {
        check(e);
    }
    // Clean examples must take the no-error branch of the property.
    for e in &EXAMPLES[..3] {
        assert!(!parse(FileId(0), e).has_errors());
    }
}

// ------------------------------------------------------------------
// Valid policies, generated: they must parse without any diagnostic,
// whatever the whitespace and comments between tokens.

fn name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,7}".prop_filter("keyword", |s| !KEYWORDS.contains(&s.as_str()))
}

fn qual() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(name(), 1..4).prop_map(|parts| {
        let mut t = Vec::new();
        for (i, p) in parts.into_iter().enumerate() {
            if i > 0 {
                t.push(".".to_string());
            }
            t.push(p);
        }
        t
    })
}

fn pattern() -> impl Strategy<Value = String> {
    let seg = prop::sample::select(vec![
        "a", "srv", "web", "*", "**", "x*y", "?", "[a-c]", "[!0-9]", "{a,b}", "{x,y/z}", "\\*",
        ".env", "é", "a.b", "...", "[-a]", "{,q}r", "\\{", "**x",
    ]);
    prop_oneof![
        1 => Just("\"/\"".to_string()),
        10 => prop::collection::vec(seg, 1..6).prop_map(|s| format!("\"/{}\"", s.join("/"))),
    ]
}

fn comma_list(items: Vec<String>) -> Vec<String> {
    let mut t = Vec::new();
    for (i, it) in items.into_iter().enumerate() {
        if i > 0 {
            t.push(",".to_string());
        }
        t.push(it);
    }
    t
}

fn addr() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("any".to_string()),
        Just("localhost".to_string()),
        Just("::1".to_string()),
        Just("2001:db8::/32".to_string()),
        Just("::ffff:1.2.3.4".to_string()),
        Just("fe80::1/64".to_string()),
        (any::<[u8; 4]>(), prop::option::of(0u8..=32)).prop_map(|(o, p)| format!(
            "{}.{}.{}.{}{}",
            o[0],
            o[1],
            o[2],
            o[3],
            p.map(|p| format!("/{p}")).unwrap_or_default()
        )),
        (any::<[u16; 8]>(), 0u8..=128).prop_map(|(h, p)| format!(
            "{}/{p}",
            std::net::Ipv6Addr::new(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
        )),
    ]
}

fn port() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        Just(vec!["any".to_string()]),
        any::<u16>().prop_map(|p| vec![p.to_string()]),
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| vec![
            a.min(b).to_string(),
            "-".to_string(),
            a.max(b).to_string()
        ]),
    ]
}

fn rule() -> impl Strategy<Value = Vec<String>> {
    let rights = prop::collection::vec(
        prop::sample::select(vec!["read", "write", "create", "delete"]),
        1..4,
    )
    .prop_map(|r| comma_list(r.into_iter().map(str::to_string).collect()));
    let pats = || prop::collection::vec(pattern(), 1..3).prop_map(comma_list);
    prop_oneof![
        (rights, pats(), prop::option::of(pats())).prop_map(|(r, p, e)| {
            let mut t = vec!["fs".to_string()];
            t.extend(r);
            t.extend(p);
            if let Some(e) = e {
                t.push("except".to_string());
                t.extend(e);
            }
            t
        }),
        pats().prop_map(|p| {
            let mut t = vec!["exec".to_string()];
            t.extend(p);
            t
        }),
        (
            prop::sample::select(vec!["connect", "bind"]),
            prop::collection::vec(addr(), 1..4),
            prop::collection::vec(port(), 1..4)
        )
            .prop_map(|(op, a, p)| {
                let mut t = vec!["net".to_string(), op.to_string()];
                t.extend(comma_list(a));
                t.push("port".to_string());
                for (i, x) in p.into_iter().enumerate() {
                    if i > 0 {
                        t.push(",".to_string());
                    }
                    t.extend(x);
                }
                t
            }),
        qual().prop_map(|q| {
            let mut t = vec!["use".to_string()];
            t.extend(q);
            t
        }),
    ]
}

fn about() -> impl Strategy<Value = Vec<String>> {
    "[ -~]{0,20}".prop_map(|s| {
        vec![
            "about".to_string(),
            format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        ]
    })
}

fn block(kw: &'static str) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(rule(), 0..4).prop_map(move |rules| {
        let mut t = vec![kw.to_string(), "{".to_string()];
        t.extend(rules.into_iter().flatten());
        t.push("}".to_string());
        t
    })
}

fn grant() -> impl Strategy<Value = Vec<String>> {
    rule().prop_map(|r| {
        let mut t = vec!["grant".to_string()];
        t.extend(r);
        t
    })
}

fn item() -> impl Strategy<Value = Vec<String>> {
    let body = (
        prop::option::of(about()),
        block("bound"),
        prop::option::of(block("never")),
    );
    let step = (
        name(),
        prop::collection::vec(name(), 0..3),
        prop::collection::vec(prop_oneof![about(), grant()], 0..4),
    )
        .prop_map(|(n, after, parts)| {
            let mut t = vec!["step".to_string(), n];
            if !after.is_empty() {
                t.push("after".to_string());
                t.extend(comma_list(after));
            }
            t.push("{".to_string());
            t.extend(parts.into_iter().flatten());
            t.push("}".to_string());
            t
        });
    prop_oneof![
        prop_oneof![
            qual(),
            "\\./[a-z]{1,8}\\.kapl".prop_map(|f| vec![format!("\"{f}\"")])
        ]
        .prop_map(|q| {
            let mut t = vec!["use".to_string()];
            t.extend(q);
            t
        }),
        (name(), prop::collection::vec(rule(), 0..4)).prop_map(|(n, rules)| {
            let mut t = vec!["authority".to_string(), n, "{".to_string()];
            t.extend(rules.into_iter().flatten());
            t.push("}".to_string());
            t
        }),
        (name(), prop::option::of(qual()), body).prop_map(|(n, under, (a, b, nv))| {
            let mut t = match under {
                None => vec!["objective".to_string(), n],
                Some(u) => {
                    let mut t = vec!["intent".to_string(), n, "under".to_string()];
                    t.extend(u);
                    t
                }
            };
            t.push("{".to_string());
            t.extend(a.into_iter().flatten());
            t.extend(b);
            t.extend(nv.into_iter().flatten());
            t.push("}".to_string());
            t
        }),
        (
            name(),
            qual(),
            prop::collection::vec(prop_oneof![about(), grant(), step], 0..5)
        )
            .prop_map(|(n, u, parts)| {
                let mut t = vec!["plan".to_string(), n, "under".to_string()];
                t.extend(u);
                t.push("{".to_string());
                t.extend(parts.into_iter().flatten());
                t.push("}".to_string());
                t
            }),
    ]
}

fn policy() -> impl Strategy<Value = (usize, String)> {
    (
        prop::collection::vec(item(), 0..6),
        prop::collection::vec(
            prop::sample::select(vec![
                " ",
                "\n",
                "\r\n",
                "\t",
                " /* c */ ",
                " // c\n",
                "\n\n",
            ]),
            1..16,
        ),
    )
        .prop_map(|(items, seps)| {
            let n = items.len();
            let mut s = String::new();
            for (i, tok) in items.into_iter().flatten().enumerate() {
                s.push_str(&tok);
                s.push_str(seps[i % seps.len()]);
            }
            (n, s)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn valid_policies_parse_cleanly((n, text) in policy()) {
        let p = parse(FileId(0), &text);
        prop_assert!(p.diagnostics.is_empty(), "{text}\n{:#?}", p.diagnostics);
        prop_assert_eq!(p.file.items.len(), n);
        check(&text);
    }
}
