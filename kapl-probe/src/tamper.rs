//! Tampering with the session itself:
//! `cgroup-leave DIR` (writes the probe's pid into `DIR/cgroup.procs`:
//! another cgroup, out of reach of the session's hooks), `bpf-prog-by-id ID`, `bpf-map-by-id ID`,
//! `bpf-link-detach ID` (get an fd for the link, then detach it),
//! `bpf-prog-load` (load a program that allows everything),
//! `ptrace PID`, `vm-read PID`, `signal PID` (SIGCONT: harmless if it
//! arrives), `signal-group PGID` and `signal-all` (signal 0 to a process
//! group, to every process: only the permission is checked),
//! `pidfd-signal PID [group]` (signal 0 through a pidfd; `group`: to its
//! process group, `PIDFD_SIGNAL_PROCESS_GROUP`), `signal-own` (forks a
//! child and kills it: a signal inside the session), `control-step NAME STEP` (connect to the abstract control
//! socket NAME and ask for step STEP; `ok` only if the step changed),
//! `impersonate NAME` (listens on the abstract socket NAME, prints
//! `impersonate listening`, then `impersonate accepted` when a client
//! connects within 10 s, and answers it as a supervisor would).

use crate::report::outcome;
use crate::sys::cvt;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};

const BPF_PROG_LOAD: i32 = 5;
const BPF_PROG_GET_FD_BY_ID: i32 = 13;
const BPF_MAP_GET_FD_BY_ID: i32 = 14;
const BPF_LINK_GET_FD_BY_ID: i32 = 30;
const BPF_LINK_DETACH: i32 = 34;

pub fn run(cmd: &str, args: &[String]) -> Option<()> {
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let id = || a(0).parse::<u32>().unwrap_or(0);
    let pid = || a(0).parse::<i32>().unwrap_or(0);
    match cmd {
        "cgroup-leave" => outcome(cmd, cgroup_leave(a(0))),
        "bpf-prog-by-id" => outcome(cmd, by_id(BPF_PROG_GET_FD_BY_ID, id())),
        "bpf-map-by-id" => outcome(cmd, by_id(BPF_MAP_GET_FD_BY_ID, id())),
        "bpf-link-get" => outcome(cmd, by_id(BPF_LINK_GET_FD_BY_ID, id())),
        "bpf-link-detach" => outcome(cmd, link_detach(id())),
        "bpf-prog-load" => outcome(cmd, prog_load()),
        "ptrace" => outcome(cmd, ptrace(pid())),
        "vm-read" => outcome(cmd, vm_read(pid())),
        "signal" => outcome(
            cmd,
            // SAFETY: kill(2) with plain integers.
            cvt(unsafe { libc::kill(pid(), libc::SIGCONT) }),
        ),
        "signal-group" => {
            // SAFETY: kill(2) with plain integers.
            outcome(cmd, cvt(unsafe { libc::kill(-pid(), 0) }))
        }
        "signal-all" => {
            // SAFETY: kill(2) with plain integers.
            outcome(cmd, cvt(unsafe { libc::kill(-1, 0) }))
        }
        "pidfd-signal" => outcome(cmd, pidfd_signal(pid(), a(1) == "group")),
        "signal-own" => outcome(cmd, signal_own()),
        "control-step" => outcome(cmd, control_step(a(0), a(1))),
        "impersonate" => outcome(cmd, impersonate(a(0))),
        _ => return None,
    }
    Some(())
}

/// Signal 0 to `pid` through a pidfd (to its process group with `group`).
fn pidfd_signal(pid: i32, group: bool) -> io::Result<()> {
    // SAFETY: pidfd_open(2) with plain integers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just returned to us and is owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: pidfd_send_signal(2) with a live descriptor and no siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            // PIDFD_SIGNAL_PROCESS_GROUP.
            if group { 4 } else { 0 },
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Forks a child that waits, kills it with SIGTERM and reaps it: ok only
/// if the child died of that signal.
fn signal_own() -> io::Result<()> {
    // SAFETY: fork(2); the child only calls pause(2) and _exit(2).
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(io::Error::last_os_error());
    }
    if child == 0 {
        // SAFETY: async-signal-safe calls only.
        unsafe {
            libc::pause();
            libc::_exit(0);
        }
    }
    // SAFETY: kill(2) with plain integers.
    let sent = cvt(unsafe { libc::kill(child, libc::SIGTERM) });
    let mut status = 0;
    // SAFETY: waitpid(2) on our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    sent?;
    if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGTERM {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(libc::ECHILD))
    }
}

fn cgroup_leave(dir: &str) -> io::Result<()> {
    let pid = std::process::id().to_string();
    std::fs::OpenOptions::new()
        .write(true)
        .open(std::path::Path::new(dir).join("cgroup.procs"))?
        .write_all(pid.as_bytes())
}

fn bpf(cmd: i32, attr: &mut [u64]) -> io::Result<i32> {
    // SAFETY: bpf(2) with an attribute buffer of the given size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            size_of_val(attr) as u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as i32)
    }
}

fn by_id(cmd: i32, id: u32) -> io::Result<OwnedFd> {
    let mut attr = [0u64; 4];
    attr[0] = u64::from(id);
    let fd = bpf(cmd, &mut attr)?;
    // SAFETY: a fresh descriptor from bpf(2).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn link_detach(id: u32) -> io::Result<i32> {
    let link = by_id(BPF_LINK_GET_FD_BY_ID, id)?;
    let mut attr = [0u64; 4];
    attr[0] = std::os::fd::AsRawFd::as_raw_fd(&link) as u64;
    bpf(BPF_LINK_DETACH, &mut attr)
}

fn prog_load() -> io::Result<OwnedFd> {
    // r0 = 1; exit (a cgroup_sock_addr program that allows everything).
    let insns: [u64; 2] = [0x0000_0001_0000_00b7, 0x0000_0000_0000_0095];
    let license = c"GPL";
    let mut attr = [0u64; 16];
    // prog_type (18: CGROUP_SOCK_ADDR) | insn_cnt << 32
    attr[0] = 18 | (2u64 << 32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    // expected_attach_type (offset 68: BPF_CGROUP_INET4_CONNECT = 10).
    attr[8] = 10u64 << 32;
    let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
    // SAFETY: a fresh descriptor from bpf(2).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ptrace(pid: i32) -> io::Result<libc::c_long> {
    // SAFETY: PTRACE_SEIZE with plain integers (no options).
    let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0usize, 0usize) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: detach what we seized.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0usize, 0usize) };
    Ok(r)
}

fn vm_read(pid: i32) -> io::Result<isize> {
    // The first mapping of the target (readable by its owner outside any
    // sandbox); a confined probe cannot read /proc/PID/maps and tries an
    // address anyway: the refusal comes before any address is looked at.
    let addr = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split('-').next())
                .and_then(|a| usize::from_str_radix(a, 16).ok())
        })
        .unwrap_or(0x40_0000);
    let mut buf = [0u8; 16];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: one local iovec over our buffer; the remote one is only read
    // by the kernel on the target's behalf.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n)
    }
}

fn control_step(name: &str, step: &str) -> io::Result<()> {
    let mut path = vec![0u8];
    path.extend_from_slice(name.as_bytes());
    let fd = crate::net::unix(&path, libc::SOCK_STREAM)?;
    let mut s = std::os::unix::net::UnixStream::from(fd);
    s.write_all(format!("{{\"op\":\"step\",\"name\":\"{step}\"}}\n").as_bytes())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    if reply.contains("\"kind\":\"ok\"") {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(libc::ECONNRESET))
    }
}

/// Listens on the abstract socket `name` and answers one client with a
/// supervisor's `ok` reply.
fn impersonate(name: &str) -> io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    let l = std::os::unix::net::UnixListener::bind_addr(&addr)?;
    println!("impersonate listening");
    io::stdout().flush()?;
    l.set_nonblocking(true)?;
    for _ in 0..1000 {
        match l.accept() {
            Ok((mut c, _)) => {
                println!("impersonate accepted");
                // The client may already have gone (it checks who it
                // reached first): a failed answer is not an error.
                let _ = c.write_all(b"{\"kind\":\"ok\",\"message\":\"impersonated\"}\n");
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::from_raw_os_error(libc::ETIMEDOUT))
}
