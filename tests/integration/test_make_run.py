"""`make run` (`python -m devenv run`): bootstrap, then the Procfile's web, worker and beat
under honcho; one block of URLs once all three are up, URLs that answer, and Ctrl-C stops
every process it started.

It runs here on the test database and a Redis database of its own (DATABASE_URL and
REDIS_URL given, so no embedded service is started), with a tenant, an admin and a state
directory of its own.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis

from devenv import free_port
from devenv.procs import ROOT
from tests.conftest import TEST_REDIS_DB, app_env
from tests.integration.test_plain_worker import PLAIN_WORKER_REDIS_DB, _redis_url

pytestmark = pytest.mark.worker


def _processes_with(marker: str) -> list[int]:
    """Pids of the live processes whose environment holds `marker`."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes() and int(environ.parent.name) != os.getpid():
                state = (environ.parent / "stat").read_text().rsplit(")", 1)[-1].split()[0]
                if state != "Z":
                    found.append(int(environ.parent.name))
        except (OSError, ValueError):
            continue
    return found


def test_make_run_announces_its_urls_once_they_answer_and_ctrl_c_stops_everything(live_db, tmp_path):
    assert PLAIN_WORKER_REDIS_DB == TEST_REDIS_DB - 1  # its own Redis database, as the plain worker's
    broker = _redis_url(PLAIN_WORKER_REDIS_DB)
    redis.Redis.from_url(broker).flushdb()
    port, marker = free_port(), f"MAKE_RUN_TEST={uuid.uuid4().hex}"
    slug = "mr" + uuid.uuid4().hex[:10]
    env = app_env(
        REDIS_URL=broker,
        PORT=str(port),
        INTENT_DEMO_TENANT=slug,
        INTENT_ADMIN_USER=f"{slug}-admin",
        MAKE_RUN_TEST=marker.partition("=")[2],
        DEVENV_VAR=str(tmp_path / "var"),  # its summary and beat's files: not a `make run`'s here
    )
    # A previous run's metrics files (figures of processes long gone) are not carried over.
    del env["PROMETHEUS_MULTIPROC_DIR"]
    stale = tmp_path / "var" / "metrics" / "counter_4242.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"figures of a dead process")
    out = tmp_path / "make-run.log"
    with open(out, "wb") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "devenv", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while "is ready in" not in out.read_text() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        text = out.read_text()
        assert "is ready in" in text, text[-4000:]
        urls = dict(
            re.findall(r"^ {4}(Swagger UI|Platform admin|Tenant admin|Registry|Health) +(\S+)$", text, re.M)
        )
        for label, url in urls.items():
            with urllib.request.urlopen(url, timeout=10) as answer:  # redirects to the login pages followed
                assert answer.status == 200, (label, url)
        assert set(urls) == {"Swagger UI", "Platform admin", "Tenant admin", "Registry", "Health"}
        assert f"http://127.0.0.1:{port}/t/{slug}/admin/" == urls["Tenant admin"]
        assert _processes_with(marker), "web, worker and beat carry the run's environment"
        assert stale.parent.is_dir() and not stale.exists()

        run.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert run.wait(30) == 0
    finally:
        if run.poll() is None:
            run.kill()
    text = out.read_text()
    assert text.count("is ready in") == 1 and text.count("API token") == 1, text[-4000:]
    deadline = time.monotonic() + 10
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_with(marker) == []
