#include "nn/trainer.h"

#include <algorithm>

namespace scion::nn {

Result<StepStats> TrainStep(Model& m, AdamW& opt, const std::vector<const TokenBatch*>& micro, int64_t step,
                            const TrainConfig& c) {
  if (micro.empty()) return Status::InvalidArgument("micro-batches: none given");
  m.ZeroGrad();
  StepStats s;
  const float scale = 1.0f / static_cast<float>(micro.size());
  for (const TokenBatch* b : micro) {
    float loss = 0;
    SCION_RETURN_IF_ERROR(m.Forward(b->inputs.data(), b->targets.data(), b->B, b->T, &loss));
    SCION_RETURN_IF_ERROR(m.Backward(scale));
    s.loss += loss * scale;
  }
  s.grad_norm = ClipGradNorm(m, c.grad_clip);
  s.lr = ScheduledLr(step, c.lr, c.warmup, c.steps, c.min_lr_ratio);
  opt.Step(m, s.lr);
  return s;
}

Result<float> EvalLoss(Model& m, const TokenBatch& b) {
  float loss = 0;
  SCION_RETURN_IF_ERROR(m.Forward(b.inputs.data(), b.targets.data(), b.B, b.T, &loss));
  return loss;
}

Result<double> TargetAccuracy(Model& m, const TokenBatch& b, int64_t chunk) {
  const int64_t V = m.config().vocab_size;
  int64_t hit = 0, total = 0;
  for (int64_t r0 = 0; r0 < b.B; r0 += chunk) {
    const int64_t rows = std::min(chunk, b.B - r0);
    SCION_RETURN_IF_ERROR(m.Forward(b.inputs.data() + r0 * b.T, nullptr, rows, b.T, nullptr));
    for (int64_t i = 0; i < rows * b.T; ++i) {
      const int32_t t = b.targets[r0 * b.T + i];
      if (t < 0) continue;
      const float* l = m.logits() + i * V;
      hit += (std::max_element(l, l + V) - l) == t;
      ++total;
    }
  }
  if (total == 0) return Status::InvalidArgument("accuracy: the batch has no targets");
  return static_cast<double>(hit) / static_cast<double>(total);
}

}  // namespace scion::nn
