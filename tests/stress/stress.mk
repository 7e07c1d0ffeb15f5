# SPDX-License-Identifier: MIT
# make stress        chaos stress harness (tests/stress/stress.c), STRESS_SECONDS
#                    (default 60) split equally over BLOCK and OVERWRITE at
#                    capacities 4 KiB, 64 KiB and 1 MiB (six rounds); with
#                    SAN=tsan it runs in thread mode, BLOCK only (three rounds).
# make stress-loop   STRESS_LOOP_COUNT short runs (STRESS_LOOP_SECONDS each)
#                    with fresh seeds, until one fails
# make model         spin model of the publish/sleep/wake protocol (model/)
# Parameters (environment or make variables): STRESS_SECONDS, STRESS_CONSUMERS,
# STRESS_SEED, STRESS_CAPACITY, STRESS_POLICY (block|overwrite|both),
# STRESS_CHAOS (kill,stop,pkill,storm | none), STRESS_ARGS (extra flags).

STRESS_BIN := $(BUILD)/stress/stress
STRESS_SECONDS ?= 60
STRESS_LOOP_COUNT ?= 20
STRESS_LOOP_SECONDS ?= 6
STRESS_ARGS ?=
STRESS_MODE := $(if $(filter tsan,$(SAN)),--threads,)
# Thread mode under TSan: keep the whole report, fail on any.
# tsan.supp has one entry, explained there.
STRESS_ENV := $(if $(filter tsan,$(SAN)),TSAN_OPTIONS="halt_on_error=1 exitcode=66 suppressions=$(CURDIR)/tests/stress/tsan.supp $(TSAN_OPTIONS)",) \
	$(if $(filter asan,$(SAN)),ASAN_OPTIONS="abort_on_error=0 $(ASAN_OPTIONS)",)

.PHONY: stress stress-build stress-loop model

stress-build: $(STRESS_BIN)

$(STRESS_BIN): tests/stress/stress.c include/shmring.h $(STATIC)
	$(call msg,CC,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< $(STATIC) -lpthread $(LDSAN)

stress: $(STRESS_BIN)
	$(Q)$(STRESS_ENV) STRESS_SECONDS=$(STRESS_SECONDS) $(STRESS_BIN) $(STRESS_MODE) $(STRESS_ARGS)

stress-loop: $(STRESS_BIN)
	$(Q)tests/stress/stress-loop.sh $(STRESS_LOOP_COUNT) $(STRESS_LOOP_SECONDS) \
		$(STRESS_BIN) $(STRESS_MODE) $(STRESS_ARGS)

model:
	$(Q)model/run-model.sh

# make test runs a short stress after the suite (6 s, all chaos on).
.PHONY: stress-smoke
EXTRA_TESTS += stress-smoke
stress-smoke: $(STRESS_BIN)
	$(call msg,STRESS,smoke-6s)
	$(Q)$(STRESS_ENV) STRESS_SECONDS=6 $(STRESS_BIN) $(STRESS_MODE) > $(BUILD)/stress/smoke.log 2>&1 || \
		{ cat $(BUILD)/stress/smoke.log; exit 1; }
	$(Q)tail -1 $(BUILD)/stress/smoke.log

# Reproducers of library bugs found here, now fixed (each exits 1 if its bug
# is back):
#   repro-endpoint-race.c, repro-overwrite-takeover.c
# make stress-repro
.PHONY: stress-repro
STRESS_REPROS := $(BUILD)/stress/repro-endpoint-race $(BUILD)/stress/repro-overwrite-takeover
stress-repro: $(STRESS_REPROS)
	$(Q)rc=0; for p in $(STRESS_REPROS); do echo "== $$p"; $(STRESS_ENV) $$p || rc=1; done; exit $$rc
$(BUILD)/stress/repro-%: tests/stress/repro-%.c include/shmring.h $(STATIC)
	$(call msg,CC,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< $(STATIC) -lpthread $(LDSAN)
