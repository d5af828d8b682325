"""Greedy search's argmax over the vocabulary, reading a float16 copy of the output projection instead of the
float32 weight, and still the float32 argmax.

A decode step ends with logits = hidden @ weight.T + bias. For BigBird-Pegasus the weight is 96,103 x 1,024 float32,
393 MB read for every generated token: more than the decoder layers read. `screened_argmax` multiplies by a
float16 copy instead (fbgemm's packed layout: it takes the hidden state in float32 and accumulates in float32),
bounds how far each approximate logit can be from a float32 one, computes float32 logits for the few tokens whose
upper bound reaches the best lower bound, and returns their argmax only when no float32 evaluation order could
pick another token; otherwise None, and the caller computes every logit as usual.

The bound for vocabulary row w (d values), its float16 rounding w^ (read back from the copy, not assumed), bias b,
hidden state h and u = 2^-24: with g = (d + 2) u / (1 - (d + 2) u) (a float32 sum of the d products and the bias in
any order), the copy's logit and any float32 evaluation of w.h + b are at most
    |h| (|w - w^| + g |w^| + g |w|) + 2 g |b|
apart (Cauchy-Schwarz and the classical bound on a float32 sum); two float32 evaluations of one logit, at most
2 g (|w| |h| + |b|). Both get a floor for underflow and 1% for the rounding of the bound itself. Hidden states
whose products could overflow are left to the caller.
"""

from __future__ import annotations

import torch
from torch.utils.weak import WeakIdKeyDictionary

ROWS_PER_PART = 32768  # vocabulary rows per packed part: bounds the float32 read-back when the copy is built
FALLBACK_SHARE = 1 / 16  # beyond this share of the vocabulary in float32, the full product is as cheap
FLOAT16_MAX = 65504.0
FINITE = 2.0**100  # |h| |w^| and |b| below this keep every sum far from float32's overflow
UNIT = 2.0**-24  # float32 unit roundoff
FLOOR = 2.0**-100  # covers products that underflow to subnormals or zero
SAFETY = 1.01  # covers the float32 rounding of the bounds themselves

# weight -> (what it was built from, its HalfCopy or None); an entry goes when its weight does
_COPIES = WeakIdKeyDictionary()


def _gamma(size: int) -> float:
    return (size + 2) * UNIT / (1 - (size + 2) * UNIT)


class HalfCopy:
    """fbgemm's packed float16 copy of a (vocab, d) float32 weight with its float32 bias (vocab,), in parts of
    `ROWS_PER_PART` rows.

    Per row: `norm` |w|; `spread` SAFETY (|w - w^| + g (|w^| + |w|)), the bound per unit of |h|; `offset`
    SAFETY (2 g |b| + FLOOR); and `largest`, the largest |w^|.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        gamma = _gamma(weight.shape[1])
        self.parts, norms, rounded_norms, residuals = [], [], [], []
        for rows, row_bias in zip(weight.split(ROWS_PER_PART), bias.split(ROWS_PER_PART)):
            part = torch.ops.quantized.linear_prepack_fp16(rows, row_bias)
            rounded = torch.ops.quantized.linear_unpack_fp16(part)[0]
            self.parts.append(part)
            norms.append(rows.norm(dim=1))
            rounded_norms.append(rounded.norm(dim=1))
            residuals.append((rows - rounded).norm(dim=1))
        self.norm, rounded_norm = torch.cat(norms), torch.cat(rounded_norms)
        self.spread = (torch.cat(residuals) + gamma * (rounded_norm + self.norm)) * SAFETY
        self.largest = float(rounded_norm.max())
        self.offset = (2 * gamma * bias.abs() + FLOOR) * SAFETY

    def product(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (rows, d) float32 -> hidden @ copy.T + bias (rows, vocab), accumulated in float32."""
        return torch.cat([torch.ops.quantized.linear_dynamic_fp16(hidden, part) for part in self.parts], dim=1)


def packed_float16_available() -> bool:
    """Whether this PyTorch has fbgemm's float16 product (x86 builds do)."""
    return "fbgemm" in torch.backends.quantized.supported_engines and hasattr(torch.ops.quantized,
                                                                             "linear_dynamic_fp16")


def half_copy(weight: torch.Tensor, bias: torch.Tensor | None) -> HalfCopy | None:
    """The `HalfCopy` of `weight` (vocab, d) and `bias` (vocab,) or None, built on first use and again when either is
    replaced or changed in place (kept while the weight lives: 2 bytes per weight element); None where screening
    cannot use one: not float32 on the CPU, no fbgemm, weights beyond float16's range (whose packing would also
    clamp `weight` in place) or a bias that is not finite."""
    tensors = (weight,) if bias is None else (weight, bias)
    if any(t.dtype != torch.float32 or t.device.type != "cpu" for t in tensors) or not packed_float16_available():
        return None
    key = tuple((t.data_ptr(), t._version, tuple(t.shape)) for t in tensors)
    cached = _COPIES.get(weight)
    if cached is None or cached[0] != key:
        low, high = weight.detach().aminmax()
        usable = bool(-FLOAT16_MAX <= low) and bool(high <= FLOAT16_MAX)  # False for NaN too
        bias = torch.zeros(weight.shape[0]) if bias is None else bias.detach()
        usable = usable and bool(bias.abs().max() < FINITE)
        _COPIES[weight] = cached = (key, HalfCopy(weight.detach(), bias) if usable else None)
    return cached[1]


def logit_bounds(hidden: torch.Tensor, copy: HalfCopy) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Logits through the float16 copy, and how far any float32 evaluation of them can be.

    hidden (rows, d) float32. Returns (approx, margin), both (rows, vocab) float32, with |float32 logit - approx|
    <= margin everywhere; None for a hidden state that is not finite or so large that a product could overflow.
    """
    hidden_norm = hidden.norm(dim=1, keepdim=True)
    if not bool(hidden_norm.max() * copy.largest < FINITE):
        return None
    return copy.product(hidden), torch.addcmul(copy.offset, hidden_norm, copy.spread)


def screened_argmax(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                    copy: HalfCopy) -> torch.Tensor | None:
    """argmax over the vocabulary of hidden @ weight.T + bias, the same for every float32 evaluation of it.

    hidden (rows, d) float32; weight (vocab, d) float32 and bias (vocab,) or None, with their `copy`. Returns token
    ids (rows,), or None when the screen leaves too many tokens, the hidden state is out of range, or two tokens
    are too close for float32 to order them the same way in every evaluation.
    """
    bounds = logit_bounds(hidden, copy)
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
    error = hidden.norm(dim=1, keepdim=True) * norm[candidates]
    if bias is not None:
        exact = exact + bias[candidates]
        error = error + bias[candidates].abs()
    error = 2 * SAFETY * (_gamma(hidden.shape[1]) * error + FLOOR)  # two evaluations, each within half of it
    best = exact.argmax(dim=1, keepdim=True)
    contenders = (exact + error >= (exact - error).gather(1, best)).sum(dim=1)
    return candidates[best[:, 0]] if bool((contenders == 1).all()) else None
