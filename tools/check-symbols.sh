#!/bin/sh
# SPDX-License-Identifier: MIT
# The shared library must export exactly the functions the header declares,
# and the version script must list exactly those.
# Usage: check-symbols.sh LIB.so HEADER MAPFILE
set -eu
lib=$1 hdr=$2 map=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 == "T" {print $3}' | sed 's/@.*//' | sort -u > "$tmp/exported"
grep -o 'SHMRING_API [^(]*(' "$hdr" | sed 's/($//; s/.*[ *]//' | grep "^shmring_" | sort -u > "$tmp/header"
sed -n 's/^[[:space:]]*\(shmring_[a-z_0-9]*\);/\1/p' "$map" | sort -u > "$tmp/map"
ok=1
if ! cmp -s "$tmp/exported" "$tmp/header"; then
	echo "check-symbols: exported symbols differ from the header:"; diff "$tmp/header" "$tmp/exported" || true; ok=0
fi
if ! cmp -s "$tmp/map" "$tmp/header"; then
	echo "check-symbols: version script differs from the header:"; diff "$tmp/header" "$tmp/map" || true; ok=0
fi
v=$(sed -n 's/^\#define SHMRING_VERSION_MAJOR \([0-9]*\)/\1/p' "$hdr").$(sed -n 's/^\#define SHMRING_VERSION_MINOR \([0-9]*\)/\1/p' "$hdr")
grep -q "^SHMRING_$v {" "$map" || { echo "check-symbols: $map has no node SHMRING_$v for the header's version"; ok=0; }
[ $ok = 1 ] && echo "  check-symbols: $(wc -l < "$tmp/header") functions, header = exports = version script"
[ $ok = 1 ]
