/* SPDX-License-Identifier: MIT */
/*
 * Notification by signal (shmring_notify()).
 *
 * A consumer arms by storing a signal number in its slot's `notify` (after
 * the value to carry) and counting itself in the ring's `notifiers`; then a
 * full fence and a look for data.  The producer, after publishing, fences and
 * reads `notifiers` (wake_consumers()).  Either the producer sees the
 * arming, or the consumer sees the data and signals itself: the Dekker
 * pattern of the futex sleep.  Whoever moves `notify` from the signal to 0
 * with a compare-and-swap sends the one signal of that arming.
 *
 * Whom to signal is never read from shared memory: the consumer holds a
 * POSIX record lock (F_SETLK) on its slot's notification byte, and the
 * producer asks the kernel who holds it (F_OFD_GETLK on its own open file
 * description conflicts with the process's lock and reports its pid, as
 * seen from the producer's pid namespace, or 0 if not visible there).  A
 * hostile peer can change the signal number, never the target.  POSIX record
 * locks belong to the process and go away when it closes any descriptor of
 * the file; `armed` remembers what to re-take after our own closes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#include "internal.h"

/* The byte after the slot's liveness byte (see slot_byte()). */
uint64_t notify_byte(const struct shmring *r, uint32_t i)
{
	return slot_byte(r, i) + 1;
}

static int slot_index(const struct shmring_consumer *c)
{
	return (int)(c->slot - c->r->slots);
}

static int record_lock(const struct shmring *r, uint32_t i, short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
			    .l_start = (off_t)notify_byte(r, i), .l_len = 1 };
	int saved = errno;
	int rc = fcntl(r->fd, F_SETLK, &fl) < 0 ? -errno : 0;
	errno = saved;
	return rc;
}

static void armed_set(struct shmring *r, uint32_t i, int on)
{
	if (!r->armed)
		return;
	uint64_t bit = 1ull << (i & 63);
	if (on)
		atomic_fetch_or_explicit(&r->armed[i / 64], bit, memory_order_relaxed);
	else
		atomic_fetch_and_explicit(&r->armed[i / 64], ~bit, memory_order_relaxed);
}

/* After we closed a descriptor of the ring's file.  [AS-safe] */
void notify_relock(struct shmring *r)
{
	if (!r->armed)
		return;
	for (uint32_t w = 0; w < (r->g.nslots + 63) / 64; w++) {
		uint64_t bits = atomic_load_explicit(&r->armed[w], memory_order_relaxed);
		while (bits) {
			uint32_t b = (uint32_t)__builtin_ctzll(bits);
			bits &= bits - 1;
			record_lock(r, w * 64 + b, F_WRLCK);
		}
	}
}

/* The pid holding slot i's notification lock, in our pid namespace, or 0. */
static pid_t lock_holder(const struct shmring *r, uint32_t i)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
			    .l_start = (off_t)notify_byte(r, i), .l_len = 1 };
	int saved = errno;
	int rc = fcntl(r->fd, F_OFD_GETLK, &fl);
	errno = saved;
	if (rc < 0 || fl.l_type == F_UNLCK || fl.l_pid <= 0)
		return 0; /* nobody, an OFD lock (pid -1), or not visible */
	return fl.l_pid;
}

static int valid_signo(int signo)
{
	return signo > 0 && signo <= SIGRTMAX && signo != SIGKILL && signo != SIGSTOP;
}

static void send_signal(pid_t pid, int signo, uint64_t val)
{
	union sigval sv;
	sv.sival_ptr = (void *)(uintptr_t)val;
	int saved = errno;
	sigqueue(pid, signo, sv);
	errno = saved;
}

/* Takes slot i's arming if it still holds `signo`: 1 if we did. */
static int disarm_slot(struct shm_cshared *cs, struct shm_slot *s, uint32_t signo)
{
	if (!cas32(&s->notify, &signo, 0))
		return 0;
	atomic_fetch_sub_explicit(&cs->notifiers, 1, memory_order_relaxed);
	return 1;
}

/*
 * Producer, after publishing or closing (wake_consumers()): one signal for
 * each armed slot.  Slots are bounded by the high-water mark; anything read
 * from them is checked.  [AS-safe]
 */
void notify_fire(struct shmring *r)
{
	uint32_t hw = load_acquire(&r->cs->hiwater);
	if (hw > r->g.nslots)
		hw = r->g.nslots;
	for (uint32_t i = 0; i < hw; i++) {
		struct shm_slot *s = &r->slots[i];
		uint32_t signo = load_relaxed(&s->notify);
		if (!signo || !disarm_slot(r->cs, s, signo))
			continue;
		uint64_t val = load_relaxed(&s->notify_val);
		pid_t pid = lock_holder(r, i);
		if (pid && valid_signo((int)signo))
			send_signal(pid, (int)signo, val);
	}
}

/* Consumer: takes back its arming, if any, and its lock. */
void notify_disarm(struct shmring_consumer *c)
{
	uint32_t i = (uint32_t)slot_index(c);
	uint32_t old = atomic_exchange_explicit(&c->slot->notify, 0, memory_order_acq_rel);
	if (old)
		atomic_fetch_sub_explicit(&c->cs->notifiers, 1, memory_order_relaxed);
	if (c->r->armed && (atomic_load_explicit(&c->r->armed[i / 64], memory_order_relaxed) &
			    (1ull << (i & 63)))) {
		armed_set(c->r, i, 0);
		record_lock(c->r, i, F_UNLCK);
	}
}

SHMRING_API int shmring_notify(struct shmring_consumer *c, int signo, void *value)
{
	if (!c || (signo && !valid_signo(signo)))
		return -EINVAL;
	ENTER(c);
	int rc = 0;
	if (!signo) {
		notify_disarm(c);
		goto out;
	}
	uint32_t i = (uint32_t)slot_index(c);
	rc = record_lock(c->r, i, F_WRLCK);
	if (rc)
		goto out;
	armed_set(c->r, i, 1);
	uint64_t val = (uint64_t)(uintptr_t)value;
	store_relaxed(&c->slot->notify_val, val);
	uint32_t old = atomic_exchange_explicit(&c->slot->notify, (uint32_t)signo,
						memory_order_acq_rel);
	if (!old)
		atomic_fetch_add_explicit(&c->cs->notifiers, 1, memory_order_relaxed);
	fence_full(); /* pairs with the fence in wake_consumers() */
	/* A producer that skips that fence relies on this one (wait.c).  If
	 * it fails, a commit racing with this arming may not signal; the
	 * next one does. */
	asym_fence();
	/* Something to read already, or a producer that will never send? */
	if (!consumer_ready(c) && !(c->prod_gone = producer_gone(c)))
		goto out;
	if (disarm_slot(c->cs, c->slot, (uint32_t)signo))
		send_signal(getpid(), signo, val);
out:
	leave_consumer(c);
	return rc;
}
