#!/bin/sh
# SPDX-License-Identifier: MIT
# make model: checks model/shmring.pml with spin, then two copies with a
# seeded bug each, which spin must catch (else this fails):
#   bug-membarrier  a consumer about to sleep does not call asym_fence()
#                   (membarrier, wait.c:301) while the producer waking it is
#                   light (no fence after storing tail, wait.c:209)
#   bug-recheck     a consumer does not re-check for data after announcing
#                   itself as a sleeper (wait.c:302)
# (line numbers: src/ at commit a144a4e).
# Runs: safety (assertions + invalid end states), then the LTL property
# "done" (everybody finishes).  MODEL_FAIR=1 adds the LTL run under weak
# fairness (minutes, a few GB).  Needs spin (installed with apt-get when
# missing and run as root) and a C compiler.
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
for b in membarrier recheck; do
	if cmp -s "$work/ok.pml" "$work/bug-$b.pml"; then
		echo "error: could not seed bug-$b (marker not found in shmring.pml)" >&2
		exit 1
	fi
done

# run NAME MODE: MODE safety or ltl or fair; prints spin's verdict; returns
# 0 if no error was found, 1 if one was.
run() {
	name=$1 mode=$2
	d=$work/$name-$mode
	mkdir -p "$d"
	cp "$work/$name.pml" "$d/m.pml"
	(cd "$d" && spin -a m.pml >/dev/null)
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
	printf '  %-15s %-7s errors %s, %s states, depth %s, %s s  %s\n' "$name" "$mode" \
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

echo "model: one producer, two consumers, a ring of 2 records, 3 messages, x86-TSO store buffers, light wakers, membarrier in the sleepers"
status=0
run ok safety || { echo "FAIL: the correct model has an error" >&2; status=1; }
run ok ltl || { echo "FAIL: the correct model violates ltl done" >&2; status=1; }
if [ "${MODEL_FAIR:-0}" = 1 ]; then
	run ok fair || { echo "FAIL: the correct model violates ltl done (fair)" >&2; status=1; }
fi
for b in membarrier recheck; do
	if run "bug-$b" safety; then
		echo "FAIL: spin did not find the seeded bug bug-$b" >&2
		status=1
	else
		echo "  ok: spin found the seeded bug bug-$b"
	fi
done
[ $status = 0 ] && echo "model: passed (correct model clean, both seeded bugs found)"
exit $status
