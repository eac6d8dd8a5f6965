"""Reading graphs from files for ``hrgraph import``: GraphML, GML and adjacency CSV.

GraphML and GML are read with networkx; a CSV is one of two layouts, told
apart by its header (``docs/import.md``):

* an edge list: a header ``source,target[,attribute...]`` (or ``from,to,...``)
  and one edge per row, its attributes in the further columns;
* an adjacency matrix: a header row of node names (with an empty first cell
  when every row starts with its node's name, as ``pandas.DataFrame.to_csv``
  writes it), then one row per node; a nonzero entry in row ``i``, column
  ``j`` is an edge ``i -> j`` (weights are not used; an edge list's ``weight``
  column is kept, see :func:`~hrgraph.io.netx.from_networkx`).

Blank lines and lines starting with ``#`` are skipped in both, and a UTF-8
byte order mark (as spreadsheet programs write) is dropped in every format.

Every error names the file and, where the format allows it, the line: a CSV's
row, or the line where a GraphML or GML file defines the node.  No torch here.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError
from xml.parsers import expat
from xml.sax.saxutils import quoteattr

import networkx as nx

from ..errors import HrgraphError, SpecError, did_you_mean
from .netx import EDGE_ATTRIBUTES, Imported, convert
from ..spec.models import Edge

__all__ = ["FORMATS", "read_graph", "import_graph"]

#: File formats by suffix.
FORMATS = {".graphml": "graphml", ".xml": "graphml", ".gml": "gml", ".csv": "csv"}

#: At most this many levels of ``[ ... ]`` in a GML file (a graph's nodes and their
#: attributes need three or four): networkx parses GML recursively, and a file
#: nested 50,000 deep would end in a RecursionError.
MAX_GML_DEPTH = 64

#: (node name or None, edge "u->v" or None) -> 1-based line, or None where unknown.
Locator = Callable[[str | None, str | None], int | None]


def _format_of(path: Path, given: str | None) -> str:
    if given is not None:
        return given
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(FORMATS))
        raise SpecError(f"cannot tell the format from the suffix '{path.suffix}' (known: {known}); give --format", path=str(path))
    return fmt


def _text_locator(text: str, node_pattern: Callable[[str], str], edge_pattern: Callable[[str, str], str] | None) -> Locator:
    lines = text.splitlines()

    def find(pattern: str) -> int | None:
        compiled = re.compile(pattern)
        return next((i + 1 for i, line in enumerate(lines) if compiled.search(line)), None)

    def locate(node: str | None, edge: str | None) -> int | None:
        if edge is not None and edge_pattern is not None and "->" in edge:
            u, v = edge.split("->", 1)
            return find(edge_pattern(u, v))
        if node is not None:
            return find(node_pattern(node))
        return None

    return locate


def _graphml(path: Path, text: str) -> tuple[nx.Graph, Locator]:
    try:
        graph = nx.read_graphml(path)
    except ParseError as err:
        line, column = err.position
        raise SpecError(f"not a GraphML file: {err.msg.split(':')[0]}", path=str(path), line=line, column=column + 1) from None
    except (nx.NetworkXError, ValueError, KeyError) as err:
        raise SpecError(f"not a valid GraphML file: {err}", path=str(path)) from None

    except RecursionError:
        raise SpecError("not a valid GraphML file: nested too deeply to read", path=str(path)) from None
    _unique_graphml_ids(path, text)

    def attr(value: str) -> str:
        return re.escape(quoteattr(value))

    return graph, _text_locator(
        text,
        lambda n: rf"<node\b[^>]*\bid={attr(n)}",
        lambda u, v: rf"<edge\b(?=[^>]*\bsource={attr(u)})(?=[^>]*\btarget={attr(v)})",
    )


def _unique_graphml_ids(path: Path, text: str) -> None:
    """Refuse a GraphML file that defines a node id twice (networkx merges them silently).

    The nodes would be one node of the network with the attributes of the last
    definition and the edges of both: not the graph the file draws.
    """
    first: dict[str, int] = {}
    parser = expat.ParserCreate()

    def start(name: str, attrs: dict[str, str]) -> None:
        if name.rpartition(":")[2] != "node" or "id" not in attrs:
            return
        node, line = attrs["id"], parser.CurrentLineNumber
        if node in first:
            raise SpecError(
                f"node id {node!r} is defined twice, in lines {first[node]} and {line}; "
                "GraphML node ids must be unique (networkx would merge the two into one node)",
                path=str(path),
                line=line,
                node=node,
            )
        first[node] = line

    parser.StartElementHandler = start
    try:
        parser.Parse(text.encode("utf-8"), True)
    except expat.ExpatError:
        pass  # networkx read the file already; nothing here is for this check to report


def _gml_depth(path: Path, text: str) -> None:
    """Refuse a GML file nested more than :data:`MAX_GML_DEPTH` levels deep, naming the line."""
    depth = 0
    # Brackets inside strings and comment lines are not nesting.
    for token in re.finditer(r'"[^"]*"|^[ \t]*#[^\n]*|[\[\]]', text, flags=re.MULTILINE):
        bracket = token.group()
        if bracket == "[":
            depth += 1
            if depth > MAX_GML_DEPTH:
                line = text.count("\n", 0, token.start()) + 1
                raise SpecError(f"not a valid GML file: nested more than {MAX_GML_DEPTH} levels deep", path=str(path), line=line)
        elif bracket == "]":
            depth -= 1


def _gml(path: Path, text: str) -> tuple[nx.Graph, Locator]:
    _gml_depth(path, text)
    try:
        graph = nx.read_gml(path, label=None)
    except (nx.NetworkXError, ValueError) as err:
        raise SpecError(f"not a valid GML file: {err}", path=str(path)) from None
    except RecursionError:  # the depth check above should make this unreachable; a traceback would be worse
        raise SpecError("not a valid GML file: nested too deeply to read", path=str(path)) from None
    labels = [graph.nodes[n].get("label") for n in graph]
    if all(isinstance(label, str) for label in labels) and len(set(labels)) == len(labels):
        # Nodes named by their labels (as networkx writes them), in file order.
        named = nx.DiGraph() if graph.is_directed() else nx.Graph()
        if graph.is_multigraph():
            named = nx.MultiDiGraph() if graph.is_directed() else nx.MultiGraph()
        named.graph.update(graph.graph)
        for n, data in graph.nodes(data=True):
            named.add_node(data["label"], **{k: v for k, v in data.items() if k != "label"})
        for u, v, data in graph.edges(data=True):
            named.add_edge(graph.nodes[u]["label"], graph.nodes[v]["label"], **data)
        graph = named
        pattern = lambda n: rf'(^|[\s\[])label\s+"{re.escape(n)}"'  # noqa: E731
    else:
        pattern = lambda n: rf"(^|[\s\[])id\s+{re.escape(n)}(\s|\]|$)"  # noqa: E731
    return graph, _text_locator(text, pattern, None)


def _number(cell: str) -> float | None:
    try:
        value = float(cell) if cell.strip() else 0.0
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _csv(path: Path, text: str, ignore: Iterable[str]) -> tuple[nx.Graph, Locator]:
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(text.splitlines())
    try:
        for row in reader:
            # Blank lines and comment lines (first cell starting with "#") are skipped.
            if any(cell.strip() for cell in row) and not row[0].lstrip().startswith("#"):
                rows.append((reader.line_num, [cell.strip() for cell in row]))
    except csv.Error as err:
        raise SpecError(f"not a valid CSV file: {err}", path=str(path), line=reader.line_num) from None
    if not rows:
        raise SpecError("the file is empty; expected an edge list or an adjacency matrix", path=str(path))
    header_line, header = rows[0]
    lines: dict[str, int] = {}
    graph = nx.DiGraph()

    def fail(message: str, line: int, column: int | None = None) -> SpecError:
        return SpecError(message, path=str(path), line=line, column=column)

    if [h.lower() for h in header[:2]] in (["source", "target"], ["from", "to"]):
        allowed = [f for f in Edge.model_fields if f not in ("from_", "to")] + list(EDGE_ATTRIBUTES)
        # Connectome files capitalise their columns ("Weight"): a known attribute matches in any case.
        columns = [name.lower() if name not in allowed and name.lower() in allowed else name for name in header[2:]]
        for k, name in enumerate(columns):
            if name not in allowed and name not in ignore:
                raise fail(
                    f"unknown edge attribute '{name}'{did_you_mean(name, allowed)}; known: {', '.join(sorted(allowed))} "
                    f"(skip it with --ignore {name})",
                    header_line,
                )
        for line, row in rows[1:]:
            if len(row) != len(header):
                raise fail(f"expected {len(header)} cells like the header, found {len(row)}", line)
            u, v = row[0], row[1]
            if not u or not v:
                raise fail("an edge needs both a source and a target", line)
            if graph.has_edge(u, v):
                raise fail(f"duplicate edge {u} -> {v} (first in line {lines[f'{u}->{v}']})", line)
            for n in (u, v):
                lines.setdefault(n, line)
            attrs = {name: cell for name, cell in zip(columns, row[2:]) if cell and name not in ignore}
            graph.add_edge(u, v, **attrs)
            lines[f"{u}->{v}"] = line
    else:
        labelled = header[0] == ""
        names = header[1:] if labelled else header
        seen: dict[str, int] = {}
        for k, name in enumerate(names):
            if not name:
                raise fail(f"column {k + 1 + labelled} of the header has no node name", header_line)
            if name in seen:
                raise fail(f"node '{name}' named twice in the header (columns {seen[name]} and {k + 1 + labelled})", header_line)
            seen[name] = k + 1 + labelled
        if len(rows) - 1 != len(names):
            raise fail(f"an adjacency matrix of {len(names)} nodes needs {len(names)} rows, found {len(rows) - 1}", rows[-1][0])
        graph.add_nodes_from(names)
        for i, (line, row) in enumerate(rows[1:]):
            source = names[i]
            lines[source] = line
            if len(row) != len(header):
                raise fail(f"expected {len(header)} cells like the header, found {len(row)}", line)
            if labelled and row[0] != source:
                raise fail(f"row {i + 1} is labelled '{row[0]}', but column {i + 1} is '{source}'; rows and columns must list the nodes in the same order", line, 1)
            for j, cell in enumerate(row[1:] if labelled else row):
                value = _number(cell)
                if value is None:
                    raise fail(f"expected a number, found '{cell}'", line, j + 1 + labelled)
                if value != 0:
                    graph.add_edge(source, names[j])
                    lines[f"{source}->{names[j]}"] = line
    return graph, lambda node, edge: lines.get(edge) if edge is not None else lines.get(node)


def read_graph(path: str | Path, *, format: str | None = None, ignore: Iterable[str] = ()) -> tuple[nx.Graph, Locator]:
    """Read a graph file; returns the graph and a function giving the line of a node or edge.

    Parameters
    ----------
    path : str or Path
    format : "graphml", "gml" or "csv", optional
        Default: from the suffix (``FORMATS``).
    ignore : iterable of str
        CSV columns to leave out (GraphML and GML attributes are left out by :func:`~hrgraph.io.netx.convert`).

    Raises
    ------
    SpecError
        Unreadable file, or not valid in its format.
    """
    path = Path(path)
    fmt = _format_of(path, format)
    try:
        # utf-8-sig drops a byte order mark: left in, it made a CSV's "source" header unrecognised.
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise SpecError(f"cannot read: {err.strerror}", path=str(path)) from err
    except UnicodeDecodeError as err:
        raise SpecError(f"not a text file: {err.reason}", path=str(path)) from None
    if fmt == "graphml":
        return _graphml(path, text)
    if fmt == "gml":
        return _gml(path, text)
    return _csv(path, text, set(ignore))


def import_graph(path: str | Path, *, format: str | None = None, **options: Any) -> Imported:
    """Read a GraphML, GML or adjacency CSV file and make a spec of it.

    Attribute values are converted from text where the format stores them so
    (``convert(..., lax=True)``); ``options`` are those of
    :func:`~hrgraph.io.netx.from_networkx`.  ``name`` defaults to the file's stem.

    Raises
    ------
    SpecError, CycleError, GraphError
        As :func:`~hrgraph.io.netx.from_networkx` does, naming the file and, where
        it can be found, the line of the node or edge.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "areas.csv"
    >>> _ = path.write_text("source,target\\nV1,V2\\nV2,V4\\nV1,V4\\n")
    >>> result = import_graph(path, default_kind="conv")
    >>> [(n.id, n.input) for n in result.spec.nodes], result.spec.name
    ([('V1', None), ('V2', None), ('V4', ['V1', 'V2'])], 'areas')
    >>> _ = path.write_text("source,target\\nV1,V2\\nV2,V1\\n")
    >>> import_graph(path)
    Traceback (most recent call last):
    ...
    hrgraph.errors.CycleError: ...areas.csv:2: node V1: the graph has a cycle: V1 -> V2 -> V1 ...
    """
    path = Path(path)
    graph, locate = read_graph(path, format=format, ignore=options.get("ignore", ()))
    if options.get("name") is None and "name" not in graph.graph:
        options["name"] = path.stem
    try:
        return convert(graph, lax=True, **options)
    except HrgraphError as err:
        if err.path is None:
            err.path = str(path)
            err.line = locate(err.node, err.edge)
            err.column = None
        raise
