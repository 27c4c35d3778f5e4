// Python binding of mmcv's multi-scale deformable attention CUDA functions (the kernel family
// InternImage's DCNv3 was derived from), compiled together with mmcv's own
// mmcv/ops/csrc/pytorch/cuda/ms_deform_attn_cuda.cu by stm_mm/ops/authors_msda.py, for the
// DCNv3 benchmark only. Declarations as that file defines them.
#include <torch/extension.h>

at::Tensor ms_deform_attn_cuda_forward(const at::Tensor &value,
                                       const at::Tensor &spatial_shapes,
                                       const at::Tensor &level_start_index,
                                       const at::Tensor &sampling_loc,
                                       const at::Tensor &attn_weight,
                                       const int im2col_step);

void ms_deform_attn_cuda_backward(
    const at::Tensor &value, const at::Tensor &spatial_shapes,
    const at::Tensor &level_start_index, const at::Tensor &sampling_loc,
    const at::Tensor &attn_weight, const at::Tensor &grad_output,
    at::Tensor &grad_value, at::Tensor &grad_sampling_loc,
    at::Tensor &grad_attn_weight, const int im2col_step);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &ms_deform_attn_cuda_forward,
        "value (B, S, G, Cg), spatial_shapes (L, 2), level_start_index (L,), "
        "sampling_loc (B, Q, G, L, P, 2) in [0, 1], attn_weight (B, Q, G, L, P) -> (B, Q, G*Cg)");
  m.def("backward", &ms_deform_attn_cuda_backward,
        "fills grad_value, grad_sampling_loc and grad_attn_weight (zero-initialised)");
}
