#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs each example as a test: it must exit 0 within the timeout and, where
# tests/examples/<name>.expected exists, print exactly that.
# Usage: run-examples.sh EXAMPLE...
set -u
fail=0
for e in "$@"; do
	name=${e##*/}
	out=$(timeout -k 5 60 "$e" 2>&1); rc=$?
	exp=tests/examples/$name.expected
	if [ $rc != 0 ]; then
		echo "  FAIL  example $name: exit $rc"; printf '%s\n' "$out" | sed 's/^/    /'; fail=1
	elif [ -f "$exp" ] && [ "$out" != "$(cat "$exp")" ]; then
		echo "  FAIL  example $name: output differs from $exp:"
		printf '%s\n' "$out" | diff "$exp" - | sed 's/^/    /'; fail=1
	else
		echo "  ok    example $name"
	fi
done
exit $fail
