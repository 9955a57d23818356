"""Sender authentication rules and trusted hosts through the real daemon:
each setting on and off, changed live with petrelctl set."""
import smtplib

import pytest

from smtputil import Raw, tls_context, wait_for

PW = "correct horse battery staple"


def mx(petrel, source="127.0.0.1"):
    r = Raw(petrel.ports["smtp"], source=source)
    assert r.code() == 220
    assert r.cmd("EHLO client.example")[0] == 250
    return r


def submission(petrel, user="alice@example.test"):
    c = smtplib.SMTP("127.0.0.1", petrel.ports["submission"], timeout=30)
    c.starttls(context=tls_context())
    c.login(user, PW)
    return c


def refused_in_log(petrel, text):
    return wait_for(lambda: text in petrel.log("smtp-in"), timeout=3)


# --- auth.require_for_local_senders / except_to_local ---

def test_local_sender_needs_auth_on_mx(petrel):
    r = mx(petrel)
    code, lines = r.cmd("MAIL FROM:<alice@example.test>")
    assert code == 530 and "5.7.0" in lines[0]
    # Aliases of local accounts, and unknown addresses of local domains.
    petrel.ctl.ok("alias", "add", "info@example.test", "alice@example.test")
    assert r.cmd("MAIL FROM:<info@example.test>")[0] == 530
    assert r.cmd("MAIL FROM:<nobody@EXAMPLE.test>")[0] == 530
    # A remote sender is fine.
    assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    r.close()
    assert refused_in_log(petrel, "MAIL refused: auth.require_for_local_"
                                  "senders: local sender without AUTH")


def test_local_sender_rule_off(petrel):
    petrel.set("auth.require_for_local_senders", "off")
    r = mx(petrel)
    assert r.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert r.cmd("RCPT TO:<bob@example.test>")[0] == 250
    r.close()


def test_except_to_local(petrel):
    petrel.set("auth.except_to_local", "on")
    r = mx(petrel)
    assert r.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert r.cmd("RCPT TO:<bob@example.test>")[0] == 250
    code, lines = r.cmd("RCPT TO:<friend@remote.test>")
    assert code == 530 and "5.7.0" in lines[0]
    assert r.cmd("DATA")[0] == 354
    r.send("From: alice@example.test\r\nSubject: l\r\n\r\nx\r\n.\r\n")
    assert r.code() == 250
    r.close()
    assert petrel.messages("bob@example.test")
    assert refused_in_log(petrel, "auth.except_to_local")
    # Off again: refused at MAIL.
    petrel.set("auth.except_to_local", "off")
    r = mx(petrel)
    assert r.cmd("MAIL FROM:<alice@example.test>")[0] == 530
    r.close()


def test_local_sender_rule_decides_on_the_mx_port(petrel):
    """auth.require_for_local_senders decides on the MX port only: the
    submission ports (smtps too) refuse any MAIL without AUTH before it
    (RFC 6409 4.3), a remote sender's as well, whether it is on or off."""
    rule = ("MAIL refused: auth.require_for_local_senders: local sender "
            "without AUTH")
    submission_only = ("MAIL refused: unauthenticated MAIL on the "
                       "submission port")
    r = mx(petrel)
    code, lines = r.cmd("MAIL FROM:<alice@example.test>")
    assert (code, lines) == (530, ["530 5.7.0 Authentication required"])
    r.close()
    assert refused_in_log(petrel, rule)
    petrel.set("auth.require_for_local_senders", "off")
    r = mx(petrel)
    assert r.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    r.close()
    for port, tls in (("submission", False), ("smtps", True)):
        r = Raw(petrel.ports[port], tls=tls)
        assert r.code() == 220
        assert r.cmd("EHLO c")[0] == 250
        for sender in ("alice@example.test", "x@remote.test"):
            code, lines = r.cmd(f"MAIL FROM:<{sender}>")
            assert code == 530 and "5.7.0" in lines[0], (port, sender)
        r.close()
    assert wait_for(lambda: petrel.log("smtp-in").count(submission_only)
                    == 4, timeout=3)
    assert petrel.log("smtp-in").count(rule) == 1


# --- auth.match_return_path and the null sender ---

def test_return_path_must_match(petrel):
    petrel.ctl.ok("alias", "add", "info@example.test", "alice@example.test")
    with submission(petrel) as c:
        # Own address, its alias, any case.
        for sender in ("alice@example.test", "info@example.test",
                       "ALICE@Example.Test"):
            assert c.mail(sender)[0] == 250
            c.rset()
        for sender in ("bob@example.test", "nobody@example.test",
                       "alice@remote.test"):
            code, msg = c.mail(sender)
            assert code == 550, sender
            assert b"does not match authenticated account" in msg
            c.rset()
        code, msg = c.mail("<>")
        assert code == 550
        assert b"Null sender not allowed" in msg
    assert refused_in_log(petrel, "auth.match_return_path")
    petrel.set("auth.match_return_path", "off")
    petrel.set("auth.allow_null_sender", "on")
    with submission(petrel) as c:
        assert c.mail("bob@example.test")[0] == 250
        c.rset()
        assert c.mail("<>")[0] == 250


# --- auth.match_from_header ---

FORGED_FROMS = [
    "bob@example.test",
    '"Alice" <bob@example.test>',
    "alice@example.test, bob@example.test",
    '"alice@example.test" <bob@example.test>',
    "bob@example.test (alice@example.test)",
    "=?utf-8?q?alice=40example=2Etest?= <x@remote.test>",
]


@pytest.mark.parametrize("value", FORGED_FROMS)
def test_forged_from_refused(petrel, value):
    with submission(petrel) as c:
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("alice@example.test", ["bob@example.test"],
                       f"From: {value}\r\nSubject: f\r\n\r\nx\r\n")
        assert e.value.smtp_code == 550
        assert b"From: header does not match" in e.value.smtp_error
    assert not petrel.messages("bob@example.test", timeout=0.3)
    assert refused_in_log(petrel, "auth.match_from_header")


GOOD_FROMS = [
    "alice@example.test",
    '"Alice Liddell" <alice@example.test>',
    "Alice <ALICE@EXAMPLE.TEST>",
    "=?utf-8?b?QWxpY2Ug8J+QhyA=?= <alice@example.test>",
    "alice@example.test (Alice in comments)",
    '"Alice" <info@example.test>, alice@example.test',
]


@pytest.mark.parametrize("value", GOOD_FROMS)
def test_own_from_accepted(petrel, value):
    petrel.ctl.ok("alias", "add", "info@example.test", "alice@example.test")
    with submission(petrel) as c:
        c.sendmail("alice@example.test", ["bob@example.test"],
                   f"From: {value}\r\nSubject: g\r\n\r\nx\r\n")
    assert petrel.messages("bob@example.test")


@pytest.mark.parametrize("headers", [
    "Subject: no from\r\n",
    "From: \r\nSubject: empty\r\n",
    "From: <>\r\nSubject: null\r\n",
    "From: not an address\r\nSubject: junk\r\n",
    "From: alice@example.test\r\nFrom: alice@example.test\r\n",
    "From: undisclosed-recipients:;\r\n",
    "From: Team: alice@example.test;\r\n",
])
def test_submission_without_valid_from_refused(petrel, headers):
    with submission(petrel) as c:
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("alice@example.test", ["bob@example.test"],
                       headers + "\r\nx\r\n")
        assert e.value.smtp_code == 550
        assert e.value.smtp_error == \
            b"5.7.1 Message needs one valid From: header"
    assert refused_in_log(petrel, "auth.match_from_header: no parsable "
                                  "From: header")


def test_from_rule_off(petrel):
    petrel.set("auth.match_from_header", "off")
    with submission(petrel) as c:
        c.sendmail("alice@example.test", ["bob@example.test"],
                   "From: bob@example.test\r\nSubject: o\r\n\r\nx\r\n")
    assert petrel.messages("bob@example.test")


# --- auth.require_for_role_senders ---

def test_role_senders(petrel):
    petrel.set("auth.require_for_local_senders", "off")
    r = mx(petrel)
    code, lines = r.cmd("MAIL FROM:<postmaster@example.test>")
    assert code == 530 and "5.7.0" in lines[0]
    assert r.cmd("MAIL FROM:<Abuse@example.test>")[0] == 530
    assert r.cmd("MAIL FROM:<webmaster@example.test>")[0] == 530
    # Another domain's postmaster is not ours to protect.
    assert r.cmd("MAIL FROM:<postmaster@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<bob@example.test>")[0] == 250
    # Claiming the role in From: without AUTH is refused after DATA.
    assert r.cmd("DATA")[0] == 354
    r.send("From: Postmaster <postmaster@example.test>\r\n\r\nx\r\n.\r\n")
    code, lines = r.reply()
    assert code == 550 and "5.7.1" in lines[0]
    r.close()
    petrel.set("auth.require_for_role_senders", "off")
    r = mx(petrel)
    assert r.cmd("MAIL FROM:<postmaster@example.test>")[0] == 250
    r.close()
    # An authenticated postmaster may send as itself.
    with submission(petrel, "postmaster@example.test") as c:
        c.sendmail("postmaster@example.test", ["bob@example.test"],
                   "From: postmaster@example.test\r\n\r\nhello\r\n")


# --- auth.require_for_local_ips and trusted hosts ---

def test_require_for_local_ips(petrel):
    petrel.set("trusted.local_networks", "127.0.0.0/30")
    r = mx(petrel, "127.0.0.2")
    assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250  # rule off
    r.close()
    petrel.set("auth.require_for_local_ips", "on")
    r = mx(petrel, "127.0.0.2")
    code, lines = r.cmd("MAIL FROM:<x@remote.test>")
    assert code == 530 and "5.7.0" in lines[0]
    r.close()
    # Outside the local networks: not concerned.
    r = mx(petrel, "127.0.0.9")
    assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    r.close()
    # Trusted hosts are excepted.
    petrel.set("trusted.hosts", "127.0.0.2")
    r = mx(petrel, "127.0.0.2")
    assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    r.close()
    assert refused_in_log(petrel, "auth.require_for_local_ips")


def test_trusted_host_relays_without_auth(petrel):
    r = mx(petrel, "127.0.0.3")
    r.cmd("MAIL FROM:<app@remote.test>")
    assert r.cmd("RCPT TO:<someone@elsewhere.test>")[0] == 550
    r.close()
    petrel.set("trusted.hosts", "127.0.0.0/29")
    r = mx(petrel, "127.0.0.3")
    assert r.cmd("MAIL FROM:<app@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<someone@elsewhere.test>")[0] == 250
    # Not exempt from the local sender rule unless named.
    assert r.cmd("RSET")[0] == 250
    assert r.cmd("MAIL FROM:<alice@example.test>")[0] == 530
    r.close()
    # Only those hosts: 127.0.0.9 is outside the /29.
    r = mx(petrel, "127.0.0.9")
    r.cmd("MAIL FROM:<app@remote.test>")
    assert r.cmd("RCPT TO:<someone@elsewhere.test>")[0] == 550
    r.close()
    petrel.set("trusted.exempt_from", "auth.require_for_local_senders")
    r = mx(petrel, "127.0.0.3")
    assert r.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert r.cmd("RCPT TO:<someone@elsewhere.test>")[0] == 250
    r.close()


def test_trusted_host_by_name(petrel):
    """Host names are resolved when the settings load (localhost from the
    hosts file: 127.0.0.1)."""
    r = mx(petrel)
    r.cmd("MAIL FROM:<app@remote.test>")
    assert r.cmd("RCPT TO:<someone@elsewhere.test>")[0] == 550
    r.close()
    petrel.set("trusted.hosts", "localhost")
    assert wait_for(lambda: "trusted.hosts: localhost has" in
                    petrel.log("system"))
    r = mx(petrel)
    r.cmd("MAIL FROM:<app@remote.test>")
    assert r.cmd("RCPT TO:<someone@elsewhere.test>")[0] == 250
    r.close()


def test_settings_are_checked_and_shown(petrel):
    for key, bad in (("trusted.hosts", "10.0.0.0/33"),
                     ("trusted.hosts", "not a host!"),
                     ("trusted.local_networks", "mail.example.test"),
                     ("trusted.exempt_from", "auth.no_such_rule")):
        res = petrel.ctl.run("set", key, bad)
        assert res.returncode == 1 and key in res.stderr, (key, res.stderr)
    petrel.ctl.ok("set", "trusted.hosts", "192.0.2.0/24, mx.example.test")
    petrel.ctl.ok("set", "trusted.exempt_from",
                  "auth.match_from_header,AUTH.MATCH_RETURN_PATH")
    out = petrel.ctl.ok("settings")
    assert "192.0.2.0/24, mx.example.test" in out
    assert "auth.match_from_header, auth.match_return_path" in out


def test_raw_utf8_display_name_in_from(petrel):
    """RFC 6532: a client that writes its display name in raw UTF-8 is
    still matched by its address; a raw UTF-8 local part is no address of
    hers."""
    with submission(petrel) as c:
        c.sendmail("alice@example.test", ["bob@example.test"],
                   "From: J\u00f6rg M\u00fcller <alice@example.test>\r\n"
                   "Subject: g\r\n\r\nx\r\n".encode())
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("alice@example.test", ["bob@example.test"],
                       "From: <\u00e4lice@example.test>\r\n"
                       "Subject: g\r\n\r\nx\r\n".encode())
        assert e.value.smtp_code == 550
        # Refused by the From: rule: without SMTPUTF8 the address parser
        # takes no UTF-8 local part, so the From: has no valid address.
        # (Once it does, this becomes "From: header does not match".)
        assert e.value.smtp_error == \
            b"5.7.1 Message needs one valid From: header"
    assert petrel.messages("bob@example.test")
