#!/bin/sh
# SPDX-License-Identifier: MIT
# Checks the manual pages:
#  1. every function declared with SHMRING_API in include/shmring.h has a
#     page man/man3/<name>.3 (a full page or a symbolic link to one), and the overview man/man7/shmring.7 exists;
#  2. every page renders without a single warning, with
#     "man --warnings -l -Tutf8" and "groff -man -ww -z" (whichever is
#     installed; skipped with a message if neither is).
# Prints one summary line on success; exits 1 naming what is wrong.
# Usage: tools/check-man.sh   (from anywhere inside the repository)
set -u

root=$(cd "$(dirname "$0")/.." && pwd) || exit 1
hdr=$root/include/shmring.h
mandir=$root/man
fail=0

[ -f "$hdr" ] || { echo "check-man: $hdr not found"; exit 1; }
[ -d "$mandir" ] || { echo "check-man: $mandir not found"; exit 1; }

# Function names: for each declaration that starts with SHMRING_API (not the
# #define), the identifier right before the first "(", even if the return
# type and the name are split over several lines.
names=$(awk '
	/^[ \t]*#/ { next }
	/SHMRING_API/ { decl = ""; on = 1 }
	on {
		decl = decl " " $0
		if (index(decl, "(")) {
			s = substr(decl, 1, index(decl, "(") - 1)
			sub(/[ \t]+$/, "", s)
			n = split(s, w, /[ \t*]+/)
			print w[n]
			on = 0
		}
	}' "$hdr" | sort -u)
nfunc=$(printf '%s\n' "$names" | grep -c .)
if [ "$nfunc" -eq 0 ]; then
	echo "check-man: no SHMRING_API declarations found in $hdr"
	exit 1
fi

# 1. One page per function, and the overview.
missing=""
for n in $names; do
	[ -f "$mandir/man3/$n.3" ] || missing="$missing $n"
done
if [ -n "$missing" ]; then
	echo "check-man: missing man/man3/<name>.3 for:$missing"
	fail=1
fi
[ -f "$mandir/man7/shmring.7" ] || { echo "check-man: missing man/man7/shmring.7"; fail=1; }

# Link pages are symbolic links (so that "man -l man/man3/<page>" renders
# them from anywhere); each must point at a page that exists here.
nlinks=0
for f in "$mandir"/man[1-9]/*.[1-9]; do
	if [ -L "$f" ]; then
		nlinks=$((nlinks + 1))
		[ -f "$f" ] || { echo "check-man: ${f##*/}: link target $(readlink "$f") does not exist"; fail=1; }
	elif grep -q '^\.so ' "$f"; then
		echo "check-man: ${f##*/}: use a symbolic link instead of .so"; fail=1
	fi
done

# 2. Render every page and collect warnings, from man/ as after
# installation, so that ".so manN/page" requests resolve.
have_man=0 have_groff=0
command -v man >/dev/null 2>&1 && have_man=1
command -v groff >/dev/null 2>&1 && have_groff=1
npages=0
tools=""
if [ $have_man = 0 ] && [ $have_groff = 0 ]; then
	echo "check-man: neither man nor groff is installed: not rendering the pages"
else
	[ $have_man = 1 ] && tools="man"
	[ $have_groff = 1 ] && tools="${tools:+$tools, }groff"
	tmp=$(mktemp -d 2>/dev/null) || { tmp=${TMPDIR:-/tmp}/check-man.$$ && mkdir "$tmp"; } ||
		{ echo "check-man: cannot make a temporary directory"; exit 1; }
	trap 'rm -rf "$tmp"' EXIT
	trap 'exit 1' HUP INT TERM
	for f in "$mandir"/man[1-9]/*.[1-9]; do
		[ -f "$f" ] || continue
		base=${f##*/}
		sec=${base##*.}
		npages=$((npages + 1))
		if [ $have_man = 1 ]; then
			(cd "$mandir" && MANWIDTH=80 MANPAGER=cat PAGER=cat \
				man --warnings -l -Tutf8 "man$sec/$base" >/dev/null 2>"$tmp/err")
			rc=$?
			if [ $rc != 0 ] || [ -s "$tmp/err" ]; then
				echo "check-man: man: $base (exit $rc):"; sed 's/^/    /' "$tmp/err"; fail=1
			fi
		fi
		if [ $have_groff = 1 ]; then
			(cd "$mandir" && groff -Tutf8 -s -t -man -ww -z "man$sec/$base" 2>"$tmp/err")
			rc=$?
			if [ $rc != 0 ] || [ -s "$tmp/err" ]; then
				echo "check-man: groff: $base (exit $rc):"; sed 's/^/    /' "$tmp/err"; fail=1
			fi
		fi
	done
fi

[ $fail = 0 ] || exit 1
if [ -n "$tools" ]; then
	echo "  check-man: $nfunc functions documented ($nlinks link pages), $npages pages render without warnings ($tools)"
else
	echo "  check-man: $nfunc functions documented ($nlinks link pages); rendering skipped"
fi
