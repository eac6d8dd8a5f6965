"""Warm start: load pretrained weights into a compiled model whose new edges start silent.

Adding hierarchical residuals to a trained ResNet should not cost what it
knows.  :func:`load_weights` copies every tensor the source has for the model
(hrgraph's own key names, or torchvision ResNet names renamed by
:func:`hrgraph.io.interop.from_torchvision_resnet`), checks every shape, and then
makes each edge the source knew nothing about contribute exactly zero:

* an edge with a ``scalar`` gate: the gate starts at 0;
* otherwise an edge whose projection ends in BatchNorm: that BN's weight and
  bias start at 0 (``zero_init_last``, as for the last BN of a residual unit).

So right after loading the network computes the pretrained function (bit for
bit in eval mode), and training grows the new edges from there: a zero BN
weight or gate still receives a gradient (the conv behind it does once they
are non-zero).  An edge with no parameter to zero (an identity edge, a
pooling-only projection, a ``sigmoid`` gate, whose ``2*sigmoid(w)`` never
reaches 0) cannot start silent; the report lists it under ``not_silent``.

A run folder (``RUN/checkpoints/best.pt``, else ``last.pt``, the layout
``hrgraph train`` writes) and checkpoint files are read with
``torch.load(weights_only=True)``: opening a downloaded file runs no code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import HrgraphError, ShapeError
from .interop import from_torchvision_resnet

__all__ = ["LoadReport", "load_weights", "read_state_dict", "freeze_loaded"]

_HRGRAPH_TABLES = ("nodes.", "projections.", "inputs.", "aggregates.", "gates.")
_TORCHVISION_TABLES = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.", "fc.")
# Wrappers that prefix every key: DistributedDataParallel, torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_weights` did.

    Attributes
    ----------
    source : str
        Where the weights came from (a path, or the kind of object given).
    key_format : {"hrgraph", "torchvision"}
        How the source names its tensors.
    loaded : tuple of str
        Model keys (parameters and buffers) given the source's values.
    new : tuple of str
        Model keys the source has no value for: they keep their initialisation.
    unused : tuple of str
        Source keys (in the model's naming) the model has no place for.
    mismatched : tuple of str
        Keys in both whose shapes differ (only with ``skip_mismatched=True``;
        otherwise they are an error), as ``"key: source shape -> model shape"``.
    silenced : tuple of str
        New edges set to contribute zero, as ``"from->to"``.
    not_silent : tuple of str
        New edges that have no parameter to start at zero; they change the
        pretrained function.
    """

    source: str
    key_format: str
    loaded: tuple[str, ...]
    new: tuple[str, ...]
    unused: tuple[str, ...]
    mismatched: tuple[str, ...] = ()
    silenced: tuple[str, ...] = ()
    not_silent: tuple[str, ...] = field(default=())

    @property
    def counts(self) -> dict[str, int]:
        """How many keys (edges for ``silenced``/``not_silent``) fall in each group."""
        return {k: len(getattr(self, k)) for k in ("loaded", "new", "unused", "mismatched", "silenced", "not_silent")}

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``init.json``: the lists and their counts."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        out["counts"] = self.counts
        return out

    def describe(self) -> str:
        """One line, e.g. ``loaded 122 tensors (torchvision names); 24 new; 0 unused in the source; 6 edges start silent``."""
        c = self.counts
        text = (f"loaded {c['loaded']} tensors ({self.key_format} names); {c['new']} new; "
                f"{c['unused']} unused in the source; {c['silenced']} edges start silent")
        if c["mismatched"]:
            text += f"; {c['mismatched']} skipped for their shape"
        if c["not_silent"]:
            text += f"; {c['not_silent']} new edges cannot start silent ({', '.join(self.not_silent)})"
        return text


def _find_run_checkpoint(folder: Path) -> Path:
    for name in ("best.pt", "last.pt"):
        candidate = folder / "checkpoints" / name
        if candidate.is_file():
            return candidate
    raise HrgraphError(
        "no checkpoint in this folder (looked for checkpoints/best.pt and checkpoints/last.pt)", path=str(folder)
    )


def _tensors_of(payload: Any, where: str) -> dict[str, torch.Tensor]:
    """The state_dict inside whatever a checkpoint file or caller gave."""
    if isinstance(payload, nn.Module):
        return dict(payload.state_dict())
    if not isinstance(payload, Mapping):
        raise HrgraphError(f"holds a {type(payload).__name__}, not a state_dict or checkpoint", path=where)
    if payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return dict(payload)
    # hrgraph run checkpoints keep it under "model", save_checkpoint under "state_dict"
    # (as do Lightning and many training scripts).
    for key in ("model", "state_dict"):
        inner = payload.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return dict(inner)
    raise HrgraphError("no state_dict in it (a mapping of names to tensors, or one under 'model' or 'state_dict')",
                       path=where)


def read_state_dict(source: Any) -> tuple[dict[str, torch.Tensor], str]:
    """``(state_dict, description)`` of a state_dict, module, checkpoint file or run folder.

    Raises
    ------
    HrgraphError
        The path does not exist, is not a readable torch file, holds objects
        other than tensors and plain data, or holds no state_dict.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            path = _find_run_checkpoint(path)
        if not path.is_file():
            raise HrgraphError("no such weights file or run folder", path=str(source))
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # UnpicklingError for a refused object, RuntimeError for a non-zip file, ...
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            raise HrgraphError(f"cannot read weights ({type(err).__name__}: {first})", path=str(path)) from None
        return _tensors_of(payload, str(path)), str(path)
    if isinstance(source, nn.Module):
        return dict(source.state_dict()), f"<{type(source).__name__}>"
    return _tensors_of(source, "<state_dict>"), "<state_dict>"


def _strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in _WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _to_model_names(state: dict[str, torch.Tensor], where: str) -> tuple[dict[str, torch.Tensor], str]:
    state = _strip_wrappers(state)
    if any(k.startswith(_HRGRAPH_TABLES) for k in state):
        return state, "hrgraph"
    if any(k.startswith(_TORCHVISION_TABLES) for k in state):
        try:
            return from_torchvision_resnet(state), "torchvision"
        except KeyError as err:
            raise HrgraphError(f"looks like a torchvision ResNet state_dict, but {err.args[0]}", path=where) from None
    sample = ", ".join(sorted(state)[:3]) or "none"
    raise HrgraphError(
        f"its keys are neither hrgraph's (nodes.*, projections.*) nor a torchvision ResNet's (conv1.*, layer1.*): {sample}",
        path=where,
    )


def _silence(model: nn.Module, loaded: set[str], source_knows_edges: bool) -> tuple[list[str], list[str]]:
    """Make every edge with nothing loaded contribute zero; ``(silenced, not_silent)`` edge names."""
    silenced, not_silent = [], []
    for projection in model.plan.projections.values():
        name = projection.module_name
        prefixes = (f"projections.{name}.", f"gates.{name}.")
        keys = [k for k in model.state_dict() if k.startswith(prefixes)]
        if any(k in loaded for k in keys) or (not keys and source_knows_edges):
            continue  # the source had this edge (a parameterless one only a source with edges can have had)
        gate = model.gates[name] if name in model.gates else None
        proj = model.projections[name] if name in model.projections else None
        with torch.no_grad():
            if gate is not None and gate.kind == "scalar":
                gate.weight.zero_()
            elif proj is not None and hasattr(proj, "bn"):
                # Every copy where the projection keeps one BN per step (step_norm: per_step).
                for bn in proj.bn.modules():
                    if isinstance(bn, nn.BatchNorm2d):
                        bn.weight.zero_()
                        bn.bias.zero_()
            else:
                not_silent.append(projection.name)
                continue
        silenced.append(projection.name)
    return silenced, not_silent


def load_weights(model: nn.Module, source: Any, *, skip_mismatched: bool = False, silence_new: bool = True) -> LoadReport:
    """Load pretrained weights into ``model``; edges the source lacks start silent.

    Parameters
    ----------
    model : HrNet
        A compiled model (:func:`hrgraph.compile_model`).
    source : state_dict, nn.Module, path
        A mapping of names to tensors (hrgraph's names or a torchvision
        ResNet's, told apart by the keys; a ``module.`` prefix from DDP is
        dropped), a module, a checkpoint file (``hrgraph train``'s,
        :func:`hrgraph.save_checkpoint`'s, or a saved state_dict), or a run folder.
    skip_mismatched : bool
        Leave keys whose shapes differ at their initialisation (a head with
        another number of classes) instead of raising.
    silence_new : bool
        Make the new edges contribute zero (see the module docstring).

    Returns
    -------
    LoadReport

    Raises
    ------
    ShapeError
        A tensor's shape differs from the model's (unless ``skip_mismatched``);
        every mismatch is listed.
    HrgraphError
        The source cannot be read or its key names are not recognised.

    Examples
    --------
    >>> import torch, torchvision, hrgraph
    >>> resnet = torchvision.models.resnet18(weights=None).eval()
    >>> spec = {"extends": "specs/resnet18-imagenet.yaml", "edges": [{"from": "stage1", "to": "stage3"}]}
    >>> model = hrgraph.compile_model(spec).eval()
    >>> report = hrgraph.load_weights(model, resnet.state_dict())
    >>> report.counts["loaded"], report.counts["unused"], report.silenced
    (122, 0, ('stage1->stage3',))
    >>> x = torch.randn(1, 3, 64, 64)
    >>> torch.equal(model(x), resnet(x))
    True
    """
    raw, where = read_state_dict(source)
    state, key_format = _to_model_names(raw, where)
    own = model.state_dict()
    mismatched = [f"{k}: {tuple(v.shape)} -> {tuple(own[k].shape)}" for k, v in state.items()
                  if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if mismatched and not skip_mismatched:
        shown = "; ".join(mismatched[:5]) + (f"; and {len(mismatched) - 5} more" if len(mismatched) > 5 else "")
        raise ShapeError(f"{len(mismatched)} tensors do not fit the model ({shown})", path=where)
    bad = {m.split(":")[0] for m in mismatched}
    fitting = {k: v for k, v in state.items() if k in own and k not in bad}
    model.load_state_dict(fitting, strict=False)
    loaded = set(fitting)
    silenced, not_silent = [], []
    if silence_new and hasattr(model, "plan"):
        source_knows_edges = any(k.startswith(("projections.", "gates.")) for k in state)
        silenced, not_silent = _silence(model, loaded, source_knows_edges)
    return LoadReport(
        source=where, key_format=key_format,
        loaded=tuple(k for k in own if k in loaded),
        new=tuple(k for k in own if k not in loaded),
        unused=tuple(sorted(k for k in state if k not in own)),
        mismatched=tuple(mismatched), silenced=tuple(silenced), not_silent=tuple(not_silent),
    )


def freeze_loaded(model: nn.Module, report: LoadReport) -> int:
    """Stop gradients to every loaded parameter (train only what is new); returns how many were frozen.

    BatchNorm running statistics are buffers, not parameters: in train mode
    they still follow the new data (call ``.eval()`` on those layers to keep them).
    """
    loaded = set(report.loaded)
    frozen = 0
    for name, p in model.named_parameters():
        if name in loaded:
            p.requires_grad_(False)
            frozen += 1
    return frozen
