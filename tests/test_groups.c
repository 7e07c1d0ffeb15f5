/* SPDX-License-Identifier: MIT */
/* Description: consumer groups.  Members in separate processes share one
 * cursor; a shared table of per-message counters proves that the union of
 * what members received is what was sent, each message exactly once.  Also:
 * members joining and leaving during a run, a ring carrying broadcast
 * consumers and two groups at once, one wake-up per publication, and the
 * errors of shmring_group_open().
 *
 * Environment: SHMRING_TEST_GROUP_MESSAGES (default 10000000 for the
 * four-member run), SHMRING_TEST_MIXED_MESSAGES (default 1000000),
 * SHMRING_TEST_SEED. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "common.h"

/* Per-message delivery counters, shared by every process of a run. */
struct tally {
	uint64_t n;
	_Atomic uint8_t *count;  /* [group][n] */
};

struct run {
	uint64_t n, seed;
	size_t max_len;
	unsigned ngroups;
	_Atomic uint8_t *count;      /* ngroups * n */
	_Atomic uint64_t *got;       /* per process: messages received */
};

/* Group messages are at least 16 bytes, so each names its sequence number:
 * a member cannot know which messages the others took. */
static size_t glen(const struct run *run, uint64_t seq)
{
	return 16 + msg_len(run->seed, seq, run->max_len - 16);
}

static int gcheck(const void *d, size_t len, const struct run *run, uint64_t seq)
{
	static uint8_t tmp[1 << 13];
	if (len != glen(run, seq))
		return MSG_BAD_LEN;
	msg_fill(tmp, len, seq);
	if (memcmp(d, tmp, 8))
		return MSG_BAD_SEQ;
	return memcmp(d, tmp, len) ? MSG_BAD_SUM : MSG_OK;
}

static int producer_main(struct shmring *r, const struct run *run)
{
	struct shmring_producer *p;
	int rc = shmring_producer_open(r, &p);
	if (rc) {
		fprintf(stderr, "producer_open: %s\n", shmring_strerror(rc));
		return 1;
	}
	uint64_t s = run->seed | 1;
	static uint8_t buf[1 << 13];
	for (uint64_t seq = 0; seq < run->n;) {
		unsigned batch = 1 + (unsigned)(test_rnd(&s) % 16);
		int zero_copy = test_rnd(&s) & 1;
		for (unsigned b = 0; b < batch && seq < run->n; b++, seq++) {
			size_t len = glen(run, seq);
			if (zero_copy) {
				void *d;
				rc = shmring_reserve_wait(p, len, &d, NULL);
				if (rc == -ENOBUFS) {
					shmring_commit(p);
					rc = shmring_reserve_wait(p, len, &d, NULL);
				}
				if (rc == 0)
					msg_fill(d, len, seq);
			} else {
				msg_fill(buf, len, seq);
				rc = shmring_send_wait(p, buf, len, NULL);
			}
			if (rc) {
				fprintf(stderr, "producer: seq %llu: %s\n", (unsigned long long)seq,
					shmring_strerror(rc));
				return 1;
			}
		}
		shmring_commit(p);
	}
	return shmring_producer_close(p) ? 1 : 0;
}

/* Checks one message a member received and counts it for its group.  A
 * member sees its share in increasing order, since claims follow the cursor. */
static int member_check(const struct run *run, unsigned group, int id, const void *d,
			size_t len, uint64_t *last)
{
	uint64_t seq = UINT64_MAX;
	if (len >= 8)
		memcpy(&seq, d, 8);
	if (seq >= run->n || (*last != UINT64_MAX && seq <= *last)) {
		fprintf(stderr, "member %d of group %u: seq %llu (len %zu) after %llu\n", id,
			group, (unsigned long long)seq, len, (unsigned long long)*last);
		return 1;
	}
	int bad = gcheck(d, len, run, seq);
	if (bad) {
		fprintf(stderr, "member %d of group %u: seq %llu len %zu: %s\n", id, group,
			(unsigned long long)seq, len, msg_strerror(bad));
		return 1;
	}
	*last = seq;
	atomic_fetch_add(&run->count[(uint64_t)group * run->n + seq], 1);
	return 0;
}

/*
 * A member: mode 0 copies (recv), mode 1 reads in place one at a time
 * (peek/release), mode 2 copies in batches, mode 3 reads in place in batches.
 * Stops at -EPIPE (returns 0, or MEMBER_PIPE when quota is not 0), or after
 * `quota` messages if quota is not 0 (returns 0).  1 on failure.
 */
#define MEMBER_PIPE 3
static int member_main(struct shmring_consumer *c, const struct run *run, unsigned group,
		       int id, int mode, uint64_t quota)
{
	static uint8_t buf[1 << 16];
	struct shmring_msg m[32];
	uint64_t last = UINT64_MAX, got = 0;
	int rc;

	for (;;) {
		if (quota && got >= quota)
			break;
		if (mode == 0) {
			size_t len;
			rc = shmring_recv_wait(c, buf, sizeof(buf), &len, NULL);
			m[0].data = buf;
			m[0].len = len;
			rc = rc ? rc : 1;
		} else if (mode == 1) {
			rc = shmring_peek_wait(c, &m[0].data, &m[0].len, NULL);
			rc = rc ? rc : 1;
		} else if (mode == 2) {
			rc = shmring_recv_batch_wait(c, buf, sizeof(buf), m, 32, NULL);
		} else {
			rc = shmring_peek_batch_wait(c, m, 32, NULL);
		}
		if (rc == -EPIPE) {
			atomic_fetch_add(&run->got[id], got);
			return quota ? MEMBER_PIPE : 0;
		}
		if (rc < 0) {
			fprintf(stderr, "member %d of group %u: %s\n", id, group,
				shmring_strerror(rc));
			return 1;
		}
		for (int i = 0; i < rc; i++)
			if (member_check(run, group, id, m[i].data, m[i].len, &last))
				return 1;
		got += (uint64_t)rc;
		if (mode == 1 || mode == 3) {
			int n = shmring_release(c);
			if (n != rc) {
				fprintf(stderr, "member %d: released %d of %d\n", id, n, rc);
				return 1;
			}
		}
	}
	atomic_fetch_add(&run->got[id], got);
	return 0;
}

/* A broadcast consumer on the same ring: every message, in order. */
static int broadcast_main(struct shmring_consumer *c, const struct run *run, int id)
{
	static uint8_t buf[1 << 13];
	uint64_t seq = 0;
	size_t len;
	int rc;
	while ((rc = shmring_recv_wait(c, buf, sizeof(buf), &len, NULL)) == 0) {
		int bad = seq >= run->n ? MSG_BAD_SEQ : gcheck(buf, len, run, seq);
		if (bad) {
			fprintf(stderr, "broadcast %d: seq %llu: %s\n", id,
				(unsigned long long)seq, msg_strerror(bad));
			return 1;
		}
		seq++;
	}
	if (rc != -EPIPE || seq != run->n) {
		fprintf(stderr, "broadcast %d: %s after %llu of %llu\n", id, shmring_strerror(rc),
			(unsigned long long)seq, (unsigned long long)run->n);
		return 1;
	}
	atomic_fetch_add(&run->got[id], seq);
	return 0;
}

static void check_exactly_once(const struct run *run)
{
	for (unsigned g = 0; g < run->ngroups; g++) {
		uint64_t missing = 0, dup = 0, first = UINT64_MAX;
		for (uint64_t i = 0; i < run->n; i++) {
			uint8_t k = run->count[(uint64_t)g * run->n + i];
			if (k != 1 && first == UINT64_MAX)
				first = i;
			missing += k == 0;
			dup += k > 1;
		}
		cr_assert(missing == 0 && dup == 0,
			  "group %u: %llu messages missing, %llu delivered twice or more "
			  "(first at seq %llu; seed %llu)",
			  g, (unsigned long long)missing, (unsigned long long)dup,
			  (unsigned long long)first, (unsigned long long)run->seed);
	}
}

static struct shmring *make_ring(struct run *run, uint64_t cap, uint64_t n, unsigned ngroups,
				 int nprocs)
{
	struct shmring_opts o = test_opts(cap, 32);
	struct shmring *r;
	cr_assert_eq(shmring_create_anon("groups", &o, &r), 0);
	struct shmring_info info;
	shmring_info(r, &info);
	run->n = n;
	run->seed = test_env("SHMRING_TEST_SEED", test_now_ns());
	run->max_len = info.max_message < 4096 ? info.max_message : 4096;
	run->ngroups = ngroups;
	run->count = test_shared_zero(ngroups * n + 1);
	run->got = test_shared_zero(sizeof(uint64_t) * (size_t)nprocs);
	return r;
}

static void free_run(struct run *run, int nprocs)
{
	munmap((void *)run->count, run->ngroups * run->n + 1);
	munmap((void *)run->got, sizeof(uint64_t) * (size_t)nprocs);
}

Test(groups, four_members_exactly_once)
{
	enum { NM = 4 };
	struct run run;
	uint64_t n = test_env("SHMRING_TEST_GROUP_MESSAGES", 10000000);
	struct shmring *r = make_ring(&run, 1 << 20, n, 1, NM);
	struct shmring_consumer *c[NM];
	for (int i = 0; i < NM; i++)
		cr_assert_eq(shmring_group_open(r, "workers", SHMRING_START_OLDEST, &c[i]), 0);
	struct shmring_info info;
	shmring_info(r, &info);
	cr_assert_eq(info.groups, 1, "four joins of one name make one group");
	cr_assert_eq(info.consumers, NM);

	uint64_t t0 = test_now_ns();
	pid_t pids[NM + 1];
	for (int i = 0; i < NM; i++)
		if ((pids[i] = test_spawn()) == 0)
			_exit(member_main(c[i], &run, 0, i, i, 0));
	if ((pids[NM] = test_spawn()) == 0)
		_exit(producer_main(r, &run));
	int failed = 0;
	for (int i = 0; i <= NM; i++)
		failed |= test_wait(pids[i]) != 0;
	double secs = (double)(test_now_ns() - t0) / 1e9;
	cr_assert_eq(failed, 0, "a process failed (seed %llu)", (unsigned long long)run.seed);
	printf("group of %d: %llu messages in %.2f s, %.0f msg/s; per member:", NM,
	       (unsigned long long)n, secs, (double)n / secs);
	uint64_t sum = 0;
	for (int i = 0; i < NM; i++) {
		printf(" %llu", (unsigned long long)run.got[i]);
		sum += run.got[i];
	}
	printf(" (recv, peek, recv_batch, peek_batch; seed %llu)\n", (unsigned long long)run.seed);
	fflush(stdout);
	cr_assert_eq(sum, n);
	check_exactly_once(&run);
	for (int i = 0; i < NM; i++)
		cr_assert_eq(shmring_consumer_close(c[i]), 0);
	shmring_info(r, &info);
	cr_assert_eq(info.groups, 0, "the last member to leave ends the group");
	cr_assert_eq(shmring_close(r), 0);
	free_run(&run, NM);
}

/* Two members stay for the whole run; a third process joins, takes a few
 * messages, leaves, and joins again, many times. */
Test(groups, members_join_and_leave)
{
	enum { NP = 3 };
	struct run run;
	uint64_t n = test_env("SHMRING_TEST_MIXED_MESSAGES", 1000000);
	struct shmring *r = make_ring(&run, 64 << 10, n, 1, NP);
	struct shmring_consumer *c[2];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(shmring_group_open(r, "churn", SHMRING_START_OLDEST, &c[i]), 0);
	pid_t pids[NP + 1];
	for (int i = 0; i < 2; i++)
		if ((pids[i] = test_spawn()) == 0)
			_exit(member_main(c[i], &run, 0, i, i, 0));
	if ((pids[2] = test_spawn()) == 0) {
		uint64_t s = run.seed | 3;
		unsigned rounds = 0;
		for (;;) {
			struct shmring_consumer *m;
			int rc = shmring_group_open(r, "churn", 0, &m);
			if (rc) {
				fprintf(stderr, "rejoin: %s\n", shmring_strerror(rc));
				_exit(1);
			}
			struct shmring_info info;
			shmring_info(r, &info);
			if (info.groups != 1) {
				fprintf(stderr, "rejoin made %u groups\n", info.groups);
				_exit(1);
			}
			/* Take up to 50 messages, in one of the four ways. */
			int st = member_main(m, &run, 0, 2, (int)(test_rnd(&s) % 4), 1 + test_rnd(&s) % 50);
			shmring_consumer_close(m);
			if (st == 1)
				_exit(1);
			rounds++;
			if (st == MEMBER_PIPE)
				break;
		}
		printf("join/leave: the churning member joined %u times\n", rounds);
		fflush(stdout);
		_exit(rounds > 1 ? 0 : 1);
	}
	if ((pids[NP] = test_spawn()) == 0)
		_exit(producer_main(r, &run));
	int failed = 0;
	for (int i = 0; i <= NP; i++)
		failed |= test_wait(pids[i]) != 0;
	cr_assert_eq(failed, 0, "a process failed (seed %llu)", (unsigned long long)run.seed);
	printf("join/leave: %llu messages; steady members %llu and %llu, churning member %llu\n",
	       (unsigned long long)n, (unsigned long long)run.got[0],
	       (unsigned long long)run.got[1], (unsigned long long)run.got[2]);
	fflush(stdout);
	cr_assert_gt(run.got[2], 0, "the churning member never got a message");
	check_exactly_once(&run);
	for (int i = 0; i < 2; i++)
		shmring_consumer_close(c[i]);
	cr_assert_eq(shmring_close(r), 0);
	free_run(&run, NP);
}

/* 2 broadcast consumers and 2 groups of 3 members on one ring. */
Test(groups, mixed_broadcast_and_two_groups)
{
	enum { NB = 2, NG = 2, PER = 3, NP = NB + NG * PER };
	struct run run;
	uint64_t n = test_env("SHMRING_TEST_MIXED_MESSAGES", 1000000);
	struct shmring *r = make_ring(&run, 256 << 10, n, NG, NP);
	struct shmring_consumer *c[NP];
	for (int i = 0; i < NB; i++)
		cr_assert_eq(shmring_consumer_open(r, SHMRING_START_OLDEST, &c[i]), 0);
	for (int g = 0; g < NG; g++)
		for (int k = 0; k < PER; k++)
			cr_assert_eq(shmring_group_open(r, g ? "beta" : "alpha",
							SHMRING_START_OLDEST, &c[NB + g * PER + k]),
				     0);
	struct shmring_info info;
	shmring_info(r, &info);
	cr_assert_eq(info.groups, NG);
	cr_assert_eq(info.consumers, NP);

	uint64_t t0 = test_now_ns();
	pid_t pids[NP + 1];
	for (int i = 0; i < NP; i++) {
		if ((pids[i] = test_spawn()) != 0)
			continue;
		if (i < NB)
			_exit(broadcast_main(c[i], &run, i));
		int g = (i - NB) / PER, k = (i - NB) % PER;
		_exit(member_main(c[i], &run, (unsigned)g, i, (k + g) % 4, 0));
	}
	if ((pids[NP] = test_spawn()) == 0)
		_exit(producer_main(r, &run));
	int failed = 0;
	for (int i = 0; i <= NP; i++)
		failed |= test_wait(pids[i]) != 0;
	double secs = (double)(test_now_ns() - t0) / 1e9;
	cr_assert_eq(failed, 0, "a process failed (seed %llu)", (unsigned long long)run.seed);
	printf("mixed: %llu messages in %.2f s to 2 broadcast consumers and 2 groups of 3; "
	       "group shares:", (unsigned long long)n, secs);
	for (int i = NB; i < NP; i++)
		printf(" %llu", (unsigned long long)run.got[i]);
	printf("\n");
	fflush(stdout);
	for (int i = 0; i < NB; i++)
		cr_assert_eq(run.got[i], n);
	for (int g = 0; g < NG; g++) {
		uint64_t sum = 0;
		for (int k = 0; k < PER; k++)
			sum += run.got[NB + g * PER + k];
		cr_assert_eq(sum, n, "group %d received %llu of %llu", g, (unsigned long long)sum,
			     (unsigned long long)n);
	}
	check_exactly_once(&run);
	for (int i = 0; i < NP; i++)
		shmring_consumer_close(c[i]);
	cr_assert_eq(shmring_close(r), 0);
	free_run(&run, NP);
}

static long voluntary_switches(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	long v = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* Three members sleep; each message published wakes one of them, not all:
 * counted by the members' context switches. */
Test(groups, one_wakeup_per_publication)
{
	enum { NM = 3, MSGS = 40 };
	struct shmring *r;
	cr_assert_eq(shmring_create_anon("wake1", NULL, &r), 0);
	shmring_set_spin(r, 0);
	struct shmring_consumer *c[NM];
	for (int i = 0; i < NM; i++)
		cr_assert_eq(shmring_group_open(r, "sleepy", 0, &c[i]), 0);
	_Atomic uint64_t *got = test_shared_zero(sizeof(uint64_t));
	pid_t pids[NM];
	for (int i = 0; i < NM; i++) {
		if ((pids[i] = test_spawn()) != 0)
			continue;
		char buf[64];
		size_t len;
		int rc;
		while ((rc = shmring_recv_wait(c[i], buf, sizeof(buf), &len, NULL)) == 0)
			atomic_fetch_add(got, 1);
		_exit(rc == -EPIPE ? 0 : 1);
	}
	struct shmring_producer *p;
	cr_assert_eq(shmring_producer_open(r, &p), 0);
	usleep(100000); /* let them all fall asleep */
	long before[NM], wakes = 0;
	for (int i = 0; i < NM; i++)
		before[i] = voluntary_switches(pids[i]);
	for (int k = 0; k < MSGS; k++) {
		cr_assert_eq(shmring_send(p, "x", 1), 0);
		uint64_t t0 = test_now_ns();
		while (atomic_load(got) < (uint64_t)k + 1 && test_now_ns() - t0 < 5000000000ull)
			usleep(100);
		cr_assert_eq(atomic_load(got), (uint64_t)k + 1, "message %d not received", k);
		usleep(5000); /* the member goes back to sleep */
	}
	for (int i = 0; i < NM; i++)
		wakes += voluntary_switches(pids[i]) - before[i];
	printf("one wake-up per publication: %d messages, %ld member wake-ups "
	       "(waking all would be about %d)\n", MSGS, wakes, MSGS * NM);
	fflush(stdout);
	/* One wake-up per message, with room for scheduler noise; waking every
	 * member would cost NM per message. */
	cr_assert_leq(wakes, MSGS * 3 / 2, "%ld wake-ups for %d messages", wakes, MSGS);
	cr_assert_geq(wakes, MSGS, "members did not sleep: the test proves nothing");
	cr_assert_eq(shmring_producer_close(p), 0);
	for (int i = 0; i < NM; i++)
		cr_assert_eq(test_wait(pids[i]), 0);
	for (int i = 0; i < NM; i++)
		shmring_consumer_close(c[i]);
	cr_assert_eq(shmring_close(r), 0);
	munmap((void *)got, sizeof(uint64_t));
}

Test(groups, open_errors_and_lifecycle)
{
	struct shmring_opts o = test_opts(4096, 4);
	struct shmring *r;
	struct shmring_consumer *a, *b, *x;
	cr_assert_eq(shmring_create_anon("gerr", &o, &r), 0);
	cr_assert_eq(shmring_group_open(NULL, "g", 0, &a), -EINVAL);
	cr_assert_eq(shmring_group_open(r, NULL, 0, &a), -EINVAL);
	cr_assert_eq(shmring_group_open(r, "g", 0, NULL), -EINVAL);
	cr_assert_eq(shmring_group_open(r, "", 0, &a), -EINVAL);
	cr_assert_eq(shmring_group_open(r, "g", 2, &a), -EINVAL);
	char longname[40];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[SHMRING_GROUP_NAME_MAX] = '\0';
	cr_assert_eq(shmring_group_open(r, longname, 0, &a), 0, "31 bytes is allowed");
	cr_assert_eq(shmring_consumer_close(a), 0);
	longname[SHMRING_GROUP_NAME_MAX] = 'n';
	longname[sizeof(longname) - 1] = '\0';
	cr_assert_eq(shmring_group_open(r, longname, 0, &a), -ENAMETOOLONG);

	/* Two members of "g" and one of "h": 2 groups, 3 members, 5 slots. */
	cr_assert_eq(shmring_group_open(r, "g", 0, &a), 0);
	cr_assert_eq(shmring_group_open(r, "g", 0, &b), 0);
	/* 4 slots: g and its 2 members; "h" needs 2 more. */
	cr_assert_eq(shmring_group_open(r, "h", 0, &x), -EUSERS);
	struct shmring_info info;
	shmring_info(r, &info);
	cr_assert_eq(info.groups, 1);
	cr_assert_eq(info.consumers, 2);

	/* Each message goes to one member only. */
	struct shmring_producer *p;
	cr_assert_eq(shmring_producer_open(r, &p), 0);
	cr_assert_eq(shmring_send(p, "one", 3), 0);
	cr_assert_eq(shmring_send(p, "two", 3), 0);
	char buf[8];
	size_t len;
	cr_assert_eq(shmring_recv(a, buf, sizeof(buf), &len), 0);
	cr_assert_eq(memcmp(buf, "one", 3), 0);
	cr_assert_eq(shmring_recv(b, buf, 2, &len), -EMSGSIZE);
	cr_assert_eq(len, 3);
	cr_assert_eq(shmring_recv(b, buf, sizeof(buf), &len), 0);
	cr_assert_eq(memcmp(buf, "two", 3), 0);
	cr_assert_eq(shmring_recv(a, buf, sizeof(buf), &len), -EAGAIN);
	cr_assert_eq(shmring_recv(b, buf, sizeof(buf), &len), -EAGAIN);

	/* A zero-copy member holds the producer back until it releases. */
	struct shmring_info ri;
	shmring_info(r, &ri);
	void *d;
	int sent = 0;
	cr_assert_eq(shmring_send(p, "three", 5), 0);
	const void *pd;
	cr_assert_eq(shmring_peek(a, &pd, &len), 0);
	cr_assert_eq(len, 5);
	cr_assert_eq(memcmp(pd, "three", 5), 0);
	while (shmring_reserve(p, 64, &d) == 0) {
		memset(d, 'z', 64);
		shmring_commit(p);
		sent++;
	}
	cr_assert_eq(memcmp(pd, "three", 5), 0, "a held record was overwritten");
	cr_assert_lt(sent, 4096 / 72 + 1);
	cr_assert_eq(shmring_reserve(p, 64, &d), -EAGAIN);
	/* The other member takes the rest; still the hold keeps the room. */
	for (int i = 0; i < sent; i++)
		cr_assert_eq(shmring_recv(b, buf, sizeof(buf), &len), -EMSGSIZE);
	struct shmring_msg m[64];
	char big[8192];
	cr_assert_eq(shmring_recv_batch(b, big, sizeof(big), m, 64), sent);
	cr_assert_eq(shmring_reserve(p, 64, &d), -EAGAIN, "the hold must still keep the room");
	cr_assert_eq(shmring_release(a), 1);
	cr_assert_eq(shmring_reserve(p, 64, &d), 0, "release gave the room back");
	cr_assert_eq(shmring_abort(p), 1);

	/* When the last member leaves, the group ends. */
	cr_assert_eq(shmring_consumer_close(a), 0);
	shmring_info(r, &info);
	cr_assert_eq(info.groups, 1);
	cr_assert_eq(shmring_consumer_close(b), 0);
	shmring_info(r, &info);
	cr_assert_eq(info.groups, 0);
	cr_assert_eq(info.consumers, 0);

	/* After the producer closes, members drain and then get -EPIPE. */
	cr_assert_eq(shmring_group_open(r, "g", SHMRING_START_NEWEST, &a), 0);
	cr_assert_eq(shmring_send(p, "last", 4), 0);
	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_recv(a, buf, sizeof(buf), &len), 0);
	cr_assert_eq(len, 4);
	cr_assert_eq(shmring_recv(a, buf, sizeof(buf), &len), -EPIPE);
	cr_assert_eq(shmring_peek(a, &pd, &len), -EPIPE);
	struct timespec dl;
	shmring_deadline(&dl, 1000000);
	cr_assert_eq(shmring_recv_wait(a, buf, sizeof(buf), &len, &dl), -EPIPE);
	cr_assert_eq(shmring_consumer_close(a), 0);
	(void)ri;
	cr_assert_eq(shmring_close(r), 0);
}

Test(groups, wait_times_out)
{
	struct shmring *r;
	struct shmring_consumer *a;
	cr_assert_eq(shmring_create_anon("gwait", NULL, &r), 0);
	cr_assert_eq(shmring_group_open(r, "g", 0, &a), 0);
	struct shmring_producer *p;
	cr_assert_eq(shmring_producer_open(r, &p), 0);
	char buf[8];
	size_t len;
	struct timespec dl;
	shmring_deadline(&dl, 50000000);
	uint64_t t0 = test_now_ns();
	cr_assert_eq(shmring_recv_wait(a, buf, sizeof(buf), &len, &dl), -ETIMEDOUT);
	uint64_t el = test_now_ns() - t0;
	cr_assert_geq(el, 49000000ull);
	cr_assert_lt(el, 2000000000ull);
	const void *d;
	shmring_deadline(&dl, 20000000);
	cr_assert_eq(shmring_peek_wait(a, &d, &len, &dl), -ETIMEDOUT);
	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_consumer_close(a), 0);
	cr_assert_eq(shmring_close(r), 0);
}
