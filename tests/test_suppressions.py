"""Every `noqa` and `type: ignore` in the code says why, so a reader can tell a deliberate exception from a slip."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("bot", "handlers", "tests", "bench")
#: A suppression, its codes, then a reason: `# noqa: BLE001 - why` or `# type: ignore[misc]  # why`.
SUPPRESSION = re.compile(
    r"#\s*(?:noqa|type:\s*ignore)\b"
    r"(?::?\s*[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*|\[[^\]]*\])?"
    r"(?P<rest>.*)"
)


def suppressions_without_a_reason(source: str) -> list[tuple[int, str]]:
    """The (line, comment) of each suppression in `source` that gives no reason after its codes."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        match = SUPPRESSION.search(token.string)
        if match and not re.match(r"\s*[-#:(]?\s*\S", match["rest"]):
            found.append((token.start[0], token.string))
    return found


def test_every_suppression_in_the_code_says_why():
    missing = [
        f"{path.relative_to(ROOT)}:{line}: {comment}"
        for folder in FOLDERS
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line, comment in suppressions_without_a_reason(path.read_text())
    ]
    assert missing == []


def test_a_suppression_with_a_reason_passes_and_one_without_fails():
    source = (
        "a = 1  # noqa: E731 - a lambda reads clearer here\n"
        "b = 2  # type: ignore[misc]  # the stub is wrong\n"
        "c = 3  # noqa: ANN001\n"
        "d = 4  # type: ignore[union-attr]\n"
        "e = 5  # noqa\n"
        "f = '# noqa: in a string is not a comment'\n"
    )
    assert [line for line, _ in suppressions_without_a_reason(source)] == [3, 4, 5]
