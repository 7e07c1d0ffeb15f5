/* SPDX-License-Identifier: MIT */
/* create, rm, pub and tail: the commands that change rings or use them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool.h"

static volatile sig_atomic_t stop_sig;
static struct shmring_producer *volatile sig_producer;

static void on_signal(int sig)
{
	stop_sig = sig;
	/* Tells the consumers at once; async-signal-safe. */
	if (sig_producer)
		shmring_producer_shutdown(sig_producer);
}

static void catch_stop_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* Says why a named ring cannot be opened (for pub and tail). */
static void open_failed(const char *cmd, const char *name, int rc)
{
	switch (rc) {
	case -ENOENT: err_line(cmd, "%s: no such ring", name); break;
	case -EACCES: err_line(cmd, "%s: permission denied", name); break;
	case -EPROTO: err_line(cmd, "%s: not a shmring ring, or a corrupt one", name); break;
	default: err_line(cmd, "%s: %s", name, shmring_strerror(rc)); break;
	}
}

static int bad_option(const char *cmd, char **argv)
{
	err_line(cmd, "unknown option or missing argument '%s' (try: shmring %s --help)",
		 argv[optind - 1], cmd);
	return EXIT_USAGE;
}

/* ---- create ------------------------------------------------------------- */

static const char create_help[] =
	"usage: shmring create NAME [--capacity SIZE] [--policy block|overwrite]\n"
	"                           [--mode MODE] [--consumers N] [--inline-small]\n"
	"Creates a ring.  SIZE takes K, M or G (binary) and is rounded up to a power\n"
	"of two (default 1M); MODE is octal (default 0600, applied exactly); N is the\n"
	"number of cursor slots (default 64).  --inline-small (block rings): sends of\n"
	"up to 32 bytes are also copied into the tail's cache line, for\n"
	"request/response traffic (SHMRING_INLINE_SMALL, shmring_create(3)).\n";

int cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "capacity", required_argument, NULL, 'c' },
		{ "policy", required_argument, NULL, 'p' },
		{ "mode", required_argument, NULL, 'm' },
		{ "consumers", required_argument, NULL, 'n' },
		{ "inline-small", no_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct shmring_opts o = { .size = sizeof(o) };
	int c;
	uint64_t v;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "c:p:m:n:ih", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (parse_size(optarg, &v) || v == 0 || v > SHMRING_MAX_CAPACITY) {
				err_line("create", "bad capacity '%s' (1 byte to 4G)", optarg);
				return EXIT_USAGE;
			}
			o.capacity = v;
			break;
		case 'p':
			if (!strcmp(optarg, "block")) {
				o.policy = SHMRING_POLICY_BLOCK;
			} else if (!strcmp(optarg, "overwrite")) {
				o.policy = SHMRING_POLICY_OVERWRITE;
			} else {
				err_line("create", "bad policy '%s' (block or overwrite)", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'm': {
			char *end;
			errno = 0;
			unsigned long m = strtoul(optarg, &end, 8);
			if (errno || *end || end == optarg || m == 0 || m > 07777) {
				err_line("create", "bad mode '%s' (octal, e.g. 0640)", optarg);
				return EXIT_USAGE;
			}
			o.mode = (uint32_t)m;
			break;
		}
		case 'n':
			if (parse_u64(optarg, &v) || v == 0 || v > SHMRING_MAX_CONSUMERS) {
				err_line("create", "bad consumer count '%s' (1 to %u)", optarg,
					 SHMRING_MAX_CONSUMERS);
				return EXIT_USAGE;
			}
			o.max_consumers = (uint32_t)v;
			break;
		case 'i': o.flags |= SHMRING_INLINE_SMALL; break;
		case 'h': fputs(create_help, stdout); return EXIT_OK;
		default: return bad_option("create", argv);
		}
	}
	if (optind != argc - 1) {
		err_line("create", "expected one ring name (try: shmring create --help)");
		return EXIT_USAGE;
	}
	if ((o.flags & SHMRING_INLINE_SMALL) && o.policy != SHMRING_POLICY_BLOCK) {
		err_line("create", "--inline-small needs --policy block");
		return EXIT_USAGE;
	}
	char name[NAME_MAX + 2];
	if (ring_name("create", argv[optind], name, sizeof(name)))
		return EXIT_USAGE;
	struct shmring *r;
	int rc = shmring_create(name, &o, &r);
	if (rc) {
		if (rc == -EEXIST)
			err_line("create", "%s: already exists", name);
		else
			err_line("create", "%s: %s", name, shmring_strerror(rc));
		return EXIT_FAIL;
	}
	shmring_close(r);
	return EXIT_OK;
}

/* ---- rm ----------------------------------------------------------------- */

static const char rm_help[] =
	"usage: shmring rm [--force] NAME...\n"
	"Removes rings from " SHM_DIR ".  Processes that have a ring open keep using it.\n"
	"A file that does not start with the ring magic is refused unless --force.\n";

int cmd_rm(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int force = 0, c, status = EXIT_OK;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (c) {
		case 'f': force = 1; break;
		case 'h': fputs(rm_help, stdout); return EXIT_OK;
		default: return bad_option("rm", argv);
		}
	}
	if (optind >= argc) {
		err_line("rm", "expected ring names (try: shmring rm --help)");
		return EXIT_USAGE;
	}
	for (int i = optind; i < argc; i++) {
		char name[NAME_MAX + 2], path[sizeof(SHM_DIR) + NAME_MAX + 2];
		if (ring_name("rm", argv[i], name, sizeof(name))) {
			status = EXIT_FAIL;
			continue;
		}
		if (!force) {
			snprintf(path, sizeof(path), SHM_DIR "%s", name);
			int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
			if (fd < 0) {
				int e = errno;
				err_line("rm", "%s: %s", name,
					 e == ENOENT ? "no such ring" :
					 e == EACCES ? "permission denied" : strerror(e));
				status = EXIT_FAIL;
				continue;
			}
			uint64_t magic = 0;
			ssize_t n = pread(fd, &magic, sizeof(magic), 0);
			close(fd);
			if (n != (ssize_t)sizeof(magic) || magic != SHMRING_MAGIC) {
				err_line("rm", "%s: not a shmring ring (use --force to remove it)",
					 name);
				status = EXIT_FAIL;
				continue;
			}
		}
		int rc = shmring_unlink(name);
		if (rc) {
			err_line("rm", "%s: %s", name,
				 rc == -ENOENT ? "no such ring" :
				 rc == -EACCES ? "permission denied" : shmring_strerror(rc));
			status = EXIT_FAIL;
		}
	}
	return status;
}

/* ---- pub ---------------------------------------------------------------- */

static const char pub_help[] =
	"usage: shmring pub NAME [--binary]\n"
	"Becomes the ring's producer and publishes standard input: one message per\n"
	"line (the newline is not sent), or with --binary records of a 4-byte\n"
	"little-endian length then that many bytes.  Waits while a BLOCK ring is\n"
	"full.  At end of input it closes the ring: consumers drain it, then stop.\n";

static int pub_one(const char *name, struct shmring_producer *p, const void *msg, size_t len,
		   uint32_t max, uint64_t n)
{
	if (len > max) {
		err_line("pub", "%s: message %llu has %zu bytes, more than the ring's "
			 "maximum of %u", name, (unsigned long long)n, len, max);
		return -1;
	}
	int rc = shmring_send_wait(p, msg, len, NULL);
	if (rc) {
		if (!(rc == -EPIPE && stop_sig))
			err_line("pub", "%s: %s", name, shmring_strerror(rc));
		return -1;
	}
	return 0;
}

int cmd_pub(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "binary", no_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int binary = 0, c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "bh", opts, NULL)) != -1) {
		switch (c) {
		case 'b': binary = 1; break;
		case 'h': fputs(pub_help, stdout); return EXIT_OK;
		default: return bad_option("pub", argv);
		}
	}
	if (optind != argc - 1) {
		err_line("pub", "expected one ring name (try: shmring pub --help)");
		return EXIT_USAGE;
	}
	char name[NAME_MAX + 2];
	if (ring_name("pub", argv[optind], name, sizeof(name)))
		return EXIT_USAGE;
	struct shmring *r;
	int rc = shmring_open(name, &r);
	if (rc) {
		open_failed("pub", name, rc);
		return EXIT_FAIL;
	}
	struct shmring_info info;
	shmring_info(r, &info);
	struct shmring_producer *p;
	rc = shmring_producer_open(r, &p);
	if (rc) {
		if (rc == -EBUSY)
			err_line("pub", "%s: another producer is attached", name);
		else
			err_line("pub", "%s: %s", name, shmring_strerror(rc));
		shmring_close(r);
		return EXIT_FAIL;
	}
	sig_producer = p;
	catch_stop_signals();

	int status = EXIT_OK;
	uint64_t n = 0;
	char *buf = NULL;
	size_t cap = 0;
	if (!binary) {
		ssize_t len;
		while (!stop_sig && (len = getline(&buf, &cap, stdin)) >= 0) {
			if (len > 0 && buf[len - 1] == '\n')
				len--;
			if (pub_one(name, p, buf, (size_t)len, info.max_message, n++)) {
				status = EXIT_FAIL;
				break;
			}
		}
	} else {
		unsigned char h[4];
		size_t got;
		while (!stop_sig && (got = fread(h, 1, 4, stdin)) > 0) {
			if (got != 4) {
				err_line("pub", "%s: input ends inside a length prefix", name);
				status = EXIT_FAIL;
				break;
			}
			size_t len = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 |
				     (size_t)h[3] << 24;
			if (len > info.max_message) {
				pub_one(name, p, NULL, len, info.max_message, n);
				status = EXIT_FAIL;
				break;
			}
			if (len > cap) {
				char *nb = realloc(buf, len);
				if (!nb) {
					err_line("pub", "out of memory");
					status = EXIT_FAIL;
					break;
				}
				buf = nb;
				cap = len;
			}
			if (len && fread(buf, 1, len, stdin) != len) {
				err_line("pub", "%s: input ends inside message %llu", name,
					 (unsigned long long)n);
				status = EXIT_FAIL;
				break;
			}
			if (pub_one(name, p, buf, len, info.max_message, n++)) {
				status = EXIT_FAIL;
				break;
			}
		}
	}
	if (status == EXIT_OK && ferror(stdin)) {
		err_line("pub", "reading standard input: %s", strerror(errno));
		status = EXIT_FAIL;
	}
	if (stop_sig)
		status = 128 + stop_sig;
	sig_producer = NULL;
	free(buf);
	shmring_producer_close(p);
	shmring_close(r);
	return status;
}

/* ---- tail --------------------------------------------------------------- */

static const char tail_help[] =
	"usage: shmring tail NAME [-f] [--group G] [--text|--hex|--binary] [--new]\n"
	"                         [-n COUNT]\n"
	"Attaches a consumer and prints the messages: without -f those already in the\n"
	"ring, then exits; with -f it waits for more until the producer closes the\n"
	"ring (or dies) or a signal stops it; a producer that closed before tail\n"
	"started does not count: tail -f then waits for the next one.\n"
	"  -f, --follow     wait for new messages\n"
	"  -g, --group G    join consumer group G (work sharing) instead of\n"
	"                   reading every message\n"
	"  --new            start at the next message published (default: the\n"
	"                   oldest the ring still holds)\n"
	"  -n, --count N    stop after N messages\n"
	"  --text           each message then a newline (default)\n"
	"  --hex            each message in hexadecimal, one per line\n"
	"  --binary         4-byte little-endian length, then the message\n";

enum { OUT_TEXT, OUT_HEX, OUT_BINARY };

static int print_msg(const unsigned char *m, size_t len, int how)
{
	static const char hex[] = "0123456789abcdef";
	switch (how) {
	case OUT_HEX:
		for (size_t i = 0; i < len; i++) {
			putchar(hex[m[i] >> 4]);
			putchar(hex[m[i] & 15]);
		}
		putchar('\n');
		break;
	case OUT_BINARY: {
		unsigned char h[4] = { (unsigned char)len, (unsigned char)(len >> 8),
				       (unsigned char)(len >> 16), (unsigned char)(len >> 24) };
		fwrite(h, 1, 4, stdout);
		fwrite(m, 1, len, stdout);
		break;
	}
	default:
		fwrite(m, 1, len, stdout);
		putchar('\n');
		break;
	}
	return ferror(stdout) ? -1 : 0;
}

int cmd_tail(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "group", required_argument, NULL, 'g' },
		{ "count", required_argument, NULL, 'n' },
		{ "new", no_argument, NULL, 'N' },
		{ "text", no_argument, NULL, 'T' },
		{ "hex", no_argument, NULL, 'X' },
		{ "binary", no_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int follow = 0, how = OUT_TEXT, c;
	unsigned flags = SHMRING_START_OLDEST;
	const char *group = NULL;
	uint64_t count = 0;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "fg:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': follow = 1; break;
		case 'g': group = optarg; break;
		case 'n':
			if (parse_u64(optarg, &count) || count == 0) {
				err_line("tail", "bad count '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'N': flags = SHMRING_START_NEWEST; break;
		case 'T': how = OUT_TEXT; break;
		case 'X': how = OUT_HEX; break;
		case 'B': how = OUT_BINARY; break;
		case 'h': fputs(tail_help, stdout); return EXIT_OK;
		default: return bad_option("tail", argv);
		}
	}
	if (optind != argc - 1) {
		err_line("tail", "expected one ring name (try: shmring tail --help)");
		return EXIT_USAGE;
	}
	char name[NAME_MAX + 2];
	if (ring_name("tail", argv[optind], name, sizeof(name)))
		return EXIT_USAGE;
	if (group && (!*group || strlen(group) > SHMRING_GROUP_NAME_MAX)) {
		err_line("tail", "bad group name '%s' (1 to %u bytes)", group,
			 SHMRING_GROUP_NAME_MAX);
		return EXIT_USAGE;
	}
	struct shmring *r;
	int rc = shmring_open(name, &r);
	if (rc) {
		open_failed("tail", name, rc);
		return EXIT_FAIL;
	}
	struct shmring_consumer *con;
	rc = group ? shmring_group_open(r, group, flags, &con)
		   : shmring_consumer_open(r, flags, &con);
	if (rc) {
		if (rc == -ENOTSUP)
			err_line("tail", "%s: groups are not available on an overwrite ring", name);
		else if (rc == -EUSERS)
			err_line("tail", "%s: every cursor slot is taken", name);
		else
			err_line("tail", "%s: %s", name, shmring_strerror(rc));
		shmring_close(r);
		return EXIT_FAIL;
	}
	catch_stop_signals();
	/* A broken pipe (tail | head) ends us with EPIPE from write, not a
	 * signal, so the consumer is closed properly. */
	signal(SIGPIPE, SIG_IGN);

	/* -f on a ring whose producer already left waits for the next one:
	 * -EPIPE ends it only once a producer was seen since we started (alive,
	 * or the tail moved on). */
	struct shmring_info info;
	shmring_info(r, &info);
	uint64_t start_tail = info.tail;
	int seen = info.producer;

	int status = EXIT_OK;
	size_t cap = 65536, len;
	unsigned char *buf = malloc(cap);
	uint64_t got = 0, lost = 0;
	while (buf && !stop_sig && (!count || got < count)) {
		if (follow) {
			struct timespec dl;
			shmring_deadline(&dl, 200000000u);
			rc = shmring_recv_wait(con, buf, cap, &len, &dl);
		} else {
			rc = shmring_recv(con, buf, cap, &len);
		}
		if (rc == 0) {
			got++;
			if (print_msg(buf, len, how)) {
				if (errno != EPIPE)
					err_line("tail", "writing: %s", strerror(errno));
				status = EXIT_FAIL;
				break;
			}
			continue;
		}
		if (rc == -ETIMEDOUT)
			continue;
		if (rc == -EMSGSIZE) {
			unsigned char *nb = realloc(buf, len);
			if (!nb)
				break;
			buf = nb;
			cap = len;
			continue;
		}
		if (rc == -EOVERFLOW) {
			uint64_t l;
			shmring_lost(con, &l);
			fflush(stdout);
			err_line("tail", "%s: lost %llu messages (overwritten by the producer)",
				 name, (unsigned long long)(l - lost));
			lost = l;
			continue;
		}
		if (rc == -EPIPE && follow && !seen) {
			struct timespec ts = { 0, 20000000 };
			nanosleep(&ts, NULL);
			shmring_info(r, &info);
			seen = info.producer || info.tail != start_tail;
			continue;
		}
		if (rc == -EAGAIN || rc == -EPIPE)
			break;          /* drained; or closed and drained */
		err_line("tail", "%s: %s", name, shmring_strerror(rc));
		status = EXIT_FAIL;
		break;
	}
	if (!buf) {
		err_line("tail", "out of memory");
		status = EXIT_FAIL;
	}
	free(buf);
	if (fflush(stdout) && status == EXIT_OK) {
		if (errno != EPIPE)
			err_line("tail", "writing: %s", strerror(errno));
		status = EXIT_FAIL;
	}
	shmring_consumer_close(con);
	shmring_close(r);
	return status;
}
