#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs each test program under a timeout, one test at a time, and prints a
# closing "N passed, N failed" line.  Usage: run-tests.sh BUILD_DIR PROG...
set -u
build=$1; shift
pass=0; fail=0; failed=""
: "${TEST_TIMEOUT:=1200}"
# Rings already in /dev/shm (another run's) are not ours to report.
before=$(ls /dev/shm 2>/dev/null | grep '^shmring-test' || true)
for t in "$@"; do
	name=${t##*/}
	start=$(date +%s)
	if timeout -k 10 "$TEST_TIMEOUT" "$t" -j1 --short-filename ${TEST_ARGS:-}; then
		pass=$((pass + 1)); res=ok
	else
		fail=$((fail + 1)); res=FAIL; failed="$failed $name"
	fi
	printf '  %-5s %s (%ss)\n' "$res" "$name" $(( $(date +%s) - start ))
done
# Leftover rings of a crashed test would fill /dev/shm over many runs.
left=$(ls /dev/shm 2>/dev/null | grep '^shmring-test' | grep -vxF "$before" || true)
[ -z "$before" ] && left=$(ls /dev/shm 2>/dev/null | grep '^shmring-test' || true)
if [ -n "$left" ]; then
	echo "  warning: tests left rings in /dev/shm:" $left
	fail=$((fail + 1)); failed="$failed leftover-shm"
fi
echo "test programs: $pass passed, $fail failed"
[ -z "$failed" ] || echo "failed:$failed"
[ "$fail" = 0 ]
