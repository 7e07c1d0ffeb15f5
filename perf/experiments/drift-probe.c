/* SPDX-License-Identifier: MIT */
/*
 * drift-probe: why a byte ring of 4104-byte records loses to a slot pool at
 * 4096 B, batch 32, zero-copy.  A bare single-producer, single-consumer
 * byte ring (no libshmring) in a 1 MiB memfd mapped twice back to back:
 * 8-byte headers, 4096-byte payloads, committed 32 at a time by one tail
 * store.  The producer (CPU 0) copies each payload from a source buffer
 * with glibc's memcpy and stamps its first and last 8 bytes; the consumer
 * (CPU 1), in its own read-only mapping filled at map time, checks the
 * header and both stamps, as the harness's zero-copy consumers do, and
 * moves its head once per batch.  The modes:
 *
 *   drift        records back to back across laps, as libshmring lays
 *                them out: 1 MiB is not a multiple of 4104 bytes, so each
 *                lap's records start 2048 bytes further on than the last's
 *   repeat       a record that would cross the end of the 1 MiB is moved
 *                to the next lap's start (the gap skipped by both sides),
 *                so that every lap puts its records where the last one did,
 *                as a slot pool does
 *   repeat+mid   repeat, and the consumer also reads one line in the
 *                middle of each payload
 *   drift+next   drift, and the producer issues prefetchw for the lines of
 *                the next record before copying each one
 *   drift+16k    drift, and the producer issues prefetchw for the first
 *                16 KiB of each batch before copying it
 *   drift+rw     drift, with a read-write consumer mapping
 *   drift+fault  drift, with a read-only consumer mapping not filled at map
 *                time (its pages fault in on the first lap)
 *   full, full+repeat, full+next
 *                drift, repeat and drift+next with a consumer that reads
 *                every 8 bytes of each payload, as a real one might
 *   library      libshmring itself, as the harness drives it: a 1 MiB memfd
 *                ring, shmring_reserve_array_wait() for 32 records, each
 *                copied and stamped, shmring_commit(); the consumer takes
 *                shmring_peek_batch_wait() of up to 32 and checks the same
 *                header length and stamps, then shmring_release()
 *
 * Each line the consumer reads stays in its cache, shared, until the
 * producer writes it again a lap later.  Where that happens inside a large
 * copy, the copy waits for the line.  With records that repeat, those lines
 * are the first and last of a record, which the copy meets at its edges.
 *
 * The modes take turns, round after round, and each prints its median, so
 * that the VM's placement changes (perf/RESULTS.md) hit every mode alike.
 *
 *   make && cc -O2 -Wall -Wextra -Iinclude -o drift-probe \
 *       perf/experiments/drift-probe.c build/libshmring.a
 *   ./drift-probe [rounds]
 */
#include "probe.h"
#include "probe-lib.h"

#include <string.h>

enum {
	DRIFT,
	REPEAT,
	REPEAT_MID,
	DRIFT_NEXT,
	DRIFT_16K,
	DRIFT_RW,
	DRIFT_FAULT,
	FULL,
	FULL_REPEAT,
	FULL_NEXT,
	LIBRARY,
	NMODES
};
static const char *const names[NMODES] = {
	"drift",    "repeat", "repeat+mid",  "drift+next", "drift+16k", "drift+rw",
	"drift+fault", "full", "full+repeat", "full+next",  "library"};

static volatile uint64_t sink; /* keeps a full reader's loop */

/* The position of the next record after one at pos: both sides agree. */
static uint64_t next_pos(int mode, uint64_t pos)
{
	pos += REC;
	if ((mode == REPEAT || mode == REPEAT_MID || mode == FULL_REPEAT) &&
	    CAP - (pos & (CAP - 1)) < REC)
		pos += CAP - (pos & (CAP - 1));
	return pos;
}

static int consume(int mode, int fd, struct ctl *c)
{
	pin(1);
	int prot = mode == DRIFT_RW ? PROT_READ | PROT_WRITE : PROT_READ;
	const uint8_t *data = map_twice(fd, prot, mode != DRIFT_FAULT);
	if (!data)
		return 1;
	atomic_store(&c->ready, 1);
	uint64_t pos = 0, seq = 0;
	while (seq < MSGS) {
		uint64_t t = wait_tail(&c->tail, pos);
		while (pos != t) {
			const uint8_t *r = data + (pos & (CAP - 1));
			uint64_t h, a, z;
			memcpy(&h, r, 8);
			memcpy(&a, r + HDR, 8);
			memcpy(&z, r + HDR + SIZE - 8, 8);
			if (mode == REPEAT_MID)
				(void)*(const volatile uint8_t *)(r + HDR + SIZE / 2);
			if (mode == FULL || mode == FULL_REPEAT || mode == FULL_NEXT) {
				uint64_t x = 0, w;
				for (unsigned o = 0; o < SIZE; o += 8) {
					memcpy(&w, r + HDR + o, 8);
					x += w;
				}
				sink = x;
			}
			if (h != SIZE || a != seq || z != seq) {
				fprintf(stderr, "message %llu: bad record\n", (unsigned long long)seq);
				return 1;
			}
			seq++;
			pos = next_pos(mode, pos);
		}
		atomic_store_explicit(&c->head, pos, memory_order_release);
	}
	return 0;
}

static void prefetch_w(const uint8_t *p, uint64_t len)
{
	for (uint64_t o = 0; o < len; o += 64)
		__asm__ volatile("prefetchw %0" : : "m"(p[o]));
}

/* libshmring's consumer (batch 32, zero-copy), for lib_run() (probe-lib.h). */
static int lib_consume(struct shmring *r, _Atomic int *ready)
{
	pin(1);
	struct shmring_consumer *c;
	struct shmring_msg m[BATCH];
	int rc = shmring_consumer_open(r, SHMRING_START_OLDEST, &c);
	if (rc) {
		fprintf(stderr, "shmring_consumer_open: %s\n", shmring_strerror(rc));
		return 1;
	}
	atomic_store(ready, 1);
	for (uint64_t seq = 0; seq < MSGS;) {
		int n = shmring_peek_batch_wait(c, m, BATCH, NULL);
		if (n < 0) {
			fprintf(stderr, "shmring_peek_batch_wait: %s\n", shmring_strerror(n));
			return 1;
		}
		for (int i = 0; i < n; i++, seq++) {
			uint64_t a, z;
			memcpy(&a, m[i].data, 8);
			memcpy(&z, (const uint8_t *)m[i].data + SIZE - 8, 8);
			if (m[i].len != SIZE || a != seq || z != seq) {
				fprintf(stderr, "message %llu: bad record\n", (unsigned long long)seq);
				return 1;
			}
		}
		if (shmring_release(c) != n)
			return 1;
	}
	rc = shmring_consumer_close(c);
	if (rc)
		fprintf(stderr, "shmring_consumer_close: %s\n", shmring_strerror(rc));
	return rc ? 1 : 0;
}

/* One run of MSGS messages; returns millions of messages a second, or -1. */
static double run(int mode, const uint8_t *src)
{
	if (mode == LIBRARY)
		return lib_run(src, lib_consume);
	int fd;
	uint8_t *data;
	struct ctl *c;
	if (bare_ring("drift-probe", 1, &fd, &data, &c))
		return -1;
	pid_t pid = fork();
	if (pid == 0)
		_exit(consume(mode, fd, c));
	pin(0);
	while (!atomic_load(&c->ready))
		__builtin_ia32_pause();
	double t0 = now();
	uint64_t tail = 0, limit = 0;
	for (uint64_t seq = 0; seq < MSGS;) {
		/* Room for a batch, whatever the gaps it skips. */
		uint64_t end = tail + BATCH * REC + REC;
		while (end - limit > CAP)
			limit = atomic_load_explicit(&c->head, memory_order_acquire);
		if (mode == DRIFT_16K)
			prefetch_w(data + (tail & (CAP - 1)), 16384);
		for (unsigned k = 0; k < BATCH; k++, seq++) {
			uint8_t *r = data + (tail & (CAP - 1));
			uint64_t h = SIZE;
			if (mode == DRIFT_NEXT || mode == FULL_NEXT)
				prefetch_w(r + REC, REC);
			memcpy(r, &h, 8);
			put_message(r + HDR, src, seq);
			tail = next_pos(mode, tail);
		}
		atomic_store_explicit(&c->tail, tail, memory_order_release);
	}
	return run_done(pid, t0, MSGS, data, 2 * CAP, c, sizeof(*c), fd);
}

int main(int argc, char **argv)
{
	return probe_main(argc, argv, NMODES, names, run);
}
