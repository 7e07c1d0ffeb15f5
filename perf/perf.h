/* SPDX-License-Identifier: MIT */
/*
 * The performance harness: what every mechanism (libshmring and each
 * baseline) implements, and the helpers they share.
 *
 * A case runs in forked processes pinned to two cores: role 0 (producer,
 * or the pinging side) on cpu A, roles 1.. (consumers, or the ponging side)
 * on cpu B.  Everything the processes share lives in one MAP_SHARED page set
 * made before fork (struct bench) plus what the mechanism's setup() maps.
 */
#ifndef SHMRING_PERF_H
#define SHMRING_PERF_H

#define _GNU_SOURCE
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* What a case measures. */
enum kind {
	K_TPUT,  /* one producer sends n messages, consumers receive them */
	K_RTT,   /* ping-pong: role 0 sends, role 1 echoes, iters round trips */
	K_WAKE,  /* role 1 sleeps; role 0 wakes it: one-way wake latency */
	K_MEMCPY,/* role 0 alone: memcpy bandwidth */
	K_STALL  /* bare spinning pair for n ns: how often the stream stalls */
};

/* Capabilities of a mechanism (struct mech.caps). */
enum {
	C_TPUT = 1 << 0,       /* throughput, copying */
	C_ZC = 1 << 1,         /* throughput, zero-copy */
	C_BATCH = 1 << 2,      /* throughput with batch > 1 */
	C_RTT_SPIN = 1 << 3,   /* ping-pong with polling sides */
	C_RTT_SLEEP = 1 << 4,  /* ping-pong with sleeping sides */
	C_WAKE = 1 << 5,       /* one-way wake of a sleeping consumer */
	C_FANOUT = 1 << 6,     /* broadcast to several consumers */
	C_GROUP = 1 << 7,      /* work sharing among several consumers */
	C_THREADS = 1 << 8,    /* roles are threads of one process */
	C_MEMCPY = 1 << 9,
	C_FLOOR = 1 << 10,     /* a floor, not a peer: no system-call case */
};

/* Log-bucketed histogram of TSC ticks: 32 linear sub-buckets per power of
 * two (relative error below 1/32), one add is a bit scan and an increment.
 * Timed loops do not add to it: they record with sample_add() (below). */
#define HIST_SUB_BITS 5
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (64u * HIST_SUB)
struct hist {
	uint64_t n, max, min;
	uint32_t b[HIST_BUCKETS];
};

static inline unsigned hist_index(uint64_t v)
{
	if (v < HIST_SUB)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	return (e - HIST_SUB_BITS + 1) * HIST_SUB +
	       (unsigned)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

static inline void hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	if (__builtin_expect(v > h->max, 0))
		h->max = v;
}
/*
 * Latency samples are recorded raw during the timed loop: one store into a
 * buffer mapped and touched before the start (sample_add), and bucketed
 * into the case's histogram after the loop (samples_flush, called by the
 * harness when a role returns).  The buffer is per thread.
 */
struct samples {
	uint64_t *v;
	uint64_t n, cap;
	size_t len;
};
extern _Thread_local struct samples g_samples;
static inline void sample_add(uint64_t v)
{
	struct samples *s = &g_samples;
	if (__builtin_expect(s->n < s->cap, 1))
		s->v[s->n++] = v;
}
/* Room for cap samples (at most 64 Mi), touched; 0 or -1. */
int samples_prepare(uint64_t cap);
/* Adds the recorded samples to h and frees the buffer. */
void samples_flush(struct hist *h);

/* Counts the samples (n) and finds the least bucket (min) after adding. */
void hist_finish(struct hist *h);

void hist_reset(struct hist *h);
void hist_merge(struct hist *to, const struct hist *from);
/* The value (ticks) below which a fraction q of samples lie (bucket middle). */
double hist_quantile(const struct hist *h, double q);
/* The smallest value of bucket i and its width (ticks). */
void bucket_range(unsigned i, double *lo, double *width);

/* Parameters of one case. */
struct params {
	enum kind kind;
	size_t size;        /* payload bytes */
	unsigned batch;     /* messages per commit / system call */
	int zc;             /* zero-copy (1) or copying (0) */
	int sleep;          /* K_RTT: sides sleep (1) or poll (0) */
	unsigned consumers; /* K_TPUT: consumer processes */
	int group;          /* consumers share the work (1) or each see all (0) */
	uint64_t n;         /* K_TPUT: messages; K_RTT/K_WAKE: round trips */
	uint64_t depth;     /* messages the mechanism holds (0: its default) */
	uint64_t ring_bytes;/* libshmring capacity for this case */
	int count_syscalls; /* count system calls in the timed loop */
	unsigned npause;    /* K_RTT polling: pauses between the polls of the
	                     * harness's own loops (0 counts as 1); main.c sets
	                     * the count that gave the fastest bare cache line */
};

#define MAX_ROLES 17
#define ERRMSG 256

/* Shared by the processes of one case (MAP_SHARED, made before fork). */
struct bench {
	struct params p;
	_Atomic uint32_t ready;   /* roles ready to start */
	_Atomic uint32_t go;      /* futex word: 1 = start */
	_Atomic uint32_t failed;  /* an error was recorded */
	_Atomic uint32_t attached;/* endpoints attached (mechanism's own count) */
	_Atomic uint64_t t0_ns;   /* producer started (CLOCK_MONOTONIC) */
	_Atomic uint64_t t1_ns;   /* last consumer finished */
	_Atomic uint64_t tw_ns;   /* the consumer got past the warm-up (tput_step()) */
	uint64_t tw_got;          /* its count of messages then */
	uint64_t got[MAX_ROLES];  /* messages each role received */
	int64_t syscalls[MAX_ROLES]; /* system calls in the timed loop, -1 unknown */
	/* ... in the steady part of it (loop_mark()), -1 unknown, and the
	 * messages that part covered. */
	int64_t syscalls_steady[MAX_ROLES];
	uint64_t steady_msgs[MAX_ROLES];
	uint64_t commits;         /* K_WAKE: batches committed */
	long nvcsw[MAX_ROLES];    /* voluntary context switches in the loop */
	uint64_t gaps[4];         /* K_STALL: stalls over 20 us, 200 us, 1 ms, 4 ms */
	/* K_WAKE hand-shake: the consumer's count of messages seen. */
	_Atomic uint64_t seen __attribute__((aligned(64)));
	char errmsg[ERRMSG];
	struct hist h __attribute__((aligned(64)));
};

/* A mechanism: libshmring or a baseline. */
struct mech {
	const char *name;
	const char *skip;   /* set by init() when unavailable: why */
	const char *note;   /* what is not measured and why (printed once) */
	unsigned caps;
	/* Once, before any case; may set skip.  NULL: nothing to do. */
	void (*init)(struct mech *m);
	/* Once, after the last case (stop daemons). */
	void (*fini)(struct mech *m);
	/* Describes the depth used for these parameters. */
	void (*depth)(const struct params *p, char *buf, size_t len);
	/* In the parent before fork: make the shared objects. */
	int (*setup)(struct bench *b, void **priv);
	/* In each child, pinned: play `role`.  0 on success. */
	int (*child)(struct bench *b, void *priv, int role);
	/* In the parent after the children ended. */
	void (*teardown)(struct bench *b, void *priv);
};

extern struct mech mech_shmring, mech_shmring_poll, mech_cacheline, mech_futex, mech_memcpy, mech_bare,
	mech_bare_ro, mech_pipe, mech_socketpair, mech_mq, mech_ck, mech_rte, mech_iox, mech_urcu,
	mech_ck_bcast, mech_ck_group;

/* ---- helpers (util.c) ---- */

/* Records the first error of a case (any process); returns -1. */
int fail(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Zeroed MAP_SHARED anonymous memory, or NULL. */
void *shm_zalloc(size_t len);
void shm_free(void *p, size_t len);
uint64_t pf_now_ns(void);
/* TSC ticks (or ns where there is no TSC) and their rate. */
static inline uint64_t ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __builtin_ia32_rdtsc();
#else
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}
extern double g_ticks_per_ns;
static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}
/* Between two empty polls of a loop the harness writes (the floor, the
 * peers' consumers): p->npause pauses, at least one. */
static inline void poll_relax(const struct params *p)
{
	unsigned n = p->npause ? p->npause : 1;
	for (unsigned i = 0; i < n; i++)
		relax();
}
/* Busy-waits ns nanoseconds without a system call. */
void pf_spin_ns(uint64_t ns);

/* Futex on a shared word (not private: between processes). */
void pf_futex_wait(_Atomic uint32_t *w, uint32_t val);
void pf_futex_wake(_Atomic uint32_t *w, int n);

/* Message stamps: the first and last 8 bytes of a payload (size >= 8)
 * carry its sequence number; the rest is left as the source buffer had it. */
static inline void stamp(void *p, size_t size, uint64_t seq)
{
	__builtin_memcpy(p, &seq, 8);
	if (size >= 16)
		__builtin_memcpy((char *)p + size - 8, &seq, 8);
}
/* Returns the message's sequence number, or UINT64_MAX if the stamps differ. */
static inline uint64_t unstamp(const void *p, size_t size)
{
	uint64_t a, z;
	__builtin_memcpy(&a, p, 8);
	if (size < 16)
		return a;
	__builtin_memcpy(&z, (const char *)p + size - 8, 8);
	return a == z ? a : UINT64_MAX;
}

/* Starting and ending the timed part of a role (counts system calls and
 * context switches when the case asks). */
struct loopmark {
	int fd;
	long nvcsw;
	int64_t mark[2];        /* counter at the steady window's ends, -1 */
	uint64_t lo, hi;        /* the window, in messages: [n/8, n - n/8) */
};
void loop_begin(struct bench *b, struct loopmark *m);
void loop_end(struct bench *b, struct loopmark *m, int role);
/* A role that counts system calls calls this with its count of messages
 * sent or received, after each step: it reads the counter as the count
 * enters the steady window (the first eighth of the loop left out: the
 * endpoint's start, its adaptive spin still short) and as it leaves it (the
 * last eighth: closing, the other side's end). */
void loop_mark(struct loopmark *m, int which);
static inline void loop_step(struct loopmark *m, uint64_t done)
{
	if (__builtin_expect(m->fd >= 0, 0)) {
		if (m->mark[0] < 0 && done >= m->lo)
			loop_mark(m, 0);
		else if (m->mark[1] < 0 && done >= m->hi)
			loop_mark(m, 1);
	}
}
/* Whether system calls can be counted here (raw_syscalls tracepoint). */
int syscalls_countable(void);
/* Keeps the tracepoint registered while counting cases run (-1 if not). */
int syscalls_hold(void);
void syscalls_release(int fd);

/* Producer/ponger side helpers for K_TPUT: the producer calls this when it
 * starts; a consumer calls tput_done() after its last message. */
void tput_start(struct bench *b);
void tput_done(struct bench *b, int role, uint64_t got);

/*
 * The rate of a single-consumer throughput case is taken after a warm-up:
 * the first eighth of its messages.  Until then each process touches
 * memory for the first time, which costs a page fault per page (libshmring
 * fills its page tables at open, the peers' slot pools do not) and, on the
 * project's VMs, more even where the page tables are filled: 0.3 s
 * repetitions at 65536 B ran at a quarter (ck_ring) and a half
 * (libshmring) of the rate after the warm-up (perf/RESULTS.md, change 19).
 * The consumer (for memcpy, its one process) calls tput_step() with the
 * count of messages it has so far; the rate is then the messages after
 * that count over the time after it: (n - tw_got) / (t1 - tw_ns).
 */
struct tputmark {
	uint64_t warm;
	int done;
};
static inline void tput_warm_init(const struct bench *b, struct tputmark *m)
{
	m->warm = b->p.n / 8;
	m->done = 0;
}
static inline void tput_step(struct bench *b, struct tputmark *m, uint64_t got)
{
	if (__builtin_expect(!m->done && got >= m->warm, 0)) {
		b->tw_got = got;
		atomic_store(&b->tw_ns, pf_now_ns());
		m->done = 1;
	}
}

/* A role says it has attached; another waits until n roles have. */
void attached(struct bench *b);
int wait_attached(struct bench *b, uint32_t n);

/* Samples to leave out at the start of a latency loop (warm-up). */
static inline uint64_t warm_skip(uint64_t iters)
{
	return iters / 10 < 100 ? iters / 10 : 100;
}

/* A page-aligned source payload with a pattern, one per process. */
void *source_buf(size_t size);

/* Runs a program in the background (for daemons); returns its pid or -1. */
int spawn_daemon(const char *const argv[], const char *log);

#endif
