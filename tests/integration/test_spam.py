"""Spam scoring through spamd: Debian's real spamd (started privately on a
loopback port, network tests off) scoring GTUBE, and a fake spamd for the
paths a real one will not take on demand: a chosen score, down, silent,
garbage, a refusal, and messages over spam.max_kb."""
import smtplib
import time

import pytest

from sinks import DnsServer
from smtputil import Raw
from spamd_util import GTUBE, FakeSpamd, RealSpamd, ask, free_port

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def spamd(tmp_path_factory):
    s = RealSpamd(tmp_path_factory.mktemp("spamd"))
    yield s
    s.close()


@pytest.fixture
def fake():
    made = []

    def make(**kw):
        f = FakeSpamd(**kw)
        made.append(f)
        return f
    yield make
    for f in made:
        f.close()


@pytest.fixture
def dns():
    d = DnsServer({"2.0.0.127.bl.test": [("A", "127.0.0.2")]})
    yield d
    d.close()


def last(r):
    return r.reply()[1][-1]


def message(subject="hello", body="body line\r\n", extra=""):
    mid = f"<{subject.replace(' ', '-')}.{time.monotonic_ns()}@x.test>"
    return mid, (f"From: someone@remote.test\r\nTo: alice@example.test\r\n"
                 f"Subject: {subject}\r\nMessage-ID: {mid}\r\n"
                 f"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n{extra}\r\n{body}")


def deliver(p, msg, source="127.0.0.1"):
    """Returns the reply to the end of DATA."""
    r = Raw(p.ports["smtp"], source=source, timeout=60)
    assert last(r).startswith("220")
    for cmd in ("EHLO client.test", "MAIL FROM:<someone@remote.test>",
                "RCPT TO:<alice@example.test>"):
        r.send(cmd + "\r\n")
        assert last(r).startswith("250"), cmd
    r.send("DATA\r\n")
    assert last(r).startswith("354")
    r.send(msg + ".\r\n")
    data = last(r)
    r.send("QUIT\r\n")
    return data


def stored(p):
    files = p.messages("alice@example.test")
    assert files
    return max(files, key=lambda f: f.stat().st_mtime).read_text() \
        .replace("\n\t", "")


def test_real_spamd_scores_gtube_1000(spamd):
    reply = ask(spamd.port, ("Subject: test\r\n\r\n" + GTUBE + "\r\n")
                .encode())
    assert reply.startswith(b"SPAMD/1.1 0 EX_OK")
    assert b"GTUBE" in reply
    score = float(reply.split(b"Spam: True ; ")[1].split(b" /")[0])
    assert score >= 1000


def test_gtube_refused_at_end_of_data(petrel_factory, spamd):
    p = petrel_factory({"spam.spamd": spamd.address})
    mid, msg = message("gtube", body=GTUBE + "\r\n")
    reply = deliver(p, msg)
    assert reply.startswith("550 5.7.1")
    assert p.messages("alice@example.test", timeout=0.5) == []
    log = p.log("smtp-in")
    assert "spamd: score 10" in log and "GTUBE" in log
    out = p.ctl.ok("log", "search", mid)
    assert "GTUBE" in out and "refused" in out and "550 5.7.1" in out


def test_real_spamd_ham_gets_headers(petrel_factory, spamd):
    p = petrel_factory({"spam.spamd": spamd.address})
    mid, msg = message("lunch", body="Shall we meet at noon?\r\n")
    assert deliver(p, msg).startswith("250")
    text = stored(p)
    assert "X-Spam-Status: No, score=" in text
    assert "X-Spam-Score: " in text
    assert "X-Spam-Flag" not in text
    assert "spam score " in p.log("smtp-in")


def test_fake_score_plus_dnsbl_weight_tags(petrel_factory, fake, dns):
    f = fake(score=3.0, symbols="FAKE_RULE,OTHER_RULE")
    p = petrel_factory({"spam.spamd": f.address,
                        "dnsbl.zones": "bl.test:2", "dnsbl.action": "score",
                        "smtp.rdns_timeout_ms": "0"},
                       dns_server=dns.address)
    mid, msg = message("offer", extra="X-Spam-Flag: NO\r\n")
    assert deliver(p, msg, source="127.0.0.2").startswith("250")
    text = stored(p)
    assert ("X-Spam-Status: Yes, score=5.0 required=5.0 "
            "tests=DNSBL_bl.test,FAKE_RULE,OTHER_RULE") in text
    assert "X-Spam-Flag: YES" in text and "X-Spam-Flag: NO" not in text
    assert "Subject: ***SPAM*** offer" in text
    # spamd got the message without the client's X-Spam-* fields.
    line, body = f.requests[0]
    assert line == "SYMBOLS SPAMC/1.5"
    assert b"Subject: offer" in body and b"X-Spam-Flag" not in body
    assert "spamd: score 3.0 (its own threshold 5.0), rules " \
        "FAKE_RULE,OTHER_RULE" in p.log("smtp-in")


def test_spamd_down_is_not_scored_not_refused(petrel_factory):
    p = petrel_factory({"spam.spamd": f"127.0.0.1:{free_port()}"})
    assert deliver(p, message()[1]).startswith("250")
    assert "X-Spam-" not in stored(p)
    log = p.log("smtp-in")
    assert "spamd: spamd refused the connection; message not scored by " \
        "spamd" in log
    assert "spam: message not scored" in log


def test_spamd_timeout(petrel_factory, fake):
    f = fake(mode="hang")
    p = petrel_factory({"spam.spamd": f.address, "spam.timeout_ms": "500"})
    t0 = time.monotonic()
    assert deliver(p, message()[1]).startswith("250")
    assert time.monotonic() - t0 < 5
    assert "spamd: spamd timed out; message not scored by spamd" in \
        p.log("smtp-in")
    assert "X-Spam-" not in stored(p)


@pytest.mark.parametrize("mode,why", [
    ("garbage", "not a spamd reply"),
    ("refuse", "spamd refused the request"),
])
def test_spamd_bad_replies(petrel_factory, fake, mode, why):
    f = fake(mode=mode)
    p = petrel_factory({"spam.spamd": f.address})
    assert deliver(p, message()[1]).startswith("250")
    assert f"spamd: {why}; message not scored by spamd" in p.log("smtp-in")


def test_over_max_kb_is_not_sent_to_spamd(petrel_factory, fake):
    f = fake(score=50)
    p = petrel_factory({"spam.spamd": f.address, "spam.max_kb": "1"})
    big = ("x" * 70 + "\r\n") * 40  # about 2.9 KB
    assert deliver(p, message(body=big)[1]).startswith("250")
    assert f.requests == []
    assert "over spam.max_kb (1 KB); message not scored by spamd" in \
        p.log("smtp-in")
    # A small one is scored (and refused: 50 >= 12).
    assert deliver(p, message()[1]).startswith("550 5.7.1")
    assert len(f.requests) == 1


def test_authenticated_scored_only_when_asked(petrel_factory, fake):
    f = fake(score=6.0)
    p = petrel_factory({"spam.spamd": f.address})

    def submit():
        with smtplib.SMTP("127.0.0.1", p.ports["submission"],
                          timeout=30) as c:
            c.starttls()
            c.login("alice@example.test", PASSWORD)
            c.sendmail("alice@example.test", ["bob@example.test"],
                       b"From: alice@example.test\r\n"
                       b"To: bob@example.test\r\nSubject: auth\r\n\r\nhi\r\n")

    submit()
    assert f.requests == []
    assert "spam: not scored, authenticated session" in p.log("smtp-in")
    p.set("spam.score_authenticated", "on")
    submit()
    assert len(f.requests) == 1
    deadline = time.monotonic() + 10
    while len(p.messages("bob@example.test")) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    texts = [m.read_text() for m in p.messages("bob@example.test")]
    assert any("X-Spam-Status: Yes, score=6.0" in t for t in texts)
