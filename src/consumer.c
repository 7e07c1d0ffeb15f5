/* SPDX-License-Identifier: MIT */
/*
 * Consumers: attach, peek, release, recv, and their batch forms, for
 * broadcast cursors in BLOCK and OVERWRITE rings; group members are in
 * group.c.  The hot path reads the shared tail only when the private copy
 * says the ring is drained, and validates every record header against the
 * tail and the ring's limits before using it.
 *
 * OVERWRITE: the producer may overwrite a record while we read it.  It moves
 * `head` past a record before writing over it, so a reader reads first, then
 * (acquire fence) head: if head passed the record, what was read is not
 * trusted.  Every record carries the low 32 bits of its sequence number,
 * which must be the one expected; the lost count comes from the producer's
 * (head, head_seq) snapshot.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/*
 * Claims a free slot (FREE -> CLAIMED) and raises the high-water mark.  The
 * slot's liveness lock is taken on lockfd first, so that a claimed slot is
 * always locked while its owner lives (see reap_slot()).  With every slot
 * taken, frees those of dead owners and tries once more.
 */
int claim_slot(struct shmring *r, int lockfd, struct shm_slot **out)
{
	uint32_t i;

	for (int round = 0;; round++) {
		for (i = 0; i < r->g.nslots; i++) {
			uint32_t expect = SLOT_FREE;
			if (load_relaxed(&r->slots[i].state) != SLOT_FREE)
				continue;
			if (live_lock(lockfd, slot_byte(r, i)))
				continue; /* someone is claiming it right now */
			if (cas32(&r->slots[i].state, &expect, SLOT_CLAIMED))
				break;
			live_unlock(lockfd, slot_byte(r, i));
		}
		if (i < r->g.nslots)
			break;
		if (round || reap_dead(r, UINT64_MAX) == 0)
			return -EUSERS;
	}
	uint32_t hw = load_relaxed(&r->cs->hiwater);
	while (hw < i + 1 && !cas32(&r->cs->hiwater, &hw, i + 1))
		;
	struct shm_slot *s = &r->slots[i];
	store_relaxed(&s->owner, (uint32_t)getpid());
	*out = s;
	return 0;
}

/*
 * Makes a claimed slot ACTIVE at a start position the producer will protect
 * (BLOCK).  The producer may be scanning at the same time, and only protects
 * data at or above the cursors it sees.  So: make the slot ACTIVE with a
 * candidate position, full fence, then read `reclaim`; if the producer
 * published a higher reclaim, move up to it.  Either the producer's second
 * scan (after its own fence) sees this slot, or we see its reclaim: data at
 * or above the final position is never overwritten while we hold it.
 */
int attach_position(struct shmring *r, struct shm_slot *s, unsigned flags, uint64_t *out)
{
	uint64_t pos = (flags & SHMRING_START_OLDEST) ? load_acquire(&r->prod->reclaim)
						      : load_acquire(&r->prod->tail);
	store_relaxed(&s->pos, pos);
	/* Pairs with load_acquire(state) in the producer's scan_min(). */
	store_release(&s->state, SLOT_ACTIVE);
	fence_full(); /* pairs with the fence in refresh_limit() */
	uint64_t rec = load_acquire(&r->prod->reclaim);
	uint64_t tail = load_acquire(&r->prod->tail);
	if (rec > tail) /* corrupt: never start past the published data */
		rec = tail;
	if (rec > pos || pos > tail) {
		pos = rec > pos ? rec : tail;
		store_release(&s->pos, pos);
	}
	*out = pos;
	return 0;
}

/*
 * A consistent (head, head_seq, tail, tail_seq) of an OVERWRITE ring: the
 * producer makes `ver` odd while it writes them.  A producer running flat
 * out updates them every few hundred nanoseconds, about as long as our reads
 * take while it keeps the line busy, so the budget is generous (a few
 * million tries, well under a second).  Bounded all the same: a producer
 * interrupted by our own signal handler, or dead in the middle, would never
 * finish; then -EAGAIN.  Pairs with the stores in advance_head() and
 * commit().
 */
int prod_snapshot(const struct shm_prod *cprod, uint64_t *head, uint64_t *head_seq,
		  uint64_t *tail, uint64_t *tail_seq)
{
	struct shm_prod *prod = (struct shm_prod *)cprod;
	for (unsigned i = 0; i < (1u << 22); i++) {
		uint32_t v = load_acquire(&prod->ver);
		if (!(v & 1)) {
			uint64_t h = load_relaxed(&prod->head), hs = load_relaxed(&prod->head_seq);
			uint64_t t = load_relaxed(&prod->tail), ts = load_relaxed(&prod->tail_seq);
			fence_acquire();
			if (load_relaxed(&prod->ver) == v) {
				*head = h, *head_seq = hs, *tail = t, *tail_seq = ts;
				return 0;
			}
		}
		cpu_relax();
	}
	return -EAGAIN;
}

static int attach_overwrite(struct shmring_consumer *c, struct shm_slot *s, unsigned flags)
{
	uint64_t h, hs, t, ts;
	int rc = prod_snapshot(c->prod, &h, &hs, &t, &ts);
	if (rc)
		return rc;
	if (h > t || t - h > c->cap || t - h < ts - hs || ((h | t) & 7))
		return -EPROTO; /* fewer bytes than 8 per record, or misaligned */
	int oldest = flags & SHMRING_START_OLDEST;
	c->rpos = c->cpos = c->cached_tail = oldest ? h : t;
	c->seq = c->cseq = oldest ? hs : ts;
	c->cached_tail = t;
	store_relaxed(&s->pos, c->rpos);
	store_release(&s->state, SLOT_ACTIVE);
	return 0;
}

static struct shmring_consumer *consumer_new(struct shmring *r)
{
	int saved = errno;
	struct shmring_consumer *c = calloc(1, sizeof(*c));
	errno = saved;
	if (!c)
		return NULL;
	c->r = r;
	c->prod = r->prod;
	c->cs = r->cs;
	c->data = r->data;
	c->cap = r->g.capacity;
	c->mask = r->g.capacity - 1;
	c->max_message = r->g.max_message;
	c->overwrite = r->policy == SHMRING_POLICY_OVERWRITE;
	c->inline_small = r->inline_small;
	spin_init(&c->spin);
	asym_register();
	c->lockfd = live_open(r);
	return c;
}

/* The end of a successful open: the spin's message count starts here, the
 * process counts the endpoint, and its page tables get the data area (only
 * now, so that an open that fails does not pay for it). */
static void open_done(struct shmring_consumer *c)
{
	c->spin.moved = c->seq;
	endpoint_add(c->r, &c->opener);
	populate_data(c->r, 0);
}

static void consumer_free(struct shmring_consumer *c)
{
	live_close(c->lockfd);
	/* That close dropped this process's record locks on the file. */
	notify_relock(c->r);
	int saved = errno;
	free(c);
	errno = saved;
}

SHMRING_API int shmring_consumer_open(struct shmring *r, unsigned flags,
				      struct shmring_consumer **out)
{
	if (!r || !out || (flags & ~(unsigned)SHMRING_START_OLDEST))
		return -EINVAL;
	if (!r->writable)
		return -EACCES; /* the cursor table is mapped read-only */
	struct shmring_consumer *c = consumer_new(r);
	if (!c)
		return -ENOMEM;
	struct shm_slot *s;
	int rc = claim_slot(r, c->lockfd, &s);
	if (rc) {
		consumer_free(c);
		return rc;
	}
	store_relaxed(&s->kind, KIND_BROADCAST);
	c->slot = s;
	if (c->overwrite) {
		rc = attach_overwrite(c, s, flags);
		if (rc) {
			store_release(&s->state, SLOT_FREE);
			consumer_free(c);
			return rc;
		}
	} else {
		uint64_t pos;
		attach_position(r, s, flags, &pos);
		c->rpos = c->cpos = c->cached_tail = pos;
		if (pos & 7) { /* records are 8-aligned: a corrupt ring */
			store_release(&s->state, SLOT_FREE);
			consumer_free(c);
			return -EPROTO;
		}
	}
	open_done(c);
	*out = c;
	return 0;
}

SHMRING_API int shmring_group_open(struct shmring *r, const char *name, unsigned flags,
				   struct shmring_consumer **out)
{
	if (!r || !name || !out || (flags & ~(unsigned)SHMRING_START_OLDEST))
		return -EINVAL;
	size_t n = strnlen(name, GROUP_NAME_MAX + 1);
	if (n == 0)
		return -EINVAL;
	if (n > GROUP_NAME_MAX)
		return -ENAMETOOLONG;
	if (!r->writable)
		return -EACCES;
	if (r->policy != SHMRING_POLICY_BLOCK)
		return -ENOTSUP;
	struct shmring_consumer *c = consumer_new(r);
	if (!c)
		return -ENOMEM;
	int rc = group_attach(c, name, flags);
	if (rc) {
		consumer_free(c);
		return rc;
	}
	open_done(c);
	*out = c;
	return 0;
}

SHMRING_API int shmring_consumer_close(struct shmring_consumer *c)
{
	if (!c)
		return -EINVAL;
	if (c->busy)
		return -EBUSY;
	notify_disarm(c);
	if (c->grp) {
		group_leave(c);
	} else {
		/* Pairs with load_acquire(state) in scan_min(): our reads are
		 * done. */
		store_release(&c->slot->state, SLOT_FREE);
		wake_producer(c->cs, NULL);
	}
	endpoint_del(c->r, c->opener);
	consumer_free(c); /* drops the slot's lock, after the slot is FREE */
	return 0;
}

/*
 * Is the producer dead?  A producer that is attached (owner set, not closed)
 * holds the lock on the producer byte while it lives.  Slow path.
 */
int producer_gone(struct shmring_consumer *c)
{
	if (!c->r->live || load_acquire(&c->prod->closed) || !load_acquire(&c->prod->owner))
		return 0;
	return !live_held(c->r, c->r->g.prod_off);
}

/*
 * Called when there is nothing to read (c->cached_tail is the tail just
 * read): once the tail has stood still for LIVE_CHECK_NS, see whether the
 * producer died.  Returns 1 if it did: the caller reports -EPIPE, as after
 * a close.  A consumer that keeps up, and so finds the ring empty all the
 * time, checks only when the traffic stops.
 */
int idle_check(struct shmring_consumer *c)
{
	if (c->prod_gone) {
		/* Re-checked: a new producer may have taken over. */
		c->prod_gone = producer_gone(c);
		return c->prod_gone;
	}
	if ((++c->eagain & 255) != 1)
		return 0;
	uint64_t t = now_ns();
	if (!stood_still(&c->tail_still, c->cached_tail, t, LIVE_CHECK_NS))
		return 0;
	c->tail_still.since = t; /* the next check LIVE_CHECK_NS from now */
	c->prod_gone = producer_gone(c);
	return c->prod_gone;
}

SHMRING_API int shmring_lost(const struct shmring_consumer *c, uint64_t *lost)
{
	if (!c || !lost)
		return -EINVAL;
	*lost = c->lost;
	return 0;
}

/* Lapped (OVERWRITE): everything from cpos to head is gone.  Counts it, moves
 * to the oldest intact record and drops what was peeked: -EOVERFLOW.  If no
 * message was between them, only a pad (layout.h) was overwritten: moves
 * past it, keeps what was peeked (it lies past head) and returns 0. */
static int lapped(struct shmring_consumer *c)
{
	uint64_t h, hs, t, ts;
	int rc = prod_snapshot(c->prod, &h, &hs, &t, &ts);
	if (rc) /* a live producer is mid-update; a dead one left it to the
		 * producer that takes over, which repairs it */
		return live_held(c->r, c->r->g.prod_off) ? rc : -EPIPE;
	if (h < c->cpos || h > t || hs < c->cseq || hs - c->cseq > h - c->cpos || (h & 7))
		return -EPROTO;
	if (hs == c->cseq) {
		if (c->rpos < h)
			c->rpos = h;
		c->cpos = h;
		store_release(&c->slot->pos, h);
		return 0;
	}
	c->lost += hs - c->cseq;
	c->rpos = c->cpos = h;
	c->seq = c->cseq = hs;
	c->cached_tail = t;
	c->npeeked = 0;
	store_release(&c->slot->pos, h);
	return -EOVERFLOW;
}

/* A record of payload length n fits in what is published (avail bytes from
 * the read position, at most the capacity); a pad's length, UINT32_MAX, is
 * over any max_message (at most 2^31 - 8), so a pad never fits. */
static inline int record_fits(const struct shmring_consumer *c, uint32_t n, uint64_t avail)
{
	return avail <= c->cap && n <= c->max_message && SHMRING_RECORD_SIZE(n) <= avail;
}

/* next_record() when the fast path there does not apply. */
static int next_record_slow(struct shmring_consumer *c, const void **data, size_t *len)
{
	for (;;) {
		if (c->rpos == c->cached_tail) {
			/* Pairs with store_release(tail) in the producer's
			 * commit(). */
			c->cached_tail = load_acquire(&c->prod->tail);
			if (c->rpos == c->cached_tail) {
				/* Pairs with store_release(closed) in
				 * shmring_producer_shutdown(); then re-read
				 * the tail, which was stored before closed. */
				if (!load_acquire(&c->prod->closed) && !idle_check(c))
					return -EAGAIN;
				/* Closed, or gone (or closed while we
				 * looked): what it published first. */
				c->cached_tail = load_acquire(&c->prod->tail);
				if (c->rpos == c->cached_tail)
					return -EPIPE;
			}
		}
		uint64_t avail = c->cached_tail - c->rpos;
		const struct shm_rec *rec =
			(const struct shm_rec *)(c->data + (c->rpos & c->mask));
		/* Read the header once: a corrupt producer could change it
		 * under us. */
		uint32_t n = *(const volatile uint32_t *)&rec->len;
		if (c->overwrite) {
			uint32_t s = *(const volatile uint32_t *)&rec->seq;
			fence_acquire(); /* the header read, then head */
			if (load_relaxed(&c->prod->head) > c->cpos) {
				int rc = lapped(c);
				if (rc)
					return rc;
				continue; /* only a pad was lost: read again */
			}
			if (s != (uint32_t)c->seq)
				return -EPROTO;
		}
		if (n == REC_PAD) {
			/* The rest of the lap; published with the record
			 * after it, so never the last thing published. */
			uint64_t rest = c->cap - (c->rpos & c->mask);
			if (avail > c->cap || rest >= avail)
				return -EPROTO;
			c->rpos += rest;
			continue;
		}
		if (!record_fits(c, n, avail))
			return -EPROTO;
		*data = rec + 1;
		*len = n;
		return 0;
	}
}

/* The next record, not yet consumed; 0, -EAGAIN, -EPIPE, -EPROTO, or
 * -EOVERFLOW (overwrite: lapped).  Inline, the common case: a record that
 * is already known to be published (before the cached tail), in a ring
 * that is not OVERWRITE, that record_fits(); a pad and everything else go
 * to next_record_slow(). */
static inline int next_record(struct shmring_consumer *c, const void **data, size_t *len)
{
	uint64_t avail = c->cached_tail - c->rpos;
	if (__builtin_expect(avail != 0 && !c->overwrite, 1)) {
		const struct shm_rec *rec =
			(const struct shm_rec *)(c->data + (c->rpos & c->mask));
		uint32_t n = *(const volatile uint32_t *)&rec->len;
		if (__builtin_expect(record_fits(c, n, avail), 1)) {
			*data = rec + 1;
			*len = n;
			return 0;
		}
	}
	return next_record_slow(c, data, len);
}

/* Consumes the record next_record() returned. */
static inline void take(struct shmring_consumer *c, size_t len)
{
	c->rpos += SHMRING_RECORD_SIZE(len);
	c->seq++;
	c->npeeked++;
}

static inline int release(struct shmring_consumer *c)
{
	int n = (int)c->npeeked;
	if (c->rpos == c->cpos)
		return n;
	if (c->overwrite) {
		/* Everything read since cpos was intact if head has not passed
		 * cpos after the reads.  Pairs with advance_head(). */
		fence_acquire();
		if (load_relaxed(&c->prod->head) > c->cpos) {
			int rc = lapped(c);
			if (rc)
				return rc;
		}
	}
	/* recv_quick() repeats this for one record of a BLOCK ring: sharing
	 * it through a helper cost a one-thread send and receive 1.3 ns. */
	c->npeeked = 0;
	c->cpos = c->rpos;
	c->cseq = c->seq;
	/* Pairs with load_acquire(pos) in the producer's scan_min(): our reads
	 * of the released records happen before it reuses their room. */
	store_release(&c->slot->pos, c->rpos);
	if (!c->overwrite)
		wake_producer(c->cs, &c->quiet);
	return n;
}

static int peek_batch(struct shmring_consumer *c, struct shmring_msg *msgs, unsigned max)
{
	if (c->grp)
		return group_peek(c, msgs, max);
	unsigned k = 0;
	while (k < max) {
		const void *d = NULL;
		size_t n = 0;
		int rc = next_record(c, &d, &n);
		if (rc) {
			/* Return what was good; the error comes next call.
			 * Lapped: what was peeked is gone too. */
			if (k && rc != -EOVERFLOW)
				break;
			return rc;
		}
		take(c, n);
		msgs[k].data = d;
		msgs[k].len = n;
		k++;
	}
	return (int)k;
}

/*
 * Copies up to max records into buf, each at an 8-byte aligned offset, and
 * releases them with one cursor update.  -EMSGSIZE (msgs[0].len = the size
 * needed) if the first does not fit.
 */
static int recv_batch(struct shmring_consumer *c, void *buf, size_t buflen,
		      struct shmring_msg *msgs, unsigned max)
{
	if (c->grp) {
		int k = group_recv(c, buf, buflen, msgs, max);
		if (k > 0)
			group_release(c); /* and what was peeked before */
		return k;
	}
	size_t off = 0;
	unsigned k = 0;
	while (k < max) {
		const void *d = NULL;
		size_t n = 0;
		int rc = next_record(c, &d, &n);
		if (rc) {
			if (k && (rc == -EAGAIN || rc == -EPIPE))
				break;
			if (rc == -EOVERFLOW || !k)
				return rc;
			break;
		}
		if (off > buflen || n > buflen - off) {
			if (k)
				break;
			msgs[0].len = n;
			return -EMSGSIZE;
		}
		if (n)
			copy_out((uint8_t *)buf + off, d, n);
		msgs[k].data = buf ? (uint8_t *)buf + off : NULL;
		msgs[k].len = n;
		take(c, n);
		k++;
		off += (n + 7) & ~(size_t)7; /* may pass buflen: checked above */
	}
	int rc = release(c);
	if (rc < 0)
		return rc; /* lapped while copying: the copies are not trusted */
	return (int)k;
}

/*
 * The copy in line 0 of a BLOCK ring (layout.h), if it is of the record at
 * the read position, which is published (avail bytes from it) and fits
 * `buf`: copies its payload to `buf` and returns 1 with its length in *n.
 * Else 0, having written nothing: the record is read from the data area.
 */
static inline __attribute__((always_inline)) int
copy_from_line(const struct shmring_consumer *c, void *buf, size_t buflen, uint64_t avail,
	       uint32_t *n)
{
	struct shm_prod *prod = c->prod;
	/* Pairs with store_release(istart) in copy_to_line(). */
	if (load_acquire(&prod->istart) != c->rpos)
		return 0;
	uint32_t len = load_relaxed(&prod->ilen);
	if (len > INLINE_MAX || len > buflen || !record_fits(c, len, avail))
		return 0;
	uint64_t w[INLINE_MAX / 8];
	for (uint32_t i = 0; i < (len + 7) / 8; i++)
		w[i] = load_relaxed(&prod->ipay[i]);
	/* The payload, then istart again: pairs with the fence after
	 * copy_to_line()'s first store, so that a copy overwritten while we
	 * read it shows as istart moved. */
	fence_acquire();
	if (load_relaxed(&prod->istart) != c->rpos)
		return 0;
	copy_out(buf, w, len);
	*n = len;
	return 1;
}

/*
 * The common case of a one-message receive (recv_one(), and read_batch()
 * after each wait), inline: a broadcast consumer of a ring that is not
 * OVERWRITE, with nothing peeked, whose next record is published (by
 * the cached tail, or by the tail loaded once here) and fits `buf`.  Copies
 * it out and releases it, as recv_batch() and release() would for one
 * message, without their loop, batch array and calls: an 8-byte send and
 * receive in one thread took 266 instructions instead of 383
 * (perf/RESULTS.md, change 26).  In a ring with SHMRING_INLINE_SMALL,
 * the tail loaded here may come with a copy of the record in its line
 * (copy_from_line()).  Returns 1 if it took a record, 0
 * for the general path (nothing published, a pad, a record that does not
 * fit, or any other case), having changed at most the cached tail.
 */
static inline __attribute__((always_inline)) int
recv_quick(struct shmring_consumer *c, void *buf, size_t buflen, size_t *len)
{
	if (c->grp || c->overwrite || c->npeeked)
		return 0;
	uint64_t avail = c->cached_tail - c->rpos;
	uint32_t n;
	if (!avail) {
		/* Pairs with store_release(tail) in the producer's commit(). */
		c->cached_tail = load_acquire(&c->prod->tail);
		avail = c->cached_tail - c->rpos;
		if (!avail)
			return 0;
		/* Just loaded, so the tail's line is here: the record may be
		 * too (layout.h). */
		if (c->inline_small && copy_from_line(c, buf, buflen, avail, &n))
			goto took;
	}
	const struct shm_rec *rec = (const struct shm_rec *)(c->data + (c->rpos & c->mask));
	n = *(const volatile uint32_t *)&rec->len; /* read once */
	if (!record_fits(c, n, avail) || n > buflen)
		return 0;
	copy_out(buf, rec + 1, n);
took:
	c->rpos += SHMRING_RECORD_SIZE(n);
	c->seq++;
	c->cpos = c->rpos;
	c->cseq = c->seq;
	/* As in release(): our reads of the record happen before the
	 * producer reuses its room. */
	store_release(&c->slot->pos, c->rpos);
	wake_producer(c->cs, &c->quiet);
	*len = n;
	return 1;
}

/* A batch read, copying (recv) or in place (peek); non-blocking, or waiting
 * until `deadline` when `wait`. */
static int read_batch(struct shmring_consumer *c, void *buf, size_t buflen,
		      struct shmring_msg *msgs, unsigned max, int copy,
		      const struct timespec *deadline, int wait)
{
	for (int waited = 0;; waited = 1) {
		int rc;
		/* Before the first wait, recv_one() has tried the fast path;
		 * shmring_recv_batch() goes the general way. */
		if (waited && copy && max == 1 && recv_quick(c, buf, buflen, &msgs[0].len)) {
			msgs[0].data = buf;
			return 1;
		}
		rc = copy ? recv_batch(c, buf, buflen, msgs, max) : peek_batch(c, msgs, max);
		if (rc != -EAGAIN || !wait)
			return rc;
		/* Also bounds a loop where the wait sees data that the read
		 * cannot take yet (an overwrite snapshot in progress). */
		if (deadline_passed(deadline))
			return -ETIMEDOUT;
		rc = wait_for_data(c, deadline);
		if (rc)
			return rc;
	}
}

/* One message through the batch functions: peek (wait) or recv (wait). */
static int peek_one(struct shmring_consumer *c, const void **data, size_t *len,
		    const struct timespec *deadline, int wait)
{
	struct shmring_msg m;
	ENTER(c);
	int rc = read_batch(c, NULL, 0, &m, 1, 0, deadline, wait);
	leave_consumer(c);
	if (rc < 0)
		return rc;
	*data = m.data;
	*len = m.len;
	return 0;
}

static int recv_one(struct shmring_consumer *c, void *buf, size_t buflen, size_t *len,
		    const struct timespec *deadline, int wait)
{
	struct shmring_msg m;
	ENTER(c);
	if (recv_quick(c, buf, buflen, len)) {
		leave_consumer(c);
		return 0;
	}
	int rc = read_batch(c, buf, buflen, &m, 1, 1, deadline, wait);
	leave_consumer(c);
	if (rc < 0 && rc != -EMSGSIZE)
		return rc;
	*len = m.len;
	return rc < 0 ? rc : 0;
}

SHMRING_API int shmring_peek(struct shmring_consumer *c, const void **data, size_t *len)
{
	if (!c || !data || !len)
		return -EINVAL;
	return peek_one(c, data, len, NULL, 0);
}

SHMRING_API int shmring_peek_wait(struct shmring_consumer *c, const void **data, size_t *len,
				  const struct timespec *deadline)
{
	if (!c || !data || !len || !valid_deadline(deadline))
		return -EINVAL;
	return peek_one(c, data, len, deadline, 1);
}

SHMRING_API int shmring_peek_batch(struct shmring_consumer *c, struct shmring_msg *msgs,
				   unsigned max)
{
	if (!c || !msgs || !max)
		return -EINVAL;
	ENTER(c);
	int rc = read_batch(c, NULL, 0, msgs, max, 0, NULL, 0);
	leave_consumer(c);
	return rc;
}

SHMRING_API int shmring_peek_batch_wait(struct shmring_consumer *c, struct shmring_msg *msgs,
					unsigned max, const struct timespec *deadline)
{
	if (!c || !msgs || !max || !valid_deadline(deadline))
		return -EINVAL;
	ENTER(c);
	int rc = read_batch(c, NULL, 0, msgs, max, 0, deadline, 1);
	leave_consumer(c);
	return rc;
}

SHMRING_API int shmring_release(struct shmring_consumer *c)
{
	if (!c)
		return -EINVAL;
	ENTER(c);
	int rc = c->grp ? group_release(c) : release(c);
	leave_consumer(c);
	return rc;
}

SHMRING_API int shmring_recv(struct shmring_consumer *c, void *buf, size_t buflen, size_t *len)
{
	if (!c || !len || (!buf && buflen))
		return -EINVAL;
	return recv_one(c, buf, buflen, len, NULL, 0);
}

SHMRING_API int shmring_recv_wait(struct shmring_consumer *c, void *buf, size_t buflen,
				  size_t *len, const struct timespec *deadline)
{
	if (!c || !len || (!buf && buflen) || !valid_deadline(deadline))
		return -EINVAL;
	return recv_one(c, buf, buflen, len, deadline, 1);
}

SHMRING_API int shmring_recv_batch(struct shmring_consumer *c, void *buf, size_t buflen,
				   struct shmring_msg *msgs, unsigned max)
{
	if (!c || !msgs || !max || (!buf && buflen))
		return -EINVAL;
	ENTER(c);
	int rc = read_batch(c, buf, buflen, msgs, max, 1, NULL, 0);
	leave_consumer(c);
	return rc;
}

SHMRING_API int shmring_recv_batch_wait(struct shmring_consumer *c, void *buf, size_t buflen,
					struct shmring_msg *msgs, unsigned max,
					const struct timespec *deadline)
{
	if (!c || !msgs || !max || (!buf && buflen) || !valid_deadline(deadline))
		return -EINVAL;
	ENTER(c);
	int rc = read_batch(c, buf, buflen, msgs, max, 1, deadline, 1);
	leave_consumer(c);
	return rc;
}

SHMRING_API int shmring_consumer_interrupt(struct shmring_consumer *c)
{
	if (!c)
		return -EINVAL;
	store_release(&c->intr, 1);
	futex_bump_wake(consumer_word(c));
	return 0;
}
