"""Process managers of the system slice: events in, commands out.

The reference's system saga (a delayed logMessage after emitMultipleEvents) arrives with
saga support; until then this slice declares none.
"""

from __future__ import annotations

SAGAS: tuple[object, ...] = ()
