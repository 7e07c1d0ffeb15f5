/* SPDX-License-Identifier: MIT */
/* Description: batch receive for broadcast consumers (policy BLOCK), and
 * batch reservation (shmring_reserve_batch, shmring_reserve_array).  In one
 * process, three consumers of one small ring (recv one by one, recv_batch
 * with random limits and buffers, peek_batch + release) read the identical
 * sequence while the ring wraps thousands of times; recv_batch's buffer
 * layout, -EMSGSIZE, -EAGAIN, -EINVAL, -EPIPE and deadlines are checked as
 * documented.  Across processes, a producer sends a million self-checking
 * messages to a recv_batch_wait consumer and a peek_batch_wait consumer, and
 * both prove order, no loss and no duplicate.  shmring_reserve_batch() and
 * shmring_reserve_array(), each: room taken exactly (a ringful, the 10
 * records freed, the capacity with nobody attached, then -ENOBUFS), errors,
 * mixing with single reservations, OVERWRITE laps with exact loss counts;
 * the array form writes only *first, and its stride is checked by the
 * messages the consumer reads.  Then a producer publishing a million
 * messages in random batches, of both forms, through a small ring to a
 * checking consumer in another process, with short batches required.
 *
 * Environment: SHMRING_TEST_BATCH_MESSAGES (default 1000000 for the
 * multi-process run), SHMRING_TEST_SEED (default: time-based; printed). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define MS 1000000ull
/* A blocking call that another process must end waits at most this long:
 * a lost wake-up fails the test instead of hanging it. */
#define WAIT_NS (30000 * MS)

/* The deadline of one wait: WAIT_NS from now. */
static struct timespec soon(void)
{
	struct timespec dl;
	shmring_deadline(&dl, WAIT_NS);
	return dl;
}
/* How late a timed-out call may return: scheduler noise, not speed. */
#define LATE_NS (2000 * MS)

static unsigned long long ull(uint64_t v)
{
	return (unsigned long long)v;
}

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static uint64_t seed_of_run(void)
{
	return test_env("SHMRING_TEST_SEED", test_now_ns());
}

static struct shmring *new_ring(uint64_t cap, uint32_t consumers)
{
	struct shmring_opts o = test_opts(cap, consumers);
	struct shmring *r = NULL;
	int rc = shmring_create_anon("test_batch", &o, &r);
	cr_assert_eq(rc, 0, "shmring_create_anon: %s", shmring_strerror(rc));
	struct shmring_info info;
	shmring_info(r, &info);
	cr_assert_eq(info.policy, SHMRING_POLICY_BLOCK);
	return r;
}

static struct shmring_consumer *open_cons(struct shmring *r, unsigned flags)
{
	struct shmring_consumer *c = NULL;
	int rc = shmring_consumer_open(r, flags, &c);
	cr_assert_eq(rc, 0, "consumer_open: %s", shmring_strerror(rc));
	return c;
}

static struct shmring_producer *open_prod(struct shmring *r)
{
	struct shmring_producer *p = NULL;
	int rc = shmring_producer_open(r, &p);
	cr_assert_eq(rc, 0, "producer_open: %s", shmring_strerror(rc));
	return p;
}

/* FNV-1a over a message's length and bytes, chained: two readers that got
 * the same sequence of messages end with the same value. */
static uint64_t hash_msg(uint64_t h, const void *d, size_t len)
{
	const uint8_t *p = d;
	uint64_t l = len;
	for (int i = 0; i < 8; i++)
		h = (h ^ (uint8_t)(l >> (8 * i))) * 0x100000001b3ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

#define HASH0 0xcbf29ce484222325ull

/* ---- (a) three readers, one process ------------------------------------- */

struct reader {
	const char *name;
	struct shmring_consumer *c;
	uint64_t next;  /* sequence number of the next message to read */
	uint64_t hash;
	uint64_t calls, emsgsize;
};

struct world {
	uint64_t seed, m, sent;
	size_t max_len;
	uint64_t cap;
	size_t *lens;   /* length of every message */
	uint64_t *ends; /* position of the end of every message's record */
	uint64_t hash;  /* of everything sent */
	uint64_t s;     /* random state */
};

static void check_one(struct world *w, struct reader *rd, const void *d, size_t len)
{
	cr_assert_lt(rd->next, w->sent, "%s: got a message past the %llu sent", rd->name,
		     ull(w->sent));
	int bad = msg_check(d, len, w->seed, rd->next, w->max_len);
	uint64_t carried = ~0ull;
	if (len >= 8)
		memcpy(&carried, d, 8);
	cr_assert_eq(bad, MSG_OK,
		     "%s: expected seq %llu (%zu bytes), got %zu bytes carrying seq %llu: %s "
		     "(seed %llu)",
		     rd->name, ull(rd->next), w->lens[rd->next], len, ull(carried),
		     msg_strerror(bad), ull(w->seed));
	rd->hash = hash_msg(rd->hash, d, len);
	rd->next++;
}

static uint8_t one_buf[1 << 16];
static _Alignas(8) uint8_t batch_buf[1 << 17];

/* A: shmring_recv, one message. */
static void step_recv(struct world *w, struct reader *rd)
{
	size_t len = ~(size_t)0;
	int rc = shmring_recv(rd->c, one_buf, sizeof(one_buf), &len);
	rd->calls++;
	if (rd->next == w->sent) {
		cr_assert_eq(rc, -EAGAIN, "%s: recv on a drained ring: %d (%s)", rd->name, rc,
			     shmring_strerror(rc));
		return;
	}
	cr_assert_eq(rc, 0, "%s: recv of seq %llu: %s", rd->name, ull(rd->next),
		     shmring_strerror(rc));
	check_one(w, rd, one_buf, len);
}

/*
 * Checks the layout of a recv_batch result: each message inside buf at an
 * 8-byte aligned offset from buf, in order, not overlapping.  Zero-length
 * messages are exempt from the offset check here (see
 * recv_batch_zero_length_offset_aligned).  Returns the end offset of the
 * last message.
 */
static size_t check_layout(const char *who, const uint8_t *buf, size_t buflen,
			   const struct shmring_msg *msgs, int n)
{
	size_t end = 0;
	for (int i = 0; i < n; i++) {
		const uint8_t *d = msgs[i].data;
		cr_assert(d >= buf && d <= buf + buflen && msgs[i].len <= buflen &&
				  (size_t)(d - buf) <= buflen - msgs[i].len,
			  "%s: message %d of %d (%zu bytes) at %p is outside buf %p + %zu", who, i,
			  n, msgs[i].len, (const void *)d, (const void *)buf, buflen);
		size_t off = (size_t)(d - buf);
		if (msgs[i].len)
			cr_assert_eq(off % 8, 0, "%s: message %d of %d (%zu bytes) at offset %zu",
				     who, i, n, msgs[i].len, off);
		cr_assert_geq(off, end, "%s: message %d at offset %zu overlaps the one before "
			      "(ending at %zu)", who, i, off, end);
		end = off + msgs[i].len;
	}
	return end;
}

/* B: shmring_recv_batch with a random max and a random buffer size. */
static void step_recv_batch(struct world *w, struct reader *rd)
{
	struct shmring_msg msgs[32];
	unsigned max = 1 + (unsigned)(test_rnd(&w->s) % 32);
	size_t buflen = (size_t)(test_rnd(&w->s) % (3 * w->max_len));
	uint64_t avail = w->sent - rd->next;
	memset(msgs, 0xa5, sizeof(msgs));
	int n = shmring_recv_batch(rd->c, batch_buf, buflen, msgs, max);
	rd->calls++;
	if (avail == 0) {
		cr_assert_eq(n, -EAGAIN, "%s: recv_batch on a drained ring: %d (%s)", rd->name, n,
			     shmring_strerror(n));
		return;
	}
	size_t need = w->lens[rd->next];
	if (need > buflen) {
		cr_assert_eq(n, -EMSGSIZE,
			     "%s: recv_batch of seq %llu (%zu bytes) into %zu bytes: %d (%s)",
			     rd->name, ull(rd->next), need, buflen, n, shmring_strerror(n));
		cr_assert_eq(msgs[0].len, need, "%s: -EMSGSIZE says %zu bytes needed, not %zu",
			     rd->name, msgs[0].len, need);
		rd->emsgsize++;
		/* Nothing was consumed: a big enough buffer gets it now. */
		buflen = sizeof(batch_buf);
		n = shmring_recv_batch(rd->c, batch_buf, buflen, msgs, max);
		rd->calls++;
	}
	cr_assert_gt(n, 0, "%s: recv_batch of seq %llu (%llu available): %d (%s)", rd->name,
		     ull(rd->next), ull(avail), n, shmring_strerror(n));
	cr_assert_leq((unsigned)n, max, "%s: recv_batch returned %d > max %u", rd->name, n, max);
	cr_assert_leq((uint64_t)n, avail, "%s: recv_batch returned %d, only %llu sent",
		      rd->name, n, ull(avail));
	size_t end = check_layout(rd->name, batch_buf, buflen, msgs, n);
	/* It stops early only at a message that does not fit after the last. */
	if ((unsigned)n < max && (uint64_t)n < avail) {
		size_t len = w->lens[rd->next + (uint64_t)n];
		size_t off = align8(end);
		cr_assert(off > buflen || len > buflen - off,
			  "%s: recv_batch returned %d of %llu available (max %u) although "
			  "the next (%zu bytes) fits at offset %zu of %zu",
			  rd->name, n, ull(avail), max, len, off, buflen);
	}
	for (int i = 0; i < n; i++)
		check_one(w, rd, msgs[i].data, msgs[i].len);
}

/* C: shmring_peek_batch (once or twice) then one release. */
static void step_peek_batch(struct world *w, struct reader *rd)
{
	struct shmring_msg msgs[32];
	int total = 0;
	int rounds = 1 + (int)(test_rnd(&w->s) % 2);
	for (int k = 0; k < rounds; k++) {
		unsigned max = 1 + (unsigned)(test_rnd(&w->s) % 32);
		uint64_t avail = w->sent - rd->next;
		int n = shmring_peek_batch(rd->c, msgs, max);
		rd->calls++;
		if (avail == 0) {
			cr_assert_eq(n, -EAGAIN, "%s: peek_batch on a drained ring: %d (%s)",
				     rd->name, n, shmring_strerror(n));
			break;
		}
		uint64_t want = avail < max ? avail : max;
		cr_assert_eq((uint64_t)n, want, "%s: peek_batch(max %u) with %llu available: %d (%s)",
			     rd->name, max, ull(avail), n, shmring_strerror(n));
		for (int i = 0; i < n; i++)
			check_one(w, rd, msgs[i].data, msgs[i].len);
		total += n;
	}
	int rc = shmring_release(rd->c);
	cr_assert_eq(rc, total, "%s: release after peeking %d: %d (%s)", rd->name, total, rc,
		     shmring_strerror(rc));
}

/* Bytes of the ring from the end of message from - 1 (a reader that has
 * consumed `from` messages) to the tail, padding included. */
static uint64_t used_from(const struct world *w, uint64_t from)
{
	uint64_t tail = w->sent ? w->ends[w->sent - 1] : 0;
	return tail - (from ? w->ends[from - 1] : 0);
}

Test(batch, three_readers_identical_in_process, .timeout = 120)
{
	struct world w = { 0 };
	w.seed = seed_of_run();
	w.s = w.seed | 1;
	w.m = 200000;
	struct shmring *r = new_ring(8192, 8);
	struct shmring_info info;
	shmring_info(r, &info);
	w.cap = info.capacity;
	w.max_len = info.max_message < 1500 ? info.max_message : 1500;
	w.lens = calloc(w.m, sizeof(size_t));
	w.ends = calloc(w.m, sizeof(uint64_t));
	cr_assert(w.lens && w.ends);
	w.hash = HASH0;

	struct reader rd[3] = {
		{ .name = "A (recv)", .hash = HASH0 },
		{ .name = "B (recv_batch)", .hash = HASH0 },
		{ .name = "C (peek_batch)", .hash = HASH0 },
	};
	for (int i = 0; i < 3; i++)
		rd[i].c = open_cons(r, SHMRING_START_OLDEST);
	struct shmring_producer *p = open_prod(r);
	static uint8_t msg[1 << 16];
	uint64_t eagain = 0;

	while (rd[0].next < w.m || rd[1].next < w.m || rd[2].next < w.m) {
		/* The producer sends 0..47 messages, until the ring is full. */
		unsigned k = (unsigned)(test_rnd(&w.s) % 48);
		for (unsigned i = 0; i < k && w.sent < w.m; i++) {
			size_t len = msg_len(w.seed, w.sent, w.max_len);
			msg_fill(msg, len, w.sent);
			int rc = shmring_send(p, msg, len);
			uint64_t tail = used_from(&w, 0);
			uint64_t need = test_pad_before(tail, w.cap, SHMRING_RECORD_SIZE(len)) +
					SHMRING_RECORD_SIZE(len);
			if (rc == -EAGAIN) {
				/* Full only if the slowest reader holds the room. */
				uint64_t slow = rd[0].next;
				for (int j = 1; j < 3; j++)
					slow = rd[j].next < slow ? rd[j].next : slow;
				cr_assert_gt(used_from(&w, slow) + need, w.cap,
					     "send of %zu bytes: -EAGAIN with %llu of %llu bytes used",
					     len, ull(used_from(&w, slow)), ull(w.cap));
				eagain++;
				break;
			}
			cr_assert_eq(rc, 0, "send of seq %llu: %s", ull(w.sent), shmring_strerror(rc));
			w.ends[w.sent] = tail + need;
			w.lens[w.sent++] = len;
			struct shmring_info in;
			cr_assert_eq(shmring_info(r, &in), 0);
			cr_assert_eq(in.tail, tail + need, "seq %llu: tail %llu, %llu expected",
				     ull(w.sent - 1), ull(in.tail), ull(tail + need));
			w.hash = hash_msg(w.hash, msg, len);
		}
		/* Each reader takes 1..4 steps, in a random order. */
		unsigned first = (unsigned)(test_rnd(&w.s) % 3);
		for (unsigned j = 0; j < 3; j++) {
			struct reader *x = &rd[(first + j) % 3];
			unsigned steps = 1 + (unsigned)(test_rnd(&w.s) % 4);
			for (unsigned t = 0; t < steps; t++) {
				if (x == &rd[0])
					step_recv(&w, x);
				else if (x == &rd[1])
					step_recv_batch(&w, x);
				else
					step_peek_batch(&w, x);
			}
		}
	}
	printf("in process: %llu messages, ring %llu bytes wrapped %llu times; calls: recv %llu, "
	       "recv_batch %llu (-EMSGSIZE %llu), peek_batch %llu; producer -EAGAIN %llu "
	       "(seed %llu)\n",
	       ull(w.m), ull(w.cap), ull(used_from(&w, 0) / w.cap), ull(rd[0].calls),
	       ull(rd[1].calls), ull(rd[1].emsgsize), ull(rd[2].calls), ull(eagain), ull(w.seed));
	fflush(stdout);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(rd[i].next, w.m);
		cr_assert_eq(rd[i].hash, w.hash, "%s read another sequence than was sent", rd[i].name);
	}
	cr_assert_gt(rd[1].emsgsize, 0, "recv_batch never met a too small buffer");
	cr_assert_gt(used_from(&w, 0) / w.cap, 100, "the ring did not wrap many times");

	cr_assert_eq(shmring_producer_close(p), 0);
	for (int i = 0; i < 3; i++) {
		size_t len;
		cr_assert_eq(shmring_recv(rd[i].c, one_buf, sizeof(one_buf), &len), -EPIPE);
		cr_assert_eq(shmring_consumer_close(rd[i].c), 0);
	}
	cr_assert_eq(shmring_close(r), 0);
	free(w.lens);
	free(w.ends);
}

/* ---- (b) documented details --------------------------------------------- */

/* Sends message seq of len bytes. */
static void send_msg(struct shmring_producer *p, uint64_t seq, size_t len)
{
	static uint8_t b[1 << 16];
	msg_fill(b, len, seq);
	int rc = shmring_send(p, b, len);
	cr_assert_eq(rc, 0, "send of seq %llu (%zu bytes): %s", ull(seq), len, shmring_strerror(rc));
}

/* d/len is exactly message seq of want bytes. */
static int is_msg(const void *d, size_t len, uint64_t seq, size_t want)
{
	static uint8_t e[1 << 16];
	if (len != want)
		return 0;
	msg_fill(e, len, seq);
	return len == 0 || memcmp(d, e, len) == 0;
}

static const size_t odd_lens[] = { 0, 1, 7, 8, 9, 15, 16, 17, 0, 0, 31, 33, 100, 3, 0, 64 };
#define NODD (sizeof(odd_lens) / sizeof(odd_lens[0]))

Test(batch, recv_batch_layout_in_buf)
{
	struct shmring *r = new_ring(8192, 4);
	struct shmring_consumer *c = open_cons(r, 0);
	struct shmring_producer *p = open_prod(r);
	/* The buffer itself aligned, then not: offsets are from buf. */
	for (size_t mis = 0; mis < 8; mis += 3) {
		for (unsigned i = 0; i < NODD; i++)
			send_msg(p, i, odd_lens[i]);
		uint8_t *buf = batch_buf + mis;
		struct shmring_msg msgs[NODD];
		int n = shmring_recv_batch(c, buf, 4096, msgs, NODD);
		cr_assert_eq(n, (int)NODD, "recv_batch of %u small messages: %d (%s)",
			     (unsigned)NODD, n, shmring_strerror(n));
		check_layout("recv_batch", buf, 4096, msgs, n);
		for (int i = 0; i < n; i++) {
			size_t off = (size_t)((const uint8_t *)msgs[i].data - buf);
			cr_assert_eq(off % 8, 0, "message %d (%zu bytes) at offset %zu from buf", i,
				     msgs[i].len, off);
			cr_assert(is_msg(msgs[i].data, msgs[i].len, (uint64_t)i, odd_lens[i]),
				  "message %d: %zu bytes, wrong contents", i, msgs[i].len);
		}
		int rc = shmring_recv_batch(c, buf, 4096, msgs, NODD);
		cr_assert_eq(rc, -EAGAIN, "recv_batch on an empty ring: %d (%s)", rc,
			     shmring_strerror(rc));
	}

	/* A buffer exactly as long as two aligned messages takes both;
	 * one byte less takes one, and the second stays. */
	send_msg(p, 100, 12);
	send_msg(p, 101, 20);
	struct shmring_msg msgs[4];
	int n = shmring_recv_batch(c, batch_buf, 16 + 19, msgs, 4);
	cr_assert_eq(n, 1, "recv_batch into 35 bytes of 12 + 20-byte messages: %d", n);
	cr_assert(is_msg(msgs[0].data, msgs[0].len, 100, 12));
	n = shmring_recv_batch(c, batch_buf, 20, msgs, 4);
	cr_assert_eq(n, 1);
	cr_assert(is_msg(msgs[0].data, msgs[0].len, 101, 20));
	send_msg(p, 102, 12);
	send_msg(p, 103, 20);
	n = shmring_recv_batch(c, batch_buf, 16 + 20, msgs, 4);
	cr_assert_eq(n, 2, "recv_batch into 36 bytes of 12 + 20-byte messages: %d", n);
	cr_assert_eq((const uint8_t *)msgs[1].data - batch_buf, 16);
	cr_assert(is_msg(msgs[1].data, msgs[1].len, 103, 20));

	/* -EMSGSIZE: the size needed, nothing consumed; buflen 0 takes an
	 * empty message. */
	send_msg(p, 200, 40);
	msgs[0].len = 0;
	n = shmring_recv_batch(c, batch_buf, 39, msgs, 4);
	cr_assert_eq(n, -EMSGSIZE, "recv_batch of 40 bytes into 39: %d (%s)", n,
		     shmring_strerror(n));
	cr_assert_eq(msgs[0].len, 40);
	n = shmring_recv_batch(c, NULL, 0, msgs, 4);
	cr_assert_eq(n, -EMSGSIZE);
	cr_assert_eq(msgs[0].len, 40);
	n = shmring_recv_batch(c, batch_buf, 40, msgs, 4);
	cr_assert_eq(n, 1);
	cr_assert(is_msg(msgs[0].data, msgs[0].len, 200, 40));
	send_msg(p, 201, 0);
	n = shmring_recv_batch(c, batch_buf, 0, msgs, 4);
	cr_assert_eq(n, 1, "recv_batch of an empty message into 0 bytes: %d (%s)", n,
		     shmring_strerror(n));
	cr_assert_eq(msgs[0].len, 0);

	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_close(r), 0);
}

/* The header promises every message an 8-byte aligned offset inside buf,
 * also an empty one that comes after a message whose padding reaches past
 * the end of the buffer. */
Test(batch, recv_batch_zero_length_offset_aligned)
{
	struct shmring *r = new_ring(8192, 4);
	struct shmring_consumer *c = open_cons(r, 0);
	struct shmring_producer *p = open_prod(r);
	send_msg(p, 0, 10);
	send_msg(p, 1, 0);
	struct shmring_msg msgs[2];
	int n = shmring_recv_batch(c, batch_buf, 13, msgs, 2);
	cr_assert_geq(n, 1, "recv_batch: %d (%s)", n, shmring_strerror(n));
	for (int i = 0; i < n; i++) {
		size_t off = (size_t)((const uint8_t *)msgs[i].data - batch_buf);
		cr_assert_eq(off % 8, 0,
			     "message %d of %d (%zu bytes) placed at offset %zu of a 13-byte "
			     "buffer: not 8-byte aligned",
			     i, n, msgs[i].len, off);
	}
	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_close(r), 0);
}

Test(batch, einval_and_eagain)
{
	struct shmring *r = new_ring(8192, 4);
	struct shmring_consumer *c = open_cons(r, 0);
	struct shmring_producer *p = open_prod(r);
	struct shmring_msg msgs[4];
	struct timespec dl;
	shmring_deadline(&dl, 10 * MS);

	cr_assert_eq(shmring_recv_batch(c, batch_buf, 4096, msgs, 4), -EAGAIN);
	cr_assert_eq(shmring_peek_batch(c, msgs, 4), -EAGAIN);

	send_msg(p, 0, 24);
	/* Bad arguments consume nothing, even with a message waiting. */
	cr_assert_eq(shmring_recv_batch(c, batch_buf, 4096, msgs, 0), -EINVAL);
	cr_assert_eq(shmring_recv_batch(c, batch_buf, 4096, NULL, 4), -EINVAL);
	cr_assert_eq(shmring_recv_batch(NULL, batch_buf, 4096, msgs, 4), -EINVAL);
	cr_assert_eq(shmring_recv_batch(c, NULL, 4096, msgs, 4), -EINVAL);
	cr_assert_eq(shmring_recv_batch_wait(c, batch_buf, 4096, msgs, 0, &dl), -EINVAL);
	cr_assert_eq(shmring_recv_batch_wait(c, batch_buf, 4096, NULL, 4, &dl), -EINVAL);
	cr_assert_eq(shmring_recv_batch_wait(NULL, batch_buf, 4096, msgs, 4, &dl), -EINVAL);
	cr_assert_eq(shmring_peek_batch(c, msgs, 0), -EINVAL);
	cr_assert_eq(shmring_peek_batch(c, NULL, 4), -EINVAL);
	cr_assert_eq(shmring_peek_batch(NULL, msgs, 4), -EINVAL);
	cr_assert_eq(shmring_peek_batch_wait(c, msgs, 0, &dl), -EINVAL);
	cr_assert_eq(shmring_peek_batch_wait(c, NULL, 4, &dl), -EINVAL);
	cr_assert_eq(shmring_peek_batch_wait(NULL, msgs, 4, &dl), -EINVAL);
	struct timespec bad = dl;
	bad.tv_nsec = 1000000000L;
	cr_assert_eq(shmring_recv_batch_wait(c, batch_buf, 4096, msgs, 4, &bad), -EINVAL);
	cr_assert_eq(shmring_peek_batch_wait(c, msgs, 4, &bad), -EINVAL);
	bad.tv_nsec = -1;
	cr_assert_eq(shmring_recv_batch_wait(c, batch_buf, 4096, msgs, 4, &bad), -EINVAL);
	cr_assert_eq(shmring_peek_batch_wait(c, msgs, 4, &bad), -EINVAL);

	int n = shmring_peek_batch(c, msgs, 4);
	cr_assert_eq(n, 1, "peek_batch after the bad calls: %d (%s)", n, shmring_strerror(n));
	cr_assert(is_msg(msgs[0].data, msgs[0].len, 0, 24));
	cr_assert_eq(shmring_release(c), 1);
	cr_assert_eq(shmring_peek_batch(c, msgs, 4), -EAGAIN);
	cr_assert_eq(shmring_recv_batch(c, batch_buf, 4096, msgs, 4), -EAGAIN);
	cr_assert_eq(shmring_release(c), 0);

	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_close(r), 0);
}

/* After the producer closes: what remains, then -EPIPE, again and again,
 * from every batch call (the _wait forms without waiting). */
Test(batch, remaining_then_epipe, .timeout = 30)
{
	struct shmring *r = new_ring(8192, 4);
	struct shmring_consumer *a = open_cons(r, 0), *b = open_cons(r, 0);
	struct shmring_consumer *aw = open_cons(r, 0), *bw = open_cons(r, 0);
	struct shmring_producer *p = open_prod(r);
	for (unsigned i = 0; i < 10; i++)
		send_msg(p, i, 8 * i + 3);
	cr_assert_eq(shmring_producer_close(p), 0);

	struct shmring_msg msgs[4];
	const int want[] = { 4, 4, 2 };
	uint64_t seq = 0;
	for (int k = 0; k < 3; k++) {
		int n = shmring_recv_batch(a, batch_buf, sizeof(batch_buf), msgs, 4);
		cr_assert_eq(n, want[k], "recv_batch %d after close: %d (%s)", k, n,
			     shmring_strerror(n));
		for (int i = 0; i < n; i++)
			cr_assert(is_msg(msgs[i].data, msgs[i].len, seq + (uint64_t)i,
					 8 * (seq + (uint64_t)i) + 3));
		n = shmring_recv_batch_wait(aw, batch_buf, sizeof(batch_buf), msgs, 4, NULL);
		cr_assert_eq(n, want[k], "recv_batch_wait %d after close: %d (%s)", k, n,
			     shmring_strerror(n));
		for (int i = 0; i < n; i++)
			cr_assert(is_msg(msgs[i].data, msgs[i].len, seq + (uint64_t)i,
					 8 * (seq + (uint64_t)i) + 3));
		n = shmring_peek_batch(b, msgs, 4);
		cr_assert_eq(n, want[k], "peek_batch %d after close: %d (%s)", k, n,
			     shmring_strerror(n));
		for (int i = 0; i < n; i++)
			cr_assert(is_msg(msgs[i].data, msgs[i].len, seq + (uint64_t)i,
					 8 * (seq + (uint64_t)i) + 3));
		cr_assert_eq(shmring_release(b), n);
		n = shmring_peek_batch_wait(bw, msgs, 4, NULL);
		cr_assert_eq(n, want[k], "peek_batch_wait %d after close: %d (%s)", k, n,
			     shmring_strerror(n));
		for (int i = 0; i < n; i++)
			cr_assert(is_msg(msgs[i].data, msgs[i].len, seq + (uint64_t)i,
					 8 * (seq + (uint64_t)i) + 3));
		cr_assert_eq(shmring_release(bw), n);
		seq += (uint64_t)n;
	}
	for (int k = 0; k < 2; k++) {
		cr_assert_eq(shmring_recv_batch(a, batch_buf, sizeof(batch_buf), msgs, 4), -EPIPE);
		cr_assert_eq(shmring_recv_batch_wait(aw, batch_buf, sizeof(batch_buf), msgs, 4, NULL),
			     -EPIPE);
		cr_assert_eq(shmring_peek_batch(b, msgs, 4), -EPIPE);
		cr_assert_eq(shmring_peek_batch_wait(bw, msgs, 4, NULL), -EPIPE);
	}
	cr_assert_eq(shmring_consumer_close(a), 0);
	cr_assert_eq(shmring_consumer_close(b), 0);
	cr_assert_eq(shmring_consumer_close(aw), 0);
	cr_assert_eq(shmring_consumer_close(bw), 0);
	cr_assert_eq(shmring_close(r), 0);
}

static uint64_t ts_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000ull + (uint64_t)ts->tv_nsec;
}

static void assert_timed_out(int rc, const struct timespec *dl, const char *what)
{
	uint64_t now = test_now_ns(), d = ts_ns(dl);
	cr_assert_eq(rc, -ETIMEDOUT, "%s: expected -ETIMEDOUT, got %d (%s)", what, rc,
		     shmring_strerror(rc));
	cr_assert_geq(now, d, "%s returned %llu ns before its deadline", what, ull(d - now));
	cr_assert_leq(now, d + LATE_NS, "%s returned %llu ms after its deadline", what,
		      ull((now - d) / MS));
}

static void deadlines(uint64_t spin_ns, int set_spin)
{
	struct shmring *r = new_ring(8192, 4);
	if (set_spin)
		cr_assert_eq(shmring_set_spin(r, spin_ns), 0);
	struct shmring_consumer *c = open_cons(r, 0);
	struct shmring_producer *p = open_prod(r); /* attached: not -EPIPE */
	struct shmring_msg msgs[8];
	struct timespec dl;

	shmring_deadline(&dl, 50 * MS);
	int rc = shmring_peek_batch_wait(c, msgs, 8, &dl);
	assert_timed_out(rc, &dl, "peek_batch_wait");
	shmring_deadline(&dl, 50 * MS);
	rc = shmring_recv_batch_wait(c, batch_buf, sizeof(batch_buf), msgs, 8, &dl);
	assert_timed_out(rc, &dl, "recv_batch_wait");

	/* A deadline already past: -ETIMEDOUT at once. */
	shmring_deadline(&dl, 0);
	rc = shmring_recv_batch_wait(c, batch_buf, sizeof(batch_buf), msgs, 8, &dl);
	assert_timed_out(rc, &dl, "recv_batch_wait, deadline passed");
	rc = shmring_peek_batch_wait(c, msgs, 8, &dl);
	assert_timed_out(rc, &dl, "peek_batch_wait, deadline passed");

	/* With data there, the _wait forms return it at once. */
	send_msg(p, 0, 5);
	send_msg(p, 1, 50);
	shmring_deadline(&dl, 50 * MS);
	rc = shmring_peek_batch_wait(c, msgs, 8, &dl);
	cr_assert_eq(rc, 2, "peek_batch_wait with 2 waiting: %d (%s)", rc, shmring_strerror(rc));
	cr_assert_eq(shmring_release(c), 2);
	send_msg(p, 2, 5);
	rc = shmring_recv_batch_wait(c, batch_buf, sizeof(batch_buf), msgs, 8, &dl);
	cr_assert_eq(rc, 1, "recv_batch_wait with 1 waiting: %d (%s)", rc, shmring_strerror(rc));
	cr_assert(is_msg(msgs[0].data, msgs[0].len, 2, 5));

	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_close(r), 0);
}

Test(batch, wait_deadlines_default_spin, .timeout = 30)
{
	deadlines(0, 0);
}

Test(batch, wait_deadlines_no_spin, .timeout = 30)
{
	deadlines(0, 1);
}

Test(batch, wait_deadlines_long_spin, .timeout = 30)
{
	deadlines(200 * MS, 1); /* spins through the whole wait */
}

/* ---- (c) across processes ----------------------------------------------- */

struct prun {
	uint64_t n, seed;
	size_t max_len;
};

struct pfig {
	uint64_t got, calls, max_batch;
};

static int producer_main(struct shmring *r, const struct prun *run)
{
	struct shmring_producer *p;
	int rc = shmring_producer_open(r, &p);
	if (rc) {
		fprintf(stderr, "producer_open: %s\n", shmring_strerror(rc));
		return 1;
	}
	static uint8_t buf[1 << 16];
	for (uint64_t seq = 0; seq < run->n; seq++) {
		size_t len = msg_len(run->seed, seq, run->max_len);
		msg_fill(buf, len, seq);
		struct timespec dl = soon();
		rc = shmring_send_wait(p, buf, len, &dl);
		if (rc) {
			fprintf(stderr, "producer: send_wait of seq %llu (%zu bytes): %s\n", ull(seq),
				len, shmring_strerror(rc));
			return 1;
		}
	}
	return shmring_producer_close(p) ? 1 : 0;
}

static int check_child(const char *who, const void *d, size_t len, uint64_t seq,
		       const struct prun *run)
{
	int bad = seq >= run->n ? MSG_BAD_SEQ : msg_check(d, len, run->seed, seq, run->max_len);
	if (bad) {
		uint64_t carried = ~0ull;
		if (len >= 8)
			memcpy(&carried, d, 8);
		fprintf(stderr, "%s: expected seq %llu (len %zu), got len %zu carrying seq %llu: %s\n",
			who, ull(seq), seq < run->n ? msg_len(run->seed, seq, run->max_len) : 0, len,
			ull(carried), msg_strerror(bad));
	}
	return bad;
}

static int recv_batch_main(struct shmring_consumer *c, const struct prun *run, struct pfig *f)
{
	static const char who[] = "recv_batch_wait consumer";
	static _Alignas(8) uint8_t buf[64 * 1024 + 64 * 8];
	struct shmring_msg msgs[64];
	uint64_t seq = 0;
	for (;;) {
		struct timespec dl = soon();
		int n = shmring_recv_batch_wait(c, buf, sizeof(buf), msgs, 64, &dl);
		if (n == -EPIPE)
			break;
		if (n <= 0 || n > 64) {
			fprintf(stderr, "%s: at seq %llu: %d (%s)\n", who, ull(seq), n,
				shmring_strerror(n));
			return 1;
		}
		f->calls++;
		if ((uint64_t)n > f->max_batch)
			f->max_batch = (uint64_t)n;
		for (int i = 0; i < n; i++, seq++) {
			const uint8_t *d = msgs[i].data;
			if (d < buf || d > buf + sizeof(buf) || (size_t)(d - buf) % 8 ||
			    msgs[i].len > (size_t)(buf + sizeof(buf) - d)) {
				fprintf(stderr, "%s: message %d of %d outside buf or misaligned\n", who,
					i, n);
				return 1;
			}
			if (check_child(who, d, msgs[i].len, seq, run))
				return 1;
		}
	}
	f->got = seq;
	return 0;
}

static int peek_batch_main(struct shmring_consumer *c, const struct prun *run, struct pfig *f)
{
	static const char who[] = "peek_batch_wait consumer";
	struct shmring_msg msgs[64];
	uint64_t seq = 0, s = (run->seed * 3) | 1;
	for (;;) {
		unsigned max = 1 + (unsigned)(test_rnd(&s) % 64);
		struct timespec dl = soon();
		int n = shmring_peek_batch_wait(c, msgs, max, &dl);
		if (n == -EPIPE)
			break;
		if (n <= 0 || (unsigned)n > max) {
			fprintf(stderr, "%s: at seq %llu (max %u): %d (%s)\n", who, ull(seq), max, n,
				shmring_strerror(n));
			return 1;
		}
		f->calls++;
		if ((uint64_t)n > f->max_batch)
			f->max_batch = (uint64_t)n;
		for (int i = 0; i < n; i++, seq++)
			if (check_child(who, msgs[i].data, msgs[i].len, seq, run))
				return 1;
		int rc = shmring_release(c);
		if (rc != n) {
			fprintf(stderr, "%s: release of %d: %d (%s)\n", who, n, rc, shmring_strerror(rc));
			return 1;
		}
	}
	f->got = seq;
	return 0;
}

Test(batch, across_processes_no_loss_no_dup, .timeout = 300)
{
	struct prun run = { 0 };
	run.n = test_env("SHMRING_TEST_BATCH_MESSAGES", 1000000);
	run.seed = seed_of_run();
	struct shmring *r = new_ring(64 << 10, 8);
	struct shmring_info info;
	shmring_info(r, &info);
	run.max_len = info.max_message < 1024 ? info.max_message : 1024;
	struct pfig *f = mmap(NULL, 2 * sizeof(struct pfig), PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(f, MAP_FAILED);
	memset(f, 0, 2 * sizeof(*f));

	struct shmring_consumer *c[2] = { open_cons(r, SHMRING_START_OLDEST),
					  open_cons(r, SHMRING_START_OLDEST) };
	uint64_t t0 = test_now_ns();
	pid_t pids[3];
	for (int i = 0; i < 3; i++) {
		fflush(stdout);
		fflush(stderr);
		pids[i] = fork();
		cr_assert_neq(pids[i], -1, "fork: %s", strerror(errno));
		if (pids[i] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			int st = i == 0 ? recv_batch_main(c[0], &run, &f[0])
				 : i == 1 ? peek_batch_main(c[1], &run, &f[1])
					  : producer_main(r, &run);
			/* A consumer that failed lets the producer go on. */
			if (i < 2)
				shmring_consumer_close(c[i]);
			_exit(st);
		}
	}
	int st[3];
	for (int i = 0; i < 3; i++)
		st[i] = test_wait(pids[i]);
	double secs = (double)(test_now_ns() - t0) / 1e9;
	printf("across processes: %llu messages in %.2f s (%.0f msg/s); recv_batch_wait got %llu "
	       "in %llu calls (max %llu), peek_batch_wait got %llu in %llu calls (max %llu) "
	       "(seed %llu)\n",
	       ull(run.n), secs, (double)run.n / secs, ull(f[0].got), ull(f[0].calls),
	       ull(f[0].max_batch), ull(f[1].got), ull(f[1].calls), ull(f[1].max_batch),
	       ull(run.seed));
	fflush(stdout);
	cr_assert_eq(st[2], 0, "producer exited with status %d (seed %llu)", st[2], ull(run.seed));
	cr_assert_eq(st[0], 0, "recv_batch_wait consumer exited with status %d (seed %llu)", st[0],
		     ull(run.seed));
	cr_assert_eq(st[1], 0, "peek_batch_wait consumer exited with status %d (seed %llu)", st[1],
		     ull(run.seed));
	cr_assert_eq(f[0].got, run.n);
	cr_assert_eq(f[1].got, run.n);
	cr_assert_leq(f[0].calls, run.n);
	shmring_info(r, &info);
	cr_assert_eq(info.closed, 1);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(shmring_consumer_close(c[i]), 0);
	cr_assert_eq(shmring_close(r), 0);
	munmap(f, 2 * sizeof(*f));
}

/* ---- (c) shmring_reserve_batch, shmring_reserve_array ------------------- */

/* The two batch reservations: data[] filled by the call (BATCH), or only
 * the first payload returned, the others at a fixed stride (ARRAY). */
enum form { BATCH, ARRAY };

/* Calls shmring_reserve_batch[_wait]() or shmring_reserve_array[_wait]()
 * (wait: with deadline dl) and checks what it must always do: k in [1, n]
 * or an error; data[0..k-1] 8-aligned, one record apart in ring order;
 * data[k..n-1] untouched.  ARRAY sets data[0] only (checked), and this
 * then fills data[1..k-1] from the documented stride, so that the caller's
 * messages and the consumer's checks show that the stride is right. */
static int reserve_form(enum form form, int wait, struct shmring_producer *p, size_t len,
			unsigned n, void **d, uint64_t cap, const struct timespec *dl)
{
	void *const poison = (void *)(uintptr_t)0x5a5a5a5a5a5a5a58ull;
	for (unsigned i = 0; i < n; i++)
		d[i] = poison;
	int k;
	if (form == ARRAY)
		k = wait ? shmring_reserve_array_wait(p, len, n, &d[0], dl) :
			   shmring_reserve_array(p, len, n, &d[0]);
	else
		k = wait ? shmring_reserve_batch_wait(p, len, n, d, dl) :
			   shmring_reserve_batch(p, len, n, d);
	const char *name = form == ARRAY ? "reserve_array" : "reserve_batch";
	if (k < 0) {
		for (unsigned i = 0; i < n; i++)
			cr_assert_eq(d[i], poison, "failed %s (%s) wrote data[%u]", name,
				     shmring_strerror(k), i);
		return k;
	}
	cr_assert(k >= 1 && (unsigned)k <= n, "%s of %u gave %d", name, n, k);
	size_t step = SHMRING_RECORD_SIZE(len);
	if (form == ARRAY) {
		cr_assert_neq(d[0], poison, "reserve_array gave %d but no first payload", k);
		for (unsigned i = 1; i < n; i++)
			cr_assert_eq(d[i], poison, "reserve_array wrote beyond *first (data[%u])", i);
		for (int i = 1; i < k; i++)
			d[i] = (uint8_t *)d[0] + (size_t)i * step;
	}
	for (int i = 0; i < k; i++) {
		cr_assert_eq((uintptr_t)d[i] % 8, 0, "data[%d] misaligned", i);
		if (i) {
			/* One record after the previous one, modulo the ring (the
			 * data area is mapped twice, so a pointer may be past its
			 * end: compare positions modulo the capacity). */
			uintptr_t a = (uintptr_t)d[i - 1], b = (uintptr_t)d[i];
			cr_assert_eq((b - a - step) % cap, 0, "data[%d] is not one record after data[%d]",
				     i, i - 1);
		}
	}
	for (unsigned i = (unsigned)k; i < n; i++)
		cr_assert_eq(d[i], poison, "%s returned %d but wrote data[%u]", name, k, i);
	return k;
}

static int reserve_batch_checked(enum form form, struct shmring_producer *p, size_t len,
				 unsigned n, void **d, uint64_t cap)
{
	return reserve_form(form, 0, p, len, n, d, cap, NULL);
}

/* Reads exactly n messages, seq first.. , each len bytes. */
static void expect_msgs(struct shmring_consumer *c, uint64_t first, uint64_t n, size_t len)
{
	static _Alignas(8) uint8_t b[1 << 16];
	for (uint64_t i = 0; i < n; i++) {
		size_t got = 0;
		int rc = shmring_recv(c, b, sizeof(b), &got);
		cr_assert_eq(rc, 0, "recv of seq %llu: %s", ull(first + i), shmring_strerror(rc));
		cr_assert(is_msg(b, got, first + i, len), "message %llu wrong (len %zu, want %zu)",
			  ull(first + i), got, len);
	}
	size_t got;
	cr_assert_eq(shmring_recv(c, b, sizeof(b), &got), -EAGAIN, "more than %llu messages",
		     ull(n));
}

static void reserve_block(enum form form)
{
	const uint64_t cap = 8192;
	const size_t len = 24; /* 32-byte records: 256 fill the ring */
	const unsigned fill = (unsigned)(cap / SHMRING_RECORD_SIZE(len));
	struct shmring *r = new_ring(cap, 4);
	struct shmring_consumer *c = open_cons(r, 0);
	struct shmring_producer *p = open_prod(r);
	static void *d[1024];
	struct timespec dl;
	uint64_t seq = 0;

	/* Bad arguments reserve nothing. */
	cr_assert_eq(reserve_batch_checked(form, NULL, len, 4, d, cap), -EINVAL);
	cr_assert_eq(form == ARRAY ? shmring_reserve_array(p, len, 4, NULL) :
				     shmring_reserve_batch(p, len, 4, NULL), -EINVAL);
	cr_assert_eq(form == ARRAY ? shmring_reserve_array_wait(p, len, 4, NULL, NULL) :
				     shmring_reserve_batch_wait(p, len, 4, NULL, NULL), -EINVAL);
	cr_assert_eq(reserve_batch_checked(form, p, len, 0, d, cap), -EINVAL);
	cr_assert_eq(reserve_form(form, 1, p, len, 0, d, cap, NULL), -EINVAL);
	cr_assert_eq(reserve_form(form, 1, NULL, len, 4, d, cap, NULL), -EINVAL);
	shmring_deadline(&dl, 10 * MS);
	struct timespec bad = dl;
	bad.tv_nsec = 1000000000L;
	cr_assert_eq(reserve_form(form, 1, p, len, 4, d, cap, &bad), -EINVAL);
	struct shmring_info info;
	shmring_info(r, &info);
	cr_assert_eq(reserve_batch_checked(form, p, info.max_message + 1u, 4, d, cap), -EMSGSIZE);
	cr_assert_eq(shmring_commit(p), 0, "a refused call reserved something");

	/* An empty ring: n = 5 gives 5. */
	cr_assert_eq(reserve_batch_checked(form, p, len, 5, d, cap), 5);
	for (int i = 0; i < 5; i++)
		msg_fill(d[i], len, seq++);
	cr_assert_eq(shmring_commit(p), 5);
	expect_msgs(c, 0, 5, len);

	/* More than fits: exactly a ringful, then -EAGAIN (the consumer has
	 * read nothing of it). */
	int k = reserve_batch_checked(form, p, len, 1000, d, cap);
	cr_assert_eq(k, (int)fill, "reserve_batch of 1000 in an empty %llu-byte ring gave %d, "
		     "want %u", ull(cap), k, fill);
	for (int i = 0; i < k; i++)
		msg_fill(d[i], len, seq + (uint64_t)i);
	/* All of the ring is uncommitted: waiting could not help. */
	cr_assert_eq(reserve_batch_checked(form, p, len, 1, d, cap), -ENOBUFS);
	cr_assert_eq(shmring_commit(p), k);
	cr_assert_eq(reserve_batch_checked(form, p, len, 8, d, cap), -EAGAIN);
	shmring_deadline(&dl, 10 * MS);
	cr_assert_eq(reserve_form(form, 1, p, len, 8, d, cap, &dl), -ETIMEDOUT);

	/* The consumer frees 10 records: a batch of 64 gets exactly 10. */
	static _Alignas(8) uint8_t b[4096];
	for (int i = 0; i < 10; i++) {
		size_t got;
		cr_assert_eq(shmring_recv(c, b, sizeof(b), &got), 0);
		cr_assert(is_msg(b, got, seq + (uint64_t)i, len));
	}
	uint64_t read_to = seq + 10;
	seq += (uint64_t)k;
	k = reserve_batch_checked(form, p, len, 64, d, cap);
	cr_assert_eq(k, 10, "with 10 records free, reserve_batch of 64 gave %d", k);
	for (int i = 0; i < k; i++)
		msg_fill(d[i], len, seq++);
	cr_assert_eq(shmring_commit(p), 10);
	expect_msgs(c, read_to, seq - read_to, len);

	/* Mixed with single reservations: one commit publishes them all in
	 * order; the ring wraps here. */
	void *one;
	cr_assert_eq(shmring_reserve(p, len, &one), 0);
	msg_fill(one, len, seq);
	dl = soon();
	k = reserve_form(form, 1, p, len, 7, d, cap, &dl);
	cr_assert_eq(k, 7, "the waiting form of 7: %d", k);
	for (int i = 0; i < k; i++)
		msg_fill(d[i], len, seq + 1 + (uint64_t)i);
	cr_assert_eq(shmring_abort(p), 8);
	cr_assert_eq(shmring_reserve(p, len, &one), 0);
	msg_fill(one, len, seq);
	k = reserve_batch_checked(form, p, len, 7, d, cap);
	cr_assert_eq(k, 7);
	for (int i = 0; i < k; i++)
		msg_fill(d[i], len, seq + 1 + (uint64_t)i);
	cr_assert_eq(shmring_commit(p), 8);
	expect_msgs(c, seq, 8, len);
	seq += 8;

	/* Zero-length payloads. */
	k = reserve_batch_checked(form, p, 0, 3, d, cap);
	cr_assert_eq(k, 3);
	cr_assert_eq(shmring_commit(p), 3);
	for (int i = 0; i < 3; i++) {
		size_t got = 99;
		cr_assert_eq(shmring_recv(c, b, sizeof(b), &got), 0);
		cr_assert_eq(got, 0);
	}

	cr_assert_eq(shmring_producer_shutdown(p), 0);
	cr_assert_eq(reserve_batch_checked(form, p, len, 4, d, cap), -EPIPE);
	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_close(r), 0);
}

Test(batch, reserve_batch_block)
{
	reserve_block(BATCH);
}

Test(batch, reserve_array_block)
{
	reserve_block(ARRAY);
}

/* No consumer holds the ring back: a batch stops at the capacity, and the
 * next call, with all of it uncommitted, is -ENOBUFS. */
static void reserve_capacity(enum form form)
{
	const uint64_t cap = 8192;
	struct shmring *r = new_ring(cap, 4);
	struct shmring_producer *p = open_prod(r);
	static void *d[2048];
	int k = reserve_batch_checked(form, p, 56, 2048, d, cap);
	cr_assert_eq(k, (int)(cap / 64), "reserve_batch with no consumer gave %d", k);
	cr_assert_eq(reserve_batch_checked(form, p, 56, 1, d, cap), -ENOBUFS);
	cr_assert_eq(shmring_commit(p), k);
	cr_assert_eq(reserve_batch_checked(form, p, 56, 2048, d, cap), k);
	cr_assert_eq(shmring_abort(p), k);
	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_close(r), 0);
}

Test(batch, reserve_batch_capacity_enobufs)
{
	reserve_capacity(BATCH);
}

Test(batch, reserve_array_capacity_enobufs)
{
	reserve_capacity(ARRAY);
}

/* OVERWRITE: batches never wait; a consumer that fell behind learns what it
 * lost, and what it reads is intact and in order. */
static void reserve_overwrite(enum form form)
{
	const uint64_t cap = 8192;
	const size_t len = 40; /* 48-byte records */
	struct shmring_opts o = test_opts(cap, 4);
	o.policy = SHMRING_POLICY_OVERWRITE;
	struct shmring *r = NULL;
	cr_assert_eq(shmring_create_anon("test_batch_ow", &o, &r), 0);
	struct shmring_consumer *c = open_cons(r, SHMRING_START_OLDEST);
	struct shmring_producer *p = open_prod(r);
	static void *d[1024];
	uint64_t seq = 0, s = seed_of_run() | 1;
	const unsigned most = (unsigned)(cap / SHMRING_RECORD_SIZE(len));

	int k = reserve_batch_checked(form, p, len, 1000, d, cap);
	cr_assert_eq(k, (int)most, "one batch may hold a ringful (%u), got %d", most, k);
	for (int i = 0; i < k; i++)
		msg_fill(d[i], len, seq++);
	cr_assert_eq(reserve_batch_checked(form, p, len, 1, d, cap), -ENOBUFS);
	cr_assert_eq(shmring_commit(p), k);
	/* 8192 is not a multiple of 48: each lap ends in a 32-byte pad, and
	 * a batch stops there (its records lie back to back). */
	const uint64_t sz = SHMRING_RECORD_SIZE(len);
	uint64_t pos = (uint64_t)most * sz;
	unsigned cut = 0;
	for (int round = 0; round < 50; round++) {
		unsigned n = 1 + (unsigned)(test_rnd(&s) % 100);
		k = reserve_batch_checked(form, p, len, n, d, cap);
		pos += test_pad_before(pos, cap, sz) + (uint64_t)k * sz;
		if (k < (int)n) {
			cr_assert_neq(test_pad_before(pos, cap, sz), 0,
				      "overwrite: batch of %u gave %d, not at a lap's end", n, k);
			cut++;
		}
		for (int i = 0; i < k; i++)
			msg_fill(d[i], len, seq++);
		cr_assert_eq(shmring_commit(p), k);
		struct shmring_info in;
		cr_assert_eq(shmring_info(r, &in), 0);
		cr_assert_eq(in.tail, pos, "tail %llu, %llu expected", ull(in.tail), ull(pos));
	}
	cr_assert_gt(cut, 0u, "no batch met a lap's end");
	static _Alignas(8) uint8_t b[4096];
	size_t got;
	int rc = shmring_recv(c, b, sizeof(b), &got);
	cr_assert_eq(rc, -EOVERFLOW, "a consumer lapped many times: %s", shmring_strerror(rc));
	uint64_t lost = 0;
	cr_assert_eq(shmring_lost(c, &lost), 0);
	uint64_t next = lost, nread = 0;
	while ((rc = shmring_recv(c, b, sizeof(b), &got)) == 0) {
		cr_assert(is_msg(b, got, next, len), "after losing %llu, message %llu is wrong",
			  ull(lost), ull(next));
		next++;
		nread++;
	}
	cr_assert_eq(rc, -EAGAIN);
	cr_assert_eq(next, seq, "read %llu + lost %llu != sent %llu", ull(nread), ull(lost),
		     ull(seq));
	cr_assert_leq(nread, most);
	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_close(r), 0);
}

Test(batch, reserve_batch_overwrite)
{
	reserve_overwrite(BATCH);
}

Test(batch, reserve_array_overwrite)
{
	reserve_overwrite(ARRAY);
}

/* Across processes: a producer publishes with reserve_batch_wait and
 * reserve_array_wait, at random (batches of
 * random size, one length per run of 64 sequence numbers) while a consumer
 * checks every message; a small ring makes many batches come back short. */
#define RB_RUN 64

static size_t rb_len(uint64_t seed, uint64_t seq)
{
	return msg_len(seed, seq / RB_RUN, 512);
}

struct rb_fig {
	uint64_t got, batches, short_batches, array_batches, bad;
};

static int rb_producer(struct shmring *r, uint64_t seed, uint64_t n, struct rb_fig *f)
{
	struct shmring_producer *p;
	if (shmring_producer_open(r, &p))
		return 1;
	void *d[RB_RUN];
	uint64_t s = seed * 5 | 1;
	for (uint64_t seq = 0; seq < n;) {
		/* Up to the end of this run of one length. */
		uint64_t left = RB_RUN - seq % RB_RUN;
		if (left > n - seq)
			left = n - seq;
		unsigned want = 1 + (unsigned)(test_rnd(&s) % left);
		size_t len = rb_len(seed, seq);
		struct timespec dl = soon();
		/* Either form, at random: the array form's payloads are at
		 * the documented stride from the first. */
		int array = (int)(test_rnd(&s) & 1);
		int k = array ? shmring_reserve_array_wait(p, len, want, &d[0], &dl) :
				shmring_reserve_batch_wait(p, len, want, d, &dl);
		if (k < 1 || (unsigned)k > want) {
			fprintf(stderr, "producer: reserve_%s_wait of %u at %llu: %d (%s)\n",
				array ? "array" : "batch", want, ull(seq), k, shmring_strerror(k));
			return 1;
		}
		for (int i = 1; array && i < k; i++)
			d[i] = (uint8_t *)d[0] + (size_t)i * SHMRING_RECORD_SIZE(len);
		f->batches++;
		f->array_batches += (uint64_t)array;
		f->short_batches += (unsigned)k < want;
		for (int i = 0; i < k; i++)
			msg_fill(d[i], len, seq++);
		if (shmring_commit(p) != k)
			return 1;
	}
	return shmring_producer_close(p) ? 1 : 0;
}

static int rb_consumer(struct shmring_consumer *c, uint64_t seed, struct rb_fig *f)
{
	static _Alignas(8) uint8_t buf[64 * 1024];
	static uint8_t e[1024];
	struct shmring_msg msgs[64];
	uint64_t seq = 0;
	for (;;) {
		struct timespec dl = soon();
		int n = shmring_recv_batch_wait(c, buf, sizeof(buf), msgs, 64, &dl);
		if (n == -EPIPE)
			break;
		if (n <= 0)
			return 1;
		for (int i = 0; i < n; i++, seq++) {
			size_t len = rb_len(seed, seq);
			msg_fill(e, len, seq);
			if (msgs[i].len != len || memcmp(msgs[i].data, e, len)) {
				fprintf(stderr, "consumer: message %llu wrong (len %zu, want %zu)\n",
					ull(seq), msgs[i].len, len);
				f->bad++;
				return 1;
			}
		}
	}
	f->got = seq;
	return 0;
}

Test(batch, reserve_batch_across_processes, .timeout = 300)
{
	uint64_t n = test_env("SHMRING_TEST_BATCH_MESSAGES", 1000000);
	uint64_t seed = seed_of_run();
	struct shmring *r = new_ring(16 << 10, 4);
	struct rb_fig *f = test_shared_zero(2 * sizeof(*f));
	struct shmring_consumer *c = open_cons(r, SHMRING_START_OLDEST);
	pid_t pids[2];
	for (int i = 0; i < 2; i++) {
		pids[i] = test_spawn();
		if (pids[i] == 0)
			_exit(i == 0 ? rb_producer(r, seed, n, &f[0]) : rb_consumer(c, seed, &f[1]));
	}
	int st[2];
	for (int i = 0; i < 2; i++)
		st[i] = test_wait(pids[i]);
	printf("reserve_batch/array across processes: %llu messages in %llu batches (%llu "
	       "arrays), %llu short (seed %llu)\n", ull(n), ull(f[0].batches),
	       ull(f[0].array_batches), ull(f[0].short_batches), ull(seed));
	cr_assert_eq(st[0], 0, "producer failed (seed %llu)", ull(seed));
	cr_assert_eq(st[1], 0, "consumer failed (seed %llu)", ull(seed));
	cr_assert_eq(f[1].got, n, "consumer got %llu of %llu", ull(f[1].got), ull(n));
	/* The ring holds about 30 batches: the producer must have met a full
	 * ring and taken what fit. */
	cr_assert_gt(f[0].short_batches, 0, "no batch came back short: the partial path was not run");
	cr_assert(f[0].array_batches > 0 && f[0].array_batches < f[0].batches,
		  "only one of the two forms was used (%llu arrays of %llu batches)",
		  ull(f[0].array_batches), ull(f[0].batches));
	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_close(r), 0);
}
