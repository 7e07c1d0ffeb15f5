/* SPDX-License-Identifier: MIT */
/* Description: helpers shared by the test programs (names, payloads, children). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define MAX_NAMES 256
static char names[MAX_NAMES][64];
static int nnames;
static pid_t names_pid;

static void unlink_names(void)
{
	if (getpid() != names_pid)
		return; /* a forked child must not remove its parent's rings */
	for (int i = 0; i < nnames; i++)
		shm_unlink(names[i]);
}

const char *test_ring_name(char *buf, size_t n)
{
	static unsigned counter;
	if (names_pid != getpid()) {
		names_pid = getpid();
		nnames = 0;
		atexit(unlink_names);
	}
	snprintf(buf, n, "/shmring-test-%d-%u", (int)getpid(), counter++);
	if (nnames < MAX_NAMES)
		snprintf(names[nnames++], sizeof(names[0]), "%s", buf);
	return buf;
}

struct shmring_opts test_opts(uint64_t capacity, uint32_t max_consumers)
{
	struct shmring_opts o = { .size = sizeof(o) };
	o.capacity = capacity;
	o.max_consumers = max_consumers;
	return o;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

size_t msg_len(uint64_t seed, uint64_t seq, size_t max_len)
{
	uint64_t r = mix(seed ^ mix(seq + 0x9e3779b97f4a7c15ull));
	/* One in 16 messages is short (0..15 bytes) so short and empty
	 * records are common; the rest are uniform over [0, max_len]. */
	if ((r & 15) == 0)
		return (size_t)((r >> 8) % (max_len < 15 ? max_len + 1 : 16));
	return (size_t)((r >> 8) % (max_len + 1));
}

static uint64_t body_sum(const uint8_t *p, size_t n)
{
	uint64_t h = 0x84222325cbf29ce4ull;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h ^ n;
}

/* Builds the whole message in a scratch buffer, then copies len bytes. */
static void msg_build(uint8_t *p, size_t len, uint64_t seq)
{
	uint64_t s = mix(seq) | 1;
	size_t i = 16;
	for (; i + 8 <= len; i += 8) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		memcpy(p + i, &s, 8);
	}
	for (; i < len; i++)
		p[i] = (uint8_t)(s >> (8 * (i & 7)));
}

void msg_fill(void *dst, size_t len, uint64_t seq)
{
	uint8_t *p = dst;
	if (len >= 16) {
		msg_build(p, len, seq);
		uint64_t sum = body_sum(p + 16, len - 16);
		memcpy(p, &seq, 8);
		memcpy(p + 8, &sum, 8);
		return;
	}
	uint8_t tmp[16];
	uint64_t sum = body_sum(tmp, 0);
	memcpy(tmp, &seq, 8);
	memcpy(tmp + 8, &sum, 8);
	memcpy(p, tmp, len);
}

int msg_check(const void *src, size_t len, uint64_t seed, uint64_t seq, size_t max_len)
{
	const uint8_t *p = src;
	if (len != msg_len(seed, seq, max_len))
		return MSG_BAD_LEN;
	uint8_t head[16];
	uint64_t sum = body_sum(p + (len >= 16 ? 16 : len), len >= 16 ? len - 16 : 0);
	memcpy(head, &seq, 8);
	memcpy(head + 8, &sum, 8);
	size_t hn = len < 8 ? len : 8;
	if (memcmp(p, head, hn))
		return MSG_BAD_SEQ;
	if (len > 8 && memcmp(p + 8, head + 8, (len < 16 ? len : 16) - 8))
		return MSG_BAD_SUM;
	return MSG_OK;
}

const char *msg_strerror(int code)
{
	switch (code) {
	case MSG_OK: return "ok";
	case MSG_BAD_LEN: return "wrong length (lost, repeated or reordered message)";
	case MSG_BAD_SEQ: return "wrong sequence number";
	case MSG_BAD_SUM: return "checksum mismatch (corrupt payload)";
	default: return "unknown";
	}
}

int test_wait(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

uint64_t test_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t test_env(const char *name, uint64_t def)
{
	const char *v = getenv(name);
	return v && *v ? strtoull(v, NULL, 0) : def;
}

uint64_t test_pad_before(uint64_t pos, uint64_t cap, uint64_t sz)
{
	uint64_t rest = cap - (pos & (cap - 1));
	return rest < sz && rest <= cap / 16 ? rest : 0;
}

uint64_t test_rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

pid_t test_spawn(void)
{
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		abort();
	}
	if (pid == 0)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	return pid;
}

void *test_shared_zero(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		abort();
	}
	return p;
}

void test_sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}
