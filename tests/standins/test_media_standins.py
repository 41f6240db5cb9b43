"""The stand-ins' media flows in the vendors' wire formats: Slack's external upload, Twilio's MMS media URLs."""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.channels.twilio_sms import TwilioSmsSender
from bot.core.ports import MediaFetchError
from bot.standins.slack_api import SlackApiStandin
from bot.standins.twilio_api import TwilioApiStandin

TOKEN = "xoxb-media"
SID, AUTH = "AC" + "2" * 32, "media-token"


@pytest.fixture
def slack():
    with SlackApiStandin(TOKEN) as standin:
        yield standin


def test_files_upload_v2_runs_slacks_three_steps_and_shares_the_file_in_the_thread(slack):
    client = WebClient(token=TOKEN, base_url=slack.url + "/api/")
    answer = client.files_upload_v2(
        channel="C0LEADS",
        thread_ts="1.000100",
        content=b"\x89PNG-bytes",
        filename="card.png",
        title="Insurance card",
        initial_comment="from the lead",
    )
    assert answer["ok"] and answer["file"]["title"] == "Insurance card"
    [shared] = slack.files.values()
    assert (shared["content"], shared["channel"], shared["thread_ts"]) == (b"\x89PNG-bytes", "C0LEADS", "1.000100")
    [message] = slack.messages("C0LEADS")
    assert message["thread_ts"] == "1.000100" and message["text"] == "from the lead"
    assert [f["id"] for f in message["files"]] == [shared["id"]]
    assert [len(slack.calls(m)) for m in ("files.getUploadURLExternal", "files.completeUploadExternal")] == [1, 1]


def test_completing_an_upload_that_never_arrived_is_refused_as_slack_does(slack):
    client = WebClient(token=TOKEN, base_url=slack.url + "/api/")
    started = client.files_getUploadURLExternal(filename="card.png", length=10)
    with pytest.raises(SlackApiError) as refused:
        client.files_completeUploadExternal(files=[{"id": started["file_id"], "title": "x"}], channel_id="C0LEADS")
    assert refused.value.response["error"] == "file_not_found"
    with pytest.raises(SlackApiError) as bad:
        client.api_call("files.getUploadURLExternal", params={"filename": "card.png"})
    assert bad.value.response["error"] == "invalid_arguments"


def test_twilio_media_needs_the_accounts_credentials_and_redirects_to_the_content():
    with TwilioApiStandin(SID, AUTH) as twilio:
        received: list[dict] = []

        class Bot(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers["Content-Length"])
                received.append(dict(urllib.parse.parse_qsl(self.rfile.read(length).decode())))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):  # noqa: ANN002 - http.server's log_message signature, silenced
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Bot)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/twilio/sms"
            assert (
                twilio.inbound_mms(url, "+13125550142", "", to="+13125550100", media=[(b"JPEG", "image/jpeg")]) == 200
            )
        finally:
            server.shutdown()
        [form] = received
        assert form["NumMedia"] == "1" and form["MediaContentType0"] == "image/jpeg"
        assert form["MessageSid"].startswith("MM") and f"/Messages/{form['MessageSid']}/Media/ME" in form["MediaUrl0"]
        with pytest.raises(urllib.error.HTTPError) as unauthorised:
            urllib.request.urlopen(form["MediaUrl0"], timeout=5)
        assert unauthorised.value.code == 401

        sender = TwilioSmsSender(SID, AUTH, from_number="+13125550100", api_url=twilio.url, timeout=2)
        fetched = sender.fetch_media(form["MediaUrl0"])
        assert (fetched.content, fetched.content_type) == (b"JPEG", "image/jpeg")
        with pytest.raises(MediaFetchError) as elsewhere:
            sender.fetch_media("https://evil.example/2010-04-01/Accounts/" + SID + "/Messages/MM1/Media/ME1")
        assert not elsewhere.value.transient
