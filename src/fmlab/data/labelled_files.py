"""Labelled text as it lies on disk: GLUE's TSV (a header line naming the columns), plain
``label<TAB>text`` lines, or a folder with one sub-folder of text files per class.

An example is ``(label, texts)``: one text, or two for GLUE's sentence-pair tasks. Labels stay the
strings of the file ("0"/"1" in GLUE); the data module sorts them into classes.
"""

import hashlib
from pathlib import Path

from fmlab.data.corpora import read_text
from fmlab.errors import FmlabError

Example = tuple[str, tuple[str, ...]]
FORMATS = ("auto", "glue", "tsv", "folders")

# GLUE's text columns, tried in this order when data.text_columns is null: the pairs first, so a
# file holding sentence1 and sentence2 is never read as one text.
GLUE_TEXT_COLUMNS = (
    ("sentence1", "sentence2"),  # MRPC, RTE, WNLI, STS-B, MNLI
    ("question1", "question2"),  # QQP
    ("question", "sentence"),  # QNLI
    ("sentence",),  # SST-2, CoLA
    ("text",),
)

# md5 of official releases, as the shared data README lists them: a run on these files is recorded
# as official, any other copy is not.
OFFICIAL_MD5 = {
    "da409a0a939379ed32a470bc0f7fe99a": "sst2/train.tsv",
    "268856b487b2a31a28c0a93daaff7288": "sst2/dev.tsv",
}


def read_examples(
    path: Path,
    key: str,
    format: str = "auto",
    text_columns: list[str] | None = None,
    label_column: str = "label",
    encoding: str = "utf-8",
    errors: str = "strict",
) -> list[Example]:
    """The examples of ``path`` (a file or folder given by config key ``key``, named in errors)."""
    if not path.exists():
        raise FmlabError(_missing(path, key))
    if path.is_dir():
        if format not in ("auto", "folders"):
            raise FmlabError(
                f"{key}={str(path)!r} is a folder but data.format={format}: a folder is read as "
                "one sub-folder of text files per class (data.format=folders or auto)."
            )
        return [
            (folder.name, (read_text(file, key, encoding, errors),))
            for folder in sorted(p for p in path.iterdir() if p.is_dir())
            for file in sorted(p for p in folder.iterdir() if p.is_file())
        ]
    if format == "folders":
        raise FmlabError(
            f"{key}={str(path)!r} is a file but data.format=folders: give the folder holding one "
            "sub-folder per class, or data.format=auto for a file."
        )
    lines = read_text(path, key, encoding, errors).splitlines()
    header = lines[0].split("\t") if lines else []
    if format == "glue" or (format == "auto" and label_column in header):
        return _read_glue(path, lines, text_columns, label_column)
    return _read_label_tab_text(path, lines)


def _read_label_tab_text(path: Path, lines: list[str]) -> list[Example]:
    examples = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        label, tab, text = line.partition("\t")
        if not tab:
            raise FmlabError(f"{path}:{n} has no TAB between label and text: {line[:60]!r}")
        examples.append((label, (text,)))
    return examples


def _read_glue(
    path: Path, lines: list[str], text_columns: list[str] | None, label_column: str
) -> list[Example]:
    header = lines[0].split("\t") if lines else []
    columns = list(text_columns) if text_columns else _auto_columns(header)
    missing = [c for c in [*columns, label_column] if c not in header]
    if missing or not columns:
        raise FmlabError(
            f"{path} has the columns {header} in its header line, not {missing or 'a known text'}"
            f" column. Name them: data.text_columns=[<text column>] or [<first>, <second>] for "
            f"pairs, data.label_column=<label column> (GLUE's test files have no labels: use "
            "train.tsv and dev.tsv)."
        )
    at = [header.index(c) for c in columns]
    label_at = header.index(label_column)
    examples = []
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < len(header):
            raise FmlabError(
                f"{path}:{n} has {len(fields)} TAB-separated fields, the header {len(header)} "
                f"({header}): {line[:60]!r}. Mend the line or drop it."
            )
        # GLUE's SST-2 has a space before each TAB: strip it, it is no part of the sentence.
        examples.append((fields[label_at].strip(), tuple(fields[i].strip() for i in at)))
    return examples


def _auto_columns(header: list[str]) -> list[str]:
    for columns in GLUE_TEXT_COLUMNS:
        if all(c in header for c in columns):
            return list(columns)
    return []


def _missing(path: Path, key: str) -> str:
    message = (
        f"{key}={str(path)!r} does not exist: give a GLUE TSV file (a header line naming the "
        "columns), a file of label<TAB>text lines, or a folder with one sub-folder of text "
        "files per class."
    )
    if path.parent.name == "sst2":
        message += (
            " For data=sst2: download GLUE's SST-2 (https://dl.fbaipublicfiles.com/glue/data/"
            f"SST-2.zip) and put its train.tsv and dev.tsv in {path.parent}/ (paths.data_dir is "
            "$FMLAB_DATA_DIR, else ./data)."
        )
    return message


def official_files(files: list[Path]) -> list[str]:
    """The official release each file is (by md5), or [] when any one is not."""
    names = [OFFICIAL_MD5.get(hashlib.md5(f.read_bytes()).hexdigest()) for f in files]
    return names if files and all(names) else []


def fingerprint(splits: dict[str, list[Example]]) -> str:
    """A short hash of every split's labels and texts, in order."""
    digest = hashlib.sha256()
    for split, examples in splits.items():
        digest.update(split.encode())
        for label, texts in examples:
            digest.update("\t".join((label, *texts)).encode() + b"\n")
    return digest.hexdigest()[:16]
