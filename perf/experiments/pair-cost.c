/* SPDX-License-Identifier: MIT */
/*
 * pair-cost: what one shmring_send() and shmring_recv() of 8 bytes cost in
 * one thread, on cpu 0 and then on cpu 1, against a loop of dependent
 * multiplications that touches no memory.  Run between round-trip probes,
 * it tells the VM's states apart: in some minutes one vCPU runs the pair
 * at twice its usual cost while the multiplications keep their speed
 * (perf/RESULTS.md, change 28).
 *
 *   make && cc -O2 -Wall -Wextra -Iinclude -o pair-cost \
 *       perf/experiments/pair-cost.c build/libshmring.a
 *   ./pair-cost
 *
 * Prints, per cpu, ns per pair ("sr") and ns per multiplication ("alu").
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "shmring.h"

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int main(void)
{
	for (int cpu = 0; cpu < 2; cpu++) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			return 1;
		struct shmring_opts o = {.size = sizeof(o), .capacity = 64 << 10, .max_consumers = 4};
		struct shmring *r;
		struct shmring_producer *p;
		struct shmring_consumer *c;
		if (shmring_create_anon("pair-cost", &o, &r) || shmring_producer_open(r, &p) ||
		    shmring_consumer_open(r, 0, &c))
			return 1;
		uint64_t v = 0, b[8];
		size_t len;
		for (int i = 0; i < 100000; i++)
			if (shmring_send(p, &v, 8) || shmring_recv(c, b, sizeof(b), &len))
				return 1;
		uint64_t t0 = now_ns();
		for (int i = 0; i < 1000000; i++) {
			v = (uint64_t)i;
			if (shmring_send(p, &v, 8) || shmring_recv(c, b, sizeof(b), &len) || b[0] != v)
				return 1;
		}
		uint64_t t1 = now_ns();
		volatile uint64_t x = 1;
		uint64_t t2 = now_ns();
		for (int i = 0; i < 20000000; i++)
			x = x * 3 + 1;
		uint64_t t3 = now_ns();
		printf("cpu%d sr %.1f alu %.2f ", cpu, (double)(t1 - t0) / 1e6, (double)(t3 - t2) / 2e7);
		shmring_consumer_close(c);
		shmring_producer_close(p);
		shmring_close(r);
	}
	printf("\n");
	return 0;
}
