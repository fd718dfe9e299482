"""The runs a table spec needs: which are complete, and launching the others through
``fmlab-train -m`` (so through whatever Hydra launcher the user names), one sweep per row into
fixed folders: <out>/runs/<row id>/seed_<seed>."""

import logging
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from fmlab.errors import FmlabError
from fmlab.run import identity
from fmlab.tables.runs import load_job
from fmlab.tables.spec import Row, TableSpec

log = logging.getLogger(__name__)


@dataclass
class Job:
    row: Row
    seed: int
    folder: Path
    overrides: list[str]  # the fmlab-train overrides that make this job
    state: str  # "complete", "missing", "stale", or why the job has no complete record


def check_passthrough(overrides: list[str]) -> None:
    """Overrides for fmlab-train must parse, and each must give one value: a sweep inside a
    table row would write two runs into one seed folder."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise FmlabError(f"could not parse the fmlab-train overrides {overrides}: {err}") from None
    for override in parsed:
        if override.is_sweep_override():
            raise FmlabError(
                f"{override.input_line!r} sweeps over several values; a table's runs are fixed by "
                "its spec. Give one value, or add a row to the spec (conf/table/)."
            )
        if override.get_key_element() == "seed":
            raise FmlabError("seeds come from the table spec's `seeds`, not from seed=...")


def job_state(folder: Path, overrides: list[str]) -> str:
    run = load_job(folder)
    if not run.complete:
        return run.status
    return "complete" if identity.same_job(folder, overrides) else "stale"


def row_overrides(row: Row, runs_dir: Path) -> list[str]:
    """The row's overrides, ``{runs}`` replaced by the table's runs folder."""
    return [o.replace("{runs}", str(runs_dir)) for o in row.overrides]


def plan(spec: TableSpec, runs_dir: Path, passthrough: list[str]) -> list[Job]:
    """Every job of the table: the pre-training runs first (rows start from them), then the rows.
    ``{runs}`` in an override is the table's runs folder, so a row names a pre-training run's
    checkpoint as ``init_from={runs}/<id>/seed_${seed}/checkpoints/last.ckpt``."""
    jobs = []
    for row in spec.pretrain + spec.rows:
        for seed in spec.seeds:
            folder = runs_dir / row.id / f"seed_{seed}"
            overrides = [
                *spec.overrides,
                *row_overrides(row, runs_dir),
                *passthrough,
                f"seed={seed}",
            ]
            jobs.append(Job(row, seed, folder, overrides, job_state(folder, overrides)))
    return jobs


def set_aside(job: Job, stale_dir: Path) -> None:
    """Keep what an unfinished or stale job left, out of the way of its relaunch."""
    target = stale_dir / job.row.id / f"seed_{job.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(job.folder, target)
    log.info("Set aside %s job %s -> %s", job.state, job.folder, target)


def _hydra_quote(path: Path) -> str:
    """A path as a Hydra override value: quoted, so that commas or spaces in it stay literal."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def launch_row(row_dir: Path, overrides: list[str], seeds: list[int]) -> subprocess.Popen:
    """Start ``fmlab-train -m <overrides> seed=<seeds>`` into <row_dir>/seed_<seed>."""
    command = [
        str(Path(sys.executable).with_name("fmlab-train")),
        "-m",
        *overrides,
        "seed=" + ",".join(map(str, seeds)),
        f"hydra.sweep.dir={_hydra_quote(row_dir)}",
        "hydra.sweep.subdir=seed_${seed}",
    ]
    log.info("Launching: %s", shlex.join(command))
    return subprocess.Popen(command)


def launch_missing(jobs: list[Job], out: Path, parallel_rows: bool = False) -> int:
    """Launch every job that is not complete, one sweep per row, a row at a time (or all rows at
    once: for launchers that send jobs elsewhere, like SLURM); the number of rows that failed."""
    started = []
    for row in dict.fromkeys(j.row for j in jobs):
        todo = [j for j in jobs if j.row == row and j.state != "complete"]
        if not todo:
            continue
        for job in todo:
            if job.state != "missing":
                set_aside(job, out / "stale")
        overrides = [o for o in todo[0].overrides if not o.startswith("seed=")]
        started.append((row, launch_row(todo[0].folder.parent, overrides, [j.seed for j in todo])))
        if not parallel_rows:
            started[-1][1].wait()
    failed = 0
    for row, process in started:
        if process.wait():
            log.error(
                "Row %r: fmlab-train exited %d; the table marks its jobs.",
                row.name,
                process.returncode,
            )
            failed += 1
    return failed
