"""`/followup digest`: the week so far, shown only to the person who asked."""

from __future__ import annotations

from tests.handlers.conftest import ALICE, any_database, new_lead


@any_database
def test_digest_previews_the_week_to_the_asker_only(workspace, services):
    new_lead(services)

    workspace.command("digest")

    said = workspace.last_answer()  # an ephemeral answer, valid Block Kit, only the bot's own markup
    assert "Weekly digest: 1 lead in" in said and "(preview)" in said and "Only you see this preview" in said
    assert "Still waiting for a person" in said
    assert not workspace.slack.messages("C0LEADS") or all(
        "Weekly digest" not in m.get("text", "") for m in workspace.slack.messages("C0LEADS")
    )


@any_database
def test_digest_takes_no_arguments(workspace):
    workspace.command("digest now please", user=ALICE)

    assert "takes nothing more" in workspace.last_answer()
