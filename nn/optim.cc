#include "nn/optim.h"

#include <algorithm>
#include <cmath>

namespace scion::nn {

float ScheduledLr(int64_t step, float lr, int64_t warmup, int64_t total, float min_ratio) {
  if (warmup > 0 && step < warmup) return lr * static_cast<float>(step + 1) / static_cast<float>(warmup);
  if (total <= warmup || step >= total) return step >= total && total > warmup ? lr * min_ratio : lr;
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(total - warmup);
  const double coeff = 0.5 * (1.0 + std::cos(3.141592653589793 * progress));
  return static_cast<float>(lr * (min_ratio + (1.0 - min_ratio) * coeff));
}

float ClipGradNorm(Model& m, float max_norm) { return ClipGradNorm(m.params(), m.grad(), max_norm); }

float ClipGradNorm(const std::vector<ParamInfo>& params, float* grad, float max_norm) {
  double sum = 0;
  for (const ParamInfo& p : params) {
    if (!p.trainable) continue;
    const float* g = grad + p.offset;
    for (int64_t i = 0; i < p.numel; ++i) sum += static_cast<double>(g[i]) * g[i];
  }
  const float norm = static_cast<float>(std::sqrt(sum));
  if (max_norm > 0 && norm > max_norm) {
    const float s = max_norm / norm;
    for (const ParamInfo& p : params) {
      if (!p.trainable) continue;
      float* g = grad + p.offset;
      for (int64_t i = 0; i < p.numel; ++i) g[i] *= s;
    }
  }
  return norm;
}

void AdamW::Step(Model& model, float lr) { Step(model.params(), model.data(), model.grad(), lr); }

void AdamW::Step(const std::vector<ParamInfo>& params, float* w, const float* g, float lr) {
  size_t n = 0;
  for (const ParamInfo& p : params) n = std::max(n, static_cast<size_t>(p.offset + p.numel));
  if (m_.size() != n) { m_.assign(n, 0.0f); v_.assign(n, 0.0f); }
  ++t_;
  const float bc1 = 1.0f - std::pow(c_.beta1, static_cast<float>(t_));
  const float bc2 = 1.0f - std::pow(c_.beta2, static_cast<float>(t_));
  for (const ParamInfo& p : params) {
    if (!p.trainable) continue;
    const float wd = p.decay ? c_.weight_decay : 0.0f;
    for (int64_t i = p.offset; i < p.offset + p.numel; ++i) {
      m_[i] = c_.beta1 * m_[i] + (1.0f - c_.beta1) * g[i];
      v_[i] = c_.beta2 * v_[i] + (1.0f - c_.beta2) * g[i] * g[i];
      const float mhat = m_[i] / bc1, vhat = v_[i] / bc2;
      w[i] -= lr * (mhat / (std::sqrt(vhat) + c_.eps) + wd * w[i]);
    }
  }
}

}  // namespace scion::nn
