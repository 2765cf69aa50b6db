"""What a plain DRF endpoint accepting a command costs: token authentication (knox, the
tokens the product issues, looked up on every request: no cache), a small serializer and
one INSERT, answered 202. Nothing of the product's pipeline: no registry, no payload
schema, no idempotency, no wake-up."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.db import connection
from knox.auth import TokenAuthentication
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

TABLE = "bench_ceiling_command"
CREATE_TABLE = (
    f"CREATE TABLE IF NOT EXISTS public.{TABLE} (id uuid PRIMARY KEY, type text NOT NULL, "
    "payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
)
DROP_TABLE = f"DROP TABLE IF EXISTS public.{TABLE}"


class BareCommandSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField(required=False)
    type = serializers.CharField(max_length=100)
    payload = serializers.DictField()


class BareCommandView(APIView):
    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]

    def post(self, request: Request) -> Response:
        serializer = BareCommandSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        command_id = data.get("id") or uuid.uuid4()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO public.{TABLE} (id, type, payload) VALUES (%s, %s, %s)",
                [command_id, data["type"], json.dumps(data["payload"])],
            )
        return Response({"id": str(command_id), "status": "pending"}, status=status.HTTP_202_ACCEPTED)
