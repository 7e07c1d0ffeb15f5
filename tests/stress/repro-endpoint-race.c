/* SPDX-License-Identifier: MIT */
/*
 * Description: reproducer for a race in the library (reported, not fixed
 * here): opening and closing endpoints on ONE ring handle from several
 * threads at once.  endpoint_add()/endpoint_del() (src/ring.c) update
 * r->endpoints, a plain unsigned, without atomics, so increments and
 * decrements get lost.  Afterwards shmring_close() answers -EBUSY with no
 * endpoint open (a leak), or 0 while one is still open (then the mapping
 * goes away under a live consumer).  Exit 1 if a lost update was seen, 0
 * if not: without TSan the window is a few instructions between system
 * calls and is rarely hit; "make stress-repro SAN=tsan" reports the race on
 * the first run.
 * Build: make stress-repro (links the static library; SAN=tsan shows the
 * race report directly).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmring.h"

#define THREADS 4
static struct shmring *ring;
static int rounds = 20000;

static void *churn(void *arg)
{
	(void)arg;
	for (int i = 0; i < rounds; i++) {
		struct shmring_consumer *c;
		int rc = shmring_consumer_open(ring, 0, &c);
		if (rc) {
			fprintf(stderr, "consumer_open: %s\n", shmring_strerror(rc));
			exit(2);
		}
		shmring_consumer_close(c);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		rounds = atoi(argv[1]);
	struct shmring_opts o;
	memset(&o, 0, sizeof(o));
	o.size = sizeof(o);
	o.capacity = 4096;
	o.max_consumers = 64;
	int rc = shmring_create_anon("repro", &o, &ring);
	if (rc) {
		fprintf(stderr, "create: %s\n", shmring_strerror(rc));
		return 2;
	}
	/* One endpoint stays open all along: close must say -EBUSY. */
	struct shmring_consumer *keep;
	shmring_consumer_open(ring, 0, &keep);
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, churn, NULL);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	int bad = 0;
	/* Probe: with `keep` open, close must refuse.  (If it does not, it has
	 * unmapped the ring: report and stop.) */
	rc = shmring_close(ring);
	if (rc == 0) {
		printf("BUG: shmring_close() returned 0 with an endpoint still open "
		       "(lost increments); the ring was unmapped under it\n");
		return 1;
	}
	shmring_consumer_close(keep);
	rc = shmring_close(ring);
	if (rc != 0) {
		printf("BUG: shmring_close() returned %s with no endpoint open "
		       "(lost decrements): the handle can never be closed\n", shmring_strerror(rc));
		bad = 1;
	}
	if (!bad)
		printf("no lost update seen in %d opens/closes by %d threads\n", rounds * THREADS,
		       THREADS);
	return bad;
}
