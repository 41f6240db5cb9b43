"""Every notice carries one typed payload: checked when it is queued, read back as that type by the poster."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

import pytest

from bot.store.models import OutboxEvent
from bot.store.outbox import (
    PAYLOADS,
    DecisionNote,
    LeadErased,
    Notice,
    TouchSent,
    payload_of,
    publish,
    stored_payload,
)

AT = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def test_every_kind_of_notice_has_its_own_frozen_payload_type():
    assert set(PAYLOADS) == set(Notice)
    assert len(set(PAYLOADS.values())) == len(Notice)
    for kind in PAYLOADS.values():
        assert kind.__dataclass_params__.frozen, kind  # type: ignore[attr-defined]  # every dataclass has it


def test_a_misspelt_or_missing_field_fails_when_the_notice_is_queued_not_later_in_the_poster():
    with pytest.raises(TypeError):
        stored_payload(Notice.TOUCH_SENT, {"touchid": 3})
    with pytest.raises(TypeError):
        stored_payload(Notice.DECISION, {"alert_team": True})  # a decision without its text


def test_a_queued_notice_is_read_back_as_its_type(services):
    with services.session_factory.begin() as session:
        queue_two(session)
    with services.session_factory() as session:
        decision, sent = session.query(OutboxEvent).order_by(OutboxEvent.id).all()
        assert payload_of(decision) == DecisionNote(text="paused: they replied", alert_team=True, actor="followup")
        assert payload_of(sent) == TouchSent(touch_id=7)


def queue_two(session) -> None:
    publish(
        session,
        Notice.DECISION,
        lead_id=None,
        at=AT,
        business="main",
        text="paused: they replied",
        alert_team=True,
        actor="followup",
    )
    publish(session, Notice.TOUCH_SENT, lead_id=None, at=AT, business="main", touch_id=7)


def test_an_event_queued_by_another_release_is_read_without_the_fields_this_one_does_not_know():
    event = OutboxEvent(kind=Notice.TOUCH_SENT, payload={"touch_id": 7, "added_later": "x"}, created_at=AT)
    assert payload_of(event) == TouchSent(touch_id=7)


def test_the_erasure_s_progress_survives_being_stored_as_json():
    erased = LeadErased(
        channel="C1",
        card_ts="1.0",
        copies=({"channel": "C2", "ts": "2.0"},),
        posts=(("C1", "1.0"), ("C2", "2.0")),
        edited=1,
    )
    stored = stored_payload(Notice.LEAD_ERASED, {f.name: getattr(erased, f.name) for f in fields(erased)})
    as_json = {
        "channel": "C1",
        "card_ts": "1.0",
        "copies": [{"channel": "C2", "ts": "2.0"}],
        "posts": [["C1", "1.0"], ["C2", "2.0"]],
        "edited": 1,
    }
    assert {
        key: list(map(list, value)) if key == "posts" else list(value) if key == "copies" else value
        for key, value in stored.items()
    } == as_json
    assert payload_of(OutboxEvent(kind=Notice.LEAD_ERASED, payload=as_json, created_at=AT)) == erased
