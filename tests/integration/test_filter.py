"""The content filter through the real daemon: the size recipe (with a
20 KB limit so that the tests stay fast), refusal at SMTP time, header
edits with macros, redirect, hold, live reload, import/export."""
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


def load(petrel, text, name="rules.txt"):
    path = petrel.tmp / name
    path.write_text(text)
    petrel.ctl.ok("filter", "import", str(path))
    # The daemon picks the new rules up within a poll (250 ms).
    time.sleep(0.6)


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
    load(petrel, RECIPE)
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
    petrel.ctl.ok("group", "member", "add", "big", "vip@remote.test")
    time.sleep(0.3)
    code, _ = send(petrel, "vip@remote.test", ["bob@example.test"],
                   big_body())
    assert code == 250
    assert petrel.messages("bob@example.test")


def test_recipe_recipient_in_group(petrel, recipe):
    petrel.ctl.ok("group", "member", "add", "big", "alice@example.test")
    code, _ = send(petrel, "out@remote.test", ["alice@example.test"],
                   big_body())
    assert code == 250
    assert petrel.messages("alice@example.test")


def test_recipe_mixed_recipients(petrel, recipe):
    petrel.ctl.ok("group", "member", "add", "big", "alice@example.test")
    code, _ = send(petrel, "out@remote.test",
                   ["alice@example.test", "bob@example.test"], big_body())
    # Not every recipient's copy is deleted: accepted, alice gets it, bob
    # does not, and the sender gets one note.
    assert code == 250
    assert petrel.messages("alice@example.test")
    time.sleep(0.5)
    assert petrel.messages("bob@example.test", timeout=0.5) == []
    assert wait_for(lambda: "note queued" in petrel.log("smtp-in"))
    assert petrel.log("smtp-in").count("note queued") == 1


def test_reject_action(petrel):
    load(petrel, 'rule "No exe"\n\tif attachment-name is "*.exe"\n'
                 '\tthen reject 550 "5.7.1 No programs, please"\nend\n')
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
                 '\tthen remove-header "X-Remove-Me"\nend\n')
    code, _ = send(petrel, "out@remote.test", ["bob@example.test"], "body",
                   "X-Remove-Me: yes\r\n")
    assert code == 250
    text = petrel.messages("bob@example.test")[0].read_text()
    assert "X-Tag: [test] for bob@example.test" in text
    assert "X-Remove-Me" not in text


def test_macro_not_reexpanded(petrel):
    load(petrel, 'rule "Tag"\n\tif all-messages\n'
                 '\tthen add-header "X-Subj" "$SUBJECT$"\nend\n')
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
                 '\tthen move-to hold\nend\n')
    assert send(petrel, "out@remote.test", ["bob@example.test"],
                "hello")[0] == 250
    assert petrel.messages("alice@example.test")
    assert send(petrel, "out@remote.test", ["postmaster@example.test"],
                "you won the lottery")[0] == 250
    out = petrel.ctl.ok("queue", "list", "hold")
    assert "content filter rule" in out or "Hold spam" in out


def test_live_disable(petrel, recipe):
    petrel.ctl.ok("filter", "disable", "Limit 20 KB")
    time.sleep(0.6)
    code, _ = send(petrel, "out@remote.test", ["bob@example.test"],
                   big_body())
    assert code == 250


def test_import_export_round_trip_and_errors(petrel):
    load(petrel, RECIPE)
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
