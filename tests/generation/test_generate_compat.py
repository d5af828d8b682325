"""generate() against Transformers 5.23's where calls go beyond plain token inputs: a precomputed encoder output
and a decoder-only prompt given as embeddings (tiny random checkpoints of both model families)."""

from __future__ import annotations

import warnings

import pytest
import torch
import transformers

import bigbird
from bigbird_oracle import tiny_config
from pegasus_oracle import encoder_batch, ours, theirs

SEQ2SEQ = "BigBirdPegasusForConditionalGeneration"
CAUSAL = "BigBirdPegasusForCausalLM"
BIGBIRD = "BigBirdForCausalLM"


@pytest.fixture(scope="module")
def causal_dirs(tmp_path_factory, causal_dir):
    """Both decoder-only models, saved by Transformers: {class name: directory}."""
    bert = tmp_path_factory.mktemp("bigbird-causal")
    torch.manual_seed(0)
    model = transformers.BigBirdForCausalLM(tiny_config(is_decoder=True, attention_type="original_full",
                                                        vocab_size=99))
    with torch.no_grad():
        model.cls.predictions.bias.normal_()
    model.save_pretrained(bert)
    return {CAUSAL: causal_dir, BIGBIRD: bert}


def theirs_any(name, directory):
    return getattr(transformers, name).from_pretrained(directory).eval()


def ours_any(name, directory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(bigbird, name).from_pretrained(directory)


def batch(length: int) -> dict:
    return encoder_batch(length, batch_size=3, pad=6, seed=length)


# 1. A precomputed encoder output.

ENCODER_SETTINGS = [
    dict(max_new_tokens=10, no_repeat_ngram_size=1),
    dict(num_beams=3, num_return_sequences=2, max_new_tokens=8),
    dict(do_sample=True, top_k=20, temperature=0.8, num_return_sequences=2, max_new_tokens=8),
]


@pytest.mark.parametrize("form", ["transformers", "ours"])
@pytest.mark.parametrize("masked", [True, False], ids=["mask", "no-mask"])
@pytest.mark.parametrize("length", [40, 100])
@pytest.mark.parametrize("settings", ENCODER_SETTINGS, ids=["greedy", "beam", "sampling"])
def test_encoder_outputs_give_transformers_tokens(settings, length, masked, form, seq2seq_dir):
    inputs = batch(length)
    hf, model = theirs(SEQ2SEQ, seq2seq_dir), ours(SEQ2SEQ, seq2seq_dir)
    mask = {"attention_mask": inputs["attention_mask"]} if masked else {}

    def encoded():  # fresh each call: Transformers' generate expands the one it gets in place
        with torch.no_grad():
            return hf.get_encoder()(**inputs)

    theirs_encoded = encoded()
    with torch.no_grad():
        given = {"transformers": encoded(), "ours": model.get_encoder()(**inputs)}[form]
    torch.manual_seed(3)
    expected = hf.generate(encoder_outputs=theirs_encoded, **mask, **settings)
    torch.manual_seed(3)
    assert torch.equal(model.generate(encoder_outputs=given, **mask, **settings), expected)
    if masked and not settings.get("do_sample"):
        assert torch.equal(model.generate(**inputs, **settings), expected)




# 2. A decoder-only prompt given as embeddings.

def prompts() -> dict:
    """Two prompts, row 1 left-padded with 2 pad tokens."""
    ids = torch.randint(3, 99, (2, 7), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(ids)
    mask[1, :2] = 0
    ids[1, :2] = 0
    return {"input_ids": ids, "attention_mask": mask}
def embedded(hf, inputs: dict, form: str) -> dict:
    with torch.no_grad():
        embeds = hf.get_input_embeddings()(inputs["input_ids"])
    return {"embeds": {"inputs_embeds": embeds, "attention_mask": inputs["attention_mask"]},
            "embeds-and-ids": {**inputs, "inputs_embeds": embeds},
            "embeds-no-mask": {"inputs_embeds": embeds}}[form]


EMBEDS_SETTINGS = [
    dict(max_new_tokens=8, no_repeat_ngram_size=1),
    dict(max_length=12, min_length=9),
    dict(max_new_tokens=8, repetition_penalty=1.5, min_new_tokens=6),
    dict(num_beams=3, num_return_sequences=2, max_new_tokens=6),
    dict(num_beams=2, max_length=13, length_penalty=0.5, early_stopping="never"),
]


@pytest.mark.parametrize("form", ["embeds", "embeds-and-ids", "embeds-no-mask"])
@pytest.mark.parametrize("settings", EMBEDS_SETTINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
@pytest.mark.parametrize("name", [BIGBIRD])
def test_decoder_only_inputs_embeds_give_transformers_tokens(name, settings, form, causal_dirs):
    hf, model = theirs_any(name, causal_dirs[name]), ours_any(name, causal_dirs[name])
    inputs = embedded(hf, prompts(), form)
    with warnings.catch_warnings(record=True) as theirs_warned:
        warnings.simplefilter("always")
        expected = hf.generate(**inputs, **settings)
    with warnings.catch_warnings(record=True) as ours_warned:
        warnings.simplefilter("always")
        got = model.generate(**inputs, **settings)
    assert got.shape == expected.shape
    assert torch.equal(got, expected)
    unseen = [name for name in ("repetition_penalty", "no_repeat_ngram_size")
              if form != "embeds-and-ids" and settings.get(name)]
    for warned in (theirs_warned, ours_warned):  # the penalties do not see a prompt of embeddings alone
        messages = [str(w.message) for w in warned if "inputs_embeds" in str(w.message)]
        assert [name for name in unseen if any(name in text for text in messages)] == unseen
        assert len(messages) == len(unseen)




class RecordingStreamer:
    def __init__(self):
        self.calls = []

    def put(self, value):
        self.calls.append(("put", value.tolist(), tuple(value.shape)))

    def end(self):
        self.calls.append(("end",))

