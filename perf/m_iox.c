/* SPDX-License-Identifier: MIT */
/*
 * iceoryx 2.0 through its C binding (iceoryx_binding_c).
 *
 * The harness starts its own daemon, `iox-roudi`, the first time a case
 * needs it (with a chunk-pool configuration written next to its log), and
 * stops it after the last case (SIGTERM, waited for; roudi removes its
 * /dev/shm segments on a clean exit).  It never touches a roudi it did not
 * start: if one is running already, iceoryx is skipped.  If the harness is
 * interrupted (SIGINT, SIGTERM, SIGHUP) roudi is stopped before it dies; if
 * it is killed, roudi gets SIGTERM from the kernel (PR_SET_PDEATHSIG).
 *
 * Each role process registers its own runtime ("shmring-perf-<pid>") and
 * leaves through exit(), which unregisters it.
 *
 * Throughput: a publisher (loan a chunk, copy the payload in, publish) in
 * the producer process, a subscriber (take, copy out or read the stamps in
 * place, release) in the consumer process.  Lossless: the publisher's
 * ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER with the subscriber's
 * QueueFullPolicy_BLOCK_PRODUCER; the depth is the subscriber queue (256
 * chunks, iceoryx's maximum).  iceoryx publishes one chunk at a time, so
 * there are no batch > 1 cases.  Sizes above 64 KiB are skipped: the chunk
 * pools configured here stop at 64 KiB plus the chunk header.
 * Round trip: two topics, ping and pong, both sides polling take_chunk().
 */
#include "perf.h"

#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if HAVE_IOX
#include <iceoryx_binding_c/chunk.h>
#include <iceoryx_binding_c/enums.h>
#include <iceoryx_binding_c/log.h>
#include <iceoryx_binding_c/publisher.h>
#include <iceoryx_binding_c/runtime.h>
#include <iceoryx_binding_c/subscriber.h>
#endif

#define IOX_QUEUE 256       /* MAX_SUBSCRIBER_QUEUE_CAPACITY of iceoryx 2.0 */
#define IOX_MAX_SIZE 65536u /* biggest payload the pools below hold */

static void iox_depth(const struct params *p, char *buf, size_t len)
{
	if (p->kind == K_TPUT)
		snprintf(buf, len, "%u-chunk sub. queue", IOX_QUEUE);
	else
		snprintf(buf, len, "%u-chunk queues", IOX_QUEUE);
}

#if HAVE_IOX

/* ---- the daemon (parent process only) ----------------------------------- */

static pid_t roudi_pid;       /* 0: not running */
static pid_t roudi_owner;     /* the harness process that started it */
static int roudi_tried;
static char roudi_dir[64];    /* its config and log */
static char roudi_skip[200];
static char cfg_path[96], log_path[96];
/* Files roudi makes that did not exist before it started: removed if it
 * cannot remove them itself (it was killed, or its clients were). */
static char made[8][96];
static unsigned nmade;

static void note_if_absent(const char *path)
{
	struct stat st;
	if (nmade < 8 && stat(path, &st) != 0)
		snprintf(made[nmade++], sizeof(made[0]), "%s", path);
}

/* Whether a live process named iox-roudi runs (other than ours). */
static int other_roudi(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int found = 0;
	if (!d)
		return 0;
	while (!found && (e = readdir(d))) {
		char path[300], stat[512] = "";
		if (e->d_name[0] < '1' || e->d_name[0] > '9' || atoi(e->d_name) == roudi_pid)
			continue;
		/* "pid (comm) state ...": a zombie (Z) has stopped already. */
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(stat, sizeof(stat), f)) {
			const char *c = strstr(stat, " (iox-roudi) ");
			if (c && c[13] != 'Z' && c[13] != 'X')
				found = 1;
		}
		fclose(f);
	}
	closedir(d);
	return found;
}

static void roudi_files_remove(void)
{
	unlink(cfg_path);
	unlink(log_path);
	rmdir(roudi_dir);
}

/*
 * Stops our roudi: SIGTERM, up to 10 s for it to leave, then SIGKILL.
 * Async-signal-safe (called from the signal handler too).  Returns 0 if it
 * left cleanly.
 */
static int roudi_stop(void)
{
	int st = 0, clean = 0;
	pid_t pid = roudi_pid;
	if (pid <= 0 || getpid() != roudi_owner)
		return 0;
	roudi_pid = 0;
	kill(pid, SIGTERM);
	for (int i = 0; i < 10000; i++) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid) {
			clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
			break;
		}
		if (w < 0)
			break;
		usleep(1000);
		if (i == 9999) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
		}
	}
	if (!clean)
		/* It could not clean up: remove what it made, nothing else. */
		for (unsigned i = 0; i < nmade; i++)
			unlink(made[i]);
	return clean ? 0 : -1;
}

static void roudi_atexit(void)
{
	if (roudi_pid > 0 && getpid() == roudi_owner) {
		roudi_stop();
		roudi_files_remove();
	}
}

static void roudi_on_signal(int sig)
{
	if (getpid() == roudi_owner) {
		roudi_stop();
		roudi_files_remove();
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* What iceoryx 2.0's roudi makes: shared memory for management and one
 * segment named after the user; its socket and lock files in /tmp. */
static void note_roudi_files(void)
{
	char path[96];
	const struct passwd *pw = getpwuid(geteuid());
	nmade = 0;
	note_if_absent("/dev/shm/iceoryx_mgmt");
	if (pw && pw->pw_name && *pw->pw_name && strlen(pw->pw_name) < 64) {
		snprintf(path, sizeof(path), "/dev/shm/%s", pw->pw_name);
		note_if_absent(path);
	}
	note_if_absent("/tmp/roudi");
	note_if_absent("/tmp/roudi.lock");
	note_if_absent("/tmp/iox-unique-roudi.lock");
}

/* Starts roudi once; 0 if it runs, else -1 with roudi_skip set. */
static int roudi_start(void)
{
	if (roudi_tried)
		return roudi_pid > 0 ? 0 : -1;
	roudi_tried = 1;
	if (other_roudi()) {
		snprintf(roudi_skip, sizeof(roudi_skip),
			 "an iox-roudi not started by this harness is running; not disturbing it");
		return -1;
	}
	snprintf(roudi_dir, sizeof(roudi_dir), "/tmp/shmring-perf-iox-XXXXXX");
	if (!mkdtemp(roudi_dir)) {
		snprintf(roudi_skip, sizeof(roudi_skip), "mkdtemp: %s", strerror(errno));
		return -1;
	}
	const char *cfg = cfg_path, *log = log_path;
	snprintf(cfg_path, sizeof(cfg_path), "%s/roudi.toml", roudi_dir);
	snprintf(log_path, sizeof(log_path), "%s/roudi.log", roudi_dir);
	FILE *f = fopen(cfg, "w");
	if (!f) {
		snprintf(roudi_skip, sizeof(roudi_skip), "%s: %s", cfg, strerror(errno));
		return -1;
	}
	/* Chunk = payload + header (64 B is enough for 2.0's); every pool holds
	 * two full subscriber queues and the chunks in flight. */
	static const unsigned sizes[] = {128, 1024, 4096 + 256, IOX_MAX_SIZE + 512};
	fprintf(f, "[general]\nversion = 1\n\n[[segment]]\n");
	for (unsigned i = 0; i < 4; i++)
		fprintf(f, "\n[[segment.mempool]]\nsize = %u\ncount = %u\n", sizes[i],
			2 * IOX_QUEUE + 64);
	fclose(f);

	note_roudi_files();

	roudi_owner = getpid();
	atexit(roudi_atexit);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = roudi_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	const char *const argv[] = {"iox-roudi", "-c", cfg, "-l", "warning", NULL};
	roudi_pid = spawn_daemon(argv, log);
	if (roudi_pid <= 0) {
		roudi_pid = 0;
		snprintf(roudi_skip, sizeof(roudi_skip), "cannot start iox-roudi: %s",
			 strerror(errno));
		return -1;
	}
	/* Ready when it says so; gone or silent for 10 s: skipped. */
	for (int i = 0; i < 1000; i++) {
		char line[256];
		int ready = 0, st;
		FILE *l = fopen(log, "r");
		while (l && fgets(line, sizeof(line), l)) {
			if (strstr(line, "RouDi is ready for clients"))
				ready = 1;
		}
		if (l)
			fclose(l);
		if (ready)
			return 0;
		if (waitpid(roudi_pid, &st, WNOHANG) == roudi_pid) {
			roudi_pid = 0;
			snprintf(roudi_skip, sizeof(roudi_skip),
				 "iox-roudi exited at start (status %d), see %s", st, log);
			return -1;
		}
		usleep(10000);
	}
	roudi_stop();
	snprintf(roudi_skip, sizeof(roudi_skip), "iox-roudi not ready within 10 s, see %s", log);
	return -1;
}

static void iox_fini(struct mech *m)
{
	(void)m;
	if (roudi_pid <= 0)
		return;
	if (roudi_stop())
		fprintf(stderr, "perf: iox-roudi did not stop cleanly; see %s/roudi.log\n",
			roudi_dir);
	else
		roudi_files_remove();
}

/* ---- a case ------------------------------------------------------------- */

struct ioxcase {
	char instance[48]; /* unique per case: stale ports never connect */
};

static int iox_setup(struct bench *b, void **priv)
{
	static unsigned serial;
	if (b->p.size > IOX_MAX_SIZE)
		return fail(b, "skipped: the chunk pools configured stop at %u B", IOX_MAX_SIZE);
	if (roudi_start()) {
		mech_iox.skip = roudi_skip;
		return fail(b, "skipped: %s", roudi_skip);
	}
	struct ioxcase *c = calloc(1, sizeof(*c));
	if (!c)
		return fail(b, "out of memory");
	snprintf(c->instance, sizeof(c->instance), "h%d-c%u", (int)getpid(), ++serial);
	*priv = c;
	return 0;
}

static void iox_teardown(struct bench *b, void *priv)
{
	(void)b;
	free(priv);
}

static iox_pub_t pub_new(iox_pub_storage_t *st, const struct ioxcase *c, const char *topic)
{
	iox_pub_options_t o;
	iox_pub_options_init(&o);
	o.historyCapacity = 0;
	o.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
	return iox_pub_init(st, "shmring-perf", c->instance, topic, &o);
}

static iox_sub_t sub_new(iox_sub_storage_t *st, const struct ioxcase *c, const char *topic)
{
	iox_sub_options_t o;
	iox_sub_options_init(&o);
	o.queueCapacity = IOX_QUEUE;
	o.historyRequest = 0;
	o.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
	return iox_sub_init(st, "shmring-perf", c->instance, topic, &o);
}

/* Waits (10 s at most) until the publisher sees a subscriber and the
 * subscriber is subscribed (either may be NULL). */
static int connected(struct bench *b, iox_pub_t pub, iox_sub_t sub)
{
	uint64_t limit = pf_now_ns() + 10000000000ull;
	while ((pub && !iox_pub_has_subscribers(pub)) ||
	       (sub && iox_sub_get_subscription_state(sub) != SubscribeState_SUBSCRIBED)) {
		if (b->failed)
			return -1;
		if (pf_now_ns() > limit)
			return fail(b, "iceoryx: publisher and subscriber not connected within 10 s");
		usleep(1000);
	}
	return 0;
}

static int loan(struct bench *b, iox_pub_t pub, size_t size, void **d)
{
	for (;;) {
		enum iox_AllocationResult r = iox_pub_loan_chunk(pub, d, (uint32_t)size);
		if (r == AllocationResult_SUCCESS)
			return 0;
		if (r != AllocationResult_RUNNING_OUT_OF_CHUNKS)
			return fail(b, "iox_pub_loan_chunk(%zu B): result %d", size, (int)r);
		relax();
	}
}

static int take(struct bench *b, iox_sub_t sub, const void **d)
{
	for (;;) {
		enum iox_ChunkReceiveResult r = iox_sub_take_chunk(sub, d);
		if (r == ChunkReceiveResult_SUCCESS)
			return 0;
		if (r != ChunkReceiveResult_NO_CHUNK_AVAILABLE)
			return fail(b, "iox_sub_take_chunk: result %d", (int)r);
		if (b->failed)
			return -1;
		poll_relax(&b->p);
	}
}

/* Every role says it is done, then waits for the others (so no port goes
 * away while a peer may still use it). */
static void finish_barrier(struct bench *b, uint64_t roles)
{
	uint64_t limit = pf_now_ns() + 10000000000ull;
	atomic_fetch_add(&b->seen, 1);
	while (atomic_load(&b->seen) < roles && !b->failed && pf_now_ns() < limit)
		usleep(100);
}

static int tput_role(struct bench *b, const struct ioxcase *c, int role)
{
	const struct params *p = &b->p;
	struct loopmark lm;
	int rc = 0;
	if (role == 0) {
		iox_pub_storage_t st;
		iox_pub_t pub = pub_new(&st, c, "tput");
		char *src = source_buf(p->size);
		if (!src)
			rc = fail(b, "out of memory");
		if (!rc && !(rc = wait_attached(b, 1)))
			rc = connected(b, pub, NULL);
		if (!rc) {
			loop_begin(b, &lm);
			tput_start(b);
			for (uint64_t seq = 0; seq < p->n && !rc; seq++) {
				void *d;
				if ((rc = loan(b, pub, p->size, &d)))
					break;
				memcpy(d, src, p->size);
				stamp(d, p->size, seq);
				iox_pub_publish_chunk(pub, d);
			}
			loop_end(b, &lm, 0);
		}
		finish_barrier(b, 2);
		iox_pub_deinit(pub);
		return rc;
	}
	iox_sub_storage_t st;
	iox_sub_t sub = sub_new(&st, c, "tput");
	char *buf = malloc(p->size);
	if (!buf)
		rc = fail(b, "out of memory");
	if (!rc && !(rc = connected(b, NULL, sub))) {
		/* Counting starts before the producer may: enabling the counter
		 * can take milliseconds, which must not fall in the timed loop. */
		loop_begin(b, &lm);
		struct tputmark tm;
		tput_warm_init(b, &tm);
		attached(b);
		for (uint64_t seq = 0; seq < p->n; seq++) {
			const void *d;
			tput_step(b, &tm, seq);
			if ((rc = take(b, sub, &d)))
				break;
			const void *s = d;
			if (!p->zc) {
				memcpy(buf, d, p->size);
				s = buf;
			}
			uint64_t got = unstamp(s, p->size);
			iox_sub_release_chunk(sub, d);
			if (got != seq) {
				rc = fail(b, "consumer: message %llu where %llu was due",
					  (unsigned long long)got, (unsigned long long)seq);
				break;
			}
		}
		loop_end(b, &lm, role);
		if (!rc)
			tput_done(b, role, p->n);
	}
	finish_barrier(b, 2);
	iox_sub_deinit(sub);
	free(buf);
	return rc;
}

static int rtt_role(struct bench *b, const struct ioxcase *c, int role)
{
	const struct params *p = &b->p;
	iox_pub_storage_t pst;
	iox_sub_storage_t sst;
	/* Role 0 publishes ping and takes pong; role 1 the other way. */
	iox_pub_t pub = pub_new(&pst, c, role ? "pong" : "ping");
	iox_sub_t sub = sub_new(&sst, c, role ? "ping" : "pong");
	int rc = connected(b, pub, sub);
	if (!rc) {
		attached(b);
		rc = wait_attached(b, 2);
	}
	uint64_t skip = warm_skip(p->n), t = ticks();
	if (!rc && role == 0)
		tput_start(b);
	for (uint64_t i = 0; i < p->n && !rc; i++) {
		const void *in;
		void *out;
		if (role == 0) {
			if ((rc = loan(b, pub, 8, &out)))
				break;
			memcpy(out, &i, 8);
			iox_pub_publish_chunk(pub, out);
			if ((rc = take(b, sub, &in)))
				break;
			uint64_t v;
			memcpy(&v, in, 8);
			iox_sub_release_chunk(sub, in);
			if (v != i) {
				rc = fail(b, "pong %llu for ping %llu", (unsigned long long)v,
					  (unsigned long long)i);
				break;
			}
			uint64_t t2 = ticks();
			if (i >= skip)
				sample_add(t2 - t);
			t = t2;
		} else {
			if ((rc = take(b, sub, &in)) || (rc = loan(b, pub, 8, &out)))
				break;
			memcpy(out, in, 8);
			iox_sub_release_chunk(sub, in);
			iox_pub_publish_chunk(pub, out);
		}
	}
	if (!rc && role == 0)
		tput_done(b, 0, p->n);
	finish_barrier(b, 2);
	iox_sub_deinit(sub);
	iox_pub_deinit(pub);
	return rc;
}

static int iox_child(struct bench *b, void *priv, int role)
{
	char name[64];
	if (b->p.kind != K_TPUT && b->p.kind != K_RTT)
		return fail(b, "unsupported case");
	if (b->p.kind == K_TPUT && b->p.consumers != 1)
		return fail(b, "iceoryx: one consumer only here");
	snprintf(name, sizeof(name), "shmring-perf-%d", (int)getpid());
	iox_set_loglevel(Iceoryx_LogLevel_Warn);
	iox_runtime_init(name);
	/* The runtime unregisters in exit() (run.c leaves through exit()). */
	return b->p.kind == K_TPUT ? tput_role(b, priv, role) : rtt_role(b, priv, role);
}

static void iox_init(struct mech *m)
{
	if (other_roudi())
		m->skip = "an iox-roudi not started by this harness is running; not disturbing it";
}

struct mech mech_iox = {
	.name = "iceoryx",
	.note = "lossless (WAIT_FOR_CONSUMER + BLOCK_PRODUCER); no batch 32 (one chunk per "
		"publish); no sleeping round trip (polling only); sizes above 64 KiB skipped "
		"(chunk pools configured up to 64 KiB)",
	.caps = C_TPUT | C_ZC | C_RTT_SPIN,
	.init = iox_init,
	.fini = iox_fini,
	.depth = iox_depth,
	.setup = iox_setup,
	.child = iox_child,
	.teardown = iox_teardown,
};

#else /* !HAVE_IOX */

static void iox_init(struct mech *m)
{
	m->skip = "libiceoryx-binding-c-dev/iceoryx not installed";
}

struct mech mech_iox = {
	.name = "iceoryx",
	.caps = C_TPUT | C_ZC | C_RTT_SPIN,
	.init = iox_init,
	.depth = iox_depth,
};

#endif
