"""Greedy search's argmax over the vocabulary, reading a float16 copy of the output projection instead of the
float32 weight, and still the float32 argmax.

A decode step ends with logits = hidden @ weight.T + bias. For BigBird-Pegasus the weight is 96,103 x 1,024 float32,
393 MB read for every generated token: more than the decoder layers read. `screened_argmax` multiplies by a
float16 copy instead (fbgemm's packed layout: it takes the hidden state in float32 and accumulates in float32),
bounds how far each approximate logit can be from a float32 one, computes float32 logits for the few tokens whose
upper bound reaches the best lower bound, and returns their argmax only when no float32 evaluation order could
pick another token; otherwise None, and the caller computes every logit as usual.

The bound for vocabulary row w (d values), its float16 rounding w^ (read back from the copy, not assumed), hidden
state h and u = 2^-24: with g = (d + 2) u / (1 - (d + 2) u) (a float32 dot product of d terms in any order, plus
the bias addition), the copy's logit and any float32 evaluation of w.h + b are at most
    |h| (|w - w^| + g |w^| + g |w|) + 2 u |b|
apart (Cauchy-Schwarz and the classical bound on a float32 dot product); two float32 evaluations of one logit, at
most 2 (g |w| |h| + u |b|). Both get a floor for underflow and 1% for the rounding of the bound itself.
"""

from __future__ import annotations

import torch
from torch.utils.weak import WeakIdKeyDictionary

ROWS_PER_PART = 32768  # vocabulary rows per packed part: bounds the float32 read-back when the copy is built
FALLBACK_SHARE = 1 / 16  # beyond this share of the vocabulary in float32, the full product is as cheap
FLOAT16_MAX = 65504.0
UNIT = 2.0**-24  # float32 unit roundoff
FLOOR = 2.0**-100  # covers products that underflow to subnormals or zero
SAFETY = 1.01  # covers the float32 rounding of the bounds themselves

# weight -> ((data pointer, version, shape) it was built from, its HalfCopy or None); dropped with the weight
_COPIES = WeakIdKeyDictionary()


def _gamma(size: int) -> float:
    return (size + 2) * UNIT / (1 - (size + 2) * UNIT)


class HalfCopy:
    """fbgemm's packed float16 copy of a (vocab, d) float32 weight, in parts of `ROWS_PER_PART` rows.

    `norm` (vocab,): |w| of every row; `spread` (vocab,): |w - w^| + g (|w^| + |w|), the bound per unit of |h|.
    """

    def __init__(self, weight: torch.Tensor) -> None:
        gamma = _gamma(weight.shape[1])
        self.parts, norms, spreads = [], [], []
        for rows in weight.split(ROWS_PER_PART):
            part = torch.ops.quantized.linear_prepack_fp16(rows, None)
            rounded = torch.ops.quantized.linear_unpack_fp16(part)[0]
            norm = rows.norm(dim=1)
            self.parts.append(part)
            norms.append(norm)
            spreads.append((rows - rounded).norm(dim=1) + gamma * (rounded.norm(dim=1) + norm))
        self.norm, self.spread = torch.cat(norms), torch.cat(spreads)

    def product(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (rows, d) float32 -> hidden @ copy.T (rows, vocab), accumulated in float32."""
        return torch.cat([torch.ops.quantized.linear_dynamic_fp16(hidden, part) for part in self.parts], dim=1)


def packed_float16_available() -> bool:
    """Whether this PyTorch has fbgemm's float16 product (x86 builds do)."""
    return "fbgemm" in torch.backends.quantized.supported_engines and hasattr(torch.ops.quantized,
                                                                             "linear_dynamic_fp16")


def half_copy(weight: torch.Tensor) -> HalfCopy | None:
    """The `HalfCopy` of `weight`, built on first use and again when the weight is replaced or changed in place
    (kept while the weight lives: 2 bytes per element); None where screening cannot use one: not float32 on the
    CPU, no fbgemm, or values beyond float16's range (whose packing would also clamp `weight` in place)."""
    if weight.dtype != torch.float32 or weight.device.type != "cpu" or not packed_float16_available():
        return None
    key = (weight.data_ptr(), weight._version, tuple(weight.shape))
    cached = _COPIES.get(weight)
    if cached is None or cached[0] != key:
        low, high = weight.detach().aminmax()
        within = bool(-FLOAT16_MAX <= low) and bool(high <= FLOAT16_MAX)  # False for NaN too
        _COPIES[weight] = cached = (key, HalfCopy(weight.detach()) if within else None)
    return cached[1]


def logit_bounds(hidden: torch.Tensor, bias: torch.Tensor | None,
                 copy: HalfCopy) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Logits through the float16 copy, and how far any float32 evaluation of them can be.

    hidden (rows, d) float32; bias (vocab,) or None. Returns (approx, margin), both (rows, vocab) float32, with
    |float32 logit - approx| <= margin everywhere; None where a value is not finite.
    """
    approx = copy.product(hidden)
    slack = torch.full_like(copy.spread, FLOOR) if bias is None else 2 * UNIT * bias.abs() + FLOOR
    if bias is not None:
        approx += bias
    if not bool(torch.isfinite(approx).all()):
        return None
    return approx, torch.addcmul(slack, hidden.norm(dim=1, keepdim=True), copy.spread).mul_(SAFETY)


def screened_argmax(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                    copy: HalfCopy) -> torch.Tensor | None:
    """argmax over the vocabulary of hidden @ weight.T + bias, the same for every float32 evaluation of it.

    hidden (rows, d) float32; weight (vocab, d) float32 and its `copy`; bias (vocab,) or None. Returns token ids
    (rows,), or None when the screen leaves too many tokens, a value is not finite, or two tokens are too close
    for float32 to order them the same way in every evaluation.
    """
    bounds = logit_bounds(hidden, bias, copy)
    if bounds is None:
        return None
    approx, margin = bounds
    best_lower = (approx - margin).amax(dim=1, keepdim=True)
    candidates = ((approx + margin) >= best_lower).any(dim=0).nonzero().squeeze(1)
    if candidates.numel() > FALLBACK_SHARE * approx.shape[1]:
        return None
    return _decided_argmax(hidden, weight, bias, copy.norm, candidates)


def _decided_argmax(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, norm: torch.Tensor,
                    candidates: torch.Tensor) -> torch.Tensor | None:
    """The argmax among `candidates` (k,) of the float32 logits, or None when another candidate's logit could
    exceed it (or tie) in another float32 evaluation order. hidden (rows, d); norm (vocab,): |w| per row."""
    exact = hidden @ weight[candidates].T
    error = _gamma(hidden.shape[1]) * hidden.norm(dim=1, keepdim=True) * norm[candidates]
    if bias is not None:
        exact = exact + bias[candidates]
        error = error + UNIT * bias[candidates].abs()
    error = 2 * SAFETY * (error + FLOOR)  # two evaluations, each within `error` of the exact value
    best = exact.argmax(dim=1, keepdim=True)
    contenders = (exact + error >= (exact - error).gather(1, best)).sum(dim=1)
    return candidates[best[:, 0]] if bool((contenders == 1).all()) else None
