/* SPDX-License-Identifier: MIT */
/*
 * Waiting and waking: bounded spin, then futex sleep.  Slow path only.
 *
 * Both sleeps follow one protocol (Dekker):
 *   sleeper: v = load(futex word); announce (count or flag); full fence;
 *            re-check the condition; FUTEX_WAIT(word, v)
 *   waker:   store the new state; full fence; if announced: bump the word,
 *            FUTEX_WAKE
 * Either the waker sees the announcement, or the sleeper's re-check sees the
 * new state.  Reading v before announcing means a bump made by a waker that
 * saw the announcement always makes FUTEX_WAIT return at once.  The
 * producer and the broadcast consumers announce with a flag
 * (prod_waiting, wake_armed) that the one waker to see it takes by
 * exchange, so a sleep costs one wake, not one per commit or release made
 * while the sleeper is on its way down; group members announce with counts.
 * The futex words are shared between processes: never FUTEX_PRIVATE_FLAG.
 *
 * The waker's full fence sits on the hot path (every commit, every release)
 * and costs a drain of the store buffer each time.  Where the kernel has
 * membarrier(2) MEMBARRIER_CMD_GLOBAL_EXPEDITED, the waker's process
 * registers once and replaces its fence by a compiler barrier; the sleeper,
 * which is about to make a system call anyway, adds membarrier() after its
 * own fence.  That makes every CPU running a registered process execute a
 * full barrier before it returns: either the waker's load of the
 * announcement comes after that barrier and sees it, or its store of the new
 * state came before it and is visible to the sleeper's re-check.  A sleeper
 * whose membarrier() fails (a seccomp filter, say) cannot rely on that and
 * caps its sleep at ASYM_FALLBACK_NS instead.
 *
 * That trade is good while sleeps are rare, and bad while they are
 * frequent: membarrier() interrupts every CPU that runs a registered
 * process, and costs tens of microseconds when those CPUs are busy or
 * several sleepers call it at once.  So each direction has a fence mode
 * in the consumers' shared line (cs->cmode for the consumers' sleeps,
 * cs->pmode for the producer's; layout 6): while sleeps are frequent it is
 * ASYM_HEAVY, the light wakers fence again and the sleepers skip
 * membarrier(); see asym_sleep() for the switch and why it is safe.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t ts_ns(const struct timespec *ts)
{
	if (ts->tv_sec < 0)
		return 0;
	if ((uint64_t)ts->tv_sec >= UINT64_MAX / 1000000000u)
		return UINT64_MAX; /* centuries away: never */
	return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

int deadline_passed(const struct timespec *deadline)
{
	return deadline && now_ns() >= ts_ns(deadline);
}

SHMRING_API int shmring_deadline(struct timespec *deadline, uint64_t timeout_ns)
{
	if (!deadline)
		return -EINVAL;
	uint64_t t = now_ns();
	t = timeout_ns > UINT64_MAX - t ? UINT64_MAX / 2 : t + timeout_ns;
	deadline->tv_sec = (time_t)(t / 1000000000u);
	deadline->tv_nsec = (long)(t % 1000000000u);
	return 0;
}

/* Sleeps while *word == val, until woken or the absolute CLOCK_MONOTONIC
 * deadline.  Returns 0 (woken, or the value changed: the caller re-checks),
 * -EINTR (a signal handler ran) or -ETIMEDOUT.  Preserves errno.  The
 * kernel restarts a timed futex wait only when no handler runs, so a
 * handler always makes it return -EINTR, whatever its SA_RESTART. */
int futex_wait_until(a32 *word, uint32_t val, const struct timespec *deadline)
{
	int saved = errno;
	long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET, val, deadline, NULL,
			  FUTEX_BITSET_MATCH_ANY);
	int e = errno;
	errno = saved;
	if (rc < 0 && e == ETIMEDOUT)
		return -ETIMEDOUT;
	return rc < 0 && e == EINTR ? -EINTR : 0;
}

void futex_wake(a32 *word, int n)
{
	int saved = errno;
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
	errno = saved;
}

#define ASYM_FALLBACK_NS 1000000u

/* The process that registered for MEMBARRIER_CMD_GLOBAL_EXPEDITED (or,
 * negated, found that it cannot), and whether this process is it: a child
 * of fork() clears asym_here (whatever the kernel passed on) and fences
 * until it opens an endpoint, which registers it. */
static _Atomic int64_t asym_pid;
_Atomic int asym_here;

static void asym_child(void)
{
	atomic_store_explicit(&asym_here, 0, memory_order_relaxed);
}

static long membarrier(int cmd)
{
	return syscall(SYS_membarrier, cmd, 0, 0);
}

/* Registers this process (once) for MEMBARRIER_CMD_GLOBAL_EXPEDITED, so
 * that its wakers may skip their fence (asym_here); where the kernel cannot,
 * they fence.  Not AS-safe: called when an endpoint opens. */
void asym_register(void)
{
	int64_t me = getpid();
	int64_t st = atomic_load_explicit(&asym_pid, memory_order_acquire);
	if (st == me || st == -me)
		return;
	int saved = errno;
	long q = membarrier(MEMBARRIER_CMD_QUERY);
	int ok = q >= 0 && (q & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
		 (q & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) &&
		 membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
	static _Atomic int atfork;
	if (ok && !atomic_exchange(&atfork, 1) && pthread_atfork(NULL, NULL, asym_child))
		ok = 0, atomic_store(&atfork, 0); /* cannot follow forks: fence */
	errno = saved;
	atomic_store_explicit(&asym_pid, ok ? me : -me, memory_order_release);
	atomic_store_explicit(&asym_here, ok, memory_order_release);
}

/* The sleeper's side: after its own full fence.  0, or -1 if the barrier
 * could not be made (then a registered waker may miss us: sleep briefly). */
int asym_fence(void)
{
	int saved = errno;
	long rc = membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED);
	errno = saved;
	return rc == 0 ? 0 : -1;
}

/*
 * The sleeper's side, after announcing itself and its own full fence: makes
 * sure that a light waker (waker_fence()) either sees the announcement or
 * made its new state visible to the sleeper's re-check.  0, or -1 if it
 * could not (asym_fence()).
 *
 * In ASYM_LIGHT the wakers do not fence, so the sleeper calls membarrier().
 * It also tries to turn the mode ASYM_HEAVY, which costs nothing more: CAS
 * to ASYM_ARMING, membarrier(), then CAS to ASYM_HEAVY.  From then on the
 * wakers fence, and sleepers that find ASYM_HEAVY skip the membarrier();
 * a waker that fenced ASYM_QUIET times without finding a sleeper turns the
 * mode back (waker_fence_heavy()).  Why a sleeper that loaded ASYM_HEAVY
 * (after its fence) is safe without a barrier, whatever the waker loaded
 * (after storing its state, before loading the announcement):
 *   - ASYM_ARMING or ASYM_HEAVY: the waker fenced: plain Dekker;
 *   - a value written before the ASYM_ARMING that preceded our ASYM_HEAVY:
 *     that load came before the barrier the arming membarrier() made on
 *     the waker's CPU, and so did the waker's store, which that barrier
 *     made visible before the arming sleeper stored ASYM_HEAVY, so before
 *     our re-check;
 *   - a later ASYM_LIGHT (a relax): it was written after our load of the
 *     mode, which came after our announcement was visible; the waker's
 *     load of the announcement comes after its load of the mode (acquire),
 *     so it sees the announcement.
 * The generation makes each ASYM_ARMING value unique, so that only the
 * sleeper that wrote it, after its membarrier(), can make it ASYM_HEAVY.
 * The last case relies on the waker's loads staying in order and on stores
 * becoming visible to all CPUs at once: x86-TSO, and ARMv8's
 * other-multi-copy atomicity with the acquire load.
 */
int asym_sleep(a32 *mode)
{
	uint32_t m = load_acquire(mode);
	if ((m & ASYM_STATE) == ASYM_HEAVY)
		return 0;
	if ((m & ASYM_STATE) != ASYM_LIGHT || !cas32(mode, &m, m | ASYM_ARMING))
		return asym_fence();
	int rc = asym_fence();
	uint32_t arming = m | ASYM_ARMING;
	/* Fails if a waker relaxed the mode meanwhile: then it stays light. */
	cas32(mode, &arming, rc == 0 ? (m | ASYM_HEAVY) : ASYM_NEXT_LIGHT(m));
	return rc;
}

/* waker_fence() of a light waker that found the mode m not ASYM_LIGHT:
 * fences.  After ASYM_QUIET fences without finding a sleeper it turns the
 * mode back to ASYM_LIGHT, in the next generation, unless the mode moved
 * meanwhile (asym_relax).  An ASYM_ARMING left by a sleeper that died in
 * its membarrier() ends here too.  [AS-safe] */
void waker_fence_heavy(a32 *mode, uint32_t m, uint32_t *quiet)
{
	fence_full();
	if (++*quiet < ASYM_QUIET)
		return;
	*quiet = 0;
	cas32(mode, &m, ASYM_NEXT_LIGHT(m));
}

/* Changes the word and wakes everybody sleeping on it: a sleeper that read
 * the word before the change does not go to sleep, one already asleep
 * wakes and re-checks.  [AS-safe] */
void futex_bump_wake(a32 *word)
{
	atomic_fetch_add_explicit(word, 1, memory_order_release);
	futex_wake(word, INT_MAX);
}

int want_eintr(const struct shmring *r)
{
	return atomic_load_explicit(&((struct shmring *)r)->eintr, memory_order_relaxed);
}

SHMRING_API int shmring_set_eintr(struct shmring *r, int enable)
{
	if (!r)
		return -EINVAL;
	atomic_store_explicit(&r->eintr, enable != 0, memory_order_relaxed);
	return 0;
}

/* The earlier of the caller's deadline and now + ns: sleeps are cut short
 * so that a waiter can look at its peers' liveness.  Sets *capped if the
 * result is the cap. */
static const struct timespec *cap_deadline(const struct timespec *deadline, uint64_t ns,
					   struct timespec *buf, int *capped)
{
	uint64_t t = now_ns() + ns;
	*capped = 0;
	if (deadline && ts_ns(deadline) <= t)
		return deadline;
	buf->tv_sec = (time_t)(t / 1000000000u);
	buf->tv_nsec = (long)(t % 1000000000u);
	*capped = 1;
	return buf;
}

/* Wakes up to n members of each group that has sleepers. */
static void wake_groups(struct shmring *r, int n)
{
	uint32_t hw = load_acquire(&r->cs->hiwater);
	if (hw > r->g.nslots)
		hw = r->g.nslots;
	for (uint32_t i = 0; i < hw; i++) {
		struct shm_slot *g = &r->slots[i];
		if (load_relaxed(&g->kind) != KIND_GROUP || load_relaxed(&g->gsleep) == 0)
			continue;
		atomic_fetch_add_explicit(&g->futex, 1, memory_order_release);
		futex_wake(&g->futex, n);
	}
}

/* The rest of wake_consumers() (internal.h), once it saw somebody to wake:
 * broadcast sleepers all wake; each group wakes at most n members, one per
 * record, since each record goes to one member. */
void wake_consumers_slow(struct shmring *r, int n)
{
	/* One waker per arming: every broadcast sleeper read wake_seq before
	 * it armed, so the bump after taking the flag reaches all of them;
	 * one that arms later leaves the flag set for the next commit. */
	if (load_relaxed(&r->cs->wake_armed) &&
	    atomic_exchange_explicit(&r->cs->wake_armed, 0, memory_order_acq_rel)) {
		atomic_fetch_add_explicit(&r->cs->wake_seq, 1, memory_order_release);
		futex_wake(&r->cs->wake_seq, INT_MAX);
	}
	if (load_relaxed(&r->cs->gsleepers))
		wake_groups(r, n);
	if (load_relaxed(&r->cs->notifiers))
		notify_fire(r);
}

/* The rest of wake_producer() (internal.h): the producer announced a sleep. */
void wake_producer_slow(struct shm_cshared *cs)
{
	/* One waker per sleep: the producer re-announces before sleeping again. */
	if (atomic_exchange_explicit(&cs->prod_waiting, 0, memory_order_acq_rel) == 0)
		return;
	atomic_fetch_add_explicit(&cs->prod_wake_seq, 1, memory_order_release);
	futex_wake(&cs->prod_wake_seq, 1);
}

static int has_data(const struct shmring_consumer *c)
{
	/* Pairs with the producer's store_release(tail) in shmring_commit() and
	 * store_release(closed) in shmring_producer_shutdown(). */
	return load_acquire(&c->prod->tail) != c->rpos || load_acquire(&c->prod->closed) ||
	       c->prod_gone;
}

int consumer_ready(const struct shmring_consumer *c)
{
	return c->grp ? group_has_data(c) : has_data(c);
}

/* A pending shmring_consumer_interrupt() or shmring_producer_interrupt(),
 * used up. */
static int take_intr(a32 *intr)
{
	if (!load_relaxed(intr))
		return 0;
	return atomic_exchange_explicit(intr, 0, memory_order_acquire) != 0;
}

/* The futex a consumer sleeps on; shmring_consumer_interrupt() bumps it. */
a32 *consumer_word(const struct shmring_consumer *c)
{
	return c->grp ? &c->grp->futex : &c->cs->wake_seq;
}

void spin_init(struct spin_state *sp)
{
	sp->ns = DEFAULT_SPIN_NS;
	sp->moved = 0; /* the endpoint's count, once it has one */
	sp->streak = 0;
	/* The machine's CPUs, not this process's affinity: endpoints pinned
	 * one to a CPU each are the case spinning is for. */
	int saved = errno;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	errno = saved;
	sp->ncpu = n > 0 ? (uint32_t)n : 1;
}

/* The ring's endpoints that may wait: the producer, broadcast consumers and
 * group members (not the groups' own cursors). */
static uint32_t endpoints(const struct shmring *r)
{
	uint32_t hw = load_acquire(&r->cs->hiwater), n = 1;
	if (hw > r->g.nslots)
		hw = r->g.nslots;
	for (uint32_t i = 0; i < hw; i++)
		n += load_relaxed(&r->slots[i].state) == SLOT_ACTIVE &&
		     load_relaxed(&r->slots[i].kind) != KIND_GROUP;
	return n;
}

/* After a wait that slept slept_ns: see SPIN_MAX_NS.  Only without
 * shmring_set_spin(). */
void spin_adapt(const struct shmring *r, struct spin_state *sp, uint64_t slept_ns,
		uint64_t moved)
{
	int busy = moved - sp->moved >= SPIN_BUSY;
	sp->moved = moved;
	if (atomic_load_explicit(&((struct shmring *)r)->spin_fixed, memory_order_relaxed))
		return;
	uint64_t s = sp->ns;
	/* More endpoints than CPUs: a spinner may keep the peer it waits for
	 * off the CPU.  Without a single spin-won wait since the last sleep,
	 * a short sleep does not say that spinning would win, unless the
	 * endpoint was busy until its peer stopped. */
	int run = sp->streak >= SPIN_STREAK, near = slept_ns <= SPIN_NEAR * s;
	int pays = (run || near || busy) && endpoints(r) <= sp->ncpu;
	if (pays) {
		/* The wait lasted s + slept_ns: a spin of twice that covers
		 * the next one like it; a busy endpoint waits only when its
		 * peer stops, so the longest spin covers the stops to come.
		 * A stop longer than SPIN_MAX_NS leaves the spin as it is: no
		 * spin would have covered it. */
		if (slept_ns <= SPIN_MAX_NS && busy)
			s = SPIN_MAX_NS;
		else if (slept_ns <= SPIN_MAX_NS && (run || sp->streak > 0))
			s = 2 * (s + slept_ns) >= SPIN_MAX_NS ? SPIN_MAX_NS : 2 * (s + slept_ns);
	} else {
		s = s / 2 < DEFAULT_SPIN_NS ? DEFAULT_SPIN_NS : s / 2;
	}
	sp->ns = s;
	sp->streak = 0;
}

/* A wait that ended while spinning. */
static inline void spin_won(struct spin_state *sp)
{
	if (sp->streak < SPIN_STREAK)
		sp->streak++;
}

/*
 * Waits until there may be data (or the ring is closed, or its producer
 * died): 0, -ETIMEDOUT, or -EINTR (an interrupt, or a signal with
 * shmring_set_eintr()).  A broadcast consumer sleeps on the consumers'
 * wake_seq, after arming wake_armed; a group member sleeps on its group's
 * futex, counted in the group's gsleep and the ring's gsleepers, so that the
 * producer wakes one member per record instead of all of them.
 */
int wait_for_data(struct shmring_consumer *c, const struct timespec *deadline)
{
	uint64_t start = now_ns(), spin = spin_ns(c->r, &c->spin);
	a32 *word = consumer_word(c);

	for (unsigned i = 1; spin; i++) {
		if (consumer_ready(c)) {
			spin_won(&c->spin);
			return 0;
		}
		if (take_intr(&c->intr))
			return -EINTR;
		cpu_relax();
		if ((i & 63) == 0) {
			uint64_t t = now_ns();
			if (deadline && t >= ts_ns(deadline))
				return -ETIMEDOUT;
			if (t - start >= spin)
				break;
		}
	}
	uint64_t asleep = now_ns();
	for (;;) {
		uint32_t v = load_acquire(word);
		if (c->grp) {
			atomic_fetch_add_explicit(&c->grp->gsleep, 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&c->cs->gsleepers, 1, memory_order_relaxed);
		} else {
			/* After reading v: see wake_consumers_slow(). */
			store_relaxed(&c->cs->wake_armed, 1);
		}
		fence_full(); /* pairs with the fence in wake_consumers() */
		int alone = asym_sleep(&c->cs->cmode);
		int now = consumer_ready(c), capped = 0;
		struct timespec cap;
		const struct timespec *dl =
			alone ? cap_deadline(deadline, ASYM_FALLBACK_NS, &cap, &capped) :
			c->r->live ? cap_deadline(deadline, LIVE_CHECK_NS, &cap, &capped) :
				     deadline;
		/* An interrupt after this check bumps the word, which we read
		 * before: then the wait returns at once. */
		int rc = now || load_relaxed(&c->intr) ? 0 : futex_wait_until(word, v, dl);
		if (c->grp) {
			atomic_fetch_sub_explicit(&c->cs->gsleepers, 1, memory_order_relaxed);
			atomic_fetch_sub_explicit(&c->grp->gsleep, 1, memory_order_relaxed);
		}
		if (now || consumer_ready(c)) {
			spin_adapt(c->r, &c->spin, now_ns() - asleep, c->seq);
			return 0;
		}
		if (take_intr(&c->intr) || (rc == -EINTR && want_eintr(c->r)))
			return -EINTR;
		if (rc == -ETIMEDOUT && capped) {
			/* Slept long with nothing new: is the producer alive? */
			if ((c->prod_gone = producer_gone(c)))
				return 0;
			continue;
		}
		if (rc == -ETIMEDOUT || deadline_passed(deadline))
			return -ETIMEDOUT;
	}
}

/* Room for a record ending at `end` once no cursor is below end - capacity. */
static int has_room(struct shmring_producer *p, uint64_t end)
{
	return end - p->limit <= p->cap;
}

int wait_for_room(struct shmring_producer *p, uint64_t end, const struct timespec *deadline)
{
	uint64_t start = now_ns(), spin = spin_ns(p->r, &p->spin);

	for (unsigned i = 1; spin; i++) {
		cpu_relax();
		if (load_relaxed(&p->shut_req))
			return -EPIPE;
		if (take_intr(&p->intr))
			return -EINTR;
		if ((i & 63) == 0) {
			refresh_limit(p);
			if (has_room(p, end)) {
				spin_won(&p->spin);
				return 0;
			}
			uint64_t t = now_ns();
			if (deadline && t >= ts_ns(deadline))
				return -ETIMEDOUT;
			if (t - start >= spin)
				break;
		}
	}
	uint64_t asleep = now_ns();
	for (;;) {
		uint32_t v = load_acquire(&p->cs->prod_wake_seq);
		store_relaxed(&p->cs->prod_waiting, 1);
		fence_full(); /* pairs with the fence in wake_producer() */
		int alone = asym_sleep(&p->cs->pmode);
		refresh_limit(p);
		int capped = 0;
		struct timespec cap;
		const struct timespec *dl =
			alone ? cap_deadline(deadline, ASYM_FALLBACK_NS, &cap, &capped) :
			p->r->live ? cap_deadline(deadline, REAP_NS, &cap, &capped) : deadline;
		/* An interrupt or shutdown after this check bumps the word. */
		int rc = has_room(p, end) || load_relaxed(&p->intr) || load_relaxed(&p->shut_req) ?
			0 : futex_wait_until(&p->cs->prod_wake_seq, v, dl);
		store_relaxed(&p->cs->prod_waiting, 0);
		refresh_limit(p);
		if (has_room(p, end)) {
			spin_adapt(p->r, &p->spin, now_ns() - asleep, p->seq);
			return 0;
		}
		if (load_relaxed(&p->shut_req))
			return -EPIPE;
		if (take_intr(&p->intr) || (rc == -EINTR && want_eintr(p->r)))
			return -EINTR;
		if (rc == -ETIMEDOUT && capped) {
			/* Still no room after a while: are the cursors holding
			 * us back alive? */
			if (reap_dead(p->r, end - p->cap))
				refresh_limit(p);
			if (has_room(p, end))
				return 0;
			continue;
		}
		if (rc == -ETIMEDOUT || deadline_passed(deadline))
			return -ETIMEDOUT;
	}
}
