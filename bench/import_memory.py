"""`followup import` of a large CSV: time and peak resident size, to show memory stays flat.

    python -m bench.import_memory [--rows 10000,100000] [--databases sqlite,postgresql]

Each size is a fresh database and a CSV written for it (name, phone, email, consent, a custom
column, one row in a thousand bad: a stray byte, a broken quote), imported by `followup import`
as a separate process; its peak RSS is the child's `ru_maxrss`. The playbook is the one-step
benchmark playbook, so the figure is the import's own cost, not the enrollment's touches.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import content, database, machine, phone


def write_csv(path: Path, rows: int) -> int:
    """Write `rows` leads; return how many of them are deliberately bad."""
    bad = 0
    with path.open("wb") as handle:
        handle.write(b"name,phone,email,consent,referrer\r\n")
        for index in range(rows):
            line = f"Lead {index},{phone(index)},lead{index}@example.com,yes,Zoë's clinic".encode()
            if index % 1000 == 999:
                line = line.replace(b"Lead", b"Le\xffad" if index % 2 else b'"Lead')
                bad += 1
            handle.write(line + b"\r\n")
    return bad


def run(url: str, folder: Path, rows: int) -> None:
    business, sequences = content(folder)
    csv_file = folder / f"leads-{rows}.csv"
    bad = write_csv(csv_file, rows)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "FOLLOWUP_BUSINESS": str(business),
        "FOLLOWUP_SEQUENCES_DIR": str(sequences),
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "import", str(csv_file)], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()[-200:]
    rejected = len(done.stderr.strip().splitlines())
    print(
        f"  {url.split(':')[0]:<10} {rows:>7,} rows: {elapsed:6.1f} s ({rows / elapsed:,.0f} rows/s), "
        f"peak RSS {max(peak, before) / 1024:.0f} MiB; exit {done.returncode}, {rejected} rejected of {bad} bad",
        flush=True,
    )
    print(f"             {summary}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10000,100000")
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    print(machine())
    print(
        "target: peak RSS flat in the number of rows (the file is streamed, rows committed 200 at a time)", flush=True
    )
    for kind in args.databases.split(","):
        for rows in (int(size) for size in args.rows.split(",")):
            with database(kind) as url, tempfile.TemporaryDirectory() as folder:
                run(url, Path(folder), rows)


if __name__ == "__main__":
    main()
