"""From ``data.corpus`` to its ``Source`` (``fmlab.data.sources``): a named corpus, a text file, a
folder or glob of *.txt, JSON Lines or Parquet files, or a Hugging Face dataset (nanoGPT's
openwebtext among them); the readers of each file format, and the fingerprint of a source's files
that a store's key holds.
"""

import glob
import gzip
import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from fmlab.data.corpora import CORPORA, corpus_files, fetch, read_pieces
from fmlab.data.hf_sources import hf_splits, is_saved_dataset
from fmlab.data.sources import Documents, OneText, OwnSplits, Source
from fmlab.errors import FmlabError

PIECE_BYTES = 1 << 21  # 2 MB of a text file at a time


def open_source(spec) -> Source:
    """The source of ``spec.corpus`` (a PrepareSpec): a named corpus or a path, glob or dataset."""

    def read(path: Path) -> Iterator[str]:
        return read_pieces(path, "data.corpus", spec.encoding, spec.encoding_errors, PIECE_BYTES)

    data_dir, corpus = Path(spec.data_dir).expanduser(), spec.corpus
    fractions = (spec.val_fraction, spec.test_fraction)
    if corpus == "openwebtext":
        return _openwebtext(spec, data_dir / "openwebtext", fractions)
    if corpus in CORPORA:
        fetch(corpus, data_dir, spec.download)
        files = corpus_files(corpus, data_dir)
        if "all" in files:
            return OneText(corpus, files["all"], read, *fractions)
        return OwnSplits(corpus, files, read)
    path = Path(corpus).expanduser()
    # A path, not a hub name ("org/name"): a typo in it is said as such, not as a dataset.
    a_path = corpus.startswith(("/", ".", "~")) or corpus.count("/") > 1 or bool(path.suffix)
    if a_path and not path.exists() and not _is_glob(corpus):
        raise FmlabError(
            f"data.corpus={corpus!r}: no file or folder is there ({path.absolute()}). Check the "
            "path: a text file, a folder or glob of *.txt, *.jsonl or *.parquet files, a nanoGPT "
            "data folder or one that Dataset.save_to_disk wrote."
        )
    if is_saved_dataset(path) or ("/" in corpus and not path.exists() and not _is_glob(corpus)):
        return _hf(corpus, spec, fractions)
    if path.is_file() and _kind(path) == "txt":
        return OneText(corpus, path, read, *fractions)
    files = _files(corpus, path)
    kind = _kind(files[0])
    documents = {"txt": lambda: (read(p) for p in files), "jsonl": lambda: _jsonl(files, spec)}
    documents["parquet"] = lambda: _parquet(files, spec.text_field)
    return Documents(corpus, files, *fractions, all=documents[kind])


def fingerprint(files: list[Path]) -> str:
    """What a store's key holds of its source, cheap for a corpus of many GB: every file's path,
    size and modification time, and its first and last MB (an edit or a copy over it changes
    these; a same-size in-place edit of the middle that keeps the mtime would not)."""
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|".encode())
        with open(path, "rb") as f:
            digest.update(f.read(1 << 20))
            f.seek(max(stat.st_size - (1 << 20), 0))
            digest.update(f.read(1 << 20))
    return digest.hexdigest()


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        return "jsonl"
    return "parquet" if name.endswith(".parquet") else "txt"


def _is_glob(corpus: str) -> bool:
    return any(c in corpus for c in "*?[")


def _files(corpus: str, path: Path) -> list[Path]:
    """The files of a folder (its Parquet, JSON Lines or else *.txt files) or glob, sorted."""
    if _is_glob(corpus):
        files = [Path(p) for p in glob.glob(str(path), recursive=True)]
    elif path.is_file():
        files = [path]
    elif path.is_dir():
        every = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
        kinds = {_kind(p) for p in every if p.suffix != ".txt" or _kind(p) == "txt"}
        kind = next((k for k in ("parquet", "jsonl") if k in kinds), "txt")
        files = [p for p in every if _kind(p) == kind and (kind != "txt" or p.suffix == ".txt")]
    else:
        files = []
    files = sorted(p for p in files if p.is_file())
    if not files:
        names = ", ".join([*CORPORA, "openwebtext"])
        raise FmlabError(
            f"data.corpus={corpus!r} is neither a named corpus ({names}) "
            "nor an existing text file, folder or glob of *.txt, *.jsonl or *.parquet files, nor a "
            "Hugging Face dataset. Give one of those names or the path of your text."
        )
    kinds = {_kind(p) for p in files}
    if len(kinds) > 1:
        raise FmlabError(
            f"data.corpus={corpus!r} matches files of {len(kinds)} kinds "
            f"({', '.join(sorted(kinds))}). Narrow the glob (e.g. '*.jsonl') so that every file "
            "is of one kind."
        )
    return files


def _jsonl(files: list[Path], spec) -> Iterator[Iterable[str]]:
    for path in files:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding=spec.encoding, errors=spec.encoding_errors) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                record = None
                try:
                    record = json.loads(line)
                    text = record[spec.text_field]
                except (ValueError, KeyError, TypeError):
                    keys = ", ".join(record) if isinstance(record, dict) else "none"
                    raise FmlabError(
                        f"data.corpus file {path}, line {number}, is not a JSON object with a text "
                        f"field {spec.text_field!r} (its keys: {keys}). Set data.text_field to the "
                        "key that holds the text, or mend the line."
                    ) from None
                yield [text] if isinstance(text, str) else []


def _parquet(files: list[Path], field: str) -> Iterator[Iterable[str]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise FmlabError(
            "data.corpus names Parquet files, which need pyarrow: pip install pyarrow (or "
            "pip install fmlab[hf])."
        ) from None
    for path in files:
        table = pq.ParquetFile(path)
        if field not in table.schema_arrow.names:
            raise FmlabError(
                f"data.corpus file {path} has no column {field!r} (its columns: "
                f"{', '.join(table.schema_arrow.names)}). Set data.text_field to the column that "
                "holds the text."
            )
        for batch in table.iter_batches(batch_size=1024, columns=[field]):  # a row group at most
            for text in batch.column(0).to_pylist():
                yield [text] if text else []


def _hf(corpus: str, spec, fractions, name: str | None = None) -> Source:
    """A Hugging Face dataset: its own splits when it has more than a training split."""
    files, splits = hf_splits(corpus, spec)
    if set(splits) == {"train"}:
        source = Documents(name or corpus, files, *fractions, all=splits["train"])
    else:
        source = Documents(name or corpus, files, *fractions, own=splits)
    source.local = is_saved_dataset(Path(corpus).expanduser())
    return source


def _openwebtext(spec, folder: Path, fractions) -> Source:
    """nanoGPT's corpus: a ``save_to_disk`` folder or Parquet files in <data_dir>/openwebtext/,
    else Skylion007/openwebtext from the Hugging Face hub (through ``datasets``)."""
    parquet = sorted(folder.rglob("*.parquet")) if folder.is_dir() else []
    if is_saved_dataset(folder):
        return _hf(str(folder), spec, fractions, "openwebtext")
    if parquet:
        documents = lambda: _parquet(parquet, spec.text_field)  # noqa: E731
        return Documents("openwebtext", parquet, *fractions, all=documents)
    if spec.download:
        return _hf("Skylion007/openwebtext", spec, fractions, "openwebtext")
    raise FmlabError(
        f"corpus 'openwebtext' is missing ({folder} holds neither a datasets save_to_disk folder "
        "nor Parquet files) and data.download=false. On a machine with internet, run "
        "datasets.load_dataset('Skylion007/openwebtext', split='train').save_to_disk('"
        f"{folder}'), or download the Parquet files of "
        f"https://huggingface.co/datasets/Skylion007/openwebtext into {folder}/; or point "
        "FMLAB_DATA_DIR (or paths.data_dir=...) at the folder that holds openwebtext/."
    )
