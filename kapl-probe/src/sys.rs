//! Raw system calls the escape probes share: a C string from a path and
//! an errno-carrying result from a libc return value.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

/// A NUL-terminated copy of `path` (a path never contains NUL when it comes
/// from argv).
pub fn c(path: &str) -> CString {
    let p = std::ffi::OsStr::new(path).as_bytes().to_vec();
    CString::new(p).unwrap_or_default()
}

/// `Ok(ret)` when `ret >= 0`, else the calling thread's errno.
pub fn cvt<T: Copy + Into<i64>>(ret: T) -> std::io::Result<T> {
    if ret.into() < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Opens `path` with `flags` (mode 0o600 when creating).
pub fn open(path: &str, flags: i32) -> std::io::Result<i32> {
    let p = c(path);
    // SAFETY: `p` is a valid C string for the duration of the call.
    cvt(unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, 0o600) } as i64)
        .map(|fd| fd as i32)
}

/// Closes `fd`, ignoring errors (probe descriptors only).
pub fn close(fd: i32) {
    // SAFETY: closing a descriptor this probe opened.
    unsafe { libc::close(fd) };
}

/// Reads up to 4 KiB from `fd`.
pub fn read_fd(fd: i32) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: `buf` is writable for its length.
    let n = cvt(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } as i64)?;
    buf.truncate(n as usize);
    Ok(buf)
}

/// Forks; the child runs `child` (which must end in exec or `_exit`), the
/// parent reports `Ok` when the child exited 0. The child reports an exec
/// failure's errno through a close-on-exec pipe, so `refused ERRNO` names
/// the errno of the exec itself, not the program's exit status.
pub fn fork_exec(child: impl FnOnce() -> i32) -> std::io::Result<()> {
    let mut p = [0i32; 2];
    // SAFETY: `p` has room for two descriptors.
    cvt(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } as i64)?;
    // SAFETY: the probe is single-threaded; the child only execs or exits.
    let pid = cvt(unsafe { libc::fork() } as i64)?;
    if pid == 0 {
        close(p[0]);
        let errno = child();
        let b = errno.to_ne_bytes();
        // SAFETY: writing 4 bytes from a stack buffer, then leaving.
        unsafe {
            libc::write(p[1], b.as_ptr().cast(), 4);
            libc::_exit(127);
        }
    }
    close(p[1]);
    let mut b = [0u8; 4];
    // SAFETY: reading at most 4 bytes into `b`.
    let n = unsafe { libc::read(p[0], b.as_mut_ptr().cast(), 4) };
    close(p[0]);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid as i32, &mut status, 0) };
    if n == 4 {
        return Err(std::io::Error::from_raw_os_error(i32::from_ne_bytes(b)));
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("child status {status}")))
    }
}

/// The current errno.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}
