"""Small raw-socket SMTP helpers for tests that need exact bytes."""
import base64
import socket
import ssl
import time


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Raw:
    """A raw SMTP connection: send bytes, read whole replies."""

    def __init__(self, port, host="127.0.0.1", tls=False, timeout=10,
                 source=None):
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        if tls:
            self.sock = tls_context().wrap_socket(self.sock)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed; have %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def reply(self):
        """One whole (possibly multi-line) reply: (code, [lines])."""
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return int(lines[-1][:3]), lines

    def code(self):
        return self.reply()[0]

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def starttls(self):
        self.sock = tls_context().wrap_socket(self.sock)
        self.buf = b""

    def closed(self, timeout=5):
        """True when the server closed the connection."""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class AuthSession:
    """An authenticated submission session sending one message at a time."""

    def __init__(self, port, user, password, source="127.0.0.1"):
        self.r = Raw(port, source=source)
        assert self.r.reply()[0] == 220
        self.r.cmd("EHLO client.test")
        blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self.auth = self.r.cmd(f"AUTH PLAIN {blob}")[0]
        self.user = user

    def send(self, rcpts=("bob@example.test",), subject="hello", body="hi"):
        """Returns the code of the reply that ended the transaction."""
        code = self.r.cmd(f"MAIL FROM:<{self.user}>")[0]
        if code != 250:
            return code
        for rc in rcpts:
            code = self.r.cmd(f"RCPT TO:<{rc}>")[0]
            if code != 250:
                return code
        code = self.r.cmd("DATA")[0]
        if code != 354:
            return code
        msg = (f"From: <{self.user}>\r\nTo: <{rcpts[0]}>\r\n"
               f"Subject: {subject}\r\n\r\n{body}\r\n.")
        return self.r.cmd(msg)[0]

    def close(self):
        self.r.close()


def wait_for(pred, timeout=10, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()
