"""A forged local From: that the address parser cannot read: without AUTH,
on the MX port, a local domain anywhere in a From: that does not parse
(two fields, a group, a second field written "From :", comments, encoded
words) is refused under auth.require_for_role_senders, since which address
a mail reader shows for it is anyone's guess. A remote sender's unparsable
From: without a local domain is accepted as before."""
import smtplib

import pytest

from smtputil import tls_context, wait_for

REFUSAL = b"5.7.1 Authentication required for this From: address"
RULE = ("message refused: auth.require_for_role_senders: a local domain in "
        "a From: that does not parse, without AUTH")


def mx(petrel):
    c = smtplib.SMTP("127.0.0.1", petrel.ports["smtp"], timeout=30)
    c.ehlo("client.example")
    return c


def send(petrel, headers):
    with mx(petrel) as c:
        c.sendmail("x@remote.test", ["bob@example.test"],
                   headers + "Subject: f\r\n\r\nbody\r\n")


FORGED = [
    # Two From: fields.
    "From: x@remote.test\r\nFrom: postmaster@example.test\r\n",
    "From: postmaster@example.test\r\nFrom: postmaster@example.test\r\n",
    # Group syntax (From: is a mailbox-list, RFC 5322 3.6.2).
    "From: x: postmaster@example.test;\r\n",
    "From: x: Postmaster@EXAMPLE.TEST;\r\n",
    "From: Team:\r\n postmaster@example.test,\r\n a@remote.test;\r\n",
    # A second field that the header parser does not count.
    "From: x@remote.test\r\nFrom : postmaster@example.test\r\n",
    # In a comment, CFWS around "@" and ".", an encoded-word.
    "From: <x@remote.test (postmaster@example.test)\r\n",
    "From: postmaster @ (c) example . test, (\r\n",
    "From: =?utf-8?q?postmaster=40example=2Etest?= <x@remote.test>>\r\n",
    # A local account that is no role: its local part is not trusted
    # either when the field does not parse.
    "From: x: alice@example.test;\r\n",
]


@pytest.mark.parametrize("headers", FORGED)
def test_unparsable_local_from_refused(petrel, headers):
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(petrel, headers)
    assert e.value.smtp_code == 550
    assert e.value.smtp_error == REFUSAL
    assert not petrel.messages("bob@example.test", timeout=0.3)
    assert wait_for(lambda: RULE in petrel.log("smtp-in"), timeout=3)


def test_two_addresses_one_a_role(petrel):
    """Two addresses in one From: field parse: the role rule refuses the
    local role address among them, with the same reply."""
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(petrel, "From: x@remote.test, postmaster@example.test\r\n")
    assert e.value.smtp_code == 550
    assert e.value.smtp_error == REFUSAL
    assert not petrel.messages("bob@example.test", timeout=0.3)


@pytest.mark.parametrize("headers", [
    "From: a@remote.test\r\nFrom: b@remote.test\r\n",
    "From: x: postmaster@remote.test;\r\n",
    "From: not an address\r\n",
    "From: a@mail.example.test.evil.test, (\r\n",
    "",
])
def test_remote_unparsable_from_accepted(petrel, headers):
    """As before: a remote sender's From: that does not parse, with no
    local domain in it, is delivered."""
    send(petrel, headers)
    assert petrel.messages("bob@example.test")


def test_rule_off(petrel):
    petrel.set("auth.require_for_role_senders", "off")
    send(petrel, "From: x: postmaster@example.test;\r\n")
    assert petrel.messages("bob@example.test")


def test_trusted_exempt(petrel_factory):
    p = petrel_factory(settings={
        "trusted.hosts": "127.0.0.1",
        "trusted.exempt_from": "auth.require_for_role_senders"})
    send(p, "From: x@remote.test\r\nFrom: postmaster@example.test\r\n")
    assert p.messages("bob@example.test")


def test_authenticated_second_from_field(petrel):
    """With AUTH, auth.match_from_header wants one From: field: a second
    one written "From :", which the header parser does not count, is
    refused as two."""
    with smtplib.SMTP("127.0.0.1", petrel.ports["submission"],
                      timeout=30) as c:
        c.starttls(context=tls_context())
        c.login("alice@example.test", petrel.PASSWORD)
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("alice@example.test", ["bob@example.test"],
                       "From: alice@example.test\r\n"
                       "From : bob@example.test\r\n\r\nx\r\n")
        assert e.value.smtp_code == 550
        assert e.value.smtp_error == \
            b"5.7.1 Message needs one valid From: header"
        c.sendmail("alice@example.test", ["bob@example.test"],
                   "From: alice@example.test\r\nSubject: ok\r\n\r\nx\r\n")
    assert wait_for(lambda: "auth.match_from_header: more than one From: "
                    "field" in petrel.log("smtp-in"), timeout=3)
    assert petrel.messages("bob@example.test")
