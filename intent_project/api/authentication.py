"""API token authentication: django-rest-knox tokens, read from the database on every request.

`Authorization: Token <token>`. Only the token's SHA-512 digest is stored; a token expires
after TOKEN_TTL_HOURS and is revoked by POST /api/auth/logout/ (or logout-all/). Nothing is
cached per process: a revoked token is refused by every web process on its next request.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.signals import token_expired


class TokenAuthentication(KnoxTokenAuthentication):
    """knox's authentication in one query per request (token joined with its user).

    knox also loads every other token of the user on each request to delete the expired
    ones; here only the presented token's expiry is checked (an expired token is deleted
    and refused), and the user's other expired tokens are deleted when they log in again
    (views.TokenView).
    """

    def _cleanup_token(self, auth_token: Any) -> bool:
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            username = auth_token.user.get_username()
            auth_token.delete()
            token_expired.send(sender=self.__class__, username=username, source="auth_token")
            return True
        return False


class TokenScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme: the same `tokenAuth` name DRF's token scheme had."""

    target_class = "intent_project.api.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> Any:
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Token")
