#!/bin/sh
# SPDX-License-Identifier: MIT
# make demo: shows libshmring doing its job, with the shmring tool only.
# On a fresh ring, one producer ("shmring pub") publishes numbered lines for
# a few seconds to two broadcast consumers (each must see every message, in
# order) and to a group of two workers (each message to exactly one of them).
# "shmring stat" is shown while they run; the summary checks that nothing
# was lost, duplicated or reordered.  Exit 0 only then.
# Usage: tools/demo.sh PATH/TO/shmring   (DEMO_MESSAGES, DEMO_SECONDS)
set -u
tool=${1:?usage: demo.sh PATH/TO/shmring}
N=${DEMO_MESSAGES:-400000}
SECS=${DEMO_SECONDS:-4}
name=/shmring-demo-$$
tmp=$(mktemp -d) || exit 1
pids=""

cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	"$tool" rm "$name" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

now() { date +%s.%N; }
say() { echo "demo: $*"; }

"$tool" create "$name" --capacity 64K --policy block || exit 1
say "ring $name: 64K bytes, policy block (lossless: the producer waits for the slowest)"

"$tool" tail "$name" -f >"$tmp/bcast-a" & pids="$pids $!"
"$tool" tail "$name" -f >"$tmp/bcast-b" & pids="$pids $!"
"$tool" tail "$name" -f --group workers >"$tmp/worker-1" & pids="$pids $!"
"$tool" tail "$name" -f --group workers >"$tmp/worker-2" & pids="$pids $!"
consumers=$pids

# Wait until the four consumers are attached, so they see message 1.
i=0
until "$tool" stat "$name" --json 2>/dev/null | grep -q '"consumers": 4,'; do
	i=$((i + 1))
	[ $i -lt 250 ] || { say "FAILED: the consumers did not attach"; exit 1; }
	sleep 0.02
done
say "2 broadcast consumers and a group \"workers\" of 2 members attached"

# The producer: N numbered lines in 40 bursts spread over SECS seconds.
chunk=$(( (N + 39) / 40 ))
pause=$(awk -v s="$SECS" 'BEGIN { printf "%.3f", s / 40 }')
say "publishing $N messages in 40 bursts over about $SECS s ..."
start=$(now)
(
	i=1
	while [ $i -le "$N" ]; do
		j=$((i + chunk - 1)); [ $j -le "$N" ] || j=$N
		seq "$i" "$j"
		i=$((j + 1))
		sleep "$pause"
	done
) | "$tool" pub "$name" & producer=$!
pids="$pids $producer"

# stat while they run; remember the largest lag seen.
maxlag=0
shown=0
next=$(awk -v t="$(now)" 'BEGIN { printf "%.3f", t + 1.0 }')
while kill -0 "$producer" 2>/dev/null; do
	lag=$("$tool" stat "$name" --json 2>/dev/null |
		grep -o '"lag_messages": [0-9]*' | awk '{ if ($2 > m) m = $2 } END { print m + 0 }')
	[ "${lag:-0}" -gt "$maxlag" ] && maxlag=$lag
	if [ $shown -lt 3 ] && awk -v n="$(now)" -v t="$next" 'BEGIN { exit !(n >= t) }'; then
		shown=$((shown + 1))
		echo
		echo "\$ shmring stat $name"
		"$tool" stat "$name"
		echo
		next=$(awk -v t="$(now)" 'BEGIN { printf "%.3f", t + 1.2 }')
	fi
	sleep 0.05
done
wait "$producer"; prc=$?
end=$(now)

# The consumers stop by themselves once they drained the closed ring.
i=0
for p in $consumers; do
	while kill -0 "$p" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 500 ] || { say "FAILED: a consumer did not stop after the producer closed"; exit 1; }
		sleep 0.02
	done
	wait "$p" || { say "FAILED: a consumer exited with an error"; exit 1; }
done
pids=""

seq 1 "$N" >"$tmp/expected"
fail=0
count() { wc -l <"$1" | tr -d ' '; }
check_bcast() {
	if cmp -s "$tmp/expected" "$tmp/$1"; then
		printf '  %-18s %s of %s, in order\n' "broadcast ${1#bcast-}" "$(count "$tmp/$1")" "$N"
	else
		printf '  %-18s %s of %s: WRONG (lost, duplicated or out of order)\n' \
			"broadcast ${1#bcast-}" "$(count "$tmp/$1")" "$N"
		fail=1
	fi
}
say "summary"
rate=$(awk -v n="$N" -v a="$start" -v b="$end" 'BEGIN { printf "%.1f s, %.0f messages/s (paced)", b - a, n / (b - a) }')
printf '  %-18s %s messages in %s\n' "published" "$N" "$rate"
[ "$prc" = 0 ] || { echo "  the producer failed (exit $prc)"; fail=1; }
check_bcast bcast-a
check_bcast bcast-b
w1=$(count "$tmp/worker-1"); w2=$(count "$tmp/worker-2")
ordered=1
for w in worker-1 worker-2; do
	awk 'NR > 1 && $1 + 0 <= prev { exit 1 } { prev = $1 + 0 }' "$tmp/$w" || ordered=0
done
sort -n "$tmp/worker-1" "$tmp/worker-2" >"$tmp/group"
if cmp -s "$tmp/expected" "$tmp/group" && [ $ordered = 1 ]; then
	printf '  %-18s %s of %s (%s + %s), each exactly once\n' "group workers" \
		$((w1 + w2)) "$N" "$w1" "$w2"
else
	printf '  %-18s %s of %s (%s + %s): WRONG\n' "group workers" $((w1 + w2)) "$N" "$w1" "$w2"
	fail=1
fi
printf '  %-18s %s messages behind the producer\n' "largest lag seen" "$maxlag"
if [ $fail = 0 ]; then
	printf '  %-18s 0 lost, 0 duplicated, 0 out of order\n' "result"
	echo
	echo "\$ shmring bench --seconds 0.25"
	"$tool" bench --seconds 0.25 || fail=1
fi
[ $fail = 0 ] && say "OK" || say "FAILED"
exit $fail
