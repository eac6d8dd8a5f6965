"""Pydantic validation errors as short messages, shared by specs and recipes.

pydantic reports each failure as a dict with a ``loc`` tuple, a ``type`` and a
``msg``.  :func:`hrgraph.source.locate` turns the ``loc`` into a file, line and
column; this module turns the rest into the text after it, the same way for
every YAML document hrgraph reads: an unknown key offers a did-you-mean, a
missing key is named, and our own validators' messages lose pydantic's
``"Value error, "`` prefix.  No torch here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import HrgraphError, did_you_mean

__all__ = ["fields_of", "pydantic_message", "first_error"]


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
    errors = [convert(e) for e in details]
    first = errors[0]
    first.others = errors[1:]
    return first
