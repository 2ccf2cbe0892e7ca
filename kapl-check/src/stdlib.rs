//! The standard library: `.kapl` modules compiled into the binary.
//!
//! Input: `stdlib/*.kapl` at the repository root, embedded at build time with
//! `include_str!` so `kaplc` works from any directory. Output: module texts
//! by name (`use std.runtime` loads `runtime`); they show in diagnostics as
//! `<stdlib/runtime.kapl>`.

/// Every stdlib module: (name, text), sorted by name.
pub const MODULES: &[(&str, &str)] = &[("runtime", include_str!("../../stdlib/runtime.kapl"))];

/// The text of module `name`, if there is one.
pub fn module(name: &str) -> Option<&'static str> {
    MODULES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// The names of every module, for "did you mean".
pub fn names() -> impl Iterator<Item = &'static str> {
    MODULES.iter().map(|(n, _)| *n)
}
