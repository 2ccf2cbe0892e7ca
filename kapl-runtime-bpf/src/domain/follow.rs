//! Following a symbolic link an exec grant names (stage: runtime,
//! file-system wall, when a step starts).
//!
//! Input: the link's absolute path and the step's automaton (which says
//! what any step of the plan may change: [`PathAutomaton::changeable`]).
//! Output: the regular file the link resolves to, or why it is not
//! followed. The link is resolved one component at a time, as the kernel
//! would, and each path on the way — every directory above the link, the
//! link itself, every link in the chain and every directory above the
//! file it ends at — is checked: if some step of the plan may create,
//! write or delete there, the session could have planted or redirected
//! the link (or will be able to once a later step starts), so it is not
//! followed. Links under `/proc` name per-process objects and are never
//! followed; the file must be a regular file, and the result must agree
//! with the kernel's own resolution (`realpath`), so a link changed while
//! it was resolved is not followed either. After the step starts, only a
//! process outside the session could change the link; the rule stays on
//! the file it resolved to then.

use super::PathAutomaton;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// How many links a resolution may pass (the kernel's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// The regular file `link` resolves to, or why it is not followed (a
/// sentence fragment for the precision report and denials).
pub fn resolve(a: &dyn PathAutomaton, link: &Path) -> Result<PathBuf, String> {
    let mut cur = PathBuf::from("/");
    // Components still to resolve, the next one last.
    let mut todo: Vec<Vec<u8>> = Vec::new();
    push_components(&mut todo, link);
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_slice() {
            b"" | b"." => continue,
            b".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let next = cur.join(OsStr::from_bytes(&c));
        if next.starts_with("/proc") {
            return Err(format!(
                "resolving it reaches {}, and links under /proc name per-process objects",
                next.display()
            ));
        }
        if a.changeable(next.as_os_str().as_bytes()) {
            return Err(format!(
                "a step of the plan may create, write or delete {}, so the session could plant or redirect it",
                next.display()
            ));
        }
        let m = fs::symlink_metadata(&next)
            .map_err(|e| format!("{} cannot be read ({e})", next.display()))?;
        if m.file_type().is_symlink() {
            hops += 1;
            if hops > MAX_LINKS {
                return Err(format!("more than {MAX_LINKS} links (a loop?)"));
            }
            let to = fs::read_link(&next)
                .map_err(|e| format!("{} cannot be read ({e})", next.display()))?;
            if to.is_absolute() {
                cur = PathBuf::from("/");
            }
            push_components(&mut todo, &to);
            continue;
        }
        if !todo.is_empty() && !m.is_dir() {
            return Err(format!("{} is not a directory", next.display()));
        }
        cur = next;
    }
    let m = fs::symlink_metadata(&cur)
        .map_err(|e| format!("{} cannot be read ({e})", cur.display()))?;
    if !m.is_file() {
        return Err(format!(
            "it resolves to {}, which is not a regular file",
            cur.display()
        ));
    }
    match fs::canonicalize(link) {
        Ok(k) if k == cur => Ok(cur),
        _ => Err("it changed while it was being resolved".into()),
    }
}

/// Pushes the components of `p` onto `todo` so the first pops first.
fn push_components(todo: &mut Vec<Vec<u8>>, p: &Path) {
    let parts: Vec<Vec<u8>> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.as_bytes().to_vec()),
            Component::ParentDir => Some(b"..".to_vec()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    todo.extend(parts.into_iter().rev());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test set-up")]
    use super::*;

    /// Nothing is granted; the plan may change paths that contain `planted`.
    struct Plan;
    impl PathAutomaton for Plan {
        fn start(&self) -> u32 {
            0
        }
        fn next(&self, _: u32, _: u8) -> u32 {
            0
        }
        fn accept(&self, _: u32) -> u64 {
            0
        }
        fn beneath_all(&self, _: u32) -> u64 {
            0
        }
        fn live(&self, _: u32) -> u64 {
            0
        }
        fn grants(&self, _: u32, _: u64) -> Vec<u32> {
            Vec::new()
        }
        fn changeable(&self, p: &[u8]) -> bool {
            p.windows(7).any(|w| w == b"planted")
        }
    }

    #[test]
    fn links_resolve_to_regular_files_the_plan_cannot_change() {
        use std::os::unix::fs::symlink;
        let d = std::env::temp_dir().join(format!("kapl-follow-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("bin")).unwrap();
        fs::create_dir_all(d.join("planted")).unwrap();
        fs::write(d.join("bin/prog"), "x").unwrap();
        symlink("prog", d.join("bin/rel")).unwrap();
        symlink("../bin/./rel", d.join("bin/chain")).unwrap();
        symlink(d.join("bin/prog"), d.join("planted/l")).unwrap();
        symlink(d.join("planted/../bin/prog"), d.join("bin/via")).unwrap();
        symlink("bin", d.join("dirlink")).unwrap();
        symlink("loop", d.join("bin/loop")).unwrap();
        symlink("nothing", d.join("bin/dangling")).unwrap();
        symlink("/proc/self/exe", d.join("bin/self")).unwrap();
        let prog = fs::canonicalize(d.join("bin/prog")).unwrap();
        let r = |p: &str| resolve(&Plan, &d.join(p));
        assert_eq!(r("bin/rel"), Ok(prog.clone()));
        assert_eq!(r("bin/chain"), Ok(prog.clone()));
        assert_eq!(r("dirlink/rel"), Ok(prog));
        for (p, why) in [
            ("planted/l", "may create, write or delete"),
            ("bin/via", "may create, write or delete"),
            ("bin/loop", "more than 40 links"),
            ("bin/dangling", "cannot be read"),
            ("bin/self", "/proc"),
            ("dirlink", "not a regular file"),
        ] {
            let e = r(p).unwrap_err();
            assert!(e.contains(why), "{p}: {e}");
        }
        let _ = fs::remove_dir_all(&d);
    }
}
