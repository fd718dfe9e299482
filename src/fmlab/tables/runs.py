"""The jobs a table is made of: one Run per job, read from run folders or from a W&B project."""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from fmlab.errors import FmlabError

COMPLETE = "complete"


@dataclass
class Run:
    """One job: its record when it finished, else what is known of it.

    ``status`` is the record's ("complete") or why there is none: "unfinished" (a job folder
    without results.json: it failed or is still running), "missing" (never launched), "stale"
    (made with other overrides than the table asks for), or a W&B state ("failed", "crashed").
    """

    where: str  # the job folder, or the W&B run's URL
    status: str
    config: dict = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    official: bool | None = None  # None: no data record says (W&B, unfinished jobs)

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE

    @property
    def seed(self):
        return self.config.get("seed")

    def value(self, key: str):
        """The config value at a dotted path (``model._target_``); None where there is none."""
        node = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node


def load_job(folder: Path) -> Run:
    """The run in one job folder: results.json when the job finished, else its composed config."""
    folder = Path(folder)
    results = folder / "results.json"
    if results.is_file():
        try:
            record = json.loads(results.read_text())
        except (OSError, json.JSONDecodeError):
            return Run(str(folder), "unreadable results.json")
        return Run(
            where=str(folder),
            status=record.get("status", "unknown"),
            config=record.get("config") or {},
            metrics={k: float(v) for k, v in (record.get("metrics") or {}).items()},
            official=(record.get("data") or {}).get("official"),
        )
    hydra_config = folder / ".hydra" / "config.yaml"
    if hydra_config.is_file():
        # Unresolved: interpolations stay as written, the plain values (model, seed) are there.
        config = OmegaConf.to_container(OmegaConf.load(hydra_config), resolve=False)
        return Run(str(folder), "unfinished", config=config)
    return Run(str(folder), "missing")


def find_jobs(roots: list[str | Path], task: str | None = "train") -> list[Run]:
    """Every job under the given run or sweep folders, finished or not, in path order.

    ``task`` keeps the jobs of one app (fmlab-train's records say task: train); None keeps all.
    """
    folders = set()
    for root in map(Path, roots):
        if not root.is_dir():
            raise FmlabError(
                f"runs={str(root)!r} is not a folder. Pass run or sweep folders that fmlab-train "
                "wrote, e.g. runs=[logs/train/multiruns/2026-01-01_12-00-00]."
            )
        folders.update(p.parent for p in root.rglob("results.json"))
        folders.update(p.parent.parent for p in root.rglob(".hydra/config.yaml"))
    runs = [load_job(folder) for folder in sorted(folders)]
    if task is not None:
        runs = [r for r in runs if r.config.get("task_name", task) == task]
    return runs


def run_from_wandb(run) -> Run:
    """A W&B public-API run as a Run: its config is the resolved config fmlab-train logged."""
    metrics = {
        k: float(v)
        for k, v in run.summary_metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    status = COMPLETE if run.state == "finished" else run.state
    return Run(where=run.url, status=status, config=dict(run.config), metrics=metrics)


def wandb_jobs(project: str, filters: dict | None = None) -> list[Run]:
    """The runs of a W&B project (``entity/project``), read through wandb.Api; online only."""
    from fmlab.run.tracking import wandb_mode

    mode = os.environ.get("WANDB_MODE")
    if mode in ("offline", "disabled", "dryrun") or wandb_mode() != "online":
        raise FmlabError(
            f"wandb={project!r}: collecting runs from W&B needs the network and credentials "
            f"(WANDB_API_KEY or `wandb login`), and WANDB_MODE not offline (it is {mode!r}). "
            "This machine is offline or has no key. Collect from the run folders instead "
            "(runs=[logs/train/multiruns/...]), or `wandb sync` them and run this where W&B "
            "is reachable."
        )
    import wandb

    try:
        return [run_from_wandb(r) for r in wandb.Api().runs(project, filters=filters)]
    except (ValueError, wandb.errors.CommError) as err:
        raise FmlabError(f"wandb={project!r}: W&B refused the query ({err}).") from None
