"""Warm start (hrgraph.load_weights, train --init-from/--freeze): pretrained function kept, new edges grow."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import hrgraph
from hrgraph.errors import HrgraphError, ShapeError
from hrgraph.io.weights import freeze_loaded, load_weights

torchvision = pytest.importorskip("torchvision")

SIX = "specs/hiresnet18-imagenet.yaml"


def _random_resnet18():
    """torchvision's ResNet-18 with every weight and BN statistic random (no download), in eval mode."""
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        for m in resnet.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return resnet.eval()


@pytest.fixture(scope="module")
def resnet():
    return _random_resnet18()


@pytest.fixture(scope="module")
def x():
    # The network is fully convolutional: 64x64 keeps every pooling exact and the test fast.
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_six_edges_on_torchvision_weights_give_torchvision_logits(resnet, x):
    model = hrgraph.compile_model(SIX).eval()
    report = hrgraph.load_weights(model, resnet.state_dict())
    assert report.key_format == "torchvision"
    assert report.counts["loaded"] == len(resnet.state_dict()) and report.unused == ()
    assert sorted(report.silenced) == sorted(e.name for e in model.spec.edges) and len(report.silenced) == 6
    assert report.not_silent == ()
    assert report.new and all(k.startswith("projections.") for k in report.new)
    with torch.no_grad():
        want, got = resnet(x), model(x)
    assert ((got - want).norm() / want.norm()).item() < 1e-5


def test_a_train_step_grows_the_silent_edges(resnet, x):
    model = hrgraph.compile_model(SIX)
    load_weights(model, resnet)  # a module is a source too
    bn = model.projections["stem__stage4"].bn
    assert torch.count_nonzero(bn.weight) == 0
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    torch.nn.functional.cross_entropy(model(x), torch.tensor([1, 2])).backward()
    assert bn.weight.grad is not None and torch.count_nonzero(bn.weight.grad) > 0
    opt.step()
    assert torch.count_nonzero(bn.weight) > 0


def test_freeze_loaded_leaves_only_new_parameters_trainable(resnet):
    model = hrgraph.compile_model(SIX)
    report = load_weights(model, resnet.state_dict())
    frozen = freeze_loaded(model, report)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert frozen == len([n for n, _ in resnet.named_parameters()])
    assert trainable and all(n.startswith("projections.") for n in trainable)


def test_hrgraph_names_ddp_prefix_and_checkpoint_file(tmp_path, x):
    torch.manual_seed(0)
    plain = hrgraph.compile_model("specs/resnet18.yaml").eval()
    prefixed = {f"module.{k}": v for k, v in plain.state_dict().items()}
    model = hrgraph.compile_model("specs/hiresnet18.yaml").eval()
    report = load_weights(model, prefixed)
    assert report.key_format == "hrgraph" and len(report.silenced) == 6
    with torch.no_grad():
        torch.testing.assert_close(model(x[:, :, :32, :32]), plain(x[:, :, :32, :32]), rtol=0, atol=0)
    # A checkpoint of the grown model loads back whole: nothing new, nothing silenced.
    hrgraph.save_checkpoint(model, tmp_path / "m.pt")
    again = hrgraph.compile_model("specs/hiresnet18.yaml")
    back = load_weights(again, tmp_path / "m.pt")
    assert back.new == () and back.silenced == () and back.unused == ()


def test_scalar_gates_start_at_zero_and_identity_edges_are_reported():
    spec = {"extends": "specs/resnet18.yaml", "edges": [
        {"from": "stem", "to": "stage3", "gate": "scalar"},
        {"from": "stem", "to": "stage1"},
    ]}
    model = hrgraph.compile_model(spec)
    report = load_weights(model, hrgraph.compile_model("specs/resnet18.yaml").state_dict())
    assert model.gates["stem__stage3"].weight.item() == 0.0
    assert "stem->stage3" in report.silenced
    # stem and stage1 have the same shape: an identity edge, nothing to zero.
    assert report.not_silent == ("stem->stage1",)
    assert "cannot start silent" in report.describe()


def test_shape_mismatch_is_an_error_listing_it_unless_skipped(resnet):
    model = hrgraph.compile_model({"extends": SIX, "nodes": [{"id": "head", "kind": "classifier", "classes": 10}]})
    with pytest.raises(ShapeError, match=r"2 tensors do not fit.*nodes\.head\.fc\.weight: \(1000, 512\) -> \(10, 512\)"):
        load_weights(model, resnet.state_dict())
    report = load_weights(model, resnet.state_dict(), skip_mismatched=True)
    assert len(report.mismatched) == 2 and "nodes.head.fc.bias" in report.new


def test_unknown_keys_and_unreadable_files_are_errors(tmp_path):
    model = hrgraph.compile_model("specs/resnet18.yaml")
    with pytest.raises(HrgraphError, match="neither hrgraph's"):
        load_weights(model, {"encoder.weight": torch.zeros(1)})
    bad = tmp_path / "bad.pt"
    bad.write_text("not torch")
    with pytest.raises(HrgraphError, match="cannot read weights"):
        load_weights(model, bad)
    with pytest.raises(HrgraphError, match="no checkpoint in this folder"):
        load_weights(model, tmp_path)


def test_cli_train_init_from_a_run_folder_writes_init_json(tmp_path):
    from hrgraph.cli.main import main

    common = ["--data", "synthetic", "--epochs", "1", "--batch-size", "25", "--width-mult", "0.125",
              "--limit-train", "50", "--limit-val", "50", "--device", "cpu"]
    runner = CliRunner()
    first = runner.invoke(main, ["train", "specs/resnet18.yaml", *common, "-o", str(tmp_path / "base")])
    assert first.exit_code == 0, first.output
    grown = tmp_path / "grown"
    result = runner.invoke(main, ["train", "specs/hiresnet18.yaml", *common, "-o", str(grown),
                                  "--init-from", str(tmp_path / "base"), "--freeze", "loaded"])
    assert result.exit_code == 0, result.output
    init = json.loads((grown / "init.json").read_text())
    assert init["freeze"] == "loaded" and init["counts"]["silenced"] == 6 and init["counts"]["unused"] == 0
    assert init["source"].endswith("best.pt")
    # Frozen: the trained stem equals the base run's.
    base = torch.load(tmp_path / "base" / "checkpoints" / "best.pt", weights_only=True)["model"]
    after = torch.load(grown / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert torch.equal(base["nodes.stem.conv.weight"], after["nodes.stem.conv.weight"])
    assert not torch.equal(after["projections.stem__stage4.bn.weight"], torch.zeros_like(after["projections.stem__stage4.bn.weight"]))


def test_cli_freeze_without_init_from_is_refused(tmp_path):
    from hrgraph.cli.main import main

    result = CliRunner().invoke(main, ["train", "specs/resnet18.yaml", "--data", "synthetic", "--freeze", "loaded",
                                       "--width-mult", "0.125", "--limit-train", "10", "-o", str(tmp_path / "r")])
    assert result.exit_code == 1 and "--freeze needs --init-from" in result.output
