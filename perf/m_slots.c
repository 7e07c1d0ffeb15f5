/* SPDX-License-Identifier: MIT */
/*
 * Peer rings that carry pointers or words, not bytes: Concurrency Kit
 * ck_ring (SPSC), DPDK rte_ring (single producer/consumer, on our own shared
 * memory, no EAL), and liburcu's wfcqueue (two threads of one process).
 * They carry the same payloads through a slot pool: `depth` slots of `size`
 * bytes; the producer takes a free slot index from a return queue, writes
 * the payload into the slot and enqueues the index; the consumer dequeues
 * it, copies the payload out (copying) or reads its stamps in place
 * (zero-copy), and enqueues the index on the return queue.
 * Ping-pong carries the 8-byte sequence number itself, each way.
 * Every side polls (these queues have no sleeping wait).
 */
#include "perf.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if HAVE_CK
#include <ck_ring.h>
#endif
#if HAVE_DPDK
#include <rte_ring.h>
#endif
#if HAVE_URCU
#define _LGPL_SOURCE
#include <urcu/wfcqueue.h>
#endif

/* A queue of non-zero 32-bit values. */
struct qops {
	size_t (*memsize)(uint32_t count);
	int (*init)(void *q, uint32_t count);
	int (*enq)(void *q, uint32_t v);                  /* 0, or -1 if full */
	int (*deq)(void *q, uint32_t *v);                 /* 0, or -1 if empty */
	unsigned (*enq_burst)(void *q, const uint32_t *v, unsigned n); /* NULL: one by one */
	unsigned (*deq_burst)(void *q, uint32_t *v, unsigned n);
};

struct pool {
	const struct qops *o;
	uint32_t depth;      /* slots; each queue holds at least depth values */
	size_t qbytes;
	void *q[2];          /* full (0) and free (1); ping-pong: each way */
	char *slots;
	size_t len;
};

static uint32_t pool_depth(const struct params *p)
{
	/* The bytes of libshmring's ring in the same case, in slots. */
	uint64_t d = p->ring_bytes / p->size;
	uint32_t r = 64;
	while (r < d && r < 4096)
		r <<= 1;
	return r;
}

static void slots_depth(const struct params *p, char *buf, size_t len)
{
	if (p->kind == K_TPUT)
		snprintf(buf, len, "%u slots (pool)", pool_depth(p));
	else
		snprintf(buf, len, "64 entries");
}

/* Unused when none of ck, DPDK, liburcu is installed. */
static __attribute__((unused)) int pool_setup(struct bench *b, void **priv, const struct qops *o)
{
	struct pool *pl = calloc(1, sizeof(*pl));
	if (!pl)
		return fail(b, "out of memory");
	pl->o = o;
	pl->depth = b->p.kind == K_TPUT ? pool_depth(&b->p) : 64;
	/* Queues of 2 * depth entries: room for every slot, whatever the
	 * queue's reserved entry. */
	pl->qbytes = (o->memsize(2 * pl->depth) + 127) & ~(size_t)127;
	size_t slots = b->p.kind == K_TPUT ? (size_t)pl->depth * b->p.size : 0;
	pl->len = 2 * pl->qbytes + slots + 128;
	char *m = shm_zalloc(pl->len);
	if (!m) {
		free(pl);
		return fail(b, "out of shared memory");
	}
	pl->q[0] = m;
	pl->q[1] = m + pl->qbytes;
	pl->slots = m + 2 * pl->qbytes;
	for (int i = 0; i < 2; i++)
		if (o->init(pl->q[i], 2 * pl->depth))
			return fail(b, "queue init failed");
	if (b->p.kind == K_TPUT)
		for (uint32_t i = 1; i <= pl->depth; i++)
			if (o->enq(pl->q[1], i))
				return fail(b, "free queue too small");
	*priv = pl;
	return 0;
}

static void pool_teardown(struct bench *b, void *priv)
{
	struct pool *pl = priv;
	shm_free(pl->q[0], pl->len);
	free(pl);
}

static void put(const struct qops *o, void *q, const uint32_t *v, unsigned n)
{
	if (o->enq_burst) {
		for (unsigned done = 0; done < n;) {
			unsigned k = o->enq_burst(q, v + done, n - done);
			if (!k)
				relax();
			done += k;
		}
		return;
	}
	for (unsigned i = 0; i < n; i++)
		while (o->enq(q, v[i]))
			relax();
}

/* At least one, at most n; polls as poll_relax(p) says. */
static unsigned take(const struct params *p, const struct qops *o, void *q, uint32_t *v,
		     unsigned n)
{
	for (;;) {
		unsigned k = 0;
		if (o->deq_burst && n > 1)
			k = o->deq_burst(q, v, n);
		else
			k = o->deq(q, v) ? 0 : 1;
		if (k)
			return k;
		poll_relax(p);
	}
}

static int pool_child(struct bench *b, void *priv, int role)
{
	struct pool *pl = priv;
	const struct qops *o = pl->o;
	const struct params *p = &b->p;
	uint32_t v[64];

	if (p->kind == K_RTT) {
		uint64_t skip = warm_skip(p->n), t = ticks();
		if (role == 0)
			tput_start(b);
		for (uint32_t i = 1; i <= p->n; i++) {
			/* Values 1..32 (wfcqueue keeps one node per value). */
			uint32_t x, y = (i & 31) + 1;
			if (role == 0) {
				put(o, pl->q[0], &y, 1);
				take(p, o, pl->q[1], &x, 1);
				if (x != y)
					return fail(b, "pong %u for ping %u", x, y);
				uint64_t t2 = ticks();
				if (i > skip)
					sample_add(t2 - t);
				t = t2;
			} else {
				take(p, o, pl->q[0], &x, 1);
				put(o, pl->q[1], &x, 1);
			}
		}
		if (role == 0)
			tput_done(b, 0, p->n);
		return 0;
	}
	if (p->kind != K_TPUT)
		return fail(b, "unsupported case");
	unsigned batch = p->batch < 64 ? p->batch : 64;
	size_t size = p->size;
	struct loopmark lm;
	if (role == 0) {
		char *src = source_buf(size);
		if (!src || wait_attached(b, 1))
			return -1;
		loop_begin(b, &lm);
		tput_start(b);
		for (uint64_t seq = 0; seq < p->n;) {
			unsigned k = p->n - seq < batch ? (unsigned)(p->n - seq) : batch;
			/* k free slots, filled, then published together. */
			for (unsigned got = 0; got < k;)
				got += take(p, o, pl->q[1], v + got, k - got);
			for (unsigned j = 0; j < k; j++) {
				char *d = pl->slots + (size_t)(v[j] - 1) * size;
				memcpy(d, src, size);
				stamp(d, size, seq++);
			}
			put(o, pl->q[0], v, k);
		}
		loop_end(b, &lm, 0);
		return 0;
	}
	char *buf = malloc(size);
	if (!buf)
		return fail(b, "out of memory");
	/* Counting starts before the producer may: enabling the counter
	 * can take milliseconds, which must not fall in the timed loop. */
	loop_begin(b, &lm);
	struct tputmark tm;
	tput_warm_init(b, &tm);
	attached(b);
	for (uint64_t seq = 0; seq < p->n;) {
		unsigned k = take(p, o, pl->q[0], v, batch);
		for (unsigned j = 0; j < k; j++) {
			if (v[j] < 1 || v[j] > pl->depth)
				return fail(b, "bad slot index %u", v[j]);
			const char *s = pl->slots + (size_t)(v[j] - 1) * size;
			if (!p->zc) {
				memcpy(buf, s, size);
				s = buf;
			}
			if (unstamp(s, size) != seq++)
				return fail(b, "consumer: message out of order");
		}
		put(o, pl->q[1], v, k);
		tput_step(b, &tm, seq);
	}
	loop_end(b, &lm, role);
	tput_done(b, role, p->n);
	free(buf);
	return 0;
}

/* ---- ck_ring (SPSC) ----------------------------------------------------- */

#if HAVE_CK
struct ckq {
	struct ck_ring r;
	ck_ring_buffer_t buf[];
};
static size_t ck_memsize(uint32_t n)
{
	return sizeof(struct ckq) + n * sizeof(ck_ring_buffer_t);
}
static int ck_init(void *q, uint32_t n)
{
	ck_ring_init(&((struct ckq *)q)->r, n);
	return 0;
}
static int ck_enq(void *q, uint32_t v)
{
	struct ckq *c = q;
	return ck_ring_enqueue_spsc(&c->r, c->buf, (void *)(uintptr_t)v) ? 0 : -1;
}
static int ck_deq(void *q, uint32_t *v)
{
	struct ckq *c = q;
	void *x;
	if (!ck_ring_dequeue_spsc(&c->r, c->buf, &x))
		return -1;
	*v = (uint32_t)(uintptr_t)x;
	return 0;
}
static const struct qops ck_ops = {ck_memsize, ck_init, ck_enq, ck_deq, NULL, NULL};
static int ck_setup(struct bench *b, void **priv)
{
	return pool_setup(b, priv, &ck_ops);
}

/*
 * Fan-out peers made of ck_ring (the fan-out scenario only):
 *   group (work sharing): one SPMC ring, ck_ring_enqueue_spmc() by the
 *     producer, ck_ring_dequeue_spmc() by every consumer, each message
 *     to one of them; each consumer returns its slots on its own SPSC ring,
 *     which the producer visits in turn.  (Not one MPSC return ring: ck's
 *     multi-producer enqueue waits for an earlier enqueuer to publish, and
 *     with the consumers sharing a cpu that one is often preempted.)
 *   broadcast: ck has no broadcast ring, so N SPSC rings, one per consumer,
 *     each with its own slot pool: the producer writes each message into
 *     every consumer's pool and enqueues it on every ring.
 * The producer ends each consumer's stream with a sentinel index.  A side
 * that finds its ring empty (or full) spins 64 times, then yields the cpu:
 * the consumers share one cpu and have no sleeping wait.
 */
struct fan {
	unsigned ndata, nfree; /* data rings (with a slot pool each), return rings */
	uint32_t depth;
	size_t len;
	char *mem;
	struct ckq *data[16], *free[16];
	char *slots[16];
};

static void backoff(unsigned *spins)
{
	if (++*spins < 64) {
		relax();
	} else {
		*spins = 0;
		sched_yield();
	}
}

static void fan_depth(const struct params *p, char *buf, size_t len)
{
	if (p->group)
		snprintf(buf, len, "%u slots, SPMC", pool_depth(p));
	else
		snprintf(buf, len, "%u slots x%u SPSC", pool_depth(p), p->consumers);
}

static int fan_setup(struct bench *b, void **priv)
{
	const struct params *p = &b->p;
	if (p->kind != K_TPUT || p->consumers < 1 || p->consumers > 16)
		return fail(b, "unsupported case");
	struct fan *f = calloc(1, sizeof(*f));
	if (!f)
		return fail(b, "out of memory");
	f->ndata = p->group ? 1 : p->consumers;
	f->nfree = p->consumers;
	f->depth = pool_depth(p);
	size_t qb = (ck_memsize(2 * f->depth) + 127) & ~(size_t)127;
	size_t sb = ((size_t)f->depth * p->size + 127) & ~(size_t)127;
	f->len = f->ndata * (qb + sb) + f->nfree * qb;
	f->mem = shm_zalloc(f->len);
	if (!f->mem) {
		free(f);
		return fail(b, "out of shared memory");
	}
	char *m = f->mem;
	for (unsigned r = 0; r < f->ndata; r++, m += qb + sb) {
		f->data[r] = (struct ckq *)m;
		f->slots[r] = m + qb;
		ck_ring_init(&f->data[r]->r, 2 * f->depth);
	}
	for (unsigned r = 0; r < f->nfree; r++, m += qb) {
		f->free[r] = (struct ckq *)m;
		ck_ring_init(&f->free[r]->r, 2 * f->depth);
	}
	/* Every pool's slots start on its return ring (group: the first). */
	for (unsigned r = 0; r < f->ndata; r++)
		for (uintptr_t i = 1; i <= f->depth; i++)
			if (!ck_ring_enqueue_spsc(&f->free[r]->r, f->free[r]->buf, (void *)i))
				return fail(b, "free ring too small");
	*priv = f;
	return 0;
}

static void fan_teardown(struct bench *b, void *priv)
{
	struct fan *f = priv;
	(void)b;
	shm_free(f->mem, f->len);
	free(f);
}

static int fan_producer(struct bench *b, struct fan *f)
{
	const struct params *p = &b->p;
	unsigned batch = p->batch < 64 ? p->batch : 64, spins = 0, turn = 0;
	void *v[64];
	struct loopmark lm;
	char *src = source_buf(p->size);
	if (!src || wait_attached(b, p->consumers))
		return -1;
	loop_begin(b, &lm);
	tput_start(b);
	for (uint64_t seq = 0; seq < p->n;) {
		unsigned k = p->n - seq < batch ? (unsigned)(p->n - seq) : batch;
		for (unsigned r = 0; r < f->ndata; r++) {
			struct ckq *d = f->data[r];
			/* k free slots: broadcast from this pool's return ring,
			 * group from the consumers' return rings in turn. */
			for (unsigned j = 0; j < k;) {
				struct ckq *fr = f->free[p->group ? turn : r];
				if (ck_ring_dequeue_spsc(&fr->r, fr->buf, &v[j])) {
					j++;
					continue;
				}
				if (p->group && ++turn < f->nfree)
					continue;
				turn = 0;
				backoff(&spins);
			}
			for (unsigned j = 0; j < k; j++) {
				char *s = f->slots[r] + ((uintptr_t)v[j] - 1) * p->size;
				memcpy(s, src, p->size);
				stamp(s, p->size, seq + j);
			}
			for (unsigned j = 0; j < k; j++)
				while (!(p->group ? ck_ring_enqueue_spmc(&d->r, d->buf, v[j])
						  : ck_ring_enqueue_spsc(&d->r, d->buf, v[j])))
					backoff(&spins);
		}
		seq += k;
	}
	/* One end-of-stream sentinel per consumer. */
	void *end = (void *)(uintptr_t)(f->depth + 1);
	for (unsigned c = 0; c < p->consumers; c++) {
		struct ckq *d = f->data[p->group ? 0 : c];
		while (!(p->group ? ck_ring_enqueue_spmc(&d->r, d->buf, end)
				  : ck_ring_enqueue_spsc(&d->r, d->buf, end)))
			backoff(&spins);
	}
	loop_end(b, &lm, 0);
	return 0;
}

static int fan_consumer(struct bench *b, struct fan *f, int role)
{
	const struct params *p = &b->p;
	unsigned r = p->group ? 0 : (unsigned)role - 1, spins = 0;
	struct ckq *d = f->data[r], *fr = f->free[role - 1];
	uint64_t next = 0, got = 0;
	struct loopmark lm;
	char *buf = malloc(p->size);
	if (!buf)
		return fail(b, "out of memory");
	/* Counting starts before the producer may: enabling the counter
	 * can take milliseconds, which must not fall in the timed loop. */
	loop_begin(b, &lm);
	attached(b);
	for (;;) {
		void *x;
		while (!(p->group ? ck_ring_dequeue_spmc(&d->r, d->buf, &x)
				  : ck_ring_dequeue_spsc(&d->r, d->buf, &x)))
			backoff(&spins);
		uintptr_t v = (uintptr_t)x;
		if (v == f->depth + 1)
			break;
		if (v < 1 || v > f->depth)
			return fail(b, "bad slot index %lu", (unsigned long)v);
		const char *s = f->slots[r] + (v - 1) * p->size;
		if (!p->zc) {
			memcpy(buf, s, p->size);
			s = buf;
		}
		uint64_t seq = unstamp(s, p->size);
		if (seq == UINT64_MAX || (p->group ? seq < next : seq != next))
			return fail(b, "consumer: message %llu where %llu was due",
				    (unsigned long long)seq, (unsigned long long)next);
		next = seq + 1;
		got++;
		while (!ck_ring_enqueue_spsc(&fr->r, fr->buf, x))
			backoff(&spins);
	}
	loop_end(b, &lm, role);
	tput_done(b, role, got);
	free(buf);
	return 0;
}

static int fan_child(struct bench *b, void *priv, int role)
{
	return role ? fan_consumer(b, priv, role) : fan_producer(b, priv);
}
#define FAN_SETUP fan_setup
#define FAN_CHILD fan_child
#define FAN_TEARDOWN fan_teardown
#define CK_SETUP ck_setup
#define CK_SKIP NULL
#else
#define CK_SETUP NULL
#define FAN_SETUP NULL
#define FAN_CHILD NULL
#define FAN_TEARDOWN NULL
#define CK_SKIP "libck-dev not installed (pkg-config ck)"
#endif

static void ck_init_mech(struct mech *m)
{
	m->skip = CK_SKIP;
}

struct mech mech_ck = {
	.name = "ck_ring",
	.caps = C_TPUT | C_ZC | C_BATCH | C_RTT_SPIN,
	.init = ck_init_mech,
	.depth = slots_depth,
	.setup = CK_SETUP,
	.child = pool_child,
	.teardown = pool_teardown,
};

static void fan_depth_any(const struct params *p, char *buf, size_t len)
{
#if HAVE_CK
	fan_depth(p, buf, len);
#else
	(void)p;
	snprintf(buf, len, "-");
#endif
}

/* Fan-out peers (see above); selected with the name ck_ring. */
struct mech mech_ck_bcast = {
	.name = "ck SPSCxN",
	.caps = C_TPUT | C_ZC | C_BATCH | C_FANOUT,
	.init = ck_init_mech,
	.depth = fan_depth_any,
	.setup = FAN_SETUP,
	.child = FAN_CHILD,
	.teardown = FAN_TEARDOWN,
};

struct mech mech_ck_group = {
	.name = "ck SPMC",
	.caps = C_TPUT | C_ZC | C_BATCH | C_GROUP,
	.init = ck_init_mech,
	.depth = fan_depth_any,
	.setup = FAN_SETUP,
	.child = FAN_CHILD,
	.teardown = FAN_TEARDOWN,
};

/* ---- rte_ring (single producer, single consumer, burst calls) ---------- */

#if HAVE_DPDK
static size_t rte_memsize(uint32_t n)
{
	ssize_t s = rte_ring_get_memsize(n);
	return s < 0 ? 0 : (size_t)s;
}
static int rte_init(void *q, uint32_t n)
{
	return rte_ring_init(q, "perf", n, RING_F_SP_ENQ | RING_F_SC_DEQ);
}
static int rte_enq(void *q, uint32_t v)
{
	return rte_ring_sp_enqueue(q, (void *)(uintptr_t)v) ? -1 : 0;
}
static int rte_deq(void *q, uint32_t *v)
{
	void *x;
	if (rte_ring_sc_dequeue(q, &x))
		return -1;
	*v = (uint32_t)(uintptr_t)x;
	return 0;
}
static unsigned rte_enq_burst(void *q, const uint32_t *v, unsigned n)
{
	void *x[64];
	for (unsigned i = 0; i < n; i++)
		x[i] = (void *)(uintptr_t)v[i];
	return rte_ring_sp_enqueue_burst(q, x, n, NULL);
}
static unsigned rte_deq_burst(void *q, uint32_t *v, unsigned n)
{
	void *x[64];
	unsigned k = rte_ring_sc_dequeue_burst(q, x, n, NULL);
	for (unsigned i = 0; i < k; i++)
		v[i] = (uint32_t)(uintptr_t)x[i];
	return k;
}
static const struct qops rte_ops = {rte_memsize, rte_init, rte_enq, rte_deq,
				    rte_enq_burst, rte_deq_burst};
static int rte_setup(struct bench *b, void **priv)
{
	return pool_setup(b, priv, &rte_ops);
}
#define RTE_SETUP rte_setup
#define RTE_SKIP NULL
#else
#define RTE_SETUP NULL
#define RTE_SKIP "dpdk-dev not installed (pkg-config libdpdk)"
#endif

static void rte_init_mech(struct mech *m)
{
	m->skip = RTE_SKIP;
}

struct mech mech_rte = {
	.name = "rte_ring",
	.caps = C_TPUT | C_ZC | C_BATCH | C_RTT_SPIN,
	.init = rte_init_mech,
	.depth = slots_depth,
	.setup = RTE_SETUP,
	.child = pool_child,
	.teardown = pool_teardown,
};

/* ---- liburcu wfcqueue (two threads of one process) ---------------------- */

#if HAVE_URCU
struct wnode {
	struct cds_wfcq_node n;
	uint32_t v;
};
struct wq {
	struct __cds_wfcq_head h __attribute__((aligned(128)));
	struct cds_wfcq_tail t __attribute__((aligned(128)));
	uint32_t count;
	struct wnode node[]; /* node[v] carries value v */
};
static size_t wq_memsize(uint32_t n)
{
	return sizeof(struct wq) + (n + 1) * sizeof(struct wnode);
}
static int wq_init(void *q, uint32_t n)
{
	struct wq *w = q;
	__cds_wfcq_init(&w->h, &w->t);
	w->count = n;
	return 0;
}
/* A value is in at most one queue at a time, so its node is free. */
static int wq_enq(void *q, uint32_t v)
{
	struct wq *w = q;
	if (v > w->count)
		return -1;
	cds_wfcq_node_init(&w->node[v].n);
	w->node[v].v = v;
	cds_wfcq_enqueue(&w->h, &w->t, &w->node[v].n);
	return 0;
}
static int wq_deq(void *q, uint32_t *v)
{
	struct wq *w = q;
	struct cds_wfcq_node *n = __cds_wfcq_dequeue_nonblocking(&w->h, &w->t);
	if (!n || n == CDS_WFCQ_WOULDBLOCK)
		return -1;
	*v = caa_container_of(n, struct wnode, n)->v;
	return 0;
}
static const struct qops wq_ops = {wq_memsize, wq_init, wq_enq, wq_deq, NULL, NULL};
static int wq_setup(struct bench *b, void **priv)
{
	return pool_setup(b, priv, &wq_ops);
}
#define WQ_SETUP wq_setup
#define WQ_SKIP NULL
#else
#define WQ_SETUP NULL
#define WQ_SKIP "liburcu-dev not installed (pkg-config liburcu)"
#endif

static void wq_init_mech(struct mech *m)
{
	m->skip = WQ_SKIP;
}

struct mech mech_urcu = {
	.name = "urcu-wfcq",
	.caps = C_TPUT | C_ZC | C_BATCH | C_RTT_SPIN | C_THREADS,
	.init = wq_init_mech,
	.depth = slots_depth,
	.setup = WQ_SETUP,
	.child = pool_child,
	.teardown = pool_teardown,
};
