"""Public (non-tenant) API: tokens, users, tenants, memberships, registry, health."""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection
from django.http import HttpRequest, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from commands_app.registry import get_registry
from intent_project.api.errors import ApiError
from intent_project.api.permissions import IsStaff
from intent_project.tenancy import use_public_schema
from intent_project.tenants.models import Membership, Tenant, validate_slug
from intent_project.tenants.roles import Role
from intent_project.tenants.services import TenantExists, create_tenant, role_in, set_membership
from projections_app.registry import get_projections, get_read_models

User = get_user_model()


class TokenIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, style={"input_type": "password"})


class TokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(request=TokenIn, responses=inline_serializer("Token", {"token": serializers.CharField()}))
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
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class UserIn(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]{1,150}$", max_length=150)
    password = serializers.CharField(max_length=256, write_only=True)
    email = serializers.EmailField(required=False, allow_blank=True)
    is_staff = serializers.BooleanField(required=False, default=False)

    def validate_username(self, value: str) -> str:
        if User.objects.filter(username=value).exists():
            raise ApiError(409, "user_exists", f"User '{value}' already exists.")
        return value

    def validate_password(self, value: str) -> str:
        try:
            validate_password(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(list(exc.messages)) from None
        return value


class UserOut(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField()
    is_staff = serializers.BooleanField()


class UserListView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(request=UserIn, responses={201: UserOut})
    def post(self, request: Request) -> Response:
        data = UserIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        if fields.get("is_staff") and not request.user.is_superuser:
            raise ApiError(403, "superuser_only", "Only superusers may create staff users.")
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

    @extend_schema(responses=TenantOut(many=True))
    def get(self, request: Request) -> Response:
        tenants = Tenant.objects.exclude(schema_name="public")
        if not request.user.is_staff:
            tenants = tenants.filter(memberships__user=request.user)
        return Response(TenantOut(tenants, many=True, context={"request": request}).data)

    @extend_schema(request=TenantIn, responses={201: TenantOut})
    def post(self, request: Request) -> Response:
        if not request.user.is_staff:
            raise ApiError(403, "staff_only", "Only staff users may create tenants.")
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


class MemberListView(APIView):
    permission_classes = [IsAuthenticated]

    def _tenant(self, request: Request, slug: str) -> Tenant:
        tenant = Tenant.objects.exclude(schema_name="public").filter(slug=slug).first()
        if tenant is None:
            raise ApiError(404, "tenant_not_found", f"There is no tenant '{slug[:60]}'.")
        if not (request.user.is_staff or role_in(request.user, tenant) == Role.ADMIN):
            raise ApiError(403, "permission_denied", "Only staff or this tenant's admins manage its members.")
        return tenant

    @extend_schema(responses=MemberOut(many=True))
    def get(self, request: Request, slug: str) -> Response:
        tenant = self._tenant(request, slug)
        return Response(
            MemberOut(Membership.objects.filter(tenant=tenant).select_related("user"), many=True).data
        )

    @extend_schema(request=MemberIn, responses={201: MemberOut, 200: MemberOut})
    def post(self, request: Request, slug: str) -> Response:
        tenant = self._tenant(request, slug)
        data = MemberIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = User.objects.filter(username=data.validated_data["username"]).first()
        if user is None:
            raise ApiError(
                400,
                "validation_error",
                "No such user.",
                {"fields": {"username": ["No such user."]}},
            )
        membership, created = set_membership(user, tenant, data.validated_data["role"])
        return Response(
            MemberOut(membership).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class RegistryView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        responses=OpenApiTypes.OBJECT, description="Command and event types with their JSON Schemas."
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
