#!/usr/bin/env bash
# Counts petreld's system calls per message under one smtp-source load:
# the flushes (fsync, fdatasync), file creations, writes and renames that
# the spool and delivery cost. Deterministic where timing is not: the
# counts barely move with the machine's load, so a change to the spool can
# be judged on a shared machine.
#
#   bench/syscalls.sh BUILD [SESSIONS [MSGS_PER_SESSION [SIZE]]]
#
# Needs root (perf's tracepoints), smtp-source (Debian's postfix) and perf
# (linux-perf). Sender rules and the DNSBL are left at this build's
# defaults but for the per-IP limits (raised as in run.sh).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bench/syscalls.sh BUILD [S [M [SIZE]]]" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "$1" && pwd)
S=${2:-50} M=${3:-20} Z=${4:-4096}
N=$((S * M))
export PATH=$PATH:/usr/sbin
for bin in smtp-source perf; do
	command -v "$bin" >/dev/null || { echo "bench: $bin is missing" >&2; exit 1; }
done
W=$(mktemp -d "${BENCH_TMP:-/var/tmp}/petrel-syscalls.XXXXXX")
chmod 755 "$W"
P=""
cleanup() {
	[ -n "$P" ] && kill "$P" 2>/dev/null && wait "$P" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
id -u petrel >/dev/null 2>&1 ||
	useradd --system --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin petrel
PORT=$(python3 "$ROOT/bench/bench.py" freeport tcp)
DNS=$(python3 "$ROOT/bench/bench.py" freeport udp)
cat >"$W/petrel.conf" <<C
hostname = petrel.bench.test
data_dir = $W/data
user = petrel
listen_smtp = 127.0.0.1:$PORT
listen_submission = none
listen_smtps = none
listen_pop3 = none
listen_pop3s = none
listen_admin = none
dns_server = 127.0.0.1:$DNS
C
CTL=("$B/petrelctl" -c "$W/petrel.conf")
"${CTL[@]}" domain add bench.test >/dev/null
head -c 24 /dev/urandom | base64 | "${CTL[@]}" account add bench@bench.test >/dev/null
for kv in smtp.max_sessions_per_ip=1000 screening.max_connections_per_ip=1000 \
	screening.max_connects_per_minute=10000000; do
	if "${CTL[@]}" get "${kv%%=*}" >/dev/null 2>&1; then
		"${CTL[@]}" set "${kv%%=*}" "${kv#*=}" >/dev/null
	fi
done
"$B/petreld" -c "$W/petrel.conf" >"$W/petreld.out" 2>&1 &
P=$!
for _ in $(seq 200); do
	python3 "$ROOT/bench/bench.py" probe "$PORT" && break
	sleep 0.05
done
EV=fsync,fdatasync,openat,write,writev,rename,renameat,renameat2,unlinkat,ftruncate,pwrite64
# The last event counts again the openat calls with O_CREAT (64): the
# files created, each an inode to allocate.
perf stat -e "$(echo "$EV" | sed 's/\([a-z0-9]*\)/syscalls:sys_enter_\1/g')" \
	-e syscalls:sys_enter_openat --filter 'flags & 64' \
	-p "$P" -o "$W/perf.txt" &
PS=$!
sleep 0.3
T0=$(date +%s.%N)
smtp-source -s "$S" -m "$N" -l "$Z" -f sender@remote.test \
	-t bench@bench.test "127.0.0.1:$PORT" >/dev/null
T1=$(date +%s.%N)
MD=$W/data/mail/bench.test/bench/Maildir/new
n=0
for _ in $(seq 600); do
	n=$(find "$MD" -type f 2>/dev/null | wc -l)
	[ "$n" -ge "$N" ] && break
	sleep 0.05
done
sleep 0.3
kill -INT "$PS"
wait "$PS" 2>/dev/null || true
echo "petrel $(basename "$B"): $S sessions x $M messages of $Z bytes:" \
	"$n of $N delivered," \
	"$(python3 -c "print(round($N / ($T1 - $T0)))") msg/s accepted (timing: noisy)"
awk -v n="$N" '/syscalls:sys_enter_/ {
	gsub(",", "", $1); sub("syscalls:sys_enter_", "", $2)
	if (seen[$2]++) $2 = $2 "+creat"
	printf "  %-10s %6.2f per message\n", $2, $1 / n }' "$W/perf.txt"
