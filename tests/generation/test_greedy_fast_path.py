"""Plain greedy search's fast path (bigbird.generation): Transformers' tokens and streamer calls, taken only when
nothing it does not do is asked for; and the screened argmax is the float32 argmax, also at near-ties."""

from __future__ import annotations

import pytest
import torch
from transformers import (GenerationMixin, LogitsProcessorList, MaxTimeCriteria, StoppingCriteriaList,
                          SuppressTokensLogitsProcessor)
from transformers.generation.streamers import BaseStreamer

import bigbird
from bigbird.generation import greedy, output_head
from bigbird.generation.output_head import HalfCopy, half_copy, logit_bounds, screened_argmax
from pegasus_oracle import encoder_batch, ours, save_tiny, theirs

pytestmark = pytest.mark.skipif(not output_head.packed_float16_available(),
                                reason="this PyTorch build has no fbgemm (x86 builds have it)")
SEQ2SEQ = "BigBirdPegasusForConditionalGeneration"
VOCAB, SIZE = 3000, 128


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("greedy")
    save_tiny(SEQ2SEQ, directory, vocab_size=2000, init_std=0.2, use_bias=True)
    return directory


@pytest.fixture
def models(checkpoint):
    return theirs(SEQ2SEQ, checkpoint), ours(SEQ2SEQ, checkpoint)


@pytest.fixture
def paths(monkeypatch):
    """Counts the steps our greedy loop screened (`screened`, `decided` when the screen gave the token) and the
    calls of Transformers' `_sample` on our model (`transformers`)."""
    counts = {"screened": 0, "decided": 0, "transformers": 0}
    screen, sample = greedy.screened_argmax, GenerationMixin._sample

    def counting_screen(*args):
        tokens = screen(*args)
        counts["screened"] += 1
        counts["decided"] += tokens is not None
        return tokens

    def counting_sample(self, *args, **kwargs):
        counts["transformers"] += isinstance(self, bigbird.BigBirdPegasusForConditionalGeneration)
        return sample(self, *args, **kwargs)

    monkeypatch.setattr(greedy, "screened_argmax", counting_screen)
    monkeypatch.setattr(GenerationMixin, "_sample", counting_sample)
    return counts


def batch(batch_size: int = 3) -> dict:
    """Encoder inputs long enough for block-sparse attention; row 1 padded."""
    return {name: tensor[:batch_size] for name, tensor in encoder_batch(100, batch_size=3, pad=6, seed=3).items()}


def prompt() -> torch.Tensor:
    """Decoder prompts (3, 4): the rows of this random model then generate different tokens."""
    return torch.randint(3, 2000, (3, 4), generator=torch.Generator().manual_seed(5))


def assert_fast_path_taken(paths: dict, steps: int) -> None:
    assert paths["transformers"] == 0
    assert paths["screened"] == steps and paths["decided"] >= 0.8 * steps


FAST = [dict(max_new_tokens=12), dict(max_length=9), dict(max_new_tokens=6, use_cache=False)]


@pytest.mark.parametrize("settings", FAST, ids=["max_new_tokens", "max_length", "no-cache"])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_tokens_equal_transformers(settings, batch_size, models, paths):
    hf, model = models
    inputs = batch(batch_size)
    expected = hf.generate(**inputs, **settings)
    assert torch.equal(model.generate(**inputs, **settings), expected)
    assert_fast_path_taken(paths, expected.shape[1] - 2)  # the first token comes from the prefill's logits


def test_rows_ending_early_are_padded_as_transformers_pads_them(models, paths):
    hf, model = models
    inputs = dict(batch(), decoder_input_ids=prompt(), max_new_tokens=8)
    eos = int(hf.generate(**inputs)[2, 5])  # row 2's first new token (after the start token and the prompt)
    expected = hf.generate(**inputs, eos_token_id=eos)
    assert (expected[2, 6:] == 0).all() and expected.shape[1] == 13  # padded while the other rows go on
    assert torch.equal(model.generate(**inputs, eos_token_id=eos), expected)
    assert_fast_path_taken(paths, 7)


def test_given_encoder_outputs_and_decoder_prompts(models, paths):
    hf, model = models
    inputs = batch()
    encoded = hf.get_encoder()(**inputs)
    settings = dict(encoder_outputs=encoded, attention_mask=inputs["attention_mask"], decoder_input_ids=prompt(),
                    max_new_tokens=7)
    expected = hf.generate(**settings)
    assert torch.equal(model.generate(**settings), expected)
    assert_fast_path_taken(paths, 6)


class Recorder(BaseStreamer):
    def __init__(self):
        self.calls = []

    def put(self, value):
        self.calls.append(("put", value.clone()))

    def end(self):
        self.calls.append(("end", None))


def test_streamer_calls_equal_transformers(models, paths):
    hf, model = models
    streamers = Recorder(), Recorder()
    for generator, streamer in zip((hf, model), streamers):
        generator.generate(**batch(), max_new_tokens=5, streamer=streamer)
    expected, got = (streamer.calls for streamer in streamers)
    assert [name for name, _ in got] == [name for name, _ in expected] == ["put"] * 6 + ["end"]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(got[:-1], expected[:-1]))
    assert_fast_path_taken(paths, 4)


def test_an_undecided_screen_falls_back_to_transformers_head(models, paths, monkeypatch):
    hf, model = models
    monkeypatch.setattr(output_head, "FALLBACK_SHARE", 0.0)  # every step leaves too many candidates
    expected = hf.generate(**batch(), max_new_tokens=6)
    assert torch.equal(model.generate(**batch(), max_new_tokens=6), expected)
    assert paths["screened"] == 5 and paths["decided"] == 0 and paths["transformers"] == 0


SLOW = [
    dict(repetition_penalty=1.3),
    dict(min_new_tokens=5),
    dict(output_scores=True, return_dict_in_generate=True),
    dict(return_dict_in_generate=True),
    dict(max_time=100.0),
    dict(logits_processor=LogitsProcessorList([SuppressTokensLogitsProcessor([5])])),
    dict(stopping_criteria=StoppingCriteriaList([MaxTimeCriteria(100.0)])),
    dict(do_sample=True, top_k=5),
    dict(num_beams=2),
]


@pytest.mark.parametrize("settings", SLOW, ids=lambda s: "-".join(s))
def test_everything_else_is_transformers_loop(settings, models, paths):
    hf, model = models
    results = []
    for generator in (hf, model):
        torch.manual_seed(1)
        output = generator.generate(**batch(), max_new_tokens=6, **settings)
        results.append(output.sequences if settings.get("return_dict_in_generate") else output)
    assert torch.equal(results[1], results[0])
    assert paths["screened"] == 0
    assert paths["transformers"] == (0 if "num_beams" in settings else 1)


def test_reduced_precision_float32_products_are_left_to_transformers(models, paths):
    hf, model = models
    # set and restored through torch's own property (monkeypatch cannot restore it: every later float32 product of
    # the test process would run in bf16 on CPUs with AMX)
    previous = torch.backends.mkldnn.matmul.fp32_precision
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    try:
        model.generate(**batch(), max_new_tokens=3)
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = previous
    assert torch.backends.mkldnn.matmul.fp32_precision == previous
    assert paths["screened"] == 0 and paths["transformers"] == 1


def random_head(seed: int, scale: float = 0.05, bias: bool = True):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(VOCAB, SIZE, generator=generator) * scale
    return weight, (torch.randn(VOCAB, generator=generator) if bias else None)


def copy_of(weight, bias):
    return HalfCopy(weight, torch.zeros(weight.shape[0]) if bias is None else bias)


def unit_hidden(rows: int, seed: int) -> torch.Tensor:
    return torch.nn.functional.layer_norm(torch.randn(rows, SIZE, generator=torch.Generator().manual_seed(seed)),
                                          (SIZE,))


def float32_argmax(weight, bias, hidden):
    return (hidden @ weight.T + (bias if bias is not None else 0)).argmax(dim=-1)


@pytest.mark.parametrize("scale,hidden_scale", [(1e-6, 1e-3), (1e-6, 200.0), (0.05, 1.0), (0.05, 200.0),
                                                (30.0, 1e-3), (30.0, 1.0)])
def test_the_bound_holds(scale, hidden_scale):
    """|float32 logit - approximation| <= margin, against float32 and float64 logits, from weights that round to
    float16 subnormals to large ones; and the margin is narrow enough to screen."""
    for seed in range(3):
        weight, bias = random_head(seed, scale)
        weight[:50] = torch.randn(50, SIZE, generator=torch.Generator().manual_seed(seed)) * 2.0**-20
        hidden = torch.randn(2, SIZE, generator=torch.Generator().manual_seed(100 + seed)) * hidden_scale
        approx, margin = logit_bounds(hidden, copy_of(weight, bias))
        exact64 = hidden.double() @ weight.double().T + bias.double()
        float32 = hidden @ weight.T + bias
        assert bool(((float32.double() - approx.double()).abs() <= margin.double()).all())
        assert bool(((exact64 - approx.double()).abs() <= margin.double()).all())
        assert float(margin.median()) < 0.05 * float(exact64.abs().median()) + 1e-6


@pytest.mark.parametrize("rows", [1, 4, 16])
@pytest.mark.parametrize("with_bias", [True, False])
def test_screened_tokens_are_the_float32_argmax(rows, with_bias):
    decided = 0
    for seed in range(8):
        weight, bias = random_head(seed, bias=with_bias)
        hidden = unit_hidden(rows, seed)
        tokens = screened_argmax(hidden, weight, bias, copy_of(weight, bias))
        if tokens is not None:
            decided += 1
            assert torch.equal(tokens, float32_argmax(weight, bias, hidden))
    assert decided >= 6


def test_near_ties_below_float16_resolution_are_decided_in_float32():
    """Rows equal in float16 but not in float32: the screen keeps both and picks the float32 winner."""
    weight = random_head(0, bias=False)[0].half().float()  # every row exactly representable in float16
    hidden = unit_hidden(1, 1)
    best = int(float32_argmax(weight, None, hidden))
    # Each element moved by 0.45 of its float16 step, in the direction that raises (or lowers) the logit.
    step = torch.ldexp(torch.ones(SIZE), torch.frexp(weight[best])[1] - 11)
    nudge = 0.45 * step * hidden[0].sign() * (weight[best].abs() > 2.0**-14)
    for sign in (1, -1):
        twin = weight[best] + sign * nudge
        assert torch.equal(twin.half(), weight[best].half())
        nudged = torch.cat([weight, twin[None]])
        expected = VOCAB if sign > 0 else best
        assert int(float32_argmax(nudged, None, hidden)) == expected
        assert int(screened_argmax(hidden, nudged, None, copy_of(nudged, None))) == expected


def test_ties_within_float32_rounding_are_left_to_the_full_product():
    """Equal rows, or rows one float32 step apart: another summation order could pick the other one."""
    weight = random_head(0, bias=False)[0]
    hidden = unit_hidden(1, 2)
    best = int(float32_argmax(weight, None, hidden))
    twin = weight[best].clone()
    for nudge in (0.0, float(torch.finfo(torch.float32).eps * twin[0].abs())):
        twin[0] = weight[best, 0] + nudge
        tied, bias = torch.cat([weight, twin[None]]), torch.zeros(VOCAB + 1)
        assert screened_argmax(hidden, tied, bias, copy_of(tied, bias)) is None


def test_what_the_copy_cannot_hold_gets_none_and_is_left_unchanged():
    weight, bias = random_head(0)
    for value in (1e6, -65520.0, float("nan")):
        changed = weight.clone()
        changed[3, 0] = value
        assert half_copy(changed, bias) is None
        assert changed[3, 0].isnan() if value != value else changed[3, 0] == value  # packing would clamp it
    weight[3, 0] = -65504.0
    assert half_copy(weight, bias) is not None and half_copy(weight, None) is not None
    for other in (weight.bfloat16(), weight.double()):
        assert half_copy(other, None) is None
    for bad in (float("inf"), float("nan")):
        assert half_copy(weight, torch.full((VOCAB,), bad)) is None
    for huge in (float("inf"), 1e35):
        assert screened_argmax(torch.full((1, SIZE), huge), weight, bias, half_copy(weight, bias)) is None


def test_the_copy_follows_in_place_changes_of_the_weight_and_the_bias():
    weight, bias = random_head(0)
    first = half_copy(weight, bias)
    assert half_copy(weight, bias) is first
    hidden = unit_hidden(1, 0)
    for tensor in (weight, bias):
        with torch.no_grad():
            tensor[int(float32_argmax(weight, bias, hidden))] *= -1
        copy = half_copy(weight, bias)
        assert copy is not first
        assert torch.equal(screened_argmax(hidden, weight, bias, copy), float32_argmax(weight, bias, hidden))
        first = copy
