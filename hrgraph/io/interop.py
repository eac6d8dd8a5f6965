"""Weight mappings between hrgraph models and hand-written reference networks.

torchvision's ResNet and an hrgraph spec with node ids ``stem``, ``stage1`` ..
``stage4``, ``head`` share every module name below the node, so the mapping only
renames prefixes:

=================  ===================
torchvision        hrgraph
=================  ===================
``conv1.*``        ``nodes.stem.conv.*``
``bn1.*``          ``nodes.stem.bn.*``
``layerK.*``       ``nodes.stageK.*``
``fc.*``           ``nodes.head.fc.*``
=================  ===================

:func:`from_cornet` maps an official CORnet-Z, -RT or -S checkpoint
(github.com/dicarlolab/CORnet) onto ``specs/examples/cornet-{z,rt,s}.yaml``.

No torch import is needed to rename keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["from_cornet", "from_torchvision_resnet", "to_torchvision_resnet"]

_PREFIXES = (
    ("conv1.", "nodes.stem.conv."),
    ("bn1.", "nodes.stem.bn."),
    ("layer1.", "nodes.stage1."),
    ("layer2.", "nodes.stage2."),
    ("layer3.", "nodes.stage3."),
    ("layer4.", "nodes.stage4."),
    ("fc.", "nodes.head.fc."),
)


def _rename(state_dict: Mapping[str, Any], pairs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    out = {}
    for key, value in state_dict.items():
        for old, new in pairs:
            if key.startswith(old):
                out[new + key[len(old) :]] = value
                break
        else:
            raise KeyError(f"no mapping for state_dict key '{key}'")
    return out


def from_torchvision_resnet(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Rename a torchvision ResNet state_dict's keys to hrgraph's.

    Examples
    --------
    >>> from_torchvision_resnet({"layer2.0.downsample.0.weight": 0, "fc.bias": 1})
    {'nodes.stage2.0.downsample.0.weight': 0, 'nodes.head.fc.bias': 1}
    """
    return _rename(state_dict, _PREFIXES)


def to_torchvision_resnet(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`from_torchvision_resnet` (projection keys are refused)."""
    return _rename(state_dict, tuple((new, old) for old, new in _PREFIXES))


_AREAS = ("V1", "V2", "V4", "IT")
_DECODER = (("decoder.linear.", "nodes.decoder.fc."),)
#: Official key prefixes -> the compiled spec's, per model (see the specs' header comments).
_CORNET = {
    "Z": tuple((f"{a}.conv.", f"nodes.{a}.conv.") for a in _AREAS) + _DECODER,
    "RT": tuple(
        pair
        for a in _AREAS
        for pair in (
            (f"{a}.conv_input.", f"nodes.{a}_input.conv."),
            (f"{a}.norm_input.", f"nodes.{a}_input.norm."),
            (f"{a}.conv1.", f"nodes.{a}.conv."),
            (f"{a}.norm1.", f"nodes.{a}.norm."),
        )
    )
    + _DECODER,
    "S": (
        ("V1.conv1.", "nodes.V1_conv1.conv."),
        ("V1.norm1.", "nodes.V1_conv1.norm."),
        ("V1.conv2.", "nodes.V1.conv."),
        ("V1.norm2.", "nodes.V1.norm."),
        ("V2.", "nodes.V2."),
        ("V4.", "nodes.V4."),
        ("IT.", "nodes.IT."),
    )
    + _DECODER,
}


def from_cornet(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Rename an official CORnet-Z/RT/S state_dict's keys to those of ``specs/examples/cornet-*.yaml``.

    The model is recognised from its keys; DataParallel's ``module.`` prefix (which the
    published checkpoints carry) is stripped.  Load the result with
    ``model.load_state_dict(from_cornet(ckpt["state_dict"]))``.  A checkpoint without
    ``num_batches_tracked`` (older torch) loads with ``strict=False`` only for those keys.

    Raises
    ------
    KeyError
        A key that no CORnet model has.

    Examples
    --------
    >>> from_cornet({"module.V2.conv_input.weight": 0, "module.decoder.linear.bias": 1})
    {'nodes.V2_input.conv.weight': 0, 'nodes.decoder.fc.bias': 1}
    >>> from_cornet({"V1.conv1.weight": 0, "IT.norm3_1.running_var": 1})
    {'nodes.V1_conv1.conv.weight': 0, 'nodes.IT.norm3_1.running_var': 1}
    """
    stripped = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state_dict.items()}
    if "V1.conv_input.weight" in stripped:
        model = "RT"
    elif "V1.conv1.weight" in stripped:
        model = "S"
    elif "V1.conv.weight" in stripped:
        model = "Z"
    else:  # a partial dict: the first key that names a model-specific module decides
        model = next(
            (m for k in stripped for m, marks in (("RT", ("conv_input", "norm_input")), ("S", ("norm1_", "skip", "V1.conv1", "V1.conv2"))) if any(x in k for x in marks)),
            "Z",
        )
    return _rename(stripped, _CORNET[model])
