//! The prover on the acceptance examples: `overreach.kapl` yields exactly
//! its four errors, each with a witness that replays through the reference
//! semantics and labels on the grant and on the rule it breaks; the other
//! examples stay clean. Assertions name codes and underlined source text.

#![allow(clippy::panic, reason = "tests fail by panicking")]

use kapl_check::semantics::{Request, rule_covers, rules_cover};
use kapl_check::{FrontEnd, MemoryLoader, check_front};
use kapl_prove::{Breach, Options, Subject, Verdict, prove_front_end, prove_with};
use kapl_syntax::{Severity, Witness, codes};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/examples");

fn example(name: &str) -> FrontEnd {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/{name}")).unwrap_or_default();
    assert!(!text.is_empty(), "example {name} missing");
    let mut loader = MemoryLoader::new().with(name, text);
    let mut fe = check_front(&mut loader, name);
    assert!(
        fe.policy.is_some(),
        "{name}: front end failed: {:#?}",
        fe.diagnostics
    );
    prove_front_end(&mut fe);
    fe
}

fn snippet(fe: &FrontEnd, span: kapl_syntax::Span) -> String {
    fe.sources
        .snippet(span)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn overreach_has_exactly_its_four_errors() {
    let fe = example("overreach.kapl");
    let errors: Vec<_> = fe
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    let summary: Vec<(&str, String, Vec<String>)> = errors
        .iter()
        .map(|d| {
            let labels = d
                .labels
                .iter()
                .map(|l| snippet(&fe, l.span))
                .collect::<Vec<_>>();
            (d.code, labels[0].clone(), labels[1..].to_vec())
        })
        .collect();
    assert_eq!(errors.len(), 4, "{summary:#?}\n{:#?}", fe.diagnostics);
    let warnings: Vec<_> = fe
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");

    // 1. intent too_wide's bound writes /etc/web/**.
    let d = errors
        .iter()
        .find(|d| d.code == codes::INTENT_EXCEEDS_OBJECTIVE)
        .copied();
    let d = d.unwrap_or_else(|| panic!("no KAPL0401: {summary:#?}"));
    assert_eq!(
        snippet(&fe, d.labels[0].span),
        r#"fs read, write "/etc/web/**""#
    );
    assert!(
        d.message
            .starts_with("intent `too_wide` may write `/etc/web"),
        "{}",
        d.message
    );
    assert!(
        d.message
            .ends_with("which objective `fix_deploy` does not bound"),
        "{}",
        d.message
    );
    match &d.witness {
        Some(Witness::Fs { right, path }) => {
            assert!(right == "write" && path.starts_with("/etc/web"), "{path}")
        }
        w => panic!("bad witness {w:?}"),
    }
    assert!(d.labels.len() >= 2 && !d.labels[1].primary);

    // 2. the grant on /srv/** exceeds intent diagnose (and reaches the never).
    let d = errors
        .iter()
        .find(|d| {
            d.code == codes::GRANT_EXCEEDS_BOUND
                && snippet(&fe, d.labels[0].span).contains("\"/srv/**\"")
        })
        .copied()
        .unwrap_or_else(|| panic!("no KAPL0402 on /srv/**: {summary:#?}"));
    assert!(
        d.message
            .starts_with("step `look_around` of plan `wander` may read `/srv"),
        "{}",
        d.message
    );
    assert!(
        d.message
            .ends_with("which intent `diagnose` does not bound"),
        "{}",
        d.message
    );
    let second: Vec<String> = d.labels[1..].iter().map(|l| snippet(&fe, l.span)).collect();
    assert!(
        second.iter().any(|s| s.contains("/srv/web/**")),
        "{second:?}"
    );
    assert!(
        second.iter().any(|s| s.contains(".env")),
        "the never rule should be named too: {second:?}"
    );
    assert!(
        d.help.as_deref().is_some_and(|h| h.contains("narrow")),
        "{:?}",
        d.help
    );
    match &d.witness {
        Some(Witness::Fs { right, path }) => {
            assert_eq!(right, "read");
            assert!(
                path.starts_with("/srv") && !path.starts_with("/srv/web/"),
                "{path}"
            );
        }
        w => panic!("bad witness {w:?}"),
    }

    // 3. the grant on /srv/web/config/* reaches the never rule.
    let d = errors
        .iter()
        .find(|d| d.code == codes::GRANT_REACHES_NEVER)
        .copied()
        .unwrap_or_else(|| panic!("no KAPL0403: {summary:#?}"));
    assert_eq!(
        snippet(&fe, d.labels[0].span),
        r#"fs read "/srv/web/config/*""#
    );
    assert_eq!(
        d.message,
        "step `look_around` of plan `wander` may read `/srv/web/config/.env`, which objective `fix_deploy` forbids"
    );
    assert_eq!(
        snippet(&fe, d.labels[1].span),
        r#"fs read, write "/srv/web/**/.env""#
    );
    assert_eq!(
        d.help.as_deref(),
        Some(r#"add `except "/srv/web/**/.env"` to the grant"#)
    );
    assert_eq!(
        d.witness,
        Some(Witness::Fs {
            right: "read".into(),
            path: "/srv/web/config/.env".into()
        })
    );

    // 4. connect to 10.20.0.0/16 on any port.
    let d = errors
        .iter()
        .find(|d| {
            d.code == codes::GRANT_EXCEEDS_BOUND
                && snippet(&fe, d.labels[0].span).starts_with("net")
        })
        .copied()
        .unwrap_or_else(|| panic!("no KAPL0402 on net: {summary:#?}"));
    assert!(
        d.message
            .starts_with("step `call_home` of plan `wander` may connect to `10.20."),
        "{}",
        d.message
    );
    assert_eq!(
        snippet(&fe, d.labels[1].span),
        "net connect 10.20.0.0/16 port 443"
    );
    match &d.witness {
        Some(Witness::Net { op, addr, port }) => {
            assert_eq!(op, "connect");
            assert!(addr.starts_with("10.20."), "{addr}");
            assert_ne!(*port, 443);
        }
        w => panic!("bad witness {w:?}"),
    }
}

#[test]
fn overreach_witnesses_replay() {
    let fe = example("overreach.kapl");
    let Some(policy) = &fe.policy else { return };
    let report = prove_with(policy, &fe.sources, &Options::default());
    let mut violated = 0;
    for o in &report.outcomes {
        let Verdict::Violated { first, also } = &o.verdict else {
            assert_eq!(o.verdict, Verdict::Proved, "{:?}", o.subject);
            continue;
        };
        violated += 1;
        for f in std::iter::once(first).chain(also.iter()) {
            let (rule, bound) = match o.subject {
                Subject::Grant(g) => {
                    let g = &policy.grants[g.0 as usize];
                    let plan = &policy.plans[g.plan.0 as usize];
                    let bound = match plan.parent {
                        kapl_check::ir::Parent::Intent(i) => &policy.intents[i.0 as usize].bound,
                        kapl_check::ir::Parent::Objective(o) => {
                            &policy.objectives[o.0 as usize].bound
                        }
                    };
                    (&g.rule, bound)
                }
                Subject::IntentBound { intent, rule } => {
                    let i = &policy.intents[intent.0 as usize];
                    (
                        &i.bound[rule],
                        &policy.objectives[i.objective.0 as usize].bound,
                    )
                }
            };
            assert!(
                rule_covers(&rule.kind, &f.witness),
                "{:?} does not cover {}",
                o.subject,
                f.witness
            );
            match f.breach {
                Breach::OutsideBound => assert!(!rules_cover(bound, &f.witness)),
                Breach::Never { level, rule } => {
                    let nevers = match level {
                        kapl_prove::Level::Objective(o) => &policy.objectives[o.0 as usize].never,
                        kapl_prove::Level::Intent(i) => &policy.intents[i.0 as usize].never,
                    };
                    assert!(rule_covers(&nevers[rule].kind, &f.witness));
                }
            }
            if let Request::Fs { path, .. } = &f.witness {
                assert!(kapl_automata::is_normalized(path));
            }
        }
    }
    assert_eq!(violated, 4);
}

#[test]
fn good_examples_stay_clean() {
    for name in ["deploy.kapl", "upgrade-deps.kapl"] {
        let fe = example(name);
        assert!(fe.diagnostics.is_empty(), "{name}: {:#?}", fe.diagnostics);
    }
}

#[test]
fn unknown_is_an_error_never_a_proof() {
    use kapl_prove::Limits;
    let text = std::fs::read_to_string(format!("{EXAMPLES}/deploy.kapl")).unwrap_or_default();
    let mut loader = MemoryLoader::new().with("deploy.kapl", text);
    let fe = check_front(&mut loader, "deploy.kapl");
    let Some(policy) = &fe.policy else {
        panic!("front end failed")
    };
    let opts = Options {
        limits: Limits {
            timeout_ms: 1,
            rlimit: 1,
        },
        threads: 1,
        ..Options::default()
    };
    let report = prove_with(policy, &fe.sources, &opts);
    let unknown = report
        .outcomes
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Unknown(_)))
        .count();
    assert!(unknown > 0, "a resource limit of 1 should stop the solver");
    // Every obligation the solver could not finish is an error, and none of
    // them is reported as proved.
    let errors = report
        .diagnostics
        .iter()
        .filter(|d| d.code == codes::PROOF_UNKNOWN)
        .count();
    assert_eq!(errors, unknown);
    assert!(
        report
            .diagnostics
            .iter()
            .all(|d| d.code != codes::PROOF_UNKNOWN || d.is_error())
    );
}
