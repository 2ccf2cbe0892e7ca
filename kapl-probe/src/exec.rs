//! Exec side doors: running a program without naming it in `execve`.
//!
//! - `execveat-empty PATH`: opens PATH with `O_PATH` and runs it with
//!   `execveat(fd, "", AT_EMPTY_PATH)` (`execveat-empty`).
//! - `memfd-exec SRC [noexec]`: copies SRC (a program the step may read)
//!   into a `memfd_create` file (`memfd`; with `noexec`, created with
//!   `MFD_NOEXEC_SEAL`) and runs it with `fexecve` (`memfd-exec`).
//! - `copy-run SRC DST`: copies SRC to DST (`copy`), makes it executable
//!   and runs it (`run-copy`).
//!
//! - `execb HEX`: runs the program whose path is given as hex bytes
//!   (non-UTF-8 names) (`execb`).
//!
//! A program run here gets no arguments but its name and is expected to
//! exit 0 (`/usr/bin/true`).

use crate::report::outcome;
use crate::sys::{c, cvt, errno, fork_exec, open};
use std::os::unix::fs::PermissionsExt;

pub fn run(cmd: &str, args: &[String]) -> Option<()> {
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match cmd {
        "execveat-empty" => outcome("execveat-empty", execveat_empty(a(0))),
        "memfd-exec" => memfd_exec(a(0), a(1) == "noexec"),
        "copy-run" => copy_run(a(0), a(1)),
        "execb" => outcome("execb", execb(a(0))),
        _ => return None,
    }
    Some(())
}

fn execveat_at(fd: i32, argv0: &str) -> std::io::Result<()> {
    let name = c(argv0);
    let empty = c("");
    fork_exec(|| {
        let argv = [name.as_ptr(), std::ptr::null()];
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        // SAFETY: NULL-terminated argv/envp of valid C strings; on success
        // the call does not return.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                fd,
                empty.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        errno()
    })
}

fn execveat_empty(path: &str) -> std::io::Result<()> {
    let fd = open(path, libc::O_PATH)?;
    execveat_at(fd, path)
}

fn memfd_exec(src: &str, noexec: bool) {
    const MFD_NOEXEC_SEAL: libc::c_uint = 0x0008;
    let name = c("kapl-probe");
    let flags = if noexec { MFD_NOEXEC_SEAL } else { 0 };
    // SAFETY: `name` is a valid C string.
    let r = cvt(unsafe { libc::memfd_create(name.as_ptr(), flags) } as i64).map(|fd| fd as i32);
    let fd = match r {
        Ok(fd) => fd,
        Err(e) => {
            outcome::<()>("memfd", Err(e));
            return;
        }
    };
    let copied = std::fs::read(src).and_then(|bytes| {
        // SAFETY: the memfd is ours; std takes ownership of it.
        let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        std::io::Write::write_all(&mut f, &bytes)?;
        Ok(f)
    });
    match copied {
        Ok(f) => {
            outcome("memfd", Ok(()));
            let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
            outcome("memfd-exec", execveat_at(fd, src));
        }
        Err(e) => outcome::<()>("memfd", Err(e)),
    }
}

fn copy_run(src: &str, dst: &str) {
    let r = std::fs::copy(src, dst)
        .and_then(|_| std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o755)));
    let copied = r.is_ok();
    outcome("copy", r);
    if copied {
        let d = c(dst);
        outcome(
            "run-copy",
            fork_exec(|| {
                let argv = [d.as_ptr(), std::ptr::null()];
                let envp: [*const libc::c_char; 1] = [std::ptr::null()];
                // SAFETY: NULL-terminated arrays of valid C strings.
                unsafe { libc::execve(d.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
                errno()
            }),
        );
    }
}

fn execb(hex: &str) -> std::io::Result<()> {
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    let p = std::ffi::CString::new(bytes)
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    fork_exec(|| {
        let argv = [p.as_ptr(), std::ptr::null()];
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        // SAFETY: NULL-terminated arrays of valid C strings.
        unsafe { libc::execve(p.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        errno()
    })
}
