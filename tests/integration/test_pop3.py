"""POP3: the real daemon on loopback, read with python's poplib, raw
sockets for exact bytes, and mpop and fetchmail (real clients from Debian)
downloading and deleting mail. Every command and its error paths, STLS and its
plaintext-injection defence, AUTH PLAIN, the mailbox lock, the snapshot,
DELE only at QUIT, the seen flag, big messages and big mailboxes."""
import base64
import os
import poplib
import shutil
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import time

import pytest

from smtputil import tls_context, wait_for

PW = "correct horse battery staple"
ALICE = "alice@example.test"


def deliver(p, rcpt=ALICE, n=1, body=None, subject="m"):
    """Sends n messages through SMTP and waits until they are in the
    Maildir. Returns the message texts sent."""
    before = count(p, rcpt)
    sent = []
    with smtplib.SMTP("127.0.0.1", p.ports["smtp"], timeout=60) as c:
        for i in range(n):
            text = body if body is not None else f"hello {i}\r\n"
            msg = f"Subject: {subject}{i}\r\n\r\n{text}"
            c.sendmail("x@remote.test", [rcpt], msg)
            sent.append(msg)
    assert wait_for(lambda: count(p, rcpt) >= before + n, timeout=30)
    return sent


def count(p, rcpt=ALICE):
    md = p.maildir(rcpt)
    return sum(len(list((md / d).glob("*"))) for d in ("new", "cur")
               if (md / d).exists())


def login(p, user=ALICE, pw=PW, tls="pop3s"):
    if tls == "pop3s":
        c = poplib.POP3_SSL("127.0.0.1", p.ports["pop3s"],
                            context=tls_context(), timeout=30)
    else:
        c = poplib.POP3("127.0.0.1", p.ports["pop3"], timeout=30)
        if tls == "stls":
            c.stls(tls_context())
    c.user(user)
    c.pass_(pw)
    return c


class Raw:
    """A raw POP3 connection for exact bytes."""

    def __init__(self, port, tls=False, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        if tls:
            self.sock = tls_context().wrap_socket(self.sock)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed; have %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.line()

    def multi(self):
        """The lines of a multi-line body, up to the "." line."""
        lines = []
        while True:
            ln = self.line()
            if ln == ".":
                return lines
            lines.append(ln)

    def starttls(self):
        self.sock = tls_context().wrap_socket(self.sock)
        self.buf = b""

    def closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def raw_login(p, user=ALICE, pw=PW):
    r = Raw(p.ports["pop3s"], tls=True)
    assert r.line().startswith("+OK")
    assert r.cmd(f"USER {user}").startswith("+OK")
    reply = r.cmd(f"PASS {pw}")
    assert reply.startswith("+OK"), reply
    return r


# ---- the normal path ----


def test_stls_download_and_delete(petrel):
    sent = deliver(petrel, n=3)
    c = poplib.POP3("127.0.0.1", petrel.ports["pop3"], timeout=30)
    assert b"Petrel" in c.getwelcome()
    caps = c.capa()
    assert "STLS" in caps and "USER" not in caps and "SASL" not in caps
    c.stls(tls_context())
    caps = c.capa()
    assert "STLS" not in caps
    for k in ("USER", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE",
              "PIPELINING"):
        assert k in caps, caps
    assert caps["SASL"] == ["PLAIN"]
    c.user(ALICE)
    assert c.pass_(PW).startswith(b"+OK")
    n, size = c.stat()
    assert n == 3
    resp, listing, _ = c.list()
    sizes = [int(x.split()[1]) for x in listing]
    assert sum(sizes) == size
    uidls = [x.split()[1] for x in c.uidl()[1]]
    assert len(set(uidls)) == 3
    for i in range(3):
        resp, lines, octets = c.retr(i + 1)
        assert resp == f"+OK {sizes[i]} octets".encode()
        text = b"\r\n".join(lines) + b"\r\n"
        # The size announced is the size sent, before byte-stuffing.
        assert len(text) == sizes[i]
        assert text.endswith(sent[i].split("\r\n\r\n", 1)[1].encode())
        assert b"Subject: m%d" % i in text
    assert c.dele(1).startswith(b"+OK")
    c.quit()
    assert count(petrel) == 2
    # UIDLs are stable across sessions; numbers are per session.
    c = login(petrel)
    assert [x.split()[1] for x in c.uidl()[1]] == uidls[1:]
    assert c.uidl(1).split()[2] == uidls[1]
    c.quit()
    # Retrieved messages moved to cur/ with the S flag.
    md = petrel.maildir(ALICE)
    assert not list((md / "new").glob("*"))
    cur = sorted(f.name for f in (md / "cur").glob("*"))
    assert len(cur) == 2 and all(f.endswith(":2,S") for f in cur)
    assert "logged in as alice@example.test (USER)" in petrel.log("pop3")


def test_pop3s_and_top(petrel):
    deliver(petrel, body="l1\r\n.l2\r\nl3\r\n")
    c = login(petrel)
    resp, lines, _ = c.top(1, 0)
    assert lines[-1] == b"" and b"Subject: m0" in lines
    assert b"l1" not in lines
    resp, lines, _ = c.top(1, 2)
    assert lines[-2:] == [b"l1", b".l2"]  # poplib removes the stuffing
    c.quit()
    # TOP does not mark the message seen.
    assert list((petrel.maildir(ALICE) / "new").glob("*"))


def test_dot_stuffing_on_the_wire(petrel):
    deliver(petrel, body=".\r\n..x\r\n.y\r\nend\r\n")
    r = raw_login(petrel)
    first = r.cmd("RETR 1")
    size = int(first.split()[1])
    lines = r.multi()
    body = lines[lines.index("") + 1:]
    assert body == ["..", "...x", "..y", "end"]
    unstuffed = [ln[1:] if ln.startswith(".") else ln for ln in lines]
    assert len("\r\n".join(unstuffed)) + 2 == size
    assert r.cmd("QUIT").startswith("+OK")


def test_pipelining(petrel):
    deliver(petrel, n=2)
    r = raw_login(petrel)
    r.send("STAT\r\nLIST 1\r\nUIDL 2\r\nNOOP\r\nRETR 2\r\nQUIT\r\n")
    assert r.line().startswith("+OK 2 ")
    assert r.line().startswith("+OK 1 ")
    assert r.line().startswith("+OK 2 ")
    assert r.line() == "+OK"
    assert r.line().startswith("+OK ") and r.multi()
    assert r.line().startswith("+OK")
    assert r.closed()


def test_big_message_streams(petrel):
    line = "x" * 998 + "\r\n"
    body = line * 5000 + ".starts with a dot\r\n"  # ~5 MB
    deliver(petrel, body=body)
    c = login(petrel)
    size = c.list(1).split()[2]
    resp, lines, octets = c.retr(1)
    assert resp == b"+OK " + size + b" octets"
    assert lines.count(b"x" * 998) == 5000
    assert lines[-1] == b".starts with a dot"
    c.quit()


def test_mailbox_of_10000_messages(petrel):
    """Listing and UIDL of a big mailbox are quick: sizes come from the
    names, and the listing is one write."""
    text = b"Subject: s\n\nbody\n"

    def fill(address, n):
        md = petrel.maildir(address)
        for d in ("new", "cur", "tmp"):
            (md / d).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            name = (f"{1700000000 + i}.M{i:06d}P1Q{i}.mx.example.test,"
                    f"S={len(text)},W={len(text) + 3}")
            (md / ("cur" if i % 2 else "new") / name).write_bytes(text)

    def listing(address, n):
        """Login (the scan), STAT, LIST and UIDL; returns the session,
        the UIDL lines and the seconds it all took."""
        t = time.monotonic()
        c = login(petrel, user=address)
        assert c.stat() == (n, n * (len(text) + 3))
        assert len(c.list()[1]) == n
        uidls = c.uidl()[1]
        return c, uidls, time.monotonic() - t
    fill("bob@example.test", 10)
    fill(ALICE, 10000)
    # The control, in this run on this machine: the same for 10 messages,
    # where the login itself (argon2id, TLS) is nearly all the time.
    c, _, small = listing("bob@example.test", 10)
    c.quit()
    c, uidls, big = listing(ALICE, 10000)
    assert len(uidls) == 10000
    assert uidls[0].split()[1].startswith(b"1700000000.M000000")
    # 10000 messages cost less than 4 more such logins (a tenth of that
    # today): a per-message file access or a quadratic step would not.
    assert big - small < 4 * small, (big, small)
    assert c.retr(10000)[1][-1] == b"body"
    c.quit()


def test_mpop_downloads_and_deletes(petrel, tmp_path):
    mpop = shutil.which("mpop")
    if mpop is None:
        pytest.fail("mpop is not installed (make deps)")
    deliver(petrel, n=3)
    out = tmp_path / "fetched"
    for d in ("tmp", "new", "cur"):
        (out / d).mkdir(parents=True)
    rc = tmp_path / "mpoprc"
    rc.write_text(f"""defaults
tls on
tls_starttls on
tls_certcheck off
timeout 30
account petrel
host 127.0.0.1
port {petrel.ports['pop3']}
auth user
user {ALICE}
passwordeval echo '{PW}'
delivery maildir {out}
keep off
uidls_file {tmp_path}/uidls
""")
    rc.chmod(0o600)
    r = subprocess.run([mpop, "-C", str(rc), "petrel"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    got = sorted((out / "new").glob("*"))
    assert len(got) == 3
    assert all(b"Subject: m" in f.read_bytes() for f in got)
    assert count(petrel) == 0
    # Over implicit TLS with SASL PLAIN this time.
    deliver(petrel, n=1)
    rc.write_text(rc.read_text().replace(
        "tls_starttls on", "tls_starttls off").replace(
        f"port {petrel.ports['pop3']}", f"port {petrel.ports['pop3s']}")
        .replace("auth user", "auth plain"))
    r = subprocess.run([mpop, "-C", str(rc), "petrel"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(list((out / "new").glob("*"))) == 4
    assert count(petrel) == 0
    log = petrel.log("pop3")
    assert "(PLAIN)" in log and PW not in log


def test_fetchmail_downloads_and_deletes(petrel, tmp_path):
    """fetchmail over STLS on the plain port: every message to the MDA,
    each deleted on the server, then nothing left to fetch."""
    fetchmail = shutil.which("fetchmail")
    if fetchmail is None:
        pytest.fail("fetchmail is not installed (make deps)")
    sent = deliver(petrel, n=3, subject="fm")
    home = tmp_path / "fmhome"
    home.mkdir()
    out = tmp_path / "fetched.mbox"
    rc = home / "fetchmailrc"
    # sslproto without ssl: STLS and nothing else. The daemon's
    # certificate is self-signed, hence no sslcertck.
    rc.write_text(f"""set no bouncemail
poll 127.0.0.1 service {petrel.ports['pop3']} protocol POP3 timeout 30
    user "{ALICE}" there with password "{PW}"
    sslproto 'TLS1.2+' no sslcertck
    fetchall nokeep
    mda "cat >> {out}; echo '---' >> {out}"
""")
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(home), FETCHMAILHOME=str(home))
    cmd = [fetchmail, "--nodetach", "--nosyslog", "-f", str(rc),
           "--pidfile", str(home / "pid")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    got = out.read_text()
    assert got.count("\n---\n") == 3
    for msg in sent:
        subject, body = msg.split("\r\n\r\n")
        assert subject in got and body.strip() in got
    assert count(petrel) == 0
    log = petrel.log("pop3")
    assert "<-- STLS" in log and "TLS started" in log
    assert "update: 3 of 3 deleted messages removed" in log
    assert PW not in log
    # Nothing left: fetchmail says so with exit code 1.
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert out.read_text() == got


# ---- UPDATE state, snapshot, lock ----


def test_dele_only_at_quit(petrel):
    deliver(petrel, n=3)
    r = raw_login(petrel)
    assert r.cmd("DELE 1").startswith("+OK")
    assert r.cmd("DELE 1") == "-ERR Message 1 is deleted"
    assert r.cmd("RETR 1").startswith("-ERR")
    assert r.cmd("LIST 1").startswith("-ERR")
    assert r.cmd("TOP 1 0").startswith("-ERR")
    assert r.cmd("UIDL 1").startswith("-ERR")
    assert r.cmd("STAT").startswith("+OK 2 ")
    assert r.cmd("LIST").startswith("+OK 2 messages")
    assert [ln.split()[0] for ln in r.multi()] == ["2", "3"]
    r.close()  # no QUIT: RFC 1939 6, nothing is removed
    assert wait_for(lambda: "disconnected" in petrel.log("pop3"))
    assert count(petrel) == 3
    r = raw_login(petrel)
    assert r.cmd("DELE 2").startswith("+OK")
    assert r.cmd("RSET").startswith("+OK 3 messages")
    assert r.cmd("QUIT").startswith("+OK")
    assert count(petrel) == 3
    r = raw_login(petrel)
    assert r.cmd("DELE 3").startswith("+OK")
    assert r.cmd("DELE 1").startswith("+OK")
    assert "2 messages deleted" in r.cmd("QUIT")
    assert count(petrel) == 1


def test_snapshot_at_login(petrel):
    deliver(petrel, n=1)
    c = login(petrel)
    assert c.stat()[0] == 1
    deliver(petrel, n=1)
    assert c.stat()[0] == 1
    c.quit()
    c = login(petrel)
    assert c.stat()[0] == 2
    c.quit()


def test_second_session_in_use(petrel):
    deliver(petrel, n=1)
    first = login(petrel)
    r = Raw(petrel.ports["pop3s"], tls=True)
    r.line()
    r.cmd(f"USER {ALICE}")
    assert r.cmd(f"PASS {PW}").startswith("-ERR [IN-USE]")
    # Still in AUTHORIZATION: another account may log in.
    r.cmd("USER bob@example.test")
    assert r.cmd(f"PASS {PW}").startswith("+OK")
    r.cmd("QUIT")
    first.quit()
    c = login(petrel)
    assert c.stat()[0] == 1
    c.quit()


def test_message_removed_by_another_client(petrel):
    deliver(petrel, n=2)
    r = raw_login(petrel)
    min((petrel.maildir(ALICE) / "new").glob("*")).unlink()
    assert r.cmd("RETR 1").startswith("-ERR Message 1 was removed")
    assert r.cmd("RETR 2").startswith("+OK")
    r.multi()
    assert r.cmd("DELE 1").startswith("+OK")  # already gone: fine
    assert r.cmd("QUIT").startswith("+OK")
    assert count(petrel) == 1


def test_message_renamed_by_another_client(petrel):
    deliver(petrel, n=1)
    r = raw_login(petrel)
    md = petrel.maildir(ALICE)
    f = next((md / "new").glob("*"))
    (md / "cur").mkdir(exist_ok=True)
    f.rename(md / "cur" / (f.name + ":2,F"))
    assert r.cmd("RETR 1").startswith("+OK")
    r.multi()
    assert [x.name for x in (md / "cur").glob("*")] == [f.name + ":2,FS"]
    assert r.cmd("DELE 1").startswith("+OK")
    assert r.cmd("QUIT").startswith("+OK")
    assert count(petrel) == 0


# ---- authentication ----


def test_plaintext_login_refused_without_tls(petrel):
    r = Raw(petrel.ports["pop3"])
    r.line()
    assert r.cmd(f"USER {ALICE}").startswith("-ERR [AUTH] Plaintext")
    assert r.cmd(f"PASS {PW}").startswith("-ERR [AUTH] Plaintext")
    assert r.cmd("AUTH PLAIN " + plain()).startswith("-ERR [AUTH]")
    assert r.cmd("AUTH") == "+OK"
    assert r.multi() == []  # no mechanism offered in the clear
    r.cmd("QUIT")
    assert PW not in petrel.log("pop3")


def test_plaintext_allowed_by_setting(petrel_factory):
    p = petrel_factory(settings={"auth.allow_plaintext": "on"})
    deliver(p, n=1)
    c = poplib.POP3("127.0.0.1", p.ports["pop3"], timeout=30)
    caps = c.capa()
    assert "USER" in caps and caps["SASL"] == ["PLAIN"] and "STLS" in caps
    c.user(ALICE)
    c.pass_(PW)
    assert c.stat()[0] == 1
    c.quit()


def plain(user=ALICE, pw=PW, authz=""):
    return base64.b64encode(f"{authz}\0{user}\0{pw}".encode()).decode()


def test_auth_plain(petrel):
    deliver(petrel, n=1)
    r = Raw(petrel.ports["pop3s"], tls=True)
    r.line()
    assert r.cmd("AUTH") == "+OK"
    assert r.multi() == ["PLAIN"]
    assert r.cmd("AUTH CRAM-MD5").startswith("-ERR")
    assert r.cmd("AUTH PLAIN") == "+ "
    assert r.cmd("*") == "-ERR Authentication cancelled"
    assert r.cmd("AUTH PLAIN") == "+ "
    assert r.cmd("!!notbase64").startswith("-ERR")
    assert r.cmd("AUTH PLAIN " + base64.b64encode(b"nonuls").decode()) \
        .startswith("-ERR Malformed")
    assert r.cmd("AUTH PLAIN =").startswith("-ERR")
    assert r.cmd("AUTH PLAIN " + plain(authz="bob@example.test")) \
        .startswith("-ERR Malformed")
    assert r.cmd("AUTH PLAIN") == "+ "
    assert r.cmd(plain()).startswith("+OK Logged in, 1 messages")
    assert r.cmd("AUTH PLAIN x").startswith("-ERR Command not valid after")
    r.cmd("QUIT")
    r = Raw(petrel.ports["pop3s"], tls=True)
    r.line()
    assert r.cmd("auth plain " + plain()).startswith("+OK")
    r.cmd("QUIT")
    log = petrel.log("pop3")
    assert plain() not in log and PW not in log
    assert "AUTH PLAIN <redacted>" in log
    # Credentials sent out of turn, after a refused AUTH, are not logged.
    r = Raw(petrel.ports["pop3"])
    r.line()
    assert r.cmd("AUTH PLAIN").startswith("-ERR [AUTH]")
    assert r.cmd(plain()) == "-ERR Unknown command"
    r.cmd("QUIT")
    log = petrel.log("pop3")
    assert plain() not in log and "[unknown, " in log


def test_auth_failures(petrel_factory):
    p = petrel_factory(settings={"auth.fail_delay_ms": "300"})
    r = Raw(p.ports["pop3s"], tls=True)
    r.line()
    times = []
    for user, pw in ((ALICE, "wrong password"),
                     ("nobody@example.test", "wrong password"),
                     ("nobody@elsewhere.test", PW)):
        r.cmd(f"USER {user}")
        t = time.monotonic()
        reply = r.cmd(f"PASS {pw}")
        times.append(time.monotonic() - t)
        assert reply == "-ERR [AUTH] Authentication failed"
    # The same reply after the same delay for a wrong password and an
    # unknown account; the third failure closes the session.
    assert all(t >= 0.3 for t in times), times
    assert r.closed()
    sec = p.log("security")
    for user in (ALICE, "nobody@example.test"):
        assert (f"auth failed: ip=127.0.0.1 port=" in sec and
                f"account={user} mechanism=USER service=pop3" in sec), sec
    assert "reason=password" in sec and "reason=unknown" in sec
    for text in (p.log("security"), p.log("pop3"), p.log("system")):
        assert "wrong password" not in text and PW not in text
    db = sqlite3.connect(p.data_dir / "petrel.db")
    n = db.execute("SELECT COUNT(*) FROM security_events "
                   "WHERE kind = 'auth-failure'").fetchone()[0]
    assert n == 3
    # PASS without USER, and USER again resets.
    r = Raw(p.ports["pop3s"], tls=True)
    r.line()
    assert r.cmd(f"PASS {PW}") == "-ERR USER first"
    assert r.cmd("USER").startswith("-ERR Syntax")
    assert r.cmd("USER " + "a" * 400).startswith("-ERR")
    r.cmd(f"USER {ALICE}")
    assert r.cmd("PASS").startswith("-ERR Syntax")
    assert r.cmd("PASS " + "p" * 600).startswith("-ERR [AUTH]")
    assert r.cmd("APOP alice 0123456789abcdef").startswith("-ERR")
    r.cmd("QUIT")


def test_disabled_and_frozen_accounts(petrel):
    deliver(petrel, n=1)
    petrel.ctl.ok("account", "disable", ALICE)
    r = Raw(petrel.ports["pop3s"], tls=True)
    r.line()
    r.cmd(f"USER {ALICE}")
    assert r.cmd(f"PASS {PW}").startswith("-ERR [SYS/PERM] Account is "
                                          "disabled")
    # A wrong password says nothing about the state.
    r.cmd(f"USER {ALICE}")
    assert r.cmd("PASS nope") == "-ERR [AUTH] Authentication failed"
    r.close()
    petrel.ctl.ok("account", "enable", ALICE)
    db = sqlite3.connect(petrel.data_dir / "petrel.db")
    db.execute("UPDATE accounts SET state = 2, state_reason = 'hijack' "
               "WHERE address = ?", (ALICE,))
    db.commit()
    db.close()
    r = Raw(petrel.ports["pop3s"], tls=True)
    r.line()
    assert r.cmd("AUTH PLAIN " + plain()).startswith(
        "-ERR [SYS/PERM] Account is frozen")
    r.close()
    assert "reason=frozen" in petrel.log("security")
    assert "reason=disabled" in petrel.log("security")


def test_last_login_shown(petrel):
    out = petrel.ctl.ok("account", "show", ALICE)
    assert "last login: never" in out
    login(petrel).quit()
    out = petrel.ctl.ok("account", "show", ALICE)
    assert "last login:" in out and "never" not in out


# ---- STLS ----


def test_stls_discards_injected_plaintext(petrel):
    """RFC 2595 / CVE-2011-0411 class: commands sent in the clear behind
    STLS must not be executed inside the TLS session."""
    r = Raw(petrel.ports["pop3"])
    r.line()
    r.send("STLS\r\nUSER mallory@example.test\r\nCAPA\r\n")
    assert r.line() == "+OK Begin TLS negotiation"
    r.starttls()
    # The first reply under TLS answers our command, not the injected
    # ones; and the injected USER was not taken.
    assert r.cmd("NOOP") == "+OK"
    assert r.cmd("PASS x") == "-ERR USER first"
    assert r.cmd("STLS") == "-ERR TLS is already active"
    r.cmd(f"USER {ALICE}")
    assert r.cmd(f"PASS {PW}").startswith("+OK")
    r.cmd("QUIT")
    log = petrel.log("pop3")
    assert "mallory" not in log


def test_stls_not_after_login(petrel_factory):
    p = petrel_factory(settings={"auth.allow_plaintext": "on"})
    r = Raw(p.ports["pop3"])
    r.line()
    r.cmd(f"USER {ALICE}")
    assert r.cmd(f"PASS {PW}").startswith("+OK")
    assert r.cmd("STLS") == "-ERR Command not valid after login"
    assert r.cmd("CAPA").startswith("+OK")
    caps = r.multi()
    assert "STLS" not in caps and "USER" not in caps
    r.cmd("QUIT")


# ---- errors ----


def test_command_errors(petrel):
    deliver(petrel, n=2)
    r = Raw(petrel.ports["pop3s"], tls=True)
    r.line()
    for cmd in ("STAT", "LIST", "RETR 1", "DELE 1", "RSET", "TOP 1 1",
                "UIDL"):
        assert r.cmd(cmd) == "-ERR Command not valid before login", cmd
    assert r.cmd("HELO x") == "-ERR Unknown command"
    assert r.cmd("CAPA x").startswith("-ERR Syntax")
    assert r.cmd("NOOP") == "+OK"
    r.close()
    r = raw_login(petrel)
    assert r.cmd("USER x") == "-ERR Command not valid after login"
    assert r.cmd("PASS x") == "-ERR Command not valid after login"
    assert r.cmd("STAT 1").startswith("-ERR Syntax")
    assert r.cmd("RETR") == "-ERR Invalid message number"
    assert r.cmd("RETR 0") == "-ERR Invalid message number"
    assert r.cmd("RETR -1") == "-ERR Invalid message number"
    assert r.cmd("RETR abc") == "-ERR Invalid message number"
    assert r.cmd("RETR 3") == "-ERR No such message"
    assert r.cmd("RETR 99999999999") == "-ERR Invalid message number"
    assert r.cmd("LIST 3") == "-ERR No such message"
    assert r.cmd("UIDL 3") == "-ERR No such message"
    assert r.cmd("DELE 3") == "-ERR No such message"
    assert r.cmd("TOP 1") == "-ERR Syntax: TOP message lines"
    assert r.cmd("TOP 1 -1") == "-ERR Syntax: TOP message lines"
    assert r.cmd("TOP 3 1") == "-ERR No such message"
    assert r.cmd("rset") .startswith("+OK")
    assert r.cmd("QUIT x").startswith("-ERR Syntax")
    assert r.cmd("QUIT").startswith("+OK")
    assert r.closed()
    assert count(petrel) == 2


def test_bad_lines(petrel):
    r = Raw(petrel.ports["pop3s"], tls=True)
    r.line()
    r.send("NOOP\n")
    assert r.line().startswith("-ERR Lines must end with CRLF")
    r.send("NO\rOP\r\n")
    assert r.line().startswith("-ERR Lines must end with CRLF")
    r.send("NO\0OP\r\n")
    assert r.line().startswith("-ERR Lines must end with CRLF")
    r.send("NOOP " + "x" * 5000 + "\r\n")
    assert r.line() == "-ERR Line too long"
    assert r.cmd("NOOP") == "+OK"  # the rest of the long line was skipped
    r.cmd("QUIT")
    assert "[malformed line]" in petrel.log("pop3")


def test_too_many_errors(petrel_factory):
    p = petrel_factory(settings={"pop3.max_errors": "3"})
    r = Raw(p.ports["pop3s"], tls=True)
    r.line()
    assert r.cmd("BAD1").startswith("-ERR")
    assert r.cmd("BAD2").startswith("-ERR")
    assert r.cmd("BAD3").startswith("-ERR")
    assert r.line() == "-ERR Too many errors, closing"
    assert r.closed()


def test_idle_timeout(petrel_factory):
    p = petrel_factory(settings={"pop3.timeout_idle": "1"})
    deliver(p, n=1)
    r = raw_login(p)
    assert r.cmd("DELE 1").startswith("+OK")
    t = time.monotonic()
    assert r.line() == "-ERR Autologout: idle for too long"
    assert time.monotonic() - t < 5
    assert r.closed()
    assert count(p) == 1  # no UPDATE state on a timeout
    # A TLS handshake that never starts is dropped too.
    s = socket.create_connection(("127.0.0.1", p.ports["pop3s"]), timeout=5)
    assert s.recv(100) == b""
    s.close()


def test_session_limits(petrel_factory):
    p = petrel_factory(settings={"pop3.max_sessions_per_ip": "2"})
    a, b = Raw(p.ports["pop3"]), Raw(p.ports["pop3"])
    a.line()
    b.line()
    c = Raw(p.ports["pop3"])
    assert c.line().startswith("-ERR [SYS/TEMP] Too many connections")
    assert c.closed()
    a.cmd("QUIT")
    assert a.closed()
    assert wait_for(lambda: _greets(p))
    b.close()
    assert "pop3.max_sessions_per_ip reached" in p.log("pop3")
    p.set("pop3.max_sessions", "1")
    p.set("pop3.max_sessions_per_ip", "20")
    d = Raw(p.ports["pop3"])
    assert d.line().startswith("+OK")
    # Over the limit on the POP3S port: closed before TLS, no reply.
    with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
        Raw(p.ports["pop3s"], tls=True).line()
    d.close()


def _greets(p):
    r = Raw(p.ports["pop3"])
    try:
        return r.line().startswith("+OK")
    finally:
        r.close()


def test_shutdown_closes_sessions(petrel_factory):
    p = petrel_factory()
    deliver(p, n=1)
    r = raw_login(p)
    assert r.cmd("DELE 1").startswith("+OK")
    idle = Raw(p.ports["pop3"])
    idle.line()
    assert p.stop() == 0
    assert r.line() == "-ERR [SYS/TEMP] Server shutting down"
    assert idle.line() == "-ERR [SYS/TEMP] Server shutting down"
    assert count(p) == 1


def test_transcript(petrel):
    deliver(petrel, n=1)
    c = login(petrel, tls="stls")
    c.retr(1)
    c.quit()
    log = petrel.log("pop3")
    assert "<-- PASS <redacted>" in log
    assert f"<-- USER {ALICE}" in log
    assert "--> +OK Logged in, 1 messages" in log
    assert "*** message 1:" in log and "octets sent" in log
    assert "Subject: m0" not in log  # message contents are not logged
    assert PW not in log
    logs = list(petrel.log_dir.glob("pop3-*.log"))
    assert logs and all(
        len(f.name) == len("pop3-YYYY-MM-DD.log") for f in logs)
