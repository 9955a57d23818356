"""What one client can make the daemon write to disk. Every command and
reply is a transcript line, so a client that sends NOOPs and reads the
replies made the logs grow faster than it sent (6 MB of NOOPs: 77 MB of
logs). Past log.max_lines_per_session a session logs only the lines that
trace mail and errors, and one summary line of what it left out. And when
data_dir runs short of space (queue.min_free_mb), MAIL gets 452 4.3.1
rather than a failure at the end of DATA, with one line in the system
log."""
import re

from smtputil import Raw, wait_for

PW = "correct horse battery staple"
LIMIT = 100
FLOOD = 5000
SUMMARY = re.compile(r"\*\*\* (\d+) more commands, (\d+) bytes, not logged$")
# Before the bound, 5,000 NOOPs and their replies were 10,000 lines
# (about 700 KB of SMTP transcript).
MAX_BYTES = 40 * 1024


def log_size(p, name):
    return sum(f.stat().st_size for f in p.log_dir.glob(f"{name}-*.log"))


def transcript(p, name, offset):
    """The (direction, text) of each line written after offset bytes."""
    text = p.log(name)[offset:]
    out = []
    for line in text.splitlines():
        parts = line.split(" ", 4)
        if len(parts) == 5:
            out.append((parts[3], parts[4]))
    return out, len(text.encode())


def flood(r, cmds, replies):
    """Sends the commands in pipelined batches, reading every reply."""
    got = []
    for i in range(0, len(cmds), 100):
        batch = cmds[i:i + 100]
        r.send("".join(c + "\r\n" for c in batch))
        for _ in batch:
            got.append(replies(r))
    return got


def test_smtp_noop_flood_log_bounded(petrel_factory):
    p = petrel_factory(settings={"log.max_lines_per_session": str(LIMIT),
                                 "smtp.max_junk_commands": "1000000"})
    before = len(p.log("smtp-in"))
    r = Raw(p.ports["smtp"])
    assert r.code() == 220
    assert r.cmd("EHLO client.test")[0] == 250
    got = flood(r, ["NOOP"] * FLOOD, lambda r: r.reply()[1][-1])
    assert got == ["250 2.0.0 Ok"] * FLOOD
    mid = "<after-flood@x.test>"
    assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert r.cmd("RCPT TO:<nobody@example.test>")[0] == 550
    assert r.cmd("DATA")[0] == 354
    code, lines = r.cmd(f"Message-ID: {mid}\r\nSubject: s\r\n\r\nbody\r\n.")
    assert code == 250 and mid in lines[-1], lines
    assert r.cmd("QUIT")[0] == 221
    r.close()
    assert wait_for(lambda: "disconnected:" in p.log("smtp-in")[before:])

    lines, texts = bounded_transcript(p, "smtp-in", before)
    # The lines that trace the message, all after the flood.
    assert any(t.startswith("MAIL FROM:<x@remote.test>") for t in texts)
    assert "RCPT TO:<alice@example.test>" in texts
    assert any(t.startswith("550") for t in texts)  # refusals too
    assert any(f"saved <Message-ID: {mid}>" in t for t in texts)
    assert any(t.startswith("221") for t in texts)
    assert any(t.startswith("disconnected:") for t in texts)
    # One summary, with the counts of what was left out: the NOOPs past
    # the limit and their replies.
    sums = [SUMMARY.search(d + " " + t) for d, t in lines]
    sums = [m for m in sums if m]
    assert len(sums) == 1, texts[-20:]
    cmds = sum(1 for d, _ in lines if d == "<--")
    sent = 1 + FLOOD + 5 + 1  # EHLO, NOOPs, MAIL RCPT RCPT DATA QUIT, [msg]
    skipped_cmds = sent - cmds
    skipped_replies = FLOOD - texts.count("250 2.0.0 Ok")
    assert int(sums[0].group(1)) == skipped_cmds
    assert int(sums[0].group(2)) == (4 * skipped_cmds +
                                     len("250 2.0.0 Ok") * skipped_replies)
    assert skipped_cmds > FLOOD - LIMIT
    # The message can still be traced from its Message-ID.
    out = p.ctl.ok("log", "search", mid)
    assert "MAIL FROM:<x@remote.test>" in out, out
    assert f"saved <Message-ID: {mid}>" in out, out


def test_smtp_transaction_loop_log_bounded(petrel_factory):
    """MAIL/RCPT/RSET in a loop: past the limit, a transaction's lines
    wait for its DATA and are forgotten without it, so the loop writes
    nothing; a message sent after it is traced whole, and a transaction
    with more RCPT lines than are held says how many it left out."""
    p = petrel_factory(settings={"log.max_lines_per_session": str(LIMIT),
                                 "smtp.max_junk_commands": "1000000"})
    before = len(p.log("smtp-in"))
    r = Raw(p.ports["smtp"])
    assert r.code() == 220
    assert r.cmd("EHLO client.test")[0] == 250
    loop = ["MAIL FROM:<x@remote.test>", "RCPT TO:<alice@example.test>",
            "RSET"] * (FLOOD // 3)
    got = flood(r, loop, lambda r: r.reply()[1][-1][:3])
    assert got == ["250"] * len(loop)
    mid = "<after-loop@x.test>"
    assert r.cmd("MAIL FROM:<y@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<bob@example.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    code, lines = r.cmd(f"Message-ID: {mid}\r\n\r\nbody\r\n.")
    assert code == 250, lines
    # More RCPT lines than the 16 KB held: the first are written, and a
    # line says how many more there were.
    assert r.cmd("MAIL FROM:<z@remote.test>")[0] == 250
    rcpts = ["RCPT TO:<alice@example.test>"] * 600
    assert flood(r, rcpts, lambda r: r.reply()[0]) == [250] * 600
    assert r.cmd("DATA")[0] == 354
    assert r.cmd("Message-ID: <many@x.test>\r\n\r\nbody\r\n.")[0] == 250
    assert r.cmd("QUIT")[0] == 221
    r.close()
    assert wait_for(lambda: "disconnected:" in p.log("smtp-in")[before:])

    lines, nbytes = transcript(p, "smtp-in", before)
    texts = [t for _, t in lines]
    # Before the bound: 5,000 lines of the loop and their replies. Now
    # the limit, and the two messages' lines, at most 16 KB held for the
    # second one.
    print(f"smtp-in grew by {len(lines)} lines, {nbytes} bytes")
    assert nbytes <= MAX_BYTES + 16 * 1024 + 2048
    # Not one line of the loop past the limit.
    assert texts.count("RSET") < LIMIT // 3
    for want in ("MAIL FROM:<y@remote.test>", "RCPT TO:<bob@example.test>",
                 "DATA", "MAIL FROM:<z@remote.test>"):
        assert want in texts, want
    assert any(f"saved <Message-ID: {mid}>" in t for t in texts)
    assert any("saved <Message-ID: <many@x.test>>" in t for t in texts)
    dropped = [t for t in texts if t.endswith(
        "more lines of this transaction not logged")]
    assert len(dropped) == 1, texts[-10:]
    held = texts.count("RCPT TO:<alice@example.test>")
    assert 100 < held < 600
    # The loop's lines past the limit, and the RCPT lines not held, are
    # in the summary.
    sums = [m for m in (SUMMARY.search(d + " " + t) for d, t in lines) if m]
    assert len(sums) == 1
    assert int(sums[0].group(1)) > len(loop) - LIMIT
    out = p.ctl.ok("log", "search", mid)
    assert "MAIL FROM:<y@remote.test>" in out, out


def bounded_transcript(p, log, before):
    """The transcript lines written since offset before, checked to stay
    within the limit: (lines, their texts)."""
    lines, nbytes = transcript(p, log, before)
    print(f"{log} grew by {len(lines)} lines, {nbytes} bytes")
    assert len(lines) <= LIMIT + 20, lines[-30:]
    assert nbytes <= MAX_BYTES
    return lines, [t for _, t in lines]


def deliver_one(p):
    """One message from a remote sender to alice, delivered."""
    r = Raw(p.ports["smtp"])
    assert r.code() == 220
    r.cmd("EHLO client.test")
    assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    assert r.cmd("Subject: s\r\n\r\nbody\r\n.")[0] == 250
    r.cmd("QUIT")
    r.close()
    assert p.messages("alice@example.test")


def pop3_reply(r):
    return r.line()


def test_pop3_noop_stat_flood_log_bounded(petrel_factory):
    p = petrel_factory(settings={"log.max_lines_per_session": str(LIMIT),
                                 "auth.allow_plaintext": "on"})
    deliver_one(p)

    before = len(p.log("pop3"))
    r = Raw(p.ports["pop3"])
    assert r.line().startswith("+OK")
    r.send("USER alice@example.test\r\n")
    assert r.line().startswith("+OK")
    r.send(f"PASS {PW}\r\n")
    assert r.line().startswith("+OK Logged in")
    cmds = ["NOOP", "STAT"] * (FLOOD // 2)
    got = flood(r, cmds, pop3_reply)
    stat = got[1]
    assert re.fullmatch(r"\+OK 1 \d+", stat)
    assert got == ["+OK", stat] * (FLOOD // 2)
    r.send("RETR 9\r\n")
    assert r.line().startswith("-ERR")
    r.send("RETR 1\r\n")
    assert r.line().startswith("+OK")
    while r.line() != ".":
        pass
    r.send("QUIT\r\n")
    assert r.line().startswith("+OK")
    r.close()
    assert wait_for(lambda: "disconnected:" in p.log("pop3")[before:])

    lines, texts = bounded_transcript(p, "pop3", before)
    assert "RETR 9" in texts and "RETR 1" in texts and "QUIT" in texts
    assert any(t.startswith("-ERR") for t in texts)
    assert "PASS <redacted>" in texts and PW not in p.log("pop3")
    sums = [m for m in (SUMMARY.search(d + " " + t) for d, t in lines) if m]
    assert len(sums) == 1, texts[-20:]
    sent = 2 + FLOOD + 3  # USER PASS, the flood, RETR RETR QUIT
    skipped_cmds = sent - sum(1 for d, _ in lines if d == "<--")
    noops = FLOOD // 2 - texts.count("+OK")
    stats = FLOOD // 2 - texts.count(stat)
    assert int(sums[0].group(1)) == skipped_cmds
    assert int(sums[0].group(2)) == (4 * skipped_cmds + 3 * noops +
                                     len(stat) * stats)


def test_free_space_threshold(petrel_factory):
    p = petrel_factory()
    top = "1000000000000"  # the largest queue.min_free_mb: 1 EB
    assert p.ctl.run("set", "queue.min_free_mb",
                     "1000000000001").returncode != 0
    p.set("queue.min_free_mb", top)
    for _ in range(3):
        r = Raw(p.ports["smtp"])
        assert r.code() == 220
        r.cmd("EHLO client.test")
        code, lines = r.cmd("MAIL FROM:<x@remote.test>")
        assert code == 452 and lines[-1].startswith("452 4.3.1"), lines
        r.cmd("QUIT")
        r.close()
    low = "under queue.min_free_mb"
    assert p.log("system").count(low) == 1, p.log("system")

    p.set("queue.min_free_mb", "1")
    deliver_one(p)
    system = p.log("system")
    assert system.count(low) == 1
    assert system.count("met again: new transactions accepted") == 1, system
