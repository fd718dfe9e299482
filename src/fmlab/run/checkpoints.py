"""Checkpoints are data: every one fmlab reads is loaded with ``weights_only=True`` first, and
anything else (code, a truncated file, another network's weights) is refused by name."""

import io
import pickle
import re
import zipfile
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from fmlab.errors import FmlabError
from fmlab.run.files import write_atomic
from fmlab.run.moved import current


class CorruptCheckpoint(FmlabError):
    """A checkpoint that cannot be read at all (as opposed to one refused for what it holds)."""


def load_checkpoint(path: str | Path, key: str = "ckpt_path", needs_config: bool = True) -> dict:
    """The checkpoint at ``path`` (given as config key ``key``), loaded as plain data on the CPU.
    ``needs_config=False`` accepts any checkpoint of tensors (transfer learning needs only them)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FmlabError(
            f"{key}={str(path)!r} does not exist. Pass the path of a .ckpt file that fmlab-train "
            "wrote (<run folder>/checkpoints/last.ckpt)."
        )
    try:
        # mmap: reading a large checkpoint to inspect it costs no memory.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        raise FmlabError(
            f"{key}={str(path)!r} was refused: it carries pickled Python objects "
            f"({found.group(1) if found else 'code'}) that would run when loaded, and fmlab "
            "checkpoints hold only tensors and plain values. Nothing in it was run. Use a "
            "checkpoint written by fmlab-train, or re-save only its tensors where you trust it."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise CorruptCheckpoint(
            f"{key}={str(path)!r} is corrupt or truncated ({str(err).splitlines()[0]}). Use "
            "another checkpoint of the run (its checkpoints/ folder keeps the best and the last)."
        ) from None
    if not isinstance(checkpoint, dict) or (
        needs_config and "config" not in checkpoint.get("hyper_parameters", {})
    ):
        raise FmlabError(
            f"{key}={str(path)!r} holds no fmlab run config; it was not written by fmlab-train."
        )
    if "config" in checkpoint.get("hyper_parameters", {}):  # as fmlab names its modules now
        hp = checkpoint["hyper_parameters"]
        hp["config"] = current(hp["config"])
    return checkpoint


def check_fits(task: torch.nn.Module, checkpoint: dict, key: str = "ckpt_path") -> None:
    """Refuse weights that do not fit ``task``: missing, unexpected or differently shaped keys."""
    have = {k: tuple(v.shape) for k, v in task.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in checkpoint.get("state_dict", {}).items()}
    missing, unexpected = sorted(have.keys() - got), sorted(got.keys() - have)
    shapes = sorted(f"{k} {got[k]} vs {have[k]}" for k in have.keys() & got if have[k] != got[k])
    if not (missing or unexpected or shapes):
        return

    def few(names: list[str]) -> str:
        return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")

    problems = [
        f"{label}: {few(names)}"
        for label, names in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape (checkpoint vs model)", shapes),
        )
        if names
    ]
    raise FmlabError(
        f"{key} holds weights of another architecture than the configured model "
        f"{type(getattr(task, 'net', task)).__name__} ({'; '.join(problems)}). Pass a checkpoint "
        "of the same model, or choose the model it was trained with (see its "
        "hyper_parameters.config.model)."
    )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Serialises each checkpoint in memory (as Lightning does), then writes it beside its final
    name and renames it into place: a run killed while saving leaves the previous checkpoint, never
    a truncated one, and a checkpoint the disk cannot hold stops the run with ``DiskFull`` before
    a byte of it is written."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomic(path, buffer.getbuffer())
