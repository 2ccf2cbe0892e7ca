//! Helpers shared by kaplc's end-to-end tests: where the repository root
//! is, and the real binary run from there.

#![allow(dead_code, reason = "each test file uses some of them")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (examples and corpora are addressed from it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Colour as the test's environment leaves it to `--color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoColor {
    /// `NO_COLOR` removed: colour follows `--color` (and the terminal).
    Unset,
    /// `NO_COLOR=1`.
    Set,
}

/// Runs `kaplc ARGS` from the repository root.
pub fn kaplc_in_root(args: &[&str], no_color: NoColor) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kaplc"));
    c.args(args).current_dir(root());
    match no_color {
        NoColor::Unset => c.env_remove("NO_COLOR"),
        NoColor::Set => c.env("NO_COLOR", "1"),
    };
    c.output()
        .unwrap_or_else(|e| panic!("cannot run kaplc: {e}"))
}
