# SPDX-License-Identifier: MIT
# The shmring command line tool, "make demo" and the packaging test.
# Included by the top-level Makefile (-include tools/tool.mk).
#   make demo           builds everything, runs producers and consumers of
#                       each kind on a fresh ring for a few seconds, shows
#                       "shmring stat" while they run, checks nothing was lost
#   make package-test   installs into a temporary prefix, builds an example as
#                       C and C++ with pkg-config only, runs both (make test
#                       runs it too)

BINDIR ?= $(PREFIX)/bin
TOOL := $(BUILD)/tools/shmring
TOOL_SRCS := $(wildcard tools/shmring/*.c)

.PHONY: tool install-tool uninstall-tool demo package-test

# The tool reads the ring's internals (cursor table, liveness bytes), so it
# links the static library and includes src/ (read-only use of the layout).
$(TOOL): $(TOOL_SRCS) tools/shmring/tool.h $(INTERNAL) $(HDRS)
	$(call msg,CC,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE_CFLAGS) -Isrc $(CFLAGS) -o $@ $(TOOL_SRCS) $(INTERNAL) $(LDSAN)

tool: $(TOOL)
all: $(TOOL)
tests: $(TOOL)

install: install-tool
install-tool: $(TOOL)
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 $(TOOL) $(DESTDIR)$(BINDIR)/shmring

uninstall: uninstall-tool
uninstall-tool:
	rm -f $(DESTDIR)$(BINDIR)/shmring

# Needs nothing beyond a C compiler and make (no Criterion).
demo: all
	$(Q)tools/demo.sh $(TOOL)

EXTRA_TESTS += package-test
package-test:
	$(Q)MAKE="$(MAKE)" CC="$(CC)" tools/package-test.sh
