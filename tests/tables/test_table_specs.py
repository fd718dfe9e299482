"""Every shipped table spec parses and validates; its rows compose where their experiments exist;
a wrong spec is refused naming what is wrong."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fmlab import CONF_DIR
from fmlab.errors import FmlabError
from fmlab.tables.launch import row_overrides
from fmlab.tables.spec import load_spec, parse_spec

TABLES = sorted(p.stem for p in Path(CONF_DIR, "table").glob("*.yaml"))
EXPERIMENTS = {p.stem for p in Path(CONF_DIR, "experiment").glob("*.yaml")}
ROWS = [(t, i) for t in TABLES for i in range(len(load_spec(t).pretrain + load_spec(t).rows))]


def test_the_shipped_tables():
    assert TABLES == [
        "char_lm_shakespeare",
        "cifar10_lt_cui2019",
        "convnet_cifar10",
        "gpt2_owt",
        "mutransfer_shakespeare_char",
        "nanogpt_shakespeare_char",
        "resnet_cifar10_he2016",
        "sst2_pretraining",
        "transfer_cifar10",
    ]
    requires = {t: load_spec(t).requires for t in TABLES}
    assert [t for t, r in requires.items() if r == "cpu"] == [
        "char_lm_shakespeare",
        "convnet_cifar10",
        "mutransfer_shakespeare_char",
        "sst2_pretraining",
        "transfer_cifar10",
    ]


@pytest.mark.parametrize("table", TABLES)
def test_spec_validates_with_a_cited_reference(table):
    spec = load_spec(table)
    assert spec.source and spec.title
    if spec.figure:  # a figure's claim is its shape (where the optimum sits), not a number
        assert spec.grid and not any(row.reference for row in spec.rows)
    else:
        assert len(spec.seeds) >= 3
        # transfer_cifar10 cites the study its design follows but no number of it (its source
        # says why)
        assert any(row.reference for row in spec.rows) or table == "transfer_cifar10"
    assert all(
        any(o.startswith("experiment=") for o in spec.overrides + row.overrides)
        for row in spec.rows
    )


def test_published_numbers():
    refs = {
        t: [(r.reference.low, r.reference.high) for r in load_spec(t).rows if r.reference]
        for t in TABLES
    }
    assert refs["convnet_cifar10"] == [(53, 56)]
    assert refs["resnet_cifar10_he2016"] == [(8.75, 8.75), (7.51, 7.51), (7.17, 7.17), (6.97, 6.97)]
    assert refs["char_lm_shakespeare"] == [(1.88, 1.88)]
    lt = [29.64, 29.62, 29.45, 27.63, 25.43]
    assert refs["cifar10_lt_cui2019"] == [(v, v) for v in lt]
    assert refs["nanogpt_shakespeare_char"] == [(1.4697, 1.4697)]
    assert refs["gpt2_owt"] == [(2.85, 2.85)]
    assert refs["sst2_pretraining"] == [(84.0, 84.0), (83.2, 83.2)]
    assert refs["transfer_cifar10"] == []
    assert refs["mutransfer_shakespeare_char"] == []


@pytest.mark.parametrize(("table", "index"), ROWS)
def test_every_row_composes(table, index, compose_cfg, synthetic_data, tmp_path):
    spec = load_spec(table)
    row = (spec.pretrain + spec.rows)[index]
    given = spec.overrides + row.overrides
    experiment = next(o for o in given if o.startswith("experiment=")).split("=")[1]
    assert experiment in EXPERIMENTS, f"table {table} names a recipe that does not exist"
    overrides = [*spec.overrides, *row_overrides(row, tmp_path)]
    overrides += [f"paths.data_dir={synthetic_data}", "seed=1"]
    OmegaConf.to_container(compose_cfg("train", overrides), resolve=True)


GOOD = {
    "title": "t",
    "metric": "test/acc",
    "better": "higher",
    "seeds": [1, 2],
    "rows": [{"name": "a", "overrides": ["experiment=x"], "reference": 1.0}],
    "reference": {"tolerance": 0.1},
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, r"unknown keys \['colour'\]"),
        ({"better": "up"}, "`better` must be higher or lower"),
        ({"transform": "log"}, "`transform` must be one of"),
        ({"requires": "tpu"}, "`requires` must be cpu or gpu"),
        ({"seeds": [1, 1]}, "distinct integers"),
        ({"reference": {}}, "needs a tolerance"),
        ({"rows": [{"name": "a", "reference": "high"}]}, "must be a number or"),
        ({"rows": [{"name": "a b"}, {"name": "a.b", "id": "a_b"}]}, "row ids must be distinct"),
        ({"rows": [{"name": "a", "overrides": ["seed=3"]}]}, "seeds come from `seeds`"),
        ({"rows": [{"name": "a", "overide": []}]}, r"unknown keys \['overide'\]"),
    ],
)
def test_a_wrong_spec_is_refused_by_name(change, message):
    with pytest.raises(FmlabError, match=message):
        parse_spec("t", {**GOOD, **change})
    parse_spec("t", GOOD)


def test_a_spec_that_is_not_yaml_is_one_clear_error(tmp_path):
    spec = tmp_path / "broken.yaml"
    spec.write_text("title: t\nrows:\n  - overrides: [a=1,, b=2]\n")
    with pytest.raises(FmlabError, match=r"broken.yaml does not parse: .*line 3"):
        load_spec(str(spec))
