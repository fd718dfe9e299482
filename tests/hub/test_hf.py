"""The Hugging Face ecosystem, offline: fmlab's GPT exported as GPT-2 (same logits, same greedy
ids), transformers models trained as fmlab nets, LoRA adapters. Every model is built from a
config at width 32 and saved into a temporary folder: nothing is downloaded."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import TINY_CHAR_GPT, run_cli
from omegaconf import OmegaConf

from fmlab.commands.export import export
from fmlab.commands.sample import load_language_model
from fmlab.data.tokenizers import tokenizer_from_dict
from fmlab.errors import FmlabError
from fmlab.hub.gpt2 import to_gpt2
from fmlab.hub.models import HFCausalLM
from fmlab.nets import GPT
from fmlab.techniques.lora import apply_lora, merge_lora

transformers = pytest.importorskip("transformers")

OFFLINE = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
TINY_GPT = [
    *TINY_CHAR_GPT,
    "data.tokenizer=bpe",
    "data.bpe_vocab_size=300",
    "model.n_embd=32",
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "logger=none",
    "test=false",
]
HF_RUN = [  # the recipe, shrunk
    "experiment=hf_lm_shakespeare",
    "data.block_size=16",
    "data.batch_size=4",
    "data.max_eval_windows=8",
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "logger=none",
]
GPT_LINEARS = "[c_attn,c_proj,mlp.0,mlp.2]"


def export_cli(*args: str, cwd):
    """fmlab-export as its console script runs it (the script exists once fmlab is reinstalled)."""
    command = [sys.executable, "-c", "from fmlab.cli import export; export()", *args]
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        said = (proc.stdout + proc.stderr)[-4000:]
        raise AssertionError(f"fmlab-export {args} exited {proc.returncode}:\n{said}")
    return proc


def greedy(net, idx: torch.Tensor, steps: int) -> torch.Tensor:
    for _ in range(steps):
        logits, _ = net(idx)
        idx = torch.cat((idx, logits[:, -1].argmax(-1, keepdim=True)), dim=1)
    return idx


@pytest.fixture(scope="module")
def runs(synthetic_text, tmp_path_factory):
    """Two 2-step runs of a tiny fmlab GPT on the synthetic play (bpe tokenizer): all weights,
    and LoRA adapters on every Linear of its blocks."""
    root = tmp_path_factory.mktemp("hf")
    common = [*TINY_GPT, f"paths.data_dir={synthetic_text}"]
    full, lora = root / "full", root / "lora"
    run_cli("fmlab-train", *common, f"hydra.run.dir={full}", cwd=root, env=OFFLINE)
    run_cli(
        "fmlab-train",
        *common,
        f"task.lora.target_modules={GPT_LINEARS}",
        f"hydra.run.dir={lora}",
        cwd=root,
        env=OFFLINE,
    )
    return root, full / "checkpoints" / "last.ckpt", lora


MUP = {
    "parametrization": "mup",
    "mup_base_width": 8,
    "mup_input_alpha": 2.0,
    "mup_output_alpha": 3.0,
}


@pytest.mark.parametrize(
    "options",
    [{}, {"bias": True, "vocab_multiple": 8}, {**MUP, "bias": True}],
    ids=["plain", "bias-padded", "mup"],
)
def test_gpt_as_gpt2_gives_the_same_logits_and_greedy_ids(options):
    # μP at 4x its base width: its input, output and attention multipliers are folded into the
    # weights; a multiplier left out would change the logits.
    torch.manual_seed(0)
    net = GPT(61, 16, n_layer=2, n_head=2, n_embd=32, **options)
    with torch.no_grad():  # non-zero biases and norms: a transposition or a dropped bias would show
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    net.eval()
    gpt2 = to_gpt2(net, eot_id=None)
    idx = torch.randint(0, 61, (3, 16))
    with torch.no_grad():
        ours, theirs = net(idx)[0], gpt2(idx).logits
        assert theirs.shape == ours.shape == (3, 16, 61)  # padding rows are not exported
        torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
        prompt = idx[:, :4]
        ids = gpt2.generate(  # every prompt token is real: no id stands for padding
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8, do_sample=False,
            pad_token_id=0,
        )  # fmt: skip
        assert torch.equal(ids, greedy(net, prompt, 8))


@pytest.mark.slow  # fmlab-train runs: .ci/run runs it after `make test`
def test_export_of_a_trained_gpt_loads_in_transformers_and_as_an_fmlab_net(runs):
    root, ckpt, _ = runs
    out = root / "exported"
    export_cli(f"ckpt_path={ckpt}", f"out={out}", f"hydra.run.dir={root / 'e1'}", cwd=root)
    net, tokenizer, block_size = load_language_model(ckpt, "cpu")
    text = "ROMEO:\nGood night, sweet lord.\n"
    idx = torch.as_tensor(tokenizer.encode(text)).unsqueeze(0)[:, :block_size]  # (1, T)

    model = transformers.GPT2LMHeadModel.from_pretrained(out, local_files_only=True).eval()
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert hf_tokenizer(text)["input_ids"] == tokenizer.encode(text).tolist()
    saved = json.loads((out / "fmlab_tokenizer.json").read_text())
    assert tokenizer_from_dict(saved).to_dict() == tokenizer.to_dict()
    with torch.no_grad():
        torch.testing.assert_close(model(idx).logits, net(idx)[0], atol=1e-5, rtol=1e-5)

    # model=hf_causal_lm takes the folder back: on one batch it scores exactly as fmlab's net.
    x, y = idx[:, :-1], idx[:, 1:]
    wrapped = HFCausalLM(str(out), vocab_size=tokenizer.vocab_size, block_size=block_size).eval()
    with torch.no_grad():
        assert wrapped(x, y)[1].item() == pytest.approx(net(x, y)[1].item(), abs=1e-5)

    # ... and trains on with it, the data tokenised by the model's own tokenizer.
    run_dir = root / "continued"
    config = json.loads((ckpt.parent.parent / "results.json").read_text())["config"]
    run_cli(
        "fmlab-train",
        *HF_RUN,
        f"model.name_or_path={out}",
        f"paths.data_dir={config['paths']['data_dir']}",
        f"hydra.run.dir={run_dir}",
        cwd=root,
        env=OFFLINE,
    )
    trained = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    before = model.state_dict()
    changed = [
        k
        for k, v in trained.items()
        if k.startswith("net.model.") and not torch.equal(v, before[k.removeprefix("net.model.")])
    ]
    assert changed, "two training steps changed no weight"
    record = json.loads((run_dir / "results.json").read_text())
    assert record["data"]["tokenizer"] == f"hf:{out}"


@pytest.mark.slow  # fmlab-train runs: .ci/run runs it after `make test`
def test_lora_trains_only_the_adapters_and_merged_export_keeps_the_logits(runs):
    root, full_ckpt, lora_run = runs
    record = json.loads((lora_run / "results.json").read_text())["lora"]
    assert 0 < record["trainable_params"] < record["total_params"]
    assert len(record["base_sha256"]) == 64

    # fmlab-export's job in this process (the test above runs its command line).
    ckpt, out = lora_run / "checkpoints" / "last.ckpt", root / "merged"
    settings = {"ckpt_path": str(ckpt), "out": str(out), "format": "hf", "merge_lora": False}
    with pytest.raises(FmlabError, match="Pass merge_lora=true"):
        export(OmegaConf.create(settings))
    export(OmegaConf.create({**settings, "merge_lora": True}))
    with pytest.raises(FmlabError, match="has no LoRA adapters"):
        export(OmegaConf.create({**settings, "ckpt_path": str(full_ckpt), "merge_lora": True}))
    net, tokenizer, block_size = load_language_model(ckpt, "cpu")  # adapters in place
    model = transformers.GPT2LMHeadModel.from_pretrained(out, local_files_only=True).eval()
    idx = torch.as_tensor(tokenizer.encode("JULIET:\nThou art my love.\n"))[None, :block_size]
    with torch.no_grad():
        torch.testing.assert_close(model(idx).logits, net(idx)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.slow  # fmlab-train runs: .ci/run runs it after `make test`
def test_safetensors_export_is_the_plain_state_dict_of_any_net(runs):
    from safetensors.torch import load_file

    root, ckpt, _ = runs
    out = root / "plain"
    settings = {"ckpt_path": str(ckpt), "out": str(out), "format": "safetensors"}
    settings["merge_lora"] = False
    export(OmegaConf.create(settings))
    saved = load_file(out / "model.safetensors")
    net, _, _ = load_language_model(ckpt, "cpu")
    assert saved.keys() == net.state_dict().keys()  # the net's own names: no task prefix
    assert all(torch.equal(saved[k], v) for k, v in net.state_dict().items())


@pytest.mark.filterwarnings("ignore:fan_in_fan_out is set to False:UserWarning")  # GPT-2's Conv1D
@pytest.mark.parametrize("kind", ["fmlab_gpt", "hf_gpt2"])
def test_a_lora_step_changes_only_adapters_and_merging_keeps_the_outputs(kind, hf_model_dir):
    if kind == "fmlab_gpt":
        torch.manual_seed(0)
        net, targets = GPT(96, 32, n_layer=1, n_head=2, n_embd=32), GPT_LINEARS[1:-1].split(",")
    else:  # GPT-2's Conv1D layers: peft adapts them with fan_in_fan_out
        net, targets = HFCausalLM(str(hf_model_dir), 96, 32), ["c_attn", "c_proj", "c_fc"]
    record = apply_lora(net, r=4, alpha=8, dropout=0.0, target_modules=targets)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert record["trainable_params"] == sum(p.numel() for p in net.parameters() if p.requires_grad)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    idx = torch.randint(0, 96, (2, 32))
    net(idx[:, :-1], idx[:, 1:])[1].backward()
    optimizer.step()
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all("lora_" in k for k in changed)

    net.eval()
    with torch.no_grad():
        adapted = net(idx)[0]
        merge_lora(net)
        assert not any("lora_" in k for k in net.state_dict())
        torch.testing.assert_close(net(idx)[0], adapted, atol=1e-5, rtol=1e-5)


@pytest.mark.slow  # fmlab-train runs: .ci/run runs it after `make test`
def test_a_hub_id_offline_and_not_cached_is_one_clear_error(synthetic_text, tmp_path):
    proc = run_cli(
        "fmlab-train",
        *HF_RUN,
        "model.name_or_path=fmlab-test/no-such-model",
        f"paths.data_dir={synthetic_text}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        env={**OFFLINE, "HF_HOME": str(tmp_path / "hf")},
        check=False,
    )
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in said
    # The recipe's tokenizer is the model's own: the data, built first, names it.
    assert "data.tokenizer=hf:fmlab-test/no-such-model is not in the Hugging Face cache" in said
    assert "HF_HUB_OFFLINE is set" in said and "pass data.tokenizer=hf:DIR" in said

    # Any other tokenizer: the model names it (the same message, in this process: no second run).
    with pytest.raises(FmlabError, match="model.name_or_path=fmlab-test/no-such-model is not in"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HF_HUB_OFFLINE", "1")
            HFCausalLM("fmlab-test/no-such-model", vocab_size=65, block_size=16)


def test_a_hf_model_classifies_labelled_text_with_its_own_tokenizer(hf_model_dir, tmp_path):
    words = {"pos": "good sweet love day", "neg": "bad sour hate night"}
    lines = [
        f"{label}\t" + " ".join(words[label].split()[(i + j) % 4] for j in range(6))
        for i in range(40)
        for label in words
    ]
    (tmp_path / "labels.tsv").write_text("\n".join(lines) + "\n")
    model = hf_model_dir  # a causal LM's folder: a new classification head goes on top
    run_dir = tmp_path / "run"
    run_cli(
        "fmlab-train",
        "data=labelled_text",
        f"data.path={tmp_path / 'labels.tsv'}",
        f"data.tokenizer=hf:{model}",
        "data.max_length=16",
        "data.batch_size=16",
        "model=hf_sequence_classifier",
        f"model.name_or_path={model}",
        "task.lora.target_modules=[c_attn]",  # the adapters and the new head train, nothing else
        "optimizer=adamw",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "logger=none",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        env=OFFLINE,
    )
    record = json.loads((run_dir / "results.json").read_text())
    assert {"test/acc", "val/acc"} <= set(record["metrics"])
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    weights = checkpoint["state_dict"]
    assert weights["net.model.score.weight"].shape == (2, 32)  # a new 2-class head
    # Only what trained is kept (head, A, B); the frozen base is named by its origin and hash.
    assert all("lora_" in k or k == "net.model.score.weight" for k in weights)
    lora = record["lora"]
    assert lora["trainable_params"] == 2 * 32 + 8 * 32 + 96 * 8  # head (no bias), A, B (r=8)
    assert sum(v.numel() for v in weights.values()) == lora["trainable_params"]
    assert checkpoint["lora_base"] == {
        "identity": f"model.name_or_path={model}",
        "sha256": lora["base_sha256"],
    }
    states = [v for v in checkpoint.values() if isinstance(v, dict) and "tokenizer" in v]
    assert states[0]["tokenizer"]["kind"] == "hf"  # the checkpoint decodes without the folder


@pytest.mark.slow  # fmlab-train runs: .ci/run runs it after `make test`
def test_a_mup_checkpoint_evaluates_samples_and_exports_like_any_gpt(synthetic_text, tmp_path):
    # μP at twice its base width, its multipliers away from 1: the export folds them into GPT-2's
    # weights; transformers then gives fmlab's logits and greedy text.
    run = tmp_path / "mup"
    run_cli(
        "fmlab-train",
        "experiment=mutransfer_shakespeare_char",
        *("model.n_embd=64", "model.mup_base_width=32", "model.mup_input_alpha=2.0"),
        *("model.mup_output_alpha=0.5", "trainer.max_steps=3", "trainer.val_check_interval=3"),
        "scheduler.lr_lambda.warmup_iters=1",
        *("data.max_eval_windows=8", "logger=none", f"paths.data_dir={synthetic_text}"),
        f"hydra.run.dir={run}",
        cwd=tmp_path,
        env=OFFLINE,
    )
    ckpt = run / "checkpoints" / "last.ckpt"
    run_cli("fmlab-eval", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path)
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["metrics"]["val/loss"] > 0
    out = tmp_path / "exported"
    export_cli(f"ckpt_path={ckpt}", f"out={out}", f"hydra.run.dir={tmp_path / 'e'}", cwd=tmp_path)
    net, tokenizer, _ = load_language_model(ckpt, "cpu")
    assert net.parametrization == "mup" and net.output_mult == 0.25
    model = transformers.GPT2LMHeadModel.from_pretrained(out, local_files_only=True).eval()
    idx = torch.as_tensor(tokenizer.encode("ROMEO:\nGood night")).unsqueeze(0)
    with torch.no_grad():
        torch.testing.assert_close(model(idx).logits, net(idx)[0], atol=1e-5, rtol=1e-5)
    sampled = run_cli(
        "fmlab-sample", f"ckpt_path={ckpt}", "prompt=ROMEO", "greedy=true", "max_new_tokens=8",
        f"hydra.run.dir={tmp_path / 's'}", cwd=tmp_path,
    ).stdout  # fmt: skip
    prompt = idx[:, :5]
    ids = model.generate(
        prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8, do_sample=False,
        pad_token_id=0,
    )  # fmt: skip
    assert tokenizer.decode(ids[0].tolist()) in sampled
