"""The code features check_distribution reports from a declared list stay true: every file
that uses one is declared, and every declared file still uses it."""

from __future__ import annotations

import re
from pathlib import Path

from intent_project.tenants.distribution import CODE_FEATURES

ROOT = Path(__file__).resolve().parents[2]
APPS = ("commands_app", "events_app", "projections_app", "intent_project")
SELF = "intent_project/tenants/distribution.py"


def _users(pattern: str) -> set[str]:
    found = set()
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            relative = path.relative_to(ROOT).as_posix()
            if relative != SELF and re.search(pattern, path.read_text()):
                found.add(relative)
    return found


def test_each_declared_code_feature_lists_exactly_the_files_that_use_it():
    mismatches = {
        feature.key: {
            "undeclared": sorted(users - set(feature.files)),
            "unused": sorted(set(feature.files) - users),
        }
        for feature in CODE_FEATURES
        if (users := _users(feature.pattern)) != set(feature.files)
    }
    assert mismatches == {}


def test_the_declared_features_are_the_audited_ones():
    assert {f.key for f in CODE_FEATURES} >= {
        "append_lock",
        "advisory_locks",
        "listen_notify",
        "jsonb_to_recordset",
        "copy",
        "schema_clone",
        "search_path",
    }
