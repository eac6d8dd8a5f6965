"""The generated forward: a spec's shape plan as flat Python source, one statement per node (per step).

:func:`generate_forward` writes a DAG's forward, :func:`generate_unrolled` a
time-unrolled one (steps in order, delayed links read from earlier steps);
each intermediate is deleted right after its last reader, so the compiled
model keeps no more tensors alive than a hand-written one.  The source only
names torch; this module does not import it.  :mod:`hrgraph.build.compiler`
compiles the source into :class:`~hrgraph.build.compiler.HrNet`.
"""

from __future__ import annotations

import builtins
import keyword
from collections.abc import Iterable
from typing import Any

from ..spec.kinds import NETWORK_INPUT
from .shapes import ShapePlan
from .unroll import plan_time

_RESERVED = {"self", "x", "torch", "nodes", "projections", "inputs", "aggregates", "gates", "residual"}
# Node ids that would shadow a builtin get a trailing underscore too, so that
# the generated code stays safe to extend by hand.
_TAKEN = frozenset(_RESERVED | set(dir(builtins)) | set(keyword.kwlist))


def _variable_names(order: Iterable[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    taken = set(_TAKEN)
    for node_id in order:
        name = node_id
        while name in taken:
            name += "_"
        names[node_id] = name
        taken.add(name)
    # The network input is the forward's argument (no node may take its name).
    names[NETWORK_INPUT] = "x"
    return names


def _node_call(node_id: str, table: str = "nodes") -> str:
    # A node id is an identifier, but may be a Python keyword ("class",
    # "lambda", "None"): those modules are looked up by key, still under their id.
    return f"{table}[{node_id!r}]" if keyword.iskeyword(node_id) else f"{table}.{node_id}"


def generate_forward(plan: ShapePlan, disabled: Iterable[tuple[str, str]] = ()) -> str:
    """Python source of the flat forward of ``plan``, skipping ``disabled`` edges.

    One statement per node and per merge, in topological order; each
    intermediate is deleted right after the statement that reads it last, so in inference a long-range edge keeps
    alive only its source.  Summed terms after the first are added in place
    into the fresh tensor the first sum made (autograd saves neither), which
    spares one activation-sized temporary per term.  Linear in nodes plus
    edges.

    Parameters
    ----------
    plan : ShapePlan
        From :func:`hrgraph.infer_shapes`.
    disabled : iterable of (str, str)
        Edge keys ``(from, to)`` to leave out.

    Returns
    -------
    str
        The source of ``def forward(self, x)``.

    Examples
    --------
    >>> from hrgraph import load_spec, infer_shapes
    >>> print(generate_forward(infer_shapes(load_spec("specs/resnet18.yaml"))))
    def forward(self, x):
        nodes = self.nodes
        stem = nodes.stem(x)
        stage1 = nodes.stage1(stem)
        del stem
        stage2 = nodes.stage2(stage1)
        del stage1
        stage3 = nodes.stage3(stage2)
        del stage2
        stage4 = nodes.stage4(stage3)
        del stage3
        head = nodes.head(stage4)
        del stage4
        return head
    <BLANKLINE>
    >>> code = generate_forward(infer_shapes(load_spec("specs/hiresnet18.yaml")))
    >>> print(code[code.index("    stage4 ="):code.index("    head =")], end="")
        stage4 = nodes.stage4(stage3)
        del stage3
        stage4 = stage4 + projections.stem__stage4(stem)
        del stem
        stage4 += projections.stage1__stage4(stage1)
        del stage1
        stage4 += projections.stage2__stage4(stage2)
        del stage2
    """
    spec = plan.spec
    off = set(disabled)
    var = _variable_names(plan.order)
    entry = spec.residuals.entry
    post_relu = spec.residuals.activation == "relu"
    statements: list[tuple[str, tuple[str, ...]]] = []  # (code, ids of the values it reads)

    def term(p: Any) -> str:
        src = var[p.source]
        table = "inputs" if p.role == "input" else "projections"
        value = src if p.identity else f"{table}.{p.module_name}({src})"
        return value if p.gate == "none" else f"gates.{p.module_name}({value})"

    for node_id in plan.order:
        position = spec.node_index[node_id]
        block = spec.nodes[position]
        source = spec.main_input(position)
        # The input x is not deleted: nn.Module.__call__ holds it until forward returns.
        arg = "x" if source is None else var[source]
        if source == NETWORK_INPUT:
            source = None
        out = var[node_id]
        merge = plan.nodes[node_id].merge
        if merge is not None:
            statements.extend(_merge_statements(merge, out, term))
            arg, source = out, None  # the merge statements read the inputs
        live = [p for p in plan.incoming[node_id] if p.edge.key not in off]
        sums = [p for p in live if p.merge == "sum"]
        cats = [p for p in live if p.merge == "concat"]
        call = _node_call(node_id)
        if sums and entry == "pre_activation" and block.has_final_activation:
            if len(sums) == 1:
                statements.append((f"{out} = {call}({arg}, {term(sums[0])})", (source, sums[0].source)))
            else:
                # One statement per term, not one long a + b + ... expression:
                # thousands of terms would exceed the parser's recursion limit.
                # The sources count as read by the node's statement, so they are
                # released after it, as a single expression would release them.
                statements.append((f"residual = {term(sums[0])} + {term(sums[1])}", ()))
                statements.extend((f"residual += {term(p)}", ()) for p in sums[2:])
                statements.append((f"{out} = {call}({arg}, residual)", (source, *(p.source for p in sums))))
                statements.append(("del residual", ()))
            sums = []
        else:
            statements.append((f"{out} = {call}({arg})", (source,)))
        for i, p in enumerate(sums):
            # The first sum makes a fresh tensor; adding the rest into it in
            # place is safe even in training (a sum saves nothing for backward).
            code = f"{out} = {out} + {term(p)}" if i == 0 else f"{out} += {term(p)}"
            statements.append((code, (p.source,)))
        if sums and post_relu:
            statements.append((f"{out} = torch.relu_({out})", ()))
        if cats:
            parts = ", ".join([out] + [term(p) for p in cats])
            statements.append((f"{out} = torch.cat([{parts}], 1)", tuple(p.source for p in cats)))

    last_use: dict[str, int] = {}
    for i, (_, reads) in enumerate(statements):
        for r in reads:
            if r not in (None, NETWORK_INPUT):  # the network input, held by nn.Module.__call__
                last_use[r] = i
    final = spec.nodes[-1].id
    release: dict[int, list[str]] = {}
    for value, i in last_use.items():
        if value != final:
            release.setdefault(i, []).append(var[value])

    return _source(statements, release, var[final])


def _merge_statements(merge: Any, out: str, term: Any) -> list[tuple[str, tuple[str, ...]]]:
    """Statements that merge a node's list input into the variable ``out``, before its block."""
    terms = [term(p) for p in merge.inputs]
    reads = tuple(p.source for p in merge.inputs)
    if merge.aggregate == "weighted":
        return [(f"{out} = {_node_call(merge.node, 'aggregates')}({', '.join(terms)})", reads)]
    if merge.aggregate == "concat":
        return [(f"{out} = torch.cat([{', '.join(terms)}], 1)", reads)]
    if len(terms) == 1:
        return [(f"{out} = {terms[0]}", reads)]
    # As for edges: one statement per term, the rest added in place into the
    # fresh tensor the first sum made.
    statements = [(f"{out} = {terms[0]} + {terms[1]}", reads[:2])]
    statements.extend((f"{out} += {t}", (r,)) for t, r in zip(terms[2:], reads[2:]))
    if merge.aggregate == "mean":
        statements.append((f"{out} /= {len(terms)}", ()))
    return statements


def _zeros(shape: tuple[int, ...]) -> str:
    # Absent values (docs/spec.md, Feedback and time) become zeros of the batch's size, dtype and device.
    return f"x.new_zeros((x.shape[0], {', '.join(str(v) for v in shape)}))"


def generate_unrolled(plan: ShapePlan, disabled: Iterable[tuple[str, str]] = ()) -> str:
    """Python source of the forward of a spec with ``time``: its schedule, unrolled statement by statement.

    Each ``(node, step)`` that runs (:mod:`hrgraph.build.unroll`) becomes the
    statements :func:`generate_forward` writes for a node, on the values of that
    step: ``V2__3`` is node ``V2``'s output at step 3.  An absent value is left
    out of a sum, and is ``x.new_zeros(...)`` where a tensor is needed (a node
    running on a zero input under ``idle: zeros``).  Every value is deleted after
    its last use, as in :func:`generate_forward`.

    Examples
    --------
    >>> from hrgraph import load_spec, infer_shapes
    >>> plan = infer_shapes(load_spec('''
    ... input: {channels: 3, height: 8, width: 8}
    ... time: {steps: 2}
    ... nodes:
    ...   - {id: a, kind: conv, channels: 4}
    ...   - {id: b, kind: conv, channels: 4, input: [a, {from: b, delay: 1}]}
    ...   - {id: head, kind: classifier, classes: 2}
    ... '''))
    >>> print(generate_unrolled(plan))
    def forward(self, x):
        nodes = self.nodes
        # step 0
        a__0 = nodes.a(x)
        b__0 = a__0
        del a__0
        b__0 = nodes.b(b__0)
        # step 1
        a__1 = nodes.a(x)
        b__1 = a__1 + b__0
        del a__1, b__0
        b__1 = nodes.b(b__1)
        head__1 = nodes.head(b__1)
        del b__1
        return head__1
    <BLANKLINE>
    """
    spec = plan.spec
    time = plan_time(spec, plan.order, plan.incoming, disabled)
    var = _variable_names(plan.order)
    entry = spec.residuals.entry
    post_relu = spec.residuals.activation == "relu"
    statements: list[tuple[str, tuple[Any, ...]]] = []

    def name(v: Any) -> str:
        return "x" if v[0] is None else f"{var[v[0]]}__{v[1]}"

    def term(p: Any, v: Any) -> str:
        table = "inputs" if p.role == "input" else "projections"
        value = name(v) if p.identity else f"{table}.{p.module_name}({name(v)})"
        return value if p.gate == "none" else f"gates.{p.module_name}({value})"

    # Modules with a copy of their norms per step, by node: its block, the projections into it (build/stepnorm.py).
    stepped: dict[str, list[str]] = {}
    for n in plan.nodes.values():
        calls = [_node_call(n.id)] if n.norm_steps else []
        calls += [_node_call(p.module_name, "projections") for p in plan.incoming[n.id] if p.norm_steps]
        if n.merge is not None:
            calls += [_node_call(p.module_name, "inputs") for p in n.merge.inputs if p.norm_steps]
        if calls:
            stepped[n.id] = calls
    step = None
    for run in time.runs:
        if time.scheme == "biological" and run.step != step:
            step = run.step
            statements.append((f"# step {step}", ()))
        node = plan.nodes[run.node]
        block = spec.node(run.node)
        out = name((run.node, run.step))
        if run.node in stepped:
            statements.append((f"at_step({run.step}, {', '.join(stepped[run.node])})", ()))
        if node.merge is not None:
            statements.extend(_unrolled_merge(node.merge, run, out, term))
            arg, reads = out, ()
        elif run.inputs[0] is None:
            arg, reads = _zeros(node.in_shape), ()
        else:
            arg, reads = name(run.inputs[0]), (run.inputs[0],)
        sums = [(p, v) for p, v in run.edges if p.merge == "sum"]
        cats = [(p, v) for p, v in run.edges if p.merge == "concat"]
        call = _node_call(run.node)
        if sums and entry == "pre_activation" and block.has_final_activation:
            statements.append((f"residual = {term(*sums[0])}", ()))
            statements.extend((f"residual += {term(p, v)}", ()) for p, v in sums[1:])
            statements.append((f"{out} = {call}({arg}, residual)", (*reads, *(v for _, v in sums))))
            statements.append(("del residual", ()))
            sums = []
        else:
            statements.append((f"{out} = {call}({arg})", reads))
        for i, (p, v) in enumerate(sums):
            code = f"{out} = {out} + {term(p, v)}" if i == 0 else f"{out} += {term(p, v)}"
            statements.append((code, (v,)))
        if sums and post_relu:
            statements.append((f"{out} = torch.relu_({out})", ()))
        if cats:
            parts = ", ".join([out] + [term(p, v) for p, v in cats])
            statements.append((f"{out} = torch.cat([{parts}], 1)", tuple(v for _, v in cats)))

    # A terminal block returns (batch, features); any other, a (batch, C, H, W) map.
    out_shape = plan.output_shape[:1] if spec.nodes[-1].terminal else plan.output_shape
    outputs = [v for v in time.outputs if v is not None]
    if time.readout == "last" or time.scheme == "sequential":
        result = name(time.outputs[0]) if time.outputs[0] is not None else _zeros(out_shape)
    elif time.readout == "all":
        values = ", ".join(name(v) if v is not None else _zeros(out_shape) for v in time.outputs)
        statements.append((f"out = torch.stack([{values}], 1)", tuple(outputs)))
        result = "out"
    else:  # mean over the steps; an absent step counts as zero
        total = " + ".join(name(v) for v in outputs) if outputs else _zeros(out_shape)
        statements.append((f"out = ({total}) / {time.steps}", tuple(outputs)))
        result = "out"

    last_use: dict[Any, int] = {}
    for i, (_, reads) in enumerate(statements):
        for r in reads:
            if r[0] is not None:  # the network input is held by nn.Module.__call__ anyway
                last_use[r] = i
    kept = set(outputs) if result != "out" else set()
    release: dict[int, list[str]] = {}
    for value, i in last_use.items():
        if value not in kept:
            release.setdefault(i, []).append(name(value))
    return _source(statements, release, result)


def _unrolled_merge(merge: Any, run: Any, out: str, term: Any) -> list[tuple[str, tuple[Any, ...]]]:
    """Statements merging a node's list input at one step; an absent input counts as zero."""
    pairs = list(zip(merge.inputs, run.inputs))
    present = [(p, v) for p, v in pairs if v is not None]
    reads = tuple(v for _, v in present)
    if merge.aggregate in ("weighted", "concat"):
        # Every position is needed (a weight each, or channels each): absent ones are zeros.
        terms = [term(p, v) if v is not None else _zeros(p.out_shape) for p, v in pairs]
        if merge.aggregate == "weighted":
            return [(f"{out} = {_node_call(merge.node, 'aggregates')}({', '.join(terms)})", reads)]
        return [(f"{out} = torch.cat([{', '.join(terms)}], 1)", reads)]
    if not present:
        return [(f"{out} = {_zeros(merge.out_shape)}", ())]
    if len(present) == 1:
        statements = [(f"{out} = {term(*present[0])}", reads)]
    else:
        statements = [(f"{out} = {term(*present[0])} + {term(*present[1])}", reads[:2])]
        statements.extend((f"{out} += {term(p, v)}", (v,)) for p, v in present[2:])
    if merge.aggregate == "mean" and len(pairs) > 1:
        statements.append((f"{out} /= {len(pairs)}", ()))
    return statements


def _source(statements: list[tuple[str, Any]], release: dict[int, list[str]], result: str) -> str:
    """The forward's source: the tables it reads, each statement with the deletions after it, the return."""
    lines = ["def forward(self, x):", "    nodes = self.nodes"]
    for table in ("projections", "inputs", "aggregates", "gates"):
        if any(f"{table}." in code or f"{table}[" in code for code, _ in statements):
            lines.append(f"    {table} = self.{table}")
    for i, (code, _) in enumerate(statements):
        lines.append(f"    {code}")
        if i in release:
            lines.append(f"    del {', '.join(release[i])}")
    lines.append(f"    return {result}")
    return "\n".join(lines) + "\n"
