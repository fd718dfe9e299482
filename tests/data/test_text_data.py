"""Text data: tokenizers, splits, windows, the token cache, and the offline message."""

import json
from pathlib import Path

import pytest
import torch
from conftest import run_cli, write_text_corpus

from fmlab.data import corpora
from fmlab.data.text import TextDataModule
from fmlab.data.tokenizers import BPETokenizer, CharTokenizer, tokenizer_from_dict
from fmlab.errors import FmlabError

CHINESE = "床前明月光，疑是地上霜。举头望明月，低头思故乡。\n"


def corpus_module(root: Path, **kwargs) -> TextDataModule:
    kwargs = {"block_size": 16, "batch_size": 8, "eval_batch_size": 32, **kwargs}
    data = TextDataModule(str(root), "tiny_shakespeare", download=False, **kwargs)
    data.setup("fit")
    return data


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_tokenizer_round_trip_on_the_corpus_and_on_chinese(kind, shakespeare):
    text = (shakespeare / "tinyshakespeare" / "input.txt").read_text()
    for sample in (text, CHINESE * 20):
        if kind == "char":
            tokenizer = CharTokenizer.train(sample)
        else:
            tokenizer = BPETokenizer.train(sample, vocab_size=300, min_frequency=1)
        rebuilt = tokenizer_from_dict(json.loads(json.dumps(tokenizer.to_dict())))
        ids = rebuilt.encode(sample)
        assert rebuilt.decode(ids) == sample
        assert ids.max() < rebuilt.vocab_size
    if kind == "bpe":
        assert len(tokenizer.encode(CHINESE)) < len(CHINESE.encode())  # merges learnt


def test_unseen_characters_map_to_the_unknown_id():
    tokenizer = CharTokenizer.train("abc")
    assert tokenizer.encode("abz").tolist() == [0, 1, tokenizer.unknown_id]
    assert tokenizer.vocab_size == 4 and tokenizer.decode([0, 3]) == "a\ufffd"


def test_nanogpt_split_of_tiny_shakespeare(shakespeare):
    data = corpus_module(shakespeare)
    assert data.net_args == {"vocab_size": 66, "block_size": 16}  # 65 characters + unknown
    assert data.record["chars"] == {"train": 1_003_854, "val": 111_540}  # nanoGPT's prepare.py
    assert data.record["official"] is True
    text = (shakespeare / "tinyshakespeare" / "input.txt").read_text()
    assert data.tokenizer.decode(data.tokens["val"][:].tolist()) == text[1_003_854:]
    assert data.tokenizer.decode(data.tokens["train"][-5:].tolist()) == text[1_003_849:1_003_854]


def test_fraction_splits_and_a_missing_test_split(tmp_path):
    write_text_corpus(tmp_path / "tinyshakespeare" / "input.txt", chars=10_000)
    data = corpus_module(tmp_path, val_fraction=0.2, test_fraction=0.1)
    assert data.record["chars"] == {"train": 7_000, "val": 2_000, "test": 1_000}
    assert len(data.test_dataloader()) == 2  # 62 windows of 16, batches of 32
    with pytest.raises(FmlabError, match="no test split"):
        corpus_module(tmp_path).test_dataloader()


def test_training_windows_stay_inside_the_training_split(tmp_path):
    # Training text uses only a–m and the validation text only n–z: any window that crossed the
    # boundary would hold a character the (training) vocabulary maps to the unknown id.
    path = tmp_path / "tinyshakespeare" / "input.txt"
    path.parent.mkdir()
    path.write_text("abcdefghijklm" * 700 + "nopqrstuvwxyz" * 100)  # 9,100 + 1,300: 87.5%
    data = corpus_module(tmp_path, val_fraction=1_300 / 10_400, batch_size=64)
    unknown = data.tokenizer.unknown_id
    batches = iter(data.train_dataloader())
    starts = set()
    for _ in range(200):
        x, y = data.on_after_batch_transfer(next(batches), 0)
        assert x.shape == y.shape == (64, 16) and (x[:, 1:] == y[:, :-1]).all()
        assert not (y == unknown).any()
        starts.update(x[:, 0].tolist())
    assert len(starts) == 13  # every offset phase is drawn
    # Evaluation windows cover the validation split once, in order, and only it.
    val = torch.from_numpy(data.tokens["val"][:])
    xs, ys = zip(*(data.on_after_batch_transfer(b, 0) for b in data.val_dataloader()), strict=True)
    x, y = torch.cat(xs), torch.cat(ys)
    assert (x == unknown).all() and torch.equal(y.flatten(), val[1 : 1 + y.numel()].long())
    assert y.numel() == (len(val) - 1) // 16 * 16


def test_cache_is_reused_and_a_changed_corpus_invalidates_it(tmp_path):
    path = write_text_corpus(tmp_path / "tinyshakespeare" / "input.txt", chars=5_000)
    first = corpus_module(tmp_path)
    cache = Path(first.record["store"])
    assert cache.parent == path.parent / ".fmlab-cache" and (cache / "manifest.json").is_file()
    again = corpus_module(tmp_path)
    assert again.net_args == first.net_args and again.record["store"] == str(cache)
    path.write_text(path.read_text().replace("ROMEO", "ROMEØ"))  # same size, new character
    changed = corpus_module(tmp_path)
    assert changed.net_args["vocab_size"] == first.net_args["vocab_size"] + 1
    assert changed.record["store"] != str(cache)
    assert changed.record["fingerprint"] != first.record["fingerprint"]
    bpe = corpus_module(tmp_path, tokenizer="bpe", bpe_vocab_size=300)
    assert bpe.net_args["vocab_size"] == 300 and bpe.record["store"] != changed.record["store"]


def test_unwritable_data_folder_falls_back_to_the_user_cache(tmp_path, monkeypatch, caplog):
    write_text_corpus(tmp_path / "data" / "tinyshakespeare" / "input.txt", chars=3_000)
    (tmp_path / "data" / "tinyshakespeare" / ".fmlab-cache").write_text("")  # not a folder
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    data = corpus_module(tmp_path / "data")
    assert data.net_args["vocab_size"] > 10
    assert data.record["store"].startswith(str(tmp_path / "home-cache" / "fmlab" / "tokens"))
    assert "Cannot write the token store" in caplog.text


def test_other_encodings_are_read_when_named(tmp_path):
    path = tmp_path / "tinyshakespeare" / "input.txt"
    path.parent.mkdir()
    path.write_bytes("Caf\xe9 cr\xe8me, na\xefve.\n".encode("latin-1") * 100)
    with pytest.raises(FmlabError, match=r"input.txt is not valid utf-8: byte 0xe9 at offset 3 "):
        corpus_module(tmp_path, block_size=4)
    latin = corpus_module(tmp_path, block_size=4, encoding="latin-1")
    assert "é" in latin.tokenizer.chars and latin.record["encoding"] == "latin-1"
    replaced = corpus_module(tmp_path, block_size=4, encoding_errors="replace")
    assert "\ufffd" in replaced.tokenizer.chars
    with pytest.raises(FmlabError, match="data.encoding='latin-9' is not an encoding"):
        corpus_module(tmp_path, block_size=4, encoding="latin-9")


def test_an_empty_split_is_named(tmp_path):
    write_text_corpus(tmp_path / "tinyshakespeare" / "input.txt", chars=300)
    with pytest.raises(FmlabError, match="the train split .* is empty: a share of 0.002 of its"):
        corpus_module(tmp_path, block_size=4, val_fraction=0.998)
    with pytest.raises(FmlabError, match="the val split .* is empty: a share of 0.001 of its 300"):
        corpus_module(tmp_path, block_size=4, val_fraction=0.001, test_fraction=0.105)


def test_a_corpus_written_while_it_is_read_is_refused(tmp_path, monkeypatch):
    path = write_text_corpus(tmp_path / "tinyshakespeare" / "input.txt", chars=3_000)
    decoder = corpora.codecs.getincrementaldecoder

    def decoder_while_another_process_appends(encoding: str):
        class Appending(decoder(encoding)):
            appended = False

            def decode(self, data, final=False):
                if not Appending.appended:  # the other process writes on while this one reads
                    Appending.appended = True
                    with path.open("a") as f:
                        f.write("MORE TEXT\n")
                return super().decode(data, final)

        return Appending

    monkeypatch.setattr(
        corpora.codecs, "getincrementaldecoder", decoder_while_another_process_appends
    )
    with pytest.raises(FmlabError, match=f"{path} changed while it was being read .3,000 bytes"):
        corpus_module(tmp_path)


def test_a_truncated_token_store_is_prepared_again_through_fmlab_train(tmp_path):
    corpus = write_text_corpus(tmp_path / "corpus" / "input.txt", chars=3_000)
    built = TextDataModule(str(tmp_path), str(corpus))  # the recipe's tokenizer and fractions
    built.setup()
    train = Path(built.record["store"]) / "train-000000.bin"
    size = train.stat().st_size
    train.write_bytes(train.read_bytes()[:100])  # a copy cut short
    proc = run_cli(
        "fmlab-train",
        "experiment=gpt_shakespeare_char_cpu",
        f"data.corpus={corpus}",
        "data.block_size=16",
        "model.n_layer=1",
        "model.n_embd=32",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    output = proc.stdout + proc.stderr
    warnings = [line for line in output.splitlines() if "preparing the corpus again" in line]
    assert len(warnings) == 1 and "Traceback" not in output
    assert f"shard {train} is 100 bytes, but the manifest says {size // 2:,} tokens" in warnings[0]
    assert train.stat().st_size == size and list(train.parent.parent.glob("*.corrupt-*"))
    assert json.loads((tmp_path / "run" / "results.json").read_text())["status"] == "complete"


def test_offline_missing_corpus_is_one_clear_error(tmp_path):
    proc = run_cli(
        "fmlab-train",
        "experiment=gpt_wikitext2",
        f"paths.data_dir={tmp_path / 'empty'}",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        # No network: every download goes through a proxy that refuses the connection.
        env={"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"},
        check=False,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    message = errors[0]
    assert "wikitext-2-raw-v1.zip" in message and str(tmp_path / "empty") in message
    assert "wiki.train.raw" in message


def test_a_typo_in_a_corpus_path_says_no_file_is_there(tmp_path):
    from fmlab.data.prepare import PrepareSpec, ensure_store

    spec = PrepareSpec.from_config(
        {"data_dir": str(tmp_path), "corpus": str(tmp_path / "hml.txt"), "tokenizer": "char"}
    )
    with pytest.raises(FmlabError, match=r"data.corpus='.*hml.txt': no file or folder is there"):
        ensure_store(spec)
