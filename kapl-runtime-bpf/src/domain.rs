//! Building a step's Landlock ruleset (stage: runtime, file-system wall).
//!
//! Input: path automata that give, for each state, the Landlock access
//! rights a path ending there is granted (and by which grant), plus the
//! step's TCP ports. Output: a created Landlock ruleset (ABI 7 as a hard
//! requirement: every file-system right the kernel supports is handled, TCP
//! bind/connect, signal and abstract-socket scopes) whose rules come from
//! walking the automata over the live file system:
//!
//! - at a directory whose whole subtree is granted some rights, one
//!   path-beneath rule on the directory;
//! - where only some entries are, one rule per existing entry (files get
//!   file rights only);
//! - symbolic links are never followed while enumerating (lstat / O_NOFOLLOW
//!   opens), so a link planted in a granted directory names nothing;
//! - every rule is re-checked against the automaton, from the start state
//!   over the full path, before it is added: never wider than the grant;
//! - a file rule attaches to the inode, so it grants every name of a hard-linked
//!   file: a multiply linked file in a directory others could plant links in
//!   gets no per-entry rule (decided when the ruleset is built, on the
//!   object the rule names: see [`build_walked`] and [`linked_file_ok`]);
//! - when the ruleset is built, each rule's object is opened without
//!   following any symbolic link on the whole path (`openat2`
//!   `RESOLVE_NO_SYMLINKS`; a file's directory once, then its name
//!   `O_NOFOLLOW`) and checked again (directory for a subtree rule,
//!   the link test for a file rule), so an object swapped between the walk
//!   and the build gets no rule.
//!
//! The walk also records, per grant, where the result is narrower than the
//! grant as written (the precision report).

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, Scope,
};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use kapl_runtime::access;
pub use kapl_runtime::automaton::{PathAutomaton, TcpPorts, port_list, run};
pub use kapl_runtime::narrowing::{Narrowing, NarrowingKind};

/// One rule added to the ruleset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedRule {
    /// The object (as walked; never through a symlink).
    pub path: PathBuf,
    /// Rights.
    pub access: u64,
    /// Whether it covers a whole subtree (rule on a directory).
    pub subtree: bool,
}

/// Errors building a domain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// Landlock is missing or too old.
    #[error(
        "Landlock ABI 7 is required ({0}); boot Linux 6.15 or later with `lsm=landlock,...` (check /sys/kernel/security/lsm)"
    )]
    Unsupported(String),
    /// A ruleset operation failed.
    #[error("landlock: {0}")]
    Ruleset(String),
    /// A rule failed the re-check (internal error: never load it).
    #[error("internal error: rule on {path} ({access:#x}) is wider than the automaton allows")]
    Wider {
        /// Object.
        path: PathBuf,
        /// Rights.
        access: u64,
    },
}

/// Limits of a walk.
#[derive(Clone, Copy, Debug)]
pub struct WalkLimits {
    /// Deepest directory level walked.
    pub max_depth: usize,
    /// Most rules added in one step.
    pub max_rules: usize,
}

impl Default for WalkLimits {
    fn default() -> Self {
        WalkLimits {
            max_depth: 64,
            max_rules: 1_000_000,
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
}

impl Walk {
    /// Records that the file at `path` got no rule because it is
    /// hard-linked (found by [`build_walked`]), against the grants of `a`
    /// that cover it.
    pub fn refused_link(&mut self, a: &dyn PathAutomaton, path: &Path) {
        let s = run(a, path.as_os_str().as_bytes());
        let bits = a.accept(s) & access::FILE;
        if bits != 0 {
            self.narrow(a.grants(s, bits), Narrowing::HardLink(path.to_path_buf()));
        }
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
                    let t = run(a, &cur);
                    w.narrow(
                        a.grants_any(t, a.live(t)),
                        Narrowing::Symlink(PathBuf::from(OsStr::from_bytes(&cur))),
                    );
                    ok = false;
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
            walk_dir(a, w, p, s, u, 0, limits, 0)?;
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

/// `s_self`: state after the directory's path; `u`: after its trailing `/`
/// (the same state for the root).
#[expect(clippy::too_many_arguments, reason = "recursive walk state")]
fn walk_dir(
    a: &dyn PathAutomaton,
    w: &mut Walk,
    path: &[u8],
    s_self: u32,
    u: u32,
    covered: u64,
    limits: WalkLimits,
    depth: usize,
) -> Result<(), DomainError> {
    let fs_path = Path::new(OsStr::from_bytes(path));
    let beneath = a.beneath_all(s_self);
    let mut rule = beneath & !covered & (access::FILE | access::PARENT);
    rule |= beneath & a.accept(s_self) & access::READ_DIR & !covered;
    // Refer (moving or linking a file from one directory to another) only
    // where the step may also read every file beneath: a step that may
    // delete and create but not read could otherwise move or hard-link a
    // file it cannot read to where a later step reads it.
    if rule & access::REFER != 0 && beneath & access::READ_FILE == 0 {
        rule &= !access::REFER;
        w.narrow(
            a.grants(s_self, access::REMOVE_FILE),
            Narrowing::NoRefer(fs_path.to_path_buf()),
        );
    }
    if rule != 0 && w.rules.len() >= limits.max_rules {
        // Fail closed: no rule, and nothing below is walked.
        w.narrow(
            a.grants_any(s_self, rule),
            Narrowing::TooMany(fs_path.to_path_buf()),
        );
        return Ok(());
    }
    if rule != 0 {
        check_rule(a, path, rule, true)?;
        w.rules.push(AddedRule {
            path: fs_path.to_path_buf(),
            access: rule,
            subtree: true,
        });
    }
    let covered = covered | rule;
    // Creation/removal granted for only some names below cannot be
    // expressed (Landlock checks them on the parent directory).
    let below = a.live(u);
    let partial_parent = below & access::PARENT & !covered;
    if partial_parent != 0 {
        w.narrow(
            a.grants_any(u, partial_parent),
            Narrowing::ParentRight(fs_path.to_path_buf(), partial_parent),
        );
    }
    if below & !covered & (access::FILE | access::READ_DIR) == 0 {
        return Ok(());
    }
    if depth >= limits.max_depth {
        // Fail closed: nothing deeper gets a rule; say so.
        w.narrow(
            a.grants_any(u, below & !covered & (access::FILE | access::READ_DIR)),
            Narrowing::TooDeep(fs_path.to_path_buf()),
        );
        return Ok(());
    }
    let mut per_entry = false;
    for (name, kind) in entries(a, u, fs_path) {
        let mut t = u;
        for b in name.as_bytes() {
            t = a.next(t, *b);
        }
        let want = a.live(t) & !covered & (access::FILE | access::READ_DIR);
        if want == 0 {
            continue;
        }
        let mut child = path.to_vec();
        if path != b"/" {
            child.push(b'/');
        }
        child.extend_from_slice(name.as_bytes());
        let child_fs = PathBuf::from(OsStr::from_bytes(&child));
        match kind {
            Kind::Dir => {
                let tu = a.next(t, b'/');
                walk_dir(a, w, &child, t, tu, covered, limits, depth + 1)?;
                if a.accept(t) & access::READ_DIR & !covered != 0
                    && a.beneath_all(t) & access::READ_DIR == 0
                {
                    // Listing this directory alone cannot be granted without
                    // its subdirectories.
                    w.narrow(
                        a.grants(t, access::READ_DIR),
                        Narrowing::PerEntry(child_fs.clone()),
                    );
                }
            }
            Kind::Symlink => {
                if a.accept(t) & !covered != 0 {
                    w.narrow(
                        a.grants(t, a.accept(t)),
                        Narrowing::Symlink(child_fs.clone()),
                    );
                }
            }
            Kind::Other => {
                let bits = a.accept(t) & !covered & access::FILE;
                if bits != 0 && w.rules.len() >= limits.max_rules {
                    w.narrow(a.grants(t, bits), Narrowing::TooMany(child_fs));
                    continue;
                }
                if bits != 0 {
                    check_rule(a, &child, bits, false)?;
                    w.rules.push(AddedRule {
                        path: child_fs,
                        access: bits,
                        subtree: false,
                    });
                    per_entry = true;
                }
            }
        }
    }
    if per_entry {
        let g = a.grants_any(u, below & access::FILE & !covered);
        w.narrow(g, Narrowing::PerEntry(fs_path.to_path_buf()));
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
/// admits a single literal name, that name alone (lstat, no readdir).
fn entries(a: &dyn PathAutomaton, u: u32, dir: &Path) -> Vec<(std::ffi::OsString, Kind)> {
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
        return match kind_of(&dir.join(&name)) {
            Some(k) => vec![(name, k)],
            None => Vec::new(),
        };
    }
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
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
    out
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

/// A step's ruleset, created once and applied in every command's child.
pub struct StepDomain {
    /// The ruleset fd (`landlock_restrict_self` in the child).
    pub fd: OwnedFd,
    /// The rules the walk produced (those in [`Self::refused_links`], and
    /// any whose object vanished or changed kind, were not added).
    pub rules: Vec<AddedRule>,
    /// Files that got no rule because they are hard-linked (see
    /// [`build_walked`]).
    pub refused_links: Vec<PathBuf>,
    /// Narrowings found by the walk, per grant (filled by the caller).
    pub notes: Vec<(u32, Vec<Narrowing>)>,
    /// Narrowing counts per (grant, kind) (filled by the caller).
    pub counts: BTreeMap<(u32, NarrowingKind), usize>,
}

fn ll_err(e: impl std::fmt::Display) -> DomainError {
    DomainError::Ruleset(e.to_string())
}

/// Checks that the kernel provides Landlock ABI 7.
pub fn preflight() -> Result<(), DomainError> {
    let r = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V7))
        .and_then(|r| r.handle_access(AccessNet::from_all(ABI::V7)))
        .and_then(|r| r.scope(Scope::from_all(ABI::V7)))
        .and_then(|r| r.create());
    match r {
        Ok(_) => Ok(()),
        Err(e) => Err(DomainError::Unsupported(e.to_string())),
    }
}

/// Creates the ruleset for a step from walked rules and TCP ports; a file
/// rule whose object is hard-linked when the ruleset is built must pass
/// [`linked_file_ok`].
pub fn build(rules: Vec<AddedRule>, tcp: &TcpPorts) -> Result<StepDomain, DomainError> {
    build_inner(rules, tcp, None)
}

/// Whether some step of the plan may create at a path.
pub type Creatable<'a> = dyn Fn(&[u8]) -> bool + 'a;

/// [`build`] for the rules of a [`Walk`]. Whether a file is hard-linked is
/// decided here, on the object the rule will name (one `fstat` of the
/// descriptor opened for it; the walk itself does not `stat` entries): a
/// hard-linked file gets a rule only if [`linked_file_ok`] allows it and no
/// step of the plan may create at its path (`creatable`); the others are
/// listed in [`StepDomain::refused_links`] for the precision report
/// ([`Walk::refused_link`]).
pub fn build_walked(
    rules: Vec<AddedRule>,
    tcp: &TcpPorts,
    creatable: &Creatable<'_>,
) -> Result<StepDomain, DomainError> {
    build_inner(rules, tcp, Some(creatable))
}

fn build_inner(
    rules: Vec<AddedRule>,
    tcp: &TcpPorts,
    creatable: Option<&Creatable<'_>>,
) -> Result<StepDomain, DomainError> {
    let mut net: BitFlags<AccessNet> = BitFlags::empty();
    if tcp.bind.is_some() {
        net |= AccessNet::BindTcp;
    }
    if tcp.connect.is_some() {
        net |= AccessNet::ConnectTcp;
    }
    let mut rs = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V7))
        .map_err(|e| DomainError::Unsupported(e.to_string()))?
        .scope(Scope::from_all(ABI::V7))
        .map_err(|e| DomainError::Unsupported(e.to_string()))?;
    if !net.is_empty() {
        rs = rs
            .handle_access(net)
            .map_err(|e| DomainError::Unsupported(e.to_string()))?;
    }
    let mut created: RulesetCreated = rs
        .create()
        .map_err(|e| DomainError::Unsupported(e.to_string()))?;
    let mut parent: Option<(PathBuf, Option<OwnedFd>)> = None;
    let mut refused_links = Vec::new();
    for r in &rules {
        // O_PATH | O_NOFOLLOW: the object itself, never a link's target.
        let opened = if r.subtree {
            open_nofollow(&r.path)
        } else {
            open_entry_nofollow(&mut parent, &r.path)
        };
        let fd = match opened {
            Ok(fd) => fd,
            // Vanished (or became a link) since the walk: nothing to grant.
            Err(_) => continue,
        };
        match still_what_was_walked(&fd, r, creatable) {
            Object::Fine => {}
            Object::Changed => continue,
            Object::HardLinked => {
                refused_links.push(r.path.clone());
                continue;
            }
        }
        let acc = BitFlags::<AccessFs>::from_bits_truncate(r.access);
        created = created
            .add_rule(PathBeneath::new(fd, acc).set_compatibility(CompatLevel::HardRequirement))
            .map_err(ll_err)?;
    }
    if let Some(ports) = &tcp.bind {
        for p in ports {
            created = created
                .add_rule(NetPort::new(*p, AccessNet::BindTcp))
                .map_err(ll_err)?;
        }
    }
    if let Some(ports) = &tcp.connect {
        for p in ports {
            created = created
                .add_rule(NetPort::new(*p, AccessNet::ConnectTcp))
                .map_err(ll_err)?;
        }
    }
    let fd: Option<OwnedFd> = created.into();
    let fd = fd.ok_or_else(|| DomainError::Unsupported("ruleset not created".into()))?;
    Ok(StepDomain {
        fd,
        rules,
        refused_links,
        notes: Vec::new(),
        counts: BTreeMap::new(),
    })
}

/// Opens the object itself: `O_PATH`, and no symbolic link followed
/// anywhere on the path (a parent swapped for a link since the walk fails).
fn open_nofollow(p: &Path) -> std::io::Result<OwnedFd> {
    openat2(
        p,
        (libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64,
        libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    )
}

/// `openat2(AT_FDCWD, path, {flags, mode 0, resolve})`.
pub fn openat2(path: &Path, flags: u64, resolve: u64) -> std::io::Result<OwnedFd> {
    crate::sys::openat2_cwd(path, flags, resolve)
}

/// [`open_nofollow`] for a file rule: its directory is opened that way
/// once for all its entries (per-entry rules come in directory order), then
/// the entry's name alone, `O_NOFOLLOW`.
fn open_entry_nofollow(
    parent: &mut Option<(PathBuf, Option<OwnedFd>)>,
    p: &Path,
) -> std::io::Result<OwnedFd> {
    let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else {
        return open_nofollow(p);
    };
    if parent.as_ref().is_none_or(|(d, _)| d != dir) {
        *parent = Some((dir.to_path_buf(), open_nofollow(dir).ok()));
    }
    let Some((_, Some(dfd))) = parent.as_ref() else {
        return Err(std::io::Error::from_raw_os_error(libc::ENOENT));
    };
    crate::sys::open_path_nofollow_at(dfd, name)
}

/// Whether a file rule may be put on `path`: a rule on a file attaches to its
/// inode and so grants every name of it. A file with one name is fine; a
/// hard-linked one only when nobody but root could have planted the link
/// (file and directory owned by root, neither group- nor world-writable:
/// system files such as a dynamic loader with a second name). The build
/// also refuses a hard-linked file wherever the plan may create files
/// ([`PathAutomaton::creatable`]): commands run as uid 0 without
/// capabilities, so an earlier step could have linked a root-owned file
/// there. Fails closed when the metadata cannot be read.
pub fn linked_file_ok(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = fs::symlink_metadata(path) else {
        return false;
    };
    if m.is_dir() || m.nlink() <= 1 {
        return true;
    }
    let Some(parent) = path.parent() else {
        return false;
    };
    let Ok(d) = fs::symlink_metadata(parent) else {
        return false;
    };
    m.uid() == 0 && m.mode() & 0o022 == 0 && d.uid() == 0 && d.mode() & 0o022 == 0
}

/// What the object a rule was opened on turned out to be.
enum Object {
    /// What the walk saw: add the rule.
    Fine,
    /// Gone, or of another kind than the walk saw: no rule.
    Changed,
    /// A file with more than one name that may not get a rule.
    HardLinked,
}

/// The object behind `fd` is still what the walk saw: a directory for a
/// subtree rule; for a file rule, not a directory or a link, and, when
/// hard-linked, allowed by [`linked_file_ok`] (with the same inode at
/// `r.path`) at a path no step may create at (`creatable`; not asked for
/// rules that come from no walk).
fn still_what_was_walked(fd: &OwnedFd, r: &AddedRule, creatable: Option<&Creatable<'_>>) -> Object {
    use std::os::unix::fs::MetadataExt;
    let Ok(st) = crate::sys::fstat(fd) else {
        return Object::Changed;
    };
    if r.subtree {
        return if st.is_dir() {
            Object::Fine
        } else {
            Object::Changed
        };
    }
    if st.is_dir() || st.is_symlink() {
        return Object::Changed;
    }
    if st.nlink <= 1 {
        return Object::Fine;
    }
    let ok = creatable.is_none_or(|c| !c(r.path.as_os_str().as_bytes()))
        && linked_file_ok(&r.path)
        && fs::symlink_metadata(&r.path).is_ok_and(|m| m.ino() == st.ino && m.dev() == st.dev);
    if ok { Object::Fine } else { Object::HardLinked }
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
