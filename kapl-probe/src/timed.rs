//! Timed loops for the runtime bench (not escapes): the loop runs inside
//! the confined command and times itself, so `kapl-run` start-up is not
//! counted.
//!
//! - `create-unlink DIR N`: creates `DIR/f0` .. `DIR/f{N-1}` (`open` with
//!   `O_CREAT|O_EXCL|O_WRONLY`, a 64-byte `write`, `close`), then unlinks
//!   them; prints `create-unlink ok CREATE_NS UNLINK_NS` (the two phases'
//!   elapsed nanoseconds), or `create-unlink refused ERRNO` at the first
//!   failure (the files made so far are removed).
//! - `connect-loop ADDR:PORT N`: N TCP connects to ADDR:PORT, each closed
//!   at once with a reset (`SO_LINGER` 0: no `TIME_WAIT` pile-up); prints
//!   `connect-loop ok NS CPU_NS` (elapsed nanoseconds, and the CPU time
//!   the process used meanwhile), or `connect-loop refused ERRNO` at the
//!   first failure.

use crate::sys::{c, close, cvt, open};
use std::time::Instant;

pub fn run(cmd: &str, args: &[String]) -> Option<()> {
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match cmd {
        "create-unlink" => create_unlink(a(0), a(1).parse().unwrap_or(0)),
        "connect-loop" => connect_loop(a(0), a(1).parse().unwrap_or(0)),
        _ => return None,
    }
    Some(())
}

fn create_unlink(dir: &str, n: usize) {
    let names: Vec<_> = (0..n).map(|i| c(&format!("{dir}/f{i}"))).collect();
    let data = [b'x'; 64];
    let unlink = |name: &std::ffi::CStr| {
        // SAFETY: a valid C string.
        cvt(unsafe { libc::unlink(name.as_ptr()) } as i64)
    };
    let t = Instant::now();
    for (i, name) in names.iter().enumerate() {
        let made = name
            .to_str()
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
            .and_then(|p| open(p, libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY))
            .and_then(|fd| {
                // SAFETY: `data` is readable for its length; `fd` is open.
                let w = cvt(unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) } as i64);
                close(fd);
                w
            });
        if let Err(e) = made {
            for done in &names[..i] {
                let _ = unlink(done);
            }
            println!("create-unlink refused {}", e.raw_os_error().unwrap_or(0));
            return;
        }
    }
    let created = t.elapsed();
    let t = Instant::now();
    for name in &names {
        if let Err(e) = unlink(name) {
            println!("create-unlink refused {}", e.raw_os_error().unwrap_or(0));
            return;
        }
    }
    let unlinked = t.elapsed();
    println!(
        "create-unlink ok {} {}",
        created.as_nanos(),
        unlinked.as_nanos()
    );
}

fn connect_loop(to: &str, n: usize) {
    let Ok(to) = to.parse::<std::net::SocketAddr>() else {
        println!("connect-loop refused {}", libc::EINVAL);
        return;
    };
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let (t, c) = (Instant::now(), process_cpu_ns());
    for _ in 0..n {
        match std::net::TcpStream::connect(to) {
            Ok(s) => {
                use std::os::fd::AsRawFd;
                // SAFETY: setsockopt on the stream's own descriptor with a
                // live `linger`.
                unsafe {
                    libc::setsockopt(
                        s.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        std::ptr::addr_of!(linger).cast(),
                        size_of::<libc::linger>() as u32,
                    );
                }
            }
            Err(e) => {
                println!("connect-loop refused {}", e.raw_os_error().unwrap_or(0));
                return;
            }
        }
    }
    println!(
        "connect-loop ok {} {}",
        t.elapsed().as_nanos(),
        process_cpu_ns() - c
    );
}

/// CPU time this process has used, in nanoseconds.
fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime into our timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
