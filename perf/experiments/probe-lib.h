/* SPDX-License-Identifier: MIT */
/*
 * libshmring in a probe's rounds, driven as perf/m_shmring.c drives it at
 * batch 32: a CAP-byte anonymous ring; the producer (CPU 0) takes
 * shmring_reserve_array_wait() for up to 32 records, writes each with
 * put_message() and commits the 32 at once; the consumer, a child process,
 * is the probe's own.  Include after probe.h.
 */
#ifndef PROBE_LIB_H
#define PROBE_LIB_H

#include <errno.h>

#include "shmring.h"

/* The consumer: runs in the child, stores 1 in *ready once it is attached,
 * reads MSGS messages; 0, or 1 if one was wrong or a call failed. */
typedef int (*lib_consumer_fn)(struct shmring *r, _Atomic int *ready);

/* One run; millions of messages a second, or -1. */
static double lib_run(const uint8_t *src, lib_consumer_fn consume)
{
	struct shmring_opts o = {.size = sizeof(o), .capacity = CAP, .max_consumers = 1};
	struct shmring *r;
	struct shmring_producer *p;
	_Atomic int *ready = mmap(NULL, sizeof(*ready), PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int rc = ready == MAP_FAILED ? -ENOMEM : shmring_create_anon("probe", &o, &r);
	if (rc) {
		fprintf(stderr, "shmring_create_anon: %s\n", shmring_strerror(rc));
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0)
		_exit(consume(r, ready));
	pin(0);
	rc = shmring_producer_open(r, &p);
	if (rc) {
		fprintf(stderr, "shmring_producer_open: %s\n", shmring_strerror(rc));
		return -1;
	}
	while (!atomic_load(ready))
		__builtin_ia32_pause();
	double t0 = now();
	for (uint64_t seq = 0; seq < MSGS;) {
		for (unsigned k = 0; k < BATCH;) {
			void *d;
			int got = shmring_reserve_array_wait(p, SIZE, BATCH - k, &d, NULL);
			if (got < 0) {
				fprintf(stderr, "shmring_reserve_array_wait: %s\n", shmring_strerror(got));
				return -1;
			}
			uint8_t *x = d;
			for (int i = 0; i < got; i++, x += SHMRING_RECORD_SIZE(SIZE), seq++)
				put_message(x, src, seq);
			k += (unsigned)got;
		}
		if (shmring_commit(p) < 0)
			return -1;
	}
	int st;
	waitpid(pid, &st, 0);
	double rate = MSGS / (now() - t0) / 1e6;
	shmring_producer_close(p);
	shmring_close(r);
	munmap(ready, sizeof(*ready));
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fprintf(stderr, "consumer: wait status %#x\n", st);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? rate : -1;
}

#endif
