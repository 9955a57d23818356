"""spamd for the spam tests: Debian's real spamd (SpamAssassin) started
privately on a loopback port with network tests off, and a fake one in
python whose answer each test chooses (a score, silence, garbage)."""
import pathlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(port, msg, command="SYMBOLS"):
    """One SPAMC/1.5 request; returns spamd's whole reply (bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(b"%s SPAMC/1.5\r\nContent-length: %d\r\n\r\n" %
                  (command.encode(), len(msg)) + msg)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


class RealSpamd:
    """spamd -L (local tests only: no DNS, no network) on 127.0.0.1, its
    site config a private copy of Debian's .pre files plus a local.cf
    that turns Bayes and auto-learning off. No sa-update: the rules are
    those the package ships."""

    def __init__(self, tmp):
        exe = shutil.which("spamd") or "/usr/sbin/spamd"
        if not pathlib.Path(exe).exists():
            raise AssertionError("spamd is not installed (scripts/deps.sh)")
        self.dir = pathlib.Path(tmp)
        # Run as root, spamd drops to nobody, who must read the site
        # config: it goes in a directory of its own that anyone may read
        # (pytest's are the user's only).
        site = self.site = pathlib.Path(
            tempfile.mkdtemp(prefix="petrel-spamd-"))
        site.chmod(0o755)
        for pre in pathlib.Path("/etc/spamassassin").glob("*.pre"):
            shutil.copy(pre, site / pre.name)
        (site / "local.cf").write_text(
            "use_bayes 0\nbayes_auto_learn 0\nskip_rbl_checks 1\n"
            "dns_available no\n")
        self.port = free_port()
        self.log = open(self.dir / "spamd.log", "ab")
        self.proc = subprocess.Popen(
            [exe, "-L", f"--listen=127.0.0.1:{self.port}", "-x",
             f"--siteconfigpath={site}", f"--pidfile={self.dir / 'pid'}",
             "--syslog=stderr", "-m", "2", "--min-spare=1",
             "--max-spare=1"],
            stdout=self.log, stderr=self.log, cwd=self.dir)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("spamd exited: " + self.log_text())
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              timeout=5) as s:
                    s.sendall(b"PING SPAMC/1.5\r\n\r\n")
                    if b"PONG" in s.recv(100):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("spamd did not start: " + self.log_text())

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def log_text(self):
        return (self.dir / "spamd.log").read_text(errors="replace")

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.site, ignore_errors=True)


class FakeSpamd:
    """Answers SYMBOLS requests on 127.0.0.1. mode: "score" (Spam: header
    with `score`, body `symbols`), "hang" (reads, never answers), "garbage"
    (a reply that is not spamd's), "refuse" (SPAMD/1.0 76 Bad header)."""

    def __init__(self, mode="score", score=3.0, symbols="FAKE_RULE"):
        self.mode, self.score, self.symbols = mode, score, symbols
        self.requests = []  # (request line, body bytes)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.conns = []
        threading.Thread(target=self._run, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def _run(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        c.settimeout(30)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = c.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            lines = head.decode(errors="replace").split("\r\n")
            length = 0
            for h in lines[1:]:
                k, _, v = h.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v)
            while len(body) < length:
                chunk = c.recv(65536)
                if not chunk:
                    break
                body += chunk
            self.requests.append((lines[0], body))
            if self.mode == "hang":
                time.sleep(30)
                return
            if self.mode == "garbage":
                c.sendall(b"HTTP/1.0 200 OK\r\n\r\nhello")
            elif self.mode == "refuse":
                c.sendall(b"SPAMD/1.0 76 Bad header line: x\r\n\r\n")
            else:
                sym = self.symbols.encode()
                flag = "True" if self.score >= 5 else "False"
                c.sendall(b"SPAMD/1.1 0 EX_OK\r\nContent-length: %d\r\n"
                          b"Spam: %s ; %.1f / 5.0\r\n\r\n%s" %
                          (len(sym), flag.encode(), self.score, sym))
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
