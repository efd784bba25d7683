"""A resumed run goes on with the backend settings its outputs were decoded with: the CLI and
the lab load the model so, and a model loaded otherwise is refused before anything runs."""

import pytest

from saferlab.db import Store, resumable
from saferlab.engine import Lab, SessionSpec
from saferlab.engine.backends.fake import REFUSAL, FakeBackend
from saferlab.engine.errors import EXIT_USAGE, SaferlabError
from saferlab.engine.lab import resumed_options
from saferlab.engine.types import DecodingParams


class Sized(FakeBackend):
    """A fake model that reports a batch size and a context, as llama.cpp's backend does."""

    def __init__(self, batch_size: int, n_ctx: int = 4096, **kw) -> None:
        super().__init__(**kw)
        self.batch_size, self.n_ctx = batch_size, n_ctx

    def info(self):
        return {"backend": "llama.cpp", "spec": self.spec, "batch_size": self.batch_size,
                "n_ctx": self.n_ctx}


def half_failed(tmp_path):
    store = Store(tmp_path / "lab.db")
    lab = Lab(recorder=store)
    calls = []

    def flaky(request):
        calls.append(request.id)
        return "HTTP 500" if len(calls) % 2 else None

    spec = SessionSpec(model="fake", suites=("harmful",), limit=4,
                       params=DecodingParams(max_tokens=20))
    lab.run(lab.plan(spec), backend=Sized(4, 2048, script=lambda r: REFUSAL, fail=flaky))
    return store


def test_a_resumed_run_names_the_options_it_was_decoded_with(tmp_path):
    store = half_failed(tmp_path)
    session_id, plans = resumable(store, "last")
    assert plans and resumed_options(plans) == {"batch_size": 4, "n_ctx": 2048}
    # New runs have nothing to keep to.
    assert resumed_options(Lab().plan(SessionSpec(model="fake", suites=("harmful",)))) == {}


@pytest.mark.parametrize("loaded,said", [((8, 2048), "batch size 4 (--batch-size 4)"),
                                         ((4, 4096), "context 2048 (--ctx 2048)")])
def test_a_resume_on_a_model_loaded_otherwise_is_refused_before_it_runs(tmp_path, loaded,
                                                                       said):
    store = half_failed(tmp_path)
    session_id, plans = resumable(store, "last")
    backend = Sized(*loaded, script=lambda r: REFUSAL)
    with pytest.raises(SaferlabError) as caught:
        Lab(recorder=store).run(plans, session_id=session_id, backend=backend)
    assert caught.value.exit_code == EXIT_USAGE
    assert f"run {plans[0].run_id} was decoded with" in caught.value.message
    assert said in caught.value.message
    assert backend.calls == []
    again = Sized(4, 2048, script=lambda r: REFUSAL)
    outcome = Lab(recorder=store).run(plans, session_id=session_id, backend=again)
    assert outcome.status == "finished" and len(again.calls) == 2


@pytest.mark.parametrize("stored", ["4", 0, 4.0, None, True])
def test_a_stored_setting_no_model_loads_with_is_neither_kept_nor_held_against_a_resume(stored):
    from dataclasses import replace

    from saferlab.engine.lab import _check_resumable

    (plan,) = Lab().plan(SessionSpec(model="fake", suites=("harmful",), limit=1))
    plan = replace(plan, run_id=7, extra_config={"backend": {"backend": "llama.cpp",
                                                             "batch_size": stored}})
    assert resumed_options([plan]) == {}
    _check_resumable([plan], {"backend": "llama.cpp", "batch_size": 8, "n_ctx": 4096})
