"""Hostile SMTP clients against the real daemon: over-long lines at the
largest value of every length setting, connections that vanish while a
worker job holds the session, credentials left in memory, and a hundred
thousand pipelined recipients. Teardown fails a test on any ASan report
(conftest.py)."""
import base64
import re
import socket
import struct
import threading
import time

import pytest

from smtputil import Raw, wait_for

PW = "correct horse battery staple"
BLOB = base64.b64encode(f"\0alice@example.test\0{PW}".encode()).decode()
BAD = base64.b64encode(b"\0alice@example.test\0wrong password").decode()


def alive(p):
    assert p.proc.poll() is None, "petreld died: " + p.stderr_text()[-3000:]


def rst(sock):
    """Closes with a TCP RST instead of a FIN (SO_LINGER 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    sock.close()


def largest(p, name):
    """The largest value the settings accept for name (petrelctl says
    the range when a value is out of it)."""
    r = p.ctl.run("set", name, "999999999999")
    assert r.returncode != 0
    m = re.search(r"\((\d+) to (\d+)\)", r.stderr)
    assert m, r.stderr
    return int(m.group(2))


# ---- over-long lines at the largest value of each length setting ----

def test_command_lines_at_largest_max_line(petrel_factory):
    """smtp.max_line at its largest (65536): a 20,000-byte MAIL FROM, a
    line of exactly the limit and one byte over it. Before the fix the
    line was copied into a 12,289-byte stack buffer: the daemon died."""
    p = petrel_factory(settings={"auth.allow_plaintext": "on"})
    top = largest(p, "smtp.max_line")
    assert top == 65536
    p.set("smtp.max_line", str(top))
    r = Raw(p.ports["smtp"])
    assert r.reply()[0] == 220
    assert r.cmd("EHLO c")[0] == 250
    code, lines = r.cmd("MAIL FROM:<" + "a" * 20000 + "@x.test>")
    assert code == 501 or code == 553, lines
    alive(p)
    # Exactly smtp.max_line bytes, CRLF included: read as a command.
    assert r.cmd("NOOP " + "x" * (top - 7)) == (250, ["250 2.0.0 Ok"])
    # One byte more: refused as too long, and the session goes on.
    code, lines = r.cmd("NOOP " + "x" * (top - 6))
    assert lines == ["500 5.5.2 Error: line too long"]
    assert r.cmd("NOOP")[0] == 250
    # A long AUTH PLAIN initial response in a command line.
    code, lines = r.cmd("AUTH PLAIN " + "QUFB" * ((top - 13) // 4))
    assert code == 501, lines
    alive(p)
    # DATA lines at the limit and one byte over it.
    assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    code, lines = r.cmd("Subject: at the limit\r\n\r\n" + "y" * (top - 2) +
                        "\r\n.")
    assert code == 250, lines
    assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    code, lines = r.cmd("Subject: over\r\n\r\n" + "y" * (top - 1) + "\r\n.")
    assert code == 500 and "5.5.6" in lines[0], lines
    assert r.cmd("QUIT")[0] == 221
    alive(p)


def test_auth_line_limit(petrel_factory):
    """A SASL response line may be 12288 octets, CRLF included (RFC 4954
    4): one of exactly that length is read, one byte more is refused."""
    p = petrel_factory(settings={"auth.allow_plaintext": "on",
                                 "smtp.max_line": "65536"})
    r = Raw(p.ports["submission"])
    r.reply()
    r.cmd("EHLO c")
    assert r.cmd("AUTH PLAIN")[0] == 334
    code, lines = r.cmd("A" * (12288 - 2))
    assert code == 501 and "5.5.2" in lines[0], lines
    assert r.cmd("AUTH PLAIN")[0] == 334
    assert r.cmd("A" * (12288 - 1))[1] == [
        "500 5.5.6 Authentication Exchange line is too long"]
    assert r.cmd("NOOP")[0] == 250
    alive(p)


def test_largest_message_size(petrel_factory):
    """smtp.max_message_kb at its largest: SIZE says it, a declared size
    one byte over is refused, a message goes through."""
    p = petrel_factory()
    top = largest(p, "smtp.max_message_kb")
    p.set("smtp.max_message_kb", str(top))
    r = Raw(p.ports["smtp"])
    r.reply()
    assert f"SIZE {top * 1024}" in "\n".join(r.cmd("EHLO c")[1])
    code, lines = r.cmd(f"MAIL FROM:<x@remote.test> SIZE={top * 1024 + 1}")
    assert code == 552, lines
    assert r.cmd(f"MAIL FROM:<x@remote.test> SIZE={top * 1024}")[0] == 250
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    assert r.cmd("Subject: s\r\n\r\n" + ("z" * 70 + "\r\n") * 1000 +
                 ".")[0] == 250
    alive(p)
