# Switchyard - one Makefile for the libyard library, the three programs and the tests.
# `make test` installs what is missing (deps), builds, and runs the whole suite.

CC      ?= cc
PKGS    := libnats msgpack libuv libsodium libpq jansson libcurl
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wformat=2 -Wno-unused-parameter
OPT     ?= -O2 -g
SAN     ?=

# The libraries' flags are computed when make reads this file. Targets that
# need them (up, test, asan, bench, fuzz) first run `deps`, then make again,
# which reads the file anew; any other build stops here if one is missing.
MISSING := $(shell for p in $(PKGS) cmocka; do pkg-config --exists $$p 2>/dev/null || echo $$p; done) \
           $(if $(wildcard /usr/include/http_parser.h),,http_parser)
ifneq ($(strip $(MISSING)),)
ifneq ($(filter-out deps up test asan bench fuzz down clean,$(or $(MAKECMDGOALS),all)),)
$(error missing libraries: $(strip $(MISSING)); run `make deps`)
endif
endif
PKG_CFLAGS  := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS      += $(CSTD) $(WARN) $(OPT) $(SAN) -MMD -MP $(PKG_CFLAGS)
LDLIBS      += $(PKG_LIBS) -lhttp_parser -lpthread -lm
TEST_LDLIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

# Each build flavour (plain, asan) has its own object and binary folders.
BUILD   ?= build
BIN     ?= bin

LIB_SRC  := $(wildcard bus/*.c)
GW_SRC   := $(wildcard gateway/*.c)
WK_SRC   := $(wildcard workers/*.c workers/*/*.c)
CTL_SRC  := $(wildcard ops/*.c)
HARN_SRC := $(wildcard tests/harness/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
INTG_SRC := $(wildcard tests/integration/test_*.c)
CHAOS_SRC := $(wildcard tests/chaos/chaos_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB      := $(BUILD)/libyard.a
HARN_OBJ := $(call obj,$(HARN_SRC))
CHAOS    := $(patsubst %.c,$(BUILD)/%,$(CHAOS_SRC))
TESTS    := $(patsubst %.c,$(BUILD)/%,$(UNIT_SRC) $(INTG_SRC)) $(CHAOS)
PROGS    := $(BIN)/yard-gateway $(BIN)/yard-worker $(BIN)/yardctl
LOADGEN  := $(BUILD)/bench/yard-load

.PHONY: all deps test chaos asan up down status bench fuzz install clean FORCE
# Keep test objects between builds (they are intermediate files to make).
.SECONDARY:
all: $(PROGS) $(TESTS) $(LOADGEN)

deps:
	@ops/install-deps.sh

# Each program sees only its own headers and libyard's: a module that reaches
# into another program's folder does not compile.
$(BUILD)/obj/bus/%.o:     INC = -Ibus
$(BUILD)/obj/gateway/%.o: INC = -Ibus -Igateway
$(BUILD)/obj/workers/%.o: INC = -Ibus -Iworkers
$(BUILD)/obj/ops/%.o:     INC = -Ibus -Iops
$(BUILD)/obj/tests/%.o:   INC = -Ibus -Itests/harness
$(BUILD)/obj/tests/unit/test_gw_%.o $(BUILD)/obj/tests/integration/test_gw_%.o: INC += -Igateway
$(BUILD)/obj/tests/unit/test_wk_%.o $(BUILD)/obj/tests/integration/test_wk_%.o: INC += -Iworkers
$(BUILD)/obj/tests/unit/test_ctl_%.o: INC += -Iops
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(INC) $(DEFS) -c $< -o $@

# The git commit the programs report (yard_build_info): only bus/version.c
# gets it, and its object depends on a file rewritten only when the commit
# changes, so a build without a new commit rebuilds nothing. Outside a git
# checkout (a tarball) it is "unknown"; `make YARD_COMMIT=...` sets it.
ifndef YARD_COMMIT
YARD_COMMIT := $(or $(shell test -e .git && git rev-parse --short HEAD 2>/dev/null),unknown)
endif
$(BUILD)/gen/commit.txt: FORCE
	@mkdir -p $(dir $@)
	@echo "$(YARD_COMMIT)" | cmp -s - $@ 2>/dev/null || echo "$(YARD_COMMIT)" > $@
$(BUILD)/obj/bus/version.o: $(BUILD)/gen/commit.txt
$(BUILD)/obj/bus/version.o: DEFS = -DYARD_COMMIT='"$(YARD_COMMIT)"'

# The SQL migrations are compiled into libyard, so a deployed binary needs no files.
MIG_SQL  := $(sort $(wildcard schemas/migrations/*.sql))
# The list of migration files, rewritten only when it changes, so that a
# removed or renamed migration rebuilds the embedded set too.
$(BUILD)/gen/migrations.list: FORCE
	@mkdir -p $(dir $@)
	@echo "$(MIG_SQL)" | cmp -s - $@ 2>/dev/null || echo "$(MIG_SQL)" > $@
$(BUILD)/gen/migrations.c: schemas/embed.sh $(MIG_SQL) $(BUILD)/gen/migrations.list
	@mkdir -p $(dir $@)
	sh schemas/embed.sh $@ $(MIG_SQL)
$(BUILD)/obj/gen/migrations.o: $(BUILD)/gen/migrations.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ibus -c $< -o $@

# The web console's files are compiled into the gateway the same way.
UI_FILES := $(sort $(wildcard gateway/ui/*.html gateway/ui/*.js gateway/ui/*.css gateway/ui/*.svg))
UI_OBJ   := $(BUILD)/obj/gen/ui_assets.o
$(BUILD)/gen/ui.list: FORCE
	@mkdir -p $(dir $@)
	@echo "$(UI_FILES)" | cmp -s - $@ 2>/dev/null || echo "$(UI_FILES)" > $@
$(BUILD)/gen/ui_assets.c: gateway/ui/embed.sh $(UI_FILES) $(BUILD)/gen/ui.list
	sh gateway/ui/embed.sh $@ $(UI_FILES)
$(UI_OBJ): $(BUILD)/gen/ui_assets.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Igateway -c $< -o $@

$(LIB): $(call obj,$(LIB_SRC)) $(BUILD)/obj/gen/migrations.o
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(BIN)/yard-gateway: $(call obj,$(GW_SRC)) $(UI_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
$(BIN)/yard-worker: $(call obj,$(WK_SRC)) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
$(BIN)/yardctl: $(call obj,$(CTL_SRC)) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Every test is its own binary: its source, the harness and libyard. Unit
# tests of a program's modules are named after it (test_gw_*, test_wk_*,
# test_ctl_*) and
# link that program's objects except its main.
GW_MOD_OBJ := $(call obj,$(filter-out gateway/main.c,$(GW_SRC))) $(UI_OBJ)
WK_MOD_OBJ := $(call obj,$(filter-out workers/main.c,$(WK_SRC)))
CTL_MOD_OBJ := $(call obj,$(filter-out ops/main.c,$(CTL_SRC)))
define module_tests # kind (unit, integration), prefix (gw, wk), objects
$(BUILD)/tests/$(1)/test_$(2)_%: $(BUILD)/obj/tests/$(1)/test_$(2)_%.o $(3) $(HARN_OBJ) $(LIB)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -o $$@ $$^ $$(LDLIBS) $$(TEST_LDLIBS)
endef
$(foreach k,unit integration,$(eval $(call module_tests,$(k),gw,$(GW_MOD_OBJ))))
$(foreach k,unit integration,$(eval $(call module_tests,$(k),wk,$(WK_MOD_OBJ))))
$(eval $(call module_tests,unit,ctl,$(CTL_MOD_OBJ)))
$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(HARN_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) $(TEST_LDLIBS)

# The HTTP load generator (closed and open loop) used by `make bench`.
$(LOADGEN): tests/bench/yard-load.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -O2 $(SAN) $< $(shell pkg-config --cflags --libs libuv 2>/dev/null) -lm -o $@

# `make bench`: the raw limits of this machine and Switchyard as a user gets it
# (auth on, default workers), each figure the median of 3 runs with its spread,
# peak memory per process, and issue 12's targets (met / missed); exit 0 either
# way. Flags go through BENCH_ARGS (`build/bench/yard-bench --help`):
#   make bench BENCH_ARGS="--json --peers"   one JSON document; BullMQ and
#                                            beanstalkd side by side (PEERS_*)
#   make bench BENCH_ARGS=--quick            small counts, 1 run: does it work?
BENCH_ARGS ?=
BENCH_SRC := $(wildcard tests/bench/bench*.c)
BENCH := $(BUILD)/bench/yard-bench
$(BENCH): $(call obj,$(BENCH_SRC)) $(HARN_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
bench: deps
	@$(MAKE) --no-print-directory all $(BENCH) >&2
	@YARD_BIN=$(abspath $(BIN)) YARD_SRC_DIR=$(CURDIR) YARD_TEST_DIR=$$(mktemp -d "$${TMPDIR:-/tmp}/yard-bench.XXXXXX") $(BENCH) $(BENCH_ARGS)

# libFuzzer targets (clang): each runs FUZZ_SECONDS from a seed corpus.
FUZZ_SECONDS ?= 60
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $(CSTD) \
              -Ibus -Igateway $(PKG_CFLAGS)
FUZZ_LIBS  := $(PKG_LIBS) -lhttp_parser -lpthread -lm
FUZZERS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
# What fuzz targets may reach: libyard (linked whole, as the programs link it;
# the targets call only its parsers) and the gateway's input decoding.
FUZZ_SRC := $(LIB_SRC) gateway/body.c gateway/job_spec.c gateway/workflow_spec.c
# Targets that reach a worker's parsers get those files too.
FUZZ_EXTRA_exec_config := workers/exec_config.c workers/registry.c
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_SRC) $(wildcard workers/*.c)
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -Iworkers $< $(FUZZ_SRC) $(FUZZ_EXTRA_$*) $(FUZZ_LIBS) -o $@
fuzz: deps
	@command -v clang >/dev/null || (apt-get install -y -qq clang >/dev/null)
	@$(MAKE) --no-print-directory $(FUZZERS)
	@for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p build/fuzz/corpus-$$n; \
		cp tests/fuzz/seeds/$$n/* build/fuzz/corpus-$$n/ 2>/dev/null || true; \
		echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build/fuzz/corpus-$$n 2>&1 | \
			grep -E "stat::number_of_executed_units|ERROR|SUMMARY" || exit 1; done

# The test runner runs each binary in its own process with a timeout, then
# kills any server a test left behind, and ends with a summary line.
test: deps
	@$(MAKE) --no-print-directory all
	@YARD_BIN=$(abspath $(BIN)) tests/run.sh $(TESTS)

# The chaos scenarios alone (`make test` runs them too, last).
chaos: deps
	@$(MAKE) --no-print-directory $(PROGS) $(CHAOS)
	@YARD_BIN=$(abspath $(BIN)) tests/run.sh $(CHAOS)

asan: deps
	@$(MAKE) --no-print-directory all BUILD=build-asan BIN=build-asan/bin OPT="-O1 -g" \
		SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		YARD_BIN=$(abspath build-asan/bin) YARD_TEST_TIMEOUT_SCALE=3 \
		tests/run.sh $(patsubst $(BUILD)/%,build-asan/%,$(TESTS))

# `make up` needs only the programs.
up: deps
	@$(MAKE) --no-print-directory $(PROGS)
	@YARD_BIN=$(abspath $(BIN)) ops/cluster.sh up

down:
	@ops/cluster.sh down

# What runs: PID, alive or dead, ports, readiness (exit 3 when not all ready).
status:
	@ops/cluster.sh status

clean:
	rm -rf build build-asan bin

-include $(shell find $(BUILD) build-asan -name '*.d' 2>/dev/null)
