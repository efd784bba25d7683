"""The facade the CLI and the TUI call: plan a session, load its model, run it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any, Sequence

from .adapter_refs import to_load
from .backends import Backend, load_backend
from .backends.base import AdapterArg
from .errors import EXIT_MODEL, EXIT_USAGE, SaferlabError
from .events import Emit, ignore
from .environment import environment
from .gguf_meta import gguf_summary
from .models import HashCache, file_sha256, parse_model_spec
from .plan import RunPlan, SessionSpec, plan_session
from .recorder import NullRecorder, Recorder
from .runner import Runner, SessionOutcome


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def saferlab_version() -> str:
    return package_version("saferlab") or "0+unknown"


@dataclass
class LoadedModel:
    """A model held in memory for batch after batch: its backend, the configuration runs
    record (path, digest, engine settings), the adapters loaded beside it and the backend
    options it was loaded with. The lab's interface keeps one of these and nothing else about
    models; ``Lab.run(model=...)`` runs on it."""

    spec: str
    backend: Backend
    config: dict[str, Any]
    adapters: tuple[AdapterArg, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def summary(self) -> dict[str, Any]:
        """What a model line shows: the GGUF header's summary, or the spec."""
        return self.config.get("gguf") or {"name": self.spec}

    def serves(self, spec: str, adapters: Sequence[AdapterArg] = (),
               options: dict[str, Any] | None = None) -> bool:
        """Whether a batch asking for ``spec`` with ``adapters`` can run on this model as
        loaded (same model and options, the adapters among those loaded)."""
        return (spec == self.spec and set(adapters) <= set(self.adapters)
                and (options is None or options == self.options))

    def close(self) -> None:
        with self.lock:
            self.backend.close()


def resumed_options(plans: Sequence[RunPlan]) -> dict[str, Any]:
    """The backend options a resumed run was decoded with: its batch size, and the context of
    a GGUF model. Its outputs reproduce only with them, so a resume loads the model so."""
    for plan in plans:
        if plan.run_id is None:
            continue
        was = plan.extra_config.get("backend") or {}
        out = {key: value for key in _reproducing(was)
               if (value := _stored(was, key)) is not None}
        if out:
            return out
    return {}


def _reproducing(backend_info: dict[str, Any]) -> tuple[str, ...]:
    """The backend settings an output depends on (llama.cpp: the context bounds a budget)."""
    return ("batch_size", "n_ctx") if backend_info.get("backend") == "llama.cpp" \
        else ("batch_size",)


def _stored(backend_info: dict[str, Any], key: str) -> int | None:
    """A setting as a run stored it, when it is one a model can be loaded with (a value of
    another type, from an import or an old release, is not held against a resume)."""
    value = backend_info.get(key)
    return value if type(value) is int and value >= 1 else None


def _check_resumable(plans: Sequence[RunPlan], backend_info: dict[str, Any]) -> None:
    """A resumed run goes on only on a model loaded as it was: else its record would state
    settings that its new outputs were not decoded with (and cache them under that key)."""
    words = {"batch_size": ("batch size", "--batch-size"), "n_ctx": ("context", "--ctx")}
    for plan in plans:
        was = plan.extra_config.get("backend") or {}
        if plan.run_id is None or was.get("backend") != backend_info.get("backend"):
            continue
        for key in _reproducing(was):
            then, now = _stored(was, key), _stored(backend_info, key)
            if then is not None and now is not None and then != now:
                name, option = words[key]
                raise SaferlabError(
                    f"run {plan.run_id} was decoded with {name} {then}, but the model is "
                    f"loaded with {now}; resume it with {name} {then} ({option} {then}): its "
                    "outputs reproduce only so", EXIT_USAGE)


class Lab:
    def __init__(self, recorder: Recorder | None = None, emit: Emit = ignore,
                 hash_cache: HashCache | None = None,
                 backend_options: dict[str, Any] | None = None, cache: bool = True) -> None:
        self.recorder = recorder or NullRecorder()
        self.cache = cache  # answer identical requests from earlier runs (engine/cache.py)
        self.emit = emit
        self.hash_cache = hash_cache
        self.backend_options = backend_options or {}

    def plan(self, spec: SessionSpec) -> list[RunPlan]:
        return plan_session(spec)

    def open_model(self, spec: str, adapters: Sequence[AdapterArg] = ()) -> LoadedModel:
        """Load a model (with its adapters, loaded once beside the base: paths, or (name,
        path) pairs as :func:`~saferlab.engine.adapter_refs.to_load` gives them) and describe
        it for the run configuration (path, digest, versions)."""
        ref = parse_model_spec(spec)
        options = dict(self.backend_options)
        if adapters:
            options["adapters"] = tuple(adapters)
        backend = load_backend(ref, **options)
        config: dict[str, Any] = {"backend": backend.info()}
        if ref.path is not None:
            config["model_path"] = str(ref.path.resolve())
            config["model_sha256"] = file_sha256(ref.path, self.hash_cache)
            config["gguf"] = gguf_summary(ref.path)
        return LoadedModel(spec, backend, config, tuple(adapters), dict(self.backend_options))

    def load_model(self, spec: str, adapters: Sequence[AdapterArg] = ()
                   ) -> tuple[Backend, dict[str, Any]]:
        """:meth:`open_model`, as (backend, configuration)."""
        model = self.open_model(spec, adapters)
        return model.backend, model.config

    def run(self, plans: Sequence[RunPlan], cancel: threading.Event | None = None,
            session_id: int | None = None, backend: Backend | None = None,
            model_config: dict[str, Any] | None = None,
            model: LoadedModel | None = None) -> SessionOutcome:
        """Run plans that share one model: a ``model`` held open (its lock is held for the
        session), or a bare ``backend`` (pass the ``model_config`` that :meth:`load_model`
        returned with it to record its digest), or, with neither, one loaded and closed
        here."""
        if model is not None:
            with model.lock:
                return self.run(plans, cancel, session_id, backend=model.backend,
                                model_config=model.config)
        models = {p.spec.model for p in plans}
        if len(models) != 1:
            raise SaferlabError(f"one model per session, got {sorted(models)}")
        owned = backend is None
        if backend is None:
            adapters: dict[str, dict[str, Any]] = {}
            for plan in plans:
                adapters |= plan.extra_config.get("adapters", {})
            backend, model_config = self.load_model(models.pop(), to_load(adapters))
        else:
            model_config = dict(model_config or {"backend": backend.info()})
        model_config |= {"saferlab_version": saferlab_version(),
                         "llama_cpp_version": package_version("llama-cpp-python"),
                         "environment": environment()}
        for plan in plans:
            stored = plan.extra_config.get("model_sha256")
            if plan.run_id is not None and stored and stored != model_config.get("model_sha256"):
                raise SaferlabError(
                    f"run {plan.run_id} was made with a model file of sha256 {stored[:12]}..., "
                    f"but {plan.spec.model} now has {str(model_config.get('model_sha256'))[:12]}...; "
                    "restore that file to resume", EXIT_MODEL)
        _check_resumable(plans, model_config.get("backend") or {})
        learned: dict[str, Any] = dict(model_config)  # what new runs record beside their plan
        helpers: dict[str, Backend] = {}  # attacker and judge models, loaded once each
        try:
            roles = {}
            for role in ("attacker", "judge_model"):
                specs = {getattr(p.spec, role) for p in plans} - {None}
                if len(specs) > 1:
                    raise SaferlabError(f"one {role.replace('_', ' ')} per session, got "
                                        f"{sorted(specs)}")
                if not specs:
                    continue
                spec = specs.pop()
                if spec == plans[0].spec.model:
                    roles[role] = backend
                    continue
                if spec not in helpers:
                    helpers[spec], learned[f"{role}_config"] = self.load_model(spec)
                roles[role] = helpers[spec]
            plans = [plan if plan.run_id is not None else
                     replace(plan, extra_config=plan.extra_config | learned) for plan in plans]
            runner = Runner(backend, self.recorder, self.emit, cancel,
                            attacker=roles.get("attacker"), judge_model=roles.get("judge_model"),
                            cache=self.cache)
            return runner.run_session(plans, session_id=session_id,
                                      session_config={"runs": len(plans), **model_config})
        finally:
            for helper in helpers.values():
                helper.close()
            if owned:
                backend.close()
