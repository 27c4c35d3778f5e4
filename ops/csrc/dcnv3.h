// DCNv3 core (InternImage's deformable convolution v3) as compiled kernels.
//
// Layout is channels-last throughout:
//   input  (B, H, W, G * Cg)
//   offset (B, Ho, Wo, G * P * 2), channel (g * P + p) * 2 + c, c = 0 is x, c = 1 is y
//   mask   (B, Ho, Wo, G * P)
//   output (B, Ho, Wo, G * Cg)
// with P = kernel_h * kernel_w and point p = i * kernel_h + j (i over kernel columns, so x
// varies with the slower index). Point p of output pixel (yo, xo) in group g samples
//   X = xo * stride_w - pad_w + i * dilation_w + offset_x * offset_scale
//   Y = yo * stride_h - pad_h + j * dilation_h + offset_y * offset_scale
// bilinearly; neighbours outside the (H, W) map contribute zero. The output size (Ho, Wo) is
// the spatial size of `offset`, as in the PyTorch reference (stm_mm/ops/dcnv3_ref.py).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <tuple>

namespace stm_mm {

// Sizes and sampling grid of one call; filled and validated by the binding.
struct DCNv3Geometry {
  int64_t batch, height, width, height_out, width_out;
  int64_t group, group_channels, points;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  double offset_scale;
};

// Kernels take contiguous tensors of one dtype on one device, already checked.
at::Tensor dcnv3_forward_cpu(const at::Tensor& input, const at::Tensor& offset,
                             const at::Tensor& mask, const DCNv3Geometry& geo);
// Returns (grad_input, grad_offset, grad_mask).
std::tuple<at::Tensor, at::Tensor, at::Tensor> dcnv3_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& offset,
    const at::Tensor& mask, const DCNv3Geometry& geo);

#ifdef WITH_CUDA
at::Tensor dcnv3_forward_cuda(const at::Tensor& input, const at::Tensor& offset,
                              const at::Tensor& mask, const DCNv3Geometry& geo);
std::tuple<at::Tensor, at::Tensor, at::Tensor> dcnv3_backward_cuda(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& offset,
    const at::Tensor& mask, const DCNv3Geometry& geo);
#endif

}  // namespace stm_mm
