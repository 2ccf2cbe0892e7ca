//! KAPL front end: source text to a spanned AST.
//!
//! ```text
//! source ─► lexer (logos) ─► parser (lalrpop) ─► ast::File + Vec<Diagnostic>
//! ```
//!
//! This crate is pure: no I/O. Callers put texts into a [`SourceMap`] and
//! parse them by [`FileId`].

pub mod ast;
pub mod codes;
pub mod diag;
pub mod glob;
pub mod span;

pub use diag::{Diagnostic, Label, Severity, Witness};
pub use span::{FileId, Origin, SourceFile, SourceMap, Span};
