"""Triton forward kernels of BigBird block-sparse attention (see `triton_kernel` for the schedules they read).

Every program owns one work item of a schedule: a tile of one block of `BS` rows and up to `W` listed blocks
("slots"), each with the log2 of its multiplicity. Scores are kept in base 2: `s2 = q.k * scale * log2(e) +
log2(m) + key_bias`, with `key_bias` = -10000 * log2(e) on padded keys, so `exp2(s2)` is m * exp(score).
Dots pass input_precision="ieee", which only affects fp32 inputs: it keeps them off TF32.

The kernels call only builtins of triton.language: row maxima and sums are spelled `tl.reduce(x, 1,
tl.standard._elementwise_max / _sum_combine)`, what tl.max and tl.sum compile to, and zeros `tl.full`. tl.max,
tl.sum and tl.zeros are @jit functions, which the interpreter cannot call when triton.language was imported
before TRITON_INTERPRET was set (torch._dynamo and transformers import it).

`UPCAST` is set only for bf16 under TRITON_INTERPRET=1, whose tl.dot multiplies bf16 tensors as their raw
bits: tiles are then widened to fp32 after loading, and probabilities are still rounded to bf16 before
their products, so the arithmetic is the GPU's (exact bf16 products, fp32 sums).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def tile_offsets(stride_l, stride_d, D, BS: tl.constexpr, BD: tl.constexpr):
    """Offsets (BS, BD) of a tile of a (length, D) matrix and the mask of its columns below D."""
    rows = tl.arange(0, BS)
    dims = tl.arange(0, BD)
    return rows[:, None] * stride_l + dims[None, :] * stride_d, (dims < D)[None, :]


@triton.jit
def load_operand(pointers, mask, UPCAST: tl.constexpr):
    """A tile for tl.dot, zero where masked; widened to fp32 if UPCAST (see the module doc)."""
    x = tl.load(pointers, mask=mask, other=0.0)
    if UPCAST:
        x = x.to(tl.float32)
    return x


@triton.jit
def store_tile(base, row0, stride_l, D, value, BS: tl.constexpr, BD: tl.constexpr):
    """Write a (BS, BD) tile into rows row0.. of a row-major (length, D) matrix, dropping columns beyond D."""
    offsets, cols = tile_offsets(stride_l, 1, D, BS, BD)
    tl.store(base + row0 * stride_l + offsets, value, mask=cols)


@triton.jit
def work_item(INFO, BS: tl.constexpr):
    """This program's work item: (item, head, first row of its tile, listed blocks, partial slot or -1)."""
    item = tl.program_id(0)
    head = tl.load(INFO + item * 4).to(tl.int64)
    row0 = tl.load(INFO + item * 4 + 1).to(tl.int64) * BS
    return item, head, row0, tl.load(INFO + item * 4 + 2), tl.load(INFO + item * 4 + 3)


@triton.jit
def attention_forward_kernel(
    Q, K, V, OUT, LSE, PART_OUT, PART_LSE, KEY_BIAS, QUERY_KEEP, INFO, SLOTS, LOG2M,
    sq_b, sq_h, sq_l, sq_d, sk_b, sk_h, sk_l, sk_d, sv_b, sv_h, sv_l, sv_d,
    H, L, D, P, scale2,
    W: tl.constexpr, BS: tl.constexpr, BD: tl.constexpr, HAS_MASK: tl.constexpr, UPCAST: tl.constexpr,
):
    """Grid (items, batch). OUT (B, H, L, D) and LSE (B, H, L) for unsplit items; a split item writes its
    normalised fp32 partial into PART_OUT (B, P, BS, BD) and PART_LSE (B, P, BS) for `reduce_forward_kernel`."""
    item, head, row0, count, part = work_item(INFO, BS)
    b = tl.program_id(1).to(tl.int64)
    rows = tl.arange(0, BS)
    q_offsets, cols = tile_offsets(sq_l, sq_d, D, BS, BD)
    k_offsets, _ = tile_offsets(sk_l, sk_d, D, BS, BD)
    v_offsets, _ = tile_offsets(sv_l, sv_d, D, BS, BD)
    q = load_operand(Q + b * sq_b + head * sq_h + row0 * sq_l + q_offsets, cols, UPCAST)
    k_base = K + b * sk_b + head * sk_h
    v_base = V + b * sv_b + head * sv_h

    top = tl.full([BS], float("-inf"), tl.float32)
    total = tl.full([BS], 0.0, tl.float32)
    acc = tl.full([BS, BD], 0.0, tl.float32)
    for slot in range(count):
        key0 = tl.load(SLOTS + item * W + slot).to(tl.int64) * BS
        k = load_operand(k_base + key0 * sk_l + k_offsets, cols, UPCAST)
        v = load_operand(v_base + key0 * sv_l + v_offsets, cols, UPCAST)
        s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale2 + tl.load(LOG2M + item * W + slot)
        if HAS_MASK:
            s += tl.load(KEY_BIAS + b * L + key0 + rows)[None, :]
        new_top = tl.maximum(top, tl.reduce(s, 1, tl.standard._elementwise_max))
        shrink = tl.exp2(top - new_top)
        p = tl.exp2(s - new_top[:, None])
        total = total * shrink + tl.reduce(p, 1, tl.standard._sum_combine)
        acc = acc * shrink[:, None] + tl.dot(p.to(Q.dtype.element_ty).to(v.dtype), v, input_precision="ieee")
        top = new_top
    out = acc / total[:, None]
    lse = top + tl.log2(total)
    if part < 0:
        if HAS_MASK:
            out = out * tl.load(QUERY_KEEP + b * L + row0 + rows)[:, None]
        store_tile(OUT + (b * H + head) * L * D, row0, D, D, out.to(OUT.dtype.element_ty), BS, BD)
        tl.store(LSE + (b * H + head) * L + row0 + rows, lse)
    else:
        slot_base = (b * P + part) * BS
        store_tile(PART_OUT + slot_base * BD, 0, BD, BD, out, BS, BD)
        tl.store(PART_LSE + slot_base + rows, lse)


@triton.jit
def reduce_forward_kernel(
    OUT, LSE, PART_OUT, PART_LSE, QUERY_KEEP, REDUCTIONS,
    H, L, D, P, BS: tl.constexpr, BD: tl.constexpr, HAS_MASK: tl.constexpr,
):
    """Grid (reductions, batch): merge the partial softmaxes of one split tile by their log-sum-exps, in order."""
    red = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    head = tl.load(REDUCTIONS + red * 4).to(tl.int64)
    row0 = tl.load(REDUCTIONS + red * 4 + 1).to(tl.int64) * BS
    first = tl.load(REDUCTIONS + red * 4 + 2)
    count = tl.load(REDUCTIONS + red * 4 + 3)
    rows = tl.arange(0, BS)
    top = tl.full([BS], float("-inf"), tl.float32)
    total = tl.full([BS], 0.0, tl.float32)
    acc = tl.full([BS, BD], 0.0, tl.float32)
    offsets, _ = tile_offsets(BD, 1, BD, BS, BD)
    for i in range(count):
        slot_base = (b * P + first + i) * BS
        lse = tl.load(PART_LSE + slot_base + rows)
        new_top = tl.maximum(top, lse)
        shrink = tl.exp2(top - new_top)
        weight = tl.exp2(lse - new_top)
        total = total * shrink + weight
        acc = acc * shrink[:, None] + weight[:, None] * tl.load(PART_OUT + slot_base * BD + offsets)
        top = new_top
    out = acc / total[:, None]
    if HAS_MASK:
        out = out * tl.load(QUERY_KEEP + b * L + row0 + rows)[:, None]
    store_tile(OUT + (b * H + head) * L * D, row0, D, D, out.to(OUT.dtype.element_ty), BS, BD)
    tl.store(LSE + (b * H + head) * L + row0 + rows, top + tl.log2(total))
