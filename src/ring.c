/* SPDX-License-Identifier: MIT */
/*
 * Ring lifecycle: create (named or memfd), open (by name or fd), validate,
 * map (data area twice), info, close, unlink.  Everything here is slow path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* See copy_payload().  The empty asm makes the pointer opaque at each step,
 * so that the compiler cannot turn the loop back into a memcpy() call. */
void copy_blocks(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;
	for (; n >= 64; n -= 64, d += 64, s += 64) {
		__asm__("" : "+r"(d));
		memcpy(d, s, 64);
	}
	memcpy(d, s, n);
}

/* See copy_bounced() in internal.h.  Both steps move at most BOUNCE_PIECE
 * bytes from an offset in the buffer equal to dst's in its page. */
void copy_bounced(uint8_t *bounce, void *dst, const void *src, size_t n)
{
	uint8_t *d = dst, *t = bounce + ((uintptr_t)dst & 4095);
	const uint8_t *s = src;
	while (n) {
		size_t k = n < BOUNCE_PIECE ? n : BOUNCE_PIECE;
		copy_blocks(t, s, k);
		memcpy(d, t, k);
		d += k, s += k, n -= k;
	}
}

/*
 * Enters every page of the data area, both views, in this process's page
 * tables (writable for a producer), so that an endpoint's first lap through
 * the ring takes no page faults: one per page written and one per 16 pages
 * read, each microseconds: on the project's VMs, 0.3 s runs at 65536 B
 * (a 16 MiB ring) went twice as fast with this (perf/RESULTS.md, change
 * 18).  The storage exists since the creation (posix_fallocate()), so this
 * only fills page tables.  Page tables are not inherited by fork(): each
 * open does it, and it is quick once they are filled.  Before Linux 5.14
 * (no MADV_POPULATE_*) the pages come on demand, as they do if it fails.
 */
void populate_data(const struct shmring *r, int write)
{
#ifdef MADV_POPULATE_READ
	int saved = errno;
	(void)madvise(r->data, 2 * r->g.capacity, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
	errno = saved;
#else
	(void)r;
	(void)write;
#endif
}

static uint32_t page_size(void)
{
	return (uint32_t)sysconf(_SC_PAGESIZE);
}

/* "/name": one leading slash, no other, 2..NAME_MAX bytes in all, and not
 * "/." or "/..". */
static int check_name(const char *name)
{
	if (!name || name[0] != '/' || name[1] == '\0')
		return -EINVAL;
	size_t n = strnlen(name, NAME_MAX + 1);
	if (n > NAME_MAX)
		return -ENAMETOOLONG;
	if (strchr(name + 1, '/'))
		return -EINVAL;
	/* "." and ".." would name /dev/shm itself or its parent. */
	if (!strcmp(name, "/.") || !strcmp(name, "/.."))
		return -EINVAL;
	return 0;
}

struct opts_in {
	uint64_t capacity;
	uint32_t nslots, mode, policy, flags;
};

/* Reads the caller's options, tolerating older (smaller) and newer (larger,
 * zero-filled) versions of the struct. */
static int read_opts(const struct shmring_opts *o, struct opts_in *in)
{
	struct shmring_opts z = {0};

	if (o) {
		if (o->size < offsetof(struct shmring_opts, capacity) + sizeof(o->capacity))
			return -EINVAL;
		size_t n = o->size < sizeof(z) ? o->size : sizeof(z);
		memcpy(&z, o, n);
		for (size_t i = sizeof(z); i < o->size; i++)
			if (((const unsigned char *)o)[i])
				return -EINVAL;
	}
	if ((z.flags & ~SHMRING_INLINE_SMALL) ||
	    (z.policy != SHMRING_POLICY_BLOCK && z.policy != SHMRING_POLICY_OVERWRITE))
		return -EINVAL;
	if ((z.flags & SHMRING_INLINE_SMALL) && z.policy != SHMRING_POLICY_BLOCK)
		return -EINVAL; /* line 0 of an OVERWRITE ring has no room (layout.h) */
	if (z.mode & ~07777u)
		return -EINVAL;
	uint64_t cap = z.capacity ? z.capacity : SHMRING_DEFAULT_CAPACITY;
	if (cap > SHMRING_MAX_CAPACITY)
		return -EINVAL;
	if (cap < page_size())
		cap = page_size();
	uint64_t p2 = 1;
	while (p2 < cap)
		p2 <<= 1;
	in->capacity = p2;
	in->nslots = z.max_consumers ? z.max_consumers : SHMRING_DEFAULT_CONSUMERS;
	if (in->nslots > SHMRING_MAX_CONSUMERS)
		return -EINVAL;
	in->mode = z.mode ? z.mode : 0600;
	in->policy = z.policy;
	in->flags = z.flags;
	return 0;
}

/*
 * Checks a private copy of a header against the object size and every
 * invariant.  Recomputes the layout from (capacity, nslots, page) and
 * requires every stored offset to match, so no stored value is trusted alone.
 */
static int validate(const struct shm_header *h, uint64_t file_size, struct shm_geom *g)
{
	uint64_t magic = load_relaxed(&((struct shm_header *)h)->magic);

	if (magic == 0)
		return -EAGAIN;
	if (magic != SHMRING_MAGIC)
		return -EPROTO;
	if (h->version != SHMRING_LAYOUT_VERSION)
		return -EPROTONOSUPPORT;
	if (h->header_size != sizeof(struct shm_header))
		return -EPROTO;
	if (h->page_size != page_size())
		return -ENOTSUP;
	uint64_t cap = h->capacity;
	if (cap < h->page_size || cap > SHMRING_MAX_CAPACITY || (cap & (cap - 1)))
		return -EPROTO;
	if (h->nslots == 0 || h->nslots > SHMRING_MAX_CONSUMERS || h->slot_size != SLOT_SIZE)
		return -EPROTO;
	if ((h->policy != SHMRING_POLICY_BLOCK && h->policy != SHMRING_POLICY_OVERWRITE) ||
	    (h->flags & ~SHMRING_INLINE_SMALL) ||
	    ((h->flags & SHMRING_INLINE_SMALL) && h->policy != SHMRING_POLICY_BLOCK))
		return -EPROTO;
	shm_geometry(g, cap, h->nslots, h->page_size);
	if (h->prod_off != g->prod_off || h->ctab_off != g->ctab_off ||
	    h->data_off != g->data_off || h->total_size != g->total_size ||
	    h->max_message != g->max_message)
		return -EPROTO;
	if (file_size != g->total_size)
		return -EPROTO;
	return 0;
}

/*
 * Maps the object: header and producer page read-only, consumer area
 * read-write, data area read-only twice back to back.  The producer makes
 * its pages writable in shmring_producer_open().
 */
static int map_ring(struct shmring *r)
{
	const struct shm_geom *g = &r->g;
	size_t len = g->data_off + 2 * g->capacity;
	uint8_t *base = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			     -1, 0);
	if (base == MAP_FAILED)
		return -ENOMEM;
	int cs_prot = PROT_READ | (r->writable ? PROT_WRITE : 0);
	struct {
		uint64_t at, len, off;
		int prot;
	} parts[] = {
		{ 0, g->ctab_off, 0, PROT_READ },
		{ g->ctab_off, g->data_off - g->ctab_off, g->ctab_off, cs_prot },
		{ g->data_off, g->capacity, g->data_off, PROT_READ },
		{ g->data_off + g->capacity, g->capacity, g->data_off, PROT_READ },
	};
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		void *p = mmap(base + parts[i].at, parts[i].len, parts[i].prot,
			       MAP_SHARED | MAP_FIXED, r->fd, (off_t)parts[i].off);
		if (p == MAP_FAILED) {
			int e = errno;
			munmap(base, len);
			return e == EACCES || e == EBADF ? -e : -ENOMEM;
		}
	}
	r->base = base;
	r->map_len = len;
	r->prod = (struct shm_prod *)(base + g->prod_off);
	r->cs = (struct shm_cshared *)(base + g->ctab_off);
	r->slots = (struct shm_slot *)(base + g->ctab_off + LINE);
	r->data = base + g->data_off;
	return 0;
}

/* A memfd ring must be sealed against shrinking and growing, or a peer could
 * truncate it under our mapping (SIGBUS). */
static int check_seals(int fd)
{
	char link[64], target[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return 0; /* no /proc: cannot tell a memfd; nothing to check */
	target[n] = '\0';
	if (strncmp(target, "/memfd:", 7) != 0)
		return 0;
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
		return -EPROTO;
	return 0;
}

/* Takes ownership of fd (closes it on failure). */
static int attach_fd(int fd, struct shmring **out)
{
	struct stat st;
	int rc;
	struct shmring *r = NULL;

	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EPROTO;
		goto fail;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_PATH)) { /* an O_PATH fd cannot be mapped */
		rc = -EBADF;
		goto fail;
	}
	rc = check_seals(fd);
	if (rc)
		goto fail;
	if ((uint64_t)st.st_size < sizeof(struct shm_header)) {
		rc = st.st_size == 0 ? -EAGAIN : -EPROTO;
		goto fail;
	}

	/* Copy the header into private memory, then validate the copy only.
	 * The acquire load of the magic pairs with the creator's release store
	 * in init_header(): once the magic is seen, the other fields are too. */
	void *hp = mmap(NULL, sizeof(struct shm_header), PROT_READ, MAP_SHARED, fd, 0);
	if (hp == MAP_FAILED) {
		rc = errno == EACCES || errno == EBADF ? -errno : -ENOMEM;
		goto fail;
	}
	struct shm_header h;
	uint64_t magic = load_acquire(&((struct shm_header *)hp)->magic);
	memcpy(&h, hp, sizeof(h));
	munmap(hp, sizeof(struct shm_header));
	store_relaxed(&h.magic, magic);

	r = calloc(1, sizeof(*r));
	if (!r) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = validate(&h, (uint64_t)st.st_size, &r->g);
	if (rc)
		goto fail;
	r->fd = fd;
	r->writable = fl >= 0 && (fl & O_ACCMODE) == O_RDWR;
	r->policy = h.policy;
	r->inline_small = (h.flags & SHMRING_INLINE_SMALL) != 0;
	atomic_init(&r->spin_ns, DEFAULT_SPIN_NS);
	atomic_init(&r->eintr, 0);
	r->armed = calloc((r->g.nslots + 63) / 64, sizeof(*r->armed));
	if (!r->armed) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = map_ring(r);
	if (rc)
		goto fail;
	/* Liveness needs a private open file description per endpoint. */
	int t = live_open(r);
	r->live = t >= 0;
	live_close(t);
	*out = r;
	return 0;
fail:
	if (r)
		free((void *)r->armed);
	free(r);
	close(fd);
	return rc;
}

/* Fills a fresh, zeroed object's header and control state; the magic last. */
static int init_header(int fd, const struct shm_geom *g, uint32_t policy, uint32_t flags)
{
	uint8_t *m = mmap(NULL, g->ctab_off, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return -ENOMEM;
	struct shm_header *h = (struct shm_header *)m;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	h->version = SHMRING_LAYOUT_VERSION;
	h->header_size = sizeof(*h);
	h->total_size = g->total_size;
	h->capacity = g->capacity;
	h->prod_off = g->prod_off;
	h->ctab_off = g->ctab_off;
	h->data_off = g->data_off;
	h->page_size = g->page_size;
	h->nslots = g->nslots;
	h->slot_size = SLOT_SIZE;
	h->policy = policy;
	h->max_message = g->max_message;
	h->flags = flags;
	h->create_time = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
	/* Pairs with the opener's load_acquire(magic) in attach_fd(). */
	store_release(&h->magic, SHMRING_MAGIC);
	munmap(m, g->ctab_off);
	return 0;
}

static int create_common(int fd, const struct opts_in *in, struct shmring **out)
{
	struct shm_geom g;
	shm_geometry(&g, in->capacity, in->nslots, page_size());
	/* Allocate every page now: a full /dev/shm fails here, not with SIGBUS
	 * on first touch. */
	int e = posix_fallocate(fd, 0, (off_t)g.total_size);
	if (e)
		return e == ENOSPC || e == EFBIG ? -ENOSPC : -e;
	int rc = init_header(fd, &g, in->policy, in->flags);
	if (rc)
		return rc;
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dfd < 0)
		return -errno;
	return attach_fd(dfd, out);
}

SHMRING_API int shmring_create(const char *name, const struct shmring_opts *opts,
			       struct shmring **ring)
{
	struct opts_in in;
	int rc = check_name(name);
	if (rc)
		return rc;
	if (!ring)
		return -EINVAL;
	rc = read_opts(opts, &in);
	if (rc)
		return rc;
	int saved = errno;
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		errno = saved;
		return rc;
	}
	/* The mode exactly as asked, whatever the umask. */
	if (fchmod(fd, in.mode) < 0)
		rc = -errno;
	else
		rc = create_common(fd, &in, ring);
	if (rc)
		shm_unlink(name);
	close(fd);
	errno = saved;
	return rc;
}

SHMRING_API int shmring_create_anon(const char *debug_name, const struct shmring_opts *opts,
				    struct shmring **ring)
{
	struct opts_in in;
	if (!ring)
		return -EINVAL;
	int rc = read_opts(opts, &in);
	if (rc)
		return rc;
	int saved = errno;
	int fd = memfd_create(debug_name ? debug_name : "shmring",
			      MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		rc = -errno;
		errno = saved;
		return rc;
	}
	struct shm_geom g;
	shm_geometry(&g, in.capacity, in.nslots, page_size());
	int e = posix_fallocate(fd, 0, (off_t)g.total_size);
	if (e)
		rc = e == ENOSPC || e == EFBIG ? -ENOSPC : -e;
	else if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		rc = -errno;
	else
		rc = init_header(fd, &g, in.policy, in.flags);
	if (rc)
		close(fd);
	else
		rc = attach_fd(fd, ring); /* closes fd itself on failure */
	errno = saved;
	return rc;
}

SHMRING_API int shmring_open(const char *name, struct shmring **ring)
{
	int rc = check_name(name);
	if (rc)
		return rc;
	if (!ring)
		return -EINVAL;
	int saved = errno;
	int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0)
		rc = -errno;
	else
		rc = attach_fd(fd, ring);
	errno = saved;
	return rc;
}

SHMRING_API int shmring_open_fd(int fd, struct shmring **ring)
{
	if (!ring)
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	int saved = errno;
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	int rc = dfd < 0 ? -errno : attach_fd(dfd, ring);
	errno = saved;
	return rc;
}

SHMRING_API int shmring_fd(const struct shmring *ring)
{
	return ring ? ring->fd : -EINVAL;
}

SHMRING_API int shmring_info(const struct shmring *r, struct shmring_info *info)
{
	if (!r || !info)
		return -EINVAL;
	memset(info, 0, sizeof(*info));
	info->capacity = r->g.capacity;
	info->max_message = r->g.max_message;
	info->max_consumers = r->g.nslots;
	info->policy = r->policy;
	info->tail = load_acquire(&r->prod->tail);
	info->producer = load_acquire(&r->prod->owner) != 0 && live_held(r, r->g.prod_off);
	info->closed = load_acquire(&r->prod->closed) != 0;
	uint32_t hw = load_acquire(&r->cs->hiwater);
	if (hw > r->g.nslots)
		hw = r->g.nslots;
	for (uint32_t i = 0; i < hw; i++) {
		if (load_acquire(&r->slots[i].state) != SLOT_ACTIVE)
			continue;
		if (load_relaxed(&r->slots[i].kind) == KIND_GROUP)
			info->groups++;
		else
			info->consumers++;
	}
	return 0;
}

SHMRING_API int shmring_set_spin(struct shmring *ring, uint64_t ns)
{
	if (!ring)
		return -EINVAL;
	atomic_store_explicit(&ring->spin_ns, ns, memory_order_relaxed);
	atomic_store_explicit(&ring->spin_fixed, 1, memory_order_relaxed);
	return 0;
}

/* How long a wait spins: the value set with shmring_set_spin(), or the
 * endpoint's adaptive budget (see SPIN_MAX_NS). */
uint64_t spin_ns(const struct shmring *r, const struct spin_state *adaptive)
{
	struct shmring *w = (struct shmring *)r;
	if (atomic_load_explicit(&w->spin_fixed, memory_order_relaxed))
		return atomic_load_explicit(&w->spin_ns, memory_order_relaxed);
	return adaptive->ns;
}

/* Endpoints are counted per process: after fork() the child may close the
 * ring handle even though it inherited the parent's endpoints.  The pid and
 * the count share one word, so threads may open and close concurrently. */
#define EP_PID(w) ((uint32_t)((w) >> 32))
#define EP_WORD(pid, n) (((uint64_t)(uint32_t)(pid) << 32) | (uint32_t)(n))

void endpoint_add(struct shmring *r, pid_t *opener)
{
	pid_t me = getpid();
	uint64_t w = atomic_load_explicit(&r->endpoints, memory_order_relaxed), nw;
	do
		nw = EP_PID(w) == (uint32_t)me ? w + 1 : EP_WORD(me, 1);
	while (!atomic_compare_exchange_weak_explicit(&r->endpoints, &w, nw, memory_order_relaxed,
						      memory_order_relaxed));
	*opener = me;
}

void endpoint_del(struct shmring *r, pid_t opener)
{
	uint64_t w = atomic_load_explicit(&r->endpoints, memory_order_relaxed);
	do
		if (EP_PID(w) != (uint32_t)opener || (uint32_t)w == 0)
			return;
	while (!atomic_compare_exchange_weak_explicit(&r->endpoints, &w, w - 1, memory_order_relaxed,
						      memory_order_relaxed));
}

SHMRING_API int shmring_close(struct shmring *r)
{
	if (!r)
		return -EINVAL;
	uint64_t w = atomic_load_explicit(&r->endpoints, memory_order_relaxed);
	if ((uint32_t)w && EP_PID(w) == (uint32_t)getpid())
		return -EBUSY;
	int saved = errno;
	munmap(r->base, r->map_len);
	close(r->fd);
	free((void *)r->armed);
	free(r);
	errno = saved;
	return 0;
}

SHMRING_API int shmring_unlink(const char *name)
{
	int rc = check_name(name);
	if (rc)
		return rc;
	int saved = errno;
	rc = shm_unlink(name) < 0 ? -errno : 0;
	errno = saved;
	return rc;
}

SHMRING_API int shmring_version(void)
{
	return SHMRING_VERSION;
}
