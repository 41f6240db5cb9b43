"""At any clock speed, a Slack post in the sandbox shows the time of the event it is about.

The poster takes posts out at Slack's pace, and at a day a second one second behind is a day
late: stamping a post with when Slack took it put a new lead's card a simulated day after the lead.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from bot.core.clock import utc
from bot.sandbox.runner import Sandbox
from bot.store.models import Lead, Message
from tests.fakes import WEB_FORM_CONSENT
from tests.sandbox.conftest import START, chiropractic
from tests.sandbox.test_runner import wait_for


def test_at_a_day_a_second_a_held_back_card_and_its_first_entry_show_when_they_happened(tmp_path: Path) -> None:
    with Sandbox(port=0, directory=tmp_path, start_at=START) as sandbox:
        # Slack holds the first post back two seconds: two simulated days at this speed.
        sandbox.slack.fail_next("chat.postMessage", 429, retry_after=2)
        sandbox.set_speed(86400)
        sandbox.actions.submit_lead(
            {"name": "Dana Lee", "phone": "+13125550101", "message": "Neck pain", **WEB_FORM_CONSENT}
        )

        def first_entry_posted() -> bool:
            with sandbox.services.session_factory() as session:
                return bool(
                    session.query(Message).filter(Message.direction == "out", Message.slack_ts.is_not(None)).count()
                )

        wait_for(first_entry_posted, timeout=30)
        sandbox.set_speed(1)
        with sandbox.services.session_factory() as session:
            lead = session.query(Lead).one()
            text = session.query(Message).filter(Message.direction == "out").order_by(Message.id).first()
            card_ts, created_at = lead.slack_ts, utc(lead.created_at)
            text_ts, texted_at = text.slack_ts, utc(text.created_at)
        posted_at = sandbox.clock.now()
        stamps = dict(sandbox.world.sim_times)

    assert posted_at - created_at > timedelta(days=1)  # the posts went out long after, in simulated time
    assert stamps[card_ts] == pytest.approx(created_at.timestamp(), abs=1)
    # The instant text's entry: when the text went, give or take the poster's own notice of it.
    assert abs(stamps[text_ts] - texted_at.timestamp()) < timedelta(hours=1).total_seconds()
    assert [m["ts"] for m in sandbox.slack.messages(chiropractic(sandbox).slack.channel)][:1] == [card_ts]


def test_a_file_shared_in_the_channel_shows_the_simulated_time_it_was_shared(tmp_path: Path) -> None:
    from slack_sdk import WebClient

    from bot.sandbox.runner import SLACK_BOT_TOKEN

    with Sandbox(port=0, directory=tmp_path, start_at=START) as sandbox:
        client = WebClient(token=SLACK_BOT_TOKEN, base_url=sandbox.slack.url + "/api/")
        leads = chiropractic(sandbox).slack.channel
        before = sandbox.clock.now().timestamp()
        client.files_upload_v2(
            channel=leads,
            content=b"\x89PNG chart",
            filename="digest.png",
            title="This week",
            initial_comment="The week in leads",
        )
        [shared] = [m for m in sandbox.slack.messages(leads) if m.get("files")]
        # The sandbox hears of each Slack call once the stand-in has answered it: wait for that.
        wait_for(lambda: shared["ts"] in sandbox.world.sim_times, timeout=10)
        after = sandbox.clock.now().timestamp()
        stamps = dict(sandbox.world.sim_times)

    assert before <= stamps[shared["ts"]] <= after
    assert abs(stamps[shared["ts"]] - time.time()) > 86400  # the sandbox's day, not the wall clock's
