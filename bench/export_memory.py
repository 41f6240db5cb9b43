"""Export in bounded memory: `followup export` of 100,000 leads, its time and its peak resident size.

    python -m bench.export_memory [--leads 100000] [--databases sqlite,postgresql]

Runs the installed `followup export` as an operator would, once for CSV and once for JSON, each in a
process of its own, and reads the child's peak RSS from the kernel (`ru_maxrss`). The lead count is
the variable: bounded memory means the peak barely moves between 10,000 and 100,000 leads.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import content, database, load_leads, machine


def export_once(url: str, business: Path, sequences: Path, target: Path) -> tuple[float, float]:
    """Seconds and peak MiB of one `followup export` in a fresh process."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "FOLLOWUP_BUSINESS": str(business),
        "FOLLOWUP_SEQUENCES_DIR": str(sequences),
    }
    script = (
        "import resource, sys; from bot.cli import main; code = main(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(code)"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script, "export", str(target)], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"followup export failed:\n{done.stderr}")
    seconds = time.perf_counter() - started
    peak_kib = int(done.stderr.strip().splitlines()[-1])
    return seconds, peak_kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", default="10000,100000", help="lead counts to compare (comma-separated)")
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    print(machine())
    print("target: 100,000 leads export in bounded memory (peak flat in the lead count)", flush=True)
    for kind in args.databases.split(","):
        for count in (int(n) for n in args.leads.split(",")):
            with database(kind) as url, tempfile.TemporaryDirectory() as folder:
                business, sequences = content(Path(folder))
                load_leads(url, count, due_now=0)
                for suffix in ("csv", "json"):
                    seconds, peak = export_once(url, business, sequences, Path(folder) / f"leads.{suffix}")
                    print(
                        f"  {kind:<10} {count:>7,} leads {suffix:<4}: {seconds:6.1f} s, "
                        f"{count / seconds:8,.0f} leads/s, peak RSS {peak:5.0f} MiB",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
