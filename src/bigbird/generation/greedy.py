"""Plain greedy search for BigBird-Pegasus summarization with the argmax of `output_head`: Transformers' tokens, less
read per token.

Transformers' `generate()` prepares everything (its generation config, the encoder pass, the decoder's prompt,
the `Cache`, its logits processors and stopping criteria) and hands greedy search to `_sample`, which our models
override (`bigbird.models.pretrained.CheckedGenerateMixin`). When `takes_fast_path` says the run is plain greedy
search that the screened argmax can decide exactly, `greedy_search` runs it on Transformers' pieces (`_prefill`,
`prepare_inputs_for_generation`, `_update_model_kwargs_for_generation`, the decoder, the stopping criteria and
`StopCheck` for the streamer); everything else stays in Transformers' `_sample`.
"""

from __future__ import annotations

import torch
from transformers.generation.stopping_criteria import EosTokenCriteria, MaxLengthCriteria
from transformers.generation.utils import StopCheck
from transformers.models.bigbird_pegasus.modeling_bigbird_pegasus import BigBirdPegasusForConditionalGeneration

from .output_head import half_copy, screened_argmax


def _float32_matmuls_exact() -> bool:
    """Whether float32 products on the CPU run in float32 (not in bfloat16 or TF32, which the bound does not cover)."""
    precision = torch.backends.mkldnn.matmul.fp32_precision
    if precision == "none":
        precision = torch.backends.fp32_precision
    return precision in ("none", "ieee")


def takes_fast_path(model, logits_processor, stopping_criteria, generation_config, synced_gpus: bool) -> bool:
    """Whether `_sample`'s arguments ask for plain greedy search that `greedy_search` gives exactly: a
    `BigBirdPegasusForConditionalGeneration` with a float32 output projection on the CPU (float16 copy possible),
    no sampling, no logits processor, only the max-length and end-token criteria, no scores, logits or other
    outputs returned, no assistant, no synced GPUs and no compiled forward."""
    if not isinstance(model, BigBirdPegasusForConditionalGeneration):
        return False
    config = generation_config
    if (config.do_sample or config.return_dict_in_generate or config.is_assistant or synced_gpus
            or config.compile_config is not None or len(logits_processor) > 0):
        return False
    if any(type(criterion) not in (MaxLengthCriteria, EosTokenCriteria) for criterion in stopping_criteria):
        return False
    return _float32_matmuls_exact() and half_copy(model.lm_head.weight, model.final_logits_bias[0]) is not None


def _next_tokens(model, hidden: torch.Tensor) -> torch.Tensor:
    """The argmax of the last position's logits (batch,) from the decoder's output hidden (batch, length, d_model):
    screened, or where the screen cannot decide, from the logits computed as Transformers' head computes them."""
    weight, bias = model.lm_head.weight, model.final_logits_bias[0]
    tokens = screened_argmax(hidden[:, -1], weight, bias, half_copy(weight, bias))
    if tokens is None:
        tokens = (model.lm_head(hidden) + model.final_logits_bias)[:, -1].float().argmax(dim=-1)
    return tokens


def greedy_search(model, input_ids: torch.Tensor, stopping_criteria, generation_config, streamer=None,
                  **model_kwargs) -> torch.Tensor:
    """Transformers' greedy loop (`GenerationMixin._sample` without processors, scores or sampling): the prefill is
    Transformers' forward, every later step runs the model without its head (`model.model`) and `_next_tokens`.

    input_ids (batch, prompt length): the decoder's prompt; model_kwargs as `_sample` gets them (encoder outputs,
    masks, cache, use_cache). Returns the sequences (batch, prompt length + new tokens); finished rows are padded
    with the pad token when an end-token criterion is present, and every step's tokens go to `streamer.put`.
    """
    pad = generation_config._pad_token_tensor
    pads_finished = any(hasattr(criterion, "eos_token_id") for criterion in stopping_criteria)
    unfinished = torch.ones(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
    stop_check = StopCheck(streamer)
    outputs = model._prefill(input_ids, generation_config, model_kwargs)
    next_tokens = outputs.logits[:, -1].float().argmax(dim=-1)
    while True:
        model_kwargs = model._update_model_kwargs_for_generation(outputs, model_kwargs, is_encoder_decoder=True)
        if pads_finished:
            next_tokens = next_tokens * unfinished + pad * (1 - unfinished)
        input_ids = torch.cat([input_ids, next_tokens[:, None]], dim=-1)
        unfinished = unfinished & ~stopping_criteria(input_ids, None)
        if stop_check(unfinished, next_tokens, input_ids.shape[1]):
            break
        step_length = 1 if model_kwargs["use_cache"] else None
        step_inputs = model.prepare_inputs_for_generation(input_ids, next_sequence_length=step_length, **model_kwargs)
        outputs = model.model(**step_inputs, return_dict=True)
        next_tokens = _next_tokens(model, outputs.last_hidden_state)
    if streamer is not None:
        streamer.end()
    return input_ids
