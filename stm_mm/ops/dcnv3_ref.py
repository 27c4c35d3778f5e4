"""Pure-PyTorch reference of the DCNv3 core (InternImage's operator), readable rather than fast.

Every compiled kernel is tested against this function, and it is the fallback when the compiled
extension is not available for a tensor's device.
"""
import torch
import torch.nn.functional as F


def sampling_locations(height_out, width_out, offset, kernel_h, kernel_w, stride_h, stride_w,
                       pad_h, pad_w, dilation_h, dilation_w, group, offset_scale):
    """Pixel coordinates ``(X, Y)`` that each output pixel samples, ``(B, Ho, Wo, G, P, 2)``.

    Point ``p = i * kernel_h + j`` (i over the kernel's columns, j over its rows: x varies with
    the slower index) of the output pixel ``(yo, xo)`` samples
    ``X = xo * stride_w - pad_w + i * dilation_w + offset_x * offset_scale`` and the same for Y,
    in unpadded pixel coordinates with pixel centres at integers.
    """
    B = offset.shape[0]
    device, dtype = offset.device, offset.dtype
    ys = torch.arange(height_out, device=device, dtype=dtype) * stride_h - pad_h
    xs = torch.arange(width_out, device=device, dtype=dtype) * stride_w - pad_w
    kx = torch.arange(kernel_w, device=device, dtype=dtype) * dilation_w
    ky = torch.arange(kernel_h, device=device, dtype=dtype) * dilation_h
    kx, ky = torch.meshgrid(kx, ky, indexing='ij')  # (Kw, Kh): p = i * Kh + j
    kernel = torch.stack([kx.flatten(), ky.flatten()], dim=-1)  # (P, 2)
    base = torch.stack(torch.meshgrid(xs, ys, indexing='xy'), dim=-1)  # (Ho, Wo, 2) as (x, y)
    P = kernel_h * kernel_w
    offset = offset.view(B, height_out, width_out, group, P, 2)
    return base[None, :, :, None, None, :] + kernel + offset * offset_scale


def dcnv3_reference(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                    dilation_h, dilation_w, group, group_channels, offset_scale):
    """DCNv3: per group, a modulated sum of bilinear samples at kernel points moved by offsets.

    Args:
        input: ``(B, H, W, G * Cg)`` channels-last values.
        offset: ``(B, Ho, Wo, G * P * 2)``; channel ``(g * P + p) * 2 + c``, c = 0 x, c = 1 y.
        mask: ``(B, Ho, Wo, G * P)`` modulation weights (already normalised, e.g. softmaxed).
        kernel_*, stride_*, pad_*, dilation_*: the sampling grid; ``P = kernel_h * kernel_w``.
        group, group_channels: G and Cg. offset_scale: multiplies the offsets.
    Returns:
        ``(B, Ho, Wo, G * Cg)``. Neighbours outside the ``(H, W)`` map contribute zero.
    """
    B, H, W, _ = input.shape
    Ho, Wo = offset.shape[1:3]
    G, Cg, P = group, group_channels, kernel_h * kernel_w
    loc = sampling_locations(Ho, Wo, offset, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                             dilation_h, dilation_w, group, offset_scale)
    # grid_sample's align_corners=False convention: pixel i spans [i, i + 1) / size.
    # (divided per axis, not by a tensor of the sizes, so an ONNX export keeps them dynamic)
    grid = torch.stack([(loc[..., 0] + 0.5) / W, (loc[..., 1] + 0.5) / H], -1) * 2 - 1
    grid = grid.permute(0, 3, 1, 2, 4, 5).reshape(B * G, Ho, Wo * P, 2)
    value = input.view(B, H, W, G, Cg).permute(0, 3, 4, 1, 2).reshape(B * G, Cg, H, W)
    samples = F.grid_sample(value, grid.to(value.dtype), mode='bilinear', padding_mode='zeros',
                            align_corners=False)  # (B*G, Cg, Ho, Wo*P)
    samples = samples.view(B, G, Cg, Ho, Wo, P)
    weights = mask.view(B, Ho, Wo, G, P).permute(0, 3, 1, 2, 4)[:, :, None]  # (B, G, 1, Ho, Wo, P)
    out = (samples * weights).sum(-1)  # (B, G, Cg, Ho, Wo)
    return out.permute(0, 3, 4, 1, 2).reshape(B, Ho, Wo, G * Cg)
