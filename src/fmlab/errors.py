"""Errors that reach the user as one clear paragraph instead of a traceback."""


class FmlabError(Exception):
    """A problem the user can fix; its message names the bad value and the fix."""


class NonFiniteLoss(FmlabError):
    """The training loss became NaN or Inf (fmlab.run.callbacks.StopOnNonFinite)."""


class UsageError(FmlabError):
    """The command line, or a conf/ file it composes, is wrong: the run exits 2, as argparse does,
    before it builds anything (fmlab.config.checks)."""
