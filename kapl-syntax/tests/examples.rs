//! Parses every shared example and checks exactly the syntax-level
//! diagnostics its header promises.
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::unwrap_used,
    reason = "tests fail by panicking"
)]

use kapl_syntax::ast::{Item, RuleKind};
use kapl_syntax::{Diagnostic, FileId, Origin, SourceMap, codes, parse};

struct Case {
    map: SourceMap,
    diags: Vec<Diagnostic>,
    file: kapl_syntax::ast::File,
}

fn load(name: &str, text: &str) -> Case {
    let mut map = SourceMap::new();
    let id = map.add(Origin::Virtual(name.to_string()), text.to_string());
    assert_eq!(id, FileId(0));
    let parsed = parse(id, text);
    Case {
        map,
        diags: parsed.diagnostics,
        file: parsed.file,
    }
}

/// (code, underlined text, line, column) of every diagnostic.
fn summary(c: &Case) -> Vec<(&'static str, String, u32, u32)> {
    c.diags
        .iter()
        .map(|d| {
            let s = d.primary_span().expect("primary label");
            let (line, col) = c.map.get(s.file).expect("file").line_col(s.start);
            (d.code, c.map.snippet(s).to_string(), line, col)
        })
        .collect()
}

#[test]
fn deploy_is_clean() {
    let c = load(
        "deploy.kapl",
        include_str!("../../tests/examples/deploy.kapl"),
    );
    assert_eq!(summary(&c), []);
    assert_eq!(c.file.items.len(), 5);
    let Item::Plan(p) = &c.file.items[3] else {
        panic!("plan")
    };
    assert_eq!(p.name.name, "investigate");
    assert_eq!(p.steps.len(), 2);
    assert_eq!(p.steps[1].after[0].name, "read_logs");
    let RuleKind::Fs {
        rights,
        patterns,
        except,
    } = &p.steps[1].grants[0].rule.kind
    else {
        panic!("fs rule")
    };
    assert_eq!(rights.len(), 1);
    assert_eq!(patterns.len(), 3);
    assert_eq!(except.len(), 1);
    assert!(except[0].glob.matches(b"/srv/web/a/b/.env"));
    assert!(c.file.comments.len() >= 5);
}

#[test]
fn upgrade_deps_is_clean() {
    let c = load(
        "upgrade-deps.kapl",
        include_str!("../../tests/examples/upgrade-deps.kapl"),
    );
    assert_eq!(summary(&c), []);
    assert_eq!(c.file.items.len(), 5);
}

#[test]
fn overreach_parses_clean() {
    let c = load(
        "overreach.kapl",
        include_str!("../../tests/examples/overreach.kapl"),
    );
    assert_eq!(summary(&c), []);
    assert_eq!(c.file.items.len(), 4);
}

#[test]
fn bad_syntax_has_its_one_parse_error() {
    let c = load(
        "bad-syntax.kapl",
        include_str!("../../tests/examples/bad-syntax.kapl"),
    );
    let s = summary(&c);
    assert_eq!(
        s,
        [(codes::UNEXPECTED_TOKEN, "\"/a/b\"".to_string(), 9, 20)]
    );
    let d = &c.diags[0];
    assert_eq!(
        d.message,
        "expected one of `create`, `delete`, `read`, `write`, found string `\"/a/b\"`"
    );
    assert!(
        d.help
            .as_deref()
            .is_some_and(|h| h.contains("remove the `,`"))
    );
}

#[test]
fn names_has_only_its_literal_errors() {
    let c = load(
        "names.kapl",
        include_str!("../../tests/examples/names.kapl"),
    );
    let s = summary(&c);
    let got: Vec<(&str, &str, u32)> = s.iter().map(|(c, t, l, _)| (*c, t.as_str(), *l)).collect();
    assert_eq!(
        got,
        [
            (codes::ADDR_INVALID, "300", 15),
            (codes::PORT_OUT_OF_RANGE, "70000", 15),
            (codes::GLOB_NOT_NORMALIZED, "..", 21),
            (codes::GLOB_NOT_ABSOLUTE, "srv/web", 25),
        ]
    );
    // Everything else is kept: the rules stay, without the bad literals.
    assert_eq!(c.file.items.len(), 5);
    let Item::Objective(o) = &c.file.items[2] else {
        panic!("objective")
    };
    let RuleKind::Net { addrs, ports, .. } = &o.bound[0].rules[1].kind else {
        panic!("net rule")
    };
    assert!(addrs.is_empty() && ports.is_empty());
}
