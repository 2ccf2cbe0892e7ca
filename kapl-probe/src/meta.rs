//! Calls Landlock has no right for, which the supervisor decides: changes
//! of mode, owner, times and extended attributes, inotify watches, and
//! `listen` without `bind`; and races against the supervisor's
//! resolution.
//!
//! - `meta PATH`: by path `chmod` (0o640), `chown` (to the file's own
//!   owner), `utimensat` (to 2000-01-01), `setxattr` (`user.kapl`),
//!   `removexattr`; then through a read-only descriptor `fchmod`,
//!   `futimens`, `fsetxattr`. One line each.
//! - `watch PATH`: `inotify_add_watch(PATH, IN_CREATE)` (`watch`).
//! - `openat2-create PATH`: `openat2(O_CREAT | O_EXCL | O_WRONLY)`, then
//!   writes one line through the descriptor (`openat2-create`).
//! - `listen-unbound`: `listen` on a fresh IPv4 and IPv6 TCP socket
//!   (`listen-unbound4`, `listen-unbound6`).
//! - `race-buffer GOOD BAD N`: a thread flips one path buffer between
//!   GOOD and BAD while `chmod(buffer, 0o600)` runs N times; prints how
//!   many calls succeeded (`race-buffer ok`); the test then checks BAD's
//!   mode.
//! - `race-swap DIR N`: a thread swaps `DIR/x` between a directory and a
//!   symbolic link to `DIR/denied` (rename over it) while
//!   `chmod("DIR/x/f", 0o600)` runs N times (`race-swap ok`).

use crate::report::outcome;
use crate::sys::{c, close, cvt, open};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub fn run(cmd: &str, args: &[String]) -> Option<()> {
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match cmd {
        "meta" => meta(a(0)),
        "watch" => {
            // SAFETY: plain integer arguments.
            let ino = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
            let p = c(a(0));
            // SAFETY: a valid C string and an inotify descriptor.
            let r = cvt(unsafe { libc::inotify_add_watch(ino, p.as_ptr(), libc::IN_CREATE) });
            outcome("watch", r);
            close(ino);
        }
        "listen-unbound" => {
            for (name, family) in [
                ("listen-unbound4", libc::AF_INET),
                ("listen-unbound6", libc::AF_INET6),
            ] {
                // SAFETY: plain integer arguments.
                let s = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
                // SAFETY: plain integer arguments.
                outcome(name, cvt(unsafe { libc::listen(s, 1) }));
                close(s);
            }
        }
        "openat2-create" => outcome("openat2-create", openat2_create(a(0))),
        "race-buffer" => race_buffer(a(0), a(1), a(2).parse().unwrap_or(1000)),
        "race-swap" => race_swap(a(0), a(1).parse().unwrap_or(1000)),
        _ => return None,
    }
    Some(())
}

fn meta(path: &str) {
    let p = c(path);
    let st = std::fs::metadata(path);
    let (uid, gid) = st.as_ref().map_or((0, 0), |m| {
        use std::os::unix::fs::MetadataExt;
        (m.uid(), m.gid())
    });
    // SAFETY: valid C strings and plain integers in every call below.
    outcome("chmod", cvt(unsafe { libc::chmod(p.as_ptr(), 0o640) }));
    // SAFETY: as above.
    outcome("chown", cvt(unsafe { libc::chown(p.as_ptr(), uid, gid) }));
    let times = [
        libc::timespec {
            tv_sec: 946_684_800,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: 946_684_800,
            tv_nsec: 0,
        },
    ];
    // SAFETY: as above; `times` holds two timespecs.
    outcome(
        "utimensat",
        cvt(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) }),
    );
    let name = c("user.kapl");
    // SAFETY: as above; the value is one byte.
    outcome(
        "setxattr",
        cvt(unsafe { libc::setxattr(p.as_ptr(), name.as_ptr(), b"1".as_ptr().cast(), 1, 0) }),
    );
    // SAFETY: as above.
    outcome(
        "removexattr",
        cvt(unsafe { libc::removexattr(p.as_ptr(), name.as_ptr()) }),
    );
    match open(path, libc::O_RDONLY) {
        Err(e) => outcome::<()>("open", Err(e)),
        Ok(fd) => {
            outcome("open", Ok(()));
            // SAFETY: `fd` is open; plain integers.
            outcome("fchmod", cvt(unsafe { libc::fchmod(fd, 0o640) }));
            // SAFETY: as above; `times` holds two timespecs.
            outcome(
                "futimens",
                cvt(unsafe { libc::futimens(fd, times.as_ptr()) }),
            );
            // SAFETY: as above.
            outcome(
                "fsetxattr",
                cvt(unsafe { libc::fsetxattr(fd, name.as_ptr(), b"1".as_ptr().cast(), 1, 0) }),
            );
            close(fd);
        }
    }
}

/// A NUL-terminated path buffer another thread rewrites.
struct Flipping {
    buf: Box<[u8; 4096]>,
}

fn race_buffer(good: &str, bad: &str, n: u32) {
    let mut f = Flipping {
        buf: Box::new([0; 4096]),
    };
    let addr = f.buf.as_mut_ptr() as usize;
    let (g, b) = (good.as_bytes().to_vec(), bad.as_bytes().to_vec());
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    let t = std::thread::spawn(move || {
        let mut flip = false;
        while !s2.load(Ordering::Relaxed) {
            let src = if flip { &b } else { &g };
            // SAFETY: the buffer outlives the thread (joined below) and is
            // 4096 bytes; both paths are shorter. Racing writes are the
            // point: the supervisor must read it once and act on that.
            unsafe {
                let dst = addr as *mut u8;
                std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len());
                *dst.add(src.len()) = 0;
            }
            flip = !flip;
            // Let the caller run between flips on a loaded machine too.
            std::thread::yield_now();
        }
    });
    let mut ok = 0u32;
    for _ in 0..n {
        // SAFETY: the buffer is NUL-terminated whatever the other thread
        // wrote (both paths fit, each write ends with a NUL).
        if unsafe { libc::chmod(f.buf.as_ptr().cast(), 0o600) } == 0 {
            ok += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = t.join();
    println!("race-buffer ok {ok}");
}

fn race_swap(dir: &str, n: u32) {
    let x = format!("{dir}/x");
    let real = format!("{dir}/real");
    let link = format!("{dir}/link");
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    let (x2, real2, link2) = (x.clone(), real.clone(), link.clone());
    let t = std::thread::spawn(move || {
        let mut flip = false;
        while !s2.load(Ordering::Relaxed) {
            // x is a directory (renamed from real) or a symbolic link to
            // the denied directory (renamed from link), in turn.
            let (back, from) = if flip {
                (&link2, &real2)
            } else {
                (&real2, &link2)
            };
            let _ = std::fs::rename(&x2, back);
            let _ = std::fs::rename(from, &x2);
            flip = !flip;
        }
    });
    let target = c(&format!("{x}/f"));
    let mut ok = 0u32;
    for _ in 0..n {
        // SAFETY: a valid C string.
        if unsafe { libc::chmod(target.as_ptr(), 0o600) } == 0 {
            ok += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = t.join();
    println!("race-swap ok {ok}");
}

/// `openat2(AT_FDCWD, path, {O_CREAT | O_EXCL | O_WRONLY, 0o644})`, then a
/// write through the descriptor.
fn openat2_create(path: &str) -> std::io::Result<()> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let p = c(path);
    let how = OpenHow {
        flags: (libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC) as u64,
        mode: 0o644,
        resolve: 0,
    };
    // SAFETY: a valid C string and an open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            p.as_ptr(),
            &raw const how,
            size_of::<OpenHow>(),
        )
    };
    let fd = cvt(fd)? as i32;
    // SAFETY: `fd` is open; the buffer is a static byte string.
    let w = cvt(unsafe { libc::write(fd, b"made\n".as_ptr().cast(), 5) } as i64);
    close(fd);
    w.map(drop)
}
