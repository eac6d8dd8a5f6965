"""``extends:``: deriving a spec from another, on the raw YAML data.

Resolution works on the position-keeping data of :mod:`hrgraph.spec.source` before
validation, so every key of the merged document still knows its file and line
(an error in a parent spec names the parent file).  The rules:

- every top-level key of the child except ``nodes``, ``edges`` and
  ``remove_edges`` replaces the parent's wholesale;
- a child node whose id exists in the parent replaces that node in place; a
  node with a new id is inserted right after the node the child lists before it
  (at the start if it comes first);
- ``remove_edges: ["from:to", ...]`` drops parent edges (each must exist);
- a child edge with the same ends as a parent edge replaces it, others are appended;
- edge patterns (:mod:`hrgraph.spec.patterns`) are expanded per file before merging:
  a parent's against its own nodes (so ``remove_edges`` names the plain edges
  they made), a child's against the merged nodes, and the edges a child's
  pattern makes replace the parent's edges of the same pairs.

No torch here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import SpecError
from .patterns import check_edge_total
from .source import LDict, LList, Mark, read_yaml

__all__ = ["parse_edge_ref", "resolve_extends", "located_error"]


def parse_edge_ref(ref: str) -> tuple[str, str]:
    """Parse ``"from:to"`` or ``"from->to"`` into a pair of node ids.

    Examples
    --------
    >>> parse_edge_ref("stem:stage4")
    ('stem', 'stage4')
    >>> parse_edge_ref("stem->stage4")
    ('stem', 'stage4')
    """
    text = str(ref).strip()
    for sep in ("->", ":"):
        if sep in text:
            src, _, dst = text.partition(sep)
            src, dst = src.strip(), dst.strip()
            if src and dst:
                return src, dst
    raise ValueError(f"edge reference {ref!r} is not of the form 'from:to'")


def located_error(message: str, mark: Mark | None, path: str | None = None, **kw: Any) -> SpecError:
    if mark is None:
        return SpecError(message, path=path, **kw)
    return SpecError(message, path=mark.path or path, line=mark.line, column=mark.column, **kw)


def _edge_pair(item: Any) -> tuple[str, str] | None:
    """The ends of a raw edge, or ``None`` where they are not both strings (validation reports those)."""
    if isinstance(item, Mapping) and isinstance(item.get("from"), str) and isinstance(item.get("to"), str):
        return (item["from"], item["to"])
    return None


def resolve_extends(
    data: Any,
    path: str | None,
    base_dir: Path,
    chain: tuple[str, ...],
    *,
    root: Path | None = None,
    allow_outside: bool = False,
    expand: Callable[[Any, Any], Any] | None = None,
) -> Any:
    """Resolve ``extends`` in ``data`` (read from ``path``, relative paths from ``base_dir``).

    Parents must lie under ``root`` (default ``base_dir``: the folder of the
    spec being loaded), symbolic links resolved, unless ``allow_outside``: a
    spec from elsewhere must not make hrgraph read any file on the machine.
    ``expand(edges, nodes)`` turns edge patterns into plain edges
    (:func:`hrgraph.spec.patterns.expand_edges`): each parent's before merging, a
    child's against the merged nodes.  The edges of a document without
    ``extends`` are returned unexpanded.
    """
    root = (root or base_dir).resolve()
    if not isinstance(data, LDict):
        return data
    if "extends" not in data:
        if "remove_edges" in data:
            raise located_error("remove_edges needs extends: it removes edges of the parent spec", data.marks.get("remove_edges"), path)
        return data
    ref = data["extends"]
    if not isinstance(ref, str) or not ref.strip():
        raise located_error("extends must be the path of another spec file", data.marks.get("extends"), path)
    mark = data.marks.get("extends")
    parent_path = (base_dir / ref).resolve()
    if not allow_outside and not parent_path.is_relative_to(root):
        raise located_error(
            f"extends: '{ref}' is outside the spec's folder ({root}); a spec may extend only files under it "
            "unless allowed with --allow-outside (CLI) or allow_outside=True (API)",
            mark,
            path,
        )
    if str(parent_path) in chain:
        cycle = " -> ".join([Path(c).name for c in chain] + [parent_path.name])
        raise located_error(f"extends forms a cycle: {cycle}", mark, path)
    if parent_path.is_dir():
        raise located_error(f"extends: '{ref}' is a directory, not a spec file", mark, path)
    if not parent_path.exists():
        raise located_error(f"extends: no such spec file '{ref}' (looked in {base_dir})", mark, path)
    parent_name = _display_path(parent_path)
    try:
        parent = read_yaml(parent_name)
    except SpecError as err:
        if err.line is not None:
            raise  # an error inside the parent, reported at its own line
        # Unreadable as a whole (not a regular file, too large, ...): say so where extends names it.
        raise located_error(f"extends: '{ref}': {err.message}", mark, path) from None
    if not isinstance(parent, LDict):
        raise located_error("the parent spec is not a mapping", getattr(parent, "mark", None), parent_name)
    parent = resolve_extends(
        parent,
        parent_name,
        parent_path.parent,
        chain + (str(parent_path),),
        root=root,
        allow_outside=allow_outside,
        expand=expand,
    )
    if expand is not None and "edges" in parent:
        # The parent's edges as the parent spec has them, its patterns expanded
        # against its own nodes: remove_edges and the child's edges refer to those.
        parent["edges"] = expand(parent["edges"], parent.get("nodes"))

    merged = LDict(parent, mark=data.mark)
    merged.marks = dict(parent.marks)
    merged.pop("extends", None)
    for key, value in data.items():
        if key in ("extends", "remove_edges", "nodes", "edges"):
            continue
        merged[key] = value  # every other key replaces the parent's wholesale
        if key in data.marks:
            merged.marks[key] = data.marks[key]
    if "nodes" in data:
        merged["nodes"] = _merge_nodes(parent.get("nodes"), data["nodes"], data.marks.get("nodes"), path)
        if "nodes" in data.marks:
            merged.marks.setdefault("nodes", data.marks["nodes"])
    edges = parent.get("edges")
    if "remove_edges" in data:
        edges = _remove_edges(edges, data["remove_edges"], data.marks.get("remove_edges"), path)
    if "edges" in data:
        # The child's patterns expand against the merged nodes and, within the
        # child, yield to its explicit edges; then each edge replaces the
        # parent's edge of the same pair, as an explicit child edge does.
        child_edges = data["edges"] if expand is None else expand(data["edges"], merged.get("nodes"))
        edges = _add_edges(edges, child_edges, data.marks.get("edges"), path)
        if "edges" in data.marks:
            merged.marks.setdefault("edges", data.marks["edges"])
    if edges is not None:
        check_edge_total(edges, path)
        merged["edges"] = edges
    return merged


def _merge_nodes(parent_nodes: Any, child_nodes: Any, mark: Mark, path: str | None) -> Any:
    """Replace nodes by id; insert new ids after the child node listed before them."""
    if not isinstance(child_nodes, LList):
        raise located_error("nodes must be a list", mark, path)
    if not isinstance(parent_nodes, LList):
        return child_nodes
    out = LList(parent_nodes, mark=parent_nodes.mark)
    out.marks = list(parent_nodes.marks)
    ids = [n.get("id") if isinstance(n, Mapping) else None for n in out]
    anchor = -1  # insert position follows the last node the child named
    for item, item_mark in zip(child_nodes, child_nodes.marks):
        node_id = item.get("id") if isinstance(item, Mapping) else None
        if not isinstance(node_id, str):
            raise located_error("a node in a spec that extends another needs an id", item_mark, path)
        if node_id in ids:
            anchor = ids.index(node_id)
            out[anchor], out.marks[anchor] = item, item_mark
        else:
            anchor += 1
            out.insert(anchor, item)
            out.marks.insert(anchor, item_mark)
            ids.insert(anchor, node_id)
    return out


def _remove_edges(edges: Any, refs: Any, mark: Mark, path: str | None) -> Any:
    if not isinstance(refs, LList):
        raise located_error("remove_edges must be a list of 'from:to' strings", mark, path)
    edges = edges if isinstance(edges, LList) else LList([], mark=mark)
    pairs = [_edge_pair(e) for e in edges]
    position: dict[tuple[str, str], int] = {}
    for i, pair in enumerate(pairs):
        if pair is not None:
            position.setdefault(pair, i)
    drop = set()
    for ref, ref_mark in zip(refs, refs.marks):
        try:
            pair = parse_edge_ref(ref)
        except ValueError as err:
            raise located_error(str(err), ref_mark, path) from None
        if pair not in position:
            existing = ", ".join(f"{a}:{b}" for a, b in filter(None, pairs)) or "none"
            raise located_error(
                f"remove_edges: the parent has no edge {pair[0]}:{pair[1]}; its edges: {existing}",
                ref_mark,
                path,
                edge=f"{pair[0]}->{pair[1]}",
            )
        drop.add(position[pair])
    out = LList([e for i, e in enumerate(edges) if i not in drop], mark=edges.mark)
    out.marks = [m for i, m in enumerate(edges.marks) if i not in drop]
    return out


def _add_edges(edges: Any, new: Any, mark: Mark, path: str | None) -> Any:
    """Child edges replace parent edges with the same ends, others are appended."""
    if not isinstance(new, LList):
        raise located_error("edges must be a list", mark, path)
    if not isinstance(edges, LList):
        return new
    out = LList(edges, mark=edges.mark)
    out.marks = list(edges.marks)
    # Ends -> position (the first edge with those ends, as the parent lists it).
    position: dict[tuple[str, str], int] = {}
    for i, e in enumerate(out):
        if (pair := _edge_pair(e)) is not None:
            position.setdefault(pair, i)
    for item, item_mark in zip(new, new.marks):
        pair = _edge_pair(item)
        if pair is not None and pair in position:
            i = position[pair]
            out[i], out.marks[i] = item, item_mark
        else:
            if pair is not None:
                position[pair] = len(out)
            out.append(item)
            out.marks.append(item_mark)
    return out


def _display_path(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)
