#!/bin/sh
# SPDX-License-Identifier: MIT
# Makes sure Criterion (the test framework) is installed.  As root on Debian
# it installs libcriterion-dev; otherwise it says what to install and fails.
set -eu
have() {
	printf '#include <criterion/criterion.h>\nint main(void){return 0;}\n' |
		${CC:-cc} -x c - -o /dev/null -lcriterion >/dev/null 2>&1
}
have && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "  DEPS   installing libcriterion-dev (Criterion test framework)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q libcriterion-dev >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libcriterion-dev >/dev/null; }
	have && exit 0
fi
echo "error: the tests need Criterion; install it, e.g.: sudo apt-get install libcriterion-dev" >&2
exit 1
