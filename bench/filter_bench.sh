#!/usr/bin/env bash
# Times `petrelctl filter test` with 200 rules on a 10 MB message (the rules
# cover headers, body text and regular expressions, so the MIME walk and
# every match run). Not a test: prints the time. Usage: bench/filter_bench.sh [BUILD]
set -euo pipefail
build=${1:-build}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "data_dir = $dir/var" > "$dir/petrel.conf"
ctl() { "$build/petrelctl" -c "$dir/petrel.conf" "$@"; }
ctl domain add example.com >/dev/null
python3 - "$dir" <<'PY'
import sys, base64, random
d = sys.argv[1]
with open(f"{d}/rules.txt", "w") as f:
    for i in range(200):
        kind = i % 4
        cond = ['header "Subject" contains "word%d"' % i,
                'body contains "needle%d"' % i,
                'body matches "w[o0]rd%d\\\\s+\\\\d+"' % i,
                'sender in-group "g%d"' % i][kind]
        f.write(f'rule "r{i}"\n\tif {cond}\n\tthen add-header "X-R{i}" "$SUBJECT$"\nend\n\n')
random.seed(1)
text = "".join(random.choice("abcdefghij klmnop\r\n") for _ in range(4_000_000))
blob = base64.encodebytes(random.randbytes(4_000_000)).decode().replace("\n", "\r\n")
with open(f"{d}/big.eml", "w", newline="") as f:
    f.write("From: a@b.example\r\nSubject: hello\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text +
            "\r\n--b\r\nContent-Type: application/octet-stream; name=x.bin\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + blob + "\r\n--b--\r\n")
PY
ctl filter import "$dir/rules.txt"
ls -l "$dir/big.eml" | awk '{print "message bytes:", $5}'
/usr/bin/time -f "200 rules, 10 MB: %e s wall, %M KB max RSS" \
	"$build/petrelctl" -c "$dir/petrel.conf" filter test "$dir/big.eml" \
	--from a@b.example --to x@example.com | tail -2
