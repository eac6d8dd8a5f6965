"""The nn.Modules behind each block kind, the projection module, and the builder registry.

Every block module's ``forward(x, residual=None)`` adds ``residual`` (the sum of
the long-range projections, when a spec asks for ``entry: pre_activation``)
before its final ReLU.  Module and attribute names follow torchvision's ResNet
(``conv1``, ``bn1``, ``downsample``, ``fc``...), so its weights map over by
renaming prefixes only.  Each unit owns ``zero_init_last()``; the compiler calls
it on every module that has it (timm's way), so new block kinds are not skipped.
A block ending in a ReLU names it with ``final_activation()``, so that an
analysis can read the block's value just before it (a pre-hook on that module).

Why one module past 500 lines: every block kind's module and the projections are
built through one registry, which must see them all; each class is short.
"""

# No "from __future__ import annotations" here: doctest examples inherit the
# module's future flags, and a block class defined in one needs its Literal
# annotation evaluated, not left as a string.
import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import CompileError, did_you_mean
from ..spec.kinds import (
    KINDS,
    BasicBlock,
    Block,
    BottleneckBlock,
    ClassifierBlock,
    ConvBlock,
    ConvLayerBlock,
    CORnetSBlock,
    PlainBlock,
    PoolBlock,
    SepConvBlock,
    Shape,
    kind_tag,
)
from .shapes import Projection

__all__ = ["register_block", "build_block", "build_projection", "init_weights", "BUILDERS", "Gate", "WeightedSum"]

Builder = Callable[[Any, Shape], nn.Module]


def conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


def _add(x: Tensor, residual: Tensor | None) -> Tensor:
    # In place, as torchvision's `out += identity`: every caller passes a fresh
    # BN or pool output that autograd has not saved, and an out-of-place add
    # would allocate (and page in) one more activation per block.
    if residual is not None:
        x += residual
    return x


class ConvBNReLU(nn.Module):
    """A stem: conv, BN, ReLU, optional 3x3/2 max-pool (computed as max-pool, then ReLU: the same values)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int, maxpool: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if maxpool else None

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        x = self.bn(self.conv(x))
        if self.maxpool is not None:
            # Max-pooling before the ReLU gives exactly what pooling after it
            # gives (both are maxima; the pool pads with -inf), and a
            # pre-activation residual must enter at the block's output size,
            # which is what the shape plan projects it to.
            x = self.maxpool(x)
        return self.relu(_add(x, residual))

    def final_activation(self) -> nn.Module:
        """The module of the final ReLU: its last call in a forward is the ReLU after the sum."""
        return self.relu


class BasicUnit(nn.Module):
    """ResNet's BasicBlock (``groups`` > 1: the ResNeXt variant with grouped 3x3 convs)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(cin, cout, stride, groups)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(cout, cout, 1, groups)
        self.bn2 = nn.BatchNorm2d(cout)
        # The shortcut gets a projection only where the shape changes, as in torchvision.
        self.downsample = (
            nn.Sequential(conv1x1(cin, cout, stride), nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else None
        )

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        # The shortcut is computed last, as in torchvision, so that its output
        # is not held while the convolutions run.
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(_add(out, residual))

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)

    def final_activation(self) -> nn.Module:
        """The module of the final ReLU: its last call in a forward is the ReLU after the sum."""
        return self.relu


class PlainUnit(nn.Module):
    """Two conv-BN-ReLU layers without a shortcut (the paper's plain network)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(_add(self.bn2(self.conv2(out)), residual))

    def final_activation(self) -> nn.Module:
        """The module of the final ReLU: its last call in a forward is the ReLU after the sum."""
        return self.relu


class BottleneckUnit(nn.Module):
    """torchvision's Bottleneck (v1.5: the stride sits on the 3x3 conv)."""

    def __init__(self, cin: int, width: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, cout)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Sequential(conv1x1(cin, cout, stride), nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else None
        )

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(_add(out, residual))

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def final_activation(self) -> nn.Module:
        """The module of the final ReLU: its last call in a forward is the ReLU after the sum."""
        return self.relu


class Stage(nn.Sequential):
    """A sequence of units; a pre-activation residual enters the last one."""

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:  # type: ignore[override]
        last = len(self) - 1
        for i, unit in enumerate(self):
            x = unit(x, residual) if i == last else unit(x)
        return x

    def final_activation(self) -> nn.Module:
        """The last unit's final ReLU (see :meth:`BasicUnit.final_activation`)."""
        return self[len(self) - 1].final_activation()


class Pool(nn.Module):
    def __init__(self, op: str, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        cls = nn.AvgPool2d if op == "avg" else nn.MaxPool2d
        self.pool = cls(kernel, stride=stride, padding=padding)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        return _add(self.pool(x), residual)


class Classifier(nn.Module):
    """Global average pooling, dropout, linear: torchvision's ``avgpool`` + ``fc``."""

    def __init__(self, cin: int, classes: int, dropout: float) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc(x)


class SepConv(nn.Module):
    """RandWire's node op: ReLU, 3x3 depthwise conv, 1x1 pointwise conv, BN.

    The ReLU is not in place: the input is another node's output, which
    other nodes may read too.
    """

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False)
        self.pointwise = conv1x1(cin, cout)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        return _add(self.bn(self.pointwise(self.depthwise(torch.relu(x)))), residual)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn.weight)


class Identity(nn.Module):
    """Passes its input through (a merge-only node); a residual is added out of place."""

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        # Out of place: x is another node's output (or the merge of several).
        return x if residual is None else x + residual


class WeightedSum(nn.Module):
    """RandWire's aggregation: ``sum_i 2*sigmoid(w_i) * x_i``, with ``w = 0`` at first (a plain sum).

    RandWire weights its inputs by ``sigmoid(w_i)``; the factor 2 (hrgraph's)
    makes the freshly built node exactly the sum of its inputs.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n))

    def forward(self, *inputs: Tensor) -> Tensor:
        scale = 2.0 * torch.sigmoid(self.weight)
        out = inputs[0] * scale[0]
        for i in range(1, len(inputs)):
            out = out + inputs[i] * scale[i]
        return out

    def weights(self) -> list[float]:
        """The current weight of each input."""
        return (2.0 * torch.sigmoid(self.weight.detach())).tolist()


class Gate(nn.Module):
    """A learnable weight on one edge: ``w`` (``scalar``) or ``2*sigmoid(w)`` (``sigmoid``), ``init`` (1) at first."""

    def __init__(self, kind: str, init: float = 1.0) -> None:
        super().__init__()
        if kind not in ("scalar", "sigmoid"):
            raise ValueError(f"unknown gate '{kind}'")
        if kind == "sigmoid" and not 0.0 < init < 2.0:
            raise ValueError(f"a sigmoid gate starts strictly between 0 and 2, not {init}")
        self.kind = kind
        # sigmoid: the w with 2*sigmoid(w) = init (0 for the default 1).
        start = init if kind == "scalar" else math.log(init / (2.0 - init))
        self.weight = nn.Parameter(torch.full((1,), float(start)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale()

    def scale(self) -> Tensor:
        return self.weight if self.kind == "scalar" else 2.0 * torch.sigmoid(self.weight)

    def extra_repr(self) -> str:
        return self.kind


def _stage(units: list[nn.Module]) -> Stage:
    return Stage(OrderedDict((str(i), u) for i, u in enumerate(units)))


def _stage_inputs(block: Any, in_shape: Shape, out_channels: int) -> list[tuple[int, int]]:
    return [(in_shape[0] if i == 0 else out_channels, block.stride if i == 0 else 1) for i in range(block.depth)]


def _build_conv(b: ConvBlock, s: Shape) -> nn.Module:
    return ConvBNReLU(s[0], b.channels, b.kernel, b.stride, b.pad, b.maxpool)


def _build_plain(b: PlainBlock, s: Shape) -> nn.Module:
    return _stage([PlainUnit(cin, b.channels, st) for cin, st in _stage_inputs(b, s, b.channels)])


def _build_basic(b: BasicBlock, s: Shape) -> nn.Module:
    return _stage([BasicUnit(cin, b.channels, st, b.groups()) for cin, st in _stage_inputs(b, s, b.channels)])


def _build_bottleneck(b: BottleneckBlock, s: Shape) -> nn.Module:
    out = b.out_channels
    return _stage([BottleneckUnit(cin, b.channels, out, st) for cin, st in _stage_inputs(b, s, out)])


def _build_pool(b: PoolBlock, s: Shape) -> nn.Module:
    return Pool(b.op, b.kernel, b.stride or b.kernel, b.padding)


def _build_classifier(b: ClassifierBlock, s: Shape) -> nn.Module:
    return Classifier(s[0], b.classes, b.dropout)


def _build_sepconv(b: SepConvBlock, s: Shape) -> nn.Module:
    return SepConv(s[0], b.channels, b.stride)


class ConvLayer(nn.Module):
    """``convlayer``: conv (bias optional), norm (BatchNorm2d, GroupNorm or none), ReLU (optional), 3x3/2 max-pool (optional)."""

    def __init__(self, b: ConvLayerBlock, cin: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, b.channels, b.kernel, stride=b.stride, padding=b.pad, bias=b.bias)
        if b.norm == "batch":
            self.norm = nn.BatchNorm2d(b.channels)
        elif b.norm == "group":
            self.norm = nn.GroupNorm(b.norm_groups, b.channels)
        else:
            self.norm = None
        # In place, as official CORnet's: it acts on the conv's or norm's fresh output, never on the block's
        # input (which, under time, later steps may read again).  Out of place it cost two extra
        # allocations per CORnet-S forward (torch.profiler: the only operators that differed).
        self.relu = nn.ReLU(inplace=True) if b.activation == "relu" else None
        self.pool = nn.MaxPool2d(3, stride=2, padding=1) if b.maxpool else None

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.relu is not None:
            x = self.relu(x)
        if self.pool is not None:
            x = self.pool(x)
        return _add(x, residual)


class CORnetSArea(nn.Module):
    """One CORnet-S area, every step in one call; attribute names are the official ``CORblock_S``'s.

    The official code sets ``conv2.stride`` to 2 for step 0 and back to 1 after it; this
    module calls ``conv2``'s weight at stride 2 functionally for step 0 instead, so the
    module is never mutated in forward (``torch.compile`` and ``torch.export`` trace it
    as is).  The computation is the same.
    """

    def __init__(self, b: CORnetSBlock, cin: int) -> None:
        super().__init__()
        c, wide = b.channels, b.wide
        self.steps = b.step_count
        self.conv_input = conv1x1(cin, c)
        self.skip = conv1x1(c, c, stride=2)
        self.norm_skip = nn.BatchNorm2d(c)
        self.conv1 = conv1x1(c, wide)
        self.nonlin1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(wide, wide, 3, stride=1, padding=1, bias=False)
        self.nonlin2 = nn.ReLU(inplace=True)
        self.conv3 = conv1x1(wide, c)
        self.nonlin3 = nn.ReLU(inplace=True)
        for t in range(self.steps):  # one set of norms per step, registered last as in the official code
            setattr(self, f"norm1_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm2_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm3_{t}", nn.BatchNorm2d(c))

    def forward(self, inp: Tensor, residual: Tensor | None = None) -> Tensor:
        x = self.conv_input(inp)
        for t in range(self.steps):
            if t == 0:
                skip = self.norm_skip(self.skip(x))
            else:
                skip = x
            x = self.nonlin1(getattr(self, f"norm1_{t}")(self.conv1(x)))
            if t == 0:
                x = torch.nn.functional.conv2d(x, self.conv2.weight, None, 2, 1)
            else:
                x = self.conv2(x)
            x = self.nonlin2(getattr(self, f"norm2_{t}")(x))
            x = getattr(self, f"norm3_{t}")(self.conv3(x))
            x = self.nonlin3(x + skip)
        return _add(x, residual)

    def zero_init_last(self) -> None:
        for t in range(self.steps):
            nn.init.zeros_(getattr(self, f"norm3_{t}").weight)


class BuilderRegistry:
    """Module builders by block kind; a duplicate name is an error unless ``replace=True``."""

    def __init__(self) -> None:
        self._builders: dict[str, Builder] = {}

    def register(self, kind: str, build: Builder, *, replace: bool = False) -> None:
        if kind in self._builders and self._builders[kind] is not build and not replace:
            raise ValueError(f"a builder for block kind '{kind}' is already registered (pass replace=True)")
        self._builders[kind] = build

    def get(self, kind: str) -> Builder:
        try:
            return self._builders[kind]
        except KeyError:
            raise CompileError(
                f"no module builder registered for block kind '{kind}'{did_you_mean(kind, self._builders)}"
            ) from None


BUILDERS = BuilderRegistry()
for _kind, _build in (
    ("conv", _build_conv),
    ("plain", _build_plain),
    ("basic", _build_basic),
    ("resnext", _build_basic),
    ("bottleneck", _build_bottleneck),
    ("pool", _build_pool),
    ("classifier", _build_classifier),
    ("sepconv", _build_sepconv),
    ("identity", lambda b, s: Identity()),
    ("convlayer", lambda b, s: ConvLayer(b, s[0])),
    ("cornet_s", lambda b, s: CORnetSArea(b, s[0])),
):
    BUILDERS.register(_kind, _build)


def register_block(spec_cls: type[Block], build: Builder, *, replace: bool = False) -> type[Block]:
    """Register a user block kind: its spec model and its module builder.

    Parameters
    ----------
    spec_cls : type[Block]
        A subclass of :class:`hrgraph.Block` with ``kind: Literal["name"]``, its
        parameters as fields, and ``out_shape``/``param_count`` (and
        ``has_final_activation = True`` only if its module's ``forward`` takes
        ``residual`` and adds it before a final activation).
    build : callable
        ``build(block_spec, in_shape) -> nn.Module``; the module's forward takes
        ``(x)`` (or ``(x, residual=None)``, see above).
    replace : bool
        Allow replacing an existing kind of the same name.

    Returns
    -------
    type[Block]
        ``spec_cls``, so that this can be used as a decorator's body.

    Raises
    ------
    ValueError
        The kind is already registered and ``replace`` is false.
    TypeError
        ``spec_cls`` is not a Block subclass with a ``kind`` literal.

    Examples
    --------
    >>> from typing import Literal
    >>> from torch import nn
    >>> import hrgraph
    >>> class Dropout2d(hrgraph.Block):
    ...     kind: Literal["dropout2d"]
    ...     p: float = 0.1
    >>> _ = hrgraph.register_block(Dropout2d, lambda b, shape: nn.Dropout2d(b.p), replace=True)
    >>> "dropout2d" in hrgraph.KINDS
    True
    """
    tag = kind_tag(spec_cls)
    if not replace and tag in KINDS and KINDS.get(tag) is not spec_cls:
        raise ValueError(f"block kind '{tag}' is already registered (pass replace=True to override it)")
    BUILDERS.register(tag, build, replace=True)
    KINDS.register(spec_cls, replace=True)
    return spec_cls


def build_block(block: Block, in_shape: Shape) -> nn.Module:
    """Build the module of one node.

    Raises
    ------
    CompileError
        No builder is registered, or a user builder failed or returned no module.
    """
    build = BUILDERS.get(block.kind)
    try:
        module = build(block, in_shape)
    except Exception as err:  # a user builder's bug must still name the node
        raise CompileError(f"building block kind '{block.kind}' failed: {type(err).__name__}: {err}", node=block.id) from err
    if not isinstance(module, nn.Module):
        raise CompileError(f"the builder of block kind '{block.kind}' returned {type(module).__name__}, not an nn.Module", node=block.id)
    return module


class ProjectionModule(nn.Sequential):
    """``pool`` (if the spatial sizes differ) then ``conv`` (1x1, no bias) and ``bn``: timm's downsample_avg."""

    def zero_init_last(self) -> None:
        if hasattr(self, "bn"):
            nn.init.zeros_(self.bn.weight)


def build_projection(p: Projection) -> nn.Module | None:
    """The module of one edge's projection, or ``None`` for an identity edge."""
    if p.identity:
        return None
    layers: list[tuple[str, nn.Module]] = []
    if p.upsample is not None:
        # A top-down edge: upsample by the integer factor, then the 1x1 conv + BN at the finer size.
        align = {"align_corners": False} if p.upsample == "bilinear" else {}
        layers.append(("upsample", nn.Upsample(scale_factor=p.upsample_factor, mode=p.upsample, **align)))
    if p.pool == "adaptive":
        layers.append(("pool", nn.AdaptiveAvgPool2d(p.out_shape[1:])))
    elif p.pool == "avg":
        layers.append(("pool", nn.AvgPool2d(p.pool_kernel, stride=p.pool_kernel)))
    elif p.pool == "max":
        layers.append(("pool", nn.MaxPool2d(p.pool_kernel, stride=p.pool_kernel)))
    if p.conv is not None:
        layers.append(("conv", conv1x1(*p.conv)))
        layers.append(("bn", nn.BatchNorm2d(p.conv[1])))
    return ProjectionModule(OrderedDict(layers))


def init_weights(module: nn.Module) -> None:
    """torchvision's ResNet initialisation: Kaiming-normal convs (fan_out), BN at 1 and 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
