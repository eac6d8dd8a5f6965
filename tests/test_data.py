"""hrgraph.train.data: each data set read from tiny files in its real on-disk format, splits, batches."""

from __future__ import annotations

import gzip
import os
import pickle
import signal
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from hrgraph.errors import DataError
from hrgraph.train.data import ArrayData, iterate_batches, load_data, num_batches
from hrgraph.train.sources import DEBIAN_FASHION_MNIST


@pytest.fixture(autouse=True)
def _no_default_data(tmp_path, monkeypatch):
    # Never read the user's ~/.cache/hrgraph/data: default roots point into an empty folder.
    monkeypatch.setenv("HRGRAPH_DATA", str(tmp_path / "default"))


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file exactly as the MNIST site publishes it: magic 0 0 8 ndim, big-endian dims, bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def make_idx_set(folder: Path, n_train=30, n_test=10, size=28, gz=True) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, size, size)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, size, size)),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) * 3) % 10,
    }
    for name, array in arrays.items():
        write_idx(folder / (name + (".gz" if gz else "")), array)
    return arrays


# ----------------------------------------------------------------------------- idx (MNIST, Fashion-MNIST)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_load_with_labels_classes_and_test_split(tmp_path, gz):
    arrays = make_idx_set(tmp_path / "fm", gz=gz)
    data = load_data("fashion-mnist", root=tmp_path / "fm", input_shape=(1, 28, 28), val_split=0.2, seed=0)
    assert data.classes[0] == "T-shirt/top" and len(data.classes) == 10
    assert data.train.images.dtype == torch.uint8 and data.train.labels.dtype == torch.int64
    assert (len(data.train), len(data.val), len(data.test)) == (24, 6, 10)
    assert data.test_split == "test"
    assert torch.equal(data.test.images[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"].astype(np.uint8)))
    assert data.test.labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    # The hold-out is a partition of the training file: every image once, with its own label.
    images = torch.cat([data.train.images, data.val.images])[:, 0]
    labels = torch.cat([data.train.labels, data.val.labels])
    source = torch.from_numpy(arrays["train-images-idx3-ubyte"].astype(np.uint8))
    order = [next(i for i in range(30) if torch.equal(source[i], img)) for img in images]
    assert sorted(order) == list(range(30))
    assert labels.tolist() == [int(arrays["train-labels-idx1-ubyte"][i]) for i in order]
    assert "held out 6 of 30 training images (seed 0) for val" in data.notes


def test_idx_in_torchvision_folder_padded_and_replicated(tmp_path):
    make_idx_set(tmp_path / "MNIST" / "raw")
    data = load_data("mnist", root=tmp_path, input_shape=(3, 32, 32), val_split=0.1, seed=1, fit="pad",
                     num_classes=10)
    assert data.train.images.shape == (27, 3, 32, 32) and data.classes[3] == "3 - three"
    assert "padded 28x28 to 32x32 (zeros, centred)" in data.notes and "replicated 1 channel to 3" in data.notes
    assert data.train.images[:, :, :2].sum() == 0 and data.train.images[:, :, :, -2:].sum() == 0
    assert torch.equal(data.train.images[:, 0], data.train.images[:, 2])
    assert len(data.mean) == 3 and all(s > 0 for s in data.std)


def test_resize_fit_and_statistics_of_the_training_split(tmp_path):
    make_idx_set(tmp_path / "fm")
    data = load_data("fashion-mnist", root=tmp_path / "fm", input_shape=(1, 14, 14), val_split=0.0, seed=0,
                     fit="resize")
    assert data.train.images.shape == (30, 1, 14, 14) and data.val is None
    assert "resized 28x28 to 14x14 (bilinear, antialiased)" in data.notes
    x = data.train.images.double() / 255
    assert data.mean[0] == pytest.approx(x.mean().item()) and data.std[0] == pytest.approx(x.std(unbiased=False).item())


def test_missing_data_names_the_place_the_layout_and_how_to_get_it(tmp_path):
    with pytest.raises(DataError) as err:
        load_data("fashion-mnist", root=tmp_path / "nowhere", input_shape=(1, 28, 28))
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message and "train-images-idx3-ubyte" in message
    assert "--download" in message and "apt-get install dataset-fashion-mnist" in message


def test_failed_download_is_a_data_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    # What torchvision.datasets.MNIST(download=True) does without internet, without importing torchvision.
    fake = types.SimpleNamespace(datasets=types.SimpleNamespace(MNIST=offline))
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    with pytest.raises(DataError, match="downloading into .* failed.*RuntimeError"):
        load_data("mnist", root=tmp_path, input_shape=(1, 28, 28), download=True)


def test_class_count_mismatch_names_both_counts(tmp_path):
    make_idx_set(tmp_path)
    with pytest.raises(DataError, match="has 10 classes but the spec's classifier has 100 outputs"):
        load_data("mnist", root=tmp_path, input_shape=(1, 28, 28), num_classes=100)


def test_fit_none_with_another_size_says_what_to_set(tmp_path):
    make_idx_set(tmp_path)
    with pytest.raises(DataError, match=r"28x28 but the spec takes 32x32; set `fit: pad`.*`fit: resize`"):
        load_data("mnist", root=tmp_path, input_shape=(1, 32, 32), fit="none")
    with pytest.raises(DataError, match="cannot pad 28x28 images to 16x16"):
        load_data("mnist", root=tmp_path, input_shape=(1, 16, 16), fit="pad")


def test_unknown_name_and_fit_suggest_the_closest(tmp_path):
    with pytest.raises(DataError, match="did you mean 'cifar10'"):
        load_data("cifar01", input_shape=(3, 32, 32))
    with pytest.raises(DataError, match="did you mean 'resize'"):
        load_data("synthetic", input_shape=(3, 32, 32), fit="resise")


@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist():
    data = load_data("fashion-mnist", input_shape=(1, 28, 28), val_split=0.1, seed=0, num_classes=10)
    assert (len(data.train), len(data.val), len(data.test)) == (54_000, 6_000, 10_000)
    assert str(DEBIAN_FASHION_MNIST) in data.notes[0]
    assert torch.bincount(data.test.labels).tolist() == [1000] * 10
    assert data.mean[0] == pytest.approx(0.286, abs=0.002)  # the published Fashion-MNIST mean


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_is_the_same_every_time_and_learnable():
    a = load_data("synthetic:400", input_shape=(3, 16, 16), val_split=0.25, seed=0, num_classes=4)
    b = load_data("synthetic:400", input_shape=(3, 16, 16), val_split=0.25, seed=0, num_classes=4)
    c = load_data("synthetic:400", input_shape=(3, 16, 16), val_split=0.25, seed=1, num_classes=4)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.images, c.test.images)
    assert not torch.equal(a.val.labels, c.val.labels)  # the seed draws the hold-out
    assert (len(a.train), len(a.val), len(a.test)) == (300, 100, 100) and a.classes == [f"class_{i}" for i in range(4)]
    # Learnable: the nearest class mean of the training set classifies the test set well.
    means = torch.stack([a.train.images[a.train.labels == k].float().mean(0) for k in range(4)])
    dist = ((a.test.images.float()[:, None] - means[None]) ** 2).flatten(2).sum(2)
    assert (dist.argmin(1) == a.test.labels).float().mean() > 0.9


def test_train_subset_is_seeded_and_stated():
    data = load_data("synthetic:200", input_shape=(1, 8, 8), val_split=0.1, seed=3, train_subset=50)
    again = load_data("synthetic:200", input_shape=(1, 8, 8), val_split=0.1, seed=3, train_subset=50)
    assert len(data.train) == 50 and torch.equal(data.train.images, again.train.images)
    assert "subset of 50 of 180 training images (seed 3)" in data.notes


# ----------------------------------------------------------------------------- iterate_batches


@pytest.fixture(scope="module")
def small():
    images = torch.randint(0, 256, (23, 3, 8, 8), dtype=torch.uint8)
    return ArrayData(images, torch.arange(23) % 5)


def batches(data, **kw):
    args = {"device": "cpu", "shuffle": True, "seed": 0, "epoch": 0, "augment": ["random_crop", "hflip"],
            "crop_padding": 2, "mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.3)}
    args.update(kw)
    return list(iterate_batches(data, 5, **args))


def test_batches_cover_the_epoch_normalised(small):
    out = batches(small, augment=[], shuffle=False, mean=None, std=None)
    assert [len(y) for _, y in out] == [5, 5, 5, 5, 3] == [5] * 4 + [3] and num_batches(small, 5) == 5
    x = torch.cat([x for x, _ in out])
    assert x.dtype == torch.float32 and torch.equal(x, small.images.float() / 255)
    normed = batches(small, augment=[], shuffle=False)
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1), torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    assert torch.allclose(normed[0][0], (small.images[:5].float() / 255 - mean) / std)


def test_order_and_augmentation_are_deterministic_per_seed_and_epoch(small):
    first, again, other_epoch = batches(small), batches(small), batches(small, epoch=1)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert not torch.equal(torch.cat([y for _, y in first]), torch.cat([y for _, y in other_epoch]))
    assert sorted(torch.cat([y for _, y in first]).tolist()) == sorted(small.labels.tolist())


def test_resume_at_a_step_is_bit_identical(small):
    full = batches(small, epoch=3)
    resumed = batches(small, epoch=3, start_step=2)
    assert len(resumed) == len(full) - 2
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full[2:], resumed))


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_take_disjoint_slices_that_make_up_the_global_batch(small, world_size):
    whole = batches(small)
    per_rank = [batches(small, rank=r, world_size=world_size) for r in range(world_size)]
    assert all(len(b) == len(whole) for b in per_rank)  # every rank takes the same number of steps
    for step, (x, y) in enumerate(whole):
        # Same images too: augmentation is drawn for the global batch.
        assert torch.equal(torch.cat([b[step][0] for b in per_rank]), x)
        assert torch.equal(torch.cat([b[step][1] for b in per_rank]), y)


def test_augmentation_keeps_shape_and_labels(small):
    plain = batches(small, augment=[], mean=None, std=None)
    flipped = batches(small, augment=["hflip"], mean=None, std=None)
    cropped = batches(small, augment=["random_crop"], crop_padding=2, mean=None, std=None)
    n_flipped = 0
    for (x, y), (fx, fy), (cx, cy) in zip(plain, flipped, cropped):
        assert torch.equal(y, fy) and torch.equal(y, cy) and fx.shape == cx.shape == x.shape
        for img, f in zip(x, fx):
            assert torch.equal(f, img) or torch.equal(f, img.flip(2))
            n_flipped += not torch.equal(f, img)
    assert 0 < n_flipped < len(small)
    # A crop is the image shifted by at most 2 pixels, zeros coming in at the border.
    x, cx = plain[0][0][0], cropped[0][0][0]
    shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
              if torch.equal(torch.roll(torch.nn.functional.pad(x, (2, 2, 2, 2)), (dy, dx), (1, 2))[:, 2:-2, 2:-2], cx)]
    assert shifts


def test_limit_takes_the_first_images_of_the_order(small):
    out = batches(small, limit=12)
    assert [len(y) for _, y in out] == [5, 5, 2] and num_batches(small, 5, limit=12) == 3
    assert torch.equal(torch.cat([y for _, y in out]), torch.cat([y for _, y in batches(small)])[:12])


def test_unknown_augmentation_is_a_data_error(small):
    with pytest.raises(DataError, match="did you mean 'hflip'"):
        batches(small, augment=["hflips"])


# ----------------------------------------------------------------------------- CIFAR


def write_cifar_batch(path: Path, images: np.ndarray, labels: list[int], label_key: str, **extra) -> None:
    """A python-version CIFAR batch: a pickled dict, ``data`` (N, 3072) uint8 channel planes."""
    entry = {"batch_label": f"{path.name} of 1", label_key: labels, "data": images.reshape(len(images), -1),
             "filenames": [f"img_{i}.png" for i in range(len(images))], **extra}
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)


@pytest.fixture
def cifar10(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    train = []
    for i in range(1, 6):
        images = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
        labels = [(4 * i + j) % 10 for j in range(4)]
        write_cifar_batch(folder / f"data_batch_{i}", images, labels, "labels")
        train.append((images, labels))
    test = rng.integers(0, 256, (6, 3, 32, 32), dtype=np.uint8)
    write_cifar_batch(folder / "test_batch", test, [9, 8, 7, 6, 5, 4], "labels")
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"num_cases_per_batch": 4, "label_names": names, "num_vis": 3072}, f, protocol=2)
    return tmp_path, train, test


def test_cifar10_batches(cifar10):
    root, train, test = cifar10
    data = load_data("cifar10", root=root, input_shape=(3, 32, 32), val_split=0.0, seed=0, num_classes=10)
    assert data.classes[:2] == ["airplane", "automobile"] and data.test_split == "test"
    assert torch.equal(data.train.images, torch.from_numpy(np.concatenate([i for i, _ in train])))
    assert data.train.labels.tolist() == [label for _, labels in train for label in labels]
    assert torch.equal(data.test.images, torch.from_numpy(test)) and data.test.labels.tolist() == [9, 8, 7, 6, 5, 4]
    held = load_data("cifar10", root=root / "cifar-10-batches-py", input_shape=(1, 32, 32), val_split=0.1, seed=0)
    assert (len(held.train), len(held.val)) == (18, 2) and held.train.images.shape[1] == 1
    assert "converted 3 channels to 1 (luminance 0.299 R + 0.587 G + 0.114 B)" in held.notes


def test_cifar100_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)
    write_cifar_batch(folder / "train", images, [0, 99, 5, 5, 42], "fine_labels", coarse_labels=[0, 19, 1, 1, 3])
    write_cifar_batch(folder / "test", images[:2], [1, 2], "fine_labels", coarse_labels=[0, 0])
    fine = [f"fine{i}" for i in range(100)]
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": fine, "coarse_label_names": [f"c{i}" for i in range(20)]}, f, protocol=2)
    data = load_data("cifar100", root=tmp_path, input_shape=(3, 32, 32), val_split=0.0, seed=0, num_classes=100)
    assert data.classes == fine and data.train.labels.tolist() == [0, 99, 5, 5, 42]
    with pytest.raises(DataError, match="cifar100 has 100 classes but the spec's classifier has 10 outputs"):
        load_data("cifar100", root=tmp_path, input_shape=(3, 32, 32), num_classes=10)


def test_cifar_pickle_cannot_run_code(cifar10, tmp_path):
    root, _, _ = cifar10

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": Exploit(), "labels": []}, f, protocol=2)
    with pytest.raises(DataError, match="refusing to load posix.system"):
        load_data("cifar10", root=root, input_shape=(3, 32, 32))
    assert not (tmp_path / "pwned").exists()


def test_missing_cifar_says_where_and_how(tmp_path):
    with pytest.raises(DataError) as err:
        load_data("cifar10", root=tmp_path, input_shape=(3, 32, 32))
    message = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in message and "data_batch_1" in message
    assert "--download" in message and "cifar-10-python.tar.gz" in message


# ----------------------------------------------------------------------------- Tiny-ImageNet


def save_image(path: Path, value, size=(64, 64), mode="RGB") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


@pytest.fixture
def tiny_imagenet(tmp_path):
    root = tmp_path / "tiny-imagenet-200"
    wnids = ["n02", "n01", "n03"]  # wnids.txt is not sorted; labels follow the sorted order
    root.mkdir()
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text("n00\tentity\nn01\tgoldfish, Carassius auratus\nn02\tfire salamander\n")
    colours = {"n01": (200, 0, 0), "n02": (0, 200, 0), "n03": (0, 0, 200)}
    for wnid in wnids:
        for i in range(3):
            save_image(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", colours[wnid])
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    lines = []
    for i, wnid in enumerate(["n03", "n01"]):
        save_image(root / "val" / "images" / f"val_{i}.JPEG", colours[wnid])
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    save_image(root / "val" / "images" / "val_2.JPEG", 90, mode="L")  # a few Tiny-ImageNet images are greyscale
    lines.append("val_2.JPEG\tn02\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    save_image(root / "test" / "images" / "test_0.JPEG", (1, 2, 3))
    return tmp_path


def test_tiny_imagenet_tree(tiny_imagenet):
    data = load_data("tiny-imagenet", root=tiny_imagenet, input_shape=(3, 64, 64), val_split=1 / 3, seed=0,
                     num_classes=3)
    assert data.classes == ["goldfish", "fire salamander", "n03"]  # words.txt's first name, else the wnid
    assert data.test_split == "val" and data.test.labels.tolist() == [2, 0, 1]
    assert data.test.images.shape == (3, 3, 64, 64) and data.test.images.dtype == torch.uint8
    assert data.test.images[2].float().std() < 1  # greyscale decoded to three equal channels
    assert (len(data.train), len(data.val)) == (6, 3)
    images = torch.cat([data.train.images, data.val.images]).float().mean((2, 3))
    labels = torch.cat([data.train.labels, data.val.labels])
    assert (images.argmax(1) == labels).all()  # red -> n01 (0), green -> n02 (1), blue -> n03 (2)
    assert any("test labels are not public" in n for n in data.notes)


def test_tiny_imagenet_resized_to_32(tiny_imagenet):
    data = load_data("tiny-imagenet", root=tiny_imagenet / "tiny-imagenet-200", input_shape=(3, 32, 32),
                     val_split=0.0, seed=0, fit="resize")
    assert data.train.images.shape == (9, 3, 32, 32) and data.val is None
    assert any("resized (bilinear, antialiased) to 32x32" in n for n in data.notes)


# ----------------------------------------------------------------------------- ImageFolder


@pytest.fixture
def folder(tmp_path):
    for split, n in (("train", 4), ("test", 2)):
        for k, name in enumerate(["cat", "dog"]):
            for i in range(n):
                save_image(tmp_path / "f" / split / name / f"{i}.png", (100 * k, 50, 20), size=(20 + 4 * i, 16))
    save_image(tmp_path / "f" / "train" / "dog" / "sub" / "rgba.png", (10, 20, 30, 255), size=(16, 16), mode="RGBA")
    (tmp_path / "f" / "train" / "dog" / "notes.txt").write_text("not an image")
    return tmp_path / "f"


def test_image_folder_in_memory(folder):
    data = load_data(f"imagefolder:{folder}", input_shape=(1, 12, 12), val_split=0.0, seed=0, fit="resize",
                     num_classes=2)
    assert data.classes == ["cat", "dog"] and data.test_split == "test"
    assert isinstance(data.train, ArrayData) and data.train.images.shape == (9, 1, 12, 12)
    assert data.train.labels.tolist() == [0] * 4 + [1] * 5 and data.test.labels.tolist() == [0, 0, 1, 1]
    # PIL's L conversion of (100, 50, 20): 0.299*100 + 0.587*50 + 0.114*20 = 61.6
    assert data.train.images[4].float().mean().item() == pytest.approx(62, abs=1)
    assert any("decoded into memory" in n for n in data.notes)


def test_image_folder_streams_when_too_large_for_memory(folder, monkeypatch):
    import hrgraph.train.data as data_module

    in_memory = load_data(f"imagefolder:{folder}", input_shape=(3, 16, 16), val_split=0.25, seed=0, fit="resize")
    monkeypatch.setattr(data_module, "MEMORY_LIMIT", 0)
    streamed = load_data(f"imagefolder:{folder}", input_shape=(3, 16, 16), val_split=0.25, seed=0, fit="resize")
    assert isinstance(streamed.train, data_module.StreamData) and len(streamed.train) == 7
    assert any("streamed from disk" in n for n in streamed.notes)
    streamed.train.workers = 1  # one worker process proves the DataLoader path; two cost time only
    for a, b in zip(batches(in_memory.train), batches(streamed.train)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_image_folder_val_without_test_becomes_the_reported_split(folder):
    (folder / "test").rename(folder / "val")
    data = load_data(f"imagefolder:{folder}", input_shape=(3, 16, 16), val_split=0.25, seed=0, fit="resize")
    assert data.test_split == "val" and len(data.test) == 4 and len(data.val) == 2


def test_image_folder_errors(folder, tmp_path):
    with pytest.raises(DataError, match=r"16x20 but the spec takes 16x16; set `fit: pad`"):
        load_data(f"imagefolder:{folder}", input_shape=(3, 16, 16), fit="none")
    save_image(folder / "test" / "dgo" / "0.png", 0, size=(16, 16))
    with pytest.raises(DataError, match="class 'dgo' is not a class of train/ \\(did you mean 'dog'\\?\\)"):
        load_data(f"imagefolder:{folder}", input_shape=(3, 16, 16), fit="resize")
    with pytest.raises(DataError, match=f"looked in {tmp_path / 'empty' / 'train'}"):
        load_data(f"imagefolder:{tmp_path / 'empty'}", input_shape=(3, 16, 16))


# ----------------------------------------------------------------------------- symbolic links (issue 19.2)


def test_directory_loop_is_refused_naming_the_link(folder):
    # Two loops made the old scan exponential (13 GB after 10 minutes); now the first is refused at once.
    os.symlink("..", folder / "train" / "cat" / "l1")
    os.symlink("../..", folder / "train" / "dog" / "l2")
    with pytest.raises(DataError, match=r"train/cat/l1: a symbolic link to .*, which holds it: a directory loop"):
        load_data(f"imagefolder:{folder}", input_shape=(3, 16, 16), fit="resize")


def test_link_to_the_data_root_is_a_loop_too(folder):
    os.symlink(str(folder), folder / "train" / "dog" / "root")
    with pytest.raises(DataError, match=r"train/dog/root: .*directory loop"):
        load_data(f"imagefolder:{folder}", input_shape=(3, 16, 16), fit="resize")


def test_each_file_is_counted_once_by_identity(folder):
    before = load_data(f"imagefolder:{folder}", input_shape=(3, 16, 16), val_split=0.0, seed=0, fit="resize")
    os.symlink("0.png", folder / "train" / "dog" / "again.png")  # the same file under its own class
    os.symlink("sub", folder / "train" / "dog" / "alias")  # a folder reached twice, not a loop
    after = load_data(f"imagefolder:{folder}", input_shape=(3, 16, 16), val_split=0.0, seed=0, fit="resize")
    assert after.train.labels.tolist() == before.train.labels.tolist() == [0] * 4 + [1] * 5


def test_a_file_in_two_classes_or_two_splits_is_refused(folder):
    os.symlink("../dog/0.png", folder / "train" / "cat" / "stolen.png")
    with pytest.raises(DataError, match=r"cannot be in both train/cat and train/dog"):
        load_data(f"imagefolder:{folder}", input_shape=(3, 16, 16), fit="resize")
    (folder / "train" / "cat" / "stolen.png").unlink()
    os.symlink(str(folder / "train" / "cat" / "0.png"), folder / "test" / "cat" / "leak.png")
    with pytest.raises(DataError, match=r"leak.png is the file .*train/cat/0.png of train/cat: an image cannot be "
                                        r"in both train/cat and test/cat"):
        load_data(f"imagefolder:{folder}", input_shape=(3, 16, 16), fit="resize")


def test_links_leaving_the_root_are_followed(folder, tmp_path):
    store = tmp_path / "store"
    for i in range(3):
        save_image(store / f"{i}.png", (0, 0, 0), size=(16, 16))
    os.symlink(str(store), folder / "train" / "cat" / "more")
    data = load_data(f"imagefolder:{folder}", input_shape=(3, 16, 16), val_split=0.0, seed=0, fit="resize")
    assert data.train.labels.tolist() == [0] * 7 + [1] * 5


def test_broken_link_is_named(folder):
    os.symlink("missing.png", folder / "train" / "cat" / "gone.png")
    with pytest.raises(DataError, match=r"train/cat/gone.png: a broken symbolic link \(to missing.png\)"):
        load_data(f"imagefolder:{folder}", input_shape=(3, 16, 16), fit="resize")


# ----------------------------------------------------------------------------- sizes checked before allocating (19.14)


def test_synthetic_too_large_is_refused_before_allocating(monkeypatch):
    monkeypatch.delenv("HRGRAPH_DATA_MEMORY", raising=False)
    with pytest.raises(DataError, match=r"synthetic:100000000000: 100,000,000,000 training and 25,000,000,000 test "
                                        r"images of 3x32x32 would take .* TiB in memory, over the limit of .* \(half"):
        load_data("synthetic:100000000000", input_shape=(3, 32, 32))


def test_memory_limit_variable(monkeypatch):
    monkeypatch.setenv("HRGRAPH_DATA_MEMORY", "100K")
    with pytest.raises(DataError, match=r"would take 501.0 KiB in memory, over the limit of 100.0 KiB "
                                        r"\(\$HRGRAPH_DATA_MEMORY\)"):
        load_data("synthetic:100", input_shape=(1, 64, 64), num_classes=4)  # 125 x (8 + 4096) bytes
    load_data("synthetic:10", input_shape=(1, 8, 8), num_classes=4)  # 12.5 KiB: fits
    monkeypatch.setenv("HRGRAPH_DATA_MEMORY", "lots")
    with pytest.raises(DataError, match="HRGRAPH_DATA_MEMORY='lots' is not a size"):
        load_data("synthetic:10", input_shape=(1, 8, 8))


def test_conversion_to_a_huge_input_is_refused_before_allocating(tmp_path, monkeypatch):
    monkeypatch.setenv("HRGRAPH_DATA_MEMORY", "1G")
    make_idx_set(tmp_path / "m")
    with pytest.raises(DataError, match=r"mnist: 40 images of 3x20000x20000 \(uint8\) would take 44.7 GiB"):
        load_data("mnist", root=tmp_path / "m", input_shape=(3, 20000, 20000), fit="resize", val_split=0.0)


def _png_declaring(path: Path, width: int, height: int) -> None:
    """A 1x1 PNG whose header declares ``width`` x ``height`` (a decompression bomb's header, 70 bytes)."""
    import io
    import struct
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    raw = bytearray(buf.getvalue())
    ihdr = raw[12:29]  # "IHDR" + 13 bytes of data
    ihdr[4:12] = struct.pack(">II", width, height)
    raw[12:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("side", [10000, 20000])  # over PIL's limit; over twice it (PIL's own error)
def test_decompression_bomb_is_a_data_error(folder, side):
    _png_declaring(folder / "train" / "cat" / "bomb.png", side, side)
    with pytest.raises(DataError, match=r"bomb.png: .*\d+ pixels.* \(a decompression bomb"):
        load_data(f"imagefolder:{folder}", input_shape=(3, 16, 16), fit="resize")


def test_worker_errors_read_as_one_line(folder):
    from hrgraph.train.data import StreamData

    (folder / "train" / "cat" / "0.png").write_bytes(b"not a png")
    paths = sorted((folder / "train" / "cat").glob("*.png"))
    stream = StreamData(paths, torch.zeros(len(paths), dtype=torch.int64), (3, 16, 16), "resize", workers=1)
    with pytest.raises(DataError) as info:
        list(iterate_batches(stream, 4, device="cpu", shuffle=False, seed=0, epoch=0, mean=None, std=None))
    assert info.value.message.startswith(f"cannot read image {paths[0]}") and "Traceback" not in info.value.message


def test_crop_padding_is_checked_against_the_image_size(small):
    with pytest.raises(DataError, match=r"crop_padding 100000 must be less than the images' height and width"):
        next(batches(small, augment=["random_crop"], crop_padding=100000))


# ----------------------------------------------------------------------------- the CLI: errors, not tracebacks


TINY_SPEC = {
    "name": "tiny",
    "input": {"channels": 3, "height": 16, "width": 16},
    "nodes": [
        {"id": "stem", "kind": "conv", "channels": 4},
        {"id": "stage1", "kind": "basic", "channels": 4, "depth": 1, "stride": 2},
        {"id": "head", "kind": "classifier", "classes": 2},
    ],
    "edges": [],
}


def _spec_file(tmp_path: Path, spec=TINY_SPEC) -> Path:
    import yaml

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.mark.parametrize("case, says", [
    ("crop_padding", "crop_padding 100000 must be less than the images' height and width (16x16)"),
    ("synthetic_huge", "synthetic:100000000000: 100,000,000,000 training"),
    ("synthetic_zero", "synthetic:N takes N a positive whole number of training images, not '0'"),
    ("bomb", "(a decompression bomb"),
    ("loop", "directory loop"),
])
def test_cli_refuses_with_an_error_line_and_exit_1(tmp_path, folder, case, says):
    from click.testing import CliRunner

    from hrgraph.cli.main import main

    args = ["train", str(_spec_file(tmp_path)), "--device", "cpu", "-o", str(tmp_path / "run"), "--epochs", "1"]
    if case == "crop_padding":
        recipe = tmp_path / "r.yaml"
        recipe.write_text("data: synthetic:20\ncrop_padding: 100000\n")
        args += ["--recipe", str(recipe), "--data", "synthetic:20"]
    elif case == "synthetic_huge":
        args += ["--data", "synthetic:100000000000"]
    elif case == "synthetic_zero":
        args += ["--data", "synthetic:0"]
    elif case == "bomb":
        _png_declaring(folder / "train" / "cat" / "bomb.png", 20000, 20000)
        recipe = tmp_path / "r.yaml"
        recipe.write_text("data: synthetic\nfit: resize\naugment: []\n")
        args += ["--recipe", str(recipe), "--data", f"imagefolder:{folder}"]
    else:
        os.symlink("..", folder / "train" / "cat" / "l1")
        args += ["--data", f"imagefolder:{folder}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "error: " in result.output and says in result.output and "Traceback" not in result.output
    assert "did you mean" not in result.output


_SLOW_LOADING = """
import sys, time
import hrgraph.train.sources as sources
def slow(*args, **kwargs):
    print("loading", flush=True)
    time.sleep(120)  # a scan that would never end
sources.read_source = slow
from hrgraph.cli.main import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_while_loading_data_stops_at_once(tmp_path, signum, code):
    import subprocess
    import time

    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-c", _SLOW_LOADING, "train", str(_spec_file(tmp_path)), "--data", "synthetic",
           "--device", "cpu", "-o", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "loading"
    sent = time.monotonic()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert time.monotonic() - sent < 10 and "Traceback" not in err


# ----------------------------------------------------------------------------- the default recipe follows the data (19.15)


def _glyph_folder(root: Path, per_class: dict[str, int], seed: int) -> None:
    """Glyphs b, d, p, q (a stem and a bowl) as 12x12 PNGs: a left-right flip turns a b into a d, a p into a q."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for name in "bdpq":
            for i in range(n):
                img = Image.new("L", (12, 12), 0)
                draw = ImageDraw.Draw(img)
                dx, dy = rng.integers(-1, 2, 2)
                stem = 3 if name in "bp" else 8  # b, p: stem on the left; d, q: on the right
                bowl_x = 4 if name in "bp" else 3  # the bowl on the other side of the stem
                bowl_y = 5 if name in "bd" else 1  # b, d: bowl low; p, q: bowl high
                draw.line([(stem + dx, 1 + dy), (stem + dx, 10 + dy)], fill=255, width=1)
                draw.ellipse([(bowl_x + dx, bowl_y + dy), (bowl_x + 4 + dx, bowl_y + 5 + dy)], outline=255)
                noisy = np.asarray(img, dtype=np.float64) + rng.normal(0, 20, (12, 12))
                (root / split / name).mkdir(parents=True, exist_ok=True)
                Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(root / split / name / f"{i}.png")


@pytest.mark.slow  # three short runs: about 15 s on 2 busy cores
def test_digits_train_with_the_default_as_without_flips(tmp_path):
    from hrgraph.train.loop import train

    _glyph_folder(tmp_path / "glyphs", {"train": 40, "test": 15}, seed=0)
    spec = {**TINY_SPEC, "input": {"channels": 1, "height": 12, "width": 12},
            "nodes": [{"id": "stem", "kind": "conv", "channels": 8},
                      {"id": "stage1", "kind": "basic", "channels": 8, "depth": 1, "stride": 2},
                      {"id": "head", "kind": "classifier", "classes": 4}]}
    # Only the length is shortened (the same for every run): 8 epochs of 9 steps.
    common = {"data": f"imagefolder:{tmp_path / 'glyphs'}", "epochs": 8, "batch_size": 16}
    runs = {
        "default": (None, common),
        "no augmentation": ("recipes/paper-cifar10.yaml", {**common, "augment": []}),
        "paper (crop, flip)": ("recipes/paper-cifar10.yaml", common),
    }
    acc = {}
    for name, (recipe, overrides) in runs.items():
        summary = train(spec, recipe, out=tmp_path / name, overrides=overrides, device="cpu", threads=1)
        acc[name] = summary["test_acc1"]
    # The default recipe for a folder is the paper's without augmentation: the same computation as
    # the paper's recipe with `augment: []`, step for step, so the accuracies are equal, not close.
    assert acc["default"] == acc["no augmentation"], acc
    assert acc["default"] >= 0.9, acc
    # And the glyphs are a fair test: with flips half of b/d and p/q look like the other letter.
    assert acc["paper (crop, flip)"] <= acc["default"] - 0.2, acc
