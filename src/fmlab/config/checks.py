"""A composed config checked against the constructors it names, before anything is built.

Each group's keys are its target's constructor arguments, so the constructor's signature is the
schema: ``check_config`` checks every ``_target_`` node (unknown keys, wrong types, values outside
their declared range, arguments that do not go together: ``fmlab.config.constraints``);
``check_given`` refuses the ``???`` a recipe leaves to the user; ``check_job`` does both. Their
errors are UsageError: exit 2. How a failure reaches the user is ``fmlab.commands.failures``.
"""

import difflib
import inspect
import os
import types
import typing
from collections.abc import Mapping, Sequence

from hydra.utils import get_object
from omegaconf import OmegaConf

from fmlab.config import constraint_tables
from fmlab.errors import UsageError


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_given(cfg) -> None:
    """A value the config marks ``???`` (one only the user can give, e.g. the checkpoint a
    fine-tuning recipe starts from) must be given: OmegaConf would pass the string "???" on."""
    if missing := sorted(OmegaConf.missing_keys(cfg)):
        raise UsageError(
            f"{', '.join(missing)}: the config leaves {'it' if len(missing) == 1 else 'them'} "
            f"to you (???). Add {' '.join(f'{k}=<value>' for k in missing)} to the command; the "
            "comment beside the key in the recipe or config group says what it takes."
        )


def check_job(cfg) -> None:
    """What every fmlab-train job checks before it builds anything, and a sweep checks for every
    one of its jobs before the first starts (fmlab.sweeps.checked)."""
    check_given(cfg)
    check_config(OmegaConf.to_container(cfg, resolve=True))


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
        raise UsageError(
            f"{where}._target_={node['_target_']!r} cannot be imported ({err}). Check its "
            "spelling and that the package that provides it is installed."
        ) from None
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):  # some builtins have no signature: nothing to check against
        return
    hints = _hints(target)
    declared = constraint_tables.declared(target)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    name = getattr(target, "__qualname__", str(target))
    for key, value in node.items():
        if key.startswith("_") and key.endswith("_"):
            continue
        if key not in params:
            if takes_any:
                continue
            raise UsageError(
                f"{where}.{key} is not an argument of {name}.{did_you_mean(key, params)} Its "
                f"arguments are: {', '.join(p for p in params if p not in ('self', 'args'))}. "
                f"Remove {where}.{key} or correct its name."
            )
        hint = hints.get(key, params[key].annotation)
        if not _accepts(hint, value, params[key].default):
            default = params[key].default
            example = "" if default in (None, params[key].empty) else f", e.g. {default!r}"
            raise UsageError(
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
    raise UsageError(
        f"{full_key}={value!r} is out of range: {name} takes {each}{key} {limit}. Change that "
        "value on the command line or in its conf/ file."
    )


def _check_relations(target, name: str, node: dict, params, where: str) -> None:
    for rule in constraint_tables.relations(target):
        values = [node.get(k, params[k].default if k in params else None) for k in rule.keys]
        try:
            holds = rule.holds(*values)
        except TypeError:  # a null or non-number among them: nothing to relate
            holds = True
        if not holds:
            given = [f"{where}.{k}={v!r}" for k, v in zip(rule.keys, values, strict=True)]
            raise UsageError(
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
