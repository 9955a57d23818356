#!/usr/bin/env bash
# Runs every test of the sanitizer build: cmocka unit tests and fuzz corpus
# replays (through CTest), the source checks, then the pytest suites (the
# integration tests against the real daemon, and this runner's own tests).
# Ends with "N passed, N failed".
#
# A runner counts as passed only when it exited 0, wrote its result file,
# and that file holds at least as many test cases as the runner listed
# beforehand (ctest -N, pytest --collect-only). Anything else (a usage or
# internal error, nothing collected, a crash half-way) is a failure, so that
# the closing line can never read "0 failed" for tests that did not run.
#
#   scripts/test.sh [BUILD]
#   PYTEST_ARGS="-x -k 'smtp or pop3'" scripts/test.sh   (split as by sh)
#
# CTEST, PYTEST (a command line, split into words) and CHECK_SOURCE name the
# runners; tests/runner/ replaces them with fakes to test this script.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-test}
RESULTS=$BUILD/results
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)

CTEST=${CTEST:-ctest}
read -r -a PYTEST <<<"${PYTEST:-/usr/bin/python3 -m pytest}"
# Split as the shell would: PYTEST_ARGS="-x -k 'smtp or pop3'".
eval "PYTEST_EXTRA=(${PYTEST_ARGS:-})"
CHECK_SOURCE=${CHECK_SOURCE:-scripts/check-source.sh}
PYTEST_PATHS=(tests/integration tests/runner)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
PETREL_BUILD=$(cd "$BUILD" && pwd)
export PETREL_BUILD

# One line per runner for the summary: "name rc expected file".
RUNS=$RESULTS/runs.txt
: >"$RUNS"

echo "== unit tests and fuzz corpora (ctest)"
expected=$("$CTEST" --test-dir "$BUILD" -N 2>/dev/null |
	sed -n 's/^Total Tests: *\([0-9][0-9]*\)$/\1/p')
"$CTEST" --test-dir "$BUILD" -j "$(nproc)" --output-on-failure \
	--no-tests=error --output-junit "$RESULTS/ctest.xml"
echo "ctest $? ${expected:-unknown} ctest.xml" >>"$RUNS"

echo "== source checks"
"$CHECK_SOURCE" "$RESULTS/source.xml"
rc=$?
expected=$(grep -c '^check ' "$CHECK_SOURCE" 2>/dev/null)
echo "source $rc ${expected:-unknown} source.xml" >>"$RUNS"

echo "== pytest suites"
expected=$("${PYTEST[@]}" -q -p no:cacheprovider --collect-only \
	"${PYTEST_PATHS[@]}" "${PYTEST_EXTRA[@]}" 2>/dev/null | awk '
	# "N tests collected" (or "K/N tests collected (M deselected)"), or
	# under -qq one "FILE: N" line per file.
	match($0, /^[0-9]+(\/[0-9]+)? tests? collected/) { split($1, a, "/"); n = a[1]; found = 1 }
	/^[^ ]+: [0-9]+$/ { files += $2 }
	END { if (found) print n; else if (files) print files }')
"${PYTEST[@]}" -q -p no:cacheprovider --junitxml="$RESULTS/pytest.xml" \
	"${PYTEST_PATHS[@]}" "${PYTEST_EXTRA[@]}"
rc=$?
[ $rc -eq 5 ] && echo "pytest collected no tests"
echo "pytest $rc ${expected:-unknown} pytest.xml" >>"$RUNS"

/usr/bin/python3 - "$RESULTS" <<'PY'
import sys, xml.etree.ElementTree as ET
results = sys.argv[1]
passed = failed = skipped = 0
for line in open(results + "/runs.txt"):
    name, rc, expected, fname = line.split()
    path = f"{results}/{fname}"
    problems = []
    if rc != "0":
        problems.append(f"exited {rc}")
    if not expected.isdigit() or int(expected) == 0:
        problems.append("listed no test")
    cases = []
    path_ok = False
    try:
        cases = list(ET.parse(path).getroot().iter("testcase"))
        path_ok = True
    except FileNotFoundError:
        problems.append(f"wrote no {fname}")
    except Exception as e:
        problems.append(f"wrote an unreadable {fname} ({e})")
    for case in cases:
        kinds = {c.tag for c in case}
        st = case.get("status", "")
        if "failure" in kinds or "error" in kinds or st == "fail":
            failed += 1
        elif "skipped" in kinds or st in ("notrun", "disabled"):
            skipped += 1
        else:
            passed += 1
    if path_ok and expected.isdigit() and len(cases) < int(expected):
        problems.append(f"ran {len(cases)} of the {expected} tests it listed")
    if problems:
        # The runner itself failed: one failure more than its cases say.
        failed += 1
        print(f"{name}: " + "; ".join(problems))
if passed + failed + skipped == 0:
    failed += 1
    print("no test ran")
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed else 0)
PY
