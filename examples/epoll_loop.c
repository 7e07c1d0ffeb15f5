/* SPDX-License-Identifier: MIT */
/* Description: one thread serves a ring, a timer and a socket with epoll.
 * The ring becomes a file descriptor through a notification signal
 * (shmring_notify) that is blocked and read with signalfd.  A child process
 * publishes bursts of messages and writes lines to a socket; the parent
 * drains the ring on each signal, re-arms, and also re-arms on each timer
 * tick (which notices a producer that died).  It stops when the ring has
 * ended (-EPIPE) and the socket is closed. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmring.h>

#define BURSTS 50
#define PER_BURST 40
#define LINES 5

static int die(const char *what, int err)
{
	fprintf(stderr, "epoll_loop: %s: %s\n", what, shmring_strerror(err));
	return 1;
}

/* The child: a producer that publishes in bursts, and a socket writer. */
static int produce(struct shmring *ring, int sock)
{
	struct shmring_producer *p;
	int rc = shmring_producer_open(ring, &p);
	if (rc)
		return die("producer_open", rc);
	uint32_t seq = 0;
	for (int b = 0; b < BURSTS; b++) {
		for (int i = 0; i < PER_BURST; i++, seq++) {
			rc = shmring_send_wait(p, &seq, sizeof(seq), NULL);
			if (rc)
				return die("send_wait", rc);
		}
		if (b % (BURSTS / LINES) == 0) {
			char line[32];
			int n = snprintf(line, sizeof(line), "burst %d", b);
			if (write(sock, line, (size_t)n) != n)
				return die("write", -errno);
		}
		struct timespec pause = { 0, 2000000 }; /* 2 ms between bursts */
		nanosleep(&pause, NULL);
	}
	shmring_producer_close(p); /* consumers drain, then get -EPIPE */
	close(sock);
	return 0;
}

int main(void)
{
	struct shmring *ring;
	struct shmring_consumer *c;
	int sv[2], rc;

	rc = shmring_create_anon("epoll-example", NULL, &ring);
	if (rc)
		return die("create", rc);
	rc = shmring_consumer_open(ring, SHMRING_START_OLDEST, &c);
	if (rc)
		return die("consumer_open", rc);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return die("socketpair", -errno);

	pid_t pid = fork();
	if (pid < 0)
		return die("fork", -errno);
	if (pid == 0) {
		close(sv[0]);
		_exit(produce(ring, sv[1]));
	}
	close(sv[1]);

	/* The notification signal is blocked and read through a signalfd. */
	int signo = SIGRTMIN + 1;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, signo);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return die("sigprocmask", -errno);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || tfd < 0 || ep < 0)
		return die("signalfd/timerfd/epoll", -errno);
	struct itimerspec its = { { 0, 20000000 }, { 0, 20000000 } }; /* 20 ms */
	timerfd_settime(tfd, 0, &its, NULL);
	int fds[3] = { sfd, tfd, sv[0] };
	for (int i = 0; i < 3; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fds[i] };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0)
			return die("epoll_ctl", -errno);
	}

	/* The value names this cursor: the signal carries it back. */
	rc = shmring_notify(c, signo, c);
	if (rc)
		return die("notify", rc);

	uint32_t next = 0;
	unsigned lines = 0, signals = 0, bad = 0;
	int ring_done = 0, sock_done = 0;
	while (!ring_done || !sock_done) {
		struct epoll_event ev[3];
		int n = epoll_wait(ep, ev, 3, 5000);
		if (n == 0)
			return die("epoll_wait", -ETIMEDOUT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return die("epoll_wait", -errno);
		}
		for (int i = 0; i < n; i++) {
			int fd = ev[i].data.fd;
			int drain = 0;
			if (fd == sfd) {
				struct signalfd_siginfo si;
				while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
					signals++;
					if (si.ssi_code != SI_QUEUE ||
					    si.ssi_ptr != (uint64_t)(uintptr_t)c)
						bad++;
				}
				drain = 1;
			} else if (fd == tfd) {
				uint64_t ticks;
				if (read(tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
					return die("read timerfd", -errno);
				drain = 1;
			} else {
				char buf[64];
				ssize_t k = recv(sv[0], buf, sizeof(buf), 0);
				if (k > 0)
					lines++;
				else if (k == 0) {
					sock_done = 1;
					epoll_ctl(ep, EPOLL_CTL_DEL, sv[0], NULL);
				}
			}
			if (!drain || ring_done)
				continue;
			/* Drain the ring, then arm again: arming signals at once
			 * if something arrived meanwhile. */
			char buf[4096];
			struct shmring_msg m[64];
			for (;;) {
				rc = shmring_recv_batch(c, buf, sizeof(buf), m, 64);
				if (rc == -EAGAIN)
					break;
				if (rc == -EPIPE) {
					ring_done = 1;
					break;
				}
				if (rc < 0)
					return die("recv_batch", rc);
				for (int k = 0; k < rc; k++) {
					uint32_t v;
					memcpy(&v, m[k].data, sizeof(v));
					if (m[k].len != sizeof(v) || v != next)
						bad++;
					next++;
				}
			}
			if (!ring_done && (rc = shmring_notify(c, signo, c)))
				return die("notify", rc);
		}
	}

	int status;
	waitpid(pid, &status, 0);
	printf("ring: %u messages, %s\n", next,
	       next == BURSTS * PER_BURST && !bad ? "all in order" : "WRONG");
	printf("socket: %u lines\n", lines);
	printf("producer: %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "failed");
	shmring_consumer_close(c);
	shmring_close(ring);
	/* Fewer signals than bursts: one per arming, never one per message. */
	if (signals == 0 || signals > BURSTS * PER_BURST / 2)
		fprintf(stderr, "epoll_loop: %u signals for %u messages\n", signals, next);
	return next == BURSTS * PER_BURST && !bad && lines == LINES && WIFEXITED(status) &&
			       WEXITSTATUS(status) == 0 && signals > 0 &&
			       signals <= BURSTS * PER_BURST / 2 ?
		       0 :
		       1;
}
