"""Start-up checks for projections and sagas: unique names, known event types, exposed models."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.db import models

from commands_app.registry import get_registry
from intent_project.tenants.roles import Role
from projections_app.registry import get_projections, get_read_models, get_sagas


@checks.register()
def projections_are_consistent(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    known_events = get_registry().events
    seen: set[str] = set()
    for projection in get_projections():
        if projection.name in seen:
            errors.append(
                checks.Error(
                    f"projection '{projection.name}' is declared twice",
                    id="intent.E101",
                    hint="Projection names are the checkpoint keys; they must be unique.",
                )
            )
        seen.add(projection.name)
        for event_type in projection.event_types:
            if event_type not in known_events:
                errors.append(
                    checks.Error(
                        f"projection '{projection.name}' handles unknown event type '{event_type}'",
                        id="intent.E102",
                        hint="Register the event in a slice or drop the handler.",
                    )
                )
    for saga in get_sagas():
        if saga.name in seen:
            errors.append(
                checks.Error(
                    f"saga '{saga.name}' has the name of a projection",
                    id="intent.E104",
                    hint="Sagas and projections share the checkpoint table; rename the saga.",
                )
            )
    for name, read_model in get_read_models().items():
        if read_model.projection not in seen:
            errors.append(
                checks.Error(
                    f"read model '{name}' names unknown projection '{read_model.projection}'",
                    id="intent.E103",
                    hint="Point it at a projection declared in PROJECTIONS.",
                )
            )
    return errors


@checks.register()
def read_models_are_declared(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every exposed read model has a read rule in some slice's READS, and every rule names
    real read models, fields and roles (commands_app/domain/reads.py)."""
    found: list[checks.CheckMessage] = []
    read_models = get_read_models()
    rules = get_registry().read_rules
    roles = set(Role.values)
    for name in sorted(set(read_models) - set(rules)):
        found.append(
            checks.Warning(
                f"read model '{name}' has no read declaration: no role but the tenant admin reads it",
                id="intent.W105",
                hint="Declare it in its slice's READS (access.py) with ReadRule(all_rows=..., own_rows=...).",
            )
        )
    for name, rule in sorted(rules.items()):
        read_model = read_models.get(name)
        if read_model is None:
            found.append(
                checks.Error(
                    f"READS declares unknown read model '{name}'",
                    id="intent.E106",
                    hint="Use a name from a projector module's READ_MODELS.",
                )
            )
            continue
        fields = {f.name for f in read_model.model._meta.concrete_fields}
        named = {rule.own_field} if rule.own_field else set()
        for hidden in rule.redacted.values():
            named |= hidden
        for field_name in sorted(named - fields):
            found.append(
                checks.Error(
                    f"read rule of '{name}' names unknown field '{field_name}'",
                    id="intent.E107",
                    hint=f"Fields of {read_model.model.__name__}: {', '.join(sorted(fields))}.",
                )
            )
        ordering = {f.lstrip("-") for f in read_model.ordering or (read_model.model._meta.pk.name,)}
        for role, hidden in sorted(rule.redacted.items()):
            for field_name in sorted(hidden & ordering):
                found.append(
                    checks.Error(
                        f"read model '{name}' is ordered by '{field_name}', which '{role}' may not see",
                        id="intent.E109",
                        hint="The API's cursor carries the ordering values; order by a field every reader sees.",
                    )
                )
        for role in sorted((rule.all_rows | rule.own_rows | set(rule.redacted)) - roles):
            found.append(
                checks.Error(
                    f"read rule of '{name}' names unknown role '{role}'",
                    id="intent.E108",
                    hint=f"Roles: {', '.join(sorted(roles))}.",
                )
            )
    for slice_name, readers in sorted(get_registry().message_readers.items()):
        for role in sorted(readers - roles):
            found.append(
                checks.Error(
                    f"READS of slice '{slice_name}' grants its messages to unknown role '{role}'",
                    id="intent.E108",
                    hint=f"Roles: {', '.join(sorted(roles))}.",
                )
            )
    return found


@checks.register()
def read_model_fields_exist(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A read model's filter, money, currency and list fields are fields of its model, and money
    is held in integers (minor units): the API and the admin build filters and columns
    from these names."""
    found: list[checks.CheckMessage] = []
    for name, read_model in sorted(get_read_models().items()):
        fields = {f.name: f for f in read_model.model._meta.concrete_fields}
        named = [*read_model.filter_fields, *read_model.money_fields, *read_model.list_fields]
        if read_model.money_fields:
            named.append(read_model.currency_field)
        for field_name in named:
            if field_name not in fields:
                found.append(
                    checks.Error(
                        f"read model '{name}' names unknown field '{field_name}'",
                        id="intent.E110",
                        hint=f"Fields of {read_model.model.__name__}: {', '.join(sorted(fields))}.",
                    )
                )
        for field_name in read_model.money_fields:
            if field_name in fields and not isinstance(fields[field_name], models.IntegerField):
                found.append(
                    checks.Error(
                        f"money field '{field_name}' of read model '{name}' is not an integer field",
                        id="intent.E111",
                        hint="Keep money as an integer of minor units (BigIntegerField), never a float.",
                    )
                )
    return found
