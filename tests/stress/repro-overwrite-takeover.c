/* SPDX-License-Identifier: MIT */
/*
 * Description: reproducer for a library bug found by make stress (reported,
 * not fixed here): in an OVERWRITE ring, a producer SIGKILLed in the middle
 * of updating its (head, head_seq, tail, tail_seq) snapshot leaves a torn
 * pair, e.g. the new head with the old head_seq (advance_head(),
 * src/producer.c:230-234) or the new tail_seq with the old tail (commit(),
 * producer.c:314-317).  shmring_producer_open() takes the odd `ver` as the
 * only sign (producer.c:141-143) and keeps the torn values, so from then on
 * every consumer that attaches or is lapped gets -EPROTO (or -EOVERFLOW
 * with no loss), for ever.
 * Method: a producer child sends tiny messages (so that nearly every send
 * moves head) and is SIGKILLed at a random moment; a new child takes over.
 * After each takeover, a consumer attaching at the oldest message must read
 * it without -EPROTO.  Exit 1 when the torn state is seen, 0 if not after
 * the given number of kills (default 3000).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmring.h"

/* Sends n tiny messages (n < 0: for ever), then waits to be killed. */
static void child(struct shmring *r, int n)
{
	struct shmring_producer *p;
	int rc;
	while ((rc = shmring_producer_open(r, &p)) == -EBUSY)
		usleep(100);
	if (rc)
		_exit(3);
	char msg[16] = "0123456789abcdef";
	for (unsigned i = 0; n < 0 || i < (unsigned)n; i++)
		shmring_send(p, msg, i % 17);
	for (;;)
		pause();
}

/* 0: the ring reads fine from its oldest message; -EPROTO: torn. */
static int probe(struct shmring *r)
{
	struct shmring_consumer *c;
	int rc;
	for (int i = 0; i < 100; i++) {
		rc = shmring_consumer_open(r, SHMRING_START_OLDEST, &c);
		if (rc != -EAGAIN)
			break;
		usleep(1000);
	}
	if (rc)
		return rc; /* -EAGAIN: ver stays odd, -EPROTO: torn */
	char buf[64];
	size_t len;
	for (int i = 0; i < 64; i++) {
		rc = shmring_recv(c, buf, sizeof(buf), &len);
		if (rc == -EOVERFLOW)
			continue;
		if (rc)
			break;
	}
	shmring_consumer_close(c);
	return rc == -EAGAIN || rc == -EPIPE ? 0 : rc;
}

int main(int argc, char **argv)
{
	int kills = argc > 1 ? atoi(argv[1]) : 3000;
	struct shmring_opts o;
	memset(&o, 0, sizeof(o));
	o.size = sizeof(o);
	o.capacity = 4096;
	o.policy = SHMRING_POLICY_OVERWRITE;
	struct shmring *r;
	int rc = shmring_create_anon("repro-ow", &o, &r);
	if (rc) {
		fprintf(stderr, "create: %s\n", shmring_strerror(rc));
		return 2;
	}
	srand((unsigned)getpid());
	for (int k = 1; k <= kills; k++) {
		pid_t pid = fork();
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			child(r, -1);
		}
		struct timespec ts = { 0, 200000 + rand() % 800000 };
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		/* A new producer takes over and sends a little, then the probe. */
		pid = fork();
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			child(r, 1000);
		}
		/* Wait until it has sent them all (its 1000 messages fill the
		 * ring several times over), then look. */
		struct shmring_info info;
		uint64_t t0;
		do {
			shmring_info(r, &info);
			t0 = info.tail;
			ts.tv_nsec = 2000000;
			nanosleep(&ts, NULL);
			shmring_info(r, &info);
		} while (info.tail != t0 || !info.producer);
		rc = probe(r);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		if (rc) {
			printf("BUG: after %d producer kills, a consumer attaching at the oldest "
			       "message gets %s\n", k, shmring_strerror(rc));
			return 1;
		}
	}
	printf("no torn snapshot seen in %d producer kills\n", kills);
	return 0;
}
