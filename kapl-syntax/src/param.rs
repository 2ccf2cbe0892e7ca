//! Parameters: `${NAME}` references inside path patterns, and the values
//! they take.
//!
//! Input: a pattern's text between its quotes (escapes not resolved), or a
//! parameter value (a `param` default or `--param NAME=VALUE`).
//! Output: the references found ([`scan`]), the pattern text with each
//! reference replaced ([`placeholder_text`] for checking syntax before
//! values are known, [`substitute`] for the values), and the value check
//! ([`check_value`]).
//!
//! A value is an absolute, normalized path and is **literal**: when it is
//! substituted, every glob character in it is escaped with `\`, so a
//! directory named `a*b` matches only itself. A reference starts a pattern
//! or a brace alternative (its value is an absolute path); `\$` is a
//! literal `$`, and `$NAME` without braces is an error, so that a
//! forgotten brace is never read as a literal dollar.

use crate::codes;
use crate::diag::Diagnostic;
use crate::lexer::shorten;
use crate::span::Span;

/// One `${NAME}` inside a pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ParamRef {
    /// The parameter's name.
    pub name: String,
    /// Byte offset of the `$` in the pattern text.
    pub start: usize,
    /// Byte offset just after the `}`.
    pub end: usize,
    /// Where `${NAME}` is written in its file.
    pub span: Span,
}

/// Whether `s` is a name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Why a parameter value is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// It does not start with `/`.
    #[error("`{0}` is not an absolute path")]
    NotAbsolute(String),
    /// It has a `.` or `..` component.
    #[error("`{0}` has a `{1}` component")]
    NotNormalized(String, &'static str),
    /// It has an empty component (`//`).
    #[error("`{0}` has an empty component (`//`)")]
    EmptyComponent(String),
    /// It ends with `/` and is not `/`.
    #[error("`{0}` ends with `/`")]
    TrailingSlash(String),
    /// It holds a NUL byte.
    #[error("the value holds a NUL byte")]
    Nul,
    /// It is empty.
    #[error("the value is empty")]
    Empty,
}

impl ValueError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ValueError::NotAbsolute(_) => codes::PARAM_VALUE_NOT_ABSOLUTE,
            ValueError::NotNormalized(..) => codes::PARAM_VALUE_NOT_NORMALIZED,
            ValueError::EmptyComponent(_) => codes::PARAM_VALUE_EMPTY_COMPONENT,
            ValueError::TrailingSlash(_) => codes::PARAM_VALUE_TRAILING_SLASH,
            ValueError::Nul | ValueError::Empty => codes::PARAM_VALUE_NUL,
        }
    }

    /// How to fix it.
    pub fn help(&self) -> String {
        match self {
            ValueError::NotAbsolute(v) => {
                format!(
                    "a value is an absolute path: write `/{}`, or the path from the root",
                    shorten(v)
                )
            }
            ValueError::NotNormalized(..) => {
                "write the path without `.` and `..` (the kernel sees resolved paths)".to_string()
            }
            ValueError::EmptyComponent(v) => format!("write `{}`", shorten(&collapse(v))),
            ValueError::TrailingSlash(v) => {
                format!("write `{}`", shorten(v.trim_end_matches('/')))
            }
            ValueError::Nul | ValueError::Empty => {
                "give an absolute path such as `/home/dev/proj`".to_string()
            }
        }
    }
}

fn collapse(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

/// Checks a value: an absolute, normalized path (no `.` or `..`
/// component, no `//`, no trailing `/` except `/` itself, no NUL).
pub fn check_value(v: &str) -> Result<(), ValueError> {
    if v.is_empty() {
        return Err(ValueError::Empty);
    }
    if v.contains('\0') {
        return Err(ValueError::Nul);
    }
    if !v.starts_with('/') {
        return Err(ValueError::NotAbsolute(v.to_string()));
    }
    if v == "/" {
        return Ok(());
    }
    if v.ends_with('/') {
        return Err(ValueError::TrailingSlash(v.to_string()));
    }
    for c in v[1..].split('/') {
        match c {
            "" => return Err(ValueError::EmptyComponent(v.to_string())),
            "." => return Err(ValueError::NotNormalized(v.to_string(), ".")),
            ".." => return Err(ValueError::NotNormalized(v.to_string(), "..")),
            _ => {}
        }
    }
    Ok(())
}

/// `value` with every character a glob would read specially escaped with
/// `\` (the value is literal).
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        if matches!(c, '\\' | '*' | '?' | '[' | ']' | '{' | '}' | ',' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Finds the `${NAME}` references in a pattern's text. `span_of(start,
/// end)` maps offsets in `text` to a span in the file. Malformed
/// references are reported (`KAPL0219`) and left out.
pub fn scan(
    text: &str,
    span_of: impl Fn(usize, usize) -> Span,
) -> (Vec<ParamRef>, Vec<Diagnostic>) {
    let bytes = text.as_bytes();
    let mut refs = Vec::new();
    let mut errs = Vec::new();
    let mut depth = 0usize;
    // Whether the position before `i` starts a pattern or an alternative.
    let mut at_start = true;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' => {
                // Skip the escaped character (which may be several bytes).
                i += 1;
                while i < bytes.len() {
                    i += 1;
                    if text.is_char_boundary(i) {
                        break;
                    }
                }
                at_start = false;
                continue;
            }
            b'{' => {
                depth += 1;
                at_start = true;
                i += 1;
                continue;
            }
            b',' if depth > 0 => {
                at_start = true;
                i += 1;
                continue;
            }
            b'}' => {
                depth = depth.saturating_sub(1);
                at_start = false;
                i += 1;
                continue;
            }
            b'$' => {}
            _ => {
                at_start = false;
                i += 1;
                continue;
            }
        }
        // A `$`.
        let next = bytes.get(i + 1).copied();
        if next == Some(b'{') {
            let close = text[i + 2..].find('}').map(|k| i + 2 + k);
            let Some(close) = close else {
                errs.push(
                    Diagnostic::error(
                        codes::PARAM_BAD_REFERENCE,
                        "unclosed parameter reference",
                        span_of(i, i + 2),
                        "this `${` has no `}`",
                    )
                    .with_help("write `${NAME}`, or `\\$` for a literal `$`"),
                );
                break;
            };
            let name = &text[i + 2..close];
            let end = close + 1;
            if !is_name(name) {
                errs.push(
                    Diagnostic::error(
                        codes::PARAM_BAD_REFERENCE,
                        format!("`${{{}}}` is not a parameter reference", shorten(name)),
                        span_of(i, end),
                        "not a name between the braces",
                    )
                    .with_help(
                        "write `${NAME}` with a parameter's name, or `\\$` for a literal `$`",
                    ),
                );
            } else if !at_start {
                errs.push(
                    Diagnostic::error(
                        codes::PARAM_BAD_REFERENCE,
                        format!("`${{{name}}}` must start the pattern"),
                        span_of(i, end),
                        "a parameter's value is an absolute path",
                    )
                    .with_help(format!(
                        "start the pattern with it, as in `\"${{{name}}}/**\"` (or a brace alternative, `\"{{${{{name}}},/other}}/**\"`)"
                    )),
                );
            } else {
                refs.push(ParamRef {
                    name: name.to_string(),
                    start: i,
                    end,
                    span: span_of(i, end),
                });
            }
            at_start = false;
            i = end;
            continue;
        }
        if next.is_some_and(|c| c.is_ascii_alphabetic() || c == b'_') {
            let mut j = i + 1;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            let name = &text[i + 1..j];
            errs.push(
                Diagnostic::error(
                    codes::PARAM_BAD_REFERENCE,
                    format!("`${}` is not a parameter reference", shorten(name)),
                    span_of(i, j),
                    "a parameter is written with braces",
                )
                .with_help(format!(
                    "declare `param {name}` and write `${{{name}}}` (its value is given with `--param {name}=/path`), or write `\\$` for a literal `$`"
                )),
            );
            at_start = false;
            i = j;
            continue;
        }
        at_start = false;
        i += 1;
    }
    (refs, errs)
}

/// `text` with each reference replaced by a literal absolute path of the
/// same length (`/pp…`), so that the glob's syntax can be checked before
/// the values are known and every error still points at the source.
pub fn placeholder_text(text: &str, refs: &[ParamRef]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in refs {
        out.push_str(text.get(at..r.start).unwrap_or_default());
        out.push('/');
        out.extend(std::iter::repeat_n('p', r.end.saturating_sub(r.start + 1)));
        at = r.end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    out
}

/// `text` with each reference replaced by its value, escaped (see
/// [`escape`]). `value(name)` gives a parameter's value; `None` when one
/// has none. A value `/` followed by `/` in the text adds nothing, so
/// `"${root}/etc"` with `root` = `/` is `/etc`.
pub fn substitute<'v>(
    text: &str,
    refs: &[ParamRef],
    value: impl Fn(&str) -> Option<&'v str>,
) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 32);
    let mut at = 0;
    for r in refs {
        out.push_str(text.get(at..r.start)?);
        let v = value(&r.name)?;
        let followed_by_slash = text.as_bytes().get(r.end) == Some(&b'/');
        if !(v == "/" && followed_by_slash) {
            out.push_str(&escape(v));
        }
        at = r.end;
    }
    out.push_str(text.get(at..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::FileId;

    fn sp(s: usize, e: usize) -> Span {
        Span::new(FileId(0), s, e)
    }

    fn names(text: &str) -> Vec<String> {
        scan(text, sp).0.into_iter().map(|r| r.name).collect()
    }

    fn errors(text: &str) -> Vec<String> {
        scan(text, sp)
            .1
            .into_iter()
            .map(|d| {
                let s = d.primary_span().unwrap_or(sp(0, 0));
                text[s.start as usize..s.end as usize].to_string()
            })
            .collect()
    }

    #[test]
    fn references_are_found_where_a_pattern_or_alternative_starts() {
        assert_eq!(names("${proj}/**"), ["proj"]);
        assert_eq!(names("{${a},${b}}/x"), ["a", "b"]);
        assert_eq!(names("/etc/passwd"), Vec::<String>::new());
        assert_eq!(names("/a$"), Vec::<String>::new());
        assert_eq!(names("/a/\\${x}"), Vec::<String>::new());
        assert_eq!(names("${p}"), ["p"]);
    }

    #[test]
    fn malformed_references_are_errors_on_their_text() {
        assert_eq!(errors("$PROJ/**"), ["$PROJ"]);
        assert_eq!(errors("/home/dev/$PROJ/**"), ["$PROJ"]);
        assert_eq!(errors("/home/${p}/x"), ["${p}"]);
        assert_eq!(errors("${1x}/a"), ["${1x}"]);
        assert_eq!(errors("${a/b"), ["${"]);
        assert!(errors("/a/\\$PROJ").is_empty());
        assert!(errors("/a/$1").is_empty());
    }

    #[test]
    fn placeholders_keep_the_length() {
        let t = "{${ab},/x}/**";
        let (refs, _) = scan(t, sp);
        let p = placeholder_text(t, &refs);
        assert_eq!(p, "{/pppp,/x}/**");
        assert_eq!(p.len(), t.len());
    }

    #[test]
    fn values_are_substituted_escaped() {
        let t = "${p}/**";
        let (refs, _) = scan(t, sp);
        let v = |v: &'static str| move |_: &str| Some(v);
        assert_eq!(
            substitute(t, &refs, v("/x/a*b")).as_deref(),
            Some("/x/a\\*b/**")
        );
        assert_eq!(substitute(t, &refs, v("/")).as_deref(), Some("/**"));
        assert_eq!(
            substitute(t, &refs, v("/{a,b}[c]?\\$")).as_deref(),
            Some("/\\{a\\,b\\}\\[c\\]\\?\\\\\\$/**")
        );
        assert_eq!(substitute(t, &refs, |_| None), None);
    }

    #[test]
    fn values_must_be_absolute_and_normalized() {
        assert!(check_value("/").is_ok());
        assert!(check_value("/home/dev/a*b").is_ok());
        let code = |v: &str| check_value(v).err().map(|e| e.code());
        assert_eq!(code("home"), Some(codes::PARAM_VALUE_NOT_ABSOLUTE));
        assert_eq!(code("/a/./b"), Some(codes::PARAM_VALUE_NOT_NORMALIZED));
        assert_eq!(code("/a/.."), Some(codes::PARAM_VALUE_NOT_NORMALIZED));
        assert_eq!(code("/a//b"), Some(codes::PARAM_VALUE_EMPTY_COMPONENT));
        assert_eq!(code("/a/"), Some(codes::PARAM_VALUE_TRAILING_SLASH));
        assert_eq!(code("/a\0b"), Some(codes::PARAM_VALUE_NUL));
        assert_eq!(code(""), Some(codes::PARAM_VALUE_NUL));
    }
}
