"""Tokenizer speed: bigbird's BigBirdTokenizer / PegasusTokenizer vs Transformers' on the same files, same process.

Trains a SentencePiece model (vocabulary 4,000 by default) on a corpus, builds 1,000 documents of about 4,000
tokens from it, and times, alternating the two implementations, the batch call
`tokenizer(docs, padding="max_length", truncation=True, max_length=4096, return_tensors="pt")`,
the same call without tensors, and `batch_decode` of the ids. Prints medians and the ratio Transformers / ours.

    python benchmarks/bench_tokenizer.py [--corpus botchan.txt] [--docs 1000] [--repeats 5]

Without --corpus the text is the synthetic mix the tests use (tests/tokenizer_fixtures.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sentencepiece as spm  # noqa: E402
import transformers  # noqa: E402

import bigbird  # noqa: E402
from tests.tokenizer_fixtures import write_corpus  # noqa: E402

LAYOUTS = {
    "BigBird": (bigbird.BigBirdTokenizer, transformers.BigBirdTokenizer,
                dict(pad_id=0, eos_id=1, bos_id=2, unk_id=3, control_symbols=["[SEP]", "[CLS]", "[MASK]"])),
    "Pegasus": (bigbird.PegasusTokenizer, transformers.PegasusTokenizer, dict(pad_id=0, eos_id=1, unk_id=2, bos_id=-1)),
}  # fmt: skip


def train(corpus: Path, directory: Path, ids: dict, vocab_size: int) -> Path:
    directory.mkdir(parents=True)
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(directory / "spiece"), vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, minloglevel=2, **ids,
    )  # fmt: skip
    return directory


def make_documents(lines: list[str], count: int, tokens_per_doc: int, tokenizer) -> list[str]:
    """`count` documents of about `tokens_per_doc` tokens, each starting at a different line of the corpus."""
    sample = "\n".join(lines[:200])
    chars_per_token = len(sample) / len(tokenizer(sample, add_special_tokens=False)["input_ids"])
    target_chars = int(tokens_per_doc * chars_per_token)
    text = "\n".join(lines)
    step = max(1, len(text) // count)
    docs = []
    for index in range(count):
        start = (index * step) % len(text)
        doc = (text[start:] + "\n" + text)[:target_chars]
        docs.append(doc)
    return docs


def timed(function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="a UTF-8 text file (default: the tests' synthetic text)")
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=4000, help="tokens per document (about)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vocab", type=int, default=4000, help="SentencePiece vocabulary size to train")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        corpus = args.corpus or write_corpus(scratch / "corpus.txt", lines=6000)
        lines = [line for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"transformers {transformers.__version__}, corpus {corpus.name}")  # fmt: skip
        print(f"{args.docs} documents of about {args.tokens} tokens, median of {args.repeats} runs\n")
        print("| tokenizer | work | ours (s) | Transformers (s) | Transformers / ours |")
        print("|---|---|---|---|---|")
        for name, (ours_class, theirs_class, ids) in LAYOUTS.items():
            directory = train(corpus, scratch / name, ids, args.vocab)
            ours, theirs = ours_class.from_pretrained(directory), theirs_class.from_pretrained(directory)
            docs = make_documents(lines, args.docs, args.tokens, ours)
            lengths = [len(ids) for ids in ours(docs[:20])["input_ids"]]
            assert ours(docs[:50])["input_ids"] == theirs(docs[:50])["input_ids"]
            ids = ours(docs, truncation=True, max_length=4096)["input_ids"]
            work = {
                "call, pt tensors": lambda t: t(docs, padding="max_length", truncation=True, max_length=4096,
                                                return_tensors="pt"),
                "call, lists": lambda t: t(docs),
                "batch_decode": lambda t: t.batch_decode(ids, skip_special_tokens=True),
                "from_pretrained": lambda t: type(t).from_pretrained(directory),
            }  # fmt: skip
            for label, run in work.items():
                times = {"ours": [], "theirs": []}
                for _ in range(args.repeats):
                    times["ours"].append(timed(run, ours))
                    times["theirs"].append(timed(run, theirs))
                mine, reference = statistics.median(times["ours"]), statistics.median(times["theirs"])
                print(f"| {name} (~{int(statistics.mean(lengths))} tok/doc) | {label} | {mine:.3f} | "
                      f"{reference:.3f} | {reference / mine:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
