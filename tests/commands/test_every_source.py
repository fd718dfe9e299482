"""Every kind of text source a language model trains on, read back by every checkpoint reader: a
text file (char, bpe, tiktoken), JSON Lines, Parquet, nanoGPT's folders (with meta.pkl, and of
GPT-2 ids without it) and a store made first by fmlab-prepare, each trained once by fmlab-train
(shrunk to seconds), then sampled, evaluated and exported to transformers. Each reader rebuilds
the net from the checkpoint's net_args: a net sized by a tokenizer built again would not load (a
nanoGPT char folder: 65 ids in meta.pkl, 66 in its tokenizer, which adds the unknown id)."""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    TINY_CHAR_GPT,
    nanogpt_char_folder,
    run_cli,
    write_text_corpus,
    write_tiktoken_file,
)

from fmlab.commands.evaluate import evaluate
from fmlab.commands.export import export
from fmlab.commands.sample import generate, load_language_model, sample
from fmlab.data.tokenizers import tokenizer_from_dict
from fmlab.errors import FmlabError

OFFLINE = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
TRAIN = [
    *TINY_CHAR_GPT,
    "model.n_embd=16",
    "data.eval_batch_size=16",  # GPT-2's 50,257 logits per position: small evaluation batches
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "logger=none",
    "test=false",
]
BPE = ["data.tokenizer=bpe", "data.bpe_vocab_size=300"]
CHARS = 20_000
# 6 + 8 tokens fit the context of 16: GPT-2 has no positions past it (fmlab crops).
PROMPT, NEW_TOKENS = "ROMEO:", 8

SOURCES = [
    "text-char",
    "text-bpe",
    "text-tiktoken",
    "jsonl",
    "parquet",
    "nanogpt-char",
    "nanogpt-gpt2",  # GPT-2 ids, no meta.pkl: the checkpoint carries no tokenizer
    "prepared-store",
]


@dataclass(frozen=True)
class Trained:
    source: str
    folder: Path  # the source's data folder
    ckpt: Path

    @property
    def has_tokenizer(self) -> bool:
        return self.source != "nanogpt-gpt2"


def play_documents(folder: Path) -> list[str]:
    """The synthetic play cut into its speeches: one document each."""
    text = write_text_corpus(folder / "play.txt", CHARS).read_text()
    (folder / "play.txt").unlink()  # the documents alone are the corpus
    return [f"{part}\n" for part in text.split("\n\n") if part.strip()]


def source_overrides(source: str, folder: Path) -> list[str]:
    """Writes the source into ``folder``; the data overrides that train on it."""
    if source.startswith("text-"):
        corpus = write_text_corpus(folder / "play.txt", CHARS)
        tokenizer = {
            "text-char": [],
            "text-bpe": BPE,
            "text-tiktoken": [
                "data.tokenizer=tiktoken",
                f"data.tokenizer_file={write_tiktoken_file(folder / 'small.tiktoken')}",
            ],
        }[source]
        return [f"data.corpus={corpus}", *tokenizer]
    if source == "jsonl":
        lines = "".join(json.dumps({"text": d}) + "\n" for d in play_documents(folder))
        (folder / "play.jsonl").write_text(lines, encoding="utf-8")
        return [f"data.corpus={folder / 'play.jsonl'}"]
    if source == "parquet":
        pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
        documents = play_documents(folder)
        (folder / "pq").mkdir()
        half = len(documents) // 2
        for part, rows in enumerate((documents[:half], documents[half:])):  # two files
            pq.write_table(pa.table({"text": rows}), folder / "pq" / f"part-{part}.parquet")
        return [f"data.corpus={folder / 'pq'}"]
    if source == "nanogpt-char":
        text = write_text_corpus(folder / "play.txt", CHARS).read_text()
        nanogpt_char_folder(folder / "shakespeare_char", text)
        return [f"data.corpus={folder / 'shakespeare_char'}"]
    if source == "nanogpt-gpt2":  # nanoGPT's openwebtext layout: GPT-2 ids, no meta.pkl
        (folder / "owt").mkdir()
        rng = np.random.default_rng(0)
        rng.integers(0, 50257, 2000, dtype=np.uint16).tofile(folder / "owt" / "train.bin")
        rng.integers(0, 50257, 500, dtype=np.uint16).tofile(folder / "owt" / "val.bin")
        # What its user would say; a folder of ids is used as it is, with no tokenizer.
        return [f"data.corpus={folder / 'owt'}", "data.tokenizer=tiktoken"]
    assert source == "prepared-store"
    corpus = write_text_corpus(folder / "play.txt", CHARS)
    proc = run_cli(
        "fmlab-prepare", "experiment=gpt_shakespeare_char_cpu", f"data.corpus={corpus}", *BPE,
        f"hydra.run.dir={folder / 'prepare'}", cwd=folder, env=OFFLINE,
    )  # fmt: skip
    store = Path(proc.stdout.splitlines()[0])
    assert (store / "manifest.json").is_file(), proc.stdout
    return [f"data.corpus={store}", *BPE]


@pytest.fixture(scope="module", params=SOURCES)
def trained(request, tmp_path_factory) -> Trained:
    """The source written and trained on once, by fmlab-train's command line."""
    source = request.param
    folder = tmp_path_factory.mktemp(source)
    run = folder / "run"
    run_cli(
        "fmlab-train", *TRAIN, *source_overrides(source, folder), f"paths.data_dir={folder}",
        f"hydra.run.dir={run}", cwd=folder, env=OFFLINE,
    )  # fmt: skip
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    return Trained(source, folder, ckpt)


def sample_cfg(compose_cfg, trained: Trained):
    return compose_cfg(
        "sample",
        [f"ckpt_path={trained.ckpt}", f"prompt={PROMPT}", "greedy=true",
         f"max_new_tokens={NEW_TOKENS}"],
    )  # fmt: skip


def test_fmlab_sample_writes_the_prompt_and_what_follows(trained, compose_cfg, tmp_path):
    cfg = sample_cfg(compose_cfg, trained)
    if not trained.has_tokenizer:
        # GPT-2 ids without meta.pkl: fmlab keeps no tokenizer, so none can decode what it writes.
        with pytest.raises(FmlabError, match=r"holds no tokenizer"):
            sample(cfg)
        assert not (tmp_path / "samples.txt").exists()
        return
    texts = sample(cfg)
    written = (tmp_path / "samples.txt").read_text(encoding="utf-8")
    assert written == texts[0]
    assert written.startswith(PROMPT) and len(written) > len(PROMPT), written


def test_fmlab_eval_scores_the_val_split(trained, compose_cfg, tmp_path):
    cfg = compose_cfg("eval", [f"ckpt_path={trained.ckpt}", "split=val", "logger=none"])
    cfg.paths.data_dir = str(trained.folder)
    record = evaluate(cfg)
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["split"] == "val" and written["metrics"] == record["metrics"]
    loss = written["metrics"]["val/loss"]
    assert math.isfinite(loss) and loss > 0, written["metrics"]


def test_fmlab_export_greedy_text_in_transformers_is_fmlab_samples(trained, compose_cfg, tmp_path):
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "hf"
    cfg = compose_cfg("export", [f"ckpt_path={trained.ckpt}", "format=hf", f"out={out}"])
    if not trained.has_tokenizer:  # its plain weights only
        with pytest.raises(FmlabError, match=r"holds none\. Use format=safetensors"):
            export(cfg)
        cfg.format = "safetensors"
        export(cfg)
        assert (out / "model.safetensors").is_file()
        return
    export(cfg)
    ours = sample(sample_cfg(compose_cfg, trained))[0]  # fmlab-sample greedy=true's text
    net, fmlab_tokenizer, block_size = load_language_model(trained.ckpt, "cpu")
    prompt = torch.as_tensor(fmlab_tokenizer.encode(PROMPT)).unsqueeze(0)  # (1, T)
    our_ids = generate(net, prompt, NEW_TOKENS, block_size, greedy=True)

    # The user's side: the folder alone, its tokenizer read from fmlab_tokenizer.json.
    tokenizer = tokenizer_from_dict(json.loads((out / "fmlab_tokenizer.json").read_text()))
    model = transformers.GPT2LMHeadModel.from_pretrained(out, local_files_only=True).eval()
    # fmlab-sample writes max_new_tokens whatever they are; generate would stop at end-of-text.
    model.generation_config.eos_token_id = None
    prompt = torch.as_tensor(tokenizer.encode(PROMPT)).unsqueeze(0)
    ids = model.generate(
        prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=NEW_TOKENS,
        do_sample=False, pad_token_id=0,
    )  # fmt: skip
    assert ids[0].tolist() == our_ids[0].tolist()
    assert tokenizer.decode(ids[0].tolist()) == ours
    # Four steps teach little (greedy text repeats a token): the logits at every position agree.
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, net(ids)[0], atol=1e-5, rtol=1e-5)
