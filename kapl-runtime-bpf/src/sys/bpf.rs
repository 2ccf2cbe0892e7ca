//! Raw `bpf(2)` (stage: runtime, cgroup BPF): loading and attaching the
//! programs aya cannot load (`cgroup/connect_unix`, `cgroup/sendmsg_unix`,
//! the `syscall` program of the BPF LSM decision core) and running a
//! program once (`BPF_PROG_TEST_RUN`, on data or on a context).
//!
//! Input: instructions, license, name and attach types; a program and a
//! cgroup descriptor. Output: the program or link descriptor, or the
//! kernel's error (`io::Result`).

use super::last_error;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

const BPF_PROG_LOAD: u32 = 5;
const BPF_LINK_CREATE: u32 = 28;

/// `bpf(cmd, attr, 128)` for a command that returns a new descriptor.
///
/// # Safety
/// Every pointer in `attr` must be valid for what `cmd` makes the kernel
/// read or write.
unsafe fn bpf_fd(cmd: u32, attr: &mut [u64; 16]) -> io::Result<OwnedFd> {
    // SAFETY: the attribute buffer is ours and 128 bytes long (zero
    // padded); the pointers in it are the caller's contract. On success
    // the kernel returns a new descriptor that nobody else owns.
    unsafe {
        let r = libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), 128u32);
        if r < 0 {
            return Err(last_error());
        }
        Ok(OwnedFd::from_raw_fd(r as RawFd))
    }
}

const BPF_BTF_LOAD: u32 = 18;

/// A program's BTF for `BPF_PROG_LOAD`: the loaded object BTF and the
/// program's `func_info` records (the verifier needs them for a program
/// with callbacks, such as one calling `bpf_loop`).
pub struct ProgBtf<'a> {
    /// The object's BTF, from [`bpf_btf_load`].
    pub fd: BorrowedFd<'a>,
    /// `bpf_func_info` records, `func_info_rec_size` bytes each.
    pub func_info: &'a [u8],
    /// Size of one record.
    pub func_info_rec_size: u32,
}

/// `BPF_BTF_LOAD` of the BTF blob `btf`: its descriptor.
pub fn bpf_btf_load(btf: &[u8]) -> io::Result<OwnedFd> {
    let size = u32::try_from(btf.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let mut attr = [0u64; 16];
    // btf; btf_log_buf (none); btf_size | btf_log_size (0) << 32.
    attr[0] = btf.as_ptr() as u64;
    attr[2] = u64::from(size);
    // SAFETY: the one pointer in `attr` is `btf`, which the kernel reads
    // (`size` bytes) during the call.
    unsafe { bpf_fd(BPF_BTF_LOAD, &mut attr) }
}

/// `BPF_F_SLEEPABLE`: the program may sleep (a `syscall` program must be
/// loaded with it).
pub const BPF_F_SLEEPABLE: u32 = 1 << 4;

/// `BPF_PROG_LOAD` of `insns` as a program of `prog_type` for
/// `expected_attach_type` with `prog_flags` ([`BPF_F_SLEEPABLE`]), named
/// `name` (at most 15 bytes kept); with `log`, the verifier writes its log
/// there at `log_level`.
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per field of the kernel's attribute"
)]
pub fn bpf_prog_load(
    prog_type: u32,
    expected_attach_type: u32,
    prog_flags: u32,
    insns: &[aya_obj::generated::bpf_insn],
    license: &CStr,
    name: &str,
    btf: Option<&ProgBtf<'_>>,
    log: Option<(&mut [u8], u32)>,
) -> io::Result<OwnedFd> {
    let mut pname = [0u8; 16];
    for (d, s) in pname.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    let mut attr = [0u64; 16];
    attr[0] = u64::from(prog_type) | ((insns.len() as u64) << 32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    if let Some((buf, level)) = log {
        let size = u32::try_from(buf.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        // log_level | log_size << 32; log_buf.
        attr[3] = u64::from(level) | (u64::from(size) << 32);
        attr[4] = buf.as_mut_ptr() as u64;
    }
    // kern_version (0) | prog_flags << 32.
    attr[5] = u64::from(prog_flags) << 32;
    let (lo, hi) = pname.split_at(8);
    attr[6] = u64::from_ne_bytes(lo.try_into().unwrap_or([0; 8]));
    attr[7] = u64::from_ne_bytes(hi.try_into().unwrap_or([0; 8]));
    // prog_ifindex (0) | expected_attach_type << 32.
    attr[8] = u64::from(expected_attach_type) << 32;
    if let Some(b) = btf {
        let cnt = u32::try_from(b.func_info.len() / b.func_info_rec_size.max(1) as usize)
            .map_err(|_| io::ErrorKind::InvalidInput)?;
        // prog_btf_fd | func_info_rec_size << 32; func_info; func_info_cnt
        // (| line_info_rec_size 0).
        attr[9] = b.fd.as_raw_fd() as u32 as u64 | (u64::from(b.func_info_rec_size) << 32);
        attr[10] = b.func_info.as_ptr() as u64;
        attr[11] = u64::from(cnt);
    }
    // The verifier gives up with EAGAIN when a signal arrives while it
    // works; like libbpf, try again a few times before reporting it.
    let mut attempts = 0;
    loop {
        // SAFETY: the pointers in `attr` are `insns` (read, `insns.len()`
        // instructions), `license` (a C string), the func_info records
        // (read, `cnt` records of `func_info_rec_size` bytes, within the
        // slice) and the log buffer (written, at most its length): all
        // borrowed for this call.
        match unsafe { bpf_fd(BPF_PROG_LOAD, &mut attr) } {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && attempts < 5 => attempts += 1,
            r => return r,
        }
    }
}

/// [`bpf_prog_load`] of a GPL program; when the kernel refuses it, loads
/// it again with the verifier's log and says why: the errno, then the
/// log's last lines.
pub fn bpf_prog_load_explained(
    prog_type: u32,
    expected_attach_type: u32,
    prog_flags: u32,
    insns: &[aya_obj::generated::bpf_insn],
    name: &str,
    btf: Option<&ProgBtf<'_>>,
) -> Result<OwnedFd, String> {
    let license: &CStr = c"GPL";
    let load = |log| {
        bpf_prog_load(
            prog_type,
            expected_attach_type,
            prog_flags,
            insns,
            license,
            name,
            btf,
            log,
        )
    };
    let e = match load(None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut log = vec![0u8; 1 << 20];
    let _ = load(Some((&mut log, 1)));
    let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    let tail: Vec<&str> = text.lines().rev().take(8).collect();
    Err(format!(
        "{e}; verifier: {}",
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    ))
}

/// `BPF_LINK_CREATE`: attaches `prog` to `target` (a cgroup) as
/// `attach_type`; dropping the link detaches it.
pub fn bpf_link_create(
    prog: BorrowedFd<'_>,
    target: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<OwnedFd> {
    let mut attr = [0u64; 16];
    // prog_fd | target_fd << 32; attach_type | flags << 32.
    attr[0] = prog.as_raw_fd() as u32 as u64 | ((target.as_raw_fd() as u32 as u64) << 32);
    attr[1] = u64::from(attach_type);
    // SAFETY: a link_create attribute holds no pointer.
    unsafe { bpf_fd(BPF_LINK_CREATE, &mut attr) }
}

const BPF_PROG_TEST_RUN: u32 = 10;

/// `BPF_PROG_TEST_RUN` of `prog` once on `data` (for a socket buffer
/// program: an Ethernet header, then the packet): the program's return
/// value.
pub fn bpf_prog_test_run(prog: BorrowedFd<'_>, data: &[u8]) -> io::Result<u32> {
    let len = u32::try_from(data.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let mut attr = [0u64; 16];
    // prog_fd | retval << 32; data_size_in | data_size_out << 32; data_in;
    // data_out (none); repeat (0: once).
    attr[0] = prog.as_raw_fd() as u32 as u64;
    attr[1] = u64::from(len);
    attr[2] = data.as_ptr() as u64;
    // SAFETY: the attribute buffer is ours and 128 bytes long; the one
    // pointer in it is `data`, which the kernel reads (`len` bytes) during
    // the call. The command returns 0, not a descriptor.
    let r = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_TEST_RUN, attr.as_mut_ptr(), 128u32) };
    if r < 0 {
        return Err(last_error());
    }
    Ok((attr[0] >> 32) as u32)
}

/// `BPF_PROG_TEST_RUN` of `prog` once with `ctx` as its context (`ctx_in`;
/// a `BPF_PROG_TYPE_SYSCALL` program takes no data and refuses `repeat`):
/// the program's return value.
pub fn bpf_prog_test_run_ctx(prog: BorrowedFd<'_>, ctx: &[u8]) -> io::Result<u32> {
    let len = u32::try_from(ctx.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let mut attr = [0u64; 16];
    // prog_fd | retval << 32; no data; repeat 0 | duration << 32;
    // ctx_size_in | ctx_size_out << 32 (no ctx_out); ctx_in.
    attr[0] = prog.as_raw_fd() as u32 as u64;
    attr[5] = u64::from(len);
    attr[6] = ctx.as_ptr() as u64;
    // SAFETY: the attribute buffer is ours and 128 bytes long; the one
    // pointer in it is `ctx`, which the kernel reads (`len` bytes) during
    // the call (ctx_out is null: nothing is written back). The command
    // returns 0, not a descriptor.
    let r = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_TEST_RUN, attr.as_mut_ptr(), 128u32) };
    if r < 0 {
        return Err(last_error());
    }
    Ok((attr[0] >> 32) as u32)
}
