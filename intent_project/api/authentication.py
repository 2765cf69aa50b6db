"""API token authentication: django-rest-knox tokens, read from the database on every request.

`Authorization: Token <token>` or `Authorization: Bearer <token>` (the OAuth 2 spelling most
HTTP clients and Swagger UI send); the scheme is case-insensitive. Only the token's SHA-512
digest is stored; a token expires after TOKEN_TTL_HOURS and is revoked by POST
/api/auth/logout/ (or logout-all/). Nothing is cached per process: a revoked token is
refused by every web process on its next request.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.signals import token_expired
from rest_framework.authentication import get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from intent_project import logs

ACCEPTED_SCHEMES = ("Token", "Bearer")
_SCHEMES = frozenset(scheme.lower().encode() for scheme in ACCEPTED_SCHEMES)
_HOW = "Send 'Authorization: Token <token>' or 'Authorization: Bearer <token>'."


class TokenAuthentication(KnoxTokenAuthentication):
    """knox's authentication in one query per request (token joined with its user).

    knox also loads every other token of the user on each request to delete the expired
    ones; here only the presented token's expiry is checked (an expired token is deleted
    and refused), and the user's other expired tokens are deleted when they log in again
    (views.TokenView).

    knox ignores a header in any other scheme, which then answered "Authentication
    credentials were not provided." although the client did send some: the only other
    authentication here is the session, which never reads the header, so another scheme
    is refused saying which ones work.
    """

    def authenticate(self, request: Request) -> Any:
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() not in _SCHEMES:
            raise AuthenticationFailed(f"Unsupported authorization scheme. {_HOW}")
        if len(header) != 2:
            raise AuthenticationFailed(f"Invalid authorization header: one token, no spaces. {_HOW}")
        if not header[1].isascii():  # knox would fail decoding it as UTF-8: a 500
            raise AuthenticationFailed("Invalid token.")
        # knox's own check: the token's key finds the row, its SHA-512 digest must match.
        user, token = self.authenticate_credentials(header[1])
        logs.bind_user(user.get_username())  # the session middleware never saw this user
        return user, token

    def authenticate_header(self, request: Request) -> str:
        return ", ".join(ACCEPTED_SCHEMES)  # the WWW-Authenticate challenges of a 401

    def _cleanup_token(self, auth_token: Any) -> bool:
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            username = auth_token.user.get_username()
            auth_token.delete()
            token_expired.send(sender=self.__class__, username=username, source="auth_token")
            return True
        return False


class TokenScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme: HTTP bearer, so Swagger UI's "Authorize" takes the bare
    token and sends `Bearer <token>`; the name `tokenAuth` stays the one DRF's scheme had."""

    target_class = "intent_project.api.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> Any:
        scheme = build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer")
        return {**scheme, "description": _HOW}
