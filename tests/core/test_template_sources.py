"""Only the business's own files are compiled as templates: no other code hands Jinja2 a string to compile.

A walk over the source with `ast`: compiling a string (`render_string`, `check_string`,
`from_string`, `Template(...)`) happens only in bot/core/templating.py and, to check a playbook's
subject lines, bot/core/playbook.py; and `render_email`, whose subject is a template, is called only
where the subject comes from a playbook step. Everything typed goes through
`render_email_as_written`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPILING = {"render_string", "check_string", "from_string", "Template", "compile_expression"}
MAY_COMPILE = {"bot/core/templating.py", "bot/core/playbook.py"}
#: Callers of render_email: each passes a subject taken from `step.subjects`.
PLAYBOOK_SUBJECT_CALLERS = {"bot/usecases/touch_rendering.py", "bot/reports/preview.py", "bot/reports/content_check.py"}


def calls(name_set: set[str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for folder in ("bot", "handlers"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                    if name in name_set:
                        found.setdefault(path.relative_to(ROOT).as_posix(), []).append(node.lineno)
    return found


def test_no_module_but_the_renderer_and_the_playbook_loader_compiles_a_string():
    assert set(calls(COMPILING)) <= MAY_COMPILE


def test_emails_whose_subject_is_a_template_are_rendered_only_from_playbook_steps():
    callers = set(calls({"render_email"})) - {"bot/core/templating.py"}
    assert callers <= PLAYBOOK_SUBJECT_CALLERS, "a new caller of render_email must pass a playbook's subject"
