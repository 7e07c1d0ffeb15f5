/* SPDX-License-Identifier: MIT */
/* Description: unit tests of the producer and consumer API: every public call's results and documented errors, batching, wrap-around, deadlines and cross-process wake-ups. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common.h"

#define MS 1000000ull
/* How long the deadline tests wait, and how late a timed-out call may return
 * (scheduler slack: a correctness bound, not a speed test). */
#define WAIT_NS (50 * MS)
#define SLACK_NS (200 * MS)
/* A call whose deadline has already passed must return within this. */
#define PROMPT_NS (100 * MS)
/* Deadline for blocking calls that another process must end: a lost wake-up
 * fails rather than hangs.  A wake-up counts as received only if it came well
 * before that deadline (WAKE_NS): a wait that merely ran into its deadline and
 * then found data must not pass. */
#define CHILD_WAIT_NS (10000 * MS)
#define WAKE_NS (3000 * MS)

/* ---- helpers ------------------------------------------------------------ */

static uint8_t scratch[1 << 16];
static uint8_t expect_buf[1 << 16];
static uint8_t recv_buf[1 << 16];

static uint64_t page_bytes(void)
{
	long p = sysconf(_SC_PAGESIZE);
	return p > 0 ? (uint64_t)p : 4096u;
}

static unsigned long long ull(uint64_t v)
{
	return (unsigned long long)v;
}

static struct shmring *new_ring(uint64_t capacity, uint32_t max_consumers)
{
	struct shmring_opts o = test_opts(capacity, max_consumers);
	struct shmring *r = NULL;
	int rc = shmring_create_anon("test_api", &o, &r);
	cr_assert_eq(rc, 0, "shmring_create_anon: %s", shmring_strerror(rc));
	cr_assert_not_null(r);
	return r;
}

static struct shmring_info ring_info(const struct shmring *r)
{
	struct shmring_info in;
	int rc = shmring_info(r, &in);
	cr_assert_eq(rc, 0, "shmring_info: %s", shmring_strerror(rc));
	return in;
}

static struct shmring_producer *open_prod(struct shmring *r)
{
	struct shmring_producer *p = NULL;
	int rc = shmring_producer_open(r, &p);
	cr_assert_eq(rc, 0, "shmring_producer_open: %s", shmring_strerror(rc));
	cr_assert_not_null(p);
	return p;
}

static struct shmring_consumer *open_cons(struct shmring *r, unsigned flags)
{
	struct shmring_consumer *c = NULL;
	int rc = shmring_consumer_open(r, flags, &c);
	cr_assert_eq(rc, 0, "shmring_consumer_open: %s", shmring_strerror(rc));
	cr_assert_not_null(c);
	return c;
}

static void close_prod(struct shmring_producer *p)
{
	int rc = shmring_producer_close(p);
	cr_assert_eq(rc, 0, "shmring_producer_close: %s", shmring_strerror(rc));
}

static void close_cons(struct shmring_consumer *c)
{
	int rc = shmring_consumer_close(c);
	cr_assert_eq(rc, 0, "shmring_consumer_close: %s", shmring_strerror(rc));
}

static void close_ring(struct shmring *r)
{
	int rc = shmring_close(r);
	cr_assert_eq(rc, 0, "shmring_close: %s", shmring_strerror(rc));
}

/* Sends message seq of len bytes (contents from msg_fill()). */
static int send_msg(struct shmring_producer *p, uint64_t seq, size_t len)
{
	if (len > sizeof(scratch))
		return -1000;
	msg_fill(scratch, len, seq);
	return shmring_send(p, len ? scratch : NULL, len);
}

/* 1 if d/n is exactly message seq of len bytes. */
static int is_msg(const void *d, size_t n, uint64_t seq, size_t len)
{
	if (n != len || len > sizeof(expect_buf))
		return 0;
	if (len == 0)
		return 1;
	msg_fill(expect_buf, len, seq);
	return memcmp(d, expect_buf, len) == 0;
}

static void expect_recv(struct shmring_consumer *c, uint64_t seq, size_t len)
{
	size_t n = (size_t)-1;
	int rc = shmring_recv(c, recv_buf, sizeof(recv_buf), &n);
	cr_assert_eq(rc, 0, "recv of message %llu: %s", ull(seq), shmring_strerror(rc));
	cr_assert(is_msg(recv_buf, n, seq, len),
		  "recv: expected message %llu of %zu bytes, got %zu bytes (seq field %llu)",
		  ull(seq), len, n, n >= 8 ? ull(*(const uint64_t *)(const void *)recv_buf) : 0ull);
}

static void expect_peek(struct shmring_consumer *c, uint64_t seq, size_t len)
{
	const void *d = NULL;
	size_t n = (size_t)-1;
	int rc = shmring_peek(c, &d, &n);
	cr_assert_eq(rc, 0, "peek of message %llu: %s", ull(seq), shmring_strerror(rc));
	cr_assert_not_null(d);
	cr_assert(is_msg(d, n, seq, len), "peek: expected message %llu of %zu bytes, got %zu bytes",
		  ull(seq), len, n);
}

/* The next peek returns rc (-EAGAIN or -EPIPE), consuming nothing. */
static void expect_peek_rc(struct shmring_consumer *c, int want)
{
	const void *d = NULL;
	size_t n = 0;
	int rc = shmring_peek(c, &d, &n);
	cr_assert_eq(rc, want, "peek: expected %s, got %d (%s)", shmring_strerror(want), rc,
		     shmring_strerror(rc));
}

/* Sends messages *seq, *seq + 1, ... of len bytes until the ring is full
 * (-EAGAIN); returns how many were sent. */
static unsigned fill(struct shmring_producer *p, uint64_t *seq, size_t len)
{
	unsigned n = 0;
	for (;;) {
		int rc = send_msg(p, *seq, len);
		if (rc == -EAGAIN)
			return n;
		cr_assert_eq(rc, 0, "send %llu while filling: %s", ull(*seq), shmring_strerror(rc));
		++*seq;
		n++;
		cr_assert_lt(n, 1000000u, "ring never became full");
	}
}

static uint64_t ts_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000ull + (uint64_t)ts->tv_nsec;
}

/* CPU time of the calling thread. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;
	cr_assert_eq(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts), 0);
	return ts_ns(&ts);
}

/* rc is -ETIMEDOUT, returned no earlier than dl and at most SLACK_NS after. */
static void assert_timed_out(int rc, const struct timespec *dl, const char *what)
{
	uint64_t now = test_now_ns(), d = ts_ns(dl);
	cr_assert_eq(rc, -ETIMEDOUT, "%s: expected -ETIMEDOUT, got %d (%s)", what, rc,
		     shmring_strerror(rc));
	cr_assert_geq(now, d, "%s returned %llu ns before its deadline", what, ull(d - now));
	cr_assert_leq(now, d + SLACK_NS, "%s returned %llu ms after its deadline", what,
		      ull((now - d) / MS));
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* For children: no Criterion calls, only return codes. */
static int write_all(int fd, const void *b, size_t n)
{
	const char *p = b;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, void *b, size_t n)
{
	char *p = b;
	while (n) {
		ssize_t rd = read(fd, p, n);
		if (rd < 0 && errno == EINTR)
			continue;
		if (rd <= 0)
			return -1;
		p += rd;
		n -= (size_t)rd;
	}
	return 0;
}

static void make_pipe(int fds[2])
{
	cr_assert_eq(pipe(fds), 0, "pipe: %s", strerror(errno));
}

/* ---- producer_open / close / shutdown ----------------------------------- */

Test(api, producer_open_and_ebusy_in_process)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	cr_assert_eq(ring_info(r).producer, 0);

	struct shmring_producer *p = open_prod(r);
	cr_assert_eq(ring_info(r).producer, 1);

	struct shmring_producer *q = NULL;
	int rc = shmring_producer_open(r, &q);
	cr_assert_eq(rc, -EBUSY, "second producer on the same handle: %d (%s)", rc,
		     shmring_strerror(rc));

	/* Another handle of the same ring in this process. */
	struct shmring *r2 = NULL;
	rc = shmring_open_fd(shmring_fd(r), &r2);
	cr_assert_eq(rc, 0, "shmring_open_fd: %s", shmring_strerror(rc));
	rc = shmring_producer_open(r2, &q);
	cr_assert_eq(rc, -EBUSY, "second producer on another handle: %d (%s)", rc,
		     shmring_strerror(rc));
	/* The failed open left no endpoint behind on r2. */
	close_ring(r2);

	/* The first producer still works. */
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	cr_assert_eq(send_msg(p, 1, 40), 0);
	expect_recv(c, 1, 40);

	close_prod(p);
	cr_assert_eq(ring_info(r).producer, 0);
	cr_assert_eq(ring_info(r).closed, 1);
	close_cons(c);
	close_ring(r);
}

Test(api, producer_open_ebusy_from_forked_child, .timeout = 30)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_producer *p = open_prod(r);

	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		struct shmring_producer *q = NULL;
		int rc = shmring_producer_open(r, &q);
		_exit(rc == -EBUSY ? 0 : rc == 0 ? 1 : 2);
	}
	int st = test_wait(pid);
	cr_assert_eq(st, 0, "child's producer_open while the parent produces: status %d "
		     "(1: it succeeded, 2: another error)", st);

	/* The parent is still the producer. */
	cr_assert_eq(send_msg(p, 10, 24), 0);
	expect_recv(c, 10, 24);
	close_prod(p);

	/* With the parent's producer closed, the child may become one. */
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		struct shmring_producer *q = NULL;
		if (shmring_producer_open(r, &q))
			_exit(1);
		if (send_msg(q, 11, 24))
			_exit(2);
		if (shmring_producer_close(q))
			_exit(3);
		_exit(0);
	}
	st = test_wait(pid);
	cr_assert_eq(st, 0, "child producer after the parent closed: status %d", st);
	expect_recv(c, 11, 24);
	expect_peek_rc(c, -EPIPE);
	close_cons(c);
	close_ring(r);
}

Test(api, producer_reopen_continues_sequence)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);

	struct shmring_producer *p1 = open_prod(r);
	for (uint64_t s = 0; s < 5; s++)
		cr_assert_eq(send_msg(p1, s, 32 + s), 0);
	uint64_t tail1 = ring_info(r).tail;
	close_prod(p1);
	cr_assert_eq(ring_info(r).closed, 1);
	cr_assert_eq(ring_info(r).tail, tail1);

	/* Drain the first producer's messages: then the ring reads closed. */
	for (uint64_t s = 0; s < 5; s++)
		expect_recv(c, s, 32 + s);
	expect_peek_rc(c, -EPIPE);

	struct shmring_producer *p2 = open_prod(r);
	struct shmring_info in = ring_info(r);
	cr_assert_eq(in.closed, 0, "a new producer clears the closed state");
	cr_assert_eq(in.producer, 1);
	cr_assert_eq(in.tail, tail1, "the new producer continues at the old tail");
	expect_peek_rc(c, -EAGAIN);

	for (uint64_t s = 5; s < 10; s++)
		cr_assert_eq(send_msg(p2, s, 32 + s), 0);
	for (uint64_t s = 5; s < 10; s++)
		expect_recv(c, s, 32 + s);
	expect_peek_rc(c, -EAGAIN);

	/* A consumer that read nothing yet gets both producers' messages in
	 * order across a close/open. */
	struct shmring_consumer *c2 = open_cons(r, SHMRING_START_NEWEST);
	cr_assert_eq(send_msg(p2, 10, 64), 0);
	close_prod(p2);
	struct shmring_producer *p3 = open_prod(r);
	cr_assert_eq(send_msg(p3, 11, 64), 0);
	expect_recv(c2, 10, 64);
	expect_recv(c2, 11, 64);
	expect_peek_rc(c2, -EAGAIN);
	close_prod(p3);

	close_cons(c2);
	close_cons(c);
	close_ring(r);
}

Test(api, producer_shutdown_epipe)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_producer *p = open_prod(r);

	cr_assert_eq(send_msg(p, 0, 48), 0);
	cr_assert_eq(send_msg(p, 1, 48), 0);
	uint64_t tail = ring_info(r).tail;
	/* Uncommitted reservations are discarded by the shutdown. */
	void *d = NULL;
	cr_assert_eq(shmring_reserve(p, 48, &d), 0);
	msg_fill(d, 48, 2);

	cr_assert_eq(shmring_producer_shutdown(p), 0);
	struct shmring_info in = ring_info(r);
	cr_assert_eq(in.closed, 1);
	cr_assert_eq(in.producer, 0);
	cr_assert_eq(in.tail, tail, "shutdown published the uncommitted reservation");
	cr_assert_eq(shmring_producer_shutdown(p), 0, "a second shutdown returns 0");

	int rc = shmring_reserve(p, 16, &d);
	cr_assert_eq(rc, -EPIPE, "reserve after shutdown: %d (%s)", rc, shmring_strerror(rc));
	rc = send_msg(p, 3, 16);
	cr_assert_eq(rc, -EPIPE, "send after shutdown: %d (%s)", rc, shmring_strerror(rc));
	rc = shmring_send(p, NULL, 0);
	cr_assert_eq(rc, -EPIPE, "empty send after shutdown: %d (%s)", rc, shmring_strerror(rc));
	struct timespec dl;
	cr_assert_eq(shmring_deadline(&dl, WAIT_NS), 0);
	rc = shmring_reserve_wait(p, 16, &d, &dl);
	cr_assert_eq(rc, -EPIPE, "reserve_wait after shutdown: %d (%s)", rc, shmring_strerror(rc));
	rc = shmring_send_wait(p, scratch, 16, &dl);
	cr_assert_eq(rc, -EPIPE, "send_wait after shutdown: %d (%s)", rc, shmring_strerror(rc));
	cr_assert_eq(ring_info(r).tail, tail);

	/* The consumer drains what was published, then gets -EPIPE. */
	expect_recv(c, 0, 48);
	expect_recv(c, 1, 48);
	expect_peek_rc(c, -EPIPE);

	cr_assert_eq(shmring_producer_close(p), 0, "close after shutdown returns 0");
	cr_assert_eq(ring_info(r).producer, 0);
	close_cons(c);
	close_ring(r);
}

/* The header: after shutdown, "later calls on this handle other than
 * shmring_producer_close() return -EPIPE" -- commit and abort included. */
Test(api, producer_shutdown_commit_abort_epipe)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_producer *p = open_prod(r);
	void *d = NULL;
	cr_assert_eq(shmring_reserve(p, 8, &d), 0);
	cr_assert_eq(shmring_producer_shutdown(p), 0);
	int rc = shmring_commit(p);
	cr_assert_eq(rc, -EPIPE, "commit after shutdown: %d (%s)", rc, shmring_strerror(rc));
	rc = shmring_abort(p);
	cr_assert_eq(rc, -EPIPE, "abort after shutdown: %d (%s)", rc, shmring_strerror(rc));
	expect_peek_rc(c, -EPIPE);
	close_prod(p);
	close_cons(c);
	close_ring(r);
}

/* Shutdown gives up the producer role, so another producer may open on the
 * same handle; closing the old (shut down) handle afterwards must leave the
 * new producer working. */
Test(api, producer_close_after_shutdown_keeps_new_producer)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_producer *p1 = open_prod(r);
	cr_assert_eq(send_msg(p1, 0, 40), 0);
	cr_assert_eq(shmring_producer_shutdown(p1), 0);

	struct shmring_producer *p2 = open_prod(r);
	cr_assert_eq(shmring_producer_close(p1), 0);
	cr_assert_eq(ring_info(r).producer, 1, "closing the old handle detached the new producer");
	cr_assert_eq(ring_info(r).closed, 0, "closing the old handle closed the ring");

	cr_assert_eq(send_msg(p2, 1, 40), 0);
	void *d = NULL;
	cr_assert_eq(shmring_reserve(p2, 40, &d), 0);
	msg_fill(d, 40, 2);
	cr_assert_eq(shmring_commit(p2), 1);

	expect_recv(c, 0, 40);
	expect_recv(c, 1, 40);
	expect_recv(c, 2, 40);
	close_prod(p2);
	close_cons(c);
	close_ring(r);
}

Test(api, producer_einval_on_null)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_producer *p = NULL;
	cr_assert_eq(shmring_producer_open(NULL, &p), -EINVAL);
	cr_assert_null(p);
	cr_assert_eq(shmring_producer_open(r, NULL), -EINVAL);
	/* The failed opens left no producer attached. */
	cr_assert_eq(ring_info(r).producer, 0);
	p = open_prod(r);

	void *d = NULL;
	struct timespec dl;
	cr_assert_eq(shmring_deadline(&dl, WAIT_NS), 0);
	cr_assert_eq(shmring_producer_shutdown(NULL), -EINVAL);
	cr_assert_eq(shmring_producer_close(NULL), -EINVAL);
	cr_assert_eq(shmring_reserve(NULL, 8, &d), -EINVAL);
	cr_assert_eq(shmring_reserve(p, 8, NULL), -EINVAL);
	cr_assert_eq(shmring_reserve_wait(NULL, 8, &d, &dl), -EINVAL);
	cr_assert_eq(shmring_reserve_wait(p, 8, NULL, &dl), -EINVAL);
	cr_assert_eq(shmring_commit(NULL), -EINVAL);
	cr_assert_eq(shmring_abort(NULL), -EINVAL);
	cr_assert_eq(shmring_send(NULL, scratch, 8), -EINVAL);
	cr_assert_eq(shmring_send_wait(NULL, scratch, 8, &dl), -EINVAL);
	cr_assert_eq(shmring_set_spin(NULL, 0), -EINVAL);
	/* None of these reserved anything. */
	cr_assert_eq(shmring_commit(p), 0);
	cr_assert_eq(ring_info(r).tail, 0);
	close_prod(p);
	close_ring(r);
}

Test(api, producer_open_eacces_on_readonly_fd)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring_opts o = test_opts(page_bytes(), 0);
	struct shmring *r = NULL;
	int rc = shmring_create(name, &o, &r);
	cr_assert_eq(rc, 0, "shmring_create: %s", shmring_strerror(rc));

	char path[128];
	snprintf(path, sizeof(path), "/dev/shm%s", name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	struct shmring *ro = NULL;
	rc = shmring_open_fd(fd, &ro);
	cr_assert_eq(close(fd), 0);
	cr_assert_eq(rc, 0, "shmring_open_fd on an O_RDONLY fd: %s", shmring_strerror(rc));

	struct shmring_producer *p = NULL;
	rc = shmring_producer_open(ro, &p);
	cr_assert_eq(rc, -EACCES, "producer_open on a read-only ring: %d (%s)", rc,
		     shmring_strerror(rc));
	cr_assert_null(p);
	cr_assert_eq(ring_info(r).producer, 0, "the failed open left a producer attached");
	/* No endpoint was left open on the read-only handle. */
	cr_assert_eq(shmring_close(ro), 0);

	/* The writable handle may still produce. */
	p = open_prod(r);
	close_prod(p);
	close_ring(r);
	cr_assert_eq(shmring_unlink(name), 0);
}

/* ---- reserve / commit / abort / send -------------------------------------- */

Test(api, reserve_batch_then_commit_publishes_all)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_producer *p = open_prod(r);
	const size_t lens[4] = { 16, 1, 100, 0 };

	for (int i = 0; i < 4; i++) {
		void *d = NULL;
		int rc = shmring_reserve(p, lens[i], &d);
		cr_assert_eq(rc, 0, "reserve %d: %s", i, shmring_strerror(rc));
		cr_assert_not_null(d);
		if (lens[i])
			msg_fill(d, lens[i], (uint64_t)i);
		/* Nothing is visible before the commit. */
		expect_peek_rc(c, -EAGAIN);
		cr_assert_eq(ring_info(r).tail, 0);
	}
	int n = shmring_commit(p);
	cr_assert_eq(n, 4, "commit returned %d", n);
	uint64_t want_tail = 0;
	for (int i = 0; i < 4; i++)
		want_tail += SHMRING_RECORD_SIZE(lens[i]);
	cr_assert_eq(ring_info(r).tail, want_tail);
	n = shmring_commit(p);
	cr_assert_eq(n, 0, "a second commit returned %d", n);

	for (int i = 0; i < 4; i++)
		expect_peek(c, (uint64_t)i, lens[i]);
	expect_peek_rc(c, -EAGAIN);
	cr_assert_eq(shmring_release(c), 4);

	/* send refuses to publish a pending reservation with its message
	 * (it may be a signal handler's, interrupting a reservation), and
	 * changes nothing; after the commit it works again. */
	void *d = NULL;
	cr_assert_eq(shmring_reserve(p, 24, &d), 0);
	msg_fill(d, 24, 10);
	expect_peek_rc(c, -EAGAIN);
	cr_assert_eq(send_msg(p, 11, 24), -EBUSY);
	expect_peek_rc(c, -EAGAIN);
	cr_assert_eq(shmring_commit(p), 1);
	cr_assert_eq(send_msg(p, 11, 24), 0);
	expect_recv(c, 10, 24);
	expect_recv(c, 11, 24);
	expect_peek_rc(c, -EAGAIN);
	cr_assert_eq(shmring_commit(p), 0);

	close_prod(p);
	close_cons(c);
	close_ring(r);
}

Test(api, reserve_emsgsize_boundary)
{
	struct shmring *r = new_ring(4 * page_bytes(), 0);
	struct shmring_info in = ring_info(r);
	cr_assert_eq(in.max_message, in.capacity / 2 - SHMRING_RECORD_HDR);
	size_t max = in.max_message;
	cr_assert_leq(max, sizeof(scratch));
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_producer *p = open_prod(r);
	void *d = NULL;
	struct timespec dl;
	cr_assert_eq(shmring_deadline(&dl, WAIT_NS), 0);

	int rc = shmring_reserve(p, max + 1, &d);
	cr_assert_eq(rc, -EMSGSIZE, "reserve(max + 1): %d (%s)", rc, shmring_strerror(rc));
	rc = shmring_reserve(p, SIZE_MAX, &d);
	cr_assert_eq(rc, -EMSGSIZE, "reserve(SIZE_MAX): %d (%s)", rc, shmring_strerror(rc));
	rc = shmring_reserve_wait(p, max + 1, &d, &dl);
	cr_assert_eq(rc, -EMSGSIZE, "reserve_wait(max + 1): %d (%s)", rc, shmring_strerror(rc));
	msg_fill(scratch, max + 1, 0);
	rc = shmring_send(p, scratch, max + 1);
	cr_assert_eq(rc, -EMSGSIZE, "send(max + 1): %d (%s)", rc, shmring_strerror(rc));
	rc = shmring_send_wait(p, scratch, max + 1, &dl);
	cr_assert_eq(rc, -EMSGSIZE, "send_wait(max + 1): %d (%s)", rc, shmring_strerror(rc));
	cr_assert_eq(shmring_commit(p), 0, "a failed reserve left a reservation");
	expect_peek_rc(c, -EAGAIN);

	/* Exactly max_message works, by reserve and by send. */
	rc = shmring_reserve(p, max, &d);
	cr_assert_eq(rc, 0, "reserve(max): %s", shmring_strerror(rc));
	msg_fill(d, max, 1);
	cr_assert_eq(shmring_commit(p), 1);
	expect_recv(c, 1, max);
	rc = send_msg(p, 2, max);
	cr_assert_eq(rc, 0, "send(max): %s", shmring_strerror(rc));
	expect_recv(c, 2, max);

	close_prod(p);
	close_cons(c);
	close_ring(r);
}

Test(api, reserve_eagain_when_consumer_behind)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	uint64_t cap = ring_info(r).capacity;
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_producer *p = open_prod(r);
	const size_t len = 100;
	uint64_t seq = 0;

	unsigned n = fill(p, &seq, len);
	cr_assert_eq(n, cap / SHMRING_RECORD_SIZE(len),
		     "a ring of %llu bytes took %u records of %llu bytes", ull(cap), n,
		     ull(SHMRING_RECORD_SIZE(len)));
	void *d = NULL;
	int rc = shmring_reserve(p, len, &d);
	cr_assert_eq(rc, -EAGAIN, "reserve on a full ring: %d (%s)", rc, shmring_strerror(rc));
	/* The bytes left over take a record of exactly that size, not one
	 * byte more. */
	uint64_t left = cap - (uint64_t)n * SHMRING_RECORD_SIZE(len);
	cr_assert_geq(left, SHMRING_RECORD_HDR);
	size_t fit = (size_t)(left - SHMRING_RECORD_HDR);
	rc = shmring_reserve(p, fit + 1, &d);
	cr_assert_eq(rc, -EAGAIN, "reserve(%zu) with %llu bytes left: %d (%s)", fit + 1,
		     ull(left), rc, shmring_strerror(rc));
	rc = shmring_reserve(p, fit, &d);
	cr_assert_eq(rc, 0, "reserve(%zu) with %llu bytes left: %d (%s)", fit, ull(left), rc,
		     shmring_strerror(rc));
	cr_assert_eq(shmring_abort(p), 1);
	cr_assert_eq(shmring_commit(p), 0);

	/* Reading one message makes room for exactly one more. */
	expect_recv(c, 0, len);
	rc = send_msg(p, seq, len);
	cr_assert_eq(rc, 0, "send after a recv made room: %s", shmring_strerror(rc));
	seq++;
	cr_assert_eq(send_msg(p, seq, len), -EAGAIN);

	for (uint64_t s = 1; s < seq; s++)
		expect_recv(c, s, len);
	expect_peek_rc(c, -EAGAIN);

	/* A consumer that detaches no longer holds the producer back. */
	n = fill(p, &seq, len);
	cr_assert_gt(n, 0u);
	close_cons(c);
	rc = send_msg(p, seq, len);
	cr_assert_eq(rc, 0, "send after the only consumer detached: %s", shmring_strerror(rc));

	close_prod(p);
	close_ring(r);
}

Test(api, reserve_enobufs_without_consumer)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_info in = ring_info(r);
	uint64_t cap = in.capacity;
	size_t max = in.max_message;
	struct shmring_producer *p = open_prod(r);
	void *d = NULL;

	/* Two max_message records are exactly the capacity. */
	cr_assert_eq(shmring_reserve(p, max, &d), 0);
	cr_assert_eq(shmring_reserve(p, max, &d), 0);
	int rc = shmring_reserve(p, 0, &d);
	cr_assert_eq(rc, -ENOBUFS, "reserve beyond capacity uncommitted: %d (%s)", rc,
		     shmring_strerror(rc));
	rc = shmring_send(p, NULL, 0); /* never publishes pending reservations */
	cr_assert_eq(rc, -EBUSY, "send with reservations pending: %d (%s)", rc,
		     shmring_strerror(rc));
	struct timespec dl;
	cr_assert_eq(shmring_deadline(&dl, 10 * 1000 * MS), 0);
	uint64_t t0 = test_now_ns();
	rc = shmring_reserve_wait(p, 8, &d, &dl);
	cr_assert_eq(rc, -ENOBUFS, "reserve_wait beyond capacity: %d (%s)", rc,
		     shmring_strerror(rc));
	cr_assert_lt(test_now_ns() - t0, PROMPT_NS, "reserve_wait waited for -ENOBUFS");
	cr_assert_eq(shmring_commit(p), 2);
	cr_assert_eq(ring_info(r).tail, cap);

	/* Small records: capacity / 16 of them fit uncommitted, not one more. */
	unsigned k = 0;
	for (;;) {
		rc = shmring_reserve(p, 1, &d);
		if (rc)
			break;
		k++;
		cr_assert_leq(k, cap, "reservations never ran out");
	}
	cr_assert_eq(rc, -ENOBUFS, "reserve(1) at capacity: %d (%s)", rc, shmring_strerror(rc));
	cr_assert_eq(k, cap / SHMRING_RECORD_SIZE(1));
	cr_assert_eq(shmring_abort(p), (int)k);
	/* With no consumer the ring never fills after a commit. */
	for (int i = 0; i < 100; i++)
		cr_assert_eq(send_msg(p, (uint64_t)i, max), 0, "send %d without consumers", i);

	close_prod(p);
	close_ring(r);
}

Test(api, reserve_and_peek_pointers_aligned)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_producer *p = open_prod(r);
	for (size_t len = 0; len < 300; len++) {
		void *d = NULL;
		int rc = shmring_reserve(p, len, &d);
		cr_assert_eq(rc, 0, "reserve(%zu): %s", len, shmring_strerror(rc));
		cr_assert_eq((uintptr_t)d % 8, 0u, "reserve(%zu) gave %p", len, d);
		msg_fill(d, len, len);
		cr_assert_eq(shmring_commit(p), 1);
		const void *q = NULL;
		size_t n = 0;
		cr_assert_eq(shmring_peek(c, &q, &n), 0);
		cr_assert_eq((uintptr_t)q % 8, 0u, "peek of %zu bytes gave %p", len, q);
		cr_assert(is_msg(q, n, len, len));
		cr_assert_eq(shmring_release(c), 1);
	}
	close_prod(p);
	close_cons(c);
	close_ring(r);
}

/* Records written in place across the wrap point of a one-page ring read
 * back intact in place, from another handle of the ring. */
Test(api, wrap_zero_copy_one_page_ring)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_info in = ring_info(r);
	cr_assert_eq(in.capacity, page_bytes());
	struct shmring *r2 = NULL;
	int rc = shmring_open_fd(shmring_fd(r), &r2);
	cr_assert_eq(rc, 0, "shmring_open_fd: %s", shmring_strerror(rc));
	struct shmring_consumer *c = open_cons(r2, SHMRING_START_NEWEST);
	struct shmring_producer *p = open_prod(r);

	const uint64_t seed = 0x5eedf00dull, cap = in.capacity, mask = cap - 1;
	const size_t maxl = in.max_message;
	uint64_t pos = in.tail, seq = 0, rseq = 0;
	unsigned straddles = 0, batches_cut = 0, pads = 0;

	for (unsigned round = 0; round < 4000; round++) {
		unsigned k = 0;
		for (; k < 3; k++) {
			size_t len = msg_len(seed, seq, maxl);
			void *d = NULL;
			rc = shmring_reserve(p, len, &d);
			if (rc == -ENOBUFS && k > 0) {
				batches_cut++;
				break;
			}
			cr_assert_eq(rc, 0, "round %u: reserve(%zu): %d (%s)", round, len, rc,
				     shmring_strerror(rc));
			cr_assert_eq((uintptr_t)d % 8, 0u);
			uint64_t pad = test_pad_before(pos, cap, SHMRING_RECORD_SIZE(len));
			pads += pad != 0;
			pos += pad;
			uint64_t start = (pos & mask) + SHMRING_RECORD_HDR;
			if (start < cap && start + len > cap)
				straddles++;
			msg_fill(d, len, seq);
			pos += SHMRING_RECORD_SIZE(len);
			seq++;
		}
		cr_assert_eq(shmring_commit(p), (int)k);
		cr_assert_eq(ring_info(r2).tail, pos);
		for (unsigned i = 0; i < k; i++) {
			const void *d = NULL;
			size_t n = 0;
			rc = shmring_peek(c, &d, &n);
			cr_assert_eq(rc, 0, "round %u: peek %u: %s", round, i, shmring_strerror(rc));
			cr_assert_eq((uintptr_t)d % 8, 0u);
			int m = msg_check(d, n, seed, rseq, maxl);
			cr_assert_eq(m, MSG_OK, "round %u: message %llu: %s", round, ull(rseq),
				     msg_strerror(m));
			rseq++;
		}
		expect_peek_rc(c, -EAGAIN);
		cr_assert_eq(shmring_release(c), (int)k);
	}
	cr_assert_eq(rseq, seq);
	cr_assert_gt(straddles, 50u, "only %u payloads crossed the wrap point", straddles);
	cr_assert_gt(pads, 50u, "only %u records were padded to the next lap", pads);
	cr_assert_gt(batches_cut, 0u);

	close_prod(p);
	close_cons(c);
	close_ring(r2);
	close_ring(r);
}

/*
 * Messages of one size sit at the same places lap after lap (layout 5): a
 * record that would cross the end of the data area starts the next lap,
 * after a pad, so that what a consumer read on one lap is at the edges of
 * the producer's copies on the next (perf/RESULTS.md, change 20).  The
 * readers (broadcast, or a group member; one by one, then in batches) skip
 * the pads.  Without padding, the 66th record would cross the end.
 */
static void records_repeat(int group, int batch)
{
	const uint64_t cap = 65536;
	const size_t len = 1000;
	const uint64_t sz = SHMRING_RECORD_SIZE(len), per_lap = cap / sz; /* 65, 16 B over */
	struct shmring *r = new_ring(cap, 4);
	struct shmring_consumer *c = NULL;
	if (group)
		cr_assert_eq(shmring_group_open(r, "lap", SHMRING_START_OLDEST, &c), 0);
	else
		c = open_cons(r, SHMRING_START_OLDEST);
	struct shmring_producer *p = open_prod(r);
	static void *wrote[65];
	static const void *read[65];
	uint64_t seq = 0, rseq = 0;
	for (unsigned lap = 0; lap < 5; lap++) {
		for (unsigned i = 0; i < per_lap; i += batch ? 16 : 1) {
			void *d[16];
			int k;
			if (batch) {
				k = shmring_reserve_batch(p, len, 16, d);
				cr_assert(k >= 1, "reserve_batch: %d", k);
				/* A batch stops at the lap's end: records back to back. */
				cr_assert_eq((unsigned)k, i + 16 <= per_lap ? 16u : per_lap - i);
			} else {
				k = 1;
				cr_assert_eq(shmring_reserve(p, len, &d[0]), 0);
			}
			for (int j = 0; j < k; j++) {
				if (lap == 0)
					wrote[i + j] = d[j];
				cr_assert_eq(d[j], wrote[i + j], "lap %u, record %u: moved by %td bytes", lap,
					     i + j, (uint8_t *)d[j] - (uint8_t *)wrote[i + j]);
				msg_fill(d[j], len, seq++);
			}
			cr_assert_eq(shmring_commit(p), k);
			struct shmring_msg m[16];
			int n = shmring_peek_batch(c, m, 16);
			cr_assert_eq(n, k, "peek_batch: %d (%s)", n, shmring_strerror(n));
			for (int j = 0; j < n; j++) {
				if (lap == 0)
					read[i + j] = m[j].data;
				cr_assert_eq(m[j].data, read[i + j], "lap %u, record %u: read elsewhere",
					     lap, i + j);
				uint64_t v;
				memcpy(&v, m[j].data, 8);
				cr_assert(m[j].len == len && v == rseq, "message %llu: seq %llu, %zu bytes",
					  ull(rseq), ull(v), m[j].len);
				rseq++;
			}
			cr_assert_eq(shmring_release(c), k);
		}
		/* Laps of 65 records and a 16-byte pad, written with the next
		 * lap's first record. */
		cr_assert_eq(ring_info(r).tail, (uint64_t)lap * cap + per_lap * sz);
	}
	close_prod(p);
	close_cons(c);
	close_ring(r);
}

Test(api, records_repeat_each_lap)
{
	records_repeat(0, 0);
}

Test(api, records_repeat_each_lap_batches)
{
	records_repeat(0, 1);
}

Test(api, records_repeat_each_lap_group)
{
	records_repeat(1, 0);
	records_repeat(1, 1);
}

Test(api, abort_discards_reservations)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_producer *p = open_prod(r);
	void *d = NULL;

	cr_assert_eq(shmring_abort(p), 0);
	for (uint64_t s = 100; s < 103; s++) {
		cr_assert_eq(shmring_reserve(p, 64, &d), 0);
		msg_fill(d, 64, s);
	}
	int n = shmring_abort(p);
	cr_assert_eq(n, 3, "abort returned %d", n);
	cr_assert_eq(shmring_abort(p), 0);
	cr_assert_eq(shmring_commit(p), 0, "commit after abort published something");
	cr_assert_eq(ring_info(r).tail, 0);
	expect_peek_rc(c, -EAGAIN);

	/* Later messages take the discarded room; only they are seen. */
	cr_assert_eq(send_msg(p, 0, 64), 0);
	cr_assert_eq(shmring_reserve(p, 64, &d), 0);
	msg_fill(d, 64, 200);
	cr_assert_eq(shmring_abort(p), 1);
	cr_assert_eq(shmring_reserve(p, 32, &d), 0);
	msg_fill(d, 32, 1);
	cr_assert_eq(shmring_commit(p), 1);
	expect_recv(c, 0, 64);
	expect_recv(c, 1, 32);
	expect_peek_rc(c, -EAGAIN);
	cr_assert_eq(ring_info(r).tail, SHMRING_RECORD_SIZE(64) + SHMRING_RECORD_SIZE(32));

	close_prod(p);
	close_cons(c);
	close_ring(r);
}

Test(api, send_null_and_zero_length)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_producer *p = open_prod(r);
	struct timespec dl;
	cr_assert_eq(shmring_deadline(&dl, WAIT_NS), 0);

	int rc = shmring_send(p, NULL, 1);
	cr_assert_eq(rc, -EINVAL, "send(NULL, 1): %d (%s)", rc, shmring_strerror(rc));
	rc = shmring_send_wait(p, NULL, 5, &dl);
	cr_assert_eq(rc, -EINVAL, "send_wait(NULL, 5): %d (%s)", rc, shmring_strerror(rc));
	cr_assert_eq(shmring_commit(p), 0);
	expect_peek_rc(c, -EAGAIN);

	cr_assert_eq(shmring_send(p, NULL, 0), 0);
	cr_assert_eq(shmring_send_wait(p, NULL, 0, &dl), 0);
	cr_assert_eq(shmring_send(p, scratch, 0), 0);
	void *d = NULL;
	cr_assert_eq(shmring_reserve(p, 0, &d), 0);
	cr_assert_not_null(d);
	cr_assert_eq(shmring_commit(p), 1);
	cr_assert_eq(send_msg(p, 5, 16), 0);
	cr_assert_eq(ring_info(r).tail, 4 * SHMRING_RECORD_SIZE(0) + SHMRING_RECORD_SIZE(16));

	/* Each zero-length message is delivered, with length 0. */
	const void *q = NULL;
	size_t n = 99;
	cr_assert_eq(shmring_peek(c, &q, &n), 0);
	cr_assert_eq(n, 0u);
	cr_assert_eq(shmring_release(c), 1);
	n = 99;
	cr_assert_eq(shmring_recv(c, NULL, 0, &n), 0);
	cr_assert_eq(n, 0u);
	n = 99;
	cr_assert_eq(shmring_recv(c, recv_buf, 0, &n), 0);
	cr_assert_eq(n, 0u);
	n = 99;
	cr_assert_eq(shmring_recv(c, recv_buf, sizeof(recv_buf), &n), 0);
	cr_assert_eq(n, 0u);
	expect_recv(c, 5, 16);
	expect_peek_rc(c, -EAGAIN);

	close_prod(p);
	close_cons(c);
	close_ring(r);
}

/* The copying paths (shmring_send, shmring_recv, shmring_recv_batch, a
 * group's recv) copy large payloads by blocks when the two ends lie at
 * different offsets in a 64-byte line (copy_payload(), src/internal.h),
 * and the receives copy payloads of up to 64 bytes by two overlapping
 * moves of 1 to 32 bytes (copy_out()).  Every length at and around each
 * move's size, around the switch and around a block, from and to buffers
 * at each offset 0-15 and 56-63, and records at each offset modulo 64: the
 * bytes arrive exactly, and nothing is written past the message in the
 * receiver's buffer. */
Test(api, copies_exact_at_every_offset, .timeout = 60)
{
	static const size_t lens[] = {0,    1,    2,    3,    4,    5,    7,    8,    9,
				      15,   16,   17,   31,   32,   33,   40,   63,   64,
				      65,   127,  2047, 2048, 2049, 2050, 2111, 2112, 2113,
				      4095, 4096, 4097, 4159, 8191, 8192, 8200, 65535, 65536};
	const size_t nlens = sizeof(lens) / sizeof(lens[0]);
	static uint8_t src[65536 + 128], dst[65536 + 256];
	const size_t guard = 64;
	struct shmring *r = new_ring(1u << 20, 4);
	struct shmring_producer *p = open_prod(r);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_consumer *g = NULL;
	cr_assert_eq(shmring_group_open(r, "copies", SHMRING_START_NEWEST, &g), 0);
	uint64_t seq = 0, checked = 0;

	for (size_t li = 0; li < nlens; li++) {
		size_t len = lens[li];
		for (unsigned so = 0; so < 64; so += so == 15 ? 41 : 1) {
			unsigned dofs = (so * 7 + (unsigned)li) % 64;
			if (dofs > 15 && dofs < 56)
				dofs %= 16;
			uint8_t *m = src + so;
			for (size_t i = 0; i < len; i++)
				m[i] = (uint8_t)(i * 131 + seq * 7 + 1);
			cr_assert_eq(shmring_send(p, m, len), 0, "send of %zu from offset %u", len, so);
			/* Broadcast: recv and recv_batch in turn, into a buffer at
			 * offset dofs, with a guard band after the message. */
			memset(dst, 0xa5, sizeof(dst));
			uint8_t *b = dst + dofs;
			size_t got = 0;
			int rc;
			if (seq % 2) {
				struct shmring_msg msg;
				rc = shmring_recv_batch(c, b, len + guard, &msg, 1);
				cr_assert_eq(rc, 1, "recv_batch of %zu: %s", len, shmring_strerror(rc));
				cr_assert_eq(msg.data, len ? (void *)b : msg.data);
				got = msg.len;
			} else {
				rc = shmring_recv(c, b, len + guard, &got);
				cr_assert_eq(rc, 0, "recv of %zu: %s", len, shmring_strerror(rc));
			}
			cr_assert_eq(got, len);
			cr_assert(memcmp(b, m, len) == 0,
				  "%zu bytes from offset %u to offset %u differ", len, so, dofs);
			for (size_t i = 0; i < guard; i++)
				cr_assert_eq(b[len + i], 0xa5, "byte %zu past a %zu-byte message written",
					     i, len);
			/* The group member, to the other offset. */
			memset(dst, 0xa5, sizeof(dst));
			b = dst + (63 - dofs);
			rc = shmring_recv(g, b, len + guard, &got);
			cr_assert_eq(rc, 0, "group recv of %zu: %s", len, shmring_strerror(rc));
			cr_assert_eq(got, len);
			cr_assert(memcmp(b, m, len) == 0, "group: %zu bytes from offset %u differ",
				  len, so);
			for (size_t i = 0; i < guard; i++)
				cr_assert_eq(b[len + i], 0xa5, "group: byte %zu past the message written",
					     i);
			seq++;
			checked++;
		}
	}
	cr_assert_eq(checked, nlens * 24); /* offsets 0-15 and 56-63 */
	close_cons(g);
	close_cons(c);
	close_prod(p);
	close_ring(r);
}

/*
 * shmring_send() from a source 1-63 bytes before its destination, modulo
 * 4096, copies by 64-byte blocks (2049-4096 bytes) or through the
 * producer's bounce buffer (more, by pieces of 8 KiB: copy_bounced(),
 * internal.h).  Each message here is sent from where that distance is d:
 * the page offset of the next payload is known from the last one's (every
 * mapping of the data is page-aligned, so offsets in a page are the same in
 * the producer's view), and the ring is big enough that nothing wraps or
 * pads.  The peek checks that the distance was the one meant, every byte,
 * that the 64 bytes after the payload (never written yet) are still 0, and,
 * a message later, that the next send left the message before it alone.
 */
Test(api, sends_at_short_distances_copy_exactly, .timeout = 60)
{
	static const size_t lens[] = {2049, 4095, 4096, 8191, 8192, 8193, 20000, 65536};
	static const unsigned dists[] = {1, 7, 8, 15, 16, 56, 63, 0, 64, 2048};
	const size_t nlens = sizeof(lens) / sizeof(lens[0]);
	const size_t ndists = sizeof(dists) / sizeof(dists[0]);
	uint8_t *area = aligned_alloc(4096, 65536 + 8192);
	uint8_t *prev = malloc(65536);
	cr_assert(area && prev);
	struct shmring *r = new_ring(4u << 20, 2);
	struct shmring_producer *p = open_prod(r);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_consumer *c2 = open_cons(r, SHMRING_START_NEWEST);
	uint8_t *buf = malloc(65536);
	cr_assert_not_null(buf);
	uint64_t first = 0x1122334455667788u;
	cr_assert_eq(shmring_send(p, &first, 8), 0);
	const void *d;
	size_t len;
	cr_assert_eq(shmring_peek(c, &d, &len), 0);
	uintptr_t next = ((uintptr_t)d + SHMRING_RECORD_SIZE(8)) & 4095;
	size_t plen = 0, seq = 0;
	const uint8_t *pd = NULL;
	cr_assert_eq(shmring_recv(c2, buf, 65536, &len), 0);

	for (size_t li = 0; li < nlens; li++)
		for (size_t di = 0; di < ndists; di++, seq++) {
			size_t n = lens[li];
			uint8_t *src = area + ((next - dists[di]) & 4095);
			for (size_t i = 0; i < n; i++)
				src[i] = (uint8_t)(i * 131 + seq * 29 + 1);
			cr_assert_eq(shmring_send(p, src, n), 0, "send of %zu", n);
			/* The message before: the send did not write over it. */
			if (pd)
				for (size_t i = 0; i < plen; i++)
					cr_assert_eq(pd[i], prev[i], "message %zu's byte %zu changed", seq - 1,
						     i);
			cr_assert_eq(shmring_release(c), 1);
			const uint8_t *got;
			cr_assert_eq(shmring_peek(c, &d, &len), 0);
			got = d;
			cr_assert_eq(len, n);
			cr_assert_eq((uintptr_t)got & 4095, next, "the payload is not where expected");
			cr_assert_eq(((uintptr_t)got - (uintptr_t)src) & 4095, dists[di]);
			cr_assert(memcmp(got, src, n) == 0, "%zu bytes at a distance of %u differ", n,
				  dists[di]);
			for (size_t i = 0; i < 64; i++)
				cr_assert_eq(got[n + i], 0, "byte %zu after a %zu-byte payload written", i, n);
			/* The copying receive of the same message. */
			cr_assert_eq(shmring_recv(c2, buf, 65536, &len), 0);
			cr_assert_eq(len, n);
			cr_assert(memcmp(buf, src, n) == 0);
			memcpy(prev, src, n);
			pd = got;
			plen = n;
			next = ((uintptr_t)got + SHMRING_RECORD_SIZE(n)) & 4095;
		}
	cr_assert_eq(shmring_release(c), 1);
	close_cons(c2);
	close_cons(c);
	close_prod(p);
	close_ring(r);
	free(buf);
	free(prev);
	free(area);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_ALLOCATOR 1
#endif
#endif

/* In a child: no more address space (RLIMIT_AS at what is mapped now), and
 * malloc()'s heap used up by 256-byte blocks, then 16 of them freed: room
 * for a handle, none for 12 KiB.  0, or -1 if malloc() never failed. */
static int squeeze_heap(void)
{
	unsigned long pages = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f || fscanf(f, "%lu", &pages) != 1)
		return -1;
	fclose(f);
	struct rlimit rl = {pages * (unsigned long)sysconf(_SC_PAGESIZE),
			    pages * (unsigned long)sysconf(_SC_PAGESIZE)};
	if (setrlimit(RLIMIT_AS, &rl))
		return -1;
	void **last = NULL, **b;
	size_t n = 0;
	while (n < (1u << 24) && (b = malloc(256))) {
		*b = last;
		last = b;
		n++;
	}
	if (n == 1u << 24)
		return -1;
	for (int i = 0; i < 16 && last; i++) {
		b = *last;
		free(last);
		last = b;
	}
	return 0;
}

/*
 * shmring_producer_open() allocates the 12 KiB bounce buffer of
 * shmring_send() for a ring whose max_message is over 4096 bytes, and
 * fails with -ENOMEM, leaving nothing behind, when it cannot.  With the
 * same memory left, a ring of smaller messages (no buffer) still opens.
 */
Test(api, producer_open_reports_no_memory_for_the_bounce_buffer)
{
#ifdef SANITIZER_ALLOCATOR
	cr_skip_test("a sanitizer's allocator does not fail under RLIMIT_AS, it aborts");
#endif
	/* max_message is capacity / 2 - 8: 8184 and 4088 bytes. */
	if (page_bytes() > 8192)
		cr_skip_test("pages of %llu bytes: no ring of messages of at most 4096 bytes",
			     ull(page_bytes()));
	struct shmring *big = new_ring(16384, 1), *small = new_ring(8192, 1);
	cr_assert_gt(ring_info(big).max_message, 4096);
	cr_assert_leq(ring_info(small).max_message, 4096);
	pid_t pid = test_spawn();
	if (pid == 0) {
		struct shmring_producer *p = NULL;
		if (squeeze_heap())
			_exit(2);
		if (shmring_producer_open(big, &p) != -ENOMEM)
			_exit(3);
		if (shmring_producer_open(small, &p) != 0)
			_exit(4);
		if (shmring_send(p, "x", 1) != 0 || shmring_producer_close(p) != 0)
			_exit(5);
		_exit(0);
	}
	int st = test_wait(pid);
	cr_assert_eq(st, 0, "child: %d (2: no squeeze, 3: big ring opened, 4: small ring refused, "
			    "5: small ring's send or close)", st);
	/* The failed open left the role free: a producer opens here. */
	struct shmring_producer *p = open_prod(big);
	close_prod(p);
	close_ring(small);
	close_ring(big);
}

/* ---- consumer_open ------------------------------------------------------- */

Test(api, consumer_start_newest_skips_published)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_producer *p = open_prod(r);
	for (uint64_t s = 0; s < 3; s++)
		cr_assert_eq(send_msg(p, s, 40), 0);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_consumer *c0 = open_cons(r, 0);
	expect_peek_rc(c, -EAGAIN);
	expect_peek_rc(c0, -EAGAIN);
	cr_assert_eq(send_msg(p, 3, 40), 0);
	expect_recv(c, 3, 40);
	expect_recv(c0, 3, 40);
	expect_peek_rc(c, -EAGAIN);
	close_cons(c0);
	close_cons(c);
	close_prod(p);
	close_ring(r);
}

Test(api, consumer_start_oldest_sees_earlier_messages)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_producer *p = open_prod(r);
	for (uint64_t s = 0; s < 5; s++)
		cr_assert_eq(send_msg(p, s, 40 + s), 0);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_OLDEST);
	for (uint64_t s = 0; s < 5; s++)
		expect_recv(c, s, 40 + s);
	expect_peek_rc(c, -EAGAIN);
	cr_assert_eq(send_msg(p, 5, 45), 0);
	expect_recv(c, 5, 45);
	close_cons(c);
	close_prod(p);
	close_ring(r);
}

/* A attaches first, then messages are published: B (OLDEST) starts at A. */
Test(api, consumer_start_oldest_at_attached_consumer)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_producer *p = open_prod(r);
	struct shmring_consumer *a = open_cons(r, SHMRING_START_NEWEST);
	for (uint64_t s = 0; s < 4; s++)
		cr_assert_eq(send_msg(p, s, 56), 0);
	struct shmring_consumer *b = open_cons(r, SHMRING_START_OLDEST);
	for (uint64_t s = 0; s < 4; s++) {
		expect_recv(a, s, 56);
		expect_recv(b, s, 56);
	}
	expect_peek_rc(b, -EAGAIN);
	close_cons(b);
	close_cons(a);
	close_prod(p);
	close_ring(r);
}

/* The ring has wrapped (older data overwritten) before A attaches; the
 * producer then fills the ring up to A.  B (OLDEST) must start at A's
 * position, not at overwritten data. */
Test(api, consumer_start_oldest_at_consumer_after_wrap_and_full)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_producer *p = open_prod(r);
	const size_t len = 200;
	uint64_t seq = 0;
	for (; seq < 100; seq++)
		cr_assert_eq(send_msg(p, seq, len), 0);
	struct shmring_consumer *a = open_cons(r, SHMRING_START_NEWEST);
	uint64_t first = seq;
	unsigned n = fill(p, &seq, len);
	cr_assert_gt(n, 0u);
	struct shmring_consumer *b = open_cons(r, SHMRING_START_OLDEST);
	for (uint64_t s = first; s < seq; s++) {
		expect_recv(a, s, len);
		expect_recv(b, s, len);
	}
	expect_peek_rc(b, -EAGAIN);
	close_cons(b);
	close_cons(a);
	close_prod(p);
	close_ring(r);
}

/* Messages were published before A attached at an older position than the
 * newest; B (OLDEST) must start where A is: "the slowest attached
 * consumer's position". */
/* OLDEST starts at the oldest message not yet given up for overwriting: before
 * the ring first fills that is message 0, even when a consumer attached later
 * sits further on.  Both then read everything from there in order. */
Test(api, consumer_start_oldest_before_slowest_consumer)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_producer *p = open_prod(r);
	for (uint64_t s = 0; s < 2; s++)
		cr_assert_eq(send_msg(p, s, 40), 0);
	struct shmring_consumer *a = open_cons(r, SHMRING_START_NEWEST);
	for (uint64_t s = 2; s < 5; s++)
		cr_assert_eq(send_msg(p, s, 40), 0);
	struct shmring_consumer *b = open_cons(r, SHMRING_START_OLDEST);
	for (uint64_t s = 0; s < 2; s++)
		expect_recv(b, s, 40);
	for (uint64_t s = 2; s < 5; s++) {
		expect_recv(a, s, 40);
		expect_recv(b, s, 40);
	}
	expect_peek_rc(b, -EAGAIN);
	close_cons(b);
	close_cons(a);
	close_prod(p);
	close_ring(r);
}

/* With no consumer and a ring that wrapped many times, OLDEST starts at data
 * that is still intact: a run of consecutive messages ending at the last. */
Test(api, consumer_start_oldest_after_wrap_is_intact)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	uint64_t cap = ring_info(r).capacity;
	struct shmring_producer *p = open_prod(r);
	const size_t len = 120;
	const uint64_t total = 1000;
	for (uint64_t s = 0; s < total; s++)
		cr_assert_eq(send_msg(p, s, len), 0);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_OLDEST);
	uint64_t got = 0, expect_seq = 0;
	for (;;) {
		size_t n = 0;
		int rc = shmring_recv(c, recv_buf, sizeof(recv_buf), &n);
		if (rc == -EAGAIN)
			break;
		cr_assert_eq(rc, 0, "recv: %s", shmring_strerror(rc));
		cr_assert_eq(n, len);
		uint64_t s;
		memcpy(&s, recv_buf, sizeof(s));
		if (got == 0) {
			cr_assert_lt(s, total, "first message has a bad sequence %llu", ull(s));
			expect_seq = s;
		}
		cr_assert_eq(s, expect_seq, "message %llu after %llu", ull(s), ull(expect_seq - 1));
		cr_assert(is_msg(recv_buf, n, s, len), "message %llu is corrupt", ull(s));
		expect_seq++;
		got++;
		cr_assert_leq(got, cap / SHMRING_RECORD_SIZE(len));
	}
	if (got)
		cr_assert_eq(expect_seq, total, "the run does not end at the last message");
	close_cons(c);
	close_prod(p);
	close_ring(r);
}

Test(api, consumer_open_einval)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_consumer *c = NULL;
	const unsigned bad[] = { 2u, 4u, 3u, 0x80000000u, ~0u };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = shmring_consumer_open(r, bad[i], &c);
		cr_assert_eq(rc, -EINVAL, "flags %#x: %d (%s)", bad[i], rc, shmring_strerror(rc));
		cr_assert_null(c);
	}
	cr_assert_eq(shmring_consumer_open(NULL, 0, &c), -EINVAL);
	cr_assert_eq(shmring_consumer_open(r, 0, NULL), -EINVAL);
	cr_assert_null(c);
	cr_assert_eq(ring_info(r).consumers, 0u, "a failed open took a slot");
	close_ring(r);
}

Test(api, consumer_eusers_and_slot_reuse)
{
	struct shmring *r = new_ring(page_bytes(), 3);
	cr_assert_eq(ring_info(r).max_consumers, 3u);
	struct shmring_producer *p = open_prod(r);
	struct shmring_consumer *c[3];
	for (int i = 0; i < 3; i++)
		c[i] = open_cons(r, i == 1 ? SHMRING_START_OLDEST : SHMRING_START_NEWEST);
	cr_assert_eq(ring_info(r).consumers, 3u);

	struct shmring_consumer *x = NULL;
	int rc = shmring_consumer_open(r, SHMRING_START_NEWEST, &x);
	cr_assert_eq(rc, -EUSERS, "fourth consumer: %d (%s)", rc, shmring_strerror(rc));
	cr_assert_null(x);
	rc = shmring_consumer_open(r, SHMRING_START_OLDEST, &x);
	cr_assert_eq(rc, -EUSERS, "fourth consumer (oldest): %d (%s)", rc, shmring_strerror(rc));
	cr_assert_eq(ring_info(r).consumers, 3u);

	/* All three receive. */
	cr_assert_eq(send_msg(p, 0, 30), 0);
	for (int i = 0; i < 3; i++)
		expect_recv(c[i], 0, 30);

	close_cons(c[1]);
	cr_assert_eq(ring_info(r).consumers, 2u);
	c[1] = open_cons(r, SHMRING_START_NEWEST);
	cr_assert_eq(ring_info(r).consumers, 3u);
	rc = shmring_consumer_open(r, SHMRING_START_NEWEST, &x);
	cr_assert_eq(rc, -EUSERS, "fourth consumer after reuse: %d (%s)", rc, shmring_strerror(rc));

	cr_assert_eq(send_msg(p, 1, 30), 0);
	for (int i = 0; i < 3; i++) {
		expect_recv(c[i], 1, 30);
		expect_peek_rc(c[i], -EAGAIN);
	}
	for (int i = 0; i < 3; i++)
		close_cons(c[i]);
	cr_assert_eq(ring_info(r).consumers, 0u);
	close_prod(p);
	close_ring(r);
}

/* ---- peek / release / recv ------------------------------------------------ */

Test(api, peek_release_holds_room_until_release)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	uint64_t cap = ring_info(r).capacity;
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_producer *p = open_prod(r);
	const size_t len = 200;
	const uint64_t rs = SHMRING_RECORD_SIZE(len);
	uint64_t seq = 0;

	expect_peek_rc(c, -EAGAIN);
	cr_assert_eq(shmring_release(c), 0, "release with nothing peeked");

	unsigned n = fill(p, &seq, len);
	cr_assert_eq(n, cap / rs);

	/* Peek three, keep them: the producer still has no room. */
	const void *held[3];
	for (int i = 0; i < 3; i++) {
		size_t m = 0;
		cr_assert_eq(shmring_peek(c, &held[i], &m), 0);
		cr_assert(is_msg(held[i], m, (uint64_t)i, len));
	}
	void *d = NULL;
	int rc = shmring_reserve(p, len, &d);
	cr_assert_eq(rc, -EAGAIN, "reserve with the room only peeked: %d (%s)", rc,
		     shmring_strerror(rc));
	cr_assert_eq(send_msg(p, seq, len), -EAGAIN);
	/* The peeked bytes are unchanged. */
	for (int i = 0; i < 3; i++)
		cr_assert(is_msg(held[i], len, (uint64_t)i, len));

	rc = shmring_release(c);
	cr_assert_eq(rc, 3, "release returned %d", rc);
	cr_assert_eq(shmring_release(c), 0);

	/* Exactly the released room is reusable. */
	unsigned more = fill(p, &seq, len);
	cr_assert_eq(more, (unsigned)((cap - (uint64_t)(n - 3) * rs) / rs));
	for (uint64_t s = 3; s < seq; s++)
		expect_peek(c, s, len);
	expect_peek_rc(c, -EAGAIN);
	cr_assert_eq(shmring_release(c), (int)(seq - 3));

	close_prod(p);
	close_cons(c);
	close_ring(r);
}

Test(api, epipe_only_after_everything_read)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_consumer *c1 = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_consumer *c2 = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_consumer *c3 = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_producer *p = open_prod(r);

	expect_peek_rc(c1, -EAGAIN);
	for (uint64_t s = 0; s < 3; s++)
		cr_assert_eq(send_msg(p, s, 24 + 8 * s), 0);
	close_prod(p);
	cr_assert_eq(ring_info(r).closed, 1);

	/* Peek path: all three first, even without releasing, then -EPIPE. */
	for (uint64_t s = 0; s < 3; s++)
		expect_peek(c1, s, 24 + 8 * s);
	expect_peek_rc(c1, -EPIPE);
	cr_assert_eq(shmring_release(c1), 3);
	expect_peek_rc(c1, -EPIPE);

	/* Copy path. */
	for (uint64_t s = 0; s < 3; s++)
		expect_recv(c2, s, 24 + 8 * s);
	size_t n = 0;
	int rc = shmring_recv(c2, recv_buf, sizeof(recv_buf), &n);
	cr_assert_eq(rc, -EPIPE, "recv after draining a closed ring: %d (%s)", rc,
		     shmring_strerror(rc));

	/* Waiting calls: data first, then -EPIPE at once, even with no deadline. */
	const void *d = NULL;
	rc = shmring_peek_wait(c3, &d, &n, NULL);
	cr_assert_eq(rc, 0);
	cr_assert(is_msg(d, n, 0, 24));
	rc = shmring_recv_wait(c3, recv_buf, sizeof(recv_buf), &n, NULL);
	cr_assert_eq(rc, 0);
	cr_assert(is_msg(recv_buf, n, 1, 32));
	rc = shmring_recv_wait(c3, recv_buf, sizeof(recv_buf), &n, NULL);
	cr_assert_eq(rc, 0);
	cr_assert(is_msg(recv_buf, n, 2, 40));
	uint64_t t0 = test_now_ns();
	rc = shmring_recv_wait(c3, recv_buf, sizeof(recv_buf), &n, NULL);
	cr_assert_eq(rc, -EPIPE, "recv_wait on a drained closed ring: %d (%s)", rc,
		     shmring_strerror(rc));
	rc = shmring_peek_wait(c3, &d, &n, NULL);
	cr_assert_eq(rc, -EPIPE, "peek_wait on a drained closed ring: %d (%s)", rc,
		     shmring_strerror(rc));
	cr_assert_lt(test_now_ns() - t0, PROMPT_NS);

	/* A consumer attached after the close has nothing to read. */
	struct shmring_consumer *c4 = open_cons(r, SHMRING_START_NEWEST);
	expect_peek_rc(c4, -EPIPE);

	close_cons(c4);
	close_cons(c3);
	close_cons(c2);
	close_cons(c1);
	close_ring(r);
}

Test(api, recv_emsgsize_keeps_message)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_producer *p = open_prod(r);
	cr_assert_eq(send_msg(p, 0, 100), 0);
	cr_assert_eq(send_msg(p, 1, 30), 0);
	cr_assert_eq(send_msg(p, 2, 50), 0);

	size_t n = 0;
	memset(recv_buf, 0xa5, sizeof(recv_buf));
	int rc = shmring_recv(c, recv_buf, 99, &n);
	cr_assert_eq(rc, -EMSGSIZE, "recv into 99 bytes: %d (%s)", rc, shmring_strerror(rc));
	cr_assert_eq(n, 100u, "*len after -EMSGSIZE: %zu", n);
	n = 0;
	rc = shmring_recv(c, NULL, 0, &n);
	cr_assert_eq(rc, -EMSGSIZE, "recv into no buffer: %d (%s)", rc, shmring_strerror(rc));
	cr_assert_eq(n, 100u);
	n = 0;
	struct timespec dl;
	cr_assert_eq(shmring_deadline(&dl, WAIT_NS), 0);
	rc = shmring_recv_wait(c, recv_buf, 1, &n, &dl);
	cr_assert_eq(rc, -EMSGSIZE, "recv_wait into 1 byte: %d (%s)", rc, shmring_strerror(rc));
	cr_assert_eq(n, 100u);

	/* The message is still the next one. */
	n = 0;
	rc = shmring_recv(c, recv_buf, 100, &n);
	cr_assert_eq(rc, 0, "recv into exactly 100 bytes: %s", shmring_strerror(rc));
	cr_assert(is_msg(recv_buf, n, 0, 100));

	/* After a peek (not released), -EMSGSIZE leaves the next one unread;
	 * a later successful recv releases both. */
	expect_peek(c, 1, 30);
	n = 0;
	rc = shmring_recv(c, recv_buf, 49, &n);
	cr_assert_eq(rc, -EMSGSIZE);
	cr_assert_eq(n, 50u);
	expect_recv(c, 2, 50);
	cr_assert_eq(shmring_release(c), 0);
	expect_peek_rc(c, -EAGAIN);

	close_prod(p);
	close_cons(c);
	close_ring(r);
}

Test(api, consumer_einval_on_null)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_producer *p = open_prod(r);
	cr_assert_eq(send_msg(p, 0, 16), 0);
	const void *d = NULL;
	size_t n = 0;
	struct timespec dl;
	cr_assert_eq(shmring_deadline(&dl, WAIT_NS), 0);

	cr_assert_eq(shmring_consumer_close(NULL), -EINVAL);
	cr_assert_eq(shmring_peek(NULL, &d, &n), -EINVAL);
	cr_assert_eq(shmring_peek(c, NULL, &n), -EINVAL);
	cr_assert_eq(shmring_peek(c, &d, NULL), -EINVAL);
	cr_assert_eq(shmring_peek_wait(NULL, &d, &n, &dl), -EINVAL);
	cr_assert_eq(shmring_peek_wait(c, NULL, &n, &dl), -EINVAL);
	cr_assert_eq(shmring_peek_wait(c, &d, NULL, &dl), -EINVAL);
	cr_assert_eq(shmring_release(NULL), -EINVAL);
	cr_assert_eq(shmring_recv(NULL, recv_buf, 16, &n), -EINVAL);
	cr_assert_eq(shmring_recv(c, recv_buf, 16, NULL), -EINVAL);
	cr_assert_eq(shmring_recv(c, NULL, 16, &n), -EINVAL);
	cr_assert_eq(shmring_recv_wait(NULL, recv_buf, 16, &n, &dl), -EINVAL);
	cr_assert_eq(shmring_recv_wait(c, recv_buf, 16, NULL, &dl), -EINVAL);
	cr_assert_eq(shmring_recv_wait(c, NULL, 16, &n, &dl), -EINVAL);

	/* None of them consumed the message. */
	expect_recv(c, 0, 16);
	close_prod(p);
	close_cons(c);
	close_ring(r);
}

/* ---- deadlines ------------------------------------------------------------ */

/* spin: 0 sleeps at once, SPIN_DEFAULT keeps the default, otherwise the
 * spin in ns (longer than the deadline: the spin loop alone must honour it). */
#define SPIN_DEFAULT UINT64_MAX
#define SPIN_LONG (1000 * MS)

static void set_spin(struct shmring *r, uint64_t spin)
{
	if (spin != SPIN_DEFAULT)
		cr_assert_eq(shmring_set_spin(r, spin), 0);
}

static void consumer_deadlines(uint64_t spin)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	set_spin(r, spin);
	struct shmring_producer *p = open_prod(r);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct timespec dl;
	const void *d = NULL;
	size_t n = 0;

	cr_assert_eq(shmring_deadline(&dl, WAIT_NS), 0);
	int rc = shmring_recv_wait(c, recv_buf, sizeof(recv_buf), &n, &dl);
	assert_timed_out(rc, &dl, "recv_wait on an empty ring");
	cr_assert_eq(shmring_deadline(&dl, WAIT_NS), 0);
	rc = shmring_peek_wait(c, &d, &n, &dl);
	assert_timed_out(rc, &dl, "peek_wait on an empty ring");

	/* Deadlines already past: -ETIMEDOUT at once. */
	const struct timespec zero = { 0, 0 };
	cr_assert_eq(shmring_deadline(&dl, 0), 0);
	uint64_t t0 = test_now_ns();
	rc = shmring_recv_wait(c, recv_buf, sizeof(recv_buf), &n, &dl);
	cr_assert_eq(rc, -ETIMEDOUT, "recv_wait, past deadline: %d (%s)", rc, shmring_strerror(rc));
	rc = shmring_peek_wait(c, &d, &n, &dl);
	cr_assert_eq(rc, -ETIMEDOUT, "peek_wait, past deadline: %d (%s)", rc, shmring_strerror(rc));
	rc = shmring_recv_wait(c, recv_buf, sizeof(recv_buf), &n, &zero);
	cr_assert_eq(rc, -ETIMEDOUT, "recv_wait, deadline 0: %d (%s)", rc, shmring_strerror(rc));
	rc = shmring_peek_wait(c, &d, &n, &zero);
	cr_assert_eq(rc, -ETIMEDOUT, "peek_wait, deadline 0: %d (%s)", rc, shmring_strerror(rc));
	cr_assert_lt(test_now_ns() - t0, PROMPT_NS, "past deadlines took %llu ms",
		     ull((test_now_ns() - t0) / MS));

	/* ...but data that is there is returned, deadline or not. */
	for (uint64_t s = 0; s < 4; s++)
		cr_assert_eq(send_msg(p, s, 64), 0);
	t0 = test_now_ns();
	rc = shmring_recv_wait(c, recv_buf, sizeof(recv_buf), &n, &dl);
	cr_assert_eq(rc, 0, "recv_wait with data, past deadline: %d (%s)", rc, shmring_strerror(rc));
	cr_assert(is_msg(recv_buf, n, 0, 64));
	rc = shmring_peek_wait(c, &d, &n, &dl);
	cr_assert_eq(rc, 0, "peek_wait with data, past deadline: %d (%s)", rc, shmring_strerror(rc));
	cr_assert(is_msg(d, n, 1, 64));
	cr_assert_eq(shmring_release(c), 1);
	rc = shmring_recv_wait(c, recv_buf, sizeof(recv_buf), &n, &zero);
	cr_assert_eq(rc, 0);
	cr_assert(is_msg(recv_buf, n, 2, 64));
	rc = shmring_peek_wait(c, &d, &n, &zero);
	cr_assert_eq(rc, 0);
	cr_assert(is_msg(d, n, 3, 64));
	cr_assert_eq(shmring_release(c), 1);
	cr_assert_lt(test_now_ns() - t0, PROMPT_NS);

	/* Drained again: the deadline applies again. */
	cr_assert_eq(shmring_deadline(&dl, WAIT_NS), 0);
	rc = shmring_recv_wait(c, recv_buf, sizeof(recv_buf), &n, &dl);
	assert_timed_out(rc, &dl, "recv_wait on a drained ring");

	close_cons(c);
	close_prod(p);
	close_ring(r);
}

Test(api, consumer_deadlines_no_spin, .timeout = 30)
{
	consumer_deadlines(0);
}

Test(api, consumer_deadlines_default_spin, .timeout = 30)
{
	consumer_deadlines(SPIN_DEFAULT);
}

Test(api, consumer_deadlines_spin_past_deadline, .timeout = 30)
{
	consumer_deadlines(SPIN_LONG);
}

static void producer_deadlines(uint64_t spin)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	set_spin(r, spin);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_NEWEST);
	struct shmring_producer *p = open_prod(r);
	const size_t len = 200;
	uint64_t seq = 0, rseq = 0;
	struct timespec dl;
	void *d = NULL;

	cr_assert_gt(fill(p, &seq, len), 0u);
	msg_fill(scratch, len, seq);
	cr_assert_eq(shmring_deadline(&dl, WAIT_NS), 0);
	int rc = shmring_send_wait(p, scratch, len, &dl);
	assert_timed_out(rc, &dl, "send_wait on a full ring");
	cr_assert_eq(shmring_deadline(&dl, WAIT_NS), 0);
	rc = shmring_reserve_wait(p, len, &d, &dl);
	assert_timed_out(rc, &dl, "reserve_wait on a full ring");
	cr_assert_eq(shmring_commit(p), 0, "a timed-out wait left a reservation");

	const struct timespec zero = { 0, 0 };
	cr_assert_eq(shmring_deadline(&dl, 0), 0);
	uint64_t t0 = test_now_ns();
	rc = shmring_send_wait(p, scratch, len, &dl);
	cr_assert_eq(rc, -ETIMEDOUT, "send_wait, past deadline: %d (%s)", rc, shmring_strerror(rc));
	rc = shmring_reserve_wait(p, len, &d, &dl);
	cr_assert_eq(rc, -ETIMEDOUT, "reserve_wait, past deadline: %d (%s)", rc,
		     shmring_strerror(rc));
	rc = shmring_send_wait(p, scratch, len, &zero);
	cr_assert_eq(rc, -ETIMEDOUT, "send_wait, deadline 0: %d (%s)", rc, shmring_strerror(rc));
	rc = shmring_reserve_wait(p, len, &d, &zero);
	cr_assert_eq(rc, -ETIMEDOUT, "reserve_wait, deadline 0: %d (%s)", rc, shmring_strerror(rc));
	cr_assert_lt(test_now_ns() - t0, PROMPT_NS, "past deadlines took %llu ms",
		     ull((test_now_ns() - t0) / MS));

	/* With room, past deadlines do not matter. */
	expect_recv(c, rseq, len);
	rseq++;
	expect_recv(c, rseq, len);
	rseq++;
	t0 = test_now_ns();
	rc = shmring_send_wait(p, scratch, len, &dl);
	cr_assert_eq(rc, 0, "send_wait with room, past deadline: %d (%s)", rc, shmring_strerror(rc));
	seq++;
	rc = shmring_reserve_wait(p, len, &d, &zero);
	cr_assert_eq(rc, 0, "reserve_wait with room, deadline 0: %d (%s)", rc,
		     shmring_strerror(rc));
	msg_fill(d, len, seq);
	seq++;
	cr_assert_eq(shmring_commit(p), 1);
	cr_assert_lt(test_now_ns() - t0, PROMPT_NS);

	/* Full again. */
	cr_assert_eq(shmring_deadline(&dl, WAIT_NS), 0);
	rc = shmring_reserve_wait(p, len, &d, &dl);
	assert_timed_out(rc, &dl, "reserve_wait on a full ring again");

	for (; rseq < seq; rseq++)
		expect_recv(c, rseq, len);
	expect_peek_rc(c, -EAGAIN);

	close_prod(p);
	close_cons(c);
	close_ring(r);
}

Test(api, producer_deadlines_no_spin, .timeout = 30)
{
	producer_deadlines(0);
}

Test(api, producer_deadlines_default_spin, .timeout = 30)
{
	producer_deadlines(SPIN_DEFAULT);
}

Test(api, producer_deadlines_spin_past_deadline, .timeout = 30)
{
	producer_deadlines(SPIN_LONG);
}

/* ---- cross-process wake-ups ------------------------------------------------ */

/* A child blocked in recv_wait is woken by the parent's send. */
static void recv_woken_by_send(int sleep_at_once)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_producer *p = open_prod(r);
	int ready[2];
	make_pipe(ready);
	const size_t len = 333;

	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(ready[0]);
		if (sleep_at_once && shmring_set_spin(r, 0))
			_exit(10);
		struct shmring_consumer *c = NULL;
		if (shmring_consumer_open(r, SHMRING_START_NEWEST, &c))
			_exit(11);
		struct timespec dl;
		shmring_deadline(&dl, CHILD_WAIT_NS);
		uint64_t t0 = test_now_ns();
		if (write_all(ready[1], "r", 1))
			_exit(12);
		static uint8_t buf[4096];
		size_t n = 0;
		int rc = shmring_recv_wait(c, buf, sizeof(buf), &n, &dl);
		uint64_t waited = test_now_ns() - t0;
		if (rc == -ETIMEDOUT)
			_exit(13);
		if (rc)
			_exit(14);
		if (!is_msg(buf, n, 77, len))
			_exit(15);
		if (waited < 50 * MS)
			_exit(16); /* the parent sent only after 100 ms */
		if (waited > WAKE_NS)
			_exit(18); /* not woken: found the data at its deadline */
		if (shmring_consumer_close(c))
			_exit(17);
		_exit(0);
	}
	close(ready[1]);
	char ch;
	cr_assert_eq(read_all(ready[0], &ch, 1), 0, "child did not get ready");
	close(ready[0]);
	sleep_ms(100); /* let the child go to sleep */
	cr_assert_eq(send_msg(p, 77, len), 0);
	int st = test_wait(pid);
	cr_assert_eq(st, 0, "child status %d (13: recv_wait timed out, 18: it was not woken, "
		     "it found the message only at its deadline)", st);
	close_prod(p);
	close_ring(r);
}

Test(api, recv_wait_woken_by_send_no_spin, .timeout = 60)
{
	recv_woken_by_send(1);
}

Test(api, recv_wait_woken_by_send_default_spin, .timeout = 60)
{
	recv_woken_by_send(0);
}

/* In a forked child: opens a consumer at the newest message, tells the
 * parent (on up), waits for its go (on down).  Exits 10-12 if it fails. */
static struct shmring_consumer *child_attach(struct shmring *r, int up[2], int down[2])
{
	close(up[0]);
	close(down[1]);
	struct shmring_consumer *c = NULL;
	if (shmring_consumer_open(r, SHMRING_START_NEWEST, &c))
		_exit(10);
	if (write_all(up[1], "r", 1))
		_exit(11);
	char ch;
	if (read_all(down[0], &ch, 1))
		_exit(12);
	return c;
}

/* In a forked child: receives until -EPIPE, each message the next of len
 * bytes from `count` on (any length if len is SIZE_MAX), then writes the
 * count to fd and exits 0, or 13-16. */
static void child_drain_exit(struct shmring_consumer *c, int fd, uint64_t count, size_t len)
{
	static uint8_t buf[4096];
	struct timespec dl;
	shmring_deadline(&dl, CHILD_WAIT_NS);
	for (;;) {
		size_t n = 0;
		int rc = shmring_recv_wait(c, buf, sizeof(buf), &n, &dl);
		if (rc == -EPIPE)
			break;
		if (rc)
			_exit(13);
		if (len != SIZE_MAX && !is_msg(buf, n, count, len))
			_exit(14);
		count++;
	}
	if (write_all(fd, &count, sizeof(count)))
		_exit(15);
	_exit(shmring_consumer_close(c) ? 16 : 0);
}

/* In the parent of child_attach(): waits until the child is attached. */
static void parent_ready(int up[2], int down[2])
{
	close(up[1]);
	close(down[0]);
	char ch;
	cr_assert_eq(read_all(up[0], &ch, 1), 0, "child did not get ready");
}

/* Gives the child its go (on fd), then sends message seq of len bytes with
 * send_wait on a full ring: it must return 0 after at least min_ns and at
 * most WAKE_NS, having slept, not spun (under 30 ms of CPU). */
static void go_send_wait(int fd, struct shmring_producer *p, uint64_t seq, size_t len,
			 uint64_t min_ns)
{
	uint64_t t0 = test_now_ns(), cpu0 = cpu_ns();
	cr_assert_eq(write_all(fd, "g", 1), 0);
	struct timespec dl;
	cr_assert_eq(shmring_deadline(&dl, CHILD_WAIT_NS), 0);
	msg_fill(scratch, len, seq);
	int rc = shmring_send_wait(p, scratch, len, &dl);
	uint64_t waited = test_now_ns() - t0, cpu = cpu_ns() - cpu0;
	cr_assert_eq(rc, 0, "send_wait on a full ring: %d (%s)", rc, shmring_strerror(rc));
	cr_assert_geq(waited, min_ns, "send_wait returned after %llu ms, before the room came",
		      ull(waited / MS));
	cr_assert_lt(cpu, 30 * MS, "send_wait spun for %llu ms of CPU in %llu ms", ull(cpu / MS),
		     ull(waited / MS));
	cr_assert_leq(waited, WAKE_NS, "send_wait was not woken by the release (%llu ms)",
		      ull(waited / MS));
}

/* The parent blocked in send_wait on a full ring is woken when a child
 * consumer releases room. */
Test(api, send_wait_woken_by_child_release, .timeout = 60)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	int up[2], down[2];
	make_pipe(up);
	make_pipe(down);
	const size_t len = 200;

	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		struct shmring_consumer *c = child_attach(r, up, down);
		sleep_ms(100); /* the parent is blocked in send_wait by now */
		child_drain_exit(c, up[1], 0, len);
	}
	parent_ready(up, down);
	struct shmring_producer *p = open_prod(r);
	uint64_t seq = 0;
	unsigned n = fill(p, &seq, len);
	cr_assert_gt(n, 0u);
	cr_assert_neq(test_pad_before((uint64_t)n * SHMRING_RECORD_SIZE(len), page_bytes(),
				      SHMRING_RECORD_SIZE(len)),
		      0u);

	/* Records of 208 bytes fill the ring but for less than one (19 and
	 * 144 bytes in a 4 KiB page): the next one starts the next lap after
	 * a pad, and waits for room for both (sleeping, not spinning: its CPU
	 * time is checked). */
	go_send_wait(down[1], p, seq++, len, 50 * MS);
	/* And reserve_wait, woken the same way as the child drains. */
	void *d = NULL;
	struct timespec dl;
	cr_assert_eq(shmring_deadline(&dl, CHILD_WAIT_NS), 0);
	uint64_t t0 = test_now_ns();
	for (int i = 0; i < 2 * (int)n; i++) {
		int rc = shmring_reserve_wait(p, len, &d, &dl);
		cr_assert_eq(rc, 0, "reserve_wait %d: %d (%s)", i, rc, shmring_strerror(rc));
		msg_fill(d, len, seq);
		seq++;
		cr_assert_eq(shmring_commit(p), 1);
	}
	uint64_t waited = test_now_ns() - t0;
	cr_assert_leq(waited, WAKE_NS, "reserve_wait calls were not woken (%llu ms)",
		      ull(waited / MS));
	close_prod(p);

	uint64_t count = 0;
	cr_assert_eq(read_all(up[0], &count, sizeof(count)), 0, "child sent no count");
	close(up[0]);
	close(down[1]);
	int st = test_wait(pid);
	cr_assert_eq(st, 0, "child status %d", st);
	cr_assert_eq(count, seq, "child received %llu of %llu messages", ull(count), ull(seq));
	close_ring(r);
}

/*
 * A record that starts the next lap after a pad needs room for both: the
 * producer waits for that, sleeping, not for room for the record alone
 * (which would come first here, and leave it spinning until the rest came).
 * Page ring: one 16-byte record, then 208-byte ones up to 128 bytes before
 * the end; then a 136-byte record needs 128 + 136.  The child releases the
 * 16-byte record (144 free: enough for the record alone), waits, then the
 * rest.
 */
Test(api, send_wait_sleeps_until_room_for_pad_and_record, .timeout = 60)
{
	const uint64_t cap = page_bytes(), small = 8, big = 200, last = 128;
	struct shmring *r = new_ring(cap, 0);
	int up[2], down[2];
	make_pipe(up);
	make_pipe(down);
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		struct shmring_consumer *c = child_attach(r, up, down);
		static uint8_t buf[4096];
		size_t n = 0;
		sleep_ms(100);
		if (shmring_recv(c, buf, sizeof(buf), &n) || !is_msg(buf, n, 0, small))
			_exit(17);
		sleep_ms(150); /* the parent must sleep through this */
		child_drain_exit(c, up[1], 1, SIZE_MAX);
	}
	parent_ready(up, down);
	struct shmring_producer *p = open_prod(r);
	uint64_t seq = 0, pos = SHMRING_RECORD_SIZE(small);
	cr_assert_eq(send_msg(p, seq++, small), 0);
	while (cap - pos >= SHMRING_RECORD_SIZE(big) + last) {
		cr_assert_eq(send_msg(p, seq++, big), 0);
		pos += SHMRING_RECORD_SIZE(big);
	}
	size_t len = (size_t)(cap - pos); /* a record of SHMRING_RECORD_HDR more */
	cr_assert_eq(cap - pos, last, "page of %llu bytes", ull(cap));
	cr_assert_eq(send_msg(p, seq, len), -EAGAIN);

	go_send_wait(down[1], p, seq++, len, 200 * MS);
	close_prod(p);
	uint64_t count = 0;
	cr_assert_eq(read_all(up[0], &count, sizeof(count)), 0, "child sent no count");
	close(up[0]);
	close(down[1]);
	cr_assert_eq(test_wait(pid), 0);
	cr_assert_eq(count, seq);
	close_ring(r);
}

/* Producer shutdown wakes a consumer blocked forever; it gets -EPIPE. */
static void shutdown_wakes_consumer(int peek)
{
	struct shmring *r = new_ring(page_bytes(), 0);
	struct shmring_producer *p = open_prod(r);
	int ready[2];
	make_pipe(ready);

	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(ready[0]);
		alarm(20); /* a lost wake-up kills the child, status 128 + SIGALRM */
		struct shmring_consumer *c = NULL;
		if (shmring_consumer_open(r, SHMRING_START_NEWEST, &c))
			_exit(10);
		if (write_all(ready[1], "r", 1))
			_exit(11);
		static uint8_t buf[256];
		const void *d;
		size_t n = 0;
		int rc = peek ? shmring_peek_wait(c, &d, &n, NULL)
			      : shmring_recv_wait(c, buf, sizeof(buf), &n, NULL);
		if (rc == 0)
			_exit(12);
		if (rc != -EPIPE)
			_exit(13);
		if (shmring_consumer_close(c))
			_exit(14);
		_exit(0);
	}
	close(ready[1]);
	char ch;
	cr_assert_eq(read_all(ready[0], &ch, 1), 0, "child did not get ready");
	close(ready[0]);
	sleep_ms(100);
	cr_assert_eq(shmring_producer_shutdown(p), 0);
	int st = test_wait(pid);
	cr_assert_eq(st, 0, "child status %d (%d: still blocked after shutdown)", st,
		     128 + SIGALRM);
	close_prod(p);
	close_ring(r);
}

Test(api, shutdown_wakes_recv_wait_forever, .timeout = 60)
{
	shutdown_wakes_consumer(0);
}

Test(api, shutdown_wakes_peek_wait_forever, .timeout = 60)
{
	shutdown_wakes_consumer(1);
}

/* ---- strerror / deadline --------------------------------------------------- */

Test(api, strerror_distinct_for_documented_codes)
{
	const int codes[] = {
		EINVAL, EEXIST, ENOSPC, EACCES, EMFILE, ENFILE, ENOMEM, ENAMETOOLONG,
		ENOENT, EAGAIN, EPROTO, EPROTONOSUPPORT, ENOTSUP, EBADF, EBUSY,
		EMSGSIZE, ENOBUFS, EPIPE, ETIMEDOUT, EUSERS, EOVERFLOW, EINTR, ENOLCK,
	};
	const size_t k = sizeof(codes) / sizeof(codes[0]);
	for (size_t i = 0; i < k; i++) {
		const char *s = shmring_strerror(-codes[i]);
		cr_assert_not_null(s, "code %d", codes[i]);
		cr_assert_neq(s[0], '\0', "empty string for %d", codes[i]);
		cr_assert_str_neq(s, "unknown error", "code %d (%s) is unknown to strerror",
				  codes[i], strerror(codes[i]));
		const char *pos = shmring_strerror(codes[i]);
		cr_assert_not_null(pos);
		cr_assert_str_eq(pos, s, "positive %d differs from negative", codes[i]);
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(s, shmring_strerror(-codes[j]),
					  "codes %d and %d share \"%s\"", codes[i], codes[j], s);
	}
	const int unknown[] = { 9999, -9999, 4095, -4095, INT_MAX, -INT_MAX };
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		const char *s = shmring_strerror(unknown[i]);
		cr_assert_not_null(s);
		cr_assert_str_eq(s, "unknown error", "code %d gave \"%s\"", unknown[i], s);
	}
}

/* INT_MIN is an int a caller may pass; it has no positive counterpart. */
Test(api, strerror_int_min_is_unknown)
{
	const char *s = shmring_strerror(INT_MIN);
	cr_assert_not_null(s);
	cr_assert_str_eq(s, "unknown error");
}

Test(api, deadline_einval_and_value)
{
	cr_assert_eq(shmring_deadline(NULL, 0), -EINVAL);
	cr_assert_eq(shmring_deadline(NULL, 1000), -EINVAL);
	struct timespec dl;
	uint64_t before = test_now_ns();
	cr_assert_eq(shmring_deadline(&dl, 1000 * MS), 0);
	uint64_t after = test_now_ns();
	cr_assert_geq(dl.tv_nsec, 0);
	cr_assert_lt(dl.tv_nsec, 1000000000L);
	cr_assert_geq(ts_ns(&dl), before + 1000 * MS);
	cr_assert_leq(ts_ns(&dl), after + 1000 * MS);
}
