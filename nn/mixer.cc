#include "nn/mixer.h"

#include <algorithm>
#include <cmath>

namespace scion::nn {

using kernels::AttnDims;
using kernels::FeatureMapKind;

namespace {

kernels::FeatureMap MakeMap(const LayerSpec& s, const FeatureParams& fp) {
  kernels::FeatureMap fm;
  fm.kind = s.feature_map;
  fm.F = fp.F;
  fm.wq = fp.wq;
  fm.wk = fp.wk;
  return fm;
}

kernels::Mask MakeMask(const LayerSpec& s, MixerCache* cache) {
  kernels::Mask m;
  m.causal = true;
  if (s.mixer == MixerKind::kSlidingWindow) m.window = s.window;
  if (s.mixer == MixerKind::kBlockSparse) m.blocks = &cache->layout;
  return m;
}

float Scale(AttnDims d) { return 1.0f / std::sqrt(static_cast<float>(d.D)); }

}  // namespace

int64_t FeatureCount(const LayerSpec& s, int64_t head_dim) {
  if (s.mixer != MixerKind::kLinear && s.mixer != MixerKind::kHybrid) return 0;
  switch (s.feature_map) {
    case FeatureMapKind::kHedgehog:
    case FeatureMapKind::kHedgehogExp:
    case FeatureMapKind::kPerformer: return s.feature_dim > 0 ? s.feature_dim : head_dim;
    case FeatureMapKind::kTaylor2: return s.feature_dim > 0 ? s.feature_dim : kTaylorFeatureDim;
    default: return 0;
  }
}

MapTensorNames MapTensors(const LayerSpec& s, int64_t head_dim) {
  if (FeatureCount(s, head_dim) == 0) return {};
  switch (s.feature_map) {
    case FeatureMapKind::kPerformer: return {"performer.omega", "performer.omega"};
    case FeatureMapKind::kTaylor2: return {"taylor2.wq", "taylor2.wk"};
    default: return {"hedgehog.wq", "hedgehog.wk"};
  }
}

void BuildBlockLayout(const LayerSpec& s, int64_t T, std::vector<int32_t>* rows, std::vector<int32_t>* cols) {
  const int64_t nb = (T + s.block_size - 1) / s.block_size;
  rows->assign(1, 0);
  cols->clear();
  for (int64_t r = 0; r < nb; ++r) {
    const int64_t first = std::max<int64_t>(0, r - s.local_blocks + 1);
    if (s.global_block && first > 0) cols->push_back(0);
    for (int64_t c = first; c <= r; ++c) cols->push_back(static_cast<int32_t>(c));
    rows->push_back(static_cast<int32_t>(cols->size()));
  }
}

Status MixerForward(const LayerSpec& s, AttnDims d, const float* q, const float* k, const float* v, float* o,
                    const FeatureParams& fp, MixerCache* cache) {
  const kernels::Launch cpu;
  switch (s.mixer) {
    case MixerKind::kSoftmax:
    case MixerKind::kSlidingWindow:
    case MixerKind::kBlockSparse: {
      if (s.mixer == MixerKind::kBlockSparse) {
        BuildBlockLayout(s, d.N, &cache->row_offsets, &cache->col_indices);
        cache->layout.block_size = static_cast<int>(s.block_size);
        cache->layout.num_blocks = static_cast<int>(cache->row_offsets.size() - 1);
        cache->layout.row_offsets = cache->row_offsets.data();
        cache->layout.col_indices = cache->col_indices.data();
      }
      cache->lse.resize(static_cast<size_t>(d.B * d.H * d.N));
      return kernels::AttentionForward(cpu, d, q, k, v, o, cache->lse.data(), MakeMask(s, cache), Scale(d));
    }
    case MixerKind::kLinear:
      cache->lse.resize(static_cast<size_t>(d.B * d.H * d.N));  // the normaliser den
      return kernels::LinearAttentionForward(cpu, d, q, k, v, o, cache->lse.data(), MakeMap(s, fp), /*causal=*/true,
                                             s.eps);
    case MixerKind::kHybrid:
      return kernels::HybridAttentionForward(cpu, d, q, k, v, o, s.window, MakeMap(s, fp), Scale(d), s.eps);
  }
  return Status::Internal("unknown mixer");
}

Status MixerBackward(const LayerSpec& s, AttnDims d, const float* q, const float* k, const float* v, const float* o,
                     const float* dout, float* dq, float* dk, float* dv, const FeatureParams& fp, float* dwq,
                     float* dwk, MixerCache* cache) {
  const kernels::Launch cpu;
  switch (s.mixer) {
    case MixerKind::kSoftmax:
    case MixerKind::kSlidingWindow:
    case MixerKind::kBlockSparse:
      return kernels::AttentionBackward(cpu, d, q, k, v, o, dout, cache->lse.data(), dq, dk, dv, MakeMask(s, cache),
                                        Scale(d));
    case MixerKind::kLinear:
      return kernels::LinearAttentionBackward(cpu, d, q, k, v, o, cache->lse.data(), dout, dq, dk, dv, MakeMap(s, fp),
                                              dwq, dwk, /*causal=*/true, s.eps);
    case MixerKind::kHybrid:
      return kernels::HybridAttentionBackward(cpu, d, q, k, v, dout, dq, dk, dv, s.window, MakeMap(s, fp), dwq, dwk,
                                              Scale(d), s.eps);
  }
  return Status::Internal("unknown mixer");
}

}  // namespace scion::nn
