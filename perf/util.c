/* SPDX-License-Identifier: MIT */
/* Helpers of the performance harness: histogram, shared memory, clocks,
 * futexes, system-call counting. */
#include "perf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <linux/futex.h>
#include <linux/perf_event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

double g_ticks_per_ns = 1.0;
_Thread_local struct samples g_samples;

int samples_prepare(uint64_t cap)
{
	struct samples *s = &g_samples;
	if (cap > (64ull << 20))
		cap = 64ull << 20;
	s->n = 0;
	s->len = (size_t)(cap ? cap : 1) * sizeof(uint64_t);
	s->v = mmap(NULL, s->len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (s->v == MAP_FAILED) {
		s->v = NULL;
		s->cap = 0;
		return -1;
	}
	/* Touched even where MAP_POPULATE is not honoured. */
	for (size_t i = 0; i < s->len; i += 4096)
		((volatile char *)s->v)[i] = 0;
	s->cap = cap;
	return 0;
}

void samples_flush(struct hist *h)
{
	struct samples *s = &g_samples;
	for (uint64_t i = 0; i < s->n; i++)
		hist_add(h, s->v[i]);
	if (s->v)
		munmap(s->v, s->len);
	memset(s, 0, sizeof(*s));
}

void hist_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void hist_finish(struct hist *h)
{
	h->n = 0;
	h->min = UINT64_MAX;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		if (h->b[i] && h->min == UINT64_MAX) {
			double lo, w;
			bucket_range(i, &lo, &w);
			h->min = (uint64_t)lo;
		}
		h->n += h->b[i];
	}
}

void hist_merge(struct hist *to, const struct hist *from)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		to->b[i] += from->b[i];
	to->n += from->n;
	if (from->max > to->max)
		to->max = from->max;
	if (from->min < to->min)
		to->min = from->min;
}

/* The smallest value of bucket i and its width. */
void bucket_range(unsigned i, double *lo, double *width)
{
	if (i < HIST_SUB) {
		*lo = i;
		*width = 1;
		return;
	}
	unsigned e = i / HIST_SUB - 1 + HIST_SUB_BITS, sub = i % HIST_SUB;
	double unit = (double)(1ull << (e - HIST_SUB_BITS));
	*lo = (double)(HIST_SUB + sub) * unit;
	*width = unit;
}

double hist_quantile(const struct hist *h, double q)
{
	if (!h->n)
		return 0;
	if (q >= 1.0)
		return (double)h->max;
	uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;
	if (want >= h->n)
		want = h->n - 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen > want) {
			double lo, w;
			bucket_range(i, &lo, &w);
			double v = lo + w / 2;
			if (v > (double)h->max)
				v = (double)h->max;
			if (v < (double)h->min)
				v = (double)h->min;
			return v;
		}
	}
	return (double)h->max;
}

int fail(struct bench *b, const char *fmt, ...)
{
	uint32_t zero = 0;
	if (atomic_compare_exchange_strong(&b->failed, &zero, 1)) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(b->errmsg, sizeof(b->errmsg), fmt, ap);
		va_end(ap);
	}
	return -1;
}

void *shm_zalloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void shm_free(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

uint64_t pf_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void pf_spin_ns(uint64_t ns)
{
	uint64_t end = ticks() + (uint64_t)((double)ns * g_ticks_per_ns);
	while (ticks() < end)
		relax();
}

void pf_futex_wait(_Atomic uint32_t *w, uint32_t val)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, val, NULL, NULL, 0);
}

void pf_futex_wake(_Atomic uint32_t *w, int n)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* The id of the raw_syscalls:sys_enter tracepoint, or -1. */
static long tracepoint_id(void)
{
	static long id = -2;
	if (id != -2)
		return id;
	static const char *const paths[] = {
		"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
		"/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id",
	};
	id = -1;
	for (int round = 0; round < 2 && id < 0; round++) {
		for (unsigned i = 0; i < 2 && id < 0; i++) {
			FILE *f = fopen(paths[i], "r");
			if (!f)
				continue;
			if (fscanf(f, "%ld", &id) != 1)
				id = -1;
			fclose(f);
		}
		/* tracefs is often not mounted until a tool mounts it (as
		 * perf does); root may mount it, as perf would. */
		if (id < 0 && round == 0 && geteuid() == 0)
			mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL);
	}
	return id;
}

static int counter_open(void)
{
	long id = tracepoint_id();
	if (id < 0)
		return -1;
	struct perf_event_attr a;
	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.type = PERF_TYPE_TRACEPOINT;
	a.config = (uint64_t)id;
	a.disabled = 1;
	return (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

/* An open counter keeps the kernel's raw_syscalls tracepoint registered:
 * the first open registers it, which patches code on every CPU and stalls
 * both sides for milliseconds, and the last close unregisters it.  Held
 * across a scenario, the roles' own opens and closes find it registered. */
int syscalls_hold(void)
{
	return counter_open();
}

void syscalls_release(int fd)
{
	if (fd >= 0)
		close(fd);
}

int syscalls_countable(void)
{
	int fd = counter_open();
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

void loop_begin(struct bench *b, struct loopmark *m)
{
	struct rusage ru;
	m->fd = -1;
	m->mark[0] = m->mark[1] = -1;
	m->lo = b->p.n / 8;
	m->hi = b->p.n - b->p.n / 8;
	getrusage(RUSAGE_SELF, &ru);
	m->nvcsw = ru.ru_nvcsw;
	if (!b->p.count_syscalls)
		return;
	m->fd = counter_open();
	if (m->fd >= 0)
		ioctl(m->fd, PERF_EVENT_IOC_ENABLE, 0);
}

void loop_mark(struct loopmark *m, int which)
{
	uint64_t v;
	m->mark[which] = read(m->fd, &v, sizeof(v)) == (ssize_t)sizeof(v) ? (int64_t)v : -2;
}

void loop_end(struct bench *b, struct loopmark *m, int role)
{
	struct rusage ru;
	int64_t n = -1;
	if (m->fd >= 0) {
		uint64_t v = 0;
		ioctl(m->fd, PERF_EVENT_IOC_DISABLE, 0);
		/* The enable ioctl's own exit and the disable ioctl count: 1. */
		if (read(m->fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
			n = v > 0 ? (int64_t)v - 1 : 0;
		close(m->fd);
	}
	getrusage(RUSAGE_SELF, &ru);
	b->syscalls[role] = n;
	/* The read at the window's end counts in it: 1. */
	b->syscalls_steady[role] = m->mark[0] >= 0 && m->mark[1] > m->mark[0] ?
		m->mark[1] - m->mark[0] - 1 : -1;
	b->steady_msgs[role] = m->hi - m->lo;
	b->nvcsw[role] = ru.ru_nvcsw - m->nvcsw;
}

void tput_start(struct bench *b)
{
	atomic_store(&b->t0_ns, pf_now_ns());
}

void tput_done(struct bench *b, int role, uint64_t got)
{
	uint64_t t = pf_now_ns(), cur = atomic_load(&b->t1_ns);
	b->got[role] = got;
	while (t > cur && !atomic_compare_exchange_weak(&b->t1_ns, &cur, t))
		;
}

void *source_buf(size_t size)
{
	size_t len = (size + 4095) & ~(size_t)4095;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(i * 131 + 7);
	return p;
}

int spawn_daemon(const char *const argv[], const char *log)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, 0);
		setpgid(0, 0);
		/* If the harness dies, even by SIGKILL, the daemon is told to
		 * stop (SIGTERM: it cleans up after itself). */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

void attached(struct bench *b)
{
	atomic_fetch_add(&b->attached, 1);
}

int wait_attached(struct bench *b, uint32_t n)
{
	uint64_t limit = pf_now_ns() + 10000000000ull;
	while (atomic_load(&b->attached) < n) {
		if (b->failed)
			return -1;
		if (pf_now_ns() > limit)
			return fail(b, "peers did not attach within 10 s");
		relax();
	}
	return 0;
}
