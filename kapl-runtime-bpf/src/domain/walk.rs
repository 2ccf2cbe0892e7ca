//! The walk (stage: runtime, file-system wall): path automata run over the
//! live file system, never through a symbolic link.
//!
//! Input: a [`PathAutomaton`] (rights per state, grants per right), the
//! literal prefixes to start from and [`WalkLimits`]. Output: a [`Walk`]:
//! the rules found (a subtree rule on a directory whose whole subtree is
//! granted rights, else one rule per existing entry), each re-checked
//! against the automaton from the start state, and the narrowings (where
//! the result is narrower than the grant as written, per grant).
//!
//! The walk itself never goes through a link. A link that an automaton
//! which [follows links](PathAutomaton::follows_links) (exec) grants file
//! rights to gets a rule on the regular file it resolves to, with the
//! rights the link's path is granted, when nothing on the way can be
//! changed by the plan ([`follow::resolve`](super::follow::resolve)); the
//! precision report says which links were followed, and why the others
//! were not.

use super::{AddedRule, DomainError, Narrowing, NarrowingKind, PathAutomaton, access, follow, run};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Limits of a walk.
#[derive(Clone, Copy, Debug)]
pub struct WalkLimits {
    /// Deepest directory level walked.
    pub max_depth: usize,
    /// Most rules added in one step.
    pub max_rules: usize,
    /// Most directories beneath a wholly granted one that get a rule of
    /// their own (the same rights: nothing more is granted), so that
    /// Landlock's walk up from a file stops at its own directory instead of
    /// the grant's root. Bounds the step's start-up: one `readdir` and one
    /// rule per directory, breadth first from each grant root.
    pub deep_rules: usize,
}

impl Default for WalkLimits {
    fn default() -> Self {
        WalkLimits {
            max_depth: 64,
            max_rules: 1_000_000,
            deep_rules: 4096,
        }
    }
}

/// The rules a walk produced.
#[derive(Debug, Default)]
pub struct Walk {
    /// Rules in the order found.
    pub rules: Vec<AddedRule>,
    /// Narrowings per grant id (the first three of each kind).
    pub narrowed: BTreeMap<u32, Vec<Narrowing>>,
    /// How many narrowings of each kind per grant.
    pub counts: BTreeMap<(u32, NarrowingKind), usize>,
    /// Directory rules added beneath wholly granted directories (see
    /// [`WalkLimits::deep_rules`]).
    pub deep: usize,
}

impl Walk {
    /// Records that the file at `path` got no rule because it is
    /// hard-linked (found by [`build_walked`](super::build_walked)), against
    /// the grants of `a`
    /// that cover it.
    pub fn refused_link(&mut self, a: &dyn PathAutomaton, path: &Path) {
        let s = run(a, path.as_os_str().as_bytes());
        let bits = a.accept(s) & access::FILE;
        if bits != 0 {
            self.narrow(a.grants(s, bits), Narrowing::HardLink(path.to_path_buf()));
        }
        if !a.follows_links() {
            return;
        }
        // A followed link whose file got no rule after all: not followed.
        let mut links = Vec::new();
        for (g, ns) in &mut self.narrowed {
            ns.retain(|n| match n {
                Narrowing::Followed(l, t) if t == path => {
                    links.push((*g, l.clone()));
                    false
                }
                _ => true,
            });
        }
        for (g, l) in links {
            if let Some(c) = self.counts.get_mut(&(g, NarrowingKind::Followed)) {
                *c = c.saturating_sub(1);
            }
            let why = format!(
                "it resolves to {}, which is hard-linked where a rule would grant its other names too",
                path.display()
            );
            self.narrow(vec![g], Narrowing::Symlink(l, Some(why)));
        }
        self.counts.retain(|_, c| *c > 0);
    }

    fn narrow(&mut self, grants: Vec<u32>, n: Narrowing) {
        let kind = n.kind();
        for g in grants {
            let c = self.counts.entry((g, kind)).or_insert(0);
            *c += 1;
            if *c <= 3 {
                let v = self.narrowed.entry(g).or_default();
                if !v.contains(&n) {
                    v.push(n.clone());
                }
            }
        }
    }
}

/// Walks `a` over the file system from `/`.
pub fn walk(a: &dyn PathAutomaton, limits: WalkLimits) -> Result<Walk, DomainError> {
    let mut w = Walk::default();
    walk_into(a, &mut w, &[b"/".to_vec()], limits)?;
    Ok(w)
}

/// Walks `a` from each literal prefix (absolute, normalized); prefixes
/// beneath another one are found by walking that one. A prefix reached
/// through a symbolic link is not followed.
pub fn walk_into(
    a: &dyn PathAutomaton,
    w: &mut Walk,
    prefixes: &[Vec<u8>],
    limits: WalkLimits,
) -> Result<(), DomainError> {
    let mut ps: Vec<&Vec<u8>> = prefixes.iter().collect();
    ps.sort();
    ps.dedup();
    let mut kept: Vec<&Vec<u8>> = Vec::new();
    for p in ps {
        let beneath_kept = kept
            .iter()
            .any(|k| k.as_slice() == b"/" || (p.starts_with(k) && p.get(k.len()) == Some(&b'/')));
        if !beneath_kept {
            kept.push(p);
        }
    }
    for p in kept {
        if p.first() != Some(&b'/') {
            continue;
        }
        let s = run(a, p);
        if a.live(s) == 0 {
            continue;
        }
        // Never through a symlink: check every component.
        let mut ok = true;
        let mut cur = Vec::new();
        for comp in p.split(|b| *b == b'/').filter(|c| !c.is_empty()) {
            cur.push(b'/');
            cur.extend_from_slice(comp);
            match fs::symlink_metadata(OsStr::from_bytes(&cur)) {
                Ok(m) if m.file_type().is_symlink() => {
                    ok = false;
                    // A literal path to a file, through a link anywhere
                    // on it: the file it resolves to, if it may be
                    // followed. A directory reached through a link is not
                    // walked (its rules would be on other paths than the
                    // grant's).
                    if a.follows_links() && a.accept(s) & access::FILE != 0 {
                        symlink(a, w, p, s, limits)?;
                        break;
                    }
                    let t = run(a, &cur);
                    w.narrow(
                        a.grants_any(t, a.live(t)),
                        Narrowing::Symlink(PathBuf::from(OsStr::from_bytes(&cur)), None),
                    );
                    break;
                }
                Ok(_) => {}
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        let is_dir = fs::symlink_metadata(OsStr::from_bytes(p)).is_ok_and(|m| m.is_dir());
        if is_dir {
            let u = if p.as_slice() == b"/" {
                s
            } else {
                a.next(s, b'/')
            };
            let dir = Dir {
                path: p,
                s,
                u,
                covered: 0,
                depth: 0,
            };
            if let Listing::Possible(top) = walk_dir(a, w, dir, limits)? {
                w.listing_rule(top);
            }
        } else {
            let bits = a.accept(s) & access::FILE;
            let path = PathBuf::from(OsStr::from_bytes(p));
            if bits != 0 && w.rules.len() >= limits.max_rules {
                w.narrow(a.grants(s, bits), Narrowing::TooMany(path));
                continue;
            }
            if bits != 0 {
                check_rule(a, p, bits, false)?;
                w.rules.push(AddedRule {
                    path,
                    access: bits,
                    subtree: false,
                });
            }
        }
    }
    Ok(())
}

/// A directory the walk is in: its path, the automaton's state after the
/// path (`s`) and after its trailing `/` (`u`; the same state for the
/// root), the rights a subtree rule above it already grants, and how deep
/// it is.
#[derive(Clone, Copy)]
struct Dir<'p> {
    path: &'p [u8],
    s: u32,
    u: u32,
    covered: u64,
    depth: usize,
}

/// Walks one directory: its subtree rule, then each entry worth looking
/// at ([`walk_entry`]).
fn walk_dir(
    a: &dyn PathAutomaton,
    w: &mut Walk,
    dir: Dir<'_>,
    limits: WalkLimits,
) -> Result<Listing, DomainError> {
    let fs_path = Path::new(OsStr::from_bytes(dir.path));
    let Some(rule) = subtree_rule(a, w, &dir, limits)? else {
        return Ok(Listing::No);
    };
    let dir = Dir {
        covered: dir.covered | rule,
        ..dir
    };
    let (u, covered) = (dir.u, dir.covered);
    // Making, removing and moving names is not the rules' (the supervised
    // layer decides it per name): only file rights and listing.
    let below = a.live(u);
    if below & !covered & (access::FILE | access::READ_DIR) == 0 {
        if rule & access::FILE != 0 {
            deepen(a, w, fs_path, rule & access::FILE, limits)?;
        }
        // Nothing more to grant beneath: listable with everything beneath
        // only if a subtree rule already says so.
        return Ok(if covered & access::READ_DIR != 0 {
            Listing::Covered
        } else {
            Listing::No
        });
    }
    if dir.depth >= limits.max_depth {
        // Fail closed: nothing deeper gets a rule; say so.
        w.narrow(
            a.grants_any(u, below & !covered & (access::FILE | access::READ_DIR)),
            Narrowing::TooDeep(fs_path.to_path_buf()),
        );
        return Ok(Listing::No);
    }
    let mut per_entry = false;
    let (list, whole) = entries(a, u, fs_path);
    // Directories beneath that could be listed if a rule above them let
    // every directory beneath be listed.
    let mut pending: Vec<PathBuf> = Vec::new();
    let mut all = whole;
    for (name, kind) in list {
        let e = walk_entry(a, w, &dir, &name, kind, limits)?;
        per_entry |= e.rule;
        match e.listing {
            Listing::Covered => {}
            Listing::Possible(p) => pending.push(p),
            Listing::No => all = false,
        }
    }
    if per_entry {
        let g = a.grants_any(u, below & access::FILE & !covered);
        w.narrow(g, Narrowing::PerEntry(fs_path.to_path_buf()));
    }
    if covered & access::READ_DIR != 0 {
        return Ok(Listing::Covered);
    }
    // Listable beside what the step may not list: when every directory
    // beneath that exists may be listed, and the step can make none it may
    // not list (making and moving names is decided exactly, per name, by
    // the supervised layer), one listing rule here lets this directory and
    // everything beneath be listed, and names only what the grants let be
    // listed. (A directory made beneath by a process outside the session
    // is listable: the threat model says so.)
    if all && a.accept(dir.s) & access::READ_DIR != 0 && !a.unlistable_dir_below(u) {
        return Ok(Listing::Possible(fs_path.to_path_buf()));
    }
    for p in pending {
        w.listing_rule(p);
    }
    Ok(Listing::No)
}

/// Rules with `bits` (what the rule on `top` grants to every file beneath
/// it) on the directories beneath `top`, breadth first, within the
/// step's budget ([`WalkLimits::deep_rules`]): they grant nothing the rule
/// on `top` does not, but Landlock's walk up from a file stops at the
/// first rule that grants every right the open asks for, so an open deep
/// in a granted tree is decided at its own directory. Never through a
/// symbolic link (entry types from `readdir`); each rule checked against
/// the automaton like any other.
fn deepen(
    a: &dyn PathAutomaton,
    w: &mut Walk,
    top: &Path,
    bits: u64,
    limits: WalkLimits,
) -> Result<(), DomainError> {
    let mut queue = std::collections::VecDeque::from([top.to_path_buf()]);
    while let Some(d) = queue.pop_front() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if w.deep >= limits.deep_rules || w.rules.len() >= limits.max_rules {
                return Ok(());
            }
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            check_rule(a, p.as_os_str().as_bytes(), bits, true)?;
            w.rules.push(AddedRule {
                path: p.clone(),
                access: bits,
                subtree: true,
            });
            w.deep += 1;
            queue.push_back(p);
        }
    }
    Ok(())
}

/// Whether a directory and every directory beneath it may be listed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Listing {
    /// Already, by a subtree rule (or it is no directory).
    Covered,
    /// Possible with one listing rule on this directory (its path), which
    /// an ancestor's may replace.
    Possible(PathBuf),
    /// Not every directory beneath may be listed.
    No,
}

/// What walking one entry did.
struct Entry {
    /// It got a per-entry rule.
    rule: bool,
    /// Whether it and everything beneath may be listed.
    listing: Listing,
}

impl Walk {
    /// A rule that lets `dir` and every directory beneath be listed (see
    /// [`walk_dir`]).
    fn listing_rule(&mut self, dir: PathBuf) {
        self.rules.push(AddedRule {
            path: dir,
            access: access::READ_DIR,
            subtree: true,
        });
    }
}

/// The rule on `dir` for its whole subtree (0: none), added to `w`; `None`
/// when the rule bound is reached (fail closed: no rule, and nothing below
/// is walked).
fn subtree_rule(
    a: &dyn PathAutomaton,
    w: &mut Walk,
    dir: &Dir<'_>,
    limits: WalkLimits,
) -> Result<Option<u64>, DomainError> {
    let (s_self, covered) = (dir.s, dir.covered);
    let fs_path = Path::new(OsStr::from_bytes(dir.path));
    let beneath = a.beneath_all(s_self);
    let mut rule = beneath & !covered & access::FILE;
    rule |= beneath & a.accept(s_self) & access::READ_DIR & !covered;
    if rule != 0 && w.rules.len() >= limits.max_rules {
        w.narrow(
            a.grants_any(s_self, rule),
            Narrowing::TooMany(fs_path.to_path_buf()),
        );
        return Ok(None);
    }
    if rule != 0 {
        check_rule(a, dir.path, rule, true)?;
        w.rules.push(AddedRule {
            path: fs_path.to_path_buf(),
            access: rule,
            subtree: true,
        });
    }
    Ok(Some(rule))
}

/// The entry `name` (of `kind`) of `dir`, whose `covered` includes the
/// directory's own rule: a directory is walked, a symbolic link is only
/// reported, any other file gets a per-entry rule for the file rights
/// granted to it. Whether it got one.
fn walk_entry(
    a: &dyn PathAutomaton,
    w: &mut Walk,
    dir: &Dir<'_>,
    name: &OsStr,
    kind: Kind,
    limits: WalkLimits,
) -> Result<Entry, DomainError> {
    let covered = dir.covered;
    let mut t = dir.u;
    for b in name.as_bytes() {
        t = a.next(t, *b);
    }
    let want = a.live(t) & !covered & (access::FILE | access::READ_DIR);
    let none = |listing| Entry {
        rule: false,
        listing,
    };
    if want == 0 {
        // A directory the step may not list blocks a listing rule above.
        let unlisted = matches!(kind, Kind::Dir) && covered & access::READ_DIR == 0;
        return Ok(none(if unlisted {
            Listing::No
        } else {
            Listing::Covered
        }));
    }
    let mut child = dir.path.to_vec();
    if dir.path != b"/" {
        child.push(b'/');
    }
    child.extend_from_slice(name.as_bytes());
    let child_fs = PathBuf::from(OsStr::from_bytes(&child));
    match kind {
        Kind::Dir => {
            let sub = Dir {
                path: &child,
                s: t,
                u: a.next(t, b'/'),
                covered,
                depth: dir.depth + 1,
            };
            let listing = walk_dir(a, w, sub, limits)?;
            if listing == Listing::No
                && a.accept(t) & access::READ_DIR & !covered != 0
                && a.beneath_all(t) & access::READ_DIR == 0
            {
                // Listing this directory alone cannot be granted without
                // its subdirectories.
                w.narrow(
                    a.grants(t, access::READ_DIR),
                    Narrowing::PerEntry(child_fs.clone()),
                );
            }
            return Ok(none(listing));
        }
        Kind::Symlink => {
            if a.accept(t) & !covered != 0 {
                symlink(a, w, &child, t, limits)?;
            }
        }
        Kind::Other => {
            let bits = a.accept(t) & !covered & access::FILE;
            if bits != 0 && w.rules.len() >= limits.max_rules {
                w.narrow(a.grants(t, bits), Narrowing::TooMany(child_fs));
                return Ok(none(Listing::Covered));
            }
            if bits != 0 {
                check_rule(a, &child, bits, false)?;
                w.rules.push(AddedRule {
                    path: child_fs,
                    access: bits,
                    subtree: false,
                });
                return Ok(Entry {
                    rule: true,
                    listing: Listing::Covered,
                });
            }
        }
    }
    Ok(none(Listing::Covered))
}

/// The symbolic link `link`, which ends in state `t`: followed to the file
/// it resolves to when the automaton follows links, grants it file rights
/// and nothing on the way can be changed by the plan (a rule on that file
/// with the rights of the link's path, checked against the automaton at
/// the link, said in the precision report); otherwise reported as not
/// followed, with the reason when it would have been.
fn symlink(
    a: &dyn PathAutomaton,
    w: &mut Walk,
    link: &[u8],
    t: u32,
    limits: WalkLimits,
) -> Result<(), DomainError> {
    let link_fs = PathBuf::from(OsStr::from_bytes(link));
    let bits = a.accept(t) & access::FILE;
    if !a.follows_links() || bits == 0 {
        w.narrow(a.grants(t, a.accept(t)), Narrowing::Symlink(link_fs, None));
        return Ok(());
    }
    let grants = a.grants(t, bits);
    match follow::resolve(a, &link_fs) {
        Err(why) => w.narrow(grants, Narrowing::Symlink(link_fs, Some(why))),
        Ok(_) if w.rules.len() >= limits.max_rules => w.narrow(grants, Narrowing::TooMany(link_fs)),
        Ok(target) => {
            check_rule(a, link, bits, false)?;
            w.rules.push(AddedRule {
                path: target.clone(),
                access: bits,
                subtree: false,
            });
            w.narrow(grants, Narrowing::Followed(link_fs, target));
        }
    }
    Ok(())
}

trait GrantsAny {
    fn grants_any(&self, state: u32, rights: u64) -> Vec<u32>;
}

impl<T: PathAutomaton + ?Sized> GrantsAny for T {
    /// Grants with `rights` in any state reachable from `state` (bounded
    /// breadth-first search).
    fn grants_any(&self, state: u32, rights: u64) -> Vec<u32> {
        let mut seen = std::collections::HashSet::new();
        let mut queue = vec![state];
        let mut out = Vec::new();
        while let Some(s) = queue.pop() {
            if !seen.insert(s) || seen.len() > 4096 {
                continue;
            }
            for g in self.grants(s, rights) {
                if !out.contains(&g) {
                    out.push(g);
                }
            }
            for b in 0..=255u8 {
                let t = self.next(s, b);
                if self.live(t) & rights != 0 {
                    queue.push(t);
                }
            }
        }
        out
    }
}

enum Kind {
    Dir,
    Symlink,
    Other,
}

/// The entries of `dir` worth looking at from state `u`: when the automaton
/// admits a single literal name, that name alone (lstat, no readdir); and
/// whether they are all of its entries (it was read).
fn entries(a: &dyn PathAutomaton, u: u32, dir: &Path) -> (Vec<(std::ffi::OsString, Kind)>, bool) {
    let kind_of = |p: &Path| -> Option<Kind> {
        let m = fs::symlink_metadata(p).ok()?;
        let ft = m.file_type();
        Some(if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_dir() {
            Kind::Dir
        } else {
            Kind::Other
        })
    };
    if let Some(lit) = literal_name(a, u) {
        let name = OsStr::from_bytes(&lit).to_os_string();
        let one = match kind_of(&dir.join(&name)) {
            Some(k) => vec![(name, k)],
            None => Vec::new(),
        };
        return (one, false);
    }
    let Ok(rd) = fs::read_dir(dir) else {
        return (Vec::new(), false);
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let k = if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_dir() {
            Kind::Dir
        } else {
            Kind::Other
        };
        out.push((e.file_name(), k));
    }
    out.sort_by(|x, y| x.0.cmp(&y.0));
    (out, true)
}

/// If every live continuation from `u` starts with the same non-empty name
/// followed by `/` or the end, that name.
fn literal_name(a: &dyn PathAutomaton, u: u32) -> Option<Vec<u8>> {
    let mut name = Vec::new();
    let mut s = u;
    loop {
        let live: Vec<u8> = (0..=255u8).filter(|b| a.live(a.next(s, *b)) != 0).collect();
        let ends_here = !name.is_empty() && a.accept(s) != 0;
        match live.as_slice() {
            [b'/'] if !name.is_empty() => return Some(name),
            [] if ends_here => return Some(name),
            [b] if *b != b'/' && !ends_here && name.len() < 255 => {
                name.push(*b);
                s = a.next(s, *b);
            }
            _ => return None,
        }
    }
}

/// Re-checks a rule against the automaton from the start state.
fn check_rule(
    a: &dyn PathAutomaton,
    path: &[u8],
    access: u64,
    subtree: bool,
) -> Result<(), DomainError> {
    let s = run(a, path);
    let ok = if subtree {
        let beneath = a.beneath_all(s);
        access & !(beneath & (access::FILE | access::PARENT | access::READ_DIR)) == 0
            && (access & access::READ_DIR == 0 || a.accept(s) & access::READ_DIR != 0)
    } else {
        access & !(a.accept(s) & access::FILE) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(DomainError::Wider {
            path: PathBuf::from(OsStr::from_bytes(path)),
            access,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Grants read_file to every path ending in `.txt` (per-entry rules
    /// only: nothing is granted to a whole subtree).
    struct Txt;
    impl PathAutomaton for Txt {
        fn start(&self) -> u32 {
            0
        }
        fn next(&self, s: u32, b: u8) -> u32 {
            match (s, b) {
                (_, b'.') => 1,
                (1, b't') => 2,
                (2, b'x') => 3,
                (3, b't') => 4,
                _ => 0,
            }
        }
        fn accept(&self, s: u32) -> u64 {
            if s == 4 { access::READ_FILE } else { 0 }
        }
        fn beneath_all(&self, _: u32) -> u64 {
            0
        }
        fn live(&self, _: u32) -> u64 {
            access::READ_FILE
        }
        fn grants(&self, s: u32, _: u64) -> Vec<u32> {
            if s == 4 { vec![7] } else { Vec::new() }
        }
    }

    /// Grants exec to every path ending in `/tool`, follows links, and
    /// lets the plan change nothing.
    struct Tool;
    impl PathAutomaton for Tool {
        fn start(&self) -> u32 {
            0
        }
        fn next(&self, s: u32, b: u8) -> u32 {
            match (s, b) {
                (_, b'/') => 1,
                (1, b't') => 2,
                (2 | 3, b'o') => s + 1,
                (4, b'l') => 5,
                _ => 0,
            }
        }
        fn accept(&self, s: u32) -> u64 {
            if s == 5 {
                access::EXECUTE | access::READ_FILE
            } else {
                0
            }
        }
        fn beneath_all(&self, _: u32) -> u64 {
            0
        }
        fn live(&self, _: u32) -> u64 {
            access::EXECUTE | access::READ_FILE
        }
        fn grants(&self, s: u32, _: u64) -> Vec<u32> {
            if s == 5 { vec![9] } else { Vec::new() }
        }
        fn changeable(&self, _: &[u8]) -> bool {
            false
        }
        fn follows_links(&self) -> bool {
            true
        }
    }

    #[test]
    fn an_exec_link_gets_a_rule_on_its_file_unless_the_file_gets_none() {
        let d = std::env::temp_dir().join(format!("kapl-domain-tool-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("prog"), "x").unwrap();
        std::os::unix::fs::symlink("prog", d.join("tool")).unwrap();
        let prog = fs::canonicalize(d.join("prog")).unwrap();
        let mut w = Walk::default();
        let prefix = d.as_os_str().as_bytes().to_vec();
        walk_into(&Tool, &mut w, &[prefix], WalkLimits::default()).unwrap();
        assert_eq!(
            w.rules,
            vec![AddedRule {
                path: prog.clone(),
                access: access::EXECUTE | access::READ_FILE,
                subtree: false,
            }]
        );
        assert_eq!(
            w.narrowed.get(&9),
            Some(&vec![Narrowing::Followed(d.join("tool"), prog.clone())])
        );
        // The ruleset refused the file (hard-linked): the link is then
        // reported as not followed, and why.
        w.refused_link(&Tool, &prog);
        assert_eq!(w.counts.get(&(9, NarrowingKind::Followed)), None);
        assert!(
            matches!(
                w.narrowed.get(&9).map(Vec::as_slice),
                Some([Narrowing::Symlink(l, Some(why))]) if *l == d.join("tool") && why.contains("hard-linked")
            ),
            "{:?}",
            w.narrowed
        );
        let _ = fs::remove_dir_all(&d);
    }

    fn tree(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kapl-domain-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("a/b/c")).unwrap();
        for f in ["1.txt", "2.txt", "3.txt", "a/b/c/deep.txt"] {
            fs::write(d.join(f), "x").unwrap();
        }
        d
    }

    #[test]
    fn walk_bounds_fail_closed_and_are_reported() {
        let d = tree("bounds");
        let prefix = d.as_os_str().as_bytes().to_vec();
        // Rule bound: two rules, the third file is reported, not granted.
        let mut w = Walk::default();
        let lim = WalkLimits {
            max_depth: 64,
            max_rules: 2,
            deep_rules: 0,
        };
        walk_into(&Txt, &mut w, std::slice::from_ref(&prefix), lim).unwrap();
        assert_eq!(w.rules.len(), 2, "{:?}", w.rules);
        assert_eq!(
            w.counts.get(&(7, NarrowingKind::TooMany)),
            Some(&2),
            "{:?}",
            w.narrowed
        );
        // Depth bound: the file three levels down is reported, not granted.
        let mut w = Walk::default();
        let lim = WalkLimits {
            max_depth: 1,
            max_rules: 100,
            deep_rules: 0,
        };
        walk_into(&Txt, &mut w, &[prefix], lim).unwrap();
        assert_eq!(w.rules.len(), 3, "{:?}", w.rules);
        assert!(w.rules.iter().all(|r| !r.path.ends_with("deep.txt")));
        assert!(
            w.narrowed
                .values()
                .flatten()
                .any(|n| matches!(n, Narrowing::TooDeep(p) if p == &d.join("a"))),
            "{:?}",
            w.narrowed
        );
        let _ = fs::remove_dir_all(&d);
    }
}
