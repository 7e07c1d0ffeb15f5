/* SPDX-License-Identifier: MIT */
#ifndef SHMRING_PERF_RUN_H
#define SHMRING_PERF_RUN_H
#include "perf.h"
/* The two cpus: role 0 on g_cpu[0], the others on g_cpu[1]. */
extern int g_cpu[2];
/* Runs one case; *out (free with run_free()) holds what the roles measured
 * and, on failure (-1), why in errmsg. */
int run_once(const struct mech *m, const struct params *p, struct bench **out);
void run_free(struct bench *b);
#endif
