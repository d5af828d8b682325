"""Generation: greedy search, sampling and beam search over a decode step with a key/value cache.

The encoder runs once; a `DecodeStep` then turns the newest token of every row into the decoder's last hidden
state, reusing the cache (the prompt goes in whole on the first call), and its `head` into next-token logits
(greedy search takes the argmax without computing them all, see `output_head`). The search rules, and so the tokens,
are Transformers' `generate`: the same processors (see `logits_processing`), the same stopping rules,
beam search with its length penalty, `early_stopping` heuristics and output padding. A call may add its own
processors and stopping criteria, and a streamer that receives the prompt and then each step's tokens, with
Transformers' protocols.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from .generation_config import GenerationConfig, ResolvedGeneration, resolve
from .logits_processing import Processor, apply, build_processors
from .output_head import OutputHead
from .outputs import ModelOutput

UNREACHABLE = -1.0e9

# criterion(tokens so far (rows, length), the scores kept so far or None) -> a bool, or bool (rows,): finished rows.
Criterion = Callable[[torch.Tensor, tuple[torch.Tensor, ...] | None], torch.Tensor | bool]


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
    """`generate()` for models that provide `_decoder_prompt`, `_decode_step` and `generation_config`."""

    generation_config: GenerationConfig

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None, *,
                 inputs_embeds: torch.Tensor | None = None, decoder_input_ids: torch.Tensor | None = None,
                 generation_config: GenerationConfig | None = None,
                 logits_processor: Sequence[Processor] | None = None,
                 stopping_criteria: Sequence[Criterion] | None = None, streamer: Streamer | None = None,
                 generator: torch.Generator | None = None, seed: int | None = None,
                 **settings: Any) -> torch.Tensor | GenerateOutput:
        """Generate token ids as Transformers' `generate` does.

        input_ids (batch, length) and attention_mask (batch, length): the encoder input (or, for the causal LM,
        the prompt); the encoder-decoder takes inputs_embeds (batch, length, d_model) instead of input_ids too. A
        decoder-only prompt without attention_mask gets one hiding its pad tokens, as in Transformers.
        Settings (`max_length`, `max_new_tokens`, `min_length`, `min_new_tokens`, `num_beams`,
        `length_penalty`, `early_stopping`, `num_return_sequences`, `no_repeat_ngram_size`,
        `repetition_penalty`, `bad_words_ids`, `do_sample`, `temperature`, `top_k`, `top_p`, ...) override
        `generation_config` (default: the checkpoint's generation_config.json). Sampling draws from
        `generator`, or from a new generator seeded with `seed`, or from torch's global generator.
        `logits_processor`: callables processor(tokens (rows, length), scores (rows, vocab)) -> scores, applied
        after the built-in processors (before temperature, top-k and top-p); `stopping_criteria`: callables
        criterion(tokens, scores) -> a bool or a bool tensor (rows,), true for rows that are finished;
        `streamer`: receives put(prompt), put(tokens) after every step, then end() (not with beam search).
        Returns (batch * num_return_sequences, generated_length) token ids, or a `GenerateOutput` with
        `return_dict_in_generate=True`.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("generate() needs either input_ids of shape (batch, length) or inputs_embeds of shape "
                             "(batch, length, d_model): pass exactly one of them")
        if seed is not None and generator is not None:
            raise ValueError("pass either seed or generator, not both")
        custom_processors = _callables(logits_processor, "logits_processor", "processor(input_ids, scores) -> scores",
                                       "LogitsProcessorList")
        criteria = _callables(stopping_criteria, "stopping_criteria", "criterion(input_ids, scores) -> bool tensor",
                              "StoppingCriteriaList")
        base = generation_config or self.generation_config
        call_config = base.merged(**settings)
        if attention_mask is None and not getattr(self.config, "is_encoder_decoder", False):
            attention_mask = inferred_attention_mask(input_ids, call_config)
        prompt, prompt_padding = self._decoder_prompt(input_ids, inputs_embeds, attention_mask, decoder_input_ids,
                                                      call_config)
        run = resolve(base, settings, prompt_length=prompt.shape[1], max_positions=self.config.max_position_embeddings)
        _check_streamer(streamer, run)
        if seed is not None:
            generator = torch.Generator(device=prompt.device).manual_seed(seed)
        expand = max(run.num_beams, run.num_return_sequences)
        if prompt_padding is not None:
            prompt_padding = prompt_padding.repeat_interleave(expand, dim=0)
        processors = build_processors(run, prompt_padding, custom_processors)
        prompt = prompt.repeat_interleave(expand, dim=0)
        if streamer is not None:
            streamer.put(prompt.cpu())
        step = self._decode_step(input_ids, inputs_embeds, attention_mask, expand, run.max_length)
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


def _finished_by(criteria: Sequence[Criterion], ids: torch.Tensor,
                 scores: list[torch.Tensor] | None) -> torch.Tensor | None:
    """(rows,) bool: the rows of ids (rows, length) that some caller's criterion finishes; None without criteria.

    Each criterion gets the scores kept for the output (None unless they are returned), as in Transformers.
    """
    if not criteria:
        return None
    kept = None if scores is None else tuple(scores)
    finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    for criterion in criteria:
        verdict = torch.as_tensor(criterion(ids, kept), device=ids.device)
        if verdict.dtype != torch.bool or verdict.dim() > 1 or verdict.numel() not in (1, ids.shape[0]):
            raise ValueError(f"the stopping criterion {criterion!r} returned {verdict!r}: it must return a bool or "
                             f"a bool tensor of shape ({ids.shape[0]},), one per row")
        finished = finished | verdict
    return finished


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


def causal_prompt_padding(input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None,
                          attention_mask: torch.Tensor | None,
                          decoder_input_ids: torch.Tensor | None) -> torch.Tensor | None:
    """Check the prompt of a decoder-only model, input_ids (batch, length); return the number of left-padding tokens
    of each row (batch,) when there is an attention_mask (batch, length), else None."""
    if inputs_embeds is not None:
        raise ValueError("a decoder-only model's generate() takes its prompt as input_ids, not inputs_embeds")
    if decoder_input_ids is not None:
        raise ValueError("a decoder-only model has no decoder_input_ids: its prompt is input_ids")
    if input_ids.dim() != 2 or input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        raise ValueError(f"the prompt must be a non-empty batch of shape (batch, length), got {tuple(input_ids.shape)}")
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_ids.shape):
        raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)} but the prompt has "
                         f"{tuple(input_ids.shape)}")
    return None if attention_mask is None else (attention_mask != 0).int().argmax(dim=1)


def _eos_tensor(run: ResolvedGeneration, device: torch.device) -> torch.Tensor | None:
    return None if run.eos_token_id is None else torch.tensor(run.eos_token_id, device=device)


def greedy_or_sample(step: DecodeStep, prompt: torch.Tensor, run: ResolvedGeneration, processors: list[Processor],
                     generator: torch.Generator | None, *, criteria: Sequence[Criterion] = (),
                     streamer: Streamer | None = None,
                     screened: bool = True) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """Greedy search, or multinomial sampling with `run.do_sample`.

    prompt: (rows, prompt_length). A row is finished at an end token or when a criterion says so; finished rows
    go on with the pad token when there are end tokens (with real tokens otherwise, as in Transformers), and the
    search stops when every row is finished or at max_length. Each step's tokens (rows,) go to the `streamer`.
    `screened`: greedy search may take its argmax through `OutputHead.greedy_tokens`, valid only when every
    processor treats each logit on its own, never lowering it when it rises (the built-in ones do; a caller's
    need not). Returns the sequences (rows, length <= max_length) and, when they are returned
    (`output_scores` with `return_dict_in_generate`), the processed scores of every step.
    """
    eos = _eos_tensor(run, prompt.device)
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
        if eos is not None:
            next_tokens = torch.where(unfinished, next_tokens, run.pad_token_id)
            unfinished &= ~torch.isin(next_tokens, eos)
        ids = torch.cat([ids, next_tokens[:, None]], dim=1)
        finished = _finished_by(criteria, ids, scores)
        if finished is not None:
            unfinished &= ~finished
        if streamer is not None:
            streamer.put(next_tokens.cpu())
        if ids.shape[1] >= run.max_length or not bool(unfinished.any()):
            return ids, scores
        hidden = step(next_tokens[:, None])


def beam_search(step: DecodeStep, prompt: torch.Tensor, run: ResolvedGeneration, processors: list[Processor],
                generator: torch.Generator | None, *,
                criteria: Sequence[Criterion] = ()) -> tuple[torch.Tensor, list[torch.Tensor] | None, torch.Tensor]:
    """Beam search (beam sampling with `run.do_sample`) with Transformers' rules.

    prompt: (batch * num_beams, prompt_length), each input's rows adjacent. Every step extends each running
    beam by every token, keeps the best `2 * num_beams` candidates (more with several end tokens), sends
    candidates that end (end token, max_length, or a criterion says so) among the top `num_beams` to the
    finished set (scored by sum of log-probs / generated_length ** length_penalty), and continues with the best
    `num_beams` candidates that did not end. Returns the best `num_return_sequences` finished sequences per input
    (padded with pad, or end token when pad is 0), the processed scores per step when they are returned
    (`output_scores` with `return_dict_in_generate`), and the sequences' scores.
    """
    beams, prompt_length, max_length = run.num_beams, prompt.shape[1], run.max_length
    batch = prompt.shape[0] // beams
    device = prompt.device
    eos = _eos_tensor(run, device)
    keep = max(2, 1 + (len(eos) if eos is not None else 0)) * beams
    fill = (run.pad_token_id or run.eos_token_id[0]) if eos is not None else -1

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
        ends = torch.full_like(among_top[None].expand(batch, keep), cur_len + 1 >= max_length)
        if eos is not None:
            ends = ends | torch.isin(candidates[:, :, cur_len], eos)
        stopped = _finished_by(criteria, candidates[:, :, :cur_len + 1].reshape(batch * keep, cur_len + 1), scores)
        if stopped is not None:
            ends = ends | stopped.view(batch, keep)

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
