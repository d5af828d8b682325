"""Generation: greedy search, sampling and beam search over a decode step with a key/value cache.

The encoder runs once; a `DecodeStep` then turns the newest token of every row into the decoder's last hidden
state, reusing the cache (the prompt goes in whole on the first call), and its `head` into next-token logits
(greedy search takes the argmax without computing them all, see `output_head`). The search rules, and so the tokens,
are Transformers' `generate`: the same processors (see `logits_processing`), the same stopping rules,
beam search with its length penalty, `early_stopping` heuristics and output padding.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from .generation_config import GenerationConfig, ResolvedGeneration, resolve
from .logits_processing import Processor, apply, build_processors
from .output_head import OutputHead
from .outputs import ModelOutput

UNREACHABLE = -1.0e9


class DecodeStep(Protocol):
    head: OutputHead

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (rows, new) after those already seen -> the hidden state (rows, d_model) of the last one."""

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep the cached state of rows `rows` (rows,) (the beams chosen at a beam-search step)."""


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
                 decoder_input_ids: torch.Tensor | None = None, generation_config: GenerationConfig | None = None,
                 generator: torch.Generator | None = None, seed: int | None = None,
                 **settings: Any) -> torch.Tensor | GenerateOutput:
        """Generate token ids as Transformers' `generate` does.

        input_ids (batch, length) and attention_mask (batch, length): the encoder input (or, for the causal LM,
        the prompt). Settings (`max_length`, `max_new_tokens`, `min_length`, `min_new_tokens`, `num_beams`,
        `length_penalty`, `early_stopping`, `num_return_sequences`, `no_repeat_ngram_size`,
        `repetition_penalty`, `bad_words_ids`, `do_sample`, `temperature`, `top_k`, `top_p`, ...) override
        `generation_config` (default: the checkpoint's generation_config.json). Sampling draws from
        `generator`, or from a new generator seeded with `seed`, or from torch's global generator.
        Returns (batch * num_return_sequences, generated_length) token ids, or a `GenerateOutput` with
        `return_dict_in_generate=True`.
        """
        if input_ids is None:
            raise ValueError("generate() needs input_ids of shape (batch, length)")
        if seed is not None and generator is not None:
            raise ValueError("pass either seed or generator, not both")
        if seed is not None:
            generator = torch.Generator(device=input_ids.device).manual_seed(seed)
        prompt, prompt_padding = self._decoder_prompt(input_ids, attention_mask, decoder_input_ids)
        run = resolve(generation_config or self.generation_config, settings, prompt_length=prompt.shape[1],
                      max_positions=self.config.max_position_embeddings)
        expand = max(run.num_beams, run.num_return_sequences)
        if prompt_padding is not None:
            prompt_padding = prompt_padding.repeat_interleave(expand, dim=0)
        processors = build_processors(run, prompt_padding)
        step = self._decode_step(input_ids, attention_mask, expand, run.max_length)
        prompt = prompt.repeat_interleave(expand, dim=0)
        if run.num_beams > 1:
            sequences, scores, sequence_scores = beam_search(step, prompt, run, processors, generator)
        else:
            sequences, scores = greedy_or_sample(step, prompt, run, processors, generator)
            sequence_scores = None
        if not run.return_dict_in_generate:
            return sequences
        return GenerateOutput(sequences=sequences, sequences_scores=sequence_scores,
                              scores=tuple(scores) if run.output_scores else None)


def _eos_tensor(run: ResolvedGeneration, device: torch.device) -> torch.Tensor | None:
    return None if run.eos_token_id is None else torch.tensor(run.eos_token_id, device=device)


def greedy_or_sample(step: DecodeStep, prompt: torch.Tensor, run: ResolvedGeneration, processors: list[Processor],
                     generator: torch.Generator | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Greedy search, or multinomial sampling with `run.do_sample`.

    prompt: (rows, prompt_length). Returns the sequences (rows, length <= max_length), finished rows padded
    with the pad token, and the processed scores of every step (when `run.output_scores`).
    """
    eos = _eos_tensor(run, prompt.device)
    ids = prompt
    unfinished = torch.ones(ids.shape[0], dtype=torch.bool, device=ids.device)
    scores = []
    hidden = step(ids)
    while True:
        if run.do_sample or run.output_scores:
            next_scores = apply(processors, ids, step.head.logits(hidden))
            if run.output_scores:
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
        if ids.shape[1] >= run.max_length or not bool(unfinished.any()):
            return ids, scores
        hidden = step(next_tokens[:, None])


def beam_search(step: DecodeStep, prompt: torch.Tensor, run: ResolvedGeneration, processors: list[Processor],
                generator: torch.Generator | None) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """Beam search (beam sampling with `run.do_sample`) with Transformers' rules.

    prompt: (batch * num_beams, prompt_length), each input's rows adjacent. Every step extends each running
    beam by every token, keeps the best `2 * num_beams` candidates (more with several end tokens), sends
    candidates that end (end token or max_length) among the top `num_beams` to the finished set (scored
    by sum of log-probs / generated_length ** length_penalty), and continues with the best `num_beams`
    candidates that did not end. Returns the best `num_return_sequences` finished sequences per input
    (padded with pad, or end token when pad is 0), the processed scores per step, and their scores.
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
    scores = []

    cur_len = prompt_length
    hidden = step(prompt)
    while True:
        log_probs = apply(processors, running[:, :, :cur_len].reshape(batch * beams, cur_len),
                          F.log_softmax(step.head.logits(hidden), dim=-1))
        if run.output_scores:
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
