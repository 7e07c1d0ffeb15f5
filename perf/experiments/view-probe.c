/* SPDX-License-Identifier: MIT */
/*
 * view-probe: does the consumer's view of a ring's data change the
 * producer's speed?  A bare single-producer, single-consumer byte ring (no
 * libshmring) in a memfd mapped twice back to back, 8-byte headers and
 * 4096-byte payloads (4104-byte records, as libshmring lays them out),
 * committed 32 at a time by one tail store.  The producer (CPU 0) copies
 * each payload from a source buffer and stamps its first and last 8 bytes;
 * the consumer (CPU 1) checks the header and both stamps and moves its head
 * once per batch.  Only the consumer's mapping of the data changes:
 *
 *   inherited   the producer's read-write mapping, inherited over fork()
 *   rw          its own read-write mapping, only read
 *   ro          its own read-only mapping (libshmring's consumers)
 *   rw-then-ro  its own read-write mapping, touched, then mprotect()ed
 *               read-only
 *   private     its own MAP_PRIVATE read-write mapping, only read: a
 *               writable mapping whose page-table entries are read-only
 *               (copy-on-write) as long as nothing writes through it
 *   ro+flush    ro, and the consumer flushes (clflushopt, allowed on a
 *               read-only page) each line it read once it has checked it
 *   none        the consumer reads nothing but the tail (the producer's
 *               speed with no consumer reading the data)
 *
 * The modes take turns, round after round, and each prints its median, so
 * that the VM's placement changes (perf/RESULTS.md) hit every mode alike.
 *
 *   cc -O2 -Wall -Wextra -o view-probe perf/experiments/view-probe.c
 *   ./view-probe [rounds]
 */
#define CTL_ALIGN 64 /* its control words 64 bytes apart, as it was measured */
#include "probe.h"

#include <stdatomic.h>
#include <string.h>

enum { INHERITED, RW, RO, RW_THEN_RO, PRIVATE, RO_FLUSH, NONE, NMODES };
static const char *const names[NMODES] = {"inherited", "rw",      "ro",      "rw-then-ro",
					  "private",   "ro+flush", "none"};

static void flush_line(const void *p)
{
	__asm__ volatile("clflushopt %0" : : "m"(*(const char *)p));
}

/* The data mapped twice back to back, MAP_PRIVATE, read-write. */
static uint8_t *map_twice_private(int fd)
{
	uint8_t *b = mmap(NULL, 2 * CAP, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		return NULL;
	for (int i = 0; i < 2; i++)
		if (mmap(b + i * CAP, CAP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0) ==
		    MAP_FAILED)
			return NULL;
	return b;
}

static int consume(int mode, int fd, uint8_t *data, struct ctl *c)
{
	pin(1);
	if (mode != INHERITED && mode != NONE) {
		if (mode == PRIVATE)
			data = map_twice_private(fd);
		else
			data = map_twice(fd, mode == RO || mode == RO_FLUSH ? PROT_READ
								   : PROT_READ | PROT_WRITE, 0);
		if (!data)
			return 1;
		if (mode == RW_THEN_RO) {
			const volatile uint8_t *v = data;
			for (size_t o = 0; o < 2 * CAP; o += 4096)
				(void)v[o];
			if (mprotect(data, 2 * CAP, PROT_READ))
				return 1;
		}
	}
	atomic_store(&c->ready, 1);
	uint64_t pos = 0, seq = 0;
	while (seq < MSGS) {
		uint64_t t = wait_tail(&c->tail, pos);
		for (; pos < t; pos += REC, seq++) {
			if (mode == NONE)
				continue;
			const uint8_t *r = data + (pos & (CAP - 1));
			uint64_t h, a, z;
			memcpy(&h, r, 8);
			memcpy(&a, r + HDR, 8);
			memcpy(&z, r + HDR + SIZE - 8, 8);
			if (h != SIZE || a != seq || z != seq) {
				fprintf(stderr, "message %llu: bad record\n", (unsigned long long)seq);
				return 1;
			}
			if (mode == RO_FLUSH) {
				flush_line(r);
				flush_line(r + HDR + SIZE - 8);
			}
		}
		atomic_store_explicit(&c->head, pos, memory_order_release);
	}
	return 0;
}

/* One run of MSGS messages; returns millions of messages a second, or -1. */
static double run(int mode, const uint8_t *src)
{
	int fd;
	uint8_t *data;
	struct ctl *c;
	if (bare_ring("view-probe", 0, &fd, &data, &c))
		return -1;
	pid_t pid = fork();
	if (pid == 0)
		_exit(consume(mode, fd, data, c));
	pin(0);
	while (!atomic_load(&c->ready))
		__builtin_ia32_pause();
	double t0 = now();
	uint64_t tail = 0, limit = 0;
	for (uint64_t seq = 0; seq < MSGS;) {
		uint64_t end = tail + BATCH * REC;
		while (end - limit > CAP)
			limit = atomic_load_explicit(&c->head, memory_order_acquire);
		for (unsigned k = 0; k < BATCH; k++, seq++, tail += REC) {
			uint8_t *r = data + (tail & (CAP - 1));
			uint64_t h = SIZE;
			memcpy(r, &h, 8);
			put_message(r + HDR, src, seq);
		}
		atomic_store_explicit(&c->tail, tail, memory_order_release);
	}
	return run_done(pid, t0, MSGS, data, 2 * CAP, c, sizeof(*c), fd);
}

int main(int argc, char **argv)
{
	return probe_main(argc, argv, NMODES, names, run);
}
