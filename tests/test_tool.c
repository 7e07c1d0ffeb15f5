/* SPDX-License-Identifier: MIT */
/* Description: the shmring command line tool, run as a process: what it prints on stdout and stderr and its exit status for create, ls, stat (text and JSON), pub, tail (text, hex, binary, group, -f), rm and bench; a missing ring, a file that is not a ring, a ring with a corrupt header, a ring of another user (run as uid nobody), and a producer and a consumer that died. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "internal.h"

/* ---- running the tool --------------------------------------------------- */

struct run {
	int status;             /* exit status, or 128 + signal */
	char *out, *err;        /* NUL-terminated */
	size_t out_len, err_len;
};

/* The tool next to this test: BUILD/tests/test_tool -> BUILD/tools/shmring. */
static const char *tool_path(void)
{
	static char path[PATH_MAX + 32];
	if (path[0])
		return path;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	cr_assert(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	*slash = '\0';
	snprintf(path, sizeof(path), "%s/../tools/shmring", exe);
	cr_assert(access(path, X_OK) == 0, "%s: %s (build it with make tool)", path,
		  strerror(errno));
	return path;
}

static void append(char **buf, size_t *len, const char *p, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	cr_assert(*buf);
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = '\0';
}

/* Starts the tool with args (NULL-terminated), as user uid unless uid is
 * (uid_t)-1.  Sets the pipes' parent ends. */
static pid_t start_tool(uid_t uid, gid_t gid, int *in, int *out, int *err, char *const args[])
{
	int pi[2], po[2], pe[2];
	cr_assert(pipe2(pi, O_CLOEXEC) == 0 && pipe2(po, O_CLOEXEC) == 0 &&
		  pipe2(pe, O_CLOEXEC) == 0);
	char *argv[32];
	int n = 0;
	argv[n++] = (char *)"shmring";
	for (; args[n - 1] && n < 31; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	const char *path = tool_path();
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pi[0], 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		if (uid != (uid_t)-1 &&
		    (setgroups(0, NULL) || setgid(gid) || setuid(uid) || setuid(0) == 0))
			_exit(99);
		execv(path, argv);
		_exit(98);
	}
	close(pi[0]);
	close(po[1]);
	close(pe[1]);
	*in = pi[1];
	*out = po[0];
	*err = pe[0];
	return pid;
}

/* Reads out and err to their ends, then reaps the tool. */
static void finish_tool(pid_t pid, int out, int err, struct run *r)
{
	struct pollfd pf[2] = { { out, POLLIN, 0 }, { err, POLLIN, 0 } };
	int open_fds = 2;
	char buf[65536];
	while (open_fds) {
		int n = poll(pf, 2, -1);
		if (n < 0 && errno == EINTR)
			continue;
		cr_assert(n > 0);
		for (int i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			ssize_t k = read(pf[i].fd, buf, sizeof(buf));
			if (k <= 0) {
				close(pf[i].fd);
				pf[i].fd = -1;
				open_fds--;
			} else if (i == 0) {
				append(&r->out, &r->out_len, buf, (size_t)k);
			} else {
				append(&r->err, &r->err_len, buf, (size_t)k);
			}
		}
	}
	r->status = test_wait(pid);
	cr_assert_neq(r->status, 98, "could not exec the tool");
	cr_assert_neq(r->status, 99, "could not drop privileges");
}

/* Runs the tool to its end with input (may be NULL; a few KiB at most). */
static struct run run_as(uid_t uid, gid_t gid, const void *input, size_t len,
			 char *const args[])
{
	struct run r = { 0 };
	append(&r.out, &r.out_len, "", 0);
	append(&r.err, &r.err_len, "", 0);
	int in, out, err;
	pid_t pid = start_tool(uid, gid, &in, &out, &err, args);
	/* The tool may exit before it reads its input (an error found
	 * first): EPIPE then, not SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	if (input && len) {
		ssize_t n = write(in, input, len);
		cr_assert(n == (ssize_t)len || (n < 0 && errno == EPIPE), "write: %s",
			  strerror(errno));
	}
	close(in);
	finish_tool(pid, out, err, &r);
	return r;
}

#define ARGS(...) ((char *const[]){ __VA_ARGS__, NULL })
#define RUN(...) run_as((uid_t)-1, 0, NULL, 0, ARGS(__VA_ARGS__))
#define RUN_IN(data, len, ...) run_as((uid_t)-1, 0, data, len, ARGS(__VA_ARGS__))

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

static int lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* A failure: the given status, nothing on stdout, exactly one line on
 * stderr that starts with "shmring: " and contains `what`. */
static void expect_error(const struct run *r, int status, const char *what)
{
	cr_assert_eq(r->status, status, "exit status %d, expected %d; stderr: %s", r->status,
		     status, r->err);
	cr_assert_eq(r->out_len, 0, "stdout not empty: %s", r->out);
	cr_assert_eq(lines(r->err), 1, "stderr is not one line: %s", r->err);
	cr_assert(!strncmp(r->err, "shmring: ", 9), "stderr: %s", r->err);
	cr_assert(strstr(r->err, what), "stderr does not say '%s': %s", what, r->err);
}

static void expect_ok(const struct run *r)
{
	cr_assert_eq(r->status, 0, "exit status %d; stderr: %s", r->status, r->err);
	cr_assert_eq(r->err_len, 0, "stderr not empty: %s", r->err);
}

/* The line of `text` that contains `key`, copied into buf, or NULL. */
static const char *line_with(const char *text, const char *key, char *buf, size_t n)
{
	const char *p = strstr(text, key);
	if (!p)
		return NULL;
	while (p > text && p[-1] != '\n')
		p--;
	size_t l = strcspn(p, "\n");
	snprintf(buf, n, "%.*s", (int)l, p);
	return buf;
}

/* Checks that s is one valid JSON value: with python3 if it is installed,
 * else structurally (balanced brackets outside strings, legal escapes, no
 * control characters in strings). */
static void expect_json(const char *s)
{
	if (system("command -v python3 >/dev/null 2>&1") == 0) {
		char tmpl[] = "/tmp/shmring-test-json-XXXXXX";
		int fd = mkstemp(tmpl);
		cr_assert(fd >= 0);
		cr_assert_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
		close(fd);
		char cmd[256];
		snprintf(cmd, sizeof(cmd), "python3 -m json.tool %s >/dev/null", tmpl);
		int rc = system(cmd);
		unlink(tmpl);
		cr_assert_eq(rc, 0, "not valid JSON: %s", s);
		return;
	}
	char stack[64];
	int depth = 0, in_str = 0;
	for (const char *p = s; *p; p++) {
		if (in_str) {
			cr_assert((unsigned char)*p >= 0x20, "control character in a string: %s", s);
			if (*p == '\\') {
				p++;
				cr_assert(*p && strchr("\"\\/bfnrtu", *p), "bad escape: %s", s);
			} else if (*p == '"') {
				in_str = 0;
			}
		} else if (*p == '"') {
			in_str = 1;
		} else if (*p == '{' || *p == '[') {
			cr_assert(depth < 64);
			stack[depth++] = *p;
		} else if (*p == '}' || *p == ']') {
			cr_assert(depth > 0 && stack[depth - 1] == (*p == '}' ? '{' : '['),
				  "unbalanced: %s", s);
			depth--;
		}
	}
	cr_assert(!in_str && depth == 0, "unbalanced: %s", s);
}

/* "/shmring-test-..." without its slash, for checks on /dev/shm. */
static const char *bare(const char *name)
{
	return name + 1;
}

/* ---- help and usage ----------------------------------------------------- */

Test(tool, help_and_usage, .timeout = 60)
{
	struct run r = RUN("--help");
	expect_ok(&r);
	const char *cmds[] = { "ls", "stat", "create", "rm", "pub", "tail", "bench" };
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char key[32];
		snprintf(key, sizeof(key), "\n  %s ", cmds[i]);
		cr_assert(strstr(r.out, key), "--help does not list %s:\n%s", cmds[i], r.out);
		struct run h = RUN((char *)cmds[i], "--help");
		expect_ok(&h);
		snprintf(key, sizeof(key), "usage: shmring %s", cmds[i]);
		cr_assert(!strncmp(h.out, key, strlen(key)), "%s --help: %s", cmds[i], h.out);
		run_free(&h);
	}
	run_free(&r);

	r = RUN("frobnicate");
	expect_error(&r, 2, "unknown command");
	run_free(&r);
	r = RUN("stat");
	expect_error(&r, 2, "expected one ring name");
	run_free(&r);
	r = RUN("stat", "x", "--bogus");
	expect_error(&r, 2, "--bogus");
	run_free(&r);
	r = RUN("create", "x", "--capacity", "12Q");
	expect_error(&r, 2, "bad capacity");
	run_free(&r);
	r = RUN("create", "x", "--policy", "sometimes");
	expect_error(&r, 2, "bad policy");
	run_free(&r);
	r = RUN("create", "x", "--mode", "0999");
	expect_error(&r, 2, "bad mode");
	run_free(&r);
	r = RUN("stat", "a/b");
	expect_error(&r, 2, "bad ring name");
	run_free(&r);

	int v = shmring_version();
	char want[64];
	snprintf(want, sizeof(want), "shmring %d.%d.%d\n", v >> 16, (v >> 8) & 0xff, v & 0xff);
	r = RUN("--version");
	expect_ok(&r);
	cr_assert_str_eq(r.out, want);
	run_free(&r);
}

/* ---- create, ls, stat, pub, tail, rm ------------------------------------ */

/* --inline-small: stored in the ring (stat says so, in text and JSON);
 * refused with the overwrite policy. */
Test(tool, create_inline_small, .timeout = 30)
{
	char name[64], plain[64];
	test_ring_name(name, sizeof(name));
	test_ring_name(plain, sizeof(plain));
	struct run r = RUN("create", name, "--inline-small");
	expect_ok(&r);
	run_free(&r);
	r = RUN("create", plain);
	expect_ok(&r);
	run_free(&r);
	static const struct {
		int flagged, json;
		const char *want;
	} checks[] = { { 1, 0, "policy block, inline small\n" },
		       { 1, 1, "\"inline_small\": true" },
		       { 0, 0, "policy block\n" },
		       { 0, 1, "\"inline_small\": false" } };
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		char *ring = checks[i].flagged ? name : plain;
		r = checks[i].json ? RUN("stat", ring, "--json") : RUN("stat", ring);
		expect_ok(&r);
		cr_assert(strstr(r.out, checks[i].want), "stat%s: no '%s' in %s",
			  checks[i].json ? " --json" : "", checks[i].want, r.out);
		run_free(&r);
	}
	r = RUN("create", "x", "--policy", "overwrite", "--inline-small");
	expect_error(&r, 2, "--inline-small needs --policy block");
	run_free(&r);
	cr_assert_eq(shmring_unlink(name), 0);
	cr_assert_eq(shmring_unlink(plain), 0);
}

Test(tool, round_trip, .timeout = 60)
{
	char name[64], path[128], buf[256];
	test_ring_name(name, sizeof(name));
	snprintf(path, sizeof(path), "/dev/shm/%s", bare(name));

	/* Without the leading slash, mode applied exactly. */
	struct run r = RUN("create", (char *)bare(name), "--capacity", "64K", "--mode", "0640");
	expect_ok(&r);
	cr_assert_eq(r.out_len, 0);
	run_free(&r);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0640);

	r = RUN("create", name);
	expect_error(&r, 1, "already exists");
	run_free(&r);

	r = RUN("ls");
	expect_ok(&r);
	cr_assert(!strncmp(r.out, "NAME ", 5), "ls header: %s", r.out);
	cr_assert(line_with(r.out, name, buf, sizeof(buf)), "ls does not list %s:\n%s", name,
		  r.out);
	cr_assert(strstr(buf, " 64K ") && strstr(buf, " block ") && strstr(buf, " 0% ") &&
		  strstr(buf, " none"), "ls line: %s", buf);
	run_free(&r);

	const char input[] = "alpha\nbeta\n\ngamma delta\nlast line without newline";
	r = RUN_IN(input, strlen(input), "pub", name);
	expect_ok(&r);
	cr_assert_eq(r.out_len, 0);
	run_free(&r);

	r = RUN("stat", "/dev/shm/" "dummy");    /* a full path is accepted... */
	expect_error(&r, 1, "no such ring");  /* ...and names its ring */
	cr_assert(strstr(r.err, "/dummy"), "%s", r.err);
	run_free(&r);

	r = RUN("stat", name);
	expect_ok(&r);
	cr_assert(line_with(r.out, "tail ", buf, sizeof(buf)));
	uint64_t bytes = SHMRING_RECORD_SIZE(5) + SHMRING_RECORD_SIZE(4) + SHMRING_RECORD_SIZE(0) +
			 SHMRING_RECORD_SIZE(11) + SHMRING_RECORD_SIZE(26);
	char want[128];
	snprintf(want, sizeof(want), "tail      %llu bytes, 5 messages",
		 (unsigned long long)bytes);
	cr_assert_str_eq(buf, want);
	cr_assert(strstr(r.out, "\nproducer  closed\n"), "%s", r.out);
	cr_assert(strstr(r.out, "policy block"), "%s", r.out);
	cr_assert(strstr(r.out, "64K (65536 bytes)"), "%s", r.out);
	run_free(&r);

	r = RUN("tail", name);
	expect_ok(&r);
	cr_assert_str_eq(r.out, "alpha\nbeta\n\ngamma delta\nlast line without newline\n");
	run_free(&r);

	r = RUN("tail", name, "--hex", "-n", "2");
	expect_ok(&r);
	cr_assert_str_eq(r.out, "616c706861\n62657461\n");
	run_free(&r);

	/* A group starts at the oldest message too; -n stops it. */
	r = RUN("tail", name, "--group", "g1", "-n", "3");
	expect_ok(&r);
	cr_assert_str_eq(r.out, "alpha\nbeta\n\n");
	run_free(&r);

	/* Nothing new: --new prints nothing and exits 0 at once. */
	r = RUN("tail", name, "--new");
	expect_ok(&r);
	cr_assert_eq(r.out_len, 0);
	run_free(&r);

	r = RUN("rm", name);
	expect_ok(&r);
	run_free(&r);
	cr_assert(access(path, F_OK) != 0 && errno == ENOENT, "rm left %s", path);
	r = RUN("rm", name);
	expect_error(&r, 1, "no such ring");
	run_free(&r);
}

Test(tool, binary_records, .timeout = 60)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct run r = RUN("create", name, "--capacity", "8K");
	expect_ok(&r);
	run_free(&r);

	/* Records with NUL bytes, newlines, an empty one and one of the
	 * largest size allowed. */
	size_t max = 8192 / 2 - 8;
	unsigned char *in = malloc(64 + max), *p = in;
	const char *msgs[] = { "a\nb", "", "x\0y" };
	size_t lens[] = { 3, 0, 3 };
	for (int i = 0; i < 3; i++) {
		*p++ = (unsigned char)lens[i];
		*p++ = 0;
		*p++ = 0;
		*p++ = 0;
		memcpy(p, msgs[i], lens[i]);
		p += lens[i];
	}
	*p++ = (unsigned char)max;
	*p++ = (unsigned char)(max >> 8);
	*p++ = 0;
	*p++ = 0;
	for (size_t i = 0; i < max; i++)
		*p++ = (unsigned char)(i * 7);
	size_t len = (size_t)(p - in);
	r = RUN_IN(in, len, "pub", name, "--binary");
	expect_ok(&r);
	run_free(&r);
	r = RUN("tail", name, "--binary");
	expect_ok(&r);
	cr_assert_eq(r.out_len, len);
	cr_assert(!memcmp(r.out, in, len), "tail --binary gives other bytes than pub --binary read");
	run_free(&r);

	/* Too large a record: one line, exit 1; a truncated one likewise. */
	unsigned char big[4] = { (unsigned char)(max + 1), (unsigned char)((max + 1) >> 8), 0, 0 };
	r = RUN_IN(big, 4, "pub", name, "--binary");
	expect_error(&r, 1, "more than the ring's maximum");
	run_free(&r);
	unsigned char cut[6] = { 9, 0, 0, 0, 'a', 'b' };
	r = RUN_IN(cut, 6, "pub", name, "--binary");
	expect_error(&r, 1, "input ends inside message");
	run_free(&r);
	free(in);
}

/* ---- stat: cursors, lag, liveness, JSON ---------------------------------- */

static struct shmring *open_ring(const char *name)
{
	struct shmring *r;
	int rc = shmring_open(name, &r);
	cr_assert_eq(rc, 0, "shmring_open: %s", shmring_strerror(rc));
	return r;
}

Test(tool, stat_cursors_and_json, .timeout = 60)
{
	char name[64], buf[512];
	test_ring_name(name, sizeof(name));
	struct run r = RUN("create", name, "--capacity", "64K", "--consumers", "8");
	expect_ok(&r);
	run_free(&r);

	struct shmring *ring = open_ring(name);
	struct shmring_consumer *bc, *gm;
	struct shmring_producer *p;
	cr_assert_eq(shmring_consumer_open(ring, SHMRING_START_OLDEST, &bc), 0);
	cr_assert_eq(shmring_group_open(ring, "workers", SHMRING_START_OLDEST, &gm), 0);
	cr_assert_eq(shmring_producer_open(ring, &p), 0);
	uint64_t bytes = 0;
	for (int i = 0; i < 10; i++) {
		char m[32];
		int n = snprintf(m, sizeof(m), "message %d", i);
		cr_assert_eq(shmring_send(p, m, (size_t)n), 0);
		bytes += SHMRING_RECORD_SIZE(n);
	}
	/* The group member takes 4: the group's lag is 6, the broadcast's 10. */
	char m[64];
	size_t len, g4 = 0;
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(shmring_recv(gm, m, sizeof(m), &len), 0);
		g4 += SHMRING_RECORD_SIZE(len);
	}

	r = RUN("stat", name);
	expect_ok(&r);
	char want[128];
	snprintf(want, sizeof(want), "producer  alive (pid %d)", (int)getpid());
	cr_assert(strstr(r.out, want), "%s", r.out);
	cr_assert(strstr(r.out, "cursors   2 consumers, 1 groups"), "%s", r.out);
	cr_assert(line_with(r.out, " broadcast ", buf, sizeof(buf)), "%s", r.out);
	snprintf(want, sizeof(want), " %llu alive (pid %d)", (unsigned long long)bytes,
		 (int)getpid());
	cr_assert(strstr(buf, " 0 ") && strstr(buf, " 10 ") && strstr(buf, want),
		  "broadcast line: %s", buf);
	cr_assert(line_with(r.out, " group ", buf, sizeof(buf)), "%s", r.out);
	cr_assert(strstr(buf, " workers ") && strstr(buf, " 6 ") &&
		  strstr(buf, "alive (1 members)"), "group line: %s", buf);
	cr_assert(line_with(r.out, " member ", buf, sizeof(buf)), "%s", r.out);
	cr_assert(strstr(buf, " workers "), "member line: %s", buf);
	/* Fill: the slowest cursor (the broadcast one) is all behind. */
	snprintf(want, sizeof(want), "fill      %llu%% (%llu bytes behind",
		 (unsigned long long)(bytes * 100 / 65536), (unsigned long long)bytes);
	cr_assert(strstr(r.out, want), "%s", r.out);
	run_free(&r);

	r = RUN("stat", name, "--json");
	expect_ok(&r);
	expect_json(r.out);
	snprintf(want, sizeof(want), "\"tail\": %llu, \"messages\": 10,", (unsigned long long)bytes);
	cr_assert(strstr(r.out, want), "%s", r.out);
	snprintf(want, sizeof(want), "\"kind\": \"broadcast\", \"group\": null, \"position\": 0, "
		 "\"lag_bytes\": %llu, \"lag_messages\": 10,", (unsigned long long)bytes);
	cr_assert(strstr(r.out, want), "%s", r.out);
	snprintf(want, sizeof(want), "\"kind\": \"group\", \"group\": \"workers\", "
		 "\"position\": %llu, \"lag_bytes\": %llu, \"lag_messages\": 6,",
		 (unsigned long long)g4, (unsigned long long)(bytes - g4));
	cr_assert(strstr(r.out, want), "%s", r.out);
	cr_assert(strstr(r.out, "\"producer\": {\"state\": \"alive\""), "%s", r.out);
	run_free(&r);

	r = RUN("ls", "--json");
	expect_ok(&r);
	expect_json(r.out);
	cr_assert(r.out[0] == '[', "%s", r.out);
	snprintf(want, sizeof(want), "{\"name\": \"%s\", \"status\": \"ok\", \"capacity\": 65536",
		 name);
	cr_assert(strstr(r.out, want), "%s", r.out);
	run_free(&r);

	/* --watch --count: that many snapshots, each valid JSON. */
	r = RUN("stat", name, "--json", "--watch", "--interval", "0.01", "--count", "3");
	expect_ok(&r);
	cr_assert_eq(lines(r.out), 3, "%s", r.out);
	for (char *l = strtok(r.out, "\n"); l; l = strtok(NULL, "\n"))
		expect_json(l);
	run_free(&r);

	/* pub is refused while this producer lives. */
	r = RUN_IN("x\n", 2, "pub", name);
	expect_error(&r, 1, "another producer is attached");
	run_free(&r);

	shmring_producer_close(p);
	shmring_consumer_close(bc);
	shmring_consumer_close(gm);
	shmring_close(ring);
	r = RUN("stat", name);
	expect_ok(&r);
	cr_assert(strstr(r.out, "producer  closed\n") && strstr(r.out, "0 consumers, 0 groups"),
		  "%s", r.out);
	run_free(&r);
}

Test(tool, dead_producer_and_consumer, .timeout = 60)
{
	char name[64], buf[512], want[128];
	test_ring_name(name, sizeof(name));
	struct run r = RUN("create", name, "--capacity", "8K");
	expect_ok(&r);
	run_free(&r);

	/* A child attaches a producer and a consumer of its own, sends one
	 * message and dies without closing anything. */
	int ready[2];
	cr_assert_eq(pipe(ready), 0);
	pid_t pid = test_spawn();
	if (pid == 0) {
		struct shmring *ring;
		struct shmring_producer *p;
		struct shmring_consumer *c;
		if (shmring_open(name, &ring) || shmring_consumer_open(ring, 0, &c) ||
		    shmring_producer_open(ring, &p) || shmring_send(p, "bye", 3))
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	char x;
	cr_assert_eq(read(ready[0], &x, 1), 1, "the child did not attach");

	r = RUN("stat", name);
	expect_ok(&r);
	snprintf(want, sizeof(want), "producer  alive (pid %d)", (int)pid);
	cr_assert(strstr(r.out, want), "%s", r.out);
	snprintf(want, sizeof(want), "alive (pid %d)", (int)pid);
	cr_assert(line_with(r.out, " broadcast ", buf, sizeof(buf)) && strstr(buf, want),
		  "%s", r.out);
	run_free(&r);

	kill(pid, SIGKILL);
	cr_assert_eq(test_wait(pid), 128 + SIGKILL);

	r = RUN("stat", name);
	expect_ok(&r);
	snprintf(want, sizeof(want), "producer  dead (pid %d)", (int)pid);
	cr_assert(strstr(r.out, want), "%s", r.out);
	snprintf(want, sizeof(want), "dead (pid %d)", (int)pid);
	cr_assert(line_with(r.out, " broadcast ", buf, sizeof(buf)) && strstr(buf, want),
		  "%s", r.out);
	cr_assert(strstr(buf, " 1 "), "lag of one message: %s", buf);
	run_free(&r);

	r = RUN("ls");
	expect_ok(&r);
	cr_assert(line_with(r.out, name, buf, sizeof(buf)) && strstr(buf, " dead"), "%s", r.out);
	run_free(&r);

	/* A consumer of a dead producer drains what was published and stops. */
	r = RUN("tail", name);
	expect_ok(&r);
	cr_assert_str_eq(r.out, "bye\n");
	run_free(&r);
	close(ready[0]);
	close(ready[1]);
}

/* ---- tail -f -------------------------------------------------------------- */

Test(tool, tail_follow, .timeout = 60)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	struct run r = RUN("create", name, "--capacity", "4K");
	expect_ok(&r);
	run_free(&r);

	/* Two followers; the ring is smaller than what is sent, so the
	 * producer waits for them (policy block). */
	int in[2], out[2], err[2];
	pid_t t[2];
	for (int i = 0; i < 2; i++) {
		t[i] = start_tool((uid_t)-1, 0, &in[i], &out[i], &err[i], ARGS("tail", name, "-f"));
		close(in[i]);
	}
	struct shmring *ring = open_ring(name);
	struct shmring_info info;
	for (int i = 0; i < 500; i++) {
		cr_assert_eq(shmring_info(ring, &info), 0);
		if (info.consumers == 2)
			break;
		test_sleep_ns(10000000);
	}
	cr_assert_eq(info.consumers, 2, "the followers did not attach");
	struct shmring_producer *p;
	cr_assert_eq(shmring_producer_open(ring, &p), 0);
	char *expect = NULL;
	size_t elen = 0;
	append(&expect, &elen, "", 0);
	for (int i = 0; i < 2000; i++) {
		char m[32];
		int n = snprintf(m, sizeof(m), "%d", i);
		struct timespec dl;
		shmring_deadline(&dl, 20000000000u);
		cr_assert_eq(shmring_send_wait(p, m, (size_t)n, &dl), 0);
		append(&expect, &elen, m, (size_t)n);
		append(&expect, &elen, "\n", 1);
	}
	shmring_producer_close(p);
	for (int i = 0; i < 2; i++) {
		struct run f = { 0 };
		append(&f.out, &f.out_len, "", 0);
		append(&f.err, &f.err_len, "", 0);
		finish_tool(t[i], out[i], err[i], &f);
		expect_ok(&f);
		cr_assert_eq(f.out_len, elen, "follower %d printed %zu bytes, expected %zu", i,
			     f.out_len, elen);
		cr_assert(!memcmp(f.out, expect, elen));
		run_free(&f);
	}

	/* A follower with nothing coming stops on SIGTERM with status 0 and
	 * gives its cursor back. */
	t[0] = start_tool((uid_t)-1, 0, &in[0], &out[0], &err[0], ARGS("tail", name, "-f", "--new"));
	close(in[0]);
	for (int i = 0; i < 500; i++) {
		shmring_info(ring, &info);
		if (info.consumers == 1)
			break;
		test_sleep_ns(10000000);
	}
	cr_assert_eq(info.consumers, 1);
	kill(t[0], SIGTERM);
	struct run f = { 0 };
	append(&f.out, &f.out_len, "", 0);
	append(&f.err, &f.err_len, "", 0);
	finish_tool(t[0], out[0], err[0], &f);
	expect_ok(&f);
	cr_assert_eq(f.out_len, 0);
	run_free(&f);
	shmring_info(ring, &info);
	cr_assert_eq(info.consumers, 0, "the stopped follower kept its cursor");
	free(expect);
	shmring_close(ring);
}

/* ---- overwrite ---------------------------------------------------------- */

Test(tool, overwrite_ring, .timeout = 60)
{
	char name[64], buf[256];
	test_ring_name(name, sizeof(name));
	struct run r = RUN("create", name, "--capacity", "4K", "--policy", "overwrite");
	expect_ok(&r);
	run_free(&r);
	/* 1000 messages of 16 bytes into 4K: only the newest stay. */
	char in[8000];
	size_t n = 0;
	for (int i = 0; i < 1000; i++)
		n += (size_t)snprintf(in + n, sizeof(in) - n, "%d\n", 1000 + i);
	r = RUN_IN(in, n, "pub", name);
	expect_ok(&r);
	run_free(&r);
	r = RUN("ls");
	expect_ok(&r);
	cr_assert(line_with(r.out, name, buf, sizeof(buf)) && strstr(buf, " overwrite "), "%s",
		  r.out);
	run_free(&r);
	r = RUN("tail", name);
	expect_ok(&r);
	int k = lines(r.out);
	cr_assert(k > 100 && k < 1000, "%d messages", k);
	cr_assert(strstr(r.out, "1999\n") && !strstr(r.out, "1000\n"), "%s", r.out);
	run_free(&r);
	r = RUN("tail", name, "--group", "g");
	expect_error(&r, 1, "groups are not available");
	run_free(&r);
}

/* ---- bad rings ----------------------------------------------------------- */

static void write_file(const char *name, const void *data, size_t len, mode_t mode)
{
	char path[128];
	snprintf(path, sizeof(path), "/dev/shm/%s", bare(name));
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

Test(tool, missing_ring, .timeout = 60)
{
	char name[64];
	test_ring_name(name, sizeof(name));
	const char *cmds[][3] = { { "stat", NULL }, { "tail", NULL }, { "pub", NULL },
				  { "rm", NULL }, { "stat", "--json" }, { "tail", "-f" } };
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		struct run r = cmds[i][1] ? RUN((char *)cmds[i][0], name, (char *)cmds[i][1])
					  : RUN((char *)cmds[i][0], name);
		expect_error(&r, 1, "no such ring");
		cr_assert(strstr(r.err, name), "%s", r.err);
		run_free(&r);
	}
}

Test(tool, not_a_ring, .timeout = 60)
{
	char name[64], buf[256];
	test_ring_name(name, sizeof(name));
	char junk[20000];
	uint64_t s = 12345;
	for (size_t i = 0; i < sizeof(junk); i += 8) {
		uint64_t v = test_rnd(&s);
		memcpy(junk + i, &v, 8);
	}
	write_file(name, junk, sizeof(junk), 0600);

	struct run r = RUN("stat", name);
	expect_error(&r, 1, "not a shmring ring");
	run_free(&r);
	r = RUN("tail", name);
	expect_error(&r, 1, "not a shmring ring");
	run_free(&r);
	/* ls skips it; ls --all lists it as what it is. */
	r = RUN("ls");
	expect_ok(&r);
	cr_assert(!strstr(r.out, name), "%s", r.out);
	run_free(&r);
	r = RUN("ls", "--all");
	expect_ok(&r);
	cr_assert(line_with(r.out, name, buf, sizeof(buf)) && strstr(buf, "not a ring"), "%s",
		  r.out);
	run_free(&r);
	/* rm refuses it unless forced. */
	r = RUN("rm", name);
	expect_error(&r, 1, "--force");
	run_free(&r);
	r = RUN("rm", "--force", name);
	expect_ok(&r);
	run_free(&r);
	r = RUN("stat", name);
	expect_error(&r, 1, "no such ring");
	run_free(&r);
}

Test(tool, corrupt_ring, .timeout = 60)
{
	char name[64], path[128], buf[256];
	test_ring_name(name, sizeof(name));
	struct run r = RUN("create", name, "--capacity", "8K");
	expect_ok(&r);
	run_free(&r);
	/* The magic stays; the capacity becomes a lie. */
	snprintf(path, sizeof(path), "/dev/shm/%s", bare(name));
	int fd = open(path, O_RDWR | O_CLOEXEC);
	cr_assert(fd >= 0);
	uint64_t cap = 3 << 20;
	cr_assert_eq(pwrite(fd, &cap, sizeof(cap), offsetof(struct shm_header, capacity)),
		     (ssize_t)sizeof(cap));
	close(fd);

	r = RUN("stat", name);
	expect_error(&r, 1, "corrupt");
	run_free(&r);
	r = RUN("stat", name, "--json");
	expect_error(&r, 1, "corrupt");
	run_free(&r);
	r = RUN("tail", name);
	expect_error(&r, 1, "corrupt");
	run_free(&r);
	r = RUN_IN("x\n", 2, "pub", name);
	expect_error(&r, 1, "corrupt");
	run_free(&r);
	r = RUN("ls");
	expect_ok(&r);
	cr_assert(line_with(r.out, name, buf, sizeof(buf)) && strstr(buf, "corrupt"), "%s", r.out);
	run_free(&r);
	r = RUN("ls", "--json");
	expect_ok(&r);
	expect_json(r.out);
	run_free(&r);
	/* A corrupt ring can be removed without --force (it has the magic). */
	r = RUN("rm", name);
	expect_ok(&r);
	run_free(&r);

	/* A file cut short after the magic: corrupt too, never a crash. */
	uint64_t magic = SHMRING_MAGIC;
	write_file(name, &magic, sizeof(magic), 0600);
	r = RUN("stat", name);
	expect_error(&r, 1, "corrupt");
	run_free(&r);
	r = RUN("ls");
	expect_ok(&r);
	cr_assert(line_with(r.out, name, buf, sizeof(buf)) && strstr(buf, "corrupt"), "%s", r.out);
	run_free(&r);
}

Test(tool, other_user, .timeout = 60)
{
	if (geteuid() != 0)
		cr_skip_test("not root: cannot switch to user nobody to test permissions");
	struct passwd *pw = getpwnam("nobody");
	if (!pw)
		cr_skip_test("no user \"nobody\" in the password database");
	uid_t uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	char priv[64], shared[64], buf[256];
	test_ring_name(priv, sizeof(priv));
	test_ring_name(shared, sizeof(shared));
	struct run r = RUN("create", priv, "--capacity", "8K", "--mode", "0600");
	expect_ok(&r);
	run_free(&r);
	r = RUN("create", shared, "--capacity", "8K", "--mode", "0644");
	expect_ok(&r);
	run_free(&r);
	r = RUN_IN("hello\n", 6, "pub", shared);
	expect_ok(&r);
	run_free(&r);

	/* The private ring: every command says "permission denied". */
	const char *cmds[] = { "stat", "tail", "pub", "rm" };
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		r = run_as(uid, gid, NULL, 0, ARGS((char *)cmds[i], priv));
		expect_error(&r, 1, "permission denied");
		run_free(&r);
	}
	/* ls lists it as such and goes on with the others. */
	r = run_as(uid, gid, NULL, 0, ARGS("ls"));
	expect_ok(&r);
	cr_assert(line_with(r.out, priv, buf, sizeof(buf)) && strstr(buf, "permission denied"),
		  "%s", r.out);
	cr_assert(line_with(r.out, shared, buf, sizeof(buf)) && strstr(buf, " 8K ") &&
		  strstr(buf, " closed"), "%s", r.out);
	run_free(&r);
	/* A ring readable by others can be inspected read-only, not consumed
	 * (attaching a cursor writes to the ring). */
	r = run_as(uid, gid, NULL, 0, ARGS("stat", shared, "--json"));
	expect_ok(&r);
	expect_json(r.out);
	cr_assert(strstr(r.out, "\"messages\": 1,"), "%s", r.out);
	run_free(&r);
	r = run_as(uid, gid, NULL, 0, ARGS("tail", shared));
	expect_error(&r, 1, "permission denied");
	run_free(&r);
	/* Nothing changed. */
	r = RUN("tail", shared);
	expect_ok(&r);
	cr_assert_str_eq(r.out, "hello\n");
	run_free(&r);
}

/* ---- bench --------------------------------------------------------------- */

Test(tool, bench, .timeout = 60)
{
	struct run r = RUN("bench", "--seconds", "0.05");
	expect_ok(&r);
	cr_assert(strstr(r.out, "ring/pipe") && strstr(r.out, "pipe/ring"), "%s", r.out);
	cr_assert_eq(lines(r.out), 3, "%s", r.out);
	run_free(&r);
	r = RUN("bench", "--seconds", "100");
	expect_error(&r, 2, "bad duration");
	run_free(&r);
}
