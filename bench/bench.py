#!/usr/bin/env python3
"""Driver of the Petrel bench (bench/run.sh starts the servers; this measures).

Subcommands:
  freeport tcp|udp        print a free port of 127.0.0.1
  probe PORT              exit 0 when 127.0.0.1:PORT accepts a connection
  dns-stub PORT           answer every DNS query on 127.0.0.1:PORT NXDOMAIN
  idle|grid|report --results DIR ...
                          phases: idle sessions (and the machine), the grid
                          (and the profile), the tables

A server is given as "HOST:PORT,PID,MAILDIR,QUEUEDIR" (MAILDIR and QUEUEDIR
empty for smtp-sink). CPU time is read from /proc for the server's whole
process tree (utime + stime of the live processes, plus cutime + cstime of
what they reaped), memory as the sum of Rss and Pss over the same tree.
Only 127.0.0.1 is ever spoken to (client sockets bind to 127.0.0.x).
"""

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
SENDER = "load@client.example"
HELO = "client.example"

# ---------------------------------------------------------------- small tools


def cmd_freeport(kind):
    t = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, t) as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def cmd_probe(port):
    try:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=1) as s:
            s.settimeout(2)
            return 0 if s.recv(512).startswith(b"220") else 1
    except OSError:
        return 1


def cmd_dns_stub(port):
    """Every query gets NXDOMAIN: DNSBL lookups happen and find nothing."""
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", int(port)))
    while True:
        q, peer = s.recvfrom(4096)
        if len(q) < 12:
            continue
        flags = 0x8000 | (q[2] & 0x01) << 8 | 0x0080 | 3  # QR, RD, RA, NXDOMAIN
        # Header: same id, qdcount as asked, no answers; then the question.
        r = q[0:2] + flags.to_bytes(2, "big") + q[4:6] + b"\0\0\0\0\0\0"
        s.sendto(r + question_only(q[12:]), peer)


def question_only(body):
    i = 0
    while i < len(body) and body[i] != 0:
        i += body[i] + 1
    return body[: i + 5]


# ------------------------------------------------------------------ /proc


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid):
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pid):
    """utime+stime+cutime+cstime over the live tree under pid."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2 :].split()
        total += sum(int(x) for x in fields[11:15])
    return total / CLK_TCK


def mem_kb(pid):
    """(sum of Rss, sum of Pss) in KB over the tree under pid."""
    rss = pss = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss


def hwm_reset(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def hwm_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class MemSampler(threading.Thread):
    def __init__(self, pid, interval=0.1):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss = self.peak_pss = 0
        self.stop = threading.Event()

    def run(self):
        while True:
            rss, pss = mem_kb(self.pid)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            if self.stop.wait(self.interval):
                return


# ------------------------------------------------------------------ servers


class Server:
    def __init__(self, name, spec):
        addr, pid, maildir, queue = spec.split(",")
        host, port = addr.rsplit(":", 1)
        assert host == "127.0.0.1", "the bench speaks to 127.0.0.1 only"
        self.name, self.host, self.port = name, host, int(port)
        self.pid = int(pid)
        self.maildir = maildir or None
        self.queue = queue or None

    def alive(self):
        return os.path.exists(f"/proc/{self.pid}")

    def delivered(self):
        if not self.maildir:
            return 0
        try:
            return sum(1 for _ in os.scandir(os.path.join(self.maildir, "new")))
        except FileNotFoundError:
            return 0

    def queued(self):
        """Messages in the server's queue folders (recursively)."""
        if not self.queue:
            return 0
        n = 0
        for sub in ("incoming", "active", "deferred", "maildrop", "hold"):
            for _, _, files in os.walk(os.path.join(self.queue, sub)):
                n += len(files)
        return n

    def empty_maildir(self):
        if not self.maildir:
            return
        for sub in ("new", "cur", "tmp"):
            d = os.path.join(self.maildir, sub)
            try:
                with os.scandir(d) as it:
                    for e in it:
                        os.unlink(e.path)
            except FileNotFoundError:
                pass

    def settle(self, timeout=120):
        """Waits until nothing is left in the queue; empties the Maildir."""
        end = time.monotonic() + timeout
        while self.queued() and time.monotonic() < end:
            time.sleep(0.05)
        self.empty_maildir()


# ---------------------------------------------------------------- the grid

FULL_SIZES = [4096, 102400]
FULL_SESSIONS = [1, 10, 50]
FULL_PER_SESSION = [1, 20]
# Messages per measurement, by size and concurrency: long enough to time,
# short enough that the whole grid takes minutes (rounded up to whole
# rounds of sessions x messages per session).
TARGET = {4096: {1: 300, 10: 1000, 50: 2000}, 102400: {1: 100, 10: 300, 50: 1000}}
QUICK_TARGET = {4096: {1: 100, 10: 200, 50: 1000}, 102400: {1: 40, 10: 100, 50: 500}}
QUICK_CELLS = [(4096, 10, 1), (4096, 50, 20), (102400, 50, 20)]


def cell_count(size, sess, per, quick):
    table = QUICK_TARGET if quick else TARGET
    target = table.get(size, table[102400]).get(sess, 10 * sess)
    unit = sess * per
    return max(unit, -(-target // unit) * unit)


def source_cmds(server, size, sess, per, total):
    base = ["smtp-source", "-4", "-s", str(sess), "-l", str(size),
            "-f", SENDER, "-t", ARGS.rcpt, "-M", HELO]
    dest = f"{server.host}:{server.port}"
    if per == 1:
        return [base + ["-m", str(total), dest]]
    rounds = total // (sess * per)
    return [base + ["-d", "-m", str(sess * per), dest]] * rounds


def run_once(server, size, sess, per, total):
    if not server.alive():
        raise SystemExit(f"bench: {server.name} (pid {server.pid}) is gone")
    server.settle()
    sampler = MemSampler(server.pid)
    hwm_reset(server.pid)
    load1 = os.getloadavg()[0]
    cpu0 = cpu_seconds(server.pid)
    sampler.start()
    err = ""
    t0 = time.monotonic()
    for cmd in source_cmds(server, size, sess, per, total):
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if p.returncode != 0 or p.stderr.strip():
            err = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
            break
    t1 = time.monotonic()
    t2 = None
    delivered = None
    if server.maildir and not err:
        deadline = t1 + 60 + total * 0.05
        while True:
            delivered = server.delivered()
            now = time.monotonic()
            if delivered >= total:
                t2 = now
                break
            if now > deadline or not server.alive():
                err = f"only {delivered} of {total} in the Maildir"
                break
            time.sleep(0.01)
    cpu1 = cpu_seconds(server.pid)
    sampler.stop.set()
    sampler.join()
    return {
        "server": server.name, "size": size, "sessions": sess,
        "per_session": per, "messages": total,
        "accept_s": t1 - t0, "e2e_s": (t2 - t0) if t2 else None,
        "rate": total / (t1 - t0) if not err else None,
        "e2e_rate": total / (t2 - t0) if t2 else None,
        "cpu_s": cpu1 - cpu0,
        "cpu_per_1000": (cpu1 - cpu0) * 1000 / total,
        "peak_rss_kb": sampler.peak_rss, "peak_pss_kb": sampler.peak_pss,
        "hwm_kb": hwm_kb(server.pid) if server.name != "postfix" else None,
        "delivered": delivered, "error": err, "loadavg": load1,
    }


# ------------------------------------------------------------ idle sessions


def open_session(port, src, timeout=5):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    read_reply(s)
    s.sendall(f"EHLO {HELO}\r\n".encode())
    read_reply(s)
    return s


def read_reply(s):
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            raise OSError("connection closed")
        data += chunk
        lines = data.split(b"\r\n")
        for line in lines[:-1]:
            if len(line) >= 4 and line[3:4] == b" ":
                if not line.startswith((b"2", b"3")):
                    raise OSError(line.decode(errors="replace"))
                return data


def hold_idle(server, n, per_ip=50):
    """Opens n plain sessions (greeting + EHLO), holds them, measures."""
    server.settle()
    time.sleep(1)
    rss0, pss0 = mem_kb(server.pid)
    socks, failed, why = [], 0, ""
    t0 = time.monotonic()
    for i in range(n):
        src = f"127.0.{2 + i // per_ip // 250}.{2 + (i // per_ip) % 250}"
        try:
            socks.append(open_session(server.port, src))
        except OSError as e:
            failed += 1
            why = why or str(e)
            if failed >= 3:
                break
    t1 = time.monotonic()
    time.sleep(1)
    rss1, pss1 = mem_kb(server.pid)
    alive = 0
    for s in socks:  # still open? (no EOF waiting to be read)
        s.setblocking(False)
        try:
            alive += 0 if s.recv(1) == b"" else 1
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    for s in socks:
        s.close()
    held = len(socks)
    return {
        "server": server.name, "asked": n, "held": held, "alive": alive,
        "failed": failed, "error": why, "open_s": t1 - t0,
        "rss_before_kb": rss0, "rss_after_kb": rss1,
        "pss_before_kb": pss0, "pss_after_kb": pss1,
        "kb_per_session_rss": (rss1 - rss0) / held if held else None,
        "kb_per_session_pss": (pss1 - pss0) / held if held else None,
    }


def petrelctl(*args):
    subprocess.run([ARGS.petrelctl, "-c", ARGS.petrel_conf, *args],
                   check=True, stdout=subprocess.DEVNULL)


# ------------------------------------------------------------------ profile


def profile(server, results):
    if shutil.which("perf") is None:
        print("bench: no perf; profile skipped")
        return None
    data = os.path.join(results, "perf.data")
    size, sess, per = 4096, 50, 20
    if os.environ.get("BENCH_PROFILE_SIZE"):
        size = int(os.environ["BENCH_PROFILE_SIZE"])
    total = sess * per * (2 if size <= 4096 else 1)
    server.settle()
    rec = subprocess.Popen(
        ["perf", "record", "-q", "-e", "cpu-clock", "-F", "999",
         "--call-graph", "dwarf,16384", "-p", str(server.pid), "-o", data],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    r = run_once(server, size, sess, per, total)
    rec.send_signal(signal.SIGINT)
    rec.wait()
    out = {}
    for name, extra in (("self", ["--no-children", "-g", "none"]),
                        ("children", ["--children", "-g", "none"]),
                        ("callers", ["--no-children", "-g",
                                     "caller,0.5,callee,function,percent",
                                     "--percent-limit", "2"])):
        path = os.path.join(results, f"perf-{name}.txt")
        with open(path, "w") as f:
            subprocess.run(["perf", "report", "-i", data, "--stdio",
                            "--sort", "dso,symbol", *extra],
                           stdout=f, stderr=subprocess.DEVNULL)
        out[name] = path
    r["profile"] = out
    return r


# ------------------------------------------------------------------ report


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=0):
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def ratio(a, b):
    return a / b if a and b else None


def summarize(runs, names):
    cells = []
    for r in runs:
        key = (r["size"], r["sessions"], r["per_session"])
        if key not in cells:
            cells.append(key)
    rows = []
    for key in cells:
        row = {"size": key[0], "sessions": key[1], "per_session": key[2]}
        for n in names:
            every = [r for r in runs if r["server"] == n
                     and (r["size"], r["sessions"], r["per_session"]) == key]
            if not every:
                continue
            # Medians over the runs that completed; failures are listed.
            rs = [r for r in every if not r["error"]]
            row["messages"] = every[0]["messages"]
            row[n] = {
                "rate": median([r["rate"] for r in rs]),
                "e2e_s": median([r["e2e_s"] for r in rs]),
                "e2e_rate": median([r["e2e_rate"] for r in rs]),
                "cpu_per_1000": median([r["cpu_per_1000"] for r in rs]),
                "peak_pss_mb": max((r["peak_pss_kb"] / 1024 for r in rs),
                                   default=None),
                "peak_rss_mb": max((r["peak_rss_kb"] / 1024 for r in rs),
                                   default=None),
                "runs": len(every),
                "failed": sum(1 for r in every if r["error"]),
                "errors": [r["error"] for r in every if r["error"]],
            }
        pe, pf, sk = (row.get(n, {}) for n in ("petrel", "postfix", "sink"))
        row["petrel_vs_postfix"] = ratio(pe.get("rate"), pf.get("rate"))
        row["petrel_vs_sink"] = ratio(pe.get("rate"), sk.get("rate"))
        row["e2e_petrel_vs_postfix"] = ratio(pe.get("e2e_rate"), pf.get("e2e_rate"))
        rows.append(row)
    return rows


def table(rows, names):
    def size(s):
        return f"{s // 1024} KB"

    out = []
    out.append("Acceptance (messages/second, median) and end to end "
               "(seconds until the last message is in the Maildir)")
    out.append("")
    h = ["size", "sessions x msgs", "msgs"]
    h += [f"{n} msg/s" for n in names]
    h += ["Petrel/Postfix", "Petrel/sink"]
    h += [f"{n} e2e s" for n in names if n != "sink"]
    h += ["e2e Petrel/Postfix"]
    out.append("| " + " | ".join(h) + " |")
    out.append("|" + "---|" * len(h))
    for r in rows:
        c = [size(r["size"]), f"{r['sessions']} x {r['per_session']}",
             str(r["messages"])]
        c += [fmt(r.get(n, {}).get("rate")) for n in names]
        c += [fmt(r["petrel_vs_postfix"], 2), fmt(r["petrel_vs_sink"], 2)]
        c += [fmt(r.get(n, {}).get("e2e_s"), 2) for n in names if n != "sink"]
        c += [fmt(r["e2e_petrel_vs_postfix"], 2)]
        out.append("| " + " | ".join(c) + " |")
    out.append("")
    out.append("CPU seconds per 1000 messages (median; the server's whole "
               "process tree, accept and delivery) and peak memory (MB, "
               "largest of the repeats; PSS summed over the tree)")
    out.append("")
    h = ["size", "sessions x msgs"]
    h += [f"{n} CPU s/1k" for n in names]
    h += [f"{n} peak MB" for n in names]
    out.append("| " + " | ".join(h) + " |")
    out.append("|" + "---|" * len(h))
    for r in rows:
        c = [size(r["size"]), f"{r['sessions']} x {r['per_session']}"]
        c += [fmt(r.get(n, {}).get("cpu_per_1000"), 2) for n in names]
        c += [fmt(r.get(n, {}).get("peak_pss_mb"), 1) for n in names]
        out.append("| " + " | ".join(c) + " |")
    errs = [(r, n) for r in rows for n in names
            if r.get(n, {}).get("errors")]
    if errs:
        out.append("")
        for r, n in errs:
            out.append(f"errors: {n} {size(r['size'])} {r['sessions']}x"
                       f"{r['per_session']}, {r[n]['failed']} of {r[n]['runs']}"
                       f" runs failed (medians are of the others): "
                       f"{r[n]['errors'][0]}")
    return "\n".join(out)


def idle_table(idle):
    out = ["Idle plain sessions (greeting + EHLO, then nothing), memory "
           "growth of the server's tree / sessions held", "",
           "| server | sessions asked | held | still open | KB/session (RSS) "
           "| KB/session (PSS) | seconds to open |", "|---|---|---|---|---|---|---|"]
    for r in idle:
        out.append(f"| {r['server']} | {r['asked']} | {r['held']} | {r['alive']} | "
                   f"{fmt(r['kb_per_session_rss'], 1)} | "
                   f"{fmt(r['kb_per_session_pss'], 1)} | {fmt(r['open_s'], 1)} |")
        if r["error"]:
            out.append(f"|  | first error: {r['error']} | | | | | |")
    return "\n".join(out)


def targets(rows, idle):
    def cell(size, sess, per):
        for r in rows:
            if (r["size"], r["sessions"], r["per_session"]) == (size, sess, per):
                return r
        return None

    out = ["Targets of issue 9 (ratios from this run)", ""]
    c = cell(4096, 50, 20)
    if c:
        v = c["petrel_vs_postfix"]
        out.append(f"- 4 KB 50 x 20, Petrel/Postfix accept >= 3: {fmt(v, 2)} "
                   f"({'met' if v and v >= 3 else 'NOT met'})")
        v = c["e2e_petrel_vs_postfix"]
        out.append(f"- 4 KB 50 x 20, end to end Petrel/Postfix >= 2: {fmt(v, 2)} "
                   f"({'met' if v and v >= 2 else 'NOT met'})")
    big = [r for r in rows if r["size"] == 102400 and r["petrel_vs_postfix"]]
    if big:
        c = cell(102400, 50, 20)
        if c:
            v = c["petrel_vs_postfix"]
            out.append(f"- 100 KB 50 x 20, Petrel/Postfix >= 2: {fmt(v, 2)} "
                       f"({'met' if v and v >= 2 else 'NOT met'})")
        lo = min(big, key=lambda r: r["petrel_vs_postfix"])
        out.append(f"  (lowest 100 KB cell: {lo['sessions']} x {lo['per_session']}"
                   f" at {fmt(lo['petrel_vs_postfix'], 2)})")
    for r in idle:
        if r["server"] != "petrel":
            continue
        v = r["kb_per_session_rss"]
        if r["asked"] <= 2000:
            out.append(f"- idle session <= 32 KB: {fmt(v, 1)} KB with "
                       f"{r['held']} sessions ({'met' if v is not None and v <= 32 else 'NOT met'})")
        else:
            ok = r["alive"] >= r["asked"]
            out.append(f"- {r['asked']:,} concurrent sessions held: {r['alive']:,} "
                       f"still open ({'met' if ok else 'NOT met'}), "
                       f"{fmt(v, 1)} KB each")
    return "\n".join(out)


# ------------------------------------------------------------------ machine


def machine(work, petreld):
    info = {"kernel": platform.release(), "cores": os.cpu_count(),
            "loadavg": os.getloadavg()[0]}
    try:
        st = os.stat(petreld)
        info["petreld"] = petreld
        info["petreld_built"] = time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                              time.gmtime(st.st_mtime))
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["memory_gb"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    df = subprocess.run(["df", "-T", work], capture_output=True, text=True)
    parts = df.stdout.splitlines()[-1].split() if df.stdout else []
    if parts:
        info["device"], info["fs"] = parts[0], parts[1]
        dev = os.path.basename(parts[0])
        for attr in ("queue/rotational", "device/model"):
            try:
                with open(f"/sys/class/block/{dev}/{attr}") as f:
                    info[attr.split("/")[-1]] = f.read().strip()
            except OSError:
                pass
    # What the disk can do: 4 KB appends, each made durable.
    path = os.path.join(work, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    n, t = 300, time.monotonic()
    for _ in range(n):
        os.write(fd, b"x" * 4096)
        os.fdatasync(fd)
    info["fdatasync_per_s"] = round(n / (time.monotonic() - t))
    os.close(fd)
    os.unlink(path)
    v = subprocess.run(["postconf", "-dh", "mail_version"],
                       capture_output=True, text=True).stdout.strip()
    info["postfix"] = v
    # The commit the measured petreld was built from ("+": with changes).
    v = subprocess.run([petreld, "-V"], capture_output=True, text=True)
    info["petrel_commit"] = v.stdout.split()[-1] if v.returncode == 0 \
        and v.stdout.strip() else "unknown"
    return info


# ------------------------------------------------------------------ main


def parse_cells(spec):
    cells = []
    for item in spec.split():
        size, sess, per = (int(x) for x in item.split(":"))
        cells.append((size, sess, per))
    return cells


class Plan:
    """What this run does, from the environment (see bench/run.sh)."""

    def __init__(self):
        env = os.environ.get
        self.quick = env("BENCH_QUICK", "0") == "1"
        self.reps = int(env("BENCH_REPS", "1" if self.quick else "3"))
        self.idle_n = int(env("BENCH_IDLE", "200" if self.quick else "1000"))
        self.hold_n = int(env("BENCH_HOLD", "0" if self.quick else "10000"))
        self.want = env("BENCH_SERVERS", "petrel postfix sink").split()
        self.profile = env("BENCH_PROFILE") == "1"
        if env("BENCH_CELLS"):
            self.cells = parse_cells(env("BENCH_CELLS"))
        elif self.quick:
            self.cells = QUICK_CELLS
        else:
            self.cells = [(z, s, p) for z in FULL_SIZES for s in FULL_SESSIONS
                          for p in FULL_PER_SESSION]
        self.names = [n for n in ("postfix", "petrel", "sink") if n in self.want]


def setup(args):
    global ARGS
    ARGS = args
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return Plan(), {n: Server(n, getattr(args, n))
                    for n in ("petrel", "postfix", "sink")}


def cmd_idle(args):
    """Phase 1, on fresh servers: the machine, then idle sessions."""
    plan, servers = setup(args)
    res = args.results
    info = machine(args.work,
                   os.path.join(os.path.dirname(args.petrelctl), "petreld"))
    info.update(quick=plan.quick, reps=plan.reps, cells=plan.cells)
    with open(os.path.join(res, "machine.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"bench: {info.get('cores')} cores, {info.get('cpu', '?')}, "
          f"kernel {info['kernel']}, {info.get('fs')} on {info.get('device')}"
          f" ({info['fdatasync_per_s']} fdatasync/s), Postfix {info['postfix']},"
          f" Petrel {info['petrel_commit']}")
    idle = []
    if "petrel" in plan.want and plan.idle_n > 0:
        idle.append(hold_idle(servers["petrel"], plan.idle_n))
    if "postfix" in plan.want and plan.idle_n > 0:
        # Postfix's default process limit is 100 smtpd processes.
        idle.append(hold_idle(servers["postfix"], min(plan.idle_n, 90)))
    if "sink" in plan.want and plan.idle_n > 0:
        # smtp-sink stops answering somewhere under 1,000 sessions.
        idle.append(hold_idle(servers["sink"], min(plan.idle_n, 200)))
    if "petrel" in plan.want and plan.hold_n > 0:
        # Capacity, not a check: the session limit is raised for this only.
        petrelctl("set", "smtp.max_sessions", str(plan.hold_n + 100))
        time.sleep(1.5)
        try:
            idle.append(hold_idle(servers["petrel"], plan.hold_n))
        finally:
            petrelctl("set", "smtp.max_sessions", "2000")
    with open(os.path.join(res, "idle.json"), "w") as f:
        json.dump(idle, f, indent=1)
    print(idle_table(idle), flush=True)
    return 0


def cmd_grid(args):
    """Phase 2, on fresh servers: the grid, servers in turns; the profile."""
    plan, servers = setup(args)
    res = args.results
    print(f"bench: {len(plan.cells)} cells x {len(plan.names)} servers x "
          f"{plan.reps} repeats{' (quick)' if plan.quick else ''}", flush=True)
    # Warm-up: processes started, caches filled; not recorded.
    for n in plan.names:
        run_once(servers[n], 4096, 10, 20, 200)
    bad = 0
    with open(os.path.join(res, "runs.jsonl"), "w") as rawf:
        for rep in range(plan.reps):
            for size, sess, per in plan.cells:
                total = cell_count(size, sess, per, plan.quick)
                # Servers take turns; the order rotates with the repeat.
                k = rep % len(plan.names)
                for n in plan.names[k:] + plan.names[:k]:
                    r = run_once(servers[n], size, sess, per, total)
                    r["repeat"] = rep + 1
                    bad += bool(r["error"])
                    rawf.write(json.dumps(r) + "\n")
                    rawf.flush()
                    print(f"  {n:8} {size // 1024:4} KB {sess:3} x {per:2} "
                          f"{total:5} msgs: {fmt(r['rate']):>7} msg/s"
                          f"  e2e {fmt(r['e2e_s'], 2):>6} s"
                          f"  cpu {r['cpu_per_1000']:.2f} s/1k"
                          f"  peak {r['peak_pss_kb'] / 1024:.1f} MB"
                          f"{'  ERROR ' + r['error'] if r['error'] else ''}",
                          flush=True)
    if plan.profile and "petrel" in plan.want:
        prof = profile(servers["petrel"], res)
        if prof:
            with open(os.path.join(res, "profile.json"), "w") as f:
                json.dump(prof, f, indent=1)
    return 1 if bad else 0


def load(path, default):
    try:
        with open(path) as f:
            if path.endswith(".jsonl"):
                return [json.loads(line) for line in f if line.strip()]
            return json.load(f)
    except (OSError, ValueError):
        return default


def cmd_report(args):
    """Phase 3: medians, ratios, the tables; summary.md and summary.json."""
    plan = Plan()
    res = args.results
    info = load(os.path.join(res, "machine.json"), {})
    idle = load(os.path.join(res, "idle.json"), [])
    runs = load(os.path.join(res, "runs.jsonl"), [])
    prof = load(os.path.join(res, "profile.json"), None)
    rows = summarize(runs, plan.names)
    with open(os.path.join(res, "summary.json"), "w") as f:
        json.dump({"machine": info, "cells": rows, "idle": idle,
                   "profile": prof}, f, indent=1)
    text = [f"Machine: {info.get('cores')} cores ({info.get('cpu', '?')}), "
            f"{info.get('memory_gb')} GB, kernel {info.get('kernel')}, "
            f"{info.get('fs')} on {info.get('device')} "
            f"({info.get('fdatasync_per_s')} 4 KB append+fdatasync/s); "
            f"Postfix {info.get('postfix')}; Petrel {info.get('petrel_commit')}"
            f" (petreld built {info.get('petreld_built', '?')}; a + after"
            f" the commit: built with changes to it)",
            f"Load average (1 min) of the machine at the start of the runs: "
            f"{load_range(runs)} (other work on the machine shows here).",
            "", table(rows, plan.names), "", idle_table(idle), "",
            targets(rows, idle)]
    if prof:
        text += ["", f"perf profile of petreld (4 KB 50 x 20, {prof['messages']}"
                 f" messages at {fmt(prof['rate'])} msg/s under perf): "
                 f"{os.path.basename(prof['profile']['self'])}"]
        text += top_symbols(prof["profile"]["self"])
    text = "\n".join(text)
    with open(os.path.join(res, "summary.md"), "w") as f:
        f.write(text + "\n")
    print()
    print(text)
    return 1 if any(r["error"] for r in runs) or not runs else 0


def load_range(runs):
    xs = sorted(r["loadavg"] for r in runs if r.get("loadavg") is not None)
    if not xs:
        return "-"
    return f"median {statistics.median(xs):.1f}, from {xs[0]:.1f} to {xs[-1]:.1f}"


def top_symbols(path, n=15):
    out = []
    with open(path) as f:
        for line in f:
            if line.strip() and not line.startswith("#") and "%" in line:
                out.append("    " + line.rstrip())
                if len(out) >= n:
                    break
    return out


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "freeport":
        cmd_freeport(sys.argv[2] if len(sys.argv) > 2 else "tcp")
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "probe":
        return cmd_probe(sys.argv[2])
    if len(sys.argv) == 3 and sys.argv[1] == "dns-stub":
        return cmd_dns_stub(sys.argv[2])
    p = argparse.ArgumentParser(prog="bench.py")
    p.add_argument("cmd", choices=["idle", "grid", "report"])
    p.add_argument("--results", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--rcpt", required=True)
    p.add_argument("--petrel", required=True)
    p.add_argument("--postfix", required=True)
    p.add_argument("--sink", required=True)
    p.add_argument("--petrelctl", required=True)
    p.add_argument("--petrel-conf", required=True)
    args = p.parse_args()
    return {"idle": cmd_idle, "grid": cmd_grid, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
