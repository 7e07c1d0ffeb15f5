/* SPDX-License-Identifier: MIT */
/*
 * rtt-probe: what a polling round trip of 8-byte messages costs across two
 * CPUs with no library in the way, by how the reader learns that a message
 * is there.  Two processes, pinned to cpus 0 and 1, ping-pong over two
 * one-way channels in shared memory, in alternating rounds of five modes:
 *
 *   line       the floor: each way one word on its own line, written by
 *              the sender, polled by the receiver (the harness's cacheline)
 *   tail+rec   each way a ring of 16-byte records (8-byte header, 8-byte
 *              payload) in 64 KiB, a tail and a head on lines of their own:
 *              the sender writes the record, then the tail (release); the
 *              receiver polls the tail, reads the record, stores the head
 *              (libshmring's readers, ck_ring and rte_ring work so)
 *   tail+pf    tail+rec, the receiver also prefetching its next record's
 *              line at every empty poll
 *   tail+ld    tail+rec, the receiver also loading that line's header at
 *              every empty poll
 *   rec        the same ring without a tail: the sender writes the payload,
 *              then the header (release) holding the message's sequence
 *              number + 1; the receiver polls the header of its next record,
 *              reads the payload, stores the head
 *   rec+tail   rec, and the sender also stores the tail after the header
 *              (nobody reads it)
 *   rec-head   rec without the head stores
 *   like-lib   tail+rec with what libshmring adds around it: the sender
 *              stores a message count beside the tail, then loads four
 *              words of a line that nobody writes (the sleepers' flags);
 *              the receiver loads a second line (`closed`) at every empty
 *              poll and the clock at every 256th, and loads the flags
 *              after storing its head
 *   like-ro    like-lib with the receiver's view of the records and of the
 *              sender's page (tail, count, closed, flags) read-only
 *              (mprotect()), as libshmring's consumers see them
 *   shmring    libshmring: two anonymous rings of 64 KiB (the harness's),
 *              shmring_send() and shmring_recv() polled (the harness's loop)
 *   shm-peek   the same with shmring_peek() and shmring_release() instead
 *              of shmring_recv()
 *   shm-resv   the same with shmring_reserve() and shmring_commit() instead
 *              of shmring_send()
 *   shm-wait   the same with shmring_recv_wait() (the library's own spin)
 *              instead of shmring_recv() polled
 *   line-p, tail-p, shm-p, rec-p, tailpf-p, tailld-p
 *              line, tail+rec, shmring, rec, tail+pf and tail+ld polled
 *              with NPAUSE pauses
 *              (environment, default 4) between polls instead of one
 *
 *   make && cc -O2 -Wall -Wextra -Iinclude -o rtt-probe \
 *       perf/experiments/rtt-probe.c build/libshmring.a
 *   [NPAUSE=n] [MODES=line-p,shm-wait,...] ./rtt-probe [rounds] [round trips per run]
 *
 * Prints, per mode, the median over the rounds of each run's median round
 * trip (ns), and its ratio to the line's.  perf/RESULTS.md, "Not done yet".
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmring.h"

#define NREC 4096u /* 16-byte records: 64 KiB a way */

struct rec {
	_Atomic uint64_t hdr;
	uint64_t payload;
};

struct way {
	_Atomic uint64_t tail __attribute__((aligned(128)));
	_Atomic uint64_t count;
	_Atomic uint64_t closed __attribute__((aligned(128)));
	_Atomic uint32_t flags[4] __attribute__((aligned(128)));
	_Atomic uint64_t word __attribute__((aligned(128)));
	/* The receiver's page: what it writes. */
	_Atomic uint64_t head __attribute__((aligned(4096)));
	struct rec rec[NREC] __attribute__((aligned(4096)));
};

struct shared {
	struct way w[2]; /* 0: ping (cpu 0 -> cpu 1), 1: pong */
	_Atomic int ready;
};

enum {
	M_LINE,
	M_TAILREC,
	M_TAILPF,
	M_TAILLD,
	M_REC,
	M_RECTAIL,
	M_RECNOHEAD,
	M_LIKE,
	M_LIKERO,
	M_SHMRING,
	M_SHMPEEK,
	M_SHMRESV,
	M_SHMWAIT,
	M_LINEP,
	M_TAILP,
	M_SHMP,
	M_RECP,
	M_TAILPFP,
	M_TAILLDP,
	NMODES
};
static const char *const names[NMODES] = {"line",    "tail+rec", "tail+pf", "tail+ld", "rec",      "rec+tail",
					  "rec-head", "like-lib", "like-ro", "shmring",
					  "shm-peek", "shm-resv", "shm-wait", "line-p", "tail-p", "shm-p", "rec-p", "tailpf-p", "tailld-p"};
#define LIB(m) (((m) >= M_SHMRING && (m) <= M_SHMWAIT) || (m) == M_SHMP)
static volatile uint32_t g_sink; /* keeps the emulated loads */
static unsigned g_polls;
static int g_npause = 4, g_np = 1;
static struct shmring *g_ring[2];
static struct shmring_producer *g_prod;
static struct shmring_consumer *g_cons;

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static inline void relaxn(void)
{
	for (int i = 0; i < g_np; i++)
		relax();
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The timed loop reads the TSC where there is one (converted with the
 * run's own CLOCK_MONOTONIC span), else the clock. */
static inline uint64_t ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __builtin_ia32_rdtsc();
#else
	return now_ns();
#endif
}

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	if (sched_setaffinity(0, sizeof(s), &s)) {
		perror("sched_setaffinity");
		exit(2);
	}
}

/* The -p modes: their base mode, polled with g_npause pauses (g_np). */
static int base_mode(int mode)
{
	static const int paced[][2] = {{M_LINEP, M_LINE},     {M_TAILP, M_TAILREC},
				       {M_SHMP, M_SHMRING},   {M_RECP, M_REC},
				       {M_TAILPFP, M_TAILPF}, {M_TAILLDP, M_TAILLD}};
	g_np = 1;
	for (size_t i = 0; i < sizeof(paced) / sizeof(paced[0]); i++)
		if (paced[i][0] == mode) {
			g_np = g_npause;
			return paced[i][1];
		}
	return mode;
}

static void send(struct way *w, int mode, uint64_t seq)
{
	mode = base_mode(mode);
	struct rec *r = &w->rec[seq % NREC];
	switch (mode) {
	case M_SHMRING:
	case M_SHMPEEK:
	case M_SHMWAIT:
		if (shmring_send(g_prod, &seq, 8))
			exit(3);
		break;
	case M_SHMRESV: {
		void *d;
		if (shmring_reserve(g_prod, 8, &d))
			exit(3);
		memcpy(d, &seq, 8);
		if (shmring_commit(g_prod) != 1)
			exit(3);
		break;
	}
	case M_LINE:
		atomic_store_explicit(&w->word, seq + 1, memory_order_release);
		break;
	case M_TAILREC:
	case M_TAILPF:
	case M_TAILLD:
		r->payload = seq;
		atomic_store_explicit(&r->hdr, 8, memory_order_relaxed);
		atomic_store_explicit(&w->tail, seq + 1, memory_order_release);
		break;
	case M_LIKE:
	case M_LIKERO:
		r->payload = seq;
		atomic_store_explicit(&r->hdr, 8, memory_order_relaxed);
		atomic_store_explicit(&w->count, seq + 1, memory_order_relaxed);
		atomic_store_explicit(&w->tail, seq + 1, memory_order_release);
		atomic_signal_fence(memory_order_seq_cst);
		for (int i = 0; i < 4; i++)
			g_sink += atomic_load_explicit(&w->flags[i], memory_order_relaxed);
		break;
	case M_REC:
	case M_RECNOHEAD:
		r->payload = seq;
		atomic_store_explicit(&r->hdr, seq + 1, memory_order_release);
		break;
	case M_RECTAIL:
		r->payload = seq;
		atomic_store_explicit(&r->hdr, seq + 1, memory_order_release);
		atomic_store_explicit(&w->tail, seq + 1, memory_order_release);
		break;
	}
}

/* Waits for message seq and returns its payload. */
static uint64_t recv(struct way *w, int mode, uint64_t seq)
{
	mode = base_mode(mode);
	struct rec *r = &w->rec[seq % NREC];
	uint64_t v;
	size_t len;
	int rc;
	switch (mode) {
	case M_SHMRING:
	case M_SHMRESV:
		while ((rc = shmring_recv(g_cons, &v, 8, &len)) == -EAGAIN)
			relaxn();
		return rc || len != 8 ? UINT64_MAX : v;
	case M_SHMWAIT:
		rc = shmring_recv_wait(g_cons, &v, 8, &len, NULL);
		return rc || len != 8 ? UINT64_MAX : v;
	case M_SHMPEEK: {
		const void *d;
		while ((rc = shmring_peek(g_cons, &d, &len)) == -EAGAIN)
			relax();
		if (rc || len != 8)
			return UINT64_MAX;
		memcpy(&v, d, 8);
		return shmring_release(g_cons) == 1 ? v : UINT64_MAX;
	}
	case M_LINE:
		while (atomic_load_explicit(&w->word, memory_order_acquire) != seq + 1)
			relaxn();
		return seq;
	case M_TAILREC:
		while (atomic_load_explicit(&w->tail, memory_order_acquire) <= seq)
			relaxn();
		v = r->payload;
		atomic_store_explicit(&w->head, seq + 1, memory_order_release);
		return v;
	case M_TAILPF:
	case M_TAILLD: /* touching the record's line at every empty poll */
		while (atomic_load_explicit(&w->tail, memory_order_acquire) <= seq) {
			if (mode == M_TAILPF)
				__builtin_prefetch(r, 0, 3);
			else
				g_sink += (uint32_t)atomic_load_explicit(&r->hdr,
									 memory_order_relaxed);
			relaxn();
		}
		v = r->payload;
		atomic_store_explicit(&w->head, seq + 1, memory_order_release);
		return v;
	case M_LIKE:
	case M_LIKERO:
		while (atomic_load_explicit(&w->tail, memory_order_acquire) <= seq) {
			g_sink += (uint32_t)atomic_load_explicit(&w->closed, memory_order_acquire);
			if ((++g_polls & 255) == 1)
				g_sink += (uint32_t)now_ns();
			relax();
		}
		v = r->payload;
		atomic_store_explicit(&w->head, seq + 1, memory_order_release);
		atomic_signal_fence(memory_order_seq_cst);
		g_sink += atomic_load_explicit(&w->flags[2], memory_order_acquire);
		g_sink += atomic_load_explicit(&w->flags[1], memory_order_relaxed);
		return v;
	default:
		while (atomic_load_explicit(&r->hdr, memory_order_acquire) != seq + 1)
			relaxn();
		v = r->payload;
		if (mode != M_RECNOHEAD)
			atomic_store_explicit(&w->head, seq + 1, memory_order_release);
		return v;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* One run: the median round trip in ns, or -1. */
static double run(int mode, uint64_t n)
{
	struct shared *s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint64_t *lat = malloc(n * sizeof(*lat));
	if (s == MAP_FAILED || !lat)
		return -1;
	memset(s, 0, sizeof(*s));
	if (LIB(mode)) {
		struct shmring_opts o = {.size = sizeof(o), .capacity = 64 << 10, .max_consumers = 4};
		for (int i = 0; i < 2; i++)
			if (shmring_create_anon("rtt-probe", &o, &g_ring[i]))
				return -1;
	}
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		pin(1);
		if (LIB(mode) &&
		    (shmring_consumer_open(g_ring[0], SHMRING_START_OLDEST, &g_cons) ||
		     shmring_producer_open(g_ring[1], &g_prod)))
			_exit(4);
		if (mode == M_LIKERO && (mprotect(s->w[0].rec, sizeof(s->w[0].rec), PROT_READ) ||
					 mprotect(&s->w[0], 4096, PROT_READ)))
			_exit(5);
		atomic_store(&s->ready, 1);
		for (uint64_t i = 0; i < n; i++) {
			uint64_t v = recv(&s->w[0], mode, i);
			if (v != i)
				_exit(1);
			send(&s->w[1], mode, v);
		}
		_exit(0);
	}
	pin(0);
	if ((LIB(mode) &&
	     (shmring_producer_open(g_ring[0], &g_prod) ||
	      shmring_consumer_open(g_ring[1], SHMRING_START_OLDEST, &g_cons))) ||
	    (mode == M_LIKERO && (mprotect(s->w[1].rec, sizeof(s->w[1].rec), PROT_READ) ||
				  mprotect(&s->w[1], 4096, PROT_READ)))) {
		kill(pid, SIGKILL); /* it would spin for our first message forever */
		waitpid(pid, NULL, 0);
		return -1;
	}
	while (!atomic_load(&s->ready))
		relax();
	int bad = 0;
	uint64_t ns0 = now_ns(), t0 = ticks(), t = t0;
	for (uint64_t i = 0; i < n; i++) {
		send(&s->w[0], mode, i);
		if (recv(&s->w[1], mode, i) != i)
			bad = 1;
		uint64_t t2 = ticks();
		lat[i] = t2 - t;
		t = t2;
	}
	double per_tick = (double)(now_ns() - ns0) / (double)(ticks() - t0);
	int st;
	waitpid(pid, &st, 0);
	munmap(s, sizeof(*s));
	if (LIB(mode)) {
		shmring_producer_close(g_prod);
		shmring_consumer_close(g_cons);
		shmring_close(g_ring[0]);
		shmring_close(g_ring[1]);
	}
	if (bad || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "rtt-probe: %s: a message went wrong\n", names[mode]);
		free(lat);
		return -1;
	}
	uint64_t skip = n / 10;
	qsort(lat + skip, n - skip, sizeof(*lat), cmp_u64);
	double med = (double)lat[skip + (n - skip) / 2] * per_tick;
	free(lat);
	return med;
}

/* MODES (environment): the modes to run, by name, comma-separated; the
 * line always runs (it is the ratios' base).  Default: all. */
static int wanted(int m)
{
	const char *w = getenv("MODES");
	if (!w || m == M_LINE)
		return 1;
	size_t l = strlen(names[m]);
	for (const char *s = w; (s = strstr(s, names[m])); s += l)
		if ((s == w || s[-1] == ',') && (s[l] == 0 || s[l] == ','))
			return 1;
	return 0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (getenv("NPAUSE"))
		g_npause = atoi(getenv("NPAUSE"));
	int rounds = argc > 1 ? atoi(argv[1]) : 5;
	uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 200000;
	if (rounds < 1 || rounds > 64 || n < 100) {
		fprintf(stderr, "usage: rtt-probe [rounds 1-64] [round trips per run, >= 100]\n");
		return 2;
	}
	double v[NMODES][64];
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < NMODES; k++) {
			int m = (r + k) % NMODES;
			if (!wanted(m)) {
				v[m][r] = 0;
				continue;
			}
			v[m][r] = run(m, n);
			if (v[m][r] < 0)
				return 1;
		}
		printf("round %d:", r + 1);
		for (int m = 0; m < NMODES; m++)
			if (wanted(m))
				printf(" %s %.0f", names[m], v[m][r]);
		printf("\n");
	}
	double base = 0;
	for (int m = 0; m < NMODES; m++) {
		if (!wanted(m))
			continue;
		qsort(v[m], (size_t)rounds, sizeof(double), cmp_d);
		double med = v[m][rounds / 2];
		if (m == 0)
			base = med;
		printf("%-9s %6.0f ns  %.2fx the line\n", names[m], med, med / base);
	}
	return 0;
}
