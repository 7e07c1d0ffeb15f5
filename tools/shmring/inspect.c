/* SPDX-License-Identifier: MIT */
/*
 * ls and stat: read-only views of rings.  Everything here opens the ring's
 * file O_RDONLY, validates it with shmring_open_fd() and then only loads
 * from shared memory: nothing is written, and every value read is bounds
 * checked before use, since the ring may be corrupt or change under us.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

struct cursor {
	uint32_t slot;
	uint32_t kind;          /* KIND_* */
	char group[GROUP_NAME_MAX + 1];
	uint64_t pos;           /* member: its hold, or HOLD_NONE */
	int lag_known;          /* lag_msgs is exact */
	int lapped;             /* overwrite: the producer lapped it */
	uint64_t lag_bytes, lag_msgs;
	uint32_t pid;
	int alive;              /* 1, 0, or -1: cannot tell */
	uint32_t members;       /* group */
	uint32_t gslot;         /* member: its group's slot */
};

struct snapshot {
	char name[NAME_MAX + 2];
	uint64_t capacity, create_ns, tail, tail_seq, fill;
	uint32_t max_message, nslots, policy;
	int inline_small;       /* SHMRING_INLINE_SMALL */
	const char *producer;   /* alive, dead, closed, none, unknown */
	uint32_t producer_pid;
	uint32_t consumers, groups, ncur;
	struct cursor *cur;     /* ncur entries */
};

static const char *kind_name(uint32_t k)
{
	switch (k) {
	case KIND_BROADCAST: return "broadcast";
	case KIND_GROUP: return "group";
	case KIND_MEMBER: return "member";
	default: return "unknown";
	}
}

static const char *policy_name(uint32_t p)
{
	return p == SHMRING_POLICY_OVERWRITE ? "overwrite" : "block";
}

/* A copy of a name from shared memory: NUL-terminated, whatever was there. */
static void copy_name(char *dst, const char *src)
{
	memcpy(dst, src, GROUP_NAME_MAX);
	dst[GROUP_NAME_MAX] = '\0';
}

/* Lag of a cursor at pos, against tail and tail_seq. */
static void lag_of(const struct shmring *r, struct cursor *c, uint64_t tail, uint64_t tail_seq)
{
	c->lag_known = 0;
	c->lapped = 0;
	if (c->pos > tail) {            /* corrupt, or the tail moved on */
		c->lag_bytes = 0;
		return;
	}
	c->lag_bytes = tail - c->pos;
	if (c->lag_bytes == 0) {
		c->lag_msgs = 0;
		c->lag_known = 1;
		return;
	}
	if (c->lag_bytes > r->g.capacity || (c->pos & 7)) {
		c->lapped = r->policy == SHMRING_POLICY_OVERWRITE;
		return;
	}
	/* The record at pos carries the low 32 bits of its sequence number:
	 * the difference to the tail's is the number of messages behind. */
	const struct shm_rec *rec =
		(const struct shm_rec *)(r->data + (c->pos & (r->g.capacity - 1)));
	uint32_t len = ((const volatile struct shm_rec *)rec)->len;
	uint32_t seq = ((const volatile struct shm_rec *)rec)->seq;
	if (len > r->g.max_message && len != REC_PAD) /* a pad: the next record's */
		return;
	uint32_t n = (uint32_t)tail_seq - seq;
	/* At least one record per 8 bytes of header, at most one per 8 bytes. */
	if (n == 0 || n > c->lag_bytes / SHMRING_RECORD_HDR)
		return;
	c->lag_msgs = n;
	c->lag_known = 1;
}

/* Takes a snapshot of an open ring.  0, or -ENOMEM. */
static int take_snapshot(const struct shmring *r, const char *name, struct snapshot *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->capacity = r->g.capacity;
	s->max_message = r->g.max_message;
	s->nslots = r->g.nslots;
	s->policy = r->policy;
	s->inline_small = r->inline_small;
	s->create_ns = ((const struct shm_header *)r->base)->create_time;
	/* Pairs with the producer's store_release(tail) in commit(); the
	 * producer stores tail_seq before tail. */
	s->tail = load_acquire(&r->prod->tail);
	s->tail_seq = load_relaxed(&r->prod->tail_seq);
	uint32_t owner = load_acquire(&r->prod->owner);
	uint32_t closed = load_acquire(&r->prod->closed);
	int held = byte_locked(r->fd, r->g.prod_off);
	s->producer_pid = owner;
	if (owner)
		s->producer = held > 0 ? "alive" : held == 0 ? "dead" : "unknown";
	else
		s->producer = closed ? "closed" : "none";

	uint32_t hw = load_acquire(&r->cs->hiwater);
	if (hw > r->g.nslots)
		hw = r->g.nslots;
	s->cur = calloc(hw ? hw : 1, sizeof(*s->cur));
	if (!s->cur)
		return -ENOMEM;
	uint64_t min = UINT64_MAX;
	for (uint32_t i = 0; i < hw; i++) {
		const struct shm_slot *sl = &r->slots[i];
		if (load_acquire(&sl->state) != SLOT_ACTIVE)
			continue;
		struct cursor *c = &s->cur[s->ncur++];
		c->slot = i;
		c->kind = load_relaxed(&sl->kind);
		c->pos = load_acquire(&sl->pos);
		c->pid = load_relaxed(&sl->owner);
		switch (c->kind) {
		case KIND_GROUP:
			s->groups++;
			copy_name(c->group, sl->name);
			c->members = (uint32_t)load_acquire(&sl->members);
			c->alive = -1; /* from its members, below */
			lag_of(r, c, s->tail, s->tail_seq);
			break;
		case KIND_MEMBER: {
			s->consumers++;
			uint32_t g = load_relaxed(&sl->group);
			if (g < r->g.nslots)
				copy_name(c->group, r->slots[g].name);
			c->alive = byte_locked(r->fd, slot_byte(r, i));
			c->gslot = g;
			break;
		}
		default:
			s->consumers++;
			c->alive = byte_locked(r->fd, slot_byte(r, i));
			lag_of(r, c, s->tail, s->tail_seq);
			break;
		}
		uint64_t p = c->pos;
		if ((c->kind != KIND_MEMBER || p != HOLD_NONE) && p < min)
			min = p;
	}
	/* A group is alive while one of its members is. */
	for (uint32_t i = 0; i < s->ncur; i++) {
		struct cursor *g = &s->cur[i];
		if (g->kind != KIND_GROUP)
			continue;
		g->alive = 0;
		for (uint32_t j = 0; j < s->ncur && g->alive <= 0; j++) {
			const struct cursor *m = &s->cur[j];
			if (m->kind == KIND_MEMBER && m->gslot == g->slot && m->alive != 0)
				g->alive = m->alive;
		}
	}
	s->fill = min != UINT64_MAX && min < s->tail ? s->tail - min : 0;
	if (s->fill > s->capacity)
		s->fill = s->capacity;
	return 0;
}

static void free_snapshot(struct snapshot *s)
{
	free(s->cur);
	s->cur = NULL;
}

/* ---- output ------------------------------------------------------------- */

/* A JSON string: control characters, quotes, backslashes and every byte
 * above 0x7e escaped, so the output is valid JSON whatever the ring holds. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p > 0x7e)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* A name for a terminal: anything unprintable becomes '?'. */
static const char *printable(const char *s, char *buf, size_t n)
{
	size_t i = 0;
	for (; s[i] && i + 1 < n; i++)
		buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

static const char *alive_name(int alive)
{
	return alive > 0 ? "alive" : alive == 0 ? "dead" : "unknown";
}

static unsigned fill_pct(const struct snapshot *s)
{
	return (unsigned)(s->fill * 100 / s->capacity);
}

static void print_stat_text(const struct snapshot *s)
{
	char cap[32], tbuf[64], gbuf[GROUP_NAME_MAX + 1];
	fmt_size(cap, sizeof(cap), s->capacity);
	time_t t = (time_t)(s->create_ns / 1000000000u);
	struct tm tm;
	if (!localtime_r(&t, &tm) || !strftime(tbuf, sizeof(tbuf), "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(tbuf, sizeof(tbuf), "?");
	printf("ring      %s\n", s->name);
	printf("capacity  %s (%llu bytes), max message %u bytes, %u slots, policy %s%s\n", cap,
	       (unsigned long long)s->capacity, s->max_message, s->nslots,
	       policy_name(s->policy), s->inline_small ? ", inline small" : "");
	printf("created   %s\n", tbuf);
	printf("tail      %llu bytes, %llu messages\n", (unsigned long long)s->tail,
	       (unsigned long long)s->tail_seq);
	if (s->producer_pid)
		printf("producer  %s (pid %u)\n", s->producer, s->producer_pid);
	else
		printf("producer  %s\n", s->producer);
	printf("fill      %u%% (%llu bytes behind the slowest cursor)\n", fill_pct(s),
	       (unsigned long long)s->fill);
	printf("cursors   %u consumers, %u groups\n", s->consumers, s->groups);
	if (!s->ncur)
		return;
	printf("%5s %-9s %-16s %14s %10s %12s %s\n", "SLOT", "KIND", "GROUP", "POSITION",
	       "LAG_MSGS", "LAG_BYTES", "OWNER");
	for (uint32_t i = 0; i < s->ncur; i++) {
		const struct cursor *c = &s->cur[i];
		char pos[32], lm[32], lb[32], own[64];
		if (c->kind == KIND_MEMBER) {
			if (c->pos == HOLD_NONE)
				snprintf(pos, sizeof(pos), "-");
			else
				snprintf(pos, sizeof(pos), "%llu", (unsigned long long)c->pos);
			snprintf(lm, sizeof(lm), "-");
			snprintf(lb, sizeof(lb), "-");
		} else {
			snprintf(pos, sizeof(pos), "%llu", (unsigned long long)c->pos);
			if (c->lapped)
				snprintf(lm, sizeof(lm), "lapped");
			else if (c->lag_known)
				snprintf(lm, sizeof(lm), "%llu", (unsigned long long)c->lag_msgs);
			else
				snprintf(lm, sizeof(lm), "?");
			snprintf(lb, sizeof(lb), "%llu", (unsigned long long)c->lag_bytes);
		}
		if (c->kind == KIND_GROUP)
			snprintf(own, sizeof(own), "%s (%u members)", alive_name(c->alive),
				 c->members);
		else
			snprintf(own, sizeof(own), "%s (pid %u)", alive_name(c->alive), c->pid);
		printf("%5u %-9s %-16s %14s %10s %12s %s\n", c->slot, kind_name(c->kind),
		       c->kind == KIND_BROADCAST ? "-" : printable(c->group, gbuf, sizeof(gbuf)),
		       pos, lm, lb, own);
	}
}

static void print_stat_json(const struct snapshot *s)
{
	printf("{\"name\": ");
	json_str(stdout, s->name);
	printf(", \"capacity\": %llu, \"max_message\": %u, \"slots\": %u, \"policy\": \"%s\", "
	       "\"inline_small\": %s, \"created_ns\": %llu, \"tail\": %llu, \"messages\": %llu, ",
	       (unsigned long long)s->capacity, s->max_message, s->nslots,
	       policy_name(s->policy), s->inline_small ? "true" : "false",
	       (unsigned long long)s->create_ns,
	       (unsigned long long)s->tail, (unsigned long long)s->tail_seq);
	printf("\"producer\": {\"state\": \"%s\", \"pid\": %u}, ", s->producer, s->producer_pid);
	printf("\"fill_bytes\": %llu, \"fill_percent\": %u, \"consumers\": %u, \"groups\": %u, "
	       "\"cursors\": [", (unsigned long long)s->fill, fill_pct(s), s->consumers,
	       s->groups);
	for (uint32_t i = 0; i < s->ncur; i++) {
		const struct cursor *c = &s->cur[i];
		printf("%s{\"slot\": %u, \"kind\": \"%s\", \"group\": ", i ? ", " : "", c->slot,
		       kind_name(c->kind));
		if (c->kind == KIND_BROADCAST)
			printf("null");
		else
			json_str(stdout, c->group);
		if (c->kind == KIND_MEMBER) {
			if (c->pos == HOLD_NONE)
				printf(", \"hold\": null");
			else
				printf(", \"hold\": %llu", (unsigned long long)c->pos);
		} else {
			printf(", \"position\": %llu, \"lag_bytes\": %llu, \"lag_messages\": ",
			       (unsigned long long)c->pos, (unsigned long long)c->lag_bytes);
			if (c->lag_known)
				printf("%llu", (unsigned long long)c->lag_msgs);
			else
				printf("null");
			printf(", \"lapped\": %s", c->lapped ? "true" : "false");
		}
		if (c->kind == KIND_GROUP)
			printf(", \"members\": %u", c->members);
		else
			printf(", \"pid\": %u", c->pid);
		printf(", \"owner\": \"%s\"}", alive_name(c->alive));
	}
	printf("]}\n");
}

/* ---- stat --------------------------------------------------------------- */

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

/* The one line that says why a ring cannot be shown. */
static const char *open_error(int rc)
{
	switch (rc) {
	case -ENOENT: return "no such ring";
	case -EACCES: return "permission denied";
	case -EAGAIN: return "the ring is still being created (or its creator died)";
	case -EPROTO: return "not a shmring ring, or a corrupt one";
	case -EPROTONOSUPPORT: return "the ring has another layout version";
	case -ENOTSUP: return "the ring was made for another page size";
	default: return shmring_strerror(rc);
	}
}

static const char stat_help[] =
	"usage: shmring stat NAME [--json] [--watch] [--interval SECS] [--count N]\n"
	"Shows the ring's header, tail, producer and each cursor (kind, group,\n"
	"position, lag in messages and bytes, owner alive or dead).  Reads only.\n"
	"  --json          one JSON object per snapshot\n"
	"  --watch         repeat every --interval seconds (default 1) until\n"
	"                  interrupted, or --count times\n";

int cmd_stat(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "watch", no_argument, NULL, 'w' },
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int json = 0, watch = 0, o;
	uint64_t interval = 1000000000u, count = 0;
	optind = 1;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "jwi:c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'j': json = 1; break;
		case 'w': watch = 1; break;
		case 'i':
			if (parse_seconds(optarg, &interval) || interval < 10000000u) {
				err_line("stat", "bad interval '%s' (seconds, at least 0.01)", optarg);
				return EXIT_USAGE;
			}
			watch = 1;
			break;
		case 'c':
			if (parse_u64(optarg, &count) || count == 0) {
				err_line("stat", "bad count '%s'", optarg);
				return EXIT_USAGE;
			}
			watch = 1;
			break;
		case 'h': fputs(stat_help, stdout); return EXIT_OK;
		default:
			err_line("stat", "unknown option '%s' (try: shmring stat --help)",
				 argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		err_line("stat", "expected one ring name (try: shmring stat --help)");
		return EXIT_USAGE;
	}
	char name[NAME_MAX + 2];
	if (ring_name("stat", argv[optind], name, sizeof(name)))
		return EXIT_USAGE;
	if (watch) {
		struct sigaction sa = { .sa_handler = on_stop };
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	for (uint64_t n = 0; !stop; n++) {
		struct shmring *r;
		int rc = open_readonly(name, &r);
		if (rc) {
			err_line("stat", "%s: %s", name, open_error(rc));
			return EXIT_FAIL;
		}
		struct snapshot s;
		rc = take_snapshot(r, name, &s);
		if (rc == 0) {
			if (json) {
				print_stat_json(&s);
			} else {
				if (watch && n)
					printf("\n");
				print_stat_text(&s);
			}
			fflush(stdout);
		}
		free_snapshot(&s);
		shmring_close(r);
		if (rc) {
			err_line("stat", "%s: %s", name, shmring_strerror(rc));
			return EXIT_FAIL;
		}
		if (!watch || (count && n + 1 >= count))
			break;
		struct timespec ts = { (time_t)(interval / 1000000000u),
				       (long)(interval % 1000000000u) };
		nanosleep(&ts, NULL);
	}
	return EXIT_OK;
}

/* ---- ls ----------------------------------------------------------------- */

struct row {
	char name[NAME_MAX + 2];
	const char *status;     /* NULL for a good ring */
	struct snapshot s;
};

/* Looks at one entry of /dev/shm.  Returns 1 and fills *row if it is to be
 * listed: a ring, or (with all) anything else we can say something about. */
static int look_at(int dir, const char *ent, int all, struct row *row)
{
	memset(row, 0, sizeof(*row));
	snprintf(row->name, sizeof(row->name), "/%s", ent);
	struct stat st;
	if (fstatat(dir, ent, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return 0;
	int fd = openat(dir, ent, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		/* We cannot tell whether it is a ring: say so rather than hide it. */
		row->status = errno == EACCES ? "permission denied" : "cannot open";
		return 1;
	}
	uint64_t magic = 0;
	ssize_t n = pread(fd, &magic, sizeof(magic), 0);
	if (n != (ssize_t)sizeof(magic) || magic != SHMRING_MAGIC) {
		close(fd);
		row->status = "not a ring";
		return all;
	}
	struct shmring *r;
	int rc = shmring_open_fd(fd, &r);
	close(fd);
	if (rc) {
		row->status = rc == -EPROTO ? "corrupt" :
			      rc == -EAGAIN ? "being created" :
			      rc == -EPROTONOSUPPORT ? "other layout version" :
			      rc == -ENOTSUP ? "other page size" :
			      rc == -EACCES ? "permission denied" : "cannot open";
		return 1;
	}
	rc = take_snapshot(r, row->name, &row->s);
	shmring_close(r);
	if (rc) {
		free_snapshot(&row->s);
		row->status = "out of memory";
	}
	return 1;
}

static const char ls_help[] =
	"usage: shmring ls [--all] [--json]\n"
	"Lists the rings in " SHM_DIR ": name, capacity, policy, fill level (bytes the\n"
	"slowest cursor has not consumed, as a share of the capacity), consumers,\n"
	"groups and the producer's state.  Files that cannot be read are listed as\n"
	"\"permission denied\", rings that fail validation as \"corrupt\".\n"
	"  --all    also list the files that are not rings\n"
	"  --json   a JSON array\n";

int cmd_ls(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int all = 0, json = 0, o;
	optind = 1;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "ajh", opts, NULL)) != -1) {
		switch (o) {
		case 'a': all = 1; break;
		case 'j': json = 1; break;
		case 'h': fputs(ls_help, stdout); return EXIT_OK;
		default:
			err_line("ls", "unknown option '%s' (try: shmring ls --help)",
				 argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		err_line("ls", "unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	int dir = open(SHM_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent **ents;
	int n = dir < 0 ? -1 : scandir(SHM_DIR, &ents, NULL, alphasort);
	if (n < 0) {
		err_line("ls", "%s: %s", SHM_DIR, strerror(errno));
		if (dir >= 0)
			close(dir);
		return EXIT_FAIL;
	}
	size_t w = 4;
	struct row *rows = calloc((size_t)n + 1, sizeof(*rows));
	int nrows = 0;
	if (!rows) {
		err_line("ls", "out of memory");
		close(dir);
		return EXIT_FAIL;
	}
	for (int i = 0; i < n; i++) {
		const char *e = ents[i]->d_name;
		if (strcmp(e, ".") && strcmp(e, "..") && look_at(dir, e, all, &rows[nrows])) {
			size_t l = strlen(rows[nrows].name);
			if (l > w)
				w = l;
			nrows++;
		}
		free(ents[i]);
	}
	free(ents);
	close(dir);
	if (w > 40)
		w = 40;

	char buf[NAME_MAX + 2];
	if (json)
		printf("[");
	else
		printf("%-*s %9s %-9s %5s %9s %6s %s\n", (int)w, "NAME", "CAPACITY", "POLICY",
		       "FILL", "CONSUMERS", "GROUPS", "PRODUCER");
	for (int i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		const struct snapshot *s = &r->s;
		if (json) {
			printf("%s{\"name\": ", i ? ", " : "");
			json_str(stdout, r->name);
			if (r->status) {
				printf(", \"status\": \"%s\"}", r->status);
				continue;
			}
			printf(", \"status\": \"ok\", \"capacity\": %llu, \"policy\": \"%s\", "
			       "\"fill_bytes\": %llu, \"fill_percent\": %u, \"consumers\": %u, "
			       "\"groups\": %u, \"producer\": \"%s\", \"producer_pid\": %u}",
			       (unsigned long long)s->capacity, policy_name(s->policy),
			       (unsigned long long)s->fill, fill_pct(s), s->consumers,
			       s->groups, s->producer, s->producer_pid);
			continue;
		}
		printable(r->name, buf, sizeof(buf));
		if (r->status) {
			printf("%-*s %9s %-9s %5s %9s %6s %s\n", (int)w, buf, "-", "-", "-", "-",
			       "-", r->status);
			continue;
		}
		char cap[32], fill[16];
		fmt_size(cap, sizeof(cap), s->capacity);
		snprintf(fill, sizeof(fill), "%u%%", fill_pct(s));
		printf("%-*s %9s %-9s %5s %9u %6u %s\n", (int)w, buf, cap, policy_name(s->policy),
		       fill, s->consumers, s->groups, s->producer);
	}
	if (json)
		printf("]\n");
	for (int i = 0; i < nrows; i++)
		free_snapshot(&rows[i].s);
	free(rows);
	return EXIT_OK;
}
