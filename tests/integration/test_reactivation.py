"""Re-activation of a frozen account, through the real daemon: a reply to
the alert from an admin account of the domain (README: "the postmaster
(or an admin account of the domain)"), refused from a plain account of
the domain and from an admin of another domain; and `petrelctl hijack
release --delete-held` against `--release-held`, with the held mail
addressed to a sink that would take it."""
import json
from email import message_from_bytes
from email.header import decode_header, make_header

import pytest

from sinks import DnsServer, SmtpSink
from smtputil import AuthSession, wait_for
from test_hijack import reply
from test_remote import FAST

PW = "correct horse battery staple"
ALICE = "alice@example.test"
BOB = "bob@example.test"  # a plain account of the domain
PM = "postmaster@example.test"
CAROL = "carol@example.test"  # made an admin here
DAVE = "dave@other.test"  # an admin of another domain



def hijack_petrel(petrel_factory, settings=None, **conf):
    s = {"auth.allow_plaintext": "on", "hijack.max_messages": "2",
         "hijack.minutes": "30"}
    s.update(settings or {})
    return petrel_factory(settings=s, **conf)


def session(p, user):
    s = AuthSession(p.ports["submission"], user, PW)
    assert s.auth == 235, f"{user} could not log in"
    return s


def account(p, address):
    return json.loads(p.ctl.ok("account", "show", address, json=True))


def queued(p, sender=ALICE):
    """alice's messages in every queue: [(queue, subject)]."""
    listing = json.loads(p.ctl.ok("queue", "list", json=True))
    return sorted((m["queue"], m["subject"]) for m in listing
                  if m["sender"] == sender)


def alert_reply_to(p, timeout=10):
    """The Reply-To of the hijack alert in the postmaster's mailbox."""
    def find():
        new = p.maildir(PM) / "new"
        for f in sorted(new.glob("*")) if new.exists() else []:
            m = message_from_bytes(f.read_bytes())
            subject = str(make_header(decode_header(m["Subject"] or "")))
            if ALICE in subject and "frozen" in subject:
                return m["Reply-To"].strip("<>")
        return None
    to = wait_for(find, timeout=timeout)
    assert to, "no alert reached the postmaster"
    return to


def freeze(p, subjects, rcpt="x@remote.test"):
    """alice sends one message per subject (as many as the limit), then
    one more, which freezes her; waits until the first ones are held."""
    s = session(p, ALICE)
    for subject in subjects:
        assert s.send(rcpts=(rcpt,), subject=subject) == 250
    assert s.send(rcpts=(rcpt,), subject="over the limit") == 550
    s.close()
    assert account(p, ALICE)["state"] == "frozen"
    want = sorted(("hold", x) for x in subjects)
    assert wait_for(lambda: queued(p) == want), queued(p)


def test_admin_of_the_domain_reactivates_by_reply(petrel_factory):
    p = hijack_petrel(petrel_factory)
    p.ctl.ok("account", "add", CAROL, "--admin", input=PW + "\n")
    p.ctl.ok("domain", "add", "other.test")
    p.ctl.ok("account", "add", DAVE, "--admin", input=PW + "\n")
    assert account(p, CAROL)["admin"] and account(p, DAVE)["admin"]
    assert not account(p, BOB)["admin"]
    freeze(p, ["spam 0", "spam 1"])
    to = alert_reply_to(p)

    # Controls: a plain account of the domain, and an admin of another
    # domain, change nothing, and the token stays good.
    for user in (BOB, DAVE):
        code, text = reply(p, to, "release", user)
        assert code == 550, text
        assert "5.7.1 Only the postmaster or an admin of example.test " \
               "may re-activate its accounts" in text
        assert f"reply to a hijack alert refused: ip=127.0.0.1 " \
               f"account={user} domain=example.test" in p.log("security")
    assert account(p, ALICE)["state"] == "frozen"
    assert queued(p) == [("hold", "spam 0"), ("hold", "spam 1")]

    # The admin of the domain re-activates her.
    code, text = reply(p, to, "release", CAROL)
    assert code == 250, text
    assert f"Ok: account {ALICE} re-activated; 2 held message(s) " \
           "released" in text
    assert account(p, ALICE)["state"] == "enabled"
    assert f"re-activated by {CAROL} (reply to the alert, order " \
           "\"release\")" in account(p, ALICE)["state_reason"]
    released = queued(p)
    assert [x for _, x in released] == ["spam 0", "spam 1"]
    assert all(q in ("active", "deferred") for q, _ in released), released
    # The confirmation goes to the admin who replied.
    assert wait_for(lambda: any(b"re-activated" in f.read_bytes()
                                for f in p.messages(CAROL, timeout=0)))
    # alice logs in again, with a fresh window.
    s = session(p, ALICE)
    assert [s.send(subject="again") for _ in range(2)] == [250, 250]
    s.close()


@pytest.fixture
def mx():
    """remote.test's MX: a sink on 127.0.0.2 that answers 421 to begin
    with, so that alice's mail waits in the queue until she is frozen."""
    dns = DnsServer({"remote.test": [("MX", 10, "mx1.remote.test")],
                     "mx1.remote.test": [("A", "127.0.0.2")]})
    sink = SmtpSink("127.0.0.2")
    sink.greeting = "421 4.3.2 busy"
    yield dns, sink
    sink.close()
    dns.close()


def test_release_delete_held_against_release_held(petrel_factory, mx):
    dns, sink = mx
    settings = dict(FAST)
    settings["queue.remote_port"] = str(sink.port)
    p = hijack_petrel(petrel_factory, settings, dns_server=dns.address)

    # --delete-held: the held mail is gone, from every queue, and never
    # sent; the account is active again.
    freeze(p, ["deleted 0", "deleted 1"])
    sink.greeting = "220 sink.test ESMTP"
    out = p.ctl.ok("hijack", "release", ALICE, "--delete-held")
    assert out.strip() == f"{ALICE} re-activated; 2 held message(s) deleted"
    assert queued(p) == []
    assert json.loads(p.ctl.ok("queue", "list", "hold", json=True)) == []
    assert account(p, ALICE)["state"] == "enabled"
    assert "no account is frozen" in p.ctl.ok("hijack", "list")
    # The daemon sees the change and starts her window anew.
    assert wait_for(lambda: f"account {ALICE} re-activated by an "
                    "administrator" in p.log("security"))
    session(p, ALICE).close()

    # --release-held: the held mail goes out. Once it has arrived, the
    # deleted messages have had every chance to arrive too.
    sink.greeting = "421 4.3.2 busy"
    freeze(p, ["released 0", "released 1"])
    sink.greeting = "220 sink.test ESMTP"
    out = p.ctl.ok("hijack", "release", ALICE, "--release-held")
    assert out.strip() == f"{ALICE} re-activated; 2 held message(s) released"
    assert len(sink.wait(2)) == 2
    assert wait_for(lambda: queued(p) == [])
    got = sorted(m.data.split(b"Subject: ")[1].split(b"\r\n")[0].decode()
                 for m in sink.messages)
    assert got == ["released 0", "released 1"]
    assert account(p, ALICE)["state"] == "enabled"
