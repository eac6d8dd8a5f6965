"""Reference CORnet-Z, CORnet-RT and CORnet-S, written from the published architecture.

Kubilius et al. 2018 (CORnet-Z, CORnet-RT; bioRxiv 10.1101/408385) and 2019 (CORnet-S; NeurIPS,
arXiv 1909.06161); the official code lives in github.com/dicarlolab/CORnet (``cornet/cornet_z.py``,
``cornet_rt.py``, ``cornet_s.py``). This file is our own re-implementation, kept for the tests that
check hrgraph's time-unrolled compilation against it. Everything a checkpoint or a feature hook can
see is kept as the official code has it:

- module names, hence state_dict keys (an official checkpoint, once DataParallel's ``module.``
  prefix is stripped, loads with ``strict=True``), and registration order;
- which convolutions carry a bias, every padding and stride, GroupNorm(32, C) in RT, one
  BatchNorm per time step in S;
- the ``output`` Identity modules, called exactly where the official forward calls them (so a
  forward hook on ``V4.output`` fires once per step in S and RT, as the official one does);
- the order of operations in each step, including the quirks documented in
  docs/notes/cornet-facts.md (RT's step-0 areas above V1 are fed a zero tensor, not skipped; S
  changes ``conv2``'s stride between steps).

Initialisation follows the official code too, though a checkpoint overwrites it.

Examples
--------
>>> import torch
>>> model = cornet_z().eval()
>>> with torch.no_grad():
...     model(torch.zeros(1, 3, 224, 224)).shape
torch.Size([1, 1000])
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

__all__ = [
    "CORblock_RT",
    "CORblock_S",
    "CORblock_Z",
    "CORnet_RT",
    "Flatten",
    "Identity",
    "cornet_rt",
    "cornet_s",
    "cornet_z",
]


class Flatten(nn.Module):
    """``(N, C, 1, 1) -> (N, C)``; a module so the decoder reads as a named sequence."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1)


class Identity(nn.Module):
    """A named no-op: the place to hang a forward hook for an area's output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _decoder(with_output: bool) -> nn.Sequential:
    layers: list[tuple[str, nn.Module]] = [
        ("avgpool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", Flatten()),
        ("linear", nn.Linear(512, 1000)),
    ]
    # The official CORnet-RT decoder stops at `linear`; Z and S end with an `output` hook.
    if with_output:
        layers.append(("output", Identity()))
    return nn.Sequential(OrderedDict(layers))


# --------------------------------------------------------------------------------------------
# CORnet-Z: four conv -> ReLU -> maxpool areas, then the decoder.


class CORblock_Z(nn.Module):
    """``output(maxpool3s2(relu(conv(x))))``; the conv keeps its bias and 'same' padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2
        )
        self.nonlin = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.output = Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.pool(self.nonlin(self.conv(x))))


def cornet_z() -> nn.Sequential:
    """CORnet-Z as the official ``CORnet_Z()``: an ``nn.Sequential`` of V1, V2, V4, IT, decoder.

    Examples
    --------
    >>> sum(p.numel() for p in cornet_z().parameters()) > 0
    True
    """
    model = nn.Sequential(
        OrderedDict(
            [
                ("V1", CORblock_Z(3, 64, kernel_size=7, stride=2)),
                ("V2", CORblock_Z(64, 128)),
                ("V4", CORblock_Z(128, 256)),
                ("IT", CORblock_Z(256, 512)),
                ("decoder", _decoder(with_output=True)),
            ]
        )
    )
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


# --------------------------------------------------------------------------------------------
# CORnet-RT: each area has a feedforward input conv and a recurrent conv on (input + state);
# areas are unrolled "biologically": at step t an area reads the area below's output of step t-1.


class CORblock_RT(nn.Module):
    """One CORnet-RT area; ``forward`` computes one time step and returns ``(output, state)``.

    ``out_shape`` is the side of the area's output map at a 224x224 image; it is only used to
    build the zero input of step 0 (the official code hard-codes it, so RT runs at 224 only).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        out_shape: int | None = None,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.out_shape = out_shape

        self.conv_input = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2
        )
        self.norm_input = nn.GroupNorm(32, out_channels)
        self.nonlin_input = nn.ReLU(inplace=True)

        self.conv1 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(32, out_channels)
        self.nonlin1 = nn.ReLU(inplace=True)

        self.output = Identity()

    def forward(
        self,
        inp: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        batch_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if inp is None:
            # Step 0 above V1: nothing has arrived from below yet, so the official code feeds a
            # zero map *after* the input conv (conv_input/norm_input are skipped, not run on 0).
            w = self.conv_input.weight
            inp = torch.zeros(
                batch_size, self.out_channels, self.out_shape, self.out_shape,
                dtype=w.dtype, device=w.device,
            )
        else:
            inp = self.nonlin_input(self.norm_input(self.conv_input(inp)))
        # The state starts at 0: step 0's recurrent conv sees the input alone.
        skip = inp + (0 if state is None else state)
        x = self.nonlin1(self.norm1(self.conv1(skip)))
        state = self.output(x)
        return state, state


class CORnet_RT(nn.Module):
    """CORnet-RT, unrolled for ``times`` steps; the logits are the decoder on IT's last output."""

    areas = ("V1", "V2", "V4", "IT")

    def __init__(self, times: int = 5):
        super().__init__()
        self.times = times
        self.V1 = CORblock_RT(3, 64, kernel_size=7, stride=4, out_shape=56)
        self.V2 = CORblock_RT(64, 128, stride=2, out_shape=28)
        self.V4 = CORblock_RT(128, 256, stride=2, out_shape=14)
        self.IT = CORblock_RT(256, 512, stride=2, out_shape=7)
        self.decoder = _decoder(with_output=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        batch = len(image)
        # Step 0: V1 sees the image; V2, V4, IT still run, on a zero input and a zero state.
        outputs: dict[str, torch.Tensor] = {}
        states: dict[str, torch.Tensor] = {}
        for area in self.areas:
            inp = image if area == "V1" else None
            outputs[area], states[area] = getattr(self, area)(inp, batch_size=batch)
        # Steps 1..times-1: each area reads the area below's output of the *previous* step
        # (V1 reads the image again) and its own state.
        for _ in range(1, self.times):
            below = {"V1": image, "V2": outputs["V1"], "V4": outputs["V2"], "IT": outputs["V4"]}
            outputs = {}
            for area in self.areas:
                outputs[area], states[area] = getattr(self, area)(below[area], states[area])
        return self.decoder(outputs["IT"])


def cornet_rt(times: int = 5) -> CORnet_RT:
    """CORnet-RT as the official ``CORnet_RT(times)``, PyTorch's default initialisation.

    Examples
    --------
    >>> cornet_rt().times
    5
    """
    return CORnet_RT(times=times)


# --------------------------------------------------------------------------------------------
# CORnet-S: a ResNet-bottleneck-like area whose three convs are reused for `times` steps, with a
# fresh set of BatchNorms per step. Only the first step downsamples (and has a projected skip).


class CORblock_S(nn.Module):
    """One CORnet-S area, all its time steps in one ``forward``."""

    scale = 4  # bottleneck expansion: conv1/conv2 work at out_channels * scale

    def __init__(self, in_channels: int, out_channels: int, times: int = 1):
        super().__init__()
        self.times = times
        wide = out_channels * self.scale

        self.conv_input = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        # No padding: a 1x1 kernel at stride 2 picks the even rows and columns.
        self.skip = nn.Conv2d(out_channels, out_channels, kernel_size=1, stride=2, bias=False)
        self.norm_skip = nn.BatchNorm2d(out_channels)

        self.conv1 = nn.Conv2d(out_channels, wide, kernel_size=1, bias=False)
        self.nonlin1 = nn.ReLU(inplace=True)
        # Built with stride 2; forward sets (2, 2) for step 0 and (1, 1) for the later steps.
        self.conv2 = nn.Conv2d(wide, wide, kernel_size=3, stride=2, padding=1, bias=False)
        self.nonlin2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(wide, out_channels, kernel_size=1, bias=False)
        self.nonlin3 = nn.ReLU(inplace=True)

        self.output = Identity()

        # Registered after `output`, as in the official code: this fixes the state_dict order.
        for t in range(times):
            setattr(self, f"norm1_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm2_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm3_{t}", nn.BatchNorm2d(out_channels))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.conv_input(inp)  # no norm, no nonlinearity: a 1x1 channel change only
        for t in range(self.times):
            if t == 0:
                skip = self.norm_skip(self.skip(x))
                # Setting the module's stride (rather than calling F.conv2d) keeps hooks on
                # `conv2` firing every step, as they do on the official module.
                self.conv2.stride = (2, 2)
            else:
                skip = x
                self.conv2.stride = (1, 1)
            x = self.nonlin1(getattr(self, f"norm1_{t}")(self.conv1(x)))
            x = self.nonlin2(getattr(self, f"norm2_{t}")(self.conv2(x)))
            x = getattr(self, f"norm3_{t}")(self.conv3(x))
            x = self.nonlin3(x + skip)  # ReLU after the sum, as in a ResNet block
            out = self.output(x)
        return out


def cornet_s() -> nn.Sequential:
    """CORnet-S as the official ``CORnet_S()``: V1 is a plain two-conv stem, then V2/V4/IT.

    Examples
    --------
    >>> [m.times for m in cornet_s()[1:4]]
    [2, 4, 2]
    """
    v1 = nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)),
                ("norm1", nn.BatchNorm2d(64)),
                ("nonlin1", nn.ReLU(inplace=True)),
                ("pool", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                ("conv2", nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=1, bias=False)),
                ("norm2", nn.BatchNorm2d(64)),
                ("nonlin2", nn.ReLU(inplace=True)),
                ("output", Identity()),
            ]
        )
    )
    model = nn.Sequential(
        OrderedDict(
            [
                ("V1", v1),
                ("V2", CORblock_S(64, 128, times=2)),
                ("V4", CORblock_S(128, 256, times=4)),
                ("IT", CORblock_S(256, 512, times=2)),
                ("decoder", _decoder(with_output=True)),
            ]
        )
    )
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            # He-normal with fan-out; the official code leaves the Linear at PyTorch's default.
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
    return model
