"""The run record, results.json: what a run produced and everything that produced it."""

import io
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from fmlab.run.files import write_atomic

PACKAGES = (
    "fmlab",
    "torch",
    "torchvision",
    "lightning",
    "hydra-core",
    "omegaconf",
    "wandb",
    "torchmetrics",
    "numpy",
)


def write_json_atomic(path: Path, obj: dict) -> None:
    """Write a temporary file beside ``path``, then rename: a crash leaves the old file intact."""

    def dump(f) -> None:
        text = io.TextIOWrapper(f, encoding="utf-8")
        json.dump(obj, text, indent=2, sort_keys=False, default=str)
        text.flush()
        text.detach()  # the file is write_atomic's to close

    write_atomic(path, dump)


def package_versions() -> dict[str, str | None]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state() -> dict:
    """Commit and dirty flag of the checkout fmlab runs from (None outside a git checkout)."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=here, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if commit is None else bool(dirty)}


def hardware() -> dict:
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpus": gpus,
    }


def environment() -> dict:
    """Everything about where and with what a run ran, for the record."""
    return {
        "packages": package_versions(),
        "git": git_state(),
        "hardware": hardware(),
        "command": sys.argv,
    }
