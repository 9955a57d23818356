"""petrelctl queue and its effect on the running daemon: list, show, hold,
release, retry, delete, stats, with their errors."""
import json
import os
import re
import smtplib
import threading
import time

from smtputil import wait_for
from test_smtp import submit

QID = re.compile(r"^([0-9A-F]{18})  (\w+) ", re.M)


def queued_remote(petrel, subject="out"):
    """Submits a message to a remote recipient and returns its queue id
    once its first try failed: the test daemon's resolver answers nothing
    (conftest.py), so it waits in deferred/ for minutes."""
    submit(petrel, rcpts=("friend@remote.test",),
           msg=f"From: alice@example.test\r\nSubject: {subject}\r\n"
               "Message-ID: <q-" + subject + "@x.test>\r\n\r\nx\r\n")
    m = re.search(r"message saved <Message-ID: <q-" + subject +
                  r"@x\.test>> as ([0-9A-F]{18})", petrel.log("smtp-in"))
    assert m
    qid = m.group(1)
    assert wait_for(lambda: (qid, "deferred") in
                    QID.findall(petrel.ctl.ok("queue", "list")), timeout=20)
    return qid


def test_list_show_and_json(petrel):
    assert petrel.ctl.ok("queue", "list").strip() == "the queue is empty"
    qid = queued_remote(petrel)
    out = petrel.ctl.ok("queue", "list")
    assert QID.findall(out) == [(qid, "deferred")]
    assert "<alice@example.test>" in out
    assert re.search(r"^    friend@remote\.test  remote pending "
                     r"\(1 attempt\): .*MX records of remote\.test", out,
                     re.M), out
    assert "subject: out" in out and "next retry" in out
    assert "-- 1 message(s)" in out
    assert petrel.ctl.ok("queue", "list", "hold").strip() == "hold is empty"

    [j] = json.loads(petrel.ctl.ok("queue", "list", json=True))
    assert j["id"] == qid and j["queue"] == "deferred"
    assert j["sender"] == "alice@example.test"
    assert j["auth_account"] == "alice@example.test"
    assert j["message_id"] == "<q-out@x.test>" and j["subject"] == "out"
    [r] = j["recipients"]
    assert r["address"] == "friend@remote.test" and r["kind"] == "remote"
    assert r["status"] == "pending" and r["attempts"] == 1
    assert r["last_attempt"] > 0 and "MX records" in r["error"]
    assert j["next_retry"] > r["last_attempt"] and j["age"] >= 0

    show = petrel.ctl.ok("queue", "show", qid)
    assert f"id:          {qid}" in show
    assert "listener:    submission (ESMTPSA)" in show
    assert "recipient:   friend@remote.test  remote pending, 1 attempt(s)" \
        in show
    assert "next retry:" in show
    # The stored header section follows, trace headers first.
    headers = show.split("\n\n", 1)[1]
    assert headers.startswith("Received: from ")
    assert "X-Authenticated-Sender: alice@example.test" in headers
    assert "Subject: out" in headers and "\nx\n" not in headers
    assert json.loads(petrel.ctl.ok("queue", "show", qid, json=True))["id"] \
        == qid


def test_hold_release_delete(petrel):
    a, b = queued_remote(petrel, "a"), queued_remote(petrel, "b")
    assert petrel.ctl.ok("queue", "hold", a).strip() == f"{a} held"
    out = petrel.ctl.ok("queue", "list")
    assert set(QID.findall(out)) == {(a, "hold"), (b, "deferred")}
    assert "(held by the administrator)" in out
    assert QID.findall(petrel.ctl.ok("queue", "list", "hold")) == [(a, "hold")]

    # Release only what is on hold; retry only what is not.
    r = petrel.ctl.run("queue", "release", b)
    assert r.returncode == 1 and "not on hold" in r.stderr
    r = petrel.ctl.run("queue", "retry", a)
    assert r.returncode == 1 and "release it" in r.stderr

    assert petrel.ctl.ok("queue", "release", a).strip() == f"{a} released"
    # The daemon was woken, tried it at once, and deferred it again.
    assert wait_for(lambda: "queue rescan" in petrel.log("system"))
    assert wait_for(lambda: set(QID.findall(petrel.ctl.ok(
        "queue", "list"))) == {(a, "deferred"), (b, "deferred")})
    j = json.loads(petrel.ctl.ok("queue", "show", a, json=True))
    assert j["recipients"][0]["attempts"] == 2

    assert petrel.ctl.ok("queue", "delete", a, b) == \
        f"{a} deleted\n{b} deleted\n"
    assert petrel.ctl.ok("queue", "list").strip() == "the queue is empty"
    r = petrel.ctl.run("queue", "delete", a)
    assert r.returncode == 1 and f"no message {a}" in r.stderr


def test_bad_ids_and_usage(petrel):
    for bad in ("../../etc/passwd", "0123", "G" * 18, ""):
        r = petrel.ctl.run("queue", "show", bad)
        assert r.returncode == 1 and "not a queue id" in r.stderr, bad
    r = petrel.ctl.run("queue", "list", "nosuch")
    assert r.returncode == 2 and "no queue" in r.stderr
    r = petrel.ctl.run("queue", "frobnicate")
    assert r.returncode == 2 and "usage" in r.stderr
    r = petrel.ctl.run("queue", "show")
    assert r.returncode == 2


def test_stats(petrel):
    queued_remote(petrel, "s1")
    queued_remote(petrel, "s2")
    out = petrel.ctl.ok("queue", "stats")
    assert re.search(r"^deferred +2 message\(s\)", out, re.M), out
    assert re.search(r"^hold +0 message\(s\)", out, re.M), out
    assert re.search(r"^last hour: 2 received, 0 delivered, 2 deferred, "
                     r"0 bounced$", out, re.M), out
    j = json.loads(petrel.ctl.ok("queue", "stats", json=True))
    assert j["deferred"]["messages"] == 2 and j["deferred"]["bytes"] > 0
    assert j["active"]["messages"] == 0
    assert j["last_day"]["received"] == 2


def test_failed_local_delivery_is_retried_on_release(petrel):
    """A mailbox that can not be written keeps the message in the queue
    with its error; hold and release after the repair delivers it at once
    (not after the retry pause)."""
    box = petrel.data_dir / "mail" / "example.test" / "bob"
    box.parent.mkdir(parents=True, exist_ok=True)
    box.write_text("not a directory")
    with smtplib.SMTP("127.0.0.1", petrel.ports["smtp"], timeout=30) as c:
        c.sendmail("x@remote.test", ["bob@example.test"],
                   "Subject: r\r\nMessage-ID: <retry@x.test>\r\n\r\nx\r\n")

    def pending_with_error():
        [j] = json.loads(petrel.ctl.ok("queue", "list", json=True)) or [None]
        return j and j["recipients"][0]["attempts"] >= 1 and j
    j = wait_for(pending_with_error, timeout=10)
    assert j, petrel.ctl.ok("queue", "list")
    rc = j["recipients"][0]
    assert rc["status"] == "pending" and rc["kind"] == "local"
    assert rc["error"]
    qid = j["id"]

    petrel.ctl.ok("queue", "hold", qid)
    box.unlink()
    t = time.monotonic()
    petrel.ctl.ok("queue", "release", qid)
    files = petrel.messages("bob@example.test", timeout=10)
    assert files and time.monotonic() - t < 10
    assert b"<retry@x.test>" in files[0].read_bytes()
    assert wait_for(lambda: petrel.ctl.ok("queue", "list").strip() ==
                    "the queue is empty")


def test_kick_without_daemon_is_harmless(petrel):
    qid = queued_remote(petrel, "k")
    petrel.ctl.ok("queue", "hold", qid)
    assert petrel.stop() == 0
    assert not (petrel.data_dir / "petreld.pid").exists()
    assert petrel.ctl.ok("queue", "release", qid).strip() == f"{qid} released"
    petrel.start()
    # Picked up at start, tried, deferred.
    assert wait_for(lambda: QID.findall(petrel.ctl.ok("queue", "list")) ==
                    [(qid, "deferred")])
    j = json.loads(petrel.ctl.ok("queue", "show", qid, json=True))
    assert j["recipients"][0]["attempts"] == 2


def test_second_daemon_on_same_data_refused(petrel):
    import subprocess
    from conftest import binary
    pid = (petrel.data_dir / "petreld.pid").read_text().strip()
    assert pid == str(petrel.proc.pid)
    r = subprocess.run([binary("petreld"), "-c", str(petrel.config)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert f"another petreld (pid {pid}) is running" in r.stderr
    assert petrel.proc.poll() is None


def test_list_keeps_a_message_moving_between_queues(petrel):
    """A retry moves a message from deferred/ to active/ and a failure
    back again, at any moment: `queue list` must still show it, once.
    Here the daemon is stopped and this test moves the file itself, back
    and forth every few milliseconds, while petrelctl lists."""
    qid = queued_remote(petrel, "moving")
    petrel.stop()
    queue = petrel.data_dir / "queue"
    stop = threading.Event()

    def mover():
        here, there = queue / "deferred" / qid, queue / "active" / qid
        while not stop.is_set():
            os.rename(here, there)
            here, there = there, here
            time.sleep(0.002)

    t = threading.Thread(target=mover)
    t.start()
    seen = []
    try:
        for _ in range(150):
            j = json.loads(petrel.ctl.ok("queue", "list", json=True))
            seen.append([(m["id"], m["queue"]) for m in j])
    finally:
        stop.set()
        t.join()
    assert all(len(s) == 1 and s[0][0] == qid for s in seen), \
        [s for s in seen if len(s) != 1]
    # Both places were seen: the file really moved under the listings.
    assert {s[0][1] for s in seen} == {"active", "deferred"}
