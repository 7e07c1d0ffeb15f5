/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: a real, small ring whose shared state is corrupted under
 * live endpoints.
 *
 * Creates a ring (shmring_create_anon: capacity 4096 or 8192, policy BLOCK
 * or OVERWRITE, a few slots), attaches a producer, broadcast consumers and
 * (BLOCK) group members, publishes a few real messages, then runs a stream
 * of operations read from the input.  Each operation either overwrites part
 * of the shared memory through a second, writable mapping of the ring's fd
 * (the data area, the producer's tail/head/seq/ver/reclaim/closed/owner, any
 * cursor slot's pos/state/kind/members/group/name, the consumers' shared
 * line, or raw bytes anywhere after the header), or calls the API without
 * blocking (recv, peek, peek_batch, recv_batch, release, lost, info, reserve,
 * commit, abort, send, the _wait forms with a deadline in the past or 20
 * microseconds away, opens and closes of endpoints).  Any return code is
 * fine; crashes, sanitizer reports, leaks, hangs and broken API promises
 * (checked with FZ_CHECK) are not.
 *
 * Input layout:
 *   byte 0  bit 0 policy OVERWRITE, bit 1 capacity 8192, bits 2-4 slots - 3,
 *           bit 5 consumers start OLDEST, bit 6 allow an odd `ver` (see
 *           below), bit 7 spin 0 (waits go straight to the futex)
 *   byte 1  bits 0-3 messages published before the stream, bits 4-5 group
 *           members (BLOCK), bits 6-7 extra broadcast consumers
 *   then    one length byte per message published, then the operations.
 *
 * An odd `ver` (OVERWRITE) makes a snapshot spin (2^16 times, some
 * milliseconds) before it gives up; that path is cheap to cover but slow, so
 * `ver` is kept even unless bit 6 of byte 0 asks for odd values, and then
 * fewer calls run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"

#define MAXC 8
#define MAX_OPS 256
#define MAX_CALLS 64
#define MAX_CALLS_ODD 16

struct st {
	struct shmring *r;
	struct shmring_producer *p;
	int p_shut;
	struct shmring_consumer *c[MAXC];
	uint64_t lost[MAXC];
	int nc;
	uint8_t *m; /* our writable mapping of the whole object */
	size_t mlen;
	uint64_t cap, prod_off, ctab_off, data_off;
	uint32_t nslots, max_message, policy;
	int allow_odd;
};

static uint8_t *prod_field(struct st *s, size_t off)
{
	return s->m + s->prod_off + off;
}

static uint8_t *slot_field(struct st *s, uint32_t i, size_t off)
{
	return s->m + s->ctab_off + LINE + (uint64_t)(i % s->nslots) * SLOT_SIZE + off;
}

/* Keeps `ver` even unless odd values are allowed (see the top comment). */
static void fix_ver(struct st *s)
{
	if (s->allow_odd || s->policy != SHMRING_POLICY_OVERWRITE)
		return;
	uint8_t *v = prod_field(s, offsetof(struct shm_prod, ver));
	uint32_t x = rd32(v);
	if (x & 1)
		wr32(v, x + 1);
}

static uint64_t tail_now(struct st *s)
{
	return rd64(prod_field(s, offsetof(struct shm_prod, tail)));
}

static void set_pos_field(struct fz *f, struct st *s, uint8_t *p)
{
	wr64(p, fz_pos(f, rd64(p), s->cap));
}

static void set_u32_field(struct fz *f, uint8_t *p)
{
	wr32(p, fz_val32(f, rd32(p)));
}

/* A position around which to write a record header. */
static uint64_t some_pos(struct fz *f, struct st *s)
{
	uint8_t k = fz_u8(f);
	switch (k % 5) {
	case 0:
		return tail_now(s);
	case 1:
		return rd64(prod_field(s, offsetof(struct shm_prod, head)));
	case 2:
		return rd64(prod_field(s, offsetof(struct shm_prod, reclaim)));
	case 3:
		return rd64(slot_field(s, fz_u8(f), offsetof(struct shm_slot, pos)));
	default:
		return (uint64_t)fz_u16(f) * 8;
	}
}

static void corrupt(struct fz *f, struct st *s, unsigned what)
{
	switch (what) {
	case 0: { /* data bytes */
		uint64_t off = fz_u16(f) % s->cap;
		uint8_t buf[64];
		size_t n = 1 + fz_u8(f) % sizeof(buf);
		if (n > s->cap - off)
			n = (size_t)(s->cap - off);
		fz_bytes(f, buf, n);
		wrbytes(s->m + s->data_off + off, buf, n);
		break;
	}
	case 1: { /* a record header */
		uint64_t pos = some_pos(f, s) + (uint64_t)(int64_t)(int8_t)fz_u8(f) * 8;
		uint64_t off = pos & (s->cap - 1);
		if (off > s->cap - 8)
			off = s->cap - 8;
		uint8_t *rec = s->m + s->data_off + off;
		uint32_t len;
		uint8_t mode = fz_u8(f);
		switch (mode % 6) {
		case 0:
			len = fz_u8(f);
			break;
		case 1:
			len = s->max_message + (uint32_t)(int32_t)(int8_t)fz_u8(f);
			break;
		case 2:
			len = fz_u32(f);
			break;
		case 3: /* exactly to the tail */
			len = (uint32_t)(tail_now(s) - pos - 8);
			break;
		case 4:
			len = (uint32_t)s->cap - 8 + (uint32_t)(int32_t)(int8_t)fz_u8(f);
			break;
		default:
			len = rd32(rec);
			break;
		}
		wr32(rec, len);
		if (mode & 0x80)
			wr32(rec + 4, fz_val32(f, rd32(rec + 4)));
		break;
	}
	case 2:
		set_pos_field(f, s, prod_field(s, offsetof(struct shm_prod, tail)));
		break;
	case 3:
		set_pos_field(f, s, prod_field(s, offsetof(struct shm_prod, head)));
		break;
	case 4:
		set_pos_field(f, s, prod_field(s, offsetof(struct shm_prod, tail_seq)));
		break;
	case 5:
		set_pos_field(f, s, prod_field(s, offsetof(struct shm_prod, head_seq)));
		break;
	case 6:
		set_u32_field(f, prod_field(s, offsetof(struct shm_prod, ver)));
		break;
	case 7:
		set_pos_field(f, s, prod_field(s, offsetof(struct shm_prod, reclaim)));
		break;
	case 8: { /* closed, owner */
		static const size_t offs[] = { offsetof(struct shm_prod, closed),
					       offsetof(struct shm_prod, owner) };
		set_u32_field(f, prod_field(s, offs[fz_u8(f) % 2]));
		break;
	}
	case 9:
		set_pos_field(f, s, slot_field(s, fz_u8(f), offsetof(struct shm_slot, pos)));
		break;
	case 10:
		set_u32_field(f, slot_field(s, fz_u8(f), offsetof(struct shm_slot, state)));
		break;
	case 11:
		set_u32_field(f, slot_field(s, fz_u8(f), offsetof(struct shm_slot, kind)));
		break;
	case 12: { /* members: generation << 32 | count */
		uint8_t *p = slot_field(s, fz_u8(f), offsetof(struct shm_slot, members));
		uint64_t w = rd64(p);
		uint8_t mode = fz_u8(f);
		if (mode & 1)
			w = (w & ~0xffffffffull) | fz_val32(f, (uint32_t)w);
		else
			w = fz_pos(f, w, 1ull << 32);
		wr64(p, w);
		break;
	}
	case 13:
		set_u32_field(f, slot_field(s, fz_u8(f), offsetof(struct shm_slot, group)));
		break;
	case 14: { /* a group name */
		uint8_t name[GROUP_NAME_MAX + 1];
		uint8_t *p = slot_field(s, fz_u8(f), offsetof(struct shm_slot, name));
		size_t n = 1 + fz_u8(f) % sizeof(name);
		fz_bytes(f, name, n);
		wrbytes(p, name, n);
		break;
	}
	case 15: { /* futex, gsleep, owner, notify */
		static const size_t offs[] = { offsetof(struct shm_slot, futex),
					       offsetof(struct shm_slot, gsleep),
					       offsetof(struct shm_slot, owner),
					       offsetof(struct shm_slot, notify) };
		uint8_t i = fz_u8(f);
		set_u32_field(f, slot_field(s, i, offs[fz_u8(f) % 4]));
		break;
	}
	case 16: { /* the consumers' shared line */
		uint8_t *p = s->m + s->ctab_off + 4 * (fz_u8(f) % 8);
		set_u32_field(f, p);
		break;
	}
	default: { /* raw bytes anywhere after the header page */
		uint64_t span = s->mlen - s->prod_off;
		uint64_t off = s->prod_off + fz_u32(f) % span;
		uint8_t buf[32];
		size_t n = 1 + fz_u8(f) % sizeof(buf);
		if (n > s->mlen - off)
			n = (size_t)(s->mlen - off);
		fz_bytes(f, buf, n);
		wrbytes(s->m + off, buf, n);
		break;
	}
	}
	fix_ver(s);
}
#define N_CORRUPT 18

static size_t pick_buflen(struct fz *f, struct st *s)
{
	uint8_t k = fz_u8(f);
	switch (k % 6) {
	case 0:
		return 0;
	case 1:
		return 8;
	case 2:
		return fz_u8(f);
	case 3:
		return s->max_message;
	case 4:
		return (size_t)s->max_message * 2 + 16;
	default:
		return 64;
	}
}

static size_t pick_len(struct fz *f, struct st *s)
{
	uint8_t k = fz_u8(f);
	switch (k % 5) {
	case 0:
		return fz_u8(f);
	case 1:
		return s->max_message;
	case 2:
		return (size_t)s->max_message + 1; /* -EMSGSIZE */
	case 3:
		return fz_u16(f) % (s->max_message + 1);
	default:
		return k / 5;
	}
}

static void check_msgs_in_buf(const struct shmring_msg *msgs, int n, const uint8_t *buf,
			      size_t buflen)
{
	for (int k = 0; k < n; k++) {
		const uint8_t *d = msgs[k].data;
		size_t off = (size_t)(d - buf);
		FZ_CHECK(d >= buf && off <= buflen && msgs[k].len <= buflen - off);
		FZ_CHECK(off % 8 == 0);
	}
}

static void do_consumer_call(struct fz *f, struct st *s, struct shmring_consumer *c, int ci,
			     unsigned what)
{
	int rc = 0;
	switch (what) {
	case 0: { /* recv */
		size_t buflen = pick_buflen(f, s), len = 12345;
		uint8_t *buf = buflen ? malloc(buflen) : NULL;
		rc = shmring_recv(c, buf, buflen, &len);
		if (rc == 0)
			FZ_CHECK(len <= buflen && len <= s->max_message);
		else if (rc == -EMSGSIZE)
			FZ_CHECK(len > buflen && len <= s->max_message);
		free(buf);
		break;
	}
	case 1: { /* peek */
		const void *d = NULL;
		size_t len = 0;
		rc = shmring_peek(c, &d, &len);
		if (rc == 0)
			fz_touch_ring(s->r, d, len);
		break;
	}
	case 2: { /* peek_batch */
		unsigned max = 1 + fz_u8(f) % 16;
		struct shmring_msg *msgs = malloc(max * sizeof(*msgs));
		rc = shmring_peek_batch(c, msgs, max);
		FZ_CHECK(rc != 0 && rc <= (int)max);
		for (int k = 0; k < rc; k++)
			fz_touch_ring(s->r, msgs[k].data, msgs[k].len);
		free(msgs);
		break;
	}
	case 3: { /* recv_batch */
		unsigned max = 1 + fz_u8(f) % 16;
		size_t buflen = pick_buflen(f, s);
		uint8_t *buf = buflen ? malloc(buflen) : NULL;
		struct shmring_msg *msgs = malloc(max * sizeof(*msgs));
		rc = shmring_recv_batch(c, buf, buflen, msgs, max);
		FZ_CHECK(rc != 0 && rc <= (int)max);
		if (rc > 0)
			check_msgs_in_buf(msgs, rc, buf, buflen);
		else if (rc == -EMSGSIZE)
			FZ_CHECK(msgs[0].len > buflen && msgs[0].len <= s->max_message);
		free(msgs);
		free(buf);
		break;
	}
	case 4:
		rc = shmring_release(c);
		break;
	case 5: { /* lost: never shrinks; 0 in BLOCK */
		uint64_t lost = 0;
		rc = shmring_lost(c, &lost);
		FZ_CHECK(rc == 0);
		FZ_CHECK(lost >= s->lost[ci]);
		if (s->policy == SHMRING_POLICY_BLOCK)
			FZ_CHECK(lost == 0);
		s->lost[ci] = lost;
		break;
	}
	default: { /* a _wait form: deadline past, invalid or 20 us away */
		uint8_t k = fz_u8(f);
		struct timespec buf_dl;
		const struct timespec *dl = fz_deadline(k, &buf_dl);
		switch (k % 4) {
		case 0: {
			uint8_t buf[64];
			size_t len;
			rc = shmring_recv_wait(c, buf, sizeof(buf), &len, dl);
			break;
		}
		case 1: {
			const void *d;
			size_t len;
			rc = shmring_peek_wait(c, &d, &len, dl);
			if (rc == 0)
				fz_touch_ring(s->r, d, len);
			break;
		}
		case 2: {
			struct shmring_msg msgs[4];
			rc = shmring_peek_batch_wait(c, msgs, 4, dl);
			for (int j = 0; j < rc; j++)
				fz_touch_ring(s->r, msgs[j].data, msgs[j].len);
			break;
		}
		default: {
			uint8_t buf[256];
			struct shmring_msg msgs[4];
			rc = shmring_recv_batch_wait(c, buf, sizeof(buf), msgs, 4, dl);
			if (rc > 0)
				check_msgs_in_buf(msgs, rc, buf, sizeof(buf));
			break;
		}
		}
		if (k & 0x80)
			FZ_CHECK(rc == -EINVAL);
		break;
	}
	}
	fz_strerror(rc);
}
#define N_CONSUMER_CALLS 7

static void drop_consumer(struct st *s, int ci)
{
	FZ_CHECK(shmring_consumer_close(s->c[ci]) == 0);
	s->c[ci] = s->c[s->nc - 1];
	s->lost[ci] = s->lost[s->nc - 1];
	s->nc--;
}

static void do_producer_call(struct fz *f, struct st *s, unsigned what)
{
	int rc = 0;
	struct shmring_producer *p = s->p;
	switch (what) {
	case 0: { /* send */
		size_t len = pick_len(f, s);
		uint8_t *msg = malloc(len ? len : 1);
		memset(msg, 0x5a, len);
		rc = shmring_send(p, msg, len);
		free(msg);
		break;
	}
	case 1: { /* reserve: the room must be inside the data area */
		size_t len = pick_len(f, s);
		void *d = NULL;
		rc = shmring_reserve(p, len, &d);
		if (rc == 0) {
			const uint8_t *lo = s->r->data, *hi = lo + 2 * s->cap;
			FZ_CHECK((uint8_t *)d >= lo && len <= (size_t)(hi - (uint8_t *)d));
			memset(d, 0xa5, len);
		}
		break;
	}
	case 2:
		rc = shmring_commit(p);
		break;
	case 3:
		rc = shmring_abort(p);
		break;
	case 4: { /* _wait forms: deadline past, invalid or 20 us away */
		uint8_t k = fz_u8(f);
		size_t len = pick_len(f, s);
		struct timespec buf_dl;
		const struct timespec *dl = fz_deadline(k, &buf_dl);
		if (k & 1) {
			void *d;
			rc = shmring_reserve_wait(p, len, &d, dl);
			if (rc == 0)
				memset(d, 0x3c, len);
		} else {
			uint8_t *msg = calloc(1, len ? len : 1);
			rc = shmring_send_wait(p, msg, len, dl);
			free(msg);
		}
		if (k & 0x80)
			FZ_CHECK(rc == -EINVAL);
		break;
	}
	default:
		rc = shmring_producer_shutdown(p);
		FZ_CHECK(rc == 0);
		s->p_shut = 1;
		break;
	}
	fz_strerror(rc);
}
#define N_PRODUCER_CALLS 6

static void do_call(struct fz *f, struct st *s, unsigned what)
{
	if (what < N_CONSUMER_CALLS) {
		if (s->nc == 0)
			return;
		int ci = fz_u8(f) % s->nc;
		do_consumer_call(f, s, s->c[ci], ci, what);
		return;
	}
	what -= N_CONSUMER_CALLS;
	if (what < N_PRODUCER_CALLS) {
		if (s->p)
			do_producer_call(f, s, what);
		return;
	}
	what -= N_PRODUCER_CALLS;
	switch (what) {
	case 0: { /* info */
		struct shmring_info in;
		FZ_CHECK(shmring_info(s->r, &in) == 0);
		FZ_CHECK(in.capacity == s->cap && in.max_consumers == s->nslots &&
			 in.policy == s->policy && in.max_message == s->max_message);
		FZ_CHECK(in.consumers + in.groups <= s->nslots);
		break;
	}
	case 1: { /* another broadcast consumer */
		if (s->nc == MAXC)
			break;
		struct shmring_consumer *c = NULL;
		if (shmring_consumer_open(s->r, fz_u8(f) & 1, &c) == 0) {
			s->lost[s->nc] = 0;
			s->c[s->nc++] = c;
		}
		break;
	}
	case 2: { /* a group member */
		if (s->nc == MAXC)
			break;
		char name[GROUP_NAME_MAX + 2] = "g0";
		uint8_t k = fz_u8(f);
		if (k & 0x80) {
			size_t n = 1 + (k & 0x1f);
			fz_bytes(f, name, n);
			name[n] = '\0';
		} else {
			name[1] = (char)('0' + (k & 1));
		}
		struct shmring_consumer *c = NULL;
		int rc = shmring_group_open(s->r, name, fz_u8(f) & 1, &c);
		if (s->policy == SHMRING_POLICY_OVERWRITE && name[0])
			FZ_CHECK(rc != 0);
		if (rc == 0) {
			s->lost[s->nc] = 0;
			s->c[s->nc++] = c;
		}
		break;
	}
	case 3: /* close a consumer */
		if (s->nc)
			drop_consumer(s, fz_u8(f) % s->nc);
		break;
	case 4: { /* producer open (take over) or a second open (-EBUSY) */
		struct shmring_producer *p = NULL;
		int rc = shmring_producer_open(s->r, &p);
		if (s->p && !s->p_shut)
			FZ_CHECK(rc == -EBUSY);
		if (rc == 0) {
			if (s->p)
				shmring_producer_close(p);
			else
				s->p = p, s->p_shut = 0;
		}
		break;
	}
	case 5: /* producer close */
		if (s->p) {
			FZ_CHECK(shmring_producer_close(s->p) == 0);
			s->p = NULL;
		}
		break;
	default:
		shmring_set_spin(s->r, (fz_u8(f) & 1) ? 0 : 2000);
		break;
	}
}
#define N_CALLS (N_CONSUMER_CALLS + N_PRODUCER_CALLS + 7)

static int setup(struct fz *f, struct st *s)
{
	uint8_t b0 = fz_u8(f), b1 = fz_u8(f);
	struct shmring_opts o = { .size = sizeof(o) };
	o.policy = (b0 & 1) ? SHMRING_POLICY_OVERWRITE : SHMRING_POLICY_BLOCK;
	o.capacity = (b0 & 2) ? 8192 : 4096;
	o.max_consumers = 3 + ((b0 >> 2) & 7);
	unsigned flags = (b0 & 0x20) ? SHMRING_START_OLDEST : SHMRING_START_NEWEST;
	s->allow_odd = !!(b0 & 0x40);
	if (shmring_create_anon("fuzz", &o, &s->r) != 0)
		return -1;
	if (b0 & 0x80)
		shmring_set_spin(s->r, 0);
	struct shmring_info in;
	FZ_CHECK(shmring_info(s->r, &in) == 0);
	s->policy = in.policy;
	s->cap = in.capacity;
	s->nslots = in.max_consumers;
	s->max_message = in.max_message;

	struct stat st;
	int fd = shmring_fd(s->r);
	FZ_CHECK(fd >= 0 && fstat(fd, &st) == 0);
	s->mlen = (size_t)st.st_size;
	s->m = mmap(NULL, s->mlen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	FZ_CHECK(s->m != MAP_FAILED);
	const struct shm_header *h = (const struct shm_header *)s->m;
	s->prod_off = h->prod_off;
	s->ctab_off = h->ctab_off;
	s->data_off = h->data_off;
	FZ_CHECK(s->data_off + s->cap == s->mlen);

	FZ_CHECK(shmring_producer_open(s->r, &s->p) == 0);
	struct shmring_consumer *c;
	if (shmring_consumer_open(s->r, flags, &c) == 0)
		s->c[s->nc++] = c;
	for (unsigned i = 0; i < ((b1 >> 6) & 3u); i++)
		if (shmring_consumer_open(s->r, flags ^ (i & 1), &c) == 0)
			s->c[s->nc++] = c;
	if (s->policy == SHMRING_POLICY_BLOCK)
		for (unsigned i = 0; i < ((b1 >> 4) & 3u); i++)
			if (shmring_group_open(s->r, i == 2 ? "g1" : "g0", flags, &c) == 0)
				s->c[s->nc++] = c;
	uint8_t msg[256];
	for (unsigned i = 0; i < (b1 & 15u); i++) {
		size_t len = fz_u8(f);
		memset(msg, (int)i, len);
		shmring_send(s->p, msg, len);
	}
	return 0;
}

static void teardown(struct st *s)
{
	while (s->nc)
		drop_consumer(s, s->nc - 1);
	if (s->p)
		FZ_CHECK(shmring_producer_close(s->p) == 0);
	if (s->m)
		munmap(s->m, s->mlen);
	if (s->r)
		FZ_CHECK(shmring_close(s->r) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	struct st s;
	memset(&s, 0, sizeof(s));
	if (setup(&f, &s) != 0) {
		teardown(&s);
		return 0;
	}
	unsigned calls = 0, max_calls = s.allow_odd ? MAX_CALLS_ODD : MAX_CALLS;
	for (unsigned ops = 0; ops < MAX_OPS && fz_more(&f) && calls < max_calls; ops++) {
		uint8_t op = fz_u8(&f);
		unsigned what = op % (N_CORRUPT + N_CALLS);
		if (what < N_CORRUPT) {
			corrupt(&f, &s, what);
		} else {
			do_call(&f, &s, what - N_CORRUPT);
			calls++;
		}
	}
	teardown(&s);
	return 0;
}
