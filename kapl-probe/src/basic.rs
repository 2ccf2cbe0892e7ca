//! Plain attempts, the legitimate twins of the escapes:
//! `read PATH`, `write PATH`, `exec PATH [ARGS...]` (waits for the child and
//! reports `ok` only when it exited 0), `connect ADDR:PORT` (TCP).

use crate::report::outcome;
use std::io::{Read, Write};

pub fn run(cmd: &str, args: &[String]) -> Option<()> {
    let first = args.first().map(String::as_str).unwrap_or("");
    match cmd {
        "read" => outcome("read", read(first)),
        "write" => outcome("write", write(first)),
        "exec" => outcome("exec", exec(first, &args[1.min(args.len())..])),
        "connect" => outcome("connect", std::net::TcpStream::connect(first)),
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
