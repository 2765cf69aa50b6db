"""`make run` and `make test` share this checkout's embedded services (devenv/local.py): the
last live client out stops the services it (or another client) started, never those kept
by `env`, and a client that died does not pin them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from devenv import local


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "RUN", tmp_path / "run")
    monkeypatch.setattr(local, "CLIENTS", tmp_path / "run" / "clients")
    stopped: list[str] = []
    monkeypatch.setattr(local, "stop_service", stopped.append)
    local.CLIENTS.mkdir(parents=True)
    return stopped


def _client(pid: int, start_time: str | None = None) -> None:
    recorded = local._start_time(pid) if start_time is None else start_time
    (local.CLIENTS / str(pid)).write_text(recorded + "\n")


def _session() -> local.Session:
    session = local.Session()
    _client(os.getpid())
    session.registered = True
    return session


def test_a_dead_client_and_a_reused_pid_are_pruned_a_live_one_is_kept(state):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _client(dead.pid, "12345")
    _client(os.getppid(), "1")  # alive, but started at another time: its pid was reused
    _client(os.getpid())

    assert local.live_clients() == [os.getpid()]
    assert sorted(p.name for p in local.CLIENTS.iterdir()) == [str(os.getpid())]


def test_services_stay_while_another_client_runs_and_the_last_one_out_stops_the_auto_ones(state):
    local.set_policy("pg", local.AUTO)
    local.set_policy("redis", local.KEEP)
    _client(os.getppid())  # another live invocation, e.g. `make run` in another terminal

    _session().release()
    assert state == []

    (local.CLIENTS / str(os.getppid())).unlink()
    _session().release()
    assert state == ["pg"]  # redis was started by `env`: only `stop` stops it
    assert local.live_clients() == []


def test_a_session_with_both_urls_given_registers_nothing_and_stops_nothing(state, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://intent@db.example/intent")
    monkeypatch.setenv("REDIS_URL", "redis://redis.example:6379/0")
    monkeypatch.setenv("SECRET_KEY", "from-the-operator")
    session = local.Session()

    env = session.acquire()
    session.release()

    assert env == {
        "DATABASE_URL": "postgres://intent@db.example/intent",
        "REDIS_URL": "redis://redis.example:6379/0",
    }
    assert list(local.CLIENTS.iterdir()) == [] and state == []
