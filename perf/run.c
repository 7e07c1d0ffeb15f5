/* SPDX-License-Identifier: MIT */
/* Running one case: fork the roles, pin them, start them together, wait. */
#include "perf.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run.h"

int g_cpu[2] = {0, 1};

static int pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set);
}

static unsigned roles_of(const struct params *p)
{
	switch (p->kind) {
	case K_TPUT:
		return 1 + p->consumers;
	case K_MEMCPY:
		return 1;
	default:
		return 2;
	}
}

struct thr {
	const struct mech *m;
	struct bench *b;
	void *priv;
	int role, rc;
	pthread_t t;
};

static void start_gate(struct bench *b)
{
	atomic_fetch_add(&b->ready, 1);
	while (!atomic_load(&b->go))
		pf_futex_wait(&b->go, 0);
}

/* The role that records latency samples gets its buffer before the start:
 * the pinger in a round trip, the sleeper in a wake-up case. */
static void prepare_samples(struct bench *b, int role)
{
	int rec = (b->p.kind == K_RTT && role == 0) || (b->p.kind == K_WAKE && role == 1);
	if (rec && samples_prepare(b->p.n + 1))
		fail(b, "no memory for %llu latency samples", (unsigned long long)b->p.n);
}

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	if (pin(g_cpu[t->role ? 1 : 0]))
		fail(t->b, "sched_setaffinity(cpu %d): %s", g_cpu[t->role ? 1 : 0],
		     strerror(errno));
	prepare_samples(t->b, t->role);
	start_gate(t->b);
	t->rc = t->m->child(t->b, t->priv, t->role);
	samples_flush(&t->b->h);
	return NULL;
}

/* Plays every role as a thread of this (child) process. */
static int run_threads(const struct mech *m, struct bench *b, void *priv, unsigned roles)
{
	struct thr t[MAX_ROLES];
	int rc = 0;
	for (unsigned i = 0; i < roles; i++) {
		t[i] = (struct thr){.m = m, .b = b, .priv = priv, .role = (int)i};
		if (pthread_create(&t[i].t, NULL, thr_main, &t[i]))
			return fail(b, "pthread_create failed");
	}
	for (unsigned i = 0; i < roles; i++) {
		pthread_join(t[i].t, NULL);
		rc |= t[i].rc;
	}
	return rc;
}

int run_once(const struct mech *m, const struct params *p, struct bench **out)
{
	unsigned roles = roles_of(p);
	struct bench *b = shm_zalloc(sizeof(*b));
	void *priv = NULL;
	pid_t pids[MAX_ROLES];
	unsigned npids = 0;
	int rc = 0;

	*out = b;
	if (!b) {
		fprintf(stderr, "perf: out of memory\n");
		return -1;
	}
	b->p = *p;
	hist_reset(&b->h);
	for (unsigned i = 0; i < MAX_ROLES; i++)
		b->syscalls[i] = b->syscalls_steady[i] = -1;
	if (roles > MAX_ROLES)
		return fail(b, "too many roles");
	if (m->setup && m->setup(b, &priv))
		return b->failed ? -1 : fail(b, "setup failed");

	unsigned procs = (m->caps & C_THREADS) ? 1 : roles;
	pid_t parent = getpid();
	for (unsigned i = 0; i < procs; i++) {
		fflush(NULL);
		pid_t pid = fork();
		if (pid < 0) {
			rc = fail(b, "fork: %s", strerror(errno));
			break;
		}
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			int r;
			if (procs == 1 && roles > 1) {
				r = run_threads(m, b, priv, roles);
			} else {
				int cpu = g_cpu[i ? 1 : 0];
				if (pin(cpu))
					fail(b, "sched_setaffinity(cpu %d): %s", cpu,
					     strerror(errno));
				prepare_samples(b, (int)i);
				start_gate(b);
				r = m->child(b, priv, (int)i);
				samples_flush(&b->h);
			}
			/* exit(), not _exit(): iceoryx unregisters at exit. */
			exit(r ? 1 : 0);
		}
		pids[npids++] = pid;
	}

	/* Start everybody at once. */
	uint64_t limit = pf_now_ns() + 20000000000ull;
	while (!rc && atomic_load(&b->ready) < roles && !b->failed) {
		if (pf_now_ns() > limit) {
			rc = fail(b, "roles did not get ready in 20 s");
			break;
		}
		usleep(200);
	}
	atomic_store(&b->go, 1);
	pf_futex_wake(&b->go, MAX_ROLES);

	/* Wait, with a time limit: a stuck case is killed (our pids only). */
	limit = pf_now_ns() + 120000000000ull;
	unsigned left = npids;
	while (left) {
		int st, reaped = 0;
		for (unsigned i = 0; i < npids; i++) {
			if (pids[i] <= 0 || waitpid(pids[i], &st, WNOHANG) != pids[i])
				continue;
			pids[i] = 0;
			left--;
			reaped = 1;
			if (!WIFEXITED(st) || WEXITSTATUS(st))
				rc = b->failed ? -1
					: fail(b, "role %u %s %d", i,
					       WIFEXITED(st) ? "exited" : "killed by signal",
					       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		}
		if (reaped)
			continue;
		if (pf_now_ns() > limit || (b->failed && pf_now_ns() + 115000000000ull > limit)) {
			for (unsigned i = 0; i < npids; i++)
				if (pids[i] > 0)
					kill(pids[i], SIGKILL);
			if (!b->failed)
				fail(b, "case took over 120 s; killed");
			limit = UINT64_MAX;
		}
		usleep(1000);
	}
	if (m->teardown)
		m->teardown(b, priv);
	return b->failed ? -1 : rc;
}

void run_free(struct bench *b)
{
	shm_free(b, sizeof(*b));
}
