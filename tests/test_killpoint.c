/* SPDX-License-Identifier: MIT */
/* Description: a producer SIGKILLed at every instruction boundary of one
 * shmring_send, in both policies, and what the next producer and the
 * consumers find after each death.
 *
 * A child process opens the producer (taking over from the previous child),
 * publishes a few messages, stops itself under ptrace, and then publishes one
 * more.  The parent single-steps it k instructions into that call and kills
 * it, for k = 0, 1, 2, ... until the child finishes the call on its own.
 * Every instruction boundary of shmring_send is thus a death point, once.
 *
 * After each death the parent checks what a crash must leave behind:
 * - a consumer attached before reads on, with no -EPROTO: the messages of the
 *   dead producer (the last one only if its commit was reached), then those
 *   of the next producer, in order, none twice, none lost but the last one;
 * - the consumer reads what the dead producer published before the next one
 *   takes over, and after: the next producer continues exactly where the
 *   consumer stopped;
 * - OVERWRITE: the producer that takes over publishes a whole snapshot
 *   (ver a multiple of 4, head_seq the sequence number in the record at
 *   head, tail_seq - head_seq the number of records from head to tail), and
 *   a consumer attached at the oldest record reads every record in it.
 * The ring is small, so in OVERWRITE every publish moves head over old
 * records: both snapshot updates (head and tail) are in every traced call.
 * BLOCK runs twice: with room after the traced message, and with a second
 * consumer holding the ring so that the traced message fills it exactly.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "layout.h"

#define WARM 3 /* messages each child publishes before the traced one */
#define BIG 248 /* records of 256 bytes: 16 fill the ring exactly */
#define RECORDS 16
#define SMALL 24 /* copied into the tail's line too (layout.h, INLINE_MAX) */

/* The payload size of this run's messages: BIG, or SMALL for the run on a
 * ring with SHMRING_INLINE_SMALL, whose consumer reads with shmring_recv()
 * (which takes a small message from the tail's line) and whose next
 * producer publishes through shmring_reserve() and shmring_commit()
 * (which write no such copy). */
static size_t payload = BIG;
#define SMALL_RUN (payload == SMALL)

/* The payload: the test's own message number, then filler. */
static void fill(unsigned char *buf, uint64_t num)
{
	memcpy(buf, &num, sizeof(num));
	for (size_t i = sizeof(num); i < payload; i++)
		buf[i] = (unsigned char)(num * 31 + i);
}

static uint64_t check_payload(const void *data, size_t len)
{
	cr_assert_eq(len, payload);
	uint64_t num;
	memcpy(&num, data, sizeof(num));
	for (size_t i = sizeof(num); i < payload; i++)
		cr_assert_eq(((const unsigned char *)data)[i], (unsigned char)(num * 31 + i),
			     "message %llu byte %zu", (unsigned long long)num, i);
	return num;
}

/* The child: take over, publish numbers first..first+WARM-1, stop for the
 * tracer, publish first+WARM.  Exit codes other than 0 are failures. */
static void child(const char *name, uint64_t first)
{
	struct shmring *r;
	struct shmring_producer *p;
	unsigned char buf[BIG];
	if (shmring_open(name, &r) || shmring_producer_open(r, &p))
		_exit(10);
	for (uint64_t i = 0; i < WARM; i++) {
		fill(buf, first + i);
		if (shmring_send(p, buf, payload) != 0)
			_exit(11);
	}
	fill(buf, first + WARM);
	if (ptrace(PTRACE_TRACEME, 0, NULL, NULL))
		_exit(12);
	raise(SIGSTOP);
	int rc = shmring_send(p, buf, payload);
	_exit(rc == 0 ? 0 : 13); /* not reached: killed on return */
}

static void step(pid_t pid, int *st)
{
	cr_assert_eq(ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL), 0, "singlestep: %s",
		     strerror(errno));
	cr_assert_eq(waitpid(pid, st, 0), pid);
}

/* Steps the stopped child to the first instruction of shmring_send (the
 * child is a fork: the same addresses), then k instructions further, and
 * kills it.  Returns 1 if it was killed inside the call, 0 if the call
 * returned first (it is killed all the same). */
static int step_and_kill(pid_t pid, unsigned long k)
{
	int st;
	struct user_regs_struct regs;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP, "child did not stop (status %#x)",
		  st);
	for (unsigned i = 0;; i++) {
		cr_assert_eq(ptrace(PTRACE_GETREGS, pid, NULL, &regs), 0);
		if (regs.rip == (uintptr_t)&shmring_send)
			break;
		cr_assert(i < 100000, "the child never entered shmring_send");
		step(pid, &st);
		cr_assert(WIFSTOPPED(st), "child status %#x before the call", st);
	}
	/* The return address, on top of the stack at the call's entry. */
	errno = 0;
	long ret = ptrace(PTRACE_PEEKDATA, pid, (void *)regs.rsp, NULL);
	cr_assert_eq(errno, 0, "peek: %s", strerror(errno));
	int inside = 1;
	for (unsigned long i = 0; i < k && inside; i++) {
		step(pid, &st);
		cr_assert(WIFSTOPPED(st), "child status %#x in the call", st);
		cr_assert_eq(ptrace(PTRACE_GETREGS, pid, NULL, &regs), 0);
		inside = regs.rip != (uintptr_t)ret;
	}
	kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child status %#x", st);
	return inside;
}

/* OVERWRITE: the snapshot a producer published on takeover is whole. */
static void check_snapshot(struct shmring *r)
{
	struct shmring_info info;
	cr_assert_eq(shmring_info(r, &info), 0);
	const struct shm_header *h = mmap(NULL, 4096, PROT_READ, MAP_SHARED, shmring_fd(r), 0);
	cr_assert_neq(h, MAP_FAILED);
	size_t len = h->data_off + info.capacity;
	const uint8_t *base = mmap(NULL, len, PROT_READ, MAP_SHARED, shmring_fd(r), 0);
	cr_assert_neq(base, MAP_FAILED);
	const struct shm_prod *prod = (const void *)(base + h->prod_off);
	const uint8_t *data = base + h->data_off;
	uint32_t ver = load_acquire(&((struct shm_prod *)prod)->ver);
	uint64_t head = prod->head, head_seq = prod->head_seq;
	uint64_t tail = prod->tail, tail_seq = prod->tail_seq;
	cr_assert_eq(ver % 4, 0, "ver %u after takeover", ver);
	cr_assert(head <= tail && tail - head <= info.capacity);
	uint64_t n = 0;
	for (uint64_t pos = head; pos != tail; n++) {
		const struct shm_rec *rec = (const void *)(data + (pos & (info.capacity - 1)));
		cr_assert_eq(rec->seq, (uint32_t)(head_seq + n), "record %llu at %llu has seq %u",
			     (unsigned long long)n, (unsigned long long)pos, rec->seq);
		pos += SHMRING_RECORD_SIZE(rec->len);
		cr_assert(pos <= tail);
	}
	cr_assert_eq(tail_seq - head_seq, n, "snapshot says %llu records, the ring holds %llu",
		     (unsigned long long)(tail_seq - head_seq), (unsigned long long)n);
	munmap((void *)base, len);
	munmap((void *)h, 4096);
}

/* Reads everything there is; every number must be next or, once, skip the
 * traced message of a child killed before its commit.  Returns how many it
 * read. */
static uint64_t drain(struct shmring_consumer *c, uint64_t *next, uint64_t skippable)
{
	const void *data;
	unsigned char buf[BIG];
	size_t len;
	uint64_t n = 0;
	int rc;
	while ((rc = SMALL_RUN ? shmring_recv(c, buf, sizeof(buf), &len)
			       : shmring_peek(c, &data, &len)) == 0) {
		n++;
		uint64_t num = check_payload(SMALL_RUN ? buf : data, len);
		if (num == skippable + 1 && *next == skippable)
			*next = num; /* the dead child never committed it */
		cr_assert_eq(num, *next, "read message %llu, expected %llu",
			     (unsigned long long)num, (unsigned long long)*next);
		(*next)++;
		if (!SMALL_RUN)
			cr_assert_eq(shmring_release(c), 1);
	}
	cr_assert(rc == -EAGAIN || rc == -EPIPE, "peek: %s", shmring_strerror(rc));
	return n;
}

/* The holding consumer reads until it is `behind` records behind the
 * `total` the ring has published; *read counts what it read. */
static void hold(struct shmring_consumer *h, uint64_t *read, uint64_t total, uint64_t behind)
{
	const void *data;
	size_t len;
	while (total - *read > behind) {
		cr_assert_eq(shmring_peek(h, &data, &len), 0, "holder at %llu of %llu",
			     (unsigned long long)*read, (unsigned long long)total);
		check_payload(data, len);
		cr_assert_eq(shmring_release(h), 1);
		(*read)++;
	}
}

static void run(enum shmring_policy policy, int full)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring_opts o = test_opts(4096, 4);
	o.policy = policy;
	if (SMALL_RUN)
		o.flags = SHMRING_INLINE_SMALL;
	struct shmring *r;
	cr_assert_eq(shmring_create(name, &o, &r), 0);
	struct shmring_consumer *c, *h = NULL;
	cr_assert_eq(shmring_consumer_open(r, 0, &c), 0);
	uint64_t num = 0, next = 0, killed = 0, steps = 0, total = 0, held = 0;
	if (full) {
		/* RECORDS - WARM - 1 records for the holder to hold: each
		 * child's sends then fill the ring exactly. */
		struct shmring_producer *p;
		cr_assert_eq(shmring_consumer_open(r, 0, &h), 0);
		cr_assert_eq(shmring_producer_open(r, &p), 0);
		unsigned char buf[BIG];
		for (; num < RECORDS - WARM - 1; num++) {
			fill(buf, num);
			cr_assert_eq(shmring_send(p, buf, payload), 0);
		}
		cr_assert_eq(shmring_producer_close(p), 0);
		total = drain(c, &next, UINT64_MAX - 1);
	}

	/* Every instruction; the sanitizer build, whose calls are several
	 * times longer, takes every stride-th (SHMRING_TEST_KILLPOINT_STRIDE). */
	unsigned long stride = (unsigned long)test_env("SHMRING_TEST_KILLPOINT_STRIDE", 1);
	for (unsigned long k = 0;; k += stride) {
		uint64_t first = num;
		if (h)
			hold(h, &held, total, RECORDS - WARM - 1);
		pid_t pid = test_spawn();
		if (pid == 0)
			child(name, first);
		num += WARM + 1;
		int died = step_and_kill(pid, k);
		killed += (unsigned)died;
		/* What the dead producer published, before anybody takes
		 * over. */
		total += drain(c, &next, first + WARM);
		if (h) /* room for the next producer's message */
			hold(h, &held, total, RECORDS - 1);
		/* The next producer takes over (and, OVERWRITE, repairs). */
		struct shmring_producer *p;
		cr_assert_eq(shmring_producer_open(r, &p), 0, "takeover after %lu steps", k);
		if (policy == SHMRING_POLICY_OVERWRITE) {
			check_snapshot(r);
			struct shmring_consumer *old;
			cr_assert_eq(shmring_consumer_open(r, SHMRING_START_OLDEST, &old), 0);
			const void *data;
			size_t len;
			int rc, n = 0;
			while ((rc = shmring_peek(old, &data, &len)) == 0) {
				check_payload(data, len);
				cr_assert_eq(shmring_release(old), 1);
				n++;
			}
			cr_assert_eq(rc, -EAGAIN, "oldest reader after %d records: %s", n,
				     shmring_strerror(rc));
			cr_assert(n > 0);
			cr_assert_eq(shmring_consumer_close(old), 0);
		}
		unsigned char buf[BIG];
		fill(buf, num);
		if (SMALL_RUN) {
			/* In place: had the takeover left the dead child's copy
			 * of its traced message in the tail's line, the
			 * consumer would read that instead of this one. */
			void *d;
			cr_assert_eq(shmring_reserve(p, payload, &d), 0);
			memcpy(d, buf, payload);
			cr_assert_eq(shmring_commit(p), 1);
		} else {
			cr_assert_eq(shmring_send(p, buf, payload), 0);
		}
		num++;
		total += drain(c, &next, first + WARM);
		cr_assert_eq(next, num, "after %lu steps: read up to %llu of %llu", k,
			     (unsigned long long)next, (unsigned long long)num);
		uint64_t lost;
		cr_assert_eq(shmring_lost(c, &lost), 0);
		cr_assert_eq(lost, 0);
		cr_assert_eq(shmring_producer_close(p), 0);
		if (!died) {
			steps = k;
			break;
		}
	}
	cr_assert_eq(shmring_consumer_close(c), 0);
	if (h)
		cr_assert_eq(shmring_consumer_close(h), 0);
	cr_assert_eq(shmring_close(r), 0);
	cr_assert(steps > 50, "the traced send took only %llu instructions",
		  (unsigned long long)steps);
	fprintf(stderr, "killpoint %s: killed at %llu of the %lu instruction boundaries of the send\n",
		policy == SHMRING_POLICY_OVERWRITE ? "overwrite"
		: full			   ? "block, full ring"
		: SMALL_RUN		   ? "block, small messages"
					   : "block",
		(unsigned long long)killed, (unsigned long)steps);
}

Test(killpoint, overwrite_producer_killed_at_every_instruction, .timeout = 600)
{
	run(SHMRING_POLICY_OVERWRITE, 0);
}

Test(killpoint, block_producer_killed_at_every_instruction, .timeout = 600)
{
	run(SHMRING_POLICY_BLOCK, 0);
}

Test(killpoint, block_producer_filling_the_ring_killed_at_every_instruction, .timeout = 600)
{
	run(SHMRING_POLICY_BLOCK, 1);
}

Test(killpoint, block_producer_of_small_messages_killed_at_every_instruction, .timeout = 600)
{
	payload = SMALL;
	run(SHMRING_POLICY_BLOCK, 0);
}
