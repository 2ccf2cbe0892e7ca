//! Building a step's Landlock ruleset (stage: runtime, file-system wall).
//!
//! Input: path automata that give, for each state, the Landlock access
//! rights a path ending there is granted (and by which grant), plus the
//! step's TCP ports. Output: a created Landlock ruleset (ABI 7 as a hard
//! requirement: every file-system right the kernel supports is handled, TCP
//! bind/connect, signal and abstract-socket scopes; with `--min-abi N`, the
//! best ABI from N to 7 the kernel has, see `kapl_runtime::kernel_level`) whose rules come from
//! walking the automata over the live file system:
//!
//! - at a directory whose whole subtree is granted some rights, one
//!   path-beneath rule on the directory;
//! - where only some entries are, one rule per existing entry (files get
//!   file rights only);
//! - symbolic links are never followed while enumerating (lstat / O_NOFOLLOW
//!   opens), so a link planted in a granted directory names nothing; an
//!   exec grant's link that the plan cannot have planted or redirected
//!   grants the regular file it resolves to (`follow`);
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
//!
//! The walk is in `walk`, the ruleset in `ruleset`; everything is
//! re-exported here.

mod follow;
mod ruleset;
mod walk;

pub use kapl_runtime::access;
pub use kapl_runtime::automaton::{PathAutomaton, TcpPorts, port_list, run};
pub use kapl_runtime::narrowing::{Narrowing, NarrowingKind};
pub use ruleset::{
    Creatable, Level, StepDomain, abi_in_use, build, build_walked, level, linked_file_ok, openat2,
    preflight,
};
pub use walk::{Walk, WalkLimits, walk, walk_into};

use std::path::PathBuf;

/// One rule added to the ruleset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedRule {
    /// The object (as walked, never through a symlink; for a followed exec
    /// link, the file it resolved to).
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
    /// The kernel (or `KAPL_LANDLOCK_ABI`) offers less than `--min-abi`.
    #[error(transparent)]
    Level(kapl_runtime::kernel_level::LevelRefusal),
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
