"""Hostile POP3 clients against the real daemon: clients that send and never
read (LIST, UIDL and NOOP floods), a plaintext flood behind STLS and the
STLS pause on its own, a client that never reads its last reply, clients
that trickle bytes (slowloris), and login floods. petreld's memory must
stay bounded, such a session must be closed once pop3.timeout_idle has
passed, and a well-behaved client must still be served meanwhile."""
import errno
import re
import socket
import time

import pytest

from hostile_util import (Trickler, daemon_rss_bound,  # noqa: F401
                          trickle_while_served)
from smtputil import wait_for


PW = "correct horse battery staple"
ALICE = "alice@example.test"
BOB = "bob@example.test"
TEXT = b"Subject: s\n\nbody\n"

# Growth of petreld's RSS allowed while a hostile client runs (this
# includes the sanitizer's bookkeeping; these tests measured 3.6 to 10.4 MB).
# Before the bound on queued output, the LIST flood and the plaintext behind
# STLS grew the daemon by 135 and 155 MB, and no such session was closed.
RSS_GROWTH_MAX_KB = 30 * 1024
TIMEOUT = 2  # pop3.timeout_idle in these tests, seconds


def fill(p, address, n):
    """n messages written straight into the Maildir (as a delivery would
    name them): thousands in well under a second."""
    local, domain = address.split("@")
    md = p.data_dir / "mail" / domain / local / "Maildir"
    for d in ("new", "cur", "tmp"):
        (md / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = (f"{1700000000 + i}.M{i:06d}P1Q{i}.mx.example.test,"
                f"S={len(TEXT)},W={len(TEXT) + 3}")
        (md / "new" / name).write_bytes(TEXT)


def rss_kb(p):
    with open(f"/proc/{p.proc.pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def fds(p):
    import os
    return len(os.listdir(f"/proc/{p.proc.pid}/fd"))


def disconnects(p):
    return p.log("pop3").count("disconnected:")


def start(petrel_factory):
    return petrel_factory(settings={"auth.allow_plaintext": "on",
                                    "pop3.timeout_idle": str(TIMEOUT),
                                    "pop3.max_sessions_per_ip": "100"})


class Client:
    """A plaintext POP3 connection with a small receive buffer, so that a
    client that stops reading makes the daemon's output wait at once."""

    def __init__(self, p, rcvbuf=4096):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", p.ports["pop3"]))
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed; have %r" % self.buf[-200:])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.line()

    def login(self, user=ALICE):
        assert self.line().startswith("+OK")
        assert self.cmd(f"USER {user}").startswith("+OK")
        reply = self.cmd(f"PASS {PW}")
        assert reply.startswith("+OK"), reply

    def flood(self, data, limit, seconds, p, peak):
        """Sends data over and over without reading, up to `limit` bytes
        for up to `seconds`, until the daemon stops taking it; records
        the peak RSS. Returns the bytes sent."""
        self.sock.setblocking(False)
        sent = 0
        deadline = time.monotonic() + seconds
        stuck_since = None
        while time.monotonic() < deadline and sent < limit:
            try:
                off = sent % len(data)
                n = self.sock.send(data[off:off + limit - sent])
                sent += n
                stuck_since = None
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    break  # closed by the daemon
                # The daemon stopped reading: once it has for a while,
                # more sending only fills our own buffers.
                if stuck_since is None:
                    stuck_since = time.monotonic()
                elif time.monotonic() - stuck_since > 0.5:
                    break
                time.sleep(0.01)
            peak[0] = max(peak[0], rss_kb(p))
        return sent

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def wait_closed(p, before, peak, timeout):
    """Waits for one more "disconnected" line in the log, sampling the
    RSS meanwhile. Returns the seconds it took, or None."""
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        peak[0] = max(peak[0], rss_kb(p))
        if disconnects(p) > before:
            return time.monotonic() - t
        time.sleep(0.05)
    return None


def well_behaved(p):
    """A normal client logs in and downloads a message."""
    c = Client(p, rcvbuf=65536)
    c.login(BOB)
    assert c.cmd("RETR 1").startswith("+OK")
    lines = []
    while True:
        ln = c.line()
        if ln == ".":
            break
        lines.append(ln)
    assert lines[-1] == "body"
    assert c.cmd("QUIT").startswith("+OK")
    c.close()


# How many of each command a flood sends at most: enough that the old
# daemon, which read them all, queued ~100 MB of replies or more than the
# socket buffers hold (NOOP), and not so many that it took long.
FLOODS = {"LIST": 2000, "UIDL": 400, "NOOP": 1200000}


def bounded_and_closed(p, base, peak, before, what):
    """After a flood: a well-behaved client is served (the daemon is not
    stuck for others), the attacker's session is closed by the write
    timeout, and petreld's RSS grew less than the bound meanwhile."""
    well_behaved(p)
    took = wait_closed(p, before + 1, peak, TIMEOUT + 8)
    growth = peak[0] - base
    print(f"{what}, RSS {base} KB -> peak {peak[0]} KB (+{growth} KB), "
          f"closed after {took}")
    assert growth < RSS_GROWTH_MAX_KB, (base, peak[0])
    assert took is not None, "the session was never closed"


@pytest.mark.parametrize("command", sorted(FLOODS))
def test_flood_without_reading(petrel_factory, command):
    """A client sends a command thousands of times and reads nothing. The
    daemon stops reading once the replies queued pass a bound, produces
    LIST/UIDL as the output drains, and closes the session at the write
    timeout."""
    p = start(petrel_factory)
    fill(p, ALICE, 5000)
    fill(p, BOB, 1)
    c = Client(p)
    c.login()
    base = rss_kb(p)
    peak = [base]
    before = disconnects(p)
    line = (command + "\r\n").encode()
    sent = c.flood(line * 10000, FLOODS[command] * len(line), 10, p, peak)
    bounded_and_closed(p, base, peak, before,
                       f"{command}: sent {sent} bytes")
    assert "timeout: the client stopped reading" in p.log("pop3")
    c.close()


def test_listing_streams_to_a_reader(petrel_factory):
    """A big listing still arrives whole and in order when the client
    reads it slowly."""
    p = start(petrel_factory)
    fill(p, ALICE, 20000)
    c = Client(p)
    c.login()
    for command in ("LIST", "UIDL"):
        assert c.cmd(command).startswith("+OK")
        n = 0
        while True:
            ln = c.line()
            if ln == ".":
                break
            n += 1
            assert ln.split()[0] == str(n)
        assert n == 20000
    assert c.cmd("NOOP") == "+OK"
    assert c.cmd("QUIT").startswith("+OK")
    c.close()


def test_stls_plaintext_flood(petrel_factory):
    """After STLS a client streams plaintext and never reads the +OK:
    the plaintext is not read into memory (reading stops at STLS, or
    earlier when the answers before it pass the bound), and the session is
    closed at the write timeout."""
    p = start(petrel_factory)
    fill(p, BOB, 1)
    c = Client(p)
    assert c.line().startswith("+OK")
    base = rss_kb(p)
    peak = [base]
    before = disconnects(p)
    # ~6 MB of CAPA answers, more than the socket buffers hold, so that
    # the +OK for STLS cannot be written; then plaintext, for 6 s.
    c.sock.sendall(b"CAPA\r\n" * 40000 + b"STLS\r\n")
    sent = c.flood(b"x" * 65536, 100 << 20, 6, p, peak)
    bounded_and_closed(p, base, peak, before,
                       f"STLS: sent {sent} bytes of plaintext")
    c.close()


def test_last_reply_never_read(petrel_factory):
    """A client fills every buffer on the way and never reads again; the
    daemon is told to stop and gives it its last reply, which is never
    read: the close timer ends the session (and so lets the daemon exit)
    instead of the 10 s shutdown grace, or never for a session that just
    ended."""
    p = petrel_factory(settings={"auth.allow_plaintext": "on",
                                 "pop3.timeout_idle": "4"})
    c = Client(p)
    c.login(BOB)
    peak = [rss_kb(p)]
    c.flood(b"NOOP\r\n" * 10000, 1200000 * 6, 10, p, peak)
    t = time.monotonic()
    p.proc.terminate()
    p.proc.wait(timeout=30)
    took = time.monotonic() - t
    log = p.log("pop3")
    timer = "timeout: the client stopped reading (last reply)" in log
    print(f"petreld exited {took:.1f} s after SIGTERM; close timer: {timer}")
    assert "-ERR [SYS/TEMP] Server shutting down" in log
    # The close timer (pop3.timeout_idle, 4 s), or sooner when the kernel
    # let the last bytes out after all; not the 10 s grace.
    assert took < 4 + 3, took
    assert "disconnected:" in log
    c.close()


# ---- clients that trickle (slowloris) ----

SLOW = 4  # trickling clients at once
# How late after pop3.timeout_idle a trickling client may still be open:
# the loop is idle, but the machine is shared.
SLOW_MARGIN = 3


@pytest.mark.parametrize("phase", ["authorization", "transaction"])
def test_slowloris(petrel_factory, phase):
    """Clients that send a byte every half second and never end a line,
    before login or after it: each gets the autologout once
    pop3.timeout_idle has passed since its last command, though bytes
    keep arriving (RFC 1939 3: a command resets the timer, not a byte);
    the slots they held are given back, and a well-behaved client is
    served meanwhile. A timeout that each byte restarts would keep them
    for as long as they like."""
    # Logged in, each holds its own mailbox (bob's is the good client's).
    users = [ALICE, "postmaster@example.test"] if phase == "transaction" \
        else [None] * SLOW
    p = petrel_factory(settings={
        "auth.allow_plaintext": "on", "pop3.timeout_idle": str(TIMEOUT),
        "pop3.max_sessions_per_ip": str(len(users) + 1)})
    fill(p, BOB, 1)
    clients = []
    for user in users:
        c = Client(p)
        if user:
            c.login(user)
        else:
            assert c.line().startswith("+OK")
        clients.append(c)
    slow = Trickler([c.sock for c in clients], b"NOOP " + b"x" * 2000, 0.5)
    closed, took = trickle_while_served(slow, lambda: well_behaved(p),
                                        TIMEOUT + SLOW_MARGIN + 3)
    assert took is not None and took < 5, took
    for i, c in enumerate(closed):
        assert c is not None and c < TIMEOUT + SLOW_MARGIN, (
            f"a client trickling in the {phase} state was still open "
            f"after {c or TIMEOUT + SLOW_MARGIN + 3:.1f} s "
            f"(pop3.timeout_idle {TIMEOUT} s)")
        assert slow.got[i].endswith(
            b"-ERR Autologout: idle for too long\r\n"), slow.got[i][-300:]
    assert p.log("pop3").count("timeout: idle too long") >= len(users)
    # Every slot is free again: the per-IP limit's worth of sessions.
    again = [Client(p) for _ in range(len(users) + 1)]
    try:
        for c in again:
            assert c.line().startswith("+OK")
    finally:
        for c in again:
            c.close()


# ---- AUTH floods ----

AUTH_LIMIT = 5  # screening.auth_failures in these tests
# Password checks already running (one per worker) or waiting for the loop
# when the block is decided may still fail with [AUTH]; none starts after.
AUTH_SLACK = 4
FAILED = b"-ERR [AUTH] Authentication failed"
BLOCKED_CLOSE = b"-ERR [SYS/TEMP] Too many failed logins, closing"
BLOCKED_CONNECT = b"-ERR [SYS/TEMP] Too many failed logins, try again later"


def _attempts(n, first):
    """n failed logins for alice: USER/PASS, AUTH PLAIN with an initial
    response, AUTH PLAIN with a continuation, in turn; each with a
    password of its own (screening counts a password retried once)."""
    import base64
    out = []
    for i in range(first, first + n):
        pw = f"wrong password {i}"
        blob = base64.b64encode(f"\0{ALICE}\0{pw}".encode()).decode()
        out += ([f"USER {ALICE}", f"PASS {pw}"], [f"AUTH PLAIN {blob}"],
                ["AUTH PLAIN", blob])[i % 3]
    return "".join(line + "\r\n" for line in out).encode()


def _replies(sock, seconds, finals=None):
    """The reply lines until the server closes, `seconds` pass, or (with
    finals) that many -ERR lines have come; each is well-formed."""
    sock.settimeout(0.2)
    got = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if finals is not None and got.count(b"\r\n-ERR") >= finals:
            break
        try:
            d = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            break
        if not d:
            break
        got += d
    lines = got.split(b"\r\n")
    assert lines[-1] == b"", got[-200:]
    for line in lines[:-1]:
        assert line == b"+ " or line.startswith((b"+OK", b"-ERR ")), line
    return lines[:-1]


def _auth_flood_petrel(petrel_factory):
    return petrel_factory(settings={
        "auth.allow_plaintext": "on",
        "screening.auth_failures": str(AUTH_LIMIT),
        "pop3.max_sessions_per_ip": "100",
        "pop3.max_errors": "1000"})


def _real_user_logs_in(p, source):
    from hostile_util import connect_from
    s = connect_from(p.ports["pop3"], source)
    c = Client.__new__(Client)
    c.sock, c.buf = s, b""
    c.login(BOB)
    assert c.cmd("STAT").startswith("+OK")
    assert c.cmd("QUIT").startswith("+OK")
    c.close()


def test_auth_flood_pipelined(petrel_factory):
    """Connection after connection from one address, each pipelining 50
    failed logins (USER/PASS and AUTH PLAIN in turn): a session ends
    after its third failure, every line back is well-formed, screening
    blocks the address after screening.auth_failures (that session ends
    with the block's line, and the next connections are refused at
    once), and the real user logs in from another address."""
    from hostile_util import connect_from, first_line, rss_kb
    p = _auth_flood_petrel(petrel_factory)
    fill(p, BOB, 1)
    attacker = "127.0.0.3"
    base = rss_kb(p)
    failed, ends = 0, []
    for k in range(6):
        s = connect_from(p.ports["pop3"], attacker)
        first = first_line(s)
        if first == BLOCKED_CONNECT:
            ends.append(first)
            s.close()
            continue
        assert first.startswith(b"+OK")
        s.sendall(_attempts(50, 50 * k))
        lines = _replies(s, 20)
        s.close()
        failed += lines.count(FAILED)
        ends.append(lines[-1])
    print(f"pipelined: {failed} failed logins, sessions ended with "
          f"{ends}; RSS {base} KB -> {rss_kb(p)} KB")
    # The failure that blocks is answered by the block's line.
    assert AUTH_LIMIT <= failed + ends.count(BLOCKED_CLOSE) <= \
        AUTH_LIMIT + AUTH_SLACK
    assert ends[0] == FAILED  # the third failure in a session ends it
    assert BLOCKED_CLOSE in ends
    assert ends[-1] == BLOCKED_CONNECT
    assert "ip blocked: ip=127.0.0.3 " in p.log("security")
    _real_user_logs_in(p, "127.0.0.4")


def test_auth_flood_many_connections(petrel_factory):
    """30 connections from one address, opened before any login fails,
    each pipelining 3 failed logins (90 in all): screening blocks the
    address after screening.auth_failures, and from then on no password
    from it is checked in any of those sessions (each ends with the
    block's line), every line back is well-formed, and the real user logs
    in from another address meanwhile."""
    from hostile_util import connect_from, first_line, rss_kb
    p = _auth_flood_petrel(petrel_factory)
    fill(p, BOB, 1)
    attacker = "127.0.0.5"
    socks = []
    for _ in range(30):
        s = connect_from(p.ports["pop3"], attacker)
        assert first_line(s).startswith(b"+OK")
        socks.append(s)
    base = rss_kb(p)
    t = time.monotonic()
    for i, s in enumerate(socks):
        s.sendall(_attempts(3, 3 * i))
    _real_user_logs_in(p, "127.0.0.6")
    results = [_replies(s, 20, finals=3) for s in socks]
    took = time.monotonic() - t
    for s in socks:
        s.close()
    failed = sum(lines.count(FAILED) for lines in results)
    blocked = sum(1 for lines in results if lines[-1:] == [BLOCKED_CLOSE])
    print(f"30 connections: {failed} failed logins, {blocked} sessions "
          f"ended by the block, in {took:.1f} s; "
          f"RSS {base} KB -> {rss_kb(p)} KB")
    assert failed <= AUTH_LIMIT + AUTH_SLACK, failed
    assert blocked >= len(socks) - (AUTH_LIMIT + AUTH_SLACK) // 3
    assert "ip blocked: ip=127.0.0.5 " in p.log("security")
    _real_user_logs_in(p, "127.0.0.6")


# ---- the STLS pause on its own ----

def test_stls_pause_on_its_own(petrel_factory):
    """The +OK to STLS cannot be written: the client's earlier CAPA
    answers fill the socket buffers, yet less than the 64 KB bound waits
    in the daemon, so STLS itself is read as a command. The client then
    streams plaintext (no command: nothing it would answer) and never
    reads. Reading pauses at STLS: the plaintext stays in the socket
    buffers, petreld does not grow, and the session is closed at
    pop3.timeout_idle. Without that pause every byte is read into memory
    until the timeout."""
    from hostile_util import send_queue
    p = start(petrel_factory)
    port = p.ports["pop3"]
    c = Client(p)
    me = c.sock.getsockname()[1]
    assert c.line().startswith("+OK")
    # Answers until the daemon's send buffer is full (its queue stops
    # growing), a batch at a time, each batch read by the daemon before
    # the next: less than two batches of answers (2 x 27 KB) then wait in
    # it, under the 64 KB bound.
    last = -1
    f0 = time.monotonic()
    for k in range(1000):
        c.sock.sendall(b"CAPA\r\n" * 200)
        assert wait_for(lambda: send_queue(port, me) is not None and
                        send_queue(port, me)[1] == 0, timeout=10,
                        step=0.005)
        time.sleep(0.02)
        tx = send_queue(port, me)[0]
        if tx == last:
            break
        last = tx
    print(f"filled: {k} batches, {tx} bytes, {time.monotonic() - f0:.1f} s")
    base = rss_kb(p)
    peak = [base]
    before = disconnects(p)
    c.sock.sendall(b"STLS\r\n")
    assert wait_for(lambda: "--> +OK Begin TLS negotiation" in p.log("pop3"))
    t = time.monotonic()
    sent = c.flood(b"x" * 65536, 64 << 20, 2 * TIMEOUT + 4, p, peak)
    took = wait_closed(p, before, peak, TIMEOUT + 8)
    growth = peak[0] - base
    print(f"STLS alone: {sent} bytes of plaintext taken, RSS {base} KB -> "
          f"peak {peak[0]} KB (+{growth} KB), closed after "
          f"{time.monotonic() - t:.1f} s")
    c.close()
    # The socket buffers hold a few MB; the daemon none of it.
    assert sent < 16 << 20, sent
    assert growth < 8 * 1024, growth
    assert took is not None, "the session was never closed"
