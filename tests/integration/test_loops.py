"""Several event loops (config key `loops`): each has its own listening
sockets (SO_REUSEPORT) and sessions; what limits and counts must stay exact
across them (sessions per IP and in all, POP3 mailbox locks, hijack
windows, the settings in force) is shared. The daemon runs 4 loops here,
whatever the machine's cores, so connections really do land on several."""
import os
import poplib
import re
import smtplib
import socket
import threading

from smtputil import AuthSession, Raw, tls_context, wait_for

PW = "correct horse battery staple"
ALICE = "alice@example.test"
BOB = "bob@example.test"
LOOPS = 4


def loops_petrel(petrel_factory, settings=None, **conf):
    conf.setdefault("loops", str(LOOPS))
    return petrel_factory(settings=settings, **conf)


def loop_threads(p):
    """{name: voluntary context switches} of the loop threads; loop 0 is
    the main thread, whose name is the program's."""
    out = {}
    for task in os.listdir(f"/proc/{p.proc.pid}/task"):
        base = f"/proc/{p.proc.pid}/task/{task}"
        try:
            with open(f"{base}/comm") as f:
                name = f.read().strip()
            with open(f"{base}/status") as f:
                status = f.read()
        except FileNotFoundError:
            continue
        if name.startswith("petreld-loop"):
            out[name] = int(re.search(r"voluntary_ctxt_switches:\s+(\d+)",
                                      status).group(1))
    return out


def listeners(port):
    """Listening sockets on 127.0.0.1:port (from /proc/net/tcp)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return sum(1 for r in rows if r[1] == want and r[3] == "0A")


MANY = {"smtp.max_sessions_per_ip": "100",
        "screening.max_connections_per_ip": "100",
        "screening.max_connects_per_minute": "1000"}


def test_every_loop_listens_and_serves(petrel_factory):
    p = loops_petrel(petrel_factory, MANY)
    assert f"petreld ready ({LOOPS} event loops)" in p.log("system")
    for name in ("smtp", "submission", "smtps", "pop3", "pop3s"):
        assert listeners(p.ports[name]) == LOOPS, name
    # Loops 1..3 are threads of their own; each gets some of 64
    # connections (the kernel hashes them over the 4 sockets: that one
    # gets none of 64 has odds below 1e-7).
    before = loop_threads(p)
    assert sorted(before) == [f"petreld-loop{i}" for i in range(1, LOOPS)]
    conns = [Raw(p.ports["smtp"]) for _ in range(64)]
    for r in conns:
        assert r.reply()[0] == 220
        assert r.cmd("EHLO client.test")[0] == 250
        assert r.cmd("NOOP")[0] == 250
    after = loop_threads(p)
    for name, n in before.items():
        assert after[name] > n, name
    for r in conns:
        assert r.cmd("QUIT")[0] == 221
        r.close()


def test_messages_from_every_loop_are_delivered(petrel_factory):
    """Sessions on loops 1..3 hand their messages to the queue manager of
    loop 0."""
    p = loops_petrel(petrel_factory, MANY)
    errors = []

    def send(i):
        try:
            with smtplib.SMTP("127.0.0.1", p.ports["smtp"],
                              timeout=30) as c:
                for j in range(3):
                    c.sendmail("x@remote.test", [ALICE],
                               f"Subject: m{i}-{j}\r\n\r\nbody {i} {j}\r\n")
        except Exception as e:  # reported below
            errors.append(repr(e))
    threads = [threading.Thread(target=send, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert wait_for(lambda: len(p.messages(ALICE, timeout=0)) == 72,
                    timeout=30)
    subjects = set()
    for f in p.messages(ALICE):
        m = re.search(rb"^Subject: (\S+)", f.read_bytes(), re.M)
        subjects.add(m.group(1).decode())
    assert subjects == {f"m{i}-{j}" for i in range(24) for j in range(3)}


def test_per_ip_and_total_limits_hold_across_loops(petrel_factory):
    p = loops_petrel(petrel_factory,
                     {"smtp.max_sessions_per_ip": "5",
                      "smtp.max_sessions": "7"})
    held = [Raw(p.ports["smtp"]) for _ in range(5)]
    assert [r.reply()[0] for r in held] == [220] * 5
    # The 6th from the same IP is refused, whichever loop takes it.
    for _ in range(8):
        r = Raw(p.ports["smtp"])
        code, lines = r.reply()
        assert code == 421 and "Too many connections" in lines[0]
        r.close()
    # Another address may have the 2 slots left of smtp.max_sessions,
    # and no more.
    other = [Raw(p.ports["smtp"], source="127.0.0.2") for _ in range(2)]
    assert [r.reply()[0] for r in other] == [220] * 2
    r = Raw(p.ports["smtp"], source="127.0.0.3")
    assert r.reply()[0] == 421
    r.close()
    # A slot given back is free again for the next client at once.
    assert held[0].cmd("QUIT")[0] == 221
    held[0].close()
    r = Raw(p.ports["smtp"])
    assert r.reply()[0] == 220
    assert "smtp.max_sessions_per_ip reached" in p.log("smtp-in")
    assert "smtp.max_sessions reached" in p.log("smtp-in")
    for c in held[1:] + other + [r]:
        c.close()


def test_a_setting_reaches_every_loop(petrel_factory):
    p = loops_petrel(petrel_factory, MANY)

    def sizes():
        out = set()
        for _ in range(24):
            with smtplib.SMTP("127.0.0.1", p.ports["smtp"],
                              timeout=10) as c:
                c.ehlo("client.test")
                out.add(c.esmtp_features.get("size"))
        return out
    before = sizes()
    assert len(before) == 1 and before != {"1263616"}
    p.set("smtp.max_message_kb", "1234")
    # The reload line is written once every loop has the new snapshot.
    assert sizes() == {"1263616"}
    assert p.log("system").count("settings reloaded") == 1


def test_pop3_mailbox_lock_is_shared(petrel_factory):
    p = loops_petrel(petrel_factory,
                     {**MANY, "pop3.max_sessions_per_ip": "100"})
    with smtplib.SMTP("127.0.0.1", p.ports["smtp"], timeout=30) as c:
        c.sendmail("x@remote.test", [ALICE], "Subject: x\r\n\r\nhi\r\n")
    assert wait_for(lambda: p.messages(ALICE))
    results = []  # (reply to PASS or the exception, connection)
    lock = threading.Lock()
    start = threading.Barrier(12)

    # Checked here, not in the threads: an assert there is only a warning.
    def login():
        c = None
        try:
            c = poplib.POP3_SSL("127.0.0.1", p.ports["pop3s"],
                                context=tls_context(), timeout=30)
            c.user(ALICE)
            start.wait(timeout=30)
            try:
                got = c.pass_(PW)
            except poplib.error_proto as e:
                got = e.args[0]
        except Exception as e:  # reported by the main thread
            start.abort()
            got = e
        with lock:
            results.append((got, c))
    threads = [threading.Thread(target=login) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        replies = [got for got, _ in results]
        assert len(replies) == 12, replies
        assert all(isinstance(got, bytes) for got in replies), replies
        # One session has the mailbox, whichever loop it is on; every
        # other one is told it is in use.
        ok = [c for got, c in results if got.startswith(b"+OK")]
        assert len(ok) == 1, replies
        refused = [got for got in replies if not got.startswith(b"+OK")]
        assert len(refused) == 11 and all(
            got.startswith(b"-ERR [IN-USE]") for got in refused), replies
        assert ok[0].stat()[0] == 1
        ok[0].quit()
    finally:
        for _, c in results:
            if c is not None:
                c.close()


def test_hijack_limit_is_exact_across_loops(petrel_factory):
    p = loops_petrel(petrel_factory,
                     {"auth.allow_plaintext": "on",
                      "hijack.max_messages": "20", "hijack.minutes": "30",
                      "smtp.max_sessions_per_ip": "100",
                      "screening.max_connections_per_ip": "100"})
    sessions = [AuthSession(p.ports["submission"], ALICE, PW)
                for _ in range(32)]
    assert all(s.auth == 235 for s in sessions)
    codes = []
    lock = threading.Lock()
    start = threading.Barrier(len(sessions))

    def send(s):
        start.wait()
        for _ in range(2):
            try:
                code = s.send(rcpts=(BOB,))
            except (ConnectionError, socket.timeout, OSError):
                code = None
            with lock:
                codes.append(code)
            if code != 250:
                break
        s.close()
    threads = [threading.Thread(target=send, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes.count(250) == 20
    assert p.log("security").count("account frozen:") == 1


def test_sigterm_finishes_every_loop(petrel_factory):
    """Sessions on several loops in the middle of a transaction finish it;
    idle ones get 421; the daemon exits cleanly."""
    p = loops_petrel(petrel_factory, MANY)
    busy, idle = [], []
    for i in range(16):
        r = Raw(p.ports["smtp"])
        assert r.reply()[0] == 220
        r.cmd("EHLO client.test")
        if i % 2 == 0:
            assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
            assert r.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
            assert r.cmd("DATA")[0] == 354
            r.send(f"Subject: late{i}\r\n\r\nhello\r\n")
            busy.append((i, r))
        else:
            idle.append(r)
    p.proc.send_signal(15)
    for r in idle:
        code, lines = r.reply()
        assert code == 421
    for i, r in busy:
        assert r.cmd(".")[0] == 250
        r.close()
    assert p.proc.wait(timeout=20) == 0
    p.proc = None
    p.stderr.close()
    # Restarted, the daemon delivers all 8 (some may have been delivered
    # before the stop).
    p.start()
    assert wait_for(lambda: len(p.messages(ALICE, timeout=0)) == 8,
                    timeout=30)
    assert "ERROR: AddressSanitizer" not in p.stderr_text()
    assert "LeakSanitizer" not in p.stderr_text()
