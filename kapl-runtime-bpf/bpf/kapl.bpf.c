// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
//
// KAPL runtime BPF programs (stage: kernel enforcement; input: the session's
// maps filled by kapl-run from an image; output: verdicts + decision events).
//
// One object, loaded once per session and attached with bpf links to the
// session's own step cgroups only:
//   cgroup/connect4, connect6, sendmsg4, sendmsg6, bind4, bind6 — decide a
//     network operation from the image's own map layout
//     (kapl_image::bpf, loaded byte for byte): the `net4` / `net6` LPM
//     tries keyed by (step, op, protocol, address) — an IPv4-mapped IPv6
//     address is looked up in `net4` as its IPv4 address — give a slice of
//     the `ports` array, sorted disjoint ranges searched by bisection;
//   the same connect/sendmsg programs steer DNS (port 53, UDP and TCP, to
//     any address) to the session's resolver when `dns` says it runs (the
//     plan has host-name rules), keeping the address the program meant in
//     the socket's `dns_orig` storage, and admit addresses the resolver
//     learned for a granted name from `learned`;
//   cgroup/recvmsg4, recvmsg6 — give a steered UDP socket's replies the
//     address it sent to (resolvers check where an answer comes from);
//   cgroup/sock_create — refuses inet sockets no grant kind needs (raw,
//     ICMP, SCTP, MPTCP, ...);
//   cgroup/setsockopt — refuses (EPERM) the socket options that change
//     where a packet goes or what address it carries (routing headers, IP
//     options, transparent proxying, marks for policy routing, TCP repair),
//     which the address hooks above never see;
//   cgroup_skb/egress — drops an outgoing packet that carries a routing
//     header (IPv6) or IP options (IPv4) however it was set
//     (ancillary data on sendmsg included, which no address hook sees);
//   tp_btf/sched_process_exec — reports execs of the session's processes.
// Every decision goes to the `events` ring buffer (an allowed network
// request only the first time per step, grant and destination: see
// `reported`); a reservation that fails is counted in `lost` (never
// silently dropped).
//
// INVARIANT: the net4/net6/ports layouts are kapl_image::bpf's (see its
// table); the event layouts are decoded in src/bpf.rs.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include "session.h"

char LICENSE[] SEC("license") = "GPL";

// Bisection rounds over one slice of `ports`: slices hold disjoint ranges
// of 16-bit ports, so at most 65536 entries.
#define MAX_ROUNDS 17

#define OP_CONNECT 1
#define OP_BIND 2
#define OP_SEND 3
#define OP_SOCKET 4

#define EV_NET 1
#define EV_EXEC 2
#define EV_OPT 4
#define EV_DNS 5

// Operations in the image's keys.
#define KEY_OP_CONNECT 0
#define KEY_OP_BIND 1

#define AF_INET_ 2
#define AF_INET6_ 10
#define SOCK_STREAM_ 1
#define SOCK_DGRAM_ 2
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17

struct net4_key {
	__u32 prefixlen; // 32 + prefix
	__u8 data[8]; // step (u16 BE), op, proto, IPv4 address (BE)
};

struct net6_key {
	__u32 prefixlen; // 32 + prefix
	__u8 data[20]; // step (u16 BE), op, proto, IPv6 address (BE)
};

struct net_slice {
	__u32 first;
	__u32 count;
};

struct port_range {
	__u16 lo;
	__u16 hi;
	__u32 grant;
};

struct net_event {
	struct event_head head; // kind EV_NET
	__u32 grant;
	__u16 port;
	__u8 op;
	__u8 verdict; // 1 allow, 0 deny
	__u8 addr[16];
	__u32 family; // as the program saw it (before normalization)
	__u32 sotype;
	__u32 proto;
	char comm[COMM_LEN];
};
_Static_assert(sizeof(struct net_event) == 88 &&
		       __builtin_offsetof(struct net_event, comm) == 68,
	       "struct net_event is decoded by src/bpf.rs");

// A refused socket option (source OPT_SETSOCKOPT) or a dropped packet that
// carried one (OPT_PACKET: level/optname name the header, addr is the
// packet's destination field, the first hop).
#define OPT_SETSOCKOPT 1
#define OPT_PACKET 2
struct opt_event {
	struct event_head head; // kind EV_OPT
	__s32 level;
	__s32 optname;
	__u32 family;
	__u32 sotype;
	__u32 proto;
	__u8 source;
	__u8 pad[3];
	__u8 addr[16];
	char comm[COMM_LEN];
};
_Static_assert(sizeof(struct opt_event) == 88 &&
		       __builtin_offsetof(struct opt_event, addr) == 56 &&
		       __builtin_offsetof(struct opt_event, comm) == 72,
	       "struct opt_event is decoded by src/bpf.rs");

#define EXEC_PATH 256
struct exec_event {
	struct event_head head; // kind EV_EXEC
	char comm[COMM_LEN];
	char path[EXEC_PATH];
};
_Static_assert(sizeof(struct exec_event) == 304 &&
		       __builtin_offsetof(struct exec_event, path) == 48,
	       "struct exec_event is decoded by src/bpf.rs");

// A DNS query (port 53) steered to the session's resolver: who sent it
// and where to. The resolver attributes a query to a process with it.
struct dns_event {
	struct event_head head; // kind EV_DNS
	__u8 addr[16]; // the address the program meant (IPv4-mapped for IPv4)
	__u16 port; // 53
	__u8 proto; // IPPROTO_TCP_ or IPPROTO_UDP_
	__u8 pad;
	char comm[COMM_LEN];
};
_Static_assert(sizeof(struct dns_event) == 72 &&
		       __builtin_offsetof(struct dns_event, comm) == 52,
	       "struct dns_event is decoded by src/bpf.rs");

// Where the session's resolver listens (index 0), written by kapl-run;
// `on` is 0 while the plan has no host-name rule (port 53 is then decided
// like any other port). Ports in network byte order. UDP queries go to one
// of DNS_SOCKETS sockets, the one `dns_slot` gives the sender's command
// cgroup (commands take them in turn), so a storm from one command fills
// its own queue, not the others'.
#define DNS_SOCKETS 8
struct dns_conf {
	__u32 on;
	__u32 ip4; // 127.0.0.1, network byte order
	__u32 ip6[4]; // ::1
	__u16 port4; // TCP
	__u16 port6; // TCP
	__u32 pad;
	__u16 udp4[DNS_SOCKETS];
	__u16 udp6[DNS_SOCKETS];
};
_Static_assert(sizeof(struct dns_conf) == 64, "struct dns_conf is written by src/bpf.rs");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct dns_conf);
	__uint(max_entries, 1);
} dns SEC(".maps");

// A command cgroup's resolver socket (0..DNS_SOCKETS-1), given in turn by
// kapl-run as commands start; a cgroup it does not name uses socket 0.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, __u32);
	__uint(max_entries, 4096);
} dns_slot SEC(".maps");

// A steered socket's intended destination.
struct dns_orig {
	__u32 ip4; // network byte order (family AF_INET_)
	__u32 ip6[4]; // (family AF_INET6_)
	__u16 port; // network byte order
	__u16 family;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct dns_orig);
} dns_orig SEC(".maps");

// Addresses the resolver learned from an answer for a name a grant of the
// step allows: (step, protocol, address) -> the ports and grants, written
// by kapl-run before the answer is released and removed when its time to
// live ends or the step changes.
#define LEARNED_RANGES 8
struct learned_key {
	__u16 step; // host order
	__u8 proto;
	__u8 pad;
	__u8 addr[16]; // IPv4 as IPv4-mapped IPv6
};

struct learned_val {
	__u32 count;
	struct port_range ranges[LEARNED_RANGES]; // sorted, disjoint
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct learned_key);
	__type(value, struct learned_val);
	__uint(max_entries, 4096);
} learned SEC(".maps");

// max_entries of the three maps are set by the loader from the image.
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct net4_key);
	__type(value, struct net_slice);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1);
} net4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct net6_key);
	__type(value, struct net_slice);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1);
} net6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct port_range);
	__uint(max_entries, 1);
} ports SEC(".maps");

// An allow already reported: (step, grant, address as the event carries
// it, port, event operation, key protocol). The supervisor reports an
// allow once per (grant, operation, object), the object being the address
// (IPv4-mapped shown as IPv4), port and protocol (kapl_runtime::report):
// this key separates at least what that one does, so an allow the
// supervisor would report is never held back here. The map lives as long
// as the loaded object: a plan load loads a new one (empty), as the
// supervisor's dedup starts anew; a step switch changes `step`. An entry
// evicted (LRU) only makes the next such allow reported again, which the
// supervisor drops.
struct allow_key {
	__u32 step;
	__u32 grant;
	__u8 addr[16];
	__u16 port;
	__u8 op;
	__u8 proto;
};
_Static_assert(sizeof(struct allow_key) == 28, "struct allow_key has no padding");

// max_entries is set by the loader (REPORTED_ALLOWS in src/bpf.rs).
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct allow_key);
	__type(value, __u8);
	__uint(max_entries, 1);
} reported SEC(".maps");

// The protocol as the image's keys name it (0: neither TCP nor UDP).
static __always_inline __u32 key_proto(__u32 sotype, __u32 proto)
{
	if (proto == IPPROTO_TCP_ || (proto == 0 && sotype == SOCK_STREAM_))
		return IPPROTO_TCP_;
	if (proto == IPPROTO_UDP_ || (proto == 0 && sotype == SOCK_DGRAM_))
		return IPPROTO_UDP_;
	return 0;
}

// The first four bytes of a `net4`/`net6` key's data (kapl_image::bpf's
// key_head): step (u16 BE), op, protocol.
static __always_inline void key_head(__u8 *d, __u32 step, __u32 key_op,
				     __u32 kproto)
{
	d[0] = step >> 8;
	d[1] = step & 0xff;
	d[2] = key_op;
	d[3] = kproto;
}

// The grant of the range in `s` that holds `port`, or NO_GRANT.
static __always_inline __u32 search_ports(struct net_slice *s, __u16 port)
{
	__u32 lo = 0, hi = s->count, first = s->first;
	for (int i = 0; i < MAX_ROUNDS; i++) {
		if (lo >= hi)
			break;
		__u32 mid = lo + (hi - lo) / 2;
		__u32 idx = first + mid;
		struct port_range *r = bpf_map_lookup_elem(&ports, &idx);
		if (!r)
			break;
		if (port < r->lo)
			hi = mid;
		else if (port > r->hi)
			lo = mid + 1;
		else
			return r->grant;
	}
	return NO_GRANT;
}

// The grant of a learned address's range that holds `port`, or NO_GRANT.
static __always_inline __u32 search_learned(__u32 step, __u32 kproto,
					    const __u8 *addr, __u16 port)
{
	struct learned_key k = {};
	k.step = step;
	k.proto = kproto;
	__builtin_memcpy(k.addr, addr, 16);
	struct learned_val *v = bpf_map_lookup_elem(&learned, &k);
	if (!v)
		return NO_GRANT;
	for (int i = 0; i < LEARNED_RANGES; i++) {
		if (i >= v->count)
			break;
		if (port >= v->ranges[i].lo && port <= v->ranges[i].hi)
			return v->ranges[i].grant;
	}
	return NO_GRANT;
}

// Steers a DNS query (port 53) to the session's resolver: rewrites the
// destination, keeps the one the program meant in the socket's storage
// and reports who sent it. Returns 1 when steered, 0 when DNS is not
// steered (no resolver, or no room to remember the destination: the
// request is then decided like any other).
static __always_inline int steer_dns(struct bpf_sock_addr *ctx, int v6,
				     int mapped, const __u8 *addr,
				     __u32 kproto, __u32 step, __u64 cg)
{
	__u32 zero = 0;
	struct dns_conf *c = bpf_map_lookup_elem(&dns, &zero);
	if (!c || !c->on || !ctx->sk)
		return 0;
	struct dns_orig *o = bpf_sk_storage_get(&dns_orig, ctx->sk, 0,
						BPF_SK_STORAGE_GET_F_CREATE);
	if (!o)
		return 0;
	int udp = kproto == IPPROTO_UDP_;
	__u32 *sp = bpf_map_lookup_elem(&dns_slot, &cg);
	__u32 slot = sp ? *sp & (DNS_SOCKETS - 1) : 0;
	o->port = (__u16)ctx->user_port;
	if (v6) {
		o->family = AF_INET6_;
		o->ip6[0] = ctx->user_ip6[0];
		o->ip6[1] = ctx->user_ip6[1];
		o->ip6[2] = ctx->user_ip6[2];
		o->ip6[3] = ctx->user_ip6[3];
		// A dual-stack socket's IPv4 destination: the resolver's IPv4
		// address, mapped; else its IPv6 one.
		if (mapped) {
			ctx->user_ip6[3] = c->ip4;
			ctx->user_port = udp ? c->udp4[slot] : c->port4;
		} else {
			ctx->user_ip6[0] = c->ip6[0];
			ctx->user_ip6[1] = c->ip6[1];
			ctx->user_ip6[2] = c->ip6[2];
			ctx->user_ip6[3] = c->ip6[3];
			ctx->user_port = udp ? c->udp6[slot] : c->port6;
		}
	} else {
		o->family = AF_INET_;
		o->ip4 = ctx->user_ip4;
		ctx->user_ip4 = c->ip4;
		ctx->user_port = udp ? c->udp4[slot] : c->port4;
	}
	struct dns_event *e = reserve_event(sizeof(*e));
	if (e) {
		fill_head(&e->head, e->comm, EV_DNS, step, cg);
		__builtin_memcpy(e->addr, addr, 16);
		e->port = 53;
		e->proto = kproto;
		e->pad = 0;
		bpf_ringbuf_submit(e, 0);
	}
	return 1;
}

// Reports a network decision: every denial; an allow only when
// `reported` does not hold its key yet (a repeat of an allow reported
// before would be dropped by the supervisor's dedup anyway, after a
// wake-up and a decode). The key is marked only once the event is in the
// ring buffer: a failed reservation (counted in `lost`) leaves it unmarked,
// so the next such allow is tried again.
static __always_inline void report_net(__u32 step, __u64 cg, __u32 grant,
				       __u16 port, __u8 ev_op, __u32 kproto,
				       const __u8 *addr, __u32 family,
				       __u32 sotype, __u32 proto)
{
	struct allow_key k = {};
	if (grant != NO_GRANT) {
		k.step = step;
		k.grant = grant;
		__builtin_memcpy(k.addr, addr, 16);
		k.port = port;
		k.op = ev_op;
		k.proto = kproto;
		if (bpf_map_lookup_elem(&reported, &k))
			return;
	}
	struct net_event *e = reserve_event(sizeof(*e));
	if (!e)
		return;
	fill_head(&e->head, e->comm, EV_NET, step, cg);
	e->grant = grant;
	e->port = port;
	e->op = ev_op;
	e->verdict = grant != NO_GRANT;
	__builtin_memcpy(e->addr, addr, 16);
	e->family = family;
	e->sotype = sotype;
	e->proto = proto;
	if (grant != NO_GRANT) {
		__u8 one = 1;
		bpf_map_update_elem(&reported, &k, &one, BPF_ANY);
	}
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int decide(struct bpf_sock_addr *ctx, __u32 key_op,
				  __u8 ev_op, int v6)
{
	__u8 addr[16] = {};
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
		__builtin_memcpy(&addr[0], &w0, 4);
		__builtin_memcpy(&addr[4], &w1, 4);
		__builtin_memcpy(&addr[8], &w2, 4);
		__builtin_memcpy(&addr[12], &w3, 4);
	} else {
		__u32 w = ctx->user_ip4;
		addr[10] = 0xff;
		addr[11] = 0xff;
		__builtin_memcpy(&addr[12], &w, 4);
	}
	// An IPv4-mapped IPv6 address is the IPv4 address.
	int mapped = 1;
	for (int i = 0; i < 10; i++)
		if (addr[i])
			mapped = 0;
	if (addr[10] != 0xff || addr[11] != 0xff)
		mapped = 0;

	__u32 grant = NO_GRANT;
	__u32 kproto = key_proto(sotype, proto);
	if (key_op == KEY_OP_CONNECT && port == 53 && step <= 0xffff &&
	    kproto && steer_dns(ctx, v6, mapped, addr, kproto, step, cg))
		return 1;
	if (step <= 0xffff && kproto) {
		struct net_slice *s;
		if (mapped) {
			struct net4_key k = {};
			k.prefixlen = 32 + 32;
			key_head(k.data, step, key_op, kproto);
			__builtin_memcpy(&k.data[4], &addr[12], 4);
			s = bpf_map_lookup_elem(&net4, &k);
		} else {
			struct net6_key k = {};
			k.prefixlen = 32 + 128;
			key_head(k.data, step, key_op, kproto);
			__builtin_memcpy(&k.data[4], addr, 16);
			s = bpf_map_lookup_elem(&net6, &k);
		}
		if (s)
			grant = search_ports(s, port);
		if (grant == NO_GRANT && key_op == KEY_OP_CONNECT)
			grant = search_learned(step, kproto, addr, port);
	}

	report_net(step, cg, grant, port, ev_op, kproto, addr, family, sotype,
		   proto);
	return grant != NO_GRANT;
}

// One program per hook, all `decide`: kapl_<hook> in section cgroup/<hook>
// (the names src/bpf.rs loads and attaches). Sending is looked up as
// connecting: the image keys only connect and bind.
#define NET_HOOK(hook, key_op, ev_op, v6)                  \
	SEC("cgroup/" #hook)                               \
	int kapl_##hook(struct bpf_sock_addr *ctx)         \
	{                                                  \
		return decide(ctx, key_op, ev_op, v6);     \
	}

NET_HOOK(connect4, KEY_OP_CONNECT, OP_CONNECT, 0)
NET_HOOK(connect6, KEY_OP_CONNECT, OP_CONNECT, 1)
NET_HOOK(sendmsg4, KEY_OP_CONNECT, OP_SEND, 0)
NET_HOOK(sendmsg6, KEY_OP_CONNECT, OP_SEND, 1)
NET_HOOK(bind4, KEY_OP_BIND, OP_BIND, 0)
NET_HOOK(bind6, KEY_OP_BIND, OP_BIND, 1)

// Whether `port` is one of the resolver's UDP ports in `ports`.
static __always_inline int dns_port(const __u16 *ports, __u16 port)
{
	for (int i = 0; i < DNS_SOCKETS; i++)
		if (ports[i] == port)
			return 1;
	return 0;
}

// A steered UDP socket's replies come from the resolver; the program is
// shown the address it sent its query to. Every other datagram is left as
// it is (recvmsg programs cannot refuse).
SEC("cgroup/recvmsg4")
int kapl_recvmsg4(struct bpf_sock_addr *ctx)
{
	if (!ctx->sk)
		return 1;
	struct dns_orig *o = bpf_sk_storage_get(&dns_orig, ctx->sk, 0, 0);
	if (!o || o->family != AF_INET_)
		return 1;
	__u32 zero = 0;
	struct dns_conf *c = bpf_map_lookup_elem(&dns, &zero);
	if (!c || ctx->user_ip4 != c->ip4 ||
	    !dns_port(c->udp4, (__u16)ctx->user_port))
		return 1;
	ctx->user_ip4 = o->ip4;
	ctx->user_port = o->port;
	return 1;
}

SEC("cgroup/recvmsg6")
int kapl_recvmsg6(struct bpf_sock_addr *ctx)
{
	if (!ctx->sk)
		return 1;
	struct dns_orig *o = bpf_sk_storage_get(&dns_orig, ctx->sk, 0, 0);
	if (!o || o->family != AF_INET6_)
		return 1;
	__u32 zero = 0;
	struct dns_conf *c = bpf_map_lookup_elem(&dns, &zero);
	if (!c)
		return 1;
	__u16 p = (__u16)ctx->user_port;
	int from6 = ctx->user_ip6[0] == c->ip6[0] &&
		    ctx->user_ip6[1] == c->ip6[1] &&
		    ctx->user_ip6[2] == c->ip6[2] &&
		    ctx->user_ip6[3] == c->ip6[3] && dns_port(c->udp6, p);
	int from4 = !ctx->user_ip6[0] && !ctx->user_ip6[1] &&
		    ctx->user_ip6[2] == bpf_htonl(0xffff) &&
		    ctx->user_ip6[3] == c->ip4 && dns_port(c->udp4, p);
	if (!from6 && !from4)
		return 1;
	ctx->user_ip6[0] = o->ip6[0];
	ctx->user_ip6[1] = o->ip6[1];
	ctx->user_ip6[2] = o->ip6[2];
	ctx->user_ip6[3] = o->ip6[3];
	ctx->user_port = o->port;
	return 1;
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
	struct net_event *e = reserve_event(sizeof(*e));
	if (e) {
		__builtin_memset(e, 0, sizeof(*e));
		fill_head(&e->head, e->comm, EV_NET, step, cg);
		e->grant = NO_GRANT;
		e->op = OP_SOCKET;
		e->verdict = 0;
		e->family = family;
		e->sotype = sotype;
		e->proto = proto;
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}

// Option levels and names (uapi values; vmlinux.h carries no #defines).
#define SOL_IP_ 0
#define SOL_SOCKET_ 1
#define SOL_TCP_ 6
#define SOL_IPV6_ 41
#define IP_OPTIONS_ 4
#define IP_TRANSPARENT_ 19
#define SO_MARK_ 36
#define TCP_REPAIR_ 19
#define IPV6_2292PKTOPTIONS_ 6
#define IPV6_HOPOPTS_ 54
#define IPV6_RTHDRDSTOPTS_ 55
#define IPV6_RTHDR_ 57
#define IPV6_DSTOPTS_ 59
#define IPV6_TRANSPARENT_ 75

// Whether option (level, optname) can change where a packet goes or the
// address it carries. Some need a capability no command has (the kernel
// would refuse them too); refusing them here records the attempt.
static __always_inline int rerouting(int level, int optname)
{
	switch (level) {
	case SOL_IP_: // also reaches the IPv4 half of an IPv6 socket
		return optname == IP_OPTIONS_ || optname == IP_TRANSPARENT_;
	case SOL_IPV6_:
		return optname == IPV6_RTHDR_ || optname == IPV6_2292PKTOPTIONS_ ||
		       optname == IPV6_HOPOPTS_ || optname == IPV6_DSTOPTS_ ||
		       optname == IPV6_RTHDRDSTOPTS_ ||
		       optname == IPV6_TRANSPARENT_;
	case SOL_SOCKET_:
		return optname == SO_MARK_;
	case SOL_TCP_:
		return optname == TCP_REPAIR_;
	}
	return 0;
}

// Reports a refused option or a dropped packet.
static __always_inline void report_opt(__u8 source, int level, int optname,
				       __u32 family, __u32 sotype, __u32 proto,
				       __u64 cg, const __u8 *addr)
{
	__u32 *s = bpf_map_lookup_elem(&cg_step, &cg);
	__u32 step = s ? *s : NO_STEP;
	struct opt_event *e = reserve_event(sizeof(*e));
	if (!e)
		return;
	__builtin_memset(e, 0, sizeof(*e));
	fill_head(&e->head, e->comm, EV_OPT, step, cg);
	e->level = level;
	e->optname = optname;
	e->family = family;
	e->sotype = sotype;
	e->proto = proto;
	e->source = source;
	if (addr)
		__builtin_memcpy(e->addr, addr, 16);
	bpf_ringbuf_submit(e, 0);
}

// Refuses (EPERM) the options `rerouting` names; every other option goes
// to the kernel untouched (optlen is left as it is, so option values
// larger than a page pass too).
SEC("cgroup/setsockopt")
int kapl_setsockopt(struct bpf_sockopt *ctx)
{
	int level = ctx->level;
	int optname = ctx->optname;
	if (!rerouting(level, optname))
		return 1;
	struct bpf_sock *sk = ctx->sk;
	__u32 family = 0, sotype = 0, proto = 0;
	if (sk) {
		family = sk->family;
		sotype = sk->type;
		proto = sk->protocol;
	}
	report_opt(OPT_SETSOCKOPT, level, optname, family, sotype, proto,
		   bpf_get_current_cgroup_id(), 0);
	return 0;
}

#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60
// Extension headers walked before the routing header is looked for no
// further (the kernel itself puts hop-by-hop, destination options and the
// routing header first; anything else ends the chain).
#define MAX_EXT 8

// Whether the IPv6 packet in `skb` carries a routing header.
static __always_inline int v6_routed(struct __sk_buff *skb)
{
	__u8 nh;
	if (bpf_skb_load_bytes(skb, 6, &nh, 1) < 0)
		return 0;
	__u32 off = 40;
	for (int i = 0; i < MAX_EXT; i++) {
		if (nh == NEXTHDR_ROUTING)
			return 1;
		if (nh != NEXTHDR_HOP && nh != NEXTHDR_DEST &&
		    nh != NEXTHDR_FRAGMENT && nh != NEXTHDR_AUTH)
			return 0;
		__u8 h[2];
		if (bpf_skb_load_bytes(skb, off, h, 2) < 0)
			return 0;
		__u32 len;
		if (nh == NEXTHDR_FRAGMENT)
			len = 8;
		else if (nh == NEXTHDR_AUTH)
			len = ((__u32)h[1] + 2) * 4;
		else
			len = ((__u32)h[1] + 1) * 8;
		nh = h[0];
		off += len;
	}
	// A chain longer than MAX_EXT headers: refused rather than unread.
	return 1;
}

// Whether the IPv4 packet in `skb` carries options. A session socket
// cannot set IP_OPTIONS (kapl_setsockopt refuses it), so options reach a
// packet only as ancillary data (IP_RETOPTS on sendmsg), which no hook
// sees; a source route among them would send the packet elsewhere. They
// are all refused: walking them option by option in the verifier's budget
// buys nothing a command needs.
static __always_inline int v4_routed(struct __sk_buff *skb)
{
	__u8 vihl;
	if (bpf_skb_load_bytes(skb, 0, &vihl, 1) < 0)
		return 0;
	return (vihl & 0xf) > 5;
}

// Drops (EPERM to the sender) a packet of a session socket that carries a
// routing header or IP options, and reports it; passes every other.
SEC("cgroup_skb/egress")
int kapl_egress(struct __sk_buff *skb)
{
	__u8 addr[16] = {};
	int level, optname;
	__u32 family;
	if (skb->protocol == bpf_htons(ETH_P_IPV6_)) {
		if (!v6_routed(skb))
			return 1;
		bpf_skb_load_bytes(skb, 24, addr, 16);
		level = SOL_IPV6_;
		optname = IPV6_RTHDR_;
		family = AF_INET6_;
	} else if (skb->protocol == bpf_htons(ETH_P_IP_)) {
		if (!v4_routed(skb))
			return 1;
		addr[10] = 0xff;
		addr[11] = 0xff;
		bpf_skb_load_bytes(skb, 16, &addr[12], 4);
		level = SOL_IP_;
		optname = IP_OPTIONS_;
		family = AF_INET_;
	} else {
		return 1;
	}
	__u32 proto = 0;
	bpf_skb_load_bytes(skb, family == AF_INET6_ ? 6 : 9, &proto, 1);
	report_opt(OPT_PACKET, level, optname, family, 0, proto,
		   bpf_skb_cgroup_id(skb), addr);
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
	struct exec_event *e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	fill_head(&e->head, e->comm, EV_EXEC, step, cg);
	const char *fname = bprm->filename;
	if (bpf_probe_read_kernel_str(e->path, sizeof(e->path), fname) < 0)
		e->path[0] = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
