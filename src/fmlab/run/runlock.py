"""One process per run folder. A second fmlab-train on a folder that a live process trains in (a
sweep re-launched while its jobs run, a SLURM requeue while the old job lives) is refused, naming
the holder; without this it resumed from the first one's unfinished checkpoint and broke its logs.

The lock is ``run.lock`` in the run folder, held with ``flock`` for as long as the job runs: the
kernel releases it when its process ends, however it ends. The file names the holder (host, PID,
start, command) and is emptied on a clean exit, so a name left in it is that of a process that
died (kill -9, a crashed node): its lock is taken over, saying so. DDP ranks >= 1 run inside their
rank 0's lock and take none.
"""

import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only

from fmlab.errors import FmlabError

log = logging.getLogger(__name__)
NAME = "run.lock"


@contextmanager
def held(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` for the duration; refuse it if a live process holds it."""
    if rank_zero_only.rank != 0:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / NAME, "a+") as f:  # a+: created if missing, never emptied by opening
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FmlabError(_in_use(run_dir, _holder(f))) from None
        previous = _holder(f)
        if previous and _alive(previous):  # a filesystem whose locks this host does not see
            raise FmlabError(_in_use(run_dir, previous))
        if previous:
            log.warning(
                "Took over the run folder %s from %s, which is no longer running (killed, "
                "crashed or requeued).",
                run_dir,
                _describe(previous),
            )
        _write(f, _me())
        try:
            yield
        finally:
            _write(f, None)  # a clean exit: no holder; the lock goes with the file's closing


def _in_use(run_dir: Path, holder: dict | None) -> str:
    who = _describe(holder) if holder else "another process (it wrote no name yet)"
    return (
        f"the run folder {run_dir} is in use: {who} is running in it. A second process there "
        "would continue from its unfinished checkpoints and break its logs. Wait for it to "
        "finish (or stop it), or give this run another run_id / hydra.run.dir."
    )


def _describe(holder: dict) -> str:
    return (
        f"pid {holder.get('pid')} on {holder.get('host')} (started {holder.get('started')}: "
        f"{holder.get('command')})"
    )


def _me() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "identity": _identity(os.getpid()),
        "command": " ".join(sys.argv),
    }


def _holder(f) -> dict | None:
    f.seek(0)
    text = f.read().strip()
    if not text:
        return None
    try:
        holder = json.loads(text)
    except ValueError:
        return {"pid": "?", "host": "?", "started": "?", "command": text[:200]}
    return holder if isinstance(holder, dict) else None


def _write(f, holder: dict | None) -> None:
    f.seek(0)
    f.truncate()
    if holder:
        f.write(json.dumps(holder) + "\n")
    f.flush()


def _alive(holder: dict) -> bool:
    """Whether the named process still runs, as far as this host can tell: on this host, the
    same PID with the same boot and start time (a PID reused since is another process)."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False  # another host: its lock was released, so its process is gone
    identity = _identity(holder["pid"])
    if identity is not None or holder.get("identity") is not None:
        return identity == holder.get("identity")
    try:  # no /proc (macOS): the PID alone
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _identity(pid: int) -> str | None:
    """Boot id and start time (clock ticks since boot) of a running process, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    return f"{boot}:{stat.rpartition(')')[2].split()[19]}"  # field 22, starttime
