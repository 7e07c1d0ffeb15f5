/* SPDX-License-Identifier: MIT */
/* The shmring command line tool: what its files share. */
#ifndef SHMRING_TOOL_H
#define SHMRING_TOOL_H

#include <stdint.h>
#include <stdio.h>

#include "internal.h"

#define SHM_DIR "/dev/shm"

/* The name used in messages: "shmring". */
extern const char *prog;

/* Prints "shmring: <cmd>: <text>" and a newline on stderr. */
void err_line(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* "foo", "/foo" or "/dev/shm/foo" into "/foo" in buf (n bytes).  0, or -1
 * after printing why on stderr. */
int ring_name(const char *cmd, const char *arg, char *buf, size_t n);

/* "1M", "64k", "4096" into *v: 0, or -1 for a bad size. */
int parse_size(const char *s, uint64_t *v);
/* A decimal unsigned number: 0, or -1. */
int parse_u64(const char *s, uint64_t *v);
/* "1.5" seconds into nanoseconds: 0, or -1. */
int parse_seconds(const char *s, uint64_t *ns);

/* 1048576 -> "1M" (exact binary multiples only, else the number). */
void fmt_size(char *buf, size_t n, uint64_t v);

/* Monotonic nanoseconds. */
uint64_t mono_ns(void);

/* Is somebody holding the liveness byte of the ring's file?  1 yes, 0 no,
 * -1 cannot tell.  Works on a read-only descriptor. */
int byte_locked(int fd, uint64_t byte);

/* A read-only view of a named ring, for ls and stat: opens /dev/shm/NAME
 * with O_RDONLY and validates it with shmring_open_fd().  0 and *ring, or a
 * negative errno (-ENOENT, -EACCES, -EPROTO, -EAGAIN, ...). */
int open_readonly(const char *name, struct shmring **ring);

/* Subcommands: each returns the process exit status. */
int cmd_ls(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_pub(int argc, char **argv);
int cmd_tail(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Exit statuses. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#endif
