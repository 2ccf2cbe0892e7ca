//! The book says only what the toolchain does: its KAPL snippets parse, its
//! glob table agrees with the reference matcher, and the graph it shows is
//! what `kaplc graph` prints; the codes page's table is the registry
//! (`kapl_codes::DOCS`, the doc comments of `kapl-codes/src/lib.rs`).

#![allow(clippy::panic, reason = "tests fail loudly")]

use kapl_syntax::{FileId, Span};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn book_pages() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![root().join("book/src")];
    while let Some(d) = dirs.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                let text =
                    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                out.push((p.display().to_string(), text));
            }
        }
    }
    out.sort();
    out
}

/// Fenced blocks of a language in a markdown text.
fn blocks<'a>(text: &'a str, lang: &str) -> Vec<&'a str> {
    let open = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&open) {
        let body = &rest[i + open.len()..];
        let Some(j) = body.find("\n```") else { break };
        out.push(&body[..j + 1]);
        rest = &body[j + 4..];
    }
    out
}

fn parses(text: &str) -> bool {
    !kapl_syntax::parse(FileId(0), text)
        .diagnostics
        .iter()
        .any(|d| d.is_error())
}

#[test]
fn every_kapl_snippet_parses() {
    let mut bad = Vec::new();
    let mut count = 0;
    for (page, text) in book_pages() {
        for block in blocks(&text, "kapl") {
            if block.starts_with("{{#include") {
                continue; // a file of the repository, checked by its own tests
            }
            count += 1;
            // A snippet is a whole file, a list of rules, or plan members.
            let ok = parses(block)
                || parses(&format!("objective o {{ bound {{\n{block}\n}} }}"))
                || parses(&format!("plan p under o {{\n{block}\n}}"));
            if !ok {
                bad.push(format!("{page}:\n{block}"));
            }
        }
    }
    assert!(
        count >= 5,
        "expected KAPL snippets in the book, found {count}"
    );
    assert!(
        bad.is_empty(),
        "snippets that do not parse:\n{}",
        bad.join("\n---\n")
    );
}

/// Splits a table cell like `` `/a`, `/b` `` into the paths.
fn cell_paths(cell: &str) -> Vec<String> {
    cell.split(',')
        .map(|s| s.trim().trim_matches('`').to_string())
        .filter(|s| !s.is_empty() && s != "everything else")
        .collect()
}

#[test]
fn glob_examples_agree_with_the_reference_matcher() {
    let text = read("book/src/reference/globs.md");
    let mut rows = 0;
    for line in text.lines() {
        let cells: Vec<&str> = line.split(" | ").collect();
        let Some(first) = cells.first() else { continue };
        let Some(pat) = first
            .strip_prefix("| `\"")
            .and_then(|p| p.strip_suffix("\"`"))
        else {
            continue;
        };
        if cells.len() < 3 {
            continue;
        }
        rows += 1;
        let span = Span::new(FileId(0), 0, pat.len());
        let glob = kapl_syntax::glob::parse_glob(pat, span)
            .unwrap_or_else(|d| panic!("book pattern {pat:?} is invalid: {d:?}"));
        for m in cell_paths(cells[1]) {
            assert!(
                glob.matches(m.as_bytes()),
                "book says {pat:?} matches {m:?}"
            );
        }
        let last = cells[2].trim_end_matches(" |").trim_end_matches('|');
        for n in cell_paths(last) {
            assert!(
                !glob.matches(n.as_bytes()),
                "book says {pat:?} does not match {n:?}"
            );
        }
    }
    assert!(rows >= 8, "expected the examples table, found {rows} rows");
}

#[test]
fn the_graph_in_the_book_is_what_kaplc_prints() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kaplc"))
        .args([
            "graph",
            "tests/examples/deploy.kapl",
            "--plan",
            "investigate",
        ])
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("run kaplc: {e}"));
    assert_eq!(out.status.code(), Some(0));
    let have = read("book/src/img/deploy-investigate.dot");
    assert!(
        have.as_bytes() == out.stdout.as_slice(),
        "book/src/img/deploy-investigate.dot is stale; regenerate it and its SVG:\n  \
         kaplc graph tests/examples/deploy.kapl --plan investigate > book/src/img/deploy-investigate.dot\n  \
         dot -Tsvg book/src/img/deploy-investigate.dot > book/src/img/deploy-investigate.svg"
    );
}

#[test]
fn every_code_the_book_names_exists() {
    let codes = read("kapl-codes/src/lib.rs");
    let mut missing = Vec::new();
    for (page, text) in book_pages() {
        let bytes = text.as_bytes();
        for (i, _) in text.match_indices("KAPL") {
            let digits = &bytes[i + 4..(i + 8).min(bytes.len())];
            if digits.len() == 4 && digits.iter().all(u8::is_ascii_digit) {
                let code = &text[i..i + 8];
                if !codes.contains(&format!("\"{code}\"")) {
                    missing.push(format!("{page}: {code}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "codes named in the book but not in codes.rs: {missing:?}"
    );
}

/// The codes page's table, generated from the registry (`kapl_codes::DOCS`):
/// one row per code with the anchor SARIF `helpUri`s point at.
fn codes_table() -> String {
    let mut docs: Vec<_> = kapl_syntax::codes::DOCS.to_vec();
    docs.sort_by_key(|d| d.code);
    let mut out = String::from("| code | constant | meaning |\n|---|---|---|\n");
    for d in docs {
        out.push_str(&format!(
            "| <a id=\"{}\"></a>`{}` | `{}` | {} |\n",
            d.anchor(),
            d.code,
            d.name,
            d.doc.replace('|', "\\|")
        ));
    }
    out
}

#[test]
fn the_codes_page_lists_every_code_with_its_anchor() {
    const BEGIN: &str = "<!-- codes:begin -->\n";
    const END: &str = "<!-- codes:end -->";
    let path = root().join("book/src/codes.md");
    let page = read("book/src/codes.md");
    let (Some(b), Some(e)) = (page.find(BEGIN), page.find(END)) else {
        panic!("book/src/codes.md lacks the {BEGIN:?} … {END:?} markers");
    };
    let want = codes_table();
    let have = &page[b + BEGIN.len()..e];
    if have == want {
        return;
    }
    if std::env::var_os("KAPL_UPDATE_BOOK").is_some() {
        let new = format!("{}{want}{}", &page[..b + BEGIN.len()], &page[e..]);
        std::fs::write(&path, new).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    panic!(
        "book/src/codes.md's table is stale; regenerate it from kapl-codes/src/lib.rs:\n  \
         KAPL_UPDATE_BOOK=1 cargo test -p kaplc --test book the_codes_page"
    );
}
