"""Edge patterns: one item of ``edges:`` standing for many edges, expanded at load time.

An item of ``edges:`` is a *pattern* when its ``from`` or ``to`` is a list of
ids or contains a glob character (``*``, ``?``, ``[``), or when it gives
``min_skip``/``max_skip``::

    edges:
      - {from: "*", to: "*", min_skip: 2}      # HiResNet-18's six edges

It stands for every pair ``a -> b`` with ``a`` matching ``from``, ``b``
matching ``to`` (:func:`fnmatch.fnmatchcase` on node ids), ``a != b`` and
``min_skip <= position(b) - position(a) <= max_skip`` (positions in
``nodes``; ``min_skip`` defaults to 1, so only forward pairs, and ``max_skip``
to no bound).  A pair whose source kind emits no edges or whose target kind
accepts none (a classifier) is left out when that end was matched by a glob;
named plainly, it is kept and refused as it would be in a plain edge.  Every
other key (``projection``, ``merge``, ``pool``, ``channels``, ``gate``, ...)
is copied onto each edge.

Expansion works on the position-keeping data of :mod:`hrgraph.spec.source`, after
``extends`` and before validation: each edge it makes carries the pattern's
source marks, so any later error about it (a cycle, a shape) points at the
pattern's line, and everything downstream (graph, shapes, ablation, diagrams,
checkpoints, fingerprints) sees plain edges.  Within one list, an explicit edge
of the same pair overrides a pattern's edge wherever it stands, and where two
patterns make the same pair, the later pattern's edge is kept.  The edges of a
pattern take its place in the list, ordered by target position, then source
position (the order in which the forward sums them).  No torch here.

Why one module past 500 lines: parsing a pattern, matching it against node ids and
expanding it with its override rules are one algorithm over one data structure; most of
the length is the docstrings and examples that define the syntax.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from ..errors import GraphError, SpecError, UnknownNodeError, did_you_mean
from .kinds import KINDS
from .source import LDict, LList, Mark, strip

__all__ = [
    "PATTERN_KEYS",
    "MAX_EXPANDED_EDGES",
    "PatternExpansion",
    "is_pattern",
    "expand_edges",
    "expand_patterns",
    "check_edge_total",
    "recording",
    "describe_expansions",
]

#: Keys only a pattern has.
PATTERN_KEYS = ("min_skip", "max_skip")
_GLOB = re.compile(r"[*?\[]")
#: At most this many edges from the patterns of one list (``*`` to ``*`` over a
#: few thousand nodes is millions of pairs, refused before they are built), and
#: at most this many in a whole spec, once its ``extends`` chain is merged
#: (:func:`check_edge_total`): 600,000 edges take over 1 GB to validate.
MAX_EXPANDED_EDGES = 200_000
#: Matched nodes named in a message before "..." (a glob may match thousands).
_SHOWN = 8


@dataclass(frozen=True)
class PatternExpansion:
    """What one pattern expanded to, before explicit edges and later patterns overrode any.

    ``pattern`` is the item as written (plain data), ``mark`` where it is, and
    ``edges`` the ``(from, to)`` pairs it made, in order.
    """

    pattern: dict[str, Any]
    mark: Mark | None
    edges: tuple[tuple[str, str], ...]

    @property
    def where(self) -> str:
        """``path:line:column`` of the pattern, as far as known."""
        if self.mark is None:
            return "<spec>"
        return f"{self.mark.path or '<spec>'}:{self.mark.line}:{self.mark.column}"


_recorder: ContextVar[list[PatternExpansion] | None] = ContextVar("hrgraph_pattern_recorder", default=None)


@contextmanager
def recording() -> Iterator[list[PatternExpansion]]:
    """Collect the :class:`PatternExpansion` of every pattern expanded inside the block.

    Loading a spec expands the patterns of each file of its ``extends`` chain
    (parents first); this is how ``hrgraph validate --expand`` sees them.

    Examples
    --------
    >>> from hrgraph import load_spec
    >>> with recording() as expansions:
    ...     spec = load_spec("specs/resnet18.yaml")
    >>> expansions
    []
    """
    found: list[PatternExpansion] = []
    token = _recorder.set(found)
    try:
        yield found
    finally:
        _recorder.reset(token)


def _is_glob(text: Any) -> bool:
    return isinstance(text, str) and _GLOB.search(text) is not None


def is_pattern(item: Any) -> bool:
    """Whether an item of ``edges:`` is a pattern rather than a plain edge.

    Examples
    --------
    >>> is_pattern({"from": "stem", "to": "stage4"})
    False
    >>> is_pattern({"from": "*", "to": "stage4"}), is_pattern({"from": ["stem"], "to": "stage4"})
    (True, True)
    >>> is_pattern({"from": "stem", "to": "stage4", "max_skip": 3})
    True
    """
    if not isinstance(item, Mapping):
        return False
    if any(key in item for key in PATTERN_KEYS):
        return True
    return any(isinstance(item.get(end), list) or _is_glob(item.get(end)) for end in ("from", "to"))


def _plain_pair(item: Any) -> tuple[str, str] | None:
    if isinstance(item, Mapping) and isinstance(item.get("from"), str) and isinstance(item.get("to"), str):
        return (item["from"], item["to"])
    return None


# -- the nodes a pattern is matched against ----------------------------------------


class _Nodes:
    """Ids in order, positions, and what each node's kind allows."""

    def __init__(self, nodes: Sequence[Any]) -> None:
        self.ids: list[str] = []
        self.position: dict[str, int] = {}
        self.emits: list[bool] = []
        self.accepts: list[bool] = []
        self.kind: list[str] = []
        for item in nodes:
            node_id = item.get("id") if isinstance(item, Mapping) else None
            if not isinstance(node_id, str) or node_id in self.position:
                continue  # validation and the graph checks report these nodes
            kind = item.get("kind")
            # A kind not (yet) registered is assumed to take edges: if it does
            # not, the graph check refuses the edge at the pattern's line,
            # which is louder than leaving the edge out.
            cls = KINDS.get(kind) if kind in KINDS else None
            self.position[node_id] = len(self.ids)
            self.ids.append(node_id)
            self.kind.append(str(kind))
            self.emits.append(cls is None or cls.emits_edges)
            self.accepts.append(cls is None or cls.accepts_edges)


# -- one pattern ---------------------------------------------------------------


def _where(mark: Mark | None, path: str | None = None) -> dict[str, Any]:
    if mark is None:
        return {"path": path}
    return {"path": mark.path or path, "line": mark.line, "column": mark.column}


def _shown(end: Any) -> str:
    if isinstance(end, list):
        return "[" + ", ".join(str(e) for e in end) + "]"
    return str(end)


def _title(item: Mapping[str, Any]) -> str:
    return f"edge pattern {_shown(item.get('from'))}->{_shown(item.get('to'))}"


def _key_mark(item: Any, key: str, fallback: Mark | None) -> Mark | None:
    marks = getattr(item, "marks", {})
    return marks.get(key, fallback) if isinstance(marks, dict) else fallback


def _element_marks(value: Any, mark: Mark | None) -> list[Mark | None]:
    if isinstance(value, LList):
        return [m or mark for m in value.marks]
    if isinstance(value, list):
        return [mark] * len(value)
    return [mark]


def _check_item(item: Mapping[str, Any], mark: Mark | None, edge_keys: Collection[str]) -> tuple[int, int | None]:
    """Refuse what a pattern may not say; return its ``(min_skip, max_skip)``."""
    title = _title(item)
    known = ["from", "to", *[k for k in edge_keys if k not in ("from", "to")], *PATTERN_KEYS]
    for key in item:
        if key not in known:
            raise SpecError(
                f"{title}: unknown key '{key}'{did_you_mean(str(key), known)}", **_where(_key_mark(item, key, mark))
            )
    for end in ("from", "to"):
        if end not in item:
            raise SpecError(f"{title}: missing required key '{end}'", **_where(mark))
        value = item[end]
        elements = value if isinstance(value, list) else [value]
        if not elements or not all(isinstance(e, str) and e for e in elements):
            raise SpecError(
                f"{title}: {end}: expected a node id, a glob (such as 'stage*') or a non-empty list of them",
                **_where(_key_mark(item, end, mark)),
            )
    skips: dict[str, int] = {}
    for key in PATTERN_KEYS:
        if key in item:
            value = item[key]
            if isinstance(value, bool) or not isinstance(value, int):
                raise SpecError(
                    f"{title}: {key}: expected an integer (a difference of positions in nodes), got {value!r}",
                    **_where(_key_mark(item, key, mark)),
                )
            skips[key] = value
    low, high = skips.get("min_skip", 1), skips.get("max_skip")
    if high is not None and low > high:
        raise SpecError(
            f"{title}: min_skip ({low}) is greater than max_skip ({high}), so the pattern can match no pair",
            **_where(_key_mark(item, "max_skip", mark)),
        )
    return low, high


def _glob_hint(glob: str, ids: Sequence[str]) -> str:
    # A glob close to one that matches: keep the wildcards, correct the
    # literal text before the first one from each id ("stgae*" -> "stage*").
    literal = _GLOB.split(glob, maxsplit=1)[0]
    rest = glob[len(literal):]
    candidates = {i[: len(literal)] + rest for i in ids if fnmatchcase(i, i[: len(literal)] + rest)}
    return did_you_mean(glob, sorted(candidates)) or did_you_mean(literal, ids)


def _match(item: Mapping[str, Any], end: str, nodes: _Nodes, mark: Mark | None) -> dict[int, bool]:
    """Positions of the nodes ``item[end]`` matches, each with whether it was named plainly."""
    value = item[end]
    elements = value if isinstance(value, list) else [value]
    marks = _element_marks(value, _key_mark(item, end, mark))
    found: dict[int, bool] = {}
    for element, element_mark in zip(elements, marks):
        if not _is_glob(element):
            if element not in nodes.position:
                raise UnknownNodeError(
                    f"{_title(item)}: {end}: unknown node '{element}'{did_you_mean(element, nodes.ids)}",
                    **_where(element_mark),
                )
            found[nodes.position[element]] = True
            continue
        hits = [p for p, node_id in enumerate(nodes.ids) if fnmatchcase(node_id, element)]
        if not hits:
            raise GraphError(
                f"{_title(item)}: {end}: '{element}' matches no node{_glob_hint(element, nodes.ids)}",
                **_where(element_mark),
            )
        for p in hits:
            found.setdefault(p, False)
    return found


def _names(nodes: _Nodes, positions: Collection[int]) -> str:
    ordered = sorted(positions)
    shown = ", ".join(f"{nodes.ids[p]} ({p})" for p in ordered[:_SHOWN])
    return shown + (f", ... ({len(ordered)} nodes)" if len(ordered) > _SHOWN else "")


def _pairs(
    item: Mapping[str, Any], mark: Mark | None, nodes: _Nodes, low: int, high: int | None, budget: int
) -> list[tuple[int, int]]:
    """The ``(source, target)`` positions of ``item``, by target, then source."""
    sources, targets = _match(item, "from", nodes, mark), _match(item, "to", nodes, mark)
    ordered = sorted(sources)
    pairs: list[tuple[int, int]] = []
    in_range = 0
    mute_source: set[int] = set()
    mute_target: set[int] = set()
    for b in sorted(targets):
        lo = bisect_left(ordered, b - high) if high is not None else 0
        hi = bisect_right(ordered, b - low)
        for a in ordered[lo:hi]:
            if a == b:
                continue
            in_range += 1
            if not sources[a] and not nodes.emits[a]:
                mute_source.add(a)
                continue
            if not targets[b] and not nodes.accepts[b]:
                mute_target.add(b)
                continue
            pairs.append((a, b))
            if len(pairs) > budget:
                raise GraphError(
                    f"{_title(item)}: expands to more than {MAX_EXPANDED_EDGES:,} edges; "
                    "narrow it with max_skip or fewer nodes on an end",
                    **_where(mark),
                )
    if not pairs:
        skip = f"{low} <= position(to) - position(from)" + (f" <= {high}" if high is not None else "")
        why = [
            f"from matched {_names(nodes, sources)}",
            f"to matched {_names(nodes, targets)}",
        ]
        if not in_range:
            why.append(f"no pair of distinct nodes has {skip}")
        if mute_source:
            kinds = sorted({nodes.kind[a] for a in mute_source})
            why.append(f"left out: sources that emit no edges ({', '.join(kinds)}: {_names(nodes, mute_source)})")
        if mute_target:
            kinds = sorted({nodes.kind[b] for b in mute_target})
            why.append(f"left out: targets that accept no edges ({', '.join(kinds)}: {_names(nodes, mute_target)})")
        raise GraphError(f"{_title(item)}: expands to no edge: " + "; ".join(why), **_where(mark))
    return pairs


def _edge(item: Mapping[str, Any], mark: Mark | None, pair: tuple[str, str], ends: dict[str, Mark | None]) -> LDict:
    """A plain edge of ``pair`` with the pattern's options and source marks."""
    edge = LDict({"from": pair[0], "to": pair[1]}, mark=mark)
    edge.marks["from"], edge.marks["to"] = ends["from"] or mark, ends["to"] or mark
    for key, value in item.items():
        if key in ("from", "to") or key in PATTERN_KEYS:
            continue
        edge[key] = value
        if (key_mark := _key_mark(item, key, None)) is not None:
            edge.marks[key] = key_mark
    return edge


def _end_marks(item: Mapping[str, Any], mark: Mark | None, end: str, nodes: _Nodes) -> dict[str, Mark | None]:
    # The mark of the list element (or the key) that matched each node, so a
    # refused end points at the very word that named it.
    value = item[end]
    elements = value if isinstance(value, list) else [value]
    marks = _element_marks(value, _key_mark(item, end, mark))
    out: dict[str, Mark | None] = {}
    for element, element_mark in zip(elements, marks):
        if _is_glob(element):
            for node_id in nodes.ids:
                if fnmatchcase(node_id, element):
                    out.setdefault(node_id, element_mark)
        else:
            out[element] = element_mark  # a plain id wins over a glob that also matches it
    return out


# -- a list of edges -------------------------------------------------------------


def expand_edges(edges: Any, nodes: Any, *, edge_keys: Collection[str]) -> Any:
    """Expand the patterns of a raw ``edges`` list against a raw ``nodes`` list.

    Parameters
    ----------
    edges : LList
        Items of ``edges:`` as read (plain edges and patterns).  Anything else
        is returned unchanged, for validation to report.
    nodes : list
        Items of ``nodes:`` as read (their ids, order and kinds are used).
    edge_keys : collection of str
        The keys a plain edge accepts (``from``, ``to`` and its options), for
        the did-you-mean of an unknown key in a pattern.

    Returns
    -------
    LList
        The plain edges: explicit ones as given, each pattern replaced by its
        edges (leaving out pairs an explicit edge or a later pattern gives).
        ``edges`` itself if it holds no pattern.

    Raises
    ------
    SpecError
        An unknown key, a missing or malformed end, a ``min_skip``/``max_skip``
        that is not an integer, or ``min_skip > max_skip``.
    UnknownNodeError
        A plainly named id that is not a node.
    GraphError
        A glob that matches no node, a pattern that expands to no edge (the
        message says what each end matched and why no pair is left), or more
        than :data:`MAX_EXPANDED_EDGES` edges.

    Examples
    --------
    >>> from hrgraph.spec.source import parse_yaml
    >>> data = parse_yaml('''
    ... nodes: [{id: a, kind: conv, channels: 8}, {id: b, kind: conv, channels: 8},
    ...         {id: c, kind: conv, channels: 8}, {id: head, kind: classifier, classes: 2}]
    ... edges:
    ...   - {from: "*", to: "*", pool: max}
    ...   - {from: a, to: b, pool: avg}
    ... ''')
    >>> out = expand_edges(data["edges"], data["nodes"], edge_keys=["from", "to", "pool"])
    >>> [(e["from"], e["to"], e["pool"]) for e in out]   # a -> b: the explicit edge's
    [('a', 'c', 'max'), ('b', 'c', 'max'), ('a', 'b', 'avg')]
    >>> out.marks[0].line   # the pattern's line
    5
    """
    if not isinstance(edges, LList) or not any(is_pattern(item) for item in edges):
        return edges
    table = _Nodes(nodes if isinstance(nodes, list) else [])
    explicit = {pair for item in edges if not is_pattern(item) and (pair := _plain_pair(item)) is not None}
    made: dict[int, list[tuple[str, str]]] = {}
    owner: dict[tuple[str, str], int] = {}  # pair -> the pattern whose edge is kept: the last to make it
    budget = MAX_EXPANDED_EDGES
    recorder = _recorder.get()
    for i, item in enumerate(edges):
        if not is_pattern(item):
            continue
        mark = edges.marks[i] or getattr(item, "mark", None)
        low, high = _check_item(item, mark, edge_keys)
        positions = _pairs(item, mark, table, low, high, budget)
        budget -= len(positions)
        made[i] = [(table.ids[a], table.ids[b]) for a, b in positions]
        for pair in made[i]:
            owner[pair] = i
        if recorder is not None:
            recorder.append(PatternExpansion(strip(item), mark, tuple(made[i])))
    out = LList([], mark=edges.mark)
    out.marks = []
    for i, item in enumerate(edges):
        mark = edges.marks[i]
        if i not in made:
            out.append(item)
            out.marks.append(mark)
            continue
        sources = _end_marks(item, mark, "from", table)
        targets = _end_marks(item, mark, "to", table)
        for pair in made[i]:
            if pair in explicit or owner[pair] != i:
                continue
            out.append(_edge(item, mark, pair, {"from": sources.get(pair[0]), "to": targets.get(pair[1])}))
            out.marks.append(mark or getattr(item, "mark", None))
    return out


def check_edge_total(edges: Any, path: str | None = None) -> None:
    """Refuse an ``edges`` list of more than :data:`MAX_EXPANDED_EDGES` edges, saying which file gave how many.

    The cap on one list's patterns alone lets a chain of ``extends`` files,
    each under it, add up to any size; this is the cap on their sum.  Each edge
    is counted for the file its mark names (a pattern's edges for the
    pattern's file; an edge a child replaced, for the child).

    Raises
    ------
    GraphError
        Naming the total, the limit and each file's share, largest first.

    Examples
    --------
    >>> from hrgraph.spec.source import parse_yaml
    >>> edges = parse_yaml("[{from: a, to: b}, {from: b, to: c}]", "net.yaml")
    >>> check_edge_total(edges)
    >>> import hrgraph.spec.patterns as patterns
    >>> patterns.MAX_EXPANDED_EDGES, saved = 1, patterns.MAX_EXPANDED_EDGES
    >>> try:
    ...     check_edge_total(edges, "net.yaml")
    ... finally:
    ...     patterns.MAX_EXPANDED_EDGES = saved
    Traceback (most recent call last):
    ...
    hrgraph.errors.GraphError: net.yaml: the spec has 2 edges, more than the limit of 1 by 1 (patterns expanded, extends merged): net.yaml 2
    """
    if not isinstance(edges, list) or len(edges) <= MAX_EXPANDED_EDGES:
        return
    marks = getattr(edges, "marks", [None] * len(edges))
    shares = Counter((mark.path if mark is not None else None) or path or "<spec>" for mark in marks)
    text = ", ".join(f"{where} {count:,}" for where, count in shares.most_common())
    raise GraphError(
        f"the spec has {len(edges):,} edges, more than the limit of {MAX_EXPANDED_EDGES:,} by "
        f"{len(edges) - MAX_EXPANDED_EDGES:,} (patterns expanded, extends merged): {text}",
        path=path,
    )


def expand_patterns(data: Any, *, edge_keys: Collection[str]) -> Any:
    """``data`` (a raw spec document) with the patterns of its ``edges`` expanded.

    See :func:`expand_edges`; a document without patterns is returned as is.

    Examples
    --------
    >>> from hrgraph.spec.source import parse_yaml
    >>> data = parse_yaml('''
    ... nodes: [{id: a, kind: conv, channels: 8}, {id: b, kind: conv, channels: 8},
    ...         {id: c, kind: conv, channels: 8}]
    ... edges: [{from: [a, b], to: c}]
    ... ''')
    >>> [(e["from"], e["to"]) for e in expand_patterns(data, edge_keys=["from", "to"])["edges"]]
    [('a', 'c'), ('b', 'c')]
    """
    if not isinstance(data, LDict) or not isinstance(data.get("edges"), LList):
        return data
    edges = expand_edges(data["edges"], data.get("nodes"), edge_keys=edge_keys)
    check_edge_total(edges, data.mark.path if data.mark is not None else None)
    if edges is data["edges"]:
        return data
    out = LDict(data, mark=data.mark)
    out.marks = dict(data.marks)
    out["edges"] = edges
    return out


# -- reporting -------------------------------------------------------------------


def describe_expansions(expansions: Sequence[PatternExpansion], spec: Any) -> str:
    """The expansion of each pattern as text: its place, and each edge it made.

    An edge the resolved ``spec`` has from elsewhere (an explicit edge, a later
    pattern, a child spec's edge) is marked ``overridden by`` that place; one
    it no longer has is marked ``removed``.

    Parameters
    ----------
    expansions : sequence of PatternExpansion
        From :func:`recording`.
    spec : Spec
        The loaded spec (its ``edges`` and ``locate``).

    Examples
    --------
    >>> from hrgraph import load_spec
    >>> with recording() as expansions:
    ...     spec = load_spec('''
    ... input: {channels: 3, height: 8, width: 8}
    ... nodes: [{id: a, kind: conv, channels: 8}, {id: b, kind: conv, channels: 8},
    ...         {id: c, kind: conv, channels: 8}]
    ... edges:
    ...   - {from: "*", to: c}
    ...   - {from: a, to: c, pool: max}
    ... ''')
    >>> print(describe_expansions(expansions, spec))
    <spec>:6:5: pattern {from: '*', to: c}: 2 edges, 1 overridden
      a->c  overridden by <spec>:7:5
      b->c
    """
    final: dict[tuple[str, str], Mark | None] = {}
    for j, edge in enumerate(spec.edges):
        final.setdefault(edge.key, spec.locate("edges", j))
    lines = []
    for exp in expansions:
        notes = []
        for pair in exp.edges:
            name = f"{pair[0]}->{pair[1]}"
            if pair not in final:
                notes.append(f"  {name}  removed")
            elif final[pair] != exp.mark:
                at = final[pair]
                where = "<spec>" if at is None else f"{at.path or '<spec>'}:{at.line}:{at.column}"
                notes.append(f"  {name}  overridden by {where}")
            else:
                notes.append(f"  {name}")
        overridden = sum(1 for n in notes if " overridden by " in n)
        removed = sum(1 for n in notes if n.endswith("  removed"))
        written = ", ".join(f"{k}: {v!r}" if _is_glob(v) else f"{k}: {_shown(v)}" for k, v in exp.pattern.items())
        count = f"{len(exp.edges)} edge{'s' if len(exp.edges) != 1 else ''}"
        extra = "".join(f", {n} {what}" for n, what in ((overridden, "overridden"), (removed, "removed")) if n)
        lines.append(f"{exp.where}: pattern {{{written}}}: {count}{extra}")
        lines.extend(notes)
    return "\n".join(lines)
