"""The daemon process itself: config check (-n), usage, IPv6 listeners,
signals (SIGTERM finishes in-flight transactions, SIGHUP reopens logs), the
self-signed certificate, live settings and the session limit."""
import email
import resource
import os
import re
import signal
import smtplib
import socket
import stat
import subprocess
import time

import pytest

from conftest import binary, free_port, write_config
from smtputil import Raw, wait_for


def check_config(path, *extra):
    return subprocess.run([binary("petreld"), "-n", "-c", str(path), *extra],
                          capture_output=True, text=True, timeout=60)


def one_line(text):
    lines = text.splitlines()
    assert len(lines) == 1, f"want one line, got {lines!r}"
    return lines[0]


# --- petreld -n -c FILE ---------------------------------------------------

def test_check_good_config(config):
    r = check_config(config)
    assert r.returncode == 0, r.stderr
    assert f"{config}:" not in r.stderr


def test_check_good_config_all_keys(tmp_path, data_dir):
    path = tmp_path / "full.conf"
    path.write_text(
        "# every key, comments and blank lines\n"
        "\n"
        f"data_dir = {data_dir}\n"
        f"log_dir = {tmp_path}/logs   # trailing comment\n"
        "hostname = mx.example.test\n"
        "listen_smtp = 127.0.0.1:2525, [::1]:2525\n"
        "listen_submission = [::]:2587\n"
        "listen_smtps = none\n"
        "listen_pop3 = 0.0.0.0:2110\n"
        "listen_pop3s = none\n"
        "listen_admin = 127.0.0.1:8025\n"
        f"tls_cert = {tmp_path}/cert.pem\n"
        f"tls_key = {tmp_path}/key.pem\n"
        "smarthost = relay.example.test:587\n"
        "dns_server = 127.0.0.1:53\n"
        "user = nobody\n"
        "workers = 2\n")
    r = check_config(path)
    assert r.returncode == 0, r.stderr
    # -n only checks: it starts nothing and creates nothing.
    assert not (tmp_path / "logs").exists()
    assert not (tmp_path / "cert.pem").exists()


BAD_LINES = [
    ("unknown key", "no_such_key = 1", "unknown key"),
    ("bad value", "workers = 0", "workers"),
    ("bad value, not a number", "workers = many", "workers"),
    ("bad host name", "hostname = -mx.example.test", "hostname"),
    ("IPv4 out of range", "listen_smtp = 256.0.0.1:25", "listen_smtp"),
    ("IPv4 without port", "listen_smtp = 127.0.0.1", "listen_smtp"),
    ("IPv4 port 0", "listen_smtp = 127.0.0.1:0", "listen_smtp"),
    ("IPv4 port too big", "listen_smtp = 127.0.0.1:65536", "listen_smtp"),
    ("host name as listen address", "listen_smtp = localhost:25",
     "listen_smtp"),
    ("one bad address in a list",
     "listen_submission = 127.0.0.1:2587, 127.0.0.300:2587",
     "listen_submission"),
    ("IPv6 without brackets", "listen_smtp = ::1:25", "listen_smtp"),
    ("IPv6 unclosed bracket", "listen_smtp = [::1:25", "listen_smtp"),
    ("IPv6 bad digits", "listen_smtp = [fe80::zz]:25", "listen_smtp"),
    ("IPv6 no colon before port", "listen_smtp = [::1]25", "listen_smtp"),
    ("IPv6 no port", "listen_smtp = [::1]:", "listen_smtp"),
    ("missing '='", "hostname mx.example.test", None),
    ("missing key", "= 1", None),
]


@pytest.mark.parametrize("bad,what", [(b, w) for _, b, w in BAD_LINES],
                         ids=[n for n, _, _ in BAD_LINES])
def test_check_bad_config(tmp_path, data_dir, bad, what):
    path = tmp_path / "bad.conf"
    path.write_text("# a config with one mistake\n"
                    f"data_dir = {data_dir}\n"
                    "\n"
                    f"{bad}\n"
                    "listen_pop3 = none\n")
    r = check_config(path)
    assert r.returncode == 1, r.stderr
    line = one_line(r.stderr)
    assert line.startswith(f"petreld: {path}:4: "), line
    if what is not None:
        assert what in line
    assert r.stdout == ""


def test_check_duplicate_key(tmp_path, data_dir):
    path = tmp_path / "dup.conf"
    path.write_text(f"data_dir = {data_dir}\n"
                    "hostname = a.example.test\n"
                    "listen_smtp = none\n"
                    "hostname = b.example.test\n")
    r = check_config(path)
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert line.startswith(f"petreld: {path}:4: ") and "hostname" in line, line


def test_check_missing_file(tmp_path):
    path = tmp_path / "nowhere.conf"
    r = check_config(path)
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert str(path) in line


def test_start_with_bad_config_exits_1(tmp_path, data_dir):
    """Without -n a bad config stops the daemon before it starts."""
    path = tmp_path / "bad.conf"
    path.write_text(f"data_dir = {data_dir}\nlisten_smtp = [::1\n")
    r = subprocess.run([binary("petreld"), "-c", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert f"{path}:2: " in r.stderr


@pytest.mark.parametrize("argv", [[], ["-n"], ["-c"], ["-x", "-c", "f"]],
                         ids=["no args", "-n alone", "-c without file",
                              "unknown option"])
def test_usage(argv):
    r = subprocess.run([binary("petreld"), *argv], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "usage" in (r.stderr + r.stdout).lower()


def test_revision(petrel):
    """petreld -V names the commit it was built from, and so does the
    system log when it starts: an admin (and a benchmark) can tell which
    build runs."""
    r = subprocess.run([binary("petreld"), "-V"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    here = os.path.dirname(os.path.abspath(__file__))
    git = ["git", "-c", "safe.directory=*", "-C", here]
    m = re.fullmatch(r"petreld ([0-9a-f]{12,40}\+?|unknown)\n", r.stdout)
    assert m, r.stdout
    if m.group(1) == "unknown":
        # Only a tree git cannot read (an unpacked archive) has no commit.
        assert subprocess.run(git + ["rev-parse", "HEAD"],
                              capture_output=True).returncode != 0
    else:
        commit = m.group(1).rstrip("+")
        assert subprocess.run(git + ["cat-file", "-e", commit + "^{commit}"],
                              capture_output=True).returncode == 0, \
            f"{commit} is no commit of this tree"
    assert f"petreld {m.group(1)} starting, hostname " in \
        petrel.log("system")


# --- the running daemon ----------------------------------------------------

def free_port6():
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


def test_ipv6_listener(petrel_factory):
    """Never skipped: where ::1 is missing, this fails (in free_port6)."""
    p4, p6 = free_port(), free_port6()
    p = petrel_factory(start=False,
                       listen_smtp=f"127.0.0.1:{p4}, [::1]:{p6}")
    p.ports["smtp"] = p4  # start() waits on the IPv4 one
    p.start()
    with smtplib.SMTP("::1", p6, timeout=30) as c:
        code, _ = c.ehlo("client.example")
        assert code == 250
        c.sendmail("someone@remote.test", ["alice@example.test"],
                   "Subject: over IPv6\r\n\r\nhello\r\n")
    assert "connect from [::1]" in p.log("smtp-in")
    files = p.messages("alice@example.test")
    assert len(files) == 1
    m = email.message_from_bytes(files[0].read_bytes())
    assert "[IPv6:::1]" in m["Received"]


def wait_exit(p, timeout):
    """Waits for the daemon to exit; returns (rc, seconds)."""
    t = time.monotonic()
    rc = p.proc.wait(timeout=timeout)
    return rc, time.monotonic() - t


def test_sigterm_exits_promptly(petrel):
    idle = Raw(petrel.ports["smtp"])
    assert idle.code() == 220
    assert idle.cmd("EHLO client.example")[0] == 250
    petrel.proc.send_signal(signal.SIGTERM)
    # An idle session is told and closed.
    code, lines = idle.reply()
    assert code == 421 and "4.3.2" in lines[0]
    assert idle.closed()
    rc, took = wait_exit(petrel, 5)
    assert rc == 0, petrel.stderr_text()[-2000:]
    assert took < 5


def test_sigterm_finishes_data_in_flight(petrel):
    mid = "<in-flight@client.example>"
    r = Raw(petrel.ports["smtp"])
    assert r.code() == 220
    r.cmd("EHLO client.example")
    assert r.cmd("MAIL FROM:<someone@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    r.send(f"Message-ID: {mid}\r\nSubject: half\r\n\r\nfirst half\r\n")
    petrel.proc.send_signal(signal.SIGTERM)
    # New clients are no longer served once the signal is handled.
    def refused():
        try:
            c = Raw(petrel.ports["smtp"], timeout=2)
        except OSError:
            return True
        try:
            return c.code() != 220
        except (OSError, ConnectionError):
            return True
        finally:
            c.close()
    assert wait_for(refused, timeout=3)
    assert petrel.proc.poll() is None  # still finishing our message
    r.send("second half\r\n.\r\n")
    code, lines = r.reply()
    assert code == 250, lines
    assert r.code() == 421
    assert r.closed()
    rc, took = wait_exit(petrel, 5)
    assert rc == 0, petrel.stderr_text()[-2000:]
    assert took < 5
    petrel.stop()
    # The accepted message is delivered, after a restart at the latest.
    petrel.start()
    files = petrel.messages("alice@example.test")
    mids = [email.message_from_bytes(f.read_bytes())["Message-ID"]
            for f in files]
    assert mids == [mid]
    body = email.message_from_bytes(files[0].read_bytes()).get_payload()
    assert body == "first half\nsecond half\n"


def smtp_in_logs(p):
    return sorted(p.log_dir.glob("smtp-in-*.log"))


def test_sighup_reopens_logs(petrel):
    with smtplib.SMTP("127.0.0.1", petrel.ports["smtp"], timeout=30) as c:
        c.ehlo("before.example")
    assert wait_for(lambda: "before.example" in petrel.log("smtp-in"))
    [log] = smtp_in_logs(petrel)
    rotated = petrel.log_dir / "rotated.old"
    log.rename(rotated)
    petrel.proc.send_signal(signal.SIGHUP)

    # The signal is handled between events: connect until a line lands in
    # the new file.
    n = [0]

    def new_file_has_lines():
        n[0] += 1
        name = f"after{n[0]}.example"
        with smtplib.SMTP("127.0.0.1", petrel.ports["smtp"],
                          timeout=30) as c:
            c.ehlo(name)
        files = smtp_in_logs(petrel)
        return files and name in files[0].read_text(errors="replace")
    assert wait_for(new_file_has_lines, timeout=5, step=0.1)
    [new] = smtp_in_logs(petrel)
    assert new.name == log.name
    text = new.read_text(errors="replace")
    assert "before.example" not in text
    assert re.search(r"<-- ehlo after\d+\.example", text, re.I), text
    assert petrel.proc.poll() is None  # SIGHUP does not stop it
    # The old file got nothing of the last session.
    assert f"after{n[0]}.example" not in rotated.read_text(errors="replace")


def test_self_signed_certificate(petrel_factory):
    p = petrel_factory(start=False)
    tls = p.data_dir / "tls"
    assert not tls.exists()
    p.start()
    cert, key = tls / "cert.pem", tls / "key.pem"
    assert cert.exists() and key.exists()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"-----BEGIN CERTIFICATE-----" in cert.read_bytes()
    assert b"PRIVATE KEY-----" in key.read_bytes()
    # The server uses it: a TLS client sees this certificate.
    import ssl
    pem = ssl.get_server_certificate(("127.0.0.1", p.ports["smtps"]))
    assert (ssl.PEM_cert_to_DER_cert(pem) ==
            ssl.PEM_cert_to_DER_cert(cert.read_text()))
    # A restart keeps the pair.
    before = (cert.read_bytes(), key.read_bytes())
    assert p.stop() == 0
    p.start()
    assert (cert.read_bytes(), key.read_bytes()) == before
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


RCPTS = ["alice@example.test", "bob@example.test", "postmaster@example.test",
         "info@example.test"]


def rcpt_limit_hit(port, n):
    """Opens a new session and gives n+1 recipients; True when the last one
    is refused with 452 and the first n accepted."""
    r = Raw(port)
    try:
        r.reply()
        r.cmd("EHLO client.example")
        r.cmd("MAIL FROM:<someone@remote.test>")
        # Distinct addresses: a recipient named twice counts once.
        codes = [r.cmd(f"RCPT TO:<{RCPTS[i]}>")[0] for i in range(n + 1)]
        r.cmd("QUIT")
    finally:
        r.close()
    return codes == [250] * n + [452]


def test_setting_takes_effect_live(petrel):
    petrel.ctl.ok("alias", "add", "info@example.test", "alice@example.test")
    assert not rcpt_limit_hit(petrel.ports["smtp"], 2)  # default is 100
    t = time.monotonic()
    petrel.ctl.ok("set", "smtp.max_recipients", "2")
    t_set = time.monotonic()
    assert wait_for(lambda: rcpt_limit_hit(petrel.ports["smtp"], 2),
                    timeout=1.0, step=0.05), \
        f"not in effect 1 s after petrelctl set ({t_set - t:.2f} s to set)"
    # And back, still without a restart.
    petrel.ctl.ok("set", "smtp.max_recipients", "3")
    assert wait_for(lambda: rcpt_limit_hit(petrel.ports["smtp"], 3),
                    timeout=1.0, step=0.05)
    assert petrel.proc.poll() is None


def test_max_sessions(petrel_factory):
    p = petrel_factory(settings={"smtp.max_sessions": "2"})
    a, b = Raw(p.ports["smtp"]), Raw(p.ports["submission"])
    assert a.code() == 220 and b.code() == 220
    # The limit counts sessions on every listener.
    for port in (p.ports["smtp"], p.ports["submission"]):
        extra = Raw(port)
        code, lines = extra.reply()
        assert code == 421 and "4.7.0" in lines[0], lines
        assert extra.closed()
    assert "smtp.max_sessions reached" in p.log("smtp-in")
    # A freed slot is served again.
    a.cmd("QUIT")
    a.close()

    def served():
        c = Raw(p.ports["smtp"])
        try:
            return c.code() == 220
        finally:
            c.close()
    assert wait_for(served, timeout=5)
    b.close()


def nofile(pid):
    """(soft, hard) descriptor limits of a running process."""
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            return tuple(resource.RLIM_INFINITY if v == "unlimited"
                         else int(v) for v in line.split()[3:5])
    raise AssertionError("no limit line")


def test_descriptor_limit_raised_to_hard(petrel_factory):
    """A soft limit of 256 would stop petreld at 256 sessions, spool files
    and deliveries together; it raises it to the hard limit and says so."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"hard descriptor limit {hard} here")
    p = petrel_factory(start=False)
    p.preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                           (256, hard))
    p.start()
    # At most 2^20, where the hard limit is higher or none.
    want = 1 << 20 if hard == resource.RLIM_INFINITY else min(hard, 1 << 20)
    assert nofile(p.proc.pid) == (want, hard)
    assert f"descriptor limit {want}" in p.log("system")


def test_descriptor_limit_too_low_is_warned(petrel_factory):
    """When even the hard limit is short of what the session limits need,
    the admin reads it in the system log; petreld still runs."""
    p = petrel_factory(start=False)
    p.preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                           (512, 512))
    p.start()
    assert nofile(p.proc.pid) == (512, 512)
    log = p.log("system")
    assert "descriptor limit 512 is below the 9024 that smtp.max_sessions, " \
        "pop3.max_sessions and queue.active_limit need" in log, log[-2000:]
    with smtplib.SMTP("127.0.0.1", p.ports["smtp"], timeout=10) as s:
        assert s.ehlo()[0] == 250

