//! Whether this kernel can run the BPF LSM precision layer (stage:
//! runtime, session start; book/src/bpf-lsm.md).
//!
//! Input: the kernel. Output: a [`LsmProbe`] (the line is made by
//! `kapl_runtime::lsm_layer::line`): the result of loading the minimal
//! `lsm/file_open` program of `bpf/lsm_probe.bpf.c` with aya, which is
//! dropped at once and never attached. A kernel without BPF LSM (or, as
//! here, without BPF trampolines) refuses `BPF_PROG_LOAD`; the errno is
//! reported by name.

use aya::programs::{Lsm, ProgramError};
use aya::{Btf, EbpfLoader};
use kapl_runtime::lsm_layer::{LsmProbe, errno_name};

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lsm_probe.bpf.o"));

/// The hook probed.
const HOOK: &str = "file_open";
/// The program in the object.
const PROG: &str = "kapl_lsm_probe";

/// Loads `lsm/file_open` once and drops it: [`LsmProbe::Loads`] or what
/// refused it.
pub fn probe() -> LsmProbe {
    let btf = match Btf::from_sys_fs() {
        Ok(b) => b,
        Err(e) => return LsmProbe::Refused(format!("kernel BTF: {e}")),
    };
    let mut ebpf = match EbpfLoader::new().btf(Some(&btf)).load(OBJECT) {
        Ok(e) => e,
        Err(e) => return LsmProbe::Refused(format!("object: {e}")),
    };
    let Some(prog) = ebpf.program_mut(PROG) else {
        return LsmProbe::Refused(format!("object: no program {PROG}"));
    };
    let lsm: &mut Lsm = match prog.try_into() {
        Ok(l) => l,
        Err(e) => return LsmProbe::Refused(format!("object: {e}")),
    };
    match lsm.load(HOOK, &btf) {
        Ok(()) => LsmProbe::Loads,
        Err(ProgramError::LoadError { io_error, .. }) => LsmProbe::Refused(format!(
            "BPF_PROG_LOAD: {}",
            io_error
                .raw_os_error()
                .map_or_else(|| io_error.to_string(), errno_name)
        )),
        Err(e) => LsmProbe::Refused(e.to_string()),
    }
}
