//! Build set-up for kaplc:
//! - link-time: kaplc and its tests link libz3 (through kapl-prove), which
//!   lives in `.z3/z3/lib` (see `.cargo/config.toml`); embed it as an rpath
//!   so they run without `LD_LIBRARY_PATH`;
//! - tests: generate one test per policy in `tests/malformed/` (see
//!   `tests/malformed.rs`), so each file shows up, passes and fails on its own.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=Z3_LIBRARY_PATH_OVERRIDE");
    if let Ok(dir) = std::env::var("Z3_LIBRARY_PATH_OVERRIDE") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    malformed_tests();
}

fn malformed_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/malformed");
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".kapl"))
            .collect(),
        Err(e) => fail(&format!("cannot read {}: {e}", dir.display())),
    };
    if names.is_empty() {
        fail(&format!("no .kapl files in {}", dir.display()));
    }
    names.sort();
    let mut out = String::new();
    for n in &names {
        let ident: String = n
            .trim_end_matches(".kapl")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "#[test]\nfn {ident}() {{\n    run_malformed({n:?});\n}}\n"
        );
    }
    let out_dir = std::env::var("OUT_DIR").unwrap_or_else(|_| ".".to_string());
    let dest = Path::new(&out_dir).join("malformed_tests.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        fail(&format!("cannot write {}: {e}", dest.display()));
    }
}

/// Stops the build: a corpus that silently generated no tests (an
/// unreadable directory, a full disk) would pass vacuously.
fn fail(why: &str) -> ! {
    eprintln!("kaplc build script: malformed-policy tests: {why}");
    std::process::exit(1)
}
