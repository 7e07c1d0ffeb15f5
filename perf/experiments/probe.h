/* SPDX-License-Identifier: MIT */
/*
 * What the probes in this folder share: the ring's shape (a 1 MiB data
 * area, 8-byte headers, 4096-byte payloads, batches of 32), the clock,
 * pinning, the end of one run, and main()'s rounds.  Each probe defines its
 * modes' names and run(mode, src), which returns millions of messages a
 * second or -1; mode 0 is the one the others are compared with.
 */
#ifndef PROBE_H
#define PROBE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CAP (1u << 20)
#define HDR 8u
#define SIZE 4096u
#define REC (HDR + SIZE)
#define BATCH 32u
#define MSGS 1000000u

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	if (sched_setaffinity(0, sizeof(s), &s))
		perror("sched_setaffinity");
}

/* Waits for the consumer, frees a run's memory; the rate of msgs messages
 * since t0, or -1 if the consumer failed. */
static double run_done(pid_t pid, double t0, uint64_t msgs, void *data, size_t data_len,
		       void *ctl, size_t ctl_len, int fd)
{
	int st;
	waitpid(pid, &st, 0);
	double rate = (double)msgs / (now() - t0) / 1e6;
	munmap(data, data_len);
	munmap(ctl, ctl_len);
	close(fd);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? rate : -1;
}

/* The data area (CAP bytes of fd) twice back to back at a fresh address;
 * populate: filled into the page tables at once.  NULL if it fails. */
static uint8_t *map_twice(int fd, int prot, int populate)
{
	uint8_t *b = mmap(NULL, 2 * CAP, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		return NULL;
	int flags = MAP_SHARED | MAP_FIXED | (populate ? MAP_POPULATE : 0);
	for (int i = 0; i < 2; i++)
		if (mmap(b + i * CAP, CAP, prot, flags, fd, 0) == MAP_FAILED)
			return NULL;
	return b;
}

/* Spins until the tail moves from pos; returns it. */
static uint64_t wait_tail(_Atomic uint64_t *tail, uint64_t pos)
{
	uint64_t t;
	while ((t = atomic_load_explicit(tail, memory_order_acquire)) == pos)
		__builtin_ia32_pause();
	return t;
}

/* The control block of a bare ring: tail, head and a ready flag,
 * CTL_ALIGN bytes apart (a probe may define it before including this). */
#ifndef CTL_ALIGN
#define CTL_ALIGN 128
#endif
struct ctl {
	_Alignas(CTL_ALIGN) _Atomic uint64_t tail;
	_Alignas(CTL_ALIGN) _Atomic uint64_t head;
	_Alignas(CTL_ALIGN) _Atomic int ready;
};

/* A bare ring: a CAP-byte memfd mapped twice, read-write, zeroed, and a
 * shared control block.  0, or -1 if any part fails. */
static int bare_ring(const char *name, int populate, int *fd, uint8_t **data, struct ctl **c)
{
	*fd = memfd_create(name, 0);
	*c = mmap(NULL, sizeof(**c), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (*fd < 0 || ftruncate(*fd, CAP) || *c == MAP_FAILED ||
	    !(*data = map_twice(*fd, PROT_READ | PROT_WRITE, populate)))
		return -1;
	memset(*data, 0, CAP);
	return 0;
}

/* Opaque to the compiler: glibc's memcpy, as a user's. */
static void *(*volatile user_memcpy)(void *, const void *, size_t) = memcpy;

/* Writes a message: the payload copied from src, its first and last 8
 * bytes stamped with seq. */
static void put_message(uint8_t *m, const uint8_t *src, uint64_t seq)
{
	user_memcpy(m, src, SIZE);
	memcpy(m, &seq, 8);
	memcpy(m + SIZE - 8, &seq, 8);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* main(): argv[1] rounds (default 5) of every mode in turn, so that the
 * VM's placement changes (perf/RESULTS.md) hit every mode alike; prints
 * each mode's median, its ratio to mode 0's, and its range. */
static int probe_main(int argc, char **argv, int nmodes, const char *const *names,
		      double (*run)(int mode, const uint8_t *src))
{
	int rounds = argc > 1 ? atoi(argv[1]) : 5;
	if (rounds < 1 || rounds > 100)
		rounds = 5;
	static double v[32][100];
	uint8_t *src = aligned_alloc(4096, SIZE);
	if (!src || nmodes > 32)
		return 1;
	for (unsigned i = 0; i < SIZE; i++)
		src[i] = (uint8_t)(i * 131 + 7);
	for (int r = 0; r < rounds; r++)
		for (int m = 0; m < nmodes; m++)
			if ((v[m][r] = run(m, src)) < 0) {
				fprintf(stderr, "%s: failed\n", names[m]);
				free(src);
				return 1;
			}
	printf("%u B, batch 32, medians of %d rounds (M msg/s; ratio to %s)\n", (unsigned)SIZE,
	       rounds, names[0]);
	double base = 0;
	for (int m = 0; m < nmodes; m++) {
		qsort(v[m], (size_t)rounds, sizeof(double), cmp_double);
		double med = v[m][rounds / 2];
		if (m == 0)
			base = med;
		printf("  %-12s %6.2f  %.2fx  (%.2f-%.2f)\n", names[m], med, med / base, v[m][0],
		       v[m][rounds - 1]);
	}
	free(src);
	return 0;
}

#endif
