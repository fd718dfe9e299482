"""Every job of a grid sweep checked before the first one starts: a mistake in job 5 (a key the
swapped optimizer does not take, a value of the wrong type) would otherwise surface only after
jobs 0-4 trained. Hydra's basic sweeper composes each job's config as the launcher will; each
gets fmlab-train's own check (fmlab.config.checks.check_job). An Optuna search draws its jobs as it
goes: its fixed part is what can be checked now.

Hydra turns a callback's exception into a warning and goes on, so a refused sweep ends here, the
way fmlab.commands.failures ends a run: one paragraph on stderr and exit 2.
"""

import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict

from fmlab.errors import UsageError

BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


class CheckEveryJob(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.global_hydra import GlobalHydra
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from hydra.errors import HydraException

        loader = GlobalHydra.instance().config_loader()
        parser = OverridesParser.create(config_loader=loader)
        task = list(config.hydra.overrides.task)
        if config.hydra.sweeper.get("_target_") == BASIC:  # as BasicSweeper.sweep splits them
            params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
            split = BasicSweeper.split_arguments(parser.parse_overrides(params + task), None)
            jobs = [job for batch in split for job in batch]
        else:  # a search's own choices are its to make
            jobs = [
                [o.input_line for o in parser.parse_overrides(task) if not o.is_sweep_override()]
            ]
        try:
            for num, job in enumerate(jobs):
                _check(loader.load_sweep_config(config, list(job)), num, job, len(jobs))
        except HydraException:  # a job that does not compose: the sweeper's own check says why
            return
        except UsageError as err:
            print(f"{config.hydra.help.app_name}: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        finally:
            HydraConfig.instance().set_config(config)  # the sweep's own, as Hydra left it


def _check(cfg: DictConfig, num: int, job: list[str], total: int) -> None:
    """One job's config, with what the launcher sets before it runs (its number and folder)."""
    from fmlab.config.checks import check_job

    with open_dict(cfg):
        cfg.hydra.job.num = cfg.hydra.job.id = num
        cfg.hydra.runtime.output_dir = str(Path(cfg.hydra.sweep.dir) / str(cfg.hydra.sweep.subdir))
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    try:
        check_job(cfg)
    except UsageError as err:
        raise UsageError(
            f"job {num} of {total} ({' '.join(job) or 'no overrides'}), checked before any job "
            f"started: {err}"
        ) from None
