"""Named runs and resuming: which checkpoint a run continues from, and its W&B run id.

``run_id=NAME`` fixes the run folder (logs/<task>/runs/NAME, see conf/hydra/default.yaml), so
running the same command again finds what the first attempt left there: the newest readable
checkpoint (``checkpoints/*.ckpt``, or the ``hpc_ckpt_*.ckpt`` Lightning saves on SLURM's
pre-emption signal) and the W&B run id.
"""

import logging
import re
import uuid
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fmlab.errors import FmlabError
from fmlab.run import identity
from fmlab.run.checkpoints import CorruptCheckpoint, load_checkpoint
from fmlab.run.files import DiskFull, size

log = logging.getLogger(__name__)

MODES = ("auto", "never", "must")


def check_options(cfg: DictConfig) -> None:
    run_id = cfg.get("run_id")
    if run_id is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(run_id)):
        raise FmlabError(
            f"run_id={run_id!r} is not a usable folder name. Use letters, digits, '.', '_' and "
            "'-' only (for example run_id=resnet20-seed1)."
        )
    if cfg.get("resume") not in MODES:
        raise FmlabError(
            f"resume={cfg.get('resume')!r} is not a resume mode. Use resume=auto (continue from "
            "the run folder's newest checkpoint if there is one), resume=never (refuse to touch "
            "a folder that has checkpoints) or resume=must (fail if there is none)."
        )


def checkpoints(run_dir: Path) -> list[Path]:
    """The run folder's checkpoints, newest first."""
    found = [*run_dir.glob("checkpoints/*.ckpt"), *run_dir.glob("hpc_ckpt_*.ckpt")]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def after_disk_full(full: DiskFull, cfg: DictConfig) -> str:
    """The full-disk message of a job: what did not fit, the newest checkpoint that loads, and
    the command that continues from it once there is room."""
    run_dir = Path(cfg.paths.output_dir)
    newest = None
    for path in checkpoints(run_dir):
        try:
            newest = (path, load_checkpoint(path, key="checkpoint")["global_step"])
            break
        except FmlabError:
            continue
    needed = full.needed or (newest[0].stat().st_size if newest else None)
    room = f"at least {size(needed)}" if needed else "space"
    again = _same_command(cfg, run_dir)
    if newest is None:
        return f"{full} No checkpoint was saved yet. Free {room} there, then {again}."
    return (
        f"{full} The newest intact checkpoint is {newest[0]} (step {newest[1]}). Free {room} "
        f"there (or move the run folder elsewhere), then {again} to continue from it."
    )


def _same_command(cfg: DictConfig, run_dir: Path) -> str:
    """A timestamped run folder is not found again by the same command: name it."""
    hydra = HydraConfig.get()
    given = [*hydra.overrides.task, *hydra.overrides.hydra]
    if cfg.get("run_id") or any(o.startswith(("hydra.run.dir=", "sweep_id=")) for o in given):
        return "run the same command again"
    return f"run the same command again with hydra.run.dir={run_dir}"


def checkpoint_to_resume(cfg: DictConfig, run_dir: Path, config: dict) -> str | None:
    """The checkpoint this run continues from: ``ckpt_path`` if given, else (``resume=auto|must``)
    the newest readable one in ``run_dir``. Every candidate is checked as plain data first."""
    if cfg.get("ckpt_path"):
        load_checkpoint(cfg.ckpt_path)  # refuses code, corrupt files and non-fmlab files by name
        return str(Path(cfg.ckpt_path).expanduser())
    found = checkpoints(run_dir)
    if cfg.resume == "never":
        if found:
            raise FmlabError(
                f"the run folder {run_dir} already holds checkpoints ({found[0].name}, ...) and "
                "resume=never. Pass resume=auto to continue that run, or choose another run_id."
            )
        return None
    for path in found:
        try:
            checkpoint = load_checkpoint(path, key="resume checkpoint")
        except CorruptCheckpoint as err:  # e.g. written by an older fmlab without atomic saves
            log.warning("Skipping a checkpoint that cannot be read: %s", err)
            continue
        config_was = checkpoint["hyper_parameters"]["config"]
        changes = identity.changes(config_was, config, identity.CONTINUABLE)
        if changes:
            raise FmlabError(
                f"run folder {run_dir} holds a run with another config ({'; '.join(changes[:6])}"
                f"{'; ...' if len(changes) > 6 else ''}). Continuing it would mix two "
                "experiments: use the same settings as that run, or choose another run_id."
            )
        log.info("Resuming from %s (step %d)", path, checkpoint["global_step"])
        return str(path)
    if cfg.resume == "must":
        raise FmlabError(
            f"resume=must, but the run folder {run_dir} holds no readable checkpoint. Check "
            "run_id, or pass resume=auto to start the run when there is nothing to continue."
        )
    return None


def wandb_run_id(run_dir: Path) -> str:
    """This run's W&B id, kept in its folder: a resumed run logs into the same W&B run. (Beside
    checkpoints/, not in it: Lightning warns about a checkpoint folder that is not empty.)"""
    path = run_dir / "wandb_run_id.txt"
    for kept in (path, run_dir / "checkpoints" / "wandb_run_id.txt"):  # the latter: fmlab 0.1
        if kept.is_file() and kept.read_text().strip():
            return kept.read_text().strip()
    run_id = uuid.uuid4().hex[:8]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id
