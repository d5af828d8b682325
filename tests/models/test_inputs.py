"""Model inputs of the wrong kind are named before any compute, with the fix; value checks stay out of traces."""

import pytest
import torch
import transformers

import bigbird
from bigbird_oracle import tiny_config
from pegasus_oracle import TINY as PEGASUS

IDS = [[5, 6, 7, 8, 9]]


def bigbird_model():
    model = bigbird.BigBirdModel(tiny_config()).eval()
    return model, model.embeddings


def pegasus_encoder():
    encoder = bigbird.BigBirdPegasusModel(transformers.BigBirdPegasusConfig(**PEGASUS)).get_encoder().eval()
    return encoder, encoder.embed_tokens


@pytest.fixture(params=[bigbird_model, pegasus_encoder], ids=["bigbird", "pegasus-encoder"])
def model(request, monkeypatch):
    """A tiny model whose embedding layer fails the test if it runs: checks must come first."""
    model, embeddings = request.param()
    monkeypatch.setattr(embeddings, "forward", lambda *a, **k: pytest.fail("computed before checking"))
    return model


@pytest.mark.parametrize("make_inputs, message", [
    (lambda: {"input_ids": IDS}, r"input_ids must be a torch.Tensor, got list: pass a tensor, e.g. from the "
                                 r"tokenizer with return_tensors=\"pt\""),
    (lambda: {"input_ids": torch.tensor(IDS), "attention_mask": [[1] * 5]}, r"attention_mask must be a torch.Tensor"),
    (lambda: {"input_ids": torch.tensor(IDS, dtype=torch.float32)},
     r"input_ids must be integer token ids \(torch.long\), got torch.float32"),
    (lambda: {"input_ids": torch.tensor(IDS, dtype=torch.bool)}, r"integer token ids .* got torch.bool"),
    (lambda: {"inputs_embeds": torch.zeros(1, 5, 32, dtype=torch.float64)},
     r"inputs_embeds is torch.float64 but the model is torch.float32: cast them to the model's dtype with "
     r"inputs_embeds.to\(torch.float32\)"),
    (lambda: {"inputs_embeds": torch.zeros(1, 5, 32, dtype=torch.long)}, r"inputs_embeds must be floating point"),
])
def test_inputs_of_the_wrong_kind_are_named(model, make_inputs, message):
    with pytest.raises(TypeError, match=message):
        model(**make_inputs())


def test_narrower_embeddings_are_accepted():
    model, _ = bigbird_model()
    got = model(inputs_embeds=torch.randn(1, 5, 32).bfloat16()).last_hidden_state  # promoted to float32
    assert got.dtype == torch.float32 and torch.isfinite(got).all()


def test_int32_ids_give_the_int64_result():
    model, _ = bigbird_model()
    ids = torch.tensor(IDS)
    torch.testing.assert_close(model(input_ids=ids.int()).last_hidden_state, model(input_ids=ids).last_hidden_state)


def test_out_of_range_ids_raise_in_eager_calls_and_do_not_break_a_compiled_graph():
    """Reading the ids' values would break the graph: compiled code leaves them to the embedding lookup."""
    model, _ = bigbird_model()
    with pytest.raises(ValueError, match=r"input_ids contains 99, outside \[0, 99\)"):
        model(input_ids=torch.tensor([[5, 99]]))
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model)(input_ids=torch.tensor(IDS), token_type_ids=torch.zeros(1, 5).long(),
                                               position_ids=torch.arange(5)[None])
    assert explanation.graph_break_count == 0
    torch._dynamo.reset()
