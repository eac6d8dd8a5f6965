"""The spec language: pydantic models of a network spec, and loading it from YAML.

A spec is a list of nodes (blocks, each with a stable id and a kind) forming
the main path, plus long-range ``edges`` (hierarchical residuals).  Loading
keeps the file, line and column of every key, so that each validation error
names its place::

    specs/net.yaml:14:7: node stage2: channels: Input should be greater than 0

``extends: parent.yaml`` derives a spec from another; :mod:`hrgraph.spec.extends`
resolves it and ``docs/spec.md`` gives the override rules.  No torch here.

Why one module past 500 lines: the spec's models (input, edges, time, the spec) and
the checks that span them (references, extends, patterns, imports) validate one document
together; the block kinds and their arithmetic are already apart (kinds, arith).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Mapping, Sequence
from functools import cached_property, partial
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializationInfo,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from .diagnostics import TYPE_ERRORS, Located, fields_of, first_error, pydantic_message, strict_message, written
from ..errors import SpecError, did_you_mean
from .extends import located_error, parse_edge_ref, resolve_extends
from .kinds import ID_PATTERN, KINDS, MAX_CHANNELS, MAX_DELAY, MAX_STEPS, Block, NodeId, Shape
from .patterns import expand_edges, expand_patterns
from .source import LDict, LList, importable_from, locate, parse_yaml, read_yaml

__all__ = ["Edge", "InputShape", "Residuals", "Spec", "Time", "load_spec", "parse_edge_ref"]

FORMAT_VERSION = 1


class _Frozen(BaseModel):
    # strict: as for blocks (hrgraph.spec.kinds.Block), values are never coerced.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class InputShape(_Frozen):
    """The shape of one input sample."""

    channels: Annotated[int, Field(gt=0, le=MAX_CHANNELS)]
    height: Annotated[int, Field(gt=0, le=1 << 15)]
    width: Annotated[int, Field(gt=0, le=1 << 15)]

    @property
    def shape(self) -> Shape:
        return (self.channels, self.height, self.width)


class Residuals(_Frozen):
    """Where long-range edges enter their target and what follows the sum.

    The default is the HiResNet paper's Eq. 2 as written,
    ``y_i = F_i(y_{i-1}) + sum_j P_{j->i}(y_j)``: the projections are added to
    the block's output (after its final ReLU) and nothing follows.
    ``entry: pre_activation`` adds them before the block's final ReLU instead,
    as a ResNet adds its own shortcut; ``activation: relu`` applies a ReLU after
    an ``output`` sum.
    """

    entry: Literal["output", "pre_activation"] = "output"
    activation: Literal["none", "relu"] = "none"

    @model_validator(mode="after")
    def _consistent(self) -> Residuals:
        if self.entry == "pre_activation" and self.activation != "none":
            raise ValueError("activation applies to 'output' entry only; pre_activation already ends in the block's ReLU")
        return self


class Time(_Frozen):
    """How a spec with feedback or recurrence is unrolled in time (docs/spec.md, Feedback and time).

    ``steps``: how many steps the network runs.  ``scheme``: ``biological`` (every
    node updates once per step, reading delayed edges from earlier steps: CORnet-RT)
    or ``sequential`` (each node runs its ``steps`` to completion before the next
    starts: CORnet-S).  ``idle``: what a node none of whose inputs has a value yet
    does at a step: ``silent`` (nothing; it passes zero on) or ``zeros`` (its block
    runs on a zero input, as official CORnet-RT's areas do at step 0).  ``readout``:
    the network's output is the last node's value at the last step, the mean over
    the steps, or every step's (``all``: a ``(batch, steps, ...)`` tensor).
    """

    steps: Annotated[int, Field(gt=0, le=MAX_STEPS)] = 1
    scheme: Literal["biological", "sequential"] = "biological"
    idle: Literal["silent", "zeros"] = "silent"
    readout: Literal["last", "mean", "all"] = "last"
    step_norm: Literal["shared", "per_step"] | None = Field(
        default=None,
        description="Normalisation layers shared by all steps (default) or one copy per step a node runs "
        "(per_step, as CORnet-S keeps one BatchNorm per step); a node's step_norm overrides it.",
    )

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: Any) -> dict[str, Any]:
        # step_norm came after the first time specs: left out when unset, they keep their fingerprints.
        data = handler(self)
        if self.step_norm is None:
            data.pop("step_norm", None)
        return data


class Edge(_Frozen):
    """A long-range edge ``from -> to``: the source's output, projected, merged into the target's.

    ``projection``: ``auto`` inserts average pooling where the spatial sizes
    differ and a 1x1 conv + BN where the shapes differ (identity otherwise);
    ``identity`` demands matching shapes; ``conv`` always inserts the 1x1 conv + BN.
    ``merge``: ``sum`` adds to the target's output; ``concat`` appends the
    projected source as extra channels (DenseNet-style), widening the target.
    ``pool``: ``avg`` (kernel = stride = the integer ratio), ``max``, or
    ``adaptive`` (adaptive average pooling, which allows non-integer ratios).
    ``gate``: ``scalar`` or ``sigmoid`` multiply the projected source by a
    learnable weight that starts at 1, so a gated network starts as the ungated one
    (``gate_init`` starts it elsewhere, e.g. at an imported connectome's normalised weight).
    ``weight``: metadata, such as a connectome's synapse count; it changes nothing
    in the network unless used (``hrgraph import --weights gate`` turns it into ``gate_init``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)

    from_: NodeId = Field(alias="from", description="Source node id, or `input` (the network input).")
    to: NodeId = Field(description="Target node id.")
    projection: Literal["auto", "identity", "conv"] = "auto"
    merge: Literal["sum", "concat"] = "sum"
    pool: Literal["avg", "max", "adaptive"] = "avg"
    channels: Annotated[int, Field(gt=0, le=MAX_CHANNELS)] | None = Field(
        default=None, description="Output channels of a concat edge's 1x1 conv (default: the source's)."
    )
    gate: Literal["none", "scalar", "sigmoid"] = Field(
        default="none",
        description="A learnable weight on the projected source: 'scalar' (w, from 1) or 'sigmoid' "
        "(2*sigmoid(w), from 1); 'none' adds it as is.",
    )
    delay: Annotated[int, Field(ge=0, le=MAX_DELAY)] = Field(
        default=0, description="Carry the source's output of step t - delay into step t (needs a time section)."
    )
    upsample: Literal["nearest", "bilinear"] = Field(
        default="nearest", description="How a coarser source is upsampled onto a finer target (integer factors)."
    )
    weight: Annotated[float, Field(allow_inf_nan=False)] | None = Field(
        default=None,
        description="Metadata, e.g. a connectome's synapse count; changes nothing unless used (drawn, or made a gate_init).",
    )
    gate_init: Annotated[float, Field(allow_inf_nan=False)] = Field(
        default=1.0,
        description="The gate's value at initialisation (scalar: w; sigmoid: 2*sigmoid(w), so in (0, 2)); needs a gate.",
    )

    @model_serializer(mode="wrap")
    def _drop_new_defaults(self, handler: Any) -> dict[str, Any]:
        # Fields added with time (issue 17) are left out at their defaults, so that
        # every older spec keeps its serialised form, hence its fingerprint.
        data = handler(self)
        if self.delay == 0:
            data.pop("delay", None)
        if self.upsample == "nearest":
            data.pop("upsample", None)
        if self.weight is None:
            data.pop("weight", None)
        if self.gate_init == 1.0:
            data.pop("gate_init", None)
        return data

    @model_validator(mode="after")
    def _channels_only_for_concat_conv(self) -> Edge:
        if self.channels is not None and not (self.merge == "concat" and self.projection == "conv"):
            raise ValueError("channels applies only to edges with merge: concat and projection: conv")
        if self.gate_init != 1.0 and self.gate == "none":
            raise ValueError("gate_init applies to a gated edge (gate: scalar or sigmoid)")
        if self.gate == "sigmoid" and not 0.0 < self.gate_init < 2.0:
            raise ValueError("a sigmoid gate (2*sigmoid(w)) starts strictly between 0 and 2")
        return self

    @property
    def key(self) -> tuple[str, str]:
        return (self.from_, self.to)

    @property
    def name(self) -> str:
        """``"from->to"``, as error messages and diagrams show it."""
        return f"{self.from_}->{self.to}"

    @property
    def module_name(self) -> str:
        """The edge's key in ``model.projections`` (and its state_dict prefix)."""
        return f"{self.from_}__{self.to}"


def _validate_node(value: Any) -> Block:
    # Dispatch on "kind" through the registry, so that kinds registered at run
    # time (hrgraph.register_block) validate like the built-in ones and an
    # unknown kind gives one precise error instead of one per union member.
    if isinstance(value, Block):
        return value
    if not isinstance(value, Mapping):
        raise PydanticCustomError("node_type", "each node must be a mapping with an id and a kind")
    if "kind" not in value:
        raise ValidationError.from_exception_data(
            "Node", [InitErrorDetails(type="missing", loc=("kind",), input=value)]
        )
    kind = value["kind"]
    if kind not in KINDS:
        known = ", ".join(KINDS)
        message = f"unknown block kind '{kind}'{did_you_mean(str(kind), KINDS)}; known kinds: {known}"
        raise ValidationError.from_exception_data(
            "Node",
            [InitErrorDetails(type=PydanticCustomError("unknown_kind", message), loc=("kind",), input=kind)],
        )
    return KINDS.get(kind).model_validate(value)


def _dump_node(node: Block, info: SerializationInfo) -> dict[str, Any]:
    # Serialise with the node's own class (the field is typed as the base Block).
    data = node.model_dump(
        mode=info.mode, by_alias=info.by_alias, exclude_defaults=info.exclude_defaults, exclude_none=info.exclude_none
    )
    # Fields added with time (issue 17) are left out when unset: older specs keep their fingerprints.
    for key in ("steps", "idle", "step_norm"):
        if data.get(key, 0) is None:
            del data[key]
    return data


Node = Annotated[Block, PlainValidator(_validate_node), PlainSerializer(_dump_node)]


class Spec(_Frozen, Located):
    """A resolved network spec: input shape, nodes (the main path) and long-range edges.

    Build one with :func:`load_spec`.  Specs are immutable; derive new ones with
    :meth:`replace` or the ablation and matching functions.
    """

    version: Literal[1] = Field(default=FORMAT_VERSION, description="Spec format version.")
    name: str = ""
    description: str = ""
    input: InputShape
    residuals: Residuals = Residuals()
    zero_init_residual: bool = Field(
        default=False, description="Zero-init the last BN of each residual unit (and of each projection)."
    )
    imports: list[str] = Field(
        default_factory=list,
        description="Python modules to import (they register block kinds); honoured only when the caller allows it.",
    )
    time: Time | None = Field(
        default=None, description="Unroll the network in time (feedback and recurrence; docs/spec.md, Feedback and time)."
    )
    nodes: list[Node] = Field(min_length=1)
    edges: list[Edge] = Field(default_factory=list)

    @field_validator("version", mode="before")
    @classmethod
    def _version_not_bool(cls, value: Any) -> Any:
        # Literal[1] accepts True (True == 1), even in strict mode.
        if isinstance(value, bool):
            raise PydanticCustomError("int_type", "Input should be a valid integer")
        return value

    # -- lookups -------------------------------------------------------------

    @cached_property
    def node_index(self) -> dict[str, int]:
        """Position of each node id in ``nodes`` (the first, if ids repeat)."""
        index: dict[str, int] = {}
        for i, node in enumerate(self.nodes):
            index.setdefault(node.id, i)
        return index

    def node(self, node_id: str) -> Block:
        return self.nodes[self.node_index[node_id]]

    @property
    def node_ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    def main_input(self, position: int) -> str | None:
        """Id of the node feeding ``nodes[position]`` (``None``: the network input).

        For a node with a list ``input``, the first listed node: the one whose
        channels a ``sum``, ``mean`` or ``weighted`` merge keeps.
        """
        return self.node_inputs(position)[0]

    def node_inputs(self, position: int) -> tuple[str | None, ...]:
        """Ids of every node feeding ``nodes[position]``, in order (``(None,)``: the network input).

        Examples
        --------
        >>> spec = load_spec("specs/resnet18.yaml")
        >>> spec.node_inputs(0), spec.node_inputs(2)
        ((None,), ('stage1',))
        """
        listed = self.nodes[position].inputs
        if listed:
            return listed
        return (self.nodes[position - 1].id if position > 0 else None,)

    # -- serialisation -------------------------------------------------------

    def to_dict(self, *, minimal: bool = True) -> dict[str, Any]:
        """The spec as plain data; ``minimal`` leaves out fields at their defaults."""
        data = self.model_dump(mode="json", by_alias=True, exclude_defaults=minimal)
        data.pop("version", None)
        if data.get("time", 0) is None:  # absent: a spec without time keeps its fingerprint
            del data["time"]
        return {"version": self.version, **data}

    def to_yaml(self) -> str:
        """The resolved spec as YAML (no ``extends``), loadable by :func:`load_spec`."""
        # libyaml's emitter when present: 4x faster than PyYAML's on a 20,000-edge spec, same text for specs.
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        return yaml.dump(self.to_dict(), Dumper=dumper, sort_keys=False, default_flow_style=None, width=100)

    @cached_property
    def fingerprint(self) -> str:
        """A hash of the resolved spec (all fields, defaults included)."""
        canonical = json.dumps(self.to_dict(minimal=False), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        # Content only: where a spec was loaded from (its path and source
        # positions, private attributes) does not make it a different network.
        if not isinstance(other, Spec):
            return NotImplemented
        return self.to_dict(minimal=False) == other.to_dict(minimal=False)

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def replace(self, **changes: Any) -> Spec:
        """A new validated spec with some top-level fields changed.

        Examples
        --------
        >>> spec = load_spec("specs/resnet18.yaml")
        >>> len(spec.replace(edges=[]).edges)
        0
        """
        data = self.model_dump(by_alias=True, exclude={"nodes", "edges"})
        data["nodes"] = changes.pop("nodes", list(self.nodes))
        data["edges"] = changes.pop("edges", list(self.edges))
        data.update(changes)
        return _validate(data, None, None)


# -- errors ------------------------------------------------------------------

_TOP_LEVEL_ONLY_IN_FILES = ("extends", "remove_edges")


def _model_at(data: Any, loc: Sequence[Any]) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``loc`` (for did-you-mean)."""
    if not loc:
        return Spec
    head, rest = loc[0], loc[1:]
    if head == "input" and not rest:
        return InputShape
    if head == "residuals" and not rest:
        return Residuals
    if head == "time" and not rest:
        return Time
    if head == "edges" and len(rest) == 1:
        return Edge
    if head == "nodes" and rest:
        item = data.get("nodes")[rest[0]] if isinstance(data, Mapping) else None
        if isinstance(item, Mapping) and item.get("kind") in KINDS:
            return KINDS.get(item["kind"])
    return None


def _allowed_keys(data: Any, loc: Sequence[Any]) -> list[str] | None:
    model = _model_at(data, loc)
    if model is None:
        return None
    return fields_of(model) + (list(_TOP_LEVEL_ONLY_IN_FILES) if model is Spec else [])


def _error_from_pydantic(data: Any, path: str | None, err: dict[str, Any]) -> SpecError:
    loc = tuple(err["loc"])
    mark, used = locate(data, loc) if data is not None else (None, 0)
    resolved = loc[:used] if data is not None else loc
    node = edge = None
    rel: tuple[Any, ...] = resolved
    if len(loc) >= 2 and loc[0] in ("nodes", "edges") and isinstance(loc[1], int):
        item = None
        try:
            item = data[loc[0]][loc[1]]
        except (TypeError, KeyError, IndexError):
            pass
        if isinstance(item, Mapping):
            if loc[0] == "nodes" and isinstance(item.get("id"), str):
                node = item["id"]
            if loc[0] == "edges" and isinstance(item.get("from"), str) and isinstance(item.get("to"), str):
                edge = f"{item['from']}->{item['to']}"
        if node or edge:
            rel = tuple(k for k in loc[2:] if not (data is not None and k not in _keys_on_path(data, loc)))
    msg = pydantic_message(err, lambda parent: _allowed_keys(data if data is not None else {}, parent))
    if err["type"] in TYPE_ERRORS:
        msg = strict_message(err["type"], err.get("input"))
    elif err["type"] == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == ID_PATTERN:
        msg = f"expected an id (a letter, then letters, digits and '_'), got {written(err.get('input'))}"
    if err["type"] == "extra_forbidden":
        rel = rel[:-1]
    where = ".".join(str(k) for k in rel)
    message = f"{where}: {msg}" if where else msg
    return SpecError(
        message,
        path=mark.path if mark else path,
        line=mark.line if mark else None,
        column=mark.column if mark else None,
        node=node,
        edge=edge,
    )


def _keys_on_path(data: Any, loc: Sequence[Any]) -> set[Any]:
    """The loc elements that really exist in ``data`` (not union tags)."""
    found, current = set(), data
    for key in loc:
        if isinstance(current, Mapping) and key in current or isinstance(current, list) and isinstance(key, int) and 0 <= key < len(current):
            found.add(key)
            current = current[key]
    return found


def _validate(data: Any, path: str | None, raw: Any) -> Spec:
    if not isinstance(data, Mapping):
        mark = getattr(data, "mark", None)
        raise SpecError(
            "a spec must be a mapping with 'input' and 'nodes'",
            path=path,
            line=mark.line if mark else None,
            column=mark.column if mark else None,
        )
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise first_error(exc, lambda e: _error_from_pydantic(raw, path, e)) from None
    spec._path = path
    spec._data = raw
    return spec


# -- loading -------------------------------------------------------------------


def _run_imports(data: Any, path: str | None, allow_imports: bool, directory: Path | None = None) -> None:
    if not isinstance(data, Mapping) or not data.get("imports"):
        return
    modules = data["imports"]
    mark = data.marks.get("imports") if isinstance(data, LDict) else None
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise located_error("imports must be a list of module names", mark, path)
    if not allow_imports:
        raise located_error(
            f"this spec imports Python code ({', '.join(modules)}); run it only if you trust it, "
            "with --allow-imports (CLI) or allow_imports=True (API)",
            mark,
            path,
        )
    with importable_from(directory):  # a module beside the spec, without PYTHONPATH
        for i, module in enumerate(modules):
            try:
                importlib.import_module(module)
            except Exception as err:  # any failure of user code is a spec problem here
                item_mark = modules.marks[i] if isinstance(modules, LList) else mark
                raise located_error(f"cannot import '{module}': {type(err).__name__}: {err}", item_mark, path) from err


def _looks_like_path(text: str) -> bool:
    # One line without a colon cannot be a spec (a spec is a mapping), so it is
    # a path, even a missing one ("x.YAML", "specs/nets") that should say so.
    if "\n" in text:
        return False
    return text.lower().endswith((".yaml", ".yml")) or ":" not in text or Path(text).is_file()


def load_spec(
    source: str | Path | Mapping[str, Any] | Spec,
    *,
    allow_imports: bool = False,
    base_dir: str | Path | None = None,
    allow_outside: bool = False,
) -> Spec:
    """Load and validate a spec from a file, YAML text or a dict.

    Parameters
    ----------
    source : str, Path, dict or Spec
        A path to a ``.yaml`` file, YAML text, or already parsed data.  A
        :class:`Spec` is returned as is.
    allow_imports : bool
        Import the modules a spec lists under ``imports`` (running their code,
        which may register block kinds).  Off by default: a spec alone never runs code.
    base_dir : str or Path, optional
        Where ``extends`` paths are resolved for text and dicts (default: the
        current directory; for files, the file's directory).
    allow_outside : bool
        Let ``extends`` read files outside that directory's tree (off by
        default: a spec from elsewhere must not read any file on the machine).

    Returns
    -------
    Spec

    Raises
    ------
    SpecError
        Unreadable file, invalid YAML, or data that does not match the schema;
        the error names the file, line, column and node or edge.

    Examples
    --------
    >>> spec = load_spec('''
    ... input: {channels: 3, height: 32, width: 32}
    ... nodes:
    ...   - {id: stem, kind: conv, channels: 16}
    ...   - {id: head, kind: classifier, classes: 10}
    ... ''')
    >>> [n.id for n in spec.nodes]
    ['stem', 'head']
    >>> load_spec({"input": {"channels": 3, "height": 8, "width": 8}, "nodes": []})
    Traceback (most recent call last):
    ...
    hrgraph.errors.SpecError: nodes: List should have at least 1 item after validation, not 0
    """
    if isinstance(source, Spec):
        return source
    path: str | None = None
    if isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source)):
        path = str(source)
        data = read_yaml(path)
        directory = Path(path).resolve().parent
        chain: tuple[str, ...] = (str(Path(path).resolve()),)
    elif isinstance(source, str):
        data = parse_yaml(source, None)
        directory = Path(base_dir) if base_dir is not None else Path.cwd()
        chain = ()
    elif isinstance(source, Mapping):
        data = _to_located(source)
        directory = Path(base_dir) if base_dir is not None else Path.cwd()
        chain = ()
    else:
        raise TypeError(f"load_spec takes a path, YAML text or a mapping, not {type(source).__name__}")
    keys = fields_of(Edge)
    expand = partial(expand_edges, edge_keys=keys)
    data = resolve_extends(data, path, directory, chain, allow_outside=allow_outside, expand=expand)
    _run_imports(data, path, allow_imports, directory)
    # Edge patterns become plain edges here, after imports (which may register kinds that take no edges).
    data = expand_patterns(data, edge_keys=keys)
    return _validate(data, path, data)


def _to_located(value: Any) -> Any:
    """Wrap plain data as LDict/LList without marks, so extends and errors work alike."""
    if isinstance(value, Mapping):
        out = LDict({str(k): _to_located(v) for k, v in value.items()})
        return out
    if isinstance(value, (list, tuple)):
        return LList([_to_located(v) for v in value])
    return value
