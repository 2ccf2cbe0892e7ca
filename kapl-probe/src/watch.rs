//! Watching a directory without reading it: `fanotify DIR` (an
//! unprivileged fanotify group reporting directory entries by name, and a
//! mark on `DIR` for creations in it).

use crate::report::outcome;
use crate::sys::{c, cvt};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

pub fn run(cmd: &str, args: &[String]) -> Option<()> {
    let first = args.first().map(String::as_str).unwrap_or("");
    match cmd {
        "fanotify" => outcome(cmd, fanotify(first)),
        _ => return None,
    }
    Some(())
}

// From the kernel's uapi <linux/fanotify.h> (libc lacks the FID flags).
const FAN_CLASS_NOTIF: u32 = 0;
const FAN_REPORT_DFID_NAME: u32 = 0x0000_0c00;
const FAN_MARK_ADD: u32 = 0x0000_0001;
const FAN_CREATE: u64 = 0x0000_0100;
const FAN_ONDIR: u64 = 0x4000_0000;

fn fanotify(dir: &str) -> io::Result<OwnedFd> {
    let flags = FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | libc::FAN_CLOEXEC;
    // SAFETY: fanotify_init(2) with integer arguments.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_fanotify_init, flags, libc::O_RDONLY) })?;
    // SAFETY: a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let p = c(dir);
    // SAFETY: fanotify_mark(2) with a valid C string.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_fanotify_mark,
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            FAN_MARK_ADD,
            FAN_CREATE | FAN_ONDIR,
            libc::AT_FDCWD,
            p.as_ptr(),
        )
    })?;
    Ok(fd)
}
