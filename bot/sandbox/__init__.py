"""`followup sandbox`: the real bot against local Slack, Twilio and SendGrid, played from a web page.

`runner` starts the stand-ins and the bot and serves the page; `page` is the page's routes and
its small JSON/SSE API; `actions` turns what a person does on the page into what the vendor
would send the bot; `world` is what the people on the page see (channel, phones, inboxes).
"""

from bot.sandbox.runner import Sandbox, TeamMember, run_sandbox

__all__ = ["Sandbox", "TeamMember", "run_sandbox"]
