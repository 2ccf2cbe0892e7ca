//! Unit tests: round trips and bad images.

use crate::*;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn loc(line: u32) -> SourceLoc {
    SourceLoc {
        file: 0,
        line,
        column: 5,
        end_line: line,
        end_column: 30,
    }
}

/// A small hand-made image: plan `p` with steps `a` and `b after a`; grant 0
/// plan-wide exec of `/bin/sh`; grant 1 (step a) read of `/srv/x`; grant 2
/// (step b) connect 10.0.0.0/8 port 443.
pub(crate) fn sample() -> Image {
    // fs DFA accepting exactly "/srv/x" (for step a, read, grant 1).
    // classes: '/'=1, 's'=2, 'r'=3, 'v'=4, 'x'=5, other=0.
    let mut classes = vec![0u8; 256];
    for (b, c) in [(b'/', 1u8), (b's', 2), (b'r', 3), (b'v', 4), (b'x', 5)] {
        classes[b as usize] = c;
    }
    // states: 0 dead, 1 start, 2 "/", 3 "/s", 4 "/sr", 5 "/srv", 6 "/srv/", 7 "/srv/x"
    let cc = 6usize;
    let mut t = vec![0u32; 8 * cc];
    let mut set = |s: usize, c: usize, n: u32| t[s * cc + c] = n;
    set(1, 1, 2);
    set(2, 2, 3);
    set(3, 3, 4);
    set(4, 4, 5);
    set(5, 1, 6);
    set(6, 5, 7);
    // rows: 0 = nothing; 1 = some beneath for step a read; 2 = accept a read.
    let w = 2 * 4;
    let mut rows = vec![Cell::EMPTY; 3 * w];
    rows[w] = Cell {
        grant: NO_GRANT,
        beneath: BENEATH_SOME,
    };
    rows[2 * w] = Cell {
        grant: 1,
        beneath: BENEATH_SELF,
    };
    let fs = Dfa {
        kind: DfaKind::Fs,
        steps: 2,
        classes,
        class_count: cc as u16,
        start: 1,
        transitions: t,
        state_row: vec![0, 1, 1, 1, 1, 1, 1, 2],
        rows,
    };
    let mut exec = Dfa::empty(DfaKind::Exec, 2);
    // exec: accept "/bin/sh" crudely: a linear chain over a class per byte.
    let word = b"/bin/sh";
    let mut classes = vec![0u8; 256];
    let mut next = 1u8;
    for &b in word {
        if classes[b as usize] == 0 {
            classes[b as usize] = next;
            next += 1;
        }
    }
    let cc = next as usize;
    let n = word.len() + 2; // dead, start, ..., accept
    let mut t = vec![0u32; n * cc];
    for (i, &b) in word.iter().enumerate() {
        t[(i + 1) * cc + classes[b as usize] as usize] = (i + 2) as u32;
    }
    exec.classes = classes;
    exec.class_count = cc as u16;
    exec.start = 1;
    exec.transitions = t;
    exec.state_row = (0..n).map(|s| if s == n - 1 { 1 } else { 0 }).collect();
    exec.rows = vec![
        Cell::EMPTY,
        Cell::EMPTY,
        Cell {
            grant: 0,
            beneath: BENEATH_SELF,
        },
        Cell {
            grant: 0,
            beneath: BENEATH_SELF,
        },
    ];
    let net = vec![
        NetEntry {
            step: 1,
            op: NetOp::Connect,
            proto: Proto::Tcp,
            family: Family::V4,
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)),
            prefix: 8,
            ports: vec![PortGrant {
                lo: 443,
                hi: 443,
                grant: 2,
            }],
        },
        NetEntry {
            step: 1,
            op: NetOp::Connect,
            proto: Proto::Udp,
            family: Family::V4,
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)),
            prefix: 8,
            ports: vec![PortGrant {
                lo: 443,
                hi: 443,
                grant: 2,
            }],
        },
    ];
    let ll_a = Landlock {
        abi: 7,
        handled_fs: access::ALL_ABI7,
        handled_net: access::NET_BIND_TCP | access::NET_CONNECT_TCP,
        walks: vec![
            Walk {
                grant: 0,
                dfa: DfaKind::Exec,
                rights: RightSet(0),
                access: access::EXECUTE,
                prefixes: vec![b"/bin/sh".to_vec()],
            },
            Walk {
                grant: 1,
                dfa: DfaKind::Fs,
                rights: RightSet(1),
                access: access::of_right(FsRight::Read),
                prefixes: vec![b"/srv/x".to_vec()],
            },
        ],
        tcp_bind: vec![],
        tcp_connect: vec![],
        precision: vec![],
    };
    let ll_b = Landlock {
        walks: vec![ll_a.walks[0].clone()],
        tcp_connect: vec![PortGrant {
            lo: 443,
            hi: 443,
            grant: 2,
        }],
        precision: vec![Precision {
            grant: 2,
            note: "Landlock limits ports only; addresses are enforced by cgroup BPF".into(),
        }],
        ..ll_a.clone()
    };
    Image {
        meta: Meta {
            policy: "sample".into(),
            compiler: "test".into(),
            sources: vec!["sample.kapl".into()],
            params: Vec::new(),
        },
        objectives: vec![Objective {
            name: "o".into(),
            about: Some("an objective".into()),
            rules: vec![
                RuleText {
                    never: false,
                    source: SourceLoc {
                        file: 0,
                        line: 2,
                        column: 5,
                        end_line: 2,
                        end_column: 20,
                    },
                    text: "fs read \"/srv/**\"".into(),
                },
                RuleText {
                    never: true,
                    source: SourceLoc {
                        file: 0,
                        line: 3,
                        column: 5,
                        end_line: 3,
                        end_column: 30,
                    },
                    text: "fs read \"/srv/**/.env\"".into(),
                },
            ],
        }],
        intents: vec![Intent {
            name: "i".into(),
            about: None,
            objective: 0,
            rules: Vec::new(),
        }],
        plans: vec![Plan {
            name: "p".into(),
            about: None,
            objective: 0,
            intent: Some(0),
            grants: vec![0],
            steps: vec![
                Step {
                    name: "a".into(),
                    about: Some("first".into()),
                    after: vec![],
                    grants: vec![1],
                    landlock: ll_a,
                },
                Step {
                    name: "b".into(),
                    about: None,
                    after: vec![0],
                    grants: vec![2, 3],
                    landlock: ll_b,
                },
            ],
            fs,
            exec,
            net,
            names: vec![
                NameEntry {
                    step: 1,
                    proto: Proto::Tcp,
                    pattern: "*.pythonhosted.org".into(),
                    ports: vec![PortGrant {
                        lo: 443,
                        hi: 443,
                        grant: 3,
                    }],
                },
                NameEntry {
                    step: 1,
                    proto: Proto::Tcp,
                    pattern: "pypi.org".into(),
                    ports: vec![PortGrant {
                        lo: 80,
                        hi: 80,
                        grant: 3,
                    }],
                },
            ],
            name_excluded: vec![NameExclusion {
                proto: Proto::Tcp,
                addr: "203.0.113.0".parse().unwrap(),
                prefix: 24,
                ports: vec![(0, 65535)],
            }],
            never_names: vec![NeverName {
                proto: Proto::Udp,
                pattern: "**.evil.example".into(),
                ports: vec![(53, 53)],
            }],
        }],
        grants: vec![
            Grant {
                id: 0,
                plan: 0,
                step: None,
                kind: GrantKind::Exec,
                source: loc(3),
                site: loc(3),
                text: "exec \"/bin/sh\"".into(),
            },
            Grant {
                id: 1,
                plan: 0,
                step: Some(0),
                kind: GrantKind::Fs(RightSet(1)),
                source: loc(5),
                site: loc(5),
                text: "fs read \"/srv/x\"".into(),
            },
            Grant {
                id: 2,
                plan: 0,
                step: Some(1),
                kind: GrantKind::Net(NetOp::Connect),
                source: loc(7),
                site: loc(7),
                text: "net connect 10.0.0.0/8 port 443".into(),
            },
            Grant {
                id: 3,
                plan: 0,
                step: Some(1),
                kind: GrantKind::Net(NetOp::Connect),
                source: loc(8),
                site: loc(8),
                text: "net connect \"*.pythonhosted.org\" port 443, \"pypi.org\" port 80".into(),
            },
        ],
        objective: None,
        against: None,
    }
}

fn reseal(bytes: &mut [u8]) {
    bytes[24..56].copy_from_slice(&[0; 32]);
    let sum = Sha256::digest(&*bytes);
    bytes[24..56].copy_from_slice(&sum);
}

#[test]
fn round_trip() {
    let im = sample();
    let bytes = write(&im).unwrap();
    let back = read(&bytes).unwrap();
    assert_eq!(im, back);
    assert_eq!(write(&back).unwrap(), bytes, "encoding is deterministic");
}

#[test]
fn evaluator_reads_the_tables() {
    let im = sample();
    let p = &im.plans[0];
    let ev = Evaluator::new(p);
    let read_x = Request::Fs {
        right: FsRight::Read,
        path: b"/srv/x".to_vec(),
    };
    assert_eq!(ev.decide(0, &read_x), Decision::Allow { grant: 1 });
    assert_eq!(ev.decide(1, &read_x), Decision::Deny);
    let write_x = Request::Fs {
        right: FsRight::Write,
        path: b"/srv/x".to_vec(),
    };
    assert_eq!(ev.decide(0, &write_x), Decision::Deny);
    let sh = Request::Exec {
        path: b"/bin/sh".to_vec(),
    };
    assert_eq!(ev.decide(0, &sh), Decision::Allow { grant: 0 });
    assert_eq!(ev.decide(1, &sh), Decision::Allow { grant: 0 });
    assert_eq!(
        ev.decide(
            1,
            &Request::Exec {
                path: b"/bin/shx".to_vec()
            }
        ),
        Decision::Deny
    );
    let net = |addr: IpAddr, port, proto| Request::Net {
        op: NetOp::Connect,
        addr,
        port,
        proto,
    };
    let a = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
    assert_eq!(
        ev.decide(1, &net(a, 443, Proto::Tcp)),
        Decision::Allow { grant: 2 }
    );
    assert_eq!(
        ev.decide(1, &net(a, 443, Proto::Udp)),
        Decision::Allow { grant: 2 }
    );
    assert_eq!(ev.decide(1, &net(a, 444, Proto::Tcp)), Decision::Deny);
    assert_eq!(ev.decide(0, &net(a, 443, Proto::Tcp)), Decision::Deny);
    let mapped = IpAddr::V6(Ipv4Addr::new(10, 9, 9, 9).to_ipv6_mapped());
    assert_eq!(
        ev.decide(1, &net(mapped, 443, Proto::Tcp)),
        Decision::Allow { grant: 2 }
    );
    let b = IpAddr::V4(Ipv4Addr::new(11, 0, 0, 1));
    assert_eq!(ev.decide(1, &net(b, 443, Proto::Tcp)), Decision::Deny);
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert_eq!(ev.decide(1, &net(v6, 443, Proto::Tcp)), Decision::Deny);
    assert_eq!(ev.decide(7, &sh), Decision::Deny);
}

#[test]
fn provenance_chain() {
    let im = sample();
    let p = im.provenance(2).unwrap();
    assert_eq!(p.plan.name, "p");
    assert_eq!(p.step.unwrap().name, "b");
    assert_eq!(p.intent.unwrap().name, "i");
    assert_eq!(p.objective.about.as_deref(), Some("an objective"));
    assert_eq!(p.file, "sample.kapl");
    assert_eq!(p.grant.source.line, 7);
    assert!(im.provenance(4).is_none());
    let starts: Vec<_> = im.plans[0]
        .start_steps()
        .map(|(i, s)| (i, s.name.clone()))
        .collect();
    assert_eq!(starts, vec![(0, "a".to_string())]);
}

#[test]
fn every_truncation_is_refused() {
    let bytes = write(&sample()).unwrap();
    for n in 0..bytes.len() {
        let e = read(&bytes[..n]).unwrap_err();
        assert!(
            matches!(e, ImageError::Truncated { .. } | ImageError::BadMagic),
            "length {n}: {e}"
        );
        if n >= 8 {
            assert_eq!(e.code(), "KAPL0701", "length {n}: {e}");
        }
    }
}

#[test]
fn every_bit_flip_is_refused() {
    let bytes = write(&sample()).unwrap();
    for i in 0..bytes.len() {
        for bit in [0, 3, 7] {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            let e = read(&b).unwrap_err();
            // Flips in the magic, version, header length and length fields
            // are reported as such; everything else as a checksum failure.
            let ok = match i {
                0..8 => e == ImageError::BadMagic,
                8..10 => matches!(e, ImageError::UnsupportedVersion { .. }),
                10..12 => matches!(e, ImageError::BadHeader(_)),
                16..24 => matches!(
                    e,
                    ImageError::Truncated { .. } | ImageError::TrailingBytes { .. }
                ),
                _ => e == ImageError::ChecksumMismatch,
            };
            assert!(ok, "byte {i} bit {bit}: {e}");
        }
    }
}

#[test]
fn wrong_version_and_checksum_and_trailing() {
    let bytes = write(&sample()).unwrap();
    let mut b = bytes.clone();
    b[8] = 1;
    reseal(&mut b);
    let e = read(&b).unwrap_err();
    assert_eq!(
        e,
        ImageError::UnsupportedVersion {
            found: 1,
            supported: FORMAT_VERSION
        }
    );
    assert_eq!(e.code(), "KAPL0703");
    assert!(e.to_string().contains("version 1"));

    let mut b = bytes.clone();
    b[30] ^= 0xff;
    assert_eq!(read(&b).unwrap_err().code(), "KAPL0704");

    let mut b = bytes.clone();
    b.push(0);
    assert_eq!(read(&b).unwrap_err().code(), "KAPL0705");

    assert_eq!(
        read(b"hello world, not an image").unwrap_err().code(),
        "KAPL0702"
    );
    assert_eq!(read(b"").unwrap_err().code(), "KAPL0701");
}

#[test]
fn resealed_corruption_is_refused_structurally() {
    // A tamperer who recomputes the checksum still meets the decoder and
    // the validator: flip every byte after the section table, reseal, and
    // the reader must refuse or return a valid image, never panic.
    let bytes = write(&sample()).unwrap();
    let start = HEADER_LEN + SECTION_ENTRY_LEN * SectionKind::ALL.len();
    let mut refused = 0;
    for i in start..bytes.len() {
        for v in [0x00u8, 0xff, 0x01, 0x80] {
            let mut b = bytes.clone();
            if b[i] == v {
                continue;
            }
            b[i] = v;
            reseal(&mut b);
            match read(&b) {
                Ok(im) => {
                    assert!(im.validate().is_ok());
                    assert_eq!(write(&im).unwrap(), b, "accepted bytes are canonical");
                }
                Err(e) => {
                    refused += 1;
                    assert!(e.code().starts_with("KAPL07"), "{e}");
                }
            }
        }
    }
    assert!(refused > 100, "only {refused} corruptions refused");
}

#[test]
fn structural_errors() {
    let bytes = write(&sample()).unwrap();
    // Section table: swap two kinds.
    let mut b = bytes.clone();
    b[64] = 2;
    b[64 + 24] = 1;
    reseal(&mut b);
    assert_eq!(read(&b).unwrap_err().code(), "KAPL0707");
    // Section table: offset beyond the end.
    let mut b = bytes.clone();
    b[64 + 8..64 + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    reseal(&mut b);
    assert_eq!(read(&b).unwrap_err().code(), "KAPL0707");
    // Section count huge.
    let mut b = bytes.clone();
    b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    reseal(&mut b);
    assert_eq!(read(&b).unwrap_err().code(), "KAPL0707");
}

#[test]
fn writer_refuses_invalid_images() {
    let mut im = sample();
    im.plans[0].fs.transitions[3] = 99;
    assert_eq!(write(&im).unwrap_err().code(), "KAPL0709");
    let mut im = sample();
    im.plans[0].steps[0].after = vec![1];
    assert_eq!(write(&im).unwrap_err().code(), "KAPL0709", "cycle");
    let mut im = sample();
    im.plans[0].exec.rows[2].grant = 2; // a net grant in the exec DFA
    assert_eq!(write(&im).unwrap_err().code(), "KAPL0709");
    let mut im = sample();
    im.plans[0].fs.rows[16].grant = 1; // grant 1 is step a's, not b's
    im.plans[0].fs.rows[16].beneath = BENEATH_SELF;
    // row 2, step a read is index 16; this one is step a: still valid.
    assert!(write(&im).is_ok());
    im.plans[0].fs.rows[20].grant = 1; // row 2, step b, read
    im.plans[0].fs.rows[20].beneath = BENEATH_SELF;
    assert_eq!(write(&im).unwrap_err().code(), "KAPL0709");
    let mut im = sample();
    im.plans[0].net[0].addr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(write(&im).unwrap_err().code(), "KAPL0709", "host bits");
    let mut im = sample();
    im.plans[0].steps[0].landlock.walks[1].access |= access::MAKE_CHAR;
    assert_eq!(write(&im).unwrap_err().code(), "KAPL0709");
    // A bound rule as written must point into the image's sources.
    let mut im = sample();
    im.objectives[0].rules[1].source.file = 1;
    let e = write(&im).unwrap_err();
    assert_eq!(e.code(), "KAPL0709");
    assert!(
        e.to_string().contains("a rule of `o` names source file 1"),
        "{e}"
    );
}

#[test]
fn rules_as_written_round_trip_and_a_bad_kind_is_refused() {
    let im = sample();
    let bytes = write(&im).unwrap();
    let back = read(&bytes).unwrap();
    assert_eq!(back.objectives[0].rules, im.objectives[0].rules);
    assert!(back.objectives[0].rules[1].never);
    // The `never` byte of the second rule, found by its text's position.
    let text = b"fs read \"/srv/**/.env\"";
    let at = bytes.windows(text.len()).position(|w| w == text).unwrap();
    let mut bad = bytes.clone();
    // u8 never, loc (20 bytes), u32 text length, then the text.
    bad[at - 4 - 20 - 1] = 2;
    reseal(&mut bad);
    assert_eq!(read(&bad).unwrap_err().code(), "KAPL0708");
}

/// An objective image: objective `o` bounds `fs read "/srv/x"` (rule 0)
/// and never connects to 10.0.0.0/8 port 443 (rule 1); intent `i` bounds
/// nothing. Its tables reuse `sample`'s plan tables, remapped.
pub(crate) fn objective_sample() -> Image {
    let mut im = sample();
    let p = im.plans.remove(0);
    im.grants.clear();
    let mut fs = p.fs;
    for c in &mut fs.rows {
        if c.grant == 1 {
            c.grant = 0;
        }
    }
    let mut net = p.net;
    for e in &mut net {
        for pg in &mut e.ports {
            pg.grant = 1;
        }
    }
    let rule = |never, kind, text: &str| BoundRule {
        level: 0,
        never,
        kind,
        source: loc(2),
        text: text.into(),
    };
    im.objective = Some(ObjectiveTables {
        identity: [0; 32],
        sources: vec![EmbeddedSource {
            name: "sample.kapl".into(),
            text: "objective o { ... }".into(),
        }],
        rules: vec![
            rule(false, GrantKind::Fs(RightSet(1)), "fs read \"/srv/x\""),
            rule(
                true,
                GrantKind::Net(NetOp::Connect),
                "net connect 10.0.0.0/8 port 443",
            ),
        ],
        levels: vec![
            LevelTables {
                level: Level::Objective(0),
                fs,
                exec: Dfa::empty(DfaKind::Exec, LEVEL_COLUMNS),
                net,
                names: Vec::new(),
            },
            LevelTables {
                level: Level::Intent(0),
                fs: Dfa::empty(DfaKind::Fs, LEVEL_COLUMNS),
                exec: Dfa::empty(DfaKind::Exec, LEVEL_COLUMNS),
                net: Vec::new(),
                names: Vec::new(),
            },
        ],
    });
    let id = format::objective_identity(&im).unwrap();
    if let Some(t) = &mut im.objective {
        t.identity = id;
    }
    im
}

#[test]
fn objective_image_round_trips_with_its_identity() {
    let im = objective_sample();
    let bytes = write(&im).unwrap();
    let back = read(&bytes).unwrap();
    assert_eq!(back, im);
    assert_eq!(back.identity_hex().map(|h| h.len()), Some(64));
    // A plan image records what it was built against.
    let mut plan = sample();
    plan.against = Some(Against {
        file: "obj.kapi".into(),
        identity: im.objective.as_ref().unwrap().identity,
    });
    let bytes = write(&plan).unwrap();
    assert_eq!(read(&bytes).unwrap(), plan);
}

#[test]
fn objective_identity_is_checked() {
    // A forged identity (resealed) is refused: the identity is recomputed.
    let mut im = objective_sample();
    im.objective.as_mut().unwrap().identity[0] ^= 1;
    assert_eq!(write(&im).unwrap_err().code(), "KAPL0709");
    // Widening a bound (a resealed edit of the tables) changes the identity.
    let im = objective_sample();
    let mut wider = im.clone();
    wider.objective.as_mut().unwrap().levels[0].net[0].ports[0].hi = 444;
    let id = format::objective_identity(&wider).unwrap();
    assert_ne!(Some(id), im.objective.as_ref().map(|t| t.identity));
    // Renaming the objective changes it too.
    let mut renamed = im.clone();
    renamed.objectives[0].name = "p".into();
    assert_ne!(
        format::objective_identity(&renamed).unwrap(),
        format::objective_identity(&im).unwrap()
    );
}

#[test]
fn objective_tables_are_validated() {
    let base = objective_sample();
    let reseal_id = |mut im: Image| {
        if let Ok(id) = format::objective_identity(&im) {
            im.objective.as_mut().unwrap().identity = id;
        }
        write(&im).unwrap_err().code()
    };
    // A never rule credited in the bound column.
    let mut im = base.clone();
    im.objective.as_mut().unwrap().rules[0].never = true;
    assert_eq!(reseal_id(im), "KAPL0709");
    // A level missing.
    let mut im = base.clone();
    im.objective.as_mut().unwrap().levels.pop();
    assert_eq!(reseal_id(im), "KAPL0709");
    // Levels out of order.
    let mut im = base.clone();
    im.objective.as_mut().unwrap().levels.swap(0, 1);
    assert_eq!(reseal_id(im), "KAPL0709");
    // A DFA with three step columns.
    let mut im = base.clone();
    im.objective.as_mut().unwrap().levels[1].exec = Dfa::empty(DfaKind::Exec, 3);
    assert_eq!(reseal_id(im), "KAPL0709");
    // A rule naming a source that is not embedded.
    let mut im = base;
    im.objective.as_mut().unwrap().rules[1].source.file = 5;
    assert_eq!(reseal_id(im), "KAPL0709");
}

#[test]
fn objective_image_truncations_and_corruptions_are_refused() {
    let bytes = write(&objective_sample()).unwrap();
    for n in 0..bytes.len() {
        assert!(read(&bytes[..n]).is_err(), "length {n}");
    }
    let start = HEADER_LEN + SECTION_ENTRY_LEN * SectionKind::ALL.len();
    for i in start..bytes.len() {
        for v in [0x00u8, 0xff, 0x01] {
            let mut b = bytes.clone();
            if b[i] == v {
                continue;
            }
            b[i] = v;
            let e = read(&b).unwrap_err();
            assert_eq!(e.code(), "KAPL0704", "byte {i}: {e}");
            reseal(&mut b);
            match read(&b) {
                Ok(im) => assert_eq!(write(&im).unwrap(), b, "accepted bytes are canonical"),
                Err(e) => assert!(e.code().starts_with("KAPL07"), "{e}"),
            }
        }
    }
}

#[test]
fn parameters_round_trip_and_are_validated() {
    let mut im = sample();
    let plain = write(&im).unwrap();
    im.meta.params = vec![
        ("home".into(), "/home/dev".into()),
        ("proj".into(), "/x/a*b".into()),
    ];
    let bytes = write(&im).unwrap();
    assert_eq!(read(&bytes).unwrap(), im);
    // The list is appended to `meta` only when there are parameters.
    assert!(bytes.len() > plain.len());
    let mut cleared = im.clone();
    cleared.meta.params.clear();
    assert_eq!(write(&cleared).unwrap(), plain, "no parameters, no list");
    for bad in [
        vec![("proj".into(), "rel".into())],
        vec![("proj".into(), "/a/../b".into())],
        vec![("proj".into(), "/a/".into())],
        vec![("1x".into(), "/a".into())],
        vec![("b".into(), "/a".into()), ("a".into(), "/a".into())],
        vec![("a".into(), "/a".into()), ("a".into(), "/b".into())],
    ] {
        let mut im = sample();
        im.meta.params = bad;
        assert_eq!(write(&im).unwrap_err().code(), "KAPL0709");
    }
}

#[test]
fn objective_identity_covers_parameters() {
    let im = objective_sample();
    let mut with = im.clone();
    with.meta.params = vec![("proj".into(), "/x".into())];
    let id = format::objective_identity(&with).unwrap();
    assert_ne!(Some(id), im.objective.as_ref().map(|t| t.identity));
    // The old identity no longer matches once values are recorded.
    assert_eq!(write(&with).unwrap_err().code(), "KAPL0709");
    if let Some(t) = with.objective.as_mut() {
        t.identity = id;
    }
    let bytes = write(&with).unwrap();
    assert_eq!(read(&bytes).unwrap(), with);
}

#[test]
fn name_tables_answer_the_resolver() {
    let im = sample();
    let p = &im.plans[0];
    let pg = |lo, hi, grant| PortGrant { lo, hi, grant };
    assert_eq!(
        p.name_ports(1, Proto::Tcp, "files.pythonhosted.org"),
        vec![pg(443, 443, 3)]
    );
    assert_eq!(p.name_ports(1, Proto::Tcp, "pypi.org"), vec![pg(80, 80, 3)]);
    assert!(p.name_ports(0, Proto::Tcp, "pypi.org").is_empty(), "step a");
    assert!(p.name_ports(1, Proto::Udp, "pypi.org").is_empty(), "udp");
    assert!(
        p.name_ports(1, Proto::Tcp, "a.b.pythonhosted.org")
            .is_empty()
    );
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(p.name_admits(Proto::Tcp, ip("151.101.0.223"), 443));
    assert!(p.name_admits(Proto::Tcp, ip("2a04:4e42::223"), 443));
    assert!(
        !p.name_admits(Proto::Tcp, ip("169.254.169.254"), 443),
        "reserved"
    );
    assert!(
        !p.name_admits(Proto::Tcp, ip("::ffff:127.0.0.1"), 443),
        "mapped"
    );
    assert!(
        !p.name_admits(Proto::Tcp, ip("203.0.113.9"), 443),
        "excluded"
    );
    assert!(!p.name_admits(Proto::Tcp, ip("::ffff:203.0.113.9"), 443));
    assert!(
        p.name_admits(Proto::Udp, ip("203.0.113.9"), 443),
        "tcp only"
    );
    assert!(p.name_never(Proto::Udp, "a.b.evil.example"));
    assert!(!p.name_never(Proto::Udp, "evil.example"));
    assert!(!p.name_never(Proto::Tcp, "a.evil.example"));
}

#[test]
fn evaluator_decides_by_name() {
    let im = sample();
    let ev = Evaluator::new(&im.plans[0]);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let d = |step, name, addr, port| ev.decide_name(step, Proto::Tcp, name, ip(addr), port);
    assert_eq!(
        d(1, "x.pythonhosted.org", "151.101.0.223", 443),
        Decision::Allow { grant: 3 }
    );
    assert_eq!(
        d(1, "x.pythonhosted.org", "151.101.0.223", 80),
        Decision::Deny
    );
    assert_eq!(
        d(0, "x.pythonhosted.org", "151.101.0.223", 443),
        Decision::Deny
    );
    assert_eq!(
        d(1, "x.pythonhosted.org", "10.0.0.1", 443),
        Decision::Allow { grant: 2 },
        "by address"
    );
    assert_eq!(
        d(1, "x.pythonhosted.org", "192.168.0.1", 443),
        Decision::Deny,
        "reserved"
    );
    assert_eq!(d(9, "pypi.org", "151.101.0.223", 80), Decision::Deny);
}

#[test]
fn name_ports_merge_to_the_lowest_grant() {
    let pg = |lo, hi, grant| PortGrant { lo, hi, grant };
    let a = [pg(80, 100, 5), pg(443, 443, 2)];
    let b = [pg(90, 443, 3)];
    assert_eq!(
        merge_ports(&a, &b),
        vec![pg(80, 89, 5), pg(90, 442, 3), pg(443, 443, 2)]
    );
    assert_eq!(
        merge_ports(&[pg(0, 65535, 1)], &[pg(65535, 65535, 0)]),
        vec![pg(0, 65534, 1), pg(65535, 65535, 0)]
    );
    assert_eq!(
        merge_ports(&[], &[pg(1, 2, 0), pg(3, 4, 0)]),
        vec![pg(1, 4, 0)]
    );
    let mut im = sample();
    im.plans[0].names.push(NameEntry {
        step: 1,
        proto: Proto::Tcp,
        pattern: "pypi.org.*".into(),
        ports: vec![pg(79, 81, 2)],
    });
    im.plans[0].names.sort();
    assert_eq!(
        im.plans[0].name_ports(1, Proto::Tcp, "pypi.org"),
        vec![pg(80, 80, 3)],
        "another pattern"
    );
    im.plans[0].names.push(NameEntry {
        step: 1,
        proto: Proto::Tcp,
        pattern: "*.org".into(),
        ports: vec![pg(79, 81, 2)],
    });
    im.plans[0].names.sort();
    assert_eq!(
        im.plans[0].name_ports(1, Proto::Tcp, "pypi.org"),
        vec![pg(79, 81, 2)]
    );
    let back = read(&write(&im).unwrap()).unwrap();
    assert_eq!(back, im);
}

#[test]
fn name_tables_are_validated() {
    let bad = |f: &dyn Fn(&mut Plan)| {
        let mut im = sample();
        f(&mut im.plans[0]);
        let e = write(&im).unwrap_err();
        assert_eq!(e.code(), "KAPL0709", "{e}");
    };
    bad(&|p| p.names[0].pattern = "*.PythonHosted.org".into());
    bad(&|p| p.names[0].pattern = "a.**.org".into());
    bad(&|p| p.names[0].pattern = "pypi.org.".into());
    bad(&|p| p.names.swap(0, 1));
    bad(&|p| p.names[1].pattern = p.names[0].pattern.clone());
    bad(&|p| p.names[0].ports.clear());
    bad(&|p| p.names[0].ports[0].grant = 1);
    bad(&|p| p.names[0].ports[0].grant = 2 + 5);
    bad(&|p| p.names[0].step = 0);
    bad(&|p| {
        p.names[0].ports = vec![
            PortGrant {
                lo: 2,
                hi: 3,
                grant: 3,
            },
            PortGrant {
                lo: 3,
                hi: 4,
                grant: 3,
            },
        ]
    });
    bad(&|p| p.name_excluded[0].prefix = 16);
    bad(&|p| p.name_excluded[0].prefix = 33);
    bad(&|p| p.name_excluded[0].ports.clear());
    bad(&|p| p.name_excluded[0].ports = vec![(5, 4)]);
    bad(&|p| p.name_excluded.push(p.name_excluded[0].clone()));
    bad(&|p| p.never_names[0].pattern = "a*.evil.example".into());
    bad(&|p| p.never_names[0].ports = vec![(1, 5), (5, 6)]);
    bad(&|p| p.never_names.insert(0, p.never_names[0].clone()));
}

#[test]
fn tampered_name_bytes_are_refused() {
    let im = sample();
    let bytes = write(&im).unwrap();
    let at = bytes
        .windows(b"pypi.org".len())
        .rposition(|w| w == b"pypi.org")
        .unwrap();
    for (i, b) in [(at, b'P'), (at + 4, b'*'), (at, 0xff), (at - 3, 0x7f)] {
        let mut x = bytes.clone();
        x[i] = b;
        reseal(&mut x);
        let e = read(&x).unwrap_err();
        assert!(matches!(e.code(), "KAPL0708" | "KAPL0709"), "{e}");
    }
}

#[test]
fn objective_name_rules_round_trip_and_change_the_identity() {
    let mut im = objective_sample();
    let plain = im.objective.as_ref().unwrap().identity;
    let t = im.objective.as_mut().unwrap();
    t.rules.push(BoundRule {
        level: 0,
        never: false,
        kind: GrantKind::Net(NetOp::Connect),
        source: SourceLoc { file: 0, ..loc(1) },
        text: "net connect \"**.org\" port 443".into(),
    });
    let rule = (t.rules.len() - 1) as u32;
    t.levels[0].names.push(NameEntry {
        step: BOUND,
        proto: Proto::Tcp,
        pattern: "**.org".into(),
        ports: vec![PortGrant {
            lo: 443,
            hi: 443,
            grant: rule,
        }],
    });
    let id = format::objective_identity(&im).unwrap();
    assert_ne!(id, plain);
    im.objective.as_mut().unwrap().identity = id;
    let bytes = write(&im).unwrap();
    assert_eq!(read(&bytes).unwrap(), im);
    // A level name rule crediting a `never` rule from the bound column.
    let mut bad = im.clone();
    bad.objective.as_mut().unwrap().levels[0].names[0].ports[0].grant = 1;
    assert_eq!(write(&bad).unwrap_err().code(), "KAPL0709");
}
