//! Parser and literal diagnostics, asserted on the underlined text.
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::unwrap_used,
    reason = "tests fail by panicking"
)]

use kapl_syntax::ast::{AddrKind, Item, RuleKind, UseTarget};
use kapl_syntax::{FileId, Parsed, codes, parse};
use std::net::IpAddr;

/// (code, underlined text) of every diagnostic.
fn diags(text: &str) -> Vec<(&'static str, String)> {
    let p = parse(FileId(0), text);
    p.diagnostics
        .iter()
        .map(|d| {
            let s = d.primary_span().unwrap();
            (d.code, text[s.range()].to_string())
        })
        .collect()
}

fn messages(text: &str) -> Vec<String> {
    parse(FileId(0), text)
        .diagnostics
        .into_iter()
        .map(|d| d.message)
        .collect()
}

fn clean(text: &str) -> Parsed {
    let p = parse(FileId(0), text);
    assert!(p.diagnostics.is_empty(), "{text}: {:#?}", p.diagnostics);
    p
}

fn bound_rules(text: &str) -> Vec<RuleKind> {
    let p = parse(FileId(0), &format!("objective o {{ bound {{ {text} }} }}"));
    let Some(Item::Objective(o)) = p.file.items.first() else {
        panic!("no objective")
    };
    o.bound[0].rules.iter().map(|r| r.kind.clone()).collect()
}

fn rule_diags(text: &str) -> Vec<(&'static str, String)> {
    diags(&format!("objective o {{ bound {{ {text} }} }}"))
}

#[test]
fn every_item_kind() {
    let p = clean(
        "use std.runtime\nuse \"./shared.kapl\"\nauthority a { fs read \"/a\" }\n\
         objective o { about \"x\" bound { use a } never { exec \"/b\" } }\n\
         intent i under o { bound { net bind localhost port 8000-8099, 9000 } }\n\
         plan p under std.runtime.x { about \"q\" grant use runtime.loader step s after t, u { grant fs delete \"/\" } }",
    );
    let items = &p.file.items;
    assert_eq!(items.len(), 6);
    let Item::Use(u) = &items[0] else { panic!() };
    let UseTarget::Module(q) = &u.target else {
        panic!()
    };
    assert_eq!(q.dotted(), "std.runtime");
    let Item::Use(u) = &items[1] else { panic!() };
    let UseTarget::File(f) = &u.target else {
        panic!()
    };
    assert_eq!(f.value, "./shared.kapl");
    let Item::Plan(pl) = &items[5] else { panic!() };
    assert_eq!(pl.under.dotted(), "std.runtime.x");
    assert_eq!(pl.grants.len(), 1);
    let names: Vec<&str> = pl.steps[0].after.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["t", "u"]);
}

#[test]
fn addresses_and_ports() {
    let rules = bound_rules(
        "net connect 10.20.0.0/16, ::1, fe80::1, 2001:db8::10/64, ::ffff:1.2.3.4, any, localhost, ::/0 port any, 22, 8000-8099",
    );
    let RuleKind::Net { addrs, ports, .. } = &rules[0] else {
        panic!()
    };
    let kinds: Vec<String> = addrs
        .iter()
        .map(|a| match a.kind {
            AddrKind::Cidr { addr, prefix } => format!("{addr}/{prefix}"),
            AddrKind::Any => "any".to_string(),
            AddrKind::Localhost => "localhost".to_string(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "10.20.0.0/16",
            "::1/128",
            "fe80::1/128",
            "2001:db8::10/64",
            "::ffff:1.2.3.4/128",
            "any",
            "localhost",
            "::/0"
        ]
    );
    let AddrKind::Cidr {
        addr: IpAddr::V4(_),
        prefix: 32,
    } = bound_rules("net bind 1.2.3.4 port 1")[0]
        .clone()
        .net_addr0()
    else {
        panic!()
    };
    let p: Vec<(u16, u16)> = ports.iter().map(|p| (p.lo, p.hi)).collect();
    assert_eq!(p, [(0, 65535), (22, 22), (8000, 8099)]);
}

trait NetAddr0 {
    fn net_addr0(self) -> AddrKind;
}
impl NetAddr0 for RuleKind {
    fn net_addr0(self) -> AddrKind {
        match self {
            RuleKind::Net { addrs, .. } => addrs[0].kind,
            _ => panic!("not net"),
        }
    }
}

#[test]
fn address_errors() {
    assert_eq!(
        rule_diags("net connect 10.0.0.300/8 port 1"),
        [(codes::ADDR_INVALID, "300".to_string())]
    );
    assert_eq!(
        rule_diags("net connect 10.0.0.0/33 port 1"),
        [(codes::ADDR_BAD_PREFIX, "/33".to_string())]
    );
    assert_eq!(
        rule_diags("net connect ::1/129 port 1"),
        [(codes::ADDR_BAD_PREFIX, "/129".to_string())]
    );
    assert_eq!(rule_diags("net connect ::1/128 port 1"), []);
    assert_eq!(
        rule_diags("net connect 10.0.0.0/ port 1"),
        [(codes::ADDR_BAD_PREFIX, "/".to_string())]
    );
    assert_eq!(
        rule_diags("net connect 10.0.0 port 1"),
        [(codes::ADDR_INVALID, "10.0.0".to_string())]
    );
    assert_eq!(
        rule_diags("net connect 10 port 1"),
        [(codes::ADDR_INVALID, "10".to_string())]
    );
    assert_eq!(
        rule_diags("net connect 10.0.0.01 port 1"),
        [(codes::ADDR_INVALID, "01".to_string())]
    );
    assert_eq!(
        rule_diags("net connect 2001:db8:::1 port 1"),
        [(codes::ADDR_INVALID, "2001:db8:::1".to_string())]
    );
    assert_eq!(
        rule_diags("net connect fe80::1::2/10 port 1"),
        [(codes::ADDR_INVALID, "fe80::1::2".to_string())]
    );
    assert_eq!(
        messages("objective o { bound { net connect 10.0.0.300/8 port 1 } }"),
        ["invalid address `10.0.0.300/8`"]
    );
    // The rule stays, without the bad address.
    let r = bound_rules("net connect 10.0.0.300/8, 10.0.0.1 port 1");
    let RuleKind::Net { addrs, .. } = &r[0] else {
        panic!()
    };
    assert_eq!(addrs.len(), 1);
}

#[test]
fn port_errors() {
    assert_eq!(
        rule_diags("net connect any port 70000"),
        [(codes::PORT_OUT_OF_RANGE, "70000".to_string())]
    );
    assert_eq!(rule_diags("net connect any port 65535, 0"), []);
    assert_eq!(
        rule_diags("net connect any port 65536"),
        [(codes::PORT_OUT_OF_RANGE, "65536".to_string())]
    );
    assert_eq!(
        rule_diags("net connect any port 9000-8000"),
        [(codes::PORT_REVERSED_RANGE, "9000-8000".to_string())]
    );
    assert_eq!(
        rule_diags("net connect any port 1-70000"),
        [(codes::PORT_OUT_OF_RANGE, "70000".to_string())]
    );
    assert_eq!(
        rule_diags("net connect any port 443abc"),
        [(codes::PORT_OUT_OF_RANGE, "443abc".to_string())]
    );
    let big = "9".repeat(5000);
    assert_eq!(
        rule_diags(&format!("net connect any port {big}")),
        [(codes::PORT_OUT_OF_RANGE, big)]
    );
    assert_eq!(
        messages("objective o { bound { net connect any port 70000 } }"),
        ["port `70000` is out of range"]
    );
}

#[test]
fn pattern_errors_point_inside_the_string() {
    assert_eq!(
        rule_diags(r#"fs read "/srv/../etc""#),
        [(codes::GLOB_NOT_NORMALIZED, "..".to_string())]
    );
    assert_eq!(
        rule_diags(r#"fs read "srv/web""#),
        [(codes::GLOB_NOT_ABSOLUTE, "srv/web".to_string())]
    );
    assert_eq!(
        rule_diags(r#"exec "/a/[z-a]""#),
        [(codes::GLOB_REVERSED_RANGE, "z-a".to_string())]
    );
    assert_eq!(
        rule_diags(r#"fs read "/a" except "/a/{b""#),
        [(codes::GLOB_UNBALANCED_BRACE, "{".to_string())]
    );
    // Escapes keep positions right.
    assert_eq!(
        rule_diags(r#"fs read "/\*\?/..""#),
        [(codes::GLOB_NOT_NORMALIZED, "..".to_string())]
    );
    // Bad patterns are left out; good ones stay.
    let r = bound_rules(r#"fs read "/ok", "bad", "/also/ok" except "x""#);
    let RuleKind::Fs {
        patterns, except, ..
    } = &r[0]
    else {
        panic!()
    };
    let srcs: Vec<&str> = patterns.iter().map(|p| &*p.source).collect();
    assert_eq!(srcs, ["/ok", "/also/ok"]);
    assert!(except.is_empty());
}

#[test]
fn strings() {
    let p = clean(r#"objective o { about "say \"hi\" \\ ok" bound { } }"#);
    let Item::Objective(o) = &p.file.items[0] else {
        panic!()
    };
    assert_eq!(o.about[0].value, r#"say "hi" \ ok"#);
    assert_eq!(
        diags(r#"objective o { about "a\nb" bound { } }"#),
        [(codes::INVALID_ESCAPE, r"\n".to_string())]
    );
    assert_eq!(
        diags("objective o { about \"never closed\n bound { } }"),
        [(codes::UNTERMINATED_STRING, "\"never closed".to_string())]
    );
}

#[test]
fn parse_errors_say_what_was_found_and_expected() {
    assert_eq!(
        messages("objective o { bound { fs \"/a\" } }"),
        ["expected one of `create`, `delete`, `read`, `write`, found string `\"/a\"`"]
    );
    assert_eq!(
        messages("objective o { bound { fs read } }"),
        ["expected `,` or a string, found `}`"]
    );
    assert_eq!(
        messages("objectiv o {}"),
        [
            "expected one of `authority`, `intent`, `objective`, `param`, `plan`, `use`, found name `objectiv`"
        ]
    );
    assert_eq!(
        messages("plan p under o { step read { } }"),
        ["expected a name, found keyword `read`"]
    );
    assert_eq!(
        messages("objective o { bound { net connect any } }"),
        ["expected `,` or `port`, found `}`"]
    );
    assert_eq!(messages("intent i { }"), ["expected `under`, found `{`"]);
    let p = parse(FileId(0), "intent i { }");
    assert!(
        p.diagnostics[0]
            .help
            .as_deref()
            .unwrap()
            .contains("under OBJECTIVE")
    );
    let p = parse(FileId(0), "plan p under o { step read { } }");
    assert!(
        p.diagnostics[0]
            .help
            .as_deref()
            .unwrap()
            .contains("keyword")
    );
    assert_eq!(
        diags("objective o { bound { fs read /a/b } }"),
        [
            (codes::UNEXPECTED_CHAR, "/".to_string()),
            (codes::UNEXPECTED_TOKEN, "a".to_string()),
            (codes::UNEXPECTED_CHAR, "/".to_string()),
        ]
    );
}

#[test]
fn end_of_file() {
    assert_eq!(
        diags("objective o { bound { fs read \"/a\""),
        [(codes::UNEXPECTED_EOF, "\"/a\"".to_string())]
    );
    assert_eq!(
        messages("plan p under"),
        ["unexpected end of file, expected a name"]
    );
    assert_eq!(clean("").file.items.len(), 0);
    assert_eq!(clean("  // only a comment\n").file.comments.len(), 1);
}

#[test]
fn recovery_keeps_going_and_keeps_the_rest() {
    let text = "authority a { fs read \"/a\" fs bogus \"/b\" exec \"/c\" }\n\
                objective o { bound { fs read \"/x\" } junk never { net bind any port 1 } }\n\
                plan p under o {\n  step s { grant fs read, \"/a\" grant exec \"/b\" }\n  oops\n  step t { }\n}\n\
                authority z { }";
    let d = diags(text);
    let codes_found: Vec<&str> = d.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes_found, [codes::UNEXPECTED_TOKEN; 4], "{d:?}");
    let texts: Vec<&str> = d.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["bogus", "junk", "\"/a\"", "oops"]);
    let p = parse(FileId(0), text);
    assert_eq!(p.file.items.len(), 4);
    let Item::Authority(a) = &p.file.items[0] else {
        panic!()
    };
    assert_eq!(a.rules.len(), 2);
    let Item::Objective(o) = &p.file.items[1] else {
        panic!()
    };
    assert_eq!((o.bound.len(), o.never.len()), (1, 1));
    let Item::Plan(pl) = &p.file.items[2] else {
        panic!()
    };
    assert_eq!(pl.steps.len(), 2);
    assert_eq!(pl.steps[0].grants.len(), 1);
}

#[test]
fn crlf_and_bom_parse_like_lf() {
    let lf = include_str!("../../tests/examples/deploy.kapl");
    let crlf = lf.replace('\n', "\r\n");
    let bom = format!("\u{feff}{lf}");
    let a = clean(lf);
    let b = clean(&crlf);
    let c = clean(&bom);
    assert_eq!(a.file.items.len(), b.file.items.len());
    assert_eq!(a.file.items.len(), c.file.items.len());
    assert!(b.file.comments.iter().all(|c| !c.text.ends_with('\r')));
}

#[test]
fn hostile_inputs() {
    // 50,000 nested braces.
    let deep = format!("objective o {{ bound {}", "{".repeat(50_000));
    let p = parse(FileId(0), &deep);
    assert!(p.has_errors());
    let deep = format!("{}{}", "{".repeat(50_000), "}".repeat(50_000));
    assert!(parse(FileId(0), &deep).has_errors());
    // A 200,000-character identifier.
    let long = format!("authority {} {{ }}", "x".repeat(200_000));
    let p = clean(&long);
    let Item::Authority(a) = &p.file.items[0] else {
        panic!()
    };
    assert_eq!(a.name.name.len(), 200_000);
    let long = format!("{} {{ }}", "x".repeat(200_000));
    let m = messages(&long);
    assert!(m[0].len() < 200, "{}", m[0]);
    // NUL bytes.
    let d = diags("objective\0 o { bound { fs read \"/a\0\" } }");
    assert_eq!(
        d,
        [
            (codes::NUL_BYTE, "\0".to_string()),
            (codes::NUL_BYTE, "\0".to_string()),
            (codes::GLOB_NUL, "\0".to_string()),
        ]
    );
    // Garbage everywhere: many errors, capped.
    let junk = "#$%^&;~`".repeat(10_000);
    let p = parse(FileId(0), &junk);
    assert_eq!(p.diagnostics.len(), 1);
    let junk = "} ".repeat(10_000);
    assert_eq!(diags(&junk).len(), 1);
    let junk = "objective { }\n".repeat(1_000);
    let p = parse(FileId(0), &junk);
    assert_eq!(p.diagnostics.len(), kapl_syntax::parser::MAX_ERRORS + 1);
    assert_eq!(p.diagnostics.last().unwrap().code, codes::TOO_MANY_ERRORS);
}

#[test]
fn ten_megabytes() {
    let unit = include_str!("../../tests/examples/upgrade-deps.kapl");
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 10 << 20 {
        text.push_str(&unit.replace(
            "authority project_tree",
            &format!("authority project_tree{i}"),
        ));
        i += 1;
    }
    let p = parse(FileId(0), &text);
    assert!(p.diagnostics.is_empty());
    assert_eq!(p.file.items.len(), 5 * i);
}

#[test]
fn missing_close_brace() {
    let t = "objective o {\n  bound { fs read \"/a\"\n}\nplan p under o { step s { } }\n";
    assert_eq!(diags(t), [(codes::UNEXPECTED_TOKEN, "plan".to_string())]);
    let p = parse(FileId(0), t);
    assert!(
        p.diagnostics[0]
            .help
            .as_deref()
            .unwrap()
            .contains("`}` is probably missing")
    );
    // The next item is parsed normally.
    assert!(matches!(p.file.items.last(), Some(Item::Plan(_))));
}

#[test]
fn recovery_keeps_braces_balanced() {
    // A misspelled item keyword: one error, the next item is intact.
    let t = "objectiv o { about \"x\" bound { fs read \"/a\" } step s { } }\nauthority a { exec \"/b\" }";
    assert_eq!(
        diags(t),
        [(codes::UNEXPECTED_TOKEN, "objectiv".to_string())]
    );
    assert_eq!(parse(FileId(0), t).file.items.len(), 1);
    // Junk followed by a block inside a body.
    let t = "objective o { bound { fs read \"/a\" } junk { exec \"/x\" } never { exec \"/b\" } }";
    assert_eq!(diags(t), [(codes::UNEXPECTED_TOKEN, "junk".to_string())]);
    let p = parse(FileId(0), t);
    let Item::Objective(o) = &p.file.items[0] else {
        panic!()
    };
    assert_eq!((o.bound.len(), o.never.len()), (1, 1));
    // A broken header: the body is still parsed (and checked), then dropped.
    let t = "plan p under { step s { grant exec \"/a\" } }\nauthority a { }";
    assert_eq!(diags(t), [(codes::UNEXPECTED_TOKEN, "{".to_string())]);
    assert_eq!(parse(FileId(0), t).file.items.len(), 1);
    let t = "plan p under o { step s after { grant exec \"bad\" } step t { } }";
    assert_eq!(
        diags(t),
        [
            (codes::UNEXPECTED_TOKEN, "{".to_string()),
            (codes::GLOB_NOT_ABSOLUTE, "bad".to_string())
        ]
    );
    let p = parse(FileId(0), t);
    let Item::Plan(pl) = &p.file.items[0] else {
        panic!()
    };
    assert_eq!(pl.steps.len(), 1);
    // A stray block inside a rule list.
    let t = "authority a { fs read \"/a\" { exec \"/b\" } exec \"/c\" }";
    assert_eq!(diags(t), [(codes::UNEXPECTED_TOKEN, "{".to_string())]);
}

#[test]
fn brace_expansion_is_bounded_per_file() {
    use kapl_syntax::parser::MAX_ERRORS;
    // Each pattern is within its own limits (1024 branches), but together
    // they would expand a 2 MB file into gigabytes.
    // About 1 MB each once expanded: one fits, the rest are refused
    // before being expanded.
    let pat = format!("\"/{}{}\"", "x".repeat(900), "/{a,b}".repeat(10));
    let rule = format!("fs read {pat}\n");
    let text = format!("authority a {{\n{}}}", rule.repeat(2_000));
    let d = parse(FileId(0), &text).diagnostics;
    assert_eq!(d[0].code, codes::GLOB_TOO_LARGE);
    assert_eq!(d[0].message, "patterns in this file expand to too much");
    assert_eq!(d.len(), MAX_ERRORS + 1);
    assert!(
        parse(FileId(0), &format!("authority a {{\n{rule}}}"))
            .diagnostics
            .is_empty()
    );
}

#[test]
fn error_bombs_stay_bounded() {
    use kapl_syntax::parser::MAX_ERRORS;
    // Millions of would-be errors: lexical, syntax, literal.
    for unit in ["# a ", "fs ", "\"rel\", ", "} x { "] {
        let body = unit.repeat((4 << 20) / unit.len());
        let text = format!("authority a {{ fs read {body} }}");
        let start = std::time::Instant::now();
        let p = parse(FileId(0), &text);
        assert_eq!(p.diagnostics.len(), MAX_ERRORS + 1, "{unit}");
        assert_eq!(p.diagnostics.last().unwrap().code, codes::TOO_MANY_ERRORS);
        // Generous even for an unoptimized build; a blow-up would take minutes.
        assert!(
            start.elapsed().as_secs() < 20,
            "{unit}: {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn params_are_declared_with_an_optional_default() {
    let p = clean(
        "param proj\nparam home = \"/home/dev\"\nobjective o { bound { fs read \"${proj}/**\", \"{${home},/srv}/x\" } }",
    );
    let names: Vec<(String, Option<String>)> = p
        .file
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Param(d) => Some((
                d.name.name.clone(),
                d.default.as_ref().map(|s| s.value.clone()),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        [
            ("proj".to_string(), None),
            ("home".to_string(), Some("/home/dev".to_string()))
        ]
    );
    let Some(Item::Objective(o)) = p.file.items.get(2) else {
        panic!("no objective")
    };
    let RuleKind::Fs { patterns, .. } = &o.bound[0].rules[0].kind else {
        panic!("not fs")
    };
    let refs: Vec<Vec<&str>> = patterns
        .iter()
        .map(|p| p.params.iter().map(|r| r.name.as_str()).collect())
        .collect();
    assert_eq!(refs, [vec!["proj"], vec!["home"]]);
    // `param` is a keyword now.
    assert_eq!(diags("authority param { }")[0].0, codes::UNEXPECTED_TOKEN);
}

#[test]
fn parameter_references_are_checked_in_patterns() {
    assert_eq!(
        rule_diags("fs read \"$PROJ/**\""),
        [(codes::PARAM_BAD_REFERENCE, "$PROJ".to_string())]
    );
    assert_eq!(
        rule_diags("fs read \"/home/dev/$PROJ/**\""),
        [(codes::PARAM_BAD_REFERENCE, "$PROJ".to_string())]
    );
    assert_eq!(
        rule_diags("fs read \"/home/${p}\""),
        [(codes::PARAM_BAD_REFERENCE, "${p}".to_string())]
    );
    // Errors elsewhere in a pattern with a reference point at the source.
    assert_eq!(
        rule_diags("fs read \"${p}/[z-a]\""),
        [(codes::GLOB_REVERSED_RANGE, "z-a".to_string())]
    );
    // A literal dollar is escaped.
    assert!(rule_diags("fs read \"/a/\\$PROJ\", \"/a$\"").is_empty());
    // Relative patterns point at parameters.
    let help = |t: &str| {
        parse(
            FileId(0),
            &format!("objective o {{ bound {{ fs read \"{t}\" }} }}"),
        )
        .diagnostics
        .into_iter()
        .filter_map(|d| d.help)
        .collect::<Vec<_>>()
    };
    for t in ["./**", "~/proj/**", "proj/**"] {
        let h = help(t);
        assert!(h.iter().any(|h| h.contains("param ")), "{t}: {h:?}");
        assert!(
            !h.iter().any(|h| h.contains("`/.") || h.contains("`/~")),
            "{t}: {h:?}"
        );
    }
}

#[test]
fn host_names_in_net_rules() {
    let rules = bound_rules(r#"net connect "PyPI.org.", 10.0.0.1, "*.pythonhosted.org" port 443"#);
    let RuleKind::Net { addrs, names, .. } = &rules[0] else {
        panic!()
    };
    assert_eq!(addrs.len(), 1);
    let n: Vec<&str> = names.iter().map(|n| n.pattern.as_str()).collect();
    assert_eq!(n, ["pypi.org", "*.pythonhosted.org"]);
}
