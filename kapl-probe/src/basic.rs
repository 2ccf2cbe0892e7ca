//! Plain attempts, the legitimate twins of the escapes:
//! `read PATH`, `write PATH`, `exec PATH [ARGS...]` (waits for the child and
//! reports `ok` only when it exited 0), `connect ADDR:PORT` (TCP);
//! `dev-ioctl PATH` (a terminal ioctl, `TCGETS`, on PATH opened read-only)
//! and `tiocsti PATH` (terminal injection): `ok` when the ioctl reached
//! the device (its driver answering ENOTTY counts: nothing refused it).

use crate::report::outcome;
use std::io::{Read, Write};

pub fn run(cmd: &str, args: &[String]) -> Option<()> {
    let first = args.first().map(String::as_str).unwrap_or("");
    match cmd {
        "read" => outcome("read", read(first)),
        "write" => outcome("write", write(first)),
        "exec" => outcome("exec", exec(first, &args[1.min(args.len())..])),
        "connect" => outcome("connect", std::net::TcpStream::connect(first)),
        "dev-ioctl" => outcome(cmd, ioctl_on(first, libc::TCGETS)),
        "tiocsti" => outcome(cmd, ioctl_on(first, libc::TIOCSTI)),
        _ => return None,
    }
    Some(())
}

fn read(path: &str) -> std::io::Result<String> {
    let mut s = String::new();
    std::fs::File::open(path)?.read_to_string(&mut s)?;
    Ok(s)
}

fn write(path: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)?
        .write_all(b"probe\n")
}

fn exec(path: &str, args: &[String]) -> std::io::Result<()> {
    let status = std::process::Command::new(path).args(args).status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("{path} exited {status}")))
    }
}

/// `ioctl(open(path, O_RDONLY), req, buf)`; ENOTTY (the driver's answer)
/// counts as reaching the device.
fn ioctl_on(path: &str, req: libc::Ioctl) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    let mut buf = [0u8; 256];
    // SAFETY: `buf` outlives the call and is larger than any argument the
    // two requests used here read or write (a termios, one byte).
    let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&f), req, buf.as_mut_ptr()) };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOTTY) {
        return Ok(());
    }
    Err(e)
}
