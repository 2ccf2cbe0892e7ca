//! The ruleset (stage: runtime, file-system wall): a step's Landlock
//! ruleset built from walked rules and TCP ports.
//!
//! Input: [`AddedRule`]s (from a [`Walk`](super::Walk), or given) and
//! [`TcpPorts`]. Output: a [`StepDomain`]: the created ruleset (at the
//! session's level, [`preflight`]: ABI 7 unless `--min-abi` accepted less,
//! always as a hard requirement) and the rules it holds. Each rule's object is opened
//! without following any symbolic link on the whole path and checked again
//! (still a directory for a subtree rule; for a file rule not a link, and
//! a hard-linked file only where [`linked_file_ok`] allows it), so an
//! object swapped since the walk gets no rule.

use super::{AddedRule, DomainError, TcpPorts, access};
use kapl_runtime::kernel_level::{self, FULL};
use kapl_runtime::precision::Findings;
use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, Scope,
};
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

/// A step's ruleset, created once and applied in every command's child.
pub struct StepDomain {
    /// The ruleset fd (`landlock_restrict_self` in the child).
    pub fd: OwnedFd,
    /// The Landlock ABI it was built at (denials are logged to audit only
    /// from 7 on).
    pub abi: u8,
    /// The rules the walk produced (those in [`Self::refused_links`], and
    /// any whose object vanished or changed kind, were not added).
    pub rules: Vec<AddedRule>,
    /// Files that got no rule because they are hard-linked (see
    /// [`build_walked`]).
    pub refused_links: Vec<PathBuf>,
    /// What the walk narrowed, per grant (filled by the caller).
    pub findings: Findings,
}

impl StepDomain {
    /// Whether a rule of this ruleset lets the file `path` resolves to be
    /// executed (Landlock checks the object, whatever name was used).
    pub fn may_execute(&self, path: &Path) -> bool {
        let Ok(file) = fs::canonicalize(path) else {
            return false;
        };
        !self.refused_links.contains(&file)
            && self.rules.iter().any(|r| {
                r.access & access::EXECUTE != 0
                    && if r.subtree {
                        file.starts_with(&r.path)
                    } else {
                        file == r.path
                    }
            })
    }
}

fn ll_err(e: impl std::fmt::Display) -> DomainError {
    DomainError::Ruleset(e.to_string())
}

/// The Landlock ABI this process builds rulesets at: set once by
/// [`preflight`] when a session starts (a supervisor serves one session),
/// [`FULL`] until then.
static LEVEL: AtomicU8 = AtomicU8::new(FULL);

/// The level a session runs at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    /// The ABI rulesets are built at.
    pub abi: u8,
    /// The kernel's ABI.
    pub kernel: u8,
    /// The floor accepted (`--min-abi`).
    pub min: u8,
}

/// The ABI rulesets are built at (see [`preflight`]).
pub fn level() -> u8 {
    LEVEL.load(Ordering::Relaxed)
}

/// The landlock crate's name for the ABI rulesets are built at.
pub fn abi_in_use() -> ABI {
    abi(level())
}

/// The landlock crate's name for ABI `n` (4 to 7).
fn abi(n: u8) -> ABI {
    match n {
        4 => ABI::V4,
        5 => ABI::V5,
        6 => ABI::V6,
        _ => ABI::V7,
    }
}

/// `KAPL_LANDLOCK_ABI=N`: ask Landlock for no more than ABI N (4 to 7),
/// as if the kernel were older (tests of each level on a newer kernel; it
/// can only lower what is enforced, and a session at a level below
/// `--min-abi` is refused).
fn cap() -> Result<Option<u8>, DomainError> {
    match std::env::var("KAPL_LANDLOCK_ABI") {
        Err(_) => Ok(None),
        Ok(v) => match v.trim().parse::<u8>() {
            Ok(n) if (kernel_level::FLOOR..=FULL).contains(&n) => Ok(Some(n)),
            _ => Err(DomainError::Ruleset(format!(
                "KAPL_LANDLOCK_ABI={v}: give a Landlock ABI from 4 to 7"
            ))),
        },
    }
}

/// Checks that the kernel provides Landlock at ABI `min` or later, chooses
/// the ABI rulesets are built at (the kernel's, at most 7, lowered by
/// `KAPL_LANDLOCK_ABI`) and creates one ruleset at it as a hard
/// requirement.
pub fn preflight(min: u8) -> Result<Level, DomainError> {
    let kernel = crate::sys::landlock_abi_version()
        .map_err(|e| DomainError::Unsupported(format!("landlock_create_ruleset: {e}")))?;
    let kernel = u8::try_from(kernel).unwrap_or(u8::MAX);
    let n = kernel_level::choose(kernel, min, cap()?).map_err(DomainError::Level)?;
    let mut r = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi(n)))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi(n))));
    if n >= 6 {
        r = r.and_then(|r| r.scope(Scope::from_all(abi(n))));
    }
    match r.and_then(|r| r.create()) {
        Ok(_) => {
            LEVEL.store(n, Ordering::Relaxed);
            Ok(Level {
                abi: n,
                kernel,
                min,
            })
        }
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

/// [`build`] for the rules of a [`Walk`](super::Walk). Whether a file is hard-linked is
/// decided here, on the object the rule will name (one `fstat` of the
/// descriptor opened for it; the walk itself does not `stat` entries): a
/// hard-linked file gets a rule only if [`linked_file_ok`] allows it and no
/// step of the plan may create at its path (`creatable`); the others are
/// listed in [`StepDomain::refused_links`] for the precision report
/// ([`Walk::refused_link`](super::Walk::refused_link)).
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
    let n = level();
    // Every file-system right of the level is handled (none of a newer
    // one is asked for: a ruleset at ABI 4 is what a 6.7 kernel builds).
    let handled = AccessFs::from_all(abi(n));
    let mut rs = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(handled)
        .map_err(|e| DomainError::Unsupported(e.to_string()))?;
    if n >= 6 {
        rs = rs
            .scope(Scope::from_all(abi(n)))
            .map_err(|e| DomainError::Unsupported(e.to_string()))?;
    }
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
        // Making, removing and moving names is the supervised layer's
        // (decided exactly, per name): the domain handles those rights and
        // grants none of them, so no call the seccomp filter does not send
        // to the supervisor can make, remove or move a name.
        //
        // A rule that grants reading also grants truncation: Landlock asks
        // every open for `truncate` as an optional right and walks up to
        // the root until a rule gives it, so without it every read open
        // walks the whole path. Truncating is never possible through it:
        // `ftruncate` needs a descriptor open for writing (`write_file`),
        // and the seccomp filter sends `truncate(2)` and any open that
        // truncates without asking for write access to the supervised
        // layer, which needs `write`.
        let mut bits = r.access & !access::PARENT;
        if bits & access::READ_FILE != 0 {
            bits |= access::TRUNCATE;
        }
        // Rights the level does not handle (ioctl_dev below ABI 5) are
        // not restricted at all there: granting them adds nothing.
        let acc = BitFlags::<AccessFs>::from_bits_truncate(bits) & handled;
        if acc.is_empty() {
            continue;
        }
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
        abi: n,
        rules,
        refused_links,
        findings: Findings::default(),
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
/// ([`PathAutomaton::creatable`](super::PathAutomaton::creatable)): commands run as uid 0 without
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
