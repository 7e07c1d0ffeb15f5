/* SPDX-License-Identifier: MIT */
/*
 * Description: chaos stress harness.  One producer and N consumers on one
 * ring (broadcast consumers and two groups), BLOCK and OVERWRITE, random
 * message sizes from 0 to the ring's max_message carrying a sequence number
 * and a checksum; meanwhile consumers are SIGKILLed and restarted, stopped
 * and continued, the producer is SIGKILLed and a new one takes over, and a
 * signal storm hits every process.  Every message is checked; any violation
 * exits non-zero and says who saw what at which sequence number.
 *
 * Process mode (default): real fork(), SIGKILL, SIGSTOP, shared memory.
 * Thread mode (--threads, for TSan): threads instead of processes, one ring
 * handle shared by all, each thread its own endpoint; no kills (restarts are
 * clean close + reopen) and pauses are sleeps; BLOCK only (see README).
 *
 * Usage: stress [-s seconds] [-c consumers] [-S seed] [-C capacity]
 *               [-p block|overwrite|both] [-x chaos-list] [--threads]
 * Environment: STRESS_SECONDS, STRESS_CONSUMERS, STRESS_SEED,
 * STRESS_CAPACITY, STRESS_POLICY, STRESS_CHAOS (flags win over environment).
 * chaos-list: comma-separated subset of kill,stop,pkill,storm (default all;
 * "none" for none).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmring.h"

#define MAX_CONS 64
#define MAX_GROUPS 2
#define MAX_VIOL 64
#define PEND_MAX 1024        /* short messages buffered before an anchor */
#define BITMAP_BITS (1ull << 28) /* per group: seqs we can account for */
#define PUBT_N 8192          /* publish times kept, by seq */
#define LATE_NS 25000000ull  /* a wait that ends this long after publication */
#define BATCH_MAX 16

enum { API_RECV, API_BATCH, API_PEEK, API_N };
static const char *api_name[API_N] = { "recv", "batch", "peek" };
enum { CH_KILL = 1, CH_STOP = 2, CH_PKILL = 4, CH_STORM = 8, CH_ALL = 15 };

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define ST(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)
#define ADD(x, v) atomic_fetch_add_explicit(&(x), (v), memory_order_relaxed)
#define LDA(x) atomic_load_explicit(&(x), memory_order_acquire)
#define STR(x, v) atomic_store_explicit(&(x), (v), memory_order_release)

typedef _Atomic uint64_t au64;
typedef _Atomic uint32_t au32;

/* One consumer's statistics, written by the consumer, read by the
 * supervisor (shared memory in process mode). */
struct cstat {
	au64 received;      /* over all incarnations */
	au64 lost;          /* shmring_lost() totals (OVERWRITE) */
	au64 dups, corrupt, gaps;
	au64 last_seq;      /* last seq received + 1 (0: none) */
	au64 late;          /* waits that ended > LATE_NS after publication */
	au64 late_max_ns;   /* the latest of them, after publication */
	au64 sleeps;        /* waits that did not return at once */
	au32 in_call;       /* group: inside a receive, claims not yet marked */
	au32 pause_gen;     /* bumped by the supervisor at each stop/pause */
	au32 pause_ms;      /* thread mode: pause requested */
	au32 restart_req;   /* thread mode: reopen requested */
	au32 done;          /* finished cleanly */
	au32 incarnations;
	au32 kills;         /* SIGKILLs survived (restarts) */
	au32 inflight_allow;/* group: messages a kill may have taken */
	au32 inflight_kills;/* group: kills inside a receive */
	au64 final_attach;  /* attach seq of the last incarnation + 1 (0: unknown) */
	au64 final_recv;    /* received by the last incarnation */
	au64 final_lost;    /* lost by the last incarnation */
};

struct viol {
	int who;            /* consumer index, -1 producer, -2 supervisor */
	unsigned inc;
	uint64_t seq;
	double t;           /* seconds since the round began */
	char what[112];
};

struct harness {
	/* producer bookkeeping: committed <= tail_seq <= pend_seq always */
	au64 comm_seq, comm_pos, pend_seq, pend_pos;
	uint64_t t0;        /* when the round began (monotonic ns) */
	au32 pend_valid;
	au32 stop;          /* 1: producer finish; consumers drain */
	au32 producer_done; /* producer committed its last and closed */
	au32 prod_incarnations;
	au32 prod_restart;  /* thread mode: close and reopen requested */
	au64 total;         /* final sent count */
	au64 stall_max_ns;  /* longest reserve_wait */
	au64 sigs;          /* storm signals sent */
	au64 handled;       /* storm signals handled (process-wide counts) */
	au64 pub_seq[PUBT_N], pub_ns[PUBT_N];
	au32 nviol;
	struct viol viol[MAX_VIOL];
	struct cstat c[MAX_CONS];
	au64 gshort[MAX_GROUPS][8]; /* group: short messages (len < 8) received */
	au64 gdups[MAX_GROUPS];
};

struct cons {
	int kind;            /* 0 broadcast, 1 + g: member of group g */
	int api;
	pid_t pid;           /* process mode */
	pthread_t th;        /* thread mode */
	int up, stopped;
	uint64_t restart_at, cont_at;
};

static struct {
	double seconds;
	unsigned consumers;
	uint64_t seed;
	uint64_t capacity;  /* 0: cycle */
	int policy;         /* -1 both */
	unsigned chaos;
	int threads;
	int tty;
} cfg;

static int cfg_threads_locked(void);

/* Per-round state. */
static struct harness *H;
static au64 *gbits[MAX_GROUPS];
static struct shmring *R;
static size_t max_msg;
static int round_policy;
static uint64_t round_seed;
static unsigned ncons, ngroups;
static struct cons cons[MAX_CONS];
static pid_t prod_pid;
/* Thread mode: endpoint opens and closes on the shared ring handle are
 * serialised.  The library counts a handle's endpoints in a plain int
 * (endpoint_add() in src/ring.c), so concurrent opens race: see the report
 * (STRESS_OPEN_UNLOCKED=1 shows it under TSan). */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static int open_unlocked;

static void ep_lock(void)
{
	if (cfg_threads_locked())
		pthread_mutex_lock(&open_lock);
}

static void ep_unlock(void)
{
	if (cfg_threads_locked())
		pthread_mutex_unlock(&open_lock);
}
static pthread_t prod_th;
static int prod_up;
static uint64_t prod_restart_at;

static int cfg_threads_locked(void)
{
	return cfg.threads && !open_unlocked;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t *s)
{
	*s = mix(*s);
	return *s;
}

static void violation(int who, unsigned inc, uint64_t seq, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void violation(int who, unsigned inc, uint64_t seq, const char *fmt, ...)
{
	uint32_t i = atomic_fetch_add(&H->nviol, 1);
	if (i >= MAX_VIOL)
		return;
	struct viol *v = &H->viol[i];
	v->who = who;
	v->inc = inc;
	v->seq = seq;
	v->t = (double)(now_ns() - H->t0) / 1e9;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->what, sizeof(v->what), fmt, ap);
	va_end(ap);
}

/* ---- Messages ----------------------------------------------------------
 * The length of message seq is a function of (seed, seq): small ones
 * dominate, about 1 in 32 is shorter than 8 bytes (then it cannot carry its
 * sequence number, see the checks), a few reach max_message.  The bytes are
 * seq (8), a checksum of the body (8: the sum of its 64-bit words), then a
 * pseudo-random body from (seed, seq), truncated to the length.  A receiver
 * regenerates the whole message and compares every byte. */
static size_t msg_len(uint64_t seq)
{
	uint64_t h = mix(round_seed ^ mix(seq));
	unsigned cls = h & 31;
	uint64_t r = h >> 8, L;
	if (cls == 0)
		L = r % 8;
	else if (cls < 20)
		L = 8 + r % 57;
	else if (cls < 27)
		L = 8 + r % 505;
	else if (cls < 30)
		L = 8 + r % 4089;
	else
		L = r % (max_msg + 1);
	if (L > max_msg)
		L = 8 + r % (max_msg - 7);
	return (size_t)L;
}

static void msg_fill(uint8_t *p, size_t len, uint64_t seq)
{
	uint8_t head[16];
	uint64_t s = mix(round_seed ^ (seq * 0x2545f4914f6cdd1dull)) | 1, sum = 0;
	size_t i = 16;
	for (; i + 8 <= len; i += 8) {
		uint64_t w = rnd(&s);
		memcpy(p + i, &w, 8);
		sum += w;
	}
	if (i < len) {
		uint64_t w = rnd(&s);
		memcpy(p + i, &w, len - i);
		sum += w;
	}
	memcpy(head, &seq, 8);
	memcpy(head + 8, &sum, 8);
	memcpy(p, head, len < 16 ? len : 16);
}

/* 0 if p/len is exactly message seq; else a description. */
static const char *msg_bad(const uint8_t *p, size_t len, uint64_t seq, uint8_t *scratch)
{
	if (len != msg_len(seq))
		return "wrong length";
	msg_fill(scratch, len, seq);
	if (memcmp(p, scratch, len) == 0)
		return NULL;
	if (len >= 16 && memcmp(p + 8, scratch + 8, 8) != 0)
		return "bad checksum field";
	return "corrupt bytes";
}

/* ---- Signals ------------------------------------------------------------ */
static void on_usr1(int sig)
{
	(void)sig;
	if (H)
		ADD(H->handled, 1);
}

static void install_handlers(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1; /* no SA_RESTART: system calls see EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
}

static int stopping(void)
{
	return LDA(H->stop) != 0;
}

/* ---- Producer ------------------------------------------------------------
 * Before each commit it records (pend_seq, pend_pos), the sequence number
 * and tail the commit will give, and sets pend_valid; after the commit it
 * records (comm_seq, comm_pos) and clears pend_valid.  A producer that takes
 * over reads the ring's tail (shmring_info) once it owns the ring: if
 * pend_valid and the tail is pend_pos, the commit happened; if it is
 * comm_pos, it did not; anything else is a violation.  So the sequence
 * continues with no gap and no repeat, and consumers may bound the tail's
 * sequence number by comm_seq <= tail_seq <= pend_seq at any moment. */
static void resolve_takeover(uint64_t tail, uint64_t *seq, uint64_t *pos)
{
	uint64_t cs = LD(H->comm_seq), cp = LD(H->comm_pos);
	if (LD(H->pend_valid)) {
		uint64_t ps = LD(H->pend_seq), pp = LD(H->pend_pos);
		if (tail == pp) {
			ST(H->comm_pos, pp);
			ST(H->comm_seq, ps);
			ST(H->pend_valid, 0);
			*seq = ps, *pos = pp;
			return;
		}
		ST(H->pend_seq, cs);
		ST(H->pend_pos, cp);
		ST(H->pend_valid, 0);
	}
	if (tail != cp)
		violation(-1, LD(H->prod_incarnations), cs,
			  "takeover: tail %" PRIu64 " is neither committed %" PRIu64
			  " nor pending position", tail, cp);
	*seq = cs, *pos = cp;
}

/* Bytes a record of sz bytes takes at position pos of a ring of capacity
 * cap: a record that would cross the end of the data area, with at most
 * cap / 16 bytes left in the lap, starts the next lap after a pad of them
 * (shmring(7)). */
static uint64_t record_room(uint64_t pos, uint64_t cap, uint64_t sz)
{
	uint64_t rest = cap - (pos & (cap - 1));
	return (rest < sz && rest <= cap / 16 ? rest : 0) + sz;
}

static void publish_times(uint64_t from, uint64_t to)
{
	uint64_t t = now_ns();
	for (uint64_t s = from; s < to; s++) {
		ST(H->pub_ns[s % PUBT_N], t);
		STR(H->pub_seq[s % PUBT_N], s + 1);
	}
}

static int producer_run(void)
{
	unsigned inc = atomic_fetch_add(&H->prod_incarnations, 1) + 1;
	struct shmring_producer *p;
	int rc;
	for (int i = 0;; i++) {
		ep_lock();
		rc = shmring_producer_open(R, &p);
		ep_unlock();
		if (rc != -EBUSY || i > 5000)
			break;
		sleep_ns(1000000); /* the dead one's lock is being dropped */
	}
	if (rc) {
		violation(-1, inc, 0, "producer_open: %s", shmring_strerror(rc));
		return 1;
	}
	struct shmring_info info;
	shmring_info(R, &info);
	uint64_t seq, pos;
	resolve_takeover(info.tail, &seq, &pos);
	uint64_t rs = round_seed ^ mix(inc * 7919u + (uint64_t)getpid()), stall = 0;
	while (!stopping()) {
		if (cfg.threads && LD(H->prod_restart)) {
			/* Thread mode's producer "kill": a clean close and a
			 * new producer (nothing is pending here). */
			ST(H->prod_restart, 0);
			ep_lock();
			shmring_producer_close(p);
			ep_unlock();
			return 2;
		}
		unsigned n = (rnd(&rs) & 3) ? 1 : 1 + (unsigned)(rnd(&rs) % 8);
		unsigned k = 0;
		uint64_t end = pos;
		if (seq + n >= BITMAP_BITS) {
			sleep_ns(1000000);
			continue;
		}
		uint64_t t0 = now_ns();
		while (k < n) {
			size_t L = msg_len(seq + k);
			void *d;
			struct timespec dl;
			shmring_deadline(&dl, 100000000u);
			rc = shmring_reserve_wait(p, L, &d, &dl);
			/* A stall: one message waited this long for room (over
			 * the retries after timeouts). */
			uint64_t t1 = now_ns();
			if (t1 - t0 > stall)
				ST(H->stall_max_ns, (stall = t1 - t0));
			if (rc == -ETIMEDOUT) {
				if (stopping())
					break;
				continue;
			}
			t0 = t1;
			if (rc == -ENOBUFS && k)
				break; /* commit what we have */
			if (rc) {
				violation(-1, inc, seq + k, "reserve_wait(%zu): %s", L,
					  shmring_strerror(rc));
				return 1;
			}
			msg_fill(d, L, seq + k);
			end += record_room(end, info.capacity, SHMRING_RECORD_SIZE(L));
			k++;
		}
		if (!k)
			continue;
		ST(H->pend_pos, end);
		ST(H->pend_seq, seq + k);
		atomic_store(&H->pend_valid, 1);
		rc = shmring_commit(p);
		if (rc != (int)k) {
			violation(-1, inc, seq, "commit gave %d, expected %u", rc, k);
			return 1;
		}
		ST(H->comm_pos, end);
		ST(H->comm_seq, seq + k);
		atomic_store(&H->pend_valid, 0);
		publish_times(seq, seq + k);
		seq += k;
		pos = end;
	}
	ST(H->total, seq);
	shmring_info(R, &info);
	if (info.tail != pos)
		violation(-1, inc, seq, "final tail %" PRIu64 " != expected %" PRIu64, info.tail,
			  pos);
	STR(H->producer_done, 1);
	ep_lock();
	shmring_producer_close(p);
	ep_unlock();
	return 0;
}

/* ---- Consumers -------------------------------------------------------- */
struct pend {
	uint32_t len;
	uint8_t b[8];
	uint64_t lost;
};

struct cstate {
	int idx, kind, api;
	unsigned inc;
	struct cstat *st;
	struct shmring_consumer *c;
	uint8_t *buf, *scratch;
	size_t buflen;
	uint64_t lost;       /* shmring_lost of this incarnation */
	uint64_t c0, p1;     /* tail_seq was in [c0, p1] at attach */
	int anchored;
	uint64_t expect;     /* next seq (broadcast) */
	uint64_t attach_seq;
	uint64_t recv;       /* this incarnation */
	uint64_t last;       /* group: last seq + 1 */
	unsigned npend;
	struct pend pend[PEND_MAX];
};

#define cviol(s, seq, ...) violation((s)->idx, (s)->inc, (seq), __VA_ARGS__)

static void take_msg(struct cstate *s, uint64_t seq)
{
	s->recv++;
	ADD(s->st->received, 1);
	ST(s->st->last_seq, seq + 1);
}

/* Broadcast: the anchor (a message that carries its seq) fixes the seqs of
 * the short messages buffered before it. */
static void anchor(struct cstate *s, uint64_t seq)
{
	uint64_t k = s->npend, lost_after = s->lost;
	for (unsigned i = 0; i < s->npend; i++) {
		/* messages after i: k - i; lost after i: lost_after - lost_i */
		uint64_t si = seq - (k - i) - (lost_after - s->pend[i].lost);
		const char *bad = NULL;
		if (s->pend[i].len != msg_len(si))
			bad = "wrong length";
		else {
			msg_fill(s->scratch, s->pend[i].len, si);
			if (memcmp(s->pend[i].b, s->scratch, s->pend[i].len))
				bad = "corrupt bytes";
		}
		if (bad) {
			cviol(s, si, "short message before first anchor: %s", bad);
			ADD(s->st->corrupt, 1);
		}
		if (i == 0)
			s->attach_seq = si - s->pend[0].lost;
		take_msg(s, si);
	}
	if (!s->npend)
		s->attach_seq = seq - s->lost;
	if (s->attach_seq < s->c0 || s->attach_seq > s->p1) {
		char why[80];
		snprintf(why, sizeof(why), "outside [%" PRIu64 ", %" PRIu64 "]",
			 s->c0, s->p1);
		cviol(s, s->attach_seq, "attached at a seq %s", why);
		ADD(s->st->gaps, 1);
	}
	s->npend = 0;
	s->anchored = 1;
	s->expect = seq;
}

static void on_broadcast(struct cstate *s, const uint8_t *p, size_t len)
{
	uint64_t seq;
	if (!s->anchored) {
		if (len < 8) {
			if (s->npend == PEND_MAX) {
				cviol(s, 0, "%s", "no message with a sequence number among 1024");
				ADD(s->st->gaps, 1);
				s->npend = 0;
			}
			struct pend *e = &s->pend[s->npend++];
			e->len = (uint32_t)len;
			memcpy(e->b, p, len);
			e->lost = s->lost;
			return;
		}
		memcpy(&seq, p, 8);
		if (seq >= BITMAP_BITS || seq < s->npend) {
			cviol(s, seq, "%s", "first message has an impossible sequence number");
			ADD(s->st->corrupt, 1);
			return;
		}
		anchor(s, seq);
	}
	seq = s->expect;
	if (len >= 8) {
		uint64_t got;
		memcpy(&got, p, 8);
		if (got != seq) {
			char what[96];
			snprintf(what, sizeof(what), "%s: expected seq %" PRIu64 ", got %" PRIu64,
				 got < seq ? "duplicate or reordered" : "gap", seq, got);
			cviol(s, seq, "%s", what);
			if (got < seq)
				ADD(s->st->dups, 1);
			else
				ADD(s->st->gaps, 1);
			if (got < BITMAP_BITS)
				seq = got; /* resynchronise, to report each fault once */
		}
	}
	const char *bad = msg_bad(p, len, seq, s->scratch);
	if (bad) {
		cviol(s, seq, "corrupt message accepted: %s", bad);
		ADD(s->st->corrupt, 1);
	}
	take_msg(s, seq);
	s->expect = seq + 1;
}

static void on_member(struct cstate *s, const uint8_t *p, size_t len)
{
	int g = s->kind - 1;
	if (len < 8) {
		/* Cannot tell which seq: counted per length, checked in total
		 * at the end of the round. */
		ADD(H->gshort[g][len], 1);
		s->recv++;
		ADD(s->st->received, 1);
		return;
	}
	uint64_t seq;
	memcpy(&seq, p, 8);
	if (seq >= BITMAP_BITS) {
		cviol(s, seq, "%s", "impossible sequence number");
		ADD(s->st->corrupt, 1);
		return;
	}
	const char *bad = msg_bad(p, len, seq, s->scratch);
	if (bad) {
		cviol(s, seq, "corrupt message accepted: %s", bad);
		ADD(s->st->corrupt, 1);
	}
	uint64_t bit = 1ull << (seq & 63);
	if (atomic_fetch_or(&gbits[g][seq >> 6], bit) & bit) {
		cviol(s, seq, "%s", "duplicate: another member (or this one) had it");
		ADD(s->st->dups, 1);
		ADD(H->gdups[g], 1);
	}
	if (seq + 1 <= s->last) {
		cviol(s, seq, "%s", "out of order within one member");
		ADD(s->st->gaps, 1);
	}
	s->last = seq + 1;
	take_msg(s, seq);
}

/* A late wake-up: the first message of a receive arrived more than LATE_NS
 * after it was published, although this consumer had been waiting for data
 * since before the publication, with no stop or pause of ours in between.
 * The library caps every sleep (it looks at the producer's liveness every
 * 50 ms), so a lost wake-up shows up as lateness, not as a hang.  A wait
 * episode spans receives that timed out. */
static void check_late(struct cstate *s, uint64_t ep_start, uint32_t pg0, uint64_t seq,
		       uint64_t t1)
{
	if (t1 - ep_start < 1000000)
		return;
	ADD(s->st->sleeps, 1);
	if (LD(s->st->pause_gen) != pg0)
		return;
	if (LDA(H->pub_seq[seq % PUBT_N]) != seq + 1)
		return;
	uint64_t pt = LD(H->pub_ns[seq % PUBT_N]);
	if (pt > ep_start && pt < t1 && t1 - pt > LATE_NS) {
		ADD(s->st->late, 1);
		if (t1 - pt > LD(s->st->late_max_ns))
			ST(s->st->late_max_ns, t1 - pt);
	}
}

static int consumer_open(struct cstate *s)
{
	int rc;
	s->c0 = LD(H->comm_seq);
	for (int i = 0;; i++) {
		ep_lock();
		rc = s->kind ? shmring_group_open(R, s->kind == 1 ? "g1" : "g2", 0, &s->c)
			     : shmring_consumer_open(R, 0, &s->c);
		ep_unlock();
		if (rc != -EUSERS && rc != -EAGAIN)
			break;
		if (i > 2000)
			break;
		sleep_ns(1000000);
	}
	s->p1 = LD(H->pend_seq);
	if (LD(H->pend_valid) == 0 && LD(H->comm_seq) > s->p1)
		s->p1 = LD(H->comm_seq);
	if (rc) {
		violation(s->idx, s->inc, 0, "open: %s", shmring_strerror(rc));
		return rc;
	}
	return 0;
}

/* Runs one incarnation until the round ends (returns 0) or, in thread mode,
 * a restart is requested (returns 1). */
static int consumer_run(int idx)
{
	struct cstate *s = calloc(1, sizeof(*s));
	if (!s)
		abort();
	s->idx = idx;
	s->kind = cons[idx].kind;
	s->api = cons[idx].api;
	s->st = &H->c[idx];
	s->inc = atomic_fetch_add(&s->st->incarnations, 1) + 1;
	s->buflen = max_msg * 2 + 64;
	s->buf = malloc(s->buflen);
	s->scratch = malloc(max_msg + 16);
	if (!s->buf || !s->scratch)
		abort();
	ST(s->st->final_attach, 0);
	if (consumer_open(s)) {
		/* reported; process mode: exit 3 and be restarted */
		free(s->buf), free(s->scratch), free(s);
		if (cfg.threads) {
			sleep_ns(10000000);
			return stopping() ? 0 : 1;
		}
		return 3;
	}
	uint64_t rs = mix(round_seed ^ (uint64_t)idx << 20 ^ s->inc);
	uint64_t ep_start = 0;   /* start of the current wait episode, 0: none */
	uint32_t ep_pg = 0;
	int ret = 0;
	for (;;) {
		if (cfg.threads) {
			uint32_t pm = LD(s->st->pause_ms);
			if (pm) {
				sleep_ns(pm * 1000000ull);
				ST(s->st->pause_ms, 0);
			}
			if (LD(s->st->restart_req) && !stopping()) {
				ST(s->st->restart_req, 0);
				ret = 1;
				break;
			}
		}
		struct timespec dl;
		shmring_deadline(&dl, 50000000u);
		struct shmring_msg m[BATCH_MAX];
		unsigned max = 1 + (unsigned)(rnd(&rs) % BATCH_MAX);
		if (!ep_start) {
			ep_start = now_ns();
			ep_pg = LD(s->st->pause_gen);
		}
		int n;
		if (s->kind)
			ST(s->st->in_call, 1);
		if (s->api == API_RECV) {
			size_t len = 0;
			n = shmring_recv_wait(s->c, s->buf, s->buflen, &len, &dl);
			if (n == 0) {
				n = 1;
				m[0].data = s->buf;
				m[0].len = len;
			}
		} else if (s->api == API_BATCH) {
			n = shmring_recv_batch_wait(s->c, s->buf, s->buflen, m, max, &dl);
		} else {
			n = shmring_peek_batch_wait(s->c, m, max, &dl);
		}
		if (n > 0 && s->api == API_PEEK && round_policy == SHMRING_POLICY_OVERWRITE) {
			/* Copy out, then release: only a release that returns a
			 * count vouches for the bytes. */
			size_t off = 0;
			for (int i = 0; i < n; i++) {
				memcpy(s->buf + off, m[i].data, m[i].len);
				m[i].data = s->buf + off;
				off += (m[i].len + 7) & ~(size_t)7;
			}
			int r = shmring_release(s->c);
			if (r < 0)
				n = r;
			else if (r != n)
				violation(idx, s->inc, s->expect, "release gave %d after %d peeks", r, n);
		}
		if (n == -EOVERFLOW) {
			if (round_policy != SHMRING_POLICY_OVERWRITE)
				violation(idx, s->inc, s->expect, "%s", "-EOVERFLOW in BLOCK");
			uint64_t l;
			shmring_lost(s->c, &l);
			if (l <= s->lost)
				violation(idx, s->inc, s->expect, "%s",
					  "-EOVERFLOW without a lost count");
			ADD(s->st->lost, l - s->lost);
			if (s->anchored)
				s->expect += l - s->lost;
			s->lost = l;
			ST(s->st->final_lost, l);
			ep_start = 0;
			continue;
		}
		if (n > 0) {
			/* when the data came, before the time spent checking it */
			uint64_t t_ret = now_ns(), first_seq = 0;
			if (s->kind && m[0].len >= 8)
				memcpy(&first_seq, m[0].data, 8);
			for (int i = 0; i < n; i++) {
				if (s->kind)
					on_member(s, m[i].data, m[i].len);
				else
					on_broadcast(s, m[i].data, m[i].len);
			}
			if (s->kind == 0 && s->anchored)
				check_late(s, ep_start, ep_pg, s->expect - (uint64_t)n, t_ret);
			else if (s->kind && m[0].len >= 8)
				check_late(s, ep_start, ep_pg, first_seq, t_ret);
			ep_start = 0;
			if (s->api == API_PEEK && round_policy == SHMRING_POLICY_BLOCK) {
				int r = shmring_release(s->c);
				if (r != n)
					violation(idx, s->inc, s->expect,
						  "release gave %d after %d peeks", r, n);
			}
			if (s->kind)
				ST(s->st->in_call, 0);
			if (s->anchored)
				ST(s->st->final_attach, s->attach_seq + 1);
			ST(s->st->final_recv, s->recv);
			continue;
		}
		if (s->kind)
			ST(s->st->in_call, 0);
		if (n == -ETIMEDOUT)
			continue;
		if (n == -EPIPE) {
			/* The producer closed, or died and we drained.  We keep
			 * our cursor: a producer that takes over continues the
			 * sequence.  Only the end of the round ends us. */
			if (LDA(H->producer_done))
				break;
			sleep_ns(1000000);
			continue;
		}
		violation(idx, s->inc, s->expect, "receive: %s", shmring_strerror(n));
		ret = 3; /* reported: the process exits 3, the supervisor restarts it */
		break;
	}
	/* The last incarnation: everything published while attached came. */
	ST(s->st->final_recv, s->recv);
	ST(s->st->final_lost, s->lost);
	if (s->kind == 0) {
		if (!s->anchored && s->npend && ret == 0 && LDA(H->producer_done))
			anchor(s, LD(H->total)); /* only short ones: the end anchors */
		ST(s->st->final_attach, s->anchored ? s->attach_seq + 1 : 0);
		if (!s->anchored && ret == 0 && LDA(H->producer_done) && s->p1 < LD(H->total))
			violation(idx, s->inc, s->p1,
				  "received nothing, though messages from %" PRIu64
				  " were sent after it attached", s->p1);
	}
	ep_lock();
	shmring_consumer_close(s->c);
	ep_unlock();
	if (ret == 0)
		ST(s->st->done, 1);
	free(s->buf), free(s->scratch), free(s);
	if (ret == 3 && cfg.threads) {
		sleep_ns(10000000); /* thread mode: reopen, as a restart would */
		return stopping() ? 0 : 1;
	}
	return ret;
}

/* ---- Process and thread plumbing -------------------------------------- */
static pid_t spawn(int (*fn)(int), int arg)
{
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(fn(arg));
	}
	return pid;
}

static int producer_entry(int unused)
{
	(void)unused;
	return producer_run();
}

static int consumer_entry(int idx)
{
	return consumer_run(idx);
}

static void *producer_thread(void *a)
{
	(void)a;
	while (producer_run() == 2)
		;
	return NULL;
}

static void *consumer_thread(void *a)
{
	int idx = (int)(intptr_t)a;
	while (consumer_run(idx))
		;
	return NULL;
}

static void start_consumer(int i)
{
	struct cons *c = &cons[i];
	c->up = 1;
	c->stopped = 0;
	if (cfg.threads)
		pthread_create(&c->th, NULL, consumer_thread, (void *)(intptr_t)i);
	else
		c->pid = spawn(consumer_entry, i);
}

static void start_producer(void)
{
	prod_up = 1;
	if (cfg.threads)
		pthread_create(&prod_th, NULL, producer_thread, NULL);
	else
		prod_pid = spawn(producer_entry, 0);
}

/* Process mode: a child that ended without our SIGKILL. */
static void reap_unexpected(void)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		const char *who = "?";
		int idx = -2;
		if (pid == prod_pid) {
			who = "producer";
			idx = -1;
			prod_up = 0;
			prod_pid = 0;
		}
		for (unsigned i = 0; i < ncons; i++)
			if (cons[i].pid == pid) {
				who = "consumer";
				idx = (int)i;
				cons[i].up = 0;
				cons[i].pid = 0;
				cons[i].restart_at = now_ns() + 10000000u;
			}
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && LD(H->stop))
			continue; /* finished */
		if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
			continue; /* it reported its violation; restarted */
		violation(idx, 0, 0, "%s died unexpectedly: %s %d", who,
			  WIFSIGNALED(status) ? "signal" : "exit code",
			  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	}
}

static void kill_consumer(int i, uint64_t now, uint64_t *rs)
{
	struct cons *c = &cons[i];
	kill(c->pid, SIGKILL);
	int status;
	waitpid(c->pid, &status, 0);
	c->pid = 0;
	c->up = 0;
	c->stopped = 0;
	ADD(H->c[i].kills, 1);
	if (c->kind && LD(H->c[i].in_call)) {
		ADD(H->c[i].inflight_allow, c->api == API_RECV ? 1 : BATCH_MAX);
		ADD(H->c[i].inflight_kills, 1);
	}
	c->restart_at = now + rnd(rs) % 20000000u;
}

/* ---- The supervisor ------------------------------------------------------ */
struct totals {
	uint64_t sent, ckills, pkills, stops, sigs, handled, late, sleeps;
	uint64_t stall_ns, late_max_ns;
	int failed;
};

static void progress(const char *tag, double el, double len, uint64_t *last_sent, double *last_t,
		     uint64_t ckills, uint64_t pkills, uint64_t stops)
{
	uint64_t comm = LD(H->comm_seq), lag = 0;
	for (unsigned i = 0; i < ncons; i++) {
		uint64_t ls = LD(H->c[i].last_seq);
		if (cons[i].kind == 0 && ls && comm - ls > lag && comm >= ls)
			lag = comm - ls;
	}
	double rate = (double)(comm - *last_sent) / (el - *last_t + 1e-9);
	*last_sent = comm;
	*last_t = el;
	char line[200];
	snprintf(line, sizeof(line),
		 "%s %5.1f/%.0fs  %9.0f msg/s  sent %" PRIu64 "  slowest lag %" PRIu64
		 "  kills %" PRIu64 "+%" PRIu64 "p  stops %" PRIu64 "  viol %u",
		 tag, el, len, rate, comm, lag, ckills, pkills, stops, LD(H->nviol));
	if (cfg.tty)
		fprintf(stderr, "\r%-150s", line);
	else
		fprintf(stderr, "%s\n", line);
}

static const char *pol_name(int p)
{
	return p == SHMRING_POLICY_OVERWRITE ? "OVERWRITE" : "BLOCK";
}

static void *map_shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	return p;
}

static int run_round(int policy, uint64_t capacity, double seconds, uint64_t seed,
		     struct totals *tot)
{
	round_policy = policy;
	round_seed = seed;
	H = map_shared(sizeof(*H));
	H->t0 = now_ns();
	ngroups = 0;
	if (policy == SHMRING_POLICY_BLOCK)
		ngroups = cfg.consumers >= 6 ? 2 : cfg.consumers >= 3 ? 1 : 0;
	for (unsigned g = 0; g < ngroups; g++)
		gbits[g] = map_shared(BITMAP_BITS / 8);
	ncons = cfg.consumers;
	unsigned nb = ncons - 2 * ngroups;
	for (unsigned i = 0; i < ncons; i++) {
		memset(&cons[i], 0, sizeof(cons[i]));
		cons[i].kind = i < nb ? 0 : 1 + (int)((i - nb) / 2);
		cons[i].api = (int)(i % API_N);
		/* Thread mode: group members claim before they read (peek); a
		 * copying member may copy bytes the producer is reusing and
		 * validates by its CAS afterwards, which TSan calls a race. */
		if (cfg.threads && cons[i].kind)
			cons[i].api = API_PEEK;
	}
	struct shmring_opts o;
	memset(&o, 0, sizeof(o));
	o.size = sizeof(o);
	o.capacity = capacity;
	o.max_consumers = 2 * ncons + 8;
	o.policy = (uint32_t)policy;
	int rc = shmring_create_anon("stress", &o, &R);
	if (rc) {
		fprintf(stderr, "stress: create: %s\n", shmring_strerror(rc));
		exit(2);
	}
	struct shmring_info info;
	shmring_info(R, &info);
	max_msg = info.max_message;
	/* The supervisor keeps one idle member in each group, so that a group
	 * lives for the whole round however its members die: every message
	 * goes to the group.  It never reads, so it holds nothing back. */
	struct shmring_consumer *keep[MAX_GROUPS];
	for (unsigned g = 0; g < ngroups; g++) {
		rc = shmring_group_open(R, g ? "g2" : "g1", 0, &keep[g]);
		if (rc) {
			fprintf(stderr, "stress: group_open: %s\n", shmring_strerror(rc));
			exit(2);
		}
	}
	char tag[64];
	snprintf(tag, sizeof(tag), "[%s %" PRIu64 "]", pol_name(policy), capacity);
	fprintf(stderr, "%s seed %" PRIu64 ", %u consumers (%u broadcast, %u groups of 2), "
		"max message %zu, %.1f s%s\n", tag, seed, ncons, nb, ngroups, max_msg, seconds,
		cfg.threads ? ", threads" : "");

	uint64_t rs = mix(seed ^ 0x5eed);
	for (unsigned i = 0; i < ncons; i++)
		start_consumer((int)i);
	start_producer();

	uint64_t t_start = now_ns(), t_end = t_start + (uint64_t)(seconds * 1e9);
	uint64_t next_prog = t_start + (cfg.tty ? 250000000u : 1000000000u);
	uint64_t next_kill = t_start + 50000000u + rnd(&rs) % 300000000u;
	uint64_t next_stop = t_start + rnd(&rs) % 200000000u;
	uint64_t next_pkill = t_start + 300000000u + rnd(&rs) % 1500000000u;
	uint64_t next_storm = t_start + rnd(&rs) % 500000000u;
	int storm_on = 1;
	uint64_t ckills = 0, pkills = 0, stops = 0, sigs = 0, last_sent = 0;
	double last_t = 0;
	struct timespec tick = { 0, 100000 };
	for (;;) {
		uint64_t t = now_ns();
		if (t >= t_end)
			break;
		if (!cfg.threads)
			reap_unexpected();
		/* restarts and continues due */
		for (unsigned i = 0; i < ncons; i++) {
			struct cons *c = &cons[i];
			if (!cfg.threads && !c->up && t >= c->restart_at)
				start_consumer((int)i);
			if (!cfg.threads && c->up && c->stopped && t >= c->cont_at) {
				kill(c->pid, SIGCONT);
				c->stopped = 0;
			}
		}
		if (!cfg.threads && !prod_up && t >= prod_restart_at)
			start_producer();
		if ((cfg.chaos & CH_KILL) && t >= next_kill) {
			int i = (int)(rnd(&rs) % ncons);
			if (cfg.threads)
				ST(H->c[i].restart_req, 1), ADD(H->c[i].kills, 1), ckills++;
			else if (cons[i].up)
				kill_consumer(i, t, &rs), ckills++;
			next_kill = t + rnd(&rs) % 400000000u;
		}
		if ((cfg.chaos & CH_STOP) && t >= next_stop) {
			int i = (int)(rnd(&rs) % ncons);
			uint32_t ms = 1 + (uint32_t)(rnd(&rs) % 30);
			ADD(H->c[i].pause_gen, 1);
			if (cfg.threads) {
				ST(H->c[i].pause_ms, ms), stops++;
			} else if (cons[i].up && !cons[i].stopped) {
				kill(cons[i].pid, SIGSTOP);
				cons[i].stopped = 1;
				cons[i].cont_at = t + ms * 1000000ull;
				stops++;
			}
			next_stop = t + rnd(&rs) % 300000000u;
		}
		if ((cfg.chaos & CH_PKILL) && t >= next_pkill && cfg.threads) {
			ST(H->prod_restart, 1);
			pkills++;
			next_pkill = t + 200000000u + rnd(&rs) % 2000000000u;
		}
		if ((cfg.chaos & CH_PKILL) && t >= next_pkill && prod_up && !cfg.threads) {
			kill(prod_pid, SIGKILL);
			int status;
			waitpid(prod_pid, &status, 0);
			prod_pid = 0;
			prod_up = 0;
			pkills++;
			prod_restart_at = t + rnd(&rs) % 120000000u;
			next_pkill = t + 200000000u + rnd(&rs) % 2000000000u;
		}
		/* The storm comes in bursts: its EINTRs wake sleepers, which
		 * would hide a lost wake-up if it never stopped. */
		if ((cfg.chaos & CH_STORM) && t >= next_storm) {
			storm_on = !storm_on;
			next_storm = t + 200000000u + rnd(&rs) % 800000000u;
		}
		if ((cfg.chaos & CH_STORM) && storm_on) {
			/* Only our own unreaped children or our threads: never a
			 * pid that could have been reused. */
			int i = (int)(rnd(&rs) % ncons);
			if (cfg.threads) {
				pthread_kill(prod_th, SIGUSR1);
				pthread_kill(cons[i].th, SIGUSR1);
				sigs += 2;
			} else {
				if (prod_up)
					kill(prod_pid, SIGUSR1), sigs++;
				if (cons[i].up)
					kill(cons[i].pid, SIGUSR1), sigs++;
			}
		}
		if (t >= next_prog) {
			progress(tag, (double)(t - t_start) / 1e9, seconds, &last_sent, &last_t,
				 ckills, pkills, stops);
			next_prog = t + (cfg.tty ? 250000000u : 1000000000u);
		}
		nanosleep(&tick, NULL);
	}
	/* End of the round: everybody up and running, then the producer
	 * finishes and the consumers drain. */
	if (!cfg.threads) {
		reap_unexpected();
		for (unsigned i = 0; i < ncons; i++) {
			if (!cons[i].up)
				start_consumer((int)i);
			else if (cons[i].stopped)
				kill(cons[i].pid, SIGCONT), cons[i].stopped = 0;
		}
		if (!prod_up)
			start_producer();
	}
	/* Let restarted ones attach before the producer stops. */
	sleep_ns(20000000);
	STR(H->stop, 1);
	uint64_t deadline = now_ns() + 60000000000ull;
	int hung = 0;
	if (cfg.threads) {
		pthread_join(prod_th, NULL);
		for (unsigned i = 0; i < ncons; i++)
			pthread_join(cons[i].th, NULL);
	} else {
		for (;;) {
			int left = prod_up;
			for (unsigned i = 0; i < ncons; i++)
				left += cons[i].up;
			reap_unexpected();
			if (!left)
				break;
			if (now_ns() > deadline) {
				hung = 1;
				break;
			}
			sleep_ns(1000000);
		}
	}
	if (cfg.tty)
		fprintf(stderr, "\n");
	uint64_t total = LD(H->total);
	if (hung) {
		for (unsigned i = 0; i < ncons; i++)
			if (cons[i].up) {
				violation((int)i, LD(H->c[i].incarnations), LD(H->c[i].last_seq),
					  "hung at the end: did not drain to %" PRIu64 " in 60 s",
					  total);
				kill(cons[i].pid, SIGKILL);
				waitpid(cons[i].pid, NULL, 0);
			}
		if (prod_up) {
			violation(-1, 0, LD(H->comm_seq), "%s", "producer hung at the end");
			kill(prod_pid, SIGKILL);
			waitpid(prod_pid, NULL, 0);
		}
	}
	/* Final checks. */
	for (unsigned i = 0; i < ncons; i++) {
		struct cstat *st = &H->c[i];
		if (cons[i].kind || !LD(st->done))
			continue;
		uint64_t fa = LD(st->final_attach);
		if (!fa)
			continue;
		uint64_t got = fa - 1 + LD(st->final_recv) + LD(st->final_lost);
		if (got != total)
			violation((int)i, LD(st->incarnations), got,
				  "last incarnation: attach %" PRIu64 " + received %" PRIu64
				  " + lost %" PRIu64 " != sent %" PRIu64, fa - 1,
				  (uint64_t)LD(st->final_recv), (uint64_t)LD(st->final_lost), total);
	}
	uint64_t gmissing[MAX_GROUPS] = {0}, gallow[MAX_GROUPS] = {0};
	uint64_t grun[MAX_GROUPS] = {0}, gkills[MAX_GROUPS] = {0};
	if (ngroups) {
		uint64_t shortexp[8] = {0};
		for (uint64_t s = 0; s < total; s++) {
			size_t L = msg_len(s);
			if (L < 8)
				shortexp[L]++;
		}
		for (unsigned g = 0; g < ngroups; g++) {
			/* A claim takes consecutive records: what one killed
			 * member took is one run of consecutive seqs (short
			 * messages, which cannot be placed, do not break runs). */
			uint64_t first_missing = UINT64_MAX, runs = 0;
			int in_run = 0;
			for (uint64_t s = 0; s < total; s++) {
				if (msg_len(s) < 8)
					continue;
				if (!(LD(gbits[g][s >> 6]) & (1ull << (s & 63)))) {
					gmissing[g]++;
					runs += !in_run;
					in_run = 1;
					if (first_missing == UINT64_MAX)
						first_missing = s;
				} else {
					in_run = 0;
				}
			}
			grun[g] = runs;
			for (uint64_t s = total; s < total + 128 && s < BITMAP_BITS; s++)
				if (LD(gbits[g][s >> 6]) & (1ull << (s & 63)))
					violation(-2, 0, s, "group g%u received a seq never sent",
						  g + 1);
			for (int L = 0; L < 8; L++) {
				uint64_t got = LD(H->gshort[g][L]);
				if (got > shortexp[L])
					violation(-2, 0, 0, "group g%u: %" PRIu64 " messages of length %d,"
						  " only %" PRIu64 " sent: duplicates", g + 1, got, L,
						  shortexp[L]);
				else
					gmissing[g] += shortexp[L] - got;
			}
			for (unsigned i = 0; i < ncons; i++)
				if (cons[i].kind == (int)g + 1) {
					gallow[g] += LD(H->c[i].inflight_allow);
					gkills[g] += LD(H->c[i].inflight_kills);
				}
			if (runs > gkills[g])
				violation(-2, 0, first_missing,
					  "group g%u: missing seqs form %" PRIu64 " runs, but only %"
					  PRIu64 " members were killed inside a receive", g + 1, runs,
					  gkills[g]);
			if (gmissing[g] > gallow[g])
				violation(-2, 0, first_missing,
					  "group g%u lost %" PRIu64 " messages (first %" PRIu64
					  "), killed members account for at most %" PRIu64,
					  g + 1, gmissing[g], first_missing, gallow[g]);
		}
	}
	/* The table. */
	uint64_t late = 0, sleeps = 0;
	printf("\n%s seed %" PRIu64 "  sent %" PRIu64 "  producer: longest stall %.1f ms, "
	       "killed %" PRIu64 " times (takeovers %u)\n", tag, seed, total,
	       (double)LD(H->stall_max_ns) / 1e6, pkills, LD(H->prod_incarnations) - 1);
	printf("  %-4s %-9s %-5s %11s %9s %6s %7s %7s %6s %6s %8s\n", "cons", "kind", "api",
	       "received", "lost", "dups", "corrupt", "gap/ord", "kills", "late", "sleeps");
	for (unsigned i = 0; i < ncons; i++) {
		struct cstat *st = &H->c[i];
		char kind[16];
		if (cons[i].kind)
			snprintf(kind, sizeof(kind), "group g%d", cons[i].kind);
		else
			snprintf(kind, sizeof(kind), "broadcast");
		printf("  %-4u %-9s %-5s %11" PRIu64 " %9" PRIu64 " %6" PRIu64 " %7" PRIu64
		       " %7" PRIu64 " %6u %6" PRIu64 " %8" PRIu64 "\n",
		       i, kind, api_name[cons[i].api], (uint64_t)LD(st->received),
		       (uint64_t)LD(st->lost), (uint64_t)LD(st->dups), (uint64_t)LD(st->corrupt),
		       (uint64_t)LD(st->gaps), LD(st->kills), (uint64_t)LD(st->late),
		       (uint64_t)LD(st->sleeps));
		late += LD(st->late);
		sleeps += LD(st->sleeps);
		if (LD(st->late_max_ns) > tot->late_max_ns)
			tot->late_max_ns = LD(st->late_max_ns);
	}
	/* Lost wake-ups: normally a few late wake-ups in a thousand sleeps
	 * (a loaded machine); one dropped futex_wake makes it one in five. */
	if (late >= 20 && late * 20 > sleeps)
		violation(-2, 0, 0, "%" PRIu64 " of %" PRIu64 " waits woke more than %llu ms after "
			  "the data was published: lost wake-ups?", late, sleeps,
			  LATE_NS / 1000000);
	for (unsigned g = 0; g < ngroups; g++)
		printf("  group g%u: each message to exactly one member: missing %" PRIu64
		       " in %" PRIu64 " runs (allowed %" PRIu64 " in %" PRIu64 " runs: members "
		       "killed inside a receive), duplicates %" PRIu64 "\n", g + 1, gmissing[g],
		       grun[g], gallow[g], gkills[g], (uint64_t)LD(H->gdups[g]));
	printf("  signals sent %" PRIu64 ", consumer stops %" PRIu64 "\n", sigs, stops);
	uint32_t nv = LD(H->nviol);
	for (uint32_t i = 0; i < nv && i < MAX_VIOL; i++) {
		struct viol *v = &H->viol[i];
		char who[32];
		if (v->who >= 0)
			snprintf(who, sizeof(who), "consumer %d (#%u)", v->who, v->inc);
		else if (v->who == -1)
			snprintf(who, sizeof(who), "producer (#%u)", v->inc);
		else
			snprintf(who, sizeof(who), "checker");
		printf("  VIOLATION %s at seq %" PRIu64 " (%.2f s into the round): %s\n", who,
		       v->seq, v->t, v->what);
	}
	if (nv > MAX_VIOL)
		printf("  ... and %u more violations\n", nv - MAX_VIOL);
	tot->sent += total;
	tot->ckills += ckills;
	tot->pkills += pkills;
	tot->stops += stops;
	tot->sigs += sigs;
	tot->handled += LD(H->handled);
	tot->late += late;
	tot->sleeps += sleeps;
	if (LD(H->stall_max_ns) > tot->stall_ns)
		tot->stall_ns = LD(H->stall_max_ns);
	fflush(stdout);

	for (unsigned g = 0; g < ngroups; g++) {
		shmring_consumer_close(keep[g]);
		munmap(gbits[g], BITMAP_BITS / 8);
	}
	shmring_close(R);
	struct harness *h = H;
	H = NULL;
	munmap(h, sizeof(*h));
	return nv ? 1 : 0;
}

static unsigned parse_chaos(const char *s)
{
	if (!strcmp(s, "none"))
		return 0;
	if (!strcmp(s, "all"))
		return CH_ALL;
	unsigned m = 0;
	char *dup = strdup(s), *save = NULL;
	for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!strcmp(t, "kill"))
			m |= CH_KILL;
		else if (!strcmp(t, "stop"))
			m |= CH_STOP;
		else if (!strcmp(t, "pkill"))
			m |= CH_PKILL;
		else if (!strcmp(t, "storm"))
			m |= CH_STORM;
		else {
			fprintf(stderr, "stress: unknown chaos '%s' (kill,stop,pkill,storm)\n", t);
			exit(2);
		}
	}
	free(dup);
	return m;
}

static int parse_policy(const char *s)
{
	if (!strcmp(s, "block"))
		return SHMRING_POLICY_BLOCK;
	if (!strcmp(s, "overwrite"))
		return SHMRING_POLICY_OVERWRITE;
	if (!strcmp(s, "both"))
		return -1;
	fprintf(stderr, "stress: unknown policy '%s'\n", s);
	exit(2);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: stress [-s seconds] [-c consumers] [-S seed] [-C capacity]\n"
		"              [-p block|overwrite|both] [-x kill,stop,pkill,storm|none] "
		"[--threads]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *e;
	cfg.seconds = (e = getenv("STRESS_SECONDS")) && *e ? atof(e) : 60;
	cfg.consumers = (e = getenv("STRESS_CONSUMERS")) && *e ? (unsigned)atoi(e) : 8;
	cfg.capacity = (e = getenv("STRESS_CAPACITY")) && *e ? strtoull(e, NULL, 0) : 0;
	int have_seed = (e = getenv("STRESS_SEED")) && *e;
	cfg.seed = have_seed ? strtoull(e, NULL, 0) : 0;
	cfg.policy = (e = getenv("STRESS_POLICY")) && *e ? parse_policy(e) : -1;
	cfg.chaos = (e = getenv("STRESS_CHAOS")) && *e ? parse_chaos(e) : CH_ALL;
	static const struct option lo[] = { { "threads", no_argument, NULL, 't' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	int o;
	while ((o = getopt_long(argc, argv, "s:c:S:C:p:x:h", lo, NULL)) != -1) {
		switch (o) {
		case 's': cfg.seconds = atof(optarg); break;
		case 'c': cfg.consumers = (unsigned)atoi(optarg); break;
		case 'S': cfg.seed = strtoull(optarg, NULL, 0); have_seed = 1; break;
		case 'C': cfg.capacity = strtoull(optarg, NULL, 0); break;
		case 'p': cfg.policy = parse_policy(optarg); break;
		case 'x': cfg.chaos = parse_chaos(optarg); break;
		case 't': cfg.threads = 1; break;
		default: usage();
		}
	}
	if (cfg.consumers < 1 || cfg.consumers > MAX_CONS || cfg.seconds <= 0)
		usage();
	if (!have_seed)
		cfg.seed = mix(now_ns() ^ (uint64_t)getpid() << 32) % 1000000000000ull;
	cfg.tty = isatty(2);
	open_unlocked = (e = getenv("STRESS_OPEN_UNLOCKED")) && *e == '1';
	install_handlers();
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* Rounds: each policy (thread mode: BLOCK only) at each capacity
	 * (4 KiB, 64 KiB, 1 MiB unless STRESS_CAPACITY), equal shares. */
	int pols[2], np = 0;
	if (cfg.threads && cfg.policy == SHMRING_POLICY_OVERWRITE) {
		fprintf(stderr, "stress: thread mode runs BLOCK only (the OVERWRITE reader "
			"reads bytes the producer may be rewriting, by design)\n");
		return 2;
	}
	if (cfg.policy != SHMRING_POLICY_OVERWRITE)
		pols[np++] = SHMRING_POLICY_BLOCK;
	if (cfg.policy != SHMRING_POLICY_BLOCK && !cfg.threads)
		pols[np++] = SHMRING_POLICY_OVERWRITE;
	uint64_t caps[3] = { 4096, 65536, 1u << 20 };
	int nc = 3;
	if (cfg.capacity)
		caps[0] = cfg.capacity, nc = 1;
	double share = cfg.seconds / (np * nc);
	printf("stress: seed %" PRIu64 " (rerun: STRESS_SEED=%" PRIu64 "), %.1f s in %d rounds "
	       "of %.1f s, %u consumers, chaos:%s%s%s%s%s, %s\n", cfg.seed, cfg.seed,
	       cfg.seconds, np * nc, share, cfg.consumers, cfg.chaos & CH_KILL ? " kill" : "",
	       cfg.chaos & CH_STOP ? " stop" : "", cfg.chaos & CH_PKILL ? " pkill" : "",
	       cfg.chaos & CH_STORM ? " storm" : "", cfg.chaos ? "" : " none",
	       cfg.threads ? "threads" : "processes");
	struct totals tot;
	memset(&tot, 0, sizeof(tot));
	int failed = 0, r = 0;
	for (int pi = 0; pi < np; pi++)
		for (int ci = 0; ci < nc; ci++, r++)
			failed |= run_round(pols[pi], caps[ci], share, mix(cfg.seed + (uint64_t)r),
					    &tot);
	printf("\nstress %s: %" PRIu64 " messages sent in %d rounds, %" PRIu64
	       " consumer kills/restarts, %" PRIu64 " producer kills, %" PRIu64 " stops, %" PRIu64
	       " signals (%" PRIu64 " handled), longest producer stall %.1f ms, "
	       "late wake-ups %" PRIu64 " of %" PRIu64 " sleeps (the latest %.1f ms after the "
	       "data)\n",
	       failed ? "FAILED" : "passed", tot.sent, np * nc, tot.ckills, tot.pkills, tot.stops,
	       tot.sigs, tot.handled, (double)tot.stall_ns / 1e6, tot.late,
	       tot.sleeps, (double)tot.late_max_ns / 1e6);
	if (failed)
		printf("stress: rerun the same way with STRESS_SEED=%" PRIu64 "%s\n", cfg.seed,
		       cfg.threads ? " (thread mode)" : "");
	return failed;
}
