"""The values a constructor argument may take, declared once and checked by ``fmlab.config.checks``
before any data is read: a learning rate of -0.1 or a batch of 0 is refused by name instead of
failing inside torch after minutes of loading.

This module holds the kinds of constraint (``Range``, ``CountOrShare``, ``Relation``) and the
named ranges fmlab's own data modules, tasks and schedules declare beside the argument::

    batch_size: Annotated[int, AT_LEAST_ONE] = 128

Networks import only torch (STYLE.md), and torch's and Lightning's classes are not ours to
annotate: their constraints, and the few rules that tie two arguments of one constructor
together, are the tables of ``fmlab.config.constraint_tables``.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """A number within bounds (each optional), or the one special value ``also`` (e.g. -1: no
    limit). A list value must hold such numbers only."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    also: float | None = None

    def allows(self, value) -> bool:
        if isinstance(value, (list, tuple)):
            return all(self.allows(v) for v in value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return True  # not a number: the type check's business
        if value == self.also:
            return True
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def __str__(self) -> str:
        low = f"[{_num(self.ge)}" if self.ge is not None else f"({_num(self.gt)}"
        high = f"{_num(self.le)}]" if self.le is not None else f"{_num(self.lt)})"
        if (self.ge, self.gt) == (None, None):
            text = f"≤ {_num(self.le)}" if self.le is not None else f"< {_num(self.lt)}"
        elif (self.le, self.lt) == (None, None):
            text = f"≥ {_num(self.ge)}" if self.ge is not None else f"> {_num(self.gt)}"
        else:
            text = f"in {low}, {high}"
        return text if self.also is None else f"{text}, or {_num(self.also)}"

    def outside(self) -> list:
        """Values just outside each bound (for the tests): integers for an integer range."""
        bounds = [b for b in (self.ge, self.gt, self.le, self.lt) if b is not None]
        whole = all(isinstance(b, int) for b in bounds)
        down = (lambda b: b - 1) if whole else (lambda b: math.nextafter(b, -math.inf))
        up = (lambda b: b + 1) if whole else (lambda b: math.nextafter(b, math.inf))
        values = [
            *([down(self.ge)] if self.ge is not None else []),
            *([self.gt] if self.gt is not None else []),
            *([up(self.le)] if self.le is not None else []),
            *([self.lt] if self.lt is not None else []),
        ]
        special = [] if self.also is None else [self.also - 1]
        return [v for v in values if v != self.also] + special


@dataclass(frozen=True)
class CountOrShare:
    """Lightning's convention for batches: an int counts them, a float is a share of an epoch."""

    count: Range
    share: Range

    def allows(self, value) -> bool:
        if isinstance(value, float):
            return self.share.allows(value)
        return self.count.allows(value)

    def __str__(self) -> str:
        return f"as a count {self.count} (an int) or a share of an epoch {self.share} (a float)"

    def outside(self) -> list:
        return [*self.count.outside(), *self.share.outside()]


@dataclass(frozen=True)
class Relation:
    """A rule over several arguments of one constructor; ``holds`` gets their values (a missing
    one as the constructor's default) and ``says`` what is wrong when it does not hold."""

    keys: tuple[str, ...]
    holds: Callable[..., bool]
    says: str


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


AT_LEAST_ONE = Range(ge=1)  # sizes and counts: batch, block, width, layers, steps
NON_NEGATIVE = Range(ge=0)  # counts where 0 means "none" or "off"
POSITIVE = Range(gt=0.0)  # learning rates, decay factors
NON_NEGATIVE_FLOAT = Range(ge=0.0)  # weight decay, penalties, epsilons
FRACTION = Range(ge=0.0, lt=1.0)  # dropout, label smoothing, a share held out of training
PROBABILITY = Range(ge=0.0, le=1.0)
DROPOUT = FRACTION
LIMIT = Range(ge=1, also=-1)  # Lightning's max_epochs/max_steps/devices: -1 means "no limit"/"all"
