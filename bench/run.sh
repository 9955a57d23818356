#!/usr/bin/env bash
# `make bench`: Petrel against Postfix and smtp-sink on this machine.
#
#   bench/run.sh BUILD        (BUILD: the folder with a release petreld)
#
# Installs what is missing (Debian's postfix, for smtp-source, smtp-sink and
# Postfix itself), starts three servers on free loopback ports, all on
# 127.0.0.1 only, and lets bench/bench.py drive them in turns with
# smtp-source over the grid of issue 9. Everything started here is stopped
# on exit, on failure or on Ctrl-C.
#
# Environment:
#   BENCH_QUICK=1        a short run: fewer cells, fewer messages, 1 repeat
#   BENCH_REPS=N         repeats of each cell (default 3; quick: 1)
#   BENCH_CELLS="SIZE:SESSIONS:MSGS_PER_SESSION ..."   only these cells
#   BENCH_SERVERS="petrel postfix sink"                 only these servers
#   BENCH_IDLE=N         idle sessions held open to Petrel (default 1000;
#                        quick: 200)
#   BENCH_HOLD=N         sessions of the capacity check (default 10000;
#                        quick: 0, skipped)
#   BENCH_PROFILE=1      also perf-record petreld under 4 KB, 50 x 20
#   BENCH_PROFILE_SIZE=N the profile's message size instead of 4 KB
#   BENCH_TMP=DIR        where the servers' files go (default /var/tmp;
#                        it must be on the disk being measured, not tmpfs)
#   BENCH_KEEP=1         keep the temporary folder
#   PETREL_LOOPS=N       petreld's event loops (config key loops; default:
#                        one per core). bench/loops.sh sets it.
set -euo pipefail

usage() {
	echo "usage: bench/run.sh BUILD_DIR   (see the comments at the top)" >&2
	exit 2
}

[ $# -eq 1 ] || usage
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$1" && pwd) || usage
PETRELD=$BUILD/petreld
PETRELCTL=$BUILD/petrelctl
if [ ! -x "$PETRELD" ] || [ ! -x "$PETRELCTL" ]; then
	echo "bench: no petreld/petrelctl in $BUILD (build it first)" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "bench: run as root (Postfix's master starts as root; apt)" >&2
	exit 1
fi

# --- what the bench needs ----------------------------------------------------
need=()
for cmd in smtp-source:postfix smtp-sink:postfix postfix:postfix \
	python3:python3 perf:linux-perf; do
	bin=${cmd%%:*} pkg=${cmd#*:}
	if [ "$bin" = perf ] && [ "${BENCH_PROFILE:-0}" != 1 ]; then
		continue
	fi
	PATH=$PATH:/usr/sbin command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
installed_postfix=0
if [ ${#need[@]} -gt 0 ]; then
	mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
	echo "bench: installing ${need[*]}"
	if printf '%s\n' "${need[@]}" | grep -qx postfix; then
		installed_postfix=1
		# No system configuration: the bench runs its own instance.
		debconf-set-selections <<-'SEL'
			postfix postfix/main_mailer_type select No configuration
			postfix postfix/mailname string localhost
		SEL
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
export PATH=$PATH:/usr/sbin
if [ "$installed_postfix" = 1 ]; then
	# Installing must not leave a system Postfix running or listening.
	if [ -d /run/systemd/system ]; then
		systemctl disable --now postfix.service >/dev/null 2>&1 || true
	fi
	if postfix status >/dev/null 2>&1; then
		postfix stop >/dev/null 2>&1 || true
	fi
fi

# --- a private folder and cleanup ----------------------------------------------
TMPBASE=${BENCH_TMP:-/var/tmp}
WORK=$(mktemp -d "$TMPBASE/petrel-bench.XXXXXX")
chmod 755 "$WORK"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$ROOT/bench/results/$STAMP
mkdir -p "$RESULTS"

DNS_PID="" SINK_PID="" PETREL_PID="" POSTFIX_CONF=""

# Stops a process started here: TERM, then KILL after 10 seconds.
stop_pid() {
	[ -n "$1" ] || return 0
	kill "$1" 2>/dev/null || return 0
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$1" 2>/dev/null || true
}

stop_servers() {
	if [ -n "$POSTFIX_CONF" ] && [ -f "$POSTFIX_CONF/main.cf" ]; then
		postfix -c "$POSTFIX_CONF" stop >/dev/null 2>&1 || true
		# The private master, should stop have failed.
		local mpid=""
		if [ -f "$WORK/postfix/queue/pid/master.pid" ]; then
			mpid=$(tr -d ' ' <"$WORK/postfix/queue/pid/master.pid")
		fi
		if [ -n "$mpid" ] && grep -qs "$WORK" "/proc/$mpid/environ"; then
			stop_pid "$mpid"
		fi
	fi
	stop_pid "$SINK_PID"
	stop_pid "$PETREL_PID"
	SINK_PID="" PETREL_PID=""
}

# shellcheck disable=SC2317  # called by the trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_servers
	stop_pid "$DNS_PID"
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "bench: kept $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Sessions held open need descriptors (10,000 and more).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

freeport() { python3 "$ROOT/bench/bench.py" freeport "$@"; }
PETREL_PORT=$(freeport tcp)
POSTFIX_PORT=$(freeport tcp)
SINK_PORT=$(freeport tcp)
DNS_PORT=$(freeport udp)
DOMAIN=bench.test
RCPT=bench@$DOMAIN

wait_port() { # PORT NAME
	for _ in $(seq 200); do
		if python3 "$ROOT/bench/bench.py" probe "$1"; then
			return 0
		fi
		sleep 0.05
	done
	echo "bench: $2 does not answer on 127.0.0.1:$1" >&2
	return 1
}

# --- a DNS stub: every query is answered NXDOMAIN (nothing is listed) ----------
python3 "$ROOT/bench/bench.py" dns-stub "$DNS_PORT" &
DNS_PID=$!

# --- smtp-sink: accept and discard, the ceiling ----------------------------------
start_sink() {
	smtp-sink -u nobody "127.0.0.1:$SINK_PORT" 1024 >>"$WORK/sink.log" 2>&1 &
	SINK_PID=$!
	wait_port "$SINK_PORT" smtp-sink
}

# --- Postfix: a private instance, defaults but for where things are ---------------
PF=$WORK/postfix
POSTFIX_CONF=$PF/conf
mkdir -p "$POSTFIX_CONF" "$PF/queue" "$PF/data" "$PF/mail"
chown postfix:postfix "$PF/data"
chmod 700 "$PF/data"
chown nobody:nogroup "$PF/mail"
cat >"$POSTFIX_CONF/main.cf" <<EOF
# Private Postfix instance of the Petrel bench. Only paths, the listener and
# the bench domain differ from the defaults (fsync behaviour included).
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.$DOMAIN
mydomain = $DOMAIN
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
relayhost =
smtputf8_enable = no
# Every recipient of the bench domain goes to one Maildir (trailing /).
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_base = $PF/mail
virtual_mailbox_maps = static:bench/Maildir/
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(id -g nobody)
# Logs to a file, as Petrel does (there may be no syslog here).
maillog_file = $PF/maillog
EOF
# Debian's master.cf without chroot (the queue is not under /var/spool).
cat >"$POSTFIX_CONF/master.cf" <<EOF
127.0.0.1:$POSTFIX_PORT inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n - 0 cleanup
qmgr       unix  n - n 300 1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n - - trivial-rewrite
bounce     unix  - - n - 0 bounce
defer      unix  - - n - 0 bounce
trace      unix  - - n - 0 bounce
verify     unix  - - n - 1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n - - proxymap
proxywrite unix  - - n - 1 proxymap
smtp       unix  - - n - - smtp
relay      unix  - - n - - smtp
showq      unix  n - n - - showq
error      unix  - - n - - error
retry      unix  - - n - - error
discard    unix  - - n - - discard
local      unix  - n n - - local
virtual    unix  - n n - - virtual
lmtp       unix  - - n - - lmtp
anvil      unix  - - n - 1 anvil
scache     unix  - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
postfix -c "$POSTFIX_CONF" check
start_postfix() {
	postfix -c "$POSTFIX_CONF" start >/dev/null 2>&1 || {
		echo "bench: the private Postfix did not start:" >&2
		tail -5 "$PF/maillog" >&2 || true
		exit 1
	}
	POSTFIX_PID=$(tr -d ' ' <"$PF/queue/pid/master.pid")
	wait_port "$POSTFIX_PORT" Postfix
}

# --- Petrel: its own data_dir, a bench domain and account, every check on ------
P=$WORK/petrel
mkdir -p "$P"
puser=petrel
id -u "$puser" >/dev/null 2>&1 ||
	useradd --system --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin "$puser"
cat >"$P/petrel.conf" <<EOF
# Petrel bench configuration (made by bench/run.sh).
hostname = petrel.$DOMAIN
data_dir = $P/data
user = $puser
listen_smtp = 127.0.0.1:$PETREL_PORT
listen_submission = none
listen_smtps = none
listen_pop3 = none
listen_pop3s = none
listen_admin = none
dns_server = 127.0.0.1:$DNS_PORT
EOF
if [ -n "${PETREL_LOOPS:-}" ]; then
	echo "loops = $PETREL_LOOPS" >>"$P/petrel.conf"
fi
CTL=("$PETRELCTL" -c "$P/petrel.conf")
"${CTL[@]}" domain add "$DOMAIN" >/dev/null
head -c 24 /dev/urandom | base64 | "${CTL[@]}" account add "$RCPT" >/dev/null
# Every check there is, on (the defaults already are; said here so that a
# changed default does not change the bench). The DNSBL zone is answered by
# the stub above: the lookup happens, the client is not listed.
for kv in auth.require_for_local_senders=on auth.match_return_path=on \
	auth.match_from_header=on auth.require_for_role_senders=on \
	auth.except_to_local=off auth.allow_null_sender=off \
	auth.allow_plaintext=off hijack.enabled=on hijack.action=freeze \
	"dnsbl.zones=dnsbl.$DOMAIN:5:listed by the bench zone" \
	dnsbl.action=reject; do
	"${CTL[@]}" set "${kv%%=*}" "${kv#*=}" >/dev/null
done
# Per-IP connection limits, raised above what the one bench client needs:
# its one address stands for the many senders of a real load (Postfix's
# equivalents, in anvil, exempt mynetworks by default). They limit
# connections, never what is accepted. Only the settings this build has.
for kv in smtp.max_sessions_per_ip=1000 screening.max_connections_per_ip=1000 \
	screening.max_connects_per_minute=10000000; do
	if "${CTL[@]}" get "${kv%%=*}" >/dev/null 2>&1; then
		"${CTL[@]}" set "${kv%%=*}" "${kv#*=}" >/dev/null
	fi
done
# The content filter's 2 MB recipe of docs/filter.md (bench/filter-2mb.rules,
# the same text): every message is looked at by the filter before its 250.
"${CTL[@]}" group add big >/dev/null
"${CTL[@]}" group member add big "boss@$DOMAIN" >/dev/null
"${CTL[@]}" filter import "$ROOT/bench/filter-2mb.rules" >/dev/null
"${CTL[@]}" settings >"$RESULTS/petrel-settings.txt"
start_petrel() {
	"$PETRELD" -c "$P/petrel.conf" >>"$P/petreld.out" 2>&1 &
	PETREL_PID=$!
	wait_port "$PETREL_PORT" petreld
}

start_servers() {
	start_sink
	start_postfix
	start_petrel
}

cp "$POSTFIX_CONF/main.cf" "$POSTFIX_CONF/master.cf" "$P/petrel.conf" "$RESULTS/"

bench() { # PHASE
	python3 "$ROOT/bench/bench.py" "$1" \
		--results "$RESULTS" --work "$WORK" --rcpt "$RCPT" \
		--petrel "127.0.0.1:$PETREL_PORT,${PETREL_PID:-0},$P/data/mail/$DOMAIN/${RCPT%@*}/Maildir,$P/data/queue" \
		--postfix "127.0.0.1:$POSTFIX_PORT,${POSTFIX_PID:-0},$PF/mail/bench/Maildir,$PF/queue" \
		--sink "127.0.0.1:$SINK_PORT,${SINK_PID:-0},," \
		--petrelctl "$PETRELCTL" --petrel-conf "$P/petrel.conf"
}

# Idle sessions on fresh servers (a heap grown by the load, or Postfix's
# idle smtpd processes, would hide what a session costs); then fresh servers
# again for the load, so that what the idle test grew does not count there.
start_servers
bench idle
stop_servers
start_servers
status=0
bench grid || status=$?
stop_servers
bench report || status=$?
gzip -c "$PF/maillog" >"$RESULTS/postfix-maillog.gz" 2>/dev/null || true
tail -n 50 "$P/petreld.out" >"$RESULTS/petreld-tail.txt" 2>/dev/null || true
echo "bench: results in ${RESULTS#"$ROOT"/}"
exit "$status"
