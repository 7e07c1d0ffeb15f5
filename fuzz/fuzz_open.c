/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the input is (or patches) the content of a ring object,
 * which is opened with shmring_open_fd() and, if it opens, used: info,
 * consumer and group opens, non-blocking reads, optionally a producer.
 *
 * Input layout:
 *   byte 0  bits 0-1  0: raw mode, else template mode
 *           bit 2     leave the memfd unsealed (the library must refuse it)
 *           bit 3     raw: grow the object to the header's total_size (so
 *                     a short input can describe a whole ring);
 *                     template: resize the object by a page count (byte 2)
 *           bit 4     an O_TMPFILE file in /dev/shm instead of a memfd
 *           bit 5     open through a read-only descriptor
 *           bit 6     also open a producer and send a few messages
 *           bit 7     allow an odd producer `ver` (see fuzz_consume.c: an
 *                     OVERWRITE snapshot then spins before it gives up;
 *                     it is kept even otherwise)
 *   byte 1  template: bit 0 policy OVERWRITE, bits 1-2 capacity (4 KiB,
 *           8 KiB, 64 KiB), bits 3-4 slots (1, 2, 4, 16), bits 5-6 the
 *           state the template ring is left in (see make_template());
 *           bit 7 consumers start OLDEST (raw mode: only bit 7 is used)
 *   raw:      the rest is the object's content.
 *   template: byte 2 (resize), then patches to the template's bytes, each
 *           a selector byte then an offset and bytes (see patch()).
 *
 * Template mode starts from the bytes of a real ring, made with
 * shmring_create_anon() and left with published messages, attached cursors
 * and groups, so that the patches reach the consumer paths with a valid
 * header and corrupt producer, cursor or data state.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"

#define PAGE 4096u
#define RAW_MAX_SIZE (16u << 20)
#define MAX_PATCHES 64

/* ---- Templates: bytes of real rings, made once per configuration ------- */

struct tmpl {
	uint8_t *bytes;
	size_t size;
	uint64_t cap, prod_off, ctab_off, data_off;
	uint32_t nslots;
};

static struct tmpl templates[128]; /* by key (byte 1); reachable: not leaks */

/*
 * Scenarios:
 *   0  fresh ring, nothing attached
 *   1  a producer, a broadcast consumer that read part of what was sent
 *   2  BLOCK: also a group of two members, one holding a peek;
 *      OVERWRITE: sent several laps, so head and head_seq moved
 *   3  as 1, then the producer shut down (closed = 1), the ring wrapped
 */
static int make_template(unsigned key, struct tmpl *t)
{
	static const uint64_t caps[4] = { 4096, 8192, 65536, 4096 };
	static const uint32_t slots[4] = { 1, 2, 4, 16 };
	struct shmring_opts o = { .size = sizeof(o) };
	o.policy = (key & 1) ? SHMRING_POLICY_OVERWRITE : SHMRING_POLICY_BLOCK;
	o.capacity = caps[(key >> 1) & 3];
	o.max_consumers = slots[(key >> 3) & 3];
	unsigned scen = (key >> 5) & 3;
	struct shmring *r = NULL;
	struct shmring_producer *p = NULL;
	struct shmring_consumer *c[3] = { NULL, NULL, NULL };
	uint8_t msg[512];

	if (shmring_create_anon("fuzz-template", &o, &r) != 0)
		return -1;
	if (scen) {
		FZ_CHECK(shmring_producer_open(r, &p) == 0);
		shmring_consumer_open(r, 0, &c[0]);
		unsigned n = scen == 1 ? 5 : (unsigned)(o.capacity / 64) * 3;
		for (unsigned i = 0; i < n; i++) {
			size_t len = (i * 37u) % sizeof(msg);
			memset(msg, (int)i, len);
			if (shmring_send(p, msg, len) == -EAGAIN && c[0]) {
				uint8_t buf[512];
				size_t l;
				while (shmring_recv(c[0], buf, sizeof(buf), &l) == 0)
					;
				shmring_send(p, msg, len);
			}
		}
		if (c[0]) { /* read some */
			uint8_t buf[512];
			size_t l;
			for (int i = 0; i < 2; i++)
				shmring_recv(c[0], buf, sizeof(buf), &l);
			const void *d;
			shmring_peek(c[0], &d, &l);
		}
		if (scen == 2 && o.policy == SHMRING_POLICY_BLOCK) {
			shmring_group_open(r, "g0", SHMRING_START_OLDEST, &c[1]);
			shmring_group_open(r, "g0", 0, &c[2]);
			for (int i = 0; i < 3; i++)
				shmring_send(p, msg, 40);
			if (c[1]) {
				const void *d;
				size_t l;
				shmring_peek(c[1], &d, &l);
			}
		}
		if (scen == 3)
			shmring_producer_shutdown(p);
	}
	int fd = shmring_fd(r);
	struct stat st;
	FZ_CHECK(fstat(fd, &st) == 0);
	t->size = (size_t)st.st_size;
	t->bytes = malloc(t->size);
	FZ_CHECK(t->bytes && pread(fd, t->bytes, t->size, 0) == (ssize_t)t->size);
	const struct shm_header *h = (const struct shm_header *)t->bytes;
	t->cap = h->capacity;
	t->prod_off = h->prod_off;
	t->ctab_off = h->ctab_off;
	t->data_off = h->data_off;
	t->nslots = h->nslots;
	for (int i = 0; i < 3; i++)
		if (c[i])
			shmring_consumer_close(c[i]);
	if (p)
		shmring_producer_close(p);
	FZ_CHECK(shmring_close(r) == 0);
	return 0;
}

/* ---- Patches ----------------------------------------------------------- */

static void patch_bytes(struct fz *f, uint8_t *buf, size_t size, uint64_t off)
{
	uint8_t tmp[16];
	if (off >= size)
		return;
	size_t n = 1 + fz_u8(f) % sizeof(tmp);
	if (n > size - off)
		n = size - off;
	fz_bytes(f, tmp, n);
	memcpy(buf + off, tmp, n);
}

/* One patch: raw bytes in a region, or a typed write of a position. */
static void patch(struct fz *f, const struct tmpl *t, uint8_t *buf, size_t size)
{
	uint8_t sel = fz_u8(f);
	uint64_t slots_len = LINE + (uint64_t)t->nslots * SLOT_SIZE;
	switch (sel % 7) {
	case 0: /* header fields */
		patch_bytes(f, buf, size, fz_u8(f) % 96);
		break;
	case 1: /* producer control */
		patch_bytes(f, buf, size, t->prod_off + fz_u16(f) % sizeof(struct shm_prod));
		break;
	case 2: /* consumers' shared line and cursor slots */
		patch_bytes(f, buf, size, t->ctab_off + fz_u16(f) % slots_len);
		break;
	case 3: /* data */
		patch_bytes(f, buf, size, t->data_off + fz_u32(f) % t->cap);
		break;
	case 4: /* anywhere */
		patch_bytes(f, buf, size, fz_u32(f) % size);
		break;
	case 5: { /* a producer position, typed */
		static const size_t offs[] = { offsetof(struct shm_prod, tail),
					       offsetof(struct shm_prod, tail_seq),
					       offsetof(struct shm_prod, head),
					       offsetof(struct shm_prod, head_seq),
					       offsetof(struct shm_prod, reclaim) };
		uint8_t *p = buf + t->prod_off + offs[fz_u8(f) % 5];
		wr64(p, fz_pos(f, rd64(p), t->cap));
		break;
	}
	default: { /* a slot field, typed */
		uint8_t *s = buf + t->ctab_off + LINE + (uint64_t)(fz_u8(f) % t->nslots) * SLOT_SIZE;
		uint8_t k = fz_u8(f);
		switch (k % 6) {
		case 0:
			wr64(s + offsetof(struct shm_slot, pos),
			     fz_pos(f, rd64(s + offsetof(struct shm_slot, pos)), t->cap));
			break;
		case 1:
			wr32(s + offsetof(struct shm_slot, state), fz_u8(f) % 4);
			break;
		case 2:
			wr32(s + offsetof(struct shm_slot, kind), fz_u8(f) % 5);
			break;
		case 3:
			wr64(s + offsetof(struct shm_slot, members),
			     fz_pos(f, rd64(s + offsetof(struct shm_slot, members)), 1ull << 32));
			break;
		case 4:
			wr32(s + offsetof(struct shm_slot, group), fz_val32(f, 0));
			break;
		default:
			memcpy(s + offsetof(struct shm_slot, name), "g0", 3);
			break;
		}
		break;
	}
	}
}

/* ---- The object -------------------------------------------------------- */

static int make_fd(uint8_t flags)
{
	if (flags & 0x10)
		return open("/dev/shm", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	return memfd_create("fuzz-open", MFD_CLOEXEC | MFD_ALLOW_SEALING);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* ---- Using an opened ring ---------------------------------------------- */

static void read_some(struct shmring *r, struct shmring_consumer *c, uint64_t *lost_prev)
{
	uint8_t buf[512];
	size_t len;
	const void *d;
	struct shmring_msg msgs[8];
	int rc;

	rc = shmring_recv(c, buf, sizeof(buf), &len);
	if (rc == 0)
		FZ_CHECK(len <= sizeof(buf));
	if (shmring_peek(c, &d, &len) == 0)
		fz_touch_ring(r, d, len);
	rc = shmring_peek_batch(c, msgs, 8);
	FZ_CHECK(rc != 0 && rc <= 8);
	for (int k = 0; k < rc; k++)
		fz_touch_ring(r, msgs[k].data, msgs[k].len);
	shmring_release(c);
	rc = shmring_recv_batch(c, buf, sizeof(buf), msgs, 8);
	FZ_CHECK(rc != 0 && rc <= 8);
	for (int k = 0; k < rc; k++) {
		size_t off = (size_t)((const uint8_t *)msgs[k].data - buf);
		FZ_CHECK(off <= sizeof(buf) && msgs[k].len <= sizeof(buf) - off);
	}
	shmring_recv(c, NULL, 0, &len); /* no buffer: only an empty message fits */
	if (shmring_peek_wait(c, &d, &len, &fz_past) == 0)
		fz_touch_ring(r, d, len);
	shmring_release(c);
	uint64_t lost;
	FZ_CHECK(shmring_lost(c, &lost) == 0 && lost >= *lost_prev);
	*lost_prev = lost;
}

static void use_ring(struct shmring *r, uint8_t flags, unsigned cflags)
{
	struct shmring_info in;
	FZ_CHECK(shmring_info(r, &in) == 0);
	FZ_CHECK(in.capacity >= PAGE && (in.capacity & (in.capacity - 1)) == 0);
	FZ_CHECK(in.max_message == in.capacity / 2 - SHMRING_RECORD_HDR);
	FZ_CHECK(in.max_consumers >= 1 && in.max_consumers <= SHMRING_MAX_CONSUMERS);
	FZ_CHECK(in.consumers + in.groups <= in.max_consumers);
	FZ_CHECK(shmring_fd(r) >= 0);
	shmring_set_spin(r, 0);

	struct shmring_consumer *c[3] = { NULL, NULL, NULL };
	struct shmring_producer *p = NULL;
	uint64_t lost[3] = { 0, 0, 0 };
	shmring_consumer_open(r, cflags, &c[0]);
	shmring_group_open(r, "g0", cflags, &c[1]);
	shmring_group_open(r, "g0", 0, &c[2]);
	if (flags & 0x40) {
		int rc = shmring_producer_open(r, &p);
		if (rc == 0) {
			uint8_t msg[64] = { 1, 2, 3 };
			void *d;
			shmring_send(p, msg, 3);
			shmring_send(p, msg, sizeof(msg));
			if (shmring_reserve(p, 16, &d) == 0) {
				memset(d, 7, 16);
				shmring_commit(p);
			}
			if (shmring_reserve(p, 8, &d) == 0)
				shmring_abort(p);
		}
	}
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 3; i++)
			if (c[i])
				read_some(r, c[i], &lost[i]);
	FZ_CHECK(shmring_info(r, &in) == 0);
	FZ_CHECK(in.consumers + in.groups <= in.max_consumers);
	for (int i = 0; i < 3; i++)
		if (c[i])
			FZ_CHECK(shmring_consumer_close(c[i]) == 0);
	if (p)
		FZ_CHECK(shmring_producer_close(p) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	uint8_t flags = fz_u8(&f), b1 = fz_u8(&f);
	unsigned cflags = (b1 & 0x80) ? SHMRING_START_OLDEST : SHMRING_START_NEWEST;
	uint8_t *buf = NULL;
	size_t len = 0, fsize = 0;

	if ((flags & 3) == 0) {
		/* Raw: the content is the rest of the input. */
		len = fsize = f.n;
		buf = malloc(len ? len : 1);
		fz_bytes(&f, buf, len);
		if ((flags & 8) && len >= 24) {
			uint64_t want = rd64(buf + 16);
			if (want > len && want <= RAW_MAX_SIZE)
				fsize = (size_t)want;
		}
	} else {
		unsigned key = b1 & 0x7f;
		struct tmpl *t = &templates[key];
		if (!t->bytes && make_template(key, t) != 0)
			return 0;
		uint8_t resize = fz_u8(&f);
		len = fsize = t->size;
		buf = malloc(len);
		memcpy(buf, t->bytes, len);
		for (int i = 0; i < MAX_PATCHES && fz_more(&f); i++)
			patch(&f, t, buf, len);
		if (flags & 8)
			fsize = (size_t)((int64_t)fsize + (int64_t)(int8_t)resize * (int64_t)PAGE);
		if (fsize > RAW_MAX_SIZE)
			fsize = 0;
		if (fsize < len)
			len = fsize;
	}
	/* Keep an OVERWRITE producer's ver even unless asked (see above). */
	int allow_odd = !!(flags & 0x80);
	if (!allow_odd && len >= PAGE + 36) {
		uint32_t v = rd32(buf + PAGE + offsetof(struct shm_prod, ver));
		wr32(buf + PAGE + offsetof(struct shm_prod, ver), v & ~1u);
	}

	int fd = make_fd(flags);
	if (fd < 0) {
		free(buf);
		return 0;
	}
	if (write_all(fd, buf, len) == 0 && (fsize == len || ftruncate(fd, (off_t)fsize) == 0)) {
		if (!(flags & 0x10) && !(flags & 4))
			fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
		int ofd = fd;
		if (flags & 0x20) {
			char path[64];
			snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
			ofd = open(path, O_RDONLY | O_CLOEXEC);
		}
		struct shmring *r = NULL;
		int rc = ofd >= 0 ? shmring_open_fd(ofd, &r) : -EBADF;
		fz_strerror(rc);
		if (getenv("FUZZ_DEBUG"))
			fprintf(stderr, "fuzz_open: mode %s, %zu bytes, open: %s\n",
				(flags & 3) ? "template" : "raw", fsize, shmring_strerror(rc));
		if (rc == 0) {
			FZ_CHECK(r != NULL);
			if (!(flags & 0x10) && (flags & 4))
				FZ_CHECK(!"an unsealed memfd was accepted");
			use_ring(r, flags, cflags);
			FZ_CHECK(shmring_close(r) == 0);
		}
		if (ofd != fd && ofd >= 0)
			close(ofd);
	}
	close(fd);
	free(buf);
	return 0;
}
