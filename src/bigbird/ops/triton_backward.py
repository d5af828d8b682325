"""Triton backward kernels of BigBird block-sparse attention, deterministic (no atomics).

dQ runs over the forward schedule (a query tile and its key blocks), dK and dV over the transposed one (a key
tile and the query blocks whose softmax holds it). A tile whose list was split writes fp32 partials that
`sum_partials_kernel` adds up in a fixed order. Probabilities are recomputed from the forward's base-2
log-sum-exp; `DELTA` holds rowsum(dO * O) per query.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .triton_forward import load_operand, store_tile, tile_offsets, work_item


@triton.jit
def delta_kernel(OUT, DO, DELTA, sd_b, sd_h, sd_l, sd_d, H, L, D, BS: tl.constexpr, BD: tl.constexpr):
    """Grid (blocks, heads, batch): DELTA (B, H, L) = rowsum(dO * O), O (B, H, L, D) contiguous and 0 on padded rows."""
    row0 = tl.program_id(0).to(tl.int64) * BS
    head = tl.program_id(1).to(tl.int64)
    b = tl.program_id(2).to(tl.int64)
    o_offsets, cols = tile_offsets(D, 1, D, BS, BD)
    d_offsets, _ = tile_offsets(sd_l, sd_d, D, BS, BD)
    out = tl.load(OUT + (b * H + head) * L * D + row0 * D + o_offsets, mask=cols, other=0.0).to(tl.float32)
    grad = tl.load(DO + b * sd_b + head * sd_h + row0 * sd_l + d_offsets, mask=cols, other=0.0).to(tl.float32)
    tl.store(DELTA + (b * H + head) * L + row0 + tl.arange(0, BS), tl.reduce(out * grad, 1, tl.standard._sum_combine))


@triton.jit
def probabilities(q, k, lse, key_bias, log2m, scale2, HAS_MASK: tl.constexpr):
    """(BS, BS) softmax probabilities of a query tile against a key tile, multiplicity included."""
    s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale2 + log2m
    if HAS_MASK:
        s += key_bias[None, :]
    return tl.exp2(s - lse[:, None])


@triton.jit
def dq_kernel(
    Q, K, V, DO, LSE, DELTA, DQ, PART, KEY_BIAS, QUERY_KEEP, INFO, SLOTS, LOG2M,
    sq_b, sq_h, sq_l, sq_d, sk_b, sk_h, sk_l, sk_d, sv_b, sv_h, sv_l, sv_d, sd_b, sd_h, sd_l, sd_d,
    H, L, D, P, scale, scale2,
    W: tl.constexpr, BS: tl.constexpr, BD: tl.constexpr, HAS_MASK: tl.constexpr, UPCAST: tl.constexpr,
):
    """Grid (forward items, batch): dQ (B, H, L, D) of a query tile, or its fp32 partial in PART (B, P, BS, BD)."""
    item, head, row0, count, part = work_item(INFO, BS)
    b = tl.program_id(1).to(tl.int64)
    rows = tl.arange(0, BS)
    q_offsets, cols = tile_offsets(sq_l, sq_d, D, BS, BD)
    k_offsets, _ = tile_offsets(sk_l, sk_d, D, BS, BD)
    v_offsets, _ = tile_offsets(sv_l, sv_d, D, BS, BD)
    d_offsets, _ = tile_offsets(sd_l, sd_d, D, BS, BD)
    q = load_operand(Q + b * sq_b + head * sq_h + row0 * sq_l + q_offsets, cols, UPCAST)
    grad = load_operand(DO + b * sd_b + head * sd_h + row0 * sd_l + d_offsets, cols, UPCAST)
    if HAS_MASK:
        grad = grad * tl.load(QUERY_KEEP + b * L + row0 + rows)[:, None].to(grad.dtype)
    lse = tl.load(LSE + (b * H + head) * L + row0 + rows)
    delta = tl.load(DELTA + (b * H + head) * L + row0 + rows)
    k_base = K + b * sk_b + head * sk_h
    v_base = V + b * sv_b + head * sv_h
    acc = tl.full([BS, BD], 0.0, tl.float32)
    for slot in range(count):
        key0 = tl.load(SLOTS + item * W + slot).to(tl.int64) * BS
        k = load_operand(k_base + key0 * sk_l + k_offsets, cols, UPCAST)
        v = load_operand(v_base + key0 * sv_l + v_offsets, cols, UPCAST)
        p = probabilities(q, k, lse, tl.load(KEY_BIAS + b * L + key0 + rows) if HAS_MASK else 0.0,
                          tl.load(LOG2M + item * W + slot), scale2, HAS_MASK)
        ds = p * (tl.dot(grad, tl.trans(v), input_precision="ieee") - delta[:, None])
        acc += tl.dot(ds.to(Q.dtype.element_ty).to(k.dtype), k, input_precision="ieee")
    acc = acc * scale
    if part < 0:
        store_tile(DQ + (b * H + head) * L * D, row0, D, D, acc.to(DQ.dtype.element_ty), BS, BD)
    else:
        store_tile(PART + (b * P + part) * BS * BD, 0, BD, BD, acc, BS, BD)


@triton.jit
def dkv_kernel(
    Q, K, V, DO, LSE, DELTA, DK, DV, PART_K, PART_V, KEY_BIAS, QUERY_KEEP, INFO, SLOTS, LOG2M,
    sq_b, sq_h, sq_l, sq_d, sk_b, sk_h, sk_l, sk_d, sv_b, sv_h, sv_l, sv_d, sd_b, sd_h, sd_l, sd_d,
    H, L, D, P, scale, scale2,
    W: tl.constexpr, BS: tl.constexpr, BD: tl.constexpr, HAS_MASK: tl.constexpr, UPCAST: tl.constexpr,
):
    """Grid (transposed items, batch): dK, dV (B, H, L, D) of a key tile, or fp32 partials (B, P, BS, BD)."""
    item, head, key0, count, part = work_item(INFO, BS)
    b = tl.program_id(1).to(tl.int64)
    rows = tl.arange(0, BS)
    q_offsets, cols = tile_offsets(sq_l, sq_d, D, BS, BD)
    k_offsets, _ = tile_offsets(sk_l, sk_d, D, BS, BD)
    v_offsets, _ = tile_offsets(sv_l, sv_d, D, BS, BD)
    d_offsets, _ = tile_offsets(sd_l, sd_d, D, BS, BD)
    k = load_operand(K + b * sk_b + head * sk_h + key0 * sk_l + k_offsets, cols, UPCAST)
    v = load_operand(V + b * sv_b + head * sv_h + key0 * sv_l + v_offsets, cols, UPCAST)
    key_bias = tl.load(KEY_BIAS + b * L + key0 + rows) if HAS_MASK else 0.0
    q_base = Q + b * sq_b + head * sq_h
    do_base = DO + b * sd_b + head * sd_h
    lse_base = LSE + (b * H + head) * L + rows
    delta_base = DELTA + (b * H + head) * L + rows
    dk = tl.full([BS, BD], 0.0, tl.float32)
    dv = tl.full([BS, BD], 0.0, tl.float32)
    for slot in range(count):
        row0 = tl.load(SLOTS + item * W + slot).to(tl.int64) * BS
        q = load_operand(q_base + row0 * sq_l + q_offsets, cols, UPCAST)
        grad = load_operand(do_base + row0 * sd_l + d_offsets, cols, UPCAST)
        if HAS_MASK:
            grad = grad * tl.load(QUERY_KEEP + b * L + row0 + rows)[:, None].to(grad.dtype)
        p = probabilities(q, k, tl.load(lse_base + row0), key_bias, tl.load(LOG2M + item * W + slot), scale2,
                          HAS_MASK)
        dv += tl.dot(tl.trans(p).to(Q.dtype.element_ty).to(grad.dtype), grad, input_precision="ieee")
        ds = p * (tl.dot(grad, tl.trans(v), input_precision="ieee") - tl.load(delta_base + row0)[:, None])
        dk += tl.dot(tl.trans(ds).to(Q.dtype.element_ty).to(q.dtype), q, input_precision="ieee")
    dk = dk * scale
    if part < 0:
        store_tile(DK + (b * H + head) * L * D, key0, D, D, dk.to(DK.dtype.element_ty), BS, BD)
        store_tile(DV + (b * H + head) * L * D, key0, D, D, dv.to(DV.dtype.element_ty), BS, BD)
    else:
        store_tile(PART_K + (b * P + part) * BS * BD, 0, BD, BD, dk, BS, BD)
        store_tile(PART_V + (b * P + part) * BS * BD, 0, BD, BD, dv, BS, BD)


@triton.jit
def sum_partials_kernel(OUT, PART, REDUCTIONS, H, L, D, P, BS: tl.constexpr, BD: tl.constexpr):
    """Grid (reductions, batch): OUT (B, H, L, D) tile = sum of its fp32 partials in PART (B, P, BS, BD), in order."""
    red = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    head = tl.load(REDUCTIONS + red * 4).to(tl.int64)
    row0 = tl.load(REDUCTIONS + red * 4 + 1).to(tl.int64) * BS
    first = tl.load(REDUCTIONS + red * 4 + 2)
    count = tl.load(REDUCTIONS + red * 4 + 3)
    offsets, _ = tile_offsets(BD, 1, BD, BS, BD)
    acc = tl.full([BS, BD], 0.0, tl.float32)
    for i in range(count):
        acc += tl.load(PART + (b * P + first + i) * BS * BD + offsets)
    store_tile(OUT + (b * H + head) * L * D, row0, D, D, acc.to(OUT.dtype.element_ty), BS, BD)
