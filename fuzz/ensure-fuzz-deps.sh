#!/bin/sh
# SPDX-License-Identifier: MIT
# Makes sure clang can build libFuzzer targets with ASan and UBSan.  As root
# on Debian/Ubuntu it installs what is missing (clang, then the compiler-rt
# runtime that holds libFuzzer); otherwise it says what to install and fails.
# Usage: fuzz/ensure-fuzz-deps.sh [clang]
set -eu
CLANG=${1:-${FUZZ_CC:-clang}}

have() {
	command -v "$CLANG" >/dev/null 2>&1 || return 1
	dir=$(mktemp -d)
	printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
		>"$dir/t.c"
	ok=0
	"$CLANG" -fsanitize=fuzzer,address,undefined "$dir/t.c" -o "$dir/t" >/dev/null 2>&1 && ok=1
	rm -rf "$dir"
	[ "$ok" = 1 ]
}

have && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	install() {
		echo "  DEPS   installing $*"
		apt-get install -y -q "$@" >/dev/null 2>&1 ||
			{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$@" >/dev/null 2>&1; }
	}
	if ! command -v "$CLANG" >/dev/null 2>&1; then
		install clang || true
	fi
	have && exit 0
	# libFuzzer ships with compiler-rt: libclang-rt-N-dev on newer releases,
	# libfuzzer-N-dev / libclang-common-N-dev on older ones.
	ver=$("$CLANG" -dumpversion 2>/dev/null | cut -d. -f1 || true)
	if [ -n "$ver" ]; then
		for pkg in "libclang-rt-$ver-dev" "libfuzzer-$ver-dev" "libclang-common-$ver-dev"; do
			install "$pkg" || continue
			have && exit 0
		done
	fi
	have && exit 0
fi
echo "error: fuzzing needs clang with libFuzzer (-fsanitize=fuzzer); install e.g.:" >&2
echo "  sudo apt-get install clang libclang-rt-14-dev   (or libfuzzer-14-dev)" >&2
exit 1
