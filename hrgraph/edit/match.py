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

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import HrgraphError, SpecError
from ..spec.kinds import MAX_CHANNELS, Block
from ..build.shapes import Shape, count_params, infer_shapes, plan_projection
from ..spec.models import Edge, Spec, load_spec

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
        for attr in node.width_fields:
            slots.append((("node", i, attr), getattr(node, attr), need[node.id]))
    for i, edge in enumerate(spec.edges):
        if edge.channels is not None:
            slots.append((("edge", i, "channels"), edge.channels, 1))
    return slots


def _apply(spec: Spec, widths: Mapping[Slot, int]) -> Spec:
    nodes: list[Block] = list(spec.nodes)
    edges: list[Edge] = list(spec.edges)
    for (where, i, attr), value in widths.items():
        if where == "node":
            data = nodes[i].model_dump(by_alias=True)
            data[attr] = value
            nodes[i] = type(nodes[i]).model_validate(data)
        else:
            edges[i] = edges[i].model_copy(update={attr: value})
    return spec.replace(nodes=nodes, edges=edges)


@dataclass
class _State:
    """Every term of a parameter count: each node's block (shape, params), each edge's projection (channels, params)."""

    out: dict[int, Shape] = field(default_factory=dict)  # node position -> output shape (concat edges included)
    block: dict[int, tuple[Shape, int]] = field(default_factory=dict)
    edge: dict[int, tuple[int, int]] = field(default_factory=dict)  # edge position -> (out channels, params)
    concat: dict[int, int] = field(default_factory=dict)  # node position -> channels its concat edges add
    total: int = 0


class _Counter:
    """The parameter count of ``spec`` with its width slots set to other values, without building a spec.

    ``count_params(_apply(spec, widths))`` validates a whole spec and checks its
    graph each time (seconds at 1,000 nodes, and match needs dozens of counts,
    then two per slot per fine-tuning move).  The graph does not change with
    widths, so it is checked once here; a count is one pass over the nodes in
    topological order with blocks and projections memoised, and the count with
    one slot moved (:meth:`moved`) recomputes only the nodes whose input or
    output channels change.  Blocks and projections are still built and
    planned by their own code (``model_validate``, ``param_count``,
    :func:`~hrgraph.build.shapes.plan_projection`), so the numbers are
    ``count_params``'s; the chosen widths are validated for real at the end.
    """

    def __init__(self, spec: Spec, slots: list[tuple[Slot, int, int]]) -> None:
        plan = infer_shapes(spec)  # the graph and the shapes at the current widths, checked once
        self.spec = spec
        self.input_shape = plan.input_shape
        index = spec.node_index
        self.order = [index[node_id] for node_id in plan.order]
        self.rank = {position: r for r, position in enumerate(self.order)}
        # None: the network input (the first node's, or one named 'input'), which no width changes.
        self.source = [index.get(spec.main_input(i)) for i in range(len(spec.nodes))]
        self.incoming: list[list[int]] = [[] for _ in spec.nodes]
        self.consumers: list[set[int]] = [set() for _ in spec.nodes]  # nodes whose count reads this node's output
        for i, src in enumerate(self.source):
            if src is not None:
                self.consumers[src].add(i)
        self.edge_source = [index.get(edge.from_) for edge in spec.edges]
        self.edge_merge = [edge.merge for edge in spec.edges]
        self.edges_between: dict[tuple[int, int], list[int]] = {}
        for e, edge in enumerate(spec.edges):
            self.incoming[index[edge.to]].append(e)
            if edge.from_ not in index:  # from the network input: no width upstream to follow
                continue
            self.edges_between.setdefault((index[edge.from_], index[edge.to]), []).append(e)
            self.consumers[index[edge.from_]].add(index[edge.to])
        self.node_slots: list[list[Slot]] = [[] for _ in spec.nodes]
        self.edge_slot: dict[int, Slot] = {}
        for slot, _, _ in slots:
            where, i, _ = slot
            if where == "node":
                self.node_slots[i].append(slot)
            else:
                self.edge_slot[i] = slot
        self._data = [node.model_dump(by_alias=True) for node in spec.nodes]
        self._blocks: dict[tuple, tuple[Shape, int]] = {}
        self._edges: dict[tuple, tuple[int, int]] = {}

    def _block(self, position: int, in_shape: Shape, widths: Mapping[Slot, int]) -> tuple[Shape, int]:
        values = tuple(widths[slot] for slot in self.node_slots[position])
        key = (position, values, in_shape)
        if key not in self._blocks:
            node = self.spec.nodes[position]
            if values:
                data = dict(self._data[position])
                data.update({slot[2]: value for slot, value in zip(self.node_slots[position], values)})
                node = type(node).model_validate(data)
            self._blocks[key] = (tuple(node.out_shape(in_shape)), node.param_count(in_shape))
        return self._blocks[key]

    def _edge(self, e: int, src: Shape, dst: Shape, widths: Mapping[Slot, int]) -> tuple[int, int]:
        edge = self.spec.edges[e]
        channels = widths[self.edge_slot[e]] if e in self.edge_slot else edge.channels
        # Edges alike in what decides their projection share one entry.
        key = (edge.merge, edge.projection, edge.pool, channels, src, dst)
        if key not in self._edges:
            if channels != edge.channels:
                edge = edge.model_copy(update={"channels": channels})
            projection = plan_projection(self.spec, edge, src, dst)
            self._edges[key] = (projection.out_shape[0], projection.params)
        return self._edges[key]

    def _node(self, position: int, state: _State, new: _State, widths: Mapping[Slot, int], block: bool = True) -> None:
        """Recompute ``position``'s block (unless ``block`` is false: already in ``new``) and every edge into it.

        Other nodes' outputs are read from ``new``, then ``state``.
        """
        if block:
            src = self.source[position]
            in_shape = self.input_shape if src is None else new.out.get(src) or state.out[src]
            block_shape, params = self._block(position, in_shape, widths)
            new.total += params - (state.block[position][1] if position in state.block else 0)
            new.block[position] = (block_shape, params)
        else:
            block_shape = new.block[position][0]
        concat = 0
        for e in self.incoming[position]:
            concat += self._edge_term(e, block_shape, state, new, widths)
        new.concat[position] = concat
        new.out[position] = (block_shape[0] + concat, block_shape[1], block_shape[2])

    def _edge_term(self, e: int, block_shape: Shape, state: _State, new: _State, widths: Mapping[Slot, int]) -> int:
        """Recompute edge ``e`` into ``new``; returns the channels it concatenates (0 for a sum)."""
        src = self.edge_source[e]
        src_shape = self.input_shape if src is None else new.out.get(src) or state.out[src]
        channels, params = self._edge(e, src_shape, block_shape, widths)
        new.total += params - (state.edge[e][1] if e in state.edge else 0)
        new.edge[e] = (channels, params)
        return channels if self.edge_merge[e] == "concat" else 0

    def count(self, widths: Mapping[Slot, int]) -> _State:
        """Every term with ``widths`` (one pass over nodes and edges)."""
        state = _State()
        for position in self.order:
            self._node(position, state, state, widths)
        return state

    def moved(self, state: _State, widths: Mapping[Slot, int], slot: Slot, value: int) -> int:
        """The total of ``state`` (counted at ``widths``) with ``slot`` set to ``value`` instead.

        Only the nodes downstream of the moved width whose input changed are
        recounted, and of their edges only those whose ends changed.
        """
        trial = _Overlay(widths, slot, value)
        where, i, _ = slot
        start = i if where == "node" else self.spec.node_index[self.spec.edges[i].to]
        new = _State(total=state.total)
        changed: list[int] = []  # nodes whose output differs from state's, in topological order
        queue, queued = [(self.rank[start], start)], {start}
        while queue:
            _, position = heapq.heappop(queue)
            src = self.source[position]
            block_shape = state.block[position][0]
            if position == start and where == "node" or src in new.out and new.out[src] != state.out[src]:
                # Its own width or its input changed: recount the block.
                in_shape = self.input_shape if src is None else new.out.get(src) or state.out[src]
                block_shape, params = self._block(position, in_shape, trial)
                new.total += params - state.block[position][1]
                new.block[position] = (block_shape, params)
            if block_shape != state.block[position][0]:
                self._node(position, state, new, trial, block=False)  # every edge into it changes
            else:
                concat = state.concat[position]
                edges = [e for c in changed for e in self.edges_between.get((c, position), ())]
                if where == "edge" and position == start:
                    edges.append(i)
                for e in edges:
                    concat += self._edge_term(e, block_shape, state, new, trial) - (
                        state.edge[e][0] if self.edge_merge[e] == "concat" else 0
                    )
                new.out[position] = (block_shape[0] + concat, block_shape[1], block_shape[2])
            if new.out[position] != state.out[position]:
                changed.append(position)
                for consumer in self.consumers[position] - queued:
                    queued.add(consumer)
                    heapq.heappush(queue, (self.rank[consumer], consumer))
        return new.total


class _Overlay(Mapping):
    """``widths`` with one slot changed, without copying the others."""

    def __init__(self, widths: Mapping[Slot, int], slot: Slot, value: int) -> None:
        self._widths, self._slot, self._value = widths, slot, value

    def __getitem__(self, key: Slot) -> int:
        return self._value if key == self._slot else self._widths[key]

    def __iter__(self):
        return iter(self._widths)

    def __len__(self) -> int:
        return len(self._widths)


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

    def invalid(err: HrgraphError) -> SpecError:
        return SpecError(f"resizing to {what} gives an invalid spec: {err.message}", **where)

    counter = _FullCounter(spec) if any(isinstance(n.input, list) for n in spec.nodes) else _Counter(spec, slots)
    memo: dict[tuple[int, ...], int] = {}

    def count(widths: dict[Slot, int]) -> int:
        key = tuple(widths.values())
        if key not in memo:  # late bisection steps mostly round to widths already counted
            try:
                memo[key] = counter.count(widths).total
            except HrgraphError as err:
                raise invalid(err) from err
        return memo[key]

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
    try:
        widths = _fine_tune(slots, widths, goal, tolerance, counter)
    except HrgraphError as err:
        raise invalid(err) from err
    try:
        resized = _apply(spec, widths)
        reached = count_params(resized)  # the chosen widths, validated and counted for real
    except HrgraphError as err:
        raise invalid(err) from err
    if abs(reached - goal) > tolerance * goal:
        raise SpecError(
            f"cannot match {what}: the closest widths give {reached:,} parameters "
            f"({(reached / goal - 1) * 100:+.2f}%, tolerance {tolerance:.2%})",
            **where,
        )
    base = spec.name or "spec"
    factor = sum(widths[s] for s, _, _ in slots) / sum(v for _, v, _ in slots)
    description = (
        f"{spec.description} Hidden widths scaled by about x{factor:.3f} to match {what}."
        if spec.description
        else f"{base} with hidden widths scaled by about x{factor:.3f} to match {what}."
    )
    return resized.replace(name=name or f"{base}-adjusted", description=description)


class _FullCounter:
    """:class:`_Counter`'s interface for specs with list inputs, which it does not model.

    Each count validates and counts the resized spec (linear in its size, but a
    constant factor slower than the memoised counter).
    """

    def __init__(self, spec: Spec) -> None:
        self.spec = spec

    def count(self, widths: Mapping[Slot, int]) -> _State:
        return _State(total=count_params(_apply(self.spec, widths)))

    def moved(self, state: _State, widths: Mapping[Slot, int], slot: Slot, value: int) -> int:
        return count_params(_apply(self.spec, {**widths, slot: value}))


def _fine_tune(
    slots: list[tuple[Slot, int, int]],
    widths: dict[Slot, int],
    goal: int,
    tolerance: float,
    counter: "_Counter | _FullCounter",
) -> dict[Slot, int]:
    """Move single widths by one multiple while that brings the count closer, until within tolerance.

    Each trial recounts only what the moved width touches (:meth:`_Counter.moved`).
    """
    current = dict(widths)
    state = counter.count(current)
    best = abs(state.total - goal)
    while best > tolerance * goal:
        moves = []
        for slot, _, multiple in slots:
            for step in (multiple, -multiple):
                value = current[slot] + step
                if multiple <= value <= MAX_CHANNELS:
                    moves.append((abs(counter.moved(state, current, slot, value) - goal), slot, value))
        if not moves:
            break
        gap, slot, value = min(moves, key=lambda m: m[0])
        if gap >= best:
            break
        current[slot] = value
        state, best = counter.count(current), gap
    return current


def describe_widths(before: Spec, after: Spec) -> list[str]:
    """``"stage4.channels 512 -> 516"`` for every hidden width that differs."""
    lines = []
    for (slot, old, _), (_, new, _) in zip(_slots(before), _slots(after)):
        if old != new:
            where, i, attr = slot
            owner = before.nodes[i].id if where == "node" else before.edges[i].name
            lines.append(f"{owner}.{attr} {old} -> {new}")
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
