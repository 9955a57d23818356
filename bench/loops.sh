#!/usr/bin/env bash
# Petrel's throughput by number of event loops (config key loops).
#
#   bench/loops.sh BUILD
#
# For each value of BENCH_LOOPS (default: 1, 2, 4, 8, 16, as far as the
# machine has cores), runs bench/run.sh with Petrel alone, PETREL_LOOPS set,
# over the cells of BENCH_CELLS (default: 4 KB and 100 KB, 50 sessions x 20
# messages), BENCH_REPS repeats each (default 3), and prints one table:
# messages/second accepted and end to end (medians), and the ratio to one
# loop. The loop counts take turns within each repeat, so that what else
# the machine does falls on all of them alike. Raw results: the run.sh
# folders named in the output.
set -euo pipefail

[ $# -eq 1 ] || {
	echo "usage: bench/loops.sh BUILD_DIR" >&2
	exit 2
}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$1
cores=$(nproc)
if [ -z "${BENCH_LOOPS:-}" ]; then
	BENCH_LOOPS=""
	for n in 1 2 4 8 16; do
		if [ "$n" -le "$cores" ]; then
			BENCH_LOOPS="$BENCH_LOOPS $n"
		fi
	done
fi
reps=${BENCH_REPS:-3}
cells=${BENCH_CELLS:-"4096:50:20 102400:50:20"}
list=$(mktemp)
trap 'rm -f "$list"' EXIT
for rep in $(seq 1 "$reps"); do
	for n in $BENCH_LOOPS; do
		echo "bench/loops: repeat $rep, $n loop(s)"
		out=$(BENCH_SERVERS=petrel BENCH_CELLS="$cells" BENCH_REPS=1 \
			BENCH_IDLE=0 BENCH_HOLD=0 PETREL_LOOPS=$n \
			"$ROOT/bench/run.sh" "$BUILD" 2>&1) || {
			echo "$out" | tail -n 20
			exit 1
		}
		dir=$(echo "$out" | sed -n 's/^bench: results in //p' | tail -n 1)
		echo "$n $ROOT/$dir" >>"$list"
		echo "  $ROOT/$dir"
	done
done
python3 - "$list" "$cores" <<'PY'
import json
import statistics
import sys

runs = {}
for line in open(sys.argv[1]):
    n, d = line.split()
    s = json.load(open(f"{d}/summary.json"))
    for c in s["cells"]:
        key = (c["size"], c["sessions"], c["per_session"])
        p = c["petrel"]
        runs.setdefault(key, {}).setdefault(int(n), []).append(
            (p["rate"], p["e2e_rate"] or 0, s["machine"]["loadavg"]))
most = max(len(v) for c in runs.values() for v in c.values())
print(f"\nPetrel by event loops ({sys.argv[2]} cores; medians of {most} "
      "runs)\n")
print("| size | sessions x msgs | loops | accepted msg/s | vs 1 loop "
      "| end to end msg/s | load (1 min) |")
print("|---|---|---|---|---|---|---|")
for (size, sess, per), by in sorted(runs.items()):
    base = statistics.median(r[0] for r in by[1]) if 1 in by else None
    for n in sorted(by):
        acc = statistics.median(r[0] for r in by[n])
        e2e = statistics.median(r[1] for r in by[n])
        load = statistics.median(r[2] for r in by[n])
        rel = f"{acc / base:.2f}" if base else "-"
        print(f"| {size // 1024} KB | {sess} x {per} | {n} | {acc:,.0f} "
              f"| {rel} | {e2e:,.0f} | {load:.1f} |")
PY
