"""The adapters shipped for the embedded model: listed on a fresh home, their files are the ones
their recipe recorded, the same verdicts on llama.cpp (GGUF LoRA) as on transformers (PEFT),
and `aligned` refuses more than the base model, paired on the same items."""

import json

import pytest

from saferlab.engine.saved_adapters import SHIPPED, saved_adapters

SHIPPED_NAMES = ("aligned", "direct", "cot", "long-cot", "long-cot-reflective")
shipped = {a.name: a for a in saved_adapters() if a.origin == SHIPPED}
pytestmark = pytest.mark.skipif(not shipped, reason="no adapters shipped in this checkout")


def test_the_shipped_set_is_complete_small_and_listed_on_a_fresh_home(tmp_path):
    from typer.testing import CliRunner

    from saferlab.tui.cli import app

    assert set(SHIPPED_NAMES) <= set(shipped)
    total = 0
    for name in SHIPPED_NAMES:
        size = sum(p.stat().st_size for p in shipped[name].folder.iterdir())
        assert size <= 5 * 1024 * 1024, (name, size)
        total += size
    assert total <= 25 * 1024 * 1024
    result = CliRunner().invoke(app, ["adapters", "--json", "--db", str(tmp_path / "fresh.db")])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "fresh.db").exists()  # listing makes no database
    rows = json.loads(result.output)
    listed = {(r["name"], r["kind"]) for r in rows if r["origin"] == "shipped"}
    assert {(n, k) for n in SHIPPED_NAMES for k in ("peft", "gguf-lora")} <= listed
    uses = {r["name"]: r["use_as"] for r in rows if r["origin"] == "shipped"}
    assert uses["aligned"] == "aligned" and uses["cot"] == "aligned+cot"


def test_shipped_files_match_their_recipe():
    from saferlab.engine.adapters import check_peft_adapter
    from saferlab.engine.models import embedded_model_path, file_sha256

    embedded = file_sha256(embedded_model_path())
    for name in SHIPPED_NAMES:
        adapter = shipped[name]
        meta = adapter.meta
        assert meta["base"]["sha256"] == embedded
        assert check_peft_adapter(adapter.folder)["sha256"] == meta["sha256"]["peft"]
        assert file_sha256(adapter.gguf_path) == meta["sha256"]["gguf"]
        spec = meta["spec"]
        assert spec["name"] == name and meta["training"]["data_sha256"]
        assert meta["command"].startswith("saferlab finetune")
        assert "libraries" in meta and meta["libraries"].get("peft")
        if name != "aligned":
            assert meta["on"]["key"] == "aligned" and spec["on"] == "aligned"


@pytest.mark.model
def test_aligned_refuses_more_than_the_base_paired_on_the_real_model(tmp_path):
    from saferlab.db import Store
    from saferlab.db.outcomes import run_outcomes
    from saferlab.engine.analysis import compare_meter
    from saferlab.engine.lab import Lab
    from saferlab.engine.plan import SessionSpec, plan_session
    from saferlab.engine.types import DecodingParams

    store = Store(tmp_path / "e2e.db")
    plans = plan_session(SessionSpec(suites=("harmful",), limit=12, adapters=("aligned",),
                                     params=DecodingParams(max_tokens=48)))
    outcome = Lab(recorder=store, hash_cache=store).run(plans)
    base, aligned = (run_outcomes(store, r.run_id)["safety"] for r in outcome.runs)
    comparison = compare_meter("safety", base, aligned)
    assert comparison.paired and comparison.n_a == 12
    assert comparison.b > comparison.a and comparison.diff >= 0.5, comparison


@pytest.mark.model
def test_peft_and_gguf_lora_give_the_same_verdicts_where_the_bases_agree():
    from saferlab.engine.adapter_refs import resolve_stacks, to_load
    from saferlab.engine.backends import load_backend
    from saferlab.engine.judges.safety import RefusalHeuristic
    from saferlab.engine.models import embedded_model_path, parse_model_spec
    from saferlab.engine.suites import load_suite
    from saferlab.engine.types import DecodingParams, GenerationRequest, Message

    path = embedded_model_path()
    hf_spec = f"hf:{path.parent}#{path.name}"
    items = load_suite("harmful")[::8] + load_suite("benign")[::16]
    judge = RefusalHeuristic()

    def verdicts(spec, **options):
        _, adapters = resolve_stacks(spec, ["aligned"])
        backend = load_backend(parse_model_spec(spec), adapters=to_load(adapters), **options)
        try:
            out = {}
            for adapter in (None, "aligned"):
                requests = [GenerationRequest(f"{adapter}:{i.key}", (Message("user", i.prompt),),
                                              DecodingParams(max_tokens=40), adapter=adapter)
                            for i in items]
                for r in backend.generate(requests):
                    item = next(i for i in items if r.request_id.endswith(i.key))
                    out[(adapter, item.key)] = judge.judge(item, r.text).passed
            return out
        finally:
            backend.close()

    # llama.cpp one request at a time (the reference): batched kernels round differently.
    cpp = verdicts("embedded", n_ctx=1024, batch_size=1)
    hf = verdicts(hf_spec, device="cpu")
    agreeing = [i.key for i in items if cpp[(None, i.key)] == hf[(None, i.key)]]
    assert len(agreeing) >= 6
    assert [cpp[("aligned", k)] for k in agreeing] == [hf[("aligned", k)] for k in agreeing]
