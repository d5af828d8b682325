"""Tokenizer speed: bigbird's BigBirdTokenizer / PegasusTokenizer vs Transformers' on the same files, same process.

Trains a SentencePiece model (vocabulary 4,000 by default) on a corpus, builds 1,000 documents of about 4,000
tokens from it, and times, alternating the two implementations in one loop (ours first on even repeats,
Transformers' first on odd ones), the batch call
`tokenizer(docs, padding="max_length", truncation=True, max_length=4096, return_tensors="pt")`, the same call
without tensors, `batch_decode` of the ids, `pad` of the unpadded rows as `DataCollatorWithPadding` calls it,
and `from_pretrained` of a bare spiece.model (the trained one, and one grown to Pegasus' 96k pieces).
Prints medians, the ratio Transformers / ours, and the load average before and after.

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


def grow_model(directory: Path, target: Path, pieces: int) -> Path:
    """A copy of `directory` whose spiece.model has `pieces` pieces (made-up words appended), for loading times."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((directory / "spiece.model").read_bytes())
    for index in range(pieces - len(proto.pieces)):
        piece = proto.pieces.add()
        piece.piece, piece.score = f"▁w{index}x", -12.0 - index * 1e-4
    target.mkdir()
    (target / "spiece.model").write_bytes(proto.SerializeToString())
    return target


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
        print(f"{args.docs} documents of about {args.tokens} tokens, median of {args.repeats} runs, "
              f"load average before: {os.getloadavg()[0]:.1f}\n")  # fmt: skip
        print("| tokenizer | work | ours (s) | Transformers (s) | Transformers / ours |")
        print("|---|---|---|---|---|")
        for name, (ours_class, theirs_class, ids) in LAYOUTS.items():
            directory = train(corpus, scratch / name, ids, args.vocab)
            ours, theirs = ours_class.from_pretrained(directory), theirs_class.from_pretrained(directory)
            docs = make_documents(lines, args.docs, args.tokens, ours)
            lengths = [len(ids) for ids in ours(docs[:20])["input_ids"]]
            assert ours(docs[:50])["input_ids"] == theirs(docs[:50])["input_ids"]
            ids = ours(docs, truncation=True, max_length=4096)["input_ids"]
            features = [{"input_ids": row, "attention_mask": [1] * len(row)} for row in ids]
            grown = grow_model(directory, scratch / f"{name}-96k", 96_000)
            work = {
                "call, pt tensors": lambda t: t(docs, padding="max_length", truncation=True, max_length=4096,
                                                return_tensors="pt"),
                "call, lists": lambda t: t(docs),
                "batch_decode": lambda t: t.batch_decode(ids, skip_special_tokens=True),
                "pad, pt (collator)": lambda t: t.pad(features, pad_to_multiple_of=64, return_tensors="pt"),
                "from_pretrained": lambda t: type(t).from_pretrained(directory),
                "from_pretrained, 96k pieces": lambda t: type(t).from_pretrained(grown),
            }  # fmt: skip
            for label, run in work.items():
                run(ours), run(theirs)  # warm-up (first imports, caches)
                times = {ours: [], theirs: []}
                for repeat in range(args.repeats):
                    for tokenizer in (ours, theirs) if repeat % 2 == 0 else (theirs, ours):
                        times[tokenizer].append(timed(run, tokenizer))
                mine, reference = statistics.median(times[ours]), statistics.median(times[theirs])
                print(f"| {name} (~{int(statistics.mean(lengths))} tok/doc) | {label} | {mine:.3f} | "
                      f"{reference:.3f} | {reference / mine:.2f} |")  # fmt: skip
        print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
