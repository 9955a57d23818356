"""The content filter through the real daemon: the size recipe (with a
20 KB limit so that the tests stay fast), refusal at SMTP time, header
edits with macros, redirect, hold, live reload, import/export."""
import json
import re
import time

import pytest

from smtputil import Raw, wait_for

RECIPE = """\
rule "Big people skip the limit"
\tmatch any
\tif sender in-group "big"
\tif recipient in-group "big"
\tthen skip 1
end

rule "Limit 20 KB"
\tif size > 20 KB
\tthen delete
\tthen note to "$SENDER$"
\t\tsubject "Your message to $RECIPIENT$ was too large"
\t\ttext "It had $MESSAGESIZE$ bytes.\\n"
end
"""


def reloads(petrel):
    """The rule counts of the daemon's filter reloads so far, in order."""
    return [int(n) for n in re.findall(
        r"directory changed: filter rules reloaded \((\d+) rules\)",
        petrel.log("system"))]


def wait_reload(petrel, before, n):
    """Waits until the daemon has reloaded its filter rules, with n rules,
    since it had logged `before` reloads."""
    assert wait_for(lambda: n in reloads(petrel)[before:], timeout=5), \
        f"no reload with {n} rules: {reloads(petrel)[before:]}"


def load(petrel, text, n, name="rules.txt"):
    """Imports the rules in text (n of them) and waits until the daemon
    uses them."""
    path = petrel.tmp / name
    path.write_text(text)
    before = len(reloads(petrel))
    petrel.ctl.ok("filter", "import", str(path))
    wait_reload(petrel, before, n)


def queue_id(lines):
    """The queue ID of a "250 2.0.0 Ok, message saved ... as ID" reply."""
    m = re.search(r" as ([0-9A-F]+)$", lines[-1])
    assert m, lines
    return m.group(1)


def settled(petrel, *ids):
    """True once each of the queue IDs has left the queue and nothing is
    left in active/: every delivery they led to is done."""
    log = petrel.log("system")
    return all(f"{i} *** removed: no recipient is pending" in log
               for i in ids) and \
        petrel.ctl.ok("queue", "list", "active").strip() == "active is empty"


def send(petrel, sender, rcpts, body, headers=""):
    r = Raw(petrel.ports["smtp"])
    assert r.code() == 220
    assert r.cmd("EHLO client.example")[0] == 250
    assert r.cmd(f"MAIL FROM:<{sender}>")[0] == 250
    for a in rcpts:
        assert r.cmd(f"RCPT TO:<{a}>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    msg = (f"From: <{sender}>\r\nTo: <{rcpts[0]}>\r\n"
           f"Subject: test\r\nMessage-ID: <m{time.time_ns()}@remote.test>\r\n"
           f"{headers}\r\n{body}\r\n.\r\n")
    r.send(msg.encode())
    code, lines = r.reply()
    r.close()
    return code, lines


def big_body(n=30 * 1024):
    return ("x" * 70 + "\r\n") * (n // 72)


@pytest.fixture
def recipe(petrel):
    domain = "example.test"
    petrel.ctl.ok("group", "add", "big")
    load(petrel, RECIPE, 2)
    return domain


def test_recipe_neither_in_group_refused_at_smtp(petrel, recipe):
    code, lines = send(petrel, "out@remote.test", ["bob@example.test"],
                       big_body())
    assert code == 552 and "5.3.4" in lines[0]
    assert "Limit 20 KB" in lines[0]
    log = petrel.log("smtp-in")
    assert 'filter rule "Limit 20 KB" fired' in log
    assert "delete, note" in log


def test_recipe_small_message_passes(petrel, recipe):
    code, _ = send(petrel, "out@remote.test", ["bob@example.test"], "hi")
    assert code == 250
    assert petrel.messages("bob@example.test")


def test_recipe_sender_in_group(petrel, recipe):
    # Membership is looked up when a message is filtered: no reload.
    petrel.ctl.ok("group", "member", "add", "big", "vip@remote.test")
    # The control: the same message from a sender outside the group.
    code, lines = send(petrel, "out@remote.test", ["bob@example.test"],
                       big_body())
    assert code == 552 and "Limit 20 KB" in lines[0], lines
    code, _ = send(petrel, "vip@remote.test", ["bob@example.test"],
                   big_body())
    assert code == 250
    assert len(petrel.messages("bob@example.test")) == 1
    assert 'rule "Big people skip the limit" fired' in petrel.log("smtp-in")


def test_recipe_recipient_in_group(petrel, recipe):
    petrel.ctl.ok("group", "member", "add", "big", "alice@example.test")
    # The control: to a recipient outside the group.
    code, lines = send(petrel, "out@remote.test", ["bob@example.test"],
                       big_body())
    assert code == 552 and "Limit 20 KB" in lines[0], lines
    code, _ = send(petrel, "out@remote.test", ["alice@example.test"],
                   big_body())
    assert code == 250
    assert len(petrel.messages("alice@example.test")) == 1
    assert 'rule "Big people skip the limit" fired' in petrel.log("smtp-in")


def test_recipe_mixed_recipients(petrel, recipe):
    petrel.ctl.ok("group", "member", "add", "big", "alice@example.test")
    code, lines = send(petrel, "out@remote.test",
                       ["alice@example.test", "bob@example.test"],
                       big_body())
    # Not every recipient's copy is deleted: accepted, alice gets it, bob
    # does not, and the sender gets one note.
    assert code == 250
    qid = queue_id(lines)
    assert petrel.messages("alice@example.test")
    # Once the message has left the queue, every delivery is done.
    assert wait_for(lambda: settled(petrel, qid))
    system = petrel.log("system")
    assert f"{qid} *** delivered to <alice@example.test>" in system
    assert "delivered to <bob@example.test>" not in system
    assert petrel.messages("bob@example.test", timeout=0) == []
    assert petrel.log("smtp-in").count("note queued") == 1


def test_reject_action(petrel):
    load(petrel, 'rule "No exe"\n\tif attachment-name is "*.exe"\n'
                 '\tthen reject 550 "5.7.1 No programs, please"\nend\n', 1)
    body = ("--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
            "--b\r\nContent-Type: application/octet-stream\r\n"
            "Content-Disposition: attachment; filename*=utf-8''r%C3%A9.exe"
            "\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAA==\r\n"
            "--b--")
    code, lines = send(petrel, "out@remote.test", ["bob@example.test"], body,
                       'MIME-Version: 1.0\r\nContent-Type: multipart/mixed;'
                       ' boundary="b"\r\n')
    assert code == 550
    assert lines[0] == "5.7.1 No programs, please" or \
        "No programs, please" in lines[0]


def test_add_header_hostile_subject_and_remove(petrel):
    load(petrel, 'rule "Tag"\n\tif header "Subject" contains "test"\n'
                 '\tthen add-header "X-Tag" "[$SUBJECT$] for $RECIPIENT$"\n'
                 '\tthen remove-header "X-Remove-Me"\nend\n', 1)
    code, _ = send(petrel, "out@remote.test", ["bob@example.test"], "body",
                   "X-Remove-Me: yes\r\n")
    assert code == 250
    text = petrel.messages("bob@example.test")[0].read_text()
    assert "X-Tag: [test] for bob@example.test" in text
    assert "X-Remove-Me" not in text


def test_macro_not_reexpanded(petrel):
    load(petrel, 'rule "Tag"\n\tif all-messages\n'
                 '\tthen add-header "X-Subj" "$SUBJECT$"\nend\n', 1)
    r = Raw(petrel.ports["smtp"])
    assert r.code() == 220
    r.cmd("EHLO c")
    r.cmd("MAIL FROM:<out@remote.test>")
    r.cmd("RCPT TO:<bob@example.test>")
    assert r.cmd("DATA")[0] == 354
    r.send(b"Subject: $SENDER$ =?utf-8?Q?a=0D=0AX-Evil:_1?=\r\n\r\nx\r\n.\r\n")
    assert r.reply()[0] == 250
    text = petrel.messages("bob@example.test")[0].read_text()
    subj = [ln for ln in text.splitlines() if ln.startswith("X-Subj:")]
    assert subj, text
    assert subj[0].startswith("X-Subj: $SENDER$ a")
    assert "X-Evil: 1" in subj[0]
    assert "\nX-Evil" not in text


def test_redirect_and_hold(petrel):
    load(petrel, 'rule "To alice"\n\tif recipient is "bob@*"\n'
                 '\tthen redirect-to "alice@example.test"\nend\n'
                 'rule "Hold spam"\n\tif body contains "LOTTERY"\n'
                 '\tthen move-to hold\nend\n', 2)
    # Redirected: alice gets bob's message, and bob nothing.
    code, lines = send(petrel, "out@remote.test", ["bob@example.test"],
                       "hello")
    assert code == 250
    first = queue_id(lines)
    [m] = petrel.messages("alice@example.test")
    assert "hello" in m.read_text()
    assert wait_for(lambda: settled(petrel, first))
    system = petrel.log("system")
    assert f"{first} *** delivered to <alice@example.test>" in system
    assert "delivered to <bob@example.test>" not in system
    assert petrel.messages("bob@example.test", timeout=0) == []
    # Held: that message, and only it, waits in hold/, for its recipient,
    # with the rule as the reason; nothing was delivered or queued else.
    code, lines = send(petrel, "out@remote.test", ["postmaster@example.test"],
                       "you won the lottery")
    assert code == 250
    held = queue_id(lines)
    [h] = json.loads(petrel.ctl.ok("queue", "list", "hold", json=True))
    assert h["id"] == held
    assert h["reason"] == 'content filter rule "Hold spam"'
    assert [r["address"] for r in h["recipients"]] == \
        ["postmaster@example.test"]
    log = petrel.log("smtp-in")
    assert f"filter: {held} put into hold" in log
    assert log.count('rule "To alice" fired') == 1
    assert log.count('rule "Hold spam" fired') == 1
    for q in ("active", "deferred", "bad"):
        assert json.loads(petrel.ctl.ok("queue", "list", q, json=True)) \
            == [], q
    assert "note queued" not in log
    system = petrel.log("system")
    assert held not in system
    assert system.count("*** delivered to") == 1
    for a in ("postmaster@example.test", "bob@example.test"):
        assert petrel.messages(a, timeout=0) == [], a
    assert len(petrel.messages("alice@example.test", timeout=0)) == 1


def test_live_disable(petrel, recipe):
    # The control: refused while the rule is enabled.
    code, lines = send(petrel, "out@remote.test", ["bob@example.test"],
                       big_body())
    assert code == 552 and "Limit 20 KB" in lines[0], lines
    before = len(reloads(petrel))
    petrel.ctl.ok("filter", "disable", "Limit 20 KB")
    wait_reload(petrel, before, 2)  # disabled rules still count
    code, _ = send(petrel, "out@remote.test", ["bob@example.test"],
                   big_body())
    assert code == 250
    assert len(petrel.messages("bob@example.test")) == 1


def test_import_export_round_trip_and_errors(petrel):
    load(petrel, RECIPE, 2)
    one = petrel.ctl.ok("filter", "export")
    path = petrel.tmp / "again.txt"
    path.write_text(one)
    petrel.ctl.ok("filter", "import", str(path))
    assert petrel.ctl.ok("filter", "export") == one
    petrel.ctl.ok("filter", "move", "Limit 20 KB", "up")
    assert petrel.ctl.ok("filter", "list").index("Limit 20 KB") < \
        petrel.ctl.ok("filter", "list").index("Big people")
    bad = petrel.tmp / "bad.txt"
    bad.write_text('rule "x"\n\tif size > 2 GB\n\tthen delete\nend\n')
    r = petrel.ctl.run("filter", "import", str(bad))
    assert r.returncode != 0
    assert "line 2: expected B, KB or MB" in r.stderr


def with_attachment():
    """A multipart message with a text part and a .exe attachment."""
    body = ("--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            "--b\r\nContent-Type: application/octet-stream\r\n"
            "Content-Disposition: attachment; filename=\"setup.exe\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n"
            "--b--")
    head = ('MIME-Version: 1.0\r\n'
            'Content-Type: multipart/mixed; boundary="b"\r\n')
    return body, head


def test_group_named_before_it_exists_then_deleted(petrel):
    rule = ('rule "Later"\n\tif sender in-group "later"\n'
            '\tthen add-header "X-Later" "yes"\nend\n')
    path = petrel.tmp / "later.txt"
    path.write_text(rule)
    before = len(reloads(petrel))
    r = petrel.ctl.run("filter", "import", str(path))
    assert r.returncode == 0
    assert "group later, which does not exist" in r.stderr
    wait_reload(petrel, before, 1)
    # No such group yet: the condition matches nobody.
    assert send(petrel, "out@remote.test", ["bob@example.test"], "1")[0] \
        == 250
    [m] = petrel.messages("bob@example.test")
    assert "X-Later" not in m.read_text()
    petrel.ctl.ok("group", "add", "later")
    petrel.ctl.ok("group", "member", "add", "later", "out@remote.test")
    assert send(petrel, "out@remote.test", ["alice@example.test"], "2")[0] \
        == 250
    [m] = petrel.messages("alice@example.test")
    assert "X-Later: yes" in m.read_text()
    # Deleting it warns, naming the rule; the rule matches nobody again.
    r = petrel.ctl.run("group", "del", "later")
    assert r.returncode == 0
    assert 'group later is named by filter rule "Later"' in r.stderr
    assert "match" in r.stderr and "nobody" in r.stderr
    assert send(petrel, "out@remote.test", ["postmaster@example.test"],
                "3")[0] == 250
    [m] = petrel.messages("postmaster@example.test")
    assert "X-Later" not in m.read_text()
    # A group no rule names is deleted without a word.
    petrel.ctl.ok("group", "add", "plain")
    r = petrel.ctl.run("group", "del", "plain")
    assert r.returncode == 0 and r.stderr == ""


def test_copy_to(petrel):
    load(petrel, 'rule "Copy"\n\tif recipient is "bob@*"\n'
                 '\tthen copy-to "alice@example.test, nobody@example.test"'
                 '\nend\n', 1)
    assert send(petrel, "out@remote.test", ["bob@example.test"],
                "copied body")[0] == 250
    [b] = petrel.messages("bob@example.test")
    [a] = petrel.messages("alice@example.test")
    assert "copied body" in b.read_text() and "copied body" in a.read_text()
    assert "nobody@example.test is no local account, skipped" in \
        petrel.log("smtp-in")


def test_strip_attachments(petrel):
    load(petrel, 'rule "Strip"\n\tif attachment-name is "*.exe"\n'
                 '\tthen strip-attachments\nend\n', 1)
    body, head = with_attachment()
    assert send(petrel, "out@remote.test", ["bob@example.test"], body,
                head)[0] == 250
    text = petrel.messages("bob@example.test")[0].read_text()
    assert "see attached" in text
    assert "TVqQAAMAAAAEAAAA" not in text
    assert "setup.exe" in text and "was removed" in text


def test_move_to_bad(petrel):
    load(petrel, 'rule "Bad"\n\tif header "Subject" contains "test"\n'
                 '\tthen move-to bad\nend\n', 1)
    assert send(petrel, "out@remote.test", ["bob@example.test"], "x")[0] \
        == 250
    assert wait_for(lambda: "bad" in petrel.ctl.ok("queue", "list", "bad")
                    and "Bad" in petrel.ctl.ok("queue", "list", "bad"))
    assert petrel.ctl.ok("queue", "list", "active").strip() == \
        "active is empty"
    assert petrel.messages("bob@example.test", timeout=1) == []
    # Committed straight into bad/: never moved out of active/.
    log = petrel.log("smtp-in")
    assert "put into bad" in log and "moved to" not in log


def test_skip_and_stop(petrel):
    load(petrel, 'rule "One"\n\tif all-messages\n\tthen skip 1\nend\n'
                 'rule "Two"\n\tif all-messages\n'
                 '\tthen add-header "X-Two" "2"\nend\n'
                 'rule "Three"\n\tif all-messages\n'
                 '\tthen add-header "X-Three" "3"\n\tthen stop\nend\n'
                 'rule "Four"\n\tif all-messages\n'
                 '\tthen add-header "X-Four" "4"\nend\n', 4)
    assert send(petrel, "out@remote.test", ["bob@example.test"], "x")[0] \
        == 250
    text = petrel.messages("bob@example.test")[0].read_text()
    assert "X-Three: 3" in text
    assert "X-Two" not in text and "X-Four" not in text
    log = petrel.log("smtp-in")
    assert 'rule "Three" fired' in log and 'rule "Two" fired' not in log


def test_note_with_original_attached(petrel):
    load(petrel, 'rule "Report"\n\tif header "Subject" contains "test"\n'
                 '\tthen note to "alice@example.test"\n'
                 '\t\tsubject "\u00dcber $SUBJECT$ from $SENDER$"\n'
                 '\t\ttext "Rule $FILTERRULENAME$ saw it.\\n"'
                 ' attach-original\nend\n', 1)
    code, _ = send(petrel, "out@remote.test", ["bob@example.test"],
                   "original body")
    assert code == 250
    assert petrel.messages("bob@example.test")
    [note] = petrel.messages("alice@example.test")
    text = note.read_text()
    assert text.startswith("Return-Path: <>\n")
    assert "Auto-Submitted: auto-generated" in text
    assert "From: <postmaster@example.test>" in text
    # Not ASCII: an RFC 2047 word.
    assert "Subject: =?UTF-8?B?" in text
    assert "Rule Report saw it." in text
    assert "Content-Type: message/rfc822" in text
    assert "original body" in text and "From: <out@remote.test>" in text
    # The note is not filtered again (its subject would match): one note,
    # and once it has been delivered nothing else is on its way.
    notes = re.findall(r"filter: note queued as ([0-9A-F]+)",
                       petrel.log("smtp-in"))
    assert len(notes) == 1
    assert wait_for(lambda: settled(petrel, *notes))
    assert len(petrel.messages("alice@example.test", timeout=0)) == 1
    assert petrel.log("smtp-in").count('rule "Report" fired') == 1
