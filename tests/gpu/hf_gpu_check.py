"""Exercise the hf backend on a GPU: not collected by pytest, not run in CI.

    python tests/gpu/hf_gpu_check.py [hf:MODEL_ID_OR_DIR] [--items 20] [--max-tokens 64]

Loads the model on cuda (or mps), checks that greedy outputs are the same at batch sizes 1
and 8, and prints load time, tokens/s per batch size and peak GPU memory. Without a GPU it
says so and exits 0. The default model is the embedded GGUF, loaded dequantized.
"""

from __future__ import annotations

import argparse
import sys
import time


def main() -> int:
    import torch

    from saferlab.engine.backends import load_backend
    from saferlab.engine.models import embedded_model_path, parse_model_spec
    from saferlab.engine.plan import SessionSpec, plan_session
    from saferlab.engine.types import DecodingParams, GenerationRequest

    path = embedded_model_path()
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default=f"hf:{path.parent}#{path.name}")
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else None
    if device is None:
        print("no GPU here: nothing to check")
        return 0
    (plan,) = plan_session(SessionSpec(model=args.model, suites=("harmful",), limit=args.items))
    params = DecodingParams(max_tokens=args.max_tokens)
    texts = {}
    for batch_size in (1, 8, 32):
        started = time.perf_counter()
        backend = load_backend(parse_model_spec(args.model), device=device, batch_size=batch_size)
        loaded = time.perf_counter() - started
        requests = [GenerationRequest(p.item.id, p.messages, params) for p in plan.items]
        started = time.perf_counter()
        results = list(backend.generate(requests))
        seconds = time.perf_counter() - started
        tokens = sum(r.completion_tokens for r in results)
        errors = [r.error for r in results if r.error]
        texts[batch_size] = {r.request_id: r.text for r in results}
        peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
        print(f"{backend.info()['device']} {backend.info()['dtype']} batch {batch_size}: load "
              f"{loaded:.1f} s, {tokens} tokens in {seconds:.2f} s = {tokens / seconds:.1f} "
              f"tokens/s, peak {peak:.2f} GiB, {len(errors)} errors")
        backend.close()
    same = texts[1] == texts[8] == texts[32]
    print("greedy outputs identical across batch sizes:", same)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
