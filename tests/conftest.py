"""Shared fixtures: a synthetic CIFAR-10 folder in the official format, and the real data when
FMLAB_DATA_DIR points at it (`.ci/run` always sets it)."""

import base64
import os
import pickle
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

import fmlab.cli  # noqa: F401  (registers what the apps compose with: resolvers, eval_data)
from fmlab import CONF_DIR

REAL_DATA = os.environ.get("FMLAB_DATA_DIR")


# ---- real-data learning tests: bounds that hold for every seed and thread count ------------------
# A test marked `learning` asserts what a net learned from real data. It trains through the
# `learning` fixture's seed and torch thread count: by default one of each (seed 0, one thread, so
# that the float reduction order and the result are the same on every machine); `make test-repeat`
# runs each under many (--learning-seeds, --learning-threads) and prints the spread against the
# bounds, which come from such measurements, with margin.


@dataclass(frozen=True)
class Learning:
    seed: int
    threads: int

    @property
    def overrides(self) -> list[str]:
        return [f"seed={self.seed}"]

    @property
    def env(self) -> dict:
        return {"OMP_NUM_THREADS": str(self.threads)}

    def expect_above(self, what: str, value: float, bound: float) -> None:
        LEARNED.append((what, self, value, bound))
        assert value > bound, f"{what} = {value:.4f}, not above {bound} ({self})"


LEARNED: list[tuple[str, Learning, float, float]] = []


def pytest_addoption(parser):
    group = parser.getgroup("fmlab")
    group.addoption("--learning-seeds", default="0", help="seeds of the learning tests: 0,1,2")
    group.addoption("--learning-threads", default="1", help="their torch thread counts: 1,2")


def pytest_generate_tests(metafunc):
    if "learning" not in metafunc.fixturenames:
        return
    seeds = [int(s) for s in metafunc.config.getoption("learning_seeds").split(",")]
    threads = [int(t) for t in metafunc.config.getoption("learning_threads").split(",")]
    runs = [Learning(s, t) for t in threads for s in seeds]
    ids = [f"seed{r.seed}-threads{r.threads}" for r in runs]
    metafunc.parametrize("learning", runs, ids=ids, scope="module")


def pytest_terminal_summary(terminalreporter):
    """The spread of every learned value against its bound: worst, mean, best over the runs."""
    if not LEARNED:
        return
    terminalreporter.section("real-data learning tests")
    terminalreporter.write_line(
        f"{'value':<28} {'runs':>4} {'worst':>7} {'mean':>7} {'best':>7} {'bound':>7}  worst run"
    )
    for what in dict.fromkeys(w for w, *_ in LEARNED):
        runs = [(value, run, bound) for w, run, value, bound in LEARNED if w == what]
        values = [v for v, _, _ in runs]
        worst, run, bound = min(runs, key=lambda r: r[0])
        terminalreporter.write_line(
            f"{what:<28} {len(runs):>4} {worst:>7.4f} {statistics.mean(values):>7.4f} "
            f"{max(values):>7.4f} {bound:>7.4f}  seed {run.seed}, {run.threads} thread(s)"
        )


def write_cifar_folder(root: Path, per_batch: int = 40, seed: int = 0) -> Path:
    """An official-format cifar-10-batches-py with ``per_batch`` images per file; each class has its
    own mean colour, so a net can learn it."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(name: str) -> None:
        labels = [i % 10 for i in range(per_batch)]
        base = np.array(labels, dtype=np.float64)[:, None] * 25
        data = np.clip(base + rng.normal(0, 20, (per_batch, 3072)), 0, 255).astype(np.uint8)
        entry = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)

    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch(name)
    meta = {
        b"label_names": [f"class{i}".encode() for i in range(10)],
        b"num_cases_per_batch": per_batch,
        b"num_vis": 3072,
    }
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return root


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """Parent folder of a small synthetic cifar-10-batches-py (200 train, 40 test images)."""
    return write_cifar_folder(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA or not (Path(REAL_DATA) / "cifar-10-batches-py").is_dir():
        pytest.skip(
            "needs the real CIFAR-10: set FMLAB_DATA_DIR to the folder holding "
            "cifar-10-batches-py (.ci/run builds it from ../shared/data/cifar10)"
        )
    return Path(REAL_DATA)


@pytest.fixture
def compose_cfg(tmp_path):
    """Compose a config the way fmlab-train does, with Hydra's runtime (output_dir) set."""

    def _compose(config_name: str = "train", overrides: list[str] = ()):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(
                config_name,
                overrides=[f"hydra.run.dir={tmp_path}", *overrides],
                return_hydra_config=True,
            )
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(tmp_path)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg.hydra  # as in the app: the job's config holds no `hydra` node
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


def quiet_trainer(root=None, **kwargs) -> L.Trainer:
    """A real Trainer without logger, progress bar or model summary, writing under ``root``."""
    return L.Trainer(
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        **kwargs,
    )


def cli_command(*args: str, cwd: Path, env: dict | None = None) -> tuple[list[str], dict]:
    """The command line and environment of an fmlab console script, with this interpreter's."""
    script = Path(sys.executable).with_name(args[0])
    full_env = {**os.environ, "WANDB_MODE": "offline", "FMLAB_ROOT": str(cwd), **(env or {})}
    if env and "PYTHONPATH" in env and os.environ.get("PYTHONPATH"):  # added to, not replaced
        full_env["PYTHONPATH"] = os.pathsep.join((env["PYTHONPATH"], os.environ["PYTHONPATH"]))
    return [str(script), *args[1:]], full_env


def run_cli(*args: str, cwd: Path, env: dict | None = None, check: bool = True):
    """Run an fmlab console script the way a user does, with this interpreter's environment."""
    command, full_env = cli_command(*args, cwd=cwd, env=env)
    proc = subprocess.run(
        command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=900
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{args} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def assert_timing(record: dict) -> None:
    """The run record's clocks add up: start-up, training and finish make the whole run."""
    timing = record["timing"]
    assert min(timing["startup_s"], timing["train_s"], timing["finish_s"]) > 0, timing
    parts = timing["startup_s"] + timing["train_s"] + timing["finish_s"]
    assert parts == pytest.approx(timing["wall_s"], abs=0.05), timing
    assert timing["train_steps_per_s"] == pytest.approx(timing["train_steps"] / timing["train_s"])


# The char GPT recipe shrunk to seconds (hub/, run/ and techniques/ tests train it).
TINY_CHAR_GPT = [
    "experiment=gpt_shakespeare_char_cpu",
    "data.block_size=16",
    "data.batch_size=4",
    "data.max_eval_windows=8",
    "model.n_layer=1",
    "model.n_head=2",
]


# GLUE-style labelled text: two classes of words (data/, hub/ and tasks/ tests write it).
WORDS = {"0": "bad sour dull awful grim", "1": "good sweet fine lovely warm"}


def sentence(label: str, i: int, n: int) -> str:
    words = WORDS[label].split()
    return " ".join(words[(i + j) % len(words)] for j in range(n))


def write_glue(path: Path, n: int = 60, pairs: bool = False) -> Path:
    """GLUE's layout: a header line, a space before each TAB as in SST-2; lengths 1..9 words."""
    header = "sentence1\tsentence2\tlabel" if pairs else "sentence\tlabel"
    rows = [header]
    for i in range(n):
        label = "01"[i % 3 == 0]  # 1/3 positive: the classes are unbalanced
        text = sentence(label, i, 1 + i % 9)
        rows.append(
            f"{text} \t{sentence(label, i + 1, 2)} \t{label}" if pairs else f"{text} \t{label}"
        )
    path.write_text("\n".join(rows) + "\n")
    return path


def write_text_corpus(path: Path, chars: int = 30_000, seed: int = 0) -> Path:
    """A play-like text of ``chars`` characters: speakers and lines of a small vocabulary, so a
    small language model can learn it within a few dozen steps."""
    rng = np.random.default_rng(seed)
    speakers = ["ROMEO", "JULIET", "FIRST CITIZEN", "MENENIUS"]
    words = "the and of to my thou thee love lord good sweet night day speak hear king".split()
    parts, size = [], 0
    while size < chars:
        line = " ".join(rng.choice(words, rng.integers(4, 10))).capitalize()
        part = f"{rng.choice(speakers)}:\n{line}.\n\n"
        parts.append(part)
        size += len(part)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(parts)[:chars], encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def synthetic_text(synthetic_data) -> Path:
    """The synthetic data folder plus a small tinyshakespeare/input.txt and wikitext-2-raw/ (the
    official file names), so every text recipe runs without the real corpora."""
    write_text_corpus(synthetic_data / "tinyshakespeare" / "input.txt")
    for i, split in enumerate(("train", "valid", "test")):
        chars = 30_000 if split == "train" else 5_000
        write_text_corpus(synthetic_data / "wikitext-2-raw" / f"wiki.{split}.raw", chars, i)
    (synthetic_data / "sst2").mkdir(exist_ok=True)
    for split, n in (("train", 200), ("dev", 40)):  # GLUE's SST-2 layout, two kinds of words
        rows = [f"{'good fine' if i % 2 else 'bad dull'} film {i} \t{i % 2}" for i in range(n)]
        (synthetic_data / "sst2" / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows))
    return synthetic_data


@pytest.fixture
def shakespeare(tmp_path) -> Path:
    """A writable copy of the real tiny-shakespeare (data folder holding tinyshakespeare/)."""
    source = Path(REAL_DATA or "") / "tinyshakespeare" / "input.txt"
    if not REAL_DATA or not source.is_file():
        pytest.skip(
            "needs the real tiny-shakespeare: set FMLAB_DATA_DIR to the folder holding "
            "tinyshakespeare/input.txt (.ci/run copies it from ../shared/data/tinyshakespeare)"
        )
    (tmp_path / "tinyshakespeare").mkdir()
    (tmp_path / "tinyshakespeare" / "input.txt").write_bytes(source.read_bytes())
    return tmp_path


def nanogpt_char_folder(folder: Path, text: str):
    """What nanoGPT's data/shakespeare_char/prepare.py writes: uint16 ids, 90/10, meta.pkl."""
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    n = int(len(ids) * 0.9)
    folder.mkdir(parents=True)
    ids[:n].tofile(folder / "train.bin")
    ids[n:].tofile(folder / "val.bin")
    itos = dict(enumerate(chars))
    with open(folder / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": itos, "stoi": stoi}, f)
    return ids, n


def write_tiktoken_file(path: Path) -> Path:
    """The 256 bytes and a few merges, in tiktoken's format (base64 token, rank)."""
    tokens = [bytes([b]) for b in range(256)] + [b"th", b"the", b" the", b"\xe4\xb8"]
    path.write_text("".join(f"{base64.b64encode(t).decode()} {r}\n" for r, t in enumerate(tokens)))
    return path


@pytest.fixture(scope="session")
def hf_model_dir(tmp_path_factory) -> Path:
    """A tiny GPT-2 (1 layer, width 32, 256 positions) and its fast byte-level BPE tokenizer
    (300 ids, trained on the synthetic play's words), as save_pretrained writes them: the
    Hugging Face model of the tests, built here because none can be downloaded."""
    transformers = pytest.importorskip("transformers")
    import torch

    from fmlab.data.tokenizers import EOT, BPETokenizer

    folder = tmp_path_factory.mktemp("hf_model")
    text = write_text_corpus(folder / "corpus.txt", 5_000).read_text()
    bpe = BPETokenizer.train(text, vocab_size=300, eot=True)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe.tokenizer._tokenizer)
    fast.eos_token = EOT
    fast.save_pretrained(folder)
    config = transformers.GPT2Config(
        vocab_size=bpe.vocab_size, n_positions=256, n_embd=32, n_layer=1, n_head=2,
        bos_token_id=bpe.eot_id, eos_token_id=bpe.eot_id,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def hf_bert_dir(tmp_path_factory) -> Path:
    """A tiny BertForMaskedLM (2 layers, width 32, 64 positions, random weights) and its fast
    WordPiece tokenizer, as save_pretrained writes them. As in Google's vocabularies, [CLS]
    [SEP] [MASK] are not at fmlab's ids 0..4 but after the words: ids come from the tokenizer."""
    transformers = pytest.importorskip("transformers")
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    words = "bad sour dull awful grim good sweet fine lovely warm the a film is ##s ##ly".split()
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", *words, "[CLS]", "[SEP]", "[MASK]"])}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_sep = [("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=cls_sep
    )
    folder = tmp_path_factory.mktemp("hf_bert")
    names = ("pad", "unk", "cls", "sep", "mask")
    tokens = dict(zip(names, ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"), strict=True))
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, **{f"{name}_token": t for name, t in tokens.items()}
    ).save_pretrained(folder)
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.BertForMaskedLM(config).save_pretrained(folder)
    return folder
