"""CIFAR-10's official python-format release on disk: where it comes from (``URL``,
``ARCHIVE``), the folder it unpacks to, reading one of its pickled batch files without letting it
run code, checking every file's md5 against the official sums, and the download with the error
that tells an offline machine where to put the archive instead. ``fmlab.data.cifar10`` builds
the DataModule on these.
"""

import hashlib
import logging
import pickle
from pathlib import Path

import numpy as np

from fmlab.errors import FmlabError

log = logging.getLogger(__name__)

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
# md5 sums of the official release (as torchvision checks them).
OFFICIAL_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, lists and dicts, and refuses every other global: a data file
    must never be able to run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data file")
        return super().find_class(module, name)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise FmlabError(
            f"CIFAR-10 file {path} is missing. Delete the folder {path.parent} so that it is "
            f"downloaded again, or extract {ARCHIVE} ({URL}) into {path.parent.parent}."
        )
    try:
        with path.open("rb") as f:
            entry = _ArrayUnpickler(f, encoding="bytes").load()
        data = np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry[b"labels"], dtype=np.int64)
    except Exception as err:
        raise FmlabError(
            f"CIFAR-10 file {path} is corrupt or truncated ({err}). Delete the folder "
            f"{path.parent} so that it is downloaded again, or extract a fresh copy of {ARCHIVE} "
            f"({URL}) into {path.parent.parent}."
        ) from err
    if len(data) != len(labels):
        raise FmlabError(f"CIFAR-10 file {path} holds {len(data)} images but {len(labels)} labels")
    return data, labels


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def missing_message(folder: Path, why: str) -> str:
    return (
        f"CIFAR-10 is not in {folder} and {why}. Download {ARCHIVE} from {URL} and "
        f"extract it into {folder.parent} (it unpacks to {FOLDER}/), or point "
        "FMLAB_DATA_DIR (or paths.data_dir=...) at the folder that already holds "
        f"{FOLDER}/."
    )


def download(folder: Path) -> None:
    """Download the official archive and extract it beside ``folder``; a failure (such as no
    network) says where to put the archive by hand."""
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(URL, folder.parent, filename=ARCHIVE, md5=ARCHIVE_MD5)
    except Exception as err:
        raise FmlabError(missing_message(folder, f"the download failed: {err}")) from err


def verify(folder: Path) -> dict:
    """md5 of every file against the official release; a mismatch warns but does not stop:
    re-encoded copies (such as the JPEG-derived one on the lab machines) are legitimate data,
    they just must never be reported as the official set."""
    sums = {name: _md5(folder / name) for name in OFFICIAL_MD5 if (folder / name).is_file()}
    mismatched = sorted(n for n, s in sums.items() if s != OFFICIAL_MD5[n])
    fingerprint = hashlib.sha256("".join(f"{n}:{s};" for n, s in sorted(sums.items())).encode())
    if mismatched:
        log.warning(  # one line: it is printed by every run on such a copy
            "CIFAR-10 in %s is not the official release (%d files differ in md5): its runs "
            "record official: false and this copy's fingerprint.",
            folder,
            len(mismatched),
        )
    return {
        "name": "cifar10",
        "folder": str(folder.resolve()),
        "official": not mismatched,
        "fingerprint": fingerprint.hexdigest()[:16],
        "mismatched_files": mismatched,
    }
