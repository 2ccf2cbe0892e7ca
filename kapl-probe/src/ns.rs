//! Namespace and mount side doors: making a denied path appear under a
//! granted one.
//!
//! - `unshare-user`, `unshare-mount`: `unshare(CLONE_NEWUSER)` /
//!   `unshare(CLONE_NEWNS)`.
//! - `clone-newuser`: the raw `clone` call with `CLONE_NEWUSER|CLONE_NEWNS`.
//! - `bind SRC DST`: `mount(SRC, DST, MS_BIND)`.
//! - `open-tree SRC DST`: `open_tree(SRC, OPEN_TREE_CLONE)` then
//!   `move_mount` onto DST (the new mount API).
//! - `chroot DIR`, `pivot-root NEW OLD`.

use crate::report::outcome;
use crate::sys::{c, cvt};

pub fn run(cmd: &str, args: &[String]) -> Option<()> {
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match cmd {
        // SAFETY: unshare takes flags only.
        "unshare-user" => outcome(
            "unshare-user",
            cvt(unsafe { libc::unshare(libc::CLONE_NEWUSER) } as i64),
        ),
        // SAFETY: as above.
        "unshare-mount" => outcome(
            "unshare-mount",
            cvt(unsafe { libc::unshare(libc::CLONE_NEWNS) } as i64),
        ),
        "clone-newuser" => outcome("clone-newuser", clone_newuser()),
        "bind" => outcome("bind", bind(a(0), a(1))),
        "open-tree" => outcome("open-tree", open_tree(a(0), a(1))),
        "chroot" => {
            let d = c(a(0));
            // SAFETY: valid C string.
            outcome("chroot", cvt(unsafe { libc::chroot(d.as_ptr()) } as i64))
        }
        "pivot-root" => {
            let (n, o) = (c(a(0)), c(a(1)));
            // SAFETY: valid C strings.
            outcome(
                "pivot-root",
                cvt(unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) }),
            )
        }
        _ => return None,
    }
    Some(())
}

fn clone_newuser() -> std::io::Result<()> {
    let flags = (libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: a fork-like clone (no new stack): the child leaves at once.
    let pid = cvt(unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) })?;
    if pid == 0 {
        // SAFETY: leaving the child.
        unsafe { libc::_exit(0) };
    }
    let mut st = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid as i32, &mut st, 0) };
    Ok(())
}

fn bind(src: &str, dst: &str) -> std::io::Result<i64> {
    let (s, d) = (c(src), c(dst));
    // SAFETY: valid C strings; no data argument.
    cvt(unsafe {
        libc::mount(
            s.as_ptr(),
            d.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    } as i64)
}

fn open_tree(src: &str, dst: &str) -> std::io::Result<i64> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    let (s, d, e) = (c(src), c(dst), c(""));
    // SAFETY: valid C string.
    let fd = cvt(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            s.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    })?;
    // SAFETY: valid C strings and our descriptor.
    let r = cvt(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            fd,
            e.as_ptr(),
            libc::AT_FDCWD,
            d.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    });
    crate::sys::close(fd as i32);
    r
}
