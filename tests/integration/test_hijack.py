"""Hijack detection through the real daemon: bursts over authenticated
sessions, throttle and freeze, the alert to the postmaster, re-activation
by replying to it, exemptions, the window across a restart, and
petrelctl hijack."""
import json
import re
import threading
from email import message_from_bytes
from email.header import decode_header, make_header

from smtputil import AuthSession, Raw, wait_for

PW = "correct horse battery staple"
ALICE = "alice@example.test"
BOB = "bob@example.test"
PM = "postmaster@example.test"


def hijack_petrel(petrel_factory, **settings):
    s = {"auth.allow_plaintext": "on", "hijack.max_messages": "5",
         "hijack.minutes": "30"}
    s.update(settings)
    return petrel_factory(settings=s)


def Session(petrel, user=ALICE, source="127.0.0.1"):
    """An authenticated submission session of the demo password."""
    return AuthSession(petrel.ports["submission"], user, PW, source)


def state(petrel, account):
    return json.loads(petrel.ctl.ok("account", "show", account,
                                    json=True))


def alert_for(petrel, account, timeout=10):
    """The hijack alert in the postmaster's mailbox (parsed), waiting."""
    def find():
        new = petrel.maildir(PM) / "new"
        for f in sorted(new.glob("*")) if new.exists() else []:
            m = message_from_bytes(f.read_bytes())
            if account in str(make_header(decode_header(m["Subject"] or ""))) \
                    and "frozen" in (m["Subject"] or ""):
                return m
        return None
    return wait_for(find, timeout=timeout)


def queue(petrel, name):
    return json.loads(petrel.ctl.ok("queue", "list", name, json=True))


def test_freeze_at_the_limit_in_one_session(petrel_factory):
    p = hijack_petrel(petrel_factory)
    s = Session(p)
    assert s.auth == 235
    # Exactly max_messages are accepted; the next one crosses the limit.
    for i in range(5):
        assert s.send(subject=f"offer {i}") == 250
    assert s.send(subject="offer 5") == 550
    assert s.r.closed()
    a = state(p, ALICE)
    assert a["state"] == "frozen"
    assert "hijack" in a["state_reason"]
    sec = p.log("security")
    assert sec.count("account frozen: account=alice@example.test") == 1
    assert "limit=messages messages=6/5" in sec
    # It can no longer log in, on SMTP or POP3.
    s2 = Session(p)
    assert s2.auth == 535
    s2.close()
    import poplib
    pop = poplib.POP3("127.0.0.1", p.ports["pop3"], timeout=10)
    pop.user(ALICE)
    try:
        pop.pass_(PW)
        raise AssertionError("a frozen account logged in over POP3")
    except poplib.error_proto as e:
        assert e.args[0].startswith(b"-ERR [SYS/PERM] Account is frozen"), e
    pop.quit()
    # Mail to it is still accepted.
    r = Raw(p.ports["smtp"])
    r.reply()
    r.cmd("EHLO mx.test")
    assert r.cmd("MAIL FROM:<someone@elsewhere.test>")[0] == 250
    assert r.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    assert r.cmd("Subject: for alice\r\n\r\nstill reaches her\r\n.")[0] == 250
    r.close()


def test_alert_contents_and_held_mail(petrel_factory):
    p = hijack_petrel(petrel_factory, **{"hijack.max_messages": "3",
                                         "hijack.notify": "bob@example.test"})
    s = Session(p)
    # Remote mail waits in the queue (the test resolver never answers).
    for i in range(3):
        assert s.send(rcpts=(f"victim{i}@remote{i % 2}.test",),
                      subject=f"Cheap watches {i}") == 250
    assert s.send(rcpts=("x@remote0.test",)) == 550
    s.close()
    m = alert_for(p, ALICE)
    assert m is not None, "no alert reached the postmaster"
    subject = str(make_header(decode_header(m["Subject"])))
    assert ALICE in subject
    assert m["Auto-Submitted"] == "auto-generated"
    reply_to = m["Reply-To"]
    assert re.fullmatch(r"<reactivate\+[a-z2-7]{26}@example\.test>", reply_to)
    body = m.get_payload(decode=True).decode()
    assert "messages:   4 (limit 3)" in body
    assert "127.0.0.1: 3" in body
    for i in range(3):
        assert f"Cheap watches {i}" in body
    assert "remote0.test: 2 messages" in body
    assert "remote1.test: 1 messages" in body
    assert "3 message(s) from the account" in body
    assert "petrelctl hijack release alice@example.test" in body
    # The token is a credential: in no log.
    token = reply_to.strip("<>").split("@")[0]
    for log in ("smtp-in", "smtp-out", "security", "system"):
        assert token not in p.log(log)
    # hijack.notify got it too.
    assert p.messages(BOB)
    # What alice had queued is on hold.
    held = queue(p, "hold")
    assert len([m for m in held if m["sender"] == ALICE]) == 3
    assert not [m for m in queue(p, "active") + queue(p, "deferred")
                if m["sender"] == ALICE]
    listing = p.ctl.ok("hijack", "list")
    assert ALICE in listing and "held 3" in listing


def test_throttle_refuses_with_452_and_keeps_the_session(petrel_factory):
    p = hijack_petrel(petrel_factory, **{"hijack.action": "throttle",
                                         "hijack.max_messages": "3"})
    s = Session(p)
    assert [s.send() for _ in range(3)] == [250, 250, 250]
    assert s.send() == 452
    assert s.send() == 452
    assert s.r.cmd("NOOP")[0] == 250
    s.close()
    assert state(p, ALICE)["state"] == "enabled"
    assert "account frozen" not in p.log("security")
    # The window reaches the directory within a poll tick.
    assert wait_for(lambda: "3/3 messages" in p.ctl.ok("account", "show",
                                                       ALICE))


def test_parallel_sessions_let_exactly_the_limit_through(petrel_factory):
    p = hijack_petrel(petrel_factory, **{"hijack.max_messages": "25",
                                         "smtp.max_sessions_per_ip": "100",
                                         "screening.max_connections_per_ip":
                                         "100"})
    results = []
    lock = threading.Lock()
    # Logged in first (argon2id takes its time), then all send at once.
    sessions = [Session(p) for _ in range(50)]
    assert all(s.auth == 235 for s in sessions)
    start = threading.Barrier(len(sessions))

    def worker(s):
        start.wait()
        try:
            for _ in range(3):
                try:
                    code = s.send()
                except Exception:
                    code = None
                with lock:
                    results.append(code)
                if code != 250:
                    break
        finally:
            s.close()
    threads = [threading.Thread(target=worker, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(250) == 25
    assert state(p, ALICE)["state"] == "frozen"
    assert p.log("security").count("account frozen:") == 1


def test_one_message_to_many_recipients_is_a_burst(petrel_factory):
    p = hijack_petrel(petrel_factory, **{"hijack.max_recipients": "5"})
    s = Session(p)
    assert s.send(rcpts=[f"u{i}@remote.test" for i in range(4)] +
                  [BOB]) == 250
    assert s.send(rcpts=("postmaster@example.test",)) == 550
    s.close()
    assert "limit=recipients messages=2/5 recipients=6/5" in p.log("security")


def test_many_client_ips_freeze(petrel_factory):
    p = hijack_petrel(petrel_factory, **{"hijack.max_ips": "2"})
    for ip in ("127.0.0.2", "127.0.0.3"):
        s = Session(p, source=ip)
        assert s.send() == 250
        s.close()
    s = Session(p, source="127.0.0.4")
    assert s.auth == 235
    assert s.send() == 550
    s.close()
    assert "limit=client IPs" in p.log("security")
    m = alert_for(p, ALICE)
    body = m.get_payload(decode=True).decode()
    for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        assert ip in body


def test_private_limits_count_apart(petrel_factory):
    # Loopback is a reserved range: with private limits set, those apply.
    p = hijack_petrel(petrel_factory, **{"hijack.max_messages": "2",
                                         "hijack.private_max_messages": "4"})
    s = Session(p)
    assert [s.send() for _ in range(4)] == [250] * 4
    assert s.send() == 550
    s.close()


def freeze(p, n=3, rcpts=("x@remote.test",)):
    s = Session(p)
    for i in range(n):
        assert s.send(rcpts=rcpts, subject=f"spam {i}") == 250
    assert s.send(rcpts=rcpts) == 550
    s.close()
    m = alert_for(p, ALICE)
    assert m is not None
    wait_for(lambda: len([x for x in queue(p, "hold")
                          if x["sender"] == ALICE]) == n)
    return m["Reply-To"].strip("<>")


def reply(p, to, word, user=PM):
    s = Session(p, user=user)
    assert s.auth == 235
    code = s.r.cmd(f"MAIL FROM:<{user}>")[0]
    assert code == 250
    code, text = s.r.cmd(f"RCPT TO:<{to}>")
    if code != 250:
        s.close()
        return code, " ".join(text)
    assert s.r.cmd("DATA")[0] == 354
    code, text = s.r.cmd(f"From: <{user}>\r\nTo: <{to}>\r\n"
                         f"Subject: Re: alert\r\n\r\n{word}\r\n\r\n"
                         f"> The account was frozen\r\n.")
    s.close()
    return code, " ".join(text)


def test_reply_release_sends_held_mail_on(petrel_factory):
    p = hijack_petrel(petrel_factory, **{"hijack.max_messages": "3"})
    to = freeze(p)
    code, text = reply(p, to, "release")
    assert code == 250, text
    assert "re-activated" in text and "3 held message(s) released" in text
    assert state(p, ALICE)["state"] == "enabled"
    assert not [x for x in queue(p, "hold") if x["sender"] == ALICE]
    assert len([x for x in queue(p, "active") + queue(p, "deferred")
                if x["sender"] == ALICE]) == 3
    # The window starts anew: alice can send 3 again.
    s = Session(p)
    assert s.auth == 235
    assert [s.send() for _ in range(3)] == [250] * 3
    s.close()
    # A confirmation went to the postmaster.
    assert wait_for(lambda: any(b"re-activated" in f.read_bytes()
                                for f in (p.maildir(PM) / "new").glob("*")))
    # The token works once.
    code, text = reply(p, to, "release")
    assert code == 550
    assert "5.7.1 Re-activation refused: token already used" in text, text


def test_reply_delete_discards_held_mail(petrel_factory):
    p = hijack_petrel(petrel_factory, **{"hijack.max_messages": "2"})
    to = freeze(p, n=2)
    code, text = reply(p, to, "Delete")
    assert code == 250, text
    assert "2 held message(s) deleted" in text
    assert not [x for x in queue(p, "hold") if x["sender"] == ALICE]
    assert state(p, ALICE)["state"] == "enabled"


def test_reply_ok_leaves_held_mail_held(petrel_factory):
    p = hijack_petrel(petrel_factory, **{"hijack.max_messages": "2"})
    to = freeze(p, n=2)
    code, text = reply(p, to, "OK, thanks")
    assert code == 250, text
    assert "left on hold" in text
    assert len([x for x in queue(p, "hold") if x["sender"] == ALICE]) == 2
    assert state(p, ALICE)["state"] == "enabled"


def test_reply_from_another_account_changes_nothing(petrel_factory):
    p = hijack_petrel(petrel_factory, **{"hijack.max_messages": "2"})
    to = freeze(p, n=2)
    code, text = reply(p, to, "release", user=BOB)
    assert code == 550, text
    assert "5.7.1 Only the postmaster or an admin of example.test may " \
           "re-activate its accounts" in text
    assert state(p, ALICE)["state"] == "frozen"
    assert f"reply to a hijack alert refused: ip=127.0.0.1 account={BOB} " \
           "domain=example.test" in p.log("security")
    # The token is still good for the postmaster.
    code, text = reply(p, to, "release")
    assert code == 250, text


def test_reply_with_an_unknown_token(petrel_factory):
    p = hijack_petrel(petrel_factory, **{"hijack.max_messages": "2"})
    to = freeze(p, n=2)
    code, text = reply(p, "reactivate+" + "a" * 26 + "@example.test",
                       "release")
    assert code == 550, text
    assert "5.7.1 Re-activation refused: unknown token" in text
    assert state(p, ALICE)["state"] == "frozen"
    # The real token still works. (Its expiry, hijack.token_hours, is
    # tested on the injected clock: tests/unit/test_hijacking.c.)
    code, text = reply(p, to, "release")
    assert code == 250, text
    assert state(p, ALICE)["state"] == "enabled"


def test_exemptions(petrel_factory):
    p = hijack_petrel(petrel_factory, **{"hijack.max_messages": "2",
                                         "hijack.exempt": "*@example.test"})
    s = Session(p)
    assert [s.send() for _ in range(4)] == [250] * 4
    s.close()
    p.set("hijack.exempt", "")
    s = Session(p, user=PM)  # the postmaster is always exempt
    assert [s.send() for _ in range(4)] == [250] * 4
    s.close()


def test_window_survives_a_restart(petrel_factory):
    p = hijack_petrel(petrel_factory, **{"hijack.max_messages": "4"})
    s = Session(p)
    assert [s.send() for _ in range(3)] == [250] * 3
    s.close()
    assert p.stop() == 0
    p.start()
    s = Session(p)
    assert s.send() == 250
    assert s.send() == 550
    s.close()


def test_petrelctl_release(petrel_factory):
    p = hijack_petrel(petrel_factory, **{"hijack.max_messages": "2"})
    freeze(p, n=2)
    out = p.ctl.ok("hijack", "release", ALICE, "--release-held")
    assert "2 held message(s) released" in out
    assert state(p, ALICE)["state"] == "enabled"
    assert "re-activated by an administrator" in wait_for(
        lambda: p.log("security") if "re-activated by an administrator"
        in p.log("security") else None)
    s = Session(p)
    assert s.auth == 235
    assert [s.send() for _ in range(2)] == [250, 250]
    s.close()
    r = p.ctl.run("hijack", "release", ALICE)
    assert r.returncode == 1 and "not frozen" in r.stderr


def test_alert_counts_each_recipient_domain_once_per_message(petrel_factory):
    """Top recipient domains: a domain named by several recipients of one
    message (in any case) counts once for that message."""
    p = hijack_petrel(petrel_factory, **{"hijack.max_messages": "2"})
    freeze(p, n=2, rcpts=("a@remote.test", "b@REMOTE.test", "c@other.test",
                          "d@remote.test", "e@third.test"))
    m = alert_for(p, ALICE)
    part = m.get_payload(0) if m.is_multipart() else m
    text = part.get_payload(decode=True).decode()
    block = text.split("Top recipient domains:\n", 1)[1].split("\n\n", 1)[0]
    assert sorted(block.splitlines()) == [
        "  other.test: 2 messages", "  remote.test: 2 messages",
        "  third.test: 2 messages"], block
