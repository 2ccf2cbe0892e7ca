//! Front-end tests: loading, resolution and lowering on in-memory files.
//! Assertions name codes and the underlined source text, not offsets.

use kapl_check::ir::{Cidr, Parent, RuleKind};
use kapl_check::{FrontEnd, MemoryLoader, check_front};
use kapl_syntax::{Diagnostic, Severity, codes};

fn check(files: &[(&str, &str)]) -> FrontEnd {
    let mut loader = MemoryLoader::new();
    for (p, t) in files {
        loader.insert(p, *t);
    }
    let root = files.first().map_or("main.kapl", |f| f.0);
    check_front(&mut loader, root)
}

/// (code, underlined text of the primary label) of every diagnostic.
fn found(fe: &FrontEnd) -> Vec<(&'static str, String)> {
    fe.diagnostics
        .iter()
        .map(|d| {
            let text = d
                .primary_span()
                .map(|s| fe.sources.snippet(s).to_string())
                .unwrap_or_default();
            (d.code, text)
        })
        .collect()
}

fn labels(fe: &FrontEnd, d: &Diagnostic) -> Vec<String> {
    d.labels
        .iter()
        .map(|l| fe.sources.snippet(l.span).to_string())
        .collect()
}

fn errors(fe: &FrontEnd) -> usize {
    fe.diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count()
}

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/examples");

fn example(name: &str) -> FrontEnd {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/{name}")).unwrap_or_default();
    assert!(!text.is_empty(), "example {name} missing");
    check(&[(name, &text)])
}

#[test]
fn names_example_has_exactly_its_listed_errors() {
    let fe = example("names.kapl");
    let got = found(&fe);
    let want: Vec<(&str, String)> = vec![
        (codes::DUPLICATE_DEFINITION, "dup".into()),
        (codes::ADDR_INVALID, "10.0.0.300/8".into()),
        (codes::PORT_OUT_OF_RANGE, "70000".into()),
        (codes::UNKNOWN_NAME, "ghost".into()),
        (codes::UNKNOWN_STEP, "c".into()),
        (codes::GLOB_NOT_NORMALIZED, "..".into()),
        (codes::STEP_CYCLE, "y".into()),
        (codes::GLOB_NOT_ABSOLUTE, "\"srv/web\"".into()),
    ];
    let got_codes: Vec<&str> = got.iter().map(|g| g.0).collect();
    let want_codes: Vec<&str> = want.iter().map(|w| w.0).collect();
    assert_eq!(got_codes, want_codes, "{got:#?}");
    // The front end's own findings point where the header says.
    for (g, w) in got.iter().zip(&want) {
        if g.0.starts_with("KAPL03") {
            assert_eq!(g, w);
        }
    }
    assert!(fe.policy.is_none(), "nothing is built");
    // Both definitions of `dup`, both ends of the cycle.
    let dup = &fe.diagnostics[0];
    assert_eq!(labels(&fe, dup), ["dup", "dup"]);
    assert_ne!(dup.labels[0].span, dup.labels[1].span);
    let cycle = fe
        .diagnostics
        .iter()
        .find(|d| d.code == codes::STEP_CYCLE)
        .map(|d| labels(&fe, d));
    assert_eq!(cycle, Some(vec!["y".to_string(), "x".to_string()]));
}

#[test]
fn clean_examples_lower_to_ir() {
    for name in ["deploy.kapl", "upgrade-deps.kapl", "overreach.kapl"] {
        let fe = example(name);
        assert!(fe.diagnostics.is_empty(), "{name}: {:#?}", found(&fe));
        assert!(fe.policy.is_some(), "{name}: no IR");
    }
    let fe = example("deploy.kapl");
    let p = fe
        .policy
        .as_ref()
        .map(|p| (p.objectives.len(), p.intents.len(), p.plans.len()));
    assert_eq!(p, Some((1, 1, 2)));
    let Some(policy) = fe.policy else { return };
    // `investigate` is under intent `diagnose`; `repair` under the objective.
    assert_eq!(
        policy.plans[0].parent,
        Parent::Intent(kapl_check::ir::IntentId(0))
    );
    assert_eq!(
        policy.plans[1].parent,
        Parent::Objective(kapl_check::ir::ObjectiveId(0))
    );
    // review_changes is after read_logs.
    assert_eq!(
        policy.plans[0].steps[1].after,
        vec![kapl_check::ir::StepId(0)]
    );
    // `grant use runtime.loader` expands into the stdlib rules, each keeping
    // its own span (in the stdlib) and the grant's `use` as its via.
    let g = policy
        .grants
        .iter()
        .find(|g| !g.rule.via.is_empty())
        .map(|g| {
            (
                fe.sources.snippet(g.rule.via[0]).to_string(),
                fe.sources.get(g.rule.span.file).map(|f| f.display_name()),
            )
        });
    assert_eq!(
        g,
        Some((
            "use runtime.loader".to_string(),
            Some("<stdlib/runtime.kapl>".to_string())
        ))
    );
    // `net connect any port 22` in the never block: both families.
    let never_net = policy.objectives[0]
        .never
        .iter()
        .find_map(|r| match &r.kind {
            RuleKind::Net { addrs, .. } => Some(addrs.clone()),
            _ => None,
        });
    let any: Vec<Cidr> = vec![
        Cidr {
            addr: "0.0.0.0"
                .parse()
                .unwrap_or(std::net::IpAddr::from([9, 9, 9, 9])),
            prefix: 0,
        },
        Cidr {
            addr: "::".parse().unwrap_or(std::net::IpAddr::from([9, 9, 9, 9])),
            prefix: 0,
        },
    ];
    assert_eq!(never_net, Some(any));
}

#[test]
fn stdlib_modules_parse_cleanly_and_hold_only_authorities() {
    for (name, _) in kapl_check::stdlib::MODULES {
        let src = format!("use std.{name}\n");
        let fe = check(&[("m.kapl", &src)]);
        // Only the "empty policy" warning of the root, nothing from the module.
        assert!(
            fe.diagnostics.iter().all(|d| d.code == codes::EMPTY_POLICY),
            "{name}: {:#?}",
            found(&fe)
        );
        let text = kapl_check::stdlib::module(name).unwrap_or_default();
        let parsed = kapl_syntax::parse(kapl_syntax::FileId(0), text);
        assert!(
            parsed.diagnostics.is_empty(),
            "{name}: {:#?}",
            parsed.diagnostics
        );
        assert!(
            parsed.file.items.iter().all(|i| matches!(
                i,
                kapl_syntax::ast::Item::Authority(_) | kapl_syntax::ast::Item::Use(_)
            )),
            "{name} defines something other than authorities"
        );
    }
}

/// Files that sh, cat, grep, head, ls, git and python3 (Debian 12) open to
/// start, from `strace -f -e trace=openat` on this machine kind.
const STARTUP_READS: &[&str] = &[
    "/etc/ld.so.cache",
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib/x86_64-linux-gnu/libpcre2-8.so.0",
    "/lib/x86_64-linux-gnu/libz.so.1",
    "/lib/x86_64-linux-gnu/libselinux.so.1",
    "/lib/x86_64-linux-gnu/libm.so.6",
    "/lib/x86_64-linux-gnu/libexpat.so.1",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/locale/C.utf8/LC_CTYPE",
    "/usr/lib/locale/C.utf8/LC_MESSAGES/SYS_LC_MESSAGES",
    "/usr/lib/locale/locale-archive",
    "/usr/share/locale/locale.alias",
    "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache",
    "/dev/null",
    "/dev/tty",
    "/dev/urandom",
    "/etc/localtime",
    "/proc/self/maps",
    "/proc/filesystems",
    "/lib64/ld-linux-x86-64.so.2",
];

#[test]
fn runtime_loader_covers_what_programs_open_at_start() {
    let fe = check(&[(
        "m.kapl",
        "use std.runtime\nobjective o { bound { use runtime.loader } }\n",
    )]);
    assert_eq!(errors(&fe), 0, "{:#?}", found(&fe));
    let Some(policy) = fe.policy else { return };
    let reads = |path: &str| {
        policy.objectives[0].bound.iter().any(|r| match &r.kind {
            RuleKind::Fs {
                rights,
                patterns,
                except,
            } => {
                rights.has(kapl_syntax::ast::Right::Read)
                    && patterns.iter().any(|p| p.glob.matches(path.as_bytes()))
                    && !except.iter().any(|p| p.glob.matches(path.as_bytes()))
            }
            _ => false,
        })
    };
    let execs = |path: &str| {
        policy.objectives[0].bound.iter().any(|r| match &r.kind {
            RuleKind::Exec { patterns } => patterns.iter().any(|p| p.glob.matches(path.as_bytes())),
            _ => false,
        })
    };
    for p in STARTUP_READS {
        assert!(reads(p), "runtime.loader does not let programs read {p}");
    }
    for p in [
        "/lib64/ld-linux-x86-64.so.2",
        "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "/lib/x86_64-linux-gnu/libc.so.6",
    ] {
        assert!(execs(p), "runtime.loader does not let programs exec {p}");
    }
    // And nothing about other processes or secrets.
    for p in [
        "/proc/1/maps",
        "/etc/shadow",
        "/root/.ssh/id_ed25519",
        "/usr/bin/sh",
    ] {
        assert!(!reads(p) && !execs(p), "runtime.loader covers {p}");
    }
}

#[test]
fn imports_load_relative_files_once_and_share_the_namespace() {
    let fe = check(&[
        (
            "dir/main.kapl",
            "use \"./shared.kapl\"\nuse \"sub/../shared.kapl\"\nplan p under o { step s { grant use a } }\n",
        ),
        (
            "dir/shared.kapl",
            "authority a { fs read \"/x\" }\nobjective o { bound { use a } }\n",
        ),
    ]);
    assert_eq!(
        found(&fe),
        vec![(
            codes::DUPLICATE_IMPORT,
            "use \"sub/../shared.kapl\"".to_string()
        )]
    );
    assert!(fe.policy.is_some());
    assert_eq!(fe.sources.iter().count(), 2);
}

#[test]
fn missing_files_and_modules_are_reported_at_the_use() {
    let fe = check(&[(
        "main.kapl",
        "use \"./nope.kapl\"\nuse std.runtim\nuse std\nuse foo.bar\nuse runtime\nobjective o { bound { fs read \"/x\" } }\n",
    )]);
    let got = found(&fe);
    assert_eq!(
        got,
        vec![
            (codes::FILE_UNREADABLE, "\"./nope.kapl\"".to_string()),
            (codes::UNKNOWN_MODULE, "runtim".to_string()),
            (codes::BAD_MODULE_PATH, "std".to_string()),
            (codes::BAD_MODULE_PATH, "foo.bar".to_string()),
            (codes::BAD_MODULE_PATH, "runtime".to_string()),
        ]
    );
    assert_eq!(
        fe.diagnostics[1].help.as_deref(),
        Some("did you mean `std.runtime`?")
    );
    assert!(!fe.root_unreadable);
}

#[test]
fn unreadable_root_is_an_io_problem() {
    let fe = check(&[("other.kapl", "")]);
    let mut loader = MemoryLoader::new().with("d/x.kapl", "");
    let dir = check_front(&mut loader, "d");
    assert!(dir.root_unreadable);
    assert!(dir.diagnostics[0].message.contains("directory"));
    assert!(!fe.root_unreadable);
    let mut empty = MemoryLoader::new();
    let missing = check_front(&mut empty, "gone.kapl");
    assert!(missing.root_unreadable);
    assert_eq!(missing.diagnostics[0].code, codes::FILE_UNREADABLE);
}

#[test]
fn self_imports_and_cycles() {
    let fe = check(&[("a.kapl", "use \"./a.kapl\"\n")]);
    assert_eq!(
        found(&fe),
        vec![(codes::SELF_IMPORT, "use \"./a.kapl\"".to_string())]
    );
    let fe = check(&[
        ("a.kapl", "use \"./b.kapl\"\n"),
        ("b.kapl", "use \"./c.kapl\"\n"),
        ("c.kapl", "use \"./a.kapl\"\n"),
    ]);
    let cyc: Vec<&Diagnostic> = fe
        .diagnostics
        .iter()
        .filter(|d| d.code == codes::IMPORT_CYCLE)
        .collect();
    assert_eq!(cyc.len(), 1, "{:#?}", found(&fe));
    assert_eq!(cyc[0].labels.len(), 3);
}

#[test]
fn under_and_use_must_name_the_right_kind() {
    let fe = check(&[(
        "m.kapl",
        "authority a { fs read \"/x\" }\nobjective o { bound { use o } }\nintent i under a { bound { fs read \"/x\" } }\nplan p under a { step s { grant use i } }\nplan q under i { grant use a }\nintent j under i { bound { use a } }\n",
    )]);
    let got = found(&fe);
    assert_eq!(
        got,
        vec![
            (codes::WRONG_KIND, "o".to_string()),
            (codes::WRONG_KIND, "a".to_string()),
            (codes::WRONG_KIND, "a".to_string()),
            (codes::WRONG_KIND, "i".to_string()),
            (codes::WRONG_KIND, "i".to_string()),
        ]
    );
    // The secondary label shows the definition.
    assert_eq!(labels(&fe, &fe.diagnostics[1]), ["a", "a"]);
}

#[test]
fn did_you_mean_and_qualified_stdlib_names() {
    let fe = check(&[(
        "m.kapl",
        "use std.runtime\nauthority tools { fs read \"/x\" }\nobjective obj { bound { use tols use loader use runtime.lodaer use std.runtime.loader use tools } }\nplan p under objj { grant use runtime.loader }\n",
    )]);
    let helps: Vec<(String, Option<String>)> = fe
        .diagnostics
        .iter()
        .map(|d| {
            (
                d.primary_span()
                    .map(|s| fe.sources.snippet(s).to_string())
                    .unwrap_or_default(),
                d.help.clone(),
            )
        })
        .collect();
    assert_eq!(
        helps,
        vec![
            (
                "tols".to_string(),
                Some("did you mean `tools`?".to_string())
            ),
            (
                "loader".to_string(),
                Some(
                    "did you mean `runtime.loader`? stdlib names are qualified by their module"
                        .to_string()
                )
            ),
            (
                "runtime.lodaer".to_string(),
                Some("did you mean `runtime.loader`?".to_string())
            ),
            ("objj".to_string(), Some("did you mean `obj`?".to_string())),
        ]
    );
}

#[test]
fn stdlib_names_need_their_module_imported() {
    let fe = check(&[("m.kapl", "objective o { bound { use runtime.loader } }\n")]);
    assert_eq!(
        found(&fe),
        vec![(codes::MODULE_NOT_IMPORTED, "runtime".to_string())]
    );
    assert_eq!(
        fe.diagnostics[0].help.as_deref(),
        Some("add `use std.runtime` at the top of the file")
    );
}

#[test]
fn clauses_bound_never_about() {
    let fe = check(&[(
        "m.kapl",
        "objective o { about \"a\" about \"b\" never { fs read \"/x\" } never { fs read \"/y\" } }\nintent i under o { bound { fs read \"/x\" } bound { fs read \"/y\" } }\nplan p under o { step s { about \"x\" about \"y\" } }\n",
    )]);
    assert_eq!(
        found(&fe),
        vec![
            (codes::MISSING_BOUND, "o".to_string()),
            (codes::DUPLICATE_CLAUSE, "\"b\"".to_string()),
            (codes::DUPLICATE_CLAUSE, "never".to_string()),
            (codes::DUPLICATE_CLAUSE, "bound".to_string()),
            (codes::DUPLICATE_CLAUSE, "\"y\"".to_string()),
        ]
    );
}

#[test]
fn authority_cycles_point_at_every_use() {
    let fe = check(&[(
        "m.kapl",
        "authority a { use b }\nauthority b { use a }\nauthority c { use c }\nobjective o { bound { use a use c } }\n",
    )]);
    let got = found(&fe);
    assert_eq!(
        got,
        vec![
            (codes::AUTHORITY_CYCLE, "b".to_string()),
            (codes::AUTHORITY_CYCLE, "c".to_string())
        ]
    );
    assert_eq!(labels(&fe, &fe.diagnostics[0]), ["b", "a"]);
}

#[test]
fn unused_authorities_warn_but_pass() {
    let fe = check(&[(
        "m.kapl",
        "authority spare { fs read \"/x\" }\nobjective o { bound { fs read \"/x\" } }\n",
    )]);
    assert_eq!(
        found(&fe),
        vec![(codes::UNUSED_AUTHORITY, "spare".to_string())]
    );
    assert_eq!(errors(&fe), 0);
    assert!(fe.policy.is_some());
}

#[test]
fn steps_after_checks() {
    let fe = check(&[(
        "m.kapl",
        "objective o { bound { fs read \"/x\" } }\nplan p under o {\n step a after a { }\n step b after c, a, a { }\n step b { }\n step d after e { }\n step e after f { }\n step f after d { }\n}\n",
    )]);
    assert_eq!(
        found(&fe),
        vec![
            (codes::STEP_CYCLE, "a".to_string()),
            (codes::UNKNOWN_STEP, "c".to_string()),
            (codes::DUPLICATE_AFTER, "a".to_string()),
            (codes::DUPLICATE_DEFINITION, "b".to_string()),
            (codes::STEP_CYCLE, "e".to_string()),
        ]
    );
    let big = fe.diagnostics.last().map(|d| labels(&fe, d));
    assert_eq!(
        big,
        Some(vec!["e".to_string(), "f".to_string(), "d".to_string()])
    );
}

#[test]
fn addresses_are_normalized_with_warnings() {
    let fe = check(&[(
        "m.kapl",
        "objective o { bound { net connect 10.1.2.3/16, ::ffff:192.0.2.1, localhost port 80 net bind ::/0 port any } }\n",
    )]);
    assert_eq!(
        found(&fe),
        vec![
            (codes::HOST_BITS_SET, "10.1.2.3/16".to_string()),
            (codes::V6_BLOCK_COVERS_V4, "::/0".to_string())
        ]
    );
    let Some(p) = fe.policy else { return };
    let shown: Vec<Vec<String>> = p.objectives[0]
        .bound
        .iter()
        .filter_map(|r| match &r.kind {
            RuleKind::Net { addrs, .. } => Some(
                addrs
                    .iter()
                    .map(|c| format!("{}/{}", c.addr, c.prefix))
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            vec!["10.1.0.0/16", "192.0.2.1/32", "127.0.0.0/8", "::1/128"],
            vec!["::/0", "0.0.0.0/0"]
        ]
    );
}

#[test]
fn nested_uses_keep_their_via_chain() {
    let fe = check(&[(
        "m.kapl",
        "authority inner { fs read \"/i\" }\nauthority outer { use inner exec \"/bin/o\" }\nobjective o { bound { use outer } }\nplan p under o { step s { grant use outer } }\n",
    )]);
    assert!(fe.diagnostics.is_empty(), "{:#?}", found(&fe));
    let Some(p) = fe.policy else { return };
    let vias: Vec<Vec<String>> = p
        .grants
        .iter()
        .map(|g| {
            g.rule
                .via
                .iter()
                .map(|s| fe.sources.snippet(*s).to_string())
                .collect()
        })
        .collect();
    assert_eq!(
        vias,
        vec![vec!["use outer", "use inner"], vec!["use outer"]]
    );
    assert_eq!(fe.sources.snippet(p.grants[0].rule.span), "fs read \"/i\"");
    assert_eq!(fe.sources.snippet(p.grants[0].site), "grant use outer");
}

#[test]
fn exponential_use_diamonds_are_capped() {
    let mut src = String::from("authority a0 { fs read \"/x\" }\n");
    for i in 1..=20 {
        src.push_str(&format!(
            "authority a{i} {{ use a{} use a{} }}\n",
            i - 1,
            i - 1
        ));
    }
    src.push_str("objective o { bound { use a20 } }\n");
    let fe = check(&[("m.kapl", &src)]);
    assert_eq!(
        found(&fe).first().map(|f| f.0),
        Some(codes::EXPANSION_TOO_LARGE)
    );
    assert!(fe.policy.is_none());
}

#[test]
fn bad_bytes_never_panic() {
    for bytes in [
        &b""[..],
        b"\xef\xbb\xbf",
        b"\xff\xfe",
        b"objective o { bound { fs read \"/a\xff\" } }",
        b"\0\0\0",
        b"objective o {\r\n bound { fs read \"/a\" }\r\n}\r\n",
    ] {
        let mut l = MemoryLoader::new().with("x.kapl", bytes);
        let fe = check_front(&mut l, "x.kapl");
        let _ = found(&fe);
    }
    let mut l = MemoryLoader::new().with(
        "x.kapl",
        &b"objective o { bound { fs read \"/a\xff\" } }"[..],
    );
    let fe = check_front(&mut l, "x.kapl");
    assert_eq!(found(&fe).first().map(|f| f.0), Some(codes::NOT_UTF8));
    let mut l = MemoryLoader::new().with(
        "x.kapl",
        &b"\xef\xbb\xbfobjective o { bound { fs read \"/a\" } }\r\n"[..],
    );
    let fe = check_front(&mut l, "x.kapl");
    assert!(fe.diagnostics.is_empty(), "{:#?}", found(&fe));
}

#[test]
fn long_use_chains_are_capped_not_quadratic() {
    let n = 4_000;
    let mut src = String::from("authority a0 { fs read \"/x\" }\n");
    for i in 1..n {
        src.push_str(&format!(
            "authority a{i} {{ use a{} fs read \"/y\" }}\n",
            i - 1
        ));
    }
    src.push_str(&format!("objective o {{ bound {{ use a{} }} }}\n", n - 1));
    let t = std::time::Instant::now();
    let fe = check(&[("m.kapl", &src)]);
    assert_eq!(
        found(&fe).first().map(|f| f.0),
        Some(codes::EXPANSION_TOO_LARGE)
    );
    assert!(fe.policy.is_none());
    assert!(t.elapsed().as_secs() < 60, "took {:?}", t.elapsed());
}
