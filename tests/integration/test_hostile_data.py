"""Hostile DATA against the real daemon: a 20 MB message trickled in small
chunks with pauses (within smtp.timeout_data), and 20 sessions at once
each sending 19 MB into DATA. A session's memory must not depend on the
size of its message: petreld's RSS growth is measured over the DATA
phase (its VmHWM, reset when DATA starts) and bounded."""
import hashlib
import os
import threading
import time

import pytest

from hostile_util import daemon_rss_bound, rss_kb  # noqa: F401
from smtputil import Raw, wait_for

MB = 1024 * 1024
TRICKLE_SIZE = 20 * MB
TRICKLE_CHUNK = 128 * 1024
TRICKLE_PAUSE = 0.01  # seconds between chunks
SESSIONS = 20
SESSION_SIZE = 19 * MB
# RSS growth allowed while 20 sessions each hold 19 MB of DATA: a bound
# that messages kept in memory (20 x 19 MB = 380 MB) pass many times over,
# and that a session streaming its message into the spool keeps well
# under.
CONCURRENT_GROWTH_MAX_KB = 64 * 1024
# RSS growth allowed while one session receives 20 MB.
TRICKLE_GROWTH_MAX_KB = 16 * 1024


# ASan keeps freed memory aside (its quarantine, 256 MB by default) so as
# to catch a use after free; that memory stays resident, so 380 MB passing
# through the daemon would show as up to 256 MB of growth whatever the
# daemon keeps. These tests give it 8 MB: still a quarantine, and the RSS
# measures what petreld holds (plus at most that).
QUARANTINE_MB = 8


@pytest.fixture(autouse=True)
def small_quarantine(monkeypatch):
    opts = [o for o in os.environ.get("ASAN_OPTIONS", "").split(":")
            if o and not o.startswith(("quarantine_size_mb=",
                                       "thread_local_quarantine_size_kb="))]
    monkeypatch.setenv("ASAN_OPTIONS", ":".join(
        opts + [f"quarantine_size_mb={QUARANTINE_MB}"]))


def body(size, seed):
    """CRLF lines of printable text, at least size bytes, none starting
    with a dot: the bytes on the wire are the bytes that must land."""
    filler = bytes(33 + (i * 7 + seed) % 94 for i in range(200))
    filler = filler.replace(b".", b"-")
    lines, n, i = [], 0, 0
    while n < size:
        k = 60 + (i * 31 + seed) % 140
        line = b"%08d " % i + filler[i % 50:i % 50 + k]
        lines.append(line)
        n += len(line) + 2
        i += 1
    return b"".join(ln + b"\r\n" for ln in lines)


def message(mid, size, seed):
    head = (b"Message-ID: <%s>\r\nFrom: <x@remote.test>\r\n"
            b"To: <alice@example.test>\r\nSubject: large\r\n\r\n"
            % mid.encode())
    return head + body(size - len(head), seed)


class Hwm:
    """petreld's peak RSS over an interval: VmHWM, reset at the start
    (clear_refs 5; the daemon is our child), sampled from a thread as
    well in case the reset is not allowed."""

    def __init__(self, p):
        self.p = p
        self.pid = p.proc.pid
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
            self.reset = True
        except OSError:
            self.reset = False
        self.base = rss_kb(p)
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_kb(self.p))

    def growth(self):
        """The peak since the start, less the RSS then, in KB."""
        self._stop.set()
        self._t.join()
        if self.reset:
            from hostile_util import status_kb
            self.peak = max(self.peak, status_kb(self.pid, "VmHWM"))
        return self.peak - self.base


def open_data(p, timeout=60):
    r = Raw(p.ports["smtp"], timeout=timeout)
    assert r.reply()[0] == 220
    assert r.cmd("EHLO big.test")[0] == 250
    assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    return r


def delivered(p, mid, timeout=60):
    """The client's part of the message with Message-ID mid in alice's
    Maildir: what follows the stamped trace headers, with CRLF line ends
    again (the Maildir keeps LF)."""
    def find():
        for f in p.messages("alice@example.test", timeout=0):
            with open(f, "rb") as fh:
                head = fh.read(8192)
            if b"<%s>" % mid.encode() in head:
                return f.read_bytes()
        return None
    assert wait_for(lambda: find() is not None, timeout=timeout), mid
    landed = find()
    i = landed.index(b"Message-ID: <%s>" % mid.encode())
    return landed[i:].replace(b"\n", b"\r\n")


def test_trickled_20mb_message(petrel_factory):
    """20 MB sent in 128 KB chunks with a pause after each (well within
    smtp.timeout_data): 250, the message lands byte for byte, and
    petreld grows by less than a tenth of the message meanwhile."""
    p = petrel_factory(settings={"smtp.max_message_kb": str(21 * 1024),
                                 "smtp.timeout_data": "10"})
    msg = message("trickle@x.test", TRICKLE_SIZE, 1)
    r = open_data(p, timeout=120)
    hwm = Hwm(p)
    t = time.monotonic()
    for i in range(0, len(msg), TRICKLE_CHUNK):
        r.send(msg[i:i + TRICKLE_CHUNK])
        time.sleep(TRICKLE_PAUSE)
    took = time.monotonic() - t
    during = hwm.growth()
    commit = Hwm(p)
    code, lines = r.cmd(".")
    at_dot = commit.growth()
    r.cmd("QUIT")
    r.close()
    print(f"{len(msg)} bytes in {took:.1f} s; RSS {hwm.base} KB, +{during} "
          f"KB during DATA, +{at_dot} KB from the dot to the reply "
          f"(VmHWM reset: {hwm.reset})")
    assert code == 250, lines
    landed = delivered(p, "trickle@x.test")
    assert hashlib.sha256(landed).hexdigest() == \
        hashlib.sha256(msg).hexdigest()
    assert during < TRICKLE_GROWTH_MAX_KB, during


def test_twenty_sessions_of_19mb(petrel_factory):
    """20 sessions at once each send 19 MB into DATA (no final dot):
    petreld's RSS grows by less than 64 MB, not by the 380 MB the
    messages hold; then the clients vanish, the daemon stays up, and no
    message's bytes are left behind in the spool."""
    p = petrel_factory(settings={"smtp.max_message_kb": str(20 * 1024),
                                 "smtp.timeout_data": "60"})
    data = body(SESSION_SIZE, 2)
    head = b"Subject: one of twenty\r\n\r\n"
    conns = [open_data(p, timeout=120) for _ in range(SESSIONS)]
    hwm = Hwm(p)
    t = time.monotonic()
    errors = []

    def pump(r):
        try:
            r.send(head)
            view = memoryview(data)
            for i in range(0, len(data), 1 << 20):
                r.sock.sendall(view[i:i + (1 << 20)])
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=pump, args=(r,)) for r in conns]
    for th in threads:
        th.start()
    for th in threads:
        th.join(300)
    took = time.monotonic() - t
    # The last bytes sent are read once the daemon's receive queues are
    # empty; give it a moment to take them in.
    time.sleep(0.5)
    growth = hwm.growth()
    print(f"{SESSIONS} x {len(data) + len(head)} bytes in {took:.1f} s; "
          f"RSS {hwm.base} KB, peak +{growth} KB "
          f"({growth // SESSIONS} KB a session; VmHWM reset: {hwm.reset})")
    assert not errors, errors
    assert p.proc.poll() is None, p.stderr_text()[-3000:]
    for r in conns:
        r.close()
    assert wait_for(lambda: p.log("smtp-in").count(
        "connection closed by client during DATA") >= SESSIONS, timeout=30)
    assert p.proc.poll() is None, p.stderr_text()[-3000:]

    def left_behind():
        return sum(f.stat().st_size
                   for f in (p.data_dir / "queue").rglob("*")
                   if f.is_file())
    assert wait_for(lambda: left_behind() < MB, timeout=10), left_behind()
    assert growth < CONCURRENT_GROWTH_MAX_KB, (
        f"petreld grew by {growth} KB while {SESSIONS} sessions held "
        f"{SESSION_SIZE // MB} MB of DATA each")
