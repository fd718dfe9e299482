"""Where text corpora live, how they are split, and how they are fetched when missing."""

import codecs
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fmlab.errors import FmlabError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NamedCorpus:
    folder: str  # under data_dir
    files: dict[str, str]  # split -> file name inside folder ("all": one file split by fractions)
    url: str
    archive: str | None  # None: `url` is the text file itself


CORPORA = {
    # char-rnn's copy, the one nanoGPT downloads (md5 6fb458f1232090904fb40fe944165e91).
    "tiny_shakespeare": NamedCorpus(
        "tinyshakespeare",
        {"all": "input.txt"},
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        None,
    ),
    # Merity et al. 2016, raw (untokenised) release with its official train/valid/test split.
    "wikitext2": NamedCorpus(
        "wikitext-2-raw",
        {"train": "wiki.train.raw", "val": "wiki.valid.raw", "test": "wiki.test.raw"},
        "https://wikitext.smerity.com/wikitext-2-raw-v1.zip",
        "wikitext-2-raw-v1.zip",
    ),
    "wikitext103": NamedCorpus(
        "wikitext-103-raw",
        {"train": "wiki.train.raw", "val": "wiki.valid.raw", "test": "wiki.test.raw"},
        "https://wikitext.smerity.com/wikitext-103-raw-v1.zip",
        "wikitext-103-raw-v1.zip",
    ),
}


def corpus_files(corpus: str, data_dir: Path) -> dict[str, Path]:
    """Split name (or "all") -> file(s); a path corpus is a file or every *.txt under a folder."""
    if corpus in CORPORA:
        spec = CORPORA[corpus]
        return {split: data_dir / spec.folder / name for split, name in spec.files.items()}
    path = Path(corpus).expanduser()
    if path.is_file():
        return {"all": path}
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if files:
            return {f"all:{i}": p for i, p in enumerate(files)}
    raise FmlabError(
        f"data.corpus={corpus!r} is neither a named corpus ({', '.join(CORPORA)}) nor an existing "
        "text file or folder of *.txt files. Give one of those names or the path of your text."
    )


ENCODING_ERRORS = ("strict", "replace", "ignore")  # what a byte the encoding cannot read becomes


def read_text(path: Path, key: str, encoding: str = "utf-8", errors: str = "strict") -> str:
    """The text of ``path`` (the file, or one of the files, of config key ``key``). A file that
    is not in ``encoding``, or that changes while it is read, is refused by name."""
    before = path.stat()
    data = _read_bytes(path)
    after = path.stat()
    if len(data) != after.st_size or _version(before) != _version(after):
        raise FmlabError(_changed(path, key, before, after))
    try:
        return data.decode(encoding, errors)
    except LookupError:
        raise FmlabError(_unknown_encoding(encoding)) from None
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise FmlabError(
            _not_decodable(path, key, encoding, data[err.start], err.start, line, err.reason)
        ) from None


def read_pieces(
    path: Path, key: str, encoding: str = "utf-8", errors: str = "strict", size: int = 1 << 22
) -> Iterator[str]:
    """The text of ``path`` as read_text gives it, in pieces of whole lines of about ``size``
    bytes (a line longer than four pieces is cut), decoded as it is read: memory stays flat
    whatever the file's size. The same errors as read_text, raised when the reading reaches them."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors)
    except LookupError:
        raise FmlabError(_unknown_encoding(encoding)) from None
    before = path.stat()
    offset, lines, rest = 0, 0, ""
    with open(path, "rb") as f:
        while True:
            data = f.read(size)
            pending = decoder.getstate()[0]  # bytes of a character cut by the last read
            try:
                text = rest + decoder.decode(data, final=not data)
            except UnicodeDecodeError as err:
                at = offset - len(pending) + err.start
                line = lines + err.object.count(b"\n", 0, err.start) + 1
                raise FmlabError(
                    _not_decodable(path, key, encoding, err.object[err.start], at, line, err.reason)
                ) from None
            offset, lines = offset + len(data), lines + data.count(b"\n")
            cut = len(text) if not data or len(text) > 4 * size else text.rfind("\n") + 1
            if cut:
                yield text[:cut]
            rest = text[cut:]
            if not data:
                break
    after = path.stat()
    if offset != after.st_size or _version(before) != _version(after):
        raise FmlabError(_changed(path, key, before, after))


def _changed(path: Path, key: str, before, after) -> str:
    return (
        f"{key} file {path} changed while it was being read ({before.st_size:,} bytes when "
        f"opened, {after.st_size:,} bytes after): something is still writing it. Run again "
        "once it is complete."
    )


def _unknown_encoding(encoding: str) -> str:
    return (
        f"data.encoding={encoding!r} is not an encoding Python knows. Use one of "
        "https://docs.python.org/3/library/codecs.html#standard-encodings, e.g. utf-8, "
        "latin-1, cp1252 or utf-16."
    )


def _not_decodable(path, key, encoding, byte: int, offset: int, line: int, reason: str) -> str:
    return (
        f"{key} file {path} is not valid {encoding}: byte 0x{byte:02x} at offset "
        f"{offset:,} (line {line}) cannot be decoded ({reason}). If the file is in "
        "another encoding, name it: data.encoding=latin-1 (or cp1252, utf-16, ...). To read "
        f"it as {encoding} anyway, set data.encoding_errors=replace (unreadable bytes become "
        "U+FFFD) or data.encoding_errors=ignore (they are dropped)."
    )


def _read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def _version(stat) -> tuple:
    """What changes when a file is written or replaced."""
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def fetch(corpus: str, data_dir: Path, download: bool) -> None:
    """Download a named corpus that is missing; offline, one message saying what to put where."""
    if corpus not in CORPORA:
        return
    spec = CORPORA[corpus]
    files = corpus_files(corpus, data_dir)
    if all(p.is_file() for p in files.values()):
        return
    folder = data_dir / spec.folder
    missing = ", ".join(str(p) for p in files.values() if not p.is_file())
    if not download:
        raise FmlabError(_missing(corpus, spec, folder, missing, "data.download=false"))
    from torchvision.datasets.utils import download_and_extract_archive, download_url

    log.info("Downloading %s from %s", corpus, spec.url)
    try:
        if spec.archive is None:
            download_url(spec.url, folder, filename=files["all"].name)
        else:
            download_and_extract_archive(spec.url, data_dir, filename=spec.archive)
    except Exception as err:
        raise FmlabError(
            _missing(corpus, spec, folder, missing, f"the download failed ({err})")
        ) from err
    if not all(p.is_file() for p in files.values()):
        raise FmlabError(_missing(corpus, spec, folder, missing, "the download lacked them"))


def _missing(corpus: str, spec: NamedCorpus, folder: Path, missing: str, why: str) -> str:
    where = (
        f"download {spec.url} into {folder}/"
        if spec.archive is None
        else f"download {spec.url} and extract it into {folder.parent}/ (it unpacks to "
        f"{spec.folder}/)"
    )
    return (
        f"corpus {corpus!r} is missing ({missing}) and {why}. On a machine without internet, "
        f"{where}, or point FMLAB_DATA_DIR (or paths.data_dir=...) at the folder that holds "
        f"{spec.folder}/."
    )
