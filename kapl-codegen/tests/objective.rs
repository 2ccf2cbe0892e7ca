//! Objective images: the tables of every objective's and intent's bound and
//! `never` are compiled, embedded with their sources, given an identity,
//! and translation-validated like a plan's.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail by panicking"
)]

use kapl_codegen::{Options, compile, translate};
use kapl_image::{BOUND, FsRight, Level, NEVER, format};

const OBJ: &str = r#"
objective o {
  bound {
    fs read "/srv/**"
    exec "/usr/bin/git"
    net connect 10.0.0.0/8 port 443
  }
  never {
    fs read "/srv/secrets/**"
    net connect 10.9.0.0/16 port any
  }
}
intent i under o { bound { fs read "/srv/web/**" } }
"#;

fn build() -> (kapl_check::ir::Policy, kapl_image::Image) {
    let mut loader = kapl_check::MemoryLoader::new().with("/o.kapl", OBJ);
    let fe = kapl_check::check_front(&mut loader, "/o.kapl");
    let policy = fe.policy.expect("checks");
    let opts = Options {
        policy: "o".into(),
        compiler: "test".into(),
    };
    let image = compile(&policy, &fe.sources, &opts).unwrap().image;
    (policy, image)
}

#[test]
fn objective_tables_decide_like_the_rules() {
    let (policy, image) = build();
    let t = image.objective.as_ref().expect("an objective image");
    assert_eq!(t.sources[0].text, OBJ);
    let o = t.level(Level::Objective(0)).unwrap();
    // Read the level like a two-step plan: step BOUND and step NEVER.
    let plan = kapl_image::Plan {
        name: "o".into(),
        about: None,
        objective: 0,
        intent: None,
        grants: Vec::new(),
        steps: Vec::new(),
        fs: o.fs.clone(),
        exec: o.exec.clone(),
        net: o.net.clone(),
        names: o.names.clone(),
        name_excluded: Vec::new(),
        never_names: Vec::new(),
    };
    let read = |p: &str, col: u32| {
        kapl_image::path_grant(
            &plan,
            kapl_image::DfaKind::Fs,
            FsRight::Read.column(),
            col,
            p.as_bytes(),
        )
        .is_some()
    };
    assert!(read("/srv/a", BOUND) && !read("/etc/a", BOUND));
    assert!(read("/srv/secrets/k", NEVER) && !read("/srv/a", NEVER));
    // Translation validation accepts the image as written.
    let bytes = kapl_image::write(&image).unwrap();
    assert!(translate::validate(&policy, &bytes).is_empty());
}

#[test]
fn translation_validation_catches_a_widened_bound() {
    let (policy, mut image) = build();
    let t = image.objective.as_mut().unwrap();
    // The intent's bound (level 1) gets the objective's tables: wider.
    t.levels[1].fs = t.levels[0].fs.clone();
    let mut rules = t.levels[1].fs.rows.clone();
    for c in &mut rules {
        if c.grant != kapl_image::NO_GRANT {
            c.grant = t
                .rules
                .iter()
                .position(|r| r.level == 1 && !r.never)
                .unwrap() as u32;
        }
    }
    // Keep only the bound column credited, so the image still validates.
    let width = t.levels[1].fs.row_width();
    for (i, c) in rules.iter_mut().enumerate() {
        if i % width >= 4 {
            *c = kapl_image::Cell::EMPTY;
        }
    }
    t.levels[1].fs.rows = rules;
    let id = format::objective_identity(&image).unwrap();
    image.objective.as_mut().unwrap().identity = id;
    let bytes = kapl_image::write(&image).unwrap();
    let d = translate::validate(&policy, &bytes);
    assert!(!d.is_empty(), "a widened intent bound went unnoticed");
    assert_eq!(d[0].code, "KAPL0601");
}
