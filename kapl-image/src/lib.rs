//! The KAPL image (`.kapi`): what `kaplc build` writes and `kapl-run` loads.
//!
//! PLAN (issue 4): a documented binary format (magic, version, checksum,
//! sections) with a writer, a reader that verifies everything before use and
//! never panics on bad bytes, and an evaluator that answers requests from the
//! tables exactly as the runtime and BPF programs read them. Pure: no I/O.
//! Kept apart from `kapl-codegen` so the runtime links neither the compiler
//! nor Z3.
