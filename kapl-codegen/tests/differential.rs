//! Differential tests: the image evaluator (reading the emitted tables as
//! the runtime and BPF programs do) against the reference semantics
//! (`Glob::matches` per grant, grants' address blocks and port ranges), on
//! random requests for hand-written and generated policies; write/read round
//! trips; translation validation catching tampered tables.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "tests"
)]

mod common;

use common::*;
use kapl_check::ir::{Policy, RuleKind, StepId};
use kapl_check::semantics as sem;
use kapl_codegen::{Options, compile, translate};
use kapl_image::{Decision, Evaluator, FsRight, NetOp, Proto, Request};
use kapl_syntax::ast::{NetOp as AstOp, Right};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn build(b: &Builder) -> kapl_image::Image {
    let out = compile(
        &b.policy,
        &b.sources,
        &Options {
            policy: "t".into(),
            compiler: "test".into(),
        },
    )
    .expect("compiles");
    let bytes = kapl_image::write(&out.image).expect("writes");
    let back = kapl_image::read(&bytes).expect("reads");
    assert_eq!(back, out.image, "round trip");
    let tv = translate::validate(&b.policy, &bytes);
    assert!(tv.is_empty(), "translation validation: {tv:#?}");
    back
}

fn to_img_right(r: Right) -> FsRight {
    match r {
        Right::Read => FsRight::Read,
        Right::Write => FsRight::Write,
        Right::Create => FsRight::Create,
        Right::Delete => FsRight::Delete,
    }
}

fn random_addr(rng: &mut Rng) -> IpAddr {
    match rng.below(6) {
        0 => IpAddr::V4(Ipv4Addr::new(
            10,
            rng.below(3) as u8 * 10,
            rng.below(256) as u8,
            rng.below(256) as u8,
        )),
        1 => IpAddr::V4(Ipv4Addr::new(127, 0, 0, rng.below(3) as u8)),
        2 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, rng.below(20) as u8)),
        3 => IpAddr::V6(Ipv4Addr::new(10, 20, rng.below(3) as u8, 7).to_ipv6_mapped()),
        4 => IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            0,
            rng.below(20) as u16,
        )),
        _ => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

fn random_port(rng: &mut Rng) -> u16 {
    *rng.pick(&[
        0, 22, 80, 442, 443, 444, 5432, 8000, 8050, 8099, 8100, 65535,
    ])
}

/// The reference decision: `kapl_check::semantics` (the prover's reference
/// rule semantics) decides allow/deny; the image names the lowest-id grant
/// of the step (plan-wide included) whose rule covers the request.
fn reference(
    policy: &Policy,
    plan: &kapl_check::ir::Plan,
    step: usize,
    req: &sem::Request,
) -> Option<u32> {
    let allowed = sem::plan_grants_cover(policy, plan, Some(StepId(step as u32)), req);
    let lowest = plan
        .grants
        .iter()
        .chain(&plan.steps[step].grants)
        .filter(|g| sem::rule_covers(&policy.grants[g.0 as usize].rule.kind, req))
        .map(|g| g.0)
        .min();
    assert_eq!(
        allowed,
        lowest.is_some(),
        "semantics disagree with themselves on {req:?}"
    );
    lowest
}

fn to_sem_op(op: NetOp) -> AstOp {
    match op {
        NetOp::Connect => AstOp::Connect,
        NetOp::Bind => AstOp::Bind,
    }
}

fn to_sem_proto(p: Proto) -> sem::Proto {
    match p {
        Proto::Tcp => sem::Proto::Tcp,
        Proto::Udp => sem::Proto::Udp,
    }
}

/// Checks `n` random requests per step of every plan (plus `extra` paths);
/// returns how many were allowed (so a test can insist the sample is not
/// all denials).
fn differential(
    policy: &Policy,
    image: &kapl_image::Image,
    rng: &mut Rng,
    n: usize,
    extra: &[Vec<u8>],
) -> usize {
    let mut allowed = 0;
    for (pi, plan) in policy.plans.iter().enumerate() {
        let ev = Evaluator::new(&image.plans[pi]);
        for (si, _) in plan.steps.iter().enumerate() {
            let paths: Vec<Vec<u8>> = (0..n)
                .map(|_| random_path(rng))
                .chain(extra.iter().cloned())
                .collect();
            for path in &paths {
                for r in Right::ALL {
                    let want = reference(
                        policy,
                        plan,
                        si,
                        &sem::Request::Fs {
                            right: r,
                            path: path.clone(),
                        },
                    );
                    // Cross-check the glob reference matcher directly too.
                    assert_eq!(want, reference_path(policy, plan, si, Some(r), path));
                    let got = ev.decide(
                        si as u32,
                        &Request::Fs {
                            right: to_img_right(r),
                            path: path.clone(),
                        },
                    );
                    assert_eq!(
                        got.grant(),
                        want,
                        "plan {} step {si} {r:?} {:?}",
                        plan.name,
                        String::from_utf8_lossy(path)
                    );
                    allowed += usize::from(want.is_some());
                }
                let want = reference(policy, plan, si, &sem::Request::Exec { path: path.clone() });
                let got = ev.decide(si as u32, &Request::Exec { path: path.clone() });
                assert_eq!(
                    got.grant(),
                    want,
                    "exec {:?}",
                    String::from_utf8_lossy(path)
                );
                allowed += usize::from(want.is_some());
            }
            for _ in 0..n {
                let addr = random_addr(rng);
                let port = random_port(rng);
                for op in [NetOp::Connect, NetOp::Bind] {
                    for proto in Proto::ALL {
                        let want = reference(
                            policy,
                            plan,
                            si,
                            &sem::Request::Net {
                                op: to_sem_op(op),
                                addr,
                                port,
                                proto: to_sem_proto(proto),
                            },
                        );
                        let got = ev.decide(
                            si as u32,
                            &Request::Net {
                                op,
                                addr,
                                port,
                                proto,
                            },
                        );
                        assert_eq!(got.grant(), want, "{op:?} {proto:?} {addr} {port}");
                        allowed += usize::from(want.is_some());
                    }
                }
            }
        }
    }
    allowed
}

fn deploy_like() -> Builder {
    let mut b = Builder::new();
    let p = b.plan("investigate", 2);
    b.exec(p, None, &["/lib64/ld-linux-x86-64.so.2"]);
    b.fs(p, None, &[Right::Read], &["/usr/lib/**", "/lib/**"], &[]);
    b.fs(
        p,
        Some(0),
        &[Right::Read],
        &["/var/log/web/deploy-*.log"],
        &[],
    );
    b.exec(p, Some(0), &["/usr/bin/{grep,tail}"]);
    b.fs(
        p,
        Some(1),
        &[Right::Read],
        &["/srv/web/src/**", "/srv/web/config/**", "/srv/web/.git/**"],
        &["/srv/web/**/.env"],
    );
    b.exec(p, Some(1), &["/usr/bin/git"]);
    let q = b.plan("repair", 2);
    b.fs(
        q,
        Some(0),
        &[Right::Read, Right::Write],
        &["/srv/web/config/*.yaml"],
        &[],
    );
    b.fs(q, Some(0), &[Right::Create], &["/tmp/fix-deploy/**"], &[]);
    b.exec(q, Some(1), &["/srv/web/bin/restart"]);
    b.net(
        q,
        Some(1),
        AstOp::Connect,
        &[("10.20.5.7", 32)],
        &[(5432, 5432)],
    );
    b.net(q, None, AstOp::Connect, &[("10.20.0.0", 16)], &[(443, 443)]);
    b.net(
        q,
        Some(1),
        AstOp::Bind,
        &[("::1", 128), ("127.0.0.0", 8)],
        &[(8000, 8099)],
    );
    b.net(
        q,
        Some(1),
        AstOp::Connect,
        &[("::ffff:192.0.2.0", 120)],
        &[(0, 65535)],
    );
    b
}

#[test]
fn deploy_like_policy_agrees_with_reference() {
    let b = deploy_like();
    let image = build(&b);
    let mut rng = Rng(7);
    differential(&b.policy, &image, &mut rng, 300, &[]);
    // Targeted requests.
    let ev = Evaluator::new(&image.plans[0]);
    let read = |p: &str| Request::Fs {
        right: FsRight::Read,
        path: p.as_bytes().to_vec(),
    };
    assert_eq!(
        ev.decide(0, &read("/var/log/web/deploy-1.log")),
        Decision::Allow { grant: 2 }
    );
    assert_eq!(
        ev.decide(1, &read("/var/log/web/deploy-1.log")),
        Decision::Deny
    );
    assert_eq!(
        ev.decide(1, &read("/srv/web/config/a.yaml")),
        Decision::Allow { grant: 4 }
    );
    assert_eq!(ev.decide(1, &read("/srv/web/config/.env")), Decision::Deny);
    assert_eq!(ev.decide(1, &read("/srv/web/src/x/.env")), Decision::Deny);
    let ev = Evaluator::new(&image.plans[1]);
    let net = |a: &str, port| Request::Net {
        op: NetOp::Connect,
        addr: a.parse().unwrap(),
        port,
        proto: Proto::Tcp,
    };
    assert_eq!(
        ev.decide(1, &net("10.20.5.7", 5432)),
        Decision::Allow { grant: 9 }
    );
    assert_eq!(
        ev.decide(1, &net("10.20.5.7", 443)),
        Decision::Allow { grant: 10 },
        "less specific block folded in"
    );
    assert_eq!(ev.decide(0, &net("10.20.5.7", 5432)), Decision::Deny);
    assert_eq!(
        ev.decide(0, &net("::ffff:10.20.1.1", 443)),
        Decision::Allow { grant: 10 }
    );
    assert_eq!(
        ev.decide(1, &net("192.0.2.9", 22)),
        Decision::Allow { grant: 12 }
    );
}

#[test]
fn generated_policies_agree_with_reference() {
    let mut rng = Rng(0x5eed_1234);
    let mut total_allowed = 0;
    for round in 0..40 {
        let mut b = Builder::new();
        let plans = 1 + rng.below(2);
        for pi in 0..plans {
            let steps = 1 + rng.below(3);
            let p = b.plan(&format!("p{pi}"), steps);
            for _ in 0..(1 + rng.below(8)) {
                let step = if rng.chance(30) {
                    None
                } else {
                    Some(rng.below(steps) as u32)
                };
                match rng.below(4) {
                    0 | 1 => {
                        let mut rights: Vec<Right> = Right::ALL
                            .iter()
                            .copied()
                            .filter(|_| rng.chance(50))
                            .collect();
                        if rights.is_empty() {
                            rights.push(Right::Read);
                        }
                        let pats: Vec<String> = (0..1 + rng.below(2))
                            .map(|_| random_glob(&mut rng))
                            .collect();
                        let ex: Vec<String> =
                            (0..rng.below(2)).map(|_| random_glob(&mut rng)).collect();
                        let pr: Vec<&str> = pats.iter().map(String::as_str).collect();
                        let er: Vec<&str> = ex.iter().map(String::as_str).collect();
                        b.fs(p, step, &rights, &pr, &er);
                    }
                    2 => {
                        let pats: Vec<String> = (0..1 + rng.below(2))
                            .map(|_| random_glob(&mut rng))
                            .collect();
                        let pr: Vec<&str> = pats.iter().map(String::as_str).collect();
                        b.exec(p, step, &pr);
                    }
                    _ => {
                        let op = if rng.chance(70) {
                            AstOp::Connect
                        } else {
                            AstOp::Bind
                        };
                        let addrs: Vec<(&str, u8)> = (0..1 + rng.below(2))
                            .map(|_| {
                                *rng.pick(&[
                                    ("10.0.0.0", 8),
                                    ("10.20.0.0", 16),
                                    ("10.20.5.7", 32),
                                    ("127.0.0.0", 8),
                                    ("::1", 128),
                                    ("2001:db8::", 32),
                                    ("2001:db8::10", 128),
                                    ("::ffff:10.20.0.0", 112),
                                    ("0.0.0.0", 0),
                                    ("::", 0),
                                ])
                            })
                            .collect();
                        let ports: Vec<(u16, u16)> = (0..1 + rng.below(2))
                            .map(|_| {
                                *rng.pick(&[
                                    (443, 443),
                                    (0, 65535),
                                    (8000, 8099),
                                    (22, 22),
                                    (5432, 5432),
                                    (80, 444),
                                ])
                            })
                            .collect();
                        b.net(p, step, op, &addrs, &ports);
                    }
                }
            }
        }
        // Drop fs/exec grants whose patterns all failed to parse.
        let image = build(&b);
        total_allowed += differential(&b.policy, &image, &mut rng, 150, &[]);
        let _ = round;
    }
    assert!(
        total_allowed > 1000,
        "the sample exercises allows too: {total_allowed}"
    );
}

/// Gives state `s` of `d` a row of its own: a copy of its current row with
/// `edit` applied (states that shared the old row keep it unchanged), so
/// the corrupted table is still well formed for the reader.
fn rewrite_row(d: &mut kapl_image::Dfa, s: u32, edit: impl FnOnce(&mut [kapl_image::Cell])) {
    let w = d.row_width();
    let old_row = d.state_row[s as usize] as usize;
    let mut row: Vec<kapl_image::Cell> = d.rows[old_row * w..(old_row + 1) * w].to_vec();
    edit(&mut row);
    d.state_row[s as usize] = (d.rows.len() / w) as u32;
    d.rows.extend(row);
}

/// Encodes a corrupted image (it must still be valid for the reader) and
/// runs translation validation on it: with the prover's automata when
/// given (`validate_with`), else from the policy alone (`validate`).
fn revalidate(
    policy: &Policy,
    automata: Option<&kapl_check::GrantAutomata>,
    image: &kapl_image::Image,
) -> Vec<kapl_syntax::Diagnostic> {
    let bytes = kapl_image::write(image).expect("still a valid image");
    match automata {
        Some(a) => translate::validate_with(policy, a, &bytes),
        None => translate::validate(policy, &bytes),
    }
}

#[test]
fn tampered_tables_fail_translation_validation() {
    let b = deploy_like();
    let out = compile(&b.policy, &b.sources, &Options::default()).unwrap();
    // Clear the accept cell of the state reached by a granted path.
    let mut image = out.image.clone();
    let d = &mut image.plans[0].fs;
    let s = d.walk(b"/var/log/web/deploy-1.log");
    let row = d.state_row[s as usize] as usize;
    let w = d.row_width();
    let cell = &mut d.rows[row * w]; // step 0, read
    assert_eq!(cell.grant, 2);
    // Point this row's step-0 read cell at another step-0 read grant
    // (still a valid image), then at nothing.
    cell.grant = kapl_image::NO_GRANT;
    cell.beneath &= !kapl_image::BENEATH_SELF;
    let tv = revalidate(&b.policy, None, &image);
    assert_eq!(tv.len(), 1, "{tv:#?}");
    assert_eq!(tv[0].code, "KAPL0601");
    assert!(
        tv[0].message.contains("/var/log/web/deploy-"),
        "{}",
        tv[0].message
    );

    // Widen a network entry's ports.
    let mut image = out.image.clone();
    let e = image.plans[1]
        .net
        .iter_mut()
        .find(|e| e.prefix == 32 && e.step == 1)
        .unwrap();
    e.ports[0].hi = 65535;
    e.ports.truncate(1);
    let tv = revalidate(&b.policy, None, &image);
    assert!(
        tv.iter()
            .any(|d| d.code == "KAPL0601" && d.witness.is_some()),
        "{tv:#?}"
    );

    // Unreadable bytes.
    let tv = translate::validate(&b.policy, b"junk");
    assert_eq!(tv[0].code, "KAPL0601");
}

/// Provenance: an image that allows exactly the right requests but credits
/// the wrong grant (what the runtime would report) fails translation
/// validation, for path tables and for network entries alike. Each
/// corruption keeps the image valid for the reader (the credited grant
/// holds in that step and has the right kind), so only the provenance
/// check can catch it.
#[test]
fn corrupted_provenance_fails_translation_validation() {
    let b = deploy_like();
    let automata = kapl_check::GrantAutomata::new(&b.policy);
    let out =
        kapl_codegen::compile_with(&b.policy, &automata, &b.sources, &Options::default()).unwrap();
    let bytes = kapl_image::write(&out.image).unwrap();
    assert!(translate::validate_with(&b.policy, &automata, &bytes).is_empty());

    // Path table: the log file is read through grant 2 (step 0's own);
    // credit plan-wide read grant 1 instead, in that one state's row.
    let mut image = out.image.clone();
    let d = &mut image.plans[0].fs;
    let s = d.walk(b"/var/log/web/deploy-1.log");
    assert_eq!(d.cell(s, 0, FsRight::Read.column()).grant, 2);
    rewrite_row(d, s, |row| row[FsRight::Read.column()].grant = 1); // step 0, read
    let tv = revalidate(&b.policy, Some(&automata), &image);
    assert_eq!(tv.len(), 1, "{tv:#?}");
    assert_eq!(tv[0].code, "KAPL0601");
    assert!(
        tv[0]
            .message
            .contains("credits grant 1, the policy grant 2")
            && tv[0].message.contains("/var/log/web/deploy-"),
        "{}",
        tv[0].message
    );

    // Network: point the step-1 entry for 10.20.5.7 at another connect
    // grant that holds in step 1.
    let mut image = out.image.clone();
    let plan = &image.plans[1];
    let holds: Vec<u32> = plan.step_grants(1).collect();
    let e = plan
        .net
        .iter()
        .position(|e| e.prefix == 32 && e.step == 1 && e.op == NetOp::Connect)
        .unwrap();
    let right = plan.net[e].ports[0].grant;
    let other = holds
        .iter()
        .copied()
        .find(|&g| {
            g != right
                && image.grants[g as usize].kind == kapl_image::GrantKind::Net(NetOp::Connect)
        })
        .unwrap();
    image.plans[1].net[e].ports[0].grant = other;
    let tv = revalidate(&b.policy, Some(&automata), &image);
    assert!(
        tv.iter().any(|d| d.code == "KAPL0601"
            && d.message.contains(&format!(
                "the policy gives grant {right}, the image grant {other}"
            ))),
        "{tv:#?}"
    );
}

/// A "everything beneath is granted" flag the policy does not back (it
/// would let the runtime grant a whole directory with one Landlock rule)
/// fails translation validation.
#[test]
fn unfounded_beneath_flag_fails_translation_validation() {
    let b = deploy_like();
    let out = compile(&b.policy, &b.sources, &Options::default()).unwrap();
    let mut image = out.image.clone();
    let d = &mut image.plans[0].fs;
    // Step 0 may read only `deploy-*.log` files in this directory.
    let s = d.walk(b"/var/log/web");
    let cell = d.cell(s, 0, FsRight::Read.column());
    assert_eq!(cell.beneath & kapl_image::BENEATH_ALL, 0);
    rewrite_row(d, s, |row| {
        row[FsRight::Read.column()].beneath |= kapl_image::BENEATH_ALL;
    });
    let tv = revalidate(&b.policy, None, &image);
    assert_eq!(tv.len(), 1, "{tv:#?}");
    assert!(
        tv[0].message.contains("`/var/log/web`")
            && tv[0].message.contains("everything beneath it is granted"),
        "{}",
        tv[0].message
    );

    // The same flag on a state from which nothing is granted at all (the
    // product walk does not go there, but the runtime may).
    let mut image = out.image.clone();
    let d = &mut image.plans[0].fs;
    let s = d.walk(b"/opt");
    assert_eq!(
        d.cell(s, 0, FsRight::Read.column()).grant,
        kapl_image::NO_GRANT
    );
    rewrite_row(d, s, |row| {
        row[FsRight::Read.column()].beneath |= kapl_image::BENEATH_ALL;
    });
    let tv = revalidate(&b.policy, None, &image);
    assert_eq!(tv.len(), 1, "{tv:#?}");
    assert!(
        tv[0].message.contains("everything beneath it is granted"),
        "{}",
        tv[0].message
    );
}

#[test]
fn beneath_flags_and_landlock_plan() {
    let b = deploy_like();
    let image = build(&b);
    let p = &image.plans[1];
    let d = &p.fs;
    let q = d.walk(b"/tmp/fix-deploy");
    let c = d.cell(q, 0, FsRight::Create.column());
    assert_eq!(c.beneath & kapl_image::BENEATH_ALL, kapl_image::BENEATH_ALL);
    let q = d.walk(b"/srv/web/config");
    let c = d.cell(q, 0, FsRight::Read.column());
    assert_eq!(
        c.beneath,
        kapl_image::BENEATH_SOME,
        "partly granted directory"
    );
    let root = d.start;
    let c = d.cell(root, 0, FsRight::Read.column());
    assert_eq!(c.beneath, kapl_image::BENEATH_SOME);
    let ll = &p.steps[0].landlock;
    let w = ll.walks.iter().find(|w| w.grant == 6).unwrap();
    assert_eq!(w.prefixes, vec![b"/srv/web/config".to_vec()]);
    assert!(ll.precision.iter().any(|x| x.grant == 6));
    let ll = &p.steps[1].landlock;
    assert!(ll.tcp_connect.is_empty());
    assert_eq!(
        ll.handled_net & kapl_image::access::NET_CONNECT_TCP,
        0,
        "65536 ports: left to BPF"
    );
    assert!(
        ll.precision
            .iter()
            .any(|x| x.note.contains("65536 TCP ports")),
        "{:#?}",
        ll.precision
    );
    let ll0 = &p.steps[0].landlock;
    assert!(
        ll0.tcp_connect
            .iter()
            .map(|x| (x.lo, x.hi))
            .eq([(443, 443)])
    );
    assert_ne!(ll0.handled_net & kapl_image::access::NET_CONNECT_TCP, 0);
    assert_eq!(
        ll.tcp_bind.iter().map(|x| (x.lo, x.hi)).collect::<Vec<_>>(),
        vec![(8000, 8099)]
    );
    let _ = RuleKind::Exec { patterns: vec![] };
}

#[test]
fn loader_widens_exec_authority() {
    let mut b = deploy_like();
    // The objective's exec bound: the loader and /usr/bin only.
    let bound = kapl_check::ir::Rule {
        kind: RuleKind::Exec {
            patterns: vec![
                pat("/lib64/ld-linux-x86-64.so.2").unwrap(),
                pat("/usr/bin/*").unwrap(),
                pat("/srv/web/bin/*").unwrap(),
            ],
        },
        span: kapl_syntax::Span::new(kapl_syntax::FileId(0), 0, 1),
        via: vec![],
    };
    b.policy.objectives[0].bound.push(bound);
    let out = compile(&b.policy, &b.sources, &Options::default()).unwrap();
    let w: Vec<_> = out
        .warnings
        .iter()
        .filter(|d| d.code == "KAPL0603")
        .collect();
    assert_eq!(w.len(), 2, "both steps of investigate: {w:#?}");
    match &w[0].witness {
        Some(kapl_syntax::Witness::Exec { path }) => assert!(
            path.starts_with("/lib")
                || path.starts_with("/usr/lib")
                || path.starts_with("/var/log"),
            "{path}"
        ),
        other => unreachable!("expected an exec witness, got {other:?}"),
    }
}

/// Paths that exercise a real policy: its grants' literal prefixes, with
/// random tails from the policy's own vocabulary.
fn policy_paths(policy: &Policy, rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    let mut words: Vec<Vec<u8>> = vec![
        b".env".to_vec(),
        b"x".to_vec(),
        b"deploy-1.log".to_vec(),
        b"a.yaml".to_vec(),
    ];
    let mut prefixes: Vec<Vec<u8>> = vec![b"/".to_vec()];
    for g in &policy.grants {
        let pats: Vec<&kapl_check::ir::PatternRef> = match &g.rule.kind {
            RuleKind::Fs {
                patterns, except, ..
            } => patterns.iter().chain(except).collect(),
            RuleKind::Exec { patterns } => patterns.iter().collect(),
            RuleKind::Net { .. } => vec![],
        };
        for p in pats {
            for b in &p.glob.branches {
                let mut path = Vec::new();
                for s in &b.segments {
                    match s {
                        kapl_syntax::glob::Segment::Atoms(atoms) => {
                            path.push(b'/');
                            let mut word = Vec::new();
                            for a in atoms {
                                match a {
                                    kapl_syntax::glob::Atom::Literal(l) => {
                                        word.extend_from_slice(l)
                                    }
                                    _ => word.push(b'x'),
                                }
                            }
                            path.extend_from_slice(&word);
                            words.push(word);
                        }
                        kapl_syntax::glob::Segment::AnyDepth => {}
                    }
                    prefixes.push(path.clone());
                }
            }
        }
    }
    (0..n)
        .map(|_| {
            let mut p = rng.pick(&prefixes).clone();
            for _ in 0..rng.below(3) {
                if p != b"/" {
                    p.push(b'/');
                }
                p.extend_from_slice(rng.pick::<Vec<u8>>(&words));
            }
            if p.is_empty() { b"/".to_vec() } else { p }
        })
        .collect()
}

#[test]
fn examples_agree_with_reference_semantics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/examples");
    let mut rng = Rng(42);
    for name in ["deploy.kapl", "upgrade-deps.kapl"] {
        let text = std::fs::read(root.join(name)).unwrap();
        let mut loader = kapl_check::MemoryLoader::new().with(name, text);
        // The examples' proofs are kapl-prove's tests (prove_examples.rs);
        // here they only need to pass the front end.
        let fe = kapl_check::check_front(&mut loader, name);
        assert!(
            !fe.diagnostics.iter().any(|d| d.is_error()),
            "{name}: {:#?}",
            fe.diagnostics
        );
        let policy = fe.policy.clone().unwrap();
        let out = compile(&policy, &fe.sources, &Options::default()).unwrap();
        let bytes = kapl_image::write(&out.image).unwrap();
        let image = kapl_image::read(&bytes).unwrap();
        assert!(translate::validate(&policy, &bytes).is_empty());
        let extra = policy_paths(&policy, &mut rng, 2000);
        let allowed = differential(&policy, &image, &mut rng, 500, &extra);
        assert!(
            allowed > 500,
            "{name}: only {allowed} allowed requests in the sample"
        );
    }
}

/// The beneath flags against brute force on a small universe: where a
/// state says everything strictly beneath is granted, every sampled path
/// beneath is (soundness: Landlock rules built from it are never wider);
/// where some sampled path beneath is granted, the state says so (the
/// runtime's walk does not prune granted entries).
#[test]
fn beneath_flags_agree_with_brute_force() {
    let mut rng = Rng(0x00be_0ea7);
    let names: Vec<&[u8]> = vec![b"a", b"b", b"ab", b".env", b"x.log", b"bin"];
    for _ in 0..25 {
        let mut b = Builder::new();
        let steps = 1 + rng.below(2);
        let p = b.plan("p", steps);
        for _ in 0..(1 + rng.below(5)) {
            let step = if rng.chance(30) {
                None
            } else {
                Some(rng.below(steps) as u32)
            };
            let pats: Vec<String> = (0..1 + rng.below(2))
                .map(|_| random_glob(&mut rng))
                .collect();
            let ex: Vec<String> = (0..rng.below(2)).map(|_| random_glob(&mut rng)).collect();
            let pr: Vec<&str> = pats.iter().map(String::as_str).collect();
            let er: Vec<&str> = ex.iter().map(String::as_str).collect();
            b.fs(p, step, &[*rng.pick(&Right::ALL)], &pr, &er);
        }
        let image = build(&b);
        let d = &image.plans[0].fs;
        // Directories of depth 0..=2 and their descendants of depth 1..=2.
        let mut dirs: Vec<Vec<u8>> = vec![b"/".to_vec()];
        for x in &names {
            let mut p = b"/".to_vec();
            p.extend_from_slice(x);
            for y in &names {
                let mut q = p.clone();
                q.push(b'/');
                q.extend_from_slice(y);
                dirs.push(q);
            }
            dirs.push(p);
        }
        for dir in &dirs {
            let q = if dir == b"/" { d.start } else { d.walk(dir) };
            let mut below: Vec<Vec<u8>> = Vec::new();
            for x in &names {
                let mut p = if dir == b"/" { Vec::new() } else { dir.clone() };
                p.push(b'/');
                p.extend_from_slice(x);
                for y in &names {
                    let mut r = p.clone();
                    r.push(b'/');
                    r.extend_from_slice(y);
                    below.push(r);
                }
                below.push(p);
            }
            for s in 0..steps as u32 {
                for col in 0..4 {
                    let f = d.cell(q, s, col).beneath;
                    let granted =
                        |p: &Vec<u8>| d.cell(d.walk(p), s, col).grant != kapl_image::NO_GRANT;
                    if f & kapl_image::BENEATH_ALL != 0 {
                        assert!(
                            below.iter().all(granted),
                            "ALL at {:?}",
                            String::from_utf8_lossy(dir)
                        );
                    }
                    if below.iter().any(granted) {
                        assert_ne!(
                            f & kapl_image::BENEATH_SOME,
                            0,
                            "SOME at {:?}",
                            String::from_utf8_lossy(dir)
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn host_name_tables_are_validated() {
    let text = "objective o { bound { net connect \"**.org\" port 1-1024 } }\n\
                plan p under o {\n\
                  grant net connect \"pypi.org\" port 443\n\
                  step s { grant net connect \"*.pythonhosted.org\", \"pypi.org\" port 80, 443 }\n\
                }\n";
    let mut loader = kapl_check::MemoryLoader::new().with("n.kapl", text);
    let fe = kapl_check::check_front(&mut loader, "n.kapl");
    assert!(
        !fe.diagnostics.iter().any(|d| d.is_error()),
        "{:#?}",
        fe.diagnostics
    );
    let policy = fe.policy.clone().unwrap();
    let out = compile(&policy, &fe.sources, &Options::default()).unwrap();
    assert!(translate::validate(&policy, &kapl_image::write(&out.image).unwrap()).is_empty());
    // A pattern widened in the image.
    let mut image = out.image.clone();
    let e = image.plans[0]
        .names
        .iter_mut()
        .find(|e| e.pattern == "*.pythonhosted.org")
        .unwrap();
    e.pattern = "**.pythonhosted.org".into();
    image.plans[0].names.sort();
    let tv = revalidate(&policy, None, &image);
    assert!(
        tv.iter()
            .any(|d| d.code == "KAPL0601" && d.message.contains("pythonhosted.org")),
        "{tv:#?}"
    );
    // A port credited to the wrong grant.
    let mut image = out.image.clone();
    for e in &mut image.plans[0].names {
        for p in &mut e.ports {
            if p.lo <= 80 && 80 <= p.hi {
                p.grant = 0;
            }
        }
    }
    let tv = revalidate(&policy, None, &image);
    assert!(tv.iter().any(|d| d.code == "KAPL0601"), "{tv:#?}");
}
