"""The gallery: every spec of a directory drawn to SVG, with one Markdown page showing them all.

``hrgraph gallery specs/ -o docs/gallery`` (``make gallery``) writes
``docs/gallery/<spec>.svg`` and ``docs/gallery.md``.  The page has no dates or
timings, so regenerating an unchanged gallery changes no file.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import HrgraphError, RenderError
from ..files import write_atomic
from .render import INSTALL_HINT, plan_diagram, write_diagram
from ..build.shapes import format_count, infer_shapes
from ..spec.models import load_spec

__all__ = ["GalleryEntry", "write_gallery"]

COMMAND = "make gallery"


@dataclass(frozen=True)
class GalleryEntry:
    """One spec of the gallery: its drawing, or the error that kept it from being drawn."""

    spec: Path
    image: Path | None
    name: str = ""
    description: str = ""
    summary: str = ""  # the cells of its row in the page's table
    error: HrgraphError | None = None
    key: str = ""  # the spec's path below the gallery's folder, without suffix ("examples/densenet-cifar")


def _entry(path: Path, name: Path, out_dir: Path, allow_imports: bool, allow_outside: bool) -> GalleryEntry:
    # name: the spec's path below the gallery's folder (a subfolder's specs are drawn into the same subfolder).
    try:
        plan = infer_shapes(load_spec(path, allow_imports=allow_imports, allow_outside=allow_outside))
        image = out_dir / name.with_suffix(".svg")
        image.parent.mkdir(parents=True, exist_ok=True)
        image = write_diagram(plan_diagram(plan).source, image)
    except HrgraphError as err:
        return GalleryEntry(spec=path, image=None, name=path.stem, error=err, key=name.with_suffix("").as_posix())
    edge_params = sum(p.params for p in plan.projections.values())
    summary = (
        f"{len(plan.spec.nodes)} | {len(plan.projections)} | {plan.params:,} ({format_count(plan.params)}) | "
        f"{format_count(edge_params)} | {'x'.join(map(str, plan.input_shape))}"
    )
    return GalleryEntry(path, image, plan.spec.name or path.stem, plan.spec.description, summary, key=name.with_suffix("").as_posix())


def _md(text: str) -> str:
    """Free text (a spec's name or description) as inline Markdown: one line, no HTML tag, no table cell break."""
    text = "".join("\\" + ch if ch in "\\[]|`" else ch for ch in str(text))
    return " ".join(text.replace("<", "&lt;").split())


def _anchor(entry: GalleryEntry) -> str:
    # The file's path below the gallery's folder: its stem for a spec of the folder itself.
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in entry.key.replace("/", "-"))


def _markdown(entries: list[GalleryEntry], index: Path, spec_dir: Path) -> str:
    def rel(p: Path) -> str:
        return Path(os.path.relpath(p, index.parent)).as_posix()

    lines = [
        "# Gallery",
        "",
        f"Every spec in `{spec_dir.as_posix()}/`, drawn by hrgraph from the spec alone (no module is built): "
        "the main path top to bottom, long-range edges labelled with the projection the compiler inserts.",
        f"Regenerate with `{COMMAND}` (runs `hrgraph gallery {spec_dir.as_posix()} -o <dir>`); "
        "draw one spec with `hrgraph render SPEC -o OUT.svg`.",
        "",
        "| spec | nodes | long-range edges | params | in projections | input |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += [f"| [{_md(e.name)}](#{_anchor(e)}) | {e.summary or 'could not be drawn | | | |'} |" for e in entries]
    for e in entries:
        lines += ["", f'<a id="{_anchor(e)}"></a>', f"## {_md(e.name)}", "", f"`{e.spec.as_posix()}`"]
        if e.description:
            lines += ["", _md(e.description)]
        if e.error is not None:
            lines += ["", f"Could not be drawn: {_md(str(e.error))}"]
            continue
        lines += ["", f"![{_md(e.name)}]({rel(e.image)})"]
    return "\n".join(lines) + "\n"


def write_gallery(
    spec_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    index: str | os.PathLike[str] | None = None,
    *,
    allow_imports: bool = False,
    allow_outside: bool = False,
) -> list[GalleryEntry]:
    """Draw every ``*.yaml`` spec of ``spec_dir`` and its subfolders to ``out_dir/<path>.svg`` and write the index page.

    Parameters
    ----------
    spec_dir : path
        Directory of specs (``*.yaml``: its own in sorted order, then its subfolders').
    out_dir : path
        Directory for the SVGs; created if missing.
    index : path, optional
        The Markdown page; default ``out_dir`` with suffix ``.md``.
    allow_imports : bool
        Run the imports that specs list (see :func:`~hrgraph.spec.load_spec`).
    allow_outside : bool
        Let ``extends`` read files outside each spec's folder (see :func:`~hrgraph.spec.load_spec`).

    Returns
    -------
    list of GalleryEntry
        One per spec; a spec that fails to load or draw has ``error`` set and
        appears on the page with its error, and the others are still drawn.

    Raises
    ------
    RenderError
        Graphviz's ``dot`` is missing (every spec would fail the same way);
        checked before anything is written.
    """
    spec_dir, out_dir = Path(spec_dir), Path(out_dir)
    index = Path(index) if index is not None else out_dir.with_suffix(".md")
    if shutil.which("dot") is None:
        raise RenderError(f"Graphviz's 'dot' program is not on PATH, so no SVG can be drawn: {INSTALL_HINT}")
    out_dir.mkdir(parents=True, exist_ok=True)
    # One spec that fails (even in Graphviz) is listed with its error; the others are still drawn.
    # The folder's own specs first, then each subfolder's (specs/examples/).
    paths = sorted(spec_dir.rglob("*.yaml"), key=lambda p: (len(p.relative_to(spec_dir).parts), p.relative_to(spec_dir).as_posix()))
    entries = [_entry(path, path.relative_to(spec_dir), out_dir, allow_imports, allow_outside) for path in paths]
    write_atomic(index, _markdown(entries, index, spec_dir).encode("utf-8"))
    return entries

