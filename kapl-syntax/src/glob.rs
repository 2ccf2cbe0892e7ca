//! Path globs: the parsed form of a quoted pattern, and the reference
//! matcher that defines what a glob means.
//!
//! Input: the text between a pattern's quotes. Output: a [`Glob`] (braces
//! expanded into branches, each an absolute list of segments) or precise
//! errors. Paths and globs are byte strings: `?` and classes match one byte
//! other than `/` (a non-ASCII character is several bytes in UTF-8).
//!
//! PLAN (syntax helper): `parse_glob`, `Glob::matches` and their tests.

/// The most branches brace expansion may produce for one pattern.
pub const MAX_BRANCHES: usize = 1024;

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
