/* SPDX-License-Identifier: MIT */
/* Description: security properties with real processes and the real kernel: permissions of named rings against another uid (mode applied exactly, umask ignored), name validation and path traversal, a full /dev/shm (-ENOSPC at creation, never SIGBUS later, in a private mount namespace), consumers' read-only mappings (writes die with SIGSEGV and change nothing), and a consumer that writes garbage into its own cursor slot while the producer and a well-behaved consumer carry on. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/magic.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "internal.h"
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

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

/* Children report through a pipe: a message, then their exit status
 * (0 = passed, 1 = failed, 77 = the test must be skipped). */
#define CHILD_SKIP 77
static int report_fd = -1;

__attribute__((format(printf, 1, 2))) static void child_say(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	for (int off = 0; off < n;) {
		ssize_t w = write(report_fd, buf + off, (size_t)(n - off));
		if (w <= 0)
			break;
		off += (int)w;
	}
}

#define CHILD_FAIL(...)                                                        \
	do {                                                                   \
		child_say("line %d: ", __LINE__);                              \
		child_say(__VA_ARGS__);                                        \
		_exit(1);                                                      \
	} while (0)

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond))                                                   \
			CHILD_FAIL(__VA_ARGS__);                               \
	} while (0)

#define CHECK_RC(expr, want)                                                   \
	do {                                                                   \
		int got_ = (expr);                                             \
		int want_ = (want);                                            \
		if (got_ != want_)                                             \
			CHILD_FAIL("%s: got %d (%s), want %d (%s)", #expr,     \
				   got_, shmring_strerror(got_), want_,        \
				   shmring_strerror(want_));                   \
	} while (0)

#define CHILD_SKIP_TEST(...)                                                   \
	do {                                                                   \
		child_say(__VA_ARGS__);                                        \
		_exit(CHILD_SKIP);                                             \
	} while (0)

struct child {
	pid_t pid;
	int rfd;
};

/* Runs fn(arg) in a child that dies with the test process. */
static struct child child_start(void (*fn)(void *), void *arg)
{
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0, "pipe2: %s", strerror(errno));
	pid_t parent = getpid();
	pid_t pid = fork();
	cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(p[0]);
		report_fd = p[1];
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		fn(arg);
		_exit(0);
	}
	close(p[1]);
	return (struct child){ pid, p[0] };
}

/* Reads the child's report to the end, reaps it and returns the raw wait
 * status. */
static int child_end(struct child *c, char *msg, size_t n)
{
	size_t len = 0;
	for (;;) {
		ssize_t r = read(c->rfd, msg + len, n - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len == n - 1)
			break;
	}
	msg[len] = '\0';
	close(c->rfd);
	int st;
	while (waitpid(c->pid, &st, 0) < 0)
		cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
	return st;
}

static const char *status_str(int st, char *buf, size_t n)
{
	if (WIFEXITED(st))
		snprintf(buf, n, "exited with %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else
		snprintf(buf, n, "wait status %#x", st);
	return buf;
}

/* Waits for a child that must pass (or ask to skip the test). */
static void child_ok(struct child *c, const char *what)
{
	char msg[2048], sb[96];
	int st = child_end(c, msg, sizeof(msg));
	if (WIFEXITED(st) && WEXITSTATUS(st) == CHILD_SKIP)
		cr_skip_test("%s: %s", what, msg);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: child %s: %s", what,
		  status_str(st, sb, sizeof(sb)), msg);
}

/* Memory shared with the children, for results and commands. */
static void *shared_page(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(p, MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / NS_PER_S), (long)(ns % NS_PER_S) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static struct shmring *create_named(const char *name, uint64_t cap, uint32_t ncons,
				    uint32_t mode)
{
	struct shmring_opts o = test_opts(cap, ncons);
	o.mode = mode;
	struct shmring *r = NULL;
	ASSERT_RC(shmring_create(name, &o, &r), 0);
	cr_assert_not_null(r);
	return r;
}

static void shm_path(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "/dev/shm/%s", name + 1);
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

/* ---- 1. permissions ----------------------------------------------------- */

struct perm_args {
	char n600[64], n644[64], n666[64];
	uid_t uid;
	gid_t gid;
	int ready[2];           /* child -> parent: consumer attached */
	uint64_t cap;
	char msg[64];
};

static void drop_to(uid_t uid, gid_t gid)
{
	CHECK(setgroups(0, NULL) == 0, "setgroups: %s", strerror(errno));
	CHECK(setgid(gid) == 0, "setgid(%d): %s", (int)gid, strerror(errno));
	CHECK(setuid(uid) == 0, "setuid(%d): %s", (int)uid, strerror(errno));
	CHECK(getuid() == uid && geteuid() == uid && getgid() == gid && getegid() == gid,
	      "still privileged after dropping");
	CHECK(setuid(0) == -1, "could become root again after dropping");
}

static void perm_child(void *arg)
{
	struct perm_args *a = arg;
	close(a->ready[0]);
	drop_to(a->uid, a->gid);
	struct shmring *r = NULL;
	char path[128];

	/* 0600, owned by root: no access at all. */
	CHECK_RC(shmring_open(a->n600, &r), -EACCES);
	CHECK(r == NULL, "a refused open set *ring");
	shm_path(path, sizeof(path), a->n600);
	CHECK(open(path, O_RDONLY) == -1 && errno == EACCES,
	      "the kernel let user %d read a 0600 object of root's", (int)a->uid);
	CHECK_RC(shmring_unlink(a->n600), -EACCES);

	/* 0644: shmring_open needs read-write: permission denied.  A
	 * read-only fd is readable, and gives a handle that may only read
	 * the ring's state: endpoints on it get -EACCES (documented at
	 * shmring_open_fd()). */
	CHECK_RC(shmring_open(a->n644, &r), -EACCES);
	shm_path(path, sizeof(path), a->n644);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0, "open(%s, O_RDONLY) as user %d: %s", path, (int)a->uid, strerror(errno));
	CHECK_RC(shmring_open_fd(fd, &r), 0);
	close(fd);
	struct shmring_info in;
	CHECK_RC(shmring_info(r, &in), 0);
	CHECK(in.capacity == a->cap, "info through a read-only fd: capacity %llu",
	      (unsigned long long)in.capacity);
	struct shmring_producer *p = NULL;
	struct shmring_consumer *c = NULL;
	CHECK_RC(shmring_producer_open(r, &p), -EACCES);
	CHECK_RC(shmring_consumer_open(r, SHMRING_START_NEWEST, &c), -EACCES);
	CHECK_RC(shmring_group_open(r, "g", SHMRING_START_NEWEST, &c), -EACCES);
	CHECK_RC(shmring_close(r), 0);
	CHECK_RC(shmring_unlink(a->n644), -EACCES);

	/* 0666: anyone may attach, and receives what root's producer sends. */
	CHECK_RC(shmring_open(a->n666, &r), 0);
	CHECK_RC(shmring_consumer_open(r, SHMRING_START_NEWEST, &c), 0);
	CHECK_RC(shmring_producer_open(r, &p), -EBUSY);
	CHECK(write(a->ready[1], "r", 1) == 1, "write: %s", strerror(errno));
	struct timespec dl;
	shmring_deadline(&dl, 10 * NS_PER_S);
	char buf[128];
	size_t len = 0;
	CHECK_RC(shmring_recv_wait(c, buf, sizeof(buf), &len, &dl), 0);
	CHECK(len == strlen(a->msg) && memcmp(buf, a->msg, len) == 0,
	      "received %zu bytes \"%.*s\", want \"%s\"", len, (int)len, buf, a->msg);
	CHECK_RC(shmring_consumer_close(c), 0);
	CHECK_RC(shmring_close(r), 0);
}

static void check_object_mode(const char *name, mode_t want)
{
	char path[128];
	shm_path(path, sizeof(path), name);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "stat(%s): %s", path, strerror(errno));
	cr_assert_eq(st.st_mode & 07777, want, "%s has mode %#o, want %#o (umask %#o)", path,
		     (unsigned)(st.st_mode & 07777), (unsigned)want, 077u);
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(st.st_uid, geteuid());
}

Test(permissions, other_uid, .timeout = 60)
{
	if (geteuid() != 0)
		cr_skip_test("not root: cannot switch to user nobody to test permissions");
	struct passwd *pw = getpwnam("nobody");
	if (!pw)
		cr_skip_test("no user \"nobody\" in the password database");
	cr_assert_neq(pw->pw_uid, 0);

	struct perm_args *a = shared_page(sizeof(*a));
	a->uid = pw->pw_uid;
	a->gid = pw->pw_gid;
	a->cap = 8192;
	snprintf(a->msg, sizeof(a->msg), "for anybody, from uid %d", (int)geteuid());
	test_ring_name(a->n600, sizeof(a->n600));
	test_ring_name(a->n644, sizeof(a->n644));
	test_ring_name(a->n666, sizeof(a->n666));

	/* The mode is applied exactly: umask 077 would otherwise strip the
	 * group and other bits. */
	mode_t old = umask(077);
	struct shmring *r600 = create_named(a->n600, a->cap, 2, 0600);
	struct shmring *r644 = create_named(a->n644, a->cap, 2, 0644);
	struct shmring *r666 = create_named(a->n666, a->cap, 2, 0666);
	umask(old);
	check_object_mode(a->n600, 0600);
	check_object_mode(a->n644, 0644);
	check_object_mode(a->n666, 0666);

	struct shmring_producer *p = NULL;
	ASSERT_RC(shmring_producer_open(r666, &p), 0);
	cr_assert_eq(pipe2(a->ready, O_CLOEXEC), 0);
	struct child ch = child_start(perm_child, a);
	close(a->ready[1]);
	char rd;
	ssize_t n = read(a->ready[0], &rd, 1);
	close(a->ready[0]);
	if (n == 1)
		ASSERT_RC(shmring_send(p, a->msg, strlen(a->msg)), 0);
	child_ok(&ch, "as user nobody");
	cr_assert_eq(n, 1, "the child never attached");

	/* Nothing the child tried changed the rings. */
	cr_assert_eq(shm_exists(a->n600), 1);
	cr_assert_eq(shm_exists(a->n644), 1);
	check_object_mode(a->n600, 0600);
	check_object_mode(a->n644, 0644);
	struct shmring_info in;
	ASSERT_RC(shmring_info(r666, &in), 0);
	cr_assert_eq(in.consumers, 0, "the child's consumer is gone");
	ASSERT_RC(shmring_info(r644, &in), 0);
	cr_assert_eq(in.consumers, 0);
	cr_assert_eq(in.producer, 0);
	ASSERT_RC(shmring_producer_close(p), 0);
	ASSERT_RC(shmring_close(r600), 0);
	ASSERT_RC(shmring_close(r644), 0);
	ASSERT_RC(shmring_close(r666), 0);
	munmap(a, sizeof(*a));
}

/* ---- 2. names ----------------------------------------------------------- */

struct file_id {
	dev_t dev;
	ino_t ino;
	mode_t mode;
	off_t size;
	struct timespec mtim, ctim;
};

static struct file_id file_id(const char *path)
{
	struct stat st;
	cr_assert_eq(lstat(path, &st), 0, "lstat(%s): %s", path, strerror(errno));
	return (struct file_id){ st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_mtim,
				 st.st_ctim };
}

static void same_file(const char *path, const struct file_id *was)
{
	struct file_id now = file_id(path);
	cr_assert(now.dev == was->dev && now.ino == was->ino, "%s was replaced", path);
	cr_assert_eq(now.mode, was->mode, "%s: mode %#o, was %#o", path, (unsigned)now.mode,
		     (unsigned)was->mode);
	cr_assert_eq(now.size, was->size, "%s: size %lld, was %lld", path, (long long)now.size,
		     (long long)was->size);
	cr_assert(now.mtim.tv_sec == was->mtim.tv_sec && now.mtim.tv_nsec == was->mtim.tv_nsec,
		  "%s was modified", path);
	cr_assert(now.ctim.tv_sec == was->ctim.tv_sec && now.ctim.tv_nsec == was->ctim.tv_nsec,
		  "%s had its inode changed (chmod, truncate, ...)", path);
}

static int path_exists(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0)
		return 1;
	cr_assert_eq(errno, ENOENT, "lstat(%s): %s", path, strerror(errno));
	return 0;
}

/* create, open and unlink each refuse `name` with `want`; create does not
 * set *ring. */
static void refuse_name(const char *name, int want)
{
	struct shmring *r = NULL;
	int rc = shmring_create(name, NULL, &r);
	cr_expect_eq(rc, want, "shmring_create(\"%s\"): got %d (%s), want %d (%s)", name, rc,
		     shmring_strerror(rc), want, shmring_strerror(want));
	if (rc == 0) {
		shmring_close(r);
		shm_unlink(name);
	}
	cr_expect(rc == 0 || r == NULL, "a refused create(\"%s\") set *ring", name);
	r = NULL;
	rc = shmring_open(name, &r);
	cr_expect_eq(rc, want, "shmring_open(\"%s\"): got %d (%s), want %d (%s)", name, rc,
		     shmring_strerror(rc), want, shmring_strerror(want));
	if (rc == 0)
		shmring_close(r);
	rc = shmring_unlink(name);
	cr_expect_eq(rc, want, "shmring_unlink(\"%s\"): got %d (%s), want %d (%s)", name, rc,
		     shmring_strerror(rc), want, shmring_strerror(want));
}

Test(names, malformed)
{
	char base[64], buf[512];
	test_ring_name(base, sizeof(base));
	char dshm[600];

	/* Empty, and only slashes. */
	refuse_name("", -EINVAL);
	refuse_name("/", -EINVAL);
	refuse_name("//", -EINVAL);
	refuse_name("///", -EINVAL);

	/* No leading slash: refused, and no object of the bare name made. */
	refuse_name(base + 1, -EINVAL);
	snprintf(dshm, sizeof(dshm), "/dev/shm/%s", base + 1);
	cr_assert_eq(path_exists(dshm), 0, "%s was created", dshm);

	/* An inner slash, also after a double leading one. */
	snprintf(buf, sizeof(buf), "%s/x", base);
	refuse_name(buf, -EINVAL);
	snprintf(dshm, sizeof(dshm), "/dev/shm/%s", base + 1);
	cr_assert_eq(path_exists(dshm), 0, "%s was created", dshm);
	snprintf(buf, sizeof(buf), "/%s", base);
	refuse_name(buf, -EINVAL);
	cr_assert_eq(path_exists(dshm), 0, "%s was created", dshm);
	snprintf(buf, sizeof(buf), "%s/", base);
	refuse_name(buf, -EINVAL);
	cr_assert_eq(path_exists(dshm), 0, "%s was created", dshm);

	/* Longer than NAME_MAX (255 bytes with the slash). */
	static const size_t lens[] = { NAME_MAX + 1, NAME_MAX + 2, 300, 511 };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t bl = strlen(base);
		memcpy(buf, base, bl);
		memset(buf + bl, 'y', lens[i] - bl);
		buf[lens[i]] = '\0';
		refuse_name(buf, -ENAMETOOLONG);
	}
	/* The documented limit itself is accepted (and removed again). */
	size_t bl = strlen(base);
	memcpy(buf, base, bl);
	memset(buf + bl, 'z', NAME_MAX - bl);
	buf[NAME_MAX] = '\0';
	struct shmring_opts o = test_opts(4096, 1);
	struct shmring *r = NULL;
	int rc = shmring_create(buf, &o, &r);
	if (rc == 0) {
		ASSERT_RC(shmring_close(r), 0);
		ASSERT_RC(shmring_unlink(buf), 0);
	}
	cr_assert_eq(rc, 0, "a %d-byte name: %d (%s)", NAME_MAX, rc, shmring_strerror(rc));
}

/* "." and ".." have no slash but are directories to the system. */
Test(names, dot_names)
{
	cr_assert_eq(path_exists("/dev/shm"), 1);
	struct file_id shm = file_id("/dev/shm");
	struct file_id dev = file_id("/dev");
	refuse_name("/.", -EINVAL);
	refuse_name("/..", -EINVAL);
	same_file("/dev", &dev);
	struct file_id now = file_id("/dev/shm");
	cr_assert(now.ino == shm.ino && now.mode == shm.mode, "/dev/shm was changed");
}

/* Files outside /dev/shm made for the traversal tests, removed at exit. */
static char outside[4][128];
static int noutside;
static pid_t outside_pid;

static void unlink_outside(void)
{
	if (getpid() != outside_pid)
		return;
	for (int i = 0; i < noutside; i++)
		unlink(outside[i]);
}

static const char *outside_path(const char *tag)
{
	cr_assert(noutside < 4);
	if (outside_pid != getpid()) {
		outside_pid = getpid();
		noutside = 0;
		atexit(unlink_outside);
	}
	char *p = outside[noutside++];
	snprintf(p, sizeof(outside[0]), "/tmp/shmring-test-%d-%s", (int)getpid(), tag);
	return p;
}

static void read_file(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert(fd >= 0, "open(%s): %s", path, strerror(errno));
	ssize_t got = read(fd, buf, n - 1);
	cr_assert(got >= 0);
	buf[got] = '\0';
	close(fd);
}

Test(names, traversal_outside_dev_shm)
{
	/* /etc/passwd: neither created, opened, truncated nor removed. */
	struct file_id pw = file_id("/etc/passwd");
	refuse_name("/../etc/passwd", -EINVAL);
	refuse_name("//../etc/passwd", -EINVAL);
	refuse_name("/../../../../etc/passwd", -EINVAL);
	refuse_name("/./../etc/passwd", -EINVAL);
	same_file("/etc/passwd", &pw);

	/* A file of ours outside /dev/shm, and a name that does not exist
	 * yet: both must stay as they are. */
	const char *victim = outside_path("victim");
	static const char content[] = "must not change\n";
	int fd = open(victim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	cr_assert(fd >= 0, "open(%s): %s", victim, strerror(errno));
	cr_assert_eq(write(fd, content, sizeof(content) - 1), (ssize_t)sizeof(content) - 1);
	close(fd);
	struct file_id vid = file_id(victim);
	const char *fresh = outside_path("fresh");
	char name[256];
	snprintf(name, sizeof(name), "/..%s", victim);
	refuse_name(name, -EINVAL);
	snprintf(name, sizeof(name), "/../..%s", fresh);
	refuse_name(name, -EINVAL);
	same_file(victim, &vid);
	char buf[64];
	read_file(victim, buf, sizeof(buf));
	cr_assert_str_eq(buf, content);
	cr_assert_eq(path_exists(fresh), 0, "%s was created through a traversal name", fresh);

	/* A symbolic link planted in /dev/shm under a ring's name: create
	 * must not write through it (O_EXCL), open must not accept the
	 * target as a ring, and unlink removes the link, not the target. */
	char lname[64], lpath[128];
	test_ring_name(lname, sizeof(lname));
	shm_path(lpath, sizeof(lpath), lname);
	cr_assert_eq(symlink(victim, lpath), 0, "symlink: %s", strerror(errno));
	struct shmring *r = NULL;
	struct shmring_opts o = test_opts(4096, 1);
	o.mode = 0666;
	ASSERT_RC(shmring_create(lname, &o, &r), -EEXIST);
	int rc = shmring_open(lname, &r);
	if (rc == 0)
		shmring_close(r);
	cr_assert(rc < 0, "shmring_open accepted a link to a regular file as a ring");
	same_file(victim, &vid);
	read_file(victim, buf, sizeof(buf));
	cr_assert_str_eq(buf, content);
	ASSERT_RC(shmring_unlink(lname), 0);
	cr_assert_eq(path_exists(lpath), 0);
	same_file(victim, &vid);
	cr_assert_eq(unlink(victim), 0);
}

/* ---- 3. a full /dev/shm -------------------------------------------------- */

#define SMALL_SHM (1u << 20)

static uint64_t shm_free_bytes(void)
{
	struct statfs sf;
	CHECK(statfs("/dev/shm", &sf) == 0, "statfs: %s", strerror(errno));
	return (uint64_t)sf.f_bavail * (uint64_t)sf.f_bsize;
}

/* Entries of /dev/shm other than "." and "..". */
static int shm_entries(char *list, size_t n)
{
	DIR *d = opendir("/dev/shm");
	CHECK(d != NULL, "opendir: %s", strerror(errno));
	int count = 0;
	size_t len = 0;
	list[0] = '\0';
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		count++;
		int w = snprintf(list + len, n - len, " %s", e->d_name);
		if (w > 0 && (size_t)w < n - len)
			len += (size_t)w;
	}
	closedir(d);
	return count;
}

static void expect_gone(const char *name)
{
	int fd = shm_open(name, O_RDONLY, 0);
	CHECK(fd < 0 && errno == ENOENT, "a failed create left %s behind (shm_open: %s)", name,
	      fd < 0 ? strerror(errno) : "opened");
}

/* Fills the ring through an idle consumer until -EAGAIN, then reads it all
 * back and checks every message.  Returns the number of messages. */
static uint64_t fill_and_drain(struct shmring_producer *p, struct shmring_consumer *c,
			       uint64_t cap, uint64_t seq0, uint64_t seed)
{
	static uint8_t buf[8192];
	const size_t max_len = 4000;
	uint64_t seq = seq0, bytes = 0;
	for (;;) {
		size_t len = msg_len(seed, seq, max_len);
		msg_fill(buf, len, seq);
		int rc = shmring_send(p, buf, len);
		if (rc == -EAGAIN)
			break;
		CHECK(rc == 0, "send of message %llu: %d (%s)", (unsigned long long)seq, rc,
		      shmring_strerror(rc));
		bytes += SHMRING_RECORD_SIZE(len);
		seq++;
	}
	CHECK(bytes <= cap && bytes + SHMRING_RECORD_SIZE(max_len) > cap,
	      "the ring took %llu bytes of records before -EAGAIN, capacity %llu",
	      (unsigned long long)bytes, (unsigned long long)cap);
	for (uint64_t s = seq0; s < seq; s++) {
		size_t len = 0;
		CHECK_RC(shmring_recv(c, buf, sizeof(buf), &len), 0);
		int m = msg_check(buf, len, seed, s, max_len);
		CHECK(m == MSG_OK, "message %llu read back: %s", (unsigned long long)s,
		      msg_strerror(m));
	}
	size_t len = 0;
	CHECK_RC(shmring_recv(c, buf, sizeof(buf), &len), -EAGAIN);
	return seq - seq0;
}

static void full_shm_child(void *arg)
{
	(void)arg;
	if (unshare(CLONE_NEWNS) != 0)
		CHILD_SKIP_TEST("unshare(CLONE_NEWNS): %s (needs CAP_SYS_ADMIN; restricted "
				"container?)", strerror(errno));
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		CHILD_SKIP_TEST("mount(MS_REC|MS_PRIVATE): %s", strerror(errno));
	if (mount("shmring-test", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
		  "size=1m,mode=1777") != 0)
		CHILD_SKIP_TEST("mount tmpfs on /dev/shm: %s", strerror(errno));
	/* Make sure the small, empty, private tmpfs is what we will fill. */
	struct statfs sf;
	CHECK(statfs("/dev/shm", &sf) == 0, "statfs: %s", strerror(errno));
	CHECK(sf.f_type == TMPFS_MAGIC, "/dev/shm is not a tmpfs");
	uint64_t total = (uint64_t)sf.f_blocks * (uint64_t)sf.f_bsize;
	CHECK(total == SMALL_SHM, "/dev/shm has %llu bytes, want %u", (unsigned long long)total,
	      SMALL_SHM);
	char list[1024];
	CHECK(shm_entries(list, sizeof(list)) == 0, "the new /dev/shm is not empty:%s", list);

	/* 4 MiB in 1 MiB: refused at creation, nothing left, no space kept. */
	struct shmring_opts o = test_opts(4u << 20, 0);
	struct shmring *r = NULL;
	CHECK_RC(shmring_create("/big", &o, &r), -ENOSPC);
	CHECK(r == NULL, "a failed create set *ring");
	expect_gone("/big");
	CHECK(shm_entries(list, sizeof(list)) == 0, "left in /dev/shm:%s", list);
	CHECK(shm_free_bytes() == total, "%llu bytes free after the failed create, want %llu",
	      (unsigned long long)shm_free_bytes(), (unsigned long long)total);
	/* One byte of data too many for what is left: also refused. */
	o = test_opts(1u << 20, 0);
	CHECK_RC(shmring_create("/big", &o, &r), -ENOSPC);
	expect_gone("/big");

	/* 256 KiB fits. */
	const uint64_t cap = 256u << 10;
	o = test_opts(cap, 4);
	CHECK_RC(shmring_create("/ring", &o, &r), 0);
	struct shm_geom g;
	shm_geometry(&g, cap, 4, (uint32_t)sysconf(_SC_PAGESIZE));
	struct stat st;
	CHECK(fstat(shmring_fd(r), &st) == 0, "fstat: %s", strerror(errno));
	CHECK((uint64_t)st.st_size == g.total_size, "object of %lld bytes",
	      (long long)st.st_size);
	CHECK((uint64_t)st.st_blocks * 512 >= g.total_size,
	      "only %llu of %llu bytes allocated at creation",
	      (unsigned long long)st.st_blocks * 512, (unsigned long long)g.total_size);

	/* Now take every remaining byte of /dev/shm with another file. */
	int ffd = open("/dev/shm/filler", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(ffd >= 0, "filler: %s", strerror(errno));
	static char chunk[65536];
	memset(chunk, 0xa5, sizeof(chunk));
	for (size_t sz = sizeof(chunk); sz;) {
		ssize_t w = write(ffd, chunk, sz);
		if (w < 0 && errno == ENOSPC) {
			sz /= 2;
			continue;
		}
		CHECK(w > 0, "filler write: %s", strerror(errno));
	}
	CHECK(shm_free_bytes() == 0, "%llu bytes still free", (unsigned long long)shm_free_bytes());

	/* With nothing free even the smallest ring is refused, cleanly. */
	o = test_opts(4096, 1);
	struct shmring *tiny = NULL;
	CHECK_RC(shmring_create("/tiny", &o, &tiny), -ENOSPC);
	expect_gone("/tiny");

	/* The ring made earlier owns its pages: fill it completely, twice
	 * (the second lap crosses the wrap point), through a second handle
	 * as another process would.  A sparse object would die of SIGBUS
	 * here. */
	struct shmring *r2 = NULL;
	CHECK_RC(shmring_open("/ring", &r2), 0);
	struct shmring_consumer *c = NULL;
	struct shmring_producer *p = NULL;
	CHECK_RC(shmring_consumer_open(r2, SHMRING_START_OLDEST, &c), 0);
	CHECK_RC(shmring_producer_open(r, &p), 0);
	uint64_t n1 = fill_and_drain(p, c, cap, 0, 0xf011);
	uint64_t n2 = fill_and_drain(p, c, cap, n1, 0xf011);
	struct shmring_info in;
	CHECK_RC(shmring_info(r, &in), 0);
	CHECK(in.tail > cap, "two laps reached only position %llu", (unsigned long long)in.tail);
	CHECK_RC(shmring_producer_close(p), 0);
	CHECK_RC(shmring_consumer_close(c), 0);
	CHECK_RC(shmring_close(r2), 0);
	CHECK_RC(shmring_close(r), 0);
	CHECK_RC(shmring_unlink("/ring"), 0);
	close(ffd);
	child_say("%llu + %llu messages filled the ring twice with /dev/shm full",
		  (unsigned long long)n1, (unsigned long long)n2);
}

Test(full_shm, enospc_at_creation_never_sigbus, .timeout = 60)
{
	struct child ch = child_start(full_shm_child, NULL);
	char msg[2048], sb[96];
	int st = child_end(&ch, msg, sizeof(msg));
	if (WIFEXITED(st) && WEXITSTATUS(st) == CHILD_SKIP)
		cr_skip_test("cannot mount a private tmpfs on /dev/shm: %s", msg);
	cr_assert(!(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS),
		  "SIGBUS while writing a ring on a full /dev/shm: its storage was not "
		  "allocated at creation (%s)", msg);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %s: %s",
		  status_str(st, sb, sizeof(sb)), msg);
	cr_log_info("%s", msg);
}

/* ---- 4. read-only mappings of a consumer -------------------------------- */

enum ro_target { RO_DATA, RO_MIRROR, RO_HEADER, RO_PRODUCER };

struct ro_args {
	char name[64];
	enum ro_target target;
};

/* The child writes into message RO_SEQ, which is not at the start of the
 * data area.  Message s has RO_LEN(s) bytes (at least 16, so its sequence
 * number is in its first 8 bytes). */
#define RO_SEQ 7u
#define RO_LEN(s) (64u + 8u * (size_t)(s))

static int ro_is(const void *d, size_t len, uint64_t s)
{
	uint8_t t[256];
	if (len != RO_LEN(s))
		return 0;
	msg_fill(t, len, s);
	return memcmp(d, t, len) == 0;
}

/* Peeks, releasing messages before `want`, until message `want`.  Returns 0,
 * a negative shmring error, or 1 for a message that is not the next one
 * expected (corrupt). */
static int ro_peek(struct shmring_consumer *c, uint64_t want, const void **d, size_t *len)
{
	for (;;) {
		int rc = shmring_peek(c, d, len);
		if (rc)
			return rc;
		uint64_t s = UINT64_MAX;
		if (*len >= 8)
			memcpy(&s, *d, 8);
		if (s > want || !ro_is(*d, *len, s))
			return 1;
		if (s == want)
			return 0;
		shmring_release(c);
	}
}

static void ro_child(void *arg)
{
	const struct ro_args *a = arg;
	/* Die of the signal itself (also under ASan), without a core. */
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	struct rlimit no_core = { 0, 0 };
	setrlimit(RLIMIT_CORE, &no_core);

	/* A process of its own: its own handle, as a separate program has. */
	struct shmring *r = NULL;
	CHECK_RC(shmring_open(a->name, &r), 0);
	struct shmring_consumer *c = NULL;
	CHECK_RC(shmring_consumer_open(r, SHMRING_START_OLDEST, &c), 0);
	const void *d = NULL;
	size_t len = 0;
	CHECK_RC(ro_peek(c, RO_SEQ, &d, &len), 0);

	volatile uint8_t *target = NULL;
	switch (a->target) {
	case RO_DATA:
		target = (volatile uint8_t *)(uintptr_t)d + len / 2;
		break;
	case RO_MIRROR:
		/* The same bytes in the second mapping of the data area. */
		target = (volatile uint8_t *)(uintptr_t)d + r->g.capacity + len / 2;
		CHECK(memcmp((const void *)(uintptr_t)(target - len / 2), d, len) == 0,
		      "the mirror does not show the data");
		break;
	case RO_HEADER:
		target = r->base;
		CHECK(load_relaxed((a64 *)(void *)r->base) == SHMRING_MAGIC,
		      "r->base is not the header");
		break;
	case RO_PRODUCER:
		target = r->base + r->g.prod_off;
		CHECK((const void *)target == (const void *)r->prod &&
		      load_relaxed(&r->prod->tail) >= RO_SEQ * RO_LEN(0),
		      "r->prod is not the producer page");
		break;
	}
	uint8_t old = *target; /* readable: the address is right */
	child_say("read ok; ");
	*target = (uint8_t)~old;
	CHILD_FAIL("writing to a consumer's %s mapping succeeded (byte %#x -> %#x)",
		   a->target == RO_DATA     ? "data"
		   : a->target == RO_MIRROR ? "mirrored data"
		   : a->target == RO_HEADER ? "header"
					    : "producer control",
		   old, *target);
}

static void ro_send(struct shmring_producer *p, uint64_t s)
{
	uint8_t buf[256];
	msg_fill(buf, RO_LEN(s), s);
	ASSERT_RC(shmring_send(p, buf, RO_LEN(s)), 0);
}

static void ro_expect(struct shmring_consumer *c, uint64_t s, const char *who)
{
	const void *d = NULL;
	size_t len = 0;
	int rc = ro_peek(c, s, &d, &len);
	cr_assert_eq(rc, 0, "%s, message %llu: %d (%s)", who, (unsigned long long)s, rc,
		     rc == 1 ? "changed or out of order" : shmring_strerror(rc));
	cr_assert(shmring_release(c) >= 1);
}

/* Runs the child on a ring holding messages 0..RO_SEQ and checks it died of
 * SIGSEGV with the ring unchanged. */
static void ro_test(enum ro_target target)
{
	struct ro_args *a = shared_page(sizeof(*a));
	test_ring_name(a->name, sizeof(a->name));
	a->target = target;
	struct shmring *r = create_named(a->name, 8192, 4, 0600);
	struct shmring_producer *p = NULL;
	ASSERT_RC(shmring_producer_open(r, &p), 0);
	/* This consumer holds every message, so they stay in the ring. */
	struct shmring_consumer *holder = NULL;
	ASSERT_RC(shmring_consumer_open(r, SHMRING_START_NEWEST, &holder), 0);
	for (uint64_t s = 0; s <= RO_SEQ; s++)
		ro_send(p, s);

	int fd = shmring_fd(r);
	struct shm_header hdr_before;
	struct shm_prod prod_before;
	cr_assert_eq(pread(fd, &hdr_before, sizeof(hdr_before), 0), (ssize_t)sizeof(hdr_before));
	cr_assert_eq(pread(fd, &prod_before, sizeof(prod_before), (off_t)r->g.prod_off),
		     (ssize_t)sizeof(prod_before));

	struct child ch = child_start(ro_child, a);
	char msg[2048], sb[96];
	int st = child_end(&ch, msg, sizeof(msg));
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
		  "a consumer wrote to a read-only mapping: child %s, want SIGSEGV: %s",
		  status_str(st, sb, sizeof(sb)), msg);
	cr_assert(strstr(msg, "read ok") != NULL,
		  "the child died before it reached the write: %s", msg);

	/* The ring is intact: header, producer page and the messages. */
	struct shm_header hdr_after;
	struct shm_prod prod_after;
	cr_assert_eq(pread(fd, &hdr_after, sizeof(hdr_after), 0), (ssize_t)sizeof(hdr_after));
	cr_assert_eq(pread(fd, &prod_after, sizeof(prod_after), (off_t)r->g.prod_off),
		     (ssize_t)sizeof(prod_after));
	cr_assert(memcmp(&hdr_before, &hdr_after, sizeof(hdr_after)) == 0, "header changed");
	cr_assert(memcmp(&prod_before, &prod_after, sizeof(prod_after)) == 0,
		  "producer page changed");
	struct shmring *r2 = NULL;
	ASSERT_RC(shmring_open(a->name, &r2), 0);
	struct shmring_consumer *c2 = NULL;
	ASSERT_RC(shmring_consumer_open(r2, SHMRING_START_OLDEST, &c2), 0);
	ro_expect(c2, RO_SEQ, "a second consumer");
	for (uint64_t s = 0; s <= RO_SEQ; s++)
		ro_expect(holder, s, "the first consumer");
	/* And the ring still carries new messages. */
	ro_send(p, RO_SEQ + 1);
	ro_expect(c2, RO_SEQ + 1, "a second consumer");
	ro_expect(holder, RO_SEQ + 1, "the first consumer");

	ASSERT_RC(shmring_consumer_close(c2), 0);
	ASSERT_RC(shmring_close(r2), 0);
	ASSERT_RC(shmring_consumer_close(holder), 0);
	ASSERT_RC(shmring_producer_close(p), 0);
	ASSERT_RC(shmring_close(r), 0);
	munmap(a, sizeof(*a));
}

Test(readonly, consumer_writes_peeked_data)
{
	ro_test(RO_DATA);
}

Test(readonly, consumer_writes_mirrored_data)
{
	ro_test(RO_MIRROR);
}

Test(readonly, consumer_writes_header)
{
	ro_test(RO_HEADER);
}

Test(readonly, consumer_writes_producer_page)
{
	ro_test(RO_PRODUCER);
}

/* ---- 5. a consumer that corrupts its own cursor slot --------------------- */

enum garbage {
	G_POS_ZERO,
	G_POS_MAX,
	G_POS_TAIL1,
	G_POS_FAR,
	G_POS_BEHIND,
	G_POS_ODD,
	G_POS_RANDOM,
	G_STATE_FREE,
	G_STATE_CLAIMED,
	G_STATE_RANDOM,
	G_KIND_GROUP,
	G_KIND_MEMBER,
	G_KIND_RANDOM,
	G_ALL_RANDOM,
	G_GROUP_FIELDS,
	G_COUNT,
	G_REPAIR = 100, /* command: close and reopen the consumer */
};

static const char *const garbage_names[G_COUNT] = {
	"pos = 0",           "pos = UINT64_MAX",   "pos = tail + 1",
	"pos = tail + 4 * capacity", "pos = tail - 4 * capacity", "pos = tail - 3",
	"pos = random",      "state = FREE",       "state = CLAIMED",
	"state = random",    "kind = GROUP",       "kind = MEMBER",
	"kind = random",     "pos, state and kind random",
	"group fields random (members, group, futex, gsleep, name)",
};

/* Writes garbage into the consumer's own cursor slot, as a buggy or hostile
 * consumer process could: the slot is in its writable mapping. */
static void apply_garbage(struct shmring *r, struct shmring_consumer *c, int g, uint64_t *rng)
{
	struct shm_slot *s = c->slot;
	uint64_t tail = load_acquire(&r->prod->tail), cap = r->g.capacity;
	switch (g) {
	case G_POS_ZERO: store_release(&s->pos, 0); break;
	case G_POS_MAX: store_release(&s->pos, UINT64_MAX); break;
	case G_POS_TAIL1: store_release(&s->pos, tail + 1); break;
	case G_POS_FAR: store_release(&s->pos, tail + 4 * cap); break;
	case G_POS_BEHIND: store_release(&s->pos, tail - 4 * cap); break;
	case G_POS_ODD: store_release(&s->pos, tail - 3); break;
	case G_POS_RANDOM: store_release(&s->pos, xorshift(rng)); break;
	case G_STATE_FREE: store_release(&s->state, SLOT_FREE); break;
	case G_STATE_CLAIMED: store_release(&s->state, SLOT_CLAIMED); break;
	case G_STATE_RANDOM: store_release(&s->state, (uint32_t)xorshift(rng)); break;
	case G_KIND_GROUP: store_release(&s->kind, KIND_GROUP); break;
	case G_KIND_MEMBER: store_release(&s->kind, KIND_MEMBER); break;
	case G_KIND_RANDOM: store_release(&s->kind, (uint32_t)xorshift(rng)); break;
	case G_ALL_RANDOM:
		store_release(&s->pos, xorshift(rng));
		store_release(&s->kind, (uint32_t)xorshift(rng));
		/* Half the time ACTIVE, so the producer reads the rest. */
		store_release(&s->state, (xorshift(rng) & 1) ? SLOT_ACTIVE
							     : (uint32_t)xorshift(rng));
		break;
	case G_GROUP_FIELDS:
		/* The rest of its own slot, as a group or a member. */
		store_release(&s->members, xorshift(rng));
		store_release(&s->group, (xorshift(rng) & 1) ? (uint32_t)xorshift(rng)
							     : (uint32_t)(xorshift(rng) % 4));
		store_release(&s->futex, (uint32_t)xorshift(rng));
		store_release(&s->gsleep, (uint32_t)xorshift(rng));
		for (size_t i = 0; i < sizeof(s->name); i++)
			s->name[i] = (char)xorshift(rng);
		store_release(&s->kind, (xorshift(rng) & 1) ? KIND_GROUP : KIND_MEMBER);
		break;
	}
}

struct chaos {
	char name[64];
	uint64_t seed, n, max_len;
	_Atomic int ready;    /* consumers attached */
	_Atomic int stop;     /* the producer is done */
	_Atomic int cmd;      /* stall test: garbage to apply, or G_REPAIR */
	_Atomic int cmd_seq;  /* bumped with each command */
	_Atomic int ack_seq;  /* cmd_seq of the last command carried out */
	_Atomic uint64_t w_got;
	_Atomic uint64_t g_rounds, g_got, g_intact, g_eproto, g_reopen;
};

#define CHAOS_CAP 16384u
#define CHAOS_BUF 16384u

static void reopen(struct shmring *r, struct shmring_consumer **c, struct chaos *x)
{
	CHECK_RC(shmring_consumer_close(*c), 0);
	CHECK_RC(shmring_consumer_open(r, SHMRING_START_NEWEST, c), 0);
	atomic_fetch_add(&x->g_reopen, 1);
}

/* Receives every message in order and checks each one. */
static void good_consumer(void *arg)
{
	struct chaos *x = arg;
	static uint8_t buf[CHAOS_BUF];
	struct shmring *r = NULL;
	struct shmring_consumer *c = NULL;
	CHECK_RC(shmring_open(x->name, &r), 0);
	CHECK_RC(shmring_consumer_open(r, SHMRING_START_NEWEST, &c), 0);
	atomic_fetch_add(&x->ready, 1);
	for (uint64_t seq = 0;; seq++) {
		struct timespec dl;
		shmring_deadline(&dl, 30 * NS_PER_S);
		size_t len = 0;
		int rc = shmring_recv_wait(c, buf, sizeof(buf), &len, &dl);
		if (rc == -EPIPE)
			break;
		CHECK(rc == 0, "good consumer, message %llu: %d (%s)", (unsigned long long)seq,
		      rc, shmring_strerror(rc));
		int m = msg_check(buf, len, x->seed, seq, x->max_len);
		CHECK(m == MSG_OK, "good consumer, message %llu (%zu bytes): %s",
		      (unsigned long long)seq, len, msg_strerror(m));
		atomic_store(&x->w_got, seq + 1);
	}
	CHECK_RC(shmring_consumer_close(c), 0);
	CHECK_RC(shmring_close(r), 0);
}

/* One receive by the garbage consumer: its own data may be lost (or be
 * garbage) and it may get -EPROTO, then it starts afresh.  Returns 1 once
 * the producer has closed the ring. */
static int garbage_recv(struct shmring *r, struct shmring_consumer **c, struct chaos *x,
			uint64_t timeout_ns, const char *what)
{
	static uint8_t buf[CHAOS_BUF];
	struct timespec dl;
	shmring_deadline(&dl, timeout_ns);
	size_t len = 0;
	int rc = shmring_recv_wait(*c, buf, sizeof(buf), &len, &dl);
	if (rc == 0) {
		atomic_fetch_add(&x->g_got, 1);
		uint64_t seq = 0;
		if (len >= 8)
			memcpy(&seq, buf, 8);
		if (msg_check(buf, len, x->seed, seq, x->max_len) == MSG_OK)
			atomic_fetch_add(&x->g_intact, 1);
		return 0;
	}
	if (rc == -ETIMEDOUT || rc == -EAGAIN)
		return 0;
	if (rc == -EPROTO) {
		atomic_fetch_add(&x->g_eproto, 1);
		reopen(r, c, x);
		return 0;
	}
	if (rc == -EPIPE)
		return 1;
	CHILD_FAIL("garbage consumer after \"%s\": shmring_recv_wait gave %d (%s)", what, rc,
		   shmring_strerror(rc));
}

/* Keeps reading while it corrupts its slot with every kind of garbage in
 * turn, then random kinds; after each spell it repairs the slot or starts
 * afresh. */
static void chaos_consumer(void *arg)
{
	struct chaos *x = arg;
	uint64_t rng = (x->seed * 0x9e3779b97f4a7c15ull) | 1;
	struct shmring *r = NULL;
	struct shmring_consumer *c = NULL;
	CHECK_RC(shmring_open(x->name, &r), 0);
	CHECK_RC(shmring_consumer_open(r, SHMRING_START_NEWEST, &c), 0);
	atomic_fetch_add(&x->ready, 1);
	int done = 0;
	for (uint64_t round = 0; !done && !atomic_load(&x->stop); round++) {
		int g = round < 2 * G_COUNT ? (int)(round % G_COUNT)
					    : (int)(xorshift(&rng) % G_COUNT);
		apply_garbage(r, c, g, &rng);
		atomic_fetch_add(&x->g_rounds, 1);
		uint64_t until = test_now_ns() + xorshift(&rng) % (4 * NS_PER_MS);
		do
			done = garbage_recv(r, &c, x, 2 * NS_PER_MS, garbage_names[g]);
		while (!done && test_now_ns() < until);
		if (xorshift(&rng) & 1) {
			reopen(r, &c, x);
		} else {
			/* Put back what the library wrote. */
			store_release(&c->slot->pos, c->cpos);
			store_relaxed(&c->slot->members, 0);
			store_relaxed(&c->slot->gsleep, 0);
			store_relaxed(&c->slot->kind, KIND_BROADCAST);
			store_release(&c->slot->state, SLOT_ACTIVE);
		}
	}
	CHECK_RC(shmring_consumer_close(c), 0);
	CHECK_RC(shmring_close(r), 0);
}

static int wait_ready(struct chaos *x, int n)
{
	uint64_t end = test_now_ns() + 20 * NS_PER_S;
	while (atomic_load(&x->ready) < n) {
		if (test_now_ns() > end)
			return 0;
		sleep_ns(NS_PER_MS);
	}
	return 1;
}

#define SEND_DEADLINE NS_PER_S
#define SEND_SLACK (500 * NS_PER_MS)

/* shmring_send_wait() of message seq with a 1 s deadline: returns its
 * result, or writes why it failed into fail (then returns 1). */
static int timed_send(struct shmring_producer *p, const struct chaos *x, uint64_t seq,
		      char *fail, size_t nfail, const char *during)
{
	static uint8_t buf[CHAOS_BUF];
	size_t len = msg_len(x->seed, seq, x->max_len);
	msg_fill(buf, len, seq);
	uint64_t t0 = test_now_ns();
	struct timespec dl;
	shmring_deadline(&dl, SEND_DEADLINE);
	int rc = shmring_send_wait(p, buf, len, &dl);
	uint64_t dt = test_now_ns() - t0;
	if (rc != 0 && rc != -ETIMEDOUT) {
		snprintf(fail, nfail, "%s: send_wait of message %llu gave %d (%s)", during,
			 (unsigned long long)seq, rc, shmring_strerror(rc));
		return 1;
	}
	if (dt > SEND_DEADLINE + SEND_SLACK) {
		snprintf(fail, nfail, "%s: send_wait of message %llu took %.3f s (rc %d) "
			 "with a deadline of 1 s", during, (unsigned long long)seq, dt / 1e9, rc);
		return 1;
	}
	if (rc == -ETIMEDOUT && dt + NS_PER_MS < SEND_DEADLINE) {
		snprintf(fail, nfail, "%s: send_wait of message %llu gave -ETIMEDOUT after "
			 "%.3f s, before its deadline", during, (unsigned long long)seq, dt / 1e9);
		return 1;
	}
	return rc;
}

/* Ends the producer and both children; asserts the producer's failure (if
 * any), the children's results and that every message reached the good
 * consumer in order. */
static void chaos_finish(struct chaos *x, struct shmring *r, struct shmring_producer *p,
			 struct child *w, struct child *g, const char *fail, uint64_t sent)
{
	ASSERT_RC(shmring_producer_close(p), 0);
	atomic_store(&x->stop, 1);
	char wmsg[2048], gmsg[2048], sb[96], sb2[96];
	int wst = child_end(w, wmsg, sizeof(wmsg));
	int gst = child_end(g, gmsg, sizeof(gmsg));
	cr_assert(!fail[0], "%s (seed %#llx; good consumer %s: %s; garbage consumer %s: %s)",
		  fail, (unsigned long long)x->seed, status_str(wst, sb, sizeof(sb)), wmsg,
		  status_str(gst, sb2, sizeof(sb2)), gmsg);
	cr_assert(WIFEXITED(wst) && WEXITSTATUS(wst) == 0,
		  "good consumer %s: %s (seed %#llx)", status_str(wst, sb, sizeof(sb)), wmsg,
		  (unsigned long long)x->seed);
	cr_assert(WIFEXITED(gst) && WEXITSTATUS(gst) == 0,
		  "garbage consumer %s: %s (seed %#llx)", status_str(gst, sb, sizeof(sb)), gmsg,
		  (unsigned long long)x->seed);
	cr_assert_eq(atomic_load(&x->w_got), sent,
		     "the good consumer received %llu of %llu messages",
		     (unsigned long long)atomic_load(&x->w_got), (unsigned long long)sent);
	struct shmring_info in;
	ASSERT_RC(shmring_info(r, &in), 0);
	cr_assert_eq(in.consumers, 0, "%u consumers still attached", in.consumers);
	ASSERT_RC(shmring_close(r), 0);
}

static struct chaos *chaos_setup(uint64_t n, uint64_t seed)
{
	struct chaos *x = shared_page(sizeof(*x));
	test_ring_name(x->name, sizeof(x->name));
	x->seed = seed;
	x->n = n;
	x->max_len = 300;
	return x;
}

Test(garbage_cursor, while_reading, .timeout = 240)
{
	uint64_t seed = test_env("SHMRING_TEST_SEED", 0x5ecc0de5ull);
	struct chaos *x = chaos_setup(test_env("SHMRING_TEST_SEC_MESSAGES", 100000), seed);
	/* At least this many spells of garbage, each kind several times. */
	uint64_t min_rounds = test_env("SHMRING_TEST_SEC_ROUNDS", 600);
	struct shmring *r = create_named(x->name, CHAOS_CAP, 4, 0600);
	struct shmring_producer *p = NULL;
	ASSERT_RC(shmring_producer_open(r, &p), 0);
	struct child w = child_start(good_consumer, x);
	struct child g = child_start(chaos_consumer, x);
	char fail[512] = "";
	uint64_t sent = 0, timeouts = 0, t0 = test_now_ns();
	if (!wait_ready(x, 2))
		snprintf(fail, sizeof(fail), "the consumers did not attach");
	unsigned consecutive = 0;
	while (!fail[0] && (sent < x->n || atomic_load(&x->g_rounds) < min_rounds)) {
		int rc = timed_send(p, x, sent, fail, sizeof(fail), "garbage consumer reading");
		if (rc == 0) {
			sent++;
			consecutive = 0;
		} else if (rc == -ETIMEDOUT) {
			timeouts++;
			/* The garbage consumer keeps reading and repairs its
			 * slot every few milliseconds: it cannot hold the
			 * producer for seconds. */
			if (++consecutive >= 3)
				snprintf(fail, sizeof(fail), "the producer was held for %u s by a "
					 "corrupt cursor whose owner keeps reading (message %llu)",
					 consecutive, (unsigned long long)sent);
		}
	}
	uint64_t el = test_now_ns() - t0;
	chaos_finish(x, r, p, &w, &g, fail, sent);
	cr_log_info("garbage_cursor.while_reading: %llu messages in %.2f s, %llu producer "
		    "timeouts; garbage consumer: %llu rounds, %llu received (%llu intact), "
		    "%llu -EPROTO, %llu restarts",
		    (unsigned long long)sent, el / 1e9, (unsigned long long)timeouts,
		    (unsigned long long)x->g_rounds, (unsigned long long)x->g_got,
		    (unsigned long long)x->g_intact, (unsigned long long)x->g_eproto,
		    (unsigned long long)x->g_reopen);
	munmap(x, sizeof(*x));
}

/* Corrupts its slot on command, then stops reading altogether until told to
 * start afresh. */
static void stalling_consumer(void *arg)
{
	struct chaos *x = arg;
	uint64_t rng = (x->seed * 0x9e3779b97f4a7c15ull) | 1;
	struct shmring *r = NULL;
	struct shmring_consumer *c = NULL;
	CHECK_RC(shmring_open(x->name, &r), 0);
	CHECK_RC(shmring_consumer_open(r, SHMRING_START_NEWEST, &c), 0);
	atomic_fetch_add(&x->ready, 1);
	int seen = 0;
	while (!atomic_load(&x->stop)) {
		int s = atomic_load(&x->cmd_seq);
		if (s == seen) {
			sleep_ns(NS_PER_MS);
			continue;
		}
		seen = s;
		int g = atomic_load(&x->cmd);
		if (g == G_REPAIR) {
			reopen(r, &c, x);
		} else {
			/* Catch up first, so the cursor is at the tail. */
			for (int i = 0; i < 100000; i++) {
				static uint8_t buf[CHAOS_BUF];
				size_t len = 0;
				int rc = shmring_recv(c, buf, sizeof(buf), &len);
				if (rc == -EAGAIN)
					break;
				CHECK(rc == 0, "stalling consumer catching up: %d (%s)", rc,
				      shmring_strerror(rc));
			}
			apply_garbage(r, c, g, &rng);
			atomic_fetch_add(&x->g_rounds, 1);
		}
		atomic_store(&x->ack_seq, seen);
	}
	CHECK_RC(shmring_consumer_close(c), 0);
	CHECK_RC(shmring_close(r), 0);
}

static int command(struct chaos *x, int cmd)
{
	atomic_store(&x->cmd, cmd);
	int s = atomic_fetch_add(&x->cmd_seq, 1) + 1;
	uint64_t end = test_now_ns() + 10 * NS_PER_S;
	while (atomic_load(&x->ack_seq) != s) {
		if (test_now_ns() > end)
			return 0;
		sleep_ns(100000);
	}
	return 1;
}

Test(garbage_cursor, then_stalls, .timeout = 240)
{
	uint64_t seed = test_env("SHMRING_TEST_SEED", 0x57a11ull);
	struct chaos *x = chaos_setup(0, seed);
	struct shmring *r = create_named(x->name, CHAOS_CAP, 4, 0600);
	struct shmring_producer *p = NULL;
	ASSERT_RC(shmring_producer_open(r, &p), 0);
	struct child w = child_start(good_consumer, x);
	struct child g = child_start(stalling_consumer, x);
	char fail[512] = "", outcome[G_COUNT * 2 + 1] = "";
	uint64_t sent = 0;
	if (!wait_ready(x, 2))
		snprintf(fail, sizeof(fail), "the consumers did not attach");
	for (int k = 0; !fail[0] && k < G_COUNT; k++) {
		if (!command(x, k)) {
			snprintf(fail, sizeof(fail), "the stalling consumer did not apply \"%s\"",
				 garbage_names[k]);
			break;
		}
		/* Send up to three rings' worth while it stalls. */
		uint64_t bytes = 0;
		int blocked = 0;
		while (!fail[0] && bytes < 3 * CHAOS_CAP) {
			int rc = timed_send(p, x, sent, fail, sizeof(fail), garbage_names[k]);
			if (rc == -ETIMEDOUT) {
				blocked = 1;
				break;
			}
			if (rc == 0)
				bytes += SHMRING_RECORD_SIZE(msg_len(x->seed, sent++, x->max_len));
		}
		strcat(outcome, blocked ? "B" : "-");
		if (fail[0])
			break;
		if (!command(x, G_REPAIR)) {
			snprintf(fail, sizeof(fail), "the stalling consumer did not restart");
			break;
		}
		/* Once it has started afresh nothing holds the producer. */
		int rc = timed_send(p, x, sent, fail, sizeof(fail), "after the restart");
		if (rc == 0)
			sent++;
		else if (rc == -ETIMEDOUT)
			snprintf(fail, sizeof(fail), "after \"%s\" and a clean restart of that "
				 "consumer the producer stays blocked", garbage_names[k]);
	}
	chaos_finish(x, r, p, &w, &g, fail, sent);
	cr_log_info("garbage_cursor.then_stalls: %llu messages; producer blocked (B) or not "
		    "(-) by each kind of garbage in turn: %s",
		    (unsigned long long)sent, outcome);
	munmap(x, sizeof(*x));
}

/* ---- 7. a corrupt pad -------------------------------------------------- */

/* A pad (layout.h) is published with the record after it.  A ring whose
 * producer published a pad last, or one that reaches past the tail, holds
 * a pad that cannot be right: broadcast readers and group members get
 * -EPROTO (and nothing is read past the tail). */
Test(corrupt_pad, published_last_is_eproto, .timeout = 10)
{
	struct shmring_opts o = test_opts(4096, 4);
	struct shmring *r = NULL;
	cr_assert_eq(shmring_create_anon("test_pad", &o, &r), 0);
	struct shmring_consumer *c = NULL, *g = NULL;
	cr_assert_eq(shmring_consumer_open(r, SHMRING_START_OLDEST, &c), 0);
	cr_assert_eq(shmring_group_open(r, "g", SHMRING_START_OLDEST, &g), 0);
	struct shmring_producer *p = NULL;
	cr_assert_eq(shmring_producer_open(r, &p), 0);
	uint8_t msg[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	cr_assert_eq(shmring_send(p, msg, sizeof(msg)), 0);
	/* The only record, at position 0, made a pad of the whole lap. */
	struct shm_rec pad = {.len = REC_PAD, .seq = 0};
	memcpy(p->data, &pad, sizeof(pad));

	const void *d = NULL;
	size_t len = 0;
	cr_assert_eq(shmring_peek(c, &d, &len), -EPROTO);
	uint8_t buf[64];
	cr_assert_eq(shmring_recv(c, buf, sizeof(buf), &len), -EPROTO);
	struct shmring_msg m[4];
	cr_assert_eq(shmring_peek_batch(g, m, 4), -EPROTO);
	cr_assert_eq(shmring_recv_batch(g, buf, sizeof(buf), m, 4), -EPROTO);

	/* Made right again, it reads as the message it was. */
	struct shm_rec ok = {.len = sizeof(msg), .seq = 0};
	memcpy(p->data, &ok, sizeof(ok));
	cr_assert_eq(shmring_recv(c, buf, sizeof(buf), &len), 0);
	cr_assert(len == sizeof(msg) && memcmp(buf, msg, len) == 0);
	cr_assert_eq(shmring_peek_batch(g, m, 4), 1);
	cr_assert_eq(shmring_release(g), 1);

	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_consumer_close(g), 0);
	cr_assert_eq(shmring_close(r), 0);
}

/* A one-page anonymous ring with `flags`, a consumer from the oldest
 * record and the producer. */
static void one_page_ring(uint32_t flags, struct shmring **r, struct shmring_consumer **c,
			  struct shmring_producer **p)
{
	struct shmring_opts o = test_opts(4096, 4);
	o.flags = flags;
	cr_assert_eq(shmring_create_anon("test_len", &o, r), 0);
	cr_assert_eq(shmring_consumer_open(*r, SHMRING_START_OLDEST, c), 0);
	cr_assert_eq(shmring_producer_open(*r, p), 0);
}

/* A record whose length reaches past the tail, though it fits the
 * caller's buffer: -EPROTO from every receive, in the one-message fast
 * path too, and nothing past the tail is copied. */
Test(corrupt_pad, length_past_tail_is_eproto, .timeout = 10)
{
	struct shmring *r = NULL;
	struct shmring_consumer *c = NULL;
	struct shmring_producer *p = NULL;
	one_page_ring(0, &r, &c, &p);
	uint8_t msg[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	cr_assert_eq(shmring_send(p, msg, sizeof(msg)), 0);
	/* 16 bytes published; the header now claims 40 bytes of payload. */
	struct shm_rec bad = {.len = 40, .seq = 0};
	memcpy(p->data, &bad, sizeof(bad));

	uint8_t buf[64];
	memset(buf, 0xa5, sizeof(buf));
	size_t len = 0;
	cr_assert_eq(shmring_recv(c, buf, sizeof(buf), &len), -EPROTO);
	cr_assert_eq(shmring_recv_wait(c, buf, sizeof(buf), &len, NULL), -EPROTO);
	for (size_t i = 0; i < sizeof(buf); i++)
		cr_assert_eq(buf[i], 0xa5, "byte %zu of the buffer written", i);

	/* Made right again, it reads as the message it was. */
	struct shm_rec ok = {.len = sizeof(msg), .seq = 0};
	memcpy(p->data, &ok, sizeof(ok));
	cr_assert_eq(shmring_recv(c, buf, sizeof(buf), &len), 0);
	cr_assert(len == sizeof(msg) && memcmp(buf, msg, len) == 0);

	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_close(r), 0);
}

/* SHMRING_INLINE_SMALL: a first record published in place is not taken
 * for a copy; the copy of a small message in the tail's line (layout.h)
 * claims a length over INLINE_MAX, or one that reaches past the tail: a
 * receive does not take it, and reads the record instead. */
Test(corrupt_pad, bad_copy_in_the_tail_line_is_not_taken, .timeout = 10)
{
	struct shmring *r = NULL;
	struct shmring_consumer *c = NULL;
	struct shmring_producer *p = NULL;
	one_page_ring(SHMRING_INLINE_SMALL, &r, &c, &p);
	/* First, a record published in place (no copy) at position 0: the
	 * new ring's zeroed line 0 is not taken for a copy of an empty
	 * message there. */
	uint8_t first[8] = {8, 7, 6, 5, 4, 3, 2, 1}, fbuf[64];
	void *d;
	cr_assert_eq(shmring_reserve(p, sizeof(first), &d), 0);
	memcpy(d, first, sizeof(first));
	cr_assert_eq(shmring_commit(p), 1);
	size_t flen = 0;
	cr_assert_eq(shmring_recv(c, fbuf, sizeof(fbuf), &flen), 0);
	cr_assert(flen == sizeof(first) && memcmp(fbuf, first, flen) == 0, "read %zu bytes", flen);
	static const uint32_t lens[] = {INLINE_MAX + 8, 4096, UINT32_MAX, 24};
	for (unsigned i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint8_t msg[8] = {1, 2, 3, 4, 5, 6, 7, (uint8_t)i};
		uint64_t start = p->prod->tail;
		cr_assert_eq(shmring_send(p, msg, sizeof(msg)), 0);
		cr_assert_eq(p->prod->istart, start, "send %u wrote no copy", i);
		/* The copy now says lens[i] bytes of 0xee: over INLINE_MAX,
		 * or (24) a record of 32 bytes where 16 are published. */
		for (unsigned w = 0; w < INLINE_MAX / 8; w++)
			p->prod->ipay[w] = 0xeeeeeeeeeeeeeeeeull;
		p->prod->ilen = lens[i];
		uint8_t buf[4200];
		memset(buf, 0xa5, sizeof(buf));
		size_t len = 0;
		cr_assert_eq(shmring_recv(c, buf, sizeof(buf), &len), 0);
		cr_assert(len == sizeof(msg) && memcmp(buf, msg, len) == 0,
			  "length %u: read %zu bytes, not the record", lens[i], len);
		for (size_t k = len; k < sizeof(buf); k++)
			cr_assert_eq(buf[k], 0xa5, "length %u: byte %zu written", lens[i], k);
	}
	cr_assert_eq(shmring_producer_close(p), 0);
	cr_assert_eq(shmring_consumer_close(c), 0);
	cr_assert_eq(shmring_close(r), 0);
}
