"""Acceptance: a GPT trained by `gpt_shakespeare_char_cpu` and exported with `fmlab-export`
writes the same greedy text in transformers as `fmlab-sample` does, every step through the real
command lines."""

import json

import pytest
import torch
from conftest import run_cli
from test_hf import OFFLINE, export_cli

from fmlab.data.tokenizers import tokenizer_from_dict

transformers = pytest.importorskip("transformers")

# 6 + 50 tokens fit the recipe's context of 64: GPT-2 has no positions past it (fmlab crops).
PROMPT, NEW_TOKENS = "ROMEO:", 50
SHRUNK_GPT = [  # the recipe at width 64, trained long enough to write words of the play
    "experiment=gpt_shakespeare_char_cpu",
    "model.n_layer=1",
    "model.n_head=2",
    "model.n_embd=64",
    "data.batch_size=16",
    "data.max_eval_windows=8",
    "optimizer.lr=3e-3",
    "scheduler.lr_lambda.warmup_iters=5",
    "scheduler.lr_lambda.lr_decay_iters=150",
    "trainer.max_steps=150",
    "trainer.val_check_interval=150",
    "logger=none",
]


@pytest.mark.slow  # fmlab-train runs: .ci/run runs it after `make test`
def test_exported_gpt_greedy_text_in_transformers_is_fmlab_samples(synthetic_text, tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "exported"
    run_cli(
        "fmlab-train",
        *SHRUNK_GPT,
        f"paths.data_dir={synthetic_text}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        env=OFFLINE,
    )
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    export_cli(
        f"ckpt_path={ckpt}", "format=hf", f"out={out}", f"hydra.run.dir={tmp_path / 'export'}",
        cwd=tmp_path,
    )  # fmt: skip
    run_cli(
        "fmlab-sample",
        f"ckpt_path={ckpt}",
        f"prompt={PROMPT}",
        "greedy=true",
        f"max_new_tokens={NEW_TOKENS}",
        f"hydra.run.dir={tmp_path / 'sample'}",
        cwd=tmp_path,
        env=OFFLINE,
    )
    ours = (tmp_path / "sample" / "samples.txt").read_text(encoding="utf-8")

    # The user's side: the folder alone, its char tokenizer read from fmlab_tokenizer.json.
    tokenizer = tokenizer_from_dict(json.loads((out / "fmlab_tokenizer.json").read_text()))
    model = transformers.GPT2LMHeadModel.from_pretrained(out, local_files_only=True).eval()
    prompt = torch.as_tensor(tokenizer.encode(PROMPT)).unsqueeze(0)  # (1, T)
    ids = model.generate(
        prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=NEW_TOKENS,
        do_sample=False, pad_token_id=0,
    )  # fmt: skip
    theirs = tokenizer.decode(ids[0].tolist())

    assert ours.startswith(PROMPT) and len(ours) == len(PROMPT) + NEW_TOKENS
    # Words ("\nThe the the ..."), not one character over and over: a text that can differ.
    assert len(set(ours[len(PROMPT) :])) >= 5, ours
    assert theirs == ours
