import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def saferlab_home(tmp_path, monkeypatch) -> Path:
    """Nothing in the tests reads or writes the real home."""
    home = tmp_path / "home"
    monkeypatch.setenv("SAFERLAB_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def embedded_path() -> Path:
    from saferlab.engine.models import embedded_model_path

    return embedded_model_path()


@pytest.fixture(scope="session")
def embedded_backend():
    """One loaded embedded model for the tests that decode (loading takes ~0.3 s, but the
    suite decodes dozens of times), decoding one request at a time (batch size 1)."""
    from saferlab.engine.backends import load_backend
    from saferlab.engine.models import parse_model_spec

    backend = load_backend(parse_model_spec("embedded"), n_ctx=2048, batch_size=1)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def embedded_batched():
    """The embedded model decoding by continuous batching, four sequences at a time."""
    from saferlab.engine.backends import load_backend
    from saferlab.engine.models import parse_model_spec

    backend = load_backend(parse_model_spec("embedded"), n_ctx=2048, batch_size=4)
    yield backend
    backend.close()
