#!/bin/sh
# SPDX-License-Identifier: MIT
# Writes the seed corpora fuzz/corpus/open/ and fuzz/corpus/consume/ (small
# binary files, committed; rerun this after changing an input layout).  The
# byte layouts are described at the top of fuzz_open.c and fuzz_consume.c.
# Assumes 4 KiB pages (the library refuses a ring made for another size).
set -eu
cd "$(dirname "$0")"
O=corpus/open
C=corpus/consume
rm -rf "$O" "$C"
mkdir -p "$O" "$C"

# le VALUE BYTES: little-endian bytes of VALUE
le() {
	i=0
	while [ "$i" -lt "$2" ]; do
		printf "\\$(printf '%03o' $((($1 >> (8 * i)) & 255)))"
		i=$((i + 1))
	done
}
# b BYTE...: raw bytes given in decimal or 0x hex
b() {
	for x in "$@"; do le "$((x))" 1; done
}

# hdr POLICY NSLOTS CAPACITY [VERSION]: a valid 88-byte shm_header
hdr() {
	pol=$1 n=$2 cap=$3 ver=${4:-2}
	ctab=8192
	need=$((128 + n * 128))
	data=$((ctab + (need + 4095) / 4096 * 4096))
	le $((0x474e49524d485321)) 8 # magic "!SHMRING"
	le "$ver" 4                  # version
	le 88 4                      # header_size
	le $((data + cap)) 8         # total_size
	le "$cap" 8                  # capacity
	le 4096 8                    # prod_off
	le "$ctab" 8                 # ctab_off
	le "$data" 8                 # data_off
	le 4096 4                    # page_size
	le "$n" 4                    # nslots
	le 128 4                     # slot_size
	le "$pol" 4                  # policy
	le $((cap / 2 - 8)) 4        # max_message
	le 0 4                       # flags
	le 0 8                       # create_time
}

# ---- fuzz_open: raw mode (byte 0 bit 3: grow to total_size) -------------
{ b 0x08 0x00; hdr 0 4 4096; } >"$O/raw-block-4k"
{ b 0x08 0x80; hdr 1 2 8192; } >"$O/raw-overwrite-8k-oldest"
{ b 0x48 0x00; hdr 0 1 4096; } >"$O/raw-block-producer"
{ b 0x48 0x00; hdr 1 16 65536; } >"$O/raw-overwrite-producer"
{ b 0x0c 0x00; hdr 0 4 4096; } >"$O/raw-unsealed-memfd"
{ b 0x18 0x00; hdr 0 4 4096; } >"$O/raw-tmpfile"
{ b 0x28 0x00; hdr 0 4 4096; } >"$O/raw-readonly-fd"
{ b 0x08 0x00; hdr 0 4 4096 3; } >"$O/raw-wrong-version"
{ b 0x00 0x00; hdr 0 4 4096; } >"$O/raw-short"

# ---- fuzz_open: template mode --------------------------------------------
# byte 1: bit 0 OVERWRITE, bits 1-2 capacity, bits 3-4 slots, bits 5-6 scenario
b 0x01 0x00 0x00 >"$O/tmpl-block-fresh"
# scenario 1; patch: typed producer tail (sel 5, field 0), 3 records on
{ b 0x01 0x20 0x00 5 0 1 3; } >"$O/tmpl-block-tail"
# scenario 2 (group), 4 slots; patch: typed slot field pos of slot 1
{ b 0x41 0x50 0x00 6 1 0 1 0xfe; } >"$O/tmpl-block-group-pos"
# scenario 2 (group); patch: data bytes at 0 (a record length)
{ b 0x41 0x50 0x00 3 0 0 0 0 3 0xff 0xff 0; } >"$O/tmpl-block-group-data"
# OVERWRITE, scenario 2 (laps); patch: typed head (field 2), a record back
{ b 0x41 0x41 0x00 5 2 1 0xff; } >"$O/tmpl-ow-laps-head"
# OVERWRITE, scenario 3 (closed), 8 KiB; patch: head_seq
{ b 0x01 0x63 0x00 5 3 1 2; } >"$O/tmpl-ow-closed"
# template grown by one page (byte 0 bit 3, byte 2 = 1)
b 0x09 0x20 0x01 >"$O/tmpl-resized"

# ---- fuzz_consume ----------------------------------------------------------
# ops: 0-17 corrupt, 18 recv, 19 peek, 20 peek_batch, 21 recv_batch,
# 22 release, 23 lost, 24 wait, 25 send, 26 reserve, 27 commit, 28 abort,
# 29 producer wait, 30 shutdown, 31 info, 32 consumer open, 33 group open,
# 34 consumer close, 35 producer open, 36 producer close, 37 spin
# BLOCK, 3 messages, one group member: read, peek, release, info
{ b 0x00 0x13 10 20 0   18 0 5   19 1   20 0 4   22 1   21 1 7 5   31; } >"$C/block-basic"
# BLOCK, 4 messages, 3 members; corrupt a slot's pos, then read
{ b 0x20 0x34 8 8 8 8   9 1 1 1   18 1 5   21 2 3 3   18 3 5   22 1   31; } >"$C/block-group-pos"
# BLOCK: a bad record length at position 0 under a broadcast consumer
{ b 0x20 0x02 16 16   1 4 0 0 0 2 0xff 0xff 0xff 0x7f   18 0 5   19 0   21 0 2 4; } >"$C/block-bad-record"
# BLOCK: fill the ring, producer close and take over with a corrupt tail
{ b 0x00 0x0f 200 200 200 200 200 200 200 200 200 200 200 200 200 200 200 \
	25 1   36   2 1 1   35   25 0 9   18 0 5   27; } >"$C/block-takeover"
# OVERWRITE, 5 messages, an extra consumer; move head, then read (lapped)
{ b 0x01 0x45 40 40 40 40 40   3 1 8   18 0 5   23 0   20 1 8   22 1   23 1; } >"$C/ow-lapped"
# OVERWRITE: send over several laps, then peek_batch and release
{ b 0x03 0x05 100 100 100 100 100   25 1   25 1   25 1   20 0 15   25 1   22 0   23 0; } >"$C/ow-laps"
# OVERWRITE with an odd ver allowed (snapshots give -EAGAIN)
# (byte 1 must ask for 15 messages for that)
{ b 0x41 0x0f 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8   6 0 1 1   18 0 5   32 1; } >"$C/ow-odd-ver"
# BLOCK, spin 0: the _wait forms with a past deadline, producer full
{ b 0x80 0x1f 250 250 250 250 250 250 250 250 250 250 250 250 250 250 250 \
	29 1 1   24 0 0   24 1 1   24 0 2   24 1 3; } >"$C/block-waits"
# the consumers' shared line and the slot table, raw
{ b 0x10 0x22 8 8   16 3 0 200   17 0 0x20 0 0 4 1 0 0 0   31   32 0   34 0   33 0x85 103 49 0 0 0 0; } >"$C/block-raw-ctab"

echo "seeds: $(ls "$O" | wc -l) in $O, $(ls "$C" | wc -l) in $C"
