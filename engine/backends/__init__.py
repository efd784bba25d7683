"""Backends by scheme. Each module is imported only when its scheme is chosen, so heavy
libraries (llama_cpp, later torch) stay out of start-up."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ..errors import EXIT_MODEL, SaferlabError
from ..models import ModelRef, check_gguf
from .base import Backend, OnToken

BACKENDS: dict[str, str] = {
    "gguf": "llama_cpp:LlamaCppBackend",
    "hf": "hf:HfBackend",
    "openai": "openai:OpenAIBackend",
    "fake": "fake:FakeBackend",
}

INSTALL_HINT: dict[str, str] = {
    "gguf": "pip install llama-cpp-python (see README for the build flags)",
    "hf": "install saferlab[hf] for Hugging Face models (pip install 'saferlab[hf]')",
}


def load_backend(ref: ModelRef, **options: Any) -> Backend:
    """Load the model ``ref`` names. Raises SaferlabError with a message a user can act on."""
    if ref.scheme == "gguf":
        assert ref.path is not None
        check_gguf(ref.path)
    module_name, cls_name = BACKENDS[ref.scheme].split(":")
    try:
        module = import_module(f"{__name__}.{module_name}")
    except ImportError as exc:
        hint = INSTALL_HINT.get(ref.scheme, "reinstall saferlab")
        raise SaferlabError(
            f"the {ref.scheme} backend cannot be imported ({exc}); {hint}", EXIT_MODEL) from None
    return getattr(module, cls_name)(ref, **options)


__all__ = ["BACKENDS", "Backend", "OnToken", "load_backend"]
