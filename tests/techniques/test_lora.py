"""LoRA (fmlab.techniques.lora): a tiny fmlab GPT through the real CLI checkpoints only its adapters
and the record of its base, resumes exactly, is refused on another base, is read back by fmlab-eval
and merges to the same logits; fmlab's BERT takes adapters in its attention and MLP linears."""

import json
from functools import partial

import pytest
import torch
from conftest import TINY_CHAR_GPT, run_cli
from omegaconf import OmegaConf

from fmlab.commands.export import export
from fmlab.commands.sample import load_language_model
from fmlab.errors import FmlabError
from fmlab.nets import GPT, Bert
from fmlab.tasks import ImageClassifier, MaskedLM
from fmlab.techniques.lora import apply_lora
from fmlab.techniques.rebuild import base_net
from fmlab.techniques.transfer import read_init_from

ENV = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
LORA_GPT = [
    *TINY_CHAR_GPT,
    "model.n_embd=32",
    "trainer.val_check_interval=2",
    "logger=none",
    "test=false",
    "task.lora.target_modules=[c_attn,c_proj,mlp.0,mlp.2]",
]
BERT_LINEARS = ["qkv", "proj", "mlp.0", "mlp.2"]


def train(root, run: str, *extra: str, check: bool = True):
    return run_cli(
        "fmlab-train", *LORA_GPT, *extra, f"hydra.run.dir={root / run}", cwd=root, env=ENV,
        check=check,
    )  # fmt: skip


def last(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


def record(run_dir) -> dict:
    return json.loads((run_dir / "results.json").read_text())


@pytest.fixture(scope="module")
def straight(synthetic_text, tmp_path_factory):
    """Four LoRA steps of a tiny GPT, validated at steps 2 and 4."""
    root = tmp_path_factory.mktemp("lora")
    train(root, "straight", f"paths.data_dir={synthetic_text}", "trainer.max_steps=4")
    return root / "straight"


@pytest.mark.slow  # fmlab-train runs: .ci/run runs it after `make test`
def test_only_the_adapters_are_checkpointed_and_a_run_resumes_exactly(straight, synthetic_text):
    checkpoint, done = last(straight), record(straight)
    saved = checkpoint["state_dict"]
    assert saved and all("lora_" in k for k in saved)  # no base weight, not even the tied head
    trainable = sum(v.numel() for v in saved.values())
    assert trainable == done["lora"]["trainable_params"] == done["parameters"]["trainable"]
    assert done["parameters"]["total"] == done["lora"]["total_params"] > 4 * trainable
    assert checkpoint["lora_base"] == {
        "identity": "random init, seed=42",
        "sha256": done["lora"]["base_sha256"],
    }

    # Two steps, then the same command continued to four: the same adapters, the same loss.
    root, data = straight.parent, f"paths.data_dir={synthetic_text}"
    train(root, "resumed", data, "trainer.max_steps=2")
    train(root, "resumed", data, "trainer.max_steps=4")
    resumed = last(root / "resumed")["state_dict"]
    assert resumed.keys() == saved.keys()
    assert all(torch.equal(resumed[k], saved[k]) for k in saved)
    assert record(root / "resumed")["metrics"]["val/loss"] == done["metrics"]["val/loss"]


@pytest.mark.slow  # fmlab-train and fmlab-eval runs: .ci/run runs it after `make test`
def test_the_adapters_are_read_on_their_base_and_refused_on_another(straight, synthetic_text):
    root, ckpt = straight.parent, straight / "checkpoints" / "last.ckpt"
    proc = train(
        root, "other_base", f"paths.data_dir={synthetic_text}", "seed=7", f"ckpt_path={ckpt}",
        "trainer.max_steps=6", check=False,
    )  # fmt: skip
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in said
    base = record(straight)["lora"]["base_sha256"]
    assert f"trained on the base random init, seed=42 (base_sha256 {base})" in said
    assert "the base given here, random init, seed=7, has base_sha256" in said

    # fmlab-eval rebuilds the base and scores the final weights as training validated them.
    evaluated = root / "eval"
    run_cli(
        "fmlab-eval", f"ckpt_path={ckpt}", "split=val", "data.max_eval_windows=8",
        f"paths.data_dir={synthetic_text}", f"hydra.run.dir={evaluated}", cwd=root, env=ENV,
    )  # fmt: skip
    val_loss = record(evaluated)["metrics"]["val/loss"]
    assert val_loss == pytest.approx(record(straight)["metrics"]["val/loss"], abs=1e-6)


@pytest.mark.slow  # uses the fmlab-train run of `straight`
def test_merged_export_of_adapters_only_gives_the_same_logits(straight, tmp_path):
    ckpt = straight / "checkpoints" / "last.ckpt"
    settings = {"ckpt_path": str(ckpt), "out": str(tmp_path), "format": "safetensors"}
    export(OmegaConf.create({**settings, "merge_lora": True}))
    from safetensors.torch import load_file

    adapted, tokenizer, block_size = load_language_model(ckpt, "cpu")
    plain = GPT(tokenizer.vocab_size, block_size, n_layer=1, n_head=2, n_embd=32, dropout=0.0)
    plain.load_state_dict(load_file(tmp_path / "model.safetensors"))  # strict: no adapter left
    idx = torch.as_tensor(tokenizer.encode("ROMEO:\nGood night.\n"))[None, :block_size]
    with torch.no_grad():
        merged, unmerged = plain.eval()(idx)[0], adapted(idx)[0]
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-5)

    # init_from an adapter-only checkpoint: every tensor of a plain GPT, from the merged net.
    config = record(straight)["config"]
    plain_run = OmegaConf.create({**config, "task": {"lora": None}, "init_from": str(ckpt)})
    net_args = {"vocab_size": tokenizer.vocab_size, "block_size": block_size}
    net, report = base_net(plain_run, net_args, read_init_from(ckpt))
    assert report["loaded"] == report["of"] and not report["unused_from_checkpoint"]
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in net.state_dict().items())


def tiny_bert(seed: int) -> Bert:
    torch.manual_seed(seed)
    return Bert(50, 2, 0, 16, n_layer=2, n_embd=32, n_head=2)


def test_bert_takes_adapters_in_its_attention_and_mlp_and_checkpoints_only_them():
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": BERT_LINEARS}
    optimizer = partial(torch.optim.AdamW, lr=1e-3)
    mlm = MaskedLM(tiny_bert(0), optimizer, lora=lora)
    trainable = [n for n, p in mlm.net.named_parameters() if p.requires_grad]
    assert len(trainable) == 2 * 4 * 2  # A and B of 4 linears in 2 blocks, nothing else
    assert {n.split(".lora_")[0].split(".", 2)[2] for n in trainable} == {
        "attn.qkv", "attn.proj", "mlp.0", "mlp.2",
    }  # fmt: skip

    classifier = ImageClassifier(tiny_bert(0), optimizer, lora=lora)  # the head trains too
    checkpoint = {"state_dict": classifier.state_dict()}
    classifier.on_save_checkpoint(checkpoint)
    kept = set(checkpoint["state_dict"])
    assert kept == {f"net.{n}" for n, p in classifier.net.named_parameters() if p.requires_grad}
    assert {"net.classifier.weight", "net.classifier.bias"} <= kept

    # The same base takes the adapters back (strictly); another one is refused with both hashes.
    again = ImageClassifier(tiny_bert(0), optimizer, lora=lora)
    again.load_state_dict(again.full_state(checkpoint))
    other = ImageClassifier(tiny_bert(1), optimizer, lora=lora)
    with pytest.raises(FmlabError, match=checkpoint["lora_base"]["sha256"]):
        other.full_state(checkpoint)

    with pytest.raises(FmlabError, match="fmlab's BERT: qkv, proj, mlp.0, mlp.2"):
        apply_lora(tiny_bert(0), r=4, alpha=8, dropout=0.0, target_modules=["c_attn"])
