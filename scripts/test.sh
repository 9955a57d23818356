#!/usr/bin/env bash
# Runs every test of the sanitizer build: cmocka unit tests and fuzz corpus
# replays (through CTest), the source checks, then the pytest integration
# suite against the real daemon. Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-test}
RESULTS=$BUILD/results
rm -rf "$RESULTS"
mkdir -p "$RESULTS"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "== unit tests and fuzz corpora (ctest)"
ctest --test-dir "$BUILD" -j "$(nproc)" --output-on-failure \
	--output-junit "$(pwd)/$RESULTS/ctest.xml"

echo "== source checks"
scripts/check-source.sh "$RESULTS/source.xml"

echo "== integration tests (pytest)"
PETREL_BUILD="$(pwd)/$BUILD" /usr/bin/python3 -m pytest -q -p no:cacheprovider \
	--junitxml="$RESULTS/pytest.xml" tests/integration "${PYTEST_ARGS[@]:-}"
rc=$?
[ $rc -eq 5 ] && echo "pytest collected no tests"

/usr/bin/python3 - "$RESULTS" <<'PY'
import sys, glob, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for f in sorted(glob.glob(sys.argv[1] + "/*.xml")):
    try:
        root = ET.parse(f).getroot()
    except Exception as e:
        print(f"unreadable results {f}: {e}")
        failed += 1
        continue
    for case in root.iter("testcase"):
        kinds = {c.tag for c in case}
        st = case.get("status", "")
        if "failure" in kinds or "error" in kinds or st == "fail":
            failed += 1
        elif "skipped" in kinds or st in ("notrun", "disabled"):
            skipped += 1
        else:
            passed += 1
if passed == 0:
    failed += 1
    print("no test ran")
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed else 0)
PY
