"""Readers of the standard on-disk data set formats, and nothing else.

Each reader takes a directory laid out exactly as the data set's publisher (or
torchvision's ``download=True``) leaves it and returns numpy ``uint8`` arrays or
lists of image files; :mod:`hrgraph.train.data` turns those into splits.  The
formats:

* **idx** (MNIST, Fashion-MNIST): big-endian header (two zero bytes, a type
  code, the number of dimensions, the dimensions), then the raw values;
  ``.gz`` or not.
* **CIFAR python batches**: pickled dicts with ``data`` (N x 3072, channel
  planes of 32x32) and ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100).
  They are read with an unpickler that builds numpy arrays and nothing else,
  so a tampered file cannot run code.
* **Tiny-ImageNet** (``tiny-imagenet-200``): ``wnids.txt``, ``words.txt``,
  ``train/<wnid>/images/*.JPEG``, ``val/images/*.JPEG`` + ``val/val_annotations.txt``.
* **ImageFolder**: ``<split>/<class>/**/<image>``, torchvision's layout.
"""

from __future__ import annotations

import gzip
import os
import pickle
import warnings
from pathlib import Path

import numpy as np

from hrgraph.errors import DataError, did_you_mean

__all__ = ["IMG_EXTENSIONS", "read_idx", "read_cifar", "read_cifar_meta", "scan_tiny_imagenet", "scan_image_folder",
           "read_image"]

# torchvision.datasets.folder.IMG_EXTENSIONS, copied so that this module needs no torchvision.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one idx file (``.gz`` or not) into a numpy array.

    Raises
    ------
    DataError
        If the file is not an idx file or is shorter than its header says.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte")
    >>> _ = open(path, "wb").write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    >>> read_idx(path)
    array([7, 2, 1], dtype=uint8)
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read idx file {path}: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an idx file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    body = raw[4 + 4 * ndim :]
    size = int(np.prod(shape)) * dtype.itemsize
    if len(body) < size:
        raise DataError(f"{path} is truncated: its header announces {shape} but it holds {len(body)} bytes of data")
    return np.frombuffer(body, dtype=dtype, count=int(np.prod(shape))).reshape(shape)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickle dicts, lists, strings and numpy arrays; refuse every other global."""

    _ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes written by Python 3 with protocol 2
    })

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only numpy arrays")
        if name == "_reconstruct":  # numpy 1 and 2 keep it in different modules
            return _reconstruct_module()._reconstruct
        return super().find_class(module, name)


def _reconstruct_module():
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return multiarray


def _load_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            # latin1: the batches were pickled by Python 2, whose str holds the raw pixel bytes.
            obj = _ArrayUnpickler(f, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as err:
        raise DataError(f"cannot read CIFAR batch {path}: {err}") from err
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR batch (a pickled dict), it holds a {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_cifar(files: list[Path], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate CIFAR python batches into ``(N, 3, 32, 32)`` uint8 images and int64 labels.

    Parameters
    ----------
    files : list of Path
        The batch files, in order (``data_batch_1`` ... ``data_batch_5``).
    label_key : str
        ``"labels"`` for CIFAR-10, ``"fine_labels"`` for CIFAR-100.
    """
    images, labels = [], []
    for path in files:
        batch = _load_pickle(path)
        if "data" not in batch or label_key not in batch:
            raise DataError(f"{path} is not a CIFAR batch: it has keys {sorted(batch)}, "
                            f"expected 'data' and '{label_key}'")
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(batch[label_key]) != len(data):
            raise DataError(f"{path}: expected data of shape (N, 3072) and N labels, got {data.shape}")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def read_cifar_meta(path: Path, key: str) -> list[str]:
    """Class names from ``batches.meta`` (key ``label_names``) or ``meta`` (``fine_label_names``)."""
    meta = _load_pickle(path)
    if key not in meta:
        raise DataError(f"{path} has no '{key}' (keys: {sorted(meta)})")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in meta[key]]


def scan_tiny_imagenet(root: Path) -> tuple[list[str], list[str], list[Path], list[int], list[Path], list[int]]:
    """List the Tiny-ImageNet tree under ``root`` (the ``tiny-imagenet-200`` folder).

    Returns
    -------
    wnids, names, train_files, train_labels, val_files, val_labels
        ``wnids`` sorted (the label of a wnid is its index, as ImageFolder would
        give); ``names`` the first synonym of each in ``words.txt`` (the wnid
        itself when ``words.txt`` is missing).
    """
    wnids = sorted(line.strip() for line in (root / "wnids.txt").read_text().splitlines() if line.strip())
    index = {w: i for i, w in enumerate(wnids)}
    words = {}
    if (root / "words.txt").is_file():
        for line in (root / "words.txt").read_text().splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid] = text.split(",")[0].strip()
    names = [words.get(w) or w for w in wnids]
    train_files, train_labels = [], []
    for wnid in wnids:
        found = sorted(p for p in (root / "train" / wnid / "images").glob("*") if p.suffix.lower() in IMG_EXTENSIONS)
        if not found:
            raise DataError(f"{root / 'train' / wnid / 'images'}: no images for class {wnid} listed in wnids.txt")
        train_files += found
        train_labels += [index[wnid]] * len(found)
    val_files, val_labels = [], []
    annotations = root / "val" / "val_annotations.txt"
    for n, line in enumerate(annotations.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise DataError(f"{annotations}:{n}: expected 'file<TAB>wnid<TAB>box', with a wnid from wnids.txt")
        val_files.append(root / "val" / "images" / fields[0])
        val_labels.append(index[fields[1]])
    return wnids, names, train_files, train_labels, val_files, val_labels


def scan_image_folder(directory: Path, classes: list[str] | None = None,
                      seen: dict[tuple[int, int], tuple[str, Path]] | None = None,
                      ) -> tuple[list[str], list[Path], list[int]]:
    """List ``directory/<class>/**/<image>`` like torchvision's ``ImageFolder``, each file once.

    Classes are the sorted sub-directory names; with ``classes`` given (those of
    the train split) a directory of another name is an error.

    Symbolic links are followed wherever they lead (a folder of links into an
    image store is a usual way to build a subset), but every directory and
    every file is taken once, by identity (``st_dev``, ``st_ino``), not by
    path: a link back to a directory being scanned (a loop) is refused, naming
    the link; a directory or file reached again under the same class is
    skipped; one reached under two classes (or, through ``seen``, in two
    splits) is refused, since its label would be ambiguous or a test image
    would also be a training image.

    Parameters
    ----------
    directory : Path
        A split folder (``D/train``).
    classes : list of str, optional
    seen : dict, optional
        File identity -> (``split/class``, path) of the files found so far;
        pass the same dict for every split of a data set.

    Raises
    ------
    DataError
        A directory loop, a broken link, or a file under two classes or splits.

    Examples
    --------
    >>> import tempfile, os
    >>> root = Path(tempfile.mkdtemp())
    >>> os.makedirs(root / "a"); os.makedirs(root / "b")
    >>> _ = (root / "a" / "1.png").write_bytes(b""); _ = (root / "b" / "2.png").write_bytes(b"")
    >>> os.symlink("../a/1.png", root / "a" / "again.png")  # the same file twice: counted once
    >>> classes, files, labels = scan_image_folder(root)
    >>> classes, [f.name for f in files], labels
    (['a', 'b'], ['1.png', '2.png'], [0, 1])
    >>> os.symlink("..", root / "a" / "up")
    >>> scan_image_folder(root)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hrgraph.errors.DataError: .../a/up: a symbolic link to ... which holds it: a directory loop; remove the link
    """
    directory = Path(directory)
    found = sorted(e.name for e in os.scandir(directory) if e.is_dir())
    if classes is None:
        classes = found
    else:
        for name in found:
            if name not in classes:
                hint = did_you_mean(name, classes)
                raise DataError(f"{directory / name}: class '{name}' is not a class of train/{hint}")
    seen = {} if seen is None else seen
    dirs: dict[tuple[int, int], str] = {}  # directory identity -> the class it was scanned under
    # The split folder and every folder above it: a link to any of them is a loop.
    real = Path(os.path.realpath(directory))
    ancestors = [_identity(p) for p in (real, *real.parents)]
    files, labels = [], []
    for label, name in enumerate(classes):
        if not (directory / name).is_dir():
            continue
        where = f"{directory.name}/{name}"
        for path in _walk(directory / name, ancestors, where, dirs, seen):
            files.append(path)
            labels.append(label)
    return classes, files, labels


def _identity(path: Path | os.DirEntry) -> tuple[int, int]:
    st = path.stat()  # follows links: the identity of what a link leads to
    return st.st_dev, st.st_ino


def _walk(top: Path, ancestors: list[tuple[int, int]], where: str, dirs: dict, seen: dict) -> list[Path]:
    """The image files under ``top``, sorted by path, each directory entered and each file taken once."""
    key = _identity(top)
    if key in ancestors:
        raise DataError(f"{top}: a symbolic link to {os.path.realpath(top)}, which holds it: a directory loop; "
                        f"remove the link")
    if key in dirs:
        if dirs[key] != where:
            raise DataError(f"{top}: this directory ({os.path.realpath(top)}) is also scanned under {dirs[key]}; "
                            f"its images cannot belong to two classes")
        return []  # reached again under the same class: its files are already counted
    dirs[key] = where
    try:
        entries = sorted(os.scandir(top), key=lambda e: e.name)
    except OSError as err:
        raise DataError(f"cannot list {top}: {err.strerror or err}") from err
    out, subdirs = [], []
    for entry in entries:
        path = Path(entry.path)
        try:
            if entry.is_dir():
                subdirs.append(path)
                continue
            if not entry.name.lower().endswith(IMG_EXTENSIONS):
                continue
            if not entry.is_file():
                if entry.is_symlink() and not path.exists():
                    raise DataError(f"{path}: a broken symbolic link (to {os.readlink(path)})")
                continue
            file_key = _identity(entry)
        except OSError as err:
            raise DataError(f"cannot read {path}: {err.strerror or err}") from err
        if file_key in seen:
            first_where, first = seen[file_key]
            if first_where != where:
                raise DataError(f"{path} is the file {first} of {first_where}: an image cannot be in both "
                                f"{first_where} and {where}")
            continue
        seen[file_key] = (where, path)
        out.append(path)
    # Like os.walk sorted by folder: a folder's files, then its sub-folders'.
    for sub in subdirs:
        out += _walk(sub, [*ancestors, key], where, dirs, seen)
    return out


def read_image(path: Path, channels: int) -> np.ndarray:
    """Decode one image file to ``(H, W, channels)`` uint8 (PIL's ``L`` or ``RGB`` conversion).

    The size an image declares is checked before it is decoded: more than
    PIL's ``Image.MAX_IMAGE_PIXELS`` (89,478,485 pixels, about 256 MiB as RGB)
    is refused, so a small file declaring 20000x20000 pixels (a decompression
    bomb) is an error, not gigabytes of memory.

    Raises
    ------
    DataError
        The file is not an image PIL can read, or declares too many pixels.
    """
    from PIL import Image, UnidentifiedImageError

    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, in our words
            with Image.open(path) as img:
                width, height = img.size
                if limit is not None and width * height > limit:
                    raise DataError(_too_large(path, width, height, limit))
                arr = np.asarray(img.convert("L" if channels == 1 else "RGB"))
    except Image.DecompressionBombError as err:  # Image.open itself refuses beyond twice the limit
        raise DataError(f"cannot read image {path}: {err} (a decompression bomb, or an image far too large "
                        f"to train on)") from err
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise DataError(f"cannot read image {path}: {err}") from err
    return arr[:, :, None] if arr.ndim == 2 else arr


def _too_large(path: Path, width: int, height: int, limit: int) -> str:
    return (f"cannot read image {path}: it declares {width}x{height} pixels, over the {limit:,} decoded at most "
            f"(a decompression bomb, or an image far too large to train on)")
