"""Shared fixtures: the build to test, a private data directory and config
per test, petrelctl runner. The daemon fixture lives here too (see
`petrel` below), so every test drives the real binaries on loopback."""
import os
import pathlib
import subprocess

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

    def ok(self, *args, input=None):
        return self.run(*args, input=input, check=True).stdout


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
