/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory layout.  Only fixed-width types, no pointers: each process
 * maps the ring at its own address and adds offsets to its own base.  Every
 * offset and size is asserted so a layout change fails to compile, and so a
 * 32-bit and a 64-bit process agree.
 *
 *   [0, page)                      header, immutable after creation
 *   [page, 2 page)                 producer control: written by the producer
 *                                  only; consumers map it read-only
 *   [ctab_off, data_off)           consumer area: one shared line, then one
 *                                  128-byte slot per cursor; consumers write here
 *   [data_off, data_off + cap)     data, mapped twice back to back; consumers
 *                                  map it read-only
 */
#ifndef SHMRING_LAYOUT_H
#define SHMRING_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "atomics.h"
#include "shmring.h" /* SHMRING_INLINE_MAX */

#define SHMRING_MAGIC 0x474e49524d485321ull /* "!SHMRING" little-endian */
#define SHMRING_LAYOUT_VERSION 7u
#define SLOT_SIZE 128u
#define LINE 128u /* a cache line pair: no adjacent-line prefetch sharing */

struct shm_header {
	a64 magic;             /* stored last, with release, by the creator */
	uint32_t version;      /* SHMRING_LAYOUT_VERSION */
	uint32_t header_size;  /* sizeof(struct shm_header) */
	uint64_t total_size;   /* bytes of the object: data_off + capacity */
	uint64_t capacity;     /* data bytes, power of two, page multiple */
	uint64_t prod_off;     /* producer control page */
	uint64_t ctab_off;     /* consumer area */
	uint64_t data_off;     /* data area */
	uint32_t page_size;    /* the creator's page size */
	uint32_t nslots;       /* cursor slots */
	uint32_t slot_size;    /* SLOT_SIZE */
	uint32_t policy;       /* enum shmring_policy */
	uint32_t max_message;  /* capacity / 2 - record header */
	uint32_t flags;        /* 0 */
	uint64_t create_time;  /* CLOCK_REALTIME nanoseconds at creation */
};
_Static_assert(offsetof(struct shm_header, magic) == 0, "layout");
_Static_assert(offsetof(struct shm_header, version) == 8, "layout");
_Static_assert(offsetof(struct shm_header, header_size) == 12, "layout");
_Static_assert(offsetof(struct shm_header, total_size) == 16, "layout");
_Static_assert(offsetof(struct shm_header, capacity) == 24, "layout");
_Static_assert(offsetof(struct shm_header, prod_off) == 32, "layout");
_Static_assert(offsetof(struct shm_header, ctab_off) == 40, "layout");
_Static_assert(offsetof(struct shm_header, data_off) == 48, "layout");
_Static_assert(offsetof(struct shm_header, page_size) == 56, "layout");
_Static_assert(offsetof(struct shm_header, nslots) == 60, "layout");
_Static_assert(offsetof(struct shm_header, slot_size) == 64, "layout");
_Static_assert(offsetof(struct shm_header, policy) == 68, "layout");
_Static_assert(offsetof(struct shm_header, max_message) == 72, "layout");
_Static_assert(offsetof(struct shm_header, flags) == 76, "layout");
_Static_assert(offsetof(struct shm_header, create_time) == 80, "layout");
_Static_assert(sizeof(struct shm_header) == 88, "layout");

/*
 * Producer control.  Only the producer writes here.
 *
 * Line 0 is what consumers read on their hot path.  In an OVERWRITE ring the
 * producer also keeps (head, head_seq, tail_seq) there, under the sequence
 * counter `ver` (odd while it writes them), so that a consumer can take a
 * consistent snapshot when it attaches or finds itself lapped.  `ver` moves
 * by 4 per update and its odd value says which pair is being written:
 * ver % 4 == 1 while head and head_seq change, 3 while tail_seq and tail do.
 * A producer that takes over from one killed mid-update thus knows which
 * sequence number to count again from the records (producer.c).
 *
 * In a BLOCK ring the same bytes hold instead a copy of the last small
 * message that shmring_send() published alone, if the ring was created
 * with SHMRING_INLINE_SMALL (layout 7; header flags): `istart`, the
 * position of its record; `ilen`, its length (at most INLINE_MAX); and
 * `ipay`, its payload.  A consumer whose next record starts at `istart`
 * copies the payload from here, from the line that it loaded the tail
 * from, and does not fetch the record's line (perf/RESULTS.md, change
 * 28).  The producer makes `istart` INLINE_NONE, then writes the payload
 * and the length, then `istart` (release), then the tail: a sequence
 * counter whose values are positions, which only grow.  A consumer loads
 * `istart`, the length and the payload, then (acquire fence) `istart`
 * again, and takes the copy if both loads found its read position.  A
 * producer that opens the ring makes `istart` INLINE_NONE before its first
 * commit: a new ring holds 0 there, and a predecessor killed between
 * `istart` and the tail would leave a copy of a record that was never
 * published at a position that the next commit publishes.
 */
#define INLINE_MAX SHMRING_INLINE_MAX /* payload bytes a copy in line 0 holds */
#define INLINE_NONE 1u          /* istart: no copy (records are 8-aligned) */
struct shm_prod {
	/* line 0 */
	a64 tail;              /* end of the last published record */
	a64 tail_seq;          /* messages published so far (overwrite: under ver) */
	union {
		struct { /* OVERWRITE */
			a64 head;      /* oldest intact record (under ver) */
			a64 head_seq;  /* sequence number of the record at head */
			a32 ver;       /* snapshot counter, odd while writing:
			                * 1 mod 4 head pair, 3 mod 4 tail pair */
			uint32_t pad0;
		};
		struct { /* BLOCK: the copy of a small message */
			a64 istart;    /* its record's position, or INLINE_NONE */
			a32 ilen;      /* its length, at most INLINE_MAX */
			uint32_t ipad;
			a64 ipay[INLINE_MAX / 8]; /* its payload */
		};
	};
	uint8_t pad1[LINE - 64];
	/* line 1: slow-path state */
	a64 reclaim;           /* block: the producer may overwrite data below this */
	uint32_t pad_w;        /* was the consumers' futex (layout 2) */
	a32 closed;            /* 1 once a producer shut down; 0 while one runs */
	a32 owner;             /* 0, or the producer's pid while one is attached */
	uint32_t pad2;
	a64 owner_start;       /* reserved for liveness: owner's start time */
	uint8_t pad3[LINE - 32];
};
_Static_assert(offsetof(struct shm_prod, tail) == 0, "layout");
_Static_assert(offsetof(struct shm_prod, tail_seq) == 8, "layout");
_Static_assert(offsetof(struct shm_prod, head) == 16, "layout");
_Static_assert(offsetof(struct shm_prod, head_seq) == 24, "layout");
_Static_assert(offsetof(struct shm_prod, ver) == 32, "layout");
_Static_assert(offsetof(struct shm_prod, istart) == 16, "layout");
_Static_assert(offsetof(struct shm_prod, ilen) == 24, "layout");
_Static_assert(offsetof(struct shm_prod, ipay) == 32, "layout");
_Static_assert(offsetof(struct shm_prod, ipay) + INLINE_MAX <= 64, "layout: one cache line");
_Static_assert(offsetof(struct shm_prod, reclaim) == 128, "layout");
_Static_assert(offsetof(struct shm_prod, closed) == 140, "layout");
_Static_assert(offsetof(struct shm_prod, owner) == 144, "layout");
_Static_assert(offsetof(struct shm_prod, owner_start) == 152, "layout");
_Static_assert(sizeof(struct shm_prod) == 256, "layout");

/* The consumers' shared line, first in the consumer area. */
struct shm_cshared {
	a32 unused0;           /* layout 3's broadcast sleeper count; 0 */
	a32 prod_waiting;      /* 1 while the producer sleeps for room */
	a32 prod_wake_seq;     /* futex the producer sleeps on */
	a32 hiwater;           /* 1 + highest slot index ever claimed */
	a32 gsleepers;         /* group members inside the sleep protocol */
	a32 glock;             /* 0, or the pid creating a group (see group.c) */
	a32 wake_seq;          /* futex broadcast consumers sleep on (here, in
	                        * consumer-writable memory, so that a consumer
	                        * can interrupt its own sleep) */
	a32 notifiers;         /* slots with a notification armed */
	a32 wake_armed;        /* 1: a broadcast consumer may sleep on wake_seq
	                        * and nobody has woken it since it armed this
	                        * (layout 4): one wake per sleep, not one per
	                        * commit while a sleeper is on its way down */
	a32 cmode;             /* fence mode of the consumers' sleeps (layout 6):
	                        * generation << 2 | ASYM_LIGHT, ASYM_ARMING or
	                        * ASYM_HEAVY; see wait.c */
	a32 pmode;             /* the same for the producer's sleeps */
	uint8_t pad[LINE - 44];
};
/* Fence modes (cmode, pmode; wait.c): the state in the low bits, a
 * generation above them that every return to ASYM_LIGHT advances. */
#define ASYM_STATE 3u
#define ASYM_LIGHT 0u   /* wakers may skip their fence; sleepers membarrier() */
#define ASYM_ARMING 1u  /* a sleeper is making its membarrier(): wakers fence */
#define ASYM_HEAVY 2u   /* wakers fence; sleepers need no membarrier() */
#define ASYM_GEN 4u     /* one generation */
/* ASYM_LIGHT in the generation after that of mode m. */
#define ASYM_NEXT_LIGHT(m) (((m) & ~ASYM_STATE) + ASYM_GEN)
_Static_assert(offsetof(struct shm_cshared, unused0) == 0, "layout");
_Static_assert(offsetof(struct shm_cshared, prod_waiting) == 4, "layout");
_Static_assert(offsetof(struct shm_cshared, prod_wake_seq) == 8, "layout");
_Static_assert(offsetof(struct shm_cshared, hiwater) == 12, "layout");
_Static_assert(offsetof(struct shm_cshared, gsleepers) == 16, "layout");
_Static_assert(offsetof(struct shm_cshared, glock) == 20, "layout");
_Static_assert(offsetof(struct shm_cshared, wake_seq) == 24, "layout");
_Static_assert(offsetof(struct shm_cshared, notifiers) == 28, "layout");
_Static_assert(offsetof(struct shm_cshared, wake_armed) == 32, "layout");
_Static_assert(offsetof(struct shm_cshared, cmode) == 36, "layout");
_Static_assert(offsetof(struct shm_cshared, pmode) == 40, "layout");
_Static_assert(sizeof(struct shm_cshared) == LINE, "layout");

enum { SLOT_FREE = 0, SLOT_CLAIMED = 1, SLOT_ACTIVE = 2 };
/* BROADCAST: pos is the consumer's cursor.  GROUP: pos is the cursor its
 * members share (they advance it by compare-and-swap).  MEMBER: one per group
 * member; pos is a hold, the start of records it claimed and reads in place,
 * or HOLD_NONE. */
enum { KIND_BROADCAST = 1, KIND_GROUP = 2, KIND_MEMBER = 3 };
#define HOLD_NONE UINT64_MAX
#define GROUP_NAME_MAX 31u

/* One cursor.  Written by its consumer(s), read by the producer. */
struct shm_slot {
	a64 pos;               /* everything below was released (see KIND_*) */
	a32 state;             /* SLOT_* */
	a32 kind;              /* KIND_* */
	a32 owner;             /* consumer's pid (group: its creator's) */
	uint32_t pad0;
	a64 owner_start;       /* reserved for liveness */
	a32 futex;             /* group: members sleep here */
	a32 notify;            /* signal number while a notification is armed */
	a64 members;           /* group: generation << 32 | member count */
	a32 gsleep;            /* group: members inside the sleep protocol */
	a32 group;             /* member: index of its group's slot */
	char name[GROUP_NAME_MAX + 1]; /* group: its name, NUL-terminated */
	a64 notify_val;        /* the notification's si_value */
	uint8_t pad1[SLOT_SIZE - 96];
};
_Static_assert(offsetof(struct shm_slot, pos) == 0, "layout");
_Static_assert(offsetof(struct shm_slot, state) == 8, "layout");
_Static_assert(offsetof(struct shm_slot, kind) == 12, "layout");
_Static_assert(offsetof(struct shm_slot, owner) == 16, "layout");
_Static_assert(offsetof(struct shm_slot, owner_start) == 24, "layout");
_Static_assert(offsetof(struct shm_slot, futex) == 32, "layout");
_Static_assert(offsetof(struct shm_slot, notify) == 36, "layout");
_Static_assert(offsetof(struct shm_slot, members) == 40, "layout");
_Static_assert(offsetof(struct shm_slot, gsleep) == 48, "layout");
_Static_assert(offsetof(struct shm_slot, group) == 52, "layout");
_Static_assert(offsetof(struct shm_slot, name) == 56, "layout");
_Static_assert(offsetof(struct shm_slot, notify_val) == 88, "layout");
_Static_assert(sizeof(struct shm_slot) == SLOT_SIZE, "layout");

/* A record: this header, then len payload bytes, padded to 8. */
struct shm_rec {
	uint32_t len;          /* payload bytes, or REC_PAD */
	uint32_t seq;          /* low 32 bits of the message's sequence number
	                        * (REC_PAD: the next record's) */
};
_Static_assert(sizeof(struct shm_rec) == 8, "layout");

/*
 * Padding (layout 5): a header whose len is REC_PAD stands for the rest of
 * the lap, up to the end of the data area; the next record starts at the
 * next lap.  The producer writes one in the same reservation as the record
 * after it, so a pad is never the last thing published, when a record would
 * otherwise cross the end of the data area and the rest of the lap is at
 * most capacity >> PAD_SHIFT bytes.  Messages of one size then sit at the
 * same places lap after lap (perf/RESULTS.md, change 20); a larger record
 * still crosses the end, contiguous through the second mapping.
 */
#define REC_PAD UINT32_MAX
#define PAD_SHIFT 4u

/* The one layout function: creator and opener must agree on every offset. */
struct shm_geom {
	uint64_t capacity, prod_off, ctab_off, data_off, total_size;
	uint32_t page_size, nslots, max_message;
};

static inline uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static inline void shm_geometry(struct shm_geom *g, uint64_t capacity, uint32_t nslots,
				uint32_t page)
{
	g->capacity = capacity;
	g->page_size = page;
	g->nslots = nslots;
	g->prod_off = page;
	g->ctab_off = 2 * (uint64_t)page;
	g->data_off = g->ctab_off + align_up(LINE + (uint64_t)nslots * SLOT_SIZE, page);
	g->total_size = g->data_off + capacity;
	g->max_message = (uint32_t)(capacity / 2 - sizeof(struct shm_rec));
}

#endif
