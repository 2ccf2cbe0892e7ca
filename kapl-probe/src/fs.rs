//! File-system side doors: links and renames that alias a denied file under
//! a granted name, re-opening through `/proc`, openat chains past any path
//! buffer, files unlinked while open.
//!
//! - `symlink TARGET LINK`, `hardlink TARGET LINK`, `rename FROM TO`,
//!   `exchange A B` (`renameat2(RENAME_EXCHANGE)`): one line each.
//! - `fd-reopen PATH`: opens PATH read-only (`open`), then re-opens
//!   `/proc/self/fd/N` for reading (`reopen-read`) and for writing
//!   (`reopen-write`).
//! - `opath-reopen PATH`: opens PATH with `O_PATH` (`opath`), then re-opens
//!   `/proc/self/fd/N` for reading (`opath-read`) and writing
//!   (`opath-write`).
//! - `unlinked PATH`: opens PATH read-only (`open`), unlinks it (`unlink`),
//!   reads through the descriptor (`read-fd`), re-opens the deleted file
//!   through `/proc/self/fd/N` for writing (`reopen-write`).
//! - `chain-read DIR REL` / `chain-write DIR REL`: walks REL one component
//!   at a time with `openat(O_PATH|O_DIRECTORY)` from DIR, so the whole path
//!   may be far longer than `PATH_MAX`, then opens the last component
//!   (`chain-read` / `chain-write`).
//! - `readb HEX` / `writeb HEX`: read or append to a path given as hex bytes
//!   (non-UTF-8 names).
//! - `truncate PATH`: `truncate(2)` to length 0 (`truncate`).
//! - `open-trunc PATH ro|wo|rw|3|ro-creat`: `open` with `O_TRUNC` and that
//!   access mode (`ro-creat`: read-only with `O_CREAT`) (`open-trunc-ro`,
//!   ...), closed at once.
//! - `ftruncate-ro PATH`: opens PATH read-only (`open`), then `ftruncate`s
//!   the descriptor (`ftruncate-ro`).
//! - `openat2 PATH`: `openat2(O_RDONLY)` (`openat2`).

use crate::report::outcome;
use crate::sys::{c, close, cvt, open, read_fd};

pub fn run(cmd: &str, args: &[String]) -> Option<()> {
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match cmd {
        "symlink" => outcome("symlink", std::os::unix::fs::symlink(a(0), a(1))),
        "hardlink" => outcome("hardlink", std::fs::hard_link(a(0), a(1))),
        "rename" => outcome("rename", std::fs::rename(a(0), a(1))),
        "exchange" => outcome("exchange", exchange(a(0), a(1))),
        "fd-reopen" => fd_reopen(a(0)),
        "opath-reopen" => opath_reopen(a(0)),
        "unlinked" => unlinked(a(0)),
        "chain-read" => outcome("chain-read", chain(a(0), a(1), libc::O_RDONLY)),
        "chain-write" => outcome(
            "chain-write",
            chain(a(0), a(1), libc::O_WRONLY | libc::O_APPEND),
        ),
        "truncate" => {
            let p = c(a(0));
            // SAFETY: a valid C string.
            outcome(
                "truncate",
                cvt(unsafe { libc::truncate(p.as_ptr(), 0) } as i64),
            )
        }
        "open-trunc" => {
            let mode = match a(1) {
                "wo" => libc::O_WRONLY,
                "ro-creat" => libc::O_RDONLY | libc::O_CREAT,
                "rw" => libc::O_RDWR,
                "3" => 3,
                _ => libc::O_RDONLY,
            };
            let name = format!("open-trunc-{}", a(1));
            outcome(&name, open(a(0), mode | libc::O_TRUNC).map(close))
        }
        "ftruncate-ro" => match open(a(0), libc::O_RDONLY) {
            Err(e) => outcome::<()>("open", Err(e)),
            Ok(fd) => {
                outcome("open", Ok(()));
                // SAFETY: `fd` is open.
                outcome(
                    "ftruncate-ro",
                    cvt(unsafe { libc::ftruncate(fd, 0) } as i64),
                );
                close(fd);
            }
        },
        "openat2" => outcome(
            "openat2",
            kapl_runtime_bpf::domain::openat2(
                a(0).as_ref(),
                (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
                0,
            ),
        ),
        "readb" => outcome("readb", hex_open(a(0), libc::O_RDONLY)),
        "writeb" => outcome("writeb", hex_open(a(0), libc::O_WRONLY | libc::O_APPEND)),
        _ => return None,
    }
    Some(())
}

fn exchange(x: &str, y: &str) -> std::io::Result<i64> {
    let (cx, cy) = (c(x), c(y));
    // SAFETY: valid C strings; renameat2 reads them only.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            cx.as_ptr(),
            libc::AT_FDCWD,
            cy.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    })
}

fn reopen(fd: i32, flags: i32) -> std::io::Result<()> {
    let f = open(&format!("/proc/self/fd/{fd}"), flags)?;
    close(f);
    Ok(())
}

fn fd_reopen(path: &str) {
    let r = open(path, libc::O_RDONLY);
    let fd = r.as_ref().ok().copied();
    outcome("open", r);
    if let Some(fd) = fd {
        outcome("reopen-read", reopen(fd, libc::O_RDONLY));
        outcome("reopen-write", reopen(fd, libc::O_WRONLY | libc::O_APPEND));
        close(fd);
    }
}

fn opath_reopen(path: &str) {
    let r = open(path, libc::O_PATH);
    let fd = r.as_ref().ok().copied();
    outcome("opath", r);
    if let Some(fd) = fd {
        outcome("opath-read", reopen(fd, libc::O_RDONLY));
        outcome("opath-write", reopen(fd, libc::O_WRONLY | libc::O_APPEND));
        close(fd);
    }
}

fn unlinked(path: &str) {
    let r = open(path, libc::O_RDONLY);
    let fd = r.as_ref().ok().copied();
    outcome("open", r);
    let Some(fd) = fd else { return };
    outcome("unlink", std::fs::remove_file(path));
    outcome("read-fd", read_fd(fd));
    outcome("reopen-write", reopen(fd, libc::O_WRONLY | libc::O_APPEND));
    close(fd);
}

fn chain(dir: &str, rel: &str, last: i32) -> std::io::Result<()> {
    let comps: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
    let Some((file, dirs)) = comps.split_last() else {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    };
    let mut fd = open(dir, libc::O_PATH | libc::O_DIRECTORY)?;
    for d in dirs {
        let cd = c(d);
        // SAFETY: `fd` is a directory descriptor we own; `cd` a C string.
        let r = cvt(unsafe {
            libc::openat(
                fd,
                cd.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        } as i64);
        close(fd);
        fd = r? as i32;
    }
    let cf = c(file);
    // SAFETY: as above.
    let r = cvt(unsafe { libc::openat(fd, cf.as_ptr(), last | libc::O_CLOEXEC) } as i64);
    close(fd);
    close(r? as i32);
    Ok(())
}

fn hex_open(hex: &str, flags: i32) -> std::io::Result<()> {
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    let p = std::ffi::CString::new(bytes)
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `p` is a valid C string.
    let fd = cvt(unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC) } as i64)?;
    close(fd as i32);
    Ok(())
}
