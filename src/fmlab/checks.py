"""Bad input reaches the user as one paragraph naming the bad value and the fix, never a traceback.

Three layers, none of which needs a schema per config group (each group's keys are its target's
constructor arguments, so the constructor's signature is the schema):
- ``cli``: Hydra's composition errors (an unknown option of a group, a misspelled key, bad
  override syntax), explained with the valid choices and a "did you mean";
- ``check_config``: every ``_target_`` node against its constructor (unknown keys, wrong types,
  values outside their declared range, arguments that do not go together: ``fmlab.constraints``);
- ``job``: FmlabError, OmegaConf and instantiation errors inside the run become one log line.
"""

import difflib
import inspect
import logging
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from hydra.errors import (
    ConfigCompositionException,
    InstantiationException,
    MissingConfigException,
    OverrideParseException,
)
from hydra.utils import get_object
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fmlab import constraints, files
from fmlab.errors import FmlabError

log = logging.getLogger(__name__)
EXIT_USAGE = 2  # the command line itself is wrong (as argparse does)


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def explain(err: Exception) -> str:
    """One paragraph for a Hydra composition error."""
    if isinstance(err, MissingConfigException) and err.options is not None:
        group, _, option = str(err.missing_cfg_file).rpartition("/")
        return (
            f"{group}={option} is not an option of the config group {group!r}: there is no "
            f"conf/{group}/{option}.yaml.{_did_you_mean(option, err.options)} The options are: "
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
            f"misspelled?{_did_you_mean(str(cause.key), keys)} Its keys are: {', '.join(keys)}. "
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
    except FmlabError as err:  # raised outside a job, e.g. by the Optuna sweeper
        print(f"{app}: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
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
    """Run the job; a user error is logged as one paragraph and exits 1."""
    from lightning.pytorch.utilities.exceptions import (
        SIGTERMException,
    )  # a job's import, not --help's

    try:
        return run(cfg)
    except (FmlabError, OSError) as err:
        if (full := files.disk_full(err, Path(cfg.paths.output_dir))) is not None:
            _log_disk_full(full, cfg)
        elif isinstance(err, FmlabError):
            log.error("%s", err)
        else:
            raise
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
    raise SystemExit(1)


def _fmlab_error_in(err: BaseException) -> FmlabError | None:
    """The FmlabError that an OmegaConf error wraps (a resolver's), however deep."""
    while err is not None and not isinstance(err, FmlabError):
        err = err.__cause__ or err.__context__
    return err


def _log_disk_full(full, cfg) -> None:
    from fmlab.resume import after_disk_full  # it loads torch, which --help need not

    # The log file may be on the full disk: a failed write to it must not print a traceback.
    logging.raiseExceptions = False
    log.error("%s", after_disk_full(full, cfg))


def _one_line(err: Exception) -> str:
    return " ".join(s.strip() for s in str(err).splitlines() if s.strip()).rstrip(".")


def check_given(cfg) -> None:
    """A value the config marks ``???`` (one only the user can give, e.g. the checkpoint a
    fine-tuning recipe starts from) must be given: OmegaConf would pass the string "???" on."""
    if missing := sorted(OmegaConf.missing_keys(cfg)):
        raise FmlabError(
            f"{', '.join(missing)}: the config leaves {'it' if len(missing) == 1 else 'them'} "
            f"to you (???). Add {' '.join(f'{k}=<value>' for k in missing)} to the command; the "
            "comment beside the key in the recipe or config group says what it takes."
        )


def check_config(config: dict, where: str = "") -> None:
    """Every ``_target_`` node's keys must be arguments of its target, of the annotated type and
    within the declared range."""
    if not isinstance(config, dict):
        return
    if "_target_" in config:
        _check_node(config, where)
    for key, value in config.items():
        if isinstance(value, dict):
            check_config(value, f"{where}.{key}" if where else str(key))


def _check_node(node: dict, where: str) -> None:
    try:
        target = get_object(node["_target_"])
    except Exception as err:
        raise FmlabError(
            f"{where}._target_={node['_target_']!r} cannot be imported ({err}). Check its "
            "spelling and that the package that provides it is installed."
        ) from None
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):  # some builtins have no signature: nothing to check against
        return
    hints = _hints(target)
    declared = constraints.declared(target)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    name = getattr(target, "__qualname__", str(target))
    for key, value in node.items():
        if key.startswith("_") and key.endswith("_"):
            continue
        if key not in params:
            if takes_any:
                continue
            raise FmlabError(
                f"{where}.{key} is not an argument of {name}.{_did_you_mean(key, params)} Its "
                f"arguments are: {', '.join(p for p in params if p not in ('self', 'args'))}. "
                f"Remove {where}.{key} or correct its name."
            )
        hint = hints.get(key, params[key].annotation)
        if not _accepts(hint, value, params[key].default):
            default = params[key].default
            example = "" if default in (None, params[key].empty) else f", e.g. {default!r}"
            raise FmlabError(
                f"{where}.{key}={value!r} has the wrong type: {name} takes {key} as "
                f"{_type_name(hint)}. Write a value of that type{example}."
            )
        _check_range(f"{where}.{key}", value, name, _annotated_range(hint) or declared.get(key))
    _check_relations(target, name, node, params, where)


def _check_range(full_key: str, value, name: str, limit) -> None:
    if value is None or limit is None or limit.allows(value):
        return
    key = full_key.rpartition(".")[2]
    each = "each of " if isinstance(value, list) else ""
    raise FmlabError(
        f"{full_key}={value!r} is out of range: {name} takes {each}{key} {limit}. Change that "
        "value on the command line or in its conf/ file."
    )


def _check_relations(target, name: str, node: dict, params, where: str) -> None:
    for rule in constraints.relations(target):
        values = [node.get(k, params[k].default if k in params else None) for k in rule.keys]
        try:
            holds = rule.holds(*values)
        except TypeError:  # a null or non-number among them: nothing to relate
            holds = True
        if not holds:
            given = [f"{where}.{k}={v!r}" for k, v in zip(rule.keys, values, strict=True)]
            raise FmlabError(
                f"{', '.join(given[:-1])} and {given[-1]} do not go together for {name}: "
                f"{rule.says}. Change one of them on the command line or in its conf/ file."
            )


def _annotated_range(hint):
    """The constraint of ``Annotated[type, Range(...)]``, also inside ``... | None``."""
    if typing.get_origin(hint) is typing.Annotated:
        return next((m for m in hint.__metadata__ if hasattr(m, "allows")), None)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(filter(None, map(_annotated_range, typing.get_args(hint))), None)
    return None


def _hints(target) -> dict:
    try:
        function = target.__init__ if inspect.isclass(target) else target
        return typing.get_type_hints(function, include_extras=True)
    except Exception:  # unresolvable forward references: fall back to the raw annotations
        return {}


def _type_name(hint) -> str:
    if typing.get_origin(hint) is typing.Annotated:
        return _type_name(typing.get_args(hint)[0])
    return hint.__name__ if inspect.isclass(hint) else str(hint).replace("typing.", "")


def _accepts(hint, value, default) -> bool:
    """Whether a config value can be passed where ``hint`` is expected; unknown hints accept."""
    if hint is inspect.Parameter.empty or hint is typing.Any:
        return True
    if value is None:  # "not set": some are filled in by fmlab-train (e.g. a schedule's length)
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:  # the type, whatever constraint rides along
        return _accepts(typing.get_args(hint)[0], value, default)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(h, value, default) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if isinstance(value, dict) and "_target_" in value:
        return True  # a nested object built by instantiate
    scalars = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}
    if hint in scalars:
        return isinstance(value, scalars[hint]) and not (hint is not bool and value is True)
    if hint in (list, tuple) or origin in (list, tuple, Sequence):
        return isinstance(value, list)
    if hint is dict or origin in (dict, Mapping):
        return isinstance(value, dict)
    if inspect.isclass(hint):
        if isinstance(value, hint):
            return True
        if issubclass(hint, os.PathLike):
            return isinstance(value, str)
        return not isinstance(value, (bool, int, float, str))
    return True
