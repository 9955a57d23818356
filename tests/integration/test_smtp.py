"""The SMTP server through the real daemon and real clients (smtplib, raw
sockets, swaks): every point of the SMTP issue."""
import base64
import email
import re
import smtplib
import socket
import subprocess
import time

import pytest

from smtputil import Raw, tls_context, wait_for

PW = "correct horse battery staple"


def submit(petrel, sender="alice@example.test", rcpts=("bob@example.test",),
           msg=None, user="alice@example.test"):
    msg = msg or (f"From: {sender}\r\nTo: {rcpts[0]}\r\nSubject: hello\r\n"
                  "\r\nbody line\r\n")
    with smtplib.SMTP("127.0.0.1", petrel.ports["submission"],
                      timeout=30) as c:
        c.starttls(context=tls_context())
        c.login(user, PW)
        return c.sendmail(sender, list(rcpts), msg)


def test_greeting_and_ehlo_keywords(petrel):
    r = Raw(petrel.ports["smtp"])
    code, lines = r.reply()
    assert code == 220 and "mx.example.test" in lines[0]
    code, lines = r.cmd("EHLO client.example")
    text = "\n".join(lines)
    assert code == 250
    for kw in ("PIPELINING", "SIZE 26214400", "8BITMIME",
               "ENHANCEDSTATUSCODES", "STARTTLS"):
        assert kw in text
    assert "AUTH" not in text  # not before TLS
    assert r.cmd("STARTTLS")[0] == 220
    r.starttls()
    code, lines = r.cmd("EHLO client.example")
    text = "\n".join(lines)
    assert "AUTH PLAIN LOGIN" in text and "STARTTLS" not in text
    assert r.cmd("STARTTLS")[0] == 503  # second STARTTLS refused
    r.close()


def test_simple_commands(petrel):
    r = Raw(petrel.ports["smtp"])
    r.reply()
    assert r.cmd("MAIL FROM:<a@remote.test>")[0] == 503  # before EHLO
    assert r.cmd("HELO client.example")[0] == 250
    assert r.cmd("NOOP")[0] == 250
    assert r.cmd("VRFY alice")[0] == 252
    assert r.cmd("EXPN staff")[0] == 502
    assert r.cmd("HELP")[0] == 214
    assert r.cmd("RSET")[0] == 250
    assert r.cmd("RSET now")[0] == 501
    assert r.cmd("FOO")[0] == 500
    assert r.cmd("DATA")[0] == 503
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 503
    code, lines = r.cmd("QUIT")
    assert code == 221 and lines[0].startswith("221 2.0.0")
    assert r.closed()


def test_inbound_delivery_and_trace_headers(petrel):
    with smtplib.SMTP("127.0.0.1", petrel.ports["smtp"], timeout=30) as c:
        c.ehlo("sender.remote.test")
        c.sendmail("someone@remote.test", ["alice@example.test"],
                   "Subject: hi\r\nX-Authenticated-Sender: forged@x.test\r\n"
                   "\r\n.leading dot\r\nbody\r\n")  # smtplib stuffs it
    files = petrel.messages("alice@example.test")
    assert len(files) == 1
    name = files[0].name
    data = files[0].read_bytes()
    assert re.search(r",S=%d" % len(data), name)
    assert b"\r\n" not in data  # Maildir stores LF line ends
    m = email.message_from_bytes(data)
    assert m["Return-Path"] == "<someone@remote.test>"
    rcv = m["Received"]
    # The client's forward-confirmed name (from /etc/hosts here).
    assert "from sender.remote.test (localhost [127.0.0.1])" in rcv, rcv
    assert "by mx.example.test (Petrel)" in rcv and "with ESMTP " in rcv
    assert "for <alice@example.test>" in rcv
    assert m["X-Authenticated-Sender"] is None  # forged one removed
    assert m["Message-ID"]
    assert m.get_payload() == ".leading dot\nbody\n"
    log = petrel.log("smtp-in")
    assert f"saved <Message-ID: {m['Message-ID']}>" in log


def test_submission_auth_and_stamps(petrel):
    submit(petrel, msg="From: alice@example.test\r\nSubject: s\r\n\r\nhi\r\n")
    files = petrel.messages("bob@example.test")
    m = email.message_from_bytes(files[0].read_bytes())
    assert m["X-Authenticated-Sender"] == "alice@example.test"
    assert "with ESMTPSA" in m["Received"]
    assert m["Date"] and m["Message-ID"]
    log = petrel.log("smtp-in")
    assert "authenticated as alice@example.test" in log
    assert PW not in log
    assert base64.b64encode(f"\0alice@example.test\0{PW}".encode()).decode() \
        not in log
    assert "<redacted>" in log


def received_of_new_message(p, port, rcpt="alice@example.test",
                            source="127.0.0.1"):
    before = len(p.messages(rcpt, timeout=0))
    with smtplib.SMTP("127.0.0.1", port, timeout=30,
                      source_address=(source, 0)) as c:
        c.sendmail("x@remote.test", [rcpt], "Subject: r\r\n\r\nx\r\n")
    assert wait_for(lambda: len(p.messages(rcpt, timeout=0)) > before)
    files = p.messages(rcpt)
    newest = max(files, key=lambda f: f.stat().st_mtime_ns)
    return email.message_from_bytes(newest.read_bytes())["Received"]


def test_rdns_lookup_off(petrel_factory):
    p = petrel_factory(settings={"smtp.rdns_timeout_ms": "0"})
    rcv = received_of_new_message(p, p.ports["smtp"])
    assert "(unknown [127.0.0.1])" in rcv, rcv
    assert "client name" not in p.log("smtp-in")


def test_rdns_timeout_bounds_the_greeting(petrel_factory):
    """A DNS server that never answers: the greeting comes after
    smtp.rdns_timeout_ms, and the name is unknown."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        p = petrel_factory(
            settings={"smtp.rdns_timeout_ms": "300"},
            dns_server=f"127.0.0.1:{silent.getsockname()[1]}")
        # 127.0.0.2 is in no hosts file: the PTR query goes to the server.
        t = time.monotonic()
        s = socket.create_connection(("127.0.0.1", p.ports["smtp"]),
                                     timeout=10,
                                     source_address=("127.0.0.2", 0))
        banner = s.recv(512)
        waited = time.monotonic() - t
        s.close()
        assert banner.startswith(b"220 "), banner
        assert 0.25 <= waited < 5, waited
        assert "client name unknown (lookup timed out)" in p.log("smtp-in")
        rcv = received_of_new_message(p, p.ports["smtp"], source="127.0.0.2")
        assert "(unknown [127.0.0.2])" in rcv, rcv
    finally:
        silent.close()


def test_smtps_implicit_tls(petrel):
    with smtplib.SMTP_SSL("127.0.0.1", petrel.ports["smtps"],
                          context=tls_context(), timeout=30) as c:
        c.login("alice@example.test", PW)
        c.sendmail("alice@example.test", ["bob@example.test"],
                   "From: alice@example.test\r\n\r\nx\r\n")
    assert petrel.messages("bob@example.test")
    assert "TLS started: TLSv1.3" in petrel.log("smtp-in")


def test_auth_login_mechanism(petrel):
    r = Raw(petrel.ports["submission"])
    r.reply()
    r.cmd("EHLO c")
    r.cmd("STARTTLS")
    r.starttls()
    r.cmd("EHLO c")
    assert r.cmd("AUTH LOGIN")[1][0] == "334 VXNlcm5hbWU6"
    assert r.cmd(base64.b64encode(b"alice@example.test").decode())[0] == 334
    assert r.cmd(base64.b64encode(PW.encode()).decode())[0] == 235
    assert r.cmd("AUTH PLAIN")[0] == 503
    r.close()


def test_auth_before_tls_refused(petrel):
    r = Raw(petrel.ports["submission"])
    r.reply()
    r.cmd("EHLO c")
    cred = base64.b64encode(f"\0alice@example.test\0{PW}".encode()).decode()
    assert r.cmd("AUTH PLAIN " + cred)[0] == 538
    assert r.cmd("MAIL FROM:<alice@example.test>")[0] == 530
    r.close()


def test_auth_plaintext_setting(petrel):
    petrel.set("auth.allow_plaintext", "on")
    r = Raw(petrel.ports["submission"])
    r.reply()
    assert "AUTH PLAIN LOGIN" in "\n".join(r.cmd("EHLO c")[1])
    cred = base64.b64encode(f"\0alice@example.test\0{PW}".encode()).decode()
    assert r.cmd("AUTH PLAIN " + cred)[0] == 235
    r.close()


def test_wrong_password_and_unknown_user_same_reply(petrel_factory):
    p = petrel_factory(settings={"auth.allow_plaintext": "on"})
    p.set("auth.fail_delay_ms", "300")
    replies, times = [], []
    for user, pw in (("alice@example.test", "wrong password!!"),
                     ("nobody@example.test", "wrong password!!")):
        r = Raw(p.ports["submission"])
        r.reply()
        r.cmd("EHLO c")
        t = time.monotonic()
        cred = base64.b64encode(f"\0{user}\0{pw}".encode()).decode()
        replies.append(r.cmd("AUTH PLAIN " + cred)[1][0])
        times.append(time.monotonic() - t)
        r.close()
    assert replies[0] == replies[1]
    assert replies[0].startswith("535 5.7.8")
    assert all(t >= 0.3 for t in times)
    sec = p.log("security")
    assert "auth failed: ip=127.0.0.1 port=" in sec
    assert "account=alice@example.test" in sec
    assert "account=nobody@example.test" in sec
    assert "wrong password" not in sec


def test_disabled_account_cannot_authenticate(petrel):
    petrel.ctl.ok("account", "disable", "alice@example.test")
    with pytest.raises(smtplib.SMTPAuthenticationError):
        submit(petrel)


@pytest.mark.parametrize("port", ["smtp", "submission"])
def test_no_open_relay(petrel, port):
    r = Raw(petrel.ports[port])
    r.reply()
    r.cmd("EHLO c")
    if port == "smtp":
        r.cmd("MAIL FROM:<x@remote.test>")
        code, lines = r.cmd("RCPT TO:<victim@elsewhere.test>")
        assert code == 550 and "5.7.1" in lines[0]
    else:
        assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 530
    r.close()


def test_unknown_local_recipient(petrel):
    r = Raw(petrel.ports["smtp"])
    r.reply()
    r.cmd("EHLO c")
    r.cmd("MAIL FROM:<x@remote.test>")
    code, lines = r.cmd("RCPT TO:<nobody@example.test>")
    assert code == 550 and "5.1.1" in lines[0]
    assert r.cmd("RCPT TO:<Alice@Example.Test>")[0] == 250
    r.close()


def test_authenticated_remote_recipient_is_queued(petrel):
    submit(petrel, rcpts=("friend@remote.test",),
           msg="From: alice@example.test\r\nSubject: out\r\n\r\nx\r\n")
    out = petrel.ctl.ok("queue", "list")
    assert "friend@remote.test" in out


def test_pipelining_batched_replies(petrel):
    r = Raw(petrel.ports["smtp"])
    r.reply()
    r.cmd("EHLO c")
    r.send("MAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
           "RCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
           "DATA\r\n")
    assert [r.code() for _ in range(5)] == [250, 250, 550, 250, 354]
    r.send("Subject: p\r\n\r\nx\r\n.\r\nQUIT\r\n")
    assert r.code() == 250
    assert r.code() == 221
    assert petrel.messages("bob@example.test")


def test_data_pipelined_before_354_refused(petrel):
    r = Raw(petrel.ports["smtp"])
    r.reply()
    r.cmd("EHLO c")
    r.send("MAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
           "DATA\r\nSubject: early\r\n\r\nx\r\n.\r\n")
    assert [r.code() for _ in range(3)] == [250, 250, 554]
    assert r.closed()
    # The session's last line comes after anything it saved.
    assert wait_for(lambda: "*** disconnected: " in petrel.log("smtp-in"))
    log = petrel.log("smtp-in")
    assert "*** disconnected: 0 messages" in log, log
    assert "message saved" not in log, log
    assert petrel.ctl.ok("queue", "list").strip() == "the queue is empty"
    assert not petrel.messages("alice@example.test", timeout=0)


SMUGGLE = [b"\n.\n", b"\n.\r\n", b"\r.\n", b"\r.\r", b"\r\n.\n",
           b"\r\n.\r", b"\r\n\x00.\r\n", b"\r\n.\r\r\n"]


@pytest.mark.parametrize("seq", SMUGGLE, ids=[repr(s) for s in SMUGGLE])
def test_smuggling_sequences(petrel, seq):
    r = Raw(petrel.ports["smtp"])
    r.reply()
    r.cmd("EHLO c")
    r.cmd("MAIL FROM:<x@remote.test>")
    r.cmd("RCPT TO:<alice@example.test>")
    assert r.cmd("DATA")[0] == 354
    r.send(b"Subject: one\r\n\r\nfirst" + seq +
           b"MAIL FROM:<admin@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
           b"DATA\r\nSubject: smuggled\r\n\r\nsecond\r\n.\r\n")
    code, lines = r.reply()
    nul = seq == b"\r\n\x00.\r\n"
    if nul:
        # NUL is data, not an end: one message holding all of it. The
        # reply is the one to the dot, not the 250 2.1.0 of a smuggled
        # MAIL that an early end of DATA would have let through.
        assert len(lines) == 1 and re.fullmatch(
            r"250 2\.0\.0 Ok, message saved <Message-ID: <[^<>]+>> as "
            r"[0-9A-F]{18}", lines[0]), lines
    else:
        assert code == 550 and "5.6.0" in lines[0]
    # No second transaction: the next reply is to our own command.
    assert r.cmd("NOOP") == (250, ["250 2.0.0 Ok"])
    r.close()
    # The session's last line comes after anything it saved.
    assert wait_for(lambda: "*** disconnected: " in petrel.log("smtp-in"))
    log = petrel.log("smtp-in")
    assert f"*** disconnected: {int(nul)} messages" in log, log
    assert log.count("message saved") == int(nul), log
    if nul:
        [f] = petrel.messages("alice@example.test")
        head, body = f.read_bytes().split(b"\n\n", 1)
        assert b"smuggled" not in head
        assert b"RCPT TO:<bob@example.test>" in body and b"second" in body
    assert wait_for(lambda: petrel.ctl.ok("queue", "list").strip() ==
                    "the queue is empty")
    assert not petrel.messages("bob@example.test", timeout=0)
    assert len(petrel.messages("alice@example.test", timeout=0)) == int(nul)


def test_bare_lf_in_command(petrel):
    r = Raw(petrel.ports["smtp"])
    r.reply()
    r.send("EHLO c\nNOOP\r\n")
    code, lines = r.reply()
    assert code == 500 and "5.5.2" in lines[0]
    assert r.cmd("NOOP")[0] == 250


def test_long_command_line(petrel):
    r = Raw(petrel.ports["smtp"])
    r.reply()
    r.send("NOOP " + "x" * 5000 + "\r\n")
    code, lines = r.reply()
    assert code == 500 and "too long" in lines[0]
    assert r.cmd("NOOP")[0] == 250


def test_long_command_line_then_pipelined_command(petrel):
    """A command after an over-long line in the same read is read: only
    the long line is dropped (RFC 5321 4.5.3.1.4, RFC 2920)."""
    r = Raw(petrel.ports["smtp"])
    r.reply()
    r.cmd("EHLO c")
    # Over smtp.max_line (1000), and all of it in one read (libevent
    # reads 4096 bytes at a time).
    r.send("NOOP " + "x" * 2000 + "\r\nRSET\r\nHELO after\r\n")
    code, lines = r.reply()
    assert code == 500 and "too long" in lines[0]
    assert r.reply() == (250, ["250 2.0.0 Ok"])  # RSET
    assert r.reply() == (250, ["250 mx.example.test"])  # HELO
    # A long line whose end comes later: the rest is dropped, the
    # command after it is read.
    r.send("NOOP " + "x" * 2000)
    code, lines = r.reply()
    assert code == 500 and "too long" in lines[0]
    r.send("y" * 3000 + "\r\nNOOP\r\n")
    assert r.reply()[0] == 250
    # In AUTH, RFC 4954 4 names the reply.
    petrel.set("auth.allow_plaintext", "on")
    r.send("AUTH PLAIN\r\n" + "A" * 13000 + "\r\nNOOP\r\n")
    assert r.reply()[0] == 334
    assert r.reply()[1] == ["500 5.5.6 Authentication Exchange line is "
                            "too long"]
    assert r.reply()[0] == 250
    assert r.cmd("QUIT")[0] == 221


def test_long_data_line(petrel):
    r = Raw(petrel.ports["smtp"])
    r.reply()
    r.cmd("EHLO c")
    r.cmd("MAIL FROM:<x@remote.test>")
    r.cmd("RCPT TO:<alice@example.test>")
    r.cmd("DATA")
    r.send("Subject: x\r\n\r\n" + "y" * 1200 + "\r\n.\r\n")
    assert r.code() == 500
    assert r.cmd("NOOP")[0] == 250


def test_message_size_limit(petrel):
    petrel.set("smtp.max_message_kb", "10")
    r = Raw(petrel.ports["smtp"])
    r.reply()
    assert "SIZE 10240" in "\n".join(r.cmd("EHLO c")[1])
    code, lines = r.cmd("MAIL FROM:<x@remote.test> SIZE=20000")
    assert code == 552 and "5.3.4" in lines[0]
    r.cmd("MAIL FROM:<x@remote.test>")
    r.cmd("RCPT TO:<alice@example.test>")
    r.cmd("DATA")
    r.send("Subject: big\r\n\r\n" + ("z" * 70 + "\r\n") * 200 + ".\r\n")
    code, lines = r.reply()
    assert code == 552 and "5.3.4" in lines[0]
    assert r.cmd("NOOP")[0] == 250


def test_too_many_recipients(petrel):
    petrel.set("smtp.max_recipients", "2")
    r = Raw(petrel.ports["smtp"])
    r.reply()
    r.cmd("EHLO c")
    r.cmd("MAIL FROM:<x@remote.test>")
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert r.cmd("RCPT TO:<bob@example.test>")[0] == 250
    code, lines = r.cmd("RCPT TO:<postmaster@example.test>")
    assert code == 452 and "4.5.3" in lines[0]


def test_error_limit(petrel):
    petrel.set("smtp.max_errors", "3")
    r = Raw(petrel.ports["smtp"])
    r.reply()
    for _ in range(2):
        assert r.cmd("BOGUS")[0] == 500
    assert r.cmd("BOGUS")[0] == 500
    assert r.code() == 421
    assert r.closed()


@pytest.mark.parametrize("phase", ["idle", "command", "data"])
def test_timeouts(petrel, phase):
    petrel.set(f"smtp.timeout_{phase}", "1")
    r = Raw(petrel.ports["smtp"])
    r.reply()
    r.cmd("EHLO c")
    if phase in ("command", "data"):
        r.cmd("MAIL FROM:<x@remote.test>")
    if phase == "data":
        r.cmd("RCPT TO:<alice@example.test>")
        r.cmd("DATA")
        r.send("Subject: slow\r\n")
    t = time.monotonic()
    code, lines = r.reply()
    assert code == 421 and "4.4.2" in lines[0]
    assert time.monotonic() - t < 5
    assert r.closed()


def test_starttls_plaintext_injection(petrel):
    r = Raw(petrel.ports["smtp"])
    r.reply()
    r.cmd("EHLO c")
    r.send("STARTTLS\r\nRSET\r\n")
    assert r.code() == 220
    r.starttls()
    # The injected RSET was discarded: the first reply is to our EHLO.
    code, lines = r.cmd("EHLO c")
    assert code == 250 and "Hello" in lines[0]
    assert r.cmd("NOOP")[0] == 250
    assert "RSET" not in petrel.log("smtp-in")


def test_starttls_resets_session(petrel):
    r = Raw(petrel.ports["smtp"])
    r.reply()
    r.cmd("EHLO c")
    r.cmd("STARTTLS")
    r.starttls()
    assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 503  # HELO forgotten


def test_sessions_per_ip_limit(petrel):
    petrel.set("smtp.max_sessions_per_ip", "3")
    conns = [Raw(petrel.ports["smtp"]) for _ in range(3)]
    for c in conns:
        assert c.code() == 220
    extra = Raw(petrel.ports["smtp"])
    code, lines = extra.reply()
    assert code == 421 and "4.7.0" in lines[0]
    for c in conns:
        c.close()


def test_thousand_idle_sessions(petrel):
    # One client IP: lift the per-IP limits (screening's too).
    petrel.set("smtp.max_sessions_per_ip", "2000")
    petrel.set("screening.max_connections_per_ip", "2000")
    petrel.set("screening.max_connects_per_minute", "0")
    conns = []
    try:
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", petrel.ports["smtp"]))
            conns.append(s)
        for s in conns:
            s.settimeout(20)
            assert s.recv(100).startswith(b"220")
        # The server still answers a new client at once.
        with smtplib.SMTP("127.0.0.1", petrel.ports["smtp"], timeout=10) as c:
            assert c.noop()[0] == 250
    finally:
        for s in conns:
            s.close()


def test_swaks_inbound(petrel):
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{petrel.ports['smtp']}",
                        "--from", "x@remote.test", "--to", "alice@example.test",
                        "--header", "Subject: swaks test"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert petrel.messages("alice@example.test")


def test_swaks_submission_tls_auth(petrel):
    r = subprocess.run(["swaks", "--server",
                        f"127.0.0.1:{petrel.ports['submission']}", "--tls",
                        "--auth", "PLAIN", "--auth-user", "alice@example.test",
                        "--auth-password", PW, "--from", "alice@example.test",
                        "--to", "bob@example.test"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert petrel.messages("bob@example.test")


def test_log_search_by_message_id(petrel):
    submit(petrel, msg="From: alice@example.test\r\nMessage-ID: <trace-me@x.test>"
                       "\r\n\r\nx\r\n")
    # The delivery is after the 250: wait for its line.
    assert wait_for(lambda: "delivered to <bob@example.test>" in
                    petrel.log("system"))
    out = petrel.ctl.ok("log", "search", "<trace-me@x.test>")
    assert "<-- ehlo" in out.lower()
    assert "authenticated as alice@example.test" in out
    m = re.search(r"saved <Message-ID: <trace-me@x\.test>> as ([0-9A-F]{18})",
                  out)
    assert m, out
    qid = m.group(1)
    # The search follows the queue id to the delivery lines.
    assert re.search(rf"^system +\S+ \S+ {qid} \*\*\* delivered to "
                     r"<bob@example\.test>", out, re.M), out
    # Without the angle brackets, and by queue id, the same lines.
    assert petrel.ctl.ok("log", "search", "trace-me@x.test") == out
    assert petrel.ctl.ok("log", "search", qid) == out
    # Another message's session is not shown.
    assert "QUIT" in out and out.count("*** connect from") == 1
    r = petrel.ctl.run("log", "search", "<never-sent@x.test>")
    assert r.returncode == 1 and "no log line mentions" in r.stderr


def test_kill9_loses_no_acknowledged_message(petrel):
    import threading
    clients, per_client = 4, 40
    acked, lock, killed = [], threading.Lock(), threading.Event()
    errors, cut = [], []  # before the kill; clients the kill stopped

    def client(n):
        for i in range(per_client):
            try:
                with smtplib.SMTP("127.0.0.1", petrel.ports["smtp"],
                                  timeout=10) as c:
                    mid = f"<crash-{n}-{i}@x.test>"
                    c.sendmail("x@remote.test", ["alice@example.test"],
                               f"Message-ID: {mid}\r\nSubject: c\r\n\r\nx\r\n")
                    with lock:
                        acked.append(mid)
            except (OSError, smtplib.SMTPException) as e:
                with lock:
                    (cut if killed.is_set() else errors).append((n, i, e))
                return

    threads = [threading.Thread(target=client, args=(n,))
               for n in range(clients)]
    for t in threads:
        t.start()
    # Killed with an eighth of the messages in, every client sending.
    assert wait_for(lambda: len(acked) >= 5 * clients, timeout=30, step=0.01)
    killed.set()
    petrel.kill9()
    for t in threads:
        t.join()
    assert not errors, errors
    assert 5 * clients <= len(acked) < clients * per_client
    assert len(cut) == clients, "a client had finished before the kill"
    petrel.start()

    def delivered():
        got = set()
        for f in petrel.maildir("alice@example.test").joinpath("new").glob("*"):
            m = email.message_from_bytes(f.read_bytes())
            got.add(m["Message-ID"])
        return got
    wait_for(lambda: set(acked) <= delivered(), timeout=30)
    missing = set(acked) - delivered()
    assert not missing, f"{len(missing)} acknowledged messages lost"
