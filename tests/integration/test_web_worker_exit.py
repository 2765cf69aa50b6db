"""A web worker that dies is replaced; the gunicorn master (which never sets Django up)
survives it. Its `child_exit` hook drops the dead worker's live gauges from the metrics
directory; when that hook imported the API (DRF needs the app registry), every worker exit
raised in the master, and the web tier went down with the first worker that died."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from devenv import Proc, free_port, procs
from tests.conftest import app_env, wait_until


def _workers(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def test_a_killed_web_worker_is_replaced_and_the_master_stays(
    world: Any, isolated_redis: None, tmp_path: Path
) -> None:
    port = free_port()
    web = Proc("web", procs.web(port), app_env(WEB_WORKERS="2"), tmp_path / "web.log").start()
    try:
        web.wait_healthy(port)
        assert web.pid is not None
        before = wait_until(lambda: (found := _workers(web.pid)) and len(found) == 2 and found)

        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        after = wait_until(
            lambda: (found := _workers(web.pid)) and len(found) == 2 and victim not in found and found
        )

        time.sleep(1)  # the master's exit handling has run by now; a crash would show
        assert web.running(), web.tail()
        assert victim not in after and len(after - before) == 1
        web.wait_healthy(port)
    finally:
        web.stop()
    # Neither the worker's death nor the shutdown's worker exits raised in the master.
    assert "Traceback" not in web.output(), web.tail()
