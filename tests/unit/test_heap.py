"""intent_project.heap: start-up objects frozen, later garbage still collected."""

from __future__ import annotations

import gc

from intent_project import heap


def test_settle_freezes_what_is_alive_and_later_cycles_are_still_collected():
    try:
        heap.settle()
        assert gc.get_freeze_count() > 0

        class Node:
            other: object = None

        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle only the collector can free
        kept = len(gc.get_objects())
        del a, b, Node
        assert gc.collect() > 0
        assert len(gc.get_objects()) < kept
    finally:
        gc.unfreeze()
