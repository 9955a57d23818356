"""Loopback peers for remote delivery tests: a small authoritative DNS
server (A, AAAA, MX, null MX, TXT, SERVFAIL, no answer, negative TTL) and an SMTP sink whose answers each
test chooses (per-recipient 2xx/4xx/5xx, STARTTLS, AUTH, hang, drop).
Standard library only; every address is in 127.0.0.0/8."""
import base64
import socket
import ssl
import struct
import subprocess
import threading
import time


# --- DNS ---------------------------------------------------------------

class DnsServer:
    """Answers for the names in `zone`: {name: [("A", "127.0.0.2"),
    ("MX", 10, "mx1.x.test"), ("AAAA", "::1"), ("TXT", "text"),
    ("SERVFAIL",), ("TIMEOUT",)]}. An A or TXT record may carry its TTL
    as a third element (60 otherwise); ("TIMEOUT",) never answers.
    Unknown names get NXDOMAIN; known names without the asked type get an
    empty NOERROR answer (NODATA). With negative_ttl, NXDOMAIN answers
    carry an SOA record with that TTL and minimum (RFC 2308)."""

    TYPES = {1: "A", 28: "AAAA", 15: "MX", 16: "TXT"}

    def __init__(self, zone=None, negative_ttl=None):
        self.negative_ttl = negative_ttl
        self.zone = {k.lower().rstrip("."): v for k, v in (zone or {}).items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def set(self, name, records):
        self.zone[name.lower().rstrip(".")] = records

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stopped:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self._answer(data)
            except Exception:  # a malformed query: no answer
                continue
            if reply:
                self.sock.sendto(reply, peer)

    @staticmethod
    def _name(data, off):
        labels = []
        while True:
            n = data[off]
            off += 1
            if n == 0:
                return ".".join(labels), off
            labels.append(data[off:off + n].decode("ascii", "replace"))
            off += n

    @staticmethod
    def _encode(name):
        out = b""
        for label in name.rstrip(".").split("."):
            if label:
                out += bytes([len(label)]) + label.encode()
        return out + b"\0"

    def _answer(self, data):
        qid, flags, qd = struct.unpack(">HHH", data[:6])
        name, off = self._name(data, 12)
        qtype, qclass = struct.unpack(">HH", data[off:off + 4])
        question = data[12:off + 4]
        key = name.lower().rstrip(".")
        self.queries.append((key, self.TYPES.get(qtype, qtype)))
        records = self.zone.get(key)
        rcode, answers = 0, []
        authority = []
        if records is None:
            rcode = 3
            if self.negative_ttl is not None:
                t = self.negative_ttl
                rdata = (self._encode("ns.test") + self._encode("h.test") +
                         struct.pack(">IIIII", 1, 3600, 600, 86400, t))
                authority.append(self._encode("test") + struct.pack(
                    ">HHIH", 6, 1, t, len(rdata)) + rdata)
        elif any(r[0] == "TIMEOUT" for r in records):
            return None
        elif any(r[0] == "SERVFAIL" for r in records):
            rcode = 2
        else:
            want = self.TYPES.get(qtype)
            for r in records:
                if r[0] != want:
                    continue
                ttl = 60
                if want == "A":
                    rdata = socket.inet_pton(socket.AF_INET, r[1])
                    ttl = r[2] if len(r) > 2 else 60
                elif want == "AAAA":
                    rdata = socket.inet_pton(socket.AF_INET6, r[1])
                elif want == "TXT":
                    text = r[1].encode()
                    rdata = b"".join(bytes([len(text[i:i + 255])]) +
                                     text[i:i + 255]
                                     for i in range(0, len(text), 255))
                    ttl = r[2] if len(r) > 2 else 60
                else:
                    rdata = struct.pack(">H", r[1]) + self._encode(r[2])
                answers.append(b"\xc0\x0c" + struct.pack(
                    ">HHIH", qtype, 1, ttl, len(rdata)) + rdata)
        head = struct.pack(">HHHHHH", qid, 0x8400 | (flags & 0x0100) | rcode,
                           1, len(answers), len(authority), 0)
        return head + question + b"".join(answers) + b"".join(authority)

    def count(self, name, qtype="A"):
        """How many queries of that type asked for name."""
        key = name.lower().rstrip(".")
        return sum(1 for q in self.queries if q == (key, qtype))

    def close(self):
        self.stopped = True
        self.sock.close()


# --- SMTP --------------------------------------------------------------

def make_cert(tmp, name, ca=None):
    """A key and certificate for `name` (self-signed, or signed by ca =
    (cert, key)). Returns (cert, key) paths."""
    key, crt = tmp / f"{name}.key", tmp / f"{name}.crt"
    subj = f"/CN={name}"
    if ca is None:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", crt, "-days", "2",
                        "-subj", subj, "-addext",
                        f"subjectAltName=DNS:{name}"] +
                       (["-addext", "basicConstraints=critical,CA:TRUE"]
                        if name.startswith("ca") else []),
                       check=True, capture_output=True)
        return crt, key
    csr = tmp / f"{name}.csr"
    ext = tmp / f"{name}.ext"
    ext.write_text(f"subjectAltName=DNS:{name}\n")
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                    "-out", csr, "-subj", subj], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca[0],
                    "-CAkey", ca[1], "-CAcreateserial", "-out", crt,
                    "-days", "2", "-extfile", ext], check=True,
                   capture_output=True)
    return crt, key


class Message:
    def __init__(self):
        self.mail_from = None
        self.mail_params = ""
        self.rcpts = []
        self.raw = b""  # DATA as it came, dot-stuffed, up to "."
        self.tls = False
        self.helo = None
        self.auth = None

    @property
    def data(self):
        """The message with dot-stuffing undone (CRLF lines)."""
        out = []
        for line in self.raw.split(b"\r\n"):
            out.append(line[1:] if line.startswith(b".") else line)
        return b"\r\n".join(out)


class SmtpSink:
    """An SMTP server on host:port. Knobs (attributes, change any time):
    greeting (a reply line, or "hang" / "drop"), ehlo_ok, extensions,
    rcpt(addr) -> reply, mail_reply, data_reply (or "hang" / "drop"),
    data_delay, data_gate (a threading.Event the reply also waits for;
    all three read when the dot comes), tls (a server context: offers
    STARTTLS), auth {user: password}."""

    def __init__(self, host="127.0.0.2", port=0, tls=None):
        self.host = host
        self.greeting = "220 sink.test ESMTP"
        self.ehlo_ok = True
        self.extensions = ["PIPELINING", "8BITMIME", "SIZE 10000000"]
        self.mail_reply = "250 2.1.0 Ok"
        self.data_reply = "250 2.0.0 Ok: queued"
        self.data_delay = 0  # seconds before the reply to the dot
        self.data_gate = None  # an Event to wait for (30 s at most) too
        self.on_quit = None  # called when QUIT comes, before the 221
        self.rcpt = self.default_rcpt
        self.tls = tls
        self.auth = None
        self.auth_mechs = "PLAIN LOGIN"
        self.messages = []
        self.sessions = 0
        self.in_data = 0  # transactions between the dot and its reply
        self.most_in_data = 0  # the most of them at once
        self.transcript = []
        self.batches = []  # the commands that came in one read
        self.lock = threading.Lock()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(50)
        self.sock.settimeout(0.2)
        self.stopped = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    @staticmethod
    def default_rcpt(addr):
        if "bad" in addr:
            return "550 5.1.1 <%s>: Recipient address rejected" % addr
        if "temp" in addr:
            return "451 4.2.0 <%s>: try again later" % addr
        return "250 2.1.5 Ok"

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self.stopped:
                c.close()
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def wait(self, n=1, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= n:
                return self.messages
            time.sleep(0.05)
        return self.messages

    def _serve(self, c):
        with self.lock:
            self.sessions += 1
        f = _Conn(c)
        try:
            self._session(f)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                f.sock.close()
            except OSError:
                pass

    def _session(self, f):
        if self.greeting == "drop":
            return
        if self.greeting == "hang":
            f.sock.settimeout(30)
            f.sock.recv(1)
            return
        f.send(self.greeting)
        msg = Message()
        helo = None
        while True:
            line = f.line()
            if line is None:
                return
            self.transcript.append(line)
            if f.batch_start:
                self.batches.append([line])
            elif self.batches:
                self.batches[-1].append(line)
            verb = line.split(" ", 1)[0].upper()
            arg = line[len(verb) + 1:]
            if verb == "EHLO":
                if not self.ehlo_ok:
                    f.send("502 5.5.1 EHLO not implemented")
                    continue
                helo = arg
                ext = list(self.extensions)
                if self.tls and not f.tls:
                    ext.append("STARTTLS")
                if self.auth:
                    ext.append("AUTH " + self.auth_mechs)
                f.send("\r\n".join(
                    ["250-sink.test"] +
                    ["250-" + e for e in ext[:-1]] +
                    ["250 " + ext[-1]] if ext else ["250 sink.test"]))
            elif verb == "HELO":
                helo = arg
                f.send("250 sink.test")
            elif verb == "STARTTLS" and self.tls and not f.tls:
                f.send("220 2.0.0 Ready to start TLS")
                f.starttls(self.tls)
                helo = None
            elif verb == "AUTH" and self.auth:
                parts = arg.split(" ")
                if parts[0].upper() == "PLAIN" and len(parts) == 2:
                    _, user, pw = base64.b64decode(parts[1]).split(b"\0")
                else:
                    f.send("334 VXNlcm5hbWU6")
                    user = base64.b64decode(f.line())
                    f.send("334 UGFzc3dvcmQ6")
                    pw = base64.b64decode(f.line())
                if self.auth.get(user.decode()) == pw.decode() and f.tls:
                    msg.auth = user.decode()
                    f.send("235 2.7.0 Authentication successful")
                else:
                    f.send("535 5.7.8 Authentication failed")
            elif verb == "MAIL":
                auth = msg.auth
                msg = Message()
                msg.auth = auth
                msg.helo, msg.tls = helo, f.tls
                addr, _, params = arg[5:].partition(">")
                msg.mail_from = addr.lstrip("<")
                msg.mail_params = params.strip()
                f.send(self.mail_reply)
            elif verb == "RCPT":
                addr = arg[3:].strip().strip("<>")
                reply = self.rcpt(addr)
                if reply.startswith("2"):
                    msg.rcpts.append(addr)
                f.send(reply)
            elif verb == "DATA":
                if not msg.rcpts:
                    f.send("554 5.5.1 No valid recipients")
                    continue
                f.send("354 End data with <CR><LF>.<CR><LF>")
                msg.raw = f.data()
                # The reply and delay in force when the dot came: a test
                # may change them for the next session while this one
                # waits.
                reply, delay = self.data_reply, self.data_delay
                gate = self.data_gate
                with self.lock:
                    self.in_data += 1
                    self.most_in_data = max(self.most_in_data, self.in_data)
                time.sleep(delay)
                if gate is not None:
                    gate.wait(30)
                with self.lock:
                    self.in_data -= 1
                if reply == "hang":
                    f.sock.settimeout(30)
                    f.sock.recv(1)
                    return
                if reply == "drop":
                    return
                if reply.startswith("2"):
                    self.messages.append(msg)
                f.send(reply)
                auth = msg.auth
                msg = Message()
                msg.auth = auth
            elif verb == "RSET":
                f.send("250 2.0.0 Ok")
            elif verb == "NOOP":
                f.send("250 2.0.0 Ok")
            elif verb == "QUIT":
                if self.on_quit is not None:
                    self.on_quit()
                f.send("221 2.0.0 Bye")
                return
            else:
                f.send("502 5.5.2 Error: command not recognized")

    def close(self):
        self.stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


class _Conn:
    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(30)
        self.buf = b""
        self.tls = False
        self.batch_start = True

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise ValueError("closed")
        self.buf += d

    def line(self):
        self.batch_start = self.buf == b""
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def data(self):
        while b"\r\n.\r\n" not in b"\r\n" + self.buf:
            self._fill()
        if self.buf.startswith(b".\r\n"):
            self.buf = self.buf[3:]
            return b""
        raw, self.buf = self.buf.split(b"\r\n.\r\n", 1)
        return raw

    def starttls(self, ctx):
        self.buf = b""
        self.sock = ctx.wrap_socket(self.sock, server_side=True)
        self.tls = True
