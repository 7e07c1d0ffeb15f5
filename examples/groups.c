/* SPDX-License-Identifier: MIT */
/* Description: group workers.  The parent publishes 3000 jobs to a consumer
 * group of 3 worker processes; each job goes to exactly one of them.  The
 * workers record what they did in shared memory, and the parent checks that
 * every job was done once, whichever worker took it. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmring.h>

#define WORKERS 3
#define JOBS 3000

struct results {
	unsigned char done[JOBS];       /* times each job was done */
	uint64_t sum[WORKERS];          /* each worker's sum of squares */
};

static int worker(struct shmring *ring, struct results *res, int me, int ready)
{
	struct shmring_consumer *c;
	/* Each worker joins in its own process: the group's cursor is shared,
	 * each member holds its own liveness lock. */
	int rc = shmring_group_open(ring, "workers", SHMRING_START_OLDEST, &c);
	if (rc) {
		fprintf(stderr, "worker %d: %s\n", me, shmring_strerror(rc));
		return 1;
	}
	if (write(ready, "x", 1) != 1)
		return 1;
	uint32_t job;
	size_t len;
	while ((rc = shmring_recv_wait(c, &job, sizeof(job), &len, NULL)) == 0) {
		if (len != sizeof(job) || job >= JOBS)
			return 1;
		res->done[job]++;       /* a job goes to one worker: no race */
		res->sum[me] += (uint64_t)job * job;
	}
	shmring_consumer_close(c);
	return rc == -EPIPE ? 0 : 1;    /* -EPIPE: closed and drained */
}

int main(void)
{
	struct shmring *ring;
	struct shmring_producer *p;
	struct shmring_opts o = { .size = sizeof(o), .capacity = 4096 };
	int rc = shmring_create_anon("groups", &o, &ring);
	if (rc) {
		fprintf(stderr, "create: %s\n", shmring_strerror(rc));
		return 1;
	}
	struct results *res = mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int ready[2];
	if (res == MAP_FAILED || pipe(ready) < 0)
		return 1;
	pid_t pids[WORKERS];
	for (int i = 0; i < WORKERS; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			_exit(worker(ring, res, i, ready[1]));
	}
	/* Publish only once every worker has joined, so none misses a job. */
	for (int i = 0; i < WORKERS; i++) {
		char x;
		if (read(ready[0], &x, 1) != 1)
			return 1;
	}
	rc = shmring_producer_open(ring, &p);
	if (rc) {
		fprintf(stderr, "producer: %s\n", shmring_strerror(rc));
		return 1;
	}
	for (uint32_t job = 0; job < JOBS; job++) {
		/* A 4 KiB ring holds 256 jobs: the producer waits for the
		 * workers now and then (policy BLOCK loses nothing). */
		rc = shmring_send_wait(p, &job, sizeof(job), NULL);
		if (rc) {
			fprintf(stderr, "send: %s\n", shmring_strerror(rc));
			return 1;
		}
	}
	shmring_producer_close(p);      /* the workers drain, then get -EPIPE */
	int ok = 1;
	for (int i = 0; i < WORKERS; i++) {
		int st;
		waitpid(pids[i], &st, 0);
		ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	int once = 0;
	uint64_t sum = 0, want = 0;
	for (uint32_t j = 0; j < JOBS; j++) {
		once += res->done[j] == 1;
		want += (uint64_t)j * j;
	}
	for (int i = 0; i < WORKERS; i++)
		sum += res->sum[i];
	printf("%d workers shared %d jobs: %d done exactly once\n", WORKERS, JOBS, once);
	printf("sum of squares: %llu (expected %llu)\n", (unsigned long long)sum,
	       (unsigned long long)want);
	shmring_close(ring);
	return ok && once == JOBS && sum == want ? 0 : 1;
}
