// Python binding of stm_mm._ext: argument checks, then dispatch on the tensors' device.
#include <torch/extension.h>

#include "dcnv3.h"
#include "depthwise_conv.h"

namespace stm_mm {
namespace {

DCNv3Geometry check_and_describe(const at::Tensor& input, const at::Tensor& offset,
                                 const at::Tensor& mask, int64_t kernel_h, int64_t kernel_w,
                                 int64_t stride_h, int64_t stride_w, int64_t pad_h,
                                 int64_t pad_w, int64_t dilation_h, int64_t dilation_w,
                                 int64_t group, int64_t group_channels, double offset_scale) {
  TORCH_CHECK(kernel_h > 0 && kernel_w > 0, "dcnv3: kernel size must be positive, got (",
              kernel_h, ", ", kernel_w, ")");
  TORCH_CHECK(stride_h > 0 && stride_w > 0, "dcnv3: stride must be positive, got (", stride_h,
              ", ", stride_w, ")");
  TORCH_CHECK(dilation_h > 0 && dilation_w > 0, "dcnv3: dilation must be positive, got (",
              dilation_h, ", ", dilation_w, ")");
  TORCH_CHECK(group > 0 && group_channels > 0,
              "dcnv3: group and group_channels must be positive, got ", group, " and ",
              group_channels);
  TORCH_CHECK(input.dim() == 4, "dcnv3: input must be (B, H, W, G * Cg), got shape ",
              input.sizes());
  TORCH_CHECK(offset.dim() == 4, "dcnv3: offset must be (B, Ho, Wo, G * P * 2), got shape ",
              offset.sizes());
  TORCH_CHECK(mask.dim() == 4, "dcnv3: mask must be (B, Ho, Wo, G * P), got shape ",
              mask.sizes());
  TORCH_CHECK(input.device() == offset.device() && input.device() == mask.device(),
              "dcnv3: input, offset and mask must be on one device, got ", input.device(), ", ",
              offset.device(), " and ", mask.device());
  TORCH_CHECK(input.scalar_type() == offset.scalar_type() &&
                  input.scalar_type() == mask.scalar_type(),
              "dcnv3: input, offset and mask must have one dtype, got ", input.scalar_type(),
              ", ", offset.scalar_type(), " and ", mask.scalar_type());
  const int64_t points = kernel_h * kernel_w;
  const int64_t batch = input.size(0), height_out = offset.size(1), width_out = offset.size(2);
  TORCH_CHECK(input.size(3) == group * group_channels, "dcnv3: input has ", input.size(3),
              " channels but group * group_channels = ", group, " * ", group_channels, " = ",
              group * group_channels);
  TORCH_CHECK(offset.size(0) == batch && offset.size(3) == group * points * 2,
              "dcnv3: offset must be (B, Ho, Wo, G * P * 2) = (", batch,
              ", Ho, Wo, ", group * points * 2, ") for input ", input.sizes(), ", got ",
              offset.sizes());
  TORCH_CHECK(mask.size(0) == batch && mask.size(1) == height_out &&
                  mask.size(2) == width_out && mask.size(3) == group * points,
              "dcnv3: mask must be (B, Ho, Wo, G * P) = (", batch, ", ", height_out, ", ",
              width_out, ", ", group * points, "), got ", mask.sizes());
  return DCNv3Geometry{batch,      input.size(1), input.size(2), height_out, width_out,
                       group,      group_channels, points,       kernel_h,   kernel_w,
                       stride_h,   stride_w,      pad_h,         pad_w,      dilation_h,
                       dilation_w, offset_scale};
}

void check_dtype_for_device(const at::Tensor& t) {
  const auto dtype = t.scalar_type();
  if (t.is_cuda()) {
    TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf ||
                    dtype == at::kBFloat16,
                "dcnv3: CUDA kernels support float32, float64, float16 and bfloat16, got ",
                dtype);
  } else {
    TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble,
                "dcnv3: CPU kernels support float32 and float64, got ", dtype);
  }
}

void check_device_built(const at::Tensor& t) {
#ifdef WITH_CUDA
  TORCH_CHECK(t.is_cpu() || t.is_cuda(), "dcnv3: no kernels for device ", t.device());
#else
  TORCH_CHECK(t.is_cpu(), "dcnv3: stm_mm._ext was built without CUDA kernels (rebuild with ",
              "FORCE_CUDA=1 pip install -e .) and has no kernels for device ", t.device());
#endif
}

at::Tensor dcnv3_forward(const at::Tensor& input, const at::Tensor& offset,
                         const at::Tensor& mask, int64_t kernel_h, int64_t kernel_w,
                         int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                         int64_t dilation_h, int64_t dilation_w, int64_t group,
                         int64_t group_channels, double offset_scale) {
  const DCNv3Geometry geo = check_and_describe(input, offset, mask, kernel_h, kernel_w,
                                               stride_h, stride_w, pad_h, pad_w, dilation_h,
                                               dilation_w, group, group_channels, offset_scale);
  check_device_built(input);
  check_dtype_for_device(input);
#ifdef WITH_CUDA
  if (input.is_cuda()) {
    return dcnv3_forward_cuda(input.contiguous(), offset.contiguous(), mask.contiguous(), geo);
  }
#endif
  return dcnv3_forward_cpu(input.contiguous(), offset.contiguous(), mask.contiguous(), geo);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dcnv3_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& offset,
    const at::Tensor& mask, int64_t kernel_h, int64_t kernel_w, int64_t stride_h,
    int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w,
    int64_t group, int64_t group_channels, double offset_scale) {
  const DCNv3Geometry geo = check_and_describe(input, offset, mask, kernel_h, kernel_w,
                                               stride_h, stride_w, pad_h, pad_w, dilation_h,
                                               dilation_w, group, group_channels, offset_scale);
  check_device_built(input);
  check_dtype_for_device(input);
  TORCH_CHECK(grad_output.device() == input.device() &&
                  grad_output.scalar_type() == input.scalar_type(),
              "dcnv3: grad_output must match input's device and dtype, got ",
              grad_output.device(), " ", grad_output.scalar_type(), " for input on ",
              input.device(), " ", input.scalar_type());
  TORCH_CHECK(grad_output.dim() == 4 && grad_output.size(0) == geo.batch &&
                  grad_output.size(1) == geo.height_out &&
                  grad_output.size(2) == geo.width_out && grad_output.size(3) == input.size(3),
              "dcnv3: grad_output must be (B, Ho, Wo, G * Cg) = (", geo.batch, ", ",
              geo.height_out, ", ", geo.width_out, ", ", input.size(3), "), got ",
              grad_output.sizes());
#ifdef WITH_CUDA
  if (input.is_cuda()) {
    return dcnv3_backward_cuda(grad_output.contiguous(), input.contiguous(),
                               offset.contiguous(), mask.contiguous(), geo);
  }
#endif
  return dcnv3_backward_cpu(grad_output.contiguous(), input.contiguous(), offset.contiguous(),
                            mask.contiguous(), geo);
}

std::tuple<at::Tensor, at::Tensor> depthwise_conv2d_param_grads(const at::Tensor& grad_output,
                                                                const at::Tensor& input,
                                                                int64_t kernel_h, int64_t kernel_w,
                                                                int64_t pad_h, int64_t pad_w) {
  TORCH_CHECK(input.is_cpu() && grad_output.is_cpu(),
              "depthwise_conv2d_param_grads: CPU tensors only, got ", input.device());
  TORCH_CHECK(input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble,
              "depthwise_conv2d_param_grads: float32 or float64 only, got ", input.scalar_type());
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type(),
              "depthwise_conv2d_param_grads: grad_output and input dtypes differ: ",
              grad_output.scalar_type(), " vs ", input.scalar_type());
  TORCH_CHECK(kernel_h > 0 && kernel_w > 0 && pad_h >= 0 && pad_w >= 0,
              "depthwise_conv2d_param_grads: bad kernel (", kernel_h, ", ", kernel_w,
              ") or padding (", pad_h, ", ", pad_w, ")");
  TORCH_CHECK(input.dim() == 4 && grad_output.dim() == 4,
              "depthwise_conv2d_param_grads: input and grad_output must be (B, H, W, C), got ",
              input.sizes(), " and ", grad_output.sizes());
  const int64_t height_out = input.size(1) + 2 * pad_h - kernel_h + 1;
  const int64_t width_out = input.size(2) + 2 * pad_w - kernel_w + 1;
  TORCH_CHECK(grad_output.size(0) == input.size(0) && grad_output.size(1) == height_out &&
                  grad_output.size(2) == width_out && grad_output.size(3) == input.size(3),
              "depthwise_conv2d_param_grads: grad_output must be (", input.size(0), ", ",
              height_out, ", ", width_out, ", ", input.size(3), ") for input ", input.sizes(),
              ", got ", grad_output.sizes());
  return depthwise_conv2d_weight_bias_grad_cpu(grad_output.contiguous(), input.contiguous(),
                                               kernel_h, kernel_w, pad_h, pad_w);
}

bool with_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace
}  // namespace stm_mm

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "stm_mm compiled operators (DCNv3 forward and backward on CPU and, if built, CUDA; "
          "depth-wise convolution parameter gradients on CPU)";
  m.def("dcnv3_forward", &stm_mm::dcnv3_forward,
        "DCNv3 forward: (input (B, H, W, G*Cg), offset (B, Ho, Wo, G*P*2), mask (B, Ho, Wo, "
        "G*P), kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, "
        "group, group_channels, offset_scale) -> output (B, Ho, Wo, G*Cg)",
        py::arg("input"), py::arg("offset"), py::arg("mask"), py::arg("kernel_h"),
        py::arg("kernel_w"), py::arg("stride_h"), py::arg("stride_w"), py::arg("pad_h"),
        py::arg("pad_w"), py::arg("dilation_h"), py::arg("dilation_w"), py::arg("group"),
        py::arg("group_channels"), py::arg("offset_scale"));
  m.def("dcnv3_backward", &stm_mm::dcnv3_backward,
        "DCNv3 backward: (grad_output (B, Ho, Wo, G*Cg), input, offset, mask, <forward's "
        "integer arguments>, offset_scale) -> (grad_input, grad_offset, grad_mask)",
        py::arg("grad_output"), py::arg("input"), py::arg("offset"), py::arg("mask"),
        py::arg("kernel_h"), py::arg("kernel_w"), py::arg("stride_h"), py::arg("stride_w"),
        py::arg("pad_h"), py::arg("pad_w"), py::arg("dilation_h"), py::arg("dilation_w"),
        py::arg("group"), py::arg("group_channels"), py::arg("offset_scale"));
  m.def("depthwise_conv2d_param_grads", &stm_mm::depthwise_conv2d_param_grads,
        "Depth-wise conv (stride 1) weight and bias gradients on the CPU: (grad_output (B, Ho, "
        "Wo, C), input (B, H, W, C), kernel_h, kernel_w, pad_h, pad_w) -> (grad_weight (C, 1, "
        "kernel_h, kernel_w), grad_bias (C))",
        py::arg("grad_output"), py::arg("input"), py::arg("kernel_h"), py::arg("kernel_w"),
        py::arg("pad_h"), py::arg("pad_w"));
  m.def("with_cuda", &stm_mm::with_cuda, "True when the CUDA kernels were compiled in");
}
