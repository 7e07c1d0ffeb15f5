/* SPDX-License-Identifier: MIT */
/*
 * bench: a quick self-check of this machine.  Throughput and round-trip
 * latency of the library between two processes, each against a pipe
 * measured in the same run, reported as ratios.  A few seconds at most.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tool.h"

#define MSG 64u

struct shared {
	_Atomic uint64_t count;  /* messages the reader got */
	_Atomic uint64_t end_ns; /* when it got the last one */
	_Atomic int ok;
};

static pid_t spawn(void)
{
	pid_t pid = fork();
	if (pid == 0)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	return pid;
}

static int reap(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Messages per second through a ring: the producer sends for `ns`, the
 * consumer (another process) counts until the producer closes. */
static int ring_throughput(uint64_t ns, struct shared *sh, double *rate)
{
	struct shmring_opts o = { .size = sizeof(o), .capacity = 1u << 20 };
	struct shmring *r;
	struct shmring_consumer *c;
	struct shmring_producer *p;
	int rc = shmring_create_anon("shmring-bench", &o, &r);
	if (rc || (rc = shmring_consumer_open(r, SHMRING_START_OLDEST, &c)))
		return rc;
	pid_t pid = spawn();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char buf[MSG];
		size_t len;
		uint64_t n = 0;
		while ((rc = shmring_recv_wait(c, buf, sizeof(buf), &len, NULL)) == 0)
			n++;
		sh->count = n;
		sh->end_ns = mono_ns();
		sh->ok = rc == -EPIPE;
		_exit(0);
	}
	char msg[MSG];
	memset(msg, 'x', sizeof(msg));
	if ((rc = shmring_producer_open(r, &p)))
		return rc;
	uint64_t start = mono_ns(), sent = 0;
	while (mono_ns() - start < ns)
		for (int i = 0; i < 256; i++, sent++)
			if ((rc = shmring_send_wait(p, msg, sizeof(msg), NULL)))
				return rc;
	shmring_producer_close(p);
	if (reap(pid) || !sh->ok || sh->count != sent)
		return -EPROTO;
	*rate = (double)sent * 1e9 / (double)(sh->end_ns - start);
	shmring_consumer_close(c);
	shmring_close(r);
	return 0;
}

/* The same through a pipe: one write(2) per message, the reader reads
 * 64 KiB at a time (the way a pipe is best read). */
static int pipe_throughput(uint64_t ns, struct shared *sh, double *rate)
{
	int fds[2];
	if (pipe(fds) < 0)
		return -errno;
	pid_t pid = spawn();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(fds[1]);
		static char buf[65536];
		uint64_t bytes = 0;
		ssize_t n;
		while ((n = read(fds[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
			if (n > 0)
				bytes += (uint64_t)n;
		sh->count = bytes / MSG;
		sh->end_ns = mono_ns();
		sh->ok = n == 0;
		_exit(0);
	}
	close(fds[0]);
	char msg[MSG];
	memset(msg, 'x', sizeof(msg));
	uint64_t start = mono_ns(), sent = 0;
	while (mono_ns() - start < ns)
		for (int i = 0; i < 256; i++, sent++)
			if (write(fds[1], msg, sizeof(msg)) != (ssize_t)sizeof(msg))
				return -EIO;
	close(fds[1]);
	if (reap(pid) || !sh->ok || sh->count != sent)
		return -EPROTO;
	*rate = (double)sent * 1e9 / (double)(sh->end_ns - start);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

#define MAX_RT 1000000

/* Median round trip: ping through one ring, pong back through another. */
static int ring_latency(uint64_t ns, uint64_t *samples, uint64_t *median, uint64_t *count)
{
	struct shmring *a, *b;
	struct shmring_consumer *ca, *cb;
	struct shmring_producer *pa, *pb;
	struct shmring_opts o = { .size = sizeof(o), .capacity = 65536 };
	int rc;
	if ((rc = shmring_create_anon("bench-ping", &o, &a)) ||
	    (rc = shmring_create_anon("bench-pong", &o, &b)) ||
	    (rc = shmring_consumer_open(a, SHMRING_START_OLDEST, &ca)) ||
	    (rc = shmring_consumer_open(b, SHMRING_START_OLDEST, &cb)))
		return rc;
	pid_t pid = spawn();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char buf[MSG];
		size_t len;
		if (shmring_producer_open(b, &pb))
			_exit(1);
		while (shmring_recv_wait(ca, buf, sizeof(buf), &len, NULL) == 0)
			if (shmring_send_wait(pb, buf, len, NULL))
				_exit(1);
		shmring_producer_close(pb);
		_exit(0);
	}
	if ((rc = shmring_producer_open(a, &pa)))
		return rc;
	char msg[MSG], buf[MSG];
	size_t len;
	memset(msg, 'x', sizeof(msg));
	uint64_t start = mono_ns(), n = 0;
	while (n < MAX_RT && mono_ns() - start < ns) {
		uint64_t t0 = mono_ns();
		if ((rc = shmring_send_wait(pa, msg, sizeof(msg), NULL)) ||
		    (rc = shmring_recv_wait(cb, buf, sizeof(buf), &len, NULL)))
			return rc;
		samples[n++] = mono_ns() - t0;
	}
	shmring_producer_close(pa);
	if (reap(pid))
		return -EPROTO;
	qsort(samples, n, sizeof(*samples), cmp_u64);
	*median = samples[n / 2];
	*count = n;
	shmring_consumer_close(ca);
	shmring_consumer_close(cb);
	shmring_close(a);
	shmring_close(b);
	return 0;
}

static int pipe_latency(uint64_t ns, uint64_t *samples, uint64_t *median, uint64_t *count)
{
	int ping[2], pong[2];
	if (pipe(ping) < 0 || pipe(pong) < 0)
		return -errno;
	pid_t pid = spawn();
	if (pid < 0)
		return -errno;
	char buf[MSG];
	if (pid == 0) {
		close(ping[1]);
		close(pong[0]);
		while (read(ping[0], buf, sizeof(buf)) == (ssize_t)sizeof(buf))
			if (write(pong[1], buf, sizeof(buf)) != (ssize_t)sizeof(buf))
				_exit(1);
		_exit(0);
	}
	close(ping[0]);
	close(pong[1]);
	memset(buf, 'x', sizeof(buf));
	uint64_t start = mono_ns(), n = 0;
	while (n < MAX_RT && mono_ns() - start < ns) {
		uint64_t t0 = mono_ns();
		if (write(ping[1], buf, sizeof(buf)) != (ssize_t)sizeof(buf) ||
		    read(pong[0], buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			return -EIO;
		samples[n++] = mono_ns() - t0;
	}
	close(ping[1]);
	close(pong[0]);
	if (reap(pid))
		return -EPROTO;
	qsort(samples, n, sizeof(*samples), cmp_u64);
	*median = samples[n / 2];
	*count = n;
	return 0;
}

static const char bench_help[] =
	"usage: shmring bench [--seconds S]\n"
	"Measures, between two processes of this machine, the throughput of 64-byte\n"
	"messages and the median round trip, through anonymous rings and through\n"
	"pipes in the same run, and prints each ring figure as a ratio to the pipe's.\n"
	"Each of the four cases runs S seconds (default 0.4).  Other load on the\n"
	"machine changes the figures: compare ratios, not times.\n";

int cmd_bench(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	uint64_t ns = 400000000u;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (parse_seconds(optarg, &ns) || ns < 10000000u || ns > 10000000000u) {
				err_line("bench", "bad duration '%s' (0.01 to 10 seconds)", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h': fputs(bench_help, stdout); return EXIT_OK;
		default:
			err_line("bench", "unknown option '%s' (try: shmring bench --help)",
				 argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		err_line("bench", "unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint64_t *samples = malloc(MAX_RT * sizeof(*samples));
	if (sh == MAP_FAILED || !samples) {
		err_line("bench", "out of memory");
		return EXIT_FAIL;
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	printf("bench: %u-byte messages between two processes, %ld CPUs online, "
	       "%.2f s per case\n", MSG, ncpu, (double)ns / 1e9);
	double rr = 0, pr = 0;
	uint64_t rl = 0, pl = 0, rn = 0, pn = 0;
	const char *what = "ring throughput";
	int rc = ring_throughput(ns, sh, &rr);
	if (!rc) {
		what = "pipe throughput";
		rc = pipe_throughput(ns, sh, &pr);
	}
	if (!rc) {
		printf("throughput  ring (1M, block) %8.2f M msg/s   pipe %8.2f M msg/s   "
		       "ring/pipe %6.1fx\n", rr / 1e6, pr / 1e6, rr / pr);
		fflush(stdout);
		what = "ring round trip";
		rc = ring_latency(ns, samples, &rl, &rn);
	}
	if (!rc) {
		what = "pipe round trip";
		rc = pipe_latency(ns, samples, &pl, &pn);
	}
	if (!rc)
		printf("round trip  ring (median)    %8.2f us        pipe %8.2f us        "
		       "pipe/ring %6.1fx  (%llu and %llu round trips)\n", (double)rl / 1e3,
		       (double)pl / 1e3, (double)pl / (double)(rl ? rl : 1),
		       (unsigned long long)rn, (unsigned long long)pn);
	free(samples);
	munmap(sh, sizeof(*sh));
	if (rc) {
		err_line("bench", "%s: %s", what, shmring_strerror(rc));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}
