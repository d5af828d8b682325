"""The block plan against Transformers' own plan helpers, over the grid of lengths, block sizes, r and heads."""

import itertools

import numpy as np
import pytest
from transformers import BigBirdConfig
from transformers.models.big_bird.modeling_big_bird import BigBirdBlockSparseAttention

from bigbird.ops import block_plan
from bigbird.ops.layout import LEGACY_LENGTHS

LENGTHS = (1024, 3072, 4096, 768, 2048, 2112, 8192)


def transformers_random_blocks(length, block_size, r, heads, seed, training, max_positions=4096):
    """rand_attn as Transformers 5.23 builds it in BigBirdBlockSparseAttention.bigbird_block_sparse_attention."""
    config = BigBirdConfig(hidden_size=4 * heads, num_attention_heads=heads, block_size=block_size,
                           num_random_blocks=r, max_position_embeddings=max_positions)
    module = BigBirdBlockSparseAttention(config, seed=seed).train(training)
    if training:
        np.random.seed(seed)
    if length in LEGACY_LENGTHS:
        rows = [
            module._bigbird_block_rand_mask(max_positions, max_positions, block_size, block_size, r, last_idx=1024)[
                : length // block_size - 2
            ]
            for _ in range(heads)
        ]
    else:
        plan_lengths, plan_blocks = module._get_rand_attn_plan(length, block_size, r)
        rows = module._bigbird_block_rand_mask_with_head(length, length, block_size, block_size, heads,
                                                         plan_lengths, plan_blocks)
    return np.stack(rows).astype(np.int64)


GRID = [
    case
    for case in itertools.product(LENGTHS, (16, 32, 64), (1, 2, 3, 4), (1, 4, 12))
    if not (case[0] == 768 and case[1] == 64 and case[2] == 4)  # Transformers itself cannot draw this plan
]


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_plan_equals_transformers_over_the_grid(training):
    for length, block_size, r, heads in GRID:
        seed = (length + r) % 7
        expected = transformers_random_blocks(length, block_size, r, heads, seed, training)
        plan = block_plan(length, block_size, r, heads, seed=seed, mode="train" if training else "eval")
        np.testing.assert_array_equal(plan.random_blocks, expected, err_msg=f"{(length, block_size, r, heads)}")


def test_paper_mode_draws_like_training_off_the_old_plan_lengths_and_eval_mode_uses_block_zero():
    train = block_plan(2112, 64, 3, 4, seed=5, mode="train")
    paper = block_plan(2112, 64, 3, 4, seed=5, mode="paper")
    np.testing.assert_array_equal(paper.random_blocks, train.random_blocks)
    assert (block_plan(2048, 64, 3, 4, seed=5, mode="eval").random_blocks == 0).all()
    assert (train.random_blocks != 0).any()


def test_the_global_numpy_random_state_is_untouched():
    np.random.seed(1234)
    before = np.random.get_state()[1].copy()
    block_plan(2112, 32, 3, 4, seed=9, mode="train")
    block_plan(3072, 32, 2, 4, seed=9, mode="train")
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_plans_are_cached_per_key_and_device_tables_built_once():
    first = block_plan(2048, 64, 3, 12, seed=2, mode="train")
    assert block_plan(2048, 64, 3, 12, seed=2, mode="train") is first
    assert block_plan(2048, 64, 3, 12, seed=3, mode="train") is not first
    assert block_plan(2048, 64, 3, 12, seed=2, mode="eval") is block_plan(2048, 64, 3, 12, seed=7, mode="eval")
    assert first.tables("cpu") is first.tables("cpu")


def test_zero_random_blocks_gives_the_pure_window_and_global_pattern():
    plan = block_plan(512, 32, 0, 2, seed=1, mode="train")
    counts = plan.block_counts()
    n = 16
    for i in range(2, n - 2):
        assert set(np.flatnonzero(counts[0, i])) == {0, i - 1, i, i + 1, n - 1}
    assert counts[:, 0].min() == 1 and counts[:, n - 1].min() == 1


def test_block_counts_keep_transformers_multiplicities():
    counts = block_plan(1024, 64, 3, 1, mode="eval").block_counts()[0]
    assert counts[1, 0] == 1 + 3 and counts[5, 0] == 1 + 3 and counts[5, 4:7].tolist() == [1, 1, 1]
    assert counts[0].tolist() == [1] * 16 and counts.sum(1)[2:-2].tolist() == [5 + 3] * 12


@pytest.mark.parametrize(
    "arguments, message",
    [
        ((1000, 64, 3, 4), "not a multiple of block_size"),
        ((1024, 0, 3, 4), "block_size must be at least 1"),
        ((1024, 64, -1, 4), "num_random_blocks"),
        ((1024, 64, 3, 0), "num_heads"),
        ((256, 64, 3, 4), "at least 5 blocks"),
    ],
)
def test_bad_plan_arguments_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        block_plan(*arguments)


def test_too_few_candidates_for_random_blocks_is_a_clear_error():
    with pytest.raises(ValueError, match="eligible as random blocks"):
        block_plan(768, 64, 4, 1, mode="train")
    with pytest.raises(ValueError, match="max_position_embeddings"):
        block_plan(4096, 64, 3, 1, mode="train", max_seq_len=2048)
    with pytest.raises(ValueError, match="mode must be one of"):
        block_plan(1024, 64, 3, 1, mode="inference")
