// The sequence-mixer slot of a block: given per-head q, k, v (B, H, T, D) it produces o (B, H, T, D)
// with the layer's mixer (softmax, sliding window, block-sparse, linear attention with a feature
// map, or the sliding+linear hybrid), by calling the kernels/ attention family. The layer's
// projections (c_attn, c_proj) live in the block; only the mixing differs between kinds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/attention.h"
#include "nn/config.h"

namespace scion::nn {

// The learnable or fixed parameters of a feature map, pointing into the model's parameter buffer.
struct FeatureParams {
  const float* wq = nullptr;  // hedgehog, taylor2: (H, D, F); performer: Ω (H, F, D) shared by q and k
  const float* wk = nullptr;  // hedgehog, taylor2: (H, D, F); performer: same as wq
  int64_t F = 0;
};

// Per-layer state kept between forward and backward: the softmax statistics and the block layout.
struct MixerCache {
  std::vector<float> lse;             // (B, H, T) softmax log-sum-exp rows, or linear attention's den
  std::vector<int32_t> row_offsets;   // block-sparse CSR layout for the current T
  std::vector<int32_t> col_indices;
  kernels::BlockLayout layout;
};

// BASED's Taylor-2 width: q and k are projected to d' = 16 per head before the expansion.
inline constexpr int64_t kTaylorFeatureDim = 16;

// Feature count F of a layer's map for head dim D: hedgehog, performer (0 -> the head dim),
// taylor2's projection width (0 -> kTaylorFeatureDim); 0 for parameter-free maps.
int64_t FeatureCount(const LayerSpec& s, int64_t head_dim);

// Names, after a layer's "attn.", of its feature-map tensors (hedgehog.wq/wk, taylor2.wq/wk, the
// shared performer.omega); empty strings when the map has none.
struct MapTensorNames {
  std::string q, k;
};
MapTensorNames MapTensors(const LayerSpec& s, int64_t head_dim);

// Block-sparse layout: query block r sees key blocks r-local_blocks+1 .. r, plus block 0 when
// global_block (an attention-sink style first block). Fills rows/cols for T tokens.
void BuildBlockLayout(const LayerSpec& s, int64_t T, std::vector<int32_t>* row_offsets, std::vector<int32_t>* col_indices);

Status MixerForward(const LayerSpec& s, kernels::AttnDims d, const float* q, const float* k, const float* v,
                    float* o, const FeatureParams& fp, MixerCache* cache);
// dq, dk, dv (B, H, T, D) are overwritten; dwq, dwk (feature-map grads, may be null) accumulate.
Status MixerBackward(const LayerSpec& s, kernels::AttnDims d, const float* q, const float* k, const float* v,
                     const float* o, const float* dout, float* dq, float* dk, float* dv, const FeatureParams& fp,
                     float* dwq, float* dwk, MixerCache* cache);

}  // namespace scion::nn
