"""The exceptions hrgraph raises.

Every error that a user can cause derives from :class:`HrgraphError` and carries
where it happened: the spec file, the line and column, and the node or edge at
fault.  ``str(err)`` reads like a compiler message::

    specs/net.yaml:14:7: edge stem->stage9: unknown node 'stage9' (did you mean 'stage4'?)

This module imports nothing else of ours, so any module may raise these.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "HrgraphError",
    "SpecError",
    "GraphError",
    "CycleError",
    "UnknownNodeError",
    "ShapeError",
    "CompileError",
    "RenderError",
    "OutputError",
    "DataError",
    "RecipeError",
    "GridError",
    "TrainingError",
    "TrainingInterrupted",
    "ExportError",
    "did_you_mean",
]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest candidate, or ``""``.

    Examples
    --------
    >>> did_you_mean("stage9", ["stem", "stage1", "stage4"])
    " (did you mean 'stage4'?)"
    >>> did_you_mean("zzz", ["stem"])
    ''
    """
    close = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class HrgraphError(Exception):
    """Base class of every error caused by a spec or by how hrgraph was called.

    Parameters
    ----------
    message : str
        What is wrong, without the location prefix.
    path : str, optional
        The spec file, or ``None`` for a spec given as a dict or string.
    line, column : int, optional
        1-based position in ``path``.
    node : str, optional
        The node id at fault.
    edge : str, optional
        The edge at fault, as ``"from->to"``.

    Examples
    --------
    >>> err = HrgraphError("bad", path="net.yaml", line=3, column=5, node="stem")
    >>> str(err)
    'net.yaml:3:5: node stem: bad'
    """

    #: What ``location`` calls a document given as text, not as a file.
    _unnamed = "<spec>"

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
        node: str | None = None,
        edge: str | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.column = column
        self.node = node
        self.edge = edge
        #: Further errors found in the same pass, and how many more were not reported.
        self.others: list[HrgraphError] = []
        self.omitted = 0
        super().__init__(str(self))

    @property
    def location(self) -> str:
        """``path:line:column`` as far as it is known, or ``""``."""
        parts = [self.path or (self._unnamed if self.line is not None else "")]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(p for p in parts if p)

    def __str__(self) -> str:
        prefix = []
        if self.location:
            prefix.append(self.location)
        if self.edge is not None:
            prefix.append(f"edge {self.edge}")
        elif self.node is not None:
            prefix.append(f"node {self.node}")
        return ": ".join(prefix + [self.message])

    def __reduce__(self):  # keyword-only arguments need help to pickle
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))


def _rebuild(cls, message, state):
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class SpecError(HrgraphError):
    """The spec is not valid YAML or does not match the spec schema."""


class GraphError(HrgraphError):
    """The spec's nodes and edges do not form a valid network graph."""


class CycleError(GraphError):
    """The graph has a cycle; ``cycle`` lists its node ids in order."""

    def __init__(self, message: str, *, cycle: list[str] | None = None, **kwargs) -> None:
        self.cycle = list(cycle or [])
        super().__init__(message, **kwargs)


class UnknownNodeError(GraphError):
    """An edge or input names a node that the spec does not define."""


class ShapeError(HrgraphError):
    """Tensor shapes do not fit: an edge needs upsampling, a ratio is not an integer, ..."""


class CompileError(HrgraphError):
    """A module could not be built from a valid spec (for example a user block failed)."""


class RenderError(HrgraphError):
    """A diagram could not be rendered (for example Graphviz's ``dot`` is missing)."""


class OutputError(HrgraphError):
    """An output file or folder could not be written (missing folder, no space left, ...)."""


class RecipeError(HrgraphError):
    """A training recipe is not valid YAML, does not match the recipe schema, or an override is wrong."""

    _unnamed = "<recipe>"


class GridError(HrgraphError):
    """An experiment grid file is not valid YAML, does not match the grid schema, or names a model it lacks."""


class TrainingError(HrgraphError):
    """A run cannot start or continue: a run folder in the way, a changed spec on resume, a bad checkpoint."""


class TrainingInterrupted(TrainingError):
    """SIGINT or SIGTERM stopped a run after it saved a resumable checkpoint (``resume`` says how to go on)."""

    def __init__(self, message: str, *, resume: str = "", signal: int | None = None, **kwargs) -> None:
        self.resume = resume
        self.signal = signal  # the signal number that stopped the run: the CLI exits 128 + it
        super().__init__(message, **kwargs)


class DivergedError(TrainingError):
    """The training loss (or the weights) became NaN or infinite; the run keeps its last finite checkpoint.

    ``epoch`` and ``step`` (1-based) locate the first non-finite loss.
    """

    def __init__(self, message: str, *, epoch: int = 0, step: int = 0, **kwargs) -> None:
        self.epoch = epoch
        self.step = step
        super().__init__(message, **kwargs)


class RunLockedError(TrainingError):
    """Another process holds the run folder's lock (it is training that run now)."""


class DataError(HrgraphError):
    """A data set is missing, unreadable, or does not fit the spec (classes, image size)."""


class ExportError(HrgraphError):
    """A model could not be exported (unknown format, missing exporter, a construct the exporter cannot capture)."""
