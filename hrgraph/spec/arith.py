"""Shape and count arithmetic the block kinds share: id and size types, limits, convolution and
batch-norm parameter counts, output sizes, and the counts of work that is not multiply-accumulates.

Split from :mod:`hrgraph.spec.kinds` (which re-exports what it always exported) so that the kinds
module holds the kinds.  No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from ..errors import ShapeError

Shape = tuple[int, int, int]

#: Upper bound on any channel count.  A typo such as ``channels: 6400000000``
#: is refused while validating, long before anything would be allocated.
MAX_CHANNELS = 1 << 16
MAX_KERNEL = 63
MAX_DEPTH = 1024
#: Upper bound on a node's listed inputs (RandWire nodes have a handful; a
#: generated graph's output node may collect hundreds).
MAX_INPUTS = 1 << 14


#: Ids that cannot be node ids: the public attributes of ``torch.nn.ModuleDict``
#: (which holds the nodes by id, so ``nodes.forward`` would be its method, and
#: torch refuses such a module name).  Kept here, without importing torch, so
#: that ``validate`` refuses them; tests/test_names.py checks the list covers
#: the installed torch, and the compiler refuses any newer one with a located error.
RESERVED_IDS = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children clear compile cpu cuda double
    dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half ipu
    items keys load_state_dict modules mtia named_buffers named_children named_modules named_parameters
    parameters pop register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook
    register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory state_dict to
    to_empty train training type update values xpu zero_grad""".split()
)


#: The reserved name of the network's input (the image batch): a valid source of a long-range
#: edge and an item of a list ``input``, never a node id (docs/spec.md, "The network input").
NETWORK_INPUT = "input"


def _check_id(value: str) -> str:
    # Projection modules are named "<from>__<to>".  An id holds no "__" and
    # starts with a letter (the pattern), so the last "__" of a module name
    # always separates its two ends: different edges never share a name.
    if "__" in value:
        raise ValueError("node ids may not contain '__' (it separates the two ends of an edge's module name)")
    if value in RESERVED_IDS:
        raise ValueError(
            f"'{value}' cannot be a node id: it is an attribute of torch's nn.ModuleDict, which holds the "
            f"nodes by id (ids are state_dict keys); choose another id, e.g. '{value}_block'"
        )
    return value


#: A letter, then letters, digits and single underscores; becomes a state_dict key.
ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"

NodeId = Annotated[
    str,
    StringConstraints(pattern=ID_PATTERN, max_length=64),
    AfterValidator(_check_id),
]
Channels = Annotated[int, Field(gt=0, le=MAX_CHANNELS)]
Kernel = Annotated[int, Field(gt=0, le=MAX_KERNEL)]
Stride = Annotated[int, Field(gt=0, le=MAX_KERNEL)]
Depth = Annotated[int, Field(gt=0, le=MAX_DEPTH)]


def conv_params(cin: int, cout: int, kernel: int = 3, groups: int = 1, bias: bool = False) -> int:
    """Parameters of a 2-d convolution.

    Examples
    --------
    >>> conv_params(64, 128, kernel=1)
    8192
    """
    return kernel * kernel * (cin // groups) * cout + (cout if bias else 0)


def bn_params(channels: int) -> int:
    """Learnable parameters of a BatchNorm2d (weight and bias; running stats are buffers)."""
    return 2 * channels


def spatial(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling along one axis (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class OpCounts:
    """Work of one sample's forward that is not a multiply-accumulate, in elements.

    ``pool``: output elements of every pooling times its window area (the
    elements each window reads; for adaptive pooling the actual window sizes).
    ``bn``: output elements of every batch norm.  ``add``: elements added by
    residual sums (a block's shortcut, an edge's ``merge: sum``).

    Examples
    --------
    >>> OpCounts(pool=4, add=1) + OpCounts(bn=2, add=1)
    OpCounts(pool=4, bn=2, add=2)
    """

    pool: int = 0
    bn: int = 0
    add: int = 0

    def __add__(self, other: "OpCounts") -> "OpCounts":
        return OpCounts(self.pool + other.pool, self.bn + other.bn, self.add + other.add)


def _require_spatial(shape: Shape, kernel: int, stride: int, padding: int, what: str) -> tuple[int, int]:
    _, h, w = shape
    oh, ow = spatial(h, kernel, stride, padding), spatial(w, kernel, stride, padding)
    if oh < 1 or ow < 1:
        raise ShapeError(
            f"input {h}x{w} is too small for {what} (kernel {kernel}, stride {stride}, padding {padding})"
        )
    return oh, ow
