"""Bad input reaches the user as one paragraph naming the bad value and the fix, never a traceback.

- ``cli``: Hydra's composition errors (an unknown option of a group, a misspelled key, bad
  override syntax), explained with the valid choices and a "did you mean";
- ``job``: FmlabError, OmegaConf and instantiation errors inside the run become one log line; a
  full disk names the newest checkpoint that survived it.

What is checked before a job builds anything is ``fmlab.config.checks``.
"""

import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.errors import (
    ConfigCompositionException,
    InstantiationException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf.errors import OmegaConfBaseException

from fmlab.config.checks import did_you_mean
from fmlab.errors import FmlabError, UsageError
from fmlab.run import files

log = logging.getLogger(__name__)
EXIT_USAGE = 2  # the command line itself is wrong (as argparse does)


def explain(err: Exception) -> str:
    """One paragraph for a Hydra composition error."""
    if isinstance(err, MissingConfigException) and err.options is not None:
        group, _, option = str(err.missing_cfg_file).rpartition("/")
        return (
            f"{group}={option} is not an option of the config group {group!r}: there is no "
            f"conf/{group}/{option}.yaml.{did_you_mean(option, err.options)} The options are: "
            f"{', '.join(err.options)}. Pick one of those, or add conf/{group}/{option}.yaml."
        )
    if isinstance(err, OverrideParseException):
        return _explain_override(err)
    cause = err.__cause__
    if isinstance(cause, OmegaConfBaseException) and "Could not override" in str(err):
        parent = cause.parent_node
        keys = [k for k in (parent.keys() if parent is not None else []) if k != "hydra"]
        keys = [k for k in keys if not (k.startswith("_") and k.endswith("_"))]
        where = cause.full_key.rpartition(".")[0]
        append = str(err).rpartition("use ")[2].strip()
        return (
            f"{cause.full_key!r} is not a key of the config{f' {where!r}' if where else ''}: "
            f"misspelled?{did_you_mean(str(cause.key), keys)} Its keys are: {', '.join(keys)}. "
            f"To add a new key on purpose, prefix it with '+': {append}"
        )
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    lines = lines[: next((i for i, s in enumerate(lines) if s.startswith("Config search")), None)]
    return " ".join(lines)


def _explain_override(err: OverrideParseException) -> str:
    """Hydra's grammar reads an unquoted value as a number, a boolean, a list, a dict or a simple
    ASCII string; any other text (Chinese, say, or most punctuation) must be quoted."""
    key, sep, value = err.override.partition("=")
    if not sep:
        return (
            f"cannot read the override {err.override!r}: write it as key=value (a key that is "
            "new to the config as +key=value, one to remove as ~key)."
        )
    quoted = value.replace("\\", "\\\\").replace("'", "\\'")
    return (
        f"cannot read the value of {key.lstrip('+~')} in {err.override!r}: unquoted, Hydra's "
        "override grammar takes only numbers, booleans, lists, dicts and plain ASCII words. If the "
        "value is text, quote it, and quote the whole override for the shell: "
        f"\"{key}='{quoted}'\". Otherwise correct its syntax "
        "(https://hydra.cc/docs/advanced/override_grammar/basic/)."
    )


def cli(hydra_main: Callable, app: str):
    """Run a ``@hydra.main`` function; a composition error exits 2 with one paragraph."""
    if os.environ.get("HYDRA_FULL_ERROR"):  # the user asked for Hydra's own full traces
        return hydra_main()
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors to us instead of printing them
    try:
        return hydra_main()
    except (ConfigCompositionException, OverrideParseException) as err:
        print(f"{app}: error: {explain(err)}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    except FmlabError as err:  # raised outside a job: a sweep's check of its jobs, the sweeper
        print(f"{app}: error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE if isinstance(err, UsageError) else 1) from None
    except ValueError as err:  # Hydra's own check of its flags, e.g. -m with --cfg job
        if not str(err).startswith("Only one of --run, --multirun"):
            raise
        print(
            f"{app}: error: {err}. To see a job's config, run the command without -m (--cfg job "
            "shows what one job composes).",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_USAGE) from None
    except OSError as err:  # Hydra writes .hydra/ and the log before the job: the disk is full
        if (full := files.disk_full(err, Path.cwd())) is None:
            raise
        print(
            f"{app}: error: {full} Free space there, then run the command again.", file=sys.stderr
        )
        raise SystemExit(1) from None
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)


def job(run: Callable, cfg):
    """Run the job; a user error is logged as one paragraph and exits 1 (2: a UsageError)."""
    from lightning.pytorch.utilities.exceptions import (
        SIGTERMException,
    )  # a job's import, not --help's

    exit_code = 1
    try:
        return run(cfg)
    except (FmlabError, OSError) as err:
        if (full := files.disk_full(err, Path(cfg.paths.output_dir))) is not None:
            _log_disk_full(full, cfg)
            raise SystemExit(1) from None
        if not isinstance(err, FmlabError):
            raise
        log.error("%s", err)
        if isinstance(err, UsageError):
            exit_code = EXIT_USAGE
    except InstantiationException as err:
        if isinstance(err.__cause__, FmlabError):  # a constructor's own paragraph says it all
            log.error("%s", err.__cause__)
        else:
            log.error("%s Fix that value on the command line or in its conf/ file.", _one_line(err))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        if (own := _fmlab_error_in(err)) is not None:  # a resolver's own message says it all
            log.error("%s: %s", key, own)
        else:
            log.error(
                "%s%s. Fix that value on the command line or in its conf/ file.",
                f"{key}: " if key else "",
                _one_line(err),
            )
    except SIGTERMException:
        log.warning(
            "Stopped by a signal (pre-emption, scancel or a time limit). Run the same command "
            "again (with its run_id) to continue from the newest checkpoint."
        )
        raise SystemExit(128 + 15) from None
    _remove_if_nothing_made(Path(cfg.paths.output_dir), f"{cfg.get('task_name')}.log")
    raise SystemExit(exit_code)


def _remove_if_nothing_made(folder: Path, log_name: str) -> None:
    """A job refused before it made anything leaves no run folder behind: six mistakes would
    leave six folders, and the newest would not be the run a user looks for. Only a folder that
    holds just what starting the job wrote (Hydra's .hydra/, the run lock, the log) goes."""
    started = {".hydra", "run.lock", log_name}
    if folder.is_dir() and {p.name for p in folder.iterdir()} <= started:
        shutil.rmtree(folder, ignore_errors=True)


def _fmlab_error_in(err: BaseException) -> FmlabError | None:
    """The FmlabError that an OmegaConf error wraps (a resolver's), however deep."""
    while err is not None and not isinstance(err, FmlabError):
        err = err.__cause__ or err.__context__
    return err


def _log_disk_full(full, cfg) -> None:
    from fmlab.run.resume import after_disk_full  # it loads torch, which --help need not

    # The log file may be on the full disk: a failed write to it must not print a traceback.
    logging.raiseExceptions = False
    log.error("%s", after_disk_full(full, cfg))


def _one_line(err: Exception) -> str:
    return " ".join(s.strip() for s in str(err).splitlines() if s.strip()).rstrip(".")
