"""petreld's start-up as root: the privilege drop, the paths the dropped
user must reach, the hand-over of data_dir to that user, and the checks on
the smarthost_auth file. The tests run as root (they skip otherwise) and
use the existing unprivileged account `nobody`."""
import os
import pwd
import grp
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import Petrel, binary

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="start-up as root")

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def open_dir():
    """A directory that any user may traverse (pytest's tmp_path sits
    under a 0700 folder of root's, which `nobody` cannot enter)."""
    d = tempfile.mkdtemp(prefix="petrel-startup-")
    os.chmod(d, 0o755)
    yield __import__("pathlib").Path(d)
    shutil.rmtree(d, ignore_errors=True)


def run(p, argv=None, timeout=20):
    """Starts petreld for p and waits until it is ready or has exited.
    Returns (returncode or None when ready, stderr text); a ready daemon
    is stopped again."""
    before = p.ready_count()
    err = p.tmp / "petreld.stderr"
    with open(err, "ab") as f:
        proc = subprocess.Popen(argv or [binary("petreld"), "-c",
                                         str(p.config)],
                                stdout=f, stderr=f)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return proc.returncode, err.read_text(errors="replace")
            if p.ready_count() > before:
                proc.terminate()
                proc.wait(timeout=30)
                return None, err.read_text(errors="replace")
            time.sleep(0.02)
        proc.kill()
        proc.wait()
    raise AssertionError("petreld neither started nor exited: " +
                         err.read_text(errors="replace"))


def error_lines(text, word):
    return [ln for ln in text.splitlines() if word in ln]


# --- defect 7: a start that cannot work must not say "ready" --------------

def test_unreachable_data_dir_exits_with_one_line(tmp_path):
    """data_dir below a 0700 folder of root's: user nobody cannot reach
    it. petreld exits 1 naming the path and the user, never "ready"."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o700)
    p = Petrel(locked, user="nobody")
    rc, err = run(p)
    assert rc == 1, err
    lines = error_lines(err, "fatal:")
    assert len(lines) == 1, err
    assert "user nobody cannot open" in lines[0], lines
    assert str(p.data_dir) in lines[0], lines
    assert "worker cannot open" not in err
    assert p.ready_count() == 0


def test_unprivileged_user_starts(open_dir):
    p = Petrel(open_dir, user="nobody")
    rc, err = run(p)
    assert rc is None, err
    assert "running as user nobody" in p.log("system")
    assert "worker cannot open" not in p.log("system")


def test_user_root_runs_as_root_with_a_warning(tmp_path):
    p = Petrel(tmp_path, user="root")
    rc, err = run(p)
    assert rc is None, err
    assert "warning: running as root" in p.log("system")


def test_another_name_for_uid_0_is_refused(tmp_path):
    """A user name other than root that resolves to uid 0 (a second
    account with uid 0) is refused: it would run as root unnoticed. The
    account exists only inside a private mount namespace, over a copy of
    /etc/passwd."""
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-m", "true"]).returncode != 0:
        pytest.fail("unshare -m is needed (root in a namespace-capable "
                    "system)")
    passwd = tmp_path / "passwd"
    passwd.write_text(open("/etc/passwd").read() +
                      "toor:x:0:0:alias of root:/root:/bin/sh\n")
    p = Petrel(tmp_path, user="toor")
    argv = ["unshare", "-m", "sh", "-c",
            'mount --bind "$1" /etc/passwd && exec "$2" -c "$3"', "sh",
            str(passwd), binary("petreld"), str(p.config)]
    rc, err = run(p, argv)
    assert rc == 1, err
    lines = error_lines(err, "fatal:")
    assert len(lines) == 1, err
    assert '"toor" has uid 0' in lines[0], lines
    assert p.ready_count() == 0


# --- defect 8: the hand-over of data_dir never leaves it -----------------

def test_chown_of_data_dir_stays_inside(open_dir):
    """data_dir holds a symlink to a file outside, a symlink to a folder
    outside and a hard link to a file outside (what the unprivileged user
    could plant there): none of the outside files changes owner, while
    data_dir's own files go to the user."""
    outside = open_dir / "outside"
    outside.write_text("root's\n")
    outdir = open_dir / "outdir"
    outdir.mkdir()
    (outdir / "inner").write_text("root's too\n")
    hard_target = open_dir / "hard-target"
    hard_target.write_text("root's as well\n")
    p = Petrel(open_dir, user="nobody")
    (p.data_dir / "link-file").symlink_to(outside)
    (p.data_dir / "link-dir").symlink_to(outdir)
    sub = p.data_dir / "sub" / "deeper"
    sub.mkdir(parents=True)
    os.link(hard_target, sub / "hard")
    (sub / "own").write_text("data_dir's\n")
    rc, err = run(p)
    assert rc is None, err
    for path in (outside, outdir, outdir / "inner", hard_target):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (0, 0), path
    for path in (p.data_dir, p.data_dir / "petrel.db", p.data_dir / "sub",
                 sub, sub / "own"):
        assert os.stat(path).st_uid == NOBODY.pw_uid, path
    assert "sub/deeper/hard: not done, the file has 2 links" in \
        p.log("system")


# --- 9: the smarthost_auth file ------------------------------------------

def smarthost(p_dir, mode, uid=0, gid=0, user="root"):
    secret = p_dir / "relay.auth"
    secret.write_text("petrel Xk7-secret-9\n")
    os.chown(secret, uid, gid)
    secret.chmod(mode)
    return Petrel(p_dir, user=user, smarthost="127.0.0.4:25",
                  smarthost_auth=str(secret))


def test_smarthost_auth_0600_is_accepted(tmp_path):
    rc, err = run(smarthost(tmp_path, 0o600))
    assert rc is None, err


def test_smarthost_auth_readable_by_another_group_is_refused(tmp_path):
    """0640 with a group that is not petreld's own: its members could read
    the password."""
    p = smarthost(tmp_path, 0o640, gid=grp.getgrnam("nogroup").gr_gid)
    rc, err = run(p)
    assert rc == 1, err
    lines = error_lines(err, "fatal:")
    assert len(lines) == 1, err
    assert "smarthost_auth" in lines[0] and "relay.auth" in lines[0], lines
    assert "may read it" in lines[0], lines
    assert "Xk7-secret-9" not in err


def test_smarthost_auth_owned_by_another_user_is_refused(tmp_path):
    p = smarthost(tmp_path, 0o600, uid=NOBODY.pw_uid)
    rc, err = run(p)
    assert rc == 1, err
    lines = error_lines(err, "fatal:")
    assert len(lines) == 1, err
    assert "smarthost_auth" in lines[0] and "owned by" in lines[0], lines


def test_smarthost_auth_root_and_petreld_group_is_accepted(open_dir):
    """The packaged layout: root:<petreld's group> 0640, read by the
    dropped user through its group."""
    p = smarthost(open_dir, 0o640, gid=NOBODY.pw_gid, user="nobody")
    rc, err = run(p)
    assert rc is None, err
