"""Serving a token store: memory-mapped splits, nanoGPT's folders, damaged stores refused, the
windows each DDP rank draws, an exact resume, and the evaluation subset."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import nanogpt_char_folder, run_cli

from fmlab.data.store import Tokens, open_store
from fmlab.data.text import TextDataModule
from fmlab.data.windows import RandomWindows, WindowLoader
from fmlab.errors import FmlabError


def test_a_nanogpt_char_folder_reads_as_a_store(tmp_path):
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 50
    ids, n = nanogpt_char_folder(tmp_path / "shakespeare_char", text)
    store = open_store(tmp_path / "shakespeare_char")
    assert store.vocab_size == len(set(text)) and set(store.splits) == {"train", "val"}
    assert store.splits["train"][:].tolist() == ids[:n].tolist()
    assert store.tokenizer.decode(store.splits["val"][:]) == text[n:]


def test_a_nanogpt_gpt2_folder_trains_as_it_is(tmp_path, synthetic_data):
    """No meta.pkl: GPT-2 ids (nanoGPT's openwebtext layout), vocabulary 50257, no tokenizer."""
    folder = tmp_path / "owt"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rng.integers(0, 50257, 5000, dtype=np.uint16).tofile(folder / "train.bin")
    rng.integers(0, 50257, 1000, dtype=np.uint16).tofile(folder / "val.bin")
    run_cli(
        "fmlab-train", "experiment=gpt_shakespeare_char_cpu", f"data.corpus={folder}",
        "trainer.max_steps=2", "trainer.val_check_interval=2", "data.max_eval_windows=3",
        "model.n_layer=1", "model.n_embd=32", "model.n_head=2", "logger=csv",
        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )  # fmt: skip
    record = json.loads((tmp_path / "run" / "results.json").read_text())
    assert record["data"]["vocab_size"] == 50257 and record["data"]["store_format"] == "nanogpt"
    assert record["data"]["tokens"] == {"train": 5000, "val": 1000}
    assert record["timing"]["train_steps"] == 2 and "val/loss" in record["metrics"]


def test_a_truncated_shard_or_odd_sized_bin_is_refused_by_name(tmp_path):
    folder = tmp_path / "nano"
    folder.mkdir()
    np.arange(101, dtype=np.uint16).tofile(folder / "train.bin")
    with open(folder / "train.bin", "ab") as f:
        f.write(b"\0")  # a write cut short: half a token
    with pytest.raises(FmlabError, match=r"train\.bin has an odd size \(203 bytes\)"):
        open_store(folder)

    store = tmp_path / "store"
    store.mkdir()
    np.arange(100, dtype=np.uint16).tofile(store / "train-000000.bin")
    manifest = {
        "format": "fmlab-token-store", "version": 1, "dtype": "uint16", "vocab_size": 100,
        "tokenizer": {"kind": "char", "chars": "".join(map(chr, range(32, 131)))},
        "splits": {"train": {"tokens": 200, "shards": [{"file": "train-000000.bin",
                                                        "tokens": 200}]}},
    }  # fmt: skip
    (store / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        FmlabError, match=r"train-000000\.bin is 200 bytes, but the manifest says 200"
    ):
        open_store(store)
    (store / "manifest.json").write_text(json.dumps(manifest)[:40])
    with pytest.raises(FmlabError, match=r"store .* is damaged: .*manifest\.json cannot be used"):
        open_store(store)


def test_a_split_of_several_shards_reads_as_one_sequence(tmp_path):
    parts = [np.arange(0, 7), np.arange(7, 8), np.arange(8, 20)]
    maps = []
    for i, part in enumerate(parts):
        part.astype(np.uint32).tofile(tmp_path / f"{i}.bin")
        maps.append(np.memmap(tmp_path / f"{i}.bin", dtype=np.uint32, mode="r"))
    tokens = Tokens(maps)
    index = np.array([[5, 6, 7, 8, 9], [0, 19, 7, 3, 12]])
    assert len(tokens) == 20 and tokens[index].tolist() == index.tolist()
    assert tokens[6:9].tolist() == [6, 7, 8]


def windows(tokens, rank=0, world=1, batch=4):
    return iter(RandomWindows(tokens, block_size=8, batch_size=batch, seed=3, rank=rank,
                              world_size=world))  # fmt: skip


def test_ddp_ranks_draw_disjoint_shares_of_one_sequence():
    tokens = Tokens([np.arange(10_000, dtype=np.uint16)])
    alone = [next(windows(tokens, batch=8)) for _ in range(1)][0]
    first, second = next(windows(tokens, 0, 2)), next(windows(tokens, 1, 2))
    assert torch.equal(torch.cat([first, second]), alone)  # one process, twice the batch
    assert not set(first[:, 0].tolist()) & set(second[:, 0].tolist())
    assert torch.equal(first[:, 1:] - first[:, :-1], torch.ones(4, 8, dtype=first.dtype))


def test_a_resumed_loader_draws_the_windows_it_would_have_drawn_next():
    tokens = Tokens([np.arange(10_000, dtype=np.uint16)])
    loader = WindowLoader(RandomWindows(tokens, 8, 4, seed=3), batch_size=None)
    it = iter(loader)
    drawn = [next(it) for _ in range(5)]
    for _ in drawn:
        loader.trained()  # as the data module counts them, on the device
    state = loader.state_dict()
    assert state == {"batches": 5}
    resumed = WindowLoader(RandomWindows(tokens, 8, 4, seed=3), batch_size=None)
    resumed.load_state_dict(state)
    following = next(iter(resumed))
    assert torch.equal(following, next(it)) and not torch.equal(following, drawn[0])


def test_max_eval_windows_scores_the_same_evenly_spread_subset(tmp_path):
    nanogpt_char_folder(tmp_path / "c", "abcdefgh\n" * 2000)  # val: 1800 tokens
    data = TextDataModule(str(tmp_path), str(tmp_path / "c"), block_size=16, eval_batch_size=4,
                          max_eval_windows=10)  # fmt: skip
    data.setup("fit")
    loader = data.val_dataloader()
    starts = loader.dataset.starts.tolist()
    assert len(starts) == 10 and starts[0] == 0 and starts[-1] == 111 * 16  # 112 windows in all
    assert [len(b) for b in loader] == [4, 4, 2]
    assert data.val_dataloader().dataset.starts.tolist() == starts  # the same every validation
    whole = TextDataModule(str(tmp_path), str(tmp_path / "c"), block_size=16, eval_batch_size=4)
    whole.setup("fit")
    assert sum(len(b) for b in whole.val_dataloader()) == 112


@pytest.mark.slow  # three fmlab-train runs: .ci/run runs it after `make test`
def test_a_crashed_language_model_resumes_with_the_windows_it_had_left(synthetic_text, tmp_path):
    """Crashed at step 7 (newest checkpoint: step 6), re-run with the same command: it ends with
    the weights of an uninterrupted run, so the windows after the resume are those it would have
    drawn (a loader that began its sequence again would train on steps 1-3's windows twice)."""

    def train(run: str, *extra: str, check=True):
        return run_cli(
            "fmlab-train", "experiment=gpt_shakespeare_char_cpu",
            f"paths.data_dir={synthetic_text}",
            "data.block_size=16", "model.n_layer=1", "model.n_embd=32", "trainer.max_steps=10",
            "trainer.val_check_interval=10", "callbacks.step_checkpoint.every_n_train_steps=3",
            "trainer.deterministic=true", "logger=csv", f"hydra.run.dir={tmp_path / run}", *extra,
            cwd=tmp_path, env={"PYTHONPATH": str(Path(__file__).parents[1])}, check=check,
        )  # fmt: skip

    train("reference")
    crash = ["+callbacks.crash._target_=faults.RaiseAt", "+callbacks.crash.step=7"]
    assert train("run", *crash, check=False).returncode == 1
    proc = train("run", *crash)
    assert "Resuming from" in proc.stdout + proc.stderr
    ours, theirs = (
        torch.load(tmp_path / r / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for r in ("run", "reference")
    )
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
