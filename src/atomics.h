/* SPDX-License-Identifier: MIT */
/*
 * The only place the library touches C11 atomics.  Each wrapper names the
 * ordering it gives; each call site says which operation it pairs with.
 */
#ifndef SHMRING_ATOMICS_H
#define SHMRING_ATOMICS_H

#include <stdatomic.h>
#include <stdint.h>

/* Signal safety and 32/64-bit sharing need real lock-free 64-bit atomics. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");

typedef _Atomic uint64_t a64;
typedef _Atomic uint32_t a32;

#define load_acquire(p) atomic_load_explicit((p), memory_order_acquire)
#define load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
/* Full fence: orders an earlier store before a later load (Dekker). */
#define fence_full() atomic_thread_fence(memory_order_seq_cst)
/* Keeps the compiler from moving accesses across a point a signal handler
 * may observe. */
#define signal_fence() atomic_signal_fence(memory_order_seq_cst)

static inline int cas32(a32 *p, uint32_t *expect, uint32_t v)
{
	return atomic_compare_exchange_strong_explicit(p, expect, v, memory_order_acq_rel,
						       memory_order_acquire);
}

static inline int cas64(a64 *p, uint64_t *expect, uint64_t v)
{
	return atomic_compare_exchange_strong_explicit(p, expect, v, memory_order_acq_rel,
						       memory_order_acquire);
}

/* Orders earlier stores before later ones, and earlier loads before later
 * ones: the two halves of a sequence-counter (seqlock) protocol. */
#define fence_release() atomic_thread_fence(memory_order_release)
#define fence_acquire() atomic_thread_fence(memory_order_acquire)

/* Asks for the line holding p in a state that can be written (a hint).
 * `prefetchw` is a NOP on x86-64 processors without it (Intel before
 * Broadwell), so it needs no CPU check; __builtin_prefetch() would give a
 * read prefetch here unless the whole library were built for -mprfchw. */
static inline void prefetch_write(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__("prefetchw %0" : : "m"(*(const char *)p));
#else
	__builtin_prefetch(p, 1, 3);
#endif
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

#endif
