#!/usr/bin/python3
"""A backlog at start: N messages committed to active/ (by
build/backlog_bench) before petreld starts, as after an outage. Local: the
time until all are in the Maildir, and petreld's peak memory. Remote (the
resolver answers nothing, so each attempt ends deferred): the time until
all are in deferred/, the most descriptors petreld held, and its error
lines.
    bench/backlog.py [--build DIR] [-n N] [--remote]
Uses the test harness's Petrel (tests/integration/conftest.py) for a data
directory with the demo accounts and loopback ports."""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("--remote", action="store_true")
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    os.environ["PETREL_BUILD"] = os.path.abspath(a.build)
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from conftest import Petrel  # noqa: E402 (needs PETREL_BUILD first)

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="petrel-backlog-"))
    try:
        p = Petrel(tmp)
        # The filler of this tree, when the build measured has none.
        fill = os.path.join(a.build, "backlog_bench")
        if not os.path.exists(fill):
            fill = str(ROOT / "build" / "backlog_bench")
        subprocess.run([fill,
                        str(p.data_dir), str(a.n),
                        "remote" if a.remote else "local"], check=True)
        t0 = time.monotonic()
        p.start()
        most_fds, done = 0, 0
        where = p.data_dir / "queue" / "deferred" if a.remote else \
            p.maildir("alice@example.test") / "new"
        while time.monotonic() - t0 < a.timeout:
            most_fds = max(most_fds,
                           len(os.listdir(f"/proc/{p.proc.pid}/fd")))
            done = len(os.listdir(where)) if where.exists() else 0
            if done >= a.n:
                break
            time.sleep(0.1)
        took = time.monotonic() - t0
        with open(f"/proc/{p.proc.pid}/status") as f:
            hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
        errors = sum(1 for l in p.log("system").splitlines()
                     if "*** error" in l)
        p.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    what = "deferred" if a.remote else "delivered"
    print(f"{a.n} {'remote' if a.remote else 'local'} messages: {done} "
          f"{what} in {took:.1f} s; peak RSS {hwm // 1024} MB, most "
          f"descriptors {most_fds}, error lines {errors}")
    return 0 if done >= a.n else 1


if __name__ == "__main__":
    sys.exit(main())
