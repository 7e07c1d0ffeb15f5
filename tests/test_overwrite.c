/* SPDX-License-Identifier: MIT */
/* Description: policy OVERWRITE.  A producer process that never waits laps a
 * slow consumer process thousands of times: every message the consumer gets
 * is intact and in order, each -EOVERFLOW grows the lost count by exactly
 * the gap in sequence numbers that follows it, and received + lost equals
 * what was sent.  A zero-copy reader (peek and peek_batch) that sleeps while
 * holding records never has a torn record accepted by shmring_release().
 * The same on a one-page ring, where reads race with the producer's writes.
 * The producer's send rate (msg_fill + shmring_send, wall clock) with a
 * lapped consumer attached is compared with its rate alone.  In-process
 * cases: no -EAGAIN without consumers, START_OLDEST after a wrap gives the
 * oldest intact message, -EOVERFLOW exactly once per lap with an exact lost
 * count (checked against a model of the ring), peeked records dropped by a
 * lap, groups refused, argument errors.
 *
 * Environment: SHMRING_TEST_OW_MESSAGES (default 2000000 per run),
 * SHMRING_TEST_SEED (default: time-based; printed). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define MS 1000000ull
#define RING_CAP (64u << 10)
#define MAX_LEN_CAP 1024u
/* A consumer waits at most this long for one message: a lost wake-up or a
 * hung producer fails the test instead of hanging it. */
#define WAIT_NS (30000 * MS)

static unsigned long long ull(uint64_t v)
{
	return (unsigned long long)v;
}

static void sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)us * 1000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- multi-process runs ------------------------------------------------- */

struct run {
	uint64_t n, seed;
	size_t max_len;
	unsigned sleep_every; /* consumer sleeps every this many messages */
	unsigned sleep_us;
};

/* Figures a child writes into shared memory for the parent. */
struct figures {
	uint64_t sent, send_ns;                 /* producer */
	uint64_t received, lost, overflows;     /* consumer */
	uint64_t gap_sum, last_seq;
	uint64_t peek_overflows, release_overflows, torn_caught;
};

static struct figures *shared_figures(void)
{
	void *p = mmap(NULL, sizeof(struct figures), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(p, MAP_FAILED, "mmap: %s", strerror(errno));
	memset(p, 0, sizeof(struct figures));
	return p;
}

static struct run default_run(void)
{
	struct run run = { 0 };
	run.n = test_env("SHMRING_TEST_OW_MESSAGES", 2000000);
	run.seed = test_env("SHMRING_TEST_SEED", test_now_ns());
	run.sleep_every = 32;
	run.sleep_us = 200;
	cr_assert_gt(run.n, 1000, "SHMRING_TEST_OW_MESSAGES too small to lap anyone");
	return run;
}

static struct shmring *ow_ring(uint64_t cap, struct run *run)
{
	struct shmring_opts o = test_opts(cap, 8);
	o.policy = SHMRING_POLICY_OVERWRITE;
	struct shmring *r = NULL;
	int rc = shmring_create_anon("test_overwrite", &o, &r);
	cr_assert_eq(rc, 0, "shmring_create_anon: %s", shmring_strerror(rc));
	struct shmring_info info;
	cr_assert_eq(shmring_info(r, &info), 0);
	cr_assert_eq(info.policy, SHMRING_POLICY_OVERWRITE);
	if (run)
		run->max_len = info.max_message < MAX_LEN_CAP ? info.max_message : MAX_LEN_CAP;
	return r;
}

/* Sends run->n messages as fast as it can; shmring_send() must never fail. */
static int producer_main(struct shmring *r, const struct run *run, struct figures *f)
{
	struct shmring_producer *p;
	int rc = shmring_producer_open(r, &p);
	if (rc) {
		fprintf(stderr, "producer_open: %s\n", shmring_strerror(rc));
		return 1;
	}
	static uint8_t buf[MAX_LEN_CAP];
	uint64_t t0 = test_now_ns();
	for (uint64_t seq = 0; seq < run->n; seq++) {
		size_t len = msg_len(run->seed, seq, run->max_len);
		msg_fill(buf, len, seq);
		rc = shmring_send(p, buf, len);
		if (rc) {
			fprintf(stderr, "producer: send of seq %llu (%zu bytes): %s\n", ull(seq),
				len, shmring_strerror(rc));
			return 1;
		}
	}
	f->send_ns = test_now_ns() - t0;
	f->sent = run->n;
	rc = shmring_producer_close(p);
	if (rc) {
		fprintf(stderr, "producer_close: %s\n", shmring_strerror(rc));
		return 1;
	}
	return 0;
}

/* After an -EOVERFLOW: the lost count must have grown; the consumer's next
 * message is then *seq + (growth).  Returns 0, or 1 on failure. */
static int account_lap(const struct shmring_consumer *c, uint64_t *lost_seen, uint64_t *seq,
		       const char *who)
{
	uint64_t lost = 0;
	int rc = shmring_lost(c, &lost);
	if (rc) {
		fprintf(stderr, "%s: shmring_lost: %s\n", who, shmring_strerror(rc));
		return 1;
	}
	if (lost <= *lost_seen) {
		fprintf(stderr, "%s: -EOVERFLOW at seq %llu but lost stayed %llu (was %llu)\n", who,
			ull(*seq), ull(lost), ull(*lost_seen));
		return 1;
	}
	*seq += lost - *lost_seen;
	*lost_seen = lost;
	return 0;
}

/* The lost count must not move without an -EOVERFLOW. */
static int lost_unchanged(const struct shmring_consumer *c, uint64_t lost_seen, uint64_t seq,
			  const char *who)
{
	uint64_t lost = ~0ull;
	shmring_lost(c, &lost);
	if (lost != lost_seen) {
		fprintf(stderr, "%s: lost changed from %llu to %llu without -EOVERFLOW (at seq %llu)\n",
			who, ull(lost_seen), ull(lost), ull(seq));
		return 1;
	}
	return 0;
}

/*
 * Checks d/len as message `expect`, the sequence number predicted from what
 * was received and the lost count.  A message of 8 bytes or more carries its
 * own sequence number, which must be the predicted one: so the lost count is
 * checked against the data at every resumption after a lap.
 */
static int check_msg(const void *d, size_t len, uint64_t expect, const struct run *run)
{
	if (len >= 8) {
		uint64_t carried;
		memcpy(&carried, d, 8);
		if (carried != expect)
			return MSG_BAD_SEQ;
	}
	return msg_check(d, len, run->seed, expect, run->max_len);
}

static void report_bad(const char *who, const void *d, size_t len, uint64_t expect,
		       uint64_t lost, const struct run *run, int bad)
{
	uint64_t carried = ~0ull;
	if (len >= 8)
		memcpy(&carried, d, 8);
	fprintf(stderr,
		"%s: expected seq %llu (= received + lost, lost %llu; len %zu), got len %zu "
		"carrying seq %llu: %s\n",
		who, ull(expect), ull(lost),
		expect < run->n ? msg_len(run->seed, expect, run->max_len) : 0, len, ull(carried),
		msg_strerror(bad));
}

/* Copying reader, lapped on purpose: sleeps every run->sleep_every messages. */
static int recv_consumer_main(struct shmring_consumer *c, const struct run *run,
			      struct figures *f)
{
	static const char who[] = "slow consumer";
	static uint8_t buf[MAX_LEN_CAP];
	uint64_t expect = 0, lost_seen = 0, received = 0, overflows = 0, gap_sum = 0, last = 0;
	int have_last = 0;
	unsigned since_sleep = 0;

	for (;;) {
		struct timespec dl;
		shmring_deadline(&dl, WAIT_NS);
		size_t len = 0;
		int rc = shmring_recv_wait(c, buf, sizeof(buf), &len, &dl);
		if (rc == -EOVERFLOW) {
			overflows++;
			if (account_lap(c, &lost_seen, &expect, who))
				return 1;
			continue;
		}
		if (rc == -EPIPE)
			break;
		if (rc) {
			fprintf(stderr, "%s: recv_wait at seq %llu: %s\n", who, ull(expect),
				shmring_strerror(rc));
			return 1;
		}
		if (lost_unchanged(c, lost_seen, expect, who))
			return 1;
		int bad = expect >= run->n ? MSG_BAD_SEQ : check_msg(buf, len, expect, run);
		if (bad) {
			report_bad(who, buf, len, expect, lost_seen, run, bad);
			return 1;
		}
		/* Sequence numbers strictly increase; the gaps are the losses. */
		if (have_last && expect <= last) {
			fprintf(stderr, "%s: seq %llu after %llu\n", who, ull(expect), ull(last));
			return 1;
		}
		gap_sum += expect - (have_last ? last + 1 : 0);
		last = expect;
		have_last = 1;
		expect++;
		received++;
		if (++since_sleep >= run->sleep_every) {
			since_sleep = 0;
			sleep_us(run->sleep_us);
		}
	}
	uint64_t lost = 0;
	shmring_lost(c, &lost);
	f->received = received;
	f->lost = lost;
	f->overflows = overflows;
	f->gap_sum = gap_sum;
	f->last_seq = have_last ? last : ~0ull;
	return 0;
}

/* Zero-copy reader state: `first` is the sequence number at the cursor (the
 * first record held), `next` the one of the next record to peek. */
struct zc {
	uint64_t first, next, lost_seen, received, gap_sum, last;
	int have_last;
	unsigned held, held_bad;
};

/* Releases what is held: -EOVERFLOW drops it all (none of it counts), a
 * count accepts it all, and then every record held must have checked good. */
static int zc_release(struct shmring_consumer *c, struct zc *z, struct figures *f)
{
	static const char who[] = "zero-copy consumer";
	int rc = shmring_release(c);
	if (rc == -EOVERFLOW) {
		f->release_overflows++;
		f->torn_caught += z->held_bad;
		if (account_lap(c, &z->lost_seen, &z->first, who))
			return 1;
		z->next = z->first;
		z->held = z->held_bad = 0;
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "%s: release at seq %llu: %s\n", who, ull(z->first),
			shmring_strerror(rc));
		return 1;
	}
	if ((unsigned)rc != z->held) {
		fprintf(stderr, "%s: release returned %d with %u records held\n", who, rc, z->held);
		return 1;
	}
	if (z->held_bad) {
		fprintf(stderr,
			"%s: release accepted %u of %u records (seq %llu..%llu) that failed "
			"msg_check: a torn record counted as good (or a wrong lost count)\n",
			who, z->held_bad, z->held, ull(z->first), ull(z->next - 1));
		return 1;
	}
	if (lost_unchanged(c, z->lost_seen, z->first, who))
		return 1;
	if (z->held) {
		if (z->have_last && z->first <= z->last) {
			fprintf(stderr, "%s: seq %llu after %llu\n", who, ull(z->first), ull(z->last));
			return 1;
		}
		z->gap_sum += z->first - (z->have_last ? z->last + 1 : 0);
		z->last = z->next - 1;
		z->have_last = 1;
		z->received += z->held;
	}
	z->first = z->next;
	z->held = 0;
	return 0;
}

/* Zero-copy reader: peeks 1..4 records (shmring_peek or shmring_peek_batch),
 * reads them, then releases them.  Every run->sleep_every records it sleeps
 * after a peek, before reading the bytes, so the producer overwrites
 * records it holds. */
static int peek_consumer_main(struct shmring_consumer *c, const struct run *run,
			      struct figures *f)
{
	static const char who[] = "zero-copy consumer";
	struct zc z = { 0 };
	uint64_t s = (run->seed ^ 0x5bd1e9955bd1e995ull) | 1;
	unsigned hold = 1, count = 0;

	for (;;) {
		struct shmring_msg msgs[4];
		int batch = test_rnd(&s) & 1;
		unsigned max = hold - z.held;
		int rc = batch ? shmring_peek_batch(c, msgs, max)
			       : shmring_peek(c, &msgs[0].data, &msgs[0].len);
		if ((rc == -EAGAIN || rc == -EPIPE) && z.held) {
			if (zc_release(c, &z, f))
				return 1;
			continue;
		}
		if (rc == -EAGAIN) {
			struct timespec dl;
			shmring_deadline(&dl, WAIT_NS);
			rc = batch ? shmring_peek_batch_wait(c, msgs, max, &dl)
				   : shmring_peek_wait(c, &msgs[0].data, &msgs[0].len, &dl);
		}
		if (rc == -EPIPE)
			break;
		if (rc == -EOVERFLOW) {
			f->peek_overflows++;
			f->torn_caught += z.held_bad;
			if (account_lap(c, &z.lost_seen, &z.first, who))
				return 1;
			z.next = z.first;
			z.held = z.held_bad = 0;
			continue;
		}
		if (rc < 0) {
			fprintf(stderr, "%s: peek at seq %llu: %s\n", who, ull(z.next),
				shmring_strerror(rc));
			return 1;
		}
		unsigned n = batch ? (unsigned)rc : 1;
		if (n < 1 || n > max) {
			fprintf(stderr, "%s: peek_batch(max %u) returned %d\n", who, max, rc);
			return 1;
		}
		for (unsigned i = 0; i < n; i++) {
			if (++count % run->sleep_every == 0)
				sleep_us(run->sleep_us);
			/* The bytes may be changing under us: only the
			 * release that follows says whether they count. */
			int bad = z.next >= run->n ? MSG_BAD_SEQ
						   : check_msg(msgs[i].data, msgs[i].len, z.next, run);
			if (bad)
				z.held_bad++;
			z.next++;
			z.held++;
		}
		if (z.held >= hold) {
			if (zc_release(c, &z, f))
				return 1;
			hold = 1 + (unsigned)(test_rnd(&s) % 4);
		}
	}
	uint64_t lost = 0;
	shmring_lost(c, &lost);
	f->received = z.received;
	f->lost = lost;
	f->overflows = f->peek_overflows + f->release_overflows;
	f->gap_sum = z.gap_sum;
	f->last_seq = z.have_last ? z.last : ~0ull;
	return 0;
}

enum role { PRODUCER, RECV_CONSUMER, PEEK_CONSUMER };

static pid_t start(enum role role, struct shmring *r, struct shmring_consumer *c,
		   const struct run *run, struct figures *f)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* Never outlive the test. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int st;
		if (role == PRODUCER)
			st = producer_main(r, run, f);
		else if (role == RECV_CONSUMER)
			st = recv_consumer_main(c, run, f);
		else
			st = peek_consumer_main(c, run, f);
		_exit(st);
	}
	return pid;
}

/* Producer alone on a fresh ring: its send rate in messages per second. */
static double rate_alone(const struct run *tmpl)
{
	struct run run = *tmpl;
	struct figures *fp = shared_figures();
	struct shmring *r = ow_ring(RING_CAP, &run);
	pid_t pp = start(PRODUCER, r, NULL, &run, fp);
	int st = test_wait(pp);
	cr_assert_eq(st, 0, "producer without consumers exited with status %d", st);
	cr_assert_eq(fp->sent, run.n);
	struct shmring_info info;
	shmring_info(r, &info);
	cr_assert_eq(info.closed, 1);
	cr_assert_eq(info.consumers, 0);
	cr_assert_eq(shmring_close(r), 0);
	double rate = (double)fp->sent / ((double)fp->send_ns / 1e9);
	munmap(fp, sizeof(*fp));
	return rate;
}

/* One producer and one lapped consumer of the given kind.  Returns the
 * producer's send rate. */
static double lapped_run(struct run *run, uint64_t cap, enum role kind, struct figures *fc)
{
	struct figures *fp = shared_figures();
	struct shmring *r = ow_ring(cap, run);
	struct shmring_consumer *c = NULL;
	int rc = shmring_consumer_open(r, SHMRING_START_OLDEST, &c);
	cr_assert_eq(rc, 0, "consumer_open: %s", shmring_strerror(rc));

	uint64_t t0 = test_now_ns();
	pid_t cp = start(kind, r, c, run, fc);
	pid_t pp = start(PRODUCER, r, NULL, run, fp);
	int pst = test_wait(pp);
	int cst = test_wait(cp);
	double secs = (double)(test_now_ns() - t0) / 1e9;
	double rate = fp->send_ns ? (double)fp->sent / ((double)fp->send_ns / 1e9) : 0;

	printf("%s, %llu-byte ring: sent %llu, received %llu, lost %llu, overflows %llu",
	       kind == RECV_CONSUMER ? "slow recv consumer" : "zero-copy consumer", ull(cap),
	       ull(fp->sent),
	       ull(fc->received), ull(fc->lost), ull(fc->overflows));
	if (kind == PEEK_CONSUMER)
		printf(" (peek %llu, release %llu; torn records caught %llu)",
		       ull(fc->peek_overflows), ull(fc->release_overflows), ull(fc->torn_caught));
	printf("; %.2f s, seed %llu\n", secs, ull(run->seed));
	fflush(stdout);

	cr_assert_eq(pst, 0, "producer exited with status %d (seed %llu)", pst, ull(run->seed));
	cr_assert_eq(cst, 0, "consumer exited with status %d (seed %llu)", cst, ull(run->seed));
	cr_assert_eq(fp->sent, run->n);
	cr_assert_eq(fc->received + fc->lost, run->n,
		     "received %llu + lost %llu != sent %llu", ull(fc->received), ull(fc->lost),
		     ull(run->n));
	cr_assert_gt(fc->lost, 0, "the consumer was never lapped");
	cr_assert_geq(fc->overflows, 10, "only %llu -EOVERFLOW: not lapped enough",
		      ull(fc->overflows));
	cr_assert_eq(fc->gap_sum, fc->lost, "the gaps in sequence numbers sum to %llu, lost %llu",
		     ull(fc->gap_sum), ull(fc->lost));
	cr_assert_eq(fc->last_seq, run->n - 1, "last message received %llu, sent up to %llu",
		     ull(fc->last_seq), ull(run->n - 1));

	struct shmring_info info;
	shmring_info(r, &info);
	cr_assert_eq(info.closed, 1);
	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_close(r), 0);
	munmap(fp, sizeof(*fp));
	return rate;
}

Test(overwrite, lapped_slow_consumer_and_producer_rate, .timeout = 300)
{
	struct run run = default_run();
	struct figures *fc = shared_figures();
	double ratio = 0;
	/* Loose on purpose: a noisy 2-core machine.  The rates are wall-clock
	 * rates, so other load can make one run look slow: a ratio under the
	 * bound is measured again, and only three in a row fail.  Every
	 * attempt checks the lapped consumer in full. */
	for (int attempt = 1; attempt <= 3; attempt++) {
		double alone = rate_alone(&run);
		memset(fc, 0, sizeof(*fc));
		double lapped = lapped_run(&run, RING_CAP, RECV_CONSUMER, fc);
		ratio = lapped / alone;
		printf("producer send rate: %.0f msg/s alone, %.0f msg/s with a lapped consumer "
		       "(ratio %.2f)%s\n",
		       alone, lapped, ratio, attempt > 1 ? " (measured again)" : "");
		fflush(stdout);
		if (ratio > 0.3)
			break;
	}
	/* A producer that waited for its consumer would run at about
	 * received / sent of its rate alone. */
	cr_assert_gt(ratio, 0.3, "the producer slowed down to %.2f of its rate alone", ratio);
	munmap(fc, sizeof(*fc));
}

Test(overwrite, zero_copy_reader_never_accepts_torn_records, .timeout = 300)
{
	struct run run = default_run();
	struct figures *fc = shared_figures();
	lapped_run(&run, RING_CAP, PEEK_CONSUMER, fc);
	/* Holding records over a sleep while the producer laps: some release
	 * must have reported the lap. */
	cr_assert_gt(fc->release_overflows, 0, "no release ever returned -EOVERFLOW");
	cr_assert_gt(fc->torn_caught, 0,
		     "no held record was ever seen overwritten: the test did not test");
	munmap(fc, sizeof(*fc));
}

/* A one-page ring holds a few records: a reader that resumes at the oldest
 * intact record is overwritten within microseconds, so reads race with the
 * producer's writes all the time. */
Test(overwrite, one_page_ring_readers_race_the_producer, .timeout = 300)
{
	struct run run = default_run();
	run.n /= 2;
	struct figures *fc = shared_figures();
	lapped_run(&run, 4096, RECV_CONSUMER, fc);
	memset(fc, 0, sizeof(*fc));
	lapped_run(&run, 4096, PEEK_CONSUMER, fc);
	munmap(fc, sizeof(*fc));
}

/* ---- in one process ------------------------------------------------------ */

/* A model of the ring: the length of every message sent. */
struct model {
	size_t *lens;
	uint64_t *starts; /* where each message's record starts (after a pad) */
	uint64_t n, size; /* messages sent, array size */
	uint64_t tail;    /* end of the last message's record */
	uint64_t cap;
	uint64_t seed;
	size_t max_len;
};

static uint8_t scratch[1 << 16];
static uint8_t rbuf[1 << 16];

static void model_init(struct model *m, const struct shmring_info *info, uint64_t seed)
{
	memset(m, 0, sizeof(*m));
	m->cap = info->capacity;
	m->seed = seed;
	m->max_len = info->max_message < MAX_LEN_CAP ? info->max_message : MAX_LEN_CAP;
	m->size = 1 << 16;
	m->lens = calloc(m->size, sizeof(size_t));
	m->starts = calloc(m->size, sizeof(uint64_t));
	cr_assert(m->lens && m->starts);
}

/* Bytes the next record of len bytes takes, its pad included. */
static uint64_t model_need(const struct model *m, size_t len)
{
	uint64_t sz = SHMRING_RECORD_SIZE(len);
	return test_pad_before(m->tail, m->cap, sz) + sz;
}

/* Message m->n, of len bytes, was reserved. */
static void model_add(struct model *m, size_t len)
{
	cr_assert_lt(m->n, m->size);
	uint64_t sz = SHMRING_RECORD_SIZE(len);
	m->starts[m->n] = m->tail + test_pad_before(m->tail, m->cap, sz);
	m->tail = m->starts[m->n] + sz;
	m->lens[m->n++] = len;
}

static void model_send(struct model *m, struct shmring_producer *p)
{
	cr_assert_lt(m->n, m->size);
	size_t len = msg_len(m->seed, m->n, m->max_len);
	msg_fill(scratch, len, m->n);
	int rc = shmring_send(p, scratch, len);
	cr_assert_eq(rc, 0, "send of seq %llu (%zu bytes) in policy OVERWRITE: %s", ull(m->n), len,
		     shmring_strerror(rc));
	model_add(m, len);
}

/* Sends messages until at least `bytes` of the ring were written. */
static void model_send_bytes(struct model *m, struct shmring_producer *p, uint64_t bytes)
{
	uint64_t from = m->tail;
	while (m->tail - from < bytes)
		model_send(m, p);
}

/* The oldest intact message: the first whose record starts at most a ring
 * before the tail (the producer moves head past every record, and pad,
 * that its writes destroy). */
static uint64_t model_oldest(const struct model *m)
{
	uint64_t s = m->n;
	while (s > 0 && m->tail - m->starts[s - 1] <= m->cap)
		s--;
	return s;
}

static uint64_t lost_of(const struct shmring_consumer *c)
{
	uint64_t lost = ~0ull;
	int rc = shmring_lost(c, &lost);
	cr_assert_eq(rc, 0, "shmring_lost: %s", shmring_strerror(rc));
	return lost;
}

/* The next recv returns message seq, intact. */
static void expect_msg(const struct model *m, struct shmring_consumer *c, uint64_t seq)
{
	size_t len = ~(size_t)0;
	int rc = shmring_recv(c, rbuf, sizeof(rbuf), &len);
	cr_assert_eq(rc, 0, "recv of seq %llu: %d (%s)", ull(seq), rc, shmring_strerror(rc));
	uint64_t carried = ~0ull;
	if (len >= 8)
		memcpy(&carried, rbuf, 8);
	int bad = msg_check(rbuf, len, m->seed, seq, m->max_len);
	cr_assert_eq(bad, MSG_OK, "expected seq %llu (%zu bytes), got %zu bytes carrying seq %llu: %s",
		     ull(seq), m->lens[seq], len, ull(carried), msg_strerror(bad));
}

static void expect_rc(struct shmring_consumer *c, int want)
{
	size_t len = 0;
	int rc = shmring_recv(c, rbuf, sizeof(rbuf), &len);
	cr_assert_eq(rc, want, "recv: expected %d (%s), got %d (%s)", want, shmring_strerror(want),
		     rc, shmring_strerror(rc));
}

/* Reads every message from seq to the newest, then -EAGAIN.  Returns how
 * many it read. */
static uint64_t expect_drain(const struct model *m, struct shmring_consumer *c, uint64_t seq)
{
	uint64_t k = 0;
	for (; seq < m->n; seq++, k++)
		expect_msg(m, c, seq);
	expect_rc(c, -EAGAIN);
	return k;
}

static struct shmring *unit_ring(struct shmring_info *info)
{
	struct shmring *r = ow_ring(4096, NULL);
	cr_assert_eq(shmring_info(r, info), 0);
	return r;
}

Test(overwrite, info_policy_groups_refused_lost_einval, .timeout = 30)
{
	struct shmring_info info;
	struct shmring *r = unit_ring(&info);
	cr_assert_eq(info.policy, SHMRING_POLICY_OVERWRITE);
	cr_assert_eq(info.capacity & (info.capacity - 1), 0);
	cr_assert_eq(info.max_message, info.capacity / 2 - SHMRING_RECORD_HDR);

	struct shmring_consumer *g = NULL;
	cr_assert_eq(shmring_group_open(r, "workers", 0, &g), -ENOTSUP);
	cr_assert_eq(shmring_group_open(r, "workers", SHMRING_START_OLDEST, &g), -ENOTSUP);
	cr_assert_null(g);
	shmring_info(r, &info);
	cr_assert_eq(info.consumers, 0, "a refused group_open left %u consumers", info.consumers);
	cr_assert_eq(info.groups, 0);

	uint64_t x = 7;
	cr_assert_eq(shmring_lost(NULL, &x), -EINVAL);
	cr_assert_eq(x, 7);
	struct shmring_consumer *c = NULL;
	cr_assert_eq(shmring_consumer_open(r, 0, &c), 0);
	cr_assert_eq(shmring_lost(c, NULL), -EINVAL);
	cr_assert_eq(lost_of(c), 0);
	shmring_info(r, &info);
	cr_assert_eq(info.consumers, 1);
	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_close(r), 0);

	/* In policy BLOCK nothing is ever lost. */
	struct shmring_opts o = test_opts(4096, 4);
	cr_assert_eq(shmring_create_anon("test_overwrite_block", &o, &r), 0);
	shmring_info(r, &info);
	cr_assert_eq(info.policy, SHMRING_POLICY_BLOCK);
	cr_assert_eq(shmring_consumer_open(r, 0, &c), 0);
	struct shmring_producer *p = NULL;
	cr_assert_eq(shmring_producer_open(r, &p), 0);
	while (shmring_send(p, scratch, 100) == 0)
		;
	cr_assert_eq(lost_of(c), 0);
	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_close(r), 0);
}

Test(overwrite, never_eagain_and_start_oldest_after_wrap, .timeout = 30)
{
	struct shmring_info info;
	struct shmring *r = unit_ring(&info);
	struct model m;
	model_init(&m, &info, test_env("SHMRING_TEST_SEED", test_now_ns()));
	struct shmring_producer *p = NULL;
	cr_assert_eq(shmring_producer_open(r, &p), 0);

	/* No consumer: ten ring-fulls, each send succeeds at once. */
	model_send_bytes(&m, p, 10 * m.cap);
	/* Zero-copy batches too, up to a whole ring per commit. */
	for (int round = 0; round < 20; round++) {
		uint64_t bytes = 0;
		unsigned k = 0;
		for (;;) {
			size_t len = msg_len(m.seed, m.n, m.max_len);
			void *d = NULL;
			int rc = shmring_reserve(p, len, &d);
			uint64_t need = model_need(&m, len);
			if (rc == -ENOBUFS) {
				cr_assert_gt(bytes + need, m.cap, "-ENOBUFS with %llu bytes uncommitted",
					     ull(bytes + need));
				break;
			}
			cr_assert_eq(rc, 0, "reserve in policy OVERWRITE: %s", shmring_strerror(rc));
			msg_fill(d, len, m.n);
			model_add(&m, len);
			bytes += need;
			k++;
		}
		cr_assert_eq(shmring_commit(p), (int)k);
	}
	model_send_bytes(&m, p, 3 * m.cap);

	/* Attached after many wraps: starts at the oldest intact message. */
	uint64_t oldest = model_oldest(&m);
	cr_assert_gt(oldest, 0);
	struct shmring_consumer *c = NULL, *cn = NULL;
	cr_assert_eq(shmring_consumer_open(r, SHMRING_START_OLDEST, &c), 0);
	cr_assert_eq(shmring_consumer_open(r, SHMRING_START_NEWEST, &cn), 0);
	expect_drain(&m, c, oldest);
	cr_assert_eq(lost_of(c), 0);
	expect_rc(cn, -EAGAIN);
	model_send(&m, p);
	expect_drain(&m, cn, m.n - 1);
	expect_drain(&m, c, m.n - 1);
	cr_assert_eq(lost_of(cn), 0);

	/* After the producer closes: drained, then -EPIPE. */
	model_send(&m, p);
	cr_assert_eq(shmring_producer_close(p), 0);
	expect_msg(&m, c, m.n - 1);
	expect_rc(c, -EPIPE);
	expect_msg(&m, cn, m.n - 1);
	expect_rc(cn, -EPIPE);

	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_consumer_close(cn), 0);
	cr_assert_eq(shmring_close(r), 0);
	free(m.lens);
	free(m.starts);
}

/*
 * A consumer lapped in-process: after the producer sends three ring-fulls,
 * -EOVERFLOW exactly once, then the oldest intact message, and the lost
 * count is exactly the gap.  Then random rounds checked against the model:
 * the consumer reads some, the producer sends some, and the consumer is
 * lapped exactly when the oldest intact message is past its position.
 */
Test(overwrite, lapped_in_process_exact_lost, .timeout = 30)
{
	struct shmring_info info;
	struct shmring *r = unit_ring(&info);
	struct model m;
	uint64_t seed = test_env("SHMRING_TEST_SEED", test_now_ns());
	model_init(&m, &info, seed);
	struct shmring_consumer *c = NULL;
	cr_assert_eq(shmring_consumer_open(r, SHMRING_START_OLDEST, &c), 0);
	struct shmring_producer *p = NULL;
	cr_assert_eq(shmring_producer_open(r, &p), 0);

	model_send_bytes(&m, p, 3 * m.cap);
	expect_rc(c, -EOVERFLOW);
	uint64_t lost = lost_of(c);
	uint64_t oldest = model_oldest(&m);
	cr_assert_eq(lost, oldest, "lost %llu, but the oldest intact message is %llu", ull(lost),
		     ull(oldest));
	/* Once: the next call gives a message, the oldest intact one. */
	size_t len = 0;
	int rc = shmring_recv(c, rbuf, sizeof(rbuf), &len);
	cr_assert_eq(rc, 0, "recv after -EOVERFLOW: %s", shmring_strerror(rc));
	uint64_t seq = oldest;
	if (len >= 8)
		memcpy(&seq, rbuf, 8);
	cr_assert_eq(seq, lost, "resumed at seq %llu, but lost says %llu were skipped", ull(seq),
		     ull(lost));
	cr_assert_eq(msg_check(rbuf, len, m.seed, oldest, m.max_len), MSG_OK);
	expect_drain(&m, c, oldest + 1);
	cr_assert_eq(lost_of(c), lost);
	uint64_t received = m.n - oldest;
	cr_assert_eq(received + lost_of(c), m.n);

	/* Random rounds against the model. */
	uint64_t s = seed | 1, next = m.n, laps = 0;
	for (int round = 0; round < 2000; round++) {
		uint64_t bytes = test_rnd(&s) % (3 * m.cap);
		if (m.n + bytes / 8 + 2 >= m.size)
			break;
		model_send_bytes(&m, p, bytes);
		unsigned reads = (unsigned)(test_rnd(&s) % 24);
		for (unsigned i = 0; i < reads && next < m.n; i++) {
			uint64_t old = model_oldest(&m);
			if (old > next) {
				uint64_t before = lost_of(c);
				expect_rc(c, -EOVERFLOW);
				cr_assert_eq(lost_of(c) - before, old - next,
					     "lapped at %llu, oldest intact %llu: lost grew by %llu",
					     ull(next), ull(old), ull(lost_of(c) - before));
				next = old;
				laps++;
			}
			expect_msg(&m, c, next);
			next++;
			received++;
		}
		cr_assert_eq(received + lost_of(c), next);
	}
	cr_assert_gt(laps, 10, "the random rounds lapped the consumer only %llu times",
		     ull(laps));

	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_close(r), 0);
	free(m.lens);
	free(m.starts);
}

/* Records held by peek or peek_batch when the producer laps the consumer are
 * dropped and counted as lost; recv_batch reports a lap too. */
Test(overwrite, lap_drops_peeked_records, .timeout = 30)
{
	struct shmring_info info;
	struct shmring *r = unit_ring(&info);
	struct model m;
	model_init(&m, &info, test_env("SHMRING_TEST_SEED", test_now_ns()));
	struct shmring_consumer *c = NULL;
	cr_assert_eq(shmring_consumer_open(r, SHMRING_START_NEWEST, &c), 0);
	struct shmring_producer *p = NULL;
	cr_assert_eq(shmring_producer_open(r, &p), 0);

	/* peek one, lapped while holding it: release says -EOVERFLOW. */
	model_send(&m, p);
	const void *d = NULL;
	size_t len = 0;
	cr_assert_eq(shmring_peek(c, &d, &len), 0);
	cr_assert_eq(msg_check(d, len, m.seed, 0, m.max_len), MSG_OK);
	model_send_bytes(&m, p, 3 * m.cap);
	cr_assert_eq(shmring_release(c), -EOVERFLOW);
	uint64_t oldest = model_oldest(&m);
	cr_assert_eq(lost_of(c), oldest, "lost %llu, expected %llu (the held record counts)",
		     ull(lost_of(c)), ull(oldest));
	cr_assert_eq(shmring_release(c), 0, "nothing is held after the lap");
	uint64_t received = expect_drain(&m, c, oldest);

	/* peek_batch, lapped while holding: the next peek says -EOVERFLOW and
	 * the batch counts as lost. */
	uint64_t base = m.n, lost0 = lost_of(c), bytes = 0;
	int want = 0;
	/* Up to 5 messages, as many as the ring holds at once (random sizes). */
	while (want < 5) {
		uint64_t sz = model_need(&m, msg_len(m.seed, m.n, m.max_len));
		if (bytes + sz > m.cap)
			break;
		bytes += sz;
		model_send(&m, p);
		want++;
	}
	struct shmring_msg msgs[8];
	int n = shmring_peek_batch(c, msgs, 8);
	cr_assert_eq(n, want);
	for (int i = 0; i < n; i++)
		cr_assert_eq(msg_check(msgs[i].data, msgs[i].len, m.seed, base + (uint64_t)i,
				       m.max_len),
			     MSG_OK);
	model_send_bytes(&m, p, 2 * m.cap);
	cr_assert_eq(shmring_peek(c, &d, &len), -EOVERFLOW);
	oldest = model_oldest(&m);
	cr_assert_eq(lost_of(c) - lost0, oldest - base);
	cr_assert_eq(shmring_release(c), 0);
	received += expect_drain(&m, c, oldest);

	/* recv_batch on a lapped consumer: -EOVERFLOW once, then the oldest. */
	lost0 = lost_of(c);
	base = m.n;
	model_send_bytes(&m, p, 3 * m.cap);
	static uint8_t big[1 << 16];
	n = shmring_recv_batch(c, big, sizeof(big), msgs, 8);
	cr_assert_eq(n, -EOVERFLOW, "recv_batch on a lapped consumer: %d (%s)", n,
		     shmring_strerror(n));
	oldest = model_oldest(&m);
	cr_assert_eq(lost_of(c) - lost0, oldest - base);
	n = shmring_recv_batch(c, big, sizeof(big), msgs, 8);
	cr_assert_gt(n, 0, "recv_batch after the lap: %d (%s)", n, shmring_strerror(n));
	for (int i = 0; i < n; i++)
		cr_assert_eq(msg_check(msgs[i].data, msgs[i].len, m.seed, oldest + (uint64_t)i,
				       m.max_len),
			     MSG_OK, "recv_batch message %d after the lap", i);
	received += (uint64_t)n + expect_drain(&m, c, oldest + (uint64_t)n);
	cr_assert_eq(received + lost_of(c), m.n, "received %llu + lost %llu != sent %llu",
		     ull(received), ull(lost_of(c)), ull(m.n));

	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_close(r), 0);
	free(m.lens);
	free(m.starts);
}

/* 1 if b/n is a message of len bytes (8 or more) that carries seq. */
static int is_msg(const void *b, size_t n, uint64_t seq, size_t len)
{
	uint64_t v;
	if (n != len || len < 8)
		return 0;
	memcpy(&v, b, 8);
	return v == seq;
}

/*
 * A reader that stopped where a pad now lies (layout 5) and is overtaken
 * only by the overwriting of that pad has lost no message: it goes on with
 * the next lap's first record, without -EOVERFLOW, its lost count 0.
 * 64 KiB ring: 65 records of 1008 bytes, read; the 66th starts the next
 * lap after a 16-byte pad; then 16-byte records up to the end of that lap,
 * whose last one overwrites the pad and moves head just past it.
 */
Test(overwrite, reader_overtaken_only_by_a_pad_loses_nothing, .timeout = 30)
{
	const uint64_t cap = 65536;
	const size_t big = 1000, small = 8;
	struct shmring *r = ow_ring(cap, NULL);
	struct shmring_consumer *c = NULL;
	cr_assert_eq(shmring_consumer_open(r, SHMRING_START_OLDEST, &c), 0);
	struct shmring_producer *p = NULL;
	cr_assert_eq(shmring_producer_open(r, &p), 0);
	uint64_t seq = 0;
	size_t got = 0;
	for (; seq < 65; seq++) {
		msg_fill(scratch, big, seq);
		cr_assert_eq(shmring_send(p, scratch, big), 0);
	}
	for (uint64_t s = 0; s < 65; s++) {
		cr_assert_eq(shmring_recv(c, rbuf, sizeof(rbuf), &got), 0);
		cr_assert(is_msg(rbuf, got, s, big));
	}
	msg_fill(scratch, big, seq);
	cr_assert_eq(shmring_send(p, scratch, big), 0); /* after the pad */
	seq++;
	struct shmring_info in;
	cr_assert_eq(shmring_info(r, &in), 0);
	cr_assert_eq(in.tail, cap + SHMRING_RECORD_SIZE(big));
	while (in.tail < 2 * cap) {
		msg_fill(scratch, small, seq++);
		cr_assert_eq(shmring_send(p, scratch, small), 0);
		cr_assert_eq(shmring_info(r, &in), 0);
	}
	cr_assert_eq(in.tail, 2 * cap); /* the last one ends the lap exactly */
	int rc = shmring_recv(c, rbuf, sizeof(rbuf), &got);
	cr_assert_eq(rc, 0, "recv after the pad was overwritten: %s", shmring_strerror(rc));
	cr_assert(is_msg(rbuf, got, 65, big), "not message 65 (%zu bytes)", got);
	uint64_t lost = ~0ull;
	cr_assert_eq(shmring_lost(c, &lost), 0);
	cr_assert_eq(lost, 0, "lost %llu messages", ull(lost));
	for (uint64_t s = 66; s < seq; s++) {
		cr_assert_eq(shmring_recv(c, rbuf, sizeof(rbuf), &got), 0);
		cr_assert(is_msg(rbuf, got, s, small));
	}
	cr_assert_eq(shmring_recv(c, rbuf, sizeof(rbuf), &got), -EAGAIN);
	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_close(r), 0);
}
