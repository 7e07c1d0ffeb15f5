/* SPDX-License-Identifier: MIT */
/*
 * A consumer that polls without waiting (shmring_recv() returning -EAGAIN)
 * must notice a dead producer, but asking the kernel costs a system call
 * (F_OFD_GETLK on the producer's lock byte).  While records keep coming the
 * producer is evidently alive: the consumer asks only once the tail has
 * stood still for a while.  Likewise a producer that polls a full ring
 * (shmring_send() returning -EAGAIN) looks for dead cursors only once the
 * cursors have stood still.
 *
 * This program counts the library's F_OFD_GETLK calls by defining fcntl()
 * itself: the test links the library statically, so the library's calls
 * come here, and go on to the kernel unchanged.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

static _Atomic long getlk_calls;

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	long arg = va_arg(ap, long);
	va_end(ap);
	if (cmd == F_OFD_GETLK)
		atomic_fetch_add(&getlk_calls, 1);
	return (int)syscall(SYS_fcntl, fd, cmd, arg);
}

/* The producer's phases, in shared memory. */
struct phase {
	_Atomic int paused;     /* sent everything, still alive */
	_Atomic int resume;     /* the consumer saw the pause: may die now */
};

#define FLOW_MESSAGES 4000u     /* one every 200 us: 0.8 s of traffic */

static void polling_consumer(int group)
{
	struct shmring *r;
	cr_assert_eq(shmring_create_anon("idle", NULL, &r), 0);
	struct shmring_consumer *c;
	if (group)
		cr_assert_eq(shmring_group_open(r, "g", 0, &c), 0);
	else
		cr_assert_eq(shmring_consumer_open(r, 0, &c), 0);
	struct phase *ph = test_shared_zero(sizeof(*ph));
	pid_t pp = test_spawn();
	if (pp == 0) {
		struct shmring_producer *p;
		if (shmring_producer_open(r, &p))
			_exit(1);
		for (uint64_t i = 0; i < FLOW_MESSAGES; i++) {
			if (shmring_send(p, &i, sizeof(i)))
				_exit(2);
			test_sleep_ns(200000);
		}
		atomic_store(&ph->paused, 1);
		while (!atomic_load(&ph->resume))
			test_sleep_ns(1000000);
		pause(); /* killed here */
		_exit(0);
	}

	/* While records flow: the consumer polls flat out, so it finds the
	 * ring empty thousands of times between records. */
	uint64_t got = 0, x, last = 0, gaps = 0, empty = 0;
	long before = 0;
	size_t len;
	int rc;
	while (got < FLOW_MESSAGES) {
		rc = shmring_recv(c, &x, sizeof(x), &len);
		if (rc == -EAGAIN) {
			empty++;
			continue;
		}
		cr_assert_eq(rc, 0, "%s", shmring_strerror(rc));
		cr_assert_eq(x, got);
		uint64_t t = test_now_ns();
		/* A stall of the producer longer than the liveness interval
		 * (50 ms) lets the consumer ask, legitimately: count them. */
		if (got > 0 && t - last >= 40000000u)
			gaps++;
		if (got == 0)
			before = atomic_load(&getlk_calls); /* after attaching */
		last = t;
		got++;
	}
	long during = atomic_load(&getlk_calls) - before;
	cr_assert_gt(empty, FLOW_MESSAGES, "the consumer never found the ring empty");
	cr_assert_leq(during, (long)gaps,
		      "%ld liveness checks in %u records (%" PRIu64 " stalls of 40 ms)", during,
		      FLOW_MESSAGES, gaps);

	/* Traffic stops; the producer lives: the consumer asks, and hears
	 * that it lives. */
	while (!atomic_load(&ph->paused))
		cr_assert_eq(shmring_recv(c, &x, sizeof(x), &len), -EAGAIN);
	long quiet = atomic_load(&getlk_calls);
	uint64_t t0 = test_now_ns();
	while (test_now_ns() - t0 < 300000000u)
		cr_assert_eq(shmring_recv(c, &x, sizeof(x), &len), -EAGAIN);
	cr_assert_geq(atomic_load(&getlk_calls) - quiet, 2,
		      "no liveness check in 300 ms without traffic");

	/* It dies: -EPIPE within the interval. */
	atomic_store(&ph->resume, 1);
	kill(pp, SIGKILL);
	cr_assert_eq(test_wait(pp), 128 + SIGKILL);
	t0 = test_now_ns();
	while ((rc = shmring_recv(c, &x, sizeof(x), &len)) == -EAGAIN &&
	       test_now_ns() - t0 < 5000000000ull)
		;
	cr_assert_eq(rc, -EPIPE, "%s", shmring_strerror(rc));
	cr_assert_lt(test_now_ns() - t0, 2000000000ull);
	shmring_consumer_close(c);
	cr_assert_eq(shmring_close(r), 0);
	munmap(ph, sizeof(*ph));
}

Test(idle, broadcast_poller_asks_only_when_traffic_stops)
{
	polling_consumer(0);
}

Test(idle, group_poller_asks_only_when_traffic_stops)
{
	polling_consumer(1);
}

/* The mirror image: the producer polls a full ring while a slow consumer
 * frees a record now and then. */
Test(idle, polling_producer_reaps_only_when_cursors_stop)
{
	struct shmring *r;
	struct shmring_opts o = test_opts(4096, 0);
	cr_assert_eq(shmring_create_anon("idlep", &o, &r), 0);
	struct shmring_producer *p;
	cr_assert_eq(shmring_producer_open(r, &p), 0);
	struct phase *ph = test_shared_zero(sizeof(*ph));
	pid_t pc = test_spawn();
	if (pc == 0) {
		struct shmring_consumer *c;
		if (shmring_consumer_open(r, 0, &c))
			_exit(2);
		atomic_store(&ph->resume, 1); /* attached */
		uint64_t x;
		size_t len;
		for (uint64_t i = 0; i < FLOW_MESSAGES; i++) {
			if (shmring_recv_wait(c, &x, sizeof(x), &len, NULL) || x != i)
				_exit(1);
			test_sleep_ns(200000);
		}
		atomic_store(&ph->paused, 1);
		pause(); /* killed here */
		_exit(0);
	}
	while (!atomic_load(&ph->resume))
		test_sleep_ns(100000);

	uint64_t sent = 0, last = 0, gaps = 0, full = 0;
	long before = 0;
	int rc;
	while (!atomic_load(&ph->paused)) {
		rc = shmring_send(p, &sent, sizeof(sent));
		if (rc == -EAGAIN) {
			full++;
			continue;
		}
		cr_assert_eq(rc, 0, "%s", shmring_strerror(rc));
		uint64_t t = test_now_ns();
		if (sent > 0 && t - last >= 40000000u)
			gaps++;
		if (sent == 0)
			before = atomic_load(&getlk_calls);
		last = t;
		sent++;
	}
	long during = atomic_load(&getlk_calls) - before;
	cr_assert_gt(sent, FLOW_MESSAGES / 2);
	cr_assert_gt(full, sent, "the producer never found the ring full");
	cr_assert_leq(during, (long)gaps + 1,
		      "%ld looks for dead cursors in %" PRIu64 " records (%" PRIu64
		      " stalls of 40 ms)", during, sent, gaps);

	/* The consumer stops, alive: the producer looks, and finds it alive. */
	long quiet = atomic_load(&getlk_calls);
	uint64_t t0 = test_now_ns();
	while (test_now_ns() - t0 < 300000000u)
		cr_assert_eq(shmring_send(p, &sent, sizeof(sent)), -EAGAIN);
	cr_assert_geq(atomic_load(&getlk_calls) - quiet, 2,
		      "no look for dead cursors in 300 ms without progress");

	/* It dies: its cursor is reaped and the ring has room again. */
	kill(pc, SIGKILL);
	cr_assert_eq(test_wait(pc), 128 + SIGKILL);
	t0 = test_now_ns();
	while ((rc = shmring_send(p, &sent, sizeof(sent))) == -EAGAIN &&
	       test_now_ns() - t0 < 5000000000ull)
		;
	cr_assert_eq(rc, 0, "%s", shmring_strerror(rc));
	cr_assert_lt(test_now_ns() - t0, 2000000000ull);
	shmring_producer_close(p);
	cr_assert_eq(shmring_close(r), 0);
	munmap(ph, sizeof(*ph));
}
