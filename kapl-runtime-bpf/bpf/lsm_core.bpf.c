// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
//
// KAPL: the BPF LSM layer's decision core (stage: kernel enforcement,
// book/src/bpf-lsm.md; input: one of the image's path DFAs in the lsm_*
// maps, exactly as kapl_image::Dfa lays it out, and a request {step,
// right, path}; output: the accept cell's grant, or NO_GRANT).
//
// decide() is what the lsm/file_open, lsm/bprm_check_security and
// lsm/path_* programs will call. Here it is exposed as a syscall
// program (BPF_PROG_TYPE_SYSCALL), run through BPF_PROG_TEST_RUN with the request as ctx_in, so it
// is verified and run on the real kernel even where LSM programs cannot
// attach. The meta row is checked against the maps' sizes (meta_fits) and
// every index read from a map against the meta row first: a malformed
// table answers NO_GRANT (refuse), never reads out of range.
//
// A cell here is the grant alone (kapl_image::Cell::grant): the beneath
// flags serve the runtime's Landlock rules, not decisions, and
// kapl_image::Evaluator decides from the grant alone too.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define NO_GRANT 0xffffffffu
#define LSM_PATH 4096
#define CHUNK 64
#define MAX_NEXT (1u << 20)
#define MAX_STATES (1u << 16)
#define MAX_CELLS (1u << 20)

struct lsm_meta {
	__u32 start;
	__u32 class_count;
	__u32 steps;
	__u32 rights; // cells per step
	__u32 states;
	__u32 rows;
};

// The request: src/lsm_core.rs writes it as ctx_in.
struct lsm_req {
	__u32 step;
	__u32 right;
	__u32 len;
	__u32 pad;
	__u8 path[LSM_PATH];
};

struct lsm_classes_v {
	__u8 c[256];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lsm_meta);
	__uint(max_entries, 1);
} lsm_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lsm_classes_v);
	__uint(max_entries, 1);
} lsm_classes SEC(".maps");

// states x class_count next states, row-major.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, MAX_NEXT);
} lsm_next SEC(".maps");

// state -> accept row.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, MAX_STATES);
} lsm_row SEC(".maps");

// rows x steps x rights grants (kapl_image::Cell::grant).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, MAX_CELLS);
} lsm_cells SEC(".maps");

// The request, copied out of the context (no variable-offset ctx reads).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct lsm_req);
	__uint(max_entries, 1);
} lsm_scratch SEC(".maps");

struct walk {
	struct lsm_req *req;
	struct lsm_classes_v *cls;
	struct lsm_meta *meta;
	__u32 state;
	__u32 bad;
};

static long walk_chunk(__u64 i, void *data)
{
	struct walk *w = data;
	if (i >= LSM_PATH / CHUNK)
		return 1;
	__u32 base = (__u32)i * CHUNK;
	for (__u32 j = 0; j < CHUNK; j++) {
		__u32 at = base + j;
		if (at >= w->req->len)
			return 1;
		at &= LSM_PATH - 1;
		// Keep the mask: the verifier needs the bound at the read.
		asm volatile("" : "+r"(at));
		__u8 b = w->req->path[at];
		__u32 c = w->cls->c[b];
		if (c >= w->meta->class_count || w->state >= w->meta->states) {
			w->bad = 1;
			return 1;
		}
		// INVARIANT (meta_fits): state < states, c < class_count, so
		// k < states * class_count <= MAX_NEXT.
		__u32 k = w->state * w->meta->class_count + c;
		__u32 *n = bpf_map_lookup_elem(&lsm_next, &k);
		if (!n) {
			w->bad = 1;
			return 1;
		}
		w->state = *n;
	}
	return 0;
}

// The meta row describes tables that fit the maps: every index decide()
// computes from it is below the map it reads (no u32 wrap-around can turn
// a lying bound into a read of some other, valid entry).
static __always_inline int meta_fits(const struct lsm_meta *m)
{
	if (m->class_count == 0 || m->class_count > 256)
		return 0;
	if (m->states == 0 || m->states > MAX_STATES || m->start >= m->states)
		return 0;
	if ((__u64)m->states * m->class_count > MAX_NEXT)
		return 0;
	if (m->steps > MAX_CELLS || m->rights > MAX_CELLS || m->rows > MAX_CELLS)
		return 0;
	if ((__u64)m->rows * m->steps * m->rights > MAX_CELLS)
		return 0;
	return 1;
}

// The grant of (step, right) for the path, or NO_GRANT.
static __always_inline __u32 decide(struct lsm_req *req)
{
	__u32 zero = 0;
	struct lsm_meta *meta = bpf_map_lookup_elem(&lsm_meta, &zero);
	struct lsm_classes_v *cls = bpf_map_lookup_elem(&lsm_classes, &zero);
	if (!meta || !cls || req->len > LSM_PATH)
		return NO_GRANT;
	// One copy of the bounds: what is checked here is what is used below.
	struct lsm_meta m = *meta;
	if (!meta_fits(&m))
		return NO_GRANT;
	if (req->step >= m.steps || req->right >= m.rights)
		return NO_GRANT;
	struct walk w = {
		.req = req,
		.cls = cls,
		.meta = &m,
		.state = m.start,
		.bad = 0,
	};
	bpf_loop((req->len + CHUNK - 1) / CHUNK, walk_chunk, &w, 0);
	if (w.bad || w.state >= m.states)
		return NO_GRANT;
	__u32 s = w.state;
	__u32 *row = bpf_map_lookup_elem(&lsm_row, &s);
	if (!row)
		return NO_GRANT;
	__u32 r = *row;
	if (r >= m.rows)
		return NO_GRANT;
	// INVARIANT (meta_fits): r < rows, step < steps, right < rights, so
	// k < rows * steps * rights <= MAX_CELLS: no wrap-around.
	__u32 k = (r * m.steps + req->step) * m.rights + req->right;
	__u32 *g = bpf_map_lookup_elem(&lsm_cells, &k);
	return g ? *g : NO_GRANT;
}

// BPF_PROG_TEST_RUN entry: ctx_in is a struct lsm_req; the return value
// is the grant (NO_GRANT: refused). A section name aya-obj parses (it does
// not know libbpf's "syscall"): src/lsm_core.rs loads the program as
// BPF_PROG_TYPE_SYSCALL, which is what SEC("syscall") means to libbpf.
SEC("socket")
int kapl_lsm_decide(struct lsm_req *ctx)
{
	__u32 zero = 0;
	struct lsm_req *req = bpf_map_lookup_elem(&lsm_scratch, &zero);
	if (!req)
		return (int)NO_GRANT;
	if (bpf_probe_read_kernel(req, sizeof(*req), ctx))
		return (int)NO_GRANT;
	return (int)decide(req);
}
