"""Every net fmlab wraps from the ecosystem (transformers, timm, peft's adapters on them) trains in
training mode and validates in eval mode under a real Trainer. transformers' from_pretrained
returns a model in eval mode, and Lightning 2.6 no longer calls .train() when fit starts, so
without care a fine-tune would run with dropout off ("Found N module(s) in eval mode")."""

import pytest
from conftest import quiet_trainer, write_glue
from lightning.pytorch.callbacks import Callback

from fmlab.commands.train import build


class Modes(Callback):
    """How many modules are in eval mode at the first training batch, and in training mode at
    the first validation batch."""

    def __init__(self) -> None:
        self.eval_in_training = self.training_in_validation = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.eval_in_training is None:
            self.eval_in_training = [n for n, m in pl_module.named_modules() if not m.training]

    def on_validation_batch_start(self, trainer, pl_module, *args) -> None:
        if self.training_in_validation is None and trainer.state.fn == "fit":
            self.training_in_validation = [n for n, m in pl_module.named_modules() if m.training]


def fit_two_steps(cfg, tmp_path) -> Modes:
    datamodule, task = build(cfg)
    modes = Modes()
    trainer = quiet_trainer(
        tmp_path, accelerator="cpu", max_steps=2, val_check_interval=2, limit_val_batches=1,
        callbacks=[modes], enable_checkpointing=False,
    )  # fmt: skip
    trainer.fit(task, datamodule=datamodule)
    return modes


@pytest.fixture
def labelled(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    return [
        "data=sst2",
        f"data.train_file={write_glue(data / 'train.tsv', n=32)}",
        f"data.val_file={write_glue(data / 'dev.tsv', n=16)}",
        "data.batch_size=8",
        "data.max_length=16",
        "optimizer=adamw",
    ]


def hf_runs(hf_model_dir, hf_bert_dir, labelled, synthetic_text) -> dict[str, list[str]]:
    gpt, bert = hf_model_dir, hf_bert_dir
    return {
        "transformers causal LM": [
            "experiment=hf_lm_shakespeare", f"model.name_or_path={gpt}",
            f"paths.data_dir={synthetic_text}", "data.block_size=16", "data.batch_size=4",
        ],
        "transformers classifier": [
            *labelled, "model=hf_sequence_classifier", f"model.name_or_path={bert}",
            f"data.tokenizer=hf:{bert}",
        ],
        "transformers masked LM": [
            *labelled, "task=masked_lm", "model=hf_masked_lm", f"model.name_or_path={bert}",
            f"data.tokenizer=hf:{bert}",
        ],
        "peft adapters on transformers": [
            *labelled, "model=hf_sequence_classifier", f"model.name_or_path={gpt}",
            f"data.tokenizer=hf:{gpt}", "task.lora.target_modules=[c_attn]",
        ],
        "timm": [
            "model=timm", "model.name=resnet18", f"paths.data_dir={synthetic_text}",
            "data.val_size=50", "data.batch_size=16",
        ],
    }  # fmt: skip


@pytest.mark.parametrize(
    "wrapper",
    [
        "transformers causal LM",
        "transformers classifier",
        "transformers masked LM",
        "peft adapters on transformers",
        "timm",
    ],
)
def test_a_wrapped_net_trains_in_train_mode_and_validates_in_eval_mode(
    wrapper, hf_model_dir, hf_bert_dir, labelled, synthetic_text, compose_cfg, tmp_path
):
    overrides = hf_runs(hf_model_dir, hf_bert_dir, labelled, synthetic_text)[wrapper]
    modes = fit_two_steps(compose_cfg("train", [*overrides, "logger=none"]), tmp_path)
    assert modes.eval_in_training == []
    assert modes.training_in_validation == []
