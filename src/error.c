/* SPDX-License-Identifier: MIT */
/* shmring_strerror(): one sentence for every code the library returns. */
#include <errno.h>
#include <limits.h>

#include "shmring.h"

SHMRING_API const char *shmring_strerror(int err)
{
	if (err == INT_MIN)
		return "unknown error";
	if (err < 0)
		err = -err;
	switch (err) {
	case 0: return "success";
	case EINVAL: return "invalid argument (NULL pointer, bad name, bad option or flags)";
	case EEXIST: return "a shared-memory object of that name already exists";
	case ENOENT: return "no ring of that name";
	case EACCES: return "permission denied (object mode, or ring opened read-only)";
	case ENOSPC: return "not enough shared memory to allocate the ring";
	case ENOMEM: return "out of memory or address space";
	case EMFILE: return "too many open files in this process";
	case ENFILE: return "too many open files in the system";
	case ENAMETOOLONG: return "ring name too long";
	case EBADF: return "bad file descriptor";
	case EAGAIN: return "not now: ring full, nothing to read, or ring still being created";
	case EPROTO: return "not a shmring ring, or its shared state is corrupt";
	case EPROTONOSUPPORT: return "the ring has another layout version";
	case ENOTSUP: return "not supported: a ring made for another page size, or a group on an OVERWRITE ring";
	case EBUSY: return "busy: a producer is already attached, endpoints are still open, "
			   "or a signal handler interrupted a call on this endpoint";
	case EMSGSIZE: return "message larger than the ring's maximum, or buffer too small";
	case ENOBUFS: return "uncommitted reservations fill the ring: commit first";
	case EPIPE: return "the producer closed the ring and everything was read";
	case ETIMEDOUT: return "the deadline passed";
	case EUSERS: return "every cursor slot of the ring is taken";
	case EINTR: return "interrupted: shmring_*_interrupt(), or a signal with "
			   "shmring_set_eintr()";
	case EOVERFLOW: return "the producer overwrote messages this consumer had not read (see shmring_lost)";
	case ENOLCK: return "no record lock available for the notify hook (the system's lock table is full)";
	default: return "unknown error";
	}
}
