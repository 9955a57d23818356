"""The test runner itself (scripts/test.sh, `make test-run`): every way a
runner can fail without failing a test must still fail the run, and the
closing line must say so. The real ctest, pytest and source checks are
replaced by the stand-ins in fakes/ (FAKE_CTEST, FAKE_PYTEST, FAKE_SOURCE
pick their behaviour), so each case takes a fraction of a second."""
import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FAKES = pathlib.Path(__file__).resolve().parent / "fakes"


def run(tmp_path, via_make=False, **env):
    """Runs the runner over an empty build folder with the stand-ins;
    returns (exit code, output lines)."""
    build = tmp_path / "build"
    build.mkdir(exist_ok=True)
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("FAKE_", "PYTEST_ARGS", "MAKE"))}
    e.update(CTEST=str(FAKES / "ctest"),
             PYTEST=f"/usr/bin/python3 {FAKES / 'pytest'}",
             CHECK_SOURCE=str(FAKES / "check-source"))
    e.update(env)
    if via_make:
        argv = ["make", "-s", "--no-print-directory", "-C", str(ROOT),
                "test-run", f"TEST_BUILD={build}"]
    else:
        argv = [str(ROOT / "scripts" / "test.sh"), str(build)]
    r = subprocess.run(argv, env=e, capture_output=True, text=True,
                       timeout=60)
    lines = (r.stdout + r.stderr).splitlines()
    return r.returncode, lines


def closing(lines):
    """The summary line the runner ends its standard output with."""
    return [ln for ln in lines if " passed, " in ln][-1]


def test_all_passing_runners_pass(tmp_path):
    """The control: with every stand-in passing, the run passes and counts
    2 ctest cases, 2 source checks and 3 pytest cases."""
    rc, lines = run(tmp_path)
    assert rc == 0, lines
    assert closing(lines) == "7 passed, 0 failed"


@pytest.mark.parametrize("mode, reason", [
    ("internal", "pytest: exited 3; listed no test; wrote no pytest.xml"),
    ("usage", "pytest: exited 4; listed no test; wrote no pytest.xml"),
    ("empty", "pytest: exited 5; listed no test"),
    ("failure", "pytest: exited 1"),
    ("short", "pytest: ran 2 of the 3 tests it listed"),
    ("rc", "pytest: exited 1"),
])
def test_pytest_failing_without_a_failed_test_fails_the_run(tmp_path, mode,
                                                            reason):
    rc, lines = run(tmp_path, FAKE_PYTEST=mode)
    assert rc != 0, lines
    assert reason in lines, lines
    assert not closing(lines).endswith(" 0 failed"), lines


@pytest.mark.parametrize("mode, reason", [
    ("crash", "ctest: exited 8; wrote no ctest.xml"),
    ("none", "ctest: exited 8; listed no test; wrote no ctest.xml"),
    ("fail", "ctest: exited 8"),
    ("rc", "ctest: exited 8"),
])
def test_ctest_failing_fails_the_run(tmp_path, mode, reason):
    rc, lines = run(tmp_path, FAKE_CTEST=mode)
    assert rc != 0, lines
    assert reason in lines, lines
    assert not closing(lines).endswith(" 0 failed"), lines


def test_a_failed_source_check_fails_the_run(tmp_path):
    rc, lines = run(tmp_path, FAKE_SOURCE="fail")
    assert rc != 0, lines
    assert closing(lines) == "6 passed, 2 failed", lines


def test_make_test_run_exits_non_zero_when_pytest_fails(tmp_path):
    """The same through make, as CI calls it: make's own exit code."""
    rc, lines = run(tmp_path, via_make=True, FAKE_PYTEST="usage")
    assert rc != 0, lines
    assert "pytest: exited 4; listed no test; wrote no pytest.xml" in lines
    rc, lines = run(tmp_path, via_make=True)
    assert rc == 0, lines
    assert closing(lines) == "7 passed, 0 failed"


def test_pytest_args_are_split_into_words(tmp_path):
    """As the shell splits them, quotes included."""
    argv_file = tmp_path / "argv"
    rc, lines = run(tmp_path, PYTEST_ARGS="-x -k 'smtp or pop3'",
                    FAKE_PYTEST_ARGV=str(argv_file))
    assert rc == 0, lines
    calls = [json.loads(ln) for ln in argv_file.read_text().splitlines()]
    assert len(calls) == 2  # the listing, then the run
    for argv in calls:
        assert argv[-3:] == ["-x", "-k", "smtp or pop3"], argv


def test_no_empty_argument_without_pytest_args(tmp_path):
    argv_file = tmp_path / "argv"
    rc, lines = run(tmp_path, FAKE_PYTEST_ARGV=str(argv_file))
    assert rc == 0, lines
    calls = [json.loads(ln) for ln in argv_file.read_text().splitlines()]
    assert len(calls) == 2
    for argv in calls:
        assert "" not in argv, argv
        assert argv[-2:] == ["tests/integration", "tests/runner"], argv


def test_skips_are_shown_in_the_closing_line(tmp_path):
    """A skipped case is neither passed nor hidden."""
    rc, lines = run(tmp_path, FAKE_PYTEST="skip")
    assert rc == 0, lines
    assert closing(lines) == "6 passed, 0 failed, 1 skipped"
