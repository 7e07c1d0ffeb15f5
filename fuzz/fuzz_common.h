/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the libFuzzer targets: a reader that takes bytes from the
 * fuzz input (returning zeros once it runs out, so every input is usable),
 * generators for "interesting" 64-bit positions, and checks of the API's
 * promises that must hold even when the shared memory is corrupt.
 */
#ifndef SHMRING_FUZZ_COMMON_H
#define SHMRING_FUZZ_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h" /* read-only use: r->data, r->g (oracle checks) */

struct fz {
	const uint8_t *p;
	size_t n;
};

static inline int fz_more(const struct fz *f)
{
	return f->n > 0;
}

static inline uint8_t fz_u8(struct fz *f)
{
	if (!f->n)
		return 0;
	f->n--;
	return *f->p++;
}

static inline uint16_t fz_u16(struct fz *f)
{
	uint16_t v = fz_u8(f);
	return (uint16_t)(v | (uint16_t)fz_u8(f) << 8);
}

static inline uint32_t fz_u32(struct fz *f)
{
	uint32_t v = fz_u16(f);
	return v | (uint32_t)fz_u16(f) << 16;
}

static inline uint64_t fz_u64(struct fz *f)
{
	uint64_t v = fz_u32(f);
	return v | (uint64_t)fz_u32(f) << 32;
}

/* Copies up to n bytes (zero-filled past the end of the input). */
static inline void fz_bytes(struct fz *f, void *dst, size_t n)
{
	size_t k = n < f->n ? n : f->n;
	memcpy(dst, f->p, k);
	memset((uint8_t *)dst + k, 0, n - k);
	f->p += k;
	f->n -= k;
}

/*
 * A 64-bit value for a position or counter field, chosen by a mode byte to
 * be near the current value, near a multiple of the capacity away from it,
 * near the 64-bit limits, or raw.  Positions never wrap, so values around
 * 2^64 and 2^63 are the interesting corrupt ones.
 */
static inline uint64_t fz_pos(struct fz *f, uint64_t cur, uint64_t cap)
{
	uint8_t mode = fz_u8(f);
	int8_t d = (int8_t)fz_u8(f);
	switch (mode % 10) {
	case 0:
		return fz_u64(f);
	case 1: /* a few records away */
		return cur + (uint64_t)((int64_t)d * 8);
	case 2: /* a few bytes away: misaligned */
		return cur + (uint64_t)(int64_t)d;
	case 3: /* a lap or so away */
		return cur + (uint64_t)((int64_t)d * (int64_t)cap) + (uint64_t)(fz_u8(f) & 0xf8);
	case 4: /* near the top of the range */
		return UINT64_MAX - (uint64_t)(uint8_t)d;
	case 5: /* near 2^63 */
		return (1ull << 63) + (uint64_t)(int64_t)d * 8;
	case 6: /* small absolute */
		return (uint64_t)(uint8_t)d * 8;
	case 7: /* half a ring away */
		return cur + (uint64_t)((int64_t)d * (int64_t)(cap / 2));
	case 8:
		return cur - cap - (uint64_t)(uint8_t)d;
	default:
		return cur;
	}
}

static inline uint32_t fz_val32(struct fz *f, uint32_t cur)
{
	uint8_t mode = fz_u8(f);
	switch (mode % 6) {
	case 0:
		return fz_u32(f);
	case 1:
		return cur + (uint32_t)(int32_t)(int8_t)fz_u8(f);
	case 2:
		return fz_u8(f) % 5;
	case 3:
		return UINT32_MAX - fz_u8(f);
	case 4:
		return (uint32_t)1 << (fz_u8(f) & 31);
	default:
		return cur;
	}
}

static inline uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* Plain stores through our own mapping: volatile so that the compiler
 * cannot assume the library's view is unchanged. */
static inline void wr64(uint8_t *p, uint64_t v)
{
	volatile uint8_t *q = p;
	for (int i = 0; i < 8; i++)
		q[i] = (uint8_t)(v >> (8 * i));
}

static inline void wr32(uint8_t *p, uint32_t v)
{
	volatile uint8_t *q = p;
	for (int i = 0; i < 4; i++)
		q[i] = (uint8_t)(v >> (8 * i));
}

static inline void wrbytes(uint8_t *p, const uint8_t *src, size_t n)
{
	volatile uint8_t *q = p;
	for (size_t i = 0; i < n; i++)
		q[i] = src[i];
}

/* A deadline in the past: the _wait calls must give up at once. */
static const struct timespec fz_past = { 0, 0 };

/*
 * A deadline for a _wait call, chosen by k: bit 7 an invalid one (tv_nsec
 * out of range: -EINVAL), bit 6 one 20 microseconds from now (a bounded
 * sleep, so the spin and futex paths of wait.c run), else one in the past.
 * Never NULL: nothing here may wait for long.
 */
static inline const struct timespec *fz_deadline(uint8_t k, struct timespec *buf)
{
	if (k & 0x80) {
		buf->tv_sec = 0;
		buf->tv_nsec = 1000000000L;
		return buf;
	}
	if (k & 0x40) {
		if (shmring_deadline(buf, 20000) != 0)
			abort();
		return buf;
	}
	return &fz_past;
}

/* Every return code has a description. */
static inline void fz_strerror(int rc)
{
	const char *m = shmring_strerror(rc);
	if (!m || !*m)
		abort();
}

#define FZ_CHECK(cond)                                                              \
	do {                                                                        \
		if (!(cond)) {                                                      \
			fprintf(stderr, "%s:%d: API promise broken: %s\n", __FILE__, \
				__LINE__, #cond);                                    \
			abort();                                                    \
		}                                                                   \
	} while (0)

/* Reads every byte of a message the library handed out (so a bad pointer
 * faults here, under the sanitizers) and checks it lies in the ring's data
 * area (mapped twice: [data, data + 2 * capacity)). */
static inline uint64_t fz_touch_ring(const struct shmring *r, const void *d, size_t len)
{
	const uint8_t *p = d, *lo = r->data, *hi = r->data + 2 * r->g.capacity;
	FZ_CHECK(len <= r->g.max_message);
	FZ_CHECK(p >= lo && p <= hi && len <= (size_t)(hi - p));
	uint64_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum += ((const volatile uint8_t *)p)[i];
	return sum;
}

#endif
