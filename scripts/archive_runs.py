"""Copy the record of every finished run of a runs folder into a folder that is committed.

A run folder's checkpoints are large; its record is small: ``config.yaml`` (spec,
recipe, machine, command), ``metrics.csv`` (every epoch), ``summary.json`` (test
accuracy at the best-validation epoch), ``reused.json`` for a run copied from another
grid (``hrgraph experiment --reuse-from``) and the grid manifest.  ``hrgraph report``
reads only these, and ``hrgraph experiment`` skips a run whose summary says it
finished, so the archived records let a report be rebuilt, and a grid be
continued, on a machine where the runs are gone.  Unfinished and diverged runs
are not archived.

    python scripts/archive_runs.py runs/fashion-mnist-cpu docs/results/runs/fashion-mnist-cpu
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

RECORD = ("config.yaml", "metrics.csv", "summary.json", "reused.json")


def archive(runs: Path, into: Path) -> tuple[int, int]:
    """Copy finished runs' records from ``runs`` to ``into``; returns (archived, skipped)."""
    archived = skipped = 0
    into.mkdir(parents=True, exist_ok=True)
    for manifest in runs.glob("*.grid.json"):
        shutil.copy2(manifest, into / manifest.name)
    for run in sorted(p for p in runs.iterdir() if p.is_dir()):
        try:
            summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            skipped += 1
            continue
        if not summary.get("finished") or summary.get("diverged"):
            skipped += 1
            continue
        (into / run.name).mkdir(exist_ok=True)
        for name in RECORD:
            if (run / name).is_file():  # reused.json: only a run copied by --reuse-from has it
                shutil.copy2(run / name, into / run.name / name)
        archived += 1
    return archived, skipped


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    done, left = archive(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"archived {done} finished runs into {sys.argv[2]}; {left} unfinished or diverged left out")
