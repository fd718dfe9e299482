"""Token stores: every source kind round-trips, preparation is deterministic and resumable, and the
tokens of tiny-shakespeare are those the in-memory path gives."""

import gzip
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_DATA, write_text_corpus, write_tiktoken_file

from fmlab.data import shards, source_formats, sources
from fmlab.data.prepare import PrepareSpec, ensure_store
from fmlab.data.text import TextDataModule
from fmlab.data.tokenizers import CharTokenizer, tokenizer_from_dict
from fmlab.data.tokenizers.gpt2_bpe import TiktokenTokenizer
from fmlab.errors import FmlabError

DOCUMENTS = [
    f"Document {i}: {'两只老虎 ' if i % 3 == 0 else ''}the quick fox.\nline two\n"
    for i in range(20)
]


def read_store(folder: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The manifest and each split's tokens, read as a reader would: np.fromfile per shard."""
    manifest = json.loads((folder / "manifest.json").read_text())
    tokens = {}
    for split, info in manifest["splits"].items():
        parts = [np.fromfile(folder / s["file"], dtype=manifest["dtype"]) for s in info["shards"]]
        assert [len(p) for p in parts] == [s["tokens"] for s in info["shards"]]
        tokens[split] = np.concatenate(parts)
    return manifest, tokens


def documents_of(folder: Path) -> dict[str, list[str]]:
    """Each split's documents: its tokens cut after every end-of-text id, decoded."""
    manifest, tokens = read_store(folder)
    tokenizer, eot = tokenizer_from_dict(manifest["tokenizer"]), manifest["eot_id"]
    out = {}
    for split, ids in tokens.items():
        ends = np.flatnonzero(ids == eot)
        assert len(ends) == manifest["splits"][split]["documents"] and ends[-1] == len(ids) - 1
        out[split] = [tokenizer.decode(d) for d in np.split(ids, ends + 1)[:-1] for d in [d[:-1]]]
    return out


def expected_split(documents: list[str], val: float = 0.1) -> dict[str, list[str]]:
    fake = sources.Documents("x", [], val, 0.0, all=lambda: iter(()))
    return {
        split: [d for i, d in enumerate(documents) if fake.split_of(i) == split]
        for split in ("train", "val")
    }


def spec(corpus, tmp_path: Path, **kwargs) -> PrepareSpec:
    return PrepareSpec(
        corpus=str(corpus), data_dir=str(tmp_path), cache_dir=str(tmp_path / "c"), **kwargs
    )


def store_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ---- sources -----------------------------------------------------------------------------------
def write_txt_folder(root: Path) -> Path:
    for i, text in enumerate(DOCUMENTS):
        (root / "docs" / f"sub{i % 2}").mkdir(parents=True, exist_ok=True)
        (root / "docs" / f"sub{i % 2}" / f"{i:03d}.txt").write_text(text, encoding="utf-8")
    return root / "docs"


def write_jsonl(root: Path, gz: bool = False) -> Path:
    path = root / ("docs.jsonl.gz" if gz else "docs.jsonl")
    lines = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(DOCUMENTS))
    path.write_bytes(gzip.compress(lines.encode()) if gz else lines.encode())
    return path


def write_parquet(root: Path) -> Path:
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    folder = root / "pq"
    folder.mkdir()
    for part in range(2):  # two files, several row groups each
        table = pa.table({"text": DOCUMENTS[part * 10 : part * 10 + 10]})
        pq.write_table(table, folder / f"part-{part}.parquet", row_group_size=3)
    return folder


def write_saved_dataset(root: Path) -> Path:
    datasets = pytest.importorskip("datasets", reason="the hf extra (datasets) is not installed")
    datasets.Dataset.from_dict({"text": DOCUMENTS}).save_to_disk(str(root / "saved"))
    return root / "saved"


def txt_in_order(root: Path) -> list[str]:
    """The folder's documents in sorted path order (sub0/000, sub0/002, ..., sub1/001, ...)."""
    return [p.read_text() for p in sorted((root / "docs").rglob("*.txt"))]


@pytest.mark.parametrize(
    "kind", ["folder", "glob", "jsonl", "jsonl.gz", "parquet", "saved_dataset"]
)
def test_every_document_source_round_trips_by_document(kind, tmp_path):
    corpus = {
        "folder": lambda: write_txt_folder(tmp_path),
        "glob": lambda: str(write_txt_folder(tmp_path)) + "/**/*.txt",
        "jsonl": lambda: write_jsonl(tmp_path),
        "jsonl.gz": lambda: write_jsonl(tmp_path, gz=True),
        "parquet": lambda: write_parquet(tmp_path),
        "saved_dataset": lambda: write_saved_dataset(tmp_path),
    }[kind]()
    documents = txt_in_order(tmp_path) if kind in ("folder", "glob") else DOCUMENTS
    folder = ensure_store(spec(corpus, tmp_path))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["eot_id"] == manifest["vocab_size"] - 1  # char: after the unknown id
    assert documents_of(folder) == expected_split(documents)
    assert manifest["splits"]["val"]["documents"] == 1  # of 20 documents (u = 0.944 only)


def test_one_text_file_splits_by_character_like_the_in_memory_path(tmp_path, monkeypatch):
    monkeypatch.setattr(source_formats, "PIECE_BYTES", 20_000)
    monkeypatch.setattr(shards, "CHUNK_CHARS", 20_000)
    if REAL_DATA and (Path(REAL_DATA) / "tinyshakespeare" / "input.txt").is_file():
        (tmp_path / "tinyshakespeare").mkdir()
        source = Path(REAL_DATA) / "tinyshakespeare" / "input.txt"
        (tmp_path / "tinyshakespeare" / "input.txt").write_bytes(source.read_bytes())
    else:
        write_text_corpus(tmp_path / "tinyshakespeare" / "input.txt", chars=50_000)
    text = (tmp_path / "tinyshakespeare" / "input.txt").read_text()
    n = len(text)
    train, val = text[: int(n * 0.9)], text[int(n * 0.9) :]
    folder = ensure_store(spec("tiny_shakespeare", tmp_path, shard_tokens=10_000))
    manifest, tokens = read_store(folder)
    tokenizer = CharTokenizer.train(train)  # what TextDataModule builds today
    assert manifest["tokenizer"] == tokenizer.to_dict() and manifest["eot_id"] is None
    np.testing.assert_array_equal(tokens["train"], tokenizer.encode(train))
    np.testing.assert_array_equal(tokens["val"], tokenizer.encode(val))
    assert manifest["splits"]["train"]["chars"] == len(train)
    sizes = [s["tokens"] for s in manifest["splits"]["train"]["shards"]]
    assert len(sizes) > 1 and min(sizes[:-1]) >= 10_000 and sum(sizes) == len(train)


def test_chinese_text_round_trips_through_bpe_and_char(tmp_path):
    corpus = tmp_path / "zh.txt"
    corpus.write_text("春眠不觉晓，处处闻啼鸟。\nspring sleep\n" * 300, encoding="utf-8")
    text = corpus.read_text()
    for tokenizer in ("char", "bpe"):
        folder = ensure_store(spec(corpus, tmp_path, tokenizer=tokenizer, bpe_vocab_size=300))
        manifest, tokens = read_store(folder)
        decoded = tokenizer_from_dict(manifest["tokenizer"])
        assert decoded.decode(tokens["train"]) + decoded.decode(tokens["val"]) == text


# ---- determinism, resumption, keys -------------------------------------------------------------
def test_preparation_is_byte_identical_for_one_and_two_processes(tmp_path, monkeypatch):
    monkeypatch.setattr(shards, "CHUNK_CHARS", 200)  # many chunks in flight
    corpus = write_jsonl(tmp_path)
    bpe = {"tokenizer": "bpe", "bpe_vocab_size": 300, "shard_tokens": 100}
    one = ensure_store(spec(corpus, tmp_path / "a", **bpe))
    again = ensure_store(spec(corpus, tmp_path / "b", **bpe))
    two = ensure_store(spec(corpus, tmp_path / "c", **bpe, num_proc=2))
    assert len(list(one.glob("train-*.bin"))) > 1
    assert store_bytes(one) == store_bytes(again) == store_bytes(two)
    assert one.name == two.name  # num_proc does not define the store


def test_an_interrupted_preparation_continues_after_its_last_shard(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="fmlab.data.prepare")
    monkeypatch.setattr(source_formats, "PIECE_BYTES", 500)
    monkeypatch.setattr(shards, "CHUNK_CHARS", 500)
    corpus = write_text_corpus(tmp_path / "play.txt", chars=20_000)
    whole = ensure_store(spec(corpus, tmp_path / "whole", shard_tokens=3_000))
    close, closed = shards.ShardWriter.close, []

    def close_then_die(writer):
        close(writer)
        closed.append(writer.name)
        if len(closed) == 2:
            raise KeyboardInterrupt  # as Ctrl-C after the second shard

    monkeypatch.setattr(shards.ShardWriter, "close", close_then_die)
    with pytest.raises(KeyboardInterrupt):
        ensure_store(spec(corpus, tmp_path / "cut", shard_tokens=3_000))
    building = next((tmp_path / "cut" / "c").glob(".*.building"))
    (building / "train-000002.bin").write_bytes(b"half a shard")  # what the kill left
    monkeypatch.setattr(shards.ShardWriter, "close", close)
    resumed = ensure_store(spec(corpus, tmp_path / "cut", shard_tokens=3_000))
    assert "Continuing the interrupted preparation" in caplog.text
    assert store_bytes(resumed) == store_bytes(whole)
    assert not building.exists()


def test_a_changed_source_or_tokenizer_gives_a_new_store(tmp_path):
    corpus = write_text_corpus(tmp_path / "play.txt", chars=5_000)
    first = ensure_store(spec(corpus, tmp_path))
    assert ensure_store(spec(corpus, tmp_path)) == first
    assert ensure_store(spec(first, tmp_path)) == first  # a store folder is used as it is
    assert ensure_store(spec(corpus, tmp_path, tokenizer="bpe", bpe_vocab_size=300)) != first
    write_text_corpus(corpus, chars=5_000, seed=1)
    second = ensure_store(spec(corpus, tmp_path))
    assert second != first and (first / "manifest.json").is_file()


def test_too_few_documents_for_a_split_is_refused(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("just one document\n")
    with pytest.raises(FmlabError, match=r"val split .* is empty.*val_fraction=0.1"):
        ensure_store(spec(tmp_path / "docs", tmp_path))


def test_a_record_without_the_text_field_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n{"body": "no text key"}\n')
    with pytest.raises(FmlabError, match=r"bad.jsonl, line 2.*'text'.*its keys: body.*text_field"):
        ensure_store(spec(path, tmp_path, val_fraction=0.0))


# ---- tokenizers --------------------------------------------------------------------------------
def test_old_char_tokenizer_dicts_still_load():
    old = {"kind": "char", "chars": "ab"}
    assert tokenizer_from_dict(old).to_dict() == old
    assert tokenizer_from_dict(old).eot_id is None and tokenizer_from_dict(old).vocab_size == 3


def test_tiktoken_from_a_local_file_rebuilds_from_its_dict(tmp_path):
    bpe = write_tiktoken_file(tmp_path / "small.tiktoken")
    corpus = write_jsonl(tmp_path)
    folder = ensure_store(spec(corpus, tmp_path, tokenizer="tiktoken", tokenizer_file=str(bpe)))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["eot_id"] == 260 and manifest["vocab_size"] == 261
    assert documents_of(folder) == expected_split(DOCUMENTS)
    rebuilt = tokenizer_from_dict(json.loads(json.dumps(manifest["tokenizer"])))
    assert rebuilt.encode("the the").tolist() == [257, 258]  # "the", " the"
    assert isinstance(rebuilt, TiktokenTokenizer)


def test_tiktoken_without_file_or_network_says_what_to_download(tmp_path, monkeypatch):
    import tiktoken

    def offline(name):
        raise ConnectionError("no network")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    with pytest.raises(FmlabError, match=r"vocab.bpe and .*encoder.json .*data.tokenizer_file"):
        TiktokenTokenizer.load(None)
    with pytest.raises(FmlabError, match=r"lacks vocab.bpe and encoder.json"):
        TiktokenTokenizer.load(str(tmp_path))


# ---- the console script ------------------------------------------------------------------------
def test_fmlab_prepare_prints_the_store_and_its_summary(tmp_path):
    write_text_corpus(tmp_path / "tinyshakespeare" / "input.txt", chars=5_000)
    env = {"FMLAB_DATA_DIR": str(tmp_path), "FMLAB_ROOT": str(tmp_path), "WANDB_MODE": "offline"}
    proc = subprocess.run(
        [sys.executable, "-c", "from fmlab.cli import prepare; prepare()", "data.num_proc=2"],
        cwd=tmp_path,
        env={**__import__("os").environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder, train, val, speed = proc.stdout.strip().splitlines()
    assert (Path(folder) / "manifest.json").is_file()
    assert train.startswith("train: 4,500 tokens") and val.startswith("val: 500 tokens")
    assert "documents" not in train  # one text, split by characters: none to count
    assert "MB/s" in speed


def test_fmlab_prepare_composes_an_experiment_as_fmlab_train_does(tmp_path):
    """The store of `fmlab-prepare experiment=X` is the one `fmlab-train experiment=X` reads; a
    data config that is not text is refused in one paragraph."""
    write_text_corpus(tmp_path / "tinyshakespeare" / "input.txt", chars=5_000)
    env = {**os.environ, "FMLAB_DATA_DIR": str(tmp_path), "FMLAB_ROOT": str(tmp_path)}

    def prepare(*overrides: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-c", "from fmlab.cli import prepare; prepare()", *overrides]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip

    proc = prepare("experiment=gpt_shakespeare_bpe", "data.bpe_vocab_size=300")
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = Path(proc.stdout.splitlines()[0])
    assert json.loads((folder / "manifest.json").read_text())["vocab_size"] == 300
    data = TextDataModule(str(tmp_path), tokenizer="bpe", bpe_vocab_size=300)
    assert data.net_args["vocab_size"] == 300 and data.record["store"] == str(folder)

    refused = prepare("data=cifar10")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "data='fmlab.data.CIFAR10DataModule' is not one" in refused.stderr
