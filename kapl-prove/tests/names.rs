//! Host-name containment: name grants against name bounds, against address
//! bounds, against `never` names, and `never` addresses subtracted from
//! what names admit. Assertions name codes, the underlined text and the
//! witness name.

#![allow(clippy::panic, reason = "tests fail by panicking")]

use kapl_check::{MemoryLoader, check_front};
use kapl_prove::prove_front_end;
use kapl_syntax::{Severity, Witness};

/// `(code, underlined grant text, witness name)` of every error.
fn errors(text: &str) -> Vec<(&'static str, String, Option<String>)> {
    let mut loader = MemoryLoader::new().with("t.kapl", text.to_string());
    let mut fe = check_front(&mut loader, "t.kapl");
    assert!(fe.policy.is_some(), "front end: {:#?}", fe.diagnostics);
    prove_front_end(&mut fe);
    let warnings: Vec<_> = fe
        .diagnostics
        .iter()
        // `::/N` blocks that hold the mapped IPv4 range are warned about.
        .filter(|d| d.severity == Severity::Warning && d.code != "KAPL0311")
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
    fe.diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let w = match &d.witness {
                Some(Witness::Name { name, .. }) => Some(name.clone()),
                _ => None,
            };
            (d.code, fe.sources.snippet(d.labels[0].span).to_string(), w)
        })
        .collect()
}

fn policy(bound: &str, never: &str, grant: &str) -> String {
    format!(
        "objective o {{\n  bound {{\n{bound}\n  }}\n  never {{\n{never}\n  }}\n}}\n\
         plan p under o {{\n  step s {{\n    grant {grant}\n  }}\n}}\n"
    )
}

#[test]
fn names_inside_name_bounds_prove() {
    for (bound, grant) in [
        (
            r#"net connect "**.org" port 443"#,
            r#"net connect "*.pythonhosted.org", "PyPI.org." port 443"#,
        ),
        (
            r#"net connect "*.org", "*.*.org" port any"#,
            r#"net connect "a.b.org", "pypi.org" port 443"#,
        ),
        (
            r#"net connect "pypi.org" port 1-1000"#,
            r#"net connect "pypi.org" port 80, 443"#,
        ),
        (
            r#"net connect any port 443"#,
            r#"net connect "**.example" port 443"#,
        ),
    ] {
        let e = errors(&policy(bound, "", grant));
        assert!(e.is_empty(), "{bound} / {grant}: {e:?}");
    }
}

#[test]
fn a_wider_name_is_refused_with_a_concrete_witness() {
    let e = errors(&policy(
        r#"net connect "files.pythonhosted.org" port 443"#,
        "",
        r#"net connect "*.pythonhosted.org" port 443"#,
    ));
    assert_eq!(
        e,
        vec![(
            "KAPL0402",
            r#"net connect "*.pythonhosted.org" port 443"#.to_string(),
            Some("x.pythonhosted.org".to_string())
        )]
    );
    // `**` is wider than `*`.
    let e = errors(&policy(
        r#"net connect "*.org" port 443"#,
        "",
        r#"net connect "**.org" port 443"#,
    ));
    assert_eq!(e[0].2.as_deref(), Some("x.x.org"));
    // The bound names the host for another port only.
    let e = errors(&policy(
        r#"net connect "pypi.org" port 80"#,
        "",
        r#"net connect "pypi.org" port 80, 443"#,
    ));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].0, "KAPL0402");
}

#[test]
fn address_bounds_cover_names_only_when_they_cover_every_admitted_address() {
    // IPv4 everywhere but not IPv6: a name may resolve to an IPv6 address.
    let e = errors(&policy(
        r#"net connect 0.0.0.0/0 port 443"#,
        "",
        r#"net connect "pypi.org" port 443"#,
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    // Every public address of both families (reserved ranges need no rule).
    let e = errors(&policy(
        "net connect 0.0.0.0/1, 128.0.0.0/1 port 443\n net connect 2000::/3 port 443\n net connect 4000::/2, 8000::/1 port 443\n net connect 0::/4 port 443\n net connect 1000::/4 port 443",
        "",
        r#"net connect "pypi.org" port 443"#,
    ));
    assert!(e.is_empty(), "{e:?}");
    // A bound missing a public block, but that block is a `never` range:
    // names never admit it, so the bound suffices.
    let e = errors(&policy(
        "net connect 0.0.0.0/1, 128.0.0.0/2, 192.0.0.0/3, 224.0.0.0/3 port 443\n net connect ::/0 port 443",
        "",
        r#"net connect "pypi.org" port 443"#,
    ));
    assert!(e.is_empty(), "224/3 is reserved (multicast, 240/4): {e:?}");
    let e = errors(&policy(
        "net connect 0.0.0.0/1 port 443\n net connect ::/0 port 443",
        "net connect 128.0.0.0/1 port any",
        r#"net connect "pypi.org" port 443"#,
    ));
    assert!(e.is_empty(), "the never range is subtracted: {e:?}");
}

#[test]
fn never_addresses_do_not_conflict_with_names_but_never_names_do() {
    let e = errors(&policy(
        r#"net connect "**.com" port 443"#,
        "net connect 169.254.0.0/16 port any",
        r#"net connect "**.com" port 443"#,
    ));
    assert!(e.is_empty(), "{e:?}");
    let e = errors(&policy(
        r#"net connect "**.com" port 443"#,
        r#"net connect "*.evil.com" port any"#,
        r#"net connect "**.com" port 443"#,
    ));
    assert_eq!(
        e,
        vec![(
            "KAPL0403",
            r#"net connect "**.com" port 443"#.to_string(),
            Some("x.evil.com".to_string())
        )]
    );
    // A `never` name on another port is not reached.
    let e = errors(&policy(
        r#"net connect "**.com" port 443"#,
        r#"net connect "*.evil.com" port 80"#,
        r#"net connect "**.com" port 443"#,
    ));
    assert!(e.is_empty(), "{e:?}");
}

#[test]
fn intent_bounds_with_names_lie_inside_the_objective() {
    let text = "objective o {\n  bound { net connect \"*.org\" port 443 }\n}\n\
                intent i under o {\n  bound { net connect \"**.org\" port 443 }\n}\n";
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "KAPL0401");
    assert_eq!(e[0].2.as_deref(), Some("x.x.org"));
}
