// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
//
// KAPL: the BPF LSM probe (stage: runtime start, book/src/bpf-lsm.md;
// input: nothing; output: whether this kernel loads an lsm/file_open
// program). src/lsm_probe.rs loads it once at session start and drops it:
// it is never attached, and it allows everything.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("lsm/file_open")
int BPF_PROG(kapl_lsm_probe, struct file *file)
{
	return 0;
}
