"""Greedy search's screened argmax (output_head): the float32 argmax of the processed logits, always."""

from __future__ import annotations

import copy
import functools
import pickle

import pytest
import torch

from bigbird import output_head
from bigbird.generation_config import GenerationConfig, resolve
from bigbird.logits_processing import apply, build_processors
from bigbird.output_head import HalfCopy, HalfCopyCache, OutputHead, approximate_logits
from pegasus_oracle import encoder_batch, ours, save_tiny, theirs

VOCAB, SIZE = 3000, 128


def greedy_processors(ids_length: int, **settings):
    """Every processor greedy search can apply, as `resolve` builds them."""
    config = GenerationConfig(eos_token_id=1, pad_token_id=0, decoder_start_token_id=0)
    run = resolve(config, {"max_new_tokens": 20, **settings}, prompt_length=1, max_positions=512)
    return build_processors(run)


PROCESSOR_SETTINGS = [
    {},
    dict(repetition_penalty=1.5),
    dict(repetition_penalty=0.7, no_repeat_ngram_size=2),
    dict(bad_words_ids=[[5], [7, 8], [11, 12, 13]], min_new_tokens=10),
    dict(forced_bos_token_id=17),
    dict(forced_eos_token_id=[1, 4]),
]


@pytest.fixture(params=[True, False], ids=["fbgemm", "torch-float16"])
def packed(request, monkeypatch):
    """Both products of the float16 copy: fbgemm's packed one (x86) and PyTorch's float16 one (elsewhere)."""
    if request.param and not output_head._fbgemm_float16_available():
        pytest.skip("this PyTorch build has no fbgemm (it has on x86, where CI runs)")
    monkeypatch.setattr(output_head, "_fbgemm_float16_available", lambda: request.param)
    return request.param


def random_head(seed: int, scale: float = 0.05, bias: bool = True):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(VOCAB, SIZE, generator=generator) * scale
    return weight, (torch.randn(VOCAB, generator=generator) if bias else None)


def full_argmax(weight, bias, hidden, process):
    logits = hidden @ weight.T + (bias if bias is not None else 0)
    return process(logits).argmax(dim=-1)


@pytest.mark.parametrize("settings", PROCESSOR_SETTINGS, ids=lambda s: "-".join(s) or "none")
def test_greedy_processors_treat_each_logit_alone_and_never_lower_it(settings):
    """The property the screened argmax relies on: P(s)_v depends on s_v only and is non-decreasing in it."""
    generator = torch.Generator().manual_seed(0)
    for length in (1, 2, 5, 12, 20):
        ids = torch.randint(0, 20, (2, length), generator=generator)
        if length >= 2:
            ids[:, -2:] = torch.tensor([7, 11])  # prefixes of the multi-token bad words
        process = functools.partial(apply, greedy_processors(length, **settings), ids)
        low = torch.randn(2, VOCAB, generator=generator) * 3
        high = low + torch.rand(2, VOCAB, generator=generator) * 2
        assert bool((process(low) <= process(high)).all())
        moved = low.clone()
        moved[:, 100:] = torch.randn(2, VOCAB - 100, generator=generator) * 10
        assert torch.equal(process(moved)[:, :100], process(low)[:, :100])


@pytest.mark.parametrize("scale,hidden_scale", [(1e-6, 1e-3), (1e-6, 200.0), (0.05, 1.0), (0.05, 200.0), (30.0, 1e-3),
                                                (30.0, 1.0)])
def test_the_bound_holds(scale, hidden_scale, packed):
    """|float32 logit - float16 approximation| <= margin, against float64 logits with float32 rounding allowed for,
    from weights that round to float16 subnormals to large ones."""
    for seed in range(3):
        weight, bias = random_head(seed, scale)
        weight[:50] = torch.randn(50, SIZE, generator=torch.Generator().manual_seed(seed)) * 2.0**-20
        hidden = torch.randn(2, SIZE, generator=torch.Generator().manual_seed(100 + seed)) * hidden_scale
        approx, margin = approximate_logits(hidden, HalfCopy(weight, packed), bias)
        exact64 = hidden.double() @ weight.double().T + bias.double()
        float32 = hidden @ weight.T + bias
        assert bool(((float32.double() - approx.double()).abs() <= margin.double()).all())
        assert bool(((exact64 - approx.double()).abs() <= margin.double()).all())
        assert float(margin.median()) < 0.05 * float(exact64.abs().median()) + 1e-6  # and it is tight enough to help


@pytest.mark.parametrize("settings", PROCESSOR_SETTINGS, ids=lambda s: "-".join(s) or "none")
@pytest.mark.parametrize("rows", [1, 4])
def test_screened_tokens_are_the_float32_argmax(settings, rows, packed):
    screened = 0
    for seed in range(8):
        weight, bias = random_head(seed)
        hidden = torch.nn.functional.layer_norm(torch.randn(rows, SIZE, generator=torch.Generator().manual_seed(seed)),
                                                (SIZE,))
        ids = torch.randint(0, 20, (rows, 1 + seed), generator=torch.Generator().manual_seed(seed))
        process = functools.partial(apply, greedy_processors(ids.shape[1], **settings), ids)
        head = OutputHead(weight, bias, HalfCopyCache())
        half = head.copies.get(weight)
        assert half.packed == packed
        screened += head._screened_tokens(hidden, process, half) is not None
        assert torch.equal(head.greedy_tokens(hidden, process), full_argmax(weight, bias, hidden, process))
    assert screened >= 6  # the screen decided, rather than falling back to all float32 logits


def test_near_ties_below_float16_resolution_are_decided_in_float32(packed):
    """Rows equal in float16 but not in float32: the screen must keep both and pick the float32 winner."""
    weight = random_head(0, bias=False)[0].half().float()  # every row exactly representable in float16
    hidden = torch.nn.functional.layer_norm(torch.randn(1, SIZE, generator=torch.Generator().manual_seed(1)), (SIZE,))
    best = int((hidden @ weight.T).argmax())
    # A nudge raising the logit by `gain`, on elements large enough that it stays below half a float16 step.
    direction = hidden[0] * (weight[best].abs() > 0.02)
    direction = direction / (direction @ hidden[0])
    for gain in (1e-4, -1e-4):
        twin = weight[best] + gain * direction
        assert torch.equal(twin.half(), weight[best].half())
        nudged = torch.cat([weight, twin[None]])
        expected = int((hidden @ nudged.T).argmax())
        assert expected == (VOCAB if gain > 0 else best)
        assert int(OutputHead(nudged, None, HalfCopyCache()).greedy_tokens(hidden, lambda s: s)) == expected


def test_values_beyond_float16_fall_back_to_float32_logits(packed):
    weight, bias = random_head(0)
    hidden = torch.randn(1, SIZE) * 1e5  # beyond 65504 after rounding to float16
    head = OutputHead(weight, bias, HalfCopyCache())
    # fbgemm's product takes the hidden state in float32: only PyTorch's float16 one must give up
    assert (head._screened_tokens(hidden, lambda s: s, head.copies.get(weight)) is None) != packed
    assert torch.equal(head.greedy_tokens(hidden, lambda s: s), full_argmax(weight, bias, hidden, lambda s: s))
    huge = weight.clone()
    huge[3, 0] = 1e6
    assert HalfCopyCache().get(huge) is None
    huge[3, 0] = -65520.0  # rounds to -inf in float16
    assert HalfCopyCache().get(huge) is None
    huge[3, 0] = -65504.0
    assert HalfCopyCache().get(huge) is not None
    assert HalfCopyCache().get(weight.double()) is None


def test_torch_float16_products_accumulating_in_float16_are_not_used(packed, monkeypatch):
    weight, _ = random_head(0)
    monkeypatch.setattr(torch._C, "_get_cpu_allow_fp16_reduced_precision_reduction", lambda: True)
    assert (HalfCopyCache().get(weight) is not None) == packed  # fbgemm's product always accumulates in float32


def test_the_copy_follows_in_place_changes_of_the_weight():
    weight, bias = random_head(0)
    cache = HalfCopyCache()
    first = cache.get(weight)
    assert cache.get(weight) is first
    hidden = torch.nn.functional.layer_norm(torch.randn(1, SIZE), (SIZE,))
    with torch.no_grad():
        weight[int(full_argmax(weight, bias, hidden, lambda s: s))] *= -1
    assert cache.get(weight) is not first
    head = OutputHead(weight, bias, cache)
    assert torch.equal(head.greedy_tokens(hidden, lambda s: s), full_argmax(weight, bias, hidden, lambda s: s))


def test_the_copy_is_not_pickled_and_is_dropped_when_the_weight_stops_qualifying():
    weight, _ = random_head(0)
    cache = HalfCopyCache()
    assert cache.get(weight) is not None
    restored = pickle.loads(pickle.dumps(cache))
    assert restored._copy is None and len(pickle.dumps(cache)) < 1000
    assert copy.deepcopy(cache)._copy is None
    assert cache.get(weight.to(torch.bfloat16)) is None
    assert cache._copy is None


@pytest.fixture
def screen_decisions(monkeypatch):
    """Records, for every screened greedy step, whether the screen decided (True) or fell back (False)."""
    decided = []
    original = OutputHead._screened_tokens

    def counting(self, hidden, process, half):
        tokens = original(self, hidden, process, half)
        decided.append(tokens is not None)
        return tokens

    monkeypatch.setattr(OutputHead, "_screened_tokens", counting)
    return decided


@pytest.mark.parametrize("batch_size", [1, 2])
@pytest.mark.parametrize("settings", [dict(max_new_tokens=15),
                                      dict(max_new_tokens=12, repetition_penalty=1.3, no_repeat_ngram_size=2,
                                           min_new_tokens=10, bad_words_ids=[[5], [7, 8]])],
                         ids=["plain", "processors"])
def test_screened_greedy_generation_matches_transformers(batch_size, settings, tmp_path, screen_decisions):
    save_tiny("BigBirdPegasusForConditionalGeneration", tmp_path, use_bias=True, vocab_size=2000)
    inputs = {name: tensor[:batch_size] for name, tensor in encoder_batch(100, pad=6, seed=3).items()}
    expected = theirs("BigBirdPegasusForConditionalGeneration", tmp_path).generate(**inputs, **settings)
    got = ours("BigBirdPegasusForConditionalGeneration", tmp_path).generate(**inputs, **settings)
    assert torch.equal(got, expected)
    assert sum(screen_decisions) >= 0.8 * len(screen_decisions) > 0


def test_screened_greedy_generation_of_the_causal_lm_matches_transformers(tmp_path, screen_decisions):
    save_tiny("BigBirdPegasusForCausalLM", tmp_path, vocab_size=2000)
    prompt = torch.randint(3, 2000, (1, 10), generator=torch.Generator().manual_seed(4))
    expected = theirs("BigBirdPegasusForCausalLM", tmp_path).generate(prompt, max_new_tokens=12)
    got = ours("BigBirdPegasusForCausalLM", tmp_path).generate(prompt, max_new_tokens=12)
    assert torch.equal(got, expected)
    assert sum(screen_decisions) >= 0.8 * len(screen_decisions) > 0
