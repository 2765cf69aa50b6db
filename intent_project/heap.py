"""The objects a process loads at start-up, kept out of the garbage collector's walks.

A full collection visits every object that can hold references, and a started Django
process holds well over 100,000 of them that live as long as it does: modules, classes,
the URL conf, the registries, pydantic's validators. Each full collection walked them
all again: in a projection catch-up of 29,000 events, the three full collections took
0.21–0.23 s of 1.0–1.2 s, and 0.015 s with the start-up objects frozen (docs/benchmarks.md).

`settle()` moves what is alive now into the permanent generation (`gc.freeze()`), once
the process has loaded what it serves with: Celery's main process before it forks its
pool (`intent_project/celery.py`), each web process once its application is built
(`asgi.py`, `wsgi.py`), and the benchmark command, which runs the engine in-process as
a worker would. Objects created later are collected as before; what is frozen is never
freed, which for start-up objects is what happens anyway. Forked children inherit the
frozen generation, and not touching those objects keeps their pages shared.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Freeze everything alive now: later collections skip it."""
    gc.collect()  # what start-up left as garbage goes first, not into the frozen set
    gc.freeze()
