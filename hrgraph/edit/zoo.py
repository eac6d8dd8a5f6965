"""The parameter table of a folder of specs, as the HiResNet paper reports it.

Every spec gets its node, edge and parameter counts (from shapes, no module
is built) and its parameter count relative to its family's original.  A
*family* is a set of specs with the same layers up to hidden widths and edges
(same input, kinds, depths, strides, cardinalities, classes); its *original*
is the member without edges and with the fewest parameters, so that
``resnet18``, ``resnet18-adjusted``, ``hiresnet18`` and its ablations form one
family whose original is ``resnet18``.  No torch here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import SpecError
from ..build.shapes import count_params
from ..spec.models import Spec, load_spec

__all__ = ["ZooEntry", "family_key", "spec_files", "load_zoo", "zoo_markdown"]


@dataclass(frozen=True)
class ZooEntry:
    """One row of the table."""

    file: str
    spec: Spec
    params: int
    family: str
    original: str | None
    #: The row's name: the file's stem, or its path where two files share a stem.
    label: str = ""

    @property
    def stem(self) -> str:
        return Path(self.file).stem

    @property
    def name(self) -> str:
        return self.label or self.stem

    @property
    def nodes(self) -> int:
        return len(self.spec.nodes)

    @property
    def edges(self) -> int:
        return len(self.spec.edges)


def family_key(spec: Spec) -> str:
    """A key equal for specs that differ only in hidden widths, edges, name and description.

    Examples
    --------
    >>> family_key(load_spec("specs/resnet18.yaml")) == family_key(load_spec("specs/hiresnet18.yaml"))
    True
    >>> family_key(load_spec("specs/resnet18.yaml")) == family_key(load_spec("specs/plain18.yaml"))
    False
    """
    data = spec.to_dict(minimal=False)
    for key in ("name", "description", "edges"):
        data.pop(key, None)
    data["nodes"] = [
        {k: v for k, v in node.model_dump(mode="json").items() if k not in node.width_fields} for node in spec.nodes
    ]
    return json.dumps(data, sort_keys=True)


def spec_files(paths: Iterable[str | Path]) -> list[Path]:
    """The ``.yaml``/``.yml`` files of ``paths`` (folders are listed, not recursed), sorted by name."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise SpecError(f"no such spec file or folder: {path}", path=str(path))
    return files


def load_zoo(paths: Iterable[str | Path], *, allow_imports: bool = False, allow_outside: bool = False) -> list[ZooEntry]:
    """Load every spec in ``paths`` and group it into its family, originals first.

    ``allow_imports`` and ``allow_outside`` are passed to :func:`~hrgraph.spec.models.load_spec`.

    Rows are ordered by family (by the original's file name), then the
    original, then by number of edges, parameters and file name.

    Examples
    --------
    >>> rows = load_zoo(["specs/resnet18.yaml", "specs/hiresnet18.yaml"])
    >>> [(r.stem, r.original) for r in rows]
    [('resnet18', 'resnet18'), ('hiresnet18', 'resnet18')]
    >>> f"{rows[1].params / rows[0].params - 1:+.2%}"
    '+1.58%'
    """
    files: list[Path] = []
    seen: set[Path] = set()
    for path in spec_files(paths):
        if path.resolve() not in seen:  # the same file given twice (a folder and a file in it) is one row
            seen.add(path.resolve())
            files.append(path)
    stems = [p.stem for p in files]
    # Rows are named by stem; where stems repeat (a/net.yaml, b/net.yaml) by path, so none merge.
    label = {str(p): (p.stem if stems.count(p.stem) == 1 else p.with_suffix("").as_posix()) for p in files}
    loaded = []
    for path in files:
        spec = load_spec(path, allow_imports=allow_imports, allow_outside=allow_outside)
        loaded.append((str(path), spec, count_params(spec), family_key(spec)))
    families: dict[str, list[tuple[str, Spec, int, str]]] = {}
    for item in loaded:
        families.setdefault(item[3], []).append(item)
    rows: list[ZooEntry] = []
    ordered = []
    for members in families.values():
        edgeless = [m for m in members if not m[1].edges]
        original = min(edgeless, key=lambda m: (m[2], label[m[0]])) if edgeless else None
        first = original or min(members, key=lambda m: label[m[0]])
        family = label[first[0]]
        rest = sorted((m for m in members if m is not original), key=lambda m: (len(m[1].edges), m[2], label[m[0]]))
        ordered.append((family, ([original] if original else []) + rest, original))
    for family, members, original in sorted(ordered, key=lambda f: f[0]):
        for file, spec, params, _ in members:
            rows.append(
                ZooEntry(
                    file=file,
                    spec=spec,
                    params=params,
                    family=family,
                    original=label[original[0]] if original else None,
                    label=label[file],
                )
            )
    return rows


def zoo_markdown(rows: list[ZooEntry], *, command: str | None = None, title: str = "Model zoo") -> str:
    """The table as a Markdown document (what ``hrgraph zoo`` prints).

    ``command``, if given, is recorded in a comment saying the file is generated.
    Rows show the spec's ``name`` (its file's stem if it has none), then the
    file's label, which families and "vs original" refer to.
    """
    by_name = {r.name: r for r in rows}
    lines = [f"# {title}", ""]
    if command:
        lines += [f"<!-- Generated by `{command}`; do not edit. -->", ""]
    lines += [
        "#P is the number of learnable parameters, computed from shapes (the built modules have the same count).",
        "A family is the specs with the same layers up to hidden widths and edges; its original is the member",
        "without edges and with the fewest parameters, and \"vs original\" is #P relative to it.",
        "",
        "| Spec | File | Family | Nodes | Edges | #P | #P (M) | vs original |",
        "|:-----|:-----|:-------|------:|------:|---:|-------:|------------:|",
    ]
    for r in rows:
        if r.original is None:
            relative = "n/a"
        elif r.original == r.name:
            relative = "original"
        else:
            relative = f"{r.params / by_name[r.original].params - 1:+.2%}"
        lines.append(
            f"| {r.spec.name or r.name} | {r.name} | {r.family} | {r.nodes} | {r.edges} | {r.params:,} | {r.params / 1e6:.2f} | {relative} |"
        )
    lines.append("")
    return "\n".join(lines)

