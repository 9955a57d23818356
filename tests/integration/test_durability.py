"""Durability under group commit: many sessions at once, several messages
per session, petreld killed with SIGKILL in the middle. Every message that
got its 250 is delivered after the restart, whole; nothing lands in bad/.
(test_smtp.py's kill -9 test does the same with four one-message
sessions.)"""
import email
import json
import re
import smtplib
import threading

from smtputil import wait_for

SESSIONS = 16
PER_SESSION = 30
BODY_LINES = 40


def _lines(mid, n):
    # Bodies of different lengths: reused spool files are longer or
    # shorter than the message written into them.
    return "".join(f"line {k} of {mid}\r\n" for k in range(n))


def _nlines(n, i):
    return 3 + (n * 7 + i * 13) % 90


def _delivered(petrel):
    """(Message-ID, body) of every message in alice's new/."""
    got = []
    for f in petrel.maildir("alice@example.test").joinpath("new").glob("*"):
        m = email.message_from_bytes(f.read_bytes())
        got.append((m["Message-ID"], m.get_payload()))
    return got


class _Clients:
    """Sessions sending per_session messages each, until stop (set just
    before a kill); each acknowledged one goes into acked as (Message-ID,
    body lines). A session that fails before stop goes into errors; one
    that stop cut short, by an error or between two messages, into cut."""

    def __init__(self, petrel, tag, sessions, per_session, acked, lock,
                 stop, nlines=_nlines):
        self.acked, self.lock, self.stop = acked, lock, stop
        self.errors, self.cut = [], []
        self.petrel, self.tag, self.nlines = petrel, tag, nlines
        self.per_session = per_session
        self.threads = [threading.Thread(target=self._client, args=(n,))
                        for n in range(sessions)]
        for t in self.threads:
            t.start()

    def _client(self, n):
        i = 0
        try:
            with smtplib.SMTP("127.0.0.1", self.petrel.ports["smtp"],
                              timeout=20) as c:
                for i in range(self.per_session):
                    if self.stop.is_set():
                        with self.lock:
                            self.cut.append((n, i, None))
                        return
                    mid = f"<{self.tag}-{n}-{i}@x.test>"
                    body = _lines(mid, self.nlines(n, i))
                    c.sendmail("x@remote.test", ["alice@example.test"],
                               f"Message-ID: {mid}\r\nSubject: r\r\n\r\n"
                               f"{body}")
                    with self.lock:
                        self.acked.append((mid, self.nlines(n, i)))
        except (OSError, smtplib.SMTPException) as e:
            with self.lock:
                (self.cut if self.stop.is_set() else self.errors).append(
                    (n, i, e))

    def join(self):
        for t in self.threads:
            t.join()
        assert not self.errors, self.errors


def _kill_mid_stream(petrel, clients, sessions, per_session):
    """Kills petreld once 3 messages a session are acknowledged, every
    session still sending; checks that the kill did land mid-stream."""
    assert wait_for(lambda: len(clients.acked) >= 3 * sessions, timeout=60,
                    step=0.01), f"{len(clients.acked)} acknowledged"
    clients.stop.set()
    petrel.kill9()
    clients.join()
    with clients.lock:
        n = len(clients.acked)
    assert 3 * sessions <= n < sessions * per_session, n
    assert len(clients.cut) == sessions, \
        f"{sessions - len(clients.cut)} sessions had finished before the kill"


def test_kill9_under_group_commit_loses_no_acknowledged_message(
        petrel_factory):
    petrel = petrel_factory()
    acked, lock, stop = [], threading.Lock(), threading.Event()

    clients = _Clients(petrel, "group", SESSIONS, PER_SESSION, acked, lock,
                       stop, nlines=lambda n, i: BODY_LINES)
    _kill_mid_stream(petrel, clients, SESSIONS, PER_SESSION)
    with lock:
        sent = [mid for mid, _ in acked]
    assert len(set(sent)) == len(sent)
    petrel.start()

    wait_for(lambda: set(sent) <= {m for m, _ in _delivered(petrel)},
             timeout=60)
    got = dict(_delivered(petrel))
    missing = set(sent) - set(got)
    assert not missing, f"{len(missing)} acknowledged messages lost"
    for mid in sent:
        # Whole: every line of the body, in order (LF in the Maildir).
        want = "".join(f"line {k} of {mid}\n" for k in range(BODY_LINES))
        assert got[mid] == want, mid
    bad = list((petrel.data_dir / "queue" / "bad").glob("*"))
    assert not bad, f"damaged spool files: {bad}"
    assert not list((petrel.data_dir / "queue" / "incoming").glob("*"))


def test_reused_spool_files_never_bring_a_message_back(petrel_factory):
    """Delivered messages leave their spool files in queue/free/, and new
    messages are written into them. After a first batch, delivered, and a
    kill -9 in the middle of a second: every acknowledged message is
    delivered whole, those of the first batch exactly once (a reused file
    never shows an old message again), and free/ is never listed as a
    queue."""
    petrel = petrel_factory()
    free = petrel.data_dir / "queue" / "free"
    lock, stop = threading.Lock(), threading.Event()

    first = []
    _Clients(petrel, "first", 4, 15, first, lock, stop).join()
    assert len(first) == 60
    assert wait_for(lambda: len(_delivered(petrel)) >= 60, timeout=60)
    assert wait_for(lambda: not list(
        (petrel.data_dir / "queue" / "active").glob("*")), timeout=30)
    pooled = list(free.glob("*"))
    assert 0 < len(pooled) <= 256
    assert petrel.ctl.ok("queue", "list").strip() == "the queue is empty"
    stats = json.loads(petrel.ctl.ok("queue", "stats", json=True))
    assert "free" not in stats
    assert all(stats[q]["messages"] == 0
               for q in ("incoming", "active", "deferred", "hold", "bad"))

    second = []
    clients = _Clients(petrel, "second", 16, 30, second, lock, stop)
    _kill_mid_stream(petrel, clients, 16, 30)
    petrel.start()
    with lock:
        sent = list(second)
    wait_for(lambda: ({m for m, _ in sent} <=
                      {m for m, _ in _delivered(petrel)}), timeout=60)
    got = _delivered(petrel)
    for mid, n in first + sent:
        want = _lines(mid, n).replace("\r\n", "\n")
        copies = [body for m, body in got if m == mid]
        assert copies, f"{mid} lost"
        assert all(body == want for body in copies), mid
        if mid.startswith("<first-"):
            assert len(copies) == 1, f"{mid} delivered {len(copies)} times"
    # Sent but not acknowledged before the kill may be delivered too, but
    # whole, and nothing else is.
    for mid, body in got:
        tag, n, i = re.fullmatch(r"<(first|second)-(\d+)-(\d+)@x\.test>",
                                 mid).groups()
        want = _lines(mid, _nlines(int(n), int(i)))
        assert body == want.replace("\r\n", "\n"), mid
    assert not list((petrel.data_dir / "queue" / "bad").glob("*"))
    assert not list((petrel.data_dir / "queue" / "incoming").glob("*"))
