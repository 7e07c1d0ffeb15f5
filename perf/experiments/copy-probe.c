/* SPDX-License-Identifier: MIT */
/*
 * copy-probe: 4096 B, batch 32, copying (the consumer copies every payload
 * out), where the harness shows libshmring behind the peers' slot pools
 * (perf/RESULTS.md, "Not done yet").  Bare single-producer,
 * single-consumer rings in a 1 MiB area, next to a slot pool like the
 * harness's and libshmring itself, in alternating rounds.  The producer
 * (CPU 0) copies each payload from a source buffer with glibc's memcpy and
 * stamps its first and last 8 bytes; the consumer (CPU 1) copies it into
 * a batch-sized buffer (the pool: into one 4 KiB buffer, as the harness's
 * does) and checks both stamps.  The modes:
 *
 *   ring4104   records of an 8-byte header and the payload, back to back,
 *              a record that would cross the end moved to the next lap
 *              (libshmring's layout 5); a memfd mapped twice, the consumer
 *              in its own read-only view, tail and head on their own lines
 *   ring4160   the same with records rounded up to 64 bytes (payloads 8
 *              bytes into a line, records never share a line)
 *   slots4096  the same with no header: 4096-byte payloads at 4096-byte
 *              strides, each exactly one page
 *   anon4096   slots4096 in one anonymous shared mapping that the
 *              consumer inherits, as the harness's pools are mapped
 *   ckpool     the harness's pool: 256 slots of 4096 bytes, their indexes
 *              passed through two ck_ring SPSC rings (full and free)
 *   library    libshmring: shmring_reserve_array_wait() for 32 records,
 *              each copied and stamped, shmring_commit(); the consumer
 *              takes shmring_recv_batch_wait() of up to 32
 *
 *   make && cc -O2 -Wall -Wextra -Iinclude -o copy-probe \
 *       perf/experiments/copy-probe.c build/libshmring.a
 *   ./copy-probe [rounds]
 *
 * Needs Concurrency Kit's header (libck-dev, which `make perf-deps`
 * installs).
 */
#include "probe.h"
#include "probe-lib.h"

#include <ck_ring.h>
#include <string.h>

enum { RING4104, RING4160, SLOTS4096, ANON4096, CKPOOL, LIBRARY, NMODES };
static const char *const names[NMODES] = {"ring4104", "ring4160", "slots4096",
					  "anon4096", "ckpool",   "library"};

static uint64_t stride(int mode)
{
	return mode == RING4104 ? REC : mode == RING4160 ? (REC + 63) & ~63u : SIZE;
}

static uint64_t header(int mode)
{
	return mode == RING4104 || mode == RING4160 ? HDR : 0;
}

/* The position of the record after one at pos: both sides agree. */
static uint64_t next_pos(int mode, uint64_t pos)
{
	pos += stride(mode);
	if (CAP - (pos & (CAP - 1)) < stride(mode))
		pos += CAP - (pos & (CAP - 1));
	return pos;
}

/* Checks a copied message's stamps. */
static int check(const uint8_t *m, uint64_t seq)
{
	uint64_t a, z;
	memcpy(&a, m, 8);
	memcpy(&z, m + SIZE - 8, 8);
	if (a == seq && z == seq)
		return 0;
	fprintf(stderr, "message %llu: bad stamps\n", (unsigned long long)seq);
	return -1;
}

static int consume(int mode, const uint8_t *data, struct ctl *c)
{
	pin(1);
	uint8_t *buf = aligned_alloc(4096, BATCH * SIZE);
	if (!buf)
		return 1;
	atomic_store(&c->ready, 1);
	uint64_t pos = 0, seq = 0;
	while (seq < MSGS) {
		uint64_t t = wait_tail(&c->tail, pos);
		for (unsigned k = 0; pos != t; k++, seq++, pos = next_pos(mode, pos)) {
			uint8_t *d = buf + (size_t)(k % BATCH) * SIZE;
			user_memcpy(d, data + (pos & (CAP - 1)) + header(mode), SIZE);
			if (check(d, seq))
				return 1;
		}
		atomic_store_explicit(&c->head, pos, memory_order_release);
	}
	return 0;
}

static double ring_run(int mode, const uint8_t *src)
{
	int fd;
	uint8_t *data;
	struct ctl *c;
	if (bare_ring("copy-probe", 1, &fd, &data, &c))
		return -1;
	if (mode == ANON4096) {
		/* The memfd stays unused (run_done() closes it). */
		munmap(data, 2 * CAP);
		data = mmap(NULL, 2 * CAP, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (data == MAP_FAILED)
			return -1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		const uint8_t *view = mode == ANON4096 ? data : map_twice(fd, PROT_READ, 1);
		_exit(view ? consume(mode, view, c) : 1);
	}
	pin(0);
	while (!atomic_load(&c->ready))
		__builtin_ia32_pause();
	double t0 = now();
	uint64_t tail = 0, limit = 0;
	for (uint64_t seq = 0; seq < MSGS;) {
		/* Room for a batch, whatever the gap it may skip. */
		uint64_t end = tail + (BATCH + 1) * stride(mode);
		while (end - limit > CAP)
			limit = atomic_load_explicit(&c->head, memory_order_acquire);
		for (unsigned k = 0; k < BATCH; k++, seq++, tail = next_pos(mode, tail)) {
			uint8_t *r = data + (tail & (CAP - 1));
			uint64_t h = SIZE;
			if (header(mode))
				memcpy(r, &h, 8);
			put_message(r + header(mode), src, seq);
		}
		atomic_store_explicit(&c->tail, tail, memory_order_release);
	}
	return run_done(pid, t0, MSGS, data, 2 * CAP, c, sizeof(*c), fd);
}

/* ---- the harness's slot pool (perf/m_slots.c) over ck_ring ------------- */

#define SLOTS (CAP / SIZE)

struct ckq {
	struct ck_ring r;
	ck_ring_buffer_t buf[2 * SLOTS];
};

static void qput(struct ckq *q, const uint32_t *v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		while (!ck_ring_enqueue_spsc(&q->r, q->buf, (void *)(uintptr_t)v[i]))
			__builtin_ia32_pause();
}

/* At least one, at most n. */
static unsigned qtake(struct ckq *q, uint32_t *v, unsigned n)
{
	for (;;) {
		unsigned k = 0;
		void *x;
		while (k < n && ck_ring_dequeue_spsc(&q->r, q->buf, &x))
			v[k++] = (uint32_t)(uintptr_t)x;
		if (k)
			return k;
		__builtin_ia32_pause();
	}
}

struct pool {
	_Alignas(128) struct ckq full;
	_Alignas(128) struct ckq free;
	_Alignas(128) _Atomic int ready;
	_Alignas(4096) uint8_t slots[SLOTS][SIZE];
};

static double pool_run(const uint8_t *src)
{
	struct pool *pl = mmap(NULL, sizeof(*pl), PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (pl == MAP_FAILED)
		return -1;
	ck_ring_init(&pl->full.r, 2 * SLOTS);
	ck_ring_init(&pl->free.r, 2 * SLOTS);
	for (uint32_t i = 0; i < SLOTS; i++)
		ck_ring_enqueue_spsc(&pl->free.r, pl->free.buf, (void *)(uintptr_t)(i + 1));
	uint32_t v[BATCH];
	pid_t pid = fork();
	if (pid == 0) {
		pin(1);
		uint8_t *buf = aligned_alloc(4096, SIZE);
		if (!buf)
			_exit(1);
		atomic_store(&pl->ready, 1);
		for (uint64_t seq = 0; seq < MSGS;) {
			unsigned k = qtake(&pl->full, v, BATCH);
			for (unsigned j = 0; j < k; j++, seq++) {
				user_memcpy(buf, pl->slots[v[j] - 1], SIZE);
				if (check(buf, seq))
					_exit(1);
			}
			qput(&pl->free, v, k);
		}
		_exit(0);
	}
	pin(0);
	while (!atomic_load(&pl->ready))
		__builtin_ia32_pause();
	double t0 = now();
	for (uint64_t seq = 0; seq < MSGS;) {
		for (unsigned got = 0; got < BATCH;)
			got += qtake(&pl->free, v + got, BATCH - got);
		for (unsigned j = 0; j < BATCH; j++, seq++) {
			put_message(pl->slots[v[j] - 1], src, seq);
		}
		qput(&pl->full, v, BATCH);
	}
	int st;
	waitpid(pid, &st, 0);
	double rate = (double)MSGS / (now() - t0) / 1e6;
	munmap(pl, sizeof(*pl));
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? rate : -1;
}

/* ---- libshmring's consumer, for lib_run() (probe-lib.h) ---------------- */

static int lib_consume(struct shmring *r, _Atomic int *ready)
{
	pin(1);
	struct shmring_consumer *c;
	struct shmring_msg m[BATCH];
	size_t buflen = BATCH * SIZE;
	uint8_t *buf = aligned_alloc(4096, buflen);
	if (!buf || shmring_consumer_open(r, SHMRING_START_OLDEST, &c))
		return 1;
	atomic_store(ready, 1);
	for (uint64_t seq = 0; seq < MSGS;) {
		int n = shmring_recv_batch_wait(c, buf, buflen, m, BATCH, NULL);
		if (n < 0) {
			fprintf(stderr, "shmring_recv_batch_wait: %s\n", shmring_strerror(n));
			return 1;
		}
		for (int i = 0; i < n; i++, seq++)
			if (m[i].len != SIZE || check(m[i].data, seq))
				return 1;
	}
	return shmring_consumer_close(c) ? 1 : 0;
}

static double run(int mode, const uint8_t *src)
{
	if (mode == CKPOOL)
		return pool_run(src);
	if (mode == LIBRARY)
		return lib_run(src, lib_consume);
	return ring_run(mode, src);
}

int main(int argc, char **argv)
{
	return probe_main(argc, argv, NMODES, names, run);
}
