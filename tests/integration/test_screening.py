"""Failed-login screening and connection limits through the real daemon."""
import base64
import json
import socket

from smtputil import Raw, wait_for

PW = "correct horse battery staple"
ALICE = "alice@example.test"
BOB = "bob@example.test"


def auth_plain(petrel, user, password, source):
    """One AUTH PLAIN on a fresh submission session (plaintext allowed by
    the fixture's settings below). Returns the reply code, or 421 when the
    connection was refused at the greeting."""
    r = Raw(petrel.ports["submission"], source=source)
    try:
        code, _ = r.reply()
        if code != 220:
            return code
        r.cmd("EHLO c")
        blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return r.cmd(f"AUTH PLAIN {blob}")[0]
    finally:
        r.close()


def greeting(petrel, source):
    r = Raw(petrel.ports["smtp"], source=source)
    try:
        return r.reply()
    finally:
        r.close()


def screening_petrel(petrel_factory, **settings):
    s = {"auth.allow_plaintext": "on", "screening.auth_failures": "3",
         "auth.fail_delay_ms": "0"}
    s.update(settings)
    return petrel_factory(settings=s)


def test_failures_block_the_ip(petrel_factory):
    p = screening_petrel(petrel_factory)
    ip = "127.0.0.21"
    codes = [auth_plain(p, "alice@example.test", f"wrong{i}", ip)
             for i in range(3)]
    assert codes == [535, 535, 535]
    code, lines = greeting(p, ip)
    assert code == 421 and "4.7.0" in lines[0]
    # Also for the right password, and on every listener.
    assert auth_plain(p, "alice@example.test", PW, ip) == 421
    # Other IPs are not concerned.
    assert auth_plain(p, "alice@example.test", PW, "127.0.0.22") == 235
    sec = p.log("security")
    assert "ip blocked: ip=127.0.0.21 key=127.0.0.21" in sec
    assert "offenses=1 failures=3 service=smtp" in sec
    assert PW not in sec and "wrong0" not in sec
    # The account itself is not locked.
    assert auth_plain(p, "alice@example.test", PW, "127.0.0.23") == 235


def test_same_wrong_password_counts_once(petrel_factory):
    p = screening_petrel(petrel_factory)
    ip = "127.0.0.31"
    for _ in range(6):
        assert auth_plain(p, "alice@example.test", "old password", ip) == 535
    assert greeting(p, ip)[0] == 220
    assert "ip blocked" not in p.log("security")


def test_block_survives_restart_and_unblock(petrel_factory):
    p = screening_petrel(petrel_factory)
    ip = "127.0.0.41"
    for i in range(3):
        auth_plain(p, "bob@example.test", f"guess{i}", ip)
    assert greeting(p, ip)[0] == 421

    def listed():
        out = json.loads(p.ctl.ok("screening", "list", json=True))
        return [b for b in out if b["ip"] == ip]
    assert wait_for(listed)
    [b] = listed()
    assert b["offenses"] == 1 and "3 failed logins" in b["reason"]
    assert ip in p.ctl.ok("screening", "list")

    assert p.stop() == 0
    p.start()
    assert greeting(p, ip)[0] == 421

    before = p.reloads()
    assert p.ctl.ok("screening", "unblock", ip).strip() == f"{ip} unblocked"
    assert wait_for(lambda: p.reloads() > before)
    assert greeting(p, ip)[0] == 220
    assert p.ctl.ok("screening", "list").strip() == "no IP is blocked"
    r = p.ctl.run("screening", "unblock", ip)
    assert r.returncode == 1 and "not blocked" in r.stderr
    # The record stays: the next block is twice as long.
    for i in range(3):
        auth_plain(p, "bob@example.test", f"again{i}", ip)
    assert wait_for(lambda: listed() and listed()[0]["offenses"] == 2)


def test_trusted_host_never_blocked(petrel_factory):
    p = screening_petrel(petrel_factory,
                         **{"trusted.hosts": "127.0.0.51"})
    for i in range(5):
        assert auth_plain(p, "alice@example.test", f"w{i}",
                          "127.0.0.51") == 535
    assert greeting(p, "127.0.0.51")[0] == 220


def test_connects_per_minute(petrel_factory):
    p = petrel_factory(settings={"screening.max_connects_per_minute": "3"})
    ip = "127.0.0.61"
    codes = [greeting(p, ip)[0] for _ in range(4)]
    assert codes == [220, 220, 220, 421]
    assert "screening.max_connects_per_minute reached" in p.log("smtp-in")
    assert greeting(p, "127.0.0.62")[0] == 220


def test_connections_per_ip(petrel_factory):
    p = petrel_factory(
        settings={"screening.max_connections_per_ip": "2"})
    ip = "127.0.0.71"
    a, b = Raw(p.ports["smtp"], source=ip), Raw(p.ports["smtp"], source=ip)
    assert a.code() == 220 and b.code() == 220
    code, lines = greeting(p, ip)
    assert code == 421 and "4.7.0" in lines[0]
    a.close()
    b.close()
    assert wait_for(lambda: greeting(p, ip)[0] == 220, timeout=5)


# ---- POP3: the same screening, the same counts ----


def pop3_login(petrel, user, password, source, mech="USER"):
    """One login on a fresh POP3 session (plaintext allowed by
    screening_petrel): USER/PASS or AUTH PLAIN. Returns the reply to the
    password and whether the server then closed the session; or the
    greeting and True when the connection was refused."""
    r = Raw(petrel.ports["pop3"], source=source)
    try:
        greet = r.line()
        if not greet.startswith("+OK"):
            return greet, r.closed()
        if mech == "USER":
            r.send(f"USER {user}\r\n")
            assert r.line() == "+OK Send your password"
            r.send(f"PASS {password}\r\n")
        else:
            blob = base64.b64encode(f"\0{user}\0{password}".encode())
            r.send(f"AUTH PLAIN {blob.decode()}\r\n")
        reply = r.line()
        return reply, r.closed(timeout=0.5)
    finally:
        r.close()


def test_pop3_failures_block_the_ip(petrel_factory):
    p = screening_petrel(petrel_factory)
    ip = "127.0.0.81"
    assert pop3_login(p, ALICE, "wrong0", ip) == (
        "-ERR [AUTH] Authentication failed", False)
    assert pop3_login(p, ALICE, "wrong1", ip, mech="PLAIN") == (
        "-ERR [AUTH] Authentication failed", False)
    # The failure that blocks: one reply that says the session ends.
    assert pop3_login(p, ALICE, "wrong2", ip) == (
        "-ERR [SYS/TEMP] Too many failed logins, closing", True)
    # Refused at connect from now on, the right password too, on POP3
    # and SMTP alike.
    assert pop3_login(p, ALICE, PW, ip) == (
        "-ERR [SYS/TEMP] Too many failed logins, try again later", True)
    code, lines = greeting(p, ip)
    assert code == 421 and "4.7.0" in lines[0]
    assert "refused connection from [127.0.0.81]" in p.log("pop3")
    assert "blocked by failed-login screening" in p.log("pop3")
    # Other IPs log in.
    assert pop3_login(p, ALICE, PW, "127.0.0.82")[0].startswith(
        "+OK Logged in")
    sec = p.log("security")
    assert sec.count("auth failed: ip=127.0.0.81") == 3
    assert "mechanism=PLAIN service=pop3" in sec
    assert "ip blocked: ip=127.0.0.81 key=127.0.0.81" in sec
    assert "offenses=1 failures=3 service=pop3" in sec
    assert PW not in sec and "wrong0" not in sec and "wrong2" not in sec
    assert "wrong" not in p.log("pop3")


def test_failures_add_up_across_smtp_and_pop3(petrel_factory):
    """An attacker gains nothing by switching protocols."""
    p = screening_petrel(petrel_factory)
    ip = "127.0.0.83"
    assert auth_plain(p, ALICE, "try-a", ip) == 535
    assert pop3_login(p, ALICE, "try-b", ip)[0] == (
        "-ERR [AUTH] Authentication failed")
    assert auth_plain(p, BOB, "try-c", ip) == 535
    # Three in all: blocked on both.
    assert pop3_login(p, ALICE, PW, ip)[0].startswith(
        "-ERR [SYS/TEMP] Too many failed logins")
    assert greeting(p, ip)[0] == 421
    assert "offenses=1 failures=3 service=smtp" in p.log("security")
    # And the other way round: two POP3 failures and one SMTP failure.
    ip = "127.0.0.84"
    for i in range(2):
        assert pop3_login(p, ALICE, f"pop-{i}", ip)[0] == (
            "-ERR [AUTH] Authentication failed")
    assert auth_plain(p, ALICE, "smtp-x", ip) == 535
    assert pop3_login(p, ALICE, PW, ip)[0].startswith(
        "-ERR [SYS/TEMP] Too many failed logins")


def test_pop3_same_wrong_password_counts_once(petrel_factory):
    p = screening_petrel(petrel_factory)
    ip = "127.0.0.85"
    for i in range(6):
        # One session, then the next: POP3 closes a session after its
        # third failure.
        assert pop3_login(p, ALICE, "old password", ip,
                          mech="PLAIN" if i % 2 else "USER")[0] == (
            "-ERR [AUTH] Authentication failed")
    # Over SMTP too: the same account and password, the same attempt.
    assert auth_plain(p, ALICE, "old password", ip) == 535
    assert pop3_login(p, ALICE, PW, ip)[0].startswith("+OK Logged in")
    assert "ip blocked" not in p.log("security")


def test_pop3_blocked_ip_unblocked(petrel_factory):
    p = screening_petrel(petrel_factory)
    ip = "127.0.0.86"
    for i in range(3):
        pop3_login(p, BOB, f"guess{i}", ip)
    assert pop3_login(p, BOB, PW, ip)[1] is True

    def listed():
        out = json.loads(p.ctl.ok("screening", "list", json=True))
        return [b for b in out if b["ip"] == ip]
    assert wait_for(listed)
    assert "(pop3)" in listed()[0]["reason"]
    assert p.ctl.ok("screening", "unblock", ip).strip() == f"{ip} unblocked"
    # Within a second (the daemon's own write of the block moved the
    # change counter too, so a reload count proves nothing here).
    assert wait_for(lambda: pop3_login(p, BOB, PW, ip)[0].startswith(
        "+OK Logged in"), timeout=5, step=0.2)


def test_pop3_connection_limits_shared_with_smtp(petrel_factory):
    """screening.max_connections_per_ip counts SMTP and POP3 sessions
    together; pop3.max_sessions_per_ip only POP3's."""
    p = petrel_factory(settings={"screening.max_connections_per_ip": "2",
                                 "pop3.max_sessions_per_ip": "5"})
    ip = "127.0.0.87"
    s = Raw(p.ports["smtp"], source=ip)
    q = Raw(p.ports["pop3"], source=ip)
    assert s.code() == 220 and q.line().startswith("+OK")
    third = Raw(p.ports["pop3"], source=ip)
    assert third.line() == (
        "-ERR [SYS/TEMP] Too many connections, try again later")
    assert third.closed()
    assert greeting(p, ip)[0] == 421
    assert ("refused connection from [127.0.0.87]:" in p.log("pop3") and
            "screening.max_connections_per_ip reached" in p.log("pop3"))
    s.close()
    assert wait_for(lambda: pop3_greeting(p, ip).startswith("+OK"),
                    timeout=5)
    q.close()


def pop3_greeting(p, source):
    r = Raw(p.ports["pop3"], source=source)
    try:
        return r.line()
    finally:
        r.close()


def _tx_queue(port, source, me):
    """Bytes the daemon has queued in the kernel to send to source:me."""
    def hexaddr(ip, prt):
        return "%08X:%04X" % (int.from_bytes(socket.inet_aton(ip),
                                             "little"), prt)
    want = (hexaddr("127.0.0.1", port), hexaddr(source, me))
    with open("/proc/net/tcp") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if (fields[1], fields[2]) == want:
                return int(fields[4].split(":")[0], 16)
    return None


def unread_goodbye(p, port, log, source, command):
    """A client that reads nothing sends command until the daemon's
    kernel buffer toward it is full and replies wait in the daemon itself
    (below the bound past which it stops reading), then QUIT: the goodbye
    is queued behind replies the client has not read. Returns the socket
    once the daemon has read the QUIT."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.settimeout(30)
    me = sock.getsockname()[1]
    sent = 0
    last = -1
    while True:
        assert sent < 30000, "the kernel buffer never filled"
        # 150 replies are well below the 64 KB the daemon may hold.
        sock.sendall((command + "\r\n").encode() * 150)
        sent += 150
        # Every command read: the daemon is below its output bound.
        assert wait_for(lambda: p.log(log).count(f"<-- {command}") == sent,
                        timeout=20), (sent, p.log(log).count(f"<-- {command}"))
        tx = _tx_queue(port, source, me)
        assert tx is not None
        if tx == last:
            break  # full: the last replies wait in the daemon
        last = tx
    sock.sendall(b"QUIT\r\n")
    assert wait_for(lambda: "<-- QUIT" in p.log(log), timeout=20)
    return sock


def test_slot_free_while_goodbye_unread(petrel_factory):
    """At the per-IP limit, a session that has said goodbye gives its slot
    to the next client at once, though its client has not read the
    goodbye (nor the replies before it) yet."""
    # unread_goodbye counts the commands in the transcript: all of them.
    p = petrel_factory(settings={"pop3.max_sessions_per_ip": "1",
                                 "smtp.max_sessions_per_ip": "1",
                                 "smtp.max_junk_commands": "1000000",
                                 "log.max_lines_per_session": "100000000"})
    ip = "127.0.0.89"
    a = unread_goodbye(p, p.ports["smtp"], "smtp-in", ip, "HELP")
    assert greeting(p, ip)[0] == 220
    b = unread_goodbye(p, p.ports["pop3"], "pop3", ip, "CAPA")
    assert pop3_greeting(p, ip).startswith("+OK")
    a.close()
    b.close()


def test_notify_after_tells_the_postmaster(petrel_factory):
    p = screening_petrel(petrel_factory, **{"screening.auth_failures": "10",
                                            "screening.notify_after": "3"})
    for i in range(3):
        assert auth_plain(p, ALICE, f"guess{i}", f"127.0.0.{40 + i}") == 535
    # A name in a domain that is not ours never mails anyone.
    for i in range(3):
        assert auth_plain(p, "root@stranger.test", f"guess{i}",
                          f"127.0.0.{50 + i}") == 535
    notes = wait_for(lambda: [f for f in p.messages(
        "postmaster@example.test", timeout=0)
        if b"Failed logins on alice@example.test" in f.read_bytes()])
    assert len(notes) == 1
    text = notes[0].read_bytes().decode()
    assert "3 failed logins" in text and "127.0.0.42" in text
    assert "guess" not in text
    assert "the postmaster is told" in p.log("security")
    assert not any(b"stranger" in f.read_bytes()
                   for f in p.messages("postmaster@example.test", timeout=0))
    assert not [m for m in json.loads(p.ctl.ok("queue", "list", "deferred",
                                               json=True))
                if "stranger" in json.dumps(m)]


def test_good_login_restarts_the_delays(petrel_factory):
    import time
    p = screening_petrel(petrel_factory, **{"screening.auth_failures": "10",
                                            "auth.fail_delay_ms": "500"})
    ip = "127.0.0.60"

    def timed(password):
        t = time.monotonic()
        code = auth_plain(p, ALICE, password, ip)
        return code, time.monotonic() - t
    code, first = timed("wrong-a")
    assert code == 535 and first >= 0.45
    code, doubled = timed("wrong-b")
    assert code == 535 and doubled >= 0.95
    assert timed(PW)[0] == 235
    code, again = timed("wrong-c")
    # From the first delay again (0.5 s), not the next one (2 s). Delays
    # only come late, so the floor holds on any machine; the ceiling is
    # the doubled delay measured above in this run, 0.5 s more than a
    # restarted one and 1 s less than one that went on growing.
    assert code == 535 and 0.45 <= again < doubled
