"""Edges coloured by a measurement: ``hrgraph render --color-by contribution|edgecut ANALYSIS_DIR``.

``hrgraph analyze`` writes ``contributions.csv`` (per long-range edge: ``ratio``,
the edge's mean ``|output|`` over its target block's, and ``mean_abs``) and
``edgecut.csv`` (per edge cut at run time: ``change``, the accuracy change from
the intact model).  This module reads them with the standard library (the
drawing stays torch-free and does not import :mod:`hrgraph.analysis`, which
sits above it) and maps each edge's value to one of five colours, light to
dark, in equal steps between the smallest and largest value; the legend says
which range each colour stands for.  Contribution colours by ``ratio``; edge
cut by the accuracy *drop* (``-change``, in percentage points), so darker
means more important in both.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..build.shapes import ShapePlan
from ..errors import RenderError

__all__ = ["EdgeOverlay", "load_overlay", "OVERLAYS", "PALETTE", "UNMEASURED"]

#: Light to dark (yellow to dark red): readable on white, ordered in lightness for grey print.
PALETTE = ("#fde68a", "#fbbf24", "#f97316", "#dc2626", "#7f1d1d")
#: An edge the file has no value for.
UNMEASURED = "#d1d5db"
#: ``--color-by`` choice -> (file, the column read, what the legend calls it).
OVERLAYS = {
    "contribution": ("contributions.csv", "ratio", "contribution ratio |edge| / |block|"),
    "edgecut": ("edgecut.csv", "change", "accuracy drop when cut (pp)"),
}


@dataclass(frozen=True)
class EdgeOverlay:
    """A value per link ``(from, to)`` and the colours and legend that show it."""

    what: str
    values: dict[tuple[str, str], float]

    @property
    def _range(self) -> tuple[float, float]:
        return min(self.values.values()), max(self.values.values())

    def colour(self, key: tuple[str, str]) -> str | None:
        """The colour of link ``key``, ``None`` if it has no value."""
        value = self.values.get(key)
        if value is None:
            return None
        low, high = self._range
        step = len(PALETTE) - 1 if high == low else min(int((value - low) / (high - low) * len(PALETTE)), len(PALETTE) - 1)
        return PALETTE[step]

    def text(self, key: tuple[str, str]) -> str | None:
        """The value as a label line (``ratio 0.412``, ``drop 3.10 pp``), ``None`` if it has none."""
        value = self.values.get(key)
        if value is None:
            return None
        return f"ratio {value:.3g}" if self.what == "contribution" else f"drop {value:.2f} pp"

    def legend(self) -> list[tuple[str, str]]:
        """``(colour, text)`` rows: what is measured (colour ``""``), each colour's range of values, the unmeasured grey."""
        low, high = self._range
        width = (high - low) / len(PALETTE)
        unit = "" if self.what == "contribution" else " pp"
        ranges = [(PALETTE[-1], f"{low:.3g}{unit} (every edge)")] if width == 0 else [
            (colour, f"{low + i * width:.3g} to {low + (i + 1) * width:.3g}{unit}") for i, colour in enumerate(PALETTE)
        ]
        return [("", f"edge colour: {OVERLAYS[self.what][2]}")] + ranges + [(UNMEASURED, "not measured")]


def _links(plan: ShapePlan) -> set[tuple[str, str]]:
    """Every link a measurement may name: long-range edges and items of list inputs."""
    keys = set(plan.projections)
    for merge in plan.merges.values():
        keys.update((p.source, merge.node) for p in merge.inputs)
    return keys


def _read(path: Path, column: str, key_column: str) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in (key_column, column) if c not in (reader.fieldnames or [])]
            if missing:
                raise RenderError(f"{path.name} has no column {', '.join(map(repr, missing))}: not a file of 'hrgraph analyze'",
                                  path=str(path))
            return list(reader)
    except FileNotFoundError:
        raise RenderError(f"no {path.name} in {str(path.parent)!r}: write it with 'hrgraph analyze RUN -o {path.parent}'",
                          path=str(path)) from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise RenderError(f"cannot read {path.name}: {err}", path=str(path)) from None


def _number(text: str, path: Path, line: int, column: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise RenderError(f"{column} is {text!r}, not a number", path=str(path), line=line) from None


def load_overlay(what: str, directory: str | os.PathLike[str], plan: ShapePlan) -> EdgeOverlay:
    """Read ``directory``'s ``contributions.csv`` or ``edgecut.csv`` into values for ``plan``'s links.

    Parameters
    ----------
    what : {"contribution", "edgecut"}
    directory : path
        A folder ``hrgraph analyze`` wrote.
    plan : ShapePlan
        The spec drawn; every edge the file names must be one of its links.

    Raises
    ------
    RenderError
        Unknown ``what``, missing file or column, a value that is not a number,
        an edge the spec lacks (the analysis was of another spec), or no edge
        with a value.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from hrgraph import load_spec, infer_shapes
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "edgecut.csv").write_text("cut,change\\nnone,0.0\\nstem->stage4,-0.031\\nall,-0.2\\n")
    >>> overlay = load_overlay("edgecut", folder, infer_shapes(load_spec("specs/hiresnet18.yaml")))
    >>> overlay.values, overlay.text(("stem", "stage4"))
    ({('stem', 'stage4'): 3.1}, 'drop 3.10 pp')
    """
    if what not in OVERLAYS:
        raise RenderError(f"--color-by takes {' or '.join(OVERLAYS)}, not {what!r}")
    filename, column, _ = OVERLAYS[what]
    path = Path(directory) / filename
    key_column = "path" if what == "contribution" else "cut"
    links = _links(plan)
    values: dict[tuple[str, str], float] = {}
    unknown: list[str] = []
    for line, row in enumerate(_read(path, column, key_column), start=2):
        name = row[key_column] or ""
        if "->" not in name:  # contributions' "block" rows, edgecut's "none" and "all"
            continue
        key = tuple(name.split("->", 1))
        if key not in links:
            unknown.append(name)
            continue
        value = _number(row[column], path, line, column)
        if not math.isnan(value):
            values[key] = value if what == "contribution" else -value * 100
    if unknown:
        raise RenderError(f"{path.name} names {len(unknown)} edge(s) the spec lacks ({', '.join(unknown[:5])}): "
                          "was it written for another spec?", path=str(path))
    if not values:
        raise RenderError(f"{path.name} has no value for any edge of this spec", path=str(path))
    return EdgeOverlay(what, values)
