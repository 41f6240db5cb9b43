"""`pip install .` works from a source tree without git metadata, content and migrations included."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_wheel_built_from_a_plain_source_tree_carries_code_content_and_the_command(tmp_path):
    source = tmp_path / "followup-src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build", "*.db", ".pytest_cache"),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next((tmp_path / "dist").glob("followup-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in [
        "bot/cli.py",
        "bot/store/migrations/env.py",
        "bot/store/migrations/versions/0001_initial_schema.py",
        "bot/core/reply_rules.yml",
        "sequences/default.yml",
        "sequences/business.yml",
        "sequences/appointment_reminders.yml",
        "handlers/__init__.py",
        "bot/sandbox/runner.py",
        "bot/sandbox/static/index.html",
        "bot/sandbox/clinics/lakeside-chiro.yml",
        "bot/sandbox/clinics/summit-dental.yml",
    ]:
        assert expected in names, f"{expected} missing from {wheel.name}"
    assert any(n.startswith("templates/default/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "followup = bot.cli:console_main" in zipfile.ZipFile(wheel).read(entry_points).decode()
