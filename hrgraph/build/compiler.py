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

The forward's source is written by :mod:`hrgraph.build.codegen`; this module
compiles it and wires the modules it calls.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import linecache
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .blocks import Gate, WeightedSum, build_block, build_projection, init_weights
from .stepnorm import at_step, norm_param_count, per_step_norms
from ..errors import CompileError, GraphError, HrgraphError
from ..files import atomic_open
from .shapes import MAX_ACTIVATION, MAX_PARAMS, Shape, ShapePlan, infer_shapes
from .codegen import generate_forward, generate_unrolled
from ..spec.models import Edge, Spec, load_spec
from .graph import select_edges

__all__ = ["HrNet", "compile_model", "generate_forward", "generate_unrolled", "save_checkpoint", "load_checkpoint"]

@functools.lru_cache(maxsize=128)
def _compile_source(source: str, name: str):
    # The function only reads `self`, so models with the same code share it, and
    # toggling edges back and forth (ablation sweeps) neither recompiles nor
    # grows linecache, where the source is registered so that tracebacks, pdb
    # and inspect show it.
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<hrgraph-forward-{digest}:{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"torch": torch, "at_step": at_step}
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
        gate_init = {edge.module_name: edge.gate_init for edge in self.spec.edges}
        for key, projection in plan.projections.items():
            module = build_projection(projection)
            if module is not None:
                self.projections[projection.module_name] = module
            if projection.gate != "none":
                self.gates[projection.module_name] = Gate(projection.gate, gate_init.get(projection.module_name, 1.0))
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
        generate = generate_unrolled if self.spec.time is not None else generate_forward
        self.code = generate(self.plan, self._disabled)
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
    _copy_norms_per_step(model, plan)
    built = sum(p.numel() for p in model.parameters())
    if built != plan.params:
        # Only a user block whose param_count disagrees with its module gets here.
        raise CompileError(f"built {built:,} parameters but shapes predict {plan.params:,}: a block's param_count is wrong")
    return model


def _copy_norms_per_step(model: HrNet, plan: ShapePlan) -> None:
    """``step_norm: per_step``: one copy of each norm per step, once the template is initialised."""
    for node_id, n in plan.nodes.items():
        if n.norm_steps:
            block = plan.spec.node(node_id)
            module = model.nodes[node_id]
            found, declared = norm_param_count(module), block.norm_params(n.in_shape)
            if found != declared:
                mark = plan.spec.locate("nodes", plan.spec.node_index[node_id])
                raise CompileError(
                    f"step_norm: per_step copies a block's norms per step, but block kind '{block.kind}' declares "
                    f"{declared:,} norm parameters (norm_params) and its module has {found:,}",
                    node=node_id,
                    path=mark.path if mark else plan.spec.path,
                    line=mark.line if mark else None,
                )
            model.nodes[node_id] = per_step_norms(module, n.norm_steps)
    projections = [(model.projections, p) for p in plan.projections.values()]
    projections += [(model.inputs, p) for m in plan.merges.values() for p in m.inputs]
    for table, p in projections:
        if p.norm_steps:
            table[p.module_name] = per_step_norms(table[p.module_name], p.norm_steps)


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
