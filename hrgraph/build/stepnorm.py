"""One copy of each normalisation layer per step: ``step_norm: per_step`` (docs/spec.md, Feedback and time).

Under time, a node's weights are shared by its steps, but the statistics of
what reaches it are not: at the first step a feedback area sees only its
feed-forward input, later the sum with its own state and the areas above.
A BatchNorm shared by the steps keeps one running mean for all of them, so
evaluation normalises every step with statistics of none (CORnet-S keeps one
BatchNorm per step for this reason).  :func:`per_step_norms` replaces every
normalisation layer of a module by a :class:`StepNorm`, a copy per step,
leaving the convolutions shared.

The generated forward says which step a node is at before it runs
(``at_step(1, nodes.V2, projections.IT__V2)``): :func:`at_step` sets the step
of every :class:`StepNorm` in the node's block and in the projections into it.
The step is a Python ``int`` written by the unrolled code, so ``torch.fx``,
``torch.compile`` and ``torch.export`` see a plain call of one copy.  (It is
kept on each :class:`StepNorm`, not in one table the norms share: non-strict
``torch.export`` restores mutated attributes with copies, which would break a
shared table's aliasing.)
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

__all__ = ["NORM_LAYERS", "StepNorm", "at_step", "norm_param_count", "per_step_norms"]

#: The layers copied per step.
NORM_LAYERS = (_BatchNorm, nn.GroupNorm, nn.LayerNorm, _InstanceNorm)


class StepNorm(nn.ModuleDict):
    """Copies of one normalisation layer keyed by step (``"0"``, ``"1"``, ...); runs the current step's.

    Parameters
    ----------
    norm : nn.Module
        The layer to copy (its current weights and statistics are copied).
    steps : iterable of int
        The steps the layer runs at.

    Examples
    --------
    >>> import torch
    >>> norm = StepNorm(nn.BatchNorm2d(4), [0, 1])
    >>> sorted(k for k, _ in norm.named_parameters())
    ['0.bias', '0.weight', '1.bias', '1.weight']
    >>> at_step(1, norm)
    >>> norm(torch.randn(2, 4, 3, 3)).shape
    torch.Size([2, 4, 3, 3])
    >>> int(norm["1"].num_batches_tracked), int(norm["0"].num_batches_tracked)
    (1, 0)
    """

    def __init__(self, norm: nn.Module, steps: Iterable[int]) -> None:
        steps = tuple(steps)
        super().__init__({str(t): copy.deepcopy(norm) for t in steps})
        self.step = steps[0]

    def forward(self, x: Tensor) -> Tensor:
        return self[str(self.step)](x)

    def extra_repr(self) -> str:
        return f"steps=[{', '.join(self.keys())}]"


def at_step(step: int, *modules: nn.Module) -> None:
    """Make every :class:`StepNorm` in ``modules`` use its copy of ``step`` (called by the generated forward)."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, StepNorm):
                m.step = step


def norm_param_count(module: nn.Module) -> int:
    """Learnable parameters in the normalisation layers of ``module``."""
    return sum(p.numel() for m in module.modules() if isinstance(m, NORM_LAYERS) for p in m.parameters(recurse=False))


def per_step_norms(module: nn.Module, steps: Iterable[int]) -> nn.Module:
    """``module`` with each normalisation layer replaced by a :class:`StepNorm` over ``steps``.

    Everything else (convolutions, linear layers) stays one module shared by
    the steps.  Returns the module (a :class:`StepNorm` when ``module`` is itself
    a normalisation layer).
    """
    steps = tuple(steps)
    if isinstance(module, NORM_LAYERS):
        return StepNorm(module, steps)
    for name, child in list(module.named_children()):
        setattr(module, name, per_step_norms(child, steps))
    return module
