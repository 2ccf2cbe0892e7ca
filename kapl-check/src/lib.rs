//! KAPL checker: from parsed files to a resolved, proved policy.
//!
//! ```text
//! ast::File ─► load (use std.X / "./f.kapl") ─► resolve ─► ir::Policy ─► prove
//! ```
//!
//! Pure: files come in through the [`load::Loader`] trait; the solver is the
//! only outside dependency.

pub mod ir;
pub mod prove;
pub mod semantics;
