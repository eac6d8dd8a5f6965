"""Named data sets: where each one lives, how to fetch it, and its splits before conversion.

One reader per name turns the files found by :mod:`hrgraph.train.formats` into a
:class:`Source` (class names and the train / val / test parts as published);
:func:`hrgraph.train.data.load_data` then holds out, subsets and converts them.
A missing data set is a :class:`~hrgraph.errors.DataError` that names the
folders looked in, the layout expected and how to get it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hrgraph.errors import DataError, did_you_mean
from hrgraph.train import formats

__all__ = ["DEBIAN_FASHION_MNIST", "MEMORY_VARIABLE", "Part", "Source", "check_memory", "default_root", "format_bytes",
           "memory_limit", "read_source", "synthetic_count"]

#: Where Debian's ``dataset-fashion-mnist`` package installs the idx files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@dataclass
class Part:
    """A split before conversion: all of a file's ``images`` (uint8 N,C,H,W) or image ``paths``,
    their ``labels``, and the positions ``index`` selected from them (no copy until conversion)."""

    labels: torch.Tensor
    images: torch.Tensor | None = None
    paths: list[Path] | None = None
    index: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.index is None:
            self.index = torch.arange(len(self.labels))

    def __len__(self) -> int:
        return len(self.index)

    def take(self, positions: torch.Tensor) -> Part:
        return Part(self.labels, self.images, self.paths, self.index[positions])


@dataclass
class Source:
    """A data set as published: class names, its parts, what its test part is, and what was read."""

    classes: list[str]
    train: Part
    val: Part | None
    test: Part | None
    test_split: str
    notes: list[str]


def default_root(name: str) -> Path:
    """``$HRGRAPH_DATA/<name>``, or ``~/.cache/hrgraph/data/<name>`` when the variable is unset."""
    base = os.environ.get("HRGRAPH_DATA") or Path.home() / ".cache" / "hrgraph" / "data"
    return Path(base).expanduser() / name


def _missing(name: str, looked: list[Path], layout: str, how: str) -> DataError:
    places = ", ".join(str(p) for p in dict.fromkeys(looked))
    return DataError(f"{name}: no data found; looked in {places}; expected {layout}; to get it: {how}")


def _download(name: str, fetch, target: Path, by_hand: str) -> None:
    try:
        fetch()
    except Exception as err:  # urllib, OSError, RuntimeError from torchvision's mirrors: all mean "no data"
        reason = " ".join(f"{type(err).__name__}: {err}".split())  # torchvision's message spans lines
        raise DataError(f"{name}: downloading into {target} failed ({reason}); without internet, {by_hand}") from err


_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_IDX = {
    # name: (torchvision class, class names as torchvision gives them, where to get the files)
    "mnist": ("MNIST", [f"{i} - {w}" for i, w in enumerate(_DIGITS)], "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    "fashion-mnist": ("FashionMNIST",
                      ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                       "Ankle boot"],
                      "https://github.com/zalandoresearch/fashion-mnist"),
}


def _find_idx(dirs: list[Path]) -> list[Path] | None:
    for d in dirs:
        found = []
        for stem in _IDX_FILES:
            # Also the dotted names of some mirrors (train-images.idx3-ubyte).
            names = [stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"]
            found.append(next((d / n for n in names if (d / n).is_file()), None))
        if all(found):
            return found
    return None


def _read_idx_set(name: str, arg: str, root: Path | None, download: bool) -> Source:
    tv_name, classes, url = _IDX[name]
    base = root or default_root(name)
    dirs = [base, base / tv_name / "raw", base / "raw"]
    if root is None and name == "fashion-mnist":
        dirs.append(DEBIAN_FASHION_MNIST)
    files = _find_idx(dirs)
    if files is None and download:
        import torchvision

        _download(name, lambda: getattr(torchvision.datasets, tv_name)(str(base), download=True), base,
                  f"put the four files from {url} in {base}")
        files = _find_idx(dirs)
    if files is None:
        how = f"run with --download, or put the four files from {url} in {base}"
        if name == "fashion-mnist":
            how += f", or `apt-get install dataset-fashion-mnist` (installs them in {DEBIAN_FASHION_MNIST})"
        raise _missing(name, dirs, "the idx files " + ", ".join(_IDX_FILES) + " (each optionally .gz)", how)
    arrays = [formats.read_idx(f) for f in files]
    for images, labels, f in ((arrays[0], arrays[1], files[0]), (arrays[2], arrays[3], files[2])):
        if images.ndim != 3 or images.dtype != np.uint8 or len(images) != len(labels):
            raise DataError(f"{f}: expected uint8 images (N, H, W) and as many labels, got {images.shape}")
    train = Part(torch.from_numpy(arrays[1].astype(np.int64)), torch.from_numpy(arrays[0].copy())[:, None])
    test = Part(torch.from_numpy(arrays[3].astype(np.int64)), torch.from_numpy(arrays[2].copy())[:, None])
    note = f"{name}: {len(train):,} training and {len(test):,} test images (1x{arrays[0].shape[1]}x" \
           f"{arrays[0].shape[2]}) from {files[0].parent}"
    return Source(classes, train, None, test, "test", [note])


_CIFAR = {
    # name: (folder, torchvision class, train files, test file, meta file, meta key, label key, url)
    "cifar10": ("cifar-10-batches-py", "CIFAR10", [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
                "batches.meta", "label_names", "labels", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    "cifar100": ("cifar-100-python", "CIFAR100", ["train"], "test", "meta", "fine_label_names", "fine_labels",
                 "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
}


def _read_cifar_set(name: str, arg: str, root: Path | None, download: bool) -> Source:
    folder, tv_name, train_files, test_file, meta, meta_key, label_key, url = _CIFAR[name]
    base = root or default_root(name)
    dirs = [base / folder, base]
    needed = [*train_files, test_file, meta]

    def find():
        return next((d for d in dirs if all((d / f).is_file() for f in needed)), None)

    found = find()
    if found is None and download:
        import torchvision

        _download(name, lambda: getattr(torchvision.datasets, tv_name)(str(base), download=True), base,
                  f"unpack {url} in {base}")
        found = find()
    if found is None:
        raise _missing(name, dirs, f"the python version's files {', '.join(needed)} in {base / folder}",
                       f"run with --download, or unpack {url} in {base}")
    classes = formats.read_cifar_meta(found / meta, meta_key)
    parts = []
    for files in (train_files, [test_file]):
        images, labels = formats.read_cifar([found / f for f in files], label_key)
        parts.append(Part(torch.from_numpy(labels), torch.from_numpy(images)))
    note = f"{name}: {len(parts[0]):,} training and {len(parts[1]):,} test images (3x32x32) from {found}"
    return Source(classes, parts[0], None, parts[1], "test", [note])


_TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


def _read_tiny_imagenet(name: str, arg: str, root: Path | None, download: bool) -> Source:
    base = root or default_root(name)
    dirs = [base / "tiny-imagenet-200", base]

    def find():
        return next((d for d in dirs if (d / "wnids.txt").is_file() and (d / "train").is_dir()
                     and (d / "val" / "val_annotations.txt").is_file()), None)

    found = find()
    if found is None and download:
        from torchvision.datasets.utils import download_and_extract_archive

        md5 = "90528d7ca1a48142e341f4ef8d21d0de"
        _download(name, lambda: download_and_extract_archive(_TINY_URL, str(base), md5=md5), base,
                  f"unzip {_TINY_URL} in {base}")
        found = find()
    if found is None:
        raise _missing(name, dirs, "tiny-imagenet-200/ with wnids.txt, words.txt, train/<wnid>/images/*.JPEG, "
                       "val/images/*.JPEG and val/val_annotations.txt",
                       f"run with --download, or unzip {_TINY_URL} in {base}")
    wnids, names, train_files, train_labels, val_files, val_labels = formats.scan_tiny_imagenet(found)
    train = Part(torch.tensor(train_labels, dtype=torch.int64), paths=train_files)
    test = Part(torch.tensor(val_labels, dtype=torch.int64), paths=val_files)
    notes = [f"{name}: {len(train):,} training and {len(test):,} val images of {len(wnids)} classes from {found}",
             ("test split: the official val set (Tiny-ImageNet's test labels are not public); "
              "model selection uses a hold-out of train")]
    return Source(names, train, None, test, "val", notes)


def _read_image_folder(name: str, arg: str, root: Path | None, download: bool) -> Source:
    base = Path(arg).expanduser() if arg else root
    if base is None:
        raise DataError("imagefolder needs a folder: write `imagefolder:DIR` (or give a data directory)")
    if not (base / "train").is_dir():
        raise _missing(name, [base / "train"],
                       "train/<class>/<image> and optional val/, test/ alike (torchvision ImageFolder)",
                       "write `imagefolder:DIR` with DIR holding train/ (no download for folders)")
    seen: dict = {}  # one file in two splits would leak training images into val or test
    classes, files, labels = formats.scan_image_folder(base / "train", seen=seen)
    parts = {"train": Part(torch.tensor(labels, dtype=torch.int64), paths=files)}
    for split in ("val", "test"):
        if (base / split).is_dir():
            _, files, labels = formats.scan_image_folder(base / split, classes, seen=seen)
            parts[split] = Part(torch.tensor(labels, dtype=torch.int64), paths=files)
    notes = [f"{name}: " + ", ".join(f"{len(p):,} {s}" for s, p in parts.items()) + f" images from {base}"]
    if "test" in parts:
        return Source(classes, parts["train"], parts.get("val"), parts["test"], "test", notes)
    if "val" in parts:
        notes.append("test split: val/ (there is no test/); model selection uses a hold-out of train")
        return Source(classes, parts["train"], None, parts["val"], "val", notes)
    notes.append("no test split (the folder has no test/ or val/)")
    return Source(classes, parts["train"], None, None, "none", notes)


#: Synthetic images by default; a test split of a quarter as many (at least one per class) comes on top.
SYNTHETIC_DEFAULT = 2000


def synthetic_count(name: str, arg: str) -> int:
    """The number of training images of ``synthetic`` / ``synthetic:N``.

    Examples
    --------
    >>> synthetic_count("synthetic", ""), synthetic_count("synthetic:300", "300")
    (2000, 300)
    >>> synthetic_count("synthetic:0", "0")
    Traceback (most recent call last):
    ...
    hrgraph.errors.DataError: synthetic:0: the number of images must be a positive whole number, not '0'
    """
    if not arg:
        return SYNTHETIC_DEFAULT
    if not (arg.isascii() and arg.isdigit() and int(arg) > 0):
        raise DataError(f"{name}: the number of images must be a positive whole number, not '{arg}'")
    return int(arg)


def _synthetic(name: str, arg: str, shape, num_classes: int | None) -> Source:
    n_train = synthetic_count(name, arg)
    k = num_classes or 10
    c, h, w = shape
    n_test = max(k, n_train // 4)
    # Labels (int64) and images (uint8), checked before anything is allocated.
    check_memory(name, (n_train + n_test) * (8 + c * h * w),
                 f"{n_train:,} training and {n_test:,} test images of {c}x{h}x{w}")
    # A fixed seed: the same images in every run, like a real data set.
    gen = torch.Generator().manual_seed(0)
    means = F.interpolate(torch.rand(k, c, 4, 4, generator=gen) * 160 + 48, size=(h, w), mode="bilinear",
                          align_corners=False)
    parts = []
    for n in (n_train, n_test):
        labels = torch.randint(0, k, (n,), generator=gen)
        images = torch.empty((n, c, h, w), dtype=torch.uint8)
        step = max(1, 2**22 // (c * h * w))  # images per chunk: bounds the float temporaries
        for start in range(0, n, step):
            y = labels[start : start + step]
            noise = torch.randn((len(y), c, h, w), generator=gen) * 32
            images[start : start + len(y)] = (means[y] + noise).round_().clamp_(0, 255).to(torch.uint8)
        parts.append(Part(labels, images))
    note = f"{name}: {n_train:,} training and {len(parts[1]):,} test random images ({c}x{h}x{w}, {k} classes)"
    return Source([f"class_{i}" for i in range(k)], parts[0], None, parts[1], "test", [note])


# ----------------------------------------------------------------------------- memory

#: The environment variable that sets how many bytes of data may be held in memory (``16G``, ``500M``, bytes).
MEMORY_VARIABLE = "HRGRAPH_DATA_MEMORY"
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on every platform
        return None


def memory_limit() -> tuple[int, str]:
    """How many bytes of data may be held in memory, and where that number comes from.

    ``$HRGRAPH_DATA_MEMORY`` when set (``16G``, ``500M``, ``2T`` or bytes), else
    half of the machine's physical memory (16 GiB where that cannot be read):
    the other half is left to the model, its activations and the system.

    Raises
    ------
    DataError
        The variable is set to something else than a size.
    """
    text = os.environ.get(MEMORY_VARIABLE, "").strip()
    if text:
        number, unit = text.rstrip("KMGTkmgtBb"), text[len(text.rstrip("KMGTkmgtBb")):].upper().rstrip("B")
        try:
            value = float(number) * _UNITS[unit]
        except (ValueError, KeyError):
            value = -1.0
        if not (value > 0 and value != float("inf")):
            raise DataError(f"{MEMORY_VARIABLE}={text!r} is not a size: write bytes or a number with K, M, G or T")
        return int(value), f"${MEMORY_VARIABLE}"
    physical = _physical_memory()
    if physical is None:
        return 16 * 2**30, f"a default of 16 GiB (set ${MEMORY_VARIABLE} to change it)"
    return physical // 2, f"half of this machine's memory (set ${MEMORY_VARIABLE} to change it)"


def format_bytes(n: float) -> str:
    """``n`` bytes in the largest binary unit that keeps a number >= 1.

    Examples
    --------
    >>> format_bytes(1536), format_bytes(3 * 2**40)
    ('1.5 KiB', '3.0 TiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_memory(name: str, nbytes: int, what: str) -> None:
    """Refuse, before allocating, to hold ``nbytes`` of data (``what``, of data set ``name``) over :func:`memory_limit`.

    Raises
    ------
    DataError
        ``nbytes`` is over the limit.

    Examples
    --------
    >>> check_memory("synthetic:10", 10 * 3 * 32 * 32, "10 images")
    >>> check_memory("synthetic:10**11", 10**11 * 3 * 32 * 32, "10**11 images")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hrgraph.errors.DataError: synthetic:10**11: 10**11 images would take 279.4 TiB in memory, over the limit of ...
    """
    limit, source = memory_limit()
    if nbytes > limit:
        raise DataError(f"{name}: {what} would take {format_bytes(nbytes)} in memory, over the limit of "
                        f"{format_bytes(limit)} ({source})")


_READERS = {"cifar10": _read_cifar_set, "cifar100": _read_cifar_set, "tiny-imagenet": _read_tiny_imagenet,
            "mnist": _read_idx_set, "fashion-mnist": _read_idx_set, "imagefolder": _read_image_folder}


def read_source(name: str, root: Path | None, download: bool, shape, num_classes: int | None) -> Source:
    """The :class:`Source` of data set ``name`` (``kind`` or ``kind:arg``), from ``root`` or its default places."""
    kind, _, arg = name.partition(":")
    if kind == "synthetic":
        return _synthetic(name, arg, shape, num_classes)
    if kind not in _READERS:
        known = [*_READERS, "synthetic"]
        raise DataError(f"unknown data set '{name}'{did_you_mean(kind, known)}; known: {', '.join(known)}, "
                        "imagefolder:DIR")
    return _READERS[kind](kind, arg, root, download)
