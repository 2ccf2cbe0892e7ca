//! The session's cgroup v2 subtree (stage: runtime, process placement).
//!
//! Input: the cgroup v2 mount (found in /proc/self/mountinfo). Output: a
//! session directory `kapl-<session>` with one child per step
//! (`step-<n>-<name>`), and one grandchild per command (`cmd-<n>`) so each
//! decision can be traced to its command. The cgroup BPF programs attach to
//! the step directories; `cgroup.kill` ends a step's commands at a switch.
//! Dropping the tree kills what is left and removes every directory.

use crate::sys::{self, Forked};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Errors managing cgroups.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CgroupError {
    /// No cgroup v2 hierarchy is mounted.
    #[error(
        "cgroup v2 is not mounted (no `cgroup2` entry in /proc/self/mountinfo); mount it: `mount -t cgroup2 none /sys/fs/cgroup/unified`"
    )]
    NotMounted,
    /// The hierarchy lacks `cgroup.kill` (Linux < 5.14).
    #[error("cgroup v2 at {0} has no cgroup.kill (needs Linux 5.14 or later)")]
    NoKill(PathBuf),
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The session has no step cgroup to start a command in (internal).
    #[error("the session has no step cgroup")]
    NoStep,
    /// Processes did not leave a cgroup after `cgroup.kill`.
    #[error("processes of {0} did not exit after cgroup.kill")]
    Stuck(PathBuf),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Finds the cgroup v2 mount point.
pub fn cgroup2_root() -> Result<PathBuf, CgroupError> {
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(io_err("read", Path::new("/proc/self/mountinfo")))?;
    for line in info.lines() {
        // id parent maj:min root mountpoint opts... - fstype source superopts
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        if post.split(' ').next() != Some("cgroup2") {
            continue;
        }
        let mut f = pre.split(' ');
        let root = f.nth(3);
        let mnt = f.next();
        if let (Some("/"), Some(mnt)) = (root, mnt) {
            let p = PathBuf::from(unescape_mount(mnt));
            if !p.join("cgroup.procs").exists() {
                continue;
            }
            return Ok(p);
        }
    }
    Err(CgroupError::NotMounted)
}

fn unescape_mount(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One cgroup directory we created.
#[derive(Debug)]
pub struct Cgroup {
    path: PathBuf,
    dir: OwnedFd,
    id: u64,
}

impl Cgroup {
    /// Creates `parent/name` (mode 0755) and opens it.
    pub fn create(parent: &Path, name: &str) -> Result<Cgroup, CgroupError> {
        let path = parent.join(name);
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&path)
            .map_err(io_err("mkdir", &path))?;
        Cgroup::open(path)
    }

    fn open(path: PathBuf) -> Result<Cgroup, CgroupError> {
        let f = File::open(&path).map_err(io_err("open", &path))?;
        let id = f.metadata().map_err(io_err("stat", &path))?.ino();
        Ok(Cgroup {
            path,
            dir: OwnedFd::from(f),
            id,
        })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Its directory fd (for `CLONE_INTO_CGROUP` and attaching programs).
    pub fn fd(&self) -> &OwnedFd {
        &self.dir
    }
    /// Its cgroup id (the directory's inode number on cgroup2).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether any process is in this cgroup or below.
    pub fn populated(&self) -> Result<bool, CgroupError> {
        let p = self.path.join("cgroup.events");
        let s = fs::read_to_string(&p).map_err(io_err("read", &p))?;
        Ok(s.lines().any(|l| l == "populated 1"))
    }

    /// Pids directly in this cgroup.
    pub fn procs(&self) -> Result<Vec<i32>, CgroupError> {
        let p = self.path.join("cgroup.procs");
        let s = fs::read_to_string(&p).map_err(io_err("read", &p))?;
        Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Number of processes in this cgroup and below.
    pub fn count_procs_recursive(&self) -> Result<usize, CgroupError> {
        let mut n = self.procs()?.len();
        let rd = fs::read_dir(&self.path).map_err(io_err("read_dir", &self.path))?;
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let sub = e.path().join("cgroup.procs");
                if let Ok(s) = fs::read_to_string(&sub) {
                    n += s.lines().filter(|l| !l.trim().is_empty()).count();
                }
            }
        }
        Ok(n)
    }

    /// Kills every process in this cgroup and below (`cgroup.kill`) and
    /// waits until it is empty.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        let k = self.path.join("cgroup.kill");
        if !k.exists() {
            return Err(CgroupError::NoKill(self.path.clone()));
        }
        let mut f = OpenOptions::new()
            .write(true)
            .open(&k)
            .map_err(io_err("open", &k))?;
        f.write_all(b"1").map_err(io_err("write", &k))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.populated()? {
            if Instant::now() > deadline {
                return Err(CgroupError::Stuck(self.path.clone()));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Removes the directory (after its children). Kills what is left.
    pub fn remove(self) -> Result<(), CgroupError> {
        if self.populated()? {
            self.kill_all()?;
        }
        remove_tree(&self.path)
    }

    /// The raw fd, for FFI.
    pub fn raw_fd(&self) -> i32 {
        self.dir.as_raw_fd()
    }
}

/// Removes a cgroup directory and every cgroup below it (deepest first).
pub fn remove_tree(path: &Path) -> Result<(), CgroupError> {
    if let Ok(rd) = fs::read_dir(path) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path())?;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            // EBUSY while the last process is being reaped.
            Err(e) if Instant::now() < deadline && e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(io_err("rmdir", path)(e)),
        }
    }
}

/// Checks that cgroup v2 is usable for sessions: mounted, writable, with
/// `cgroup.kill`. Returns the root.
pub fn preflight() -> Result<PathBuf, CgroupError> {
    let root = cgroup2_root()?;
    let probe = format!("kapl-probe-{}", std::process::id());
    let cg = Cgroup::create(&root, &probe)?;
    let has_kill = cg.path().join("cgroup.kill").exists();
    let path = cg.path().to_path_buf();
    remove_tree(&path)?;
    if !has_kill {
        return Err(CgroupError::NoKill(root));
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn unescape() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
        assert_eq!(unescape_mount("/x\\"), "/x\\");
    }
}

/// A watchdog process for a session cgroup: if the supervisor dies (killed,
/// crashed) the watchdog kills every process of the session and removes
/// its cgroups, so no command keeps running after its BPF programs (whose
/// links die with the supervisor) and its reporting are gone. Dropping the
/// handle (normal stop) ends the watchdog.
#[derive(Debug)]
pub struct Watchdog {
    pidfd: OwnedFd,
}

impl Watchdog {
    /// Starts the watchdog for `session` (a cgroup directory). Call while
    /// single-threaded. `on_fire` runs in the watchdog after the cleanup.
    pub fn start(session: &Path, on_fire: fn()) -> Result<Watchdog, CgroupError> {
        let fail = |call: &'static str| {
            move |source| CgroupError::Io {
                op: call,
                path: session.to_path_buf(),
                source,
            }
        };
        let me = sys::pidfd_open(std::process::id() as i32).map_err(fail("pidfd_open"))?;
        // SAFETY: the caller starts the watchdog while single-threaded; the
        // child only runs `watch`, which exits.
        let forked = unsafe { sys::fork() }.map_err(fail("fork"))?;
        let pid = match forked {
            Forked::Child => watch(me, session, on_fire),
            Forked::Parent(pid) => pid,
        };
        drop(me);
        let pidfd = sys::pidfd_open(pid).map_err(fail("pidfd_open"))?;
        Ok(Watchdog { pidfd })
    }
}

impl Watchdog {
    /// Its pidfd (readable once the watchdog has exited).
    pub fn fd(&self) -> i32 {
        self.pidfd.as_raw_fd()
    }

    /// Whether the watchdog has exited (killed by someone); reaps it.
    pub fn exited(&self) -> bool {
        match sys::try_wait_pidfd(&self.pidfd) {
            Ok(status) => status.is_some(),
            // ECHILD: already reaped.
            Err(e) => e.raw_os_error() == Some(libc::ECHILD),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Signal and reap our child through its pidfd.
        let _ = sys::pidfd_send_signal(&self.pidfd, libc::SIGKILL);
        let _ = sys::wait_pidfd(&self.pidfd);
    }
}

/// The forked watchdog: its own session (no terminal signals), nothing
/// open but the parent's pidfd, waiting for the parent to die.
fn watch(parent: OwnedFd, session: &Path, on_fire: fn()) -> ! {
    let _ = sys::setsid();
    // SAFETY: in the forked watchdog, which never returns (it exits below)
    // and so never uses or drops what it inherited, only `parent`.
    unsafe { sys::close_from_except(0, parent.as_raw_fd()) };
    while !sys::poll(&[parent.as_fd()], -1).is_ok_and(|r| r.iter().any(|x| *x)) {}
    // The supervisor is gone: end the session.
    let _ = fs::write(session.join("cgroup.kill"), b"1");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match fs::read_to_string(session.join("cgroup.events")) {
            Ok(s) if s.lines().any(|l| l == "populated 1") => {
                std::thread::sleep(Duration::from_millis(2))
            }
            _ => break,
        }
    }
    let _ = remove_tree(session);
    on_fire();
    // Leave without running the parent's destructors.
    sys::exit_now(0)
}

/// Mount points of every cgroup file system (v1 and v2) in this mount
/// namespace, from /proc/self/mountinfo (a refusal to read it yields the
/// v2 root alone, if known).
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return cgroup2_root().into_iter().collect();
    };
    // cgroup2 first: the hierarchy the session's hooks hang on.
    let mut out: Vec<(bool, PathBuf)> = info
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            let m = pre.split(' ').nth(4)?;
            Some((fstype == "cgroup", PathBuf::from(unescape_mount(m))))
        })
        .collect();
    out.sort_by_key(|(v1, _)| *v1);
    out.into_iter().map(|(_, p)| p).collect()
}
