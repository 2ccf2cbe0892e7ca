//! KAPL language server (`kaplc lsp`): LSP 3.17 over stdio.
//!
//! ```text
//! editor ─► lsp-server (JSON-RPC) ─► server loop ─► analysis thread
//!                                       │            (parse, load, resolve,
//!                                       │             lower, prove)
//!                                       ▼
//!           diagnostics, hover, definition, completion, document symbols
//! ```
//!
//! Input: LSP messages. Output: LSP messages. The checker and the prover do
//! the work; this crate renders their findings for editors and answers
//! questions about names. It reads imported files from disk (the open
//! buffers win), so unlike the checker it is not pure.

pub mod analysis;
pub mod complete;
pub mod features;
pub mod index;
pub mod server;
pub mod text;

pub use server::{Config, ServerError, run, run_stdio};
