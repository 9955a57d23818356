"""Failed-login screening and connection limits through the real daemon."""
import base64
import json

from smtputil import Raw, wait_for

PW = "correct horse battery staple"


def auth_plain(petrel, user, password, source):
    """One AUTH PLAIN on a fresh submission session (plaintext allowed by
    the fixture's settings below). Returns the reply code, or 421 when the
    connection was refused at the greeting."""
    r = Raw(petrel.ports["submission"], source=source)
    try:
        code, _ = r.reply()
        if code != 220:
            return code
        r.cmd("EHLO c")
        blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return r.cmd(f"AUTH PLAIN {blob}")[0]
    finally:
        r.close()


def greeting(petrel, source):
    r = Raw(petrel.ports["smtp"], source=source)
    try:
        return r.reply()
    finally:
        r.close()


def screening_petrel(petrel_factory, **settings):
    s = {"auth.allow_plaintext": "on", "screening.auth_failures": "3",
         "auth.fail_delay_ms": "0"}
    s.update(settings)
    return petrel_factory(settings=s)


def test_failures_block_the_ip(petrel_factory):
    p = screening_petrel(petrel_factory)
    ip = "127.0.0.21"
    codes = [auth_plain(p, "alice@example.test", f"wrong{i}", ip)
             for i in range(3)]
    assert codes == [535, 535, 535]
    code, lines = greeting(p, ip)
    assert code == 421 and "4.7.0" in lines[0]
    # Also for the right password, and on every listener.
    assert auth_plain(p, "alice@example.test", PW, ip) == 421
    # Other IPs are not concerned.
    assert auth_plain(p, "alice@example.test", PW, "127.0.0.22") == 235
    sec = p.log("security")
    assert "ip blocked: ip=127.0.0.21 key=127.0.0.21" in sec
    assert "offenses=1 failures=3 service=smtp" in sec
    assert PW not in sec and "wrong0" not in sec
    # The account itself is not locked.
    assert auth_plain(p, "alice@example.test", PW, "127.0.0.23") == 235


def test_same_wrong_password_counts_once(petrel_factory):
    p = screening_petrel(petrel_factory)
    ip = "127.0.0.31"
    for _ in range(6):
        assert auth_plain(p, "alice@example.test", "old password", ip) == 535
    assert greeting(p, ip)[0] == 220
    assert "ip blocked" not in p.log("security")


def test_block_survives_restart_and_unblock(petrel_factory):
    p = screening_petrel(petrel_factory)
    ip = "127.0.0.41"
    for i in range(3):
        auth_plain(p, "bob@example.test", f"guess{i}", ip)
    assert greeting(p, ip)[0] == 421

    def listed():
        out = json.loads(p.ctl.ok("screening", "list", json=True))
        return [b for b in out if b["ip"] == ip]
    assert wait_for(listed)
    [b] = listed()
    assert b["offenses"] == 1 and "3 failed logins" in b["reason"]
    assert ip in p.ctl.ok("screening", "list")

    assert p.stop() == 0
    p.start()
    assert greeting(p, ip)[0] == 421

    before = p.reloads()
    assert p.ctl.ok("screening", "unblock", ip).strip() == f"{ip} unblocked"
    assert wait_for(lambda: p.reloads() > before)
    assert greeting(p, ip)[0] == 220
    assert p.ctl.ok("screening", "list").strip() == "no IP is blocked"
    r = p.ctl.run("screening", "unblock", ip)
    assert r.returncode == 1 and "not blocked" in r.stderr
    # The record stays: the next block is twice as long.
    for i in range(3):
        auth_plain(p, "bob@example.test", f"again{i}", ip)
    assert wait_for(lambda: listed() and listed()[0]["offenses"] == 2)


def test_trusted_host_never_blocked(petrel_factory):
    p = screening_petrel(petrel_factory,
                         **{"trusted.hosts": "127.0.0.51"})
    for i in range(5):
        assert auth_plain(p, "alice@example.test", f"w{i}",
                          "127.0.0.51") == 535
    assert greeting(p, "127.0.0.51")[0] == 220


def test_connects_per_minute(petrel_factory):
    p = petrel_factory(settings={"screening.max_connects_per_minute": "3"})
    ip = "127.0.0.61"
    codes = [greeting(p, ip)[0] for _ in range(4)]
    assert codes == [220, 220, 220, 421]
    assert "screening.max_connects_per_minute reached" in p.log("smtp-in")
    assert greeting(p, "127.0.0.62")[0] == 220


def test_connections_per_ip(petrel_factory):
    p = petrel_factory(
        settings={"screening.max_connections_per_ip": "2"})
    ip = "127.0.0.71"
    a, b = Raw(p.ports["smtp"], source=ip), Raw(p.ports["smtp"], source=ip)
    assert a.code() == 220 and b.code() == 220
    code, lines = greeting(p, ip)
    assert code == 421 and "4.7.0" in lines[0]
    a.close()
    b.close()
    assert wait_for(lambda: greeting(p, ip)[0] == 220, timeout=5)
