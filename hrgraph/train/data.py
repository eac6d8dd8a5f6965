"""Data sets by name, held in memory as uint8, batched and augmented on the training device.

:func:`load_data` reads a data set in its publisher's on-disk format (readers in
:mod:`hrgraph.train.formats`) and returns :class:`DataSplits`:

============== =========================================================================
name           layout looked for under ``root`` (default ``~/.cache/hrgraph/data/<name>``,
               or ``$HRGRAPH_DATA/<name>``)
============== =========================================================================
cifar10        ``cifar-10-batches-py/``: ``data_batch_1..5``, ``test_batch``, ``batches.meta``
cifar100       ``cifar-100-python/``: ``train``, ``test``, ``meta`` (the 100 fine labels)
tiny-imagenet  ``tiny-imagenet-200/``: ``wnids.txt``, ``words.txt``, ``train/<wnid>/images/``,
               ``val/images/`` + ``val/val_annotations.txt``
mnist          idx files ``train-images-idx3-ubyte`` ... ``t10k-labels-idx1-ubyte`` (``.gz`` or
               not), also in ``MNIST/raw/`` where torchvision downloads them
fashion-mnist  the same idx files, also in ``FashionMNIST/raw/`` and in
               ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``)
imagefolder:D  ``D/train/<class>/...`` and optional ``D/val/``, ``D/test/`` (torchvision's ImageFolder)
synthetic[:N]  N (default 2,000) seeded random training images + N/4 test images whose class
               sets a smooth mean pattern, so a network can learn it; the content is the same
               in every run (like a real data set), the seed only draws splits and order
============== =========================================================================

Splits.  A data set without its own validation split gives ``val_split`` of its
training images to ``val``, drawn with ``seed``; ``train_subset`` then draws a
seeded subset of what is left.  Tiny-ImageNet's test labels are not public, so
its official val set is reported as the test split (``test_split == "val"``) and
model selection uses a hold-out of train; an ImageFolder with ``val/`` but no
``test/`` is treated the same way, so no split both selects and reports a model.

Images are brought to the spec's ``input_shape``: 1 channel is replicated to 3,
3 are reduced to 1 by luminance (0.299 R + 0.587 G + 0.114 B, PIL's ``L``);
``fit="pad"`` zero-pads centred, ``fit="resize"`` resizes bilinearly with
antialiasing, ``fit="none"`` refuses a size that differs.  Every step taken is
one line of :attr:`DataSplits.notes`.

Memory.  A split is one ``uint8`` tensor (N, C, H, W), held once (CIFAR-10:
180 MB).  An ImageFolder is decoded into memory when all its splits take at
most :data:`MEMORY_LIMIT` bytes; a larger one stays on disk as
:class:`StreamData` and is decoded batch by batch by DataLoader workers.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hrgraph.errors import DataError, did_you_mean
from hrgraph.train import formats

__all__ = ["ArrayData", "StreamData", "DataSplits", "load_data", "iterate_batches", "num_batches", "MEMORY_LIMIT"]

#: An ImageFolder larger than this many bytes (as uint8 at the spec's input shape) streams from disk.
MEMORY_LIMIT = 4 * 2**30
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_CHUNK_VALUES = 2**22  # values converted at a time: bounds the float temporaries of resize and luminance


@dataclass
class ArrayData:
    """One split in memory: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class StreamData:
    """One split left on disk: image ``paths``, int64 ``labels``, decoded to ``shape`` with ``fit``."""

    paths: list[Path]
    labels: torch.Tensor
    shape: tuple[int, int, int]
    fit: str
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class DataSplits:
    """A data set ready to train on; see the module docstring for what each field holds."""

    name: str
    classes: list[str]
    train: ArrayData | StreamData
    val: ArrayData | StreamData | None
    test: ArrayData | StreamData | None
    test_split: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    notes: list[str]


def _generator(*key) -> torch.Generator:
    # Derived from the key alone, so no generator state ever needs saving: an epoch's order is
    # ("order", seed, epoch), a step's augmentation ("augment", seed, epoch, step).
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


# ----------------------------------------------------------------------------- batches


def num_batches(data: ArrayData | StreamData, batch_size: int, limit: int | None = None) -> int:
    """Global batches per epoch over ``data`` (at most ``limit`` images), the last one partial.

    Examples
    --------
    >>> data = ArrayData(torch.zeros(10, 1, 2, 2, dtype=torch.uint8), torch.zeros(10, dtype=torch.int64))
    >>> num_batches(data, 4), num_batches(data, 4, limit=8)
    (3, 2)
    """
    n = len(data) if limit is None else min(len(data), limit)
    return math.ceil(n / batch_size)


def iterate_batches(
    data: ArrayData | StreamData,
    batch_size: int,
    *,
    device: str | torch.device,
    shuffle: bool,
    seed: int,
    epoch: int,
    start_step: int = 0,
    augment: Sequence[str] = (),
    crop_padding: int = 4,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    rank: int = 0,
    world_size: int = 1,
    limit: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` of one epoch: float32 (B, C, H, W) normalised, int64 (B,).

    Parameters
    ----------
    data : ArrayData or StreamData
    batch_size : int
        The global batch: with ``world_size`` > 1 each rank gets a contiguous,
        disjoint slice of every global batch (slices differ by at most one image;
        a rank's slice of a final batch smaller than ``world_size`` may be empty,
        so that every rank still takes the same number of steps).
    device : str or torch.device
        Where the batch is augmented and returned.
    shuffle : bool
        Visit the images in an order drawn from ``(seed, epoch)``, else in order.
    seed, epoch : int
    start_step : int
        Skip the first global batches: resuming at step k yields exactly the
        batches a full epoch yields from step k on (order and augmentation are
        drawn from ``(seed, epoch)`` and ``(seed, epoch, step)``, no state).
    augment : list of {"random_crop", "hflip"}
        ``random_crop`` pads ``crop_padding`` zero pixels around the image and
        crops back at a random offset; ``hflip`` mirrors half the images.  The
        draws are made for the whole global batch, so one process and several
        produce the same augmented images.
    mean, std : sequence of float, or None
        Per channel, of ``x / 255``; ``None`` skips normalisation (``x / 255`` only).
    rank, world_size : int
    limit : int, optional
        Use only the first ``limit`` images of the epoch's order.

    Notes
    -----
    The last, partial batch is kept, in training too: with the paper's
    batch of 100 and 45,000 CIFAR training images it is never partial, and
    dropping it would silently skip images under ``limit``.

    Examples
    --------
    >>> data = ArrayData(torch.arange(96, dtype=torch.uint8).view(6, 1, 4, 4), torch.arange(6))
    >>> batches = list(iterate_batches(data, 4, device="cpu", shuffle=True, seed=0, epoch=0,
    ...                                augment=["random_crop", "hflip"], mean=None, std=None))
    >>> [tuple(x.shape) for x, _ in batches], sorted(torch.cat([y for _, y in batches]).tolist())
    ([(4, 1, 4, 4), (2, 1, 4, 4)], [0, 1, 2, 3, 4, 5])
    """
    unknown = [a for a in augment if a not in _AUGMENTATIONS]
    if unknown:
        raise DataError(f"unknown augmentation '{unknown[0]}'{did_you_mean(unknown[0], _AUGMENTATIONS)}")
    if not 0 <= rank < world_size:
        raise DataError(f"rank {rank} is not in 0..{world_size - 1}")
    device = torch.device(device)
    n = len(data) if limit is None else min(len(data), limit)
    order = torch.randperm(len(data), generator=_generator("order", seed, epoch)) if shuffle else torch.arange(len(data))
    steps = range(start_step, num_batches(data, batch_size, limit))
    globals_ = [order[s * batch_size : min((s + 1) * batch_size, n)] for s in steps]
    slices = [_rank_slice(len(g), rank, world_size) for g in globals_]
    norm = None
    if mean is not None and std is not None:
        norm = (torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1),
                torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1))
    if isinstance(data, StreamData):
        loaded = _stream(data, [g[a:b] for g, (a, b) in zip(globals_, slices)])
    else:
        loaded = (data.images[g[a:b]] for g, (a, b) in zip(globals_, slices))
    for step, idx, (a, b), images in zip(steps, globals_, slices, loaded):
        x = images.to(device)
        if augment:
            x = _augment(x, len(idx), a, augment, crop_padding, _generator("augment", seed, epoch, step))
        x = x.float().div_(255)
        if norm is not None:
            x = x.sub_(norm[0]).div_(norm[1])
        yield x, data.labels[idx[a:b]].to(device)


_AUGMENTATIONS = ("random_crop", "hflip")


def _rank_slice(size: int, rank: int, world_size: int) -> tuple[int, int]:
    base, extra = divmod(size, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def _augment(x: torch.Tensor, global_size: int, offset: int, augment, padding: int, gen) -> torch.Tensor:
    """Random crop with zero padding and horizontal flip of a uint8 batch: one gather, no loop."""
    # Draw for the global batch in a fixed order and keep this rank's slice: the images a rank
    # sees do not depend on how many ranks there are.
    shifts = torch.randint(0, 2 * padding + 1, (global_size, 2), generator=gen)[offset : offset + len(x)]
    flips = torch.rand(global_size, generator=gen)[offset : offset + len(x)] < 0.5
    b, c, h, w = x.shape
    if "random_crop" in augment and padding > 0:
        x = F.pad(x, (padding, padding, padding, padding))
    else:
        shifts = torch.zeros_like(shifts)
    if "hflip" not in augment:
        flips = torch.zeros_like(flips)
    # Source row and column of every output pixel; a flipped image reads its columns backwards.
    cols = torch.arange(w)
    cols = torch.where(flips[:, None], w - 1 - cols, cols) + shifts[:, 1, None]  # (B, W)
    rows = torch.arange(h) + shifts[:, 0, None]  # (B, H)
    flat = (rows[:, :, None] * x.shape[3] + cols[:, None, :]).view(b, 1, h * w).to(x.device)
    return x.flatten(2).gather(2, flat.expand(b, c, h * w)).view(b, c, h, w)


class _ImageFiles(torch.utils.data.Dataset):
    """Decode image files to uint8 (C, H, W) at a fixed shape, for DataLoader workers."""

    def __init__(self, paths: list[Path], shape: tuple[int, int, int], fit: str) -> None:
        self.paths, self.shape, self.fit = paths, shape, fit

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        arr = formats.read_image(self.paths[i], self.shape[0])
        x = torch.from_numpy(arr.copy()).permute(2, 0, 1)[None]
        return _fit(x, self.shape[1:], self.fit, what=str(self.paths[i]))[0]


def _stack(shape, images: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(images) if images else torch.empty((0, *shape), dtype=torch.uint8)


def _stream(data: StreamData, batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:
    import functools

    loader = torch.utils.data.DataLoader(
        _ImageFiles(data.paths, data.shape, data.fit), batch_sampler=[b.tolist() for b in batches],
        num_workers=data.workers, collate_fn=functools.partial(_stack, data.shape),
    )
    return iter(loader)


# ----------------------------------------------------------------------------- conversion


def _fit(x: torch.Tensor, size: Sequence[int], fit: str, *, what: str) -> torch.Tensor:
    """Bring uint8 (N, C, H, W) to spatial ``size`` by zero-padding (centred) or bilinear resize."""
    (h, w), (th, tw) = x.shape[2:], tuple(size)
    if (h, w) == (th, tw):
        return x
    if fit == "pad":
        if h > th or w > tw:
            raise DataError(f"{what}: cannot pad {h}x{w} images to {th}x{tw} (padding only enlarges); "
                            f"set `fit: resize` in the recipe")
        top, left = (th - h) // 2, (tw - w) // 2
        return F.pad(x, (left, tw - w - left, top, th - h - top))
    if fit == "resize":
        y = F.interpolate(x.float(), size=(th, tw), mode="bilinear", antialias=True, align_corners=False)
        return y.round_().clamp_(0, 255).to(torch.uint8)
    raise DataError(f"{what}: images are {h}x{w} but the spec takes {th}x{tw}; set `fit: pad` (zero-pad, centred) "
                    f"or `fit: resize` (bilinear) in the recipe, or change the spec's input")


_LUMA = (0.299, 0.587, 0.114)


def _channels(x: torch.Tensor, c: int) -> torch.Tensor:
    if x.shape[1] == c:
        return x
    if x.shape[1] == 1 and c == 3:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] == 3 and c == 1:
        luma = torch.tensor(_LUMA).view(1, 3, 1, 1)
        return (x.float() * luma).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    raise DataError(f"cannot convert {x.shape[1]}-channel images to {c} channels")


def _chunk(shape) -> int:
    return max(1, _CHUNK_VALUES // math.prod(shape))


def _conform(images: torch.Tensor, index: torch.Tensor, shape, fit: str, name: str) -> torch.Tensor:
    """``images[index]`` as one uint8 tensor of ``shape``, converted chunk by chunk."""
    out = torch.empty((len(index), *shape), dtype=torch.uint8)
    step = _chunk(images.shape[1:])
    for start in range(0, len(index), step):
        chunk = images[index[start : start + step]]
        if chunk.shape[1] > shape[0]:  # fewer channels first: less to resize
            chunk = _channels(chunk, shape[0])
        out[start : start + len(chunk)] = _channels(_fit(chunk, shape[1:], fit, what=name), shape[0])
    return out


def _conversion_notes(src_shape, shape, fit: str) -> list[str]:
    (c, h, w), (tc, th, tw) = src_shape, shape
    notes = []
    if (h, w) != (th, tw):
        how = "zeros, centred" if fit == "pad" else "bilinear, antialiased"
        notes.append(f"{'padded' if fit == 'pad' else 'resized'} {h}x{w} to {th}x{tw} ({how})")
    if c == 1 and tc == 3:
        notes.append("replicated 1 channel to 3")
    elif c == 3 and tc == 1:
        notes.append("converted 3 channels to 1 (luminance 0.299 R + 0.587 G + 0.114 B)")
    return notes


def _stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``x / 255``, exact, from a histogram of the uint8 values."""
    counts = torch.zeros(x.shape[1], 256, dtype=torch.float64)
    step = _chunk(x.shape[1:])
    for start in range(0, len(x), step):
        chunk = x[start : start + step]
        for c in range(x.shape[1]):
            counts[c] += torch.bincount(chunk[:, c].reshape(-1), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255
    total = counts.sum(1).clamp(min=1)
    mean = (counts * values).sum(1) / total
    var = (counts * (values - mean[:, None]) ** 2).sum(1) / total
    # A constant channel (std 0) would divide by zero; leave it unscaled.
    std = torch.where(var > 0, var.sqrt(), torch.ones_like(var))
    return tuple(mean.tolist()), tuple(std.tolist())


# ----------------------------------------------------------------------------- sources


@dataclass
class _Part:
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

    def take(self, positions: torch.Tensor) -> _Part:
        return _Part(self.labels, self.images, self.paths, self.index[positions])


@dataclass
class _Source:
    classes: list[str]
    train: _Part
    val: _Part | None
    test: _Part | None
    test_split: str
    notes: list[str]


def _default_root(name: str) -> Path:
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


_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_IDX = {
    # name: (torchvision class, class names, where to get the files)
    "mnist": ("MNIST", [f"{i} - {w}" for i, w in enumerate(
        "zero one two three four five six seven eight nine".split())], "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    "fashion-mnist": ("FashionMNIST", ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                       "Sneaker", "Bag", "Ankle boot"], "https://github.com/zalandoresearch/fashion-mnist"),
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


def _read_idx_set(name: str, arg: str, root: Path | None, download: bool) -> _Source:
    tv_name, classes, url = _IDX[name]
    base = root or _default_root(name)
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
    train = _Part(torch.from_numpy(arrays[1].astype(np.int64)), torch.from_numpy(arrays[0].copy())[:, None])
    test = _Part(torch.from_numpy(arrays[3].astype(np.int64)), torch.from_numpy(arrays[2].copy())[:, None])
    note = f"{name}: {len(train):,} training and {len(test):,} test images (1x{arrays[0].shape[1]}x" \
           f"{arrays[0].shape[2]}) from {files[0].parent}"
    return _Source(classes, train, None, test, "test", [note])


_CIFAR = {
    # name: (folder, torchvision class, train files, test file, meta file, meta key, label key, url)
    "cifar10": ("cifar-10-batches-py", "CIFAR10", [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
                "batches.meta", "label_names", "labels", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    "cifar100": ("cifar-100-python", "CIFAR100", ["train"], "test", "meta", "fine_label_names", "fine_labels",
                 "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
}


def _read_cifar_set(name: str, arg: str, root: Path | None, download: bool) -> _Source:
    folder, tv_name, train_files, test_file, meta, meta_key, label_key, url = _CIFAR[name]
    base = root or _default_root(name)
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
        parts.append(_Part(torch.from_numpy(labels), torch.from_numpy(images)))
    note = f"{name}: {len(parts[0]):,} training and {len(parts[1]):,} test images (3x32x32) from {found}"
    return _Source(classes, parts[0], None, parts[1], "test", [note])


_TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


def _read_tiny_imagenet(name: str, arg: str, root: Path | None, download: bool) -> _Source:
    base = root or _default_root(name)
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
    train = _Part(torch.tensor(train_labels, dtype=torch.int64), paths=train_files)
    test = _Part(torch.tensor(val_labels, dtype=torch.int64), paths=val_files)
    notes = [f"{name}: {len(train):,} training and {len(test):,} val images of {len(wnids)} classes from {found}",
             "test split: the official val set (Tiny-ImageNet's test labels are not public); "
             "model selection uses a hold-out of train"]
    return _Source(names, train, None, test, "val", notes)


def _read_image_folder(name: str, arg: str, root: Path | None, download: bool) -> _Source:
    base = Path(arg).expanduser() if arg else root
    if base is None or not (base / "train").is_dir():
        looked = [base / "train"] if base is not None else []
        raise _missing(name, looked, "train/<class>/<image> and optional val/, test/ alike (torchvision ImageFolder)",
                       "write `imagefolder:DIR` with DIR holding train/ (no download for folders)")
    classes, files, labels = formats.scan_image_folder(base / "train")
    parts = {"train": _Part(torch.tensor(labels, dtype=torch.int64), paths=files)}
    for split in ("val", "test"):
        if (base / split).is_dir():
            _, files, labels = formats.scan_image_folder(base / split, classes)
            parts[split] = _Part(torch.tensor(labels, dtype=torch.int64), paths=files)
    notes = [f"{name}: " + ", ".join(f"{len(p):,} {s}" for s, p in parts.items()) + f" images from {base}"]
    if "test" in parts:
        return _Source(classes, parts["train"], parts.get("val"), parts["test"], "test", notes)
    if "val" in parts:
        notes.append("test split: val/ (there is no test/); model selection uses a hold-out of train")
        return _Source(classes, parts["train"], None, parts["val"], "val", notes)
    notes.append("no test split (the folder has no test/ or val/)")
    return _Source(classes, parts["train"], None, None, "none", notes)


def _synthetic(name: str, arg: str, shape, num_classes: int | None) -> _Source:
    if arg and not (arg.isdigit() and int(arg) > 0):
        raise DataError(f"{name}: expected `synthetic` or `synthetic:N` with N a number of training images")
    n_train = int(arg) if arg else 2000
    k = num_classes or 10
    c, h, w = shape
    # A fixed seed: the same images in every run, like a real data set.
    gen = torch.Generator().manual_seed(0)
    means = F.interpolate(torch.rand(k, c, 4, 4, generator=gen) * 160 + 48, size=(h, w), mode="bilinear",
                          align_corners=False)
    parts = []
    for n in (n_train, max(k, n_train // 4)):
        labels = torch.randint(0, k, (n,), generator=gen)
        images = torch.empty((n, c, h, w), dtype=torch.uint8)
        step = _chunk(shape)
        for start in range(0, n, step):
            y = labels[start : start + step]
            noise = torch.randn((len(y), c, h, w), generator=gen) * 32
            images[start : start + len(y)] = (means[y] + noise).round_().clamp_(0, 255).to(torch.uint8)
        parts.append(_Part(labels, images))
    note = f"{name}: {n_train:,} training and {len(parts[1]):,} test random images ({c}x{h}x{w}, {k} classes)"
    return _Source([f"class_{i}" for i in range(k)], parts[0], None, parts[1], "test", [note])


_READERS = {"cifar10": _read_cifar_set, "cifar100": _read_cifar_set, "tiny-imagenet": _read_tiny_imagenet,
            "mnist": _read_idx_set, "fashion-mnist": _read_idx_set, "imagefolder": _read_image_folder}
_FITS = ("none", "pad", "resize")


# ----------------------------------------------------------------------------- load_data


def load_data(
    name: str,
    *,
    root: str | Path | None = None,
    input_shape: Sequence[int],
    val_split: float = 0.1,
    seed: int = 0,
    fit: str = "none",
    train_subset: int | None = None,
    download: bool = False,
    num_classes: int | None = None,
) -> DataSplits:
    """Load the data set ``name`` and bring its images to ``input_shape``.

    Parameters
    ----------
    name : str
        ``cifar10``, ``cifar100``, ``tiny-imagenet``, ``mnist``, ``fashion-mnist``,
        ``imagefolder:DIR`` or ``synthetic`` (``synthetic:N``).
    root : path, optional
        Where the data set lives (default: ``$HRGRAPH_DATA/<name>`` or
        ``~/.cache/hrgraph/data/<name>``; for Fashion-MNIST also Debian's place).
    input_shape : (C, H, W)
        The spec's input.
    val_split : float
        Fraction of the training images held out for validation when the data
        set has no validation split of its own.
    seed : int
        Draws the hold-out and the subset.
    fit : {"none", "pad", "resize"}
        What to do with images whose H, W differ from ``input_shape``.
    train_subset : int, optional
        Keep this many of the remaining training images (seeded).
    download : bool
        Fetch a missing data set through torchvision.
    num_classes : int, optional
        The spec's number of classes; the data set must have as many.

    Raises
    ------
    DataError
        Unknown name; data missing (the message names where it looked, the
        layout it expects and how to get it); unreadable files; a class count
        other than ``num_classes``; images that do not fit ``input_shape``.

    Examples
    --------
    >>> data = load_data("synthetic:100", input_shape=(1, 8, 8), val_split=0.2, seed=0, num_classes=4)
    >>> data.train.images.shape, data.val.images.shape, data.test.images.dtype, data.classes[:2]
    (torch.Size([80, 1, 8, 8]), torch.Size([20, 1, 8, 8]), torch.uint8, ['class_0', 'class_1'])
    >>> data.notes[1]
    'held out 20 of 100 training images (seed 0) for val'
    """
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1 or shape[0] not in (1, 3):
        raise DataError(f"input shape {shape} is not (C, H, W) with C 1 or 3")
    if fit not in _FITS:
        raise DataError(f"unknown fit '{fit}': use one of {', '.join(_FITS)}{did_you_mean(fit, _FITS)}")
    if not 0 <= val_split < 1:
        raise DataError(f"val_split {val_split} is not in [0, 1)")
    kind, _, arg = name.partition(":")
    root = Path(root).expanduser() if root is not None else None
    if kind == "synthetic":
        src = _synthetic(name, arg, shape, num_classes)
    elif kind in _READERS:
        src = _READERS[kind](kind, arg, root, download)
    else:
        known = [*_READERS, "synthetic"]
        raise DataError(f"unknown data set '{name}'{did_you_mean(kind, known)}; known: {', '.join(known)}, "
                        "imagefolder:DIR")
    if num_classes is not None and num_classes != len(src.classes):
        raise DataError(f"{name} has {len(src.classes)} classes but the spec's classifier has {num_classes} outputs; "
                        f"set the spec's number of classes to {len(src.classes)}")
    for split, part in (("train", src.train), ("val", src.val), ("test", src.test)):
        if part is not None and len(part) and not 0 <= int(part.labels.min()) <= int(part.labels.max()) < len(src.classes):
            raise DataError(f"{name}: {split} labels outside 0..{len(src.classes) - 1}")
    notes, train, val = src.notes, src.train, src.val
    if val is None and val_split > 0:
        n_val = max(1, round(len(train) * val_split))
        if n_val >= len(train):
            raise DataError(f"{name}: val_split {val_split} leaves no training images of {len(train)}")
        perm = torch.randperm(len(train), generator=_generator("val", seed))
        val, train = train.take(perm[:n_val].sort().values), train.take(perm[n_val:].sort().values)
        notes.append(f"held out {n_val:,} of {len(train) + n_val:,} training images (seed {seed}) for val")
    elif val is None:
        notes.append("no validation split (val_split is 0)")
    if train_subset is not None:
        if train_subset < len(train):
            keep = torch.randperm(len(train), generator=_generator("subset", seed))[:train_subset].sort().values
            notes.append(f"subset of {train_subset:,} of {len(train):,} training images (seed {seed})")
            train = train.take(keep)
        else:
            notes.append(f"train_subset {train_subset:,} >= the {len(train):,} training images: using all")
    if src.train.images is not None:
        notes += _conversion_notes(tuple(src.train.images.shape[1:]), shape, fit)
    parts = [train, val, src.test]
    in_memory = src.train.paths is None or sum(len(p) for p in parts if p) * math.prod(shape) <= MEMORY_LIMIT
    if src.train.paths is not None:
        notes.append(_file_note(shape, fit, in_memory))
    splits = [None if p is None else _materialise(p, shape, fit, kind, in_memory) for p in parts]
    mean, std = _split_stats(splits[0], seed)
    fmt = ", ".join
    notes.append(f"mean ({fmt(f'{m:.4f}' for m in mean)}) std ({fmt(f'{s:.4f}' for s in std)}) per channel, "
                 f"from {'the' if isinstance(splits[0], ArrayData) else 'a sample of the'} training images")
    return DataSplits(name, list(src.classes), splits[0], splits[1], splits[2], src.test_split, mean, std, notes)


def _file_note(shape, fit: str, in_memory: bool) -> str:
    c, h, w = shape
    how = {"pad": "zero-padded (centred)", "resize": "resized (bilinear, antialiased)",
           "none": "required to be"}[fit]
    where = "decoded into memory" if in_memory else (
        f"streamed from disk by DataLoader workers (over {MEMORY_LIMIT / 2**30:.0f} GiB in memory)")
    return f"images converted to {'RGB' if c == 3 else 'L'} and {how} {h}x{w} where their size differs; {where}"


def _materialise(part: _Part, shape, fit: str, name: str, in_memory: bool) -> ArrayData | StreamData:
    labels = part.labels[part.index]
    if part.images is not None:
        return ArrayData(_conform(part.images, part.index, shape, fit, name), labels)
    paths = [part.paths[i] for i in part.index.tolist()]
    stream = StreamData(paths, labels, shape, fit)
    if not in_memory:
        return stream
    if len(paths) < 2000:
        stream.workers = 0  # starting workers costs more than decoding a few images
    images = torch.cat(list(_stream(stream, list(torch.arange(len(paths)).split(256))))) if paths else \
        torch.empty((0, *shape), dtype=torch.uint8)
    return ArrayData(images, labels)


def _split_stats(train: ArrayData | StreamData, seed: int):
    if isinstance(train, ArrayData):
        return _stats(train.images)
    # Decoding all of a folder too large for memory only for two numbers: a seeded sample of 2,000 will do.
    pick = torch.randperm(len(train), generator=_generator("stats", seed))[:2000].sort().values
    sample = torch.cat(list(_stream(train, list(pick.split(256)))))
    return _stats(sample)
