// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
//
// KAPL runtime BPF programs (stage: kernel enforcement; input: the session's
// maps filled by kapl-run from an image; output: verdicts + decision events).
//
// One object, loaded once per session and attached with bpf links to the
// session's own step cgroups only:
//   cgroup/connect4, connect6, sendmsg4, sendmsg6, bind4, bind6 — decide a
//     network operation from the `net_rules` LPM trie, keyed by
//     (step, op, IPv6 address) where IPv4 (and IPv4-mapped IPv6) is stored
//     as ::ffff:a.b.c.d, and the port ranges in the value;
//   cgroup/sock_create — refuses inet sockets no grant kind needs (raw,
//     ICMP, SCTP, MPTCP, ...);
//   tp_btf/sched_process_exec — reports execs of the session's processes.
// Every decision goes to the `events` ring buffer; a reservation that fails
// is counted in `lost` (never silently dropped).
//
// The layouts below are mirrored in src/bpf.rs (INVARIANT: keep in sync; the
// Rust side asserts the sizes).

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define MAX_RANGES 32
#define NO_GRANT 0xffffffffu
#define NO_STEP 0xffffffffu

#define OP_CONNECT 1
#define OP_BIND 2
#define OP_SEND 3
#define OP_SOCKET 4

#define EV_NET 1
#define EV_EXEC 2

#define PROTO_TCP_BIT 1
#define PROTO_UDP_BIT 2

#define AF_INET_ 2
#define AF_INET6_ 10
#define SOCK_STREAM_ 1
#define SOCK_DGRAM_ 2
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17

struct net_key {
	__u32 prefixlen; // 64 + address bits
	__u32 step;
	__u32 op; // OP_CONNECT (connect and send) or OP_BIND
	__u8 addr[16];
};

struct port_range {
	__u16 lo;
	__u16 hi;
	__u32 grant;
	__u32 protos; // PROTO_*_BIT
};

struct net_val {
	__u32 n;
	struct port_range r[MAX_RANGES];
};

struct net_event {
	__u32 kind; // EV_NET
	__u32 pid;
	__u32 tgid;
	__u32 step;
	__u64 ts;
	__u64 cgroup;
	__u32 grant;
	__u16 port;
	__u8 op;
	__u8 verdict; // 1 allow, 0 deny
	__u8 addr[16];
	__u32 family; // as the program saw it (before normalization)
	__u32 sotype;
	__u32 proto;
	char comm[16];
};

#define EXEC_PATH 256
struct exec_event {
	__u32 kind; // EV_EXEC
	__u32 pid;
	__u32 tgid;
	__u32 step;
	__u64 ts;
	__u64 cgroup;
	char comm[16];
	char path[EXEC_PATH];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct net_key);
	__type(value, struct net_val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024); // resized by the loader
} net_rules SEC(".maps");

// cgroup id of a command's cgroup -> step index.
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

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost, &zero);
	if (n)
		*n += 1;
}

static __always_inline __u32 current_step(__u64 *cg)
{
	*cg = bpf_get_current_cgroup_id();
	__u32 *s = bpf_map_lookup_elem(&cg_step, cg);
	return s ? *s : NO_STEP;
}

static __always_inline __u32 proto_bit(__u32 sotype, __u32 proto)
{
	if (proto == IPPROTO_TCP_ || (proto == 0 && sotype == SOCK_STREAM_))
		return PROTO_TCP_BIT;
	if (proto == IPPROTO_UDP_ || (proto == 0 && sotype == SOCK_DGRAM_))
		return PROTO_UDP_BIT;
	return 0;
}

static __always_inline int decide(struct bpf_sock_addr *ctx, __u32 rule_op,
				  __u8 ev_op, int v6)
{
	struct net_key key = {};
	__u64 cg = 0;
	__u32 step = current_step(&cg);
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u32 sotype = ctx->type;
	__u32 proto = ctx->protocol;
	__u32 family = ctx->user_family;

	if (v6) {
		__u32 w0 = ctx->user_ip6[0];
		__u32 w1 = ctx->user_ip6[1];
		__u32 w2 = ctx->user_ip6[2];
		__u32 w3 = ctx->user_ip6[3];
		__builtin_memcpy(&key.addr[0], &w0, 4);
		__builtin_memcpy(&key.addr[4], &w1, 4);
		__builtin_memcpy(&key.addr[8], &w2, 4);
		__builtin_memcpy(&key.addr[12], &w3, 4);
	} else {
		__u32 w = ctx->user_ip4;
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], &w, 4);
	}
	// An IPv4-mapped IPv6 address is the IPv4 address: it is already
	// stored as ::ffff:a.b.c.d, the same key IPv4 uses.
	key.prefixlen = 64 + 128;
	key.step = step;
	key.op = rule_op;

	__u32 grant = NO_GRANT;
	__u32 pbit = proto_bit(sotype, proto);
	if (step != NO_STEP && pbit) {
		struct net_val *val = bpf_map_lookup_elem(&net_rules, &key);
		if (val) {
			__u32 n = val->n;
			for (int i = 0; i < MAX_RANGES; i++) {
				if (i >= n)
					break;
				struct port_range *r = &val->r[i];
				if (port >= r->lo && port <= r->hi &&
				    (r->protos & pbit)) {
					grant = r->grant;
					break;
				}
			}
		}
	}

	struct net_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		__u64 pt = bpf_get_current_pid_tgid();
		e->kind = EV_NET;
		e->pid = (__u32)pt;
		e->tgid = pt >> 32;
		e->step = step;
		e->ts = bpf_ktime_get_boot_ns();
		e->cgroup = cg;
		e->grant = grant;
		e->port = port;
		e->op = ev_op;
		e->verdict = grant != NO_GRANT;
		__builtin_memcpy(e->addr, key.addr, 16);
		e->family = family;
		e->sotype = sotype;
		e->proto = proto;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		bpf_ringbuf_submit(e, 0);
	} else {
		count_lost();
	}
	return grant != NO_GRANT;
}

SEC("cgroup/connect4")
int kapl_connect4(struct bpf_sock_addr *ctx)
{
	return decide(ctx, OP_CONNECT, OP_CONNECT, 0);
}

SEC("cgroup/connect6")
int kapl_connect6(struct bpf_sock_addr *ctx)
{
	return decide(ctx, OP_CONNECT, OP_CONNECT, 1);
}

SEC("cgroup/sendmsg4")
int kapl_sendmsg4(struct bpf_sock_addr *ctx)
{
	return decide(ctx, OP_CONNECT, OP_SEND, 0);
}

SEC("cgroup/sendmsg6")
int kapl_sendmsg6(struct bpf_sock_addr *ctx)
{
	return decide(ctx, OP_CONNECT, OP_SEND, 1);
}

SEC("cgroup/bind4")
int kapl_bind4(struct bpf_sock_addr *ctx)
{
	return decide(ctx, OP_BIND, OP_BIND, 0);
}

SEC("cgroup/bind6")
int kapl_bind6(struct bpf_sock_addr *ctx)
{
	return decide(ctx, OP_BIND, OP_BIND, 1);
}

// Only plain TCP and UDP over IPv4/IPv6 are ever granted: refuse every other
// inet socket (raw, ICMP, SCTP, MPTCP...). The hook does not run for
// AF_PACKET, AF_NETLINK or AF_UNIX: the seccomp filter handles those.
SEC("cgroup/sock_create")
int kapl_sock_create(struct bpf_sock *sk)
{
	__u32 family = sk->family;
	__u32 sotype = sk->type;
	__u32 proto = sk->protocol;
	int ok = (family == AF_INET_ || family == AF_INET6_) &&
		 ((sotype == SOCK_STREAM_ && proto == IPPROTO_TCP_) ||
		  (sotype == SOCK_DGRAM_ && proto == IPPROTO_UDP_));
	if (ok)
		return 1;
	__u64 cg = 0;
	__u32 step = current_step(&cg);
	struct net_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		__u64 pt = bpf_get_current_pid_tgid();
		__builtin_memset(e, 0, sizeof(*e));
		e->kind = EV_NET;
		e->pid = (__u32)pt;
		e->tgid = pt >> 32;
		e->step = step;
		e->ts = bpf_ktime_get_boot_ns();
		e->cgroup = cg;
		e->grant = NO_GRANT;
		e->op = OP_SOCKET;
		e->verdict = 0;
		e->family = family;
		e->sotype = sotype;
		e->proto = proto;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		bpf_ringbuf_submit(e, 0);
	} else {
		count_lost();
	}
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(kapl_exec, struct task_struct *p, pid_t old_pid,
	     struct linux_binprm *bprm)
{
	__u64 cg = 0;
	__u32 step = current_step(&cg);
	if (step == NO_STEP)
		return 0; // not one of the session's processes
	struct exec_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	__u64 pt = bpf_get_current_pid_tgid();
	e->kind = EV_EXEC;
	e->pid = (__u32)pt;
	e->tgid = pt >> 32;
	e->step = step;
	e->ts = bpf_ktime_get_boot_ns();
	e->cgroup = cg;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	const char *fname = bprm->filename;
	if (bpf_probe_read_kernel_str(e->path, sizeof(e->path), fname) < 0)
		e->path[0] = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
