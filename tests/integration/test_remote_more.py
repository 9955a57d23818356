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


# --- the deferred queue's schedule -------------------------------------------

class Inotify:
    """The opens of files in one folder (Linux inotify through libc)."""
    IN_OPEN = 0x20
    IN_NONBLOCK = 0o4000

    def __init__(self, path):
        import ctypes
        import os
        self.os = os
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(self.IN_NONBLOCK)
        assert self.fd >= 0
        assert self.libc.inotify_add_watch(self.fd, str(path).encode(),
                                           self.IN_OPEN) >= 0

    def names(self):
        import struct
        out = []
        while True:
            try:
                data = self.os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            off = 0
            while off < len(data):
                _, mask, _, n = struct.unpack_from("iIII", data, off)
                name = data[off + 16:off + 16 + n].rstrip(b"\0").decode()
                if name:
                    out.append(name)
                off += 16 + n

    def close(self):
        self.os.close(self.fd)


def test_deferred_pass_reads_only_due_envelopes(remote, sinks):
    """The retry times are kept in memory: a pass of the queue manager
    (here one that petrelctl asks for) opens no envelope in deferred/
    whose time has not come."""
    s = sinks["127.0.0.2"]
    s.greeting = "421 4.3.2 not now"
    p = remote({"queue.retry_first": "600", "queue.retry_max": "600"})
    waiting = [send(p, [f"w{i}@remote.test"], subject=f"w{i}")[0]
               for i in range(3)]
    kick, _ = send(p, ["k@remote.test"], subject="kick")
    assert wait_for(lambda: len(queue(p, "deferred")) == 4)
    p.ctl.ok("queue", "hold", kick)
    log_before = p.log("smtp-out").count("connecting to")
    watch = Inotify(p.data_dir / "queue" / "deferred")
    try:
        p.ctl.ok("queue", "release", kick)
        # The pass ran (the released one was tried and deferred again).
        assert wait_for(lambda: p.log("smtp-out").count("connecting to") >
                        log_before)
        # (Read from the log: petrelctl queue list opens every file.)
        assert wait_for(lambda: re.search(
            kick + r".*deferred: 1 recipient", p.log("system")))
        opened = watch.names()
    finally:
        watch.close()
    assert not set(opened) & set(waiting), opened
    # And they are still tried when their time comes (retry now).
    s.greeting = "220 ok"
    p.ctl.ok("queue", "retry", *waiting)
    assert len(s.wait(3, timeout=20)) == 3


def test_deferred_retry_times_survive_restart_and_come_due(remote, sinks):
    """After a restart the deferred queue is read once: a message keeps its
    retry time and leaves when it comes, without a kick."""
    s = sinks["127.0.0.2"]
    s.greeting = "421 4.3.2 not now"
    p = remote({"queue.retry_first": "4", "queue.retry_max": "4"})
    qid, _ = send(p, ["x@remote.test"])
    j = wait_for(lambda: queue(p, "deferred"))
    assert j
    at = j[0]["next_retry"]
    p.kill9()
    p.start()
    [after] = queue(p, "deferred") or [None]
    assert after is not None and after["next_retry"] == at
    s.greeting = "220 ok"
    assert len(s.wait(1, timeout=20)) == 1
    assert time.time() >= at - 1
    assert wait_for(lambda: empty(p))


# --- restart in mid-queue ------------------------------------------------------

def test_kill9_while_delivering_to_a_slow_server(remote, sinks):
    """kill -9 while messages go out one at a time to a slow server: after
    the restart each is delivered at least once (twice at worst, when the
    kill fell between its dot and the server's reply), none is lost, and
    a deferred message keeps its retry time."""
    s = sinks["127.0.0.2"]
    s.data_delay = 0.7
    p = remote({"queue.max_per_destination": "1",
                "queue.max_connections": "1",
                "queue.retry_first": "600", "queue.retry_max": "600",
                "queue.timeout_data_done": "30"})
    tqid, _ = send(p, ["temp@remote.test"], subject="deferred one")
    j = wait_for(lambda: [m for m in queue(p, "deferred")
                          if m["id"] == tqid])
    assert j
    retry_at = j[0]["next_retry"]
    subjects = [f"slow {i}" for i in range(6)]
    for subj in subjects:
        send(p, [f"{subj.replace(' ', '')}@remote.test"], subject=subj)
    # Kill while the second message is on its way.
    assert wait_for(lambda: len(s.messages) >= 1, timeout=20)
    p.kill9()
    got_before = len(s.messages)
    assert got_before < len(subjects)  # the kill came mid-queue
    left = [m for m in queue(p) if m["id"] != tqid]
    assert left, "nothing was left to deliver after the kill"
    s.data_delay = 0
    p.start()
    assert wait_for(lambda: [m["id"] for m in queue(p)] == [tqid],
                    timeout=30), queue(p)

    def subject(m):
        return email.message_from_bytes(m.data)["Subject"]
    seen = [subject(m) for m in s.messages]
    for subj in subjects:
        assert 1 <= seen.count(subj) <= 2, (subj, seen)
    # At most the one under way at the kill came twice.
    assert len(seen) <= len(subjects) + 1
    [d] = queue(p, "deferred")
    assert d["next_retry"] == retry_at


# --- smarthost credentials -------------------------------------------------------

def _all_logs(p):
    out = b""
    for f in sorted(p.log_dir.glob("*")):
        if f.is_file():
            out += f.read_bytes()
    err = p.tmp / "petreld.stderr"
    return out + (err.read_bytes() if err.exists() else b"")


def test_smarthost_credentials_never_in_any_log(remote, sinks, tmp_path):
    """Neither the password nor its base64 forms (AUTH PLAIN's blob, AUTH
    LOGIN's answer) reach any log file or the daemon's stderr, for PLAIN,
    LOGIN and a refusal."""
    import base64
    from sinks import make_cert
    from test_remote import _tls_ctx
    user, pw = "relayuser", "Zq8-pass phrase"
    crt, key = make_cert(tmp_path, "relay.test")
    s = sinks["127.0.0.4"]
    s.tls = _tls_ctx(crt, key)
    s.auth = {user: pw}
    secret = tmp_path / "relay.auth"
    secret.write_text(f"{user} {pw}\n")
    secret.chmod(0o640)  # group-readable is fine (root:petrel)
    p = remote(smarthost=f"127.0.0.4:{s.port}", smarthost_auth=str(secret))
    send(p, ["a@remote.test"])
    assert len(s.wait(1)) == 1
    s.auth_mechs = "LOGIN"
    send(p, ["b@remote.test"])
    assert len(s.wait(2)) == 2 and all(m.auth == user for m in s.messages)
    s.auth = {user: "changed"}
    send(p, ["c@remote.test"])
    assert wait_for(lambda: queue(p, "deferred"))
    logs = _all_logs(p)
    assert b"AUTH PLAIN (credentials hidden)" in logs, p.log("smtp-out")
    for secret_form in (pw.encode(), base64.b64encode(pw.encode()),
                        base64.b64encode(f"\0{user}\0{pw}".encode())):
        assert secret_form not in logs, secret_form


def test_smarthost_auth_file_refused_when_world_writable(remote, sinks,
                                                        tmp_path):
    secret = tmp_path / "relay.auth"
    secret.write_text("petrel Xk7-secret-9\n")
    secret.chmod(0o602)
    p = remote(start=False, smarthost="127.0.0.4:25",
               smarthost_auth=str(secret))
    import pytest
    with pytest.raises(AssertionError, match="others can not read"):
        p.start()
    p.proc = None
    assert b"Xk7-secret-9" not in _all_logs(p)


def test_smarthost_auth_file_refused_when_a_link(remote, sinks, tmp_path):
    """A symbolic link is not followed (it could point anywhere)."""
    import pytest
    secret = tmp_path / "relay.auth"
    secret.write_text("petrel Xk7-secret-9\n")
    secret.chmod(0o600)
    link = tmp_path / "link.auth"
    link.symlink_to(secret)
    p = remote(start=False, smarthost="127.0.0.4:25",
               smarthost_auth=str(link))
    with pytest.raises(AssertionError, match="smarthost_auth"):
        p.start()
    p.proc = None
    # The error names the file, never its content.
    assert b"Xk7-secret-9" not in _all_logs(p)


# --- routing and connection limits --------------------------------------------

def test_recipients_grouped_by_domain(remote, sinks):
    """One message to three domains: one transaction per domain, each to
    its own MX, the recipients of a domain together."""
    p = remote()
    send(p, ["a@remote.test", "b@two.test", "c@remote.test", "d@nomx.test"])
    [m2] = sinks["127.0.0.2"].wait(1)
    [m3] = sinks["127.0.0.3"].wait(1)
    [m5] = sinks["127.0.0.5"].wait(1)
    assert sorted(m2.rcpts) == ["a@remote.test", "c@remote.test"]
    assert m3.rcpts == ["b@two.test"]
    assert m5.rcpts == ["d@nomx.test"]
    assert wait_for(lambda: empty(p))


def _count_concurrency(sink, peak):
    """Wraps a sink's session handler to record the most sessions open at
    once (in all, over every sink sharing `peak`)."""
    import threading
    lock = peak.setdefault("lock", threading.Lock())
    orig = sink._session
    mine = threading.local()

    def leave():
        # A session ends for the client once it sent QUIT: the sink's
        # thread may still be finishing when the next one is accepted.
        with lock:
            if getattr(mine, "open", False):
                mine.open = False
                peak["now"] -= 1
                peak[sink.host] -= 1

    def session(f):
        with lock:
            mine.open = True
            peak["now"] = peak.get("now", 0) + 1
            peak["max"] = max(peak.get("max", 0), peak["now"])
            peak.setdefault(sink.host, 0)
            peak[sink.host] += 1
            peak["max_" + sink.host] = max(peak.get("max_" + sink.host, 0),
                                           peak[sink.host])
        try:
            return orig(f)
        finally:
            leave()
    sink.on_quit = leave
    sink._session = session


def test_connection_limits_per_destination_and_in_all(remote, sinks):
    peak = {}
    for host in ("127.0.0.2", "127.0.0.3"):
        sinks[host].data_delay = 0.4
        _count_concurrency(sinks[host], peak)
    p = remote({"queue.max_per_destination": "2",
                "queue.max_messages_per_connection": "1"})
    for i in range(6):
        send(p, [f"r{i}@remote.test"], subject=f"m{i}")
    assert len(sinks["127.0.0.2"].wait(6, timeout=30)) == 6
    # Two at once to the destination, never more.
    assert peak["max_127.0.0.2"] == 2
    # In all: one connection for every destination together.
    p.set("queue.max_connections", "1")
    assert wait_for(lambda: peak["now"] == 0)
    peak["max"] = 0
    for i in range(3):
        send(p, [f"s{i}@remote.test", f"t{i}@two.test"], subject=f"n{i}")
    assert len(sinks["127.0.0.2"].wait(9, timeout=30)) == 9
    assert len(sinks["127.0.0.3"].wait(3, timeout=30)) == 3
    assert peak["max"] == 1
    assert wait_for(lambda: empty(p))


def test_no_report_to_the_null_sender(remote, sinks):
    """A message from <> that is refused (5xx): no report to <> (RFC 5321
    4.5.5); like a double bounce, it goes to the postmaster, once."""
    import smtplib
    # A trusted host may relay through the MX port (a bounce of its own).
    p = remote({"trusted.hosts": "127.0.0.1"})
    msg = (b"From: MAILER-DAEMON@relay.example\r\nTo: bad@remote.test\r\n"
           b"Subject: from null\r\n\r\nx\r\n")
    with smtplib.SMTP("127.0.0.1", p.ports["smtp"], timeout=30) as c:
        c.sendmail("", ["bad@remote.test", "ok@remote.test"], msg)
    [m] = sinks["127.0.0.2"].wait(1)
    assert m.mail_from == "" and m.rcpts == ["ok@remote.test"]
    [d] = bounces(p, box="postmaster@example.test")
    assert "Final-Recipient: rfc822; bad@remote.test" in report(d)[1]
    # A report is queued before the message it is about leaves, so an
    # empty queue means that every report is delivered.
    assert wait_for(lambda: empty(p))
    assert len(p.messages("postmaster@example.test", timeout=0)) == 1
    assert len(sinks["127.0.0.2"].messages) == 1  # nothing sent to <>
    assert p.log("system").count(" queued as ") == 1, p.log("system")


def test_eightbit_display_name_becomes_encoded_words(remote, sinks):
    """A raw UTF-8 display name (RFC 6532) going to a server without
    8BITMIME: the name is written as RFC 2047 words, the address kept."""
    s = sinks["127.0.0.2"]
    s.extensions = list(NO8)
    p = remote()
    msg = ("From: J\u00f6rg M\u00fcller <alice@example.test>\r\n"
           "To: \u00c9mile <e@remote.test>, f@remote.test\r\n"
           "Subject: hi\r\n\r\nhello\r\n").encode()
    submit(p, sender="alice@example.test", rcpts=["e@remote.test"], msg=msg,
           user="alice@example.test")
    [m] = s.wait(1)
    assert seven_bit(m.raw), m.raw
    msg = email.message_from_bytes(m.data, policy=email.policy.default)
    assert str(msg["From"]) == "J\u00f6rg M\u00fcller <alice@example.test>"
    assert [a.addr_spec for a in msg["To"].addresses] == \
        ["e@remote.test", "f@remote.test"]
    assert msg["To"].addresses[0].display_name == "\u00c9mile"
    assert wait_for(lambda: empty(p))
