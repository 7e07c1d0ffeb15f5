/* SPDX-License-Identifier: MIT */
/*
 * The adaptive spin's rule (spin_adapt(), src/wait.c), step by step: the
 * spin after a sleep, from the spin before it, the waits that spinning won
 * since the previous sleep, how long the sleep lasted, and how many of the
 * ring's endpoints share the CPUs.  The waits themselves depend on timing;
 * the rule does not, so it is tested here directly, on a real ring with
 * real endpoints attached.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <sched.h>
#include <unistd.h>

#include "common.h"
#include "internal.h"

#define US 1000u
#define MS 1000000u

/* The spin after one sleep of `slept` ns, after `moved` messages since the
 * sleep before. */
static uint64_t after_moving(struct shmring *r, uint64_t spin, uint32_t streak, uint32_t ncpu,
			     uint64_t slept, uint64_t moved)
{
	struct spin_state sp = {.ns = spin, .streak = streak, .ncpu = ncpu, .moved = 1000};
	spin_adapt(r, &sp, slept, 1000 + moved);
	cr_assert_eq(sp.streak, 0, "the streak starts again after a sleep");
	cr_assert_eq(sp.moved, 1000 + moved, "the count is kept for the next sleep");
	return sp.ns;
}

/* The same, for an endpoint that moved one message since its last sleep. */
static uint64_t after(struct shmring *r, uint64_t spin, uint32_t streak, uint32_t ncpu,
		      uint64_t slept)
{
	return after_moving(r, spin, streak, ncpu, slept, 1);
}

Test(spin, a_run_of_spin_won_waits_grows_the_spin_to_cover_the_wait)
{
	struct shmring *r;
	cr_assert_eq(shmring_create_anon("spin", NULL, &r), 0);
	/* The wait lasted 20 + 100 us: the next spin covers twice that. */
	cr_assert_eq(after(r, 20 * US, SPIN_STREAK, 1, 100 * US), 240 * US);
	/* Up to the cap. */
	cr_assert_eq(after(r, 3 * MS, SPIN_STREAK, 1, 1 * MS), SPIN_MAX_NS);
	cr_assert_eq(SPIN_MAX_NS, 4 * MS);
	/* A sleep longer than any spin: it stays. */
	cr_assert_eq(after(r, 500 * US, SPIN_STREAK, 1, 10 * MS), 500 * US);
	cr_assert_eq(after(r, 4 * MS, 0, 1, 16 * MS), 4 * MS);
	cr_assert_eq(after(r, 4 * MS, 0, 1, 17 * MS), 2 * MS);
	/* One spin-won wait short of the run: it halves, not below 20 us. */
	cr_assert_eq(after(r, 400 * US, SPIN_STREAK - 1, 1, 10 * MS), 200 * US);
	cr_assert_eq(after(r, 30 * US, SPIN_STREAK - 1, 1, 10 * MS), DEFAULT_SPIN_NS);
	cr_assert_eq(DEFAULT_SPIN_NS, 20 * US);
	cr_assert_eq(shmring_close(r), 0);
}

Test(spin, a_peer_briefly_held_up_grows_the_spin_while_endpoints_fit_the_cpus)
{
	struct shmring *r;
	cr_assert_eq(shmring_create_anon("spin", NULL, &r), 0);
	/* The producer alone: 1 endpoint.  One wait since the last sleep
	 * ended while spinning, and this sleep lasted 50 us after a 20 us
	 * spin: twice the whole wait. */
	cr_assert_eq(after(r, 20 * US, 1, 1, 50 * US), 140 * US);
	/* Longer than SPIN_NEAR times the spin: a pause, not a stall. */
	cr_assert_eq(after(r, 20 * US, 1, 64, 81 * US), 20 * US);
	cr_assert_eq(after(r, 100 * US, 3, 64, 400 * US), 1000 * US);
	cr_assert_eq(after(r, 100 * US, 3, 64, 401 * US), 50 * US);
	/* No spin-won wait at all since the last sleep (say, the peer shares
	 * this CPU, and runs only once this side sleeps): it stays. */
	cr_assert_eq(after(r, 20 * US, 0, 64, 30 * US), 20 * US);
	cr_assert_eq(after(r, 300 * US, 0, 64, 30 * US), 300 * US);

	/* Two consumers, and a group of two members: the group's own cursor
	 * is not an endpoint, so 1 + 2 + 2 = 5. */
	struct shmring_consumer *c[4];
	cr_assert_eq(shmring_consumer_open(r, 0, &c[0]), 0);
	cr_assert_eq(shmring_consumer_open(r, 0, &c[1]), 0);
	cr_assert_eq(shmring_group_open(r, "g", 0, &c[2]), 0);
	cr_assert_eq(shmring_group_open(r, "g", 0, &c[3]), 0);
	cr_assert_eq(after(r, 20 * US, 1, 5, 50 * US), 140 * US);
	cr_assert_eq(after(r, 20 * US, 1, 4, 50 * US), 20 * US,
		     "five endpoints on four CPUs: a spinner keeps a peer off a CPU");
	cr_assert_eq(after(r, 200 * US, 1, 4, 50 * US), 100 * US);
	/* Even after a run of spin-won waits. */
	cr_assert_eq(after(r, 400 * US, SPIN_STREAK, 4, 50 * US), 200 * US);
	cr_assert_eq(after(r, 400 * US, SPIN_STREAK, 5, 50 * US), 900 * US);
	/* Closed endpoints no longer count. */
	shmring_consumer_close(c[3]);
	shmring_consumer_close(c[1]);
	cr_assert_eq(after(r, 20 * US, 1, 3, 50 * US), 140 * US);
	cr_assert_eq(after(r, 20 * US, 1, 2, 50 * US), 20 * US);
	shmring_consumer_close(c[2]);
	shmring_consumer_close(c[0]);
	cr_assert_eq(shmring_close(r), 0);
}

Test(spin, a_busy_endpoint_whose_peer_stopped_grows_the_spin)
{
	struct shmring *r;
	cr_assert_eq(shmring_create_anon("spin", NULL, &r), 0);
	/* Not one wait since the last sleep, but SPIN_BUSY messages: a peer
	 * that had work for it all along stopped for 800 us (say, its vCPU
	 * was descheduled).  It waits only at such stops: the longest spin
	 * covers the next ones. */
	cr_assert_eq(SPIN_BUSY, 64);
	cr_assert_eq(after_moving(r, 20 * US, 0, 64, 800 * US, SPIN_BUSY), SPIN_MAX_NS);
	cr_assert_eq(after_moving(r, 20 * US, 0, 64, 30 * US, 100000), SPIN_MAX_NS);
	cr_assert_eq(after_moving(r, 1 * MS, 0, 64, 4 * MS, SPIN_BUSY), SPIN_MAX_NS);
	/* One message short: an endpoint that gets messages now and then
	 * (each of its waits sleeps) keeps a short spin. */
	cr_assert_eq(after_moving(r, 20 * US, 0, 64, 800 * US, SPIN_BUSY - 1), 20 * US);
	cr_assert_eq(after_moving(r, 400 * US, 0, 64, 2 * MS, 1), 200 * US);
	/* Longer than any spin: it stays. */
	cr_assert_eq(after_moving(r, 400 * US, 0, 64, 5 * MS, SPIN_BUSY), 400 * US);
	/* More endpoints than CPUs (the producer's and a consumer's, on
	 * one): never grows. */
	struct shmring_consumer *c;
	cr_assert_eq(shmring_consumer_open(r, 0, &c), 0);
	cr_assert_eq(after_moving(r, 400 * US, 0, 1, 800 * US, SPIN_BUSY), 200 * US);
	cr_assert_eq(after_moving(r, 400 * US, 0, 2, 800 * US, SPIN_BUSY), SPIN_MAX_NS);
	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_close(r), 0);
}

/* The message count that tells a busy endpoint starts at the open: a
 * producer that takes over, or a consumer of an OVERWRITE ring that starts
 * at the newest record, has moved nothing yet. */
Test(spin, the_count_of_messages_moved_starts_at_the_open)
{
	for (int ow = 0; ow < 2; ow++) {
		struct shmring_opts o = test_opts(4096, 4);
		o.policy = ow ? SHMRING_POLICY_OVERWRITE : SHMRING_POLICY_BLOCK;
		struct shmring *r;
		struct shmring_producer *p;
		struct shmring_consumer *c;
		cr_assert_eq(shmring_create_anon("spin", &o, &r), 0);
		cr_assert_eq(shmring_producer_open(r, &p), 0);
		cr_assert_eq(p->spin.moved, 0);
		for (int i = 0; i < 100; i++)
			cr_assert_eq(shmring_send(p, &i, sizeof(i)), 0);
		cr_assert_eq(shmring_producer_close(p), 0);
		cr_assert_eq(shmring_producer_open(r, &p), 0);
		cr_assert_eq(p->spin.moved, 100, "policy %d: %llu", ow,
			     (unsigned long long)p->spin.moved);
		cr_assert_eq(shmring_consumer_open(r, 0, &c), 0);
		cr_assert_eq(c->spin.moved, c->seq);
		cr_assert_eq(c->spin.moved, ow ? 100 : 0);
		cr_assert_eq(shmring_consumer_close(c), 0);
		cr_assert_eq(shmring_producer_close(p), 0);
		cr_assert_eq(shmring_close(r), 0);
	}
}

Test(spin, a_fixed_spin_does_not_adapt)
{
	struct shmring *r;
	cr_assert_eq(shmring_create_anon("spin", NULL, &r), 0);
	cr_assert_eq(shmring_set_spin(r, 300 * US), 0);
	struct spin_state sp = {.ns = 20 * US, .streak = SPIN_STREAK, .ncpu = 1};
	spin_adapt(r, &sp, 50 * US, 0);
	cr_assert_eq(sp.ns, 20 * US);
	sp = (struct spin_state){.ns = 400 * US, .streak = 0, .ncpu = 1};
	spin_adapt(r, &sp, 10 * MS, 0);
	cr_assert_eq(sp.ns, 400 * US);
	sp = (struct spin_state){.ns = 400 * US, .streak = 0, .ncpu = 1, .moved = 0};
	spin_adapt(r, &sp, 100 * US, SPIN_BUSY);
	cr_assert_eq(sp.ns, 400 * US);
	cr_assert_eq(shmring_close(r), 0);
}

/* spin_init() counts the machine's CPUs, whatever this process's
 * affinity: endpoints pinned one to a CPU each are what spinning is for. */
Test(spin, init_counts_the_cpus_online)
{
	cpu_set_t set;
	cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	struct spin_state sp;
	spin_init(&sp);
	cr_assert_eq(sp.ns, DEFAULT_SPIN_NS);
	cr_assert_eq(sp.ncpu, (uint32_t)sysconf(_SC_NPROCESSORS_ONLN));
	cpu_set_t one;
	CPU_ZERO(&one);
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &set)) {
			CPU_SET(i, &one);
			break;
		}
	cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
	spin_init(&sp);
	cr_assert_eq(sp.ncpu, (uint32_t)sysconf(_SC_NPROCESSORS_ONLN));
	cr_assert_eq(sched_setaffinity(0, sizeof(set), &set), 0);
}
