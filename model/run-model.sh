#!/bin/sh
# SPDX-License-Identifier: MIT
# make model: checks model/shmring.pml with spin, then copies with a
# seeded bug each, which spin must catch (else this fails):
#   bug-membarrier  a sleeper never calls asym_fence() (membarrier) in
#                   asym_sleep(), while the wakers skip their fence in
#                   the LIGHT mode
#   bug-recheck     a consumer does not re-check for data after announcing
#                   itself as a sleeper (wait.c:302 at commit a144a4e)
#   bug-heavy       a light waker does not fence when the mode is not
#                   LIGHT (waker_fence(), internal.h)
#   bug-arming      a sleeper that arms the mode makes it HEAVY before its
#                   membarrier() instead of after it (asym_sleep(), wait.c)
# The fence modes (layout 6) are checked one direction at a time with 3
# messages, the other kept LIGHT as before layout 6 (its wakers never
# fence, its sleepers always call membarrier()): config cmode (-DMODES=1,
# the consumers' sleeps switch) and config pmode (-DMODES=2, the
# producer's), side by side.  Both directions switching at once with 3
# messages is over 240M states and 14 GB, more than these machines hold;
# config both (-DMODES=3 -DNMSG=2) checks that with 2 messages (16M
# states, 2.6 GB, under a minute).
# Runs: safety (assertions + invalid end states: with no timeouts in the
# model, a lost wake-up leaves a process blocked for ever) of the three
# configs, then the seeded bugs in configs cmode and both.  MODEL_LTL=1
# adds the LTL property "done" (everybody finishes) for configs cmode and
# pmode (about 10 minutes and 10 GB each); MODEL_FAIR=1 adds it under weak
# fairness.  Needs spin (installed with apt-get when missing and run as
# root) and a C compiler.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
CC=${CC:-cc}
if ! command -v spin >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "  DEPS   installing spin (Debian package spin)"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -q spin >/dev/null 2>&1 ||
			{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q spin >/dev/null; }
	fi
	command -v spin >/dev/null 2>&1 ||
		{ echo "error: make model needs spin: apt-get install spin" >&2; exit 1; }
fi
command -v "$CC" >/dev/null 2>&1 || { echo "error: make model needs a C compiler ($CC)" >&2; exit 1; }

work=$(mktemp -d /tmp/shmring-model.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp "$here/shmring.pml" "$work/ok.pml"
sed '/@BUG-MEMBARRIER@/d' "$here/shmring.pml" > "$work/bug-membarrier.pml"
sed 's|^\(\t*\)now = .*@BUG-RECHECK@.*|\1now = 0;   /* seeded bug: no re-check */|' \
	"$here/shmring.pml" > "$work/bug-recheck.pml"
sed '/@BUG-HEAVY@/d' "$here/shmring.pml" > "$work/bug-heavy.pml"
sed '/@BUG-ARMING@/s|mem\[a\] = m + ARMING; arm = 1|mem[a] = m + HEAVY; arm = 0|' \
	"$here/shmring.pml" > "$work/bug-arming.pml"
for b in membarrier recheck heavy arming; do
	if cmp -s "$work/ok.pml" "$work/bug-$b.pml"; then
		echo "error: could not seed bug-$b (marker not found in shmring.pml)" >&2
		exit 1
	fi
done

# run NAME MODE CFG: MODE safety or ltl or fair, CFG cmode or pmode; prints
# spin's verdict; returns 0 if no error was found, 1 if one was.
run() {
	name=$1 mode=$2 cfg=$3
	case $cfg in
	cmode) defs="-DMODES=1" ;;
	pmode) defs="-DMODES=2" ;;
	both) defs="-DMODES=3 -DNMSG=2" ;;
	esac
	d=$work/$name-$mode-$cfg
	mkdir -p "$d"
	cp "$work/$name.pml" "$d/m.pml"
	# shellcheck disable=SC2086
	(cd "$d" && spin $defs -a m.pml >/dev/null)
	case $mode in
	safety) flags="-DSAFETY -DNOCLAIM -DCOLLAPSE"; rflags="-m200000" ;;
	ltl) flags="-DCOLLAPSE"; rflags="-a -m200000" ;;
	fair) flags="-DCOLLAPSE -DNFAIR=3"; rflags="-a -f -m200000" ;;
	esac
	# shellcheck disable=SC2086
	(cd "$d" && $CC -O2 $flags -w -o pan pan.c && ./pan $rflags > out 2>&1) || true
	errs=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$d/out")
	states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$d/out")
	secs=$(sed -n 's/^pan: elapsed time \([0-9.e+]*\) seconds/\1/p' "$d/out")
	depth=$(sed -n 's/.*depth reached \([0-9]*\),.*/\1/p' "$d/out")
	what=$(grep -E '^pan:[0-9]+:|acceptance cycle|assertion violated' "$d/out" | head -1 || true)
	printf '  %-15s %-7s %-6s errors %s, %s states, depth %s, %s s  %s\n' "$name" "$mode" "$cfg" \
		"${errs:-?}" "${states:-?}" "${depth:-?}" "${secs:-?}" "$what"
	if [ -z "$errs" ]; then
		echo "error: spin did not finish for $name $mode:" >&2
		tail -20 "$d/out" >&2
		exit 1
	fi
	if [ "$errs" != 0 ] && [ -f "$d/m.pml.trail" ]; then
		# Who is left blocked in a futex wait at the end of the trail.
		# fw[i] = 1 + the futex word's address: 3 wake_seq, 6 prod_wake_seq.
		(cd "$d" && spin -t -p -g m.pml 2>/dev/null | grep -E 'fw\[' | tail -3 |
			awk '$3 == 3 { sub(/\]/, "", $1); sub(/.*\[/, "", $1);
				printf "      trail ends with consumer %s asleep in futex_wait(wake_seq) for ever: a lost wake-up\n", $1 }
			     $3 == 6 { print "      trail ends with the producer asleep in futex_wait(prod_wake_seq) for ever" }') || true
	fi
	[ "$errs" = 0 ]
}

echo "model: one producer, two consumers, a ring of 2 records, 3 messages (config both: 2), x86-TSO store buffers, light wakers, fence modes (membarrier in the sleepers, or fences in the wakers)"
status=0
# both: runs MODE for the two configs side by side (one CPU each).
both() {
	mode=$1 what=$2
	run ok "$mode" cmode > "$work/both-cmode" 2>&1 & pc=$!
	run ok "$mode" pmode > "$work/both-pmode" 2>&1 & pp=$!
	rc=0
	wait $pc || rc=1
	cat "$work/both-cmode"
	wait $pp || rc=1
	cat "$work/both-pmode"
	[ $rc = 0 ] || { echo "FAIL: the correct model $what" >&2; status=1; }
}
both safety "has an error"
run ok safety both || { echo "FAIL: the correct model has an error (config both)" >&2; status=1; }
if [ "${MODEL_LTL:-0}" = 1 ]; then
	both ltl "violates ltl done"
fi
if [ "${MODEL_FAIR:-0}" = 1 ]; then
	both fair "violates ltl done (fair)"
fi
# seeded NAME CFG: spin must find the seeded bug (its output in
# $work/seeded-NAME-CFG).
seeded() {
	if run "bug-$1" safety "$2"; then
		echo "FAIL: spin did not find the seeded bug bug-$1 (config $2)" >&2
		return 1
	fi
	echo "  ok: spin found the seeded bug bug-$1 (config $2)"
}
# Two at a time, one CPU each.
for pair in "heavy arming cmode" "membarrier recheck cmode" "heavy arming both" \
	"membarrier recheck both"; do
	set -- $pair
	seeded "$1" "$3" > "$work/seeded-$1-$3" 2>&1 & p1=$!
	seeded "$2" "$3" > "$work/seeded-$2-$3" 2>&1 & p2=$!
	wait $p1 || status=1
	cat "$work/seeded-$1-$3"
	wait $p2 || status=1
	cat "$work/seeded-$2-$3"
done
[ $status = 0 ] && echo "model: passed (correct model clean in three configs, all four seeded bugs found in two)"
exit $status
