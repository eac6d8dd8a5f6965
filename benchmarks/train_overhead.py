"""What the training harness adds to a bare ``model(x); loss.backward(); opt.step()`` loop.

Both contenders train the same spec on the same in-memory uint8 data (the
``synthetic`` set as :func:`hrgraph.train.data.load_data` holds it), one epoch
each, interleaved in one process (bare, harness, harness, bare, ...), and the
ratio of their median images per second is reported.  The harness's figure is
the ``images_per_s`` that ``hrgraph train`` writes to metrics.csv: the training
epoch only, as in the bare loop (validation, checkpoints and the curves figure
come after it and are timed separately, per epoch).  Augmentation is off in
both; a third contender shows what random crop + flip on the batch costs.

    python benchmarks/train_overhead.py            # about 3 min on 2 idle cores
    python benchmarks/train_overhead.py --quick    # a smoke test of the script

Writes benchmarks/train_overhead.json and prints a Markdown table (copied into
docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import hrgraph
from hrgraph.edit.match import scale_widths
from hrgraph.train.data import load_data
from hrgraph.train.loop import train

ROOT = Path(__file__).resolve().parent.parent


def bare_epoch(model: nn.Module, opt: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
               batch: int, mean: torch.Tensor, std: torch.Tensor, seed: int) -> float:
    """Images per second of one epoch of the plainest loop over in-memory uint8 data."""
    crit = nn.CrossEntropyLoss()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    start = time.perf_counter()
    for s in range(0, len(images), batch):
        idx = order[s:s + batch]
        x = images[idx].float().div_(255).sub_(mean).div_(std)
        loss = crit(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return len(images) / (time.perf_counter() - start)


def harness_epoch(spec, recipe: dict, out: Path, limit: int) -> tuple[float, float]:
    """(images/s of the training epoch, seconds of the whole run) of ``hrgraph.train.train``."""
    start = time.perf_counter()
    train(spec, recipe, out=out, device="cpu", limit_train=limit, limit_val=200)
    total = time.perf_counter() - start
    row = (out / "metrics.csv").read_text().strip().split("\n")[-1].split(",")
    return float(row[-1]), total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--spec", default=str(ROOT / "specs" / "hiresnet18.yaml"))
    parser.add_argument("--width", type=float, default=0.25)
    cfg = parser.parse_args(argv)
    repeats, n = (1, 300) if cfg.quick else (7, 3000)
    spec = scale_widths(cfg.spec, cfg.width)
    data_name = f"synthetic:{int(n / 0.9) + 1}"  # n training images after the 10% hold-out
    recipe = {"data": data_name, "epochs": 1, "batch_size": 100, "val_split": 0.1, "augment": [],
              "optimizer": {"name": "adam", "lr": 0.01}, "schedule": {"name": "constant"}}
    plan = hrgraph.infer_shapes(spec)
    data = load_data(data_name, root=None, input_shape=plan.input_shape, val_split=0.1, seed=0, fit="none",
                     num_classes=plan.output_shape[0])
    images, labels = data.train.images[:n], data.train.labels[:n]
    n = len(images)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    torch.manual_seed(0)
    model = hrgraph.compile_model(spec)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    results: dict[str, list[float]] = {"bare": [], "harness": [], "harness+augment": [], "harness_total_s": []}
    with tempfile.TemporaryDirectory() as tmp:
        bare_epoch(model, opt, images, labels, 100, mean, std, seed=99)  # warm-up
        for r in range(repeats):
            order = ["bare", "harness", "harness+augment"]
            for name in order if r % 2 == 0 else order[::-1]:
                if name == "bare":
                    results["bare"].append(bare_epoch(model, opt, images, labels, 100, mean, std, seed=r))
                else:
                    aug = {"augment": ["random_crop", "hflip"]} if name.endswith("augment") else {}
                    rate, total = harness_epoch(spec, {**recipe, **aug}, Path(tmp) / f"{name}{r}", n)
                    results[name].append(rate)
                    if name == "harness":
                        results["harness_total_s"].append(total)
    med = {k: statistics.median(v) for k, v in results.items()}
    ratios = [h / b for h, b in zip(results["harness"], results["bare"])]
    out = {
        "spec": f"{Path(cfg.spec).name} x{cfg.width:g}", "images_per_epoch": n, "batch": 100, "repeats": repeats,
        "threads": torch.get_num_threads(), "torch": str(torch.__version__),
        "images_per_s": med, "ratio_harness_over_bare": med["harness"] / med["bare"],
        "ratio_quartiles": statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios,
        "ratio_augment_over_bare": med["harness+augment"] / med["bare"], "raw": results,
    }
    if not cfg.quick:
        (ROOT / "benchmarks" / "train_overhead.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"| measured ({out['spec']}, {n} images/epoch, batch 100, {repeats} interleaved rounds) | figure | target |")
    print("|---|---|---|")
    print(f"| training epoch images/s, `hrgraph train` / bare loop | {out['ratio_harness_over_bare']:.3f} "
          f"({med['harness']:.0f} vs {med['bare']:.0f} img/s) | >= 0.97 |")
    print(f"| same, with random crop + flip on the batch | {out['ratio_augment_over_bare']:.3f} | (cost of augmentation) |")
    print(f"| whole 1-epoch run (data, build, epoch, val, checkpoints, figure), median | {med['harness_total_s']:.1f} s | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
