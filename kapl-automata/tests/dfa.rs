//! Unit-level behaviour of glob automata and their operations.

use kapl_automata::{Dfa, is_normalized};
use kapl_syntax::glob::{Atom, Branch, Glob, Segment};

/// A tiny test-only glob reader (no braces, no escapes) so these tests do
/// not depend on the front end's parser.
fn g(text: &str) -> Glob {
    let branches = text
        .split('|')
        .map(|b| {
            let segments = if b == "/" {
                Vec::new()
            } else {
                b[1..]
                    .split('/')
                    .map(|s| {
                        if s == "**" {
                            return Segment::AnyDepth;
                        }
                        let mut atoms = Vec::new();
                        let bytes = s.as_bytes();
                        let mut i = 0;
                        while i < bytes.len() {
                            match bytes[i] {
                                b'*' => atoms.push(Atom::Star),
                                b'?' => atoms.push(Atom::AnyByte),
                                b'[' => {
                                    let end = i + s[i..].find(']').unwrap_or(0);
                                    let mut body = &bytes[i + 1..end];
                                    let negated = body.first() == Some(&b'!');
                                    if negated {
                                        body = &body[1..];
                                    }
                                    let mut ranges = Vec::new();
                                    let mut j = 0;
                                    while j < body.len() {
                                        if j + 2 < body.len() && body[j + 1] == b'-' {
                                            ranges.push((body[j], body[j + 2]));
                                            j += 3;
                                        } else {
                                            ranges.push((body[j], body[j]));
                                            j += 1;
                                        }
                                    }
                                    atoms.push(Atom::Class { negated, ranges });
                                    i = end;
                                }
                                c => match atoms.last_mut() {
                                    Some(Atom::Literal(l)) => l.push(c),
                                    _ => atoms.push(Atom::Literal(vec![c])),
                                },
                            }
                            i += 1;
                        }
                        Segment::Atoms(atoms)
                    })
                    .collect()
            };
            Branch { segments }
        })
        .collect();
    Glob { branches }
}

fn d(text: &str) -> Dfa {
    Dfa::from_glob(&g(text))
}

#[test]
fn language_basics() {
    let a = d("/a/**");
    for p in ["/a", "/a/b", "/a/b/c", "/a/.env"] {
        assert!(a.accepts(p.as_bytes()), "{p}");
    }
    for p in ["/", "/ab", "/b", "/a/", "/a//b", "/a/.", "/a/..", "/a/../b"] {
        assert!(!a.accepts(p.as_bytes()), "{p}");
    }
    let star = d("/a/*");
    assert!(star.accepts(b"/a/x"));
    assert!(!star.accepts(b"/a"));
    assert!(!star.accepts(b"/a/"));
    assert!(!star.accepts(b"/a/x/y"));
    assert!(star.accepts(b"/a/.env"));
    assert!(!star.accepts(b"/a/."));
    let xs = d("/a/x*");
    assert!(xs.accepts(b"/a/x") && xs.accepts(b"/a/xyz") && !xs.accepts(b"/a/y"));
    assert!(d("/**").accepts(b"/"));
    assert!(d("/").accepts(b"/") && !d("/").accepts(b"/a"));
    assert!(!d("/*").accepts(b"/"));
    assert!(!d("/**/*").accepts(b"/"));
    assert!(d("/**/*").accepts(b"/a"));
    let mid = d("/a/**/b");
    assert!(mid.accepts(b"/a/b") && mid.accepts(b"/a/x/y/b") && !mid.accepts(b"/a"));
    let cls = d("/[a-c]?/[!x]");
    assert!(cls.accepts(b"/bz/y") && !cls.accepts(b"/dz/y") && !cls.accepts(b"/bz/x"));
    assert!(cls.accepts(b"/bz/\xff"));
}

#[test]
fn canonical_equality_and_operations() {
    assert_eq!(d("/a/**"), d("/a|/a/**"));
    assert_eq!(d("/a/**"), d("/a|/a/*|/a/*/**"));
    assert_eq!(d("/**"), Dfa::universe());
    assert!(d("/a/*/**").is_subset_of(&d("/a/**")));
    assert!(!d("/a/**").is_subset_of(&d("/a/*/**")));
    assert_eq!(
        d("/a/**").witness_outside(&d("/a/*/**")),
        Some(b"/a".to_vec())
    );
    let diff = d("/srv/**").difference(&d("/srv/web/**"));
    assert!(diff.accepts(b"/srv/x") && !diff.accepts(b"/srv/web/x"));
    assert_eq!(diff.shortest_member(), Some(b"/srv".to_vec()));
    let hit = d("/srv/web/config/*").witness_common(&d("/srv/web/**/.env"));
    assert_eq!(hit, Some(b"/srv/web/config/.env".to_vec()));
    assert!(Dfa::nothing().is_empty());
    assert!(d("/a/b").intersection(&d("/a/c")).is_empty());
    assert!(
        d("/a/*")
            .union(&d("/a"))
            .equivalent(&d("/a/**").difference(&d("/a/*/*/**")))
    );
    assert_eq!(
        d("/a/*").complement().shortest_member(),
        Some(b"/".to_vec())
    );
    let u = Dfa::union_all([&d("/a"), &d("/b"), &d("/c")]);
    assert_eq!(u, d("/[a-c]"));
}

#[test]
fn witnesses_are_readable() {
    let w = d("/srv/*").shortest_member();
    assert_eq!(w, Some(b"/srv/a".to_vec()));
    let w = d("/srv/[!a-z]").shortest_member();
    assert_eq!(w, Some(b"/srv/0".to_vec()));
    // Hidden names only when nothing else will do.
    assert_eq!(
        d("/var/log/*.log").shortest_member(),
        Some(b"/var/log/a.log".to_vec())
    );
    assert_eq!(
        d("/srv/**/.env").shortest_member(),
        Some(b"/srv/.env".to_vec())
    );
    assert_eq!(
        d("/srv/**").witness_outside(&d("/srv/web/**")),
        Some(b"/srv".to_vec())
    );
}

#[test]
fn beneath_queries() {
    let a = d("/a/**");
    assert!(a.full_beneath_path(b"/a"));
    assert!(a.full_beneath_path(b"/a/b"));
    assert!(!a.full_beneath_path(b"/"));
    assert!(Dfa::universe().full_beneath_path(b"/"));
    let ex = d("/a/**").difference(&d("/a/b/**/.env"));
    assert!(!ex.full_beneath_path(b"/a"));
    assert!(ex.full_beneath_path(b"/a/c"));
    assert!(!d("/a/*").full_beneath_path(b"/a"));
    let s = b"/a/c".iter().fold(ex.start(), |s, &b| ex.next(s, b));
    assert!(ex.full_beneath(s));
    assert!(!ex.is_dead(s));
    let dead = b"/b".iter().fold(ex.start(), |s, &b| ex.next(s, b));
    assert!(ex.is_dead(dead));
}

#[test]
fn structure_is_consistent() {
    let a = Dfa::from_globs([&g("/usr/bin/git"), &g("/usr/bin/grep")]).union(&d("/usr/lib/**"));
    let nc = a.class_count();
    assert_eq!(a.transitions().len(), a.state_count() * nc);
    let mut covered = 0;
    for c in 0..nc {
        for (lo, hi) in a.class_ranges(u8::try_from(c).unwrap_or(0)) {
            covered += usize::from(hi - lo) + 1;
        }
    }
    assert_eq!(covered, 256);
    assert!(nc < 40, "classes should be coarse, got {nc}");
}

#[test]
fn from_paths_keeps_normalized_only() {
    let f = Dfa::from_paths(["/a", "/a/b", "/a/", "/.", "x"]);
    assert!(f.accepts(b"/a") && f.accepts(b"/a/b"));
    assert!(!f.accepts(b"/a/") && !f.accepts(b"/.") && !f.accepts(b"x"));
    assert!(is_normalized(b"/a/b"));
}
