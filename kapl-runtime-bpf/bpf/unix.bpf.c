// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
//
// KAPL: pathname UNIX socket connect/sendmsg (stage: kernel enforcement;
// input: the plan's path DFA loaded by kapl-run into the unix_* maps, the
// session's cgroup -> step map; output: a verdict and a decision event).
//
// Landlock (ABI 7) does not mediate connecting to a pathname UNIX socket,
// and a root command without capabilities passes the DAC check on the
// socket file. The rule is DAC's: connecting or sending to a socket needs
// write on its path, so the step must grant `fs write` on it. The path is
// decided as written, so it is refused unless it is absolute and normal
// (no empty, "." or ".." segment), not under /proc or /dev/fd (magic
// links), and no prefix of it, nor the path itself, is a name some step of
// the plan may create (where the session could have planted a symbolic
// link). Unnamed addresses are left to the kernel. Abstract addresses are
// left to Landlock's abstract-socket scope (ABI 6), unless the session
// runs below it (unix_meta.refuse_abstract): then every abstract connect
// and send is refused here instead (R_ABSTRACT).
//
// aya-obj 0.3 does not know the cgroup/connect_unix section names: this
// object is parsed and relocated by src/unix.rs, which loads
// kapl_unix_connect as BPF_CGROUP_UNIX_CONNECT and kapl_unix_sendmsg as
// BPF_CGROUP_UNIX_SENDMSG, with cg_step, events and lost shared with
// kapl.bpf.c (both define them through session.h).

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "session.h"

char LICENSE[] SEC("license") = "GPL";

#define EV_UNIX 3
#define UNIX_PATH 108

// Why a pathname was refused (or 0: allowed).
#define R_OK_ 0
#define R_NO_GRANT 1
#define R_RELATIVE 2
#define R_NOT_NORMAL 3
#define R_CREATABLE 4
#define R_TABLES 5
#define R_MAGIC 6
#define R_ABSTRACT 7

struct unix_meta {
	__u32 start;
	__u32 classes; // class count
	__u32 steps;
	__u32 states;
	__u32 refuse_abstract; // 1: Landlock cannot scope abstract sockets
};

struct unix_event {
	struct event_head head; // kind EV_UNIX
	__u32 grant;
	__u8 op; // 1 connect, 3 send
	__u8 verdict;
	__u8 reason;
	__u8 pad;
	__u32 len; // bytes of sun_path given (the path ends at the first NUL)
	char comm[COMM_LEN];
	char path[UNIX_PATH];
};
_Static_assert(sizeof(struct unix_event) == 168 &&
		       __builtin_offsetof(struct unix_event, comm) == 44,
	       "struct unix_event is decoded by src/unix.rs");

struct path_buf {
	char b[UNIX_PATH];
};

// The plan's fs DFA, as the Landlock walk reads it (kapl-image Dfa).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct unix_meta);
	__uint(max_entries, 1);
} unix_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__uint(value_size, 256);
	__uint(max_entries, 1);
} unix_classes SEC(".maps");

// state * classes + class -> next state.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} unix_next SEC(".maps");

// state * steps + step -> the grant of `fs write` there, or NO_GRANT.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} unix_write SEC(".maps");

// state -> 1 if some step of the plan may create this name.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} unix_create SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct path_buf);
	__uint(max_entries, 1);
} unix_scratch SEC(".maps");

// /proc/... and /dev/fd/..., /dev/std{in,out,err}: magic links that
// resolve to whatever a descriptor refers to (an O_PATH descriptor of any
// socket file can be had without any Landlock right).
static __always_inline int magic(const char *p)
{
	if (p[0] != '/')
		return 0;
	if (p[1] == 'p' && p[2] == 'r' && p[3] == 'o' && p[4] == 'c' &&
	    (p[5] == '/' || p[5] == 0))
		return 1;
	if (p[1] == 'd' && p[2] == 'e' && p[3] == 'v' && p[4] == '/') {
		if (p[5] == 'f' && p[6] == 'd' && (p[7] == '/' || p[7] == 0))
			return 1;
		if (p[5] == 's' && p[6] == 't' && p[7] == 'd')
			return 1;
	}
	return 0;
}

static __always_inline int creatable(__u32 state)
{
	__u32 *c = bpf_map_lookup_elem(&unix_create, &state);
	return !c || *c; // a missing entry counts as creatable: fail closed
}

// Returns R_* and sets *grant.
static __always_inline int decide(const char *p, __u32 n, __u32 step,
				  __u32 *grant)
{
	__u32 zero = 0;
	struct unix_meta *m = bpf_map_lookup_elem(&unix_meta, &zero);
	__u8 *cls = bpf_map_lookup_elem(&unix_classes, &zero);
	if (!m || !cls)
		return R_TABLES;
	if (n == 0 || p[0] != '/')
		return R_RELATIVE;
	if (magic(p))
		return R_MAGIC;
	__u32 state = m->start;
	__u32 ncls = m->classes;
	// The current segment so far: 0 empty, 1 ".", 2 "..", 3 a name
	// (few distinct values keep the verifier's states few).
	__u32 kind = 0;
	for (int i = 0; i < UNIX_PATH; i++) {
		if (i >= n)
			break;
		__u8 c = p[i];
		if (c == 0)
			break; // the kernel ends the path at the first NUL
		if (c == '/') {
			if (i > 0) {
				// A segment ended: refuse "", "." and ".."; the
				// prefix so far is a directory the kernel will
				// resolve.
				if (kind != 3)
					return R_NOT_NORMAL;
				if (creatable(state))
					return R_CREATABLE;
			}
			kind = 0;
		} else if (c == '.' && kind < 2) {
			kind = kind + 1;
		} else {
			kind = 3;
		}
		__u32 key = state * ncls + cls[c];
		__u32 *next = bpf_map_lookup_elem(&unix_next, &key);
		if (!next)
			return R_TABLES;
		state = *next;
	}
	if (kind != 3)
		return R_NOT_NORMAL;
	if (creatable(state))
		return R_CREATABLE;
	__u32 key = state * m->steps + step;
	if (step >= m->steps)
		return R_NO_GRANT;
	__u32 *g = bpf_map_lookup_elem(&unix_write, &key);
	if (!g)
		return R_TABLES;
	*grant = *g;
	return *g == NO_GRANT ? R_NO_GRANT : R_OK_;
}

// One body for both hooks: op 1 (connect_unix) or 3 (sendmsg_unix).
static __always_inline int unix_hook(struct bpf_sock_addr *ctx, __u8 op)
{
	struct bpf_sock_addr_kern *k = (void *)ctx;
	struct sockaddr *ua = BPF_CORE_READ(k, uaddr);
	__u32 alen = BPF_CORE_READ(k, uaddrlen);
	__u32 zero = 0;
	struct path_buf *buf = bpf_map_lookup_elem(&unix_scratch, &zero);
	if (!buf)
		return 0;
	if (alen <= 2)
		return 1; // unnamed: the kernel refuses or autobinds
	__u32 n = alen - 2;
	if (n > UNIX_PATH)
		n = UNIX_PATH;
	__builtin_memset(buf->b, 0, UNIX_PATH);
	if (bpf_probe_read_kernel(buf->b, UNIX_PATH, (char *)ua + 2) < 0)
		return 0;
	// Bytes past n are not the caller's (the kernel's copy is only n
	// bytes long): the walk stops at n, reading them can only refuse
	// (magic()), and the supervisor cuts the reported path at n. Zeroing
	// them here would branch on n per byte, which multiplies the
	// verifier's states past its limit.
	__u64 cg;
	__u32 step;
	__u32 grant = NO_GRANT;
	int reason;
	if (buf->b[0] == 0) {
		// Abstract: Landlock's abstract-socket scope decides (ABI 6);
		// below it, refused here (a missing meta row refuses too).
		struct unix_meta *m = bpf_map_lookup_elem(&unix_meta, &zero);
		if (m && !m->refuse_abstract)
			return 1;
		step = current_step(&cg);
		reason = m ? R_ABSTRACT : R_TABLES;
	} else {
		step = current_step(&cg);
		reason = step == NO_STEP ? R_NO_GRANT
					 : decide(buf->b, n, step, &grant);
	}
	int ok = reason == R_OK_;

	struct unix_event *e = reserve_event(sizeof(*e));
	if (e) {
		fill_head(&e->head, e->comm, EV_UNIX, step, cg);
		e->grant = ok ? grant : NO_GRANT;
		e->op = op;
		e->verdict = ok;
		e->reason = reason;
		e->pad = 0;
		e->len = n;
		__builtin_memcpy(e->path, buf->b, UNIX_PATH);
		bpf_ringbuf_submit(e, 0);
	}
	return ok;
}

// Section names aya-obj parses; the loader sets the real attach types.
SEC("cgroup/connect4")
int kapl_unix_connect(struct bpf_sock_addr *ctx)
{
	return unix_hook(ctx, 1);
}

SEC("cgroup/connect4")
int kapl_unix_sendmsg(struct bpf_sock_addr *ctx)
{
	return unix_hook(ctx, 3);
}
