/* SPDX-License-Identifier: MIT */
/* Description: minimal producer and consumer.  The parent creates an
 * anonymous ring, forks a consumer, publishes 10 messages and closes; the
 * consumer prints them and stops at -EPIPE. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmring.h>

int main(void)
{
	struct shmring *ring;
	struct shmring_consumer *c;
	struct shmring_producer *p;
	int rc;

	rc = shmring_create_anon("example", NULL, &ring);
	if (rc) {
		fprintf(stderr, "create: %s\n", shmring_strerror(rc));
		return 1;
	}
	/* Attach before forking so the consumer sees every message. */
	rc = shmring_consumer_open(ring, SHMRING_START_OLDEST, &c);
	if (rc) {
		fprintf(stderr, "consumer: %s\n", shmring_strerror(rc));
		return 1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		char buf[256];
		size_t len;
		int n = 0;
		while ((rc = shmring_recv_wait(c, buf, sizeof(buf) - 1, &len, NULL)) == 0) {
			buf[len] = '\0';
			printf("consumer got: %s\n", buf);
			n++;
		}
		/* -EPIPE: the producer closed and everything was read.  Flush
		 * before _exit(), which skips stdio. */
		fflush(stdout);
		_exit(rc == -EPIPE && n == 10 ? 0 : 1);
	}
	rc = shmring_producer_open(ring, &p);
	if (rc) {
		fprintf(stderr, "producer: %s\n", shmring_strerror(rc));
		return 1;
	}
	for (int i = 0; i < 10; i++) {
		char msg[64];
		int n = snprintf(msg, sizeof(msg), "message %d", i);
		rc = shmring_send_wait(p, msg, (size_t)n, NULL);
		if (rc) {
			fprintf(stderr, "send: %s\n", shmring_strerror(rc));
			return 1;
		}
	}
	shmring_producer_close(p); /* consumers drain, then get -EPIPE */
	int status;
	waitpid(pid, &status, 0);
	shmring_consumer_close(c);
	shmring_close(ring);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
