//! The diff on small policies: every level, sets not single witnesses.
#![allow(clippy::panic, reason = "tests fail by panicking")]

use super::*;
use kapl_check::{MemoryLoader, check_front};

fn policy(text: &str) -> Policy {
    let mut loader = MemoryLoader::new().with("p.kapl", text);
    let fe = check_front(&mut loader, "p.kapl");
    fe.policy
        .unwrap_or_else(|| panic!("does not check: {:?}", fe.diagnostics))
}

fn globs(set: &PathSet) -> Vec<String> {
    set.pieces
        .iter()
        .map(|p| {
            if p.except.is_empty() {
                p.glob.clone()
            } else {
                format!("{} except {}", p.glob, p.except.join(", "))
            }
        })
        .collect()
}

const OLD: &str = r#"
objective o {
  bound { fs read "/tmp/x/r/**" exec "/usr/bin/cat" }
  never { fs read "/tmp/x/r/secret" }
}
plan p under o {
  step s { grant fs read "/tmp/x/r/a" grant exec "/usr/bin/cat" }
}
"#;

#[test]
fn a_wider_bound_and_a_moved_never_both_widen() {
    let new = OLD
        .replace(
            r#"bound { fs read "/tmp/x/r/**""#,
            r#"bound { fs read "/**""#,
        )
        .replace(
            r#"never { fs read "/tmp/x/r/secret" }"#,
            r#"never { fs write "/tmp/x/r/secret" }"#,
        );
    let d = diff(&policy(OLD), &policy(&new));
    assert!(d.widens());
    assert!(d.unknown.is_empty(), "{:?}", d.unknown);
    let bound = d
        .changes
        .iter()
        .find(|c| c.place.part == Part::Bound)
        .unwrap_or_else(|| panic!("{d:#?}"));
    assert_eq!(bound.place.level, Level::Objective);
    assert_eq!(bound.effect, Effect::Widening);
    let Authority::Fs { right, paths } = &bound.authority else {
        panic!("{bound:?}")
    };
    assert_eq!(*right, Right::Read);
    assert!(paths.exact);
    assert_eq!(globs(paths), vec!["/** except /tmp/x/r/**"]);
    assert_eq!(paths.examples.len(), 3);
    let never: Vec<&Change> = d
        .changes
        .iter()
        .filter(|c| c.place.part == Part::Never)
        .collect();
    assert_eq!(never.len(), 2, "{never:#?}");
    assert_eq!(never[0].effect, Effect::Widening);
    assert_eq!(never[0].side, Side::Old);
    assert_eq!(never[1].effect, Effect::Narrowing);
}

#[test]
fn every_added_program_is_listed() {
    let new = OLD.replace(
        r#"grant exec "/usr/bin/cat""#,
        r#"grant exec "/usr/bin/{cat,head,tail,wc}" grant exec "/usr/bin/find""#,
    );
    let d = diff(&policy(OLD), &policy(&new));
    let c = d
        .changes
        .iter()
        .find(|c| c.place.level == Level::Step)
        .unwrap_or_else(|| panic!("{d:#?}"));
    let Authority::Exec { programs } = &c.authority else {
        panic!("{c:?}")
    };
    assert!(programs.listed);
    let mut got = globs(programs);
    got.sort();
    assert_eq!(
        got,
        vec![
            "/usr/bin/find",
            "/usr/bin/head",
            "/usr/bin/tail",
            "/usr/bin/wc"
        ]
    );
    assert_eq!(c.sites.len(), 2);
}

#[test]
fn a_plan_wide_grant_is_reported_once() {
    let new = OLD.replace(
        "plan p under o {",
        "plan p under o {\n  grant fs read \"/tmp/x/r/b/**\"",
    );
    let d = diff(&policy(OLD), &policy(&new));
    assert_eq!(d.changes.len(), 1, "{d:#?}");
    assert_eq!(d.changes[0].place.level, Level::Plan);
    // Reversed: a narrowing of the plan, nothing at the step.
    let d = diff(&policy(&new), &policy(OLD));
    assert!(!d.widens());
    assert_eq!(d.changes.len(), 1, "{d:#?}");
}

#[test]
fn network_changes_are_boxes() {
    let old = "objective o { bound { net connect 10.0.0.0/8 port 1-1024 } }\n\
               plan p under o { grant net connect 10.1.0.0/16 port 443 }\n";
    let new = "objective o { bound { net connect 10.0.0.0/8 port 1-1024 } }\n\
               plan p under o { grant net connect 10.1.0.0/16 port 443 \
               grant net connect 10.2.0.0/16, 10.3.0.0/16 port 22 }\n";
    let d = diff(&policy(old), &policy(new));
    assert_eq!(d.changes.len(), 1, "{d:#?}");
    let Authority::Net { op, boxes } = &d.changes[0].authority else {
        panic!("{d:#?}")
    };
    assert_eq!(*op, NetOp::Connect);
    assert_eq!(boxes.len(), 1);
    assert_eq!(boxes[0].cidrs(), vec!["10.2.0.0/15"]);
    assert_eq!((boxes[0].lo, boxes[0].hi), (22, 22));
}

#[test]
fn appearing_and_disappearing_levels() {
    let new = format!("{OLD}\nplan q under o {{ grant fs read \"/tmp/x/r/q\" }}\n");
    let d = diff(&policy(OLD), &policy(&new));
    assert!(d.widens());
    assert_eq!(d.changes[0].place.presence, Presence::New);
    let d = diff(&policy(&new), &policy(OLD));
    assert!(!d.widens());
    assert_eq!(d.changes[0].place.presence, Presence::Old);
    assert_eq!(d.changes[0].effect, Effect::Narrowing);
}
