"""`python -m devenv`: the service manager behind `make run`, `make test` and `make bench`.

``exec -- CMD ...``   ensure the services, run CMD with their URLs exported, exit with its code.
``run``               ensure the services, ``manage.py bootstrap``, then the Procfile (web,
                      worker, beat) under honcho: prefixed lines, one ready block once all
                      three are up, Ctrl-C stops them (SIGTERM, SIGKILL after 5 s).
``supervise NAME -- CMD ...``  run CMD, start it again whenever it exits by itself.
``status``            whether the embedded services run, their URLs and clients.
``stop``              stop the embedded services, whoever started them.
``env``               ensure the services, leave them running, print ``export`` lines.

How the services are shared between invocations: devenv/local.py.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from honcho.environ import parse_procfile
from honcho.manager import Manager
from honcho.printer import Message, Printer
from honcho.process import Popen as HonchoPopen
from honcho.process import Process as HonchoProcess

from devenv import local
from devenv.postgres import Postgres, PostgresError
from devenv.procs import BIN, ROOT, die_with_parent, exit_code, http_ok, log, manage, pid_alive, read_int
from devenv.redis_server import RedisError

BEAT_PIDFILE = local.VAR / "celerybeat.pid"  # the Procfile's beat writes it
SUMMARY_FILE = local.VAR / "summary.txt"  # URLs, login and token, written by manage.py bootstrap


def cmd_exec(argv: list[str]) -> int:
    """Run argv with the services' URLs exported; return its exit code."""
    session = local.Session()
    proc: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        if proc is None:
            raise KeyboardInterrupt  # still starting the services: abort (release() cleans up)
        # Ctrl-C from the terminal reached the child already (it shares our process group):
        # a second SIGINT would abort pytest's teardown.
        if signum != signal.SIGINT or not _terminal_signalled_us():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)

    try:
        signal.signal(signal.SIGTERM, forward)
        env = session.acquire()
        signal.signal(signal.SIGINT, forward)
        log(f"DATABASE_URL={env['DATABASE_URL']} REDIS_URL={env['REDIS_URL']}")
        child_env = session.child_env()
        metrics = None
        if "PROMETHEUS_MULTIPROC_DIR" not in child_env:
            # Its own metrics directory: a test run's figures never mix with make run's.
            local.VAR.mkdir(parents=True, exist_ok=True)
            metrics = Path(tempfile.mkdtemp(prefix="metrics-", dir=local.VAR))
            child_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
        try:
            proc = subprocess.Popen(argv, env=child_env)
        except OSError as exc:
            log(f"cannot run {argv[0]!r}: {exc}")
            return 127
        return exit_code(proc.wait())
    finally:
        _ignore_signals()  # a late signal must not skip the clean-up
        if proc is not None and proc.poll() is None:
            proc.wait()  # never pull the services from under a child that still runs
        if metrics is not None:
            shutil.rmtree(metrics, ignore_errors=True)
        session.release()


def _terminal_signalled_us() -> bool:
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


def _ignore_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


# --------------------------------------------------------------------------- run


class _Process(HonchoProcess):  # type: ignore[misc]
    """honcho runs each Procfile line with `sh -c` from a forked helper that ignores
    signals and lives as long as its command. The shell execs the command, so honcho's
    signals and exit codes are the command's own (dash would otherwise die of the SIGTERM
    and report the command stopped while it still shuts down). The helper and the command
    die with us, so a kill -9 of devenv orphans nothing: the helper gets SIGKILL when
    devenv dies, the command SIGTERM when its helper does."""

    def run(self, events: Any = None, ignore_signals: bool = False) -> None:
        self.cmd: str = f"exec {self.cmd}"
        die_with_parent(signal.SIGKILL)
        pdeathsig = functools.partial(die_with_parent, signal.SIGTERM)
        self._child_ctor = functools.partial(HonchoPopen, preexec_fn=pdeathsig)
        super().run(events, ignore_signals)


class _Printer(Printer):  # type: ignore[misc]
    """honcho's prefixed, colored lines, and the ready block without a prefix (it copies
    cleanly). The first line printed starts the readiness probe: by then honcho has forked
    every helper, so no thread runs while it forks."""

    probe: threading.Thread | None = None

    def write(self, message: Message) -> None:
        if self.probe is not None and self.probe.ident is None:
            self.probe.start()
        if message.name is None:
            self.output.write(message.data)
            self.output.flush()
        else:
            super().write(message)


def _port_in_use(port: int) -> bool:
    """SO_REUSEADDR, like the server itself: TIME_WAIT leftovers of a previous run do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _start_replicas(servers: list[Postgres]) -> list[Postgres]:
    """REPLICAS=N: N streaming replicas of the embedded PostgreSQL, copied afresh for this
    run (`pg_basebackup -R`) under .var/pg-replica-<n>, stopped when it ends."""
    wanted = int(os.environ.get("REPLICAS", "0") or "0")
    if wanted <= 0:
        return []
    if os.environ.get("DATABASE_URL"):
        raise SystemExit(
            "[devenv] error: REPLICAS copies the embedded PostgreSQL; with DATABASE_URL set, "
            "name your replicas in DATABASE_REPLICA_URLS instead"
        )
    for n in range(1, wanted + 1):
        server = Postgres(local.VAR / f"pg-replica-{n}")
        server.stop("fast")  # one a killed run left behind
        shutil.rmtree(server.pgdata, ignore_errors=True)
        servers.append(server)  # stopped by the caller even if the copy fails halfway
        server.start_replica_of(local.PG)
        log(f"replica {n} started (pid {server.pid()}): {server.url(local.DB_NAME)}")
    return servers


def cmd_run() -> int:
    """`make run`: the services, bootstrap, then web + worker + beat until Ctrl-C."""
    t0 = time.monotonic()
    port = int(os.environ.get("PORT", "8000"))
    if _port_in_use(port):
        raise SystemExit(f"[devenv] error: port {port} is already in use; run with PORT=<other port>")
    session = local.Session()
    standbys: list[Postgres] = []
    try:
        signal.signal(signal.SIGTERM, _interrupt)  # SIGINT raises KeyboardInterrupt already
        env = session.acquire()
        child_env = session.child_env()
        if _start_replicas(standbys):
            env["DATABASE_REPLICA_URLS"] = child_env["DATABASE_REPLICA_URLS"] = ",".join(
                server.url(local.DB_NAME) for server in standbys
            )
        # The Procfile's commands are the venv's, as in an activated venv; readable log lines.
        child_env.update(
            PATH=f"{BIN}{os.pathsep}{child_env.get('PATH', '')}",
            PORT=str(port),
            PYTHONUNBUFFERED="1",
            DEVENV_VAR=str(local.VAR),
        )
        child_env.setdefault("LOG_FORMAT", "console")
        base = f"http://127.0.0.1:{port}"
        local.VAR.mkdir(parents=True, exist_ok=True)
        if "PROMETHEUS_MULTIPROC_DIR" not in child_env:
            # Prometheus' multiprocess files hold the figures of the processes that wrote
            # them: a deployment starts with an empty directory (metrics.py).
            metrics = local.VAR / "metrics"
            shutil.rmtree(metrics, ignore_errors=True)
            metrics.mkdir()
            child_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
        log("running manage.py bootstrap")
        boot = subprocess.run(
            manage("bootstrap", "--base-url", base, "--summary-file", str(SUMMARY_FILE)),
            cwd=ROOT,
            env=child_env,
            stdin=subprocess.DEVNULL,
        )
        if boot.returncode != 0:
            log(f"manage.py bootstrap failed with exit code {exit_code(boot.returncode)}")
            return 1
        printer = _Printer(sys.stdout, colour="NO_COLOR" not in os.environ)
        manager = Manager(printer)
        manager._process_ctor = _Process  # honcho's only hook for how a line is run
        printer.probe = threading.Thread(target=_announce, args=(manager, base, env, t0), daemon=True)
        for name, command in parse_procfile((ROOT / "Procfile").read_text()).processes.items():
            manager.add_process(name, command, env=child_env, cwd=str(ROOT))
        manager.loop()
        if manager.returncode in (130, 143):  # stopped by SIGINT / SIGTERM, as asked
            return 0
        log("a process exited by itself; stopped the others")
        return exit_code(manager.returncode) or 1
    except KeyboardInterrupt:
        log("interrupted")
        return 0
    finally:
        _ignore_signals()
        for server in standbys:
            server.stop("fast")
        session.release()


def _announce(manager: Manager, base: str, env: dict[str, str], t0: float) -> None:
    """Print the ready block once: when /ready/ answers 2xx (web, database, migrations,
    broker, and a worker serving every queue) and beat's pid file names a live process."""
    warned = False
    # /health/ first: it is quiet, while /ready/ logs every 503 it answers.
    while not (
        http_ok(f"{base}/health/") and pid_alive(read_int(BEAT_PIDFILE) or 0) and http_ok(f"{base}/ready/")
    ):
        if not warned and time.monotonic() - t0 > 90:
            warned = True
            log(f"WARNING: not ready after 90 s ({base}/ready/ says why); still running")
        time.sleep(0.5)
    try:
        summary = SUMMARY_FILE.read_text()
    except OSError:
        summary = "    (the login and API token: see the bootstrap output above)\n"
    text = (
        f"\n  intent-django is ready in {time.monotonic() - t0:.1f}s: web, worker, beat\n"
        f"    {'DATABASE_URL':<15} {env['DATABASE_URL']}\n"
        f"    {'REDIS_URL':<15} {env['REDIS_URL']}\n"
        + "".join(
            f"    {'replica':<15} {url}\n"
            for url in filter(None, env.get("DATABASE_REPLICA_URLS", "").split(","))
        )
        + f"{summary}"
        "  Ctrl-C stops web, worker, beat and the embedded services this run started.\n\n"
    )
    manager.events.put(Message(type="line", data=text, time=datetime.now(), name=None, colour=None))


# --------------------------------------------------------------------------- supervise

RESTART_DELAY_MAX = 30.0  # seconds between restarts of a child that keeps dying
HEALTHY_AFTER = 60.0  # a child that ran this long starts the backoff over


def cmd_supervise(name: str, argv: list[str]) -> int:
    """Run argv and start it again whenever it exits by itself (a crash, a kill -9), after
    1 s, doubling up to RESTART_DELAY_MAX while it keeps dying. SIGTERM or SIGINT is passed
    on as SIGTERM, and then it is not restarted: the exit code is the child's.

    The Procfile runs the Celery worker and beat under this, as a production supervisor
    would: a worker that dies is back in seconds, and the messages it held are delivered
    again (late acks) or re-sent by the sweep. The child stays in our process group, so a
    stop of the group reaches both at once."""
    stopping: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    pdeathsig = functools.partial(die_with_parent, signal.SIGTERM)
    delay = 1.0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, preexec_fn=pdeathsig)
        if stopping:  # the signal came while it was starting
            child.send_signal(signal.SIGTERM)
        code = child.wait()
        if stopping:
            return exit_code(code)
        if time.monotonic() - started >= HEALTHY_AFTER:
            delay = 1.0
        log(f"{name} exited with code {code}; starting it again in {delay:.0f}s")
        deadline = time.monotonic() + delay
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
        if stopping:
            return 0
        delay = min(delay * 2, RESTART_DELAY_MAX)


# --------------------------------------------------------------------------- status/stop/env


def cmd_stop() -> int:
    with local.state_lock():
        clients = local.live_clients()
        if clients:
            log(f"WARNING: devenv clients still running (pids {clients}); stopping anyway")
        stopped = [local.stop_service("pg"), local.stop_service("redis")]
    if not any(stopped):
        log("no embedded services were running")
    return 0


def cmd_env() -> int:
    for key, value in local.Session(keep=True).acquire().items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devenv", description="make run / make test's services")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("exec", help="run a command with DATABASE_URL/REDIS_URL set").add_argument(
        "cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]"
    )
    sub.add_parser("run", help="bootstrap, then web (gunicorn) + celery worker + beat")
    supervise = sub.add_parser("supervise", help="run a command, start it again whenever it dies")
    supervise.add_argument("name", help="what to call it in log lines")
    supervise.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    sub.add_parser("status", help="show the embedded services")
    sub.add_parser("stop", help="stop the embedded services")
    sub.add_parser("env", help="start the services (left running) and print export lines")
    args = parser.parse_args(argv)
    command = list(getattr(args, "cmd", []))
    command = command[1:] if command[:1] == ["--"] else command
    if args.command in ("exec", "supervise") and not command:
        parser.error(f"{args.command} needs -- COMMAND [ARGS...]")
    try:
        if args.command == "exec":
            return cmd_exec(command)
        if args.command == "run":
            return cmd_run()
        if args.command == "supervise":
            return cmd_supervise(args.name, command)
        if args.command == "status":
            print("\n".join(local.status()))
            return 0
        return cmd_stop() if args.command == "stop" else cmd_env()
    except (PostgresError, RedisError) as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
