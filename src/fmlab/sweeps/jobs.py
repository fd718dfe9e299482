"""Sweeps from one entry point: named and resumable sweep folders, DDP that is safe under `-m` and
under SLURM, one GPU or a share of the CPU cores per parallel job, and the W&B group of a sweep.

`prepare_job(cfg)` runs first in every job (and every rank); `finished_record(cfg)` lets a resumed
sweep skip a job whose results.json is complete.
"""

import fcntl
import logging
import os
import sys
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from fmlab.config.resolvers import cpu_count, in_multirun, visible_gpus
from fmlab.errors import FmlabError
from fmlab.run import identity

log = logging.getLogger(__name__)
COMMAND = list(sys.argv)  # as typed; a DDP job under -m replaces sys.argv with its own command


def slurm_job() -> bool:
    """Inside a SLURM batch job, where Lightning takes its ranks from SLURM (as it decides)."""
    return "SLURM_NTASKS" in os.environ and os.environ.get("SLURM_JOB_NAME") not in ("bash", None)


def ranks_from_outside() -> int:
    """Processes that srun or torchrun started for this one run (Lightning's own DDP children
    carry LOCAL_RANK and a fixed hydra.run.dir, and are not counted)."""
    if slurm_job():
        return int(os.environ["SLURM_NTASKS"])
    if "TORCHELASTIC_RUN_ID" in os.environ:
        return int(os.environ.get("WORLD_SIZE", 1))
    return 1


def prepare_job(cfg: DictConfig) -> None:
    """Make this job safe to run where it runs; refuse what cannot be made safe."""
    hydra = HydraConfig.get()
    _refuse_started_ranks(cfg.trainer.get("strategy"))
    if not in_multirun():
        _refuse_rank_folders(hydra)
    _check_slurm_tasks(cfg)
    if rank_zero_only.rank != 0:
        logging.getLogger().setLevel(logging.ERROR)  # rank 0 alone writes the job's log
        return  # rank 0 made the checks below, and launched this rank
    if in_multirun() and ranks_from_outside() == 1:
        _forget_previous_job()
    if cfg.get("resume_sweep"):
        _require_fixed_sweep_folder(hydra)
    if "optuna" in str(hydra.sweeper.get("_target_", "")).lower() and not cfg.get(
        "optimized_metric"
    ):
        raise FmlabError(
            "the Optuna sweeper needs a metric to optimise, but optimized_metric is null. Set "
            "optimized_metric=val/acc (or any split/metric the task logs)."
        )
    launcher = str(hydra.launcher.get("_target_", ""))
    if launcher.endswith(("JoblibLauncher", "submitit_launcher.LocalLauncher")):
        if _num_devices(cfg.trainer) > 1:
            raise FmlabError(
                f"{launcher.rsplit('.', 1)[-1]} runs each job in a worker process, from which "
                f"Lightning cannot start the DDP ranks of trainer.devices={cfg.trainer.devices}. "
                "Run DDP jobs with the default launcher or hydra/launcher=slurm."
            )
        if launcher.endswith("JoblibLauncher"):
            _share_machine(int(hydra.launcher.n_jobs), Path(hydra.sweep.dir) / ".slots")
    else:
        _ddp_ranks_run_this_job(cfg)


def _check_slurm_tasks(cfg: DictConfig) -> None:
    """The launcher asks SLURM for resources once per sweep, from the command line's trainer; a
    job whose own trainer wants another number of ranks would fail inside Lightning."""
    tasks = os.environ.get("SLURM_NTASKS_PER_NODE")
    if slurm_job() and tasks and int(tasks) != _num_devices(cfg.trainer):
        raise FmlabError(
            f"this SLURM job has {tasks} tasks per node, but its trainer.devices="
            f"{cfg.trainer.devices}: the launcher sets one task per device for the whole sweep. "
            "Give trainer.devices (or trainer=...) outside the swept values, one sweep per value."
        )


def _refuse_started_ranks(strategy) -> None:
    """Lightning's spawn/fork strategies start the ranks anew for `fit` and again for `test`:
    the Timer and step count of the record are lost and CSVLogger's header breaks between the
    two, after training (lightning-hydra-template's `ddp_sim`). `ddp` runs the same DDP by
    re-running the command, which fmlab makes safe alone, under -m and under SLURM."""
    start = strategy.get("start_method") if isinstance(strategy, DictConfig) else strategy
    if start is not None and any(w in str(start) for w in ("spawn", "fork", "notebook")):
        raise FmlabError(
            f"trainer.strategy={_shown(strategy)} is not supported by fmlab-train: it starts the "
            "DDP ranks again for testing and loses the run's record. Use trainer=ddp_cpu (CPU "
            "processes) or trainer=ddp (every GPU), or trainer.strategy=ddp with "
            "trainer.devices=N: the same DDP, its ranks started once by re-running the command."
        )


def _shown(strategy) -> str:
    if isinstance(strategy, DictConfig):
        return f"{strategy.get('_target_')}(start_method={strategy.start_method})"
    return str(strategy)


def _refuse_rank_folders(hydra) -> None:
    """srun/torchrun start each rank as its own run: each would resolve ${now} to its own folder."""
    raw_dir = OmegaConf.to_container(hydra.run, resolve=False)["dir"]
    if ranks_from_outside() > 1 and "${now:" in raw_dir:
        raise FmlabError(
            f"{ranks_from_outside()} ranks were started by SLURM/torchrun, and each would write "
            f"into its own timestamped folder ({raw_dir}). Give them one folder, e.g. "
            "hydra.run.dir=logs/train/runs/job-${oc.env:SLURM_JOB_ID}, or submit through the "
            "launcher: fmlab-train -m hydra/launcher=slurm trainer=ddp_slurm ..."
        )


def _require_fixed_sweep_folder(hydra) -> None:
    named = any(o.startswith(("sweep_id=", "hydra.sweep.dir=")) for o in _overrides(hydra))
    if not in_multirun() or not named:
        raise FmlabError(
            "resume_sweep=true re-runs a multirun (-m) in the folder of its first run, which needs "
            "a name: run both times with sweep_id=NAME (or the same hydra.sweep.dir=...)."
        )


def _overrides(hydra) -> list[str]:
    return [*hydra.overrides.task, *hydra.overrides.hydra]


def _num_devices(trainer: DictConfig) -> int:
    devices = trainer.get("devices", 1)
    if devices in ("auto", -1, "-1"):
        return 1 if trainer.get("accelerator") == "cpu" else max(1, torch.cuda.device_count())
    if isinstance(devices, str):
        return len([d for d in devices.split(",") if d.strip()]) if "," in devices else int(devices)
    return len(devices) if OmegaConf.is_list(devices) else int(devices)


def _ddp_ranks_run_this_job(cfg: DictConfig) -> None:
    """Lightning's `ddp` starts ranks >= 1 by re-running sys.argv plus `hydra.run.dir=<run.dir>`.
    Under -m each would re-run the whole sweep (with Optuna, on other hyper-parameters): hand
    Lightning this job's overrides and folder instead, so that they join this job and only it.
    (`ddp_spawn` avoids the re-run too, but breaks the record: see _refuse_started_ranks.)"""
    strategy = cfg.trainer.get("strategy", "auto")
    if not in_multirun() or ranks_from_outside() > 1 or _num_devices(cfg.trainer) < 2:
        return
    if strategy not in ("ddp", "auto", None) and not str(strategy).startswith("ddp_find_unused"):
        return
    hydra = HydraConfig.get()
    sys.argv = [sys.argv[0], *hydra.overrides.task]
    with read_write(hydra), open_dict(hydra):
        hydra.run.dir = hydra.runtime.output_dir
    log.info("DDP under -m: ranks >= 1 run this job only (%s)", hydra.runtime.output_dir)


def _forget_previous_job() -> None:
    """A job's DDP leaves its process group and Lightning's rank variables in this process; the
    next job of the sweep would take them for ranks started from outside and wait forever."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    sys.argv = list(COMMAND)
    for name in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        os.environ.pop(name, None)


_slot: tuple[int, object] | None = None  # (slot, open lock file), held for the worker's life


def _share_machine(n_jobs: int, slots: Path) -> None:
    """One GPU, or cores/n_jobs torch threads, per worker of the parallel launcher. A worker keeps
    its slot for all its jobs: CUDA reads CUDA_VISIBLE_DEVICES once per process."""
    global _slot
    if _slot is None:
        slots.mkdir(parents=True, exist_ok=True)
        for k in range(max(n_jobs, 1)):
            lock = open(slots / f"slot-{k}.lock", "w")  # noqa: SIM115 (held until the worker exits)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            _slot = (k, lock)
            break
        else:
            raise FmlabError(f"all {n_jobs} parallel slots in {slots} are taken")
        gpus = visible_gpus()
        if gpus:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpus[_slot[0] % len(gpus)]
        torch.set_num_threads(max(1, cpu_count() // max(n_jobs, 1)))
        # The share is the thread count of every job of this worker (fmlab.run.threads keeps it).
        os.environ["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    log.info(
        "Parallel slot %d of %d: CUDA_VISIBLE_DEVICES=%s, %d torch threads",
        _slot[0],
        n_jobs,
        os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        torch.get_num_threads(),
    )


def finished_record(cfg: DictConfig) -> dict | None:
    """With resume_sweep=true: this job's finished results.json (complete, or pruned by an Optuna
    search), if it is this same job (fmlab.run.identity); a changed job is refused."""
    if not cfg.get("resume_sweep"):
        return None
    config = OmegaConf.to_container(cfg, resolve=True)
    record = identity.finished(Path(cfg.paths.output_dir), config, refuse_changed=True)
    if record is not None:
        log.info("Skipping: %s is finished (resume_sweep=true)", cfg.paths.output_dir)
    return record
