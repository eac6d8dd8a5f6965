"""Every spec in specs/ compiles, runs forward and backward, and matches its shape plan."""

from __future__ import annotations

import pytest
import torch

import hrgraph
from hrgraph.io.interop import from_torchvision_resnet

from .conftest import ROOT, SPECS, spec_id


@pytest.fixture(scope="module", params=SPECS, ids=spec_id)
def compiled(request):
    torch.manual_seed(0)
    return hrgraph.compile_model(request.param)


def test_forward_backward(compiled):
    plan = compiled.plan
    # ImageNet-size specs are run at a smaller input: the test is about wiring, not size.
    shape = plan.input_shape if plan.input_shape[1] <= 64 else (plan.input_shape[0], 64, 64)
    model = hrgraph.compile_model(compiled.spec, input_shape=shape) if shape != plan.input_shape else compiled
    model.train()
    x = torch.randn(2, *shape)
    y = model(x)
    assert y.shape == (2, plan.output_shape[0])
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a finite gradient: {missing[:5]}"
    # Every parameter is reached: a zero gradient everywhere would mean a dead branch.
    dead = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert not dead, f"parameters with an all-zero gradient: {dead[:5]}"


def test_params_match_shapes(compiled):
    built = sum(p.numel() for p in compiled.parameters())
    assert built == compiled.plan.params == hrgraph.count_params(compiled.spec)


def test_state_dict_names_follow_ids(compiled):
    keys = compiled.state_dict().keys()
    for node in compiled.spec.nodes:
        if compiled.plan.nodes[node.id].params:
            assert any(k.startswith(f"nodes.{node.id}.") for k in keys), node.id
    for p in compiled.plan.projections.values():
        if not p.identity and p.conv is not None:
            assert f"projections.{p.module_name}.conv.weight" in keys


def test_fingerprint_travels(compiled, tmp_path):
    path = tmp_path / "model.pt"
    hrgraph.save_checkpoint(compiled, path, epoch=3)
    model, payload = hrgraph.load_checkpoint(path)
    assert model.fingerprint == compiled.fingerprint == payload["fingerprint"]
    assert payload["epoch"] == 3
    for (k, a), (k2, b) in zip(compiled.state_dict().items(), model.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def _tv_resnet18():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    return torchvision.models.resnet18()


def test_imagenet_resnet18_matches_torchvision_parameter_count():
    reference = _tv_resnet18()
    expected = sum(p.numel() for p in reference.parameters())
    assert expected == 11_689_512
    spec = hrgraph.load_spec(ROOT / "specs/resnet18-imagenet.yaml")
    assert hrgraph.count_params(spec) == expected
    assert sum(p.numel() for p in hrgraph.compile_model(spec).parameters()) == expected


@pytest.mark.slow
def test_imagenet_resnet18_same_logits_as_torchvision():
    reference = _tv_resnet18()
    # Non-trivial BN statistics, so that eval mode really exercises them.
    with torch.no_grad():
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    model = hrgraph.compile_model(ROOT / "specs/resnet18-imagenet.yaml")
    model.load_state_dict(from_torchvision_resnet(reference.state_dict()), strict=True)
    reference.eval()
    model.eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (model(x) - reference(x)).abs().max().item()
    assert diff <= 1e-5


def _projection_params(cin: int, cout: int) -> int:
    return cin * cout + 2 * cout  # 1x1 conv without bias + BN weight and bias


def test_hiresnet18_params_are_resnet18_plus_projections():
    channels = {"stem": 64, "stage1": 64, "stage2": 128, "stage3": 256, "stage4": 512}
    edges = [("stem", "stage2"), ("stem", "stage3"), ("stem", "stage4"),
             ("stage1", "stage3"), ("stage1", "stage4"), ("stage2", "stage4")]
    expected = hrgraph.count_params(hrgraph.load_spec("specs/resnet18.yaml")) + sum(
        _projection_params(channels[a], channels[b]) for a, b in edges
    )
    hires = hrgraph.load_spec("specs/hiresnet18.yaml")
    assert {e.key for e in hires.edges} == set(edges)
    assert hrgraph.count_params(hires) == expected
    assert sum(p.numel() for p in hrgraph.compile_model(hires).parameters()) == expected


def test_zero_init_residual_zeroes_last_bn_of_every_unit():
    spec = hrgraph.load_spec("specs/hiresnet18.yaml").replace(zero_init_residual=True)
    model = hrgraph.compile_model(spec)
    last_bns = [m.bn2 for m in model.modules() if type(m).__name__ == "BasicUnit"]
    last_bns += [m.bn for m in model.projections.values()]
    assert last_bns and all(torch.count_nonzero(bn.weight) == 0 for bn in last_bns)


def test_default_init_is_kaiming_fan_out():
    model = hrgraph.compile_model("specs/resnet18.yaml")
    w = model.nodes.stage4[0].conv1.weight
    expected_std = (2.0 / (w.shape[0] * w.shape[2] * w.shape[3])) ** 0.5
    assert abs(w.std().item() / expected_std - 1) < 0.05


def test_repr_is_readable():
    text = repr(hrgraph.compile_model("specs/hiresnet18.yaml"))
    assert "fingerprint=" in text and "(stem__stage4): ProjectionModule(" in text
