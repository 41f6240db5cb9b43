"""Every module of bot/ and handlers/ belongs to one layer, and imports only what its layer may.

The layers are the folders of bot/ (core ← store ← usecases ← {reports, channels, slack} ← handlers ←
wiring), written as rules over folder paths, never lists of files: a new module is checked by the folder
it is put in. The wiring is what is left at the top of bot/. A module no rule claims fails the test, so a
new folder cannot slip past unchecked.

The walk sees every import form: `import a.b`, `from a import b` (also when `b` is a module, as in
`from bot import models`), relative imports, and imports inside functions or under `TYPE_CHECKING`.
"""

from __future__ import annotations

import ast
import re
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers")

#: Each layer and the paths (from the repository root, fnmatch patterns) of the modules in it.
LAYERS: dict[str, tuple[str, ...]] = {
    #: The package itself: where the shipped content lives. Anything may import it.
    "package": ("bot/__init__.py",),
    #: Pure rules and values: the standard library and the data handed in; no database, vendor or web code.
    "core": ("bot/core/*.py",),
    #: Persistence: the models, the engine, the migrations, the outbox, the audit trail, the per-lead locks.
    "store": ("bot/store/*.py", "bot/store/migrations/*.py", "bot/store/migrations/versions/*.py"),
    #: The verbs: what happens to a lead, through the ports, never through a vendor's library.
    "usecases": ("bot/usecases/*.py",),
    #: Read-only views of the data: statistics, digests, exports, previews, content checks.
    "reports": ("bot/reports/*.py",),
    #: Adapters that speak to a vendor or a receiver over the network (the ports' implementations).
    "channels": ("bot/channels/*.py",),
    #: Everything that speaks Slack except the listeners: blocks, card values, modals, the poster, limits.
    "slack": ("bot/slack/*.py",),
    #: Entry points: Slack listeners and HTTP webhook routes.
    "handlers": ("handlers/*.py",),
    #: The composition root and what reads the environment, starts servers and schedules work: the modules
    #: left at the top of bot/.
    "wiring": ("bot/[!_]*.py",),
    #: Local HTTP servers that speak the vendors' wire formats: they must not lean on the bot they stand in for.
    "standins": ("bot/standins/*.py",),
    #: The local sandbox: the real app wired to the stand-ins, with a page to drive it.
    "sandbox": ("bot/sandbox/*.py",),
}

_LOWER = {
    "package": set(),
    "core": {"package"},
    "store": {"package", "core"},
    "usecases": {"package", "core", "store"},
    "reports": {"package", "core", "store", "usecases"},
    "channels": {"package", "core", "store", "usecases"},
    "slack": {"package", "core", "store", "usecases", "reports"},
    "handlers": {"package", "core", "store", "usecases", "reports", "slack"},
    "wiring": {"package", "core", "store", "usecases", "reports", "channels", "slack", "handlers", "sandbox"},
    "standins": {"package", "core"},
    "sandbox": set(LAYERS) - {"sandbox"},
}
#: The layers each layer may import: those beneath it, and its own.
MAY_IMPORT: dict[str, set[str]] = {layer: lower | {layer} for layer, lower in _LOWER.items()}

VENDORS = ("slack_bolt", "slack_sdk", "twilio", "sendgrid", "python_http_client")
WEB = ("starlette", "uvicorn", "flask", "requests", "httpx", "urllib3", "urllib.request", "http")
SCHEDULER = ("apscheduler",)
DATABASE = ("sqlalchemy", "alembic")
#: Outside code a layer must not import (its own vendor's library is the adapter's job, nobody else's).
MUST_NOT_IMPORT: dict[str, tuple[str, ...]] = {
    "package": VENDORS + WEB + SCHEDULER + DATABASE,
    "core": VENDORS + WEB + SCHEDULER + DATABASE,
    "store": VENDORS + WEB + SCHEDULER,
    "usecases": VENDORS + WEB + SCHEDULER,
    "reports": VENDORS + WEB + SCHEDULER,
    "channels": ("slack_bolt", "slack_sdk", "starlette", "uvicorn", "flask") + SCHEDULER,
    "slack": ("slack_bolt", "twilio", "sendgrid", "python_http_client", "starlette", "uvicorn", "flask") + SCHEDULER,
    "handlers": SCHEDULER,
    "wiring": (),
    "standins": ("slack_bolt", "sendgrid", "python_http_client") + SCHEDULER + DATABASE,
    "sandbox": (),
}

#: Imports that cross the layers the wrong way, each with why it is there and what removes it: none today.
#: The test fails when one is no longer needed, so the list only shrinks.
KNOWN_CROSSINGS: dict[tuple[str, str], str] = {}


def discover_modules() -> dict[str, Path]:
    """Every module of the packages, by dotted name (a package by its own name)."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


MODULES = discover_modules()


def imported_names(source: str, module: str, *, is_package: bool, known: set[str]) -> set[str]:
    """The dotted names `source` imports anywhere in its body, relative imports made absolute.

    `from a import b` yields `a`, and `a.b` too when `a.b` is one of the `known` modules.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                base = here[: len(here) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            names.add(origin)
            names.update(f"{origin}.{alias.name}" for alias in node.names if f"{origin}.{alias.name}" in known)
    return names


def own_module(name: str) -> str | None:
    """The module of bot/ or handlers/ that an imported name refers to (its longest known prefix)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def imports_of(module: str) -> set[str]:
    path = MODULES[module]
    return imported_names(path.read_text(), module, is_package=path.name == "__init__.py", known=set(MODULES))


def path_matches(relative: str, pattern: str) -> bool:
    """fnmatch one folder at a time, so `bot/*.py` means the top of bot/ only, not every folder below it."""
    parts, wanted = relative.split("/"), pattern.split("/")
    return len(parts) == len(wanted) and all(fnmatchcase(part, want) for part, want in zip(parts, wanted, strict=True))


def layers_of(module: str) -> list[str]:
    relative = MODULES[module].relative_to(ROOT).as_posix()
    return [layer for layer, patterns in LAYERS.items() if any(path_matches(relative, p) for p in patterns)]


def layer_of(module: str) -> str:
    [layer] = layers_of(module)
    return layer


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def test_every_module_belongs_to_exactly_one_layer():
    unclaimed = sorted(module for module in MODULES if not layers_of(module))
    claimed_twice = sorted(f"{module}: {layers_of(module)}" for module in MODULES if len(layers_of(module)) > 1)
    assert unclaimed == [], f"no layer rule claims {unclaimed}: add each to its layer in LAYERS"
    assert claimed_twice == []


def test_every_layer_rule_matches_a_module():
    dead = [
        (layer, pattern)
        for layer, patterns in LAYERS.items()
        for pattern in patterns
        if not any(path_matches(path.relative_to(ROOT).as_posix(), pattern) for path in MODULES.values())
    ]
    assert dead == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_own_layer_and_those_beneath(module):
    layer = layer_of(module)
    crossings = sorted(
        f"{target} ({layer_of(target)})"
        for target in filter(None, map(own_module, imports_of(module)))
        if layer_of(target) not in MAY_IMPORT[layer] and (module, target) not in KNOWN_CROSSINGS
    )
    assert crossings == [], f"{module} ({layer}) may import only {sorted(MAY_IMPORT[layer])}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_no_outside_code_its_layer_must_not(module):
    layer = layer_of(module)
    forbidden = sorted(name for name in imports_of(module) if _matches(name, MUST_NOT_IMPORT[layer]))
    assert forbidden == [], f"{module} ({layer}) imports {forbidden}"


def test_every_known_crossing_is_still_there():
    gone = [pair for pair in KNOWN_CROSSINGS if pair[1] not in {own_module(n) for n in imports_of(pair[0])}]
    assert gone == [], "these no longer cross a layer: take them out of KNOWN_CROSSINGS"


def test_every_known_crossing_does_cross_a_layer():
    allowed = [pair for pair in KNOWN_CROSSINGS if layer_of(pair[1]) in MAY_IMPORT[layer_of(pair[0])]]
    assert allowed == []


WALKED = """
import bot.store.models
import twilio.rest as twilio_rest
from bot import SHIPPED_SEQUENCES, store
from bot.store import outbox
from . import rules
from .display import phone_for_people
from ..usecases import leads


def later():
    from sqlalchemy import select

    if True:
        import httpx
"""


def test_the_walk_sees_every_import_form_and_makes_relative_imports_absolute():
    known = {
        "bot",
        "bot.store",
        "bot.store.models",
        "bot.store.outbox",
        "bot.core",
        "bot.core.rules",
        "bot.core.display",
        "bot.usecases",
        "bot.usecases.leads",
    }
    names = imported_names(WALKED, "bot.core.planning", is_package=False, known=known)
    assert names == {
        "bot.store.models",
        "twilio.rest",
        "bot",
        "bot.store",
        "bot.store.outbox",
        "bot.core",
        "bot.core.rules",
        "bot.core.display",
        "bot.usecases",
        "bot.usecases.leads",
        "sqlalchemy",
        "httpx",
    }


def test_a_package_s_relative_import_is_relative_to_the_package_itself():
    names = imported_names("from . import server\n", "bot.standins", is_package=True, known={"bot.standins.server"})
    assert names == {"bot.standins", "bot.standins.server"}


def test_from_bot_import_a_module_counts_as_importing_that_module():
    assert own_module("bot.store.models") == "bot.store.models"
    # `from bot.store import outbox`, and `from bot.usecases import dispatch_sql as sql`:
    assert "bot.store.outbox" in {own_module(name) for name in imports_of("bot.usecases.send_outcomes")}
    assert "bot.usecases.dispatch_sql" in imports_of("bot.usecases.dispatch")


#: Twilio's messaging error codes (21100-21999, 30001-30039, 63000-63099): what one means for a lead is the
#: channel adapter's to say (bot.channels.twilio_sms.failure_kind), so no other layer may name one. The
#: stand-ins and the sandbox play Twilio and may.
TWILIO_CODE = re.compile(r"21[1-9]\d\d|300(?:0[1-9]|[1-3]\d)|630\d\d")
MAY_NAME_TWILIO_CODES = ("channels", "standins", "sandbox")


def test_the_twilio_code_rule_knows_a_code_from_a_number():
    assert all(TWILIO_CODE.fullmatch(code) for code in ("21610", "21211", "30003", "30007", "63016"))
    assert not any(TWILIO_CODE.fullmatch(number) for number in ("30000", "21000", "3000", "210000", "86400"))


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) not in MAY_NAME_TWILIO_CODES))
def test_no_layer_but_the_channel_adapters_reads_a_vendor_s_error_codes(module):
    numbers = [
        node.value
        for node in ast.walk(ast.parse(MODULES[module].read_text()))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, (int, str))
        and TWILIO_CODE.fullmatch(str(node.value))
    ]
    assert numbers == [], f"{module} names Twilio error codes {numbers}: map them in bot/channels/ instead"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) == "handlers"))
def test_a_listener_or_route_never_takes_a_lead_itself(module):
    """Entry points call a use case that takes the lead (its lock and transaction); they never take one."""
    taken = {name for name in imports_of(module) if own_module(name) == "bot.store.lead_locks"}
    assert taken == set(), f"{module} takes leads itself: call a use case (bot.usecases.team_actions) instead"


#: What a running process is made of: only the composition root (bot/app.py) builds these, once, from settings.
BUILT_BY_THE_ROOT = (
    "Services",
    "SlackPoster",
    "WorkScheduler",
    "TwilioSmsSender",
    "SendGridEmailSender",
    "WebhookDeliverer",
    "WeeklyDigestJob",
    "create_web_app",
    "build_slack_app",
    "build_services",
)
COMPOSITION_ROOT = "bot.app"


def _calls_by_name(module: str) -> set[str]:
    called = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Call):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
            if name in BUILT_BY_THE_ROOT:
                called.add(name)
    return called


def test_the_composition_root_builds_what_the_process_runs():
    assert {"Services", "SlackPoster", "WorkScheduler", "create_web_app"} <= _calls_by_name(COMPOSITION_ROOT)


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if m != COMPOSITION_ROOT and layer_of(m) not in ("standins",))
)
def test_nothing_but_the_composition_root_builds_the_services_or_the_workers(module):
    """One composition root: a CLI command, the server or the sandbox asks bot.app for what it needs."""
    built = _calls_by_name(module) - ({"build_services"} if layer_of(module) in ("wiring", "sandbox") else set())
    assert built == set(), f"{module} builds {sorted(built)} itself: build it in bot/app.py"
