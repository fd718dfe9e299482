"""What torch's, Lightning's and fmlab's networks' constructors declare, as tables keyed by import
path, and their lookup for ``fmlab.config.checks``: ``DECLARED`` holds the value ranges of
arguments of classes fmlab configures but does not annotate, looked up along the class's MRO (so
fmlab's subclasses of Lightning's callbacks inherit them); ``RELATIONS`` holds the few rules that
tie two arguments of one constructor together. The kinds of constraint and the named ranges are
``fmlab.config.constraints``.
"""

import logging
from functools import cache

from fmlab.config.constraints import (
    AT_LEAST_ONE,
    DROPOUT,
    FRACTION,
    LIMIT,
    NON_NEGATIVE,
    NON_NEGATIVE_FLOAT,
    POSITIVE,
    PROBABILITY,
    CountOrShare,
    Range,
    Relation,
)

log = logging.getLogger(__name__)

_OPTIMIZER = {"lr": POSITIVE, "weight_decay": NON_NEGATIVE_FLOAT}
_ADAM = {**_OPTIMIZER, "betas": FRACTION, "eps": NON_NEGATIVE_FLOAT}
_GAMMA = {"gamma": POSITIVE}

# Constraints of classes fmlab configures but does not annotate, by import path.
DECLARED: dict[str, dict[str, Range | CountOrShare]] = {
    "torch.optim.SGD": {**_OPTIMIZER, "momentum": FRACTION, "dampening": PROBABILITY},
    "torch.optim.Adam": _ADAM,
    "torch.optim.AdamW": _ADAM,
    "torch.optim.RMSprop": {
        **_OPTIMIZER,
        "alpha": PROBABILITY,
        "eps": NON_NEGATIVE_FLOAT,
        "momentum": FRACTION,
    },
    "torch.optim.lr_scheduler.StepLR": {**_GAMMA, "step_size": AT_LEAST_ONE},
    "torch.optim.lr_scheduler.MultiStepLR": {**_GAMMA, "milestones": NON_NEGATIVE},
    "torch.optim.lr_scheduler.ExponentialLR": _GAMMA,
    "torch.optim.lr_scheduler.CosineAnnealingLR": {
        "T_max": AT_LEAST_ONE,
        "eta_min": NON_NEGATIVE_FLOAT,
    },
    "torch.optim.lr_scheduler.OneCycleLR": {
        "max_lr": POSITIVE,
        "total_steps": AT_LEAST_ONE,
        "pct_start": PROBABILITY,
        "div_factor": POSITIVE,
        "final_div_factor": POSITIVE,
        "base_momentum": PROBABILITY,
        "max_momentum": PROBABILITY,
    },
    "lightning.pytorch.Trainer": {
        "devices": LIMIT,
        "num_nodes": AT_LEAST_ONE,
        "max_epochs": LIMIT,
        "max_steps": LIMIT,
        "min_epochs": NON_NEGATIVE,
        "min_steps": NON_NEGATIVE,
        "limit_train_batches": CountOrShare(NON_NEGATIVE, PROBABILITY),
        "limit_val_batches": CountOrShare(NON_NEGATIVE, PROBABILITY),
        "limit_test_batches": CountOrShare(NON_NEGATIVE, PROBABILITY),
        "overfit_batches": CountOrShare(NON_NEGATIVE, FRACTION),
        "val_check_interval": CountOrShare(AT_LEAST_ONE, Range(gt=0.0, le=1.0)),
        "check_val_every_n_epoch": AT_LEAST_ONE,
        "num_sanity_val_steps": Range(ge=-1),
        "log_every_n_steps": AT_LEAST_ONE,
        "accumulate_grad_batches": AT_LEAST_ONE,
        "gradient_clip_val": NON_NEGATIVE_FLOAT,
        "reload_dataloaders_every_n_epochs": NON_NEGATIVE,
    },
    "lightning.pytorch.callbacks.ModelCheckpoint": {
        "save_top_k": Range(ge=-1),
        "every_n_train_steps": NON_NEGATIVE,
        "every_n_epochs": NON_NEGATIVE,
    },
    "lightning.pytorch.callbacks.EarlyStopping": {
        "patience": NON_NEGATIVE,
        "min_delta": NON_NEGATIVE_FLOAT,
    },
    "lightning.pytorch.callbacks.TQDMProgressBar": {"refresh_rate": NON_NEGATIVE},
    "lightning.pytorch.callbacks.ModelSummary": {"max_depth": Range(ge=-1)},
    "lightning.pytorch.callbacks.RichModelSummary": {"max_depth": Range(ge=-1)},
    "lightning.pytorch.callbacks.EMAWeightAveraging": {
        "decay": PROBABILITY,
        "update_every_n_steps": AT_LEAST_ONE,
        "update_starting_at_step": NON_NEGATIVE,
        "update_starting_at_epoch": NON_NEGATIVE,
    },
    # fmlab's networks (plain torch modules; their data-given sizes are not set by users).
    "fmlab.nets.Bert": {
        "n_layer": AT_LEAST_ONE,
        "n_embd": AT_LEAST_ONE,
        "n_head": AT_LEAST_ONE,
        "dropout": DROPOUT,
        "mlp_ratio": AT_LEAST_ONE,
    },
    "fmlab.nets.DCGAN": {
        "latent_dim": AT_LEAST_ONE,
        "g_width": AT_LEAST_ONE,
        "d_width": AT_LEAST_ONE,
        "channels": AT_LEAST_ONE,
    },
    "fmlab.nets.GPT": {
        "n_layer": AT_LEAST_ONE,
        "n_head": AT_LEAST_ONE,
        "n_embd": AT_LEAST_ONE,
        "dropout": DROPOUT,
        "init_std": POSITIVE,
        "mup_base_width": AT_LEAST_ONE,
        "mup_input_alpha": POSITIVE,
        "mup_output_alpha": POSITIVE,
    },
    "fmlab.nets.MobileNetV2": {"width_mult": POSITIVE, "dropout": DROPOUT},
    "fmlab.nets.ResNet": {"width": AT_LEAST_ONE},
    "fmlab.nets.ResNet9": {"width": AT_LEAST_ONE, "scale": POSITIVE},
    "fmlab.nets.ResNetCifar": {"width": AT_LEAST_ONE},
    "fmlab.nets.RecurrentLM": {
        "n_embd": AT_LEAST_ONE,
        "hidden_size": AT_LEAST_ONE,
        "n_layer": AT_LEAST_ONE,
        "dropout": DROPOUT,
    },
    "fmlab.nets.SequenceClassifier": {
        "n_embd": AT_LEAST_ONE,
        "n_layer": AT_LEAST_ONE,
        "n_head": AT_LEAST_ONE,
        "dropout": DROPOUT,
    },
    "fmlab.nets.VGG": {"dropout": DROPOUT},
    "fmlab.nets.ViT": {
        "image_size": AT_LEAST_ONE,
        "patch_size": AT_LEAST_ONE,
        "dim": AT_LEAST_ONE,
        "depth": AT_LEAST_ONE,
        "heads": AT_LEAST_ONE,
        "mlp_dim": AT_LEAST_ONE,
        "dropout": DROPOUT,
        "in_channels": AT_LEAST_ONE,
    },
}


def _divides(a: str, b: str) -> Relation:
    return Relation((a, b), lambda x, y: x % y == 0, f"{a} must be a multiple of {b}")


def _at_most(low: str, high: str, says: str) -> Relation:
    """``low`` ≤ ``high`` where both are set; a negative ``high`` means "no limit"."""
    return Relation((low, high), lambda lo, hi: hi < 0 or lo <= hi, says)


_LEAVE_TRAINING = Relation(
    ("val_fraction", "test_fraction"),
    lambda val, test: val + test < 1,
    "they leave nothing to train on (their sum must be below 1)",
)

RELATIONS: dict[str, list[Relation]] = {
    "fmlab.data.TextDataModule": [_LEAVE_TRAINING],
    "fmlab.data.LabelledTextDataModule": [_LEAVE_TRAINING],
    "fmlab.techniques.schedules.WarmupCosine": [
        Relation(
            ("warmup_iters", "lr_decay_iters"),
            lambda warmup, decay: warmup < decay,
            "the warm-up must end before the decay does (warmup_iters < lr_decay_iters)",
        ),
    ],
    "lightning.pytorch.Trainer": [
        Relation(
            ("max_epochs", "max_steps", "max_time"),
            lambda epochs, steps, time: not (epochs == -1 and steps == -1 and time is None),
            "the run would never end; give it a length (max_epochs, max_steps or max_time)",
        ),
        _at_most("min_epochs", "max_epochs", "the minimum is above the maximum"),
        _at_most("min_steps", "max_steps", "the minimum is above the maximum"),
    ],
    "fmlab.nets.GPT": [
        _divides("n_embd", "n_head"),
        Relation(
            ("parametrization", "mup_base_width", "n_head"),
            lambda kind, base, heads: kind == "sp" or (base is not None and base % heads == 0),
            "μP needs the width its hyper-parameters were tuned at, a multiple of n_head "
            "(the heads keep their number across widths): set model.mup_base_width",
        ),
        Relation(
            ("parametrization", "mup_input_alpha", "mup_output_alpha"),
            lambda kind, alpha_in, alpha_out: kind == "mup" or alpha_in == alpha_out == 1,
            "they are μP's multipliers: with parametrization=sp they stay 1",
        ),
    ],
    "fmlab.nets.Bert": [_divides("n_embd", "n_head")],
    "fmlab.tasks.MaskedLM": [
        Relation(
            ("mask_token_frac", "random_token_frac"),
            lambda masked, randomised: masked + randomised <= 1,
            "they are shares of the chosen positions (their sum must be at most 1)",
        ),
    ],
    "fmlab.nets.ViT": [_divides("image_size", "patch_size"), _divides("dim", "heads")],
}


@cache
def _resolved() -> tuple[dict, dict]:
    """The tables keyed by the classes themselves: a config may name a class by any import path
    (lightning.Trainer, lightning.pytorch.Trainer, pytorch_lightning.Trainer...)."""
    return _by_class(DECLARED), _by_class(RELATIONS)


def _by_class(table: dict) -> dict:
    """A class another version of its package lacks has no entry (and no config naming it)."""
    from hydra.utils import get_object

    resolved = {}
    for name, entry in table.items():
        try:
            resolved[get_object(name)] = entry
        except Exception:  # Hydra raises ImportError or its own error
            log.debug("No %s here: its value constraints are not checked", name)
    return resolved


def declared(target) -> dict[str, Range | CountOrShare]:
    """The table's constraints of ``target``'s arguments, its base classes' included."""
    table = _resolved()[0]
    found: dict = {}
    for cls in reversed(getattr(target, "__mro__", (target,))):
        found.update(table.get(cls, {}))
    return found


def relations(target) -> list[Relation]:
    table = _resolved()[1]
    return [r for cls in getattr(target, "__mro__", (target,)) for r in table.get(cls, [])]
