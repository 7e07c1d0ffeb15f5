/* SPDX-License-Identifier: MIT */
/* Description: a dead peer never blocks the living.  Real processes, real
 * SIGKILL: consumers killed at random points (reading, holding zero-copy
 * records, sleeping, between copy and claim in a group) stop holding the
 * producer back; a killed producer makes consumers drain and get -EPIPE; a
 * new producer takes over and continues the sequence, never publishing what
 * the dead one reserved; dead slots are reused.
 *
 * Environment: SHMRING_TEST_KILLS (default 1000), SHMRING_TEST_SEED. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

/* Shared state of the kill run. */
struct board {
	_Atomic uint64_t sent;        /* producer: messages published */
	_Atomic uint64_t max_stall;   /* producer: longest single send, ns */
	_Atomic int stop;             /* parent: producer, stop and close */
	_Atomic uint64_t got[4];      /* survivors: messages received */
	_Atomic uint64_t victim_got;  /* victims: messages taken (any) */
};

#define MAXLEN 600

static int producer_main(struct shmring *r, struct board *b, uint64_t seed)
{
	struct shmring_producer *p;
	int rc = shmring_producer_open(r, &p);
	if (rc)
		return 10;
	static uint8_t buf[MAXLEN];
	uint64_t seq = 0;
	while (!atomic_load(&b->stop)) {
		size_t len = 16 + msg_len(seed, seq, MAXLEN - 16);
		msg_fill(buf, len, seq);
		uint64_t t0 = test_now_ns();
		struct timespec dl;
		shmring_deadline(&dl, 10000000000ull);
		rc = shmring_send_wait(p, buf, len, &dl);
		if (rc) {
			fprintf(stderr, "producer: seq %llu: %s\n", (unsigned long long)seq,
				shmring_strerror(rc));
			return 11;
		}
		uint64_t st = test_now_ns() - t0;
		if (st > atomic_load(&b->max_stall))
			atomic_store(&b->max_stall, st);
		seq++;
		atomic_store(&b->sent, seq);
	}
	return shmring_producer_close(p) ? 12 : 0;
}

static int check_msg(const void *d, size_t len, uint64_t seed, uint64_t seq)
{
	static uint8_t tmp[MAXLEN];
	if (len != 16 + msg_len(seed, seq, MAXLEN - 16))
		return MSG_BAD_LEN;
	msg_fill(tmp, len, seq);
	return memcmp(d, tmp, len) ? MSG_BAD_SUM : MSG_OK;
}

/* A survivor: broadcast consumer opened in its own process, reads all. */
static int survivor_main(struct shmring *r, struct board *b, int id, uint64_t seed)
{
	struct shmring_consumer *c;
	if (shmring_consumer_open(r, SHMRING_START_OLDEST, &c))
		return 20;
	static uint8_t buf[MAXLEN];
	uint64_t seq = 0;
	int rc;
	for (;;) {
		const void *d;
		size_t len;
		if (id == 0) {
			rc = shmring_recv_wait(c, buf, sizeof(buf), &len, NULL);
			d = buf;
		} else {
			rc = shmring_peek_wait(c, &d, &len, NULL);
		}
		if (rc == -EPIPE)
			break;
		if (rc) {
			fprintf(stderr, "survivor %d: %s\n", id, shmring_strerror(rc));
			return 21;
		}
		int bad = check_msg(d, len, seed, seq);
		if (bad) {
			fprintf(stderr, "survivor %d: seq %llu: %s\n", id, (unsigned long long)seq,
				msg_strerror(bad));
			return 22;
		}
		if (id)
			shmring_release(c);
		seq++;
		atomic_store(&b->got[id], seq);
	}
	shmring_consumer_close(c);
	return 0;
}

/* A victim: attaches in its own process (its lock is its own), then reads
 * in one of several ways until it is killed. */
static void victim_main(struct shmring *r, struct board *b, uint64_t s)
{
	struct shmring_consumer *c;
	int kind = (int)(test_rnd(&s) % 6);
	int rc = kind < 3 ? shmring_consumer_open(r, test_rnd(&s) & 1, &c)
			  : shmring_group_open(r, "victims", 0, &c);
	if (rc)
		_exit(rc == -EUSERS ? 0 : 30);
	static uint8_t buf[MAXLEN];
	for (;;) {
		const void *d;
		size_t len;
		switch (kind) {
		case 0: /* broadcast, copying */
		case 3: /* group, copy then claim */
			rc = shmring_recv_wait(c, buf, sizeof(buf), &len, NULL);
			break;
		case 1: /* broadcast, holding records in place, never releasing */
		case 4: /* group, claimed and held */
			rc = shmring_peek_wait(c, &d, &len, NULL);
			break;
		case 2: /* broadcast, asleep and never reading */
		case 5:
			pause();
			rc = 0;
			break;
		}
		if (rc)
			_exit(rc == -EPIPE ? 0 : 31);
		atomic_fetch_add(&b->victim_got, 1);
		if (test_rnd(&s) % 8 == 0)
			test_sleep_ns(test_rnd(&s) % 2000000);
	}
}

/*
 * One producer, two survivors, and a stream of victims killed at random
 * moments.  The survivors must see every message in order; the producer
 * must never be held for long by the dead.
 */
Test(liveness, killed_consumers_never_block_the_producer)
{
	uint64_t kills = test_env("SHMRING_TEST_KILLS", 1000);
	uint64_t seed = test_env("SHMRING_TEST_SEED", test_now_ns()) | 1, s = seed;
	struct shmring_opts o = test_opts(16 << 10, 16);
	struct shmring *r;
	cr_assert_eq(shmring_create_anon("kills", &o, &r), 0);
	struct board *b = test_shared_zero(sizeof(*b));

	pid_t surv[2], prod;
	for (int i = 0; i < 2; i++)
		if ((surv[i] = test_spawn()) == 0)
			_exit(survivor_main(r, b, i, seed));
	/* Let the survivors attach before the first message. */
	struct shmring_info info;
	for (int i = 0; i < 1000; i++) {
		shmring_info(r, &info);
		if (info.consumers == 2)
			break;
		test_sleep_ns(1000000);
	}
	cr_assert_eq(info.consumers, 2);
	if ((prod = test_spawn()) == 0)
		_exit(producer_main(r, b, seed));

	uint64_t t0 = test_now_ns(), killed = 0, stuck_checks = 0;
	for (uint64_t k = 0; k < kills; k++) {
		pid_t v = test_spawn();
		if (v == 0)
			victim_main(r, b, test_rnd(&s));
		/* Kill at a random moment: before, during or after attaching,
		 * while reading, holding or sleeping. */
		test_sleep_ns(test_rnd(&s) % 3000000);
		kill(v, SIGKILL);
		int st = test_wait(v);
		cr_assert(st == 128 + SIGKILL || st == 0, "victim exited with %d", st);
		killed += st == 128 + SIGKILL;
		/* Every 100 kills: the producer is still moving. */
		if (k % 100 == 99) {
			uint64_t before = atomic_load(&b->sent), w0 = test_now_ns();
			while (atomic_load(&b->sent) == before && test_now_ns() - w0 < 5000000000ull)
				test_sleep_ns(1000000);
			cr_assert_gt(atomic_load(&b->sent), before,
				     "the producer is stuck after %llu kills (seed %llu)",
				     (unsigned long long)k + 1, (unsigned long long)seed);
			stuck_checks++;
		}
	}
	atomic_store(&b->stop, 1);
	cr_assert_eq(test_wait(prod), 0, "producer failed (seed %llu)", (unsigned long long)seed);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(test_wait(surv[i]), 0, "survivor %d failed (seed %llu)", i,
			     (unsigned long long)seed);
	uint64_t sent = atomic_load(&b->sent);
	double secs = (double)(test_now_ns() - t0) / 1e9;
	printf("kills: %llu victims killed in %.1f s; %llu messages sent, survivors got %llu and "
	       "%llu; victims took %llu; producer's longest send %.1f ms (seed %llu)\n",
	       (unsigned long long)killed, secs, (unsigned long long)sent,
	       (unsigned long long)b->got[0], (unsigned long long)b->got[1],
	       (unsigned long long)b->victim_got, (double)b->max_stall / 1e6,
	       (unsigned long long)seed);
	fflush(stdout);
	cr_assert_eq(b->got[0], sent);
	cr_assert_eq(b->got[1], sent);
	cr_assert_geq(killed, kills * 9 / 10, "too few victims were killed");
	/* Generous for a loaded two-core machine; the figure is printed. */
	cr_assert_lt(b->max_stall, 2000000000ull, "the producer waited %.0f ms on the dead",
		     (double)b->max_stall / 1e6);
	/* All the dead are gone: only free slots remain. */
	shmring_info(r, &info);
	struct shmring_consumer *c[16];
	int n = 0;
	while (n < 16 && shmring_consumer_open(r, 0, &c[n]) == 0)
		n++;
	cr_assert_eq(n, 16, "only %d of 16 slots could be reused", n);
	for (int i = 0; i < n; i++)
		shmring_consumer_close(c[i]);
	munmap(b, sizeof(*b));
	cr_assert_eq(shmring_close(r), 0);
}

/* Detection time: a consumer that never reads is killed; the producer, held
 * by it with a full ring, is released within about REAP_NS. */
Test(liveness, dead_consumer_detected_quickly)
{
	struct shmring_opts o = test_opts(4096, 4);
	struct shmring *r;
	cr_assert_eq(shmring_create_anon("detect", &o, &r), 0);
	struct shmring_producer *p;
	cr_assert_eq(shmring_producer_open(r, &p), 0);
	uint64_t worst = 0;
	for (int round = 0; round < 20; round++) {
		_Atomic int *ready = test_shared_zero(sizeof(int));
		pid_t v = test_spawn();
		if (v == 0) {
			struct shmring_consumer *c;
			if (shmring_consumer_open(r, 0, &c))
				_exit(1);
			atomic_store(ready, 1);
			pause();
			_exit(0);
		}
		while (!atomic_load(ready))
			test_sleep_ns(100000);
		/* Fill the ring: the victim holds it. */
		char m[100] = { 0 };
		while (shmring_send(p, m, sizeof(m)) == 0)
			;
		cr_assert_eq(shmring_send(p, m, sizeof(m)), -EAGAIN);
		kill(v, SIGKILL);
		cr_assert_eq(test_wait(v), 128 + SIGKILL);
		uint64_t t0 = test_now_ns();
		struct timespec dl;
		shmring_deadline(&dl, 5000000000ull);
		cr_assert_eq(shmring_send_wait(p, m, sizeof(m), &dl), 0,
			     "the producer was not released");
		uint64_t t = test_now_ns() - t0;
		if (t > worst)
			worst = t;
		munmap((void *)ready, sizeof(int));
	}
	printf("dead consumer: worst detection %.1f ms over 20 kills (blocking send)\n",
	       (double)worst / 1e6);
	/* The non-blocking path finds them too. */
	pid_t v = test_spawn();
	if (v == 0) {
		struct shmring_consumer *c;
		if (shmring_consumer_open(r, 0, &c))
			_exit(1);
		pause();
		_exit(0);
	}
	struct shmring_info info;
	do {
		test_sleep_ns(1000000);
		shmring_info(r, &info);
	} while (info.consumers == 0);
	char m[100] = { 0 };
	while (shmring_send(p, m, sizeof(m)) == 0)
		;
	kill(v, SIGKILL);
	test_wait(v);
	uint64_t t0 = test_now_ns();
	int rc;
	while ((rc = shmring_send(p, m, sizeof(m))) == -EAGAIN &&
	       test_now_ns() - t0 < 5000000000ull)
		;
	cr_assert_eq(rc, 0, "non-blocking sends never got room");
	printf("dead consumer: non-blocking sender released after %.1f ms\n",
	       (double)(test_now_ns() - t0) / 1e6);
	fflush(stdout);
	cr_assert_lt(worst, 1000000000ull);
	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_close(r), 0);
}

/* A killed producer: consumers drain what was published, then -EPIPE, in
 * each way of waiting. */
Test(liveness, killed_producer_gives_epipe)
{
	uint64_t worst = 0;
	for (int mode = 0; mode < 4; mode++) {
		struct shmring *r;
		cr_assert_eq(shmring_create_anon("deadprod", NULL, &r), 0);
		struct shmring_consumer *c;
		if (mode == 3)
			cr_assert_eq(shmring_group_open(r, "g", 0, &c), 0);
		else
			cr_assert_eq(shmring_consumer_open(r, 0, &c), 0);
		_Atomic int *ready = test_shared_zero(sizeof(int));
		pid_t pp = test_spawn();
		if (pp == 0) {
			struct shmring_producer *p;
			if (shmring_producer_open(r, &p))
				_exit(1);
			for (uint64_t i = 0; i < 10; i++)
				shmring_send(p, &i, sizeof(i));
			atomic_store(ready, 1);
			pause();
			_exit(0);
		}
		while (!atomic_load(ready))
			test_sleep_ns(100000);
		uint64_t got = 0, x;
		size_t len;
		int rc;
		/* Drain while the producer lives, then it dies. */
		while (shmring_recv(c, &x, sizeof(x), &len) == 0) {
			cr_assert_eq(x, got);
			got++;
		}
		cr_assert_eq(got, 10);
		kill(pp, SIGKILL);
		cr_assert_eq(test_wait(pp), 128 + SIGKILL);
		uint64_t t0 = test_now_ns();
		struct timespec dl;
		shmring_deadline(&dl, 5000000000ull);
		if (mode == 0 || mode == 3) {
			rc = shmring_recv_wait(c, &x, sizeof(x), &len, &dl);
		} else if (mode == 1) {
			const void *d;
			rc = shmring_peek_wait(c, &d, &len, &dl);
		} else {
			while ((rc = shmring_recv(c, &x, sizeof(x), &len)) == -EAGAIN &&
			       test_now_ns() - t0 < 5000000000ull)
				test_sleep_ns(10000);
		}
		uint64_t t = test_now_ns() - t0;
		cr_assert_eq(rc, -EPIPE, "mode %d: %d (%s)", mode, rc, shmring_strerror(rc));
		if (t > worst)
			worst = t;
		shmring_consumer_close(c);
		cr_assert_eq(shmring_close(r), 0);
		munmap((void *)ready, sizeof(int));
	}
	/* A consumer already asleep when the producer dies. */
	struct shmring *r;
	cr_assert_eq(shmring_create_anon("deadprod2", NULL, &r), 0);
	struct shmring_consumer *c;
	cr_assert_eq(shmring_consumer_open(r, 0, &c), 0);
	_Atomic uint64_t *when = test_shared_zero(sizeof(uint64_t));
	pid_t pp = test_spawn();
	if (pp == 0) {
		struct shmring_producer *p;
		if (shmring_producer_open(r, &p))
			_exit(1);
		test_sleep_ns(100000000);
		atomic_store(when, test_now_ns());
		raise(SIGKILL);
		_exit(0);
	}
	size_t len;
	uint64_t x;
	int rc = shmring_recv_wait(c, &x, sizeof(x), &len, NULL);
	uint64_t t = test_now_ns() - atomic_load(when);
	cr_assert_eq(rc, -EPIPE);
	cr_assert_eq(test_wait(pp), 128 + SIGKILL);
	if (t > worst)
		worst = t;
	printf("dead producer: worst time from kill to -EPIPE %.1f ms\n", (double)worst / 1e6);
	fflush(stdout);
	cr_assert_lt(worst, 2000000000ull);
	shmring_consumer_close(c);
	cr_assert_eq(shmring_close(r), 0);
	munmap((void *)when, sizeof(uint64_t));
}

/* A new producer takes over from a dead one and continues the sequence; what
 * the dead one reserved and never committed is never seen. */
Test(liveness, takeover_after_producer_death)
{
	struct shmring *r;
	cr_assert_eq(shmring_create_anon("takeover", NULL, &r), 0);
	struct shmring_consumer *c;
	cr_assert_eq(shmring_consumer_open(r, 0, &c), 0);
	_Atomic int *ready = test_shared_zero(sizeof(int));
	pid_t pp = test_spawn();
	if (pp == 0) {
		struct shmring_producer *p;
		if (shmring_producer_open(r, &p))
			_exit(1);
		for (uint64_t i = 0; i < 5; i++)
			shmring_send(p, &i, sizeof(i));
		void *d;
		if (shmring_reserve(p, 8, &d))
			_exit(2);
		memcpy(d, "POISON!!", 8);
		atomic_store(ready, 1);
		pause();
		_exit(0);
	}
	while (!atomic_load(ready))
		test_sleep_ns(100000);
	struct shmring_producer *p;
	cr_assert_eq(shmring_producer_open(r, &p), -EBUSY, "the first producer still lives");
	kill(pp, SIGKILL);
	cr_assert_eq(test_wait(pp), 128 + SIGKILL);
	cr_assert_eq(shmring_producer_open(r, &p), 0, "takeover of a dead producer's ring");
	for (uint64_t i = 5; i < 10; i++)
		cr_assert_eq(shmring_send(p, &i, sizeof(i)), 0);
	uint64_t x, want = 0;
	size_t len;
	int rc;
	while ((rc = shmring_recv(c, &x, sizeof(x), &len)) == 0) {
		cr_assert_eq(len, 8);
		cr_assert_neq(memcmp(&x, "POISON!!", 8), 0, "an uncommitted record was published");
		cr_assert_eq(x, want);
		want++;
	}
	cr_assert_eq(rc, -EAGAIN);
	cr_assert_eq(want, 10);
	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_recv(c, &x, sizeof(x), &len), -EPIPE);
	shmring_consumer_close(c);
	cr_assert_eq(shmring_close(r), 0);
	munmap((void *)ready, sizeof(int));
}

/* All members of a group die: the group ends and stops holding the
 * producer; its slots are reused. */
Test(liveness, dead_group_ends)
{
	struct shmring_opts o = test_opts(4096, 3);
	struct shmring *r;
	cr_assert_eq(shmring_create_anon("deadgroup", &o, &r), 0);
	_Atomic int *ready = test_shared_zero(sizeof(int));
	pid_t v = test_spawn();
	if (v == 0) {
		struct shmring_consumer *a, *b;
		if (shmring_group_open(r, "g", 0, &a) || shmring_group_open(r, "g", 0, &b))
			_exit(1);
		atomic_store(ready, 1);
		pause();
		_exit(0);
	}
	while (!atomic_load(ready))
		test_sleep_ns(100000);
	struct shmring_info info;
	shmring_info(r, &info);
	cr_assert_eq(info.groups, 1);
	struct shmring_producer *p;
	cr_assert_eq(shmring_producer_open(r, &p), 0);
	char m[100] = { 0 };
	while (shmring_send(p, m, sizeof(m)) == 0)
		;
	kill(v, SIGKILL);
	test_wait(v);
	struct timespec dl;
	shmring_deadline(&dl, 5000000000ull);
	cr_assert_eq(shmring_send_wait(p, m, sizeof(m), &dl), 0);
	shmring_info(r, &info);
	cr_assert_eq(info.groups, 0);
	cr_assert_eq(info.consumers, 0);
	/* All three slots are free again. */
	struct shmring_consumer *c[3];
	for (int i = 0; i < 3; i++)
		cr_assert_eq(shmring_consumer_open(r, 0, &c[i]), 0);
	for (int i = 0; i < 3; i++)
		shmring_consumer_close(c[i]);
	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_close(r), 0);
	munmap((void *)ready, sizeof(int));
}

/* Every slot is held by a dead process: the next attach reclaims one. */
Test(liveness, dead_slots_reused_by_next_attach)
{
	struct shmring_opts o = test_opts(4096, 2);
	struct shmring *r;
	cr_assert_eq(shmring_create_anon("reuse", &o, &r), 0);
	pid_t v = test_spawn();
	if (v == 0) {
		struct shmring_consumer *a, *b;
		if (shmring_consumer_open(r, 0, &a) || shmring_consumer_open(r, 0, &b))
			_exit(1);
		raise(SIGKILL);
		_exit(0);
	}
	cr_assert_eq(test_wait(v), 128 + SIGKILL);
	struct shmring_info info;
	shmring_info(r, &info);
	cr_assert_eq(info.consumers, 2, "the dead still hold their slots");
	struct shmring_consumer *c[2];
	cr_assert_eq(shmring_consumer_open(r, 0, &c[0]), 0);
	cr_assert_eq(shmring_consumer_open(r, 0, &c[1]), 0);
	struct shmring_consumer *x;
	cr_assert_eq(shmring_consumer_open(r, 0, &x), -EUSERS, "the living are not reaped");
	for (int i = 0; i < 2; i++)
		shmring_consumer_close(c[i]);
	cr_assert_eq(shmring_close(r), 0);
}

/* Liveness does not depend on pids: a consumer in another pid namespace
 * (where it is pid 1 or 2, numbers that mean other processes here) is
 * alive while it lives and reaped once killed. */
Test(liveness, consumer_in_another_pid_namespace)
{
	struct shmring_opts o = test_opts(4096, 4);
	struct shmring *r;
	cr_assert_eq(shmring_create_anon("pidns", &o, &r), 0);
	_Atomic int *state = test_shared_zero(2 * sizeof(int));
	pid_t mid = test_spawn();
	if (mid == 0) {
		if (unshare(CLONE_NEWPID) < 0)
			_exit(77); /* not allowed here */
		pid_t in = fork(); /* pid 1 of the new namespace */
		if (in < 0)
			_exit(1);
		if (in == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL); /* dies with mid */
			struct shmring_consumer *c;
			if (shmring_consumer_open(r, 0, &c))
				_exit(1);
			atomic_store(&state[1], (int)getpid());
			atomic_store(&state[0], 1);
			pause();
			_exit(0);
		}
		int st;
		waitpid(in, &st, 0);
		_exit(0);
	}
	for (int i = 0; i < 5000 && !atomic_load(&state[0]); i++) {
		int st;
		if (waitpid(mid, &st, WNOHANG) == mid) {
			if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
				cr_skip_test("unshare(CLONE_NEWPID) is not permitted here");
			cr_assert_fail("the namespace child failed: %d", st);
		}
		test_sleep_ns(1000000);
	}
	cr_assert_eq(atomic_load(&state[0]), 1);
	cr_assert_eq(atomic_load(&state[1]), 1, "the consumer is pid 1 in its namespace");
	struct shmring_producer *p;
	cr_assert_eq(shmring_producer_open(r, &p), 0);
	char m[100] = { 0 };
	while (shmring_send(p, m, sizeof(m)) == 0)
		;
	/* Alive: it keeps holding the producer back. */
	struct timespec dl;
	shmring_deadline(&dl, 100000000);
	cr_assert_eq(shmring_send_wait(p, m, sizeof(m), &dl), -ETIMEDOUT,
		     "a live consumer in another pid namespace was taken for dead");
	/* Kill the middle process: the consumer, the namespace's init, dies
	 * with it (PR_SET_PDEATHSIG). */
	kill(mid, SIGKILL);
	test_wait(mid);
	shmring_deadline(&dl, 5000000000ull);
	int rc;
	uint64_t t0 = test_now_ns();
	while ((rc = shmring_send_wait(p, m, sizeof(m), &dl)) == 0 &&
	       test_now_ns() - t0 < 10000000)
		;
	cr_assert_eq(rc, 0, "the dead consumer still holds the producer: %s",
		     shmring_strerror(rc));
	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_close(r), 0);
	munmap((void *)state, 2 * sizeof(int));
}
