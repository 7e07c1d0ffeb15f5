#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs the performance harness (any scenario and flags) under `perf stat`
# with the software events that work on virtual machines: task-clock,
# context switches, cpu migrations, page faults; and, where the tracepoint
# is readable, the system-call count.  Children are counted with their
# parent (perf stat follows forks).
#   tools/perf-stat.sh [harness flags]      e.g. tools/perf-stat.sh --rtt --only shmring
# Environment: BUILD (default build), PERF_EVENTS to replace the event list.
set -eu
BUILD=${BUILD:-build}
BIN=$BUILD/perf/shmring-perf
command -v perf >/dev/null 2>&1 || { echo "perf-stat: skipped: perf is not installed (apt-get install linux-perf)" >&2; exit 0; }
[ -x "$BIN" ] || make --no-print-directory perf-build
EV=${PERF_EVENTS:-task-clock,context-switches,cpu-migrations,page-faults}
if perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
	EV="$EV,raw_syscalls:sys_enter"
fi
exec perf stat -e "$EV" -- "$BIN" --no-plot --out "${PERF_OUT:-perf/results}" "$@"
