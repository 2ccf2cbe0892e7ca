// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
//
// KAPL: the maps every program of a session shares (included by
// kapl.bpf.c and unix.bpf.c; the loader gives both objects the same map
// instances, so one definition keeps their layouts identical):
//   cg_step — cgroup id of a command's cgroup -> step index;
//   events  — the decision ring buffer read by the supervisor;
//   lost    — per-CPU count of events the ring buffer had no room for.

#ifndef KAPL_SESSION_H
#define KAPL_SESSION_H

#define NO_GRANT 0xffffffffu
#define NO_STEP 0xffffffffu

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, __u32);
	__uint(max_entries, 4096);
} cg_step SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} lost SEC(".maps");

// Counts one event the ring buffer had no room for (never dropped
// silently).
static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost, &zero);
	if (n)
		*n += 1;
}

// The step of the current process's cgroup (NO_STEP outside the session's
// command cgroups); the cgroup id is returned in *cg.
static __always_inline __u32 current_step(__u64 *cg)
{
	*cg = bpf_get_current_cgroup_id();
	__u32 *s = bpf_map_lookup_elem(&cg_step, cg);
	return s ? *s : NO_STEP;
}

#endif
