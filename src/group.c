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

/* The group-creation lock: an OFD lock on the consumer area's first byte,
 * which the kernel drops if its holder dies; without /proc, a pid in the
 * shared line. */
static void glock_take(struct shmring_consumer *c)
{
	struct shm_cshared *cs = c->cs;
	if (c->lockfd >= 0) {
		live_lock_wait(c->lockfd, c->r->g.ctab_off);
		return;
	}
	uint32_t me = (uint32_t)getpid();
	for (unsigned i = 0;; i++) {
		uint32_t holder = 0;
		if (cas32(&cs->glock, &holder, me))
			return;
		if (i >= 64) {
			/* Held long: is the holder alive? */
			int saved = errno;
			if (holder != me && kill((pid_t)holder, 0) < 0 && errno == ESRCH &&
			    cas32(&cs->glock, &holder, me)) {
				errno = saved;
				return;
			}
			errno = saved;
			struct timespec ts = { 0, 100000 };
			nanosleep(&ts, NULL);
		} else {
			cpu_relax();
		}
	}
}

static void glock_drop(struct shmring_consumer *c)
{
	if (c->lockfd >= 0)
		live_unlock(c->lockfd, c->r->g.ctab_off);
	else
		store_release(&c->cs->glock, 0);
}

/* Joins the live group named `name`, if there is one.  The member's slot
 * names the group before the join, so that group_reap() counts it. */
static struct shm_slot *find_join(struct shmring *r, const char *name, struct shm_slot *m)
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
			store_relaxed(&m->group, i);
			if (cas64(&g->members, &w, w + 1))
				return g;
			/* w reloaded: a join or leave raced us; retry. */
		}
	}
	return NULL;
}

/* Creates the group (glock held). */
static int create(struct shmring_consumer *c, const char *name, unsigned flags,
		  struct shm_slot *m, struct shm_slot **out)
{
	struct shmring *r = c->r;
	struct shm_slot *g;
	int rc = claim_slot(r, c->lockfd, &g);
	if (rc)
		return rc;
	uint32_t gi = (uint32_t)(g - r->slots);
	store_relaxed(&g->kind, KIND_GROUP);
	memset(g->name, 0, sizeof(g->name));
	strncpy(g->name, name, GROUP_NAME_MAX);
	store_relaxed(&g->gsleep, 0);
	uint64_t pos;
	attach_position(r, g, flags, &pos);
	store_relaxed(&m->group, gi);
	/* Joinable only now, with its cursor settled. */
	uint64_t gen = load_relaxed(&g->members) >> 32;
	store_release(&g->members, gen << 32 | 1);
	/* A group has no lock of its own: it lives while a member does. */
	live_unlock(c->lockfd, slot_byte(r, gi));
	*out = g;
	return 0;
}

int group_attach(struct shmring_consumer *c, const char *name, unsigned flags)
{
	struct shmring *r = c->r;
	struct shm_slot *m, *g;
	int rc = claim_slot(r, c->lockfd, &m);
	if (rc)
		return rc;
	store_relaxed(&m->kind, KIND_MEMBER);
	store_relaxed(&m->pos, HOLD_NONE);
	store_relaxed(&m->group, UINT32_MAX);
	g = find_join(r, name, m);
	if (!g) {
		glock_take(c);
		g = find_join(r, name, m);
		rc = g ? 0 : create(c, name, flags, m, &g);
		glock_drop(c);
		if (rc) {
			store_release(&m->state, SLOT_FREE);
			live_unlock(c->lockfd, slot_byte(r, (uint32_t)(m - r->slots)));
			return rc;
		}
	}
	/* Pairs with load_acquire(state) in scan_min(). */
	store_release(&m->state, SLOT_ACTIVE);
	c->slot = m;
	c->grp = g;
	c->cached_tail = load_acquire(&r->prod->tail);
	return 0;
}

/* One member fewer; the last one ends the group.  Returns 1 if it ended. */
static int drop(struct shm_slot *g)
{
	uint64_t w = load_acquire(&g->members);
	for (;;) {
		uint32_t n = (uint32_t)w;
		if (n == 0)
			return 0;
		uint64_t next = n > 1 ? w - 1 : ((w >> 32) + 1) << 32;
		if (cas64(&g->members, &w, next))
			break;
	}
	if ((uint32_t)w != 1)
		return 0;
	store_release(&g->state, SLOT_FREE);
	return 1;
}

void group_drop(struct shmring *r, uint32_t gi)
{
	struct shm_slot *g = &r->slots[gi];
	if (load_relaxed(&g->kind) == KIND_GROUP && load_acquire(&g->state) == SLOT_ACTIVE)
		drop(g);
}

/* Is slot j a (live or dead) member of group gi? */
static int member_of(struct shmring *r, uint32_t j, uint32_t gi)
{
	struct shm_slot *s = &r->slots[j];
	return load_acquire(&s->state) != SLOT_FREE && load_relaxed(&s->kind) == KIND_MEMBER &&
	       load_relaxed(&s->group) == gi;
}

/*
 * The group at gi holds the producer back: free its dead members, and end
 * it if none is alive.  The member count is read first: a member that joins
 * later changes it, and then the final CAS fails; one that joined before
 * named the group in its slot, so the scan sees it.  Returns slots freed.
 */
int group_reap(struct shmring *r, uint32_t gi)
{
	struct shm_slot *g = &r->slots[gi];
	uint64_t w = load_acquire(&g->members);
	if ((uint32_t)w == 0)
		return 0;
	uint32_t hw = load_acquire(&r->cs->hiwater);
	if (hw > r->g.nslots)
		hw = r->g.nslots;
	int live = 0, n = 0;
	for (uint32_t j = 0; j < hw; j++)
		if (member_of(r, j, gi) && live_held(r, slot_byte(r, j)))
			live++;
	if (live) {
		for (uint32_t j = 0; j < hw; j++)
			if (member_of(r, j, gi))
				n += reap_slot(r, j);
		return n;
	}
	if (!cas64(&g->members, &w, ((w >> 32) + 1) << 32))
		return 0;
	store_release(&g->state, SLOT_FREE);
	n = 1;
	for (uint32_t j = 0; j < hw; j++) {
		struct shm_slot *s = &r->slots[j];
		uint32_t st = load_acquire(&s->state);
		if (member_of(r, j, gi) && !live_held(r, slot_byte(r, j)) &&
		    cas32(&s->state, &st, SLOT_FREE))
			n++;
	}
	return n;
}

void group_leave(struct shmring_consumer *c)
{
	struct shm_slot *g = c->grp;
	/* Our hold and our slot go first: pairs with scan_min(). */
	store_release(&c->slot->state, SLOT_FREE);
	if (!drop(g) && load_relaxed(&g->gsleep)) {
		/* We may have taken a wake-up meant for the group: pass it on. */
		fence_full();
		atomic_fetch_add_explicit(&g->futex, 1, memory_order_release);
		futex_wake(&g->futex, 1);
	}
	wake_producer(c->cs, NULL);
}

int group_has_data(const struct shmring_consumer *c)
{
	/* Pairs with the producer's store_release(tail) and (closed). */
	return load_acquire(&c->prod->tail) != load_acquire(&c->grp->pos) ||
	       load_acquire(&c->prod->closed) || c->prod_gone;
}

/* The group cursor and the tail; 0, -EAGAIN, -EPIPE or -EPROTO. */
static int cursor(struct shmring_consumer *c, uint64_t *pp, uint64_t *avail)
{
	for (;;) {
		uint64_t p = load_acquire(&c->grp->pos);
		if (p == c->cached_tail || c->cached_tail - p > c->cap) {
			c->cached_tail = load_acquire(&c->prod->tail);
			if (p == c->cached_tail) {
				if (!load_acquire(&c->prod->closed) && !idle_check(c))
					return -EAGAIN;
				/* Closed, or gone (or closed while we looked):
				 * what it published first. */
				c->cached_tail = load_acquire(&c->prod->tail);
				if (p == c->cached_tail)
					return -EPIPE;
			}
		}
		*pp = p;
		*avail = c->cached_tail - p;
		if (*avail <= c->cap && !(p & 7))
			return 0;
		/* A cursor read long before the tail may be a lap behind it:
		 * only corrupt (or misaligned) if it has not moved since. */
		if (load_acquire(&c->grp->pos) == p)
			return -EPROTO;
	}
}

/* Length of the record at *p, or -EPROTO if it cannot be one; avail bytes
 * are published from *p on.  A pad (layout.h) before it moves *p (and
 * avail) past the pad: a pad is published with the record after it. */
static int64_t rec_len(const struct shmring_consumer *c, uint64_t *p, uint64_t avail)
{
	const struct shm_rec *rec = (const struct shm_rec *)(c->data + (*p & c->mask));
	uint32_t n = *(const volatile uint32_t *)&rec->len;
	if (n == REC_PAD) {
		uint64_t rest = c->cap - (*p & c->mask);
		if (rest >= avail)
			return -EPROTO;
		*p += rest;
		avail -= rest;
		rec = (const struct shm_rec *)(c->data + (*p & c->mask));
		n = *(const volatile uint32_t *)&rec->len;
	}
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
			uint64_t at = end;
			int64_t n = rec_len(c, &at, avail - (end - p));
			if (n < 0)
				break;
			end = at;
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
			c->seq += k;
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
		wake_producer(c->cs, &c->quiet);
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
			uint64_t at = end;
			int64_t n = rec_len(c, &at, avail - (end - p));
			if (n < 0)
				break;
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
			end = at;
			if (n)
				copy_out((uint8_t *)buf + off,
					 c->data + (end & c->mask) + SHMRING_RECORD_HDR,
					 (size_t)n);
			msgs[k].data = buf ? (uint8_t *)buf + off : NULL;
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
			c->seq += k;
			wake_producer(c->cs, &c->quiet);
			return (int)k;
		}
	}
}
