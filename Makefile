# SPDX-License-Identifier: MIT
# libshmring: plain Makefile.  Quiet unless V=1.
#   make                 library (static + shared), examples
#   make test            unit and multi-process tests (Criterion)
#   make asan            the tests under ASan + UBSan (in build-asan/), smaller counts
#   make check-symbols   exported symbols == header == version script
#   make fuzz            libFuzzer targets for FUZZ_SECONDS each (clang)
#   make install/uninstall  PREFIX, DESTDIR, LIBDIR, INCLUDEDIR
# Build variants: SAN=asan (ASan+UBSan) builds into build-asan/, SAN=tsan into
# build-tsan/; CC=clang works.

VERSION_MAJOR := $(shell sed -n 's/^\#define SHMRING_VERSION_MAJOR \([0-9]*\)/\1/p' include/shmring.h)
VERSION_MINOR := $(shell sed -n 's/^\#define SHMRING_VERSION_MINOR \([0-9]*\)/\1/p' include/shmring.h)
VERSION_PATCH := $(shell sed -n 's/^\#define SHMRING_VERSION_PATCH \([0-9]*\)/\1/p' include/shmring.h)
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man

CC ?= cc
OBJCOPY ?= objcopy
SAN ?=
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wpointer-arith -Wformat=2 -Wno-unused-parameter
OPT ?= -O2 -g
CFLAGS ?=
BASE_CFLAGS := -std=c11 $(OPT) $(WARN) -Iinclude -fno-strict-aliasing
LDLIBS :=

ifeq ($(SAN),asan)
BUILD ?= build-asan
BASE_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDSAN := -fsanitize=address,undefined
else ifeq ($(SAN),tsan)
BUILD ?= build-tsan
# TSan does not model atomic_thread_fence; gcc says so with -Wtsan.  The
# fences only order atomics and seqlock-validated reads (see src/atomics.h).
BASE_CFLAGS += -fsanitize=thread -fno-omit-frame-pointer \
	$(if $(findstring clang,$(CC)),,-Wno-tsan)
LDSAN := -fsanitize=thread
else ifeq ($(SAN),)
BUILD ?= build
LDSAN :=
else
$(error unknown SAN=$(SAN); use SAN=asan or SAN=tsan)
endif

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-6s %s\n' $(1) $(2)
endif

LIB_SRCS := src/ring.c src/producer.c src/consumer.c src/group.c src/live.c src/wait.c \
	src/notify.c src/error.c
LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o)
PIC_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/pic/%.o)
HDRS := include/shmring.h $(wildcard src/*.h)

SONAME := libshmring.so.$(VERSION_MAJOR)
STATIC := $(BUILD)/libshmring.a
# The same objects with their internal symbols visible: for the tests and
# the tool, which look inside.  The installed archive exports shmring_* only.
INTERNAL := $(BUILD)/libshmring-internal.a
SHARED := $(BUILD)/libshmring.so.$(VERSION)

EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
TEST_SRCS := $(wildcard tests/test_*.c)
TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRCS))
TEST_COMMON := tests/common.c

.PHONY: all lib examples test asan check-symbols install uninstall clean tests deps loop

all: lib examples

lib: $(STATIC) $(SHARED) $(BUILD)/shmring.pc

$(BUILD)/obj/%.o: src/%.c $(HDRS)
	$(call msg,CC,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE_CFLAGS) -fvisibility=hidden $(CFLAGS) -c -o $@ $<

$(BUILD)/pic/%.o: src/%.c $(HDRS)
	$(call msg,CC,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE_CFLAGS) -fPIC -fvisibility=hidden $(CFLAGS) -c -o $@ $<

# One relocatable object whose hidden symbols are made local, so that a
# program linking the archive may define now_ns() or wait_for_data() itself.
$(STATIC): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)$(LD) -r -o $(BUILD)/obj/libshmring-all.o $^ && \
		$(OBJCOPY) --localize-hidden $(BUILD)/obj/libshmring-all.o && \
		rm -f $@ && $(AR) rcs $@ $(BUILD)/obj/libshmring-all.o

$(INTERNAL): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(SHARED): $(PIC_OBJS) src/libshmring.map
	$(call msg,LD,$@)
	$(Q)$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=src/libshmring.map \
		-Wl,-z,defs -Wl,-z,relro -Wl,-z,now $(LDSAN) -o $@ $(PIC_OBJS) $(LDLIBS)
	$(Q)ln -sf $(notdir $@) $(BUILD)/$(SONAME) && ln -sf $(SONAME) $(BUILD)/libshmring.so

# Rebuilt when PREFIX, LIBDIR or INCLUDEDIR change from one make to the next.
$(BUILD)/pc-vars: FORCE
	@mkdir -p $(BUILD)
	@echo '$(PREFIX) $(LIBDIR) $(INCLUDEDIR)' | cmp -s - $@ || \
		echo '$(PREFIX) $(LIBDIR) $(INCLUDEDIR)' > $@
FORCE:
.PHONY: FORCE

$(BUILD)/shmring.pc: shmring.pc.in include/shmring.h $(BUILD)/pc-vars
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

# Examples link against the shared library, as a user's program would.
examples: $(EXAMPLES)
$(BUILD)/examples/%: examples/%.c $(SHARED) include/shmring.h
	$(call msg,CC,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< -L$(BUILD) -lshmring \
		-Wl,-rpath,'$$ORIGIN/..' $(LDSAN)

# Tests link the static library, so they can also see inside if needed.
$(BUILD)/tests/%: tests/%.c $(TEST_COMMON) tests/common.h $(INTERNAL)
	$(call msg,CC,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE_CFLAGS) -Isrc $(CFLAGS) -o $@ $< $(TEST_COMMON) $(INTERNAL) \
		-lcriterion -lm $(LDSAN)

deps:
	$(Q)tools/ensure-test-deps.sh

tests: deps $(TESTS) examples

# Each test program runs its tests one at a time (-j1): the multi-process
# tests already fill both cores.  TEST_ARGS passes flags to Criterion.
# Fragments add phony targets to EXTRA_TESTS; they run after the suite.
EXTRA_TESTS :=
test: tests check-symbols
	$(Q)tools/check-man.sh
	$(Q)tools/run-examples.sh $(EXAMPLES)
	$(Q)tools/run-tests.sh $(BUILD) $(TESTS)
	$(Q)$(if $(strip $(EXTRA_TESTS)),$(MAKE) --no-print-directory $(EXTRA_TESTS),true)

# The sanitizers slow the ring down several times: the multi-process tests
# run fewer messages there (the full counts run in "make test").
ASAN_COUNTS := SHMRING_TEST_MESSAGES=1000000 SHMRING_TEST_SWEEP_MESSAGES=100000 \
	SHMRING_TEST_ROUNDS=5000 SHMRING_TEST_GROUP_MESSAGES=1000000 \
	SHMRING_TEST_MIXED_MESSAGES=200000 SHMRING_TEST_OW_MESSAGES=500000 \
	SHMRING_TEST_BATCH_MESSAGES=300000 SHMRING_TEST_STORM_MESSAGES=200000 \
	SHMRING_TEST_KILLPOINT_STRIDE=4
asan:
	$(Q)$(ASAN_COUNTS) $(MAKE) --no-print-directory SAN=asan test

check-symbols: $(SHARED) $(STATIC)
	$(Q)tools/check-symbols.sh $(SHARED) include/shmring.h src/libshmring.map
	$(Q)leak=$$(nm -g --defined-only $(STATIC) | awk 'NF == 3 && $$3 !~ /^shmring_/ { print $$3 }'); \
		if [ -n "$$leak" ]; then echo "check-symbols: $(STATIC) exports:" $$leak; exit 1; fi; \
		echo "  check-symbols: $(STATIC) defines shmring_* symbols only"

# Repeat the suite to catch rare races: make loop N=20
N ?= 10
loop: tests
	$(Q)for i in $$(seq $(N)); do echo "== round $$i"; \
		tools/run-tests.sh $(BUILD) $(TESTS) || exit 1; done

install: lib
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)
	install -m 644 include/shmring.h $(DESTDIR)$(INCLUDEDIR)/shmring.h
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/libshmring.a
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libshmring.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libshmring.so
	install -m 644 $(BUILD)/shmring.pc $(DESTDIR)$(LIBDIR)/pkgconfig/shmring.pc
	for f in man/man[1-9]/*.[1-9]; do [ -e "$$f" ] || continue; s=$${f##*.}; \
		install -d $(DESTDIR)$(MANDIR)/man$$s; \
		install -m 644 $$f $(DESTDIR)$(MANDIR)/man$$s/; done

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/shmring.h $(DESTDIR)$(LIBDIR)/libshmring.a \
		$(DESTDIR)$(LIBDIR)/libshmring.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
		$(DESTDIR)$(LIBDIR)/libshmring.so $(DESTDIR)$(LIBDIR)/pkgconfig/shmring.pc
	for f in man/man[1-9]/*.[1-9]; do [ -e "$$f" ] || continue; \
		s=$${f##*.}; rm -f $(DESTDIR)$(MANDIR)/man$$s/$${f##*/}; done

clean:
	rm -rf build build-asan build-tsan build-clang build-fuzz build-perf

# libFuzzer targets (clang): make fuzz FUZZ_SECONDS=60
include fuzz/fuzz.mk

# Fragments, each owned by its own part of the tree:
#   tests/stress/stress.mk  make stress, stress-loop, model
#   perf/perf.mk            make perf
#   tools/tool.mk           the shmring command, make demo, packaging test
-include tests/stress/stress.mk
-include perf/perf.mk
-include tools/tool.mk
