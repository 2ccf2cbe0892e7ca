//! Every stable diagnostic code, one constant per code.
//!
//! Input: nothing. Output: the `&'static str` codes that diagnostics carry.
//! Ranges (shared decision): KAPL00xx input/loading/CLI; KAPL01xx lexical
//! and syntax; KAPL02xx literals (glob, address, port); KAPL03xx names,
//! structure, imports; KAPL04xx proof errors; KAPL05xx proof warnings;
//! KAPL06xx build/codegen; KAPL07xx image format; KAPL08xx runtime.
//! A code, once published, keeps its meaning; retired codes are not reused.

// ---------------------------------------------------------------- KAPL01xx
// Lexical and syntax errors (kapl-syntax: lexer and parser).

/// A token the grammar does not allow here (`expected ..., found ...`).
pub const UNEXPECTED_TOKEN: &str = "KAPL0101";
/// The file ends in the middle of an item.
pub const UNEXPECTED_EOF: &str = "KAPL0102";
/// A character that starts no token (stray `#`, `;`, an unquoted `/`, ...).
pub const UNEXPECTED_CHAR: &str = "KAPL0103";
/// A string literal without its closing quote before the end of the line.
pub const UNTERMINATED_STRING: &str = "KAPL0104";
/// A `/*` comment without its closing `*/`.
pub const UNTERMINATED_COMMENT: &str = "KAPL0105";
/// A NUL byte in the source text.
pub const NUL_BYTE: &str = "KAPL0106";
/// An escape other than `\"` and `\\` in an `about` or `use` string.
pub const INVALID_ESCAPE: &str = "KAPL0107";
/// So many errors that the rest were not reported.
pub const TOO_MANY_ERRORS: &str = "KAPL0108";
/// A token after the end of the grammar (reserved; the grammar accepts any
/// number of items, so the parser should never report it).
pub const EXTRA_TOKEN: &str = "KAPL0109";

// ---------------------------------------------------------------- KAPL02xx
// Literal errors: path globs, addresses, ports.

/// A pattern (or one of its brace branches) that does not start with `/`.
pub const GLOB_NOT_ABSOLUTE: &str = "KAPL0201";
/// A `.` or `..` segment in a pattern.
pub const GLOB_NOT_NORMALIZED: &str = "KAPL0202";
/// An empty segment (`//`) in a pattern.
pub const GLOB_EMPTY_SEGMENT: &str = "KAPL0203";
/// A pattern other than `/` that ends with `/`.
pub const GLOB_TRAILING_SLASH: &str = "KAPL0204";
/// A `{` without `}` or a `}` without `{`.
pub const GLOB_UNBALANCED_BRACE: &str = "KAPL0205";
/// A `[` without `]`, or a `/` inside a class.
pub const GLOB_UNCLOSED_CLASS: &str = "KAPL0206";
/// A class that can match nothing (`[]` or a class of only `/`).
pub const GLOB_EMPTY_CLASS: &str = "KAPL0207";
/// A class range whose ends are reversed (`[z-a]`).
pub const GLOB_REVERSED_RANGE: &str = "KAPL0208";
/// A non-ASCII character inside a class (classes match one byte).
pub const GLOB_NON_ASCII_CLASS: &str = "KAPL0209";
/// Brace expansion yields more than 1024 alternatives.
pub const GLOB_TOO_MANY_BRANCHES: &str = "KAPL0210";
/// A `\` at the end of a pattern, escaping nothing.
pub const GLOB_DANGLING_ESCAPE: &str = "KAPL0211";
/// A NUL byte (or other control byte that no path holds) in a pattern.
pub const GLOB_NUL: &str = "KAPL0212";
/// A pattern that would expand to more than the size limit.
pub const GLOB_TOO_LARGE: &str = "KAPL0213";
/// A text in address position that is not an IPv4 or IPv6 address.
pub const ADDR_INVALID: &str = "KAPL0221";
/// A prefix length beyond 32 (IPv4) or 128 (IPv6), or missing after `/`.
pub const ADDR_BAD_PREFIX: &str = "KAPL0222";
/// A port number that is not an integer from 0 to 65535.
pub const PORT_OUT_OF_RANGE: &str = "KAPL0231";
/// A port range whose low end is above its high end (`9000-8000`).
pub const PORT_REVERSED_RANGE: &str = "KAPL0232";
