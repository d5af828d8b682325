"""The next-token projection of generation, and greedy search's argmax without the whole float32 product.

A decode step ends with logits = hidden @ weight.T + bias over the vocabulary. For BigBird-Pegasus that is a
96,103 x 1,024 float32 matrix, 393 MB read from memory for every generated token: more than the decoder
layers read. Greedy search only needs argmax_v P(logits)_v, P being its logit processors, so
`OutputHead.greedy_tokens` reads a float16 copy of the matrix instead (half the bytes), bounds how far each
approximate logit can be from its float32 value, and computes float32 logits only for the tokens whose upper
bound reaches the best lower bound. The token it returns is the float32 argmax, not an approximation of it:

- the bound is rigorous (below), and
- every processor of greedy search treats each logit on its own and never lowers it when it rises: P(s)_v
  depends on s_v alone and is non-decreasing in it (bans to -inf, the repetition penalty, forced tokens).
  So a token whose processed upper bound is below another token's processed lower bound cannot win.

The bound for vocabulary row w, hidden state h (d values), ^ meaning rounded to float16 and u = 2^-24: the
float16 product accumulates in float32, so
    |w.h - fl(w^.h^)| <= |w - w^| |h| + |w^| |h - h^| + g |w^| |h^|,    g = d u / (1 - d u)
(Cauchy-Schwarz, and the classical bound on a float32 dot product); add the product's rounding to float16
(2^-11 relative) and the float32 rounding of the reference logit itself (g |w| |h|, plus the bias addition).
The row norms are computed once per version of the weight.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# A float16 matrix-vector product costs about 8 ms per row here (it converts on the fly), a float32 product of a
# few rows about 20 ms whatever the row count: screening pays for one or two rows (greedy search, batch 1 or 2).
SCREENED_ROWS = 2
# When more than this share of the vocabulary needs exact logits, computing all of them is as cheap.
FALLBACK_SHARE = 1 / 16
ROWS_PER_CHUNK = 8192


class HalfCopy:
    """A float16 copy of a (vocab, d) float32 weight and the row norms the bound needs (each (vocab,))."""

    def __init__(self, weight: torch.Tensor) -> None:
        self.weight = weight.to(torch.float16)
        residual, half, full = [], [], []
        for start in range(0, weight.shape[0], ROWS_PER_CHUNK):
            rows = weight[start:start + ROWS_PER_CHUNK]
            rounded = self.weight[start:start + ROWS_PER_CHUNK].float()
            residual.append((rows - rounded).norm(dim=1))
            half.append(rounded.norm(dim=1))
            full.append(rows.norm(dim=1))
        self.residual_norm = torch.cat(residual)
        self.half_norm = torch.cat(half)
        self.norm = torch.cat(full)
        self.finite = bool(torch.isfinite(self.half_norm).all())  # float16 values are at most 65504: no overflow


class HalfCopyCache:
    """Keeps the `HalfCopy` of one weight, rebuilt when the weight is replaced, moved or changed in place.

    The copy is derived data: pickling (`torch.save(model)`, `copy.deepcopy`) leaves it out.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._copy: HalfCopy | None = None

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def get(self, weight: torch.Tensor) -> HalfCopy | None:
        """The copy of `weight`, or None when screening cannot use one (not float32 on the CPU, or values beyond
        float16's range, or float16 products that PyTorch is allowed to accumulate in float16)."""
        if weight.dtype != torch.float32 or weight.device.type != "cpu" or _fp16_accumulation_allowed():
            self.__init__()
            return None
        key = (weight.data_ptr(), weight._version, tuple(weight.shape))
        if key != self._key:
            self._key, self._copy = key, HalfCopy(weight.detach())
        return self._copy if self._copy.finite else None


def _fp16_accumulation_allowed() -> bool:
    check = getattr(torch._C, "_get_cpu_allow_fp16_reduced_precision_reduction", None)
    return True if check is None else bool(check())


class OutputHead:
    """logits = hidden @ weight.T + bias for a decode step's last positions.

    weight (vocab, d); bias (vocab,) or None; copies: where greedy search finds the weight's `HalfCopy` (built on
    first use, kept by the model).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, copies: HalfCopyCache) -> None:
        self.weight = weight
        self.bias = bias
        self.copies = copies

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (rows, d) -> float32 logits (rows, vocab)."""
        # weight @ hidden^T: with a few rows (beams), MKL's kernel for this operand order is about twice as fast
        # as F.linear's (measured in benchmarks/bench_generate.py's setting).
        logits = (self.weight @ hidden.T).T
        if self.bias is not None:
            logits = logits + self.bias
        return logits.float()

    def greedy_tokens(self, hidden: torch.Tensor, process: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """argmax over the vocabulary of process(logits(hidden)): hidden (rows, d) -> token ids (rows,).

        `process` must treat each logit on its own, non-decreasing in it (greedy search's processors do).
        """
        half = self.copies.get(self.weight) if hidden.shape[0] <= SCREENED_ROWS else None
        if half is not None:
            tokens = self._screened_tokens(hidden, process, half)
            if tokens is not None:
                return tokens
        return process(self.logits(hidden)).argmax(dim=-1)

    def _screened_tokens(self, hidden: torch.Tensor, process: Callable[[torch.Tensor], torch.Tensor],
                         half: HalfCopy) -> torch.Tensor | None:
        """The argmax through the float16 copy, or None when the bound cannot narrow the vocabulary down."""
        bounded = approximate_logits(hidden, half, self.bias)
        if bounded is None:
            return None
        approx, margin = bounded
        best_lower = process(approx - margin).max(dim=-1, keepdim=True).values
        candidates = (process(approx + margin) >= best_lower).any(dim=0).nonzero().squeeze(1)
        if bool(torch.isinf(best_lower).any()) or len(candidates) > FALLBACK_SHARE * approx.shape[1]:
            return None
        exact = hidden @ self.weight[candidates].T
        if self.bias is not None:
            exact = exact + self.bias[candidates]
        scores = torch.full_like(approx, float("-inf"))
        scores[:, candidates] = exact.float()
        return process(scores).argmax(dim=-1)


def approximate_logits(hidden: torch.Tensor, half: HalfCopy,
                       bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Logits through the float16 copy, and how far the float32 ones can be from them.

    hidden (rows, d) float32; bias (vocab,) or None. Returns (approx, margin), both (rows, vocab) float32, with
    |float32 logit - approx| <= margin everywhere; None when hidden or the product leave float16's range.
    """
    hidden16 = hidden.to(torch.float16)
    approx = (half.weight @ hidden16.T).T.float()
    if not (torch.isfinite(hidden16).all() and torch.isfinite(approx).all()):
        return None
    rounded = hidden16.float()
    size = hidden.shape[1]
    gamma = size * 2.0**-24 / (1 - size * 2.0**-24)
    hidden_norm = hidden.norm(dim=1, keepdim=True)
    hidden_error = (hidden - rounded).norm(dim=1, keepdim=True)
    margin = (half.residual_norm * hidden_norm
              + half.half_norm * (hidden_error + gamma * rounded.norm(dim=1, keepdim=True))
              + half.norm * (gamma * hidden_norm))
    magnitude = approx.abs()
    if bias is not None:
        approx = approx + bias
        magnitude = magnitude + bias.abs()
    # 1% and 2^-10 of the logits' size cover the float16 and float32 roundings with room for the rounding of these
    # very sums; 2^-24 covers float16 products so small that they round to subnormals.
    return approx, 1.01 * margin + 2.0**-10 * magnitude + 2.0**-24
