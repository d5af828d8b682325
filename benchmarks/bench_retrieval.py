"""Retrieval on real long text: does reading 4096 tokens beat reading 512?

Corpus: the English Wikipedia articles in gensim's test data (installed here with pip, never committed).
Queries: passages of `--passage-tokens` tokens drawn from each article at token positions 512..4096 (beyond
what a 512-token model reads). Every query ranks all articles by cosine similarity; we report recall@1 and
MRR for
  (a) all-MiniLM-L6-v2 reading each article's first 512 tokens,
  (b) the warm-started BigBird (the same weights, block-sparse attention) reading up to 4096 tokens,
  (c) all-MiniLM-L6-v2 on 512-token chunks of the first 4096 tokens, the unit vectors averaged,
with the time per article, and the median time per 4096-token article for (b) and (c).

    python benchmarks/bench_retrieval.py [--passages-per-article 2] [--passage-tokens 64]
"""

from __future__ import annotations

import argparse
import bz2
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time

import torch

WINDOW, LONG = 512, 4096
GENSIM_ARTICLES = "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def articles() -> list[tuple[str, str]]:
    """(title, plain text) of the main-namespace articles that are not redirects."""
    try:
        import gensim
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "gensim"], check=True)
        import gensim
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    path = os.path.join(os.path.dirname(gensim.__file__), GENSIM_ARTICLES)
    out = []
    for title, markup, _ in extract_pages(bz2.open(path), filter_namespaces=("0",)):
        text = re.sub(r"\s+", " ", filter_wiki(markup)).strip()
        if text and not text.upper().startswith("#REDIRECT"):
            out.append((title, text))
    return out


def draw_queries(tokenizer, texts: list[str], per_article: int, length: int, seed: int = 0):
    """(article index, passage text) pairs: spans of `length` tokens starting at token 512..4096-length."""
    rng = random.Random(seed)
    queries = []
    for index, text in enumerate(texts):
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        last = min(len(offsets), LONG - 2) - length
        if last <= WINDOW:
            continue
        for start in rng.sample(range(WINDOW, last), min(per_article, last - WINDOW)):
            queries.append((index, text[offsets[start][0]:offsets[start + length - 1][1]]))
    return queries


def chunk_embed(embedder, texts: list[str], batch_size: int) -> torch.Tensor:
    """(c): each text's first 4096 tokens in chunks of 510 (+[CLS], [SEP]); the chunk vectors averaged."""
    from bigbird.search import embed

    tokenizer = embedder.tokenizer
    out = []
    for text in texts:
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        offsets = offsets[:LONG - 2]
        chunks = [text[offsets[i][0]:offsets[min(i + WINDOW - 2, len(offsets)) - 1][1]]
                  for i in range(0, len(offsets), WINDOW - 2)]
        vectors = embed(chunks, embedder, batch_size=batch_size, max_length=WINDOW)
        out.append(torch.nn.functional.normalize(vectors.mean(0), dim=0))
    return torch.stack(out)


def scores(documents: torch.Tensor, queries: torch.Tensor, truth: list[int]) -> tuple[float, float]:
    """recall@1 and mean reciprocal rank of the true article among all."""
    similarity = queries @ documents.T
    true = similarity[torch.arange(len(truth)), torch.tensor(truth)]
    ranks = (similarity > true[:, None]).sum(1) + 1
    return float((ranks == 1).float().mean()), float((1.0 / ranks.float()).mean())


def timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages-per-article", type=int, default=2)
    parser.add_argument("--passage-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--timing-articles", type=int, default=3, help="4096-token articles timed for (b) vs (c)")
    args = parser.parse_args()

    from bigbird.search import embed, load_embedder

    embedder = load_embedder()
    corpus = articles()
    texts = [text for _, text in corpus]
    lengths = [len(ids) for ids in embedder.tokenizer(texts)["input_ids"]]
    queries = draw_queries(embedder.tokenizer, texts, args.passages_per_article, args.passage_tokens)
    truth = [index for index, _ in queries]
    query_vectors = embed([text for _, text in queries], embedder, batch_size=32)
    print(f"{len(texts)} articles (median {statistics.median(lengths):.0f} tokens, {sum(n > WINDOW for n in lengths)} "
          f"longer than {WINDOW}, {sum(n >= LONG for n in lengths)} of {LONG} or more); {len(queries)} query passages "
          f"of {args.passage_tokens} tokens from {len(set(truth))} articles, at token positions {WINDOW}..{LONG}",
          flush=True)

    import warnings

    warnings.filterwarnings("ignore", message="document ")
    methods = {
        f"(a) MiniLM, first {WINDOW} tokens": lambda docs: embed(docs, embedder, batch_size=args.batch_size,
                                                                  max_length=WINDOW),
        f"(b) warm-started BigBird, up to {LONG} tokens": lambda docs: embed(docs, embedder,
                                                                               batch_size=args.batch_size),
        f"(c) MiniLM, {WINDOW}-token chunks averaged": lambda docs: chunk_embed(embedder, docs, args.batch_size),
    }
    rows = []
    for name, method in methods.items():
        vectors, seconds = timed(lambda: method(texts))
        recall, mrr = scores(vectors, query_vectors, truth)
        rows.append((name, recall, mrr, seconds / len(texts)))
        print(f"{name}: recall@1 {recall:.3f}, MRR {mrr:.3f}, {seconds / len(texts):.3f} s/article", flush=True)

    long_texts = [text for text, n in zip(texts, lengths) if n >= LONG][:args.timing_articles]
    per_long = {}
    for key, method in (("b", methods[list(methods)[1]]), ("c", methods[list(methods)[2]])):
        per_long[key] = statistics.median(timed(lambda: method([text]))[1] for text in long_texts)

    print(f"\nmachine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}\n")
    print("| method | recall@1 | MRR | s / article |")
    print("|---|---|---|---|")
    for name, recall, mrr, seconds in rows:
        print(f"| {name} | {recall:.3f} | {mrr:.3f} | {seconds:.3f} |")
    print(f"\nmedian time per {LONG}-token article ({len(long_texts)} articles): (b) {per_long['b']:.2f} s, "
          f"(c) {per_long['c']:.2f} s, ratio (b)/(c) {per_long['b'] / per_long['c']:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
