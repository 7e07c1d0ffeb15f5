/* SPDX-License-Identifier: MIT */
/* Description: no lost wake-ups.  Processes with spinning turned off (so each
 * wait goes to the futex) ping-pong, fill and drain rings for tens of
 * thousands of rounds; every wait has a generous deadline, so a lost wake-up
 * shows as -ETIMEDOUT with its round number instead of a hang.  Context
 * switch counts prove the sleep path was taken.
 *
 * Environment: SHMRING_TEST_ROUNDS (default 20000). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"
#include "layout.h"

#define WAIT_NS (5ull * 1000000000u) /* far above any scheduling delay */

static long voluntary_switches(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_nvcsw;
}

static struct shmring *ring(uint64_t cap)
{
	struct shmring_opts o = test_opts(cap, 8);
	struct shmring *r;
	cr_assert_eq(shmring_create_anon("wakeup", &o, &r), 0);
	cr_assert_eq(shmring_set_spin(r, 0), 0);
	return r;
}

static pid_t child(void)
{
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	return pid;
}

/* Busy for ns nanoseconds: the other side, waiting, falls asleep. */
static void busy_ns(uint64_t ns)
{
	uint64_t t = test_now_ns();
	while (test_now_ns() - t < ns)
		;
}

/* In a child: receives message i (a uint64_t holding i) within WAIT_NS,
 * sleeping in shmring_recv_wait(), or with poll set, calling shmring_recv()
 * until it comes.  0, or 3 (the exit status for a lost or misordered
 * message) after saying what went wrong; who names the consumer. */
static int child_recv(struct shmring_consumer *c, uint64_t i, int poll, int who)
{
	uint64_t v = ~0ull;
	size_t got = 0;
	int rc;
	if (poll) {
		uint64_t end = test_now_ns() + WAIT_NS;
		while ((rc = shmring_recv(c, &v, sizeof(v), &got)) == -EAGAIN && test_now_ns() < end)
			;
	} else {
		struct timespec dl;
		shmring_deadline(&dl, WAIT_NS);
		rc = shmring_recv_wait(c, &v, sizeof(v), &got, &dl);
	}
	if (rc == 0 && got == sizeof(v) && v == i)
		return 0;
	fprintf(stderr, "consumer %d: message %llu: %s, got %llu\n", who, (unsigned long long)i,
		shmring_strerror(rc), (unsigned long long)v);
	return 3;
}

/* Ping-pong: each side sleeps until the other publishes after it slept.
 * Half the answers, at random, wait 30 us first, so that the other side is
 * surely asleep; the others go at once and race its way down to sleep. */
Test(wakeup, ping_pong_consumer_sleeps)
{
	uint64_t rounds = test_env("SHMRING_TEST_ROUNDS", 20000);
	struct shmring *a = ring(4096), *b = ring(4096);
	struct shmring_consumer *ca, *cb;
	cr_assert_eq(shmring_consumer_open(a, 0, &ca), 0);
	cr_assert_eq(shmring_consumer_open(b, 0, &cb), 0);

	pid_t pid = child();
	if (pid == 0) { /* echo a -> b */
		struct shmring_producer *pb;
		if (shmring_producer_open(b, &pb))
			_exit(2);
		long sw0 = voluntary_switches();
		uint64_t rs = 0x9e3779b97f4a7c15ull;
		for (uint64_t i = 0; i < rounds; i++) {
			struct timespec dl;
			uint64_t v;
			size_t n;
			shmring_deadline(&dl, WAIT_NS);
			int rc = shmring_recv_wait(ca, &v, sizeof(v), &n, &dl);
			if (rc || n != sizeof(v) || v != i) {
				fprintf(stderr, "child: round %llu: %s, got %llu\n",
					(unsigned long long)i, shmring_strerror(rc),
					(unsigned long long)v);
				_exit(3);
			}
			if (test_rnd(&rs) & 1)
				busy_ns(30000);
			if (shmring_send(pb, &v, sizeof(v)))
				_exit(4);
		}
		/* Most waits must have slept, or this tested nothing. */
		_exit(voluntary_switches() - sw0 >= (long)rounds / 2 ? 0 : 5);
	}
	struct shmring_producer *pa;
	cr_assert_eq(shmring_producer_open(a, &pa), 0);
	long sw0 = voluntary_switches();
	uint64_t t0 = test_now_ns(), rs = 0xd1b54a32d192ed03ull;
	for (uint64_t i = 0; i < rounds; i++) {
		struct timespec dl;
		uint64_t v = i;
		size_t n;
		if (test_rnd(&rs) & 1)
			busy_ns(30000);
		cr_assert_eq(shmring_send(pa, &v, sizeof(v)), 0);
		shmring_deadline(&dl, WAIT_NS);
		int rc = shmring_recv_wait(cb, &v, sizeof(v), &n, &dl);
		cr_assert_eq(rc, 0, "round %llu: %s (lost wake-up?)", (unsigned long long)i,
			     shmring_strerror(rc));
		cr_assert_eq(v, i);
	}
	long sw = voluntary_switches() - sw0;
	int st = test_wait(pid);
	cr_assert_eq(st, 0, "child failed with %d (3: lost wake-up, 5: never slept)", st);
	printf("ping-pong: %llu rounds, %.1f us per round trip, parent slept %ld times\n",
	       (unsigned long long)rounds, (double)(test_now_ns() - t0) / 1e3 / (double)rounds,
	       sw);
	cr_assert_geq(sw, (long)rounds / 2, "the parent rarely slept: sleep path not tested");
	shmring_producer_close(pa);
	shmring_consumer_close(ca);
	shmring_consumer_close(cb);
	cr_assert_eq(shmring_close(a), 0);
	cr_assert_eq(shmring_close(b), 0);
}

/* The producer sleeps for room; a consumer that also sleeps wakes it. */
Test(wakeup, producer_sleeps_for_room)
{
	uint64_t n = test_env("SHMRING_TEST_ROUNDS", 20000) * 2;
	struct shmring *r = ring(4096);
	struct shmring_info info;
	shmring_info(r, &info);
	size_t len = info.max_message; /* two records fill the ring */
	struct shmring_consumer *c;
	cr_assert_eq(shmring_consumer_open(r, 0, &c), 0);

	pid_t pid = child();
	if (pid == 0) {
		static uint8_t buf[4096];
		for (uint64_t i = 0; i < n; i++) {
			struct timespec dl;
			size_t got;
			shmring_deadline(&dl, WAIT_NS);
			int rc = shmring_recv_wait(c, buf, sizeof(buf), &got, &dl);
			if (rc || msg_check(buf, got, 1, i, len) != MSG_OK) {
				fprintf(stderr, "consumer: message %llu: %s\n",
					(unsigned long long)i, rc ? shmring_strerror(rc) : "bad");
				_exit(3);
			}
			if (i % 64 == 0)
				usleep(50); /* let the producer fill up and sleep */
		}
		_exit(0);
	}
	struct shmring_producer *p;
	cr_assert_eq(shmring_producer_open(r, &p), 0);
	long sw0 = voluntary_switches();
	for (uint64_t i = 0; i < n; i++) {
		struct timespec dl;
		void *d;
		size_t l = msg_len(1, i, len);
		shmring_deadline(&dl, WAIT_NS);
		int rc = shmring_reserve_wait(p, l, &d, &dl);
		cr_assert_eq(rc, 0, "message %llu: %s (lost wake-up?)", (unsigned long long)i,
			     shmring_strerror(rc));
		msg_fill(d, l, i);
		cr_assert_eq(shmring_commit(p), 1);
	}
	long sw = voluntary_switches() - sw0;
	cr_assert_eq(test_wait(pid), 0, "consumer failed");
	printf("producer waits: %llu messages, producer slept %ld times\n",
	       (unsigned long long)n, sw);
	cr_assert_geq(sw, (long)n / 64, "the producer rarely slept: sleep path not tested");
	shmring_producer_close(p);
	shmring_consumer_close(c);
	cr_assert_eq(shmring_close(r), 0);
}

/* Four sleeping consumers and a producer that publishes in bursts with
 * pauses: every consumer is woken for every burst. */
Test(wakeup, many_sleepers_bursts)
{
	uint64_t bursts = test_env("SHMRING_TEST_ROUNDS", 20000) / 4;
	enum { NC = 4, BURST = 3 };
	struct shmring *r = ring(64 << 10);
	struct shmring_consumer *c[NC];
	for (int i = 0; i < NC; i++)
		cr_assert_eq(shmring_consumer_open(r, 0, &c[i]), 0);
	pid_t pids[NC];
	for (int k = 0; k < NC; k++) {
		pids[k] = child();
		if (pids[k] == 0) {
			for (uint64_t i = 0; i < bursts * BURST; i++)
				if (child_recv(c[k], i, 0, k))
					_exit(3);
			_exit(0);
		}
	}
	struct shmring_producer *p;
	cr_assert_eq(shmring_producer_open(r, &p), 0);
	for (uint64_t b = 0; b < bursts; b++) {
		for (uint64_t j = 0; j < BURST; j++) {
			uint64_t v = b * BURST + j;
			void *d;
			cr_assert_eq(shmring_reserve_wait(p, sizeof(v), &d, NULL), 0);
			memcpy(d, &v, sizeof(v));
		}
		cr_assert_eq(shmring_commit(p), BURST); /* one publication, one wake */
		if (b % 8 == 0)
			usleep(20);
	}
	for (int k = 0; k < NC; k++)
		cr_assert_eq(test_wait(pids[k]), 0, "consumer %d failed", k);
	shmring_producer_close(p);
	for (int i = 0; i < NC; i++)
		shmring_consumer_close(c[i]);
	cr_assert_eq(shmring_close(r), 0);
}

/* A 64 KiB ring with one consumer, and the consumers' shared line of the
 * ring mapped from its descriptor (read-only), to watch the fence mode. */
struct mode_ring {
	struct shmring *r;
	struct shmring_consumer *c;
	struct shm_cshared *cs;
	void *map;
	size_t maplen;
};

static void mode_ring_open(struct mode_ring *m)
{
	m->r = ring(64 << 10);
	int fd = shmring_fd(m->r);
	cr_assert_geq(fd, 0);
	struct shm_header h;
	cr_assert_eq(pread(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	m->maplen = h.ctab_off + sizeof(struct shm_cshared);
	m->map = mmap(NULL, m->maplen, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(m->map, MAP_FAILED);
	m->cs = (struct shm_cshared *)((uint8_t *)m->map + h.ctab_off);
	cr_assert_eq(shmring_consumer_open(m->r, 0, &m->c), 0);
}

/* Unmaps the line, closes producer p, the consumer and the ring. */
static void mode_ring_close(struct mode_ring *m, struct shmring_producer *p)
{
	munmap(m->map, m->maplen);
	shmring_producer_close(p);
	shmring_consumer_close(m->c);
	cr_assert_eq(shmring_close(m->r), 0);
}

/* Waits up to WAIT_NS for the word to hold want; returns what it holds. */
static uint32_t await_word(a32 *w, uint32_t want)
{
	uint64_t t = test_now_ns();
	uint32_t v;
	while ((v = atomic_load(w)) != want && test_now_ns() - t < WAIT_NS)
		usleep(50);
	return v;
}

/* Sends messages first..first+n-1, each once the consumer is asleep
 * (it armed wake_armed), so that every one goes through the sleep path. */
static void send_to_sleeper(struct shmring_producer *p, struct shm_cshared *cs,
			    uint64_t first, uint64_t n)
{
	for (uint64_t v = first; v < first + n; v++) {
		cr_assert_eq(await_word(&cs->wake_armed, 1), 1, "message %llu: consumer not asleep",
			     (unsigned long long)v);
		cr_assert_eq(shmring_send(p, &v, sizeof(v)), 0);
	}
}

/*
 * The fence mode of the consumers' sleeps (layout 6, wait.c asym_sleep()):
 * a consumer's sleep makes it ASYM_HEAVY (the producer fences, sleepers
 * skip membarrier()); a run of commits with nobody asleep turns it back to
 * ASYM_LIGHT in the next generation; sleeps make it heavy again.  Every
 * message arrives in order through all three phases, within the deadline.
 */
Test(wakeup, fence_modes)
{
	enum { SLEEPS = 200, QUIET = 16384 }; /* QUIET: far above ASYM_QUIET */
	struct mode_ring mr;
	mode_ring_open(&mr);
	struct shmring *r = mr.r;
	struct shmring_consumer *c = mr.c;
	struct shm_cshared *cs = mr.cs;
	cr_assert_eq(atomic_load(&cs->cmode), 0, "a new ring starts ASYM_LIGHT, generation 0");

	pid_t pid = child();
	if (pid == 0) {
		/* Polls for the middle QUIET messages: never asleep, so the
		 * producer finds nobody to wake. */
		for (uint64_t i = 0; i < 2 * SLEEPS + QUIET; i++)
			if (child_recv(c, i, i >= SLEEPS && i < SLEEPS + QUIET, 0))
				_exit(3);
		_exit(0);
	}
	struct shmring_producer *p;
	cr_assert_eq(shmring_producer_open(r, &p), 0);

	send_to_sleeper(p, cs, 0, SLEEPS);
	uint32_t m = atomic_load(&cs->cmode);
	cr_assert_eq(m, ASYM_HEAVY, "after %d sleeps: mode %#x, want ASYM_HEAVY, generation 0",
		     SLEEPS, m);

	for (uint64_t v = SLEEPS; v < SLEEPS + QUIET; v++) {
		int rc;
		while ((rc = shmring_send(p, &v, sizeof(v))) == -EAGAIN)
			; /* the consumer polls: it drains the ring */
		cr_assert_eq(rc, 0);
	}
	m = atomic_load(&cs->cmode);
	cr_assert_eq(m, ASYM_GEN | ASYM_LIGHT,
		     "after %d commits with nobody asleep: mode %#x, want ASYM_LIGHT, generation 1",
		     QUIET, m);

	send_to_sleeper(p, cs, SLEEPS + QUIET, SLEEPS);
	m = atomic_load(&cs->cmode);
	cr_assert_eq(m, ASYM_GEN | ASYM_HEAVY, "sleeping again: mode %#x, want ASYM_HEAVY, generation 1",
		     m);

	cr_assert_eq(test_wait(pid), 0, "consumer failed (3: lost or misordered message)");
	mode_ring_close(&mr, p);
}

/* Makes membarrier(2) fail with EPERM in this process, as a seccomp
 * sandbox would; 0 or -1. */
static int refuse_membarrier(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) ? -1 : 0;
}

/*
 * A sleeper whose membarrier() fails (wait.c asym_sleep()) cannot arm the
 * mode: it moves ASYM_ARMING on to ASYM_LIGHT of the next generation,
 * never to ASYM_HEAVY, and caps its sleep at 1 ms, so that every message
 * still arrives although the producer, light, does not fence.
 */
Test(wakeup, fence_mode_without_membarrier)
{
	enum { MSGS = 50 };
	struct mode_ring mr;
	mode_ring_open(&mr);
	struct shmring *r = mr.r;
	struct shmring_consumer *c = mr.c;
	struct shm_cshared *cs = mr.cs;

	pid_t pid = child();
	if (pid == 0) {
		if (refuse_membarrier() || syscall(SYS_membarrier, 0, 0, 0) != -1 || errno != EPERM)
			_exit(7);
		for (uint64_t i = 0; i < MSGS; i++)
			if (child_recv(c, i, 0, 0))
				_exit(3);
		_exit(0);
	}
	struct shmring_producer *p;
	cr_assert_eq(shmring_producer_open(r, &p), 0);
	for (uint64_t v = 0; v < MSGS; v++) {
		cr_assert_eq(await_word(&cs->wake_armed, 1), 1,
			     "message %llu: consumer not asleep (7: seccomp filter not installed)",
			     (unsigned long long)v);
		uint32_t m = atomic_load(&cs->cmode);
		cr_assert_neq(m & ASYM_STATE, ASYM_HEAVY, "message %llu: mode %#x is ASYM_HEAVY",
			      (unsigned long long)v, m);
		cr_assert_eq(shmring_send(p, &v, sizeof(v)), 0);
	}
	int st = test_wait(pid);
	cr_assert_eq(st, 0, "consumer failed with %d (3: message lost or late, 7: no seccomp)", st);
	uint32_t m = atomic_load(&cs->cmode);
	cr_assert_eq(m & ASYM_STATE, ASYM_LIGHT, "mode %#x, want ASYM_LIGHT", m);
	cr_assert_geq(m / ASYM_GEN, MSGS, "mode %#x: want a failed arming per sleep, %d or more",
		      m, MSGS);
	mode_ring_close(&mr, p);
}
