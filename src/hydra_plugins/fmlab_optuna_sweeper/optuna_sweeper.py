"""The Hydra Sweeper of `hydra/sweeper=optuna` (configs in `config`, the search in `_search`)."""

from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaSweeper(Sweeper):
    """Asks Optuna for `n_jobs` trials at a time, runs them as one batch of the configured
    launcher, and tells Optuna how each ended, until the study holds `n_trials` trials."""

    def __init__(self, **settings: Any) -> None:
        self.settings = (
            settings  # the fields of config.OptunaSweeperConf, sampler and pruner unbuilt
        )

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> Any:
        from ._search import Search  # Optuna loads here, not when Hydra starts

        return Search(self, arguments).run()
