//! Where enforcement is narrower than a grant as written.
//!
//! Landlock grants by existing inode and directory; a grant is a path
//! pattern. The rule builder reports each place it had to grant less than
//! the pattern says as a [`Narrowing`]; the precision report counts them by
//! [`NarrowingKind`], which describes itself.

use std::path::{Path, PathBuf};

/// Why a grant is narrower than written, at one path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Narrowing {
    /// Only existing entries of this directory are granted: entries created
    /// later are not.
    PerEntry(PathBuf),
    /// A symbolic link was not followed (and why not, when the grant would
    /// have followed it: see [`Narrowing::Followed`]).
    Symlink(PathBuf, Option<String>),
    /// Not a narrowing but said with them: an exec grant that names a
    /// symbolic link (the first path) granted the file it resolved to when
    /// the step started (the second), which the plan cannot change.
    Followed(PathBuf, PathBuf),
    /// A hard-linked file where others could plant links: a rule on it would
    /// grant its other names too, so it gets none.
    HardLink(PathBuf),
    /// Deeper than the walk bound: nothing below is granted per entry.
    TooDeep(PathBuf),
    /// The step reached the rule builder's rule limit: this object got no
    /// rule.
    TooMany(PathBuf),
}

/// The kind of a [`Narrowing`], without its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NarrowingKind {
    /// See [`Narrowing::PerEntry`].
    PerEntry,
    /// See [`Narrowing::Symlink`].
    Symlink,
    /// See [`Narrowing::HardLink`].
    HardLink,
    /// See [`Narrowing::TooDeep`].
    TooDeep,
    /// See [`Narrowing::TooMany`].
    TooMany,
    /// See [`Narrowing::Followed`].
    Followed,
}

impl NarrowingKind {
    /// What a precision line says before the example paths.
    pub fn describe(self) -> &'static str {
        match self {
            NarrowingKind::PerEntry => "only entries that exist now are granted in",
            NarrowingKind::Symlink => "symbolic links are not followed:",
            NarrowingKind::HardLink => {
                "hard-linked files get no rule (a rule would grant their other names too):"
            }
            NarrowingKind::TooDeep => {
                "deeper than the rule builder's walk bound, nothing is granted below"
            }
            NarrowingKind::TooMany => {
                "the step reached the rule builder's limit of rules; no rule for"
            }
            NarrowingKind::Followed => {
                "followed symbolic links (granted the file each resolved to when the step started):"
            }
        }
    }
}

impl Narrowing {
    /// Its kind.
    pub fn kind(&self) -> NarrowingKind {
        match self {
            Narrowing::PerEntry(_) => NarrowingKind::PerEntry,
            Narrowing::Symlink(..) => NarrowingKind::Symlink,
            Narrowing::Followed(..) => NarrowingKind::Followed,
            Narrowing::HardLink(_) => NarrowingKind::HardLink,
            Narrowing::TooDeep(_) => NarrowingKind::TooDeep,
            Narrowing::TooMany(_) => NarrowingKind::TooMany,
        }
    }

    /// The path it concerns.
    pub fn path(&self) -> &Path {
        match self {
            Narrowing::PerEntry(p)
            | Narrowing::Symlink(p, _)
            | Narrowing::Followed(p, _)
            | Narrowing::HardLink(p)
            | Narrowing::TooDeep(p)
            | Narrowing::TooMany(p) => p,
        }
    }

    /// How a precision line shows it: the path, a followed link as
    /// `LINK → TARGET`, a link not followed with the reason.
    pub fn example(&self) -> String {
        match self {
            Narrowing::Followed(l, t) => format!("{} → {}", l.display(), t.display()),
            Narrowing::Symlink(l, Some(why)) => format!("{} ({why})", l.display()),
            n => n.path().display().to_string(),
        }
    }
}

/// Why a grant that covers `path` was enforced narrower there, from what
/// the rule builder found for that grant (`found`: its example
/// narrowings); `None` when none of them is about this path. A narrowing
/// of the path itself says more than one of a directory above it, and a
/// nearer directory more than a farther one.
pub fn explain(found: &[Narrowing], path: &Path) -> Option<String> {
    let about = |n: &&Narrowing| {
        let at = n.path();
        match n {
            Narrowing::PerEntry(_) => path.parent() == Some(at),
            Narrowing::HardLink(_) => at == path,
            Narrowing::Followed(..) => false,
            _ => path.starts_with(at),
        }
    };
    let best = found
        .iter()
        .filter(about)
        .max_by_key(|n| (n.path() == path, n.path().components().count()))?;
    let d = best.path().display();
    let p = path.display();
    Some(match best {
        Narrowing::PerEntry(_) => format!(
            "only the entries of {d} that existed then (neither symbolic nor hard links) got rules, and `{p}` has none"
        ),
        Narrowing::Symlink(_, None) => {
            format!("{d} is a symbolic link, which the rule builder does not follow")
        }
        Narrowing::Symlink(_, Some(why)) => {
            format!("{d} is a symbolic link the rule builder did not follow: {why}")
        }
        // Never `about` a path (above).
        Narrowing::Followed(_, t) => format!("{d} was followed to {}", t.display()),
        Narrowing::HardLink(_) => {
            format!("{d} is hard-linked, and a rule on it would grant its other names too")
        }
        Narrowing::TooDeep(_) => format!("{d} is deeper than the rule builder's walk bound"),
        Narrowing::TooMany(_) => {
            format!("the step reached the rule builder's limit of rules before {d}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_describe_themselves_and_keep_their_path() {
        let n = Narrowing::HardLink(PathBuf::from("/srv/a"));
        assert_eq!(n.kind(), NarrowingKind::HardLink);
        assert_eq!(n.path(), Path::new("/srv/a"));
        assert!(n.kind().describe().starts_with("hard-linked"));
        assert!(NarrowingKind::PerEntry < NarrowingKind::TooMany);
    }

    #[test]
    fn a_narrowing_explains_the_paths_it_is_about_only() {
        let found = [
            Narrowing::PerEntry(PathBuf::from("/srv/a")),
            Narrowing::Symlink(PathBuf::from("/srv/link"), None),
        ];
        let why = |p: &str| explain(&found, Path::new(p));
        assert!(
            why("/srv/a/new.txt")
                .is_some_and(|w| { w.starts_with("only the entries of /srv/a that existed then") })
        );
        assert!(why("/srv/link/x").is_some_and(|w| w.contains("symbolic link")));
        assert_eq!(why("/srv/b/x"), None);
        let found = [
            Narrowing::PerEntry(PathBuf::from("/srv/a")),
            Narrowing::HardLink(PathBuf::from("/srv/a/hl")),
        ];
        assert!(
            explain(&found, Path::new("/srv/a/hl")).is_some_and(|w| w.contains("hard-linked")),
            "the path's own narrowing first"
        );
    }
}
