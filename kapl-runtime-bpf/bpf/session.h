// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
//
// KAPL: the maps every program of a session shares (included by
// kapl.bpf.c and unix.bpf.c; the loader gives both objects the same map
// instances, so one definition keeps their layouts identical):
//   cg_step — cgroup id of a command's cgroup -> step index;
//   events  — the decision ring buffer read by the supervisor;
//   lost    — per-CPU count of events the ring buffer had no room for;
// and the header every decision event starts with.

#ifndef KAPL_SESSION_H
#define KAPL_SESSION_H

#define NO_GRANT 0xffffffffu
#define NO_STEP 0xffffffffu
#define COMM_LEN 16

// The first 32 bytes of every event in `events` (net, exec, unix and
// socket option events alike; src/bpf.rs and src/unix.rs decode them at
// these offsets:
// kind 0, pid 4, tgid 8, step 12, ts 16, cgroup 24).
struct event_head {
	__u32 kind;
	__u32 pid; // thread id
	__u32 tgid; // process id
	__u32 step;
	__u64 ts; // CLOCK_BOOTTIME ns
	__u64 cgroup;
};

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

// A record of `size` bytes in `events`, or NULL (counted in `lost`) when
// the ring buffer has no room.
static __always_inline void *reserve_event(__u64 size)
{
	void *e = bpf_ringbuf_reserve(&events, size, 0);
	if (!e)
		count_lost();
	return e;
}

// Fills an event's header for the current task, and its COMM_LEN-byte
// `comm` field.
static __always_inline void fill_head(struct event_head *h, char *comm,
				      __u32 kind, __u32 step, __u64 cg)
{
	__u64 pt = bpf_get_current_pid_tgid();
	h->kind = kind;
	h->pid = (__u32)pt;
	h->tgid = pt >> 32;
	h->step = step;
	h->ts = bpf_ktime_get_boot_ns();
	h->cgroup = cg;
	bpf_get_current_comm(comm, COMM_LEN);
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
