/* SPDX-License-Identifier: MIT */
/*
 * Broadcast consumers: attach, peek, release, recv.  The hot path reads the
 * shared tail only when the private copy says the ring is drained, and
 * validates every record header against the tail and the ring's limits
 * before using it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/*
 * Claims a free slot and publishes a start position.  The producer may be
 * scanning at the same time, and only protects data at or above the cursors
 * it sees.  So: make the slot ACTIVE with a candidate position, full fence,
 * then read `reclaim`; if the producer published a higher reclaim, move up to
 * it.  Either the producer's second scan (after its own fence) sees this
 * slot, or we see its reclaim: data at or above the final position is never
 * overwritten while we hold it.
 */
static int consumer_attach(struct shmring_consumer *c, unsigned flags)
{
	struct shmring *r = c->r;
	uint32_t i;

	for (i = 0; i < r->g.nslots; i++) {
		uint32_t expect = SLOT_FREE;
		if (load_relaxed(&r->slots[i].state) == SLOT_FREE &&
		    cas32(&r->slots[i].state, &expect, SLOT_CLAIMED))
			break;
	}
	if (i == r->g.nslots)
		return -EUSERS;
	struct shm_slot *s = &r->slots[i];
	uint32_t hw = load_relaxed(&r->cs->hiwater);
	while (hw < i + 1 && !cas32(&r->cs->hiwater, &hw, i + 1))
		;
	store_relaxed(&s->kind, KIND_BROADCAST);
	store_relaxed(&s->owner, (uint32_t)getpid());
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
	if (rec > pos) {
		pos = rec;
		store_release(&s->pos, pos);
	}
	c->slot = s;
	c->rpos = c->cpos = c->cached_tail = pos;
	return 0;
}

SHMRING_API int shmring_consumer_open(struct shmring *r, unsigned flags,
				      struct shmring_consumer **out)
{
	if (!r || !out || (flags & ~(unsigned)SHMRING_START_OLDEST))
		return -EINVAL;
	if (!r->writable)
		return -EACCES; /* the cursor table is mapped read-only */
	int saved = errno;
	struct shmring_consumer *c = calloc(1, sizeof(*c));
	errno = saved;
	if (!c)
		return -ENOMEM;
	c->r = r;
	c->prod = r->prod;
	c->cs = r->cs;
	c->data = r->data;
	c->cap = r->g.capacity;
	c->mask = r->g.capacity - 1;
	c->max_message = r->g.max_message;
	int rc = consumer_attach(c, flags);
	if (rc) {
		free(c);
		return rc;
	}
	endpoint_add(r, &c->opener);
	*out = c;
	return 0;
}

SHMRING_API int shmring_consumer_close(struct shmring_consumer *c)
{
	if (!c)
		return -EINVAL;
	/* Pairs with load_acquire(state) in scan_min(): our reads are done. */
	store_release(&c->slot->state, SLOT_FREE);
	wake_producer(c->cs);
	endpoint_del(c->r, c->opener);
	free(c);
	return 0;
}

static inline int peek(struct shmring_consumer *c, const void **data, size_t *len)
{
	if (c->rpos == c->cached_tail) {
		/* Pairs with store_release(tail) in the producer's commit(). */
		c->cached_tail = load_acquire(&c->prod->tail);
		if (c->rpos == c->cached_tail) {
			/* Pairs with store_release(closed) in
			 * shmring_producer_shutdown(); then re-read the tail,
			 * which was stored before closed. */
			if (!load_acquire(&c->prod->closed))
				return -EAGAIN;
			c->cached_tail = load_acquire(&c->prod->tail);
			if (c->rpos == c->cached_tail)
				return -EPIPE;
		}
	}
	uint64_t avail = c->cached_tail - c->rpos;
	if (avail > c->cap)
		return -EPROTO;
	const struct shm_rec *rec = (const struct shm_rec *)(c->data + (c->rpos & c->mask));
	/* Read the length once: a corrupt producer could change it under us. */
	uint32_t n = *(const volatile uint32_t *)&rec->len;
	uint64_t sz = SHMRING_RECORD_SIZE(n);
	if (n > c->max_message || sz > avail)
		return -EPROTO;
	*data = rec + 1;
	*len = n;
	c->rpos += sz;
	c->npeeked++;
	return 0;
}

SHMRING_API int shmring_peek(struct shmring_consumer *c, const void **data, size_t *len)
{
	if (!c || !data || !len)
		return -EINVAL;
	return peek(c, data, len);
}

SHMRING_API int shmring_peek_wait(struct shmring_consumer *c, const void **data, size_t *len,
				  const struct timespec *deadline)
{
	if (!c || !data || !len)
		return -EINVAL;
	if (!valid_deadline(deadline))
		return -EINVAL;
	for (;;) {
		int rc = peek(c, data, len);
		if (rc != -EAGAIN)
			return rc;
		rc = wait_for_data(c, deadline);
		if (rc)
			return rc;
	}
}

static inline int release(struct shmring_consumer *c)
{
	int n = (int)c->npeeked;
	if (c->rpos == c->cpos)
		return n;
	c->npeeked = 0;
	c->cpos = c->rpos;
	/* Pairs with load_acquire(pos) in the producer's scan_min(): our reads
	 * of the released records happen before it reuses their room. */
	store_release(&c->slot->pos, c->rpos);
	wake_producer(c->cs);
	return n;
}

SHMRING_API int shmring_release(struct shmring_consumer *c)
{
	if (!c)
		return -EINVAL;
	return release(c);
}

static inline int recv_copy(struct shmring_consumer *c, void *buf, size_t buflen, size_t *len)
{
	const void *d;
	size_t n;
	int rc = peek(c, &d, &n);
	if (rc)
		return rc;
	*len = n;
	if (n > buflen) {
		/* Leave the message unread. */
		c->rpos -= SHMRING_RECORD_SIZE(n);
		c->npeeked--;
		return -EMSGSIZE;
	}
	if (n)
		memcpy(buf, d, n);
	release(c);
	return 0;
}

SHMRING_API int shmring_recv(struct shmring_consumer *c, void *buf, size_t buflen, size_t *len)
{
	if (!c || !len || (!buf && buflen))
		return -EINVAL;
	return recv_copy(c, buf, buflen, len);
}

SHMRING_API int shmring_recv_wait(struct shmring_consumer *c, void *buf, size_t buflen,
				  size_t *len, const struct timespec *deadline)
{
	if (!c || !len || (!buf && buflen))
		return -EINVAL;
	if (!valid_deadline(deadline))
		return -EINVAL;
	for (;;) {
		int rc = recv_copy(c, buf, buflen, len);
		if (rc != -EAGAIN)
			return rc;
		rc = wait_for_data(c, deadline);
		if (rc)
			return rc;
	}
}
