/* SPDX-License-Identifier: MIT */
/* Description: ring lifecycle (create, open by name, by fd and from a forked child, anonymous memfd rings, info, close, unlink), every documented error of those functions, options and mode handling, memfd seals, header validation against every corrupt field and wrong object sizes, and storage preallocation. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "layout.h"

/* ---- helpers ------------------------------------------------------------ */

#define ASSERT_RC(expr, want)                                                  \
	do {                                                                   \
		int got_ = (expr);                                             \
		int want_ = (want);                                            \
		cr_assert_eq(got_, want_, "%s: got %d (%s), want %d (%s)",     \
			     #expr, got_, shmring_strerror(got_), want_,       \
			     shmring_strerror(want_));                         \
	} while (0)

#define EXPECT_RC(expr, want)                                                  \
	do {                                                                   \
		int got_ = (expr);                                             \
		int want_ = (want);                                            \
		cr_expect_eq(got_, want_, "%s: got %d (%s), want %d (%s)",     \
			     #expr, got_, shmring_strerror(got_), want_,       \
			     shmring_strerror(want_));                         \
	} while (0)

static uint32_t page(void)
{
	return (uint32_t)sysconf(_SC_PAGESIZE);
}

/* The capacity a request must give, computed independently of the library:
 * default 1 MiB, at least one page, rounded up to a power of two. */
static uint64_t expect_capacity(uint64_t req)
{
	uint64_t v = req ? req : SHMRING_DEFAULT_CAPACITY;
	if (v < page())
		v = page();
	uint64_t p = 1;
	while (p < v)
		p <<= 1;
	return p;
}

/* 1 if a shared-memory object of that name exists, else 0. */
static int shm_exists(const char *name)
{
	int fd = shm_open(name, O_RDONLY, 0);
	if (fd >= 0) {
		close(fd);
		return 1;
	}
	cr_assert_eq(errno, ENOENT, "shm_open(%s): %s", name, strerror(errno));
	return 0;
}

static struct shmring *create_named(const char *name, uint64_t cap, uint32_t ncons)
{
	struct shmring_opts o = test_opts(cap, ncons);
	struct shmring *r = NULL;
	ASSERT_RC(shmring_create(name, &o, &r), 0);
	cr_assert_not_null(r);
	return r;
}

/* shmring_open(name); closes the handle again on success.  Returns the
 * open's result. */
static int open_rc(const char *name)
{
	struct shmring *r = NULL;
	int rc = shmring_open(name, &r);
	if (rc == 0) {
		cr_assert_not_null(r);
		ASSERT_RC(shmring_close(r), 0);
	}
	return rc;
}

static int open_fd_rc(int fd)
{
	struct shmring *r = NULL;
	int rc = shmring_open_fd(fd, &r);
	if (rc == 0) {
		cr_assert_not_null(r);
		ASSERT_RC(shmring_close(r), 0);
	}
	return rc;
}

static int shm_rw(const char *name)
{
	int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
	cr_assert(fd >= 0, "shm_open(%s): %s", name, strerror(errno));
	return fd;
}

static void put_field(int fd, size_t off, unsigned width, uint64_t v)
{
	ssize_t n;
	if (width == 8) {
		n = pwrite(fd, &v, 8, (off_t)off);
	} else {
		uint32_t v32 = (uint32_t)v;
		n = pwrite(fd, &v32, 4, (off_t)off);
	}
	cr_assert_eq(n, (ssize_t)width, "pwrite: %s", strerror(errno));
}

static uint64_t get_field(int fd, size_t off, unsigned width)
{
	ssize_t n;
	if (width == 8) {
		uint64_t v = 0;
		n = pread(fd, &v, 8, (off_t)off);
		cr_assert_eq(n, 8, "pread: %s", strerror(errno));
		return v;
	}
	uint32_t v32 = 0;
	n = pread(fd, &v32, 4, (off_t)off);
	cr_assert_eq(n, 4, "pread: %s", strerror(errno));
	return v32;
}

static off_t fd_size(int fd)
{
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0, "fstat: %s", strerror(errno));
	return st.st_size;
}

/* Sends msg through a producer on `pr` and receives it with a consumer on
 * `cr`: proves both handles map the same ring. */
static void roundtrip(struct shmring *pr, struct shmring *cr, const char *msg)
{
	struct shmring_consumer *c = NULL;
	struct shmring_producer *p = NULL;
	char buf[128];
	size_t len = 0;
	ASSERT_RC(shmring_consumer_open(cr, SHMRING_START_NEWEST, &c), 0);
	ASSERT_RC(shmring_producer_open(pr, &p), 0);
	ASSERT_RC(shmring_send(p, msg, strlen(msg)), 0);
	ASSERT_RC(shmring_recv(c, buf, sizeof(buf), &len), 0);
	cr_assert_eq(len, strlen(msg));
	cr_assert(memcmp(buf, msg, len) == 0, "received bytes differ");
	ASSERT_RC(shmring_producer_close(p), 0);
	ASSERT_RC(shmring_consumer_close(c), 0);
}

/* Names made here rather than by test_ring_name() (longer than its 64-byte
 * record), unlinked at exit. */
static char extra_names[4][320];
static int nextra;
static pid_t extra_pid;

static void unlink_extra(void)
{
	if (getpid() != extra_pid)
		return;
	for (int i = 0; i < nextra; i++)
		shm_unlink(extra_names[i]);
}

/* A unique name of exactly len bytes ("/shmring-test-...xxxx"). */
static const char *long_name(size_t len)
{
	cr_assert(nextra < 4 && len < sizeof(extra_names[0]));
	if (extra_pid != getpid()) {
		extra_pid = getpid();
		nextra = 0;
		atexit(unlink_extra);
	}
	char *b = extra_names[nextra++];
	char base[64];
	test_ring_name(base, sizeof(base));
	size_t bl = strlen(base);
	cr_assert(len >= bl);
	memcpy(b, base, bl);
	memset(b + bl, 'x', len - bl);
	b[len] = '\0';
	return b;
}

/* ---- 1. lifecycle ------------------------------------------------------- */

Test(lifecycle, version)
{
	cr_assert_eq(shmring_version(), SHMRING_VERSION);
	cr_assert_eq(SHMRING_VERSION, (SHMRING_VERSION_MAJOR << 16) |
					      (SHMRING_VERSION_MINOR << 8) |
					      SHMRING_VERSION_PATCH);
}

Test(lifecycle, create_then_open_same_process)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *a = create_named(name, 5000, 8);
	cr_assert_eq(shm_exists(name), 1);

	struct shmring *b = NULL;
	ASSERT_RC(shmring_open(name, &b), 0);
	cr_assert_not_null(b);
	cr_assert_neq(a, b);
	cr_assert_neq(shmring_fd(a), shmring_fd(b));

	struct shmring_info ia, ib;
	ASSERT_RC(shmring_info(a, &ia), 0);
	ASSERT_RC(shmring_info(b, &ib), 0);
	cr_assert_eq(ia.capacity, expect_capacity(5000));
	cr_assert_eq(ib.capacity, ia.capacity);
	cr_assert_eq(ib.max_consumers, 8);
	cr_assert_eq(ib.max_message, ia.max_message);

	/* Both directions: the two handles share the memory. */
	roundtrip(a, b, "from the creator to the opener");
	roundtrip(b, a, "from the opener to the creator");

	/* The object has exactly the layout's size. */
	struct shm_geom g;
	shm_geometry(&g, ia.capacity, 8, page());
	cr_assert_eq((uint64_t)fd_size(shmring_fd(a)), g.total_size);

	ASSERT_RC(shmring_close(b), 0);
	ASSERT_RC(shmring_close(a), 0);
	ASSERT_RC(shmring_unlink(name), 0);
	cr_assert_eq(shm_exists(name), 0);
}

Test(lifecycle, open_from_forked_child)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *r = create_named(name, 16384, 4);
	struct shmring_producer *p = NULL;
	ASSERT_RC(shmring_producer_open(r, &p), 0);

	int ready[2];
	cr_assert_eq(pipe(ready), 0);
	static const char msg[] = "hello, child";
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		close(ready[0]);
		struct shmring *c = NULL;
		if (shmring_open(name, &c) != 0)
			_exit(10);
		struct shmring_info in;
		if (shmring_info(c, &in) != 0 || in.capacity != 16384 ||
		    in.max_consumers != 4 || in.producer != 1 || in.closed != 0)
			_exit(11);
		struct shmring_consumer *cons = NULL;
		if (shmring_consumer_open(c, SHMRING_START_NEWEST, &cons) != 0)
			_exit(12);
		if (write(ready[1], "r", 1) != 1)
			_exit(13);
		struct timespec dl;
		shmring_deadline(&dl, 10ull * 1000000000u);
		char buf[64];
		size_t len = 0;
		if (shmring_recv_wait(cons, buf, sizeof(buf), &len, &dl) != 0)
			_exit(14);
		if (len != sizeof(msg) - 1 || memcmp(buf, msg, len) != 0)
			_exit(15);
		if (shmring_close(c) != -EBUSY)
			_exit(16);
		if (shmring_consumer_close(cons) != 0 || shmring_close(c) != 0)
			_exit(17);
		_exit(0);
	}
	close(ready[1]);
	char ch;
	cr_assert_eq(read(ready[0], &ch, 1), 1, "child did not get ready");
	close(ready[0]);
	struct shmring_info in;
	ASSERT_RC(shmring_info(r, &in), 0);
	cr_assert_eq(in.consumers, 1, "the child's consumer is visible here");
	ASSERT_RC(shmring_send(p, msg, sizeof(msg) - 1), 0);
	int st = test_wait(pid);
	cr_assert_eq(st, 0, "child failed with status %d", st);
	ASSERT_RC(shmring_info(r, &in), 0);
	cr_assert_eq(in.consumers, 0);
	ASSERT_RC(shmring_producer_close(p), 0);
	ASSERT_RC(shmring_close(r), 0);
}

Test(lifecycle, open_fd_keeps_callers_fd)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *a = create_named(name, 0, 0);
	int fd = shmring_fd(a);
	cr_assert(fd >= 0);

	struct shmring *b = NULL;
	ASSERT_RC(shmring_open_fd(fd, &b), 0);
	cr_assert_neq(shmring_fd(b), fd, "the fd must be duplicated");
	roundtrip(a, b, "through open_fd");
	ASSERT_RC(shmring_close(b), 0);
	cr_assert(fcntl(fd, F_GETFD) >= 0, "shmring_close closed the caller's fd: %s",
		  strerror(errno));

	/* With an fd the caller owns: closing it does not affect the handle,
	 * and closing the handle does not close it. */
	int mine = dup(fd);
	cr_assert(mine >= 0);
	ASSERT_RC(shmring_open_fd(mine, &b), 0);
	int bfd = shmring_fd(b);
	cr_assert_neq(bfd, mine);
	ASSERT_RC(shmring_close(b), 0);
	cr_assert(fcntl(mine, F_GETFD) >= 0, "caller's fd closed by shmring_close");
	ASSERT_RC(shmring_open_fd(mine, &b), 0);
	cr_assert_eq(close(mine), 0);
	roundtrip(b, a, "after the caller closed its fd");
	ASSERT_RC(shmring_close(b), 0);

	cr_assert(fcntl(fd, F_GETFD) >= 0);
	ASSERT_RC(shmring_close(a), 0);
}

Test(lifecycle, create_anon)
{
	struct shmring_opts o = test_opts(5000, 3);
	struct shmring *a = NULL;
	ASSERT_RC(shmring_create_anon("test-open-anon", &o, &a), 0);
	cr_assert_not_null(a);
	struct shmring_info in;
	ASSERT_RC(shmring_info(a, &in), 0);
	cr_assert_eq(in.capacity, expect_capacity(5000));
	cr_assert_eq(in.max_consumers, 3);
	cr_assert_eq(in.max_message, in.capacity / 2 - SHMRING_RECORD_HDR);

	/* It is a memfd carrying the debug name. */
	char link[64], target[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", shmring_fd(a));
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	cr_assert(n > 0);
	target[n] = '\0';
	cr_assert(strncmp(target, "/memfd:test-open-anon", 21) == 0, "fd is %s", target);

	struct shmring *b = NULL;
	ASSERT_RC(shmring_open_fd(shmring_fd(a), &b), 0);
	roundtrip(a, b, "anonymous");

	/* A forked child shares it through the inherited handle. */
	struct shmring_consumer *c = NULL;
	ASSERT_RC(shmring_consumer_open(b, SHMRING_START_NEWEST, &c), 0);
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		struct shmring *k = NULL;
		if (shmring_open_fd(shmring_fd(a), &k) != 0)
			_exit(10);
		struct shmring_info ki;
		if (shmring_info(k, &ki) != 0 || ki.capacity != in.capacity)
			_exit(11);
		struct shmring_producer *p = NULL;
		if (shmring_producer_open(k, &p) != 0)
			_exit(12);
		if (shmring_send(p, "kid", 3) != 0)
			_exit(13);
		if (shmring_producer_close(p) != 0 || shmring_close(k) != 0)
			_exit(14);
		_exit(0);
	}
	int st = test_wait(pid);
	cr_assert_eq(st, 0, "child failed with status %d", st);
	char buf[16];
	size_t len = 0;
	ASSERT_RC(shmring_recv(c, buf, sizeof(buf), &len), 0);
	cr_assert_eq(len, 3);
	cr_assert(memcmp(buf, "kid", 3) == 0);
	ASSERT_RC(shmring_info(b, &in), 0);
	cr_assert_eq(in.closed, 1);
	cr_assert_eq(in.producer, 0);
	ASSERT_RC(shmring_consumer_close(c), 0);
	ASSERT_RC(shmring_close(b), 0);
	ASSERT_RC(shmring_close(a), 0);

	/* NULL debug name is allowed. */
	ASSERT_RC(shmring_create_anon(NULL, NULL, &a), 0);
	ASSERT_RC(shmring_info(a, &in), 0);
	cr_assert_eq(in.capacity, SHMRING_DEFAULT_CAPACITY);
	cr_assert_eq(in.max_consumers, SHMRING_DEFAULT_CONSUMERS);
	ASSERT_RC(shmring_close(a), 0);
}

/* Pages of [p, p + len) missing from this process's page tables, or -1 if
 * /proc/self/pagemap cannot be read. */
static long pages_missing(const void *p, size_t len)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)p;
	long missing = 0;
	for (; a < (uintptr_t)p + len; a += page) {
		uint64_t e;
		if (pread(fd, &e, sizeof(e), (off_t)(a / page * sizeof(e))) != (ssize_t)sizeof(e)) {
			close(fd);
			return -1;
		}
		missing += !(e >> 63); /* bit 63: present */
	}
	close(fd);
	return missing;
}

/*
 * An endpoint's open enters the whole data area, both views, in its
 * process's page tables (populate_data()), so that its first lap takes no
 * page faults.  Each side runs in a fresh child: page tables of shared
 * mappings are not inherited by fork().  Without it, 4095 of the 4096
 * pages are missing on either side (all but the first record's).  Page
 * tables are checked rather than page faults counted, which under
 * AddressSanitizer would count its shadow memory's too.
 */
#define LAP_CAP (8u << 20)

/* For a child: opens a broadcast consumer, or a member of a group, peeks
 * the first message (at position 0) and stores how many pages of the data
 * area are missing from the page tables.  Returns an exit status. */
static int reader_missing(struct shmring *r, int group, long *missing)
{
	struct shmring_consumer *c = NULL;
	const void *d = NULL;
	size_t len = 0;
	int rc = group ? shmring_group_open(r, "populate", SHMRING_START_OLDEST, &c)
		       : shmring_consumer_open(r, SHMRING_START_OLDEST, &c);
	if (rc != 0 || shmring_peek(c, &d, &len) != 0 || len != 8)
		return 10;
	*missing = pages_missing((const char *)d - SHMRING_RECORD_HDR, 2 * (size_t)LAP_CAP);
	return shmring_consumer_close(c) == 0 ? 0 : 11;
}

Test(lifecycle, open_fills_page_tables)
{
	struct shmring_opts o = test_opts(LAP_CAP, 4);
	struct shmring *r = NULL;
	ASSERT_RC(shmring_create_anon("test-open-populate", &o, &r), 0);
	/* Keeps the first message for the consumer below. */
	struct shmring_consumer *hold = NULL;
	ASSERT_RC(shmring_consumer_open(r, SHMRING_START_OLDEST, &hold), 0);
	long *missing = test_shared_zero(3 * sizeof(long));
	missing[0] = missing[1] = missing[2] = -2;

	pid_t pid = test_spawn();
	if (pid == 0) {
		struct shmring_producer *p = NULL;
		void *d = NULL;
		if (shmring_producer_open(r, &p) != 0 || shmring_reserve(p, 8, &d) != 0)
			_exit(10);
		/* The first record, at position 0: the data area starts at its
		 * header. */
		missing[0] = pages_missing((char *)d - SHMRING_RECORD_HDR, 2 * (size_t)LAP_CAP);
		memset(d, 7, 8);
		if (shmring_commit(p) != 1 || shmring_producer_close(p) != 0)
			_exit(11);
		_exit(0);
	}
	cr_assert_eq(test_wait(pid), 0, "producer");

	pid = test_spawn();
	if (pid == 0)
		_exit(reader_missing(r, 0, &missing[1]));
	cr_assert_eq(test_wait(pid), 0, "consumer");
	pid = test_spawn();
	if (pid == 0)
		_exit(reader_missing(r, 1, &missing[2]));
	cr_assert_eq(test_wait(pid), 0, "group member");
	ASSERT_RC(shmring_consumer_close(hold), 0);
	ASSERT_RC(shmring_close(r), 0);
	long m0 = missing[0], m1 = missing[1], m2 = missing[2];
	munmap(missing, 3 * sizeof(long));
	if (m0 == -1 || m1 == -1 || m2 == -1)
		cr_skip_test("/proc/self/pagemap cannot be read here");
	cr_assert_eq(m0, 0, "producer: %ld pages of the data area not in its page tables", m0);
	cr_assert_eq(m1, 0, "consumer: %ld pages of the data area not in its page tables", m1);
	cr_assert_eq(m2, 0, "group member: %ld pages of the data area not in its page tables", m2);
}

Test(lifecycle, unlink_then_open_enoent)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *a = create_named(name, 0, 0);
	ASSERT_RC(shmring_unlink(name), 0);
	cr_assert_eq(shm_exists(name), 0);
	ASSERT_RC(open_rc(name), -ENOENT);
	ASSERT_RC(shmring_unlink(name), -ENOENT);
	/* The open handle keeps working. */
	struct shmring *b = NULL;
	ASSERT_RC(shmring_open_fd(shmring_fd(a), &b), 0);
	roundtrip(a, b, "after unlink");
	ASSERT_RC(shmring_close(b), 0);
	/* The name can be reused for a new, different ring. */
	struct shmring *c = create_named(name, 8192, 2);
	struct shmring_info ia, ic;
	ASSERT_RC(shmring_info(a, &ia), 0);
	ASSERT_RC(shmring_info(c, &ic), 0);
	cr_assert_eq(ia.capacity, SHMRING_DEFAULT_CAPACITY);
	cr_assert_eq(ic.capacity, 8192);
	ASSERT_RC(shmring_close(c), 0);
	ASSERT_RC(shmring_close(a), 0);
}

Test(lifecycle, info_geometry)
{
	static const struct {
		uint64_t req;
		uint32_t ncons;
	} cases[] = {
		{ 5000, 0 }, { 1, 1 }, { 0, 0 }, { 100, 64 }, { 4096, 2 }, { 4097, 4096 },
		{ 8192, 5 }, { 65535, 0 }, { 65536, 0 }, { 65537, 0 }, { 3u << 20, 7 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[64];
		test_ring_name(name, sizeof(name));
		struct shmring *r = create_named(name, cases[i].req, cases[i].ncons);
		struct shmring_info in;
		memset(&in, 0xa5, sizeof(in));
		ASSERT_RC(shmring_info(r, &in), 0);
		uint64_t cap = expect_capacity(cases[i].req);
		cr_expect_eq(in.capacity, cap, "request %llu: capacity %llu, want %llu",
			     (unsigned long long)cases[i].req,
			     (unsigned long long)in.capacity, (unsigned long long)cap);
		cr_expect_eq(in.max_message, (uint32_t)(in.capacity / 2 - 8));
		uint32_t nc = cases[i].ncons ? cases[i].ncons : 64;
		cr_expect_eq(in.max_consumers, nc);
		cr_expect_eq(in.policy, SHMRING_POLICY_BLOCK);
		cr_expect_eq(in.tail, 0);
		cr_expect_eq(in.consumers, 0);
		cr_expect_eq(in.producer, 0);
		cr_expect_eq(in.closed, 0);
		struct shm_geom g;
		shm_geometry(&g, cap, nc, page());
		cr_expect_eq((uint64_t)fd_size(shmring_fd(r)), g.total_size);
		ASSERT_RC(shmring_close(r), 0);
		ASSERT_RC(shmring_unlink(name), 0);
	}
	if (page() == 4096) {
		/* The examples of the contract, literally. */
		cr_assert_eq(expect_capacity(5000), 8192);
		cr_assert_eq(expect_capacity(1), 4096);
	}
}

Test(lifecycle, info_state)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *a = create_named(name, 8192, 8);
	struct shmring *b = NULL;
	ASSERT_RC(shmring_open(name, &b), 0);
	struct shmring_info in;

	struct shmring_producer *p = NULL;
	ASSERT_RC(shmring_producer_open(a, &p), 0);
	ASSERT_RC(shmring_info(b, &in), 0);
	cr_assert_eq(in.producer, 1);
	cr_assert_eq(in.closed, 0);
	/* A second producer, on either handle, is refused. */
	struct shmring_producer *p2 = NULL;
	ASSERT_RC(shmring_producer_open(b, &p2), -EBUSY);
	ASSERT_RC(shmring_producer_open(a, &p2), -EBUSY);

	struct shmring_consumer *c[3] = { NULL, NULL, NULL };
	ASSERT_RC(shmring_consumer_open(a, 0, &c[0]), 0);
	ASSERT_RC(shmring_consumer_open(b, 0, &c[1]), 0);
	ASSERT_RC(shmring_consumer_open(b, SHMRING_START_OLDEST, &c[2]), 0);
	ASSERT_RC(shmring_info(a, &in), 0);
	cr_assert_eq(in.consumers, 3);
	ASSERT_RC(shmring_consumer_close(c[1]), 0);
	ASSERT_RC(shmring_info(a, &in), 0);
	cr_assert_eq(in.consumers, 2);
	ASSERT_RC(shmring_info(b, &in), 0);
	cr_assert_eq(in.consumers, 2);

	/* The tail is the byte count of the published records. */
	ASSERT_RC(shmring_send(p, "12345", 5), 0);
	ASSERT_RC(shmring_send(p, "", 0), 0);
	ASSERT_RC(shmring_info(b, &in), 0);
	cr_assert_eq(in.tail, SHMRING_RECORD_SIZE(5) + SHMRING_RECORD_SIZE(0));

	ASSERT_RC(shmring_producer_close(p), 0);
	ASSERT_RC(shmring_info(b, &in), 0);
	cr_assert_eq(in.producer, 0);
	cr_assert_eq(in.closed, 1);
	ASSERT_RC(shmring_producer_open(b, &p), 0);
	ASSERT_RC(shmring_info(a, &in), 0);
	cr_assert_eq(in.producer, 1);
	cr_assert_eq(in.closed, 0, "a new producer clears the closed state");
	ASSERT_RC(shmring_producer_close(p), 0);

	ASSERT_RC(shmring_consumer_close(c[0]), 0);
	ASSERT_RC(shmring_consumer_close(c[2]), 0);
	ASSERT_RC(shmring_info(a, &in), 0);
	cr_assert_eq(in.consumers, 0);
	cr_assert_eq(in.producer, 0);
	cr_assert_eq(in.closed, 1);
	ASSERT_RC(shmring_close(b), 0);
	ASSERT_RC(shmring_close(a), 0);
}

Test(lifecycle, close_busy)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *a = create_named(name, 8192, 4);
	struct shmring *b = NULL;
	ASSERT_RC(shmring_open(name, &b), 0);
	struct shmring_producer *p = NULL;
	struct shmring_consumer *c = NULL;

	ASSERT_RC(shmring_producer_open(a, &p), 0);
	ASSERT_RC(shmring_close(a), -EBUSY);
	/* Nothing was done: the handle and its fd still work. */
	cr_assert(fcntl(shmring_fd(a), F_GETFD) >= 0);
	struct shmring_info in;
	ASSERT_RC(shmring_info(a, &in), 0);
	cr_assert_eq(in.producer, 1);
	/* Endpoints on another handle do not make this one busy... */
	ASSERT_RC(shmring_consumer_open(a, 0, &c), 0);
	ASSERT_RC(shmring_close(b), 0);
	ASSERT_RC(shmring_send(p, "still mapped", 12), 0);
	char buf[32];
	size_t len = 0;
	ASSERT_RC(shmring_recv(c, buf, sizeof(buf), &len), 0);
	cr_assert_eq(len, 12);
	ASSERT_RC(shmring_producer_close(p), 0);
	/* ...but a consumer on this one does. */
	ASSERT_RC(shmring_close(a), -EBUSY);
	ASSERT_RC(shmring_consumer_close(c), 0);
	ASSERT_RC(shmring_close(a), 0);

	/* Consumer only. */
	ASSERT_RC(shmring_open(name, &a), 0);
	ASSERT_RC(shmring_consumer_open(a, 0, &c), 0);
	struct shmring_consumer *c2 = NULL;
	ASSERT_RC(shmring_consumer_open(a, 0, &c2), 0);
	ASSERT_RC(shmring_close(a), -EBUSY);
	ASSERT_RC(shmring_consumer_close(c), 0);
	ASSERT_RC(shmring_close(a), -EBUSY);
	ASSERT_RC(shmring_consumer_close(c2), 0);
	ASSERT_RC(shmring_close(a), 0);

	/* A failed open of an endpoint leaves the handle closable. */
	ASSERT_RC(shmring_open(name, &a), 0);
	ASSERT_RC(shmring_open(name, &b), 0);
	ASSERT_RC(shmring_producer_open(a, &p), 0);
	struct shmring_producer *p2 = NULL;
	ASSERT_RC(shmring_producer_open(b, &p2), -EBUSY);
	ASSERT_RC(shmring_close(b), 0);
	ASSERT_RC(shmring_producer_close(p), 0);
	ASSERT_RC(shmring_close(a), 0);
}

/* ---- 2. errors ------------------------------------------------------------ */

Test(errors, null_arguments)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *r = NULL;
	struct shmring_opts o = test_opts(0, 0);
	struct shmring_info in;

	ASSERT_RC(shmring_create(NULL, &o, &r), -EINVAL);
	ASSERT_RC(shmring_create(name, &o, NULL), -EINVAL);
	ASSERT_RC(shmring_create(name, NULL, NULL), -EINVAL);
	cr_assert_eq(shm_exists(name), 0, "a failed create left the object behind");
	ASSERT_RC(shmring_create_anon("x", &o, NULL), -EINVAL);
	ASSERT_RC(shmring_create_anon(NULL, NULL, NULL), -EINVAL);
	ASSERT_RC(shmring_open(NULL, &r), -EINVAL);
	ASSERT_RC(shmring_fd(NULL), -EINVAL);
	ASSERT_RC(shmring_info(NULL, &in), -EINVAL);
	ASSERT_RC(shmring_close(NULL), -EINVAL);
	ASSERT_RC(shmring_unlink(NULL), -EINVAL);

	/* NULL opts means all defaults. */
	ASSERT_RC(shmring_create(name, NULL, &r), 0);
	ASSERT_RC(shmring_info(r, NULL), -EINVAL);
	ASSERT_RC(shmring_open(name, NULL), -EINVAL);
	ASSERT_RC(shmring_open_fd(shmring_fd(r), NULL), -EINVAL);
	ASSERT_RC(shmring_info(r, &in), 0);
	cr_assert_eq(in.capacity, SHMRING_DEFAULT_CAPACITY);
	cr_assert_eq(in.max_consumers, SHMRING_DEFAULT_CONSUMERS);
	cr_assert_eq(in.policy, SHMRING_POLICY_BLOCK);
	ASSERT_RC(shmring_close(r), 0);
}

Test(errors, bad_names)
{
	static const char *const bad[] = {
		"", "noslash", "/", "/a/b", "//a", "a/b", "/a/", "x/", "//",
	};
	struct shmring *r = NULL;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = NULL;
		EXPECT_RC(shmring_create(bad[i], NULL, &r), -EINVAL);
		cr_expect_null(r, "create(\"%s\") set *ring", bad[i]);
		EXPECT_RC(shmring_open(bad[i], &r), -EINVAL);
		EXPECT_RC(shmring_unlink(bad[i]), -EINVAL);
	}
	/* "//a" is "/a" to the system: nothing may have been made there. */
	cr_assert_eq(shm_exists("/a"), 0);
}

Test(errors, name_length)
{
	/* 300 bytes: too long. */
	const char *n300 = long_name(300);
	struct shmring *r = NULL;
	ASSERT_RC(shmring_create(n300, NULL, &r), -ENAMETOOLONG);
	cr_assert_null(r);
	/* shmring_open and shmring_unlink document only -EINVAL for a bad
	 * name, but the same name must give the same answer as create. */
	ASSERT_RC(shmring_open(n300, &r), -ENAMETOOLONG);
	ASSERT_RC(shmring_unlink(n300), -ENAMETOOLONG);

	/* 256 bytes: one over the limit. */
	const char *n256 = long_name(256);
	ASSERT_RC(shmring_create(n256, NULL, &r), -ENAMETOOLONG);
	cr_assert_eq(shm_exists(n256), 0);

	/* 255 bytes: the longest allowed name works end to end. */
	const char *n255 = long_name(255);
	cr_assert_eq(strlen(n255), 255);
	struct shmring_opts o = test_opts(4096, 1);
	ASSERT_RC(shmring_create(n255, &o, &r), 0);
	struct shmring *b = NULL;
	ASSERT_RC(shmring_open(n255, &b), 0);
	ASSERT_RC(shmring_close(b), 0);
	ASSERT_RC(shmring_close(r), 0);
	ASSERT_RC(shmring_unlink(n255), 0);
	ASSERT_RC(open_rc(n255), -ENOENT);
}

/* Checks that create and create_anon both refuse the options with want, and
 * that create leaves nothing behind. */
static void refuse_opts(const struct shmring_opts *o, int want, const char *what)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *r = NULL;
	int rc = shmring_create(name, o, &r);
	cr_expect_eq(rc, want, "create with %s: got %d (%s), want %d", what, rc,
		     shmring_strerror(rc), want);
	if (rc == 0)
		shmring_close(r);
	else
		cr_expect_eq(shm_exists(name), 0, "create with %s left the object", what);
	r = NULL;
	rc = shmring_create_anon("opts", o, &r);
	cr_expect_eq(rc, want, "create_anon with %s: got %d (%s), want %d", what, rc,
		     shmring_strerror(rc), want);
	if (rc == 0)
		shmring_close(r);
}

/* Accepts options and returns the info of the named ring they make. */
static struct shmring_info accept_opts(const struct shmring_opts *o, const char *what)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *r = NULL;
	int rc = shmring_create(name, o, &r);
	cr_assert_eq(rc, 0, "create with %s: got %d (%s)", what, rc, shmring_strerror(rc));
	struct shmring_info in;
	ASSERT_RC(shmring_info(r, &in), 0);
	ASSERT_RC(shmring_close(r), 0);
	ASSERT_RC(shmring_unlink(name), 0);
	rc = shmring_create_anon("opts", o, &r);
	cr_assert_eq(rc, 0, "create_anon with %s: got %d (%s)", what, rc,
		     shmring_strerror(rc));
	ASSERT_RC(shmring_close(r), 0);
	return in;
}

Test(errors, bad_options, .timeout = 120)
{
	struct shmring_opts o;

	for (size_t sz = 0; sz < 16; sz += 1) {
		o = test_opts(0, 0);
		o.size = sz;
		refuse_opts(&o, -EINVAL, "size too small");
	}
	static const uint32_t bad32[] = { 1, 2, 0x80000000u, UINT32_MAX };
	for (size_t i = 0; i < sizeof(bad32) / sizeof(bad32[0]); i++) {
		o = test_opts(0, 0);
		o.flags = bad32[i] == 1 ? 4 : bad32[i]; /* 1 is SHMRING_INLINE_SMALL */
		refuse_opts(&o, -EINVAL, "unknown flags");
		o = test_opts(0, 0);
		o.policy = bad32[i] == 1 ? 2 : bad32[i]; /* 1 is OVERWRITE */
		refuse_opts(&o, -EINVAL, "unknown policy");
	}
	o = test_opts(0, 0);
	o.flags = SHMRING_INLINE_SMALL;
	o.policy = SHMRING_POLICY_OVERWRITE;
	refuse_opts(&o, -EINVAL, "SHMRING_INLINE_SMALL with OVERWRITE");
	static const uint32_t badmode[] = { 010000, 017777, 0100600, 0x80000000u, UINT32_MAX };
	for (size_t i = 0; i < sizeof(badmode) / sizeof(badmode[0]); i++) {
		o = test_opts(0, 0);
		o.mode = badmode[i];
		refuse_opts(&o, -EINVAL, "mode beyond 07777");
	}
	static const uint64_t badcap[] = { SHMRING_MAX_CAPACITY + 1, SHMRING_MAX_CAPACITY * 2,
					   1ull << 63, UINT64_MAX };
	for (size_t i = 0; i < sizeof(badcap) / sizeof(badcap[0]); i++) {
		o = test_opts(badcap[i], 0);
		refuse_opts(&o, -EINVAL, "capacity over the limit");
	}
	static const uint32_t badcons[] = { SHMRING_MAX_CONSUMERS + 1, 1u << 16, UINT32_MAX };
	for (size_t i = 0; i < sizeof(badcons) / sizeof(badcons[0]); i++) {
		o = test_opts(0, badcons[i]);
		refuse_opts(&o, -EINVAL, "max_consumers over the limit");
	}
}

Test(errors, options_at_the_limits)
{
	struct shmring_opts o = test_opts(4096, SHMRING_MAX_CONSUMERS);
	struct shmring_info in = accept_opts(&o, "max_consumers == SHMRING_MAX_CONSUMERS");
	cr_assert_eq(in.max_consumers, SHMRING_MAX_CONSUMERS);
	o = test_opts(4096, 1);
	o.mode = 07777;
	in = accept_opts(&o, "mode 07777");
	cr_assert_eq(in.max_consumers, 1);
	/* A smaller (older) struct holding only size and capacity: the rest
	 * is not read, whatever it holds. */
	o = test_opts(5000, 9999);
	o.flags = 1;
	o.policy = 7;
	o.mode = 0xffffffffu;
	o.size = offsetof(struct shmring_opts, capacity) + sizeof(o.capacity);
	in = accept_opts(&o, "size covering only capacity");
	cr_assert_eq(in.capacity, expect_capacity(5000));
	cr_assert_eq(in.max_consumers, SHMRING_DEFAULT_CONSUMERS);
}

Test(errors, larger_options_struct)
{
	struct {
		struct shmring_opts o;
		unsigned char more[24];
	} big;
	/* Zero trailing bytes: accepted, and the known fields honoured. */
	memset(&big, 0, sizeof(big));
	big.o.size = sizeof(big);
	big.o.capacity = 5000;
	big.o.max_consumers = 3;
	struct shmring_info in = accept_opts(&big.o, "larger struct, zero tail");
	cr_assert_eq(in.capacity, expect_capacity(5000));
	cr_assert_eq(in.max_consumers, 3);
	/* Any nonzero trailing byte: refused. */
	for (size_t i = 0; i < sizeof(big.more); i++) {
		memset(&big, 0, sizeof(big));
		big.o.size = sizeof(big);
		big.more[i] = (unsigned char)(1u << (i % 8));
		char what[64];
		snprintf(what, sizeof(what), "nonzero trailing byte %zu", i);
		refuse_opts(&big.o, -EINVAL, what);
	}
	/* A nonzero byte beyond the declared size is not read. */
	memset(&big, 0, sizeof(big));
	big.o.size = sizeof(big.o) + 8;
	big.more[8] = 0xff;
	accept_opts(&big.o, "nonzero byte past the declared size");
}

static void check_mode(uint32_t req, mode_t want)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring_opts o = test_opts(4096, 1);
	o.mode = req;
	struct shmring *r = NULL;
	ASSERT_RC(shmring_create(name, &o, &r), 0);
	struct stat st;
	cr_assert_eq(fstat(shmring_fd(r), &st), 0);
	cr_expect_eq(st.st_mode & 07777, want, "mode %#o: object has %#o, want %#o",
		     (unsigned)req, (unsigned)(st.st_mode & 07777), (unsigned)want);
	char path[128];
	snprintf(path, sizeof(path), "/dev/shm/%s", name + 1);
	if (stat(path, &st) == 0)
		cr_expect_eq(st.st_mode & 07777, want);
	ASSERT_RC(shmring_close(r), 0);
	ASSERT_RC(shmring_unlink(name), 0);
}

Test(errors, mode_ignores_umask)
{
	umask(077);
	check_mode(0640, 0640);
	check_mode(0666, 0666);
	check_mode(0604, 0604);
	check_mode(0400, 0400);
	check_mode(0, 0600);  /* default */
	umask(0);
	check_mode(0, 0600);  /* default, not widened by a permissive umask */
	check_mode(0640, 0640);
	umask(022);
}

Test(errors, eexist)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *a = create_named(name, 8192, 2);
	struct shmring *b = NULL;
	ASSERT_RC(shmring_create(name, NULL, &b), -EEXIST);
	cr_assert_null(b);
	/* The existing ring is untouched (and still named). */
	ASSERT_RC(shmring_open(name, &b), 0);
	struct shmring_info in;
	ASSERT_RC(shmring_info(b, &in), 0);
	cr_assert_eq(in.capacity, 8192);
	cr_assert_eq(in.max_consumers, 2);
	roundtrip(a, b, "after a failed create");
	ASSERT_RC(shmring_close(b), 0);
	ASSERT_RC(shmring_close(a), 0);

	/* Another object of that name: EEXIST, and it is left alone. */
	char other[64];
	test_ring_name(other, sizeof(other));
	int fd = shm_open(other, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert(fd >= 0);
	cr_assert_eq(pwrite(fd, "not a ring", 10, 0), 10);
	ASSERT_RC(shmring_create(other, NULL, &b), -EEXIST);
	cr_assert_eq(fd_size(fd), 10);
	char buf[10];
	cr_assert_eq(pread(fd, buf, 10, 0), 10);
	cr_assert(memcmp(buf, "not a ring", 10) == 0);
	cr_assert_eq(shm_exists(other), 1);
	close(fd);
}

Test(errors, enoent)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *r = NULL;
	ASSERT_RC(shmring_open(name, &r), -ENOENT);
	cr_assert_null(r);
	ASSERT_RC(shmring_unlink(name), -ENOENT);
	cr_assert_eq(shm_exists(name), 0, "open must not create");
}

Test(errors, ebadf)
{
	struct shmring *r = NULL;
	ASSERT_RC(shmring_open_fd(-1, &r), -EBADF);
	ASSERT_RC(shmring_open_fd(-1000, &r), -EBADF);
	ASSERT_RC(shmring_open_fd(INT_MIN, &r), -EBADF);
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	cr_assert(fd >= 0);
	cr_assert_eq(close(fd), 0);
	ASSERT_RC(shmring_open_fd(fd, &r), -EBADF);
	ASSERT_RC(shmring_open_fd(INT_MAX, &r), -EBADF);
	cr_assert_null(r);
}

Test(errors, open_fd_not_a_ring_file)
{
	struct shmring *r = NULL;
	int p[2];
	cr_assert_eq(pipe(p), 0);
	ASSERT_RC(shmring_open_fd(p[0], &r), -EPROTO);
	ASSERT_RC(shmring_open_fd(p[1], &r), -EPROTO);
	close(p[0]);
	close(p[1]);
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	cr_assert(fd >= 0);
	ASSERT_RC(shmring_open_fd(fd, &r), -EPROTO);
	close(fd);
	fd = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(fd >= 0);
	ASSERT_RC(shmring_open_fd(fd, &r), -EPROTO);
	close(fd);
	cr_assert_null(r);
}

Test(errors, open_fd_access_modes)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *a = create_named(name, 8192, 2);
	ASSERT_RC(shmring_close(a), 0);
	char path[128];
	snprintf(path, sizeof(path), "/dev/shm/%s", name + 1);
	struct shmring *r = NULL;

	/* Write-only: the header cannot be read. */
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
	ASSERT_RC(shmring_open_fd(fd, &r), -EACCES);
	close(fd);

	/* O_PATH: not usable for I/O, a bad fd for this purpose. */
	fd = open(path, O_PATH | O_CLOEXEC);
	cr_assert(fd >= 0);
	ASSERT_RC(shmring_open_fd(fd, &r), -EBADF);
	close(fd);
	cr_assert_null(r);
}

/* A read-only fd gives a handle that can read the ring but may not produce
 * (-EACCES, documented).  A consumer needs to write its cursor: opening one
 * must fail cleanly, not crash.  Run in a child to see a crash as a status. */
Test(errors, open_fd_read_only)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *a = create_named(name, 8192, 2);
	char path[128];
	snprintf(path, sizeof(path), "/dev/shm/%s", name + 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert(fd >= 0);
	struct shmring *r = NULL;
	ASSERT_RC(shmring_open_fd(fd, &r), 0);
	close(fd);
	struct shmring_info in;
	ASSERT_RC(shmring_info(r, &in), 0);
	cr_assert_eq(in.capacity, 8192);
	struct shmring_producer *p = NULL;
	ASSERT_RC(shmring_producer_open(r, &p), -EACCES);
	ASSERT_RC(shmring_info(a, &in), 0);
	cr_assert_eq(in.producer, 0, "a refused producer must not stay attached");

	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		struct shmring_consumer *c = NULL;
		int rc = shmring_consumer_open(r, 0, &c);
		_exit(rc == -EACCES ? 0 : rc == 0 ? 3 : 4);
	}
	int st = test_wait(pid);
	cr_expect_eq(st, 0,
		     "shmring_consumer_open on a read-only handle: child status %d "
		     "(139 = SIGSEGV, or 1 under ASan; 3 = succeeded; 4 = another "
		     "error; want -EACCES)",
		     st);
	ASSERT_RC(shmring_close(r), 0);
	ASSERT_RC(shmring_close(a), 0);
}

/* Drops to an unprivileged user in a child and checks -EACCES. */
Test(errors, eacces)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring_opts o = test_opts(4096, 1);
	o.mode = 0600;
	struct shmring *a = NULL;
	ASSERT_RC(shmring_create(name, &o, &a), 0);
	char shared[64];
	test_ring_name(shared, sizeof(shared));
	o.mode = 0666;
	struct shmring *s = NULL;
	ASSERT_RC(shmring_create(shared, &o, &s), 0);
	if (geteuid() != 0) {
		cr_log_warn("not root: cannot test -EACCES from another user");
		ASSERT_RC(shmring_close(s), 0);
		ASSERT_RC(shmring_close(a), 0);
		return;
	}
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(20);
		struct shmring *r = NULL;
		if (shmring_open(name, &r) != -EACCES)
			_exit(10);
		/* A world-writable ring opens fine. */
		if (shmring_open(shared, &r) != 0)
			_exit(11);
		shmring_close(r);
		int rc = shmring_unlink(name);
		_exit(rc == -EACCES ? 0 : rc == -EPERM ? 12 : rc == 0 ? 13 : 14);
	}
	int st = test_wait(pid);
	cr_expect_eq(st, 0,
		     "as another user: status %d (10: open 0600 ring not -EACCES; "
		     "12: shmring_unlink gave -EPERM, documented -EACCES; 13: unlink "
		     "succeeded; 14: other unlink error)",
		     st);
	cr_expect_eq(shm_exists(name), 1);
	ASSERT_RC(shmring_close(s), 0);
	ASSERT_RC(shmring_close(a), 0);
}

/* With RLIMIT_FSIZE below the ring's size the allocation fails: -ENOSPC,
 * and nothing is left behind.  In a child, so the limit does not leak. */
Test(errors, enospc_leaves_nothing)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit rl = { 64 * 1024, 64 * 1024 };
		if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
			_exit(20);
		struct shmring_opts o = test_opts(1u << 20, 0);
		struct shmring *r = NULL;
		if (shmring_create(name, &o, &r) != -ENOSPC)
			_exit(10);
		if (r)
			_exit(11);
		if (shmring_create_anon("enospc", &o, &r) != -ENOSPC)
			_exit(12);
		/* A ring that fits still works. */
		o = test_opts(4096, 1);
		if (shmring_create_anon("fits", &o, &r) != 0)
			_exit(13);
		shmring_close(r);
		_exit(0);
	}
	int st = test_wait(pid);
	cr_assert_eq(st, 0, "child status %d", st);
	cr_assert_eq(shm_exists(name), 0, "a failed create left %s behind", name);
}

/* ---- 3. memfd seals ----------------------------------------------------- */

/* Copies the bytes of a ring into a new memfd made by the test. */
static int copy_to_memfd(int src, unsigned flags)
{
	off_t size = fd_size(src);
	int fd = memfd_create("test-copy", MFD_CLOEXEC | flags);
	cr_assert(fd >= 0, "memfd_create: %s", strerror(errno));
	cr_assert_eq(ftruncate(fd, size), 0);
	char buf[4096];
	for (off_t off = 0; off < size; off += (off_t)sizeof(buf)) {
		ssize_t n = pread(src, buf, sizeof(buf), off);
		cr_assert(n > 0);
		cr_assert_eq(pwrite(fd, buf, (size_t)n, off), n);
	}
	return fd;
}

Test(seals, anon_ring_is_sealed)
{
	struct shmring_opts o = test_opts(4096, 1);
	struct shmring *r = NULL;
	ASSERT_RC(shmring_create_anon("sealed", &o, &r), 0);
	int fd = shmring_fd(r);
	int seals = fcntl(fd, F_GET_SEALS);
	cr_assert(seals >= 0, "F_GET_SEALS: %s", strerror(errno));
	cr_assert_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW,
		     "seals %#x", seals);
	off_t size = fd_size(fd);
	cr_assert_eq(ftruncate(fd, size / 2), -1, "a sealed ring could be shrunk");
	cr_assert_eq(errno, EPERM);
	cr_assert_eq(ftruncate(fd, size * 2), -1, "a sealed ring could be grown");
	cr_assert_eq(fd_size(fd), size);
	ASSERT_RC(shmring_close(r), 0);
}

Test(seals, unsealed_memfd_refused)
{
	struct shmring_opts o = test_opts(4096, 1);
	struct shmring *r = NULL;
	ASSERT_RC(shmring_create_anon("source", &o, &r), 0);
	int src = shmring_fd(r);

	/* Without MFD_ALLOW_SEALING: no seals at all. */
	int fd = copy_to_memfd(src, 0);
	ASSERT_RC(open_fd_rc(fd), -EPROTO);
	close(fd);

	/* Sealable but unsealed, then one seal only, then both. */
	fd = copy_to_memfd(src, MFD_ALLOW_SEALING);
	ASSERT_RC(open_fd_rc(fd), -EPROTO);
	cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	ASSERT_RC(open_fd_rc(fd), -EPROTO);
	cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW), 0);
	ASSERT_RC(open_fd_rc(fd), 0); /* the copy itself was a valid ring */
	close(fd);

	fd = copy_to_memfd(src, MFD_ALLOW_SEALING);
	cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW), 0);
	ASSERT_RC(open_fd_rc(fd), -EPROTO);
	close(fd);

	/* An empty, unsealed memfd is refused too (not a sealed ring). */
	fd = memfd_create("empty", MFD_CLOEXEC);
	cr_assert(fd >= 0);
	int rc = open_fd_rc(fd);
	cr_assert(rc == -EPROTO || rc == -EAGAIN, "empty memfd: %d", rc);
	close(fd);
	ASSERT_RC(shmring_close(r), 0);
}

/* ---- 4. corrupt headers ------------------------------------------------- */

/*
 * Each header field, its width, and the error a wrong value must give:
 *   magic        0 -> -EAGAIN (not initialised yet), other -> -EPROTO
 *   version      -> -EPROTONOSUPPORT
 *   page_size    -> -ENOTSUP
 *   create_time  -> opens (informative only)
 *   every other  -> -EPROTO
 */
struct field {
	const char *name;
	size_t off;
	unsigned width;
	int err;
};

#define FIELD(f, w, e) { #f, offsetof(struct shm_header, f), w, e }
static const struct field fields[] = {
	FIELD(magic, 8, -EPROTO),
	FIELD(version, 4, -EPROTONOSUPPORT),
	FIELD(header_size, 4, -EPROTO),
	FIELD(total_size, 8, -EPROTO),
	FIELD(capacity, 8, -EPROTO),
	FIELD(prod_off, 8, -EPROTO),
	FIELD(ctab_off, 8, -EPROTO),
	FIELD(data_off, 8, -EPROTO),
	FIELD(page_size, 4, -ENOTSUP),
	FIELD(nslots, 4, -EPROTO),
	FIELD(slot_size, 4, -EPROTO),
	FIELD(policy, 4, -EPROTO),
	FIELD(max_message, 4, -EPROTO),
	FIELD(flags, 4, -EPROTO),
	FIELD(create_time, 8, 0),
};

/* The geometry of the ring the corruption tests make: 32 slots fill the
 * consumer area's first page plus one slot, so nslots - 1 changes it. */
#define CORRUPT_CAP (4 * 4096u)
#define CORRUPT_SLOTS 32u

static size_t wrong_values(const struct field *f, uint64_t orig, const struct shm_geom *g,
			   uint64_t *v)
{
	uint64_t ones = f->width == 8 ? UINT64_MAX : UINT32_MAX;
	size_t n = 0;
	v[n++] = 0;
	v[n++] = 1;
	v[n++] = ones;                     /* all ones */
	v[n++] = orig + 1;                 /* off by one */
	v[n++] = orig - 1;
	v[n++] = orig * 2;
	v[n++] = orig / 2;
	v[n++] = orig + page();
	v[n++] = orig - page();
	v[n++] = orig ^ (1ull << (f->width * 8 - 1)); /* top bit flipped */
	v[n++] = f->width == 8 ? 1ull << 62 : 1u << 30;  /* huge */
	v[n++] = 0 - orig;                 /* orig + v wraps to 0 */
	v[n++] = 0 - g->capacity;          /* v + capacity overflows */
	v[n++] = 0 - g->total_size;        /* v + total_size overflows */
	v[n++] = ones - 7;
	v[n++] = 65536;
	v[n++] = 4096;
	v[n++] = 0x100;
	if (!strcmp(f->name, "magic")) {
		v[n++] = __builtin_bswap64(SHMRING_MAGIC);
		v[n++] = SHMRING_MAGIC ^ 0xff00000000000000ull;
		v[n++] = 0x474e49524d485320ull; /* one byte off */
	}
	if (!strcmp(f->name, "capacity")) {
		v[n++] = SHMRING_MAX_CAPACITY;       /* valid power of two, wrong */
		v[n++] = SHMRING_MAX_CAPACITY * 2;   /* power of two over the max */
		v[n++] = 1ull << 63;
	}
	if (!strcmp(f->name, "nslots")) {
		v[n++] = SHMRING_MAX_CONSUMERS;
		v[n++] = SHMRING_MAX_CONSUMERS + 1;
		v[n++] = 64;
	}
	for (size_t i = 0; i < n; i++)
		v[i] &= ones;
	return n;
}

/* nslots is redundant only through the consumer area's page rounding: a
 * value whose consumer area rounds to the same pages describes a ring of the
 * same geometry, and no header check can tell it from the real one.  Those
 * values are not corruption the header can reveal, so they are skipped. */
static int nslots_consistent(uint64_t v, const struct shm_geom *g)
{
	if (v == 0 || v > SHMRING_MAX_CONSUMERS)
		return 0;
	struct shm_geom g2;
	shm_geometry(&g2, g->capacity, (uint32_t)v, g->page_size);
	return g2.data_off == g->data_off;
}

static void corrupt_field(const char *fname)
{
	const struct field *f = NULL;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (!strcmp(fields[i].name, fname))
			f = &fields[i];
	cr_assert_not_null(f);

	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *r = create_named(name, CORRUPT_CAP, CORRUPT_SLOTS);
	ASSERT_RC(shmring_close(r), 0);
	ASSERT_RC(open_rc(name), 0);

	struct shm_geom g;
	shm_geometry(&g, CORRUPT_CAP, CORRUPT_SLOTS, page());
	int fd = shm_rw(name);
	uint64_t orig = get_field(fd, f->off, f->width);
	uint64_t v[64];
	size_t n = wrong_values(f, orig, &g, v);
	unsigned tried = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == orig)
			continue;
		if (!strcmp(f->name, "nslots") && nslots_consistent(v[i], &g))
			continue;
		int want = f->err;
		if (!strcmp(f->name, "magic") && v[i] == 0)
			want = -EAGAIN;
		/* The other policy is a valid header, only another ring. */
		if (!strcmp(f->name, "policy") && v[i] == SHMRING_POLICY_OVERWRITE)
			want = 0;
		/* So is a BLOCK ring with SHMRING_INLINE_SMALL. */
		if (!strcmp(f->name, "flags") && v[i] == SHMRING_INLINE_SMALL)
			want = 0;
		put_field(fd, f->off, f->width, v[i]);
		cr_assert_eq(get_field(fd, f->off, f->width), v[i]);
		int rc = open_rc(name);
		cr_expect_eq(rc, want, "%s = %#llx (was %#llx): got %d (%s), want %d (%s)",
			     f->name, (unsigned long long)v[i], (unsigned long long)orig, rc,
			     shmring_strerror(rc), want, shmring_strerror(want));
		/* The same answer through an fd. */
		rc = open_fd_rc(fd);
		cr_expect_eq(rc, want, "open_fd, %s = %#llx: got %d (%s), want %d",
			     f->name, (unsigned long long)v[i], rc, shmring_strerror(rc), want);
		put_field(fd, f->off, f->width, orig);
		rc = open_rc(name);
		cr_assert_eq(rc, 0, "restoring %s: got %d (%s)", f->name, rc,
			     shmring_strerror(rc));
		tried++;
	}
	cr_assert(tried >= 10, "only %u wrong values of %s tried", tried, f->name);
	close(fd);
}

Test(corrupt, header_written_by_create_matches_layout)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct timespec t0;
	clock_gettime(CLOCK_REALTIME, &t0);
	struct shmring *r = create_named(name, CORRUPT_CAP, CORRUPT_SLOTS);
	ASSERT_RC(shmring_close(r), 0);
	struct shm_geom g;
	shm_geometry(&g, CORRUPT_CAP, CORRUPT_SLOTS, page());
	int fd = shm_rw(name);
	struct shm_header h;
	cr_assert_eq(pread(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	uint64_t magic;
	memcpy(&magic, &h, 8);
	cr_assert_eq(magic, SHMRING_MAGIC);
	cr_assert_eq(h.version, SHMRING_LAYOUT_VERSION);
	cr_assert_eq(h.header_size, sizeof(struct shm_header));
	cr_assert_eq(h.total_size, g.total_size);
	cr_assert_eq(h.capacity, CORRUPT_CAP);
	cr_assert_eq(h.prod_off, g.prod_off);
	cr_assert_eq(h.ctab_off, g.ctab_off);
	cr_assert_eq(h.data_off, g.data_off);
	cr_assert_eq(h.page_size, page());
	cr_assert_eq(h.nslots, CORRUPT_SLOTS);
	cr_assert_eq(h.slot_size, SLOT_SIZE);
	cr_assert_eq(h.policy, SHMRING_POLICY_BLOCK);
	cr_assert_eq(h.max_message, CORRUPT_CAP / 2 - 8);
	cr_assert_eq(h.flags, 0);
	uint64_t t0ns = (uint64_t)t0.tv_sec * 1000000000u + (uint64_t)t0.tv_nsec;
	cr_assert(h.create_time + 1000000000u >= t0ns &&
		  h.create_time <= t0ns + 60ull * 1000000000u,
		  "create_time %llu, now %llu", (unsigned long long)h.create_time,
		  (unsigned long long)t0ns);
	cr_assert_eq((uint64_t)fd_size(fd), g.total_size);
	close(fd);
}

Test(corrupt, magic) { corrupt_field("magic"); }
Test(corrupt, version) { corrupt_field("version"); }
Test(corrupt, header_size) { corrupt_field("header_size"); }
Test(corrupt, total_size) { corrupt_field("total_size"); }
Test(corrupt, capacity) { corrupt_field("capacity"); }
Test(corrupt, prod_off) { corrupt_field("prod_off"); }
Test(corrupt, ctab_off) { corrupt_field("ctab_off"); }
Test(corrupt, data_off) { corrupt_field("data_off"); }
Test(corrupt, page_size) { corrupt_field("page_size"); }
Test(corrupt, nslots) { corrupt_field("nslots"); }
Test(corrupt, slot_size) { corrupt_field("slot_size"); }
Test(corrupt, policy) { corrupt_field("policy"); }
Test(corrupt, max_message) { corrupt_field("max_message"); }
Test(corrupt, flags) { corrupt_field("flags"); }

/* SHMRING_INLINE_SMALL is stored in the header, and an OVERWRITE ring that
 * claims it is refused: line 0 holds its snapshot (layout.h). */
Test(corrupt, inline_small_with_overwrite)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring_opts o = test_opts(CORRUPT_CAP, CORRUPT_SLOTS);
	o.flags = SHMRING_INLINE_SMALL;
	struct shmring *r;
	ASSERT_RC(shmring_create(name, &o, &r), 0);
	ASSERT_RC(shmring_close(r), 0);
	int fd = shm_rw(name);
	const struct field *fl = NULL, *po = NULL;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (!strcmp(fields[i].name, "flags"))
			fl = &fields[i];
		if (!strcmp(fields[i].name, "policy"))
			po = &fields[i];
	}
	cr_assert(fl && po);
	cr_assert_eq(get_field(fd, fl->off, fl->width), SHMRING_INLINE_SMALL);
	ASSERT_RC(open_rc(name), 0);
	put_field(fd, po->off, po->width, SHMRING_POLICY_OVERWRITE);
	ASSERT_RC(open_rc(name), -EPROTO);
	ASSERT_RC(open_fd_rc(fd), -EPROTO);
	close(fd);
	ASSERT_RC(shmring_unlink(name), 0);
}
Test(corrupt, create_time) { corrupt_field("create_time"); }

/* A header that is consistent in itself (capacity doubled, and every derived
 * field with it) but disagrees with the object's size. */
Test(corrupt, consistent_header_wrong_size)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *r = create_named(name, CORRUPT_CAP, CORRUPT_SLOTS);
	ASSERT_RC(shmring_close(r), 0);
	int fd = shm_rw(name);
	struct shm_header h;
	cr_assert_eq(pread(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	struct shm_geom g;
	shm_geometry(&g, 2ull * CORRUPT_CAP, CORRUPT_SLOTS, page());
	struct shm_header h2 = h;
	h2.capacity = g.capacity;
	h2.total_size = g.total_size;
	h2.max_message = g.max_message;
	cr_assert_eq(pwrite(fd, &h2, sizeof(h2), 0), (ssize_t)sizeof(h2));
	ASSERT_RC(open_rc(name), -EPROTO);
	/* Made the right size, it is a valid (bigger) ring. */
	cr_assert_eq(ftruncate(fd, (off_t)g.total_size), 0);
	ASSERT_RC(shmring_open(name, &r), 0);
	struct shmring_info in;
	ASSERT_RC(shmring_info(r, &in), 0);
	cr_assert_eq(in.capacity, 2ull * CORRUPT_CAP);
	ASSERT_RC(shmring_close(r), 0);
	close(fd);
}

Test(corrupt, zero_size_object)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert(fd >= 0);
	ASSERT_RC(open_rc(name), -EAGAIN);
	ASSERT_RC(open_fd_rc(fd), -EAGAIN);
	/* Sized but not initialised (all zero, so magic 0): -EAGAIN too. */
	struct shm_geom g;
	shm_geometry(&g, CORRUPT_CAP, CORRUPT_SLOTS, page());
	cr_assert_eq(ftruncate(fd, (off_t)g.total_size), 0);
	ASSERT_RC(open_rc(name), -EAGAIN);
	close(fd);
}

static void check_sizes(const char *name, int fd, const off_t *sizes, size_t n,
			const void *hdr, off_t total)
{
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(ftruncate(fd, sizes[i]), 0);
		int rc = open_rc(name);
		cr_expect_eq(rc, -EPROTO, "object of %lld bytes, header says %lld: got %d (%s)",
			     (long long)sizes[i], (long long)total, rc, shmring_strerror(rc));
		rc = open_fd_rc(fd);
		cr_expect_eq(rc, -EPROTO, "open_fd, %lld bytes: got %d (%s)",
			     (long long)sizes[i], rc, shmring_strerror(rc));
		/* Restore the size and the header (a cut may have removed
		 * it): the ring opens again. */
		cr_assert_eq(ftruncate(fd, total), 0);
		cr_assert_eq(pwrite(fd, hdr, 4096, 0), 4096);
		rc = open_rc(name);
		cr_assert_eq(rc, 0, "restored to %lld bytes: got %d (%s)", (long long)total,
			     rc, shmring_strerror(rc));
	}
}

Test(corrupt, truncated_and_extended)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *r = create_named(name, CORRUPT_CAP, CORRUPT_SLOTS);
	ASSERT_RC(shmring_close(r), 0);
	int fd = shm_rw(name);
	off_t total = fd_size(fd);
	static char hdr[4096];
	cr_assert_eq(pread(fd, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	off_t pg = (off_t)page();
	const off_t shorter[] = {
		total - 1, total - 8, total - pg, total - CORRUPT_CAP / 2, total / 2,
		3 * pg, 2 * pg, pg, pg - 1, 4096, 89,
		(off_t)sizeof(struct shm_header),     /* just the header */
		(off_t)sizeof(struct shm_header) - 1, /* shorter than the header */
		16, 8, 1,
	};
	check_sizes(name, fd, shorter, sizeof(shorter) / sizeof(shorter[0]), hdr, total);
	const off_t longer[] = {
		total + 1, total + 8, total + pg, total + CORRUPT_CAP, 2 * total,
		total + (off_t)(1u << 20),
	};
	check_sizes(name, fd, longer, sizeof(longer) / sizeof(longer[0]), hdr, total);
	close(fd);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int validation_error(int rc)
{
	return rc == -EAGAIN || rc == -EPROTO || rc == -EPROTONOSUPPORT || rc == -ENOTSUP;
}

Test(corrupt, random_bytes_object)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert(fd >= 0);
	uint64_t seed = test_env("SHMRING_TEST_SEED", 0x5eed1234abcdull) | 1;
	uint64_t s = seed;
	static const size_t sizes[] = { 1, 87, 88, 4096, 65536, 3 * 65536 + 17 };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		for (int round = 0; round < 4; round++) {
			size_t sz = sizes[k];
			static uint64_t buf[(3 * 65536 + 24) / 8];
			for (size_t i = 0; i < sizeof(buf) / 8; i++)
				buf[i] = xorshift(&s);
			/* Round 1: a real magic; round 2: magic and version;
			 * round 3: magic, version, header size and page size,
			 * so validation gets further each time. */
			struct shm_header *h = (struct shm_header *)buf;
			if (round >= 1)
				memcpy(buf, &(uint64_t){ SHMRING_MAGIC }, 8);
			if (round >= 2)
				h->version = SHMRING_LAYOUT_VERSION;
			if (round >= 3) {
				h->header_size = sizeof(*h);
				h->page_size = page();
			}
			cr_assert_eq(ftruncate(fd, 0), 0);
			cr_assert_eq(pwrite(fd, buf, sz, 0), (ssize_t)sz);
			int rc = open_rc(name);
			cr_expect(rc < 0 && validation_error(rc),
				  "random object of %zu bytes, round %d (seed %#llx): got %d (%s)",
				  sz, round, (unsigned long long)seed, rc, shmring_strerror(rc));
			if (sz < sizeof(struct shm_header) || round == 0)
				cr_expect_eq(rc, -EPROTO, "size %zu round %d: %d", sz, round, rc);
			else if (round == 1)
				cr_expect_eq(rc, -EPROTONOSUPPORT, "round 1: %d", rc);
		}
	}
	close(fd);
}

/* Random multi-field corruption: never a crash; an accepted header must be
 * one the layout allows, and the handle must report it. */
Test(corrupt, random_fields_fuzz)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *r = create_named(name, CORRUPT_CAP, CORRUPT_SLOTS);
	ASSERT_RC(shmring_close(r), 0);
	int fd = shm_rw(name);
	struct shm_header good;
	cr_assert_eq(pread(fd, &good, sizeof(good), 0), (ssize_t)sizeof(good));
	struct shm_geom g;
	shm_geometry(&g, CORRUPT_CAP, CORRUPT_SLOTS, page());
	uint64_t seed = test_env("SHMRING_TEST_SEED", 0xf022ull) | 1;
	uint64_t s = seed;
	const size_t nf = sizeof(fields) / sizeof(fields[0]);
	unsigned accepted = 0;
	for (int it = 0; it < 3000; it++) {
		cr_assert_eq(pwrite(fd, &good, sizeof(good), 0), (ssize_t)sizeof(good));
		unsigned nmut = 1 + (unsigned)(xorshift(&s) % 4);
		for (unsigned m = 0; m < nmut; m++) {
			const struct field *f = &fields[xorshift(&s) % nf];
			uint64_t orig = get_field(fd, f->off, f->width);
			uint64_t v[64];
			size_t n = wrong_values(f, orig, &g, v);
			uint64_t pick = xorshift(&s);
			uint64_t val = (pick & 1) ? v[(pick >> 1) % n] : xorshift(&s);
			put_field(fd, f->off, f->width, val);
		}
		int rc = shmring_open(name, &r);
		if (rc != 0) {
			cr_expect(validation_error(rc), "iteration %d (seed %#llx): got %d (%s)",
				  it, (unsigned long long)seed, rc, shmring_strerror(rc));
			continue;
		}
		accepted++;
		struct shm_header h;
		cr_assert_eq(pread(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
		struct shm_geom hg;
		shm_geometry(&hg, h.capacity, h.nslots, page());
		cr_expect(h.version == SHMRING_LAYOUT_VERSION &&
			  h.header_size == sizeof(h) && h.page_size == page() &&
			  h.slot_size == SLOT_SIZE && h.policy == 0 &&
			  (h.flags == 0 || h.flags == SHMRING_INLINE_SMALL) &&
			  h.prod_off == hg.prod_off && h.ctab_off == hg.ctab_off &&
			  h.data_off == hg.data_off && h.total_size == hg.total_size &&
			  h.max_message == hg.max_message &&
			  h.total_size == (uint64_t)fd_size(fd),
			  "iteration %d (seed %#llx): an inconsistent header was accepted", it,
			  (unsigned long long)seed);
		struct shmring_info in;
		ASSERT_RC(shmring_info(r, &in), 0);
		cr_expect_eq(in.capacity, h.capacity);
		cr_expect_eq(in.max_consumers, h.nslots);
		cr_expect_eq(in.max_message, h.max_message);
		ASSERT_RC(shmring_close(r), 0);
	}
	cr_log_info("fuzz: %u of 3000 corrupt headers were self-consistent and opened",
		    accepted);
	cr_assert_eq(pwrite(fd, &good, sizeof(good), 0), (ssize_t)sizeof(good));
	ASSERT_RC(open_rc(name), 0);
	close(fd);
}

/* ---- 5. storage --------------------------------------------------------- */

static void check_allocated(int fd, const char *what)
{
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert(st.st_size > 0);
	cr_assert((uint64_t)st.st_blocks * 512 >= (uint64_t)st.st_size,
		  "%s: %lld bytes allocated for a %lld-byte object", what,
		  (long long)st.st_blocks * 512, (long long)st.st_size);
}

Test(storage, allocated_at_creation)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *r = create_named(name, 1u << 20, 16);
	check_allocated(shmring_fd(r), "named ring");
	struct shmring *b = NULL;
	ASSERT_RC(shmring_open(name, &b), 0);
	check_allocated(shmring_fd(b), "named ring, reopened");
	ASSERT_RC(shmring_close(b), 0);
	ASSERT_RC(shmring_close(r), 0);

	struct shmring_opts o = test_opts(1u << 20, 16);
	ASSERT_RC(shmring_create_anon("alloc", &o, &r), 0);
	check_allocated(shmring_fd(r), "anonymous ring");
	ASSERT_RC(shmring_close(r), 0);

	/* The check itself can fail: a merely truncated object is sparse. */
	char sparse[64];
	test_ring_name(sparse, sizeof(sparse));
	int fd = shm_open(sparse, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert(fd >= 0);
	cr_assert_eq(ftruncate(fd, 1 << 20), 0);
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert((uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size);
	close(fd);
}

/* Positions are byte counts of 8-aligned records: a tail that is not a
 * record boundary is corruption, refused by producer and consumer alike
 * (reading a header there would be a misaligned access). */
Test(corrupt, misaligned_tail_refused)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct shmring *r = create_named(name, 4096, 4);
	int fd = shm_rw(name);
	struct shm_geom g;
	shm_geometry(&g, 4096, 4, page());
	uint8_t *m = mmap(NULL, g.ctab_off, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(m, MAP_FAILED);
	struct shm_prod *prod = (struct shm_prod *)(m + g.prod_off);
	atomic_store(&prod->tail, 13);
	struct shmring_producer *p = NULL;
	struct shmring_consumer *c = NULL;
	ASSERT_RC(shmring_producer_open(r, &p), -EPROTO);
	ASSERT_RC(shmring_consumer_open(r, 0, &c), -EPROTO);
	struct shmring_info in;
	ASSERT_RC(shmring_info(r, &in), 0);
	cr_assert_eq(in.consumers, 0, "a refused consumer must not keep its slot");
	cr_assert_eq(in.producer, 0, "a refused producer must not keep the role");
	/* Repaired, the ring works again. */
	atomic_store(&prod->tail, 16);
	ASSERT_RC(shmring_producer_open(r, &p), 0);
	ASSERT_RC(shmring_consumer_open(r, 0, &c), 0);
	ASSERT_RC(shmring_send(p, "ok", 2), 0);
	char buf[8];
	size_t len;
	ASSERT_RC(shmring_recv(c, buf, sizeof(buf), &len), 0);
	cr_assert_eq(len, 2);
	ASSERT_RC(shmring_consumer_close(c), 0);
	ASSERT_RC(shmring_producer_close(p), 0);
	ASSERT_RC(shmring_close(r), 0);
	munmap(m, g.ctab_off);
	close(fd);
}
