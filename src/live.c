/* SPDX-License-Identifier: MIT */
/*
 * Liveness: each endpoint holds an open-file-description lock (F_OFD_SETLK)
 * on one byte of the ring's file: the producer on byte prod_off, the owner of
 * cursor slot i on byte slot_byte(i).  The kernel drops the lock when the
 * last descriptor of that open file description closes, which happens when
 * the owner dies, however it dies.  A peer asks with F_OFD_GETLK whether
 * somebody holds the byte.  No pid is involved, so pid reuse and pid
 * namespaces do not matter.
 *
 * Each endpoint opens its own file description (through /proc/self/fd), so
 * that its lock is its own: locks of one description are shared by every
 * descriptor that refers to it, including copies inherited across fork().
 * An endpoint inherited by a child therefore stays alive while either
 * process lives.  Without /proc there is no liveness: every peer is taken
 * to be alive, as before.
 *
 * Everything here is slow path: attach, detach, and the checks a blocked
 * producer or a long-sleeping consumer makes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "internal.h"

uint64_t slot_byte(const struct shmring *r, uint32_t i)
{
	return r->g.ctab_off + LINE + (uint64_t)i * SLOT_SIZE;
}

static int ofd_lock(int fd, uint64_t byte, short type, int wait)
{
	struct flock fl = {
		.l_type = type,
		.l_whence = SEEK_SET,
		.l_start = (off_t)byte,
		.l_len = 1,
	};
	int rc;
	do
		rc = fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
	while (rc < 0 && errno == EINTR);
	return rc;
}

/* A new open file description of the ring's file, or -1. */
int live_open(const struct shmring *r)
{
	if (!r->writable)
		return -1;
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", r->fd);
	int saved = errno;
	int fd = open(path, O_RDWR | O_CLOEXEC);
	errno = saved;
	return fd;
}

void live_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
}

/* Takes the byte's lock on fd: 0, or -EBUSY if someone else holds it.  With
 * no fd (no /proc) there is nothing to take: 0. */
int live_lock(int fd, uint64_t byte)
{
	if (fd < 0)
		return 0;
	int saved = errno;
	int rc = ofd_lock(fd, byte, F_WRLCK, 0);
	int e = errno;
	errno = saved;
	if (rc == 0)
		return 0;
	return e == EAGAIN || e == EACCES ? -EBUSY : 0;
}

void live_unlock(int fd, uint64_t byte)
{
	if (fd < 0)
		return;
	int saved = errno;
	ofd_lock(fd, byte, F_UNLCK, 0);
	errno = saved;
}

/* Takes the byte's lock, waiting for it (the group-creation lock). */
void live_lock_wait(int fd, uint64_t byte)
{
	if (fd < 0)
		return;
	int saved = errno;
	ofd_lock(fd, byte, F_WRLCK, 1);
	errno = saved;
}

/*
 * Does anybody hold the byte?  Asked through the ring handle's own file
 * description, which never holds locks, so every endpoint's lock shows,
 * including this process's.  1 if held or if we cannot tell, 0 if free.
 */
int live_held(const struct shmring *r, uint64_t byte)
{
	if (!r->live)
		return 1;
	struct flock fl = {
		.l_type = F_WRLCK,
		.l_whence = SEEK_SET,
		.l_start = (off_t)byte,
		.l_len = 1,
	};
	int saved = errno;
	int rc = fcntl(r->fd, F_OFD_GETLK, &fl);
	errno = saved;
	if (rc < 0)
		return 1;
	return fl.l_type != F_UNLCK;
}

/*
 * Frees slot i if its owner is dead: an ACTIVE broadcast cursor or member,
 * or a slot left CLAIMED by a process that died while attaching.  A live
 * owner holds the slot's lock from before it claims the slot until after it
 * frees it, and only FREE slots can be claimed, so a slot seen unlocked and
 * not FREE stays dead until our CAS.  ACTIVE group cursors have no lock of
 * their own: they end with their last member (group_reap()).
 * Returns 1 if it freed the slot.
 */
int reap_slot(struct shmring *r, uint32_t i)
{
	struct shm_slot *s = &r->slots[i];
	uint32_t st = load_acquire(&s->state);
	if (st != SLOT_ACTIVE && st != SLOT_CLAIMED)
		return 0;
	uint32_t kind = load_relaxed(&s->kind);
	if (st == SLOT_ACTIVE && kind == KIND_GROUP)
		return 0;
	if (live_held(r, slot_byte(r, i)))
		return 0;
	uint32_t group = load_relaxed(&s->group);
	if (!cas32(&s->state, &st, SLOT_FREE))
		return 0;
	if (st == SLOT_ACTIVE && kind == KIND_MEMBER && group < r->g.nslots)
		group_drop(r, group);
	return 1;
}

/*
 * Looks for dead owners among the cursors below `below` (those holding the
 * producer back; UINT64_MAX: every cursor) and frees them.  Groups whose
 * cursor is below and whose members are all dead end.  Returns how many
 * slots were freed.
 */
int reap_dead(struct shmring *r, uint64_t below)
{
	if (!r->live)
		return 0;
	uint32_t hw = load_acquire(&r->cs->hiwater);
	if (hw > r->g.nslots)
		hw = r->g.nslots;
	int n = 0;
	for (uint32_t i = 0; i < hw; i++) {
		struct shm_slot *s = &r->slots[i];
		uint32_t st = load_acquire(&s->state);
		if (st == SLOT_FREE)
			continue;
		uint32_t kind = load_relaxed(&s->kind);
		uint64_t pos = load_acquire(&s->pos);
		if (st == SLOT_ACTIVE && pos >= below && below != UINT64_MAX)
			continue;
		if (st == SLOT_ACTIVE && kind == KIND_GROUP)
			n += group_reap(r, i);
		else
			n += reap_slot(r, i);
	}
	return n;
}
