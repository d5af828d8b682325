"""The models under torch.compile(fullgraph=True), torch.export and ONNX Runtime: one graph, eager's numbers.

Tiny random models, block-sparse (inputs above the fallback bound of 72 tokens). Most compiled runs use the
aot_eager backend, which traces exactly what inductor gets (Dynamo's graph and AOT autograd's joint graph) in a
fraction of the time; one eval test runs inductor itself.
"""

import onnxruntime as ort
import pytest
import torch
import transformers
from torch._dynamo.utils import counters

import bigbird
from bigbird.ops import block_sparse, layout
from bigbird.ops import triton_kernel as kernel
from bigbird_oracle import batch, tiny_config
from pegasus_oracle import TINY as PEGASUS
from pegasus_oracle import encoder_batch
from compile_fixtures import fresh_dynamo  # noqa: F401 (fixture)


def bigbird_model(**overrides) -> bigbird.BigBirdModel:
    torch.manual_seed(0)
    return bigbird.BigBirdModel(tiny_config(attention_type="block_sparse", **overrides)).eval()


def pegasus_encoder():
    torch.manual_seed(0)
    return bigbird.BigBirdPegasusModel(transformers.BigBirdPegasusConfig(**PEGASUS)).get_encoder().eval()


def bigbird_inputs(length: int, padded: bool) -> dict:
    """Ids (batch 2, `length` tokens) with an attention mask hiding 5 tokens of row 1, or no mask at all."""
    inputs = batch("BigBirdModel", length, pad=5 if padded else 0)
    if not padded:
        del inputs["attention_mask"]
    return inputs


def outputs_and_grads(model, inputs):
    """The model's output tensors and the gradients of a loss on them in every parameter."""
    out = model(**inputs)
    tensors = [value for value in out.values() if isinstance(value, torch.Tensor)]
    loss = sum(tensor.square().mean() for tensor in tensors)
    return tensors, torch.autograd.grad(loss, list(model.parameters()))


def assert_one_graph(model, inputs):
    explanation = torch._dynamo.explain(model)(**inputs)
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons


def assert_all_close(got, want, atol):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=atol, rtol=0)


@pytest.mark.parametrize("length, padded, backend", [(150, True, "inductor"), (152, False, "aot_eager")],
                         ids=["padded-inductor", "unpadded-aot_eager"])
def test_compiled_bigbird_forward_is_one_graph_with_eager_outputs(length, padded, backend):
    model, inputs = bigbird_model(), bigbird_inputs(length, padded)
    assert_one_graph(model, inputs)
    with torch.no_grad():
        got = torch.compile(model, fullgraph=True, backend=backend)(**inputs)
        want = model(**inputs)
    assert not counters["graph_break"]
    assert got.last_hidden_state.shape == (2, length, 32)
    assert_all_close([got.last_hidden_state, got.pooler_output], [want.last_hidden_state, want.pooler_output], 1e-5)


def assert_compiled_gives_eager(model, inputs: dict) -> None:
    """`torch.compile(model, fullgraph=True)` runs without a graph break and gives eager outputs and gradients."""
    got = outputs_and_grads(torch.compile(model, fullgraph=True, backend="aot_eager"), inputs)
    assert not counters["graph_break"]
    want = outputs_and_grads(model, inputs)
    assert_all_close(got[0], want[0], 1e-5)
    assert_all_close(got[1], want[1], 1e-5)


@pytest.mark.parametrize("random_plan", ["transformers", "paper"])
def test_compiled_bigbird_training_step_gives_eager_gradients(random_plan):
    model, inputs = bigbird_model(), bigbird_inputs(150, padded=True)
    model.set_random_plan(random_plan)
    model.train()
    assert_one_graph(model, inputs)
    assert_compiled_gives_eager(model, inputs)


def test_compiled_bigbird_on_the_triton_kernel_gives_eager_gradients(monkeypatch):
    """The GPU path: the Triton custom op inside the compiled model, on CUDA, or on CPU tensors under Triton's
    interpreter (where the kernel is chosen by hand: CPU tensors default to the CPU op)."""
    device = "cpu" if kernel.INTERPRETED else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("the Triton kernels were compiled for a GPU and there is none")
    chosen = []
    if kernel.INTERPRETED:
        def triton_backend(backend, device):
            chosen.append(device)
            return kernel.triton_block_sparse_attention

        monkeypatch.setattr(block_sparse, "_implementation", triton_backend)
    model = bigbird_model(block_size=16, num_hidden_layers=1).train().to(device)  # 170 tokens: 11 blocks of 16
    inputs = {name: value.to(device) for name, value in batch("BigBirdModel", 170, batch_size=1, pad=0).items()}
    assert_compiled_gives_eager(model, inputs)
    assert chosen or not kernel.INTERPRETED


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_compiled_pegasus_encoder_is_one_graph_with_eager_outputs_and_gradients(training):
    encoder, inputs = pegasus_encoder(), encoder_batch(150)
    encoder.train(training)
    assert_one_graph(encoder, inputs)
    assert_compiled_gives_eager(encoder, inputs)


def clear_plan_caches():
    """Forget every plan, draw and device table, so that the next call builds them afresh."""
    for cache in (layout._cached_plan, layout._random_blocks, layout._device_tables):
        cache.cache_clear()


def test_exported_bigbird_gives_eager_outputs_and_leaves_eager_calls_correct():
    """The plan is first built while torch.export traces: later eager calls must still find real tables."""
    model, inputs = bigbird_model(), bigbird_inputs(150, padded=True)
    model.set_random_plan("paper")  # random blocks at inference: the op gathers them through its tables
    with torch.no_grad():
        before = model(**inputs)
        clear_plan_caches()
        program = torch.export.export(model, (), dict(inputs))
        exported = program.module()(**inputs)
        after = model(**inputs)
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert "bigbird.block_sparse_attention.default" in targets
    for output in (exported, after):
        assert_all_close([output.last_hidden_state, output.pooler_output],
                         [before.last_hidden_state, before.pooler_output], 1e-6)


@pytest.mark.parametrize("random_plan, batch_size", [("transformers", 1), ("paper", 2)])
def test_onnx_export_runs_in_onnx_runtime_with_eager_outputs(random_plan, batch_size):
    model = bigbird_model()
    inputs = batch("BigBirdModel", 150, batch_size=batch_size, pad=5 if batch_size > 1 else 0)
    model.set_random_plan(random_plan)
    clear_plan_caches()  # the export builds the plan's tables (ONNX gets the op's ATen path), for later calls too
    program = torch.onnx.export(model, (), kwargs=dict(inputs), dynamo=True, verbose=False)
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    hidden, pooled = session.run(None, {name: value.numpy() for name, value in inputs.items()})
    with torch.no_grad():
        want = model(**inputs)
    assert_all_close([torch.from_numpy(hidden), torch.from_numpy(pooled)],
                     [want.last_hidden_state, want.pooler_output], 1e-4)
