// AdamW (decoupled weight decay, Loshchilov & Hutter), global grad-norm clipping and the warmup +
// cosine learning-rate schedule. Operates on a Model's flat parameter and gradient buffers and
// touches only trainable tensors.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/model.h"

namespace scion::nn {

struct AdamWConfig {
  float lr = 3e-4f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;  // applied to tensors marked decay (matrices) only
};

// Learning rate at `step` (0-based): linear warmup from lr/warmup to lr over `warmup` steps, then
// cosine decay to lr·min_ratio at `total` steps (constant after).
float ScheduledLr(int64_t step, float lr, int64_t warmup, int64_t total, float min_ratio);

// L2 norm of all trainable gradients; when max_norm > 0 and the norm exceeds it, gradients are
// scaled by max_norm / norm. Returns the norm before clipping.
float ClipGradNorm(Model& m, float max_norm);
// The same over any flat parameter set laid out by `params` (e.g. a standalone sublayer's).
float ClipGradNorm(const std::vector<ParamInfo>& params, float* grad, float max_norm);

class AdamW {
 public:
  explicit AdamW(AdamWConfig c) : c_(c) {}
  // One update with learning rate `lr` (the schedule's value); `t` counts updates from 1.
  void Step(Model& m, float lr);
  // The same over any flat parameter set: w and g hold the tensors `params` lays out.
  void Step(const std::vector<ParamInfo>& params, float* w, const float* g, float lr);
  int64_t steps() const { return t_; }
  const AdamWConfig& config() const { return c_; }
  // State for checkpoints: first/second moments (num_params each) and the step counter.
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  void set_steps(int64_t t) { t_ = t; }

 private:
  AdamWConfig c_;
  std::vector<float> m_, v_;  // (num_params)
  int64_t t_ = 0;
};

}  // namespace scion::nn
