/* SPDX-License-Identifier: MIT */
/*
 * batch-cost: the CPU cost per message of the consumer's batch calls, with
 * no second CPU in the way.  One process, one thread, one 512 KiB ring:
 * each step reserves 32 records of `size` bytes (shmring_reserve_array),
 * copies and stamps them, commits, and then reads them back, either with
 * shmring_recv_batch() into a buffer or with shmring_peek_batch() and
 * shmring_release(), checking each message's length and stamps.  Only the
 * read side is timed.  Every line is in this CPU's cache, so the figures
 * are the library's instructions, not cache-line transfers: they tell
 * what a change to the read path saves, which the two-process harness
 * shows only where the line transfers are cheap (the near placement,
 * perf/RESULTS.md).
 *
 *   make && cc -O2 -Wall -Wextra -Iinclude -o batch-cost \
 *       perf/experiments/batch-cost.c build/libshmring.a
 *   taskset -c 1 ./batch-cost [size]      # size 8..4096, default 64
 *
 * Prints the best of 7 runs of 100000 batches, in ns a message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shmring.h"

#define BATCH 32
#define STEPS 100000
#define RUNS 7

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Publishes BATCH records (more than one reservation near the lap's end). */
static int publish(struct shmring_producer *p, size_t size, const uint8_t *src, uint64_t *seq)
{
	for (int k = 0; k < BATCH;) {
		void *d;
		int got = shmring_reserve_array(p, size, BATCH - k, &d);
		if (got <= 0) {
			fprintf(stderr, "shmring_reserve_array: %s\n", shmring_strerror(got));
			return -1;
		}
		uint8_t *x = d;
		for (int i = 0; i < got; i++, x += SHMRING_RECORD_SIZE(size), ++*seq) {
			memcpy(x, src, size);
			memcpy(x, seq, 8);
			memcpy(x + size - 8, seq, 8);
		}
		k += got;
	}
	return shmring_commit(p) < 0 ? -1 : 0;
}

/* Reads everything published; -1 if a message is wrong. */
static int drain(struct shmring_consumer *c, int peek, size_t size, void *buf, size_t buflen,
		 uint64_t *next)
{
	struct shmring_msg m[BATCH];
	for (;;) {
		int n = peek ? shmring_peek_batch(c, m, BATCH)
			     : shmring_recv_batch(c, buf, buflen, m, BATCH);
		if (n == -EAGAIN)
			return 0;
		if (n <= 0) {
			fprintf(stderr, "read: %s\n", shmring_strerror(n));
			return -1;
		}
		for (int i = 0; i < n; i++, ++*next) {
			uint64_t a, z;
			memcpy(&a, m[i].data, 8);
			memcpy(&z, (const uint8_t *)m[i].data + size - 8, 8);
			if (m[i].len != size || a != *next || z != *next) {
				fprintf(stderr, "message %llu is wrong\n", (unsigned long long)*next);
				return -1;
			}
		}
		if (peek && shmring_release(c) != n)
			return -1;
	}
}

int main(int argc, char **argv)
{
	size_t size = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
	if (size < 8 || size > 4096) {
		fprintf(stderr, "usage: batch-cost [size 8..4096]\n");
		return 2;
	}
	struct shmring_opts o = {.size = sizeof(o), .capacity = 1u << 19, .max_consumers = 1};
	struct shmring *r;
	struct shmring_producer *p;
	struct shmring_consumer *c;
	if (shmring_create_anon("batch-cost", &o, &r) || shmring_producer_open(r, &p) ||
	    shmring_consumer_open(r, SHMRING_START_OLDEST, &c))
		return 1;
	static uint8_t src[4096], buf[BATCH * 4096];
	uint64_t seq = 0, next = 0;
	for (int peek = 0; peek < 2; peek++) {
		double best = 1e9;
		for (int run = 0; run < RUNS; run++) {
			double t = 0;
			for (int s = 0; s < STEPS; s++) {
				if (publish(p, size, src, &seq))
					return 1;
				double t0 = now();
				if (drain(c, peek, size, buf, sizeof(buf), &next))
					return 1;
				t += now() - t0;
			}
			if (t < best)
				best = t;
		}
		printf("%-10s %4zu B: %.2f ns a message\n", peek ? "peek_batch" : "recv_batch", size,
		       best / ((double)STEPS * BATCH) * 1e9);
	}
	shmring_consumer_close(c);
	shmring_producer_close(p);
	shmring_close(r);
	return 0;
}
