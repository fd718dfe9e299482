"""Hugging Face ``datasets`` as corpora: a ``save_to_disk`` folder, or a hub name when online.

``datasets`` is the optional extra ``fmlab[hf]``, imported only when a corpus is such a dataset.
"""

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from fmlab.errors import FmlabError

SPLIT_NAMES = {"train": "train", "validation": "val", "valid": "val", "val": "val", "test": "test"}


def is_saved_dataset(path: Path) -> bool:
    """A folder that ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk`` wrote."""
    return any((path / name).is_file() for name in ("state.json", "dataset_dict.json"))


def hf_splits(corpus: str, spec) -> tuple[list[Path], dict[str, Callable[[], Iterator]]]:
    """The dataset's files (for the fingerprint) and, per split it has (train, val, test), a
    function that yields its documents, each a list of one text."""
    datasets = _datasets(corpus)
    path = Path(corpus).expanduser()
    try:
        if is_saved_dataset(path):
            loaded = datasets.load_from_disk(str(path))
        elif spec.download:
            loaded = datasets.load_dataset(corpus)
        else:
            raise FileNotFoundError("data.download=false")
    except (FileNotFoundError, ConnectionError, ValueError, OSError) as err:
        raise FmlabError(
            f"data.corpus={corpus!r} is not a dataset that can be loaded here ({err}). Give the "
            "folder that Dataset.save_to_disk wrote, or a Hugging Face hub name on a machine with "
            "internet (data.download=true)."
        ) from None
    named = loaded if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    splits, files = {}, []
    for name, dataset in named.items():
        if name not in SPLIT_NAMES:
            continue
        if spec.text_field not in dataset.column_names:
            raise FmlabError(
                f"data.corpus={corpus!r} has no column {spec.text_field!r} (its columns: "
                f"{', '.join(dataset.column_names)}). Set data.text_field to the column that "
                "holds the text."
            )
        splits[SPLIT_NAMES[name]] = _documents(dataset, spec.text_field)
        files += [Path(f["filename"]) for f in dataset.cache_files]
    if "train" not in splits:
        raise FmlabError(
            f"data.corpus={corpus!r} has no training split (its splits: {', '.join(named)}). "
            "Give a dataset with a 'train' split, or save the one to train on as a Dataset."
        )
    return sorted(set(files)), splits


def _documents(dataset, field: str) -> Callable[[], Iterator[Iterable[str]]]:
    def documents():
        for batch in dataset.iter(batch_size=1000):
            for text in batch[field]:
                yield [text] if text else []

    return documents


def _datasets(corpus: str):
    try:
        import datasets
    except ImportError:
        raise FmlabError(
            f"data.corpus={corpus!r} is a Hugging Face dataset, which needs the datasets package: "
            "pip install fmlab[hf] (or pip install datasets)."
        ) from None
    return datasets
