"""Every config and experiment composes and instantiates through the real Hydra and Lightning."""

from pathlib import Path

import lightning as L
import pytest
from conftest import write_tiktoken_file
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fmlab import CONF_DIR
from fmlab.commands.train import build
from fmlab.run.tracking import instantiate_loggers

EXPERIMENTS = sorted(p.stem for p in Path(CONF_DIR, "experiment").glob("*.yaml"))
OPTIONS = {
    group: sorted(p.stem for p in Path(CONF_DIR, group).glob("*.yaml"))
    for group in ("model", "optimizer", "scheduler", "trainer", "callbacks", "logger")
}
# Models that the default task (classification) cannot train, with the task that can.
TASK_OF_MODEL = {"dcgan": "gan"}


def test_groups_have_their_options():
    assert "seed_convnet" in EXPERIMENTS
    assert {"wandb", "csv", "none"} <= set(OPTIONS["logger"])


# Models that read text, composed with text data (the default data set is CIFAR-10).
TEXT_DATA = {"gpt": "tiny_shakespeare", "lstm": "tiny_shakespeare", "gru": "tiny_shakespeare"}
TEXT_DATA |= {"rnn": "tiny_shakespeare", "seq_lstm": "labelled", "seq_transformer": "labelled"}
TEXT_DATA |= {"bilstm": "labelled"}
TEXT_DATA |= {"hf_causal_lm": "tiny_shakespeare", "hf_sequence_classifier": "labelled"}
TEXT_DATA |= {"hf_masked_lm": "labelled"}
TEXT_DATA |= {f"bert_{size}": "labelled" for size in ("tiny", "mini", "small", "base")}


def stand_ins(experiment: str, data: Path, request) -> list[str]:
    """Data no test can hold (OpenWebText, GPT-2's BPE files), stood in for by small files, and
    Hugging Face models by a tiny one."""
    if experiment.startswith("hf_"):
        return [f"model.name_or_path={request.getfixturevalue('hf_model_dir')}"]
    if experiment == "bert_tiny_sst2":  # its checkpoint is read by train(), not by build()
        return [f"init_from={data / 'pretrained.ckpt'}"]
    if experiment == "gpt2_owt":
        bpe = write_tiktoken_file(data / "small.tiktoken")
        return [
            f"data.corpus={data / 'tinyshakespeare' / 'input.txt'}",
            f"data.tokenizer_file={bpe}",
        ]
    return []


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_instantiates(experiment, compose_cfg, synthetic_text, request):
    overrides = [f"experiment={experiment}", f"paths.data_dir={synthetic_text}", "logger=csv"]
    cfg = compose_cfg("train", overrides + stand_ins(experiment, synthetic_text, request))
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    datamodule, task = build(cfg)
    assert isinstance(task, L.LightningModule)
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=instantiate_loggers(cfg.logger))
    assert isinstance(trainer, L.Trainer)


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g, options in OPTIONS.items() for o in options]
)
def test_every_option_composes(group, option, compose_cfg, synthetic_text, tmp_path, request):
    overrides = [f"{group}={option}", f"paths.data_dir={synthetic_text}"]
    if option.startswith("hf_"):  # a tiny Hugging Face model, tokenising its data too
        masked = option == "hf_masked_lm"  # a BERT, pre-trained on by masked-LM
        model = request.getfixturevalue("hf_bert_dir" if masked else "hf_model_dir")
        overrides += [f"model.name_or_path={model}", f"data.tokenizer=hf:{model}"]
        overrides += ["task=masked_lm"] if masked else []
    if group == "model" and option in TASK_OF_MODEL:
        overrides.append(f"task={TASK_OF_MODEL[option]}")
    if TEXT_DATA.get(option) == "tiny_shakespeare":
        overrides += ["data=tiny_shakespeare", "task=language_model", "optimizer=adamw"]
    elif TEXT_DATA.get(option) == "labelled":
        (tmp_path / "labels.tsv").write_text("a\tsome text\nb\tother text\n" * 5)
        overrides += ["data=labelled_text", f"data.path={tmp_path / 'labels.tsv'}"]
    cfg = compose_cfg("train", overrides)
    OmegaConf.to_container(cfg, resolve=True)
    datamodule, task = build(cfg)
    if group == "optimizer":
        task.configure_optimizers()
    if group in ("callbacks", "trainer"):
        callbacks = [instantiate(c) for c in cfg.callbacks.values() if c]
        # The app's loggers, as fmlab-train passes them (Lightning's default logger=True only
        # adds a note that TensorBoard is not installed).
        instantiate(cfg.trainer, callbacks=callbacks, logger=instantiate_loggers(cfg.logger))


def test_seed_convnet_is_the_course_recipe(compose_cfg):
    cfg = compose_cfg("train", ["experiment=seed_convnet"])
    assert cfg.data.batch_size == 4 and cfg.data.val_size == 0
    assert not cfg.data.crop and not cfg.data.flip
    assert list(cfg.data.mean) == [0.5] * 3 and list(cfg.data.std) == [0.5] * 3
    assert cfg.optimizer._target_ == "torch.optim.SGD"
    assert (cfg.optimizer.lr, cfg.optimizer.momentum) == (0.001, 0.9)
    assert cfg.trainer.max_epochs == 2 and cfg.model._target_ == "fmlab.nets.ConvNet"


def test_data_dir_follows_fmlab_data_dir(compose_cfg, monkeypatch, tmp_path):
    monkeypatch.setenv("FMLAB_DATA_DIR", str(tmp_path / "elsewhere"))
    assert compose_cfg("train").paths.data_dir == str(tmp_path / "elsewhere")
    monkeypatch.delenv("FMLAB_DATA_DIR")
    monkeypatch.setenv("FMLAB_ROOT", str(tmp_path))
    assert compose_cfg("train").paths.data_dir == f"{tmp_path}/data"


def test_eval_config_composes(compose_cfg):
    cfg = compose_cfg("eval", ["ckpt_path=some.ckpt"])
    assert cfg.ckpt_path == "some.ckpt" and "csv" in cfg.logger


def test_a_net_that_needs_what_the_data_does_not_offer_is_refused(compose_cfg):
    from fmlab.errors import FmlabError
    from fmlab.techniques.rebuild import build_net

    class TextData:  # offers a vocabulary, not classes
        net_args = {"vocab_size": 65}

    cfg = compose_cfg()
    with pytest.raises(FmlabError, match=r"needs \['num_classes'\].*provides \['vocab_size'\]"):
        build_net(cfg.model, TextData.net_args)


def test_gpt2_owt_is_nanogpts_train_gpt2(compose_cfg):
    """nanoGPT's config/train_gpt2.py: its model, ~0.5M tokens a step, validation every 1000
    optimizer steps whatever the accumulation (Lightning counts val_check_interval in batches)."""
    import torch

    cfg = compose_cfg("train", ["experiment=gpt2_owt"])
    with torch.device("meta"):  # 124M parameters, no memory
        net = instantiate(cfg.model, vocab_size=50257, block_size=cfg.data.block_size)
    assert round(net.num_params() / 1e6, 2) == 123.59  # nanoGPT prints "123.59M"
    trainer, data = cfg.trainer, cfg.data
    assert data.batch_size * data.block_size * trainer.accumulate_grad_batches == 491_520
    assert trainer.val_check_interval == 1000 * 40 and trainer.max_steps == 600_000
    spread = compose_cfg("train", ["experiment=gpt2_owt", "trainer.accumulate_grad_batches=5"])
    assert spread.trainer.val_check_interval == 5000
    assert (data.corpus, data.tokenizer) == ("openwebtext", "tiktoken")
