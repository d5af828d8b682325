"""BigBird-Pegasus generation benchmark: ours vs Transformers 5.23 in the same process.

A random model of bigbird-pegasus-large's width and vocabulary (d_model 1024, 16 heads, FFN 4096, vocabulary
96103, 4096 positions, block 64, 3 random blocks) with fewer layers, a 4096-token input, batch 1:

- the encoder pass alone;
- greedy search and 4-beam search generating exactly `--new-tokens` tokens (min_new_tokens = max_new_tokens),
  checked to give identical tokens;
- per-token decoder cost = (generate - encoder) / new tokens.

Each comparison runs ours and Transformers in turn (ours, theirs, ours, ...) so that a drift in the machine's speed
hits both alike. Prints a markdown table of median wall seconds, tokens per second, the speed-up, and peak extra memory
(resident set size high-water mark above the level before the first call, /proc/self/status).

    python benchmarks/bench_generate.py                       # 2+2 layers, 64 new tokens, 3 repeats
    python benchmarks/bench_generate.py --layers 4 --repeats 5
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import warnings

import torch
from interleaved import measure_interleaved


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
        encoders = {"ours": ours.get_encoder(), "theirs": theirs.get_encoder()}
        encoder_time = measure_interleaved(
            {who: (lambda e=e: e(input_ids=input_ids).last_hidden_state) for who, e in encoders.items()},
            args.repeats)
        a, b = encoder_time["ours"], encoder_time["theirs"]
        same = torch.allclose(a.result, b.result, atol=1e-4)
        print(f"| encoder pass | {a.wall:.3f} | {b.wall:.3f} | {b.wall / a.wall:.2f} | | | {a.peak_gb:.2f} "
              f"| {b.peak_gb:.2f} | outputs within 1e-4: {same} |")
        per_token = {}
        for name, search in searches.items():
            settings = dict(max_new_tokens=n, min_new_tokens=n, **search)
            result = measure_interleaved({who: (lambda m=model: m.generate(input_ids, **settings))
                                          for who, model in (("ours", ours), ("theirs", theirs))}, args.repeats)
            a, b = result["ours"], result["theirs"]
            same = a.result.shape == b.result.shape and torch.equal(a.result, b.result)
            print(f"| {name}, {n} tokens | {a.wall:.3f} | {b.wall:.3f} | {b.wall / a.wall:.2f} | {n / a.wall:.1f} "
                  f"| {n / b.wall:.1f} | {a.peak_gb:.2f} | {b.peak_gb:.2f} | {same} |")
            per_token[name] = [(result[w].wall - encoder_time[w].wall) / n * 1000 for w in ("ours", "theirs")]
        for name, (a, b) in per_token.items():
            print(f"| {name}: decoder per token (ms) | {a:.1f} | {b:.1f} | {b / a:.2f} | | | | | |")


if __name__ == "__main__":
    main()
