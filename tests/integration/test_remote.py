"""Remote delivery and the queue manager, through the real daemon: a DNS
server and SMTP sinks started here on 127.0.0.x (sinks.py), retries on a
schedule of seconds, bounces, delay warnings, null MX, MX preference and
fallback, smarthost with AUTH, STARTTLS levels, restart in mid-queue and
the queue verbs of petrelctl."""
import email
import json
import re
import ssl
import threading
import time

import pytest

from sinks import DnsServer, SmtpSink, make_cert
from smtputil import wait_for
from test_smtp import submit

FAST = {
    "queue.retry_first": "1",
    "queue.retry_max": "2",
    "queue.delay_warning": "off",
    "queue.timeout_connect": "2",
    "queue.timeout_greeting": "2",
    "queue.timeout_command": "2",
    "queue.timeout_data_init": "2",
    "queue.timeout_data_block": "2",
    "queue.timeout_data_done": "2",
}

QID = re.compile(r"as ([0-9A-F]{18})")


@pytest.fixture
def dns():
    d = DnsServer({
        "remote.test": [("MX", 10, "mx1.remote.test")],
        "mx1.remote.test": [("A", "127.0.0.2")],
        "two.test": [("MX", 20, "mx-b.two.test"), ("MX", 10, "mx-a.two.test")],
        "mx-a.two.test": [("A", "127.0.0.3")],
        "mx-b.two.test": [("A", "127.0.0.4")],
        "nomx.test": [("A", "127.0.0.5")],
        "nullmx.test": [("MX", 0, ".")],
        "broken.test": [("SERVFAIL",)],
        "loop.test": [("MX", 10, "mx.example.test")],
        # IPv6: an MX with only an AAAA record, and one with both.
        "six.test": [("MX", 10, "mx6.six.test")],
        "mx6.six.test": [("AAAA", "::1")],
        "dual.test": [("MX", 10, "mx.dual.test")],
        "mx.dual.test": [("AAAA", "::1"), ("A", "127.0.0.3")],
    })
    yield d
    d.close()


@pytest.fixture
def sinks():
    """Sinks on 127.0.0.2-5, all on one port (queue.remote_port)."""
    first = SmtpSink("127.0.0.2")
    made = {"127.0.0.2": first}
    for host in ("127.0.0.3", "127.0.0.4", "127.0.0.5"):
        made[host] = SmtpSink(host, first.port)
    yield made
    for s in made.values():
        s.close()


@pytest.fixture
def remote(petrel_factory, dns, sinks):
    def make(settings=None, **conf):
        s = dict(FAST)
        s["queue.remote_port"] = str(sinks["127.0.0.2"].port)
        s.update(settings or {})
        conf.setdefault("dns_server", dns.address)
        return petrel_factory(settings=s, **conf)
    return make


def send(p, rcpts, subject="hello", sender="alice@example.test",
         body="body line\r\n", extra=""):
    mid = f"<{subject.replace(' ', '-')}.{time.monotonic_ns()}@example.test>"
    msg = (f"From: {sender}\r\nTo: {rcpts[0]}\r\nSubject: {subject}\r\n"
           f"Message-ID: {mid}\r\n{extra}\r\n{body}")
    submit(p, sender=sender, rcpts=rcpts, msg=msg.encode(),
           user="alice@example.test")
    m = re.search(re.escape(mid) + r"> as ([0-9A-F]{18})", p.log("smtp-in"))
    assert m, p.log("smtp-in")[-2000:]
    return m.group(1), mid


def queue(p, name=None):
    args = ["queue", "list"] + ([name] if name else [])
    return json.loads(p.ctl.ok(*args, json=True))


def empty(p):
    return queue(p) == []


def bounces(p, box="alice@example.test", n=1, timeout=15):
    def got():
        files = p.messages(box, timeout=0)
        return files if len(files) >= n else None
    files = wait_for(got, timeout=timeout) or []
    return [email.message_from_bytes(f.read_bytes()) for f in files]


def report(msg):
    """(human text, delivery-status text, headers part) of a DSN."""
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    status = parts[1].get_payload()
    status = "\n".join(str(s) for s in status) if isinstance(status, list) \
        else status
    return parts[0].get_payload(), status, parts[2].get_payload()


# --- routing -------------------------------------------------------------

def test_mx_delivery_with_pipelining_and_log(remote, sinks):
    p = remote()
    qid, mid = send(p, ["friend@remote.test", "other@remote.test"],
                    body=".leading dot\r\n..two\r\nlast\r\n")
    [m] = sinks["127.0.0.2"].wait(1)
    assert m.mail_from == "alice@example.test"
    assert sorted(m.rcpts) == ["friend@remote.test", "other@remote.test"]
    assert "SIZE=" in m.mail_params
    assert m.helo == "mx.example.test"
    # Dot-stuffing on the wire, undone by the receiver.
    assert b"\r\n..leading dot\r\n...two\r\nlast" in m.raw
    assert b"\r\n.leading dot\r\n..two\r\nlast" in m.data
    assert mid.encode() in m.data
    # MAIL, both RCPTs and DATA came in one go (RFC 2920).
    assert any(b[0].startswith("MAIL FROM") and b[-1] == "DATA"
               and len(b) == 4 for b in sinks["127.0.0.2"].batches)
    assert wait_for(lambda: empty(p))
    out = p.log("smtp-out")
    assert "connecting to mx1.remote.test[127.0.0.2]" in out
    assert "(MX 10 for remote.test)" in out
    assert re.search(qid + r": to=<friend@remote\.test> message-id=" +
                     re.escape(mid) + r" status=sent \(", out)
    assert "--> RCPT TO:<friend@remote.test>" in out
    assert "<-- 250 2.0.0 Ok: queued" in out
    # log search follows the message from SMTP-IN to SMTP-OUT.
    found = p.ctl.ok("log", "search", mid)
    assert "smtp-in" in found and "smtp-out" in found
    assert "--> DATA" in found


def test_mx_preference_and_fallback(remote, sinks):
    sinks["127.0.0.3"].greeting = "421 4.3.2 busy"
    p = remote()
    send(p, ["a@two.test"])
    assert len(sinks["127.0.0.4"].wait(1)) == 1
    assert sinks["127.0.0.3"].messages == []
    out = p.log("smtp-out")
    # The best MX (10) was tried first, then the next one.
    assert out.index("mx-a.two.test[127.0.0.3]") < \
        out.index("mx-b.two.test[127.0.0.4]")
    sinks["127.0.0.3"].greeting = "220 ok"
    send(p, ["b@two.test"])
    assert len(sinks["127.0.0.3"].wait(1)) == 1


def test_a_record_fallback_without_mx(remote, sinks):
    p = remote()
    send(p, ["x@nomx.test"])
    assert len(sinks["127.0.0.5"].wait(1)) == 1


def test_null_mx_bounces_at_once(remote, sinks):
    p = remote()
    qid, mid = send(p, ["nobody@nullmx.test"], subject="to null")
    [b] = bounces(p)
    assert b["From"].startswith("Mail Delivery System <MAILER-DAEMON@")
    assert b["Auto-Submitted"] == "auto-replied"
    human, status, headers = report(b)
    assert "nobody@nullmx.test" in human
    assert "Final-Recipient: rfc822; nobody@nullmx.test" in status
    assert "Action: failed" in status and "Status: 5.1.10" in status
    assert "Subject: to null" in str(headers)
    assert b.get("Return-Path") == "<>"
    assert wait_for(lambda: empty(p))
    assert all(not s.messages for s in sinks.values())


def test_mx_pointing_to_ourselves_bounces(remote):
    p = remote()
    send(p, ["x@loop.test"])
    [b] = bounces(p)
    assert "Status: 5.4.6" in report(b)[1]


def test_dns_failure_defers(remote, dns):
    p = remote()
    qid, _ = send(p, ["x@broken.test"])
    j = wait_for(lambda: [m for m in queue(p, "deferred") if m["id"] == qid])
    assert j, queue(p)
    assert "DNS" in j[0]["recipients"][0]["error"] or \
        "looking up" in j[0]["recipients"][0]["error"]


# --- outcomes --------------------------------------------------------------

def test_per_recipient_outcomes(remote, sinks):
    p = remote()
    qid, _ = send(p, ["ok@remote.test", "bad@remote.test", "temp@remote.test"])
    [m] = sinks["127.0.0.2"].wait(1)
    assert m.rcpts == ["ok@remote.test"]
    # 5xx: a bounce for that one recipient, at once.
    [b] = bounces(p)
    status = report(b)[1]
    assert "Final-Recipient: rfc822; bad@remote.test" in status
    assert "temp@remote.test" not in status
    assert "Remote-MTA: dns; mx1.remote.test" in status
    assert "Diagnostic-Code: smtp; " in status and "550 5.1.1" in status

    # 4xx: deferred with its error, retried on the schedule.
    def deferred():
        q = queue(p, "deferred")
        return q and q[0]
    j = wait_for(deferred)
    assert j and j["id"] == qid
    r = {x["address"]: x for x in j["recipients"]}
    assert r["ok@remote.test"]["status"] == "done"
    assert r["bad@remote.test"]["status"] == "failed"
    assert r["temp@remote.test"]["status"] == "pending"
    assert "451 4.2.0" in r["temp@remote.test"]["error"]
    assert j["next_retry"] > 0
    sinks["127.0.0.2"].rcpt = lambda a: "250 2.1.5 Ok"
    assert wait_for(lambda: empty(p), timeout=15), queue(p)
    assert ["temp@remote.test"] in [x.rcpts for x in sinks["127.0.0.2"].messages]


def test_connection_refused_then_bounce_after_lifetime(remote, sinks):
    sinks["127.0.0.5"].close()  # nomx.test: nothing listens
    p = remote({"queue.max_days": "0"})  # one try only
    send(p, ["x@nomx.test"], subject="never")
    [b] = bounces(p)
    status = report(b)[1]
    assert "Status: 4.4.7" in status or "Status: 4.4.1" in status
    assert "Action: failed" in status
    assert "delivery time expired" in report(b)[0]
    assert wait_for(lambda: empty(p))


def test_delay_warning_once(remote, sinks):
    sinks["127.0.0.2"].rcpt = lambda a: "452 4.3.1 full"
    p = remote({"queue.delay_warning": "on", "queue.warn_hours": "0"})
    qid, _ = send(p, ["slow@remote.test"], subject="slow one")
    [w] = bounces(p)
    assert w["Subject"] == "Delayed Mail (still being retried)"
    human, status, _ = report(w)
    assert "Action: delayed" in status and "Will-Retry-Until:" in status
    assert "You need not send it again" in human
    # Retried (attempts grow), but warned only once.
    def attempts():
        q = queue(p)  # once: the queue may change between two reads
        return q and q[0]["recipients"][0]["attempts"] >= 3
    assert wait_for(attempts, timeout=20)
    assert len(p.messages("alice@example.test", timeout=0)) == 1
    sinks["127.0.0.2"].rcpt = lambda a: "250 ok"
    assert wait_for(lambda: empty(p), timeout=15)


def test_hang_and_drop_are_deferred(remote, sinks):
    sinks["127.0.0.2"].data_reply = "hang"
    p = remote()
    qid, _ = send(p, ["x@remote.test"])
    j = wait_for(lambda: queue(p, "deferred"), timeout=15)
    assert j and "timed out" in j[0]["recipients"][0]["error"]
    sinks["127.0.0.2"].data_reply = "drop"
    p.ctl.ok("queue", "retry", qid)
    assert wait_for(lambda: queue(p, "deferred") and "closed" in
                    queue(p, "deferred")[0]["recipients"][0]["error"],
                    timeout=15)
    sinks["127.0.0.2"].data_reply = "250 ok"
    p.ctl.ok("queue", "retry", qid)
    assert wait_for(lambda: empty(p), timeout=15)


def test_helo_fallback_and_no_pipelining(remote, sinks):
    s = sinks["127.0.0.2"]
    s.ehlo_ok = False
    p = remote()
    send(p, ["a@remote.test", "b@remote.test"])
    [m] = s.wait(1)
    assert sorted(m.rcpts) == ["a@remote.test", "b@remote.test"]
    assert "HELO mx.example.test" in s.transcript
    assert "SIZE=" not in m.mail_params
    # One command at a time without PIPELINING.
    assert all(len(b) == 1 for b in s.batches)


def test_eightbit_and_size_limit(remote, sinks):
    s = sinks["127.0.0.2"]
    p = remote()
    send(p, ["a@remote.test"], body="caf\u00e9\r\n")
    [m] = s.wait(1)
    assert "BODY=8BITMIME" in m.mail_params
    s.extensions = ["SIZE 100"]
    send(p, ["big@remote.test"], subject="too big")
    [b] = bounces(p)
    assert "Status: 5.3.4" in report(b)[1]


def test_several_messages_one_connection(remote, sinks):
    s = sinks["127.0.0.2"]
    # While one is sent, the others queue up (with room for a slow,
    # loaded machine to submit them).
    s.data_delay = 2.0
    # The reply to the dot comes after the delay: within the timeout.
    p = remote({"queue.max_per_destination": "1",
                "queue.timeout_data_done": "10"})
    for i in range(4):
        send(p, [f"r{i}@remote.test"], subject=f"m{i}")
    assert len(s.wait(4, timeout=40)) == 4
    assert wait_for(lambda: empty(p))
    out = p.log("smtp-out")
    assert max(len(re.findall(r"--> MAIL FROM", sess)) for sess in
               _sessions(out)) >= 2
    assert s.sessions < 4


def test_active_limit_bounds_attempts_and_the_rest_follow(remote, sinks):
    """queue.active_limit: no more attempts at once than it says, however
    many connections are allowed; what waits in active/ goes out after,
    oldest first, without a retry delay."""
    s = sinks["127.0.0.2"]
    # The first attempts are held at the dot until all six are queued, so
    # that four must wait in active/ whatever the machine's speed.
    s.data_gate = threading.Event()
    p = remote({"queue.active_limit": "2",
                "queue.max_per_destination": "5",
                "queue.timeout_data_done": "40"})
    try:
        for i in range(6):
            send(p, [f"r{i}@remote.test"], subject=f"m{i}")
        assert wait_for(lambda: s.in_data == 2, timeout=20), s.in_data
    finally:
        s.data_gate.set()
    assert len(s.wait(6, timeout=40)) == 6
    assert wait_for(lambda: empty(p))
    assert s.most_in_data == 2, s.most_in_data
    assert "queue scan: " in p.log("system")
    # None was deferred: each went out at its first try.
    stats = json.loads(p.ctl.ok("queue", "stats", json=True))
    assert stats["last_hour"]["delivered"] == 6, stats
    # Those that waited were counted as received all the same.
    assert stats["last_hour"]["received"] == 6, stats
    assert stats["last_hour"]["deferred"] == 0, stats


def _sessions(log):
    by = {}
    for line in log.splitlines():
        parts = line.split(" ", 4)
        if len(parts) >= 4:
            by.setdefault(parts[2], []).append(line)
    return ["\n".join(v) for v in by.values()]


# --- TLS -------------------------------------------------------------------

def _tls_ctx(crt, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    return ctx


def test_starttls_may_and_encrypt(remote, sinks, tmp_path):
    crt, key = make_cert(tmp_path, "mx1.remote.test")
    s = sinks["127.0.0.2"]
    s.tls = _tls_ctx(crt, key)
    p = remote()
    send(p, ["a@remote.test"])
    [m] = s.wait(1)
    assert m.tls
    assert "TLS established: TLS" in p.log("smtp-out")
    # encrypt: a server without STARTTLS is not used.
    p.set("tls.outbound", "encrypt")
    s.tls = None
    qid, _ = send(p, ["b@remote.test"])
    j = wait_for(lambda: queue(p, "deferred"))
    assert j and "STARTTLS" in j[0]["recipients"][0]["error"]
    assert len(s.messages) == 1


def test_starttls_verify(remote, sinks, tmp_path, monkeypatch):
    ca = make_cert(tmp_path, "ca.test")
    crt, key = make_cert(tmp_path, "mx1.remote.test", ca=ca)
    selfsigned = make_cert(tmp_path, "mx-a.two.test")
    sinks["127.0.0.2"].tls = _tls_ctx(crt, key)
    sinks["127.0.0.3"].tls = _tls_ctx(*selfsigned)
    sinks["127.0.0.4"].tls = _tls_ctx(*selfsigned)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca[0]))
    p = remote({"tls.outbound": "verify"})
    send(p, ["a@remote.test"])
    [m] = sinks["127.0.0.2"].wait(1)
    assert m.tls
    send(p, ["a@two.test"])
    j = wait_for(lambda: queue(p, "deferred"))
    assert j and "TLS" in j[0]["recipients"][0]["error"]
    assert not sinks["127.0.0.3"].messages


# --- smarthost -------------------------------------------------------------

def test_smarthost_with_auth(remote, sinks, tmp_path):
    crt, key = make_cert(tmp_path, "relay.test")
    s = sinks["127.0.0.4"]
    s.tls = _tls_ctx(crt, key)
    s.auth = {"petrel": "s3cret word"}
    secret = tmp_path / "relay.auth"
    secret.write_text("petrel s3cret word\n")
    secret.chmod(0o600)
    p = remote(smarthost=f"127.0.0.4:{s.port}",
               smarthost_auth=str(secret))
    send(p, ["a@remote.test", "b@nullmx.test"])
    [m] = s.wait(1)
    assert m.auth == "petrel" and m.tls
    assert sorted(m.rcpts) == ["a@remote.test", "b@nullmx.test"]
    out = p.log("smtp-out")
    assert "s3cret" not in out and "AUTH PLAIN (credentials hidden)" in out
    assert not sinks["127.0.0.2"].messages


def test_smarthost_auth_login_and_refusal(remote, sinks, tmp_path):
    crt, key = make_cert(tmp_path, "relay.test")
    s = sinks["127.0.0.4"]
    s.tls = _tls_ctx(crt, key)
    s.auth = {"petrel": "right"}
    s.auth_mechs = "LOGIN"
    secret = tmp_path / "relay.auth"
    secret.write_text("petrel right\n")
    secret.chmod(0o600)
    p = remote(smarthost=f"127.0.0.4:{s.port}",
               smarthost_auth=str(secret))
    send(p, ["a@remote.test"])
    [m] = s.wait(1)
    assert m.auth == "petrel"
    # Refused credentials: deferred (our configuration), not bounced.
    s.auth = {"petrel": "other"}
    qid, _ = send(p, ["b@remote.test"])
    j = wait_for(lambda: queue(p, "deferred"))
    assert j and "535 5.7.8" in j[0]["recipients"][0]["error"]
    assert "right" not in p.log("smtp-out")


def test_smarthost_auth_file_must_be_private(remote, sinks, tmp_path):
    secret = tmp_path / "relay.auth"
    secret.write_text("petrel pw\n")
    secret.chmod(0o644)
    p = remote(start=False, smarthost="127.0.0.4:25",
               smarthost_auth=str(secret))
    with pytest.raises(AssertionError, match="others can not read"):
        p.start()
    p.proc = None


def test_sigterm_in_mid_delivery(remote, sinks):
    """A connection under way at shutdown closes; the message stays in
    active/ and leaves after the restart, once."""
    s = sinks["127.0.0.2"]
    # The sink takes the dot and answers 3 s later, when petreld has
    # stopped: its 451 comes too late, and the sink records nothing.
    s.data_delay = 3
    s.data_reply = "451 4.3.0 not this one"
    p = remote({"queue.timeout_data_done": "30"})
    qid, mid = send(p, ["x@remote.test"])
    assert wait_for(lambda: s.in_data == 1)
    # For the next session; the one under way keeps its delay and 451.
    s.data_delay = 0
    s.data_reply = "250 ok"
    assert p.stop() == 0
    assert [m["id"] for m in queue(p, "active")] == [qid]
    p.start()
    assert wait_for(lambda: empty(p), timeout=20)
    copies = [m for m in s.messages
              if email.message_from_bytes(m.data)["Message-ID"] == mid]
    assert len(copies) == 1, len(copies)


# --- queues ----------------------------------------------------------------

def test_loop_goes_to_bad_queue(remote, sinks):
    p = remote({"queue.max_hops": "3"})
    qid, _ = send(p, ["x@remote.test"], extra="".join(
        f"Received: from h{i} by h{i + 1}; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        for i in range(3)))
    j = wait_for(lambda: queue(p, "bad"))
    assert j and j[0]["id"] == qid and "mail loop" in j[0]["reason"]
    assert not sinks["127.0.0.2"].messages


def test_frozen_account_is_never_sent(remote, sinks):
    # Retried by petrelctl below, not by the schedule before it.
    p = remote({"queue.retry_first": "600", "queue.retry_max": "600"})
    sinks["127.0.0.2"].greeting = "421 4.3.2 not now"
    qid, _ = send(p, ["x@remote.test"])
    assert wait_for(lambda: queue(p, "deferred"))
    p.ctl.ok("account", "disable", "alice@example.test")
    # The hijack issue freezes accounts; the state is what counts here.
    import sqlite3
    db = sqlite3.connect(p.data_dir / "petrel.db")
    db.execute("UPDATE accounts SET state = 2 WHERE address = ?",
               ("alice@example.test",))
    db.commit()
    db.close()
    sinks["127.0.0.2"].greeting = "220 ok"
    p.ctl.ok("queue", "retry", qid)
    j = wait_for(lambda: queue(p, "hold"))
    assert j and "frozen" in j[0]["reason"]
    assert not sinks["127.0.0.2"].messages


def test_restart_in_mid_queue(remote, sinks):
    s = sinks["127.0.0.2"]
    s.rcpt = lambda a: "451 4.3.0 later"
    p = remote({"queue.retry_first": "3", "queue.retry_max": "3"})
    ids = [send(p, [f"r{i}@remote.test"], subject=f"m{i}")[0]
           for i in range(3)]
    assert wait_for(lambda: len(queue(p, "deferred")) == 3)
    held = ids[2]
    p.ctl.ok("queue", "hold", held)
    p.kill9()
    s.rcpt = lambda a: "250 ok"
    p.start()
    assert len(s.wait(2, timeout=20)) == 2
    # Once the queue holds only the held one, nothing else can go out.
    assert wait_for(lambda: [m["id"] for m in queue(p)] == [held],
                    timeout=20), queue(p)
    assert len(s.messages) == 2  # never twice
    assert [m["id"] for m in queue(p)] == [held]
    p.ctl.ok("queue", "release", held)
    assert len(s.wait(3, timeout=20)) == 3
    assert wait_for(lambda: empty(p))
    assert sorted(r for m in s.messages for r in m.rcpts) == \
        ["r0@remote.test", "r1@remote.test", "r2@remote.test"]


def test_queue_verbs(remote, sinks):
    s = sinks["127.0.0.2"]
    s.greeting = "421 4.3.2 not now"
    p = remote({"queue.retry_first": "600", "queue.retry_max": "600"})
    a, _ = send(p, ["a@remote.test"], subject="first")
    b, _ = send(p, ["b@remote.test"], subject="second")
    assert wait_for(lambda: len(queue(p, "deferred")) == 2)
    out = p.ctl.ok("queue", "list", "deferred")
    assert "next retry" in out and "421 4.3.2" in out
    assert "subject: first" in out and "(1 attempt)" in out
    show = p.ctl.ok("queue", "show", a)
    assert "next retry:" in show and "1 attempt(s)" in show
    stats = json.loads(p.ctl.ok("queue", "stats", json=True))
    assert stats["deferred"]["messages"] == 2
    assert stats["last_hour"]["received"] >= 2
    assert stats["last_hour"]["deferred"] >= 2
    # retry: now, not in ten minutes.
    s.greeting = "220 ok"
    p.ctl.ok("queue", "retry", a)
    assert len(s.wait(1)) == 1
    # bounce: back to the sender at once.
    assert p.ctl.ok("queue", "bounce", b).strip() == f"{b} returned to " \
        "the sender"
    [bn] = bounces(p)
    assert "returned to the sender by the mail administrator" in \
        report(bn)[0]
    assert wait_for(lambda: empty(p))
    stats = json.loads(p.ctl.ok("queue", "stats", json=True))
    assert stats["last_hour"]["delivered"] >= 2
    assert stats["last_hour"]["bounced"] >= 1
    text = p.ctl.ok("queue", "stats")
    assert "last hour" in text


def test_double_bounce_goes_to_the_postmaster(remote, sinks):
    """A bounce that fails itself (its recipient's domain has a null MX)
    goes to the postmaster once; a report never goes to <>."""
    p = remote({"auth.match_return_path": "off",
                "auth.match_from_header": "off"})
    send(p, ["bad@remote.test"], sender="someone@nullmx.test")
    [d] = bounces(p, box="postmaster@example.test")
    human, status, headers = report(d)
    assert "Final-Recipient: rfc822; someone@nullmx.test" in status
    assert "Status: 5.1.10" in status
    # A report is queued before the message it is about leaves, so an
    # empty queue means that every report is delivered.
    assert wait_for(lambda: empty(p))
    assert len(p.messages("postmaster@example.test", timeout=0)) == 1
    assert p.log("system").count(" queued as ") == 2, p.log("system")
    assert p.log("system").count(
        "double bounce (to the postmaster) to <postmaster@example.test> "
        "queued as ") == 1


def test_ipv6_mx_by_aaaa_and_fallback_to_a(remote, sinks):
    """RFC 5321 5.1: an MX host's AAAA address is tried too; when it does
    not answer, its A address is next."""
    six = SmtpSink("::1", sinks["127.0.0.2"].port)
    try:
        p = remote()
        send(p, ["v6@six.test"], subject="over ipv6")
        assert len(six.wait(1, timeout=20)) == 1
        assert "[::1]" in p.log("smtp-out")
        six.close()
        # Nothing listens on ::1 now: the A address takes the message.
        send(p, ["both@dual.test"], subject="dual")
        assert len(sinks["127.0.0.3"].wait(1, timeout=30)) == 1
    finally:
        six.close()
