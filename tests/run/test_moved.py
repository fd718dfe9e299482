"""A run written by fmlab 0.1 (main 89e4b21, before src/fmlab was laid out by role) keeps working:
its checkpoint and record name the old modules (``fmlab.schedules.WarmupCosine``,
``fmlab.callbacks.ModelSummary``) and carry no ``net_args``, yet the run resumes, and its checkpoint
evaluates, samples, exports to transformers and serves as ``init_from`` on today's code.

The fixture (tests/fixtures/fmlab01_gpt: last.ckpt, results.json, .hydra/) was made by that commit:
``fmlab-train`` with ``OVERRIDES`` below, ``trainer.max_steps=4 logger=csv``, on the text that
``write_text_corpus`` writes."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import TINY_CHAR_GPT, run_cli, write_text_corpus

from fmlab.data.tokenizers import saved_tokenizer
from fmlab.run.checkpoints import load_checkpoint
from fmlab.techniques.rebuild import rebuild_net

FIXTURE = Path(__file__).parents[1] / "fixtures" / "fmlab01_gpt"
OVERRIDES = [
    *TINY_CHAR_GPT,
    "model.n_embd=16",
    "trainer.val_check_interval=2",
]
ENV = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    """A copy of the 0.1 run folder, and the text it was trained on."""
    root = tmp_path_factory.mktemp("moved")
    write_text_corpus(root / "data" / "tinyshakespeare" / "input.txt")
    shutil.copytree(FIXTURE, root / "run")
    return root


def test_its_config_names_todays_modules_once_loaded(old_run):
    raw = torch.load(old_run / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert "fmlab.schedules" in json.dumps(raw["hyper_parameters"]["config"])  # as 0.1 wrote it
    config = load_checkpoint(old_run / "run" / "checkpoints" / "last.ckpt")["hyper_parameters"]
    text = json.dumps(config["config"])
    assert "fmlab.techniques.schedules.WarmupCosine" in text
    assert "fmlab.run.callbacks.ModelSummary" in text and "fmlab.schedules" not in text


def test_the_old_run_resumes_from_its_checkpoint(old_run):
    root = old_run
    run_cli(
        "fmlab-train", *OVERRIDES, "trainer.max_steps=6", "logger=none",
        f"paths.data_dir={root / 'data'}", f"hydra.run.dir={root / 'run'}", cwd=root, env=ENV,
    )  # fmt: skip
    log = (root / "run" / "train.log").read_text()
    assert "Resuming from" in log
    record = json.loads((root / "run" / "results.json").read_text())
    assert record["status"] == "complete" and record["timing"]["train_steps"] == 6


def test_the_old_checkpoint_evaluates_samples_and_exports(old_run):
    root, ckpt = old_run, FIXTURE / "checkpoints" / "last.ckpt"
    run_cli(
        "fmlab-eval", f"ckpt_path={ckpt}", "split=val", f"paths.data_dir={root / 'data'}",
        "logger=none", f"hydra.run.dir={root / 'eval'}", cwd=root, env=ENV,
    )  # fmt: skip
    scored = json.loads((root / "eval" / "results.json").read_text())
    assert 0 < scored["metrics"]["val/loss"] < 10

    run_cli(
        "fmlab-sample", f"ckpt_path={ckpt}", "prompt=ROMEO:", "greedy=true",
        "max_new_tokens=12", f"hydra.run.dir={root / 'sample'}", cwd=root, env=ENV,
    )  # fmt: skip
    text = (root / "sample" / "samples.txt").read_text(encoding="utf-8")
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 12

    out = root / "exported"
    run_cli(
        "fmlab-export", f"ckpt_path={ckpt}", "format=hf", f"out={out}",
        f"hydra.run.dir={root / 'export'}", cwd=root, env=ENV,
    )  # fmt: skip
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert modes["model.safetensors"] == modes["config.json"], modes  # not 0600: shareable
    import transformers

    model = transformers.GPT2LMHeadModel.from_pretrained(out, local_files_only=True).eval()
    checkpoint = load_checkpoint(ckpt)
    net, tokenizer = rebuild_net(checkpoint), saved_tokenizer(checkpoint)
    idx = torch.as_tensor(tokenizer.encode("ROMEO: and")).unsqueeze(0)  # (1, T)
    with torch.no_grad():
        ours = net(idx)[0]  # (1, T, vocab)
        theirs = model(idx).logits[..., : ours.size(-1)]
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)


def test_the_old_checkpoint_serves_as_init_from(old_run):
    root = old_run
    run_cli(
        "fmlab-train", *OVERRIDES, "trainer.max_steps=1", "logger=none", "test=false",
        f"init_from={FIXTURE / 'checkpoints' / 'last.ckpt'}", f"paths.data_dir={root / 'data'}",
        f"hydra.run.dir={root / 'tuned'}", cwd=root, env=ENV,
    )  # fmt: skip
    transfer = json.loads((root / "tuned" / "results.json").read_text())["transfer"]
    assert transfer["loaded"] == transfer["of"] and not transfer["shape_differs"]
