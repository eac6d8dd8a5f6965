"""The CORnet reference models: they run, and their state_dicts are the official checkpoints'.

The expected keys and shapes below are written down from a reading of the official code
(github.com/dicarlolab/CORnet, cornet/cornet_{z,rt,s}.py), not derived from the reference, so a
renamed module, a lost bias or a wrong channel count in tests/cornet_reference.py fails here.
"""

from __future__ import annotations

import pytest
import torch

from .cornet_reference import cornet_rt, cornet_s, cornet_z

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn(prefix: str, channels: int) -> list[tuple[str, tuple[int, ...]]]:
    shapes = [(channels,)] * 4 + [()]
    return [(f"{prefix}.{field}", shape) for field, shape in zip(BN, shapes)]


DECODER = [("decoder.linear.weight", (1000, 512)), ("decoder.linear.bias", (1000,))]


def official_z_keys() -> list[tuple[str, tuple[int, ...]]]:
    # CORblock_Z: one biased conv per area (V1 7x7 from RGB, the others 3x3).
    areas = [("V1", 3, 64, 7), ("V2", 64, 128, 3), ("V4", 128, 256, 3), ("IT", 256, 512, 3)]
    keys = []
    for area, cin, cout, k in areas:
        keys += [(f"{area}.conv.weight", (cout, cin, k, k)), (f"{area}.conv.bias", (cout,))]
    return keys + DECODER


def official_rt_keys() -> list[tuple[str, tuple[int, ...]]]:
    # CORblock_RT: conv_input (biased) + GroupNorm, conv1 (no bias) + GroupNorm.
    areas = [("V1", 3, 64, 7), ("V2", 64, 128, 3), ("V4", 128, 256, 3), ("IT", 256, 512, 3)]
    keys = []
    for area, cin, cout, k in areas:
        keys += [
            (f"{area}.conv_input.weight", (cout, cin, k, k)),
            (f"{area}.conv_input.bias", (cout,)),
            (f"{area}.norm_input.weight", (cout,)),
            (f"{area}.norm_input.bias", (cout,)),
            (f"{area}.conv1.weight", (cout, cout, 3, 3)),
            (f"{area}.norm1.weight", (cout,)),
            (f"{area}.norm1.bias", (cout,)),
        ]
    return keys + DECODER


def official_s_keys() -> list[tuple[str, tuple[int, ...]]]:
    keys = [("V1.conv1.weight", (64, 3, 7, 7)), *_bn("V1.norm1", 64)]
    keys += [("V1.conv2.weight", (64, 64, 3, 3)), *_bn("V1.norm2", 64)]
    # CORblock_S: bias-free convs; the per-step norms are registered last, step by step.
    for area, cin, cout, times in [("V2", 64, 128, 2), ("V4", 128, 256, 4), ("IT", 256, 512, 2)]:
        wide = 4 * cout
        keys += [
            (f"{area}.conv_input.weight", (cout, cin, 1, 1)),
            (f"{area}.skip.weight", (cout, cout, 1, 1)),
            *_bn(f"{area}.norm_skip", cout),
            (f"{area}.conv1.weight", (wide, cout, 1, 1)),
            (f"{area}.conv2.weight", (wide, wide, 3, 3)),
            (f"{area}.conv3.weight", (cout, wide, 1, 1)),
        ]
        for t in range(times):
            keys += _bn(f"{area}.norm1_{t}", wide) + _bn(f"{area}.norm2_{t}", wide)
            keys += _bn(f"{area}.norm3_{t}", cout)
    return keys + DECODER


CASES = {
    "Z": (cornet_z, official_z_keys),
    "RT": (cornet_rt, official_rt_keys),
    "S": (cornet_s, official_s_keys),
}


@pytest.mark.parametrize(
    "name", ["Z", "RT", pytest.param("S", marks=pytest.mark.slow)]  # S: ~16 GMACs at 224
)
def test_forward_gives_imagenet_logits(name):
    model = CASES[name][0]().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1000)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", CASES)
def test_state_dict_keys_and_shapes_are_official(name):
    build, expected = CASES[name]
    got = [(k, tuple(v.shape)) for k, v in build().state_dict().items()]
    assert got == expected()  # names, order and shapes


@pytest.mark.parametrize("name", CASES)
def test_official_checkpoint_loads_strict_after_stripping_module_prefix(name):
    build, expected = CASES[name]
    torch.manual_seed(0)
    # What the published .pth holds under 'state_dict': a DataParallel model's keys.
    ckpt = {f"module.{k}": torch.randn(shape) for k, shape in expected()}
    stripped = {k.removeprefix("module."): v for k, v in ckpt.items()}
    model = build()
    model.load_state_dict(stripped, strict=True)
    assert torch.equal(model.state_dict()["decoder.linear.bias"], ckpt["module.decoder.linear.bias"])


def test_s_checkpoint_without_num_batches_tracked_loads_strict():
    # A PyTorch-0.4-era checkpoint may lack num_batches_tracked; a plain dict (no _metadata)
    # lets BatchNorm fill it with 0, so strict loading still succeeds.
    keys = [(k, s) for k, s in official_s_keys() if not k.endswith("num_batches_tracked")]
    model = cornet_s()
    model.load_state_dict({k: torch.ones(s) for k, s in keys}, strict=True)
    assert bool((model.IT.norm3_1.running_var == 1).all())  # the checkpoint's values arrived


def _area_outputs(model, image):
    """Every call of each area's ``output`` hook, in order: {area: [tensor, ...]}."""
    seen: dict[str, list[torch.Tensor]] = {}
    handles = []

    def record(area):
        def hook(_module, _inputs, out):
            seen.setdefault(area, []).append(out.clone())  # clone: later ReLUs run in place

        return hook

    for area in ("V1", "V2", "V4", "IT"):
        handles.append(getattr(model, area).output.register_forward_hook(record(area)))
    with torch.no_grad():
        model(image)
    for h in handles:
        h.remove()
    return seen


def test_rt_unrolls_biologically_with_a_zero_input_at_step_0():
    torch.manual_seed(0)
    model = cornet_rt(times=5).eval()
    for area in ("V2", "V4", "IT"):  # trained GroupNorm biases are not zero; make them visible
        torch.nn.init.normal_(getattr(model, area).norm1.bias)
    a, b = torch.randn(2, 1, 3, 224, 224)
    out_a, out_b = _area_outputs(model, a), _area_outputs(model, b)
    sides = {"V1": 56, "V2": 28, "V4": 14, "IT": 7}
    for area, outs in out_a.items():
        assert len(outs) == 5  # every area computes at every step, step 0 included
        assert outs[-1].shape[-1] == sides[area]
    # Step 0 above V1: relu(GroupNorm(conv1(0))) = relu(norm1.bias), whatever the image.
    for area in ("V2", "V4", "IT"):
        bias = torch.relu(getattr(model, area).norm1.bias).view(1, -1, 1, 1)
        assert torch.allclose(out_a[area][0], bias.expand_as(out_a[area][0]))
    # The image reaches area k (V1=0) at step k: earlier steps do not depend on it.
    for k, area in enumerate(("V1", "V2", "V4", "IT")):
        for t in range(5):
            same = torch.equal(out_a[area][t], out_b[area][t])
            assert same == (t < k), (area, t)


def test_s_downsamples_on_the_first_step_only():
    # S, unlike RT, runs at any size; 64x64 keeps the test fast (sides 16, 8, 4, 2).
    model = cornet_s().eval()
    outs = _area_outputs(model, torch.randn(1, 3, 64, 64))
    expected = {"V1": (1, 64, 16, 16), "V2": (1, 128, 8, 8), "V4": (1, 256, 4, 4),
                "IT": (1, 512, 2, 2)}
    for area, times in {"V1": 1, "V2": 2, "V4": 4, "IT": 2}.items():
        assert [tuple(o.shape) for o in outs[area]] == [expected[area]] * times
