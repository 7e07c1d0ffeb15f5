/* SPDX-License-Identifier: MIT */
/*
 * membarrier-cost: what one membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)
 * costs, the call every libshmring endpoint makes before it sleeps (the
 * asymmetric fences of perf/RESULTS.md, change 2), when N registered
 * processes make it at once.  Each process registers, then times 20000
 * calls; N = 1 is the call alone, N >= 2 adds the interrupts that each call
 * sends to the CPUs running the others, and their serialisation in the
 * kernel.  With "spin", only the first process calls; the others spin in
 * user space (a busy peer, such as a producer working between messages),
 * and each call interrupts them.
 *
 *   cc -O2 -Wall -Wextra -o membarrier-cost perf/experiments/membarrier-cost.c
 *   ./membarrier-cost 1; ./membarrier-cost 2; ./membarrier-cost 5; ./membarrier-cost 2 spin
 */
#define _GNU_SOURCE
#include <linux/membarrier.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CALLS 20000

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	int procs = argc > 1 ? atoi(argv[1]) : 1;
	if (procs < 1 || procs > 64) {
		fprintf(stderr, "usage: membarrier-cost [processes 1..64]\n");
		return 2;
	}
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0)) {
		perror("membarrier register");
		return 1;
	}
	int spin = argc > 2 && argv[2][0] == 's';
	volatile int *stop = spin ? mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_ANONYMOUS, -1, 0) : NULL;
	if (stop == MAP_FAILED)
		return 1;
	for (int i = 1; i < procs; i++)
		if (fork() == 0) {
			if (!spin)
				break;
			unsigned long n = 0;
			while (!*stop)
				n++;
			_exit(n == 0);
		}
	double t0 = now();
	for (int i = 0; i < CALLS; i++)
		if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0)) {
			perror("membarrier");
			return 1;
		}
	printf("pid %d: %.2f us a call, %d processes %s\n", (int)getpid(),
	       (now() - t0) / CALLS * 1e6, procs, spin ? "(the others spinning)" : "calling");
	if (stop)
		*stop = 1;
	while (wait(NULL) > 0)
		;
	return 0;
}
