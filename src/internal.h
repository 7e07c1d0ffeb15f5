/* SPDX-License-Identifier: MIT */
/* Private handle structures and helpers shared by the library's files. */
#ifndef SHMRING_INTERNAL_H
#define SHMRING_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "layout.h"
#include "shmring.h"

#define DEFAULT_SPIN_NS 20000u

/* One process's view of a ring.  Geometry comes from the validated private
 * copy of the header, never from shared memory after open. */
struct shmring {
	int fd;
	int writable;           /* fd opened O_RDWR */
	int prod_rw;            /* producer pages mapped writable */
	unsigned endpoints;     /* endpoints open on this handle by endpoints_pid */
	pid_t endpoints_pid;    /* the process those were counted in (fork) */
	unsigned producers;     /* producer handles not yet closed: the producer
	                         * pages stay writable while any is open */
	uint8_t *base;          /* mapping; data area mapped twice after data_off */
	size_t map_len;
	struct shm_geom g;
	uint32_t policy;
	_Atomic uint64_t spin_ns;
	struct shm_prod *prod;
	struct shm_cshared *cs;
	struct shm_slot *slots;
	uint8_t *data;
};

struct shmring_producer {
	struct shmring *r;
	struct shm_prod *prod;
	struct shm_cshared *cs;
	struct shm_slot *slots;
	uint8_t *data;
	uint64_t mask, cap;
	uint32_t nslots, max_message;
	uint64_t tail;          /* committed (published) position */
	uint64_t rtail;         /* end of the reserved records */
	uint64_t limit;         /* no live cursor is below this: data below it
	                         * may be overwritten (cached minimum) */
	uint32_t nres;          /* records reserved since the last commit */
	int shut;
	pid_t opener;
};

struct shmring_consumer {
	struct shmring *r;
	struct shm_prod *prod;  /* read-only */
	struct shm_cshared *cs;
	struct shm_slot *slot;
	const uint8_t *data;    /* read-only */
	uint64_t mask, cap;
	uint32_t max_message;
	uint64_t rpos;          /* next record to peek */
	uint64_t cpos;          /* released position (mirrors slot->pos) */
	uint64_t cached_tail;   /* last tail seen; reloaded only when rpos reaches it */
	uint32_t npeeked;       /* records peeked since the last release */
	pid_t opener;
};

/* wait.c */
uint64_t now_ns(void);
int deadline_passed(const struct timespec *deadline);
int valid_deadline(const struct timespec *deadline);
int futex_wait_until(a32 *word, uint32_t val, const struct timespec *deadline);
void futex_wake(a32 *word, int n);
int wait_for_data(struct shmring_consumer *c, const struct timespec *deadline);
int wait_for_room(struct shmring_producer *p, uint64_t end,
		  const struct timespec *deadline);
void wake_consumers(struct shm_prod *prod, struct shm_cshared *cs);
void wake_producer(struct shm_cshared *cs);

/* ring.c */
void endpoint_add(struct shmring *r, pid_t *opener);
void endpoint_del(struct shmring *r, pid_t opener);
uint64_t spin_ns(const struct shmring *r);

/* producer.c */
int refresh_limit(struct shmring_producer *p);

#endif
