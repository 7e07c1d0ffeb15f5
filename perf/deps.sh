#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the Debian packages of the performance harness's baselines, once.
# Idempotent and quiet: prints only what it installs or cannot install.
# Not root, or no apt-get: says what is missing; the build then skips those
# baselines ("skipped: <why>").  PERF_NO_INSTALL=1 never installs.
PKGS="libck-dev liburcu-dev dpdk-dev libiceoryx-binding-c-dev iceoryx gnuplot-nox libbenchmark-dev pkg-config linux-perf"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "${PERF_NO_INSTALL:-0}" = 1 ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	echo "perf: not installing (need root and apt-get, PERF_NO_INSTALL unset); missing:$missing" >&2
	echo "perf: baselines from missing packages will be skipped" >&2
	exit 0
fi

echo "perf: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# One package at a time, so that one unavailable package skips only itself.
if ! apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
	apt-get update -qq >/dev/null 2>&1 || true
	for p in $missing; do
		apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 ||
			echo "perf: could not install $p; what needs it will be skipped" >&2
	done
fi
exit 0
