"""Any OpenAI-compatible chat-completions server: vLLM, SGLang, llama.cpp's server, Ollama,
hosted APIs. Standard library only: one thread per request in flight, no streaming.

The model spec is ``openai:BASE_URL#MODEL``, e.g. ``openai:http://127.0.0.1:8000/v1#qwen``.
The API key, if any, comes from the environment and never leaves the Authorization header.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import random
import socket
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit

from ..errors import EXIT_USAGE, SaferlabError
from ..models import ModelRef
from ..types import (FINISH_CANCELLED, FINISH_ERROR, FINISH_LENGTH, FINISH_STOP,
                     GenerationRequest, GenerationResult)
from .base import OnToken

POLL_S = 0.05  # how often generate() looks at the cancel event while requests are in flight
CANCEL_GRACE_S = 2.0  # how long a cancelled batch waits for aborted requests to return


class _Failure(Exception):
    """A request that failed for good; the message becomes the result's error."""


class _Transient(_Failure):
    """A failure worth retrying: HTTP 429 or 5xx, or a connection dropped mid-answer."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Cancelled(Exception):
    pass


class OpenAIBackend:
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    Up to ``concurrency`` requests are in flight at once and results are yielded as they
    complete. HTTP 429, 5xx and dropped connections are retried up to ``retries`` times with
    exponential backoff from ``backoff`` seconds (or the server's Retry-After, capped at
    ``max_retry_after``). Every other failure is stored as the request's ``error``. Nothing is
    contacted before the first request. A request with an ``adapter`` is sent under the
    adapter's name, which is how vLLM serves LoRA adapters. Grammars are ignored.
    """

    def __init__(self, ref: ModelRef, concurrency: int = 4, timeout: float = 120.0,
                 retries: int = 3, api_key_env: str = "SAFERLAB_OPENAI_API_KEY",
                 backoff: float = 0.5, max_retry_after: float = 60.0, **_: Any) -> None:
        url, _hash, model = ref.target.partition("#")
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or not model.strip():
            raise SaferlabError(f"cannot read {ref.spec!r}: write openai:BASE_URL#MODEL, e.g. "
                                "openai:http://127.0.0.1:8000/v1#my-model", EXIT_USAGE)
        if concurrency < 1 or retries < 0 or timeout <= 0:
            raise SaferlabError("the openai backend needs concurrency >= 1, retries >= 0 and "
                                "timeout > 0", EXIT_USAGE)
        self.spec = ref.spec
        self.compute = "remote"
        self.base_url = url.strip().rstrip("/")
        self.model = model.strip()
        self.concurrency, self.timeout, self.retries = concurrency, timeout, retries
        self.backoff, self.max_retry_after = backoff, max_retry_after
        self._parts = parts
        self._path = parts.path.rstrip("/") + "/chat/completions"
        self._key = os.environ.get(api_key_env) or os.environ.get("OPENAI_API_KEY") or None
        # longest first, so that a key containing another is masked whole
        self._secrets = sorted({v for v in (os.environ.get(api_key_env),
                                            os.environ.get("OPENAI_API_KEY"), self._key)
                                if v and len(v) >= 8}, key=len, reverse=True)
        self._jitter = random.Random(0)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="saferlab-openai")

    def info(self) -> dict[str, Any]:
        return {"backend": "openai", "base_url": self.base_url, "model": self.model,
                "concurrency": self.concurrency, "timeout": self.timeout,
                "retries": self.retries}

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        cancel: threading.Event | None = None,
        on_token: OnToken | None = None,
    ) -> Iterator[GenerationResult]:
        todo = iter(requests)
        # Set on cancel, or when the caller stops iterating: workers then stop retrying, and
        # their open sockets are shut so that the server stops generating for nobody.
        stop = threading.Event()
        live: set[http.client.HTTPConnection] = set()
        in_flight: dict[Future[GenerationResult], tuple[GenerationRequest, float]] = {}
        try:
            while True:
                while len(in_flight) < self.concurrency and not (cancel and cancel.is_set()):
                    request = next(todo, None)
                    if request is None:
                        break
                    future = self._pool.submit(self._one, request, stop, live)
                    in_flight[future] = (request, time.perf_counter())
                if not in_flight:
                    return
                if cancel is not None and cancel.is_set():
                    yield from self._drain(in_flight, stop, live)
                    return
                done, _ = wait(in_flight, timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    del in_flight[future]
                    result = future.result()
                    if on_token is not None and result.text:
                        on_token(result.request_id, result.text)  # no streaming: one piece
                    yield result
        finally:
            if in_flight:
                self._abort(stop, live)

    def _drain(self, in_flight: dict[Future[GenerationResult], tuple[GenerationRequest, float]],
               stop: threading.Event, live: set[http.client.HTTPConnection],
               ) -> Iterator[GenerationResult]:
        self._abort(stop, live)
        done, _ = wait(in_flight, timeout=CANCEL_GRACE_S)
        for future, (request, started) in list(in_flight.items()):
            del in_flight[future]
            if future in done:
                yield future.result()
            else:  # abandoned: its thread ends at the latest after `timeout`
                yield GenerationResult(request.id, finish_reason=FINISH_CANCELLED,
                                       duration_ms=(time.perf_counter() - started) * 1000)

    def _abort(self, stop: threading.Event, live: set[http.client.HTTPConnection]) -> None:
        stop.set()
        with self._lock:
            for conn in live:
                if conn.sock is not None:
                    try:
                        conn.sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read
                    except OSError:
                        pass

    def _one(self, request: GenerationRequest, stop: threading.Event,
             live: set[http.client.HTTPConnection]) -> GenerationResult:
        started = time.perf_counter()
        stack = request.adapter
        if stack is not None and (len(stack.uses) > 1 or stack.uses[0].scale != 1.0):
            return GenerationResult(
                request.id, finish_reason=FINISH_ERROR,
                error=f"a server's adapters are separate models: {stack.key!r} cannot be "
                      "stacked or scaled (serve the merged adapter under a name of its own)")
        try:
            result = _parse(request.id, self._ask(self._payload(request), stop, live))
            # A server may quote the request's Authorization header back in its answer.
            result = replace(result, text=self._redact(result.text))
        except (_Cancelled, _Failure) as exc:
            if isinstance(exc, _Cancelled) or stop.is_set():  # a failure our abort caused
                result = GenerationResult(request.id, finish_reason=FINISH_CANCELLED)
            else:
                result = GenerationResult(request.id, finish_reason=FINISH_ERROR,
                                          error=self._redact(str(exc)))
        except Exception as exc:  # a bug here must not end the batch
            result = GenerationResult(request.id, finish_reason=FINISH_ERROR,
                                      error=self._redact(f"request to {self.base_url} failed: "
                                                         f"{type(exc).__name__}: {exc}"))
        return replace(result, duration_ms=(time.perf_counter() - started) * 1000)

    def _payload(self, request: GenerationRequest) -> dict[str, Any]:
        params = request.params
        return {"model": request.adapter.names[0] if request.adapter else self.model,
                "messages": [m.to_dict() for m in request.messages],
                "max_tokens": params.max_tokens, "temperature": params.temperature,
                "top_p": params.top_p, "seed": params.seed}

    def _ask(self, payload: dict[str, Any], stop: threading.Event,
             live: set[http.client.HTTPConnection]) -> Any:
        body = json.dumps(payload).encode("utf-8")
        for attempt in range(self.retries + 1):
            if stop.is_set():
                raise _Cancelled
            try:
                return self._post(body, stop, live)
            except _Transient as exc:
                if stop.is_set():
                    raise _Cancelled from None
                if attempt == self.retries:
                    if self.retries:
                        raise _Failure(f"{exc} (gave up after {self.retries} retries)") from None
                    raise
                if exc.retry_after is not None:
                    delay = min(exc.retry_after, self.max_retry_after)
                else:  # jitter keeps N workers that failed together from retrying together
                    delay = self.backoff * 2 ** attempt * (0.5 + self._jitter.random())
                if stop.wait(delay):
                    raise _Cancelled from None
        raise AssertionError("unreachable")

    def _post(self, body: bytes, stop: threading.Event,
              live: set[http.client.HTTPConnection]) -> Any:
        parts = self._parts
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        port = parts.port or (443 if parts.scheme == "https" else 80)
        conn = cls(parts.hostname, port, timeout=self.timeout)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        with self._lock:
            live.add(conn)
        try:
            try:
                conn.connect()
            except ConnectionRefusedError:
                raise _Failure(f"cannot connect to {self.base_url}: connection refused") from None
            except TimeoutError:
                raise _Failure(f"cannot connect to {self.base_url}: no answer within "
                               f"{self.timeout:g} s") from None
            except OSError as exc:
                raise _Failure(f"cannot connect to {self.base_url}: "
                               f"{exc.strerror or exc}") from None
            if stop.is_set():  # _abort may have run before the socket existed
                raise _Cancelled
            try:
                conn.request("POST", self._path, body, headers)
                response = conn.getresponse()
                data = response.read()
            except TimeoutError:
                raise _Failure(f"no answer from {self.base_url} within "
                               f"{self.timeout:g} s") from None
            except (ConnectionError, http.client.IncompleteRead) as exc:
                raise _Transient(f"the server at {self.base_url} dropped the connection "
                                 f"mid-answer ({type(exc).__name__})") from None
            except (OSError, http.client.HTTPException) as exc:
                raise _Failure(f"request to {self.base_url} failed: {exc}") from None
        finally:
            with self._lock:
                live.discard(conn)
            conn.close()
        if response.status == 429 or response.status >= 500:
            raise _Transient(f"HTTP {response.status} from {self.base_url}: {_message(data)}",
                             _retry_after(response.getheader("Retry-After")))
        if response.status >= 300:
            raise _Failure(f"HTTP {response.status} from {self.base_url}: {_message(data)}")
        try:
            return json.loads(data)
        except ValueError:
            raise _Failure(f"the server's answer is not valid JSON: {_snippet(data)}") from None

    def _redact(self, text: str) -> str:
        """The credentials masked: this backend's key, and any value of the variables it is
        read from (servers quote them back in errors, and some in their answers)."""
        for secret in self._secrets:
            text = text.replace(secret, "[api key]")
        return text

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _parse(request_id: str, answer: Any) -> GenerationResult:
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        detail = _message(json.dumps(answer).encode()) if isinstance(answer, dict) else answer
        raise _Failure(f"the server's answer has no choices: {_snippet(detail)}")
    choice = choices[0]
    message = choice.get("message") or {}
    text = message.get("content") or ""
    # vLLM's and SGLang's reasoning parsers move the chain of thought out of the content; put it
    # back in <think> tags so that split.py judges it like any other reasoning trace.
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning.strip():
        text = f"<think>{reasoning}</think>{text}"
    usage = answer.get("usage") or {}
    return GenerationResult(
        request_id, text=text,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        finish_reason=FINISH_LENGTH if choice.get("finish_reason") == "length" else FINISH_STOP)


def _message(data: bytes) -> str:
    """The error message in a server's answer: OpenAI's {"error": {"message"}}, FastAPI's
    {"detail"}, or the start of the body."""
    try:
        body = json.loads(data)
    except ValueError:
        return _snippet(data)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return _snippet(error["message"])
        for found in (error, body.get("detail"), body.get("message")):
            if isinstance(found, str) and found:
                return _snippet(found)
    return _snippet(data)


def _snippet(data: Any, limit: int = 200) -> str:
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else str(data)
    text = " ".join(text.split()) or "(empty)"
    return text if len(text) <= limit else text[:limit] + "..."


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # the HTTP-date form
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
