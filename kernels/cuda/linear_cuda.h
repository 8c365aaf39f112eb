// CUDA entry points of the linear-attention family, called by the dispatching functions in
// kernels/linear_attention.cc after the shared argument checks. Defined in kernels/cuda/linear_*.cu and distill.cu.
#pragma once

#include "kernels/attention.h"

namespace scion::kernels::cuda {

Status LinearAttentionForward(const Launch& l, AttnDims d, const void* q, const void* k,
                              const void* v, void* o, const FeatureMap& fm, bool causal, float eps);
Status LinearAttentionBackward(const Launch& l, AttnDims d, const void* q, const void* k,
                               const void* v, const void* dout, void* dq, void* dk, void* dv,
                               const FeatureMap& fm, float* dwq, float* dwk, bool causal, float eps);

Status DistillLoss(const Launch& l, AttnDims d, const void* q, const void* k, const FeatureMap& fm, float scale,
                   float eps, float* loss, float* dwq, float* dwk, const AttentionStats& stats);

}  // namespace scion::kernels::cuda
