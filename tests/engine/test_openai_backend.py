"""The OpenAI-compatible backend against real HTTP servers on 127.0.0.1: a scripted one of the
test's own for faults, and llama-cpp-python's server on the embedded model."""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from saferlab.engine.backends import load_backend
from saferlab.engine.backends.openai import OpenAIBackend
from saferlab.engine.models import parse_model_spec
from saferlab.engine.types import DecodingParams, GenerationRequest, Message

KEY = "sk-test-0123456789abcdef"
SERVER_EXTRA = ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings",
                "yaml")


def ask(rid, text, adapter=None, **params):
    return GenerationRequest(rid, (Message("user", text),),
                             DecodingParams(**({"max_tokens": 16} | params)), adapter=adapter)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend(url, **options):
    return OpenAIBackend(parse_model_spec(f"openai:{url}#test-model"),
                         **({"timeout": 5.0, "backoff": 0.01} | options))


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    monkeypatch.delenv("SAFERLAB_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


# --- a scripted server: the last user message says how to answer -------------------------

class Scripted:
    def __init__(self):
        self.hits: dict[str, int] = {}
        self.bodies: list[dict] = []
        self.auth: list[str | None] = []
        self.active = self.peak = 0
        self.lock = threading.Lock()
        self.release = threading.Event()  # "stall" requests wait for it


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send(self, status, body, headers=()):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            cue = body["messages"][-1]["content"]
            with state.lock:
                state.bodies.append(body)
                state.auth.append(self.headers.get("Authorization"))
                n = state.hits[cue] = state.hits.get(cue, 0) + 1
                state.active += 1
                state.peak = max(state.peak, state.active)
            try:
                self.answer(cue, n)
            finally:
                with state.lock:
                    state.active -= 1

        def answer(self, cue, n):
            ok = {"choices": [{"message": {"role": "assistant", "content": f"re: {cue}"},
                               "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 7, "completion_tokens": 3}}
            if cue.startswith("slow"):
                time.sleep(float(cue.split()[1]))
            if cue == "stall":
                state.release.wait(10)
            if cue == "flaky" and n == 1:
                return self.send(500, {"error": {"message": "engine overloaded"}})
            if cue == "broken":
                return self.send(503, {"detail": "still loading"})
            if cue == "busy" and n == 1:
                return self.send(429, {"error": "slow down"}, [("Retry-After", "0")])
            if cue == "reset" and n == 1:
                self.close_connection = True
                return  # no response at all: the client sees the connection drop
            if cue == "garbage":
                return self.send(200, b"<html>502 Bad Gateway</html>")
            if cue == "empty":
                return self.send(200, {"object": "chat.completion", "choices": []})
            if cue == "bad":
                return self.send(400, {"error": {"message": "max_tokens is too large"}})
            if cue == "auth":
                return self.send(401, {"error": {"message": f"Incorrect API key: {KEY}"}})
            if cue == "long":
                ok["choices"][0]["finish_reason"] = "length"
                del ok["usage"]
            if cue == "think":
                ok["choices"][0]["message"]["reasoning_content"] = "hmm"
            if cue == "echo-auth":  # a server that quotes the request's header back
                ok["choices"][0]["message"]["content"] = f"you sent {self.headers['Authorization']}"
                ok["choices"][0]["message"]["reasoning_content"] = f"the key is {KEY}"
            self.send(200, ok)

    return Handler


@pytest.fixture
def scripted():
    state = Scripted()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


def test_sends_the_request_and_reads_the_answer(scripted):
    b = backend(scripted.url)
    reqs = [ask("a", "hello", temperature=0.0, top_k=40, seed=5, max_tokens=12),
            ask("b", "long", adapter="my-lora", temperature=0.7, top_p=0.9),
            ask("c", "think")]
    results = {r.request_id: r for r in b.generate(reqs)}
    a, long, think = results["a"], results["b"], results["c"]
    assert a.ok and a.text == "re: hello" and a.finish_reason == "stop"
    assert (a.prompt_tokens, a.completion_tokens) == (7, 3) and a.duration_ms > 0
    assert long.finish_reason == "length" and long.completion_tokens == 0
    assert think.text == "<think>hmm</think>re: think"
    sent = {body["messages"][-1]["content"]: body for body in scripted.bodies}
    assert sent["hello"] == {"model": "test-model", "messages": [{"role": "user", "content": "hello"}],
                             "max_tokens": 12, "temperature": 0.0, "top_p": 1.0, "seed": 5}
    assert sent["long"]["model"] == "my-lora" and sent["long"]["temperature"] == 0.7
    assert scripted.auth == [None, None, None]
    b.close()


def test_faults_end_as_errors_or_retried_successes(scripted):
    b = backend(scripted.url, retries=2)
    cues = ["flaky", "busy", "reset", "broken", "garbage", "empty", "bad"]
    results = {r.request_id: r for r in b.generate([ask(c, c) for c in cues])}
    assert sorted(results) == sorted(cues)
    for cue in ("flaky", "busy", "reset"):  # one failure, then a retry that works
        assert results[cue].ok and results[cue].text == f"re: {cue}", results[cue].error
        assert scripted.hits[cue] == 2
    assert scripted.hits["broken"] == 3  # the first try and two retries
    assert results["broken"].error == (
        f"HTTP 503 from {scripted.url}: still loading (gave up after 2 retries)")
    assert results["garbage"].error == (
        "the server's answer is not valid JSON: <html>502 Bad Gateway</html>")
    assert results["empty"].error.startswith("the server's answer has no choices:")
    assert results["bad"].error == f"HTTP 400 from {scripted.url}: max_tokens is too large"
    for cue in ("garbage", "empty", "bad"):  # not worth retrying
        assert scripted.hits[cue] == 1 and results[cue].finish_reason == "error"


def test_api_key_goes_in_the_header_and_nowhere_else(scripted, monkeypatch):
    monkeypatch.setenv("SAFERLAB_OPENAI_API_KEY", KEY)
    b = backend(scripted.url)
    streamed = []
    results = list(b.generate([ask("a", "hello"), ask("b", "auth"), ask("c", "broken"),
                               ask("d", "echo-auth")],
                              on_token=lambda rid, text: streamed.append(text)))
    assert scripted.auth == [f"Bearer {KEY}"] * len(scripted.auth) and len(scripted.auth) == 7
    echoed = next(r for r in results if r.request_id == "d")
    assert echoed.text == "<think>the key is [api key]</think>you sent Bearer [api key]"
    assert KEY not in " ".join(streamed)
    errors = [r.error for r in results if r.error]
    assert len(errors) == 2 and "Incorrect API key: [api key]" in " ".join(errors)
    assert KEY not in repr(results) and KEY not in json.dumps(b.info())
    assert b.info() == {"backend": "openai", "base_url": scripted.url, "model": "test-model",
                        "concurrency": 4, "timeout": 5.0, "retries": 3}


def test_openai_api_key_is_the_fallback(scripted, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallback")
    list(backend(scripted.url).generate([ask("a", "hello")]))
    assert scripted.auth == ["Bearer sk-fallback"]


def test_results_come_as_they_complete_with_bounded_concurrency(scripted):
    b = backend(scripted.url, concurrency=3)
    reqs = [ask("slow", "slow 0.6")] + [ask(f"q{i}", f"slow 0.{i % 3 + 1}") for i in range(8)]
    order = [r.request_id for r in b.generate(reqs)]
    assert sorted(order) == sorted(r.id for r in reqs)
    assert order[0] != "slow"  # first asked, not first answered
    assert scripted.peak == 3


def test_nothing_listening_fails_every_request_quickly():
    url = f"http://127.0.0.1:{free_port()}/v1"
    b = load_backend(parse_model_spec(f"openai:{url}#m"), retries=3, backoff=1.0)
    started = time.monotonic()
    results = list(b.generate([ask(f"q{i}", "hello") for i in range(6)]))
    assert time.monotonic() - started < 2  # a refused connection is not retried
    assert len(results) == 6
    for r in results:
        assert r.finish_reason == "error" and not r.ok
        assert r.error == f"cannot connect to {url}: connection refused"


def test_a_slow_server_times_out(scripted):
    b = backend(scripted.url, timeout=0.3)
    (r,) = b.generate([ask("a", "slow 1.5")])
    assert r.error == f"no answer from {scripted.url} within 0.3 s"


def test_cancel_stops_submitting_and_aborts_the_requests_in_flight(scripted):
    b = backend(scripted.url, concurrency=2)
    cancel = threading.Event()
    reqs = [ask(f"q{i}", "stall") for i in range(6)]

    def cancel_when_two_arrived():
        while len(scripted.bodies) < 2:
            time.sleep(0.01)
        cancel.set()

    threading.Thread(target=cancel_when_two_arrived, daemon=True).start()
    started = time.monotonic()
    results = list(b.generate(reqs, cancel))
    assert time.monotonic() - started < 1.5  # no waiting for the stalled server
    assert sorted(r.request_id for r in results) == ["q0", "q1"]
    assert [r.finish_reason for r in results] == ["cancelled", "cancelled"]
    time.sleep(0.2)
    assert len(scripted.bodies) == 2


def test_a_bad_spec_is_a_usage_error():
    from saferlab.engine.errors import SaferlabError
    from saferlab.engine.models import ModelRef

    with pytest.raises(SaferlabError):
        OpenAIBackend(ModelRef("openai:ftp://x#m", "openai", "ftp://x#m"))
    with pytest.raises(SaferlabError):
        backend("http://127.0.0.1:1/v1", concurrency=0)


# --- llama-cpp-python's own server on the embedded model --------------------------------

def start_llama_server(model_path, log_path):
    missing = [m for m in SERVER_EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"llama-cpp-python's server extra is not installed (no {', '.join(missing)}):"
                    " pip install 'llama-cpp-python[server]'")
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path),
             "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
             "--n_ctx", "2048", "--n_threads", str(os.cpu_count() or 1)],
            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the llama.cpp server exited: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1) as resp:
                if resp.status == 200:
                    return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail("the llama.cpp server did not answer within 90 s")


def stop(proc):
    proc.kill()
    proc.wait(10)


@pytest.fixture(scope="module")
def llama_server(embedded_path, tmp_path_factory):
    proc, url = start_llama_server(embedded_path, tmp_path_factory.mktemp("srv") / "log.txt")
    yield url
    stop(proc)


PROMPTS = ["What is the capital of France?", "Name three colours.", "What is 2 + 2?",
           "Say hello in Spanish.", "What is water made of?", "Name a large animal.",
           "What day comes after Monday?", "What colour is the sky?"]


@pytest.mark.model
def test_a_batch_through_the_llama_cpp_server(llama_server):
    b = OpenAIBackend(parse_model_spec(f"openai:{llama_server}#smollm2"), concurrency=4,
                      timeout=120)
    reqs = [ask(f"q{i}", p) for i, p in enumerate(PROMPTS)]
    results = list(b.generate(reqs))
    assert sorted(r.request_id for r in results) == sorted(q.id for q in reqs)
    for r in results:
        assert r.ok, r.error
        # llama-cpp-python's server counts up to one token more than max_tokens on "length".
        assert r.text.strip() and r.prompt_tokens > 5 and 0 < r.completion_tokens <= 17
        assert r.finish_reason in ("stop", "length")
    b.close()


@pytest.mark.model
def test_a_server_killed_mid_batch_leaves_stored_errors(embedded_path, tmp_path):
    proc, url = start_llama_server(embedded_path, tmp_path / "log.txt")
    try:
        # A generous timeout: on a loaded 2-core machine the first answer can take minutes.
        b = OpenAIBackend(parse_model_spec(f"openai:{url}#smollm2"), concurrency=2, timeout=600,
                          backoff=0.05)
        reqs = [ask(f"q{i}", f"Write a long story about dragon number {i}.", max_tokens=32)
                for i in range(6)]
        results = []
        for r in b.generate(reqs):
            results.append(r)
            if len(results) == 1:
                proc.kill()
                killed = time.monotonic()
    finally:
        stop(proc)
    assert time.monotonic() - killed < 5  # the rest fail fast, with no timeout to wait out
    assert sorted(r.request_id for r in results) == sorted(q.id for q in reqs)
    assert results[0].ok, results[0].error
    failed = [r for r in results if not r.ok]
    # The request in flight when the server died may fail with a reset rather than a refusal.
    assert len(failed) >= 4 and all(r.finish_reason == "error" and r.error for r in failed)
    assert sum(r.error.startswith(f"cannot connect to {url}") for r in failed) >= 3
