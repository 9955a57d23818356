"""petrelctl's directory nouns: every verb, the errors an admin meets, the
exit codes, one-line stderr, and --json output."""
import json
import sqlite3
import subprocess

import pytest

from conftest import Ctl, binary, write_config

PW = "correct horse battery staple"


def fails(r, code=1, text=None):
    """A failure: the exit code, exactly one line on stderr that starts
    with "petrelctl: ", and that line holds `text`."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("petrelctl: "), r.stderr
    if text is not None:
        assert text in lines[0], lines[0]
    return lines[0]


def add_account(ctl, addr, password=PW, *extra):
    return ctl.ok("account", "add", addr, *extra, input=password + "\n")


def hash_of(data_dir, addr):
    with sqlite3.connect(data_dir / "petrel.db") as db:
        row = db.execute("SELECT password FROM accounts WHERE address = ?",
                         (addr,)).fetchone()
    return row[0] if row else None


@pytest.fixture
def dom(ctl):
    ctl.ok("domain", "add", "example.test")
    return ctl


# --- general ---

def test_help(ctl):
    r = ctl.run("help")
    assert r.returncode == 0
    for noun in ("domain", "account", "alias", "group", "set KEY VALUE",
                 "get KEY", "settings"):
        assert noun in r.stdout
    assert r.stderr == ""


def test_no_command(ctl):
    r = ctl.run()
    assert "usage: petrelctl" in r.stdout
    fails(r, 2, "no command given")


def test_unknown_noun_and_verb(ctl):
    fails(ctl.run("frobnicate"), 2, "unknown command 'frobnicate'")
    fails(ctl.run("domain"), 2, "usage: petrelctl domain")
    fails(ctl.run("domain", "frob"), 2, "usage: petrelctl domain")
    fails(ctl.run("domain", "add"), 2, "usage:")
    fails(ctl.run("domain", "add", "a.test", "b.test"), 2, "usage:")
    fails(ctl.run("account", "show"), 2, "usage: petrelctl account")
    fails(ctl.run("group", "member"), 2, "usage: petrelctl group")
    fails(ctl.run("get"), 2, "usage: petrelctl get KEY")
    fails(ctl.run("set", "hijack.minutes"), 2, "usage: petrelctl set")
    fails(ctl.run("settings", "extra"), 2, "usage:")


def test_missing_config(tmp_path):
    r = subprocess.run([binary("petrelctl"), "-c",
                        str(tmp_path / "nope.conf"), "domain", "list"],
                       capture_output=True, text=True, timeout=60)
    fails(r, 1, "nope.conf")


def test_bad_config(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("no_such_key = 1\n")
    r = subprocess.run([binary("petrelctl"), "-c", str(conf), "domain",
                        "list"], capture_output=True, text=True, timeout=60)
    fails(r, 1, "bad.conf")


def test_default_config_in_cwd(tmp_path):
    """Without -c, ./petrel.conf is read when it exists."""
    write_config(tmp_path / "petrel.conf", tmp_path / "here")
    r = subprocess.run([binary("petrelctl"), "domain", "add", "cwd.test"],
                       cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "here" / "petrel.db").exists()


def test_data_dir_created(tmp_path):
    data = tmp_path / "deep" / "er" / "var"
    ctl = Ctl(write_config(tmp_path / "p.conf", data))
    ctl.ok("domain", "add", "example.test")
    db = data / "petrel.db"
    assert db.exists()
    # The database holds password hashes: no access for other users.
    assert db.stat().st_mode & 0o007 == 0


def test_error_is_one_line_whatever_the_input(ctl):
    line = fails(ctl.run("domain", "add", "evil\nforged line\x1b[2J"), 1,
                 "invalid domain")
    assert "\x1b" not in line


def test_unknown_option(ctl):
    fails(ctl.run("--bogus", "domain", "list"), 2, "unknown option --bogus")


# --- domain ---

def test_domain(ctl, data_dir):
    assert ctl.ok("domain", "add", "Example.TEST")
    ctl.ok("domain", "add", "b.test")
    assert ctl.ok("domain", "list").split() == ["b.test", "example.test"]
    fails(ctl.run("domain", "add", "example.test"), 1,
          "domain example.test already exists")
    fails(ctl.run("domain", "add", "bad_domain"), 1, "invalid domain")
    fails(ctl.run("domain", "add", "a..b"), 1, "invalid domain")
    ctl.ok("domain", "del", "B.test")
    assert ctl.ok("domain", "list").split() == ["example.test"]
    fails(ctl.run("domain", "del", "b.test"), 1,
          "domain b.test does not exist")


def test_domain_json(ctl):
    ctl.ok("domain", "add", "a.test")
    ctl.ok("domain", "add", "b.test")
    out = json.loads(ctl.run("domain", "list", json=True, check=True).stdout)
    assert out == [{"name": "a.test"}, {"name": "b.test"}]
    assert json.loads(ctl.run("domain", "del", "a.test", json=True,
                              check=True).stdout or "null") is None


def test_domain_del_with_accounts_refused(dom):
    add_account(dom, "alice@example.test")
    fails(dom.run("domain", "del", "example.test"), 1,
          "domain example.test still has 1 account(s)")
    assert "example.test" in dom.ok("domain", "list")
    dom.ok("account", "del", "alice@example.test")
    dom.ok("domain", "del", "example.test")


# --- account ---

def test_account_add_show_list(dom, data_dir):
    add_account(dom, "Alice@Example.test")
    add_account(dom, "root@example.test", PW, "--admin")
    out = dom.ok("account", "list")
    assert "alice@example.test" in out and "root@example.test" in out
    show = dom.ok("account", "show", "ALICE@example.test")
    assert "alice@example.test" in show
    assert "enabled" in show
    assert "admin:      no" in show
    assert "last login: never" in show
    assert "admin:      yes" in dom.ok("account", "show", "root@example.test")
    h = hash_of(data_dir, "alice@example.test")
    assert h.startswith("$argon2id$")
    assert PW not in (data_dir / "petrel.db").read_bytes().decode("latin-1")


def test_account_json(dom):
    add_account(dom, "alice@example.test")
    dom.ok("alias", "add", "info@example.test", "alice@example.test")
    accounts = json.loads(dom.run("account", "list", json=True,
                                  check=True).stdout)
    assert [a["address"] for a in accounts] == ["alice@example.test"]
    a = accounts[0]
    assert a["state"] == "enabled" and a["admin"] is False
    assert a["created"] > 0 and a["last_login"] == 0
    show = json.loads(dom.run("account", "show", "alice@example.test",
                              json=True, check=True).stdout)
    assert show["address"] == "alice@example.test"
    assert show["aliases"] == ["info@example.test"]


def test_account_duplicate(dom):
    add_account(dom, "alice@example.test")
    fails(dom.run("account", "add", "ALICE@example.test", input=PW + "\n"),
          1, "account alice@example.test already exists")


def test_account_unknown_domain(dom):
    fails(dom.run("account", "add", "bob@nowhere.test", input=PW + "\n"), 1,
          "domain nowhere.test does not exist")
    assert dom.ok("account", "list") == ""


@pytest.mark.parametrize("addr,text", [
    ("bob", "exactly one '@'"),
    ("a@b@example.test", "exactly one '@'"),
    ("@example.test", "local part is empty"),
    ("b b@example.test", "not allowed"),
    ("x" * 65 + "@example.test", "longer than 64"),
    ("bob@exa_mple.test", "invalid address"),
])
def test_account_bad_address(dom, addr, text):
    fails(dom.run("account", "add", addr, input=PW + "\n"), 1, text)


@pytest.mark.parametrize("addr,password,text", [
    ("bob@example.test", "short1", "shorter than 10 characters"),
    ("bob@example.test", "ninechars", "shorter than 10 characters"),
    ("longusername@example.test", "LongUserName",
     "the account's own name"),
    ("bob@example.test", "Password123", "most common passwords"),
    ("bob@example.test", "qwertyuiop", "most common passwords"),
])
def test_weak_password(dom, addr, password, text):
    r = dom.run("account", "add", addr, input=password + "\n")
    fails(r, 1, text)
    assert "weak password" in r.stderr
    assert "--force" in r.stderr
    assert addr not in dom.ok("account", "list")
    # --force takes it, before the noun or after the arguments.
    dom.ok("--force", "account", "add", addr, input=password + "\n")
    assert addr in dom.ok("account", "list")


def test_weak_password_force_after_args(dom):
    dom.ok("account", "add", "bob@example.test", "--force",
           input="short\n")


def test_password_never_in_argv(dom):
    r = dom.run("account", "add", "bob@example.test", "Secret-Passw0rd!",
                input=PW + "\n")
    fails(r, 2, "stdin")
    assert "Secret-Passw0rd!" not in r.stderr
    assert "bob@example.test" not in dom.ok("account", "list")
    fails(dom.run("account", "passwd", "bob@example.test",
                  "Secret-Passw0rd!"), 2, "usage:")


def test_password_missing_or_empty(dom):
    fails(dom.run("account", "add", "bob@example.test", input=""), 1,
          "no password")
    fails(dom.run("account", "add", "bob@example.test", input="\n"), 1,
          "no password")
    fails(dom.run("--force", "account", "add", "bob@example.test",
                  input="\r\n"), 1, "no password")
    assert dom.ok("account", "list") == ""


def test_password_crlf_stripped(dom, data_dir):
    dom.ok("account", "add", "bob@example.test", input=PW + "\r\n")
    import ctypes
    import ctypes.util
    sodium = ctypes.CDLL(ctypes.util.find_library("sodium"))
    h = hash_of(data_dir, "bob@example.test").encode()
    assert sodium.sodium_init() >= 0
    assert sodium.crypto_pwhash_str_verify(h, PW.encode(),
                                           ctypes.c_ulonglong(len(PW))) == 0


def test_passwd(dom, data_dir):
    add_account(dom, "alice@example.test")
    before = hash_of(data_dir, "alice@example.test")
    dom.ok("account", "passwd", "alice@example.test",
           input="another long passphrase\n")
    assert hash_of(data_dir, "alice@example.test") != before
    fails(dom.run("account", "passwd", "alice@example.test",
                  input="short\n"), 1, "weak password")
    fails(dom.run("account", "passwd", "nobody@example.test",
                  input=PW + "\n"), 1,
          "account nobody@example.test does not exist")


def test_enable_disable(dom):
    add_account(dom, "alice@example.test")
    dom.ok("account", "disable", "alice@example.test", "left", "the",
           "company")
    show = dom.ok("account", "show", "alice@example.test")
    assert "disabled since" in show and "(left the company)" in show
    j = json.loads(dom.run("account", "show", "alice@example.test",
                           json=True, check=True).stdout)
    assert j["state"] == "disabled"
    assert j["state_reason"] == "left the company"
    assert j["state_time"] > 0
    assert "disabled" in dom.ok("account", "list")
    dom.ok("account", "enable", "alice@example.test")
    assert "state:      enabled" in dom.ok("account", "show",
                                           "alice@example.test")
    dom.ok("account", "disable", "alice@example.test")
    assert "disabled" in dom.ok("account", "show", "alice@example.test")
    fails(dom.run("account", "enable", "nobody@example.test"), 1,
          "does not exist")
    fails(dom.run("account", "disable", "nobody@example.test"), 1,
          "does not exist")


def test_account_del(dom):
    add_account(dom, "alice@example.test")
    dom.ok("alias", "add", "info@example.test", "alice@example.test")
    dom.ok("account", "del", "Alice@example.test")
    assert dom.ok("account", "list") == ""
    # Its aliases went with it.
    assert dom.ok("alias", "list") == ""
    fails(dom.run("account", "del", "alice@example.test"), 1,
          "account alice@example.test does not exist")
    fails(dom.run("account", "show", "alice@example.test"), 1,
          "account alice@example.test does not exist")


# --- alias ---

def test_alias(dom):
    add_account(dom, "alice@example.test")
    dom.ok("alias", "add", "Postmaster@example.test", "alice@EXAMPLE.test")
    assert dom.ok("alias", "list").strip() == \
        "postmaster@example.test -> alice@example.test"
    out = json.loads(dom.run("alias", "list", json=True, check=True).stdout)
    assert out == [{"alias": "postmaster@example.test",
                    "account": "alice@example.test"}]
    assert "postmaster@example.test" in dom.ok("account", "show",
                                               "alice@example.test")
    fails(dom.run("alias", "add", "postmaster@example.test",
                  "alice@example.test"), 1, "already exists")
    fails(dom.run("alias", "add", "x@nowhere.test", "alice@example.test"),
          1, "domain nowhere.test does not exist")
    fails(dom.run("alias", "add", "x@example.test", "bob@example.test"), 1,
          "account bob@example.test does not exist")
    fails(dom.run("alias", "add", "alice@example.test",
                  "alice@example.test"), 1, "is an account")
    fails(dom.run("account", "add", "postmaster@example.test",
                  input=PW + "\n"), 1, "already an alias")
    dom.ok("alias", "del", "postmaster@example.test")
    assert dom.ok("alias", "list") == ""
    fails(dom.run("alias", "del", "postmaster@example.test"), 1,
          "alias postmaster@example.test does not exist")


# --- group ---

def test_group(ctl):
    ctl.ok("group", "add", "Sales")
    ctl.ok("group", "add", "empty")
    ctl.ok("group", "member", "add", "sales", "Bob@X.test")
    ctl.ok("group", "member", "add", "sales", "amy@x.test")
    assert ctl.ok("group", "list").splitlines() == [
        "empty:", "sales: amy@x.test, bob@x.test"]
    out = json.loads(ctl.run("group", "list", json=True, check=True).stdout)
    assert out == [{"name": "empty", "members": []},
                   {"name": "sales", "members": ["amy@x.test",
                                                 "bob@x.test"]}]
    fails(ctl.run("group", "add", "sales"), 1, "group sales already exists")
    fails(ctl.run("group", "add", "bad name"), 1, "invalid group name")
    fails(ctl.run("group", "member", "add", "sales", "bob@x.test"), 1,
          "already a member")
    fails(ctl.run("group", "member", "add", "nope", "bob@x.test"), 1,
          "group nope does not exist")
    fails(ctl.run("group", "member", "add", "sales", "bob"), 1,
          "invalid address")
    ctl.ok("group", "member", "del", "sales", "bob@x.test")
    fails(ctl.run("group", "member", "del", "sales", "bob@x.test"), 1,
          "not a member")
    ctl.ok("group", "del", "sales")
    fails(ctl.run("group", "del", "sales"), 1, "group sales does not exist")
    assert ctl.ok("group", "list").splitlines() == ["empty:"]


# --- settings ---

def test_set_get(ctl):
    assert ctl.ok("get", "hijack.minutes").strip() == "30"
    assert ctl.ok("set", "hijack.minutes", "60").strip() == \
        "hijack.minutes = 60"
    assert ctl.ok("get", "hijack.minutes").strip() == "60"
    ctl.ok("set", "hijack.enabled", "no")
    assert ctl.ok("get", "hijack.enabled").strip() == "off"
    ctl.ok("set", "hijack.action", "THROTTLE")
    assert ctl.ok("get", "hijack.action").strip() == "throttle"
    # A list in one argument or several.
    ctl.ok("set", "trusted.hosts", "10.0.0.1,  10.0.0.2 ,", "relay.test")
    assert ctl.ok("get", "trusted.hosts").strip() == \
        "10.0.0.1, 10.0.0.2, relay.test"
    ctl.ok("set", "trusted.hosts", "")
    assert ctl.ok("get", "trusted.hosts").strip() == ""
    out = json.loads(ctl.run("get", "hijack.minutes", json=True,
                             check=True).stdout)
    assert out == {"name": "hijack.minutes", "value": "60"}


def test_set_errors(ctl):
    fails(ctl.run("set", "no.such", "1"), 1, "unknown setting 'no.such'")
    fails(ctl.run("get", "no.such"), 1, "unknown setting 'no.such'")
    fails(ctl.run("set", "hijack.minutes", "0"), 1, "1 to 10080")
    fails(ctl.run("set", "hijack.minutes", "10081"), 1, "1 to 10080")
    fails(ctl.run("set", "hijack.minutes", "soon"), 1, "whole number")
    fails(ctl.run("set", "hijack.enabled", "maybe"), 1, "on or off")
    fails(ctl.run("set", "hijack.action", "bounce"), 1, "freeze|throttle")
    fails(ctl.run("set", "trusted.hosts", "a\nb"), 1, "control")
    # Nothing was stored by the failures.
    assert ctl.ok("get", "hijack.minutes").strip() == "30"


def test_settings_listing(ctl):
    ctl.ok("set", "hijack.max_messages", "50")
    text = ctl.ok("settings")
    assert "hijack.max_messages = 50" in text
    assert "default: 500" in text
    assert "auth.require_for_local_senders = on" in text
    out = json.loads(ctl.run("settings", json=True, check=True).stdout)
    names = [s["name"] for s in out]
    for n in ("auth.require_for_local_senders", "auth.match_return_path",
              "auth.match_from_header", "auth.except_to_local",
              "hijack.enabled", "hijack.max_messages", "hijack.minutes",
              "trusted.hosts", "dnsbl.zones"):
        assert n in names
    by = {s["name"]: s for s in out}
    assert by["hijack.max_messages"]["value"] == "50"
    assert by["hijack.max_messages"]["default"] == "500"
    assert by["hijack.max_messages"]["min"] == 1
    assert by["hijack.action"]["choices"] == "freeze|throttle"
    assert all(s["help"] for s in out)
