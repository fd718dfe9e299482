"""Run identity: whether a run folder holds this run, finished, and what may change when it
continues. One rule for resuming a run (``run_id``), resumable sweeps and Optuna trials
(``resume_sweep=true``) and paper tables (fmlab-reproduce).

A run is its config, less the keys that say where it lives and how it is watched (``VOLATILE``),
and the checkpoint it started from (``init_from``): a run made from a checkpoint that has since
been made again is another run.
"""

import inspect
import json
import re
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.utils import get_object
from omegaconf import OmegaConf

from fmlab.errors import FmlabError
from fmlab.run.files import file_sha256
from fmlab.run.moved import current, renamed

# Config keys that say where a run lives and how it is watched, not what it computes.
VOLATILE = (
    "hydra",
    "paths",
    "data.data_dir",
    "data.cache_dir",  # caches of derived files: rebuilt or shared, never part of the result
    "task.feature_cache_dir",
    "task.fid_cache_dir",
    "trainer.default_root_dir",
    "run_id",
    "sweep_id",
    "resume",
    "resume_sweep",
    "ckpt_path",
    "logger",
    "tags",
    "run_name",
    "group",
    "test",
)
# Keys that may also change when a run continues: how long it trains and on what hardware.
CONTINUABLE = (
    *VOLATILE,
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.max_time",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "torch_threads",
    "callbacks",
    "optimized_metric",
    "data.num_workers",
    "data.pin_memory",
    "data.eval_batch_size",
)
FINISHED = ("complete", "pruned")  # pruned: an Optuna trial stopped early, a result all the same


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _kept(key: str, allowed: tuple[str, ...]) -> bool:
    key = key.replace("/", ".")  # a config group chosen on the command line: hydra/launcher=...
    return not any(key == p or key.startswith(p + ".") for p in allowed)


def changes(saved: dict, now: dict, allowed: tuple[str, ...] = VOLATILE) -> list[str]:
    """``key: saved -> now`` for every difference outside ``allowed`` keys and their children."""
    a, b = _flat(current(saved)), _flat(now)
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k, "<unset>") != b.get(k, "<unset>"))
    return [
        f"{k}: {a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r}"
        for k in keys
        if _kept(k, allowed) and not (k not in a and _new_default(k, b[k], now))
    ]


def _new_default(key: str, value, config: dict) -> bool:
    """Whether ``key`` is an argument a newer fmlab added to its node's ``_target_`` (absent from
    a run recorded before) holding that constructor's default: the same computation as then
    (``model.parametrization: sp`` on a GPT of a run made before μP)."""
    *path, name = key.split(".")
    node = config
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    if not path or not isinstance(node, dict) or not isinstance(node.get("_target_"), str):
        return False
    try:
        param = inspect.signature(get_object(renamed(node["_target_"]))).parameters.get(name)
    except Exception:  # a target that no longer imports: no default to compare with
        return False
    return param is not None and param.default is not param.empty and param.default == value


def read_record(run_dir: Path) -> dict | None:
    """The run's results.json, or None where there is none (or a torn one: it never finished)."""
    try:
        return json.loads((Path(run_dir) / "results.json").read_text())
    except (OSError, ValueError):
        return None


def finished(run_dir: Path, config: dict, refuse_changed: bool = False) -> dict | None:
    """The run's results.json if it finished as this same run, else None. A finished run of
    another config is None (it may continue from its checkpoints, if only ``CONTINUABLE`` keys
    changed), or with ``refuse_changed`` an error naming what changed."""
    record = read_record(run_dir)
    if record is None or record.get("status") not in FINISHED:
        return None
    changed = changes(record.get("config", {}), config) or upstream_changes(record)
    if changed and refuse_changed:
        raise FmlabError(
            f"{Path(run_dir) / 'results.json'} holds a finished run that differs from this one "
            f"({'; '.join(changed[:6])}{'; ...' if len(changed) > 6 else ''}): the sweep changed "
            "since it ran. Resume with the same overrides, or start a new sweep_id."
        )
    return None if changed else record


def upstream_changes(record: dict) -> list[str]:
    """The checkpoint a run started from (``init_from``), if it was made again since the run
    read it: ``["init_from: <path> changed"]``, else ``[]``."""
    source = (record.get("transfer") or {}).get("from")
    was = (record.get("transfer") or {}).get("sha256")
    if not source or not was:  # nothing started from, or a record of fmlab 0.1
        return []
    path = Path(source)
    if not path.is_file() or file_sha256(path) != was:
        return [f"init_from: {source} was made again since this run read it"]
    return []


def result_overrides(overrides: list[str]) -> list[str]:
    """The overrides that change what a run computes: all but the ``VOLATILE`` keys."""
    return [o for o in overrides if _kept(o.lstrip("+~").partition("=")[0], VOLATILE)]


def override_identity(overrides: list[str]) -> list[str]:
    """What makes a job's result, read from its overrides: each as key and parsed value, less
    the ``VOLATILE`` keys. A multirun records the values as it parsed them (``True`` for ``true``,
    ``0.001`` for ``1e-3``) and with Hydra's escapes (``seed_$\\{seed\\}``): both sides are compared
    parsed and without escapes."""
    parser = OverridesParser.create()
    return sorted(_canonical(o, parser) for o in result_overrides(overrides))


def _canonical(override: str, parser: OverridesParser) -> str:
    def unescape(text: str) -> str:
        return re.sub(r"\\(.)", r"\1", text)

    try:
        parsed = parser.parse_overrides([override])[0]
    except HydraException:  # compared as written
        return unescape(override)
    value = parsed.value()
    value = unescape(value) if isinstance(value, str) else value
    return f"{parsed.get_key_element()}={json.dumps(value, sort_keys=True, default=str)}"


def same_job(run_dir: Path, overrides: list[str]) -> bool:
    """Whether the finished job in ``run_dir`` was made by ``overrides`` (a table's job), from the
    same ``init_from`` checkpoint."""
    recorded = Path(run_dir) / ".hydra" / "overrides.yaml"
    if not recorded.is_file():
        return False
    made_with = list(OmegaConf.load(recorded))
    record = read_record(run_dir) or {}
    same = override_identity(made_with) == override_identity(overrides)
    return same and not upstream_changes(record)
