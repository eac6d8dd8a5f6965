"""Block kinds: their typed parameters and their shape and parameter arithmetic.

Each block kind is a frozen pydantic model with a ``kind`` literal (the tag of
the node union) and four pure functions of the input shape: the output shape,
the parameter count, the multiply-accumulate count (convolutions and linear
layers) and the counts of the work that is not multiply-accumulates (pooling,
batch norm, residual adds; :class:`OpCounts`).  No torch here, so a
spec can be validated, counted and drawn without importing it; the matching
``nn.Module`` builders live in :mod:`hrgraph.build.blocks`.

Shapes are ``(channels, height, width)`` tuples of one sample.

Why one module past 500 lines: pydantic's discriminated union of block kinds needs
every kind in one place, and each kind is a short class (fields, shape rule,
parameter and MAC count); splitting them would scatter one table.  The
arithmetic they share is in :mod:`hrgraph.spec.arith`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ShapeError, SpecError, did_you_mean
from .arith import (
    Shape,
    MAX_CHANNELS,
    MAX_KERNEL,
    MAX_INPUTS,
    RESERVED_IDS,
    NETWORK_INPUT,
    ID_PATTERN,  # re-exported: its users import it from here
    NodeId,
    Channels,
    Kernel,
    Stride,
    Depth,
    conv_params,
    bn_params,
    spatial,
    OpCounts,
    _require_spatial,
)

__all__ = [
    "Shape",
    "NodeId",
    "Block",
    "OpCounts",
    "ConvBlock",
    "PlainBlock",
    "BasicBlock",
    "ResNeXtBlock",
    "BottleneckBlock",
    "PoolBlock",
    "SepConvBlock",
    "IdentityBlock",
    "ClassifierBlock",
    "ConvLayerBlock",
    "CORnetSBlock",
    "InputRef",
    "KindRegistry",
    "KINDS",
    "MAX_CHANNELS",
    "RESERVED_IDS",
    "NETWORK_INPUT",
]

MAX_DELAY = 64
MAX_STEPS = 1024


class InputRef(BaseModel):
    """One item of a node's ``input`` that names a delayed source: ``{from: V2, delay: 1}``.

    ``delay: N`` feeds the source's output of step ``t - N`` into step ``t``
    (docs/spec.md, Feedback and time); ``delay: 0`` is the same as the bare id.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)

    from_: NodeId = Field(alias="from", description="Source node id, or `input` (the network input).")
    delay: Annotated[int, Field(ge=0, le=MAX_DELAY)] = Field(default=0, description="Steps of delay (0: same step).")


InputItem = NodeId | InputRef


class Block(BaseModel):
    """Base of every block kind: an id, an optional main-path input, a kind tag.

    Subclasses define ``kind: Literal["name"]`` and override :meth:`out_shape`,
    :meth:`param_count`, :meth:`macs` and :meth:`op_counts`.  ``width_fields`` names the fields that
    set hidden widths (what parameter matching may scale) and
    ``accepts_edges``/``emits_edges`` say whether long-range edges may end or
    start here.
    """

    # strict: an integer field takes only integers and a boolean only true/false
    # (no "16" -> 16, true -> 1, "off" -> False); see docs/spec.md "Values".
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    id: NodeId = Field(description="Stable node id; becomes the module's state_dict prefix.")
    input: InputItem | Annotated[list[InputItem], Field(min_length=1, max_length=MAX_INPUTS)] | None = Field(
        default=None,
        description="Node whose output feeds this one (default: the previous node), or a list of nodes whose "
        "outputs are merged by `aggregate` before the block; an item may be {from: id, delay: N}.",
    )
    aggregate: Literal["sum", "mean", "concat", "weighted"] = Field(
        default="sum",
        description="How a list `input` is merged: sum, mean, concat (channels) or weighted "
        "(a learnable 2*sigmoid(w) per input, starting as a sum).",
    )
    kind: str
    steps: Annotated[int, Field(gt=0, le=MAX_STEPS)] | None = Field(
        default=None,
        description="Steps this node runs under time: {scheme: sequential} (default: time.steps).",
    )
    idle: Literal["silent", "zeros"] | None = Field(
        default=None,
        description="At a step where none of its inputs has a value yet: 'silent' (compute nothing, pass zero "
        "on) or 'zeros' (run the block on a zero input); default: time.idle.",
    )
    step_norm: Literal["shared", "per_step"] | None = Field(
        default=None,
        description="Under time: this node's normalisation layers (and those of the projections into it) "
        "shared by its steps, or one copy per step it runs (per_step); default: time.step_norm.",
    )

    width_fields: ClassVar[tuple[str, ...]] = ()
    accepts_edges: ClassVar[bool] = True
    emits_edges: ClassVar[bool] = True
    #: Whether the block ends in an activation that a ``pre_activation`` residual can enter before.
    has_final_activation: ClassVar[bool] = False
    #: Whether the block's module returns ``(batch, features)`` rather than a feature
    #: map (``out_shape`` is then ``(features, 1, 1)``): such a block must be the last node.
    terminal: ClassVar[bool] = False
    #: Whether the block's module runs all of the node's ``steps`` itself, in one call (a block whose
    #: steps differ from each other, such as CORnet-S's area); its counts then cover every step.
    owns_steps: ClassVar[bool] = False

    @field_validator("id")
    @classmethod
    def _not_the_network_input(cls, value: str) -> str:
        # References use the same type (an edge may come from the input), so the
        # reservation is checked on the id field only.
        if value == NETWORK_INPUT:
            raise ValueError(
                f"'{NETWORK_INPUT}' is reserved: it names the network's input, which edges and list inputs may "
                f"take as a source ({{from: {NETWORK_INPUT}, to: ...}}); choose another id, e.g. 'stem'"
            )
        return value

    @model_validator(mode="after")
    def _aggregate_needs_a_list(self) -> "Block":
        if self.aggregate != "sum" and not isinstance(self.input, list):
            raise ValueError(f"aggregate: {self.aggregate} merges a list of inputs; this node has a single input")
        return self

    @property
    def inputs(self) -> tuple[str, ...]:
        """The node ids listed under ``input`` (empty: the previous node or the network input)."""
        return tuple(i if isinstance(i, str) else i.from_ for i in self._input_items())

    @property
    def input_delays(self) -> tuple[int, ...]:
        """The delay of each item of ``input``, in the order of :attr:`inputs` (0 for a bare id)."""
        return tuple(0 if isinstance(i, str) else i.delay for i in self._input_items())

    def _input_items(self) -> tuple[Any, ...]:
        if self.input is None:
            return ()
        return tuple(self.input) if isinstance(self.input, list) else (self.input,)

    @property
    def step_count(self) -> int:
        """Steps the block's own module runs per call (``steps`` for a block that owns its steps, else 1)."""
        return (self.steps or 1) if self.owns_steps else 1

    def out_shape(self, in_shape: Shape) -> Shape:
        """Output shape for ``in_shape``; raises :class:`ShapeError` where it does not fit."""
        return in_shape

    def param_count(self, in_shape: Shape) -> int:
        """Number of learnable parameters when fed ``in_shape``."""
        return 0

    def norm_params(self, in_shape: Shape) -> int:
        """The part of :meth:`param_count` in normalisation layers (copied per step under ``step_norm: per_step``)."""
        return 0

    def macs(self, in_shape: Shape) -> int:
        """Multiply-accumulates of one forward pass of one sample (convolutions and linear layers only)."""
        return 0

    def op_counts(self, in_shape: Shape) -> OpCounts:
        """Pooling, batch-norm and residual-add elements of one sample's forward (see :class:`OpCounts`)."""
        return OpCounts()

    def channel_multiple(self) -> int:
        """Widths in ``width_fields`` must be multiples of this (e.g. the cardinality)."""
        return 1

    def label(self) -> str:
        """A short description for tables and diagrams."""
        return self.kind


class _ConvGeometry:
    """The shape rule of one convolution (``padding`` default ``kernel // 2``) and an optional 3x3/2 max-pool.

    Shared by :class:`ConvBlock` and :class:`ConvLayerBlock`, whose fields
    (``channels``, ``kernel``, ``stride``, ``padding``, ``maxpool``) it reads.
    """

    @property
    def pad(self) -> int:
        return self.kernel // 2 if self.padding is None else self.padding

    def _conv_hw(self, in_shape: Shape) -> tuple[int, int]:
        return _require_spatial(in_shape, self.kernel, self.stride, self.pad, "the convolution")

    def out_shape(self, in_shape: Shape) -> Shape:
        h, w = self._conv_hw(in_shape)
        if self.maxpool:
            h, w = _require_spatial((self.channels, h, w), 3, 2, 1, "the max-pool")
        return (self.channels, h, w)


class ConvBlock(_ConvGeometry, Block):
    """``conv``: convolution, batch norm, ReLU, then an optional 3x3/2 max-pool (a ResNet stem)."""

    kind: Literal["conv"]
    channels: Channels
    kernel: Kernel = 3
    stride: Stride = 1
    padding: Annotated[int, Field(ge=0, le=MAX_KERNEL)] | None = Field(
        default=None, description="Zero padding (default: kernel // 2)."
    )
    maxpool: bool = Field(default=False, description="Follow with MaxPool2d(3, stride=2, padding=1).")

    width_fields: ClassVar[tuple[str, ...]] = ("channels",)
    has_final_activation: ClassVar[bool] = True

    def param_count(self, in_shape: Shape) -> int:
        return conv_params(in_shape[0], self.channels, self.kernel) + bn_params(self.channels)

    def norm_params(self, in_shape: Shape) -> int:
        return bn_params(self.channels)

    def macs(self, in_shape: Shape) -> int:
        h, w = self._conv_hw(in_shape)
        return conv_params(in_shape[0], self.channels, self.kernel) * h * w

    def op_counts(self, in_shape: Shape) -> OpCounts:
        h, w = self._conv_hw(in_shape)
        _, ph, pw = self.out_shape(in_shape)
        return OpCounts(bn=self.channels * h * w, pool=self.channels * ph * pw * 9 if self.maxpool else 0)

    def label(self) -> str:
        pool = " + maxpool" if self.maxpool else ""
        return f"conv {self.kernel}x{self.kernel}/{self.stride}{pool}"


@dataclass(frozen=True)
class ConvLayer:
    """One convolution of a stage: channels, kernel, groups and its output's height and width."""

    cin: int
    cout: int
    kernel: int
    groups: int
    h: int
    w: int


class _Stage(Block):
    """Shared arithmetic of a stage of ``depth`` blocks, the first one strided."""

    channels: Channels
    depth: Depth = 2
    stride: Stride = 1

    width_fields: ClassVar[tuple[str, ...]] = ("channels",)
    has_final_activation: ClassVar[bool] = True

    @property
    def out_channels(self) -> int:
        return self.channels

    def groups(self) -> int:
        return 1

    def out_shape(self, in_shape: Shape) -> Shape:
        groups = self.groups()
        if in_shape[0] % groups:
            raise ShapeError(f"input channels {in_shape[0]} are not divisible by the cardinality {groups}")
        h, w = _require_spatial(in_shape, 3, self.stride, 1, "the first 3x3 convolution")
        return (self.out_channels, h, w)

    #: Whether each unit adds a shortcut to its output (ResNet) or not (plain).
    shortcut: ClassVar[bool] = True

    def _unit_convs(self, cin: int, stride: int, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> Iterator[ConvLayer]:
        """The convolutions of one unit, each followed by a batch norm of its output."""
        raise NotImplementedError

    def _units(self, in_shape: Shape) -> Iterator[tuple[int, int, tuple[int, int], tuple[int, int]]]:
        """Yield (input channels, stride, input (h, w), output (h, w)) of each unit."""
        c, h, w = in_shape
        for i in range(self.depth):
            stride = self.stride if i == 0 else 1
            oh, ow = spatial(h, 3, stride, 1), spatial(w, 3, stride, 1)
            yield (c if i == 0 else self.out_channels), stride, (h, w), (oh, ow)
            h, w = oh, ow

    def _convs(self, in_shape: Shape) -> Iterator[ConvLayer]:
        # The one list of layers that parameters, MACs and op counts all read.
        for cin, stride, in_hw, out_hw in self._units(in_shape):
            yield from self._unit_convs(cin, stride, in_hw, out_hw)

    def param_count(self, in_shape: Shape) -> int:
        return sum(conv_params(c.cin, c.cout, c.kernel, c.groups) + bn_params(c.cout) for c in self._convs(in_shape))

    def norm_params(self, in_shape: Shape) -> int:
        return sum(bn_params(c.cout) for c in self._convs(in_shape))

    def macs(self, in_shape: Shape) -> int:
        return sum(conv_params(c.cin, c.cout, c.kernel, c.groups) * c.h * c.w for c in self._convs(in_shape))

    def op_counts(self, in_shape: Shape) -> OpCounts:
        bn = sum(c.cout * c.h * c.w for c in self._convs(in_shape))
        add = sum(self.out_channels * h * w for _, _, _, (h, w) in self._units(in_shape)) if self.shortcut else 0
        return OpCounts(bn=bn, add=add)

    def label(self) -> str:
        stride = f"/{self.stride}" if self.stride != 1 else ""
        return f"{self.kind} x{self.depth}{stride}"


class PlainBlock(_Stage):
    """``plain``: ``depth`` pairs of 3x3 conv-BN-ReLU, no shortcuts (the paper's plain net)."""

    kind: Literal["plain"]

    shortcut: ClassVar[bool] = False

    def _unit_convs(self, cin: int, stride: int, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> Iterator[ConvLayer]:
        c = self.channels
        yield ConvLayer(cin, c, 3, 1, *out_hw)
        yield ConvLayer(c, c, 3, 1, *out_hw)


class BasicBlock(_Stage):
    """``basic``: a ResNet stage of ``depth`` BasicBlocks, with a 1x1 downsample where shapes change."""

    kind: Literal["basic"]

    def _unit_convs(self, cin: int, stride: int, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> Iterator[ConvLayer]:
        c, g = self.channels, self.groups()
        yield ConvLayer(cin, c, 3, g, *out_hw)
        yield ConvLayer(c, c, 3, g, *out_hw)
        if stride != 1 or cin != c:  # the downsample shortcut: 1x1 conv (strided) + BN
            yield ConvLayer(cin, c, 1, 1, *out_hw)


class ResNeXtBlock(BasicBlock):
    """``resnext``: a BasicBlock stage whose 3x3 convolutions are grouped by ``cardinality``."""

    kind: Literal["resnext"]  # type: ignore[assignment]
    cardinality: Annotated[int, Field(gt=0, le=1024)] = 4

    @model_validator(mode="after")
    def _divisible(self) -> "ResNeXtBlock":
        if self.channels % self.cardinality:
            raise ValueError(f"channels ({self.channels}) must be divisible by cardinality ({self.cardinality})")
        return self

    def groups(self) -> int:
        return self.cardinality

    def channel_multiple(self) -> int:
        return self.cardinality

    def label(self) -> str:
        return f"{super().label()} g{self.cardinality}"


class BottleneckBlock(_Stage):
    """``bottleneck``: a stage of 1x1-3x3-1x1 Bottlenecks (torchvision v1.5: stride on the 3x3).

    ``channels`` is the inner width; the stage outputs ``channels * expansion``.
    """

    kind: Literal["bottleneck"]
    expansion: Annotated[int, Field(gt=0, le=64)] = 4

    @property
    def out_channels(self) -> int:
        return self.channels * self.expansion

    def _unit_convs(self, cin: int, stride: int, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> Iterator[ConvLayer]:
        w, out = self.channels, self.out_channels
        yield ConvLayer(cin, w, 1, 1, *in_hw)  # v1.5: the first 1x1 runs at the input's resolution
        yield ConvLayer(w, w, 3, 1, *out_hw)
        yield ConvLayer(w, out, 1, 1, *out_hw)
        if stride != 1 or cin != out:
            yield ConvLayer(cin, out, 1, 1, *out_hw)


class PoolBlock(Block):
    """``pool``: average or max pooling."""

    kind: Literal["pool"]
    op: Literal["avg", "max"] = "avg"
    kernel: Kernel = 2
    stride: Stride | None = Field(default=None, description="Default: the kernel size.")
    padding: Annotated[int, Field(ge=0, le=MAX_KERNEL)] = 0

    @model_validator(mode="after")
    def _padding(self) -> "PoolBlock":
        if self.padding > self.kernel // 2:  # torch refuses this at run time
            raise ValueError(f"padding ({self.padding}) must be at most half the kernel ({self.kernel})")
        return self

    def out_shape(self, in_shape: Shape) -> Shape:
        h, w = _require_spatial(in_shape, self.kernel, self.stride or self.kernel, self.padding, "the pooling")
        return (in_shape[0], h, w)

    def op_counts(self, in_shape: Shape) -> OpCounts:
        c, h, w = self.out_shape(in_shape)
        return OpCounts(pool=c * h * w * self.kernel * self.kernel)

    def label(self) -> str:
        return f"{self.op}pool {self.kernel}/{self.stride or self.kernel}"


class SepConvBlock(Block):
    """``sepconv``: ReLU, 3x3 depthwise-separable conv (depthwise 3x3, then 1x1), BN -- RandWire's node op."""

    kind: Literal["sepconv"]
    channels: Channels
    stride: Stride = 1

    width_fields: ClassVar[tuple[str, ...]] = ("channels",)

    def _hw(self, in_shape: Shape) -> tuple[int, int]:
        return _require_spatial(in_shape, 3, self.stride, 1, "the 3x3 depthwise convolution")

    def out_shape(self, in_shape: Shape) -> Shape:
        return (self.channels, *self._hw(in_shape))

    def param_count(self, in_shape: Shape) -> int:
        c = in_shape[0]
        return conv_params(c, c, 3, groups=c) + conv_params(c, self.channels, 1) + bn_params(self.channels)

    def norm_params(self, in_shape: Shape) -> int:
        return bn_params(self.channels)

    def macs(self, in_shape: Shape) -> int:
        c = in_shape[0]
        h, w = self._hw(in_shape)
        return (conv_params(c, c, 3, groups=c) + conv_params(c, self.channels, 1)) * h * w

    def op_counts(self, in_shape: Shape) -> OpCounts:
        h, w = self._hw(in_shape)
        return OpCounts(bn=self.channels * h * w)

    def label(self) -> str:
        stride = f"/{self.stride}" if self.stride != 1 else ""
        return f"sepconv 3x3{stride}"


class IdentityBlock(Block):
    """``identity``: passes its input through; with a list ``input``, a pure merge node (RandWire's output node)."""

    kind: Literal["identity"]

    def label(self) -> str:
        return "identity"


class ClassifierBlock(Block):
    """``classifier``: global average pooling, optional dropout, and a linear layer."""

    kind: Literal["classifier"]
    classes: Annotated[int, Field(gt=0, le=1 << 20)]
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0

    accepts_edges: ClassVar[bool] = False
    emits_edges: ClassVar[bool] = False
    terminal: ClassVar[bool] = True

    def out_shape(self, in_shape: Shape) -> Shape:
        return (self.classes, 1, 1)

    def param_count(self, in_shape: Shape) -> int:
        return in_shape[0] * self.classes + self.classes

    def macs(self, in_shape: Shape) -> int:
        return in_shape[0] * self.classes  # the bias add is not a multiply-accumulate

    def op_counts(self, in_shape: Shape) -> OpCounts:
        c, h, w = in_shape  # global average pooling reads every input element once
        return OpCounts(pool=c * h * w)

    def label(self) -> str:
        return f"avgpool + fc {self.classes}"


class ConvLayerBlock(_ConvGeometry, Block):
    """``convlayer``: one convolution (optional bias), optional norm (batch or group), optional ReLU,
    optional 3x3/2 max-pool -- the layers of CORnet-Z and CORnet-RT, in that order.

    Unlike ``conv`` (always conv-BN-ReLU), each stage is a choice, so a layer can be a bias conv
    followed by ReLU and max-pool (CORnet-Z), a conv + GroupNorm(32) + ReLU (CORnet-RT), or a bare
    1x1 channel change (``norm: none, activation: none``).
    """

    kind: Literal["convlayer"]
    channels: Channels
    kernel: Kernel = 3
    stride: Stride = 1
    padding: Annotated[int, Field(ge=0, le=MAX_KERNEL)] | None = Field(
        default=None, description="Zero padding (default: kernel // 2)."
    )
    bias: bool = Field(default=False, description="Give the convolution a bias.")
    norm: Literal["batch", "group", "none"] = Field(default="batch", description="BatchNorm2d, GroupNorm or none.")
    norm_groups: Annotated[int, Field(gt=0, le=MAX_CHANNELS)] = Field(
        default=32, description="Groups of a norm: group (GroupNorm(norm_groups, channels))."
    )
    activation: Literal["relu", "none"] = "relu"
    maxpool: bool = Field(default=False, description="End with MaxPool2d(3, stride=2, padding=1).")

    width_fields: ClassVar[tuple[str, ...]] = ("channels",)

    @model_validator(mode="after")
    def _groups_divide(self) -> "ConvLayerBlock":
        if self.norm == "group" and self.channels % self.norm_groups:
            raise ValueError(f"channels ({self.channels}) must be divisible by norm_groups ({self.norm_groups})")
        return self

    def channel_multiple(self) -> int:
        return self.norm_groups if self.norm == "group" else 1

    def param_count(self, in_shape: Shape) -> int:
        norm = bn_params(self.channels) if self.norm != "none" else 0  # GroupNorm's affine: 2C as well
        return conv_params(in_shape[0], self.channels, self.kernel, bias=self.bias) + norm

    def norm_params(self, in_shape: Shape) -> int:
        return bn_params(self.channels) if self.norm != "none" else 0

    def macs(self, in_shape: Shape) -> int:
        h, w = self._conv_hw(in_shape)
        return conv_params(in_shape[0], self.channels, self.kernel) * h * w  # a bias add is no MAC

    def op_counts(self, in_shape: Shape) -> OpCounts:
        h, w = self._conv_hw(in_shape)
        _, ph, pw = self.out_shape(in_shape)
        bn = self.channels * h * w if self.norm != "none" else 0
        return OpCounts(bn=bn, pool=self.channels * ph * pw * 9 if self.maxpool else 0)

    def label(self) -> str:
        parts = [f"conv {self.kernel}x{self.kernel}/{self.stride}" + (" +b" if self.bias else "")]
        parts += {"batch": ["BN"], "group": [f"GN{self.norm_groups}"], "none": []}[self.norm]
        parts += ["ReLU"] if self.activation == "relu" else []
        parts += ["maxpool"] if self.maxpool else []
        return " + ".join(parts)


class CORnetSBlock(Block):
    """``cornet_s``: one CORnet-S area (Kubilius et al. 2019), all its ``steps`` in one call.

    ``x = conv_input(inp)`` (1x1, no norm); step 0: ``skip = BN(conv1x1/2(x))``, body strided;
    step t > 0: ``skip = x``, body at stride 1; body ``conv1`` 1x1 to ``scale * channels``,
    ``conv2`` 3x3, ``conv3`` 1x1 back, each with its own BatchNorm per step; ``x = relu(body + skip)``.
    The convolutions are shared across steps, the norms are not.  The block owns its steps
    (``owns_steps``) because they differ: step 0 reads the area's input, downsamples and projects
    its shortcut; later steps read only the area's own last output (docs/spec.md, Feedback and time).
    """

    kind: Literal["cornet_s"]
    channels: Channels
    scale: Annotated[int, Field(gt=0, le=64)] = Field(default=4, description="Width of the body: scale * channels.")

    width_fields: ClassVar[tuple[str, ...]] = ("channels",)
    owns_steps: ClassVar[bool] = True

    @property
    def wide(self) -> int:
        return self.channels * self.scale

    def out_shape(self, in_shape: Shape) -> Shape:
        h, w = _require_spatial(in_shape, 3, 2, 1, "the strided 3x3 convolution")
        return (self.channels, h, w)

    def _layers(self, in_shape: Shape) -> Iterator[ConvLayer]:
        """Every convolution call of one forward, each with its output size (BN after all but conv_input)."""
        cin, h, w = in_shape
        c, wide = self.channels, self.wide
        _, oh, ow = self.out_shape(in_shape)
        yield ConvLayer(cin, c, 1, 1, h, w)  # conv_input
        yield ConvLayer(c, c, 1, 1, oh, ow)  # skip, step 0
        for t in range(self.step_count):
            yield ConvLayer(c, wide, 1, 1, h if t == 0 else oh, w if t == 0 else ow)
            yield ConvLayer(wide, wide, 3, 1, oh, ow)
            yield ConvLayer(wide, c, 1, 1, oh, ow)

    def param_count(self, in_shape: Shape) -> int:
        c, wide = self.channels, self.wide
        convs = conv_params(in_shape[0], c, 1) + conv_params(c, c, 1) + conv_params(c, wide, 1)
        convs += conv_params(wide, wide, 3) + conv_params(wide, c, 1)
        norms = bn_params(c) + self.step_count * (2 * bn_params(wide) + bn_params(c))
        return convs + norms

    def macs(self, in_shape: Shape) -> int:
        return sum(conv_params(l.cin, l.cout, l.kernel) * l.h * l.w for l in self._layers(in_shape))

    def op_counts(self, in_shape: Shape) -> OpCounts:
        layers = list(self._layers(in_shape))
        _, oh, ow = self.out_shape(in_shape)
        return OpCounts(bn=sum(l.cout * l.h * l.w for l in layers[1:]), add=self.step_count * self.channels * oh * ow)

    def label(self) -> str:
        return f"CORnet-S area x{self.step_count} steps"


def kind_tag(cls: type[Block]) -> str:
    """The ``kind`` literal of a block class."""
    annotation = cls.model_fields["kind"].annotation
    args = get_args(annotation)
    if get_origin(annotation) is not Literal or len(args) != 1 or not isinstance(args[0], str):
        raise TypeError(f"{cls.__name__}.kind must be annotated as Literal['<name>'], got {annotation!r}")
    return args[0]


class KindRegistry:
    """Block kinds by name.  Registering a name twice is an error unless ``replace=True``.

    Examples
    --------
    >>> "basic" in KINDS
    True
    >>> KINDS.get("basc")
    Traceback (most recent call last):
    ...
    hrgraph.errors.SpecError: unknown block kind 'basc' (did you mean 'basic'?); known kinds: ...
    """

    def __init__(self) -> None:
        self._kinds: dict[str, type[Block]] = {}

    def register(self, cls: type[Block], *, replace: bool = False) -> type[Block]:
        if not (isinstance(cls, type) and issubclass(cls, Block)):
            raise TypeError(f"a block kind must subclass hrgraph.Block, got {cls!r}")
        tag = kind_tag(cls)
        if tag in self._kinds and self._kinds[tag] is not cls and not replace:
            raise ValueError(f"block kind '{tag}' is already registered (pass replace=True to override it)")
        self._kinds[tag] = cls
        return cls

    def get(self, kind: Any) -> type[Block]:
        try:
            return self._kinds[kind]
        except (KeyError, TypeError):
            known = ", ".join(sorted(self._kinds))
            raise SpecError(
                f"unknown block kind '{kind}'{did_you_mean(str(kind), self._kinds)}; known kinds: {known}"
            ) from None

    def __contains__(self, kind: object) -> bool:
        return isinstance(kind, str) and kind in self._kinds  # a spec may give any YAML value

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._kinds))

    def classes(self) -> list[type[Block]]:
        return [self._kinds[k] for k in sorted(self._kinds)]


KINDS = KindRegistry()
for _cls in (
    ConvBlock,
    PlainBlock,
    BasicBlock,
    ResNeXtBlock,
    BottleneckBlock,
    PoolBlock,
    SepConvBlock,
    IdentityBlock,
    ClassifierBlock,
    ConvLayerBlock,
    CORnetSBlock,
):
    KINDS.register(_cls)
