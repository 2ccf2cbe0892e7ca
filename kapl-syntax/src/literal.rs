//! Literal validation: strings, patterns, addresses, host names and ports.
//!
//! Input: token texts and their byte positions, from the parser's actions.
//! Output: validated AST literals, or diagnostics pointing inside the
//! literal (at the bad octet, the prefix, the escape, ...). A malformed
//! literal is left out of the tree; the rest of its rule stays.

use crate::ast::{AddrKind, AddrSpec, NameSpec, Pattern, PortSpec, StrLit};
use crate::codes;
use crate::diag::Diagnostic;
use crate::glob::parse_glob_budgeted;
use crate::lexer::{StrTok, shorten};
use crate::param;
use crate::span::{FileId, Span};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An `about` or `use` string: resolves `\"` and `\\`. `start..end` is the
/// token with its quotes. `None` (with diagnostics, or silently when the
/// lexer already reported the missing quote) when malformed.
pub fn string(
    file: FileId,
    tok: StrTok<'_>,
    start: usize,
    end: usize,
    diags: &mut Vec<Diagnostic>,
) -> Option<StrLit> {
    if !tok.terminated {
        return None;
    }
    let base = start + 1;
    let mut value = String::with_capacity(tok.raw.len());
    let mut ok = true;
    let mut chars = tok.raw.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            value.push(c);
            continue;
        }
        match chars.next() {
            Some((_, e @ ('"' | '\\'))) => value.push(e),
            Some((j, e)) => {
                ok = false;
                diags.push(
                    Diagnostic::error(
                        codes::INVALID_ESCAPE,
                        format!("unknown escape `\\{}` in string", e.escape_debug()),
                        Span::new(file, base + i, base + j + e.len_utf8()),
                        "not an escape",
                    )
                    .with_help("the escapes are `\\\"` and `\\\\`; write `\\\\` for a backslash"),
                );
            }
            None => {
                // The lexer never ends a terminated string on a lone `\`.
                ok = false;
            }
        }
    }
    ok.then(|| StrLit {
        value,
        span: Span::new(file, start, end),
    })
}

/// A path pattern. `start..end` is the token with its quotes; `budget` is
/// the file's remaining brace-expansion allowance (see
/// [`parse_glob_budgeted`]).
pub fn pattern(
    file: FileId,
    tok: StrTok<'_>,
    start: usize,
    end: usize,
    budget: &mut usize,
    diags: &mut Vec<Diagnostic>,
) -> Option<Pattern> {
    if !tok.terminated {
        return None;
    }
    let base = start + 1;
    let inner = Span::new(file, base, base + tok.raw.len());
    let (params, errs) = param::scan(tok.raw, |s, e| Span::new(file, base + s, base + e));
    if !errs.is_empty() {
        diags.extend(errs);
        return None;
    }
    let text = if params.is_empty() {
        std::borrow::Cow::Borrowed(tok.raw)
    } else {
        std::borrow::Cow::Owned(param::placeholder_text(tok.raw, &params))
    };
    match parse_glob_budgeted(&text, inner, budget) {
        Ok(glob) => Some(Pattern {
            source: tok.raw.into(),
            glob: glob.into(),
            params,
            span: Span::new(file, start, end),
        }),
        Err(errs) => {
            diags.extend(errs);
            None
        }
    }
}

const ADDR_HELP: &str = "write an address such as `10.0.0.1` or `2001:db8::1`, \
optionally with a prefix length such as `/16`; or `any`, or `localhost`";

/// An address-like token (or a number in address position).
pub fn address(
    file: FileId,
    text: &str,
    start: usize,
    end: usize,
    diags: &mut Vec<Diagnostic>,
) -> Option<AddrSpec> {
    let whole = Span::new(file, start, end);
    let (addr_text, prefix_text) = match text.find('/') {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let addr: IpAddr = if addr_text.contains(':') {
        match addr_text.parse::<Ipv6Addr>() {
            Ok(a) => IpAddr::V6(a),
            Err(_) => {
                diags.push(
                    Diagnostic::error(
                        codes::ADDR_INVALID,
                        format!("invalid address `{}`", shorten(text)),
                        Span::new(file, start, start + addr_text.len()),
                        "not an IPv6 address",
                    )
                    .with_help(ADDR_HELP),
                );
                return None;
            }
        }
    } else {
        match addr_text.parse::<Ipv4Addr>() {
            Ok(a) => IpAddr::V4(a),
            Err(_) => {
                diags.push(ipv4_error(file, text, addr_text, start));
                return None;
            }
        }
    };
    let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix_text {
        None => max,
        Some(p) => {
            let pstart = start + addr_text.len();
            let pspan = Span::new(file, pstart, end);
            if p.is_empty() {
                diags.push(
                    Diagnostic::error(
                        codes::ADDR_BAD_PREFIX,
                        format!("missing prefix length in `{}`", shorten(text)),
                        pspan,
                        "a number must follow `/`",
                    )
                    .with_help(format!(
                        "write a prefix length from 0 to {max}, or drop the `/`"
                    )),
                );
                return None;
            }
            match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
                    diags.push(
                        Diagnostic::error(
                            codes::ADDR_BAD_PREFIX,
                            format!(
                                "prefix length `/{}` is too long for an {family} address",
                                shorten(p)
                            ),
                            pspan,
                            format!("an {family} prefix is at most {max}"),
                        )
                        .with_help(format!("write a prefix length from 0 to {max}")),
                    );
                    return None;
                }
            }
        }
    };
    Some(AddrSpec {
        kind: AddrKind::Cidr { addr, prefix },
        span: whole,
    })
}

/// Explains why `addr_text` is not an IPv4 address, pointing at the first
/// bad part when there are four.
fn ipv4_error(file: FileId, text: &str, addr_text: &str, start: usize) -> Diagnostic {
    let title = format!("invalid address `{}`", shorten(text));
    let parts: Vec<&str> = addr_text.split('.').collect();
    if parts.len() == 4 {
        let mut off = start;
        for part in &parts {
            let bad = if part.is_empty() {
                Some("an empty part")
            } else if !part.bytes().all(|b| b.is_ascii_digit()) {
                Some("not a decimal number")
            } else if part.len() > 1 && part.starts_with('0') {
                Some("leading zeros are not allowed")
            } else if part.parse::<u8>().is_err() {
                Some("more than 255")
            } else {
                None
            };
            if let Some(why) = bad {
                let span = if part.is_empty() {
                    // The `.` that starts the missing part.
                    Span::new(file, off.saturating_sub(1), off.max(start + 1))
                } else {
                    Span::new(file, off, off + part.len())
                };
                return Diagnostic::error(
                    codes::ADDR_INVALID,
                    title,
                    span,
                    format!("{why}: each part of an IPv4 address is 0 to 255"),
                )
                .with_help(ADDR_HELP);
            }
            off += part.len() + 1;
        }
    }
    let label = if parts.len() == 1 {
        "not an address".to_string()
    } else {
        format!("an IPv4 address has four parts, this has {}", parts.len())
    };
    Diagnostic::error(
        codes::ADDR_INVALID,
        title,
        Span::new(file, start, start + addr_text.len()),
        label,
    )
    .with_help(ADDR_HELP)
}

/// A port number token.
fn port_number(
    file: FileId,
    text: &str,
    start: usize,
    end: usize,
    diags: &mut Vec<Diagnostic>,
) -> Option<u16> {
    if let Ok(p) = text.parse::<u16>() {
        return Some(p);
    }
    let span = Span::new(file, start, end);
    let d = if text.bytes().all(|b| b.is_ascii_digit()) {
        Diagnostic::error(
            codes::PORT_OUT_OF_RANGE,
            format!("port `{}` is out of range", shorten(text)),
            span,
            "ports go from 0 to 65535",
        )
    } else {
        Diagnostic::error(
            codes::PORT_OUT_OF_RANGE,
            format!("invalid port `{}`", shorten(text)),
            span,
            "not a number",
        )
    };
    diags.push(d.with_help("write a port from 0 to 65535, a range such as `8000-8099`, or `any`"));
    None
}

/// A single port.
pub fn port(
    file: FileId,
    text: &str,
    start: usize,
    end: usize,
    diags: &mut Vec<Diagnostic>,
) -> Option<PortSpec> {
    let p = port_number(file, text, start, end, diags)?;
    Some(PortSpec {
        lo: p,
        hi: p,
        span: Span::new(file, start, end),
    })
}

/// A port range `lo-hi`: `(text, start, end)` for each end.
pub fn port_range(
    file: FileId,
    (lo_text, lo_start, lo_end): (&str, usize, usize),
    (hi_text, hi_start, hi_end): (&str, usize, usize),
    diags: &mut Vec<Diagnostic>,
) -> Option<PortSpec> {
    let lo = port_number(file, lo_text, lo_start, lo_end, diags);
    let hi = port_number(file, hi_text, hi_start, hi_end, diags);
    let (lo, hi) = (lo?, hi?);
    let span = Span::new(file, lo_start, hi_end);
    if lo > hi {
        diags.push(
            Diagnostic::error(
                codes::PORT_REVERSED_RANGE,
                format!("reversed port range `{lo}-{hi}`"),
                span,
                "the low end is above the high end",
            )
            .with_help(format!("write `{hi}-{lo}`")),
        );
        return None;
    }
    Some(PortSpec { lo, hi, span })
}

const NAME_HELP: &str = "a host name is labels of letters, digits, `-` and `_` separated by \
     dots, such as `\"pypi.org\"`; a whole label may be `*` (one label), and the leftmost \
     `**` (one or more labels): `\"*.pythonhosted.org\"`";

/// A quoted host-name pattern in a `net` rule's target list, in normal form
/// (see [`crate::names`]). `start..end` is the token with its quotes.
pub fn host_name(
    file: FileId,
    tok: StrTok<'_>,
    start: usize,
    end: usize,
    diags: &mut Vec<Diagnostic>,
) -> Option<NameSpec> {
    if !tok.terminated {
        return None;
    }
    let span = Span::new(file, start, end);
    let text = tok.raw;
    match crate::names::pattern(text) {
        Ok(pattern) => Some(NameSpec { pattern, span }),
        Err(e) => {
            use crate::names::NameError as E;
            let code = match &e {
                E::Empty => codes::NAME_EMPTY,
                E::TooLong => codes::NAME_TOO_LONG,
                E::EmptyLabel => codes::NAME_EMPTY_LABEL,
                E::LongLabel(_) => codes::NAME_LONG_LABEL,
                E::NonAscii => codes::NAME_NON_ASCII,
                E::BadChar(_) => codes::NAME_BAD_CHAR,
                E::BadWildcard(_) => codes::NAME_BAD_WILDCARD,
            };
            // Point at the offending label or character when there is one.
            let base = start + 1;
            let at = |needle: &str| {
                text.find(needle)
                    .map(|i| Span::new(file, base + i, base + i + needle.len()))
            };
            let (primary, label) = match &e {
                E::LongLabel(l) => (at(l), "this label"),
                E::BadWildcard(l) => (at(l), "this label"),
                E::BadChar(c) => (at(&c.to_string()), "this character"),
                E::NonAscii => (
                    text.char_indices()
                        .find(|(_, c)| !c.is_ascii())
                        .map(|(i, c)| Span::new(file, base + i, base + i + c.len_utf8())),
                    "not ASCII",
                ),
                E::EmptyLabel => (at("..").or_else(|| at(".")), "an empty label"),
                E::Empty | E::TooLong => (None, "not a host name"),
            };
            let help = match &e {
                E::NonAscii => "write the name's IDNA form (`xn--...`), as `idn2` or a browser's address bar shows it".to_string(),
                E::BadWildcard(_) => "a wildcard is a whole label: `\"*.example.com\"` (one label) or `\"**.example.com\"` (one or more, leftmost only)".to_string(),
                _ => NAME_HELP.to_string(),
            };
            diags.push(
                Diagnostic::error(
                    code,
                    format!("invalid host name `{}`: {e}", shorten(text)),
                    primary.unwrap_or(span),
                    label,
                )
                .with_help(help),
            );
            None
        }
    }
}
