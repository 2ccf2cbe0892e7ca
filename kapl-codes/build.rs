//! Build step of kapl-codes: reads this crate's own `src/lib.rs` and writes
//! the table of every code with its constant name and doc comment
//! (`$OUT_DIR/docs.rs`, included as `kapl_codes::DOCS`). The descriptions
//! SARIF rules and the book show are those doc comments, so they cannot
//! drift from the registry.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs");
    println!("cargo::rerun-if-changed={}", src.display());
    let text = match std::fs::read_to_string(&src) {
        Ok(t) => t,
        Err(e) => fail(&format!("cannot read {}: {e}", src.display())),
    };
    let mut out = String::from("&[\n");
    let mut doc: Vec<&str> = Vec::new();
    let mut count = 0usize;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(d) = line.strip_prefix("///") {
            doc.push(d.trim());
            continue;
        }
        if let Some((name, code)) = constant(line) {
            if doc.is_empty() {
                fail(&format!(
                    "src/lib.rs:{}: `{name}` has no doc comment",
                    n + 1
                ));
            }
            let _ = writeln!(
                out,
                "    CodeDoc {{ code: {code:?}, name: {name:?}, doc: {:?} }},",
                doc.join(" ")
            );
            count += 1;
        }
        doc.clear();
    }
    if count == 0 {
        fail("no `pub const NAME: &str = \"KAPL....\";` found in src/lib.rs");
    }
    out.push(']');
    let out_dir = std::env::var("OUT_DIR").unwrap_or_else(|_| ".".to_string());
    let dest = Path::new(&out_dir).join("docs.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        fail(&format!("cannot write {}: {e}", dest.display()));
    }
}

/// `pub const NAME: &str = "KAPL0101";` as (`NAME`, `KAPL0101`).
fn constant(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("pub const ")?;
    let (name, rest) = rest.split_once(": &str = \"")?;
    let code = rest.strip_suffix("\";")?;
    code.starts_with("KAPL").then_some((name, code))
}

/// Stops the build: a registry without its table would leave SARIF rules
/// and the book without descriptions.
fn fail(why: &str) -> ! {
    eprintln!("kapl-codes build script: {why}");
    std::process::exit(1)
}
