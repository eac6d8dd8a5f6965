"""The one place where block modules are wired into a network.

:func:`compile_model` builds the modules of every node and projection and
generates a flat ``forward`` once, as Python source that reads like the
paper's equation::

    stage4 = nodes.stage4(stage3)
    del stage3
    stage4 = stage4 + projections.stem__stage4(stem)
    del stem
    stage4 += projections.stage2__stage4(stage2)
    del stage2

No graph is walked and no dict is consulted per call: per node, the forward
does what a hand-written one does (one submodule attribute lookup and call,
like torchvision's ``self.layer1(x)``).  An intermediate is deleted right after
its last consumer, so in inference a long-range edge keeps alive only the
tensor it needs; in training autograd keeps what backward needs and the
forward adds nothing to it.  ``print(model.code)`` shows the source; it is
compiled once, registered with :mod:`linecache` so tracebacks show it, and
rebuilt (never pickled) when a model is unpickled or deep-copied.

Why one module past 500 lines: the generated forward and the module class that runs
it must agree line for line (names, order, deletions), so they are written together.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import gc
import hashlib
import keyword
import linecache
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .blocks import Gate, WeightedSum, build_block, build_projection, init_weights
from ..errors import CompileError, GraphError, HrgraphError
from ..files import atomic_open
from .shapes import MAX_ACTIVATION, MAX_PARAMS, Shape, ShapePlan, infer_shapes
from ..spec.models import Edge, Spec, load_spec
from .graph import select_edges

__all__ = ["HrNet", "compile_model", "generate_forward", "save_checkpoint", "load_checkpoint"]

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
            if r is not None:  # None: the network input
                last_use[r] = i
    final = spec.nodes[-1].id
    release: dict[int, list[str]] = {}
    for value, i in last_use.items():
        if value != final:
            release.setdefault(i, []).append(var[value])

    lines = ["def forward(self, x):", "    nodes = self.nodes"]
    for table in ("projections", "inputs", "aggregates", "gates"):
        if any(f"{table}." in code or f"{table}[" in code for code, _ in statements):
            lines.append(f"    {table} = self.{table}")
    for i, (code, _) in enumerate(statements):
        lines.append(f"    {code}")
        if i in release:
            lines.append(f"    del {', '.join(release[i])}")
    lines.append(f"    return {var[final]}")
    return "\n".join(lines) + "\n"


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


@functools.lru_cache(maxsize=128)
def _compile_source(source: str, name: str):
    # The function only reads `self`, so models with the same code share it, and
    # toggling edges back and forth (ablation sweeps) neither recompiles nor
    # grows linecache, where the source is registered so that tracebacks, pdb
    # and inspect show it.
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<hrgraph-forward-{digest}:{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"torch": torch}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - our own generated code
    return namespace["forward"]


class HrNet(nn.Module):
    """A network compiled from a spec: ``nodes`` and ``projections`` ModuleDicts and a generated forward.

    Attributes
    ----------
    spec : Spec
        The resolved spec it was compiled from.
    plan : ShapePlan
        Shapes and projections.
    fingerprint : str
        The spec's fingerprint (also saved with checkpoints).
    code : str
        The generated forward's Python source.
    """

    def __init__(self, plan: ShapePlan) -> None:
        super().__init__()
        self.spec = plan.spec
        self.plan = plan
        self.fingerprint = plan.spec.fingerprint
        self.nodes = nn.ModuleDict()
        self.projections = nn.ModuleDict()
        for node_id in plan.order:
            shape = plan.nodes[node_id]
            module = build_block(self.spec.node(node_id), shape.in_shape)
            try:
                self.nodes[node_id] = module
            except KeyError as err:
                # Only an attribute that a newer torch added to nn.ModuleDict gets
                # here: kinds.RESERVED_IDS refuses the known ones while validating.
                mark = self.spec.locate("nodes", self.spec.node_index[node_id], "id")
                raise CompileError(
                    f"'{node_id}' cannot be a node id with this version of torch: it is an attribute of nn.ModuleDict",
                    node=node_id,
                    path=mark.path if mark else self.spec.path,
                    line=mark.line if mark else None,
                    column=mark.column if mark else None,
                ) from err
        # Merges and gates get tables of their own, so that specs without them
        # keep exactly the state_dict keys they always had.
        self.inputs = nn.ModuleDict()
        self.aggregates = nn.ModuleDict()
        self.gates = nn.ModuleDict()
        for key, projection in plan.projections.items():
            module = build_projection(projection)
            if module is not None:
                self.projections[projection.module_name] = module
            if projection.gate != "none":
                self.gates[projection.module_name] = Gate(projection.gate)
        for node_id, merge in plan.merges.items():
            for projection in merge.inputs:
                module = build_projection(projection)
                if module is not None:
                    self.inputs[projection.module_name] = module
            if merge.aggregate == "weighted":
                self.aggregates[node_id] = WeightedSum(len(merge.inputs))
        self._disabled: frozenset[tuple[str, str]] = frozenset()
        self._generate()

    # -- forward ---------------------------------------------------------------

    def _generate(self) -> None:
        self.code = generate_forward(self.plan, self._disabled)
        self._forward = _compile_source(self.code, self.spec.name or "spec")

    def forward(self, x: Tensor) -> Tensor:
        return self._forward(self, x)

    # -- run-time edge masking -------------------------------------------------

    @property
    def edges(self) -> list[str]:
        """All long-range edges, as ``"from->to"``."""
        return [e.name for e in self.spec.edges]

    @property
    def disabled_edges(self) -> list[str]:
        """Edges currently skipped by the forward, as ``"from->to"``, in spec order."""
        return [e.name for e in self.spec.edges if e.key in self._disabled]

    def set_edges(
        self, disabled: "Iterable[str | Edge] | str | Edge" = (), *, enabled: "Iterable[str | Edge] | str | Edge | None" = None
    ) -> "HrNet":
        """Skip some long-range edges in the forward, keeping their parameters.

        The state_dict keeps every key, so a trained model can be evaluated with
        edges cut and restored.  Unlike structural ablation
        (:func:`hrgraph.edit.ablate`), nothing is removed and the parameter count is
        unchanged.  The forward is regenerated; it costs nothing per call.

        Parameters
        ----------
        disabled : str, Edge or iterable of them
            Edges to skip; all others run.  Each is ``"from:to"`` or
            ``"from->to"`` (either side may be a pattern: ``"stem:*"``), or an
            :class:`~hrgraph.Edge` such as :func:`hrgraph.select_edges` returns.
        enabled : same, optional
            Alternatively, the edges to keep; all others are skipped.

        Returns
        -------
        HrNet
            ``self``, for chaining.

        Raises
        ------
        GraphError
            A selector names no edge (``UnknownNodeError`` for an unknown node),
            or selects a concat edge (cutting it would change the target's
            width); the model is left as it was.

        Examples
        --------
        >>> import hrgraph
        >>> model = hrgraph.compile_model("specs/hiresnet18.yaml")
        >>> model.set_edges(disabled=["stem:stage4"]).disabled_edges
        ['stem->stage4']
        >>> model.set_edges(disabled=hrgraph.select_edges(model.spec, "*:stage4")).disabled_edges
        ['stem->stage4', 'stage1->stage4', 'stage2->stage4']
        >>> model.set_edges().disabled_edges
        []
        """
        chosen = {e.key for e in select_edges(self.spec, enabled if enabled is not None else disabled)}
        known = {e.key: e for e in self.spec.edges}
        off = set(known) - chosen if enabled is not None else chosen
        concat = [known[k] for k in known if k in off and known[k].merge == "concat"]
        if concat:
            names = ", ".join(e.name for e in concat)
            raise GraphError(
                f"cannot disable concat edges at run time ({names}): their target's width would change; "
                "remove them with hrgraph.edit.ablate",
                path=self.spec.path,
                edge=concat[0].name,
            )
        self._disabled = frozenset(off)
        self._generate()
        return self

    # -- pickling (the generated function is rebuilt, not pickled) ---------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_forward", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._forward = _compile_source(self.code, self.spec.name or "spec")

    def extra_repr(self) -> str:
        name = f"name={self.spec.name!r}, " if self.spec.name else ""
        return f"{name}fingerprint={self.fingerprint!r}, params={self.plan.params:,}"


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    # Building thousands of modules allocates millions of objects, none of
    # them garbage; the cyclic collector's full passes over an ever larger heap
    # then take half the build time and make it grow faster than the spec
    # (measured on a generated 1,000-node spec: 1.2 s -> 0.6 s, see
    # docs/benchmarks.md).  Reference counting still frees everything.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def compile_model(
    spec: "Spec | ShapePlan | str | Path | Mapping[str, Any]",
    *,
    input_shape: Shape | None = None,
    max_params: int = MAX_PARAMS,
    max_activation: int = MAX_ACTIVATION,
    allow_imports: bool = False,
    allow_outside: bool = False,
) -> HrNet:
    """Compile a spec into an ordinary ``nn.Module``.

    Parameters
    ----------
    spec : Spec, ShapePlan, path, YAML text or dict
        Anything :func:`hrgraph.load_spec` takes, or the plan
        :func:`hrgraph.infer_shapes` made of a spec (then ``input_shape`` and
        the limits have been applied already and must not be given).
    input_shape : (int, int, int), optional
        Override the spec's input ``(C, H, W)``, within the limits of the spec's ``input``.
    max_params : int
        Refuse networks above this many parameters (checked before allocating).
    max_activation : int
        Refuse an input or node output above this many elements per sample.
    allow_imports, allow_outside : bool
        Passed to :func:`hrgraph.load_spec`.

    Returns
    -------
    HrNet
        Modules named after node ids (``nodes.stage2...``) and edges
        (``projections.stem__stage4...``), initialised as torchvision's ResNet.

    Raises
    ------
    SpecError, GraphError, ShapeError, CompileError

    Examples
    --------
    >>> import torch, hrgraph
    >>> model = hrgraph.compile_model("specs/hiresnet18.yaml")
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    >>> sum(p.numel() for p in model.parameters()) == hrgraph.count_params(model.spec)
    True
    """
    if isinstance(spec, ShapePlan):
        if input_shape is not None:
            raise TypeError("input_shape applies when compiling a spec; a ShapePlan has its input shape")
        plan = spec
        spec = plan.spec
    else:
        spec = load_spec(spec, allow_imports=allow_imports, allow_outside=allow_outside)
        plan = infer_shapes(spec, input_shape=input_shape, max_params=max_params, max_activation=max_activation)
    with _gc_paused():
        model = HrNet(plan)
    # Only our own modules get torchvision's init; user blocks keep theirs.
    for node_id, module in model.nodes.items():
        if module.__class__.__module__ == "hrgraph.build.blocks":
            init_weights(module)
    init_weights(model.projections)
    init_weights(model.inputs)
    if spec.zero_init_residual:
        for m in model.modules():
            if hasattr(m, "zero_init_last"):
                m.zero_init_last()
    built = sum(p.numel() for p in model.parameters())
    if built != plan.params:
        # Only a user block whose param_count disagrees with its module gets here.
        raise CompileError(f"built {built:,} parameters but shapes predict {plan.params:,}: a block's param_count is wrong")
    return model


_CHECKPOINT_FORMAT = "hrgraph-checkpoint-1"


def save_checkpoint(model: HrNet, path: str | Path, **extra: Any) -> None:
    """Save state_dict, resolved spec and fingerprint, atomically (never a half-written file).

    ``extra`` items (optimizer state, epoch, metrics...) are stored alongside.
    """
    payload = {
        "format": _CHECKPOINT_FORMAT,
        "spec": model.spec.to_dict(minimal=False),
        "fingerprint": model.fingerprint,
        "input_shape": list(model.plan.input_shape),
        "disabled_edges": model.disabled_edges,
        "state_dict": model.state_dict(),
        **extra,
    }
    with atomic_open(path) as fh:
        torch.save(payload, fh)


def _load_failure(err: Exception) -> str:
    """One line on why ``torch.load`` refused a file (its own message runs to a dozen lines)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if lines and lines[0].startswith("Weights only load failed"):
        detail = [
            line.replace("WeightsUnpickler error:", "").strip()
            for line in lines[1:]
            if not line.startswith(("Check the documentation", "Please file an issue"))
        ]
        detail = [d for d in detail if d]
        return "it holds objects other than tensors and plain values, so it was not loaded" + (
            f": {detail[0]}" if detail else ""
        )
    return f"torch.load could not read it: {type(err).__name__}" + (f": {lines[0][:200]}" if lines else "")


def load_checkpoint(
    path: str | Path,
    *,
    map_location: Any = "cpu",
    max_activation: int = MAX_ACTIVATION,
    allow_imports: bool = False,
    allow_outside: bool = False,
) -> tuple[HrNet, dict[str, Any]]:
    """Rebuild a model from :func:`save_checkpoint`'s file; returns ``(model, payload)``.

    Only tensors and plain Python values are unpickled (``torch.load`` with
    ``weights_only=True``), which is all a checkpoint holds: a crafted file
    cannot run code on load.  ``max_activation`` is compile's limit; the
    ``allow_*`` switches go to :func:`hrgraph.load_spec` for the stored spec.
    :func:`hrgraph.load_checkpoint` also takes ``hrgraph train``'s checkpoints
    and run folders, and comes here for this kind.

    Raises
    ------
    HrgraphError
        The file is missing, is not an hrgraph checkpoint (including a pickle
        that would build any other object), its spec does not match its
        fingerprint, or its weights do not fit its spec.
    """
    where = str(path)
    try:
        with warnings.catch_warnings():  # a plain pickle makes torch warn about its protocol; the error says enough
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise HrgraphError("no such checkpoint file", path=where) from None
    except IsADirectoryError:
        raise HrgraphError("is a folder, not a checkpoint file", path=where) from None
    except Exception as err:  # UnpicklingError (a refused object), RuntimeError (not a zip archive), EOFError...
        raise HrgraphError(f"not an hrgraph checkpoint ({_load_failure(err)})", path=where) from None
    if not isinstance(payload, dict) or payload.get("format") != _CHECKPOINT_FORMAT:
        raise HrgraphError(f"not an hrgraph checkpoint (no format '{_CHECKPOINT_FORMAT}')", path=where)
    missing = [k for k in ("spec", "fingerprint", "input_shape", "state_dict") if k not in payload]
    if missing:
        raise HrgraphError(f"not an hrgraph checkpoint (it lacks {', '.join(missing)})", path=where)
    spec = load_spec(payload["spec"], allow_imports=allow_imports, allow_outside=allow_outside)
    if spec.fingerprint != payload["fingerprint"]:
        raise HrgraphError(
            f"spec fingerprint {spec.fingerprint} does not match the checkpoint's {payload['fingerprint']}",
            path=where,
        )
    model = compile_model(spec, input_shape=tuple(payload["input_shape"]), max_activation=max_activation)
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as err:
        raise HrgraphError(f"the checkpoint's weights do not fit its spec: {str(err).splitlines()[0]}", path=where) from None
    if payload.get("disabled_edges"):
        model.set_edges(disabled=payload["disabled_edges"])
    return model, payload
