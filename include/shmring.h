/* SPDX-License-Identifier: MIT */
/*
 * libshmring: a lock-free single-producer, multi-consumer message ring in
 * shared memory, for processes on one Linux machine.
 *
 * One producer publishes variable-length messages.  Each broadcast consumer
 * sees every message, in order; the members of a consumer group share the
 * work, each message going to exactly one member.  The hot path makes no system call: the kernel
 * is entered only to sleep or wake (futex) when a side has to wait.
 *
 * Conventions
 * -----------
 * - Every function that can fail returns 0 (or a count) on success and a
 *   negative errno value on failure.  Nothing reads or sets the global errno
 *   as a way of reporting; functions that make system calls preserve errno.
 *   shmring_strerror() explains every code.
 * - Deadlines are absolute CLOCK_MONOTONIC times; NULL means wait forever.
 *   shmring_deadline() makes one from a relative timeout.  A deadline whose
 *   tv_nsec is outside [0, 999999999] gives -EINVAL.  A blocking call
 *   that is interrupted by a signal handler retries inside and keeps its
 *   deadline, unless shmring_set_eintr() asked for -EINTR; either way
 *   shmring_consumer_interrupt() and shmring_producer_interrupt() make it
 *   return -EINTR.
 * - Positions are byte counts since the ring was created; they never wrap.
 *
 * Who may call what (SPMC contract)
 * ---------------------------------
 *   ring handle      shmring_create*, shmring_open*, shmring_close, shmring_fd,
 *                    shmring_info: any process; a handle is used by one
 *                    thread at a time for open/close.
 *   producer side    shmring_producer_open/shutdown/close, shmring_reserve*,
 *                    shmring_commit, shmring_abort, shmring_send*: one live
 *                    producer per ring (a second gets -EBUSY); a producer
 *                    handle is used by one thread at a time.
 *   consumer side    shmring_consumer_open/close, shmring_peek*,
 *                    shmring_release, shmring_recv*: any number of consumers,
 *                    each handle used by one thread at a time.
 *
 *   Concurrency: the producer and every consumer run concurrently with each
 *   other, in any processes, with no lock.  Two threads may not use the same
 *   endpoint handle at once.
 *
 *   Async-signal-safe, marked [AS-safe] below: they use only lock-free
 *   atomics (asserted at compile time) and system calls that
 *   signal-safety(7) lists (futex, fcntl, close, sigqueue, clock_gettime),
 *   and they preserve errno.  Producer: shmring_reserve, shmring_commit,
 *   shmring_abort, shmring_send, shmring_producer_shutdown,
 *   shmring_producer_interrupt.  Consumer: shmring_peek, shmring_peek_batch,
 *   shmring_release, shmring_recv, shmring_recv_batch, shmring_lost,
 *   shmring_consumer_interrupt.  Also shmring_strerror, shmring_deadline.
 *   The blocking (_wait) calls, the open and close calls and
 *   shmring_notify are not.
 *
 *   Re-entrancy: a signal handler that interrupts a call on an endpoint and
 *   calls into the same endpoint gets -EBUSY and changes nothing (except
 *   shmring_producer_shutdown and the _interrupt calls, which are made for
 *   that: see them).  shmring_send also gives -EBUSY while records reserved
 *   with shmring_reserve wait for their shmring_commit, so a handler cannot
 *   publish the half-written record of the code it interrupted.  A handler
 *   may use any endpoint that the interrupted code was not using.
 *
 * Fork: a child inherits the ring handle and may open its own endpoints on
 * it.  An inherited endpoint handle must then be used by only one of the two
 * processes.  Endpoints are counted per process for shmring_close(): a child
 * may close an inherited ring handle without closing the parent's endpoints.
 *
 * Liveness: a dead peer never blocks the living.  Each endpoint holds a lock
 * on one byte of the ring's file through an open file description of its
 * own (fcntl F_OFD_SETLK); the kernel drops it when the owner dies, however
 * it dies.  Peers test it (F_OFD_GETLK) only off the hot path: a producer
 * that has waited 20 ms for room frees the cursors of dead
 * consumers and group members holding it back (a non-blocking producer does
 * so every 20 ms while it gets -EAGAIN and the cursors stand still); a
 * consumer with nothing to read checks the producer every 50 ms while the
 * tail stands still and, if it died, gets -EPIPE once it has drained what
 * was published.  Progress proves a peer alive, so endpoints that keep up
 * with a steady stream make no such call.  shmring_producer_open() takes
 * over a ring whose producer died; an attach that finds every slot taken
 * frees those of dead owners.  Pids play no part, so pid reuse and pid namespaces do not
 * matter.  Limits: an endpoint opened before fork() shares its lock with the
 * child, so it counts as alive while either process lives (open endpoints in
 * the process that uses them); without /proc mounted there is no liveness
 * checking and every peer is taken to be alive.
 */
#ifndef SHMRING_H
#define SHMRING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMRING_VERSION_MAJOR 0
#define SHMRING_VERSION_MINOR 1
#define SHMRING_VERSION_PATCH 0
/* The version this header describes, as one comparable number. */
#define SHMRING_VERSION \
	((SHMRING_VERSION_MAJOR << 16) | (SHMRING_VERSION_MINOR << 8) | \
	 SHMRING_VERSION_PATCH)

#if defined(__GNUC__)
#define SHMRING_API __attribute__((visibility("default")))
#else
#define SHMRING_API
#endif

/* Opaque handles. */
struct shmring;          /* one process's mapping of a ring */
struct shmring_producer; /* the producer endpoint */
struct shmring_consumer; /* a consumer endpoint (a cursor) */

/* Full policy, fixed at creation. */
enum shmring_policy {
	/* Lossless: the producer waits for the slowest attached cursor. */
	SHMRING_POLICY_BLOCK = 0,
	/* Lossy: the producer never waits; it overwrites the oldest records.
	 * A consumer that falls a whole ring behind gets -EOVERFLOW once, its
	 * lost count grows by the exact number of messages it missed, and it
	 * resumes at the oldest intact message.  Readers check after reading,
	 * so a record overwritten while being read is never returned as good
	 * data.  Consumer groups are not supported in this policy. */
	SHMRING_POLICY_OVERWRITE = 1,
};

/* Record header size in bytes; each record takes
 * SHMRING_RECORD_SIZE(len) bytes of the ring.  A record that would cross
 * the end of the data area, when the rest of the lap is at most capacity / 16
 * bytes, starts the next lap after a pad of that rest (shmring(7)). */
#define SHMRING_RECORD_HDR 8u
#define SHMRING_RECORD_SIZE(len) \
	(SHMRING_RECORD_HDR + (((uint64_t)(len) + 7u) & ~(uint64_t)7u))

/* Defaults and limits of struct shmring_opts. */
#define SHMRING_DEFAULT_CAPACITY (1u << 20)
#define SHMRING_MAX_CAPACITY (1ull << 32)
#define SHMRING_DEFAULT_CONSUMERS 64u
#define SHMRING_MAX_CONSUMERS 4096u

/*
 * Creation options.  Zero-initialise, set .size = sizeof(struct shmring_opts)
 * and fill what you need; a field left 0 takes its default.  Passing NULL
 * means all defaults.
 */
struct shmring_opts {
	size_t size;            /* sizeof(struct shmring_opts) */
	uint64_t capacity;      /* data bytes, rounded up to a power of two and
	                         * at least one page; default 1 MiB, at most
	                         * SHMRING_MAX_CAPACITY */
	uint32_t max_consumers; /* cursor slots; default 64, at most 4096 */
	uint32_t mode;          /* permission bits of a named ring, applied
	                         * exactly (umask ignored); default 0600 */
	uint32_t policy;        /* enum shmring_policy */
	uint32_t flags;         /* 0, or SHMRING_INLINE_SMALL */
};

/*
 * Flag of struct shmring_opts, for request/response traffic (BLOCK rings
 * only; with OVERWRITE, -EINVAL): shmring_send[_wait]() of a message of at
 * most SHMRING_INLINE_MAX bytes, with no reservation pending and no pad
 * before its record (at a lap's end), also copies it into the cache line
 * that holds the producer's tail; reserve and commit write no copy.  A
 * broadcast consumer that has read everything before it, and then receives
 * it with shmring_recv[_wait]() (or, after a wait, shmring_recv_batch_wait()
 * with max 1), takes it from there: one cache line moves from the producer
 * to it per message instead of two.  The record is written to the ring as
 * always, and every other way of reading (peek, larger batches, groups, a
 * consumer that is behind) reads it there.
 * Costs the producer a few stores per small send: one-by-one sends of
 * small messages ran 0.7-0.9x as many per second on the project's VMs
 * (perf/RESULTS.md, change 28).
 */
#define SHMRING_INLINE_SMALL 1u
#define SHMRING_INLINE_MAX 32u

/* A snapshot of a ring's fixed geometry and current state. */
struct shmring_info {
	uint64_t capacity;      /* data bytes */
	uint64_t tail;          /* position of the next record to be published */
	uint32_t max_message;   /* largest payload accepted, bytes:
	                         * capacity / 2 - SHMRING_RECORD_HDR */
	uint32_t max_consumers; /* cursor slots */
	uint32_t consumers;     /* broadcast consumers and group members now */
	uint32_t policy;        /* enum shmring_policy */
	uint32_t groups;        /* consumer groups now */
	int producer;           /* 1 if a live producer is attached, else 0 */
	int closed;             /* 1 if the last producer closed the ring */
};

/* One message of a batch (shmring_peek_batch(), shmring_recv_batch()). */
struct shmring_msg {
	const void *data;
	size_t len;
};

/* The longest group name, in bytes. */
#define SHMRING_GROUP_NAME_MAX 31u

/* Flags of shmring_consumer_open() and shmring_group_open(). */
enum {
	/* Start at the next message published (the default). */
	SHMRING_START_NEWEST = 0,
	/* Start at the oldest message the ring still holds for certain: the
	 * oldest message the producer has not yet been allowed to overwrite.
	 * That is at or before the slowest attached consumer's position, and
	 * is message 0 until the ring first fills.  In policy OVERWRITE: the
	 * oldest intact message. */
	SHMRING_START_OLDEST = 1,
};

/* ---- Library ---------------------------------------------------------- */

/* Returns SHMRING_VERSION of the library that is running, to compare with
 * the header a program was built against.  Never fails. */
SHMRING_API int shmring_version(void);

/*
 * Returns a static, never NULL, English description of err, a value returned
 * by any shmring_ function (negative errno; a positive value is treated the
 * same).  Unknown codes give "unknown error".  [AS-safe]
 */
SHMRING_API const char *shmring_strerror(int err);

/*
 * Sets *deadline to now + timeout_ns on CLOCK_MONOTONIC, for the _wait
 * functions.  Returns 0, or -EINVAL if deadline is NULL.  [AS-safe]
 */
SHMRING_API int shmring_deadline(struct timespec *deadline, uint64_t timeout_ns);

/* ---- Ring lifecycle ---------------------------------------------------- */

/*
 * Creates a new ring under the POSIX shared-memory name `name` ("/x", one
 * leading slash, no other slash, not "/." or "/..", at most 255 bytes) and
 * maps it.  The object is created with O_EXCL and its storage allocated in
 * full now, so a full /dev/shm fails here rather than with SIGBUS later.
 *
 * Returns 0 and sets *ring, or:
 *   -EINVAL  bad name, NULL argument, bad option (unknown policy or flags,
 *            SHMRING_INLINE_SMALL with OVERWRITE,
 *            capacity or max_consumers over the limit, mode bits outside
 *            07777, opts->size too small, or non-zero bytes past the
 *            fields this library knows)
 *   -EEXIST  a ring or other object of that name exists
 *   -ENOSPC  not enough shared memory for the ring
 *   -EACCES, -EMFILE, -ENFILE, -ENOMEM, -ENAMETOOLONG: from the system
 * On failure nothing is left behind under `name`.
 */
SHMRING_API int shmring_create(const char *name, const struct shmring_opts *opts,
			       struct shmring **ring);

/*
 * Creates an anonymous ring in a memfd (sealed against shrinking and
 * growing).  Share it with fork() or by passing shmring_fd() over a Unix
 * socket (SCM_RIGHTS) to shmring_open_fd().  `debug_name` labels the memfd in
 * /proc (may be NULL).  Returns 0 and sets *ring, or -EINVAL, -ENOSPC,
 * -EMFILE, -ENFILE, -ENOMEM as for shmring_create().
 */
SHMRING_API int shmring_create_anon(const char *debug_name,
				    const struct shmring_opts *opts,
				    struct shmring **ring);

/*
 * Opens and maps the existing ring `name`, after validating its header
 * against the object's size and the layout's invariants.
 *
 * Returns 0 and sets *ring, or:
 *   -EINVAL          bad name or NULL argument
 *   -ENAMETOOLONG    name longer than 255 bytes
 *   -ENOENT          no such object
 *   -EACCES          permission denied
 *   -EAGAIN          the object exists but its creator has not finished
 *                    initialising it (retry), or it was never initialised
 *   -EPROTO          not a shmring ring, or its header is corrupt or
 *                    inconsistent with the object's size
 *   -EPROTONOSUPPORT the ring has another layout version
 *   -ENOTSUP         the ring was made for another page size
 *   -ENOMEM, -EMFILE, -ENFILE: from the system
 */
SHMRING_API int shmring_open(const char *name, struct shmring **ring);

/*
 * Like shmring_open() for a ring given as a file descriptor (inherited or
 * received).  The fd is duplicated; the caller keeps and closes its own.
 * A memfd ring must carry the shrink and grow seals (else -EPROTO).
 * A ring opened from a read-only fd can be read by nobody but allows
 * shmring_info(); producer and consumer opens on it give -EACCES.
 * Returns 0 and sets *ring, -EBADF for a bad or O_PATH fd, or the errors of
 * shmring_open().
 */
SHMRING_API int shmring_open_fd(int fd, struct shmring **ring);

/*
 * Returns the ring's file descriptor (owned by the handle: do not close it),
 * to pass to another process.  Never fails for a valid handle; -EINVAL for
 * NULL.
 */
SHMRING_API int shmring_fd(const struct shmring *ring);

/*
 * Fills *info with a snapshot of the ring.  Returns 0, or -EINVAL for a NULL
 * argument.  Any side may call it, at any time.
 */
SHMRING_API int shmring_info(const struct shmring *ring, struct shmring_info *info);

/*
 * Unmaps the ring and frees the handle.  The ring itself lives on until it is
 * unlinked and unmapped everywhere.  Returns 0, or -EBUSY (nothing done) while
 * a producer or consumer opened on this handle by this process is still
 * open; -EINVAL for NULL.
 */
SHMRING_API int shmring_close(struct shmring *ring);

/*
 * Removes the name of a named ring; processes that have it open keep using
 * it.  Returns 0, -EINVAL for a bad name, -ENAMETOOLONG, -ENOENT, -EACCES.
 */
SHMRING_API int shmring_unlink(const char *name);

/* ---- Producer ---------------------------------------------------------- */

/*
 * Becomes the ring's producer.  Continues the sequence where the previous
 * producer (if any) stopped and clears the ring's closed state.  If the
 * previous producer died, takes over: what it reserved and never committed
 * is discarded, never seen by consumers.  Enters the whole data area in
 * the process's page tables, writable, so that the first lap through the
 * ring takes no page faults (Linux 5.14 and later; its cost grows with the
 * capacity: see shmring(7), MEMORY).  If the ring's max_message is over
 * 4096 bytes, also allocates the 12 KiB buffer that shmring_send() copies
 * some large messages through (see shmring_send(3), NOTES).
 * Returns 0 and sets *producer, or -EBUSY if another live producer is attached,
 * -EINVAL for NULL arguments, -ENOMEM, -EACCES if the ring's fd was not
 * opened for writing, -EPROTO if the ring's producer state is corrupt (its
 * tail is not a record boundary).
 */
SHMRING_API int shmring_producer_open(struct shmring *ring,
				      struct shmring_producer **producer);

/*
 * Stops producing without freeing anything, so a signal handler (say for
 * SIGTERM) may call it: discards uncommitted reservations, marks the ring
 * closed, gives up the producer role and wakes every sleeping consumer; they
 * drain what was published, then get -EPIPE.  Later reserves, commits, aborts
 * and sends on this handle return -EPIPE; a second shutdown returns 0.
 * Called from a handler that interrupted a call on this producer, it takes
 * effect when that call returns (a call waiting for room returns -EPIPE at
 * once): the ring is never left half-updated.  Returns 0 (also when
 * already shut down), or -EINVAL for NULL.  [AS-safe]
 */
SHMRING_API int shmring_producer_shutdown(struct shmring_producer *producer);

/*
 * Shuts the producer down as shmring_producer_shutdown() does (if not done
 * yet) and frees the handle.  Returns 0, -EINVAL for NULL, or -EBUSY when
 * called from a handler that interrupted a call on this producer.
 */
SHMRING_API int shmring_producer_close(struct shmring_producer *producer);

/*
 * Reserves room for one record of `len` payload bytes and sets *data to
 * where the payload goes (8-byte aligned, contiguous even across the wrap
 * point).  Several reserves may precede one shmring_commit(), which
 * publishes them all at once.  Does not wait.
 *
 * In policy OVERWRITE it never waits: it moves the oldest records out of the
 * way (consumers still reading them will find out, see
 * SHMRING_POLICY_OVERWRITE).
 *
 * Returns 0, or:
 *   -EAGAIN   the ring is full now (consumers are behind; BLOCK only)
 *   -EMSGSIZE len exceeds the ring's max_message
 *   -ENOBUFS  this record and the uncommitted ones exceed the capacity:
 *             commit first
 *   -EPIPE    this producer was shut down
 *   -EINVAL   NULL argument
 * [AS-safe]
 */
SHMRING_API int shmring_reserve(struct shmring_producer *producer, size_t len,
				void **data);

/*
 * Like shmring_reserve() but waits until there is room or `deadline` passes
 * (-ETIMEDOUT).  Spins briefly, then sleeps on a futex.  Also returns
 * -EINTR (shmring_producer_interrupt(), or a signal with
 * shmring_set_eintr()) and -EPIPE (a handler shut the producer down).
 */
SHMRING_API int shmring_reserve_wait(struct shmring_producer *producer, size_t len,
				     void **data, const struct timespec *deadline);

/*
 * Reserves up to n records of len bytes each in one call, and sets data[i]
 * to the payload area of the i-th; the records follow one another in the
 * ring and are published together by the next shmring_commit(), like n calls
 * of shmring_reserve().  Reserves as many as there is room for now, at
 * least 1: returns that number k (1 <= k <= n; data[k..n-1] untouched), or
 * the error that shmring_reserve() gives for the first record.  Fewer than n
 * come back when the ring (BLOCK) has room for fewer, when n more would
 * make the uncommitted records exceed the capacity, or before a record that
 * would start the next lap after a pad (shmring(7)): the records of one call
 * lie back to back.  Also -EINVAL for n == 0.  [AS-safe]
 */
SHMRING_API int shmring_reserve_batch(struct shmring_producer *producer, size_t len,
				      unsigned n, void **data);

/* Like shmring_reserve_batch() but waits, as shmring_reserve_wait() does,
 * until there is room for the first record; the others are those that fit
 * then, without waiting. */
SHMRING_API int shmring_reserve_batch_wait(struct shmring_producer *producer, size_t len,
					   unsigned n, void **data,
					   const struct timespec *deadline);

/*
 * Like shmring_reserve_batch() but returns only where the first payload
 * goes, in *first: the records of one call lie back to back in the ring, so
 * the i-th payload (i < the count returned) starts at
 * (char *)*first + i * SHMRING_RECORD_SIZE(len).  Write only the len
 * bytes of each payload: the bytes between two are the next record's
 * header.  The run is contiguous even where it wraps (the data area is
 * mapped twice in a row).  *first is left alone on error.  It stores
 * nothing per record but the record's header, where shmring_reserve_batch()
 * also fills data[i]; for small messages that is measurably faster (see
 * perf/RESULTS.md).  Errors and the count returned as shmring_reserve_batch().
 * [AS-safe]
 */
SHMRING_API int shmring_reserve_array(struct shmring_producer *producer, size_t len,
				      unsigned n, void **first);

/* Like shmring_reserve_array() but waits as shmring_reserve_batch_wait()
 * does. */
SHMRING_API int shmring_reserve_array_wait(struct shmring_producer *producer, size_t len,
					   unsigned n, void **first,
					   const struct timespec *deadline);

/*
 * Publishes every record reserved since the last commit, with one store, and
 * wakes sleeping consumers: no system call while none sleeps; else one for
 * all sleeping broadcast consumers and one per group with sleeping members
 * (waking at most one member per record).  Returns the number of records
 * published (0 if none), -EPIPE after shmring_producer_shutdown(), -EBUSY
 * (called from a handler that interrupted a call on this producer), or
 * -EINVAL for NULL.  [AS-safe]
 */
SHMRING_API int shmring_commit(struct shmring_producer *producer);

/*
 * Discards every record reserved since the last commit; consumers never see
 * them.  Returns the number discarded, -EPIPE after
 * shmring_producer_shutdown(), -EBUSY (called from a handler that
 * interrupted a call on this producer), or -EINVAL for NULL.  [AS-safe]
 */
SHMRING_API int shmring_abort(struct shmring_producer *producer);

/*
 * Copies one message into the ring and publishes it.  Does not wait.
 * Returns 0, the errors of shmring_reserve(), or -EBUSY while records
 * reserved with shmring_reserve() are not yet committed or aborted (or when
 * called from a handler that interrupted a call on this producer).
 * [AS-safe]
 */
SHMRING_API int shmring_send(struct shmring_producer *producer, const void *msg,
			     size_t len);

/* Like shmring_send() but waits for room until `deadline` (-ETIMEDOUT);
 * -EINTR and -EPIPE as for shmring_reserve_wait(). */
SHMRING_API int shmring_send_wait(struct shmring_producer *producer, const void *msg,
				  size_t len, const struct timespec *deadline);

/* ---- Consumer ---------------------------------------------------------- */

/*
 * Attaches a broadcast consumer: it will see every message published from
 * its start position on (flags: SHMRING_START_NEWEST or SHMRING_START_OLDEST),
 * and in policy BLOCK the producer waits for it.  Enters the whole data
 * area in the process's page tables, as shmring_producer_open() does,
 * read-only.
 * Returns 0 and sets *consumer, or -EINVAL (NULL argument, unknown flags),
 * -EUSERS (every cursor slot is taken by a live consumer: slots of dead ones
 * are freed first), -EACCES (ring opened from a
 * read-only fd), -ENOMEM, -EPROTO (the producer's state is corrupt); in policy
 * OVERWRITE also -EAGAIN (the producer's position could not be read
 * consistently: it stopped in the middle of an update, or runs in a signal
 * handler that interrupted this call).
 */
SHMRING_API int shmring_consumer_open(struct shmring *ring, unsigned flags,
				      struct shmring_consumer **consumer);

/*
 * Joins the consumer group `name` (1 to SHMRING_GROUP_NAME_MAX bytes),
 * creating it if no member is attached.  The members of a group share one
 * cursor: each message goes to exactly one member, whichever asks first.
 * Members join and leave at any time; a group ends when its last member
 * leaves, and one created later starts afresh (flags: where a new group
 * starts, as for shmring_consumer_open(); ignored when joining).  Enters
 * the data area in the page tables as shmring_consumer_open() does.
 * The consumer functions below work on the returned handle:
 *   - shmring_recv() and shmring_recv_batch() copy records out and then
 *     claim them with one compare-and-swap: a member that dies before the
 *     claim has taken nothing, and another member gets those messages.
 *   - shmring_peek() and shmring_peek_batch() claim first and return
 *     pointers into the ring, valid until shmring_release(); the member's
 *     own slot holds the producer back from that room meanwhile.  Claimed is
 *     delivered: messages peeked and not processed before a member closes or
 *     dies are gone for the group.
 *   - A waiting member sleeps on its group's futex; each record published
 *     wakes at most one sleeping member of each group.
 * Each member takes one cursor slot, and a group one more.
 * Returns 0 and sets *consumer, or -EINVAL (NULL argument, empty name,
 * unknown flags), -ENAMETOOLONG, -EUSERS (not enough free slots),
 * -ENOTSUP (the ring's policy is OVERWRITE), -EACCES (ring opened from a
 * read-only fd), -ENOMEM.
 */
SHMRING_API int shmring_group_open(struct shmring *ring, const char *name, unsigned flags,
				   struct shmring_consumer **consumer);

/*
 * Detaches a broadcast consumer or a group member: frees its slot (the
 * producer no longer waits for it) and the handle; the last member of a
 * group frees the group.  Returns 0, -EINVAL for NULL, or -EBUSY (nothing
 * done) when called from a signal handler that interrupted a call on this
 * consumer.
 */
SHMRING_API int shmring_consumer_close(struct shmring_consumer *consumer);

/*
 * Zero-copy read: sets *data and *len to the next message not yet peeked.
 * The bytes stay valid and unchanged until shmring_release().  Several peeks
 * may precede one release.  Does not wait.
 *
 * Returns 0, or:
 *   -EAGAIN    nothing new yet
 *   -EPIPE     the producer closed the ring, or died, and everything
 *              published was read
 *   -EPROTO    the ring holds a record that cannot be valid (corruption)
 *   -EOVERFLOW (OVERWRITE) the producer lapped this consumer: messages
 *              peeked and not released are dropped, the lost count grows
 *              (shmring_lost()), and the next call reads the oldest intact
 *              message
 *   -EINVAL    NULL argument
 * In policy OVERWRITE the bytes may be overwritten while the caller reads
 * them: they are good only if the shmring_release() that follows returns a
 * count, not -EOVERFLOW.
 * [AS-safe]
 */
SHMRING_API int shmring_peek(struct shmring_consumer *consumer, const void **data,
			     size_t *len);

/*
 * Like shmring_peek() but waits for a message until `deadline`
 * (-ETIMEDOUT).  Messages peeked and not yet released keep their room while
 * this waits: in policy BLOCK a producer that needs that room waits too, and
 * with no deadline both wait forever.  Call shmring_release() before waiting
 * unless the ring has room for what the producer will send meanwhile.
 */
SHMRING_API int shmring_peek_wait(struct shmring_consumer *consumer,
				  const void **data, size_t *len,
				  const struct timespec *deadline);

/*
 * Gives back every message peeked so far, so the producer may reuse their
 * room; pointers from shmring_peek() are then invalid.  Wakes the producer if
 * it sleeps for room.  Returns the number of messages released (0 if none),
 * -EOVERFLOW (OVERWRITE: some of them were overwritten while held; none of
 * them is good, and they count as lost), -EAGAIN or -EPROTO (OVERWRITE, while
 * handling a lap: as for shmring_consumer_open(); the messages stay peeked),
 * -EPIPE (OVERWRITE, while handling a lap: the producer died mid-update and
 * no producer has repaired its position yet; the messages stay peeked),
 * -EBUSY (called from a handler that interrupted a call on this consumer),
 * or -EINVAL for NULL.  [AS-safe]
 */
SHMRING_API int shmring_release(struct shmring_consumer *consumer);

/*
 * Copying read: copies the next message into buf (buflen bytes), sets *len
 * to its length and releases it (and any messages peeked before).  Does not
 * wait.
 *
 * Returns 0, or:
 *   -EMSGSIZE buf is too small; *len is set to the size needed and the
 *             message stays unread
 *   -EAGAIN, -EPIPE, -EPROTO, -EOVERFLOW, -EINVAL: as for shmring_peek()
 *             (after -EOVERFLOW nothing was copied that counts)
 * [AS-safe]
 */
SHMRING_API int shmring_recv(struct shmring_consumer *consumer, void *buf,
			     size_t buflen, size_t *len);

/* Like shmring_recv() but waits for a message until `deadline`
 * (-ETIMEDOUT): spins (shmring_set_spin()), then sleeps.  A consumer that
 * spins for low latency should spin here, not in a loop of its own around
 * shmring_recv(): such a loop polls the producer's line too often, and its
 * round trips took up to twice as long (shmring_recv(3)). */
SHMRING_API int shmring_recv_wait(struct shmring_consumer *consumer, void *buf,
				  size_t buflen, size_t *len,
				  const struct timespec *deadline);

/*
 * Zero-copy batch: peeks up to `max` messages (at least 1) at once, filling
 * msgs[0..n-1] with pointers into the ring, and returns n.  For a group
 * member the n messages are claimed with one compare-and-swap.  Release them
 * with one shmring_release().  Returns n >= 1, or the errors of
 * shmring_peek() (-EINVAL also for max == 0).  An error met after some
 * messages were taken ends the batch early, and the next call reports it;
 * except -EOVERFLOW, which drops the whole batch.  [AS-safe]
 */
SHMRING_API int shmring_peek_batch(struct shmring_consumer *consumer,
				   struct shmring_msg *msgs, unsigned max);

/* Like shmring_peek_batch() but waits for at least one message until
 * `deadline` (-ETIMEDOUT); the rule of shmring_peek_wait() applies. */
SHMRING_API int shmring_peek_batch_wait(struct shmring_consumer *consumer,
					struct shmring_msg *msgs, unsigned max,
					const struct timespec *deadline);

/*
 * Copying batch: copies up to `max` messages (at least 1) into buf, each at
 * an 8-byte aligned offset, fills msgs[0..n-1] with where each landed in buf
 * and its length, and releases them with one cursor update.  Returns n >= 1,
 * or -EMSGSIZE if the first message does not fit (msgs[0].len is set to its
 * size; nothing is consumed), or the other errors of shmring_recv().
 * Messages that do not fit after the first stay for the next call.
 * [AS-safe]
 */
SHMRING_API int shmring_recv_batch(struct shmring_consumer *consumer, void *buf,
				   size_t buflen, struct shmring_msg *msgs, unsigned max);

/* Like shmring_recv_batch() but waits for at least one message until
 * `deadline` (-ETIMEDOUT). */
SHMRING_API int shmring_recv_batch_wait(struct shmring_consumer *consumer, void *buf,
					size_t buflen, struct shmring_msg *msgs,
					unsigned max, const struct timespec *deadline);

/*
 * Sets *lost to the number of messages this consumer has lost since it
 * attached because the producer overwrote them (policy OVERWRITE; always 0
 * in BLOCK).  For a consumer that received r messages from its start,
 * r + *lost is the number published since.  Returns 0, or -EINVAL for NULL.
 * [AS-safe]
 */
SHMRING_API int shmring_lost(const struct shmring_consumer *consumer, uint64_t *lost);

/*
 * Sets how long a waiting call spins before it sleeps, in nanoseconds, for
 * endpoints of this handle (0 sleeps at once).  Without this call the spin
 * adapts, per endpoint: it starts at 20000.  After a sleep, if spinning
 * pays (the ring has no more endpoints, producer, consumers and group
 * members, than the machine has CPUs online, and either the 64 waits
 * before the sleep ended while spinning, or the sleep was at most 4 times
 * the spin, or the endpoint published or read at least 64 messages since
 * its previous sleep), and if the sleep ended within 4000000: an endpoint
 * that moved those 64 messages (it waits only when its peer stops) spins
 * 4000000 from then on; another one spins twice that whole wait (spin plus
 * sleep, up to 4000000) if at least one wait since the previous sleep
 * ended while spinning, else as before.  After a longer sleep the spin
 * stays.  Otherwise it halves (not below 20000).  So a stream that seldom
 * stops spins through its occasional stalls, while an endpoint whose
 * waits mostly end in sleep (a quiet ring, a message now and then, regular
 * pauses longer than the spin, more endpoints than CPUs) keeps the short
 * spin.  Spinning costs a
 * core; sleeping costs a futex wake-up of tens of microseconds.  May
 * be called at any time, also while another thread waits (it then applies
 * to the next wait).  Returns 0, or -EINVAL for NULL.
 */
SHMRING_API int shmring_set_spin(struct shmring *ring, uint64_t spin_ns);

/*
 * Chooses what the blocking calls of this handle's endpoints do when a
 * signal handler runs while they sleep in the kernel: retry, keeping their
 * deadline (enable = 0, the default), or return -EINTR (enable = 1), so that
 * the caller can look at what its handler did.  A signal that arrives while
 * the call is spinning, or between two sleeps, does not interrupt it: use
 * shmring_consumer_interrupt() or shmring_producer_interrupt() from the
 * handler when the call must return for certain.  May be called at any
 * time.  Returns 0, or -EINVAL for NULL.
 */
SHMRING_API int shmring_set_eintr(struct shmring *ring, int enable);

/* ---- Signals ------------------------------------------------------------ */

/*
 * Makes the blocking call that is waiting on this consumer, or else the
 * next one that would wait, return -EINTR.  Meant for a signal handler (for
 * example on SIGTERM) that must get its own blocked shmring_recv_wait()
 * back promptly: the call returns within one futex wake-up, whatever its
 * spin or sleep state when the handler ran.  A call that finds a message
 * returns the message; the interrupt stays pending until a call would
 * wait, and is used up by the -EINTR it causes.  May wake other sleepers
 * of the ring for nothing (they sleep again).  Returns 0, or -EINVAL for
 * NULL.  [AS-safe]
 */
SHMRING_API int shmring_consumer_interrupt(struct shmring_consumer *consumer);

/*
 * The same for the producer: shmring_reserve_wait() or shmring_send_wait()
 * waiting for room (or the next one that would wait) returns -EINTR.
 * Returns 0, or -EINVAL for NULL.  [AS-safe]
 */
SHMRING_API int shmring_producer_interrupt(struct shmring_producer *producer);

/*
 * Arms a notification by signal, like mq_notify(3) with SIGEV_SIGNAL: the
 * next time this consumer has something to read (a message, or the end of
 * the ring), the producer sends signal `signo` to this process with
 * sigqueue(3), carrying `value` (si_value.sival_ptr, si_code SI_QUEUE,
 * si_pid the producer's pid); pass something that names the ring and the
 * cursor, such as the consumer handle.  One arming gives one signal, so a
 * fast producer cannot flood the consumer; arm again after draining.  If
 * there is already something to read, or the producer is dead, the signal
 * is sent at once by this call.  With the signal blocked and read through
 * signalfd(2), the ring becomes a pollable file descriptor (see
 * examples/epoll_loop.c); a group member is notified when its group has
 * something to read.
 *
 * signo 0 disarms.  Arming again while armed replaces signo and value.
 * The producer finds the process to signal through a record lock
 * (fcntl(2) F_SETLK) that this call takes on a byte of the ring's file, so
 * a pid written into shared memory by a hostile peer is never signalled;
 * the kernel checks the producer's permission to signal (same user, or
 * CAP_KILL), and a notification it refuses is dropped.  POSIX releases a
 * process's record locks on a file when it closes any descriptor of that
 * file: the library re-takes them after its own closes on this ring handle,
 * but after opening or closing another handle of the same ring in this
 * process, arm again.  No signal comes if the producer dies after the
 * arming: an event loop should arm again now and then (from a timer), which
 * checks the producer.
 *
 * Returns 0, or -EINVAL (NULL, or signo not a signal number, or SIGKILL or
 * SIGSTOP), -EBUSY (called from a handler that interrupted a call on this
 * consumer), or the error of the record lock (for example -ENOLCK).
 */
SHMRING_API int shmring_notify(struct shmring_consumer *consumer, int signo, void *value);

#ifdef __cplusplus
}
#endif

#endif /* SHMRING_H */
