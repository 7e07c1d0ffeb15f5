/* SPDX-License-Identifier: MIT */
/*
 * shmring-perf: the performance harness.  Runs the scenarios, each case
 * against its own floor, repeated; prints tables, a targets block, and
 * writes CSV, JSON (and gnuplot PNGs) under the results folder.
 * Usage: shmring-perf --help
 */
#include "perf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "run.h"
#include "shmring.h"

#ifndef PERF_GIT_REV
#define PERF_GIT_REV "unknown"
#endif

/* ---- options ------------------------------------------------------------ */

static struct {
	unsigned scen;      /* bit set of scenarios */
	unsigned reps;
	double rep_s;       /* seconds per repetition */
	size_t sizes[8];
	unsigned nsizes;
	unsigned consumers; /* fan-out: up to this many */
	const char *only;   /* comma list of mechanisms, or NULL */
	const char *outdir;
	int plot, quick;
} opt = {
	.reps = 5, .rep_s = 0.3, .sizes = {8, 64, 512, 4096, 65536}, .nsizes = 5,
	.consumers = 4, .outdir = "perf/results", .plot = 1,
};

enum { S_TPUT = 1, S_RTT = 2, S_WAKE = 4, S_FANOUT = 8, S_SYSCALLS = 16 };

static struct mech *mechs[] = {
	&mech_shmring, &mech_shmring_poll, &mech_cacheline, &mech_futex, &mech_memcpy,
	&mech_bare, &mech_bare_ro, &mech_pipe, &mech_socketpair, &mech_mq, &mech_ck,
	&mech_rte, &mech_iox, &mech_urcu,
};
#define NMECH (sizeof(mechs) / sizeof(mechs[0]))

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shmring-perf [scenarios] [options]\n"
		"scenarios (default: all):\n"
		"  --throughput   1 producer, 1 consumer: sizes x batch 1,32 x copying/zero-copy\n"
		"  --rtt          round-trip latency, ping-pong over two rings (8 B)\n"
		"  --wake         one-way wake-up latency of a sleeping consumer; wakes per commit\n"
		"  --fanout       broadcast and groups with 1..N consumers (peers: N ck_ring SPSC\n"
		"                 rings for broadcast, one ck_ring SPMC ring for groups)\n"
		"  --syscalls     system calls per million messages at steady state\n"
		"options:\n"
		"  --cpus A,B     producer on cpu A, consumers on cpu B (default 0,1)\n"
		"  --reps N       repetitions per case (default 5); median and spread reported\n"
		"  --time S       seconds per repetition (default 0.3)\n"
		"  --sizes a,b,.. message sizes in bytes (default 8,64,512,4096,65536)\n"
		"  --consumers N  fan-out up to N consumers (default 4, at most 16)\n"
		"  --only m1,m2   only these mechanisms (shmring,cacheline,futex,memcpy,bare-copy,\n"
		"                 bare-copy-ro,pipe,socketpair,posix-mq,ck_ring,rte_ring,iceoryx,\n"
		"                 urcu-wfcq)\n"
		"  --out DIR      results folder (default perf/results)\n"
		"  --no-plot      no gnuplot PNGs\n"
		"  --quick        smoke test: 2 short repetitions, sizes 8 and 4096\n");
}

static int parse_list(const char *s, size_t *out, unsigned max)
{
	unsigned n = 0;
	char *end;
	while (*s && n < max) {
		unsigned long long v = strtoull(s, &end, 10);
		if (end == s)
			return -1;
		out[n++] = (size_t)v;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -1;
	}
	return (int)n;
}

static int parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--throughput"))
			opt.scen |= S_TPUT;
		else if (!strcmp(a, "--rtt"))
			opt.scen |= S_RTT;
		else if (!strcmp(a, "--wake"))
			opt.scen |= S_WAKE;
		else if (!strcmp(a, "--fanout"))
			opt.scen |= S_FANOUT;
		else if (!strcmp(a, "--syscalls"))
			opt.scen |= S_SYSCALLS;
		else if (!strcmp(a, "--quick"))
			opt.quick = 1;
		else if (!strcmp(a, "--no-plot"))
			opt.plot = 0;
		else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			exit(0);
		} else if (v && !strcmp(a, "--cpus")) {
			size_t c[2];
			if (parse_list(v, c, 2) != 2)
				return -1;
			g_cpu[0] = (int)c[0];
			g_cpu[1] = (int)c[1];
			i++;
		} else if (v && !strcmp(a, "--reps")) {
			opt.reps = (unsigned)atoi(v);
			i++;
		} else if (v && !strcmp(a, "--time")) {
			opt.rep_s = atof(v);
			i++;
		} else if (v && !strcmp(a, "--sizes")) {
			int n = parse_list(v, opt.sizes, 8);
			if (n <= 0)
				return -1;
			opt.nsizes = (unsigned)n;
			i++;
		} else if (v && !strcmp(a, "--consumers")) {
			opt.consumers = (unsigned)atoi(v);
			i++;
		} else if (v && !strcmp(a, "--only")) {
			opt.only = v;
			i++;
		} else if (v && !strcmp(a, "--out")) {
			opt.outdir = v;
			i++;
		} else {
			return -1;
		}
	}
	if (!opt.scen)
		opt.scen = S_TPUT | S_RTT | S_WAKE | S_FANOUT | S_SYSCALLS;
	if (opt.quick) {
		opt.reps = 2;
		opt.rep_s = 0.03;
		opt.sizes[0] = 8;
		opt.sizes[1] = 4096;
		opt.nsizes = 2;
		if (opt.consumers > 2)
			opt.consumers = 2;
	}
	for (unsigned i = 0; i < opt.nsizes; i++)
		if (opt.sizes[i] < 8 || opt.sizes[i] > (1u << 20))
			return -1;
	if (!opt.reps || opt.rep_s <= 0 || !opt.consumers || opt.consumers > 16)
		return -1;
	return 0;
}

static int selected(const struct mech *m)
{
	if (m->skip)
		return 0;
	if (!opt.only)
		return 1;
	size_t l = strlen(m->name);
	for (const char *s = opt.only; (s = strstr(s, m->name)); s += l)
		if ((s == opt.only || s[-1] == ',') && (s[l] == 0 || s[l] == ','))
			return 1;
	return 0;
}

/* ---- results ------------------------------------------------------------ */

struct result {
	const char *scen;   /* "throughput", "rtt", ... */
	const char *mech;
	struct params p;
	char depth[64];
	int ok;
	char note[ERRMSG];
	double med, lo, hi; /* msgs/s (throughput) or ns (latency) */
	double floor0, floor1; /* cache-line round trip: lowest and highest
	                     * around the kept repetitions, ns */
	double floor_med;   /* median of the kept repetitions' floors */
	double pfloor_med;  /* polling round trips: median of the fastest
	                     * floors (best_floor_now()) around them */
	char pfloor_np[64]; /* ... and the pauses per poll that gave each */
	unsigned redone;    /* repetitions run again: placed far apart */
	unsigned far;       /* repetitions kept although placed far apart */
	struct hist *h;     /* latency cases: all repetitions merged */
	double sys_per_m[2];/* system calls per million messages: producer, consumers */
	double sys_steady_per_m[2]; /* the same in the steady window (loop_step()) */
	double sys_floor;   /* syscalls: what the machine's stalls force at this rate */
	double slept;       /* sleeping round trip: median share of turns that slept */
	unsigned awake;     /* ... repetitions run again because they hardly slept */
	double wakes_per_commit;
	double nvcsw_per_m[2];
	double ratio;       /* to its reference (see ratio_to) */
	const char *ratio_to;
};

/* Each result is allocated on its own: a case being measured keeps a
 * pointer to its result while other cases add theirs (meas_begin()). */
static struct result **res;
static unsigned nres, capres;
/* Stalls per second of a bare spinning pair: over 20 us, 200 us, 1 ms,
 * 4 ms (the longest adaptive spin, SPIN_MAX_NS in src/internal.h). */
static double g_stalls[4] = {NAN, NAN, NAN, NAN};

static struct result *new_result(void)
{
	if (nres == capres) {
		capres = capres ? capres * 2 : 64;
		res = realloc(res, capres * sizeof(*res));
		if (!res) {
			perror("realloc");
			exit(1);
		}
	}
	res[nres] = calloc(1, sizeof(**res));
	if (!res[nres]) {
		perror("calloc");
		exit(1);
	}
	return res[nres++];
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double ns_of(double t)
{
	return t / g_ticks_per_ns;
}

/* The bare cache-line round trip now (median, ns). */
/* The lowest floor seen so far: the vCPUs' nearest placement. */
static double g_near = INFINITY;
/* Seconds the run may still spend waiting for a near placement. */
static double g_wait_budget = 150;

/* The bare cache-line round trip with npause pauses between polls. */
static double line_rtt(unsigned npause)
{
	struct params p = {.kind = K_RTT, .size = 8, .n = opt.quick ? 2000 : 20000,
			   .npause = npause};
	struct bench *b;
	double v = NAN;
	if (run_once(&mech_cacheline, &p, &b) == 0) {
		hist_finish(&b->h);
		v = ns_of(hist_quantile(&b->h, 0.5));
	}
	run_free(b);
	return v;
}

/* The floor that tells placements apart: one pause between polls. */
static double floor_now(void)
{
	double v = line_rtt(1);
	if (v > 0 && v < g_near)
		g_near = v;
	return v;
}

/*
 * The floor of a polling round trip: the fastest bare cache line of four
 * loops, 1, 2, 4 or 8 pauses between polls.  How often the reader polls
 * moves the round trip: on this VM's far placements 3-4 pauses ran 0.7x
 * one pause (perf/RESULTS.md, change 25).  *np gets the winning count,
 * which the harness's own polling loops then use (params.npause).
 */
static double best_floor_now(unsigned *np)
{
	static const unsigned counts[] = {1, 2, 4, 8};
	double best = INFINITY;
	*np = 1;
	for (unsigned i = 0; i < 4; i++) {
		double v = line_rtt(counts[i]);
		if (v < best) {
			best = v;
			*np = counts[i];
		}
	}
	return best < INFINITY ? best : NAN;
}

/* The ring of a throughput case: room for the peers' pool depth (4096
 * messages, see m_slots.c) where that is at most 1 MiB, else 1 MiB, and
 * always at least 4 batches of 32. */
static uint64_t ring_bytes_for(size_t size)
{
	uint64_t rec = SHMRING_RECORD_SIZE(size), need = 4096 * rec, cap = 4096;
	if (need > (1u << 20))
		need = 1u << 20;
	if (need < 4 * 32 * rec)
		need = 4 * 32 * rec;
	while (cap < need)
		cap <<= 1;
	return cap;
}

/* One case being measured: its result, and what its repetitions added up. */
struct meas {
	struct result *r;
	struct mech *m;
	struct params p;
	double vals[64], fl[64], sl[64], pfl[64];
	unsigned nv;
	uint64_t sys[2], nvcsw[2], msgs, commits, wakesys, ssys[2], smsgs[2];
	int sys_known, steady_known, failed;
};

/*
 * Starts measuring one case: sizes n so that a repetition lasts about
 * opt.rep_s (growing from a short warm-up run).  Then meas_rep() runs the
 * repetitions, each with the floor measured before and after, and
 * meas_end() makes the result.
 */
static void meas_begin(struct meas *ms, const char *scen, struct mech *m, struct params p)
{
	struct result *r = new_result();
	struct bench *b = NULL;
	memset(ms, 0, sizeof(*ms));
	ms->sys_known = ms->steady_known = 1;
	ms->m = m;
	ms->r = r;
	r->scen = scen;
	r->mech = m->name;
	if (!p.ring_bytes)
		p.ring_bytes = ring_bytes_for(p.size);
	r->p = p;
	r->floor0 = INFINITY;
	r->floor1 = 0;
	/* Warm-up and sizing: grow n until a run takes 20 ms (--quick: 5 ms). */
	double enough = opt.quick ? 0.005 : 0.02;
	uint64_t n = p.kind == K_TPUT || p.kind == K_MEMCPY ? 2000 : 200;
	if (p.kind == K_WAKE)
		n = 50;
	for (;;) {
		p.n = n;
		if (run_once(m, &p, &b)) {
			snprintf(r->note, sizeof(r->note), "%s", b->errmsg);
			run_free(b);
			ms->failed = 1;
			ms->p = p;
			return;
		}
		double t = (double)(b->t1_ns - b->t0_ns) / 1e9;
		p.depth = b->p.depth; /* what setup() found */
		run_free(b);
		if (t >= enough || n >= (1ull << 34)) {
			double want = (double)n * opt.rep_s / (t > 0 ? t : 1e-6);
			n = want < 100 ? 100 : (uint64_t)want;
			break;
		}
		n *= t < enough / 10 ? 16 : 4;
	}
	p.n = n;
	r->p.n = n;
	ms->p = p;
	if (p.kind == K_RTT || p.kind == K_WAKE) {
		r->h = malloc(sizeof(*r->h));
		hist_reset(r->h);
	}
}

/*
 * One repetition that is kept.  The host moves this VM's two vCPUs between
 * near and far placements (the floor jumps from ~70 to ~330 ns and back
 * within seconds), which changes every cross-core figure.  So each
 * repetition has the floor measured before and after it; one that ran far
 * from the nearest placement seen (2.5x its floor: near placements measure
 * 40-90 ns, far ones 330-350) is run again, up to 2 x reps times, and
 * before each repetition a far placement is waited out; both within one
 * budget of 150 s per run (make perf stays under 10 minutes).  So the
 * cases of one run compare at one placement; the targets leave out a pair
 * that could not.  Returns -1 once the case failed (r->note says why).
 */
static int meas_rep(struct meas *ms)
{
	struct result *r = ms->r;
	struct params p = ms->p;
	struct bench *b = NULL;
	if (ms->failed)
		return -1;
	for (;;) {
		if (ms->nv >= 64)
			return 0;
		double f0 = floor_now();
		/* Far now: wait (within the run's budget) for the host to
		 * bring the vCPUs back together. */
		while (!(f0 <= 2.5 * g_near) && g_wait_budget > 0 && !opt.quick) {
			struct timespec ts = {0, 100000000};
			nanosleep(&ts, NULL);
			g_wait_budget -= 0.1;
			f0 = floor_now();
		}
		/* Polling round trips: against the fastest bare loop, and
		 * the harness's loops poll as that one did. */
		int polling = p.kind == K_RTT && !p.sleep;
		unsigned np = 1, np1 = 1;
		double pf0 = polling ? best_floor_now(&np) : NAN;
		p.npause = np;
		if (run_once(ms->m, &p, &b)) {
			snprintf(r->note, sizeof(r->note), "%s", b->errmsg);
			run_free(b);
			ms->failed = 1;
			return -1;
		}
		double pf1 = polling ? best_floor_now(&np1) : NAN;
		double f1 = floor_now(), fmax = f0 > f1 ? f0 : f1, fmin = f0 < f1 ? f0 : f1;
		/* A sleeping round trip whose sides mostly found the answer
		 * before they could sleep measured a polling one: again. */
		double slept = p.kind == K_RTT && p.sleep ?
			(double)(b->nvcsw[0] + b->nvcsw[1]) / (2.0 * (double)p.n) : 1;
		int awake = slept < 0.5 && !opt.quick;
		if ((!(fmax <= 2.5 * g_near) || awake) && r->redone < 2 * opt.reps &&
		    g_wait_budget > 0) {
			r->awake += awake;
			r->redone++;
			g_wait_budget -= (double)(b->t1_ns - b->t0_ns) / 1e9;
			run_free(b);
			continue;
		}
		r->far += !(fmax <= 2.5 * g_near);
		ms->sl[ms->nv] = slept;
		ms->fl[ms->nv] = (f0 + f1) / 2;
		ms->pfl[ms->nv] = (pf0 + pf1) / 2;
		if (polling) {
			size_t l = strlen(r->pfloor_np);
			snprintf(r->pfloor_np + l, sizeof(r->pfloor_np) - l, "%s%u", l ? "," : "",
				 np);
		}
		if (fmin < r->floor0)
			r->floor0 = fmin;
		if (fmax > r->floor1)
			r->floor1 = fmax;
		if (p.kind == K_TPUT) {
			uint64_t got = 0;
			for (unsigned i = 1; i <= p.consumers; i++)
				got += b->got[i];
			uint64_t want = p.group ? p.n : p.n * p.consumers;
			if (got != want) {
				snprintf(r->note, sizeof(r->note), "consumers received %llu of %llu",
					 (unsigned long long)got, (unsigned long long)want);
				run_free(b);
				ms->failed = 1;
				return -1;
			}
		}
		if (p.kind == K_TPUT || p.kind == K_MEMCPY) {
			/* After the warm-up where its one consumer stamped it
			 * (tput_step()), else over the whole run. */
			uint64_t t0 = b->t0_ns, tw = atomic_load(&b->tw_ns), n = p.n;
			if (p.consumers <= 1 && tw > t0 && b->t1_ns > tw)
				t0 = tw, n -= b->tw_got;
			ms->vals[ms->nv++] = (double)n / ((double)(b->t1_ns - t0) / 1e9);
		} else {
			hist_finish(&b->h);
			ms->vals[ms->nv++] = ns_of(hist_quantile(&b->h, 0.5));
			hist_merge(r->h, &b->h);
		}
		for (unsigned i = 0; i <= p.consumers && i < MAX_ROLES; i++) {
			if (b->syscalls[i] < 0 && (i == 0 || p.kind == K_TPUT))
				ms->sys_known = 0;
			ms->sys[i ? 1 : 0] += b->syscalls[i] > 0 ? (uint64_t)b->syscalls[i] : 0;
			if (i == 0 || p.kind == K_TPUT) {
				ms->steady_known &= b->syscalls_steady[i] >= 0;
				ms->ssys[i ? 1 : 0] += b->syscalls_steady[i] > 0 ?
					(uint64_t)b->syscalls_steady[i] : 0;
				ms->smsgs[i ? 1 : 0] += b->steady_msgs[i];
			}
			ms->nvcsw[i ? 1 : 0] += (uint64_t)b->nvcsw[i];
		}
		ms->msgs += p.n;
		ms->commits += b->commits;
		ms->wakesys += b->syscalls[0] > 0 ? (uint64_t)b->syscalls[0] : 0;
		run_free(b);
		return 0;
	}
}

static struct result *meas_end(struct meas *ms)
{
	struct result *r = ms->r;
	struct params p = ms->p;
	if (!ms->failed && ms->nv) {
		unsigned nv = ms->nv;
		r->ok = 1;
		r->floor_med = median(ms->fl, nv);
		r->pfloor_med = p.kind == K_RTT && !p.sleep ? median(ms->pfl, nv) : NAN;
		r->slept = median(ms->sl, nv);
		r->med = median(ms->vals, nv);
		r->lo = ms->vals[0];
		r->hi = ms->vals[nv - 1];
		if (p.count_syscalls) {
			unsigned nc = p.consumers ? p.consumers : 1;
			double msgs = (double)ms->msgs;
			r->sys_per_m[0] = ms->sys_known ? (double)ms->sys[0] * 1e6 / msgs : NAN;
			r->sys_per_m[1] = ms->sys_known ? (double)ms->sys[1] * 1e6 / msgs / nc : NAN;
			for (int i = 0; i < 2; i++)
				r->sys_steady_per_m[i] =
					ms->sys_known && ms->steady_known && ms->smsgs[i] ?
					(double)ms->ssys[i] * 1e6 / (double)ms->smsgs[i] : NAN;
			r->nvcsw_per_m[0] = (double)ms->nvcsw[0] * 1e6 / msgs;
			r->nvcsw_per_m[1] = (double)ms->nvcsw[1] * 1e6 / msgs / nc;
			r->wakes_per_commit = ms->sys_known && ms->commits ?
				(double)ms->wakesys / (double)ms->commits : NAN;
		}
	}
	if (ms->m->depth)
		ms->m->depth(&p, r->depth, sizeof(r->depth));
	if (!(r->floor0 < INFINITY))
		r->floor0 = r->floor1 = NAN;
	return r;
}

/* Measures one case on its own: opt.reps repetitions in a row. */
static struct result *measure(const char *scen, struct mech *m, struct params p)
{
	struct meas ms;
	meas_begin(&ms, scen, m, p);
	for (unsigned rep = 0; rep < opt.reps && rep < 64; rep++)
		if (meas_rep(&ms))
			break;
	return meas_end(&ms);
}

static int floor_flag(const struct result *r)
{
	double a = r->floor0, z = r->floor1;
	return !(a > 0 && z > 0) || fabs(a - z) > 0.5 * (a < z ? a : z);
}

static const char *mode_of(const struct params *p)
{
	if (p->kind == K_RTT || p->kind == K_WAKE)
		return p->sleep || p->kind == K_WAKE ? "sleep" : "poll";
	return p->zc ? "zero-copy" : "copy";
}

static void fmt_rate(char *buf, size_t len, double v)
{
	if (v >= 1e6)
		snprintf(buf, len, "%.2f M/s", v / 1e6);
	else
		snprintf(buf, len, "%.1f k/s", v / 1e3);
}

static void print_row(const struct result *r)
{
	char a[32], spread[16];
	if (!r->ok) {
		const char *n = r->note;
		int skip = !strncmp(n, "skipped: ", 9);
		printf("  %-12s %5zu %5u %-9s %s: %s\n", r->mech, r->p.size, r->p.batch,
		       mode_of(&r->p), skip ? "skipped" : "FAILED", skip ? n + 9 : n);
		return;
	}
	snprintf(spread, sizeof(spread), "±%.0f%%",
		 r->med > 0 ? 50.0 * (r->hi - r->lo) / r->med : 0.0);
	if (r->p.kind == K_TPUT || r->p.kind == K_MEMCPY) {
		fmt_rate(a, sizeof(a), r->med);
		printf("  %-12s %5zu %5u %-9s %11s %5s %8.0f MB/s %7.2fx %-9s %-24s %3.0f/%-3.0f%s\n",
		       r->mech, r->p.size, r->p.batch, mode_of(&r->p), a, spread,
		       r->med * (double)r->p.size / 1e6, r->ratio, r->ratio_to ? r->ratio_to : "",
		       r->depth, r->floor0, r->floor1, floor_flag(r) ? " FLOOR-MOVED" : "");
		if (r->redone || r->far)
			printf("    (vCPUs placed far apart: %u repetitions run again, %u kept)\n",
			       r->redone, r->far);
	} else {
		const struct hist *h = r->h;
		printf("  %-12s %-5s %8.0f %5s %8.0f %8.0f %8.0f %9.0f %7.2fx %-9s %3.0f/%-3.0f%s\n",
		       r->mech, mode_of(&r->p), r->med, spread, ns_of(hist_quantile(h, 0.9)),
		       ns_of(hist_quantile(h, 0.99)), ns_of(hist_quantile(h, 0.999)),
		       ns_of((double)h->max), r->ratio, r->ratio_to ? r->ratio_to : "",
		       r->floor0, r->floor1, floor_flag(r) ? " FLOOR-MOVED" : "");
		if (r->redone > r->awake || r->far)
			printf("    (vCPUs placed far apart: %u repetitions run again, %u kept)\n",
			       r->redone - r->awake, r->far);
		if (r->p.kind == K_RTT && r->p.sleep)
			printf("    (the sides slept in %.0f%% of their turns%s; %u repetitions "
			       "that slept in under half were run again)\n", 100 * r->slept,
			       r->slept < 0.5 ? ": NOT A SLEEPING ROUND TRIP" : "", r->awake);
		if (r->p.kind == K_RTT && !r->p.sleep)
			printf("    (floor %.0f ns: the fastest bare cache-line loop; pauses per "
			       "poll %s)\n", r->pfloor_med, r->pfloor_np);
	}
	fflush(stdout);
}

static struct result *find(const char *scen, const char *mech, size_t size, unsigned batch,
			   int zc, int sleep, unsigned consumers, int group)
{
	for (unsigned i = 0; i < nres; i++) {
		struct result *r = res[i];
		if (r->ok && !strcmp(r->scen, scen) && !strcmp(r->mech, mech) &&
		    (!size || r->p.size == size) && r->p.batch == batch && r->p.zc == zc &&
		    r->p.sleep == sleep && r->p.consumers == consumers && r->p.group == group)
			return r;
	}
	return NULL;
}

/* ---- scenarios ---------------------------------------------------------- */

static const char *tput_head =
	"  mechanism     size batch mode         msgs/s spread   bandwidth  vs ref  ref       depth                    floor ns (before/after)\n";

static void scen_throughput(void)
{
	printf("\n== throughput: 1 producer (cpu %d) -> 1 consumer (cpu %d); ratio: to "
	       "shmring, same size/batch/mode\n%s", g_cpu[0], g_cpu[1], tput_head);
	for (unsigned si = 0; si < opt.nsizes; si++) {
		size_t size = opt.sizes[si];
		if (selected(&mech_memcpy)) {
			struct params p = {.kind = K_MEMCPY, .size = size, .batch = 1};
			struct result *r = measure("throughput", &mech_memcpy, p);
			r->ratio = 1;
			print_row(r);
		}
		static const unsigned batches[] = {1, 32};
		for (unsigned bi = 0; bi < 2; bi++)
			for (int zc = 0; zc < 2; zc++) {
				struct params p = {.kind = K_TPUT, .size = size, .batch = batches[bi],
						   .zc = zc, .consumers = 1};
				/* The mechanisms' repetitions take turns (each round
				 * starting with the next one), so that the ratios
				 * compare figures of the same stretch of time: the
				 * host moves the vCPUs (see meas_rep()) and a case
				 * run after another may find other placements. */
				struct meas ms[NMECH];
				unsigned nm = 0;
				for (unsigned mi = 0; mi < NMECH; mi++) {
					struct mech *m = mechs[mi];
					unsigned need = C_TPUT | (zc ? C_ZC : 0) |
							(batches[bi] > 1 ? C_BATCH : 0);
					/* The bare copying rings are floors of
					 * the large copies only: their line-sized
					 * slots would waste lines on small ones. */
					if ((m->caps & C_FLOOR) && size < 4096)
						continue;
					if (selected(m) && (m->caps & need) == need)
						meas_begin(&ms[nm++], "throughput", m, p);
				}
				for (unsigned rep = 0; rep < opt.reps && rep < 64; rep++)
					for (unsigned k = 0; k < nm; k++)
						meas_rep(&ms[(rep + k) % nm]);
				struct result *ref = NULL;
				for (unsigned k = 0; k < nm; k++) {
					struct result *r = meas_end(&ms[k]);
					if (ms[k].m == &mech_shmring)
						ref = r;
					if (r->ok && ref && ref->ok) {
						r->ratio = r->med / ref->med;
						r->ratio_to = "shmring";
					}
					print_row(r);
				}
			}
	}
	for (unsigned mi = 0; mi < NMECH; mi++)
		if (mechs[mi]->skip && (mechs[mi]->caps & C_TPUT))
			printf("  %-11s skipped: %s\n", mechs[mi]->name, mechs[mi]->skip);
		else if (mechs[mi]->note && selected(mechs[mi]))
			printf("  %-11s note: %s\n", mechs[mi]->name, mechs[mi]->note);
}

static const char *lat_head =
	"  mechanism    mode       p50 spread      p90      p99    p99.9       max  vs ref  ref       floor ns (before/after)\n";

static void scen_rtt(void)
{
	printf("\n== round trip, 8-byte ping-pong, cpu %d <-> cpu %d, ns; ratio: poll to the "
	       "fastest bare cache-line loop measured around each repetition, sleep to bare "
	       "futex; shmring spins in shmring_recv_wait(), shmring-poll and the others poll "
	       "in the harness's loop\n%s",
	       g_cpu[0], g_cpu[1], lat_head);
	struct result *fx = NULL;
	for (int sleep = 0; sleep < 2; sleep++)
		for (unsigned mj = 0; mj < NMECH; mj++) {
			/* The futex floor first: the sleeping cases are its ratios. */
			struct mech *m = mj == 0 ? &mech_futex : mechs[mj] == &mech_futex ? mechs[0] : mechs[mj];
			if (!selected(m) || !(m->caps & (sleep ? C_RTT_SLEEP : C_RTT_SPIN)))
				continue;
			struct params p = {.kind = K_RTT, .size = 8, .batch = 1, .sleep = sleep};
			struct result *r = measure("rtt", m, p);
			if (m == &mech_futex)
				fx = r;
			if (r->ok && !sleep && r->pfloor_med > 0) {
				r->ratio = r->med / r->pfloor_med;
				r->ratio_to = "floor";
			} else if (r->ok && sleep && fx && fx->ok) {
				r->ratio = r->med / fx->med;
				r->ratio_to = "futex";
			}
			print_row(r);
		}
	for (unsigned mi = 0; mi < NMECH; mi++)
		if (mechs[mi]->skip && (mechs[mi]->caps & (C_RTT_SPIN | C_RTT_SLEEP)))
			printf("  %-10s skipped: %s\n", mechs[mi]->name, mechs[mi]->skip);
}

static void scen_wake(void)
{
	printf("\n== wake-up of a sleeping consumer (one way, cpu %d -> cpu %d, 50 us idle "
	       "before each send), ns; ratio to bare futex wake\n%s",
	       g_cpu[0], g_cpu[1], lat_head);
	struct result *fx = NULL;
	struct mech *ms[] = {&mech_futex, &mech_shmring};
	int hold = syscalls_hold();
	for (unsigned i = 0; i < 2; i++) {
		if (!selected(ms[i]))
			continue;
		struct params p = {.kind = K_WAKE, .size = 16, .batch = 1, .count_syscalls = 1};
		struct result *r = measure("wake", ms[i], p);
		if (i == 0)
			fx = r;
		if (r->ok && fx && fx->ok) {
			r->ratio = r->med / fx->med;
			r->ratio_to = "futex";
		}
		print_row(r);
	}
	if (!selected(&mech_shmring)) {
		syscalls_release(hold);
		return;
	}
	printf("  system calls of the producer per committed batch, consumer asleep each time:\n");
	static const unsigned batches[] = {1, 32};
	for (unsigned i = 0; i < 2; i++) {
		struct params p = {.kind = K_WAKE, .size = 16, .batch = batches[i],
				   .count_syscalls = 1};
		struct result *r = i == 0 ? find("wake", "shmring", 16, 1, 0, 0, 0, 0)
					  : measure("wake", &mech_shmring, p);
		if (r && r->ok)
			printf("    batch %2u: %.3f system calls per commit\n", batches[i],
			       r->wakes_per_commit);
		else if (r)
			printf("    batch %2u: FAILED: %s\n", batches[i], r->note);
	}
	syscalls_release(hold);
}

static void scen_fanout(void)
{
	int peer_on = selected(&mech_ck);
	if (!selected(&mech_shmring) && !peer_on)
		return;
	printf("\n== fan-out: 64 B, batch 32, zero-copy; producer on cpu %d, all consumers "
	       "on cpu %d; msgs/s counts each message once; shmring: ratio to its 1 consumer, "
	       "peers: ratio to shmring with as many consumers\n"
	       "   broadcast (each consumer sees every message): no installed baseline "
	       "broadcasts; the peer is N ck_ring SPSC rings, one per consumer, the producer "
	       "writing each message into every one\n"
	       "   group (work sharing, each message to one consumer): the peer is one ck_ring "
	       "SPMC ring (ck_ring_enqueue_spmc / ck_ring_dequeue_spmc), work sharing "
	       "like groups, not broadcast\n%s",
	       g_cpu[0], g_cpu[1], tput_head);
	for (int group = 0; group < 2; group++) {
		struct result *one = NULL;
		struct mech *peer = group ? &mech_ck_group : &mech_ck_bcast;
		for (unsigned c = 1; c <= opt.consumers; c *= 2) {
			struct params p = {.kind = K_TPUT, .size = 64, .batch = 32, .zc = 1,
					   .consumers = c, .group = group};
			const char *scen = group ? "group" : "broadcast";
			struct result *r = NULL;
			if (selected(&mech_shmring)) {
				r = measure(scen, &mech_shmring, p);
				if (c == 1)
					one = r;
				if (r->ok && one && one->ok) {
					r->ratio = r->med / one->med;
					r->ratio_to = "1 cons";
				}
				printf("  %-9s x%-2u", scen, c);
				print_row(r);
			}
			if (!peer_on)
				continue;
			struct result *q = measure(scen, peer, p);
			if (q->ok && r && r->ok) {
				q->ratio = q->med / r->med;
				q->ratio_to = "shmring";
			}
			printf("  %-9s x%-2u", scen, c);
			print_row(q);
		}
	}
	if (!peer_on)
		printf("  ck_ring     skipped: %s\n", mech_ck.skip ? mech_ck.skip : "not selected");
}

static void scen_syscalls(void)
{
	if (!selected(&mech_shmring))
		return;
	printf("\n== system calls per million messages at steady state (raw_syscalls tracepoint%s;"
	       " libshmring: repetitions 10x as long; steady: each role's middle three quarters"
	       " of the messages, whole: its whole loop)"
	       "\n  case                          steady: producer consumer  whole: producer consumer"
	       "   vol. ctx switches/M (p/c)\n",
	       syscalls_countable() ? "" : " NOT AVAILABLE: counts are n/a");
	static const size_t sizes[] = {64, 4096};
	static const unsigned batches[] = {1, 32};
	int hold = syscalls_hold();
	/* Steady state: repetitions ten times as long, so that what each new
	 * process does once (attaching, its spin adapting from 20 us, about
	 * six sleeps) weighs a tenth as much. */
	double rep_s = opt.rep_s;
	opt.rep_s = 10 * rep_s;
	for (unsigned si = 0; si < 2; si++)
		for (unsigned bi = 0; bi < 2; bi++) {
			struct params p = {.kind = K_TPUT, .size = sizes[si], .batch = batches[bi],
					   .zc = 1, .consumers = 1, .count_syscalls = 1};
			struct result *r = measure("syscalls", &mech_shmring, p);
			if (!r->ok) {
				printf("  shmring %5zu B batch %2u  FAILED: %s\n", sizes[si],
				       batches[bi], r->note);
				continue;
			}
			printf("  shmring %5zu B batch %2u             %9.2f %9.2f        %9.2f %9.2f"
			       "   %9.2f / %.2f\n",
			       sizes[si], batches[bi], r->sys_steady_per_m[0], r->sys_steady_per_m[1],
			       r->sys_per_m[0], r->sys_per_m[1], r->nvcsw_per_m[0],
			       r->nvcsw_per_m[1]);
		}
	opt.rep_s = rep_s;
	/* The floor: how often a bare spinning pair on the same two CPUs is
	 * stopped longer than the longest spin, for a rate of messages. */
	struct params sp = {.kind = K_STALL, .n = opt.quick ? 200000000ull : 3000000000ull};
	struct bench *b = NULL;
	if (run_once(&mech_cacheline, &sp, &b) == 0) {
		double secs = (double)sp.n / 1e9;
		for (int i = 0; i < 4; i++)
			g_stalls[i] = (double)b->gaps[i] / secs;
		printf("  bare spinning pair, %.1f s: stalls over 20 us %.1f/s, over 200 us %.1f/s, "
		       "over 1 ms %.2f/s, over 4 ms %.2f/s\n", secs, g_stalls[0], g_stalls[1],
		       g_stalls[2], g_stalls[3]);
		for (unsigned k = 0; k < nres; k++) {
			struct result *x = res[k];
			if (!x->ok || strcmp(x->scen, "syscalls") || strcmp(x->mech, "shmring"))
				continue;
			/* The case's rate in the throughput scenario, where it
			 * ran with nothing counted; else its own. */
			struct result *t = find("throughput", "shmring", x->p.size, x->p.batch, 1, 0,
						1, 0);
			double rate = t && t->ok ? t->med : x->med;
			/* Each stall over the spin cap costs the sleeper a
			 * membarrier and a futex wait, and the waker a wake. */
			x->sys_floor = 3.0 * g_stalls[3] / rate * 1e6;
			printf("    %5zu B batch %2u at %.3g msg/s: a waiter spinning at most 4 ms "
			       "sleeps at least %.3g times per million (%.3g system calls)\n",
			       x->p.size, x->p.batch, rate, g_stalls[3] / rate * 1e6, x->sys_floor);
		}
	} else {
		printf("  bare spinning pair: FAILED: %s\n", b ? b->errmsg : "out of memory");
	}
	run_free(b);
	for (unsigned mi = 0; mi < NMECH; mi++) {
		struct mech *m = mechs[mi];
		if (m == &mech_shmring || !selected(m) || !(m->caps & C_TPUT) ||
		    (m->caps & (C_THREADS | C_FLOOR)))
			continue;
		struct params p = {.kind = K_TPUT, .size = 64, .batch = 1, .consumers = 1,
				   .count_syscalls = 1};
		struct result *r = measure("syscalls", m, p);
		if (r->ok)
			printf("  %-10s 64 B batch  1     %9.0f %9.0f   %9.0f / %.0f\n", m->name,
			       r->sys_per_m[0], r->sys_per_m[1], r->nvcsw_per_m[0], r->nvcsw_per_m[1]);
	}
	syscalls_release(hold);
}

/* ---- report: machine, targets, CSV, JSON, plots ------------------------- */

static char g_stamp[32];

static void cpu_model(char *buf, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[256];
	snprintf(buf, len, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "model name", 10)) {
			char *c = strchr(line, ':');
			if (c) {
				c += 2;
				c[strcspn(c, "\n")] = 0;
				snprintf(buf, len, "%s", c);
			}
			break;
		}
	fclose(f);
}

/* What recording one latency sample adds to a timed loop, ns: a loop of
 * ticks() with sample_add() against the same loop without it. */
static double sample_cost_ns(void)
{
	static struct hist h;
	enum { N = 1000000 };
	double best = NAN;
	hist_reset(&h);
	for (int round = 0; round < 3; round++) {
		if (samples_prepare(N))
			return NAN;
		uint64_t a = ticks(), x = 0, prev = a;
		for (unsigned i = 0; i < N; i++) {
			uint64_t t = ticks();
			x += t - prev;
			prev = t;
			__asm__ volatile("" : : "r"(x) : "memory");
		}
		uint64_t b = ticks();
		prev = b;
		for (unsigned i = 0; i < N; i++) {
			uint64_t t = ticks();
			sample_add(t - prev);
			prev = t;
		}
		uint64_t c = ticks();
		samples_flush(&h);
		double d = ((double)(c - b) - (double)(b - a)) / N;
		d = d > 0 ? ns_of(d) : 0;
		if (isnan(best) || d < best)
			best = d;
	}
	return best;
}

static void print_machine(void)
{
	struct utsname u;
	char model[128];
	time_t now = time(NULL);
	uname(&u);
	cpu_model(model, sizeof(model));
	strftime(g_stamp, sizeof(g_stamp), "%Y%m%d-%H%M%S", localtime(&now));
	printf("shmring-perf (libshmring %d.%d.%d, git %s), %s\n", shmring_version() >> 16,
	       (shmring_version() >> 8) & 255, shmring_version() & 255, PERF_GIT_REV, g_stamp);
	printf("machine: %s, %ld cpus online, %s %s %s\n", model, sysconf(_SC_NPROCESSORS_ONLN),
	       u.sysname, u.release, u.machine);
	printf("compiler: %s; TSC %.3f ticks/ns (calibrated on CLOCK_MONOTONIC)\n", __VERSION__,
	       g_ticks_per_ns);
	double sc = sample_cost_ns(), fl = floor_now();
	for (int i = 0; i < 4; i++) /* the nearest placement: g_near */
		floor_now();
	printf("latency samples: recorded raw in the timed loop (one store), bucketed after it; "
	       "cost per sample %.2f ns (best of 3 rounds) = %.1f%% of the bare cache-line round trip (%.0f ns now)\n",
	       sc, 100 * sc / fl, fl);
	printf("pinning: producer/pinger cpu %d, consumers/ponger cpu %d; %u repetitions of "
	       "~%.2f s per case after a warm-up; median and spread (max-min)/2/median\n",
	       g_cpu[0], g_cpu[1], opt.reps, opt.rep_s);
	printf("floor: bare cache-line round trip measured before and after each repetition; "
	       "a repetition whose floor exceeds 2.5x the lowest seen (the host placed the vCPUs "
	       "farther apart) is run again, up to 2x the repetitions; the floor columns give the "
	       "lowest/highest around the kept ones, FLOOR-MOVED marks a case whose two differ by "
	       "more than 50%%\n");
	for (unsigned i = 0; i < NMECH; i++)
		if (mechs[i]->skip)
			printf("skipped: %s: %s\n", mechs[i]->name, mechs[i]->skip);
}

static void target(const char *what, double v, double goal, int at_most, const char *detail)
{
	const char *st = isnan(v) ? "n/a" : (at_most ? v <= goal : v >= goal) ? "met" : "NOT MET";
	printf("  %-52s %9.3g  target %s %-6g %-8s %s\n", what, v, at_most ? "<=" : ">=", goal,
	       st, detail ? detail : "");
}

/* Beside the copying targets: the bare rings of the same rounds.  ro/rw is
 * what a read-only view costs a ring that only copies; shmring is held
 * against the read-only one (its consumers read through such a view), the
 * peers' pools (read-write) against the read-write one. */
static void print_copy_floors(void)
{
	int head = 0;
	for (unsigned k = 0; k < nres; k++) {
		struct result *rw = res[k];
		if (!rw->ok || strcmp(rw->scen, "throughput") || strcmp(rw->mech, "bare-copy") ||
		    rw->p.size < 4096)
			continue;
		struct result *ro = find("throughput", "bare-copy-ro", rw->p.size, rw->p.batch, 0, 0, 1, 0);
		struct result *s = find("throughput", "shmring", rw->p.size, rw->p.batch, 0, 0, 1, 0);
		struct result *ck = find("throughput", "ck_ring", rw->p.size, rw->p.batch, 0, 0, 1, 0);
		struct result *rt = find("throughput", "rte_ring", rw->p.size, rw->p.batch, 0, 0, 1, 0);
		if (!head++)
			printf("  copying floors (same rounds): bare-copy-ro / bare-copy, shmring / "
			       "bare-copy-ro, ck_ring and rte_ring / bare-copy\n");
		printf("    %6zu B batch %2u copy: ro/rw %.3g, shmring %.3g, ck_ring %.3g, "
		       "rte_ring %.3g%s\n", rw->p.size, rw->p.batch, ro ? ro->med / rw->med : NAN,
		       s && ro ? s->med / ro->med : NAN, ck ? ck->med / rw->med : NAN,
		       rt ? rt->med / rw->med : NAN,
		       (ro && !ro->far != !rw->far) || (s && !s->far != !rw->far) ?
			       " (placed apart)" : "");
	}
}

static void print_targets(void)
{
	char d[128];
	printf("\n== targets (issue 8): measured ratio, target, status\n");
	struct result *r = find("rtt", "shmring", 8, 1, 0, 0, 0, 0);
	target("round trip 8 B polling / bare cache-line", r && r->ratio > 0 ? r->ratio : NAN, 1.3, 1,
	       r && floor_flag(r) ? "(floor moved)" : NULL);
	r = find("rtt", "shmring", 8, 1, 0, 1, 0, 0);
	struct result *fx = find("rtt", "futex", 8, 1, 0, 1, 0, 0);
	/* Only between two round trips that did sleep. */
	int awake = (r && r->ok && r->slept < 0.5) || (fx && fx->ok && fx->slept < 0.5);
	target("round trip 8 B sleeping / bare futex",
	       r && r->ratio > 0 && !awake ? r->ratio : NAN, 1.1, 1,
	       awake ? "(a side hardly slept: not comparable)" : NULL);
	static const char *const peers[] = {"ck_ring", "rte_ring", "iceoryx", "pipe",
					    "socketpair", "posix-mq"};
	for (unsigned i = 0; i < 6; i++) {
		double worst = NAN;
		unsigned apart = 0;
		d[0] = 0;
		for (unsigned k = 0; k < nres; k++) {
			struct result *x = res[k];
			if (!x->ok || strcmp(x->scen, "throughput") || strcmp(x->mech, peers[i]) ||
			    x->p.size > 4096 || !(x->ratio > 0))
				continue;
			/* A pair measured at different vCPU placements says
			 * nothing: left out, and counted. */
			struct result *s = find("throughput", "shmring", x->p.size, x->p.batch,
						x->p.zc, 0, 1, 0);
			if (!s || !x->far != !s->far) {
				apart++;
				continue;
			}
			double v = 1 / x->ratio;
			if (isnan(worst) || v < worst) {
				worst = v;
				snprintf(d, sizeof(d), "(worst: %zu B batch %u %s)", x->p.size,
					 x->p.batch, mode_of(&x->p));
			}
		}
		char w[96];
		snprintf(w, sizeof(w), "throughput 8..4096 B shmring / %s, worst", peers[i]);
		if (apart)
			snprintf(d + strlen(d), sizeof(d) - strlen(d),
				 " (%u pairs left out: vCPUs placed apart)", apart);
		target(w, worst, 1.0, 0, d);
	}
	double pw = NAN;
	for (unsigned b = 1; b <= 32; b += 31) {
		struct result *x = find("throughput", "pipe", 64, b, 0, 0, 1, 0);
		if (x && x->ratio > 0 && (isnan(pw) || 1 / x->ratio < pw))
			pw = 1 / x->ratio;
	}
	target("throughput 64 B shmring / pipe (worse of batch 1, 32)", pw, 50, 0, NULL);
	struct result *mc = find("throughput", "memcpy", 65536, 1, 0, 0, 0, 0);
	for (int zc = 1; zc >= 0; zc--) {
		struct result *x = find("throughput", "shmring", 65536, 1, zc, 0, 1, 0);
		snprintf(d, sizeof(d), "throughput 65536 B %s / memcpy bandwidth",
			 zc ? "zero-copy" : "copying");
		/* The copying target beside its floor: a bare ring that only
		 * copies in and out, measured in the same rounds. */
		struct result *bc = zc ? NULL : find("throughput", "bare-copy", 65536, 1, 0, 0, 1, 0);
		struct result *bo = zc ? NULL : find("throughput", "bare-copy-ro", 65536, 1, 0, 0, 1, 0);
		char fl[96] = "";
		if (bc && bo && mc)
			snprintf(fl, sizeof(fl), "(bare-copy: %.3g, bare-copy-ro: %.3g%s)",
				 bc->med / mc->med, bo->med / mc->med,
				 x && (!x->far != !bc->far || !x->far != !bo->far) ? ", placed apart" : "");
		target(d, x && mc ? x->med / mc->med : NAN, zc ? 0.8 : 0.6, 0, fl[0] ? fl : NULL);
	}
	double sc = NAN, scf = NAN;
	for (unsigned k = 0; k < nres; k++)
		if (res[k]->ok && !strcmp(res[k]->scen, "syscalls") && !strcmp(res[k]->mech, "shmring")) {
			double v = res[k]->sys_steady_per_m[0] + res[k]->sys_steady_per_m[1];
			if (isnan(v))
				v = res[k]->sys_per_m[0] + res[k]->sys_per_m[1];
			if (isnan(sc) || v > sc)
				sc = v, scf = res[k]->sys_floor;
		}
	d[0] = 0;
	if (!isnan(scf))
		snprintf(d, sizeof(d), "(that case's floor from machine stalls: %.3g)", scf);
	target("system calls per million messages, steady state (worst)", sc, 1, 1,
	       d[0] ? d : NULL);
	double wk = NAN;
	for (unsigned k = 0; k < nres; k++)
		if (res[k]->ok && !strcmp(res[k]->scen, "wake") && !strcmp(res[k]->mech, "shmring") &&
		    (isnan(wk) || res[k]->wakes_per_commit > wk))
			wk = res[k]->wakes_per_commit;
	target("system calls per commit, sleeping consumer (worst)", wk, 1, 1, NULL);
	r = find("rtt", "shmring", 8, 1, 0, 0, 0, 0);
	struct result *ix = find("rtt", "iceoryx", 8, 1, 0, 0, 0, 0);
	target("round trip 8 B polling shmring / iceoryx", r && ix ? r->med / ix->med : NAN,
	       0.2, 1, NULL);
	print_copy_floors();
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s < 32)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static double or0(double v)
{
	return isnan(v) || isinf(v) ? -1 : v;
}

static void write_results(void)
{
	char path[512], base[480];
	struct utsname u;
	char model[128];
	uname(&u);
	cpu_model(model, sizeof(model));
	mkdir(opt.outdir, 0755);
	snprintf(base, sizeof(base), "%s/%s", opt.outdir, g_stamp);
	snprintf(path, sizeof(path), "%s.csv", base);
	FILE *c = fopen(path, "w");
	snprintf(path, sizeof(path), "%s.json", base);
	FILE *j = fopen(path, "w");
	if (!c || !j) {
		fprintf(stderr, "perf: cannot write results in %s: %s\n", opt.outdir, strerror(errno));
		if (c)
			fclose(c);
		if (j)
			fclose(j);
		return;
	}
	fprintf(c, "scenario,mechanism,size,batch,mode,consumers,group,depth,n,unit,median,min,max,"
		   "p50_ns,p90_ns,p99_ns,p999_ns,max_ns,ratio,ratio_to,floor_before_ns,"
		   "floor_after_ns,floor_moved,syscalls_per_M_producer,syscalls_per_M_consumer,"
		   "wakes_per_commit,status\n");
	fprintf(j, "{\n \"machine\": {\"cpu\": ");
	json_str(j, model);
	fprintf(j, ", \"cpus_online\": %ld, \"kernel\": ", sysconf(_SC_NPROCESSORS_ONLN));
	json_str(j, u.release);
	fprintf(j, ", \"compiler\": ");
	json_str(j, __VERSION__);
	fprintf(j, ", \"tsc_ticks_per_ns\": %.4f, \"cpus\": [%d, %d], \"reps\": %u, "
		   "\"seconds_per_rep\": %.3f, \"git\": \"%s\"},\n \"results\": [\n",
		g_ticks_per_ns, g_cpu[0], g_cpu[1], opt.reps, opt.rep_s, PERF_GIT_REV);
	for (unsigned i = 0; i < nres; i++) {
		struct result *r = res[i];
		int lat = r->p.kind == K_RTT || r->p.kind == K_WAKE;
		double q[5] = {-1, -1, -1, -1, -1};
		if (lat && r->ok) {
			q[0] = ns_of(hist_quantile(r->h, 0.5));
			q[1] = ns_of(hist_quantile(r->h, 0.9));
			q[2] = ns_of(hist_quantile(r->h, 0.99));
			q[3] = ns_of(hist_quantile(r->h, 0.999));
			q[4] = ns_of((double)r->h->max);
		}
		const char *st = r->ok ? "ok" : strncmp(r->note, "skipped: ", 9) ? "failed" : "skipped";
		fprintf(c, "%s,%s,%zu,%u,%s,%u,%d,\"%s\",%llu,%s,%.6g,%.6g,%.6g,%.1f,%.1f,%.1f,%.1f,"
			   "%.1f,%.4g,%s,%.1f,%.1f,%d,%.4g,%.4g,%.4g,%s\n",
			r->scen, r->mech, r->p.size, r->p.batch, mode_of(&r->p), r->p.consumers,
			r->p.group, r->depth, (unsigned long long)r->p.n, lat ? "ns" : "msgs/s",
			r->med, r->lo, r->hi, q[0], q[1], q[2], q[3], q[4], r->ratio,
			r->ratio_to ? r->ratio_to : "", or0(r->floor0), or0(r->floor1),
			floor_flag(r), or0(r->sys_per_m[0]), or0(r->sys_per_m[1]),
			or0(r->wakes_per_commit), st);
		fprintf(j, "  {\"scenario\": \"%s\", \"mechanism\": \"%s\", \"size\": %zu, "
			   "\"batch\": %u, \"mode\": \"%s\", \"consumers\": %u, \"group\": %d, "
			   "\"depth\": ",
			r->scen, r->mech, r->p.size, r->p.batch, mode_of(&r->p), r->p.consumers,
			r->p.group);
		json_str(j, r->depth);
		fprintf(j, ", \"status\": \"%s\", \"note\": ", st);
		json_str(j, r->note);
		fprintf(j, ", \"unit\": \"%s\", \"median\": %.6g, \"min\": %.6g, \"max\": %.6g, "
			   "\"percentiles_ns\": {\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, "
			   "\"p99.9\": %.1f, \"max\": %.1f}, \"ratio\": %.4g, \"ratio_to\": \"%s\", "
			   "\"floor_ns\": [%.1f, %.1f], \"floor_moved\": %s, "
			   "\"polling_floor_ns\": %.1f, \"polling_floor_pauses\": \"%s\", "
			   "\"syscalls_per_million\": [%.4g, %.4g], \"wakes_per_commit\": %.4g}%s\n",
			lat ? "ns" : "msgs/s", r->med, r->lo, r->hi, q[0], q[1], q[2], q[3], q[4],
			r->ratio, r->ratio_to ? r->ratio_to : "", or0(r->floor0), or0(r->floor1),
			floor_flag(r) ? "true" : "false", or0(r->pfloor_med), r->pfloor_np,
			or0(r->sys_per_m[0]), or0(r->sys_per_m[1]), or0(r->wakes_per_commit),
			i + 1 < nres ? "," : "");
	}
	fprintf(j, " ]\n}\n");
	fclose(c);
	fclose(j);
	printf("\nresults: %s.csv %s.json\n", base, base);

	if (!opt.plot)
		return;
	if (system("command -v gnuplot >/dev/null 2>&1")) {
		printf("plots: skipped: gnuplot is not installed (apt-get install gnuplot-nox)\n");
		return;
	}
	/* Latency: one CDF per case; throughput: one line per mechanism/batch/mode. */
	snprintf(path, sizeof(path), "%s-plot.dat", base);
	FILE *d = fopen(path, "w");
	snprintf(path, sizeof(path), "%s-plot.gp", base);
	FILE *g = fopen(path, "w");
	if (!d || !g) {
		if (d)
			fclose(d);
		if (g)
			fclose(g);
		return;
	}
	unsigned idx = 0;
	fprintf(g, "set terminal png size 1200,800\nset datafile separator ' '\n"
		   "set output '%s-latency.png'\nset logscale x\nset key outside right\n"
		   "set xlabel 'latency, ns (log)'\nset ylabel 'fraction of samples at or below'\n"
		   "set title 'round-trip and wake-up latency distributions'\nplot ", base);
	for (unsigned i = 0; i < nres; i++) {
		struct result *r = res[i];
		if (!r->ok || !r->h)
			continue;
		uint64_t cum = 0;
		fprintf(d, "# %s %s %s\n", r->scen, r->mech, mode_of(&r->p));
		for (unsigned k = 0; k < HIST_BUCKETS; k++) {
			if (!r->h->b[k])
				continue;
			cum += r->h->b[k];
			double lo, w;
			bucket_range(k, &lo, &w);
			fprintf(d, "%.1f %.6f\n", ns_of(lo + w), (double)cum / (double)r->h->n);
		}
		fprintf(d, "\n\n");
		fprintf(g, "%s'%s-plot.dat' index %u with steps title '%s %s %s'", idx ? ", " : "",
			base, idx, r->scen, r->mech, mode_of(&r->p));
		idx++;
	}
	fprintf(g, "\nset output '%s-throughput.png'\nset logscale xy\n"
		   "set xlabel 'message size, bytes'\nset ylabel 'MB/s'\n"
		   "set title 'throughput, 1 producer -> 1 consumer'\nplot ", base);
	unsigned first = 1;
	for (unsigned i = 0; i < nres; i++) {
		struct result *r = res[i];
		if (!r->ok || strcmp(r->scen, "throughput"))
			continue;
		int seen = 0;
		for (unsigned k = 0; k < i && !seen; k++)
			seen = res[k]->ok && !strcmp(res[k]->scen, "throughput") &&
			       !strcmp(res[k]->mech, r->mech) && res[k]->p.batch == r->p.batch &&
			       res[k]->p.zc == r->p.zc;
		if (seen)
			continue;
		fprintf(d, "# throughput %s batch %u %s\n", r->mech, r->p.batch, mode_of(&r->p));
		for (unsigned k = i; k < nres; k++)
			if (res[k]->ok && !strcmp(res[k]->scen, "throughput") &&
			    !strcmp(res[k]->mech, r->mech) && res[k]->p.batch == r->p.batch &&
			    res[k]->p.zc == r->p.zc)
				fprintf(d, "%zu %.3f\n", res[k]->p.size,
					res[k]->med * (double)res[k]->p.size / 1e6);
		fprintf(d, "\n\n");
		fprintf(g, "%s'%s-plot.dat' index %u with linespoints title '%s b%u %s'",
			first ? "" : ", ", base, idx, r->mech, r->p.batch, mode_of(&r->p));
		first = 0;
		idx++;
	}
	fprintf(g, "\n");
	fclose(d);
	fclose(g);
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "gnuplot '%s-plot.gp' 2>'%s-plot.log'", base, base);
	if (system(cmd) == 0)
		printf("plots: %s-latency.png %s-throughput.png\n", base, base);
	else
		printf("plots: gnuplot failed, see %s-plot.log\n", base);
}

int main(int argc, char **argv)
{
	if (parse_args(argc, argv)) {
		usage(stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Calibrate the TSC against CLOCK_MONOTONIC over 100 ms. */
	uint64_t t0 = pf_now_ns(), c0 = ticks();
	while (pf_now_ns() - t0 < (opt.quick ? 20000000u : 100000000u))
		;
	g_ticks_per_ns = (double)(ticks() - c0) / (double)(pf_now_ns() - t0);

	for (unsigned i = 0; i < NMECH; i++)
		if (mechs[i]->init)
			mechs[i]->init(mechs[i]);
	print_machine();
	uint64_t start = pf_now_ns();
	if (opt.scen & S_RTT)
		scen_rtt();
	if (opt.scen & S_WAKE)
		scen_wake();
	if (opt.scen & S_TPUT)
		scen_throughput();
	if (opt.scen & S_FANOUT)
		scen_fanout();
	if (opt.scen & S_SYSCALLS)
		scen_syscalls();
	for (unsigned i = 0; i < NMECH; i++)
		if (mechs[i]->fini)
			mechs[i]->fini(mechs[i]);
	print_targets();
	write_results();
	int bad = 0;
	for (unsigned i = 0; i < nres; i++)
		bad += !res[i]->ok && strncmp(res[i]->note, "skipped: ", 9);
	printf("\nwhole run: %.0f s, %u cases, %d failed\n", (double)(pf_now_ns() - start) / 1e9,
	       nres, bad);
	return bad ? 1 : 0;
}
