"""Durability under group commit: many sessions at once, several messages
per session, petreld killed with SIGKILL in the middle. Every message that
got its 250 is delivered after the restart, whole; nothing lands in bad/.
(test_smtp.py's kill -9 test does the same with four one-message
sessions.)"""
import email
import smtplib
import threading

from smtputil import wait_for

SESSIONS = 16
PER_SESSION = 30
BODY_LINES = 40


def test_kill9_under_group_commit_loses_no_acknowledged_message(
        petrel_factory):
    petrel = petrel_factory()
    acked, lock, stop = [], threading.Lock(), threading.Event()

    def client(n):
        try:
            with smtplib.SMTP("127.0.0.1", petrel.ports["smtp"],
                              timeout=20) as c:
                for i in range(PER_SESSION):
                    if stop.is_set():
                        return
                    mid = f"<group-{n}-{i}@x.test>"
                    body = "".join(f"line {k} of {mid}\r\n"
                                   for k in range(BODY_LINES))
                    c.sendmail("x@remote.test", ["alice@example.test"],
                               f"Message-ID: {mid}\r\nSubject: g\r\n\r\n"
                               f"{body}")
                    with lock:
                        acked.append(mid)
        except (OSError, smtplib.SMTPException):
            return

    threads = [threading.Thread(target=client, args=(n,))
               for n in range(SESSIONS)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= 3 * SESSIONS, timeout=60)
    petrel.kill9()
    stop.set()
    for t in threads:
        t.join()
    with lock:
        sent = list(acked)
    assert len(set(sent)) == len(sent)
    petrel.start()

    def delivered():
        got = {}
        for f in petrel.maildir("alice@example.test").joinpath(
                "new").glob("*"):
            m = email.message_from_bytes(f.read_bytes())
            got[m["Message-ID"]] = m.get_payload()
        return got

    wait_for(lambda: set(sent) <= set(delivered()), timeout=60)
    got = delivered()
    missing = set(sent) - set(got)
    assert not missing, f"{len(missing)} acknowledged messages lost"
    for mid in sent:
        # Whole: every line of the body, in order (LF in the Maildir).
        want = "".join(f"line {k} of {mid}\n" for k in range(BODY_LINES))
        assert got[mid] == want, mid
    bad = list((petrel.data_dir / "queue" / "bad").glob("*"))
    assert not bad, f"damaged spool files: {bad}"
    assert not list((petrel.data_dir / "queue" / "incoming").glob("*"))
