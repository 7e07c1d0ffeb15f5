/* SPDX-License-Identifier: MIT */
/* Description: a linked structure in a message, with offsets instead of
 * pointers.  The producer builds a binary search tree of words directly in
 * the ring (shmring_reserve), linking nodes by their offset from the start
 * of the record; the consumer, in another process that maps the ring at
 * another address, walks the tree in place (shmring_peek), checking every
 * offset against the record's length before following it. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmring.h>

/* Offsets are from the start of the record; 0 means "none" (offset 0 is
 * the header, never a node). */
struct tree {
	uint32_t root;
	uint32_t count;
};
struct node {
	uint32_t left, right;   /* child nodes */
	uint32_t word, len;     /* the word's bytes */
};

/* ---- producer side: build the tree in the reserved record --------------- */

static size_t tree_size(const char *const *words, unsigned n)
{
	size_t sz = sizeof(struct tree) + n * sizeof(struct node);
	for (unsigned i = 0; i < n; i++)
		sz += strlen(words[i]);
	return sz;
}

static void build(uint8_t *rec, const char *const *words, unsigned n)
{
	struct tree *t = (struct tree *)rec;
	uint32_t next_node = sizeof(*t);
	uint32_t next_byte = (uint32_t)(sizeof(*t) + n * sizeof(struct node));
	t->root = 0;
	t->count = n;
	for (unsigned i = 0; i < n; i++) {
		uint32_t at = next_node;
		next_node += sizeof(struct node);
		struct node *nd = (struct node *)(rec + at);
		nd->left = nd->right = 0;
		nd->len = (uint32_t)strlen(words[i]);
		nd->word = next_byte;
		memcpy(rec + next_byte, words[i], nd->len);
		next_byte += nd->len;
		/* Insert: follow offsets from the root, as the consumer will. */
		uint32_t *link = &t->root;
		while (*link) {
			struct node *cur = (struct node *)(rec + *link);
			size_t l = cur->len < nd->len ? cur->len : nd->len;
			int c = memcmp(words[i], rec + cur->word, l);
			if (c == 0)
				c = nd->len < cur->len ? -1 : nd->len > cur->len;
			link = c < 0 ? &cur->left : &cur->right;
		}
		*link = at;
	}
}

/* ---- consumer side: walk it in place, trusting nothing ------------------ */

static int valid_node(uint32_t off, size_t len)
{
	return off >= sizeof(struct tree) && off % 4 == 0 && len >= sizeof(struct node) &&
	       off <= len - sizeof(struct node);
}

/* In-order walk; returns the number of words printed or -1 if the record is
 * malformed (an offset out of bounds, or a cycle: deeper than count). */
static int walk(const uint8_t *rec, size_t len, uint32_t off, unsigned depth, unsigned max)
{
	if (!off)
		return 0;
	if (depth > max || !valid_node(off, len))
		return -1;
	const struct node *nd = (const struct node *)(rec + off);
	if (nd->word > len || nd->len > len - nd->word)
		return -1;
	int a = walk(rec, len, nd->left, depth + 1, max);
	if (a < 0)
		return -1;
	printf(" %.*s", (int)nd->len, (const char *)(rec + nd->word));
	int b = walk(rec, len, nd->right, depth + 1, max);
	return b < 0 ? -1 : a + 1 + b;
}

static int consume(struct shmring_consumer *c)
{
	const void *data;
	size_t len;
	int rc, n = 0;
	while ((rc = shmring_peek_wait(c, &data, &len, NULL)) == 0) {
		const uint8_t *rec = data;  /* in the ring, at this process's address */
		if (len < sizeof(struct tree))
			return 1;
		const struct tree *t = data;
		printf("tree %d (%u words, %zu bytes):", ++n, t->count, len);
		int k = walk(rec, len, t->root, 1, t->count);
		printf("\n");
		if (k < 0 || (unsigned)k != t->count)
			return 1;
		shmring_release(c); /* the bytes may be reused from here on */
	}
	return rc == -EPIPE ? 0 : 1;
}

int main(void)
{
	static const char *const fruit[] = { "pear", "apple", "fig", "zucchini", "kiwi",
					     "banana", "cherry" };
	static const char *const tools[] = { "wrench", "hammer", "saw", "awl", "plane" };
	struct shmring *ring;
	struct shmring_consumer *c;
	struct shmring_producer *p;
	int rc = shmring_create_anon("offsets", NULL, &ring);
	if (rc || (rc = shmring_consumer_open(ring, SHMRING_START_OLDEST, &c))) {
		fprintf(stderr, "setup: %s\n", shmring_strerror(rc));
		return 1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		rc = consume(c);
		fflush(stdout);
		_exit(rc);
	}
	if ((rc = shmring_producer_open(ring, &p))) {
		fprintf(stderr, "producer: %s\n", shmring_strerror(rc));
		return 1;
	}
	const char *const *lists[] = { fruit, tools };
	unsigned counts[] = { 7, 5 };
	for (int i = 0; i < 2; i++) {
		void *rec;
		size_t sz = tree_size(lists[i], counts[i]);
		rc = shmring_reserve_wait(p, sz, &rec, NULL);
		if (rc) {
			fprintf(stderr, "reserve: %s\n", shmring_strerror(rc));
			return 1;
		}
		build(rec, lists[i], counts[i]);  /* written in place: no copy */
		shmring_commit(p);
	}
	shmring_producer_close(p);
	int st;
	waitpid(pid, &st, 0);
	shmring_consumer_close(c);
	shmring_close(ring);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
