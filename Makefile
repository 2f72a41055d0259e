# shunt: the two commands a new machine needs are `make run` and `make check`.
# Meson + Ninja do the building; this file only wraps them.
BUILD      ?= build
ASAN_BUILD ?= build-asan
EXPORT     ?= var/default.img
LISTEN     ?= 127.0.0.1:10809
FUZZ_SECONDS ?= 60
# Test lanes run at once by `make check` (tests/run.sh --jobs).
TEST_JOBS  ?= 2
CLANG_FORMAT ?= clang-format
# The project's version (meson.build), which names libshunt.so.VERSION.
VERSION    := $(shell sed -n "s/^ *version: *'\(.*\)',/\1/p" meson.build | head -n 1)

.PHONY: all deps deps-build build build-run asan run check check-fast check-all fuzz format clean

all: build

deps:
	@scripts/deps.sh all

# What building and serving need, nothing for the tests.
deps-build:
	@scripts/deps.sh build

# -Dwerror=true: the project's own builds fail on any warning (a plain
# `meson setup` leaves werror off).
$(BUILD)/build.ninja:
	meson setup $(BUILD) -Dwerror=true

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

# The shunt command and libshunt only (what `make run` needs).
build-run: $(BUILD)/build.ninja
	ninja -C $(BUILD) shunt src/client/lib/libshunt.a src/client/lib/libshunt.so.$(VERSION)

asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

# Serve the embedded default export (a 1 GiB sparse file) in the foreground.
run: deps-build build-run
	@mkdir -p $(dir $(EXPORT))
	@[ -e $(EXPORT) ] || truncate -s 1G $(EXPORT)
	@echo "shunt: serving nbd://$(LISTEN)/default"
	exec $(BUILD)/shunt serve --listen $(LISTEN) default=$(EXPORT)

# Every test against the normal build (the VM tier included), then the unit and
# interop tests again against the ASan+UBSan build; one summary line at the end.
check: deps build asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  tests/run.sh --jobs $(TEST_JOBS) --datapaths splice,direct,mmap,auto $(BUILD):all $(ASAN_BUILD):fast

check-fast: deps build
	tests/run.sh $(BUILD)

# Every libFuzzer harness (tests/fuzz/) for FUZZ_SECONDS each, in build-fuzz/ (clang);
# what the fuzzers learn stays in build-fuzz/corpus/. `make check` runs them ~20 s each.
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_KEEP=1 tests/fuzz/run.sh

# Reformat every C file under src/ and tests/ in place with .clang-format.
format:
	@command -v $(CLANG_FORMAT) >/dev/null || scripts/deps.sh format
	find src tests -name '*.[ch]' -print0 | xargs -0 $(CLANG_FORMAT) -i --style=file

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz build-tests-logs
