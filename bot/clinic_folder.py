"""`followup init DIR`: copy the shipped business file, playbooks and wording into a folder the clinic owns.

`run`, `check`, `preview` and `sandbox` use that folder's files when its business.yml is the one in
use (run from the folder, or FOLLOWUP_BUSINESS pointing at it): see Settings._content_beside_the_business_file.
Nothing already there is overwritten, so running it again only adds what is missing.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bot import SHIPPED_SEQUENCES, SHIPPED_TEMPLATES
from bot.core.playbook import BUSINESS_FILE, list_sequences

#: What is never content: Python's own files, left behind by packaging.
_NOT_CONTENT = ("__pycache__", "__init__.py")


@dataclass
class InitReport:
    """What `init` wrote, and what it left alone because the clinic already had it."""

    folder: Path
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


def _copy(source: Path, target: Path, report: InitReport) -> None:
    if target.exists():
        report.kept.append(target)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    report.written.append(target)


def init_clinic_folder(
    folder: Path, *, sequences_dir: Path = SHIPPED_SEQUENCES, templates_dir: Path = SHIPPED_TEMPLATES
) -> InitReport:
    """Write business.yml, sequences/ and templates/ into `folder` (created if need be), keeping files already there."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder")
    report = InitReport(folder=folder)
    _copy(sequences_dir / BUSINESS_FILE, folder / BUSINESS_FILE, report)
    for name in list_sequences(sequences_dir):
        _copy(sequences_dir / f"{name}.yml", folder / "sequences" / f"{name}.yml", report)
    for source in sorted(templates_dir.rglob("*")):
        relative = source.relative_to(templates_dir)
        if source.is_dir() or any(part in _NOT_CONTENT for part in relative.parts):
            continue
        _copy(source, folder / "templates" / relative, report)
    return report
