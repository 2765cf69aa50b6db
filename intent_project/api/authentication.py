"""API token authentication: django-rest-knox tokens, read from the database on every request.

`Authorization: Token <token>` or `Authorization: Bearer <token>` (the OAuth 2 spelling most
HTTP clients and Swagger UI send); the scheme is case-insensitive. Only the token's SHA-512
digest is stored; a token expires after TOKEN_TTL_HOURS and is revoked by POST
/api/auth/logout/ (or logout-all/). Nothing is cached per process: a revoked token is
refused by every web process on its next request.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from hmac import compare_digest
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Model
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.crypto import hash_token
from knox.models import get_token_model
from knox.settings import CONSTANTS
from knox.signals import token_expired
from rest_framework.authentication import get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from intent_project import logs
from intent_project.db import pipeline
from intent_project.rowsets import Loader
from intent_project.tenants.models import Membership
from intent_project.tenants.services import remember_role

ACCEPTED_SCHEMES = ("Token", "Bearer")
_SCHEMES = frozenset(scheme.lower().encode() for scheme in ACCEPTED_SCHEMES)
_HOW = "Send 'Authorization: Token <token>' or 'Authorization: Bearer <token>'."


@dataclass(frozen=True)
class _Lookup:
    """The one statement that finds a token with its user and, under a tenant's path, the
    user's role there (compiled once: the ORM would build the join on every request), and
    how its columns become a token and a user."""

    sql: str
    tokens: Loader
    users: Loader


@functools.cache
def _lookup() -> _Lookup:
    token_model, user_model = get_token_model(), get_user_model()
    tokens, users = Loader(token_model), Loader(user_model)
    q = connection.ops.quote_name
    user_fk = token_model._meta.get_field("user").column
    m = Membership._meta
    sql = (
        "SELECT "
        + ", ".join(
            [f"t.{q(f.column)}" for f in tokens.fields] + [f"u.{q(f.column)}" for f in users.fields] + ["m.role"]
        )
        + f" FROM {q(token_model._meta.db_table)} t"
        f" JOIN {q(user_model._meta.db_table)} u ON u.{q(user_model._meta.pk.column)} = t.{q(user_fk)}"
        f" LEFT JOIN {q(m.db_table)} m ON m.{q(m.get_field('user').column)} = u.{q(user_model._meta.pk.column)}"
        f" AND m.{q(m.get_field('tenant').column)} = %s"
        f" WHERE t.{q(token_model._meta.get_field('token_key').column)} = %s"
    )
    return _Lookup(sql, tokens, users)


def _request_tenant(request: Request) -> Any:
    """The tenant of the request's path, when it is one (not the public schema)."""
    tenant = getattr(request, "tenant", None)
    return tenant if tenant is not None and tenant.schema_name != "public" else None


class TokenAuthentication(KnoxTokenAuthentication):
    """knox's authentication in one query per request: the token joined with its user and,
    under /t/<tenant>/, with the user's membership there, so the permission check that
    follows (IsTenantMember) reads the role this same statement read, without a query of
    its own. Everything is read on the primary, on every request.

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
        user, token = self._credentials(header[1].decode("ascii"), _request_tenant(request))
        logs.bind_user(user.get_username())  # the session middleware never saw this user
        return user, token

    def authenticate_credentials(self, token: bytes) -> tuple[Any, Any]:
        return self._credentials(token.decode("utf-8"), None)

    def _credentials(self, token: str, tenant: Any) -> tuple[Any, Any]:
        """knox's authenticate_credentials, in one statement; with `tenant`, the user's role
        in it is remembered for the request (tenants.services.role_in)."""
        lookup = _lookup()
        rows = pipeline.fetch(lookup.sql, [tenant.pk if tenant else None, token[: CONSTANTS.TOKEN_KEY_LENGTH]])
        n = len(lookup.tokens.fields)
        digest: str | None = None
        for row in rows:
            auth_token = lookup.tokens.instance(row[:n])
            user = lookup.users.instance(row[n:-1])
            _related(auth_token, "user", user)
            if self._cleanup_token(auth_token):
                continue
            digest = digest or hash_token(token)
            if compare_digest(digest, auth_token.digest):
                if tenant is not None:
                    remember_role(user, tenant.pk, row[-1])
                return self.validate_user(auth_token)  # type: ignore[no-any-return]
        raise AuthenticationFailed("Invalid token.")

    def authenticate_header(self, request: Request) -> str:
        return ", ".join(ACCEPTED_SCHEMES)  # the WWW-Authenticate challenges of a 401

    def _cleanup_token(self, auth_token: Any) -> bool:
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            username = auth_token.user.get_username()
            auth_token.delete()
            token_expired.send(sender=self.__class__, username=username, source="auth_token")
            return True
        return False


def _related(instance: Model, name: str, value: Model) -> None:
    """Attach a loaded related object, as select_related would."""
    instance._meta.get_field(name).set_cached_value(instance, value)  # type: ignore[union-attr]


class TokenScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme: HTTP bearer, so Swagger UI's "Authorize" takes the bare
    token and sends `Bearer <token>`; the name `tokenAuth` stays the one DRF's scheme had."""

    target_class = "intent_project.api.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> Any:
        scheme = build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer")
        return {**scheme, "description": _HOW}
