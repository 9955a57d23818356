"""Hostile SMTP clients against the real daemon: over-long lines at the
largest value of every length setting, connections that vanish while a
worker job holds the session, credentials left in memory, a hundred
thousand pipelined recipients, floods that never read, random bytes on
every listener, clients that trickle bytes (slowloris), sessions from
hundreds of loopback addresses, and AUTH floods. Teardown fails a test on
any ASan report (conftest.py), or when petreld's peak RSS passed the
bound of hostile_util.py."""
import base64
import re
import socket
import struct
import threading
import time

import pytest

from hostile_util import (Trickler, daemon_rss_bound,  # noqa: F401
                          send_queue, trickle_while_served)
from smtputil import Raw, wait_for

PW = "correct horse battery staple"
BLOB = base64.b64encode(f"\0alice@example.test\0{PW}".encode()).decode()
BAD = base64.b64encode(b"\0alice@example.test\0wrong password").decode()


def alive(p):
    assert p.proc.poll() is None, "petreld died: " + p.stderr_text()[-3000:]


def rst(sock):
    """Closes with a TCP RST instead of a FIN (SO_LINGER 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    sock.close()


def largest(p, name):
    """The largest value the settings accept for name (petrelctl says
    the range when a value is out of it)."""
    r = p.ctl.run("set", name, "999999999999")
    assert r.returncode != 0
    m = re.search(r"\((\d+) to (\d+)\)", r.stderr)
    assert m, r.stderr
    return int(m.group(2))


# ---- over-long lines at the largest value of each length setting ----

def test_command_lines_at_largest_max_line(petrel_factory):
    """smtp.max_line at its largest (65536): a 20,000-byte MAIL FROM, a
    line of exactly the limit and one byte over it. Before the fix the
    line was copied into a 12,289-byte stack buffer: the daemon died."""
    p = petrel_factory(settings={"auth.allow_plaintext": "on"})
    top = largest(p, "smtp.max_line")
    assert top == 65536
    p.set("smtp.max_line", str(top))
    r = Raw(p.ports["smtp"])
    assert r.reply()[0] == 220
    assert r.cmd("EHLO c")[0] == 250
    code, lines = r.cmd("MAIL FROM:<" + "a" * 20000 + "@x.test>")
    assert code == 501 or code == 553, lines
    alive(p)
    # Exactly smtp.max_line bytes, CRLF included: read as a command.
    assert r.cmd("NOOP " + "x" * (top - 7)) == (250, ["250 2.0.0 Ok"])
    # One byte more: refused as too long, and the session goes on.
    code, lines = r.cmd("NOOP " + "x" * (top - 6))
    assert lines == ["500 5.5.2 Error: line too long"]
    assert r.cmd("NOOP")[0] == 250
    # A long AUTH PLAIN initial response in a command line.
    code, lines = r.cmd("AUTH PLAIN " + "QUFB" * ((top - 13) // 4))
    assert code == 501, lines
    alive(p)
    # DATA lines at the limit and one byte over it.
    assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    code, lines = r.cmd("Subject: at the limit\r\n\r\n" + "y" * (top - 2) +
                        "\r\n.")
    assert code == 250, lines
    assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    code, lines = r.cmd("Subject: over\r\n\r\n" + "y" * (top - 1) + "\r\n.")
    assert code == 500 and "5.5.6" in lines[0], lines
    assert r.cmd("QUIT")[0] == 221
    alive(p)


def test_auth_line_limit(petrel_factory):
    """A SASL response line may be 12288 octets, CRLF included (RFC 4954
    4): one of exactly that length is read, one byte more is refused."""
    p = petrel_factory(settings={"auth.allow_plaintext": "on",
                                 "smtp.max_line": "65536"})
    r = Raw(p.ports["submission"])
    r.reply()
    r.cmd("EHLO c")
    assert r.cmd("AUTH PLAIN")[0] == 334
    code, lines = r.cmd("A" * (12288 - 2))
    assert code == 501 and "5.5.2" in lines[0], lines
    assert r.cmd("AUTH PLAIN")[0] == 334
    assert r.cmd("A" * (12288 - 1))[1] == [
        "500 5.5.6 Authentication Exchange line is too long"]
    assert r.cmd("NOOP")[0] == 250
    alive(p)


def test_largest_message_size(petrel_factory):
    """smtp.max_message_kb at its largest: SIZE says it, a declared size
    one byte over is refused, a message goes through."""
    p = petrel_factory()
    top = largest(p, "smtp.max_message_kb")
    p.set("smtp.max_message_kb", str(top))
    r = Raw(p.ports["smtp"])
    r.reply()
    assert f"SIZE {top * 1024}" in "\n".join(r.cmd("EHLO c")[1])
    code, lines = r.cmd(f"MAIL FROM:<x@remote.test> SIZE={top * 1024 + 1}")
    assert code == 552, lines
    assert r.cmd(f"MAIL FROM:<x@remote.test> SIZE={top * 1024}")[0] == 250
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    assert r.cmd("Subject: s\r\n\r\n" + ("z" * 70 + "\r\n") * 1000 +
                 ".")[0] == 250
    alive(p)


# ---- the connection ends while a worker job holds the session ----

def test_rst_during_auth_job_after_failed_auth(petrel_factory, monkeypatch):
    """A failed AUTH leaves the session a delay timer. The client then
    pipelines a second AUTH and resets the connection: the server sees it
    when it writes the delayed 535, while the second check runs on a
    worker. The session must outlive that job (it was freed under it)."""
    monkeypatch.setenv("PETREL_TEST_SLOW_AUTH_MS", "1000")
    p = petrel_factory(settings={"auth.allow_plaintext": "on",
                                 "auth.fail_delay_ms": "300",
                                 "screening.auth_failures": "0"})
    r = Raw(p.ports["submission"])
    assert r.reply()[0] == 220
    assert r.cmd("EHLO c")[0] == 250
    r.send(f"AUTH PLAIN {BAD}\r\nAUTH PLAIN {BLOB}\r\n")
    # Both lines are read (they came in one segment) before the reset.
    assert wait_for(lambda: "AUTH PLAIN <redacted>" in p.log("smtp-in"))
    rst(r.sock)
    assert wait_for(lambda: "authentication check over, client gone" in
                    p.log("smtp-in") or p.proc.poll() is not None,
                    timeout=15)
    alive(p)
    assert wait_for(lambda: "disconnected:" in p.log("smtp-in"))
    alive(p)


class SilentSpamd:
    """A spamd that takes the connection and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def failed_auth(port, then_login):
    """A session that failed one AUTH (and logged in after it when
    then_login): it keeps its delay timer from then on."""
    r = Raw(port, timeout=60)
    assert r.reply()[0] == 220
    assert r.cmd("EHLO c")[0] == 250
    assert r.cmd(f"AUTH PLAIN {BAD}")[0] == 535
    if then_login:
        assert r.cmd(f"AUTH PLAIN {BLOB}")[0] == 235
    return r


def send_until_dot(r, sender, rcpt, body):
    assert r.cmd(f"MAIL FROM:<{sender}>")[0] == 250
    assert r.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    r.send(f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: s\r\n\r\n"
           f"{body}\r\n.\r\n")


def test_forced_close_during_each_job_after_failed_auth(petrel_factory,
                                                        monkeypatch):
    """Sessions that failed an AUTH wait on the commit, on the content
    filter and on spamd when the daemon's shutdown grace ends and every
    session is closed by force. Each is freed only once its job is over:
    the daemon exits 0 with no ASan report (it freed them under the
    worker)."""
    monkeypatch.setenv("PETREL_TEST_SLOW_COMMIT_MS", "15000")
    monkeypatch.setenv("PETREL_TEST_SLOW_FILTER_MS", "15000")
    spamd = SilentSpamd()
    try:
        p = petrel_factory(settings={
            "auth.allow_plaintext": "on", "screening.auth_failures": "0",
            "spam.spamd": f"127.0.0.1:{spamd.port}",
            "spam.timeout_ms": "60000"})
        # On spamd: an unauthenticated session's message is scored.
        c = failed_auth(p.ports["smtp"], False)
        send_until_dot(c, "x@remote.test", "alice@example.test", "spam?")
        # On the commit (no filter rule yet).
        a = failed_auth(p.ports["submission"], True)
        send_until_dot(a, "alice@example.test", "bob@example.test", "commit")
        assert wait_for(lambda: "[message:" in p.log("smtp-in"))
        # On the content filter.
        path = p.tmp / "rules.txt"
        path.write_text('rule "Body"\n\tif body contains "FILTERME"\n'
                        '\tthen move-to hold\nend\n')
        p.ctl.ok("filter", "import", str(path))
        assert wait_for(lambda: "filter rules reloaded (1 rules)" in
                        p.log("system"), timeout=5)
        b = failed_auth(p.ports["submission"], True)
        send_until_dot(b, "alice@example.test", "bob@example.test",
                       "FILTERME")
        t = time.monotonic()
        rc = p.stop()
        took = time.monotonic() - t
        assert rc == 0, p.stderr_text()[-4000:]
        log = p.log("smtp-in")
        assert log.count("disconnected:") >= 3
        assert re.search(r"message saved as \w+, client gone", log)
        assert "message dropped, client gone" in log  # the filter's
        assert took < 30
        for r in (a, b, c):
            r.close()
    finally:
        spamd.close()


# ---- credentials in memory ----

def memory_holds(pid, needles):
    """The needles found in the writable memory of process pid (the
    daemon is our child: /proc/PID/mem may be read). ASan's shadow and
    other huge reservations are skipped."""
    found = set()
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            addr, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in addr.split("-"))
            if not perms.startswith("rw") or hi - lo > 256 << 20:
                continue
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except (OSError, ValueError):
                continue
            found.update(n for n in needles if n in data)
    return found


def test_auth_plain_initial_response_is_wiped(petrel_factory):
    """`AUTH PLAIN <initial-response>` is a command line: once it has been
    checked, neither the line's copy nor the input buffer it came from
    still holds the credentials (POP3 wipes its lines the same way)."""
    p = petrel_factory(settings={"auth.allow_plaintext": "on"})
    r = Raw(p.ports["submission"])
    r.reply()
    r.cmd("EHLO c")
    assert r.cmd(f"AUTH PLAIN {BLOB}")[0] == 235
    assert r.cmd("NOOP")[0] == 250
    assert memory_holds(p.proc.pid, [BLOB.encode(), PW.encode()]) == set()
    assert r.cmd("QUIT")[0] == 221


# ---- many recipients ----

def test_hundred_thousand_pipelined_recipients(petrel_factory):
    """smtp.max_recipients at its largest, filled by pipelined RCPTs in
    batches of 1,000, with duplicates (another case) among them: each
    duplicate is merged (250, not counted), the last allowed one is taken
    and the one after it refused. The duplicate check compared each
    address with all before it: quadratic, minutes at this size."""
    p = petrel_factory(settings={"auth.allow_plaintext": "on"})
    top = largest(p, "smtp.max_recipients")
    p.set("smtp.max_recipients", str(top))
    r = Raw(p.ports["submission"], timeout=120)
    r.reply()
    r.cmd("EHLO c")
    assert r.cmd(f"AUTH PLAIN {BLOB}")[0] == 235
    assert r.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    cmds = []
    for i in range(top - 1):
        cmds.append(f"RCPT TO:<r{i}@remote.test>")
        if i % 100 == 99:
            cmds.append(f"RCPT TO:<R{i // 2}@REMOTE.TEST>")
    cmds.append(f"RCPT TO:<r{top - 1}@remote.test>")  # the last allowed
    t = time.monotonic()
    times = []
    for k in range(0, len(cmds), 1000):
        batch = cmds[k:k + 1000]
        b = time.monotonic()
        r.send("".join(c + "\r\n" for c in batch))
        for c in batch:
            code, lines = r.reply()
            assert code == 250, (c, lines)
        times.append(time.monotonic() - b)
    took = time.monotonic() - t
    code, lines = r.cmd(f"RCPT TO:<r{top}@remote.test>")
    assert code == 452 and "4.5.3" in lines[0], lines
    assert r.cmd("RSET")[0] == 250
    # The set starts empty again with the next transaction.
    assert r.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert r.cmd("RCPT TO:<r0@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<r0@remote.test>")[0] == 250
    assert r.cmd("QUIT")[0] == 221
    first, last = sum(times[:10]), sum(times[-10:])
    print(f"{len(cmds)} RCPTs ({top} recipients) in {took:.1f} s; "
          f"first 10,000 {first:.2f} s, last 10,000 {last:.2f} s")
    # A check that grows with the recipients named before makes the
    # last batches slower than the first (12 times, quadratic).
    assert last < 3 * first, (first, last)
    alive(p)


# ---- clients that never read ----

def flood_without_reading(port, data, limit):
    """Sends data again and again, never reading, until `limit` bytes are
    sent, the server stops taking them for a second, or it closes.
    Returns the bytes sent."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    return s, send_until_stuck(s, data, limit, 60)


def send_until_stuck(s, data, limit, seconds):
    """Sends data on s again and again, never reading, until `limit`
    bytes are sent, `seconds` pass, the peer stops taking them for a
    second, or it closes. Returns the bytes sent."""
    s.setblocking(False)
    sent, stuck = 0, None
    deadline = time.monotonic() + seconds
    while sent < limit and time.monotonic() < deadline:
        try:
            sent += s.send(data)
            stuck = None
        except BlockingIOError:
            stuck = stuck or time.monotonic()
            if time.monotonic() - stuck > 1:
                break
            time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            break
    return sent


def test_noop_flood_without_reading(petrel_factory):
    """A client sends NOOPs and never reads the replies. Once 64 KB of
    replies wait, its commands are read no more; the write timeout
    (smtp.timeout_idle) then closes the session and frees its slot.
    Before, every command was read and its reply queued in memory, and
    the session was never closed."""
    # Every command read is logged, so that the log counts them.
    p = petrel_factory(settings={"smtp.timeout_idle": "2",
                                 "smtp.max_junk_commands": "1000000",
                                 "log.max_lines_per_session": "100000000"})
    sock, sent = flood_without_reading(p.ports["smtp"], b"NOOP\r\n" * 10000,
                                       3 << 20)
    try:
        assert wait_for(lambda: "timeout: the client stopped reading" in
                        p.log("smtp-in"), timeout=20)
        assert wait_for(lambda: "disconnected:" in p.log("smtp-in"))
        read = p.log("smtp-in").count("<-- NOOP\n")
        print(f"sent {sent} bytes ({sent // 6} NOOPs), {read} read")
        assert 0 < read * 6 < sent
    finally:
        sock.close()
    # Others are served.
    r = Raw(p.ports["smtp"])
    assert r.reply()[0] == 220
    assert r.cmd("QUIT")[0] == 221
    alive(p)


def test_junk_commands_end_the_session(petrel_factory):
    """NOOP, RSET, VRFY and HELP do nothing for a message: past
    smtp.max_junk_commands since the last message each counts as an
    error, so smtp.max_errors later the session ends (a client that sent
    a NOOP just within every timeout kept its slot for ever). A message
    accepted starts the count again."""
    p = petrel_factory(settings={"smtp.max_junk_commands": "20",
                                 "smtp.max_errors": "5"})
    r = Raw(p.ports["smtp"])
    assert r.code() == 220
    assert r.cmd("EHLO client.test")[0] == 250
    cmds = ["NOOP", "RSET", "VRFY x", "HELP"] * 5
    r.send("".join(c + "\r\n" for c in cmds))
    codes = [r.reply()[0] for _ in cmds]
    assert 421 not in codes, codes
    # A message: the count starts again.
    assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    assert r.cmd("Subject: s\r\n\r\nbody\r\n.")[0] == 250
    r.send("NOOP\r\n" * 40)
    codes = []
    try:
        while True:
            code, lines = r.reply()
            codes.append(code)
            if code == 421:
                break
    except ConnectionError:
        pass
    # 20 free, then 5 that count as errors: the fifth ends the session.
    assert codes == [250] * 25 + [421], codes
    assert lines[-1].startswith("421 4.7.0") and "too many errors" in \
        lines[-1]
    assert r.closed()
    assert "too many errors" in p.log("smtp-in")
    # The largest value is taken, one more is not.
    assert p.ctl.run("set", "smtp.max_junk_commands",
                     "1000001").returncode != 0
    p.set("smtp.max_junk_commands", "1000000")
    r = Raw(p.ports["smtp"])
    assert r.code() == 220
    r.send("NOOP\r\n" * 2000)
    assert [r.reply()[0] for _ in range(2000)] == [250] * 2000
    assert r.cmd("QUIT")[0] == 221


def test_plaintext_flood_after_starttls(petrel_factory):
    """The client sends STARTTLS while its earlier replies fill the
    socket, so the 220 cannot be written; then it streams plaintext and
    never reads. Reading pauses in that state: the plaintext stays in the
    socket buffers, not in the daemon, and the write timeout ends the
    session. Before, every byte was read into memory and each read reset
    the idle timeout."""
    p = petrel_factory(settings={"smtp.timeout_idle": "2",
                                 "smtp.max_junk_commands": "1000000"})
    port = p.ports["smtp"]
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    me = s.getsockname()[1]
    s.sendall(b"EHLO c\r\n")
    # Replies until the daemon's send buffer is full: its queue stops
    # growing. Less than 64 KB of them wait in the daemon then.
    last = -1
    for _ in range(1000):
        s.sendall(b"NOOP\r\n" * 2000)
        assert wait_for(lambda: send_queue(port, me) is not None and
                        send_queue(port, me)[1] == 0, timeout=10)
        time.sleep(0.05)
        tx = send_queue(port, me)[0]
        if tx == last:
            break
        last = tx
    s.sendall(b"STARTTLS\r\n")
    assert wait_for(lambda: "<-- STARTTLS" in p.log("smtp-in"))
    sent = send_until_stuck(s, b"x" * 65536, 64 << 20, 30)
    print(f"{sent} bytes of plaintext sent after STARTTLS")
    try:
        assert sent < 32 << 20
        assert wait_for(lambda: "timeout: the client stopped reading" in
                        p.log("smtp-in"), timeout=20)
        assert wait_for(lambda: "disconnected:" in p.log("smtp-in"))
    finally:
        s.close()
    alive(p)


# ---- random bytes ----

def _random_session(port, rng, tls=False):
    """Connects, sends a few random chunks (bytes of every value, with
    line ends now and then), reads what comes back; returns the bytes
    read."""
    import ssl
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    got = b""
    try:
        got += s.recv(4096)
        for _ in range(rng.randrange(1, 6)):
            chunk = bytes(rng.randrange(256)
                          for _ in range(rng.randrange(1, 3000)))
            if rng.random() < 0.7:
                chunk += b"\r\n"
            s.sendall(chunk)
        s.settimeout(0.3)
        while True:
            data = s.recv(65536)
            if not data:
                break
            got += data
    except (socket.timeout, ConnectionError, OSError):
        pass
    finally:
        s.close()
    return got


@pytest.mark.parametrize("service", ["smtp", "smtps", "pop3", "pop3s"])
def test_random_bytes(petrel_factory, service):
    """Random bytes on every listener: every line the daemon answers is a
    well-formed reply, it stays up, and a real client is served after."""
    import random
    import smtplib
    p = petrel_factory()
    rng = random.Random(f"random-bytes-{service}")
    port = p.ports[service]
    for _ in range(12):
        got = _random_session(port, rng, tls=service.endswith("s"))
        assert got, "no greeting"
        for line in got.split(b"\r\n")[:-1]:  # the whole lines
            if service.startswith("smtp"):
                assert re.match(rb"^[2345]\d\d[ -]", line), line
            else:
                assert line[:3] in (b"+OK", b"-ER"), line
        alive(p)
    with smtplib.SMTP("127.0.0.1", p.ports["smtp"], timeout=30) as c:
        c.sendmail("someone@remote.test", ["alice@example.test"],
                   b"Subject: after the noise\r\n\r\nhello\r\n")
    assert p.messages("alice@example.test")


# ---- clients that trickle (slowloris) ----

SLOW = 4         # trickling clients at once
SLOW_TIMEOUT = 2  # smtp.timeout_* in these tests, seconds
# How late after the timeout a trickling client may still be open: the
# loop is idle, but the machine is shared.
SLOW_MARGIN = 3


@pytest.mark.parametrize("phase", ["command", "data"])
def test_slowloris(petrel_factory, phase):
    """Clients that send a byte every half second and never end a line
    (a command, or a DATA line after 354): each is closed with 421 once
    the timeout of that phase has passed, though bytes keep arriving; the
    slots they held are given back (as many sessions as the per-IP limit
    allows are taken again at once), and a well-behaved client is served
    meanwhile. A timeout that each byte restarts would keep them for as
    long as they like."""
    import smtplib
    p = petrel_factory(settings={
        "smtp.timeout_idle": str(SLOW_TIMEOUT),
        "smtp.timeout_command": str(SLOW_TIMEOUT),
        "smtp.timeout_data": str(SLOW_TIMEOUT),
        "smtp.max_sessions_per_ip": str(SLOW + 1)})
    socks = []
    for _ in range(SLOW):
        r = Raw(p.ports["smtp"])
        assert r.reply()[0] == 220
        if phase == "data":
            assert r.cmd("EHLO slow")[0] == 250
            assert r.cmd("MAIL FROM:<slow@remote.test>")[0] == 250
            assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
            assert r.cmd("DATA")[0] == 354
        socks.append(r.sock)
    line = (b"NOOP " if phase == "command" else b"X-Slow: ") + b"x" * 900
    slow = Trickler(socks, line, 0.5)
    def good():
        with smtplib.SMTP("127.0.0.1", p.ports["smtp"], timeout=30) as c:
            c.sendmail("good@remote.test", ["alice@example.test"],
                       b"Subject: served\r\n\r\nhello\r\n")

    closed, took = trickle_while_served(slow, good,
                                        SLOW_TIMEOUT + SLOW_MARGIN + 3)
    assert took is not None and took < 5, took
    assert p.messages("alice@example.test")
    for i, c in enumerate(closed):
        assert c is not None and c < SLOW_TIMEOUT + SLOW_MARGIN, (
            f"a client trickling in the {phase} phase was still open "
            f"after {c or SLOW_TIMEOUT + SLOW_MARGIN + 3:.1f} s "
            f"(timeout {SLOW_TIMEOUT} s)")
        last = slow.got[i].split(b"\r\n")[-2]
        assert last.startswith(b"421 4.4.2"), slow.got[i][-300:]
    # The log names the state that timed out.
    state = "command" if phase == "command" else "DATA"
    assert p.log("smtp-in").count(f"*** timeout in state {state}\n") == SLOW
    # Every slot is free again: the per-IP limit's worth of sessions.
    again = [Raw(p.ports["smtp"]) for _ in range(SLOW + 1)]
    try:
        for r in again:
            assert r.reply()[0] == 220
    finally:
        for r in again:
            r.close()
    alive(p)


# ---- many sessions from many addresses ----

MANY_ADDRS = 400  # loopback sources: 127.0.0.2 to 127.0.1.147
PER_IP = 3        # {smtp,pop3}.max_sessions_per_ip
GLOBAL = 900      # {smtp,pop3}.max_sessions: 300 sources' worth


def _greeting_ok(service, line):
    return line.startswith(b"220 " if service == "smtp" else b"+OK ")


def _busy(service, line):
    return line == (b"421 4.7.0 Too many connections, try again later"
                    if service == "smtp" else
                    b"-ERR [SYS/TEMP] Too many connections, try again later")


def _serve_good_client(p, service):
    """A well-behaved client from 127.0.0.1 does its work; returns the
    seconds it took."""
    import poplib
    import smtplib
    t = time.monotonic()
    if service == "smtp":
        with smtplib.SMTP("127.0.0.1", p.ports["smtp"], timeout=30) as c:
            c.sendmail("good@remote.test", ["alice@example.test"],
                       b"Subject: served\r\n\r\nhello\r\n")
    else:
        c = poplib.POP3("127.0.0.1", p.ports["pop3"], timeout=30)
        c.user("bob@example.test")
        c.pass_(PW)
        assert c.stat()[0] >= 0
        c.quit()
    return time.monotonic() - t


@pytest.mark.parametrize("service", ["smtp", "pop3"])
def test_many_sessions_from_many_addresses(petrel_factory, service):
    """Sessions from 400 loopback addresses, four from each: the per-IP
    limit (3) holds for each address on its own, the limit in all (900)
    holds across them (the last 100 addresses are refused outright), the
    refusals are the protocol's busy line and each is logged with its
    reason; the daemon stays up, a good client is served as soon as a
    slot is free, and once the crowd leaves every slot is given back."""
    from hostile_util import connect_from, first_line, rss_kb, \
        source_addresses
    p = petrel_factory(settings={
        "auth.allow_plaintext": "on",
        f"{service}.max_sessions_per_ip": str(PER_IP),
        f"{service}.max_sessions": str(GLOBAL),
        "smtp.rdns_timeout_ms": "0"})
    port = p.ports[service]
    log = "smtp-in" if service == "smtp" else "pop3"
    addrs = source_addresses(MANY_ADDRS)
    base = rss_kb(p)
    held = {a: [] for a in addrs}
    refused = {a: 0 for a in addrs}
    t = time.monotonic()
    for a in addrs:
        for _ in range(PER_IP + 1):
            s = connect_from(port, a)
            line = first_line(s)
            if _greeting_ok(service, line):
                held[a].append(s)
            else:
                assert _busy(service, line), (a, line)
                refused[a] += 1
                s.close()
    took = time.monotonic() - t
    full = rss_kb(p)
    live = sum(len(v) for v in held.values())
    print(f"{service}: {MANY_ADDRS * (PER_IP + 1)} connections in "
          f"{took:.1f} s, {live} held; RSS {base} KB -> {full} KB "
          f"({(full - base) / max(live, 1):.0f} KB a session)")
    # The first 300 sources got exactly their limit each; the rest none.
    full_sources = GLOBAL // PER_IP
    assert [len(held[a]) for a in addrs] == \
        [PER_IP] * full_sources + [0] * (MANY_ADDRS - full_sources)
    assert live == GLOBAL
    reasons = re.findall(r"refused connection from \[?127\.[\d.]+\]?:\d+: "
                         r"(\S+) reached", p.log(log))
    # The last full source's extra connection met the limit in all.
    assert reasons.count(f"{service}.max_sessions_per_ip") == \
        full_sources - 1
    assert reasons.count(f"{service}.max_sessions") == \
        (MANY_ADDRS - full_sources) * (PER_IP + 1) + 1
    alive(p)
    # Full: a newcomer is refused too, from any address.
    s = connect_from(port, "127.0.0.1")
    assert _busy(service, first_line(s))
    s.close()
    # One source leaves: its slots are free for the good client.
    for s in held[addrs[0]]:
        s.close()
    held[addrs[0]] = []
    assert wait_for(lambda: p.log(log).count("disconnected") >= PER_IP)
    took = _serve_good_client(p, service)
    assert took < 5, took
    # Everyone leaves: every slot is given back.
    for a in addrs:
        for s in held[a]:
            s.close()
    assert wait_for(lambda: p.log(log).count("disconnected") >= GLOBAL + 1)
    again = []
    try:
        for a in addrs[:full_sources]:
            for _ in range(PER_IP):
                again.append(connect_from(port, a))
                assert _greeting_ok(service, first_line(again[-1]))
    finally:
        for s in again:
            s.close()
    alive(p)


# ---- AUTH floods ----

AUTH_LIMIT = 5  # screening.auth_failures in these tests
# Password checks already running (one per worker) or waiting for the loop
# when the block is decided may still answer 535; no check starts after.
AUTH_SLACK = 4
SMTP_REPLY = re.compile(rb"^([2-5]\d\d)([ -])(.*)$")


def _b64(text):
    return base64.b64encode(text.encode()).decode()


def _auth_attempts(n, first):
    """n failed logins for alice, AUTH PLAIN and AUTH LOGIN in turn, each
    with a password of its own (screening counts a password retried
    once)."""
    out = []
    for i in range(first, first + n):
        pw = f"wrong password {i}"
        if i % 2 == 0:
            out.append(f"AUTH PLAIN {_b64(chr(0) + ALICE_ADDR + chr(0) + pw)}")
        else:
            out += ["AUTH LOGIN", _b64(ALICE_ADDR), _b64(pw)]
    return "".join(line + "\r\n" for line in out).encode()


ALICE_ADDR = "alice@example.test"


def _read_all(sock, seconds, finals=None):
    """What the server sends until it closes, `seconds` pass, or (with
    finals) that many replies other than 334 have come."""
    sock.settimeout(0.2)
    got = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if finals is not None and len(re.findall(
                rb"^(?!334)\d\d\d ", got, re.M)) >= finals:
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
    return got


def _smtp_replies(got):
    """The reply lines of a transcript, each checked well-formed."""
    lines = got.split(b"\r\n")
    assert lines[-1] == b"", got[-200:]
    for line in lines[:-1]:
        m = SMTP_REPLY.match(line)
        assert m, line
        if m.group(1) == b"334":
            base64.b64decode(m.group(3), validate=True)
    return lines[:-1]


def _auth_flood_settings():
    return {"auth.allow_plaintext": "on",
            "screening.auth_failures": str(AUTH_LIMIT),
            "smtp.max_errors": "1000",
            "smtp.rdns_timeout_ms": "0"}


def _real_user_logs_in(p, source):
    r = Raw(p.ports["submission"], source=source)
    try:
        assert r.reply()[0] == 220
        assert r.cmd("EHLO good")[0] == 250
        assert r.cmd(f"AUTH PLAIN {BLOB}")[0] == 235
        assert r.cmd("QUIT")[0] == 221
    finally:
        r.close()


def test_auth_flood_pipelined(petrel_factory):
    """One connection pipelines 300 failed logins (AUTH PLAIN and AUTH
    LOGIN in turn, each with its own password): every line back is a
    well-formed reply, screening blocks the address after
    screening.auth_failures and the session is closed then (no password is
    checked past the block), the address is refused at connect from then
    on, and the real user logs in from another address."""
    from hostile_util import rss_kb
    p = petrel_factory(settings=_auth_flood_settings())
    attacker = "127.0.0.3"
    base = rss_kb(p)
    r = Raw(p.ports["submission"], source=attacker)
    assert r.reply()[0] == 220
    assert r.cmd("EHLO flood")[0] == 250
    r.send(_auth_attempts(300, 0))
    t = time.monotonic()
    got = _read_all(r.sock, 20)
    took = time.monotonic() - t
    r.close()
    lines = _smtp_replies(got)
    codes = [int(line[:3]) for line in lines]
    print(f"pipelined: {len(lines)} replies in {took:.1f} s: "
          f"{codes.count(535)} x 535, then {lines[-1]!r}; "
          f"RSS {base} KB -> {rss_kb(p)} KB")
    assert 235 not in codes
    assert AUTH_LIMIT <= codes.count(535) <= AUTH_LIMIT + AUTH_SLACK, codes
    assert lines[-1].startswith(b"421 4.7.0"), lines[-3:]
    assert "ip blocked: ip=127.0.0.3 " in p.log("security")
    # Refused at connect from then on, on every port.
    for port in ("smtp", "submission"):
        r = Raw(p.ports[port], source=attacker)
        code, lines = r.reply()
        r.close()
        assert code == 421 and "failed logins" in lines[0], lines
    _real_user_logs_in(p, "127.0.0.4")
    alive(p)


def test_auth_flood_many_connections(petrel_factory):
    """30 connections from one address, opened before any login fails,
    each pipelining 4 failed logins (120 in all): screening blocks the
    address after screening.auth_failures, and from then on no password
    from it is checked in any of those sessions (each is closed with
    421), every line back is well-formed, memory stays bounded, and the
    real user logs in from another address meanwhile."""
    from hostile_util import rss_kb
    p = petrel_factory(settings=_auth_flood_settings())
    attacker = "127.0.0.5"
    conns = []
    for _ in range(30):
        r = Raw(p.ports["submission"], source=attacker)
        assert r.reply()[0] == 220
        assert r.cmd("EHLO flood")[0] == 250
        conns.append(r)
    base = rss_kb(p)
    for i, r in enumerate(conns):
        r.send(_auth_attempts(4, 4 * i))
    _real_user_logs_in(p, "127.0.0.6")
    results = []
    for r in conns:
        results.append(_smtp_replies(_read_all(r.sock, 20, finals=4)))
        r.close()
    codes = [int(line[:3]) for lines in results for line in lines]
    closed_421 = sum(1 for lines in results
                     if lines and lines[-1].startswith(b"421 4.7.0"))
    print(f"30 connections: {codes.count(535)} x 535 "
          f"({len(codes)} replies), {closed_421} closed with 421; "
          f"RSS {base} KB -> {rss_kb(p)} KB")
    assert 235 not in codes
    assert codes.count(535) <= AUTH_LIMIT + AUTH_SLACK, codes.count(535)
    assert closed_421 == len(conns)
    assert "ip blocked: ip=127.0.0.5 " in p.log("security")
    _real_user_logs_in(p, "127.0.0.6")
    alive(p)
