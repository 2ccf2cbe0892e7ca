//! io_uring side doors: operations submitted through a ring are not system
//! calls a seccomp filter sees. `uring-openat PATH`, `uring-connect
//! ADDR:PORT` (TCP), `uring-socket FAMILY TYPE PROTO`, `uring-sendmsg
//! ADDR:PORT` (one UDP datagram, unconnected). Each sets up its own ring
//! (raw `io_uring_setup`/`mmap`/`io_uring_enter`, no library) and reports
//! the operation's result; a refused `io_uring_setup` is reported as the
//! operation's refusal.

use crate::report::outcome;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const OP_SENDMSG: u8 = 9;
const OP_CONNECT: u8 = 16;
const OP_OPENAT: u8 = 18;
const OP_SOCKET: u8 = 45;
const OFF_SQ_RING: i64 = 0;
const OFF_CQ_RING: i64 = 0x800_0000;
const OFF_SQES: i64 = 0x1000_0000;
const ENTER_GETEVENTS: u32 = 1;

pub fn run(cmd: &str, args: &[String]) -> Option<()> {
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match cmd {
        "uring-openat" => outcome(cmd, openat(a(0))),
        "uring-connect" => outcome(cmd, connect(a(0))),
        "uring-socket" => outcome(cmd, socket(a(0), a(1), a(2))),
        "uring-sendmsg" => outcome(cmd, sendmsg(a(0))),
        _ => return None,
    }
    Some(())
}

#[repr(C)]
#[derive(Default)]
struct SqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
struct CqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqOffsets,
    cq_off: CqOffsets,
}

/// One submission queue entry (64 bytes).
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Sqe {
    opcode: u8,
    flags: u8,
    ioprio: u16,
    fd: i32,
    off: u64,
    addr: u64,
    len: u32,
    op_flags: u32,
    user_data: u64,
    buf_index: u16,
    personality: u16,
    file_index: u32,
    addr3: u64,
    pad: u64,
}

struct Map {
    ptr: *mut u8,
    len: usize,
}

impl Map {
    fn new(fd: &OwnedFd, len: usize, off: i64) -> io::Result<Map> {
        // SAFETY: mapping the ring region the kernel offers at `off`.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Map { ptr: p.cast(), len })
    }
    fn u32_at(&self, off: u32) -> *mut u32 {
        // SAFETY: offsets come from the kernel's description of this map.
        unsafe { self.ptr.add(off as usize).cast() }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Submits one entry on a fresh ring and returns the completion's result.
fn submit(sqe: Sqe) -> io::Result<i32> {
    let mut p = Params::default();
    // SAFETY: io_uring_setup with a params struct of the kernel's layout.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, &mut p as *mut Params) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let sq = Map::new(
        &fd,
        p.sq_off.array as usize + p.sq_entries as usize * 4,
        OFF_SQ_RING,
    )?;
    let cq = Map::new(
        &fd,
        p.cq_off.cqes as usize + p.cq_entries as usize * 16,
        OFF_CQ_RING,
    )?;
    let sqes = Map::new(&fd, p.sq_entries as usize * 64, OFF_SQES)?;
    // SAFETY: every pointer below lies inside the maps just made, at the
    // offsets the kernel gave; one thread, one entry.
    unsafe {
        let tail = sq.u32_at(p.sq_off.tail);
        let mask = *sq.u32_at(p.sq_off.ring_mask);
        let t = std::ptr::read_volatile(tail);
        let idx = t & mask;
        std::ptr::write(sqes.ptr.cast::<Sqe>().add(idx as usize), sqe);
        *sq.u32_at(p.sq_off.array + 4 * idx) = idx;
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        std::ptr::write_volatile(tail, t.wrapping_add(1));
        let r = libc::syscall(
            libc::SYS_io_uring_enter,
            fd.as_raw_fd(),
            1u32,
            1u32,
            ENTER_GETEVENTS,
            std::ptr::null::<u8>(),
            0usize,
        );
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let head = std::ptr::read_volatile(cq.u32_at(p.cq_off.head));
        let cmask = *cq.u32_at(p.cq_off.ring_mask);
        let cqe = cq
            .ptr
            .add(p.cq_off.cqes as usize + 16 * (head & cmask) as usize);
        let res = std::ptr::read_volatile(cqe.add(8).cast::<i32>());
        std::ptr::write_volatile(cq.u32_at(p.cq_off.head), head.wrapping_add(1));
        if res < 0 {
            Err(io::Error::from_raw_os_error(-res))
        } else {
            Ok(res)
        }
    }
}

fn own(fd: i32) -> OwnedFd {
    // SAFETY: a descriptor the completion just created for us.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn openat(path: &str) -> io::Result<OwnedFd> {
    let c = std::ffi::CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fd = submit(Sqe {
        opcode: OP_OPENAT,
        fd: libc::AT_FDCWD,
        addr: c.as_ptr() as u64,
        op_flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u32,
        ..Sqe::default()
    })?;
    Ok(own(fd))
}

fn socket(family: &str, ty: &str, proto: &str) -> io::Result<OwnedFd> {
    let n = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    };
    let fd = submit(Sqe {
        opcode: OP_SOCKET,
        fd: n(family)? as i32,
        off: n(ty)?,
        len: n(proto)? as u32,
        ..Sqe::default()
    })?;
    Ok(own(fd))
}

fn connect(a: &str) -> io::Result<i32> {
    let (s, ss, len) = crate::net::inet_socket(a, libc::SOCK_STREAM)?;
    submit(Sqe {
        opcode: OP_CONNECT,
        fd: s.as_raw_fd(),
        addr: std::ptr::addr_of!(ss) as u64,
        off: u64::from(len),
        ..Sqe::default()
    })
}

fn sendmsg(a: &str) -> io::Result<i32> {
    let (s, mut ss, len) = crate::net::inet_socket(a, libc::SOCK_DGRAM)?;
    let mut data = *b"probe";
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_name = std::ptr::addr_of_mut!(ss).cast();
    mh.msg_namelen = len;
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    submit(Sqe {
        opcode: OP_SENDMSG,
        fd: s.as_raw_fd(),
        addr: std::ptr::addr_of!(mh) as u64,
        len: 1,
        ..Sqe::default()
    })
}
