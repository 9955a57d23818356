#!/usr/bin/env bash
# `make run`: on first run, creates ./var with the demo domain example.test,
# the accounts postmaster@ and alice@ (random passwords, printed once) and a
# config; then runs petreld in the foreground on the loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
VAR=$(pwd)/var
CONF=$VAR/petrel.conf
CTL="$BUILD/petrelctl -c $CONF"

if [ ! -f "$CONF" ]; then
	mkdir -p "$VAR"
	user=petrel
	if [ "$(id -u)" -eq 0 ]; then
		id -u petrel >/dev/null 2>&1 ||
			useradd --system --no-create-home --home-dir /nonexistent \
				--shell /usr/sbin/nologin petrel
	else
		user=$(id -un)
	fi
	cat > "$CONF" <<CONF
# Petrel demo configuration (made by make run). See README.md.
hostname = mail.example.test
data_dir = $VAR
user = $user
CONF
	$CTL domain add example.test
	echo
	echo "Demo accounts (passwords are shown only now):"
	for a in postmaster alice; do
		pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=' | head -c 20)
		extra=""
		[ "$a" = postmaster ] && extra=--admin
		printf '%s\n' "$pw" | $CTL account add $extra "$a@example.test"
		printf '  %-26s %s\n' "$a@example.test" "$pw"
	done
	echo
fi
echo "petreld: SMTP 127.0.0.1:2525, submission 2587, smtps 2465 (Ctrl-C stops)"
exec "$BUILD/petreld" -c "$CONF"
