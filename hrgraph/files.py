"""Writing output files: atomically where that is possible, never by replacing what is not a plain file.

Every file hrgraph writes (specs, diagrams, checkpoints, indexes) goes through
:func:`atomic_open`.  What happens depends on what the path already is:

* nothing, or a regular file: the data is written to a temporary file beside
  the target and renamed over it only once complete, so an error or an
  interrupt leaves the old file (or none) in place.  An existing file keeps its
  permission bits (a 0600 file stays 0600).
* a symbolic link: the same, at the file the link points to; the link stays.
* a device, FIFO or socket (``/dev/null``, ``/dev/stdout``, a named pipe): the
  data is written through it, as a shell redirection would.  Renaming over it
  would replace the device node itself.
* a folder: refused.

A family of files (an ablation sweep) goes through :func:`atomic_dir`: all of
them or none.  Failures become :class:`~hrgraph.errors.OutputError` naming the
path the user gave, never a hidden temporary file; an exception raised by a
write (an interrupt, a full disk) is raised as itself even when the writer in
between (``torch.save``) turns it into a ``RuntimeError``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from .errors import OutputError

__all__ = ["atomic_open", "write_atomic", "atomic_dir", "safe_filename", "MAX_FILENAME_BYTES"]

#: The longest file name (in UTF-8 bytes) most file systems accept.
MAX_FILENAME_BYTES = 255


def _reason(err: OSError) -> str:
    text = os.strerror(err.errno) if err.errno else str(err)
    return text[:1].lower() + text[1:]


class _Recorder:
    """A file object that remembers the first exception one of its writes raised.

    ``torch.save`` writes through a C++ writer that turns whatever ``write``
    raises (``KeyboardInterrupt``, ``OSError(ENOSPC)``) into a ``RuntimeError``;
    the recorded exception lets :func:`atomic_open` raise the real cause.
    """

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.failure: BaseException | None = None

    def write(self, data: Any) -> int:
        try:
            return self._fh.write(data)
        except BaseException as err:
            if self.failure is None:
                self.failure = err
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


def _raise_cause(err: BaseException, recorder: _Recorder | None, path: Path) -> None:
    """Re-raise what really went wrong while writing ``path``: the recorded write failure, as an OutputError if an OSError."""
    cause = recorder.failure if recorder is not None and recorder.failure is not None else err
    if isinstance(cause, OSError):
        raise OutputError(f"cannot write: {_reason(cause)}", path=str(path)) from cause
    if cause is not err:
        raise cause from None
    raise err


def _writes_through(path: Path) -> bool:
    """Whether ``path`` is something to write through rather than replace: a device, FIFO, socket or fd link."""
    real = os.path.realpath(path)
    if real.startswith("/proc/"):
        return True  # /dev/stdout -> /proc/self/fd/1: the process's own descriptor, whatever it is
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as err:
        raise OutputError(f"cannot write: {_reason(err)}", path=str(path)) from err
    if stat.S_ISDIR(mode):
        raise OutputError("is a folder; give a file name", path=str(path))
    return not stat.S_ISREG(mode)


def _hidden_prefix(name: str) -> str:
    """Prefix of a temporary file beside ``name``: hidden, and short enough that a 255-byte name still fits."""
    return "." + name.encode("utf-8")[:200].decode("utf-8", "ignore") + "."


@contextmanager
def _through(path: Path) -> Iterator[BinaryIO]:
    recorder = None
    try:
        with open(path, "wb") as fh:
            recorder = _Recorder(fh)
            yield recorder  # type: ignore[misc]
    except BaseException as err:
        _raise_cause(err, recorder, path)


@contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a binary file that replaces ``path`` when the ``with`` block succeeds.

    See the module docstring for symbolic links, devices and FIFOs.

    Raises
    ------
    OutputError
        ``path`` is a folder, its folder does not exist, or writing failed (no
        space left, permission denied); the old file is left as it was.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "out.bin"
    >>> with atomic_open(target) as fh:
    ...     _ = fh.write(b"abc")
    >>> target.read_bytes()
    b'abc'
    >>> with atomic_open(target.parent / "missing" / "out.bin") as fh:
    ...     pass
    Traceback (most recent call last):
    ...
    hrgraph.errors.OutputError: ...out.bin: folder '...missing' does not exist
    """
    path = Path(path)
    if _writes_through(path):
        with _through(path) as fh:
            yield fh
        return
    # Replace the file a link points to, not the link.
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if not target.parent.is_dir():
        raise OutputError(f"folder '{target.parent}' does not exist", path=str(path))
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        # mkstemp creates the file 0600; give a new file the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        fd, tmp = tempfile.mkstemp(prefix=_hidden_prefix(target.name), dir=target.parent)
    except OSError as err:
        raise OutputError(f"cannot write into folder '{target.parent}': {_reason(err)}", path=str(path)) from err
    recorder = None
    try:
        with os.fdopen(fd, "wb") as fh:
            recorder = _Recorder(fh)
            yield recorder  # type: ignore[misc]
            fh.flush()
            os.fsync(fh.fileno())  # the data is on disk before the name points at it
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        _raise_cause(err, recorder, path)


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` (text is encoded as UTF-8) to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A fresh folder to write files into; they appear in ``path`` only when the ``with`` block succeeds.

    ``path`` is created (with its parents) if missing; files already in it that
    the block does not write are left alone.  On any error (or an interrupt) no
    file of the block reaches ``path``.

    Raises
    ------
    OutputError
        ``path`` exists and is not a folder, or one of the new files would
        replace something that is not a regular file.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "family"
    >>> with atomic_dir(out) as tmp:
    ...     write_atomic(tmp / "a.yaml", "a")
    ...     write_atomic(tmp / "b.yaml", "b")
    >>> sorted(p.name for p in out.iterdir())
    ['a.yaml', 'b.yaml']
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError("is a file, not a folder; give a folder to write the files into", path=str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_hidden_prefix(path.name), dir=path.parent))
    except OSError as err:
        raise OutputError(f"cannot create the folder: {_reason(err)}", path=str(path)) from err
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        if not path.exists():
            os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700
            os.rename(tmp, path)  # the whole family appears at once
            return
        names = sorted(p.name for p in tmp.iterdir())
        for name in names:  # check everything before moving anything
            existing = path / name
            if existing.is_symlink() or (existing.exists() and not existing.is_file()):
                raise OutputError(f"would replace '{existing}', which is not a regular file", path=str(path))
        for name in names:
            os.replace(tmp / name, path / name)
        tmp.rmdir()
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):
            raise OutputError(f"cannot write: {_reason(err)}", path=str(path)) from err
        raise


def safe_filename(name: str, suffix: str = "") -> str:
    """``name`` + ``suffix`` as one file name that stays in its folder and fits the file system.

    Path separators, control characters and a leading dot become ``_`` (so
    ``../x`` or ``/etc/x`` cannot leave the output folder and no name is
    hidden); a name too long for the file system is cut and given a short hash
    of the whole name, so different long names stay different.

    Examples
    --------
    >>> safe_filename("hiresnet18-no-stem-stage4", ".yaml")
    'hiresnet18-no-stem-stage4.yaml'
    >>> safe_filename("../escaped", ".yaml")
    '_._escaped.yaml'
    >>> len(safe_filename("x" * 1000, ".yaml").encode())
    255
    """
    cleaned = "".join("_" if ch in "/\\" or not ch.isprintable() else ch for ch in name) or "_"
    if cleaned.startswith("."):
        cleaned = "_" + cleaned[1:]
    if len((cleaned + suffix).encode("utf-8")) <= MAX_FILENAME_BYTES:
        return cleaned + suffix
    digest = "~" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
    room = MAX_FILENAME_BYTES - len((digest + suffix).encode("utf-8"))
    cut = cleaned.encode("utf-8")[:room].decode("utf-8", "ignore")
    return cut + digest + suffix

