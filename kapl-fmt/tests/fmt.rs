//! Formatter properties: idempotent, tree-preserving, comment-preserving;
//! on random policies, on the shared examples and on fixed layouts.

#![allow(clippy::panic, reason = "tests fail loudly")]

mod common;

use common::{Gen, comment_texts, parse_clean, shape};
use kapl_fmt::{MAX_WIDTH, format_source};
use kapl_syntax::FileId;
use proptest::prelude::*;
use std::path::Path;

fn fmt(text: &str) -> String {
    match format_source(FileId(0), text) {
        Ok(s) => s,
        Err(d) => panic!("formatter refused valid text: {d:?}\n{text}"),
    }
}

/// Everything the formatter promises, for one valid input.
fn check_properties(input: &str) {
    let before = parse_clean(input);
    let once = fmt(input);
    let after = parse_clean(&once);
    assert_eq!(
        shape(&before),
        shape(&after),
        "tree changed:\n{input}\n---\n{once}"
    );
    assert_eq!(
        comment_texts(&before),
        comment_texts(&after),
        "comments changed:\n{input}\n---\n{once}"
    );
    let twice = fmt(&once);
    assert_eq!(once, twice, "not idempotent:\n{input}\n---\n{once}");
    assert!(once.ends_with('\n') || once.is_empty());
    assert!(!once.contains("\n\n\n"), "double blank line:\n{once}");
    for line in once.lines() {
        assert_eq!(line, line.trim_end(), "trailing blanks:\n{once}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn random_policies(seed in any::<u64>()) {
        let text = Gen::new(seed).policy();
        check_properties(&text);
    }
}

fn examples() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/examples");
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "kapl") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path.display().to_string(), text));
        }
    }
    out.sort();
    assert!(
        out.len() >= 5,
        "expected the shared examples in {}",
        dir.display()
    );
    out
}

#[test]
fn examples_format_or_are_refused() {
    for (name, text) in examples() {
        let parsed = kapl_syntax::parse(FileId(0), &text);
        let has_errors = parsed.diagnostics.iter().any(|d| d.is_error());
        match format_source(FileId(0), &text) {
            Ok(_) if has_errors => panic!("{name}: formatted despite parse errors"),
            Ok(_) => check_properties(&text),
            Err(diags) => {
                assert!(has_errors, "{name}: refused without parse errors");
                assert_eq!(
                    diags.len(),
                    parsed.diagnostics.len(),
                    "{name}: every diagnostic is returned"
                );
            }
        }
    }
}

#[test]
fn bad_syntax_example_is_refused() {
    let (_, text) = examples()
        .into_iter()
        .find(|(n, _)| n.ends_with("bad-syntax.kapl"))
        .unwrap_or_else(|| panic!("bad-syntax.kapl missing"));
    let Err(diags) = format_source(FileId(0), &text) else {
        panic!("bad-syntax.kapl was formatted");
    };
    assert!(diags.iter().any(|d| d.is_error()));
}

#[test]
fn deploy_example_is_canonical_but_for_one_continuation() {
    // The shared example is hand-written in nearly the canonical layout: the
    // formatter only re-indents the continuation line of its wrapped grant.
    let (_, text) = examples()
        .into_iter()
        .find(|(n, _)| n.ends_with("deploy.kapl"))
        .unwrap_or_else(|| panic!("deploy.kapl missing"));
    let out = fmt(&text);
    let expected = text.replace(
        "\"/srv/web/.git/**\"\n          except",
        "\"/srv/web/.git/**\"\n        except",
    );
    assert_eq!(out, expected);
}

#[test]
fn canonical_layout() {
    let input = "// head\n\n\nuse std.runtime\nuse \"./x.kapl\"\nauthority a { fs read \"/a/**\" } // end a\nobjective   o{about \"x\" bound{fs read,write \"/a\",\"/b\" except \"/a/c\"\n\n\nnet connect 10.0.0.1/32, ::ffff:1.2.3.4 port 0-65535, 22, 80-81}never{}}\n/* before p */\nplan p under o { grant use a\n step s1 { grant exec \"/bin/x\" /* why */ }\n step s2 after s1, s1 {\n // inside\n }\n}\n";
    let expected = "\
// head

use std.runtime
use \"./x.kapl\"

authority a {
  fs read \"/a/**\"
} // end a

objective o {
  about \"x\"
  bound {
    fs read, write \"/a\", \"/b\" except \"/a/c\"

    net connect 10.0.0.1, ::ffff:1.2.3.4 port any, 22, 80-81
  }
  never {}
}

/* before p */
plan p under o {
  grant use a
  step s1 {
    grant exec \"/bin/x\" /* why */
  }
  step s2 after s1, s1 {
    // inside
  }
}
";
    assert_eq!(fmt(input), expected);
    check_properties(input);
}

#[test]
fn comments_inside_a_rule_move_before_it() {
    let input = "objective o {\n  bound {\n    fs read /* r */ \"/a\",\n      // second\n      \"/b\"\n  }\n}\n";
    let expected = "objective o {\n  bound {\n    /* r */\n    // second\n    fs read \"/a\", \"/b\"\n  }\n}\n";
    assert_eq!(fmt(input), expected);
    check_properties(input);
}

#[test]
fn long_rules_wrap() {
    let long = "/srv/web/config/a/rather/long/path/to/the/configuration/directory/**";
    let input = format!(
        "plan p under o {{ step s {{ grant fs read \"{long}\", \"/srv/web/x/**\" except \"/srv/web/**/.env\" }} }}"
    );
    let out = fmt(&input);
    let expected = format!(
        "plan p under o {{\n  step s {{\n    grant fs read\n        \"{long}\",\n        \"/srv/web/x/**\"\n        except \"/srv/web/**/.env\"\n  }}\n}}\n"
    );
    assert_eq!(out, expected);
    for line in out.lines() {
        assert!(line.chars().count() <= MAX_WIDTH, "{line}");
    }
    check_properties(&input);

    let input = "objective o { bound { fs read \"/srv/web/src/**\", \"/srv/web/config/**\", \"/srv/web/.git/**\", \"/x/y\" except \"/srv/web/**/.env\" } }";
    let out = fmt(input);
    let expected = "objective o {\n  bound {\n    fs read \"/srv/web/src/**\", \"/srv/web/config/**\", \"/srv/web/.git/**\", \"/x/y\"\n        except \"/srv/web/**/.env\"\n  }\n}\n";
    assert_eq!(out, expected);
    check_properties(input);
}

#[test]
fn empty_and_comment_only_files() {
    assert_eq!(fmt(""), "");
    assert_eq!(fmt("\n\n  \n"), "");
    assert_eq!(fmt("// only\n\n\n/* two */"), "// only\n\n/* two */\n");
    check_properties("// only\n\n\n/* two */");
}

#[test]
fn crlf_line_ends_become_lf() {
    let input = "// c\r\nobjective o {\r\n  bound { fs read \"/a\" } // t\r\n}\r\n";
    let out = fmt(input);
    assert!(!out.contains('\r'), "{out:?}");
    assert_eq!(
        out,
        "// c\nobjective o {\n  bound {\n    fs read \"/a\"\n  } // t\n}\n"
    );
}

#[test]
fn blank_lines_follow_the_source_just_before_each_element() {
    // The header's comment moves inside; `about` on its own line keeps no
    // blank line; a comment moved out of a rule takes the rule's blank line.
    let input = "objective o { // c1\n  about\n    \"x\"\n  bound { fs read \"/a\"\n\n fs read /* c */ \"/b\"\n\n\n\n }\n}";
    let expected = "objective o {\n  // c1\n  about \"x\"\n  bound {\n    fs read \"/a\"\n\n    /* c */\n    fs read \"/b\"\n  }\n}\n";
    assert_eq!(fmt(input), expected);
    check_properties(input);
}

#[test]
fn truncated_examples_are_refused_or_formatted_faithfully() {
    for (_, text) in examples() {
        let mut cut = 0;
        while cut < text.len() {
            if text.is_char_boundary(cut) {
                let piece = &text[..cut];
                if format_source(FileId(0), piece).is_ok() {
                    check_properties(piece);
                }
            }
            cut += 5;
        }
    }
}

#[test]
fn params_are_formatted_and_round_trip() {
    let input = "param   proj\nparam home=\"/home/dev\"   // default\nuse std.runtime\nobjective o { bound { fs read \"${proj}/**\", \"{${home},/srv}/x\" } }\n";
    let once = fmt(input);
    assert_eq!(
        once,
        "param proj\nparam home = \"/home/dev\" // default\nuse std.runtime\n\nobjective o {\n  bound {\n    fs read \"${proj}/**\", \"{${home},/srv}/x\"\n  }\n}\n"
    );
    check_properties(input);
}

#[test]
fn host_names_keep_their_place_after_the_addresses() {
    let input = "objective o {\n  bound {\n    net connect   \"PyPI.org.\" ,10.0.0.1,\"*.pythonhosted.org\" port 443\n  }\n}\n";
    check_properties(input);
    assert_eq!(
        fmt(input),
        "objective o {\n  bound {\n    net connect 10.0.0.1, \"pypi.org\", \"*.pythonhosted.org\" port 443\n  }\n}\n"
    );
}
