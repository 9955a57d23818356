"""Large messages under DATA: past 128 KB a session keeps only the header
section in memory and writes the rest into a scratch file of the spool as
it arrives (src/smtp/smtp_spill.c). What must hold: the message lands
byte for byte, however it was split on the wire and wherever the 128 KB
and 64 KB boundaries fall; a header section that does not end within
128 KB of a larger message gets 552 5.3.4 and the session goes on; the
content filter and spamd read the whole message, body included; a filter
rule that changes a large message or attaches it to a note keeps every
byte."""
import hashlib
import re
import socket

from smtputil import Raw, wait_for
from spamd_util import FakeSpamd

MEMORY = 128 * 1024
CHUNK = 64 * 1024


def body_lines(size, seed):
    """CRLF lines totalling at least size bytes: varied lengths, lines
    that start with dots, 8-bit bytes, a NUL now and then."""
    out, n, i = [], 0, 0
    while n < size:
        k = (i * 7919 + seed) % 990
        line = bytes((33 + (i + j) % 94) for j in range(k))
        if i % 13 == 0:
            line = b"." + line
        if i % 17 == 0:
            line += b"\xc3\xa9\x00"
        if i % 29 == 0:
            line = b""
        out.append(line)
        n += len(line) + 2
        i += 1
    return out


def message(mid, body, headers=b""):
    """The message as it must land (unstuffed)."""
    head = b"Message-ID: <%s>\r\nSubject: big\r\n" % mid.encode() + headers
    return head + b"\r\n" + b"".join(ln + b"\r\n" for ln in body)


def stuffed(msg):
    lines = msg.split(b"\r\n")[:-1]
    return b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n"
                    for ln in lines) + b".\r\n"


def send(p, msg, rcpts=("alice@example.test",), split=None,
         sender="x@remote.test"):
    """One transaction; returns the DATA reply (code, lines)."""
    r = Raw(p.ports["smtp"], timeout=60)
    assert r.code() == 220
    assert r.cmd("EHLO client.test")[0] == 250
    assert r.cmd(f"MAIL FROM:<{sender}>")[0] == 250
    for a in rcpts:
        assert r.cmd(f"RCPT TO:<{a}>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    data = stuffed(msg)
    if split is None:
        r.send(data)
    else:
        r.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(data), split):
            r.send(data[i:i + split])
    got = r.reply()
    assert r.cmd("QUIT")[0] == 221
    r.close()
    return got


def delivered(p, address, mid, timeout=20):
    """The bytes of the message with Message-ID mid in a mailbox."""
    def find():
        for f in p.messages(address, timeout=0):
            b = f.read_bytes()
            if b"<%s>" % mid.encode() in b:
                return b
        return None
    assert wait_for(lambda: find() is not None, timeout=timeout), mid
    return find()


def client_part(landed, mid):
    """What follows the stamped trace headers: the client's message, with
    CRLF line ends again (a Maildir keeps LF)."""
    i = landed.index(b"Message-ID: <%s>" % mid.encode())
    return landed[i:].replace(b"\n", b"\r\n")


def test_large_message_lands_byte_exact(petrel):
    msg = message("big1@x.test", body_lines(3 * 1024 * 1024, 1))
    code, lines = send(petrel, msg)
    assert code == 250 and "big1@x.test" in lines[-1], lines
    landed = delivered(petrel, "alice@example.test", "big1@x.test")
    assert hashlib.sha256(client_part(landed, "big1@x.test")).hexdigest() \
        == hashlib.sha256(msg).hexdigest()
    assert f"[message: {len(msg)} bytes" in petrel.log("smtp-in")


def test_sizes_around_the_memory_bound_and_any_split(petrel_factory):
    p = petrel_factory(settings={"smtp.max_message_kb": "2048"})
    cases = []
    # Whole sizes either side of the 128 KB bound and of the first chunk
    # after it, sent whole, in odd pieces, and in pieces of the chunk size
    # plus one.
    for n, (size, split) in enumerate([
            (MEMORY - 1, None), (MEMORY, 4093), (MEMORY + 1, None),
            (MEMORY + CHUNK, CHUNK + 1), (MEMORY + CHUNK + 1, 7001),
            (1024 * 1024, 1000)]):
        body = body_lines(size, n)
        msg = message(f"edge{n}@x.test", body)
        # Trim or pad the last line so that the message is exactly size.
        extra = len(msg) - size
        if extra > 0 and len(body[-1]) >= extra:
            body[-1] = body[-1][:len(body[-1]) - extra]
        msg = message(f"edge{n}@x.test", body)
        cases.append((f"edge{n}@x.test", msg, split))
    for mid, msg, split in cases:
        code, lines = send(p, msg, split=split)
        assert code == 250, (mid, lines)
    for mid, msg, _ in cases:
        landed = delivered(p, "alice@example.test", mid)
        assert client_part(landed, mid) == msg, mid


def test_header_section_over_the_bound(petrel):
    pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 200) for i in range(700))
    assert len(pad) > MEMORY
    # A large message whose header section does not end within 128 KB.
    msg = message("hdr1@x.test", body_lines(64 * 1024, 3), headers=pad)
    r = Raw(petrel.ports["smtp"], timeout=60)
    assert r.code() == 220
    r.cmd("EHLO client.test")
    assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    r.send(stuffed(msg))
    code, lines = r.reply()
    assert (code, lines[-1]) == (552, "552 5.3.4 Message header size "
                                      "exceeds limit"), lines
    # The session goes on: a message with a 100 KB header section and a
    # 1 MB body is taken, whole.
    small = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 200)
                     for i in range(480))
    ok = message("hdr2@x.test", body_lines(1024 * 1024, 4), headers=small)
    assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    r.send(stuffed(ok))
    code, lines = r.reply()
    assert code == 250, lines
    r.close()
    assert client_part(delivered(petrel, "alice@example.test",
                                 "hdr2@x.test"), "hdr2@x.test") == ok
    log = petrel.log("smtp-in")
    assert "message refused: header section over 128 KB" in log
    # A header section of any size is fine in a message that stays in
    # memory (under 128 KB in all).
    whole = message("hdr3@x.test", [b"x"], headers=pad[:120 * 1024])
    assert send(petrel, whole)[0] == 250


def load_rules(p, text, n):
    path = p.tmp / "rules.txt"
    path.write_text(text)
    before = p.log("system").count("filter rules reloaded")
    p.ctl.ok("filter", "import", str(path))
    assert wait_for(lambda: re.findall(
        r"filter rules reloaded \((\d+) rules\)",
        p.log("system"))[before:] == [str(n)], timeout=5)


def test_filter_reads_and_changes_large_messages(petrel):
    load_rules(petrel,
               'rule "Hold needles"\n\tif body contains "NEEDLE-AT-END"\n'
               '\tthen move-to hold\nend\n'
               'rule "Tag bob"\n\tif recipient is "bob@*"\n'
               '\tthen add-header "X-Tagged" "yes"\n'
               '\tthen note to "alice@example.test" subject "copy" '
               'attach-original\nend\n', 2)
    body = body_lines(2 * 1024 * 1024, 5)
    # The text a rule looks for, only at the very end of a 2 MB body.
    needle = message("needle@x.test", body + [b"NEEDLE-AT-END"])
    code, lines = send(petrel, needle)
    assert code == 250, lines
    qid = re.search(r" as ([0-9A-F]+)$", lines[-1]).group(1)
    held = petrel.ctl.ok("queue", "list", "hold")
    assert qid in held, held
    # Changed by a rule (a header added) and attached to a note: both
    # keep every byte of the 2 MB.
    plain = message("tagged@x.test", body + [b"THE-LAST-LINE"])
    code, lines = send(petrel, plain, rcpts=("bob@example.test",))
    assert code == 250, lines
    landed = delivered(petrel, "bob@example.test", "tagged@x.test")
    assert b"X-Tagged: yes\n" in landed
    body = plain[plain.index(b"\r\n\r\n") + 4:].replace(b"\r\n", b"\n")
    assert landed.endswith(body)
    note = delivered(petrel, "alice@example.test", "tagged@x.test")
    assert body in note
    assert b"THE-LAST-LINE" in note


def test_spamd_gets_the_whole_large_message(petrel_factory):
    spamd = FakeSpamd(score=1.0)
    try:
        p = petrel_factory(settings={"spam.spamd": spamd.address,
                                     "spam.max_kb": "1024"})
        msg = message("spam1@x.test", body_lines(700 * 1024, 6) +
                      [b"LAST-BYTES"])
        code, lines = send(p, msg)
        assert code == 250, lines
        assert len(spamd.requests) == 1
        got = spamd.requests[0][1]
        # What spamd saw is the message as received (petreld adds no
        # trace header before the commit).
        assert got == msg, (len(got), len(msg))
        # Over spam.max_kb: not sent.
        big = message("spam2@x.test", body_lines(1100 * 1024, 7))
        assert send(p, big)[0] == 250
        assert len(spamd.requests) == 1
        assert "over spam.max_kb (1024 KB)" in p.log("smtp-in")
    finally:
        spamd.close()


def test_scratch_file_that_cannot_grow(petrel_factory):
    """A body the spool cannot take (here: past the daemon's file size
    limit, as a full disk would be) gets 452 4.3.1; the daemon stays up
    (a write past RLIMIT_FSIZE no longer kills it with SIGXFSZ) and the
    session takes the next message."""
    import resource
    p = petrel_factory(start=False)
    limit = 2 * 1024 * 1024
    p.preexec = lambda: resource.setrlimit(resource.RLIMIT_FSIZE,
                                           (limit, limit))
    p.start()
    big = message("toobig@x.test", body_lines(3 * 1024 * 1024, 8))
    r = Raw(p.ports["smtp"], timeout=60)
    assert r.code() == 220
    r.cmd("EHLO client.test")
    assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    r.send(stuffed(big))
    code, lines = r.reply()
    assert (code, lines[-1]) == (452, "452 4.3.1 Insufficient system "
                                      "storage"), lines
    small = message("fits@x.test", [b"hello"])
    assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    r.send(stuffed(small))
    assert r.reply()[0] == 250
    r.close()
    assert delivered(p, "alice@example.test", "fits@x.test")
    assert p.proc.poll() is None
    assert "cannot keep a message: cannot write the message: File too " \
        "large" in p.log("system")
