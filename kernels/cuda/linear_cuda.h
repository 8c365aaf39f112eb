// CUDA entry points of the linear-attention family, called by the dispatching functions in
// kernels/linear_attention.cc after the shared argument checks. Defined in kernels/cuda/linear_*.cu, distill.cu and
// hybrid_attention.cu.
#pragma once

#include "kernels/attention.h"

namespace scion::kernels::cuda {

Status LinearAttentionSupport(AttnDims d, const FeatureMap& fm);
Status LinearAttentionForward(const Launch& l, AttnDims d, const void* q, const void* k,
                              const void* v, void* o, float* den, const FeatureMap& fm, bool causal, float eps,
                              float* key_states);
int64_t LinearAttentionKeyStateFloats(const Launch& l, AttnDims d, const FeatureMap& fm, bool causal);
Status LinearAttentionBackward(const Launch& l, AttnDims d, const void* q, const void* k,
                               const void* v, const void* o, const float* den, const void* dout, void* dq,
                               void* dk, void* dv, const FeatureMap& fm, float* dwq, float* dwk, bool causal,
                               float eps, const float* key_states);

Status DistillLoss(const Launch& l, AttnDims d, const void* q, const void* k, const FeatureMap& fm, float scale,
                   float eps, float* loss, float* dwq, float* dwk, const AttentionStats& stats,
                   const float* row_weight);
// kernels::DistillLossFromHost's and DistillLossDeviceQK's copies around kernels::DistillLoss (distill.cu).
Status DistillLossFromHost(AttnDims d, const float* q, const float* k, const FeatureMap& fm, float scale, float eps,
                           float* loss, float* dwq, float* dwk, const AttentionStats& stats, const float* row_weight);
Status DistillLossDeviceQK(AttnDims d, const void* q, const void* k, void* stream, const FeatureMap& fm, float scale,
                           float eps, float* loss, float* dwq, float* dwk, const AttentionStats& stats,
                           const float* row_weight);

// Hybrid attention (hybrid_attention.cu): the sliding-window softmax and lagged linear products.
Status HybridAttentionForward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o,
                              int64_t window, const FeatureMap& fm, float scale, float eps);
Status HybridAttentionBackward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v,
                               const void* dout, void* dq, void* dk, void* dv, int64_t window, const FeatureMap& fm,
                               float* dwq, float* dwk, float scale, float eps);

}  // namespace scion::kernels::cuda
