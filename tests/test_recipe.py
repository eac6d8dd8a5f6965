"""Training recipes: the repo's recipe files, extends, strict values, located errors, overrides, lr_at."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
import yaml

from hrgraph.errors import HrgraphError, RecipeError
from hrgraph.train.recipe import FLAG_KEYS, Recipe, apply_overrides, load_recipe, lr_at

from .conftest import ROOT

RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))

BASE = """\
name: base
data: cifar10
epochs: 10
optimizer:
  name: adam
  lr: 0.01
  weight_decay: 0.0005
schedule: {name: step, every: 5}
augment: [random_crop, hflip]
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(source, **kwargs) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        load_recipe(source, **kwargs)
    return info.value


# -- the repo's recipes -------------------------------------------------------------


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_file_loads_and_round_trips(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem and recipe.path == str(path)
    assert load_recipe(recipe.to_dict()) == recipe
    assert load_recipe(yaml.safe_dump(recipe.to_dict())) == recipe


def test_paper_recipes_follow_the_paper():
    cifar10 = load_recipe(ROOT / "recipes/paper-cifar10.yaml")
    assert (cifar10.optimizer.name, cifar10.optimizer.lr, cifar10.batch_size, cifar10.epochs) == ("adam", 0.01, 100, 80)
    assert (cifar10.schedule.name, cifar10.schedule.every, cifar10.schedule.factor) == ("step", 20, 0.5)
    assert (cifar10.val_split, cifar10.data) == (0.1, "cifar10")
    expected = {"paper-cifar100": ("cifar100", 100), "paper-tiny-imagenet": ("tiny-imagenet", 120)}
    for name, (data, epochs) in expected.items():
        child = load_recipe(ROOT / f"recipes/{name}.yaml")
        assert (child.data, child.epochs) == (data, epochs)
        # Everything else comes from the CIFAR-10 recipe.
        assert apply_overrides(child, {"name": cifar10.name, "description": cifar10.description, "data": "cifar10",
                                       "epochs": 80}) == cifar10


def test_cpu_recipe_keeps_the_paper_schedule_shape():
    cpu = load_recipe(ROOT / "recipes/cpu-fashion-mnist.yaml")
    assert cpu.schedule.every * 4 == cpu.epochs  # halved every quarter of the run
    assert [lr_at(cpu, e) for e in range(0, cpu.epochs, cpu.schedule.every)] == [0.01, 0.005, 0.0025, 0.00125]
    assert (cpu.fit, cpu.train_subset, cpu.data, cpu.batch_size) == ("pad", 10000, "fashion-mnist", 100)


# -- loading from every source ---------------------------------------------------------


def test_load_from_path_text_dict_and_recipe(tmp_path):
    path = write(tmp_path, "base.yaml", BASE)
    recipes = [load_recipe(path), load_recipe(str(path)), load_recipe(BASE), load_recipe(yaml.safe_load(BASE))]
    assert all(r == recipes[0] for r in recipes)
    assert recipes[0].optimizer.weight_decay == 0.0005 and recipes[0].batch_size == 100
    assert load_recipe(recipes[0]) is recipes[0]
    assert recipes[0].locate("optimizer", "lr").line == 6
    with pytest.raises(TypeError):
        load_recipe(42)


def test_missing_file_and_empty_recipe(tmp_path):
    err = error_of(str(tmp_path / "nope.yaml"))
    assert "no such recipe file" in str(err)
    err = error_of(write(tmp_path, "empty.yaml", "# nothing\n"))
    assert "the recipe is empty" in str(err) and err.line == 1
    err = error_of("just-a-word")
    assert "no such recipe file" in str(err)
    err = error_of("- a\n- b\n")
    assert "must be a mapping" in str(err) and err.line == 1


# -- extends -------------------------------------------------------------------------------


def test_extends_chain_merges_nested_mappings(tmp_path):
    write(tmp_path, "base.yaml", BASE)
    write(tmp_path, "mid/mid.yaml", "extends: ../base.yaml\nname: mid\noptimizer: {lr: 0.1}\naugment: [hflip]\n")
    child = load_recipe(write(tmp_path, "mid/child.yaml", "extends: mid.yaml\nname: child\nschedule: {every: 2}\n"))
    assert child.name == "child"
    # optimizer.lr from mid, the rest of optimizer from base; lists are replaced whole.
    assert (child.optimizer.name, child.optimizer.lr, child.optimizer.weight_decay) == ("adam", 0.1, 0.0005)
    assert (child.schedule.name, child.schedule.every) == ("step", 2)
    assert child.augment == ["hflip"] and child.epochs == 10
    # Positions point at the file that set each key.
    assert child.locate("optimizer", "lr").path.endswith("mid.yaml")
    assert child.locate("optimizer", "weight_decay").path.endswith("base.yaml")


def test_extends_from_text_and_dict_uses_base_dir(tmp_path):
    write(tmp_path, "base.yaml", BASE)
    assert load_recipe("extends: base.yaml\nepochs: 3\n", base_dir=tmp_path).epochs == 3
    assert load_recipe({"extends": "base.yaml", "seed": 7}, base_dir=tmp_path).optimizer.weight_decay == 0.0005
    err = error_of("extends: base.yaml\n", base_dir=tmp_path / "elsewhere")
    assert "no such recipe file 'base.yaml'" in str(err) and err.line == 1


def test_extends_cycle_and_error_in_parent(tmp_path):
    write(tmp_path, "a.yaml", "extends: b.yaml\n")
    err = error_of(write(tmp_path, "b.yaml", "extends: a.yaml\n"))
    assert "cycle" in str(err)
    write(tmp_path, "bad.yaml", "epochs: 10\nbatch_sise: 5\n")
    err = error_of(write(tmp_path, "child.yaml", "extends: bad.yaml\nseed: 1\n"))
    assert err.path.endswith("bad.yaml") and err.line == 2


# -- located errors -----------------------------------------------------------------------------


def test_bad_key_gives_line_and_did_you_mean(tmp_path):
    path = write(tmp_path, "r.yaml", "epochs: 10\noptimizer:\n  name: adam\n  lrr: 0.1\n")
    err = error_of(path)
    assert (err.path, err.line, err.column) == (str(path), 4, 3)
    assert "unknown key 'lrr'" in err.message and "did you mean 'lr'" in err.message
    err = error_of("epoch: 10\n")
    assert err.line == 1 and "did you mean 'epochs'" in str(err) and str(err).startswith("<recipe>:1:1:")
    assert "did you mean 'schedule'" in str(error_of("schedul: {every: 3}\n"))


def test_wrong_type_says_expected_and_written():
    err = error_of("seed: 1\nepochs: eighty\n")
    assert err.line == 2 and "valid integer" in err.message and "'eighty'" in err.message
    err = error_of("optimizer: {name: adan}\n")
    assert "'adam'" in err.message and "did you mean 'adam'" in err.message and "'adan'" in err.message
    err = error_of("epochs: -3\n")
    assert "greater than or equal to 1" in err.message and "-3" in err.message
    err = error_of("optimizer: {lr: '1e-3'}\n")  # quoted: a string
    assert "write 0.001" in err.message
    assert load_recipe("optimizer: {lr: 1e-3}\n").optimizer.lr == 0.001  # YAML 1.2: a number
    err = error_of("data: cifar-10\n")
    assert "did you mean 'cifar10'" in err.message and err.line == 1


@pytest.mark.parametrize("name", ["cifar10", "fashion-mnist", "synthetic", "synthetic:200", "imagefolder:/data/x"])
def test_data_names(name):
    assert load_recipe({"data": name}).data == name


@pytest.mark.parametrize("name, says", [
    ("cifar-10", "unknown data set 'cifar-10' (did you mean 'cifar10'?)"),
    ("", "unknown data set ''"),
    # Issue 19.19: a bad count is not a misspelt name.
    ("synthetic:0", "synthetic:N takes N a positive whole number of training images, not '0'"),
    ("synthetic:x", "synthetic:N takes N a positive whole number of training images, not 'x'"),
    ("synthetic:-5", "not '-5'"),
    ("imagefolder:", "imagefolder:DIR needs a folder after the colon"),
    ("mnist:3", "mnist takes nothing after a colon (write 'mnist')"),
])
def test_bad_data_names(name, says):
    message = error_of({"data": name}).message
    assert says in message
    assert "did you mean 'synthetic'" not in message


@pytest.mark.parametrize(
    "text, key",
    [
        ('epochs: "16"\n', "epochs"),
        ("epochs: 16.0\n", "epochs"),
        ("epochs: true\n", "epochs"),
        ("normalize: 1\n", "normalize"),
        ('normalize: "yes"\n', "normalize"),
        ("optimizer: {nesterov: 0}\n", "optimizer.nesterov"),
        ("optimizer: {lr: true}\n", "optimizer.lr"),
        ('optimizer: {betas: ["0.9", 0.99]}\n', "optimizer.betas.0"),
        ("name: 2024\n", "name"),
    ],
)
def test_values_are_strict(text, key):
    err = error_of(text)
    assert err.message.startswith(f"{key}: ") and ", not " in err.message and err.line == 1


def test_numbers_that_are_numbers_are_accepted():
    recipe = load_recipe("optimizer: {lr: 1, betas: [0, 0.5]}\nlabel_smoothing: 0\n")
    assert recipe.optimizer.lr == 1.0 and isinstance(recipe.optimizer.lr, float)
    assert recipe.optimizer.betas == (0.0, 0.5)


@pytest.mark.parametrize(
    "text, key, words",
    [
        ("epochs: 3\nschedule: {warmup_epochs: 3}\n", "schedule.warmup_epochs", "less than epochs"),
        ("schedule: {name: cosine, min_lr: 0.5}\n", "schedule.min_lr", "above optimizer.lr"),
        ("optimizer: {name: adam, nesterov: true}\n", "optimizer.nesterov", "sgd"),
        ("augment: [hflip, hflip]\n", "augment", "twice"),
        ("optimizer: {betas: [0.9]}\n", "optimizer.betas", "needs 2 items"),
        ("val_split: 1.0\n", "val_split", "less than 1"),
        ("optimizer: {lr: .inf}\n", "optimizer.lr", "finite"),
    ],
)
def test_inconsistent_values_are_located(text, key, words):
    err = error_of(text)
    assert err.message.startswith(f"{key}: ") and words in err.message
    assert err.line == text.count("\n", 0, text.index(key.split(".")[-1])) + 1


def test_errors_pickle_and_are_hrgraph_errors():
    import pickle

    err = error_of("epochs: x\n")
    assert isinstance(err, HrgraphError)
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


# -- overrides -------------------------------------------------------------------------------------


def test_apply_overrides():
    base = load_recipe(BASE)
    new = apply_overrides(base, {"optimizer.lr": 0.1, "epochs": 3, "schedule": {"every": 1}, "augment": []})
    assert (new.optimizer.lr, new.optimizer.weight_decay, new.epochs) == (0.1, 0.0005, 3)
    assert (new.schedule.name, new.schedule.every, new.augment) == ("step", 1, [])
    assert base.optimizer.lr == 0.01  # the original is untouched
    assert apply_overrides(base, {}) is base and apply_overrides(base, None) is base


def test_flag_keys_are_recipe_keys():
    values = {"lr": 0.2, "epochs": 2, "batch_size": 8, "seed": 3, "data": "synthetic", "weight_decay": 0.1}
    recipe = apply_overrides(Recipe(), {FLAG_KEYS[flag]: value for flag, value in values.items()})
    assert (recipe.optimizer.lr, recipe.epochs, recipe.batch_size, recipe.seed) == (0.2, 2, 8, 3)
    assert (recipe.data, recipe.optimizer.weight_decay) == ("synthetic", 0.1)


@pytest.mark.parametrize(
    "key, hint",
    [("lr", "optimizer.lr"), ("optimizer.lrr", "optimizer.lr"), ("batch-size", "batch_size"), ("epochs.x", None)],
)
def test_unknown_override_key(key, hint):
    with pytest.raises(RecipeError) as info:
        apply_overrides(Recipe(), {key: 1})
    assert f"override {key}: unknown recipe key" in str(info.value)
    if hint:
        assert f"did you mean '{hint}'" in str(info.value)


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"epochs": "3"}, "epochs: Input should be a valid integer, not the string '3'"),
        ({"optimizer.lr": -1.0}, "optimizer.lr: Input should be greater than 0"),
        ({"optimizer": {"lrr": 1.0}}, "optimizer: unknown key 'lrr' (did you mean 'lr'?)"),
        ({"data": "cifar11"}, "did you mean 'cifar10'"),
    ],
)
def test_invalid_override_value(overrides, words):
    with pytest.raises(RecipeError) as info:
        apply_overrides(Recipe(), overrides)
    assert str(info.value).startswith("override ") and words in str(info.value)
    assert info.value.line is None


# -- serialisation and identity -------------------------------------------------------------------


def test_to_dict_round_trip_and_minimal():
    recipe = apply_overrides(Recipe(), {"optimizer.name": "sgd", "schedule.name": "cosine", "train_subset": 50})
    full = recipe.to_dict()
    assert full["version"] == 1 and list(full)[0] == "version" and full["optimizer"]["betas"] == [0.9, 0.999]
    assert load_recipe(full) == recipe
    assert load_recipe(recipe.to_dict(minimal=True)) == recipe
    assert yaml.safe_load(yaml.safe_dump(full)) == full  # plain data only


def test_fingerprint_is_stable_and_follows_content(tmp_path):
    a = load_recipe(write(tmp_path, "a.yaml", BASE))
    b = load_recipe(BASE)
    assert a.fingerprint == b.fingerprint == load_recipe(a.to_dict()).fingerprint
    assert len(a.fingerprint) == 16 and a.fingerprint != Recipe().fingerprint
    assert apply_overrides(a, {"optimizer.lr": 0.02}).fingerprint != a.fingerprint
    # Names and where the data lives do not change what training computes.
    assert apply_overrides(a, {"name": "x", "description": "y", "data_dir": "/d"}).fingerprint == a.fingerprint
    assert hash(a) == hash(b)


# -- lr_at ---------------------------------------------------------------------------------------------


def test_lr_at_step():
    recipe = Recipe()
    assert [lr_at(recipe, e) for e in (0, 19.999, 20, 39.5, 40, 60, 80)] == [
        0.01, 0.01, 0.005, 0.005, 0.0025, 0.00125, 0.000625,
    ]


def test_lr_at_cosine():
    recipe = apply_overrides(Recipe(), {"epochs": 10, "schedule": {"name": "cosine", "min_lr": 0.001}})
    assert lr_at(recipe, 0) == 0.01
    assert lr_at(recipe, 5) == pytest.approx(0.0055)
    assert lr_at(recipe, 10) == pytest.approx(0.001) == lr_at(recipe, 12)
    values = [lr_at(recipe, e / 4) for e in range(41)]
    assert all(x >= y for x, y in zip(values, values[1:]))


def test_lr_at_warmup():
    step = apply_overrides(Recipe(), {"schedule.warmup_epochs": 2, "schedule.warmup_factor": 0.5})
    assert [lr_at(step, e) for e in (0, 1, 2, 20)] == [0.005, 0.0075, 0.01, 0.005]
    cosine = apply_overrides(Recipe(), {"epochs": 12, "schedule": {"name": "cosine", "warmup_epochs": 2}})
    assert lr_at(cosine, 0) == pytest.approx(0.001)
    assert lr_at(cosine, 2) == 0.01 and lr_at(cosine, 7) == pytest.approx(0.005)


def test_lr_at_constant_and_bad_epoch():
    recipe = apply_overrides(Recipe(), {"schedule.name": "constant"})
    assert {lr_at(recipe, e) for e in (0, 33.3, 1000)} == {0.01}
    for bad in (-1, math.nan, math.inf):
        with pytest.raises(ValueError):
            lr_at(recipe, bad)


# -- the default recipe follows the data (issue 19.15) ---------------------------------------

from hrgraph.train.defaults import default_recipe, describe_recipe, parse_augment, resolve_recipe  # noqa: E402


@pytest.mark.parametrize("data, name", [("cifar10", "paper-cifar10"), ("cifar100", "paper-cifar100"),
                                        ("tiny-imagenet", "paper-tiny-imagenet")])
def test_paper_data_sets_get_the_paper_recipe(data, name):
    recipe = default_recipe(data)
    assert recipe.name == name and recipe.data == data and recipe.augment == ["random_crop", "hflip"]


@pytest.mark.parametrize("data", ["mnist", "fashion-mnist", "synthetic", "synthetic:64", "imagefolder:/data/x"])
def test_other_data_gets_no_augmentation_and_the_paper_optimizer(data):
    recipe = default_recipe(data)
    paper = load_recipe("recipes/paper-cifar10.yaml")
    assert recipe.name == "generic" and recipe.data == data and recipe.augment == []
    assert (recipe.optimizer, recipe.schedule, recipe.epochs, recipe.batch_size) == \
        (paper.optimizer, paper.schedule, paper.epochs, paper.batch_size)


def test_default_recipe_of_a_bad_name_is_a_recipe_error():
    with pytest.raises(RecipeError, match="synthetic:N takes N a positive whole number"):
        default_recipe("synthetic:0")


def test_resolve_recipe_uses_the_data_override_and_says_so():
    recipe, origin = resolve_recipe(None, {"data": "mnist", "augment": ["hflip"]})
    assert recipe.augment == ["hflip"] and origin == "the default for mnist; overridden: data, augment"
    recipe, origin = resolve_recipe(None, {})
    assert recipe.name == "paper-cifar10" and origin == "the default for cifar10"
    recipe, origin = resolve_recipe("recipes/cpu-fashion-mnist.yaml", {"epochs": 1})
    assert recipe.name == "cpu-fashion-mnist" and origin == "overridden: epochs"


def test_describe_recipe_names_augmentation_optimizer_and_schedule():
    lines = describe_recipe(load_recipe("recipes/paper-cifar10.yaml"), "")
    assert lines == [
        "recipe: paper-cifar10 (recipes/paper-cifar10.yaml)",
        "augment: random crop (4-pixel zero padding), horizontal flip",
        "optimizer: adam, lr 0.01, betas (0.9, 0.999), weight decay 0",
        "schedule: step, lr x0.5 every 20 epochs; 80 epochs of batch 100, seed 0",
    ]
    sgd = load_recipe({"optimizer": {"name": "sgd", "lr": 0.1, "nesterov": True},
                       "schedule": {"name": "cosine", "warmup_epochs": 2, "min_lr": 0.001}, "augment": []})
    assert describe_recipe(sgd, "--recipe")[1:] == [
        "augment: none", "optimizer: sgd, lr 0.1, momentum 0.9 (nesterov), weight decay 0",
        "schedule: cosine to 0.001 after a 2-epoch warm-up from x0.1; 80 epochs of batch 100, seed 0"]


@pytest.mark.parametrize("text, expected", [("none", []), ("crop", ["random_crop"]), ("flip", ["hflip"]),
                                            ("crop,flip", ["random_crop", "hflip"]), ("flip, crop", ["hflip", "random_crop"])])
def test_parse_augment(text, expected):
    assert parse_augment(text) == expected


@pytest.mark.parametrize("text, says", [("flp", "did you mean 'flip'"), ("crop,crop", "'crop' is given twice"),
                                        ("none,crop", "unknown augmentation 'none'")])
def test_parse_augment_errors(text, says):
    with pytest.raises(RecipeError, match=says):
        parse_augment(text)


def test_train_announces_the_recipe_first_and_augment_overrides(tmp_path):
    from click.testing import CliRunner

    from hrgraph.cli.main import main

    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\ninput: {channels: 1, height: 8, width: 8}\nnodes:\n"
                    "  - {id: stem, kind: conv, channels: 4}\n  - {id: head, kind: classifier, classes: 3}\n")
    result = CliRunner().invoke(main, ["train", str(spec), "--data", "synthetic:30", "--epochs", "1", "--device", "cpu",
                                       "--augment", "flip", "-o", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "recipe: generic (recipes/generic.yaml, the default for synthetic; overridden: epochs, data, augment)"
    assert lines[1] == "augment: horizontal flip" and lines[2].startswith("optimizer: adam, lr 0.01")
    assert lines[3].startswith("schedule: step, lr x0.5 every 20 epochs; 1 epochs")
    assert "augment: [hflip]" in (tmp_path / "run" / "config.yaml").read_text()
