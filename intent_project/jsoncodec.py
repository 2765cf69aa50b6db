"""JSON for rows sent to PostgreSQL as one document (jsonb_to_recordset)."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder


class ExactJSONEncoder(DjangoJSONEncoder):
    """DjangoJSONEncoder, but times keep their microseconds (Django's cuts them to
    milliseconds, which would store a different value than a column written directly)."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime.datetime | datetime.time):
            return o.isoformat()
        return super().default(o)
