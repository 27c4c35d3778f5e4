// Depth-wise 2-D convolution on channels-last maps: the parameter gradients as a compiled CPU
// kernel (the forward pass and the input gradient stay with PyTorch's convolution).
//
//   input       (B, H, W, C)
//   grad_output (B, Ho, Wo, C), Ho = H + 2 * pad_h - kernel_h + 1 (stride 1, dilation 1)
//   grad_weight (C, 1, kernel_h, kernel_w), grad_bias (C)
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <tuple>

namespace stm_mm {

// Contiguous tensors of one dtype (float32 or float64), already checked by the binding.
std::tuple<at::Tensor, at::Tensor> depthwise_conv2d_weight_bias_grad_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, int64_t kernel_h, int64_t kernel_w,
    int64_t pad_h, int64_t pad_w);

}  // namespace stm_mm
