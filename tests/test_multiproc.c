/* SPDX-License-Identifier: MIT */
/* Description: 1 producer and 4 broadcast consumer processes move millions of
 * self-checking messages (random sizes, sequence numbers, checksums) through
 * rings from one page to 64 MiB; each consumer proves order, no loss, no
 * duplicate and no corruption.  Half the consumers copy (recv), half read in
 * place (peek/release in batches); the producer mixes zero-copy batches and
 * copying sends.
 *
 * Environment: SHMRING_TEST_MESSAGES (default 10000000 for the 1 MiB run),
 * SHMRING_TEST_SWEEP_MESSAGES (default 1000000 per capacity of the sweep),
 * SHMRING_TEST_SEED (default: time-based; printed). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define NCONS 4

struct run {
	uint64_t cap, n, seed;
	size_t max_len;
};

static int producer_main(struct shmring *r, const struct run *run)
{
	struct shmring_producer *p;
	int rc = shmring_producer_open(r, &p);
	if (rc) {
		fprintf(stderr, "producer_open: %s\n", shmring_strerror(rc));
		return 1;
	}
	uint64_t s = run->seed | 1;
	static uint8_t buf[1 << 13];
	uint64_t seq = 0;
	while (seq < run->n) {
		/* A batch of 1..16 records, zero-copy or copied. */
		unsigned batch = 1 + (unsigned)(test_rnd(&s) % 16);
		int zero_copy = test_rnd(&s) & 1;
		for (unsigned b = 0; b < batch && seq < run->n; b++, seq++) {
			size_t len = msg_len(run->seed, seq, run->max_len);
			if (zero_copy) {
				void *d;
				rc = shmring_reserve_wait(p, len, &d, NULL);
				if (rc == -ENOBUFS) { /* batch larger than the ring */
					shmring_commit(p);
					rc = shmring_reserve_wait(p, len, &d, NULL);
				}
				if (rc == 0)
					msg_fill(d, len, seq);
			} else {
				msg_fill(buf, len, seq);
				rc = shmring_send_wait(p, buf, len, NULL);
			}
			if (rc) {
				fprintf(stderr, "producer: seq %llu len %zu: %s\n",
					(unsigned long long)seq, len, shmring_strerror(rc));
				return 1;
			}
		}
		shmring_commit(p);
	}
	return shmring_producer_close(p) ? 1 : 0;
}

static int consumer_main(struct shmring_consumer *c, int id, const struct run *run)
{
	static uint8_t buf[1 << 13];
	uint64_t seq = 0, s = (run->seed + (uint64_t)id) | 1;
	int rc;
	size_t len;
	const void *d;
	unsigned held = 0, hold = 1;

	for (;;) {
		if (id % 2 == 0) {
			rc = shmring_recv_wait(c, buf, sizeof(buf), &len, NULL);
			d = buf;
		} else {
			/* Give back what we hold before sleeping: the producer
			 * may be waiting for exactly that room. */
			rc = shmring_peek(c, &d, &len);
			if (rc == -EAGAIN) {
				shmring_release(c);
				held = 0;
				rc = shmring_peek_wait(c, &d, &len, NULL);
			}
		}
		if (rc == -EPIPE)
			break;
		if (rc) {
			fprintf(stderr, "consumer %d: at seq %llu: %s\n", id,
				(unsigned long long)seq, shmring_strerror(rc));
			return 1;
		}
		int bad = seq >= run->n ? MSG_BAD_SEQ
					: msg_check(d, len, run->seed, seq, run->max_len);
		if (bad) {
			uint64_t got = ~0ull;
			if (len >= 8)
				memcpy(&got, d, 8);
			fprintf(stderr,
				"consumer %d: expected seq %llu (len %zu), got len %zu "
				"carrying seq %llu: %s\n",
				id, (unsigned long long)seq,
				seq < run->n ? msg_len(run->seed, seq, run->max_len) : 0, len,
				(unsigned long long)got, msg_strerror(bad));
			return 1;
		}
		seq++;
		/* In-place readers release in batches of 1..8. */
		if (id % 2 && ++held >= hold) {
			shmring_release(c);
			held = 0;
			hold = 1 + (unsigned)(test_rnd(&s) % 8);
		}
	}
	if (seq != run->n) {
		fprintf(stderr, "consumer %d: got %llu of %llu messages\n", id,
			(unsigned long long)seq, (unsigned long long)run->n);
		return 1;
	}
	return 0;
}

/* max_len: the largest message, or 0 for the largest the ring takes (at
 * most 4096 bytes). */
static void run_ring_len(uint64_t cap, uint64_t n, size_t max_len, uint32_t flags)
{
	struct run run = { .cap = cap, .n = n };
	run.seed = test_env("SHMRING_TEST_SEED", test_now_ns());
	struct shmring_opts o = test_opts(cap, 8);
	o.flags = flags;
	struct shmring *r;
	cr_assert_eq(shmring_create_anon("multiproc", &o, &r), 0);
	struct shmring_info info;
	shmring_info(r, &info);
	cr_assert_eq(info.capacity, cap);
	run.max_len = info.max_message < 4096 ? info.max_message : 4096;
	if (max_len)
		run.max_len = max_len;

	/* Attach every consumer before the producer starts, so each must see
	 * every message. */
	struct shmring_consumer *c[NCONS];
	for (int i = 0; i < NCONS; i++)
		cr_assert_eq(shmring_consumer_open(r, SHMRING_START_OLDEST, &c[i]), 0);

	uint64_t t0 = test_now_ns();
	pid_t pids[NCONS + 1];
	for (int i = 0; i <= NCONS; i++) {
		pids[i] = fork();
		cr_assert_neq(pids[i], -1);
		if (pids[i] == 0) {
			/* Never outlive the test: a killed test must not leave
			 * children holding its output open. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			_exit(i == NCONS ? producer_main(r, &run) : consumer_main(c[i], i, &run));
		}
	}
	/* In the order they end: after a failure the others are killed, for
	 * the consumers' slots outlive them (this process opened them) and the
	 * producer would wait for the failed one's room for ever. */
	int failed = 0;
	for (int left = NCONS + 1; left > 0; left--) {
		int st, i;
		pid_t pid;
		while ((pid = wait(&st)) < 0 && errno == EINTR)
			;
		cr_assert_gt(pid, 0, "wait: %s", strerror(errno));
		for (i = 0; i <= NCONS && pids[i] != pid; i++)
			;
		cr_assert_leq(i, NCONS, "wait: not our child %d", (int)pid);
		pids[i] = 0;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			continue;
		if (!failed) {
			fprintf(stderr, "%s %d %s %d\n", i == NCONS ? "producer" : "consumer", i,
				WIFEXITED(st) ? "exited with status" : "was killed by signal",
				WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
			for (int k = 0; k <= NCONS; k++)
				if (pids[k] > 0)
					kill(pids[k], SIGKILL);
		}
		failed = 1;
	}
	double secs = (double)(test_now_ns() - t0) / 1e9;
	printf("capacity %8llu: %llu messages x %d consumers in %.2f s, %.0f msg/s "
	       "(seed %llu)\n",
	       (unsigned long long)cap, (unsigned long long)n, NCONS, secs, (double)n / secs,
	       (unsigned long long)run.seed);
	fflush(stdout);
	cr_assert_eq(failed, 0, "a process failed; rerun with SHMRING_TEST_SEED=%llu",
		     (unsigned long long)run.seed);

	/* Everyone has detached in the children; the parent's handles free
	 * the slots here. */
	shmring_info(r, &info);
	cr_assert_eq(info.tail > 0 || n == 0, 1);
	cr_assert_eq(info.closed, 1);
	for (int i = 0; i < NCONS; i++)
		shmring_consumer_close(c[i]);
	cr_assert_eq(shmring_close(r), 0);
}

static void run_ring(uint64_t cap, uint64_t n)
{
	run_ring_len(cap, n, 0, 0);
}

Test(multiproc, ten_million_1MiB)
{
	run_ring(1 << 20, test_env("SHMRING_TEST_MESSAGES", 10000000));
}

Test(multiproc, sweep_one_page)
{
	run_ring(4096, test_env("SHMRING_TEST_SWEEP_MESSAGES", 1000000));
}

Test(multiproc, sweep_8KiB)
{
	run_ring(8192, test_env("SHMRING_TEST_SWEEP_MESSAGES", 1000000));
}

Test(multiproc, sweep_64KiB)
{
	run_ring(64 << 10, test_env("SHMRING_TEST_SWEEP_MESSAGES", 1000000));
}

Test(multiproc, sweep_16MiB)
{
	run_ring(16 << 20, test_env("SHMRING_TEST_SWEEP_MESSAGES", 1000000));
}

Test(multiproc, sweep_64MiB)
{
	run_ring(64 << 20, test_env("SHMRING_TEST_SWEEP_MESSAGES", 1000000));
}

/* SHMRING_INLINE_SMALL, messages of 0-40 bytes: a copying send of up to
 * SHMRING_INLINE_MAX bytes also writes a copy into the tail's line, which
 * a consumer in recv_wait takes when it has caught up (layout.h); the copy
 * is rewritten under it by the next such send. */
Test(multiproc, small_messages_inline_64KiB)
{
	run_ring_len(64 << 10, test_env("SHMRING_TEST_SWEEP_MESSAGES", 1000000) * 3, 40,
		     SHMRING_INLINE_SMALL);
}
