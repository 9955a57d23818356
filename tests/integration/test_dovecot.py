"""IMAP through Dovecot (docs/dovecot.md): the configuration in the docs,
pointed at a test's data directory, runs a private Dovecot instance (its
own base_dir, state and logs under the test's tmp dir, on loopback ports)
that authenticates against Petrel's directory and reads, with python's
imaplib, a message Petrel delivered. POP3 and IMAP then share the
mailbox."""
import grp
import pwd
import imaplib
import os
import pathlib
import poplib
import re
import shutil
import signal
import socket
import smtplib
import sqlite3
import subprocess
import time

import pytest

from conftest import ROOT, free_ports
from smtputil import tls_context, wait_for

PW = "correct horse battery staple"
ALICE = "alice@example.test"
DOVECOT = "/usr/sbin/dovecot"


def doc_blocks():
    """The dovecot.conf and SQL blocks of docs/dovecot.md."""
    text = (ROOT / "docs" / "dovecot.md").read_text()
    blocks = dict(re.findall(r"```(conf|sql)\n(.*?)```", text, re.S))
    assert set(blocks) == {"conf", "sql"}, "docs/dovecot.md changed shape"
    return blocks["conf"], blocks["sql"]


class Dovecot:
    def __init__(self, tmp, petrel):
        if not os.path.exists(DOVECOT):
            pytest.fail("dovecot-imapd is not installed (make deps)")
        self.dir = tmp / "dovecot"
        (self.dir / "run").mkdir(parents=True)
        (self.dir / "state").mkdir()
        self.imap, self.imaps = free_ports(2)
        user = pwd.getpwuid(petrel_owner()[0]).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        data = str(petrel.data_dir)
        conf, sql = doc_blocks()
        sql_path = self.dir / "dovecot-sql.conf.ext"
        sql_path.write_text(sql.replace("/var/lib/petrel", data))
        conf = conf.replace("/var/lib/petrel", data)
        conf = conf.replace("/etc/dovecot/dovecot-sql.conf.ext",
                            str(sql_path))
        uid, gid = petrel_owner()
        conf = conf.replace("uid=petrel gid=petrel", f"uid={uid} gid={gid}")
        conf = conf.replace("user = petrel", f"user = {user}")
        conf = conf.replace("listen = *, ::", "listen = 127.0.0.1")
        conf = conf.replace("port = 143", f"port = {self.imap}")
        conf = conf.replace("port = 993", f"port = {self.imaps}")
        conf = conf.replace("first_valid_uid = 100",
                            f"first_valid_uid = {min(os.getuid(), 100)}")
        conf = conf.replace("log_path = syslog",
                            f"log_path = {self.dir}/dovecot.log")
        conf = conf.replace("syslog_facility = mail\n", "")
        # A private instance: never the system's sockets, state or users.
        conf += f"""
base_dir = {self.dir}/run
state_dir = {self.dir}/state
instance_name = petrel-test
default_internal_user = {user if os.getuid() else "dovecot"}
default_internal_group = {group if os.getuid() else "dovecot"}
default_login_user = {user if os.getuid() else "dovenull"}
ssl_client_ca_dir =
# Tests run fast: no delay after a failed login.
auth_failure_delay = 0
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""
        self.conf = self.dir / "dovecot.conf"
        self.conf.write_text(conf)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.conf)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ok = wait_for(lambda: self._listening() or
                      self.proc.poll() is not None, timeout=20)
        if not ok or self.proc.poll() is not None:
            raise AssertionError("dovecot did not start: " + self.output())
        return self

    def _listening(self):
        import socket
        try:
            socket.create_connection(("127.0.0.1", self.imaps),
                                     timeout=1).close()
            return True
        except OSError:
            return False

    def output(self):
        text = ""
        log = self.dir / "dovecot.log"
        if log.exists():
            text += log.read_text(errors="replace")
        if self.proc is not None and self.proc.poll() is not None:
            text += self.proc.stdout.read().decode(errors="replace")
        return text[-4000:]

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc = None


# Dovecot never gives mail to root ("Mail access not allowed for root"):
# when the tests run as root, Petrel runs as this user, as it would run as
# `petrel` in production.
ROOT_RUNS_AS = "nobody"


def petrel_owner():
    if os.getuid() != 0:
        return os.getuid(), os.getgid()
    pw = pwd.getpwnam(ROOT_RUNS_AS)
    return pw.pw_uid, pw.pw_gid


@pytest.fixture
def petrel(petrel_factory, tmp_path):
    if os.getuid() != 0:
        return petrel_factory()
    # The test's folders must be passable for that user.
    for d in [tmp_path, *tmp_path.parents]:
        if d in (pathlib.Path("/tmp"), pathlib.Path("/")):
            break
        os.chmod(d, os.stat(d).st_mode | 0o011)
    return petrel_factory(user=ROOT_RUNS_AS)


@pytest.fixture
def dovecot(tmp_path, petrel):
    d = Dovecot(tmp_path, petrel).start()
    yield d
    d.stop()


class IMAP4From(imaplib.IMAP4_SSL):
    """IMAP4_SSL from a chosen loopback source address: Dovecot delays an
    address's logins more after each failure (its auth penalty), so each
    refused login comes from an address of its own."""

    def __init__(self, source, *args, **kw):
        self.source = source
        super().__init__(*args, **kw)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


_sources = iter(f"127.0.0.{i}" for i in range(10, 250))


def imap_login(d, user=ALICE, pw=PW):
    c = IMAP4From(next(_sources), "127.0.0.1", d.imaps,
                  ssl_context=tls_context(), timeout=30)
    c.login(user, pw)
    return c


def test_imap_reads_what_petrel_delivered(petrel, dovecot):
    with smtplib.SMTP("127.0.0.1", petrel.ports["smtp"], timeout=30) as s:
        s.sendmail("x@remote.test", [ALICE],
                   "Subject: via imap\r\nFrom: x@remote.test\r\n\r\n"
                   "hello over IMAP\r\n")
    assert wait_for(lambda: petrel.messages(ALICE, timeout=0), timeout=30)
    c = imap_login(dovecot, user="Alice@Example.TEST")
    typ, data = c.select("INBOX")
    assert typ == "OK" and data == [b"1"], dovecot.output()
    typ, data = c.fetch("1", "(RFC822)")
    assert typ == "OK"
    msg = data[0][1]
    assert b"Subject: via imap" in msg and b"hello over IMAP" in msg
    assert b"Delivered-To: <alice@example.test>" in msg
    c.logout()
    # The same message over POP3: IMAP marked it seen (cur/, S), POP3
    # finds it there, with the UIDL it always had (the base name).
    p = poplib.POP3_SSL("127.0.0.1", petrel.ports["pop3s"],
                        context=tls_context(), timeout=30)
    p.user(ALICE)
    p.pass_(PW)
    assert p.stat()[0] == 1
    uidl = p.uidl(1).split()[2].decode()
    cur = list((petrel.maildir(ALICE) / "cur").glob("*"))
    assert [f.name.split(":")[0] for f in cur] == [uidl]
    assert b"hello over IMAP" in b"\r\n".join(p.retr(1)[1])
    p.dele(1)
    p.quit()
    c = imap_login(dovecot)
    typ, data = c.select("INBOX")
    assert data == [b"0"]
    c.logout()


def refused(d, **kw):
    """The login is refused as a failed authentication (RFC 5530), not
    for another reason (a broken passdb answers [UNAVAILABLE])."""
    with pytest.raises(imaplib.IMAP4.error) as e:
        imap_login(d, **kw)
    assert "[AUTHENTICATIONFAILED]" in str(e.value), \
        (str(e.value), d.output())


def test_imap_refuses_what_petrel_refuses(petrel, dovecot):
    refused(dovecot, pw="wrong password")
    refused(dovecot, user="nobody@example.test")
    petrel.ctl.ok("account", "disable", ALICE)
    refused(dovecot)
    petrel.ctl.ok("account", "enable", ALICE)
    db = sqlite3.connect(petrel.data_dir / "petrel.db")
    db.execute("UPDATE accounts SET state = 2 WHERE address = ?", (ALICE,))
    db.commit()
    refused(dovecot)
    db.execute("UPDATE accounts SET state = 0 WHERE address = ?", (ALICE,))
    db.commit()
    db.close()
    imap_login(dovecot).logout()
    # A password changed with petrelctl counts at once.
    petrel.ctl.ok("account", "passwd", ALICE, input="new secret 123\n")
    refused(dovecot)
    imap_login(dovecot, pw="new secret 123").logout()
