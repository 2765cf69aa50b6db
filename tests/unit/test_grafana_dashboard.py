"""The Grafana dashboard in docs/ queries only metrics the code defines."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

from intent_project import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "intent-dashboard.json"
# Gauges the scrape computes (metrics._ScrapeTimeCollector), not registered objects.
SCRAPE_TIME = {*metrics.PROJECTION_GAUGES, metrics.QUEUE_DEPTH}


def _defined() -> set[str]:
    names = set(SCRAPE_TIME)
    for collector in list(REGISTRY._collector_to_names):
        for family in collector.describe() if hasattr(collector, "describe") else []:
            for suffix in ("", "_total", "_bucket", "_count", "_sum", "_created"):
                names.add(family.name + suffix)
    return names


def test_every_expression_names_a_defined_metric() -> None:
    assert metrics.COMMANDS_STORED  # the module's metrics are registered
    dashboard = json.loads(DASHBOARD.read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bintent_[a-z_]+", target["expr"])
    }
    assert used, "the dashboard queries nothing"
    assert used <= _defined(), sorted(used - _defined())
