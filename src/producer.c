/* SPDX-License-Identifier: MIT */
/*
 * The producer: reserve, commit, abort, send.  The hot path touches only the
 * producer's private state, the data area and one store of tail per commit;
 * the cursor table is scanned only when the cached minimum says "full".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/* The lowest live cursor, or the committed tail when none is attached.  A
 * cursor outside [limit, tail] is clamped: one below the limit is a consumer
 * still finishing its attach (it moves up to the published reclaim), one
 * past the tail is corrupt or a member's empty hold (HOLD_NONE), and only
 * loses its own data.
 *
 * Two passes: first the cursors (broadcast and group), then the members'
 * holds.  A member stores its hold before the compare-and-swap that moves its
 * group's cursor past the records it claimed; so if the first pass saw the
 * moved cursor (acquire), the second sees the hold. */
static uint64_t scan_min(struct shmring_producer *p)
{
	uint64_t m = p->tail;
	uint32_t hw = load_acquire(&p->cs->hiwater);
	if (hw > p->nslots)
		hw = p->nslots;
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < hw; i++) {
			struct shm_slot *s = &p->slots[i];
			/* Pairs with store_release(state, ACTIVE) in
			 * claim_slot()'s callers. */
			if (load_acquire(&s->state) != SLOT_ACTIVE)
				continue;
			if ((load_relaxed(&s->kind) == KIND_MEMBER) != pass)
				continue;
			/* Pairs with the consumers' store_release(pos) and
			 * cas64(pos): their reads of the data happen before
			 * we overwrite it. */
			uint64_t c = load_acquire(&s->pos);
			if (c - p->limit > p->tail - p->limit)
				c = c < p->limit ? p->limit : p->tail;
			if (c < m)
				m = c;
		}
	}
	return m;
}

/*
 * Recomputes the cached minimum.  The minimum is published as `reclaim`
 * before a second scan, so that a consumer attaching concurrently either
 * shows up in that scan or sees the new reclaim and moves up to it (see
 * consumer_attach()).  Returns 1 if the limit moved.
 */
int refresh_limit(struct shmring_producer *p)
{
	uint64_t old = p->limit, m = scan_min(p);
	store_relaxed(&p->prod->reclaim, m);
	fence_full(); /* pairs with the fence in consumer_attach() */
	uint64_t m2 = scan_min(p);
	p->limit = m2 < m ? m2 : m;
	return p->limit != old;
}

/* Back to read-only producer pages once this handle has no producer. */
static void protect_ro(struct shmring *r)
{
	if (!r->prod_rw)
		return;
	int saved = errno;
	mprotect(r->base + r->g.prod_off, r->g.ctab_off - r->g.prod_off, PROT_READ);
	mprotect(r->data, 2 * r->g.capacity, PROT_READ);
	errno = saved;
	r->prod_rw = 0;
}

/* The position after the committed record or pad (layout.h) at h, below
 * the tail; *msg: 1 for a record, 0 for a pad.  0 if the header cannot be
 * right (a corrupt ring): a length over the largest message, a record past
 * the tail, or a pad that ends at the tail (it is published with the record
 * after it). */
static uint64_t step_record(const struct shmring_producer *p, uint64_t h, int *msg)
{
	const struct shm_rec *rec = (const struct shm_rec *)(p->data + (h & p->mask));
	uint32_t len = *(const volatile uint32_t *)&rec->len;
	*msg = len != REC_PAD;
	uint64_t sz = *msg ? SHMRING_RECORD_SIZE(len) : p->cap - (h & p->mask);
	if ((*msg && len > p->max_message) || sz > p->tail - h || (!*msg && sz == p->tail - h))
		return 0;
	return h + sz;
}

/* Records from head to tail: they are intact (head moves before anything is
 * overwritten).  A length that cannot be right stops the count at *end. */
static uint64_t count_records(const struct shmring_producer *p, uint64_t *end)
{
	uint64_t h = p->head, n = 0;
	int msg;
	for (uint64_t next; h != p->tail && (next = step_record(p, h, &msg)); h = next)
		n += (uint64_t)msg;
	*end = h;
	return n;
}

/*
 * OVERWRITE takeover.  A producer killed between the stores of one snapshot
 * update left ver odd, and one pair torn: the position written, its sequence
 * number not (or neither, or both).  ver % 4 says which pair (see layout.h);
 * the other pair is whole, and the records between head and tail give the
 * difference of the two sequence numbers.  The repaired snapshot is
 * published before any consumer can take it: ver stays odd until then.
 */
static void repair_snapshot(struct shmring_producer *p)
{
	uint64_t end, n;
	switch (p->ver & 3) {
	case 0:
		return;
	case 1: /* head, head_seq: the tail pair is whole */
		n = count_records(p, &end);
		if (end != p->tail || n > p->tail_seq)
			n = 0, p->head = p->tail; /* corrupt: give up the records */
		p->head_seq = p->tail_seq - n;
		break;
	case 3: /* tail_seq, tail: the head pair is whole */
		n = count_records(p, &end);
		if (end != p->tail)
			n = 0, p->head = p->tail; /* corrupt: give up the records */
		p->tail_seq = p->head_seq + n;
		p->seq = p->tail_seq;
		break;
	default: /* ver % 4 == 2 is never written: a corrupt ring */
		p->head = p->tail;
		p->head_seq = p->tail_seq;
		break;
	}
	store_relaxed(&p->prod->head, p->head);
	store_relaxed(&p->prod->head_seq, p->head_seq);
	store_relaxed(&p->prod->tail_seq, p->tail_seq);
	p->ver = (p->ver | 3) + 1;
	store_release(&p->prod->ver, p->ver);
}

SHMRING_API int shmring_producer_open(struct shmring *r, struct shmring_producer **out)
{
	if (!r || !out)
		return -EINVAL;
	if (!r->writable)
		return -EACCES;
	int saved = errno;
	struct shmring_producer *p = calloc(1, sizeof(*p));
	errno = saved;
	if (!p)
		return -ENOMEM;
	if (r->g.max_message > BOUNCE_MIN) {
		p->bounce = aligned_alloc(4096, BOUNCE_PIECE + 4096);
		errno = saved;
		if (!p->bounce) {
			free(p);
			return -ENOMEM;
		}
	}
	int made_rw = 0;
	if (!r->prod_rw) {
		const struct shm_geom *g = &r->g;
		if (mprotect(r->base + g->prod_off, g->ctab_off - g->prod_off,
			     PROT_READ | PROT_WRITE) < 0 ||
		    mprotect(r->data, 2 * g->capacity, PROT_READ | PROT_WRITE) < 0) {
			errno = saved;
			free(p->bounce);
			free(p);
			return -EACCES;
		}
		errno = saved;
		r->prod_rw = made_rw = 1;
	}
	/*
	 * Who holds the producer byte's lock is the producer.  A producer that
	 * died dropped it with its last descriptor: we take over and continue
	 * its sequence; what it reserved and never committed lies beyond the
	 * tail and is overwritten.  Without liveness (no /proc), the owner
	 * field decides and a dead producer's ring cannot be taken over.
	 */
	uint32_t expect = 0, me = (uint32_t)getpid();
	p->lockfd = live_open(r);
	int busy = p->lockfd >= 0 ? live_lock(p->lockfd, r->g.prod_off)
				  : (cas32(&r->prod->owner, &expect, me) ? 0 : -EBUSY);
	if (busy)
		goto fail;
	/* Records are 8-aligned: any other tail is a corrupt ring. */
	if (load_acquire(&r->prod->tail) & 7) {
		busy = -EPROTO;
		goto fail;
	}
	store_release(&r->prod->owner, me);
	p->r = r;
	p->prod = r->prod;
	p->cs = r->cs;
	p->slots = r->slots;
	p->data = r->data;
	p->cap = r->g.capacity;
	p->mask = r->g.capacity - 1;
	p->nslots = r->g.nslots;
	p->max_message = r->g.max_message;
	p->overwrite = r->policy == SHMRING_POLICY_OVERWRITE;
	p->inline_small = r->inline_small;
	spin_init(&p->spin);
	asym_register();
	/* Continue where the previous producer stopped. */
	p->tail = p->rtail = load_acquire(&r->prod->tail);
	p->seq = p->tail_seq = load_relaxed(&r->prod->tail_seq);
	p->head = load_relaxed(&r->prod->head);
	p->head_seq = load_relaxed(&r->prod->head_seq);
	p->ver = load_relaxed(&r->prod->ver);
	if (p->head > p->tail || p->tail - p->head > p->cap || (p->head & 7)) { /* corrupt */
		p->head = p->tail;
		p->head_seq = p->tail_seq;
	}
	if (p->overwrite)
		repair_snapshot(p);
	else
		p->ver = 0;
	p->limit = load_relaxed(&r->prod->reclaim);
	if (p->limit > p->tail || p->tail - p->limit > p->cap)
		p->limit = p->tail - (p->tail < p->cap ? p->tail : p->cap);
	refresh_limit(p);
	p->spin.moved = p->seq; /* repair_snapshot() may have moved it */
	/* No copy yet (a new ring holds 0, a valid position), or a copy that
	 * a predecessor killed between storing istart and the tail left of a
	 * record it never published (layout.h); our commits' release of the
	 * tail orders this before them. */
	if (p->inline_small)
		store_relaxed(&r->prod->istart, INLINE_NONE);
	store_release(&r->prod->closed, 0);
	atomic_fetch_add_explicit(&r->producers, 1, memory_order_relaxed);
	endpoint_add(r, &p->opener);
	populate_data(r, 1);
	*out = p;
	return 0;
fail:
	if (busy != -EBUSY && p->lockfd < 0) /* we took the role by owner CAS */
		store_release(&r->prod->owner, 0);
	if (made_rw && atomic_load_explicit(&r->producers, memory_order_relaxed) == 0)
		protect_ro(r);
	live_close(p->lockfd); /* drops the producer lock if we took it */
	free(p->bounce);
	free(p);
	errno = saved;
	return busy;
}

static void do_shutdown(struct shmring_producer *p)
{
	if (p->shut)
		return;
	p->shut = 1;
	p->rtail = p->tail;
	p->seq = p->tail_seq;
	signal_fence();
	/* Pairs with the consumers' load_acquire(closed) in shmring_peek(). */
	store_release(&p->prod->closed, 1);
	store_release(&p->prod->owner, 0);
	wake_consumers(p->r, INT_MAX, NULL);
	/* The role goes with the lock; close() is async-signal-safe. */
	int fd = p->lockfd;
	p->lockfd = -1;
	live_close(fd);
	/* That close dropped this process's record locks on the file. */
	notify_relock(p->r);
}

/*
 * Leaves a call.  A shutdown asked meanwhile by a signal handler (which
 * found us busy) is done now; one asked between our last look and clearing
 * busy is seen by the look after.
 */
void leave_producer_slow(struct shmring_producer *p)
{
	for (;;) {
		if (load_relaxed(&p->shut_req) && !p->shut)
			do_shutdown(p);
		signal_fence();
		p->busy = 0;
		signal_fence();
		if (!load_relaxed(&p->shut_req) || p->shut)
			return;
		p->busy = 1;
		signal_fence();
	}
}

SHMRING_API int shmring_producer_shutdown(struct shmring_producer *p)
{
	if (!p)
		return -EINVAL;
	if (p->busy) {
		/* We interrupted a call on this handle: it shuts down on its
		 * way out; one waiting for room wakes for that. */
		store_release(&p->shut_req, 1);
		futex_bump_wake(&p->cs->prod_wake_seq);
		return 0;
	}
	p->busy = 1;
	signal_fence();
	do_shutdown(p);
	leave_producer(p);
	return 0;
}

SHMRING_API int shmring_producer_interrupt(struct shmring_producer *p)
{
	if (!p)
		return -EINVAL;
	store_release(&p->intr, 1);
	futex_bump_wake(&p->cs->prod_wake_seq);
	return 0;
}

SHMRING_API int shmring_producer_close(struct shmring_producer *p)
{
	if (!p)
		return -EINVAL;
	if (p->busy)
		return -EBUSY;
	shmring_producer_shutdown(p);
	struct shmring *r = p->r;
	if (atomic_fetch_sub_explicit(&r->producers, 1, memory_order_relaxed) == 1)
		protect_ro(r);
	endpoint_del(r, p->opener); /* shutdown dropped the producer lock */
	free(p->bounce);
	free(p);
	return 0;
}

/*
 * Overwrite: before writing a record that ends at `end`, move head past every
 * record the write will destroy, and publish it.  Consumers read a record,
 * then (acquire fence) head: if they may have read overwritten bytes, they
 * see the new head.  The release fence orders the head stores before the
 * record stores that follow.
 */
static void advance_head(struct shmring_producer *p, uint64_t end)
{
	uint64_t h = p->head, hs = p->head_seq;
	while (end - h > p->cap) {
		/* Committed records, ours or a previous producer's.  Consumers
		 * cannot write the data, but a length that cannot be right
		 * (a corrupt ring) must not send us past the tail: then
		 * everything up to the tail is given up. */
		int msg;
		uint64_t next = step_record(p, h, &msg);
		if (!next) {
			h = p->tail;
			hs = p->tail_seq;
			break;
		}
		h = next;
		hs += (uint64_t)msg;
	}
	p->head = h;
	p->head_seq = hs;
	store_relaxed(&p->prod->ver, p->ver + 1); /* 1 mod 4: writing head */
	fence_release();
	store_relaxed(&p->prod->head, h);
	store_relaxed(&p->prod->head_seq, hs);
	p->ver += 4;
	store_release(&p->prod->ver, p->ver);
	fence_release();
}

/* OVERWRITE: make room for a record ending at `end` by moving head. */
static __attribute__((noinline)) int reserve_overwrite(struct shmring_producer *p, uint64_t end)
{
	/* One commit cannot hold more than the ring. */
	if (end - p->tail > p->cap)
		return -ENOBUFS;
	if (end - p->head > p->cap)
		advance_head(p, end);
	return 0;
}

/* BLOCK, and the cached minimum says full: 0 if the cursors moved on (or a
 * dead one was reaped), else -EAGAIN or -ENOBUFS. */
static __attribute__((noinline)) int reserve_full(struct shmring_producer *p, uint64_t end)
{
	/* Room can only come from consumers catching up to the tail. */
	if (end - p->tail > p->cap)
		return -ENOBUFS;
	refresh_limit(p);
	if (end - p->limit <= p->cap)
		return 0;
	/* Full.  Now and then, see whether a dead cursor holds us back (a
	 * blocked reserve_wait does it itself): once the cursors have stood
	 * still for REAP_NS, so a producer that keeps filling the ring asks
	 * only when the consumers stop. */
	if ((++p->eagain & 63) == 1) {
		uint64_t t = now_ns();
		if (stood_still(&p->limit_still, p->limit, t, REAP_NS)) {
			p->limit_still.since = t; /* the next look REAP_NS from now */
			if (reap_dead(p->r, end - p->cap))
				refresh_limit(p);
		}
	}
	return end - p->limit > p->cap ? -EAGAIN : 0;
}

/* Bytes of padding (layout.h, REC_PAD) before a record of sz bytes at
 * position t: the rest of the lap if the record would cross the end of the
 * data area and that rest is small, else 0. */
static inline uint64_t pad_before(const struct shmring_producer *p, uint64_t t, uint64_t sz)
{
	uint64_t rest = p->cap - (t & p->mask);
	return rest < sz && rest <= p->cap >> PAD_SHIFT ? rest : 0;
}

/* Writes a pad at rtail, `rest` bytes to the end of the lap, and moves rtail
 * to the next lap.  It carries the sequence number of the record after it. */
static inline void put_pad(struct shmring_producer *p, uint64_t rest)
{
	struct shm_rec h = {.len = REC_PAD, .seq = (uint32_t)p->seq};
	memcpy(p->data + (p->rtail & p->mask), &h, sizeof(h));
	p->rtail += rest;
}

/* Writes the header of the record at rtail, of `len` bytes, and moves rtail
 * past it: one 8-byte store into the ring. */
static inline void put_header(struct shmring_producer *p, size_t len, uint64_t end, void **data)
{
	struct shm_rec h = {.len = (uint32_t)len, .seq = (uint32_t)p->seq};
	uint8_t *rec = p->data + (p->rtail & p->mask);
	memcpy(rec, &h, sizeof(h));
	*data = rec + sizeof(h);
	p->seq++;
	p->rtail = end;
}

static inline int reserve(struct shmring_producer *p, size_t len, void **data)
{
	if (p->shut)
		return -EPIPE;
	if (len > p->max_message)
		return -EMSGSIZE;
	uint64_t sz = SHMRING_RECORD_SIZE(len);
	uint64_t pad = pad_before(p, p->rtail, sz);
	uint64_t end = p->rtail + pad + sz;
	int rc = 0;
	if (p->overwrite)
		rc = reserve_overwrite(p, end);
	else if (end - p->limit > p->cap)
		rc = reserve_full(p, end);
	if (rc)
		return rc;
	if (pad)
		put_pad(p, pad);
	put_header(p, len, end, data);
	return 0;
}


static int reserve_wait(struct shmring_producer *p, size_t len, void **data,
			const struct timespec *deadline)
{
	for (;;) {
		int rc = reserve(p, len, data);
		if (rc != -EAGAIN)
			return rc;
		uint64_t sz = SHMRING_RECORD_SIZE(len);
		rc = wait_for_room(p, p->rtail + pad_before(p, p->rtail, sz) + sz, deadline);
		if (rc)
			return rc;
	}
}

/*
 * The common case of both reserve calls, entered (busy): a BLOCK ring with
 * room known, not shut down.  Returns 0 if it does not apply.  It makes no
 * call, so the compiler saves no registers on it: the producer's stores into
 * the ring wait for the consumers' copies of those lines, and every other
 * store behind them in the store buffer (a saved register, a counter) lowers
 * how many messages can be in flight.  The state is read after busy is set:
 * a handler that interrupts us before that runs to completion first.
 */
static inline int reserve_fast(struct shmring_producer *p, size_t len, void **data)
{
	if (p->shut || p->overwrite || len > p->max_message)
		return 0;
	uint64_t sz = SHMRING_RECORD_SIZE(len);
	uint64_t end = p->rtail + sz;
	/* A record that would cross the end of the data area may need a pad:
	 * reserve() sees to it. */
	if (end - p->limit > p->cap || (p->rtail & p->mask) + sz > p->cap)
		return 0;
	put_header(p, len, end, data);
	return 1;
}

/* The rest of both reserve calls, entered; leaves. */
static __attribute__((noinline)) int reserve_slow(struct shmring_producer *p, size_t len,
						  void **data, const struct timespec *deadline,
						  int wait)
{
	int rc = wait ? reserve_wait(p, len, data, deadline) : reserve(p, len, data);
	leave_producer(p);
	return rc;
}

/* Both reserve calls: inlined into each, so that each keeps its leaf fast
 * path (see reserve_fast()). */
static inline __attribute__((always_inline)) int
reserve_call(struct shmring_producer *p, size_t len, void **data,
	     const struct timespec *deadline, int wait)
{
	if (!p || !data || !valid_deadline(deadline))
		return -EINVAL;
	ENTER(p);
	if (!reserve_fast(p, len, data))
		return reserve_slow(p, len, data, deadline, wait);
	leave_producer(p);
	return 0;
}

SHMRING_API int shmring_reserve(struct shmring_producer *p, size_t len, void **data)
{
	return reserve_call(p, len, data, NULL, 0);
}

SHMRING_API int shmring_reserve_wait(struct shmring_producer *p, size_t len, void **data,
				     const struct timespec *deadline)
{
	return reserve_call(p, len, data, deadline, 1);
}

/* How much of a batch reserve_more() prefetches for writing: a fraction of
 * a level-1 data cache, so that the lines are still there when written.
 * Only records of up to PREFETCH_REC_MAX bytes, header included (messages
 * of up to 2040 bytes): it paid at 512 and 1024 bytes, made batches of
 * 4096-byte copies slower and did not help at 16 and 64 KiB
 * (perf/RESULTS.md, change 30). */
#ifndef PREFETCH_MAX
#define PREFETCH_MAX 16384u
#endif
#ifndef PREFETCH_REC_MAX
#define PREFETCH_REC_MAX 2048u
#endif

/*
 * Up to n more records of len bytes, after the first one: as many as the
 * cached limit allows, then as many as a fresh one does, without waiting.
 * BLOCK only.  Entered.  `each`: sets data[0..m-1]; otherwise the caller
 * finds them at a fixed stride from the first (shmring_reserve_array()),
 * and the loop stores nothing but the headers.
 */
static inline __attribute__((always_inline)) unsigned
reserve_more(struct shmring_producer *p, size_t len, unsigned n, void **data, int each)
{
	uint64_t sz = SHMRING_RECORD_SIZE(len);
	uint64_t fit = (p->limit + p->cap - p->rtail) / sz;
	if (fit < n && refresh_limit(p))
		fit = (p->limit + p->cap - p->rtail) / sz;
	unsigned m = fit < n ? (unsigned)fit : n;
	/* Not past a pad: the records of one call lie back to back.  The
	 * next call pads (reserve()).  Divides only near the lap's end. */
	uint64_t at = p->rtail & p->mask;
	if (at + (uint64_t)m * sz > p->cap) {
		uint64_t lap = (p->cap - at) / sz;
		if (pad_before(p, p->rtail + lap * sz, sz))
			m = (unsigned)lap;
	}
	uint64_t rt = p->rtail, seq = p->seq;
	for (unsigned k = 0; k < m; k++) {
		struct shm_rec h = {.len = (uint32_t)len, .seq = (uint32_t)seq++};
		uint8_t *rec = p->data + (rt & p->mask);
		memcpy(rec, &h, sizeof(h));
		if (each)
			data[k] = rec + sizeof(h);
		rt += sz;
	}
	/* The caller writes these records next, in order: ask for all their
	 * lines now (up to PREFETCH_MAX bytes), so that their transfers from
	 * the consumers' caches overlap instead of each store waiting for its
	 * own (perf/RESULTS.md, change 15). */
	if (sz <= PREFETCH_REC_MAX) {
		uint64_t span = rt - p->rtail < PREFETCH_MAX ? rt - p->rtail : PREFETCH_MAX;
		const uint8_t *a = p->data + (p->rtail & p->mask);
		for (uint64_t o = 0; o < span; o += 64)
			prefetch_write(a + o);
	}
	p->rtail = rt;
	p->seq = seq;
	return m;
}

/* Reserves up to n records of len bytes: at least one (waiting for it if
 * `wait`), or the error of the first.  Entered.  `each`: as reserve_more(). */
static inline __attribute__((always_inline)) int
reserve_batch(struct shmring_producer *p, size_t len, unsigned n, void **data,
	      const struct timespec *deadline, int wait, int each)
{
	if (!reserve_fast(p, len, &data[0])) {
		int rc = wait ? reserve_wait(p, len, &data[0], deadline) : reserve(p, len, &data[0]);
		if (rc)
			return rc;
	}
	unsigned k = 1;
	if (p->overwrite) {
		/* One by one: each may move head.  They follow one another
		 * in the ring, so the stride holds here too: not past a pad. */
		void *d;
		while (k < n && !pad_before(p, p->rtail, SHMRING_RECORD_SIZE(len)) &&
		       reserve(p, len, each ? &data[k] : &d) == 0)
			k++;
		return (int)k;
	}
	if (n > 1)
		k += reserve_more(p, len, n - 1, data + 1, each);
	return (int)k;
}

SHMRING_API int shmring_reserve_batch(struct shmring_producer *p, size_t len, unsigned n,
				      void **data)
{
	if (!p || !data || !n)
		return -EINVAL;
	ENTER(p);
	int rc = reserve_batch(p, len, n, data, NULL, 0, 1);
	leave_producer(p);
	return rc;
}

SHMRING_API int shmring_reserve_batch_wait(struct shmring_producer *p, size_t len, unsigned n,
					   void **data, const struct timespec *deadline)
{
	if (!p || !data || !n || !valid_deadline(deadline))
		return -EINVAL;
	ENTER(p);
	int rc = reserve_batch(p, len, n, data, deadline, 1, 1);
	leave_producer(p);
	return rc;
}

SHMRING_API int shmring_reserve_array(struct shmring_producer *p, size_t len, unsigned n,
				      void **first)
{
	if (!p || !first || !n)
		return -EINVAL;
	ENTER(p);
	int rc = reserve_batch(p, len, n, first, NULL, 0, 0);
	leave_producer(p);
	return rc;
}

SHMRING_API int shmring_reserve_array_wait(struct shmring_producer *p, size_t len, unsigned n,
					   void **first, const struct timespec *deadline)
{
	if (!p || !first || !n || !valid_deadline(deadline))
		return -EINVAL;
	ENTER(p);
	int rc = reserve_batch(p, len, n, first, deadline, 1, 0);
	leave_producer(p);
	return rc;
}

static inline __attribute__((always_inline)) int commit(struct shmring_producer *p)
{
	uint32_t n = (uint32_t)(p->seq - p->tail_seq);
	if (n == 0)
		return 0;
	p->tail = p->rtail;
	p->tail_seq = p->seq;
	if (p->overwrite) {
		store_relaxed(&p->prod->ver, p->ver + 3); /* 3 mod 4: writing tail */
		fence_release();
	}
	store_relaxed(&p->prod->tail_seq, p->tail_seq);
	/* Publishes the records: pairs with the consumers' load_acquire(tail)
	 * in peek(). */
	store_release(&p->prod->tail, p->tail);
	if (p->overwrite) {
		p->ver += 4;
		store_release(&p->prod->ver, p->ver);
	}
	wake_consumers(p->r, (int)n, &p->quiet);
	return (int)n;
}

SHMRING_API int shmring_commit(struct shmring_producer *p)
{
	if (!p)
		return -EINVAL;
	ENTER(p);
	int rc = p->shut ? -EPIPE : commit(p);
	leave_producer(p);
	return rc;
}

SHMRING_API int shmring_abort(struct shmring_producer *p)
{
	if (!p)
		return -EINVAL;
	ENTER(p);
	int n = -EPIPE;
	if (!p->shut) {
		n = (int)(p->seq - p->tail_seq);
		p->rtail = p->tail;
		p->seq = p->tail_seq;
	}
	leave_producer(p);
	return n;
}

/* A payload of over COPY_BLOCKS_MIN bytes into the ring (internal.h);
 * out of line, so that the small messages' path stays as it was.  The
 * distance is looked at once: at a short one, a payload of over BOUNCE_MIN
 * bytes (so max_message is over it too, and open allocated the bounce
 * buffer) goes through the buffer, a smaller one by blocks. */
static __attribute__((noinline)) void copy_large(struct shmring_producer *p, void *d,
						 const void *msg, size_t len)
{
	if (!short_distance(d, msg, len))
		memcpy(d, msg, len);
	else if (len > BOUNCE_MIN)
		copy_bounced(p->bounce, d, msg, len);
	else
		copy_blocks(d, msg, len);
}

/*
 * The copy of a small message in line 0 of a BLOCK ring (layout.h), for the
 * record at `start` whose payload is at `d`: istart INLINE_NONE, then
 * (release fence) the payload and length, then istart (release).  The tail,
 * stored after it, publishes the record itself.  The payload goes in whole
 * words, read back from the record (padded to 8 bytes, so the last word is
 * inside it), so that a consumer reading them as this writes them reads
 * words and not torn bytes.
 */
static inline void copy_to_line(struct shm_prod *prod, uint64_t start, const void *d, size_t len)
{
	const uint64_t *w = d;
	store_relaxed(&prod->istart, INLINE_NONE);
	fence_release(); /* istart, then the payload: pairs with the reader's fence */
	for (size_t i = 0; i < (len + 7) / 8; i++)
		store_relaxed(&prod->ipay[i], w[i]);
	store_relaxed(&prod->ilen, (uint32_t)len);
	/* Pairs with load_acquire(istart) in copy_from_line(). */
	store_release(&prod->istart, start);
}

/* Reserve, copy, commit: with reservations pending (the interrupted code's,
 * if we run in a signal handler) the commit would publish them too. */
static int send(struct shmring_producer *p, const void *msg, size_t len,
		const struct timespec *deadline, int wait)
{
	void *d;
	if (p->seq != p->tail_seq)
		return p->shut ? -EPIPE : -EBUSY;
	int rc = wait ? reserve_wait(p, len, &d, deadline) : reserve(p, len, &d);
	if (rc)
		return rc;
	if (len > COPY_BLOCKS_MIN)
		copy_large(p, d, msg, len);
	else
		copy_out(d, msg, len); /* up to 64 bytes inline, no call */
	/* One small record and no pad before it: a copy in line 0. */
	if (p->inline_small && len <= SHMRING_INLINE_MAX &&
	    p->rtail - p->tail == SHMRING_RECORD_SIZE(len))
		copy_to_line(p->prod, p->tail, d, len);
	commit(p);
	return 0;
}

SHMRING_API int shmring_send(struct shmring_producer *p, const void *msg, size_t len)
{
	if (!p || (!msg && len))
		return -EINVAL;
	ENTER(p);
	int rc = send(p, msg, len, NULL, 0);
	leave_producer(p);
	return rc;
}

SHMRING_API int shmring_send_wait(struct shmring_producer *p, const void *msg, size_t len,
				  const struct timespec *deadline)
{
	if (!p || (!msg && len) || !valid_deadline(deadline))
		return -EINVAL;
	ENTER(p);
	int rc = send(p, msg, len, deadline, 1);
	leave_producer(p);
	return rc;
}

