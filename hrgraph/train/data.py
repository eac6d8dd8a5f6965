"""Data sets by name, held in memory as uint8, batched and augmented on the training device.

:func:`load_data` reads a data set in its publisher's on-disk format (where to
look: :mod:`hrgraph.train.sources`; the file formats: :mod:`hrgraph.train.formats`)
and returns :class:`DataSplits`:

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

Why one module past 500 lines: the named data sets, their split, subset and fitting
rules and the batching/augmentation that consume them share one held-in-memory
format; file formats and sources are already split out (formats, sources).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from hrgraph.errors import DataError, did_you_mean
from hrgraph.train import formats, sources

__all__ = ["ArrayData", "StreamData", "DataSplits", "load_data", "iterate_batches", "num_batches", "MEMORY_LIMIT",
           "check_crop_padding"]

#: An ImageFolder larger than this many bytes (as uint8 at the spec's input shape) streams from disk.
MEMORY_LIMIT = 4 * 2**30
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
    """A data set ready to train on.

    Attributes
    ----------
    name : str
        As given to :func:`load_data`.
    classes : list of str
        Class names; label ``i`` is ``classes[i]``.
    train, val, test : ArrayData or StreamData
        ``val`` is ``None`` with ``val_split`` 0 and no val split of the data
        set's own; ``test`` is ``None`` for an ImageFolder without ``test/`` or ``val/``.
    test_split : str
        What ``test`` holds: ``"test"``, ``"val"`` (the published val split, for
        data sets whose test labels are not public) or ``"none"``.
    mean, std : tuple of float
        Per channel, of ``x / 255`` over the training split after conversion.
    notes : list of str
        One line per thing done to the data, for the training log.
    """

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
    key = tuple(k if isinstance(k, str) else int(k) for k in key)  # numpy ints would repr differently
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
    ...                                augment=["random_crop", "hflip"], crop_padding=2, mean=None, std=None))
    >>> [tuple(x.shape) for x, _ in batches], sorted(torch.cat([y for _, y in batches]).tolist())
    ([(4, 1, 4, 4), (2, 1, 4, 4)], [0, 1, 2, 3, 4, 5])
    """
    unknown = [a for a in augment if a not in _AUGMENTATIONS]
    if unknown:
        raise DataError(f"unknown augmentation '{unknown[0]}'{did_you_mean(unknown[0], _AUGMENTATIONS)}")
    if not 0 <= rank < world_size:
        raise DataError(f"rank {rank} is not in 0..{world_size - 1}")
    if "random_crop" in augment:
        check_crop_padding(crop_padding, tuple(data.images.shape[1:]) if isinstance(data, ArrayData) else data.shape)
    device = torch.device(device)
    n = len(data) if limit is None else min(len(data), limit)
    if shuffle:
        order = torch.randperm(len(data), generator=_generator("order", seed, epoch))
    else:
        order = torch.arange(len(data))
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


def check_crop_padding(padding: int, shape: Sequence[int]) -> None:
    """Refuse a ``crop_padding`` not smaller than the images' height or width.

    A crop from an image padded by as much as its side may hold none of its
    pixels, and the padded batch (``(H + 2p) x (W + 2p)`` per image) is
    allocated before anything else: ``crop_padding: 100000`` on 32x32 images
    would ask for terabytes.

    Raises
    ------
    DataError

    Examples
    --------
    >>> check_crop_padding(4, (3, 32, 32))
    >>> check_crop_padding(100000, (3, 32, 32))
    Traceback (most recent call last):
    ...
    hrgraph.errors.DataError: crop_padding 100000 must be less than the images' height and width (32x32): a random crop could miss the image entirely; the usual value is an eighth of the side (4 for 32x32)
    """
    h, w = int(shape[-2]), int(shape[-1])
    if padding >= min(h, w):
        raise DataError(f"crop_padding {padding} must be less than the images' height and width ({h}x{w}): "
                        f"a random crop could miss the image entirely; the usual value is an eighth of the side "
                        f"({max(1, min(h, w) // 8)} for {h}x{w})")


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

    def __getitem__(self, i: int) -> torch.Tensor | str:
        try:
            arr = formats.read_image(self.paths[i], self.shape[0])
            x = torch.from_numpy(arr.copy()).permute(2, 0, 1)[None]
            return _fit(x, self.shape[1:], self.fit, what=str(self.paths[i]))[0]
        except DataError as err:
            # Returned, not raised: a DataLoader worker re-raises an exception with its whole
            # traceback in the message, and the user should read one line.
            return str(err)


def _stack(shape, images: list[torch.Tensor | str]) -> torch.Tensor | str:
    failed = next((x for x in images if isinstance(x, str)), None)
    if failed is not None:
        return failed
    return torch.stack(images) if images else torch.empty((0, *shape), dtype=torch.uint8)


def _stream(data: StreamData, batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:
    loader = torch.utils.data.DataLoader(
        _ImageFiles(data.paths, data.shape, data.fit), batch_sampler=[b.tolist() for b in batches],
        num_workers=data.workers, collate_fn=functools.partial(_stack, data.shape),
    )
    for batch in loader:
        if isinstance(batch, str):
            raise DataError(batch)
        yield batch


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
    kind = name.partition(":")[0]
    src = sources.read_source(name, Path(root).expanduser() if root is not None else None, download, shape,
                              num_classes)
    if num_classes is not None and num_classes != len(src.classes):
        raise DataError(f"{name} has {len(src.classes)} classes but the spec's classifier has {num_classes} outputs; "
                        f"set the spec's number of classes to {len(src.classes)}")
    for split, part in (("train", src.train), ("val", src.val), ("test", src.test)):
        if part is not None and len(part.labels) and not 0 <= part.labels.min() <= part.labels.max() < len(src.classes):
            raise DataError(f"{name}: {split} labels outside 0..{len(src.classes) - 1}")
    notes = src.notes
    train, val = _hold_out(name, src.train, src.val, val_split, seed, notes)
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
    size = sum(len(p) for p in parts if p is not None) * math.prod(shape)
    in_memory = src.train.paths is None or size <= MEMORY_LIMIT
    if src.train.paths is None:
        # Arrays are converted into new tensors of the spec's shape: check before allocating them.
        sources.check_memory(name, size, f"{sum(len(p) for p in parts if p is not None):,} images of "
                             f"{'x'.join(map(str, shape))} (uint8)")
    if src.train.paths is not None:
        notes.append(_file_note(shape, fit, in_memory))
    splits = [None if p is None else _materialise(p, shape, fit, kind, in_memory) for p in parts]
    mean, std = _split_stats(splits[0], seed)
    fmt = ", ".join
    notes.append(f"mean ({fmt(f'{m:.4f}' for m in mean)}) std ({fmt(f'{s:.4f}' for s in std)}) per channel, "
                 f"from {'the' if isinstance(splits[0], ArrayData) else 'a sample of the'} training images")
    return DataSplits(name, list(src.classes), splits[0], splits[1], splits[2], src.test_split, mean, std, notes)


def _hold_out(name: str, train: sources.Part, val: sources.Part | None, val_split: float, seed: int, notes: list[str]):
    """Train and val parts: the data set's own val, or a seeded hold-out of ``val_split`` of train."""
    if val is not None:
        return train, val
    if val_split == 0:
        notes.append("no validation split (val_split is 0)")
        return train, None
    n_val = max(1, round(len(train) * val_split))
    if n_val >= len(train):
        raise DataError(f"{name}: val_split {val_split} leaves no training images of {len(train)}")
    perm = torch.randperm(len(train), generator=_generator("val", seed))
    notes.append(f"held out {n_val:,} of {len(train):,} training images (seed {seed}) for val")
    return train.take(perm[n_val:].sort().values), train.take(perm[:n_val].sort().values)


def _file_note(shape, fit: str, in_memory: bool) -> str:
    c, h, w = shape
    size = {"pad": f"zero-padded (centred) to {h}x{w} where smaller",
            "resize": f"resized (bilinear, antialiased) to {h}x{w} where their size differs",
            "none": f"all {h}x{w} (fit none refuses other sizes)"}[fit]
    where = "decoded into memory" if in_memory else (
        f"streamed from disk by DataLoader workers (over {MEMORY_LIMIT / 2**30:.0f} GiB in memory)")
    return f"images decoded as {'RGB' if c == 3 else 'L (luminance)'}, {size}; {where}"


def _materialise(part: sources.Part, shape, fit: str, name: str, in_memory: bool) -> ArrayData | StreamData:
    labels = part.labels[part.index]
    if part.images is not None:
        return ArrayData(_conform(part.images, part.index, shape, fit, name), labels)
    paths = [part.paths[i] for i in part.index.tolist()]
    stream = StreamData(paths, labels, shape, fit)
    if not in_memory:
        return stream
    if len(paths) < 2000:
        stream.workers = 0  # starting workers costs more than decoding a few images
    images = torch.empty((len(paths), *shape), dtype=torch.uint8)
    start = 0
    for batch in _stream(stream, list(torch.arange(len(paths)).split(256))):
        images[start : start + len(batch)] = batch
        start += len(batch)
    return ArrayData(images, labels)


def _split_stats(train: ArrayData | StreamData, seed: int):
    if isinstance(train, ArrayData):
        return _stats(train.images)
    # Decoding all of a folder too large for memory only for two numbers: a seeded sample of 2,000 will do.
    pick = torch.randperm(len(train), generator=_generator("stats", seed))[:2000].sort().values
    sample = torch.cat(list(_stream(train, list(pick.split(256)))))
    return _stats(sample)
