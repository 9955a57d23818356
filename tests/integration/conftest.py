"""Shared fixtures: the build to test, a private data directory and config
per test, petrelctl runner. The daemon fixture lives here too (see
`petrel` below), so every test drives the real binaries on loopback."""
import atexit
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("PETREL_BUILD", ROOT / "build-test"))


def binary(name):
    path = BUILD / name
    if not path.exists():
        pytest.fail(f"{path} is not built (make test-build)")
    return str(path)


class Ctl:
    """Runs petrelctl against one config file."""

    def __init__(self, config):
        self.config = str(config)

    def run(self, *args, input=None, check=False, json=False):
        argv = [binary("petrelctl"), "-c", self.config]
        if json:
            argv.append("--json")
        argv += [str(a) for a in args]
        r = subprocess.run(argv, input=input, capture_output=True,
                           text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(
                f"petrelctl {' '.join(argv[3:])} failed ({r.returncode}): "
                f"{r.stderr.strip()}")
        return r

    def ok(self, *args, input=None, json=False):
        return self.run(*args, input=input, check=True, json=json).stdout


def write_config(path, data_dir, **extra):
    lines = [f"data_dir = {data_dir}", "hostname = mx.example.test"]
    for k, v in extra.items():
        lines.append(f"{k} = {v}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "var"
    d.mkdir()
    return d


@pytest.fixture
def config(tmp_path, data_dir):
    """A config for petrelctl only: every listener off."""
    return write_config(tmp_path / "petrel.conf", data_dir,
                        listen_smtp="none", listen_submission="none",
                        listen_smtps="none", listen_pop3="none",
                        listen_pop3s="none", listen_admin="none")


@pytest.fixture
def ctl(config):
    return Ctl(config)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n):
    """n distinct free ports: each stays bound until all are chosen, so
    that two listeners never get the same one."""
    import socket
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


_DEMO = None


def _demo_data_dir():
    """A data dir with the domain example.test, the accounts postmaster,
    alice and bob (password Petrel.PASSWORD) and auth.fail_delay_ms 0
    (tests run fast: no delay before 535 unless a test wants one)."""
    global _DEMO
    if _DEMO is None:
        base = pathlib.Path(tempfile.mkdtemp(prefix="petrel-demo-"))
        atexit.register(shutil.rmtree, base, True)
        var = base / "var"
        var.mkdir()
        ctl = Ctl(write_config(base / "petrel.conf", var))
        ctl.ok("domain", "add", "example.test")
        for a in ("postmaster", "alice", "bob"):
            ctl.ok("account", "add", f"{a}@example.test",
                   input=Petrel.PASSWORD + "\n")
        ctl.ok("set", "auth.fail_delay_ms", "0")
        _DEMO = var
    return _DEMO


class Petrel:
    """A running petreld on free loopback ports, with its data directory,
    config and petrelctl. Started by the `petrel` fixture; settings can be
    given before start and the demo domain/accounts exist."""

    PASSWORD = "correct horse battery staple"

    def __init__(self, tmp_path, settings=None, **conf):
        import getpass
        self.tmp = tmp_path
        self.data_dir = tmp_path / "var"
        self.data_dir.mkdir(exist_ok=True)
        names = ("smtp", "submission", "smtps", "pop3", "pop3s")
        self.ports = dict(zip(names, free_ports(len(names))))
        listen = {f"listen_{k}": f"127.0.0.1:{p}"
                  for k, p in self.ports.items()}
        listen.update(listen_admin="none", user=getpass.getuser(),
                      workers="2")
        # Never the internet: a resolver port where nothing answers, so
        # that mail to other domains waits in deferred/ unless a test
        # starts its own DNS server (test_remote.py).
        listen.update(dns_server=f"127.0.0.1:{free_port()}")
        listen.update(conf)
        self.config = write_config(tmp_path / "petrel.conf", self.data_dir,
                                   **listen)
        self.ctl = Ctl(self.config)
        self.log_dir = self.data_dir / "log"
        self.proc = None
        self.stderr = None
        self.preexec = None  # run in the child before petreld (limits)
        # The demo domain and accounts, made once per run (argon2id
        # hashing is slow on purpose) and copied into each data dir.
        shutil.copytree(_demo_data_dir(), self.data_dir, dirs_exist_ok=True)
        for k, v in (settings or {}).items():
            self.ctl.ok("set", k, v)

    def ready_count(self):
        logs = self.data_dir / "log"
        return sum(f.read_text(errors="replace").count("*** petreld ready")
                   for f in logs.glob("system-*.log")) if logs.exists() else 0

    def start(self):
        """Starts petreld and waits for its "ready" line: by then every
        listener is bound. (A probe connection would hold a session slot
        until the server saw it close.)"""
        import time
        before = self.ready_count()
        self.stderr = open(self.tmp / "petreld.stderr", "ab")
        self.proc = subprocess.Popen([binary("petreld"), "-c",
                                      str(self.config)],
                                     stdout=self.stderr, stderr=self.stderr,
                                     preexec_fn=self.preexec)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("petreld exited: " + self.stderr_text())
            if self.ready_count() > before:
                return self
            time.sleep(0.02)
        raise AssertionError("petreld did not start: " + self.stderr_text())

    def stderr_text(self):
        return (self.tmp / "petreld.stderr").read_text(errors="replace")

    def stop(self, sig=None):
        import signal as _signal
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig or _signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        self.stderr.close()
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.stderr.close()

    def reloads(self):
        return self.log("system").count("settings reloaded")

    def set(self, key, value):
        """petrelctl set, then waits until the daemon has reloaded that
        change (its log line names the directory's change counter; the
        daemon's own writes, a block say, move it too, so a count of
        reload lines would not do)."""
        import re
        import sqlite3
        import time
        self.ctl.ok("set", key, value)
        if self.proc is None:
            return
        db = sqlite3.connect(self.data_dir / "petrel.db")
        try:
            want = db.execute("SELECT n FROM changes").fetchone()[0]
        finally:
            db.close()
        deadline = time.monotonic() + 5
        while not any(int(n) >= want for n in re.findall(
                r"settings reloaded \(change (\d+)\)", self.log("system"))):
            assert time.monotonic() < deadline, "settings not reloaded"
            time.sleep(0.02)

    def log(self, name):
        return "".join(p.read_text(errors="replace")
                       for p in sorted(self.log_dir.glob(f"{name}-*.log")))

    def maildir(self, address):
        local, domain = address.split("@")
        return self.data_dir / "mail" / domain / local / "Maildir"

    def messages(self, address, timeout=10):
        """Files in new/ of a mailbox, waiting up to timeout for one."""
        import time
        deadline = time.monotonic() + timeout
        new = self.maildir(address) / "new"
        while True:
            files = sorted(new.glob("*")) if new.exists() else []
            if files or time.monotonic() > deadline:
                return files
            time.sleep(0.05)


@pytest.fixture
def petrel_factory(tmp_path):
    started = []

    def make(settings=None, start=True, **conf):
        p = Petrel(tmp_path, settings, **conf)
        started.append(p)
        return p.start() if start else p
    yield make
    for p in started:
        rc = p.stop()
        if rc not in (None, 0):
            raise AssertionError(f"petreld exited {rc}: {p.stderr_text()[-3000:]}")
        # ASan reports go to stderr: a leak or an error fails the test.
        text = (tmp_path / "petreld.stderr").read_text(errors="replace") \
            if (tmp_path / "petreld.stderr").exists() else ""
        assert "ERROR: AddressSanitizer" not in text, text[-4000:]
        assert "ERROR: LeakSanitizer" not in text, text[-4000:]
        assert "runtime error:" not in text, text[-4000:]


@pytest.fixture
def petrel(petrel_factory):
    return petrel_factory()
