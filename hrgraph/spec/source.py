"""Safe YAML loading that remembers where every key and item came from.

``yaml.safe_load`` throws positions away; error messages need them.  We compose
the YAML node tree with PyYAML's safe loader and build plain Python data from
it ourselves, as :class:`LDict` and :class:`LList` (a dict and a list that carry
the :class:`Mark` of each key or item).  Nothing here constructs arbitrary
Python objects or imports code: only YAML's core scalar types are produced.

A loss-free position tree lets :func:`locate` map a pydantic error ``loc`` such
as ``("nodes", 2, "basic", "channels")`` back to a file, line and column, falling
back to the closest enclosing key that exists (the approach Dagster takes).
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from ..errors import SpecError

__all__ = ["Mark", "LDict", "LList", "parse_yaml", "read_yaml", "check_loadable", "locate", "strip", "importable_from"]

#: At most this many YAML nodes in one document: stops alias bombs
#: ("billion laughs") and self-referencing documents before they eat memory.
MAX_YAML_NODES = 200_000
#: At most this many bytes in a spec file (or characters in spec text): a
#: 1,000-node spec with 20,000 edges takes well under 1 MiB.
MAX_SPEC_BYTES = 2 * 1024 * 1024
#: At most this many levels of nesting (a spec needs four): stops aliases that
#: contain themselves, and deep nesting, before Python's recursion limit does.
MAX_YAML_DEPTH = 64


class Mark(NamedTuple):
    """A 1-based position in a file (``path`` is ``None`` for text or dicts)."""

    path: str | None
    line: int
    column: int


class LDict(dict):
    """A dict that knows the :class:`Mark` of each key (``marks``) and of itself (``mark``)."""

    __slots__ = ("marks", "mark")

    def __init__(self, *args, mark: Mark | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.marks: dict[str, Mark] = {}
        self.mark = mark


class LList(list):
    """A list that knows the :class:`Mark` of each item (``marks``) and of itself (``mark``)."""

    __slots__ = ("marks", "mark")

    def __init__(self, *args, mark: Mark | None = None) -> None:
        super().__init__(*args)
        self.marks: list[Mark | None] = [None] * len(self)
        self.mark = mark


_CORE = "tag:yaml.org,2002:"
#: Tags a spec may use.  Timestamps and binary are built, then refused with a
#: hint to quote them; anything else (!!python/..., !!set, !!omap) is refused outright.
_TAGS = {
    yaml.MappingNode: {_CORE + "map"},
    yaml.SequenceNode: {_CORE + "seq"},
    yaml.ScalarNode: {_CORE + t for t in ("str", "int", "float", "bool", "null", "timestamp", "binary")},
}


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading plain scalars as YAML 1.2's core schema does.

    PyYAML implements YAML 1.1, where ``yes``/``no``/``on``/``off``/``y``/``n``
    are booleans, ``010`` is octal (8), ``1_000`` and ``1:30`` are integers,
    and ``1e3`` is a string.  A spec means what it says: only ``true``/``false``
    are booleans, integers are decimal without a leading zero, floats are
    decimal with a point or an exponent; anything else stays a string, which
    validation then refuses where a number or a boolean is expected (naming
    the YAML 1.1 trap).  Composing also counts nodes (see :data:`MAX_YAML_NODES`),
    so that a huge document is refused before it is built, not after.
    """

    yaml_implicit_resolvers: dict = {}
    node_budget = MAX_YAML_NODES

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        self.node_budget -= 1
        if self.node_budget < 0:
            mark = self.peek_event().start_mark
            raise _TooLarge(mark)
        return super().compose_node(parent, index)


class _TooLarge(Exception):
    def __init__(self, mark: Any) -> None:
        super().__init__("too many YAML nodes")
        self.mark = mark


for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^[-+]?(?:0|[1-9][0-9]*)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+|\.[0-9]+[eE][-+]?[0-9]+)"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("merge", r"^(?:<<)$", "<"),
    # Dates resolve as in YAML 1.1 only to be refused with a hint to quote them.
    (
        "timestamp",
        r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
        |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
        (?:[Tt]|[ \t]+)[0-9][0-9]?
        :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
        (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""",
        "0123456789",
    ),
):
    _SpecLoader.add_implicit_resolver(_CORE + _tag, re.compile(_pattern, re.X), list(_first))


def _mark(node: yaml.Node, path: str | None) -> Mark:
    return Mark(path, node.start_mark.line + 1, node.start_mark.column + 1)


def _yaml_error(err: yaml.YAMLError, path: str | None) -> SpecError:
    context_mark = getattr(err, "context_mark", None)
    problem_mark = getattr(err, "problem_mark", None) or context_mark
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    message = f"invalid YAML: {context + ', ' if context else ''}{problem}"
    if context_mark is not None and problem_mark is not None and context_mark.line != problem_mark.line:
        # An unclosed bracket is reported where parsing gave up; say where it opened.
        message += f" (opened at line {context_mark.line + 1})"
    if problem_mark is None:
        return SpecError(message, path=path)
    return SpecError(message, path=path, line=problem_mark.line + 1, column=problem_mark.column + 1)


def _too_large(path: str | None, mark: Mark) -> SpecError:
    return SpecError(
        f"the document has more than {MAX_YAML_NODES:,} YAML nodes (aliases expanded); a spec this large is refused",
        path=path,
        line=mark.line,
        column=mark.column,
    )


def parse_yaml(text: str, path: str | None = None) -> Any:
    """Parse one YAML document into :class:`LDict`/:class:`LList`/scalars.

    Parameters
    ----------
    text : str
        The YAML source.
    path : str, optional
        The file it came from, for positions and error messages.

    Returns
    -------
    object
        The document; mapping keys are always strings (the key's literal text).

    Raises
    ------
    SpecError
        Invalid YAML, several documents, a document that is a single scalar,
        duplicate keys, non-scalar keys, tags outside YAML's core schema, or a
        document too large or too deeply nested to be a spec.

    Examples
    --------
    >>> data = parse_yaml("a: 1\\nb: [x, y]\\n", "net.yaml")
    >>> data["b"], data.marks["b"].line
    (['x', 'y'], 2)
    """
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(
            f"the spec is larger than {MAX_SPEC_BYTES // 1024 // 1024} MiB ({len(text):,} characters); "
            "a spec this large is refused",
            path=path,
        )
    try:
        loader = _SpecLoader(text)  # refuses non-printable characters up front
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        column = err.position - (text.rfind("\n", 0, err.position) + 1) + 1
        raise SpecError(f"invalid YAML: {err.reason} (#x{err.character:04x})", path=path, line=line, column=column) from None
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as err:
        raise _yaml_error(err, path) from err
    except _TooLarge as err:
        raise _too_large(path, Mark(path, err.mark.line + 1, err.mark.column + 1)) from None
    except RecursionError:
        # PyYAML composes nested collections recursively; say where it gave up.
        mark = loader.get_mark()
        raise SpecError(
            f"invalid YAML: nested more than {MAX_YAML_DEPTH} levels deep",
            path=path,
            line=mark.line + 1,
            column=mark.column + 1,
        ) from None
    finally:
        loader.dispose()
    if root is None:
        raise SpecError("the spec is empty", path=path, line=1, column=1)
    if isinstance(root, yaml.ScalarNode):
        # A lone scalar has no LDict/LList to carry its position, so refuse it here.
        mark = _mark(root, path)
        # The value is not echoed: it may be the first line of any file.
        raise SpecError(
            "a spec must be a mapping with 'input' and 'nodes', not a single value",
            path=path,
            line=mark.line,
            column=mark.column,
        )
    budget = [MAX_YAML_NODES]
    return _construct(loader, root, path, budget, 0, {})


def _construct(
    loader: yaml.SafeLoader, node: yaml.Node, path: str | None, budget: list[int], depth: int, merged: dict[int, int]
) -> Any:
    # ``merged`` maps id(mapping node) -> how many of its leading pairs came from
    # merge keys: flatten_mapping rewrites the node in place, and an aliased
    # node is visited again after that.
    if depth > MAX_YAML_DEPTH:
        mark = _mark(node, path)
        raise SpecError(
            f"invalid YAML: nested more than {MAX_YAML_DEPTH} levels deep (or an alias contains itself)",
            path=path,
            line=mark.line,
            column=mark.column,
        )
    budget[0] -= 1
    if budget[0] < 0:
        raise _too_large(path, _mark(node, path))
    if node.tag not in _TAGS[type(node)]:
        # Checked here, not left to the constructor: on a mapping or a list an
        # explicit tag would otherwise be dropped silently.
        mark = _mark(node, path)
        tag = node.tag.replace(_CORE, "!!")
        raise SpecError(
            f"unsupported YAML tag {tag}; a spec holds only plain mappings, lists, strings, numbers, booleans and nulls",
            path=path,
            line=mark.line,
            column=mark.column,
        )
    if isinstance(node, yaml.MappingNode):
        if id(node) not in merged:
            own = sum(1 for k, _ in node.value if k.tag != _CORE + "merge")
            try:
                loader.flatten_mapping(node)  # expands YAML merge keys (<<), merged pairs first
            except yaml.YAMLError as err:
                raise _yaml_error(err, path) from err
            merged[id(node)] = len(node.value) - own
        out = LDict(mark=_mark(node, path))
        explicit: set[str] = set()
        for i, (key_node, value_node) in enumerate(node.value):
            kmark = _mark(key_node, path)
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError("mapping keys must be plain words", path=path, line=kmark.line, column=kmark.column)
            key = str(key_node.value)
            if i >= merged[id(node)]:
                # A key written in this mapping overrides a merged one (YAML
                # merge semantics); written twice, it is an error.
                if key in explicit:
                    first = out.marks[key]
                    raise SpecError(
                        f"duplicate key '{key}' (first given at line {first.line})",
                        path=path,
                        line=kmark.line,
                        column=kmark.column,
                    )
                explicit.add(key)
            out[key] = _construct(loader, value_node, path, budget, depth + 1, merged)
            out.marks[key] = kmark
        return out
    if isinstance(node, yaml.SequenceNode):
        items = [_construct(loader, item, path, budget, depth + 1, merged) for item in node.value]
        out = LList(items, mark=_mark(node, path))
        out.marks = [_mark(item, path) for item in node.value]
        return out
    try:
        value = loader.construct_object(node, deep=True)
    except yaml.YAMLError as err:
        raise _yaml_error(err, path) from err
    if not isinstance(value, (str, int, float, bool, type(None))):
        mark = _mark(node, path)
        raise SpecError(
            f"unsupported YAML value {node.value!r} (tag {node.tag}); use a string, number, boolean or null",
            path=path,
            line=mark.line,
            column=mark.column,
        )
    return value


def _yaml_nodes(value: Any) -> int:
    """The YAML nodes of plain data as a dump writes it: each mapping, key, sequence and scalar is one."""
    count, stack = 0, [value]
    while stack:  # no recursion: the data may be as deep as a caller made it
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            count += len(item)  # the keys
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return count


def check_loadable(text: str, data: Any) -> None:
    """Refuse spec text that :func:`read_yaml` would refuse for its size, before it is written.

    A generated or imported spec over a limit makes a file that no command can
    load.  ``text`` is the whole file (its bytes count against
    :data:`MAX_SPEC_BYTES`); ``data`` is what it is the dump of (its YAML
    nodes, aliases expanded, count against :data:`MAX_YAML_NODES`).

    Raises
    ------
    SpecError
        Naming the limit, the size and by how much it is over.

    Examples
    --------
    >>> check_loadable("nodes: [a, b]\\n", {"nodes": ["a", "b"]})
    >>> check_loadable("...", {"nodes": list(range(MAX_YAML_NODES))})
    Traceback (most recent call last):
    ...
    hrgraph.errors.SpecError: the spec would have 200,003 YAML nodes, more than the 200,000 a spec file may have (by 3), so no command could load it
    """
    size = len(text.encode("utf-8"))
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            f"the spec would be {size:,} bytes, more than the {MAX_SPEC_BYTES:,} ({MAX_SPEC_BYTES // 1024 // 1024} MiB) "
            f"a spec file may have (by {size - MAX_SPEC_BYTES:,}), so no command could load it"
        )
    nodes = _yaml_nodes(data)
    if nodes > MAX_YAML_NODES:
        raise SpecError(
            f"the spec would have {nodes:,} YAML nodes, more than the {MAX_YAML_NODES:,} a spec file may have "
            f"(by {nodes - MAX_YAML_NODES:,}), so no command could load it"
        )


def read_yaml(path: str | Path) -> Any:
    """Read and parse a YAML file; see :func:`parse_yaml`.

    Only regular files are read (a FIFO would block forever and ``/dev/zero``
    never ends), and at most :data:`MAX_SPEC_BYTES`.

    Raises
    ------
    SpecError
        The file does not exist, is not a regular file, is too large, cannot be
        read or is not UTF-8 (with the line and column of the first bad byte),
        or :func:`parse_yaml` fails.

    Examples
    --------
    >>> read_yaml("/dev/null")
    Traceback (most recent call last):
    ...
    hrgraph.errors.SpecError: /dev/null: not a regular file (a character device); a spec must be a file
    """
    name = str(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the file type
        # is checked on the open descriptor, so it cannot change in between.
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_BINARY", 0))
    except FileNotFoundError as err:
        raise SpecError("no such spec file", path=name) from err
    except IsADirectoryError as err:
        raise SpecError("is a directory, not a spec file", path=name) from err
    except OSError as err:
        raise SpecError(f"cannot read: {err.strerror}", path=name) from err
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise SpecError("is a directory, not a spec file", path=name)
        if not stat.S_ISREG(mode):
            raise SpecError(f"not a regular file ({_file_type(mode)}); a spec must be a file", path=name)
        try:
            data = fh.read(MAX_SPEC_BYTES + 1)
        except OSError as err:
            raise SpecError(f"cannot read: {err.strerror}", path=name) from err
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(
            f"the file is larger than {MAX_SPEC_BYTES // 1024 // 1024} MiB; a spec this large is refused", path=name
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise SpecError(
            f"not UTF-8 text ({err.reason}: byte 0x{data[err.start]:02x})", path=name, line=line, column=column
        ) from None
    return parse_yaml(text, name)


def _file_type(mode: int) -> str:
    for test, what in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return what
    return "not a regular file"


def locate(data: Any, loc: Sequence[Any]) -> tuple[Mark | None, int]:
    """Find the position of ``loc`` in ``data``, or of the closest enclosing item.

    Elements of ``loc`` that do not exist (pydantic adds union tags such as the
    block kind) are skipped.

    Returns
    -------
    (Mark or None, int)
        The position and how many elements of ``loc`` were resolved.

    Examples
    --------
    >>> data = parse_yaml("nodes:\\n  - id: a\\n    kind: conv\\n", "n.yaml")
    >>> locate(data, ("nodes", 0, "conv", "kind"))[0]
    Mark(path='n.yaml', line=3, column=5)
    """
    mark = getattr(data, "mark", None)
    current = data
    used = 0
    for i, key in enumerate(loc):
        if isinstance(current, LDict) and isinstance(key, str) and key in current:
            mark = current.marks.get(key) or mark
            current = current[key]
            used = i + 1
        elif isinstance(current, LList) and isinstance(key, int) and 0 <= key < len(current):
            mark = current.marks[key] or mark
            current = current[key]
            used = i + 1
    return mark, used


def strip(data: Any) -> Any:
    """Return ``data`` as plain dicts and lists (for dumping or hashing)."""
    if isinstance(data, dict):
        return {k: strip(v) for k, v in data.items()}
    if isinstance(data, list):
        return [strip(v) for v in data]
    return data


@contextmanager
def importable_from(directory: Path | None) -> Iterator[None]:
    """Put ``directory`` (a spec's folder) first on ``sys.path`` while the block runs, so its ``imports`` find a module beside it.

    The ``hrgraph`` script does not put the working directory on the path, so
    without this a module beside the spec needs PYTHONPATH.  The folder is
    removed afterwards (unless it was on the path already); imported modules stay imported.
    """
    folder = None if directory is None or str(directory) in sys.path else str(directory)
    if folder is not None:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if folder is not None and folder in sys.path:
            sys.path.remove(folder)
