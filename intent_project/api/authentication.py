"""API token authentication with the token lookup cached per process (tenants/lookups.py)."""

from __future__ import annotations

import copy
from typing import Any

from rest_framework.authentication import TokenAuthentication

from intent_project.tenants import lookups


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's `Authorization: Token <key>`, minus the token+user query on a cache hit.

    Only valid tokens of active users are cached (a failed lookup raises and is not
    remembered). Each request gets its own copy of the user, so nothing a request sets on
    it (role caches, last_login) leaks into another request.
    """

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        user, token = lookups.tokens.get_or_load(
            key, lambda: super(CachedTokenAuthentication, self).authenticate_credentials(key)
        )
        return copy.copy(user), token
