"""The search space as Hydra's override grammar writes it, in Optuna's distributions.

``interval(a, b)`` is a float distribution (``int(interval(a, b))`` an int one),
``tag(log, interval(a, b))`` its log-scale version, ``choice(a, b, c)`` and ``a,b,c`` a
categorical one, ``range(a, b, s)`` the ints (or floats) a, a+s, ... below b, as Hydra's basic
sweeper runs them; any other value is fixed and given to every trial. The command line's
overrides come after `hydra.sweeper.params`, and win over a parameter of the same name.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    QuotedString,
    RangeSweep,
    Transformer,
)
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from fmlab.errors import FmlabError


@dataclass
class SearchSpace:
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)  # key -> override line, for every trial
    texts: dict[str, dict] = field(default_factory=dict)  # categorical value -> override text

    def overrides(self, params: dict) -> list[str]:
        """One trial's overrides: the fixed ones, then its sampled values."""
        return [*self.fixed.values(), *(f"{k}={self.text(k, v)}" for k, v in params.items())]

    def text(self, name: str, value) -> str:
        if name in self.texts:
            return self.texts[name][value]
        return repr(value) if isinstance(value, float) else str(value)

    def probes(self) -> Iterator[list[str]]:
        """Overrides that compose every key and every choice at least once (the k-th choice of
        each categorical in round k): a misspelled key or option is found before any trial."""
        categorical = {
            k: d.choices
            for k, d in self.distributions.items()
            if isinstance(d, CategoricalDistribution)
        }
        for k in range(max(map(len, categorical.values()), default=1)):
            params = {
                name: dist.low
                for name, dist in self.distributions.items()
                if name not in categorical
            }
            params.update({name: c[k % len(c)] for name, c in categorical.items()})
            yield self.overrides(params)


def parse(lines: list[str]) -> SearchSpace:
    space = SearchSpace()
    for override in OverridesParser.create().parse_overrides(lines):
        key = override.get_key_element()
        name = key.lstrip("+~")
        space.distributions.pop(name, None)
        space.fixed.pop(name, None)
        space.texts.pop(name, None)
        if not override.is_sweep_override():
            space.fixed[name] = override.input_line or f"{key}={override.get_value_string()}"
            continue
        space.distributions[name] = _distribution(override, name, space)
    if not space.distributions:
        raise FmlabError(
            "the Optuna search has nothing to search: hydra.sweeper.params (and the command line) "
            "hold no interval(...), choice(...) or range(...). Give at least one, e.g. "
            "hydra.sweeper.params={optimizer.lr: 'tag(log, interval(1e-4, 1e-1))'}, or pick a "
            "search with hparams_search=NAME."
        )
    return space


def _distribution(override: Override, name: str, space: SearchSpace) -> BaseDistribution:
    value = override.value()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        elements = value.list if isinstance(value, ChoiceSweep) else list(value.range())
        texts = {}
        for element in elements:
            if isinstance(element, QuotedString):
                texts[element.text] = element.with_quotes()
            elif isinstance(element, list | dict):
                text = Transformer.str(element)
                texts[text] = text
            else:
                texts[element] = Transformer.str(element)
        space.texts[name] = texts
        return CategoricalDistribution(list(texts))
    if isinstance(value, RangeSweep):
        values = list(value.range())
        if not values:
            raise FmlabError(f"{override.input_line}: the range is empty. Give start < stop.")
        low, high, step = min(values), max(values), abs(value.step)
        if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
            return IntDistribution(int(low), int(high), step=int(step))
        return FloatDistribution(float(low), float(high), step=float(step))
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise FmlabError(
        f"{override.input_line}: the Optuna sweeper takes interval(...), tag(log, interval(...)), "
        "choice(...) and range(...); glob(...) selects config files, which Optuna cannot search."
    )
