// Weight and bias gradients of a depth-wise 2-D convolution (stride 1, dilation 1) on
// channels-last maps, on the CPU (float32 and float64).
//
//   grad_weight[c, i, j] = sum over b, ho, wo of grad_output[b, ho, wo, c] *
//                          input[b, ho + i - pad_h, wo + j - pad_w, c]   (zero outside the map)
//   grad_bias[c]         = sum over b, ho, wo of grad_output[b, ho, wo, c]
//
// Why: for channels-last maps oneDNN's depth-wise weight gradient runs ~10x slower than the
// forward pass, and its bias gradient slower still. Here each (image, output row) is one task;
// for every kernel tap (i, j) and block of channels the task sums the row's products in
// registers (contiguous channels are the vector lanes), then adds them to the partial sums of
// its chunk of rows. The chunks are a fixed number of contiguous row ranges, summed in order at
// the end, so the result does not depend on the thread count.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <vector>

#include "depthwise_conv.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 11
#define STM_MM_DW_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define STM_MM_DW_CLONES
#endif
#if defined(__GNUC__)
#define STM_MM_DW_INLINE inline __attribute__((always_inline))
#else
#define STM_MM_DW_INLINE inline
#endif

namespace stm_mm {
namespace {

constexpr int64_t kChunks = 16;  // partial sums kept; fixed so results ignore the thread count

struct DepthwiseGeometry {
  int64_t batch, height, width, height_out, width_out, channels;
  int64_t kernel_h, kernel_w, pad_h, pad_w;
};

// sum over wo in [begin, end) of g[wo, c0 + c] * x[wo + shift, c0 + c], c < width, added to out.
template <typename T, int64_t kWidth>
STM_MM_DW_INLINE void tap_block(const T* g, const T* x, int64_t begin, int64_t end,
                                int64_t shift, int64_t channels, int64_t c0, double* out) {
  T acc[kWidth] = {};
  for (int64_t wo = begin; wo < end; ++wo) {
    const T* gp = g + wo * channels + c0;
    const T* xp = x + (wo + shift) * channels + c0;
    for (int64_t c = 0; c < kWidth; ++c) acc[c] += gp[c] * xp[c];
  }
  for (int64_t c = 0; c < kWidth; ++c) out[c0 + c] += acc[c];
}

template <typename T>
STM_MM_DW_INLINE void tap_tail(const T* g, const T* x, int64_t begin, int64_t end, int64_t shift,
                               int64_t channels, int64_t c0, double* out) {
  for (int64_t c = c0; c < channels; ++c) {
    T acc = 0;
    for (int64_t wo = begin; wo < end; ++wo) acc += g[wo * channels + c] * x[(wo + shift) * channels + c];
    out[c] += acc;
  }
}

// All taps and the bias of output row `row` (= b * Ho + ho), added to `weight_sums`
// (KH * KW * C, tap-major) and `bias_sums` (C).
template <typename T>
STM_MM_DW_INLINE void accumulate_row(const T* grad, const T* input, const DepthwiseGeometry& geo,
                                     int64_t row, double* weight_sums, double* bias_sums) {
  constexpr int64_t kBlock = 16;
  const int64_t C = geo.channels;
  const int64_t b = row / geo.height_out, ho = row % geo.height_out;
  const T* g = grad + row * geo.width_out * C;
  const int64_t full = C / kBlock * kBlock;
  for (int64_t c0 = 0; c0 < full; c0 += kBlock) {
    T acc[kBlock] = {};
    for (int64_t wo = 0; wo < geo.width_out; ++wo)
      for (int64_t c = 0; c < kBlock; ++c) acc[c] += g[wo * C + c0 + c];
    for (int64_t c = 0; c < kBlock; ++c) bias_sums[c0 + c] += acc[c];
  }
  for (int64_t c = full; c < C; ++c) {
    T acc = 0;
    for (int64_t wo = 0; wo < geo.width_out; ++wo) acc += g[wo * C + c];
    bias_sums[c] += acc;
  }
  for (int64_t i = 0; i < geo.kernel_h; ++i) {
    const int64_t hi = ho + i - geo.pad_h;
    if (hi < 0 || hi >= geo.height) continue;
    const T* x = input + (b * geo.height + hi) * geo.width * C;
    for (int64_t j = 0; j < geo.kernel_w; ++j) {
      const int64_t shift = j - geo.pad_w;
      const int64_t begin = std::max<int64_t>(0, -shift);
      const int64_t end = std::min<int64_t>(geo.width_out, geo.width - shift);
      if (begin >= end) continue;
      double* out = weight_sums + (i * geo.kernel_w + j) * C;
      for (int64_t c0 = 0; c0 < full; c0 += kBlock)
        tap_block<T, kBlock>(g, x, begin, end, shift, C, c0, out);
      if (full < C) tap_tail<T>(g, x, begin, end, shift, C, full, out);
    }
  }
}

STM_MM_DW_CLONES void accumulate_rows_float(const float* grad, const float* input,
                                            const DepthwiseGeometry& geo, int64_t begin,
                                            int64_t end, double* weight_sums,
                                            double* bias_sums) {
  for (int64_t row = begin; row < end; ++row)
    accumulate_row<float>(grad, input, geo, row, weight_sums, bias_sums);
}

STM_MM_DW_CLONES void accumulate_rows_double(const double* grad, const double* input,
                                             const DepthwiseGeometry& geo, int64_t begin,
                                             int64_t end, double* weight_sums,
                                             double* bias_sums) {
  for (int64_t row = begin; row < end; ++row)
    accumulate_row<double>(grad, input, geo, row, weight_sums, bias_sums);
}

void accumulate_rows(const float* grad, const float* input, const DepthwiseGeometry& geo,
                     int64_t begin, int64_t end, double* weight_sums, double* bias_sums) {
  accumulate_rows_float(grad, input, geo, begin, end, weight_sums, bias_sums);
}

void accumulate_rows(const double* grad, const double* input, const DepthwiseGeometry& geo,
                     int64_t begin, int64_t end, double* weight_sums, double* bias_sums) {
  accumulate_rows_double(grad, input, geo, begin, end, weight_sums, bias_sums);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> depthwise_conv2d_weight_bias_grad_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, int64_t kernel_h, int64_t kernel_w,
    int64_t pad_h, int64_t pad_w) {
  const DepthwiseGeometry geo{input.size(0),       input.size(1), input.size(2),
                              grad_output.size(1), grad_output.size(2), input.size(3),
                              kernel_h,            kernel_w,      pad_h,
                              pad_w};
  const int64_t C = geo.channels, taps = kernel_h * kernel_w;
  const int64_t rows = geo.batch * geo.height_out;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(kChunks, rows));
  const int64_t sums_per_chunk = (taps + 1) * C;  // KH * KW * C weight sums, then C bias sums
  std::vector<double> sums(chunks * sums_per_chunk, 0.0);
  auto grad_weight = at::empty({C, 1, kernel_h, kernel_w}, input.options());
  auto grad_bias = at::empty({C}, input.options());
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "depthwise_conv2d_weight_bias_grad_cpu", [&] {
    const scalar_t* grad = grad_output.data_ptr<scalar_t>();
    const scalar_t* in = input.data_ptr<scalar_t>();
    at::parallel_for(0, chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
      for (int64_t k = chunk_begin; k < chunk_end; ++k) {
        double* chunk_sums = sums.data() + k * sums_per_chunk;
        accumulate_rows(grad, in, geo, rows * k / chunks, rows * (k + 1) / chunks, chunk_sums,
                        chunk_sums + taps * C);
      }
    });
    scalar_t* gw = grad_weight.data_ptr<scalar_t>();
    scalar_t* gb = grad_bias.data_ptr<scalar_t>();
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t t = 0; t <= taps; ++t) {
        double total = 0;
        for (int64_t k = 0; k < chunks; ++k) total += sums[k * sums_per_chunk + t * C + c];
        if (t < taps) {
          gw[c * taps + t] = static_cast<scalar_t>(total);
        } else {
          gb[c] = static_cast<scalar_t>(total);
        }
      }
    }
  });
  return {grad_weight, grad_bias};
}

}  // namespace stm_mm
