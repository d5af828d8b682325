"""BigBird-Pegasus generation benchmark: ours vs Transformers 5.23 in the same process.

A random model of bigbird-pegasus-large's width and vocabulary (d_model 1024, 16 heads, FFN 4096, vocabulary
96103, 4096 positions, block 64, 3 random blocks) with fewer layers, a 4096-token input, batch 1:

- the encoder pass alone;
- greedy search and 4-beam search generating exactly `--new-tokens` tokens (min_new_tokens = max_new_tokens),
  checked to give identical tokens;
- per-token decoder cost = (generate - encoder) / new tokens.

Prints a markdown table of median wall seconds, tokens per second, the speed-up, and peak extra memory
(resident set size high-water mark above the level before the first call, /proc/self/status).

    python benchmarks/bench_generate.py                       # 2+2 layers, 64 new tokens, 3 repeats
    python benchmarks/bench_generate.py --layers 4 --repeats 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
import warnings

import torch
from peak_memory import peak_baseline, peak_extra_mb


def measure(call, repeats: int):
    """(median wall seconds, peak extra GB of the first call, result of the last call)."""
    baseline = peak_baseline()
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
        if i == 0:
            peak = peak_extra_mb(baseline) / 1024
    return statistics.median(times), peak, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--layers", type=int, default=2, help="encoder layers and decoder layers (each)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import transformers
    from transformers.utils import logging

    import bigbird

    logging.set_verbosity_error()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    config = transformers.BigBirdPegasusConfig(encoder_layers=args.layers, decoder_layers=args.layers,
                                               dropout=0.0)
    with tempfile.TemporaryDirectory() as directory:
        transformers.BigBirdPegasusForConditionalGeneration(config).save_pretrained(directory)
        theirs = transformers.BigBirdPegasusForConditionalGeneration.from_pretrained(directory).eval()
        ours = bigbird.BigBirdPegasusForConditionalGeneration.from_pretrained(directory)
    input_ids = torch.randint(3, config.vocab_size, (1, args.length), generator=torch.Generator().manual_seed(1))
    n = args.new_tokens
    searches = {"greedy": dict(num_beams=1), f"beam {args.beams}": dict(num_beams=args.beams)}

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"model: d_model 1024, {args.layers}+{args.layers} layers, vocab {config.vocab_size}; input "
          f"{args.length} tokens, {n} new tokens, medians of {args.repeats}\n")
    print("| run | ours (s) | Transformers (s) | speed-up | ours tok/s | Transformers tok/s "
          "| ours peak (GB) | Transformers peak (GB) | same tokens |")
    print("|---|---|---|---|---|---|---|---|---|")
    with torch.no_grad():
        encoder_time = {}
        for who, model in (("ours", ours), ("theirs", theirs)):
            encoder = model.get_encoder()
            encoder_time[who] = measure(lambda: encoder(input_ids=input_ids).last_hidden_state, args.repeats)
        a, b = encoder_time["ours"], encoder_time["theirs"]
        same = torch.allclose(a[2], b[2], atol=1e-4)
        print(f"| encoder pass | {a[0]:.3f} | {b[0]:.3f} | {b[0] / a[0]:.2f} | | | {a[1]:.2f} | {b[1]:.2f} "
              f"| outputs within 1e-4: {same} |")
        per_token = {}
        for name, search in searches.items():
            settings = dict(max_new_tokens=n, min_new_tokens=n, **search)
            result = {who: measure(lambda: model.generate(input_ids, **settings), args.repeats)
                      for who, model in (("ours", ours), ("theirs", theirs))}
            a, b = result["ours"], result["theirs"]
            same = a[2].shape == b[2].shape and torch.equal(a[2], b[2])
            print(f"| {name}, {n} tokens | {a[0]:.3f} | {b[0]:.3f} | {b[0] / a[0]:.2f} | {n / a[0]:.1f} "
                  f"| {n / b[0]:.1f} | {a[1]:.2f} | {b[1]:.2f} | {same} |")
            per_token[name] = [(result[w][0] - encoder_time[w][0]) / n * 1000 for w in ("ours", "theirs")]
        for name, (a, b) in per_token.items():
            print(f"| {name}: decoder per token (ms) | {a:.1f} | {b:.1f} | {b / a:.2f} | | | | | |")


if __name__ == "__main__":
    main()
