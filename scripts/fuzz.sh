#!/usr/bin/env bash
# Builds every tests/fuzz/fuzz_<parser>.c with clang's libFuzzer (plus ASan
# and UBSan) into DIR, then runs each for ${FUZZ_SECONDS:-60} seconds on a
# copy of its seed corpus, so that tests/fuzz/corpus/ stays as committed.
#
#   scripts/fuzz.sh [DIR]          (make fuzz FUZZ_BUILD=DIR)
#   FUZZ_SECONDS=600 FUZZ_ONLY=smtp_data scripts/fuzz.sh build-fuzz
#
# The core library is built by CMake (its own source list and flags) with
# -fsanitize=fuzzer-no-link; each harness is linked against it. Findings go
# to DIR/artifacts/<parser>/ (crash-*, leak-*, timeout-*); the grown corpus
# is in DIR/corpus/<parser>/ (minimize a finding with -minimize_crash=1 and
# add it to the seeds by hand). Exits non-zero when any fuzzer failed.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_ONLY=${FUZZ_ONLY:-}
JOBS=${JOBS:-$(nproc)}
CC=${FUZZ_CC:-clang}
DEPS="libevent_core libevent_extra libevent_openssl libevent_pthreads
	openssl libcares sqlite3 libsodium libpcre2-8 jansson"

command -v "$CC" >/dev/null || { echo "fuzz: $CC not found" >&2; exit 1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

echo "== building the core library for libFuzzer in $OUT/core"
cmake -S . -B "$OUT/core" -DCMAKE_C_COMPILER="$CC" \
	-DCMAKE_BUILD_TYPE=Debug -DPETREL_SANITIZE=ON \
	-DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link -O1" >/dev/null
cmake --build "$OUT/core" --target petrelcore -j "$JOBS"

SAN=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-fno-omit-frame-pointer -g -O1)
# shellcheck disable=SC2086
LIBS=$(pkg-config --libs $DEPS)

fuzzers=()
for src in tests/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	parser=${name#fuzz_}
	[ -n "$FUZZ_ONLY" ] && [ "$parser" != "$FUZZ_ONLY" ] && continue
	echo "== linking $name"
	# shellcheck disable=SC2086
	"$CC" "${SAN[@]}" -std=c11 -D_GNU_SOURCE -Isrc -Wall -Wextra -Werror \
		"$src" "$OUT/core/libpetrelcore.a" $LIBS -lpthread -lm \
		-o "$OUT/$name"
	fuzzers+=("$parser")
done
[ ${#fuzzers[@]} -gt 0 ] || { echo "fuzz: no harness to run" >&2; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for parser in "${fuzzers[@]}"; do
	corpus=$OUT/corpus/$parser
	artifacts=$OUT/artifacts/$parser
	rm -rf "$corpus"
	mkdir -p "$corpus" "$artifacts"
	if [ -d "tests/fuzz/corpus/$parser" ]; then
		cp -r "tests/fuzz/corpus/$parser/." "$corpus/"
	fi
	echo "== fuzzing $parser for ${FUZZ_SECONDS}s"
	if "$OUT/fuzz_$parser" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$artifacts/" "$corpus" \
		>"$OUT/$parser.log" 2>&1; then
		echo "ok   $parser: $(grep -c . <(ls "$corpus")) inputs in corpus"
	else
		failed+=("$parser")
		echo "FAIL $parser: see $OUT/$parser.log and $artifacts/"
		tail -n 30 "$OUT/$parser.log"
	fi
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: failed: ${failed[*]}"
	exit 1
fi
echo "fuzz: all ${#fuzzers[@]} fuzzers ran clean"
