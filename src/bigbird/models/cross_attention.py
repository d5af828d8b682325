"""Cross-attention that reads each encoder row once for all the beams (or returned sequences) of that row.

Transformers' `generate()` repeats the encoder output `num_beams` times (`num_return_sequences` times when
sampling several), so the decoder projects and caches the same cross-attention keys and values once per beam
and every step reads all the copies: with a 4096-token input, 16 layers and 5 beams that is 2.7 GB of cache
instead of 0.5, read at every generated token. Our encoder-decoder models keep one encoder row per input
(`share_encoder_rows`) and `SharedCrossAttention` serves query rows `i*g .. i*g+g-1` from encoder row `i`.
Cross-attention has no positions, so the `g` rows' queries are simply `g` times as many queries of row `i`.
"""

from __future__ import annotations

from transformers.models.bigbird_pegasus import modeling_bigbird_pegasus as hf


class SharedCrossAttention(hf.BigBirdPegasusDecoderAttention):
    """Transformers' decoder attention (same modules, parameter names and cache) whose cross-attention also takes
    `g` query rows per encoder row."""

    def forward(self, hidden_states, key_value_states=None, past_key_values=None, attention_mask=None, **kwargs):
        """hidden_states: (rows * g, queries, d_model); key_value_states: (rows, keys, d_model) or, for self-
        attention, None; attention_mask: None or (rows or rows * g, 1, queries or 1, keys). Returns
        (rows * g, queries, d_model) and the probabilities (rows * g, heads, queries, keys) or None."""
        rows = None if key_value_states is None else key_value_states.shape[0]
        if rows is None or hidden_states.shape[0] == rows:
            return super().forward(hidden_states, key_value_states, past_key_values, attention_mask, **kwargs)
        total, queries, width = hidden_states.shape
        if total % rows:
            raise ValueError(f"the decoder has {total} rows and the encoder output {rows}: the decoder's rows must "
                             "be the encoder's, or a whole multiple of them (each encoder row's beams in turn)")
        group = total // rows
        if attention_mask is not None:
            if attention_mask.shape[0] == total:
                attention_mask = attention_mask[::group]
            if attention_mask.shape[-2] > 1:
                attention_mask = attention_mask.repeat(1, 1, group, 1)
        grouped = hidden_states.reshape(rows, group * queries, width)
        output, probs = super().forward(grouped, key_value_states, past_key_values, attention_mask, **kwargs)
        if probs is not None:
            probs = probs.unflatten(2, (group, queries)).transpose(1, 2).flatten(0, 1)
        return output.reshape(total, queries, width), probs


def share_cross_attention(decoder: hf.BigBirdPegasusDecoder) -> None:
    """Make every cross-attention of Transformers' `decoder` a `SharedCrossAttention`, keeping its modules."""
    for layer in decoder.layers:
        layer.encoder_attn.__class__ = SharedCrossAttention


def share_encoder_rows(expand, expand_size: int, is_encoder_decoder: bool, input_ids, model_kwargs: dict):
    """Transformers' `_expand_inputs_for_generation` (`expand`) for `expand_size` sequences per input, leaving the
    encoder output and its attention mask at one row per input (`SharedCrossAttention` reads them per group)."""
    shared = {}
    if is_encoder_decoder and expand_size > 1:
        shared = {key: model_kwargs.pop(key) for key in ("encoder_outputs", "attention_mask") if key in model_kwargs}
    input_ids, model_kwargs = expand(expand_size=expand_size, is_encoder_decoder=False, input_ids=input_ids,
                                     **model_kwargs)
    return input_ids, {**model_kwargs, **shared}
