#!/usr/bin/env bash
# Installs, with apt, the Debian packages that Petrel's build and tests need.
# `deps.sh --check` only reports (exit 1) whether something is missing;
# without it, packages are installed when anything is missing.
set -euo pipefail

PACKAGES=(
	build-essential cmake pkg-config       # compiler and build
	libevent-dev libssl-dev libc-ares-dev  # event loop, TLS, DNS
	libsqlite3-dev libsodium-dev           # directory, hashing
	libpcre2-dev libjansson-dev            # filter regexes, admin JSON
	libcmocka-dev                          # unit tests
	python3 python3-pytest swaks openssl   # integration tests, real clients
	mpop fetchmail                         # real POP3 clients (test_pop3.py)
	# IMAP over our Maildirs and accounts (docs/dovecot.md); the test
	# starts a private instance, never the system service these install.
	dovecot-imapd dovecot-sqlite
	# SpamAssassin's spamd scores test messages (test_spam.py starts a
	# private one on a loopback port); spamc to ask it by hand.
	spamassassin spamd spamc
	clang libclang-rt-14-dev               # libFuzzer for `make fuzz`
)

missing() {
	local m
	for m in libevent_core libevent_openssl libevent_pthreads openssl \
		libcares sqlite3 libsodium libpcre2-8 jansson cmocka; do
		pkg-config --exists "$m" 2>/dev/null || { echo "pkg-config: $m"; return 0; }
	done
	for c in cc cmake make pkg-config swaks openssl clang mpop fetchmail; do
		command -v "$c" >/dev/null 2>&1 || { echo "command: $c"; return 0; }
	done
	/usr/bin/python3 -c 'import pytest' 2>/dev/null || { echo "python3-pytest"; return 0; }
	[ -x /usr/sbin/dovecot ] || { echo "dovecot-imapd"; return 0; }
	[ -e /usr/lib/dovecot/modules/libdriver_sqlite.so ] ||
		{ echo "dovecot-sqlite"; return 0; }
	[ -x /usr/sbin/spamd ] || { echo "spamd"; return 0; }
	command -v spamassassin >/dev/null 2>&1 || { echo "spamassassin"; return 0; }
	command -v spamc >/dev/null 2>&1 || { echo "spamc"; return 0; }
	return 1
}

if what=$(missing); then
	if [ "${1:-}" = "--check" ]; then
		echo "missing: $what"
		exit 1
	fi
	echo "deps: installing (missing $what)" >&2
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: run as root, or install: ${PACKAGES[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends \
		$(printf '%s\n' "${PACKAGES[@]}" | sed 's/#.*//')
fi
exit 0
