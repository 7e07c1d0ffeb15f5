/* SPDX-License-Identifier: MIT */
/* Private handle structures and helpers shared by the library's files. */
#ifndef SHMRING_INTERNAL_H
#define SHMRING_INTERNAL_H

#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "layout.h"
#include "shmring.h"

/*
 * Copies a payload between a caller's buffer and the ring (shmring_send(),
 * the copying receives).  glibc's memcpy() moves a large block with
 * `rep movsb` (over 2112 bytes on the project's VMs: AMD EPYC, glibc 2.36),
 * and there that runs at 3.5 GB/s when the destination is 1 to 15 bytes
 * past the source modulo 4096, and at 36-63 GB/s from 16 to 63 bytes,
 * against 63-78 GB/s otherwise (perf/RESULTS.md, change 14).  Records start
 * every 8 bytes, so a stream of large messages passes through those
 * distances.  A copy of over COPY_BLOCKS_MIN bytes at such a distance goes
 * by 64-byte blocks (copy_blocks(), ring.c), 43-57 GB/s there; every other
 * copy stays with memcpy(), which is faster than the blocks elsewhere.
 */
#define COPY_BLOCKS_MIN 2048u
void copy_blocks(void *dst, const void *src, size_t n);
/*
 * A producer's copy into the ring at those distances is worse, by either
 * method: there the stores wait for lines that the consumer's core holds,
 * and (presumably) the loads of a forward copy wait behind the stores they
 * seem to alias, 1-63 bytes modulo 4096 before them.  8184-byte messages
 * (records of two pages) sent from a page-aligned buffer, a distance of 8
 * for every record, ran at 0.72 M/s across two CPUs, and at 1.97-2.61 M/s
 * from sources at distances from 0 to 3072 (perf/RESULTS.md, change 23).
 * So shmring_send() of a payload of over BOUNCE_MIN bytes goes through the
 * producer's bounce buffer there: copy_blocks() into it at the caller's
 * distance, in the producer's own cache, then memcpy() into the ring from
 * the same offset in a page as the destination (a distance of 0), by
 * pieces of BOUNCE_PIECE bytes (copy_bounced(), ring.c).  Payloads of a
 * page or less gained nothing by it (4088 B: 1.01-1.03x), the extra copy
 * costing what the distance did; and at the VMs' near placement, where a
 * line from the other core is cheap, the one round measured lost a third
 * at 8184 B.  Only shmring_send() can do this: a reservation's caller
 * writes the payload itself.
 */
#define BOUNCE_MIN 4096u /* only payloads of more than a page (change 23) */
#define BOUNCE_PIECE 8192u
void copy_bounced(uint8_t *bounce, void *dst, const void *src, size_t n);
static inline int short_distance(const void *dst, const void *src, size_t n)
{
	return n > COPY_BLOCKS_MIN && (((uintptr_t)dst - (uintptr_t)src - 1) & 4095) < 63;
}
static inline void copy_payload(void *dst, const void *src, size_t n)
{
	if (short_distance(dst, src, n))
		copy_blocks(dst, src, n);
	else
		memcpy(dst, src, n);
}

/*
 * Copies a payload out of a record into a caller's buffer (the copying
 * receives).  One of at most 64 bytes goes by two fixed-size moves that may
 * overlap, inline: exactly its n bytes, as memcpy() would, without the call
 * and its size dispatch (a sixth of the samples of a one-thread profile of
 * 64-byte batches; perf/RESULTS.md, change 21).  Always inline: used in
 * more places, gcc made it a function again, and a batch receive of 8 or
 * 64 bytes took 1.09-1.30x as long (change 32).
 */
struct copy16 {
	uint64_t w[2];
};
struct copy32 {
	uint64_t w[4];
};
#define COPY_PAIR(type, size)                         \
	do {                                          \
		type a_, b_;                          \
		memcpy(&a_, s, size);                 \
		memcpy(&b_, s + n - (size), size);    \
		memcpy(d, &a_, size);                 \
		memcpy(d + n - (size), &b_, size);    \
	} while (0)
static inline __attribute__((always_inline)) void copy_out(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;
	if (n > 64)
		copy_payload(dst, src, n);
	else if (n >= 32)
		COPY_PAIR(struct copy32, 32);
	else if (n >= 16)
		COPY_PAIR(struct copy16, 16);
	else if (n >= 8)
		COPY_PAIR(uint64_t, 8);
	else if (n >= 4)
		COPY_PAIR(uint32_t, 4);
	else if (n >= 2)
		COPY_PAIR(uint16_t, 2);
	else if (n)
		*d = *s;
}
#undef COPY_PAIR

#define DEFAULT_SPIN_NS 20000u
/* Adaptive spin (no shmring_set_spin() on the handle), per endpoint: starts
 * at DEFAULT_SPIN_NS.  After a sleep, if spinning pays here: the ring's
 * endpoints fit on the machine's CPUs (else a spinner may keep the peer it
 * waits for off the CPU), and either at least SPIN_STREAK waits since the
 * previous sleep ended while spinning, or the sleep was at most SPIN_NEAR
 * times the spin (the peer was briefly held up), or the endpoint moved at
 * least SPIN_BUSY messages since the previous sleep (it is busy: it waits
 * only when its peer, which had work for it all along, stops).  Then, if
 * the sleep ended within SPIN_MAX_NS, so that a longer spin would have
 * avoided it: a busy endpoint spins SPIN_MAX_NS from now on, to cover its
 * peer's next stops; another one spins twice the whole wait (spin + sleep,
 * up to SPIN_MAX_NS) if at least one wait since the previous sleep ended
 * while spinning (an endpoint whose every wait sleeps, such as one sharing
 * its CPU with its peer, or one that gets a message now and then, keeps
 * its spin).  After a longer sleep it stays.  Otherwise it halves (not below
 * the default): that keeps an endpoint whose waits mostly sleep (a quiet
 * ring, regular pauses longer than the spin, more endpoints than CPUs)
 * from spinning longer. */
#define SPIN_MAX_NS 4000000u
#define SPIN_STREAK 64u
#define SPIN_NEAR 4u
#define SPIN_BUSY 64u
struct spin_state {
	uint64_t ns;            /* current budget, from DEFAULT_SPIN_NS */
	uint64_t moved;         /* the endpoint's message count at its last
	                         * sleep, or at its open (see spin_adapt()) */
	uint32_t streak;        /* waits that ended while spinning since a sleep */
	uint32_t ncpu;          /* CPUs online, at the open */
};
void spin_init(struct spin_state *sp);
/* After a sleep of slept_ns; `moved`: the endpoint's count of messages
 * published (producer) or read (consumer) so far. */
void spin_adapt(const struct shmring *r, struct spin_state *sp, uint64_t slept_ns,
		uint64_t moved);
/* A value watched for progress: when it last moved, and to what. */
struct still {
	uint64_t val, since;
};
/* Whether v (now at time `now`) has stood still for ns; a move restarts
 * the clock.  Progress proves the peer behind v alive without a system
 * call, so liveness checks wait for it to stop. */
static inline int stood_still(struct still *s, uint64_t v, uint64_t now, uint64_t ns)
{
	if (v != s->val) {
		s->val = v;
		s->since = now;
		return 0;
	}
	return now - s->since >= ns;
}
/* A blocked producer looks for dead cursors this often; a consumer with
 * nothing to read checks the producer this often.  A build may raise the
 * second (-DLIVE_CHECK_NS=...): a lost wake-up then shows in make stress as
 * a wait that ends that long after the data came. */
#define REAP_NS 20000000u
#ifndef LIVE_CHECK_NS
#define LIVE_CHECK_NS 50000000u
#endif

/* One process's view of a ring.  Geometry comes from the validated private
 * copy of the header, never from shared memory after open. */
struct shmring {
	int fd;
	int writable;           /* fd opened O_RDWR */
	int live;               /* liveness locks work here (see live.c) */
	int prod_rw;            /* producer pages mapped writable */
	_Atomic uint64_t endpoints; /* (pid << 32) | endpoints open on this
	                         * handle by that process (fork: see ring.c) */
	_Atomic unsigned producers; /* producer handles not yet closed: the
	                         * producer pages stay writable while any is open */
	uint8_t *base;          /* mapping; data area mapped twice after data_off */
	size_t map_len;
	struct shm_geom g;
	uint32_t policy;
	int inline_small;       /* SHMRING_INLINE_SMALL (layout.h, istart) */
	_Atomic uint64_t spin_ns;
	_Atomic int spin_fixed; /* shmring_set_spin() was called: no adapting */
	_Atomic int eintr;      /* shmring_set_eintr() */
	_Atomic uint64_t *armed; /* bitmap: slots whose notification this
	                         * process armed through this handle (their
	                         * record locks are re-taken after our closes) */
	struct shm_prod *prod;
	struct shm_cshared *cs;
	struct shm_slot *slots;
	uint8_t *data;
};

struct shmring_producer {
	struct shmring *r;
	struct shm_prod *prod;
	struct shm_cshared *cs;
	struct shm_slot *slots;
	uint8_t *data;
	uint64_t mask, cap;
	uint32_t nslots, max_message;
	uint64_t tail;          /* committed (published) position */
	uint64_t rtail;         /* end of the reserved records */
	uint64_t limit;         /* no live cursor is below this: data below it
	                         * may be overwritten (cached minimum) */
	int shut;
	int overwrite;          /* policy OVERWRITE: never wait, move head */
	int inline_small;       /* SHMRING_INLINE_SMALL: send() copies small
	                         * messages into line 0 too (layout.h) */
	uint64_t seq;           /* sequence number of the next record reserved
	                         * (seq - tail_seq: reserved, not committed) */
	uint64_t tail_seq;      /* sequence number of the next record committed */
	uint64_t head;          /* overwrite: oldest intact record */
	uint64_t head_seq;      /* overwrite: its sequence number */
	uint32_t ver;           /* overwrite: our copy of prod->ver */
	int lockfd;             /* our open file description: the producer lock */
	struct still limit_still; /* the limit, for looking for dead cursors */
	uint32_t eagain;        /* -EAGAIN returns (full) */
	uint32_t quiet;         /* fenced commits since a sleeper was found */
	struct spin_state spin; /* adaptive spin */
	pid_t opener;
	volatile int busy;      /* inside a call: a signal handler gets -EBUSY */
	a32 shut_req;           /* shutdown asked while busy: done on the way out */
	a32 intr;               /* shmring_producer_interrupt() pending */
	uint8_t *bounce;        /* BOUNCE_PIECE + 4096 bytes, page-aligned, if
	                         * max_message > BOUNCE_MIN (else NULL) */
};

struct shmring_consumer {
	struct shmring *r;
	struct shm_prod *prod;  /* read-only */
	struct shm_cshared *cs;
	struct shm_slot *slot;  /* broadcast: the cursor; member: the hold */
	struct shm_slot *grp;   /* member: the group's shared cursor, else NULL */
	const uint8_t *data;    /* read-only */
	uint64_t mask, cap;
	uint32_t max_message;
	int overwrite;          /* policy OVERWRITE: validate after reading */
	int inline_small;       /* SHMRING_INLINE_SMALL: look for the copy of
	                         * a small message in line 0 (layout.h) */
	uint64_t rpos;          /* broadcast: next record to peek */
	uint64_t cpos;          /* broadcast: released position (slot->pos) */
	uint64_t cached_tail;   /* last tail seen; reloaded only when needed */
	uint64_t seq;           /* records read (overwrite: the sequence number
	                         * of the record at rpos) */
	uint64_t cseq;          /* overwrite: sequence number at cpos */
	uint64_t lost;          /* overwrite: messages lost to the producer */
	uint32_t npeeked;       /* records peeked since the last release */
	int holding;            /* member: slot->pos holds claimed records */
	int lockfd;             /* our open file description: the slot lock */
	int prod_gone;          /* the producer was found dead (re-checked) */
	uint32_t eagain;        /* -EAGAIN returns since the last check */
	uint32_t quiet;         /* fenced releases since the producer was found
	                         * asleep */
	struct still tail_still; /* the tail, for checking the producer */
	struct spin_state spin; /* adaptive spin */
	pid_t opener;
	volatile int busy;      /* inside a call: a signal handler gets -EBUSY */
	a32 intr;               /* shmring_consumer_interrupt() pending */
};

/* Re-entrancy guard of the endpoint calls: a signal handler that interrupts
 * a call and calls into the same endpoint gets -EBUSY.  The handler runs on
 * the interrupted thread, so compiler barriers order the flag. */
#define ENTER(h)                        \
	do {                            \
		if ((h)->busy)          \
			return -EBUSY;  \
		(h)->busy = 1;          \
		signal_fence();         \
	} while (0)
static inline void leave_consumer(struct shmring_consumer *c)
{
	signal_fence();
	c->busy = 0;
}

/* wait.c */
uint64_t now_ns(void);
int deadline_passed(const struct timespec *deadline);
static inline int valid_deadline(const struct timespec *d)
{
	return !d || (d->tv_nsec >= 0 && d->tv_nsec < 1000000000L);
}
int futex_wait_until(a32 *word, uint32_t val, const struct timespec *deadline);
void futex_wake(a32 *word, int n);
void futex_bump_wake(a32 *word);
a32 *consumer_word(const struct shmring_consumer *c);
int want_eintr(const struct shmring *r);
int wait_for_data(struct shmring_consumer *c, const struct timespec *deadline);
int wait_for_room(struct shmring_producer *p, uint64_t end,
		  const struct timespec *deadline);
void wake_consumers_slow(struct shmring *r, int n);
void wake_producer_slow(struct shm_cshared *cs);
extern _Atomic int asym_here;

/* A light waker that fenced this many times without finding a sleeper
 * turns the mode back to ASYM_LIGHT. */
#define ASYM_QUIET 1024u
void waker_fence_heavy(a32 *mode, uint32_t m, uint32_t *quiet);

/* The waker's side of the sleep protocol (wait.c), between storing the new
 * state and loading the announcement.  quiet: the hot-path callers
 * (commit, release) pass their count of fences since they last found a
 * sleeper, and skip the fence while this process is registered for
 * membarrier (asym_here) and the mode is ASYM_LIGHT; the others pass NULL
 * and always fence. */
static inline void waker_fence(a32 *mode, uint32_t *quiet)
{
	if (!quiet || !atomic_load_explicit(&asym_here, memory_order_relaxed)) {
		fence_full();
		return;
	}
	signal_fence();
	/* Acquire: the loads of the announcements stay after this one. */
	uint32_t m = load_acquire(mode);
	if (__builtin_expect(m & ASYM_STATE, 0))
		waker_fence_heavy(mode, m, quiet); /* fences */
}

/*
 * Producer side, after publishing n records or closing (n = INT_MAX): wakes
 * broadcast sleepers (once per arming of wake_armed), up to n members of
 * each group with sleepers, and the armed notifications.  Inline down to
 * the loads of the flags, which share one line that nobody writes while
 * nobody sleeps.  The caller stored tail or closed before the fence; pairs
 * with the fence and asym_sleep() in wait_for_data() after a sleeper
 * announces itself, and with the fence in shmring_notify() after arming.
 */
static inline void wake_consumers(struct shmring *r, int n, uint32_t *quiet)
{
	struct shm_cshared *cs = r->cs;
	waker_fence(&cs->cmode, quiet);
	uint32_t sleeping = load_relaxed(&cs->wake_armed) | load_relaxed(&cs->gsleepers);
	if (sleeping | load_relaxed(&cs->notifiers)) {
		if (sleeping && quiet)
			*quiet = 0;
		wake_consumers_slow(r, n);
	}
}

/* Consumer side, after releasing room or detaching.  The caller stored its
 * cursor before the fence; pairs with the fence and asym_sleep() in
 * wait_for_room() after the producer announces itself. */
static inline void wake_producer(struct shm_cshared *cs, uint32_t *quiet)
{
	waker_fence(&cs->pmode, quiet);
	if (load_relaxed(&cs->prod_waiting)) {
		if (quiet)
			*quiet = 0;
		wake_producer_slow(cs);
	}
}
void asym_register(void);
int asym_fence(void);
int asym_sleep(a32 *mode);

/* ring.c */
void populate_data(const struct shmring *r, int write);
void endpoint_add(struct shmring *r, pid_t *opener);
void endpoint_del(struct shmring *r, pid_t opener);
uint64_t spin_ns(const struct shmring *r, const struct spin_state *adaptive);

int claim_slot(struct shmring *r, int lockfd, struct shm_slot **out);
int producer_gone(struct shmring_consumer *c);
int consumer_ready(const struct shmring_consumer *c);
int idle_check(struct shmring_consumer *c);
int attach_position(struct shmring *r, struct shm_slot *s, unsigned flags, uint64_t *pos);
int prod_snapshot(const struct shm_prod *prod, uint64_t *head, uint64_t *head_seq,
		  uint64_t *tail, uint64_t *tail_seq);

/* producer.c */
int refresh_limit(struct shmring_producer *p);
void leave_producer_slow(struct shmring_producer *p);
/* The end of a producer call: clears busy, then runs a shutdown that a
 * signal handler asked for meanwhile (the slow path, out of line). */
static inline void leave_producer(struct shmring_producer *p)
{
	signal_fence();
	p->busy = 0;
	signal_fence();
	if (__builtin_expect(load_relaxed(&p->shut_req) && !p->shut, 0)) {
		p->busy = 1;
		signal_fence();
		leave_producer_slow(p);
	}
}

/* notify.c */
uint64_t notify_byte(const struct shmring *r, uint32_t i);
void notify_fire(struct shmring *r);
void notify_disarm(struct shmring_consumer *c);
void notify_relock(struct shmring *r);

/* live.c */
uint64_t slot_byte(const struct shmring *r, uint32_t i);
int live_open(const struct shmring *r);
void live_close(int fd);
int live_lock(int fd, uint64_t byte);
void live_unlock(int fd, uint64_t byte);
void live_lock_wait(int fd, uint64_t byte);
int live_held(const struct shmring *r, uint64_t byte);
int reap_slot(struct shmring *r, uint32_t i);
int reap_dead(struct shmring *r, uint64_t below);

/* group.c */
int group_reap(struct shmring *r, uint32_t gi);
void group_drop(struct shmring *r, uint32_t gi);
int group_attach(struct shmring_consumer *c, const char *name, unsigned flags);
void group_leave(struct shmring_consumer *c);
int group_peek(struct shmring_consumer *c, struct shmring_msg *msgs, unsigned max);
int group_recv(struct shmring_consumer *c, void *buf, size_t buflen,
	       struct shmring_msg *msgs, unsigned max);
int group_release(struct shmring_consumer *c);
int group_has_data(const struct shmring_consumer *c);

#endif
