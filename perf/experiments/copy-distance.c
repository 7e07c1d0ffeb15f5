/* SPDX-License-Identifier: MIT */
/*
 * copy-distance: on one core, how fast 4 KiB copies run as a function of
 * where the destination lies from the source, modulo 4096 ("distance"),
 * for three ways of copying:
 *
 *   memcpy   glibc's (for 4 KiB, `rep movsb` on the project's VMs)
 *   fwd64    64-byte blocks from the first byte up: copy_blocks() in
 *            src/ring.c, which copy_payload() uses at distances 1-63
 *   back64   64-byte blocks from the last byte down
 *
 * Each figure copies one page-aligned 4 KiB source into a 1 MiB area, page
 * after page, at the distance given (best of 5 runs of 4000 copies, after a
 * first pass that is thrown away, so that the clock and the caches are
 * warm).  Change 14 (perf/RESULTS.md) found a VM whose `rep movsb` fell to
 * 3.5 GB/s at distances of 1-15 bytes, which is why copy_payload() takes
 * blocks there; this shows whether the machine at hand does.
 *
 *   cc -O2 -Wall -Wextra -o copy-distance perf/experiments/copy-distance.c
 *   ./copy-distance [payload bytes, default 4096]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AREA (1u << 20)
#define COPIES 4000

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void fwd64(uint8_t *d, const uint8_t *s, size_t n)
{
	for (; n >= 64; n -= 64, d += 64, s += 64) {
		__asm__("" : "+r"(d)); /* no memcpy() call again */
		memcpy(d, s, 64);
	}
	memcpy(d, s, n);
}

static void back64(uint8_t *d, const uint8_t *s, size_t n)
{
	size_t head = n & 63;
	uint8_t first[64];
	memcpy(first, s, head);
	for (size_t o = n; o >= head + 64;) {
		o -= 64;
		uint8_t *dd = d + o;
		__asm__("" : "+r"(dd));
		memcpy(dd, s + o, 64);
	}
	memcpy(d, first, head);
}

static void copy(int how, uint8_t *d, const uint8_t *s, size_t n)
{
	if (how == 0)
		memcpy(d, s, n);
	else if (how == 1)
		fwd64(d, s, n);
	else
		back64(d, s, n);
}

/* GB/s of COPIES copies at this distance, best of 5. */
static double measure(int how, uint8_t *area, const uint8_t *src, size_t n, size_t dist)
{
	double best = 1e9;
	for (int r = 0; r < 5; r++) {
		double t = now();
		size_t pos = 0;
		for (int i = 0; i < COPIES; i++) {
			uint8_t *d = area + pos + dist;
			copy(how, d, src, n);
			__asm__ volatile("" : : "r"(d) : "memory");
			pos += 4096;
			if (pos + 4096 + n > AREA)
				pos = 0;
		}
		t = now() - t;
		if (t < best)
			best = t;
	}
	return (double)COPIES * (double)n / best / 1e9;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 0) : 4096;
	if (n < 64 || n > 65536) {
		fprintf(stderr, "usage: copy-distance [64..65536]\n");
		return 2;
	}
	uint8_t *area = aligned_alloc(4096, AREA + 2 * 65536);
	uint8_t *src = aligned_alloc(4096, 65536);
	if (!area || !src)
		return 1;
	memset(area, 1, AREA + 2 * 65536);
	for (size_t i = 0; i < 65536; i++)
		src[i] = (uint8_t)(i * 131 + 7);
	/* The checks: each way copies exactly n bytes at every offset. */
	for (int how = 0; how < 3; how++)
		for (size_t len = 0; len < 200; len++) {
			memset(area, 0, 256);
			copy(how, area + 8, src, len);
			if (memcmp(area + 8, src, len) || area[8 + len]) {
				fprintf(stderr, "copy %d of %zu bytes is wrong\n", how, len);
				return 1;
			}
		}
	static const size_t dists[] = {0, 8, 16, 24, 32, 56, 64, 72, 512, 2040, 2056, 4032, 4088};
	static const char *const names[] = {"memcpy", "fwd64", "back64"};
	printf("%zu-byte copies, GB/s\ndistance", n);
	for (int how = 0; how < 3; how++)
		printf(" %8s", names[how]);
	printf("\n");
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < sizeof(dists) / sizeof(dists[0]); i++) {
			double v[3];
			for (int how = 0; how < 3; how++)
				v[how] = measure(how, area, src, n, dists[i]);
			if (pass)
				printf("%8zu %8.1f %8.1f %8.1f\n", dists[i], v[0], v[1], v[2]);
		}
	return 0;
}
