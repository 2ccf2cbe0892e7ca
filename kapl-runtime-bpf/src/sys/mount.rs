//! The session's own mount namespace (stage: runtime, session start):
//! where its private temporary directory is mounted.
//!
//! Input: the directory to show and where. Output: the calling process
//! (single-threaded) in a new mount namespace with nothing propagating to
//! or from the host, the directory bind-mounted there; or the kernel's
//! error.

use super::last_error;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Moves the calling process into a new mount namespace whose mounts are
/// all private (nothing it mounts reaches the host, nothing the host
/// mounts later reaches it), then bind-mounts `src` at `dst`. Must be
/// called before the process starts a thread (`CLONE_NEWNS` implies
/// `CLONE_FS`). The namespace, and the mount, end with the last process
/// in it.
pub fn private_bind_mount(src: &Path, dst: &Path) -> io::Result<()> {
    // SAFETY: a mount namespace changes no memory or descriptor of this
    // process; with one thread, nothing else shares its fs_struct.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }?;
    let root = c"/";
    // SAFETY: valid NUL-terminated strings; a null source, type and data
    // are allowed for a propagation change.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(last_error());
    }
    let (s, d) = (cpath(src)?, cpath(dst)?);
    // SAFETY: valid NUL-terminated strings; a bind mount takes no type or
    // data.
    let r = unsafe {
        libc::mount(
            s.as_ptr(),
            d.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(last_error());
    }
    Ok(())
}
