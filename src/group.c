/* SPDX-License-Identifier: MIT */
/*
 * Consumer groups: members share one cursor (a KIND_GROUP slot) and each
 * record goes to exactly one member.
 *
 * Claiming.  A member reads the group cursor p, reads the record at p, and
 * moves the cursor to the record's end with a compare-and-swap.  Positions
 * never wrap, so a CAS that succeeds proves the cursor stayed at p all along:
 * the producer could not overwrite the record meanwhile, and what was read is
 * whole.  A member that dies before its CAS has claimed nothing.
 *
 * Zero-copy.  After the CAS the cursor no longer protects the claimed
 * record, so each member also owns a KIND_MEMBER slot whose pos is a hold:
 * it stores p there before the CAS and HOLD_NONE on release.  The producer
 * scans cursors first and holds second (see scan_min()).
 *
 * Membership.  `members` packs generation << 32 | count.  Joining is a CAS
 * from a count above 0, so a joiner can never revive a group that is being
 * freed, and the generation (bumped when the last member leaves) makes a
 * stale view of a reused slot fail.  Creating a group takes `glock` in the
 * shared line so that two creators of one name cannot both create it; the
 * lock is held for a few stores, and a lock left by a dead process is taken
 * over.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static uint32_t slot_index(const struct shmring *r, const struct shm_slot *s)
{
	return (uint32_t)(s - r->slots);
}

static void glock_take(struct shm_cshared *cs)
{
	uint32_t me = (uint32_t)getpid();
	for (unsigned i = 0;; i++) {
		uint32_t holder = 0;
		if (cas32(&cs->glock, &holder, me))
			return;
		if (i >= 64) {
			/* Held long: is the holder alive? */
			if (holder != me && kill((pid_t)holder, 0) < 0 && errno == ESRCH &&
			    cas32(&cs->glock, &holder, me))
				return;
			struct timespec ts = { 0, 100000 };
			nanosleep(&ts, NULL);
		} else {
			cpu_relax();
		}
	}
}

static void glock_drop(struct shm_cshared *cs)
{
	store_release(&cs->glock, 0);
}

/* Joins the live group named `name`, if there is one. */
static struct shm_slot *find_join(struct shmring *r, const char *name)
{
	char want[GROUP_NAME_MAX + 1] = {0}, have[GROUP_NAME_MAX + 1];
	strncpy(want, name, GROUP_NAME_MAX);
	uint32_t hw = load_acquire(&r->cs->hiwater);
	if (hw > r->g.nslots)
		hw = r->g.nslots;
	for (uint32_t i = 0; i < hw; i++) {
		struct shm_slot *g = &r->slots[i];
		/* Pairs with store_release(members) in create(): the name and
		 * kind were written before. */
		uint64_t w = load_acquire(&g->members);
		while ((uint32_t)w != 0 && (uint32_t)w != UINT32_MAX) {
			if (load_relaxed(&g->kind) != KIND_GROUP)
				break;
			memcpy(have, (const void *)g->name, sizeof(have));
			if (memcmp(have, want, sizeof(want)) != 0)
				break;
			if (cas64(&g->members, &w, w + 1))
				return g;
			/* w reloaded: a join or leave raced us; retry. */
		}
	}
	return NULL;
}

/* Creates the group (glock held). */
static int create(struct shmring_consumer *c, const char *name, unsigned flags,
		  struct shm_slot **out)
{
	struct shmring *r = c->r;
	struct shm_slot *g;
	int rc = claim_slot(r, &g);
	if (rc)
		return rc;
	store_relaxed(&g->kind, KIND_GROUP);
	memset(g->name, 0, sizeof(g->name));
	strncpy(g->name, name, GROUP_NAME_MAX);
	store_relaxed(&g->gsleep, 0);
	uint64_t pos;
	attach_position(r, g, flags, &pos);
	/* Joinable only now, with its cursor settled. */
	uint64_t gen = load_relaxed(&g->members) >> 32;
	store_release(&g->members, gen << 32 | 1);
	*out = g;
	return 0;
}

int group_attach(struct shmring_consumer *c, const char *name, unsigned flags)
{
	struct shmring *r = c->r;
	struct shm_slot *m, *g;
	int rc = claim_slot(r, &m);
	if (rc)
		return rc;
	store_relaxed(&m->kind, KIND_MEMBER);
	store_relaxed(&m->pos, HOLD_NONE);
	store_release(&m->state, SLOT_ACTIVE);
	g = find_join(r, name);
	if (!g) {
		glock_take(r->cs);
		g = find_join(r, name);
		rc = g ? 0 : create(c, name, flags, &g);
		glock_drop(r->cs);
		if (rc) {
			store_release(&m->state, SLOT_FREE);
			return rc;
		}
	}
	store_relaxed(&m->group, slot_index(r, g));
	c->slot = m;
	c->grp = g;
	c->cached_tail = load_acquire(&r->prod->tail);
	return 0;
}

void group_leave(struct shmring_consumer *c)
{
	struct shm_slot *g = c->grp;
	/* Our hold and our slot go first: pairs with scan_min(). */
	store_release(&c->slot->state, SLOT_FREE);
	uint64_t w = load_acquire(&g->members);
	for (;;) {
		uint32_t n = (uint32_t)w;
		uint64_t next = n > 1 ? w - 1 : ((w >> 32) + 1) << 32;
		if (cas64(&g->members, &w, next))
			break;
	}
	if ((uint32_t)w == 1) {
		store_release(&g->state, SLOT_FREE);
	} else if (load_relaxed(&g->gsleep)) {
		/* We may have taken a wake-up meant for the group: pass it on. */
		fence_full();
		atomic_fetch_add_explicit(&g->futex, 1, memory_order_release);
		futex_wake(&g->futex, 1);
	}
	wake_producer(c->cs);
}

int group_has_data(const struct shmring_consumer *c)
{
	/* Pairs with the producer's store_release(tail) and (closed). */
	return load_acquire(&c->prod->tail) != load_acquire(&c->grp->pos) ||
	       load_acquire(&c->prod->closed);
}

/* The group cursor and the tail; 0, -EAGAIN, -EPIPE or -EPROTO. */
static int cursor(struct shmring_consumer *c, uint64_t *pp, uint64_t *avail)
{
	for (;;) {
		uint64_t p = load_acquire(&c->grp->pos);
		if (p == c->cached_tail || c->cached_tail - p > c->cap) {
			c->cached_tail = load_acquire(&c->prod->tail);
			if (p == c->cached_tail) {
				if (!load_acquire(&c->prod->closed))
					return -EAGAIN;
				c->cached_tail = load_acquire(&c->prod->tail);
				if (p == c->cached_tail)
					return -EPIPE;
			}
		}
		*pp = p;
		*avail = c->cached_tail - p;
		if (*avail <= c->cap)
			return 0;
		/* A cursor read long before the tail may be a lap behind it:
		 * only corrupt if the cursor has not moved since. */
		if (load_acquire(&c->grp->pos) == p)
			return -EPROTO;
	}
}

/* Length of the record at p, or -EPROTO if it cannot be one. */
static int64_t rec_len(const struct shmring_consumer *c, uint64_t p, uint64_t avail)
{
	const struct shm_rec *rec = (const struct shm_rec *)(c->data + (p & c->mask));
	uint32_t n = *(const volatile uint32_t *)&rec->len;
	if (n > c->max_message || SHMRING_RECORD_SIZE(n) > avail)
		return -EPROTO;
	return n;
}

int group_peek(struct shmring_consumer *c, struct shmring_msg *msgs, unsigned max)
{
	int held = 0;
	for (;;) {
		uint64_t p, avail;
		int rc = cursor(c, &p, &avail);
		if (rc) {
			if (held) /* a hold for a claim that did not happen */
				store_release(&c->slot->pos, HOLD_NONE);
			return rc;
		}
		uint64_t end = p;
		unsigned k = 0;
		while (k < max && end - p < avail) {
			int64_t n = rec_len(c, end, avail - (end - p));
			if (n < 0)
				break;
			msgs[k].data = c->data + (end & c->mask) + SHMRING_RECORD_HDR;
			msgs[k].len = (size_t)n;
			end += SHMRING_RECORD_SIZE(n);
			k++;
		}
		if (k == 0) {
			if (load_acquire(&c->grp->pos) != p)
				continue; /* read a stale record: retry */
			if (held)
				store_release(&c->slot->pos, HOLD_NONE);
			return -EPROTO;
		}
		if (!c->holding) {
			/* Ordered before the CAS by its release. */
			store_relaxed(&c->slot->pos, p);
			held = 1;
		}
		if (cas64(&c->grp->pos, &p, end)) {
			c->holding = 1;
			c->npeeked += k;
			return (int)k;
		}
	}
}

int group_release(struct shmring_consumer *c)
{
	int n = (int)c->npeeked;
	c->npeeked = 0;
	if (c->holding) {
		c->holding = 0;
		/* Pairs with load_acquire(pos) in scan_min(). */
		store_release(&c->slot->pos, HOLD_NONE);
		wake_producer(c->cs);
	}
	return n;
}

int group_recv(struct shmring_consumer *c, void *buf, size_t buflen,
	       struct shmring_msg *msgs, unsigned max)
{
	for (;;) {
		uint64_t p, avail;
		int rc = cursor(c, &p, &avail);
		if (rc)
			return rc;
		uint64_t end = p;
		size_t off = 0;
		unsigned k = 0;
		int stale = 0;
		while (k < max && end - p < avail) {
			int64_t n = rec_len(c, end, avail - (end - p));
			if (n < 0) {
				stale = k == 0;
				break;
			}
			if (off > buflen || (size_t)n > buflen - off) {
				if (k)
					break;
				if (load_acquire(&c->grp->pos) != p) {
					stale = 1;
					break;
				}
				msgs[0].len = (size_t)n;
				return -EMSGSIZE;
			}
			if (n)
				memcpy((uint8_t *)buf + off,
				       c->data + (end & c->mask) + SHMRING_RECORD_HDR, (size_t)n);
			msgs[k].data = (uint8_t *)buf + off;
			msgs[k].len = (size_t)n;
			off += ((size_t)n + 7) & ~(size_t)7;
			end += SHMRING_RECORD_SIZE(n);
			k++;
		}
		if (k == 0) {
			if (stale || load_acquire(&c->grp->pos) != p)
				continue;
			return -EPROTO;
		}
		/* The claim: succeeds only if no other member moved the
		 * cursor, so the copies are of intact records. */
		if (cas64(&c->grp->pos, &p, end)) {
			wake_producer(c->cs);
			return (int)k;
		}
	}
}
