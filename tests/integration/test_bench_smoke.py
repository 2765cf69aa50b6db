"""`manage.py bench` (issue #6's suite) runs and writes its table as JSON, at a tiny scale.

Only benchmarks that need no extra processes and no optional package run here; the
others (worker, web, the eventsourcing baseline) are what `make bench` is for."""

from __future__ import annotations

import json

from devenv.procs import run_manage
from tests.conftest import app_env

KEYS = {"name", "ours", "baseline", "ratio", "unit", "target"}


def test_the_benchmark_suite_prints_figures_and_writes_its_json(world, live_db, tmp_path):
    out = tmp_path / "bench.json"
    run = run_manage(
        app_env(), "bench", "--only", "load,projection", "--scale", "0.01", "--out", str(out), timeout=300
    )

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "aggregate_load_10k_vs_10_with_snapshots" in run.stdout  # the printed table
    rows = json.loads(out.read_text())
    names = {row["name"] for row in rows}
    assert "aggregate_load_10k_vs_10_with_snapshots" in names
    assert {"projection_catchup_system_status_vs_raw", "projection_rebuild_system_status_vs_raw"} <= names
    for row in rows:
        assert set(row) >= KEYS, row
        if row["ours"] is not None and row["baseline"]:
            # The figures are printed to 2 decimals and the ratio comes from the unrounded
            # ones, so it lies between the ratios of the figures' rounding bounds.
            low = (row["ours"] - 0.005) / (row["baseline"] + 0.005)
            high = (row["ours"] + 0.005) / max(row["baseline"] - 0.005, 1e-9)
            assert low - 0.001 <= row["ratio"] <= high + 0.001, row
