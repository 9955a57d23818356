"""Two promises of remote delivery, through the real daemon (README,
"Configuration" and "Remote delivery"):

- smarthost_auth is "sent only under TLS": to a smarthost that offers
  AUTH but not STARTTLS, no AUTH goes out and the message is deferred,
  whatever tls.outbound says; once the smarthost offers STARTTLS, the same
  message goes out with AUTH.
- tls.outbound verify checks "the certificate chain against the system's
  CAs and the MX host's name": with a test CA trusted (SSL_CERT_FILE, read
  by OpenSSL's default verify paths), a certificate of that CA for another
  name, or for the recipient's domain rather than its MX host, defers the
  message; one for the MX host's name is taken.
"""
import json
import re
import ssl

import pytest

from sinks import DnsServer, SmtpSink, make_cert
from smtputil import AuthSession, wait_for
from test_remote import FAST as REMOTE_FAST

PW = "correct horse battery staple"
ALICE = "alice@example.test"

FAST = dict(REMOTE_FAST, **{"auth.allow_plaintext": "on",
                            "queue.retry_max": "1"})


def server_ctx(crt, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    return ctx


def send(p, rcpt, subject):
    """alice submits one message to rcpt."""
    s = AuthSession(p.ports["submission"], ALICE, PW)
    assert s.auth == 235
    assert s.send(rcpts=(rcpt,), subject=subject) == 250
    s.close()


def queued(p):
    return json.loads(p.ctl.ok("queue", "list", json=True))


def deferred_error(p, subject):
    """The error of the message with that subject once it is deferred."""
    def find():
        for m in queued(p):
            if m["subject"] == subject and m["queue"] == "deferred" \
                    and m["recipients"][0]["error"]:
                return m["recipients"][0]["error"]
        return None
    return wait_for(find)


def subjects(sink):
    return sorted(m.data.split(b"\r\nSubject: ")[1].split(b"\r\n")[0]
                  .decode() for m in sink.messages)


# --- smarthost_auth only under TLS -----------------------------------------

@pytest.mark.parametrize("tls_outbound", ["may", "none"])
def test_smarthost_auth_is_never_sent_in_the_clear(petrel_factory, tmp_path,
                                                   tls_outbound):
    # A smarthost that offers AUTH (and would take the password without
    # TLS: a 535 comes only after it was sent), but no STARTTLS.
    sink = SmtpSink("127.0.0.4")
    sink.auth = {"petrel": "s3cret word"}
    sink.tls = None
    crt, key = make_cert(tmp_path, "relay.test")
    secret = tmp_path / "relay.auth"
    secret.write_text("petrel s3cret word\n")
    secret.chmod(0o600)
    try:
        settings = dict(FAST, **{"tls.outbound": tls_outbound})
        p = petrel_factory(settings=settings,
                           smarthost=f"127.0.0.4:{sink.port}",
                           smarthost_auth=str(secret))
        send(p, "friend@remote.test", "over the relay")
        error = deferred_error(p, "over the relay")
        # The sink saw the EHLO, and no AUTH, and no transaction.
        assert sink.sessions >= 1
        assert any(line.startswith("EHLO") for line in sink.transcript)
        assert not [line for line in sink.transcript
                    if line.upper().startswith(("AUTH", "MAIL"))]
        assert sink.messages == []
        # Deferred, saying why.
        assert error and \
            "TLS is required, but host 127.0.0.4[127.0.0.4] does not " \
            "offer STARTTLS" in error, error
        out = p.log("smtp-out")
        assert re.search(r"to=<friend@remote\.test> message-id=\S+ "
                         r"status=deferred \(TLS is required, but host "
                         r"127\.0\.0\.4\[127\.0\.0\.4\] does not offer "
                         r"STARTTLS\)", out), out[-3000:]
        assert "--> AUTH" not in out and "s3cret" not in out

        # Control: the same sink offering STARTTLS gets AUTH, under TLS,
        # and the deferred message goes out on its next try.
        sink.tls = server_ctx(crt, key)
        [m] = sink.wait(1)
        assert m.tls and m.auth == "petrel"
        assert subjects(sink) == ["over the relay"]
        assert any(line.startswith("AUTH PLAIN ")
                   for line in sink.transcript)
        out = p.log("smtp-out")
        assert "--> AUTH PLAIN (credentials hidden)" in out
        assert "s3cret" not in out
        assert wait_for(lambda: queued(p) == [])
    finally:
        sink.close()


# --- tls.outbound verify checks the MX host's name -------------------------

@pytest.fixture
def mxs(tmp_path, monkeypatch):
    """Three domains, each with its MX host on its own loopback address
    and one port; a test CA that petreld trusts (its environment) and the
    sinks' certificates from that CA: for the MX host's name (ok.test),
    for another name (other.test), for the recipient's domain instead of
    its MX host (domain.test)."""
    dns = DnsServer({
        "ok.test": [("MX", 10, "mx.ok.test")],
        "mx.ok.test": [("A", "127.0.0.2")],
        "other.test": [("MX", 10, "mx.other.test")],
        "mx.other.test": [("A", "127.0.0.3")],
        "domain.test": [("MX", 10, "mx.domain.test")],
        "mx.domain.test": [("A", "127.0.0.4")],
    })
    ca = make_cert(tmp_path, "ca.test")
    first = SmtpSink("127.0.0.2")
    sinks = {"ok": first, "other": SmtpSink("127.0.0.3", first.port),
             "domain": SmtpSink("127.0.0.4", first.port)}
    certs = {
        "ok": make_cert(tmp_path, "mx.ok.test", ca=ca),
        "other": make_cert(tmp_path, "mx.elsewhere.test", ca=ca),
        "domain": make_cert(tmp_path, "domain.test", ca=ca),
        "other-right": make_cert(tmp_path, "mx.other.test", ca=ca),
    }
    for k in ("ok", "other", "domain"):
        sinks[k].tls = server_ctx(*certs[k])
    monkeypatch.setenv("SSL_CERT_FILE", str(ca[0]))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    yield dns, sinks, certs
    for s in sinks.values():
        s.close()
    dns.close()


def test_verify_checks_the_mx_host_name(petrel_factory, mxs):
    dns, sinks, certs = mxs
    settings = dict(FAST, **{"tls.outbound": "verify",
                             "queue.remote_port": str(sinks["ok"].port)})
    p = petrel_factory(settings=settings, dns_server=dns.address)
    send(p, "a@ok.test", "right name")
    send(p, "b@other.test", "other name")
    send(p, "c@domain.test", "domain name")

    # Control: a certificate of the same CA for the MX host's name is
    # taken, so the CA is trusted and a refusal below is the name's.
    [m] = sinks["ok"].wait(1)
    assert m.tls and subjects(sinks["ok"]) == ["right name"]

    for key, subject, host, ip in (
            ("other", "other name", "mx.other.test", "127.0.0.3"),
            ("domain", "domain name", "mx.domain.test", "127.0.0.4")):
        error = deferred_error(p, subject)
        assert error and \
            f"TLS with {host}[{ip}] failed: hostname mismatch" in error, \
            error
        assert sinks[key].sessions >= 1
        assert sinks[key].messages == []
        assert not [line for line in sinks[key].transcript
                    if line.upper().startswith("MAIL")]
    out = p.log("smtp-out")
    for rcpt, host, ip in (("b@other.test", "mx.other.test", "127.0.0.3"),
                           ("c@domain.test", "mx.domain.test", "127.0.0.4")):
        assert re.search(
            re.escape(f"to=<{rcpt}> ") + r"message-id=\S+ " +
            re.escape(f"status=deferred (TLS with {host}[{ip}] failed: "
                      "hostname mismatch)"), out), out[-3000:]
    # Not tried in the clear: verify is no opportunistic TLS.
    assert "trying again without TLS" not in out

    # The same destination with a certificate for its MX host's name:
    # the deferred message goes out on its next try.
    sinks["other"].tls = server_ctx(*certs["other-right"])
    assert len(sinks["other"].wait(1)) == 1
    assert sinks["other"].messages[0].tls
    assert subjects(sinks["other"]) == ["other name"]
    assert [m["subject"] for m in queued(p)] == ["domain name"]
