/* SPDX-License-Identifier: MIT */
/*
 * libshmring through its public API only.
 *   copying:   batch 1 shmring_send_wait() / shmring_recv_wait();
 *              batch B shmring_reserve_array_wait() and a copy from the
 *              source buffer B times, one shmring_commit() /
 *              shmring_recv_batch_wait()
 *   zero-copy: shmring_reserve_wait() (batch B: shmring_reserve_array_wait()),
 *              payload written in place, commit /
 *              shmring_peek_wait() or shmring_peek_batch_wait(), stamps read
 *              in place, shmring_release()
 * Ping-pong over two rings: shmring_send() and shmring_recv_wait(), which
 * spins with the ring's adaptive spin, or sleeps at once after
 * shmring_set_spin(ring, 0) (the sleeping round trip); mechanism
 * shmring-poll receives in the harness's loop around shmring_recv().  The
 * rings of a round trip are made with SHMRING_INLINE_SMALL, the flag for
 * request/response traffic (perf/RESULTS.md, change 28); SHMRING_PERF_FLAGS
 * (environment, a number) replaces it, 0 for rings without it.
 */
#include "perf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmring.h"

struct sr {
	struct shmring *r[2];
	int poll; /* shmring-poll: round trips poll shmring_recv() */
};

static void sr_depth(const struct params *p, char *buf, size_t len)
{
	if (p->kind != K_TPUT) {
		snprintf(buf, len, "%llu KiB ring", (unsigned long long)(p->ring_bytes >> 10));
		return;
	}
	snprintf(buf, len, "%llu KiB = %llu msgs", (unsigned long long)(p->ring_bytes >> 10),
		 (unsigned long long)(p->ring_bytes / SHMRING_RECORD_SIZE(p->size)));
}

static int sr_setup(struct bench *b, void **priv)
{
	struct sr *s = calloc(1, sizeof(*s));
	if (!s)
		return fail(b, "out of memory");
	struct shmring_opts o = {.size = sizeof(o), .capacity = b->p.ring_bytes,
				 .max_consumers = b->p.consumers + 4};
	int nr = b->p.kind == K_RTT ? 2 : 1;
	if (b->p.kind == K_RTT) {
		const char *f = getenv("SHMRING_PERF_FLAGS");
		o.flags = f ? (uint32_t)strtoul(f, NULL, 0) : SHMRING_INLINE_SMALL;
	}
	for (int i = 0; i < nr; i++) {
		int rc = shmring_create_anon("shmring-perf", &o, &s->r[i]);
		if (rc) {
			free(s);
			return fail(b, "shmring_create_anon: %s", shmring_strerror(rc));
		}
	}
	*priv = s;
	return 0;
}

static int sr_setup_poll(struct bench *b, void **priv)
{
	int rc = sr_setup(b, priv);
	if (!rc)
		((struct sr *)*priv)->poll = 1;
	return rc;
}

static void sr_teardown(struct bench *b, void *priv)
{
	struct sr *s = priv;
	for (int i = 0; i < 2; i++)
		if (s->r[i])
			shmring_close(s->r[i]);
	free(s);
}

#define CHECK(call)                                                              \
	do {                                                                     \
		int rc_ = (call);                                                \
		if (rc_ < 0)                                                     \
			return fail(b, "%s: %s", #call, shmring_strerror(rc_)); \
	} while (0)

static int tput_producer(struct bench *b, struct shmring *r)
{
	const struct params *p = &b->p;
	struct shmring_producer *pr;
	struct loopmark lm;
	void *src = source_buf(p->size), *ds[1];

	if (!src)
		return fail(b, "out of memory");
	CHECK(shmring_producer_open(r, &pr));
	if (wait_attached(b, p->consumers))
		return -1;
	loop_begin(b, &lm);
	tput_start(b);
	for (uint64_t seq = 0; seq < p->n;) {
		uint64_t k = p->n - seq < p->batch ? p->n - seq : p->batch;
		if (k == 1 && p->batch == 1 && !p->zc) {
			stamp(src, p->size, seq++);
			CHECK(shmring_send_wait(pr, src, p->size, NULL));
			loop_step(&lm, seq);
			continue;
		}
		if (p->batch == 1) {
			CHECK(shmring_reserve_wait(pr, p->size, &ds[0], NULL));
			memcpy(ds[0], src, p->size);
			stamp(ds[0], p->size, seq++);
			CHECK(shmring_commit(pr));
			b->commits++;
			loop_step(&lm, seq);
			continue;
		}
		for (uint64_t j = 0; j < k;) {
			uint64_t want = k - j < 64 ? k - j : 64;
			int got = shmring_reserve_array_wait(pr, p->size, (unsigned)want, &ds[0], NULL);
			if (got < 0)
				return fail(b, "shmring_reserve_array_wait: %s", shmring_strerror(got));
			char *d = ds[0];
			for (int i = 0; i < got; i++, d += SHMRING_RECORD_SIZE(p->size)) {
				memcpy(d, src, p->size);
				stamp(d, p->size, seq++);
			}
			j += (uint64_t)got;
		}
		CHECK(shmring_commit(pr));
		b->commits++;
		loop_step(&lm, seq);
	}
	loop_end(b, &lm, 0);
	CHECK(shmring_producer_close(pr));
	return 0;
}

/* Checks one received message; returns -1 (recorded) if it is wrong. */
static int check_msg(struct bench *b, const void *data, size_t len, uint64_t *next)
{
	uint64_t s = unstamp(data, len);
	if (len != b->p.size || s == UINT64_MAX)
		return fail(b, "consumer: torn or wrong-sized message (len %zu)", len);
	if (b->p.group ? s < *next : s != *next)
		return fail(b, "consumer: message %llu where %llu was due",
			    (unsigned long long)s, (unsigned long long)*next);
	*next = s + 1;
	return 0;
}

static int tput_consumer(struct bench *b, struct shmring *r, int role)
{
	const struct params *p = &b->p;
	struct shmring_consumer *c;
	struct shmring_msg msgs[64];
	struct loopmark lm;
	struct tputmark tm;
	unsigned max = p->batch < 64 ? p->batch : 64;
	size_t buflen = (size_t)max * ((p->size + 7) & ~(size_t)7) + 8;
	void *buf = malloc(buflen);
	uint64_t next = 0, got = 0;

	if (!buf)
		return fail(b, "out of memory");
	if (p->group)
		CHECK(shmring_group_open(r, "perf", SHMRING_START_OLDEST, &c));
	else
		CHECK(shmring_consumer_open(r, SHMRING_START_OLDEST, &c));
	/* Counting starts before the producer may: enabling the counter
	 * can take milliseconds, which must not fall in the timed loop. */
	loop_begin(b, &lm);
	tput_warm_init(b, &tm);
	attached(b);
	for (;;) {
		int n;
		if (p->zc) {
			if (max == 1) {
				n = shmring_peek_wait(c, &msgs[0].data, &msgs[0].len, NULL);
				n = n < 0 ? n : 1;
			} else {
				n = shmring_peek_batch_wait(c, msgs, max, NULL);
			}
		} else if (max == 1) {
			n = shmring_recv_wait(c, buf, buflen, &msgs[0].len, NULL);
			msgs[0].data = buf;
			n = n < 0 ? n : 1;
		} else {
			n = shmring_recv_batch_wait(c, buf, buflen, msgs, max, NULL);
		}
		if (n == -EPIPE)
			break;
		if (n < 0)
			return fail(b, "consumer: %s", shmring_strerror(n));
		for (int i = 0; i < n; i++)
			if (check_msg(b, msgs[i].data, msgs[i].len, &next))
				return -1;
		if (p->zc)
			CHECK(shmring_release(c));
		got += (uint64_t)n;
		loop_step(&lm, got);
		tput_step(b, &tm, got);
		if (!p->group && got >= p->n)
			break;
	}
	loop_end(b, &lm, role);
	tput_done(b, role, got);
	CHECK(shmring_consumer_close(c));
	free(buf);
	return 0;
}

/* Receives one 8..16-byte message: in shmring_recv_wait(), which spins
 * (then sleeps, if the spin is set to 0 or runs out), or (shmring-poll) in
 * the harness's loop around shmring_recv(), the way the floor polls. */
static int rtt_recv(struct bench *b, const struct sr *s, struct shmring_consumer *c, void *buf,
		    size_t *len)
{
	int rc;
	if (!s->poll || b->p.sleep || b->p.kind == K_WAKE)
		rc = shmring_recv_wait(c, buf, 64, len, NULL);
	else
		while ((rc = shmring_recv(c, buf, 64, len)) == -EAGAIN)
			poll_relax(&b->p);
	return rc < 0 ? fail(b, "recv: %s", shmring_strerror(rc)) : 0;
}

static int rtt_role(struct bench *b, struct sr *s, int role)
{
	const struct params *p = &b->p;
	struct shmring_producer *pr;
	struct shmring_consumer *c;
	uint64_t msg[8] = {0}, in[8];
	size_t len;
	struct loopmark lm;

	if (p->sleep) {
		shmring_set_spin(s->r[0], 0);
		shmring_set_spin(s->r[1], 0);
	}
	/* Role 0 sends on ring 0 and reads ring 1; role 1 the other way. */
	CHECK(shmring_consumer_open(s->r[!role], SHMRING_START_OLDEST, &c));
	CHECK(shmring_producer_open(s->r[role], &pr));
	attached(b);
	if (wait_attached(b, 2))
		return -1;
	uint64_t skip = warm_skip(p->n);
	loop_begin(b, &lm); /* its sleeps: voluntary context switches */
	if (role == 0) {
		tput_start(b);
		uint64_t t = ticks();
		for (uint64_t i = 0; i < p->n; i++) {
			msg[0] = i;
			CHECK(shmring_send(pr, msg, 8));
			if (rtt_recv(b, s, c, in, &len))
				return -1;
			if (len != 8 || in[0] != i)
				return fail(b, "pong %llu for ping %llu", (unsigned long long)in[0],
					    (unsigned long long)i);
			uint64_t t2 = ticks();
			if (i >= skip)
				sample_add(t2 - t);
			t = t2;
		}
		tput_done(b, 0, p->n);
	} else {
		for (uint64_t i = 0; i < p->n; i++) {
			if (rtt_recv(b, s, c, in, &len))
				return -1;
			CHECK(shmring_send(pr, in, len));
		}
	}
	loop_end(b, &lm, role);
	CHECK(shmring_producer_close(pr));
	CHECK(shmring_consumer_close(c));
	return 0;
}

/* One-way wake: role 1 sleeps in shmring_recv_wait() (spin 0); role 0 waits
 * until it has gone to sleep, stamps the time and commits a batch. */
static int wake_role(struct bench *b, struct sr *s, int role)
{
	const struct params *p = &b->p;
	shmring_set_spin(s->r[0], 0);
	if (role == 1) {
		struct shmring_consumer *c;
		uint64_t in[8];
		size_t len;
		CHECK(shmring_consumer_open(s->r[0], SHMRING_START_OLDEST, &c));
		attached(b);
		uint64_t skip = warm_skip(p->n);
		for (uint64_t i = 0; i < p->n; i++) {
			if (rtt_recv(b, s, c, in, &len))
				return -1;
			uint64_t t = ticks();
			if (i >= skip)
				sample_add(t - in[1]);
			for (unsigned j = 1; j < p->batch; j++)
				if (rtt_recv(b, s, c, in, &len))
					return -1;
			atomic_store(&b->seen, i + 1);
		}
		CHECK(shmring_consumer_close(c));
		return 0;
	}
	struct shmring_producer *pr;
	struct loopmark lm;
	void *d;
	CHECK(shmring_producer_open(s->r[0], &pr));
	if (wait_attached(b, 1))
		return -1;
	loop_begin(b, &lm);
	tput_start(b);
	for (uint64_t i = 0; i < p->n; i++) {
		while (atomic_load(&b->seen) < i)
			relax();
		pf_spin_ns(50000); /* let the consumer fall asleep */
		for (unsigned j = 0; j < p->batch; j++) {
			CHECK(shmring_reserve(pr, 16, &d));
			uint64_t v[2] = {i, ticks()};
			memcpy(d, v, 16);
		}
		CHECK(shmring_commit(pr));
		b->commits++;
	}
	loop_end(b, &lm, 0);
	tput_done(b, 0, p->n);
	while (atomic_load(&b->seen) < p->n)
		relax();
	CHECK(shmring_producer_close(pr));
	return 0;
}

static int sr_child(struct bench *b, void *priv, int role)
{
	struct sr *s = priv;
	switch (b->p.kind) {
	case K_TPUT:
		return role ? tput_consumer(b, s->r[0], role) : tput_producer(b, s->r[0]);
	case K_RTT:
		return rtt_role(b, s, role);
	case K_WAKE:
		return wake_role(b, s, role);
	default:
		return fail(b, "unsupported case");
	}
}

struct mech mech_shmring = {
	.name = "shmring",
	.caps = C_TPUT | C_ZC | C_BATCH | C_RTT_SPIN | C_RTT_SLEEP | C_WAKE | C_FANOUT | C_GROUP,
	.depth = sr_depth,
	.setup = sr_setup,
	.child = sr_child,
	.teardown = sr_teardown,
};

/* The polling round trip through the caller's loop around shmring_recv(),
 * beside shmring's, which spins inside shmring_recv_wait(). */
struct mech mech_shmring_poll = {
	.name = "shmring-poll",
	.caps = C_RTT_SPIN,
	.depth = sr_depth,
	.setup = sr_setup_poll,
	.child = sr_child,
	.teardown = sr_teardown,
};
