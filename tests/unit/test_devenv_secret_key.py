"""`make run` / `make test` work without a SECRET_KEY set: devenv makes one per checkout,
keeps it private (0600) and the same across runs, and leaves a key that is set alone."""

from __future__ import annotations

import stat

import pytest

from devenv import local


@pytest.fixture
def var_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "RUN", tmp_path / "run")
    monkeypatch.setattr(local, "SECRET_KEY_FILE", tmp_path / "secret_key")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    return tmp_path


def test_a_key_is_made_once_private_and_reused(var_dir):
    first = local.app_env()["SECRET_KEY"]

    assert len(first) >= 50
    assert stat.S_IMODE((var_dir / "secret_key").stat().st_mode) == 0o600
    assert local.app_env()["SECRET_KEY"] == first


def test_a_key_set_in_the_environment_is_left_alone(var_dir, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "from-the-operator")

    assert local.app_env() == {}
    assert not (var_dir / "secret_key").exists()


def test_the_key_file_is_made_private_again_if_someone_opened_it(var_dir):
    local.app_env()
    (var_dir / "secret_key").chmod(0o644)

    local.app_env()

    assert stat.S_IMODE((var_dir / "secret_key").stat().st_mode) == 0o600
