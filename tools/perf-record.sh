#!/bin/sh
# SPDX-License-Identifier: MIT
# Profiles the performance harness with `perf record -g` (cpu-clock: the
# hardware cycles event is not available on these VMs), then prints the
# hottest call chains.  The data file stays in perf/results/ for
# `perf report -i FILE`.
#   tools/perf-record.sh [harness flags]    e.g. tools/perf-record.sh --throughput --sizes 64 --only shmring
# Environment: BUILD (default build), PERF_FREQ (samples/s, default 4999).
set -eu
BUILD=${BUILD:-build}
BIN=$BUILD/perf/shmring-perf
command -v perf >/dev/null 2>&1 || { echo "perf-record: skipped: perf is not installed (apt-get install linux-perf)" >&2; exit 0; }
[ -x "$BIN" ] || make --no-print-directory perf-build
mkdir -p perf/results
OUT=perf/results/record-$(date +%Y%m%d-%H%M%S).data
perf record -g -e cpu-clock -F "${PERF_FREQ:-4999}" -o "$OUT" -- \
	"$BIN" --no-plot --out perf/results "$@"
perf report -i "$OUT" --stdio --no-children --percent-limit 2 --sort comm,symbol 2>/dev/null | head -60
echo "profile: $OUT (perf report -i $OUT)"
