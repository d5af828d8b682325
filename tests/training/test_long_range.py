"""The point of fine-tuning BigBird: a tiny block-sparse model learns a label that only tokens beyond position
1,000 of a 2,048-token document carry, to >= 95% accuracy on held-out documents in a few hundred steps, while the
same model and training reading the first 512 tokens stays at chance.

The task: 2,046 filler words drawn from 24, with the label's marker word (one of four, a vocabulary disjoint from
the filler) planted as a run of 32 copies (one attention block) starting at a random word in [1000, 2014). The
[CLS] token is in BigBird's global first block, so it attends every key and the classifier reads it: one layer
suffices, and the work is in sharpening that attention. The position embeddings start at zero (and are learned)
so that they do not drown the token signal at the start. Training goes through `bigbird.training.train` (the
`bigbird train classify` path): tokenizer, length-grouped batching, AdamW with warm-up and linear decay,
evaluation each epoch. A marker planted once (run 1) stayed around 0.5 in the 100-300 steps tried (lr 3e-3
to 3e-2). With the run of 32 and this configuration, four initial-weight seeds reached 0.98-1.00 held-out
accuracy after 300 steps (some by step 200), and the truncated runs stayed at or below the evaluation set's
majority-label share.

Speed: one layer, hidden 32, batch 8, 300 steps at 2,048 tokens plus 300 at 512: about a minute of CPU time on
one thread, measured on a heavily loaded 2-core machine. Torch runs on one thread here: a model this small gains
little from a second one, and on a loaded machine extra threads multiply the time."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from bigbird.training import TrainSettings, train
from training_fixtures import LENGTH, MARKERS, long_range_records, tiny_bigbird, write_jsonl

pytestmark = pytest.mark.filterwarnings("ignore:.*newly initialised:UserWarning")

RUN = 32  # the marker's copies: one attention block


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_long_range_label_is_learned_where_truncation_stays_at_chance(tmp_path, one_thread):
    torch.manual_seed(0)  # the random initial weights
    model = tiny_bigbird(tmp_path / "model", layers=1, hidden=32, heads=2, block_size=32, random_blocks=1,
                         position_scale=0.0)
    train_records = long_range_records(400, 1, run=RUN)
    eval_records = long_range_records(128, 2, run=RUN)
    train_file = write_jsonl(tmp_path / "train.jsonl", train_records)
    eval_file = write_jsonl(tmp_path / "eval.jsonl", eval_records)
    # the label is only readable beyond word 1,000: the first 1,000 words are filler in every document
    for record in train_records + eval_records:
        words = record["text"].split()
        assert len(words) == LENGTH - 2
        assert not set(words[:1000]) & set(MARKERS.values())
        assert words.count(MARKERS[record["label"]]) == RUN
    common = dict(task="classify", model=str(model), train=str(train_file), eval=str(eval_file), epochs=6,
                  batch_size=8, lr=1e-2, warmup_ratio=0.05, labels=list(MARKERS), seed=0)
    full = train(TrainSettings(**common, out=str(tmp_path / "full")))
    truncated = train(TrainSettings(**common, out=str(tmp_path / "truncated"), max_length=512))
    assert full["global_step"] == truncated["global_step"] == 300
    assert full["max_length"] == LENGTH and truncated["max_length"] == 512

    # the full-length model solves the task on held-out documents (at the end of training, not a lucky epoch)
    final = full["evaluations"][-1]["metrics"]["accuracy"]
    assert final >= 0.95, full["evaluations"]
    # truncated to 512 tokens the model sees no marker: it can do no better than always naming the most common
    # label of the evaluation set (chance), give or take a few examples
    chance = max(Counter(record["label"] for record in eval_records).values()) / len(eval_records)
    truncated_accuracies = [e["metrics"]["accuracy"] for e in truncated["evaluations"]]
    assert max(truncated_accuracies) <= chance + 0.05, (chance, truncated["evaluations"])
