"""The fine-tuning experiment's plan: what it trains, on top of what, and what it evaluates
(no model loads)."""

import json

from saferlab.engine.finetune.experiment import FinetuneExperiment, trained_already
from saferlab.engine.finetune.recipes import recipe_specs, size_specs


def test_every_regime_trains_on_top_of_aligned_with_one_seed_and_budget(tmp_path):
    exp = FinetuneExperiment(out=str(tmp_path), steps=30, seed=4, sizes=(100, 200))
    specs = {s.name: s for s in exp.trainings()}
    assert list(specs)[0] == "aligned" and specs["aligned"].on is None
    assert set(specs) == {"aligned", "direct", "cot", "long-cot", "long-cot-reflective",
                          "long-cot-n100", "long-cot-n200"}
    for name, spec in specs.items():
        assert spec.seed == 4 and spec.data.seed == 4 and spec.out == str(tmp_path / name)
        if name != "aligned":
            assert spec.on == str(tmp_path / "aligned")
    regimes = [specs[n] for n in ("direct", "cot", "long-cot", "long-cot-reflective")]
    assert {s.steps for s in regimes} == {30} and {s.data.n for s in regimes} == {240}
    assert specs["long-cot-reflective"].data.safety == "reflective"
    assert specs["aligned"].data.safety == "plain" and specs["aligned"].data.data == "none"
    assert specs["long-cot-n200"].epochs == 1.0 and specs["long-cot-n200"].data.n == 200
    assert set(recipe_specs()) == {"aligned", "direct", "cot", "long-cot", "long-cot-reflective"}
    assert list(size_specs((50,))) == ["long-cot-n50"]


def _made(folder, name):
    folder.mkdir(parents=True)
    (folder / "adapter.gguf").write_bytes(b"GGUF " + name.encode())
    (folder / "saferlab.json").write_text(json.dumps({"name": name, "base": {"spec": "embedded"}}))


def test_the_evaluation_sets_each_stack_beside_the_base(tmp_path):
    exp = FinetuneExperiment(out=str(tmp_path), math_items=20)
    for spec in exp.trainings():
        _made(tmp_path / spec.name, spec.name)
    plans = exp.plans()
    configs = [(p.spec.attack, p.spec.adapter, p.spec.suites) for p in plans]
    stacks = [None, "aligned", "aligned+direct", "aligned+cot", "aligned+long-cot",
              "aligned+long-cot-reflective"]
    assert configs == ([("none", s, ("harmful", "benign", "math:n=20", "privacy"))
                        for s in stacks]
                       + [("prefix-injection", s, ("harmful",)) for s in stacks])
    params = plans[0].spec.params
    assert params.for_kind("math").max_tokens == 480 and params.for_kind("harmful").max_tokens == 128
    assert sum(1 for i in plans[0].items if i.item.kind == "math") == 20


def test_an_adapter_trained_with_the_same_recipe_is_reused(tmp_path):
    spec = FinetuneExperiment(out=str(tmp_path)).trainings()[1]
    assert not trained_already(spec)
    (tmp_path / spec.name).mkdir()
    stored = spec.to_dict() | {"out": None, "on": "aligned", "datasets": "/elsewhere"}
    (tmp_path / spec.name / "saferlab.json").write_text(json.dumps({"spec": stored}))
    assert trained_already(spec)
    stored["steps"] = 7
    (tmp_path / spec.name / "saferlab.json").write_text(json.dumps({"spec": stored}))
    assert not trained_already(spec)
