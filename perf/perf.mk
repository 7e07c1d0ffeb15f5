# SPDX-License-Identifier: MIT
# make perf: the performance harness (perf/).  Included by the top Makefile.
#   make perf                      everything, 6-9 minutes on 2 vCPUs
#   make perf PERF_ARGS='--rtt --cpus 2,3'   flags of build/perf/shmring-perf
#   make perf-quick                smoke run, ~10-20 s
#   make perf-micro                Google Benchmark micro-benchmarks
# Baselines are built only when their package is present (perf/deps.sh
# installs them as root); a missing one is reported "skipped: <why>".

PERF_ARGS ?=
PERF_DIR := $(BUILD)/perf
PERF_BIN := $(PERF_DIR)/shmring-perf
PERF_SRCS := perf/main.c perf/run.c perf/util.c perf/m_shmring.c perf/m_kernel.c \
	perf/m_slots.c perf/m_iox.c
PERF_HDRS := perf/perf.h perf/run.h include/shmring.h

# Third-party headers as system headers, so our -Werror does not judge them.
perf_sys = $(patsubst -I%,-isystem %,$(shell pkg-config --cflags $(1) 2>/dev/null))
perf_has = $(shell pkg-config --exists $(1) 2>/dev/null && echo 1 || echo 0)
PERF_HAVE_CK = $(call perf_has,ck)
PERF_HAVE_URCU = $(call perf_has,liburcu)
PERF_HAVE_DPDK = $(call perf_has,libdpdk)
PERF_HAVE_IOX = $(shell test -f /usr/lib/$(shell $(CC) -print-multiarch 2>/dev/null)/libiceoryx_binding_c.so && command -v iox-roudi >/dev/null && echo 1 || echo 0)
PERF_HAVE_BENCH = $(call perf_has,benchmark)

# The commit the harness was built from, "-dirty" if the tree had changes
# (a run's results name it); rewritten only when it changes, so that a
# commit or an edit relinks the harness.
PERF_REV := $(PERF_DIR)/git-rev
PERF_CFLAGS = $(BASE_CFLAGS) -Iperf -DPERF_GIT_REV="\"$$(cat $(PERF_REV))\"" \
	-DHAVE_CK=$(PERF_HAVE_CK) -DHAVE_URCU=$(PERF_HAVE_URCU) -DHAVE_DPDK=$(PERF_HAVE_DPDK) \
	-DHAVE_IOX=$(PERF_HAVE_IOX) \
	$(if $(filter 1,$(PERF_HAVE_IOX)),$(patsubst %,-isystem %,$(lastword $(wildcard /usr/include/iceoryx/v*)))) \
	$(if $(filter 1,$(PERF_HAVE_CK)),$(call perf_sys,ck)) \
	$(if $(filter 1,$(PERF_HAVE_URCU)),$(call perf_sys,liburcu)) \
	$(if $(filter 1,$(PERF_HAVE_DPDK)),-isystem /usr/include/dpdk -isystem /usr/include/$(shell $(CC) -print-multiarch 2>/dev/null)/dpdk -include rte_config.h -msse4.2)
PERF_LIBS = $(if $(filter 1,$(PERF_HAVE_CK)),-lck) \
	$(if $(filter 1,$(PERF_HAVE_URCU)),-lurcu-common -lurcu) \
	$(if $(filter 1,$(PERF_HAVE_DPDK)),-lrte_ring -lrte_eal) \
	$(if $(filter 1,$(PERF_HAVE_IOX)),-liceoryx_binding_c) \
	-lrt -lpthread -lm

.PHONY: perf perf-build perf-deps perf-quick perf-micro perf-smoke

perf-deps:
	$(Q)perf/deps.sh

# The probes run after perf-deps installed what it could.
perf-build: perf-deps
	$(Q)$(MAKE) --no-print-directory $(PERF_BIN)

$(PERF_REV): FORCE
	@mkdir -p $(dir $@)
	@rev=$$(git describe --always --abbrev=7 --dirty 2>/dev/null || echo unknown); \
		[ "$$(cat $@ 2>/dev/null)" = "$$rev" ] || echo "$$rev" > $@

$(PERF_BIN): $(PERF_SRCS) $(PERF_HDRS) $(STATIC) perf/perf.mk $(PERF_REV)
	$(call msg,CC,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(PERF_CFLAGS) $(CFLAGS) -o $@ $(PERF_SRCS) $(STATIC) $(PERF_LIBS) $(LDSAN)

perf: perf-build
	$(Q)$(PERF_BIN) $(PERF_ARGS)

perf-quick: perf-build
	$(Q)$(PERF_BIN) --quick $(PERF_ARGS)

# Google Benchmark micro-benchmarks (single process), when installed.
PERF_MICRO := $(PERF_DIR)/shmring-micro
$(PERF_MICRO): perf/micro.cc include/shmring.h $(STATIC)
	$(call msg,CXX,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CXX) -std=c++17 -O2 -g -Wall -Wextra -Werror -Iinclude $(call perf_sys,benchmark) \
		-o $@ $< $(STATIC) -lbenchmark -lpthread $(LDSAN)

perf-micro: perf-deps
	$(Q)if pkg-config --exists benchmark; then \
		$(MAKE) --no-print-directory $(PERF_MICRO) && \
		$(PERF_MICRO) --benchmark_min_time=$(if $(PERF_MICRO_TIME),$(PERF_MICRO_TIME),0.2) ; \
	else echo "perf-micro: skipped: libbenchmark-dev not installed (pkg-config benchmark)"; fi

# Smoke run for "make test": every scenario, short; fails if any case fails
# (wrong count, order or torn message, a stuck or crashed role).  Installs
# nothing: missing baselines are skipped.
perf-smoke: $(STATIC)
	$(Q)$(MAKE) --no-print-directory $(PERF_BIN)
	$(Q)$(PERF_BIN) --quick --no-plot --out $(BUILD)/perf/smoke > $(BUILD)/perf/smoke.log 2>&1 || \
		{ cat $(BUILD)/perf/smoke.log; echo "perf-smoke: FAILED"; exit 1; }
	$(Q)grep -q '^== targets' $(BUILD)/perf/smoke.log && echo "perf-smoke: passed ($$(grep -o '[0-9]* cases, 0 failed' $(BUILD)/perf/smoke.log))"

ifeq ($(SAN),)
EXTRA_TESTS += perf-smoke
endif
