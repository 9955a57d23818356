"""Helpers of the hostile-client tests (test_hostile*.py): petreld's memory
(VmRSS, and its peak over a whole test), clients that trickle bytes, and
clients bound to other loopback addresses."""
import os
import re
import socket
import threading
import time

import pytest

# The peak RSS petreld may reach during any hostile-client test: what the
# daemon holds, plus what ASan keeps aside.
#  - 96 MB: the sanitizer build (ASan + UBSan, Debug) idles at about 54 MB
#    with its shadow memory; every session's memory is bounded by
#    constants on top of that (docs/hostile.md), and the hostile tests'
#    sessions together stay within the other 40 MB.
#  - 64 MB per worker thread: each password check (argon2id,
#    MEMLIMIT_INTERACTIVE) maps 64 MB while it runs; `workers` is 2 in the
#    tests (conftest.py).
#  - ASan's quarantine: freed memory is kept aside, resident, to catch a
#    use after free, up to quarantine_size_mb (256 MB unless ASAN_OPTIONS
#    says otherwise). Floods that allocate and free a lot fill it: the
#    100,000 recipients peak at 293 MB with it, 122 MB without.
# Whole messages in memory during DATA (20 x 19 MB = 380 MB) pass it.
DAEMON_BASE_MB = 96
ARGON2_MB = 64
WORKERS = 2  # conftest.py's Petrel sets workers = 2


def asan_quarantine_mb(pid):
    """The size of ASan's quarantine in the process pid (from the
    ASAN_OPTIONS it was started with)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return 256
    opts = [e[len(b"ASAN_OPTIONS="):].decode(errors="replace")
            for e in env if e.startswith(b"ASAN_OPTIONS=")]
    m = re.findall(r"(?:^|:)quarantine_size_mb=(\d+)",
                   opts[-1] if opts else "")
    return int(m[-1]) if m else 256


def daemon_rss_max_kb(pid):
    return (DAEMON_BASE_MB + ARGON2_MB * WORKERS +
            asan_quarantine_mb(pid)) * 1024


def status_kb(pid, field):
    """A field of /proc/PID/status in KB (VmRSS, VmHWM), or None when the
    process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(m.group(1)) if m else None


def rss_kb(p):
    """petreld's resident size now, in KB."""
    return status_kb(p.proc.pid, "VmRSS")


def _petreld_children():
    """The pids of petreld processes started by this test process."""
    me = os.getpid()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces.
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == me and comm == "petreld":
            pids.append(int(d))
    return pids


class PeakRss:
    """Samples the peak resident size (VmHWM) of every petreld this test
    starts, from a thread, until stopped: the daemon's own high-water
    mark, so a peak between two samples is not missed."""

    def __init__(self, every=0.1):
        self.every = every
        self.peaks = {}  # pid -> KB
        self.bounds = {}  # pid -> KB
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def sample(self):
        for pid in _petreld_children():
            if pid not in self.bounds:
                self.bounds[pid] = daemon_rss_max_kb(pid)
            hwm = status_kb(pid, "VmHWM")
            if hwm is not None:
                self.peaks[pid] = max(self.peaks.get(pid, 0), hwm)

    def stop(self):
        """Returns [(peak KB, bound KB)] of each daemon seen."""
        self._stop.set()
        self._thread.join()
        return [(self.peaks[pid], self.bounds[pid]) for pid in self.peaks]


@pytest.fixture(autouse=True)
def daemon_rss_bound(request):
    """Every hostile-client test: petreld's peak RSS stays under
    daemon_rss_max_kb() (modules import this fixture to apply it). The
    peak is printed, for docs/hostile.md."""
    watch = PeakRss()
    yield watch
    for peak, bound in watch.stop():
        print(f"\npetreld peak RSS {peak} KB ({request.node.name}; "
              f"bound {bound} KB)")
        assert peak < bound, (
            f"petreld's peak RSS {peak} KB passed the bound of "
            f"{bound} KB")


# ---- clients that trickle ----

class Trickler:
    """Connections that each send one byte of `data` every `every`
    seconds, never a whole line, and read what comes back. Records when
    the server closed each one."""

    def __init__(self, socks, data, every):
        self.socks = list(socks)
        for s in self.socks:
            s.setblocking(False)
        self.data = data
        self.every = every
        self.start = time.monotonic()
        self.closed_after = [None] * len(self.socks)
        self.got = [b""] * len(self.socks)
        self.sent = [0] * len(self.socks)

    def _close_seen(self, i):
        if self.closed_after[i] is None:
            self.closed_after[i] = time.monotonic() - self.start

    def _read(self, i):
        s = self.socks[i]
        try:
            while True:
                d = s.recv(65536, socket.MSG_DONTWAIT)
                if not d:
                    self._close_seen(i)
                    return
                self.got[i] += d
        except BlockingIOError:
            return
        except OSError:
            self._close_seen(i)

    def run(self, seconds):
        """Trickles until every connection is closed or `seconds` pass
        (from the start). Returns closed_after."""
        while time.monotonic() - self.start < seconds:
            for i, s in enumerate(self.socks):
                if self.closed_after[i] is not None:
                    continue
                self._read(i)
                if self.closed_after[i] is not None:
                    continue
                b = self.data[self.sent[i] % len(self.data):][:1]
                try:
                    s.send(b, socket.MSG_DONTWAIT)
                    self.sent[i] += 1
                except BlockingIOError:
                    pass
                except OSError:
                    self._close_seen(i)
            if all(c is not None for c in self.closed_after):
                break
            time.sleep(self.every)
        for i in range(len(self.socks)):
            self._read(i)
        return self.closed_after

    def close(self):
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


def trickle_while_served(slow, serve, seconds):
    """Runs the trickling clients of slow (a Trickler) for up to seconds
    while serve() (a well-behaved client) runs once in a thread, half a
    second in. Returns (closed, took): when each trickling client was
    closed (None: still open), and how long serve() took (None: it
    failed)."""
    served = {}

    def good():
        t = time.monotonic()
        serve()
        served["took"] = time.monotonic() - t

    time.sleep(0.5)
    g = threading.Thread(target=good)
    g.start()
    closed = slow.run(seconds)
    g.join(30)
    slow.close()
    print(f"trickling clients closed after {closed} s; {max(slow.sent)} "
          f"bytes each; the good client took {served.get('took')} s")
    return closed, served.get("took")


def send_queue(local_port, peer_port):
    """The bytes queued on the daemon's socket of a loopback connection
    from 127.0.0.1: (to send, received and not yet read), from
    /proc/net/tcp; None when it is not there."""
    want = (f"0100007F:{local_port:04X}", f"0100007F:{peer_port:04X}")
    with open("/proc/net/tcp") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if (fields[1], fields[2]) == want:
                tx, rx = fields[4].split(":")
                return int(tx, 16), int(rx, 16)
    return None


# ---- other loopback addresses ----

def source_addresses(n, start=2):
    """n loopback addresses other than 127.0.0.1: 127.0.0.2, 127.0.0.3,
    ... then 127.0.1.0 and on (all of 127.0.0.0/8 is the host)."""
    out = []
    k = start
    while len(out) < n:
        a, b = divmod(k, 256)
        if b not in (0, 255):
            out.append(f"127.0.{a}.{b}")
        k += 1
    return out


def connect_from(port, source, timeout=10):
    """A TCP connection to 127.0.0.1:port from the loopback address
    source."""
    return socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source, 0))


def first_line(sock, timeout=10):
    """The first line the server sends, or b"" when it closes first."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n" not in buf:
        try:
            d = sock.recv(4096)
        except (ConnectionResetError, socket.timeout):
            return buf
        if not d:
            return buf
        buf += d
    return buf.split(b"\r\n", 1)[0]
