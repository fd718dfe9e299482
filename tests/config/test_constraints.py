"""Every value constraint fmlab declares (``Annotated`` arguments of its own constructors and the
table for torch, Lightning and the nets) refuses a value just outside it, naming the value, through
the same ``check_config`` that fmlab-train runs before reading any data."""

import importlib
import inspect
import pkgutil

import pytest
from hydra.utils import get_object

import fmlab
from fmlab.config import checks, constraint_tables
from fmlab.errors import FmlabError


def annotated() -> list[tuple[str, str, object]]:
    """(import path, argument, constraint) of every constrained argument in fmlab's modules."""
    found = []
    for info in pkgutil.walk_packages(fmlab.__path__, "fmlab."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != info.name:
                continue
            if inspect.isclass(obj) or inspect.isfunction(obj):
                for arg, hint in checks._hints(obj).items():
                    if (limit := checks._annotated_range(hint)) is not None:
                        found.append((f"{info.name}.{name}", arg, limit))
    return found


TABLE = [
    (t, arg, limit) for t, args in constraint_tables.DECLARED.items() for arg, limit in args.items()
]
CASES = [
    (target, arg, value) for target, arg, limit in annotated() + TABLE for value in limit.outside()
]


def test_the_constraints_cover_fmlabs_own_constructors():
    targets = {t for t, _, _ in annotated()}
    for name in ("CIFAR10DataModule", "TextDataModule", "LabelledTextDataModule", "GAN"):
        assert any(t.endswith(f".{name}") for t in targets), name
    assert len(CASES) > 100


@pytest.mark.parametrize(("target", "arg"), sorted({(t, a) for t, a, _ in TABLE}))
def test_every_declared_argument_exists(target, arg):
    assert arg in inspect.signature(get_object(target)).parameters


IDS = [f"{t}.{a}={v}" for t, a, v in CASES]


@pytest.mark.parametrize(("target", "arg", "value"), CASES, ids=IDS)
def test_a_value_just_outside_each_constraint_is_refused_by_name(target, arg, value):
    default = inspect.signature(get_object(target)).parameters[arg].default
    if isinstance(default, (list, tuple)) or arg in ("milestones", "betas", "std"):
        value = [value]  # a list argument: the constraint holds for each element
    with pytest.raises(FmlabError) as err:
        checks.check_config({"node": {"_target_": target, arg: value}})
    assert f"node.{arg}={value!r} is out of range" in str(err.value)


# One set of values breaking each relation, by target.
BROKEN = {
    "fmlab.data.TextDataModule": [{"val_fraction": 0.5, "test_fraction": 0.5}],
    "fmlab.data.LabelledTextDataModule": [{"val_fraction": 0.9, "test_fraction": 0.1}],
    "fmlab.techniques.schedules.WarmupCosine": [{"warmup_iters": 100, "lr_decay_iters": 100}],
    "lightning.pytorch.Trainer": [
        {"max_epochs": -1, "max_steps": -1},
        {"min_epochs": 3, "max_epochs": 2},
        {"min_steps": 30, "max_steps": 20},
    ],
    "fmlab.nets.GPT": [
        {"n_embd": 48, "n_head": 5},
        {"parametrization": "mup", "mup_base_width": 30, "n_head": 4},
        {"parametrization": "sp", "mup_input_alpha": 2.0, "mup_output_alpha": 1.0},
    ],
    "fmlab.nets.Bert": [{"n_embd": 48, "n_head": 5}],
    "fmlab.tasks.MaskedLM": [{"mask_token_frac": 0.8, "random_token_frac": 0.3}],
    "fmlab.nets.ViT": [{"image_size": 32, "patch_size": 5}, {"dim": 48, "heads": 5}],
}


def test_every_relation_has_a_broken_example():
    assert {t: len(v) for t, v in BROKEN.items()} == {
        t: len(v) for t, v in constraint_tables.RELATIONS.items()
    }


@pytest.mark.parametrize(
    ("target", "values"), [(t, v) for t, cases in BROKEN.items() for v in cases]
)
def test_arguments_that_do_not_go_together_are_refused_by_name(target, values):
    with pytest.raises(FmlabError, match="do not go together") as err:
        checks.check_config({"node": {"_target_": target, **values}})
    assert all(f"node.{k}={v!r}" in str(err.value) for k, v in values.items())


def test_values_inside_pass_and_nulls_are_left_to_fmlab_train():
    checks.check_config(
        {
            "trainer": {
                "_target_": "lightning.pytorch.Trainer",
                "max_epochs": -1,
                "max_steps": 100,
                "val_check_interval": 500,  # beyond the run: it validates its final step anyway
                "devices": -1,
            },
            "scheduler": {
                "_target_": "fmlab.techniques.schedules.warmup_cosine",
                "total_steps": None,
            },
            "optimizer": {"_target_": "torch.optim.AdamW", "lr": 3e-4, "betas": [0.9, 0.95]},
        }
    )
