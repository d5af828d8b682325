"""BigBird-Pegasus generation benchmark: ours vs Transformers 5.23 in the same process.

A random model of bigbird-pegasus-large's width and vocabulary (d_model 1024, 16 heads, FFN 4096, vocabulary
96103, 4096 positions, block 64, 3 random blocks) with fewer layers, a 4096-token input, batch 1:

- the encoder pass alone;
- greedy search and 4-beam search generating exactly `--new-tokens` tokens (min_new_tokens = max_new_tokens);
- per-token decoder cost = (generate - encoder) / new tokens.

Both libraries run Transformers' `generate()`; ours over our encoder, with one cross-attention row per input
shared by its beams (`bigbird.models.cross_attention`).

Every run checks the generated tokens are identical. Calls run in turn (ours, theirs, ours, ...) so that a drift in
the machine's speed hits all alike. Prints the machine (CPU model and flags that matter here) and a markdown table of
median wall seconds, median process CPU seconds (all threads: steadier than wall time on a shared machine), the
ratios against Transformers, and peak extra memory (resident set size high-water mark above the level before the
first call, /proc/self/status).

    python benchmarks/bench_generate.py                       # 2+2 layers, 64 new tokens, 3 repeats
    python benchmarks/bench_generate.py --layers 4 --repeats 5
"""

from __future__ import annotations

import argparse
import tempfile
import warnings

import torch
from interleaved import measure_interleaved
from machine import describe

def row(name: str, ours, theirs, same: str) -> str:
    """A table row: medians of wall and process CPU seconds, their ratios (Transformers / ours), peaks."""
    return (f"| {name} | {ours.wall:.3f} | {theirs.wall:.3f} | {theirs.wall / ours.wall:.2f} | {ours.cpu:.3f} "
            f"| {theirs.cpu:.3f} | {theirs.cpu / ours.cpu:.2f} | {ours.peak_gb:.2f} | {theirs.peak_gb:.2f} | {same} |")


def per_token_row(name: str, ours, theirs, ours_encoder, theirs_encoder, new: int) -> str:
    """(generate - encoder pass) / new tokens, in ms, wall and CPU."""
    wall = [(run.wall - encoder.wall) / new * 1000 for run, encoder in ((ours, ours_encoder), (theirs, theirs_encoder))]
    cpu = [(run.cpu - encoder.cpu) / new * 1000 for run, encoder in ((ours, ours_encoder), (theirs, theirs_encoder))]
    return (f"| {name}, decoder per token (ms) | {wall[0]:.1f} | {wall[1]:.1f} | {wall[1] / wall[0]:.2f} "
            f"| {cpu[0]:.1f} | {cpu[1]:.1f} | {cpu[1] / cpu[0]:.2f} | | | |")


def load_models(layers: int):
    """A random Transformers BigBird-Pegasus saved and loaded by both libraries: (config, theirs, ours)."""
    import transformers

    import bigbird

    torch.manual_seed(0)
    config = transformers.BigBirdPegasusConfig(encoder_layers=layers, decoder_layers=layers, dropout=0.0)
    with tempfile.TemporaryDirectory() as directory:
        transformers.BigBirdPegasusForConditionalGeneration(config).save_pretrained(directory)
        theirs = transformers.BigBirdPegasusForConditionalGeneration.from_pretrained(directory).eval()
        ours = bigbird.BigBirdPegasusForConditionalGeneration.from_pretrained(directory)
    return config, theirs, ours


def print_generation(runs: dict, encoder: dict) -> None:
    """Rows for every search: each of our ways against Transformers, with identical tokens checked."""
    for search, result in runs.items():
        expected = result["theirs"].result
        new = expected.shape[1] - 1
        for who in (name for name in result if name != "theirs"):
            same = torch.equal(result[who].result, expected)
            print(row(f"{search}, {new} tokens: {who}", result[who], result["theirs"], str(same)))
            print(per_token_row(f"{search}: {who}", result[who], result["theirs"], encoder["ours"],
                                encoder["theirs"], new))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--layers", type=int, default=2, help="encoder layers and decoder layers (each)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from transformers.utils import logging

    logging.set_verbosity_error()
    warnings.simplefilter("ignore")
    config, theirs, ours = load_models(args.layers)
    input_ids = torch.randint(3, config.vocab_size, (1, args.length), generator=torch.Generator().manual_seed(1))
    n = args.new_tokens
    print(f"machine: {describe()}")
    print(f"model: d_model 1024, {args.layers}+{args.layers} layers, vocab {config.vocab_size}; input "
          f"{args.length} tokens, {n} new tokens, medians of {args.repeats}\n")
    print("| run | ours (s) | Transformers (s) | speed-up | ours CPU (s) | Transformers CPU (s) | CPU ratio "
          "| ours peak (GB) | Transformers peak (GB) | same tokens |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    greedy = dict(max_new_tokens=n, min_new_tokens=n)
    beam = dict(greedy, num_beams=args.beams)
    with torch.no_grad():
        encoders = {"ours": ours.get_encoder(), "theirs": theirs.get_encoder()}
        encoder = measure_interleaved(
            {who: (lambda e=e: e(input_ids=input_ids).last_hidden_state) for who, e in encoders.items()},
            args.repeats)
        same = torch.allclose(encoder["ours"].result, encoder["theirs"].result, atol=1e-4)
        print(row("encoder pass", encoder["ours"], encoder["theirs"], f"outputs within 1e-4: {same}"))
        runs = {
            "greedy": measure_interleaved({"ours": lambda: ours.generate(input_ids, **greedy),
                                           "theirs": lambda: theirs.generate(input_ids, **greedy)}, args.repeats),
            f"beam {args.beams}": measure_interleaved({"ours": lambda: ours.generate(input_ids, **beam),
                                                       "theirs": lambda: theirs.generate(input_ids, **beam)},
                                                      args.repeats)}
    print_generation(runs, encoder)


if __name__ == "__main__":
    main()
