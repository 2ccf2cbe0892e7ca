//! Load, race and process-tree probes (tests/faults.rs).
//!
//! - `storm-open PATH N`: N opens of PATH for reading;
//! - `storm-send ADDR:PORT N`: N UDP `sendto`s of one byte from one socket,
//!   without connect;
//! - `storm-connect ADDR:PORT N`: N TCP connects, each socket closed
//!   again;
//! - `sweep-udp ADDR:FIRST N`: one UDP socket connected in turn to ports
//!   FIRST, FIRST+1, ... (N of them; a UDP connect sends nothing).
//!
//!   A storm prints one line per distinct outcome with its count appended:
//!   `storm-open refused 13 1000000` (a million lines would measure the
//!   pipe, not the runtime).
//! - `busy MS [read:PATH | connect:ADDR:PORT]...`: repeats the attempts in
//!   order for MS milliseconds (0: until killed); each attempt is one line
//!   named `KIND:TARGET@T`, T the CLOCK_MONOTONIC time in nanoseconds
//!   taken before the attempt, so a test can order attempts against its own
//!   clock.
//! - `escape OUT READPATH ADDR:PORT [stay]`: double fork, `setsid` in the middle
//!   process, which exits so the grandchild is re-parented (to init or the
//!   nearest subreaper). The grandchild writes `pid PID` to OUT (opened
//!   before detaching, append mode) and then acts every 2 ms until killed:
//!   a read of READPATH and a TCP connect, each appended to OUT as a busy
//!   line. The probe itself prints `escape ok` once the grandchild has
//!   written its pid, then exits (with `stay`: sleeps until killed).

use crate::report::outcome;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

pub fn run(cmd: &str, args: &[String]) -> Option<()> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match cmd {
        "storm-open" => storm("storm-open", count(arg(1)), |_| {
            std::fs::File::open(arg(0)).map(drop)
        }),
        "storm-send" => match arg(0).parse::<SocketAddr>() {
            // A socket never bound explicitly: `sendto` binds it
            // implicitly, so only the send itself is decided.
            Ok(to) => match udp_socket(&to) {
                Ok(fd) => storm("storm-send", count(arg(1)), |_| send_to(&fd, &to)),
                Err(e) => outcome("storm-send", Err::<(), _>(e)),
            },
            Err(_) => outcome(
                "storm-send",
                Err::<(), _>(std::io::Error::from_raw_os_error(libc::EINVAL)),
            ),
        },
        "storm-connect" => match arg(0).parse::<SocketAddr>() {
            Ok(to) => storm("storm-connect", count(arg(1)), |_| {
                TcpStream::connect(to).map(drop)
            }),
            Err(_) => outcome(
                "storm-connect",
                Err::<(), _>(std::io::Error::from_raw_os_error(libc::EINVAL)),
            ),
        },
        "sweep-udp" => match arg(0).parse::<SocketAddr>() {
            // Never bound explicitly: the connect binds it implicitly.
            Ok(first) => match udp_socket(&first) {
                Ok(fd) => storm("sweep-udp", count(arg(1)), |i| {
                    let mut to = first;
                    let port = u16::try_from(u64::from(first.port()) + i)
                        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
                    to.set_port(port);
                    connect_to(&fd, &to)
                }),
                Err(e) => outcome("sweep-udp", Err::<(), _>(e)),
            },
            Err(_) => outcome(
                "sweep-udp",
                Err::<(), _>(std::io::Error::from_raw_os_error(libc::EINVAL)),
            ),
        },
        "busy" => {
            let ms: u64 = arg(0).parse().unwrap_or(0);
            busy(&mut std::io::stdout(), ms, args.get(1..).unwrap_or(&[]));
        }
        "escape" => {
            outcome("escape", escape(arg(0), arg(1), arg(2)));
            if arg(3) == "stay" {
                use std::io::Write;
                let _ = std::io::stdout().flush();
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
        }
        _ => return None,
    }
    Some(())
}

fn udp_socket(to: &SocketAddr) -> std::io::Result<OwnedFd> {
    let family = match to {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket(2).
    let fd = unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `to` as a socket address for the kernel, and its length.
fn sockaddr(to: &SocketAddr) -> (libc::sockaddr_storage, usize) {
    // SAFETY: sockaddr_storage is plain data.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match to {
        SocketAddr::V4(a) => {
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write(std::ptr::addr_of_mut!(ss).cast(), sa) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sa = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write(std::ptr::addr_of_mut!(ss).cast(), sa) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len)
}

fn connect_to(fd: &OwnedFd, to: &SocketAddr) -> std::io::Result<()> {
    let (ss, len) = sockaddr(to);
    // SAFETY: connect with an address of `len` bytes.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            std::ptr::addr_of!(ss).cast(),
            len as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn send_to(fd: &OwnedFd, to: &SocketAddr) -> std::io::Result<()> {
    let (ss, len) = sockaddr(to);
    // SAFETY: sendto with our byte and address of `len` bytes.
    let r = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            b"x".as_ptr().cast(),
            1,
            0,
            std::ptr::addr_of!(ss).cast(),
            len as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn count(s: &str) -> u64 {
    s.parse().unwrap_or(0)
}

/// Runs `attempt` n times and prints each distinct outcome with its count.
fn storm(name: &str, n: u64, mut attempt: impl FnMut(u64) -> std::io::Result<()>) {
    let mut ok = 0u64;
    let mut refused: std::collections::BTreeMap<i32, u64> = Default::default();
    for i in 0..n {
        match attempt(i) {
            Ok(()) => ok += 1,
            Err(e) => *refused.entry(e.raw_os_error().unwrap_or(-1)).or_default() += 1,
        }
    }
    if ok > 0 {
        println!("{name} ok {ok}");
    }
    for (errno, k) in refused {
        println!("{name} refused {errno} {k}");
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime into our timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn attempt(spec: &str) -> std::io::Result<()> {
    if let Some(p) = spec.strip_prefix("read:") {
        let mut s = Vec::new();
        return std::fs::File::open(p)?.read_to_end(&mut s).map(drop);
    }
    if let Some(a) = spec.strip_prefix("connect:") {
        let addr: SocketAddr = a
            .parse()
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        return TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map(drop);
    }
    Err(std::io::Error::from_raw_os_error(libc::EINVAL))
}

fn busy(out: &mut impl Write, ms: u64, specs: &[String]) {
    let start = Instant::now();
    loop {
        for s in specs {
            let t = mono_ns();
            let line = match attempt(s) {
                Ok(()) => format!("{s}@{t} ok\n"),
                Err(e) => format!("{s}@{t} refused {}\n", e.raw_os_error().unwrap_or(-1)),
            };
            // One write per line: a killed probe leaves whole lines.
            if out.write_all(line.as_bytes()).is_err() {
                return;
            }
            let _ = out.flush();
        }
        if ms > 0 && start.elapsed() >= Duration::from_millis(ms) {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn escape(out: &str, read: &str, connect: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(out)?;
    let mut pipe = [0i32; 2];
    // SAFETY: pipe into our array.
    if unsafe { libc::pipe(pipe.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the probe is single-threaded; the child only runs the code
    // below and exits.
    let middle = unsafe { libc::fork() };
    if middle < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if middle == 0 {
        // SAFETY: in the middle process: new session, fork the grandchild,
        // leave so that it is re-parented.
        unsafe {
            libc::close(pipe[0]);
            libc::setsid();
            if libc::fork() != 0 {
                libc::_exit(0);
            }
        }
        // SAFETY: getpid never fails.
        let me = unsafe { libc::getpid() };
        let _ = file.write_all(format!("pid {me}\n").as_bytes());
        // SAFETY: tell the probe the grandchild runs, then close.
        unsafe {
            libc::write(pipe[1], b"x".as_ptr().cast(), 1);
            libc::close(pipe[1]);
        }
        // Stdout belongs to the probe's caller, which does not wait for us.
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            // SAFETY: dup2 onto our stdout and stderr.
            unsafe {
                libc::dup2(null.as_raw_fd(), 1);
                libc::dup2(null.as_raw_fd(), 2);
            }
        }
        busy(
            &mut file,
            0,
            &[format!("read:{read}"), format!("connect:{connect}")],
        );
        // SAFETY: leave without returning into the probe's main.
        unsafe { libc::_exit(0) }
    }
    // SAFETY: close our write end, reap the middle process, wait for the
    // grandchild's byte.
    unsafe {
        libc::close(pipe[1]);
        libc::waitpid(middle, std::ptr::null_mut(), 0);
        let mut b = 0u8;
        let n = libc::read(pipe[0], std::ptr::addr_of_mut!(b).cast(), 1);
        libc::close(pipe[0]);
        if n != 1 {
            return Err(std::io::Error::from_raw_os_error(libc::ECHILD));
        }
    }
    Ok(())
}
