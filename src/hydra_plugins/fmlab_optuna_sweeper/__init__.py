"""fmlab's Optuna sweeper for Hydra (`hydra/sweeper=optuna`), on Optuna's ask-and-tell API.

Hydra imports every public module here at each start (to find its plugins), so none of them
imports Optuna at module level: `config` registers the structured configs, `optuna_sweeper` holds
the Sweeper, `trials` what a job needs to find its trial; the search itself is in `_search`.
"""
