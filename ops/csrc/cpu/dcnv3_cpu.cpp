// DCNv3 forward and backward on the CPU (float32 and float64), parallelised with
// at::parallel_for (tasks handed out dynamically).
//
// Forward: every output pixel is independent; threads split the (batch, output pixel) range and
// each sums its G * Cg outputs over the points' bilinear neighbours, Cg contiguous channels each.
//
// Backward: grad_offset and grad_mask belong to one output pixel, group and point, but
// grad_input receives scattered sums from many output pixels. Work is split into tasks of
// (image b, block of groups): a task is the only writer of its groups' channels of image b, so
// threads never write to the same grad_input element, and blocks are as wide as the thread
// count allows so that each task reads whole rows of grad_output, offset and mask. With fewer
// (image, group) pairs than threads, each pair's output pixels are split into chunks that
// accumulate into private (H, W, Cg) buffers, summed into grad_input afterwards.
//
// float32 with 16 or 32 channels per group (every InternImage / U-InternImage model) runs on
// fixed-width vector code (GNU vector extensions, 8 floats per vector); other cases on plain
// loops the compiler vectorises.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <type_traits>
#include <vector>

#include "dcnv3.h"

// Clone the hot loops for AVX2 + FMA (x86-64-v3, GCC 11+); the loader picks the clone the CPU
// supports. (AVX-512 clones measured slower: the per-point reductions dominate, not the
// multiply-adds. "arch=haswell" would be matched by CPU model, not by features.)
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 11
#define STM_MM_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define STM_MM_VECTOR_CLONES
#endif
// Forced inlining compiles the helpers inside each clone, for that clone's instruction set.
// GNU compilers also get the fixed-width vector path (STM_MM_VECTOR_EXT).
#if defined(__GNUC__)
#define STM_MM_INLINE inline __attribute__((always_inline))
#define STM_MM_VECTOR_EXT 1
#else
#define STM_MM_INLINE inline
#endif

namespace stm_mm {
namespace {

// Where one sampling point falls: its top-left neighbour (h0, w0), the fractions, which of the
// four neighbours lie inside the map, their bilinear weights (zero outside the map), and their
// flat pixel indices (clamped into the map, so that reading them is always safe).
template <typename T>
struct Footprint {
  int64_t h0, w0;
  T lh, lw;
  bool top, bottom, left, right;  // rows h0 / h0 + 1 and columns w0 / w0 + 1 inside the map
  T w00, w01, w10, w11;           // (h0, w0), (h0, w0 + 1), (h0 + 1, w0), (h0 + 1, w0 + 1)
  int64_t i00, i01, i10, i11;
};

// Returns false when no neighbour lies inside the map (also for NaN or huge positions).
template <typename T>
STM_MM_INLINE bool locate(T x, T y, int64_t height, int64_t width, Footprint<T>& f) {
  if (!(y > T(-1) && y < T(height) && x > T(-1) && x < T(width))) return false;
  const T hf = std::floor(y), wf = std::floor(x);
  f.h0 = static_cast<int64_t>(hf);
  f.w0 = static_cast<int64_t>(wf);
  f.lh = y - hf;
  f.lw = x - wf;
  f.top = f.h0 >= 0;
  f.bottom = f.h0 + 1 < height;
  f.left = f.w0 >= 0;
  f.right = f.w0 + 1 < width;
  f.w00 = f.top && f.left ? (1 - f.lh) * (1 - f.lw) : T(0);
  f.w01 = f.top && f.right ? (1 - f.lh) * f.lw : T(0);
  f.w10 = f.bottom && f.left ? f.lh * (1 - f.lw) : T(0);
  f.w11 = f.bottom && f.right ? f.lh * f.lw : T(0);
  const int64_t r0 = f.top ? f.h0 : 0, r1 = f.bottom ? f.h0 + 1 : height - 1;
  const int64_t c0 = f.left ? f.w0 : 0, c1 = f.right ? f.w0 + 1 : width - 1;
  f.i00 = r0 * width + c0;
  f.i01 = r0 * width + c1;
  f.i10 = r1 * width + c0;
  f.i11 = r1 * width + c1;
  return true;
}

// Channels per group as a type: kCg > 0 is known at compile time, 0 means run-time.
template <int kCg>
using GroupChannels = std::integral_constant<int, kCg>;

// Pointers to the four neighbours' Cg values (v) and gradients (g) of one sampling point.
template <typename T>
struct Neighbours {
  const T *v00, *v01, *v10, *v11;
  T *g00, *g01, *g10, *g11;
};

// Sum of one group's Cg outputs over its sampling points, run-time Cg: kept in the output row.
template <typename T, int kCg, typename = void>
struct GroupSum {
  T* out;
  int64_t n;
  STM_MM_INLINE GroupSum(T* out_row, int64_t channels) : out(out_row), n(channels) {
    std::fill(out, out + n, T(0));
  }
  // out[c] += a00 * v00[c] + a01 * v01[c] + a10 * v10[c] + a11 * v11[c]
  STM_MM_INLINE void add(const T* __restrict__ v00, const T* __restrict__ v01,
                         const T* __restrict__ v10, const T* __restrict__ v11, T a00, T a01,
                         T a10, T a11) {
    T* __restrict__ acc = out;
#pragma omp simd
    for (int64_t c = 0; c < n; ++c) {
      acc[c] += (a00 * v00[c] + a01 * v01[c]) + (a10 * v10[c] + a11 * v11[c]);
    }
  }
  STM_MM_INLINE void finish() {}
};

// Backward of one sampling point, run-time Cg: adds m * w_rc * go to the neighbours' gradients
// and returns in sums <go, sample>, <go, d sample / dx> and <go, d sample / dy>.
template <typename T>
STM_MM_INLINE void backward_point(GroupChannels<0>, const Footprint<T>& f,
                                  const T* __restrict__ go, const Neighbours<T>& nb, T m,
                                  int64_t n, T* sums) {
  const T* __restrict__ v00 = nb.v00;
  const T* __restrict__ v01 = nb.v01;
  const T* __restrict__ v10 = nb.v10;
  const T* __restrict__ v11 = nb.v11;
  T* __restrict__ g00 = nb.g00;
  T* __restrict__ g01 = nb.g01;
  T* __restrict__ g10 = nb.g10;
  T* __restrict__ g11 = nb.g11;
  const T a00 = m * f.w00, a01 = m * f.w01, a10 = m * f.w10, a11 = m * f.w11;
  const T ph = 1 - f.lh, pw = 1 - f.lw;
  T dm = 0, dx = 0, dy = 0;
#pragma omp simd reduction(+ : dm, dx, dy)
  for (int64_t c = 0; c < n; ++c) {
    const T gc = go[c];
    dm += gc * ((f.w00 * v00[c] + f.w01 * v01[c]) + (f.w10 * v10[c] + f.w11 * v11[c]));
    dx += gc * (ph * (v01[c] - v00[c]) + f.lh * (v11[c] - v10[c]));
    dy += gc * (pw * (v10[c] - v00[c]) + f.lw * (v11[c] - v01[c]));
    g00[c] += a00 * gc;
    g01[c] += a01 * gc;
    g10[c] += a10 * gc;
    g11[c] += a11 * gc;
  }
  sums[0] = dm;
  sums[1] = dx;
  sums[2] = dy;
}

#ifdef STM_MM_VECTOR_EXT
// Eight floats; the compiler maps it to one AVX register, or two SSE registers. (The helpers
// below are always inlined, so the ABI note GCC gives for 32-byte vectors does not apply.)
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float Float8 __attribute__((vector_size(32)));

STM_MM_INLINE Float8 load8(const float* p) {
  Float8 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

STM_MM_INLINE void store8(float* p, Float8 v) { __builtin_memcpy(p, &v, sizeof(v)); }

// Pairwise sums within 128-bit halves: (a0+a1, a2+a3, b0+b1, b2+b3, a4+a5, a6+a7, b4+b5, b6+b7).
STM_MM_INLINE Float8 pair_sums(Float8 a, Float8 b) {
#if defined(__clang__)
  return __builtin_shufflevector(a, b, 0, 2, 8, 10, 4, 6, 12, 14) +
         __builtin_shufflevector(a, b, 1, 3, 9, 11, 5, 7, 13, 15);
#else
  typedef int Int8 __attribute__((vector_size(32)));
  return __builtin_shuffle(a, b, Int8{0, 2, 8, 10, 4, 6, 12, 14}) +
         __builtin_shuffle(a, b, Int8{1, 3, 9, 11, 5, 7, 13, 15});
#endif
}

// Compile-time Cg (a multiple of 8), float32: the group's sums stay in registers.
template <int kCg>
struct GroupSum<float, kCg, std::enable_if_t<(kCg > 0)>> {
  static_assert(kCg % 8 == 0, "fixed-width path needs a multiple of 8 channels");
  float* out;
  Float8 acc[kCg / 8];
  STM_MM_INLINE GroupSum(float* out_row, int64_t) : out(out_row) {
    for (auto& a : acc) a = Float8{};
  }
  STM_MM_INLINE void add(const float* v00, const float* v01, const float* v10, const float* v11,
                         float a00, float a01, float a10, float a11) {
    for (int k = 0; k < kCg / 8; ++k) {
      acc[k] += (a00 * load8(v00 + 8 * k) + a01 * load8(v01 + 8 * k)) +
                (a10 * load8(v10 + 8 * k) + a11 * load8(v11 + 8 * k));
    }
  }
  STM_MM_INLINE void finish() {
    for (int k = 0; k < kCg / 8; ++k) store8(out + 8 * k, acc[k]);
  }
};

// backward_point for compile-time Cg (a multiple of 8), float32; the three channel sums are
// reduced together with two rounds of pairwise sums instead of three separate reductions.
template <int kCg, std::enable_if_t<(kCg > 0), int> = 0>
STM_MM_INLINE void backward_point(GroupChannels<kCg>, const Footprint<float>& f,
                                  const float* go, const Neighbours<float>& nb, float m, int64_t,
                                  float* sums) {
  static_assert(kCg % 8 == 0, "fixed-width path needs a multiple of 8 channels");
  const float a00 = m * f.w00, a01 = m * f.w01, a10 = m * f.w10, a11 = m * f.w11;
  const float ph = 1 - f.lh, pw = 1 - f.lw;
  Float8 dm{}, dx{}, dy{};
  for (int k = 0; k < kCg / 8; ++k) {
    const Float8 gc = load8(go + 8 * k);
    const Float8 x00 = load8(nb.v00 + 8 * k), x01 = load8(nb.v01 + 8 * k);
    const Float8 x10 = load8(nb.v10 + 8 * k), x11 = load8(nb.v11 + 8 * k);
    dm += gc * ((f.w00 * x00 + f.w01 * x01) + (f.w10 * x10 + f.w11 * x11));
    dx += gc * (ph * (x01 - x00) + f.lh * (x11 - x10));
    dy += gc * (pw * (x10 - x00) + f.lw * (x11 - x01));
    store8(nb.g00 + 8 * k, load8(nb.g00 + 8 * k) + a00 * gc);
    store8(nb.g01 + 8 * k, load8(nb.g01 + 8 * k) + a01 * gc);
    store8(nb.g10 + 8 * k, load8(nb.g10 + 8 * k) + a10 * gc);
    store8(nb.g11 + 8 * k, load8(nb.g11 + 8 * k) + a11 * gc);
  }
  // (dm, dx, dy, dy) partial sums of the low and the high half
  const Float8 r = pair_sums(pair_sums(dm, dx), pair_sums(dy, dy));
  sums[0] = r[0] + r[4];
  sums[1] = r[1] + r[5];
  sums[2] = r[2] + r[6];
}
#endif  // STM_MM_VECTOR_EXT

// Output pixels [begin, end) of the flattened (B, Ho, Wo) range.
template <typename T, int kCg>
STM_MM_INLINE void forward_pixels(const DCNv3Geometry& geo, const T* input, const T* offset,
                                  const T* mask, T* output, int64_t begin, int64_t end) {
  const int64_t H = geo.height, W = geo.width, G = geo.group, P = geo.points;
  const int64_t Cg = kCg > 0 ? kCg : geo.group_channels, C = G * Cg;
  const int64_t pixels_out = geo.height_out * geo.width_out;
  const T scale = static_cast<T>(geo.offset_scale);
  for (int64_t pix = begin; pix < end; ++pix) {
    const int64_t b = pix / pixels_out, ho = (pix % pixels_out) / geo.width_out;
    const int64_t wo = pix % geo.width_out;
    const T x0 = static_cast<T>(wo * geo.stride_w - geo.pad_w);
    const T y0 = static_cast<T>(ho * geo.stride_h - geo.pad_h);
    const T* in_b = input + b * H * W * C;
    for (int64_t g = 0; g < G; ++g) {
      const T* in_g = in_b + g * Cg;
      const T* off = offset + (pix * G + g) * P * 2;
      const T* m = mask + (pix * G + g) * P;
      GroupSum<T, kCg> sum(output + pix * C + g * Cg, Cg);
      for (int64_t i = 0; i < geo.kernel_w; ++i) {
        for (int64_t j = 0; j < geo.kernel_h; ++j) {
          const int64_t p = i * geo.kernel_h + j;
          const T x = x0 + static_cast<T>(i * geo.dilation_w) + off[2 * p] * scale;
          const T y = y0 + static_cast<T>(j * geo.dilation_h) + off[2 * p + 1] * scale;
          Footprint<T> f;
          if (!locate(x, y, H, W, f)) continue;
          sum.add(in_g + f.i00 * C, in_g + f.i01 * C, in_g + f.i10 * C, in_g + f.i11 * C,
                  m[p] * f.w00, m[p] * f.w01, m[p] * f.w10, m[p] * f.w11);
        }
      }
      sum.finish();
    }
  }
}

// Output pixels [begin, end) of image b (flattened (Ho, Wo)), groups [g_begin, g_end).
// grad_dst points at the gradient of channel g_begin * Cg of input pixel (0, 0) of image b in
// the destination, whose pixels are dst_stride apart. grad_offset and grad_mask are written
// (zero for points outside the map), not accumulated.
template <typename T, int kCg>
STM_MM_INLINE void backward_pixels(const DCNv3Geometry& geo, const T* grad_output,
                                   const T* input, const T* offset, const T* mask, T* grad_dst,
                                   int64_t dst_stride, T* grad_offset, T* grad_mask, int64_t b,
                                   int64_t g_begin, int64_t g_end, int64_t begin, int64_t end) {
  const int64_t H = geo.height, W = geo.width, G = geo.group, P = geo.points;
  const int64_t Cg = kCg > 0 ? kCg : geo.group_channels, C = G * Cg;
  const int64_t pixels_out = geo.height_out * geo.width_out;
  const T scale = static_cast<T>(geo.offset_scale);
  // A neighbour outside the map reads zeros and writes its (zero) gradient into a private
  // scratch row, so that one branch-free loop serves every point.
  std::vector<T> zeros(Cg, T(0)), scratch(4 * Cg);
  for (int64_t local = begin; local < end; ++local) {
    const int64_t pix = b * pixels_out + local;
    const int64_t ho = local / geo.width_out, wo = local % geo.width_out;
    const T x0 = static_cast<T>(wo * geo.stride_w - geo.pad_w);
    const T y0 = static_cast<T>(ho * geo.stride_h - geo.pad_h);
    for (int64_t g = g_begin; g < g_end; ++g) {
      const T* in_g = input + b * H * W * C + g * Cg;
      T* dst_g = grad_dst + (g - g_begin) * Cg;
      const T* go = grad_output + pix * C + g * Cg;
      const int64_t slot = (pix * G + g) * P;
      const T* off = offset + slot * 2;
      const T* m = mask + slot;
      for (int64_t i = 0; i < geo.kernel_w; ++i) {
        for (int64_t j = 0; j < geo.kernel_h; ++j) {
          const int64_t p = i * geo.kernel_h + j;
          const T x = x0 + static_cast<T>(i * geo.dilation_w) + off[2 * p] * scale;
          const T y = y0 + static_cast<T>(j * geo.dilation_h) + off[2 * p + 1] * scale;
          Footprint<T> f;
          if (!locate(x, y, H, W, f)) {
            grad_mask[slot + p] = 0;
            grad_offset[(slot + p) * 2] = 0;
            grad_offset[(slot + p) * 2 + 1] = 0;
            continue;
          }
          const bool in00 = f.top && f.left, in01 = f.top && f.right;
          const bool in10 = f.bottom && f.left, in11 = f.bottom && f.right;
          const Neighbours<T> nb{in00 ? in_g + f.i00 * C : zeros.data(),
                                 in01 ? in_g + f.i01 * C : zeros.data(),
                                 in10 ? in_g + f.i10 * C : zeros.data(),
                                 in11 ? in_g + f.i11 * C : zeros.data(),
                                 in00 ? dst_g + f.i00 * dst_stride : scratch.data(),
                                 in01 ? dst_g + f.i01 * dst_stride : scratch.data() + Cg,
                                 in10 ? dst_g + f.i10 * dst_stride : scratch.data() + 2 * Cg,
                                 in11 ? dst_g + f.i11 * dst_stride : scratch.data() + 3 * Cg};
          T sums[3];
          backward_point(GroupChannels<kCg>{}, f, go, nb, m[p], Cg, sums);
          grad_mask[slot + p] = sums[0];
          grad_offset[(slot + p) * 2] = scale * m[p] * sums[1];
          grad_offset[(slot + p) * 2 + 1] = scale * m[p] * sums[2];
        }
      }
    }
  }
}

// Calls fn(GroupChannels<Cg>{}) where a fixed-width kernel exists, else fn(GroupChannels<0>{}).
template <typename T, typename Fn>
void with_group_channels(int64_t group_channels, const Fn& fn) {
#ifdef STM_MM_VECTOR_EXT
  if constexpr (std::is_same_v<T, float>) {
    if (group_channels == 16) return fn(GroupChannels<16>{});
    if (group_channels == 32) return fn(GroupChannels<32>{});
  }
#endif
  fn(GroupChannels<0>{});
}

// Non-template entry points so that STM_MM_VECTOR_CLONES can clone them per instruction set.
#define STM_MM_DEFINE_KERNELS(T, CG)                                                           \
  STM_MM_VECTOR_CLONES void forward_range(GroupChannels<CG>, const DCNv3Geometry& geo,       \
                                          const T* input, const T* offset, const T* mask,    \
                                          T* output, int64_t begin, int64_t end) {           \
    forward_pixels<T, CG>(geo, input, offset, mask, output, begin, end);                     \
  }                                                                                          \
  STM_MM_VECTOR_CLONES void backward_range(                                                  \
      GroupChannels<CG>, const DCNv3Geometry& geo, const T* grad_output, const T* input,     \
      const T* offset, const T* mask, T* grad_dst, int64_t dst_stride, T* grad_offset,       \
      T* grad_mask, int64_t b, int64_t g_begin, int64_t g_end, int64_t begin, int64_t end) { \
    backward_pixels<T, CG>(geo, grad_output, input, offset, mask, grad_dst, dst_stride,      \
                           grad_offset, grad_mask, b, g_begin, g_end, begin, end);           \
  }
STM_MM_DEFINE_KERNELS(float, 0)
STM_MM_DEFINE_KERNELS(double, 0)
#ifdef STM_MM_VECTOR_EXT
STM_MM_DEFINE_KERNELS(float, 16)
STM_MM_DEFINE_KERNELS(float, 32)
#endif
#undef STM_MM_DEFINE_KERNELS

// Sampling points one parallel task should cover at least (about a hundred microseconds of
// work), so that small calls do not pay for waking threads.
constexpr int64_t kPointsPerTask = 16384;

// Runs fn(task) for every task in [0, tasks) on at most `threads` threads (the caller's alone
// when threads is 1). Tasks are handed out one at a time, so a thread that the OS delays (on a
// shared machine) does not hold back the others as a fixed split would.
template <typename Fn>
void parallel_tasks(int64_t tasks, int64_t threads, const Fn& fn) {
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min(tasks, threads), 1, [&](int64_t, int64_t) {
    for (int64_t task = next++; task < tasks; task = next++) fn(task);
  });
}

// Threads worth waking for a call with `points` sampling points.
int64_t useful_threads(int64_t points) {
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), points / kPointsPerTask));
}

}  // namespace

at::Tensor dcnv3_forward_cpu(const at::Tensor& input, const at::Tensor& offset,
                             const at::Tensor& mask, const DCNv3Geometry& geo) {
  auto output = at::empty({geo.batch, geo.height_out, geo.width_out, input.size(3)},
                          input.options());
  if (geo.height == 0 || geo.width == 0 || output.numel() == 0) return output.zero_();
  const int64_t pixels = geo.batch * geo.height_out * geo.width_out;
  const int64_t per_task = std::max<int64_t>(1, kPointsPerTask / (geo.group * geo.points));
  const int64_t tasks = (pixels + per_task - 1) / per_task;
  const int64_t threads = useful_threads(pixels * geo.group * geo.points);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "dcnv3_forward_cpu", [&] {
    const scalar_t* in = input.data_ptr<scalar_t>();
    const scalar_t* off = offset.data_ptr<scalar_t>();
    const scalar_t* m = mask.data_ptr<scalar_t>();
    scalar_t* out = output.data_ptr<scalar_t>();
    with_group_channels<scalar_t>(geo.group_channels, [&](auto cg) {
      parallel_tasks(tasks, threads, [&](int64_t task) {
        forward_range(cg, geo, in, off, m, out, task * per_task,
                      std::min(pixels, (task + 1) * per_task));
      });
    });
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dcnv3_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& offset,
    const at::Tensor& mask, const DCNv3Geometry& geo) {
  const int64_t pixels_out = geo.height_out * geo.width_out;
  const int64_t pixels_in = geo.height * geo.width;
  if (geo.batch == 0 || pixels_out == 0 || pixels_in == 0) {
    return {at::zeros_like(input), at::zeros_like(offset), at::zeros_like(mask)};
  }
  // Every element is written below (grad_input is zeroed by the task that owns it).
  auto grad_input = at::empty_like(input);
  auto grad_offset = at::empty_like(offset);
  auto grad_mask = at::empty_like(mask);
  const int64_t G = geo.group, Cg = geo.group_channels, C = G * Cg;
  const int64_t threads = useful_threads(geo.batch * pixels_out * G * geo.points);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "dcnv3_backward_cpu", [&] {
    const scalar_t* go = grad_output.data_ptr<scalar_t>();
    const scalar_t* in = input.data_ptr<scalar_t>();
    const scalar_t* off = offset.data_ptr<scalar_t>();
    const scalar_t* m = mask.data_ptr<scalar_t>();
    scalar_t* gin = grad_input.data_ptr<scalar_t>();
    scalar_t* goff = grad_offset.data_ptr<scalar_t>();
    scalar_t* gm = grad_mask.data_ptr<scalar_t>();
    with_group_channels<scalar_t>(Cg, [&](auto cg) {
      if (geo.batch * G >= threads) {
        // Tasks are (image, block of groups): blocks as large as possible (each image's rows
        // are read contiguously) while leaving about four tasks per thread for balance.
        const int64_t blocks = std::min(G, (4 * threads + geo.batch - 1) / geo.batch);
        parallel_tasks(geo.batch * blocks, threads, [&](int64_t task) {
          const int64_t b = task / blocks, block = task % blocks;
          const int64_t g_begin = block * G / blocks, g_end = (block + 1) * G / blocks;
          scalar_t* dst = gin + b * pixels_in * C + g_begin * Cg;
          for (int64_t pix = 0; pix < pixels_in; ++pix) {
            std::fill_n(dst + pix * C, (g_end - g_begin) * Cg, scalar_t(0));
          }
          backward_range(cg, geo, go, in, off, m, dst, C, goff, gm, b, g_begin, g_end, 0,
                         pixels_out);
        });
        return;
      }
      // Fewer (image, group) pairs than threads: each pair's output pixels are split into
      // chunks that accumulate into private (H, W, Cg) buffers, then summed.
      const int64_t pairs = geo.batch * G;
      const int64_t chunks = std::min((threads + pairs - 1) / pairs, pixels_out);
      const int64_t per_chunk = (pixels_out + chunks - 1) / chunks;
      auto buffers = at::zeros({pairs, chunks, pixels_in, Cg}, input.options());
      scalar_t* buf = buffers.data_ptr<scalar_t>();
      parallel_tasks(pairs * chunks, threads, [&](int64_t task) {
        const int64_t pair = task / chunks, chunk = task % chunks;
        const int64_t b = pair / G, g = pair % G;
        const int64_t first = std::min(pixels_out, chunk * per_chunk);
        const int64_t last = std::min(pixels_out, first + per_chunk);
        backward_range(cg, geo, go, in, off, m, buf + task * pixels_in * Cg, Cg, goff, gm, b, g,
                       g + 1, first, last);
      });
      at::parallel_for(0, geo.batch * pixels_in, 256, [&](int64_t begin, int64_t end) {
        for (int64_t idx = begin; idx < end; ++idx) {
          const int64_t b = idx / pixels_in, pix = idx % pixels_in;
          for (int64_t g = 0; g < G; ++g) {
            scalar_t* dst = gin + idx * C + g * Cg;
            std::fill_n(dst, Cg, scalar_t(0));
            for (int64_t chunk = 0; chunk < chunks; ++chunk) {
              const scalar_t* src = buf + ((b * G + g) * chunks + chunk) * pixels_in * Cg +
                                    pix * Cg;
              for (int64_t c = 0; c < Cg; ++c) dst[c] += src[c];
            }
          }
        }
      });
    });
  });
  return {grad_input, grad_offset, grad_mask};
}

}  // namespace stm_mm
