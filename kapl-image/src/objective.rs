//! Objective tables: what an objective image carries so that a plan built
//! later can be checked against it, by the prover or by the runtime alone.
//!
//! Input: (from the code generator) every objective's and intent's bound
//! and `never` compiled to the same tables as a plan's steps.
//! Output: [`ObjectiveTables`] in [`Image::objective`], and, in a plan image
//! built against an objective image, [`Against`] in [`Image::against`].
//!
//! Each level (objective or intent) is laid out like a plan with two steps:
//! column [`BOUND`] holds the bound, column [`NEVER`] the union of the
//! `never` rules. A cell's grant id indexes [`ObjectiveTables::rules`], so
//! a witness names the rule it breaks.

use crate::model::{Dfa, GrantKind, Image, NameEntry, NetEntry, SourceLoc};

/// The step column of a level's tables that holds its bound.
pub const BOUND: u32 = 0;
/// The step column of a level's tables that holds its `never` rules.
pub const NEVER: u32 = 1;
/// Step columns per level.
pub const LEVEL_COLUMNS: u32 = 2;

/// Everything an objective image adds to an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectiveTables {
    /// The objective's identity: SHA-256 of the `chain` section and of this
    /// table without the identity itself (see `format::objective_identity`).
    /// The reader recomputes it.
    pub identity: [u8; 32],
    /// The source files the objectives come from, root first, then the
    /// stdlib modules they use, with their text.
    pub sources: Vec<EmbeddedSource>,
    /// The bound and `never` rules of every level, by id.
    pub rules: Vec<BoundRule>,
    /// One entry per objective (in [`Image::objectives`] order), then one
    /// per intent (in [`Image::intents`] order).
    pub levels: Vec<LevelTables>,
}

/// One embedded source file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbeddedSource {
    /// Its display name (`obj.kapl`, `<stdlib/runtime.kapl>`).
    pub name: String,
    /// Its text.
    pub text: String,
}

/// One rule of a bound or a `never`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundRule {
    /// The level it belongs to (index into [`ObjectiveTables::levels`]).
    pub level: u32,
    /// Whether it is a `never` rule (else a bound rule).
    pub never: bool,
    /// Fs (with rights), exec or net (with the operation).
    pub kind: GrantKind,
    /// Where it is written (`file` indexes [`ObjectiveTables::sources`]).
    pub source: SourceLoc,
    /// Its source text.
    pub text: String,
}

/// Which level a table belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// An objective (index into [`Image::objectives`]).
    Objective(u32),
    /// An intent (index into [`Image::intents`]).
    Intent(u32),
}

/// One level's tables: two step columns, [`BOUND`] and [`NEVER`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelTables {
    /// Whose tables these are.
    pub level: Level,
    /// Path DFA, 4 columns per step column (read, write, create, delete).
    pub fs: Dfa,
    /// Exec DFA, 1 column per step column.
    pub exec: Dfa,
    /// Network entries of both step columns, sorted as a plan's.
    pub net: Vec<NetEntry>,
    /// Host-name rules of both step columns (`net connect` bound and
    /// `never` rules that name hosts), sorted as a plan's; a port range's
    /// grant id is a rule id.
    pub names: Vec<NameEntry>,
}

/// What a plan image was built against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Against {
    /// The objective image's file name, as given to `kaplc build --against`.
    pub file: String,
    /// The objective image's identity ([`ObjectiveTables::identity`]).
    pub identity: [u8; 32],
}

impl ObjectiveTables {
    /// The tables of `level`.
    pub fn level(&self, level: Level) -> Option<&LevelTables> {
        self.levels.iter().find(|l| l.level == level)
    }
}

impl Image {
    /// The objective image's identity as lowercase hex, if it is one.
    pub fn identity_hex(&self) -> Option<String> {
        self.objective.as_ref().map(|o| hex(&o.identity))
    }
}

/// SHA-256 of `bytes` (a plan image's identity in a session's history).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
