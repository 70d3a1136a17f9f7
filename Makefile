# Kiln top-level Makefile.
#
#   make            build everything (release flags) into build/
#   make run        install missing packages, build, start the dev stack
#   make test       install missing packages, build with ASan/UBSan into
#                   build/asan, replay and briefly run every fuzzer
#                   (fuzz-check), start a private stack, run every test
#   make fuzz       run every libFuzzer target for FUZZ_SECONDS (see below)
#   make stop       stop what `make run` started
#   make deps       install missing Debian packages (root) or print the line
#   make bench      run the load tool scenarios at full size
#   make soak       churn + kill -9 against a private stack for SOAK_SECONDS
#                   (3600); counts every message, samples RSS/fds, plots
#                   (tests/soak/run.sh); SAN=1 or make soak-asan: the
#                   ASan build for SOAK_ASAN_SECONDS (600)
#   make install    install binaries, sql/, units, config (PREFIX, DESTDIR)
#   make deb        build the Debian package into build/ (deploy/deb)
#   make systemd-test  boot Debian 12 under systemd-nspawn, run the units
#   make cluster-test  the cluster across network namespaces at full length
#                   (CLUSTER_SECONDS a phase, CLUSTER_USERS users; root)
#
# BUILD and SAN select the variant; `make test` sets them itself.

BUILD ?= build
SAN ?= 0

PKGS := libzmq hiredis libconfig libidn libsystemd expat openssl libpq
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libhttp-parser and libwslay ship no .pc file on Debian.
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -lhttp_parser -lwslay
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

CC ?= gcc

# Optional features of the installed -dev packages, probed at every make
# (about 0.1 s); the header is rewritten only when a result changes.
FEATURES_H := $(BUILD)/gen/kn_features.h
$(shell CC="$(CC)" deploy/features.sh header $(FEATURES_H))
V ?= 0
ifeq ($(V),1)
Q :=
else
Q := @
endif
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wno-missing-field-initializers
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -g -fno-strict-aliasing -pthread \
               -Icommon -I$(BUILD)/gen $(PKG_CFLAGS) $(WARN)
ifeq ($(SAN),1)
CFLAGS_OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
              -fno-sanitize-recover=all
LDFLAGS_SAN := -fsanitize=address,undefined
else
CFLAGS_OPT := -O2
LDFLAGS_SAN :=
endif
# MALLOC=jemalloc or mimalloc links the daemons with that allocator
# (Debian's libjemalloc-dev / libmimalloc-dev); empty: glibc's. Ignored
# with SAN=1 (ASan brings its own). Figures in docs/PERFORMANCE.md.
MALLOC ?=
ifneq ($(SAN),1)
MALLOC_LIBS := $(if $(filter jemalloc,$(MALLOC)),-ljemalloc)$(if $(filter mimalloc,$(MALLOC)),-lmimalloc)
endif
ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS_OPT) $(CFLAGS)
ALL_LDFLAGS = $(LDFLAGS_SAN) -pthread $(LDFLAGS)

# common/ -> libkiln.a
LIB_SRC := $(wildcard common/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIBKILN := $(BUILD)/lib/libkiln.a

# Each process folder with a main.c becomes a binary; its other objects
# are also linkable into unit tests (tests/unit/test_<dir>_*.c).
PROC_DIRS := c2s router presenced mucd
PROC_BINS := $(foreach d,$(PROC_DIRS),$(if $(wildcard $(d)/main.c),$(BUILD)/bin/kiln-$(d)))
CTL_BIN := $(if $(wildcard ctl/main.c),$(BUILD)/bin/kilnctl)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

# tests/bench/load_*.c -> kiln-load (the load tool); each other
# tests/bench/bench_<proc>_*.c -> its own micro-benchmark, linked like a
# unit test of <proc>.
BENCH_SRC := $(wildcard tests/bench/load_*.c)
BENCH_BIN := $(if $(wildcard tests/bench/load_main.c),$(BUILD)/bin/kiln-load)
MICRO_SRC := $(wildcard tests/bench/bench_*.c)
MICRO_BINS := $(MICRO_SRC:tests/bench/%.c=$(BUILD)/bin/%)

.SECONDARY:
.PHONY: all deps web run stop test unit unit-bin clean fmt fmt-check features-fallback bench stack-up stack-down
.PHONY: bins install deb systemd-test cluster-test
all: $(LIBKILN) $(PROC_BINS) $(CTL_BIN) $(BENCH_BIN) $(MICRO_BINS)

unit-bin: $(UNIT_BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIBKILN): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

define proc_rule
$(1)_OBJ := $$(patsubst %.c,$$(BUILD)/obj/%.o,$$(wildcard $(1)/*.c))
$(1)_LIBOBJ := $$(filter-out $$(BUILD)/obj/$(1)/main.o,$$($(1)_OBJ))
$$(BUILD)/bin/kiln-$(1): $$($(1)_OBJ) $$(LIBKILN)
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  LD      $$@")
	$$(Q)$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) $$(MALLOC_LIBS)
endef
$(foreach d,$(PROC_DIRS) ctl,$(eval $(call proc_rule,$(d))))

$(CTL_BIN): $(ctl_OBJ) $(LIBKILN)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BENCH_BIN): $(BENCH_SRC:%.c=$(BUILD)/obj/%.o) $(LIBKILN)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# A unit test links libkiln, and the non-main objects of the process whose
# name prefixes it (test_c2s_sasl -> c2s/*.o without main.o).
unit_proc = $(firstword $(subst _, ,$(patsubst test_%,%,$(1))))
$(BUILD)/obj/tests/unit/%.o: CFLAGS += $(PROC_DIRS:%=-I%)
$(BUILD)/obj/tests/bench/bench_%.o: CFLAGS += $(PROC_DIRS:%=-I%)
.SECONDEXPANSION:
$(BUILD)/bin/bench_%: $(BUILD)/obj/tests/bench/bench_%.o $$($$(call unit_proc,$$*)_LIBOBJ) $(LIBKILN)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $$($$(call unit_proc,$$*)_LIBOBJ) $(LIBKILN)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS)

deps:
	@deploy/deps.sh

# What `make install` and the package ship: the daemons and kilnctl.
bins: $(PROC_BINS) $(CTL_BIN)

# make install [PREFIX=/usr/local] [DESTDIR=] [SYSCONFDIR=/etc]
#   [UNITDIR=$(PREFIX)/lib/systemd/system]: binaries, sql/ (where kilnctl
# looks: <bindir>/../share/kiln/sql), the units (paths rewritten to BINDIR
# and SYSCONFDIR), docs, and kiln.conf from the example unless one exists.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR ?= $(DATADIR)/doc/kiln
MANDIR ?= $(DATADIR)/man
install: bins
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/kiln/sql \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/kiln \
	    $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(PROC_BINS) $(CTL_BIN) $(DESTDIR)$(BINDIR)/
	install -m 0644 deploy/man/kiln.8 deploy/man/kilnctl.8 $(DESTDIR)$(MANDIR)/man8/
	for d in c2s router presenced mucd; do \
	    ln -sf kiln.8 $(DESTDIR)$(MANDIR)/man8/kiln-$$d.8 || exit 1; done
	install -m 0644 sql/*.sql $(DESTDIR)$(DATADIR)/kiln/sql/
	for u in deploy/systemd/*.service; do \
	    sed -e 's|/usr/bin/|$(BINDIR)/|g' -e 's|/etc/kiln/|$(SYSCONFDIR)/kiln/|g' \
	        $$u > $(DESTDIR)$(UNITDIR)/$${u##*/} && \
	    chmod 0644 $(DESTDIR)$(UNITDIR)/$${u##*/} || exit 1; \
	done
	install -m 0644 README.md docs/ARCHITECTURE.md docs/DEPLOY.md docs/SECURITY.md \
	    deploy/kiln.conf.example $(DESTDIR)$(DOCDIR)/
	test -e $(DESTDIR)$(SYSCONFDIR)/kiln/kiln.conf || \
	    install -m 0640 deploy/kiln.conf.example $(DESTDIR)$(SYSCONFDIR)/kiln/kiln.conf

# The Debian package, from its own release build (build/deb, with
# dpkg-buildflags hardening): build/kiln_<version>_<arch>.deb.
deb:
	@deploy/deb/build.sh

# Boot Debian 12 (debootstrapped once into var/systemd-root) under
# systemd-nspawn, install the package, run the units. Root only.
systemd-test:
	@deploy/systemd-test/run.sh

# Hosts as network namespaces (db, core, c2s1-3, load, mon) on a private
# bridge; scale out, rolling restart, faults and a Prometheus scrape under
# counted traffic; prints the table of docs/CLUSTER.md. Root only.
# `make test` runs a short form of it (tests/run-all.sh, docs/CLUSTER.md).
CLUSTER_SECONDS ?= 60
CLUSTER_USERS ?= 2000
cluster-test: all
	@tests/cluster/run.py --bin $(BUILD)/bin --seconds $(CLUSTER_SECONDS) \
	    --users $(CLUSTER_USERS) $(CLUSTER_ARGS)

# The web client (Converse.js), the browser-test driver (playwright-core) and
# the call test page's XMPP library (@xmpp/client, its dist/ browser build)
# from the npm registry, at the versions pinned in deploy/web/package-lock.json;
# fetched into build/web (never committed), once per lockfile change.
WEB_DIR := build/web
$(WEB_DIR)/.installed: deploy/web/package.json deploy/web/package-lock.json
	@mkdir -p $(WEB_DIR)
	$(Q)cp deploy/web/package.json deploy/web/package-lock.json $(WEB_DIR)/
	$(Q)cd $(WEB_DIR) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	$(Q)test -f $(WEB_DIR)/node_modules/converse.js/dist/converse.min.js
	$(Q)test -f $(WEB_DIR)/node_modules/@xmpp/client/dist/xmpp.min.js
	$(Q)touch $@
web: $(WEB_DIR)/.installed

# Unit tests only, on the current BUILD.
unit: $(UNIT_BINS)
	@tests/run-unit.sh $(BUILD)/tests

test: deps
	@$(MAKE) --no-print-directory fmt-check
	@$(MAKE) --no-print-directory features-fallback
	@$(MAKE) --no-print-directory all web
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=1 all unit-bin
	@$(MAKE) --no-print-directory fuzz-check
	@tests/run-all.sh build/asan

run: deps all web
	@deploy/dev/run.sh $(BUILD)

stop:
	@deploy/dev/run.sh --stop $(BUILD)

bench: deps all
	@tests/bench/run.sh $(BUILD)

SOAK_SECONDS ?= 3600
SOAK_ASAN_SECONDS ?= 600
ifeq ($(SAN),1)
soak: soak-asan
else
soak: deps all
	@SOAK_SECONDS=$(SOAK_SECONDS) tests/soak/run.sh $(BUILD)
endif
soak-asan: deps
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=1 all
	@SOAK_SECONDS=$(SOAK_ASAN_SECONDS) SOAK_RSS_GROWTH_MB=$${SOAK_RSS_GROWTH_MB:-64} \
	    tests/soak/run.sh build/asan
.PHONY: soak soak-asan

fmt:
	clang-format -i $(wildcard common/*.[ch] c2s/*.[ch] router/*.[ch] presenced/*.[ch] mucd/*.[ch] ctl/*.[ch] tests/unit/*.c tests/bench/*.c tests/fuzz/*.c)

# Compile every file that uses an optional feature with all of them off,
# so the fallback paths build on any machine, whatever it has installed.
FEATURE_USERS = $(shell grep -l 'kn_features.h' common/*.c c2s/*.c router/*.c presenced/*.c mucd/*.c ctl/*.c 2>/dev/null)
features-fallback:
	$(Q)for f in $(FEATURE_USERS); do \
	    $(CC) $(ALL_CFLAGS) -DKN_FEATURES_NONE -fsyntax-only $$f || exit 1; \
	done; echo "features-fallback: $(words $(FEATURE_USERS)) files build without optional features"

fmt-check:
	@clang-format --dry-run -Werror $(wildcard common/*.[ch] c2s/*.[ch] router/*.[ch] presenced/*.[ch] mucd/*.[ch] ctl/*.[ch] tests/unit/*.c tests/bench/*.c tests/fuzz/*.c)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)

# libFuzzer entry points (tests/fuzz/fuzz_*.c), built with clang into
# build/fuzz (apart from the gcc ASan build): common/ and the c2s modules
# once into build/fuzz/libkiln-fuzz.a with coverage instrumentation, each
# fuzz_<target>.c linked against it. Committed seeds: tests/fuzz/corpus/
# <target>/ (read, never written); grown corpus: build/fuzz/corpus/<target>;
# dictionary: tests/fuzz/<target>.dict or tests/fuzz/xmpp.dict.
#   make fuzz FUZZ_SECONDS=3600   the long campaign, each target in turn
#                                 (FUZZ_JOBS=N: N targets at a time, 0 =
#                                 all at once; tests/fuzz/campaign.sh; a
#                                 table of runs, CPU, coverage, corpus)
#   make fuzz-check               what `make test` runs: every committed
#                                 seed replayed, then FUZZ_CHECK_SECONDS of
#                                 fuzzing per target; any crash, leak or
#                                 timeout fails (reproducer in
#                                 build/fuzz/artifacts/)
FUZZ_SECONDS ?= 30
FUZZ_CHECK_SECONDS ?= 5
FUZZ_JOBS ?= 1
FUZZ_CC ?= clang
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
               -fno-strict-aliasing -pthread $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
               -Icommon -Ic2s -I$(BUILD)/gen $(PKG_CFLAGS) $(WARN)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
FUZZ_BINS := $(FUZZ_NAMES:%=build/fuzz/bin/fuzz_%)
FUZZ_LIB_OBJ := $(patsubst %.c,build/fuzz/obj/%.o,$(LIB_SRC) \
                  $(filter-out c2s/main.c,$(wildcard c2s/*.c)))
FUZZ_LIB := build/fuzz/libkiln-fuzz.a
FUZZ_OPTS := -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
             -print_final_stats=1 -artifact_prefix=build/fuzz/artifacts/
# the shell words for target $$t: its dictionary option and seed folder
FUZZ_T = dict=tests/fuzz/$$t.dict; [ -f $$dict ] || dict=tests/fuzz/xmpp.dict; \
    case $$t in env|jid) dict=;; esac; seeds=tests/fuzz/corpus/$$t; \
    [ -d $$seeds ] || seeds=

build/fuzz/obj/%.o: %.c $(FEATURES_H)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@
$(FUZZ_LIB): $(FUZZ_LIB_OBJ)
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^
build/fuzz/bin/fuzz_%: build/fuzz/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZLD  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -pthread -o $@ $^ $(PKG_LIBS) -lm

fuzz-bin: $(FUZZ_BINS)
fuzz: $(FUZZ_BINS)
	@tests/fuzz/campaign.sh $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_NAMES)
fuzz-check: $(FUZZ_BINS)
	@mkdir -p build/fuzz/artifacts
	@for t in $(FUZZ_NAMES); do rm -rf build/fuzz/check/$$t; mkdir -p build/fuzz/check/$$t; \
	    $(FUZZ_T); \
	    build/fuzz/bin/fuzz_$$t $(FUZZ_OPTS) -max_total_time=$(FUZZ_CHECK_SECONDS) \
	        $${dict:+-dict=$$dict} build/fuzz/check/$$t $$seeds \
	        >build/fuzz/check/fuzz_$$t.log 2>&1; rc=$$?; \
	    seeds=$$(ls tests/fuzz/corpus/$$t 2>/dev/null | wc -l); \
	    runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' build/fuzz/check/fuzz_$$t.log); \
	    cov=$$(grep -oE 'cov: [0-9]+ ft: [0-9]+' build/fuzz/check/fuzz_$$t.log | tail -n 1); \
	    echo "fuzz-check: fuzz_$$t: $$seeds seeds replayed, $$runs runs, $$cov"; \
	    if [ $$rc -ne 0 ]; then tail -n 60 build/fuzz/check/fuzz_$$t.log; \
	        echo "fuzz-check: fuzz_$$t FAILED (log build/fuzz/check/fuzz_$$t.log)"; exit 1; fi; done
.PHONY: fuzz fuzz-bin fuzz-check
