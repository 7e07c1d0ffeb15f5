#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs one libFuzzer target for a while and prints a one-line summary.
# Usage: fuzz/run-fuzz.sh BUILD_DIR TARGET SECONDS [libFuzzer flags...]
#   Runs BUILD_DIR/fuzz_TARGET on BUILD_DIR/corpus-TARGET/, into which the
#   seeds of fuzz/corpus/TARGET/ and the saved findings fuzz/crashes/TARGET-*
#   are copied first (the corpus is kept between
#   runs, so a run continues from what earlier runs found; the repository's
#   seeds are never written).  Crash, leak and timeout inputs go to
#   BUILD_DIR/artifacts-TARGET/, the full log to BUILD_DIR/fuzz_TARGET.log.
#   Exit status: 0, or 1 if the target found something.
set -eu
build=$1 target=$2 secs=$3
shift 3
bin=$build/fuzz_$target
seeds=fuzz/corpus/$target
corpus=$build/corpus-$target
artifacts=$build/artifacts-$target
name=fuzz_$target

mkdir -p "$corpus" "$artifacts"
if [ -d "$seeds" ]; then
	for f in "$seeds"/*; do
		[ -f "$f" ] && cp "$f" "$corpus/seed-$(basename "$f")"
	done
fi
# The saved findings seed the search too: their neighbourhoods are where the
# library was weak.
for f in fuzz/crashes/"$target"-*; do
	[ -f "$f" ] && cp "$f" "$corpus/found-$(basename "$f")"
done
log=$build/fuzz_$target.log
rc=0
t0=$(date +%s)
"$bin" -max_total_time="$secs" -print_final_stats=1 \
	-artifact_prefix="$artifacts/" "$@" "$corpus" >"$log" 2>&1 || rc=$?
elapsed=$(($(date +%s) - t0))

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
rate=?
[ -n "$execs" ] && [ "$elapsed" -gt 0 ] && rate=$((execs / elapsed))
last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
cov=$(printf '%s\n' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
ft=$(printf '%s\n' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
units=$(find "$corpus" -type f | wc -l)
printf '  FUZZ   %-14s %s execs in %ss, %s exec/s, cov %s, ft %s, corpus %s\n' \
	"$name" "${execs:-?}" "$elapsed" "$rate" "${cov:-?}" "${ft:-?}" "$units"
if [ "$rc" != 0 ]; then
	echo "  FUZZ   $name FAILED (exit $rc); log: $log" >&2
	grep -E 'ERROR|SUMMARY|runtime error|API promise|Test unit written|DEADLY|timeout' "$log" |
		head -n 12 >&2 || true
	exit 1
fi
