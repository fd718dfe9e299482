"""What a run prints: Lightning's notes that nobody can act on are silenced here, where they start,
for every app that imports the training code (fmlab-train, fmlab-eval, fmlab-sample)."""

import logging
import warnings

import lightning  # noqa: F401 (adds its console handler on import: before it is removed below)

# Our DataModules serve batches from memory; worker processes would only add copies.
warnings.filterwarnings("ignore", ".*does not have many workers.*")
# A data module without a validation split returns no validation loader, on purpose.
warnings.filterwarnings("ignore", ".*Total length of `list` across ranks is zero.*")
# Raised inside Lightning 2.6 by torch >= 2.10's pytree; nothing a user can act on.
warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
# The data modules offer a validation split to every task; a GAN's has no use for it.
warnings.filterwarnings("ignore", ".*You passed in a `val_dataloader` but have no `validation_s.*")
# On any machine with SLURM installed; fmlab's SLURM launcher itself starts its jobs with srun.
warnings.filterwarnings("ignore", ".*`srun` command is available on your system.*")
# Lightning's package logger prints to a console handler of its own and then propagates to the root,
# where Hydra's handlers (console and the run's log file) print it again: keep Hydra's.
if logging.getLogger().handlers:
    logging.getLogger("lightning").handlers.clear()
# Lightning's advertisements for its cloud services, printed by every Trainer, and its report of
# accelerators that are absent ("GPU available: False, used: False"); one that is present stays.
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: (
        not str(record.msg).startswith(("💡 Tip", "GPU available: False", "TPU available: False"))
    )
)
