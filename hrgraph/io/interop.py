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

No torch import is needed to rename keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["from_torchvision_resnet", "to_torchvision_resnet"]

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
