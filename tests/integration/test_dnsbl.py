"""DNSBL checks, driven through the real daemon with a local DNS server
serving test blocklist zones: refusal at RCPT with the zone's text,
exemptions (AUTH, trusted hosts), score-only, 127/8-only answers,
timeouts, the TTL cache, Received header IPs (IPv6 nibbles too), the
X-Spam-* headers, and the transcript that `petrelctl log search` shows.
Clients connect from 127.0.0.2 (listed) or 127.0.0.1 (not listed)."""
import re
import smtplib
import time

import pytest

from sinks import DnsServer
from smtputil import Raw, wait_for

PASSWORD = "correct horse battery staple"


def nibbles(ip6, zone):
    import ipaddress
    h = ipaddress.IPv6Address(ip6).exploded.replace(":", "")
    return ".".join(reversed(h)) + "." + zone


ZONE = {
    # bl.test lists 127.0.0.2, 203.0.113.5 and 2001:db8::25
    "2.0.0.127.bl.test": [("A", "127.0.0.2"),
                          ("TXT", "Listed for testing: 127.0.0.2")],
    "5.113.0.203.bl.test": [("A", "127.0.0.3"), ("TXT", "rcvd listing")],
    nibbles("2001:db8::25", "bl.test"): [("A", "127.0.0.4")],
    # a wildcard answer outside 127/8 is no listing
    "2.0.0.127.wild.test": [("A", "192.0.2.1")],
    # the error code of a zone that refuses the query
    "2.0.0.127.err.test": [("A", "127.255.255.254")],
    # never answers
    "2.0.0.127.slow.test": [("TIMEOUT",)],
    "2.0.0.127.fail.test": [("SERVFAIL",)],
    # short TTLs for the cache test
    "2.0.0.127.ttl.test": [("A", "127.0.0.2", 2), ("TXT", "short", 2)],
}


@pytest.fixture
def dns():
    d = DnsServer(ZONE, negative_ttl=2)
    yield d
    d.close()


@pytest.fixture
def mx(petrel_factory, dns):
    def make(settings=None, **conf):
        s = {"smtp.rdns_timeout_ms": "0"}
        s.update(settings or {})
        return petrel_factory(settings=s, dns_server=dns.address, **conf)
    return make


def message(subject="hello", mid=None, extra=""):
    mid = mid or f"<{subject.replace(' ', '-')}.{time.monotonic_ns()}@x.test>"
    return mid, (f"From: someone@remote.test\r\nTo: alice@example.test\r\n"
                 f"Subject: {subject}\r\nMessage-ID: {mid}\r\n{extra}\r\n"
                 f"body line\r\n")


def last(r):
    """The last line of the next reply."""
    return r.reply()[1][-1]


def session(p, source, port="smtp"):
    r = Raw(p.ports[port], source=source)
    assert last(r).startswith("220")
    r.send("EHLO client.test\r\n")
    assert last(r).startswith("250")
    return r


def deliver(p, source, msg):
    """MAIL, RCPT, DATA from source; returns (rcpt reply, data reply)."""
    r = session(p, source)
    r.send("MAIL FROM:<someone@remote.test>\r\n")
    assert last(r).startswith("250")
    r.send("RCPT TO:<alice@example.test>\r\n")
    rcpt = last(r)
    if not rcpt.startswith("250"):
        r.send("QUIT\r\n")
        return rcpt, None
    r.send("DATA\r\n")
    assert last(r).startswith("354")
    r.send(msg + ".\r\n")
    data = last(r)
    r.send("QUIT\r\n")
    return rcpt, data


def last_message(p, n=1):
    files = []
    deadline = time.monotonic() + 10
    while len(files) < n and time.monotonic() < deadline:
        files = p.messages("alice@example.test")
        time.sleep(0.05)
    assert len(files) >= n
    return sorted(files, key=lambda f: f.stat().st_mtime)[-1].read_text()


def test_listed_client_refused_at_rcpt_with_the_zone_text(mx):
    p = mx({"dnsbl.zones":
            "bl.test:8:Blocked, see https://bl.test/lookup?ip=%s",
            "dnsbl.action": "reject"})
    rcpt, _ = deliver(p, "127.0.0.2", message()[1])
    assert rcpt == ("554 5.7.1 Blocked, see "
                    "https://bl.test/lookup?ip=127.0.0.2")
    log = p.log("smtp-in")
    assert ('DNSBL bl.test: 127.0.0.2 listed (127.0.0.2, "Listed for '
            'testing: 127.0.0.2"), weight 8.0') in log
    assert "RCPT refused: client 127.0.0.2 listed by bl.test" in log
    # Not listed (NXDOMAIN): accepted.
    mid, msg = message("clean")
    rcpt, data = deliver(p, "127.0.0.1", msg)
    assert rcpt.startswith("250") and data.startswith("250")
    assert "DNSBL bl.test: 127.0.0.1 not listed" in p.log("smtp-in")
    text = last_message(p)
    assert "X-Spam-Status: No, score=0.0 required=5.0 tests=none" in text


def test_zone_without_text_gets_the_default_refusal(mx):
    p = mx({"dnsbl.zones": "bl.test", "dnsbl.action": "reject"})
    rcpt, _ = deliver(p, "127.0.0.2", message()[1])
    assert rcpt == ("554 5.7.1 Service unavailable; client [127.0.0.2] "
                    "blocked using bl.test")


def test_authenticated_session_is_never_refused(mx):
    p = mx({"dnsbl.zones": "bl.test:8:Blocked", "dnsbl.action": "reject"})
    with smtplib.SMTP("127.0.0.1", p.ports["submission"],
                      source_address=("127.0.0.2", 0), timeout=10) as c:
        c.starttls()
        c.login("alice@example.test", PASSWORD)
        refused = c.sendmail("alice@example.test", ["bob@example.test"],
                             b"From: alice@example.test\r\n"
                             b"To: bob@example.test\r\nSubject: auth\r\n"
                             b"\r\nhi\r\n")
        assert refused == {}
    log = p.log("smtp-in")
    assert "DNSBL listing not refused: authenticated session" in log
    # Authenticated mail is not scored (spam.score_authenticated off).
    assert "spam: not scored, authenticated session" in log
    text = p.messages("bob@example.test")[0].read_text()
    assert "X-Spam-" not in text


def test_trusted_host_is_never_refused(mx):
    p = mx({"dnsbl.zones": "bl.test:8:Blocked", "dnsbl.action": "reject",
            "trusted.hosts": "127.0.0.2"})
    rcpt, data = deliver(p, "127.0.0.2", message()[1])
    assert rcpt.startswith("250") and data.startswith("250")
    log = p.log("smtp-in")
    assert "DNSBL listing not refused: trusted host" in log
    assert "spam: DNSBL weights not counted, trusted host" in log
    # Nothing else scored it (no spamd): no X-Spam-* fields.
    assert "spam: message not scored" in log
    assert "X-Spam-" not in last_message(p)


def test_score_action_adds_the_weight_and_tags(mx):
    p = mx({"dnsbl.zones": "bl.test:6:Blocked", "dnsbl.action": "score"})
    mid, msg = message("cheap pills", extra="X-Spam-Flag: NO\r\n"
                       "X-Spam-Status: No, score=-100\r\n")
    rcpt, data = deliver(p, "127.0.0.2", msg)
    assert rcpt.startswith("250") and data.startswith("250")
    text = last_message(p)
    assert "Subject: ***SPAM*** cheap pills" in text
    assert "X-Spam-Flag: YES" in text
    assert "X-Spam-Score: 6.0" in text
    assert ("X-Spam-Status: Yes, score=6.0 required=5.0 "
            "tests=DNSBL_bl.test") in text
    # The client's own X-Spam-* fields are gone.
    assert "X-Spam-Flag: NO" not in text and "score=-100" not in text
    log = p.log("smtp-in")
    assert ("spam score 6.0 (tag at 5.0, refuse at 12.0), "
            f"tests=DNSBL_bl.test, Message-ID {mid}: tagged as spam") in log
    # The score line comes before the 250.
    sid = re.search(r" (\S+) \*\*\* spam score 6\.0", log).group(1)
    lines = [l for l in log.splitlines() if f" {sid} " in l]
    score_at = next(i for i, l in enumerate(lines) if "spam score" in l)
    ok_at = next(i for i, l in enumerate(lines) if "--> 250 2.0.0" in l)
    assert score_at < ok_at


def test_subject_tag_setting_and_thresholds(mx):
    p = mx({"dnsbl.zones": "bl.test:3", "dnsbl.action": "score",
            "spam.tag_score": "2.5", "spam.subject_tag": "[SPAM]"})
    rcpt, data = deliver(p, "127.0.0.2", message("offer")[1])
    assert data.startswith("250")
    text = last_message(p)
    assert "Subject: [SPAM] offer" in text
    assert "X-Spam-Status: Yes, score=3.0 required=2.5" in text


def test_reject_score_refuses_at_end_of_data_and_log_search(mx):
    p = mx({"dnsbl.zones": "bl.test:13:Blocked", "dnsbl.action": "score"})
    mid, msg = message("very spammy")
    rcpt, data = deliver(p, "127.0.0.2", msg)
    assert rcpt.startswith("250")
    assert data.startswith("550 5.7.1 ")
    assert p.messages("alice@example.test", timeout=0.5) == []
    out = p.ctl.ok("log", "search", mid)
    assert "DNSBL bl.test: 127.0.0.2 listed" in out
    assert "spam score 13.0" in out and "refused" in out
    assert "550 5.7.1" in out


def test_only_127_answers_count_and_failures_are_logged(mx):
    p = mx({"dnsbl.zones": "wild.test:9, err.test:9, slow.test:9, "
            "fail.test:9, bl.test:1",
            "dnsbl.action": "reject", "dnsbl.timeout_ms": "400"})
    t0 = time.monotonic()
    r = Raw(p.ports["smtp"], source="127.0.0.2")
    assert last(r).startswith("220")
    # The greeting waited for the slow zone, no longer than the timeout.
    assert time.monotonic() - t0 < 3
    r.send("QUIT\r\n")
    log = p.log("smtp-in")
    assert "DNSBL wild.test: 127.0.0.2 not listed" in log
    assert ("DNSBL err.test: 127.0.0.2 query refused by the zone "
            "(127.255.255.254)") in log
    assert "DNSBL slow.test: 127.0.0.2 timed out" in log
    assert "DNSBL fail.test: 127.0.0.2 temporary DNS failure" in log
    assert "DNSBL bl.test: 127.0.0.2 listed" in log
    # Only bl.test counts: weight 1 with action score.
    p.set("dnsbl.action", "score")
    rcpt, data = deliver(p, "127.0.0.2", message()[1])
    assert data.startswith("250")
    assert "X-Spam-Status: No, score=1.0 required=5.0 tests=DNSBL_bl.test" \
        in last_message(p)


def test_cache_honours_the_ttl(mx, dns):
    p = mx({"dnsbl.zones": "ttl.test:1", "dnsbl.action": "score"})
    listed = 'DNSBL ttl.test: 127.0.0.2 listed (127.0.0.2, "short"), ' \
        'weight 1.0'
    clean = "DNSBL ttl.test: 127.0.0.1 not listed"

    def greet_both():
        for ip in ("127.0.0.2", "127.0.0.1"):
            r = Raw(p.ports["smtp"], source=ip)
            r.reply()
            r.close()

    def logged(n):
        """True once n sessions from each address have logged their
        result (a session logs it before its greeting, after any query)."""
        log = p.log("smtp-in")
        return log.count(listed) == n and log.count(clean) == n
    greet_both()
    greet_both()
    assert wait_for(lambda: logged(2), timeout=5)
    log = p.log("smtp-in")
    assert log.count(listed + " (cached)") == 1
    assert log.count(clean + " (cached)") == 1
    assert dns.count("2.0.0.127.ttl.test") == 1
    assert dns.count("2.0.0.127.ttl.test", "TXT") == 1
    # NXDOMAIN kept for the SOA's negative TTL (2 s here).
    assert dns.count("1.0.0.127.ttl.test") == 1
    time.sleep(2.2)  # both TTLs run out
    greet_both()
    assert wait_for(lambda: logged(3), timeout=5)
    log = p.log("smtp-in")
    assert log.count(listed + " (cached)") == 1
    assert log.count(clean + " (cached)") == 1
    assert dns.count("2.0.0.127.ttl.test") == 2
    assert dns.count("1.0.0.127.ttl.test") == 2


def test_received_header_ips_ipv4_and_ipv6(mx, dns):
    p = mx({"dnsbl.zones": "bl.test:2:Blocked", "dnsbl.action": "reject",
            "dnsbl.check_received": "on"})
    extra = ("Received: from a.remote.test (a.remote.test [203.0.113.5])\r\n"
             "\tby relay.remote.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
             "Received: from b.remote.test ([IPv6:2001:db8::25]) by x\r\n"
             "Received: from c.remote.test ([10.0.0.7]) by x\r\n")
    rcpt, data = deliver(p, "127.0.0.1", message("relayed", extra=extra)[1])
    # Received listings never refuse; they add their weight.
    assert rcpt.startswith("250") and data.startswith("250")
    text = last_message(p).replace("\n\t", "")  # unfolded
    assert ("X-Spam-Status: No, score=4.0 required=5.0 "
            "tests=DNSBL_RCVD_bl.test,DNSBL_RCVD_bl.test") in text
    log = p.log("smtp-in")
    assert ('DNSBL bl.test: Received header IP 203.0.113.5 listed '
            '(127.0.0.3, "rcvd listing")') in log
    assert "DNSBL bl.test: Received header IP 2001:db8::25 listed " \
        "(127.0.0.4)" in log
    assert dns.count(nibbles("2001:db8::25", "bl.test")) == 1
    # private addresses are not looked up
    assert dns.count("7.0.0.10.bl.test") == 0


def test_settings_are_checked(mx):
    p = mx(start=False)
    number = "expected a number (like 5 or -1.5, at most 3 decimals)"
    for key, bad, why in (
            ("dnsbl.zones", "bl.test:lots",
             "DNSBL weight: expected a number from -1000 to 1000"),
            ("dnsbl.zones", "not a zone",
             "expected zone:weight:message (the zone a domain name)"),
            ("spam.spamd", "spamd.example.test",
             "expected IP:PORT or [IPv6]:PORT"),
            ("spam.tag_score", "five", number),
            ("spam.reject_score", "1.2345", number)):
        r = p.ctl.run("set", key, bad)
        assert r.returncode != 0, (key, bad)
        assert r.stderr.startswith(f"petrelctl: {key}: {why}"), \
            (key, bad, r.stderr)
    assert p.ctl.ok("set", "spam.tag_score", "4.5").strip() == \
        "spam.tag_score = 4.5"
    assert p.ctl.ok("set", "dnsbl.zones", "a.test:2:Listed, see x, b.test") \
        .strip() == "dnsbl.zones = a.test:2:Listed, see x, b.test"


def test_client_gone_before_the_greeting(mx):
    """Clients that leave while the lookups run: their sessions end once
    the lookups are over (input waits for the greeting), and others are
    served meanwhile. ASan and LSan watch the daemon at teardown."""
    p = mx({"dnsbl.zones": "slow.test:1, bl.test:1",
            "dnsbl.timeout_ms": "1000"})
    for _ in range(3):
        Raw(p.ports["smtp"], source="127.0.0.2").close()
    r = Raw(p.ports["smtp"], source="127.0.0.1")
    assert last(r).startswith("220")
    r.send("QUIT\r\n")
    deadline = time.monotonic() + 5
    while p.log("smtp-in").count("connection closed by client") < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert p.log("smtp-in").count("DNSBL slow.test: 127.0.0.2 timed out") \
        == 3
