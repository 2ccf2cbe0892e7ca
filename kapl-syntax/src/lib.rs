//! KAPL front end: source text to a spanned AST.
//!
//! ```text
//! source ─► lexer (logos) ─► parser (lalrpop) ─► ast::File + Vec<Diagnostic>
//!                                 │
//!                                 └─► literal checks (globs, addresses, ports)
//! ```
//!
//! This crate is pure: no I/O. Callers put texts into a [`SourceMap`] and
//! parse them by [`FileId`] with [`parse`], which never fails: it returns
//! the (possibly partial) tree and every diagnostic.

pub mod ast;
pub use kapl_codes as codes;
/// Host names and patterns (the `kapl-names` crate, also `kapl_image::names`).
pub use kapl_names as names;
pub mod diag;
pub mod glob;
pub mod lexer;
pub mod literal;
pub mod param;
pub mod parser;
pub mod span;

pub use diag::{Diagnostic, Label, Severity, Witness};
pub use parser::{Parsed, parse};
pub use span::{FileId, Origin, SourceFile, SourceMap, Span};
