"""Issue 16's optional int8 question: PyTorch's dynamic int8 quantization of the linear layers against bf16.

A 2-layer bigbird-roberta-base-shaped BigBirdModel (random weights), forward at `--length` tokens, batch 1, in
float32, in bfloat16 (weights cast) and with `torch.ao.quantization.quantize_dynamic` (int8 weights, activations
quantized per call; attention stays float32) under each quantized engine this PyTorch has. Calls run in turn;
prints median wall seconds and the largest difference from the float32 output.

    python benchmarks/bench_int8.py --length 4096 --repeats 5
"""

from __future__ import annotations

import argparse
import copy
import warnings

import torch
import transformers
from interleaved import measure_interleaved
from machine import describe

import bigbird


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    config = transformers.BigBirdConfig(max_position_embeddings=args.length, num_hidden_layers=2)
    model = bigbird.BigBirdModel(config).eval()
    calls = {"float32": model, "bfloat16": copy.deepcopy(model).bfloat16()}
    for engine in ("fbgemm", "onednn", "x86"):
        if engine in torch.backends.quantized.supported_engines:
            torch.backends.quantized.engine = engine  # quantize_dynamic packs the weights for this engine
            calls[f"int8 dynamic ({engine})"] = torch.ao.quantization.quantize_dynamic(
                copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    ids = torch.randint(5, config.vocab_size, (1, args.length), generator=torch.Generator().manual_seed(0))
    print(f"machine: {describe()}\n")
    print("| implementation | wall s | vs float32 | max abs diff from float32 |\n|---|---|---|---|")
    for engine in [name for name in calls if name.startswith("int8")] or [None]:
        if engine is not None:
            torch.backends.quantized.engine = engine.split("(")[1].rstrip(")")
        chosen = {name: m for name, m in calls.items() if not name.startswith("int8") or name == engine}
        with torch.inference_mode():
            results = measure_interleaved({name: (lambda m=m: m(ids).last_hidden_state) for name, m in chosen.items()},
                                          args.repeats)
        base = results["float32"]
        for name, measured in results.items():
            diff = (measured.result.float() - base.result).abs().max().item()
            print(f"| {name} | {measured.wall:.3f} | {base.wall / measured.wall:.2f}x | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
