# SPDX-License-Identifier: MIT
# libFuzzer targets, a fragment for the main Makefile (include fuzz/fuzz.mk).
#   make fuzz                   build both targets with clang and run each for
#                               FUZZ_SECONDS (default 60) seconds
#   make fuzz-build             only build them (build-fuzz/fuzz_open, _consume)
#   make fuzz-regress           replay the saved findings (fuzz/crashes/<target>-*)
#   make fuzz-clean             remove build-fuzz/ (binaries, corpora, logs)
# Variables: FUZZ_SECONDS, FUZZ_CC (clang), FUZZ_BUILD (build-fuzz),
# FUZZ_ARGS (extra libFuzzer flags), FUZZ_EXTRA_CFLAGS.
# Each target runs on build-fuzz/corpus-<target>/, a copy of fuzz/corpus/<target>/
# kept between runs; findings land in build-fuzz/artifacts-<target>/, logs in
# build-fuzz/fuzz_<target>.log.
# Standalone: make -f Makefile -f fuzz/fuzz.mk fuzz FUZZ_SECONDS=30

FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_BUILD ?= build-fuzz
FUZZ_ARGS ?= -timeout=10 -rss_limit_mb=2048
FUZZ_EXTRA_CFLAGS ?=
FUZZ_TARGETS := open consume
# The library sources, compiled into each target (LIB_SRCS of the main
# Makefile when there is one).
FUZZ_LIB_SRCS := $(if $(LIB_SRCS),$(LIB_SRCS),$(wildcard src/*.c))
FUZZ_CFLAGS := -std=c11 -g -O1 -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-Iinclude -Isrc $(FUZZ_EXTRA_CFLAGS)
FUZZ_DEPS := $(FUZZ_LIB_SRCS) include/shmring.h $(wildcard src/*.h) fuzz/fuzz_common.h
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_Q := $(if $(filter 1,$(V)),,@)

.PHONY: fuzz fuzz-build fuzz-deps fuzz-regress fuzz-clean fuzz-force

fuzz: fuzz-regress
	$(FUZZ_Q)fail=0; for t in $(FUZZ_TARGETS); do \
		fuzz/run-fuzz.sh $(FUZZ_BUILD) $$t $(FUZZ_SECONDS) $(FUZZ_ARGS) || fail=1; \
	done; exit $$fail

fuzz-build: fuzz-deps $(FUZZ_BINS)

# Each saved finding must now run clean (at most 10 s each).
fuzz-regress: fuzz-build
	$(FUZZ_Q)for t in $(FUZZ_TARGETS); do \
		set -- fuzz/crashes/$$t-*; [ -e "$$1" ] || continue; \
		if $(FUZZ_BUILD)/fuzz_$$t -timeout=10 "$$@" >$(FUZZ_BUILD)/regress_$$t.log 2>&1; then \
			printf '  %-6s %s: %s saved findings replayed clean\n' REGRESS fuzz_$$t $$#; \
		else \
			echo "  REGRESS fuzz_$$t FAILED; log: $(FUZZ_BUILD)/regress_$$t.log" >&2; \
			grep -E 'Running:|ERROR|SUMMARY|runtime error|API promise' \
				$(FUZZ_BUILD)/regress_$$t.log | tail -n 6 >&2; exit 1; \
		fi; \
	done

fuzz-deps:
	$(FUZZ_Q)FUZZ_CC=$(FUZZ_CC) fuzz/ensure-fuzz-deps.sh $(FUZZ_CC)

# Rebuild when the compiler or flags change.
$(FUZZ_BUILD)/.flags: fuzz-force
	@mkdir -p $(dir $@)
	@echo '$(FUZZ_CC) $(FUZZ_CFLAGS)' | cmp -s - $@ || echo '$(FUZZ_CC) $(FUZZ_CFLAGS)' > $@

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_DEPS) $(FUZZ_BUILD)/.flags | fuzz-deps
	@printf '  %-6s %s\n' FUZZCC $@
	@mkdir -p $(dir $@)
	$(FUZZ_Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIB_SRCS)

fuzz-clean:
	rm -rf $(FUZZ_BUILD)
