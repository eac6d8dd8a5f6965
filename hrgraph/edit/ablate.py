"""Structural ablation: new specs with some long-range edges removed.

The HiResNet paper's Table 2 removes hierarchical residuals from a network
and retrains it.  :func:`ablate` derives such a spec from any spec, selecting
edges by ``"from:to"`` or by pattern; :func:`sweep` derives a whole family of
them (one per edge, leave-one-out, every subset).  The derived specs are
ordinary specs: the edges are gone, and so are their projections' parameters.
To cut edges of a *trained* model without removing anything, use
``model.set_edges(disabled=[...])`` instead (see ``docs/ablation.md``).

An edge selector is ``"from:to"`` (or ``"from->to"``) where either side is a
node id or a shell-style pattern: ``"stem:*"`` is every edge leaving ``stem``,
``"*:stage4"`` every edge entering ``stage4``, ``"*:*"`` every edge.  Edges
from the network's input are ``"input:*"``; a ``*`` matches them too, since a
selector picks among the edges a spec has (unlike an edge pattern in a spec,
whose ``*`` stands for nodes only).  No torch here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Callable

from ..errors import GraphError, UnknownNodeError, did_you_mean
from ..build.graph import _listing, _matches, _split, check_graph, select_edges
from ..spec.kinds import NETWORK_INPUT
from ..spec.models import Edge, Spec, load_spec, parse_edge_ref

__all__ = ["select_edges", "ablate", "sweep", "variant_edges", "VARIANTS", "SWEEPS", "MAX_VARIANTS"]

#: Sweeps refuse to derive more specs than this unless the caller raises it
#: (a powerset over 9 edges is 512 networks to train).
MAX_VARIANTS = 256

SWEEPS = ("single", "leave-one-out", "powerset")

# -- named variants ---------------------------------------------------------------


def _in_edges(spec: Spec) -> list[str]:
    # The paper's HiResNet-In: "from the first convolution to every block".  Edges
    # from the raw network input ('input:*') leave no convolution, so they are not "in".
    return [f"{spec.nodes[0].id}:*"]


def _last_stage(spec: Spec) -> str | None:
    # The last stage before the head: the last node that can take edges (a
    # classifier head cannot), so "out" needs no knowledge of node ids.
    last = [n.id for n in spec.nodes if n.accepts_edges][-1:]
    return last[0] if last else None


def _out_edges(spec: Spec) -> list[str]:
    # The paper's HiResNet-Out: "residuals from all residual blocks to the last
    # one".  The first node (the stem, a plain convolution) is not a residual
    # block, and its edges are what "in" keeps; so "out" leaves them out.
    # Nor is the raw network input a residual block: 'out' leaves its edge out too.
    last = _last_stage(spec)
    return [f"*:{last}", f"!{spec.nodes[0].id}:{last}", f"!{NETWORK_INPUT}:{last}"] if last else []


def _out_all_edges(spec: Spec) -> list[str]:
    last = _last_stage(spec)
    return [f"*:{last}"] if last else []


#: Named edge sets, as functions of the spec giving selectors (one starting
#: with ``!`` removes what it matches): ``in`` keeps the edges leaving the first
#: node (not those leaving the network ``input``); ``out`` (the paper's
#: HiResNet-Out) the edges entering the last node that accepts edges (the last
#: stage before the head) from any node but the first (and not from ``input``);
#: ``out-all`` every edge entering that last stage, the first node's and
#: ``input``'s included.
VARIANTS: dict[str, Callable[[Spec], list[str]]] = {"in": _in_edges, "out": _out_edges, "out-all": _out_all_edges}


def variant_edges(spec: Spec, variant: str) -> list[Edge]:
    """The edges a named variant keeps.

    Examples
    --------
    >>> spec = load_spec("specs/hiresnet18.yaml")
    >>> [e.name for e in variant_edges(spec, "in")]
    ['stem->stage2', 'stem->stage3', 'stem->stage4']
    >>> [e.name for e in variant_edges(spec, "out")]
    ['stage1->stage4', 'stage2->stage4']
    >>> [e.name for e in variant_edges(spec, "out-all")]
    ['stem->stage4', 'stage1->stage4', 'stage2->stage4']
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}{did_you_mean(variant, VARIANTS)}; known: {', '.join(VARIANTS)}")
    selectors = VARIANTS[variant](spec)
    keep = [_split(s, spec) for s in selectors if not s.startswith("!")]
    remove = [_split(s[1:], spec) for s in selectors if s.startswith("!")]
    edges = [e for e in spec.edges if any(_matches(e, *k) for k in keep) and not any(_matches(e, *r) for r in remove)]
    if not edges:
        raise GraphError(
            f"variant '{variant}' ({', '.join(selectors) or 'no node'}) keeps no edge of {spec.name or 'the spec'}; "
            f"its edges: {_listing(spec)}",
            path=spec.path,
        )
    keys = {e.key for e in edges}
    return [e for e in spec.edges if e.key in keys]


# -- deriving specs ----------------------------------------------------------------


def _token(edge: Edge) -> str:
    # Node ids cannot contain '-' or '+', so these names are unambiguous.
    return f"{edge.from_}-{edge.to}"


def _base_name(spec: Spec) -> str:
    if spec.name:
        return spec.name
    if spec.path:
        from pathlib import Path

        return Path(spec.path).stem
    return "spec"


def derived_name(spec: Spec, kept: Sequence[Edge]) -> str:
    """Name of ``spec`` keeping only ``kept``: after what it removes, or what it keeps if shorter.

    Examples
    --------
    >>> spec = load_spec("specs/hiresnet18.yaml")
    >>> derived_name(spec, spec.edges[1:])
    'hiresnet18-no-stem-stage2'
    >>> derived_name(spec, spec.edges[:1])
    'hiresnet18-only-stem-stage2'
    """
    keys = {e.key for e in kept}
    removed = [e for e in spec.edges if e.key not in keys]
    kept = [e for e in spec.edges if e.key in keys]
    base = _base_name(spec)
    if not removed:
        return f"{base}-all-edges"
    if not kept:
        return f"{base}-no-edges"
    if len(kept) < len(removed):
        return f"{base}-only-" + "+".join(_token(e) for e in kept)
    return f"{base}-no-" + "+".join(_token(e) for e in removed)


def _derive(spec: Spec, kept: Sequence[Edge], name: str | None, why: str | None) -> Spec:
    keys = {e.key for e in kept}
    removed = [e.name for e in spec.edges if e.key not in keys]
    remaining = [e.name for e in spec.edges if e.key in keys]
    description = (
        f"Ablation of {_base_name(spec)}{f' ({why})' if why else ''}: "
        f"removes {', '.join(removed) or 'no edge'}; keeps {', '.join(remaining) or 'no edge'}."
    )
    result = spec.replace(
        name=name or derived_name(spec, kept),
        description=description,
        edges=[e for e in spec.edges if e.key in keys],
    )
    try:
        check_graph(result)
    except GraphError as err:
        # Removing an edge can leave a branch whose output reaches nothing.
        raise GraphError(
            f"removing {', '.join(removed)} leaves an invalid graph: {err.message}",
            path=spec.path,
            node=err.node,
            edge=err.edge,
        ) from err
    return result


def ablate(
    spec: Spec | str,
    drop: Iterable[str] | str | None = None,
    *,
    keep: Iterable[str] | str | None = None,
    variant: str | None = None,
    name: str | None = None,
) -> Spec:
    """A new spec without some long-range edges (structural ablation).

    Give exactly one of ``drop``, ``keep`` or ``variant``.  Nodes, their ids
    and the remaining edges are unchanged, so the ablated network's state_dict
    keys are a subset of the original's.

    Parameters
    ----------
    spec : Spec or str
        A spec, or anything :func:`~hrgraph.spec.load_spec` takes.
    drop : str or iterable of str
        Edge selectors of the edges to remove (``"stem:stage4"``, ``"*:stage4"``).
    keep : str or iterable of str
        Edge selectors of the edges to keep; all others are removed.
    variant : {"in", "out", "out-all"}
        A named edge set to keep (see :data:`VARIANTS`): ``out`` is the
        paper's HiResNet-Out (from the residual blocks into the last stage),
        ``out-all`` adds the first node's (the stem's) edge into it.
    name : str, optional
        Name of the new spec (default: derived, e.g. ``hiresnet18-no-stem-stage4``).

    Returns
    -------
    Spec

    Raises
    ------
    UnknownNodeError, GraphError
        From :func:`select_edges`, or if the result is not a valid graph.

    Examples
    --------
    >>> spec = load_spec("specs/hiresnet18.yaml")
    >>> ablate(spec, drop=["stem:stage4"]).name
    'hiresnet18-no-stem-stage4'
    >>> [e.name for e in ablate(spec, variant="out").edges]
    ['stage1->stage4', 'stage2->stage4']
    >>> len(ablate(spec, drop="*:*").edges)
    0
    """
    spec = load_spec(spec)
    given = [k for k, v in (("drop", drop), ("keep", keep), ("variant", variant)) if v is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of drop, keep or variant (got {', '.join(given) or 'none'})")
    if variant is not None:
        kept = variant_edges(spec, variant)
        return _derive(spec, kept, name or f"{_base_name(spec)}-{variant}", f"variant '{variant}'")
    if keep is not None:
        return _derive(spec, select_edges(spec, keep), name, None)
    dropped = {e.key for e in select_edges(spec, drop)}
    return _derive(spec, [e for e in spec.edges if e.key not in dropped], name, None)


def sweep(
    spec: Spec | str,
    kind: str,
    *,
    over: Iterable[str] | str | None = None,
    max_variants: int = MAX_VARIANTS,
) -> list[Spec]:
    """A family of ablated specs.

    Parameters
    ----------
    spec : Spec or str
    kind : {"single", "leave-one-out", "powerset"}
        ``single``: one spec per swept edge, keeping only that one of them;
        ``leave-one-out``: one spec per swept edge, removing only that one;
        ``powerset``: one spec per subset of the swept edges (the full set and
        the empty set included).
    over : str or iterable of str, optional
        Edge selectors of the edges to sweep (default: all); the others are kept
        in every variant.
    max_variants : int
        Refuse to derive more specs than this.

    Returns
    -------
    list of Spec
        In a fixed order: spec order of the edges, powerset subsets by size.

    Raises
    ------
    GraphError
        From :func:`select_edges`, or the spec has no edge to sweep.
    ValueError
        Unknown ``kind``, or more variants than ``max_variants``.

    Examples
    --------
    >>> spec = load_spec("specs/hiresnet18.yaml")
    >>> [s.name for s in sweep(spec, "single")][:2]
    ['hiresnet18-only-stem-stage2', 'hiresnet18-only-stem-stage3']
    >>> len(sweep(spec, "powerset"))
    64
    >>> sweep(spec, "powerset", max_variants=10)
    Traceback (most recent call last):
    ...
    ValueError: powerset over 6 edges gives 64 specs, above max_variants=10; raise it to proceed
    """
    spec = load_spec(spec)
    if kind not in SWEEPS:
        raise ValueError(f"unknown sweep {kind!r}{did_you_mean(str(kind), SWEEPS)}; known: {', '.join(SWEEPS)}")
    swept = select_edges(spec, over) if over is not None else list(spec.edges)
    if not swept:
        raise GraphError(f"{spec.name or 'the spec'} has no edges to sweep", path=spec.path)
    swept_keys = {e.key for e in swept}  # sets of keys: comparing Edge models pairwise is quadratic
    fixed = [e for e in spec.edges if e.key not in swept_keys]
    count = 2 ** len(swept) if kind == "powerset" else len(swept)
    if count > max_variants:
        raise ValueError(
            f"{kind} over {len(swept)} edges gives {count} specs, above max_variants={max_variants}; raise it to proceed"
        )
    if kind == "single":
        kept_sets = [fixed + [e] for e in swept]
    elif kind == "leave-one-out":
        kept_sets = [[x for x in spec.edges if x.key != e.key] for e in swept]
    else:
        kept_sets = [
            fixed + list(subset) for size in range(len(swept) + 1) for subset in itertools.combinations(swept, size)
        ]
    return [_derive(spec, kept, None, f"{kind} sweep") for kept in kept_sets]
