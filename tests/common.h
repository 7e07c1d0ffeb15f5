/* SPDX-License-Identifier: MIT */
/* Helpers shared by the test programs. */
#ifndef SHMRING_TEST_COMMON_H
#define SHMRING_TEST_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shmring.h"

/* Writes a unique ring name "/shmring-test-<pid>-<n>" into buf and
 * remembers it; every remembered name is unlinked when the process exits,
 * so a failing test leaves nothing in /dev/shm. */
const char *test_ring_name(char *buf, size_t n);

/* Options with the given capacity (0 = default) and cursor slots. */
struct shmring_opts test_opts(uint64_t capacity, uint32_t max_consumers);

/* Self-checking messages.  A message of sequence number seq has a length
 * chosen by (seed, seq) in [0, max_len]; its bytes are: seq (8 bytes),
 * checksum of the rest (8 bytes), then pseudo-random bytes from seq,
 * truncated to the length.  msg_check() returns 0 if p/len is exactly
 * message seq, else a MSG_BAD_* code. */
enum { MSG_OK = 0, MSG_BAD_LEN, MSG_BAD_SEQ, MSG_BAD_SUM };
size_t msg_len(uint64_t seed, uint64_t seq, size_t max_len);
void msg_fill(void *p, size_t len, uint64_t seq);
int msg_check(const void *p, size_t len, uint64_t seed, uint64_t seq, size_t max_len);
const char *msg_strerror(int code);

/* Waits for a child; returns its exit status, or 128 + signal. */
int test_wait(pid_t pid);

/* Monotonic nanoseconds. */
uint64_t test_now_ns(void);

/* xorshift64: the next pseudo-random number of the state *s (not 0). */
uint64_t test_rnd(uint64_t *s);

/* Bytes of padding a producer puts before a record of sz bytes at position
 * pos of a ring of capacity cap: the rest of the lap, if the record would
 * cross the end of the data area and the rest is at most cap / 16
 * (shmring(7), DATA LAYOUT); else 0. */
uint64_t test_pad_before(uint64_t pos, uint64_t cap, uint64_t sz);

/* fork() for a test: the child dies with its parent (PR_SET_PDEATHSIG), so
 * a killed test leaves no process behind.  Aborts if fork fails. */
pid_t test_spawn(void);

/* Zeroed memory shared with forked children (MAP_SHARED | MAP_ANONYMOUS);
 * aborts on failure.  Free with munmap(). */
void *test_shared_zero(size_t len);

/* Sleeps ns nanoseconds, through signals. */
void test_sleep_ns(uint64_t ns);

/* Integer from the environment, or def. */
uint64_t test_env(const char *name, uint64_t def);

#endif
