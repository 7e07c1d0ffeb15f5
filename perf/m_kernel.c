/* SPDX-License-Identifier: MIT */
/*
 * Floors and kernel IPC baselines:
 *   cacheline  bare ping-pong on two cache lines (the floor of a polling
 *              round trip); K_STALL: a bare spinning stream, one side
 *              storing a counter, the other timing the gaps between the
 *              values it sees (the floor of sleeps that no bounded spin
 *              avoids: the machine itself stops a side that long)
 *   futex      bare futex ping-pong and one-way futex wake (the floor of a
 *              sleeping consumer)
 *   memcpy     one core copying `size` bytes into a ring-sized buffer
 *   bare-copy  the floor of a copying ring between two processes: slots of
 *              `size` bytes (rounded up to a cache line) in shared memory,
 *              a tail and a head on lines of their own, each side keeping
 *              the other's last value; the producer copies in and publishes
 *              the tail once per batch, the consumer copies out and
 *              publishes the head once per batch.  No record headers, no
 *              crash handling, no waiting but spinning: what is left is two
 *              copies and the lines they move between the cores.  Run at
 *              4096 bytes and up only (line-sized slots waste lines on
 *              small messages, so there it would be no floor).
 *   bare-copy-ro  the same, but the consumer reads the slots through a
 *              read-only view (mprotect() of its mapping), as libshmring's
 *              consumers do: the floor under that guarantee.
 *   pipe, socketpair (SOCK_SEQPACKET), POSIX mq: blocking calls; a batch
 *              is one write() of B messages, one sendmmsg()/recvmmsg(), or
 *              B mq_send() calls (mq has no batch call)
 */
#include "perf.h"

#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- cacheline ---------------------------------------------------------- */

struct lines {
	_Atomic uint32_t ping __attribute__((aligned(128)));
	_Atomic uint32_t pong __attribute__((aligned(128)));
	_Atomic uint64_t stamp __attribute__((aligned(128)));
};

static int lines_setup(struct bench *b, void **priv)
{
	*priv = shm_zalloc(sizeof(struct lines));
	return *priv ? 0 : fail(b, "out of memory");
}

static void lines_teardown(struct bench *b, void *priv)
{
	shm_free(priv, sizeof(struct lines));
}

static void cl_depth(const struct params *p, char *buf, size_t len)
{
	snprintf(buf, len, "1 line each way");
}

static int stall_child(struct bench *b, struct lines *l, int role)
{
	if (role == 0) {
		uint64_t end = pf_now_ns() + b->p.n, v = 0;
		atomic_store(&l->ping, 1);
		while (!atomic_load_explicit(&l->pong, memory_order_acquire))
			relax();
		for (;;) {
			for (int i = 0; i < 256; i++) {
				atomic_store_explicit(&l->stamp, ++v, memory_order_release);
				relax();
			}
			if (pf_now_ns() >= end)
				break;
		}
		atomic_store_explicit(&l->stamp, UINT64_MAX, memory_order_release);
		return 0;
	}
	static const double th_ns[4] = {20e3, 200e3, 1e6, 4e6};
	uint64_t th[4];
	for (int i = 0; i < 4; i++)
		th[i] = (uint64_t)(th_ns[i] * g_ticks_per_ns);
	while (!atomic_load_explicit(&l->ping, memory_order_acquire))
		relax();
	atomic_store(&l->pong, 1);
	uint64_t last = ticks(), seen = 0;
	for (;;) {
		uint64_t v = atomic_load_explicit(&l->stamp, memory_order_acquire);
		if (v == seen) {
			relax();
			continue;
		}
		if (v == UINT64_MAX)
			break;
		uint64_t t = ticks();
		for (int i = 0; i < 4; i++)
			b->gaps[i] += t - last > th[i];
		last = t;
		seen = v;
	}
	return 0;
}

static int cl_child(struct bench *b, void *priv, int role)
{
	struct lines *l = priv;
	if (b->p.kind == K_STALL)
		return stall_child(b, l, role);
	uint64_t n = b->p.n, skip = warm_skip(n);
	if (role == 0) {
		tput_start(b);
		uint64_t t = ticks();
		for (uint32_t i = 1; i <= n; i++) {
			atomic_store_explicit(&l->ping, i, memory_order_release);
			while (atomic_load_explicit(&l->pong, memory_order_acquire) != i)
				poll_relax(&b->p);
			uint64_t t2 = ticks();
			if (i > skip)
				sample_add(t2 - t);
			t = t2;
		}
		tput_done(b, 0, n);
	} else {
		for (uint32_t i = 1; i <= n; i++) {
			while (atomic_load_explicit(&l->ping, memory_order_acquire) != i)
				poll_relax(&b->p);
			atomic_store_explicit(&l->pong, i, memory_order_release);
		}
	}
	return 0;
}

struct mech mech_cacheline = {
	.name = "cacheline",
	.caps = C_RTT_SPIN,
	.depth = cl_depth,
	.setup = lines_setup,
	.child = cl_child,
	.teardown = lines_teardown,
};

/* ---- futex -------------------------------------------------------------- */

static void fx_depth(const struct params *p, char *buf, size_t len)
{
	snprintf(buf, len, "1 word each way");
}

static void await(_Atomic uint32_t *w, uint32_t want)
{
	uint32_t v;
	while ((v = atomic_load(w)) != want)
		pf_futex_wait(w, v);
}

static int fx_child(struct bench *b, void *priv, int role)
{
	struct lines *l = priv;
	uint64_t n = b->p.n, skip = warm_skip(n);
	struct loopmark lm;
	if (b->p.kind == K_WAKE) {
		if (role == 1) {
			for (uint32_t i = 1; i <= n; i++) {
				await(&l->ping, i);
				uint64_t t = ticks();
				if (i > skip)
					sample_add(t - atomic_load(&l->stamp));
				atomic_store(&b->seen, i);
			}
			return 0;
		}
		loop_begin(b, &lm);
		tput_start(b);
		for (uint32_t i = 1; i <= n; i++) {
			while (atomic_load(&b->seen) < i - 1)
				relax();
			pf_spin_ns(50000);
			atomic_store(&l->stamp, ticks());
			atomic_store(&l->ping, i);
			pf_futex_wake(&l->ping, 1);
			b->commits++;
		}
		loop_end(b, &lm, 0);
		tput_done(b, 0, n);
		while (atomic_load(&b->seen) < n)
			relax();
		return 0;
	}
	loop_begin(b, &lm); /* its sleeps: voluntary context switches */
	if (role == 0) {
		tput_start(b);
		uint64_t t = ticks();
		for (uint32_t i = 1; i <= n; i++) {
			atomic_store(&l->ping, i);
			pf_futex_wake(&l->ping, 1);
			await(&l->pong, i);
			uint64_t t2 = ticks();
			if (i > skip)
				sample_add(t2 - t);
			t = t2;
		}
		tput_done(b, 0, n);
	} else {
		for (uint32_t i = 1; i <= n; i++) {
			await(&l->ping, i);
			atomic_store(&l->pong, i);
			pf_futex_wake(&l->pong, 1);
		}
	}
	loop_end(b, &lm, role);
	return 0;
}

struct mech mech_futex = {
	.name = "futex",
	.caps = C_RTT_SLEEP | C_WAKE,
	.depth = fx_depth,
	.setup = lines_setup,
	.child = fx_child,
	.teardown = lines_teardown,
};

/* ---- memcpy ------------------------------------------------------------- */

static void mc_depth(const struct params *p, char *buf, size_t len)
{
	snprintf(buf, len, "into %llu KiB", (unsigned long long)(p->ring_bytes >> 10));
}

static int mc_child(struct bench *b, void *priv, int role)
{
	size_t size = b->p.size, cap = b->p.ring_bytes, off = 0;
	char *src = source_buf(size), *dst = malloc(cap);
	if (!src || !dst)
		return fail(b, "out of memory");
	memset(dst, 1, cap);
	struct tputmark tm;
	tput_warm_init(b, &tm);
	tput_start(b);
	for (uint64_t i = 0; i < b->p.n; i++) {
		tput_step(b, &tm, i);
		memcpy(dst + off, src, size);
		__asm__ volatile("" : : "r"(dst) : "memory");
		off += size;
		if (off + size > cap)
			off = 0;
	}
	tput_done(b, 0, b->p.n);
	if (dst[size / 2] != src[size / 2])
		return fail(b, "memcpy lost its bytes");
	free(dst);
	return 0;
}

struct mech mech_memcpy = {
	.name = "memcpy",
	.caps = C_MEMCPY,
	.depth = mc_depth,
	.child = mc_child,
};

/* ---- bare-copy ---------------------------------------------------------- */

struct bare {
	_Atomic uint64_t tail __attribute__((aligned(128)));
	_Atomic uint64_t head __attribute__((aligned(128)));
	char slots[] __attribute__((aligned(4096)));
};

static size_t bare_slot(const struct params *p)
{
	return (p->size + 63) & ~(size_t)63;
}

/* As many slots as fit in libshmring's ring of the same case, at least 2. */
static uint64_t bare_depth(const struct params *p)
{
	uint64_t d = p->ring_bytes / bare_slot(p);
	return d < 2 ? 2 : d;
}

static void bare_depth_str(const struct params *p, char *buf, size_t len)
{
	snprintf(buf, len, "%llu slots of %zu B", (unsigned long long)bare_depth(p),
		 bare_slot(p));
}

static size_t bare_slots_len(const struct params *p)
{
	return (bare_depth(p) * bare_slot(p) + 4095) & ~(size_t)4095;
}

static size_t bare_len(const struct params *p)
{
	return sizeof(struct bare) + bare_slots_len(p);
}

static int bare_setup(struct bench *b, void **priv)
{
	*priv = shm_zalloc(bare_len(&b->p));
	return *priv ? 0 : fail(b, "out of shared memory");
}

static void bare_teardown(struct bench *b, void *priv)
{
	shm_free(priv, bare_len(&b->p));
}

static int bare_child(struct bench *b, void *priv, int role, int ro)
{
	struct bare *r = priv;
	const struct params *p = &b->p;
	size_t size = p->size, slot = bare_slot(p);
	uint64_t depth = bare_depth(p), n = p->n, batch = p->batch ? p->batch : 1;
	if (p->kind != K_TPUT || p->zc)
		return fail(b, "unsupported case");
	if (batch > depth)
		batch = depth;
	if (role == 0) {
		char *src = source_buf(size);
		if (!src)
			return fail(b, "out of memory");
		if (wait_attached(b, 1))
			return -1;
		uint64_t head = 0, i = 0, at = 0;
		tput_start(b);
		while (i < n) {
			uint64_t k = n - i < batch ? n - i : batch;
			while (i + k - head > depth) {
				head = atomic_load_explicit(&r->head, memory_order_acquire);
				if (i + k - head > depth)
					relax();
			}
			for (uint64_t j = 0; j < k; j++, i++) {
				char *d = r->slots + at * slot;
				memcpy(d, src, size);
				stamp(d, size, i);
				if (++at == depth)
					at = 0;
			}
			atomic_store_explicit(&r->tail, i, memory_order_release);
		}
		return 0;
	}
	char *buf = malloc(size);
	if (!buf)
		return fail(b, "out of memory");
	if (ro && mprotect(r->slots, bare_slots_len(p), PROT_READ)) {
		free(buf);
		return fail(b, "mprotect: %s", strerror(errno));
	}
	struct tputmark tm;
	tput_warm_init(b, &tm);
	attached(b);
	uint64_t tail = 0, i = 0, at = 0;
	while (i < n) {
		while (tail == i) {
			tail = atomic_load_explicit(&r->tail, memory_order_acquire);
			if (tail == i)
				relax();
		}
		uint64_t end = tail - i < batch ? tail : i + batch;
		for (; i < end; i++) {
			memcpy(buf, r->slots + at * slot, size);
			if (unstamp(buf, size) != i) {
				free(buf);
				return fail(b, "bare-copy: message %llu out of order",
					    (unsigned long long)i);
			}
			if (++at == depth)
				at = 0;
		}
		atomic_store_explicit(&r->head, i, memory_order_release);
		tput_step(b, &tm, i);
	}
	tput_done(b, role, n);
	free(buf);
	return 0;
}

static int bare_rw(struct bench *b, void *priv, int role)
{
	return bare_child(b, priv, role, 0);
}

static int bare_ro(struct bench *b, void *priv, int role)
{
	return bare_child(b, priv, role, 1);
}

struct mech mech_bare = {
	.name = "bare-copy",
	.caps = C_TPUT | C_BATCH | C_FLOOR,
	.depth = bare_depth_str,
	.setup = bare_setup,
	.child = bare_rw,
	.teardown = bare_teardown,
};

struct mech mech_bare_ro = {
	.name = "bare-copy-ro",
	.caps = C_TPUT | C_BATCH | C_FLOOR,
	.depth = bare_depth_str,
	.setup = bare_setup,
	.child = bare_ro,
	.teardown = bare_teardown,
};

/* ---- common to the fd-based baselines ----------------------------------- */

struct fds {
	int fd[4];    /* pipe: [0] read, [1] write of a->b, [2],[3] b->a;
	               * socketpair: [0],[1]; mq: [0],[1] */
	char name[2][64];
};

static int write_all(int fd, const void *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf = (const char *)buf + w;
		len -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
	while (len) {
		ssize_t r = read(fd, buf, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		buf = (char *)buf + r;
		len -= (size_t)r;
	}
	return 0;
}

/* The bodies shared by every byte-stream or message baseline: send or
 * receive `k` messages of p->size bytes laid out back to back in buf. */
typedef int (*xfer_fn)(struct bench *b, struct fds *f, int dir, void *buf, unsigned k);

static int generic_child(struct bench *b, struct fds *f, int role, xfer_fn tx, xfer_fn rx)
{
	const struct params *p = &b->p;
	size_t size = p->size;
	unsigned batch = p->kind == K_TPUT ? p->batch : 1;
	char *buf = source_buf(size * batch);
	uint64_t skip = warm_skip(p->n);
	if (!buf)
		return fail(b, "out of memory");
	if (p->kind == K_RTT) {
		uint64_t t = ticks();
		if (role == 0)
			tput_start(b);
		for (uint64_t i = 0; i < p->n; i++) {
			if (role == 0) {
				stamp(buf, size, i);
				if (tx(b, f, 0, buf, 1) || rx(b, f, 1, buf, 1))
					return -1;
				if (unstamp(buf, size) != i)
					return fail(b, "pong does not match ping");
				uint64_t t2 = ticks();
				if (i >= skip)
					sample_add(t2 - t);
				t = t2;
			} else if (rx(b, f, 0, buf, 1) || tx(b, f, 1, buf, 1)) {
				return -1;
			}
		}
		if (role == 0)
			tput_done(b, 0, p->n);
		return 0;
	}
	struct loopmark lm;
	if (role == 0) {
		if (wait_attached(b, 1))
			return -1;
		loop_begin(b, &lm);
		tput_start(b);
		for (uint64_t seq = 0; seq < p->n;) {
			unsigned k = p->n - seq < batch ? (unsigned)(p->n - seq) : batch;
			for (unsigned j = 0; j < k; j++)
				stamp(buf + j * size, size, seq++);
			if (tx(b, f, 0, buf, k))
				return -1;
		}
		loop_end(b, &lm, 0);
		return 0;
	}
	/* Counting starts before the producer may: enabling the counter
	 * can take milliseconds, which must not fall in the timed loop. */
	loop_begin(b, &lm);
	struct tputmark tm;
	tput_warm_init(b, &tm);
	attached(b);
	for (uint64_t seq = 0; seq < p->n;) {
		unsigned k = p->n - seq < batch ? (unsigned)(p->n - seq) : batch;
		if (rx(b, f, 0, buf, k))
			return -1;
		for (unsigned j = 0; j < k; j++)
			if (unstamp(buf + j * size, size) != seq++)
				return fail(b, "%s: message out of order", "consumer");
		tput_step(b, &tm, seq);
	}
	loop_end(b, &lm, role);
	tput_done(b, role, p->n);
	return 0;
}

static void fds_teardown(struct bench *b, void *priv)
{
	struct fds *f = priv;
	for (int i = 0; i < 4; i++)
		if (f->fd[i] >= 0)
			close(f->fd[i]);
	for (int i = 0; i < 2; i++)
		if (f->name[i][0])
			mq_unlink(f->name[i]);
	free(f);
}

static struct fds *fds_new(void)
{
	struct fds *f = calloc(1, sizeof(*f));
	if (f)
		for (int i = 0; i < 4; i++)
			f->fd[i] = -1;
	return f;
}

/* ---- pipe --------------------------------------------------------------- */

static void pipe_depth(const struct params *p, char *buf, size_t len)
{
	snprintf(buf, len, "%llu KiB pipe", (unsigned long long)(p->depth >> 10));
}

static int pipe_setup(struct bench *b, void **priv)
{
	struct fds *f = fds_new();
	if (!f || pipe(f->fd) || pipe(f->fd + 2))
		return fail(b, "pipe: %s", strerror(errno));
	/* As deep as allowed (pipe-max-size, 1 MiB by default). */
	for (int i = 1; i < 4; i += 2) {
		int sz = 1 << 20;
		while (fcntl(f->fd[i], F_SETPIPE_SZ, sz) < 0 && sz > 65536)
			sz >>= 1;
	}
	b->p.depth = (uint64_t)fcntl(f->fd[1], F_GETPIPE_SZ);
	*priv = f;
	return 0;
}

static int pipe_tx(struct bench *b, struct fds *f, int dir, void *buf, unsigned k)
{
	if (write_all(f->fd[dir ? 3 : 1], buf, k * b->p.size))
		return fail(b, "pipe write: %s", strerror(errno));
	return 0;
}

static int pipe_rx(struct bench *b, struct fds *f, int dir, void *buf, unsigned k)
{
	if (read_all(f->fd[dir ? 2 : 0], buf, k * b->p.size))
		return fail(b, "pipe read: %s", strerror(errno));
	return 0;
}

static int pipe_child(struct bench *b, void *priv, int role)
{
	return generic_child(b, priv, role, pipe_tx, pipe_rx);
}

struct mech mech_pipe = {
	.name = "pipe",
	.caps = C_TPUT | C_BATCH | C_RTT_SLEEP,
	.depth = pipe_depth,
	.setup = pipe_setup,
	.child = pipe_child,
	.teardown = fds_teardown,
};

/* ---- socketpair (SOCK_SEQPACKET) ---------------------------------------- */

static void sp_depth(const struct params *p, char *buf, size_t len)
{
	snprintf(buf, len, "SO_SNDBUF %llu KiB", (unsigned long long)(p->depth >> 10));
}

static int sp_setup(struct bench *b, void **priv)
{
	struct fds *f = fds_new();
	if (!f || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, f->fd))
		return fail(b, "socketpair: %s", strerror(errno));
	int v = 0;
	socklen_t l = sizeof(v);
	getsockopt(f->fd[0], SOL_SOCKET, SO_SNDBUF, &v, &l);
	b->p.depth = (uint64_t)v;
	*priv = f;
	return 0;
}

/* Role 0 uses fd[0], role 1 fd[1]; dir 0 flows 0->1. */
static int sp_tx(struct bench *b, struct fds *f, int dir, void *buf, unsigned k)
{
	struct mmsghdr m[64];
	struct iovec v[64];
	int fd = f->fd[dir];
	for (unsigned done = 0; done < k;) {
		unsigned n = k - done < 64 ? k - done : 64;
		for (unsigned i = 0; i < n; i++) {
			v[i] = (struct iovec){(char *)buf + (done + i) * b->p.size, b->p.size};
			m[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &v[i], .msg_iovlen = 1}};
		}
		int r = sendmmsg(fd, m, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return fail(b, "sendmmsg: %s", strerror(errno));
		done += (unsigned)r;
	}
	return 0;
}

static int sp_rx(struct bench *b, struct fds *f, int dir, void *buf, unsigned k)
{
	struct mmsghdr m[64];
	struct iovec v[64];
	int fd = f->fd[!dir];
	for (unsigned done = 0; done < k;) {
		unsigned n = k - done < 64 ? k - done : 64;
		for (unsigned i = 0; i < n; i++) {
			v[i] = (struct iovec){(char *)buf + (done + i) * b->p.size, b->p.size};
			m[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &v[i], .msg_iovlen = 1}};
		}
		int r = recvmmsg(fd, m, n, MSG_WAITFORONE, NULL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return fail(b, "recvmmsg: %s", r ? strerror(errno) : "end of stream");
		for (int i = 0; i < r; i++)
			if (m[i].msg_len != b->p.size)
				return fail(b, "recvmmsg: message of %u bytes", m[i].msg_len);
		done += (unsigned)r;
	}
	return 0;
}

static int sp_child(struct bench *b, void *priv, int role)
{
	return generic_child(b, priv, role, sp_tx, sp_rx);
}

struct mech mech_socketpair = {
	.name = "socketpair",
	.caps = C_TPUT | C_BATCH | C_RTT_SLEEP,
	.depth = sp_depth,
	.setup = sp_setup,
	.child = sp_child,
	.teardown = fds_teardown,
};

/* ---- POSIX message queue ------------------------------------------------ */

static void mq_depth(const struct params *p, char *buf, size_t len)
{
	snprintf(buf, len, "%llu msgs (default)", (unsigned long long)p->depth);
}

static int mq_setup(struct bench *b, void **priv)
{
	static unsigned seq;
	struct fds *f = fds_new();
	if (!f)
		return fail(b, "out of memory");
	*priv = f;
	int nq = b->p.kind == K_RTT ? 2 : 1;
	long maxmsg = 10;
	FILE *d = fopen("/proc/sys/fs/mqueue/msg_default", "r");
	if (d) {
		if (fscanf(d, "%ld", &maxmsg) != 1)
			maxmsg = 10;
		fclose(d);
	}
	for (int i = 0; i < nq; i++) {
		snprintf(f->name[i], sizeof(f->name[i]), "/shmring-perf-%d-%u", (int)getpid(), seq++);
		struct mq_attr a = {.mq_maxmsg = maxmsg, .mq_msgsize = (long)b->p.size};
		mqd_t q = mq_open(f->name[i], O_RDWR | O_CREAT | O_EXCL, 0600, &a);
		if (q == (mqd_t)-1) {
			int e = errno;
			f->name[i][0] = 0;
			return fail(b, "skipped: mq_open(msgsize %zu, depth %ld): %s", b->p.size,
				    maxmsg, strerror(e));
		}
		f->fd[i] = q;
	}
	b->p.depth = (uint64_t)maxmsg;
	return 0;
}

static int mq_tx(struct bench *b, struct fds *f, int dir, void *buf, unsigned k)
{
	for (unsigned i = 0; i < k; i++)
		while (mq_send(f->fd[dir], (char *)buf + i * b->p.size, b->p.size, 0))
			if (errno != EINTR)
				return fail(b, "mq_send: %s", strerror(errno));
	return 0;
}

static int mq_rx(struct bench *b, struct fds *f, int dir, void *buf, unsigned k)
{
	for (unsigned i = 0; i < k; i++) {
		ssize_t r;
		while ((r = mq_receive(f->fd[dir], (char *)buf + i * b->p.size, b->p.size, NULL)) < 0)
			if (errno != EINTR)
				return fail(b, "mq_receive: %s", strerror(errno));
		if ((size_t)r != b->p.size)
			return fail(b, "mq_receive: %zd bytes", r);
	}
	return 0;
}

static int mq_child(struct bench *b, void *priv, int role)
{
	return generic_child(b, priv, role, mq_tx, mq_rx);
}

struct mech mech_mq = {
	.name = "posix-mq",
	.caps = C_TPUT | C_BATCH | C_RTT_SLEEP,
	.depth = mq_depth,
	.setup = mq_setup,
	.child = mq_child,
	.teardown = fds_teardown,
};
