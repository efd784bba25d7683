"""Fine-tune on a GPU in bf16: not collected by pytest, not run in CI.

    python tests/gpu/finetune_gpu_check.py [MODEL_SPEC] [--steps 30] [--data cot]

Trains a LoRA through the engine's own trainer on cuda (bf16 where the GPU has it), then checks
that the loss fell, that the adapter loads back on the hf backend and changes its answer, and
that its GGUF LoRA exists; prints steps/s, tokens/s and peak GPU memory. Without a GPU it says
so and exits 0. The default model is the embedded GGUF, loaded dequantized (nothing to
download); any local hf:DIR works too.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    import torch

    from saferlab.engine.backends import load_backend
    from saferlab.engine.finetune.data import DataSpec
    from saferlab.engine.finetune.spec import TrainSpec
    from saferlab.engine.finetune.train import train
    from saferlab.engine.models import parse_model_spec
    from saferlab.engine.types import DecodingParams, GenerationRequest, Message

    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default="embedded")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--data", default="cot")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to check")
        return 0
    out = Path(tempfile.mkdtemp()) / "gpu-check"
    spec = TrainSpec(name="gpu-check", model=args.model, out=str(out), steps=args.steps,
                     batch_size=args.batch_size, device="cuda", lr=5e-4,
                     data=DataSpec(data=args.data, n=args.steps * args.batch_size))
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    outcome = train(spec)
    seconds = time.perf_counter() - started
    meta = outcome.adapter or {}
    print(f"{torch.cuda.get_device_name()} dtype {meta.get('base', {}).get('dtype')}: "
          f"{outcome.steps} steps in {seconds:.1f} s ({outcome.steps / seconds:.2f} steps/s), "
          f"{outcome.tokens_per_s or 0:.0f} tokens/s, peak GPU "
          f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, loss "
          f"{outcome.losses[0]:.3f} -> {outcome.losses[-1]:.3f}")
    fell = outcome.losses[-1] < outcome.losses[0]
    ref = parse_model_spec(args.model)
    hf_spec = (f"hf:{ref.path.parent}#{ref.path.name}" if ref.scheme == "gguf" else args.model)
    backend = load_backend(parse_model_spec(hf_spec), device="cuda",
                           adapters=[("gpu-check", str(out))])
    question = ("Maya has 12 apples. Maya buys 5 more apples. How many apples does Maya have "
                "now?")
    asks = [GenerationRequest(f"r{i}", (Message("user", question),),
                              DecodingParams(max_tokens=48), adapter=a)
            for i, a in enumerate([None, "gpu-check"])]
    base, tuned = (r.text for r in backend.generate(asks))
    backend.close()
    print(f"base:  {base!r}\ntuned: {tuned!r}")
    gguf = meta.get("gguf_path")
    print("loss fell:", fell, "| answer changed:", base != tuned, "| GGUF LoRA:", gguf)
    return 0 if fell and base != tuned and (gguf or ref.scheme != "gguf") else 1


if __name__ == "__main__":
    sys.exit(main())
