#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs the stress program COUNT times for SECONDS each, each with a fresh
# seed, and stops at the first failure, printing how to rerun it.
# usage: stress-loop.sh COUNT SECONDS STRESS-BINARY [ARGS...]
set -u
count=$1 secs=$2 bin=$3
shift 3
log=$(mktemp /tmp/stress-loop.XXXXXX)
trap 'rm -f "$log"' EXIT
i=1
while [ "$i" -le "$count" ]; do
	seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
	printf 'stress-loop %d/%d: seed %s, %s s ... ' "$i" "$count" "$seed" "$secs"
	if STRESS_SEED=$seed STRESS_SECONDS=$secs "$bin" "$@" >"$log" 2>&1; then
		grep '^stress passed' "$log" | sed 's/^stress passed: //' | cut -c1-60
	else
		echo FAILED
		grep -E 'VIOLATION|FAILED|ERROR|rerun' "$log" | head -40
		echo "stress-loop: run $i failed; full log in $log.kept"
		cp "$log" "$log.kept"
		echo "rerun: STRESS_SEED=$seed STRESS_SECONDS=$secs $bin $*"
		exit 1
	fi
	i=$((i + 1))
done
echo "stress-loop: $count runs passed"
