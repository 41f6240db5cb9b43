"""The per-lead locks: one decider at a time per lead, and a batch never holds a lead it may not decide about."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, select

from bot.store.audit import SYSTEM
from bot.store.models import Lead
from bot.usecases.leads import LeadInput, add_lead
from tests.fakes import WEB_FORM_CONSENT


def new_lead(services, phone: str) -> int:
    data = LeadInput.parse({"name": f"Lead {phone[-2:]}", "phone": phone, **WEB_FORM_CONSENT})
    with services.session_factory.begin() as session:
        return add_lead(
            session,
            data,
            business=services.business,
            sequence=services.playbooks.get(),
            now=services.clock.now(),
            actor=SYSTEM,
        ).lead_id


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_lead_another_process_holds_is_left_out_of_the_batch_and_free_for_this_process_at_once(services):
    mine, theirs = new_lead(services, "+13125550101"), new_lead(services, "+13125550102")
    other_process = create_engine(services.session_factory.kw["bind"].url)
    with other_process.connect() as connection, connection.begin():
        connection.execute(select(Lead.id).where(Lead.id == theirs).with_for_update())
        with services.session_factory.begin() as session:
            with services.lead_locks.hold_free(session, [mine, theirs]) as free:
                assert free == {mine}
                # Another thread of this process may take the lead the batch could not have.
                got_it = threading.Event()

                def take_theirs() -> None:
                    with services.lead_locks.hold(theirs):
                        got_it.set()

                worker = threading.Thread(target=take_theirs)
                worker.start()
                worker.join(timeout=5)
                assert got_it.is_set(), "the batch kept the thread lock of a lead it could not decide about"
    other_process.dispose()


def test_a_lead_held_by_another_thread_is_left_out_of_the_batch(services):
    mine, busy = new_lead(services, "+13125550103"), new_lead(services, "+13125550104")
    holding, release = threading.Event(), threading.Event()

    def hold_busy() -> None:
        with services.lead_locks.hold(busy):
            holding.set()
            release.wait(5)

    worker = threading.Thread(target=hold_busy)
    worker.start()
    assert holding.wait(5)
    try:
        with services.session_factory.begin() as session, services.lead_locks.hold_free(session, [mine, busy]) as free:
            assert free == {mine}
    finally:
        release.set()
        worker.join(5)
