"""`make run` keeps the worker and beat running the way a supervisor would (the Procfile
runs them under `python -m devenv supervise`): a child that dies is started again, one that
is told to stop is not, and nothing is left behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT

# Counts its starts in a file; the first start dies at once (a crash), later ones keep running.
PROBE = (
    "import pathlib, sys, time\n"
    "starts = pathlib.Path(sys.argv[1])\n"
    "n = len(starts.read_text()) if starts.exists() else 0\n"
    "starts.write_text('x' * (n + 1))\n"
    "sys.exit(9) if n == 0 else time.sleep(60)\n"
)


def _starts(path: Path) -> int:
    return len(path.read_text()) if path.exists() else 0


def test_a_child_that_dies_is_started_again_and_a_stopped_one_is_not(tmp_path):
    starts = tmp_path / "starts"
    supervisor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devenv",
            "supervise",
            "probe",
            "--",
            sys.executable,
            "-c",
            PROBE,
            str(starts),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while _starts(starts) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _starts(starts) == 2  # died once, started again after 1 s

        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(10) == 128 + signal.SIGTERM  # the child's end: killed by the SIGTERM passed on
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    output = supervisor.stdout.read().decode() if supervisor.stdout else ""
    assert "probe exited with code 9; starting it again in 1s" in output
    time.sleep(1.5)
    assert _starts(starts) == 2  # not started again after the stop
