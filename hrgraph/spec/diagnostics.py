"""Pydantic validation errors as short messages, shared by specs and recipes.

pydantic reports each failure as a dict with a ``loc`` tuple, a ``type`` and a
``msg``.  :func:`hrgraph.spec.source.locate` turns the ``loc`` into a file, line and
column; this module turns the rest into the text after it, the same way for
every YAML document hrgraph reads: an unknown key offers a did-you-mean, a
missing key is named, and our own validators' messages lose pydantic's
``"Value error, "`` prefix.  No torch here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, PrivateAttr, ValidationError

from ..errors import HrgraphError, did_you_mean
from .source import Mark, locate

__all__ = ["MAX_ERRORS", "TYPE_ERRORS", "fields_of", "first_error", "pydantic_message", "strict_message", "written"]

#: At most this many errors are reported for one document (the raised error and
#: its ``others``); ``omitted`` counts the rest (one bad list can give 20,000).
MAX_ERRORS = 20

#: What a field of each pydantic error type expects, in the spec's words
#: (never pydantic's class names: "instance of Edge" means nothing in a YAML file).
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping (key: value pairs)",
    "model_type": "a mapping (key: value pairs)",
    "model_attributes_type": "a mapping (key: value pairs)",
}
#: The error types :func:`strict_message` words.
TYPE_ERRORS = frozenset(_EXPECTED)
_YAML11_BOOLS = {"yes", "no", "on", "off", "y", "n"}


def written(value: Any) -> str:
    """What a document wrote, as a YAML reader would name it.

    Examples
    --------
    >>> written(True), written("16"), written(8.0)
    ('true (a boolean)', "the string '16'", 'the number 8.0')
    """
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if value is None:
        return "null"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return f"a {type(value).__name__}"


def strict_message(kind: str, value: Any) -> str:
    """``expected an integer, got the string '16'``, with a hint for YAML 1.1 habits.

    Examples
    --------
    >>> strict_message("bool_type", "off")
    "expected true or false, got the string 'off' (YAML 1.1 reads yes/no/on/off as booleans; specs are read as YAML 1.2, where only true and false are)"
    >>> strict_message("int_type", "010")
    "expected an integer, got the string '010' (a leading zero means octal in YAML 1.1 (010 is 8) and is refused here: write 8 or 10)"
    """
    message = f"expected {_EXPECTED[kind]}, got {written(value)}"
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _YAML11_BOOLS:
            message += (
                " (YAML 1.1 reads yes/no/on/off as booleans; specs are read as YAML 1.2, where only true and false are)"
            )
        elif re.fullmatch(r"[-+]?0[0-7]+", text):
            octal = int(text.lstrip("+-")[1:], 8) * (-1 if text.startswith("-") else 1)
            message += (
                f" (a leading zero means octal in YAML 1.1 ({text} is {octal}) and is refused here: "
                f"write {octal} or {int(text)})"
            )
        elif re.fullmatch(r"[-+]?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?", text):
            message += " (a quoted number is a string: remove the quotes)"
        elif re.fullmatch(r"[-+]?[0-9][0-9_:]*|[-+]?0[xXob][0-9a-fA-F_]+", text):
            message += " (YAML 1.1 number forms such as 1_000, 1:30 and 0x10 are strings in YAML 1.2: write plain decimal)"
    elif isinstance(value, (int, float)) and _EXPECTED[kind] == "true or false":
        message += " (write true or false)"
    return message


def fields_of(model: type[BaseModel]) -> list[str]:
    """The keys a model accepts (aliases where a field has one).

    Examples
    --------
    >>> from hrgraph.spec import InputShape
    >>> fields_of(InputShape)
    ['channels', 'height', 'width']
    """
    return [f.alias or name for name, f in model.model_fields.items()]


def pydantic_message(err: dict[str, Any], allowed: Callable[[tuple[Any, ...]], Sequence[str] | None]) -> str:
    """The message for one pydantic error, without its location.

    Parameters
    ----------
    err : dict
        One item of ``ValidationError.errors()``.
    allowed : callable
        Given the ``loc`` of a mapping, the keys it accepts (for did-you-mean),
        or ``None`` where they are not known.

    Examples
    --------
    >>> err = {"type": "extra_forbidden", "loc": ("input", "hieght"), "msg": "Extra inputs are not permitted"}
    >>> pydantic_message(err, lambda loc: ["channels", "height", "width"])
    "unknown key 'hieght' (did you mean 'height'?)"
    """
    loc = tuple(err["loc"])
    if err["type"] == "missing" and loc:
        return f"missing required key '{loc[-1]}'"
    if err["type"] == "value_error" and "error" in err.get("ctx", {}):
        return str(err["ctx"]["error"])  # our own validators' text, without pydantic's "Value error, "
    if err["type"] == "extra_forbidden" and loc:
        keys = allowed(loc[:-1])
        return f"unknown key '{loc[-1]}'{did_you_mean(str(loc[-1]), keys) if keys else ''}"
    return err["msg"]


def first_error(exc: ValidationError, convert: Callable[[dict[str, Any]], HrgraphError]) -> HrgraphError:
    """The error to raise for ``exc``, with the rest of its errors in ``.others``.

    A misspelt key is both unknown and missing; its did-you-mean is the more
    useful message, so unknown keys come first.
    """
    details = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    # Locate and report the first few only; count the rest.
    errors = [convert(e) for e in details[:MAX_ERRORS]]
    first = errors[0]
    first.others = errors[1:]
    first.omitted = len(details) - len(errors)
    return first


class Located(BaseModel):
    """A model that remembers the file it was loaded from and where each of its keys stood.

    Specs and recipes both carry this, so their errors raised after loading
    (graph checks, a conflict found later) can still name ``file:line:col``.
    The loader sets ``_path`` and ``_data`` (the position-keeping data of
    :mod:`hrgraph.spec.source`).
    """

    _path: str | None = PrivateAttr(default=None)
    _data: Any = PrivateAttr(default=None)

    @property
    def path(self) -> str | None:
        """The file this was loaded from, if any."""
        return self._path

    def locate(self, *loc: Any) -> Mark | None:
        """Source position of ``loc`` (e.g. ``("edges", 3, "to")``), or of the closest enclosing key."""
        if self._data is None:
            return None
        return locate(self._data, loc)[0]
