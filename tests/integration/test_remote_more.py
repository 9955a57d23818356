"""Remote delivery, continued (the fixtures of test_remote.py): the 7-bit
downgrade for a server without 8BITMIME (RFC 6152 3), the in-memory retry
schedule of the deferred queue, kill -9 of the daemon while messages are
being delivered to a slow server, and what never shows in a log of the
smarthost credentials."""
import email
import email.policy
import re
import time

from smtputil import wait_for
from test_remote import (FAST, bounces, dns, empty, queue,  # noqa: F401
                         remote, report, send, sinks)
from test_smtp import submit

NO8 = ["PIPELINING", "SIZE 10000000"]


def send_raw(p, rcpt, head, body):
    """Submits head (header lines, CRLF each) and body as bytes; returns
    the queue id."""
    mid = f"<raw.{time.monotonic_ns()}@example.test>"
    msg = (b"From: alice@example.test\r\nTo: " + rcpt.encode() +
           b"\r\nMessage-ID: " + mid.encode() + b"\r\n" + head + b"\r\n" +
           body)
    submit(p, sender="alice@example.test", rcpts=[rcpt], msg=msg,
           user="alice@example.test")
    m = re.search(re.escape(mid) + r"> as ([0-9A-F]{18})", p.log("smtp-in"))
    assert m
    return m.group(1)


def text(part):
    """A part's decoded text, in LF lines, without the last line end (the
    sink keeps the message up to the CRLF before the final dot)."""
    return part.get_content().replace("\r\n", "\n").rstrip("\n")


def seven_bit(raw):
    return all(b < 128 for b in raw)


# --- 8BITMIME ---------------------------------------------------------------

def test_eightbit_downgraded_for_server_without_8bitmime(remote, sinks):
    s = sinks["127.0.0.2"]
    s.extensions = list(NO8)
    p = remote()
    qid = send_raw(p, "a@remote.test",
                   "Subject: caf\u00e9 cr\u00e8me\r\n".encode(),
                   "caf\u00e9 = na\u00efve\r\n.dot\r\n".encode())
    [m] = s.wait(1)
    # Nothing 8-bit on the wire, and no BODY=8BITMIME to a server that
    # did not offer it; SIZE= as it offered.
    assert seven_bit(m.raw), m.raw
    assert "BODY=" not in m.mail_params and "SIZE=" in m.mail_params
    msg = email.message_from_bytes(m.data, policy=email.policy.default)
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert msg["MIME-Version"] == "1.0"
    assert msg.get_content_charset() == "utf-8"
    # The reader gets the same text back.
    assert text(msg) == "caf\u00e9 = na\u00efve\n.dot"
    assert str(msg["Subject"]) == "caf\u00e9 cr\u00e8me"
    assert wait_for(lambda: empty(p))
    assert f"{qid}: converting the 8-bit message to 7 bits" in \
        p.log("smtp-out")


def test_eightbit_multipart_only_8bit_part_converted(remote, sinks):
    s = sinks["127.0.0.2"]
    s.extensions = list(NO8)
    p = remote()
    head = (b"MIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"=b=\"\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n")
    body = (b"--=b=\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            b"plain ascii = part\r\n"
            b"--=b=\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" +
            "gr\u00fc\u00dfe\r\n".encode() +
            b"--=b=--\r\n")
    send_raw(p, "b@remote.test", head, body)
    [m] = s.wait(1)
    assert seven_bit(m.raw)
    msg = email.message_from_bytes(m.data, policy=email.policy.default)
    assert msg["Content-Transfer-Encoding"] == "7bit"
    a, b = msg.iter_parts()
    # The 7-bit part is left as it was (no needless conversion).
    assert a["Content-Transfer-Encoding"] is None
    assert text(a) == "plain ascii = part"
    assert b["Content-Transfer-Encoding"] == "quoted-printable"
    assert text(b) == "gr\u00fc\u00dfe"


def test_eightbit_sent_as_is_with_8bitmime(remote, sinks):
    s = sinks["127.0.0.2"]
    p = remote()
    send_raw(p, "c@remote.test", b"Subject: x\r\n",
             "caf\u00e9\r\n".encode())
    [m] = s.wait(1)
    assert "BODY=8BITMIME" in m.mail_params
    assert "caf\u00e9".encode() in m.raw
    assert "Content-Transfer-Encoding" not in m.data.decode()


def test_eightbit_unconvertible_bounces_5_6_3(remote, sinks):
    """8-bit bytes in a structured header field can not be made 7-bit
    without SMTPUTF8: the recipient is returned with 5.6.3, nothing is
    sent as it is."""
    s = sinks["127.0.0.2"]
    s.extensions = list(NO8)
    p = remote()
    send_raw(p, "d@remote.test",
             "Subject: x\r\nKeywords: caf\u00e9\r\n".encode(), b"body\r\n")
    [b] = bounces(p)
    human, status, _ = report(b)
    assert "Status: 5.6.3" in status
    assert "Final-Recipient: rfc822; d@remote.test" in status
    assert "8BITMIME" in human or "8BITMIME" in status
    assert not s.messages
    assert wait_for(lambda: empty(p))


def test_helo_only_server_gets_7bit(remote, sinks):
    """A server that refuses EHLO offers no extension at all."""
    s = sinks["127.0.0.2"]
    s.ehlo_ok = False
    p = remote()
    send_raw(p, "e@remote.test", b"Subject: x\r\n",
             "\u00e9t\u00e9\r\n".encode())
    [m] = s.wait(1)
    assert seven_bit(m.raw) and m.mail_params == ""
    msg = email.message_from_bytes(m.data, policy=email.policy.default)
    assert text(msg) == "\u00e9t\u00e9"
