// DCNv3 forward and backward on CUDA for float32, float64, float16 and bfloat16; sums are kept
// in float32 (float64 for float64).
//
// One thread per output element (b, ho, wo, g, c), channel fastest, so the lanes of a warp read
// and write consecutive channels of the same neighbour: every load of input and every atomic add
// to grad_input is coalesced, and offset / mask values are warp-wide broadcasts.
//
// Backward: grad_input receives atomic adds (in the accumulation dtype, cast once at the end).
// grad_offset and grad_mask sum over the Cg channels of one (pixel, group, point): lanes of the
// same (pixel, group) reduce with warp shuffles first, so that one atomic add per warp segment
// remains (none contended when Cg divides 32, the usual Cg = 16 or 32).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <initializer_list>
#include <limits>

#include "dcnv3.h"

namespace stm_mm {
namespace {

constexpr int kThreads = 256;  // a multiple of the warp size (the reductions rely on it)
constexpr unsigned kFullWarp = 0xffffffffu;

// DCNv3Geometry in the kernel's index type.
template <typename index_t>
struct Geometry {
  index_t height, width, height_out, width_out, group, group_channels, channels, points;
  index_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
};

template <typename index_t>
Geometry<index_t> to_index_type(const DCNv3Geometry& g) {
  return Geometry<index_t>{
      static_cast<index_t>(g.height),     static_cast<index_t>(g.width),
      static_cast<index_t>(g.height_out), static_cast<index_t>(g.width_out),
      static_cast<index_t>(g.group),      static_cast<index_t>(g.group_channels),
      static_cast<index_t>(g.group * g.group_channels),
      static_cast<index_t>(g.points),     static_cast<index_t>(g.kernel_h),
      static_cast<index_t>(g.kernel_w),   static_cast<index_t>(g.stride_h),
      static_cast<index_t>(g.stride_w),   static_cast<index_t>(g.pad_h),
      static_cast<index_t>(g.pad_w),      static_cast<index_t>(g.dilation_h),
      static_cast<index_t>(g.dilation_w)};
}

// Position of one output element.
template <typename index_t>
struct Element {
  index_t c, slot, b, ho, wo;  // slot = pixel * G + g indexes the (pixel, group) pair
  index_t g;
};

template <typename index_t>
__device__ __forceinline__ Element<index_t> decompose(index_t e, const Geometry<index_t>& geo) {
  Element<index_t> el;
  el.c = e % geo.group_channels;
  el.slot = e / geo.group_channels;
  el.g = el.slot % geo.group;
  const index_t pix = el.slot / geo.group;
  el.wo = pix % geo.width_out;
  el.ho = (pix / geo.width_out) % geo.height_out;
  el.b = pix / (geo.width_out * geo.height_out);
  return el;
}

// Bilinear neighbourhood of one sampling position: the four neighbours' values (zero outside
// the map), their weights and the fractions.
template <typename acc_t, typename index_t>
struct Bilinear {
  index_t h0, w0;
  acc_t lh, lw;
  bool in00, in01, in10, in11;
  acc_t v00, v01, v10, v11;
};

// False when no neighbour of (x, y) lies inside the map (also for NaN or huge positions).
// `in` points at this thread's channel of pixel (0, 0) of its image; pixels are C apart.
template <typename scalar_t, typename acc_t, typename index_t>
__device__ __forceinline__ bool sample(const scalar_t* __restrict__ in, acc_t x, acc_t y,
                                       const Geometry<index_t>& geo,
                                       Bilinear<acc_t, index_t>& s) {
  if (!(y > acc_t(-1) && y < acc_t(geo.height) && x > acc_t(-1) && x < acc_t(geo.width))) {
    return false;
  }
  const acc_t hf = floor(y), wf = floor(x);
  s.h0 = static_cast<index_t>(hf);
  s.w0 = static_cast<index_t>(wf);
  s.lh = y - hf;
  s.lw = x - wf;
  const bool top = s.h0 >= 0, bottom = s.h0 + 1 < geo.height;
  const bool left = s.w0 >= 0, right = s.w0 + 1 < geo.width;
  s.in00 = top && left;
  s.in01 = top && right;
  s.in10 = bottom && left;
  s.in11 = bottom && right;
  const index_t at = s.h0 * geo.width + s.w0;
  s.v00 = s.in00 ? static_cast<acc_t>(in[at * geo.channels]) : acc_t(0);
  s.v01 = s.in01 ? static_cast<acc_t>(in[(at + 1) * geo.channels]) : acc_t(0);
  s.v10 = s.in10 ? static_cast<acc_t>(in[(at + geo.width) * geo.channels]) : acc_t(0);
  s.v11 = s.in11 ? static_cast<acc_t>(in[(at + geo.width + 1) * geo.channels]) : acc_t(0);
  return true;
}

template <typename scalar_t, typename acc_t, typename index_t>
__global__ void __launch_bounds__(kThreads)
    dcnv3_forward_kernel(const scalar_t* __restrict__ input, const scalar_t* __restrict__ offset,
                         const scalar_t* __restrict__ mask, scalar_t* __restrict__ output,
                         Geometry<index_t> geo, acc_t scale, index_t total) {
  const index_t e = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= total) return;
  const Element<index_t> el = decompose(e, geo);
  const scalar_t* in = input + el.b * geo.height * geo.width * geo.channels +
                       el.g * geo.group_channels + el.c;
  const scalar_t* off = offset + el.slot * geo.points * 2;
  const scalar_t* m = mask + el.slot * geo.points;
  const index_t x0 = el.wo * geo.stride_w - geo.pad_w, y0 = el.ho * geo.stride_h - geo.pad_h;
  acc_t acc = 0;
  for (index_t i = 0; i < geo.kernel_w; ++i) {
    for (index_t j = 0; j < geo.kernel_h; ++j) {
      const index_t p = i * geo.kernel_h + j;
      const acc_t x = static_cast<acc_t>(x0 + i * geo.dilation_w) +
                      static_cast<acc_t>(off[2 * p]) * scale;
      const acc_t y = static_cast<acc_t>(y0 + j * geo.dilation_h) +
                      static_cast<acc_t>(off[2 * p + 1]) * scale;
      Bilinear<acc_t, index_t> s;
      if (!sample(in, x, y, geo, s)) continue;
      const acc_t value = (1 - s.lh) * ((1 - s.lw) * s.v00 + s.lw * s.v01) +
                          s.lh * ((1 - s.lw) * s.v10 + s.lw * s.v11);
      acc += static_cast<acc_t>(m[p]) * value;
    }
  }
  output[e] = static_cast<scalar_t>(acc);
}

// Sum of v over aligned groups of `segment` lanes (a power of two up to 32), in every lane.
template <typename acc_t>
__device__ __forceinline__ acc_t segment_sum(acc_t v, int segment) {
  for (int lanes = segment / 2; lanes > 0; lanes /= 2) v += __shfl_xor_sync(kFullWarp, v, lanes);
  return v;
}

// Lanes past `total` take part in the warp reductions with zeros and write nothing, so every
// lane of a warp reaches every shuffle.
template <typename scalar_t, typename acc_t, typename index_t>
__global__ void __launch_bounds__(kThreads)
    dcnv3_backward_kernel(const scalar_t* __restrict__ grad_output,
                          const scalar_t* __restrict__ input, const scalar_t* __restrict__ offset,
                          const scalar_t* __restrict__ mask, acc_t* __restrict__ grad_input,
                          acc_t* __restrict__ grad_offset, acc_t* __restrict__ grad_mask,
                          Geometry<index_t> geo, acc_t scale, index_t total, int segment) {
  const index_t raw = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool active = raw < total;
  const index_t e = active ? raw : total - 1;
  const Element<index_t> el = decompose(e, geo);
  const index_t in_base = el.b * geo.height * geo.width * geo.channels +
                          el.g * geo.group_channels + el.c;
  const scalar_t* in = input + in_base;
  acc_t* grad_in = grad_input + in_base;
  const scalar_t* off = offset + el.slot * geo.points * 2;
  const scalar_t* m = mask + el.slot * geo.points;
  const acc_t go = active ? static_cast<acc_t>(grad_output[e]) : acc_t(0);
  const index_t x0 = el.wo * geo.stride_w - geo.pad_w, y0 = el.ho * geo.stride_h - geo.pad_h;
  const bool leader = active && el.c % segment == 0;
  for (index_t i = 0; i < geo.kernel_w; ++i) {
    for (index_t j = 0; j < geo.kernel_h; ++j) {
      const index_t p = i * geo.kernel_h + j;
      const acc_t x = static_cast<acc_t>(x0 + i * geo.dilation_w) +
                      static_cast<acc_t>(off[2 * p]) * scale;
      const acc_t y = static_cast<acc_t>(y0 + j * geo.dilation_h) +
                      static_cast<acc_t>(off[2 * p + 1]) * scale;
      const acc_t mp = static_cast<acc_t>(m[p]);
      acc_t gm = 0, gx = 0, gy = 0;
      Bilinear<acc_t, index_t> s;
      if (sample(in, x, y, geo, s)) {
        const acc_t ph = 1 - s.lh, pw = 1 - s.lw;
        gm = go * (ph * (pw * s.v00 + s.lw * s.v01) + s.lh * (pw * s.v10 + s.lw * s.v11));
        gx = go * mp * (ph * (s.v01 - s.v00) + s.lh * (s.v11 - s.v10));
        gy = go * mp * (pw * (s.v10 - s.v00) + s.lw * (s.v11 - s.v01));
        if (active) {
          const acc_t a = go * mp;
          const index_t at = (s.h0 * geo.width + s.w0) * geo.channels;
          if (s.in00) atomicAdd(grad_in + at, a * ph * pw);
          if (s.in01) atomicAdd(grad_in + (at + geo.channels), a * ph * s.lw);
          if (s.in10) atomicAdd(grad_in + (at + geo.width * geo.channels), a * s.lh * pw);
          if (s.in11) {
            atomicAdd(grad_in + (at + (geo.width + 1) * geo.channels), a * s.lh * s.lw);
          }
        }
      }
      gm = segment_sum(gm, segment);
      gx = segment_sum(gx, segment);
      gy = segment_sum(gy, segment);
      if (leader) {
        const index_t q = el.slot * geo.points + p;
        atomicAdd(grad_mask + q, gm);
        atomicAdd(grad_offset + 2 * q, gx * scale);
        atomicAdd(grad_offset + 2 * q + 1, gy * scale);
      }
    }
  }
}

int64_t blocks_for(int64_t total) { return (total + kThreads - 1) / kThreads; }

// Calls fn(index_t{}) with int32_t when every index fits, else int64_t.
template <typename Fn>
void with_index_type(std::initializer_list<at::Tensor> tensors, const Fn& fn) {
  bool small = true;
  for (const auto& t : tensors) {
    small = small && t.numel() + kThreads <= std::numeric_limits<int32_t>::max();
  }
  if (small) {
    fn(int32_t{});
  } else {
    fn(int64_t{});
  }
}

}  // namespace

at::Tensor dcnv3_forward_cuda(const at::Tensor& input, const at::Tensor& offset,
                              const at::Tensor& mask, const DCNv3Geometry& geo) {
  const c10::cuda::CUDAGuard guard(input.device());
  auto output = at::empty({geo.batch, geo.height_out, geo.width_out, input.size(3)},
                          input.options());
  const int64_t total = output.numel();
  if (total == 0) return output;
  if (geo.height == 0 || geo.width == 0) return output.zero_();
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "dcnv3_forward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        with_index_type({input, offset, output}, [&](auto index) {
          using index_t = decltype(index);
          dcnv3_forward_kernel<scalar_t, acc_t, index_t>
              <<<blocks_for(total), kThreads, 0, stream>>>(
                  input.data_ptr<scalar_t>(), offset.data_ptr<scalar_t>(),
                  mask.data_ptr<scalar_t>(), output.data_ptr<scalar_t>(),
                  to_index_type<index_t>(geo), static_cast<acc_t>(geo.offset_scale),
                  static_cast<index_t>(total));
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
      });
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dcnv3_backward_cuda(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& offset,
    const at::Tensor& mask, const DCNv3Geometry& geo) {
  const c10::cuda::CUDAGuard guard(input.device());
  // Gradients accumulate in float32 (float64 for float64) and are cast once at the end.
  const auto acc_options = input.options().dtype(at::toOpMathType(input.scalar_type()));
  auto grad_input = at::zeros(input.sizes(), acc_options);
  auto grad_offset = at::zeros(offset.sizes(), acc_options);
  auto grad_mask = at::zeros(mask.sizes(), acc_options);
  const int64_t total = grad_output.numel();
  if (total > 0 && geo.height > 0 && geo.width > 0) {
    const int64_t cg = geo.group_channels;
    const int segment = cg <= 32 && 32 % cg == 0 ? static_cast<int>(cg) : cg % 32 == 0 ? 32 : 1;
    const auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, input.scalar_type(), "dcnv3_backward_cuda", [&] {
          using acc_t = at::opmath_type<scalar_t>;
          with_index_type({input, offset, grad_output}, [&](auto index) {
            using index_t = decltype(index);
            dcnv3_backward_kernel<scalar_t, acc_t, index_t>
                <<<blocks_for(total), kThreads, 0, stream>>>(
                    grad_output.data_ptr<scalar_t>(), input.data_ptr<scalar_t>(),
                    offset.data_ptr<scalar_t>(), mask.data_ptr<scalar_t>(),
                    grad_input.data_ptr<acc_t>(), grad_offset.data_ptr<acc_t>(),
                    grad_mask.data_ptr<acc_t>(), to_index_type<index_t>(geo),
                    static_cast<acc_t>(geo.offset_scale), static_cast<index_t>(total), segment);
            C10_CUDA_KERNEL_LAUNCH_CHECK();
          });
        });
  }
  const auto dtype = input.scalar_type();
  return {grad_input.to(dtype), grad_offset.to(dtype), grad_mask.to(dtype)};
}

}  // namespace stm_mm
