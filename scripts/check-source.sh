#!/usr/bin/env bash
# Source checks that STYLE.md holds us to, written as a JUnit file so that
# they count among the tests: banned string functions, clang-format.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-/dev/stdout}
cases=""
fails=0
check() {
	local name=$1; shift
	local msg
	if msg=$("$@" 2>&1); then
		cases+="<testcase classname=\"source\" name=\"$name\"/>"
		echo "ok   $name"
	else
		fails=$((fails + 1))
		echo "FAIL $name"; printf '%s\n' "$msg" | head -n 20
		msg=$(printf '%s' "$msg" | head -c 4000 | sed 's/&/\&amp;/g;s/</\&lt;/g;s/>/\&gt;/g')
		cases+="<testcase classname=\"source\" name=\"$name\"><failure message=\"$name\">$msg</failure></testcase>"
	fi
}
banned() {
	! git grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|strncpy|strtok|atoi)\s*\(' \
		-- 'src/*.c' 'src/*.h' 'tests/*.c' | grep -v 'snprintf'
}
formatted() {
	clang-format --dry-run --Werror $(git ls-files -co --exclude-standard '*.c' '*.h')
}
check banned-functions banned
check clang-format formatted
echo "<testsuite name=\"source\">$cases</testsuite>" > "$out"
exit $fails
