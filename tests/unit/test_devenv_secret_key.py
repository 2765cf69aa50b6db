"""`make run` / `make test` work without a SECRET_KEY set: scripts/devenv.py makes one per
checkout, keeps it private (0600) and the same across runs, and leaves a key that is set alone."""

from __future__ import annotations

import stat
import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import devenv  # noqa: E402


@pytest.fixture
def var_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(devenv, "VAR_DIR", tmp_path)
    monkeypatch.setattr(devenv, "RUN_DIR", tmp_path / "run")
    monkeypatch.setattr(devenv, "LOCK_FILE", tmp_path / "run" / "devenv.lock")
    monkeypatch.setattr(devenv, "SECRET_KEY_FILE", tmp_path / "secret_key")
    monkeypatch.delitem(devenv.ORIGINAL_ENV, "SECRET_KEY", raising=False)
    return tmp_path


def test_a_key_is_made_once_private_and_reused(var_dir):
    first = devenv.app_env()["SECRET_KEY"]

    assert len(first) >= 50
    assert stat.S_IMODE((var_dir / "secret_key").stat().st_mode) == 0o600
    assert devenv.app_env()["SECRET_KEY"] == first


def test_a_key_set_in_the_environment_is_left_alone(var_dir, monkeypatch):
    monkeypatch.setitem(devenv.ORIGINAL_ENV, "SECRET_KEY", "from-the-operator")

    assert devenv.app_env() == {}
    assert not (var_dir / "secret_key").exists()


def test_the_key_file_is_made_private_again_if_someone_opened_it(var_dir):
    devenv.app_env()
    (var_dir / "secret_key").chmod(0o644)

    devenv.app_env()

    assert stat.S_IMODE((var_dir / "secret_key").stat().st_mode) == 0o600
