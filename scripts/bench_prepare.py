"""Token-store preparation against the usual way, side by side, on one corpus of documents.

The usual way (nanoGPT's data/openwebtext/prepare.py without the datasets library): every document
in memory, a multiprocessing.Pool encodes them one by one (the tokenizer's ids plus end-of-text),
and one flat np.memmap receives them all. fmlab's ensure_store does the same job streaming, in
ordered shards. Both use the same, already trained tokenizer (ensure_store gets it as
given_tokenizer), so what is timed is reading, encoding and writing. The tokenizers library's own
threads are switched off (TOKENIZERS_PARALLELISM=false): N processes then mean N cores.

    python scripts/bench_prepare.py --make-corpus 40            # a 40 MB JSON Lines corpus
    python scripts/bench_prepare.py --corpus owt.jsonl --tokenizer-file gpt2/   # GPT-2's BPE

tiktoken without --tokenizer-file uses a byte-level BPE trained here (4,096 tokens), converted to
tiktoken's ranks: GPT-2's 50k vocabulary is not on an offline machine.
"""

import argparse
import json
import multiprocessing
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ["TOKENIZERS_PARALLELISM"] = "false"


def make_corpus(path: Path, megabytes: float, source: Path, seed: int = 0) -> Path:
    """JSON Lines of documents of 2–6 KB: shuffled runs of tiny-shakespeare's lines."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    rng, written = random.Random(seed), 0
    with open(path, "w", encoding="utf-8") as f:
        while written < megabytes * 1e6:
            start, text = rng.randrange(len(lines)), ""
            while len(text) < rng.randrange(2000, 6000):
                text += lines[start % len(lines)]
                start += 1
            f.write(json.dumps({"text": text}) + "\n")
            written += len(text.encode())
    return path


def read_documents(corpus: Path) -> list[str]:
    with open(corpus, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def tokenizers(documents: list[str], kinds: list[str], tokenizer_file: str | None) -> dict:
    """Each kind's tokenizer dict, trained on the first 20 MB of text (char: all of it)."""
    from fmlab.data.tokenizers import BPETokenizer, CharTokenizer
    from fmlab.data.tokenizers.gpt2_bpe import TiktokenTokenizer

    sample, size = [], 0
    for d in documents:
        sample.append(d)
        size += len(d)
        if size > 20_000_000:
            break
    out = {}
    if "char" in kinds:
        out["char"] = CharTokenizer("".join(sorted(set().union(*map(set, documents)))), True)
    bpe = BPETokenizer.train(sample, 4096, eot=True) if {"bpe", "tiktoken"} & set(kinds) else None
    if "bpe" in kinds:
        out["bpe"] = bpe
    if "tiktoken" in kinds:
        if tokenizer_file:
            out["tiktoken"] = TiktokenTokenizer.load(tokenizer_file)
        else:
            print("tiktoken: no --tokenizer-file, so ranks from a byte-level BPE trained here")
            out["tiktoken"] = TiktokenTokenizer(ranks_of(BPETokenizer.train(sample, 4096)))
    return {kind: t.to_dict() for kind, t in out.items()}


def ranks_of(bpe) -> dict[bytes, int]:
    """tiktoken ranks of a byte-level BPE: its ids, its tokens as bytes (GPT-2's byte alphabet)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]  # GPT-2's bytes_to_unicode
    others = [b for b in range(256) if b not in printable]
    to_byte = {chr(b): b for b in printable} | {chr(256 + n): b for n, b in enumerate(others)}
    vocab = bpe.tokenizer.get_vocab()
    return {bytes(to_byte[c] for c in token): i for token, i in vocab.items()}


# ---- the usual way ------------------------------------------------------------------------------
_plain: dict = {}


def _plain_init(tokenizer: dict) -> None:
    from fmlab.data.tokenizers import tokenizer_from_dict

    _plain["tokenizer"] = tokenizer_from_dict(tokenizer)


def _plain_encode(text: str) -> np.ndarray:
    tokenizer = _plain["tokenizer"]
    return np.append(tokenizer.encode(text), tokenizer.eot_id).astype(np.uint16)


def plain(corpus: Path, tokenizer: dict, num_proc: int, out: Path) -> int:
    documents = read_documents(corpus)
    if num_proc == 1:
        _plain_init(tokenizer)
        ids = [_plain_encode(d) for d in documents]
    else:
        with multiprocessing.Pool(num_proc, _plain_init, (tokenizer,)) as pool:
            ids = pool.map(_plain_encode, documents, chunksize=64)
    total = sum(len(i) for i in ids)
    array = np.memmap(out, dtype=np.uint16, mode="w+", shape=(total,))
    start = 0
    for i in ids:
        array[start : start + len(i)] = i
        start += len(i)
    array.flush()
    return total


def fmlab_store(corpus: Path, tokenizer: dict, num_proc: int, cache: Path) -> int:
    from fmlab.data.prepare import PrepareSpec, ensure_store

    spec = PrepareSpec(
        corpus=str(corpus),
        data_dir=str(cache),
        tokenizer=tokenizer["kind"],
        val_fraction=0.0,
        num_proc=num_proc,
        given_tokenizer=tokenizer,
        cache_dir=str(cache),
    )
    manifest = json.loads((ensure_store(spec) / "manifest.json").read_text())
    return manifest["splits"]["train"]["tokens"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, help="a JSON Lines file of {'text': ...} documents")
    parser.add_argument("--make-corpus", type=float, metavar="MB", help="write one of MB megabytes")
    parser.add_argument(
        "--shakespeare",
        type=Path,
        default=Path(os.environ.get("FMLAB_DATA_DIR", "data")) / "tinyshakespeare" / "input.txt",
    )
    parser.add_argument("--tokenizers", nargs="+", default=["char", "bpe", "tiktoken"])
    parser.add_argument(
        "--tokenizer-file", help="GPT-2's vocab.bpe + encoder.json folder or a .tiktoken"
    )
    parser.add_argument("--procs", nargs="+", type=int, default=[1, 2])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    corpus = args.corpus or make_corpus(
        work / "corpus.jsonl", args.make_corpus or 40, args.shakespeare
    )
    megabytes = corpus.stat().st_size / 1e6  # JSON adds ~2% over the text: both sides read it
    print(f"corpus {corpus}: {megabytes:.1f} MB; work folder {work}")
    dicts = tokenizers(read_documents(corpus), args.tokenizers, args.tokenizer_file)
    header = ("tokenizer", "procs", "fmlab MB/s", "plain MB/s", "ratio", "tokens")
    print("".join(f"{h:<10}" if i == 0 else f"{h:>12}" for i, h in enumerate(header)))
    speeds = {}
    for kind, tokenizer in dicts.items():
        for n in args.procs:
            start = time.perf_counter()
            ours = fmlab_store(corpus, tokenizer, n, work / f"store-{kind}-{n}")
            ours_s = time.perf_counter() - start
            start = time.perf_counter()
            theirs = plain(corpus, tokenizer, n, work / f"plain-{kind}-{n}.bin")
            theirs_s = time.perf_counter() - start
            assert ours == theirs, f"{kind}: {ours} tokens against {theirs}"
            speeds[kind, n] = megabytes / ours_s
            print(
                f"{kind:<10}{n:>12}{megabytes / ours_s:>12.2f}{megabytes / theirs_s:>12.2f}"
                f"{theirs_s / ours_s:>12.2f}{ours:>12,}"
            )
    for kind in dicts:
        if (kind, 1) in speeds and (kind, 2) in speeds:
            print(f"{kind}: 1 -> 2 processes: {speeds[kind, 2] / speeds[kind, 1]:.2f}x (fmlab)")


if __name__ == "__main__":
    main()
