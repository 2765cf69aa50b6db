"""Tenant roles. The role a user acts with comes from their Membership, never from a request."""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Tenant admin"  # manages members; may send every command
    DEVELOPER = "developer", "Developer"
    TESTER = "tester", "Tester"
    SYSTEM = "system", "System"
    BANKER = "banker", "Banker"  # opens and closes accounts, moves money
    TELLER = "teller", "Teller"  # deposits, withdrawals, transfers
    VIEWER = "viewer", "Viewer"  # reads only
