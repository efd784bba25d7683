"""Batched llama.cpp decoding with every layer on the GPU: not collected by pytest, not run in
CI. It needs llama-cpp-python built with CUDA (or Metal), for example:

    CMAKE_ARGS="-DGGML_CUDA=on" pip install --no-cache-dir --force-reinstall llama-cpp-python
    python tests/gpu/llama_batch_gpu_check.py [gguf:PATH | embedded] [--items 64] [--max-tokens 128]

For batch sizes 1, 8 and 32 it decodes the same harmful requests greedily with
n_gpu_layers=-1, checks that a second pass at the same batch size reproduces every output
token for token, that every request comes back exactly once, and prints tokens/s for each
size beside the one-at-a-time reference. Without GPU offload in the build it says so and
exits 0; a failed check exits 1.
"""

from __future__ import annotations

import argparse
import sys
import time


def main() -> int:
    import llama_cpp

    from saferlab.engine.backends import load_backend
    from saferlab.engine.models import parse_model_spec
    from saferlab.engine.plan import SessionSpec, plan_session
    from saferlab.engine.types import DecodingParams, GenerationRequest

    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default="embedded")
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    if not llama_cpp.llama_supports_gpu_offload():
        print("this llama-cpp-python build has no GPU offload: nothing to check")
        return 0
    (plan,) = plan_session(SessionSpec(model=args.model, suites=("harmful",), limit=args.items))
    params = DecodingParams(max_tokens=args.max_tokens)
    requests = [GenerationRequest(p.item.id, p.messages, params) for p in plan.items]
    failures = []
    reference = None
    for batch_size in (1, 8, 32):
        started = time.perf_counter()
        backend = load_backend(parse_model_spec(args.model), n_gpu_layers=-1,
                               batch_size=batch_size)
        loaded = time.perf_counter() - started
        try:
            list(backend.generate(requests[:2]))  # warm-up
            passes = []
            for _ in range(2):
                started = time.perf_counter()
                results = list(backend.generate(requests))
                passes.append((time.perf_counter() - started, results))
        finally:
            backend.close()
        seconds, results = passes[0]
        tokens = sum(r.completion_tokens for r in results)
        rate = tokens / seconds
        reference = reference or rate
        ids = sorted(r.request_id for r in results)
        if ids != sorted(r.id for r in requests):
            failures.append(f"batch {batch_size}: requests missing or repeated")
        errors = [r.error for r in results if r.error]
        if errors:
            failures.append(f"batch {batch_size}: {len(errors)} errors, the first: {errors[0]}")
        first = {r.request_id: r.text for r in results}
        second = {r.request_id: r.text for r in passes[1][1]}
        if first != second:
            differ = sum(first[k] != second.get(k) for k in first)
            failures.append(f"batch {batch_size}: {differ} outputs differ between two passes")
        print(f"batch {batch_size:>2}: load {loaded:.1f} s, {tokens} tokens in {seconds:.2f} s = "
              f"{rate:.0f} tokens/s ({rate / reference:.2f}x batch 1)")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
