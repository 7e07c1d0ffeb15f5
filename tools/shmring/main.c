/* SPDX-License-Identifier: MIT */
/*
 * shmring: see and manage libshmring rings from a shell, the way ipcs and
 * ipcrm serve System V IPC.  This file: the dispatcher and helpers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

const char *prog = "shmring";

static const char usage_text[] =
	"usage: shmring COMMAND [ARGS]\n"
	"\n"
	"  ls [--all] [--json]             the rings in " SHM_DIR "\n"
	"  stat NAME [--json] [--watch [--interval S] [--count N]]\n"
	"                                  header, producer and every cursor\n"
	"  create NAME [--capacity SIZE] [--policy block|overwrite] [--mode MODE]\n"
	"              [--consumers N] [--inline-small]  create a ring\n"
	"  rm [--force] NAME...            remove rings\n"
	"  pub NAME [--binary]             publish standard input, one message per line\n"
	"  tail NAME [-f] [--group G] [--hex|--text|--binary]\n"
	"                                  consume messages and print them\n"
	"  bench [--seconds S]             quick throughput and latency self-check\n"
	"\n"
	"NAME is \"foo\", \"/foo\" or \"" SHM_DIR "/foo\".  \"shmring COMMAND --help\" describes\n"
	"each command; see shmring(1).\n";

void err_line(const char *cmd, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* One line, whatever the text holds. */
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (cmd)
		fprintf(stderr, "%s: %s: %s\n", prog, cmd, buf);
	else
		fprintf(stderr, "%s: %s\n", prog, buf);
}

int ring_name(const char *cmd, const char *arg, char *buf, size_t n)
{
	const char *s = arg;
	if (!strncmp(s, SHM_DIR "/", sizeof(SHM_DIR)))
		s += sizeof(SHM_DIR);
	while (*s == '/')
		s++;
	if (*s == '\0' || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, "..")) {
		err_line(cmd, "%s: bad ring name (use NAME, /NAME or " SHM_DIR "/NAME)", arg);
		return -1;
	}
	if (strlen(s) + 2 > n || strlen(s) > 254) {
		err_line(cmd, "%s: ring name too long", arg);
		return -1;
	}
	snprintf(buf, n, "/%s", s);
	return 0;
}

int parse_u64(const char *s, uint64_t *v)
{
	char *end;
	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*v = x;
	return 0;
}

int parse_size(const char *s, uint64_t *v)
{
	char *end;
	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	unsigned shift = 0;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: return -1;
	}
	if (*end == 'i' && shift)
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || (shift && x > (UINT64_MAX >> shift)))
		return -1;
	*v = (uint64_t)x << shift;
	return 0;
}

int parse_seconds(const char *s, uint64_t *ns)
{
	char *end;
	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	double d = strtod(s, &end);
	if (errno || *end || !(d >= 0) || d > 1e6)
		return -1;
	*ns = (uint64_t)(d * 1e9);
	return 0;
}

void fmt_size(char *buf, size_t n, uint64_t v)
{
	static const char units[] = "KMGT";
	int u = -1;
	uint64_t x = v;
	while (x >= 1024 && x % 1024 == 0 && u < 3) {
		x /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, n, "%llu", (unsigned long long)v);
	else
		snprintf(buf, n, "%llu%c", (unsigned long long)x, units[u]);
}

uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int byte_locked(int fd, uint64_t byte)
{
	struct flock fl = {
		.l_type = F_WRLCK,
		.l_whence = SEEK_SET,
		.l_start = (off_t)byte,
		.l_len = 1,
	};
	/* F_OFD_GETLK needs no write access: a read-only descriptor sees
	 * every endpoint's lock. */
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -1;
	return fl.l_type != F_UNLCK;
}

int open_readonly(const char *name, struct shmring **ring)
{
	char path[sizeof(SHM_DIR) + NAME_MAX + 2];
	snprintf(path, sizeof(path), SHM_DIR "%s", name);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP ? -EPROTO : -errno;
	int rc = shmring_open_fd(fd, ring);
	close(fd);
	return rc;
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
} commands[] = {
	{ "ls", cmd_ls },
	{ "stat", cmd_stat },
	{ "create", cmd_create },
	{ "rm", cmd_rm },
	{ "pub", cmd_pub },
	{ "tail", cmd_tail },
	{ "bench", cmd_bench },
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	const char *c = argv[1];
	if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) {
		fputs(usage_text, stdout);
		return EXIT_OK;
	}
	if (!strcmp(c, "--version")) {
		int v = shmring_version();
		printf("shmring %d.%d.%d\n", v >> 16, (v >> 8) & 0xff, v & 0xff);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(c, commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	err_line(NULL, "unknown command '%s' (try: shmring --help)", c);
	return EXIT_USAGE;
}
