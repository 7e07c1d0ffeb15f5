#!/bin/sh
# SPDX-License-Identifier: MIT
# Packaging test: "make install" into a staging directory (DESTDIR) for a
# prefix that is not a system one, then builds examples/pubsub.c as C and as
# C++ with nothing but "pkg-config --cflags --libs shmring", runs both, and
# checks the installed tool and manual pages.  Installs pkg-config and g++
# with apt-get when run as root; otherwise skips what it cannot do, saying so.
# Usage: tools/package-test.sh   (MAKE, CC)
set -u
root=$(cd "$(dirname "$0")/.." && pwd) || exit 1
cd "$root" || exit 1
MAKE=${MAKE:-make}
CC=${CC:-cc}
CXX=${CXX:-g++}
prefix=/opt/shmring
example=examples/pubsub.c
expected=tests/examples/pubsub.expected

say() { echo "  package-test: $*"; }
fail() { say "FAIL: $*"; exit 1; }

# Installs a Debian package if we are root and have apt-get.
ensure() { # command package
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "  DEPS   installing $2"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -q "$2" >/dev/null 2>&1 ||
			{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$2" >/dev/null 2>&1; }
	fi
	command -v "$1" >/dev/null 2>&1
}

if ! ensure pkg-config pkg-config; then
	say "SKIP: pkg-config is not installed (as root: apt-get install pkg-config)"
	exit 0
fi
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
stage=$tmp/stage

# A build directory of its own, so that shmring.pc is made for this prefix.
$MAKE --no-print-directory -s BUILD="$tmp/build" PREFIX="$prefix" DESTDIR="$stage" \
	CC="$CC" SAN= install >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log"; fail "make install failed"; }
for f in include/shmring.h lib/libshmring.a lib/libshmring.so lib/pkgconfig/shmring.pc \
	bin/shmring share/man/man1/shmring.1 share/man/man3/shmring_create.3 \
	share/man/man7/shmring.7; do
	[ -e "$stage$prefix/$f" ] || fail "make install did not install $prefix/$f"
done
grep -qx "prefix=$prefix" "$stage$prefix/lib/pkgconfig/shmring.pc" ||
	fail "shmring.pc does not say prefix=$prefix"

# pkg-config sees the staged tree as if it were installed (sysroot).
export PKG_CONFIG_PATH="$stage$prefix/lib/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$stage"
flags=$(pkg-config --cflags --libs shmring) || fail "pkg-config --cflags --libs shmring failed"
ver=$(pkg-config --modversion shmring)
export LD_LIBRARY_PATH="$stage$prefix/lib"

run() { # program label
	out=$(timeout -k 5 60 "$1" 2>&1); rc=$?
	[ $rc = 0 ] || { printf '%s\n' "$out"; fail "$2 exited $rc"; }
	if [ -f "$expected" ] && [ "$out" != "$(cat "$expected")" ]; then
		printf '%s\n' "$out" | diff "$expected" - | sed 's/^/    /'
		fail "$2 printed something else than $expected"
	fi
}

# shellcheck disable=SC2086 # the flags are words
$CC -o "$tmp/pubsub-c" "$example" $flags 2>"$tmp/cc.log" ||
	{ cat "$tmp/cc.log"; fail "$CC could not build $example with: $flags"; }
run "$tmp/pubsub-c" "the C build"
# It must use the installed library, not one from the source tree.
ldd "$tmp/pubsub-c" 2>/dev/null | grep -q "$stage$prefix/lib/libshmring.so" ||
	fail "the C build does not load the installed libshmring.so"
done_what="C ($CC)"

if ensure "$CXX" g++; then
	# shellcheck disable=SC2086
	$CXX -x c++ -o "$tmp/pubsub-cxx" "$example" -x none $flags 2>"$tmp/cxx.log" ||
		{ cat "$tmp/cxx.log"; fail "$CXX could not build $example as C++ with: $flags"; }
	run "$tmp/pubsub-cxx" "the C++ build"
	done_what="$done_what and C++ ($CXX)"
else
	say "SKIP C++: $CXX is not installed (as root: apt-get install g++)"
fi

v=$("$stage$prefix/bin/shmring" --version) || fail "the installed shmring tool does not run"
[ "$v" = "shmring $ver" ] || fail "shmring --version says '$v', pkg-config says $ver"
if command -v man >/dev/null 2>&1; then
	MANWIDTH=80 MANPAGER=cat man -l "$stage$prefix/share/man/man1/shmring.1" 2>&1 |
		grep -q 'shmring' || fail "the installed shmring(1) does not render"
fi
say "ok: installed $ver into DESTDIR$prefix; $example built as $done_what with pkg-config only, and ran"
