"""Dispatch at volume: batch claims, several senders, the speed-to-lead fast lane, and a sped-up clock."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.app import build_services
from bot.core.clock import ManualClock, ScaledClock, utc
from bot.scheduler import WorkScheduler
from bot.settings import Settings
from bot.store.audit import SYSTEM
from bot.store.models import AuditEntry, Enrollment, Lead, Message, OutboxEvent, Touch
from bot.usecases.dispatch import Dispatcher, DispatchReport
from bot.usecases.leads import LeadInput, add_lead
from tests.conftest import NOW
from tests.fakes import consented
from tests.support.content import always_open_business, midday_zone

#: Three texts a minute apart: after three minutes, all three are due at once.
THREE_TEXTS = """\
name: three_texts
description: three texts a minute apart
steps:
  - {id: first, after: 0s, channel: sms, template: default/instant_sms}
  - {id: second, after: 1m, channel: sms, template: default/instant_sms}
  - {id: third, after: 2m, channel: sms, template: default/instant_sms}
"""


@pytest.fixture
def services(engine, clock, sms, email, business_file: Path, tmp_path: Path):
    sequences = tmp_path / "sequences"
    sequences.mkdir()
    (sequences / "three_texts.yml").write_text(THREE_TEXTS)
    business_file.write_text(business_file.read_text().replace("sequence: default", "sequence: three_texts"))
    settings = Settings(
        DATABASE_URL=str(engine.url),
        FOLLOWUP_BUSINESS=business_file,
        FOLLOWUP_SEQUENCES_DIR=sequences,
        PUBLIC_BASE_URL="https://followup.example.com",
    )
    return build_services(settings, engine=engine, clock=clock, sms=sms, email=email, migrate=False)


def phone(index: int) -> str:
    return f"+1312555{1000 + index:04d}"


def enroll(services, count: int, *, first: int = 0) -> list[int]:
    ids = []
    for index in range(first, first + count):
        with services.session_factory.begin() as session:
            ids.append(
                add_lead(
                    session,
                    LeadInput(name=f"Lead {index}", phone=phone(index), sms_consent=consented()),
                    business=services.business,
                    sequence=services.playbooks.get(),
                    now=services.clock.now(),
                    actor=SYSTEM,
                ).lead_id
            )
    return ids


def statuses(services, lead_id: int) -> list[str]:
    with services.session_factory() as session:
        return list(session.scalars(select(Touch.status).where(Touch.lead_id == lead_id).order_by(Touch.position)))


def positions_sent(services, sms, number: str) -> list[int]:
    """The playbook positions of the texts this number received, in the order they were sent."""
    with services.session_factory() as session:
        position = dict(session.execute(select(Touch.id, Touch.position)).all())
    return [position[int(message.reference.removeprefix("touch-"))] for message in sms.sent if message.to == number]


def eventually(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# --- claiming -----------------------------------------------------------------------------------


def test_concurrent_claims_never_hand_the_same_touch_to_two_workers(services):
    enroll(services, 60)
    claimed: list[list[int]] = []
    start = threading.Barrier(4)

    def worker() -> None:
        dispatcher, mine = Dispatcher(services, batch_size=7), []
        start.wait()
        while batch := dispatcher._claim_batch(DispatchReport()):  # noqa: SLF001 - claiming alone is the subject
            mine.extend(item.touch_id for item in batch)
        claimed.append(mine)

    workers = [threading.Thread(target=worker) for _ in range(4)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    every = [touch_id for mine in claimed for touch_id in mine]
    assert len(every) == len(set(every)) == 60  # each first text once; the later ones wait behind it


def test_a_claimed_batch_is_recorded_as_sending_with_its_text_before_any_provider_call(services, sms):
    [lead_id] = enroll(services, 1)
    [item] = Dispatcher(services)._claim_batch(DispatchReport())  # noqa: SLF001 - the claim itself is what this test checks
    with services.session_factory() as session:
        touch = session.get(Touch, item.touch_id)
        assert (touch.status, touch.attempts, touch.body_text) == ("sending", 1, item.outgoing.body)
    assert sms.sent == [] and statuses(services, lead_id) == ["sending", "scheduled", "scheduled"]


def test_a_batch_records_what_one_send_at_a_time_recorded(services, sms, clock):
    [lead_id] = enroll(services, 1)
    clock.advance(timedelta(minutes=3))
    Dispatcher(services, senders=3).run_due()
    with services.session_factory() as session:
        touches = session.scalars(select(Touch).where(Touch.lead_id == lead_id).order_by(Touch.position)).all()
        messages = session.scalars(select(Message).where(Message.lead_id == lead_id).order_by(Message.id)).all()
        notices = session.scalars(
            select(OutboxEvent.kind).where(OutboxEvent.lead_id == lead_id).order_by(OutboxEvent.id)
        ).all()
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.lead_id == lead_id).order_by(AuditEntry.id)
        ).all()
        lead = session.get(Lead, lead_id)
        enrollment = session.scalars(select(Enrollment).where(Enrollment.lead_id == lead_id)).one()
    assert [t.status for t in touches] == ["sent"] * 3
    assert [m.provider_id for m in messages] == [t.provider_id for t in touches]
    assert [m.body for m in messages] == [t.body_text for t in touches] == [m.body for m in sms.sent]
    assert notices[-6:] == ["touch_sent", "lead_changed"] * 3
    assert lead.stage == "contacted" and actions.count("stage_changed") == 1
    assert (enrollment.state, enrollment.state_reason) == ("completed", "every step ran")
    assert actions[-1] == "sequence_completed"


# --- several senders ----------------------------------------------------------------------------


def test_several_senders_send_each_lead_s_texts_once_and_in_order(services, sms, clock):
    jitter = random.Random(6)
    sms.during_send = lambda message: time.sleep(jitter.random() / 500)  # vendor round trips of varying length
    enroll(services, 30)
    dispatcher = Dispatcher(services, senders=4, group_size=2)
    for _ in range(4):
        dispatcher.run_due()
        clock.advance(timedelta(minutes=1))
    dispatcher.close()
    assert len(sms.sent) == 90
    assert all(positions_sent(services, sms, phone(index)) == [0, 1, 2] for index in range(30))


def test_with_several_senders_each_group_is_handed_to_one_sender_thread_and_sent_in_lead_order(services, sms):
    sent_by: dict[str, list[str]] = {}
    sms.during_send = lambda message: (
        sent_by.setdefault(threading.current_thread().name, []).append(message.to),
        time.sleep(0.005),  # a vendor round trip: the other sender thread is free to take texts meanwhile
    )
    enroll(services, 10)
    dispatcher = Dispatcher(services, senders=2, group_size=5)
    dispatcher.run_due()
    dispatcher.close()
    first_group, second_group = [phone(index) for index in range(5)], [phone(index) for index in range(5, 10)]
    assert sorted(sent_by.values()) == [first_group, second_group]


def test_one_slow_vendor_call_holds_up_no_other_lead(services, sms):
    released = threading.Event()
    slow = phone(0)
    sms.during_send = lambda message: released.wait(10) if message.to == slow else None
    slow_lead, *others = enroll(services, 8)
    dispatcher = Dispatcher(services, senders=4, group_size=1)
    running = threading.Thread(target=dispatcher.run_due)
    running.start()
    try:
        assert eventually(lambda: all(statuses(services, lead)[0] == "sent" for lead in others))
        assert statuses(services, slow_lead)[0] == "sending"
    finally:
        released.set()
        running.join(timeout=10)
        dispatcher.close()
    assert statuses(services, slow_lead)[0] == "sent"


def test_as_many_groups_as_senders_are_out_at_once_without_waiting_for_a_database_connection(
    engine, clock, sms, email, business_file, tmp_path
):
    sequences = tmp_path / "sequences"
    sequences.mkdir()
    (sequences / "three_texts.yml").write_text(THREE_TEXTS)
    business_file.write_text(business_file.read_text().replace("sequence: default", "sequence: three_texts"))
    settings = Settings(
        DATABASE_URL=engine.url.render_as_string(hide_password=False),
        FOLLOWUP_SENDERS=24,
        FOLLOWUP_BUSINESS=business_file,
        FOLLOWUP_SEQUENCES_DIR=sequences,
    )
    services = build_services(settings, clock=clock, sms=sms, email=email, migrate=False)  # its own pool
    enroll(services, 24)
    out_at_once = threading.Barrier(24, timeout=10)
    sms.during_send = lambda message: out_at_once.wait()  # noqa: ARG005 - every group holds its connection
    dispatcher = Dispatcher(services, senders=settings.senders, group_size=1)
    dispatcher.run_due()
    dispatcher.close()
    assert sorted(m.to for m in sms.sent) == sorted(phone(index) for index in range(24))


def test_stopping_several_senders_finishes_the_sends_in_flight_and_hands_back_the_rest(services, sms):
    leads = enroll(services, 6)
    dispatcher = Dispatcher(services, senders=2, group_size=1)
    call_provider = dispatcher.delivery.call_provider

    def send_then_stop(item):  # noqa: ANN001, ANN202 - SIGTERM arrives during the first send
        outcome = call_provider(item)
        dispatcher.stop()
        return outcome

    dispatcher.delivery.call_provider = send_then_stop  # type: ignore[method-assign]  # the test stops the dispatcher between the provider call and the record
    dispatcher.run_due()
    dispatcher.close()
    in_flight = len(sms.sent)
    assert 1 <= in_flight <= 2
    firsts = [statuses(services, lead)[0] for lead in leads]
    assert firsts.count("sent") == in_flight and firsts.count("scheduled") == 6 - in_flight
    Dispatcher(services).run_due()
    assert sorted(m.to for m in sms.sent) == sorted(phone(index) for index in range(6))  # each exactly once


def test_a_stop_for_a_lead_later_in_the_group_is_seen_before_its_turn(services, sms):
    first, second = enroll(services, 2)
    stopped = threading.Event()

    def stop_the_second_lead(message) -> None:  # noqa: ANN001 - the STOP lands while the first lead's text is out
        if message.to == phone(0):
            threading.Thread(target=lambda: (opt_out_by_text(services, second), stopped.set())).start()
            assert stopped.wait(5)  # the second lead is not held yet: its STOP is applied at once

    sms.during_send = stop_the_second_lead
    Dispatcher(services, group_size=2).run_due()
    Dispatcher(services).run_due()
    assert [m.to for m in sms.sent] == [phone(0)]
    assert lead_stage(services, second) == "opted_out" and statuses(services, second)[0] == "skipped"


def test_with_several_senders_a_stop_stored_before_a_group_s_turn_is_seen_by_its_check(services, sms):
    leads = enroll(services, 4)
    stopped = threading.Event()

    def stop_the_last_lead(message) -> None:  # noqa: ANN001 - while the first two groups are out
        if message.to == phone(0):
            threading.Thread(target=lambda: (opt_out_by_text(services, leads[3]), stopped.set())).start()
        if message.to in (phone(0), phone(1)):  # no group comes back, so no other starts, before the STOP
            assert stopped.wait(5)

    sms.during_send = stop_the_last_lead
    dispatcher = Dispatcher(services, senders=2, group_size=1)
    dispatcher.run_due()
    dispatcher.close()
    assert sorted(m.to for m in sms.sent) == [phone(0), phone(1), phone(2)]
    assert lead_stage(services, leads[3]) == "opted_out" and statuses(services, leads[3])[0] == "skipped"


def test_a_stop_during_a_lead_s_own_send_waits_for_it_and_then_ends_the_sequence(services, sms):
    [lead_id] = enroll(services, 1)

    def stop_meanwhile(message) -> None:  # noqa: ANN001 - an OutgoingSms, as the fake sender hands it
        threading.Thread(target=opt_out_by_text, args=(services, lead_id)).start()
        time.sleep(0.2)  # the STOP waits: the lead is held from the check until the send is recorded

    sms.during_send = stop_meanwhile
    Dispatcher(services).run_due()
    assert eventually(lambda: lead_stage(services, lead_id) == "opted_out")
    with services.session_factory() as session:
        assert session.scalars(
            select(Message.touch_id).where(Message.lead_id == lead_id, Message.direction == "out")
        ).all()
    assert len(sms.sent) == 1 and statuses(services, lead_id) == ["sent", "cancelled", "cancelled"]


def opt_out_by_text(services, lead_id: int) -> None:
    from bot.core.rules import LeadSignal
    from bot.usecases.lead_actions import receive_message

    with services.lead_locks.hold(lead_id), services.session_factory.begin() as session:
        lead = services.lead_locks.lock_row(session, lead_id)
        receive_message(
            session, services, lead, channel="sms", body="STOP", signal=LeadSignal.OPT_OUT, now=services.clock.now()
        )


def lead_stage(services, lead_id: int) -> str:
    with services.session_factory() as session:
        return session.get(Lead, lead_id).stage


# --- speed to lead ------------------------------------------------------------------------------


def test_a_new_lead_s_instant_text_goes_out_while_a_large_batch_is_in_progress(services, sms):
    backlog = enroll(services, 80)
    newcomer = phone(1000)
    sent_before_newcomer: list[int] = []

    def vendor(message) -> None:  # noqa: ANN001 - an OutgoingSms, as the fake sender hands it
        if message.to == newcomer:
            sent_before_newcomer.append(len(sms.sent))
        else:
            time.sleep(0.03)  # the backlog's round trips: 80 of them keep the batch busy for a while

    sms.during_send = vendor
    scheduler = WorkScheduler(services, poll_seconds=3600, senders=2)
    scheduler.start()  # the first tick starts on the backlog
    try:
        assert eventually(lambda: len(sms.sent) >= 4)
        [lead_id] = enroll(services, 1, first=1000)
        services.send_due_now(lead_id)
        assert eventually(lambda: statuses(services, lead_id)[0] == "sent", seconds=5)
        assert sent_before_newcomer and sent_before_newcomer[0] < len(backlog) - 20
    finally:
        scheduler.shutdown()
    assert not any(status == "sending" for lead in backlog for status in statuses(services, lead))


def test_a_burst_of_new_leads_each_get_their_instant_text_once_claimed_together(services, sms):
    sms.during_send = lambda message: time.sleep(0.01)  # noqa: ARG005 - a vendor round trip
    scheduler = WorkScheduler(services, poll_seconds=3600)
    runs: list[list[int]] = []
    run_leads = scheduler.dispatcher.run_leads
    scheduler.dispatcher.run_leads = lambda lead_ids: runs.append(list(lead_ids)) or run_leads(lead_ids)
    scheduler.start()
    try:
        scheduler.dispatch_once()  # the start's own tick, out of the way
        burst = enroll(services, 40, first=500)
        for lead_id in burst:
            services.send_due_now(lead_id)
        assert eventually(lambda: all(statuses(services, lead_id)[0] == "sent" for lead_id in burst))
    finally:
        scheduler.shutdown()
    assert sorted(message.to for message in sms.sent) == sorted(phone(500 + n) for n in range(40))
    # Leads that arrive while the lane is busy wait together, and are claimed in one go.
    assert sorted(lead_id for run in runs for lead_id in run) == sorted(burst)
    assert len(runs) < len(burst)


def test_a_touch_falling_due_between_ticks_goes_out_when_due_not_at_the_next_tick(engine, sms, email, tmp_path):
    sequences = tmp_path / "sequences"
    sequences.mkdir()
    (sequences / "three_texts.yml").write_text(THREE_TEXTS)
    settings = Settings(
        DATABASE_URL=str(engine.url),
        FOLLOWUP_SEQUENCES_DIR=sequences,
        FOLLOWUP_BUSINESS=always_open_business(tmp_path, sequence="three_texts"),
    )
    services = build_services(settings, engine=engine, clock=ScaledClock(), sms=sms, email=email, migrate=False)
    with services.session_factory.begin() as session:  # a lead for whom it is daytime now
        lead_id = add_lead(
            session,
            LeadInput(name="Ann", phone=phone(0), timezone=midday_zone(services.clock.now()), sms_consent=consented()),
            business=services.business,
            sequence=services.playbooks.get(),
            now=services.clock.now(),
            actor=SYSTEM,
        ).lead_id
    due = services.clock.now() + timedelta(seconds=1.5)
    with services.session_factory.begin() as session:
        session.execute(update(Touch).where(Touch.lead_id == lead_id, Touch.position == 1).values(due_at=due))
    scheduler = WorkScheduler(services, poll_seconds=120)
    scheduler.start()  # its first tick sends the first text; the next tick is two minutes away
    try:
        assert eventually(lambda: statuses(services, lead_id)[:2] == ["sent", "sent"], seconds=15)
    finally:
        scheduler.shutdown()
    with services.session_factory() as session:
        sent_at = session.scalar(select(Touch.sent_at).where(Touch.lead_id == lead_id, Touch.position == 1))
    assert due <= utc(sent_at) < due + timedelta(seconds=10)


def test_without_a_fast_lane_a_new_lead_wakes_the_dispatcher(services):
    woken = []
    services.wakeups.connect(dispatcher=lambda: woken.append(True))
    services.send_due_now(7)
    assert woken == [True]


# --- a sped-up clock ----------------------------------------------------------------------------


class FastClock(ManualClock):
    """The bot's clock at 10,000x: one real second between looks is close to three hours."""

    scale = 10_000.0


def test_with_a_sped_up_clock_a_text_found_one_poll_late_is_sent_not_skipped_as_missed(services, sms):
    services = replace(services, clock=FastClock(NOW))
    [lead_id] = enroll(services, 1)
    services.clock.advance(timedelta(hours=2, minutes=30))  # one 1 s poll later, on this clock
    Dispatcher(services, poll_seconds=1).run_due()
    assert statuses(services, lead_id)[0] == "sent" and sms.sent


def test_a_text_found_hours_after_the_bot_was_down_is_still_skipped_as_missed(services, sms, clock):
    [lead_id] = enroll(services, 1)
    clock.advance(timedelta(hours=2, minutes=30))
    Dispatcher(services, poll_seconds=1).run_due()
    assert statuses(services, lead_id)[0] == "skipped"
