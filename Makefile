# Petrel: thin wrapper over CMake. See README.md.
BUILD      ?= build
TEST_BUILD ?= build-test
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)

.PHONY: all build deps run test test-build test-run fuzz bench clean format lint

all: build

deps:
	@scripts/deps.sh

build:
	@scripts/deps.sh
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@scripts/run.sh $(BUILD)

test-build:
	@scripts/deps.sh
	cmake -S . -B $(TEST_BUILD) -DPETREL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build $(TEST_BUILD) -j $(JOBS)

test: test-build
	@$(MAKE) --no-print-directory test-run

# The tests of an existing test build, without building it again.
test-run:
	@scripts/test.sh $(TEST_BUILD)

# libFuzzer builds of tests/fuzz/ (for fuzzing sessions, not run by `make test`).
fuzz:
	@scripts/deps.sh
	@scripts/fuzz.sh $(FUZZ_BUILD)

bench: build
	@bench/run.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

lint:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr -I src $$(git ls-files 'src/*.c')

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(FUZZ_BUILD)
