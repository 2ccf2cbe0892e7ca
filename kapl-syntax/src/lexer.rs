//! The lexer: source text to tokens, comments and lexical diagnostics.
//!
//! Input: one file's text. Output: [`Lexed`], the tokens with byte offsets
//! (fed to the parser), the comments (kept for the formatter), and a
//! diagnostic for every lexical problem. Lexing never stops early: a stray
//! character is reported and skipped, an unterminated string ends at the end
//! of its line, an unterminated comment at the end of the file.
//!
//! Address literals are the subtle part: `10.20.0.0/16`, `2001:db8::10`,
//! `::1`, `fe80::1`, `::ffff:1.2.3.4`. A word that starts with a digit is a
//! number when it is all digits and an address-like literal when it holds a
//! `.`, `:` or `/`; a word that contains `:` is address-like too (so
//! `fe80::1` is one token while `fe80` alone would be a name). Address-like
//! literals are validated later, so `10.0.0.300/8` is one token and one
//! precise error. Names never contain `.`: `runtime.loader` is a name, a
//! `.` and a name.

use crate::ast::Comment;
use crate::codes;
use crate::diag::Diagnostic;
use crate::span::{FileId, Span};
use logos::Logos;

/// One token as the parser sees it. Texts borrow from the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tok<'a> {
    /// `use`
    Use,
    /// `authority`
    Authority,
    /// `objective`
    Objective,
    /// `intent`
    Intent,
    /// `plan`
    Plan,
    /// `step`
    Step,
    /// `under`
    Under,
    /// `after`
    After,
    /// `about`
    About,
    /// `bound`
    Bound,
    /// `never`
    Never,
    /// `grant`
    Grant,
    /// `fs`
    Fs,
    /// `exec`
    Exec,
    /// `net`
    Net,
    /// `connect`
    Connect,
    /// `bind`
    Bind,
    /// `port`
    Port,
    /// `any`
    Any,
    /// `localhost`
    Localhost,
    /// `except`
    Except,
    /// `read`
    Read,
    /// `write`
    Write,
    /// `create`
    Create,
    /// `delete`
    Delete,
    /// `param`
    Param,
    /// A name: `[A-Za-z_][A-Za-z0-9_]*` that is not a keyword.
    Ident(&'a str),
    /// A string literal.
    Str(StrTok<'a>),
    /// A word that starts with a digit and has no `.`, `:` or `/`
    /// (usually all digits; validated where it is used).
    Number(&'a str),
    /// An address-like literal (validated where it is used).
    Addr(&'a str),
    /// `,`
    Comma,
    /// `-`
    Minus,
    /// `.`
    Dot,
    /// `=`
    Eq,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
}

/// A string literal's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrTok<'a> {
    /// The text between the quotes, escapes not resolved.
    pub raw: &'a str,
    /// False when the closing quote is missing (already reported).
    pub terminated: bool,
}

impl Tok<'_> {
    /// The keyword's text, for keyword tokens.
    pub fn keyword(&self) -> Option<&'static str> {
        Some(match self {
            Tok::Use => "use",
            Tok::Authority => "authority",
            Tok::Objective => "objective",
            Tok::Intent => "intent",
            Tok::Plan => "plan",
            Tok::Step => "step",
            Tok::Under => "under",
            Tok::After => "after",
            Tok::About => "about",
            Tok::Bound => "bound",
            Tok::Never => "never",
            Tok::Grant => "grant",
            Tok::Fs => "fs",
            Tok::Exec => "exec",
            Tok::Net => "net",
            Tok::Connect => "connect",
            Tok::Bind => "bind",
            Tok::Port => "port",
            Tok::Any => "any",
            Tok::Localhost => "localhost",
            Tok::Except => "except",
            Tok::Read => "read",
            Tok::Write => "write",
            Tok::Create => "create",
            Tok::Delete => "delete",
            Tok::Param => "param",
            _ => return None,
        })
    }

    /// How an error message names this token: ``keyword `read` ``,
    /// ``string `"/a"` ``, ``name `foo` ``, `` `{` ``. Long texts are cut.
    pub fn describe(&self, source: &str) -> String {
        if let Some(k) = self.keyword() {
            return format!("keyword `{k}`");
        }
        match self {
            Tok::Ident(s) => format!("name `{}`", shorten(s)),
            Tok::Str(_) => format!("string `{}`", shorten(source)),
            Tok::Number(s) => format!("number `{}`", shorten(s)),
            Tok::Addr(s) => format!("address `{}`", shorten(s)),
            Tok::Comma => "`,`".to_string(),
            Tok::Minus => "`-`".to_string(),
            Tok::Dot => "`.`".to_string(),
            Tok::Eq => "`=`".to_string(),
            Tok::LBrace => "`{`".to_string(),
            Tok::RBrace => "`}`".to_string(),
            _ => "a token".to_string(),
        }
    }
}

/// Cuts a text for display in a message: at most 40 characters, with `…`.
pub fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

/// The lexer's output.
#[derive(Clone, Debug, Default)]
pub struct Lexed<'a> {
    /// Tokens with their byte ranges, in order.
    pub tokens: Vec<(usize, Tok<'a>, usize)>,
    /// Comments in order.
    pub comments: Vec<Comment>,
    /// Lexical problems, in order.
    pub diagnostics: Vec<Diagnostic>,
    /// Where lexing stopped because there were more than
    /// [`MAX_ERRORS`](crate::parser::MAX_ERRORS) problems (no tokens are
    /// produced after it).
    pub stopped_at: Option<usize>,
}

/// The raw logos token kinds; converted to [`Tok`] with their slices.
#[derive(Logos, Clone, Copy, Debug, PartialEq, Eq)]
#[logos(skip r"[ \t\r\n\f]+")]
enum Raw {
    #[token("use")]
    Use,
    #[token("authority")]
    Authority,
    #[token("objective")]
    Objective,
    #[token("intent")]
    Intent,
    #[token("plan")]
    Plan,
    #[token("step")]
    Step,
    #[token("under")]
    Under,
    #[token("after")]
    After,
    #[token("about")]
    About,
    #[token("bound")]
    Bound,
    #[token("never")]
    Never,
    #[token("grant")]
    Grant,
    #[token("fs")]
    Fs,
    #[token("exec")]
    Exec,
    #[token("net")]
    Net,
    #[token("connect")]
    Connect,
    #[token("bind")]
    Bind,
    #[token("port")]
    Port,
    #[token("any")]
    Any,
    #[token("localhost")]
    Localhost,
    #[token("except")]
    Except,
    #[token("read")]
    Read,
    #[token("write")]
    Write,
    #[token("create")]
    Create,
    #[token("delete")]
    Delete,
    #[token("param")]
    Param,
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    Ident,
    // A word starting with a digit: a number, or an address when it holds
    // `.`, `:` or `/` (the callback decides).
    #[regex(r"[0-9][0-9A-Za-z_.:]*(/[0-9]*)?", digit_word)]
    Number,
    // Address-like literals that start with a hex letter or `:` and contain
    // a `:` (`fe80::1`, `::1`, `::ffff:1.2.3.4`).
    #[regex(r"[A-Fa-f][0-9A-Fa-f]*:[0-9A-Fa-f:.]*(/[0-9]*)?")]
    #[regex(r":[0-9A-Fa-f:.]*(/[0-9]*)?")]
    Addr,
    #[token("\"", string)]
    Str(Terminated),
    #[token("//", line_comment)]
    LineComment,
    #[token("/*", block_comment)]
    BlockComment(Terminated),
    #[token(",")]
    Comma,
    #[token("-")]
    Minus,
    #[token(".")]
    Dot,
    #[token("=")]
    Eq,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
}

/// Whether a string or block comment found its closing delimiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Terminated(bool);

fn digit_word(lex: &mut logos::Lexer<Raw>) -> Raw {
    if lex.slice().bytes().any(|b| matches!(b, b'.' | b':' | b'/')) {
        Raw::Addr
    } else {
        Raw::Number
    }
}

/// After the opening quote: up to the closing quote, or up to (not
/// including) the end of the line.
fn string(lex: &mut logos::Lexer<Raw>) -> Terminated {
    let rest = lex.remainder().as_bytes();
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            b'"' => {
                lex.bump(i + 1);
                return Terminated(true);
            }
            b'\n' | b'\r' => break,
            b'\\' => {
                // The escaped character may be several bytes: stop on a
                // char boundary by skipping continuation bytes.
                i += 1;
                if i < rest.len() && !matches!(rest[i], b'\n' | b'\r') {
                    i += 1;
                    while i < rest.len() && (rest[i] & 0xC0) == 0x80 {
                        i += 1;
                    }
                }
            }
            _ => i += 1,
        }
    }
    lex.bump(i);
    Terminated(false)
}

fn line_comment(lex: &mut logos::Lexer<Raw>) {
    let rest = lex.remainder().as_bytes();
    let n = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    lex.bump(n);
}

fn block_comment(lex: &mut logos::Lexer<Raw>) -> Terminated {
    let rest = lex.remainder();
    match rest.find("*/") {
        Some(n) => {
            lex.bump(n + 2);
            Terminated(true)
        }
        None => {
            lex.bump(rest.len());
            Terminated(false)
        }
    }
}

/// Lexes `text`; spans are byte offsets into `text`. A leading UTF-8 byte
/// order mark is skipped.
pub fn lex(file: FileId, text: &str) -> Lexed<'_> {
    let base = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let body = &text[base..];
    let mut out = Lexed {
        tokens: Vec::with_capacity(body.len() / 6),
        ..Lexed::default()
    };
    let sp = |s: usize, e: usize| Span::new(file, s, e);
    // A run of stray characters being collected: (start, end).
    let mut stray: Option<(usize, usize)> = None;
    let mut lexer = Raw::lexer(body);
    while let Some(raw) = lexer.next() {
        let r = lexer.span();
        let (start, end) = (r.start + base, r.end + base);
        if out.diagnostics.len() > crate::parser::MAX_ERRORS {
            out.stopped_at = Some(start);
            break;
        }
        let slice = &text[start..end];
        let raw = match raw {
            Ok(raw) => raw,
            Err(()) => {
                stray = Some(match stray {
                    Some((s, e)) if e == start => (s, end),
                    Some(run) => {
                        report_stray(file, text, run, &mut out.diagnostics);
                        (start, end)
                    }
                    None => (start, end),
                });
                continue;
            }
        };
        if let Some(run) = stray.take() {
            report_stray(file, text, run, &mut out.diagnostics);
        }
        let tok = match raw {
            Raw::Use => Tok::Use,
            Raw::Authority => Tok::Authority,
            Raw::Objective => Tok::Objective,
            Raw::Intent => Tok::Intent,
            Raw::Plan => Tok::Plan,
            Raw::Step => Tok::Step,
            Raw::Under => Tok::Under,
            Raw::After => Tok::After,
            Raw::About => Tok::About,
            Raw::Bound => Tok::Bound,
            Raw::Never => Tok::Never,
            Raw::Grant => Tok::Grant,
            Raw::Fs => Tok::Fs,
            Raw::Exec => Tok::Exec,
            Raw::Net => Tok::Net,
            Raw::Connect => Tok::Connect,
            Raw::Bind => Tok::Bind,
            Raw::Port => Tok::Port,
            Raw::Any => Tok::Any,
            Raw::Localhost => Tok::Localhost,
            Raw::Except => Tok::Except,
            Raw::Read => Tok::Read,
            Raw::Write => Tok::Write,
            Raw::Create => Tok::Create,
            Raw::Delete => Tok::Delete,
            Raw::Param => Tok::Param,
            Raw::Ident => Tok::Ident(slice),
            Raw::Number => Tok::Number(slice),
            Raw::Addr => Tok::Addr(slice),
            Raw::Comma => Tok::Comma,
            Raw::Minus => Tok::Minus,
            Raw::Dot => Tok::Dot,
            Raw::Eq => Tok::Eq,
            Raw::LBrace => Tok::LBrace,
            Raw::RBrace => Tok::RBrace,
            Raw::Str(Terminated(terminated)) => {
                report_nuls(file, text, start, end, &mut out.diagnostics);
                if !terminated {
                    out.diagnostics.push(
                        Diagnostic::error(
                            codes::UNTERMINATED_STRING,
                            "unterminated string",
                            sp(start, end),
                            "this string has no closing `\"`",
                        )
                        .with_help("close the string with `\"` on the same line"),
                    );
                }
                let inner_end = if terminated { end - 1 } else { end };
                Tok::Str(StrTok {
                    raw: &text[start + 1..inner_end],
                    terminated,
                })
            }
            Raw::LineComment => {
                report_nuls(file, text, start, end, &mut out.diagnostics);
                let t = slice.strip_suffix('\r').unwrap_or(slice);
                out.comments.push(Comment {
                    text: t.to_string(),
                    span: sp(start, start + t.len()),
                });
                continue;
            }
            Raw::BlockComment(Terminated(terminated)) => {
                report_nuls(file, text, start, end, &mut out.diagnostics);
                if !terminated {
                    out.diagnostics.push(
                        Diagnostic::error(
                            codes::UNTERMINATED_COMMENT,
                            "unterminated block comment",
                            sp(start, start + 2),
                            "this comment is never closed",
                        )
                        .with_help("close the comment with `*/`"),
                    );
                }
                out.comments.push(Comment {
                    text: slice.to_string(),
                    span: sp(start, end),
                });
                continue;
            }
        };
        out.tokens.push((start, tok, end));
    }
    if let Some(run) = stray.take() {
        report_stray(file, text, run, &mut out.diagnostics);
    }
    out
}

/// Reports NUL bytes inside a string or comment token, one diagnostic per run.
fn report_nuls(file: FileId, text: &str, start: usize, end: usize, diags: &mut Vec<Diagnostic>) {
    let bytes = &text.as_bytes()[start..end];
    let mut i = 0;
    while let Some(p) = bytes[i..].iter().position(|&b| b == 0) {
        let s = i + p;
        let n = bytes[s..].iter().take_while(|&&b| b == 0).count();
        diags.push(nul_diag(file, start + s, start + s + n));
        i = s + n;
    }
}

fn nul_diag(file: FileId, start: usize, end: usize) -> Diagnostic {
    Diagnostic::error(
        codes::NUL_BYTE,
        "nul byte in source",
        Span::new(file, start, end),
        if end - start == 1 {
            "a NUL byte (`\\0`)".to_string()
        } else {
            format!("{} NUL bytes (`\\0`)", end - start)
        },
    )
    .with_help("policy files are text; remove the NUL bytes")
}

/// Reports a run of characters that start no token. NUL bytes inside the run
/// get their own diagnostics.
fn report_stray(
    file: FileId,
    text: &str,
    (start, end): (usize, usize),
    diags: &mut Vec<Diagnostic>,
) {
    // Logos reports errors on char boundaries for `&str` input; be safe anyway.
    let mut end = end.min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    let mut start = start;
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let run = &text[start..end];
    let mut seg_start = start;
    let mut in_nul = None;
    let flush = |s: usize, e: usize, nul: bool, diags: &mut Vec<Diagnostic>| {
        if s < e {
            if nul {
                diags.push(nul_diag(file, s, e));
            } else {
                diags.push(stray_diag(file, &text[s..e], s, e));
            }
        }
    };
    for (i, c) in run.char_indices() {
        let at = start + i;
        let is_nul = c == '\0';
        match in_nul {
            Some(prev) if prev == is_nul => {}
            Some(prev) => {
                flush(seg_start, at, prev, diags);
                seg_start = at;
                in_nul = Some(is_nul);
            }
            None => in_nul = Some(is_nul),
        }
    }
    if let Some(prev) = in_nul {
        flush(seg_start, end, prev, diags);
    }
}

fn stray_diag(file: FileId, run: &str, start: usize, end: usize) -> Diagnostic {
    let first = run.chars().next().unwrap_or(' ');
    // Invisible characters are shown by code point.
    let show = |c: char| {
        if c.is_whitespace() || c.is_control() || c == '\u{feff}' || c == '\u{200b}' {
            format!("U+{:04X}", u32::from(c))
        } else {
            c.to_string()
        }
    };
    let title = if run.chars().count() == 1 {
        format!("unexpected character `{}`", show(first))
    } else {
        let shown: String = run.chars().take(41).map(show).collect();
        format!("unexpected characters `{}`", shorten(&shown))
    };
    let d = Diagnostic::error(
        codes::UNEXPECTED_CHAR,
        title,
        Span::new(file, start, end),
        "no token starts with this",
    );
    match first {
        '/' => d.with_help("path patterns are written in double quotes: `\"/srv/**\"`"),
        ';' => d.with_help("rules end at the next keyword or `}`; remove the `;`"),
        '\'' => d.with_help("strings are written in double quotes"),
        '#' => d.with_help("comments start with `//` or are written `/* ... */`"),
        _ => d.with_help("remove it, or quote it inside a string"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<String> {
        lex(FileId(0), text)
            .tokens
            .iter()
            .map(|(s, t, e)| match t {
                Tok::Ident(_) => format!("id:{}", &text[*s..*e]),
                Tok::Number(_) => format!("num:{}", &text[*s..*e]),
                Tok::Addr(_) => format!("addr:{}", &text[*s..*e]),
                Tok::Str(st) => format!("str:{}", st.raw),
                other => other
                    .keyword()
                    .map_or_else(|| text[*s..*e].to_string(), str::to_string),
            })
            .collect()
    }

    fn diag_texts(text: &str) -> Vec<(&'static str, String)> {
        lex(FileId(0), text)
            .diagnostics
            .iter()
            .map(|d| {
                let s = d.primary_span().map(|s| s.range()).unwrap_or(0..0);
                (d.code, text[s].to_string())
            })
            .collect()
    }

    #[test]
    fn keywords_names_and_qualified_names() {
        assert_eq!(
            kinds("use std.runtime.loader read_logs reader"),
            [
                "use",
                "id:std",
                ".",
                "id:runtime",
                ".",
                "id:loader",
                "id:read_logs",
                "id:reader"
            ]
        );
        assert_eq!(kinds("fs read, write"), ["fs", "read", ",", "write"]);
    }

    #[test]
    fn addresses_and_numbers() {
        assert_eq!(
            kinds(
                "10.20.0.0/16 443 8000-8099 2001:db8::10 ::1 fe80::1 ::ffff:1.2.3.4 fe80 10.0.0.300/8 ::/0"
            ),
            [
                "addr:10.20.0.0/16",
                "num:443",
                "num:8000",
                "-",
                "num:8099",
                "addr:2001:db8::10",
                "addr:::1",
                "addr:fe80::1",
                "addr:::ffff:1.2.3.4",
                "id:fe80",
                "addr:10.0.0.300/8",
                "addr:::/0",
            ]
        );
        assert_eq!(kinds("port 22}"), ["port", "num:22", "}"]);
        assert_eq!(
            kinds("192.0.2.10, 2001:db8::10 port"),
            ["addr:192.0.2.10", ",", "addr:2001:db8::10", "port"]
        );
    }

    #[test]
    fn strings_keep_raw_text() {
        assert_eq!(kinds(r#""/a/\*" "x\"y""#), [r"str:/a/\*", r#"str:x\"y"#]);
        let l = lex(FileId(0), "\"abc\ndef");
        assert_eq!(
            diag_texts("\"abc\ndef"),
            [(codes::UNTERMINATED_STRING, "\"abc".to_string())]
        );
        assert_eq!(l.tokens.len(), 2);
    }

    #[test]
    fn comments_are_kept() {
        let text = "// one\r\nfs /* two\n */ read";
        let l = lex(FileId(0), text);
        let c: Vec<&str> = l.comments.iter().map(|c| &text[c.span.range()]).collect();
        assert_eq!(c, ["// one", "/* two\n */"]);
        assert_eq!(l.tokens.len(), 2);
        assert!(l.diagnostics.is_empty());
    }

    #[test]
    fn lexical_errors_have_precise_spans() {
        assert_eq!(
            diag_texts("fs /* never closed"),
            [(codes::UNTERMINATED_COMMENT, "/*".to_string())]
        );
        assert_eq!(
            diag_texts("fs # read ;; é"),
            [
                (codes::UNEXPECTED_CHAR, "#".to_string()),
                (codes::UNEXPECTED_CHAR, ";;".to_string()),
                (codes::UNEXPECTED_CHAR, "é".to_string()),
            ]
        );
        assert_eq!(
            diag_texts("fs\0\0read \"a\0\""),
            [
                (codes::NUL_BYTE, "\0\0".to_string()),
                (codes::NUL_BYTE, "\0".to_string())
            ]
        );
        assert_eq!(kinds("fs\0\0read"), ["fs", "read"]);
    }

    #[test]
    fn invisible_characters_are_named() {
        let l = lex(FileId(0), "fs\u{a0}read");
        assert_eq!(l.diagnostics[0].message, "unexpected character `U+00A0`");
        let l = lex(FileId(0), "fs \u{feff}");
        assert_eq!(l.diagnostics[0].message, "unexpected character `U+FEFF`");
    }

    #[test]
    fn bom_is_skipped() {
        let text = "\u{feff}use x";
        let l = lex(FileId(0), text);
        assert!(l.diagnostics.is_empty());
        assert_eq!(l.tokens[0].0, 3);
        assert_eq!(kinds(text), ["use", "id:x"]);
    }

    #[test]
    fn odd_words() {
        assert_eq!(kinds("443abc 1e5"), ["num:443abc", "num:1e5"]);
        assert_eq!(kinds("a-b"), ["id:a", "-", "id:b"]);
    }
}
