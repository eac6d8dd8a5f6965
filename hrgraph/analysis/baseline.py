"""The network at initialisation, as a baseline for what training did to its contributions.

BatchNorm alone sets the scale of an untrained block's output and of an
untrained projection's (both end in a BN with weight 1 and bias 0), so the
ratio projection / block of the paper's Fig. 2 is already about 1 before any
training.  A trained ratio means something only beside the same ratio at
initialisation.  :func:`initial_model` rebuilds the run's network exactly as
training did before its first step (``torch.manual_seed(recipe.seed)`` then
:func:`hrgraph.compile_model`, as in :mod:`hrgraph.train.loop`), and
:func:`reestimate_bn` gives its BatchNorm layers running statistics of real
data, so that the eval-mode pass measures the untrained weights on the same
footing as the trained ones.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from ..build.compiler import HrNet, compile_model
from ..spec import Spec

__all__ = ["initial_model", "reestimate_bn"]


def initial_model(spec: Spec, seed: int, *, device: str | torch.device = "cpu") -> HrNet:
    """``spec`` compiled with the weights a training run with ``seed`` starts from.

    The caller's random state is left as it was (the seed is set inside
    :func:`torch.random.fork_rng`).

    Examples
    --------
    >>> import torch, hrgraph
    >>> spec = hrgraph.load_spec("specs/hiresnet18.yaml")
    >>> a, b = initial_model(spec, 3), initial_model(spec, 3)
    >>> torch.equal(a.nodes["stem"].conv.weight, b.nodes["stem"].conv.weight)
    True
    >>> torch.equal(a.nodes["stem"].conv.weight, initial_model(spec, 4).nodes["stem"].conv.weight)
    False
    """
    with torch.random.fork_rng(devices=[]):
        # What hrgraph.train.loop._run does before its first step.
        torch.manual_seed(seed)
        model = compile_model(spec)
    return model.to(device)


def reestimate_bn(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]]) -> int:
    """Replace every BatchNorm's running statistics by their average over ``batches``; returns the batch count.

    The statistics are reset and accumulated with ``momentum=None`` (a
    cumulative average, every batch weighted alike) in train mode without
    gradients; the momenta are restored and the model is left in eval mode.
    No parameter changes.  With no batches, the statistics stay reset (mean 0,
    variance 1, as at construction).

    Examples
    --------
    >>> import torch, hrgraph
    >>> model = hrgraph.compile_model("specs/resnet18.yaml")
    >>> reestimate_bn(model, [(torch.randn(4, 3, 32, 32) * 5 + 2, None)])
    1
    >>> bn = model.nodes["stem"].bn
    >>> bool(bn.running_var.mean() > 1), model.training, bn.momentum
    (True, False, 0.1)
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    n = 0
    model.train()
    try:
        with torch.no_grad():
            for x, _ in batches:
                model(x)
                n += 1
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
    return n
