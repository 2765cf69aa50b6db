"""Public (non-tenant) API: entry points, tokens, users, tenants, memberships, registry, health."""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model, user_logged_in, user_logged_out
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection
from django.http import HttpRequest, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from knox.models import AuthToken
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from commands_app.registry import get_registry
from intent_project import readiness
from intent_project.api.authentication import ACCEPTED_SCHEMES, TokenAuthentication
from intent_project.api.errors import ApiError
from intent_project.api.schema import errors
from intent_project.api.throttling import LOGIN_THROTTLES
from intent_project.tenancy import use_public_schema
from intent_project.tenants import policy
from intent_project.tenants.models import Membership, Tenant, validate_slug
from intent_project.tenants.policy import PlatformAction
from intent_project.tenants.portable import export_download
from intent_project.tenants.roles import Role
from intent_project.tenants.services import TenantExists, create_tenant, role_in
from projections_app.registry import get_projections, get_read_models

User = get_user_model()


# --- entry points: GET /, /api/, /t/<tenant>/, /t/<tenant>/api/ -------------------------------
def _public_url(request: Request, name: str) -> str:
    # Inside a tenant the request's urlconf is the tenant's; public routes live in this one.
    return request.build_absolute_uri(reverse(name, urlconf=settings.PUBLIC_SCHEMA_URLCONF))


def _wants_a_page(request: Request) -> bool:
    """A browser (text/html before anything else in Accept), not an API client (`*/*`, JSON)."""
    return request._request.get_preferred_type(["application/json", "text/html"]) == "text/html"


def _named(ref_name: str, **fields: serializers.Field) -> type[serializers.Serializer]:
    meta = type("Meta", (), {"ref_name": ref_name})
    return type(ref_name, (serializers.Serializer,), {**fields, "Meta": meta})


_ENTRY_POINT_FIELDS = {
    "name": serializers.CharField(),
    "version": serializers.CharField(),
    "authentication": _named(
        "Authentication",
        header=serializers.CharField(help_text="The header to send."),
        token=serializers.URLField(help_text="Where to log in for a token."),
    )(),
}
EntryPointsOut = _named(
    "EntryPoints",
    **_ENTRY_POINT_FIELDS,
    links=serializers.DictField(child=serializers.CharField(), help_text="URLs (and URI templates)."),
)
TenantEntryPointsOut = _named(
    "TenantEntryPoints",
    tenant=serializers.CharField(),
    **_ENTRY_POINT_FIELDS,
    links=serializers.DictField(help_text="URLs, URI templates, and `read_models`: name -> URL."),
)


class EntryPointsView(APIView):
    """Where to go from here (GET /api/): links, never data, so open to anyone like the registry.

    Every client gets them, browsers included (DRF's browsable page of the same links); the
    root views below send a browser to a page instead."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    page: str | None = None

    @extend_schema(
        responses=EntryPointsOut,
        operation_id="getApiRoot",
        tags=["entry-points"],
        description="Links to the docs, the schema, the registry, tenants and health, and how to "
        "authenticate.",
    )
    def get(self, request: Request, **kwargs: Any) -> Any:
        if self.page is not None and _wants_a_page(request):
            return HttpResponseRedirect(reverse(self.page))
        return Response(self.entry_points(request))

    def entry_points(self, request: Request) -> dict[str, Any]:
        return {
            "name": settings.SPECTACULAR_SETTINGS["TITLE"],
            "version": settings.SPECTACULAR_SETTINGS["VERSION"],
            "authentication": {
                "header": " or ".join(f"Authorization: {scheme} <token>" for scheme in ACCEPTED_SCHEMES),
                "token": _public_url(request, "auth-token"),
            },
            "links": {
                "docs": _public_url(request, "swagger-ui"),
                "schema": _public_url(request, "schema"),
                "registry": _public_url(request, "registry"),
                "tenants": _public_url(request, "tenants"),
                # A URI template: the tenants a user belongs to list their own api_url.
                "tenant_api": request.build_absolute_uri("/t/") + "{tenant}/api/",
                "health": _public_url(request, "health"),
                "ready": _public_url(request, "ready"),
                "admin": _public_url(request, "admin:index"),
            },
        }


class TenantEntryPointsView(EntryPointsView):
    """A tenant's entry points (in the tenant's urlconf, so `reverse` gives /t/<tenant>/ URLs)."""

    @extend_schema(
        responses=TenantEntryPointsOut,
        operation_id="getTenantApiRoot",
        tags=["entry-points"],
        description="Links to the tenant's commands, events, traces, read models and projections.",
    )
    def get(self, request: Request, **kwargs: Any) -> Any:
        return super().get(request, **kwargs)

    def entry_points(self, request: Request) -> dict[str, Any]:
        def url(route: str, **kwargs: Any) -> str:
            return request.build_absolute_uri(reverse(route, kwargs=kwargs or None))

        body = {"tenant": request.tenant.slug, **super().entry_points(request)}  # type: ignore[attr-defined]
        body["links"] = {
            "commands": url("commands"),
            "events": url("events"),
            "traces": url("tenant-api") + "traces/{correlation_id}/",  # a URI template
            "read_models": {name: url("read-model-list", name=name) for name in sorted(get_read_models())},
            "projections": url("projections"),
            "admin": url("admin:index"),
            "registry": _public_url(request, "registry"),
            "docs": _public_url(request, "swagger-ui"),
        }
        return body


class SiteRootView(EntryPointsView):
    """GET /: the entry points for an API client, the API docs for a browser. Not in the
    OpenAPI document (a redirect is no API; /api/ is the same links)."""

    schema = None
    page = "swagger-ui"


class TenantRootView(TenantEntryPointsView):
    """GET /t/<tenant>/: the tenant's entry points, or its admin for a browser."""

    schema = None
    page = "admin:index"


class TokenIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    # Passwords are taken as typed, spaces included (as Django's own login form does).
    password = serializers.CharField(max_length=256, trim_whitespace=False, style={"input_type": "password"})


class TokenView(APIView):
    """Log in: a new token for each login, shown in this answer and never again.

    Throttled per username and per client address before the password is looked at, and
    refused (429 locked_out) after LOGIN_FAILURE_LIMIT failures (django-axes).
    """

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    throttle_classes = LOGIN_THROTTLES

    @extend_schema(
        operation_id="createToken",
        description="Log in: a new token, shown in this answer only. Send it as "
        "`Authorization: Bearer <token>` (or `Token <token>`) until `expiry`.",
        request=TokenIn,
        responses=inline_serializer(
            "Token", {"token": serializers.CharField(), "expiry": serializers.DateTimeField()}
        ),
    )
    def post(self, request: Request) -> Response:
        data = TokenIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(
            request._request,
            username=data.validated_data["username"],
            password=data.validated_data["password"],
        )
        if user is None or not user.is_active:
            raise ApiError(
                400, "invalid_credentials", "Unable to log in with the given username and password."
            )
        # knox deletes a user's expired tokens while authenticating with another one; our
        # authentication skips that per-request query, so logging in does it instead.
        AuthToken.objects.filter(user=user, expiry__lt=timezone.now()).delete()
        instance, token = AuthToken.objects.create(user=user)
        user_logged_in.send(sender=user.__class__, request=request._request, user=user)
        return Response({"token": token, "expiry": instance.expiry})


class LogoutView(APIView):
    """Revoke the token this request carries."""

    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="revokeToken",
        description="Revoke the token this request carries.",
        request=None,
        responses={204: None},
    )
    def post(self, request: Request) -> Response:
        request.auth.delete()
        user_logged_out.send(sender=request.user.__class__, request=request._request, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutAllView(APIView):
    """Revoke every token of the calling user (e.g. after a token leaked)."""

    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="revokeAllTokens",
        description="Revoke every token of the calling user.",
        request=None,
        responses={204: None},
    )
    def post(self, request: Request) -> Response:
        AuthToken.objects.filter(user=request.user).delete()
        user_logged_out.send(sender=request.user.__class__, request=request._request, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserIn(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]{1,150}$", max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False, write_only=True)
    email = serializers.EmailField(required=False, allow_blank=True)
    is_staff = serializers.BooleanField(required=False, default=False)

    def validate_username(self, value: str) -> str:
        if User.objects.filter(username=value).exists():
            raise ApiError(409, "user_exists", f"User '{value}' already exists.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # AUTH_PASSWORD_VALIDATORS, with the would-be user so "similar to the username" counts.
        candidate = User(username=attrs.get("username", ""), email=attrs.get("email", ""))
        try:
            validate_password(attrs["password"], candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from None
        return attrs


class UserOut(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField()
    is_staff = serializers.BooleanField()


class UserListView(APIView):
    """Create users: superusers and holders of auth.add_user; staff users: superusers only."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="createUser",
        description="Create a user (superusers and holders of `auth.add_user`; staff users: "
        "superusers only).",
        request=UserIn,
        responses={201: UserOut, **errors(409)},
    )
    def post(self, request: Request) -> Response:
        policy.create_user_allowed(request.user, staff=False)  # before the body says who exists
        data = UserIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        policy.create_user_allowed(request.user, staff=fields.get("is_staff", False))
        user = User.objects.create_user(
            username=fields["username"],
            password=fields["password"],
            email=fields.get("email", ""),
            is_staff=fields.get("is_staff", False),
        )
        return Response(UserOut(user).data, status=status.HTTP_201_CREATED)


class TenantIn(serializers.Serializer):
    slug = serializers.CharField(max_length=40)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)

    def validate_slug(self, value: str) -> str:
        try:
            validate_slug(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(list(exc.messages)) from None
        return value


class TenantOut(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    schema_name = serializers.CharField()
    created_at = serializers.DateTimeField()
    role = serializers.SerializerMethodField()
    api_url = serializers.SerializerMethodField()

    def get_role(self, tenant: Tenant) -> str | None:
        return role_in(self.context["request"].user, tenant)

    def get_api_url(self, tenant: Tenant) -> str:
        return self.context["request"].build_absolute_uri(f"/t/{tenant.slug}/api/")


class TenantListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="listTenants",
        description="The tenants the caller belongs to (every tenant for platform operators).",
        responses=TenantOut(many=True),
    )
    def get(self, request: Request) -> Response:
        tenants = policy.visible_tenants(request.user)
        return Response(TenantOut(tenants, many=True, context={"request": request}).data)

    @extend_schema(
        operation_id="createTenant",
        description="Create a tenant (needs the `tenants.add_tenant` permission).",
        request=TenantIn,
        responses={201: TenantOut, **errors(409)},
    )
    def post(self, request: Request) -> Response:
        if not policy.may(request.user, PlatformAction.CREATE_TENANT):
            raise ApiError(
                403, "permission_denied", "Creating tenants needs the tenants.add_tenant permission."
            )
        data = TenantIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            tenant = create_tenant(data.validated_data["slug"], data.validated_data.get("name", ""))
        except TenantExists as exc:
            raise ApiError(409, "tenant_exists", f"Tenant '{exc.slug}' already exists.") from None
        finally:
            use_public_schema()
        return Response(TenantOut(tenant, context={"request": request}).data, status=status.HTTP_201_CREATED)


class MemberIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.values)


class MemberOut(serializers.Serializer):
    username = serializers.CharField(source="user.username")
    role = serializers.CharField()
    created_at = serializers.DateTimeField()


class MemberRoleIn(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.values)


def _tenant(slug: str) -> Tenant:
    tenant = Tenant.objects.exclude(schema_name="public").filter(slug=slug).first()
    if tenant is None:
        raise ApiError(404, "tenant_not_found", f"There is no tenant '{slug[:60]}'.")
    return tenant


class TenantExportView(APIView):
    """A tenant as one file (intent_project/tenants/portable.py): superusers only."""

    permission_classes = [IsAuthenticated]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # The answer is a file, whatever the client accepts; errors stay JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="exportTenant",
        description="The tenant's events, commands with their outcomes, saga instances, dead letters "
        "and snapshots as one gzip-compressed JSON-lines file (`manage.py import_tenant FILE --as SLUG` "
        "loads it), read from one consistent snapshot. Superusers only.",
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The export file."
            ),
            **errors(404),
        },
    )
    def get(self, request: Request, slug: str) -> Any:
        if not (request.user.is_active and request.user.is_superuser):
            raise ApiError(403, "superuser_only", "Only a superuser may export a tenant.")
        return export_download(_tenant(slug), operator=request.user.get_username())


class MemberListView(APIView):
    """A tenant's members. Who may list, add and change them: tenants/policy.py."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="listMembers",
        description="A tenant's members and their roles.",
        responses=MemberOut(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant = _tenant(slug)
        if not policy.may_list_members(request.user, tenant):
            raise policy.not_a_manager()
        return Response(
            MemberOut(Membership.objects.filter(tenant=tenant).select_related("user"), many=True).data
        )

    @extend_schema(
        operation_id="addMember",
        description="Give a user a role in the tenant: 201 when added, 200 when the user was a "
        "member already (the role is changed).",
        request=MemberIn,
        responses={201: MemberOut, 200: MemberOut},
    )
    def post(self, request: Request, slug: str) -> Response:
        tenant = _tenant(slug)
        policy.require_member_manager(request.user, tenant)
        data = MemberIn(data=request.data)
        data.is_valid(raise_exception=True)
        membership, created = policy.set_member_role(
            request.user, tenant, data.validated_data["username"], data.validated_data["role"]
        )
        return Response(
            MemberOut(membership).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class MemberDetailView(APIView):
    """Change (PATCH) or remove (DELETE) one membership, under the same rules as adding."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="changeMemberRole",
        description="Change a member's role.",
        request=MemberRoleIn,
        responses={200: MemberOut},
    )
    def patch(self, request: Request, slug: str, username: str) -> Response:
        tenant = _tenant(slug)
        policy.require_member_manager(request.user, tenant)
        data = MemberRoleIn(data=request.data)
        data.is_valid(raise_exception=True)
        membership, _ = policy.set_member_role(
            request.user, tenant, username, data.validated_data["role"], create=False
        )
        return Response(MemberOut(membership).data)

    @extend_schema(
        operation_id="removeMember",
        description="Remove a member from the tenant.",
        request=None,
        responses={204: None},
    )
    def delete(self, request: Request, slug: str, username: str) -> Response:
        policy.remove_member(request.user, _tenant(slug), username)
        return Response(status=status.HTTP_204_NO_CONTENT)


RegistryCommand = _named(
    "RegistryCommand",
    type=serializers.CharField(),
    slice=serializers.CharField(),
    aggregate=serializers.CharField(),
    roles=serializers.ListField(child=serializers.CharField(), help_text="Who may send it."),
    internal=serializers.BooleanField(help_text="Only the platform's sagas send it."),
    description=serializers.CharField(),
    schema=serializers.DictField(help_text="The payload's JSON Schema."),
)
RegistryEvent = _named(
    "RegistryEvent",
    type=serializers.CharField(),
    slice=serializers.CharField(),
    schema_version=serializers.IntegerField(),
    description=serializers.CharField(),
    schema=serializers.DictField(help_text="The payload's JSON Schema (current version)."),
)
RegistryReadRule = _named(
    "RegistryReadRule",
    all_rows=serializers.ListField(child=serializers.CharField()),
    own_rows=serializers.ListField(child=serializers.CharField()),
    own_field=serializers.CharField(allow_null=True),
    redacted=serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
)
RegistryOut = _named(
    "Registry",
    commands=RegistryCommand(many=True),
    events=RegistryEvent(many=True),
    aggregates=_named(
        "RegistryAggregate", type=serializers.CharField(), snapshot_schema_version=serializers.IntegerField()
    )(many=True),
    sagas=_named(
        "RegistrySaga",
        name=serializers.CharField(),
        events=serializers.ListField(child=serializers.CharField()),
        commands=serializers.ListField(child=serializers.CharField()),
    )(many=True),
    roles=serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Role -> the commands it may send.",
    ),
    reads=_named(
        "RegistryReads",
        read_models=serializers.DictField(child=RegistryReadRule()),
        messages=serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            help_text="Slice -> the roles that read its commands and events.",
        ),
    )(),
    projections=_named(
        "RegistryProjection",
        name=serializers.CharField(),
        version=serializers.IntegerField(),
        event_types=serializers.ListField(child=serializers.CharField()),
        read_models=serializers.ListField(child=serializers.CharField()),
    )(many=True),
    tenant_roles=_named("TenantRole", role=serializers.CharField(), label=serializers.CharField())(many=True),
)


class RegistryView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="getRegistry",
        responses=RegistryOut,
        description="Command and event types with their JSON Schemas, sagas, projections, and "
        "who may send and read what.",
    )
    def get(self, request: Request) -> Response:
        body = get_registry().describe()
        read_models = get_read_models()
        body["projections"] = [
            {
                "name": p.name,
                "version": p.version,
                "event_types": sorted(p.event_types),
                "read_models": sorted(n for n, rm in read_models.items() if rm.projection == p.name),
            }
            for p in get_projections()
        ]
        body["tenant_roles"] = [{"role": value, "label": label} for value, label in Role.choices]
        return Response(body)


def ready(request: HttpRequest) -> JsonResponse:
    """Readiness (intent_project/readiness.py): 200 when every check passes, else 503.
    Open like /health/: it names checks and counts, never tenants or hosts."""
    ok, checks = readiness.readiness()
    return JsonResponse(
        {"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503
    )


def health(request: HttpRequest) -> JsonResponse:
    """Database and broker reachability; 200 when both answer, else 503."""
    checks: dict[str, dict[str, Any]] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True}
    except Exception as exc:
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
        client.ping()
        checks["broker"] = {"ok": True}
    except Exception as exc:
        checks["broker"] = {"ok": False, "error": type(exc).__name__}
    ok = all(c["ok"] for c in checks.values())
    return JsonResponse({"status": "ok" if ok else "degraded", "checks": checks}, status=200 if ok else 503)
