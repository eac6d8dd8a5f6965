"""Unrolling in time: which node runs at which step, on which values (docs/spec.md, Feedback and time).

A spec with a ``time`` section runs its nodes over steps.  This module decides,
from the spec alone (no torch), the *schedule*: every ``(node, step)`` that runs,
in execution order, and for each the value (``(node, step)``, or the network
input) each of its inputs and long-range edges reads.  A value that does not
exist yet (a delayed source before its first step, a silent node) is absent and
contributes zero.  The compiler generates the forward from this schedule, and
the cost table counts from it, so what is counted is what runs.

Schemes:

* ``biological``: steps ``t = 0 .. steps-1``; at each step every node runs once,
  in the topological order of the delay-0 links; a link with ``delay: d`` reads
  its source's value of step ``t - d``.  With ``readout: last`` the output node
  runs at the last step only (unless a delayed link reads it).
* ``sequential``: node by node (topological order), each runs its own ``steps``
  (``node.steps``, default ``time.steps``) to completion; a delay-0 link reads
  its source's last value, a delayed link (a self-loop) the node's own step
  ``t - d``.

A block that owns its steps (``Block.owns_steps``, CORnet-S's area) is scheduled
once: its module runs all of its steps in that call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..spec.kinds import NETWORK_INPUT

__all__ = ["Run", "TimePlan", "Value", "plan_time"]

#: A value of the unrolled network: ``(node id, step)``; ``(None, 0)`` is the network input.
Value = tuple[str | None, int]


@dataclass(frozen=True)
class Run:
    """One ``(node, step)`` that computes.

    ``inputs`` has one entry per item of the node's input (its main input, or each
    item of a list ``input``): the value it reads, or ``None`` where that value is
    absent.  ``edges`` pairs each live long-range edge (its projection) with the
    value it reads (absent ones are left out).  ``zeros``: nothing feeds the node at
    this step and it runs on a zero input (``idle: zeros``).
    """

    node: str
    step: int
    inputs: tuple[Value | None, ...]
    edges: tuple[tuple[Any, Value], ...]
    zeros: bool = False


@dataclass(frozen=True)
class TimePlan:
    """The schedule of a spec with ``time`` (see the module docstring)."""

    scheme: str
    steps: int
    readout: str
    runs: tuple[Run, ...]
    #: Steps scheduled per node (sequential: its own; biological: ``steps``).
    node_steps: dict[str, int]
    #: The values the readout reads: one for ``last``, one per step (``None``: absent) otherwise.
    outputs: tuple[Value | None, ...]
    node_runs: dict[str, int] = field(default_factory=dict)
    edge_runs: dict[tuple[str, str], int] = field(default_factory=dict)
    #: Runs of each item of a list input that has a value: ``(node, k) -> count``.
    input_runs: dict[tuple[str, int], int] = field(default_factory=dict)

    def describe(self) -> str:
        """One line, e.g. ``biological, 5 steps, readout last``."""
        if self.scheme == "sequential":
            own = ", ".join(f"{n} {s}" for n, s in self.node_steps.items() if s != 1)
            return f"sequential, steps per node: {own or 'all 1'}"
        return f"{self.scheme}, {self.steps} steps, readout {self.readout}"


def plan_time(
    spec: Any,
    order: Iterable[str],
    incoming: Mapping[str, Iterable[Any]],
    disabled: Iterable[tuple[str, str]] = (),
) -> TimePlan:
    """The schedule of ``spec`` (which has a ``time`` section), its edges ``disabled`` left out.

    Parameters
    ----------
    spec : Spec
    order : iterable of str
        Node ids in topological order of the delay-0 links.
    incoming : mapping
        Node id -> the projections of the long-range edges into it.
    disabled : iterable of (str, str)
        Edge keys to leave out (``model.set_edges``).

    Examples
    --------
    >>> from hrgraph import load_spec, infer_shapes
    >>> plan = infer_shapes(load_spec('''
    ... input: {channels: 3, height: 8, width: 8}
    ... time: {steps: 3}
    ... nodes:
    ...   - {id: a, kind: conv, channels: 4}
    ...   - {id: b, kind: conv, channels: 4, input: [a, {from: b, delay: 1}]}
    ...   - {id: head, kind: classifier, classes: 2}
    ... '''))
    >>> [(r.node, r.step) for r in plan.time.runs]
    [('a', 0), ('b', 0), ('a', 1), ('b', 1), ('a', 2), ('b', 2), ('head', 2)]
    >>> plan.time.runs[3].inputs
    (('a', 1), ('b', 0))
    """
    time = spec.time
    order = list(order)
    off = set(disabled)
    last = spec.nodes[-1].id
    read_late = any(
        source == last and delay for i in range(len(spec.nodes)) for source, delay in _items(spec, i)
    ) or any(e.from_ == last and e.delay for e in spec.edges)
    if time.scheme == "sequential":
        node_steps = {
            n: 1 if spec.node(n).owns_steps else (spec.node(n).steps or time.steps) for n in order
        }
        schedule = [(n, t) for n in order for t in range(node_steps[n])]
    else:
        node_steps = {n: time.steps for n in order}
        schedule = [(n, t) for t in range(time.steps) for n in order]
        if time.readout == "last" and not read_late:
            schedule = [(n, t) for n, t in schedule if n != last or t == time.steps - 1]
    present: set[Value] = set()
    runs: list[Run] = []
    node_runs: dict[str, int] = {}
    edge_runs: dict[tuple[str, str], int] = {}
    input_runs: dict[tuple[str, int], int] = {}

    def value(source: str | None, delay: int, node: str, step: int) -> Value | None:
        if source is None or source == NETWORK_INPUT:  # the network input is there at every step
            return (None, 0)
        if time.scheme == "sequential" and not delay:
            wanted = (source, node_steps[source] - 1)  # a finished node's last value
        else:
            wanted = (source, step - delay)
        return wanted if wanted in present else None

    for node, step in schedule:
        position = spec.node_index[node]
        inputs = tuple(value(s, d, node, step) for s, d in _items(spec, position))
        edges = []
        for p in incoming.get(node, ()):
            if p.edge.key in off:
                continue
            v = value(p.source, p.edge.delay, node, step)
            if v is not None:
                edges.append((p, v))
        zeros = False
        if all(v is None for v in inputs) and not edges:
            if (spec.node(node).idle or time.idle) == "silent":
                continue
            zeros = True
        runs.append(Run(node, step, inputs, tuple(edges), zeros))
        present.add((node, step))
        node_runs[node] = node_runs.get(node, 0) + 1
        for p, _ in edges:
            edge_runs[p.edge.key] = edge_runs.get(p.edge.key, 0) + 1
        for k, v in enumerate(inputs):
            if v is not None:
                input_runs[(node, k)] = input_runs.get((node, k), 0) + 1
    if time.scheme == "sequential" or time.readout == "last":
        final = (last, node_steps[last] - 1)
        outputs: tuple[Value | None, ...] = (final if final in present else None,)
    else:
        outputs = tuple((last, t) if (last, t) in present else None for t in range(time.steps))
    return TimePlan(
        scheme=time.scheme,
        steps=time.steps,
        readout=time.readout,
        runs=tuple(runs),
        node_steps=node_steps,
        outputs=outputs,
        node_runs=node_runs,
        edge_runs=edge_runs,
        input_runs=input_runs,
    )


def _items(spec: Any, position: int) -> list[tuple[str | None, int]]:
    """``(source, delay)`` of each input item of ``nodes[position]`` (``None``: the network input)."""
    block = spec.nodes[position]
    sources = spec.node_inputs(position)
    delays = block.input_delays or (0,) * len(sources)
    return list(zip(sources, delays))
