//! The BPF LSM layer's decision core on the real kernel (root), against
//! the image's reference evaluator (differential), and on malformed
//! tables.
//!
//! `bpf/lsm_core.bpf.c`'s `decide()` runs as the `syscall` program
//! `kapl_lsm_decide` through `BPF_PROG_TEST_RUN` (`src/lsm_core.rs`); no
//! LSM program is attached (this kernel refuses them, MACHINE.md).
//!
//! Differential: random policies (seeded, the seed printed; set
//! `KAPL_SEED` to replay one) are compiled by `kapl-codegen` into images;
//! for every plan, its fs DFA (every right) and its exec DFA are loaded into
//! the core's maps, and for every step (and one past the last) and every
//! path drawn from the DFA's alphabet the kernel's grant must equal
//! `kapl_image::Evaluator::decide`'s. Both walk the path's bytes as given:
//! neither normalises (`..`, `//` and bytes ≥ 0x80 are plain bytes to
//! both; the LSM programs will pass `bpf_d_path`'s canonical path), so the
//! comparison is at that level. The paths: for each state, the shortest
//! path reaching it (so every accepting state is reached), its prefixes,
//! one-byte mutations and extensions, paths with `..` and `//`, random
//! bytes of each class (bytes ≥ 0x80 included), the empty path, and long
//! paths of 4095, 4096 and 4097 bytes (the request holds 4096; longer is
//! refused by the core, and the evaluator's answer for it is not compared).
//!
//! Malformed: a table whose meta row lies (more classes or states than
//! the maps hold, products that wrap a u32, a start state out of range),
//! a next state out of range and an accept row out of range must all
//! answer NO_GRANT, although the entries such a lie points at grant.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use kapl_image::{Dfa, DfaKind, Evaluator, FsRight, Image, Request};
use kapl_runtime_bpf::lsm_core::{LSM_PATH, LsmCore, MAX_CELLS, MAX_NEXT, MAX_STATES, Tables};
use kapl_testkit::Rng;
use std::collections::VecDeque;
use std::time::Instant;

/// One test at a time: the malformed-table test counts the process's open
/// descriptors.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Loads the core, or fails naming what the kernel lacks.
fn core() -> LsmCore {
    LsmCore::load().unwrap_or_else(|e| {
        panic!(
            "this test needs root and a kernel that loads BPF_PROG_TYPE_SYSCALL programs and runs them with BPF_PROG_TEST_RUN ctx_in (Linux 5.14+, bpf_loop: 5.17+): {e}"
        )
    })
}

/// Pattern segments (no `.` or `..`: patterns are normalised).
const SEGS: &[&str] = &["a", "b", "ab", "a.b", ".a", "é", "x\u{7f}", "c"];

fn glob(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..1 + rng.below(4) {
        s.push('/');
        match rng.below(10) {
            0 => s.push_str("**"),
            1 => s.push('*'),
            2 => {
                s.push_str(SEGS[rng.below(SEGS.len())]);
                s.push('*');
            }
            3 => {
                s.push('?');
                s.push_str(SEGS[rng.below(SEGS.len())]);
            }
            4 => s.push_str("[ab]"),
            5 => s.push_str(&format!(
                "{{{},{}}}",
                SEGS[rng.below(SEGS.len())],
                SEGS[rng.below(SEGS.len())]
            )),
            _ => s.push_str(SEGS[rng.below(SEGS.len())]),
        }
    }
    s
}

fn rule(rng: &mut Rng) -> String {
    if rng.chance(25) {
        return format!("exec \"{}\"", glob(rng));
    }
    let mut rights: Vec<&str> = ["read", "write", "create", "delete"]
        .into_iter()
        .filter(|_| rng.chance(50))
        .collect();
    if rights.is_empty() {
        rights.push("read");
    }
    let mut r = format!("fs {} \"{}\"", rights.join(", "), glob(rng));
    if rng.chance(20) {
        r.push_str(&format!(" except \"{}\"", glob(rng)));
    }
    r
}

/// A policy of one or two plans, each of one to three steps.
fn policy(rng: &mut Rng) -> String {
    let mut p = String::from(
        "objective o {\n  bound {\n    fs read, write, create, delete \"/**\"\n    exec \"/**\"\n  }\n}\n",
    );
    for plan in 0..1 + rng.below(2) {
        p.push_str(&format!("plan p{plan} under o {{\n"));
        for _ in 0..rng.below(3) {
            p.push_str(&format!("  grant {}\n", rule(rng)));
        }
        for step in 0..1 + rng.below(3) {
            p.push_str(&format!("  step s{step} {{\n"));
            for _ in 0..rng.below(4) {
                p.push_str(&format!("    grant {}\n", rule(rng)));
            }
            p.push_str("  }\n");
        }
        p.push_str("}\n");
    }
    p
}

fn compile(text: &str) -> Image {
    let mut loader = kapl_check::MemoryLoader::new().with("/lsm.kapl", text);
    let fe = kapl_check::check_front(&mut loader, "/lsm.kapl");
    let errors: Vec<_> = fe
        .diagnostics
        .iter()
        .filter(|d| d.severity == kapl_syntax::diag::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "policy errors: {errors:#?}\n{text}");
    let policy = fe.policy.expect("lowered policy");
    let out = kapl_codegen::compile(
        &policy,
        &fe.sources,
        &kapl_codegen::Options {
            policy: "lsm".into(),
            compiler: "test".into(),
        },
    )
    .unwrap_or_else(|d| panic!("compile: {d:?}\n{text}"));
    // What kapl-run loads: written and read back through verification.
    let bytes = kapl_image::write(&out.image).expect("write image");
    kapl_image::read(&bytes).unwrap_or_else(|e| panic!("verify: {e}\n{text}"))
}

/// For each state, the shortest path from the start reaching it (one
/// representative byte per class), breadth first.
fn shortest(d: &Dfa) -> Vec<Option<Vec<u8>>> {
    let mut rep = vec![None; usize::from(d.class_count)];
    for (b, c) in d.classes.iter().enumerate() {
        let slot = &mut rep[usize::from(*c)];
        if slot.is_none() {
            *slot = Some(b as u8);
        }
    }
    let mut to: Vec<Option<Vec<u8>>> = vec![None; d.states()];
    to[d.start as usize] = Some(Vec::new());
    let mut q = VecDeque::from([d.start]);
    while let Some(s) = q.pop_front() {
        let here = to[s as usize].clone().unwrap_or_default();
        for b in rep.iter().flatten() {
            let n = d.next(s, *b);
            if to[n as usize].is_none() {
                let mut p = here.clone();
                p.push(*b);
                to[n as usize] = Some(p);
                q.push_back(n);
            }
        }
    }
    to
}

/// Paths drawn from `d`'s alphabet (see the module doc).
fn paths(d: &Dfa, rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![Vec::new(), b"/".to_vec()];
    let reach: Vec<Vec<u8>> = shortest(d).into_iter().flatten().collect();
    // The bytes of each class (a validated DFA has no empty class).
    let mut members: Vec<Vec<u8>> = vec![Vec::new(); usize::from(d.class_count)];
    for (b, c) in d.classes.iter().enumerate() {
        members[usize::from(*c)].push(b as u8);
    }
    members.retain(|m| !m.is_empty());
    for p in &reach {
        out.push(p.clone());
        if !p.is_empty() {
            out.push(p[..rng.below(p.len())].to_vec());
            let mut m = p.clone();
            let i = rng.below(m.len());
            m[i] = rng.next_u64() as u8;
            out.push(m);
        }
        let mut e = p.clone();
        let class = &members[rng.below(members.len())];
        e.push(class[rng.below(class.len())]);
        out.push(e);
        let mut dots = p.clone();
        dots.extend_from_slice([&b"/.."[..], b"/../a", b"//", b"/./", b"/"][rng.below(5)]);
        if rng.chance(50) {
            dots.extend_from_slice(&reach[rng.below(reach.len())]);
        }
        out.push(dots);
    }
    for _ in 0..8 {
        let n = rng.below(24);
        let p: Vec<u8> = (0..n)
            .map(|_| match rng.below(4) {
                0 => b'/',
                1 => rng.next_u64() as u8,
                _ => {
                    let class = &members[rng.below(members.len())];
                    class[rng.below(class.len())]
                }
            })
            .collect();
        out.push(p);
    }
    for len in [LSM_PATH - 1, LSM_PATH, LSM_PATH + 1] {
        let base = reach[rng.below(reach.len())].clone();
        let mut p = base.clone();
        while p.len() < len {
            p.extend_from_slice(if base.is_empty() { b"/a" } else { &base });
        }
        p.truncate(len);
        out.push(p);
    }
    out
}

#[test]
fn the_kernel_core_agrees_with_the_evaluator_on_generated_tables() {
    let seed: u64 = std::env::var("KAPL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6c73_6d5f_636f_7265);
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    eprintln!("lsm_core: seed {seed} (KAPL_SEED={seed} replays it)");
    let mut rng = Rng(seed | 1);
    let mut core = core();
    let t0 = Instant::now();
    let (mut compared, mut plans, mut granted, mut long_refused) = (0u64, 0u64, 0u64, 0u64);
    let mut bad: Vec<String> = Vec::new();
    let policies = 300;
    for _ in 0..policies {
        let text = policy(&mut rng);
        let image = compile(&text);
        for plan in &image.plans {
            plans += 1;
            let ev = Evaluator::new(plan);
            let steps = plan.steps.len() as u32;
            for d in [&plan.fs, &plan.exec] {
                core.fill_dfa(d)
                    .unwrap_or_else(|e| panic!("fill: {e}\n{text}"));
                for path in paths(d, &mut rng) {
                    for step in 0..=steps {
                        for col in 0..d.kind.rights() {
                            let got = core.decide(step, col as u32, &path).unwrap_or_else(|e| {
                                panic!("BPF_PROG_TEST_RUN failed: {e}\n{text}")
                            });
                            if path.len() > LSM_PATH {
                                long_refused += 1;
                                assert_eq!(got, None, "a path over {LSM_PATH} bytes is refused");
                                continue;
                            }
                            let req = match d.kind {
                                DfaKind::Fs => Request::Fs {
                                    right: FsRight::ALL[col],
                                    path: path.clone(),
                                },
                                DfaKind::Exec => Request::Exec { path: path.clone() },
                            };
                            let want = ev.decide(step, &req).grant();
                            compared += 1;
                            granted += u64::from(want.is_some());
                            if got != want && bad.len() < 5 {
                                bad.push(format!(
                                    "policy:\n{text}plan {}, {:?} DFA, step {step}, right column {col}, path {:?}: kernel {got:?}, evaluator {want:?}",
                                    plan.name,
                                    d.kind,
                                    String::from_utf8_lossy(&path)
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        bad.is_empty(),
        "{} disagreements (first ones):\n{}",
        bad.len(),
        bad.join("\n\n")
    );
    eprintln!(
        "lsm_core: {policies} policies, {plans} plans, {compared} comparisons ({granted} granted), {long_refused} over-long paths refused, 0 disagreements, {secs:.1} s"
    );
    // The generator reaches both answers, often: the comparison means
    // something.
    assert!(plans >= 300 && compared > 100_000, "{plans} plans");
    assert!(granted > compared / 100, "{granted} of {compared} granted");
}

/// A valid one-state table granting `7` to every path, step and right.
fn all_granted() -> Tables {
    let mut d = Dfa::empty(DfaKind::Fs, 2);
    for c in &mut d.rows {
        c.grant = 7;
    }
    Tables::of(&d).unwrap()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn a_malformed_table_is_refused_never_read_out_of_range() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let before = open_fds();
    let mut core = core();
    let all: [&[u8]; 4] = [b"", b"/", b"/a/b", &[0xff; 300]];
    let ask = |core: &LsmCore, t: &Tables, what: &str, paths: &[&[u8]]| {
        for path in paths {
            for step in 0..3 {
                let got = core
                    .decide(step, 1, path)
                    .unwrap_or_else(|e| panic!("{what}: BPF_PROG_TEST_RUN failed: {e}"));
                assert_eq!(got, None, "{what}: {t:?} granted {path:?} in step {step}");
            }
        }
    };
    // The base table grants: each lie below would grant without its check.
    let base = all_granted();
    core.fill(&base).unwrap();
    assert_eq!(core.decide(1, 3, b"/any").unwrap(), Some(7));
    assert_eq!(core.decide(2, 0, b"/any").unwrap(), None, "step 2 of 2");
    assert_eq!(core.decide(0, 4, b"/any").unwrap(), None, "right 4 of 4");
    let long = vec![b'a'; LSM_PATH + 1];
    assert_eq!(core.decide(0, 0, &long).unwrap(), None, "4097 bytes");
    assert_eq!(core.decide(0, 0, &long[..LSM_PATH]).unwrap(), Some(7));

    // Meta rows that lie. The maps' unused entries are zero: state 0, row
    // 0, and grant 0 in cells past the table, all of which a walk that
    // trusted the lie would read as valid.
    type Lie = (&'static str, fn(&mut Tables));
    let lies: Vec<Lie> = vec![
        ("no classes", |t| t.meta.class_count = 0),
        ("257 classes", |t| t.meta.class_count = 257),
        ("no states", |t| t.meta.states = 0),
        ("states past lsm_row", |t| t.meta.states = MAX_STATES + 1),
        ("states × classes past lsm_next", |t| {
            t.meta.states = MAX_STATES;
            t.meta.class_count = MAX_NEXT / MAX_STATES + 1;
        }),
        ("states × classes wrapping u32", |t| {
            t.meta.states = 1 << 16;
            t.meta.class_count = 1 << 16;
        }),
        ("start out of range", |t| t.meta.start = 1),
        ("rows × steps × rights past lsm_cells", |t| {
            t.meta.rows = MAX_CELLS / 8 + 1;
        }),
        ("rows × steps × rights wrapping u32", |t| {
            t.meta.rows = 1 << 16;
            t.meta.steps = 1 << 16;
            t.meta.rights = 1;
        }),
        ("steps past lsm_cells", |t| t.meta.steps = MAX_CELLS + 1),
        ("rights past lsm_cells", |t| t.meta.rights = MAX_CELLS + 1),
        ("no rows", |t| t.meta.rows = 0),
    ];
    for (what, lie) in lies {
        let mut t = base.clone();
        lie(&mut t);
        core.fill(&t).unwrap();
        ask(&core, &t, what, &all);
        core.fill(&base).unwrap();
        assert_eq!(core.decide(1, 1, b"/a/b").unwrap(), Some(7), "{what}");
    }

    // A next state out of range: three states declared, the walk's first
    // byte goes to state 5, whose lsm_row entry (filled) names a granting
    // row.
    let mut t = base.clone();
    t.meta.states = 3;
    t.meta.class_count = 1;
    t.next = vec![5, 0, 0];
    t.row = vec![0; 6];
    core.fill(&t).unwrap();
    // (The empty path stays at the start state, in range: not asked.)
    ask(&core, &t, "next state out of range", &all[1..]);
    // The same table with the transition in range grants: the refusal
    // above is the range check's.
    t.next = vec![2, 2, 2];
    core.fill(&t).unwrap();
    assert_eq!(core.decide(0, 0, b"/a").unwrap(), Some(7));

    // An accept row out of range: the row named exists in lsm_cells
    // (filled) but not in the meta row's count.
    let mut t = base.clone();
    t.cells = vec![7; 16];
    t.row = vec![1];
    core.fill(&t).unwrap();
    ask(&core, &t, "accept row out of range", &all);
    t.meta.rows = 2;
    core.fill(&t).unwrap();
    assert_eq!(core.decide(0, 0, b"/a").unwrap(), Some(7));

    drop(core);
    assert_eq!(open_fds(), before, "the core's descriptors are all closed");
}
