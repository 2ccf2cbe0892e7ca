//! Path globs: the parsed form of a quoted pattern, and the reference
//! matcher that defines what a glob means.
//!
//! Input: the text between a pattern's quotes. Output: a [`Glob`] (braces
//! expanded into branches, each an absolute list of segments) or precise
//! errors. Paths and globs are byte strings: `?` and classes match one byte
//! other than `/` (a non-ASCII character is several bytes in UTF-8).
//!
//! Syntax (the text between the quotes, escapes not resolved):
//! `*` any run of bytes within one segment (the empty run included), `?` one
//! byte, `[abc]`, `[a-z]`, `[!a-z]` one byte of (or not of) an ASCII class,
//! `{x,y}` alternatives (expanded before segments are split, so they may hold
//! `/` and the other forms), `**` as a whole segment any number of whole
//! segments, `\` makes the next character literal. `]` always closes a class
//! (write `\]` for a literal one); `-` is literal at either end of a class.
//! Every brace branch must be absolute and normalized: it starts with `/`,
//! has no `.` or `..` segment, no empty segment (`//`) and no trailing `/`
//! (the root pattern `/` excepted).
//!
//! [`Glob::matches`] is the reference matcher: the single definition of what
//! a glob means, which the automata, the prover and the code generator are
//! tested against. It runs in time polynomial in the sizes (memoized dynamic
//! programming, never exponential backtracking).

use crate::codes;
use crate::diag::Diagnostic;
use crate::lexer::shorten;
use crate::span::Span;

/// The most branches brace expansion may produce for one pattern.
pub const MAX_BRANCHES: usize = 1024;

/// The longest pattern text accepted, in bytes (paths are at most 4096
/// bytes on Linux; brace lists make patterns longer, but not this long).
pub const MAX_PATTERN_BYTES: usize = 1 << 16;

/// The deepest nesting of `{` allowed in one pattern.
pub const MAX_BRACE_DEPTH: usize = 32;

/// The most bytes all branches of one pattern may hold together after
/// brace expansion (keeps a huge pattern from exhausting memory).
pub const MAX_EXPANDED_BYTES: usize = 1 << 20;

/// A validated glob: a path matches when it matches any branch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Glob {
    /// Brace-expanded alternatives, each absolute and normalized.
    pub branches: Vec<Branch>,
}

/// One alternative without braces.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Branch {
    /// The segments after the leading `/` (empty for the root `/`).
    pub segments: Vec<Segment>,
}

/// One `/`-separated segment of a branch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// `**` as a whole segment: zero or more whole segments.
    AnyDepth,
    /// A segment built from atoms; it matches one non-empty path segment.
    Atoms(Vec<Atom>),
}

/// A piece of a segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Atom {
    /// These bytes exactly (never containing `/`).
    Literal(Vec<u8>),
    /// `*`: any run of bytes other than `/`, the empty run included.
    Star,
    /// `?`: exactly one byte other than `/`.
    AnyByte,
    /// `[...]` / `[!...]`: one byte (never `/`) in or not in the ranges.
    Class {
        /// `[!...]`.
        negated: bool,
        /// Inclusive byte ranges.
        ranges: Vec<(u8, u8)>,
    },
}

// ------------------------------------------------------------------ parsing

/// One character of the pattern after escapes: a byte and where it came from.
#[derive(Clone, Copy, Debug)]
struct Piece {
    byte: u8,
    /// Written with a `\` before it: never special.
    escaped: bool,
    /// Byte range in the pattern text (a `\x` escape covers both).
    start: usize,
    end: usize,
}

impl Piece {
    fn is(&self, b: u8) -> bool {
        !self.escaped && self.byte == b
    }
}

/// An element of a brace-free sequence.
#[derive(Clone, Debug)]
enum Elem {
    Piece(Piece),
    /// A `[...]` class, already validated.
    Class {
        negated: bool,
        ranges: Vec<(u8, u8)>,
        start: usize,
        end: usize,
    },
}

impl Elem {
    fn start(&self) -> usize {
        match self {
            Elem::Piece(p) => p.start,
            Elem::Class { start, .. } => *start,
        }
    }
    fn end(&self) -> usize {
        match self {
            Elem::Piece(p) => p.end,
            Elem::Class { end, .. } => *end,
        }
    }
}

/// A sequence with brace groups, as parsed.
#[derive(Clone, Debug, Default)]
struct Seq {
    items: Vec<SeqItem>,
}

#[derive(Clone, Debug)]
enum SeqItem {
    Elem(Elem),
    /// `{a,b,...}`: alternatives.
    Alt(Vec<Seq>),
}

/// Maps offsets inside the pattern text to spans in the file.
struct Spanner {
    span: Span,
    /// When false, every error is reported on the whole `span`.
    precise: bool,
    /// Offset of the text's first byte in the file.
    base: usize,
}

impl Spanner {
    fn new(text: &str, span: Span) -> Spanner {
        let len = (span.end as usize).saturating_sub(span.start as usize);
        if len == text.len() {
            Spanner {
                span,
                precise: true,
                base: span.start as usize,
            }
        } else if len == text.len() + 2 {
            // The caller passed the span with the quotes.
            Spanner {
                span,
                precise: true,
                base: span.start as usize + 1,
            }
        } else {
            Spanner {
                span,
                precise: false,
                base: 0,
            }
        }
    }

    fn at(&self, start: usize, end: usize) -> Span {
        if self.precise {
            Span::new(self.span.file, self.base + start, self.base + end)
        } else {
            self.span
        }
    }
}

struct GlobParser<'t> {
    text: &'t str,
    pieces: Vec<Piece>,
    pos: usize,
    sp: Spanner,
    errors: Vec<Diagnostic>,
}

/// Parses and validates the text of a pattern (between its quotes, escapes
/// not resolved).
///
/// `span` locates `text` in its file: when it is exactly as long as `text`
/// (or two bytes longer, i.e. includes the quotes) errors point inside the
/// string; otherwise every error points at `span`. Every problem is
/// reported, not just the first.
pub fn parse_glob(text: &str, span: Span) -> Result<Glob, Vec<Diagnostic>> {
    let mut unlimited = usize::MAX;
    parse_glob_budgeted(text, span, &mut unlimited)
}

/// [`parse_glob`] for a parser that bounds brace expansion across a whole
/// file: this pattern's expansion may add at most `*budget` elements beyond
/// its own length (checked before expanding), and a successful parse
/// deducts what it added.
pub fn parse_glob_budgeted(
    text: &str,
    span: Span,
    budget: &mut usize,
) -> Result<Glob, Vec<Diagnostic>> {
    if text.len() > MAX_PATTERN_BYTES {
        return Err(vec![
            Diagnostic::error(
                codes::GLOB_TOO_LARGE,
                "pattern is too long",
                span,
                format!("{} bytes, more than {MAX_PATTERN_BYTES}", text.len()),
            )
            .with_help("split the pattern into several shorter ones"),
        ]);
    }
    let mut p = GlobParser {
        text,
        pieces: Vec::with_capacity(text.len()),
        pos: 0,
        sp: Spanner::new(text, span),
        errors: Vec::new(),
    };
    p.read_pieces();
    let seq = p.parse_seq();
    if !p.errors.is_empty() {
        return Err(p.errors);
    }
    // Count before expanding: the count can be astronomically large.
    let (count, total) = measure(&seq);
    if count > MAX_BRANCHES {
        return Err(vec![
            Diagnostic::error(
                codes::GLOB_TOO_MANY_BRANCHES,
                "pattern has too many alternatives",
                p.sp.at(0, text.len()),
                if count == usize::MAX {
                    format!("braces expand to more than {MAX_BRANCHES} alternatives")
                } else {
                    format!("braces expand to {count} alternatives, more than {MAX_BRANCHES}")
                },
            )
            .with_help("split the rule into several patterns, or use `*` or `**`"),
        ]);
    }
    if total > MAX_EXPANDED_BYTES {
        return Err(vec![
            Diagnostic::error(
                codes::GLOB_TOO_LARGE,
                "pattern is too large",
                p.sp.at(0, text.len()),
                format!("expands to more than {MAX_EXPANDED_BYTES} bytes"),
            )
            .with_help("split the pattern into several shorter ones"),
        ]);
    }
    let extra = total.saturating_sub(p.pieces.len());
    if extra > *budget {
        return Err(vec![
            Diagnostic::error(
                codes::GLOB_TOO_LARGE,
                "patterns in this file expand to too much",
                p.sp.at(0, text.len()),
                "brace expansion beyond the limit for one file",
            )
            .with_help("use `*` or `**` instead of long brace lists"),
        ]);
    }
    let flat: Vec<Vec<Elem>> = if seq.items.iter().all(|i| matches!(i, SeqItem::Elem(_))) {
        // No braces (the common case): move the elements, no copies.
        vec![
            seq.items
                .into_iter()
                .filter_map(|i| match i {
                    SeqItem::Elem(e) => Some(e),
                    SeqItem::Alt(_) => None,
                })
                .collect(),
        ]
    } else {
        let mut flat = vec![Vec::new()];
        expand(&seq, &mut flat);
        flat
    };
    let whole = flat.len() == 1;
    let mut branches = Vec::with_capacity(flat.len());
    for elems in &flat {
        if let Some(b) = p.branch(elems, whole) {
            branches.push(b);
        }
    }
    if p.errors.is_empty() {
        *budget -= extra;
        Ok(Glob { branches })
    } else {
        // Several branches share source text: report each place once.
        let mut seen = std::collections::HashSet::new();
        p.errors.retain(|d| seen.insert((d.code, d.primary_span())));
        Err(p.errors)
    }
}

/// The help for a pattern that does not start with `/`: the absolute
/// path when one is plainly meant, a parameter when the path is relative to
/// something that differs per machine (a checkout, a home directory).
fn not_absolute_help(whole: bool, shown: &str) -> String {
    let rest = |s: &str| {
        let r = s.trim_start_matches(['.', '~']).trim_start_matches('/');
        if r.is_empty() {
            "**".to_string()
        } else {
            shorten(r)
        }
    };
    if shown.starts_with('~') {
        format!(
            "`~` is not expanded; declare `param home` and write `\"${{home}}/{}\"`, given with `--param home=/home/NAME`",
            rest(shown)
        )
    } else if shown.starts_with('.') {
        format!(
            "patterns are absolute; for a path relative to a checkout declare `param proj` and write `\"${{proj}}/{}\"`, given with `--param proj=/path/to/checkout`",
            rest(shown)
        )
    } else if whole && !shown.is_empty() {
        format!(
            "write the absolute path `/{}`, or for a path that differs per checkout declare `param NAME` and write `\"${{NAME}}/...\"`",
            shorten(shown)
        )
    } else {
        "patterns are absolute paths such as `/srv/**` or `${NAME}/**` with `param NAME`"
            .to_string()
    }
}

impl GlobParser<'_> {
    fn err(
        &mut self,
        code: &'static str,
        title: String,
        start: usize,
        end: usize,
        label: &str,
        help: &str,
    ) {
        // Whole characters only: a piece may be one byte of a longer one.
        let (mut start, mut end) = (start.min(self.text.len()), end.min(self.text.len()));
        while !self.text.is_char_boundary(start) {
            start -= 1;
        }
        while !self.text.is_char_boundary(end) {
            end += 1;
        }
        let d = Diagnostic::error(code, title, self.sp.at(start, end), label);
        self.errors.push(if help.is_empty() {
            d
        } else {
            d.with_help(help)
        });
    }

    /// Resolves `\` escapes into pieces.
    fn read_pieces(&mut self) {
        let bytes = self.text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\\' {
                if i + 1 >= bytes.len() {
                    self.err(
                        codes::GLOB_DANGLING_ESCAPE,
                        "`\\` at the end of a pattern".to_string(),
                        i,
                        i + 1,
                        "this escapes nothing",
                        "remove it, or write `\\\\` for a literal backslash",
                    );
                    break;
                }
                // Escape one whole character (possibly several bytes).
                let mut j = i + 2;
                while j < bytes.len() && !self.text.is_char_boundary(j) {
                    j += 1;
                }
                for &b in &bytes[i + 1..j] {
                    self.pieces.push(Piece {
                        byte: b,
                        escaped: true,
                        start: i,
                        end: j,
                    });
                }
                i = j;
            } else {
                let b = bytes[i];
                if b == 0 {
                    self.err(
                        codes::GLOB_NUL,
                        "nul byte in pattern".to_string(),
                        i,
                        i + 1,
                        "no path contains a NUL byte",
                        "remove it",
                    );
                }
                self.pieces.push(Piece {
                    byte: b,
                    escaped: false,
                    start: i,
                    end: i + 1,
                });
                i += 1;
            }
        }
    }

    /// Parses pieces from `self.pos` into a sequence; inside braces it stops
    /// (without consuming) at an unescaped `,` or `}`.
    ///
    /// Nesting is handled with an explicit stack, so deeply nested braces
    /// cannot overflow the call stack.
    fn parse_seq(&mut self) -> Seq {
        // Stack of open groups: (alternatives so far, current seq, `{` piece).
        let mut stack: Vec<(Vec<Seq>, Seq, Piece)> = Vec::new();
        let mut cur = Seq::default();
        while self.pos < self.pieces.len() {
            let p = self.pieces[self.pos];
            if p.is(b'{') {
                self.pos += 1;
                if stack.len() >= MAX_BRACE_DEPTH {
                    self.err(
                        codes::GLOB_TOO_LARGE,
                        "braces nested too deeply in pattern".to_string(),
                        p.start,
                        p.end,
                        &format!("more than {MAX_BRACE_DEPTH} levels of `{{`"),
                        "flatten the alternatives",
                    );
                    // Give up on this pattern; the open groups are dropped
                    // without being reported again.
                    self.pos = self.pieces.len();
                    return Seq::default();
                }
                stack.push((Vec::new(), std::mem::take(&mut cur), p));
            } else if p.is(b',') && !stack.is_empty() {
                self.pos += 1;
                if let Some(top) = stack.last_mut() {
                    top.0.push(std::mem::take(&mut cur));
                }
            } else if p.is(b'}') {
                self.pos += 1;
                match stack.pop() {
                    Some((mut alts, outer, _)) => {
                        alts.push(std::mem::take(&mut cur));
                        cur = outer;
                        cur.items.push(SeqItem::Alt(alts));
                    }
                    None => self.err(
                        codes::GLOB_UNBALANCED_BRACE,
                        "unbalanced `}` in pattern".to_string(),
                        p.start,
                        p.end,
                        "no `{` opens this",
                        "remove it, or write `\\}` for a literal brace",
                    ),
                }
            } else if p.is(b'[') {
                if let Some(e) = self.parse_class() {
                    cur.items.push(SeqItem::Elem(e));
                }
            } else if p.is(b']') {
                self.pos += 1;
                self.err(
                    codes::GLOB_UNCLOSED_CLASS,
                    "unbalanced `]` in pattern".to_string(),
                    p.start,
                    p.end,
                    "no `[` opens this",
                    "remove it, or write `\\]` for a literal bracket",
                );
            } else {
                self.pos += 1;
                cur.items.push(SeqItem::Elem(Elem::Piece(p)));
            }
        }
        // Report unclosed braces innermost last, each at its `{`.
        for (_, _, open) in &stack {
            let open = *open;
            self.err(
                codes::GLOB_UNBALANCED_BRACE,
                "unclosed `{` in pattern".to_string(),
                open.start,
                open.end,
                "this `{` is never closed",
                "close the alternatives with `}`, or write `\\{` for a literal brace",
            );
        }
        cur
    }

    /// At an unescaped `[`: parses the class up to its `]`.
    fn parse_class(&mut self) -> Option<Elem> {
        let open = self.pieces[self.pos];
        let mut i = self.pos + 1;
        let negated = self.pieces.get(i).is_some_and(|p| p.is(b'!'));
        if negated {
            i += 1;
        }
        let body_start = i;
        while i < self.pieces.len() && !self.pieces[i].is(b']') {
            i += 1;
        }
        if i >= self.pieces.len() {
            self.err(
                codes::GLOB_UNCLOSED_CLASS,
                "unclosed `[` in pattern".to_string(),
                open.start,
                open.end,
                "this class is never closed",
                "close the class with `]`, or write `\\[` for a literal bracket",
            );
            self.pos = self.pieces.len();
            return None;
        }
        let close = self.pieces[i];
        self.pos = i + 1;
        let body: Vec<Piece> = self.pieces[body_start..i].to_vec();
        let mut ok = true;
        let mut ranges = Vec::new();
        let mut k = 0;
        while k < body.len() {
            let lo = body[k];
            if lo.byte >= 0x80 {
                // Report the whole character once.
                let off = if lo.escaped { lo.start + 1 } else { lo.start };
                let ch = self
                    .text
                    .get(off..)
                    .and_then(|t| t.chars().next())
                    .unwrap_or('?');
                let ce = off + ch.len_utf8();
                let mut n = k + 1;
                while n < body.len()
                    && body[n].start >= lo.start
                    && body[n].start < ce
                    && body[n].byte >= 0x80
                {
                    n += 1;
                }
                self.err(
                    codes::GLOB_NON_ASCII_CLASS,
                    format!("non-ASCII character `{ch}` in a class"),
                    lo.start,
                    ce,
                    "a class matches one byte; this character is several",
                    "use `?` or `*` for any byte, or spell the alternatives out with `{...}`",
                );
                ok = false;
                k = n;
                continue;
            }
            if lo.byte == b'/' {
                self.err(
                    codes::GLOB_UNCLOSED_CLASS,
                    "`/` inside a class".to_string(),
                    lo.start,
                    lo.end,
                    "a class matches one byte within a segment, never `/`",
                    "close the class before the `/`",
                );
                ok = false;
                k += 1;
                continue;
            }
            let is_range = k + 2 < body.len() && body[k + 1].is(b'-');
            if is_range {
                let hi = body[k + 2];
                if hi.byte >= 0x80 || hi.byte == b'/' {
                    // Reported when the loop reaches it.
                    ranges.push((lo.byte, lo.byte));
                    k += 2;
                    continue;
                }
                if lo.byte > hi.byte {
                    let written = self.text.get(lo.start..hi.end).unwrap_or("").to_string();
                    self.err(
                        codes::GLOB_REVERSED_RANGE,
                        format!("reversed range `{written}` in a class"),
                        lo.start,
                        hi.end,
                        "the first end is above the second",
                        &format!(
                            "write the range low to high: `{}-{}`",
                            char::from(hi.byte).escape_default(),
                            char::from(lo.byte).escape_default()
                        ),
                    );
                    ok = false;
                } else {
                    ranges.push((lo.byte, hi.byte));
                }
                k += 3;
            } else {
                ranges.push((lo.byte, lo.byte));
                k += 1;
            }
        }
        if body.is_empty() {
            self.err(
                codes::GLOB_EMPTY_CLASS,
                "empty class in pattern".to_string(),
                open.start,
                close.end,
                if negated {
                    "`[!]` names no byte to exclude"
                } else {
                    "this class matches nothing"
                },
                "put the allowed bytes between the brackets, or write `\\[` for a literal bracket",
            );
            ok = false;
        }
        if !ok {
            return None;
        }
        ranges.sort_unstable();
        ranges.dedup();
        Some(Elem::Class {
            negated,
            ranges,
            start: open.start,
            end: close.end,
        })
    }

    /// Validates one expanded branch and splits it into segments.
    fn branch(&mut self, elems: &[Elem], whole: bool) -> Option<Branch> {
        let (first_start, first_end) = match elems.first() {
            Some(e) => (e.start(), e.end()),
            None => (0, self.text.len()),
        };
        let starts_with_slash = matches!(elems.first(), Some(Elem::Piece(p)) if p.byte == b'/');
        if !starts_with_slash {
            let (s, e) = if whole {
                (0, self.text.len())
            } else {
                (first_start, first_end)
            };
            let shown = if whole {
                self.text.to_string()
            } else {
                self.text.get(s..e).unwrap_or("").to_string()
            };
            let title = if whole {
                format!("pattern `{}` is not absolute", shorten(&shown))
            } else {
                "a pattern alternative is not absolute".to_string()
            };
            self.err(
                codes::GLOB_NOT_ABSOLUTE,
                title,
                s,
                e,
                if whole {
                    "a pattern must start with `/`"
                } else {
                    "every alternative must start with `/`"
                },
                &not_absolute_help(whole, &shown),
            );
            return None;
        }
        // Split on `/` (escaped or not: a path segment never holds `/`).
        let mut segs: Vec<&[Elem]> = Vec::new();
        let mut slashes: Vec<&Elem> = Vec::new();
        let mut seg_start = 1;
        for (i, e) in elems.iter().enumerate().skip(1) {
            if matches!(e, Elem::Piece(p) if p.byte == b'/') {
                segs.push(&elems[seg_start..i]);
                slashes.push(e);
                seg_start = i + 1;
            }
        }
        segs.push(&elems[seg_start..]);
        if elems.len() == 1 {
            // The root pattern `/`.
            return Some(Branch {
                segments: Vec::new(),
            });
        }
        let mut ok = true;
        let mut out = Vec::with_capacity(segs.len());
        let last = segs.len() - 1;
        for (n, seg) in segs.iter().enumerate() {
            if seg.is_empty() {
                ok = false;
                if n == last && n > 0 && segs[n - 1].is_empty() {
                    // `//` at the end: already reported as an empty segment.
                } else if n == last {
                    let s = slashes.last().map_or(first_start, |e| e.start());
                    let e = slashes.last().map_or(first_end, |e| e.end());
                    self.err(
                        codes::GLOB_TRAILING_SLASH,
                        format!("pattern `{}` ends with `/`", shorten(self.text)),
                        s,
                        e,
                        "a trailing `/` matches no path",
                        &match normalized(self.text) {
                            Some(n) => format!(
                                "write `{}`, or `{}/**` to cover the directory and everything in it",
                                shorten(&n),
                                shorten(n.trim_end_matches('/'))
                            ),
                            None => "remove the trailing `/`; to cover a directory and everything in it, end with `/**`".to_string(),
                        },
                    );
                } else {
                    // The `/` before this empty segment and the one after it.
                    let before = if n == 0 {
                        elems.first()
                    } else {
                        slashes.get(n - 1).copied()
                    };
                    let after = slashes.get(n).copied();
                    let s = before.map_or(first_start, Elem::start);
                    let e = after.map_or(first_end, Elem::end);
                    self.err(
                        codes::GLOB_EMPTY_SEGMENT,
                        format!("pattern `{}` has an empty segment", shorten(self.text)),
                        s,
                        e,
                        "paths have no empty segments",
                        &match normalized(self.text) {
                            Some(n) => format!("write a single `/`: `{}`", shorten(&n)),
                            None => "write a single `/`".to_string(),
                        },
                    );
                }
                continue;
            }
            let all_dots = seg
                .iter()
                .all(|e| matches!(e, Elem::Piece(p) if p.byte == b'.'));
            if all_dots && seg.len() <= 2 {
                ok = false;
                let (s, e) = (seg[0].start(), seg[seg.len() - 1].end());
                let which = if seg.len() == 1 { "." } else { ".." };
                self.err(
                    codes::GLOB_NOT_NORMALIZED,
                    format!("pattern `{}` is not normalized", shorten(self.text)),
                    s,
                    e,
                    &format!("a `{which}` segment"),
                    &match normalized(self.text) {
                        Some(n) => format!("write `{}`: patterns match normalized absolute paths", shorten(&n)),
                        None => "write the path without `.` and `..`: patterns match normalized absolute paths".to_string(),
                    },
                );
                continue;
            }
            out.push(segment(seg));
        }
        ok.then_some(Branch { segments: out })
    }
}

/// The pattern with `.`, `..` and empty segments resolved textually, for
/// suggestions; `None` when braces make that guesswork, or when the result
/// would be the same text.
fn normalized(text: &str) -> Option<String> {
    if text.contains(['{', '}', '\\']) || !text.starts_with('/') {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in text.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let n = format!("/{}", out.join("/"));
    (n != text).then_some(n)
}

/// Builds one segment's atoms (the segment is non-empty and has no `/`).
fn segment(seg: &[Elem]) -> Segment {
    if let [Elem::Piece(a), Elem::Piece(b)] = seg
        && a.is(b'*')
        && b.is(b'*')
    {
        return Segment::AnyDepth;
    }
    let mut atoms: Vec<Atom> = Vec::new();
    for e in seg {
        match e {
            Elem::Piece(p) if p.is(b'*') => {
                if atoms.last() != Some(&Atom::Star) {
                    atoms.push(Atom::Star);
                }
            }
            Elem::Piece(p) if p.is(b'?') => atoms.push(Atom::AnyByte),
            Elem::Piece(p) => match atoms.last_mut() {
                Some(Atom::Literal(bytes)) => bytes.push(p.byte),
                _ => atoms.push(Atom::Literal(vec![p.byte])),
            },
            Elem::Class {
                negated, ranges, ..
            } => atoms.push(Atom::Class {
                negated: *negated,
                ranges: ranges.clone(),
            }),
        }
    }
    Segment::Atoms(atoms)
}

/// The number of expansions of `seq` and their total length in elements,
/// both saturating at `usize::MAX`. Recursion depth is bounded by
/// [`MAX_BRACE_DEPTH`].
fn measure(seq: &Seq) -> (usize, usize) {
    let (mut count, mut total) = (1usize, 0usize);
    for item in &seq.items {
        let (c, l) = match item {
            SeqItem::Elem(_) => (1, 1),
            SeqItem::Alt(alts) => alts
                .iter()
                .map(measure)
                .fold((0usize, 0usize), |(c, l), (c2, l2)| {
                    (c.saturating_add(c2), l.saturating_add(l2))
                }),
        };
        // Concatenation: every prefix meets every expansion of the item.
        total = total
            .saturating_mul(c)
            .saturating_add(l.saturating_mul(count));
        count = count.saturating_mul(c);
    }
    (count, total)
}

/// Appends the expansions of `seq` to every prefix in `out`. Recursion
/// depth is bounded by [`MAX_BRACE_DEPTH`].
fn expand(seq: &Seq, out: &mut Vec<Vec<Elem>>) {
    for item in &seq.items {
        match item {
            SeqItem::Elem(e) => {
                for prefix in out.iter_mut() {
                    prefix.push(e.clone());
                }
            }
            SeqItem::Alt(alts) => {
                let prefixes = std::mem::take(out);
                for alt in alts {
                    let mut part = prefixes.clone();
                    expand(alt, &mut part);
                    out.extend(part);
                }
            }
        }
    }
}

// ----------------------------------------------------------------- matching

impl Glob {
    /// The reference matcher: true when `path` matches some branch.
    ///
    /// Precondition: `path` is absolute and normalized (starts with `/`, no
    /// empty, `.` or `..` segments, no trailing `/` except the root `/`, no
    /// NUL byte). A path that is not never matches.
    pub fn matches(&self, path: &[u8]) -> bool {
        let Some(segs) = split_path(path) else {
            return false;
        };
        self.branches.iter().any(|b| b.matches_segments(&segs))
    }
}

impl Branch {
    /// True when the normalized path `path` matches this branch.
    pub fn matches(&self, path: &[u8]) -> bool {
        split_path(path).is_some_and(|segs| self.matches_segments(&segs))
    }

    fn matches_segments(&self, path: &[&[u8]]) -> bool {
        let g = &self.segments;
        let n = path.len();
        if !g.iter().any(|s| matches!(s, Segment::AnyDepth)) {
            return g.len() == n && g.iter().zip(path).all(|(s, p)| s.matches(p));
        }
        // ok[i]: pattern segments j.. match path segments i.. (row j+1 in
        // `next`, row j in `cur`), computed from the last segment back.
        let mut next = vec![false; n + 1];
        next[n] = true;
        let mut cur = vec![false; n + 1];
        for seg in g.iter().rev() {
            match seg {
                Segment::AnyDepth => {
                    cur[n] = next[n];
                    for i in (0..n).rev() {
                        cur[i] = next[i] || cur[i + 1];
                    }
                }
                Segment::Atoms(_) => {
                    cur[n] = false;
                    for i in (0..n).rev() {
                        cur[i] = next[i + 1] && seg.matches(path[i]);
                    }
                }
            }
            std::mem::swap(&mut cur, &mut next);
        }
        next[0]
    }
}

impl Segment {
    /// True when this segment matches one path segment (`name` holds no
    /// `/`). `**` matches any single segment here.
    pub fn matches(&self, name: &[u8]) -> bool {
        match self {
            Segment::AnyDepth => true,
            Segment::Atoms(atoms) => atoms_match(atoms, name),
        }
    }
}

impl Atom {
    fn matches_byte(&self, b: u8) -> bool {
        match self {
            Atom::AnyByte => b != b'/',
            Atom::Class { negated, ranges } => {
                b != b'/' && (ranges.iter().any(|&(lo, hi)| lo <= b && b <= hi) != *negated)
            }
            Atom::Star | Atom::Literal(_) => false,
        }
    }
}

/// Matches atoms against one segment by dynamic programming over
/// (atom position, byte position): O(atoms × bytes), never exponential.
fn atoms_match(atoms: &[Atom], name: &[u8]) -> bool {
    if name.is_empty() || name.contains(&b'/') {
        return false;
    }
    if let [Atom::Literal(l)] = atoms {
        return l.as_slice() == name;
    }
    // Flatten literals into single-byte units.
    enum Unit<'a> {
        Byte(u8),
        Star,
        One(&'a Atom),
    }
    let mut units = Vec::new();
    for a in atoms {
        match a {
            Atom::Literal(bytes) => units.extend(bytes.iter().map(|&b| Unit::Byte(b))),
            Atom::Star => units.push(Unit::Star),
            other => units.push(Unit::One(other)),
        }
    }
    let n = name.len();
    // next[i]: units k+1.. match name[i..]; cur[i]: units k.. match name[i..].
    let mut next = vec![false; n + 1];
    next[n] = true;
    let mut cur = vec![false; n + 1];
    for u in units.iter().rev() {
        match u {
            Unit::Star => {
                cur[n] = next[n];
                for i in (0..n).rev() {
                    cur[i] = next[i] || cur[i + 1];
                }
            }
            Unit::Byte(b) => {
                cur[n] = false;
                for i in (0..n).rev() {
                    cur[i] = next[i + 1] && name[i] == *b;
                }
            }
            Unit::One(a) => {
                cur[n] = false;
                for i in (0..n).rev() {
                    cur[i] = next[i + 1] && a.matches_byte(name[i]);
                }
            }
        }
        std::mem::swap(&mut cur, &mut next);
    }
    next[0]
}

/// Splits a normalized absolute path into its segments; `None` when the path
/// is not absolute and normalized.
fn split_path(path: &[u8]) -> Option<Vec<&[u8]>> {
    let rest = path.strip_prefix(b"/")?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    if path.contains(&0) {
        return None;
    }
    let segs: Vec<&[u8]> = rest.split(|&b| b == b'/').collect();
    let ok = segs
        .iter()
        .all(|s| !s.is_empty() && *s != b"." && *s != b"..");
    ok.then_some(segs)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]
mod tests {
    use super::*;
    use crate::span::FileId;

    fn g(text: &str) -> Glob {
        match parse_glob(text, Span::new(FileId(0), 0, text.len())) {
            Ok(g) => g,
            Err(e) => panic!("{text}: {e:?}"),
        }
    }

    /// (code, underlined text) of each error.
    fn errs(text: &str) -> Vec<(&'static str, String)> {
        match parse_glob(text, Span::new(FileId(0), 10, 10 + text.len())) {
            Ok(g) => panic!("{text} parsed: {g:?}"),
            Err(e) => e
                .iter()
                .map(|d| {
                    let s = d.primary_span().unwrap();
                    (
                        d.code,
                        text[s.start as usize - 10..s.end as usize - 10].to_string(),
                    )
                })
                .collect(),
        }
    }

    fn m(pattern: &str, path: &str) -> bool {
        g(pattern).matches(path.as_bytes())
    }

    #[test]
    fn star_stays_within_one_segment() {
        assert!(m("/a/*", "/a/x"));
        assert!(m("/a/*", "/a/.env"));
        assert!(!m("/a/*", "/a"));
        assert!(!m("/a/*", "/a/x/y"));
        assert!(m("/a/x*", "/a/x"));
        assert!(m("/a/x*", "/a/xyz"));
        assert!(m("/a/*x*", "/a/x"));
        assert!(m("/a/*.log", "/a/deploy-1.log"));
        assert!(!m("/a/*.log", "/a/deploy-1.log.1"));
        assert!(m("/*", "/etc"));
        assert!(!m("/*", "/"));
        assert!(m("/a/**/b*c*d", "/a/bcd"));
        assert!(!m("/a/**/b*c*d", "/a/bdc"));
    }

    #[test]
    fn question_mark_is_one_byte() {
        assert!(m("/a/?", "/a/x"));
        assert!(!m("/a/?", "/a/xy"));
        assert!(!m("/a/?", "/a"));
        assert!(!m("/a?b", "/a/b"));
        // A non-ASCII character is several bytes.
        assert!(m("/a/??", "/a/é"));
        assert!(!m("/a/?", "/a/é"));
    }

    #[test]
    fn double_star_is_any_number_of_whole_segments() {
        assert!(m("/a/**", "/a"));
        assert!(m("/a/**", "/a/b"));
        assert!(m("/a/**", "/a/b/c/d"));
        assert!(!m("/a/**", "/ab"));
        assert!(!m("/a/**", "/"));
        assert!(m("/**", "/"));
        assert!(m("/**", "/x/y"));
        assert!(m("/a/**/b", "/a/b"));
        assert!(m("/a/**/b", "/a/x/y/b"));
        assert!(!m("/a/**/b", "/a/x/y/bc"));
        assert!(m("/srv/web/**/.env", "/srv/web/.env"));
        assert!(m("/srv/web/**/.env", "/srv/web/config/.env"));
        assert!(!m("/srv/web/**/.env", "/srv/web/config/x.env"));
        assert!(m("/a/**/**/b", "/a/b"));
        // `**` inside a segment is two stars: within one segment only.
        assert!(m("/a/x**", "/a/xyz"));
        assert!(!m("/a/x**", "/a/x/y"));
        assert!(!m("/a**", "/a/b"));
    }

    #[test]
    fn classes() {
        assert!(m("/[abc]", "/b"));
        assert!(!m("/[abc]", "/d"));
        assert!(m("/[a-z]x", "/qx"));
        assert!(!m("/[a-z]x", "/Qx"));
        assert!(m("/[!a-z]", "/Q"));
        assert!(!m("/[!a-z]", "/q"));
        assert!(m("/[-a]", "/-"));
        assert!(m("/[a-]", "/-"));
        assert!(m("/[\\]]", "/]"));
        assert!(m("/[{,}]", "/,"));
        // Negated classes still never match `/` (nor span segments).
        assert!(!m("/a[!x]b", "/a/b"));
        assert!(m("/[!x]", "/\u{7f}"));
    }

    #[test]
    fn braces() {
        let gl = g("/usr/bin/{git,grep,cat}");
        assert_eq!(gl.branches.len(), 3);
        assert!(m("/usr/bin/{git,grep,cat}", "/usr/bin/grep"));
        assert!(!m("/usr/bin/{git,grep,cat}", "/usr/bin/gi"));
        assert!(m("/a/{b,c/d}/e", "/a/c/d/e"));
        assert!(m("/a/{b,c/**}", "/a/c"));
        assert!(m("/a{,b}", "/a"));
        assert!(m("/a{,b}", "/ab"));
        assert!(m("/{a,b}{c,d}", "/bd"));
        assert_eq!(g("/{a,b}{c,d}{e,f}").branches.len(), 8);
        assert!(m("/{a,{b,c}}x", "/cx"));
        assert!(m("/{a/*,b}", "/a/q"));
        // Commas outside braces are literal.
        assert!(m("/a,b", "/a,b"));
    }

    #[test]
    fn escapes_make_metacharacters_literal() {
        assert!(m(r"/a\*", "/a*"));
        assert!(!m(r"/a\*", "/ab"));
        assert!(m(r"/a\?", "/a?"));
        assert!(m(r"/\{a,b\}", "/{a,b}"));
        assert!(m(r"/\[x\]", "/[x]"));
        assert!(m(r"/\\", "/\\"));
        assert!(m(r"/\é", "/é"));
        // `\*\*` is a literal segment, not `**`.
        assert!(m(r"/a/\*\*", "/a/**"));
        assert!(!m(r"/a/\*\*", "/a/b"));
    }

    #[test]
    fn root_and_literal_paths() {
        assert!(m("/", "/"));
        assert!(!m("/", "/a"));
        assert!(m("/usr/bin/git", "/usr/bin/git"));
        assert!(!m("/usr/bin/git", "/usr/bin/gitk"));
        assert!(!m("/usr/bin/git", "/usr/bin"));
    }

    #[test]
    fn non_normalized_paths_never_match() {
        for p in [
            "", "a", "a/b", "//", "/a//b", "/a/", "/a/./b", "/a/..", "/.", "/a/b\0",
        ] {
            assert!(!m("/**", p), "{p:?}");
            assert!(!m("/a/**", p), "{p:?}");
        }
        assert!(m("/**", "/a/.../b"));
        assert!(m("/**", "/a/.x/b"));
    }

    #[test]
    fn structure_errors_point_at_the_problem() {
        assert_eq!(
            errs("srv/web"),
            [(codes::GLOB_NOT_ABSOLUTE, "srv/web".to_string())]
        );
        assert_eq!(errs(""), [(codes::GLOB_NOT_ABSOLUTE, String::new())]);
        assert_eq!(
            errs("/srv/../etc"),
            [(codes::GLOB_NOT_NORMALIZED, "..".to_string())]
        );
        assert_eq!(
            errs("/srv/./etc"),
            [(codes::GLOB_NOT_NORMALIZED, ".".to_string())]
        );
        assert_eq!(
            errs("/srv/.."),
            [(codes::GLOB_NOT_NORMALIZED, "..".to_string())]
        );
        assert_eq!(
            errs("/a//b"),
            [(codes::GLOB_EMPTY_SEGMENT, "//".to_string())]
        );
        assert_eq!(errs("//a"), [(codes::GLOB_EMPTY_SEGMENT, "//".to_string())]);
        assert_eq!(errs("/a/"), [(codes::GLOB_TRAILING_SLASH, "/".to_string())]);
        assert_eq!(errs("//"), [(codes::GLOB_EMPTY_SEGMENT, "//".to_string())]);
        assert_eq!(
            errs("/a\\"),
            [(codes::GLOB_DANGLING_ESCAPE, "\\".to_string())]
        );
        assert_eq!(errs("/a\0b"), [(codes::GLOB_NUL, "\0".to_string())]);
    }

    #[test]
    fn normalization_suggestions() {
        let help = |t: &str| {
            parse_glob(t, Span::new(FileId(0), 0, t.len())).unwrap_err()[0]
                .help
                .clone()
                .unwrap()
        };
        assert!(
            help("/srv/../etc").contains("`/etc`"),
            "{}",
            help("/srv/../etc")
        );
        assert!(help("/a/./b//c").contains("`/a/b/c`"));
        assert!(help("/a/b/").contains("`/a/b`"));
        assert!(help("/a/b/").contains("`/a/b/**`"));
        let e = parse_glob("/srv/../etc", Span::new(FileId(0), 0, 11)).unwrap_err();
        assert_eq!(e[0].message, "pattern `/srv/../etc` is not normalized");
    }

    #[test]
    fn brace_errors() {
        assert_eq!(
            errs("/a/{b,c"),
            [(codes::GLOB_UNBALANCED_BRACE, "{".to_string())]
        );
        assert_eq!(
            errs("/a/b,c}"),
            [(codes::GLOB_UNBALANCED_BRACE, "}".to_string())]
        );
        assert_eq!(
            errs("/{a,b}/{c"),
            [(codes::GLOB_UNBALANCED_BRACE, "{".to_string())]
        );
        // Each branch must be absolute: the branch `b` is not.
        assert_eq!(
            errs("{/a,b}"),
            [(codes::GLOB_NOT_ABSOLUTE, "b".to_string())]
        );
        // Errors shared by several branches are reported once.
        assert_eq!(
            errs("/{a,b}//c"),
            [(codes::GLOB_EMPTY_SEGMENT, "//".to_string())]
        );
        assert_eq!(
            errs("/x/{a,..}"),
            [(codes::GLOB_NOT_NORMALIZED, "..".to_string())]
        );
        assert_eq!(
            errs("/x/{a,}"),
            [(codes::GLOB_TRAILING_SLASH, "/".to_string())]
        );
        // 2^11 = 2048 branches.
        let many = "/{a,b}".repeat(11);
        assert_eq!(errs(&many), [(codes::GLOB_TOO_MANY_BRANCHES, many.clone())]);
        // 2^10 = 1024 branches is the limit, and fine.
        assert_eq!(g(&"/{a,b}".repeat(10)).branches.len(), 1024);
        // The size limit counts the real expansion: 1024 alternatives of a
        // long list are fine, 1024 copies of a long text are not.
        let list = format!(
            "/usr/bin/{{{}}}",
            (0..1024)
                .map(|i| format!("tool{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(g(&list).branches.len(), 1024);
        let long = format!("/{}{}", "x".repeat(2000), "/{a,b}".repeat(10));
        assert_eq!(errs(&long)[0].0, codes::GLOB_TOO_LARGE);
        // Astronomical counts do not overflow.
        let huge = "/{a,b,c,d,e,f,g,h}".repeat(40);
        assert_eq!(errs(&huge)[0].0, codes::GLOB_TOO_MANY_BRANCHES);
        let deep = format!("/{}x{}", "{".repeat(20_000), "}".repeat(20_000));
        assert_eq!(errs(&deep)[0].0, codes::GLOB_TOO_LARGE);
        assert_eq!(
            g(&format!("/{}x{}", "{".repeat(30), "}".repeat(30)))
                .branches
                .len(),
            1
        );
        let long = format!("/{}", "a".repeat(MAX_PATTERN_BYTES));
        assert_eq!(errs(&long), [(codes::GLOB_TOO_LARGE, long.clone())]);
    }

    #[test]
    fn class_errors() {
        assert_eq!(
            errs("/[z-a]"),
            [(codes::GLOB_REVERSED_RANGE, "z-a".to_string())]
        );
        assert_eq!(errs("/[]"), [(codes::GLOB_EMPTY_CLASS, "[]".to_string())]);
        assert_eq!(errs("/[!]"), [(codes::GLOB_EMPTY_CLASS, "[!]".to_string())]);
        assert_eq!(
            errs("/a[bc"),
            [(codes::GLOB_UNCLOSED_CLASS, "[".to_string())]
        );
        assert_eq!(errs("/a]"), [(codes::GLOB_UNCLOSED_CLASS, "]".to_string())]);
        assert_eq!(
            errs("/[a/b]"),
            [(codes::GLOB_UNCLOSED_CLASS, "/".to_string())]
        );
        assert_eq!(
            errs("/[aéb]"),
            [(codes::GLOB_NON_ASCII_CLASS, "é".to_string())]
        );
        assert_eq!(
            errs("/[a\\éb]"),
            [(codes::GLOB_NON_ASCII_CLASS, "\\é".to_string())]
        );
        assert_eq!(
            errs("/[z-a]/[é]"),
            [
                (codes::GLOB_REVERSED_RANGE, "z-a".to_string()),
                (codes::GLOB_NON_ASCII_CLASS, "é".to_string())
            ]
        );
    }

    #[test]
    fn span_with_quotes_and_imprecise_spans() {
        let text = "srv";
        let e = parse_glob(text, Span::new(FileId(0), 4, 9)).unwrap_err();
        assert_eq!(e[0].primary_span(), Some(Span::new(FileId(0), 5, 8)));
        let e = parse_glob(text, Span::new(FileId(0), 4, 100)).unwrap_err();
        assert_eq!(e[0].primary_span(), Some(Span::new(FileId(0), 4, 100)));
    }

    #[test]
    fn parsed_structure() {
        let gl = g("/a/**/x*[!0-9]?y");
        assert_eq!(
            gl.branches[0].segments,
            [
                Segment::Atoms(vec![Atom::Literal(b"a".to_vec())]),
                Segment::AnyDepth,
                Segment::Atoms(vec![
                    Atom::Literal(b"x".to_vec()),
                    Atom::Star,
                    Atom::Class {
                        negated: true,
                        ranges: vec![(b'0', b'9')]
                    },
                    Atom::AnyByte,
                    Atom::Literal(b"y".to_vec()),
                ]),
            ]
        );
        // Runs of stars collapse.
        assert_eq!(
            g("/a***b").branches[0].segments,
            [Segment::Atoms(vec![
                Atom::Literal(b"a".to_vec()),
                Atom::Star,
                Atom::Literal(b"b".to_vec())
            ])]
        );
    }

    #[test]
    fn matching_is_not_exponential() {
        let pat = format!("/{}b", "*a".repeat(40));
        let path = format!("/{}", "a".repeat(200));
        assert!(!m(&pat, &path));
        let pat = format!("/{}x", "**/".repeat(60));
        let path = format!("/{}y", "a/".repeat(300));
        assert!(!m(&pat, &path));
    }

    /// A brute-force matcher straight from LANGUAGE.md, over byte strings,
    /// for cross-checking on small cases: a branch is expanded into the
    /// regular language it denotes by exhaustive backtracking.
    fn brute(segs: &[Segment], path: &[&[u8]]) -> bool {
        match segs.split_first() {
            None => path.is_empty(),
            Some((Segment::AnyDepth, rest)) => (0..=path.len()).any(|k| brute(rest, &path[k..])),
            Some((Segment::Atoms(a), rest)) => {
                !path.is_empty() && brute_atoms(a, path[0]) && brute(rest, &path[1..])
            }
        }
    }

    fn brute_atoms(atoms: &[Atom], s: &[u8]) -> bool {
        fn go(atoms: &[Atom], s: &[u8]) -> bool {
            match atoms.split_first() {
                None => s.is_empty(),
                Some((Atom::Star, rest)) => (0..=s.len()).any(|k| go(rest, &s[k..])),
                Some((Atom::Literal(l), rest)) => s.starts_with(l) && go(rest, &s[l.len()..]),
                Some((a, rest)) => !s.is_empty() && a.matches_byte(s[0]) && go(rest, &s[1..]),
            }
        }
        !s.is_empty() && go(atoms, s)
    }

    #[test]
    fn agrees_with_brute_force_on_small_universe() {
        let patterns = [
            "/**",
            "/a/**",
            "/a/*",
            "/*/b",
            "/**/b",
            "/a/**/b",
            "/*a*",
            "/?",
            "/??/**",
            "/[ab]*/**",
            "/{a,b}/{*,**}",
            "/a*b",
            "/**/**",
            "/[!a]/?",
            "/b/**/a*",
        ];
        let alphabet = ["a", "b", "ab", "ba", ".a"];
        let mut paths: Vec<String> = vec!["/".to_string()];
        for x in alphabet {
            paths.push(format!("/{x}"));
            for y in alphabet {
                paths.push(format!("/{x}/{y}"));
                for z in alphabet {
                    paths.push(format!("/{x}/{y}/{z}"));
                }
            }
        }
        for p in patterns {
            let gl = g(p);
            for path in &paths {
                let segs = split_path(path.as_bytes()).unwrap();
                let want = gl.branches.iter().any(|b| brute(&b.segments, &segs));
                assert_eq!(gl.matches(path.as_bytes()), want, "{p} on {path}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        /// Random patterns and paths over a small alphabet: the matcher
        /// agrees with the exhaustive backtracking definition.
        #[test]
        fn random_patterns_agree_with_brute_force(
            segs in proptest::collection::vec(
                proptest::sample::select(vec![
                    "a", "b", "ab", "*", "**", "?", "a*", "*b", "*a*", "[ab]", "[!a]", "??", "{a,b}",
                    "{a,**}", "a{,b}", "\\*", ".a", "*.a",
                ]),
                0..5,
            ),
            paths in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec!["a", "b", "ab", "ba", "*", ".a", "aab"]), 0..5),
                1..8,
            ),
        ) {
            let pattern = format!("/{}", segs.join("/"));
            let gl = g(&pattern);
            for p in paths {
                let path = format!("/{}", p.join("/"));
                let segs = split_path(path.as_bytes()).unwrap();
                let want = gl.branches.iter().any(|b| brute(&b.segments, &segs));
                proptest::prop_assert_eq!(gl.matches(path.as_bytes()), want, "{} on {}", pattern, path);
            }
        }
    }
}
