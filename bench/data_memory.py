#!/usr/bin/python3
"""Memory of sessions in the middle of a large DATA: N sessions each send
SIZE MB of message (and not yet the final dot); petreld's RSS is read
before and at that point, then every message is finished and must get 250.
Session memory must not depend on message size (docs/performance.md).
    bench/data_memory.py [--build DIR] [-n 20] [--mb 19]
Uses the test harness's Petrel (tests/integration/conftest.py) for a data
directory with the demo accounts and loopback ports."""
import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--mb", type=int, default=19)
    a = ap.parse_args()
    os.environ["PETREL_BUILD"] = os.path.abspath(a.build)
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from conftest import Petrel  # noqa: E402 (needs PETREL_BUILD first)
    from smtputil import Raw  # noqa: E402

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="petrel-datamem-"))
    try:
        p = Petrel(tmp, settings={
            "smtp.max_message_kb": str((a.mb + 1) * 1024),
            "smtp.max_sessions_per_ip": str(a.n + 1)}).start()
        conns = []
        for _ in range(a.n):
            r = Raw(p.ports["smtp"], timeout=120)
            assert r.code() == 220
            r.cmd("EHLO bench.test")
            assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
            assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
            assert r.cmd("DATA")[0] == 354
            conns.append(r)
        before = rss_mb(p.proc.pid)
        line = b"x" * 78 + b"\r\n"
        body = b"Subject: big\r\n\r\n" + line * (a.mb * 1024 * 1024 // 80)
        t = time.monotonic()
        for r in conns:
            r.send(body)
        # Let the daemon read what the socket buffers still hold.
        time.sleep(1)
        peak = rss_mb(p.proc.pid)
        sent = time.monotonic() - t
        ok = 0
        for r in conns:
            r.send(b".\r\n")
            ok += r.reply()[0] == 250
            r.close()
        p.stop()
        print(f"{a.n} sessions x {a.mb} MB into DATA ({sent:.1f} s): "
              f"RSS {before:.0f} MB -> {peak:.0f} MB "
              f"(+{peak - before:.0f} MB); {ok}/{a.n} saved")
        return 0 if ok == a.n else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
