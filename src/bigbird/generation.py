"""Generation: greedy search, sampling and beam search over a decode step with a key/value cache.

The encoder runs once (or a call passes its output); a `DecodeStep` then turns the newest token of every row into
the decoder's last hidden state, reusing the cache (the prompt goes in whole on the first call, as embeddings when
given so), and its `head` into next-token logits (greedy search takes the argmax without computing them all, see
`output_head`). The search rules, and so the tokens, are Transformers' `generate`: the same processors (see
`logits_processing`), the same stopping criteria, beam search with its length penalty, `early_stopping` heuristics
and output padding. A call may add its own processors and stopping criteria (one of a kind built here takes the
built-in one's place, as in Transformers), and a streamer that receives the prompt and then each step's tokens,
with Transformers' protocols.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from .generation_config import GenerationConfig, ResolvedGeneration, resolve
from .logits_processing import Processor, apply, build_processors, merged_with_custom, transformers_kind
from .output_head import OutputHead
from .outputs import ModelOutput

UNREACHABLE = -1.0e9

# criterion(tokens so far (rows, length), the scores kept so far or None) -> a bool, or bool (rows,): finished rows.
Criterion = Callable[[torch.Tensor, tuple[torch.Tensor, ...] | None], torch.Tensor | bool]


@dataclasses.dataclass(frozen=True)
class GenerationInputs:
    """The inputs of one `generate()` call, which the model's `_decoder_prompt` checks.

    input_ids (batch, length) and attention_mask (batch, length): the encoder input, or a decoder-only model's
    prompt; inputs_embeds (batch, length, hidden): the same as embeddings (a decoder-only prompt may come as both);
    decoder_input_ids (batch, decoder_length): the encoder-decoder's decoder prompt; encoder_hidden (batch,
    source_length, d_model): a precomputed encoder output, which the encoder-decoder uses instead of running its
    encoder.
    """

    input_ids: torch.Tensor | None
    attention_mask: torch.Tensor | None
    inputs_embeds: torch.Tensor | None = None
    decoder_input_ids: torch.Tensor | None = None
    encoder_hidden: torch.Tensor | None = None

    def repeated_rows(self, group: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """attention_mask and inputs_embeds with every row repeated `group` times (its beams or returned
        sequences), for a decoder-only model's decode step."""
        return tuple(None if x is None else x.repeat_interleave(group, dim=0)
                     for x in (self.attention_mask, self.inputs_embeds))


class DecodeStep(Protocol):
    head: OutputHead

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (rows, new) after those already seen -> the hidden state (rows, d_model) of the last one."""

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep the cached state of rows `rows` (rows,) (the beams chosen at a beam-search step)."""


class Streamer(Protocol):
    """Transformers' streamer protocol (`TextStreamer`, `TextIteratorStreamer`)."""

    def put(self, value: torch.Tensor) -> None:
        """The prompt (rows, prompt_length) first, then the tokens (rows,) of every step, on the CPU."""

    def end(self) -> None:
        """Generation is over."""


@dataclasses.dataclass
class GenerateOutput(ModelOutput):
    """What `generate(..., return_dict_in_generate=True)` returns (Transformers' attribute names).

    `sequences` (rows, length); `scores` one (rows, vocab) tensor of processed scores per step when
    `output_scores`; `sequences_scores` (rows,) the length-normalised beam scores (beam search).
    """

    sequences: torch.Tensor | None = None
    sequences_scores: torch.Tensor | None = None
    scores: tuple[torch.Tensor, ...] | None = None


class GenerationMixin:
    """`generate()` for models that provide `_decoder_prompt`, `_decode_step` and `generation_config`.

    _decoder_prompt(inputs: GenerationInputs, call settings) checks the inputs and returns the sequences' prompt
    tokens (batch, prompt_length) and, for a decoder-only model with an attention mask, the left padding of each
    row (batch,); _decode_step(inputs, rows per input, decoder positions to hold) returns the `DecodeStep`.
    """

    generation_config: GenerationConfig

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None, *,
                 inputs_embeds: torch.Tensor | None = None, decoder_input_ids: torch.Tensor | None = None,
                 encoder_outputs: Any = None, generation_config: GenerationConfig | None = None,
                 logits_processor: Sequence[Processor] | None = None,
                 stopping_criteria: Sequence[Criterion] | None = None, streamer: Streamer | None = None,
                 generator: torch.Generator | None = None, seed: int | None = None,
                 **settings: Any) -> torch.Tensor | GenerateOutput:
        """Generate token ids as Transformers' `generate` does.

        input_ids (batch, length) and attention_mask (batch, length): the encoder input (or, for a causal LM,
        the prompt). inputs_embeds (batch, length, hidden) may replace input_ids: the encoder-decoder encodes them;
        a causal LM reads its prompt from them (input_ids, if given too, must be their tokens) and, given them alone,
        returns only the new tokens. The encoder-decoder also takes `encoder_outputs`, a precomputed encoder output
        (with `last_hidden_state` (batch, source_length, d_model), or a tuple that starts with it), instead of
        running its encoder; attention_mask then masks it. A decoder-only prompt without attention_mask gets one
        hiding its pad tokens, as in Transformers.
        Settings (`max_length`, `max_new_tokens`, `min_length`, `min_new_tokens`, `num_beams`,
        `length_penalty`, `early_stopping`, `num_return_sequences`, `no_repeat_ngram_size`,
        `repetition_penalty`, `bad_words_ids`, `do_sample`, `temperature`, `top_k`, `top_p`, ...) override
        `generation_config` (default: the checkpoint's generation_config.json). Sampling draws from
        `generator`, or from a new generator seeded with `seed`, or from torch's global generator.
        `logits_processor`: callables processor(tokens (rows, length), scores (rows, vocab)) -> scores, applied
        after the built-in processors (before temperature, top-k and top-p); `stopping_criteria`: callables
        criterion(tokens, scores) -> a bool or a bool tensor (rows,), true for rows that are finished. As in
        Transformers, an instance of one of Transformers' classes that generate() builds from the settings too
        (`RepetitionPenaltyLogitsProcessor`, `MaxLengthCriteria`, ...) takes the built-in one's place, with a warning.
        `streamer`: receives put(prompt), put(tokens) after every step, then end() (not with beam search).
        Returns (batch * num_return_sequences, generated_length) token ids, or a `GenerateOutput` with
        `return_dict_in_generate=True`.
        """
        encoder_decoder = bool(getattr(self.config, "is_encoder_decoder", False))
        if input_ids is None and inputs_embeds is None and encoder_outputs is None:
            needed = ("the encoder input as input_ids of shape (batch, length) or inputs_embeds of shape (batch, "
                      "length, d_model), or a precomputed encoder_outputs: pass exactly one of them" if encoder_decoder
                      else "the prompt as input_ids of shape (batch, length), inputs_embeds of shape (batch, length, "
                      "hidden_size), or both")
            raise ValueError(f"generate() needs {needed}")
        if encoder_outputs is not None and not encoder_decoder:
            raise ValueError(f"{type(self).__name__} is decoder-only: it has no encoder whose output encoder_outputs "
                             "could stand for; pass the prompt as input_ids or inputs_embeds")
        if seed is not None and generator is not None:
            raise ValueError("pass either seed or generator, not both")
        custom_processors = _callables(logits_processor, "logits_processor", "processor(input_ids, scores) -> scores",
                                       "LogitsProcessorList")
        custom_criteria = _callables(stopping_criteria, "stopping_criteria",
                                     "criterion(input_ids, scores) -> bool tensor", "StoppingCriteriaList")
        base = generation_config or self.generation_config
        call_config = base.merged(**settings)
        if attention_mask is None and not encoder_decoder:
            attention_mask = inferred_attention_mask(input_ids, call_config)
        encoder_hidden = None if encoder_outputs is None else encoder_last_hidden_state(encoder_outputs)
        inputs = GenerationInputs(input_ids, attention_mask, inputs_embeds, decoder_input_ids, encoder_hidden)
        prompt, prompt_padding = self._decoder_prompt(inputs, call_config)
        # A decoder-only prompt given as embeddings alone takes decoder positions that the sequences do not show.
        embedded = 0 if encoder_decoder or inputs_embeds is None else inputs_embeds.shape[1] - prompt.shape[1]
        positions = self.config.max_position_embeddings
        run = resolve(base, settings, prompt_length=prompt.shape[1], max_positions=positions,
                      embedded_prompt=embedded)
        criteria = build_criteria(run, custom_criteria, prompt.device)
        _check_criteria(criteria, run, positions - embedded)
        _check_streamer(streamer, run)
        _warn_unseen_prompt(run)
        if seed is not None:
            generator = torch.Generator(device=prompt.device).manual_seed(seed)
        expand = max(run.num_beams, run.num_return_sequences)
        if prompt_padding is not None:
            prompt_padding = prompt_padding.repeat_interleave(expand, dim=0)
        processors = build_processors(run, prompt_padding, custom_processors)
        prompt = prompt.repeat_interleave(expand, dim=0)
        if streamer is not None:
            streamer.put(prompt.cpu())
        step = self._decode_step(inputs, expand, embedded + run.max_length)
        if run.num_beams > 1:
            sequences, scores, sequence_scores = beam_search(step, prompt, run, processors, generator,
                                                             criteria=criteria)
        else:
            sequences, scores = greedy_or_sample(step, prompt, run, processors, generator, criteria=criteria,
                                                 streamer=streamer, screened=not custom_processors)
            sequence_scores = None
        if streamer is not None:
            streamer.end()
        if not run.return_dict_in_generate:
            return sequences
        return GenerateOutput(sequences=sequences, sequences_scores=sequence_scores,
                              scores=None if scores is None else tuple(scores))


def _callables(value: Sequence[Callable] | None, name: str, signature: str, transformers_list: str) -> list[Callable]:
    """A call's `logits_processor` or `stopping_criteria` as a list, refused unless a list or tuple of callables."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(callable(item) for item in value):
        raise TypeError(f"{name} must be a list of callables {signature} (such as Transformers' "
                        f"{transformers_list}([...])), got {value!r}: wrap a single one in a list")
    return list(value)


def _check_streamer(streamer: Streamer | None, run: ResolvedGeneration) -> None:
    """Refuse a streamer without put() and end(), and with beam search (Transformers refuses it there too)."""
    if streamer is None:
        return
    if not (callable(getattr(streamer, "put", None)) and callable(getattr(streamer, "end", None))):
        raise TypeError(f"streamer must have put(token_ids) and end() methods, like Transformers' TextStreamer; "
                        f"got {streamer!r}")
    if run.num_beams > 1:
        raise ValueError(f"a streamer cannot be used with beam search (num_beams={run.num_beams}): set num_beams=1 "
                         "or generate without the streamer")


class MaxLength:
    """Finishes every row at `max_length` tokens (Transformers' MaxLengthCriteria)."""

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length

    def __call__(self, ids: torch.Tensor, scores: tuple[torch.Tensor, ...] | None) -> bool:
        return ids.shape[1] >= self.max_length


class EndTokens:
    """Finishes the rows of ids (rows, length) that end with one of the end tokens `eos_token_id` (n,)
    (Transformers' EosTokenCriteria; as there, the attribute's presence makes finished rows go on with pad)."""

    def __init__(self, eos_token_id: torch.Tensor) -> None:
        self.eos_token_id = eos_token_id

    def __call__(self, ids: torch.Tensor, scores: tuple[torch.Tensor, ...] | None) -> torch.Tensor:
        return torch.isin(ids[:, -1], self.eos_token_id)


def build_criteria(run: ResolvedGeneration, custom: Sequence[Criterion], device: torch.device) -> list[Criterion]:
    """The stopping criteria of a call: max_length, the end tokens (if any), then the caller's `custom` ones, one of
    Transformers' MaxLengthCriteria or EosTokenCriteria taking the built-in one's place as in Transformers."""
    built: list[tuple[str, Criterion]] = [("MaxLengthCriteria", MaxLength(run.max_length))]
    if run.eos_token_id is not None:
        built.append(("EosTokenCriteria", EndTokens(torch.tensor(run.eos_token_id, device=device))))
    return merged_with_custom(built, custom, "stopping criterion")


def _pads_finished_rows(criteria: Sequence[Criterion]) -> bool:
    """Transformers' rule: finished rows go on with the pad token when a criterion has end tokens."""
    return any(hasattr(criterion, "eos_token_id") for criterion in criteria)


def _check_criteria(criteria: Sequence[Criterion], run: ResolvedGeneration, positions: int) -> None:
    """Refuse, before compute, criteria the search cannot follow: a length limit (MaxLengthCriteria) beyond the
    decoder's `positions` left for the sequences or, in beam search, beyond max_length (the beams' room), and
    finished rows to pad without a pad token."""
    limit = min(criterion.max_length for criterion in criteria
                if isinstance(criterion, MaxLength) or transformers_kind(criterion) == "MaxLengthCriteria")
    if limit > positions:
        raise ValueError(f"MaxLengthCriteria(max_length={limit}) goes beyond the decoder's {positions} positions "
                         "left for the sequences (max_position_embeddings): lower its max_length")
    if run.num_beams > 1 and limit > run.max_length:
        raise ValueError(f"beam search keeps max_length={run.max_length} tokens per beam, fewer than "
                         f"MaxLengthCriteria(max_length={limit}) needs: pass max_length={limit} instead")
    if run.pad_token_id is None and _pads_finished_rows(criteria):
        raise ValueError("a stopping criterion with end tokens (eos_token_id) finishes rows, which then go on with "
                         "the pad token, but there is no pad_token_id: pass pad_token_id")


def _warn_unseen_prompt(run: ResolvedGeneration) -> None:
    """Warn, as Transformers does, that the penalties cannot see a prompt given as embeddings alone."""
    if run.prompt_length > 0:
        return
    for name, active in (("repetition_penalty", run.repetition_penalty != 1.0),
                         ("no_repeat_ngram_size", run.no_repeat_ngram_size > 0)):
        if active:
            warnings.warn(f"{name} with inputs_embeds and without input_ids applies to the new tokens only, not to "
                          "the prompt: pass the prompt's input_ids too for it to count", UserWarning)


def _finished_by(criteria: Sequence[Criterion], ids: torch.Tensor,
                 scores: list[torch.Tensor] | None) -> torch.Tensor | bool:
    """The rows of ids (rows, length) that some criterion finishes: a bool tensor (rows,), or a bool for all rows.

    Each criterion gets the scores kept for the output (None unless they are returned), as in Transformers.
    """
    kept = None if scores is None else tuple(scores)
    finished: torch.Tensor | bool = False
    for criterion in criteria:
        verdict = criterion(ids, kept)
        if not isinstance(verdict, bool):
            verdict = torch.as_tensor(verdict, device=ids.device)
            if verdict.dtype != torch.bool or verdict.dim() > 1 or verdict.numel() not in (1, ids.shape[0]):
                raise ValueError(f"the stopping criterion {criterion!r} returned {verdict!r}: it must return a bool "
                                 f"or a bool tensor of shape ({ids.shape[0]},), one per row")
        finished = finished | verdict
    return finished


def encoder_last_hidden_state(encoder_outputs: Any) -> torch.Tensor:
    """The last hidden state (batch, source_length, d_model) of a precomputed encoder output: its
    `last_hidden_state` (a BaseModelOutput, ours or Transformers'), or the first item of a tuple or list."""
    hidden = getattr(encoder_outputs, "last_hidden_state", None)
    if hidden is None and isinstance(encoder_outputs, (tuple, list)) and encoder_outputs:
        hidden = encoder_outputs[0]
    if not isinstance(hidden, torch.Tensor):
        raise ValueError(f"encoder_outputs must be an encoder output with last_hidden_state (batch, source_length, "
                         f"d_model), or a tuple starting with that tensor; got {type(encoder_outputs).__name__}: pass "
                         "what model.get_encoder()(input_ids, attention_mask) returns")
    return hidden


def inferred_attention_mask(input_ids: torch.Tensor | None, settings: GenerationConfig) -> torch.Tensor | None:
    """For a decoder-only prompt given without attention_mask: (batch, length) 0 at the pad tokens of input_ids, as
    Transformers infers it when the pad token is set, occurs in the prompt and is not an end token; else None."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
        return None
    eos = settings.eos_token_id
    ends = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    pad = settings.pad_token_id
    if pad is None or pad in ends or not bool((input_ids == pad).any()):
        return None
    return (input_ids != pad).long()


def check_embeddings(tensor: torch.Tensor, name: str, shape: str, width: int, dtype: torch.dtype) -> None:
    """Raise a ValueError unless `tensor`, the argument called `name`, is 3-D with last dimension `width` (the
    message spells the expected shape as `shape`) and of the model's `dtype`."""
    if tensor.dim() != 3 or tensor.shape[-1] != width:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(tensor.shape)}")
    if tensor.dtype != dtype:
        raise ValueError(f"{name} has dtype {tensor.dtype} but the model's weights are {dtype}: convert it with "
                         f"{name}.to({dtype})")


def causal_prompt(inputs: GenerationInputs, hidden_size: int,
                  dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Check the prompt of a decoder-only model: input_ids (batch, length), inputs_embeds (batch, length,
    hidden_size) of the model's `dtype`, or both, with an optional attention_mask (batch, length).

    Returns the sequences' prompt tokens: input_ids, or (batch, 0) for embeddings alone, whose sequences hold only
    the new tokens; and the number of left-padding positions of each row (batch,) when there is an attention_mask,
    else None (the repetition penalty skips that many tokens of the sequences: with embeddings alone, new ones,
    as in Transformers).
    """
    ids, embeds, mask = inputs.input_ids, inputs.inputs_embeds, inputs.attention_mask
    if inputs.decoder_input_ids is not None:
        raise ValueError("a decoder-only model has no decoder_input_ids: its prompt is input_ids")
    if embeds is not None:
        check_embeddings(embeds, "inputs_embeds", f"(batch, length, {hidden_size})", hidden_size, dtype)
        if ids is not None and tuple(ids.shape) != tuple(embeds.shape[:2]):
            raise ValueError(f"input_ids has shape {tuple(ids.shape)} but inputs_embeds cover (batch, length) = "
                             f"{tuple(embeds.shape[:2])}: pass the tokens of the embedded prompt, or inputs_embeds "
                             "alone")
    shape = tuple(embeds.shape[:2]) if embeds is not None else tuple(ids.shape)
    if len(shape) != 2 or 0 in shape:
        raise ValueError(f"the prompt must be a non-empty batch of shape (batch, length), got {shape}")
    if mask is not None and tuple(mask.shape) != shape:
        raise ValueError(f"attention_mask has shape {tuple(mask.shape)} but the prompt has {shape}")
    if ids is None:
        ids = torch.empty((shape[0], 0), dtype=torch.long, device=embeds.device)
    return ids, None if mask is None else (mask != 0).int().argmax(dim=1)


def greedy_or_sample(step: DecodeStep, prompt: torch.Tensor, run: ResolvedGeneration, processors: list[Processor],
                     generator: torch.Generator | None, *, criteria: Sequence[Criterion],
                     streamer: Streamer | None = None,
                     screened: bool = True) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """Greedy search, or multinomial sampling with `run.do_sample`.

    prompt: (rows, prompt_length). A row is finished when a criterion (max_length, end tokens, the caller's: see
    `build_criteria`) says so; finished rows go on with the pad token when a criterion has end tokens (with real
    tokens otherwise, as in Transformers), and the search stops when every row is finished. Each step's tokens
    (rows,) go to the `streamer`.
    `screened`: greedy search may take its argmax through `OutputHead.greedy_tokens`, valid only when every
    processor treats each logit on its own, never lowering it when it rises (the built-in ones do; a caller's
    need not). Returns the sequences (rows, length <= the length limit) and, when they are returned
    (`output_scores` with `return_dict_in_generate`), the processed scores of every step.
    """
    pad_finished = _pads_finished_rows(criteria)
    ids = prompt
    unfinished = torch.ones(ids.shape[0], dtype=torch.bool, device=ids.device)
    scores = [] if run.output_scores and run.return_dict_in_generate else None
    hidden = step(ids)
    while True:
        if run.do_sample or scores is not None or not screened:
            next_scores = apply(processors, ids, step.head.logits(hidden))
            if scores is not None:
                scores.append(next_scores)
            if run.do_sample:
                next_tokens = torch.multinomial(next_scores.softmax(dim=-1), 1, generator=generator).squeeze(1)
            else:
                next_tokens = next_scores.argmax(dim=-1)
        else:
            next_tokens = step.head.greedy_tokens(hidden, functools.partial(apply, processors, ids))
        if pad_finished:
            next_tokens = torch.where(unfinished, next_tokens, run.pad_token_id)
        ids = torch.cat([ids, next_tokens[:, None]], dim=1)
        finished = _finished_by(criteria, ids, scores)
        if isinstance(finished, torch.Tensor):
            unfinished &= ~finished
        if streamer is not None:
            streamer.put(next_tokens.cpu())
        if finished is True or not bool(unfinished.any()):
            return ids, scores
        hidden = step(next_tokens[:, None])


def beam_search(step: DecodeStep, prompt: torch.Tensor, run: ResolvedGeneration, processors: list[Processor],
                generator: torch.Generator | None, *,
                criteria: Sequence[Criterion]) -> tuple[torch.Tensor, list[torch.Tensor] | None, torch.Tensor]:
    """Beam search (beam sampling with `run.do_sample`) with Transformers' rules.

    prompt: (batch * num_beams, prompt_length), each input's rows adjacent. Every step extends each running
    beam by every token, keeps the best `2 * num_beams` candidates (more with several end tokens), sends
    candidates that end (a criterion, such as max_length or the end tokens, says so) among the top `num_beams` to the
    finished set (scored by sum of log-probs / generated_length ** length_penalty), and continues with the best
    `num_beams` candidates that did not end. Returns the best `num_return_sequences` finished sequences per input
    (padded with pad, or end token when pad is 0), the processed scores per step when they are returned
    (`output_scores` with `return_dict_in_generate`), and the sequences' scores.
    """
    beams, prompt_length, max_length = run.num_beams, prompt.shape[1], run.max_length
    batch = prompt.shape[0] // beams
    device = prompt.device
    eos = run.eos_token_id
    keep = max(2, 1 + (len(eos) if eos is not None else 0)) * beams
    fill = (run.pad_token_id or eos[0]) if eos is not None else -1

    running = torch.full((batch, beams, max_length), fill, dtype=torch.long, device=device)
    running[:, :, :prompt_length] = prompt.view(batch, beams, prompt_length)
    running_scores = torch.full((batch, beams), UNREACHABLE, device=device)
    running_scores[:, 0] = 0.0
    finished = running.clone()
    finished_scores = torch.full((batch, beams), UNREACHABLE, device=device)
    finished_flags = torch.zeros((batch, beams), dtype=torch.bool, device=device)
    finished_lengths = torch.zeros((batch, beams), dtype=torch.long, device=device)
    improvable = torch.ones((batch, 1), dtype=torch.bool, device=device)
    among_top = torch.arange(keep, device=device) < beams
    row_offset = torch.arange(batch, device=device)[:, None] * beams
    scores = [] if run.output_scores and run.return_dict_in_generate else None

    cur_len = prompt_length
    hidden = step(prompt)
    while True:
        log_probs = apply(processors, running[:, :, :cur_len].reshape(batch * beams, cur_len),
                          F.log_softmax(step.head.logits(hidden), dim=-1))
        if scores is not None:
            scores.append(log_probs)
        vocab = log_probs.shape[-1]
        totals = (log_probs.view(batch, beams, vocab) + running_scores[:, :, None]).view(batch, beams * vocab)
        if run.do_sample:
            choice = torch.multinomial(totals.softmax(dim=-1), keep, generator=generator)
            top = totals.gather(1, choice)
        else:
            top, choice = torch.topk(totals, keep)
        source = choice // vocab
        candidates = running.gather(1, source[:, :, None].expand(batch, keep, max_length)).clone()
        candidates[:, :, cur_len] = choice % vocab
        stopped = _finished_by(criteria, candidates[:, :, :cur_len + 1].reshape(batch * keep, cur_len + 1), scores)
        if isinstance(stopped, torch.Tensor):
            ends = stopped.expand(batch * keep).view(batch, keep)
        else:
            ends = torch.full_like(among_top[None].expand(batch, keep), stopped)

        # Continue with the best candidates that did not end.
        open_scores = top + ends.float() * UNREACHABLE
        best = torch.topk(open_scores, beams).indices
        running = candidates.gather(1, best[:, :, None].expand(batch, beams, max_length))
        running_scores = open_scores.gather(1, best)
        step.reorder((source.gather(1, best) + row_offset).flatten())

        # Offer the candidates that ended to the finished set.
        normalized = top / (cur_len + 1 - prompt_length) ** run.length_penalty
        full = finished_flags.all(dim=1, keepdim=True) & (run.early_stopping is True)
        rejected = full | ~improvable | ~(ends & among_top)
        normalized = normalized + rejected.float() * UNREACHABLE
        pool_scores = torch.cat([finished_scores, normalized], dim=1)
        chosen = torch.topk(pool_scores, beams).indices
        finished = torch.cat([finished, candidates], dim=1).gather(1, chosen[:, :, None].expand(batch, beams,
                                                                                                max_length))
        finished_scores = pool_scores.gather(1, chosen)
        finished_flags = torch.cat([finished_flags, ends & among_top], dim=1).gather(1, chosen)
        new_lengths = torch.full((batch, keep), cur_len + 1 - prompt_length, dtype=torch.long, device=device)
        finished_lengths = torch.cat([finished_lengths, new_lengths], dim=1).gather(1, chosen)

        cur_len += 1
        improvable = improvable & _may_improve(running_scores, finished_scores, finished_flags, cur_len, run)
        stop = (not bool(improvable.any()) or bool(ends.all())
                or (run.early_stopping is True and bool(finished_flags.all())))
        if stop:
            break
        hidden = step(running[:, :, cur_len - 1].reshape(batch * beams, 1))

    returned = run.num_return_sequences
    length = prompt_length + int(finished_lengths[:, :returned].max())
    sequences = finished[:, :returned, :length].reshape(batch * returned, length)
    return sequences, scores, finished_scores[:, :returned].reshape(-1)


def _may_improve(running_scores: torch.Tensor, finished_scores: torch.Tensor, finished_flags: torch.Tensor,
                 cur_len: int, run: ResolvedGeneration) -> torch.Tensor:
    """(batch, 1): whether the best running beam could still beat the worst finished one (Transformers' heuristic:
    at the current length, or at max_length with early_stopping="never" and a positive length penalty)."""
    if run.early_stopping == "never" and run.length_penalty > 0.0:
        generated = run.max_length - run.prompt_length
    else:
        generated = cur_len - run.prompt_length
    best_running = running_scores[:, :1] / generated ** run.length_penalty
    worst_finished = torch.where(finished_flags, finished_scores.min(dim=1, keepdim=True).values, UNREACHABLE)
    return (best_running > worst_finished).any(dim=-1, keepdim=True)
