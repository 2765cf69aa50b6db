"""Sealing personal data per subject: plain Python, no database (commands_app/domain/personal.py)."""

from __future__ import annotations

from typing import ClassVar

import pytest
from pydantic import Field

from commands_app.domain import personal
from commands_app.domain.messages import DomainEvent
from commands_app.domain.personal import PLACEHOLDER, PersonalData, SubjectErased, UnreadableSeal
from commands_app.domain.registry import Registry, Slice
from commands_app.registry import get_registry

KEY = bytes(range(32))


def test_a_sealed_value_opens_with_its_subjects_key_and_shows_nothing_in_clear():
    sealed = personal.seal(KEY, "acc-1", "owner", "Ann Example")
    assert "Ann" not in str(sealed) and sealed["subject"] == "acc-1"
    assert personal.open_sealed(KEY, sealed, "owner") == "Ann Example"
    # A fresh nonce each time: the same name does not seal to the same text.
    assert personal.seal(KEY, "acc-1", "owner", "Ann Example")["sealed"] != sealed["sealed"]


def test_without_its_key_a_sealed_value_reads_as_the_placeholder():
    assert personal.open_sealed(None, personal.seal(KEY, "acc-1", "owner", "Ann"), "owner") == PLACEHOLDER


def test_a_sealed_value_moved_to_another_subject_or_field_does_not_open():
    sealed = personal.seal(KEY, "acc-1", "owner", "Ann")
    with pytest.raises(UnreadableSeal):
        personal.open_sealed(KEY, {**sealed, "subject": "acc-2"}, "owner")
    with pytest.raises(UnreadableSeal):
        personal.open_sealed(KEY, sealed, "nickname")


def test_an_erased_subject_takes_the_placeholder_but_refuses_new_personal_data():
    erased = personal.seal(None, "acc-1", "owner", PLACEHOLDER)
    assert erased == {"$personal": 1, "subject": "acc-1"}
    assert personal.open_sealed(KEY, erased, "owner") == PLACEHOLDER
    with pytest.raises(SubjectErased):
        personal.seal(None, "acc-1", "owner", "Ann")


def test_the_fingerprint_of_a_value_needs_the_key():
    one = personal.fingerprint(KEY, "acc-1", "owner", "Ann")
    assert one == personal.fingerprint(KEY, "acc-1", "owner", "Ann")
    assert one != personal.fingerprint(bytes(32), "acc-1", "owner", "Ann")
    assert one != personal.fingerprint(KEY, "acc-1", "owner", "Ben")


def test_banking_declares_the_owner_personal_in_commands_events_and_snapshots():
    registry = get_registry()
    assert registry.personal_commands["openAccount"].fields == ("owner",)
    assert registry.personal_events["accountOpened"].fields == ("owner",)
    assert registry.personal_state["account"].fields == ("owner",)
    assert not registry.problems()


class NicknameSet(DomainEvent):
    TYPE: ClassVar[str] = "nicknameSet"
    nickname: str = Field(max_length=4)
    age: int
    person_id: str


def _problems(personal_data: dict) -> list[str]:
    sl = Slice(
        name="people", aggregates=(), command_handlers={}, events=(NicknameSet,), access={}, personal=personal_data
    )
    return [check_id for check_id, _ in Registry([sl]).problems() if check_id != "intent.W020"]


def test_the_registry_refuses_personal_fields_that_are_missing_or_cannot_hold_the_placeholder():
    assert _problems({NicknameSet: PersonalData(fields=("nickname",), subject="person_id")}) == ["intent.E024"]
    assert _problems({NicknameSet: PersonalData(fields=("age",), subject="person_id")}) == ["intent.E024"]
    assert _problems({NicknameSet: PersonalData(fields=("name",))}) == ["intent.E021"]


def test_a_subject_field_is_stored_by_its_wire_name():
    sl = Slice(
        name="people",
        aggregates=(),
        command_handlers={},
        events=(NicknameSet,),
        access={},
        personal={NicknameSet: PersonalData(fields=("age",), subject="person_id")},
    )
    spec = Registry([sl]).personal_events["nicknameSet"]
    assert spec == PersonalData(fields=("age",), subject="personId")
    assert personal.subject_of(spec, {"personId": "p-7", "age": 3}, None) == "p-7"
