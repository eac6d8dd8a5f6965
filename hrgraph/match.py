"""Parameter matching: widen (or narrow) a spec's hidden channels to a target parameter count.

The HiResNet paper's "Adjusted" baselines are the original networks with their
hidden layers widened until they have as many parameters as the HiResNet, so
that a gain cannot be put down to size alone.  :func:`match_params` does this
for any spec: it scales every hidden width (each node's ``width_fields``, e.g.
``channels``, and the ``channels`` of concat edges) by one common factor,
found by bisection on the parameter count computed from shapes, rounds each
width to an integer multiple of what the blocks need (the cardinality of a
ResNeXt stage, and of the stage it feeds), and, if the common factor alone
cannot land within the tolerance, then moves single widths by one multiple at
a time towards the target.  The input channels and the number of classes are
never touched.  No torch here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from .errors import HrgraphError, SpecError
from .kinds import MAX_CHANNELS, Block
from .shapes import count_params
from .spec import Edge, Spec, load_spec

__all__ = ["match_params", "scale_widths", "describe_widths", "TOLERANCE"]

#: Default relative tolerance of :func:`match_params` (the paper's counts match to 0.5%).
TOLERANCE = 0.005

# Width slots: ("node", position, field) or ("edge", position, "channels").
Slot = tuple[str, int, str]


def _multiples(spec: Spec) -> dict[str, int]:
    """Per node, what its widths must be a multiple of: its own need and its main-path consumers'."""
    need = {n.id: n.channel_multiple() for n in spec.nodes}
    for position, node in enumerate(spec.nodes):
        source = spec.main_input(position)
        if source is not None and source in need:
            # A grouped convolution needs its input channels divisible by its groups.
            need[source] = math.lcm(need[source], node.channel_multiple())
    return need


def _slots(spec: Spec) -> list[tuple[Slot, int, int]]:
    """Every hidden width: (slot, current value, multiple)."""
    need = _multiples(spec)
    slots = []
    for i, node in enumerate(spec.nodes):
        for field in node.width_fields:
            slots.append((("node", i, field), getattr(node, field), need[node.id]))
    for i, edge in enumerate(spec.edges):
        if edge.channels is not None:
            slots.append((("edge", i, "channels"), edge.channels, 1))
    return slots


def _apply(spec: Spec, widths: Mapping[Slot, int]) -> Spec:
    nodes: list[Block] = list(spec.nodes)
    edges: list[Edge] = list(spec.edges)
    for (where, i, field), value in widths.items():
        if where == "node":
            data = nodes[i].model_dump(by_alias=True)
            data[field] = value
            nodes[i] = type(nodes[i]).model_validate(data)
        else:
            edges[i] = edges[i].model_copy(update={field: value})
    return spec.replace(nodes=nodes, edges=edges)


def _round(value: float, multiple: int) -> int:
    steps = max(1, math.floor(value / multiple + 0.5))
    return min(steps * multiple, MAX_CHANNELS - MAX_CHANNELS % multiple)


def _scaled(slots: list[tuple[Slot, int, int]], factor: float) -> dict[Slot, int]:
    return {slot: _round(value * factor, multiple) for slot, value, multiple in slots}


def match_params(
    spec: Spec | str,
    target: Spec | str | int,
    *,
    tolerance: float = TOLERANCE,
    name: str | None = None,
) -> Spec:
    """A copy of ``spec`` whose hidden widths give ``target``'s parameter count.

    Parameters
    ----------
    spec : Spec or str
        The spec to resize (anything :func:`~hrgraph.spec.load_spec` takes).
    target : Spec, str or int
        A parameter count, or a spec (or spec file) whose count to reach.
    tolerance : float
        Largest accepted relative difference ``|params - target| / target``.
    name : str, optional
        Name of the new spec (default: ``<name>-adjusted``).

    Returns
    -------
    Spec
        Same nodes, kinds, depths, strides, edges, input and classes; only
        hidden widths differ.  Its description says what was matched.

    Raises
    ------
    SpecError
        The spec has no hidden widths, the target is not positive, or no
        widths within ``MAX_CHANNELS`` reach it within ``tolerance`` (for
        example a target below the count with every width at its minimum).

    Examples
    --------
    >>> resnet = load_spec("specs/resnet18.yaml")
    >>> adjusted = match_params(resnet, "specs/hiresnet18.yaml")
    >>> adjusted.name, [n.channels for n in adjusted.nodes[:5]]
    ('resnet18-adjusted', [65, 65, 129, 258, 516])
    >>> abs(count_params(adjusted) / count_params(load_spec("specs/hiresnet18.yaml")) - 1) < 0.005
    True
    """
    spec = load_spec(spec)
    if isinstance(target, int) and not isinstance(target, bool):
        goal, what = target, f"{target:,} parameters"
    else:
        other = load_spec(target)
        goal, what = count_params(other), f"{other.name or 'the target spec'} ({count_params(other):,} parameters)"
    where = {"path": spec.path}
    if goal <= 0:
        raise SpecError(f"the target parameter count must be positive, not {goal}", **where)
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be between 0 and 1, not {tolerance}")
    slots = _slots(spec)
    if not slots:
        raise SpecError("the spec has no hidden widths to scale (no node has width fields)", **where)

    def count(widths: dict[Slot, int]) -> int:
        try:
            return count_params(_apply(spec, widths))
        except HrgraphError as err:
            raise SpecError(f"resizing to {what} gives an invalid spec: {err.message}", **where) from err

    # Bisection on the common factor; the count grows with every width, so
    # with rounding it is a non-decreasing step function of the factor.
    lo, hi = 1.0, 1.0
    while count(_scaled(slots, lo)) > goal and lo > 1e-6:
        lo /= 2
    while count(_scaled(slots, hi)) < goal and hi < MAX_CHANNELS:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if count(_scaled(slots, mid)) < goal:
            lo = mid
        else:
            hi = mid
    candidates = [_scaled(slots, lo), _scaled(slots, hi)]
    widths = min(candidates, key=lambda w: abs(count(w) - goal))
    widths = _fine_tune(slots, widths, goal, tolerance, count)
    reached = count(widths)
    if abs(reached - goal) > tolerance * goal:
        raise SpecError(
            f"cannot match {what}: the closest widths give {reached:,} parameters "
            f"({(reached / goal - 1) * 100:+.2f}%, tolerance {tolerance:.2%})",
            **where,
        )
    base = spec.name or "spec"
    factor = sum(widths[s] for s, _, _ in slots) / sum(v for _, v, _ in slots)
    resized = _apply(spec, widths)
    description = (
        f"{spec.description} Hidden widths scaled by about x{factor:.3f} to match {what}."
        if spec.description
        else f"{base} with hidden widths scaled by about x{factor:.3f} to match {what}."
    )
    return resized.replace(name=name or f"{base}-adjusted", description=description)


def _fine_tune(
    slots: list[tuple[Slot, int, int]],
    widths: dict[Slot, int],
    goal: int,
    tolerance: float,
    count: Callable[[dict[Slot, int]], int],
) -> dict[Slot, int]:
    """Move single widths by one multiple while that brings the count closer, until within tolerance."""
    current = dict(widths)
    best = abs(count(current) - goal)
    while best > tolerance * goal:
        moves = []
        for slot, _, multiple in slots:
            for step in (multiple, -multiple):
                value = current[slot] + step
                if multiple <= value <= MAX_CHANNELS:
                    trial = {**current, slot: value}
                    moves.append((abs(count(trial) - goal), trial))
        if not moves:
            break
        gap, trial = min(moves, key=lambda m: m[0])
        if gap >= best:
            break
        current, best = trial, gap
    return current


def describe_widths(before: Spec, after: Spec) -> list[str]:
    """``"stage4.channels 512 -> 516"`` for every hidden width that differs."""
    lines = []
    for (slot, old, _), (_, new, _) in zip(_slots(before), _slots(after)):
        if old != new:
            where, i, field = slot
            owner = before.nodes[i].id if where == "node" else before.edges[i].name
            lines.append(f"{owner}.{field} {old} -> {new}")
    return lines



def scale_widths(spec: Spec | str, factor: float, *, name: str | None = None) -> Spec:
    """A copy of ``spec`` with every hidden width multiplied by ``factor``.

    Widths are rounded to the nearest multiple each block needs (a ResNeXt
    stage's cardinality, and that of the stage it feeds), and never below one
    multiple; the input channels and the number of classes are kept.  This is
    how a grid runs the paper's networks at CPU scale (``width: 0.25`` gives
    ResNet-18 at base width 16).

    Raises
    ------
    SpecError
        ``factor`` is not positive, or the spec has no hidden widths.

    Examples
    --------
    >>> small = scale_widths("specs/resnet18.yaml", 0.25)
    >>> small.name, [n.channels for n in small.nodes[:5]]
    ('resnet18-w0.25', [16, 16, 32, 64, 128])
    >>> [n.channels for n in scale_widths("specs/resnext18.yaml", 0.1).nodes[1:5]]
    [8, 12, 24, 52]
    """
    spec = load_spec(spec)
    if not (isinstance(factor, (int, float)) and not isinstance(factor, bool) and 0 < factor < math.inf):
        raise SpecError(f"the width factor must be a positive number, not {factor!r}", path=spec.path)
    slots = _slots(spec)
    if not slots:
        raise SpecError("the spec has no hidden widths to scale (no node has width fields)", path=spec.path)
    if factor == 1:
        return spec if name is None else spec.replace(name=name)
    scaled = _apply(spec, _scaled(slots, factor))
    base = spec.name or "spec"
    note = f"Hidden widths scaled by x{factor:g}."
    description = f"{spec.description} {note}" if spec.description else f"{base} {note[0].lower()}{note[1:]}"
    return scaled.replace(name=name or f"{base}-w{factor:g}", description=description)
