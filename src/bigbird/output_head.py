"""The next-token projection of generation, and greedy search's argmax without the whole float32 product.

A decode step ends with logits = hidden @ weight.T + bias over the vocabulary. For BigBird-Pegasus that is a
96,103 x 1,024 float32 matrix, 393 MB read from memory for every generated token: more than the decoder
layers read. Greedy search only needs argmax_v P(logits)_v, P being its logit processors, so
`OutputHead.greedy_tokens` multiplies by a float16 copy of the matrix instead (half the bytes; on x86 in fbgemm's
packed layout, which takes the hidden state in float32), bounds how far each approximate logit can be from its
float32 value, and computes float32 logits only for the tokens whose upper bound reaches the best lower bound.
The token it returns is the float32 argmax, not an approximation of it:

- the bound is rigorous (below), and
- every processor of greedy search treats each logit on its own and never lowers it when it rises: P(s)_v
  depends on s_v alone and is non-decreasing in it (bans to -inf, the repetition penalty, forced tokens).
  So a token whose processed upper bound is below another token's processed lower bound cannot win.

The bound for vocabulary row w, hidden state h (d values), ^ meaning rounded to float16 (for h only in PyTorch's
float16 product; fbgemm's uses h itself) and u = 2^-24: both products accumulate in float32, so
    |w.h - fl(w^.h^)| <= |w - w^| |h| + |w^| |h - h^| + g |w^| |h^|,    g = d u / (1 - d u)
(Cauchy-Schwarz, and the classical bound on a float32 dot product in any order of summation); add the rounding of
PyTorch's product to float16 (2^-11 relative) and the float32 rounding of the reference logit itself (g |w| |h|,
plus the bias addition). w^ is read back from the copy, not assumed. The row norms are computed once per version of
the weight.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# A float32 product of a few rows costs about what one row's does (it is bound by reading the weight); the packed
# float16 product costs the same from 1 to 4 rows, so screening pays up to there (greedy search, small batches).
SCREENED_ROWS = 4
# When more than this share of the vocabulary needs exact logits, computing all of them is as cheap.
FALLBACK_SHARE = 1 / 16
ROWS_PER_CHUNK = 8192  # vocabulary rows per part of the copy: bounds the float32 read-back of the rounded rows
FLOAT16_MAX = 65504.0


def _fbgemm_float16_available() -> bool:
    try:
        return "fbgemm" in torch.backends.quantized.supported_engines and callable(
            torch.ops.quantized.linear_dynamic_fp16)
    except (AttributeError, RuntimeError):
        return False


class HalfCopy:
    """A float16 copy of a (vocab, d) float32 weight, its product with hidden states, and the row norms the bound
    needs: `norms` (3, vocab) holds |w - w^|, |w^| and |w| for every row w.

    packed: hold the copy in fbgemm's packed float16 layout (x86), whose product takes the hidden states in
    float32 and accumulates in float32, at about 60% of the time PyTorch's float16 product takes (which converts
    on the fly); otherwise a float16 tensor, multiplied by float16 hidden states.
    """

    def __init__(self, weight: torch.Tensor, packed: bool) -> None:
        self.packed = packed
        low, high = weight.aminmax()
        self.finite = bool(-FLOAT16_MAX <= low) and bool(high <= FLOAT16_MAX)  # no infinities in float16
        self.parts: list = []
        residual, half, full = [], [], []
        for start in range(0, weight.shape[0] if self.finite else 0, ROWS_PER_CHUNK):
            rows = weight[start:start + ROWS_PER_CHUNK]
            if self.packed:
                part = torch.ops.quantized.linear_prepack_fp16(rows, None)
                rounded = torch.ops.quantized.linear_unpack_fp16(part)[0]
            else:
                part = rows.to(torch.float16)
                rounded = part.float()
            self.parts.append(part)
            residual.append((rows - rounded).norm(dim=1))
            half.append(rounded.norm(dim=1))
            full.append(rows.norm(dim=1))
        if self.finite:
            self.norms = torch.stack([torch.cat(residual), torch.cat(half), torch.cat(full)])

    def product(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden (rows, d) float32 -> (copy @ hidden', rows x vocab float32; hidden', the hidden states as the
        product used them, (rows, d) float32)."""
        if self.packed:
            return torch.cat([torch.ops.quantized.linear_dynamic_fp16(hidden, part) for part in self.parts], 1), hidden
        hidden16 = hidden.to(torch.float16)
        return torch.cat([(part @ hidden16.T).T for part in self.parts], 1).float(), hidden16.float()


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
        float16's range, or, without fbgemm, float16 products that PyTorch is allowed to accumulate in float16)."""
        packed = _fbgemm_float16_available()
        if weight.dtype != torch.float32 or weight.device.type != "cpu" or not (packed or _fp16_accumulation_exact()):
            self.__init__()
            return None
        key = (weight.data_ptr(), weight._version, tuple(weight.shape), packed)
        if key != self._key:
            self._key, self._copy = key, HalfCopy(weight.detach(), packed)
        return self._copy if self._copy.finite else None


def _fp16_accumulation_exact() -> bool:
    """Whether PyTorch's float16 products on the CPU accumulate in float32."""
    check = getattr(torch._C, "_get_cpu_allow_fp16_reduced_precision_reduction", None)
    return check is not None and not check()


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
    approx, rounded = half.product(hidden)
    if not (torch.isfinite(rounded).all() and torch.isfinite(approx).all()):
        return None
    size = hidden.shape[1]
    gamma = (size + 1) * 2.0**-24 / (1 - (size + 1) * 2.0**-24)  # d products and the bias, summed in float32
    # Rounding the product to float16 (PyTorch's), or to float32 (fbgemm's), and adding the bias to it.
    output_rounding = 2.0**-10 if not half.packed else 2.0**-22
    hidden_norm, rounded_norm = hidden.norm(dim=1), rounded.norm(dim=1)
    coefficients = torch.stack([hidden_norm,
                                (hidden - rounded).norm(dim=1) + (gamma + output_rounding) * rounded_norm,
                                gamma * hidden_norm], dim=1)
    # 2^-24 covers float16 products so small that they round to subnormals; 1% covers the rounding of the margin.
    floor = torch.tensor(2.0**-24) if bias is None else (gamma + 2.0**-23) * bias.abs() + 2.0**-24
    margin = torch.addmm(floor, coefficients, half.norms, alpha=1.01, beta=1.01)
    if bias is not None:
        approx = approx + bias
    return approx, margin
