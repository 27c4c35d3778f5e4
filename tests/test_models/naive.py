"""Slow, loop-based implementations written straight from the papers' and the authors' definitions.

They share no code with stm_mm.models; the mixers are tested against them.
"""
import math

import torch


def halo_naive(m, x):
    """Halo attention of mixer ``m`` on NHWC ``x``, block by block (pads bottom/right to b)."""
    B, H, W, C = x.shape
    b, w, n = m.block_size, m.window_size, m.num_heads
    before, after = m.pad_before, m.pad_after
    Hp, Wp = math.ceil(H / b) * b, math.ceil(W / b) * b
    xp = torch.zeros(B, Hp, Wp, C, dtype=x.dtype)
    xp[:, :H, :W] = x
    q = xp @ m.q.weight.T
    kv = xp @ m.kv.weight.T
    kv = torch.nn.functional.pad(kv, (0, 0, before, after, before, after))
    dk, dv = m.dim_qk, m.dim_v
    out = torch.zeros(B, Hp, Wp, n * dv, dtype=x.dtype)
    for I in range(Hp // b):
        for J in range(Wp // b):
            qb = q[:, I * b:(I + 1) * b, J * b:(J + 1) * b].reshape(B, b * b, n, dk)
            win = kv[:, I * b:I * b + w, J * b:J * b + w].reshape(B, w * w, n, dk + dv)
            k, v = win[..., :dk], win[..., dk:]
            logits = torch.einsum('bqnd,bknd->bnqk', qb, k) * dk**-0.5
            # per (query, key) pair: the rows of the relative tables and whether the key lies in
            # the padded map, worked out pair by pair on plain ints; then applied as gathers
            # (one tensor op each instead of one per pair: the same sums, seconds faster)
            height_row, width_row, outside = [], [], []
            for qi in range(b * b):
                qy, qx = divmod(qi, b)
                height_row.append([]), width_row.append([]), outside.append([])
                for ki in range(w * w):
                    ky, kx = divmod(ki, w)
                    height_row[qi].append(ky - qy + w - 1)
                    width_row[qi].append(kx - qx + w - 1)
                    oy, ox = I * b + ky - before, J * b + kx - before
                    outside[qi].append(not (0 <= oy < Hp and 0 <= ox < Wp))
            rel_h = torch.einsum('bqnd,rd->bnqr', qb, m.height_rel)  # qb[:, qi] @ height_rel[r]
            rel_w = torch.einsum('bqnd,rd->bnqr', qb, m.width_rel)
            query = torch.arange(b * b)[:, None]
            logits = logits + rel_h[:, :, query, torch.tensor(height_row)]
            logits = logits + rel_w[:, :, query, torch.tensor(width_row)]
            logits = logits.masked_fill(torch.tensor(outside), -torch.finfo(torch.float32).max)
            attn = logits.softmax(-1)
            o = torch.einsum('bnqk,bknd->bqnd', attn, v).reshape(B, b, b, n * dv)
            out[:, I * b:(I + 1) * b, J * b:(J + 1) * b] = o
    return m.proj(out[:, :H, :W])


def swin_naive(m, x, shift):
    """Swin window attention of mixer ``m`` on NHWC ``x`` with the given shift."""
    B, H, W, C = x.shape
    M, n = m.window_size, m.num_heads
    d = C // n
    Hp, Wp = math.ceil(H / M) * M, math.ceil(W / M) * M
    xp = torch.zeros(B, Hp, Wp, C, dtype=x.dtype)
    xp[:, :H, :W] = x
    label = torch.zeros(Hp, Wp, dtype=torch.long)
    if shift:
        def region(i, size):
            return 0 if i < size - M else (1 if i < size - shift else 2)
        for i in range(Hp):
            for j in range(Wp):
                label[i, j] = region(i, Hp) * 3 + region(j, Wp)
        xp = torch.roll(xp, (-shift, -shift), (1, 2))
    out = torch.zeros_like(xp)
    for I in range(Hp // M):
        for J in range(Wp // M):
            win = xp[:, I * M:(I + 1) * M, J * M:(J + 1) * M].reshape(B, M * M, C)
            lab = label[I * M:(I + 1) * M, J * M:(J + 1) * M].reshape(-1)
            qkv = win @ m.qkv.weight.T + m.qkv.bias
            q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]
            q, k, v = (t.reshape(B, M * M, n, d) for t in (q, k, v))
            logits = torch.einsum('bqnd,bknd->bnqk', q * d**-0.5, k)
            for i in range(M * M):
                yi, xi = divmod(i, M)
                for j in range(M * M):
                    yj, xj = divmod(j, M)
                    idx = (yi - yj + M - 1) * (2 * M - 1) + (xi - xj + M - 1)
                    logits[:, :, i, j] += m.relative_position_bias_table[idx]
                    if shift and lab[i] != lab[j]:
                        logits[:, :, i, j] -= 100.0
            o = torch.einsum('bnqk,bknd->bqnd', logits.softmax(-1), v).reshape(B, M * M, C)
            out[:, I * M:(I + 1) * M, J * M:(J + 1) * M] = (o @ m.proj.weight.T +
                                                            m.proj.bias).reshape(B, M, M, C)
    if shift:
        out = torch.roll(out, (shift, shift), (1, 2))
    return out[:, :H, :W]


def bilinear_zero(img, X, Y):
    """Sample ``img`` (C, H, W) at pixel coords (X, Y); neighbours outside contribute zero."""
    C, H, W = img.shape
    x0, y0 = math.floor(X), math.floor(Y)
    total = torch.zeros(C, dtype=img.dtype)
    for yy in (y0, y0 + 1):
        for xx in (x0, x0 + 1):
            wgt = (1 - abs(X - xx)) * (1 - abs(Y - yy))
            if 0 <= yy < H and 0 <= xx < W:
                total += wgt * img[:, yy, xx]
    return total


def dcnv3_naive(value, offset, mask, k, stride, pad, dil, group, offset_scale):
    """DCNv3 core by explicit loops (spec 3.5): value (B,H,W,C), offset/mask channels-last."""
    B, H, W, C = value.shape
    Ho, Wo = offset.shape[1:3]
    Cg, P = C // group, k * k
    out = torch.zeros(B, Ho, Wo, C, dtype=value.dtype)
    for bi in range(B):
        for yo in range(Ho):
            for xo in range(Wo):
                for g in range(group):
                    img = value[bi, :, :, g * Cg:(g + 1) * Cg].permute(2, 0, 1)
                    acc = torch.zeros(Cg, dtype=value.dtype)
                    for p in range(P):
                        i, j = divmod(p, k)  # x varies with the slower index
                        c = (g * P + p) * 2
                        X = xo * stride - pad + i * dil + float(offset[bi, yo, xo, c]) * offset_scale
                        Y = yo * stride - pad + j * dil + float(offset[bi, yo, xo, c + 1]) * offset_scale
                        acc += float(mask[bi, yo, xo, g * P + p]) * bilinear_zero(img, X, Y)
                    out[bi, yo, xo, g * Cg:(g + 1) * Cg] = acc
    return out
