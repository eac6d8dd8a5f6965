"""The generated forward: same outputs as a plain interpreter of the graph, memory released early, round-trips."""

from __future__ import annotations

import copy
import io
import pickle
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch

import hrgraph
from hrgraph.generate import random_dag_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").rglob("*.yaml"))  # specs/examples/ too


def reference_forward(model: hrgraph.HrNet, x: torch.Tensor, disabled=frozenset()) -> torch.Tensor:
    """Walk the plan node by node, as one would without a generated forward."""
    plan, spec = model.plan, model.spec
    values: dict[str, torch.Tensor] = {}
    for node_id in plan.order:
        position = spec.node_index[node_id]
        block = spec.nodes[position]
        source = spec.main_input(position)
        inp = x if source is None else values[source]
        merge = plan.merges.get(node_id)
        if merge is not None:  # a list input, merged before the block
            terms = [values[p.source] if p.identity else model.inputs[p.module_name](values[p.source]) for p in merge.inputs]
            if merge.aggregate == "concat":
                inp = torch.cat(terms, dim=1)
            elif merge.aggregate == "weighted":
                w = 2 * torch.sigmoid(model.aggregates[node_id].weight)
                inp = sum(w[i] * t for i, t in enumerate(terms))
            else:
                inp = torch.stack(terms).sum(0) / (len(terms) if merge.aggregate == "mean" else 1)
        sums, cats = [], []
        for p in plan.incoming[node_id]:
            if p.edge.key in disabled:
                continue
            value = values[p.source] if p.identity else model.projections[p.module_name](values[p.source])
            if p.gate != "none":
                value = model.gates[p.module_name](value)
            (sums if p.merge == "sum" else cats).append(value)
        if sums and spec.residuals.entry == "pre_activation" and block.has_final_activation:
            out = model.nodes[node_id](inp, torch.stack(sums).sum(0))
        else:
            out = model.nodes[node_id](inp)
            if sums:
                out = out + torch.stack(sums).sum(0)
                if spec.residuals.activation == "relu":
                    out = torch.relu(out)
        if cats:
            out = torch.cat([out, *cats], dim=1)
        values[node_id] = out
    return values[spec.nodes[-1].id]


def _random(nodes=12, seed=0, residuals=None, **kw) -> dict:
    data = random_dag_spec(nodes, seed=seed, **kw)
    if residuals:
        data["residuals"] = residuals
    return data


RANDOM = {
    "basic": _random(seed=0),
    "basic-wide-fan-in": _random(16, seed=1, fan_in=4, window=12),
    "concat": _random(seed=2, merge_concat=0.5),
    "pre-activation": _random(seed=3, residuals={"entry": "pre_activation"}),
    "pre-activation-concat": _random(seed=4, residuals={"entry": "pre_activation"}, merge_concat=0.3),
    "post-relu": _random(seed=5, residuals={"activation": "relu"}, merge_concat=0.3),
    "plain-resnext": _random(seed=6, kinds=("plain", "resnext"), channels=(8, 16)),
    "merges-and-gates": {
        "input": {"channels": 3, "height": 16, "width": 16},
        "residuals": {"entry": "pre_activation"},
        "nodes": [
            {"id": "stem", "kind": "conv", "channels": 8},
            {"id": "a", "kind": "sepconv", "channels": 16, "stride": 2},
            {"id": "b", "kind": "basic", "channels": 16, "depth": 1, "input": ["a", "stem"], "aggregate": "weighted"},
            {"id": "c", "kind": "sepconv", "channels": 16, "input": ["b", "a", "stem"], "aggregate": "mean"},
            {"id": "d", "kind": "identity", "input": ["c", "b"], "aggregate": "concat"},
            {"id": "e", "kind": "basic", "channels": 16, "depth": 1, "input": ["d", "stem"]},
            {"id": "head", "kind": "classifier", "classes": 3},
        ],
        "edges": [
            {"from": "stem", "to": "b", "gate": "sigmoid"},
            {"from": "a", "to": "c", "gate": "scalar"},
            {"from": "a", "to": "e"},
            {"from": "stem", "to": "d", "merge": "concat"},
        ],
    },
}


def _batch(model: hrgraph.HrNet, n: int = 2, size: int | None = None) -> torch.Tensor:
    c, h, w = model.plan.input_shape
    return torch.randn(n, c, size or h, size or w, generator=torch.Generator().manual_seed(0))


def _check_against_reference(model: hrgraph.HrNet, size: int | None = None) -> None:
    model.eval()
    x = _batch(model, size=size)
    with torch.no_grad():
        # Merge weights and gates start at exactly a sum; move them so that they are really compared.
        for q in [*model.aggregates.parameters(), *model.gates.parameters()]:
            q.normal_(generator=torch.Generator().manual_seed(1))
        got = model(x)
        want = reference_forward(model, x, model._disabled)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_forward_matches_reference_for_every_spec(path):
    spec = hrgraph.load_spec(path)
    if spec.time is not None and spec.time.scheme == "biological":
        pytest.skip("unrolled over steps: the node walk below has no time; tests/test_time.py checks it")
    torch.manual_seed(0)
    model = hrgraph.compile_model(spec)
    # ImageNet-form specs are checked at a smaller size to keep the suite fast;
    # the graph and its code are the same at any size the spec accepts.
    _check_against_reference(model, size=64 if model.plan.input_shape[1] > 64 else None)


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_forward_matches_reference_for_random_dags(name):
    torch.manual_seed(0)
    _check_against_reference(hrgraph.compile_model(RANDOM[name]))


def test_generated_code_has_one_call_per_node_and_projection():
    model = hrgraph.compile_model(RANDOM["concat"])
    for node_id in model.plan.order:
        assert model.code.count(f"nodes.{node_id}(") == 1
    for name in model.projections:
        assert model.code.count(f"projections.{name}(") == 1


def test_set_edges_regenerates_code_and_keeps_state_dict():
    torch.manual_seed(0)
    model = hrgraph.compile_model(ROOT / "specs/hiresnet18.yaml")
    keys = list(model.state_dict())
    model.set_edges(disabled=["stem:stage4", "stage1->stage3"])
    assert "projections.stem__stage4(" not in model.code
    assert "projections.stage1__stage3(" not in model.code
    assert "projections.stage2__stage4(" in model.code
    assert list(model.state_dict()) == keys
    _check_against_reference(model)
    model.set_edges()
    assert "projections.stem__stage4(" in model.code
    _check_against_reference(model)


def _last_consumer(model: hrgraph.HrNet) -> dict[str, int]:
    """Position in plan.order of the last node that reads each node's value (main input or live edge)."""
    spec, plan = model.spec, model.plan
    position = {node_id: k for k, node_id in enumerate(plan.order)}
    last: dict[str, int] = {}
    for node_id in plan.order:
        source = spec.main_input(spec.node_index[node_id])
        readers = [source] + [p.source for p in plan.incoming[node_id] if p.edge.key not in model._disabled]
        for r in readers:
            if r is not None:
                last[r] = max(last.get(r, -1), position[node_id])
    return last


@pytest.mark.parametrize("name", ["hiresnet18", "hiresnet18-masked", "concat", "pre-activation", "post-relu"])
def test_inference_releases_each_value_right_after_its_last_consumer(name):
    """Deterministic (reference counting): weakrefs to every node's value, checked as each node starts."""
    spec = ROOT / "specs/hiresnet18.yaml" if name.startswith("hiresnet18") else RANDOM[name]
    model = hrgraph.compile_model(spec).eval()
    if name == "hiresnet18-masked":
        # stem's last reader becomes stage3: it must be freed before stage4 runs.
        model.set_edges(disabled=["stem:stage4"])
    spec = model.spec
    last = _last_consumer(model)
    values: dict[str, weakref.ref] = {}
    seen_dead: list[tuple[int, str]] = []
    failures: list[str] = []

    def record(source):
        def hook(module, args):
            if source is not None and source not in values:
                values[source] = weakref.ref(args[0])

        return hook

    def check(k):
        def hook(module, args):
            for node_id, ref in values.items():
                alive = ref() is not None
                if alive != (last[node_id] >= k):
                    failures.append(f"{node_id} alive={alive} when node #{k} ({model.plan.order[k]}) starts")
                if not alive:
                    seen_dead.append((k, node_id))

        return hook

    handles = []
    for k, node_id in enumerate(model.plan.order):
        module = model.nodes[node_id]
        handles.append(module.register_forward_pre_hook(check(k)))
        handles.append(module.register_forward_pre_hook(record(spec.main_input(spec.node_index[node_id]))))
    for p in model.plan.projections.values():
        if not p.identity:
            handles.append(model.projections[p.module_name].register_forward_pre_hook(record(p.source)))
    with torch.no_grad():
        model(_batch(model))
    for h in handles:
        h.remove()
    assert not failures, failures
    # The check is not vacuous: most values were seen dead before the forward returned.
    assert len({node_id for _, node_id in seen_dead}) >= len(model.plan.order) // 2


def _saved_for_backward(model: torch.nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(count, bytes) of distinct storages autograd saves during one training forward."""
    storages: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum()
    return len(storages), sum(storages.values())


def test_training_saves_exactly_what_torchvision_resnet18_saves():
    torchvision = pytest.importorskip("torchvision")
    ours = hrgraph.compile_model(ROOT / "specs/resnet18-imagenet.yaml").train()
    theirs = torchvision.models.resnet18().train()
    x = torch.randn(2, 3, 64, 64)
    assert _saved_for_backward(ours, x) == _saved_for_backward(theirs, x)


def test_backward_matches_reference():
    torch.manual_seed(0)
    model = hrgraph.compile_model(RANDOM["post-relu"]).train()
    x = _batch(model)
    model(x).square().sum().backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    reference_forward(model, x).square().sum().backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(got[name], p.grad, rtol=1e-3, atol=1e-5, msg=name)


# -- round trips ------------------------------------------------------------------


@pytest.fixture(scope="module")
def hires():
    torch.manual_seed(0)
    return hrgraph.compile_model(ROOT / "specs/hiresnet18.yaml").set_edges(disabled=["stem:stage4"]).eval()


def _same_model(a: hrgraph.HrNet, b: hrgraph.HrNet) -> None:
    assert b.code == a.code
    assert b.disabled_edges == a.disabled_edges
    assert list(b.state_dict()) == list(a.state_dict())
    x = _batch(a)
    with torch.no_grad():
        torch.testing.assert_close(b.eval()(x), a(x))


def test_pickle_round_trip(hires):
    _same_model(hires, pickle.loads(pickle.dumps(hires)))


def test_deepcopy_is_independent(hires):
    clone = copy.deepcopy(hires)
    _same_model(hires, clone)
    clone.set_edges()
    assert hires.disabled_edges == ["stem->stage4"]
    with torch.no_grad():
        clone.nodes.stem.conv.weight.zero_()
    assert hires.nodes.stem.conv.weight.abs().sum() > 0


def test_torch_save_whole_model_round_trip(hires):
    buffer = io.BytesIO()
    torch.save(hires, buffer)
    buffer.seek(0)
    _same_model(hires, torch.load(buffer, weights_only=False))


def test_spec_and_shape_paths_do_not_import_torch():
    code = (
        "import sys, hrgraph\n"
        "plan = hrgraph.infer_shapes(hrgraph.load_spec('specs/hiresnet18.yaml'))\n"
        "hrgraph.count_params(plan.spec)\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_generated_source_is_inspectable_and_shared():
    import inspect

    a = hrgraph.compile_model(RANDOM["basic"])
    b = hrgraph.compile_model(RANDOM["basic"])
    assert inspect.getsource(a._forward) == a.code
    # Same code, same compiled function: set_edges sweeps do not recompile or grow linecache.
    assert a._forward is b._forward


def test_compile_model_leaves_garbage_collection_as_it_was():
    import gc

    hrgraph.compile_model(RANDOM["basic"])
    assert gc.isenabled()
    gc.disable()
    try:
        hrgraph.compile_model(RANDOM["basic"])
        assert not gc.isenabled()
    finally:
        gc.enable()
