"""A local stand-in for the part of Slack's Web API that followup calls."""

from __future__ import annotations

import copy
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import cycle
from typing import Any

from bot.standins.server import Fault, RecordedRequest, Reply, StandinServer

#: Fields whose form-encoded value is JSON text (slack_sdk sends them so for non-chat methods).
_JSON_FIELDS = ("blocks", "attachments", "view", "metadata", "files")
#: Where files.getUploadURLExternal tells the client to send a file's bytes (files.slack.com in Slack).
_UPLOAD_PATH = "/upload/v1/"


def slack_error(error: str, *, status: int = 200, headers: Mapping[str, str] | None = None, **extra: Any) -> Reply:
    """Answer as Slack does when a method fails: HTTP 200 with ok false, except rate limits."""
    return Reply.json(status, {"ok": False, "error": error, **extra}, headers)


class SlackApiStandin(StandinServer):
    """Slack's Web API for one workspace and one bot.

    Point `slack_sdk.WebClient(token=bot_token, base_url=standin.url + "/api/")` at it. Route
    kinds for `fail_next` are method names ("chat.postMessage", ...). With `channels` given,
    other channels are `channel_not_found`; a mapping gives their names.
    """

    def __init__(
        self,
        bot_token: str,
        team_id: str = "T0SANDBOX",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        *,
        app_token: str | None = None,
        team_name: str = "Sandbox",
        channels: Mapping[str, str] | Iterable[str] | None = None,
    ) -> None:
        super().__init__()
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.team_name = team_name
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = "A0SANDBOX"
        if channels is None:
            self._channels: dict[str, str] | None = None
        elif isinstance(channels, Mapping):
            self._channels = dict(channels)
        else:
            self._channels = {channel: channel.lower() for channel in channels}
        self._store_lock = threading.Lock()
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._views: dict[str, dict[str, Any]] = {}
        self._home_views: dict[str, dict[str, Any]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._members: dict[str, list[str]] = {}
        self._user_groups: dict[str, list[str]] = {}
        #: Direct-message channels with the bot, by channel id: the person at the other end.
        self._dms: dict[str, str] = {}
        #: Channels the bot is not a member of, and channels archived (conversations.info/list say so).
        self._without_bot: set[str] = set()
        self._archived: set[str] = set()
        #: Files by id: announced (getUploadURLExternal), their bytes (the upload URL), then shared.
        self._files: dict[str, dict[str, Any]] = {}
        self._last_ts = 0
        #: While Slack is down, every request takes the next of these faults in turn.
        self._outage: Iterator[Fault] | None = None
        self._methods: dict[str, Callable[[dict[str, Any]], Reply]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update_message,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._permalink,
            "views.open": self._open_view,
            "views.push": self._open_view,
            "views.update": self._update_view,
            "views.publish": self._publish_view,
            "conversations.info": self._conversation_info,
            "conversations.list": self._conversation_list,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "users.info": self._user_info,
            "conversations.members": self._conversation_members,
            "users.conversations": self._user_conversations,
            "usergroups.users.list": self._user_group_users,
            "apps.connections.open": self._open_connection,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }
        self.routes = frozenset(self._methods) | {"files.upload"}

    # -- store reads for assertions --------------------------------------------------------

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Every message the bot posted in a channel, thread replies included, oldest first."""
        with self._store_lock:
            return copy.deepcopy(self._messages.get(channel, []))

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """A thread's parent then its replies, as conversations.replies lists them."""
        with self._store_lock:
            return copy.deepcopy(
                [m for m in self._messages.get(channel, []) if m["ts"] == ts or m.get("thread_ts") == ts]
            )

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        with self._store_lock:
            return copy.deepcopy(self._ephemerals)

    @property
    def views(self) -> dict[str, dict[str, Any]]:
        """Modals opened or pushed, by view id."""
        with self._store_lock:
            return copy.deepcopy(self._views)

    @property
    def home_views(self) -> dict[str, dict[str, Any]]:
        """The Home tab last published for each user id."""
        with self._store_lock:
            return copy.deepcopy(self._home_views)

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """Files uploaded through the current flow, by id: name, title, bytes, and where they were shared."""
        with self._store_lock:
            return copy.deepcopy(self._files)

    def calls(self, method: str) -> list[dict[str, Any]]:
        """The arguments of every call to a method, oldest first, failed ones included."""
        return [_arguments(r) for r in self.requests_for(method)]

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        real_name: str | None = None,
        email: str | None = None,
        tz: str = "America/New_York",
        tz_offset: int = -18000,
        team_id: str | None = None,
        enterprise_id: str | None = None,
        guest: str | None = None,
    ) -> None:
        """Make users.info know a person (unknown ids get a made-up profile in this workspace).

        `team_id` other than the workspace's is someone from another organisation (Slack Connect);
        `guest` is "multi-channel" (is_restricted) or "single-channel" (is_ultra_restricted).
        """
        user = _user(team_id or self.team_id, user_id, name, real_name or name, email, tz, tz_offset)
        if guest not in (None, "multi-channel", "single-channel"):
            raise ValueError(f"guest is 'multi-channel' or 'single-channel', not {guest!r}")
        user["is_restricted"] = guest is not None
        user["is_ultra_restricted"] = guest == "single-channel"
        if enterprise_id:
            user["enterprise_user"] = {
                "id": user_id,
                "enterprise_id": enterprise_id,
                "enterprise_name": enterprise_id,
                "is_admin": False,
                "is_owner": False,
                "teams": [user["team_id"]],
            }
        with self._store_lock:
            self._users[user_id] = user

    def join(self, channel: str, *user_ids: str) -> None:
        """Put people in a channel, as conversations.members lists them."""
        with self._store_lock:
            members = self._members.setdefault(channel, [])
            members.extend(user for user in user_ids if user not in members)

    def leave(self, channel: str, *user_ids: str) -> None:
        with self._store_lock:
            self._members[channel] = [u for u in self._members.get(channel, []) if u not in user_ids]

    def remove_bot(self, channel: str) -> None:
        """The bot is no longer a member of the channel (someone removed it, or it was never invited)."""
        with self._store_lock:
            self._without_bot.add(channel)

    def archive(self, channel: str) -> None:
        with self._store_lock:
            self._archived.add(channel)

    def add_user_group(self, group_id: str, *user_ids: str) -> None:
        """A user group (S…) with these people, as usergroups.users.list lists them."""
        with self._store_lock:
            self._user_groups[group_id] = list(user_ids)

    def open_dm(self, user_id: str) -> str:
        """The id of the person's direct-message channel with the bot (conversations.info names them)."""
        channel = "D" + user_id.removeprefix("U").removeprefix("W")[:9].ljust(9, "0")
        with self._store_lock:
            self._dms[channel] = user_id
        return channel

    # -- outages ---------------------------------------------------------------------------

    def go_down(self, *faults: Fault) -> None:
        """Fail every request, taking `faults` in turn, until `come_back()`: an outage, as long as a test likes.

        Each fault should leave the work undone (an error status, a dropped connection, or a delay
        with an error status), as a Slack that is down does; queued `fail_next` faults wait for the end.
        """
        if not faults:
            raise ValueError("an outage needs at least one fault")
        with self._store_lock:
            self._outage = cycle(faults)

    def come_back(self) -> None:
        """End the outage: requests are answered normally again."""
        with self._store_lock:
            self._outage = None

    def _take_fault(self, route: str | None) -> Fault | None:
        with self._store_lock:
            if self._outage is not None:
                return next(self._outage)
        return super()._take_fault(route)

    # -- the API ---------------------------------------------------------------------------

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        if method == "POST" and path.startswith(_UPLOAD_PATH):
            return "file.bytes", {"file_id": path.removeprefix(_UPLOAD_PATH)}
        if method not in ("GET", "POST") or not path.startswith("/api/"):
            return None
        name = path.removeprefix("/api/")
        # Unknown method names still reach handle() so they answer unknown_method like Slack.
        return (name if name in self._methods else "unknown"), {"method": name}

    def fault_reply(self, route: str | None, fault: Fault) -> Reply:
        status = fault.status if fault.status is not None else 200
        headers = {}
        if status == 429:
            headers["Retry-After"] = str(int(fault.retry_after if fault.retry_after is not None else 1))
        if fault.body is not None:
            return Reply.json(status, fault.body, headers)
        error = "ratelimited" if status == 429 else "internal_error" if status >= 500 else "invalid_request"
        return slack_error(error, status=status, headers=headers)

    def handle(self, route: str, params: dict[str, str], request: RecordedRequest) -> Reply:
        if route == "file.bytes":
            return self._receive_file_bytes(params["file_id"], request.body)
        if request.data is None:
            is_json = request.headers.get("Content-Type", "").lower().startswith("application/json")
            return slack_error("invalid_json" if is_json else "invalid_form_data")
        args = _arguments(request)
        token = _token(request, args)
        if route == "unknown":
            return slack_error("unknown_method", req_method=params["method"])
        if not token:
            return slack_error("not_authed")
        if route == "apps.connections.open":
            if _same_secret(token, self.bot_token):
                return slack_error("not_allowed_token_type")
            if self.app_token is not None and not _same_secret(token, self.app_token):
                return slack_error("invalid_auth")
            if not token.startswith("xapp-"):
                return slack_error("invalid_auth")
        elif not _same_secret(token, self.bot_token):
            return slack_error("not_allowed_token_type" if token.startswith("xapp-") else "invalid_auth")
        return self._methods[route](args)

    # -- methods ---------------------------------------------------------------------------

    def _auth_test(self, args: dict[str, Any]) -> Reply:
        return _ok(
            url=f"https://{self.team_name.lower()}.slack.com/",
            team=self.team_name,
            user="followup",
            team_id=self.team_id,
            user_id=self.bot_user_id,
            bot_id=self.bot_id,
            is_enterprise_install=False,
        )

    def _post_message(self, args: dict[str, Any]) -> Reply:
        channel = args.get("channel")
        if not channel or not self._known_channel(channel):
            return slack_error("channel_not_found")
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            return slack_error("no_text")
        message = self._message(args)
        if args.get("thread_ts"):
            message["thread_ts"] = str(args["thread_ts"])
        with self._store_lock:
            message["ts"] = self._next_ts()
            self._messages.setdefault(channel, []).append(message)
            return _ok(channel=channel, ts=message["ts"], message=copy.deepcopy(message))

    def shared_file(self, file_id: str, channel: str) -> tuple[str, bytes] | None:
        """A file's name and bytes when it was shared in `channel` (as Slack shows a file only where it was shared)."""
        with self._store_lock:
            stored = self._files.get(file_id)
            if (
                stored is None
                or stored["bytes"] is None
                or not any(share["channel"] == channel for share in stored["shares"])
            ):
                return None
            return stored["name"], bytes(stored["bytes"])

    def _get_upload_url(self, args: dict[str, Any]) -> Reply:
        filename, length = args.get("filename"), str(args.get("length", ""))
        if not filename or not length.isdigit() or int(length) <= 0:
            return slack_error("invalid_arguments")
        file_id = "F" + secrets.token_hex(5).upper()
        with self._store_lock:
            self._files[file_id] = {
                "id": file_id,
                "name": filename,
                "length": int(length),
                "bytes": None,
                "content": None,
                "title": None,
                "shares": [],
                "channel": None,
                "thread_ts": None,
            }
        return _ok(upload_url=f"{self.url}{_UPLOAD_PATH}{file_id}", file_id=file_id)

    def _receive_file_bytes(self, file_id: str, body: bytes) -> Reply:
        with self._store_lock:
            announced = self._files.get(file_id)
            if announced is None:
                return Reply(404, b"unknown upload", {"Content-Type": "text/plain"})
            announced["bytes"] = announced["content"] = body
        return Reply(200, f"OK - {len(body)}".encode(), {"Content-Type": "text/plain"})

    def _complete_upload(self, args: dict[str, Any]) -> Reply:
        files = args.get("files")
        if not isinstance(files, list) or not files:
            return slack_error("invalid_arguments")
        channel = args.get("channel_id") or args.get("channels")
        if channel and not self._known_channel(channel):
            return slack_error("channel_not_found")
        with self._store_lock:
            for entry in files:
                stored = self._files.get(entry.get("id", "")) if isinstance(entry, dict) else None
                # Slack refuses a file whose bytes never arrived or whose size differs from the one announced.
                if stored is None or stored["bytes"] is None:
                    return slack_error("file_not_found")
                if len(stored["bytes"]) != stored["length"]:
                    return slack_error("file_upload_size_mismatch")
            completed = []
            for entry in files:
                stored = self._files[entry["id"]]
                stored["title"] = entry.get("title") or stored["name"]
                completed.append(
                    {"id": stored["id"], "name": stored["name"], "title": stored["title"], "size": stored["length"]}
                )
            if channel:
                message: dict[str, Any] = {
                    "type": "message",
                    "user": self.bot_user_id,
                    "bot_id": self.bot_id,
                    "text": str(args.get("initial_comment") or ""),
                    "files": copy.deepcopy(completed),
                    "ts": self._next_ts(),
                }
                if args.get("thread_ts"):
                    message["thread_ts"] = str(args["thread_ts"])
                self._messages.setdefault(channel, []).append(message)
                message["upload"] = True
                for entry in files:
                    self._files[entry["id"]]["shares"].append({"channel": channel, "ts": message["ts"]})
                    self._files[entry["id"]]["channel"] = channel
                    self._files[entry["id"]]["thread_ts"] = str(args["thread_ts"]) if args.get("thread_ts") else None
            return _ok(files=completed)

    def _update_message(self, args: dict[str, Any]) -> Reply:
        channel, ts = args.get("channel"), args.get("ts")
        if not channel or not self._known_channel(channel):
            return slack_error("channel_not_found")
        with self._store_lock:
            message = self._find(channel, ts)
            if message is None:
                return slack_error("message_not_found")
            update = self._message(args)
            for key in ("text", "blocks", "attachments", "metadata"):
                if key in args:
                    message[key] = update[key]
            message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
            return _ok(channel=channel, ts=ts, text=message.get("text", ""), message=copy.deepcopy(message))

    def _post_ephemeral(self, args: dict[str, Any]) -> Reply:
        channel = args.get("channel")
        if not channel or not self._known_channel(channel):
            return slack_error("channel_not_found")
        if not args.get("user"):
            return slack_error("user_not_in_channel")
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            return slack_error("no_text")
        ephemeral = {**self._message(args), "channel": channel, "user": args["user"]}
        if args.get("thread_ts"):
            ephemeral["thread_ts"] = str(args["thread_ts"])
        with self._store_lock:
            ephemeral["message_ts"] = self._next_ts()
            self._ephemerals.append(ephemeral)
        return _ok(message_ts=ephemeral["message_ts"])

    def _permalink(self, args: dict[str, Any]) -> Reply:
        channel, ts = args.get("channel"), str(args.get("message_ts") or "")
        if not channel or not self._known_channel(channel):
            return slack_error("channel_not_found")
        with self._store_lock:
            message = self._find(channel, ts)
        if message is None:
            return slack_error("message_not_found")
        link = f"https://{self.team_name.lower()}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        if message.get("thread_ts") and message["thread_ts"] != ts:
            link += f"?thread_ts={message['thread_ts']}&cid={channel}"
        return _ok(channel=channel, permalink=link)

    def _open_view(self, args: dict[str, Any]) -> Reply:
        if not args.get("trigger_id"):
            return slack_error("invalid_arguments")
        view = args.get("view")
        if not isinstance(view, dict) or view.get("type") != "modal":
            return slack_error("invalid_arguments")
        stored = self._view(view, view_id=None)
        with self._store_lock:
            self._views[stored["id"]] = stored
        return _ok(view=copy.deepcopy(stored))

    def _update_view(self, args: dict[str, Any]) -> Reply:
        view = args.get("view")
        if not isinstance(view, dict):
            return slack_error("invalid_arguments")
        with self._store_lock:
            external_id = args.get("external_id")
            current = self._views.get(args.get("view_id", "")) or next(
                (v for v in self._views.values() if external_id and v.get("external_id") == external_id),
                None,
            )
            if current is None:
                return slack_error("not_found")
            if args.get("hash") and args["hash"] != current["hash"]:
                return slack_error("hash_conflict")
            stored = self._view(view, view_id=current["id"])
            self._views[stored["id"]] = stored
        return _ok(view=copy.deepcopy(stored))

    def _publish_view(self, args: dict[str, Any]) -> Reply:
        view, user_id = args.get("view"), args.get("user_id")
        if not user_id or not isinstance(view, dict) or view.get("type") != "home":
            return slack_error("invalid_arguments")
        with self._store_lock:
            current = self._home_views.get(user_id)
            if current and args.get("hash") and args["hash"] != current["hash"]:
                return slack_error("hash_conflict")
            stored = self._view(view, view_id=current["id"] if current else None)
            self._home_views[user_id] = stored
        return _ok(view=copy.deepcopy(stored))

    def _conversation_info(self, args: dict[str, Any]) -> Reply:
        channel = args.get("channel")
        if not channel or not self._known_channel(channel):
            return slack_error("channel_not_found")
        name = (self._channels or {}).get(channel, channel.lower())
        is_im = channel.startswith("D")
        if is_im and channel not in self._dms:
            # The bot sees only its own direct messages; one between two people is not found.
            return slack_error("channel_not_found")
        extra = {"user": self._dms[channel]} if is_im else {}
        return _ok(channel={**extra, **self._channel(channel, name)})

    def _channel(self, channel: str, name: str) -> dict[str, Any]:
        with self._store_lock:
            member, archived = channel not in self._without_bot, channel in self._archived
        return {
            "id": channel,
            "name": name,
            "is_channel": not channel.startswith(("D", "G")),
            "is_group": False,
            "is_im": channel.startswith("D"),
            "is_private": channel.startswith("G"),
            "is_archived": archived,
            "is_member": member,
            "created": 1700000000,
            "context_team_id": self.team_id,
        }

    def _conversation_list(self, args: dict[str, Any]) -> Reply:
        """The workspace's channels a page at a time: the configured ones, else those with messages.

        Private channels (G…) are listed only when the bot is in them, as Slack lists them to a bot.
        """
        if self._channels is not None:
            known = dict(self._channels)
        else:
            with self._store_lock:
                known = {channel: channel.lower() for channel in self._messages if not channel.startswith("D")}
        listed = [self._channel(channel, name) for channel, name in sorted(known.items())]
        listed = [c for c in listed if not (c["is_private"] and not c["is_member"])]
        if str(args.get("exclude_archived", "")).lower() in ("1", "true"):
            listed = [c for c in listed if not c["is_archived"]]
        limit = max(1, min(int(args.get("limit") or 100), 1000))
        start = int(args.get("cursor") or 0)
        more = start + limit < len(listed)
        return _ok(
            channels=listed[start : start + limit],
            response_metadata={"next_cursor": str(start + limit) if more else ""},
        )

    def _history(self, args: dict[str, Any]) -> Reply:
        """A channel's top-level messages, newest first (threads' replies are not listed)."""
        channel = args.get("channel")
        if not channel or not self._known_channel(channel):
            return slack_error("channel_not_found")
        with self._store_lock:
            listed = [m for m in self._messages.get(channel, []) if m.get("thread_ts", m["ts"]) == m["ts"]]
        return self._listing(list(reversed(listed)), args)

    def _replies(self, args: dict[str, Any]) -> Reply:
        """A thread: its parent, then its replies, oldest first."""
        channel, ts = args.get("channel"), args.get("ts")
        if not channel or not self._known_channel(channel):
            return slack_error("channel_not_found")
        if not ts:
            return slack_error("invalid_arguments")
        with self._store_lock:
            if self._find(channel, ts) is None:
                return slack_error("thread_not_found")
            listed = [m for m in self._messages.get(channel, []) if m["ts"] == ts or m.get("thread_ts") == ts]
        return self._listing(listed, args)

    def _listing(self, messages: list[dict[str, Any]], args: dict[str, Any]) -> Reply:
        """One page of messages as Slack lists them; metadata only when asked for, as Slack does."""
        limit = int(args.get("limit") or 100)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        page = [
            {k: v for k, v in m.items() if with_metadata or k != "metadata"} for m in copy.deepcopy(messages[:limit])
        ]
        return _ok(messages=page, has_more=len(messages) > limit)

    def _user_info(self, args: dict[str, Any]) -> Reply:
        user_id = args.get("user")
        if not user_id:
            return slack_error("user_not_found")
        with self._store_lock:
            user = self._users.get(user_id)
        if user is None:
            if user_id == self.bot_user_id:
                user = _user(self.team_id, user_id, "followup", "followup", None, "America/New_York", -18000)
                user.update(is_bot=True, profile={**user["profile"], "bot_id": self.bot_id})
            else:
                user = _user(self.team_id, user_id, user_id.lower(), user_id, None, "America/New_York", -18000)
        return _ok(user=user)

    def _conversation_members(self, args: dict[str, Any]) -> Reply:
        """A channel's members' user ids, a page at a time (cursor: the offset, as Slack's opaque cursor)."""
        channel = args.get("channel")
        if not channel or not self._known_channel(channel):
            return slack_error("channel_not_found")
        limit = max(1, min(int(args.get("limit") or 100), 1000))
        start = int(args.get("cursor") or 0)
        with self._store_lock:
            members = list(self._members.get(channel, []))
        page = members[start : start + limit]
        more = start + limit < len(members)
        return _ok(members=page, response_metadata={"next_cursor": str(start + limit) if more else ""})

    def _user_conversations(self, args: dict[str, Any]) -> Reply:
        """The channels a person is in, a page at a time, as Slack lists them (cursor: the offset).

        Without `user`, the calling bot's own. `types` keeps public channels (C…) and private ones (G…, or
        a channel the stand-in was told is private); the stand-in has no archived channels.
        """
        user = args.get("user") or self.bot_user_id
        types = set(str(args.get("types") or "public_channel").split(","))
        limit = max(1, min(int(args.get("limit") or 100), 1000))
        start = int(args.get("cursor") or 0)
        with self._store_lock:
            known = user == self.bot_user_id or user in self._users or any(user in m for m in self._members.values())
            joined = [channel for channel, members in self._members.items() if user in members]
        if not known:
            return slack_error("user_not_found")
        wanted = [
            channel
            for channel in joined
            if ("private_channel" if channel.startswith("G") else "public_channel") in types
        ]
        page = [
            {
                "id": channel,
                "name": (self._channels or {}).get(channel, channel.lower()),
                "is_channel": not channel.startswith("G"),
                "is_group": channel.startswith("G"),
                "is_private": channel.startswith("G"),
                "is_archived": False,
                "is_member": self.bot_user_id in self._members.get(channel, []),
            }
            for channel in wanted[start : start + limit]
        ]
        more = start + limit < len(wanted)
        return _ok(channels=page, response_metadata={"next_cursor": str(start + limit) if more else ""})

    def _user_group_users(self, args: dict[str, Any]) -> Reply:
        group = args.get("usergroup")
        with self._store_lock:
            users = self._user_groups.get(group or "")
        if users is None:
            return slack_error("no_such_subteam")
        return _ok(users=list(users))

    def _open_connection(self, args: dict[str, Any]) -> Reply:
        host_port = self.url.removeprefix("http://")
        return _ok(url=f"ws://{host_port}/link/?ticket={secrets.token_hex(16)}&app_id={self.app_id}")

    # -- helpers ---------------------------------------------------------------------------

    def _known_channel(self, channel: str) -> bool:
        return self._channels is None or channel in self._channels

    def _find(self, channel: str, ts: Any) -> dict[str, Any] | None:
        return next((m for m in self._messages.get(channel, []) if m["ts"] == ts), None)

    def _next_ts(self) -> str:
        """A message ts like Slack's: seconds.microseconds, strictly increasing."""
        micros = max(int(time.time() * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _message(self, args: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "text": args.get("text", ""),
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "bot_profile": {"id": self.bot_id, "app_id": self.app_id, "name": "followup", "team_id": self.team_id},
        }
        for key in ("blocks", "attachments", "metadata"):
            if key in args:
                message[key] = args[key]
        return message

    def _view(self, view: dict[str, Any], *, view_id: str | None) -> dict[str, Any]:
        view_id = view_id or "V" + secrets.token_hex(5).upper()
        return {
            "id": view_id,
            "team_id": self.team_id,
            "type": view.get("type"),
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "root_view_id": view_id,
            "previous_view_id": None,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
        }


def _arguments(request: RecordedRequest) -> dict[str, Any]:
    """A call's arguments from query, form or JSON body, with JSON-in-form fields decoded."""
    args: dict[str, Any] = dict(request.query)
    if isinstance(request.data, dict):
        args.update(request.data)
    is_json = request.headers.get("Content-Type", "").lower().startswith("application/json")
    for key in _JSON_FIELDS:
        if not is_json and isinstance(args.get(key), str):
            try:
                args[key] = json.loads(args[key])
            except json.JSONDecodeError:
                pass
    return args


def _token(request: RecordedRequest, args: Mapping[str, Any]) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token
    return args.get("token") or None


def _ok(**fields: Any) -> Reply:
    return Reply.json(200, {"ok": True, **fields})


def _user(
    team_id: str, user_id: str, name: str, real_name: str, email: str | None, tz: str, tz_offset: int
) -> dict[str, Any]:
    profile = {"real_name": real_name, "display_name": name, "team": team_id}
    if email:
        profile["email"] = email
    return {
        "id": user_id,
        "team_id": team_id,
        "name": name,
        "deleted": False,
        "real_name": real_name,
        "tz": tz,
        "tz_offset": tz_offset,
        "is_bot": False,
        "is_admin": False,
        "is_restricted": False,
        "is_ultra_restricted": False,
        "profile": profile,
    }


def _same_secret(given: str, expected: str) -> bool:
    """Tokens are compared in constant time, as Slack's API does."""
    return hmac.compare_digest(given.encode(), expected.encode())
