// THC was removed from PyTorch (1.11); mmcv 2.1.0's ms_deform_attn_cuda.cu still includes this
// header for atomicAdd on half types, which ATen provides now.
#pragma once
#include <ATen/cuda/Atomic.cuh>
